// qllm logits: the logits of every prompt position, in the golden file format:
// int32 n_tokens, int32 n_vocab, int32 tokens[n_tokens], float32 logits[n_tokens][n_vocab].
#include <fmt/core.h>

#include "commands.h"
#include "model/context.h"
#include "qllm/error.h"
#include "util/output_file.h"

namespace qllm::cli {
namespace {

struct LogitsOptions {
    std::string model, prompt, prompt_file, output;
    int threads = 0;
    bool check_numerics = false;
    bool no_repack = false;
};

int logits(const LogitsOptions& opt) {
    set_threads(opt.threads > 0 ? opt.threads : default_threads());
    const std::string prompt = read_prompt(opt.prompt, opt.prompt_file);
    check_not_same_file(opt.model, opt.output);
    auto model = Model::load(opt.model, Model::Mode::Full, !opt.no_repack);
    const std::vector<TokenId> tokens = model->tokenizer().encode(prompt, model->vocab().add_bos);
    if (tokens.empty()) fail("the prompt is empty");
    Context ctx(*model, int64_t(tokens.size()));
    ctx.set_check_numerics(opt.check_numerics);
    const std::span<const float> all = ctx.eval(tokens, true);

    OutputFile out(opt.output);
    const int32_t header[2] = {int32_t(tokens.size()), int32_t(model->hparams().n_vocab)};
    out.write(header, sizeof(header));
    out.write(tokens.data(), tokens.size() * sizeof(TokenId));
    out.write(all.data(), all.size_bytes());
    out.commit();
    fmt::print(stderr, "qllm: wrote {} x {} logits to {}\n", tokens.size(), header[1], opt.output);
    return 0;
}

}  // namespace

void add_logits(CLI::App& app, Action& action) {
    auto opt = std::make_shared<LogitsOptions>();
    CLI::App* cmd = app.add_subcommand("logits", "Write the logits of every prompt position to a file");
    cmd->add_option("-m,--model", opt->model, "GGUF model file")->required();
    auto* p = cmd->add_option("-p,--prompt", opt->prompt, "prompt text");
    cmd->add_option("-f,--file", opt->prompt_file, "read the prompt from a file")->excludes(p);
    cmd->add_option("-o,--output", opt->output, "output file")->required();
    cmd->add_option("-t,--threads", opt->threads, "threads (default: physical cores)");
    add_no_repack_flag(cmd, opt->no_repack);
    cmd->add_flag("--check-numerics", opt->check_numerics,
                  "fail at the first NaN or Inf in a layer's output, naming the layer and token");
    cmd->callback([&action, opt] { action = [opt] { return logits(*opt); }; });
}

}  // namespace qllm::cli
