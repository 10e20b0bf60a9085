// qllm synth: write a synthetic model of a well-known shape (random weights, real file format).
#include <chrono>

#include <fmt/core.h>

#include "commands.h"
#include "model/synth.h"
#include "qllm/error.h"

namespace qllm::cli {
namespace {

struct SynthCliOptions {
    std::string shape, output, type = "F16";
    uint64_t seed = 42;
    int64_t layers = 0;
    bool list = false;
    bool chat = false;
};

int synth(const SynthCliOptions& opt) {
    if (opt.list) {
        fmt::print("{:<16} {:>7} {:>7} {:>6} {:>6} {:>5} {:>7} {:>14} {:>10}\n", "shape", "n_embd", "n_ff", "layers",
                   "heads", "kv", "vocab", "parameters", "F16 size");
        for (const auto& s : synth_shapes()) {
            fmt::print("{:<16} {:>7} {:>7} {:>6} {:>6} {:>5} {:>7} {:>14} {:>7.2f} GB\n", s.name, s.n_embd, s.n_ff,
                       s.n_layer, s.n_head, s.n_head_kv, s.n_vocab, s.parameter_count(),
                       2.0 * double(s.parameter_count()) / 1e9);
        }
        return 0;
    }
    if (opt.shape.empty() || opt.output.empty()) fail("synth needs --shape NAME and -o FILE (see --list)");
    const auto shape = find_synth_shape(opt.shape);
    if (!shape) fail("unknown shape '{}' (see qllm synth --list)", opt.shape);
    SynthOptions so;
    const auto type = type_from_name(opt.type);
    if (!type || (*type != TensorType::F16 && *type != TensorType::F32 && *type != TensorType::BF16)) {
        fail("--type must be F16, F32 or BF16 (got '{}')", opt.type);
    }
    so.type = *type;
    so.seed = opt.seed;
    so.layers = opt.layers;
    so.chat = opt.chat;
    const auto t0 = std::chrono::steady_clock::now();
    write_synth_model(*shape, so, opt.output);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print(stderr, "qllm: wrote {} ({}, {} parameters, random weights) in {:.1f} s\n", opt.output, shape->name,
               shape->parameter_count(), s);
    return 0;
}

}  // namespace

void write_demo_model(const std::string& path) {
    fmt::print(stderr, "qllm: writing the demo model {} (qllm synth --shape tiny)\n", path);
    write_synth_model(*find_synth_shape("tiny"), SynthOptions{}, path);
}

void add_synth(CLI::App& app, Action& action) {
    auto opt = std::make_shared<SynthCliOptions>();
    CLI::App* cmd = app.add_subcommand("synth", "Write a synthetic model of a well-known shape");
    cmd->add_option("--shape", opt->shape, "shape name (see --list)");
    cmd->add_option("-o,--output", opt->output, "output GGUF file");
    cmd->add_option("--type", opt->type, "weight type: F16, F32 or BF16")->capture_default_str();
    cmd->add_option("--seed", opt->seed, "random seed")->capture_default_str();
    cmd->add_option("--layers", opt->layers, "number of layers (default: the shape's)");
    cmd->add_flag("--list", opt->list, "list the shapes");
    cmd->add_flag("--chat", opt->chat, "add ChatML tokens and chat template (for chat tests)");
    cmd->callback([&action, opt] { action = [opt] { return synth(*opt); }; });
}

}  // namespace qllm::cli
