#include "sim/trace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Fixture(const std::string& name) {
  return std::string(ALLOT_SOURCE_DIR) + "/tests/traces/" + name;
}

// Reads a trace that must read; fails the test (and returns an empty trace) otherwise.
Trace MustRead(const std::string& path, TraceFormat format, TraceReadOptions options = {}) {
  StatusOr<Trace> trace = ReadTrace(path, format, options);
  EXPECT_TRUE(trace.ok()) << path << ": " << trace.status().ToString();
  return trace.ok() ? std::move(*trace) : Trace{};
}

Trace MustParse(std::string_view text, TraceFormat format, TraceReadOptions options = {}) {
  StatusOr<Trace> trace = ParseTrace(text, "test", format, options);
  EXPECT_TRUE(trace.ok()) << trace.status().ToString();
  return trace.ok() ? std::move(*trace) : Trace{};
}

std::vector<JobId> Ids(const Trace& trace) {
  std::vector<JobId> ids;
  for (const TraceJob& job : trace.jobs) ids.push_back(job.id);
  return ids;
}

// ---- swf ----

TEST(SwfTest, MapsFieldsAndSortsBySubmitThenFileOrder) {
  Trace trace = MustRead(Fixture("tiny.swf"), TraceFormat::kSwf);
  EXPECT_EQ(trace.source, Fixture("tiny.swf"));
  EXPECT_EQ(trace.skipped, 0u);
  EXPECT_TRUE(trace.problems.empty());
  // Job 2 arrives first; jobs 1 and 3 both arrive at 10 and keep their file order.
  ASSERT_THAT(Ids(trace), ElementsAre(2, 1, 3, 4));

  const TraceJob& one = trace.jobs[1];
  EXPECT_EQ(one.submit, 10);
  EXPECT_EQ(one.runtime, 100);
  EXPECT_EQ(one.time_limit, 200);
  EXPECT_EQ(one.tasks, 4);
  EXPECT_EQ(one.gpus_per_task, 1);
  EXPECT_EQ(one.gpus(), 4);
  EXPECT_EQ(one.account, "user7");
  EXPECT_EQ(one.line, 5);
  EXPECT_EQ(one.priority_class, "");
  EXPECT_EQ(one.pool, "");
  EXPECT_EQ(one.cancel_after, -1);
}

TEST(SwfTest, UnknownAllocatedProcessorsAndRequestedTimeFallBack) {
  Trace trace = MustRead(Fixture("tiny.swf"), TraceFormat::kSwf);
  ASSERT_EQ(trace.jobs.size(), 4u);
  const TraceJob& two = trace.jobs[0];
  EXPECT_EQ(two.id, 2u);
  EXPECT_EQ(two.submit, 5);
  EXPECT_EQ(two.runtime, 50);
  EXPECT_EQ(two.tasks, 2);            // field 5 is -1: field 8's requested processors
  EXPECT_EQ(two.time_limit, 50);      // field 9 is -1: the run time
  EXPECT_EQ(two.account, "default");  // field 12 is -1
  EXPECT_EQ(two.line, 6);
}

TEST(SwfTest, FractionalTimesRoundToTheNearestSecond) {
  Trace trace = MustRead(Fixture("tiny.swf"), TraceFormat::kSwf);
  ASSERT_EQ(trace.jobs.size(), 4u);
  const TraceJob& three = trace.jobs[2];
  EXPECT_EQ(three.id, 3u);
  EXPECT_EQ(three.submit, 10);      // 10.4
  EXPECT_EQ(three.runtime, 13);     // 12.6
  EXPECT_EQ(three.time_limit, 31);  // 30.5
  EXPECT_EQ(three.tasks, 1);
}

TEST(SwfTest, AZeroRunTimeStillGetsAOneSecondLimit) {
  Trace trace = MustRead(Fixture("tiny.swf"), TraceFormat::kSwf);
  ASSERT_EQ(trace.jobs.size(), 4u);
  const TraceJob& four = trace.jobs[3];
  EXPECT_EQ(four.id, 4u);
  EXPECT_EQ(four.runtime, 0);
  EXPECT_EQ(four.time_limit, 1);
  EXPECT_EQ(four.tasks, 8);
  EXPECT_EQ(four.account, "user0");
}

