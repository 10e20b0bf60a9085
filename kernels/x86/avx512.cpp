// AVX-512 (F, BW, VL, VNNI) kernels, written over the AVX2 ones. Compiled with AVX-512 flags;
// only called when the CPU has them.
#include <immintrin.h>

#include "kernels/cpu.h"
#include "qllm/half.h"

namespace qllm {
namespace {

// f16 · f16 in float over 16 lanes and a pairwise horizontal add: the same order as the
// reference, so F16 models give the reference's logits bit for bit where the order matters.
float f16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const f16_t*>(x);
    const auto* b = static_cast<const f16_t*>(y);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 va = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
        const __m512 vb = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)));
        acc = _mm512_fmadd_ps(va, vb, acc);
    }
    double sum = _mm512_reduce_add_ps(acc);
    for (; i < n; ++i) sum += double(f16_to_f32(a[i])) * double(f16_to_f32(b[i]));
    return float(sum);
}

}  // namespace

void register_avx512_kernels(TraitsTable& t) {
    t[size_t(TensorType::F16)].vec_dot = f16_vec_dot;
}

}  // namespace qllm
