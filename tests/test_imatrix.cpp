// Importance matrices and perplexity: the accumulator and its two file formats, `qllm imatrix`
// on stories260K checked against activations computed by hand, quantizing with its output, and
// `qllm perplexity` checked against the NLL computed here from Context logits.
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gguf/gguf.h"
#include "model/context.h"
#include "quant/imatrix.h"
#include "quant/quantize.h"
#include "support.h"

namespace qllm {
namespace {

namespace fs = std::filesystem;
using test::shared_dir;
using test::TempDir;

fs::path stories() { return shared_dir() / "models" / "stories260K.gguf"; }

constexpr int64_t kChunk = 64;  // tokens per chunk: several chunks from a short text

// A short story in the style stories260K was trained on.
constexpr const char* kStory =
    "Once upon a time, there was a little girl named Amy. Amy had a small brown puppy. The puppy liked to "
    "run in the grass and chase the ball. One day, the ball rolled under a big bush. The puppy barked and "
    "barked. Amy looked under the bush and found the ball. She also found a little bird with a hurt wing. "
    "Amy was sad for the bird. She took it home and gave it some water and seeds. Her mom helped her make "
    "a soft bed in a box. Every day Amy and the puppy looked at the bird. After many days, the wing was "
    "better. Amy took the bird to the garden and it flew up to the tree. It sang a happy song. Amy smiled "
    "and waved. The puppy wagged his tail. They were all happy, and the bird came back to sing every "
    "morning.";

struct CliResult {
    int exit_code = -1;
    std::string out, err;
};

std::string quoted(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

CliResult run_cli(const std::vector<std::string>& args, const TempDir& dir) {
    std::string cmd = quoted(QLLM_BINARY);
    for (const auto& a : args) cmd += " " + quoted(a);
    const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
    cmd += " >" + quoted(out.string()) + " 2>" + quoted(err.string());
    const int status = std::system(cmd.c_str());
    CliResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = test::read_text(out);
    r.err = test::read_text(err);
    return r;
}

fs::path write_story(const TempDir& dir) {
    const fs::path p = dir / "story.txt";
    std::ofstream(p, std::ios::binary) << kStory;
    return p;
}

// The chunks `qllm imatrix` and `qllm perplexity` evaluate: whole chunks, first token BOS.
std::vector<std::vector<TokenId>> chunks_of(const Model& model, const std::string& text) {
    const std::vector<TokenId> tokens = model.tokenizer().encode(text, true);
    std::vector<std::vector<TokenId>> chunks;
    for (size_t i = 0; i + kChunk <= tokens.size(); i += kChunk) {
        chunks.emplace_back(tokens.begin() + long(i), tokens.begin() + long(i + kChunk));
        chunks.back()[0] = model.vocab().bos;
    }
    return chunks;
}

std::vector<float> f32s(const gguf::TensorInfo& t) {
    std::vector<float> v(size_t(t.n_elements()));
    std::memcpy(v.data(), t.data, v.size() * sizeof(float));
    return v;
}

// ---- the accumulator and its files, without a model ------------------------------------------

TEST(ImatrixStats, SumsSquaresPerColumnOverCalls) {
    quant::ImatrixStats s;
    const float a[] = {1, 2, 3, -1, 0, 2};  // 2 rows of 3
    const float b[] = {0.5f, -4, 1};
    s.add("blk.0.w", a, 2, 3);
    s.add("blk.0.w", b, 1, 3);
    const auto& e = s.entries.at("blk.0.w");
    EXPECT_EQ(e.count, 3);
    EXPECT_DOUBLE_EQ(e.sum2[0], 1 + 1 + 0.25);
    EXPECT_DOUBLE_EQ(e.sum2[1], 4 + 0 + 16);
    EXPECT_DOUBLE_EQ(e.sum2[2], 9 + 4 + 1);
    EXPECT_THROW(s.add("blk.0.w", a, 1, 2), Error) << "a weight's input width cannot change";
    const float inf[] = {INFINITY};
    EXPECT_THROW(s.add("blk.1.w", inf, 1, 1), Error);
}

TEST(ImatrixStats, BothFormatsReadBackAsMeans) {
    TempDir tmp;
    quant::ImatrixStats s;
    s.chunk_size = 4;
    s.chunk_count = 3;
    s.datasets = {"calibration.txt"};
    std::vector<float> x(10 * 5);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) - 2.5f;
    s.add("blk.0.attn_q.weight", x.data(), 10, 5);
    s.add("blk.0.ffn_down.weight", x.data(), 5, 10);
    for (const char* name : {"m.gguf", "m.dat"}) {
        const std::string path = (tmp / name).string();
        s.save(path);
        const auto m = quant::ImportanceMatrix::load(path);
        EXPECT_EQ(m.chunk_count, 3) << name;
        ASSERT_EQ(m.datasets.size(), 1u) << name;
        EXPECT_EQ(m.datasets[0], "calibration.txt") << name;
        ASSERT_EQ(m.entries.size(), 2u) << name;
        for (const auto& [weight, e] : s.entries) {
            const std::vector<float>* got = m.find(weight);
            ASSERT_TRUE(got) << name << " " << weight;
            ASSERT_EQ(got->size(), e.sum2.size());
            for (size_t j = 0; j < got->size(); ++j) {
                EXPECT_NEAR((*got)[j], e.sum2[j] / double(e.count), 1e-5 * (1 + e.sum2[j])) << name << " " << weight;
            }
        }
    }
    EXPECT_THROW(quant::ImatrixStats{}.save((tmp / "empty.gguf").string()), Error);
    EXPECT_FALSE(fs::exists(tmp / "empty.gguf")) << "a failed save leaves no file";
}

// ---- the observer ----------------------------------------------------------------------------

TEST(MatmulObserver, SeesEveryWeightMatmulWithItsInput) {
    QLLM_REQUIRE_SHARED(stories());
    auto model = Model::load(stories().string());
    Context ctx(*model, 16);
    std::vector<std::string> names;
    std::vector<int64_t> rows;
    ctx.set_matmul_observer([&](const TensorView& w, const float*, int64_t n) {
        names.push_back(w.name);
        rows.push_back(n);
    });
    const std::vector<TokenId> tokens = {1, 403, 407, 261};
    ctx.eval(tokens, false);
    const int64_t n_layer = model->hparams().n_layer;
    ASSERT_EQ(int64_t(names.size()), 7 * n_layer + 1);
    EXPECT_EQ(names[0], "blk.0.attn_q.weight");
    EXPECT_EQ(names.back(), "output.weight");
    EXPECT_EQ(rows[0], 4);
    EXPECT_EQ(rows.back(), 1) << "only the last row's logits were asked for";
    ctx.set_matmul_observer(nullptr);
    ctx.eval(tokens, false);
    EXPECT_EQ(int64_t(names.size()), 7 * n_layer + 1);
}

// ---- qllm imatrix on stories260K ----------------------------------------------------------------

TEST(ImatrixCli, WritesLayerZeroInputsAsComputedByHand) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir tmp;
    const fs::path story = write_story(tmp);
    const std::string out = (tmp / "imatrix.gguf").string();
    const CliResult r = run_cli({"imatrix", "-m", stories().string(), "-f", story.string(), "-o", out, "-c",
                                 std::to_string(kChunk), "-t", "2"},
                                tmp);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "") << "the results go to the file, progress to stderr";
    EXPECT_NE(r.err.find("Final estimate: PPL = "), std::string::npos) << r.err;

