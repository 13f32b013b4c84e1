#include "api/agent_protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// What an agent sends is what the server reads, field by field.
TEST(AgentProtocolTest, AReportReadsBackAsItWasSent) {
  AgentReport sent{.hostname = "gpu-001", .address = "10.0.0.1", .gpus = 8, .gpu_model = "H100", .wait_seconds = 30};
  sent.tasks.push_back({.job = 7, .epoch = 2, .task = 3});
  sent.tasks.push_back({.job = 8, .epoch = 1, .task = 0, .exited = true, .exit_code = 137, .timed_out = true,
                        .out_of_memory = true});
  sent.logs.push_back({.job = 8, .task = 0, .stream = "err", .offset = 4096, .data = "killed\n"});

  StatusOr<AgentReport> read = ParseAgentReport(RenderAgentReport(sent));
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->hostname, "gpu-001");
  EXPECT_EQ(read->address, "10.0.0.1");
  EXPECT_EQ(read->gpus, 8u);
  EXPECT_EQ(read->gpu_model, "H100");
  EXPECT_FALSE(read->cpus.has_value());
  EXPECT_EQ(read->wait_seconds, 30);
  ASSERT_EQ(read->tasks.size(), 2u);
  EXPECT_EQ(read->tasks[0].job, 7u);
  EXPECT_EQ(read->tasks[0].epoch, 2u);
  EXPECT_EQ(read->tasks[0].task, 3);
  EXPECT_FALSE(read->tasks[0].exited);
  EXPECT_FALSE(read->tasks[0].exit_code.has_value());
  EXPECT_TRUE(read->tasks[1].exited);
  EXPECT_EQ(read->tasks[1].exit_code, 137);
  EXPECT_TRUE(read->tasks[1].timed_out);
  EXPECT_TRUE(read->tasks[1].out_of_memory);
  ASSERT_EQ(read->logs.size(), 1u);
  EXPECT_EQ(read->logs[0].stream, "err");
  EXPECT_EQ(read->logs[0].offset, 4096);
  EXPECT_EQ(read->logs[0].data, "killed\n");
}

// A task's raw output need not be UTF-8; the report still goes (the bytes as U+FFFD).
TEST(AgentProtocolTest, OutputThatIsNotUtf8IsSentReplaced) {
  AgentReport sent;
  sent.logs.push_back({.job = 1, .task = 0, .stream = "out", .offset = 0, .data = "a\xff" "b"});
  StatusOr<AgentReport> read = ParseAgentReport(RenderAgentReport(sent));
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->logs[0].data, "a\xef\xbf\xbd" "b");
}

