// Byte-level BPE tests: the Llama 3 and Qwen 3 vocabularies against reference ids, round trips,
// the pre-tokenizer splits, the byte alphabet, Unicode classes and the merge order.
#include <algorithm>
#include <chrono>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "qllm/error.h"
#include "support.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace qllm {
namespace {

using test::shared_dir;

std::filesystem::path golden_dir() { return shared_dir() / "golden" / "tokenizer"; }

// Loads a vocabulary file and builds its tokenizer; `seconds` gets the time both took.
Tokenizer load_tokenizer(const std::filesystem::path& path, double* seconds = nullptr) {
    const auto start = std::chrono::steady_clock::now();
    gguf::File file(path.string());
    Tokenizer tok(std::make_shared<const Vocab>(Vocab::load(file)));
    if (seconds) *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return tok;
}

// Every case's ids must match; decode must give back the text.
void expect_golden(const std::string& name) {
    const auto golden = nlohmann::json::parse(test::read_text(golden_dir() / (name + ".json")));
    double seconds = 0;
    const Tokenizer tok = load_tokenizer(golden_dir() / (name + "-vocab.gguf"), &seconds);
    const bool add_bos = golden.at("add_bos").get<bool>();
    const bool parse_special = golden.at("parse_special").get<bool>();
    const auto& cases = golden.at("cases");
    ASSERT_GE(cases.size(), 47u);
    size_t matched = 0, round_trips = 0;
    for (const auto& c : cases) {
        const std::string text = c.at("text").get<std::string>();
        const std::vector<TokenId> expected = c.at("ids").get<std::vector<TokenId>>();
        const std::vector<TokenId> ids = tok.encode(text, add_bos, parse_special);
        EXPECT_EQ(ids, expected) << "text: '" << text << "'";
        EXPECT_EQ(tok.decode(ids), text);
        matched += ids == expected;
        round_trips += tok.decode(ids) == text;
    }
    std::printf("[ %s ] %zu/%zu ids, %zu/%zu round trips, vocabulary loaded in %.0f ms\n", name.c_str(),
                matched, cases.size(), round_trips, cases.size(), seconds * 1e3);
}

TEST(BpeGolden, Llama3MatchesReference) {
    QLLM_REQUIRE_SHARED(golden_dir() / "llama3.json");
    QLLM_REQUIRE_SHARED(golden_dir() / "llama3-vocab.gguf");
    expect_golden("llama3");
}

TEST(BpeGolden, Qwen3MatchesReference) {
    QLLM_REQUIRE_SHARED(golden_dir() / "qwen3.json");
    QLLM_REQUIRE_SHARED(golden_dir() / "qwen3-vocab.gguf");
    expect_golden("qwen3");
}

TEST(BpeGolden, Llama3SpecialTokensNeedParsing) {
    const auto path = golden_dir() / "llama3-vocab.gguf";
    QLLM_REQUIRE_SHARED(path);
    const Tokenizer tok = load_tokenizer(path);
    EXPECT_EQ(tok.vocab().pre, "llama-bpe");
    const std::string text = "<|begin_of_text|>Hello world<|eot_id|>";
    EXPECT_EQ(tok.encode(text, false, true), (std::vector<TokenId>{128000, 9906, 1917, 128009}));
    const std::vector<TokenId> plain = tok.encode(text, false, false);
    for (TokenId id : plain) EXPECT_LT(id, 128000) << "special token matched without parse_special";
    EXPECT_EQ(tok.decode(plain), text);
    EXPECT_EQ(tok.decode(tok.encode(text, false, true), true), text);
    EXPECT_EQ(tok.encode("Hello", true, false), (std::vector<TokenId>{128000, 9906}));
}

TEST(BpeGolden, Qwen3ChatMarkers) {
    const auto path = golden_dir() / "qwen3-vocab.gguf";
    QLLM_REQUIRE_SHARED(path);
    const Tokenizer tok = load_tokenizer(path);
    const Vocab& v = tok.vocab();
    EXPECT_EQ(v.pre, "qwen2");
    const std::string text = "<|im_start|>user\nHello<|im_end|>";
    EXPECT_EQ(tok.encode(text, false, true),
              (std::vector<TokenId>{v.find("<|im_start|>"), v.find("user"), v.find("Ċ"), v.find("Hello"),
                                    v.find("<|im_end|>")}));
    EXPECT_EQ(tok.decode(tok.encode(text, false, false)), text);
    EXPECT_EQ(tok.decode(tok.encode(text, false, true), true), text);
}

TEST(BpeGolden, ArbitraryBytesRoundTrip) {
    const auto path = golden_dir() / "llama3-vocab.gguf";
    QLLM_REQUIRE_SHARED(path);
    const Tokenizer tok = load_tokenizer(path);
    std::mt19937 rng(7);
    for (int round = 0; round < 50; ++round) {
        std::string text(rng() % 64, '\0');
        for (char& c : text) c = static_cast<char>(rng());
        EXPECT_EQ(tok.decode(tok.encode(text, false)), text);
    }
    const std::string bad = "\xff\xfe caf\xc3 \xe2\x82 \xed\xa0\x80 ok";
    EXPECT_EQ(tok.decode(tok.encode(bad, false)), bad);
}

TEST(BpeUnicode, Categories) {
    using namespace unicode;
    for (uint32_t cp : {0x61u, 0x5Au, 0xC4u, 0x4E2Du, 0x0416u, 0x1780u, 0x17Fu, 0x20000u}) {
        EXPECT_EQ(flags(cp), kLetter) << std::hex << cp;
    }
    for (uint32_t cp : {0x30u, 0x39u, 0xBDu, 0x0663u, 0x2167u, 0x1D7CEu}) EXPECT_EQ(flags(cp), kNumber) << std::hex << cp;
    for (uint32_t cp : {0x21u, 0x27u, 0xBFu, 0x3001u, 0xFF0Cu}) EXPECT_EQ(flags(cp), kPunctuation) << std::hex << cp;
    for (uint32_t cp : {0x09u, 0x0Au, 0x0Du, 0x20u, 0x85u, 0xA0u, 0x2009u, 0x3000u}) {
        EXPECT_EQ(flags(cp), kWhitespace) << std::hex << cp;
    }
    // Symbols, marks, format and unassigned code points have none of the flags.
    for (uint32_t cp : {0x24u, 0x2Bu, 0x1Cu, 0x200Du, 0x0301u, 0x1F600u, 0xFFFDu, 0x0378u, 0x110000u}) {
        EXPECT_EQ(flags(cp), 0) << std::hex << cp;
    }
}

TEST(BpeUnicode, MalformedUtf8DecodesByteByByte) {
    using unicode::decode_utf8;
    EXPECT_EQ(decode_utf8("\xF0\x9F\x98\x81", 0).cp, 0x1F601u);
    EXPECT_EQ(decode_utf8("\xF0\x9F\x98\x81", 0).length, 4u);
    for (std::string_view bad : {"\x80", "\xC3", "\xC0\x80", "\xE0\x80\x80", "\xED\xA0\x80", "\xF5\x80\x80\x80",
                                 "\xE2\x82 "}) {
        const unicode::Decoded d = decode_utf8(bad, 0);
        EXPECT_EQ(d.cp, unicode::kReplacement);
        EXPECT_EQ(d.length, 1u);
    }
    std::string out;
    for (uint32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F601u}) unicode::append_utf8(out, cp);
    EXPECT_EQ(out, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x81");
}

TEST(BpeByteLevel, AlphabetCoversEveryByte) {
    EXPECT_EQ(byte_level_encode(" "), "\xC4\xA0");    // U+0120 'Ġ'
    EXPECT_EQ(byte_level_encode("\n"), "\xC4\x8A");   // U+010A 'Ċ'
    EXPECT_EQ(byte_level_encode("a!~"), "a!~");
    EXPECT_EQ(byte_level_encode("\xAD"), "\xC5\x83");  // soft hyphen is the 68th: U+0143
    std::string all;
    for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
    EXPECT_EQ(byte_level_decode(byte_level_encode(all)), all);
    // Outside the alphabet (and malformed input) is kept as is.
    EXPECT_EQ(byte_level_decode("\xE4\xB8\xAD\xFF"), "\xE4\xB8\xAD\xFF");
}

std::vector<std::string> words_of(pretokenize::Scheme scheme, std::string_view text) {
    std::vector<std::string_view> views;
    pretokenize::split(scheme, text, views);
    return {views.begin(), views.end()};
}

using Words = std::vector<std::string>;
using pretokenize::Scheme;

TEST(BpePretokenize, Llama3) {
    EXPECT_EQ(words_of(Scheme::Llama3, "Hello, y'all! How are you \xF0\x9F\x98\x81 ?"),
              (Words{"Hello", ",", " y", "'all", "!", " How", " are", " you", " \xF0\x9F\x98\x81", " ?"}));
    // Contractions ignore case (U+017F long s folds to s); a letter run takes one leading non-letter.
    EXPECT_EQ(words_of(Scheme::Llama3, "I'M we'Re it'\xC5\xBF"),
              (Words{"I", "'M", " we", "'Re", " it", "'\xC5\xBF"}));
    EXPECT_EQ(words_of(Scheme::Llama3, "\n \n\n  x"), (Words{"\n \n\n", " ", " x"}));
    EXPECT_EQ(words_of(Scheme::Llama3, "12345 (a)\n\n"), (Words{"123", "45", " (", "a", ")\n\n"}));
    EXPECT_EQ(words_of(Scheme::Llama3, "a   "), (Words{"a", "   "}));
    EXPECT_EQ(words_of(Scheme::Llama3, "\tHi\r\nyo"), (Words{"\tHi", "\r\n", "yo"}));
}

TEST(BpePretokenize, Qwen2SplitsDigits) {
    EXPECT_EQ(words_of(Scheme::Qwen2, "x12345'S"), (Words{"x", "1", "2", "3", "4", "5", "'S"}));
}

TEST(BpePretokenize, Gpt2) {
    EXPECT_EQ(words_of(Scheme::Gpt2, "I'M it's  Hello  "), (Words{"I", "'", "M", " it", "'s", " ", " Hello", "  "}));
    EXPECT_EQ(words_of(Scheme::Gpt2, "abc 12345 ?!\n\nx"), (Words{"abc", " 12345", " ?!", "\n", "\n", "x"}));
}

TEST(BpePretokenize, Default) {
    EXPECT_EQ(words_of(Scheme::Default, "hello world1234567!!a+b"),
              (Words{"hello", " world", "123", "456", "7", "!!", "a", "+", "b"}));
    EXPECT_EQ(words_of(Scheme::Default, "y'all"), (Words{"y", "'", "all"}));
}

TEST(BpePretokenize, WordsCoverTheText) {
    std::mt19937 rng(1);
    const std::string_view alphabet[] = {"a", "Z", " ", "\n", "\r", "\t", "7", "'", "s", "!", "\xC3\xA9",
                                         "\xE4\xB8\xAD", "\xF0\x9F\x98\x81", "\xFF", "\xC3", "\xE2\x80\x83"};
    for (Scheme scheme : {Scheme::Gpt2, Scheme::Llama3, Scheme::Qwen2, Scheme::Default}) {
        for (int round = 0; round < 200; ++round) {
            std::string text;
            for (int n = rng() % 24; n > 0; --n) text += alphabet[rng() % std::size(alphabet)];
            std::string joined;
            for (const std::string& w : words_of(scheme, text)) {
                EXPECT_FALSE(w.empty());
                joined += w;
            }
            EXPECT_EQ(joined, text);
        }
    }
}

TEST(BpePretokenize, Names) {
    EXPECT_EQ(pretokenize::config_for("llama-bpe").scheme, Scheme::Llama3);
    EXPECT_TRUE(pretokenize::config_for("llama-bpe").ignore_merges);
    EXPECT_EQ(pretokenize::config_for("qwen2").scheme, Scheme::Qwen2);
    EXPECT_FALSE(pretokenize::config_for("qwen2").ignore_merges);
    EXPECT_EQ(pretokenize::config_for("gpt-2").scheme, Scheme::Gpt2);
    EXPECT_EQ(pretokenize::config_for("default").scheme, Scheme::Default);
}

// A byte-level vocabulary: the 256 byte pieces, then `extra` pieces with their kinds.
Vocab make_bpe_vocab(const std::string& pre, const std::vector<std::pair<std::string, TokenKind>>& extra,
                     const std::vector<std::string>& merges) {
    Vocab v;
    v.model = "gpt2";
    v.pre = pre;
    v.add_space_prefix = false;
    for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_level_encode(std::string(1, static_cast<char>(b))));
    v.kinds.assign(256, TokenKind::Normal);
    for (const auto& [text, kind] : extra) {
        v.tokens.push_back(text);
        v.kinds.push_back(kind);
    }
    v.scores.assign(v.tokens.size(), 0.0f);
    v.merges = merges;
    v.build_index();
    v.find_end_of_generation_tokens();
    return v;
}

