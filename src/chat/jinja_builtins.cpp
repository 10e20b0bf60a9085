// Python semantics for Jinja values: access, iteration, comparison, filters, tests, methods.
#include "chat/jinja_builtins.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <unordered_map>

#include "qllm/error.h"

namespace qllm::jinja {
namespace {

constexpr const char* kWhitespace = " \t\n\r\v\f";

[[noreturn]] void undefined_error(const Value& v) {
    fail("{}", v.undefined_hint().empty() ? std::string("value is undefined") : v.undefined_hint());
}

// ---- argument helpers -----------------------------------------------------------------------
std::string string_arg(const Arguments& args, size_t index, std::string_view name, std::string fallback = {}) {
    const Value* v = args.get(index, name);
    if (!v || v->is_none() || v->is_undefined()) return fallback;
    return v->str();
}
int64_t int_arg(const Arguments& args, size_t index, std::string_view name, int64_t fallback) {
    const Value* v = args.get(index, name);
    if (!v || v->is_none() || v->is_undefined()) return fallback;
    if (!v->is_number() || v->is_float()) fail("argument '{}' must be an integer, not {}", name, v->type_name());
    return v->as_int();
}
bool bool_arg(const Arguments& args, size_t index, std::string_view name, bool fallback) {
    const Value* v = args.get(index, name);
    return v ? v->truthy() : fallback;
}
const Value* keyword_arg(const Arguments& args, std::string_view name) {
    for (const auto& [key, value] : args.named) if (key == name) return &value;
    return nullptr;
}
const std::string& expect_string(const Value& v, const char* what) {
    if (v.is_undefined()) undefined_error(v);
    if (!v.is_string()) fail("{} expects a string, got {}", what, v.type_name());
    return v.as_string();
}

// ---- strings --------------------------------------------------------------------------------
std::string ascii_lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}
std::string ascii_upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }

// Python str.title(): a letter after a non-letter starts a word.
std::string python_title(const std::string& s) {
    std::string out = s;
    bool prev_cased = false;
    for (char& c : out) {
        bool cased = is_alpha(c);
        if (cased) c = static_cast<char>(prev_cased ? std::tolower(static_cast<unsigned char>(c)) : std::toupper(static_cast<unsigned char>(c)));
        prev_cased = cased;
    }
    return out;
}

