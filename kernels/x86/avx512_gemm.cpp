// AVX-512 batched matrix products for prompt processing: tiles of 16 weight rows (32 for F16)
// against all tokens of a batch.
//
// A dot product per (row, token) spends most of its time unpacking the row's bits and folding
// lanes together at the end. Here a tile of 16 rows is unpacked once into int8, interleaved so
// that one 512-bit vector holds 4 consecutive values of each of the 16 rows; one vpdpbusd with 4
// activation bytes broadcast then adds 4 products into every row's lane, and no horizontal sum is
// ever needed: lane r of the accumulator is row r's result. The tile is reused for every token.
//
// vpdpbusd multiplies unsigned by signed bytes, so the activations are biased to unsigned
// (y + 128, an xor of the sign bit) and 128 * (sum of the weights) is taken off; the integer part
// is exact, so results differ from vec_dot's only in the order of the float sums.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/int_blocks.h"
#include "kernels/interleave.h"
#include "kernels/x86/avx512_legacy.h"
#include "kernels/x86/k_quant_scales.h"

namespace qllm {
namespace {

constexpr int kRows = 16;  // weight rows per tile: one per float lane

inline float half_to_float(f16_t h) { return _cvtsh_ss(h); }

inline __mmask16 row_mask(int64_t rows) { return __mmask16((1u << rows) - 1u); }

// A pass over blocks [begin, end) of the rows. Passes short enough for the tile's part and the
// activations' part to stay in L1 run over every token before the next pass; from the second
// pass on, the sums continue from what the first stored in `out`.
struct Pass {
    size_t begin, end;
};

template <int T>
inline void start_sums(__m512 (&acc)[T], const Pass& pass, const float* out, int64_t ld_out, __mmask16 mask) {
    for (int t = 0; t < T; ++t) acc[t] = pass.begin == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, out + t * ld_out);
}

// Sizes a tile for n entries; a partial tile is zeroed first, so that its missing rows add 0.
template <typename E>
void reset(std::vector<E>& tile, size_t n, int64_t rows) {
    if (rows < kRows) tile.assign(n, E{});
    else tile.resize(n);
}

// v[r] = 16 values (floats, or any dwords) of row r  ->  v[c] = value c of the 16 rows.
inline void transpose16x16(__m512 (&v)[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // t[i], t[i + 1]: rows i, i + 1 interleaved, values 4L+0,1 and 4L+2,3
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {  // u[g + e], 128-bit lane L: rows g..g+3 of value 4L + e
        u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
        u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
        u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
        u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
    }
    for (int e = 0; e < 4; ++e) {  // value 4L + e: lane L of u[e], u[4 + e], u[8 + e], u[12 + e]
        const __m512 low_a = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x44), low_b = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x44);
        const __m512 high_a = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xEE), high_b = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xEE);
        v[e] = _mm512_shuffle_f32x4(low_a, low_b, 0x88);
        v[4 + e] = _mm512_shuffle_f32x4(low_a, low_b, 0xDD);
        v[8 + e] = _mm512_shuffle_f32x4(high_a, high_b, 0x88);
        v[12 + e] = _mm512_shuffle_f32x4(high_a, high_b, 0xDD);
    }
}

// ---- legacy formats: blocks of 32 against Q8_0 / Q8_1 ----

struct Tile32 {
    int8_t w[8][kRows][4];    // values 4g..4g+3 of each row
    float d[kRows], m[kRows];
    int32_t neg_bias[kRows];  // -128 * (sum of the row's values): where each dot starts
};

