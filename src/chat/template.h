// Chat templates: turning a conversation into the prompt text a model was trained on.
//
// A template is either a built-in family, rendered by a small C++ function (llama.cpp's names:
// "llama3", "chatml", "gemma", ...), or the model's own Jinja source (`tokenizer.chat_template`),
// rendered by the Jinja interpreter in chat/jinja.h with the variables Hugging Face passes
// (messages, add_generation_prompt, bos_token, eos_token). A Jinja template that cannot be
// parsed or rendered falls back to the built-in family its marker strings point to.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qllm::jinja {
class Template;
}

namespace qllm::chat {

struct ChatMessage {
    std::string role;  // "system", "user", "assistant", ...
    std::string content;
};

struct RenderParams {
    bool add_generation_prompt = true;  // end with the header of an assistant turn
    std::string bos_token;              // token texts, visible to Jinja templates
    std::string eos_token;
    // A Jinja template's output starting with bos_token loses it: the tokenizer adds BOS itself
    // (llama.cpp does the same), so it would otherwise appear twice.
    bool strip_leading_bos = true;
    std::optional<std::chrono::system_clock::time_point> now;  // clock for strftime_now()
};

// ---- built-in families ----------------------------------------------------------------------
const std::vector<std::string>& builtin_template_names();  // sorted
bool is_builtin_template(std::string_view name);

// Renders with a built-in family; an unknown name is a qllm::Error listing the known ones.
std::string render_builtin(std::string_view name, std::span<const ChatMessage> messages,
                           bool add_generation_prompt);

// The built-in family a Jinja template is written for, recognised by its marker strings the way
// llama.cpp's llm_chat_detect_template does; "" when nothing matches. A built-in name is
// returned as itself.
std::string detect_template_family(std::string_view template_source);

// Texts that end a turn in a family's format (e.g. "<|eot_id|>"), for stop conditions; empty
// for an unknown family.
std::vector<std::string> end_of_turn_markers(std::string_view family);

// ---- a model's or user's template -----------------------------------------------------------
class ChatTemplate {
public:
    // `name_or_source`: a built-in name, or Jinja source. Jinja that fails to parse is kept
    // for the built-in fallback; if no family is recognised either, this is a qllm::Error that
    // advises `--chat-template NAME`. A plain word that is no built-in name is an error too.
    explicit ChatTemplate(const std::string& name_or_source);
    ~ChatTemplate();
    ChatTemplate(ChatTemplate&&) noexcept;
    ChatTemplate& operator=(ChatTemplate&&) noexcept;

    std::string render(std::span<const ChatMessage> messages, const RenderParams& params = {}) const;

    bool is_jinja() const { return !source_.empty(); }
    bool jinja_parsed() const { return jinja_ != nullptr; }
    const std::string& family() const { return family_; }  // "" if unrecognised
    std::vector<std::string> stop_markers() const { return end_of_turn_markers(family_); }

private:
    std::string source_;  // Jinja source; empty for a built-in
    std::string family_;
    std::unique_ptr<jinja::Template> jinja_;
    std::string parse_error_;
};

// One-shot: ChatTemplate(name_or_source).render(messages, params).
std::string render_chat(const std::string& name_or_source, std::span<const ChatMessage> messages,
                        const RenderParams& params = {});

}  // namespace qllm::chat
