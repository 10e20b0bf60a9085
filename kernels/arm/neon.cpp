// NEON (ARMv8.2 dotprod) kernels; also the Apple Silicon path.
#include <arm_neon.h>

#include "kernels/cpu.h"
#include "qllm/half.h"

namespace qllm {
namespace {

float f16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const f16_t*>(x);
    const auto* b = static_cast<const f16_t*>(y);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t va = vreinterpretq_f16_u16(vld1q_u16(a + i));
        const float16x8_t vb = vreinterpretq_f16_u16(vld1q_u16(b + i));
        acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vget_low_f16(va)), vcvt_f32_f16(vget_low_f16(vb)));
        acc1 = vfmaq_f32(acc1, vcvt_f32_f16(vget_high_f16(va)), vcvt_f32_f16(vget_high_f16(vb)));
    }
    float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; ++i) sum += f16_to_f32(a[i]) * f16_to_f32(b[i]);
    return sum;
}

}  // namespace

void register_neon_kernels(TraitsTable& t) {
    t[size_t(TensorType::F16)].vec_dot = f16_vec_dot;
}

}  // namespace qllm
