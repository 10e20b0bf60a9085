// qllm bench through the real binary: every output format parses, the JSON carries
// llama-bench's field names, and --sweep benchmarks each level and leaves no temporary file.
// Tiny runs (stories260K, a few tokens, one or two repetitions): the numbers are only checked
// to be positive, never against a speed.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "support.h"

extern char** environ;

namespace qllm::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path stories() { return shared_dir() / "models/stories260K.gguf"; }

struct Outcome {
    int exit_code = -1;
    std::string out, err;
};

// Runs `qllm args...` with TMPDIR set to `tmpdir` when given; stdout and stderr go through
// files in `dir`.
Outcome run_qllm(const TempDir& dir, const std::vector<std::string>& args, const std::string& tmpdir = "") {
    const fs::path out_path = dir / "stdout", err_path = dir / "stderr";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        if (tmpdir.empty() || !std::string(*e).starts_with("TMPDIR=")) env.emplace_back(*e);
    }
    if (!tmpdir.empty()) env.push_back("TMPDIR=" + tmpdir);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> full = {QLLM_BINARY};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);

    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    Outcome o;
    if (rc != 0) {
        ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(rc);
        return o;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
    o.out = read_text(out_path);
    o.err = read_text(err_path);
    return o;
}

// `qllm bench` on stories260K with one thread and the given extra arguments.
Outcome bench_stories(const TempDir& dir, std::vector<std::string> extra) {
    std::vector<std::string> args = {"bench", "-m", stories().string(), "-t", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_qllm(dir, args);
}

// Parameters and bytes of a model's weights, as llama-bench counts them.
std::pair<uint64_t, uint64_t> weights_of(const fs::path& model) {
    uint64_t params = 0, bytes = 0;
    const gguf::File file(model.string());  // named: a temporary would die before the loop
    for (const auto& t : file.tensors()) {
        params += uint64_t(t.n_elements());
        bytes += t.size;
    }
    return {params, bytes};
}

TEST(Bench, JsonUsesLlamaBenchFieldNames) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    const Outcome o = bench_stories(dir, {"-p", "64", "-n", "16", "-r", "2", "-o", "json"});
    ASSERT_EQ(o.exit_code, 0) << o.err;
    json rows;
    ASSERT_NO_THROW(rows = json::parse(o.out)) << o.out;
    ASSERT_TRUE(rows.is_array());
    ASSERT_EQ(rows.size(), 2u) << o.out;
    EXPECT_EQ(rows[0]["test"], "pp64");
    EXPECT_EQ(rows[1]["test"], "tg16");
    const auto [params, bytes] = weights_of(stories());
    for (const auto& row : rows) {
        for (const char* key : {"model_filename", "model_type", "model_size", "model_n_params", "n_threads", "n_prompt",
                                "n_gen", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts",
                                "test", "type", "bpw", "isa"}) {
            EXPECT_TRUE(row.contains(key)) << "missing " << key << " in " << row.dump();
        }
        EXPECT_GT(row.value("avg_ts", 0.0), 0.0);
        EXPECT_GE(row.value("stddev_ts", -1.0), 0.0);
        EXPECT_EQ(row["samples_ts"].size(), 2u);
        EXPECT_EQ(row["samples_ns"].size(), 2u);
        EXPECT_EQ(row["model_n_params"], params);
        EXPECT_EQ(row["model_size"], bytes);
        EXPECT_EQ(row["n_threads"], 1);
        EXPECT_EQ(row["type"], "F32");
        EXPECT_DOUBLE_EQ(row.value("bpw", 0.0), 32.0);
        EXPECT_TRUE(row["model_type"].get<std::string>().starts_with("llama ")) << row["model_type"];
    }
    EXPECT_EQ(rows[0]["n_prompt"], 64);
    EXPECT_EQ(rows[0]["n_gen"], 0);
    EXPECT_EQ(rows[1]["n_prompt"], 0);
    EXPECT_EQ(rows[1]["n_gen"], 16);
    EXPECT_TRUE(rows[1].contains("weights_gbps")) << "generation is also reported as bandwidth";
    // ... against the bandwidth probed before each of its repetitions (the mean of the ratios).
    const double gbps = rows[1].value("weights_gbps", 0.0), probe = rows[1].value("machine_read_gbps", 0.0);
    EXPECT_GT(probe, 0.0);
    EXPECT_NEAR(rows[1].value("bandwidth_fraction", 0.0), gbps / probe, 0.5 * gbps / probe);
    EXPECT_FALSE(rows[0].contains("machine_read_gbps")) << "prompt rows are not judged against it";
}

