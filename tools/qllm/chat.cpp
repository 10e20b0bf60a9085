// qllm chat: an interactive conversation with the model's chat template. Each turn renders the
// whole conversation, keeps the KV cache for the prefix it shares with what was evaluated
// before, and evaluates only the rest; the reply streams as it is generated.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "chat/template.h"
#include "commands.h"
#include "model/context.h"
#include "qllm/error.h"
#include "sample/sampler.h"

namespace qllm::cli {
namespace {

using chat::ChatMessage;

struct ChatOptions {
    std::string model, system, chat_template;
    int n_ctx = 0, threads = 0, n_predict = -1;
    bool ignore_eos = false;
    SamplerParams sampling;
    bool no_repack = false;
};

// The template to use: --chat-template (a built-in name, or a file of Jinja source), else the
// model's own. A model without one is an error that says what to do.
chat::ChatTemplate choose_template(const Model& model, const std::string& requested) {
    if (!requested.empty()) {
        if (std::filesystem::is_regular_file(requested)) {
            std::ifstream in(requested, std::ios::binary);
            return chat::ChatTemplate(std::string(std::istreambuf_iterator<char>(in), {}));
        }
        return chat::ChatTemplate(requested);
    }
    const std::string source = model.file().get_string_or("tokenizer.chat_template", "");
    if (source.empty()) {
        std::string names;
        for (const auto& n : chat::builtin_template_names()) names += (names.empty() ? "" : ", ") + n;
        fail("{}: the model has no chat template (tokenizer.chat_template); choose one with --chat-template NAME "
             "(one of: {}) or --chat-template FILE (Jinja)",
             model.file().path(), names);
    }
    return chat::ChatTemplate(source);
}

class ChatSession {
public:
    ChatSession(const Model& model, const ChatOptions& opt)
        : model_(model), opt_(opt), template_(choose_template(model, opt.chat_template)),
          ctx_(model, opt.n_ctx > 0 ? opt.n_ctx : std::min<int64_t>(4096, model.hparams().n_ctx_train)),
          sampler_(opt.sampling, int32_t(ctx_.n_ctx())) {
        const Vocab& v = model.vocab();
        if (v.bos >= 0) params_.bos_token = v.tokens[size_t(v.bos)];
        if (v.eos >= 0) params_.eos_token = v.tokens[size_t(v.eos)];
        markers_ = template_.stop_markers();
        if (!opt.system.empty()) history_.push_back({"system", opt.system});
    }

    int64_t last_prompt_tokens() const { return last_prompt_tokens_; }

    // Adds the user's turn, generates the reply (streamed to stdout) and records it.
    void turn(const std::string& user) {
        history_.push_back({"user", user});
        const int64_t reserve = std::min<int64_t>(256, ctx_.n_ctx() / 4);
        std::string text = template_.render(history_, params_);
        std::vector<TokenId> prompt = tokens_for(text);
        while (int64_t(prompt.size()) + reserve > ctx_.n_ctx() && drop_oldest_turn()) {
            fmt::print(stderr, "\nqllm: context full: forgot the oldest turn\n");
            text = template_.render(history_, params_);
            prompt = tokens_for(text);
        }
        if (int64_t(prompt.size()) >= ctx_.n_ctx()) {
            history_.pop_back();
            fail("this message ({} tokens with the conversation) does not fit the context of {} (use -c)", prompt.size(),
                 ctx_.n_ctx());
        }
        // Reuse the cached prefix; evaluate at least the last token to get its logits.
        size_t common = 0;
        while (common < cached_.size() && common < prompt.size() && cached_[common] == prompt[common]) ++common;
        if (common == prompt.size()) --common;
        ctx_.truncate(int64_t(common));
        last_prompt_tokens_ = int64_t(prompt.size() - common);
        std::span<const float> logits = ctx_.eval(std::span(prompt).subspan(common), false);
        cached_ = prompt;

        std::string reply, shown;
        bool cut = false;  // ended by a marker's text, whose tokens are in the cache but not in reply
        Utf8Streamer stream;
        const int64_t limit = opt_.n_predict < 0 ? ctx_.n_ctx() : opt_.n_predict;
        for (int64_t n = 0; n < limit && ctx_.n_past() < ctx_.n_ctx() && !interrupted(); ++n) {
            const TokenId next = sampler_.sample(logits);
            sampler_.accept(next);
            if (model_.tokenizer().is_eog(next) && !opt_.ignore_eos) break;
            reply += model_.tokenizer().piece(next);
            if ((cut = cut_at_marker(reply))) break;
            // Hold back a tail that could still become an end-of-turn marker.
            const size_t safe = reply.size() - marker_prefix_length(reply);
            if (safe > shown.size()) {
                std::cout << stream.push(std::string_view(reply).substr(shown.size(), safe - shown.size())) << std::flush;
                shown = reply.substr(0, safe);
            }
            cached_.push_back(next);
            logits = ctx_.eval(std::span(&next, 1), false);
        }
        if (reply.size() > shown.size()) std::cout << stream.push(std::string_view(reply).substr(shown.size()));
        std::cout << stream.finish() << std::endl;
        if (interrupted()) {
            fmt::print(stderr, "qllm: reply stopped\n");
            clear_interrupted();
        }
        history_.push_back({"assistant", reply});
        // What the cache now holds, as text: the next turn's rendering should extend it.
        rendered_ = cut ? std::string() : text + reply;
    }

