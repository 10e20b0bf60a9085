// AVX-512 + VNNI row kernels of the interleaved in-memory layouts (Q4_0_R16, Q8_0_R16, Q2_K_R16,
// Q3_K_R16, Q4_K_R16, Q5_K_R16, Q6_K_R16; kernels/blocks.h): token generation over weights that the model
// loader repacked (src/model/repack.cpp). Each 64-byte load holds one dword of each of 16 rows, so
// every lane of a vector is one row: no byte gathering and no horizontal sums. Integer sums are
// exact; results differ from the plain formats' vec_dot only in float rounding.
#pragma GCC optimize("fp-contract=off")  // only explicit FMAs
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() operands that trip -Wuninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wignored-attributes"  // std::array of vectors

#include <immintrin.h>

#include <array>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/x86/avx512_legacy.h"
#include "kernels/x86/row_stream.h"

namespace qllm {
namespace {

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m512i load64(const void* p) { return _mm512_loadu_si512(p); }

// The lanes of the rows left in a group (all 16 but in tests of partial groups).
inline __mmask16 group_rows(int64_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u); }

// ---- Q4_0_R16 and Q8_0_R16: 16 rows interleaved (kernels/blocks.h), one float lane per row ----
//
// A 64-byte load holds dword g of each of the 16 rows, so vpdpbusd with the matching 4
// activation bytes broadcast adds 4 products into every row's lane: for Q4_0, its low nibbles
// are values 4g..4g+3 and its high nibbles 16+4g..16+4g+3. Per 512 Q4_0 weights that is 4 loads,
// 12 logic ops and 8 vpdpbusd, with no gathering of bytes and no horizontal sums (the plain rows
// take about twice the instructions). Each lane sums a whole block in int32, exactly, and then
// adds d_x * d_y times it with one rounding, in block order.

// Per activation block: the sum of its values.
inline int32_t q8_0_sum(const BlockQ8_0& y) {
    const __m256i u = _mm256_xor_si256(load32(y.qs), _mm256_set1_epi8(char(0x80)));  // value + 128
    const __m256i sums = _mm256_sad_epu8(u, _mm256_setzero_si256());
    const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
    return int32_t(_mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1)) - 128 * kQK;
}

inline __m512i y_dword(const BlockQ8_0& y, int g) { return _mm512_set1_epi32(int(load_u32(y.qs + 4 * g))); }

// Block b of a group: the int32 dot of each row's values with y, in lanes 0-15. The stored levels
// are value + kBias, unsigned: `bias` is -kBias * (sum of y).
inline __m512i r16_block(const BlockQ4_0x16& x, const BlockQ8_0& y, int32_t bias) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512i low = _mm512_set1_epi32(bias), high = _mm512_setzero_si512();
    for (int g = 0; g < 4; ++g) {
        const __m512i q = load64(x.qs[g]);
        low = _mm512_dpbusd_epi32(low, _mm512_and_si512(q, m4), y_dword(y, g));
        high = _mm512_dpbusd_epi32(high, _mm512_and_si512(_mm512_srli_epi16(q, 4), m4), y_dword(y, 4 + g));
    }
    return _mm512_add_epi32(low, high);
}
inline __m512i r16_block(const BlockQ8_0x16& x, const BlockQ8_0& y, int32_t bias) {
    const __m512i sign = _mm512_set1_epi8(char(0x80));  // value + 128
    __m512i even = _mm512_set1_epi32(bias), odd = _mm512_setzero_si512();
    for (int g = 0; g < 8; g += 2) {
        even = _mm512_dpbusd_epi32(even, _mm512_xor_si512(load64(x.qs[g]), sign), y_dword(y, g));
        odd = _mm512_dpbusd_epi32(odd, _mm512_xor_si512(load64(x.qs[g + 1]), sign), y_dword(y, g + 1));
    }
    return _mm512_add_epi32(even, odd);
}

