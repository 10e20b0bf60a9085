// Byte-level BPE (`tokenizer.ggml.model = gpt2`): GPT-2's byte <-> printable code point
// alphabet and the merge encoder that Tokenizer uses for text between special tokens.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace qllm {

// Each byte spelled as its byte-level code point (UTF-8), e.g. ' ' -> "Ġ" (U+0120).
std::string byte_level_encode(std::string_view bytes);
// The reverse; code points outside the 256-character alphabet are kept as their UTF-8.
std::string byte_level_decode(std::string_view text);

class BpeEncoder {
public:
    // Builds the merge table from vocab.merges ("left right", best first) and picks the
    // pre-tokenizer from vocab.pre (qllm::Error for an unknown name).
    explicit BpeEncoder(std::shared_ptr<const Vocab> vocab);

    // Appends the ids of one stretch of raw text (no special tokens in it).
    void encode(std::string_view text, std::vector<TokenId>& out) const;

private:
    // The rank of merging `left` then `right` (lower merges first), or -1.
    int32_t find_rank(TokenId left, TokenId right) const;
    void encode_word(std::string_view word, std::vector<TokenId>& out) const;

    std::shared_ptr<const Vocab> vocab_;
    pretokenize::Config config_;
    // Merge ranks in an open-addressing table keyed by a hash of the pair's two piece hashes:
    // building it hashes each merge's text once and never looks pieces up, which keeps loading
    // 280k merges fast. Lookups confirm against the merge text, so hash collisions are harmless.
    std::vector<uint64_t> token_hashes_;  // per token id
    std::vector<uint64_t> slot_keys_;
    std::vector<int32_t> slot_ranks_;     // -1: empty slot
    std::array<TokenId, 256> byte_tokens_{};  // the token of each byte's code point, or -1
};

}  // namespace qllm
