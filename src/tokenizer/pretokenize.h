// BPE pre-tokenizers: the regex that splits text into words before merging, one hand-written
// matcher per `tokenizer.ggml.pre` family (no regex engine: they need \p{L}/\p{N} classes).
#pragma once

#include <string_view>
#include <vector>

namespace qllm::pretokenize {

enum class Scheme {
    // GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    Gpt2,
    // Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    //          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    Llama3,
    // Qwen 2: as Llama 3 but \p{N} (one digit per word).
    Qwen2,
    // llama.cpp's fallback, four splits in turn: [\p{P}\$\+<=>\^~\|]+, then the GPT-2 regex,
    // then \p{N}+, then [0-9][0-9][0-9].
    Default,
};

struct Config {
    Scheme scheme;
    // A word that is itself a vocabulary piece becomes that token without merging (the
    // Hugging Face `ignore_merges` flag, set for Llama 3).
    bool ignore_merges;
};

// The configuration for a `tokenizer.ggml.pre` value. Empty means "default" (with a warning
// on stderr, as llama.cpp does); a name not listed is a qllm::Error that names it.
Config config_for(std::string_view pre);

// Appends the words of `text` to `words` (views into `text`, in order, covering it exactly).
void split(Scheme scheme, std::string_view text, std::vector<std::string_view>& words);

}  // namespace qllm::pretokenize
