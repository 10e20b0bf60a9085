// Vocabulary (read from GGUF `tokenizer.ggml.*`) and the tokenizer built on it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qllm {

namespace gguf { class File; }
class BpeEncoder;

using TokenId = int32_t;

// Token attributes as in `tokenizer.ggml.token_type`.
enum class TokenKind : int32_t {
    Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

struct Vocab {
    std::string model;                 // tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (BPE)...
    std::string pre;                   // tokenizer.ggml.pre (BPE pre-tokenizer name), may be empty
    std::vector<std::string> tokens;   // piece text per id
    std::vector<float> scores;         // per id (SentencePiece merge priority)
    std::vector<TokenKind> kinds;      // per id
    std::vector<std::string> merges;   // BPE merges "a b", in priority order
    TokenId bos = -1, eos = -1, unk = -1, pad = -1, eot = -1;
    bool add_bos = false;
    bool add_eos = false;
    bool add_space_prefix = true;
    // piece text -> id; looked up by string_view without building a std::string.
    struct PieceHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, TokenId, PieceHash, std::equal_to<>> index;
    std::vector<TokenId> eog;          // ends generation: EOS, EOT and end-of-turn pieces (sorted)

    size_t size() const { return tokens.size(); }
    TokenId find(std::string_view piece) const;  // -1 if absent

    // Reads and validates the tokenizer.ggml.* keys (lengths, ids in range, element types).
    static Vocab load(const gguf::File& file);

    // For vocabularies built by hand (tests, converters): fill `index` (duplicate pieces are an
    // error), then derive `eot`/`eog` from the pieces, then check what load() checks.
    void build_index();
    void find_end_of_generation_tokens();
    void validate() const;

    static bool is_byte_piece(std::string_view text);  // "<0xXX>"
};

class Tokenizer {
public:
    explicit Tokenizer(std::shared_ptr<const Vocab> vocab);

    const Vocab& vocab() const { return *vocab_; }

    // Text to ids. add_bos: prepend BOS (callers pass vocab().add_bos by default); EOS is never
    // appended (push vocab().eos for models with add_eos). parse_special: match control and
    // unknown token texts as whole tokens (user-defined texts are always matched, as in
    // llama.cpp). A byte the vocabulary cannot spell (no <0xXX> token) is a qllm::Error.
    std::vector<TokenId> encode(std::string_view text, bool add_bos, bool parse_special = false) const;

    // The bytes one token stands for (byte tokens give their byte, control tokens nothing
    // unless `special`). May be a fragment of a UTF-8 character.
    std::string piece(TokenId id, bool special = false) const;

    // Whole-sequence decode, like llama.cpp's detokenize: the pieces concatenated, with one
    // leading space removed from the first token's piece when the vocabulary adds a space
    // prefix (so decode(encode(text)) == text). A BOS in front takes that place: its piece is
    // empty and nothing is stripped from the token after it. llama.cpp's BPE `clean_spaces`
    // (dropping the space in " ?", " ," ...) is not applied, so BPE text round-trips too.
    std::string decode(const std::vector<TokenId>& ids, bool special = false) const;

    bool is_eog(TokenId id) const;  // end of generation: EOS, EOT

private:
    void partition_special(std::string_view text, bool parse_special,
                           std::vector<std::pair<std::string_view, TokenId>>& fragments) const;
    void encode_spm(std::string_view text, bool add_bos, bool parse_special,
                    std::vector<TokenId>& out) const;
    void encode_bpe(std::string_view text, bool add_bos, bool parse_special,
                    std::vector<TokenId>& out) const;

    std::shared_ptr<const Vocab> vocab_;
    std::shared_ptr<const BpeEncoder> bpe_;  // set for byte-level BPE (model "gpt2")
    // Control, user-defined and unknown tokens, longest text first: matched before splitting.
    std::vector<TokenId> special_tokens_;
    // Byte-fallback token per byte value ("<0xXX>", else the one-byte piece), -1 if absent.
    std::array<TokenId, 256> byte_tokens_{};
};

// Turns a stream of token pieces into text that never ends inside a UTF-8 character:
// push() returns the complete characters available so far, finish() whatever is left.
// Only a tail that can still become a valid character is held back; bytes that can never be
// part of one (stray continuation bytes, 0xF8..0xFF, a lead byte followed by a non-continuation)
// pass through unchanged, as llama.cpp prints them, and finish() flushes an unfinished tail raw.
class Utf8Streamer {
public:
    std::string push(std::string_view bytes);
    std::string finish();

private:
    std::string pending_;
};

}  // namespace qllm
