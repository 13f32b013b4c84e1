// Fuzzes the submit-file reader of `allot submit`: #SBATCH scripts and YAML specs.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/submit_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)allot::ParseSubmitFile(text, "fuzz.sh");
  (void)allot::ParseBatchScript(text, "fuzz.sh");
  return 0;
}
