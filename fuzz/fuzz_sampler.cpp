// Fuzz target: the sampler chain on arbitrary logits (NaN, +-Inf, all equal, huge) and arbitrary
// parameters. sample() must return an id in range or throw qllm::Error; each stage on its own
// must keep the candidates it is given (or a prefix of them) and never read out of bounds.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "fuzz_support.h"
#include "qllm/error.h"
#include "sample/sampler.h"

namespace {

using qllm::Candidate;
using qllm::Sampler;
using qllm::TokenId;

// One byte per value: a spread of ordinary logits, or one of the values that break arithmetic.
float compact_value(uint8_t b) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    static constexpr float kSpecial[12] = {std::numeric_limits<float>::quiet_NaN(), inf, -inf, FLT_MAX, -FLT_MAX,
                                           0.0f, -0.0f, 1e-30f, 1e30f, -1e30f, FLT_MIN, 1.0f};
    if (b >= 0xF4) return kSpecial[b - 0xF4];
    return float(int(b) - 122) * 0.25f;
}

float take_float(qllm::fuzz::Input& in, bool compact) { return compact ? compact_value(in.byte()) : in.take<float>(); }

qllm::SamplerParams take_params(qllm::fuzz::Input& in, bool compact) {
    qllm::SamplerParams p;
    p.temperature = take_float(in, compact);
    p.top_k = int8_t(in.byte());
    p.top_p = take_float(in, compact);
    p.min_p = take_float(in, compact);
    p.repeat_penalty = take_float(in, compact);
    p.frequency_penalty = take_float(in, compact);
    p.presence_penalty = take_float(in, compact);
    p.repeat_last_n = int8_t(in.byte());
    p.seed = in.byte();
    return p;
}

bool all_from(const std::vector<Candidate>& cands, size_t n_vocab) {
    for (const Candidate& c : cands) {
        if (c.id < 0 || size_t(c.id) >= n_vocab) return false;
    }
    return true;
}

// Each public stage on candidates that may hold non-finite logits (they are not screened here,
// unlike in sample()): nothing may crash, grow the list or invent ids.
void run_stages(const std::vector<float>& logits, const std::vector<TokenId>& recent, const qllm::SamplerParams& p) {
    std::vector<Candidate> cands;
    for (size_t i = 0; i < logits.size(); ++i) cands.push_back({TokenId(i), logits[i], 0.0f});
    const size_t n = cands.size();
    Sampler::apply_penalties(cands, recent, p.repeat_penalty, p.frequency_penalty, p.presence_penalty);
    Sampler::top_k(cands, p.top_k);
    Sampler::top_p(cands, p.top_p);
    Sampler::min_p(cands, p.min_p);
    Sampler::temperature(cands, p.temperature);
    Sampler::softmax(cands);
    QLLM_FUZZ_CHECK(cands.size() <= n && all_from(cands, n));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    qllm::fuzz::Input in(data, size);
    const uint8_t options = in.byte();
    const bool compact = options & 1;
    const qllm::SamplerParams params = take_params(in, compact);
    const size_t n_recent = in.byte() % 16;
    const size_t n_vocab = 1 + in.byte();
    std::vector<TokenId> recent;
    for (size_t i = 0; i < n_recent; ++i) recent.push_back(TokenId(in.byte() % (n_vocab + 2)) - 1);

    std::vector<float> logits(n_vocab);
    if (options & 2) {
        logits.assign(n_vocab, take_float(in, compact));  // all equal
    } else {
        for (float& l : logits) l = take_float(in, compact);
    }

    run_stages(logits, recent, params);

    Sampler sampler(params, 64);
    for (TokenId id : recent) sampler.accept(id);
    for (int step = 0; step < 2; ++step) {
        try {
            const TokenId id = sampler.sample(logits);
            QLLM_FUZZ_CHECK(id >= 0 && size_t(id) < n_vocab);
            sampler.accept(id);
        } catch (const qllm::Error&) {
            // Non-finite logits or parameters are rejected, not sampled from.
        }
    }
    return 0;
}
