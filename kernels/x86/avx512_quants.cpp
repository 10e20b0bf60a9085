// AVX-512 + VNNI dot products of the quantized formats, written over the AVX2 ones.
//
// vpdpbusd sums 4 neighbouring u8 x s8 products into an int32 lane in one instruction (no int16
// intermediate to saturate), so levels are made unsigned by a bias (stored level = value + bias)
// and bias * (sum of the activations) is taken off per lane.
//
// The legacy formats put two 32-value blocks in a 512-bit vector: 16 float lanes, even blocks in
// lanes 0-7 and odd blocks in 8-15, folded at the end. Their results differ from the AVX2
// kernels' by float rounding only. (Q5_1 stays on the AVX2 kernel: that one is bit-exact with the
// reference.) Every format here also has a row kernel for token generation (row_stream.h); the
// legacy formats' one prepares the activation side once. The K-quants keep
// the AVX2 kernels' integer lanes and float code, so their results are the AVX2 ones bit for bit,
// except Q3_K, whose lanes carry its minus-4 terms differently (same integer total).
#pragma GCC optimize("fp-contract=off")  // only explicit FMAs
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() operands that trip -Wuninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wignored-attributes"  // std::array of vectors

#include <immintrin.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/x86/avx512_legacy.h"
#include "kernels/x86/k_quant_scales.h"
#include "kernels/x86/row_stream.h"

namespace qllm {
namespace {

// ---- shared pieces ----

// Sums 8 lanes as ref::reduce_lanes8 does: 4+4, 2+2, 1+1.
inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

// Lanes 0-7 plus lanes 8-15.
inline __m256 fold(__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
inline __m256i fold(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

inline __m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m512i load64(const void* p) { return _mm512_loadu_si512(p); }

// Two 256-bit loads as one vector: [a | b].
inline __m512i load32x2(const void* a, const void* b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(load32(a)), load32(b), 1);
}

// u8 x s8 products, 4 per int32 lane, minus bias * (sum of the 4 activations): the dot of the
// signed values (level - bias) with y.
inline __m512i dot_biased(__m512i levels, __m512i y, int bias) {
    const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), levels, y);
    if (bias == 0) return p;
    return _mm512_sub_epi32(p, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(bias)), y));
}
inline __m256i dot_biased(__m256i levels, __m256i y, int bias) {
    const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), levels, y);
    if (bias == 0) return p;
    return _mm256_sub_epi32(p, _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(char(bias)), y));
}

// ---- legacy formats: 32-value blocks ----

// Per format: its blocks, activation blocks, the bias of its unsigned levels, the levels of one
// block (256-bit; Q8_0 also of two, 512-bit), and whether 4 blocks go through one vector of
// nibbles (see add_group).
struct Q4_0Format {
    using X = BlockQ4_0;
    using Y = BlockQ8_0;
    static constexpr int kBias = 8;
    static constexpr bool kNibbles = true;
    static __m256i levels(const X& b) { return nibbles(b.qs); }
};

struct Q4_1Format {
    using X = BlockQ4_1;
    using Y = BlockQ8_1;
    static constexpr int kBias = 0;
    static constexpr bool kNibbles = true;
    static __m256i levels(const X& b) { return nibbles(b.qs); }
};

struct Q5_0Format {
    using X = BlockQ5_0;
    using Y = BlockQ8_0;
    static constexpr int kBias = 16;
    static constexpr bool kNibbles = true;
    static __m256i levels(const X& b) { return add_fifth_bit(nibbles(b.qs), load_u32(b.qh)); }
};

struct Q8_0Format {
    using X = BlockQ8_0;
    using Y = BlockQ8_0;
    static constexpr int kBias = 128;
    static constexpr bool kNibbles = false;  // 4 blocks of bytes span 136: two pairs instead
    static __m256i levels(const X& b) { return _mm256_xor_si256(load32(b.qs), _mm256_set1_epi8(char(0x80))); }
    static __m512i levels(const X& a, const X& b) {
        return _mm512_xor_si512(load32x2(a.qs, b.qs), _mm512_set1_epi8(char(0x80)));
    }
};