TEST(SwfTest, ARequestedTimeOfZeroMeansUnknown) {
  Trace trace = MustParse("1 0 -1 300 2 -1 -1 2 0 -1 1 4 -1 -1 1 -1 -1 -1\n", TraceFormat::kSwf);
  ASSERT_EQ(trace.jobs.size(), 1u);
  EXPECT_EQ(trace.jobs[0].time_limit, 300);
}

TEST(SwfTest, SkipsBadLinesAndSaysWhereAndWhy) {
  Trace trace = MustRead(Fixture("bad.swf"), TraceFormat::kSwf);
  EXPECT_THAT(Ids(trace), ElementsAre(1, 8));
  EXPECT_EQ(trace.skipped, 6u);
  const std::string file = Fixture("bad.swf");
  EXPECT_THAT(
      trace.problems,
      ElementsAre(
          file + ":3: field 4 (run time) is -1; the job never ran, so it cannot be replayed",
          file + ":4: field 5 (allocated processors) is -3; it must be a whole number, at least 1",
          file + ":5: fields 5 and 8 (allocated and requested processors) are both -1; one of "
                 "them must give the job's size",
          file + ":6: has 5 fields; an SWF line has 18, separated by spaces",
          file + ":7: field 2 (submit time) is -5; it must be seconds since the start of the "
                 "trace, 0 or more",
          file + ":8: field 12 is 'abc', not a number; SWF fields are numbers (-1: unknown)"));
  EXPECT_EQ(trace.jobs[1].line, 9);
  EXPECT_EQ(trace.jobs[1].time_limit, 100);
}

TEST(SwfTest, StrictModeFailsAtTheFirstBadLine) {
  StatusOr<Trace> trace = ReadTrace(Fixture("bad.swf"), TraceFormat::kSwf, {.strict = true});
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(trace.status().message(),
            Fixture("bad.swf") +
                ":3: field 4 (run time) is -1; the job never ran, so it cannot be replayed");
}

TEST(SwfTest, RejectsFractionalProcessorsAndTooManyFields) {
  Trace trace = MustParse(
      "1 0 -1 10 2.5 -1 -1 2 -1 -1 1 1 -1 -1 1 -1 -1 -1\n"
      "2 0 -1 10 2.0 -1 -1 2 -1 -1 1 1 -1 -1 1 -1 -1 -1\n"
      "3 0 -1 10 2 -1 -1 2 -1 -1 1 1 -1 -1 1 -1 -1 -1 99\n",
      TraceFormat::kSwf);
  EXPECT_THAT(Ids(trace), ElementsAre(2));
  EXPECT_EQ(trace.jobs[0].tasks, 2);
  EXPECT_THAT(trace.problems,
              ElementsAre("test:1: field 5 (allocated processors) is 2.5; it must be a whole "
                          "number, at least 1",
                          "test:3: has 19 fields; an SWF line has 18, separated by spaces"));
}

TEST(SwfTest, ToleratesWindowsLineEndsTabsAndIndentedComments) {
  Trace trace = MustParse(
      "  ; indented comment\r\n"
      "\r\n"
      "\t7\t3\t-1\t60\t1\t-1\t-1\t1\t-1\t-1\t1\t2\t-1\t-1\t1\t-1\t-1\t-1\r\n",
      TraceFormat::kSwf);
  EXPECT_EQ(trace.skipped, 0u);
  ASSERT_EQ(trace.jobs.size(), 1u);
  EXPECT_EQ(trace.jobs[0].id, 7u);
  EXPECT_EQ(trace.jobs[0].submit, 3);
  EXPECT_EQ(trace.jobs[0].runtime, 60);
  EXPECT_EQ(trace.jobs[0].account, "user2");
  EXPECT_EQ(trace.jobs[0].line, 3);
}

TEST(SwfTest, KeepsTheFirstHundredProblemsButCountsThemAll) {
  std::string text;
  for (int i = 0; i < 150; ++i) text += "not an swf line\n";
  Trace trace = MustParse(text, TraceFormat::kSwf);
  EXPECT_TRUE(trace.jobs.empty());
  EXPECT_EQ(trace.skipped, 150u);
  ASSERT_EQ(trace.problems.size(), 100u);
  EXPECT_EQ(trace.problems.front(),
            "test:1: has 4 fields; an SWF line has 18, separated by spaces");
  EXPECT_EQ(trace.problems.back(),
            "test:100: has 4 fields; an SWF line has 18, separated by spaces");
}

