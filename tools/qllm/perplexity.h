// llama-perplexity's method, shared by `qllm perplexity` and `qllm imatrix` (tools/qllm/perplexity.cpp).
// The text's tokens (BOS first when the model adds one) are cut into chunks of n_ctx tokens; the
// rest is dropped. Each chunk is evaluated from an empty cache with its first token replaced by
// BOS, and only its second half is scored, so every scored token has n_ctx/2 tokens of context.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"

namespace qllm::cli {

class TextChunks {
public:
    // Throws when the text holds less than one chunk. max_chunks < 0: every whole chunk.
    TextChunks(const Model& model, const std::string& text, const std::string& source, int64_t n_ctx,
               int64_t max_chunks);

    int64_t n_ctx() const { return n_ctx_; }
    int64_t size() const { return n_chunks_; }
    size_t n_text_tokens() const { return tokens_.size(); }
    std::vector<TokenId> chunk(int64_t i) const;

private:
    std::vector<TokenId> tokens_;
    int64_t n_ctx_ = 0;
    int64_t n_chunks_ = 0;
    TokenId bos_ = -1;  // -1: the model adds none
};

// Running sums of the negative log-likelihood of the scored tokens.
class NllSum {
public:
    // logits: n_vocab floats for every position of `chunk`.
    void add_chunk(std::span<const float> logits, std::span<const TokenId> chunk, int64_t n_vocab);
    int64_t count() const { return count_; }
    double ppl() const;
    double ppl_error() const;  // llama-perplexity's "+/-": the standard error of the mean NLL, times PPL

private:
    double nll_ = 0.0, nll2_ = 0.0;
    int64_t count_ = 0;
};

}  // namespace qllm::cli