struct IQ4_NLFormat {
    using X = BlockIQ4_NL;
    using Y = BlockQ8_0;
    static constexpr int kBias = 128;
    static constexpr bool kNibbles = true;
    static __m256i levels(const X& b) {
        return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(iq4_nl_biased_grid()), nibbles(b.qs));
    }
};

// Four f16 values, in float.
inline __m128 halves4(f16_t a, f16_t b, f16_t c, f16_t d) {
    return _mm_cvtph_ps(_mm_setr_epi16(short(a), short(b), short(c), short(d), 0, 0, 0, 0));
}
template <typename B>
inline __m128 scales4(const B* b) {
    return halves4(b[0].d, b[1].d, b[2].d, b[3].d);
}

// Scale of block k (of 4) in lanes 0-7 and of block k+1 in lanes 8-15.
inline __m512 scale_pair(__m128 scales4, int k) {
    const __m512i index = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(k)), _mm256_set1_epi32(k + 1), 1);
    return _mm512_permutexvar_ps(index, _mm512_castps128_ps512(scales4));
}

// ---- 4 blocks at a time ----
//
// Block pairs: two 512-bit vectors of levels [a 0-15 | a 16-31 | b 0-15 | b 16-31], 8 int32
// lanes per block. Nibble formats instead gather the 16 bytes of nibbles of 4 blocks (at most 88
// bytes: two loads) with one word permute: the low nibbles are values 0-15 of each block, the
// high ones values 16-31, two vpdpbusd into the same lanes give 4 int32 lanes per block, and one
// word permute of the same two loads gives each block's scale 4 times.

// The first 4 * sizeof(X) bytes from x (at most 128), as two vectors; the bytes past them read as 0.
template <typename X>
struct GroupBytes {
    static_assert(4 * sizeof(X) > 64 && 4 * sizeof(X) <= 128);
    __m512i low, high;
    explicit GroupBytes(const X* x)
        : low(load64(x)),
          high(_mm512_maskz_loadu_epi8((uint64_t{1} << (4 * sizeof(X) - 64)) - 1, reinterpret_cast<const uint8_t*>(x) + 64)) {}
    // Word i of the result is word index[i] of the 4 blocks. (Words, not bytes: vpermt2b needs
    // AVX512-VBMI, which not every VNNI CPU has; every field gathered here starts at an even byte.)
    __m512i words(__m512i index) const { return _mm512_permutex2var_epi16(low, index, high); }
};

// Index tables for GroupBytes::words: entry i takes the word at byte `at(i)` of the 4 blocks.
template <typename At>
inline __m512i word_index(At) {
    alignas(64) static constexpr auto table = [] {
        std::array<uint16_t, 32> a{};
        for (size_t i = 0; i < a.size(); ++i) a[i] = uint16_t(At{}(i) / 2);
        return a;
    }();
    return _mm512_load_si512(table.data());
}

// The f16 at byte `offset` of each block, repeated `repeat` times, in float.
template <typename X, size_t kOffset, int kRepeat>
inline __m512 block_halves(const GroupBytes<X>& g) {
    const __m512i index = word_index([](size_t i) { return i < 4 * kRepeat ? kOffset + i / kRepeat * sizeof(X) : 0; });
    return _mm512_cvtph_ps(_mm512_castsi512_si256(g.words(index)));
}

// Low nibbles (values 0-15) and high nibbles (values 16-31) of the 4 blocks, 16 bytes per block.
template <typename X>
inline std::array<__m512i, 2> group_nibbles(const GroupBytes<X>& g) {
    const __m512i qs = g.words(word_index([](size_t i) { return i / 8 * sizeof(X) + offsetof(X, qs) + 2 * (i % 8); }));
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    return {_mm512_and_si512(qs, m4), _mm512_and_si512(_mm512_srli_epi16(qs, 4), m4)};
}