// Jinja's title filter: words begin after whitespace, '-', '(', '{', '[' or '<'.
std::string jinja_title(const std::string& s) {
    std::string out = s;
    bool word_start = true;
    for (char& c : out) {
        bool separator = std::isspace(static_cast<unsigned char>(c)) || std::string_view("-({[<").find(c) != std::string_view::npos;
        if (!separator) c = static_cast<char>(word_start ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
        word_start = separator;
    }
    return out;
}

std::string capitalize(const std::string& s) {
    std::string out = ascii_lower(s);
    if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
    return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
    if (from.empty()) {  // Python inserts `to` around every code point
        std::string out;
        int64_t done = 0;
        for (const auto& cp : utf8_code_points(s)) {
            if (count < 0 || done < count) { out += to; ++done; }
            out += cp;
        }
        if (count < 0 || done < count) out += to;
        return out;
    }
    std::string out;
    size_t pos = 0;
    for (int64_t done = 0; count < 0 || done < count; ++done) {
        size_t hit = s.find(from, pos);
        if (hit == std::string::npos) break;
        out.append(s, pos, hit - pos);
        out += to;
        pos = hit + from.size();
    }
    out.append(s, pos);
    return out;
}

ValueList python_split(const std::string& s, const Value* sep_value, int64_t max_split) {
    ValueList parts;
    if (!sep_value || sep_value->is_none() || sep_value->is_undefined()) {
        size_t pos = s.find_first_not_of(kWhitespace);
        while (pos != std::string::npos) {
            if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
                parts.emplace_back(strip(s.substr(pos), "", false, true));
                break;
            }
            size_t end = s.find_first_of(kWhitespace, pos);
            parts.emplace_back(s.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
            pos = end == std::string::npos ? end : s.find_first_not_of(kWhitespace, end);
        }
        return parts;
    }
    const std::string& sep = expect_string(*sep_value, "split()");
    if (sep.empty()) fail("empty separator");
    size_t pos = 0;
    while (true) {
        size_t hit = s.find(sep, pos);
        if (hit == std::string::npos || (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split)) break;
        parts.emplace_back(s.substr(pos, hit - pos));
        pos = hit + sep.size();
    }
    parts.emplace_back(s.substr(pos));
    return parts;
}

ValueList python_rsplit(const std::string& s, const Value* sep_value, int64_t max_split) {
    if (max_split < 0 || !sep_value || sep_value->is_none()) return python_split(s, sep_value, max_split);
    const std::string& sep = expect_string(*sep_value, "rsplit()");
    if (sep.empty()) fail("empty separator");
    ValueList reversed;
    size_t end = s.size();
    while (static_cast<int64_t>(reversed.size()) < max_split) {
        size_t hit = end >= sep.size() ? s.rfind(sep, end - sep.size()) : std::string::npos;
        if (hit == std::string::npos) break;
        reversed.emplace_back(s.substr(hit + sep.size(), end - hit - sep.size()));
        end = hit;
    }
    reversed.emplace_back(s.substr(0, end));
    return ValueList(reversed.rbegin(), reversed.rend());
}

bool affix_matches(const std::string& s, const Value& affix, bool prefix) {
    auto one = [&](const Value& v) {
        const std::string& a = expect_string(v, prefix ? "startswith()" : "endswith()");
        if (a.size() > s.size()) return false;
        return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
    };
    if (affix.is_list()) return std::any_of(affix.as_list().begin(), affix.as_list().end(), one);
    return one(affix);
}

Value string_method(const std::string& s, const std::string& name) {
    using Fn = std::function<Value(const std::string&, const Arguments&)>;
    static const std::unordered_map<std::string, Fn> methods = {
        {"startswith", [](const std::string& s, const Arguments& a) { return Value(a.get(0, "prefix") && affix_matches(s, *a.get(0, "prefix"), true)); }},
        {"endswith", [](const std::string& s, const Arguments& a) { return Value(a.get(0, "suffix") && affix_matches(s, *a.get(0, "suffix"), false)); }},
        {"split", [](const std::string& s, const Arguments& a) { return Value(python_split(s, a.get(0, "sep"), int_arg(a, 1, "maxsplit", -1))); }},
        {"rsplit", [](const std::string& s, const Arguments& a) { return Value(python_rsplit(s, a.get(0, "sep"), int_arg(a, 1, "maxsplit", -1))); }},
        {"strip", [](const std::string& s, const Arguments& a) { return Value(strip(s, string_arg(a, 0, "chars"), true, true)); }},
        {"lstrip", [](const std::string& s, const Arguments& a) { return Value(strip(s, string_arg(a, 0, "chars"), true, false)); }},
        {"rstrip", [](const std::string& s, const Arguments& a) { return Value(strip(s, string_arg(a, 0, "chars"), false, true)); }},
        {"lower", [](const std::string& s, const Arguments&) { return Value(ascii_lower(s)); }},
        {"upper", [](const std::string& s, const Arguments&) { return Value(ascii_upper(s)); }},
        {"title", [](const std::string& s, const Arguments&) { return Value(python_title(s)); }},
        {"capitalize", [](const std::string& s, const Arguments&) { return Value(capitalize(s)); }},
        {"replace", [](const std::string& s, const Arguments& a) {
             return Value(replace_all(s, string_arg(a, 0, "old"), string_arg(a, 1, "new"), int_arg(a, 2, "count", -1)));
         }},
        {"find", [](const std::string& s, const Arguments& a) {
             size_t hit = s.find(string_arg(a, 0, "sub"));
             return Value(hit == std::string::npos ? int64_t{-1} : static_cast<int64_t>(utf8_length(s.substr(0, hit))));
         }},
        {"count", [](const std::string& s, const Arguments& a) {
             std::string sub = string_arg(a, 0, "sub");
             if (sub.empty()) return Value(static_cast<int64_t>(utf8_length(s) + 1));
             int64_t n = 0;
             for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
             return Value(n);
         }},
        {"join", [](const std::string& s, const Arguments& a) {
             std::string out;
             bool first = true;
             for (const Value& item : a.get(0, "iterable") ? iterate(*a.get(0, "iterable")) : std::vector<Value>{}) {
                 if (!first) out += s;
                 first = false;
                 out += expect_string(item, "join()");
             }
             return Value(out);
         }},
        {"splitlines", [](const std::string& s, const Arguments&) {
             ValueList lines;
             size_t pos = 0;
             while (pos < s.size()) {
                 size_t end = s.find('\n', pos);
                 if (end == std::string::npos) end = s.size();
                 std::string line = s.substr(pos, end - pos);
                 if (!line.empty() && line.back() == '\r') line.pop_back();
                 lines.emplace_back(line);
                 pos = end + 1;
             }
             return Value(lines);
         }},
        {"removeprefix", [](const std::string& s, const Arguments& a) {
             std::string p = string_arg(a, 0, "prefix");
             return Value(s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s);
         }},
        {"removesuffix", [](const std::string& s, const Arguments& a) {
             std::string p = string_arg(a, 0, "suffix");
             bool has = p.size() <= s.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
             return Value(has ? s.substr(0, s.size() - p.size()) : s);
         }},
        {"isdigit", [](const std::string& s, const Arguments&) {
             return Value(!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }));
         }},
        {"isspace", [](const std::string& s, const Arguments&) {
             return Value(!s.empty() && s.find_first_not_of(kWhitespace) == std::string::npos);
         }},
    };
    auto it = methods.find(name);
    if (it == methods.end()) return Value::undefined(fmt::format("'str object' has no attribute '{}'", name));
    Fn fn = it->second;
    return Value::function("str." + name, [s, fn](const Arguments& a) { return fn(s, a); });
}

