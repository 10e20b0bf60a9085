// The traits table: one row per GGUF tensor type. Everything the engine knows about a
// format (block geometry, conversions, dot product and its activation partner) lives here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace qllm {

// Type ids exactly as stored in GGUF tensor infos (ggml_type).
enum class TensorType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
    // In memory only: rows interleaved in groups of 16 (kernels/blocks.h).
    Q4_0_R16 = 40, Q4_K_R16 = 41, Q8_0_R16 = 42, Q6_K_R16 = 43, Q5_K_R16 = 44, Q2_K_R16 = 45,
    Q3_K_R16 = 46,
};
inline constexpr uint32_t kTensorTypeCount = 47;

// Kernel signatures. `n` is the number of values (a multiple of block_size).
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
// Quantize with per-column importance weights (`importance` has n entries, may be null).
using QuantizeFn = void (*)(const float* src, void* dst, int64_t n, const float* importance);
// Dot product of one weight row `x` with one activation row `y` already in vec_dot_type.
using VecDotFn = float (*)(int64_t n, const void* x, const void* y);
// n_rows weight rows (x_row_bytes apart) times one activation row: out[r] = vec_dot(row r, y),
// the same float. Token generation's matrix-vector products.
using VecDotRowsFn = void (*)(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out);
// Many weight rows times many activation rows (prompt processing): out[t * ld_out + r] =
// row r of `w` · activation row t, for r < n_rows, t < n_tok. Equal to vec_dot up to float
// summation order.
using GemmFn = void (*)(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* act,
                        size_t act_row_bytes, int64_t n_tok, float* out, int64_t ld_out);
// row_group rows of n values (row_bytes apart) rewritten as one group of an interleaved layout.
using RepackFn = void (*)(const void* rows, size_t row_bytes, int64_t n, void* group);

struct TypeTraits {
    std::string_view name;      // ggml's lowercase name, e.g. "q4_K"
    int64_t block_size = 0;     // values per block (1 for plain floats)
    size_t type_size = 0;       // bytes per block
    bool is_quantized = false;
    ToFloatFn to_float = nullptr;       // dequantize
    FromFloatFn from_float = nullptr;   // reference quantization (the format's definition)
    QuantizeFn quantize = nullptr;      // quantization used when writing files (imatrix-aware)
    VecDotFn vec_dot = nullptr;         // weight row · activation row
    TensorType vec_dot_type = TensorType::F32;  // the activation format vec_dot pairs with
    VecDotRowsFn vec_dot_rows = nullptr;  // optional: many rows, activation side prepared once (ISA tables only)
    GemmFn gemm = nullptr;              // optional: batches of tokens (the ISA tables only)
    int64_t gemm_min_tokens = 16;       // shorter batches go through the row kernels instead
    // Interleaved layouts, built in memory from another type's rows and never read from or
    // written to files: rows come in groups of row_group, which take row_group * row_size bytes,
    // and only the row kernels (vec_dot_rows, gemm) read them, from a group's first row on.
    int64_t row_group = 1;
    TensorType repacked_from = TensorType::F32;
    RepackFn repack = nullptr;

    bool known() const { return type_size != 0; }
    // Bytes of a row of n values; n must be a multiple of block_size.
    size_t row_size(int64_t n) const { return size_t(n / block_size) * type_size; }
};

// The row for a type id; an id outside the table gives a row with known() == false.
const TypeTraits& traits(TensorType type);
const TypeTraits& traits(uint32_t type_id);
std::string_view type_name(TensorType type);
std::optional<TensorType> type_from_name(std::string_view name);  // case-insensitive

}  // namespace qllm

namespace qllm {

using TraitsTable = std::array<TypeTraits, kTensorTypeCount>;

// The scalar reference rows: the definition of every format (kernels/types.cpp).
const TraitsTable& reference_table();
// The rows in use: the reference with the chosen ISA's kernels written in (kernels/dispatch.cpp).
const TraitsTable& active_table();

}  // namespace qllm