// Q5_0: plus 16 where the fifth bit is set; bit j of block k's qh goes to byte 16k + j (j < 16) of
// the low vector or byte 16k + j - 16 of the high one.
inline void add_fifth_bits(const GroupBytes<BlockQ5_0>& g, std::array<__m512i, 2>& q) {
    const __m512i qh = g.words(word_index([](size_t i) {  // words 0-3: bits 0-15 of each block, 4-7: bits 16-31
        return i % 4 * sizeof(BlockQ5_0) + offsetof(BlockQ5_0, qh) + 2 * (i / 4 % 2);
    }));
    const __m128i masks = _mm512_castsi512_si128(qh);
    q[0] = _mm512_mask_add_epi8(q[0], __mmask64(_mm_cvtsi128_si64(masks)), q[0], _mm512_set1_epi8(16));
    q[1] = _mm512_mask_add_epi8(q[1], __mmask64(_mm_extract_epi64(masks, 1)), q[1], _mm512_set1_epi8(16));
}

// The activation side of 4 consecutive blocks, laid out like the weights' levels, with the bias
// terms negated (the start of each vpdpbusd sum), the scales, and for Q4_1 the sums s.
struct ActGroup {
    __m512i y[2];
    __m512i neg_bias[2];
    __m128 scales;    // pairs: one per block
    __m512 scales16;  // nibbles: each block's 4 times
    __m128 sums;
};

template <typename F>
inline ActGroup act_group(const typename F::Y* y) {
    ActGroup g;
    const __m512i bias = _mm512_set1_epi8(char(F::kBias));
    if constexpr (F::kNibbles) {
        for (int h = 0; h < 2; ++h) {  // (inserts spelled out: their lane is an immediate)
            const __m512i y01 = _mm512_inserti32x4(_mm512_castsi128_si512(load16(y[0].qs + 16 * h)), load16(y[1].qs + 16 * h), 1);
            const __m512i y012 = _mm512_inserti32x4(y01, load16(y[2].qs + 16 * h), 2);
            g.y[h] = _mm512_inserti32x4(y012, load16(y[3].qs + 16 * h), 3);
        }
        const __m512i sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, g.y[0]), bias, g.y[1]);
        g.neg_bias[0] = _mm512_sub_epi32(_mm512_setzero_si512(), sum);
        const __m512i each4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        g.scales16 = _mm512_permutexvar_ps(each4, _mm512_castps128_ps512(scales4(y)));
    } else {
        for (int k = 0; k < 2; ++k) {
            g.y[k] = load32x2(y[2 * k].qs, y[2 * k + 1].qs);
            g.neg_bias[k] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, g.y[k]));
        }
    }
    g.scales = scales4(y);
    if constexpr (requires { y[0].s; }) g.sums = halves4(y[0].s, y[1].s, y[2].s, y[3].s);
    return g;
}

// One row's running sums: two accumulators (taken in turn) so that the FMA latency does not bound
// the loop, one for a tail of fewer than 4 blocks, and Q4_1's m * s terms.
struct RowSums {
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    __m256 tail = _mm256_setzero_ps();
    __m128 offsets = _mm_setzero_ps();
    float offsets_tail = 0;
};

// Adds the 4 blocks from x; nibble formats into accumulator `k`, fixed at compile time so that
// the accumulators stay in registers. d_x * d_y is a product of two f16 values, exact in float.
template <typename F, int k>
inline void add_group(const typename F::X* x, const ActGroup& g, RowSums& s) {
    using X = typename F::X;
    if constexpr (F::kNibbles) {
        const GroupBytes<X> bytes(x);
        if constexpr (requires { x[0].m; }) {
            s.offsets = _mm_add_ps(s.offsets, _mm_mul_ps(_mm512_castps512_ps128(block_halves<X, offsetof(X, m), 1>(bytes)), g.sums));
        }
        auto q = group_nibbles(bytes);
        if constexpr (std::is_same_v<X, BlockQ5_0>) add_fifth_bits(bytes, q);
        if constexpr (std::is_same_v<X, BlockIQ4_NL>) {
            const __m512i grid = _mm512_broadcast_i32x4(iq4_nl_biased_grid());
            for (__m512i& v : q) v = _mm512_shuffle_epi8(grid, v);
        }
        const __m512i lanes = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(g.neg_bias[0], q[0], g.y[0]), q[1], g.y[1]);
        const __m512 scales = _mm512_mul_ps(block_halves<X, offsetof(X, d), 4>(bytes), g.scales16);
        s.acc[k] = _mm512_fmadd_ps(scales, _mm512_cvtepi32_ps(lanes), s.acc[k]);
    } else {
        const __m128 scales = _mm_mul_ps(scales4(x), g.scales);
        for (int p = 0; p < 2; ++p) {
            const __m512i lanes = _mm512_dpbusd_epi32(g.neg_bias[p], F::levels(x[2 * p], x[2 * p + 1]), g.y[p]);
            s.acc[p] = _mm512_fmadd_ps(scale_pair(scales, 2 * p), _mm512_cvtepi32_ps(lanes), s.acc[p]);
        }
    }
}