template <typename Group>
inline __m512 r16_scales(const Group& x, float dy) {
    return _mm512_mul_ps(_mm512_cvtph_ps(load32(x.d)), _mm512_set1_ps(dy));
}

template <typename Group, int kBias>
void r16_vec_dot_rows(int64_t n, const void* vx, size_t x_row_bytes, int64_t n_rows, const void* vy, float* out) {
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    const int64_t nb = n / kQK;
    thread_local std::vector<int32_t> bias;
    thread_local std::vector<float> dy;
    bias.resize(size_t(nb));
    dy.resize(size_t(nb));
    for (int64_t b = 0; b < nb; ++b) {
        bias[size_t(b)] = -kBias * q8_0_sum(y[b]);
        dy[size_t(b)] = _cvtsh_ss(y[b].d);
    }
    for (int64_t r0 = 0; r0 < n_rows; r0 += 16) {
        const auto* x = reinterpret_cast<const Group*>(static_cast<const uint8_t*>(vx) + size_t(r0) * x_row_bytes);
        // Two accumulators taken in turn, so that the FMA latency does not bound the loop.
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            prefetch_ahead(x + b, 2 * sizeof(Group));
            const __m512i dot0 = r16_block(x[b], y[b], bias[size_t(b)]);
            const __m512i dot1 = r16_block(x[b + 1], y[b + 1], bias[size_t(b + 1)]);
            acc0 = _mm512_fmadd_ps(r16_scales(x[b], dy[size_t(b)]), _mm512_cvtepi32_ps(dot0), acc0);
            acc1 = _mm512_fmadd_ps(r16_scales(x[b + 1], dy[size_t(b + 1)]), _mm512_cvtepi32_ps(dot1), acc1);
        }
        if (b < nb) {
            const __m512i dot = r16_block(x[b], y[b], bias[size_t(b)]);
            acc0 = _mm512_fmadd_ps(r16_scales(x[b], dy[size_t(b)]), _mm512_cvtepi32_ps(dot), acc0);
        }
        _mm512_mask_storeu_ps(out + r0, group_rows(n_rows - r0), _mm512_add_ps(acc0, acc1));
    }
}

// The frame of the K-quant layouts' row kernels: each group of 16 rows, one float lane per row,
// super-block by super-block; block(x, y, i, acc) adds super-block i's products to acc.
template <typename Group, typename Block>
void k_group_rows(int64_t n, const void* vx, size_t x_row_bytes, int64_t n_rows, const void* vy, float* out, Block block) {
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    for (int64_t r0 = 0; r0 < n_rows; r0 += 16) {
        const auto* xs = reinterpret_cast<const Group*>(static_cast<const uint8_t*>(vx) + size_t(r0) * x_row_bytes);
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < n / kQK_K; ++i) acc = block(xs[i], ys[i], i, acc);
        _mm512_mask_storeu_ps(out + r0, group_rows(n_rows - r0), acc);
    }
}

// ---- Q4_K_R16 and Q5_K_R16: 16 rows interleaved like Q4_0_R16 ----
//
// Per super-block and group: 32 loads, 64 masks, 64 vpdpbusd into one int32 sum per sub-block
// and row, then the sub-block scales (one byte shuffle each: 6-bit values stored a byte apart)
// by vpmulld, and the minimums by vpdpwssd against pairs of sub-block activation sums. The high
// nibbles are used in place (16 times their value), and their total divided by 16 at the end.

// A Q8_K block's side of the products: its scale and, per pair of sub-blocks (2k, 2k + 1), their
// activation sums as int16 halves of a dword.
struct Q8KSums {
    float d;
    int32_t pairs[4];
};

inline Q8KSums q8_k_sums(const BlockQ8_K& y) {
    Q8KSums s{y.d, {}};
    for (int k = 0; k < 4; ++k) {
        const int a = y.bsums[4 * k] + y.bsums[4 * k + 1], b = y.bsums[4 * k + 2] + y.bsums[4 * k + 3];
        s.pairs[k] = int32_t(uint32_t(uint16_t(a)) | uint32_t(uint16_t(b)) << 16);
    }
    return s;
}

