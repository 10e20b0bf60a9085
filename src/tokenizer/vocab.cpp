// Vocab::load: reads and validates the `tokenizer.ggml.*` metadata of a GGUF file, with
// llama.cpp's defaults for keys that are absent.
#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "gguf/gguf.h"
#include "qllm/error.h"
#include "tokenizer/tokenizer.h"

namespace qllm {
namespace {

constexpr std::string_view kModelKey = "tokenizer.ggml.model";
constexpr std::string_view kPreKey = "tokenizer.ggml.pre";
constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
constexpr std::string_view kTypesKey = "tokenizer.ggml.token_type";
constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";
constexpr std::string_view kAddBosKey = "tokenizer.ggml.add_bos_token";
constexpr std::string_view kAddEosKey = "tokenizer.ggml.add_eos_token";
constexpr std::string_view kAddSpacePrefixKey = "tokenizer.ggml.add_space_prefix";

// Pieces that end a turn in common chat formats. llama.cpp finds EOT/EOG tokens by these texts
// because conversion scripts rarely record them; the first one present becomes `eot`.
constexpr std::array<std::string_view, 11> kEndOfTurnTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "<|eom_id|>", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
};

// BPE pre-tokenizers for which llama.cpp adds BOS by default (Llama 3 family, Tekken...).
constexpr std::array<std::string_view, 11> kBpePresWithBos = {
    "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
    "tekken", "chameleon", "jina-v5-nano",
};

template <size_t N>
bool contains(const std::array<std::string_view, N>& list, std::string_view text) {
    return std::find(list.begin(), list.end(), text) != list.end();
}

// Conversion scripts write "no token" as -1 or as the all-ones unsigned value.
bool is_none_sentinel(const gguf::Value& value) {
    using gguf::ValueType;
    const bool integer = value.type == ValueType::U32 || value.type == ValueType::I32 ||
                         value.type == ValueType::U64 || value.type == ValueType::I64;
    if (!integer || value.bytes.empty()) return false;
    return std::all_of(value.bytes.begin(), value.bytes.end(), [](uint8_t b) { return b == 0xFF; });
}

// A special token id: absent -> `fallback` (dropped when out of range, as llama.cpp does for
// its built-in defaults), "none" sentinel -> -1, anything else must index the vocabulary.
TokenId read_special_id(const gguf::File& file, std::string_view key, TokenId fallback,
                        size_t n_tokens) {
    const gguf::Value* value = file.find(key);
    if (value == nullptr) {
        return (fallback >= 0 && static_cast<size_t>(fallback) < n_tokens) ? fallback : -1;
    }
    if (is_none_sentinel(*value)) return -1;
    const uint64_t id = file.get_count(key);
    if (id >= n_tokens) {
        fail("{}: {} = {} is out of range: the vocabulary has {} tokens", file.path(), key, id, n_tokens);
    }
    return static_cast<TokenId>(id);
}

std::vector<float> read_scores(const gguf::File& file, size_t n_tokens) {
    const gguf::Value* value = file.find(kScoresKey);
    if (value == nullptr) return std::vector<float>(n_tokens, 0.0f);
    std::vector<float> scores;
    // llama.cpp also accepts integer scores.
    if (value->type == gguf::ValueType::ARRAY && value->array_type == gguf::ValueType::I32) {
        for (int32_t s : file.get_i32_array(kScoresKey)) scores.push_back(static_cast<float>(s));
    } else {
        scores = file.get_f32_array(kScoresKey);
    }
    if (scores.size() != n_tokens) {
        fail("{}: {} has {} entries but {} has {}", file.path(), kScoresKey, scores.size(), kTokensKey,
             n_tokens);
    }
    return scores;
}

std::vector<TokenKind> read_kinds(const gguf::File& file, size_t n_tokens) {
    if (!file.has(kTypesKey)) return std::vector<TokenKind>(n_tokens, TokenKind::Normal);
    const std::vector<int32_t> types = file.get_i32_array(kTypesKey);
    if (types.size() != n_tokens) {
        fail("{}: {} has {} entries but {} has {}", file.path(), kTypesKey, types.size(), kTokensKey,
             n_tokens);
    }
    std::vector<TokenKind> kinds(n_tokens);
    for (size_t i = 0; i < n_tokens; ++i) {
        if (types[i] < 0 || types[i] > static_cast<int32_t>(TokenKind::Byte)) {
            fail("{}: {}[{}] = {} is not a token type (expected 0..6)", file.path(), kTypesKey, i,
                 types[i]);
        }
        kinds[i] = static_cast<TokenKind>(types[i]);
    }
    return kinds;
}

bool is_hex_digit(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

}  // namespace

bool Vocab::is_byte_piece(std::string_view text) {
    return text.size() == 6 && text.substr(0, 3) == "<0x" && is_hex_digit(text[3]) &&
           is_hex_digit(text[4]) && text[5] == '>';
}

TokenId Vocab::find(std::string_view piece) const {
    const auto it = index.find(piece);
    return it == index.end() ? -1 : it->second;
}

void Vocab::build_index() {
    index.clear();
    index.reserve(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
        const auto [it, inserted] = index.emplace(tokens[i], static_cast<TokenId>(i));
        if (!inserted) {
            fail("{}: duplicate token '{}' at ids {} and {}", kTokensKey, tokens[i], it->second, i);
        }
    }
}

void Vocab::validate() const {
    if (tokens.empty()) fail("{} is empty: the vocabulary has no tokens", kTokensKey);
    if (model != "llama" && model != "gpt2") fail("unsupported tokenizer model '{}'", model);
    if (scores.size() != tokens.size()) {
        fail("{} has {} entries but {} has {}", kScoresKey, scores.size(), kTokensKey, tokens.size());
    }
    if (kinds.size() != tokens.size()) {
        fail("{} has {} entries but {} has {}", kTypesKey, kinds.size(), kTokensKey, tokens.size());
    }
    if (index.size() != tokens.size()) fail("vocabulary index is not built (call build_index)");
    const std::pair<std::string_view, TokenId> specials[] = {
        {"tokenizer.ggml.bos_token_id", bos},     {"tokenizer.ggml.eos_token_id", eos},
        {"tokenizer.ggml.unknown_token_id", unk}, {"tokenizer.ggml.padding_token_id", pad},
        {"tokenizer.ggml.eot_token_id", eot},
    };
    for (const auto& [key, id] : specials) {
        if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= tokens.size())) {
            fail("{} = {} is out of range: the vocabulary has {} tokens", key, id, tokens.size());
        }
    }
    for (TokenId id : eog) {
        if (id < 0 || static_cast<size_t>(id) >= tokens.size()) {
            fail("end-of-generation token {} is out of range: the vocabulary has {} tokens", id,
                 tokens.size());
        }
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
        const int32_t kind = static_cast<int32_t>(kinds[i]);
        if (kind < 0 || kind > static_cast<int32_t>(TokenKind::Byte)) {
            fail("{}[{}] = {} is not a token type (expected 0..6)", kTypesKey, i, kind);
        }
        // piece() turns byte tokens back into their byte, so the text must say which byte.
        if (kinds[i] == TokenKind::Byte && !is_byte_piece(tokens[i])) {
            fail("{}[{}] is a byte token but its text '{}' is not of the form <0xXX>", kTokensKey,
                 i, tokens[i]);
        }
    }
    if (add_bos && bos < 0) {
        fail("{} is true but the vocabulary has no BOS token (tokenizer.ggml.bos_token_id)",
             kAddBosKey);
    }
    if (add_eos && eos < 0) {
        fail("{} is true but the vocabulary has no EOS token (tokenizer.ggml.eos_token_id)",
             kAddEosKey);
    }
    if (model == "gpt2" && merges.empty()) {
        fail("{} is missing or empty: a gpt2 (BPE) vocabulary needs its merges", kMergesKey);
    }
}