Value dict_method(const Value& dict, const std::string& name) {
    if (name == "items") {
        return Value::function("dict.items", [dict](const Arguments&) { return apply_filter("items", dict, {}); });
    }
    if (name == "keys") {
        return Value::function("dict.keys", [dict](const Arguments&) { return Value(iterate(dict)); });
    }
    if (name == "values") {
        return Value::function("dict.values", [dict](const Arguments&) {
            ValueList values;
            for (const auto& entry : dict.as_dict()) values.push_back(entry.second);
            return Value(values);
        });
    }
    if (name == "get") {
        return Value::function("dict.get", [dict](const Arguments& a) {
            const Value* key = a.get(0, "key");
            const Value* found = key && key->is_string() ? dict.as_dict().find(key->as_string()) : nullptr;
            if (found) return *found;
            const Value* fallback = a.get(1, "default");
            return fallback ? *fallback : Value::none();
        });
    }
    return Value::undefined();
}

// ---- attribute paths for map/selectattr/sort/join(attribute=...) ------------------------------
Value get_attribute_path(const Value& item, const std::string& path) {
    Value current = item;
    size_t pos = 0;
    while (true) {
        size_t dot = path.find('.', pos);
        std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
        bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
        current = numeric ? get_item(current, Value(static_cast<int64_t>(std::stoll(part)))) : get_item(current, Value(part));
        if (dot == std::string::npos) return current;
        pos = dot + 1;
    }
}

// Sort key: attribute if given, lowercased strings unless case-sensitive.
Value sort_key(const Value& item, const std::string& attribute, bool case_sensitive) {
    Value key = attribute.empty() ? item : get_attribute_path(item, attribute);
    if (!case_sensitive && key.is_string()) return Value(ascii_lower(key.as_string()));
    return key;
}

// Arguments after the first `skip` positional ones (a filter's test name, attribute...).
Arguments drop_positional(const Arguments& args, size_t skip) {
    Arguments rest;
    for (size_t i = skip; i < args.positional.size(); ++i) rest.positional.push_back(args.positional[i]);
    rest.named = args.named;
    return rest;
}

// select/reject/selectattr/rejectattr.
Value filter_by_test(const Value& input, const Arguments& args, bool keep_when, bool by_attribute) {
    ValueList out;
    size_t test_index = by_attribute ? 1 : 0;
    std::string attribute = by_attribute ? string_arg(args, 0, "attribute") : "";
    std::string test = string_arg(args, test_index, "test");
    Arguments test_args = drop_positional(args, test_index + 1);
    for (const Value& item : iterate(input)) {
        Value subject = by_attribute ? get_attribute_path(item, attribute) : item;
        bool passed = test.empty() ? subject.truthy() : apply_test(test, subject, test_args);
        if (passed == keep_when) out.push_back(item);
    }
    return Value(out);
}

