#include "api/submit_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kMiB = int64_t{1} << 20;

// Parses a script that must be valid; fails the test (and returns an empty request) otherwise.
SubmitRequest MustParse(const std::string& text, const std::string& source = "job.sh") {
  StatusOr<SubmitRequest> parsed = ParseSubmitFile(text, source);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? *parsed : SubmitRequest{};
}

// Parses a script that must be rejected as invalid, and returns the message.
std::string MustFail(const std::string& text, const std::string& source = "job.sh") {
  StatusOr<SubmitRequest> parsed = ParseSubmitFile(text, source);
  EXPECT_FALSE(parsed.ok()) << "parsed, but should not have:\n" << text;
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << parsed.status().ToString();
  return parsed.status().message();
}

// A script with the given #SBATCH lines and one command.
std::string Script(const std::vector<std::string>& directives) {
  std::string text = "#!/bin/bash\n";
  for (const std::string& directive : directives) text += "#SBATCH " + directive + "\n";
  return text + "srun hostname\n";
}

TEST(ParseBatchScriptTest, MultiNodeDistributedTrainingKeepsFourNodesOfEight) {
  const std::string text = R"(#!/bin/bash
#SBATCH --job-name=llama-ddp
#SBATCH --account=sfm-pretrain
#SBATCH --partition=nacc-h200,kt-cloud-h200
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=12
#SBATCH --mem=1500G
#SBATCH --time=2-00:00:00
#SBATCH --qos=normal
#SBATCH --array=0-3%2
#SBATCH --dependency=afterok:41
#SBATCH -o logs/%x-%A_%a.out
#SBATCH -e logs/%x-%A_%a.err
#SBATCH --exclusive
#SBATCH --no-requeue

module load cuda/12.4
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun python -m torch.distributed.run --nnodes=4 --nproc_per_node=8 train.py
)";
  SubmitRequest request = MustParse(text, "ddp.sh");
  const JobSpec& spec = request.spec;
  EXPECT_EQ(spec.name, "llama-ddp");
  EXPECT_EQ(spec.account, "sfm-pretrain");
  EXPECT_THAT(spec.pools, ElementsAre("nacc-h200", "kt-cloud-h200"));
  EXPECT_EQ(spec.tasks, 4);
  EXPECT_EQ(spec.gpus_per_task, 8);
  EXPECT_EQ(request.processes_per_task, 8);
  EXPECT_EQ(spec.cpus_per_task, 8 * 12);
  EXPECT_EQ(spec.memory_per_task, 1500 * kGiB);
  EXPECT_EQ(spec.gpu_model, "");
  EXPECT_EQ(spec.time_limit, 2 * 86400);
  EXPECT_EQ(spec.priority_class, "normal");
  EXPECT_FALSE(spec.requeue);
  EXPECT_EQ(spec.kind, JobKind::kBatch);
  EXPECT_THAT(spec.command, IsEmpty());
  ASSERT_TRUE(request.array.has_value());
  EXPECT_THAT(request.array->indexes, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(request.array->max_concurrent, 2);
  EXPECT_THAT(request.dependencies, ElementsAre(Dependency{DependencyType::kAfterOk, 41}));
  EXPECT_EQ(request.output, "logs/%x-%A_%a.out");
  EXPECT_EQ(request.error, "logs/%x-%A_%a.err");
  EXPECT_TRUE(request.exclusive);
  EXPECT_EQ(request.script, text);
}

