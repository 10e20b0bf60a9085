// Jinja lexer: template source -> text and tag tokens.
//
// Whitespace follows Hugging Face's environment (trim_blocks=True, lstrip_blocks=True):
//   - a block or comment tag's end swallows one newline right after it;
//   - spaces/tabs between a line start and a block or comment tag are dropped;
//   - `{%-`/`-%}` (and `{{-`, `-}}`, `{#-`, `-#}`) strip all whitespace on that side;
//   - `{%+`/`+%}` turn the two automatic rules off for that side;
//   - one trailing newline at the end of the source is dropped (keep_trailing_newline=False).
#include <cctype>

#include "chat/jinja_ast.h"
#include "qllm/error.h"

namespace qllm::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// What the previous tag's end asks of the text that follows it.
enum class AfterTag { Keep, StripAll, TrimNewline };

class Lexer {
public:
    explicit Lexer(std::string source) : src_(std::move(source)) {}

    std::vector<Token> run() {
        while (true) {
            size_t tag = src_.find('{', pos_);
            while (tag != std::string::npos && (tag + 1 >= src_.size() || std::string_view("{%#").find(src_[tag + 1]) == std::string_view::npos))
                tag = src_.find('{', tag + 1);
            size_t text_end = tag == std::string::npos ? src_.size() : tag;
            char kind = tag == std::string::npos ? 0 : src_[tag + 1];
            char marker = (tag != std::string::npos && tag + 2 < src_.size()) ? src_[tag + 2] : 0;
            if (marker != '-' && marker != '+') marker = 0;
            emit_text(text_end, kind, marker);
            if (tag == std::string::npos) break;
            advance_to(tag + 2 + (marker ? 1 : 0));
            if (kind == '#') lex_comment();
            else if (kind == '%' && at_raw_tag()) lex_raw();
            else lex_tag(kind == '%');
        }
        out_.push_back(Token{TokenType::End, "", line_});
        return std::move(out_);
    }

private:
    [[noreturn]] void error(const std::string& message) const {
        fail("chat template syntax error at line {}: {}", line_, message);
    }

    void advance_to(size_t to) {
        for (; pos_ < to && pos_ < src_.size(); ++pos_) if (src_[pos_] == '\n') ++line_;
    }

    // Emits the text from pos_ to `end`, trimmed by the previous tag's end and by the tag of
    // type `next_kind` ('{', '%', '#', or 0 for end of source) that follows it.
    void emit_text(size_t end, char next_kind, char next_marker) {
        size_t begin = pos_;
        if (after_ == AfterTag::StripAll) {
            while (begin < end && is_space(src_[begin])) ++begin;
        } else if (after_ == AfterTag::TrimNewline && begin < end && src_[begin] == '\n') {
            ++begin;
        }
        after_ = AfterTag::Keep;
        advance_to(begin);
        std::string text = src_.substr(begin, end - begin);
        if (next_marker == '-') {
            while (!text.empty() && is_space(text.back())) text.pop_back();
        } else if (next_marker == 0 && (next_kind == '%' || next_kind == '#')) {
            size_t line_start = text.rfind('\n');
            line_start = line_start == std::string::npos ? 0 : line_start + 1;
            bool at_line_start = line_start > 0 || begin == 0 || src_[begin - 1] == '\n';
            bool only_blanks = line_start < text.size();
            for (size_t i = line_start; i < text.size() && only_blanks; ++i) only_blanks = is_space(text[i]);
            if (at_line_start && only_blanks) text.resize(line_start);
        }
        if (!text.empty()) out_.push_back(Token{TokenType::Text, std::move(text), line_});
        advance_to(end);
    }

    void set_after(char marker) {
        after_ = marker == '-' ? AfterTag::StripAll : marker == '+' ? AfterTag::Keep : AfterTag::TrimNewline;
    }

