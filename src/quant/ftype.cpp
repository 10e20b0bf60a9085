// The file-type table and TYPE parsing for `qllm quantize`.
#include "quant/ftype.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

#include "qllm/error.h"

namespace qllm::quant {
namespace {

using T = TensorType;
using F = FileType;

constexpr std::array kFileTypes = {
    FileTypeInfo{"Q4_0", F::Q4_0, T::Q4_0, "output q6_K"},
    FileTypeInfo{"Q4_1", F::Q4_1, T::Q4_1, "output q6_K"},
    FileTypeInfo{"Q5_0", F::Q5_0, T::Q5_0, "output q6_K"},
    FileTypeInfo{"Q5_1", F::Q5_1, T::Q5_1, "output q6_K"},
    FileTypeInfo{"Q2_K", F::Q2_K, T::Q2_K, "output q6_K; attn_v q3_K (q4_K if GQA >= 4), ffn_down and attn_output q3_K"},
    FileTypeInfo{"Q3_K_S", F::Q3_K_S, T::Q3_K, "output q6_K"},
    FileTypeInfo{"Q3_K_M", F::Q3_K_M, T::Q3_K, "output q6_K; attn_v q5_K then q4_K, ffn_down and attn_output q4_K"},
    FileTypeInfo{"Q3_K_L", F::Q3_K_L, T::Q3_K, "output q6_K; attn_v, ffn_down and attn_output q5_K"},
    FileTypeInfo{"IQ4_NL", F::IQ4_NL, T::IQ4_NL, "output q6_K; attn_v q5_K if GQA >= 4; first 1/8 of ffn_down q5_K"},
    FileTypeInfo{"Q4_K_S", F::Q4_K_S, T::Q4_K, "output q6_K; first 4 attn_v and first 1/8 of ffn_down q5_K"},
    FileTypeInfo{"Q4_K_M", F::Q4_K_M, T::Q4_K, "output q6_K; about half of attn_v and ffn_down q6_K"},
    FileTypeInfo{"Q5_K_S", F::Q5_K_S, T::Q5_K, "output q6_K"},
    FileTypeInfo{"Q5_K_M", F::Q5_K_M, T::Q5_K, "output q6_K; about half of attn_v and ffn_down q6_K"},
    FileTypeInfo{"Q6_K", F::Q6_K, T::Q6_K, "-"},
    FileTypeInfo{"Q8_0", F::Q8_0, T::Q8_0, "-"},
    FileTypeInfo{"F16", F::F16, T::F16, "all 2-D weights f16"},
    FileTypeInfo{"BF16", F::BF16, T::BF16, "all 2-D weights bf16"},
    FileTypeInfo{"F32", F::F32, T::F32, "everything f32"},
};

// llama-quantize's short names for the medium K mixtures.
constexpr std::array<std::pair<std::string_view, F>, 3> kAliases = {{
    {"Q3_K", F::Q3_K_M}, {"Q4_K", F::Q4_K_M}, {"Q5_K", F::Q5_K_M},
}};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
           });
}

}  // namespace

std::span<const FileTypeInfo> file_types() { return kFileTypes; }

const FileTypeInfo& file_type_info(FileType id) {
    for (const auto& f : kFileTypes) {
        if (f.id == id) return f;
    }
    fail("file type id {} has no quantize table row", uint32_t(id));
}

const FileTypeInfo* parse_file_type(std::string_view text) {
    for (const auto& f : kFileTypes) {
        if (iequals(f.name, text)) return &f;
    }
    for (const auto& [alias, id] : kAliases) {
        if (iequals(alias, text)) return &file_type_info(id);
    }
    uint32_t id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) {
        for (const auto& f : kFileTypes) {
            if (uint32_t(f.id) == id) return &f;
        }
    }
    return nullptr;
}

// Geometry from the reference table: it needs no CPU dispatch, so --help works before it.
static const TypeTraits& geometry(TensorType type) { return reference_table()[size_t(type)]; }

double bits_per_weight(TensorType type) {
    const TypeTraits& t = geometry(type);
    return t.known() ? double(t.type_size) * 8.0 / double(t.block_size) : 0.0;
}

std::string file_type_names() {
    std::string out;
    for (const auto& f : kFileTypes) {
        if (!out.empty()) out += ' ';
        out += f.name;
    }
    return out;
}

std::string file_type_table() {
    std::string out = "Types (case-insensitive; Q3_K, Q4_K, Q5_K mean the _M mixtures; numeric ids work too):\n";
    out += fmt::format("  {:>3}  {:<7} {:<7} {:>7}  {}\n", "id", "TYPE", "base", "bpw", "mixture (besides 1-D tensors kept f32)");
    for (const auto& f : kFileTypes) {
        out += fmt::format("  {:>3}  {:<7} {:<7} {:>7.4f}  {}\n", uint32_t(f.id), f.name, geometry(f.base).name,
                           bits_per_weight(f.base), f.mix);
    }
    return out;
}

}  // namespace qllm::quant
