// The SentencePiece ("llama") tokenizer as llama.cpp runs it, the special-token partition that
// precedes every tokenizer, detokenization, and the UTF-8 streamer for printing pieces.
#include <algorithm>
#include <queue>
#include <string>

#include "qllm/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"

namespace qllm {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// Length of the UTF-8 sequence a byte starts, as llama.cpp's unicode_len_utf8 computes it:
// continuation and invalid lead bytes count as one-byte characters.
size_t utf8_sequence_length(uint8_t lead) {
    static constexpr uint8_t kLengthByHighNibble[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                                        1, 1, 1, 1, 2, 2, 3, 4};
    return kLengthByHighNibble[lead >> 4];
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
    std::string result;
    result.reserve(text.size());
    size_t start = 0;
    for (size_t pos; (pos = text.find(from, start)) != std::string_view::npos;
         start = pos + from.size()) {
        result.append(text.substr(start, pos - start));
        result.append(to);
    }
    result.append(text.substr(start));
    return result;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return c - 'a' + 10;
}

// One SentencePiece encode of an already space-escaped fragment (llm_tokenizer_spm): start
// from single characters, repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring vocabulary piece (leftmost on ties), then emit each symbol as its piece or,
// failing that, as byte tokens.
class SpmSession {
public:
    SpmSession(const Vocab& vocab, const std::array<TokenId, 256>& byte_tokens)
        : vocab_(vocab), byte_tokens_(byte_tokens) {}

    void encode(std::string_view text, std::vector<TokenId>& out) {
        text_ = text;
        split_into_characters();
        for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) try_add_bigram(i - 1, i);

        while (!queue_.empty()) {
            const Bigram bigram = queue_.top();
            queue_.pop();
            Symbol& left = symbols_[bigram.left];
            Symbol& right = symbols_[bigram.right];
            // Stale entry: one side was merged away or grew since the pair was queued.
            if (left.length == 0 || right.length == 0 ||
                left.length + right.length != bigram.length) {
                continue;
            }
            left.length += right.length;
            right.length = 0;
            left.next = right.next;
            if (right.next >= 0) symbols_[right.next].prev = bigram.left;
            try_add_bigram(left.prev, bigram.left);
            try_add_bigram(bigram.left, left.next);
        }

        for (int i = symbols_.empty() ? -1 : 0; i != -1; i = symbols_[i].next) emit(symbols_[i], out);
    }

private:
    struct Symbol {
        int prev;
        int next;
        size_t offset;
        size_t length;  // 0 once merged into its left neighbour
    };
    struct Bigram {
        int left;
        int right;
        float score;
        size_t length;
    };
    // priority_queue keeps the "largest" on top: highest score, then the leftmost pair.
    struct LowerPriority {
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.score < b.score || (a.score == b.score && a.left > b.left);
        }
    };

    std::string_view symbol_text(const Symbol& s) const { return text_.substr(s.offset, s.length); }

    void split_into_characters() {
        for (size_t offset = 0; offset < text_.size();) {
            const size_t length =
                std::min(utf8_sequence_length(static_cast<uint8_t>(text_[offset])), text_.size() - offset);
            const int index = static_cast<int>(symbols_.size());
            const bool last = offset + length == text_.size();
            symbols_.push_back({index - 1, last ? -1 : index + 1, offset, length});
            offset += length;
        }
    }

    void try_add_bigram(int left, int right) {
        if (left < 0 || right < 0) return;
        const std::string_view merged =
            text_.substr(symbols_[left].offset, symbols_[left].length + symbols_[right].length);
        const TokenId id = vocab_.find(merged);
        if (id < 0) return;
        queue_.push({left, right, vocab_.scores[id], merged.size()});
    }

    // A merged symbol is always a vocabulary piece (pairs are only queued when they are), so
    // llama.cpp's re-segmentation of merged non-pieces never triggers: a symbol is either a
    // piece or a single character that falls back to bytes.
    void emit(const Symbol& symbol, std::vector<TokenId>& out) const {
        const std::string_view text = symbol_text(symbol);
        if (const TokenId id = vocab_.find(text); id >= 0) {
            out.push_back(id);
            return;
        }
        for (char c : text) {
            const auto byte = static_cast<uint8_t>(c);
            const TokenId id = byte_tokens_[byte];
            if (id < 0) {
                fail("cannot encode byte 0x{:02X}: the vocabulary has no byte token <0x{:02X}>",
                     byte, byte);
            }
            out.push_back(id);
        }
    }

    const Vocab& vocab_;
    const std::array<TokenId, 256>& byte_tokens_;
    std::string_view text_;
    std::vector<Symbol> symbols_;
    std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> queue_;
};

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const Vocab> vocab) : vocab_(std::move(vocab)) {
    if (!vocab_) fail("tokenizer created without a vocabulary");
    vocab_->validate();
    const Vocab& v = *vocab_;
    if (v.model == "gpt2") bpe_ = std::make_shared<const BpeEncoder>(vocab_);

    for (size_t id = 0; id < v.size(); ++id) {
        const TokenKind kind = v.kinds[id];
        if (kind == TokenKind::Control || kind == TokenKind::UserDefined || kind == TokenKind::Unknown) {
            special_tokens_.push_back(static_cast<TokenId>(id));
        }
    }
    // Longest first, so that a special text containing a shorter one wins (as in llama.cpp).
    std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [&](TokenId a, TokenId b) {
        return v.tokens[a].size() > v.tokens[b].size();
    });

    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
        const char byte_piece[] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
        TokenId id = v.find(std::string_view(byte_piece, sizeof byte_piece));
        if (id < 0) id = v.find(std::string(1, static_cast<char>(b)));
        byte_tokens_[b] = id;
    }
}