TEST(SwfTest, ReadsTheLublinTraceWhole) {
  const std::string path = std::string(ALLOT_SOURCE_DIR) + "/../shared/traces/lublin_256.swf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not here";
  Trace trace = MustRead(path, TraceFormat::kSwf);
  EXPECT_EQ(trace.skipped, 0u) << (trace.problems.empty() ? "" : trace.problems.front());
  ASSERT_EQ(trace.jobs.size(), 10000u);

  const TraceJob& first = trace.jobs.front();
  EXPECT_EQ(first.id, 1u);
  EXPECT_EQ(first.submit, 5094);
  EXPECT_EQ(first.runtime, 12072);
  EXPECT_EQ(first.time_limit, 12072);
  EXPECT_EQ(first.tasks, 16);
  EXPECT_EQ(first.account, "default");
  const TraceJob& last = trace.jobs.back();
  EXPECT_EQ(last.id, 10000u);
  EXPECT_EQ(last.submit, 7711701);
  EXPECT_EQ(last.runtime, 13929);
  EXPECT_EQ(last.tasks, 3);

  int64_t gpu_seconds = 0;
  int max_tasks = 0;
  for (const TraceJob& job : trace.jobs) {
    gpu_seconds += job.runtime * job.gpus();
    max_tasks = std::max(max_tasks, job.tasks);
  }
  EXPECT_EQ(gpu_seconds, 2092781168);  // summed with awk over fields 4 x 5
  EXPECT_EQ(max_tasks, 256);
}

// ---- philly ----

TEST(PhillyTest, MapsRowsRelativeToTheEarliestTimestamp) {
  Trace trace = MustRead(Fixture("tiny_philly.csv"), TraceFormat::kPhilly);
  // Row 3 is the earliest, on the last day of September; the others follow across the month.
  ASSERT_THAT(Ids(trace), ElementsAre(3, 2, 1, 4));

  const TraceJob& three = trace.jobs[0];
  EXPECT_EQ(three.submit, 0);
  EXPECT_EQ(three.runtime, 1);  // 0.6
  EXPECT_EQ(three.time_limit, 1);
  EXPECT_EQ(three.tasks, 12);  // 12 GPUs do not fill whole 8-GPU nodes: 1-GPU tasks
  EXPECT_EQ(three.gpus_per_task, 1);
  EXPECT_EQ(three.account, "6c71a0");
  EXPECT_EQ(three.line, 4);

  const TraceJob& two = trace.jobs[1];
  EXPECT_EQ(two.submit, 8 * 86400 + 6 * 3600 + 13 * 60 + 4);
  EXPECT_EQ(two.runtime, 2951);
  EXPECT_EQ(two.time_limit, 2951);
  EXPECT_EQ(two.tasks, 2);
  EXPECT_EQ(two.gpus_per_task, 8);
  EXPECT_EQ(two.account, "6214e9");

  const TraceJob& one = trace.jobs[2];
  EXPECT_EQ(one.submit, 8 * 86400 + 7 * 3600 + 1 * 60 + 56);
  EXPECT_EQ(one.runtime, 66);
  EXPECT_EQ(one.tasks, 1);
  EXPECT_EQ(one.gpus_per_task, 1);
  EXPECT_EQ(one.account, "11cb48");

  const TraceJob& four = trace.jobs[3];
  EXPECT_EQ(four.submit, one.submit);
  EXPECT_EQ(four.runtime, 11);  // 10.5 rounds away from zero
  EXPECT_EQ(four.tasks, 1);
  EXPECT_EQ(four.gpus_per_task, 8);
}

TEST(PhillyTest, SkipsAJobOfNoGpus) {
  Trace trace = MustRead(Fixture("tiny_philly.csv"), TraceFormat::kPhilly);
  EXPECT_EQ(trace.skipped, 1u);
  EXPECT_THAT(trace.problems,
              ElementsAre(Fixture("tiny_philly.csv") +
                          ":6: num_gpus is 0; a job needs a whole number of GPUs, at least 1"));
}