TEST(Bench, JsonlIsOneObjectPerLine) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    const Outcome o = bench_stories(dir, {"-p", "16,32", "-n", "4", "-r", "1", "-o", "jsonl"});
    ASSERT_EQ(o.exit_code, 0) << o.err;
    const auto lines = lines_of(o.out);
    ASSERT_EQ(lines.size(), 3u) << o.out;
    std::vector<std::string> tests;
    for (const auto& line : lines) {
        json row;
        ASSERT_NO_THROW(row = json::parse(line)) << line;
        ASSERT_TRUE(row.is_object()) << line;
        tests.push_back(row.value("test", ""));
        EXPECT_GT(row.value("avg_ts", 0.0), 0.0) << line;
    }
    EXPECT_EQ(tests, (std::vector<std::string>{"pp16", "pp32", "tg4"}));
}

// -d: each test after that many tokens are in the cache, named as llama-bench names it.
TEST(Bench, DepthRunsEachTestAfterACachedPrefix) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    const Outcome o = bench_stories(dir, {"-p", "8", "-n", "4", "-d", "0,16", "-r", "1", "-o", "jsonl"});
    ASSERT_EQ(o.exit_code, 0) << o.err;
    std::vector<std::string> tests;
    std::vector<int> depths;
    for (const auto& line : lines_of(o.out)) {
        const json row = json::parse(line);
        tests.push_back(row.value("test", ""));
        depths.push_back(row.value("n_depth", -1));
    }
    EXPECT_EQ(tests, (std::vector<std::string>{"pp8", "tg4", "pp8 @ d16", "tg4 @ d16"}));
    EXPECT_EQ(depths, (std::vector<int>{0, 0, 16, 16}));
    const Outcome bad = bench_stories(dir, {"-p", "8", "-n", "0", "-d", "x", "-r", "1"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.err.find("-d: 'x' is not a non-negative integer"), std::string::npos) << bad.err;
}

// Splits one CSV line whose cells may be quoted (with "" for a quote inside).
std::vector<std::string> csv_cells(const std::string& line) {
    std::vector<std::string> cells(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
            cells.back() += '"';
            ++i;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (c == ',' && !quoted) {
            cells.emplace_back();
        } else {
            cells.back() += c;
        }
    }
    EXPECT_FALSE(quoted) << "unterminated quote in " << line;
    return cells;
}

TEST(Bench, CsvRowsMatchTheHeader) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    const Outcome o = bench_stories(dir, {"-p", "16", "-n", "4", "-r", "2", "-o", "csv"});
    ASSERT_EQ(o.exit_code, 0) << o.err;
    const auto lines = lines_of(o.out);
    ASSERT_EQ(lines.size(), 3u) << o.out;
    const auto header = csv_cells(lines[0]);
    const auto avg_ts = std::find(header.begin(), header.end(), "avg_ts");
    const auto test = std::find(header.begin(), header.end(), "test");
    ASSERT_NE(avg_ts, header.end()) << lines[0];
    ASSERT_NE(test, header.end()) << lines[0];
    std::vector<std::string> tests;
    for (size_t i = 1; i < lines.size(); ++i) {
        const auto cells = csv_cells(lines[i]);
        ASSERT_EQ(cells.size(), header.size()) << lines[i];
        EXPECT_GT(std::stod(cells[size_t(avg_ts - header.begin())]), 0.0) << lines[i];
        tests.push_back(cells[size_t(test - header.begin())]);
    }
    EXPECT_EQ(tests, (std::vector<std::string>{"pp16", "tg4"}));
}

// The '|' that separate cells: not those escaped as "\|" inside one.
size_t cell_separators(const std::string& line) {
    size_t n = 0;
    for (size_t i = 0; i < line.size(); ++i) n += line[i] == '|' && (i == 0 || line[i - 1] != '\\');
    return n;
}