// Values 4g..4g+3 of 16 rows, given as 8 vectors [row i | row i + 8] of 8 dwords (values 0-31):
// out[g] holds row r's dword g in lane r. Two 8x8 dword transposes, one per 256-bit half.
inline void transpose_rows(const __m512i (&in)[8], __m512i (&out)[8]) {
    __m512i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_epi32(in[i], in[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(in[i], in[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    // u[k] (rows 0-3 and 8-11) and u[k + 4] (rows 4-7 and 12-15) hold dwords k and k + 4, one per
    // 128-bit lane: [dword k of rows 0-3 | dword k + 4 | dword k of rows 8-11 | dword k + 4].
    const __m512i low = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), high = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    for (int k = 0; k < 4; ++k) {
        out[k] = _mm512_permutex2var_epi64(u[k], low, u[k + 4]);
        out[k + 4] = _mm512_permutex2var_epi64(u[k], high, u[k + 4]);
    }
}

// A tile of `rows` rows (up to kRows; missing rows add 0), block by block: each row's 32 values
// as int8, transposed into the tile's interleaved order with shuffles.
template <TensorType kType>
void repack32(const uint8_t* w, size_t row_bytes, int64_t rows, int64_t nb, std::vector<Tile32>& tile) {
    using Block = std::conditional_t<kType == TensorType::Q4_0, BlockQ4_0,
                  std::conditional_t<kType == TensorType::Q4_1, BlockQ4_1,
                  std::conditional_t<kType == TensorType::Q5_0, BlockQ5_0,
                  std::conditional_t<kType == TensorType::Q5_1, BlockQ5_1,
                  std::conditional_t<kType == TensorType::Q8_0, BlockQ8_0, BlockIQ4_NL>>>>>;
    tile.resize(size_t(nb));
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t b = 0; b < nb; ++b) {
        Tile32& t = tile[size_t(b)];
        __m512i pairs[8], out[8];
        for (int i = 0; i < 8; ++i) {
            __m256i v[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int h = 0; h < 2; ++h) {
                const int64_t r = i + 8 * h;
                if (r < rows) v[h] = block_values<kType>(w + size_t(r) * row_bytes + size_t(b) * sizeof(Block));
            }
            pairs[i] = _mm512_inserti64x4(_mm512_castsi256_si512(v[0]), v[1], 1);
        }
        transpose_rows(pairs, out);
        __m512i sum = _mm512_setzero_si512();
        for (int g = 0; g < 8; ++g) {
            _mm512_storeu_si512(t.w[g], out[g]);
            sum = _mm512_dpbusd_epi32(sum, ones, out[g]);
        }
        _mm512_storeu_si512(t.neg_bias, _mm512_mullo_epi32(sum, _mm512_set1_epi32(-128)));
        for (int64_t r = 0; r < kRows; ++r) {
            t.d[r] = t.m[r] = 0.0f;
            if (r >= rows) continue;
            const Block& block = reinterpret_cast<const Block*>(w + size_t(r) * row_bytes)[b];
            t.d[r] = half_to_float(block.d);
            if constexpr (requires { block.m; }) t.m[r] = half_to_float(block.m);
        }
    }
}

// Values 4g..4g+3 of each row of a group's block, as signed bytes (Tile32::w[g]).
inline __m512i group_values(const BlockQ4_0x16& x, int g) {
    // The low nibbles of dword g are values 4g..4g+3, the high ones 16+4g..16+4g+3.
    const __m512i q = _mm512_loadu_si512(x.qs[g % 4]);
    const __m512i levels = g < 4 ? q : _mm512_srli_epi16(q, 4);
    return _mm512_sub_epi8(_mm512_and_si512(levels, _mm512_set1_epi8(0x0F)), _mm512_set1_epi8(8));
}
inline __m512i group_values(const BlockQ8_0x16& x, int g) { return _mm512_loadu_si512(x.qs[g]); }

// The tile of a group of 16 full rows in an interleaved layout, whose bytes are already in the
// tile's order.
template <typename Group>
void tile_from_group(const uint8_t* w, int64_t nb, std::vector<Tile32>& tile) {
    tile.resize(size_t(nb));
    for (int64_t b = 0; b < nb; ++b) {
        const Group& x = reinterpret_cast<const Group*>(w)[b];
        Tile32& t = tile[size_t(b)];
        __m512i sum = _mm512_setzero_si512();
        for (int g = 0; g < 8; ++g) {
            const __m512i v = group_values(x, g);
            _mm512_storeu_si512(t.w[g], v);
            sum = _mm512_dpbusd_epi32(sum, _mm512_set1_epi8(1), v);
        }
        _mm512_storeu_si512(t.neg_bias, _mm512_mullo_epi32(sum, _mm512_set1_epi32(-128)));
        _mm512_storeu_ps(t.d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.d))));
        _mm512_storeu_ps(t.m, _mm512_setzero_ps());
    }
}

// A call's activations, prepared once for all its tiles: values biased to unsigned (y + 128,
// an xor of the sign bit), so that each vpdpbusd takes its 4 bytes straight from memory as a
// broadcast, and block scales (and Q8_1's sums) in float.
struct Activations32 {
    std::vector<uint8_t> q;   // token t's values at t * n
    std::vector<float> d, s;  // token t's block b at t * nb + b
};

template <typename Y>
void prepare32(const uint8_t* act, size_t act_row, int64_t n_tok, int64_t nb, Activations32& a) {
    a.q.resize(size_t(n_tok * nb * kQK));
    a.d.resize(size_t(n_tok * nb));
    a.s.resize(size_t(n_tok * nb));
    for (int64_t t = 0; t < n_tok; ++t) {
        const Y* y = reinterpret_cast<const Y*>(act + size_t(t) * act_row);
        uint8_t* q = a.q.data() + t * nb * kQK;
        for (int64_t b = 0; b < nb; ++b) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQK), _mm256_xor_si256(v, _mm256_set1_epi8(char(0x80))));
            a.d[size_t(t * nb + b)] = half_to_float(y[b].d);
            if constexpr (requires { y[b].s; }) a.s[size_t(t * nb + b)] = half_to_float(y[b].s);
        }
    }
}