TEST(PhillyTest, GpusPerNodeDecidesTheSplit) {
  Trace trace = MustRead(Fixture("tiny_philly.csv"), TraceFormat::kPhilly, {.gpus_per_node = 4});
  ASSERT_EQ(trace.jobs.size(), 4u);
  EXPECT_EQ(trace.jobs[0].tasks, 3);  // 12 GPUs: 3 x 4
  EXPECT_EQ(trace.jobs[0].gpus_per_task, 4);
  EXPECT_EQ(trace.jobs[1].tasks, 4);  // 16 GPUs: 4 x 4
  EXPECT_EQ(trace.jobs[1].gpus_per_task, 4);
}

TEST(PhillyTest, BadRowsSayWhatIsWrong) {
  Trace trace = MustParse(
      "timestamp,duration,num_gpus,gpu_time,cluster\n"
      "2017-02-30 00:00:00,10.0,1,10.0,aa\n"
      "2017-10-09 7:01:55,10.0,1,10.0,aa\n"
      "2017-10-09 07:01:55,-3.0,1,-3.0,aa\n"
      "2017-10-09 07:01:55,10.0,1,10.0\n"
      "2017-10-09 07:01:55,10.0,1,10.0,\n"
      "2017-10-09 07:01:55,10.0,1,10.0,bb\n",
      TraceFormat::kPhilly);
  EXPECT_THAT(Ids(trace), ElementsAre(6));
  EXPECT_EQ(trace.jobs[0].submit, 0);
  EXPECT_THAT(
      trace.problems,
      ElementsAre(
          "test:2: timestamp is '2017-02-30 00:00:00'; write it as YYYY-MM-DD HH:MM:SS (UTC)",
          "test:3: timestamp is '2017-10-09 7:01:55'; write it as YYYY-MM-DD HH:MM:SS (UTC)",
          "test:4: duration is '-3.0'; it must be seconds, 0 or more",
          "test:5: has 4 cells; a philly row has 5: timestamp,duration,num_gpus,gpu_time,cluster",
          "test:6: cluster is empty; it names the job's virtual cluster, its account"));
}

TEST(PhillyTest, AnotherHeaderIsAnErrorEvenWhenNotStrict) {
  StatusOr<Trace> trace =
      ParseTrace("submit_time,duration,gpus,account\n0,1,1,a\n", "x.csv", TraceFormat::kPhilly, {});
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(trace.status().message(),
            "x.csv:1: the header is 'submit_time,duration,gpus,account'; a philly trace starts "
            "with 'timestamp,duration,num_gpus,gpu_time,cluster' (for other columns use the csv "
            "format)");
}

TEST(PhillyTest, ReadsThePhillyTraceWhole) {
  const std::string path = std::string(ALLOT_SOURCE_DIR) + "/../shared/traces/philly.csv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not here";
  Trace trace = MustRead(path, TraceFormat::kPhilly);
  EXPECT_EQ(trace.skipped, 0u) << (trace.problems.empty() ? "" : trace.problems.front());
  ASSERT_EQ(trace.jobs.size(), 82247u);

  // Expected values computed with Python's csv and datetime modules.
  const TraceJob& first = trace.jobs.front();  // 2017-09-04 10:30:41
  EXPECT_EQ(first.id, 31567u);
  EXPECT_EQ(first.line, 31568);
  EXPECT_EQ(first.submit, 0);
  EXPECT_EQ(first.runtime, 2240194);
  EXPECT_EQ(first.tasks, 1);
  EXPECT_EQ(first.gpus_per_task, 8);
  EXPECT_EQ(first.account, "7f04ca");
  const TraceJob& last = trace.jobs.back();  // 2017-12-22 08:02:11
  EXPECT_EQ(last.id, 62254u);
  EXPECT_EQ(last.submit, 9408690);

  int64_t gpus = 0;
  int64_t runtime = 0;
  for (const TraceJob& job : trace.jobs) {
    gpus += job.gpus();
    runtime += job.runtime;
  }
  EXPECT_EQ(gpus, 107235);
  EXPECT_EQ(runtime, 1080390950);
}

// ---- csv ----