Value sort_keys_deep(const Value& v) {
    if (v.is_list()) {
        ValueList out;
        for (const Value& item : v.as_list()) out.push_back(sort_keys_deep(item));
        return Value(out);
    }
    if (!v.is_dict()) return v;
    std::vector<ValueDict::Entry> entries(v.as_dict().begin(), v.as_dict().end());
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    ValueDict out;
    for (auto& [key, item] : entries) out.set(key, sort_keys_deep(item));
    return Value(std::move(out));
}

Value min_or_max(const Value& input, const Arguments& args, bool want_max) {
    bool case_sensitive = bool_arg(args, 0, "case_sensitive", false);
    std::string attribute = string_arg(args, 1, "attribute");
    std::vector<Value> items = iterate(input);
    if (items.empty()) return Value::undefined("no items for min/max");
    size_t best = 0;
    for (size_t i = 1; i < items.size(); ++i) {
        Value a = sort_key(items[i], attribute, case_sensitive);
        Value b = sort_key(items[best], attribute, case_sensitive);
        if (want_max ? less_than(b, a) : less_than(a, b)) best = i;
    }
    return items[best];
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

// Jinja's indent filter, quirks included (a trailing newline is appended before splitting).
std::string indent(const std::string& input, const std::string& indention, bool first, bool blank) {
    Value lines = string_method(input + "\n", "splitlines").as_function().call({});
    std::string out;
    for (size_t i = 0; i < lines.as_list().size(); ++i) {
        const std::string& line = lines.as_list()[i].as_string();
        if (i) out += "\n";
        if (i && (blank || !line.empty())) out += indention;
        out += line;
    }
    return first ? indention + out : out;
}

using FilterFn = std::function<Value(const Value&, const Arguments&)>;

const std::unordered_map<std::string, FilterFn>& filters() {
    static const std::unordered_map<std::string, FilterFn> table = {
        {"abs", [](const Value& v, const Arguments&) {
             if (!v.is_number()) fail("abs expects a number, got {}", v.type_name());
             return v.is_float() ? Value(std::fabs(v.as_double())) : Value(std::abs(v.as_int()));
         }},
        {"attr", [](const Value& v, const Arguments& a) { return get_attribute(v, string_arg(a, 0, "name")); }},
        {"capitalize", [](const Value& v, const Arguments&) { return Value(capitalize(v.str())); }},
        {"default", [](const Value& v, const Arguments& a) {
             bool use_default = v.is_undefined() || (bool_arg(a, 1, "boolean", false) && !v.truthy());
             const Value* fallback = a.get(0, "default_value");
             return use_default ? (fallback ? *fallback : Value("")) : v;
         }},
        {"dictsort", [](const Value& v, const Arguments& a) {
             if (!v.is_dict()) fail("dictsort expects a dict, got {}", v.type_name());
             bool case_sensitive = bool_arg(a, 0, "case_sensitive", false);
             bool by_value = string_arg(a, 1, "by", "key") == "value";
             ValueList items = apply_filter("items", v, {}).as_list();
             std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
                 size_t i = by_value ? 1 : 0;
                 return less_than(sort_key(x.as_list()[i], "", case_sensitive), sort_key(y.as_list()[i], "", case_sensitive));
             });
             if (bool_arg(a, 2, "reverse", false)) std::reverse(items.begin(), items.end());
             return Value(items);
         }},
        {"escape", [](const Value& v, const Arguments&) { return Value(html_escape(v.str())); }},
        {"first", [](const Value& v, const Arguments&) {
             auto items = iterate(v);
             return items.empty() ? Value::undefined("first of an empty sequence") : items.front();
         }},
        {"float", [](const Value& v, const Arguments& a) {
             if (v.is_number()) return Value(v.as_double());
             try {
                 if (v.is_string()) return Value(std::stod(v.as_string()));
             } catch (const std::exception&) {
             }
             const Value* fallback = a.get(0, "default");
             return fallback ? *fallback : Value(0.0);
         }},
        {"indent", [](const Value& v, const Arguments& a) {
             const Value* width = a.get(0, "width");
             std::string indention = width && width->is_string() ? width->as_string() : std::string(int_arg(a, 0, "width", 4), ' ');
             return Value(indent(v.str(), indention, bool_arg(a, 1, "first", false), bool_arg(a, 2, "blank", false)));
         }},
        {"int", [](const Value& v, const Arguments& a) {
             if (v.is_float()) return Value(static_cast<int64_t>(v.as_double()));
             if (v.is_number()) return Value(v.as_int());
             try {
                 if (v.is_string()) {
                     size_t used = 0;
                     std::string s = strip(v.as_string(), "", true, true);
                     int64_t n = std::stoll(s, &used, static_cast<int>(int_arg(a, 1, "base", 10)));
                     if (used == s.size()) return Value(n);
                     return Value(static_cast<int64_t>(std::stod(s)));
                 }
             } catch (const std::exception&) {
             }
             return Value(int_arg(a, 0, "default", 0));
         }},
        {"items", [](const Value& v, const Arguments&) {
             ValueList pairs;
             if (v.is_undefined()) return Value(pairs);
             if (!v.is_dict()) fail("items expects a mapping, got {}", v.type_name());
             for (const auto& [key, item] : v.as_dict()) pairs.push_back(Value(ValueList{Value(key), item}));
             return Value(pairs);
         }},
        {"join", [](const Value& v, const Arguments& a) {
             std::string sep = string_arg(a, 0, "d");
             std::string attribute = string_arg(a, 1, "attribute");
             std::string out;
             bool first = true;
             for (const Value& item : iterate(v)) {
                 if (!first) out += sep;
                 first = false;
                 out += (attribute.empty() ? item : get_attribute_path(item, attribute)).str();
             }
             return Value(out);
         }},
        {"last", [](const Value& v, const Arguments&) {
             auto items = iterate(v);
             return items.empty() ? Value::undefined("last of an empty sequence") : items.back();
         }},
        {"length", [](const Value& v, const Arguments&) {
             switch (v.kind()) {
                 case Value::Kind::Undefined: return Value(0);
                 case Value::Kind::String: return Value(static_cast<int64_t>(utf8_length(v.as_string())));
                 case Value::Kind::List: return Value(static_cast<int64_t>(v.as_list().size()));
                 case Value::Kind::Dict: return Value(static_cast<int64_t>(v.as_dict().size()));
                 default: fail("object of type '{}' has no len()", v.type_name());
             }
         }},
        {"list", [](const Value& v, const Arguments&) { return Value(iterate(v)); }},
        {"lower", [](const Value& v, const Arguments&) { return Value(ascii_lower(v.str())); }},
        {"map", [](const Value& v, const Arguments& a) {
             ValueList out;
             if (const Value* attribute = keyword_arg(a, "attribute")) {
                 const Value* fallback = keyword_arg(a, "default");
                 for (const Value& item : iterate(v)) {
                     Value mapped = get_attribute_path(item, attribute->str());
                     out.push_back(mapped.is_undefined() && fallback ? *fallback : mapped);
                 }
                 return Value(out);
             }
             std::string filter = string_arg(a, 0, "name");
             Arguments rest = drop_positional(a, 1);
             for (const Value& item : iterate(v)) out.push_back(apply_filter(filter, item, rest));
             return Value(out);
         }},
        {"max", [](const Value& v, const Arguments& a) { return min_or_max(v, a, true); }},
        {"min", [](const Value& v, const Arguments& a) { return min_or_max(v, a, false); }},
        {"reject", [](const Value& v, const Arguments& a) { return filter_by_test(v, a, false, false); }},
        {"rejectattr", [](const Value& v, const Arguments& a) { return filter_by_test(v, a, false, true); }},
        {"replace", [](const Value& v, const Arguments& a) {
             return Value(replace_all(v.str(), string_arg(a, 0, "old"), string_arg(a, 1, "new"), int_arg(a, 2, "count", -1)));
         }},
        {"reverse", [](const Value& v, const Arguments&) {
             auto items = iterate(v);
             std::reverse(items.begin(), items.end());
             if (!v.is_string()) return Value(items);
             std::string out;
             for (const Value& cp : items) out += cp.as_string();
             return Value(out);
         }},
        {"round", [](const Value& v, const Arguments& a) {
             if (!v.is_number()) fail("round expects a number, got {}", v.type_name());
             double scale = std::pow(10.0, static_cast<double>(int_arg(a, 0, "precision", 0)));
             std::string method = string_arg(a, 1, "method", "common");
             double x = v.as_double() * scale;
             x = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
             return Value(x / scale);
         }},
        {"safe", [](const Value& v, const Arguments&) { return v; }},
        {"select", [](const Value& v, const Arguments& a) { return filter_by_test(v, a, true, false); }},
        {"selectattr", [](const Value& v, const Arguments& a) { return filter_by_test(v, a, true, true); }},
        {"sort", [](const Value& v, const Arguments& a) {
             auto items = iterate(v);
             bool case_sensitive = bool_arg(a, 1, "case_sensitive", false);
             std::string attribute = string_arg(a, 2, "attribute");
             std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
                 return less_than(sort_key(x, attribute, case_sensitive), sort_key(y, attribute, case_sensitive));
             });
             if (bool_arg(a, 0, "reverse", false)) std::reverse(items.begin(), items.end());
             return Value(items);
         }},
        {"string", [](const Value& v, const Arguments&) { return Value(v.str()); }},
        {"sum", [](const Value& v, const Arguments& a) {
             std::string attribute = string_arg(a, 0, "attribute");
             const Value* start = a.get(1, "start");
             Value total = start ? *start : Value(0);
             for (const Value& item : iterate(v)) {
                 Value x = attribute.empty() ? item : get_attribute_path(item, attribute);
                 if (!x.is_number() || !total.is_number()) fail("sum expects numbers, got {}", x.type_name());
                 total = (x.is_float() || total.is_float()) ? Value(total.as_double() + x.as_double()) : Value(total.as_int() + x.as_int());
             }
             return total;
         }},
        {"title", [](const Value& v, const Arguments&) { return Value(jinja_title(v.str())); }},
        {"tojson", [](const Value& v, const Arguments& a) {
             const Value* indent_arg = a.get(0, "indent");
             int indent_width = indent_arg && indent_arg->is_number() ? static_cast<int>(indent_arg->as_int()) : -1;
             return Value(((keyword_arg(a, "sort_keys") && keyword_arg(a, "sort_keys")->truthy()) ? sort_keys_deep(v) : v).to_json(indent_width));
         }},
        {"trim", [](const Value& v, const Arguments& a) { return Value(strip(v.str(), string_arg(a, 0, "chars"), true, true)); }},
        {"unique", [](const Value& v, const Arguments& a) {
             bool case_sensitive = bool_arg(a, 0, "case_sensitive", false);
             std::string attribute = string_arg(a, 1, "attribute");
             ValueList out, seen;
             for (const Value& item : iterate(v)) {
                 Value key = sort_key(item, attribute, case_sensitive);
                 if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return s.equals(key); })) continue;
                 seen.push_back(key);
                 out.push_back(item);
             }
             return Value(out);
         }},
        {"upper", [](const Value& v, const Arguments&) { return Value(ascii_upper(v.str())); }},
        {"wordcount", [](const Value& v, const Arguments&) {
             int64_t words = 0;
             bool in_word = false;
             for (char c : v.str()) {
                 bool word_char = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (static_cast<unsigned char>(c) & 0x80);
                 if (word_char && !in_word) ++words;
                 in_word = word_char;
             }
             return Value(words);
         }},
    };
    return table;
}

