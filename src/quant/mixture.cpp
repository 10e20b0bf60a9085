// llama.cpp's per-tensor mixture rules (llama_tensor_get_type, mid-2025), restated per tensor
// role. The rules count attn_v and ffn_down tensors in writing order, hence the Chooser state.
#include "quant/mixture.h"

#include <array>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "qllm/error.h"

namespace qllm::quant {
namespace {

using T = TensorType;
using F = FileType;

bool has(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// 2-D weights llama.cpp leaves as they are: small or position-like tensors of other architectures.
constexpr std::array<std::string_view, 31> kNeverQuantized = {
    "_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj",
    "ssm_conv1d.weight", "shortconv.conv.weight", "time_mix_first.weight", "time_mix_w0.weight",
    "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
    "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
    "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight", "conv.dw.weight", "conv.pw1.weight", "conv.pw2.weight", "conv1d",
    "conv_dw.weight", "attn_rel_b.weight", ".position_embd.", "position_embd.weight", "token_types.weight",
};

// The layers that get more bits in the _M mixtures: the first and last eighth, and every third
// layer in between.
bool use_more_bits(int i_layer, int n_layer) {
    return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

int64_t block_of(TensorType type) { return traits(type).block_size; }

// The type llama.cpp substitutes when a row does not split into whole blocks; nullopt = refuse.
std::optional<TensorType> fallback_for(TensorType type) {
    switch (type) {
        case T::Q2_K: case T::Q3_K: case T::IQ4_XS: case T::IQ2_XXS: case T::IQ2_XS: case T::IQ2_S:
        case T::IQ3_XXS: case T::IQ3_S: case T::IQ1_S: case T::IQ1_M:
            return T::IQ4_NL;
        case T::TQ1_0: case T::TQ2_0: return T::Q4_0;
        case T::Q4_K: return T::Q5_0;
        case T::Q5_K: return T::Q5_1;
        case T::Q6_K: return T::Q8_0;
        default: return std::nullopt;
    }
}

class Chooser {
public:
    Chooser(const ModelFacts& model, const MixtureOptions& opt, bool has_output, int n_attn_v)
        : m_(model), opt_(opt), has_output_(has_output), n_attn_v_(n_attn_v) {}

    // The mixture's type for a quantizable tensor whose default is `type` (before fallbacks).
    TensorType choose(const gguf::TensorInfo& t, TensorType type) {
        const std::string& name = t.name;
        if (name == "output.weight" || (!has_output_ && name == "token_embd.weight")) return output(t, type);
        if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") {
            return opt_.token_embd_type.value_or(type);
        }
        if (has(name, "attn_v.weight")) return attn_v(type);
        if (has(name, "attn_k.weight")) return m_.n_expert == 8 ? T::Q8_0 : type;
        if (has(name, "attn_q.weight")) return type;
        if (has(name, "ffn_down")) return ffn_down(name, type);
        if (has(name, "attn_output.weight")) return attn_output(type);
        if (has(name, "attn_qkv.weight")) return attn_qkv(type);
        if (has(name, "ffn_gate")) {
            layer_of(i_ffn_gate_++, name);
            return type;
        }
        if (has(name, "ffn_up")) {
            layer_of(i_ffn_up_++, name);
            return type;
        }
        return type;
    }

private:
    bool falcon() const { return m_.arch == "falcon"; }

    // The layer index a per-layer rule uses: the running count, or for MoE models (whose expert
    // tensors are not in layer order) the number in the name.
    int layer_of(int counted, const std::string& name) const {
        if (m_.n_expert <= 1) return counted;
        int layer = -1;
        if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) fail("tensor '{}': cannot tell its layer", name);
        if (layer < 0 || layer >= m_.n_layer) fail("tensor '{}': layer {} is not in [0, {})", name, layer, m_.n_layer);
        return layer;
    }

    // output.weight (and token_embd.weight when it doubles as the output): q6_K unless it is q8_0
    // already or its rows do not fit the default type's blocks.
    TensorType output(const gguf::TensorInfo& t, TensorType type) const {
        if (opt_.output_type) return *opt_.output_type;
        if (falcon() || t.ne[0] % block_of(type) != 0) return T::Q8_0;
        return type == T::Q8_0 ? type : T::Q6_K;
    }

    TensorType attn_v(TensorType type) {
        const int64_t gqa = m_.n_gqa();
        switch (opt_.ftype) {
            case F::Q2_K: type = gqa >= 4 ? T::Q4_K : T::Q3_K; break;
            case F::Q3_K_M: type = i_attn_v_ < 2 ? T::Q5_K : T::Q4_K; break;
            case F::Q3_K_L: type = T::Q5_K; break;
            case F::IQ4_NL: if (gqa >= 4) type = T::Q5_K; break;
            case F::Q4_K_M: case F::Q5_K_M: if (use_more_bits(i_attn_v_, n_attn_v_)) type = T::Q6_K; break;
            case F::Q4_K_S: if (i_attn_v_ < 4) type = T::Q5_K; break;
            default: break;
        }
        // 70B's attn_v is 8x smaller than attn_q (8 heads share it): more bits cost little.
        if (m_.is_llama_70b() && (type == T::Q3_K || type == T::Q4_K)) type = T::Q5_K;
        if (m_.n_expert == 8) type = T::Q8_0;
        ++i_attn_v_;
        return type;
    }

    TensorType ffn_down(const std::string& name, TensorType type) {
        const int i = layer_of(i_ffn_down_++, name);
        const int n = int(m_.n_layer);
        const bool more = use_more_bits(i, n);
        switch (opt_.ftype) {
            case F::Q2_K: return T::Q3_K;
            case F::Q3_K_M: return i < n / 16 ? T::Q5_K : (!falcon() || more) ? T::Q4_K : T::Q3_K;
            case F::Q3_K_L: return falcon() ? T::Q4_K : T::Q5_K;
            case F::Q4_K_M:
                if (falcon()) return i < n / 16 ? T::Q6_K : more ? T::Q5_K : T::Q4_K;
                return more ? T::Q6_K : type;
            case F::IQ4_NL: return i < n / 8 && !opt_.has_imatrix ? T::Q5_K : type;
            case F::Q5_K_M: return more ? T::Q6_K : type;
            case F::Q4_K_S: return !falcon() && i < n / 8 ? T::Q5_K : type;
            // With an imatrix the first ffn_down layers of Q4_0/Q5_0 get the asymmetric type.
            case F::Q4_0: return opt_.has_imatrix && i < n / 8 ? T::Q4_1 : type;
            case F::Q5_0: return opt_.has_imatrix && i < n / 8 ? T::Q5_1 : type;
            default: return type;
        }
    }

    TensorType attn_output(TensorType type) const {
        const F f = opt_.ftype;
        if (falcon()) return f == F::Q3_K_L ? T::Q4_K : type;
        if (m_.n_expert == 8) {
            const bool bump = f == F::Q2_K || f == F::Q3_K_S || f == F::Q3_K_M || f == F::IQ4_NL ||
                              f == F::Q4_K_S || f == F::Q4_K_M;
            return bump ? T::Q5_K : type;
        }
        if (f == F::Q2_K) return T::Q3_K;
        if (f == F::Q3_K_M) return T::Q4_K;
        if (f == F::Q3_K_L) return T::Q5_K;
        return type;
    }

    TensorType attn_qkv(TensorType type) const {
        switch (opt_.ftype) {
            case F::Q3_K_M: case F::Q3_K_L: return T::Q4_K;
            case F::Q4_K_M: return T::Q5_K;
            case F::Q5_K_M: return T::Q6_K;
            default: return type;
        }
    }

    const ModelFacts& m_;
    const MixtureOptions& opt_;
    bool has_output_;
    int n_attn_v_;
    int i_attn_v_ = 0, i_ffn_down_ = 0, i_ffn_gate_ = 0, i_ffn_up_ = 0;
};

// Reads a head count that some architectures store per layer (an array): the first layer's.
int64_t count_or_first(const gguf::File& f, const std::string& key, int64_t fallback) {
    const gguf::Value* v = f.find(key);
    if (!v) return fallback;
    if (v->type != gguf::ValueType::ARRAY) return int64_t(f.get_count(key));
    if (v->array_size() == 0) return fallback;
    switch (v->array_type) {
        case gguf::ValueType::U32: case gguf::ValueType::I32: {
            uint32_t x;
            std::memcpy(&x, v->bytes.data(), 4);
            return int64_t(x);
        }
        default: fail("{}: metadata key '{}' is an array of {}", f.path(), key, value_type_name(v->array_type));
    }
}

}  // namespace

ModelFacts ModelFacts::read(const gguf::File& file) {
    ModelFacts m;
    m.arch = file.get_string_or("general.architecture", "");
    const std::string p = m.arch + ".";
    m.n_layer = int64_t(file.get_count_or(p + "block_count", 0));
    m.n_head = count_or_first(file, p + "attention.head_count", 0);
    m.n_head_kv = count_or_first(file, p + "attention.head_count_kv", m.n_head);
    m.n_expert = int64_t(file.get_count_or(p + "expert_count", 0));
    return m;
}

int effective_dims(const gguf::TensorInfo& t) {
    int n = 4;
    while (n > 1 && t.ne[n - 1] == 1) --n;
    return n;
}

bool is_quantizable(const gguf::TensorInfo& t, const MixtureOptions& opt) {
    const std::string_view name = t.name;
    if (!name.ends_with("weight") || effective_dims(t) < 2) return false;
    if (!opt.quantize_output && name == "output.weight") return false;
    for (std::string_view part : kNeverQuantized) {
        if (has(name, part)) return false;
    }
    return true;
}

std::vector<TensorChoice> choose_types(const std::vector<const gguf::TensorInfo*>& tensors, const ModelFacts& model,
                                       const MixtureOptions& opt) {
    bool has_output = false;
    int n_attn_v = 0;
    for (const auto* t : tensors) {
        if (t->name == "output.weight") has_output = true;
        if (has(t->name, "attn_v.weight") || has(t->name, "attn_qkv.weight") || has(t->name, "attn_kv_b.weight")) {
            ++n_attn_v;
        }
    }
    const TensorType base = file_type_info(opt.ftype).base;
    const bool base_quantized = traits(base).is_quantized;
    Chooser chooser(model, opt, has_output, n_attn_v);

    std::vector<TensorChoice> out;
    out.reserve(tensors.size());
    for (const auto* t : tensors) {
        TensorChoice c;
        c.type = t->type;
        if (!is_quantizable(*t, opt)) {
            out.push_back(c);
            continue;
        }
        TensorType type = base;
        if (base_quantized) {
            if (!opt.pure) type = chooser.choose(*t, type);
            if (t->ne[0] % block_of(type) != 0) {
                const auto fb = fallback_for(type);
                if (!fb) {
                    fail("tensor '{}': rows of {} values do not split into {}-value {} blocks, and llama.cpp has no "
                         "fallback for {} (it refuses too); choose a K-quant type, which keeps such tensors in f16",
                         t->name, t->ne[0], block_of(type), type_name(type), type_name(type));
                }
                const TensorType wanted = type;
                type = t->ne[0] % block_of(*fb) == 0 ? *fb : T::F16;
                c.fallback = fmt::format("rows of {} do not fit {} blocks of {}", t->ne[0], type_name(wanted),
                                         block_of(wanted));
            }
        }
        if (opt.token_embd_type && t->name == "token_embd.weight") type = *opt.token_embd_type;
        if (opt.output_type && t->name == "output.weight") type = *opt.output_type;
        if (t->ne[0] % block_of(type) != 0) {
            fail("tensor '{}': rows of {} values do not split into {}-value {} blocks", t->name, t->ne[0],
                 block_of(type), type_name(type));
        }
        c.type = type;
        c.convert = type != t->type;
        out.push_back(c);
    }
    return out;
}

}  // namespace qllm::quant