// Adds a row's groups of 4 blocks, group i against group_at(i), two groups per step (one per
// accumulator); returns the first block left over.
template <typename F, bool kPrefetch, typename GroupAt>
inline int64_t add_groups(const typename F::X* x, int64_t nb, GroupAt group_at, RowSums& s) {
    const auto step = [&]<int k>(int64_t ib) {
        if constexpr (kPrefetch) prefetch_ahead(x + ib, 4 * sizeof(*x));
        add_group<F, k>(x + ib, group_at(ib / 4), s);
    };
    int64_t ib = 0;
    for (; ib + 8 <= nb; ib += 8) {
        step.template operator()<0>(ib);
        step.template operator()<1>(ib + 4);
    }
    if (ib + 4 <= nb) {
        step.template operator()<0>(ib);
        ib += 4;
    }
    return ib;
}

// The last nb % 4 blocks from `ib` on, and the row's total.
template <typename F>
inline float finish_row(const typename F::X* x, const typename F::Y* y, int64_t ib, int64_t nb, RowSums& s) {
    for (; ib < nb; ++ib) {
        const __m256i lanes = dot_biased(F::levels(x[ib]), load32(y[ib].qs), F::kBias);
        const float d = _cvtsh_ss(x[ib].d) * _cvtsh_ss(y[ib].d);
        s.tail = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), s.tail);
        if constexpr (requires { x[0].m; }) s.offsets_tail += _cvtsh_ss(x[ib].m) * _cvtsh_ss(y[ib].s);
    }
    __m128 o = _mm_add_ps(s.offsets, _mm_movehl_ps(s.offsets, s.offsets));
    o = _mm_add_ss(o, _mm_movehdup_ps(o));
    return hsum8(_mm256_add_ps(fold(_mm512_add_ps(s.acc[0], s.acc[1])), s.tail)) + (_mm_cvtss_f32(o) + s.offsets_tail);
}

template <typename F>
float legacy_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const typename F::X*>(vx);
    const auto* y = static_cast<const typename F::Y*>(vy);
    const int64_t nb = n / kQK;
    RowSums s;
    const int64_t ib = add_groups<F, false>(x, nb, [&](int64_t i) { return act_group<F>(y + 4 * i); }, s);
    return finish_row<F>(x, y, ib, nb, s);
}

// Many rows against one activation row: the activation groups are prepared once, then each row
// is the vec_dot's loop without the activation work, bit for bit the same sums, and one stream
// (row_stream.h).
template <typename F>
void legacy_vec_dot_rows(int64_t n, const void* vx, size_t x_row_bytes, int64_t n_rows, const void* vy, float* out) {
    const auto* y = static_cast<const typename F::Y*>(vy);
    const int64_t nb = n / kQK;
    thread_local std::vector<ActGroup> groups;
    groups.resize(size_t(nb / 4));
    for (int64_t i = 0; i < nb / 4; ++i) groups[size_t(i)] = act_group<F>(y + 4 * i);
    for (int64_t r = 0; r < n_rows; ++r) {
        const auto* x = reinterpret_cast<const typename F::X*>(static_cast<const uint8_t*>(vx) + size_t(r) * x_row_bytes);
        RowSums s;
        const int64_t ib = add_groups<F, true>(x, nb, [&](int64_t i) -> const ActGroup& { return groups[size_t(i)]; }, s);
        out[r] = finish_row<F>(x, y, ib, nb, s);
    }
}

