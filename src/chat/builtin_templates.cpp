// Built-in chat formats (llama.cpp's names and layouts), one row per family: how a
// conversation is laid out, and which texts end a turn. Also the detection of a family from a
// model's Jinja source by its marker strings.
#include <algorithm>
#include <cctype>
#include <functional>
#include <string>

#include "chat/template.h"
#include "qllm/error.h"

namespace qllm::chat {
namespace {

using Messages = std::span<const ChatMessage>;
using RenderFn = std::function<std::string(Messages, bool add_generation_prompt)>;

// C isspace() trimming, as llama.cpp's built-ins trim.
std::string trim(const std::string& s) {
    size_t begin = 0, end = s.size();
    while (begin < end && std::isspace(static_cast<unsigned char>(s[begin]))) ++begin;
    while (end > begin && std::isspace(static_cast<unsigned char>(s[end - 1]))) --end;
    return s.substr(begin, end - begin);
}

// Every message as prefix(role) + content + suffix(role); then the generation prompt.
std::string per_message(Messages messages, bool add_generation_prompt, const std::string& generation_prompt,
                        const std::function<std::string(const ChatMessage&)>& format) {
    std::string out;
    for (const auto& m : messages) out += format(m);
    if (add_generation_prompt) out += generation_prompt;
    return out;
}

std::string render_chatml(Messages messages, bool gen) {
    return per_message(messages, gen, "<|im_start|>assistant\n", [](const ChatMessage& m) {
        return "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    });
}

// [INST] prompts of Llama 2. Variants: system message inside <<SYS>>, <s> before each later
// turn, contents stripped. The first BOS comes from the tokenizer.
RenderFn llama2(bool system_block, bool bos_inside_history, bool strip_content) {
    return [=](Messages messages, bool) {
        std::string out = "[INST] ";
        bool inside_turn = true;
        for (const auto& m : messages) {
            std::string content = strip_content ? trim(m.content) : m.content;
            if (!inside_turn) {
                out += bos_inside_history ? "<s>[INST] " : "[INST] ";
                inside_turn = true;
            }
            if (m.role == "system") out += system_block ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
            else if (m.role == "user") out += content + " [/INST]";
            else {
                out += content + "</s>";
                inside_turn = false;
            }
        }
        return out;
    };
}

// Mistral v1/v3/v3-tekken: the system message joins the next [INST] block.
RenderFn mistral_legacy(const std::string& leading_space, const std::string& trailing_space, bool trim_assistant) {
    return [=](Messages messages, bool) {
        std::string out;
        bool inside_turn = false;
        for (const auto& m : messages) {
            if (!inside_turn) {
                out += leading_space + "[INST]" + trailing_space;
                inside_turn = true;
            }
            if (m.role == "system") out += m.content + "\n\n";
            else if (m.role == "user") out += m.content + leading_space + "[/INST]";
            else {
                out += trailing_space + (trim_assistant ? trim(m.content) : m.content) + "</s>";
                inside_turn = false;
            }
        }
        return out;
    };
}

// Mistral v7 (and tekken, without the spaces): [SYSTEM_PROMPT] blocks.
RenderFn mistral_v7(const std::string& space) {
    return [=](Messages messages, bool) {
        std::string out;
        for (const auto& m : messages) {
            if (m.role == "system") out += "[SYSTEM_PROMPT]" + space + m.content + "[/SYSTEM_PROMPT]";
            else if (m.role == "user") out += "[INST]" + space + m.content + "[/INST]";
            else out += space + m.content + "</s>";
        }
        return out;
    };
}

// "<|role|>" + separator + content + end; used by phi3, falcon3, zephyr, chatglm, glmedge.
RenderFn role_tags(const std::string& prefix, const std::string& separator, const std::string& end,
                   const std::string& generation_prompt) {
    return [=](Messages messages, bool gen) {
        return prefix + per_message(messages, gen, generation_prompt, [&](const ChatMessage& m) {
                   return "<|" + m.role + "|>" + separator + m.content + end;
               });
    };
}

// open + role + close + content + end, as in llama3 (trimmed), llama4 (trimmed), megrez, phi4.
RenderFn role_header(const std::string& open, const std::string& close, const std::string& end, bool trim_content) {
    return [=](Messages messages, bool gen) {
        return per_message(messages, gen, open + "assistant" + close, [&](const ChatMessage& m) {
            return open + m.role + close + (trim_content ? trim(m.content) : m.content) + end;
        });
    };
}

std::string render_gemma(Messages messages, bool gen) {
    // Gemma has no system role: the system text opens the next user turn.
    std::string out, system_prompt;
    for (const auto& m : messages) {
        if (m.role == "system") {
            system_prompt += trim(m.content);
            continue;
        }
        std::string role = m.role == "assistant" ? "model" : m.role;
        out += "<start_of_turn>" + role + "\n";
        if (!system_prompt.empty() && role != "model") {
            out += system_prompt + "\n\n";
            system_prompt.clear();
        }
        out += trim(m.content) + "<end_of_turn>\n";
    }
    if (gen) out += "<start_of_turn>model\n";
    return out;
}

std::string render_monarch(Messages messages, bool gen) {
    std::string out;
    for (size_t i = 0; i < messages.size(); ++i) {
        out += (i == 0 ? "" : "<s>") + messages[i].role + "\n" + messages[i].content + "</s>\n";
    }
    if (gen) out += "<s>assistant\n";
    return out;
}

std::string render_orion(Messages messages, bool) {
    std::string out, system_prompt;
    for (const auto& m : messages) {
        if (m.role == "system") {
            system_prompt += m.content;
        } else if (m.role == "user") {
            out += "Human: ";
            if (!system_prompt.empty()) {
                out += system_prompt + "\n\n";
                system_prompt.clear();
            }
            out += m.content + "\n\nAssistant: </s>";
        } else {
            out += m.content + "</s>";
        }
    }
    return out;
}

std::string render_openchat(Messages messages, bool gen) {
    return per_message(messages, gen, "GPT4 Correct Assistant:", [](const ChatMessage& m) {
        if (m.role == "system") return m.content + "<|end_of_turn|>";
        std::string role = m.role;
        if (!role.empty()) role[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(role[0])));
        return "GPT4 Correct " + role + ": " + m.content + "<|end_of_turn|>";
    });
}

RenderFn vicuna(bool orca_system) {
    return [=](Messages messages, bool gen) {
        return per_message(messages, gen, "ASSISTANT:", [&](const ChatMessage& m) -> std::string {
            if (m.role == "system") return orca_system ? "SYSTEM: " + m.content + "\n" : m.content + "\n\n";
            if (m.role == "user") return "USER: " + m.content + "\n";
            if (m.role == "assistant") return "ASSISTANT: " + m.content + "</s>\n";
            return "";
        });
    };
}

// Formats that map the three roles to fixed prefixes/suffixes (other roles are dropped).
struct RoleLayout {
    std::string system_prefix, system_suffix, user_prefix, user_suffix, assistant_prefix, assistant_suffix;
    std::string generation_prompt;
    bool trim_content = false;
};

RenderFn by_role(RoleLayout layout) {
    return [layout](Messages messages, bool gen) {
        return per_message(messages, gen, layout.generation_prompt, [&](const ChatMessage& m) -> std::string {
            std::string content = layout.trim_content ? trim(m.content) : m.content;
            if (m.role == "system") return layout.system_prefix + content + layout.system_suffix;
            if (m.role == "user") return layout.user_prefix + content + layout.user_suffix;
            if (m.role == "assistant") return layout.assistant_prefix + content + layout.assistant_suffix;
            return "";
        });
    };
}

std::string render_minicpm(Messages messages, bool) {
    std::string out;
    for (const auto& m : messages) {
        out += m.role == "user" ? "<用户>" + trim(m.content) + "<AI>" : trim(m.content);
    }
    return out;
}

std::string render_exaone4(Messages messages, bool gen) {
    return per_message(messages, gen, "[|assistant|]", [](const ChatMessage& m) -> std::string {
        if (m.role == "system") return "[|system|]" + trim(m.content) + "[|endofturn|]\n";
        if (m.role == "user") return "[|user|]" + trim(m.content) + "\n";
        if (m.role == "assistant") return "[|assistant|]" + trim(m.content) + "[|endofturn|]\n";
        if (m.role == "tool") return "[|tool|]" + trim(m.content) + "[|endofturn|]\n";
        return "";
    });
}

std::string render_rwkv_world(Messages messages, bool) {
    // The generation prompt follows a final user message whatever add_generation_prompt says.
    std::string out;
    for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "system") out += "System: " + trim(m.content) + "\n\n";
        else if (m.role == "user") {
            out += "User: " + trim(m.content) + "\n\n";
            if (i + 1 == messages.size()) out += "Assistant:";
        } else if (m.role == "assistant") out += "Assistant: " + trim(m.content) + "\n\n";
    }
    return out;
}

std::string render_granite(Messages messages, bool gen) {
    return per_message(messages, gen, "<|start_of_role|>assistant<|end_of_role|>\n", [](const ChatMessage& m) {
        std::string out = "<|start_of_role|>" + m.role + "<|end_of_role|>";
        if (m.role == "assistant_tool_call") out += "<|tool_call|>";
        return out + m.content + "<|end_of_text|>\n";
    });
}

std::string render_gigachat(Messages messages, bool gen) {
    bool has_system = !messages.empty() && messages[0].role == "system";
    std::string out = has_system ? "<s>" + messages[0].content + "<|message_sep|>" : "<s>";
    for (size_t i = has_system ? 1 : 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "user") {
            out += "user<|role_sep|>" + m.content + "<|message_sep|>available functions<|role_sep|>[]<|message_sep|>";
        } else if (m.role == "assistant") {
            out += "assistant<|role_sep|>" + m.content + "<|message_sep|>";
        }
    }
    if (gen) out += "assistant<|role_sep|>";
    return out;
}