TEST(CsvTest, MapsColumnsInAnyOrder) {
  Trace trace = MustRead(Fixture("tiny.csv"), TraceFormat::kCsv);
  EXPECT_EQ(trace.skipped, 0u);
  ASSERT_THAT(Ids(trace), ElementsAre(1, 4, 3, 2));

  const TraceJob& one = trace.jobs[0];
  EXPECT_EQ(one.submit, 0);
  EXPECT_EQ(one.runtime, 3600);
  EXPECT_EQ(one.time_limit, 7200);  // "2h"
  EXPECT_EQ(one.tasks, 2);          // gpus_per_task 8
  EXPECT_EQ(one.gpus_per_task, 8);
  EXPECT_EQ(one.account, "lab-a");
  EXPECT_EQ(one.priority_class, "high");
  EXPECT_EQ(one.pool, "nacc-b200");
  EXPECT_EQ(one.cancel_after, -1);  // empty cell: not given
  EXPECT_EQ(one.line, 2);
}

TEST(CsvTest, DurationStringsAndDefaults) {
  Trace trace = MustRead(Fixture("tiny.csv"), TraceFormat::kCsv);
  ASSERT_EQ(trace.jobs.size(), 4u);

  const TraceJob& two = trace.jobs[3];
  EXPECT_EQ(two.submit, 5400);      // "90m"
  EXPECT_EQ(two.runtime, 5400);     // "1h30m"
  EXPECT_EQ(two.time_limit, 5400);  // not given: the duration
  EXPECT_EQ(two.tasks, 12);         // no gpus_per_task: SplitGpus(12, 8)
  EXPECT_EQ(two.gpus_per_task, 1);
  EXPECT_EQ(two.priority_class, "");
  EXPECT_EQ(two.pool, "");
  EXPECT_EQ(two.cancel_after, 600);

  const TraceJob& three = trace.jobs[2];
  EXPECT_EQ(three.submit, 30);   // 30.4
  EXPECT_EQ(three.runtime, 13);  // 12.5
  EXPECT_EQ(three.time_limit, 13);
  EXPECT_EQ(three.tasks, 1);
  EXPECT_EQ(three.gpus_per_task, 1);

  const TraceJob& four = trace.jobs[1];
  EXPECT_EQ(four.submit, 10);
  EXPECT_EQ(four.runtime, 100);
  EXPECT_EQ(four.time_limit, 50);  // shorter than the run: the job will be killed at 50
  EXPECT_EQ(four.tasks, 3);
  EXPECT_EQ(four.gpus_per_task, 1);
}

TEST(CsvTest, SkipsBadRowsAndSaysWhereAndWhy) {
  Trace trace = MustRead(Fixture("bad.csv"), TraceFormat::kCsv);
  EXPECT_THAT(Ids(trace), ElementsAre(1, 7));  // ids count every data row, good or bad
  EXPECT_EQ(trace.jobs[1].line, 8);
  EXPECT_EQ(trace.jobs[1].account, "lab-b");
  EXPECT_EQ(trace.skipped, 5u);
  const std::string file = Fixture("bad.csv");
  EXPECT_THAT(
      trace.problems,
      ElementsAre(file + ":3: column 'gpus' is '0'; it must be a whole number, at least 1",
                  file + ":4: column 'duration' is 'abc'; write seconds (3600, 12.5) or a duration "
                         "(90m, 1h30m), 0 or more",
                  file + ":5: has 3 cells; the header names 4 columns",
                  file + ":6: column 'account' is empty; every row needs it",
                  file +
                      ":7: column 'submit_time' is '-5'; write seconds (3600, 12.5) or a duration "
                      "(90m, 1h30m), 0 or more"));
}

TEST(CsvTest, StrictModeFailsAtTheFirstBadRow) {
  StatusOr<Trace> trace = ReadTrace(Fixture("bad.csv"), TraceFormat::kCsv, {.strict = true});
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(trace.status().message(),
            Fixture("bad.csv") + ":3: column 'gpus' is '0'; it must be a whole number, at least 1");
}

