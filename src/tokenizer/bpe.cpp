// Byte-level BPE encoding: pre-tokenize, spell each word's bytes in the GPT-2 alphabet, then
// apply merges lowest rank first (leftmost on ties), as llama.cpp and Hugging Face do.
#include "tokenizer/bpe.h"

#include <bit>
#include <climits>
#include <functional>
#include <queue>

#include "qllm/error.h"
#include "tokenizer/unicode.h"

namespace qllm {
namespace {

// GPT-2's alphabet: printable Latin-1 bytes stand for themselves; the other 68 bytes (controls,
// space, DEL, NBSP, soft hyphen...) take U+0100 onward in byte order.
struct ByteAlphabet {
    std::array<uint32_t, 256> code_point{};
    std::array<int16_t, 0x144> byte_of{};  // code point -> byte, -1 outside the alphabet

    ByteAlphabet() {
        byte_of.fill(-1);
        uint32_t next = 0x100;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            code_point[b] = printable ? b : next++;
            byte_of[code_point[b]] = static_cast<int16_t>(b);
        }
    }
};

const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

}  // namespace

std::string byte_level_encode(std::string_view bytes) {
    const ByteAlphabet& a = alphabet();
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) unicode::append_utf8(out, a.code_point[static_cast<uint8_t>(c)]);
    return out;
}

std::string byte_level_decode(std::string_view text) {
    const ByteAlphabet& a = alphabet();
    std::string out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        const unicode::Decoded d = unicode::decode_utf8(text, pos);
        const int byte = d.cp < a.byte_of.size() ? a.byte_of[d.cp] : -1;
        if (byte >= 0) {
            out.push_back(static_cast<char>(byte));
        } else {
            out.append(text.substr(pos, d.length));
        }
        pos += d.length;
    }
    return out;
}

namespace {

uint64_t hash_piece(std::string_view text) { return std::hash<std::string_view>{}(text); }

// splitmix64's finalizer: spreads the combined piece hashes over the slot index bits.
uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t combine(uint64_t left_hash, uint64_t right_hash) {
    return mix(left_hash * 0x9E3779B97F4A7C15ull ^ right_hash);
}

// "left right" -> its parts, split at the first space after the first byte (llama.cpp's rule,
// so that a merge of a raw " " piece still splits). False if there is no separator.
bool split_merge(std::string_view merge, std::string_view& left, std::string_view& right) {
    const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string_view::npos;
    if (space == std::string_view::npos) return false;
    left = merge.substr(0, space);
    right = merge.substr(space + 1);
    return true;
}

}  // namespace

BpeEncoder::BpeEncoder(std::shared_ptr<const Vocab> vocab)
    : vocab_(std::move(vocab)), config_(pretokenize::config_for(vocab_->pre)) {
    const Vocab& v = *vocab_;
    const ByteAlphabet& a = alphabet();
    for (int b = 0; b < 256; ++b) {
        std::string piece;
        unicode::append_utf8(piece, a.code_point[b]);
        byte_tokens_[b] = v.find(piece);
    }

    token_hashes_.resize(v.size());
    for (size_t id = 0; id < v.size(); ++id) token_hashes_[id] = hash_piece(v.tokens[id]);

    if (v.merges.size() > static_cast<size_t>(INT32_MAX)) fail("too many BPE merges ({})", v.merges.size());
    // Load factor at most 2/3, so probes stay short and always reach an empty slot.
    const size_t capacity = std::bit_ceil(v.merges.size() * 3 / 2 + 2);
    slot_keys_.assign(capacity, 0);
    slot_ranks_.assign(capacity, -1);
    const size_t mask = capacity - 1;
    for (size_t rank = 0; rank < v.merges.size(); ++rank) {
        std::string_view left, right;
        if (!split_merge(v.merges[rank], left, right)) continue;
        const uint64_t key = combine(hash_piece(left), hash_piece(right));
        for (size_t slot = key & mask;; slot = (slot + 1) & mask) {
            if (slot_ranks_[slot] < 0) {
                slot_keys_[slot] = key;
                slot_ranks_[slot] = static_cast<int32_t>(rank);
                break;
            }
            // A pair listed twice keeps its first (best) rank.
            if (slot_keys_[slot] == key && v.merges[slot_ranks_[slot]] == v.merges[rank]) break;
        }
    }
}

