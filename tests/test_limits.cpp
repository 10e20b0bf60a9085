// Resource limits and faults met at run time: a prompt longer than the context, generation that
// reaches its end, Ctrl-C, any thread count, and NaN/Inf in the weights. Most cases run the real
// `qllm` binary on stories260K; the thread-count case uses the library.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "gguf/gguf.h"
#include "kernels/types.h"
#include "model/context.h"
#include "support.h"

extern char** environ;

namespace qllm::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path stories() { return shared_dir() / "models/stories260K.gguf"; }

struct Outcome {
    int exit_code = -1;  // when it exited
    int signal = 0;      // when a signal ended it
    std::string out, err;
};

// Runs `qllm args...` with stdout and stderr in files under `dir`. With interrupt, sends one
// SIGINT as soon as stdout has something in it. Kills the child after two minutes.
Outcome run_qllm(const TempDir& dir, const std::vector<std::string>& args, bool interrupt = false) {
    const fs::path out_path = dir / "stdout", err_path = dir / "stderr";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    // A test runner started in the background may ignore SIGINT; the child must not inherit that.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t sigs;
    sigemptyset(&sigs);
    posix_spawnattr_setsigmask(&attr, &sigs);
    sigaddset(&sigs, SIGINT);
    posix_spawnattr_setsigdefault(&attr, &sigs);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    std::vector<std::string> full = {QLLM_BINARY};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    Outcome o;
    if (rc != 0) {
        ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(rc);
        return o;
    }

    const auto deadline = std::chrono::steady_clock::now() + 120s;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            ADD_FAILURE() << "qllm did not finish in two minutes: killed";
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        std::error_code ec;
        if (interrupt && fs::file_size(out_path, ec) > 0) {
            kill(pid, SIGINT);
            interrupt = false;
        }
        std::this_thread::sleep_for(10ms);
    }
    if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) o.signal = WTERMSIG(status);
    o.out = read_text(out_path);
    o.err = read_text(err_path);
    return o;
}

// Expects exit code 1, nothing on stdout and one "qllm: error:" line holding `expect`.
void expect_error(const Outcome& o, const std::string& expect) {
    EXPECT_EQ(o.exit_code, 1) << o.err;
    EXPECT_EQ(o.out, "");
    EXPECT_TRUE(o.err.starts_with("qllm: error: ")) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << "one line expected:\n" << o.err;
    EXPECT_NE(o.err.find(expect), std::string::npos) << "expected '" << expect << "' in:\n" << o.err;
}

// The number of generated tokens in run's timing summary ("generation: ... ms / N tokens").
int generated_tokens(const std::string& err) {
    const size_t line = err.find("generation:");
    if (line == std::string::npos) return -1;
    const size_t slash = err.find('/', line);
    return slash == std::string::npos ? -1 : std::stoi(err.substr(slash + 1));
}

TEST(Limits, PromptLongerThanTheContextIsAnError) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    const Outcome o = run_qllm(dir, {"run", "-m", stories().string(), "-c", "16", "-t", "1", "-p",
                                     "Once upon a time there was a little girl named Lily who loved to play outside"});
    expect_error(o, "prompt is too long: ");
    EXPECT_NE(o.err.find(" tokens, but the context size is 16"), std::string::npos) << o.err;
}

TEST(Limits, GenerationStopsCleanlyAtTheEndOfTheContext) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    // "Once upon a time" is 5 tokens with BOS: a context of 12 holds 7 generated tokens, and the
    // eighth is printed without being evaluated.
    const std::vector<std::string> common = {"run", "-m", stories().string(), "-p", "Once upon a time",
                                             "--temp", "0", "--ignore-eos", "-t", "1"};
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = common;
        args.insert(args.end(), extra.begin(), extra.end());
        return run_qllm(dir, args);
    };
    const Outcome reference = with({"-c", "64", "-n", "8"});
    ASSERT_EQ(reference.exit_code, 0) << reference.err;
    ASSERT_EQ(generated_tokens(reference.err), 8) << reference.err;
    EXPECT_EQ(reference.err.find("context full"), std::string::npos) << reference.err;

    for (const char* n : {"-1", "100"}) {
        SCOPED_TRACE(std::string("-n ") + n);
        const Outcome full = with({"-c", "12", "-n", n});
        EXPECT_EQ(full.exit_code, 0) << full.err;
        EXPECT_NE(full.err.find("qllm: context full (12 tokens): generation stopped; use -c to enlarge it\n"),
                  std::string::npos)
            << full.err;
        EXPECT_EQ(generated_tokens(full.err), 8) << full.err;
        EXPECT_EQ(full.out, reference.out) << "the text generated before the context filled up";
    }

    // A prompt that fills the context exactly still yields the one token its logits give.
    const Outcome exact = with({"-c", "5", "-n", "3"});
    EXPECT_EQ(exact.exit_code, 0) << exact.err;
    EXPECT_EQ(generated_tokens(exact.err), 1) << exact.err;
    EXPECT_NE(exact.err.find("context full (5 tokens)"), std::string::npos) << exact.err;
}

