// Every ISA's kernel table against the scalar reference, for every format with a dot product:
// the activation partner's from_float byte for byte, to_float bit for bit, and vec_dot within
// 1e-5 * sum |w_i * a_i| (F16/BF16 dots, which follow the reference's order, bit for bit on
// normal-range data). Portable: also built for aarch64 by tests/arm/CMakeLists.txt.
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/types.h"

namespace qllm {
namespace {

using T = TensorType;
using Bytes = std::vector<uint8_t>;

const TypeTraits& ref_row(T type) { return reference_table()[size_t(type)]; }
const TypeTraits& isa_row(Isa isa, T type) { return kernels_for(isa)[size_t(type)]; }

// The weight formats: every row of the reference table with a dot product.
std::vector<T> dot_types() {
    std::vector<T> out;
    for (uint32_t id = 0; id < kTensorTypeCount; ++id) {
        if (reference_table()[id].vec_dot) out.push_back(T(id));
    }
    return out;
}

// Rows of values of different shapes; `n` values, deterministic per seed.
enum class Shape { Gaussian, HeavyTailed, Zeros, Constant, Huge, Tiny, Denormal, Ties, MixedExtremes };

const Shape kAllShapes[] = {Shape::Gaussian, Shape::HeavyTailed, Shape::Zeros, Shape::Constant,    Shape::Huge,
                            Shape::Tiny,     Shape::Denormal,    Shape::Ties,  Shape::MixedExtremes};

std::string shape_name(Shape s) {
    switch (s) {
        case Shape::Gaussian: return "gaussian";
        case Shape::HeavyTailed: return "heavy-tailed";
        case Shape::Zeros: return "zeros";
        case Shape::Constant: return "constant";
        case Shape::Huge: return "huge";
        case Shape::Tiny: return "tiny";
        case Shape::Denormal: return "denormal";
        case Shape::Ties: return "ties";
        case Shape::MixedExtremes: return "mixed-extremes";
    }
    return "?";
}

std::vector<float> make_row(Shape shape, int64_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::uniform_int_distribution<int> level(-127, 126);
    std::vector<float> v(static_cast<size_t>(n));
    for (size_t i = 0; i < v.size(); ++i) {
        const float g = gauss(rng);
        switch (shape) {
            case Shape::Gaussian: v[i] = scale * g; break;
            case Shape::HeavyTailed: v[i] = scale * g * g * g; break;
            case Shape::Zeros: v[i] = 0.0f; break;
            case Shape::Constant: v[i] = scale * 0.37f; break;
            case Shape::Huge: v[i] = 3e38f * std::tanh(g); break;
            case Shape::Tiny: v[i] = 1e-37f * g; break;  // scales like -127/max overflow to inf
            case Shape::Denormal: v[i] = 1e-41f * g; break;
            // Half-integers with a block maximum of 127: x * id lands exactly on .5 for Q8_0/Q8_1
            // (round away from zero) and Q8_K (round to even).
            case Shape::Ties: v[i] = i % 32 == 0 ? 127.0f : float(level(rng)) + 0.5f; break;
            case Shape::MixedExtremes: {
                const int pick = int(rng() % 8);
                v[i] = pick == 0 ? -0.0f : pick == 1 ? 1e30f * g : pick == 2 ? 1e-30f * g : scale * g;
                break;
            }
        }
    }
    if (shape == Shape::Ties) {
        // Both signs of the largest magnitude: Q8_K must pick the first one.
        for (size_t i = 64; i < v.size(); i += 256) v[i] = -127.0f;
    }
    return v;
}

Bytes ref_quantize(T type, const std::vector<float>& x) {
    const TypeTraits& t = ref_row(type);
    Bytes out(t.row_size(int64_t(x.size())));
    t.from_float(x.data(), out.data(), int64_t(x.size()));
    return out;
}

std::vector<float> ref_dequantize(T type, const Bytes& q, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    ref_row(type).to_float(q.data(), out.data(), n);
    return out;
}

std::string first_byte_diff(const Bytes& got, const Bytes& want, size_t block_bytes) {
    if (got.size() != want.size()) return "size " + std::to_string(got.size()) + " != " + std::to_string(want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] != want[i]) {
            return "byte " + std::to_string(i) + " (block " + std::to_string(i / block_bytes) + ", offset " +
                   std::to_string(i % block_bytes) + "): got " + std::to_string(got[i]) + " want " +
                   std::to_string(want[i]);
        }
    }
    return "";
}

