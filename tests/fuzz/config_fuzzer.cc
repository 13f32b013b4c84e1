// Fuzzes the config reader (`allot server --config`, `allot check`, `allot sim --config`).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Configs may describe tens of thousands of nodes; a small fuzz input must not build a huge
  // pool, so inputs are kept short (see -max_len in scripts/fuzz.sh).
  (void)allot::ParseConfig(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  return 0;
}
