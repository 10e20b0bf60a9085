// The verbs of the qllm command line. Each file adds one subcommand and sets the action
// that runs when it is chosen; main() turns errors into "qllm: error: ..." and exit codes.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace qllm {
class Model;
}

namespace qllm::cli {

using Action = std::function<int()>;

void add_run(CLI::App& app, Action& action);
void add_logits(CLI::App& app, Action& action);
void add_info(CLI::App& app, Action& action);
void add_tokenize(CLI::App& app, Action& action);
void add_synth(CLI::App& app, Action& action);
void add_quantize(CLI::App& app, Action& action);
void add_bench(CLI::App& app, Action& action);
void add_chat(CLI::App& app, Action& action);
void add_perplexity(CLI::App& app, Action& action);
void add_imatrix(CLI::App& app, Action& action);

// Shared helpers (tools/qllm/common.cpp).
int default_threads();                       // physical cores
void add_no_repack_flag(CLI::App* cmd, bool& no_repack);  // --no-repack: Model::load(..., repack = false)
void set_threads(int n);                     // OpenMP threads for the forward pass
std::string read_prompt(const std::string& prompt, const std::string& file);  // -p or -f, UTF-8 checked
double peak_rss_mib();
bool interrupted();                          // SIGINT seen since install_interrupt_handler()
void clear_interrupted();                    // ready for the next Ctrl-C (chat: stop a reply, stay)
void install_interrupt_handler();
void write_demo_model(const std::string& path);
// The prompt of `run --chat`: one user message (and system prompt) through the chat template.
std::string render_one_shot_chat(const Model& model, const std::string& system, const std::string& user,
                                 const std::string& chat_template);  // synth --shape tiny (tools/qllm/synth.cpp)

}  // namespace qllm::cli