std::string first_float_diff(const std::vector<float>& got, const std::vector<float>& want) {
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            return "value " + std::to_string(i) + ": got " + std::to_string(got[i]) + " want " + std::to_string(want[i]);
        }
    }
    return "";
}

// Random bytes for every field of n_blocks blocks (all level and sub-block scale patterns), with
// finite f16 scales so that the dot products stay finite.
template <typename Block>
Bytes random_blocks(int64_t n_blocks, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
    std::vector<Block> blocks(static_cast<size_t>(n_blocks));
    for (auto& b : blocks) {
        auto* raw = reinterpret_cast<uint8_t*>(&b);
        for (size_t k = 0; k < sizeof b; ++k) raw[k] = uint8_t(rng());
        if constexpr (requires { b.d = f16_t{}; }) b.d = f32_to_f16(scale(rng));
        if constexpr (requires { b.m; }) b.m = f32_to_f16(scale(rng));
        if constexpr (requires { b.dmin; }) b.dmin = f32_to_f16(std::fabs(scale(rng)));
    }
    Bytes out(blocks.size() * sizeof(Block));
    std::memcpy(out.data(), blocks.data(), out.size());
    return out;
}

// Raw random weight bytes of a quantized format; empty for the float types.
Bytes random_weight_bytes(T type, int64_t n, uint32_t seed) {
    const int64_t nb = n / ref_row(type).block_size;
    switch (type) {
        case T::Q4_0: return random_blocks<BlockQ4_0>(nb, seed);
        case T::Q4_1: return random_blocks<BlockQ4_1>(nb, seed);
        case T::Q5_0: return random_blocks<BlockQ5_0>(nb, seed);
        case T::Q5_1: return random_blocks<BlockQ5_1>(nb, seed);
        case T::Q8_0: return random_blocks<BlockQ8_0>(nb, seed);
        case T::IQ4_NL: return random_blocks<BlockIQ4_NL>(nb, seed);
        case T::Q2_K: return random_blocks<BlockQ2_K>(nb, seed);
        case T::Q3_K: return random_blocks<BlockQ3_K>(nb, seed);
        case T::Q4_K: return random_blocks<BlockQ4_K>(nb, seed);
        case T::Q5_K: return random_blocks<BlockQ5_K>(nb, seed);
        case T::Q6_K: return random_blocks<BlockQ6_K>(nb, seed);
        default: return {};
    }
}

// ---- activation quantizers ----

TEST(KernelVariants, ActivationQuantizersMatchReferenceBytes) {
    std::set<T> partners;
    for (T type : dot_types()) partners.insert(ref_row(type).vec_dot_type);
    for (Isa isa : supported_isas()) {
        for (T partner : partners) {
            const TypeTraits& ref = ref_row(partner);
            const TypeTraits& simd = isa_row(isa, partner);
            ASSERT_NE(simd.from_float, nullptr);
            const int64_t unit = ref.block_size == 1 ? 1 : 256;  // multiples of every block size
            for (Shape shape : kAllShapes) {
                for (int64_t n : {unit * 1, unit * 2, unit * 16 + (ref.block_size == 1 ? 13 : 0)}) {
                    const auto x = make_row(shape, n, uint32_t(n) * 31 + uint32_t(shape));
                    Bytes want(ref.row_size(n)), got(ref.row_size(n));
                    ref.from_float(x.data(), want.data(), n);
                    simd.from_float(x.data(), got.data(), n);
                    EXPECT_EQ(first_byte_diff(got, want, ref.type_size), "")
                        << isa_name(isa) << " " << ref.name << " from_float, " << shape_name(shape) << " n=" << n;
                }
            }
        }
    }
}

// ---- dequantization ----

TEST(KernelVariants, ToFloatIsBitExact) {
    std::set<T> types;
    for (T type : dot_types()) {
        types.insert(type);
        types.insert(ref_row(type).vec_dot_type);
    }
    for (Isa isa : supported_isas()) {
        for (T type : types) {
            const TypeTraits& ref = ref_row(type);
            const TypeTraits& simd = isa_row(isa, type);
            ASSERT_NE(simd.to_float, nullptr);
            const int64_t n = ref.block_size == 1 ? 4096 + 7 : 4096;
            std::vector<Bytes> rows;
            for (Shape shape : {Shape::Gaussian, Shape::HeavyTailed, Shape::Huge, Shape::MixedExtremes}) {
                rows.push_back(ref_quantize(type, make_row(shape, n, 7 + uint32_t(shape), 3.0f)));
            }
            if (Bytes raw = random_weight_bytes(type, n, 99); !raw.empty()) rows.push_back(raw);
            for (size_t r = 0; r < rows.size(); ++r) {
                std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
                ref.to_float(rows[r].data(), want.data(), n);
                simd.to_float(rows[r].data(), got.data(), n);
                EXPECT_EQ(first_float_diff(got, want), "") << isa_name(isa) << " " << ref.name << " row " << r;
            }
        }
    }
}