// Byte kFirst of each dword in its low byte (kPair: and byte kFirst + 1 in its third, as int16 pairs).
template <int kFirst, bool kPair>
inline __m512i dword_bytes(__m512i v) {
    alignas(64) static constexpr auto index = [] {
        std::array<int8_t, 64> a{};
        for (int i = 0; i < 64; ++i) {
            const int lane = i / 4 * 4, k = i % 4;
            a[size_t(i)] = k == 0 ? int8_t(lane + kFirst) : kPair && k == 2 ? int8_t(lane + kFirst + 1) : int8_t(-1);
        }
        return a;
    }();
    return _mm512_shuffle_epi8(v, _mm512_load_si512(index.data()));
}

// Q4_K_R16, and Q5_K_R16 (whose fifth bits are or-ed into the nibbles under a mask; its high
// nibbles are shifted down, as 16 times a 5-bit level would not fit a byte).
template <typename Group>
void k4_r16_vec_dot_rows(int64_t n, const void* vx, size_t x_row_bytes, int64_t n_rows, const void* vy, float* out) {
    constexpr bool kFifthBit = requires(const Group& g) { g.qh; };
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = n / kQK_K;
    thread_local std::vector<Q8KSums> sums;
    sums.resize(size_t(nb));
    for (int64_t i = 0; i < nb; ++i) sums[size_t(i)] = q8_k_sums(ys[i]);
    const __m512i low4 = _mm512_set1_epi8(0x0F), high4 = _mm512_set1_epi8(char(0xF0));
    const __m512i six = _mm512_set1_epi8(0x3F), top2 = _mm512_set1_epi8(0x30);
    k_group_rows<Group>(n, vx, x_row_bytes, n_rows, vy, out, [&](const auto& x, const BlockQ8_K& y, int64_t i, __m512 acc) {
        // Bytes j of sc03/mn03 are scale/minimum j of each row, of sc47/mn47 j + 4 (see k4_scales_mins).
        const __m512i w0 = load64(x.scales[0]), w1 = load64(x.scales[1]), w2 = load64(x.scales[2]);
        const __m512i sc03 = _mm512_and_si512(w0, six), mn03 = _mm512_and_si512(w1, six);
        const __m512i sc47 = _mm512_or_si512(_mm512_and_si512(w2, low4), _mm512_and_si512(_mm512_srli_epi32(w0, 2), top2));
        const __m512i mn47 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), low4),
                                             _mm512_and_si512(_mm512_srli_epi32(w1, 2), top2));
        const __m512i scales[8] = {dword_bytes<0, false>(sc03), dword_bytes<1, false>(sc03), dword_bytes<2, false>(sc03),
                                   dword_bytes<3, false>(sc03), dword_bytes<0, false>(sc47), dword_bytes<1, false>(sc47),
                                   dword_bytes<2, false>(sc47), dword_bytes<3, false>(sc47)};
        __m512i low_sum = _mm512_setzero_si512(), high_sum = _mm512_setzero_si512();  // Q4_K high: 16 times
        for (int c = 0; c < 4; ++c) {  // 64 values: sub-blocks 2c (low nibbles) and 2c + 1 (high)
            prefetch_quarter(x, c);
            __m512i low = _mm512_setzero_si512(), high = _mm512_setzero_si512();
            for (int k = 0; k < 8; ++k) {
                const __m512i q = load64(x.qs[8 * c + k]);
                __m512i low_levels = _mm512_and_si512(q, low4), high_levels;
                if constexpr (kFifthBit) {  // bits 2c and 2c + 1 of qh byte l (dword k holds l = 4k..4k+3)
                    const __m512i qh = load64(x.qh[k]), sixteen = _mm512_set1_epi8(16);
                    high_levels = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
                    low_levels = _mm512_mask_add_epi8(low_levels, _mm512_test_epi8_mask(qh, _mm512_set1_epi8(char(1 << (2 * c)))),
                                                      low_levels, sixteen);
                    high_levels = _mm512_mask_add_epi8(high_levels, _mm512_test_epi8_mask(qh, _mm512_set1_epi8(char(2 << (2 * c)))),
                                                       high_levels, sixteen);
                } else {
                    high_levels = _mm512_and_si512(q, high4);
                }
                low = _mm512_dpbusd_epi32(low, low_levels, _mm512_set1_epi32(int(load_u32(y.qs + 64 * c + 4 * k))));
                high = _mm512_dpbusd_epi32(high, high_levels, _mm512_set1_epi32(int(load_u32(y.qs + 64 * c + 32 + 4 * k))));
            }
            low_sum = _mm512_add_epi32(low_sum, _mm512_mullo_epi32(low, scales[2 * c]));
            high_sum = _mm512_add_epi32(high_sum, _mm512_mullo_epi32(high, scales[2 * c + 1]));
        }
        const __m512i sumi = _mm512_add_epi32(low_sum, kFifthBit ? high_sum : _mm512_srai_epi32(high_sum, 4));
        const Q8KSums& ysum = sums[size_t(i)];
        __m512i mins = _mm512_dpwssd_epi32(_mm512_setzero_si512(), dword_bytes<0, true>(mn03), _mm512_set1_epi32(ysum.pairs[0]));
        mins = _mm512_dpwssd_epi32(mins, dword_bytes<2, true>(mn03), _mm512_set1_epi32(ysum.pairs[1]));
        mins = _mm512_dpwssd_epi32(mins, dword_bytes<0, true>(mn47), _mm512_set1_epi32(ysum.pairs[2]));
        mins = _mm512_dpwssd_epi32(mins, dword_bytes<2, true>(mn47), _mm512_set1_epi32(ysum.pairs[3]));
        const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(load32(x.d)), _mm512_set1_ps(ysum.d));
        const __m512 dmin = _mm512_mul_ps(_mm512_cvtph_ps(load32(x.dmin)), _mm512_set1_ps(-ysum.d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
        acc = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(mins), acc);
        return acc;
    });
}

