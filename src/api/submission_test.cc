#include "api/submission.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace allot {
namespace {

using ::testing::HasSubstr;

SubmitRequest FullRequest() {
  SubmitRequest request;
  request.spec.name = "pretrain";
  request.spec.account = "lab-a";
  request.spec.tasks = 4;
  request.spec.gpus_per_task = 8;
  request.spec.cpus_per_task = 96;
  request.spec.memory_per_task = int64_t{1} << 40;
  request.spec.gpu_model = "B200";
  request.spec.pools = {"nacc-b200", "kt-b200"};
  request.spec.topology = {Level::kLeaf, TopologyMode::kPreferred};
  request.spec.time_limit = 7200;
  request.spec.priority_class = "critical";
  request.spec.preemptible = false;
  request.spec.requeue = false;
  request.spec.kind = JobKind::kService;
  request.script = "#!/bin/bash\nsrun python train.py \"$@\"\n";
  request.processes_per_task = 8;
  request.array = ArraySpec{{0, 1, 2, 3, 7, 9, 10}, 2};
  request.dependencies = {{DependencyType::kAfterOk, 12}, {DependencyType::kAfterOk, 13},
                          {DependencyType::kAfterAny, 9}, {DependencyType::kSingleton, 0}};
  request.output = "logs/%x-%j.out";
  request.error = "logs/%x-%j.err";
  request.chdir = "/scratch/lab-a";
  request.exclusive = true;
  request.spec.exclusive = true;  // as the readers set them for an exclusive job
  request.spec.one_task_per_node = true;
  request.hold = true;
  return request;
}

void ExpectSameRequest(const SubmitRequest& a, const SubmitRequest& b) {
  EXPECT_EQ(JobSpecToJson(a.spec), JobSpecToJson(b.spec));
  EXPECT_EQ(a.script, b.script);
  EXPECT_EQ(a.processes_per_task, b.processes_per_task);
  EXPECT_EQ(a.array, b.array);
  EXPECT_EQ(a.dependencies, b.dependencies);
  EXPECT_EQ(a.output, b.output);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.chdir, b.chdir);
  EXPECT_EQ(a.exclusive, b.exclusive);
  EXPECT_EQ(a.hold, b.hold);
}

TEST(SubmissionTest, JsonRoundTripKeepsEveryField) {
  SubmitRequest request = FullRequest();
  std::string body = SubmissionToJson(request).dump();
  StatusOr<SubmitRequest> read = ParseSubmission(body, "body");
  ASSERT_TRUE(read.ok()) << read.status().message();
  ExpectSameRequest(request, *read);
  EXPECT_EQ(read->spec.memory_per_task, int64_t{1} << 40);
  EXPECT_EQ(read->spec.topology.mode, TopologyMode::kPreferred);
  EXPECT_EQ(read->spec.kind, JobKind::kService);
}

TEST(SubmissionTest, DefaultsStayOutOfTheJson) {
  SubmitRequest request;
  request.spec.account = "lab";
  request.spec.command = {"true"};
  nlohmann::json json = SubmissionToJson(request);
  EXPECT_EQ(json, nlohmann::json::parse(
                      R"({"account": "lab", "tasks": 1, "gpus_per_task": 1, "command": ["true"]})"));
}

TEST(SubmissionTest, ReadsYamlWithSubmitFields) {
  StatusOr<SubmitRequest> read = ParseSubmission(
      "name: sweep\naccount: lab\ngpus: 2\narray: 0-99%10\ndependency: afterok:5\n"
      "output: out/%A_%a.log\ncommand: [python, sweep.py]\n",
      "sweep.yaml");
  ASSERT_TRUE(read.ok()) << read.status().message();
  ASSERT_TRUE(read->array.has_value());
  EXPECT_EQ(read->array->indexes.size(), 100u);
  EXPECT_EQ(read->array->max_concurrent, 10);
  EXPECT_EQ(read->dependencies, (std::vector<Dependency>{{DependencyType::kAfterOk, 5}}));
  EXPECT_EQ(read->output, "out/%A_%a.log");
  EXPECT_EQ(read->spec.gpus_per_task, 2);
}

