// Context: the state of one sequence being evaluated: the f16 KV cache, scratch buffers,
// and the forward pass that fills them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <vector>

#include "graph/ops.h"
#include "model/model.h"

namespace qllm {

class Context {
public:
    Context(const Model& model, int64_t n_ctx);

    // Evaluates `tokens` at positions n_past().. and appends them to the KV cache.
    // Returns the logits of every token when all_logits, else of the last one
    // (n_vocab floats per token). Throws if the tokens do not fit in the context.
    std::span<const float> eval(std::span<const TokenId> tokens, bool all_logits);

    int64_t n_past() const { return n_past_; }
    int64_t n_ctx() const { return n_ctx_; }
    void reset() { n_past_ = 0; }
    // Forgets every cached position from n on (keeps the first n), so a conversation that shares
    // a prefix with what was evaluated before only evaluates the rest.
    void truncate(int64_t n) { n_past_ = std::min(n_past_, std::max<int64_t>(n, 0)); }
    size_t kv_cache_bytes() const { return (k_cache_.size() + v_cache_.size()) * sizeof(uint16_t); }
    // With checks on, eval() fails at the first NaN or Inf in the embeddings, a layer's output or
    // the logits, naming the layer and the token position: how to find a corrupt weight.
    void set_check_numerics(bool on) { check_numerics_ = on; }

    // Called before every weight matmul with the weight and its input x (n_tokens rows of
    // w.ne[0] floats): how `qllm imatrix` sees the activations. An empty function turns it off.
    using MatmulObserver = std::function<void(const TensorView& w, const float* x, int64_t n_tokens)>;
    void set_matmul_observer(MatmulObserver observer) { matmul_observer_ = std::move(observer); }

private:
    void forward_batch(std::span<const TokenId> tokens, bool all_logits, float* logits);
    void attend(int64_t il, int64_t n_tokens);
    void llama_layer(int64_t il, int64_t n_tokens);
    void phi3_layer(int64_t il, int64_t n_tokens);
    void gemma_layer(int64_t il, int64_t n_tokens);
    // Fails on a non-finite value in `rows` (one per token from position `first_pos`); `what`
    // names the stage in the error.
    void check_finite(std::span<const float> rows, int64_t width, int64_t first_pos, const std::string& what) const;
    // out (n_tokens, w.ne[1]) = x @ W^T, shown to the observer first.
    void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* out);
    // Several products of the same x at once (see ops::matmul), each shown to the observer.
    void matmul(std::initializer_list<ops::Product> products, const float* x, int64_t n_tokens);

    const Model& model_;
    const Hparams& hp_;
    int64_t n_ctx_;
    int64_t n_past_ = 0;
    bool check_numerics_ = false;

    std::vector<uint16_t> k_cache_, v_cache_;  // (n_layer, n_ctx, kv_dim), f16 bits
    // Activations for one batch, one row per token.
    std::vector<float> x_, xb_, xb2_, q_, k_, v_, att_, gate_, up_;
    std::vector<uint8_t> act_scratch_;
    std::vector<float> logits_;
    MatmulObserver matmul_observer_;
};

}  // namespace qllm