// ---- Q2_K_R16: 16 Q2_K rows interleaved ----
//
// Per half h of 128 values, qs dword 8h + 4p + t holds in bit pair j the levels of values
// 128h + 32j + 16p + 4t + 0..3, sub-block 8h + 2j + p: each loaded dword serves 4 sub-blocks,
// one mask each: pair j is used in place, as 4^j times its level, and each pair's total is
// shifted down once per super-block. Sub-block scales (low nibbles) by vpmulld, minimums (high
// nibbles) by vpdpwssd against pairs of activation sums.

// Byte k of each dword in its low byte, for a k known only at run time.
inline __m512i dword_byte(__m512i v, int k) {
    alignas(64) static constexpr auto indexes = [] {
        std::array<std::array<int8_t, 64>, 4> a{};
        for (int j = 0; j < 4; ++j) {
            for (int i = 0; i < 64; ++i) a[size_t(j)][size_t(i)] = i % 4 == 0 ? int8_t(i + j) : int8_t(-1);
        }
        return a;
    }();
    return _mm512_shuffle_epi8(v, _mm512_load_si512(indexes[size_t(k)].data()));
}

void q2_k_r16_vec_dot_rows(int64_t n, const void* vx, size_t x_row_bytes, int64_t n_rows, const void* vy, float* out) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    k_group_rows<BlockQ2_Kx16>(n, vx, x_row_bytes, n_rows, vy, out, [&](const auto& x, const BlockQ8_K& y, int64_t, __m512 acc) {
        __m512i scales[4], mins = _mm512_setzero_si512();  // scales[k]: bytes are sub-blocks 4k..4k+3
        for (int k = 0; k < 4; ++k) {
            const __m512i packed = load64(x.scales[k]);
            scales[k] = _mm512_and_si512(packed, low4);
            const __m512i mn = _mm512_and_si512(_mm512_srli_epi32(packed, 4), low4);
            mins = _mm512_dpwssd_epi32(mins, dword_bytes<0, true>(mn), _mm512_set1_epi32(int(load_u32(y.bsums + 4 * k))));
            mins = _mm512_dpwssd_epi32(mins, dword_bytes<2, true>(mn), _mm512_set1_epi32(int(load_u32(y.bsums + 4 * k + 2))));
        }
        // sums[j]: the bit pair j products, 4^j times (the levels are used in place, unshifted).
        __m512i sums[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        for (int h = 0; h < 2; ++h) {
            for (int p = 0; p < 2; ++p) {
                prefetch_quarter(x, 2 * h + p);
                __m512i dot[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
                for (int t = 0; t < 4; ++t) {
                    const __m512i q = load64(x.qs[8 * h + 4 * p + t]);
                    for (int j = 0; j < 4; ++j) {
                        const __m512i levels = _mm512_and_si512(q, _mm512_set1_epi8(char(3 << (2 * j))));
                        const int v = 128 * h + 32 * j + 16 * p + 4 * t;
                        dot[j] = _mm512_dpbusd_epi32(dot[j], levels, _mm512_set1_epi32(int(load_u32(y.qs + v))));
                    }
                }
                for (int j = 0; j < 4; ++j) {
                    const int sub = 8 * h + 2 * j + p;
                    sums[j] = _mm512_add_epi32(sums[j], _mm512_mullo_epi32(dot[j], dword_byte(scales[sub / 4], sub % 4)));
                }
            }
        }
        const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(sums[0], _mm512_srai_epi32(sums[1], 2)),
                                             _mm512_add_epi32(_mm512_srai_epi32(sums[2], 4), _mm512_srai_epi32(sums[3], 6)));
        const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(load32(x.d)), _mm512_set1_ps(y.d));
        const __m512 dmin = _mm512_mul_ps(_mm512_cvtph_ps(load32(x.dmin)), _mm512_set1_ps(-y.d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sum), acc);
        acc = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(mins), acc);
        return acc;
    });
}

