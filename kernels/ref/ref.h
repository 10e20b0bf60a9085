// Scalar reference kernels: the definition of each format. SIMD variants are tested against these.
#pragma once

#include <cstdint>

namespace qllm::ref {

// Sums 16 float lanes pairwise (8+8, 4+4, 2+2, 1+1), the order of a 512-bit horizontal add.
// Kernels that must round like the reference accumulate in 16 lanes and finish with this.
inline float reduce_lanes8(float lane[8]) {
    for (int width = 4; width >= 1; width /= 2) {
        for (int j = 0; j < width; ++j) lane[j] += lane[j + width];
    }
    return lane[0];
}
inline float reduce_lanes16(float lane[16]) {
    for (int width = 8; width >= 1; width /= 2) {
        for (int j = 0; j < width; ++j) lane[j] += lane[j + width];
    }
    return lane[0];
}

// ---- plain floats (kernels/ref/float.cpp) ----
void f32_to_float(const void* src, float* dst, int64_t n);
void f32_from_float(const float* src, void* dst, int64_t n);
float f32_vec_dot(int64_t n, const void* x, const void* y);
void f16_to_float(const void* src, float* dst, int64_t n);
void f16_from_float(const float* src, void* dst, int64_t n);
float f16_vec_dot(int64_t n, const void* x, const void* y);
void bf16_to_float(const void* src, float* dst, int64_t n);
void bf16_from_float(const float* src, void* dst, int64_t n);
float bf16_vec_dot(int64_t n, const void* x, const void* y);

// ---- quantized formats ----
// Per format X: X_to_float (dequantize), X_from_float (ggml's reference quantizer),
// X_quantize (the file writer's quantizer: importance-weighted search when `importance` is given,
// else the reference), X_vec_dot (weight row x activation row in the partner format).
// Shared scale searches live in quant_search.h.

// Interleaved layouts of 16 rows (kernels/ref/repacked.cpp): built from a file format's rows, with
// row kernels whose results are that format's vec_dot of the rows, bit for bit.
void q4_0_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group);
void q4_0_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out);
void q8_0_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group);
void q8_0_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out);
void q2_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group);
void q2_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out);
void q4_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group);
void q4_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out);
void q5_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group);
void q5_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out);
void q3_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group);
void q3_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out);
void q6_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group);
void q6_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out);

// Legacy 32-value blocks (kernels/ref/legacy.cpp). Partners: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1.
void q4_0_to_float(const void* src, float* dst, int64_t n);
void q4_0_from_float(const float* src, void* dst, int64_t n);
void q4_0_quantize(const float* src, void* dst, int64_t n, const float* importance);
float q4_0_vec_dot(int64_t n, const void* x, const void* y);
void q4_1_to_float(const void* src, float* dst, int64_t n);
void q4_1_from_float(const float* src, void* dst, int64_t n);
void q4_1_quantize(const float* src, void* dst, int64_t n, const float* importance);
float q4_1_vec_dot(int64_t n, const void* x, const void* y);
void q5_0_to_float(const void* src, float* dst, int64_t n);
void q5_0_from_float(const float* src, void* dst, int64_t n);
void q5_0_quantize(const float* src, void* dst, int64_t n, const float* importance);
float q5_0_vec_dot(int64_t n, const void* x, const void* y);
void q5_1_to_float(const void* src, float* dst, int64_t n);
void q5_1_from_float(const float* src, void* dst, int64_t n);
void q5_1_quantize(const float* src, void* dst, int64_t n, const float* importance);
float q5_1_vec_dot(int64_t n, const void* x, const void* y);
void q8_0_to_float(const void* src, float* dst, int64_t n);
void q8_0_from_float(const float* src, void* dst, int64_t n);
void q8_0_quantize(const float* src, void* dst, int64_t n, const float* importance);  // ignores importance
float q8_0_vec_dot(int64_t n, const void* x, const void* y);
void q8_1_to_float(const void* src, float* dst, int64_t n);  // activation format: no quantize/vec_dot
void q8_1_from_float(const float* src, void* dst, int64_t n);

// K-quants, 256-value super-blocks (kernels/ref/kquants_low.cpp: Q2_K, Q3_K;
// kernels/ref/kquants_high.cpp: Q4_K, Q5_K, Q6_K, Q8_K). Partner of all: Q8_K.
void q2_k_to_float(const void* src, float* dst, int64_t n);
void q2_k_from_float(const float* src, void* dst, int64_t n);
void q2_k_quantize(const float* src, void* dst, int64_t n, const float* importance);
float q2_k_vec_dot(int64_t n, const void* x, const void* y);
void q3_k_to_float(const void* src, float* dst, int64_t n);
void q3_k_from_float(const float* src, void* dst, int64_t n);
void q3_k_quantize(const float* src, void* dst, int64_t n, const float* importance);
float q3_k_vec_dot(int64_t n, const void* x, const void* y);
void q4_k_to_float(const void* src, float* dst, int64_t n);
void q4_k_from_float(const float* src, void* dst, int64_t n);
void q4_k_quantize(const float* src, void* dst, int64_t n, const float* importance);
float q4_k_vec_dot(int64_t n, const void* x, const void* y);
void q5_k_to_float(const void* src, float* dst, int64_t n);
void q5_k_from_float(const float* src, void* dst, int64_t n);
void q5_k_quantize(const float* src, void* dst, int64_t n, const float* importance);
float q5_k_vec_dot(int64_t n, const void* x, const void* y);
void q6_k_to_float(const void* src, float* dst, int64_t n);
void q6_k_from_float(const float* src, void* dst, int64_t n);
void q6_k_quantize(const float* src, void* dst, int64_t n, const float* importance);
float q6_k_vec_dot(int64_t n, const void* x, const void* y);
void q8_k_to_float(const void* src, float* dst, int64_t n);  // activation format: no quantize/vec_dot
void q8_k_from_float(const float* src, void* dst, int64_t n);

// IQ4_NL (kernels/ref/iq4_nl.cpp). Partner: Q8_0.
void iq4_nl_to_float(const void* src, float* dst, int64_t n);
void iq4_nl_from_float(const float* src, void* dst, int64_t n);
void iq4_nl_quantize(const float* src, void* dst, int64_t n, const float* importance);
float iq4_nl_vec_dot(int64_t n, const void* x, const void* y);

}  // namespace qllm::ref