TEST(ParseBatchScriptTest, SingleGpuNotebookJob) {
  SubmitRequest request = MustParse(R"(#!/usr/bin/env bash
# Jupyter on one GPU for an afternoon.
#SBATCH -J notebook
#SBATCH -A lab-vision
#SBATCH -p nacc-l40s
#SBATCH --gres=gpu:l40s:1
#SBATCH -c 8
#SBATCH --mem=64G
#SBATCH -t 04:00:00
#SBATCH -D /home/kim/notebooks

jupyter lab --no-browser --port=8888
)");
  const JobSpec& spec = request.spec;
  EXPECT_EQ(spec.name, "notebook");
  EXPECT_EQ(spec.account, "lab-vision");
  EXPECT_THAT(spec.pools, ElementsAre("nacc-l40s"));
  EXPECT_EQ(spec.tasks, 1);
  EXPECT_EQ(spec.gpus_per_task, 1);
  EXPECT_EQ(spec.gpu_model, "l40s");  // as written: the scheduler compares model names exactly
  EXPECT_EQ(spec.cpus_per_task, 8);
  EXPECT_EQ(spec.memory_per_task, 64 * kGiB);
  EXPECT_EQ(spec.time_limit, 4 * 3600);
  EXPECT_TRUE(spec.requeue);
  EXPECT_EQ(request.processes_per_task, 1);
  EXPECT_EQ(request.chdir, "/home/kim/notebooks");
  EXPECT_FALSE(request.array.has_value());
  EXPECT_THAT(request.dependencies, IsEmpty());
  EXPECT_FALSE(request.exclusive);
}

TEST(ParseBatchScriptTest, HtcondorStyleJobWithMemoryPerGpu) {
  // Many small independent tasks, each asking per task and per GPU, as HTCondor users think.
  SubmitRequest request = MustParse(R"(#!/bin/bash
#SBATCH --account physics-htc
#SBATCH --ntasks 16
#SBATCH --gpus-per-task a100:2
#SBATCH --cpus-per-task 4
#SBATCH --mem-per-gpu 40G
#SBATCH --time 90
#SBATCH --requeue
#SBATCH --dependency afterany:7:8,afternotok:9,singleton
srun ./run_shard.sh "$SLURM_PROCID"
)");
  const JobSpec& spec = request.spec;
  EXPECT_EQ(spec.account, "physics-htc");
  EXPECT_EQ(spec.tasks, 16);
  EXPECT_EQ(spec.gpus_per_task, 2);
  EXPECT_EQ(spec.gpu_model, "a100");
  EXPECT_EQ(spec.cpus_per_task, 4);
  EXPECT_EQ(spec.memory_per_task, 80 * kGiB);  // 2 GPUs x 40G
  EXPECT_EQ(spec.time_limit, 90 * 60);         // a bare --time is minutes
  EXPECT_TRUE(spec.requeue);
  EXPECT_EQ(request.processes_per_task, 1);
  EXPECT_THAT(request.dependencies, ElementsAre(Dependency{DependencyType::kAfterAny, 7},
                                                Dependency{DependencyType::kAfterAny, 8},
                                                Dependency{DependencyType::kAfterNotOk, 9},
                                                Dependency{DependencyType::kSingleton, 0}));
}

TEST(ParseBatchScriptTest, ArrayWithStepsAndShortForms) {
  SubmitRequest request = MustParse(Script({"-a 0-15:4,20,30-32", "-Jsweep", "-G2", "-t30:00"}));
  ASSERT_TRUE(request.array.has_value());
  EXPECT_THAT(request.array->indexes, ElementsAre(0, 4, 8, 12, 20, 30, 31, 32));
  EXPECT_EQ(request.array->max_concurrent, 0);
  EXPECT_EQ(request.spec.name, "sweep");
  EXPECT_EQ(request.spec.gpus_per_task, 2);
  EXPECT_EQ(request.spec.time_limit, 30 * 60);
}

TEST(ParseBatchScriptTest, SeveralOptionsOnALineQuotesAndTrailingComments) {
  SubmitRequest request = MustParse(Script({"-N 2 --gpus-per-node=h200:4   # two half nodes",
                                            "--job-name \"my run\"", "--output='out dir/%j.log'"}));
  EXPECT_EQ(request.spec.tasks, 2);
  EXPECT_EQ(request.spec.gpus_per_task, 4);
  EXPECT_EQ(request.spec.gpu_model, "h200");
  EXPECT_EQ(request.spec.name, "my run");
  EXPECT_EQ(request.output, "out dir/%j.log");
}