// ---- Q6_K_R16: 16 Q6_K rows interleaved ----
//
// Per half of 128 values and dword j: ql dwords A (values 4j.. and 64 + 4j.. in its nibbles),
// B (32 + 4j.., 96 + 4j..) and the qh dword H holding their top 2 bits. With H's bit pairs
// masked into place once (bits 0-1 and 4-5, then 2-3 and 6-7 moved there), each 6-bit level is
// one shift and one bitwise select; levels are stored as value + 32, and 32 * scale * (sub-block
// activation sum) is taken off with vpdpwssd, as for the K-quant minimums.

// Byte kByte of each dword, sign-extended to the dword.
template <int kByte>
inline __m512i dword_byte_signed(__m512i v) {
    alignas(64) static constexpr auto index = [] {
        std::array<int8_t, 64> a{};
        for (int i = 0; i < 64; ++i) a[size_t(i)] = i % 4 == 3 ? int8_t(i / 4 * 4 + kByte) : int8_t(-1);
        return a;
    }();
    return _mm512_srai_epi32(_mm512_shuffle_epi8(v, _mm512_load_si512(index.data())), 24);
}

// Bytes kFirst and kFirst + 1 of each dword as sign-extended int16 halves of the dword.
template <int kFirst>
inline __m512i dword_pair_signed(__m512i v) {
    alignas(64) static constexpr auto index = [] {
        std::array<int8_t, 64> a{};
        for (int i = 0; i < 64; ++i) a[size_t(i)] = i % 2 == 1 ? int8_t(i / 4 * 4 + kFirst + i % 4 / 2) : int8_t(-1);
        return a;
    }();
    return _mm512_srai_epi16(_mm512_shuffle_epi8(v, _mm512_load_si512(index.data())), 8);
}