const std::unordered_map<std::string, std::string>& filter_aliases() {
    static const std::unordered_map<std::string, std::string> aliases = {
        {"d", "default"}, {"e", "escape"}, {"count", "length"},
    };
    return aliases;
}

using TestFn = std::function<bool(const Value&, const Arguments&)>;

const Value& test_operand(const Arguments& a) {
    const Value* v = a.get(0, "other");
    if (!v) fail("test needs an argument");
    return *v;
}

const std::unordered_map<std::string, TestFn>& tests() {
    static const std::unordered_map<std::string, TestFn> table = {
        {"boolean", [](const Value& v, const Arguments&) { return v.is_bool(); }},
        {"callable", [](const Value& v, const Arguments&) { return v.is_function(); }},
        {"defined", [](const Value& v, const Arguments&) { return !v.is_undefined(); }},
        {"undefined", [](const Value& v, const Arguments&) { return v.is_undefined(); }},
        {"none", [](const Value& v, const Arguments&) { return v.is_none(); }},
        {"true", [](const Value& v, const Arguments&) { return v.is_bool() && v.as_bool(); }},
        {"false", [](const Value& v, const Arguments&) { return v.is_bool() && !v.as_bool(); }},
        {"integer", [](const Value& v, const Arguments&) { return v.is_int(); }},
        {"float", [](const Value& v, const Arguments&) { return v.is_float(); }},
        {"number", [](const Value& v, const Arguments&) { return v.is_number(); }},
        {"string", [](const Value& v, const Arguments&) { return v.is_string(); }},
        {"mapping", [](const Value& v, const Arguments&) { return v.is_dict() && !v.is_namespace(); }},
        {"iterable", [](const Value& v, const Arguments&) { return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined(); }},
        {"sequence", [](const Value& v, const Arguments&) { return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined(); }},
        {"odd", [](const Value& v, const Arguments&) { return v.is_number() && (v.as_int() % 2) != 0; }},
        {"even", [](const Value& v, const Arguments&) { return v.is_number() && (v.as_int() % 2) == 0; }},
        {"divisibleby", [](const Value& v, const Arguments& a) {
             int64_t n = test_operand(a).as_int();
             return n != 0 && v.as_int() % n == 0;
         }},
        {"eq", [](const Value& v, const Arguments& a) { return v.equals(test_operand(a)); }},
        {"ne", [](const Value& v, const Arguments& a) { return !v.equals(test_operand(a)); }},
        {"lt", [](const Value& v, const Arguments& a) { return less_than(v, test_operand(a)); }},
        {"le", [](const Value& v, const Arguments& a) { return !less_than(test_operand(a), v); }},
        {"gt", [](const Value& v, const Arguments& a) { return less_than(test_operand(a), v); }},
        {"ge", [](const Value& v, const Arguments& a) { return !less_than(v, test_operand(a)); }},
        {"in", [](const Value& v, const Arguments& a) { return contains(test_operand(a), v); }},
        {"sameas", [](const Value& v, const Arguments& a) {
             const Value& other = test_operand(a);
             return v.kind() == other.kind() && v.equals(other);
         }},
        {"lower", [](const Value& v, const Arguments&) { return v.is_string() && ascii_lower(v.as_string()) == v.as_string(); }},
        {"upper", [](const Value& v, const Arguments&) { return v.is_string() && ascii_upper(v.as_string()) == v.as_string(); }},
    };
    return table;
}

