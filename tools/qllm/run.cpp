// qllm run: evaluate a prompt as one batch, then generate token by token, streaming text.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include <fmt/core.h>

#include "commands.h"
#include "kernels/cpu.h"
#include "model/context.h"
#include "qllm/error.h"
#include "sample/sampler.h"

namespace qllm::cli {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct RunOptions {
    std::string model;
    std::string prompt;
    std::string prompt_file;
    int n_predict = -1;
    int n_ctx = 0;
    int threads = 0;
    bool echo = false;
    bool ignore_eos = false;
    bool chat = false;
    bool check_numerics = false;
    std::string system, chat_template;
    SamplerParams sampling;
    bool no_repack = false;
};

// With no -m: a small random-weight model written once by `synth`, so the quick start works offline.
std::string demo_model_path() {
    const std::filesystem::path dir = std::filesystem::is_directory("models") ? "models"
                                                                              : std::filesystem::temp_directory_path();
    return (dir / "tiny-demo.gguf").string();
}

int run(const RunOptions& opt) {
    std::string model_path = opt.model;
    if (model_path.empty()) {
        model_path = demo_model_path();
        fmt::print(stderr, "qllm: no -m given: using the demo model {} (random weights, so its text is gibberish)\n",
                   model_path);
        if (!std::filesystem::exists(model_path)) write_demo_model(model_path);
    }
    const int threads = opt.threads > 0 ? opt.threads : default_threads();
    set_threads(threads);
    const std::string prompt = read_prompt(opt.prompt, opt.prompt_file);

    // The weights are repacked (model/repack.h) only once the first token is out: repacking costs
    // the page faults of fresh memory, up to a second on a newly started VM, and would delay the
    // first token by that much. The prompt runs on the file's layout, whose prompt products are
    // as fast; only the token-by-token products gain from the interleaved layouts.
    const auto t_load = Clock::now();
    auto model = Model::load(model_path, Model::Mode::Full, /*repack=*/false);
    const Hparams& hp = model->hparams();
    const int64_t n_ctx = opt.n_ctx > 0 ? opt.n_ctx : std::min<int64_t>(4096, hp.n_ctx_train);
    Context ctx(*model, n_ctx);
    ctx.set_check_numerics(opt.check_numerics);
    const double load_ms = ms_since(t_load);

    const Tokenizer& tok = model->tokenizer();
    const std::vector<TokenId> tokens =
        opt.chat ? tok.encode(render_one_shot_chat(*model, opt.system, prompt, opt.chat_template), model->vocab().add_bos,
                              /*parse_special=*/true)
                 : tok.encode(prompt, model->vocab().add_bos);
    if (tokens.empty()) fail("the prompt is empty");
    // Like llama.cpp: a prompt that does not fit is an error, not silently cut. Generation, by
    // contrast, may run into the end of the context: it stops there with a notice.
    if (int64_t(tokens.size()) > n_ctx) {
        fail("prompt is too long: {} tokens, but the context size is {} (use -c to enlarge it)", tokens.size(), n_ctx);
    }
    const int64_t n_predict = opt.n_predict < 0 ? std::numeric_limits<int64_t>::max() : opt.n_predict;

    Sampler sampler(opt.sampling, int32_t(n_ctx));
    for (TokenId t : tokens) sampler.accept(t);
    install_interrupt_handler();

    Utf8Streamer out;
    auto emit = [&](const std::string& bytes) {
        const std::string text = out.push(bytes);
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    };
    if (opt.echo) {
        for (TokenId t : tokens) emit(tok.piece(t));
    }

    const auto t_prompt = Clock::now();
    std::span<const float> logits = ctx.eval(tokens, false);
    const double prompt_ms = ms_since(t_prompt);

    const auto t_gen = Clock::now();
    int64_t generated = 0;
    int repacked = 0;
    double repack_ms = 0;
    bool context_full = false;
    while (generated < n_predict && !interrupted()) {
        // The sampler refuses NaN as well, but only here is the position known.
        if (!std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); })) {
            fail("{}: the model produced non-finite logits at token {} (--check-numerics names the first layer at fault)",
                 model_path, ctx.n_past() - 1);
        }
        const TokenId next = sampler.sample(logits);
        sampler.accept(next);
        ++generated;
        if (tok.is_eog(next) && !opt.ignore_eos) break;
        emit(tok.piece(next));
        if (generated == n_predict) break;
        if (ctx.n_past() == n_ctx) {  // `next` was printed but there is no room to evaluate it
            context_full = true;
            break;
        }
        if (generated == 1 && !opt.no_repack) {
            const auto t_repack = Clock::now();
            repacked = model->repack();
            repack_ms = ms_since(t_repack);
        }
        logits = ctx.eval(std::span(&next, 1), false);
    }
    const double gen_ms = ms_since(t_gen) - repack_ms;
    const std::string rest = out.finish();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fflush(stdout);

    fmt::print(stderr, "\n");
    if (interrupted()) {
        fmt::print(stderr, "qllm: interrupted\n");
    } else if (context_full) {
        fmt::print(stderr, "qllm: context full ({} tokens): generation stopped; use -c to enlarge it\n", n_ctx);
    }
    fmt::print(stderr, "load:       {:10.2f} ms\n", load_ms);
    fmt::print(stderr, "prompt:     {:10.2f} ms / {:5} tokens ({:8.2f} tokens/s)\n", prompt_ms, tokens.size(),
               1000.0 * double(tokens.size()) / prompt_ms);
    fmt::print(stderr, "generation: {:10.2f} ms / {:5} tokens ({:8.2f} tokens/s)\n", gen_ms, generated,
               generated > 0 ? 1000.0 * double(generated) / gen_ms : 0.0);
    if (repacked > 0) {
        fmt::print(stderr, "repack:     {:10.2f} ms / {:5} weights (after the first token)\n", repack_ms, repacked);
    }
    fmt::print(stderr, "system:     {} kernels, {} threads\n", isa_name(active_isa()), threads);
    fmt::print(stderr, "peak RSS:   {:10.1f} MiB (KV cache {:.1f} MiB)\n", peak_rss_mib(),
               double(ctx.kv_cache_bytes()) / (1024.0 * 1024.0));
    return interrupted() ? 130 : 0;
}

}  // namespace