// ---- K-quants: the AVX2 kernels' integer lanes (Q6_K 64 values per instruction, Q4_K/Q5_K 32) ----

inline float half_to_float(f16_t h) { return _cvtsh_ss(h); }

// acc += d * float(lanes), one rounding per lane.
inline __m256 fma_lanes(float d, __m256i lanes, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
}

// int32 lanes 4i..4i+3 from element first + i of `table` (4 sub-blocks of 16 values).
inline __m512i spread4(__m512i table, int first) {
    const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(first),
                                           _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
    return _mm512_permutexvar_epi32(index, table);
}

// sum + lanes * scale per int32 lane, as int16 pair products: |lanes| < 2^15, and each scale
// lane holds an int16 in its low half and 0 in its high half. (A multiply then an add rather than
// vpdpwssd: chained through `sum`, its 5-cycle latency would bound the loop.)
inline __m512i add_scaled(__m512i sum, __m512i lanes, __m512i scale) {
    return _mm512_add_epi32(sum, _mm512_madd_epi16(lanes, scale));
}

// Minimums times the activation sums of their sub-blocks: 4 int32 lanes of 2 sub-blocks each.
inline __m128i k4_min_products(__m128i scales_mins, const int16_t* bsums) {
    const __m256i b = load32(bsums);
    const __m128i per32 = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    return _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_unpackhi_epi64(scales_mins, scales_mins)), per32);
}

// Q4_K and Q5_K in 256-bit vectors: the AVX2 kernels with vpdpwssd folding each scale multiply
// and its add. (512-bit versions need fewer instructions but ran no faster here: they save too
// few per value to pay for the 512-bit ports and clocks.)
template <typename Block, bool kPrefetch = false>
float k4_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const Block*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    constexpr bool kFifthBit = requires(const Block& b) { b.qh; };
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        if constexpr (kPrefetch) prefetch_ahead(xs + i, sizeof(*xs));
        const Block& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const float d = y.d * half_to_float(x.d);
        const float dmin = -y.d * half_to_float(x.dmin);
        const __m128i sm = k4_scales_mins(x.scales);
        __m128i m = k4_min_products(sm, y.bsums);
        if constexpr (kFifthBit) {  // Q5_K sums the minimums in integers, as ggml's AVX2 kernel does
            m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
            m = _mm_add_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
            mins += dmin * float(_mm_cvtsi128_si32(m));
        } else {
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(m), acc_m);
        }
        const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));  // 8 int16 scales, twice
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        __m256i sum_lo = _mm256_setzero_si256(), sum_hi = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i q = load32(x.qs + 32 * j);
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if constexpr (kFifthBit) {  // bit 2j of qh for the low nibbles, 2j+1 for the high ones
                const __m256i qh = load32(x.qh);
                const __m256i one = _mm256_set1_epi8(1);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one), 4));
            }
            const __m256i p_lo = _mm256_maddubs_epi16(lo, load32(y.qs + 64 * j));
            const __m256i p_hi = _mm256_maddubs_epi16(hi, load32(y.qs + 64 * j + 32));
            const __m256i scale_lo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(short(0x0100 + 0x0202 * (2 * j))));
            const __m256i scale_hi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(short(0x0100 + 0x0202 * (2 * j + 1))));
            sum_lo = _mm256_dpwssd_epi32(sum_lo, p_lo, scale_lo);
            sum_hi = _mm256_dpwssd_epi32(sum_hi, p_hi, scale_hi);
        }
        acc = fma_lanes(d, _mm256_add_epi32(sum_lo, sum_hi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return kFifthBit ? hsum8(acc) + mins : hsum8(acc) + _mm_cvtss_f32(acc_m);
}

template <bool kPrefetch = false>
float q6_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ6_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        if constexpr (kPrefetch) prefetch_ahead(xs + i, sizeof(*xs));
        const BlockQ6_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const float d = y.d * half_to_float(x.d);
        // Signed scales as (int16, 0) pairs for vpdpwssd.
        const __m512i scales = _mm512_cvtepu16_epi32(_mm256_cvtepi8_epi16(load16(x.scales)));
        __m512i sumi = _mm512_setzero_si512();
        for (int j = 0; j < 2; ++j) {
            const __m512i ql = load64(x.ql + 64 * j);
            const __m256i qh = load32(x.qh + 32 * j);
            // Values 0-63 of this half: low nibbles of ql plus qh bit pairs 0 (bytes 0-31) and 1
            // (bytes 32-63); values 64-127: high nibbles plus bit pairs 2 and 3.
            const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
            const __m512i m3 = _mm512_set1_epi8(3), m15 = _mm512_set1_epi8(0x0F);
            const __m512i a = _mm512_or_si512(_mm512_and_si512(ql, m15), _mm512_slli_epi16(_mm512_and_si512(h, m3), 4));
            const __m512i b = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m15),
                                              _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, 4), m3), 4));
            const __m512i la = dot_biased(a, load64(y.qs + 128 * j), 32);
            const __m512i lb = dot_biased(b, load64(y.qs + 128 * j + 64), 32);
            sumi = add_scaled(sumi, la, spread4(scales, 8 * j));
            sumi = add_scaled(sumi, lb, spread4(scales, 8 * j + 4));
        }
        acc = fma_lanes(d, fold(sumi), acc);
    }
    return hsum8(acc);
}

