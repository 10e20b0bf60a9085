// ChatTemplate: a built-in family or a model's Jinja template, with the fallback between them.
#include "chat/template.h"

#include <spdlog/spdlog.h>

#include "chat/jinja.h"
#include "qllm/error.h"

namespace qllm::chat {
namespace {

std::string known_names() {
    std::string out;
    for (const auto& name : builtin_template_names()) out += (out.empty() ? "" : ", ") + name;
    return out;
}

bool looks_like_jinja(const std::string& text) {
    return text.find("{%") != std::string::npos || text.find("{{") != std::string::npos;
}

// The variables Hugging Face's apply_chat_template gives a template.
jinja::ValueDict template_variables(std::span<const ChatMessage> messages, const RenderParams& params) {
    jinja::ValueList list;
    for (const auto& m : messages) {
        jinja::ValueDict message;
        message.set("role", jinja::Value(m.role));
        message.set("content", jinja::Value(m.content));
        list.emplace_back(std::move(message));
    }
    jinja::ValueDict vars;
    vars.set("messages", jinja::Value(std::move(list)));
    vars.set("add_generation_prompt", jinja::Value(params.add_generation_prompt));
    vars.set("bos_token", jinja::Value(params.bos_token));
    vars.set("eos_token", jinja::Value(params.eos_token));
    return vars;
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& name_or_source) {
    if (is_builtin_template(name_or_source)) {
        family_ = name_or_source;
        return;
    }
    if (name_or_source.empty())
        fail("no chat template given; choose a built-in format with --chat-template NAME ({})", known_names());
    if (!looks_like_jinja(name_or_source))
        fail("unknown chat template '{}'; built-in templates: {}", name_or_source, known_names());
    source_ = name_or_source;
    family_ = detect_template_family(source_);
    try {
        jinja_ = std::make_unique<jinja::Template>(source_);
    } catch (const Error& e) {
        parse_error_ = e.what();
        if (family_.empty())
            fail("{}\nthe model's chat template is not supported and its format is not recognised; "
                 "choose a built-in format with --chat-template NAME ({})",
                 e.what(), known_names());
    }
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(std::span<const ChatMessage> messages, const RenderParams& params) const {
    std::string failure = parse_error_;
    if (jinja_) {
        try {
            jinja::RenderOptions options;
            options.now = params.now;
            std::string text = jinja_->render(template_variables(messages, params), options);
            if (params.strip_leading_bos && !params.bos_token.empty() && text.starts_with(params.bos_token))
                text.erase(0, params.bos_token.size());
            return text;
        } catch (const Error& e) {
            if (family_.empty())
                fail("{}\nchoose a built-in chat format with --chat-template NAME ({})", e.what(), known_names());
            failure = e.what();
        }
    }
    if (is_jinja()) spdlog::warn("{}; using the built-in '{}' chat format instead", failure, family_);
    return render_builtin(family_, messages, params.add_generation_prompt);
}

std::string render_chat(const std::string& name_or_source, std::span<const ChatMessage> messages,
                        const RenderParams& params) {
    return ChatTemplate(name_or_source).render(messages, params);
}

}  // namespace qllm::chat