TEST(ParseBatchScriptTest, LastRepeatedOptionWins) {
  SubmitRequest request =
      MustParse(Script({"--time=1:00:00", "--time=2:00:00", "--requeue", "--no-requeue"}));
  EXPECT_EQ(request.spec.time_limit, 2 * 3600);
  EXPECT_FALSE(request.spec.requeue);
}

TEST(ParseBatchScriptTest, DirectivesAfterTheFirstCommandAreIgnoredAsSbatchDoes) {
  SubmitRequest request = MustParse(R"(#!/bin/bash
#SBATCH --gpus=4

  # an indented comment still belongs to the header
#SBATCH --time=10
echo start
#SBATCH --gpus=8
#SBATCH --no-such-option
)");
  EXPECT_EQ(request.spec.gpus_per_task, 4);
  EXPECT_EQ(request.spec.time_limit, 600);
  EXPECT_TRUE(request.spec.requeue);
}

TEST(ParseBatchScriptTest, CommentedOutDirectivesAreComments) {
  SubmitRequest request = MustParse("#!/bin/bash\n#SBATCH --gpus=2\n##SBATCH --gpus=8\nhostname\n");
  EXPECT_EQ(request.spec.gpus_per_task, 2);
  request = MustParse("#!/bin/bash\n##SBATCH --no-such-option\n# SBATCH --gpus=8\nhostname\n");
  EXPECT_EQ(request.spec.gpus_per_task, 1);
}

TEST(ParseBatchScriptTest, NoResourceOptionsMeansOneTaskOfOneGpu) {
  SubmitRequest request = MustParse("#!/bin/sh\necho hi\n");
  EXPECT_EQ(request.spec.tasks, 1);
  EXPECT_EQ(request.spec.gpus_per_task, 1);
  EXPECT_EQ(request.spec.cpus_per_task, 0);
  EXPECT_EQ(request.spec.memory_per_task, 0);
  EXPECT_EQ(request.spec.time_limit, 0);
  EXPECT_EQ(request.script, "#!/bin/sh\necho hi\n");
}

TEST(ParseBatchScriptTest, TasksPerNodeFoldIntoOneAllotTaskPerNode) {
  // --ntasks with --gpus-per-task over --nodes: each node's share becomes one allot task.
  SubmitRequest request = MustParse(Script({"--nodes=2", "--ntasks=16", "--gpus-per-task=1",
                                            "--cpus-per-task=6", "--mem-per-cpu=8000"}));
  EXPECT_EQ(request.spec.tasks, 2);
  EXPECT_EQ(request.spec.gpus_per_task, 8);
  EXPECT_EQ(request.processes_per_task, 8);
  EXPECT_EQ(request.spec.cpus_per_task, 48);
  EXPECT_EQ(request.spec.memory_per_task, 48 * (8000 * kMiB));  // a bare size is MiB
  EXPECT_TRUE(request.spec.one_task_per_node);  // --nodes=2: two distinct nodes

  // --ntasks with --ntasks-per-node and no --nodes: the node count follows.
  request = MustParse(Script({"--ntasks=12", "--ntasks-per-node=4", "--gpus=24"}));
  EXPECT_EQ(request.spec.tasks, 3);
  EXPECT_EQ(request.spec.gpus_per_task, 8);
  EXPECT_EQ(request.processes_per_task, 4);
  EXPECT_TRUE(request.spec.one_task_per_node);

  // Slurm tasks without a node count may share nodes, as under Slurm.
  request = MustParse(Script({"--ntasks=4", "--gpus-per-task=1"}));
  EXPECT_EQ(request.spec.tasks, 4);
  EXPECT_FALSE(request.spec.one_task_per_node);

  // --mem-per-cpu without --cpus-per-task counts one CPU per Slurm task.
  request = MustParse(Script({"--nodes=1", "--ntasks-per-node=4", "--mem-per-cpu=2G"}));
  EXPECT_EQ(request.spec.memory_per_task, 8 * kGiB);  // 4 Slurm tasks x 1 CPU x 2G
  EXPECT_EQ(request.spec.cpus_per_task, 0);
}