// run repacks the weights (model/repack.h) only once the first token is out, so that repacking
// does not delay it; with one token to generate, or --no-repack, it never does. The text is
// the same either way.
TEST(Limits, RunRepacksOnlyAfterTheFirstToken) {
    if (!traits(uint32_t(TensorType::Q4_0_R16)).gemm) GTEST_SKIP() << "no interleaved layouts on this CPU";
    const fs::path model = shared_dir() / "golden/synth-a-f16/Q4_0.gguf";
    QLLM_REQUIRE_SHARED(model);
    TempDir dir;
    auto run = [&](const char* n, bool repack) {
        std::vector<std::string> args = {"run", "-m", model.string(), "-p", "Once upon a time", "-n", n, "--temp", "0"};
        if (!repack) args.push_back("--no-repack");
        const Outcome o = run_qllm(dir, args);
        EXPECT_EQ(o.exit_code, 0) << o.err;
        return o;
    };
    const Outcome one = run("1", true), more = run("6", true), plain = run("6", false);
    EXPECT_EQ(one.err.find("repack:"), std::string::npos) << one.err;
    EXPECT_EQ(plain.err.find("repack:"), std::string::npos) << plain.err;
    const size_t line = more.err.find("repack:");
    ASSERT_NE(line, std::string::npos) << more.err;
    EXPECT_NE(more.err.find("weights (after the first token)", line), std::string::npos) << more.err;
    EXPECT_GT(std::stoi(more.err.substr(more.err.find('/', line) + 1)), 0) << more.err;
    EXPECT_EQ(more.out, plain.out);
    EXPECT_TRUE(more.out.starts_with(one.out)) << one.out << " / " << more.out;
}

TEST(Limits, InterruptPrintsTheTextAndTheSummaryAndExits130) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    // Long enough to be still generating when the signal comes (minutes, uninterrupted).
    const Outcome o = run_qllm(dir,
                               {"run", "-m", stories().string(), "-p", "Once upon a time", "-c", "32768", "-n",
                                "32000", "--ignore-eos", "--temp", "0", "-t", "1"},
                               /*interrupt=*/true);
    EXPECT_EQ(o.signal, 0) << "killed by a signal instead of exiting";
    EXPECT_EQ(o.exit_code, 130) << o.err;
    EXPECT_FALSE(o.out.empty());
    EXPECT_NE(o.err.find("qllm: interrupted\n"), std::string::npos) << o.err;
    const int generated = generated_tokens(o.err);
    EXPECT_GT(generated, 0) << o.err;
    EXPECT_LT(generated, 32000) << o.err;
    EXPECT_NE(o.err.find("peak RSS:"), std::string::npos) << o.err;
    EXPECT_EQ(o.err.find("qllm: error"), std::string::npos) << o.err;
}

// ---- Thread counts ------------------------------------------------------------------------------

