// Fuzz target: encode and decode arbitrary bytes with real vocabularies: stories260K
// (SentencePiece with byte fallback) and, when ../shared/golden has them, the Llama 3 and
// Qwen 3 byte-level BPE vocabularies. Input: one byte of options, then the text.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "model/model.h"
#include "qllm/error.h"

namespace {

using qllm::TokenId;
using qllm::Tokenizer;

std::vector<std::unique_ptr<qllm::Model>> load_vocabularies() {
    const auto shared = qllm::fuzz::shared_dir();
    std::vector<std::unique_ptr<qllm::Model>> out;
    for (const auto& path : {shared / "models/stories260K.gguf", shared / "golden/tokenizer/llama3-vocab.gguf",
                             shared / "golden/tokenizer/qwen3-vocab.gguf"}) {
        if (!std::filesystem::exists(path)) continue;
        out.push_back(qllm::Model::load(path.string(), qllm::Model::Mode::VocabOnly));
    }
    if (out.empty()) {
        std::fprintf(stderr, "fuzz_tokenizer: no vocabulary under %s (set QLLM_SHARED_DIR)\n", shared.c_str());
        std::abort();
    }
    return out;
}

// Every lead byte followed by as many continuation bytes as it announces.
bool is_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto b = uint8_t(s[i]);
        const size_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        for (size_t k = 1; k < len; ++k) {
            if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return false;
        }
        i += len;
    }
    return true;
}

// Whether decode(encode(text)) must give `text` back, and what it gives. Byte-level BPE
// round-trips any bytes. SentencePiece (as llama.cpp runs it) splits text into characters by
// their lead byte's announced length, so a broken sequence can swallow the U+2581 that stands
// for a following space: only valid UTF-8 round-trips. And it decodes every U+2581 to a space.
bool round_trips(const qllm::Vocab& vocab, std::string& text) {
    if (vocab.model != "llama") return true;
    if (!is_utf8(text)) return false;
    static const std::string kMarker = "\xE2\x96\x81";
    for (size_t at; (at = text.find(kMarker)) != std::string::npos;) text.replace(at, kMarker.size(), " ");
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto models = load_vocabularies();
    qllm::fuzz::Input in(data, size);
    const uint8_t options = in.byte();
    const qllm::Model& model = *models[(options >> 4) % models.size()];
    const Tokenizer& tok = model.tokenizer();
    const qllm::Vocab& vocab = model.vocab();
    // Asking for a BOS the vocabulary lacks (Qwen) is an error of its own; not tested here.
    const bool add_bos = (options & 1) && vocab.bos >= 0, parse_special = options & 2, decode_special = options & 4;
    const std::string text(reinterpret_cast<const char*>(in.rest()), in.remaining());

    std::vector<TokenId> ids;
    try {
        ids = tok.encode(text, add_bos, parse_special);
    } catch (const qllm::Error& e) {
        // Only a byte the vocabulary cannot spell is an error, and these all have byte tokens.
        std::fprintf(stderr, "encode failed: %s\n", e.what());
        std::abort();
    }
    for (TokenId id : ids) QLLM_FUZZ_CHECK(id >= 0 && size_t(id) < vocab.size());
    if (add_bos) QLLM_FUZZ_CHECK(!ids.empty() && ids.front() == vocab.bos);

    const std::string decoded = tok.decode(ids, decode_special);
    // Without BOS (which takes the place of the stripped space prefix) and without special
    // tokens (which decode to nothing), decoding gives the text back.
    if (std::string expected = text; !add_bos && !parse_special && round_trips(vocab, expected)) {
        QLLM_FUZZ_CHECK(decoded == expected);
    }

    // Streaming the pieces one by one loses and adds nothing.
    qllm::Utf8Streamer streamer;
    std::string streamed, pieces;
    for (TokenId id : ids) {
        const std::string piece = tok.piece(id, decode_special);
        pieces += piece;
        streamed += streamer.push(piece);
    }
    streamed += streamer.finish();
    QLLM_FUZZ_CHECK(streamed == pieces);

    // The input read as token ids, any sequence of any kinds of token, decodes.
    std::vector<TokenId> raw;
    while (in.remaining() >= 4) raw.push_back(TokenId(in.take<uint32_t>() % vocab.size()));
    (void)tok.decode(raw, decode_special);
    // An id outside the vocabulary is an error, not a read out of bounds.
    for (const TokenId bad : {TokenId(-1), TokenId(vocab.size())}) {
        try {
            (void)tok.decode({raw.empty() ? 0 : raw.front(), bad}, decode_special);
            QLLM_FUZZ_CHECK(false && "decode accepted an id outside the vocabulary");
        } catch (const qllm::Error&) {
        }
    }
    return 0;
}
