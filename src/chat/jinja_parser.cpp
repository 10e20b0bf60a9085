// Jinja parser: tokens -> statement tree, with Jinja's operator precedence (loosest first):
//   a if c else b; or; and; not; comparisons and (not) in; + -; ~; * / // %; **;
//   unary - +; then postfix .attr [item] [a:b:c] (call), filters `|f` and tests `is t`.
#include <initializer_list>

#include "chat/jinja_ast.h"
#include "qllm/error.h"

namespace qllm::jinja {
namespace {

class Parser {
public:
    explicit Parser(const std::vector<Token>& tokens) : tokens_(tokens) {}

    NodeList parse_template() {
        std::string found;
        NodeList nodes = parse_until({}, found);
        return nodes;
    }

private:
    // Bounds recursion so that a hostile template cannot overflow the stack.
    struct DepthGuard {
        Parser& parser;
        explicit DepthGuard(Parser& p) : parser(p) {
            if (++parser.depth_ > kMaxDepth) parser.error("template nested too deeply");
        }
        ~DepthGuard() { --parser.depth_; }
    };
    static constexpr int kMaxDepth = 200;

    // ---- token helpers ------------------------------------------------------------------------
    const Token& peek(size_t ahead = 0) const {
        size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
        return tokens_[i];
    }
    const Token& next() {
        const Token& t = tokens_[pos_];
        if (pos_ + 1 < tokens_.size()) ++pos_;
        return t;
    }
    bool at_op(const char* op, size_t ahead = 0) const {
        return peek(ahead).type == TokenType::Operator && peek(ahead).text == op;
    }
    bool at_name(const char* name, size_t ahead = 0) const {
        return peek(ahead).type == TokenType::Name && peek(ahead).text == name;
    }
    bool skip_op(const char* op) {
        if (!at_op(op)) return false;
        next();
        return true;
    }
    bool skip_name(const char* name) {
        if (!at_name(name)) return false;
        next();
        return true;
    }

    static std::string describe(const Token& t) {
        switch (t.type) {
            case TokenType::Text: return "template text";
            case TokenType::VariableBegin: return "'{{'";
            case TokenType::VariableEnd: return "'}}'";
            case TokenType::BlockBegin: return "'{%'";
            case TokenType::BlockEnd: return "'%}'";
            case TokenType::End: return "end of template";
            case TokenType::String: return "string literal";
            default: return fmt::format("'{}'", t.text);
        }
    }

    [[noreturn]] void error(const std::string& message) const {
        fail("chat template syntax error at line {}: {}", peek().line, message);
    }
    void expect_op(const char* op) {
        if (!skip_op(op)) error(std::string("expected '") + op + "', got " + describe(peek()));
    }
    void expect_name(const char* name) {
        if (!skip_name(name)) error(std::string("expected '") + name + "', got " + describe(peek()));
    }
    std::string expect_identifier() {
        if (peek().type != TokenType::Name) error("expected a name, got " + describe(peek()));
        return next().text;
    }
    void expect_block_end() {
        if (peek().type != TokenType::BlockEnd) error("expected '%}', got " + describe(peek()));
        next();
    }