void Tokenizer::partition_special(std::string_view text, bool parse_special,
                                  std::vector<std::pair<std::string_view, TokenId>>& fragments) const {
    // A fragment is raw text (id -1) or one special token (empty text).
    fragments.clear();
    if (!text.empty()) fragments.emplace_back(text, -1);
    std::vector<std::pair<std::string_view, TokenId>> next;
    for (TokenId special : special_tokens_) {
        const TokenKind kind = vocab_->kinds[special];
        // User-defined pieces are always split out; control and unknown ones only on request.
        if (!parse_special && (kind == TokenKind::Control || kind == TokenKind::Unknown)) continue;
        const std::string& needle = vocab_->tokens[special];
        next.clear();
        for (const auto& [fragment, id] : fragments) {
            if (id >= 0) {
                next.emplace_back(fragment, id);
                continue;
            }
            std::string_view rest = fragment;
            for (size_t pos; (pos = rest.find(needle)) != std::string_view::npos;) {
                if (pos > 0) next.emplace_back(rest.substr(0, pos), -1);
                next.emplace_back(std::string_view(), special);
                rest.remove_prefix(pos + needle.size());
            }
            if (!rest.empty()) next.emplace_back(rest, -1);
        }
        fragments.swap(next);
    }
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    std::vector<TokenId> out;
    if (bpe_) {
        encode_bpe(text, add_bos, parse_special, out);
    } else {
        encode_spm(text, add_bos, parse_special, out);
    }
    return out;
}

void Tokenizer::encode_spm(std::string_view text, bool add_bos, bool parse_special,
                           std::vector<TokenId>& out) const {
    const Vocab& v = *vocab_;
    if (add_bos) {
        if (v.bos < 0) fail("cannot add BOS: the vocabulary has no BOS token");
        out.push_back(v.bos);
    }
    std::vector<std::pair<std::string_view, TokenId>> fragments;
    partition_special(text, parse_special, fragments);

    // SentencePiece sees each text fragment as the start of a sentence, so the space prefix
    // goes before the first fragment and after every special token (llama.cpp does the same).
    bool after_special = true;
    for (const auto& [fragment, id] : fragments) {
        if (id >= 0) {
            out.push_back(id);
            after_special = true;
            continue;
        }
        std::string prefixed;
        if (v.add_space_prefix && after_special) prefixed = " ";
        prefixed.append(fragment);
        SpmSession(v, byte_tokens_).encode(replace_all(prefixed, " ", kSpaceMarker), out);
        after_special = false;
    }
}

std::string Tokenizer::piece(TokenId id, bool special) const {
    const Vocab& v = *vocab_;
    if (id < 0 || static_cast<size_t>(id) >= v.size()) {
        fail("token id {} is out of range: the vocabulary has {} tokens", id, v.size());
    }
    const std::string& text = v.tokens[id];
    switch (v.kinds[id]) {
        case TokenKind::Control:
        case TokenKind::Unknown:
            return special ? text : std::string();
        case TokenKind::UserDefined:
            return text;
        case TokenKind::Normal:
            return v.model == "gpt2" ? byte_level_decode(text) : replace_all(text, kSpaceMarker, " ");
        case TokenKind::Byte:
            return std::string(1, static_cast<char>(hex_value(text[3]) * 16 + hex_value(text[4])));
        case TokenKind::Undefined:
        case TokenKind::Unused:
            break;  // llama.cpp prints nothing for these
    }
    return {};
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool special) const {
    std::string text;
    // Undo the space prefix that encode() added: strip one space from the first piece only.
    bool strip_space = vocab_->add_space_prefix;
    for (TokenId id : ids) {
        std::string p = piece(id, special);
        if (strip_space && !p.empty() && p.front() == ' ') p.erase(0, 1);
        strip_space = false;
        text += p;
    }
    return text;
}

bool Tokenizer::is_eog(TokenId id) const {
    return id >= 0 && std::binary_search(vocab_->eog.begin(), vocab_->eog.end(), id);
}

std::string Utf8Streamer::push(std::string_view bytes) {
    pending_.append(bytes);
    // Find the last lead byte within the final three bytes; hold it back only if its
    // character is still incomplete (everything after it is continuation bytes by construction).
    size_t keep_from = pending_.size();
    const size_t scan_floor = pending_.size() >= 3 ? pending_.size() - 3 : 0;
    for (size_t i = pending_.size(); i-- > scan_floor;) {
        const auto byte = static_cast<uint8_t>(pending_[i]);
        if ((byte & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
        size_t needed = 0;
        if ((byte & 0xE0) == 0xC0) needed = 2;
        else if ((byte & 0xF0) == 0xE0) needed = 3;
        else if ((byte & 0xF8) == 0xF0) needed = 4;
        if (needed > pending_.size() - i) keep_from = i;
        break;
    }
    std::string ready = pending_.substr(0, keep_from);
    pending_.erase(0, keep_from);
    return ready;
}

std::string Utf8Streamer::finish() {
    std::string rest;
    rest.swap(pending_);
    return rest;
}

}  // namespace qllm
