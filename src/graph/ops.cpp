// Forward-pass operations. Matmuls go through the traits table, so every format plugs in here.
#include "graph/ops.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <memory>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/ref/ref.h"
#include "qllm/error.h"
#include "qllm/half.h"

namespace qllm::ops {
namespace {

// Batches of at least the format's gemm_min_tokens (kernels/types.h) go through its GEMM kernel,
// if it has one; shorter ones (token generation, short prompts) through the format's row kernel
// or one vec_dot per row and token, which read each row once for all tokens and skip the GEMM's
// repacking. Row chunks are multiples of kGemmRows.
constexpr size_t kPrefetchBytes = 4096;  // see rows_times_tokens
constexpr int64_t kGemmRows = 16;
constexpr int64_t kGemmMinChunk = 128;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t multiple) { return ceil_div(a, multiple) * multiple; }

int64_t max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// Element-wise work on a prompt's batch is split between threads (each element's result does
// not depend on the split); a single token's is too short to pay for waking them.
constexpr int64_t kParallelMinElements = 1 << 15;
constexpr int64_t kParallelGrain = 1 << 12;  // elements per piece: a multiple of 16

template <typename Fn>
void in_pieces(int64_t n, Fn&& fn) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
    for (int64_t i = 0; i < n; i += kParallelGrain) fn(i, std::min(kParallelGrain, n - i));
}

// exp(x) = j * 2^n as the reference's vectorized softmax and SiLU compute it: n = round(x / ln 2),
// j a degree-5 polynomial on the reduced argument (within 1.5 ulp of expf). Using the same
// approximation keeps our f16-rounded attention weights identical to the reference's.
struct ExpParts {
    float j, n;
};
[[gnu::always_inline]] inline ExpParts exp_parts(float x) {
    const float shifter = 0x1.8p23f;
    const float n = std::fma(x, 0x1.715476p+0f, shifter) - shifter;
    const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                             u, std::fma(0x1.ffffecp-1f, b, 1.0f));
    return {j, n};
}

// j * 2^n for -126 <= n <= 127, where 2^n is a normal float: one correctly rounded product.
[[gnu::always_inline]] inline float scale_by_pow2(float j, float n) {
    return j * std::bit_cast<float>(uint32_t(int(n) + 127) << 23);
}

[[gnu::always_inline]] inline float vector_expf(float x) {
    if (std::isnan(x)) return x;  // NaN activations stay NaN (and never reach ldexp as an int)
    const ExpParts e = exp_parts(x);
    if (std::fabs(e.n) > 192.0f) return e.n <= 0.0f ? 0.0f : INFINITY;
    if (e.n >= -126.0f && e.n <= 127.0f) return scale_by_pow2(e.j, e.n);
    return std::ldexp(e.j, int(e.n));  // subnormal results
}

// vector_expf of 16 values: every lane through the common case, in a loop the compiler
// vectorizes; a block with a lane outside it (NaN, over- or underflow) again lane by lane.
[[gnu::always_inline]] inline void vector_expf16(const float* x, float* out) {
    int outside = 0;  // an int, not a bool, and no && below: the loop vectorizes
    for (int l = 0; l < 16; ++l) {
        const ExpParts e = exp_parts(x[l]);
        const int normal = (e.n >= -126.0f) & (e.n <= 127.0f);
        outside |= normal ^ 1;
        out[l] = scale_by_pow2(e.j, normal ? e.n : 0.0f);
    }
    if (!outside) return;
    for (int l = 0; l < 16; ++l) out[l] = vector_expf(x[l]);
}

// 16 floats: one AVX-512 register, two AVX ones, four SSE or NEON ones (the compiler's vector
// extension, so that one source serves every target). They live in registers and in inlined
// functions only, so the warning about how they would be passed to a function does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
using Floats16 = float __attribute__((vector_size(64)));

