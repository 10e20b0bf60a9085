// Fuzz target: the quantizers on arbitrary float rows (NaN, Inf, denormals, huge and tiny
// values), with and without importance weights, for every format, in every kernel table this
// CPU runs. Input: type, table, length, value encoding, importance mode, then the values.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <limits>
#include <vector>

#include "fuzz_support.h"
#include "kernels/cpu.h"
#include "kernels/types.h"

namespace {

using qllm::TensorType;
using qllm::TraitsTable;
using qllm::TypeTraits;

std::vector<TensorType> quantizable_types() {
    std::vector<TensorType> out;
    for (uint32_t id = 0; id < qllm::kTensorTypeCount; ++id) {
        if (qllm::reference_table()[id].from_float) out.push_back(TensorType(id));
    }
    return out;
}

std::vector<const TraitsTable*> tables() {
    std::vector<const TraitsTable*> out;
    for (qllm::Isa isa : qllm::supported_isas()) out.push_back(&qllm::kernels_for(isa));
    return out;
}

// Random bytes rarely spell special floats, so one encoding spends a byte per value: small
// integers and scaled values, or one of the values quantizers trip over.
float compact_value(uint8_t b) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    static constexpr float kSpecial[16] = {
        0.0f, -0.0f, std::numeric_limits<float>::quiet_NaN(), inf, -inf, FLT_MAX, -FLT_MAX,
        std::numeric_limits<float>::denorm_min(), -FLT_MIN, FLT_MIN / 3, 1e-30f, -3e4f, 65504.0f, 65520.0f,
        1e-8f, 1.0f};
    if (b >= 0xF0) return kSpecial[b & 15];
    const float v = float(int(b & 0x7F) - 64);
    return b & 0x80 ? v * 1e-3f : v;
}

std::vector<float> take_values(qllm::fuzz::Input& in, int64_t n, bool compact) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = compact ? compact_value(in.byte()) : in.take<float>();
    return v;
}

bool all_finite(const std::vector<float>& v, float limit) {
    for (float x : v) {
        if (!std::isfinite(x) || std::fabs(x) > limit) return false;
    }
    return true;
}

// Values this small in magnitude fit every format's f16 scales: their reconstruction is finite.
constexpr float kSafeMagnitude = 1e4f;
constexpr float kSaneImportance = 1e6f;

std::vector<float> dequantized(const TypeTraits& t, const std::vector<uint8_t>& q, int64_t n) {
    std::vector<float> back(static_cast<size_t>(n));
    t.to_float(q.data(), back.data(), n);
    return back;
}

void print_block(const char* label, const float* v, int64_t n) {
    std::fprintf(stderr, "%s:", label);
    for (int64_t j = 0; j < n; ++j) std::fprintf(stderr, " %a", v[j]);
    std::fprintf(stderr, "\n");
}

// Finite input (and non-negative importance) must reconstruct to finite values.
void check_finite(const char* quantizer, const TypeTraits& t, const std::vector<uint8_t>& q,
                  const std::vector<float>& x, const std::vector<float>& importance) {
    const std::vector<float> back = dequantized(t, q, int64_t(x.size()));
    for (size_t i = 0; i < back.size(); ++i) {
        if (std::isfinite(back[i])) continue;
        const size_t first = i / size_t(t.block_size) * size_t(t.block_size);
        std::fprintf(stderr, "%s %s: value %zu reconstructs as %a\n", std::string(t.name).c_str(), quantizer, i,
                     back[i]);
        print_block("block input", x.data() + first, t.block_size);
        if (!importance.empty()) print_block("importance", importance.data() + first, t.block_size);
        std::abort();
    }
}

// The first block where a table's activation quantizer differs from the reference, with its input.
[[noreturn]] void report_mismatch(const TypeTraits& t, size_t table, const std::vector<float>& x,
                                  const std::vector<uint8_t>& want, const std::vector<uint8_t>& got) {
    size_t byte = 0;
    while (want[byte] == got[byte]) ++byte;
    const size_t block = byte / t.type_size;
    std::fprintf(stderr, "%s: table %zu differs from the reference at byte %zu of block %zu\n",
                 std::string(t.name).c_str(), table, byte % t.type_size, block);
    print_block("block input", x.data() + block * size_t(t.block_size), t.block_size);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto types = quantizable_types();
    static const auto kernel_tables = tables();
    qllm::fuzz::Input in(data, size);
    const TensorType type = types[in.byte() % types.size()];
    const size_t table_index = in.byte() % kernel_tables.size();
    const TraitsTable& table = *kernel_tables[table_index];
    const TypeTraits& ref = qllm::reference_table()[size_t(type)];
    const TypeTraits& t = table[size_t(type)];
    const uint8_t length = in.byte();
    const int64_t n = ref.block_size == 1 ? 1 + length % 300 : ref.block_size * (1 + length % 4);
    const uint8_t mode = in.byte();
    const bool compact = mode & 1;
    const std::vector<float> x = take_values(in, n, compact);
    const bool safe_input = all_finite(x, kSafeMagnitude);

    // The reference quantizer and this table's (SIMD activation quantizers override it).
    std::vector<uint8_t> q_ref(ref.row_size(n)), q(ref.row_size(n));
    ref.from_float(x.data(), q_ref.data(), n);
    t.from_float(x.data(), q.data(), n);
    // Same bytes, or (tiny inputs whose f16 scale rounds to 0, where the levels are arbitrary)
    // at least the same values.
    if (safe_input && q != q_ref && dequantized(ref, q, n) != dequantized(ref, q_ref, n)) {
        report_mismatch(ref, table_index, x, q_ref, q);
    }
    if (safe_input) check_finite("from_float", ref, q_ref, x, {});

    // The file writer's quantizer, with importance weights: none, from the input (finite, as
    // the importance-matrix loader guarantees, but of any sign), or all zero.
    if (!ref.quantize) return 0;
    std::vector<float> importance;
    switch ((mode >> 1) & 3) {
        case 0: break;
        case 1:
        case 2:
            importance = take_values(in, n, compact);
            for (float& w : importance) w = std::isfinite(w) ? ((mode & 4) ? std::fabs(w) : w) : 1.0f;
            break;
        case 3: importance.assign(size_t(n), 0.0f); break;
    }
    std::fill(q.begin(), q.end(), 0);
    ref.quantize(x.data(), q.data(), n, importance.empty() ? nullptr : importance.data());
    // Importance is a mean squared activation: non-negative, and far below float overflow
    // (weights near FLT_MAX overflow the weighted sums, in ggml as here).
    bool sane_importance = true;
    for (float w : importance) sane_importance = sane_importance && w >= 0.0f && w <= kSaneImportance;
    if (safe_input && sane_importance) check_finite("quantize", ref, q, x, importance);
    return 0;
}