// ---- Q2_K and Q3_K: 2-bit levels (plus Q3_K's high bit) straight into vpdpbusd ----
//
// Per half of 128 values, byte l of qs holds the low 2 bits of values l, l+32, l+64, l+96. One
// 512-bit vector takes chunks k and k+1 (of 32 values) of a half: the two copies of qs shifted by
// 2k and 2k+2. After folding the two halves, int32 lane l holds bytes 4l..4l+3 of every chunk,
// each weighted by its sub-block scale: the AVX2 kernels' lanes.

inline __m512i low_bits_pair(__m512i qs_twice, int k) {
    const __m512i shifts = _mm512_inserti64x4(_mm512_set1_epi16(short(2 * k)), _mm256_set1_epi16(short(2 * k + 2)), 1);
    return _mm512_and_si512(_mm512_srlv_epi16(qs_twice, shifts), _mm512_set1_epi8(3));
}

template <bool kPrefetch = false>
float q2_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ2_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        if constexpr (kPrefetch) prefetch_ahead(xs + i, sizeof(*xs));
        const BlockQ2_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const float d = y.d * _cvtsh_ss(x.d);
        const float dmin = -y.d * _cvtsh_ss(x.dmin);
        const __m128i packed = load16(x.scales);
        const __m128i sc4 = _mm_and_si128(packed, _mm_set1_epi8(0xF));
        const __m128i mn4 = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0xF));
        // Minimums: 16 (min * bsum) products in pairs, into the same accumulator.
        acc = fma_lanes(dmin, _mm256_madd_epi16(_mm256_cvtepi8_epi16(mn4), load32(y.bsums)), acc);
        const __m512i scales = _mm512_cvtepu8_epi32(sc4);  // (int16 scale, 0) pairs for vpmaddwd
        __m512i sumi = _mm512_setzero_si512();
        for (int j = 0; j < 2; ++j) {
            const __m512i q2 = _mm512_broadcast_i64x4(load32(x.qs + 32 * j));
            for (int k = 0; k < 4; k += 2) {
                const __m512i lanes = _mm512_dpbusd_epi32(_mm512_setzero_si512(), low_bits_pair(q2, k), load64(y.qs + 128 * j + 32 * k));
                sumi = add_scaled(sumi, lanes, spread4(scales, 8 * j + 2 * k));
            }
        }
        acc = fma_lanes(d, fold(sumi), acc);
    }
    return hsum8(acc);
}