const std::unordered_map<std::string, std::string>& test_aliases() {
    static const std::unordered_map<std::string, std::string> aliases = {
        {"equalto", "eq"}, {"==", "eq"}, {"!=", "ne"}, {"lessthan", "lt"}, {"<", "lt"}, {"<=", "le"},
        {"greaterthan", "gt"}, {">", "gt"}, {">=", "ge"},
    };
    return aliases;
}

}  // namespace

std::string strip(const std::string& s, const std::string& chars, bool left, bool right) {
    const std::string& set = chars.empty() ? std::string(kWhitespace) : chars;
    size_t begin = left ? s.find_first_not_of(set) : 0;
    if (begin == std::string::npos) return "";
    size_t end = right ? s.find_last_not_of(set) : s.size() - 1;
    return s.substr(begin, end - begin + 1);
}

Value apply_filter(const std::string& name, const Value& input, const Arguments& args) {
    auto alias = filter_aliases().find(name);
    const std::string& real = alias == filter_aliases().end() ? name : alias->second;
    auto it = filters().find(real);
    if (it == filters().end()) fail("no filter named '{}'", name);
    // Undefined acts as "" or [] in most filters, as in Jinja; these need a real value.
    bool needs_defined = real == "abs" || real == "round" || real == "tojson" || real == "dictsort" || real == "attr" ||
                         real == "int" || real == "float" || real == "indent";
    if (input.is_undefined() && needs_defined) undefined_error(input);
    return it->second(input, args);
}

