// The operations of the forward pass, on row-major f32 activations (one row per token).
// Their roundings follow the reference engine (ggml CPU): see each function.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"

namespace qllm::ops {

// out[t] = table row ids[t], dequantized. (n_tokens, table.ne[0])
void get_rows(const TensorView& table, std::span<const TokenId> ids, float* out);

// out = x / sqrt(mean(x^2) + eps) * weight, for each of n_rows rows of length n.
void rms_norm(const float* x, const TensorView& weight, float* out, int64_t n_rows, int64_t n, float eps);

// out (n_tokens, w.ne[1]) = x (n_tokens, w.ne[0]) @ W^T. The activations are first converted to
// the weight type's vec_dot partner (f16 for F16, q8_0 for Q4_0, ...), as the reference does.
void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* out, std::vector<uint8_t>& scratch);

// Several products of the same x (Q, K and V; gate and up) at once: the activations are converted
// once per partner format, and the threads share out all the rows before meeting.
struct Product {
    const TensorView* w;
    float* out;  // (n_tokens, w->ne[1])
};
inline constexpr size_t kMaxProducts = 4;
void matmul(std::span<const Product> products, const float* x, int64_t n_tokens, std::vector<uint8_t>& scratch);

struct RopeParams {
    int64_t n_rot;
    float base;
    float freq_scale;
    RopeStyle style;
    const float* freq_factors;  // per rotary pair, theta is divided by it; may be null
};

// Rotary position embedding in place on x (n_heads, head_dim) at position pos.
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, const RopeParams& p);

struct AttentionParams {
    int64_t n_head, n_head_kv, head_dim;
    float kq_scale;  // scores are scaled by this before the softmax
    float softcap;   // scores -> softcap * tanh(scores / softcap) first, when > 0
    int64_t window;  // only keys less than this far behind the query, when > 0
};

// Causal grouped-query attention of n_tokens tokens at positions n_past.. (q: n_tokens rows of
// (n_head, head_dim)) over one layer's f16 cache (positions [0, n_past + n_tokens), rows of
// n_head_kv * head_dim), into out (the same shape as q). The (KV head, tokens) pieces are shared
// among the threads; each converts its head's keys and values to float once.
void attention(const float* q, const uint16_t* k_cache, const uint16_t* v_cache, int64_t n_past, int64_t n_tokens,
               const AttentionParams& p, float* out);

void softmax(float* x, int64_t n);                            // in place, max-subtracted
float exp_approx(float x);  // e^x as softmax and silu_mul compute it (the reference's approximation)
void silu_mul(float* gate, const float* up, int64_t n);       // gate = silu(gate) * up
void gelu_mul(float* gate, const float* up, int64_t n);       // gate = gelu(gate) * up (tanh form)
void add(float* x, const float* y, int64_t n);                // x += y
void add_rows(float* x, const TensorView& bias, int64_t n_rows);  // each row of x += bias
void scale(float* x, float s, int64_t n);                     // x *= s
void softcap(float* x, float cap, int64_t n);                 // x = cap * tanh(x / cap)

}  // namespace qllm::ops