    // ---- statements ---------------------------------------------------------------------------
    // Parses nodes until a `{% kw` with kw in `end_keywords` (consumed; kw stored in `found`).
    NodeList parse_until(std::initializer_list<const char*> end_keywords, std::string& found) {
        NodeList nodes;
        while (true) {
            const Token& t = peek();
            if (t.type == TokenType::End) {
                if (end_keywords.size() == 0) return nodes;
                error(std::string("unexpected end of template, expected '{% ") + *std::prev(end_keywords.end()) + " %}'");
            }
            if (t.type == TokenType::Text) {
                auto node = std::make_unique<Node>(Node::Kind::Text, t.line);
                node->text = t.text;
                nodes.push_back(std::move(node));
                next();
            } else if (t.type == TokenType::VariableBegin) {
                next();
                auto node = std::make_unique<Node>(Node::Kind::Output, t.line);
                node->expr = parse_tuple();
                if (peek().type != TokenType::VariableEnd) error("expected '}}', got " + describe(peek()));
                next();
                nodes.push_back(std::move(node));
            } else if (t.type == TokenType::BlockBegin) {
                for (const char* kw : end_keywords) {
                    if (at_name(kw, 1)) {
                        next();
                        found = next().text;
                        return nodes;
                    }
                }
                const std::string& word = peek(1).text;
                if (peek(1).type == TokenType::Name && (word.starts_with("end") || word == "else" || word == "elif")) {
                    std::string expected = end_keywords.size() ? std::string(", expected '{% ") + *std::prev(end_keywords.end()) + " %}'" : "";
                    next();
                    error("unexpected '{% " + word + " %}'" + expected);
                }
                next();
                if (auto node = parse_statement()) nodes.push_back(std::move(node));
            } else {
                error("unexpected " + describe(t));
            }
        }
    }

    std::unique_ptr<Node> parse_statement() {
        DepthGuard guard(*this);
        int line = peek().line;
        std::string keyword = expect_identifier();
        std::string found;
        if (keyword == "if") {
            auto node = std::make_unique<Node>(Node::Kind::If, line);
            ExprPtr condition = parse_expression();
            expect_block_end();
            while (true) {
                NodeList body = parse_until({"elif", "else", "endif"}, found);
                node->branches.emplace_back(std::move(condition), std::move(body));
                if (found == "elif") {
                    condition = parse_expression();
                    expect_block_end();
                    continue;
                }
                expect_block_end();
                if (found == "else") {
                    NodeList else_body = parse_until({"endif"}, found);
                    node->branches.emplace_back(nullptr, std::move(else_body));
                    expect_block_end();
                }
                return node;
            }
        }
        if (keyword == "for") {
            auto node = std::make_unique<Node>(Node::Kind::For, line);
            node->targets.push_back(expect_identifier());
            while (skip_op(",")) node->targets.push_back(expect_identifier());
            expect_name("in");
            node->expr = parse_tuple(/*allow_condition=*/false);
            if (skip_name("if")) node->condition = parse_expression();
            if (at_name("recursive")) error("recursive loops are not supported");
            expect_block_end();
            node->body = parse_until({"else", "endfor"}, found);
            expect_block_end();
            if (found == "else") {
                node->else_body = parse_until({"endfor"}, found);
                expect_block_end();
            }
            return node;
        }
        if (keyword == "set") {
            std::string target = expect_identifier();
            if (skip_op(".")) {
                auto node = std::make_unique<Node>(Node::Kind::Set, line);
                node->targets.push_back(target);
                node->attribute = expect_identifier();
                expect_op("=");
                node->expr = parse_tuple();
                expect_block_end();
                return node;
            }
            std::vector<std::string> targets{target};
            while (skip_op(",")) targets.push_back(expect_identifier());
            if (skip_op("=")) {
                auto node = std::make_unique<Node>(Node::Kind::Set, line);
                node->targets = std::move(targets);
                node->expr = parse_tuple();
                expect_block_end();
                return node;
            }
            auto node = std::make_unique<Node>(Node::Kind::SetBlock, line);
            node->targets = std::move(targets);
            if (at_op("|")) node->expr = parse_filter_chain(nullptr);
            expect_block_end();
            node->body = parse_until({"endset"}, found);
            expect_block_end();
            return node;
        }
        if (keyword == "macro") {
            auto node = std::make_unique<Node>(Node::Kind::Macro, line);
            node->targets.push_back(expect_identifier());
            expect_op("(");
            while (!skip_op(")")) {
                std::string param = expect_identifier();
                ExprPtr default_value = skip_op("=") ? parse_expression() : nullptr;
                node->params.emplace_back(std::move(param), std::move(default_value));
                if (!at_op(")")) expect_op(",");
            }
            expect_block_end();
            node->body = parse_until({"endmacro"}, found);
            if (peek().type == TokenType::Name) next();  // `{% endmacro name %}`
            expect_block_end();
            return node;
        }
        if (keyword == "call") {
            auto node = std::make_unique<Node>(Node::Kind::CallBlock, line);
            if (at_op("(")) error("call blocks with caller arguments are not supported");
            node->expr = parse_expression();
            if (node->expr->kind != Expr::Kind::Call) error("expected a macro call after 'call'");
            expect_block_end();
            node->body = parse_until({"endcall"}, found);
            expect_block_end();
            return node;
        }
        if (keyword == "filter") {
            auto node = std::make_unique<Node>(Node::Kind::FilterBlock, line);
            node->expr = parse_filter_chain(nullptr, /*first_bar_optional=*/true);
            expect_block_end();
            node->body = parse_until({"endfilter"}, found);
            expect_block_end();
            return node;
        }
        if (keyword == "break" || keyword == "continue") {
            expect_block_end();
            return std::make_unique<Node>(keyword == "break" ? Node::Kind::Break : Node::Kind::Continue, line);
        }
        if (keyword == "generation") {
            // Hugging Face's marker for assistant-token masks: renders its body unchanged.
            auto node = std::make_unique<Node>(Node::Kind::If, line);
            expect_block_end();
            auto always = std::make_unique<Expr>(Expr::Kind::Literal, line);
            always->literal = true;
            node->branches.emplace_back(std::move(always), parse_until({"endgeneration"}, found));
            expect_block_end();
            return node;
        }
        error("unknown or unsupported tag '" + keyword + "'");
    }