// Tokens t0 .. t0 + T - 1 against the tile: out[t * ld_out + r].
template <bool kMins, int T>
void tokens32(const std::vector<Tile32>& tile, Pass pass, const Activations32& a, int64_t t0, float* out,
              int64_t ld_out, __mmask16 mask) {
    const int64_t nb = int64_t(tile.size());
    __m512 acc[T];
    start_sums(acc, pass, out, ld_out, mask);
    for (size_t b = pass.begin; b < pass.end; ++b) {
        const Tile32& x = tile[b];
        const uint8_t* y = a.q.data() + (t0 * nb + int64_t(b)) * kQK;
        const float* yd = a.d.data() + t0 * nb + int64_t(b);
        __m512i dot[T];
        for (int t = 0; t < T; ++t) dot[t] = _mm512_loadu_si512(x.neg_bias);
        for (int g = 0; g < 8; ++g) {
            const __m512i w = _mm512_loadu_si512(x.w[g]);
            for (int t = 0; t < T; ++t) {
                dot[t] = _mm512_dpbusd_epi32(dot[t], _mm512_set1_epi32(int(load_u32(y + t * nb * kQK + 4 * g))), w);
            }
        }
        const __m512 d = _mm512_loadu_ps(x.d);
        for (int t = 0; t < T; ++t) {
            const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(yd[t * nb]));
            acc[t] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot[t]), acc[t]);
            if constexpr (kMins) {
                acc[t] = _mm512_fmadd_ps(_mm512_loadu_ps(x.m), _mm512_set1_ps(a.s[size_t((t0 + t) * nb) + b]), acc[t]);
            }
        }
    }
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(out + t * ld_out, mask, acc[t]);
}

// ---- K-quants: super-blocks of 256 against Q8_K ----
//
// Here the weights take the unsigned side of vpdpbusd and the activations are used as they are,
// broadcast straight from memory. Formats with signed levels (Q3_K, Q6_K) store level + offset;
// offset * sc[j] * (sum of sub-block j's activations) is taken off with Q8_K's bsums, the same
// way as the minimums of Q2_K/Q4_K/Q5_K.

struct Tile256 {
    uint8_t w[64][kRows][4];    // values 4g..4g+3 of each row, made non-negative
    int32_t sc[16][kRows];      // sub-block scales
    int16_t mn[8][kRows][2];    // minimums of sub-blocks 2k, 2k+1 (pairs for vpdpwssd)
    int16_t off[8][kRows][2];   // -offset * sc of sub-blocks 2k, 2k+1
    float d[kRows], dmin[kRows];
};

// K-quant rows unpacked with vector code into the same IntBlock256 as unpack_blocks256.

// Q2_K and Q3_K: per half of 128 values, byte l of qs holds the low 2 bits of values l, l + 32,
// l + 64, l + 96; Q3_K's value 32g + l is lowered by 4 where bit g of hmask[l] is clear.
template <typename Block>
void unpack_k2(const Block& x, IntBlock256& out) {
    constexpr bool kHighBit = requires { x.hmask; };
    for (int h = 0; h < 2; ++h) {
        const __m512i qs = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * h)));
        for (int p = 0; p < 2; ++p) {  // values 64p .. 64p + 63 of the half: chunks 2p, 2p + 1
            const int k = 2 * p;
            const __m512i shifts = _mm512_inserti64x4(_mm512_set1_epi16(short(2 * k)), _mm256_set1_epi16(short(2 * k + 2)), 1);
            __m512i q = _mm512_and_si512(_mm512_srlv_epi16(qs, shifts), _mm512_set1_epi8(3));
            if constexpr (kHighBit) {
                const __m512i hmask = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.hmask)));
                const int g = 4 * h + k;
                const __m512i bits = _mm512_inserti64x4(_mm512_set1_epi8(char(1 << g)), _mm256_set1_epi8(char(1 << (g + 1))), 1);
                q = _mm512_mask_sub_epi8(q, _mm512_testn_epi8_mask(hmask, bits), q, _mm512_set1_epi8(4));
            }
            _mm512_storeu_si512(out.q + 128 * h + 64 * p, q);
        }
    }
    if constexpr (kHighBit) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.sc), _mm256_cvtepi8_epi16(q3_k_scales(x.scales)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.mn), _mm256_setzero_si256());
        out.dmin = 0.0f;
    } else {
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
        const __m128i low4 = _mm_set1_epi8(0x0F);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.sc), _mm256_cvtepu8_epi16(_mm_and_si128(packed, low4)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.mn), _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4)));
        out.dmin = half_to_float(x.dmin);
    }
    out.d = half_to_float(x.d);
}

