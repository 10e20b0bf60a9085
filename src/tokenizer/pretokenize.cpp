// The pre-tokenizer regexes as hand-written matchers over code points. Each matcher returns
// where the regex's leftmost-alternative match starting at a position ends, with the same
// greedy/backtracking outcome the regex engine would produce (worked out per alternative).
#include "tokenizer/pretokenize.h"

#include <cstdio>
#include <string>
#include <utility>

#include "qllm/error.h"
#include "tokenizer/unicode.h"

namespace qllm::pretokenize {
namespace {

struct Family {
    std::string_view name;
    Config config;
};

// tokenizer.ggml.pre values and their rules, following llama.cpp's grouping of names.
constexpr Family kFamilies[] = {
    {"llama3", {Scheme::Llama3, true}},      {"llama-v3", {Scheme::Llama3, true}},
    {"llama-bpe", {Scheme::Llama3, true}},   {"falcon3", {Scheme::Llama3, true}},
    {"falcon-h1", {Scheme::Llama3, true}},   {"pixtral", {Scheme::Llama3, true}},
    {"midm-2.0", {Scheme::Llama3, true}},    {"lfm2", {Scheme::Llama3, true}},
    {"dbrx", {Scheme::Llama3, false}},       {"smaug-bpe", {Scheme::Llama3, false}},
    {"qwen2", {Scheme::Qwen2, false}},       {"deepseek-r1-qwen", {Scheme::Qwen2, false}},
    {"stablelm2", {Scheme::Qwen2, false}},   {"gpt2", {Scheme::Gpt2, false}},
    {"gpt-2", {Scheme::Gpt2, false}},        {"phi-2", {Scheme::Gpt2, false}},
    {"mpt", {Scheme::Gpt2, false}},          {"olmo", {Scheme::Gpt2, false}},
    {"jina-es", {Scheme::Gpt2, false}},      {"jina-de", {Scheme::Gpt2, false}},
    {"jina-v2-es", {Scheme::Gpt2, false}},   {"jina-v2-de", {Scheme::Gpt2, false}},
    {"gigachat", {Scheme::Gpt2, false}},     {"default", {Scheme::Default, false}},
};

constexpr uint32_t kNone = 0xFFFFFFFF;  // "code point" past the end of the range

// The text as code points, with the byte offset of each (offsets has one extra entry).
struct CodePoints {
    std::vector<uint32_t> cps;
    std::vector<size_t> offsets;

    explicit CodePoints(std::string_view text) {
        cps.reserve(text.size());
        offsets.reserve(text.size() + 1);
        for (size_t pos = 0; pos < text.size();) {
            const unicode::Decoded d = unicode::decode_utf8(text, pos);
            cps.push_back(d.cp);
            offsets.push_back(pos);
            pos += d.length;
        }
        offsets.push_back(text.size());
    }
};

// Reads code points of [begin, end); positions outside it read as kNone with no flags, which
// is how a regex sees the end of its input.
class Cursor {
public:
    Cursor(const std::vector<uint32_t>& cps, size_t end) : cps_(cps), end_(end) {}

    uint32_t cp(size_t i) const { return i < end_ ? cps_[i] : kNone; }
    uint8_t flags(size_t i) const { return i < end_ ? unicode::flags(cps_[i]) : 0; }
    bool letter(size_t i) const { return flags(i) & unicode::kLetter; }
    bool number(size_t i) const { return flags(i) & unicode::kNumber; }
    bool space(size_t i) const { return flags(i) & unicode::kWhitespace; }
    bool newline(size_t i) const { return cp(i) == '\r' || cp(i) == '\n'; }
    // [^\s\p{L}\p{N}]: anything else, unassigned code points included.
    bool other(size_t i) const {
        return i < end_ && !(flags(i) & (unicode::kLetter | unicode::kNumber | unicode::kWhitespace));
    }
    size_t end() const { return end_; }

    template <typename Pred>
    size_t skip(size_t i, Pred pred) const {
        while (i < end_ && pred(i)) ++i;
        return i;
    }

    // 's|'t|'re|'ve|'m|'ll|'d at i; returns its length or 0. With ignore_case the letters also
    // match their upper case and U+017F (long s), which case-folds to 's' in the reference
    // regex engines.
    size_t contraction(size_t i, bool ignore_case) const {
        if (cp(i) != '\'') return 0;
        const auto fold = [&](size_t k) {
            uint32_t c = cp(k);
            if (ignore_case && c >= 'A' && c <= 'Z') c += 'a' - 'A';
            if (ignore_case && c == 0x17F) c = 's';
            return c;
        };
        const uint32_t c1 = fold(i + 1);
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
        const uint32_t c2 = fold(i + 2);
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
        return 0;
    }

