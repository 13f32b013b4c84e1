// The body of `POST /v1/jobs`: a job spec (docs/configuration.md) plus what a submit file adds
// (script, array, dependency, output paths; docs/api.md, "Submission"). The CLI writes it with
// SubmissionToJson; the server reads it with ParseSubmission, which takes JSON or YAML text, so
// a YAML spec file and its JSON form mean the same job.
//
//   nlohmann::json body = SubmissionToJson(request);             // client
//   StatusOr<SubmitRequest> read = ParseSubmission(text, "body");  // server
//
// Round trip: ParseSubmission(SubmissionToJson(r).dump()) gives back r.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "api/submit_request.h"
#include "core/job.h"
#include "core/status.h"

namespace allot {

// The spec's fields under the YAML names; fields at their defaults are left out.
nlohmann::json JobSpecToJson(const JobSpec& spec);
nlohmann::json SubmissionToJson(const SubmitRequest& request);

// Errors are InvalidArgument and name `source`, line, column and field.
StatusOr<SubmitRequest> ParseSubmission(std::string_view text, std::string_view source);

// Slurm's text forms again: "0-3,7%2", "afterok:12:13,singleton".
std::string FormatArraySpec(const ArraySpec& array);
std::string FormatDependencies(const std::vector<Dependency>& dependencies);

}  // namespace allot
