// Code-point property lookup (a flat table for the BMP, binary search above it) and UTF-8.
#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <memory>

namespace qllm::unicode {
namespace {

// The Unicode White_Space property, which is what \s means in the tokenizers' regexes
// (Oniguruma, Rust regex). Not Python's str.isspace(), which adds U+001C..U+001F.
bool is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

uint8_t search_ranges(uint32_t cp) {
    const Range* begin = kCategoryRanges;
    const Range* end = kCategoryRanges + kCategoryRangeCount;
    const Range* it = std::lower_bound(begin, end, cp, [](const Range& r, uint32_t v) { return r.last < v; });
    uint8_t f = (it != end && it->first <= cp) ? it->flags : 0;
    if (is_white_space(cp)) f |= kWhitespace;
    return f;
}

// Most text is in the BMP; 64 KiB makes its lookups one load.
const std::array<uint8_t, 0x10000>& bmp_table() {
    static const auto table = [] {
        auto t = std::make_unique<std::array<uint8_t, 0x10000>>();
        for (uint32_t cp = 0; cp < 0x10000; ++cp) (*t)[cp] = search_ranges(cp);
        return t;
    }();
    return *table;
}

}  // namespace

uint8_t flags(uint32_t cp) {
    if (cp < 0x10000) return bmp_table()[cp];
    return cp <= 0x10FFFF ? search_ranges(cp) : 0;
}

Decoded decode_utf8(std::string_view text, size_t pos) {
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
    const uint8_t lead = byte(pos);
    if (lead < 0x80) return {lead, 1};
    uint32_t length;
    uint32_t cp;
    uint32_t min;  // smallest value this length may encode (rejects overlong forms)
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2, cp = lead & 0x1F, min = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3, cp = lead & 0x0F, min = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4, cp = lead & 0x07, min = 0x10000;
    } else {
        return {kReplacement, 1};
    }
    if (text.size() - pos < length) return {kReplacement, 1};
    for (uint32_t k = 1; k < length; ++k) {
        const uint8_t b = byte(pos + k);
        if ((b & 0xC0) != 0x80) return {kReplacement, 1};
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {kReplacement, 1};
    return {cp, length};
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

}  // namespace qllm::unicode