    // ---- expressions --------------------------------------------------------------------------
    ExprPtr make(Expr::Kind kind, int line) { return std::make_unique<Expr>(kind, line); }

    ExprPtr make_binary(std::string op, ExprPtr left, ExprPtr right, int line) {
        auto e = make(Expr::Kind::Binary, line);
        e->name = std::move(op);
        e->a = std::move(left);
        e->b = std::move(right);
        return e;
    }

    // `a, b` outside brackets is a tuple (a list here).
    ExprPtr parse_tuple(bool allow_condition = true) {
        int line = peek().line;
        ExprPtr first = allow_condition ? parse_expression() : parse_or();
        if (!at_op(",")) return first;
        auto list = make(Expr::Kind::ListLit, line);
        list->items.push_back(std::move(first));
        while (skip_op(",")) {
            if (peek().type == TokenType::BlockEnd || peek().type == TokenType::VariableEnd || at_op("=")) break;
            list->items.push_back(allow_condition ? parse_expression() : parse_or());
        }
        return list;
    }

    ExprPtr parse_expression() {
        DepthGuard guard(*this);
        ExprPtr value = parse_or();
        while (at_name("if")) {
            int line = next().line;
            auto e = make(Expr::Kind::Condition, line);
            e->a = parse_or();
            e->b = std::move(value);
            if (skip_name("else")) e->c = parse_expression();
            value = std::move(e);
        }
        return value;
    }

    ExprPtr parse_or() {
        ExprPtr left = parse_and();
        while (at_name("or")) {
            int line = next().line;
            left = make_binary("or", std::move(left), parse_and(), line);
        }
        return left;
    }

    ExprPtr parse_and() {
        ExprPtr left = parse_not();
        while (at_name("and")) {
            int line = next().line;
            left = make_binary("and", std::move(left), parse_not(), line);
        }
        return left;
    }