// Q4_K and Q5_K.
template <typename Block>
void unpack_k4(const Block& x, IntBlock256& out) {
    // 64 bytes of qs hold two groups of 64 values: the low nibbles of each group's 32 bytes,
    // then their high nibbles. Q5_K's fifth bit of value 64g + l (+ 32) is bit 2g (2g + 1) of qh[l].
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int h = 0; h < 2; ++h) {
        const __m512i qs = _mm512_loadu_si512(x.qs + 64 * h);
        const __m512i low = _mm512_and_si512(qs, low4), high = _mm512_and_si512(_mm512_srli_epi16(qs, 4), low4);
        __m512i groups[2] = {_mm512_shuffle_i64x2(low, high, 0x44), _mm512_shuffle_i64x2(low, high, 0xEE)};
        if constexpr (requires { x.qh; }) {
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh)));
            for (int k = 0; k < 2; ++k) {
                const int g = 2 * h + k;
                const __m512i shifts = _mm512_inserti64x4(_mm512_set1_epi16(short(2 * g)), _mm256_set1_epi16(short(2 * g + 1)), 1);
                const __m512i bit = _mm512_and_si512(_mm512_srlv_epi16(qh, shifts), _mm512_set1_epi8(1));
                groups[k] = _mm512_or_si512(groups[k], _mm512_slli_epi16(bit, 4));
            }
        }
        _mm512_storeu_si512(out.q + 128 * h, groups[0]);
        _mm512_storeu_si512(out.q + 128 * h + 64, groups[1]);
    }
    // Each scale and minimum covers 32 values: two sub-blocks of 16.
    const __m128i scales_mins = k4_scales_mins(x.scales);
    const __m128i sc = _mm_cvtepu8_epi16(scales_mins), mn = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(scales_mins, scales_mins));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.sc), _mm_unpacklo_epi16(sc, sc));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.sc + 8), _mm_unpackhi_epi16(sc, sc));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.mn), _mm_unpacklo_epi16(mn, mn));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.mn + 8), _mm_unpackhi_epi16(mn, mn));
    out.d = half_to_float(x.d);
    out.dmin = half_to_float(x.dmin);
}

void unpack_q6_k(const BlockQ6_K& x, IntBlock256& out) {
    // Per half of 128 values: ql's 64 bytes give the low 4 bits of values 0-63 (low nibbles)
    // and 64-127 (high nibbles); bits 2g, 2g + 1 of qh[l] are the top 2 bits of value 32g + l.
    const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03), bias = _mm512_set1_epi8(32);
    for (int h = 0; h < 2; ++h) {
        const __m512i ql = _mm512_loadu_si512(x.ql + 64 * h);
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * h));
        const __m512i qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
        const __m512i first = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_slli_epi16(_mm512_and_si512(qh2, low2), 4));
        const __m512i second = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                               _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh2, 4), low2), 4));
        _mm512_storeu_si512(out.q + 128 * h, _mm512_sub_epi8(first, bias));
        _mm512_storeu_si512(out.q + 128 * h + 64, _mm512_sub_epi8(second, bias));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.sc),
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales))));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.mn), _mm256_setzero_si256());
    out.d = half_to_float(x.d);
    out.dmin = 0.0f;
}

template <typename Block, void (*Unpack)(const Block&, IntBlock256&)>
void unpack_blocks(const uint8_t* row, int64_t nb, IntBlock256* out) {
    for (int64_t b = 0; b < nb; ++b) Unpack(reinterpret_cast<const Block*>(row)[b], out[b]);
}

void unpack_row256(TensorType type, const uint8_t* row, int64_t nb, IntBlock256* out) {
    switch (type) {
        case TensorType::Q2_K: return unpack_blocks<BlockQ2_K, unpack_k2<BlockQ2_K>>(row, nb, out);
        case TensorType::Q3_K: return unpack_blocks<BlockQ3_K, unpack_k2<BlockQ3_K>>(row, nb, out);
        case TensorType::Q4_K: return unpack_blocks<BlockQ4_K, unpack_k4<BlockQ4_K>>(row, nb, out);
        case TensorType::Q5_K: return unpack_blocks<BlockQ5_K, unpack_k4<BlockQ5_K>>(row, nb, out);
        case TensorType::Q6_K: return unpack_blocks<BlockQ6_K, unpack_q6_k>(row, nb, out);
        default: return unpack_blocks256(type, row, nb, out);
    }
}