// Low nibble from `low`, bits 4-7 from `high` (a ? b : c per bit).
inline __m512i select_nibbles(__m512i low, __m512i high) {
    return _mm512_ternarylogic_epi32(_mm512_set1_epi8(0x0F), low, high, 0xCA);
}

// A sum of sub-block kSub (of 16 values) times its signed 8-bit scale, byte kSub % 4 of
// scale_dwords[kSub / 4].
template <int kSub>
inline __m512i times_scale(__m512i dot, const __m512i (&scale_dwords)[4]) {
    return _mm512_mullo_epi32(dot, dword_byte_signed<kSub % 4>(scale_dwords[kSub / 4]));
}

// Sub-block kSub of the super-block against y, times its scale, added to sum: 4 dwords of levels.
template <int kSub>
inline __m512i add_scaled_sub_block(const __m512i (&levels)[4], const BlockQ8_K& y, const __m512i (&scale_dwords)[4],
                                    __m512i sum) {
    __m512i dot = _mm512_setzero_si512();
    for (int k = 0; k < 4; ++k) {
        dot = _mm512_dpbusd_epi32(dot, levels[k], _mm512_set1_epi32(int(load_u32(y.qs + 16 * kSub + 4 * k))));
    }
    return _mm512_add_epi32(sum, times_scale<kSub>(dot, scale_dwords));
}

// The sum over the 16 sub-blocks of scale * (sub-block activation sum), for levels stored as
// value + offset: offset times this comes off the products.
inline __m512i scaled_block_sums(const __m512i (&scale_dwords)[4], const BlockQ8_K& y) {
    __m512i sums = _mm512_setzero_si512();
    for (int k = 0; k < 4; ++k) {
        sums = _mm512_dpwssd_epi32(sums, dword_pair_signed<0>(scale_dwords[k]), _mm512_set1_epi32(int(load_u32(y.bsums + 4 * k))));
        sums = _mm512_dpwssd_epi32(sums, dword_pair_signed<2>(scale_dwords[k]),
                                   _mm512_set1_epi32(int(load_u32(y.bsums + 4 * k + 2))));
    }
    return sums;
}

// The 16 sub-blocks of half h (values 128h .. 128h + 127): sub-block 8h + 2i + jj holds quarter
// i's dwords 4jj .. 4jj + 3.
template <int h>
inline __m512i q6_k_half(const BlockQ6_Kx16& x, const BlockQ8_K& y, const __m512i (&scale_dwords)[4], __m512i sum) {
    const __m512i pairs = _mm512_set1_epi8(0x33);
    for (int jj = 0; jj < 2; ++jj) {
        prefetch_quarter(x, 2 * h + jj);
        __m512i q[4][4];  // quarter i (values 32i + ...), dword k of the sub-block
        for (int k = 0; k < 4; ++k) {
            const int j = 4 * jj + k;
            const auto& part = x.parts[h][j];
            const __m512i a = load64(part.ql_low), b = load64(part.ql_high), hb = load64(part.qh);
            const __m512i h01 = _mm512_and_si512(hb, pairs), h23 = _mm512_and_si512(_mm512_srli_epi16(hb, 2), pairs);
            q[0][k] = select_nibbles(a, _mm512_slli_epi16(h01, 4));
            q[1][k] = select_nibbles(b, _mm512_slli_epi16(h23, 4));
            q[2][k] = select_nibbles(_mm512_srli_epi16(a, 4), h01);
            q[3][k] = select_nibbles(_mm512_srli_epi16(b, 4), h23);
        }
        if (jj == 0) {
            sum = add_scaled_sub_block<8 * h + 0>(q[0], y, scale_dwords, sum);
            sum = add_scaled_sub_block<8 * h + 2>(q[1], y, scale_dwords, sum);
            sum = add_scaled_sub_block<8 * h + 4>(q[2], y, scale_dwords, sum);
            sum = add_scaled_sub_block<8 * h + 6>(q[3], y, scale_dwords, sum);
        } else {
            sum = add_scaled_sub_block<8 * h + 1>(q[0], y, scale_dwords, sum);
            sum = add_scaled_sub_block<8 * h + 3>(q[1], y, scale_dwords, sum);
            sum = add_scaled_sub_block<8 * h + 5>(q[2], y, scale_dwords, sum);
            sum = add_scaled_sub_block<8 * h + 7>(q[3], y, scale_dwords, sum);
        }
    }
    return sum;
}

