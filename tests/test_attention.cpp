// ops::attention against a plain restatement of the reference's attention: every score an f16
// dot product (q rounded to f16) in the reference kernel's order, the weights rounded to f16 and
// each output value their f16 dot product with a column of V over all positions (the reference
// pads the cache with masked positions, so no position is left out of the 16 lanes).
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "graph/ops.h"
#include "kernels/ref/ref.h"
#include "qllm/half.h"

namespace qllm {
namespace {

struct Case {
    int64_t head_dim, n_head, n_head_kv, n_pos, window;
    float softcap;
};

std::vector<float> gaussian(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> out(static_cast<size_t>(n));
    for (float& x : out) x = g(rng);
    return out;
}

std::vector<f16_t> random_halves(int64_t n, uint32_t seed) {
    std::vector<f16_t> out;
    for (float x : gaussian(n, seed)) out.push_back(f32_to_f16(x));
    return out;
}

std::vector<float> reference_attention(const std::vector<float>& q, const std::vector<f16_t>& k,
                                       const std::vector<f16_t>& v, const Case& c, float kq_scale) {
    const int64_t kv_dim = c.n_head_kv * c.head_dim;
    const int64_t padded = (c.n_pos + 15) / 16 * 16;
    const int64_t first = c.window > 0 ? std::max<int64_t>(0, c.n_pos - c.window) : 0;
    std::vector<float> out(size_t(c.n_head * c.head_dim));
    for (int64_t h = 0; h < c.n_head; ++h) {
        const int64_t kvh = h / (c.n_head / c.n_head_kv);
        std::vector<f16_t> qh(size_t(c.head_dim));
        for (int64_t i = 0; i < c.head_dim; ++i) qh[size_t(i)] = f32_to_f16(q[size_t(h * c.head_dim + i)]);
        std::vector<float> w(size_t(c.n_pos));
        for (int64_t p = 0; p < c.n_pos; ++p) {
            float s = ref::f16_vec_dot(c.head_dim, k.data() + p * kv_dim + kvh * c.head_dim, qh.data());
            if (c.softcap > 0.0f) s = std::tanh(s * (1.0f / c.softcap)) * c.softcap;
            w[size_t(p)] = p < first ? -INFINITY : s * kq_scale;
        }
        ops::softmax(w.data(), c.n_pos);
        std::vector<f16_t> w16(size_t(padded), 0), column(size_t(padded), 0);
        for (int64_t p = 0; p < c.n_pos; ++p) w16[size_t(p)] = f32_to_f16(w[size_t(p)]);
        for (int64_t i = 0; i < c.head_dim; ++i) {
            for (int64_t p = 0; p < c.n_pos; ++p) column[size_t(p)] = v[size_t(p * kv_dim + kvh * c.head_dim + i)];
            out[size_t(h * c.head_dim + i)] = ref::f16_vec_dot(padded, column.data(), w16.data());
        }
    }
    return out;
}

// Bit for bit, for head sizes with and without a tail past the last 16 values, groups of heads
// of 1 to 16 (more than go through the loops at once), a sliding window and a soft cap.
TEST(Attention, MatchesTheReferenceBitForBit) {
    const Case cases[] = {
        {64, 8, 2, 37, 0, 0.0f}, {64, 4, 4, 1, 0, 0.0f},   {128, 4, 1, 48, 0, 0.0f}, {8, 8, 4, 21, 0, 0.0f},
        {80, 2, 1, 33, 0, 0.0f}, {32, 8, 2, 40, 7, 0.0f}, {256, 2, 1, 17, 0, 50.0f}, {64, 32, 2, 19, 0, 0.0f},
        {64, 6, 2, 16, 0, 0.0f}, {128, 12, 3, 50, 9, 0.0f},
    };
    uint32_t seed = 1;
    for (const Case& c : cases) {
        const int64_t kv_dim = c.n_head_kv * c.head_dim;
        const auto k = random_halves(c.n_pos * kv_dim, seed++);
        const auto v = random_halves(c.n_pos * kv_dim, seed++);
        const float kq_scale = 1.0f / std::sqrt(float(c.head_dim));
        const ops::AttentionParams params{c.n_head, c.n_head_kv, c.head_dim, kq_scale, c.softcap, c.window};
        // The last token alone, then the last 3 as one batch (each over its own positions).
        for (int64_t n_tokens : {int64_t(1), std::min<int64_t>(3, c.n_pos)}) {
            const int64_t n_past = c.n_pos - n_tokens, dim = c.n_head * c.head_dim;
            const auto q = gaussian(n_tokens * dim, seed++);  // rounded to f16 inside
            std::vector<float> got(q.size());
            ops::attention(q.data(), k.data(), v.data(), n_past, n_tokens, params, got.data());
            for (int64_t t = 0; t < n_tokens; ++t) {
                Case token = c;
                token.n_pos = n_past + t + 1;
                const std::vector<float> q_token(q.begin() + t * dim, q.begin() + (t + 1) * dim);
                const auto want = reference_attention(q_token, k, v, token, kq_scale);
                for (size_t i = 0; i < want.size(); ++i) {
                    ASSERT_EQ(got[size_t(t * dim) + i], want[i])
                        << "head_dim " << c.head_dim << " n_pos " << token.n_pos << " of " << n_tokens << " value " << i;
                }
            }
        }
    }
}

// softmax and silu_mul compute 16 values at a time, falling back to one at a time for blocks
// with an over- or underflowing lane: both must equal the one-value definition.
TEST(Softmax, MatchesTheOneValueDefinition) {
    // Many vectors of comparable values as well: most are needed before the rounding of some sum
    // shows an order of additions other than the reference's.
    for (int64_t n : {1, 15, 16, 37, 300})
    for (float spread : {8.0f, 0.25f})
    for (uint32_t seed = 0; seed < 30; ++seed) {
        auto x = gaussian(n, uint32_t(n) * 100 + seed);
        for (float& v : x) v *= spread;
        if (n > 20) {
            x[3] = -INFINITY;  // masked
            x[17] = x[0] - 95.0f;  // e^-95: a subnormal weight
        }
        std::vector<float> want(x);
        const float max = *std::max_element(x.begin(), x.end());
        double sum = 0.0;
        for (int64_t start = 0; start < n; start += 16) {
            float lanes[16] = {};
            for (int64_t i = start; i < std::min<int64_t>(n, start + 16); ++i) lanes[i - start] = want[size_t(i)] = ops::exp_approx(x[size_t(i)] - max);
            sum += ref::reduce_lanes16(lanes);
        }
        for (float& v : want) v *= float(1.0 / sum);
        ops::softmax(x.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x[size_t(i)], want[size_t(i)]) << "n " << n << " seed " << seed << " value " << i;
    }
}

TEST(SiluMul, MatchesTheOneValueDefinition) {
    const int64_t n = 100;
    auto gate = gaussian(n, 3), up = gaussian(n, 4);
    for (float& v : gate) v *= 6.0f;
    gate[5] = 120.0f;  // e^-120 underflows: a block through the one-value path
    gate[40] = -100.0f;  // e^100 overflows
    std::vector<float> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = gate[size_t(i)] / (1.0f + ops::exp_approx(-gate[size_t(i)])) * up[size_t(i)];
    ops::silu_mul(gate.data(), up.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(gate[size_t(i)], want[size_t(i)]) << "value " << i;
}

}  // namespace
}  // namespace qllm
