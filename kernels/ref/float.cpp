// Reference kernels for the plain float types F32, F16 and BF16.
#include <cstring>

#include "kernels/ref/ref.h"
#include "qllm/half.h"

namespace qllm::ref {

void f32_to_float(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * sizeof(float)); }
void f32_from_float(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * sizeof(float)); }

float f32_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const float*>(x);
    const auto* b = static_cast<const float*>(y);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += double(a[i]) * double(b[i]);
    return float(sum);
}

void f16_to_float(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const f16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(h[i]);
}

void f16_from_float(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<f16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(src[i]);
}

float f16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const f16_t*>(x);
    const auto* b = static_cast<const f16_t*>(y);
    // 16 float lanes over blocks of 16 values, then a pairwise tree: the reference's order
    // (f16 products are exact in float, so only the additions round).
    float lane[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int j = 0; j < 16; ++j) lane[j] += f16_to_f32(a[i + j]) * f16_to_f32(b[i + j]);
    }
    double sum = reduce_lanes16(lane);
    for (; i < n; ++i) sum += double(f16_to_f32(a[i])) * double(f16_to_f32(b[i]));
    return float(sum);
}

void bf16_to_float(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const bf16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
}

void bf16_from_float(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<bf16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(src[i]);
}

float bf16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const bf16_t*>(x);
    const auto* b = static_cast<const bf16_t*>(y);
    // 16 float lanes, each adding the products of one pair of neighbours per 32 values (odd then
    // even), then a pairwise tree: the order of the reference's AVX512-BF16 matrix kernel.
    float lane[16] = {};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int j = 0; j < 16; ++j) {
            lane[j] += bf16_to_f32(a[i + 2 * j + 1]) * bf16_to_f32(b[i + 2 * j + 1]);
            lane[j] += bf16_to_f32(a[i + 2 * j]) * bf16_to_f32(b[i + 2 * j]);
        }
    }
    double sum = reduce_lanes16(lane);
    for (; i < n; ++i) sum += double(bf16_to_f32(a[i])) * double(bf16_to_f32(b[i]));
    return float(sum);
}

}  // namespace qllm::ref