std::string render_yandex(Messages messages, bool gen) {
    std::string out = "<s>";  // no system role
    for (const auto& m : messages) {
        if (m.role == "user") out += " Пользователь: " + m.content + "\n\n";
        else if (m.role == "assistant") out += " Ассистент: " + m.content + "\n\n";
    }
    if (gen) out += " Ассистент:[SEP]";
    return out;
}

std::string render_bailing(Messages messages, bool gen) {
    return per_message(messages, gen, "<role>ASSISTANT</role>", [](const ChatMessage& m) {
        std::string role = m.role;
        if (role == "user") role = "HUMAN";
        else std::transform(role.begin(), role.end(), role.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        return "<role>" + role + "</role>" + m.content;
    });
}

std::string render_smolvlm(Messages messages, bool gen) {
    // <|im_start|> is SmolVLM's BOS text; the turns themselves are not ChatML.
    return "<|im_start|>" + per_message(messages, gen, "Assistant:", [](const ChatMessage& m) {
               if (m.role == "system") return m.content + "\n\n";
               if (m.role == "user") return "User: " + m.content + "<end_of_utterance>\n";
               return "Assistant: " + m.content + "<end_of_utterance>\n";
           });
}

std::string render_hunyuan_moe(Messages messages, bool) {
    std::string out;
    for (const auto& m : messages) {
        const char* end = m.role == "system" ? "<|extra_4|>" : m.role == "assistant" ? "<|eos|>" : "<|extra_0|>";
        out += "<|startoftext|>" + m.content + end;
    }
    return out;
}

std::string render_hunyuan_dense(Messages messages, bool gen) {
    std::string out;
    for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (i == 0) {
            out += "<｜hy_begin▁of▁sentence｜>";
            if (m.role == "system") out += m.content + "<｜hy_place▁holder▁no▁3｜>";
        }
        if (m.role == "assistant") out += "<｜hy_Assistant｜>" + m.content + "<｜hy_place▁holder▁no▁2｜>";
        else if (m.role == "user") out += "<｜hy_User｜>" + m.content;
    }
    out += gen ? "<｜hy_Assistant｜>" : "<｜hy_place▁holder▁no▁8｜>";
    return out;
}