TEST(AgentProtocolTest, AMalformedReportIsRefusedWhole) {
  for (const char* body : {"[]", "{\"gpus\": -1}", "{\"tasks\": [{\"job\": 1, \"epoch\": 1, \"task\": 0}]}",
                           "{\"tasks\": [{\"job\": 1, \"epoch\": 1, \"task\": 0, \"state\": \"exited\", \"exit_code\": 300}]}",
                           "{\"logs\": [{\"job\": 1, \"task\": 0, \"offset\": 0, \"stream\": \"in\", \"data\": \"\"}]}",
                           "{\"shell\": \"rm -rf /\"}", "{\"tasks\": [{\"job\": 1, \"epoch\": 1, \"task\": 2147483648, "
                                                       "\"state\": \"running\"}]}"}) {
    EXPECT_FALSE(ParseAgentReport(body).ok()) << body;
  }
  StatusOr<AgentReport> unknown = ParseAgentReport("{\"shell\": 1}");
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown field 'shell'"));
  StatusOr<AgentReport> empty = ParseAgentReport("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->tasks.empty());
}

// The shared variables of a start and a task's own, merged with the task's winning, on the wire
// as one object; and every other field as the agent reads it.
TEST(AgentProtocolTest, AReplyReadsBackWithTheTasksOwnVariablesOverTheShared) {
  auto shared = std::make_shared<const EnvironmentVariables>(
      EnvironmentVariables{{"ALLOT_JOB_ID", "7"}, {"CUDA_VISIBLE_DEVICES", "shared"}, {"WORLD_SIZE", "16"}});
  SyncReply sent{.node = "gpu-001", .heartbeat_seconds = 10};
  sent.assignments.push_back({.job = 7, .epoch = 2, .task = 1, .name = "train", .user = "ana", .account = "kaist",
                              .argv = {"python", "train.py"}, .shared_environment = shared,
                              .environment = {{"CUDA_VISIBLE_DEVICES", "0,1"}, {"RANK", "2"}},
                              .working_directory = "/home/ana", .fallback_to_own_directory = true,
                              .stdout_path = "slurm-7.out", .stdout_optional = true, .start_time = 1000,
                              .time_limit = 3600, .cpus = 16, .memory_bytes = int64_t{1} << 34, .grace_seconds = 5});
  sent.assignments.push_back({.job = 7, .epoch = 2, .task = 40, .step = 3, .argv = {"hostname"}});
  sent.kills.push_back({.job = 5, .epoch = 1, .task = 0, .grace_seconds = 12});
  sent.acks.push_back({.job = 6, .epoch = 4, .task = 2});

  StatusOr<SyncReply> read = ParseSyncReply(RenderSyncReply(sent));
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->node, "gpu-001");
  EXPECT_EQ(read->heartbeat_seconds, 10);
  ASSERT_EQ(read->assignments.size(), 2u);
  const TaskAssignment& task = read->assignments[0];
  EXPECT_EQ(task.job, 7u);
  EXPECT_EQ(task.epoch, 2u);
  EXPECT_EQ(task.task, 1);
  EXPECT_FALSE(task.step.has_value());
  EXPECT_EQ(task.user, "ana");
  EXPECT_THAT(task.argv, ElementsAre("python", "train.py"));
  EXPECT_THAT(task.MergedEnvironment(), ElementsAre(Pair("ALLOT_JOB_ID", "7"), Pair("CUDA_VISIBLE_DEVICES", "0,1"),
                                                    Pair("RANK", "2"), Pair("WORLD_SIZE", "16")));
  EXPECT_EQ(task.working_directory, "/home/ana");
  EXPECT_TRUE(task.fallback_to_own_directory);
  EXPECT_EQ(task.stdout_path, "slurm-7.out");
  EXPECT_TRUE(task.stdout_optional);
  EXPECT_EQ(task.time_limit, 3600);
  EXPECT_EQ(task.memory_bytes, int64_t{1} << 34);
  EXPECT_EQ(task.grace_seconds, 5);
  EXPECT_EQ(read->assignments[1].step, 3);
  ASSERT_EQ(read->kills.size(), 1u);
  EXPECT_EQ(read->kills[0].grace_seconds, 12);
  ASSERT_EQ(read->acks.size(), 1u);
  EXPECT_EQ(read->acks[0].task, 2);
  // The shared variables were not changed by the task's own.
  EXPECT_EQ(shared->at("CUDA_VISIBLE_DEVICES"), "shared");
}