TEST(ParseBatchScriptTest, AgreeingGpuOptionsAreAccepted) {
  SubmitRequest request =
      MustParse(Script({"--nodes=4", "--gres=gpu:h100:8", "--gpus-per-node=8", "--gpus=h100:32"}));
  EXPECT_EQ(request.spec.tasks, 4);
  EXPECT_EQ(request.spec.gpus_per_task, 8);
  EXPECT_EQ(request.spec.gpu_model, "h100");
  request = MustParse(Script({"--nodes=4-4", "--gres=gpu"}));
  EXPECT_EQ(request.spec.tasks, 4);
  EXPECT_EQ(request.spec.gpus_per_task, 1);
}

TEST(ParseBatchScriptTest, UnknownOptionNamesItsLineAndTheSupportedOptions) {
  std::string message = MustFail("#!/bin/bash\n#SBATCH --nodes=1\n\n#SBATCH --foo=3\nhostname\n");
  EXPECT_THAT(message, StartsWith("job.sh:4: unknown #SBATCH option '--foo'; allot supports: "));
  EXPECT_THAT(message, HasSubstr("--job-name/-J"));
  EXPECT_THAT(message, HasSubstr("--mem-per-gpu"));
  EXPECT_THAT(MustFail(Script({"-x 3"})), StartsWith("job.sh:2: unknown #SBATCH option '-x'"));
  EXPECT_THAT(MustFail(Script({"gpus=4"})), StartsWith("job.sh:2: 'gpus=4' is not an option"));
}

TEST(ParseBatchScriptTest, MalformedValuesNameTheOptionAndWhatIsExpected) {
  EXPECT_THAT(MustFail(Script({"--nodes=1", "--time=\"1 hour\""})),
              StartsWith("job.sh:3: --time: '1 hour' is not a time limit"));
  EXPECT_THAT(MustFail(Script({"--time=soon"})),
              HasSubstr("job.sh:2: --time: 'soon' is not a time limit; write minutes (90), "
                        "HH:MM:SS (01:30:00) or D-HH:MM:SS (2-00:00:00)"));
  EXPECT_THAT(MustFail(Script({"--time=UNLIMITED"})), HasSubstr("allot jobs need a time limit"));
  EXPECT_THAT(MustFail(Script({"--time=0"})), HasSubstr("positive time limit"));
  EXPECT_THAT(MustFail(Script({"--nodes=four"})),
              StartsWith("job.sh:2: --nodes: 'four' is not a count"));
  EXPECT_THAT(MustFail(Script({"--nodes=2-4"})), HasSubstr("fixed number of nodes"));
  EXPECT_THAT(MustFail(Script({"--mem=lots"})),
              StartsWith("job.sh:2: --mem: 'lots' is not a memory size"));
  EXPECT_THAT(MustFail(Script({"--gres=nvme:1"})), HasSubstr("allot schedules GPUs only"));
  EXPECT_THAT(MustFail(Script({"--gpus=a100:2,v100:2"})), HasSubstr("one GPU model"));
  EXPECT_THAT(MustFail(Script({"--gres=gpu:0"})), HasSubstr("at least one"));
  EXPECT_THAT(MustFail(Script({"--time"})), StartsWith("job.sh:2: --time needs a value"));
  EXPECT_THAT(MustFail(Script({"--exclusive=user"})), HasSubstr("--exclusive takes no value"));
  EXPECT_THAT(MustFail(Script({"--job-name=\"unclosed"})), HasSubstr("quote is not closed"));
}

