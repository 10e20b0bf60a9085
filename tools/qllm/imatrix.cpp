// qllm imatrix: an importance matrix for `qllm quantize --imatrix`, as llama-imatrix computes it:
// the calibration text is evaluated in chunks (perplexity.h) and, for every weight matmul in the
// layers, the squares of its input activations are summed per input column.
#include <chrono>
#include <cstdio>

#include <fmt/core.h>

#include "commands.h"
#include "model/context.h"
#include "perplexity.h"
#include "qllm/error.h"
#include "quant/imatrix.h"
#include "util/output_file.h"

namespace qllm::cli {
namespace {

struct ImatrixOptions {
    std::string model, file, output = "imatrix.gguf";
    int64_t n_ctx = 512;
    int64_t chunks = -1;
    int threads = 0;
    bool process_output = false;
    bool no_ppl = false;
};

// llama-imatrix's choice: the layers' weights; output.weight only when asked (it is rarely
// quantized below q6_K); never the token embedding, a lookup table (nor a tied output, which
// is the embedding under its own name).
bool collects(std::string_view weight, bool process_output) {
    return weight.starts_with("blk.") || (process_output && weight == "output.weight");
}

int imatrix(const ImatrixOptions& opt) {
    set_threads(opt.threads > 0 ? opt.threads : default_threads());
    const std::string text = read_prompt("", opt.file);
    check_not_same_file(opt.model, opt.output);
    check_not_same_file(opt.file, opt.output);
    auto model = Model::load(opt.model);
    const TextChunks chunks(*model, text, opt.file, opt.n_ctx, opt.chunks);
    const int64_t n_vocab = model->hparams().n_vocab;
    fmt::print(stderr, "qllm: imatrix over {} chunks of {} tokens ({} tokens in {})\n", chunks.size(), opt.n_ctx,
               chunks.n_text_tokens(), opt.file);

    quant::ImatrixStats stats;
    stats.datasets = {opt.file};
    stats.chunk_size = opt.n_ctx;
    Context ctx(*model, opt.n_ctx);
    ctx.set_matmul_observer([&](const TensorView& w, const float* x, int64_t n_tokens) {
        if (w.name && collects(w.name, opt.process_output)) stats.add(w.name, x, n_tokens, w.ne[0]);
    });
    // Logits of every position are needed for the perplexity and for output.weight's inputs.
    const bool all_logits = !opt.no_ppl || opt.process_output;
    NllSum sum;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < chunks.size(); ++i) {
        const std::vector<TokenId> tokens = chunks.chunk(i);
        ctx.reset();
        const std::span<const float> logits = ctx.eval(tokens, all_logits);
        stats.chunk_count = i + 1;
        if (i == 0) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            fmt::print(stderr, "qllm: {:.2f} seconds per pass - ETA {:.2f} minutes\n", s, s * double(chunks.size()) / 60.0);
        }
        if (opt.no_ppl) {
            fmt::print(stderr, "[{}/{}]", i + 1, chunks.size());
        } else {
            sum.add_chunk(logits, tokens, n_vocab);
            fmt::print(stderr, "[{}]{:.4f},", i + 1, sum.ppl());
        }
    }
    fmt::print(stderr, "\n");
    if (!opt.no_ppl) fmt::print(stderr, "Final estimate: PPL = {:.4f} +/- {:.5f}\n", sum.ppl(), sum.ppl_error());

    stats.save(opt.output);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print(stderr, "qllm: wrote {} entries from {} chunks of {} tokens to {} in {:.2f} s\n", stats.entries.size(),
               stats.chunk_count, opt.n_ctx, opt.output, s);
    return 0;
}

}  // namespace

void add_imatrix(CLI::App& app, Action& action) {
    auto opt = std::make_shared<ImatrixOptions>();
    CLI::App* cmd = app.add_subcommand("imatrix", "Compute an importance matrix for quantize --imatrix, as llama-imatrix does");
    cmd->add_option("-m,--model", opt->model, "GGUF model file (F32/F16 for the best statistics)")->required();
    cmd->add_option("-f,--file", opt->file, "calibration text")->required();
    cmd->add_option("-o,--output", opt->output, "output file: GGUF, or llama.cpp's legacy format if it ends in .dat "
                                                "(default imatrix.gguf)");
    cmd->add_option("-c,--ctx-size", opt->n_ctx, "tokens per chunk (default 512)")
        ->check(CLI::Range(int64_t(4), int64_t(1) << 20));
    cmd->add_option("--chunks", opt->chunks, "use at most this many chunks (default: all)")->check(CLI::PositiveNumber);
    cmd->add_option("-t,--threads", opt->threads, "threads (default: physical cores)");
    cmd->add_flag("--process-output", opt->process_output, "also collect output.weight");
    cmd->add_flag("--no-ppl", opt->no_ppl, "do not compute the perplexity of the text");
    cmd->callback([&action, opt] { action = [opt] { return imatrix(*opt); }; });
}

}  // namespace qllm::cli
