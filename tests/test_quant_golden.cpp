// The reference kernels of every quantized format against llama.cpp's golden vectors
// (../shared/golden/quant/<TYPE>.json, 12 cases of a 512-value row per type): dequantization
// bit for bit, reference and importance-weighted quantization byte for byte, the activation
// partner's quantization byte for byte, and vec_dot within 1e-3 relative of ggml's.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/types.h"
#include "support.h"

namespace qllm {
namespace {

namespace fs = std::filesystem;

// The scalar reference rows: this file tests the format definitions, not the dispatched kernels.
const TypeTraits& reference_row(TensorType type) { return reference_table()[size_t(type)]; }

fs::path golden_quant_dir() { return test::shared_dir() / "golden" / "quant"; }

// The golden files present (one test instance per file); a placeholder when the directory is
// missing so that the tests report the skip instead of vanishing.
std::vector<std::string> golden_types() {
    std::vector<std::string> types;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(golden_quant_dir(), ec)) {
        if (entry.path().extension() == ".json") types.push_back(entry.path().stem().string());
    }
    std::sort(types.begin(), types.end());
    if (types.empty()) types.push_back("missing");
    return types;
}

// The golden files write non-finite dot products as bare NaN / Infinity (Python's json), which
// strict JSON parsers reject; quote them so they parse as strings ("NaN", "-Infinity").
std::string quote_non_finite(std::string text) {
    for (const char* token : {"-Infinity", "Infinity", "NaN"}) {
        const std::string word = token;
        for (size_t pos = text.find(word); pos != std::string::npos; pos = text.find(word, pos + word.size() + 2)) {
            const bool quoted = pos > 0 && (text[pos - 1] == '"' || text[pos - 1] == '-');
            if (!quoted) {
                text.insert(pos + word.size(), "\"");
                text.insert(pos, "\"");
            }
        }
    }
    return text;
}

// A number, or a quoted non-finite value.
double json_number(const nlohmann::json& value) {
    return value.is_string() ? std::stod(value.get<std::string>()) : value.get<double>();
}

std::vector<uint8_t> from_hex(const std::string& hex) {
    std::vector<uint8_t> bytes(hex.size() / 2);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    return bytes;
}

std::vector<float> floats_from_hex(const std::string& hex) {
    const std::vector<uint8_t> bytes = from_hex(hex);
    std::vector<float> out(bytes.size() / sizeof(float));
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
    return out;
}

// "" when equal, else where and how the byte arrays first differ.
std::string byte_diff(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, size_t block_bytes) {
    if (got.size() != want.size()) {
        return "size " + std::to_string(got.size()) + " != " + std::to_string(want.size());
    }
    size_t n_diff = 0, first = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] != want[i] && n_diff++ == 0) first = i;
    }
    if (n_diff == 0) return "";
    char buf[160];
    std::snprintf(buf, sizeof buf, "%zu bytes differ; first at byte %zu (block %zu, offset %zu): got 0x%02x want 0x%02x",
                  n_diff, first, first / block_bytes, first % block_bytes, got[first], want[first]);
    return buf;
}

// "" when bit-identical, else the first differing value.
std::string float_bits_diff(const std::vector<float>& got, const std::vector<float>& want) {
    if (got.size() != want.size()) {
        return "size " + std::to_string(got.size()) + " != " + std::to_string(want.size());
    }
    size_t n_diff = 0, first = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && n_diff++ == 0) first = i;
    }
    if (n_diff == 0) return "";
    char buf[160];
    std::snprintf(buf, sizeof buf, "%zu values differ; first at %zu: got %.9g want %.9g", n_diff, first,
                  double(got[first]), double(want[first]));
    return buf;
}

// Sum of squared reconstruction errors; +inf when anything is not finite.
double reconstruction_error(const std::vector<float>& input, const std::vector<float>& dequant) {
    double err = 0;
    for (size_t i = 0; i < input.size(); ++i) err += (double(dequant[i]) - input[i]) * (double(dequant[i]) - input[i]);
    return std::isfinite(err) ? err : INFINITY;
}

// Importance-quantization cases where qllm deliberately differs from the ggml build that wrote
// the golden files. The golden README's rule applies to them: the reconstruction error must be
// lower than ggml's, never higher.
bool is_deliberate_deviation(const std::string& type_and_case) {
    // With |x| ~ 1e-30 every importance weight underflows to 0 and that ggml's make_qp_quants
    // returns 0/0: NaN super-block d/dmin, so ggml's reconstruction is all NaN (and its levels,
    // re-picked against NaN, all 0). qllm (like later ggml) writes d = dmin = 0 instead; the
    // sub-block scale bytes are the same, the level bytes keep the search's values.
    static const char* const kCases[] = {"Q2_K/tiny", "Q4_K/tiny", "Q5_K/tiny"};
    return std::find(std::begin(kCases), std::end(kCases), type_and_case) != std::end(kCases);
}

class QuantGoldenTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        const fs::path path = golden_quant_dir() / (GetParam() + ".json");
        QLLM_REQUIRE_SHARED(path);
        doc_ = nlohmann::json::parse(quote_non_finite(test::read_text(path)));
        const auto type = type_from_name(doc_.at("type").get<std::string>());
        ASSERT_TRUE(type.has_value()) << "unknown type " << doc_.at("type");
        type_ = *type;
        const TypeTraits& t = reference_row(type_);
        ASSERT_EQ(uint32_t(type_), doc_.at("ggml_type_id").get<uint32_t>());
        ASSERT_EQ(t.block_size, doc_.at("block_size").get<int64_t>());
        ASSERT_EQ(t.type_size, doc_.at("type_size").get<size_t>());
        ASSERT_TRUE(t.to_float && t.from_float) << t.name << " has no kernels registered";
        n_ = doc_.at("n_per_row").get<int64_t>();
        ASSERT_EQ(doc_.at("cases").size(), 12u);
    }

    const TypeTraits& row() const { return reference_row(type_); }
    std::string where(const nlohmann::json& c) const {
        return GetParam() + "/" + c.at("name").get<std::string>();
    }
    std::vector<float> dequantize(const TypeTraits& t, const std::vector<uint8_t>& q) const {
        std::vector<float> out(static_cast<size_t>(n_));
        t.to_float(q.data(), out.data(), n_);
        return out;
    }

    nlohmann::json doc_;
    TensorType type_ = TensorType::F32;
    int64_t n_ = 0;
};

TEST_P(QuantGoldenTest, DequantizeIsBitExact) {
    for (const auto& c : doc_.at("cases")) {
        const auto got = dequantize(row(), from_hex(c.at("quant")));
        const std::string diff = float_bits_diff(got, floats_from_hex(c.at("dequant")));
        EXPECT_EQ(diff, "") << where(c);
        if (c.contains("quant_imatrix")) {
            const auto got_im = dequantize(row(), from_hex(c.at("quant_imatrix")));
            EXPECT_EQ(float_bits_diff(got_im, floats_from_hex(c.at("dequant_imatrix"))), "") << where(c) << " (imatrix)";
        }
    }
}

TEST_P(QuantGoldenTest, ReferenceQuantizeIsByteExact) {
    for (const auto& c : doc_.at("cases")) {
        const auto input = floats_from_hex(c.at("input"));
        ASSERT_EQ(int64_t(input.size()), n_) << where(c);
        std::vector<uint8_t> got(row().row_size(n_));
        row().from_float(input.data(), got.data(), n_);
        EXPECT_EQ(byte_diff(got, from_hex(c.at("quant")), row().type_size), "") << where(c);
        // Without importance, the file quantizer is the reference one.
        if (row().quantize) {
            std::vector<uint8_t> got_q(got.size());
            row().quantize(input.data(), got_q.data(), n_, nullptr);
            EXPECT_EQ(byte_diff(got_q, got, row().type_size), "") << where(c) << " (quantize without importance)";
        }
    }
}

TEST_P(QuantGoldenTest, ImportanceQuantizeIsByteExact) {
    if (!doc_.at("cases").at(0).contains("imatrix")) GTEST_SKIP() << GetParam() << " has no imatrix vectors";
    ASSERT_NE(row().quantize, nullptr);
    for (const auto& c : doc_.at("cases")) {
        const auto input = floats_from_hex(c.at("input"));
        const auto importance = floats_from_hex(c.at("imatrix"));
        ASSERT_EQ(int64_t(importance.size()), n_) << where(c);
        std::vector<uint8_t> got(row().row_size(n_));
        row().quantize(input.data(), got.data(), n_, importance.data());
        const auto want_dequant = floats_from_hex(c.at("dequant_imatrix"));
        if (is_deliberate_deviation(where(c))) {
            const double ours = reconstruction_error(input, dequantize(row(), got));
            const double ggml = reconstruction_error(input, want_dequant);
            EXPECT_TRUE(std::isfinite(ours) && ours <= ggml) << where(c) << ": error " << ours << " vs ggml's " << ggml;
            continue;
        }
        EXPECT_EQ(byte_diff(got, from_hex(c.at("quant_imatrix")), row().type_size), "") << where(c);
        EXPECT_EQ(float_bits_diff(dequantize(row(), got), want_dequant), "") << where(c);
    }
}

TEST_P(QuantGoldenTest, PartnerQuantizeIsByteExact) {
    if (!doc_.at("cases").at(0).contains("act")) GTEST_SKIP() << GetParam() << " is an activation format only";
    const TypeTraits& partner = reference_row(row().vec_dot_type);
    ASSERT_EQ(partner.name, doc_.at("cases").at(0).at("act_type").get<std::string>());
    ASSERT_NE(partner.from_float, nullptr);
    for (const auto& c : doc_.at("cases")) {
        const auto act = floats_from_hex(c.at("act"));
        std::vector<uint8_t> got(partner.row_size(n_));
        partner.from_float(act.data(), got.data(), n_);
        EXPECT_EQ(byte_diff(got, from_hex(c.at("act_quant")), partner.type_size), "") << where(c);
    }
}

TEST_P(QuantGoldenTest, VecDotMatchesReference) {
    if (!doc_.at("cases").at(0).contains("dot")) GTEST_SKIP() << GetParam() << " is an activation format only";
    ASSERT_NE(row().vec_dot, nullptr);
    for (const auto& c : doc_.at("cases")) {
        const auto quant = from_hex(c.at("quant"));
        const auto act_quant = from_hex(c.at("act_quant"));
        const double want = json_number(c.at("dot"));
        const double got = row().vec_dot(n_, quant.data(), act_quant.data());
        if (std::isnan(want)) {
            // e.g. Q4_1 "large": the block minimum overflows f16 to -inf and m*s gives inf - inf.
            EXPECT_TRUE(std::isnan(got)) << where(c) << ": got " << got << ", ggml gives NaN";
        } else {
            EXPECT_NEAR(got, want, 1e-3 * std::max(1.0, std::fabs(want))) << where(c);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantGoldenTest, ::testing::ValuesIn(golden_types()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) { return param_info.param; });

}  // namespace
}  // namespace qllm
