// The forward pass, batch by batch, over the f16 KV cache: one layer function per family
// (llama, phi3, gemma), each reading like the model it implements.
#include "model/context.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "graph/ops.h"
#include "qllm/error.h"
#include "qllm/half.h"

namespace qllm {
namespace {
constexpr int64_t kBatch = 512;  // tokens per forward pass (like llama.cpp's n_ubatch)
}

Context::Context(const Model& model, int64_t n_ctx) : model_(model), hp_(model.hparams()), n_ctx_(n_ctx) {
    if (n_ctx <= 0) fail("context size must be positive (got {})", n_ctx);
    const size_t cache = size_t(hp_.n_layer) * size_t(n_ctx) * size_t(hp_.kv_dim());
    k_cache_.assign(cache, 0);
    v_cache_.assign(cache, 0);
}

std::span<const float> Context::eval(std::span<const TokenId> tokens, bool all_logits) {
    if (tokens.empty()) fail("nothing to evaluate");
    if (n_past_ + int64_t(tokens.size()) > n_ctx_) {
        fail("context is full: {} tokens in cache + {} new exceed the context size {} (use -c to enlarge it)", n_past_,
             tokens.size(), n_ctx_);
    }
    const int64_t n_vocab = hp_.n_vocab;
    logits_.resize(size_t(all_logits ? tokens.size() : 1) * size_t(n_vocab));
    for (size_t start = 0; start < tokens.size(); start += kBatch) {
        const auto batch = tokens.subspan(start, std::min<size_t>(kBatch, tokens.size() - start));
        const bool last = start + batch.size() == tokens.size();
        if (all_logits) {
            forward_batch(batch, true, logits_.data() + start * size_t(n_vocab));
        } else {
            forward_batch(batch, false, last ? logits_.data() : nullptr);
        }
    }
    return logits_;
}

// x (n, n_embd) = embeddings; every layer; then logits for the rows asked for.
void Context::forward_batch(std::span<const TokenId> tokens, bool all_logits, float* logits) {
    const int64_t n = int64_t(tokens.size());
    const int64_t n_embd = hp_.n_embd;
    const Weights& w = model_.weights();
    x_.resize(size_t(n * n_embd));
    xb_.resize(x_.size());
    xb2_.resize(x_.size());
    q_.resize(size_t(n * hp_.q_dim()));
    att_.resize(q_.size());
    k_.resize(size_t(n * hp_.kv_dim()));
    v_.resize(k_.size());
    const int64_t ffn_width = hp_.block == BlockKind::Phi3 ? 2 * hp_.n_ff : hp_.n_ff;
    gate_.resize(size_t(n * ffn_width));
    up_.resize(size_t(n * hp_.n_ff));

    ops::get_rows(w.token_embd, tokens, x_.data());
    if (hp_.embed_scale != 1.0f) ops::scale(x_.data(), hp_.embed_scale, n * n_embd);
    if (check_numerics_) check_finite(x_, n_embd, n_past_, "the token embeddings");
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
        switch (hp_.block) {
            case BlockKind::Llama: llama_layer(il, n); break;
            case BlockKind::Phi3: phi3_layer(il, n); break;
            case BlockKind::Gemma: gemma_layer(il, n); break;
        }
        if (check_numerics_) check_finite(x_, n_embd, n_past_, fmt::format("layer {} output", il));
    }
    n_past_ += n;
    if (!logits) return;

    // Final norm and output projection, for all rows or only the last.
    const int64_t first = all_logits ? 0 : n - 1;
    const int64_t rows = n - first;
    ops::rms_norm(x_.data() + first * n_embd, w.output_norm, xb_.data(), rows, n_embd, hp_.rms_eps);
    matmul(w.output, xb_.data(), rows, logits);
    if (hp_.final_softcap > 0.0f) ops::softcap(logits, hp_.final_softcap, rows * hp_.n_vocab);
    if (check_numerics_) {
        check_finite({logits, size_t(rows * hp_.n_vocab)}, hp_.n_vocab, n_past_ - n + first, "the output logits");
    }
}

void Context::check_finite(std::span<const float> rows, int64_t width, int64_t first_pos, const std::string& what) const {
    for (size_t i = 0; i < rows.size(); ++i) {
        if (!std::isfinite(rows[i])) {
            fail("{}: non-finite value in {} (token {}): {}", model_.file().path(), what, first_pos + int64_t(i) / width,
                 rows[i]);
        }
    }
}