// Q3_K levels as unsigned 0-7 (value + 4): bit g of hmask[l] is set when value 32g + l is not
// lowered by 4. The +4 comes off as 4 * scale * (sum of the sub-block's activations), from the
// block sums; the integer total is the AVX2 kernel's, spread over the lanes differently.
template <bool kPrefetch = false>
float q3_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ3_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        if constexpr (kPrefetch) prefetch_ahead(xs + i, sizeof(*xs));
        const BlockQ3_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const float d = y.d * _cvtsh_ss(x.d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3_k_scales(x.scales));
        const __m512i scales = _mm512_cvtepu16_epi32(sc16);  // (int16 scale, 0) pairs for vpmaddwd
        const __m256i lowered = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load32(y.bsums)), 2);
        const __m512i hmask = _mm512_broadcast_i64x4(load32(x.hmask));
        __m512i sumi = _mm512_setzero_si512();
        for (int j = 0; j < 2; ++j) {
            const __m512i q3 = _mm512_broadcast_i64x4(load32(x.qs + 32 * j));
            for (int k = 0; k < 4; k += 2) {
                const int g = 4 * j + k;
                const __m512i bits = _mm512_inserti64x4(_mm512_set1_epi8(char(1 << g)), _mm256_set1_epi8(char(1 << (g + 1))), 1);
                const __m512i low2 = low_bits_pair(q3, k);
                const __m512i levels = _mm512_mask_add_epi8(low2, _mm512_test_epi8_mask(hmask, bits), low2, _mm512_set1_epi8(4));
                const __m512i lanes = _mm512_dpbusd_epi32(_mm512_setzero_si512(), levels, load64(y.qs + 128 * j + 32 * k));
                sumi = add_scaled(sumi, lanes, spread4(scales, 8 * j + 2 * k));
            }
        }
        acc = fma_lanes(d, _mm256_sub_epi32(fold(sumi), lowered), acc);
    }
    return hsum8(acc);
}

}  // namespace

namespace avx512 {

void register_quant_kernels(TraitsTable& t) {
    auto row = [&](TensorType type) -> TypeTraits& { return t[size_t(type)]; };
    row(TensorType::Q4_0).vec_dot = legacy_vec_dot<Q4_0Format>;
    row(TensorType::Q4_1).vec_dot = legacy_vec_dot<Q4_1Format>;
    row(TensorType::Q5_0).vec_dot = legacy_vec_dot<Q5_0Format>;
    row(TensorType::Q8_0).vec_dot = legacy_vec_dot<Q8_0Format>;
    row(TensorType::IQ4_NL).vec_dot = legacy_vec_dot<IQ4_NLFormat>;
    row(TensorType::Q4_0).vec_dot_rows = legacy_vec_dot_rows<Q4_0Format>;
    row(TensorType::Q4_1).vec_dot_rows = legacy_vec_dot_rows<Q4_1Format>;
    row(TensorType::Q5_0).vec_dot_rows = legacy_vec_dot_rows<Q5_0Format>;
    row(TensorType::Q8_0).vec_dot_rows = legacy_vec_dot_rows<Q8_0Format>;
    row(TensorType::IQ4_NL).vec_dot_rows = legacy_vec_dot_rows<IQ4_NLFormat>;
    row(TensorType::Q4_K).vec_dot = k4_vec_dot<BlockQ4_K>;
    row(TensorType::Q5_K).vec_dot = k4_vec_dot<BlockQ5_K>;
    row(TensorType::Q6_K).vec_dot = q6_k_vec_dot<>;
    row(TensorType::Q2_K).vec_dot = q2_k_vec_dot<>;
    row(TensorType::Q3_K).vec_dot = q3_k_vec_dot<>;
    row(TensorType::Q4_K).vec_dot_rows = rows_of<k4_vec_dot<BlockQ4_K, true>>;
    row(TensorType::Q5_K).vec_dot_rows = rows_of<k4_vec_dot<BlockQ5_K, true>>;
    row(TensorType::Q6_K).vec_dot_rows = rows_of<q6_k_vec_dot<true>>;
    row(TensorType::Q2_K).vec_dot_rows = rows_of<q2_k_vec_dot<true>>;
    row(TensorType::Q3_K).vec_dot_rows = rows_of<q3_k_vec_dot<true>>;
}

}  // namespace avx512
}  // namespace qllm
