// The sampler chain with llama.cpp's semantics (llama-sampling.cpp): each stage below mirrors
// the llama_sampler of the same name, so that a seed gives the same draws as the reference.
#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "qllm/error.h"

namespace qllm {
namespace {

bool by_logit_descending(const Candidate& a, const Candidate& b) { return a.logit > b.logit; }

bool is_sorted_descending(const std::vector<Candidate>& cands) {
    return std::is_sorted(cands.begin(), cands.end(), by_logit_descending);
}

uint32_t resolve_seed(uint32_t requested) {
    if (requested != 0xFFFFFFFFu) return requested;
    std::random_device device;
    return device();
}

}  // namespace

Sampler::Sampler(const SamplerParams& params, int32_t context_size)
    : params_(params),
      // repeat_last_n = -1 means "the whole context", as in llama.cpp's common parameters.
      history_capacity_(params.repeat_last_n < 0 ? std::max<int32_t>(context_size, 0)
                                                 : params.repeat_last_n),
      seed_(resolve_seed(params.seed)),
      rng_(seed_) {}

void Sampler::accept(TokenId token) {
    if (history_capacity_ <= 0) return;
    recent_.push_back(token);
    while (recent_.size() > static_cast<size_t>(history_capacity_)) recent_.pop_front();
}

// Restarts the same random sequence: a random seed is drawn once, so seed() stays truthful.
void Sampler::reset() {
    recent_.clear();
    rng_.seed(seed_);
}

void Sampler::apply_penalties(std::vector<Candidate>& cands, std::span<const TokenId> recent,
                              float repeat, float frequency, float presence) {
    if (recent.empty() || (repeat == 1.0f && frequency == 0.0f && presence == 0.0f)) return;
    std::unordered_map<TokenId, int> counts;
    for (TokenId id : recent) ++counts[id];
    for (Candidate& c : cands) {
        const auto it = counts.find(c.id);
        if (it == counts.end()) continue;
        // Dividing a negative logit would make the token more likely, so it is multiplied.
        if (c.logit <= 0.0f) {
            c.logit *= repeat;
        } else {
            c.logit /= repeat;
        }
        c.logit -= static_cast<float>(it->second) * frequency + presence;
    }
}

void Sampler::softmax(std::vector<Candidate>& cands) {
    if (cands.empty()) return;
    // Already-sorted input keeps its order, like llama.cpp's `sorted` flag (ties stay put).
    if (!is_sorted_descending(cands)) std::sort(cands.begin(), cands.end(), by_logit_descending);
    const float max_logit = cands.front().logit;
    float sum = 0.0f;
    for (Candidate& c : cands) {
        c.p = std::exp(c.logit - max_logit);
        sum += c.p;
    }
    for (Candidate& c : cands) c.p /= sum;
}

void Sampler::top_k(std::vector<Candidate>& cands, int32_t k) {
    if (k <= 0 || cands.empty()) return;
    const size_t keep = std::min(static_cast<size_t>(k), cands.size());
    if (!is_sorted_descending(cands)) {
        std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(keep),
                          cands.end(), by_logit_descending);
    }
    cands.resize(keep);
}

void Sampler::top_p(std::vector<Candidate>& cands, float p, size_t min_keep) {
    if (p >= 1.0f || cands.empty()) return;
    softmax(cands);
    // Keep the smallest prefix whose probability mass reaches p (and at least min_keep).
    float cumulative = 0.0f;
    for (size_t i = 0; i < cands.size(); ++i) {
        cumulative += cands[i].p;
        if (cumulative >= p && i + 1 >= min_keep) {
            cands.resize(i + 1);
            return;
        }
    }
}

void Sampler::min_p(std::vector<Candidate>& cands, float p, size_t min_keep) {
    if (p <= 0.0f || cands.empty()) return;
    // p_i >= p * p_max  <=>  logit_i >= max_logit + log(p): no softmax needed.
    float max_logit = -std::numeric_limits<float>::max();
    for (const Candidate& c : cands) max_logit = std::max(max_logit, c.logit);
    const float min_logit = max_logit + std::log(p);

    std::vector<Candidate> kept;
    for (const Candidate& c : cands) {
        if (c.logit >= min_logit) kept.push_back(c);
    }
    if (kept.size() >= min_keep) {
        cands.swap(kept);
        return;
    }
    // Too few pass: keep the min_keep most likely instead.
    if (!is_sorted_descending(cands)) std::sort(cands.begin(), cands.end(), by_logit_descending);
    cands.resize(std::min(min_keep, cands.size()));
}

void Sampler::temperature(std::vector<Candidate>& cands, float t) {
    if (cands.empty()) return;
    if (t <= 0.0f) {
        // Zero temperature leaves only the most likely token (the lowest id on ties).
        auto best = cands.begin();
        for (auto it = cands.begin(); it != cands.end(); ++it) {
            if (it->logit > best->logit || (it->logit == best->logit && it->id < best->id)) best = it;
        }
        const Candidate winner = *best;
        cands.assign(1, winner);
        return;
    }
    for (Candidate& c : cands) c.logit /= t;
}

TokenId Sampler::sample(std::span<const float> logits) {
    if (logits.empty()) fail("cannot sample from an empty set of logits");
    std::vector<Candidate> cands;
    cands.reserve(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) {
        if (!std::isfinite(logits[i])) fail("logits contain NaN/Inf at token {}", i);
        cands.push_back({static_cast<TokenId>(i), logits[i], 0.0f});
    }

    const std::vector<TokenId> recent(recent_.begin(), recent_.end());
    apply_penalties(cands, recent, params_.repeat_penalty, params_.frequency_penalty,
                    params_.presence_penalty);

    if (params_.temperature <= 0.0f) {
        // Greedy: truncation never removes the argmax, so it is the only stage that matters.
        temperature(cands, 0.0f);
        return cands.front().id;
    }

    top_k(cands, params_.top_k);
    top_p(cands, params_.top_p);
    min_p(cands, params_.min_p);
    temperature(cands, params_.temperature);
    softmax(cands);

    // The same distribution object and engine as llama.cpp's dist sampler.
    std::vector<double> weights;
    weights.reserve(cands.size());
    for (const Candidate& c : cands) weights.push_back(c.p);
    std::discrete_distribution<int> draw(weights.begin(), weights.end());
    return cands[static_cast<size_t>(draw(rng_))].id;
}

}  // namespace qllm