TEST(ParseBatchScriptTest, ContradictingGpuRequestsAreErrors) {
  EXPECT_EQ(MustFail(Script({"--gpus=10", "--nodes=3"})),
            "job.sh:2: --gpus=10 does not split evenly over 3 nodes; allot gives every node the "
            "same number of GPUs, so use a multiple of 3 or --gpus-per-node");
  EXPECT_EQ(MustFail(Script({"--nodes=2", "--gres=gpu:8", "--gpus-per-node=4"})),
            "job.sh:4: --gres=gpu:8 asks for 8 GPUs per node but --gpus-per-node=4 asks for 4 "
            "GPUs per node; make them agree or give only one");
  EXPECT_THAT(MustFail(Script({"--nodes=4", "--gres=gpu:8", "--gpus=16"})),
              HasSubstr("--gpus=16 over 4 nodes asks for 4 GPUs per node"));
  EXPECT_THAT(MustFail(Script({"--gres=gpu:h100:8", "--gpus-per-task=a100:8"})),
              HasSubstr("asks for GPU type 'h100' but --gpus-per-task=a100:8 for 'a100'"));
  EXPECT_THAT(MustFail(Script({"--gpus=32"})),
              HasSubstr("a node holds at most 16 GPUs; spread the job over more nodes, e.g. "
                        "--nodes=4 --gpus-per-node=8"));
  EXPECT_THAT(MustFail(Script({"--ntasks=4", "--gres=gpu:2"})),
              HasSubstr("--gres=gpu:2 counts GPUs per node, but with --ntasks=4 and no --nodes"));
}

TEST(ParseBatchScriptTest, ContradictingTaskAndMemoryRequestsAreErrors) {
  EXPECT_THAT(MustFail(Script({"--nodes=4", "--ntasks-per-node=2", "--ntasks=10"})),
              HasSubstr("--ntasks=10 contradicts --nodes=4 with --ntasks-per-node=2 (8 tasks)"));
  EXPECT_THAT(MustFail(Script({"--nodes=4", "--ntasks=6"})),
              HasSubstr("--ntasks=6 does not split evenly over 4 nodes"));
  EXPECT_THAT(MustFail(Script({"--mem=64G", "--mem-per-gpu=16G"})),
              StartsWith("job.sh:3: --mem=64G and --mem-per-gpu=16G exclude each other"));
  EXPECT_THAT(MustFail(Script({"--ntasks=8", "--mem=64G"})),
              HasSubstr("--mem=64G is memory per node, but with --ntasks=8 and no --nodes"));
}

TEST(ParseBatchScriptTest, ScriptShapeErrors) {
  EXPECT_EQ(MustFail("#SBATCH --gpus=1\nhostname\n"),
            "job.sh:1: a batch script must start with an interpreter line such as #!/bin/bash; "
            "allot runs the script with it");
  EXPECT_THAT(MustFail("#!/bin/bash\r\n#SBATCH --gpus=1\r\n"),
              StartsWith("job.sh:1: the script has Windows line endings"));
  StatusOr<SubmitRequest> empty = ParseBatchScript("", "job.sh");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("the file is empty"));
}

TEST(ParseArraySpecTest, ExpandsListsRangesAndSteps) {
  StatusOr<ArraySpec> array = ParseArraySpec("1,3,5-7");
  ASSERT_TRUE(array.ok()) << array.status().ToString();
  EXPECT_EQ(*array, (ArraySpec{{1, 3, 5, 6, 7}, 0}));
  array = ParseArraySpec("0-99%10");
  ASSERT_TRUE(array.ok()) << array.status().ToString();
  EXPECT_EQ(array->indexes.size(), 100u);
  EXPECT_EQ(array->indexes.back(), 99);
  EXPECT_EQ(array->max_concurrent, 10);
  array = ParseArraySpec("9,2-3,2");  // sorted and distinct
  ASSERT_TRUE(array.ok()) << array.status().ToString();
  EXPECT_THAT(array->indexes, ElementsAre(2, 3, 9));
  array = ParseArraySpec("0-99999");
  ASSERT_TRUE(array.ok()) << array.status().ToString();
  EXPECT_EQ(array->indexes.size(), 100000u);
}