TEST(Bench, MarkdownRowsHaveTheHeadersColumns) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    const Outcome o = bench_stories(dir, {"-p", "16", "-n", "4", "-r", "1", "-o", "md"});
    ASSERT_EQ(o.exit_code, 0) << o.err;
    std::vector<std::string> table;
    for (const auto& line : lines_of(o.out)) {
        if (line.starts_with("|")) table.push_back(line);
    }
    ASSERT_EQ(table.size(), 4u) << "header, separator and two rows expected:\n" << o.out;
    for (const auto& line : table) EXPECT_EQ(cell_separators(line), cell_separators(table[0])) << line;
    EXPECT_NE(table[2].find("pp16"), std::string::npos) << table[2];
    EXPECT_NE(table[3].find("tg4"), std::string::npos) << table[3];
}

TEST(Bench, NoRepackIsShownInTheIsaColumn) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    for (const bool repack : {true, false}) {
        std::vector<std::string> args = {"-p", "16", "-n", "0", "-r", "1", "-o", "json"};
        if (!repack) args.push_back("--no-repack");
        const Outcome o = bench_stories(dir, args);
        ASSERT_EQ(o.exit_code, 0) << o.err;
        const json rows = json::parse(o.out);
        ASSERT_EQ(rows.size(), 1u) << o.out;
        EXPECT_EQ(rows[0]["isa"].get<std::string>().ends_with(" no-repack"), !repack) << rows[0]["isa"];
    }
}

TEST(Bench, RejectsAnUnknownFormat) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    const Outcome o = bench_stories(dir, {"-p", "16", "-n", "0", "-o", "xml"});
    EXPECT_EQ(o.exit_code, 1);
    EXPECT_EQ(o.out, "");
    EXPECT_NE(o.err.find("qllm: error: -o must be md, csv, json or jsonl (got 'xml')"), std::string::npos) << o.err;
}

TEST(Bench, SweepBenchmarksEveryLevelAndLeavesNoTemporaryFile) {
    const fs::path source = shared_dir() / "golden/bases/synth-a-f16.gguf";
    QLLM_REQUIRE_SHARED(source);
    TempDir dir, tmp;
    const Outcome o = run_qllm(dir,
                               {"bench", "--sweep", source.string(), "--types", "Q4_0,Q4_K_M", "-p", "32", "-n", "8",
                                "-r", "1", "-t", "1", "-o", "jsonl"},
                               tmp.path.string());
    ASSERT_EQ(o.exit_code, 0) << o.err;
    std::map<std::string, std::set<std::string>> tests_by_type;
    std::vector<std::string> order;
    uint64_t last_size = 0;
    for (const auto& line : lines_of(o.out)) {
        json row;
        ASSERT_NO_THROW(row = json::parse(line)) << line;
        const std::string type = row.value("type", "");
        tests_by_type[type].insert(row.value("test", ""));
        if (order.empty() || order.back() != type) order.push_back(type);
        EXPECT_GE(row.value("model_size", uint64_t(0)), last_size) << "rows are sorted by size";
        last_size = row.value("model_size", uint64_t(0));
        EXPECT_GT(row.value("avg_ts", 0.0), 0.0) << line;
    }
    const std::set<std::string> both = {"pp32", "tg8"};
    EXPECT_EQ(tests_by_type, (std::map<std::string, std::set<std::string>>{
                                 {"F16", both}, {"Q4_0", both}, {"Q4_K_M", both}}))
        << o.out;
    EXPECT_EQ(order, (std::vector<std::string>{"Q4_0", "Q4_K_M", "F16"})) << "smallest first, the source last";
    EXPECT_TRUE(fs::is_empty(tmp.path)) << "the quantized levels must be removed";

    // The levels go under $TMPDIR: one that does not exist is reported before any work.
    const std::string missing = (tmp / "missing").string();
    const Outcome bad = run_qllm(dir, {"bench", "--sweep", source.string(), "--types", "Q4_0", "-p", "8", "-n", "0"}, missing);
    EXPECT_EQ(bad.exit_code, 1) << bad.err;
    EXPECT_NE(bad.err.find("qllm: error: cannot create a temporary directory in " + missing + ": No such file"),
              std::string::npos)
        << bad.err;
}

}  // namespace
}  // namespace qllm::test
