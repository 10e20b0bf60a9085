// Forward-pass operations. Matmuls go through the traits table, so every format plugs in here.
#include "graph/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/ref/ref.h"
#include "qllm/error.h"
#include "qllm/half.h"

namespace qllm::ops {
namespace {

// exp(x) as the reference's vectorized softmax and SiLU compute it (a degree-5 polynomial on
// the reduced argument, scaled by 2^n; within 1.5 ulp of expf). Using the same approximation
// keeps our f16-rounded attention weights identical to the reference's.
float vector_expf(float x) {
    const float shifter = 0x1.8p23f;
    const float z = std::fma(x, 0x1.715476p+0f, shifter);
    const float n = z - shifter;
    const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
    if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    const float u = b * b;
    const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                             u, std::fma(0x1.ffffecp-1f, b, 1.0f));
    return std::ldexp(j, int(n));
}

}  // namespace

void get_rows(const TensorView& table, std::span<const TokenId> ids, float* out) {
    const TypeTraits& t = traits(table.type);
    const int64_t n = table.ne[0];
    for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= table.ne[1]) fail("token id {} is out of range (vocabulary of {})", ids[i], table.ne[1]);
        t.to_float(table.row(ids[i]), out + int64_t(i) * n, n);
    }
}

void rms_norm(const float* x, const TensorView& weight, float* out, int64_t n_rows, int64_t n, float eps) {
    const auto* w = reinterpret_cast<const float*>(weight.data);
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* xr = x + r * n;
        float* yr = out + r * n;
        double sum = 0.0;  // the reference sums squares in double
        for (int64_t i = 0; i < n; ++i) sum += double(xr[i] * xr[i]);
        const float mean = float(sum / double(n));
        const float scale = 1.0f / std::sqrt(mean + eps);
        for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] * scale) * w[i];
    }
}

void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* out, std::vector<uint8_t>& scratch) {
    const TypeTraits& wt = traits(w.type);
    const TypeTraits& at = traits(wt.vec_dot_type);
    const int64_t n_in = w.ne[0];
    const int64_t n_out = w.ne[1];
    const size_t act_row = at.row_size(n_in);

    // Activations in the partner format, one row per token.
    const uint8_t* act = reinterpret_cast<const uint8_t*>(x);
    if (wt.vec_dot_type != TensorType::F32) {
        scratch.resize(act_row * size_t(n_tokens));
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < n_tokens; ++t) at.from_float(x + t * n_in, scratch.data() + size_t(t) * act_row, n_in);
        act = scratch.data();
    }

    const VecDotFn dot = wt.vec_dot;
    const size_t w_row = w.row_bytes();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n_out; ++r) {
        const uint8_t* wr = w.data + size_t(r) * w_row;
        for (int64_t t = 0; t < n_tokens; ++t) out[t * n_out + r] = dot(n_in, wr, act + size_t(t) * act_row);
    }
}

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, const RopeParams& p) {
    // theta_i = pos * base^(-2i/n_rot), built by repeated multiplication in float like the reference.
    const float theta_scale = std::pow(p.base, -2.0f / float(p.n_rot));
    float cache[kMaxHeadDim];  // cos, sin per rotary pair
    float theta = float(pos);
    for (int64_t i = 0; i < p.n_rot; i += 2) {
        const float factor = p.freq_factors ? p.freq_factors[i / 2] : 1.0f;
        const float angle = theta / factor * p.freq_scale;
        cache[i] = std::cos(angle);
        cache[i + 1] = std::sin(angle);
        theta *= theta_scale;
    }
    for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x + h * head_dim;
        for (int64_t i = 0; i < p.n_rot; i += 2) {
            // NORM rotates adjacent pairs (v[i], v[i+1]); NEOX rotates (v[i/2], v[i/2 + n_rot/2]).
            const int64_t a = p.style == RopeStyle::Norm ? i : i / 2;
            const int64_t b = p.style == RopeStyle::Norm ? i + 1 : i / 2 + p.n_rot / 2;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * cache[i] - x1 * cache[i + 1];
            v[b] = x0 * cache[i + 1] + x1 * cache[i];
        }
    }
}

