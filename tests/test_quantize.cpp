// qllm quantize: the files must be the ones llama-quantize wrote (../shared/golden), byte for
// byte or at least as accurate; failures (read-only directory, same file, file size limit,
// Ctrl-C) must leave nothing behind and never touch an existing output.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "gguf/gguf.h"
#include "quant/ftype.h"
#include "quant/mixture.h"
#include "quant/quantize.h"
#include "support.h"

extern char** environ;

namespace qllm::test {
namespace {

namespace fs = std::filesystem;

// ---- helpers --------------------------------------------------------------------------------

std::string read_file(const fs::path& p) { return read_text(p); }

void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out << bytes;
}

std::vector<float> dequantize(const gguf::TensorInfo& t) {
    std::vector<float> out(size_t(t.n_elements()));
    const TypeTraits& tr = traits(t.type);
    const int64_t rows = t.n_elements() / t.ne[0];
    for (int64_t r = 0; r < rows; ++r) {
        tr.to_float(t.data + size_t(r) * tr.row_size(t.ne[0]), out.data() + r * t.ne[0], t.ne[0]);
    }
    return out;
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    return std::sqrt(s / double(a.size()));
}

struct Comparison {
    size_t identical = 0, tensors = 0;
    bool file_identical = false;
};

// Same metadata, tensor list and types as the golden file; every tensor byte-identical or no
// further from the source weights than llama.cpp's.
Comparison compare_with_golden(const fs::path& ours_path, const fs::path& golden_path, const gguf::File& base) {
    Comparison c;
    gguf::File ours(ours_path.string()), golden(golden_path.string());
    EXPECT_EQ(ours.metadata().size(), golden.metadata().size());
    for (size_t i = 0; i < std::min(ours.metadata().size(), golden.metadata().size()); ++i) {
        EXPECT_EQ(ours.metadata()[i].first, golden.metadata()[i].first) << "metadata key #" << i;
        EXPECT_TRUE(ours.metadata()[i].second == golden.metadata()[i].second) << golden.metadata()[i].first;
    }
    EXPECT_EQ(ours.get_count("general.file_type"), golden.get_count("general.file_type"));
    EXPECT_EQ(ours.tensors().size(), golden.tensors().size());
    if (ours.tensors().size() != golden.tensors().size()) return c;
    for (size_t i = 0; i < ours.tensors().size(); ++i) {
        const auto& a = ours.tensors()[i];
        const auto& g = golden.tensors()[i];
        SCOPED_TRACE(g.name);
        EXPECT_EQ(a.name, g.name);
        EXPECT_EQ(type_name(a.type), type_name(g.type));
        EXPECT_EQ(a.n_dims, g.n_dims);
        for (int d = 0; d < 4; ++d) EXPECT_EQ(a.ne[d], g.ne[d]);
        if (a.type != g.type || a.size != g.size) continue;
        ++c.tensors;
        if (std::memcmp(a.data, g.data, a.size) == 0) {
            ++c.identical;
            continue;
        }
        const gguf::TensorInfo* src = base.find_tensor(g.name);
        if (!src) {
            ADD_FAILURE() << "tensor missing in base";
            continue;
        }
        const auto x = dequantize(*src);
        const double ours_err = rmse(dequantize(a), x), golden_err = rmse(dequantize(g), x);
        EXPECT_LE(ours_err, golden_err * (1 + 1e-6) + 1e-12) << "RMSE worse than llama.cpp's";
    }
    c.file_identical = read_file(ours_path) == read_file(golden_path);
    return c;
}

void golden_model_test(const std::string& model, const fs::path& base_path) {
    const fs::path dir = shared_dir() / "golden" / model;
    QLLM_REQUIRE_SHARED(base_path);
    QLLM_REQUIRE_SHARED(dir / "Q4_K_M.gguf");
    gguf::File base(base_path.string());
    TempDir tmp;
    size_t compared = 0;
    for (const auto& ft : quant::file_types()) {
        const fs::path golden = dir / (std::string(ft.name) + ".gguf");
        const fs::path out = tmp / (std::string(ft.name) + ".gguf");
        quant::QuantizeOptions opt;
        opt.input = base_path.string();
        opt.output = out.string();
        opt.ftype = ft.id;
        opt.threads = 2;
        opt.log = nullptr;
        SCOPED_TRACE(model + "/" + std::string(ft.name));
        if (!fs::exists(golden)) {
            // stories260K's ffn_down rows of 172 fit no legacy block: llama-quantize refuses.
            if (model == "stories260K" && traits(ft.base).block_size == 32 && ft.id != quant::FileType::IQ4_NL) {
                try {
                    quant::quantize_model(opt);
                    ADD_FAILURE() << "expected a refusal";
                } catch (const Error& e) {
                    EXPECT_NE(std::string(e.what()).find("ffn_down.weight"), std::string::npos) << e.what();
                    EXPECT_NE(std::string(e.what()).find("172"), std::string::npos) << e.what();
                }
                EXPECT_FALSE(fs::exists(out));
                std::printf("[ quantize ] %-12s %-7s refused, as llama-quantize does\n", model.c_str(), ft.name.data());
            }
            continue;
        }
        quant::quantize_model(opt);
        const Comparison c = compare_with_golden(out, golden, base);
        std::printf("[ quantize ] %-12s %-7s %2zu/%2zu tensors byte-identical, file %s\n", model.c_str(), ft.name.data(),
                    c.identical, c.tensors, c.file_identical ? "byte-identical" : "differs");
        ++compared;
        fs::remove(out);
    }
    EXPECT_GE(compared, model.rfind("arch-", 0) == 0 ? 2u : 12u);
}

// ---- golden files ---------------------------------------------------------------------------

TEST(QuantizeGolden, Stories260K) {
    golden_model_test("stories260K", shared_dir() / "models" / "stories260K.gguf");
}

TEST(QuantizeGolden, SynthA) { golden_model_test("synth-a-f16", shared_dir() / "golden" / "bases" / "synth-a-f16.gguf"); }

TEST(QuantizeGolden, SynthB) { golden_model_test("synth-b-f32", shared_dir() / "golden" / "bases" / "synth-b-f32.gguf"); }

// Every architecture (fused attn_qkv, tied embeddings, q/k norms...): its Q8_0 and Q4_K_M files.
TEST(QuantizeGolden, Architectures) {
    for (const char* arch : {"llama31", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"}) {
        const std::string dir = std::string("arch-") + arch;
        golden_model_test(dir, shared_dir() / "golden" / dir / "base.gguf");
    }
}

// ---- the ftype table and the mixture rules --------------------------------------------------

TEST(QuantizeTypes, ParsesNamesAliasesAndIds) {
    ASSERT_NE(quant::parse_file_type("q4_k_m"), nullptr);
    EXPECT_EQ(quant::parse_file_type("q4_k_m")->id, quant::FileType::Q4_K_M);
    EXPECT_EQ(quant::parse_file_type("Q4_K")->id, quant::FileType::Q4_K_M);
    EXPECT_EQ(quant::parse_file_type("q3_k")->id, quant::FileType::Q3_K_M);
    EXPECT_EQ(quant::parse_file_type("Q5_K")->id, quant::FileType::Q5_K_M);
    EXPECT_EQ(quant::parse_file_type("7")->id, quant::FileType::Q8_0);
    EXPECT_EQ(quant::parse_file_type("bf16")->id, quant::FileType::BF16);
    EXPECT_EQ(quant::parse_file_type("Q9_K"), nullptr);
    EXPECT_EQ(quant::parse_file_type("4"), nullptr);  // Q4_2: retired
    EXPECT_EQ(quant::parse_file_type(""), nullptr);
    EXPECT_DOUBLE_EQ(quant::bits_per_weight(TensorType::Q4_K), 4.5);
    EXPECT_DOUBLE_EQ(quant::bits_per_weight(TensorType::Q6_K), 6.5625);
}

// A tensor table without data, for the rules alone.
struct FakeModel {
    std::vector<gguf::TensorInfo> tensors;
    void add(const std::string& name, int64_t ne0, int64_t ne1 = 1) {
        gguf::TensorInfo t;
        t.name = name;
        t.type = TensorType::F16;
        t.n_dims = ne1 > 1 ? 2 : 1;
        t.ne[0] = ne0;
        t.ne[1] = ne1;
        tensors.push_back(t);
    }
    std::map<std::string, TensorType> choose(const quant::ModelFacts& facts, const quant::MixtureOptions& opt) const {
        std::vector<const gguf::TensorInfo*> order;
        for (const auto& t : tensors) order.push_back(&t);
        const auto choices = quant::choose_types(order, facts, opt);
        std::map<std::string, TensorType> out;
        for (size_t i = 0; i < order.size(); ++i) out[order[i]->name] = choices[i].type;
        return out;
    }
};

FakeModel llama_like(int layers, int64_t n_embd, int64_t kv_dim, bool tied) {
    FakeModel m;
    if (!tied) m.add("output.weight", n_embd, 1000);
    m.add("output_norm.weight", n_embd);
    m.add("token_embd.weight", n_embd, 1000);
    for (int l = 0; l < layers; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        m.add(p + "attn_k.weight", n_embd, kv_dim);
        m.add(p + "attn_norm.weight", n_embd);
        m.add(p + "attn_output.weight", n_embd, n_embd);
        m.add(p + "attn_q.weight", n_embd, n_embd);
        m.add(p + "attn_v.weight", n_embd, kv_dim);
        m.add(p + "ffn_down.weight", 3 * n_embd, n_embd);
        m.add(p + "ffn_gate.weight", n_embd, 3 * n_embd);
        m.add(p + "ffn_norm.weight", n_embd);
        m.add(p + "ffn_up.weight", n_embd, 3 * n_embd);
    }
    return m;
}

TEST(QuantizeMixture, LayerPositionsAndOverrides) {
    const FakeModel m = llama_like(16, 256, 256, false);
    quant::ModelFacts facts{"llama", 16, 8, 8, 0};
    quant::MixtureOptions opt;
    opt.ftype = quant::FileType::Q4_K_M;
    auto types = m.choose(facts, opt);
    // use_more_bits(i, 16): i < 2, i >= 14, (i - 2) % 3 == 2.
    for (int l = 0; l < 16; ++l) {
        const bool more = l < 2 || l >= 14 || (l - 2) % 3 == 2;
        const std::string p = "blk." + std::to_string(l) + ".";
        EXPECT_EQ(types[p + "ffn_down.weight"], more ? TensorType::Q6_K : TensorType::Q4_K) << l;
        EXPECT_EQ(types[p + "attn_v.weight"], more ? TensorType::Q6_K : TensorType::Q4_K) << l;
        EXPECT_EQ(types[p + "attn_q.weight"], TensorType::Q4_K);
        EXPECT_EQ(types[p + "attn_norm.weight"], TensorType::F16);  // 1-D: kept
    }
    EXPECT_EQ(types["output.weight"], TensorType::Q6_K);
    EXPECT_EQ(types["token_embd.weight"], TensorType::Q4_K);

    opt.output_type = TensorType::Q8_0;
    opt.token_embd_type = TensorType::F16;
    types = m.choose(facts, opt);
    EXPECT_EQ(types["output.weight"], TensorType::Q8_0);
    EXPECT_EQ(types["token_embd.weight"], TensorType::F16);

    opt = {};
    opt.ftype = quant::FileType::Q4_K_M;
    opt.pure = true;
    opt.quantize_output = false;
    types = m.choose(facts, opt);
    EXPECT_EQ(types["output.weight"], TensorType::F16);  // --leave-output-tensor
    EXPECT_EQ(types["blk.0.ffn_down.weight"], TensorType::Q4_K);
    EXPECT_EQ(types["blk.0.attn_v.weight"], TensorType::Q4_K);
}

TEST(QuantizeMixture, GqaTiedEmbeddingsAnd70B) {
    quant::MixtureOptions opt;
    opt.ftype = quant::FileType::Q2_K;
    auto types = llama_like(4, 256, 64, true).choose({"llama", 4, 8, 2, 0}, opt);
    EXPECT_EQ(types["blk.0.attn_v.weight"], TensorType::Q4_K);  // n_gqa = 4
    EXPECT_EQ(types["token_embd.weight"], TensorType::Q6_K);    // tied: treated as the output
    EXPECT_EQ(types["blk.0.ffn_down.weight"], TensorType::Q3_K);
    EXPECT_EQ(types["blk.0.attn_output.weight"], TensorType::Q3_K);
    types = llama_like(4, 256, 128, true).choose({"llama", 4, 8, 4, 0}, opt);
    EXPECT_EQ(types["blk.0.attn_v.weight"], TensorType::Q3_K);  // n_gqa = 2

    opt.ftype = quant::FileType::Q3_K_S;
    types = llama_like(80, 256, 32, false).choose({"llama", 80, 64, 8, 0}, opt);
    EXPECT_EQ(types["blk.5.attn_v.weight"], TensorType::Q5_K);  // 70B bump
    EXPECT_EQ(types["blk.5.attn_q.weight"], TensorType::Q3_K);
}

TEST(QuantizeMixture, FallbacksForRowLengths) {
    FakeModel m;
    m.add("blk.0.ffn_down.weight", 96, 32);   // 96: fits 32-blocks, not 256
    m.add("blk.0.ffn_up.weight", 172, 32);    // 172: fits neither
    quant::ModelFacts facts{"llama", 1, 1, 1, 0};
    quant::MixtureOptions opt;
    const std::pair<quant::FileType, TensorType> expected[] = {
        {quant::FileType::Q2_K, TensorType::IQ4_NL}, {quant::FileType::Q3_K_S, TensorType::IQ4_NL},
        {quant::FileType::Q4_K_S, TensorType::Q5_0}, {quant::FileType::Q5_K_S, TensorType::Q5_1},
        {quant::FileType::Q6_K, TensorType::Q8_0},
    };
    for (auto [ftype, fallback] : expected) {
        opt.ftype = ftype;
        auto types = m.choose(facts, opt);
        EXPECT_EQ(types["blk.0.ffn_up.weight"], TensorType::F16);
        if (ftype != quant::FileType::Q2_K) EXPECT_EQ(types["blk.0.ffn_down.weight"], fallback) << uint32_t(ftype);
    }
    opt.ftype = quant::FileType::Q4_0;
    EXPECT_THROW(m.choose(facts, opt), Error);
    opt.ftype = quant::FileType::F16;
    EXPECT_EQ(m.choose(facts, opt)["blk.0.ffn_up.weight"], TensorType::F16);
}

// ---- the driver in-process ------------------------------------------------------------------

fs::path synth_a() { return shared_dir() / "golden" / "bases" / "synth-a-f16.gguf"; }

TEST(QuantizeDriver, DryRunWritesNothing) {
    QLLM_REQUIRE_SHARED(synth_a());
    TempDir tmp;
    quant::QuantizeOptions opt;
    opt.input = synth_a().string();
    opt.output = (tmp / "out.gguf").string();
    opt.ftype = quant::FileType::Q4_K_M;
    opt.dry_run = true;
    opt.log = nullptr;
    const auto s = quant::quantize_model(opt);
    EXPECT_FALSE(fs::exists(tmp / "out.gguf"));
    EXPECT_EQ(s.n_tensors, 30u);
    EXPECT_EQ(s.n_converted, 23u);
    EXPECT_NEAR(s.bpw_out(), 4.80, 0.01);
    EXPECT_TRUE(fs::is_empty(tmp.path));
}

TEST(QuantizeDriver, ImportanceMatrixLegacyFormat) {
    QLLM_REQUIRE_SHARED(synth_a());
    TempDir tmp;
    gguf::File base(synth_a().string());
    // A legacy .dat imatrix: i32 n, (i32 len, name, i32 ncall, i32 nval, f32[nval])..., i32 chunks.
    std::string dat;
    auto put_i32 = [&](int32_t v) { dat.append(reinterpret_cast<const char*>(&v), 4); };
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(0.1f, 10.0f);
    std::vector<const gguf::TensorInfo*> weights;
    for (const auto& t : base.tensors()) {
        if (t.n_dims == 2 && t.name != "token_embd.weight") weights.push_back(&t);
    }
    put_i32(int32_t(weights.size()));
    for (const auto* t : weights) {
        put_i32(int32_t(t->name.size()));
        dat += t->name;
        put_i32(10);
        put_i32(int32_t(t->ne[0]));
        for (int64_t i = 0; i < t->ne[0]; ++i) {
            const float v = u(rng);
            dat.append(reinterpret_cast<const char*>(&v), 4);
        }
    }
    put_i32(10);
    write_file(tmp / "imatrix.dat", dat);

    quant::QuantizeOptions opt;
    opt.input = synth_a().string();
    opt.ftype = quant::FileType::Q4_K_M;
    opt.log = nullptr;
    opt.output = (tmp / "plain.gguf").string();
    quant::quantize_model(opt);
    opt.imatrix = (tmp / "imatrix.dat").string();
    opt.output = (tmp / "imatrix.gguf").string();
    quant::quantize_model(opt);

    gguf::File plain((tmp / "plain.gguf").string()), weighted((tmp / "imatrix.gguf").string());
    EXPECT_EQ(weighted.get_count("quantize.imatrix.entries_count"), weights.size());
    EXPECT_EQ(weighted.get_count("quantize.imatrix.chunks_count"), 10u);
    EXPECT_EQ(weighted.get_string("quantize.imatrix.file"), opt.imatrix);
    const auto* a = plain.find_tensor("blk.0.attn_q.weight");
    const auto* b = weighted.find_tensor("blk.0.attn_q.weight");
    ASSERT_TRUE(a && b);
    EXPECT_NE(std::memcmp(a->data, b->data, a->size), 0) << "the importance data changed nothing";
}

// ---- through the binary: faults leave nothing behind ----------------------------------------

struct CliRun {
    int exit_code = -1;  // -1 when a signal ended it
    int signal = 0;
    std::string err;
};

CliRun wait_for(pid_t pid, const fs::path& err_path) {
    int status = 0;
    waitpid(pid, &status, 0);
    CliRun r;
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    r.err = read_text(err_path);
    return r;
}

pid_t spawn(const std::vector<std::string>& args, const fs::path& err_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    EXPECT_EQ(rc, 0) << "cannot start " << args[0];
    return pid;
}

CliRun run_cli(const std::vector<std::string>& args, const fs::path& err_path) { return wait_for(spawn(args, err_path), err_path); }

std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        if (text.compare(pos, prefix.size(), prefix) == 0) out.push_back(text.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

std::vector<std::string> temp_files(const fs::path& dir, const std::string& out_name) {
    std::vector<std::string> found;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string n = e.path().filename().string();
        if (n.starts_with("." + out_name + ".tmp-")) found.push_back(n);
    }
    return found;
}

// The contract for every failure: non-zero exit, one "qllm: error:" line, OUT as it was before
// (absent, or the same bytes), no temporary file.
void expect_clean_failure(const CliRun& r, const fs::path& out, const std::string& before, const std::string& why) {
    SCOPED_TRACE(why);
    EXPECT_TRUE(r.exit_code != 0 || r.signal != 0);
    EXPECT_EQ(lines_starting(r.err, "qllm: error:").size(), 1u) << r.err;
    if (before.empty()) {
        EXPECT_FALSE(fs::exists(out));
    } else {
        EXPECT_EQ(read_text(out), before) << "the existing output was changed";
    }
    EXPECT_TRUE(temp_files(out.parent_path(), out.filename().string()).empty());
}

const std::string kSentinel = "an existing file that must survive\n";

TEST(QuantizeFaults, ReadOnlyDirectory) {
    QLLM_REQUIRE_SHARED(synth_a());
    TempDir tmp;
    const fs::path dir = tmp / "ro";
    fs::create_directory(dir);
    write_file(dir / "out.gguf", kSentinel);
    chmod(dir.c_str(), 0555);
    // root ignores permission bits; the immutable attribute stops root too.
    const bool root = geteuid() == 0;
    const bool immutable = root && std::system(("chattr +i '" + dir.string() + "' 2>/dev/null").c_str()) == 0;
    struct Restore {
        fs::path dir;
        bool immutable;
        ~Restore() {
            if (immutable) [[maybe_unused]] int rc = std::system(("chattr -i '" + dir.string() + "'").c_str());
            chmod(dir.c_str(), 0755);
        }
    } restore{dir, immutable};
    if (root && !immutable) GTEST_SKIP() << "running as root without chattr: a read-only directory cannot be made";
    const CliRun r = run_cli({QLLM_BINARY, "quantize", synth_a().string(), (dir / "out.gguf").string(), "Q4_K_M"}, tmp / "err");
    expect_clean_failure(r, dir / "out.gguf", kSentinel, "read-only directory");
    EXPECT_EQ(r.exit_code, 1);
}

TEST(QuantizeFaults, SameInputAndOutput) {
    QLLM_REQUIRE_SHARED(synth_a());
    TempDir tmp;
    fs::copy_file(synth_a(), tmp / "in.gguf");
    const std::string original = read_text(tmp / "in.gguf");
    CliRun r = run_cli({QLLM_BINARY, "quantize", (tmp / "in.gguf").string(), (tmp / "in.gguf").string(), "Q8_0"}, tmp / "err");
    expect_clean_failure(r, tmp / "in.gguf", original, "same path");
    EXPECT_NE(r.err.find("same file"), std::string::npos) << r.err;
    fs::create_hard_link(tmp / "in.gguf", tmp / "link.gguf");
    r = run_cli({QLLM_BINARY, "quantize", (tmp / "in.gguf").string(), (tmp / "link.gguf").string(), "Q8_0"}, tmp / "err");
    expect_clean_failure(r, tmp / "link.gguf", original, "hard link");
}

TEST(QuantizeFaults, FileSizeLimitMidWrite) {
    QLLM_REQUIRE_SHARED(synth_a());
    TempDir tmp;
    const fs::path out = tmp / "out.gguf";
    write_file(out, kSentinel);
    // SIGXFSZ is ignored by the writer, so write() fails with EFBIG once past the limit.
    const std::string cmd = "ulimit -f 64; exec '" + std::string(QLLM_BINARY) + "' quantize '" + synth_a().string() +
                            "' '" + out.string() + "' Q4_K_M -t 2";
    const CliRun r = run_cli({"/bin/sh", "-c", cmd}, tmp / "err");
    expect_clean_failure(r, out, kSentinel, "ulimit -f");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("write failed"), std::string::npos) << r.err;
}

// A model big enough that quantizing it takes a while with one thread; made once, removed at exit.
struct BigModel {
    TempDir dir;
    fs::path path = dir / "big.gguf";
    BigModel() {
        const CliRun r = run_cli({QLLM_BINARY, "synth", "--shape", "tiny", "--layers", "24", "--type", "F16", "-o",
                                  path.string()}, dir / "synth.err");
        EXPECT_EQ(r.exit_code, 0) << r.err;
    }
};

const fs::path& big_model() {
    static const BigModel model;
    return model.path;
}

// Starts a quantization, waits for its temporary file, then sends `sig`.
CliRun interrupt_quantize(const fs::path& dir, int sig) {
    const fs::path out = dir / "out.gguf";
    const pid_t pid = spawn({QLLM_BINARY, "quantize", big_model().string(), out.string(), "Q3_K_M", "-t", "1"}, dir / "err");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (temp_files(dir, "out.gguf").empty() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_FALSE(temp_files(dir, "out.gguf").empty()) << "the temporary output never appeared";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    kill(pid, sig);
    return wait_for(pid, dir / "err");
}

TEST(QuantizeFaults, CtrlCLeavesNothing) {
    TempDir tmp;
    write_file(tmp / "out.gguf", kSentinel);
    const CliRun r = interrupt_quantize(tmp.path, SIGINT);
    expect_clean_failure(r, tmp / "out.gguf", kSentinel, "SIGINT");
    EXPECT_EQ(r.exit_code, 130);
    EXPECT_NE(r.err.find("interrupted"), std::string::npos) << r.err;

    fs::remove(tmp / "out.gguf");
    const CliRun r2 = interrupt_quantize(tmp.path, SIGINT);
    expect_clean_failure(r2, tmp / "out.gguf", "", "SIGINT, no previous output");
}

TEST(QuantizeFaults, SigtermLeavesNothing) {
    TempDir tmp;
    write_file(tmp / "out.gguf", kSentinel);
    const CliRun r = interrupt_quantize(tmp.path, SIGTERM);
    EXPECT_EQ(r.signal, SIGTERM);  // the writer removes its file and dies of the signal
    EXPECT_EQ(read_text(tmp / "out.gguf"), kSentinel);
    EXPECT_TRUE(temp_files(tmp.path, "out.gguf").empty());
}

// ---- through the binary: refusals and usage errors ------------------------------------------

TEST(QuantizeCli, RequantizeNeedsTheFlag) {
    const fs::path q4 = shared_dir() / "golden" / "synth-a-f16" / "Q4_K_M.gguf";
    QLLM_REQUIRE_SHARED(q4);
    TempDir tmp;
    CliRun r = run_cli({QLLM_BINARY, "quantize", q4.string(), (tmp / "out.gguf").string(), "Q8_0"}, tmp / "err");
    expect_clean_failure(r, tmp / "out.gguf", "", "requantize");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("--allow-requantize"), std::string::npos) << r.err;
    r = run_cli({QLLM_BINARY, "quantize", "--allow-requantize", q4.string(), (tmp / "out.gguf").string(), "Q8_0"}, tmp / "err");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    gguf::File out((tmp / "out.gguf").string());
    EXPECT_EQ(out.find_tensor("blk.0.attn_q.weight")->type, TensorType::Q8_0);
}

TEST(QuantizeCli, UnknownTypeIsAUsageError) {
    QLLM_REQUIRE_SHARED(synth_a());
    TempDir tmp;
    const CliRun r = run_cli({QLLM_BINARY, "quantize", synth_a().string(), (tmp / "out.gguf").string(), "Q9_K"}, tmp / "err");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    const auto errors = lines_starting(r.err, "qllm: error:");
    ASSERT_EQ(errors.size(), 1u) << r.err;
    for (const char* name : {"Q9_K", "Q4_0", "Q2_K", "Q4_K_M", "Q6_K", "Q8_0", "BF16", "F32"}) {
        EXPECT_NE(errors[0].find(name), std::string::npos) << name << " not in: " << errors[0];
    }
    EXPECT_FALSE(fs::exists(tmp / "out.gguf"));
}

TEST(QuantizeCli, HelpListsTypesWithBitsPerWeight) {
    TempDir tmp;
    const pid_t pid = spawn({"/bin/sh", "-c", std::string("'") + QLLM_BINARY + "' quantize --help 1>&2"}, tmp / "err");
    const CliRun r = wait_for(pid, tmp / "err");
    EXPECT_EQ(r.exit_code, 0);
    for (const char* text : {"Q4_K_M", "Q3_K_L", "BF16", "4.5", "6.562", "--imatrix", "--dry-run"}) {
        EXPECT_NE(r.err.find(text), std::string::npos) << text;
    }
}

TEST(QuantizeCli, ProgressAndSummary) {
    QLLM_REQUIRE_SHARED(synth_a());
    TempDir tmp;
    const CliRun r = run_cli({QLLM_BINARY, "quantize", synth_a().string(), (tmp / "out.gguf").string(), "q4_k", "2"}, tmp / "err");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(lines_starting(r.err, "[").size(), 30u) << r.err;
    EXPECT_NE(r.err.find("blk.2.ffn_down.weight"), std::string::npos);
    EXPECT_NE(r.err.find("bpw"), std::string::npos);
    EXPECT_EQ(gguf::File((tmp / "out.gguf").string()).get_count("general.file_type"), 15u);
}

}  // namespace
}  // namespace qllm::test