    auto model = Model::load(stories().string());
    const auto chunks = chunks_of(*model, kStory);
    ASSERT_GE(chunks.size(), 2u);
    const int64_t n_tokens = int64_t(chunks.size()) * kChunk;

    gguf::File f(out);
    EXPECT_EQ(f.get_string("general.type"), "imatrix");
    EXPECT_EQ(f.get_count("imatrix.chunk_size"), uint64_t(kChunk));
    EXPECT_EQ(f.get_count("imatrix.chunk_count"), chunks.size());
    EXPECT_EQ(f.get_string_array("imatrix.datasets"), std::vector<std::string>{story.string()});

    // One entry per matmul weight of the layers, each having seen every token.
    std::set<std::string> want, got;
    for (const auto& t : model->file().tensors()) {
        if (t.name.starts_with("blk.") && t.n_dims == 2) want.insert(t.name);
    }
    for (const auto& t : f.tensors()) {
        if (!t.name.ends_with(".counts")) continue;
        const std::string name = t.name.substr(0, t.name.size() - 7);
        got.insert(name);
        EXPECT_EQ(f32s(t), std::vector<float>{float(n_tokens)}) << name;
        const gguf::TensorInfo* sums = f.find_tensor(name + ".in_sum2");
        ASSERT_TRUE(sums) << name;
        EXPECT_EQ(sums->ne[0], model->file().find_tensor(name)->ne[0]) << name;
    }
    EXPECT_EQ(got, want);

