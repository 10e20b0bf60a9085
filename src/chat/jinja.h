// A from-scratch interpreter for the subset of Jinja2 that chat templates use (the official
// Llama 3.x, Qwen 2.5/3, Gemma 3, Mistral, Phi... templates), rendering them the way
// Hugging Face's apply_chat_template does: trim_blocks + lstrip_blocks, no autoescape,
// tojson without HTML escaping, Python's printing of values.
//
// Supported: {{ }}, {% if/elif/else %}, {% for %} (unpacking, `if` filter, else, loop.*,
// break/continue), {% set %} (incl. namespace attributes and block sets), {% macro %},
// {% call %}, {% filter %}, {% raw %}, {% generation %}, {# #}, whitespace control, the
// expression grammar (literals, lists, dicts, attribute/item access, slicing, arithmetic,
// comparisons, and/or/not, in, ternaries, filters and tests), Python string/dict methods, and the
// globals range, namespace, dict, raise_exception, strftime_now.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "chat/jinja_value.h"
#include "qllm/error.h"

namespace qllm::jinja {

// A render or syntax error, with the template line in its message.
class TemplateError : public Error {
public:
    using Error::Error;
};

// What the template itself asked for with raise_exception(message).
class RaisedException : public TemplateError {
public:
    using TemplateError::TemplateError;
};

struct RenderOptions {
    // The clock strftime_now() reads; unset means the real local time.
    std::optional<std::chrono::system_clock::time_point> now;
};

struct ParsedTemplate;

class Template {
public:
    // Parses `source`; a syntax error (or an unknown filter/test) is a qllm::Error.
    explicit Template(const std::string& source);
    ~Template();
    Template(Template&&) noexcept;
    Template& operator=(Template&&) noexcept;

    // Renders with `variables` as the template's globals (e.g. messages, bos_token).
    std::string render(const ValueDict& variables, const RenderOptions& options = {}) const;

private:
    std::unique_ptr<ParsedTemplate> parsed_;
};

}  // namespace qllm::jinja