Tokenizer make_tokenizer(Vocab v) { return Tokenizer(std::make_shared<const Vocab>(std::move(v))); }

std::vector<std::string> pieces(const Tokenizer& tok, const std::vector<TokenId>& ids) {
    std::vector<std::string> out;
    for (TokenId id : ids) out.push_back(tok.vocab().tokens[id]);
    return out;
}

constexpr TokenKind kNormal = TokenKind::Normal;

TEST(BpeEncoder, MergesLowestRankFirst) {
    const std::vector<std::pair<std::string, TokenKind>> extra = {{"ab", kNormal}, {"bc", kNormal}};
    const Tokenizer bc_first = make_tokenizer(make_bpe_vocab("gpt2", extra, {"b c", "a b"}));
    EXPECT_EQ(pieces(bc_first, bc_first.encode("abc", false)), (Words{"a", "bc"}));
    const Tokenizer ab_first = make_tokenizer(make_bpe_vocab("gpt2", extra, {"a b", "b c"}));
    EXPECT_EQ(pieces(ab_first, ab_first.encode("abc", false)), (Words{"ab", "c"}));
}

TEST(BpeEncoder, EqualRanksMergeLeftmostFirst) {
    const Tokenizer tok = make_tokenizer(make_bpe_vocab("gpt2", {{"aa", kNormal}, {"aaaa", kNormal}},
                                                        {"a a", "aa aa"}));
    EXPECT_EQ(pieces(tok, tok.encode("aaaaa", false)), (Words{"aaaa", "a"}));
    EXPECT_EQ(pieces(tok, tok.encode("aaa", false)), (Words{"aa", "a"}));
    // A space is spelled U+0120 and merges like any other byte.
    const Tokenizer spaced = make_tokenizer(make_bpe_vocab("gpt2", {{"\xC4\xA0x", kNormal}}, {"\xC4\xA0 x"}));
    EXPECT_EQ(pieces(spaced, spaced.encode(" x x", false)), (Words{"\xC4\xA0x", "\xC4\xA0x"}));
}

