// Logits and greedy generation against the reference engine's golden outputs.
#include <gtest/gtest.h>

#include "golden.h"
#include "model/context.h"
#include "qllm/error.h"

namespace qllm {
namespace {

using test::shared_dir;

struct LogitsCase {
    std::string model;   // relative to golden/
    std::string logits;  // relative to golden/
    double max_mean_kl;
};

std::string path_name(const testing::TestParamInfo<std::string>& info);

// Lets GoogleTest name a case without dumping its bytes.
[[maybe_unused]] void PrintTo(const LogitsCase& c, std::ostream* os) { *os << c.model; }

std::string case_name(const testing::TestParamInfo<LogitsCase>& info) {
    std::string s = info.param.model;
    for (char& c : s) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

class GoldenLogits : public testing::TestWithParam<LogitsCase> {};

// Our logits for the reference's own tokens (which also checks that we tokenize the prompt alike).
std::vector<float> our_logits(const Model& model, const test::LogitsFile& ref) {
    const std::string prompt = test::read_text(shared_dir() / "golden/prompt.txt");
    const auto tokens = model.tokenizer().encode(prompt, model.vocab().add_bos);
    EXPECT_EQ(std::vector<int32_t>(tokens.begin(), tokens.end()), ref.tokens) << "prompt tokenized differently";
    Context ctx(model, int64_t(ref.tokens.size()));
    const auto logits = ctx.eval(ref.tokens, true);
    return {logits.begin(), logits.end()};
}

TEST_P(GoldenLogits, MatchReference) {
    const auto& c = GetParam();
    const auto model_path = shared_dir() / "golden" / c.model;
    const auto logits_path = shared_dir() / "golden" / c.logits;
    QLLM_REQUIRE_SHARED(model_path);
    QLLM_REQUIRE_SHARED(logits_path);
    const auto ref = test::read_logits(logits_path);
    ASSERT_FALSE(ref.tokens.empty()) << "unreadable logits file " << logits_path;
    auto model = Model::load(model_path.string());
    ASSERT_EQ(model->hparams().n_vocab, ref.n_vocab);
    const auto ours = our_logits(*model, ref);
    const auto cmp = test::compare_logits(ref, ours.data());
    RecordProperty("mean_kl", std::to_string(cmp.mean_kl));
    EXPECT_LT(cmp.mean_kl, c.max_mean_kl) << "max |dlogit| " << cmp.max_abs_diff;
    EXPECT_EQ(cmp.top1, 1.0) << "mean KL " << cmp.mean_kl;
}

INSTANTIATE_TEST_SUITE_P(
    FloatModels, GoldenLogits,
    testing::Values(LogitsCase{"stories260K/F32.gguf", "stories260K/F32.logits", 1e-6},
                    LogitsCase{"../models/stories260K.gguf", "stories260K/F32.logits", 1e-6},
                    LogitsCase{"stories260K/F16.gguf", "stories260K/F16.logits", 1e-5},
                    LogitsCase{"stories260K/BF16.gguf", "stories260K/BF16.logits", 1e-5},
                    LogitsCase{"synth-a-f16/F32.gguf", "synth-a-f16/F32.logits", 1e-6},
                    LogitsCase{"synth-a-f16/F16.gguf", "synth-a-f16/F16.logits", 1e-5},
                    LogitsCase{"synth-a-f16/BF16.gguf", "synth-a-f16/BF16.logits", 1e-5},
                    LogitsCase{"bases/synth-a-f16.gguf", "synth-a-f16/F16.logits", 1e-5},
                    LogitsCase{"bases/synth-b-f32.gguf", "synth-b-f32/F32.logits", 1e-6},
                    LogitsCase{"synth-b-f32/F16.gguf", "synth-b-f32/F16.logits", 1e-5},
                    LogitsCase{"synth-b-f32/BF16.gguf", "synth-b-f32/BF16.logits", 1e-5}),
    case_name);

// Other architectures (synthetic weights, short sliding windows so that windowing matters).
INSTANTIATE_TEST_SUITE_P(
    Architectures, GoldenLogits,
    testing::Values(LogitsCase{"arch-llama31/base.gguf", "arch-llama31/F32.logits", 1e-6},
                    LogitsCase{"arch-qwen2/base.gguf", "arch-qwen2/F32.logits", 1e-6},
                    LogitsCase{"arch-qwen3/base.gguf", "arch-qwen3/F32.logits", 1e-6},
                    LogitsCase{"arch-phi3/base.gguf", "arch-phi3/F32.logits", 1e-6},
                    LogitsCase{"arch-gemma2/base.gguf", "arch-gemma2/F32.logits", 1e-6},
                    LogitsCase{"arch-gemma3/base.gguf", "arch-gemma3/F32.logits", 1e-5}),
    case_name);

// Quantized files: with F = the model's F32 logits, R = the reference's logits on this file and
// Y = ours, we must be no less accurate than the reference (KL(F||Y) <= 1.05 KL(F||R) + 1e-6)
// and closer to it than the quantization error itself (KL(R||Y) <= KL(F||R)).
class GoldenQuantized : public testing::TestWithParam<std::string> {};

TEST_P(GoldenQuantized, AsAccurateAsReference) {
    const std::string dir = GetParam().substr(0, GetParam().find('/'));
    const auto model_path = shared_dir() / "golden" / (GetParam() + ".gguf");
    const auto ref_path = shared_dir() / "golden" / (GetParam() + ".logits");
    const auto f32_path = shared_dir() / "golden" / dir / "F32.logits";
    QLLM_REQUIRE_SHARED(model_path);
    QLLM_REQUIRE_SHARED(ref_path);
    QLLM_REQUIRE_SHARED(f32_path);
    const auto ref = test::read_logits(ref_path);
    const auto full = test::read_logits(f32_path);
    ASSERT_FALSE(ref.tokens.empty());
    ASSERT_EQ(ref.tokens, full.tokens);
    auto model = Model::load(model_path.string());
    const auto ours = our_logits(*model, ref);
    const double kl_f_r = test::compare_logits(full, ref.logits.data()).mean_kl;
    const double kl_f_y = test::compare_logits(full, ours.data()).mean_kl;
    const double kl_r_y = test::compare_logits(ref, ours.data()).mean_kl;
    EXPECT_LE(kl_f_y, 1.05 * kl_f_r + 1e-6) << "KL(F||R) " << kl_f_r << ", KL(R||Y) " << kl_r_y;
    EXPECT_LE(kl_r_y, kl_f_r) << "KL(F||Y) " << kl_f_y;
}

std::vector<std::string> quantized_cases() {
    std::vector<std::string> out;
    for (const char* model : {"synth-a-f16", "synth-b-f32", "stories260K"}) {
        for (const char* ftype : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L",
                                  "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"}) {
            // stories260K has no legacy-type files (its rows of 172 are refused by the reference).
            if (std::string(model) == "stories260K" && ftype[2] != 'K' && ftype[3] != 'K') continue;
            out.push_back(std::string(model) + "/" + ftype);
        }
    }
    for (const char* arch : {"llama31", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"}) {
        out.push_back(std::string("arch-") + arch + "/Q8_0");
        out.push_back(std::string("arch-") + arch + "/Q4_K_M");
    }
    return out;
}

std::string path_name(const testing::TestParamInfo<std::string>& info) {
    std::string s = info.param;
    for (char& c : s) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

INSTANTIATE_TEST_SUITE_P(QuantizedModels, GoldenQuantized, testing::ValuesIn(quantized_cases()), path_name);

// Greedy generation of 48 tokens after "Once upon a time", EOS ignored: the `gen:` ids.
class GoldenGreedy : public testing::TestWithParam<std::string> {};

TEST_P(GoldenGreedy, SameTokens) {
    // "arch-x/F32" names the base model of an architecture and its F32 greedy file.
    const bool arch_base = GetParam().rfind("arch-", 0) == 0 && GetParam().ends_with("/F32");
    const std::string dir = GetParam().substr(0, GetParam().find('/'));
    const auto model_path = shared_dir() / "golden" / (arch_base ? dir + "/base.gguf" : GetParam() + ".gguf");
    const auto greedy_path = shared_dir() / "golden" / (GetParam() + ".greedy.txt");
    QLLM_REQUIRE_SHARED(model_path);
    QLLM_REQUIRE_SHARED(greedy_path);
    const auto expected_prompt = test::read_greedy_ids(greedy_path, "prompt:");
    const auto expected = test::read_greedy_ids(greedy_path);
    ASSERT_EQ(expected.size(), 48u);
    auto model = Model::load(model_path.string());
    const auto prompt = model->tokenizer().encode("Once upon a time", model->vocab().add_bos);
    ASSERT_EQ(std::vector<int32_t>(prompt.begin(), prompt.end()), expected_prompt);
    Context ctx(*model, 64);
    auto logits = ctx.eval(prompt, false);
    std::vector<int32_t> got;
    for (int i = 0; i < 48; ++i) {
        const TokenId next = TokenId(std::max_element(logits.begin(), logits.end()) - logits.begin());
        got.push_back(next);
        logits = ctx.eval(std::span(&next, 1), false);
    }
    EXPECT_EQ(got, expected);
}

INSTANTIATE_TEST_SUITE_P(FloatModels, GoldenGreedy,
                         testing::Values("stories260K/F32", "stories260K/F16", "stories260K/BF16", "synth-a-f16/F32",
                                         "synth-a-f16/F16", "synth-b-f32/F16", "synth-b-f32/BF16"),
                         path_name);
// stories260K's quantized files hold only the fallback types (q5_0, q8_0, iq4_nl, f16);
// synth-b's hold real K-quant tensors.
INSTANTIATE_TEST_SUITE_P(QuantizedModels, GoldenGreedy,
                         testing::Values("stories260K/Q4_K_M", "stories260K/Q6_K", "stories260K/Q2_K",
                                         "synth-b-f32/Q2_K", "synth-b-f32/Q4_K_M", "synth-b-f32/Q6_K"),
                         path_name);
INSTANTIATE_TEST_SUITE_P(Architectures, GoldenGreedy,
                         testing::Values("arch-llama31/F32", "arch-qwen2/F32", "arch-qwen3/F32", "arch-phi3/F32",
                                         "arch-gemma2/F32", "arch-gemma3/F32"),
                         path_name);

}  // namespace
}  // namespace qllm