TEST(SubmissionTest, AccountMayBeLeftToTheServer) {
  StatusOr<SubmitRequest> read = ParseSubmission(R"({"command": ["true"]})", "body");
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->spec.account, "");
}

std::string MustFail(std::string_view text) {
  StatusOr<SubmitRequest> read = ParseSubmission(text, "body");
  EXPECT_FALSE(read.ok());
  return read.ok() ? "" : read.status().message();
}

TEST(SubmissionTest, ErrorsSayWhatToFix) {
  EXPECT_THAT(MustFail(R"({"account": "lab", "gpus_per_tsk": 2})"),
              HasSubstr("unknown field 'gpus_per_tsk'"));
  EXPECT_THAT(MustFail(R"({"account": "lab", "tasks": 2)"), HasSubstr("body:"));
  EXPECT_THAT(MustFail(R"([1, 2])"), HasSubstr("expected an object"));
  EXPECT_THAT(MustFail(R"({"script": "echo hi"})"), HasSubstr("shebang"));
  EXPECT_THAT(MustFail(R"({"script": "#!/bin/sh\ntrue", "command": ["true"]})"),
              HasSubstr("not both"));
  EXPECT_THAT(MustFail(R"({"array": "5-1"})"), HasSubstr("runs backwards"));
  EXPECT_THAT(MustFail(R"({"dependency": "afterok"})"), HasSubstr("names no job"));
  EXPECT_THAT(MustFail(R"({"tasks": "many"})"), HasSubstr("job.tasks"));
  EXPECT_THAT(MustFail(R"({"exclusive": "sometimes"})"), HasSubstr("job.exclusive"));
}

// Found by submission_fuzzer: text that is not UTF-8 once parsed could not be written back as
// JSON, so the server answered 500 instead of saying what is wrong.
TEST(SubmissionTest, WhatComesOutIsUtf8OrItIsRefused) {
  EXPECT_THAT(MustFail("name: \"a\\N\"\ngpus: 1\n"), HasSubstr("not UTF-8"));  // YAML's \N is U+0085
  EXPECT_THAT(MustFail("name: \"a\xFF\"\n"), HasSubstr("not valid UTF-8 at byte 8 (line 1)"));
  EXPECT_THAT(MustFail(std::string(100, '[')), HasSubstr("nested more than 64 levels"));
  EXPECT_THAT(MustFail("a: &a [x]\nb: [*a, *a]\ngpus: 1\n" + std::string("c: [") + [] {
                std::string many;
                for (int i = 0; i < 6000; ++i) many += "*a, ";
                return many;
              }() + "*a]\n"),
              HasSubstr("expands to more than 10000 values"));
  StatusOr<SubmitRequest> rocket = ParseSubmission(R"({"name": "go-\ud83d\ude80", "gpus": 1})", "t");
  ASSERT_TRUE(rocket.ok()) << rocket.status().message();
  EXPECT_EQ(rocket->spec.name, "go-\xF0\x9F\x9A\x80");
}

TEST(SubmissionTest, FormatsSlurmText) {
  EXPECT_EQ(FormatArraySpec({{0, 1, 2, 5, 7, 8}, 0}), "0-2,5,7-8");
  EXPECT_EQ(FormatArraySpec({{3}, 4}), "3%4");
  EXPECT_EQ(FormatDependencies({{DependencyType::kAfterOk, 1}, {DependencyType::kAfterOk, 2},
                                {DependencyType::kAfterNotOk, 3}}),
            "afterok:1:2,afternotok:3");
  EXPECT_EQ(FormatDependencies({{DependencyType::kSingleton, 0}}), "singleton");
}

}  // namespace
}  // namespace allot
