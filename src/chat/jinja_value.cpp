// Python-compatible printing, JSON and equality for Jinja values.
#include "chat/jinja_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "qllm/error.h"

namespace qllm::jinja {

Value::Value(ValueList v) : data_(std::make_shared<ValueList>(std::move(v))) {}
Value::Value(ValueDict v) : data_(std::make_shared<ValueDict>(std::move(v))) {}

Value Value::function(std::string name, NativeFunction fn) {
    Value v;
    v.data_ = std::make_shared<Function>(Function{std::move(name), std::move(fn)});
    return v;
}

Value Value::new_namespace() {
    ValueDict dict;
    dict.is_namespace = true;
    return Value(std::move(dict));
}

bool Value::is_namespace() const { return is_dict() && as_dict().is_namespace; }

int64_t Value::as_int() const {
    if (is_bool()) return as_bool() ? 1 : 0;
    return std::get<int64_t>(data_);
}

double Value::as_double() const {
    if (is_float()) return std::get<double>(data_);
    return static_cast<double>(as_int());
}

bool Value::truthy() const {
    switch (kind()) {
        case Kind::Undefined: case Kind::None: return false;
        case Kind::Bool: return as_bool();
        case Kind::Int: return as_int() != 0;
        case Kind::Float: return as_double() != 0.0;
        case Kind::String: return !as_string().empty();
        case Kind::List: return !as_list().empty();
        case Kind::Dict: return !as_dict().empty();
        case Kind::Function: return true;
    }
    return false;
}

std::string python_float_repr(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
    // Shortest round-trip digits in scientific form ("-1.2345e+02"), then laid out Python's way.
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    std::string sign;
    if (sci[0] == '-') { sign = "-"; sci.erase(0, 1); }
    size_t e = sci.find('e');
    int exponent = std::stoi(sci.substr(e + 1));
    std::string digits;
    for (char c : sci.substr(0, e)) if (c != '.') digits += c;
    if (exponent >= -4 && exponent < 16) {
        if (exponent >= 0) {
            if (digits.size() < static_cast<size_t>(exponent) + 1) digits.resize(exponent + 1, '0');
            std::string whole = digits.substr(0, exponent + 1);
            std::string frac = digits.substr(exponent + 1);
            return sign + whole + "." + (frac.empty() ? "0" : frac);
        }
        return sign + "0." + std::string(-exponent - 1, '0') + digits;
    }
    std::string mantissa = digits.substr(0, 1);
    if (digits.size() > 1) mantissa += "." + digits.substr(1);
    char exp_text[16];
    std::snprintf(exp_text, sizeof exp_text, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return sign + mantissa + exp_text;
}

namespace {

std::string repr_string(const std::string& s) {
    // Python prefers single quotes, switching to double when only single quotes occur inside.
    char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    std::string out(1, quote);
    for (unsigned char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == quote) { out += '\\'; out += static_cast<char>(c); }
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else out += static_cast<char>(c);
    }
    out += quote;
    return out;
}

void json_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    char hex[8];
                    std::snprintf(hex, sizeof hex, "\\u%04x", c);
                    out += hex;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

void json_value(std::string& out, const Value& v, int indent, int level) {
    auto newline = [&](int depth) {
        out += '\n';
        out.append(static_cast<size_t>(indent) * depth, ' ');
    };
    switch (v.kind()) {
        case Value::Kind::None: out += "null"; return;
        case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
        case Value::Kind::Int: out += std::to_string(v.as_int()); return;
        case Value::Kind::Float: {
            double d = v.as_double();
            if (std::isnan(d)) out += "NaN";
            else if (std::isinf(d)) out += d < 0 ? "-Infinity" : "Infinity";
            else out += python_float_repr(d);
            return;
        }
        case Value::Kind::String: json_string(out, v.as_string()); return;
        case Value::Kind::List: {
            const auto& list = v.as_list();
            if (list.empty()) { out += "[]"; return; }
            out += '[';
            for (size_t i = 0; i < list.size(); ++i) {
                if (i) out += indent >= 0 ? "," : ", ";
                if (indent >= 0) newline(level + 1);
                json_value(out, list[i], indent, level + 1);
            }
            if (indent >= 0) newline(level);
            out += ']';
            return;
        }
        case Value::Kind::Dict: {
            const auto& dict = v.as_dict();
            if (dict.empty()) { out += "{}"; return; }
            out += '{';
            bool first = true;
            for (const auto& [key, item] : dict) {
                if (!first) out += indent >= 0 ? "," : ", ";
                first = false;
                if (indent >= 0) newline(level + 1);
                json_string(out, key);
                out += ": ";
                json_value(out, item, indent, level + 1);
            }
            if (indent >= 0) newline(level);
            out += '}';
            return;
        }
        case Value::Kind::Undefined:
        case Value::Kind::Function:
            fail("Object of type {} is not JSON serializable", v.type_name());
    }
}

}  // namespace

std::string Value::str() const {
    switch (kind()) {
        case Kind::Undefined: return "";
        case Kind::String: return as_string();
        default: return repr();
    }
}

std::string Value::repr() const {
    switch (kind()) {
        case Kind::Undefined: return "";
        case Kind::None: return "None";
        case Kind::Bool: return as_bool() ? "True" : "False";
        case Kind::Int: return std::to_string(as_int());
        case Kind::Float: return python_float_repr(as_double());
        case Kind::String: return repr_string(as_string());
        case Kind::List: {
            std::string out = "[";
            for (size_t i = 0; i < as_list().size(); ++i) {
                if (i) out += ", ";
                out += as_list()[i].repr();
            }
            return out + "]";
        }
        case Kind::Dict: {
            std::string out = "{";
            bool first = true;
            for (const auto& [key, item] : as_dict()) {
                if (!first) out += ", ";
                first = false;
                out += repr_string(key) + ": " + item.repr();
            }
            return out + "}";
        }
        case Kind::Function: return "<function " + as_function().name + ">";
    }
    return "";
}

std::string Value::to_json(int indent) const {
    std::string out;
    json_value(out, *this, indent, 0);
    return out;
}

std::string Value::type_name() const {
    switch (kind()) {
        case Kind::Undefined: return "Undefined";
        case Kind::None: return "NoneType";
        case Kind::Bool: return "bool";
        case Kind::Int: return "int";
        case Kind::Float: return "float";
        case Kind::String: return "str";
        case Kind::List: return "list";
        case Kind::Dict: return is_namespace() ? "Namespace" : "dict";
        case Kind::Function: return "function";
    }
    return "?";
}

bool Value::equals(const Value& other) const {
    if (is_number() && other.is_number()) {
        if (is_float() || other.is_float()) return as_double() == other.as_double();
        return as_int() == other.as_int();
    }
    if (kind() != other.kind()) return false;
    switch (kind()) {
        case Kind::Undefined: case Kind::None: return true;
        case Kind::String: return as_string() == other.as_string();
        case Kind::List: {
            const auto& a = as_list();
            const auto& b = other.as_list();
            if (a.size() != b.size()) return false;
            for (size_t i = 0; i < a.size(); ++i) if (!a[i].equals(b[i])) return false;
            return true;
        }
        case Kind::Dict: {
            const auto& a = as_dict();
            const auto& b = other.as_dict();
            if (a.size() != b.size()) return false;
            for (const auto& [key, item] : a) {
                const Value* match = b.find(key);
                if (!match || !item.equals(*match)) return false;
            }
            return true;
        }
        case Kind::Function:
            return std::get<std::shared_ptr<Function>>(data_) == std::get<std::shared_ptr<Function>>(other.data_);
        default: return false;
    }
}

const Value* ValueDict::find(std::string_view key) const {
    for (const auto& entry : entries_) if (entry.first == key) return &entry.second;
    return nullptr;
}

void ValueDict::set(std::string key, Value value) {
    for (auto& entry : entries_) {
        if (entry.first == key) { entry.second = std::move(value); return; }
    }
    entries_.emplace_back(std::move(key), std::move(value));
}

const Value* Arguments::get(size_t index, std::string_view name) const {
    if (index < positional.size()) return &positional[index];
    for (const auto& [key, value] : named) if (key == name) return &value;
    return nullptr;
}

std::vector<std::string> utf8_code_points(std::string_view s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
        if (i + len > s.size()) len = 1;
        out.emplace_back(s.substr(i, len));
        i += len;
    }
    return out;
}

size_t utf8_length(std::string_view s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

}  // namespace qllm::jinja