void Context::matmul(const TensorView& w, const float* x, int64_t n_tokens, float* out) {
    if (matmul_observer_) matmul_observer_(w, x, n_tokens);
    ops::matmul(w, x, n_tokens, out, act_scratch_);
}

void Context::matmul(std::initializer_list<ops::Product> products, const float* x, int64_t n_tokens) {
    if (matmul_observer_) {
        for (const ops::Product& p : products) matmul_observer_(*p.w, x, n_tokens);
    }
    ops::matmul(std::span(products.begin(), products.size()), x, n_tokens, act_scratch_);
}

// q_, k_, v_ (n tokens) -> att_: per-head norms, RoPE, into the cache, then attention.
void Context::attend(int64_t il, int64_t n) {
    const LayerWeights& l = model_.weights().layers[size_t(il)];
    const int64_t q_dim = hp_.q_dim(), kv_dim = hp_.kv_dim();
    if (l.q_norm) {
        ops::rms_norm(q_.data(), l.q_norm, q_.data(), n * hp_.n_head, hp_.head_dim, hp_.rms_eps);
        ops::rms_norm(k_.data(), l.k_norm, k_.data(), n * hp_.n_head_kv, hp_.head_dim, hp_.rms_eps);
    }
    const bool sliding = hp_.is_sliding(il);
    const ops::RopeParams rope{hp_.n_rot, sliding ? hp_.rope_base_swa : hp_.rope_base, hp_.rope_freq_scale,
                               hp_.rope_style,
                               model_.weights().rope_freqs ? reinterpret_cast<const float*>(model_.weights().rope_freqs.data)
                                                           : nullptr};
    uint16_t* k_cache = k_cache_.data() + size_t(il) * size_t(n_ctx_ * kv_dim);
    uint16_t* v_cache = v_cache_.data() + size_t(il) * size_t(n_ctx_ * kv_dim);
    for (int64_t t = 0; t < n; ++t) {
        const int64_t pos = n_past_ + t;
        ops::rope(q_.data() + t * q_dim, hp_.n_head, hp_.head_dim, pos, rope);
        ops::rope(k_.data() + t * kv_dim, hp_.n_head_kv, hp_.head_dim, pos, rope);
        for (int64_t i = 0; i < kv_dim; ++i) {
            k_cache[pos * kv_dim + i] = f32_to_f16(k_[t * kv_dim + i]);
            v_cache[pos * kv_dim + i] = f32_to_f16(v_[t * kv_dim + i]);
        }
    }
    if (hp_.attn_q_scale != 1.0f) ops::scale(q_.data(), hp_.attn_q_scale, n * q_dim);
    const ops::AttentionParams params{hp_.n_head, hp_.n_head_kv, hp_.head_dim, hp_.attn_kq_scale, hp_.attn_softcap,
                                      sliding ? hp_.sliding_window : 0};
    ops::attention(q_.data(), k_cache, v_cache, n_past_, n, params, att_.data());
}

void Context::llama_layer(int64_t il, int64_t n) {
    const LayerWeights& l = model_.weights().layers[size_t(il)];
    const int64_t n_embd = hp_.n_embd, n_ff = hp_.n_ff;

    // Attention block: xb = norm(x); q, k, v = xb @ Wq, Wk, Wv (+ biases); attend; x += att @ Wo
    ops::rms_norm(x_.data(), l.attn_norm, xb_.data(), n, n_embd, hp_.rms_eps);
    matmul({{&l.wq, q_.data()}, {&l.wk, k_.data()}, {&l.wv, v_.data()}}, xb_.data(), n);
    if (l.bq) {
        ops::add_rows(q_.data(), l.bq, n);
        ops::add_rows(k_.data(), l.bk, n);
        ops::add_rows(v_.data(), l.bv, n);
    }
    attend(il, n);
    matmul(l.wo, att_.data(), n, xb2_.data());
    ops::add(x_.data(), xb2_.data(), n * n_embd);

    // Feed-forward block: xb = norm(x); x += (silu(xb @ Wgate) * (xb @ Wup)) @ Wdown
    ops::rms_norm(x_.data(), l.ffn_norm, xb_.data(), n, n_embd, hp_.rms_eps);
    matmul({{&l.ffn_gate, gate_.data()}, {&l.ffn_up, up_.data()}}, xb_.data(), n);
    ops::silu_mul(gate_.data(), up_.data(), n * n_ff);
    matmul(l.ffn_down, gate_.data(), n, xb2_.data());
    ops::add(x_.data(), xb2_.data(), n * n_embd);
}

