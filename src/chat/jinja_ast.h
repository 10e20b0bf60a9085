// Internal to the Jinja interpreter: tokens, the syntax tree, and the lexer/parser entry points.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace qllm::jinja {

// ---- tokens ---------------------------------------------------------------------------------
enum class TokenType { Text, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, End };

struct Token {
    TokenType type = TokenType::End;
    std::string text;  // text, name, operator, or the decoded string literal
    int line = 1;
    int64_t int_value = 0;
    double float_value = 0;
};

// Splits template source into text and tag tokens, applying the whitespace rules Hugging Face
// renders chat templates with: trim_blocks, lstrip_blocks, `-`/`+` markers, and dropping one
// trailing newline. Comments vanish here.
std::vector<Token> tokenize(const std::string& source);

// ---- expressions ----------------------------------------------------------------------------
struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct CallArgs {
    std::vector<ExprPtr> positional;
    std::vector<std::pair<std::string, ExprPtr>> named;
};

struct Expr {
    enum class Kind {
        Literal,    // literal
        Variable,   // name
        ListLit,    // items
        DictLit,    // items: key, value, key, value...
        GetAttr,    // a.name
        GetItem,    // a[b]
        Slice,      // a[b:c:d], any of b/c/d may be null
        Call,       // a(args)
        Filter,     // a | name(args)
        Test,       // a is [not] name(args)
        Unary,      // name ("not", "-", "+") applied to a
        Binary,     // a name b; "and"/"or" short-circuit
        Condition,  // b if a else c
    };
    Kind kind;
    int line = 0;
    Value literal;
    std::string name;
    ExprPtr a, b, c, d;
    std::vector<ExprPtr> items;
    CallArgs args;
    bool negated = false;

    Expr(Kind k, int l) : kind(k), line(l) {}
};

// ---- statements -----------------------------------------------------------------------------
struct Node;
using NodeList = std::vector<std::unique_ptr<Node>>;

struct Node {
    enum class Kind {
        Text,         // text
        Output,       // {{ expr }}
        If,           // branches (a null condition is the else branch)
        For,          // for targets in expr [if condition]: body [else else_body]
        Set,          // set targets = expr, or set targets[0].attribute = expr
        SetBlock,     // set targets[0] %}body{% endset
        Macro,        // macro targets[0](params): body
        CallBlock,    // call expr: body (the body is `caller()`)
        FilterBlock,  // filter expr (a Filter whose input is null): body
        Break,
        Continue,
    };
    Kind kind;
    int line = 0;
    std::string text;
    ExprPtr expr;
    ExprPtr condition;
    std::vector<std::pair<ExprPtr, NodeList>> branches;
    std::vector<std::string> targets;
    std::string attribute;
    std::vector<std::pair<std::string, ExprPtr>> params;
    NodeList body, else_body;

    Node(Kind k, int l) : kind(k), line(l) {}
};

// Unknown filters and tests are not errors here but when evaluated, so a template whose
// unsupported parts sit in branches a plain conversation never takes (tools...) still works.
NodeList parse(const std::vector<Token>& tokens);

}  // namespace qllm::jinja
