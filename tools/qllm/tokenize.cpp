// qllm tokenize: print the token ids of a text on one line (like llama-tokenize --ids).
#include <fmt/core.h>

#include "commands.h"
#include "model/model.h"

namespace qllm::cli {
namespace {

struct TokenizeOptions {
    std::string model, prompt, prompt_file;
    bool no_bos = false, special = false, pieces = false;
};

int tokenize(const TokenizeOptions& opt) {
    const std::string text = read_prompt(opt.prompt, opt.prompt_file);
    auto model = Model::load(opt.model, Model::Mode::VocabOnly);
    const Tokenizer& tok = model->tokenizer();
    const std::vector<TokenId> ids = tok.encode(text, model->vocab().add_bos && !opt.no_bos, opt.special);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
        if (i) line += ' ';
        line += std::to_string(ids[i]);
        if (opt.pieces) line += fmt::format(":'{}'", tok.piece(ids[i], true));
    }
    fmt::print("{}\n", line);
    return 0;
}

}  // namespace

void add_tokenize(CLI::App& app, Action& action) {
    auto opt = std::make_shared<TokenizeOptions>();
    CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
    cmd->add_option("-m,--model", opt->model, "GGUF model or vocabulary-only file")->required();
    auto* p = cmd->add_option("-p,--prompt", opt->prompt, "text to tokenize");
    cmd->add_option("-f,--file", opt->prompt_file, "read the text from a file")->excludes(p);
    cmd->add_flag("--no-bos", opt->no_bos, "do not add the BOS token");
    cmd->add_flag("--special", opt->special, "parse special tokens such as <s> in the text");
    cmd->add_flag("--pieces", opt->pieces, "show each token's text after its id");
    cmd->callback([&action, opt] { action = [opt] { return tokenize(*opt); }; });
}

}  // namespace qllm::cli
