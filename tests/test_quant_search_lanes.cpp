// The 8-groups-at-once scale searches (make_*_x8, used by the K-quant quantizers) against the
// one-group routines they must equal bit for bit, on groups that stress every branch: all
// positive or negative values, zeros, exact level ties, tiny and huge magnitudes, Inf and NaN.
// The golden files have only 12 rows per type; this covers what they may miss.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "kernels/ref/quant_search.h"

namespace qllm {
namespace {

using namespace ref::detail;

class GroupMaker {
public:
    explicit GroupMaker(uint32_t seed) : rng_(seed) {}

    // n values in one of several styles (chosen by `style`).
    void fill(float* x, int n, int style) {
        std::normal_distribution<float> normal(0.f, 1.f);
        std::cauchy_distribution<float> heavy(0.f, 0.02f);
        for (int i = 0; i < n; ++i) {
            switch (style % 10) {
                case 0: x[i] = normal(rng_); break;
                case 1: x[i] = heavy(rng_); break;
                case 2: x[i] = std::fabs(normal(rng_)); break;           // min clamps to 0
                case 3: x[i] = -std::fabs(normal(rng_)) * 1e-3f; break;  // all negative
                case 4: x[i] = rng_() % 4 == 0 ? normal(rng_) : 0.f; break;
                case 5: x[i] = rng_() % 16 == 0 ? special() : normal(rng_); break;
                case 6: x[i] = float(int(rng_() % 7) - 3); break;        // rounding ties
                case 7: x[i] = normal(rng_) * 1e-20f; break;
                case 8: x[i] = 0.5f; break;                              // constant: max == min
                default: x[i] = rng_() % 3 == 0 ? special() : heavy(rng_); break;
            }
        }
    }

    // Non-negative weights mostly; some zero, some non-finite.
    float weight(float x, int style) {
        switch (style % 4) {
            case 0: return std::fabs(x);
            case 1: return std::fabs(x) + 0.3f;
            case 2: return rng_() % 5 == 0 ? 0.f : std::fabs(x) * float(rng_() % 100) * 0.01f;
            default: return rng_() % 7 == 0 ? special() : 1.f;
        }
    }

    uint32_t next() { return rng_(); }

private:
    float special() {
        static const float v[] = {0.f, -0.f, 1e-30f, -1e-30f, 1e-40f, 1.f, -1.f, 65504.f, 1e20f, -1e20f,
                                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                  std::numeric_limits<float>::quiet_NaN()};
        return v[rng_() % (sizeof v / sizeof v[0])];
    }

    std::mt19937 rng_;
};

// Bit for bit, except that any NaN equals any NaN: which operand's NaN an instruction passes on
// depends on the compiler's operand order, not on the source.
std::string float_diff(const float* got, const float* want, int n) {
    for (int i = 0; i < n; ++i) {
        if (std::isnan(got[i]) && std::isnan(want[i])) continue;
        if (std::memcmp(got + i, want + i, sizeof(float)) != 0) {
            return "group " + std::to_string(i) + ": " + std::to_string(got[i]) + " vs " + std::to_string(want[i]);
        }
    }
    return "";
}

// Levels of 8 groups of `group` values.
template <class T>
std::string level_diff(const T* got, const T* want, int group) {
    for (int i = 0; i < 8 * group; ++i) {
        if (got[i] != want[i]) {
            return "group " + std::to_string(i / group) + " value " + std::to_string(i % group) + ": " +
                   std::to_string(int(got[i])) + " vs " + std::to_string(int(want[i]));
        }
    }
    return "";
}

constexpr int kRounds = 300;

TEST(QuantSearchLanes, QkxEqualsOneGroupAtATime) {
    struct Params {
        int nmax;
        float rmin, rdelta;
        int nstep;
        bool use_mad, null_weights;
    };
    // Q2_K, Q4_K, Q5_K (reference), the imatrix searches, and the no-search case.
    const Params params[] = {{3, -0.5f, 0.1f, 15, true, false},  {15, -1.f, 0.1f, 20, false, false},
                             {31, -0.5f, 0.1f, 15, false, false}, {15, -0.9f, 0.05f, 36, false, false},
                             {3, -0.9f, 0.05f, 36, false, true},  {7, -1.f, 0.1f, 0, false, false}};
    GroupMaker make(1);
    for (int round = 0; round < kRounds; ++round) {
        for (int n : {16, 32}) {
            float x[256], w[256];
            for (int g = 0; g < 8; ++g) make.fill(x + g * n, n, int(make.next() % 20));
            for (int i = 0; i < 8 * n; ++i) w[i] = make.weight(x[i], round);
            for (const Params& p : params) {
                const float* weights = p.null_weights ? nullptr : w;
                uint8_t want_L[256], got_L[256], aux[32];
                float want_scale[8], want_min[8], got_scale[8], got_min[8];
                for (int g = 0; g < 8; ++g) {
                    want_scale[g] = make_qkx2_quants(n, p.nmax, x + g * n, weights ? weights + g * n : nullptr,
                                                     want_L + g * n, &want_min[g], aux, p.rmin, p.rdelta, p.nstep,
                                                     p.use_mad);
                }
                make_qkx_quants_x8(n, p.nmax, x, weights, got_L, got_scale, got_min, p.rmin, p.rdelta, p.nstep,
                                   p.use_mad);
                const std::string where = "round " + std::to_string(round) + " n " + std::to_string(n) + " nmax " +
                                          std::to_string(p.nmax) + " nstep " + std::to_string(p.nstep);
                ASSERT_EQ(level_diff(got_L, want_L, n), "") << where;
                ASSERT_EQ(float_diff(got_scale, want_scale, 8), "") << where << " (scales)";
                ASSERT_EQ(float_diff(got_min, want_min, 8), "") << where << " (minimums)";
            }
        }
    }
}

TEST(QuantSearchLanes, QxAndQ3EqualOneGroupAtATime) {
    GroupMaker make(2);
    for (int round = 0; round < kRounds; ++round) {
        for (int n : {16, 32}) {
            float x[256], w[256];
            for (int g = 0; g < 8; ++g) make.fill(x + g * n, n, int(make.next() % 20));
            for (int i = 0; i < 8 * n; ++i) w[i] = make.weight(x[i], round);
            for (int nmax : {4, 32}) {  // Q3_K (imatrix), Q6_K
                const std::string where = "round " + std::to_string(round) + " n " + std::to_string(n) + " nmax " +
                                          std::to_string(nmax);
                for (const float* qw : {static_cast<const float*>(nullptr), static_cast<const float*>(w)}) {
                    int8_t want_L[256], got_L[256];
                    float want[8], got[8];
                    for (int g = 0; g < 8; ++g) {
                        want[g] = make_qx_quants(n, nmax, x + g * n, want_L + g * n, 1, qw ? qw + g * n : nullptr);
                    }
                    make_qx_quants_x8(n, nmax, x, qw, got_L, got);
                    ASSERT_EQ(level_diff(got_L, want_L, n), "") << where << " qx";
                    ASSERT_EQ(float_diff(got, want, 8), "") << where << " qx scales";
                }
                int8_t want_L[256], got_L[256];
                float want[8], got[8];
                for (int g = 0; g < 8; ++g) want[g] = make_q3_quants(n, nmax, x + g * n, want_L + g * n, true);
                make_q3_quants_x8(n, nmax, x, got_L, got);
                ASSERT_EQ(level_diff(got_L, want_L, n), "") << where << " q3";
                ASSERT_EQ(float_diff(got, want, 8), "") << where << " q3 scales";
            }
        }
    }
}

}  // namespace
}  // namespace qllm
