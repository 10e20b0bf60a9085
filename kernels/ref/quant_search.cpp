// Scale searches shared by the reference quantizers; see quant_search.h. The expressions keep
// ggml's evaluation order (e.g. w*x*l is (w*x)*l) because a single rounding difference can flip
// a level and change the output bytes.
#include "kernels/ref/quant_search.h"

#include <algorithm>
#include <cmath>

namespace qllm::ref::detail {

float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, size_t(n));
        return 0.f;
    }
    float iscale = float(-nmax) / max;
    auto level = [&](float s, int i) { return std::max(-nmax, std::min(nmax - 1, nearest_int(s * x[i]))); };
    if (rmse_type == 0) {
        for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + level(iscale, i));
        return 1 / iscale;
    }
    const bool return_early = rmse_type < 0;
    if (return_early) rmse_type = -rmse_type;
    auto weight = [&](int i) -> float {
        if (qw) return qw[i];
        switch (rmse_type) {
            case 1: return x[i] * x[i];
            case 2: return 1;
            case 3: return std::fabs(x[i]);
            default: return std::sqrt(std::fabs(x[i]));
        }
    };
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = level(iscale, i);
        L[i] = int8_t(l + nmax);
        const float w = weight(i);
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(float(nmax) + 0.1f * float(is)) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = level(iscale, i);
            const float w = weight(i);
            sumlx += w * x[i] * float(l);
            suml2 += w * float(l) * float(l);
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + level(iscale, i));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, size_t(n));
        return 0.f;
    }
    const float iscale = float(-nmax) / max;
    if (do_rmse) {
        float sumlx = 0;
        float suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
            L[i] = int8_t(l);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * float(l);
            suml2 += w * float(l) * float(l);
        }
        // Move one value at a time to the level that best fits the others' scale; keep the move
        // if the fit (sumlx^2 / suml2) improves.
        for (int itry = 0; itry < 5; ++itry) {
            int n_changed = 0;
            for (int i = 0; i < n; ++i) {
                const float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * float(L[i]);
                if (slx > 0) {
                    float sl2 = suml2 - w * float(L[i]) * float(L[i]);
                    int new_l = nearest_int(x[i] * sl2 / slx);
                    new_l = std::max(-nmax, std::min(nmax - 1, new_l));
                    if (new_l != L[i]) {
                        slx += w * x[i] * float(new_l);
                        sl2 += w * float(new_l) * float(new_l);
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[i] = int8_t(new_l);
                            sumlx = slx;
                            suml2 = sl2;
                            ++n_changed;
                        }
                    }
                }
            }
            if (!n_changed) break;
        }
        for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }
    for (int i = 0; i < n; ++i) {
        const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = int8_t(l + nmax);
    }
    return 1 / iscale;
}

namespace {

// The common body of make_qkx2_quants / make_qkx3_quants (they differ only in null weights).
float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                      uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    auto weight = [&](int i) { return weights ? weights[i] : x[i] * x[i]; };
    float min = x[0];
    float max = x[0];
    float sum_w = weight(0);
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weight(i);
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        std::memset(L, 0, size_t(n));
        *the_min = -min;
        return 0.f;
    }
    float iscale = float(nmax) / (max - min);
    float scale = 1 / iscale;
    auto error_of = [&](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = uint8_t(std::max(0, std::min(nmax, l)));
        const float diff = scale * float(L[i]) + min - x[i];
        best_error += weight(i) * error_of(diff);
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = std::max(0, std::min(nmax, l));
            Laux[i] = uint8_t(l);
            const float w = weight(i);
            sum_l += w * float(l);
            sum_l2 += w * float(l) * float(l);
            sum_xl += w * float(l) * x[i];
        }
        // Weighted least squares for x ~ scale * l + min over the candidate levels.
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                const float diff = this_scale * float(Laux[i]) + this_min - x[i];
                cur_error += weight(i) * error_of(diff);
            }
            if (cur_error < best_error) {
                std::memcpy(L, Laux, size_t(n));
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

}  // namespace