std::string render_kimi_k2(Messages messages, bool gen) {
    // The reference (llama.cpp) repeats the generation prompt after every message; kept so the
    // output matches it.
    std::string out;
    for (const auto& m : messages) {
        if (m.role == "system") out += "<|im_system|>system<|im_middle|>";
        else if (m.role == "user") out += "<|im_user|>user<|im_middle|>";
        else if (m.role == "assistant") out += "<|im_assistant|>assistant<|im_middle|>";
        else if (m.role == "tool") out += "<|im_system|>tool<|im_middle|>";
        out += m.content + "<|im_end|>";
        if (gen) out += "<|im_assistant|>assistant<|im_middle|>";
    }
    return out;
}

struct Family {
    std::string name;
    RenderFn render;
    std::vector<std::string> end_of_turn;
};

const std::vector<Family>& families() {
    static const std::vector<Family> table = [] {
        const std::string deepseek_eos = "<｜end▁of▁sentence｜>";
        std::vector<Family> t = {
            {"bailing", render_bailing, {"<|endoftext|>", "<role>HUMAN</role>"}},
            {"chatglm3", role_tags("[gMASK]sop", "\n ", "", "<|assistant|>"), {"<|user|>", "<|observation|>"}},
            {"chatglm4", role_tags("[gMASK]<sop>", "\n", "", "<|assistant|>\n"), {"<|user|>", "<|observation|>", "<|endoftext|>"}},
            {"chatml", render_chatml, {"<|im_end|>", "<|endoftext|>"}},
            {"command-r",
             by_role({"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
                      "<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>",
                      "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", true}),
             {"<|END_OF_TURN_TOKEN|>"}},
            {"deepseek", by_role({"", "", "### Instruction:\n", "\n", "### Response:\n", "\n<|EOT|>\n", "### Response:\n"}), {"<|EOT|>"}},
            {"deepseek2", by_role({"", "\n\n", "User: ", "\n\n", "Assistant: ", deepseek_eos, "Assistant:"}), {deepseek_eos}},
            {"deepseek3", by_role({"", "\n\n", "<｜User｜>", "", "<｜Assistant｜>", deepseek_eos, "<｜Assistant｜>"}), {deepseek_eos}},
            {"dots1", by_role({"<|system|>", "<|endofsystem|>", "<|userprompt|>", "<|endofuserprompt|>", "<|response|>", "<|endofresponse|>", "<|response|>"}),
             {"<|endofresponse|>"}},
            {"exaone3", by_role({"[|system|]", "[|endofturn|]\n", "[|user|]", "\n", "[|assistant|]", "[|endofturn|]\n", "[|assistant|]", true}),
             {"[|endofturn|]"}},
            {"exaone4", render_exaone4, {"[|endofturn|]"}},
            {"falcon3", role_tags("", "\n", "\n", "<|assistant|>\n"), {"<|endoftext|>", "<|user|>"}},
            {"gemma", render_gemma, {"<end_of_turn>"}},
            {"gigachat", render_gigachat, {"<|message_sep|>"}},
            {"glmedge", role_tags("", "\n", "", "<|assistant|>"), {"<|user|>", "<|observation|>", "<|endoftext|>"}},
            {"granite", render_granite, {"<|end_of_text|>"}},
            {"hunyuan-dense", render_hunyuan_dense, {"<｜hy_place▁holder▁no▁2｜>"}},
            {"hunyuan-moe", render_hunyuan_moe, {"<|eos|>"}},
            {"kimi-k2", render_kimi_k2, {"<|im_end|>"}},
            {"llama2", llama2(false, false, false), {"</s>"}},
            {"llama2-sys", llama2(true, false, false), {"</s>"}},
            {"llama2-sys-bos", llama2(true, true, false), {"</s>"}},
            {"llama2-sys-strip", llama2(true, false, true), {"</s>"}},
            {"llama3",
             role_header("<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>", true),
             {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"}},
            {"llama4", role_header("<|header_start|>", "<|header_end|>\n\n", "<|eot|>", true), {"<|eot|>", "<|eom|>", "<|end_of_text|>"}},
            {"megrez", role_header("<|role_start|>", "<|role_end|>", "<|turn_end|>", false), {"<|turn_end|>"}},
            {"minicpm", render_minicpm, {"<用户>", "</s>"}},
            {"mistral-v1", mistral_legacy(" ", " ", false), {"</s>"}},
            {"mistral-v3", mistral_legacy("", " ", true), {"</s>"}},
            {"mistral-v3-tekken", mistral_legacy("", "", false), {"</s>"}},
            {"mistral-v7", mistral_v7(" "), {"</s>"}},
            {"mistral-v7-tekken", mistral_v7(""), {"</s>"}},
            {"monarch", render_monarch, {"</s>"}},
            {"openchat", render_openchat, {"<|end_of_turn|>"}},
            {"orion", render_orion, {"</s>"}},
            {"phi3", role_tags("", "\n", "<|end|>\n", "<|assistant|>\n"), {"<|end|>", "<|endoftext|>"}},
            {"phi4", role_header("<|im_start|>", "<|im_sep|>", "<|im_end|>", false), {"<|im_end|>", "<|endoftext|>"}},
            {"rwkv-world", render_rwkv_world, {"\n\nUser:"}},
            {"smolvlm", render_smolvlm, {"<end_of_utterance>"}},
            {"vicuna", vicuna(false), {"</s>", "\nUSER:"}},
            {"vicuna-orca", vicuna(true), {"</s>", "\nUSER:"}},
            {"yandex", render_yandex, {"</s>", "[SEP]"}},
            {"zephyr", role_tags("", "\n", "<|endoftext|>\n", "<|assistant|>\n"), {"<|endoftext|>", "</s>"}},
        };
        std::sort(t.begin(), t.end(), [](const Family& a, const Family& b) { return a.name < b.name; });
        return t;
    }();
    return table;
}

const Family* find_family(std::string_view name) {
    for (const auto& f : families()) if (f.name == name) return &f;
    return nullptr;
}

}  // namespace

const std::vector<std::string>& builtin_template_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> out;
        for (const auto& f : families()) out.push_back(f.name);
        return out;
    }();
    return names;
}

