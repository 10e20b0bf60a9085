// Internal to the Jinja interpreter: Python semantics of attribute/item access, iteration,
// comparison, and the built-in filters, tests and methods. Errors are qllm::Error; the
// evaluator adds the template line.
#pragma once

#include <string>
#include <vector>

#include "chat/jinja_value.h"

namespace qllm::jinja {

// obj.name: a dict key, or a bound method of str/dict; Undefined when missing. Reading an
// attribute of an undefined value is an error, as in Jinja.
Value get_attribute(const Value& object, const std::string& name);
// obj[key]: list/str index (negative from the end), dict key; Undefined when missing.
Value get_item(const Value& object, const Value& key);
// obj[start:stop:step] on a list or str; null pointers are omitted bounds.
Value get_slice(const Value& object, const Value* start, const Value* stop, const Value* step);

std::vector<Value> iterate(const Value& value);  // list items, dict keys, str code points
bool contains(const Value& container, const Value& item);  // Python `item in container`
bool less_than(const Value& a, const Value& b);            // Python `a < b`

Value apply_filter(const std::string& name, const Value& input, const Arguments& args);
bool apply_test(const std::string& name, const Value& value, const Arguments& args);

// Python str.strip()/lstrip()/rstrip(); `chars` empty means whitespace.
std::string strip(const std::string& s, const std::string& chars, bool left, bool right);

}  // namespace qllm::jinja
