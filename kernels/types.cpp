// The traits table itself: one row per GGUF tensor type. Types the engine cannot compute
// with still have their geometry here so that files holding them parse and are reported
// by name ("unsupported tensor type iq2_xxs") rather than as garbage.
#include "kernels/types.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "kernels/ref/ref.h"

namespace qllm {
namespace {

using T = TensorType;

TraitsTable make_table() {
    TraitsTable t{};
    auto row = [&](T type) -> TypeTraits& { return t[size_t(type)]; };

    row(T::F32) = {"f32", 1, 4, false, ref::f32_to_float, ref::f32_from_float, nullptr, ref::f32_vec_dot, T::F32};
    row(T::F16) = {"f16", 1, 2, false, ref::f16_to_float, ref::f16_from_float, nullptr, ref::f16_vec_dot, T::F16};
    row(T::BF16) = {"bf16", 1, 2, false, ref::bf16_to_float, ref::bf16_from_float, nullptr, ref::bf16_vec_dot, T::BF16};

    // Quantized formats: reference kernels for Q4_0..Q8_K and IQ4_NL, geometry only for the rest.
    // Q8_1 and Q8_K are activation formats only (the partners of Q4_1/Q5_1 and of the K-quants):
    // no file quantizer and no dot product of their own, as in ggml.
    row(T::Q4_0) = {"q4_0", 32, 18, true, ref::q4_0_to_float, ref::q4_0_from_float, ref::q4_0_quantize,
                   ref::q4_0_vec_dot, T::Q8_0};
    row(T::Q4_1) = {"q4_1", 32, 20, true, ref::q4_1_to_float, ref::q4_1_from_float, ref::q4_1_quantize,
                   ref::q4_1_vec_dot, T::Q8_1};
    row(T::Q5_0) = {"q5_0", 32, 22, true, ref::q5_0_to_float, ref::q5_0_from_float, ref::q5_0_quantize,
                   ref::q5_0_vec_dot, T::Q8_0};
    row(T::Q5_1) = {"q5_1", 32, 24, true, ref::q5_1_to_float, ref::q5_1_from_float, ref::q5_1_quantize,
                   ref::q5_1_vec_dot, T::Q8_1};
    row(T::Q8_0) = {"q8_0", 32, 34, true, ref::q8_0_to_float, ref::q8_0_from_float, ref::q8_0_quantize,
                   ref::q8_0_vec_dot, T::Q8_0};
    row(T::Q8_1) = {"q8_1", 32, 36, true, ref::q8_1_to_float, ref::q8_1_from_float, nullptr, nullptr, T::Q8_1};
    row(T::Q2_K) = {"q2_K", 256, 84, true, ref::q2_k_to_float, ref::q2_k_from_float, ref::q2_k_quantize,
                   ref::q2_k_vec_dot, T::Q8_K};
    row(T::Q3_K) = {"q3_K", 256, 110, true, ref::q3_k_to_float, ref::q3_k_from_float, ref::q3_k_quantize,
                   ref::q3_k_vec_dot, T::Q8_K};
    row(T::Q4_K) = {"q4_K", 256, 144, true, ref::q4_k_to_float, ref::q4_k_from_float, ref::q4_k_quantize,
                   ref::q4_k_vec_dot, T::Q8_K};
    row(T::Q5_K) = {"q5_K", 256, 176, true, ref::q5_k_to_float, ref::q5_k_from_float, ref::q5_k_quantize,
                   ref::q5_k_vec_dot, T::Q8_K};
    row(T::Q6_K) = {"q6_K", 256, 210, true, ref::q6_k_to_float, ref::q6_k_from_float, ref::q6_k_quantize,
                   ref::q6_k_vec_dot, T::Q8_K};
    row(T::Q8_K) = {"q8_K", 256, 292, true, ref::q8_k_to_float, ref::q8_k_from_float, nullptr, nullptr, T::Q8_K};
    row(T::IQ2_XXS) = {"iq2_xxs", 256, 66, true};
    row(T::IQ2_XS) = {"iq2_xs", 256, 74, true};
    row(T::IQ3_XXS) = {"iq3_xxs", 256, 98, true};
    row(T::IQ1_S) = {"iq1_s", 256, 50, true};
    row(T::IQ4_NL) = {"iq4_nl", 32, 18, true, ref::iq4_nl_to_float, ref::iq4_nl_from_float, ref::iq4_nl_quantize,
                   ref::iq4_nl_vec_dot, T::Q8_0};
    row(T::IQ3_S) = {"iq3_s", 256, 110, true};
    row(T::IQ2_S) = {"iq2_s", 256, 82, true};
    row(T::IQ4_XS) = {"iq4_xs", 256, 136, true};
    row(T::I8) = {"i8", 1, 1, false};
    row(T::I16) = {"i16", 1, 2, false};
    row(T::I32) = {"i32", 1, 4, false};
    row(T::I64) = {"i64", 1, 8, false};
    row(T::F64) = {"f64", 1, 8, false};
    row(T::IQ1_M) = {"iq1_m", 256, 56, true};
    row(T::TQ1_0) = {"tq1_0", 256, 54, true};
    row(T::TQ2_0) = {"tq2_0", 256, 66, true};
    row(T::MXFP4) = {"mxfp4", 32, 17, true};
    // In-memory layouts of 16 interleaved rows: the geometry and activation partner of the format
    // they are built from, and only a row kernel (the ISA tables add a GEMM).
    auto interleaved = [&](T type, std::string_view name, T from, VecDotRowsFn rows, RepackFn repack) {
        const TypeTraits& plain = row(from);
        TypeTraits& l = row(type);
        l = {name, plain.block_size, plain.type_size, true};
        l.vec_dot_type = plain.vec_dot_type;
        l.vec_dot_rows = rows;
        l.row_group = 16;
        l.repacked_from = from;
        l.repack = repack;
    };
    interleaved(T::Q4_0_R16, "q4_0_r16", T::Q4_0, ref::q4_0_r16_vec_dot_rows, ref::q4_0_r16_repack);
    interleaved(T::Q8_0_R16, "q8_0_r16", T::Q8_0, ref::q8_0_r16_vec_dot_rows, ref::q8_0_r16_repack);
    interleaved(T::Q2_K_R16, "q2_K_r16", T::Q2_K, ref::q2_k_r16_vec_dot_rows, ref::q2_k_r16_repack);
    interleaved(T::Q3_K_R16, "q3_K_r16", T::Q3_K, ref::q3_k_r16_vec_dot_rows, ref::q3_k_r16_repack);
    interleaved(T::Q4_K_R16, "q4_K_r16", T::Q4_K, ref::q4_k_r16_vec_dot_rows, ref::q4_k_r16_repack);
    interleaved(T::Q5_K_R16, "q5_K_r16", T::Q5_K, ref::q5_k_r16_vec_dot_rows, ref::q5_k_r16_repack);
    interleaved(T::Q6_K_R16, "q6_K_r16", T::Q6_K, ref::q6_k_r16_vec_dot_rows, ref::q6_k_r16_repack);
    return t;
}

const TypeTraits kUnknown{};

}  // namespace

const TraitsTable& reference_table() {
    static const TraitsTable table = make_table();
    return table;
}

const TypeTraits& traits(uint32_t type_id) {
    return type_id < kTensorTypeCount ? active_table()[type_id] : kUnknown;
}

const TypeTraits& traits(TensorType type) { return traits(uint32_t(type)); }

std::string_view type_name(TensorType type) {
    const auto& t = traits(type);
    return t.known() ? t.name : std::string_view("unknown");
}

std::optional<TensorType> type_from_name(std::string_view name) {
    auto lower = [](std::string_view s) {
        std::string out(s);
        std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
        return out;
    };
    const std::string wanted = lower(name);
    for (uint32_t id = 0; id < kTensorTypeCount; ++id) {
        if (traits(id).known() && traits(id).row_group == 1 && lower(traits(id).name) == wanted) return TensorType(id);
    }
    return std::nullopt;
}

}  // namespace qllm