bool is_builtin_template(std::string_view name) { return find_family(name) != nullptr; }

std::string render_builtin(std::string_view name, std::span<const ChatMessage> messages, bool add_generation_prompt) {
    const Family* family = find_family(name);
    if (!family) {
        std::string known;
        for (const auto& n : builtin_template_names()) known += (known.empty() ? "" : ", ") + n;
        fail("unknown chat template '{}'; built-in templates: {}", name, known);
    }
    return family->render(messages, add_generation_prompt);
}

std::vector<std::string> end_of_turn_markers(std::string_view family) {
    const Family* f = find_family(family);
    return f ? f->end_of_turn : std::vector<std::string>{};
}

// The order matters: several formats share markers, so the more specific tests come first.
std::string detect_template_family(std::string_view source) {
    if (is_builtin_template(source)) return std::string(source);
    auto has = [&](std::string_view marker) { return source.find(marker) != std::string_view::npos; };

    if (has("<|im_start|>")) {
        if (has("<|im_sep|>")) return "phi4";
        if (has("<end_of_utterance>")) return "smolvlm";  // <|im_start|> is its BOS, not ChatML
        return "chatml";
    }
    if (source.starts_with("mistral") || has("[INST]")) {
        if (has("[SYSTEM_PROMPT]")) return "mistral-v7";
        // Mistral's official v1/v3 templates, told apart by their spacing around [INST].
        if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
            if (has(" [INST]")) return "mistral-v1";
            if (has("\"[INST]\"")) return "mistral-v3-tekken";
            return "mistral-v3";
        }
        if (has("content.strip()")) return "llama2-sys-strip";
        if (has("bos_token + '[INST]")) return "llama2-sys-bos";
        if (has("<<SYS>>")) return "llama2-sys";
        return "llama2";
    }
    if (has("<|assistant|>") && has("<|end|>")) return "phi3";
    if (has("[gMASK]<sop>")) return "chatglm4";
    if (has("<|assistant|>") && has("<|user|>")) return has("</s>") ? "falcon3" : "glmedge";
    if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) return "glmedge";
    if (has("<|user|>") && has("<|endoftext|>")) return "zephyr";
    if (has("bos_token + message['role']")) return "monarch";
    if (has("<start_of_turn>")) return "gemma";
    if (has("'\\n\\nAssistant: ' + eos_token")) return "orion";
    if (has("GPT4 Correct ")) return "openchat";
    if (has("USER: ") && has("ASSISTANT: ")) return has("SYSTEM: ") ? "vicuna-orca" : "vicuna";
    if (has("### Instruction:") && has("<|EOT|>")) return "deepseek";
    if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return "command-r";
    if (has("<|start_header_id|>") && has("<|end_header_id|>")) return "llama3";
    if (has("[gMASK]sop")) return "chatglm3";
    if (has("<用户>")) return "minicpm";
    if (has("'Assistant: ' + message['content'] + eos_token")) return "deepseek2";
    if (has("<｜Assistant｜>") && has("<｜User｜>") && has("<｜end▁of▁sentence｜>")) return "deepseek3";
    if (has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]")) return has("[|tool|]") ? "exaone4" : "exaone3";
    if (has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}")) return "rwkv-world";
    if (has("<|start_of_role|>")) return "granite";
    if (has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]")) return "gigachat";
    if (has("<|role_start|>")) return "megrez";
    if (has(" Ассистент:")) return "yandex";
    if (has("<role>ASSISTANT</role>") && has("'HUMAN'")) return "bailing";
    if (has("<|header_start|>") && has("<|header_end|>")) return "llama4";
    if (has("<|endofuserprompt|>")) return "dots1";
    if (has("<|startoftext|>") && has("<|extra_4|>")) return "hunyuan-moe";
    if (has("<｜hy_place▁holder▁no▁2｜>") && has("<｜hy_place▁holder▁no▁3｜>")) return "hunyuan-dense";
    if (has("<|im_assistant|>assistant<|im_middle|>")) return "kimi-k2";
    return "";
}

}  // namespace qllm::chat