void add_run(CLI::App& app, Action& action) {
    auto opt = std::make_shared<RunOptions>();
    CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt");
    cmd->add_option("-m,--model", opt->model, "GGUF model file (default: a small random demo model)");
    auto* p = cmd->add_option("-p,--prompt", opt->prompt, "prompt text");
    cmd->add_option("-f,--file", opt->prompt_file, "read the prompt from a file")->excludes(p);
    cmd->add_option("-n,--n-predict", opt->n_predict, "tokens to generate (-1: until EOS or the context is full)");
    cmd->add_option("-c,--ctx-size", opt->n_ctx, "context size (default: min(4096, training context))");
    cmd->add_option("-t,--threads", opt->threads, "threads (default: physical cores)");
    add_no_repack_flag(cmd, opt->no_repack);
    cmd->add_option("--temp", opt->sampling.temperature, "temperature; 0 = greedy")->capture_default_str();
    cmd->add_option("--top-k", opt->sampling.top_k, "top-k; 0 = off")->capture_default_str();
    cmd->add_option("--top-p", opt->sampling.top_p, "top-p; 1 = off")->capture_default_str();
    cmd->add_option("--min-p", opt->sampling.min_p, "min-p; 0 = off")->capture_default_str();
    cmd->add_option("--repeat-penalty", opt->sampling.repeat_penalty, "repetition penalty; 1 = off")
        ->capture_default_str();
    cmd->add_option("--repeat-last-n", opt->sampling.repeat_last_n, "tokens the penalties look back (-1 = context)")
        ->capture_default_str();
    cmd->add_option("--frequency-penalty", opt->sampling.frequency_penalty, "frequency penalty; 0 = off");
    cmd->add_option("--presence-penalty", opt->sampling.presence_penalty, "presence penalty; 0 = off");
    cmd->add_option("-s,--seed", opt->sampling.seed, "random seed (default: random)");
    cmd->add_flag("--echo", opt->echo, "print the prompt before the continuation");
    cmd->add_flag("--ignore-eos", opt->ignore_eos, "keep generating past the end-of-sequence token");
    cmd->add_flag("--check-numerics", opt->check_numerics,
                  "fail at the first NaN or Inf in a layer's output, naming the layer and token");
    cmd->add_flag("--chat", opt->chat, "apply the chat template to the prompt as one user message");
    cmd->add_option("--system-prompt", opt->system, "system prompt (with --chat; -sys works too)");
    cmd->add_option("--chat-template", opt->chat_template, "built-in template name or a Jinja file (with --chat)");
    cmd->callback([&action, opt] { action = [opt] { return run(*opt); }; });
}

}  // namespace qllm::cli