// Logits of a prompt batch and of three single-token steps after it, with `threads` threads.
std::vector<float> logits_with_threads(const Model& model, int threads) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    const auto tokens = model.tokenizer().encode(read_text(shared_dir() / "golden/prompt.txt"), model.vocab().add_bos);
    Context ctx(model, int64_t(tokens.size()) + 3);
    const auto prompt = ctx.eval(tokens, true);
    std::vector<float> all(prompt.begin(), prompt.end());
    TokenId next = tokens.back();
    for (int step = 0; step < 3; ++step) {
        const auto logits = ctx.eval(std::span(&next, 1), false);
        all.insert(all.end(), logits.begin(), logits.end());
        next = TokenId(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    return all;
}

class ThreadCounts : public testing::TestWithParam<std::string> {};

// Work is split by rows, never by a reduction whose order depends on the split: any thread
// count, even far more than the cores, must give the same bits.
TEST_P(ThreadCounts, GiveBitIdenticalLogits) {
#ifndef _OPENMP
    GTEST_SKIP() << "built without OpenMP";
#else
    const fs::path path = shared_dir() / GetParam();
    QLLM_REQUIRE_SHARED(path);
    const auto model = Model::load(path.string());
    const int saved = omp_get_max_threads();
    const std::vector<float> one = logits_with_threads(*model, 1);
    for (int threads : {2, 3, 7, 64}) {
        const std::vector<float> many = logits_with_threads(*model, threads);
        ASSERT_EQ(many.size(), one.size());
        size_t first_diff = 0;
        while (first_diff < one.size() && std::memcmp(&one[first_diff], &many[first_diff], sizeof(float)) == 0) {
            ++first_diff;
        }
        EXPECT_EQ(first_diff, one.size()) << threads << " threads differ from 1 at logit " << first_diff << ": "
                                          << many[std::min(first_diff, one.size() - 1)] << " vs "
                                          << one[std::min(first_diff, one.size() - 1)];
    }
    omp_set_num_threads(saved);
#endif
}

INSTANTIATE_TEST_SUITE_P(Limits, ThreadCounts,
                         testing::Values("models/stories260K.gguf", "golden/synth-b-f32/Q4_K_M.gguf",
                                         "golden/synth-a-f16/Q4_0.gguf"),
                         [](const testing::TestParamInfo<std::string>& info) {
                             std::string name = info.param.substr(info.param.find('/') + 1);
                             for (char& c : name) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return name;
                         });

// ---- NaN and Inf in the weights ---------------------------------------------------------------

// A copy of stories260K in `dir` whose f32 tensor `name` holds `value` at element `index`.
fs::path poisoned_copy(const TempDir& dir, const std::string& name, size_t index, float value) {
    const fs::path copy = dir / "poisoned.gguf";
    fs::copy_file(stories(), copy);
    uint64_t at = 0;
    {
        const gguf::File file(copy.string());
        const gguf::TensorInfo* t = file.find_tensor(name);
        EXPECT_TRUE(t && t->type == TensorType::F32) << name;
        if (!t) return copy;
        at = file.data_offset() + t->offset + index * sizeof(float);
    }
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(at));
    f.write(reinterpret_cast<const char*>(&value), sizeof value);
    EXPECT_TRUE(f.good());
    return copy;
}

TEST(Limits, CheckNumericsNamesTheLayerThatFirstGoesNonFinite) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir dir;
    const fs::path model = poisoned_copy(dir, "blk.2.ffn_down.weight", 0, std::numeric_limits<float>::quiet_NaN());
    const std::vector<std::string> prompt = {"-p", "Once upon a time", "-t", "1"};
    auto run = [&](std::vector<std::string> args) {
        args.insert(args.end(), prompt.begin(), prompt.end());
        return run_qllm(dir, args);
    };

    // Layers 0 and 1 are clean, so the first NaN is in layer 2's output, at the first token.
    const std::string expected = model.string() + ": non-finite value in layer 2 output (token 0): nan";
    expect_error(run({"run", "-m", model.string(), "-n", "4", "--check-numerics"}), expected);
    expect_error(run({"logits", "-m", model.string(), "-o", (dir / "out.logits").string(), "--check-numerics"}),
                 expected);
    EXPECT_FALSE(fs::exists(dir / "out.logits"));

    // Without the flag, run still refuses to sample: the logits of the last prompt token (4).
    expect_error(run({"run", "-m", model.string(), "-n", "4"}),
                 model.string() + ": the model produced non-finite logits at token 4");

    // The control: the unpoisoned model passes the checks.
    const Outcome clean = run({"run", "-m", stories().string(), "-n", "4", "--check-numerics"});
    EXPECT_EQ(clean.exit_code, 0) << clean.err;
}

TEST(Limits, CheckNumericsNamesTheTokenPosition) {
    QLLM_REQUIRE_SHARED(stories());
    const auto model = Model::load(stories().string());
    const auto tokens = model->tokenizer().encode("Once upon a time", model->vocab().add_bos);
    ASSERT_GE(tokens.size(), 4u);
    // An infinite embedding for the token at position 3 (which must not occur before it).
    ASSERT_EQ(std::find(tokens.begin(), tokens.begin() + 3, tokens[3]), tokens.begin() + 3);
    TempDir dir;
    const size_t n_embd = size_t(model->hparams().n_embd);
    const fs::path poisoned = poisoned_copy(dir, "token_embd.weight", size_t(tokens[3]) * n_embd + 5,
                                            std::numeric_limits<float>::infinity());
    const Outcome o =
        run_qllm(dir, {"run", "-m", poisoned.string(), "-p", "Once upon a time", "-n", "1", "--check-numerics"});
    expect_error(o, "non-finite value in the token embeddings (token 3): inf");
}

}  // namespace
}  // namespace qllm::test