void Context::phi3_layer(int64_t il, int64_t n) {
    const LayerWeights& l = model_.weights().layers[size_t(il)];
    const int64_t n_embd = hp_.n_embd, n_ff = hp_.n_ff, q_dim = hp_.q_dim(), kv_dim = hp_.kv_dim();

    // Attention block: qkv = norm(x) @ Wqkv, split into q | k | v; attend; x += att @ Wo
    ops::rms_norm(x_.data(), l.attn_norm, xb_.data(), n, n_embd, hp_.rms_eps);
    std::vector<float>& qkv = gate_;  // free until the FFN
    qkv.resize(size_t(n * (q_dim + 2 * kv_dim)));
    matmul(l.wqkv, xb_.data(), n, qkv.data());
    for (int64_t t = 0; t < n; ++t) {
        const float* row = qkv.data() + t * (q_dim + 2 * kv_dim);
        std::copy_n(row, q_dim, q_.data() + t * q_dim);
        std::copy_n(row + q_dim, kv_dim, k_.data() + t * kv_dim);
        std::copy_n(row + q_dim + kv_dim, kv_dim, v_.data() + t * kv_dim);
    }
    attend(il, n);
    matmul(l.wo, att_.data(), n, xb2_.data());
    ops::add(x_.data(), xb2_.data(), n * n_embd);

    // Feed-forward block: [gate | up] = norm(x) @ Wup; x += (silu(gate) * up) @ Wdown
    ops::rms_norm(x_.data(), l.ffn_norm, xb_.data(), n, n_embd, hp_.rms_eps);
    gate_.resize(size_t(n * 2 * n_ff));
    matmul(l.ffn_up, xb_.data(), n, gate_.data());
    for (int64_t t = 0; t < n; ++t) {
        float* row = gate_.data() + t * 2 * n_ff;
        ops::silu_mul(row, row + n_ff, n_ff);
        std::copy_n(row, n_ff, up_.data() + t * n_ff);
    }
    matmul(l.ffn_down, up_.data(), n, xb2_.data());
    ops::add(x_.data(), xb2_.data(), n * n_embd);
}

void Context::gemma_layer(int64_t il, int64_t n) {
    const LayerWeights& l = model_.weights().layers[size_t(il)];
    const int64_t n_embd = hp_.n_embd, n_ff = hp_.n_ff;

    // Attention block: x += norm(attend(norm(x) @ Wq, Wk, Wv) @ Wo)
    ops::rms_norm(x_.data(), l.attn_norm, xb_.data(), n, n_embd, hp_.rms_eps);
    matmul({{&l.wq, q_.data()}, {&l.wk, k_.data()}, {&l.wv, v_.data()}}, xb_.data(), n);
    attend(il, n);
    matmul(l.wo, att_.data(), n, xb2_.data());
    ops::rms_norm(xb2_.data(), l.post_attn_norm, xb2_.data(), n, n_embd, hp_.rms_eps);
    ops::add(x_.data(), xb2_.data(), n * n_embd);

    // Feed-forward block: x += norm((gelu(norm(x) @ Wgate) * (norm(x) @ Wup)) @ Wdown)
    ops::rms_norm(x_.data(), l.ffn_norm, xb_.data(), n, n_embd, hp_.rms_eps);
    matmul({{&l.ffn_gate, gate_.data()}, {&l.ffn_up, up_.data()}}, xb_.data(), n);
    ops::gelu_mul(gate_.data(), up_.data(), n * n_ff);
    matmul(l.ffn_down, gate_.data(), n, xb2_.data());
    ops::rms_norm(xb2_.data(), l.post_ffn_norm, xb2_.data(), n, n_embd, hp_.rms_eps);
    ops::add(x_.data(), xb2_.data(), n * n_embd);
}

}  // namespace qllm