    ExprPtr parse_not() {
        if (at_name("not")) {
            auto e = make(Expr::Kind::Unary, next().line);
            e->name = "not";
            e->a = parse_not();
            return e;
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        ExprPtr left = parse_math1();
        while (true) {
            int line = peek().line;
            std::string op;
            if (peek().type == TokenType::Operator &&
                (at_op("==") || at_op("!=") || at_op("<") || at_op(">") || at_op("<=") || at_op(">="))) {
                op = next().text;
            } else if (at_name("in")) {
                next();
                op = "in";
            } else if (at_name("not") && at_name("in", 1)) {
                next();
                next();
                op = "not in";
            } else {
                return left;
            }
            left = make_binary(op, std::move(left), parse_math1(), line);
        }
    }

    ExprPtr parse_math1() {
        ExprPtr left = parse_concat();
        while (at_op("+") || at_op("-")) {
            const Token& t = next();
            left = make_binary(t.text, std::move(left), parse_concat(), t.line);
        }
        return left;
    }

    ExprPtr parse_concat() {
        ExprPtr left = parse_math2();
        while (at_op("~")) {
            int line = next().line;
            left = make_binary("~", std::move(left), parse_math2(), line);
        }
        return left;
    }

    ExprPtr parse_math2() {
        ExprPtr left = parse_pow();
        while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
            const Token& t = next();
            left = make_binary(t.text, std::move(left), parse_pow(), t.line);
        }
        return left;
    }