// A tile of `rows` rows (missing rows add 0): each row unpacked to integers, then the values
// transposed into the tile's order 16 rows by 16 dwords at a time, in registers.
void repack256(TensorType type, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t nb,
               std::vector<Tile256>& tile, std::vector<IntBlock256>& unpacked) {
    reset(tile, size_t(nb), rows);
    unpacked.resize(size_t(nb * kRows));
    const int offset = type == TensorType::Q6_K ? 32 : type == TensorType::Q3_K ? 4 : 0;  // lowest levels -32, -4
    for (int64_t r = 0; r < rows; ++r) unpack_row256(type, w + size_t(r) * row_bytes, nb, &unpacked[size_t(r * nb)]);
    const __m512i bias = _mm512_set1_epi8(char(offset));
    for (int64_t b = 0; b < nb; ++b) {
        Tile256& t = tile[size_t(b)];
        for (int k = 0; k < 4; ++k) {  // values 64k .. 64k + 63, as dwords 16k .. 16k + 15
            __m512 v[kRows];
            for (int64_t r = 0; r < kRows; ++r) {
                v[r] = _mm512_setzero_ps();
                if (r < rows) v[r] = _mm512_castsi512_ps(_mm512_add_epi8(_mm512_loadu_si512(unpacked[size_t(r * nb + b)].q + 64 * k), bias));
            }
            transpose16x16(v);
            for (int c = 0; c < 16; ++c) _mm512_storeu_ps(reinterpret_cast<float*>(t.w[16 * k + c]), v[c]);
        }
        // Scales as int32 per row; minimums and offsets as int16 pairs, one dword per pair.
        __m512 sc[kRows], mn[kRows], off[kRows];
        for (int64_t r = 0; r < kRows; ++r) {
            sc[r] = mn[r] = off[r] = _mm512_setzero_ps();
            if (r >= rows) continue;
            const IntBlock256& src = unpacked[size_t(r * nb + b)];
            const __m256i scales = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src.sc));
            sc[r] = _mm512_castsi512_ps(_mm512_cvtepi16_epi32(scales));
            mn[r] = _mm512_castsi512_ps(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src.mn))));
            off[r] = _mm512_castsi512_ps(_mm512_castsi256_si512(_mm256_mullo_epi16(scales, _mm256_set1_epi16(int16_t(-offset)))));
            t.d[r] = src.d;
            t.dmin[r] = src.dmin;
        }
        transpose16x16(sc);
        transpose16x16(mn);
        transpose16x16(off);
        for (int j = 0; j < 16; ++j) _mm512_storeu_ps(reinterpret_cast<float*>(t.sc[j]), sc[j]);
        for (int k = 0; k < 8; ++k) {
            _mm512_storeu_ps(reinterpret_cast<float*>(t.mn[k]), mn[k]);
            _mm512_storeu_ps(reinterpret_cast<float*>(t.off[k]), off[k]);
        }
    }
}

// sum_j pairs[j][r] * bsums[j], added to acc (vpdpwssd: int16 pairs into int32 lanes).
inline __m512i add_bsum_products(__m512i acc, const int16_t (*pairs)[kRows][2], const int16_t* bsums) {
    for (int k = 0; k < 8; ++k) {
        acc = _mm512_dpwssd_epi32(acc, _mm512_loadu_si512(pairs[k]), _mm512_set1_epi32(int(load_u32(bsums + 2 * k))));
    }
    return acc;
}

template <int T, int kSub, bool kMins, bool kOffset>
void tokens256(const std::vector<Tile256>& tile, Pass pass, const uint8_t* act, size_t act_row, float* out,
               int64_t ld_out, __mmask16 mask) {
    __m512 acc[T];
    start_sums(acc, pass, out, ld_out, mask);
    for (size_t b = pass.begin; b < pass.end; ++b) {
        const Tile256& x = tile[b];
        const BlockQ8_K* y[T];
        for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const BlockQ8_K*>(act + size_t(t) * act_row) + b;
        __m512i sum[T];
        for (int t = 0; t < T; ++t) sum[t] = _mm512_setzero_si512();
        // Sub-blocks of kSub values share a scale (Q4_K/Q5_K: 32, the others 16).
        for (int j = 0; j < 16; j += kSub / 16) {
            __m512i dot[T];
            for (int t = 0; t < T; ++t) dot[t] = _mm512_setzero_si512();
            for (int g = 4 * j; g < 4 * j + kSub / 4; ++g) {
                const __m512i w = _mm512_loadu_si512(x.w[g]);
                for (int t = 0; t < T; ++t) {
                    dot[t] = _mm512_dpbusd_epi32(dot[t], w, _mm512_set1_epi32(int(load_u32(y[t]->qs + 4 * g))));
                }
            }
            const __m512i sc = _mm512_loadu_si512(x.sc[j]);
            for (int t = 0; t < T; ++t) sum[t] = _mm512_add_epi32(sum[t], _mm512_mullo_epi32(dot[t], sc));
        }
        const __m512 d = _mm512_loadu_ps(x.d);
        for (int t = 0; t < T; ++t) {
            if constexpr (kOffset) sum[t] = add_bsum_products(sum[t], x.off, y[t]->bsums);
            const __m512 dy = _mm512_set1_ps(y[t]->d);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(sum[t]), acc[t]);
        }
        if constexpr (kMins) {
            const __m512 dmin = _mm512_loadu_ps(x.dmin);
            for (int t = 0; t < T; ++t) {
                const __m512i mins = add_bsum_products(_mm512_setzero_si512(), x.mn, y[t]->bsums);
                acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, _mm512_set1_ps(y[t]->d)), _mm512_cvtepi32_ps(mins), acc[t]);
            }
        }
    }
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(out + t * ld_out, mask, acc[t]);
}

// ---- F16: f32 FMAs over tiles of 32 rows, a pass of kF16Pass values at a time ----
//
// Each step broadcasts one activation of each of T tokens and multiplies it with two vectors
// of 16 rows: 2T accumulators in registers, two FMAs per broadcast. A pass's tile (16 KiB) stays
// in L1 while every token meets it; the pass's activations of every token (T x kF16Pass floats
// per group, 256 KiB for 512 tokens) stay in L2 while every tile of the call meets them.

constexpr int kF16Rows = 2 * kRows;
constexpr int64_t kF16Pass = 128;