void q6_k_r16_vec_dot_rows(int64_t n, const void* vx, size_t x_row_bytes, int64_t n_rows, const void* vy, float* out) {
    k_group_rows<BlockQ6_Kx16>(n, vx, x_row_bytes, n_rows, vy, out, [&](const auto& x, const BlockQ8_K& y, int64_t, __m512 acc) {
        const __m512i scale_dwords[4] = {load64(x.scales[0]), load64(x.scales[1]), load64(x.scales[2]), load64(x.scales[3])};
        __m512i sum = q6_k_half<0>(x, y, scale_dwords, _mm512_setzero_si512());
        sum = q6_k_half<1>(x, y, scale_dwords, sum);
        sum = _mm512_sub_epi32(sum, _mm512_slli_epi32(scaled_block_sums(scale_dwords, y), 5));
        const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(load32(x.d)), _mm512_set1_ps(y.d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sum), acc);
        return acc;
    });
}

// ---- Q3_K_R16: 16 Q3_K rows interleaved ----
//
// Per half h, qs dword 8h + 4p + t holds in bit pair j the low bits of values 128h + 32j + 16p +
// 4t + 0..3 (sub-block 8h + 2j + p), as in Q2_K_R16; their third bits are bit 4h + j of the
// bytes of hmask dword 4p + t. Levels are value + 4 (a set third bit adds 4 to the low bits), and
// 4 * scale * (sub-block activation sum) comes off as Q6_K_R16's 32 * ... does. The 6-bit scales
// are unpacked once per super-block into Q6_K_R16's form: signed bytes in sub-block order.

// Vector k: the scales of sub-blocks 4k..4k+3 of each row in its bytes, minus 32. Sub-blocks 0-3
// (8-11) have the low (high) nibbles of scale bytes 0-3, 4-7 (12-15) those of bytes 4-7; the top
// 2 bits of all 16 are the bit pairs 0, 1, 2, 3 of bytes 8-11.
inline void q3_k_scale_dwords(const BlockQ3_Kx16& x, __m512i (&out)[4]) {
    const __m512i first = load64(x.scales[0]), second = load64(x.scales[1]), top = load64(x.scales[2]);
    const __m512i low4 = _mm512_set1_epi8(0x0F), top2 = _mm512_set1_epi8(0x30), bias = _mm512_set1_epi8(32);
    auto scales = [&](__m512i nibbles, __m512i top_bits) {
        return _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(nibbles, low4), _mm512_and_si512(top_bits, top2)), bias);
    };
    out[0] = scales(first, _mm512_slli_epi16(top, 4));
    out[1] = scales(second, _mm512_slli_epi16(top, 2));
    out[2] = scales(_mm512_srli_epi16(first, 4), top);
    out[3] = scales(_mm512_srli_epi16(second, 4), _mm512_srli_epi16(top, 2));
}