    ExprPtr parse_pow() {
        ExprPtr left = parse_unary(true);
        while (at_op("**")) {
            int line = next().line;
            left = make_binary("**", std::move(left), parse_unary(true), line);
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filters) {
        ExprPtr e;
        if (at_op("-") || at_op("+")) {
            const Token& t = next();
            e = make(Expr::Kind::Unary, t.line);
            e->name = t.text;
            e->a = parse_unary(false);
        } else {
            e = parse_postfix(parse_primary());
        }
        return with_filters ? parse_filters_and_tests(std::move(e)) : std::move(e);
    }

    ExprPtr parse_primary() {
        const Token& t = peek();
        int line = t.line;
        switch (t.type) {
            case TokenType::Name: {
                next();
                auto e = make(Expr::Kind::Literal, line);
                if (t.text == "true" || t.text == "True") e->literal = true;
                else if (t.text == "false" || t.text == "False") e->literal = false;
                else if (t.text == "none" || t.text == "None") e->literal = Value::none();
                else {
                    e->kind = Expr::Kind::Variable;
                    e->name = t.text;
                }
                return e;
            }
            case TokenType::String: {
                std::string text;
                while (peek().type == TokenType::String) text += next().text;  // "a" "b" == "ab"
                auto e = make(Expr::Kind::Literal, line);
                e->literal = std::move(text);
                return e;
            }
            case TokenType::Integer: {
                auto e = make(Expr::Kind::Literal, line);
                e->literal = next().int_value;
                return e;
            }
            case TokenType::Float: {
                auto e = make(Expr::Kind::Literal, line);
                e->literal = next().float_value;
                return e;
            }
            default: break;
        }
        if (skip_op("(")) {
            if (skip_op(")")) return make(Expr::Kind::ListLit, line);
            ExprPtr inner = parse_expression();
            if (at_op(",")) {
                auto list = make(Expr::Kind::ListLit, line);
                list->items.push_back(std::move(inner));
                while (skip_op(",") && !at_op(")")) list->items.push_back(parse_expression());
                inner = std::move(list);
            }
            expect_op(")");
            return inner;
        }
        if (skip_op("[")) {
            auto list = make(Expr::Kind::ListLit, line);
            while (!skip_op("]")) {
                list->items.push_back(parse_expression());
                if (!at_op("]")) expect_op(",");
            }
            return list;
        }
        if (skip_op("{")) {
            auto dict = make(Expr::Kind::DictLit, line);
            while (!skip_op("}")) {
                dict->items.push_back(parse_expression());
                expect_op(":");
                dict->items.push_back(parse_expression());
                if (!at_op("}")) expect_op(",");
            }
            return dict;
        }
        error("unexpected " + describe(t) + " in expression");
    }

    ExprPtr parse_postfix(ExprPtr e) {
        while (true) {
            int line = peek().line;
            if (skip_op(".")) {
                if (peek().type == TokenType::Integer) {  // `x.0` is `x[0]`
                    auto item = make(Expr::Kind::GetItem, line);
                    item->a = std::move(e);
                    item->b = make(Expr::Kind::Literal, line);
                    item->b->literal = next().int_value;
                    e = std::move(item);
                    continue;
                }
                auto attr = make(Expr::Kind::GetAttr, line);
                attr->a = std::move(e);
                attr->name = expect_identifier();
                e = std::move(attr);
            } else if (skip_op("[")) {
                e = parse_subscript(std::move(e), line);
            } else if (at_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr object, int line) {
        ExprPtr start, stop, step;
        if (!at_op(":")) start = parse_expression();
        if (!skip_op(":")) {
            expect_op("]");
            auto item = make(Expr::Kind::GetItem, line);
            item->a = std::move(object);
            item->b = std::move(start);
            return item;
        }
        if (!at_op(":") && !at_op("]")) stop = parse_expression();
        if (skip_op(":") && !at_op("]")) step = parse_expression();
        expect_op("]");
        auto slice = make(Expr::Kind::Slice, line);
        slice->a = std::move(object);
        slice->b = std::move(start);
        slice->c = std::move(stop);
        slice->d = std::move(step);
        return slice;
    }

    CallArgs parse_call_args() {
        CallArgs args;
        expect_op("(");
        while (!skip_op(")")) {
            if (peek().type == TokenType::Name && at_op("=", 1)) {
                std::string name = next().text;
                next();
                args.named.emplace_back(std::move(name), parse_expression());
            } else {
                if (!args.named.empty()) error("positional argument after keyword argument");
                args.positional.push_back(parse_expression());
            }
            if (!at_op(")")) expect_op(",");
        }
        return args;
    }

    ExprPtr parse_call(ExprPtr callee) {
        auto call = make(Expr::Kind::Call, peek().line);
        call->a = std::move(callee);
        call->args = parse_call_args();
        return call;
    }

    // `| name(args)` filters, repeated; `input` null builds the chain of a `{% filter %}` block.
    ExprPtr parse_filter_chain(ExprPtr input, bool first_bar_optional = false) {
        bool first = true;
        while (at_op("|") || (first && first_bar_optional)) {
            if (!(first && first_bar_optional && !at_op("|"))) next();
            first = false;
            auto filter = make(Expr::Kind::Filter, peek().line);
            filter->name = expect_identifier();
            if (at_op("(")) filter->args = parse_call_args();
            filter->a = std::move(input);
            input = std::move(filter);
        }
        return input;
    }

    ExprPtr parse_filters_and_tests(ExprPtr e) {
        while (true) {
            if (at_op("|")) {
                e = parse_filter_chain(std::move(e));
            } else if (at_name("is")) {
                auto test = make(Expr::Kind::Test, next().line);
                test->negated = skip_name("not");
                test->name = expect_identifier();
                if (at_op("(")) {
                    test->args = parse_call_args();
                } else if ((peek().type == TokenType::Name || peek().type == TokenType::String ||
                            peek().type == TokenType::Integer || peek().type == TokenType::Float ||
                            at_op("[") || at_op("{")) &&
                           !at_name("else") && !at_name("or") && !at_name("and") && !at_name("is") &&
                           !at_name("if") && !at_name("not") && !at_name("in")) {
                    test->args.positional.push_back(parse_postfix(parse_primary()));  // `x is divisibleby 3`
                }
                test->a = std::move(e);
                e = std::move(test);
            } else if (at_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    const std::vector<Token>& tokens_;
    size_t pos_ = 0;
    int depth_ = 0;
};

}  // namespace

NodeList parse(const std::vector<Token>& tokens) { return Parser(tokens).parse_template(); }

}  // namespace qllm::jinja
