// Model: hyperparameters, vocabulary and weights of a GGUF model, as plain views into the mmap.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/types.h"
#include "tokenizer/tokenizer.h"

namespace qllm {

// A weight tensor: its type, shape (innermost first) and bytes in the mapping. No ownership.
struct TensorView {
    const char* name = nullptr;
    TensorType type = TensorType::F32;
    int64_t ne[4] = {1, 1, 1, 1};
    const uint8_t* data = nullptr;

    explicit operator bool() const { return data != nullptr; }
    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
    size_t row_bytes() const { return traits(type).row_size(ne[0]); }
    const uint8_t* row(int64_t i) const { return data + size_t(i) * row_bytes(); }
};

inline constexpr int64_t kMaxHeadDim = 1024;

enum class RopeStyle { Norm, Neox };  // adjacent pairs (llama) or halves (qwen2, phi3, gemma)

// The layer function an architecture uses (src/model/context.cpp).
enum class BlockKind {
    Llama,  // llama, mistral, qwen2 (q/k/v biases), qwen3 (q/k norms)
    Phi3,   // fused q/k/v and fused gate/up projections
    Gemma,  // gemma2/3: scaled embeddings, GELU, post-attention and post-FFN norms
};

struct Hparams {
    std::string arch;
    int64_t n_vocab = 0;
    int64_t n_ctx_train = 0;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_ff = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;   // per-head size of q and k
    int64_t n_rot = 0;      // rotary dimensions per head (<= head_dim)
    float rope_base = 10000.0f;
    float rope_freq_scale = 1.0f;
    float rms_eps = 1e-5f;
    RopeStyle rope_style = RopeStyle::Norm;
    BlockKind block = BlockKind::Llama;
    uint32_t file_type = 0xFFFFFFFFu;  // general.file_type, or guessed

    float embed_scale = 1.0f;       // token embeddings are multiplied by this (gemma: sqrt(n_embd))
    float attn_q_scale = 1.0f;      // q is multiplied by this before attention...
    float attn_kq_scale = 1.0f;     // ...and the scores by this (llama: 1/sqrt(head_dim))
    float attn_softcap = 0.0f;      // scores -> cap * tanh(scores / cap) when > 0 (gemma2)
    float final_softcap = 0.0f;     // the same on the logits (gemma2)
    int64_t sliding_window = 0;     // keys at most this far back on sliding layers; 0: none
    int64_t swa_pattern = 0;        // layer il slides if il % pattern < pattern - 1; 0: none
    float rope_base_swa = 10000.0f; // rope base of the sliding layers

    bool is_sliding(int64_t il) const {
        return sliding_window > 0 && swa_pattern > 0 && il % swa_pattern < swa_pattern - 1;
    }

    int64_t q_dim() const { return n_head * head_dim; }
    int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// A layer's weights; optional ones are empty views when the architecture has none.
struct LayerWeights {
    TensorView attn_norm;       // (n_embd)
    TensorView wq;              // (n_embd) -> (n_head * head_dim)
    TensorView wk;              // (n_embd) -> (n_head_kv * head_dim)
    TensorView wv;              // (n_embd) -> (n_head_kv * head_dim)
    TensorView wqkv;            // phi3: (n_embd) -> (q_dim + 2 kv_dim), instead of wq, wk, wv
    TensorView bq, bk, bv;      // qwen2: biases of q, k, v
    TensorView q_norm, k_norm;  // qwen3, gemma3: RMSNorm of each head of q and k, (head_dim)
    TensorView wo;              // (n_head * head_dim) -> (n_embd)
    TensorView post_attn_norm;  // gemma: norm of the attention output, (n_embd)
    TensorView ffn_norm;        // (n_embd)
    TensorView ffn_gate;        // (n_embd) -> (n_ff); phi3 has it fused into ffn_up
    TensorView ffn_up;          // (n_embd) -> (n_ff), phi3: (n_embd) -> (2 n_ff), gate first
    TensorView ffn_down;        // (n_ff) -> (n_embd)
    TensorView post_ffn_norm;   // gemma: norm of the FFN output, (n_embd)
};

struct Weights {
    TensorView token_embd;   // (n_embd) per token, n_vocab rows
    TensorView output_norm;  // (n_embd)
    TensorView output;       // (n_embd) -> (n_vocab); token_embd when tied
    TensorView rope_freqs;   // llama 3.1: per rotary pair, theta is divided by it, (n_rot / 2)
    std::vector<LayerWeights> layers;
};

class RepackedWeights;

class Model {
public:
    enum class Mode {
        Full,       // everything validated, every weight computable by this build
        Inspect,    // hyperparameters and tensor shapes validated; kernels not required
        VocabOnly,  // only the tokenizer (vocabulary-only files have no tensors)
    };
    // Opens, validates and maps the model. Tensor data pages are not touched, except in Full mode
    // with `repack` those of the weights this build repacks (model/repack.h).
    static std::unique_ptr<Model> load(const std::string& path, Mode mode = Mode::Full, bool repack = true);
    ~Model();

    // Repacks the weights now if load did not (Full mode only); the number of weights repacked.
    // Not while a Context evaluates: the weights' views change.
    int repack();

    const gguf::File& file() const { return *file_; }
    const Hparams& hparams() const { return hparams_; }
    const Weights& weights() const { return weights_; }
    const Tokenizer& tokenizer() const { return *tokenizer_; }
    const Vocab& vocab() const { return tokenizer_->vocab(); }

private:
    std::unique_ptr<gguf::File> file_;
    Hparams hparams_;
    Weights weights_;
    std::unique_ptr<Tokenizer> tokenizer_;
    std::unique_ptr<RepackedWeights> repacked_;  // see model/repack.h
    bool full_ = false;                          // loaded in Full mode
};

// llama.cpp's description of general.file_type ("Q4_K - Medium"), and a guess from tensor types.
std::string file_type_name(uint32_t file_type);
uint32_t guess_file_type(const gguf::File& file);

}  // namespace qllm