// ---- dot products ----

// The ISA's dot of weight row w with activation row a against the reference's.
void expect_dot_close(Isa isa, T type, const Bytes& w, const Bytes& a, int64_t n, const std::string& what) {
    const TypeTraits& ref = ref_row(type);
    const double want = ref.vec_dot(n, w.data(), a.data());
    const double got = isa_row(isa, type).vec_dot(n, w.data(), a.data());
    const auto wf = ref_dequantize(type, w, n);
    const auto af = ref_dequantize(ref.vec_dot_type, a, n);
    double magnitude = 0;
    for (size_t i = 0; i < wf.size(); ++i) magnitude += std::fabs(double(wf[i]) * double(af[i]));
    const std::string where = std::string(isa_name(isa)) + " " + std::string(ref.name) + " " + what;
    if (!std::isfinite(want) || !std::isfinite(magnitude)) {
        // An f16 scale overflowed: inf - inf may come out as NaN or as an infinity depending on
        // the order of the sums; only finiteness has to agree.
        EXPECT_EQ(std::isfinite(got), std::isfinite(want)) << where << ": got " << got << " want " << want;
        return;
    }
    EXPECT_LE(std::fabs(got - want), 1e-5 * magnitude) << where << ": got " << got << " want " << want;
}

TEST(KernelVariants, VecDotWithinToleranceOfReference) {
    for (T type : dot_types()) {
        const TypeTraits& ref = ref_row(type);
        std::vector<int64_t> sizes = {256, 512, 1024, 4096, 16384};
        if (ref.block_size == 32) sizes.insert(sizes.end(), {160, 256 + 32, 704, 2048 + 96});  // odd block and group counts
        if (ref.block_size == 1) sizes.insert(sizes.end(), {256 + 1, 1000, 4096 + 31});  // tails
        for (int64_t n : sizes) {
            // Rows quantized once (the reference quantizers are slow), then dotted by every ISA.
            struct Case {
                Bytes w, a;
                std::string what;
            };
            std::vector<Case> cases;
            const uint32_t seed = uint32_t(type) * 7919 + uint32_t(n);
            const Bytes a = ref_quantize(ref.vec_dot_type, make_row(Shape::HeavyTailed, n, seed + 1, 2.0f));
            for (Shape shape : {Shape::Gaussian, Shape::HeavyTailed, Shape::Constant, Shape::Zeros}) {
                for (float scale : {1.0f, 1e-3f, 3e4f}) {
                    if (n == 16384 && shape != Shape::Gaussian) continue;
                    cases.push_back({ref_quantize(type, make_row(shape, n, seed, scale)), a,
                                     shape_name(shape) + " x" + std::to_string(scale) + " n=" + std::to_string(n)});
                }
            }
            if (Bytes raw = random_weight_bytes(type, n, seed + 2); !raw.empty()) {
                cases.push_back({raw, ref_quantize(ref.vec_dot_type, make_row(Shape::Gaussian, n, seed + 3)),
                                 "random blocks n=" + std::to_string(n)});
            }
            for (Isa isa : supported_isas()) {
                ASSERT_NE(isa_row(isa, type).vec_dot, nullptr);
                for (const Case& c : cases) expect_dot_close(isa, type, c.w, c.a, n, c.what);
            }
        }
    }
}

// F16 and BF16 dots accumulate in the reference's lane order, so normal-range data gives the
// reference's result bit for bit (the BF16 instructions flush denormals, hence "normal-range").
TEST(KernelVariants, FloatDotsAreBitExactOnNormalData) {
    for (Isa isa : supported_isas()) {
        for (T type : {T::F16, T::BF16}) {
            const TypeTraits& ref = ref_row(type);
            for (int64_t n : {16, 64, 256 + 5, 4096, 16384 + 31}) {
                const Bytes w = ref_quantize(type, make_row(Shape::Gaussian, n, uint32_t(n)));
                const Bytes a = ref_quantize(type, make_row(Shape::HeavyTailed, n, uint32_t(n) + 1));
                const float want = ref.vec_dot(n, w.data(), a.data());
                const float got = isa_row(isa, type).vec_dot(n, w.data(), a.data());
                EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0)
                    << isa_name(isa) << " " << ref.name << " n=" << n << ": got " << got << " want " << want;
            }
        }
    }
}