TEST(CsvTest, GpusMustBeAMultipleOfGpusPerTask) {
  Trace trace = MustParse(
      "submit_time,duration,gpus,account,gpus_per_task\n"
      "0,10,12,a,8\n"
      "0,10,24,a,8\n",
      TraceFormat::kCsv);
  ASSERT_EQ(trace.jobs.size(), 1u);
  EXPECT_EQ(trace.jobs[0].tasks, 3);
  EXPECT_EQ(trace.jobs[0].gpus_per_task, 8);
  EXPECT_THAT(trace.problems,
              ElementsAre("test:2: gpus is 12, not a multiple of gpus_per_task 8; a job is tasks "
                          "x gpus_per_task GPUs"));
}

TEST(CsvTest, ATimeLimitMustBeAtLeastOneSecond) {
  Trace trace = MustParse(
      "submit_time,duration,gpus,account,time_limit\n"
      "0,0,1,a,0\n"
      "0,0,1,a,\n",
      TraceFormat::kCsv);
  ASSERT_EQ(trace.jobs.size(), 1u);
  EXPECT_EQ(trace.jobs[0].time_limit, 1);  // not given, duration 0: at least a second
  EXPECT_THAT(trace.problems,
              ElementsAre("test:2: column 'time_limit' is '0'; it must be at least 1 second"));
}

TEST(CsvTest, ToleratesSpacesAByteOrderMarkAndWindowsLineEnds) {
  Trace trace = MustParse(
      "\xEF\xBB\xBFsubmit_time, duration, gpus, account\r\n"
      "5, 1h, 8, lab-a\r\n",
      TraceFormat::kCsv);
  EXPECT_EQ(trace.skipped, 0u);
  ASSERT_EQ(trace.jobs.size(), 1u);
  EXPECT_EQ(trace.jobs[0].submit, 5);
  EXPECT_EQ(trace.jobs[0].runtime, 3600);
  EXPECT_EQ(trace.jobs[0].tasks, 1);
  EXPECT_EQ(trace.jobs[0].gpus_per_task, 8);
  EXPECT_EQ(trace.jobs[0].account, "lab-a");
}

TEST(CsvTest, AnUnknownColumnFailsTheWholeFile) {
  StatusOr<Trace> trace =
      ParseTrace("submit_time,duration,gpu,account\n0,1,1,a\n", "jobs.csv", TraceFormat::kCsv, {});
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(trace.status().message(),
            "jobs.csv:1: unknown column 'gpu'; the first line must name the columns, from: "
            "submit_time, duration, gpus, account (required) and time_limit, priority, "
            "gpus_per_task, pool, cancel_after (optional)");
}

TEST(CsvTest, AMissingOrRepeatedColumnFailsTheWholeFile) {
  StatusOr<Trace> missing =
      ParseTrace("\nsubmit_time,duration,gpus\n0,1,1\n", "jobs.csv", TraceFormat::kCsv, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "jobs.csv:2: the header has no 'account' column; a csv trace needs submit_time, "
            "duration, gpus, account");

  StatusOr<Trace> repeated =
      ParseTrace("submit_time,duration,gpus,account,gpus\n", "jobs.csv", TraceFormat::kCsv, {});
  ASSERT_FALSE(repeated.ok());
  EXPECT_EQ(repeated.status().message(), "jobs.csv:1: column 'gpus' appears twice");
}

// ---- all formats ----

TEST(TraceTest, AnEmptyTraceHasNoJobs) {
  for (TraceFormat format : {TraceFormat::kSwf, TraceFormat::kPhilly, TraceFormat::kCsv}) {
    Trace trace = MustParse("", format);
    EXPECT_TRUE(trace.jobs.empty()) << TraceFormatName(format);
    EXPECT_EQ(trace.skipped, 0u);
  }
  EXPECT_TRUE(MustParse("; only a header\n", TraceFormat::kSwf).jobs.empty());
  EXPECT_TRUE(MustParse("submit_time,duration,gpus,account\n", TraceFormat::kCsv).jobs.empty());
}

TEST(TraceTest, AMissingFileIsNotFound) {
  StatusOr<Trace> trace = ReadTrace("/no/such/trace.swf", TraceFormat::kSwf, {});
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(trace.status().message(),
            "cannot open trace '/no/such/trace.swf': No such file or directory");
}