    // \s+(?!\S)|\s+ from i (a whitespace code point): the whole run at the end of the input,
    // else all of it but the last one, which then leads the next word; a single one stands alone.
    size_t trailing_space(size_t i) const {
        const size_t j = skip(i, [&](size_t k) { return space(k); });
        if (j == end_ || j - i == 1) return j;
        return j - 1;
    }

private:
    const std::vector<uint32_t>& cps_;
    size_t end_;
};

size_t match_gpt2(const Cursor& c, size_t i) {
    if (const size_t n = c.contraction(i, false)) return i + n;
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional space, then a run of one class.
    const size_t start = (c.cp(i) == ' ' && i + 1 < c.end() && !c.space(i + 1)) ? i + 1 : i;
    if (c.letter(start)) return c.skip(start, [&](size_t k) { return c.letter(k); });
    if (c.number(start)) return c.skip(start, [&](size_t k) { return c.number(k); });
    if (c.other(start)) return c.skip(start, [&](size_t k) { return c.other(k); });
    return c.trailing_space(i);
}

// Llama 3 (max_digits 3) and Qwen 2 (max_digits 1).
size_t match_llama3(const Cursor& c, size_t i, size_t max_digits) {
    if (const size_t n = c.contraction(i, true)) return i + n;
    const auto letters_from = [&](size_t k) { return c.skip(k, [&](size_t m) { return c.letter(m); }); };
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c.letter(i)) return letters_from(i + 1);
    if (!c.newline(i) && !c.number(i) && c.letter(i + 1)) return letters_from(i + 2);
    // \p{N}{1,3}
    if (c.number(i)) {
        size_t k = i + 1;
        while (k - i < max_digits && c.number(k)) ++k;
        return k;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    const size_t start = (c.cp(i) == ' ' && c.other(i + 1)) ? i + 1 : i;
    if (c.other(start)) {
        const size_t k = c.skip(start, [&](size_t m) { return c.other(m); });
        return c.skip(k, [&](size_t m) { return c.newline(m); });
    }
    // \s*[\r\n]+: the whitespace run up to and including its last line break.
    size_t after_newline = 0;
    for (size_t k = i; k < c.end() && c.space(k); ++k) {
        if (c.newline(k)) after_newline = k + 1;
    }
    if (after_newline > 0) return after_newline;
    return c.trailing_space(i);
}

using Span = std::pair<size_t, size_t>;  // [first, last) code-point indices

// Splits each span into the matches of `match` (returns the end of the match at i, or i when
// none starts there) and the stretches between them, as llama.cpp's regex split does.
template <typename Match>
void refine(std::vector<Span>& spans, const std::vector<uint32_t>& cps, Match match) {
    std::vector<Span> out;
    out.reserve(spans.size());
    for (const auto& [first, last] : spans) {
        const Cursor c(cps, last);
        size_t gap = first;
        for (size_t i = first; i < last;) {
            const size_t end = match(c, i);
            if (end == i) {
                ++i;
                continue;
            }
            if (gap < i) out.emplace_back(gap, i);
            out.emplace_back(i, end);
            gap = i = end;
        }
        if (gap < last) out.emplace_back(gap, last);
    }
    spans.swap(out);
}

// Matches a run of code points that satisfy pred.
template <typename Pred>
auto run_of(Pred pred) {
    return [pred](const Cursor& c, size_t i) { return c.skip(i, [&](size_t k) { return pred(c.cp(k)); }); };
}

bool is_ascii_digit(uint32_t cp) { return cp >= '0' && cp <= '9'; }

}  // namespace

Config config_for(std::string_view pre) {
    if (pre.empty()) {
        std::fprintf(stderr,
                     "qllm: warning: the vocabulary has no tokenizer.ggml.pre; using the 'default' "
                     "BPE pre-tokenizer (tokenization may not match the model's)\n");
        return {Scheme::Default, false};
    }
    for (const Family& f : kFamilies) {
        if (f.name == pre) return f.config;
    }
    std::string known;
    for (const Family& f : kFamilies) known += (known.empty() ? "" : ", ") + std::string(f.name);
    fail("unknown BPE pre-tokenizer '{}' (tokenizer.ggml.pre); supported: {}", pre, known);
}

void split(Scheme scheme, std::string_view text, std::vector<std::string_view>& words) {
    if (text.empty()) return;
    const CodePoints cp(text);
    std::vector<Span> spans{{0, cp.cps.size()}};
    switch (scheme) {
        case Scheme::Gpt2:
            refine(spans, cp.cps, match_gpt2);
            break;
        case Scheme::Llama3:
            refine(spans, cp.cps, [](const Cursor& c, size_t i) { return match_llama3(c, i, 3); });
            break;
        case Scheme::Qwen2:
            refine(spans, cp.cps, [](const Cursor& c, size_t i) { return match_llama3(c, i, 1); });
            break;
        case Scheme::Default: {
            refine(spans, cp.cps, run_of([](uint32_t x) {
                       return (unicode::flags(x) & unicode::kPunctuation) ||
                              (x < 0x80 && std::string_view("$+<=>^~|").find(static_cast<char>(x)) !=
                                               std::string_view::npos);
                   }));
            refine(spans, cp.cps, match_gpt2);
            refine(spans, cp.cps, run_of([](uint32_t x) { return unicode::is_number(x); }));
            refine(spans, cp.cps, [](const Cursor& c, size_t i) {
                const bool triple = is_ascii_digit(c.cp(i)) && is_ascii_digit(c.cp(i + 1)) &&
                                    is_ascii_digit(c.cp(i + 2));
                return triple ? i + 3 : i;
            });
            break;
        }
    }
    for (const auto& [first, last] : spans) {
        words.push_back(text.substr(cp.offsets[first], cp.offsets[last] - cp.offsets[first]));
    }
}

}  // namespace qllm::pretokenize
