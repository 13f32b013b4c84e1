// Fuzzes the trace readers of `allot sim`: SWF, Philly CSV and generic CSV. The first byte picks
// the format, the rest is the trace.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sim/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const allot::TraceFormat formats[] = {allot::TraceFormat::kSwf, allot::TraceFormat::kPhilly, allot::TraceFormat::kCsv};
  allot::TraceFormat format = formats[data[0] % 3];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  for (bool strict : {false, true}) {
    (void)allot::ParseTrace(text, "fuzz", format, {.strict = strict, .gpus_per_node = 1 + data[0] % 16});
  }
  return 0;
}
