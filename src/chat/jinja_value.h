// Values of the Jinja interpreter: Python's none/bool/int/float/str/list/dict plus Jinja's
// undefined and callables. Lists and dicts are shared by reference, like Python objects, so
// that `{% set ns.x = ... %}` on a namespace is seen through every name bound to it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace qllm::jinja {

class Value;
class ValueDict;
struct Arguments;
using ValueList = std::vector<Value>;
using NativeFunction = std::function<Value(const Arguments&)>;

// Jinja's Undefined: falsy, prints as "", iterates as empty; using it any further is an error
// whose message names what was missing.
struct Undefined {
    std::string hint;  // e.g. "'foo' is undefined"
};
struct None {};

struct Function {
    std::string name;
    NativeFunction call;
};

class Value {
public:
    enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Function };

    Value() : data_(Undefined{}) {}
    Value(None) : data_(None{}) {}
    Value(bool v) : data_(v) {}
    Value(int v) : data_(int64_t{v}) {}
    Value(int64_t v) : data_(v) {}
    Value(double v) : data_(v) {}
    Value(const char* v) : data_(std::string(v)) {}
    Value(std::string v) : data_(std::move(v)) {}
    Value(std::string_view v) : data_(std::string(v)) {}
    Value(ValueList v);
    Value(ValueDict v);

    static Value undefined(std::string hint = {}) { Value v; v.data_ = Undefined{std::move(hint)}; return v; }
    static Value none() { return Value(None{}); }
    static Value function(std::string name, NativeFunction fn);
    static Value new_namespace();  // an empty dict that accepts attribute assignment

    Kind kind() const { return static_cast<Kind>(data_.index()); }
    bool is_undefined() const { return kind() == Kind::Undefined; }
    bool is_none() const { return kind() == Kind::None; }
    bool is_bool() const { return kind() == Kind::Bool; }
    bool is_int() const { return kind() == Kind::Int; }
    bool is_float() const { return kind() == Kind::Float; }
    bool is_number() const { return kind() == Kind::Int || kind() == Kind::Float || kind() == Kind::Bool; }
    bool is_string() const { return kind() == Kind::String; }
    bool is_list() const { return kind() == Kind::List; }
    bool is_dict() const { return kind() == Kind::Dict; }
    bool is_function() const { return kind() == Kind::Function; }
    bool is_namespace() const;

    bool as_bool() const { return std::get<bool>(data_); }
    int64_t as_int() const;     // int or bool
    double as_double() const;   // int, bool or float
    const std::string& as_string() const { return std::get<std::string>(data_); }
    const ValueList& as_list() const { return *std::get<std::shared_ptr<ValueList>>(data_); }
    const ValueDict& as_dict() const { return *std::get<std::shared_ptr<ValueDict>>(data_); }
    ValueDict& mutable_dict() const { return *std::get<std::shared_ptr<ValueDict>>(data_); }
    const Function& as_function() const { return *std::get<std::shared_ptr<Function>>(data_); }
    const std::string& undefined_hint() const { return std::get<Undefined>(data_).hint; }

    bool truthy() const;
    std::string str() const;   // Python str(): what `{{ value }}` prints
    std::string repr() const;  // Python repr(): how values print inside lists and dicts
    // Python json.dumps(value, ensure_ascii=False, indent=indent); indent < 0 means none.
    std::string to_json(int indent = -1) const;
    std::string type_name() const;  // Python's name for the type, for error messages

    // Python ==: numbers compare by value across int/float/bool, containers deeply.
    bool equals(const Value& other) const;

private:
    std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<ValueList>,
                 std::shared_ptr<ValueDict>, std::shared_ptr<Function>>
        data_;
};

// A dict with string keys that keeps insertion order, like Python's.
class ValueDict {
public:
    using Entry = std::pair<std::string, Value>;

    const Value* find(std::string_view key) const;
    void set(std::string key, Value value);  // replaces in place, else appends
    size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    auto begin() const { return entries_.begin(); }
    auto end() const { return entries_.end(); }

    bool is_namespace = false;

private:
    std::vector<Entry> entries_;
};

// Arguments of a call: positional values and keyword (name=value) values.
struct Arguments {
    std::vector<Value> positional;
    std::vector<std::pair<std::string, Value>> named;

    // The argument at `index` if passed positionally, else the keyword `name`, else nullptr.
    const Value* get(size_t index, std::string_view name) const;
};

// Python float repr: shortest round-trip digits, "1.0" for whole numbers, "1e+16" past 1e16.
std::string python_float_repr(double v);

// UTF-8 helpers: Python indexes and measures strings in code points, not bytes.
std::vector<std::string> utf8_code_points(std::string_view s);
size_t utf8_length(std::string_view s);

}  // namespace qllm::jinja
