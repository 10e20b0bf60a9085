// AVX-512 (F, BW, VL, DQ, VNNI, BF16) kernels, written over the AVX2 ones: the F16 and BF16 dots
// here, the quantized formats in avx512_quants.cpp, the interleaved layouts in
// avx512_groups.cpp. Compiled with AVX-512 flags; only called when the CPU has them.
#pragma GCC optimize("fp-contract=off")  // only explicit FMAs
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() operands that trip -Wuninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu.h"
#include "kernels/x86/row_stream.h"
#include "qllm/half.h"

namespace qllm {
namespace avx512 {
void register_quant_kernels(TraitsTable& t);  // avx512_quants.cpp
void register_group_kernels(TraitsTable& t);  // avx512_groups.cpp
}  // namespace avx512

namespace {

// Local conversions: the header's inline functions are not used, so that no copy of them is
// compiled with this file's flags.
inline float half_to_float(f16_t h) { return _cvtsh_ss(h); }
inline float bf16_to_float_scalar(bf16_t h) {
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// Sums 16 lanes as ref::reduce_lanes16 does: 8+8, 4+4, 2+2, 1+1.
inline float hsum16(__m512 v) {
    const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 r8 = _mm256_add_ps(_mm512_castps512_ps256(v), high);
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

inline __m512 load_f16x16(const f16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// f16 · f16 in float over 16 lanes and a pairwise horizontal add: the reference's order, so F16 models give the reference's logits bit for
// bit. f16 products are exact in float, so the FMA rounds like a multiply-then-add.
template <bool kPrefetch = false>
float f16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const f16_t*>(x);
    const auto* b = static_cast<const f16_t*>(y);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        if constexpr (kPrefetch) {
            if (i % 32 == 0) prefetch_ahead(a + i, 64);
        }
        acc = _mm512_fmadd_ps(load_f16x16(a + i), load_f16x16(b + i), acc);
    }
    double sum = hsum16(acc);
    for (; i < n; ++i) sum += double(half_to_float(a[i])) * double(half_to_float(b[i]));
    return float(sum);
}

// bf16 · bf16 with vdpbf16ps: lane j adds the products of values 2j+1 then 2j of every 32, the
// reference's order, then the same pairwise tree. (The instruction flushes denormals; on
// normal-range data the result is the reference's bit for bit.)
template <bool kPrefetch = false>
float bf16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const bf16_t*>(x);
    const auto* b = static_cast<const bf16_t*>(y);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        if constexpr (kPrefetch) prefetch_ahead(a + i, 64);
        const __m512i va = _mm512_loadu_si512(a + i);
        const __m512i vb = _mm512_loadu_si512(b + i);
        acc = _mm512_dpbf16_ps(acc, __m512bh(va), __m512bh(vb));
    }
    double sum = hsum16(acc);
    for (; i < n; ++i) sum += double(bf16_to_float_scalar(a[i])) * double(bf16_to_float_scalar(b[i]));
    return float(sum);
}

}  // namespace

void register_avx512_kernels(TraitsTable& t) {
    t[size_t(TensorType::F16)].vec_dot = f16_vec_dot<>;
    t[size_t(TensorType::F16)].vec_dot_rows = rows_of<f16_vec_dot<true>>;
    // The dispatcher checks F/BW/VL/VNNI only; vdpbf16ps needs its own feature bit.
    if (__builtin_cpu_supports("avx512bf16")) {
        t[size_t(TensorType::BF16)].vec_dot = bf16_vec_dot<>;
        t[size_t(TensorType::BF16)].vec_dot_rows = rows_of<bf16_vec_dot<true>>;
    }
    avx512::register_quant_kernels(t);
    avx512::register_group_kernels(t);
}

}  // namespace qllm