// A start's node list: once, as a hostlist, to an agent that says it speaks protocol 2; every
// name in ALLOT_NODELIST to one that says nothing (an agent from before the hostlist). Either way
// the task sees the same ALLOT_NODELIST.
TEST(AgentProtocolTest, AGangsNodeListGoesAsAHostlistToAgentsThatSpeakProtocol2) {
  StatusOr<AgentReport> old_agent = ParseAgentReport(R"({"wait_seconds": 30})");
  ASSERT_TRUE(old_agent.ok());
  EXPECT_EQ(old_agent->protocol, 1);
  StatusOr<AgentReport> new_agent = ParseAgentReport(RenderAgentReport({.protocol = kAgentProtocol}));
  ASSERT_TRUE(new_agent.ok()) << new_agent.status().ToString();
  EXPECT_EQ(new_agent->protocol, 2);

  auto shared = std::make_shared<const EnvironmentVariables>(EnvironmentVariables{{"ALLOT_JOB_ID", "9"}});
  const TaskAssignment gang_task{.job = 9, .epoch = 1, .task = 0, .argv = {"train"}, .shared_environment = shared,
                                 .environment = {{"RANK", "0"}}, .nodelist = "nacc-b200-[25-536],edge-7"};
  std::string every_name;
  for (int i = 25; i <= 536; ++i) every_name += "nacc-b200-" + std::to_string(i) + ",";
  every_name += "edge-7";

  SyncReply to_new{.protocol = new_agent->protocol, .node = "nacc-b200-25"};
  to_new.assignments.push_back(gang_task);
  const std::string hostlist_reply = RenderSyncReply(to_new);
  EXPECT_THAT(hostlist_reply, HasSubstr(R"("nodelist":"nacc-b200-[25-536],edge-7")"));
  EXPECT_THAT(hostlist_reply, ::testing::Not(HasSubstr("nacc-b200-300")));
  StatusOr<SyncReply> read_new = ParseSyncReply(hostlist_reply);
  ASSERT_TRUE(read_new.ok()) << read_new.status().ToString();
  EXPECT_THAT(read_new->assignments[0].MergedEnvironment(),
              ElementsAre(Pair("ALLOT_JOB_ID", "9"), Pair("ALLOT_NODELIST", every_name), Pair("RANK", "0")));

  SyncReply to_old{.protocol = old_agent->protocol, .node = "nacc-b200-25"};
  to_old.assignments.push_back(gang_task);
  const std::string names_reply = RenderSyncReply(to_old);
  EXPECT_THAT(names_reply, ::testing::Not(HasSubstr("\"nodelist\"")));
  EXPECT_GT(names_reply.size(), hostlist_reply.size() + 6000);  // 512 names, 14-15 characters each
  StatusOr<SyncReply> read_old = ParseSyncReply(names_reply);
  ASSERT_TRUE(read_old.ok());
  EXPECT_EQ(read_old->assignments[0].environment.at("ALLOT_NODELIST"), every_name);
  EXPECT_EQ(read_old->assignments[0].MergedEnvironment(), read_new->assignments[0].MergedEnvironment());

  // An agent newer than its server is told to upgrade the server first.
  StatusOr<AgentReport> newer = ParseAgentReport(R"({"protocol": 3})");
  ASSERT_FALSE(newer.ok());
  EXPECT_THAT(newer.status().message(), HasSubstr("upgrade the server"));
  EXPECT_FALSE(ParseAgentReport(R"({"protocol": 0})").ok());
  EXPECT_FALSE(ParseAgentReport(R"({"protocol": "2"})").ok());
}

// A newer server may add fields: they are skipped. A field of the wrong type is an error that
// names it, never a half-read reply.
TEST(AgentProtocolTest, AReplyWithUnknownFieldsIsReadAndAMalformedOneIsRefused) {
  StatusOr<SyncReply> newer = ParseSyncReply(
      R"({"node": "n", "heartbeat_seconds": 2, "lease": {"ttl": 3}, "assignments": [{"job": 1, "epoch": 1, "task": 0, "argv": ["true"], "priority_hint": 3}]})");
  ASSERT_TRUE(newer.ok()) << newer.status().ToString();
  ASSERT_EQ(newer->assignments.size(), 1u);
  EXPECT_THAT(newer->assignments[0].argv, ElementsAre("true"));
  EXPECT_EQ(newer->assignments[0].grace_seconds, 30);  // the default when absent

  StatusOr<SyncReply> bad = ParseSyncReply(R"({"assignments": [{"job": 1, "argv": "true"}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("argv"));
  EXPECT_FALSE(ParseSyncReply(R"({"kills": {}})").ok());
  EXPECT_FALSE(ParseSyncReply("not json").ok());
  EXPECT_FALSE(ParseSyncReply("[1]").ok());
}

}  // namespace
}  // namespace allot