float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    return make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad);
}

float make_qkx3_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    return make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad);
}

float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* qw) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
    if (max == 0) {  // ggml (mid-2025) tests exact zero here, not kGroupMaxEps
        std::memset(L, 0, size_t(n));
        return 0.f;
    }
    float iscale = float(nmax) / max;
    for (int i = 0; i < n; ++i) L[i] = uint8_t(nearest_int(iscale * x[i]));
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - scale * float(L[i]);
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * float(is) + float(nmax)) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
            const float diff = x[i] - scale_is * float(l);
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::min(nmax, nearest_int(iscale * x[i]));
        L[i] = uint8_t(l);
        sumlx += qw[i] * x[i] * float(l);
        suml2 += qw[i] * float(l) * float(l);
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * float(L[i]);
            float sl2 = suml2 - w * float(L[i]) * float(L[i]);
            if (slx > 0 && sl2 > 0) {
                const int new_l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w * x[i] * float(new_l);
                    sl2 += w * float(new_l) * float(new_l);
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = uint8_t(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    // Deliberate deviation: ggml (mid-2025) returns sumlx / suml2 unguarded, i.e. 0/0 = NaN when
    // every weight is zero (importance weights underflow for |x| ~ 1e-30), and writes NaN
    // super-block scales. Later ggml guards it like this; all finite results are unchanged.
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ---- Eight groups at once (see quant_search.h) ----
// Lanes: 8 floats as two 4-float GCC/Clang vectors (one SSE2 / NEON register each; a single
// 8-float vector is no good without AVX: GCC then compiles its comparisons and selects one
// element at a time). Two registers per value also give two independent chains for the sums,
// which are otherwise latency-bound. Each lane is one group; per-group branches of the scalar
// routines become per-lane selects. No operation mixes lanes and none is reordered: the float
// results are those of the scalar code, lane by lane.
namespace {

constexpr int kLanes = 8;
constexpr int kMaxGroup = 32;
using F4 = float __attribute__((vector_size(16)));
using I4 = int32_t __attribute__((vector_size(16)));  // also the type of lane comparisons

struct Mask {  // per lane all ones (true) or zero
    I4 h[2];
    bool operator[](int g) const { return h[g / 4][g % 4] != 0; }
};

struct Lanes {
    F4 h[2];
    Lanes() = default;
    Lanes(float v) : h{F4{v, v, v, v}, F4{v, v, v, v}} {}  // every lane v (0 + v would turn -0 to +0)
    Lanes(const F4& a, const F4& b) : h{a, b} {}
    float operator[](int g) const { return h[g / 4][g % 4]; }
};

#define QLLM_LANEWISE(op)                                                   \
    inline Lanes operator op(const Lanes& a, const Lanes& b) {              \
        return {a.h[0] op b.h[0], a.h[1] op b.h[1]};                        \
    }                                                                       \
    inline Lanes& operator op##=(Lanes& a, const Lanes& b) { return a = a op b; }
QLLM_LANEWISE(+)
QLLM_LANEWISE(-)
QLLM_LANEWISE(*)
QLLM_LANEWISE(/)
#undef QLLM_LANEWISE
inline Lanes operator-(const Lanes& a) { return {-a.h[0], -a.h[1]}; }
#define QLLM_COMPARE(op)                                                    \
    inline Mask operator op(const Lanes& a, const Lanes& b) {               \
        return {{a.h[0] op b.h[0], a.h[1] op b.h[1]}};                      \
    }
QLLM_COMPARE(<)
QLLM_COMPARE(>)
QLLM_COMPARE(<=)
QLLM_COMPARE(!=)
#undef QLLM_COMPARE
inline Mask operator&(const Mask& a, const Mask& b) { return {{a.h[0] & b.h[0], a.h[1] & b.h[1]}}; }
inline Mask operator|(const Mask& a, const Mask& b) { return {{a.h[0] | b.h[0], a.h[1] | b.h[1]}}; }
inline Mask operator~(const Mask& a) { return {{~a.h[0], ~a.h[1]}}; }

// Per lane: mask ? a : b.
inline Lanes select(const Mask& mask, const Lanes& a, const Lanes& b) {
    return {mask.h[0] ? a.h[0] : b.h[0], mask.h[1] ? a.h[1] : b.h[1]};
}

inline bool any(const Mask& mask) {
    const I4 m = mask.h[0] | mask.h[1];
    return (m[0] | m[1] | m[2] | m[3]) != 0;
}

// std::fabs on each lane: clear the sign bit.
inline Lanes fabs(const Lanes& v) { return {F4(I4(v.h[0]) & 0x7fffffff), F4(I4(v.h[1]) & 0x7fffffff)}; }

// nearest_int on each lane (the same bit trick), clamped to [lo, hi], as floats: the levels are
// small integers, exact in float, so clamping them as floats equals clamping the ints.
inline Lanes level(const Lanes& v, float lo, float hi) {
    Lanes out;
    for (int k = 0; k < 2; ++k) {
        const I4 bits = I4(v.h[k] + 12582912.f);  // a bit cast, like the memcpy in nearest_int
        const F4 l = __builtin_convertvector((bits & 0x007fffff) - 0x00400000, F4);
        const F4 above = l < lo ? lo : l;
        out.h[k] = above > hi ? hi : above;
    }
    return out;
}

// Group g's values, value i in lane g of out[i].
void transpose_in(int n, const float* x, Lanes* out) {
    for (int i = 0; i < n; ++i) {
        const float* p = x + i;
        out[i] = {F4{p[0], p[n], p[2 * n], p[3 * n]}, F4{p[4 * n], p[5 * n], p[6 * n], p[7 * n]}};
    }
}

void store_lanes(const Lanes& v, float* out) {
    for (int g = 0; g < kLanes; ++g) out[g] = v[g];
}

// The group maxima of make_qx_quants / make_q3_quants: the value of largest magnitude (the
// first one on ties) and that magnitude.
void signed_max(int n, const Lanes* xv, Lanes& max, Lanes& amax) {
    max = amax = 0.f;
    for (int i = 0; i < n; ++i) {
        const Lanes ax = fabs(xv[i]);
        const Mask larger = ax > amax;
        amax = select(larger, ax, amax);
        max = select(larger, xv[i], max);
    }
}

}  // namespace

void make_qkx_quants_x8(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales,
                        float* mins, float rmin, float rdelta, int nstep, bool use_mad) {
    if (n < 1 || n > kMaxGroup) return;  // (callers pass 16 or 32)
    Lanes xv[kMaxGroup], wv[kMaxGroup], lv[kMaxGroup];
    transpose_in(n, x, xv);
    if (weights) {
        transpose_in(n, weights, wv);
    } else {
        for (int i = 0; i < n; ++i) wv[i] = xv[i] * xv[i];
    }
    // weight * |diff| or weight * diff^2, accumulated in order.
    auto add_error = [&](Lanes& sum, int i, const Lanes& diff) {
        sum += wv[i] * (use_mad ? fabs(diff) : diff * diff);
    };
    Lanes min = xv[0];
    Lanes max = xv[0];
    Lanes sum_w = wv[0];
    Lanes sum_x = sum_w * xv[0];
    for (int i = 1; i < n; ++i) {
        min = select(xv[i] < min, xv[i], min);
        max = select(xv[i] > max, xv[i], max);
        sum_w += wv[i];
        sum_x += wv[i] * xv[i];
    }
    min = select(min > 0.f, 0.f, min);
    // Groups with max <= min return here in the scalar routine: remember their answer.
    const Mask flat = max <= min;
    const Lanes flat_min = min;
    const float fmax = float(nmax);
    Lanes iscale = fmax / (max - min);
    Lanes scale = 1.f / iscale;
    Lanes best_error = 0.f;
    for (int i = 0; i < n; ++i) {
        lv[i] = level(iscale * (xv[i] - min), 0.f, fmax);
        add_error(best_error, i, scale * lv[i] + min - xv[i]);
    }
    // The scalar routine copies the levels of each better candidate; here each lane remembers the
    // (iscale, min) its levels came from, and they are recomputed once at the end.
    Lanes level_iscale = iscale;
    Lanes level_min = min;
    for (int is = 0; nstep >= 1 && is <= nstep; ++is) {
        iscale = (rmin + rdelta * float(is) + fmax) / (max - min);
        Lanes sum_l = 0.f, sum_l2 = 0.f, sum_xl = 0.f;
        for (int i = 0; i < n; ++i) {
            lv[i] = level(iscale * (xv[i] - min), 0.f, fmax);
            const Lanes wl = wv[i] * lv[i];
            sum_l += wl;
            sum_l2 += wl * lv[i];
            sum_xl += wl * xv[i];
        }
        const Lanes D = sum_w * sum_l2 - sum_l * sum_l;
        const Mask solvable = D > 0.f;
        if (!any(solvable)) continue;  // no lane looks at this candidate's error
        Lanes this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        Lanes this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        const Mask positive_min = this_min > 0.f;
        this_min = select(positive_min, 0.f, this_min);
        this_scale = select(positive_min, sum_xl / sum_l2, this_scale);
        Lanes cur_error = 0.f;
        for (int i = 0; i < n; ++i) add_error(cur_error, i, this_scale * lv[i] + this_min - xv[i]);
        const Mask better = solvable & (cur_error < best_error);
        best_error = select(better, cur_error, best_error);
        scale = select(better, this_scale, scale);
        level_iscale = select(better, iscale, level_iscale);
        level_min = select(better, min, level_min);
        min = select(better, this_min, min);  // the group's later candidates start from it
    }
    store_lanes(select(flat, 0.f, scale), scales);
    store_lanes(-select(flat, flat_min, min), mins);
    for (int i = 0; i < n; ++i) {
        lv[i] = level(level_iscale * (xv[i] - level_min), 0.f, fmax);
        for (int g = 0; g < kLanes; ++g) L[g * n + i] = flat[g] ? 0 : uint8_t(lv[i][g]);
    }
}

void make_qx_quants_x8(int n, int nmax, const float* x, const float* qw, int8_t* L, float* scales) {
    if (n < 1 || n > kMaxGroup) return;  // (callers pass 16)
    Lanes xv[kMaxGroup], wv[kMaxGroup], wxv[kMaxGroup];
    transpose_in(n, x, xv);
    if (qw) {
        transpose_in(n, qw, wv);
    } else {
        for (int i = 0; i < n; ++i) wv[i] = xv[i] * xv[i];
    }
    for (int i = 0; i < n; ++i) wxv[i] = wv[i] * xv[i];  // w * x * l is (w * x) * l: the same for all scales
    Lanes max, amax;
    signed_max(n, xv, max, amax);
    const Mask tiny = amax < kGroupMaxEps;  // these groups get levels 0 and scale 0
    const float lo = float(-nmax), hi = float(nmax - 1);
    Lanes iscale = float(-nmax) / max;
    Lanes sumlx = 0.f, suml2 = 0.f;
    for (int i = 0; i < n; ++i) {
        const Lanes l = level(iscale * xv[i], lo, hi);
        sumlx += wxv[i] * l;
        suml2 += wv[i] * l * l;
    }
    Lanes scale = select(suml2 != 0.f, sumlx / suml2, 0.f);
    Lanes best = scale * sumlx;
    Lanes level_iscale = iscale;  // the candidate whose levels the scalar routine keeps
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(float(nmax) + 0.1f * float(is)) / max;
        sumlx = suml2 = 0.f;
        for (int i = 0; i < n; ++i) {
            const Lanes l = level(iscale * xv[i], lo, hi);
            sumlx += wxv[i] * l;
            suml2 += wv[i] * l * l;
        }
        const Mask better = (suml2 > 0.f) & (sumlx * sumlx > best * suml2);
        const Lanes new_scale = sumlx / suml2;
        scale = select(better, new_scale, scale);
        best = select(better, new_scale * sumlx, best);
        level_iscale = select(better, iscale, level_iscale);
    }
    store_lanes(select(tiny, 0.f, scale), scales);
    for (int i = 0; i < n; ++i) {
        const Lanes l = level(level_iscale * xv[i], lo, hi);
        for (int g = 0; g < kLanes; ++g) L[g * n + i] = tiny[g] ? 0 : int8_t(nmax + int(l[g]));
    }
}

void make_q3_quants_x8(int n, int nmax, const float* x, int8_t* L, float* scales) {
    if (n < 1 || n > kMaxGroup) return;  // (callers pass 16)
    Lanes xv[kMaxGroup], wv[kMaxGroup], wxv[kMaxGroup], lv[kMaxGroup];
    transpose_in(n, x, xv);
    for (int i = 0; i < n; ++i) {
        wv[i] = xv[i] * xv[i];
        wxv[i] = wv[i] * xv[i];  // w * x * l is (w * x) * l
    }
    Lanes max, amax;
    signed_max(n, xv, max, amax);
    const Mask tiny = amax < kGroupMaxEps;  // these groups get levels 0 and scale 0
    const float lo = float(-nmax), hi = float(nmax - 1);
    const Lanes iscale = float(-nmax) / max;
    Lanes sumlx = 0.f, suml2 = 0.f;
    for (int i = 0; i < n; ++i) {
        lv[i] = level(iscale * xv[i], lo, hi);
        sumlx += wxv[i] * lv[i];
        suml2 += wv[i] * lv[i] * lv[i];
    }
    // A group whose pass changes nothing starts the next pass in the same state, so that pass
    // changes nothing either: running passes until every lane is done equals stopping each early.
    for (int itry = 0; itry < 5; ++itry) {
        Mask changed = {};
        for (int i = 0; i < n; ++i) {
            Lanes slx = sumlx - wxv[i] * lv[i];
            Lanes sl2 = suml2 - wv[i] * lv[i] * lv[i];
            const Lanes new_l = level(xv[i] * sl2 / slx, lo, hi);
            Mask take = (slx > 0.f) & (new_l != lv[i]);
            slx += wxv[i] * new_l;
            sl2 += wv[i] * new_l * new_l;
            take = take & (sl2 > 0.f) & (slx * slx * suml2 > sumlx * sumlx * sl2);
            // Moves are rare: testing for one first leaves the sums out of the loop's dependency
            // chain (the branch is predicted), where the selects alone would put them in it.
            if (!any(take)) continue;
            lv[i] = select(take, new_l, lv[i]);
            sumlx = select(take, slx, sumlx);
            suml2 = select(take, sl2, suml2);
            changed = changed | take;
        }
        if (!any(changed)) break;
    }
    store_lanes(select((suml2 > 0.0f) & ~tiny, sumlx / suml2, 0.f), scales);
    for (int i = 0; i < n; ++i) {
        for (int g = 0; g < kLanes; ++g) L[g * n + i] = tiny[g] ? 0 : int8_t(nmax + int(lv[i][g]));
    }
}

int best_index_int8(int n, const int8_t* values, float x) {
    if (x <= values[0]) return 0;
    if (x >= values[n - 1]) return n - 1;
    int lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (x < values[mid]) hi = mid;
        else lo = mid;
    }
    return x - float(values[hi - 1]) < float(values[hi]) - x ? hi - 1 : hi;
}

}  // namespace qllm::ref::detail