TEST(BpeEncoder, IgnoreMergesTakesWholeWordPieces) {
    // "abc" is a piece that no merge chain reaches: only Llama 3's rules emit it.
    const std::vector<std::pair<std::string, TokenKind>> extra = {{"abc", kNormal}, {"ab", kNormal}};
    const Tokenizer llama = make_tokenizer(make_bpe_vocab("llama-bpe", extra, {"a b"}));
    EXPECT_EQ(pieces(llama, llama.encode("abc", false)), (Words{"abc"}));
    const Tokenizer qwen = make_tokenizer(make_bpe_vocab("qwen2", extra, {"a b"}));
    EXPECT_EQ(pieces(qwen, qwen.encode("abc", false)), (Words{"ab", "c"}));
}

TEST(BpeEncoder, SpecialTokensWholeOnlyWhenParsing) {
    const Tokenizer tok = make_tokenizer(make_bpe_vocab(
        "qwen2", {{"<|im_start|>", TokenKind::Control}, {"<think>", TokenKind::UserDefined}}, {"a b"}));
    const TokenId im_start = tok.vocab().find("<|im_start|>");
    const TokenId think = tok.vocab().find("<think>");
    const std::string text = "<|im_start|>a<think>";
    const std::vector<TokenId> parsed = tok.encode(text, false, true);
    EXPECT_EQ(pieces(tok, parsed), (Words{"<|im_start|>", "a", "<think>"}));
    const std::vector<TokenId> plain = tok.encode(text, false, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), im_start), 0);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), think), 1);  // user-defined: always whole
    EXPECT_EQ(tok.decode(plain), text);
    EXPECT_EQ(tok.decode(parsed), "a<think>");
    EXPECT_EQ(tok.decode(parsed, true), text);
}

TEST(BpeEncoder, UnknownPreTokenizerIsAnError) {
    try {
        make_tokenizer(make_bpe_vocab("no-such-pre", {}, {"a b"}));
        FAIL() << "expected qllm::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'no-such-pre'"), std::string::npos) << e.what();
    }
}

TEST(BpeEncoder, MissingPreTokenizerFallsBackToDefault) {
    testing::internal::CaptureStderr();
    const Tokenizer tok = make_tokenizer(make_bpe_vocab("", {}, {"a b"}));
    EXPECT_NE(testing::internal::GetCapturedStderr().find("default"), std::string::npos);
    EXPECT_EQ(tok.decode(tok.encode("x, 1234", false)), "x, 1234");
}

TEST(BpeEncoder, MissingByteTokenIsAnError) {
    Vocab v = make_bpe_vocab("gpt2", {}, {"a b"});
    v.tokens[0x41] = "not-A";
    v.build_index();
    const Tokenizer tok = make_tokenizer(std::move(v));
    EXPECT_THROW(tok.encode("A", false), Error);
    EXPECT_EQ(tok.encode("B", false), (std::vector<TokenId>{0x42}));
}

}  // namespace
}  // namespace qllm