[[gnu::always_inline]] inline Floats16 load16(const float* p) {
    Floats16 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// The sum of 16 lanes in the reference's pairwise order (lane j += lane j + w, for w = 8, 4, 2, 1).
[[gnu::always_inline]] inline float sum_lanes16(const Floats16& lanes) {
    Floats16 v = lanes;
    v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
    v += __builtin_shufflevector(v, v, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    v += __builtin_shufflevector(v, v, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    return v[0];
}

// x86 builds run on CPUs without FMA or AVX. Attention and the functions that evaluate
// vector_expf in bulk get AVX-512 and AVX2 (with FMA) copies of their vector loops, chosen at load
// time (std::fma is otherwise a library call). The products attention contracts into FMAs are
// exact (f16 values multiplied in float), and std::fma rounds once in every copy, so all copies
// give the same results.
// Sanitizer builds keep one copy: a clone's resolver may run while the program is being loaded,
// before the sanitizer's runtime is ready for the instrumented resolver.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define QLLM_SANITIZED
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define QLLM_SANITIZED
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(QLLM_SANITIZED)
#define QLLM_VECTOR_CLONES [[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]]
#else
#define QLLM_VECTOR_CLONES
#endif

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
#pragma omp parallel for schedule(static) if (n_rows * n >= kParallelMinElements)
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

namespace {

// Rows of one product for one thread to compute: a chunk of a GEMM, or a block of a share.
struct Piece {
    size_t product;
    int64_t begin, rows;
};

// Rows [begin, end) of a product in blocks of kShareBlockRows, claimed one at a time: from the
// front by the share's own thread, from the back by any other. Both ends live in one atomic
// word, so that a block is never taken twice.
constexpr int64_t kShareBlockRows = 32;

class Share {
public:
    void reset(int64_t begin, int64_t end) {
        begin_ = begin;
        end_ = end;
        range_.store(uint64_t(ceil_div(end - begin, kShareBlockRows)) << 32);
    }
    int64_t begin() const { return begin_; }
    int64_t end() const { return end_; }
    bool take_front(int64_t& block) { return take(block, true); }
    bool take_back(int64_t& block) { return take(block, false); }

private:
    bool take(int64_t& block, bool front) {
        uint64_t range = range_.load(std::memory_order_relaxed);
        for (;;) {
            const uint64_t first = range & 0xffffffffu, last = range >> 32;  // blocks [first, last) are left
            if (first >= last) return false;
            const uint64_t taken = front ? range + 1 : range - (uint64_t(1) << 32);
            if (range_.compare_exchange_weak(range, taken, std::memory_order_relaxed)) {
                block = int64_t(front ? first : last - 1);
                return true;
            }
        }
    }
    int64_t begin_ = 0, end_ = 0;
    std::atomic<uint64_t> range_{0};
};

int64_t omp_thread() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int64_t omp_team() {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

bool uses_gemm(const TypeTraits& wt, int64_t n_tokens) { return wt.gemm != nullptr && n_tokens >= wt.gemm_min_tokens; }

// Rows [0, rows) of w (w_row bytes each) against n_tokens activation rows: out[t * ld_out + r].
void rows_times_tokens(const TypeTraits& wt, int64_t n_in, const uint8_t* w, size_t w_row, int64_t rows, const uint8_t* act,
                       size_t act_row, int64_t n_tokens, float* out, int64_t ld_out) {
    if (uses_gemm(wt, n_tokens)) {
        wt.gemm(n_in, w, w_row, rows, act, act_row, n_tokens, out, ld_out);
    } else if (wt.vec_dot_rows) {
        // One call for a single token, so that the kernel prepares the activations once; for a
        // few tokens, tiles of rows that stay in cache while every token passes.
        const int64_t tile = n_tokens == 1 ? rows : kGemmRows;
        for (int64_t r = 0; r < rows; r += tile) {
            for (int64_t t = 0; t < n_tokens; ++t) {
                wt.vec_dot_rows(n_in, w + size_t(r) * w_row, w_row, std::min(tile, rows - r), act + size_t(t) * act_row,
                                out + t * ld_out + r);
            }
        }
    } else {
        // The hardware prefetcher alone leaves too few loads in flight to reach the memory
        // bandwidth, so the row about kPrefetchBytes ahead is requested while this one is computed.
        const int64_t ahead = std::max<int64_t>(1, int64_t(kPrefetchBytes / w_row));
        for (int64_t r = 0; r < rows; ++r) {
            const uint8_t* next = w + size_t(std::min(r + ahead, rows - 1)) * w_row;
            for (size_t b = 0; b < w_row; b += 64) __builtin_prefetch(next + b);
            for (int64_t t = 0; t < n_tokens; ++t) out[t * ld_out + r] = wt.vec_dot(n_in, w + size_t(r) * w_row, act + size_t(t) * act_row);
        }
    }
}

}  // namespace

void matmul(std::span<const Product> products, const float* x, int64_t n_tokens, std::vector<uint8_t>& scratch) {
    if (products.size() > kMaxProducts) fail("matmul: {} products of one input (at most {})", products.size(), kMaxProducts);
    const int64_t n_in = products[0].w->ne[0];

    // The activations in each partner format the weights need (f16 for F16, q8_0 for Q4_0, ...),
    // converted once for all the products: one row per token.
    std::array<TensorType, kMaxProducts> formats{};
    std::array<size_t, kMaxProducts> offsets{};
    size_t n_formats = 0, bytes = 0;
    for (const Product& p : products) {
        const TensorType type = traits(p.w->type).vec_dot_type;
        if (type == TensorType::F32 || std::find(formats.begin(), formats.begin() + n_formats, type) != formats.begin() + n_formats) continue;
        formats[n_formats] = type;
        offsets[n_formats++] = bytes;
        bytes += traits(type).row_size(n_in) * size_t(n_tokens);
    }
    scratch.resize(bytes);
#pragma omp parallel for schedule(static) if (n_tokens > 1)
    for (int64_t t = 0; t < n_tokens; ++t) {
        for (size_t f = 0; f < n_formats; ++f) {
            const TypeTraits& at = traits(formats[f]);
            at.from_float(x + t * n_in, scratch.data() + offsets[f] + size_t(t) * at.row_size(n_in), n_in);
        }
    }
    auto activations = [&](const TypeTraits& wt) -> const uint8_t* {
        for (size_t f = 0; f < n_formats; ++f) {
            if (formats[f] == wt.vec_dot_type) return scratch.data() + offsets[f];
        }
        return reinterpret_cast<const uint8_t*>(x);
    };

    auto run = [&](const Piece& piece) {
        const Product& p = products[piece.product];
        const TypeTraits& wt = traits(p.w->type);
        const size_t w_row = p.w->row_bytes();
        rows_times_tokens(wt, n_in, p.w->data + size_t(piece.begin) * w_row, w_row, piece.rows, activations(wt),
                          traits(wt.vec_dot_type).row_size(n_in), n_tokens, p.out + piece.begin, p.w->ne[1]);
    };
    const int64_t threads = max_threads();
    if (std::any_of(products.begin(), products.end(), [&](const Product& p) { return uses_gemm(traits(p.w->type), n_tokens); })) {
        // A few chunks of each product per thread, taken by whichever thread is free. Chunks of
        // at least kGemmMinChunk rows while every thread still gets one: the kernel prepares the
        // activations once per chunk, which for small matrices (K and V) would otherwise cost as
        // much as the products.
        std::vector<Piece> pieces;
        for (size_t i = 0; i < products.size(); ++i) {
            const int64_t n_out = products[i].w->ne[1];
            const int64_t chunk = round_up(
                std::max({kGemmRows, ceil_div(n_out, 4 * threads), std::min(kGemmMinChunk, ceil_div(n_out, threads))}), kGemmRows);
            for (int64_t r = 0; r < n_out; r += chunk) pieces.push_back({i, r, std::min(chunk, n_out - r)});
        }
#pragma omp parallel for schedule(dynamic)
        for (int64_t i = 0; i < int64_t(pieces.size()); ++i) run(pieces[size_t(i)]);
        return;
    }
    // Each thread streams its own share of every product's rows, block by block from the front;
    // a thread done with its shares takes blocks from the back of the others'. On a busy host one
    // core is often slower for a while, and equal shares left the other waiting at the barrier
    // for 13% of the time.
    const int64_t n_shares = int64_t(products.size()) * threads;
    std::unique_ptr<Share[]> shares(new Share[size_t(n_shares)]);
    for (int64_t s = 0; s < n_shares; ++s) {
        const int64_t n_out = products[size_t(s / threads)].w->ne[1];
        // Whole groups of interleaved rows (kGemmRows holds any group).
        const int64_t per = round_up(ceil_div(n_out, threads), kGemmRows), begin = std::min(n_out, s % threads * per);
        shares[size_t(s)].reset(begin, std::min(n_out, begin + per));
    }
#pragma omp parallel
    {
        const int64_t me = omp_thread(), team = omp_team();
        auto run_block = [&](int64_t s, int64_t block) {
            const Share& share = shares[size_t(s)];
            const int64_t begin = share.begin() + block * kShareBlockRows;
            run({size_t(s / threads), begin, std::min(kShareBlockRows, share.end() - begin)});
        };
        int64_t block = 0;
        for (int64_t s = 0; s < n_shares; ++s) {
            if (s % threads % team != me) continue;
            while (shares[size_t(s)].take_front(block)) run_block(s, block);
        }
        for (int64_t k = 1; k <= n_shares; ++k) {
            const int64_t s = (me + k) % n_shares;
            while (shares[size_t(s)].take_back(block)) run_block(s, block);
        }
    }
}

void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* out, std::vector<uint8_t>& scratch) {
    const Product product{&w, out};
    matmul(std::span(&product, 1), x, n_tokens, scratch);
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

QLLM_VECTOR_CLONES void softmax(float* x, int64_t n) {
    // The maximum in 16 lanes, so that the loop vectorizes; NaNs are skipped as by std::max.
    float lanes_max[16];
    std::fill_n(lanes_max, 16, -INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int l = 0; l < 16; ++l) lanes_max[l] = std::max(lanes_max[l], x[i + l]);
    }
    float max = -INFINITY;
    for (; i < n; ++i) max = std::max(max, x[i]);
    for (float m : lanes_max) max = std::max(max, m);
    // Blocks of 16 summed in float, blocks added in double: the reference's order.
    double sum = 0.0;
    float shifted[16];
    int64_t start = 0;
    for (; start + 16 <= n; start += 16) {
        for (int l = 0; l < 16; ++l) shifted[l] = x[start + l] - max;
        vector_expf16(shifted, x + start);
        sum += sum_lanes16(load16(x + start));
    }
    if (start < n) {  // the last block, padded with e^-inf = 0
        const int64_t len = n - start;
        float lanes[16];
        for (int64_t l = 0; l < 16; ++l) shifted[l] = l < len ? x[start + l] - max : -INFINITY;
        vector_expf16(shifted, lanes);
        std::memcpy(x + start, lanes, size_t(len) * sizeof(float));
        sum += sum_lanes16(load16(lanes));
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

namespace {

int64_t padded_positions(int64_t n_pos) { return (n_pos + 15) / 16 * 16; }  // whole blocks of 16

// One KV head's keys and values in float, positions [0, n_pos) (k[pos * head_dim + i]); K has
// zero rows up to the next multiple of 16 positions.
struct KvFloat {
    std::vector<float> k, v;
};

QLLM_VECTOR_CLONES void kv_to_float(const uint16_t* k_cache, const uint16_t* v_cache, int64_t n_pos, int64_t kv_head,
                                    int64_t n_head_kv, int64_t head_dim, KvFloat& kv) {
    const int64_t kv_dim = n_head_kv * head_dim;
    kv.k.resize(size_t(padded_positions(n_pos) * head_dim));
    kv.v.resize(size_t(n_pos * head_dim));
    for (int64_t pos = 0; pos < n_pos; ++pos) {
        const uint16_t* k = k_cache + pos * kv_dim + kv_head * head_dim;
        const uint16_t* v = v_cache + pos * kv_dim + kv_head * head_dim;
        float* k_out = kv.k.data() + pos * head_dim;
        float* v_out = kv.v.data() + pos * head_dim;
        for (int64_t i = 0; i < head_dim; ++i) {
            k_out[i] = f16_to_f32(k[i]);
            v_out[i] = f16_to_f32(v[i]);
        }
    }
    std::fill(kv.k.begin() + n_pos * head_dim, kv.k.end(), 0.0f);
}

// Lane p of the result = the sum of v[p]'s 16 lanes in the reference's pairwise order (lane
// j += lane j + w, for w = 8, 4, 2, 1). Each level adds the two halves of every position's
// partial sums and packs two vectors into one, so 16 sums take 15 additions, not 240.
[[gnu::always_inline]] inline Floats16 sum_lanes_16x16(const Floats16 (&v)[16]) {
    Floats16 a[8], b[4], c[2];
    for (int p = 0; p < 8; ++p) {  // a[p]: 8 lanes of position p, then 8 of p + 8
        a[p] = __builtin_shufflevector(v[p], v[p + 8], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               __builtin_shufflevector(v[p], v[p + 8], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
    for (int p = 0; p < 4; ++p) {  // b[p]: 4 lanes each of positions p, p + 4, p + 8, p + 12
        b[p] = __builtin_shufflevector(a[p], a[p + 4], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27) +
               __builtin_shufflevector(a[p], a[p + 4], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    }
    for (int p = 0; p < 2; ++p) {  // c[p]: 2 lanes each of positions p, p + 2, ..., p + 14
        c[p] = __builtin_shufflevector(b[p], b[p + 2], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
               __builtin_shufflevector(b[p], b[p + 2], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
    return __builtin_shufflevector(c[0], c[1], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
           __builtin_shufflevector(c[0], c[1], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
}

// Query heads that share a KV head go through these loops together (up to this many for the
// scores, as many as fit in registers for the value sums), so that each key and value row is
// read once for all of them.
constexpr int64_t kMaxGroupedHeads = 8;

// scores[g * padded + p] = q[g] · k[p] for heads g < n_heads (n_heads <= kMaxGroupedHeads) and
// positions p < padded = n_pos rounded up to 16, each dot product in the reference's order: 16
// lanes by i mod 16, the pairwise tree, then the values past the last 16 in double. q has been
// rounded to f16 and k comes from f16, so every product is exact and an FMA adds it as a
// multiply-then-add would. kVectors = head_dim / 16, when the compiler should know it.
template <int kVectors>
[[gnu::always_inline]] inline void scores16(const float* q, int64_t n_heads, const float* k, int64_t stride,
                                            int64_t head_dim, int64_t n_pos, int64_t padded, float* scores) {
    const int64_t n16 = kVectors > 0 ? kVectors : head_dim / 16;
    for (int64_t p0 = 0; p0 < n_pos; p0 += 16) {
        Floats16 part[kMaxGroupedHeads][16];
        for (int j = 0; j < 16; ++j) {
            const float* kp = k + (p0 + j) * stride;
            for (int64_t g = 0; g < n_heads; ++g) {
                Floats16 s = {};
                for (int64_t c = 0; c < n16; ++c) s += load16(q + g * head_dim + 16 * c) * load16(kp + 16 * c);
                part[g][j] = s;
            }
        }
        for (int64_t g = 0; g < n_heads; ++g) {
            float* out = scores + g * padded + p0;
            const Floats16 sums = sum_lanes_16x16(part[g]);
            std::memcpy(out, &sums, sizeof sums);
            if (16 * n16 == head_dim) continue;
            for (int64_t p = p0; p < std::min(n_pos, p0 + 16); ++p) {
                double sum = out[p - p0];
                for (int64_t i = 16 * n16; i < head_dim; ++i) {
                    sum += double(q[g * head_dim + i]) * double(k[p * stride + i]);
                }
                out[p - p0] = float(sum);
            }
        }
    }
}

// out[g][i] = sum of w[g][p] * v[p][i] over positions [first, n_pos), for kHeads heads (weights
// `padded` apart), summed as the reference's transposed-V product does: in 16 lanes by position
// (p mod 16), each lane in order, then the pairwise tree. `lanes` holds 16 * head_dim floats
// per head. w is rounded to f16 and v comes from f16, so the products are exact here too.
template <int kVectors, int kHeads>
[[gnu::always_inline]] inline void weighted_sum16(const float* w, int64_t padded, const float* v, int64_t stride,
                                                  int64_t head_dim, int64_t first, int64_t n_pos, float* lanes,
                                                  float* out) {
    const int64_t n16 = kVectors > 0 ? kVectors : head_dim / 16;
    constexpr int64_t kBlock = kVectors > 0 ? kVectors : 1;  // vectors of each head summed at once
    for (int64_t lane = 0; lane < 16; ++lane) {
        const int64_t start = first + (lane - first % 16 + 16) % 16;
        for (int64_t c0 = 0; c0 < n16; c0 += kBlock) {
            const int64_t nc = std::min(kBlock, n16 - c0);
            Floats16 acc[kHeads][kBlock] = {};
            for (int64_t p = start; p < n_pos; p += 16) {
                for (int64_t c = 0; c < nc; ++c) {
                    const Floats16 vp = load16(v + p * stride + 16 * (c0 + c));
                    for (int g = 0; g < kHeads; ++g) acc[g][c] += w[g * padded + p] * vp;
                }
            }
            for (int g = 0; g < kHeads; ++g) {
                std::memcpy(lanes + (g * 16 + lane) * head_dim + 16 * c0, acc[g], size_t(nc) * sizeof(Floats16));
            }
        }
        for (int g = 0; g < kHeads; ++g) {
            float* sum = lanes + (g * 16 + lane) * head_dim;
            for (int64_t i = 16 * n16; i < head_dim; ++i) {
                sum[i] = 0.0f;
                for (int64_t p = start; p < n_pos; p += 16) sum[i] += w[g * padded + p] * v[p * stride + i];
            }
        }
    }
    for (int g = 0; g < kHeads; ++g) {
        const float* head_lanes = lanes + g * 16 * head_dim;
        for (int64_t i = 0; i < 16 * n16; i += 16) {
            Floats16 s[16];
            for (int l = 0; l < 16; ++l) s[l] = load16(head_lanes + l * head_dim + i);
            for (int width = 8; width >= 1; width /= 2) {
                for (int l = 0; l < width; ++l) s[l] += s[l + width];
            }
            std::memcpy(out + g * head_dim + i, &s[0], sizeof s[0]);
        }
        for (int64_t i = 16 * n16; i < head_dim; ++i) {
            float l16[16];
            for (int64_t l = 0; l < 16; ++l) l16[l] = head_lanes[l * head_dim + i];
            out[g * head_dim + i] = ref::reduce_lanes16(l16);
        }
    }
}

// kHeads: heads whose value sums fit in registers together (16 vectors of 16 floats).
template <int kVectors, int kHeads = (kVectors > 0 ? std::max(1, 16 / kVectors) : 1)>
[[gnu::always_inline]] inline void attention_heads(const float* q, const KvFloat& kv, int64_t n_pos, int64_t kv_head,
                                                   const AttentionParams& p, float* out, float* scratch) {
    const int64_t head_dim = p.head_dim;
    const int64_t group = p.n_head / p.n_head_kv;
    const int64_t padded = padded_positions(n_pos);
    // Keys before `first` are outside the sliding window: masked, as -inf scores.
    const int64_t first = p.window > 0 ? std::max<int64_t>(0, n_pos - p.window) : 0;
    // The scratch holds, in turn, the scores of the heads done together, their q and their lanes.
    float* scores = scratch;
    float* q_rounded = scores + std::min(kMaxGroupedHeads, group) * padded;
    float* lanes = q_rounded + kMaxGroupedHeads * head_dim;
    for (int64_t h0 = kv_head * group, n_heads = 0; h0 < (kv_head + 1) * group; h0 += n_heads) {
        // A group larger than kMaxGroupedHeads takes several rounds.
        n_heads = std::min(kMaxGroupedHeads, (kv_head + 1) * group - h0);
        // q meets the f16 K cache as f16, as in the reference.
        for (int64_t i = 0; i < n_heads * head_dim; ++i) q_rounded[i] = f16_to_f32(f32_to_f16(q[h0 * head_dim + i]));
        scores16<kVectors>(q_rounded, n_heads, kv.k.data(), head_dim, head_dim, n_pos, padded, scores);
        for (int64_t g = 0; g < n_heads; ++g) {
            float* w = scores + g * padded;
            if (p.softcap > 0.0f) softcap(w, p.softcap, n_pos);
            for (int64_t pos = 0; pos < n_pos; ++pos) w[pos] = pos < first ? -INFINITY : w[pos] * p.kq_scale;
            softmax(w, n_pos);
            // The weights are rounded to f16 where they meet V.
            for (int64_t pos = first; pos < n_pos; ++pos) w[pos] = f16_to_f32(f32_to_f16(w[pos]));
        }
        const float* v = kv.v.data();
        int64_t g = 0;
        for (; g + kHeads <= n_heads; g += kHeads) {
            weighted_sum16<kVectors, kHeads>(scores + g * padded, padded, v, head_dim, head_dim, first, n_pos, lanes,
                                             out + (h0 + g) * head_dim);
        }
        for (; g < n_heads; ++g) {
            weighted_sum16<kVectors, 1>(scores + g * padded, padded, v, head_dim, head_dim, first, n_pos, lanes,
                                        out + (h0 + g) * head_dim);
        }
    }
}

int64_t attention_scratch(const AttentionParams& p, int64_t n_pos) {
    // The value sums of the heads done together take 16 lanes of at most 16 vectors of 16 floats
    // (the kHeads of attention_heads), or of head_dim floats when that is longer.
    const int64_t lanes = 16 * std::max<int64_t>(16 * 16, p.head_dim);
    return std::min(kMaxGroupedHeads, p.n_head / p.n_head_kv) * padded_positions(n_pos) + kMaxGroupedHeads * p.head_dim +
           lanes;
}

// One token's query heads of KV head kv_head over positions [0, n_pos) of kv. The vector code is
// written once; each x86 copy compiles it for its own register width.
QLLM_VECTOR_CLONES void attend_token(const float* q, const KvFloat& kv, int64_t n_pos, int64_t kv_head,
                                     const AttentionParams& p, float* out, float* scratch) {
    switch (p.head_dim) {
        case 64: return attention_heads<4>(q, kv, n_pos, kv_head, p, out, scratch);
        case 128: return attention_heads<8>(q, kv, n_pos, kv_head, p, out, scratch);
        default: return attention_heads<0>(q, kv, n_pos, kv_head, p, out, scratch);
    }
}

// Tokens of a batch are taken in this many runs per KV head: enough pieces to share among the
// threads, few enough that converting a head's cache for each costs little.
constexpr int64_t kTokenRuns = 8;

}  // namespace

void attention(const float* q, const uint16_t* k_cache, const uint16_t* v_cache, int64_t n_past, int64_t n_tokens,
               const AttentionParams& p, float* out) {
    const int64_t dim = p.n_head * p.head_dim;
    const int64_t run = ceil_div(n_tokens, kTokenRuns), n_runs = ceil_div(n_tokens, run);
#pragma omp parallel
    {
        // Kept by each thread from call to call, so that a token's 2 * n_layer calls allocate nothing.
        thread_local KvFloat kv;
        thread_local std::vector<float> scratch;
        scratch.resize(size_t(attention_scratch(p, n_past + n_tokens)));
#pragma omp for schedule(dynamic)
        for (int64_t piece = 0; piece < n_runs * p.n_head_kv; ++piece) {
            // The last runs, over the most positions, first: the short ones fill in at the end.
            const int64_t first = (n_runs - 1 - piece / p.n_head_kv) * run, end = std::min(n_tokens, first + run);
            const int64_t kv_head = piece % p.n_head_kv;
            kv_to_float(k_cache, v_cache, n_past + end, kv_head, p.n_head_kv, p.head_dim, kv);
            for (int64_t t = first; t < end; ++t) {
                attend_token(q + t * dim, kv, n_past + t + 1, kv_head, p, out + t * dim, scratch.data());
            }
        }
    }
}

namespace {
QLLM_VECTOR_CLONES void silu_mul_piece(float* gate, const float* up, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float negated[16], e[16];
        for (int l = 0; l < 16; ++l) negated[l] = -gate[i + l];
        vector_expf16(negated, e);
        for (int l = 0; l < 16; ++l) gate[i + l] = gate[i + l] / (1.0f + e[l]) * up[i + l];
    }
    for (; i < n; ++i) gate[i] = gate[i] / (1.0f + vector_expf(-gate[i])) * up[i];
}
}  // namespace

void silu_mul(float* gate, const float* up, int64_t n) {
    in_pieces(n, [&](int64_t i, int64_t len) { silu_mul_piece(gate + i, up + i, len); });
}

float exp_approx(float x) { return vector_expf(x); }

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
    in_pieces(n, [&](int64_t i, int64_t len) {
        for (int64_t j = i; j < i + len; ++j) x[j] += y[j];
    });
}

}  // namespace qllm::ops
