// Kernel throughput per weight format and ISA: a matrix-vector product over 4096x4096 and
// 11008x4096 weights (GB/s of weight bytes read, and the fraction of the machine's measured
// read bandwidth), and a 4096x4096 x 512-token product (GOP/s, one multiply-add = 2 ops).
// Every benchmark first checks its result against the scalar reference, then times. On AVX-512
// machines, peak/ measures the int8 (vpdpbusd) and f32 (FMA) compute peak to compare with.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <omp.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu.h"
#include "util/bandwidth.h"

namespace qllm {
namespace {

double g_read_bandwidth = 0;  // bytes/s, measured once in main()

struct Problem {
    std::vector<uint8_t> weights;      // rows x cols in the weight format
    std::vector<uint8_t> activations;  // tokens x cols in the partner format
    int64_t rows, cols, tokens;
    size_t w_row, a_row;
};

// Random gaussian weights and activations, quantized with the reference kernels (an
// interleaved layout: rows of the format it is built from, then repacked).
Problem make_problem(TensorType type, int64_t rows, int64_t cols, int64_t tokens) {
    const TypeTraits& ref = reference_table()[size_t(type)];
    const TypeTraits& act = reference_table()[size_t(ref.vec_dot_type)];
    const TypeTraits& plain = ref.row_group > 1 ? reference_table()[size_t(ref.repacked_from)] : ref;
    Problem p{{}, {}, rows, cols, tokens, ref.row_size(cols), act.row_size(cols)};
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> row(static_cast<size_t>(cols));
    p.weights.resize(p.w_row * size_t(rows));
    for (int64_t r = 0; r < rows; ++r) {
        for (float& v : row) v = dist(rng);
        plain.from_float(row.data(), p.weights.data() + size_t(r) * p.w_row, cols);
    }
    if (ref.row_group > 1) {
        const std::vector<uint8_t> rows_in = p.weights;
        for (int64_t r = 0; r < rows; r += ref.row_group) {
            ref.repack(rows_in.data() + size_t(r) * p.w_row, p.w_row, cols, p.weights.data() + size_t(r) * p.w_row);
        }
    }
    p.activations.resize(p.a_row * size_t(tokens));
    for (int64_t t = 0; t < tokens; ++t) {
        for (float& v : row) v = dist(rng);
        act.from_float(row.data(), p.activations.data() + size_t(t) * p.a_row, cols);
    }
    return p;
}

// As the engine multiplies: batches through the format's GEMM kernel where it has one, in
// chunks of rows as ops::matmul makes them; single tokens (and formats without one) through the
// row kernel, one call per thread, or one vec_dot per row and token.
void multiply(const TypeTraits& k, const Problem& p, std::vector<float>& out) {
    out.resize(size_t(p.rows * p.tokens));
    if (k.gemm && p.tokens > 1) {
        const int64_t chunk = std::max<int64_t>(16, p.rows / (4 * omp_get_max_threads()) / 16 * 16);
#pragma omp parallel for schedule(dynamic)
        for (int64_t r = 0; r < p.rows; r += chunk) {
            k.gemm(p.cols, p.weights.data() + size_t(r) * p.w_row, p.w_row, std::min(chunk, p.rows - r),
                   p.activations.data(), p.a_row, p.tokens, out.data() + r, p.rows);
        }
        return;
    }
    const int64_t step = k.vec_dot_rows ? (p.rows + 16 * omp_get_max_threads() - 1) / (16 * omp_get_max_threads()) * 16 : 1;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < p.rows; r += step) {
        const uint8_t* w = p.weights.data() + size_t(r) * p.w_row;
        for (int64_t t = 0; t < p.tokens; ++t) {
            const uint8_t* a = p.activations.data() + size_t(t) * p.a_row;
            float* o = out.data() + size_t(t * p.rows + r);
            if (k.vec_dot_rows) k.vec_dot_rows(p.cols, w, p.w_row, std::min(step, p.rows - r), a, o);
            else *o = k.vec_dot(p.cols, w, a);
        }
    }
}

// Checked on the first 8 tokens: the scalar reference over a whole batch takes minutes.
bool matches_reference(TensorType type, const TypeTraits& k, const Problem& full, std::string& why) {
    Problem p = full;
    p.tokens = std::min<int64_t>(p.tokens, 8);
    std::vector<float> ours, ref;
    multiply(k, p, ours);
    multiply(reference_table()[size_t(type)], p, ref);
    for (size_t i = 0; i < ours.size(); ++i) {
        if (!(std::fabs(ours[i] - ref[i]) <= 1e-3f * std::max(1.0f, std::fabs(ref[i])))) {
            why = "result " + std::to_string(i) + ": " + std::to_string(ours[i]) + " vs reference " + std::to_string(ref[i]);
            return false;
        }
    }
    return true;
}

// Problems are made once and shared by every ISA (the reference K-quant quantizers are slow).
const Problem& problem(TensorType type, int64_t rows, int64_t cols, int64_t tokens) {
    static std::map<std::tuple<TensorType, int64_t, int64_t, int64_t>, Problem> cache;
    const auto key = std::make_tuple(type, rows, cols, tokens);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, make_problem(type, rows, cols, tokens)).first;
    return it->second;
}