TEST(ParseArraySpecTest, RejectsMalformedAndOversizedArrays) {
  for (const char* text : {"", "5-1", "1,,2", "a-b", "0-15:0", "3:2", "1-5%0", "1-5%", "-3",
                           "0-2147483648", "0-4000000000"}) {
    StatusOr<ArraySpec> array = ParseArraySpec(text);
    ASSERT_FALSE(array.ok()) << "'" << text << "' parsed";
    EXPECT_EQ(array.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(array.status().message(), HasSubstr("is not an array spec")) << text;
  }
  for (const char* text : {"0-100000", "0-2000000000:1", "0-60000,100000-160000"}) {
    StatusOr<ArraySpec> array = ParseArraySpec(text);
    ASSERT_FALSE(array.ok()) << "'" << text << "' parsed";
    EXPECT_THAT(array.status().message(), HasSubstr("has more than 100000 elements")) << text;
  }
  EXPECT_THAT(MustFail(Script({"--gpus=1", "--array=0-200000"})),
              StartsWith("job.sh:3: --array: '0-200000' has more than 100000 elements"));
}

TEST(ParseDependenciesTest, RejectsWhatAllotCannotWaitFor) {
  auto message = [](const char* text) {
    StatusOr<std::vector<Dependency>> parsed = ParseDependencies(text);
    EXPECT_FALSE(parsed.ok()) << text;
    return parsed.ok() ? std::string() : parsed.status().message();
  };
  EXPECT_THAT(message("afterok:1?afterok:2"), HasSubstr("'?' (any of)"));
  EXPECT_THAT(message("afterok:12,13"), HasSubstr("'13' has no dependency type"));
  EXPECT_THAT(message("aftercorr:12"), HasSubstr("not a dependency type allot supports"));
  EXPECT_THAT(message("afterok"), HasSubstr("names no job"));
  EXPECT_THAT(message("after:12+30"), HasSubstr("delays"));
  EXPECT_THAT(message("afterok:12_3"), HasSubstr("names an array element"));
  EXPECT_THAT(message("afterok:0"), HasSubstr("is not a job id"));
  EXPECT_THAT(message("singleton:4"), HasSubstr("singleton names no jobs"));
  EXPECT_THAT(MustFail(Script({"-d afterok:x"})), StartsWith("job.sh:2: --dependency: "));
}

TEST(ParseSubmitFileTest, YamlJobSpecsGoThroughTheConfigReader) {
  SubmitRequest request = MustParse(R"(name: pretrain-70b
account: sfm-pretrain
tasks: 16
gpus_per_task: 8
gpu_model: B200
time_limit: 14d
command: [python, train.py]
)",
                                    "job.yaml");
  EXPECT_EQ(request.spec.name, "pretrain-70b");
  EXPECT_EQ(request.spec.tasks, 16);
  EXPECT_EQ(request.spec.gpus_per_task, 8);
  EXPECT_EQ(request.spec.gpu_model, "B200");
  EXPECT_EQ(request.spec.time_limit, 14 * 86400);
  EXPECT_THAT(request.spec.command, ElementsAre("python", "train.py"));
  EXPECT_THAT(request.script, IsEmpty());
  EXPECT_FALSE(request.array.has_value());


}

}  // namespace
}  // namespace allot

namespace allot {
namespace {

TEST(ParseBatchScriptTest, HoldAndMailOptionsOfRealScripts) {
  SubmitRequest request = MustParse(R"(#!/bin/bash
#SBATCH -J nightly-eval
#SBATCH --account=lab-a
#SBATCH --mail-type=END,FAIL
#SBATCH --mail-user=kim@example.org
#SBATCH --comment="weekly eval"
#SBATCH --open-mode=append
#SBATCH -H
python eval.py
)");
  EXPECT_TRUE(request.hold);
  EXPECT_EQ(request.spec.name, "nightly-eval");
  EXPECT_FALSE(MustParse(Script({"--account=lab"})).hold);
}

}  // namespace
}  // namespace allot