    void clear() {
        rendered_.clear();
        std::erase_if(history_, [](const ChatMessage& m) { return m.role != "system"; });
    }
    void set_system(const std::string& text) {
        rendered_.clear();
        std::erase_if(history_, [](const ChatMessage& m) { return m.role == "system"; });
        history_.insert(history_.begin(), {"system", text});
    }
    void save(const std::string& path) const {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& m : history_) j.push_back({{"role", m.role}, {"content", m.content}});
        std::ofstream out(path);
        out << j.dump(2) << "\n";
        if (!out) fail("{}: cannot write the conversation", path);
    }
    void load(const std::string& path) {
        std::ifstream in(path);
        if (!in) fail("{}: cannot open", path);
        const auto j = nlohmann::json::parse(in, nullptr, false);
        if (!j.is_array()) fail("{}: not a saved conversation (expected a JSON array of messages)", path);
        std::vector<ChatMessage> loaded;
        for (const auto& m : j) {
            if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
                !m["content"].is_string()) {
                fail("{}: every message needs string fields role and content", path);
            }
            loaded.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
        }
        history_ = std::move(loaded);
        rendered_.clear();
    }
    size_t turns() const { return history_.size(); }

private:
    // The conversation's tokens. When its text extends what the cache holds, only the new text
    // is tokenized, so the cached tokens (the reply as generated) are kept exactly; otherwise
    // the whole text is tokenized afresh.
    std::vector<TokenId> tokens_for(const std::string& text) const {
        const Tokenizer& tok = model_.tokenizer();
        if (!rendered_.empty() && text.starts_with(rendered_)) {
            std::vector<TokenId> tokens = cached_;
            const auto added = tok.encode(std::string_view(text).substr(rendered_.size()), false, true);
            tokens.insert(tokens.end(), added.begin(), added.end());
            return tokens;
        }
        return tok.encode(text, model_.vocab().add_bos, /*parse_special=*/true);
    }
    // Removes the oldest user turn and what follows it up to the next user turn; keeps system.
    bool drop_oldest_turn() {
        auto first = std::find_if(history_.begin(), history_.end(), [](auto& m) { return m.role == "user"; });
        if (first == history_.end() || first + 1 == history_.end()) return false;  // only the new turn left
        auto next = std::find_if(first + 1, history_.end(), [](auto& m) { return m.role == "user"; });
        if (next == history_.end()) return false;
        history_.erase(first, next);
        return true;
    }
    bool cut_at_marker(std::string& reply) const {
        for (const auto& m : markers_) {
            if (const size_t at = reply.find(m); at != std::string::npos) {
                reply.resize(at);
                return true;
            }
        }
        return false;
    }
    size_t marker_prefix_length(const std::string& reply) const {
        size_t longest = 0;
        for (const auto& m : markers_) {
            for (size_t len = std::min(m.size() - 1, reply.size()); len > longest; --len) {
                if (reply.compare(reply.size() - len, len, m, 0, len) == 0) {
                    longest = len;
                    break;
                }
            }
        }
        return longest;
    }

    const Model& model_;
    const ChatOptions& opt_;
    chat::ChatTemplate template_;
    chat::RenderParams params_;
    std::vector<std::string> markers_;
    Context ctx_;
    Sampler sampler_;
    std::vector<ChatMessage> history_;
    std::vector<TokenId> cached_;  // the tokens whose keys and values are in ctx_
    std::string rendered_;         // their text, when known exactly
    int64_t last_prompt_tokens_ = 0;
};

constexpr const char* kHelp =
    "Commands:\n"
    "  /help            this help\n"
    "  /clear           forget the conversation (keeps the system prompt)\n"
    "  /system TEXT     set the system prompt\n"
    "  /save FILE       save the conversation as JSON\n"
    "  /load FILE       load a saved conversation\n"
    "  /bye             leave (Ctrl-D too)\n"
    "End a line with \\ to continue it, or wrap several lines in \"\"\" ... \"\"\".\n"
    "Ctrl-C stops a reply.\n";

