// Model loading: hyperparameters from metadata, weights by GGUF tensor name, all validated.
#include "model/model.h"

#include <array>
#include <cmath>

#include "model/repack.h"
#include "qllm/error.h"

namespace qllm {
namespace {

// One row per supported architecture: its RoPE style, its layer function, and the sliding-window
// pattern of its layers (0: no sliding window).
struct Architecture {
    std::string_view name;
    RopeStyle rope_style;
    BlockKind block;
    int64_t swa_pattern;
};
constexpr std::array kArchitectures = {
    Architecture{"llama", RopeStyle::Norm, BlockKind::Llama, 0},
    Architecture{"qwen2", RopeStyle::Neox, BlockKind::Llama, 0},
    Architecture{"qwen3", RopeStyle::Neox, BlockKind::Llama, 0},
    Architecture{"phi3", RopeStyle::Neox, BlockKind::Phi3, 0},
    Architecture{"gemma2", RopeStyle::Neox, BlockKind::Gemma, 2},
    Architecture{"gemma3", RopeStyle::Neox, BlockKind::Gemma, 6},
};

const Architecture& find_architecture(const gguf::File& f) {
    const std::string arch = f.get_string("general.architecture");
    for (const auto& a : kArchitectures) {
        if (a.name == arch) return a;
    }
    fail("{}: unsupported architecture '{}'", f.path(), arch);
}

int64_t checked_positive(const gguf::File& f, const std::string& key, uint64_t value, uint64_t limit) {
    if (value == 0 || value > limit) fail("{}: {} = {} is out of range (1..{})", f.path(), key, value, limit);
    return int64_t(value);
}

Hparams read_hparams(const gguf::File& f, const Architecture& arch) {
    Hparams hp;
    hp.arch = std::string(arch.name);
    hp.rope_style = arch.rope_style;
    const std::string p = hp.arch + ".";
    auto count = [&](const std::string& key, uint64_t limit) {
        return checked_positive(f, p + key, f.get_count(p + key), limit);
    };
    hp.n_embd = count("embedding_length", 1u << 20);
    hp.n_layer = count("block_count", 4096);
    hp.n_ff = count("feed_forward_length", 1u << 22);
    hp.n_head = count("attention.head_count", 65536);
    hp.n_head_kv = f.has(p + "attention.head_count_kv") ? count("attention.head_count_kv", 65536) : hp.n_head;
    hp.n_ctx_train = f.has(p + "context_length") ? count("context_length", 1u << 26) : 2048;
    if (hp.n_head % hp.n_head_kv != 0) {
        fail("{}: attention.head_count {} is not a multiple of head_count_kv {}", f.path(), hp.n_head, hp.n_head_kv);
    }
    if (f.has(p + "attention.key_length")) {
        hp.head_dim = count("attention.key_length", kMaxHeadDim);
    } else {
        if (hp.n_embd % hp.n_head != 0) {
            fail("{}: embedding_length {} is not a multiple of head_count {}", f.path(), hp.n_embd, hp.n_head);
        }
        hp.head_dim = hp.n_embd / hp.n_head;
        if (hp.head_dim > kMaxHeadDim) fail("{}: head size {} exceeds {}", f.path(), hp.head_dim, kMaxHeadDim);
    }
    if (f.has(p + "attention.value_length") && int64_t(f.get_count(p + "attention.value_length")) != hp.head_dim) {
        fail("{}: attention.value_length differs from key_length (not supported)", f.path());
    }
    hp.n_rot = f.has(p + "rope.dimension_count") ? count("rope.dimension_count", 65536) : hp.head_dim;
    if (hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0) {
        fail("{}: rope.dimension_count {} must be even and at most the head size {}", f.path(), hp.n_rot, hp.head_dim);
    }
    hp.rope_base = f.get_f32_or(p + "rope.freq_base", 10000.0f);
    hp.rms_eps = f.get_f32_or(p + "attention.layer_norm_rms_epsilon", 1e-5f);
    const std::string scaling = f.get_string_or(p + "rope.scaling.type", "none");
    const float factor = f.get_f32_or(p + "rope.scaling.factor", 0.0f);
    if (scaling == "linear" && factor > 0.0f) hp.rope_freq_scale = 1.0f / factor;
    // isfinite as well: an infinite base or epsilon (or a tiny scaling factor) passes "> 0".
    auto positive = [](float x) { return std::isfinite(x) && x > 0.0f; };
    if (!positive(hp.rope_base) || !positive(hp.rms_eps) || !positive(hp.rope_freq_scale)) {
        fail("{}: rope.freq_base, rms epsilon and rope scale must be positive finite numbers", f.path());
    }
    // Not a hyperparameter, but `info` prints it: a wrong type must fail here, before any output.
    f.get_string_or("general.name", "");
    hp.file_type = f.has("general.file_type") ? uint32_t(f.get_count("general.file_type")) : guess_file_type(f);

    // Attention scaling: llama scales the scores, phi3 and gemma scale q (gemma's 27B models by
    // 1/sqrt(n_embd / n_head) instead of 1/sqrt(head_dim), recognised by their layer counts).
    hp.block = arch.block;
    const float inv_sqrt_head = 1.0f / std::sqrt(float(hp.head_dim));
    if (arch.block == BlockKind::Llama) {
        hp.attn_kq_scale = inv_sqrt_head;
    } else {
        const bool gemma_27b = (hp.arch == "gemma2" && hp.n_layer == 46) || (hp.arch == "gemma3" && hp.n_layer == 62);
        hp.attn_q_scale = gemma_27b ? 1.0f / std::sqrt(float(hp.n_embd / hp.n_head)) : inv_sqrt_head;
    }
    if (arch.block == BlockKind::Gemma) hp.embed_scale = std::sqrt(float(hp.n_embd));
    hp.attn_softcap = f.get_f32_or(p + "attn_logit_softcapping", 0.0f);
    hp.final_softcap = f.get_f32_or(p + "final_logit_softcapping", 0.0f);
    hp.rope_base_swa = hp.arch == "gemma3" ? 10000.0f : hp.rope_base;
    if (arch.swa_pattern > 0 && f.has(p + "attention.sliding_window")) {
        hp.sliding_window = int64_t(f.get_count(p + "attention.sliding_window"));
        hp.swa_pattern = arch.swa_pattern;
    }
    if (!std::isfinite(hp.attn_softcap) || hp.attn_softcap < 0 || !std::isfinite(hp.final_softcap) ||
        hp.final_softcap < 0) {
        fail("{}: soft-capping values must be finite and non-negative", f.path());
    }
    return hp;
}

// Looks a tensor up by name and checks its shape; a missing required tensor is an error.
class TensorFinder {
public:
    explicit TensorFinder(const gguf::File& f) : f_(f) {}