int32_t BpeEncoder::find_rank(TokenId left, TokenId right) const {
    if (left < 0 || right < 0) return -1;
    const Vocab& v = *vocab_;
    const std::string_view l = v.tokens[left];
    const std::string_view r = v.tokens[right];
    const uint64_t key = combine(token_hashes_[left], token_hashes_[right]);
    const size_t mask = slot_keys_.size() - 1;
    for (size_t slot = key & mask; slot_ranks_[slot] >= 0; slot = (slot + 1) & mask) {
        if (slot_keys_[slot] != key) continue;
        std::string_view merge_left, merge_right;
        split_merge(v.merges[slot_ranks_[slot]], merge_left, merge_right);
        if (merge_left == l && merge_right == r) return slot_ranks_[slot];
    }
    return -1;
}

void BpeEncoder::encode(std::string_view text, std::vector<TokenId>& out) const {
    std::vector<std::string_view> words;
    pretokenize::split(config_.scheme, text, words);
    for (std::string_view word : words) encode_word(word, out);
}

void BpeEncoder::encode_word(std::string_view word, std::vector<TokenId>& out) const {
    if (config_.ignore_merges) {
        if (const TokenId id = vocab_->find(byte_level_encode(word)); id >= 0) {
            out.push_back(id);
            return;
        }
    }

    // One symbol per byte, in a linked list; merged-away symbols get id kGone.
    constexpr TokenId kGone = -2;
    struct Symbol {
        TokenId id;
        int prev;
        int next;
    };
    std::vector<Symbol> symbols(word.size());
    const int n = static_cast<int>(word.size());
    for (int i = 0; i < n; ++i) {
        const auto byte = static_cast<uint8_t>(word[i]);
        if (byte_tokens_[byte] < 0) {
            fail("cannot encode byte 0x{:02X}: the vocabulary has no byte-level token for it", byte);
        }
        symbols[i] = {byte_tokens_[byte], i - 1, i + 1 < n ? i + 1 : -1};
    }

    struct Candidate {
        int32_t rank;
        int left;  // index of the left symbol; the right one is its `next`
        TokenId left_id;
        TokenId right_id;
    };
    // Lowest rank on top, then the leftmost pair.
    const auto worse = [](const Candidate& a, const Candidate& b) {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> queue(worse);
    const auto consider = [&](int left) {
        if (left < 0 || symbols[left].next < 0) return;
        const TokenId l = symbols[left].id;
        const TokenId r = symbols[symbols[left].next].id;
        if (const int32_t rank = find_rank(l, r); rank >= 0) queue.push({rank, left, l, r});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);

    std::string joined;
    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        Symbol& left = symbols[c.left];
        // Stale: either side has merged with something else since the pair was queued (ids
        // only ever grow into longer pieces, so an unchanged id means an unchanged symbol).
        if (left.id != c.left_id || left.next < 0 || symbols[left.next].id != c.right_id) continue;
        // A merge into something that is not a piece cannot be represented: it never fires.
        joined.assign(vocab_->tokens[c.left_id]).append(vocab_->tokens[c.right_id]);
        const TokenId result = vocab_->find(joined);
        if (result < 0) continue;
        Symbol& right = symbols[left.next];
        left.id = result;
        right.id = kGone;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = c.left;
        consider(left.prev);
        consider(c.left);
    }

    for (int i = n > 0 ? 0 : -1; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

// Tokenizer's BPE path: BOS, then special tokens kept whole and the text between them encoded
// fragment by fragment (a special token also ends a pre-tokenizer word, as in llama.cpp).
void Tokenizer::encode_bpe(std::string_view text, bool add_bos, bool parse_special,
                           std::vector<TokenId>& out) const {
    if (add_bos) {
        if (vocab_->bos < 0) fail("cannot add BOS: the vocabulary has no BOS token");
        out.push_back(vocab_->bos);
    }
    std::vector<std::pair<std::string_view, TokenId>> fragments;
    partition_special(text, parse_special, fragments);
    for (const auto& [fragment, id] : fragments) {
        if (id >= 0) {
            out.push_back(id);
        } else {
            bpe_->encode(fragment, out);
        }
    }
}

}  // namespace qllm