void run(benchmark::State& state, Isa isa, TensorType type, int64_t rows, int64_t cols, int64_t tokens) {
    const TypeTraits& k = kernels_for(isa)[size_t(type)];
    const Problem& p = problem(type, rows, cols, tokens);
    std::string why;
    if (!matches_reference(type, k, p, why)) {
        state.SkipWithError(("wrong result: " + why).c_str());
        return;
    }
    std::vector<float> out;
    for (auto _ : state) {
        multiply(k, p, out);
        benchmark::DoNotOptimize(out.data());
    }
    const double bytes = double(p.weights.size()) * double(state.iterations());
    state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsRate);
    if (tokens == 1) {
        state.counters["bw_frac"] =
            benchmark::Counter(bytes / g_read_bandwidth, benchmark::Counter::kIsRate);
    } else {
        state.counters["GOP/s"] = benchmark::Counter(2.0 * double(rows * cols * tokens) * double(state.iterations()) / 1e9,
                                                     benchmark::Counter::kIsRate);
    }
}

#if defined(__x86_64__)
// The machine's compute peak, for reading the 512-token products as a fraction of it: 12
// independent chains of vpdpbusd (64 int8 multiply-adds each) or of 512-bit FMAs (16) per
// thread, on every thread; no memory traffic.
template <bool kInt8>
[[gnu::target("avx512f,avx512vnni,fma")]] [[gnu::noinline]] int64_t peak_loop(int64_t iterations) {
    constexpr int kChains = 12;
    __m512i isum[kChains];
    __m512 fsum[kChains];
    for (int c = 0; c < kChains; ++c) {
        isum[c] = _mm512_set1_epi32(c);
        fsum[c] = _mm512_set1_ps(float(c));
    }
    const __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x05060708);
    const __m512 x = _mm512_set1_ps(1.0001f), y = _mm512_set1_ps(0.9999f);
    for (int64_t i = 0; i < iterations; ++i) {
        for (int c = 0; c < kChains; ++c) {
            if constexpr (kInt8) isum[c] = _mm512_dpbusd_epi32(isum[c], a, b);
            else fsum[c] = _mm512_fmadd_ps(fsum[c], x, y);
        }
    }
    int64_t keep = 0;
    for (int c = 0; c < kChains; ++c) keep += _mm512_reduce_add_epi32(isum[c]) + int64_t(_mm512_reduce_add_ps(fsum[c]));
    return keep;
}

template <bool kInt8>
void peak(benchmark::State& state) {
    constexpr int64_t kIterations = 1 << 22;
    const int threads = omp_get_max_threads();
    for (auto _ : state) {
        int64_t keep = 0;
#pragma omp parallel for reduction(+ : keep)
        for (int t = 0; t < threads; ++t) keep += peak_loop<kInt8>(kIterations);
        benchmark::DoNotOptimize(keep);
    }
    const double ops_per_loop = 12.0 * (kInt8 ? 64 : 16) * 2;  // multiply-add = 2 operations
    state.counters["GOP/s"] = benchmark::Counter(ops_per_loop * double(kIterations) * threads * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}
#endif

void register_all() {
#if defined(__x86_64__)
    const auto isas = supported_isas();
    if (std::find(isas.begin(), isas.end(), Isa::Avx512) != isas.end()) {
        benchmark::RegisterBenchmark("peak/avx512/int8_vpdpbusd", peak<true>)->UseRealTime()->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark("peak/avx512/f32_fma", peak<false>)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
#endif
    const TensorType formats[] = {TensorType::F16,  TensorType::BF16, TensorType::Q8_0, TensorType::Q8_0_R16, TensorType::Q4_0, TensorType::Q4_0_R16,
                                  TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::IQ4_NL,
                                  TensorType::Q2_K, TensorType::Q2_K_R16, TensorType::Q3_K, TensorType::Q3_K_R16, TensorType::Q4_K, TensorType::Q4_K_R16, TensorType::Q5_K, TensorType::Q5_K_R16,
                                  TensorType::Q6_K, TensorType::Q6_K_R16};
    struct Shape { int64_t rows, cols, tokens; };
    const Shape shapes[] = {{4096, 4096, 1}, {11008, 4096, 1}, {4096, 4096, 512}};
    for (Isa isa : supported_isas()) {
        for (TensorType type : formats) {
            if (kernels_for(isa)[size_t(type)].row_group > 1 && !kernels_for(isa)[size_t(type)].gemm) continue;  // not used there
            for (const Shape& s : shapes) {
                const std::string name = std::string(isa_name(isa)) + "/" + std::string(type_name(type)) + "/" +
                                         std::to_string(s.rows) + "x" + std::to_string(s.cols) + "x" +
                                         std::to_string(s.tokens);
                benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { run(st, isa, type, s.rows, s.cols, s.tokens); })
                    ->Unit(benchmark::kMillisecond)
                    ->UseRealTime()
                    ->MinTime(s.tokens > 1 ? 2.0 : 0.5);
            }
        }
    }
}

}  // namespace
}  // namespace qllm

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    qllm::g_read_bandwidth = qllm::measure_read_bandwidth();
    std::fprintf(stderr, "machine read bandwidth: %.1f GB/s\n", qllm::g_read_bandwidth / 1e9);
    qllm::register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