// Q5_1's reference emulates ggml's AVX2 kernel (8 lanes fma'd per block, offsets apart), and the
// x86 tables use that very structure: bit for bit.
TEST(KernelVariants, X86Q5_1DotIsBitExact) {
    for (Isa isa : supported_isas()) {
        if (isa != Isa::Avx2 && isa != Isa::Avx512) continue;
        for (int64_t n : {32, 256, 4096 + 96}) {
            for (Shape shape : {Shape::Gaussian, Shape::HeavyTailed}) {
                const Bytes w = ref_quantize(T::Q5_1, make_row(shape, n, uint32_t(n)));
                const Bytes a = ref_quantize(T::Q8_1, make_row(Shape::HeavyTailed, n, uint32_t(n) + 1, 2.0f));
                const float want = ref_row(T::Q5_1).vec_dot(n, w.data(), a.data());
                const float got = isa_row(isa, T::Q5_1).vec_dot(n, w.data(), a.data());
                EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0)
                    << isa_name(isa) << " n=" << n << " " << shape_name(shape) << ": got " << got << " want " << want;
            }
        }
    }
}

// A row kernel gives each row the vec_dot's float bit for bit, whatever the row count, the
// row stride and the length (legacy rows with odd counts of 4-block groups and 1-3 blocks after
// them, float rows whose length is not a multiple of the vector).
TEST(KernelVariants, VecDotRowsEqualsVecDot) {
    int kernels = 0;
    for (Isa isa : supported_isas()) {
        for (T type : dot_types()) {
            const TypeTraits& k = isa_row(isa, type);
            if (!k.vec_dot_rows) continue;
            ++kernels;
            std::vector<int64_t> sizes = {256, 4096 + 256};
            if (k.block_size == 32) sizes = {32, 96, 160, 704, 2048 + 96, 4096 + 32};
            if (k.block_size == 1) sizes = {16, 100, 2048 + 7, 4096 + 48};
            for (int64_t n : sizes) {
                const int64_t rows = 13;
                const size_t row_bytes = k.row_size(n), stride = row_bytes + 8;  // rows need not be adjacent
                Bytes w(stride * rows);
                for (int64_t r = 0; r < rows; ++r) {
                    const Shape shape = r % 3 == 0 ? Shape::HeavyTailed : Shape::Gaussian;
                    Bytes row = r == rows - 1 ? random_weight_bytes(type, n, uint32_t(r)) : Bytes{};
                    if (row.empty()) row = ref_quantize(type, make_row(shape, n, uint32_t(n + r)));
                    std::memcpy(w.data() + size_t(r) * stride, row.data(), row_bytes);
                }
                const Bytes a = ref_quantize(k.vec_dot_type, make_row(Shape::HeavyTailed, n, uint32_t(n) + 5, 2.0f));
                for (int64_t count : {int64_t(1), int64_t(4), rows}) {
                    std::vector<float> got(size_t(count), NAN);
                    k.vec_dot_rows(n, w.data(), stride, count, a.data(), got.data());
                    for (int64_t r = 0; r < count; ++r) {
                        const float want = k.vec_dot(n, w.data() + size_t(r) * stride, a.data());
                        EXPECT_EQ(std::memcmp(&got[size_t(r)], &want, sizeof want), 0)
                            << isa_name(isa) << " " << k.name << " n=" << n << " row " << r << " of " << count
                            << ": got " << got[size_t(r)] << " want " << want;
                    }
                }
            }
        }
    }
    if (kernels == 0) GTEST_SKIP() << "no row kernels on this CPU";
}

// The x86 tables really hold SIMD kernels for the formats (so the tests above test something).
TEST(KernelVariants, X86TablesOverrideTheReference) {
    for (Isa isa : supported_isas()) {
        if (isa != Isa::Avx2 && isa != Isa::Avx512) continue;
        for (T type : {T::F32, T::F16, T::BF16, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::Q8_0, T::IQ4_NL, T::Q2_K, T::Q3_K,
                       T::Q4_K, T::Q5_K, T::Q6_K}) {
            EXPECT_NE(isa_row(isa, type).vec_dot, ref_row(type).vec_dot) << isa_name(isa) << " " << ref_row(type).name;
        }
        for (T type : {T::Q8_0, T::Q8_1, T::Q8_K, T::F16, T::BF16}) {
            EXPECT_NE(isa_row(isa, type).from_float, ref_row(type).from_float)
                << isa_name(isa) << " " << ref_row(type).name;
        }
    }
}

}  // namespace
}  // namespace qllm