    void lex_comment() {
        size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) error("unterminated comment");
        char marker = end > pos_ ? src_[end - 1] : 0;
        advance_to(end + 2);
        set_after(marker == '-' || marker == '+' ? marker : 0);
    }

    // `{% raw %}` (the "{%" already consumed): the text up to `{% endraw %}` is literal.
    bool at_raw_tag() const {
        size_t p = pos_;
        while (p < src_.size() && is_space(src_[p])) ++p;
        return src_.compare(p, 3, "raw") == 0 && (p + 3 >= src_.size() || !is_name_char(src_[p + 3]));
    }

    void lex_raw() {
        size_t close = src_.find("%}", pos_);
        if (close == std::string::npos) error("unterminated raw tag");
        // Jinja applies no trim_blocks after `{% raw %}`: only `-%}` strips there.
        after_ = src_[close - 1] == '-' ? AfterTag::StripAll : AfterTag::Keep;
        advance_to(close + 2);
        // Find "{%[-+]? endraw [-+]?%}".
        for (size_t search = pos_;;) {
            size_t open = src_.find("{%", search);
            if (open == std::string::npos) error("missing endraw");
            size_t p = open + 2;
            char marker = (src_[p] == '-' || src_[p] == '+') ? src_[p++] : 0;
            while (p < src_.size() && is_space(src_[p])) ++p;
            if (src_.compare(p, 6, "endraw") != 0) { search = open + 2; continue; }
            p += 6;
            while (p < src_.size() && is_space(src_[p])) ++p;
            char end_marker = (src_[p] == '-' || src_[p] == '+') ? src_[p++] : 0;
            if (src_.compare(p, 2, "%}") != 0) error("malformed endraw tag");
            emit_text(open, '%', marker);
            advance_to(p + 2);
            set_after(end_marker);
            return;
        }
    }

    // Expression tokens up to the tag's end ("%}" or "}}"), ignoring ends inside brackets.
    void lex_tag(bool is_block) {
        int start_line = line_;
        out_.push_back(Token{is_block ? TokenType::BlockBegin : TokenType::VariableBegin, "", line_});
        int depth = 0;
        const char* close = is_block ? "%}" : "}}";
        while (true) {
            while (pos_ < src_.size() && is_space(src_[pos_])) advance_to(pos_ + 1);
            if (pos_ >= src_.size()) {
                line_ = start_line;
                error(is_block ? "unterminated '{%' tag" : "unterminated '{{' tag");
            }
            if (depth == 0) {
                char marker = src_[pos_];
                size_t skip = (marker == '-' || marker == '+') ? 1 : 0;
                if (src_.compare(pos_ + skip, 2, close) == 0) {
                    advance_to(pos_ + skip + 2);
                    out_.push_back(Token{is_block ? TokenType::BlockEnd : TokenType::VariableEnd, "", line_});
                    if (is_block) set_after(skip ? marker : 0);
                    else after_ = marker == '-' && skip ? AfterTag::StripAll : AfterTag::Keep;
                    return;
                }
            }
            lex_expression_token(depth);
        }
    }

    void lex_expression_token(int& depth) {
        char c = src_[pos_];
        Token tok{TokenType::Operator, "", line_};
        if (is_name_start(c)) {
            size_t end = pos_;
            while (end < src_.size() && is_name_char(src_[end])) ++end;
            tok.type = TokenType::Name;
            tok.text = src_.substr(pos_, end - pos_);
            advance_to(end);
        } else if (std::isdigit(static_cast<unsigned char>(c))) {
            lex_number(tok);
        } else if (c == '\'' || c == '"') {
            lex_string(tok);
        } else {
            static const char* const two_char[] = {"//", "**", "==", "!=", "<=", ">="};
            for (const char* op : two_char) {
                if (src_.compare(pos_, 2, op) == 0) tok.text = op;
            }
            if (tok.text.empty()) {
                if (std::string_view("+-*/%~|.,:()[]{}<>=!").find(c) == std::string_view::npos)
                    error(std::string("unexpected character '") + c + "'");
                tok.text = std::string(1, c);
                if (c == '(' || c == '[' || c == '{') ++depth;
                if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
            }
            advance_to(pos_ + tok.text.size());
        }
        out_.push_back(std::move(tok));
    }

    void lex_number(Token& tok) {
        size_t end = pos_;
        bool is_float = false;
        auto digits = [&] { while (end < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end; };
        digits();
        if (end + 1 < src_.size() && src_[end] == '.' && std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
            is_float = true;
            ++end;
            digits();
        }
        if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
            size_t exp = end + 1;
            if (exp < src_.size() && (src_[exp] == '+' || src_[exp] == '-')) ++exp;
            if (exp < src_.size() && std::isdigit(static_cast<unsigned char>(src_[exp]))) {
                is_float = true;
                end = exp;
                digits();
            }
        }
        std::string text;
        for (size_t i = pos_; i < end; ++i) if (src_[i] != '_') text += src_[i];
        tok.text = text;
        if (is_float) {
            tok.type = TokenType::Float;
            tok.float_value = std::stod(text);
        } else {
            tok.type = TokenType::Integer;
            try {
                tok.int_value = std::stoll(text);
            } catch (const std::exception&) {
                error("integer literal out of range: " + text);
            }
        }
        advance_to(end);
    }

    static void append_utf8(std::string& out, uint32_t cp) {
        if (cp < 0x80) out += static_cast<char>(cp);
        else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    // A quoted string with Python's escapes (\n, \t, \\, \', \", \xHH, \uHHHH, ...).
    void lex_string(Token& tok) {
        char quote = src_[pos_];
        size_t p = pos_ + 1;
        std::string value;
        while (true) {
            if (p >= src_.size()) error("unterminated string literal");
            char c = src_[p];
            if (c == quote) break;
            if (c != '\\' || p + 1 >= src_.size()) { value += c; ++p; continue; }
            char e = src_[p + 1];
            p += 2;
            switch (e) {
                case 'n': value += '\n'; break;
                case 't': value += '\t'; break;
                case 'r': value += '\r'; break;
                case '\\': value += '\\'; break;
                case '\'': value += '\''; break;
                case '"': value += '"'; break;
                case 'b': value += '\b'; break;
                case 'f': value += '\f'; break;
                case 'v': value += '\v'; break;
                case 'a': value += '\a'; break;
                case '0': value += '\0'; break;
                case '\n': break;  // line continuation
                case 'x': case 'u': case 'U': {
                    size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    if (p + n > src_.size()) error("truncated escape in string literal");
                    uint32_t cp = 0;
                    for (size_t k = 0; k < n; ++k) {
                        char h = src_[p + k];
                        if (!std::isxdigit(static_cast<unsigned char>(h))) error("bad escape in string literal");
                        cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
                    }
                    append_utf8(value, cp);
                    p += n;
                    break;
                }
                default: value += '\\'; value += e;  // Python keeps unknown escapes as written
            }
        }
        tok.type = TokenType::String;
        tok.text = std::move(value);
        advance_to(p + 1);
    }

    std::string src_;
    size_t pos_ = 0;
    int line_ = 1;
    AfterTag after_ = AfterTag::Keep;
    std::vector<Token> out_;
};

// Python's str.splitlines() + "\n".join(): CRLF/CR become LF and one trailing newline goes.
std::string normalize_newlines(const std::string& source) {
    std::string out;
    out.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            out += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            out += source[i];
        }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

}  // namespace

std::vector<Token> tokenize(const std::string& source) {
    return Lexer(normalize_newlines(source)).run();
}

}  // namespace qllm::jinja