// Reads one message: a line, lines joined by trailing backslashes, or a """ block.
// Returns false at end of input.
bool read_message(std::string& out, bool tty) {
    out.clear();
    std::string line;
    if (tty) std::cout << ">>> " << std::flush;
    if (!std::getline(std::cin, line)) return false;
    if (line.rfind("\"\"\"", 0) == 0) {
        std::string rest = line.substr(3);
        while (true) {
            if (const size_t end = rest.find("\"\"\""); end != std::string::npos) {
                out += rest.substr(0, end);
                return true;
            }
            out += rest + "\n";
            if (tty) std::cout << "... " << std::flush;
            if (!std::getline(std::cin, rest)) return !out.empty();
        }
    }
    while (!line.empty() && line.back() == '\\') {
        out += line.substr(0, line.size() - 1) + "\n";
        if (tty) std::cout << "... " << std::flush;
        if (!std::getline(std::cin, line)) return true;
    }
    out += line;
    return true;
}

int chat_loop(const ChatOptions& opt) {
    set_threads(opt.threads > 0 ? opt.threads : default_threads());
    auto model = Model::load(opt.model, Model::Mode::Full, !opt.no_repack);
    ChatSession session(*model, opt);
    install_interrupt_handler();
    const bool tty = isatty(STDIN_FILENO);
    if (tty) fmt::print(stderr, "qllm chat: {} — /help for commands, /bye or Ctrl-D to leave\n", opt.model);

    std::string message;
    while (read_message(message, tty)) {
        clear_interrupted();  // a Ctrl-C at the prompt does not end the chat
        if (message.empty()) continue;
        if (message == "/bye") break;
        if (message == "/help" || message == "/?") {
            std::cout << kHelp;
            continue;
        }
        if (message == "/clear") {
            session.clear();
            fmt::print(stderr, "qllm: conversation cleared\n");
            continue;
        }
        try {
            if (message.rfind("/system ", 0) == 0) {
                session.set_system(message.substr(8));
                fmt::print(stderr, "qllm: system prompt set\n");
            } else if (message.rfind("/save ", 0) == 0) {
                session.save(message.substr(6));
                fmt::print(stderr, "qllm: saved {} messages to {}\n", session.turns(), message.substr(6));
            } else if (message.rfind("/load ", 0) == 0) {
                session.load(message.substr(6));
                fmt::print(stderr, "qllm: loaded {} messages\n", session.turns());
            } else if (message[0] == '/' && message.find(' ') == std::string::npos && message.size() < 16) {
                fmt::print(stderr, "qllm: unknown command {} (/help lists them)\n", message);
            } else {
                session.turn(message);
                fmt::print(stderr, "qllm: evaluated {} new prompt tokens\n", session.last_prompt_tokens());
            }
        } catch (const Error& e) {
            // A failed turn or command is reported, and the chat goes on.
            fmt::print(stderr, "qllm: error: {}\n", e.what());
        }
    }
    if (tty) std::cout << std::endl;
    return 0;
}

}  // namespace

// One user message (plus -sys) through the template, for `qllm run --chat`.
std::string render_one_shot_chat(const Model& model, const std::string& system, const std::string& user,
                                 const std::string& chat_template) {
    const auto tmpl = choose_template(model, chat_template);
    std::vector<ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system});
    messages.push_back({"user", user});
    chat::RenderParams params;
    const Vocab& v = model.vocab();
    if (v.bos >= 0) params.bos_token = v.tokens[size_t(v.bos)];
    if (v.eos >= 0) params.eos_token = v.tokens[size_t(v.eos)];
    return tmpl.render(messages, params);
}

void add_chat(CLI::App& app, Action& action) {
    auto opt = std::make_shared<ChatOptions>();
    CLI::App* cmd = app.add_subcommand("chat", "Chat with a model interactively, using its chat template");
    cmd->add_option("-m,--model", opt->model, "GGUF model file")->required();
    cmd->add_option("--system-prompt", opt->system, "system prompt (-sys works too)");
    cmd->add_option("--chat-template", opt->chat_template, "built-in template name or a Jinja file");
    cmd->add_option("-c,--ctx-size", opt->n_ctx, "context size (default: min(4096, training context))");
    cmd->add_option("-n,--n-predict", opt->n_predict, "most tokens per reply (-1: until the turn ends)");
    cmd->add_option("-t,--threads", opt->threads, "threads (default: physical cores)");
    add_no_repack_flag(cmd, opt->no_repack);
    cmd->add_option("--temp", opt->sampling.temperature, "temperature; 0 = greedy")->capture_default_str();
    cmd->add_option("--top-k", opt->sampling.top_k, "top-k; 0 = off")->capture_default_str();
    cmd->add_option("--top-p", opt->sampling.top_p, "top-p; 1 = off")->capture_default_str();
    cmd->add_option("--min-p", opt->sampling.min_p, "min-p; 0 = off")->capture_default_str();
    cmd->add_option("--repeat-penalty", opt->sampling.repeat_penalty, "repetition penalty; 1 = off")->capture_default_str();
    cmd->add_option("-s,--seed", opt->sampling.seed, "random seed (default: random)");
    cmd->add_flag("--ignore-eos", opt->ignore_eos, "keep generating past end-of-generation tokens");
    cmd->callback([&action, opt] { action = [opt] { return chat_loop(*opt); }; });
}

}  // namespace qllm::cli
