// Scale searches shared by the reference quantizers (legacy, K-quants, IQ4_NL). Each one is
// ggml's routine of the same name, with the same float operations in the same order: the
// quantized bytes are compared with llama.cpp's byte for byte, so "equivalent" math is not enough.
#pragma once

// Every reference-kernel source includes this header first: a compiler allowed to fuse a*b+c into
// an FMA (GCC does by default for C++ once -mfma/-march=native is on) changes roundings and so
// the quantized bytes. ggml's reference quantizers are built without FMA.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cstdint>
#include <cstring>

namespace qllm::ref::detail {

// Below this a group of values counts as all-zero.
inline constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest (ties to even) by adding 1.5 * 2^23, which pushes the integer into the low
// mantissa bits. Valid for |x| <= 2^22; ggml uses this instead of lroundf, which rounds ties away.
inline int nearest_int(float x) {
    const float biased = x + 12582912.f;
    int bits;
    std::memcpy(&bits, &biased, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

// Symmetric scale for levels -nmax..nmax-1; L gets level + nmax. rmse_type 0 takes the plain
// amax scale; otherwise a weighted least-squares fit with weights qw (or, when qw is null,
// x^2 / 1 / |x| / sqrt|x| for rmse_type 1 / 2 / 3 / 4) tried at 19 scales near the amax one.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw);

// Q3_K's symmetric search: x^2-weighted fit refined by moving single values (do_rmse), else amax.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse);

// Asymmetric scale + minimum for levels 0..nmax (x ~ scale * L - the_min), searched over
// nstep+1 candidate scales; errors measured as weighted |diff| (use_mad) or diff^2.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);

// As make_qkx2_quants, but weights may be null (then x^2); used by the imatrix quantizers.
float make_qkx3_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);

// Non-negative values (sub-block scales or minimums) onto levels 0..nmax with weights qw.
// Returns 0 where ggml would return NaN (all weights zero); see the .cpp.
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* qw);

// ---- Eight groups at once ----
// The same searches on 8 consecutive groups of n <= 32 values (group g at x + g*n, its levels at
// L + g*n, its result in scales[g]), each group's result identical to the single-group routine's.
// Each group runs in its own SIMD lane, so every lane performs exactly the scalar routine's float
// operations in the scalar order (sums over a group stay sequential); groups are independent, so
// the quantizers of 256-value super-blocks get 8-way parallelism without changing a bit.

// make_qkx2_quants / make_qkx3_quants (weights null: x^2); mins[g] gets the_min.
void make_qkx_quants_x8(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales,
                        float* mins, float rmin, float rdelta, int nstep, bool use_mad);

// make_qx_quants with rmse_type 1 (weights qw, or x^2 when qw is null).
void make_qx_quants_x8(int n, int nmax, const float* x, const float* qw, int8_t* L, float* scales);

// make_q3_quants with do_rmse.
void make_q3_quants_x8(int n, int nmax, const float* x, int8_t* L, float* scales);

// Index of the entry of the sorted table `values` (n entries) nearest to x.
int best_index_int8(int n, const int8_t* values, float x);

}  // namespace qllm::ref::detail