    // Layer 0's q, k and v see rms_norm(embedding) * attn_norm: compute it from the weights.
    const Hparams& hp = model->hparams();
    const int64_t n_embd = hp.n_embd;
    const auto* embd = reinterpret_cast<const float*>(model->file().find_tensor("token_embd.weight")->data);
    const auto* norm = reinterpret_cast<const float*>(model->file().find_tensor("blk.0.attn_norm.weight")->data);
    std::vector<double> expect(size_t(n_embd), 0.0);
    for (const auto& chunk : chunks) {
        for (TokenId tok : chunk) {
            const float* e = embd + tok * n_embd;
            double ss = 0;
            for (int64_t i = 0; i < n_embd; ++i) ss += double(e[i]) * e[i];
            const double scale = 1.0 / std::sqrt(ss / double(n_embd) + hp.rms_eps);
            for (int64_t i = 0; i < n_embd; ++i) {
                const double x = e[i] * scale * norm[i];
                expect[size_t(i)] += x * x;
            }
        }
    }
    const auto q = f32s(*f.find_tensor("blk.0.attn_q.weight.in_sum2"));
    ASSERT_EQ(q.size(), expect.size());
    for (size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(q[i], expect[i], 1e-4 * expect[i]) << "column " << i;
    EXPECT_EQ(f32s(*f.find_tensor("blk.0.attn_k.weight.in_sum2")), q) << "k and v share q's input";
    EXPECT_EQ(f32s(*f.find_tensor("blk.0.attn_v.weight.in_sum2")), q);

    // The reader turns it into means; the legacy form says the same.
    const auto m = quant::ImportanceMatrix::load(out);
    ASSERT_TRUE(m.find("blk.0.attn_q.weight"));
    EXPECT_NEAR((*m.find("blk.0.attn_q.weight"))[3], expect[3] / double(n_tokens), 1e-4 * expect[3] / double(n_tokens));
    const std::string dat = (tmp / "imatrix.dat").string();
    ASSERT_EQ(run_cli({"imatrix", "-m", stories().string(), "-f", story.string(), "-o", dat, "-c",
                       std::to_string(kChunk), "--no-ppl"},
                      tmp)
                  .exit_code,
              0);
    const auto legacy = quant::ImportanceMatrix::load(dat);
    EXPECT_EQ(legacy.chunk_count, int64_t(chunks.size()));
    ASSERT_EQ(legacy.entries.size(), m.entries.size());
    for (const auto& [name, v] : m.entries) {
        const std::vector<float>* w = legacy.find(name);
        ASSERT_TRUE(w && w->size() == v.size()) << name;
        for (size_t j = 0; j < v.size(); ++j) EXPECT_NEAR((*w)[j], v[j], 1e-5f * (1 + v[j])) << name;
    }
}

TEST(ImatrixCli, TooShortTextFailsWithoutWriting) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir tmp;
    const fs::path story = write_story(tmp);
    const std::string out = (tmp / "imatrix.gguf").string();
    const CliResult r = run_cli({"imatrix", "-m", stories().string(), "-f", story.string(), "-o", out, "-c", "4096"}, tmp);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("qllm: error: " + story.string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("fewer than one chunk"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
}

TEST(ImatrixCli, QuantizeUsesTheGgufImatrix) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir tmp;
    const fs::path story = write_story(tmp);
    const std::string im = (tmp / "imatrix.gguf").string();
    ASSERT_EQ(run_cli({"imatrix", "-m", stories().string(), "-f", story.string(), "-o", im, "-c",
                       std::to_string(kChunk), "--no-ppl"},
                      tmp)
                  .exit_code,
              0);
    quant::QuantizeOptions opt;
    opt.input = stories().string();
    opt.ftype = quant::FileType::Q4_K_M;
    opt.log = nullptr;
    opt.output = (tmp / "plain.gguf").string();
    quant::quantize_model(opt);
    opt.imatrix = im;
    opt.output = (tmp / "weighted.gguf").string();
    quant::quantize_model(opt);

    gguf::File plain((tmp / "plain.gguf").string()), weighted((tmp / "weighted.gguf").string());
    EXPECT_EQ(weighted.get_count("quantize.imatrix.entries_count"), 35u);
    EXPECT_EQ(weighted.get_count("quantize.imatrix.chunks_count"), chunks_of(*Model::load(opt.input), kStory).size());
    EXPECT_EQ(weighted.get_string("quantize.imatrix.dataset"), story.string());
    // stories260K's rows of 64 fall back to q5_0 in Q4_K_M; its quantizer weighs by importance.
    const auto* a = plain.find_tensor("blk.0.attn_q.weight");
    const auto* b = weighted.find_tensor("blk.0.attn_q.weight");
    ASSERT_TRUE(a && b);
    ASSERT_EQ(a->type, b->type);
    EXPECT_NE(std::memcmp(a->data, b->data, a->size), 0) << "the importance data changed nothing";
}

// ---- qllm perplexity --------------------------------------------------------------------------

TEST(PerplexityCli, MatchesTheMeanNllOfContextLogits) {
    QLLM_REQUIRE_SHARED(stories());
    TempDir tmp;
    const fs::path story = write_story(tmp);
    const CliResult r = run_cli({"perplexity", "-m", stories().string(), "-f", story.string(), "-c",
                                 std::to_string(kChunk), "-t", "2"},
                                tmp);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+))"))) << r.out;
    const double ppl = std::stod(m[1]), err = std::stod(m[2]);

    // llama-perplexity's method, here from the logits directly: each chunk from an empty cache,
    // the second half scored.
    auto model = Model::load(stories().string());
    const auto chunks = chunks_of(*model, kStory);
    const int64_t n_vocab = model->hparams().n_vocab;
    double nll = 0;
    int64_t count = 0;
    for (const auto& chunk : chunks) {
        Context ctx(*model, kChunk);
        const std::span<const float> logits = ctx.eval(chunk, true);
        for (int64_t j = kChunk / 2; j + 1 < kChunk; ++j) {
            const float* row = logits.data() + j * n_vocab;
            double z = 0;
            for (int64_t v = 0; v < n_vocab; ++v) z += std::exp(double(row[v]));
            nll += std::log(z) - row[chunk[size_t(j + 1)]];
            ++count;
        }
    }
    const double want = std::exp(nll / double(count));
    EXPECT_NEAR(ppl, want, 1e-4 * want + 1e-4);
    EXPECT_GT(ppl, 1.0);
    EXPECT_LT(ppl, 50.0) << "stories260K reads a simple story far better than chance (512)";
    EXPECT_GT(err, 0.0);
    EXPECT_LT(err, ppl);
    // The running value after every chunk, as llama-perplexity prints it.
    EXPECT_EQ(std::regex_search(r.out, std::regex("\\[" + std::to_string(chunks.size()) + "\\][0-9.]+,")), true) << r.out;
    EXPECT_EQ(r.out.find("[" + std::to_string(chunks.size() + 1) + "]"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace qllm
