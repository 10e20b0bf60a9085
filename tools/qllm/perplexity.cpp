// qllm perplexity: llama-perplexity's measure of a model on a text (see perplexity.h), for
// comparing quantizations. stdout: the running PPL after each chunk, then the final estimate.
#include "perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include <fmt/core.h>

#include "commands.h"
#include "model/context.h"
#include "qllm/error.h"

namespace qllm::cli {

TextChunks::TextChunks(const Model& model, const std::string& text, const std::string& source, int64_t n_ctx,
                       int64_t max_chunks)
    : n_ctx_(n_ctx) {
    const Vocab& vocab = model.vocab();
    tokens_ = model.tokenizer().encode(text, vocab.add_bos);
    if (vocab.add_bos) bos_ = vocab.bos;
    const int64_t whole = int64_t(tokens_.size()) / n_ctx;
    if (whole == 0) {
        fail("{}: {} tokens, fewer than one chunk of {} (use a longer text or a smaller -c)", source, tokens_.size(),
             n_ctx);
    }
    n_chunks_ = max_chunks < 0 ? whole : std::min(whole, max_chunks);
}

std::vector<TokenId> TextChunks::chunk(int64_t i) const {
    const auto begin = tokens_.begin() + i * n_ctx_;
    std::vector<TokenId> out(begin, begin + n_ctx_);
    if (bos_ >= 0) out[0] = bos_;
    return out;
}

void NllSum::add_chunk(std::span<const float> logits, std::span<const TokenId> chunk, int64_t n_vocab) {
    const int64_t n = int64_t(chunk.size());
    double nll = 0.0, nll2 = 0.0;
    // Position j predicts token j + 1; the first half only gives the scored half its context.
#pragma omp parallel for reduction(+ : nll, nll2) schedule(static)
    for (int64_t j = n / 2; j < n - 1; ++j) {
        const float* row = logits.data() + j * n_vocab;
        const float max = *std::max_element(row, row + n_vocab);
        double sum = 0.0;
        for (int64_t v = 0; v < n_vocab; ++v) sum += std::exp(double(row[v]) - double(max));
        const double loss = std::log(sum) + double(max) - double(row[chunk[size_t(j + 1)]]);
        nll += loss;
        nll2 += loss * loss;
    }
    nll_ += nll;
    nll2_ += nll2;
    count_ += n - 1 - n / 2;
}

double NllSum::ppl() const { return count_ > 0 ? std::exp(nll_ / double(count_)) : NAN; }

double NllSum::ppl_error() const {
    if (count_ < 2) return NAN;
    const double mean = nll_ / double(count_);
    const double var = nll2_ / double(count_) - mean * mean;
    return var > 0.0 ? std::sqrt(var / double(count_ - 1)) * ppl() : NAN;
}

namespace {

struct PerplexityOptions {
    std::string model, file;
    int64_t n_ctx = 512;
    int64_t chunks = -1;
    int threads = 0;
    bool no_repack = false;
};

int perplexity(const PerplexityOptions& opt) {
    set_threads(opt.threads > 0 ? opt.threads : default_threads());
    const std::string text = read_prompt("", opt.file);
    auto model = Model::load(opt.model, Model::Mode::Full, !opt.no_repack);
    const TextChunks chunks(*model, text, opt.file, opt.n_ctx, opt.chunks);
    const int64_t n_vocab = model->hparams().n_vocab;
    if (opt.n_ctx > model->hparams().n_ctx_train && model->hparams().n_ctx_train > 0) {
        fmt::print(stderr, "qllm: warning: the model was trained on only {} context tokens ({} asked)\n",
                   model->hparams().n_ctx_train, opt.n_ctx);
    }
    fmt::print(stderr, "qllm: perplexity over {} chunks of {} tokens ({} tokens in {}), scoring {} per chunk\n",
               chunks.size(), opt.n_ctx, chunks.n_text_tokens(), opt.file, opt.n_ctx - 1 - opt.n_ctx / 2);

    Context ctx(*model, opt.n_ctx);
    NllSum sum;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < chunks.size(); ++i) {
        const std::vector<TokenId> tokens = chunks.chunk(i);
        ctx.reset();
        sum.add_chunk(ctx.eval(tokens, true), tokens, n_vocab);
        if (i == 0) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            fmt::print(stderr, "qllm: {:.2f} seconds per pass - ETA {:.2f} minutes\n", s, s * double(chunks.size()) / 60.0);
        }
        fmt::print("[{}]{:.4f},", i + 1, sum.ppl());
        std::fflush(stdout);
    }
    fmt::print("\nFinal estimate: PPL = {:.4f} +/- {:.5f}\n", sum.ppl(), sum.ppl_error());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print(stderr, "qllm: {} tokens scored in {:.2f} s ({:.1f} tokens/s evaluated)\n", sum.count(), s,
               double(chunks.size() * opt.n_ctx) / s);
    return 0;
}

}  // namespace

void add_perplexity(CLI::App& app, Action& action) {
    auto opt = std::make_shared<PerplexityOptions>();
    CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a model on a text, as llama-perplexity measures it");
    cmd->add_option("-m,--model", opt->model, "GGUF model file")->required();
    cmd->add_option("-f,--file", opt->file, "text to score")->required();
    cmd->add_option("-c,--ctx-size", opt->n_ctx, "tokens per chunk (default 512)")
        ->check(CLI::Range(int64_t(4), int64_t(1) << 20));
    cmd->add_option("--chunks", opt->chunks, "score at most this many chunks (default: all)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("-t,--threads", opt->threads, "threads (default: physical cores)");
    add_no_repack_flag(cmd, opt->no_repack);
    cmd->callback([&action, opt] { action = [opt] { return perplexity(*opt); }; });
}

}  // namespace qllm::cli
