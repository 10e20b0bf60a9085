// Sampler tests: every stage on small hand-made distributions whose expected results are
// computed by hand in the comments, greedy decoding, seeding, and bad logits.
#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "qllm/error.h"
#include "sample/sampler.h"

namespace qllm {
namespace {

std::vector<Candidate> make_candidates(const std::vector<float>& logits) {
    std::vector<Candidate> cands;
    for (size_t i = 0; i < logits.size(); ++i) cands.push_back({static_cast<TokenId>(i), logits[i], 0.0f});
    return cands;
}

std::vector<TokenId> ids_of(const std::vector<Candidate>& cands) {
    std::vector<TokenId> ids;
    for (const Candidate& c : cands) ids.push_back(c.id);
    return ids;
}

float logit_of(const std::vector<Candidate>& cands, TokenId id) {
    for (const Candidate& c : cands) {
        if (c.id == id) return c.logit;
    }
    ADD_FAILURE() << "token " << id << " not among the candidates";
    return 0.0f;
}

SamplerParams greedy_params() {
    SamplerParams p;
    p.temperature = 0.0f;
    return p;
}

TEST(SamplerStages, SoftmaxSortsAndNormalises) {
    // logits ln(1), ln(2), ln(3), ln(4): probabilities 1/10, 2/10, 3/10, 4/10.
    auto cands = make_candidates({std::log(1.0f), std::log(2.0f), std::log(3.0f), std::log(4.0f)});
    Sampler::softmax(cands);
    EXPECT_EQ(ids_of(cands), (std::vector<TokenId>{3, 2, 1, 0}));
    EXPECT_NEAR(cands[0].p, 0.4f, 1e-6f);
    EXPECT_NEAR(cands[1].p, 0.3f, 1e-6f);
    EXPECT_NEAR(cands[2].p, 0.2f, 1e-6f);
    EXPECT_NEAR(cands[3].p, 0.1f, 1e-6f);
}

TEST(SamplerStages, TopKKeepsTheKLargestLogits) {
    auto cands = make_candidates({0.5f, 3.0f, -1.0f, 2.0f, 1.0f});
    Sampler::top_k(cands, 3);
    EXPECT_EQ(ids_of(cands), (std::vector<TokenId>{1, 3, 4}));

    auto all = make_candidates({0.5f, 3.0f, -1.0f});
    Sampler::top_k(all, 10);  // k larger than the set keeps everything
    EXPECT_EQ(all.size(), 3u);
    Sampler::top_k(all, 0);  // off
    EXPECT_EQ(all.size(), 3u);
}

TEST(SamplerStages, TopPKeepsSmallestPrefixReachingP) {
    // p = 0.4, 0.3, 0.2, 0.1. Cumulative 0.4, 0.7, 0.9, 1.0.
    const std::vector<float> logits = {std::log(1.0f), std::log(2.0f), std::log(3.0f), std::log(4.0f)};
    auto cands = make_candidates(logits);
    Sampler::top_p(cands, 0.6f);  // 0.4 < 0.6 <= 0.7: two tokens
    EXPECT_EQ(ids_of(cands), (std::vector<TokenId>{3, 2}));

    cands = make_candidates(logits);
    Sampler::top_p(cands, 0.35f);  // the first token alone reaches it
    EXPECT_EQ(ids_of(cands), (std::vector<TokenId>{3}));

    cands = make_candidates(logits);
    Sampler::top_p(cands, 0.35f, 3);  // min_keep wins over p
    EXPECT_EQ(ids_of(cands), (std::vector<TokenId>{3, 2, 1}));

    cands = make_candidates(logits);
    Sampler::top_p(cands, 1.0f);  // off: nothing removed
    EXPECT_EQ(cands.size(), 4u);
}

TEST(SamplerStages, MinPIsRelativeToTheMostLikelyToken) {
    // p = 0.4, 0.3, 0.2, 0.1; threshold 0.5 * 0.4 = 0.2 keeps 0.4, 0.3 and 0.2.
    const std::vector<float> logits = {std::log(1.0f), std::log(2.0f), std::log(3.0f), std::log(4.0f)};
    auto cands = make_candidates(logits);
    Sampler::min_p(cands, 0.45f);  // 0.18 threshold: 0.1 goes
    EXPECT_EQ(ids_of(cands), (std::vector<TokenId>{1, 2, 3}));

    cands = make_candidates(logits);
    Sampler::min_p(cands, 0.8f);  // 0.32 threshold: only 0.4 stays
    EXPECT_EQ(ids_of(cands), (std::vector<TokenId>{3}));

    cands = make_candidates(logits);
    Sampler::min_p(cands, 0.8f, 2);  // min_keep keeps the two most likely
    EXPECT_EQ(ids_of(cands), (std::vector<TokenId>{3, 2}));

    cands = make_candidates(logits);
    Sampler::min_p(cands, 0.0f);  // off
    EXPECT_EQ(cands.size(), 4u);
}

TEST(SamplerStages, TemperatureDividesLogits) {
    auto cands = make_candidates({1.0f, -2.0f, 4.0f});
    Sampler::temperature(cands, 2.0f);
    EXPECT_FLOAT_EQ(cands[0].logit, 0.5f);
    EXPECT_FLOAT_EQ(cands[1].logit, -1.0f);
    EXPECT_FLOAT_EQ(cands[2].logit, 2.0f);

    // Temperature 2 flattens: softmax of (0, ln 4)/2 = (0, ln 2) gives 1/3, 2/3.
    auto pair = make_candidates({0.0f, std::log(4.0f)});
    Sampler::temperature(pair, 2.0f);
    Sampler::softmax(pair);
    EXPECT_NEAR(pair[0].p, 2.0f / 3.0f, 1e-6f);
    EXPECT_NEAR(pair[1].p, 1.0f / 3.0f, 1e-6f);

    // Zero temperature keeps only the argmax, the lowest id on ties.
    auto tied = make_candidates({1.0f, 5.0f, 2.0f, 5.0f});
    Sampler::temperature(tied, 0.0f);
    EXPECT_EQ(ids_of(tied), (std::vector<TokenId>{1}));
}

TEST(SamplerStages, RepeatPenaltyDividesPositiveAndMultipliesNegative) {
    auto cands = make_candidates({2.0f, -2.0f, 3.0f, 0.0f});
    const std::vector<TokenId> recent = {0, 1, 3};
    Sampler::apply_penalties(cands, recent, 2.0f, 0.0f, 0.0f);
    EXPECT_FLOAT_EQ(logit_of(cands, 0), 1.0f);   // 2 / 2
    EXPECT_FLOAT_EQ(logit_of(cands, 1), -4.0f);  // -2 * 2
    EXPECT_FLOAT_EQ(logit_of(cands, 2), 3.0f);   // not recent
    EXPECT_FLOAT_EQ(logit_of(cands, 3), 0.0f);   // 0 * 2
}

TEST(SamplerStages, FrequencyAndPresencePenalties) {
    auto cands = make_candidates({1.0f, 1.0f, 1.0f});
    const std::vector<TokenId> recent = {0, 0, 0, 1};
    Sampler::apply_penalties(cands, recent, 1.0f, 0.5f, 0.25f);
    EXPECT_FLOAT_EQ(logit_of(cands, 0), 1.0f - 3 * 0.5f - 0.25f);  // -0.75
    EXPECT_FLOAT_EQ(logit_of(cands, 1), 1.0f - 1 * 0.5f - 0.25f);  // 0.25
    EXPECT_FLOAT_EQ(logit_of(cands, 2), 1.0f);

    // All three at once: repeat first, then subtract.
    auto both = make_candidates({4.0f});
    const std::vector<TokenId> twice = {0, 0};
    Sampler::apply_penalties(both, twice, 2.0f, 1.0f, 0.5f);
    EXPECT_FLOAT_EQ(both[0].logit, 4.0f / 2.0f - 2.0f - 0.5f);  // -0.5
}

TEST(SamplerChain, GreedyPicksArgmaxLowestIdOnTies) {
    Sampler sampler(greedy_params());
    const std::vector<float> logits = {0.1f, 2.5f, -1.0f, 2.5f, 2.0f};
    EXPECT_EQ(sampler.sample(logits), 1);
    const std::vector<float> single = {-3.0f};
    EXPECT_EQ(sampler.sample(single), 0);
}

TEST(SamplerChain, GreedyAppliesRepeatPenaltyToRecentTokens) {
    SamplerParams params = greedy_params();
    params.repeat_penalty = 2.0f;
    params.repeat_last_n = 2;
    Sampler sampler(params);
    const std::vector<float> logits = {3.0f, 2.0f, 1.0f};
    EXPECT_EQ(sampler.sample(logits), 0);
    sampler.accept(0);  // 3 / 2 = 1.5 < 2: token 1 now wins
    EXPECT_EQ(sampler.sample(logits), 1);
    sampler.accept(1);  // both penalised: 1.5, 1.0, 1.0 -> token 0 again
    EXPECT_EQ(sampler.sample(logits), 0);
    sampler.accept(2);  // window of 2 holds {1, 2}: 3, 1, 0.5 -> token 0
    sampler.accept(2);  // window {2, 2}
    EXPECT_EQ(sampler.sample(logits), 0);
    sampler.reset();  // history forgotten
    EXPECT_EQ(sampler.sample(logits), 0);
}

TEST(SamplerChain, RepeatLastNZeroDisablesPenalties) {
    SamplerParams params = greedy_params();
    params.repeat_penalty = 100.0f;
    params.repeat_last_n = 0;
    Sampler sampler(params);
    sampler.accept(0);
    const std::vector<float> logits = {3.0f, 2.0f};
    EXPECT_EQ(sampler.sample(logits), 0);
}

TEST(SamplerChain, SameSeedSameSequence) {
    SamplerParams params;
    params.temperature = 1.0f;
    params.top_k = 0;
    params.top_p = 1.0f;
    params.min_p = 0.0f;
    params.seed = 1234;
    const std::vector<float> logits = {1.0f, 1.2f, 0.8f, 1.1f, 0.9f, 1.0f};
    Sampler a(params), b(params);
    std::vector<TokenId> seq_a, seq_b;
    for (int i = 0; i < 200; ++i) {
        seq_a.push_back(a.sample(logits));
        seq_b.push_back(b.sample(logits));
    }
    EXPECT_EQ(seq_a, seq_b);
    EXPECT_EQ(a.seed(), 1234u);
    // A near-uniform distribution over 6 tokens: 200 draws visit several of them.
    std::map<TokenId, int> seen;
    for (TokenId t : seq_a) ++seen[t];
    EXPECT_GE(seen.size(), 4u);

    a.reset();  // reset replays the same sequence
    std::vector<TokenId> replay;
    for (int i = 0; i < 200; ++i) replay.push_back(a.sample(logits));
    EXPECT_EQ(replay, seq_a);

    params.seed = 4321;
    Sampler c(params);
    std::vector<TokenId> seq_c;
    for (int i = 0; i < 200; ++i) seq_c.push_back(c.sample(logits));
    EXPECT_NE(seq_c, seq_a);
}

TEST(SamplerChain, DefaultSeedIsDrawnAndReported) {
    SamplerParams params;  // seed 0xFFFFFFFF
    Sampler a(params), b(params);
    // Two random 32-bit seeds colliding is a 1 in 4e9 event.
    EXPECT_NE(a.seed(), b.seed());
    SamplerParams fixed;
    fixed.seed = a.seed();
    fixed.temperature = 1.0f;
    Sampler replay(fixed), original(fixed);
    const std::vector<float> logits = {0.0f, 0.1f, 0.2f, 0.3f};
    for (int i = 0; i < 20; ++i) EXPECT_EQ(replay.sample(logits), original.sample(logits));
}

TEST(SamplerChain, TruncationLeavesOnlyAllowedTokens) {
    SamplerParams params;
    params.temperature = 1.5f;
    params.top_k = 2;
    params.top_p = 1.0f;
    params.min_p = 0.0f;
    params.seed = 7;
    Sampler sampler(params);
    const std::vector<float> logits = {0.0f, 5.0f, 4.9f, 4.8f, -3.0f};
    std::map<TokenId, int> counts;
    for (int i = 0; i < 300; ++i) ++counts[sampler.sample(logits)];
    // top-k 2 leaves ids 1 and 2 (p about 0.517 and 0.483 at temperature 1.5).
    EXPECT_EQ(counts.size(), 2u);
    EXPECT_GT(counts[1], 100);
    EXPECT_GT(counts[2], 100);
}

TEST(SamplerChain, MinPRemovesUnlikelyTokensInTheChain) {
    SamplerParams params;
    params.temperature = 1.0f;
    params.top_k = 0;
    params.top_p = 1.0f;
    params.min_p = 0.5f;  // keeps tokens with p >= half the top one
    params.seed = 99;
    Sampler sampler(params);
    // exp(0) = 1, exp(-ln 3) = 1/3 < 1/2: only token 0 can come out.
    const std::vector<float> logits = {0.0f, -std::log(3.0f), -std::log(3.0f)};
    for (int i = 0; i < 50; ++i) EXPECT_EQ(sampler.sample(logits), 0);
}

TEST(SamplerChain, NonFiniteLogitsAreAnError) {
    Sampler sampler(greedy_params());
    const std::vector<float> with_nan = {0.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f};
    try {
        sampler.sample(with_nan);
        FAIL() << "expected a qllm::Error";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "logits contain NaN/Inf at token 1");
    }
    const std::vector<float> with_inf = {0.0f, 1.0f, std::numeric_limits<float>::infinity()};
    EXPECT_THROW(sampler.sample(with_inf), Error);
    const std::vector<float> empty;
    EXPECT_THROW(sampler.sample(empty), Error);
}

}  // namespace
}  // namespace qllm