// The four sub-blocks 8h + 2j + p (j = 0..3) from qs dwords 8h + 4p + t (t = 0..3), into
// sums[0], sums[1] and sums[2] 1, 4 and 16 times: bit pairs 0-2 are used in place, unshifted,
// and pair 3 shifted to where pair 2 is.
template <int h, int p>
inline void q3_k_quarter(const BlockQ3_Kx16& x, const BlockQ8_K& y, const __m512i (&scale_dwords)[4], __m512i (&sums)[3]) {
    prefetch_quarter(x, 2 * h + p);
    __m512i dot[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int t = 0; t < 4; ++t) {
        const __m512i q = load64(x.qs[8 * h + 4 * p + t]), third_bits = load64(x.hmask[4 * p + t]);
        for (int j = 0; j < 4; ++j) {
            const int place = j == 3 ? 4 : 2 * j;  // of the level's low bits in the byte
            const __m512i low = _mm512_and_si512(j == 3 ? _mm512_srli_epi16(q, 2) : q, _mm512_set1_epi8(char(3 << place)));
            const __mmask64 set = _mm512_test_epi8_mask(third_bits, _mm512_set1_epi8(char(1 << (4 * h + j))));
            const __m512i levels = _mm512_mask_add_epi8(low, set, low, _mm512_set1_epi8(char(4 << place)));
            const int v = 128 * h + 32 * j + 16 * p + 4 * t;
            dot[j] = _mm512_dpbusd_epi32(dot[j], levels, _mm512_set1_epi32(int(load_u32(y.qs + v))));
        }
    }
    sums[0] = _mm512_add_epi32(sums[0], times_scale<8 * h + p>(dot[0], scale_dwords));
    sums[1] = _mm512_add_epi32(sums[1], times_scale<8 * h + 2 + p>(dot[1], scale_dwords));
    sums[2] = _mm512_add_epi32(sums[2], _mm512_add_epi32(times_scale<8 * h + 4 + p>(dot[2], scale_dwords),
                                                         times_scale<8 * h + 6 + p>(dot[3], scale_dwords)));
}

void q3_k_r16_vec_dot_rows(int64_t n, const void* vx, size_t x_row_bytes, int64_t n_rows, const void* vy, float* out) {
    k_group_rows<BlockQ3_Kx16>(n, vx, x_row_bytes, n_rows, vy, out, [&](const auto& x, const BlockQ8_K& y, int64_t, __m512 acc) {
        __m512i scale_dwords[4];
        q3_k_scale_dwords(x, scale_dwords);
        __m512i sums[3] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        q3_k_quarter<0, 0>(x, y, scale_dwords, sums);
        q3_k_quarter<0, 1>(x, y, scale_dwords, sums);
        q3_k_quarter<1, 0>(x, y, scale_dwords, sums);
        q3_k_quarter<1, 1>(x, y, scale_dwords, sums);
        __m512i sum = _mm512_add_epi32(sums[0], _mm512_add_epi32(_mm512_srai_epi32(sums[1], 2), _mm512_srai_epi32(sums[2], 4)));
        sum = _mm512_sub_epi32(sum, _mm512_slli_epi32(scaled_block_sums(scale_dwords, y), 2));
        const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(load32(x.d)), _mm512_set1_ps(y.d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sum), acc);
        return acc;
    });
}

}  // namespace

namespace avx512 {

void register_group_kernels(TraitsTable& t) {
    auto row = [&](TensorType type) -> TypeTraits& { return t[size_t(type)]; };
    row(TensorType::Q4_0_R16).vec_dot_rows = r16_vec_dot_rows<BlockQ4_0x16, 8>;
    row(TensorType::Q8_0_R16).vec_dot_rows = r16_vec_dot_rows<BlockQ8_0x16, 128>;
    row(TensorType::Q2_K_R16).vec_dot_rows = q2_k_r16_vec_dot_rows;
    row(TensorType::Q3_K_R16).vec_dot_rows = q3_k_r16_vec_dot_rows;
    row(TensorType::Q4_K_R16).vec_dot_rows = k4_r16_vec_dot_rows<BlockQ4_Kx16>;
    row(TensorType::Q5_K_R16).vec_dot_rows = k4_r16_vec_dot_rows<BlockQ5_Kx16>;
    row(TensorType::Q6_K_R16).vec_dot_rows = q6_k_r16_vec_dot_rows;
}

}  // namespace avx512
}  // namespace qllm