// n f16 values in float.
void halves_to_floats(const f16_t* src, int64_t n, float* x) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm512_storeu_ps(x + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
    }
    for (; i < n; ++i) x[i] = half_to_float(src[i]);
}

// Values [begin, end) of `rows` f16 rows, row r's value i at tile[(i - begin) * kF16Rows + r]:
// 16 rows by 16 values at a time, converted and transposed in registers.
void tile_f16(const uint8_t* src, size_t row_bytes, int64_t rows, Pass pass, float* tile) {
    const int64_t len = int64_t(pass.end - pass.begin);
    for (int64_t h = 0; h * kRows < rows; ++h) {
        const int64_t half_rows = std::min<int64_t>(kRows, rows - h * kRows);
        for (int64_t i = 0; i < len; i += 16) {
            const int64_t n = std::min<int64_t>(16, len - i);
            __m512 v[16];
            for (int64_t r = 0; r < 16; ++r) {
                v[r] = _mm512_setzero_ps();
                if (r >= half_rows) continue;
                const auto* row = reinterpret_cast<const f16_t*>(src + size_t(h * kRows + r) * row_bytes) + pass.begin + i;
                v[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(row_mask(n), row));
            }
            transpose16x16(v);
            for (int64_t c = 0; c < n; ++c) _mm512_storeu_ps(tile + (i + c) * kF16Rows + h * kRows, v[c]);
        }
    }
}

// Tokens against a pass's tile; token t's values of the pass are at x[t * kF16Pass].
template <int T>
void tokens_f16(const float* tile, Pass pass, const float* x, float* out, int64_t ld_out, int64_t rows) {
    const __mmask16 mask[2] = {row_mask(std::min<int64_t>(rows, kRows)), row_mask(std::max<int64_t>(rows - kRows, 0))};
    __m512 acc[2][T];
    for (int h = 0; h < 2; ++h) start_sums(acc[h], pass, out + h * kRows, ld_out, mask[h]);
    for (size_t i = 0; i < pass.end - pass.begin; ++i) {
        const __m512 w0 = _mm512_loadu_ps(tile + i * kF16Rows), w1 = _mm512_loadu_ps(tile + i * kF16Rows + kRows);
        for (int t = 0; t < T; ++t) {
            const __m512 y = _mm512_set1_ps(x[t * kF16Pass + int64_t(i)]);
            acc[0][t] = _mm512_fmadd_ps(w0, y, acc[0][t]);
            acc[1][t] = _mm512_fmadd_ps(w1, y, acc[1][t]);
        }
    }
    for (int h = 0; h < 2; ++h) {
        for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(out + h * kRows + t * ld_out, mask[h], acc[h][t]);
    }
}

// ---- drivers: tiles of rows, tokens in groups of kTokens ----

// Runs fn<T>(t0, out_t0) over all tokens: groups of kTokens, then the rest as one group (a
// kernel instance per size), so that each tile is read once more at most: short batches (F16
// goes through here from 6 tokens) and the end of long ones.
template <int kTokens, typename Fn>
void over_tokens(int64_t n_tok, float* out, int64_t ld_out, Fn&& fn) {
    int64_t t = 0;
    for (; t + kTokens <= n_tok; t += kTokens) fn(std::integral_constant<int, kTokens>{}, t, out + t * ld_out);
    [&]<int... k>(std::integer_sequence<int, k...>) {
        ((n_tok - t == k + 1 ? fn(std::integral_constant<int, k + 1>{}, t, out + t * ld_out) : void()), ...);
    }(std::make_integer_sequence<int, kTokens - 1>{});
}

// Passes of `per_pass` blocks over n blocks.
std::vector<Pass> passes(size_t n, size_t per_pass) {
    std::vector<Pass> out;
    for (size_t b = 0; b < n; b += per_pass) out.push_back({b, std::min(n, b + per_pass)});
    return out;
}

// Bytes [begin, end) of rows [first, last) requested ahead (kLocality 3: into L1, 2: into L2): the
// next tile of rows, read by the repacking block by block (or by F16 a pass at a time) as many
// short interleaved runs that the hardware prefetcher follows too late. They arrive while the
// current tile is repacked and meets every token.
template <int kLocality>
void prefetch_rows(const void* w, size_t row_bytes, int64_t first, int64_t last, size_t begin, size_t end) {
    for (int64_t r = first; r < last; ++r) {
        for (size_t b = begin; b < end; b += 64) __builtin_prefetch(static_cast<const char*>(w) + size_t(r) * row_bytes + b, 0, kLocality);
    }
}