    TensorView get(const std::string& name, std::initializer_list<int64_t> shape, bool required = true) const {
        const gguf::TensorInfo* t = f_.find_tensor(name);
        if (!t) {
            if (required) fail("{}: missing tensor '{}'", f_.path(), name);
            return {};
        }
        bool ok = int(shape.size()) >= t->n_dims;
        int d = 0;
        for (int64_t want : shape) ok = ok && t->ne[d++] == want;
        if (!ok) {
            std::string want = "[";
            for (int64_t s : shape) want += (want.size() > 1 ? ", " : "") + std::to_string(s);
            fail("{}: tensor '{}' has shape {}, expected {}]", f_.path(), name, t->shape_string(), want);
        }
        TensorView v;
        v.name = t->name.c_str();
        v.type = t->type;
        std::copy(std::begin(t->ne), std::end(t->ne), v.ne);
        v.data = t->data;
        return v;
    }

private:
    const gguf::File& f_;
};

// Weights that are multiplied need a dot product kernel; norms must be plain f32.
void check_computable(const gguf::File& f, const TensorView& w, bool matmul, bool need_kernels) {
    if (!w || (matmul && !need_kernels)) return;
    const TypeTraits& t = traits(w.type);
    if (matmul && (!t.vec_dot || !t.to_float || !traits(t.vec_dot_type).from_float)) {
        fail("{}: tensor '{}' has type {}, which this build cannot compute with yet", f.path(), w.name, t.name);
    }
    if (!matmul && w.type != TensorType::F32) {
        fail("{}: tensor '{}' must be f32, found {}", f.path(), w.name, t.name);
    }
}

Weights find_weights(const gguf::File& f, const Hparams& hp, bool need_kernels) {
    TensorFinder find(f);
    Weights w;
    w.token_embd = find.get("token_embd.weight", {hp.n_embd, hp.n_vocab});
    w.output_norm = find.get("output_norm.weight", {hp.n_embd});
    w.output = find.get("output.weight", {hp.n_embd, hp.n_vocab}, false);
    if (!w.output) w.output = w.token_embd;  // tied embeddings
    w.rope_freqs = find.get("rope_freqs.weight", {hp.n_rot / 2}, false);
    check_computable(f, w.token_embd, true, need_kernels);
    check_computable(f, w.output, true, need_kernels);
    check_computable(f, w.output_norm, false, need_kernels);
    check_computable(f, w.rope_freqs, false, need_kernels);
    const bool gemma = hp.block == BlockKind::Gemma;
    const bool phi3 = hp.block == BlockKind::Phi3;
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const std::string b = "blk." + std::to_string(il) + ".";
        LayerWeights l;
        l.attn_norm = find.get(b + "attn_norm.weight", {hp.n_embd});
        if (phi3) {
            l.wqkv = find.get(b + "attn_qkv.weight", {hp.n_embd, hp.q_dim() + 2 * hp.kv_dim()});
        } else {
            l.wq = find.get(b + "attn_q.weight", {hp.n_embd, hp.q_dim()});
            l.wk = find.get(b + "attn_k.weight", {hp.n_embd, hp.kv_dim()});
            l.wv = find.get(b + "attn_v.weight", {hp.n_embd, hp.kv_dim()});
        }
        l.bq = find.get(b + "attn_q.bias", {hp.q_dim()}, false);
        l.bk = find.get(b + "attn_k.bias", {hp.kv_dim()}, false);
        l.bv = find.get(b + "attn_v.bias", {hp.kv_dim()}, false);
        l.q_norm = find.get(b + "attn_q_norm.weight", {hp.head_dim}, false);
        l.k_norm = find.get(b + "attn_k_norm.weight", {hp.head_dim}, false);
        if (bool(l.bq) != bool(l.bk) || bool(l.bk) != bool(l.bv) || bool(l.q_norm) != bool(l.k_norm)) {
            fail("{}: layer {} has only some of the q/k/v biases or q/k norms", f.path(), il);
        }
        l.wo = find.get(b + "attn_output.weight", {hp.q_dim(), hp.n_embd});
        l.post_attn_norm = find.get(b + "post_attention_norm.weight", {hp.n_embd}, gemma);
        l.ffn_norm = find.get(b + "ffn_norm.weight", {hp.n_embd});
        if (!phi3) l.ffn_gate = find.get(b + "ffn_gate.weight", {hp.n_embd, hp.n_ff});
        l.ffn_up = find.get(b + "ffn_up.weight", {hp.n_embd, phi3 ? 2 * hp.n_ff : hp.n_ff});
        l.ffn_down = find.get(b + "ffn_down.weight", {hp.n_ff, hp.n_embd});
        l.post_ffn_norm = find.get(b + "post_ffw_norm.weight", {hp.n_embd}, gemma);
        for (const TensorView* m : {&l.wq, &l.wk, &l.wv, &l.wqkv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
            check_computable(f, *m, true, need_kernels);
        }
        for (const TensorView* v : {&l.attn_norm, &l.bq, &l.bk, &l.bv, &l.q_norm, &l.k_norm, &l.post_attn_norm,
                                    &l.ffn_norm, &l.post_ffn_norm}) {
            check_computable(f, *v, false, need_kernels);
        }
        w.layers.push_back(l);
    }
    return w;
}

// Errors are printed as one line, but they quote keys, tensor names and token texts taken from
// the file: spell out their control characters so a "\n" in a name cannot split the line.
std::string one_line(std::string_view text) {
    std::string out;
    for (const char c : text) {
        const auto b = static_cast<unsigned char>(c);
        if (b == '\n') out += "\\n";
        else if (b == '\r') out += "\\r";
        else if (b == '\t') out += "\\t";
        else if (b < 0x20 || b == 0x7F) out += fmt::format("\\x{:02X}", b);
        else out += c;
    }
    return out;
}

}  // namespace

Model::~Model() = default;

// A function-try-block: every load error leaves through one_line().
std::unique_ptr<Model> Model::load(const std::string& path, Mode mode, bool repack) try {
    auto model = std::unique_ptr<Model>(new Model());
    model->file_ = std::make_unique<gguf::File>(path);
    const gguf::File& f = *model->file_;
    auto vocab = std::make_shared<const Vocab>(Vocab::load(f));
    model->tokenizer_ = std::make_unique<Tokenizer>(vocab);
    if (mode == Mode::VocabOnly) return model;

    const Architecture& arch = find_architecture(f);
    model->hparams_ = read_hparams(f, arch);
    model->hparams_.n_vocab = int64_t(vocab->size());
    if (const std::string key = std::string(arch.name) + ".vocab_size"; f.has(key)) {
        if (f.get_count(key) != vocab->size()) {
            fail("{}: {} = {} but the vocabulary has {} tokens", path, key, f.get_count(key), vocab->size());
        }
    }
    model->weights_ = find_weights(f, model->hparams_, mode == Mode::Full);
    model->full_ = mode == Mode::Full;
    if (repack) model->repack();
    return model;
} catch (const Error& e) {
    throw Error(one_line(e.what()));
}

int Model::repack() {
    if (!full_ || repacked_) return 0;
    repacked_ = repack_weights(weights_);
    return repacked_ ? repacked_->weights() : 0;
}

}  // namespace qllm
