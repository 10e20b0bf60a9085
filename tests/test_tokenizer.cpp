// Tokenizer tests: the SentencePiece tokenizer against llama.cpp's ids for stories260K, decoding,
// special-token parsing, the UTF-8 streamer, and Vocab::load on bad vocabularies.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "qllm/error.h"
#include "support.h"
#include "tokenizer/tokenizer.h"

namespace qllm {
namespace {

using test::shared_dir;

std::filesystem::path stories_path() { return shared_dir() / "models" / "stories260K.gguf"; }

std::shared_ptr<const Vocab> load_stories_vocab() {
    gguf::File file(stories_path().string());
    return std::make_shared<const Vocab>(Vocab::load(file));
}

// A small SentencePiece vocabulary: <unk> <s> </s>, all 256 byte tokens, then pieces whose
// scores decide the merge order.
Vocab make_spm_vocab(const std::vector<std::pair<std::string, float>>& pieces, bool with_bytes = true) {
    Vocab v;
    v.model = "llama";
    v.tokens = {"<unk>", "<s>", "</s>"};
    v.kinds = {TokenKind::Unknown, TokenKind::Control, TokenKind::Control};
    v.scores = {0.0f, 0.0f, 0.0f};
    v.unk = 0;
    v.bos = 1;
    v.eos = 2;
    v.add_bos = true;
    if (with_bytes) {
        for (int b = 0; b < 256; ++b) {
            v.tokens.push_back(fmt::format("<0x{:02X}>", b));
            v.kinds.push_back(TokenKind::Byte);
            v.scores.push_back(0.0f);
        }
    }
    for (const auto& [text, score] : pieces) {
        v.tokens.push_back(text);
        v.kinds.push_back(TokenKind::Normal);
        v.scores.push_back(score);
    }
    v.build_index();
    v.find_end_of_generation_tokens();
    return v;
}

Tokenizer make_tokenizer(Vocab v) { return Tokenizer(std::make_shared<const Vocab>(std::move(v))); }

std::vector<std::string> pieces_of(const Tokenizer& tok, const std::vector<TokenId>& ids) {
    std::vector<std::string> texts;
    for (TokenId id : ids) texts.push_back(tok.vocab().tokens[id]);
    return texts;
}

TEST(TokenizerGolden, Stories260KMatchesReference) {
    const auto golden_path = shared_dir() / "golden" / "tokenizer" / "stories260K.json";
    QLLM_REQUIRE_SHARED(golden_path);
    QLLM_REQUIRE_SHARED(stories_path());
    const auto golden = nlohmann::json::parse(test::read_text(golden_path));
    ASSERT_FALSE(golden.at("add_bos").get<bool>());
    ASSERT_FALSE(golden.at("parse_special").get<bool>());

    const Tokenizer tok(load_stories_vocab());
    const auto& cases = golden.at("cases");
    ASSERT_GT(cases.size(), 40u);
    for (const auto& c : cases) {
        const std::string text = c.at("text").get<std::string>();
        const std::vector<TokenId> expected = c.at("ids").get<std::vector<TokenId>>();
        EXPECT_EQ(tok.encode(text, false, false), expected) << "text: '" << text << "'";
    }
}

TEST(TokenizerGolden, Stories260KVocabularyMetadata) {
    QLLM_REQUIRE_SHARED(stories_path());
    const auto vocab = load_stories_vocab();
    EXPECT_EQ(vocab->model, "llama");
    EXPECT_EQ(vocab->size(), 512u);
    EXPECT_EQ(vocab->bos, 1);
    EXPECT_EQ(vocab->eos, 2);
    EXPECT_EQ(vocab->unk, 0);
    EXPECT_EQ(vocab->pad, -1);  // stored as 0xFFFFFFFF: "no token"
    EXPECT_TRUE(vocab->add_bos);
    EXPECT_TRUE(vocab->add_space_prefix);
    EXPECT_EQ(vocab->kinds[3], TokenKind::Byte);
    EXPECT_EQ(vocab->find("▁Once"), 403);
}

TEST(TokenizerGolden, Stories260KPromptWithBos) {
    QLLM_REQUIRE_SHARED(stories_path());
    const Tokenizer tok(load_stories_vocab());
    EXPECT_EQ(tok.encode("Once upon a time", true), (std::vector<TokenId>{1, 403, 407, 261, 378}));
    // The prompt of golden/prompt.txt, whose ids the README lists.
    const auto prompt_path = shared_dir() / "golden" / "prompt.txt";
    QLLM_REQUIRE_SHARED(prompt_path);
    const std::vector<TokenId> expected = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                           315, 421, 395, 317, 426, 338, 401, 396, 267, 337};
    EXPECT_EQ(tok.encode(test::read_text(prompt_path), true), expected);
}

TEST(TokenizerGolden, Stories260KGreedyContinuationDecodes) {
    QLLM_REQUIRE_SHARED(stories_path());
    const Tokenizer tok(load_stories_vocab());
    // The first 16 generated ids of golden/stories260K/F32.greedy.txt.
    const std::vector<TokenId> gen = {432, 383, 286, 261, 376, 298, 315, 421,
                                      395, 317, 426, 338, 401, 396, 267, 337};
    EXPECT_EQ(tok.decode(gen), ", there was a little girl named Lily. She loved to play");
    std::string streamed;
    for (TokenId id : gen) streamed += tok.piece(id);
    EXPECT_EQ(streamed, ", there was a little girl named Lily. She loved to play");
    EXPECT_EQ(tok.decode({1, 403, 407, 261, 378}), " Once upon a time");  // BOS keeps the space
    EXPECT_EQ(tok.decode({403, 407, 261, 378}), "Once upon a time");
    EXPECT_EQ(tok.decode({1, 403, 2}, true), "<s> Once</s>");
}

TEST(TokenizerGolden, Stories260KRoundTrips) {
    const auto golden_path = shared_dir() / "golden" / "tokenizer" / "stories260K.json";
    QLLM_REQUIRE_SHARED(golden_path);
    QLLM_REQUIRE_SHARED(stories_path());
    const Tokenizer tok(load_stories_vocab());
    const auto golden = nlohmann::json::parse(test::read_text(golden_path));
    for (const auto& c : golden.at("cases")) {
        const std::string text = c.at("text").get<std::string>();
        EXPECT_EQ(tok.decode(tok.encode(text, false)), text) << "text: '" << text << "'";
    }
}

TEST(TokenizerGolden, BpeVocabulariesLoad) {
    const auto llama3_path = shared_dir() / "golden" / "tokenizer" / "llama3-vocab.gguf";
    const auto qwen3_path = shared_dir() / "golden" / "tokenizer" / "qwen3-vocab.gguf";
    QLLM_REQUIRE_SHARED(llama3_path);
    QLLM_REQUIRE_SHARED(qwen3_path);
    {
        gguf::File file(llama3_path.string());
        const auto vocab = std::make_shared<const Vocab>(Vocab::load(file));
        EXPECT_EQ(vocab->model, "gpt2");
        EXPECT_EQ(vocab->pre, "llama-bpe");
        EXPECT_EQ(vocab->size(), 128256u);
        EXPECT_EQ(vocab->merges.size(), 280147u);
        EXPECT_EQ(vocab->bos, 128000);
        EXPECT_EQ(vocab->eos, 128001);
        EXPECT_EQ(vocab->eot, 128009);  // found by its text, <|eot_id|>
        EXPECT_TRUE(vocab->add_bos);
        EXPECT_FALSE(vocab->add_space_prefix);
        const Tokenizer tok(vocab);
        EXPECT_TRUE(tok.is_eog(128001));
        EXPECT_TRUE(tok.is_eog(128009));
        EXPECT_FALSE(tok.is_eog(128000));
        EXPECT_EQ(tok.piece(128000), "");
        EXPECT_EQ(tok.piece(128000, true), "<|begin_of_text|>");
        EXPECT_EQ(tok.piece(vocab->find("\xC4\xA0world")), " world");
    }
    {
        gguf::File file(qwen3_path.string());
        const auto vocab = std::make_shared<const Vocab>(Vocab::load(file));
        EXPECT_EQ(vocab->size(), 151669u);
        EXPECT_EQ(vocab->bos, -1);
        EXPECT_EQ(vocab->eos, 151645);
        EXPECT_FALSE(vocab->add_bos);
        const Tokenizer tok(vocab);
        EXPECT_TRUE(tok.is_eog(151645));  // <|im_end|>
        EXPECT_TRUE(tok.is_eog(151643));  // <|endoftext|>
    }
}

TEST(TokenizerSpm, MergesHighestScoreFirst) {
    // "ab" outranks "bc": "abc" becomes "ab" + "c" even though "bc" also exists.
    const Tokenizer tok = make_tokenizer(make_spm_vocab(
        {{"a", -10}, {"b", -10}, {"c", -10}, {"ab", -1}, {"bc", -2}, {"\xE2\x96\x81", -5}}));
    const auto ids = tok.encode("abc", false);
    EXPECT_EQ(pieces_of(tok, ids), (std::vector<std::string>{"\xE2\x96\x81", "ab", "c"}));
}

TEST(TokenizerSpm, EqualScoresMergeLeftmostFirst) {
    // "aa" merges pairwise from the left: "aaa" -> "aa" + "a".
    const Tokenizer tok = make_tokenizer(make_spm_vocab({{"a", -10}, {"aa", -1}}));
    const auto ids = tok.encode("aaa", false);
    // The space prefix is not a piece here, so it falls back to the byte 0xE2 0x96 0x81.
    EXPECT_EQ(pieces_of(tok, ids),
              (std::vector<std::string>{"<0xE2>", "<0x96>", "<0x81>", "aa", "a"}));
}

TEST(TokenizerSpm, MergesOnlyIntoVocabularyPieces) {
    // "abc" is a piece but neither "ab" nor "bc" is, so it can never be reached.
    Vocab v = make_spm_vocab({{"a", -1}, {"b", -1}, {"c", -1}, {"abc", 0}});
    v.add_space_prefix = false;
    const Tokenizer no_prefix = make_tokenizer(std::move(v));
    EXPECT_EQ(pieces_of(no_prefix, no_prefix.encode("abc", false)),
              (std::vector<std::string>{"a", "b", "c"}));
}

TEST(TokenizerSpm, ByteFallbackAndMissingByteToken) {
    Vocab v = make_spm_vocab({{"a", -1}}, /*with_bytes=*/false);
    v.add_space_prefix = false;
    const Tokenizer tok = make_tokenizer(std::move(v));
    EXPECT_EQ(pieces_of(tok, tok.encode("aa", false)), (std::vector<std::string>{"a", "a"}));
    // "é" is not a piece and there are no <0xXX> tokens: a clear error at encode time.
    try {
        tok.encode("a\xC3\xA9", false);
        FAIL() << "expected a qllm::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("<0xC3>"), std::string::npos) << e.what();
    }
}

TEST(TokenizerSpm, ParseSpecialSplitsControlTokens) {
    Vocab v = make_spm_vocab({{"\xE2\x96\x81hi", -1}, {"hi", -2}, {"<", -3}, {"s", -3}, {">", -3}});
    const Tokenizer tok = make_tokenizer(std::move(v));
    // Parsed: <s> is one token and the text after it gets a fresh space prefix.
    EXPECT_EQ(pieces_of(tok, tok.encode("hi<s>hi", false, true)),
              (std::vector<std::string>{"\xE2\x96\x81hi", "<s>", "\xE2\x96\x81hi"}));
    // Not parsed: the characters are ordinary text.
    EXPECT_EQ(pieces_of(tok, tok.encode("hi<s>", false, false)),
              (std::vector<std::string>{"\xE2\x96\x81hi", "<", "s", ">"}));
    // A special token at the very start: no space prefix before it, one after it.
    EXPECT_EQ(pieces_of(tok, tok.encode("</s>hi", true, true)),
              (std::vector<std::string>{"<s>", "</s>", "\xE2\x96\x81hi"}));
}

TEST(TokenizerSpm, UserDefinedTokensAlwaysMatch) {
    Vocab v = make_spm_vocab({{"x", -1}});
    v.tokens.push_back("[TAG]");
    v.kinds.push_back(TokenKind::UserDefined);
    v.scores.push_back(0.0f);
    v.add_space_prefix = false;
    v.build_index();
    const Tokenizer tok = make_tokenizer(std::move(v));
    EXPECT_EQ(pieces_of(tok, tok.encode("x[TAG]x", false, false)),
              (std::vector<std::string>{"x", "[TAG]", "x"}));
    EXPECT_EQ(tok.piece(tok.vocab().find("[TAG]")), "[TAG]");
}

TEST(TokenizerSpm, PiecesOfEachKind) {
    Vocab v = make_spm_vocab({{"\xE2\x96\x81the", -1}});
    v.tokens.push_back("<unused0>");
    v.kinds.push_back(TokenKind::Unused);
    v.scores.push_back(0.0f);
    v.build_index();
    const Tokenizer tok = make_tokenizer(std::move(v));
    EXPECT_EQ(tok.piece(tok.vocab().find("\xE2\x96\x81the")), " the");
    EXPECT_EQ(tok.piece(3 + 0x41), "A");     // <0x41>
    EXPECT_EQ(tok.piece(3 + 0xE2), "\xE2");  // a fragment of a character
    EXPECT_EQ(tok.piece(1), "");
    EXPECT_EQ(tok.piece(1, true), "<s>");
    EXPECT_EQ(tok.piece(0), "");
    EXPECT_EQ(tok.piece(0, true), "<unk>");
    EXPECT_EQ(tok.piece(tok.vocab().find("<unused0>")), "");
    EXPECT_THROW(tok.piece(-1), Error);
    EXPECT_THROW(tok.piece(static_cast<TokenId>(tok.vocab().size())), Error);
}

TEST(TokenizerSpm, EndOfGenerationTokens) {
    Vocab v = make_spm_vocab({{"a", -1}});
    v.tokens.push_back("<|im_end|>");
    v.kinds.push_back(TokenKind::Normal);
    v.scores.push_back(0.0f);
    v.build_index();
    v.find_end_of_generation_tokens();
    const TokenId im_end = v.find("<|im_end|>");
    EXPECT_EQ(v.eot, im_end);
    EXPECT_EQ(v.kinds[im_end], TokenKind::Control);  // never printed as text
    const Tokenizer tok = make_tokenizer(std::move(v));
    EXPECT_TRUE(tok.is_eog(2));
    EXPECT_TRUE(tok.is_eog(im_end));
    EXPECT_FALSE(tok.is_eog(1));
    EXPECT_FALSE(tok.is_eog(-1));
}

TEST(TokenizerSpm, EmptyTextGivesOnlyBos) {
    const Tokenizer tok = make_tokenizer(make_spm_vocab({{"a", -1}}));
    EXPECT_TRUE(tok.encode("", false).empty());
    EXPECT_EQ(tok.encode("", true), (std::vector<TokenId>{1}));
    EXPECT_EQ(tok.decode({}), "");
}

TEST(TokenizerBpe, Gpt2EncodeMergesPieces) {
    // The BPE encoder itself is tested in test_bpe.cpp; this checks the routing.
    Vocab v;
    v.model = "gpt2";
    v.pre = "gpt-2";
    v.tokens = {"a", "b", "ab"};
    v.kinds = {TokenKind::Normal, TokenKind::Normal, TokenKind::Normal};
    v.scores = {0, 0, 0};
    v.merges = {"a b"};
    v.add_space_prefix = false;
    v.build_index();
    const Tokenizer tok = make_tokenizer(std::move(v));
    EXPECT_EQ(tok.encode("ab", false), (std::vector<TokenId>{2}));
}

TEST(TokenizerBpe, Gpt2PiecesDecodeByteLevelAlphabet) {
    Vocab v;
    v.model = "gpt2";
    // "Ġ" (U+0120) is byte 0x20, "Ċ" (U+010A) is 0x0A; "Ã©" spells the two bytes of "é".
    v.tokens = {"\xC4\xA0world", "\xC4\x8A", "\xC3\x83\xC2\xA9"};
    v.kinds = {TokenKind::Normal, TokenKind::Normal, TokenKind::Normal};
    v.scores = {0, 0, 0};
    v.merges = {"a b"};
    v.add_space_prefix = false;
    v.build_index();
    const Tokenizer tok = make_tokenizer(std::move(v));
    EXPECT_EQ(tok.piece(0), " world");
    EXPECT_EQ(tok.piece(1), "\n");
    EXPECT_EQ(tok.piece(2), "\xC3\xA9");
    EXPECT_EQ(tok.decode({0, 1}), " world\n");  // no space prefix to strip
}

// ---- Vocab validation on hand-made vocabularies -------------------------------------------

void expect_invalid(const Vocab& v, const std::string& needle) {
    try {
        v.validate();
        FAIL() << "expected a qllm::Error mentioning '" << needle << "'";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(TokenizerVocab, ValidateRejectsInconsistentVocabularies) {
    const Vocab good = make_spm_vocab({{"a", -1}});
    EXPECT_NO_THROW(good.validate());

    Vocab v = good;
    v.scores.pop_back();
    expect_invalid(v, "tokenizer.ggml.scores");

    v = good;
    v.kinds.push_back(TokenKind::Normal);
    expect_invalid(v, "tokenizer.ggml.token_type");

    v = good;
    v.bos = static_cast<TokenId>(v.size());
    expect_invalid(v, "tokenizer.ggml.bos_token_id");

    v = good;
    v.kinds[5] = static_cast<TokenKind>(9);
    expect_invalid(v, "tokenizer.ggml.token_type[5] = 9");

    v = good;
    v.tokens[3] = "<byte>";
    v.build_index();
    expect_invalid(v, "<0xXX>");

    v = good;
    v.model = "xyz";
    expect_invalid(v, "unsupported tokenizer model 'xyz'");

    Vocab empty;
    empty.model = "llama";
    expect_invalid(empty, "empty");

    v = good;
    v.tokens.push_back("a");
    v.kinds.push_back(TokenKind::Normal);
    v.scores.push_back(0.0f);
    EXPECT_THROW(v.build_index(), Error);
}

// ---- Vocab::load on small GGUF files --------------------------------------------------------

struct VocabFile {
    gguf::Writer writer;
    VocabFile(std::string model, std::vector<std::string> tokens) {
        writer.set("general.architecture", gguf::Value::string("llama"));
        writer.set("tokenizer.ggml.model", gguf::Value::string(std::move(model)));
        writer.set("tokenizer.ggml.tokens", gguf::Value::string_array(std::move(tokens)));
    }
    Vocab load(const test::TempDir& dir) const {
        const auto path = (dir / "vocab.gguf").string();
        writer.write(path);
        gguf::File file(path);
        return Vocab::load(file);
    }
};

void expect_load_error(const VocabFile& f, const std::string& needle) {
    test::TempDir dir;
    try {
        f.load(dir);
        FAIL() << "expected a qllm::Error mentioning '" << needle << "'";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(TokenizerVocab, LoadAppliesLlamaDefaults) {
    test::TempDir dir;
    const VocabFile f("llama", {"<unk>", "<s>", "</s>", "\xE2\x96\x81hi"});
    const Vocab v = f.load(dir);
    EXPECT_EQ(v.size(), 4u);
    EXPECT_EQ(v.unk, 0);
    EXPECT_EQ(v.bos, 1);
    EXPECT_EQ(v.eos, 2);
    EXPECT_TRUE(v.add_bos);
    EXPECT_FALSE(v.add_eos);
    EXPECT_TRUE(v.add_space_prefix);
    EXPECT_EQ(v.scores, std::vector<float>(4, 0.0f));
    EXPECT_EQ(v.kinds, std::vector<TokenKind>(4, TokenKind::Normal));
}

TEST(TokenizerVocab, LoadReadsExplicitKeys) {
    test::TempDir dir;
    VocabFile f("llama", {"a", "b", "c"});
    const float scores[] = {-1.0f, -2.0f, -3.0f};
    const int32_t types[] = {1, 3, 4};
    f.writer.set("tokenizer.ggml.scores", gguf::Value::f32_array(scores));
    f.writer.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
    f.writer.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(2));
    f.writer.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(1));
    f.writer.set("tokenizer.ggml.padding_token_id", gguf::Value::u32(0xFFFFFFFFu));
    f.writer.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(false));
    f.writer.set("tokenizer.ggml.add_space_prefix", gguf::Value::boolean(false));
    const Vocab v = f.load(dir);
    EXPECT_EQ(v.bos, 2);
    EXPECT_EQ(v.eos, 1);
    EXPECT_EQ(v.pad, -1);
    EXPECT_FALSE(v.add_bos);
    EXPECT_FALSE(v.add_space_prefix);
    EXPECT_EQ(v.scores[2], -3.0f);
    EXPECT_EQ(v.kinds[2], TokenKind::UserDefined);
}

TEST(TokenizerVocab, LoadRejectsBadMetadata) {
    {
        VocabFile f("llama", {"a", "b"});
        const float scores[] = {0.0f};
        f.writer.set("tokenizer.ggml.scores", gguf::Value::f32_array(scores));
        expect_load_error(f, "tokenizer.ggml.scores has 1 entries but tokenizer.ggml.tokens has 2");
    }
    {
        VocabFile f("llama", {"a", "b"});
        const int32_t types[] = {1, 7};
        f.writer.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
        expect_load_error(f, "tokenizer.ggml.token_type[1] = 7");
    }
    {
        VocabFile f("llama", {"a", "b", "c"});
        f.writer.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(3));
        expect_load_error(f, "tokenizer.ggml.eos_token_id = 3");
    }
    {
        VocabFile f("xyz", {"a"});
        expect_load_error(f, "unsupported tokenizer model 'xyz'");
    }
    {
        VocabFile f("llama", {});
        expect_load_error(f, "tokenizer.ggml.tokens is empty");
    }
    {
        VocabFile f("gpt2", {"a", "b"});
        expect_load_error(f, "tokenizer.ggml.merges");
    }
    {
        VocabFile f("llama", {"a", "a"});
        expect_load_error(f, "duplicate token 'a'");
    }
    {
        VocabFile f("llama", {"a"});
        f.writer.remove("tokenizer.ggml.tokens");
        expect_load_error(f, "tokenizer.ggml.tokens");
    }
}

// ---- Utf8Streamer ---------------------------------------------------------------------------

bool ends_inside_character(const std::string& s) {
    // Walk back over continuation bytes to the lead byte and compare lengths.
    size_t i = s.size();
    size_t continuation = 0;
    while (i > 0 && (static_cast<uint8_t>(s[i - 1]) & 0xC0) == 0x80 && continuation < 3) {
        --i;
        ++continuation;
    }
    if (i == 0) return false;
    const auto lead = static_cast<uint8_t>(s[i - 1]);
    const size_t need = (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 1;
    return continuation + 1 < need;
}

TEST(Utf8Streamer, ByteByByteNeverSplitsACharacter) {
    const std::string text = "añ€🦙 ok \xE2\x96\x81 кириллица 😶\u200d🌫️ end";
    Utf8Streamer streamer;
    std::string out;
    int chunks = 0;
    for (char c : text) {
        const std::string chunk = streamer.push(std::string_view(&c, 1));
        EXPECT_FALSE(ends_inside_character(chunk)) << "chunk split a character after " << out;
        if (!chunk.empty()) {
            // Each emitted chunk is whole characters: it never starts with a continuation byte.
            EXPECT_NE(static_cast<uint8_t>(chunk[0]) & 0xC0, 0x80);
            ++chunks;
        }
        out += chunk;
    }
    out += streamer.finish();
    EXPECT_EQ(out, text);
    EXPECT_GT(chunks, 20);
}

TEST(Utf8Streamer, HoldsIncompleteTailUntilItCompletes) {
    Utf8Streamer s;
    EXPECT_EQ(s.push("ab\xF0\x9F"), "ab");
    EXPECT_EQ(s.push("\xA6"), "");
    EXPECT_EQ(s.push("\x99!"), "\xF0\x9F\xA6\x99!");
    EXPECT_EQ(s.finish(), "");
}

TEST(Utf8Streamer, InvalidBytesPassThrough) {
    Utf8Streamer s;
    EXPECT_EQ(s.push("\x80"), "\x80");          // stray continuation byte
    EXPECT_EQ(s.push("\xFF"), "\xFF");          // never valid in UTF-8
    EXPECT_EQ(s.push("\xE2\x96" "A"), "\xE2\x96" "A");  // broken sequence, then ASCII
    EXPECT_EQ(s.push("x\xE2"), "x");
    EXPECT_EQ(s.finish(), "\xE2");  // an unfinished tail is flushed raw
    EXPECT_EQ(s.finish(), "");
}

TEST(Utf8Streamer, StreamsStoriesPiecesWholeCharacters) {
    QLLM_REQUIRE_SHARED(stories_path());
    const Tokenizer tok(load_stories_vocab());
    const std::string text = "Lily saw a 🦙 and said “héllo”.";
    const auto ids = tok.encode(text, false);
    Utf8Streamer streamer;
    std::string out;
    for (TokenId id : ids) {
        const std::string chunk = streamer.push(tok.piece(id));
        EXPECT_FALSE(ends_inside_character(chunk));
        out += chunk;
    }
    out += streamer.finish();
    EXPECT_EQ(out, " " + text);  // pieces carry the space prefix; decode() strips it
    EXPECT_EQ(tok.decode(ids), text);
}

}  // namespace
}  // namespace qllm