template <TensorType kType>
void gemm32(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* act, size_t act_row_bytes,
            int64_t n_tok, float* out, int64_t ld_out) {
    constexpr bool kMins = kType == TensorType::Q4_1 || kType == TensorType::Q5_1;
    using Y = std::conditional_t<kMins, BlockQ8_1, BlockQ8_0>;
    thread_local std::vector<Tile32> tile;
    thread_local Activations32 a;
    prepare32<Y>(static_cast<const uint8_t*>(act), act_row_bytes, n_tok, n / kQK, a);
    for (int64_t r0 = 0; r0 < n_rows; r0 += kRows) {
        const int64_t rows = std::min<int64_t>(kRows, n_rows - r0);
        prefetch_rows<2>(w, w_row_bytes, r0 + kRows, std::min(r0 + 2 * kRows, n_rows), 0, w_row_bytes);
        const uint8_t* rows_at = static_cast<const uint8_t*>(w) + size_t(r0) * w_row_bytes;
        if constexpr (kType == TensorType::Q4_0_R16) tile_from_group<BlockQ4_0x16>(rows_at, n / kQK, tile);
        else if constexpr (kType == TensorType::Q8_0_R16) tile_from_group<BlockQ8_0x16>(rows_at, n / kQK, tile);
        else repack32<kType>(rows_at, w_row_bytes, rows, n / kQK, tile);
        for (const Pass& pass : passes(tile.size(), 32)) {
            over_tokens<8>(n_tok, out + r0, ld_out, [&](auto T, int64_t t0, float* o) {
                tokens32<kMins, T()>(tile, pass, a, t0, o, ld_out, row_mask(rows));
            });
        }
    }
}

// A group of 16 rows of an interleaved layout put back into rows. Per block, the dwords go 16
// at a time through a 16x16 transpose: vector i holds the place of row dword d0 + i for every
// row, and after the transpose vector r holds row r's dwords d0 .. d0 + 15.
template <const Interleave& L>
void ungroup(const void* group, int64_t n, void* rows, size_t row_bytes) {
    static const auto place_of = [] {  // the place of each row dword
        std::array<uint8_t, 64> a{};
        static_assert(L.places() <= a.size());
        for (size_t p = 0; p < L.places(); ++p) a[(L.dword_offset(p) - L.dword_begin) / 4] = uint8_t(p);
        return a;
    }();
    const auto* in = static_cast<const uint8_t*>(group);
    auto* out = static_cast<uint8_t*>(rows);
    for (int64_t b = 0; b < n / int64_t(L.block_values); ++b, in += kRows * L.block_bytes, out += L.block_bytes) {
        for (size_t k = 0; k < L.halves(); ++k) {
            for (int r = 0; r < kRows; ++r) {
                std::memcpy(out + size_t(r) * row_bytes + L.half_offset(k), in + L.half_place(k, r), 2);
            }
        }
        for (size_t d0 = 0; d0 < L.places(); d0 += 16) {
            const size_t count = std::min<size_t>(16, L.places() - d0);
            __m512 v[16];
            for (size_t i = 0; i < 16; ++i) {
                v[i] = i < count ? _mm512_loadu_ps(in + L.dword_place(place_of[d0 + i], 0)) : _mm512_setzero_ps();
            }
            transpose16x16(v);
            for (int r = 0; r < kRows; ++r) {
                _mm512_mask_storeu_ps(out + size_t(r) * row_bytes + L.dword_begin + 4 * d0, row_mask(int64_t(count)), v[r]);
            }
        }
    }
}

void rows_of_group(TensorType layout, const void* group, int64_t n, void* rows, size_t row_bytes) {
    switch (layout) {
        case TensorType::Q2_K_R16: return ungroup<kQ2_KLayout>(group, n, rows, row_bytes);
        case TensorType::Q3_K_R16: return ungroup<kQ3_KLayout>(group, n, rows, row_bytes);
        case TensorType::Q4_K_R16: return ungroup<kQ4_KLayout>(group, n, rows, row_bytes);
        case TensorType::Q5_K_R16: return ungroup<kQ5_KLayout>(group, n, rows, row_bytes);
        case TensorType::Q6_K_R16: return ungroup<kQ6_KLayout>(group, n, rows, row_bytes);
        default: return;  // not reached: gemm256 is instantiated for these layouts only
    }
}

// kType's rows; or, for kLayout, groups of 16 of them in that interleaved layout, each put back
// into rows first (a copy per tile).
template <TensorType kType, TensorType kLayout = kType>
void gemm256(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* act, size_t act_row_bytes,
             int64_t n_tok, float* out, int64_t ld_out) {
    constexpr bool kMins = kType == TensorType::Q2_K || kType == TensorType::Q4_K || kType == TensorType::Q5_K;
    constexpr bool kOffset = kType == TensorType::Q3_K || kType == TensorType::Q6_K;  // signed levels
    constexpr int kSub = kType == TensorType::Q4_K || kType == TensorType::Q5_K ? 32 : 16;
    thread_local std::vector<Tile256> tile;
    thread_local std::vector<IntBlock256> row;
    thread_local std::vector<uint8_t> ungrouped;
    for (int64_t r0 = 0; r0 < n_rows; r0 += kRows) {
        const int64_t rows = std::min<int64_t>(kRows, n_rows - r0);
        prefetch_rows<2>(w, w_row_bytes, r0 + kRows, std::min(r0 + 2 * kRows, n_rows), 0, w_row_bytes);
        const uint8_t* rows_at = static_cast<const uint8_t*>(w) + size_t(r0) * w_row_bytes;
        if constexpr (kLayout != kType) {
            ungrouped.resize(kRows * w_row_bytes);
            rows_of_group(kLayout, rows_at, n, ungrouped.data(), w_row_bytes);
            rows_at = ungrouped.data();
        }
        repack256(kType, rows_at, w_row_bytes, rows, n / kQK_K, tile, row);
        for (const Pass& pass : passes(tile.size(), 4)) {
            over_tokens<8>(n_tok, out + r0, ld_out, [&](auto T, int64_t t0, float* o) {
                tokens256<T(), kSub, kMins, kOffset>(tile, pass, static_cast<const uint8_t*>(act) + size_t(t0) * act_row_bytes,
                                                     act_row_bytes, o, ld_out, row_mask(rows));
            });
        }
    }
}

