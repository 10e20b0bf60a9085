// The sampler chain, in llama.cpp's default order:
// penalties (repeat/frequency/presence over the last N tokens) -> top-k -> top-p -> min-p
// -> temperature -> seeded draw. Temperature <= 0 means greedy (argmax).
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace qllm {

struct SamplerParams {
    float temperature = 0.8f;
    int32_t top_k = 40;          // <= 0: off
    float top_p = 0.95f;         // >= 1: off
    float min_p = 0.05f;         // <= 0: off
    float repeat_penalty = 1.0f; // 1: off
    float frequency_penalty = 0.0f;
    float presence_penalty = 0.0f;
    int32_t repeat_last_n = 64;  // 0: off, -1: whole context
    uint32_t seed = 0xFFFFFFFFu; // 0xFFFFFFFF: pick a random seed
};

// A candidate token with its logit and (after softmax) probability.
struct Candidate {
    TokenId id;
    float logit;
    float p;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& params, int32_t context_size = 4096);

    // Picks the next token from one position's logits (n_vocab entries). Non-finite logits
    // are a qllm::Error. Does not record the token: call accept() with what was emitted.
    TokenId sample(std::span<const float> logits);
    void accept(TokenId token);  // remembered for the penalties
    void reset();
    uint32_t seed() const { return seed_; }

    // The stages, exposed for tests. Each works on `cands` in place.
    static void apply_penalties(std::vector<Candidate>& cands, std::span<const TokenId> recent,
                                float repeat, float frequency, float presence);
    static void softmax(std::vector<Candidate>& cands);  // sorts by logit, descending; fills p
    static void top_k(std::vector<Candidate>& cands, int32_t k);
    static void top_p(std::vector<Candidate>& cands, float p, size_t min_keep = 1);
    static void min_p(std::vector<Candidate>& cands, float p, size_t min_keep = 1);
    static void temperature(std::vector<Candidate>& cands, float t);

private:
    SamplerParams params_;
    int32_t history_capacity_;
    uint32_t seed_;
    std::mt19937 rng_;
    std::deque<TokenId> recent_;
};

}  // namespace qllm