bool apply_test(const std::string& name, const Value& value, const Arguments& args) {
    auto alias = test_aliases().find(name);
    const std::string& real = alias == test_aliases().end() ? name : alias->second;
    auto it = tests().find(real);
    if (it == tests().end()) fail("no test named '{}'", name);
    return it->second(value, args);
}

Value get_attribute(const Value& object, const std::string& name) {
    switch (object.kind()) {
        case Value::Kind::Undefined: undefined_error(object);
        case Value::Kind::Dict: {
            if (!object.is_namespace()) {
                Value method = dict_method(object, name);
                if (!method.is_undefined()) return method;
            }
            if (const Value* found = object.as_dict().find(name)) return *found;
            return Value::undefined(fmt::format("'{} object' has no attribute '{}'", object.type_name(), name));
        }
        case Value::Kind::String: return string_method(object.as_string(), name);
        default: return Value::undefined(fmt::format("'{} object' has no attribute '{}'", object.type_name(), name));
    }
}

Value get_item(const Value& object, const Value& key) {
    if (object.is_undefined()) undefined_error(object);
    if ((object.is_list() || object.is_string()) && key.is_number() && !key.is_float()) {
        std::vector<Value> code_points;
        const std::vector<Value>& items = object.is_list() ? object.as_list() : (code_points = iterate(object));
        int64_t n = static_cast<int64_t>(items.size());
        int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
        if (i < 0 || i >= n) return Value::undefined(fmt::format("'{} object' has no element {}", object.type_name(), key.repr()));
        return items[static_cast<size_t>(i)];
    }
    if (object.is_dict() && key.is_string()) {
        if (const Value* found = object.as_dict().find(key.as_string())) return *found;
    }
    if (key.is_string()) return get_attribute(object, key.as_string());  // Jinja falls back to getattr
    return Value::undefined(fmt::format("'{} object' has no item {}", object.type_name(), key.repr()));
}