void gemm_f16(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* act, size_t act_row_bytes,
              int64_t n_tok, float* out, int64_t ld_out) {
    thread_local std::vector<float> tile, x;
    tile.resize(size_t(kF16Pass) * kF16Rows);
    x.resize(size_t(n_tok * kF16Pass));
    const auto* a = static_cast<const uint8_t*>(act);
    for (const Pass& pass : passes(size_t(n), kF16Pass)) {
        for (int64_t t = 0; t < n_tok; ++t) {
            halves_to_floats(reinterpret_cast<const f16_t*>(a + size_t(t) * act_row_bytes) + pass.begin,
                             int64_t(pass.end - pass.begin), x.data() + t * kF16Pass);
        }
        for (int64_t r0 = 0; r0 < n_rows; r0 += kF16Rows) {
            const auto* rows_at = static_cast<const uint8_t*>(w) + size_t(r0) * w_row_bytes;
            const int64_t rows = std::min<int64_t>(kF16Rows, n_rows - r0);
            tile_f16(rows_at, w_row_bytes, rows, pass, tile.data());
            prefetch_rows<3>(w, w_row_bytes, r0 + kF16Rows, std::min(r0 + 2 * kF16Rows, n_rows), pass.begin * sizeof(f16_t),
                             pass.end * sizeof(f16_t));
            over_tokens<12>(n_tok, out + r0, ld_out, [&](auto T, int64_t t0, float* o) {
                tokens_f16<T()>(tile.data(), pass, x.data() + t0 * kF16Pass, o, ld_out, rows);
            });
        }
    }
}

}  // namespace

void register_avx512_gemm(TraitsTable& t) {
    // Q5_1 keeps its vec_dot, which follows the reference's summation order bit for bit: on the
    // small golden models its d * sum + m * s terms cancel so much that any other order moves
    // the logits measurably.
    t[size_t(TensorType::Q4_0)].gemm = gemm32<TensorType::Q4_0>;
    t[size_t(TensorType::Q4_0_R16)].gemm = gemm32<TensorType::Q4_0_R16>;
    t[size_t(TensorType::Q4_1)].gemm = gemm32<TensorType::Q4_1>;
    t[size_t(TensorType::Q5_0)].gemm = gemm32<TensorType::Q5_0>;
    t[size_t(TensorType::Q8_0)].gemm = gemm32<TensorType::Q8_0>;
    t[size_t(TensorType::Q8_0_R16)].gemm = gemm32<TensorType::Q8_0_R16>;
    t[size_t(TensorType::IQ4_NL)].gemm = gemm32<TensorType::IQ4_NL>;
    t[size_t(TensorType::Q2_K)].gemm = gemm256<TensorType::Q2_K>;
    t[size_t(TensorType::Q2_K_R16)].gemm = gemm256<TensorType::Q2_K, TensorType::Q2_K_R16>;
    t[size_t(TensorType::Q3_K)].gemm = gemm256<TensorType::Q3_K>;
    t[size_t(TensorType::Q3_K_R16)].gemm = gemm256<TensorType::Q3_K, TensorType::Q3_K_R16>;
    t[size_t(TensorType::Q4_K)].gemm = gemm256<TensorType::Q4_K>;
    t[size_t(TensorType::Q4_K_R16)].gemm = gemm256<TensorType::Q4_K, TensorType::Q4_K_R16>;
    t[size_t(TensorType::Q5_K)].gemm = gemm256<TensorType::Q5_K>;
    t[size_t(TensorType::Q5_K_R16)].gemm = gemm256<TensorType::Q5_K, TensorType::Q5_K_R16>;
    t[size_t(TensorType::Q6_K)].gemm = gemm256<TensorType::Q6_K>;
    t[size_t(TensorType::Q6_K_R16)].gemm = gemm256<TensorType::Q6_K, TensorType::Q6_K_R16>;
    t[size_t(TensorType::F16)].gemm = gemm_f16;
    // F16's row kernel converts every weight to float once per token, its GEMM once per tile:
    // the GEMM is the faster from 6 tokens (8 tokens: 50 against 30 tokens/s on tinyllama-1.1b).
    // The int8 formats' row kernels are the faster up to 12-16 tokens.
    t[size_t(TensorType::F16)].gemm_min_tokens = 6;
}

}  // namespace qllm