void Vocab::find_end_of_generation_tokens() {
    if (eot < 0) {
        for (std::string_view text : kEndOfTurnTexts) {
            if (const TokenId id = find(text); id >= 0) {
                eot = id;
                break;
            }
        }
    }
    eog.clear();
    for (std::string_view text : kEndOfTurnTexts) {
        const TokenId id = find(text);
        if (id < 0) continue;
        eog.push_back(id);
        // An end-of-turn marker must not be printed as text: llama.cpp forces it to control.
        if (kinds[id] != TokenKind::Control) kinds[id] = TokenKind::Control;
    }
    if (eot >= 0 && kinds[eot] != TokenKind::Control) kinds[eot] = TokenKind::Control;
    for (TokenId id : {eos, eot}) {
        if (id >= 0) eog.push_back(id);
    }
    std::sort(eog.begin(), eog.end());
    eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
}

namespace {
Vocab load_vocab(const gguf::File& file) {
    Vocab vocab;
    vocab.model = file.get_string(kModelKey);
    if (vocab.model != "llama" && vocab.model != "gpt2") {
        fail("{}: {}: unsupported tokenizer model '{}' (supported: llama, gpt2)", file.path(), kModelKey,
             vocab.model);
    }
    const bool is_spm = vocab.model == "llama";
    vocab.pre = file.get_string_or(kPreKey, "");

    vocab.tokens = file.get_string_array(kTokensKey);
    const size_t n = vocab.tokens.size();
    if (n == 0) fail("{}: {} is empty: the vocabulary has no tokens", file.path(), kTokensKey);
    if (n > static_cast<size_t>(INT32_MAX)) {
        fail("{}: {} has too many tokens ({})", file.path(), kTokensKey, n);
    }
    // llama.cpp renames empty pieces so that every piece is a distinct, findable string.
    for (size_t i = 0; i < n; ++i) {
        if (vocab.tokens[i].empty()) vocab.tokens[i] = "[EMPTY_" + std::to_string(i) + "]";
    }
    vocab.scores = read_scores(file, n);
    vocab.kinds = read_kinds(file, n);
    if (file.has(kMergesKey)) vocab.merges = file.get_string_array(kMergesKey);
    vocab.build_index();

    // SentencePiece models default to <unk>=0, <s>=1, </s>=2 like llama.cpp; BPE has no defaults.
    vocab.bos = read_special_id(file, "tokenizer.ggml.bos_token_id", is_spm ? 1 : -1, n);
    vocab.eos = read_special_id(file, "tokenizer.ggml.eos_token_id", is_spm ? 2 : -1, n);
    vocab.unk = read_special_id(file, "tokenizer.ggml.unknown_token_id", is_spm ? 0 : -1, n);
    vocab.pad = read_special_id(file, "tokenizer.ggml.padding_token_id", -1, n);
    vocab.eot = read_special_id(file, "tokenizer.ggml.eot_token_id", -1, n);

    const bool default_add_bos = is_spm || contains(kBpePresWithBos, vocab.pre);
    vocab.add_bos = file.get_bool_or(kAddBosKey, default_add_bos);
    vocab.add_eos = file.get_bool_or(kAddEosKey, false);
    vocab.add_space_prefix = file.get_bool_or(kAddSpacePrefixKey, is_spm);

    vocab.find_end_of_generation_tokens();
    vocab.validate();
    return vocab;
}
}  // namespace

Vocab Vocab::load(const gguf::File& file) {
    // The checks here are shared with hand-built vocabularies and do not know the file, so
    // name it for them; gguf::File's own errors already start with its path.
    try {
        return load_vocab(file);
    } catch (const Error& e) {
        const std::string_view what = e.what();
        if (what.starts_with(file.path() + ": ")) throw;
        fail("{}: {}", file.path(), what);
    }
}

}  // namespace qllm