Value get_slice(const Value& object, const Value* start, const Value* stop, const Value* step) {
    if (object.is_undefined()) undefined_error(object);
    if (!object.is_list() && !object.is_string()) fail("'{}' object is not subscriptable", object.type_name());
    std::vector<Value> items = iterate(object);
    auto bound = [](const Value* v, int64_t fallback) {
        if (!v || v->is_none() || v->is_undefined()) return fallback;
        if (!v->is_number() || v->is_float()) fail("slice indices must be integers");
        return v->as_int();
    };
    int64_t n = static_cast<int64_t>(items.size());
    int64_t stride = bound(step, 1);
    if (stride == 0) fail("slice step cannot be zero");
    // Python's slice.indices(): clamp into range, where "before the start" is -1 going backward.
    auto clamp = [&](const Value* v, int64_t fallback) {
        int64_t i = bound(v, fallback);
        if (v && !v->is_none() && !v->is_undefined()) {
            if (i < 0) i += n;
            if (i < 0) i = stride < 0 ? -1 : 0;
            if (i >= n) i = stride < 0 ? n - 1 : n;
        }
        return i;
    };
    int64_t from = clamp(start, stride < 0 ? n - 1 : 0);
    int64_t to = clamp(stop, stride < 0 ? -1 : n);
    ValueList out;
    for (int64_t i = from; stride > 0 ? i < to : i > to; i += stride) out.push_back(items[static_cast<size_t>(i)]);
    if (!object.is_string()) return Value(out);
    std::string text;
    for (const Value& cp : out) text += cp.as_string();
    return Value(text);
}

std::vector<Value> iterate(const Value& value) {
    switch (value.kind()) {
        case Value::Kind::Undefined: return {};
        case Value::Kind::List: return value.as_list();
        case Value::Kind::Dict: {
            std::vector<Value> keys;
            for (const auto& entry : value.as_dict()) keys.emplace_back(entry.first);
            return keys;
        }
        case Value::Kind::String: {
            std::vector<Value> out;
            for (auto& cp : utf8_code_points(value.as_string())) out.emplace_back(std::move(cp));
            return out;
        }
        default: fail("'{}' object is not iterable", value.type_name());
    }
}

bool contains(const Value& container, const Value& item) {
    switch (container.kind()) {
        case Value::Kind::Undefined: return false;
        case Value::Kind::String:
            if (!item.is_string()) fail("'in <string>' requires string as left operand, not {}", item.type_name());
            return container.as_string().find(item.as_string()) != std::string::npos;
        case Value::Kind::List:
            return std::any_of(container.as_list().begin(), container.as_list().end(), [&](const Value& v) { return v.equals(item); });
        case Value::Kind::Dict:
            return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
        default: fail("argument of type '{}' is not iterable", container.type_name());
    }
}

bool less_than(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
        return a.as_int() < b.as_int();
    }
    if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
    if (a.is_list() && b.is_list()) {
        const auto& x = a.as_list();
        const auto& y = b.as_list();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (less_than(x[i], y[i])) return true;
            if (less_than(y[i], x[i])) return false;
        }
        return x.size() < y.size();
    }
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    fail("'<' not supported between instances of '{}' and '{}'", a.type_name(), b.type_name());
}

}  // namespace qllm::jinja