TEST(TraceTest, TheNationalWorkloadIsNotRead) {
  StatusOr<Trace> read = ReadTrace("national.yaml", TraceFormat::kNational, {});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("the national workload is generated, not read"));
  StatusOr<Trace> parsed = ParseTrace("", "x", TraceFormat::kNational, {});
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("the national workload is generated"));
}

TEST(TraceTest, GpusPerNodeMustBePositive) {
  StatusOr<Trace> trace = ParseTrace("", "x", TraceFormat::kCsv, {.gpus_per_node = 0});
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.status().message(), "gpus_per_node is 0; it must be at least 1");
}

TEST(SplitGpusTest, FitsOneNodeThenWholeNodesThenSingleGpus) {
  struct Case {
    int64_t gpus;
    int gpus_per_node;
    int tasks;
    int gpus_per_task;
  };
  for (const Case& c : std::vector<Case>{{1, 8, 1, 1},
                                         {8, 8, 1, 8},
                                         {3, 8, 1, 3},
                                         {16, 8, 2, 8},
                                         {128, 8, 16, 8},
                                         {12, 8, 12, 1},
                                         {12, 4, 3, 4},
                                         {5, 1, 5, 1}}) {
    int tasks = 0;
    int gpus_per_task = 0;
    SplitGpus(c.gpus, c.gpus_per_node, tasks, gpus_per_task);
    EXPECT_EQ(tasks, c.tasks) << c.gpus << " GPUs, " << c.gpus_per_node << " per node";
    EXPECT_EQ(gpus_per_task, c.gpus_per_task)
        << c.gpus << " GPUs, " << c.gpus_per_node << " per node";
  }
}

TEST(TraceFormatTest, NamesRoundTrip) {
  for (TraceFormat format :
       {TraceFormat::kSwf, TraceFormat::kPhilly, TraceFormat::kCsv, TraceFormat::kNational}) {
    StatusOr<TraceFormat> parsed = ParseTraceFormat(TraceFormatName(format));
    ASSERT_TRUE(parsed.ok()) << TraceFormatName(format);
    EXPECT_EQ(*parsed, format);
  }
  EXPECT_EQ(TraceFormatName(TraceFormat::kPhilly), "philly");
}

TEST(TraceFormatTest, UnknownNameListsTheValidOnes) {
  StatusOr<TraceFormat> format = ParseTraceFormat("gwf");
  ASSERT_FALSE(format.ok());
  EXPECT_EQ(format.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(format.status().message(),
            "unknown trace format 'gwf'; expected one of: swf, philly, csv, national");
}

StatusOr<TraceFormat> Guess(const std::string& path) { return GuessTraceFormat(path); }

TEST(GuessTraceFormatTest, FromTheNameAndACsvHeader) {
  EXPECT_EQ(*Guess("/anywhere/lublin_256.swf"), TraceFormat::kSwf);  // need not exist
  EXPECT_EQ(*Guess("RUN.SWF"), TraceFormat::kSwf);
  EXPECT_EQ(*Guess("national.yaml"), TraceFormat::kNational);
  EXPECT_EQ(*Guess("national.yml"), TraceFormat::kNational);
  EXPECT_EQ(*Guess(Fixture("tiny_philly.csv")), TraceFormat::kPhilly);
  EXPECT_EQ(*Guess(Fixture("tiny.csv")), TraceFormat::kCsv);
  EXPECT_EQ(*Guess(Fixture("bad.csv")), TraceFormat::kCsv);
}

TEST(GuessTraceFormatTest, UnknownExtensionAsksForFormat) {
  StatusOr<TraceFormat> format = Guess("jobs.txt");
  ASSERT_FALSE(format.ok());
  EXPECT_EQ(format.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(format.status().message(), HasSubstr("cannot tell the format of trace 'jobs.txt'"));
  EXPECT_THAT(format.status().message(), HasSubstr("pass --format"));
}

TEST(GuessTraceFormatTest, AMissingCsvIsNotFound) {
  StatusOr<TraceFormat> format = Guess("/no/such/jobs.csv");
  ASSERT_FALSE(format.ok());
  EXPECT_EQ(format.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(format.status().message(), HasSubstr("cannot open trace '/no/such/jobs.csv'"));
}

}  // namespace
}  // namespace allot