void softmax(float* x, int64_t n) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::max(max, x[i]);
    // Blocks of 16 summed in float, blocks added in double: the reference's order.
    double sum = 0.0;
    for (int64_t start = 0; start < n; start += 16) {
        float lanes[16] = {};
        for (int64_t i = start; i < std::min(n, start + 16); ++i) lanes[i - start] = x[i] = vector_expf(x[i] - max);
        sum += ref::reduce_lanes16(lanes);
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void attention(const float* q, const uint16_t* k_cache, const uint16_t* v_cache, int64_t n_pos,
               const AttentionParams& p, float* out, float* scores) {
    const int64_t head_dim = p.head_dim;
    const int64_t kv_dim = p.n_head_kv * head_dim;
    const int64_t group = p.n_head / p.n_head_kv;
    // Keys before `first` are outside the sliding window: masked, as -inf scores.
    const int64_t first = p.window > 0 ? std::max<int64_t>(0, n_pos - p.window) : 0;
    f16_t q16[kMaxHeadDim];
    float lanes[16];
    std::vector<float> out_lanes(size_t(head_dim) * 16);
    for (int64_t h = 0; h < p.n_head; ++h) {
        const int64_t kvh = h / group;
        // q meets the f16 K cache as f16, as in the reference.
        for (int64_t i = 0; i < head_dim; ++i) q16[i] = f32_to_f16(q[h * head_dim + i]);
        for (int64_t pos = 0; pos < n_pos; ++pos) {
            if (pos < first) {
                scores[pos] = -INFINITY;
                continue;
            }
            float s = ref::f16_vec_dot(head_dim, q16, k_cache + pos * kv_dim + kvh * head_dim);
            if (p.softcap > 0.0f) s = std::tanh(s * (1.0f / p.softcap)) * p.softcap;
            scores[pos] = s * p.kq_scale;
        }
        softmax(scores, n_pos);
        // out[i] = sum_p w[p] * v[p][i], the weights rounded to f16 where they meet V; summed in
        // 16 lanes by position (p mod 16) like the reference's transposed-V product.
        std::fill(out_lanes.begin(), out_lanes.end(), 0.0f);
        for (int64_t pos = first; pos < n_pos; ++pos) {
            const float weight = f16_to_f32(f32_to_f16(scores[pos]));
            const uint16_t* v = v_cache + pos * kv_dim + kvh * head_dim;
            for (int64_t i = 0; i < head_dim; ++i) out_lanes[size_t(i * 16 + pos % 16)] += weight * f16_to_f32(v[i]);
        }
        for (int64_t i = 0; i < head_dim; ++i) {
            std::copy_n(out_lanes.begin() + i * 16, 16, lanes);
            out[h * head_dim + i] = ref::reduce_lanes16(lanes);
        }
    }
}

void silu_mul(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + vector_expf(-gate[i])) * up[i];
}

// GELU (tanh form) read from a table of its values at every f16 input, as the reference does.
static float gelu_from_table(float x) {
    static const std::vector<f16_t> table = [] {
        std::vector<f16_t> t(65536);
        for (uint32_t h = 0; h < 65536; ++h) {
            const float v = f16_to_f32(f16_t(h));
            t[h] = f32_to_f16(0.5f * v * (1.0f + std::tanh(0.7978845608f * v * (1.0f + 0.044715f * v * v))));
        }
        return t;
    }();
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    return f16_to_f32(table[f32_to_f16(x)]);
}

void gelu_mul(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) gate[i] = gelu_from_table(gate[i]) * up[i];
}

void add_rows(float* x, const TensorView& bias, int64_t n_rows) {
    const auto* b = reinterpret_cast<const float*>(bias.data);
    for (int64_t r = 0; r < n_rows; ++r) add(x + r * bias.ne[0], b, bias.ne[0]);
}

void scale(float* x, float s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void softcap(float* x, float cap, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] * (1.0f / cap)) * cap;
}

void add(float* x, const float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace qllm::ops
