// Code-point properties for the BPE pre-tokenizers (\p{L}, \p{N}, \p{P}, \s) and UTF-8
// decoding that never fails, so any byte string can be split and round-tripped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qllm::unicode {

// Property bits of a code point. A code point has at most one of Letter/Number/Punctuation
// (they are general categories); Whitespace is the Unicode White_Space property, as regex \s.
enum Flags : uint8_t {
    kLetter = 1,       // \p{L}: Lu Ll Lt Lm Lo
    kNumber = 2,       // \p{N}: Nd Nl No
    kPunctuation = 4,  // \p{P}: Pc Pd Ps Pe Pi Pf Po
    kWhitespace = 8,   // \s
};

uint8_t flags(uint32_t cp);
inline bool is_letter(uint32_t cp) { return flags(cp) & kLetter; }
inline bool is_number(uint32_t cp) { return flags(cp) & kNumber; }
inline bool is_whitespace(uint32_t cp) { return flags(cp) & kWhitespace; }

// Stands in for a byte that does not start a well-formed UTF-8 sequence.
constexpr uint32_t kReplacement = 0xFFFD;

struct Decoded {
    uint32_t cp;
    uint32_t length;  // bytes consumed, >= 1
};

// The code point starting at text[pos] (pos < text.size()). A malformed or truncated sequence
// decodes as one byte of kReplacement, so callers can keep the original bytes.
Decoded decode_utf8(std::string_view text, size_t pos);

void append_utf8(std::string& out, uint32_t cp);

// Generated range table (unicode_tables.cpp).
struct Range {
    uint32_t first;
    uint32_t last;
    uint8_t flags;
};
extern const Range kCategoryRanges[];
extern const size_t kCategoryRangeCount;

}  // namespace qllm::unicode
