// Jinja evaluator: walks the statement tree with Jinja's scoping (a for loop or macro body has
// its own variables; if-blocks do not) and Python's operator semantics.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <unordered_map>

#include "chat/jinja.h"
#include "chat/jinja_ast.h"
#include "chat/jinja_builtins.h"

namespace qllm::jinja {

struct ParsedTemplate {
    NodeList nodes;
    std::vector<std::string> source_lines;  // for error messages
};

namespace {

struct Scope {
    std::unordered_map<std::string, Value> vars;
    Scope* parent = nullptr;

    const Value* lookup(const std::string& name) const {
        for (const Scope* s = this; s; s = s->parent) {
            auto it = s->vars.find(name);
            if (it != s->vars.end()) return &it->second;
        }
        return nullptr;
    }
};

enum class Flow { Normal, Break, Continue };

// Thrown by raise_exception(); becomes a RaisedException once the template line is known.
struct RaiseSignal : Error {
    using Error::Error;
};

[[noreturn]] void undefined_error(const Value& v) {
    fail("{}", v.undefined_hint().empty() ? std::string("value is undefined") : v.undefined_hint());
}

// Integers are 64-bit here (Python's are unbounded): overflow is an error, not wraparound.
template <typename Op>
int64_t checked(Op overflowing_op, int64_t x, int64_t y) {
    int64_t result = 0;
    if (overflowing_op(x, y, &result)) fail("integer overflow");
    return result;
}
constexpr auto add = [](int64_t x, int64_t y, int64_t* r) { return __builtin_add_overflow(x, y, r); };
constexpr auto sub = [](int64_t x, int64_t y, int64_t* r) { return __builtin_sub_overflow(x, y, r); };
constexpr auto mul = [](int64_t x, int64_t y, int64_t* r) { return __builtin_mul_overflow(x, y, r); };

Value integer_arithmetic(const std::string& op, int64_t x, int64_t y) {
    if (op == "+") return Value(checked(add, x, y));
    if (op == "-") return Value(checked(sub, x, y));
    if (op == "*") return Value(checked(mul, x, y));
    if (op == "**") {
        if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
        int64_t result = 1;
        for (int64_t base = x; y > 0; y >>= 1) {  // square-and-multiply
            if (y & 1) result = checked(mul, result, base);
            if (y > 1) base = checked(mul, base, base);
        }
        return Value(result);
    }
    if (y == 0) fail("division by zero");
    if (op == "/") return Value(static_cast<double>(x) / static_cast<double>(y));
    if (x == INT64_MIN && y == -1) fail("integer overflow");
    // Python rounds // toward negative infinity, and % takes the sign of the divisor.
    int64_t quotient = x / y, remainder = x % y;
    if (remainder != 0 && ((remainder < 0) != (y < 0))) {
        --quotient;
        remainder += y;
    }
    if (op == "//") return Value(quotient);
    if (op == "%") return Value(remainder);
    fail("unsupported operator {}", op);
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    auto unsupported = [&]() -> Value {
        fail("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name());
    };
    if (a.is_number() && b.is_number()) {
        if (!a.is_float() && !b.is_float()) return integer_arithmetic(op, a.as_int(), b.as_int());
        double x = a.as_double(), y = b.as_double();
        if (op == "+") return Value(x + y);
        if (op == "-") return Value(x - y);
        if (op == "*") return Value(x * y);
        if (op == "**") return Value(std::pow(x, y));
        if (y == 0) fail("float division by zero");
        if (op == "/") return Value(x / y);
        if (op == "//") return Value(std::floor(x / y));
        if (op == "%") return Value(x - y * std::floor(x / y));
        return unsupported();
    }
    if (op == "+" && a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
    if (op == "+" && a.is_list() && b.is_list()) {
        ValueList joined = a.as_list();
        joined.insert(joined.end(), b.as_list().begin(), b.as_list().end());
        return Value(joined);
    }
    if (op == "*" && (a.is_string() || a.is_list()) && b.is_number() && !b.is_float()) {
        // Repetition: bounded, so that a template cannot ask for terabytes.
        constexpr size_t kMaxRepeatedElements = size_t{1} << 26;
        size_t unit = a.is_string() ? a.as_string().size() : a.as_list().size();
        int64_t times = std::max<int64_t>(b.as_int(), 0);
        if (unit != 0 && static_cast<uint64_t>(times) > kMaxRepeatedElements / unit) fail("repetition result too large");
        if (a.is_string()) {
            std::string out;
            for (int64_t i = 0; i < times; ++i) out += a.as_string();
            return Value(out);
        }
        ValueList out;
        for (int64_t i = 0; i < times; ++i) out.insert(out.end(), a.as_list().begin(), a.as_list().end());
        return Value(out);
    }
    if (op == "*" && (b.is_string() || b.is_list()) && a.is_number()) return arithmetic(op, b, a);
    return unsupported();
}

class Renderer {
public:
    Renderer(const ParsedTemplate& parsed, const ValueDict& variables, const RenderOptions& options)
        : parsed_(parsed), options_(options) {
        install_globals();
        for (const auto& [name, value] : variables) globals_.vars[name] = value;
        template_scope_.parent = &globals_;
        scope_ = &template_scope_;
    }

    std::string run() {
        std::string out;
        out_ = &out;
        exec(parsed_.nodes);
        return out;
    }

private:
    // ---- statements ---------------------------------------------------------------------------
    Flow exec(const NodeList& nodes) {
        for (const auto& node : nodes) {
            Flow flow = exec_located(*node);
            if (flow != Flow::Normal) return flow;
        }
        return Flow::Normal;
    }

    // Runs one node, putting its template line in front of any error from below.
    Flow exec_located(const Node& node) {
        try {
            return exec(node);
        } catch (const TemplateError&) {
            throw;
        } catch (const std::exception& e) {
            bool raised = dynamic_cast<const RaiseSignal*>(&e) != nullptr;
            std::string message = raised ? fmt::format("chat template raised an error at line {}: {}", node.line, e.what())
                                         : fmt::format("chat template error at line {}: {}", node.line, e.what());
            if (node.line >= 1 && static_cast<size_t>(node.line) <= parsed_.source_lines.size()) {
                std::string text = strip(parsed_.source_lines[node.line - 1], "", true, true);
                if (text.size() > 120) text = text.substr(0, 117) + "...";
                message += fmt::format("\n  {} | {}", node.line, text);
            }
            if (raised) throw RaisedException(message);
            throw TemplateError(message);
        }
    }

    Flow exec(const Node& node) {
        switch (node.kind) {
            case Node::Kind::Text: *out_ += node.text; return Flow::Normal;
            case Node::Kind::Output: *out_ += eval(*node.expr).str(); return Flow::Normal;
            case Node::Kind::If:
                for (const auto& [condition, body] : node.branches) {
                    if (!condition || eval(*condition).truthy()) return exec(body);
                }
                return Flow::Normal;
            case Node::Kind::For: exec_for(node); return Flow::Normal;
            case Node::Kind::Set: exec_set(node, eval(*node.expr)); return Flow::Normal;
            case Node::Kind::SetBlock: {
                Value text(capture(node.body));
                if (node.expr) text = apply_filter_chain(*node.expr, text);
                exec_set(node, text);
                return Flow::Normal;
            }
            case Node::Kind::Macro: scope_->vars[node.targets[0]] = make_macro(node); return Flow::Normal;
            case Node::Kind::CallBlock: {
                Scope* caller_scope = scope_;
                Value caller = Value::function("caller", [this, &node, caller_scope](const Arguments&) {
                    Scope* saved = scope_;
                    scope_ = caller_scope;
                    std::string text = capture(node.body);
                    scope_ = saved;
                    return Value(text);
                });
                *out_ += call(*node.expr, &caller).str();
                return Flow::Normal;
            }
            case Node::Kind::FilterBlock:
                *out_ += apply_filter_chain(*node.expr, Value(capture(node.body))).str();
                return Flow::Normal;
            case Node::Kind::Break: return Flow::Break;
            case Node::Kind::Continue: return Flow::Continue;
        }
        return Flow::Normal;
    }

    // Renders `body` into a string instead of the output.
    std::string capture(const NodeList& body) {
        std::string text;
        std::string* saved = out_;
        out_ = &text;
        try {
            exec(body);
        } catch (...) {
            out_ = saved;
            throw;
        }
        out_ = saved;
        return text;
    }

    void bind_targets(Scope& scope, const std::vector<std::string>& targets, const Value& value) {
        if (targets.size() == 1) {
            scope.vars[targets[0]] = value;
            return;
        }
        std::vector<Value> parts = iterate(value);
        if (parts.size() != targets.size())
            fail("cannot unpack {} values into {} names", parts.size(), targets.size());
        for (size_t i = 0; i < targets.size(); ++i) scope.vars[targets[i]] = parts[i];
    }

    void exec_set(const Node& node, const Value& value) {
        if (node.attribute.empty()) {
            bind_targets(*scope_, node.targets, value);
            return;
        }
        const Value* target = scope_->lookup(node.targets[0]);
        if (!target || !target->is_namespace())
            fail("cannot assign attribute '{}' on '{}': not a namespace", node.attribute, node.targets[0]);
        target->mutable_dict().set(node.attribute, value);
    }

    void exec_for(const Node& node) {
        Value iterable = eval(*node.expr);
        if (iterable.is_none()) fail("'NoneType' object is not iterable");
        std::vector<Value> items = iterate(iterable);

        // One scope for the whole loop: assignments in the body stay inside the loop.
        Scope loop_scope;
        loop_scope.parent = scope_;
        Scope* saved = scope_;
        scope_ = &loop_scope;
        try {
            if (node.condition) {
                std::vector<Value> kept;
                for (const Value& item : items) {
                    bind_targets(loop_scope, node.targets, item);
                    if (eval(*node.condition).truthy()) kept.push_back(item);
                }
                items = std::move(kept);
            }
            const int64_t n = static_cast<int64_t>(items.size());
            for (int64_t i = 0; i < n; ++i) {
                bind_targets(loop_scope, node.targets, items[i]);
                loop_scope.vars["loop"] = loop_object(items, i);
                if (exec(node.body) == Flow::Break) break;
            }
        } catch (...) {
            scope_ = saved;
            throw;
        }
        scope_ = saved;
        if (items.empty()) exec(node.else_body);
    }

    static Value loop_object(const std::vector<Value>& items, int64_t i) {
        const int64_t n = static_cast<int64_t>(items.size());
        ValueDict loop;
        loop.set("index0", Value(i));
        loop.set("index", Value(i + 1));
        loop.set("revindex0", Value(n - i - 1));
        loop.set("revindex", Value(n - i));
        loop.set("first", Value(i == 0));
        loop.set("last", Value(i == n - 1));
        loop.set("length", Value(n));
        loop.set("depth", Value(1));
        loop.set("depth0", Value(0));
        loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
        loop.set("nextitem", i + 1 < n ? items[i + 1] : Value::undefined("there is no next item"));
        loop.set("cycle", Value::function("loop.cycle", [i](const Arguments& args) {
            if (args.positional.empty()) fail("loop.cycle needs at least one value");
            return args.positional[static_cast<size_t>(i) % args.positional.size()];
        }));
        return Value(std::move(loop));
    }

    Value make_macro(const Node& node) {
        return Value::function(node.targets[0], [this, &node](const Arguments& args) {
            if (macro_depth_ >= kMaxMacroDepth) fail("macro '{}' recursed more than {} levels", node.targets[0], kMaxMacroDepth);
            ++macro_depth_;
            struct DepthRestore {
                int& depth;
                ~DepthRestore() { --depth; }
            } restore{macro_depth_};
            Scope macro_scope;
            macro_scope.parent = &template_scope_;
            Scope* saved = scope_;
            scope_ = &macro_scope;
            try {
                for (size_t i = 0; i < node.params.size(); ++i) {
                    const auto& [name, default_value] = node.params[i];
                    const Value* passed = args.get(i, name);
                    macro_scope.vars[name] = passed ? *passed : default_value ? eval(*default_value) : Value::undefined(fmt::format("'{}' is undefined", name));
                }
                for (const auto& [name, value] : args.named) {
                    if (name == "caller") macro_scope.vars["caller"] = value;
                }
                std::string text = capture(node.body);
                scope_ = saved;
                return Value(text);
            } catch (...) {
                scope_ = saved;
                throw;
            }
        });
    }

    // ---- expressions --------------------------------------------------------------------------
    Arguments eval_args(const CallArgs& call_args) {
        Arguments args;
        for (const auto& e : call_args.positional) args.positional.push_back(eval(*e));
        for (const auto& [name, e] : call_args.named) args.named.emplace_back(name, eval(*e));
        return args;
    }

    Value call(const Expr& e, const Value* caller = nullptr) {
        Value callee = eval(*e.a);
        if (callee.is_undefined()) undefined_error(callee);
        if (!callee.is_function()) fail("'{}' object is not callable", callee.type_name());
        Arguments args = eval_args(e.args);
        if (caller) args.named.emplace_back("caller", *caller);
        return callee.as_function().call(args);
    }

    // Applies a chain of Filter nodes (innermost input null) to `input`.
    Value apply_filter_chain(const Expr& filter, const Value& input) {
        Value value = filter.a ? apply_filter_chain(*filter.a, input) : input;
        return apply_filter(filter.name, value, eval_args(filter.args));
    }

    Value eval(const Expr& e) {
        switch (e.kind) {
            case Expr::Kind::Literal: return e.literal;
            case Expr::Kind::Variable: {
                const Value* v = scope_->lookup(e.name);
                return v ? *v : Value::undefined(fmt::format("'{}' is undefined", e.name));
            }
            case Expr::Kind::ListLit: {
                ValueList items;
                for (const auto& item : e.items) items.push_back(eval(*item));
                return Value(std::move(items));
            }
            case Expr::Kind::DictLit: {
                ValueDict dict;
                for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
                    Value key = eval(*e.items[i]);
                    if (!key.is_string()) fail("dict keys must be strings, got {}", key.type_name());
                    dict.set(key.as_string(), eval(*e.items[i + 1]));
                }
                return Value(std::move(dict));
            }
            case Expr::Kind::GetAttr: return get_attribute(eval(*e.a), e.name);
            case Expr::Kind::GetItem: return get_item(eval(*e.a), eval(*e.b));
            case Expr::Kind::Slice: {
                Value object = eval(*e.a);
                Value start = e.b ? eval(*e.b) : Value::none();
                Value stop = e.c ? eval(*e.c) : Value::none();
                Value step = e.d ? eval(*e.d) : Value::none();
                return get_slice(object, &start, &stop, &step);
            }
            case Expr::Kind::Call: return call(e);
            case Expr::Kind::Filter: return apply_filter(e.name, eval(*e.a), eval_args(e.args));
            case Expr::Kind::Test: return Value(apply_test(e.name, eval(*e.a), eval_args(e.args)) != e.negated);
            case Expr::Kind::Unary: {
                Value v = eval(*e.a);
                if (e.name == "not") return Value(!v.truthy());
                if (v.is_undefined()) undefined_error(v);
                if (!v.is_number()) fail("bad operand type for unary {}: '{}'", e.name, v.type_name());
                if (e.name == "+") return v.is_bool() ? Value(v.as_int()) : v;
                return v.is_float() ? Value(-v.as_double()) : Value(-v.as_int());
            }
            case Expr::Kind::Binary: return eval_binary(e);
            case Expr::Kind::Condition:
                if (eval(*e.a).truthy()) return eval(*e.b);
                return e.c ? eval(*e.c) : Value::undefined("the condition was false and there is no else");
        }
        return Value();
    }

    Value eval_binary(const Expr& e) {
        const std::string& op = e.name;
        Value left = eval(*e.a);
        if (op == "and") return left.truthy() ? eval(*e.b) : left;
        if (op == "or") return left.truthy() ? left : eval(*e.b);
        Value right = eval(*e.b);
        if (op == "==") return Value(left.equals(right));
        if (op == "!=") return Value(!left.equals(right));
        if (op == "<") return Value(less_than(left, right));
        if (op == ">") return Value(less_than(right, left));
        if (op == "<=") return Value(!less_than(right, left));
        if (op == ">=") return Value(!less_than(left, right));
        if (op == "in") return Value(contains(right, left));
        if (op == "not in") return Value(!contains(right, left));
        if (op == "~") return Value(left.str() + right.str());
        return arithmetic(op, left, right);
    }

    // ---- globals ------------------------------------------------------------------------------
    void install_globals() {
        globals_.vars["range"] = Value::function("range", [](const Arguments& args) {
            std::vector<int64_t> bounds;
            for (const Value& v : args.positional) {
                if (!v.is_number() || v.is_float()) fail("range() arguments must be integers");
                bounds.push_back(v.as_int());
            }
            if (bounds.empty() || bounds.size() > 3) fail("range() takes 1 to 3 arguments");
            int64_t start = bounds.size() == 1 ? 0 : bounds[0];
            int64_t stop = bounds.size() == 1 ? bounds[0] : bounds[1];
            int64_t step = bounds.size() == 3 ? bounds[2] : 1;
            if (step == 0) fail("range() step must not be zero");
            ValueList out;
            for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                out.emplace_back(i);
                if (out.size() > 10'000'000) fail("range() too large");
            }
            return Value(std::move(out));
        });
        auto make_dict = [](const Arguments& args, Value dict) {
            for (const Value& v : args.positional) {
                if (!v.is_dict()) fail("expected a dict argument, got {}", v.type_name());
                for (const auto& [key, item] : v.as_dict()) dict.mutable_dict().set(key, item);
            }
            for (const auto& [key, item] : args.named) dict.mutable_dict().set(key, item);
            return dict;
        };
        globals_.vars["namespace"] = Value::function("namespace", [make_dict](const Arguments& args) {
            return make_dict(args, Value::new_namespace());
        });
        globals_.vars["dict"] = Value::function("dict", [make_dict](const Arguments& args) {
            return make_dict(args, Value(ValueDict{}));
        });
        globals_.vars["raise_exception"] = Value::function("raise_exception", [](const Arguments& args) -> Value {
            std::string message = args.positional.empty() ? "" : args.positional[0].str();
            throw RaiseSignal(message);
        });
        globals_.vars["strftime_now"] = Value::function("strftime_now", [this](const Arguments& args) {
            const Value* format = args.get(0, "format");
            if (!format || !format->is_string()) fail("strftime_now() needs a format string");
            auto now = options_.now.value_or(std::chrono::system_clock::now());
            std::time_t t = std::chrono::system_clock::to_time_t(now);
            std::tm local{};
            localtime_r(&t, &local);
            char buf[256];
            size_t n = std::strftime(buf, sizeof buf, format->as_string().c_str(), &local);
            return Value(std::string(buf, n));
        });
    }

    const ParsedTemplate& parsed_;
    const RenderOptions& options_;
    Scope globals_;
    Scope template_scope_;
    Scope* scope_ = nullptr;
    std::string* out_ = nullptr;
    static constexpr int kMaxMacroDepth = 100;  // recursion bound: a stack overflow is no error message
    int macro_depth_ = 0;
};

}  // namespace

Template::Template(const std::string& source) : parsed_(std::make_unique<ParsedTemplate>()) {
    parsed_->nodes = parse(tokenize(source));
    size_t pos = 0;
    while (pos <= source.size()) {
        size_t end = source.find('\n', pos);
        if (end == std::string::npos) end = source.size();
        parsed_->source_lines.push_back(source.substr(pos, end - pos));
        pos = end + 1;
    }
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const ValueDict& variables, const RenderOptions& options) const {
    return Renderer(*parsed_, variables, options).run();
}

}  // namespace qllm::jinja
