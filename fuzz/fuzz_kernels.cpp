// Fuzz target: dequantize and dot products on arbitrary blocks (NaN and Inf scales, any bit
// pattern) for every format with kernels, in every kernel table this CPU runs. Input: the type,
// the table, the length, then the weight row and the activation row.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_support.h"
#include "kernels/cpu.h"
#include "kernels/types.h"

namespace {

using qllm::TensorType;
using qllm::TraitsTable;
using qllm::TypeTraits;

// Types that can be dequantized (weights and activation formats alike).
std::vector<TensorType> types_with_kernels() {
    std::vector<TensorType> out;
    for (uint32_t id = 0; id < qllm::kTensorTypeCount; ++id) {
        if (qllm::reference_table()[id].to_float) out.push_back(TensorType(id));
    }
    return out;
}

std::vector<const TraitsTable*> tables() {
    std::vector<const TraitsTable*> out;
    for (qllm::Isa isa : qllm::supported_isas()) out.push_back(&qllm::kernels_for(isa));
    return out;
}

// Bytes for `n` values of `t`, from the input; zeros once it runs out.
std::vector<uint8_t> take_row(qllm::fuzz::Input& in, const TypeTraits& t, int64_t n) {
    std::vector<uint8_t> row(t.row_size(n), 0);
    const size_t have = std::min(row.size(), in.remaining());
    std::memcpy(row.data(), in.rest(), have);
    in.skip(have);
    return row;
}

bool same_float(float a, float b) {
    return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto types = types_with_kernels();
    static const auto kernel_tables = tables();
    qllm::fuzz::Input in(data, size);
    const TensorType type = types[in.byte() % types.size()];
    const TraitsTable& table = *kernel_tables[in.byte() % kernel_tables.size()];
    const TypeTraits& ref = qllm::reference_table()[size_t(type)];
    const TypeTraits& t = table[size_t(type)];
    // Plain floats: any length (SIMD tails); blocks: 1 to 8 of them.
    const uint8_t length = in.byte();
    const int64_t n = ref.block_size == 1 ? 1 + length % 300 : ref.block_size * (1 + length % 8);

    const std::vector<uint8_t> x = take_row(in, ref, n);
    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    ref.to_float(x.data(), want.data(), n);
    t.to_float(x.data(), got.data(), n);
    for (int64_t i = 0; i < n; ++i) QLLM_FUZZ_CHECK(same_float(want[size_t(i)], got[size_t(i)]));

    if (t.vec_dot) {
        const TypeTraits& partner = table[size_t(t.vec_dot_type)];
        QLLM_FUZZ_CHECK(n % partner.block_size == 0);
        const std::vector<uint8_t> y = take_row(in, partner, n);
        (void)t.vec_dot(n, x.data(), y.data());
        (void)ref.vec_dot(n, x.data(), y.data());
        // The activation row dequantizes too (the partner formats q8_0, q8_1, q8_K, f16, bf16).
        std::vector<float> act(static_cast<size_t>(n));
        partner.to_float(y.data(), act.data(), n);
    }
    return 0;
}
