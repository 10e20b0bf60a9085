// qllm info: what a model file holds, read from its header only (no tensor data is touched).
#include <map>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "kernels/cpu.h"
#include "qllm/error.h"
#include "model/model.h"

namespace qllm::cli {
namespace {

struct InfoOptions {
    std::string model;
    bool system = false;
    bool json = false;
    bool tensors = true;
};

std::string human_count(double n) {
    if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
    if (n >= 1e6) return fmt::format("{:.2f} M", n / 1e6);
    if (n >= 1e3) return fmt::format("{:.2f} K", n / 1e3);
    return fmt::format("{:.0f}", n);
}

int system_info() {
    std::string isas;
    for (Isa isa : supported_isas()) isas += (isas.empty() ? "" : ", ") + std::string(isa_name(isa));
    fmt::print("kernels:       {} (supported: {})\n", isa_name(active_isa()), isas);
    fmt::print("cpu features:  {}\n", cpu_features());
    fmt::print("threads:       {} by default\n", default_threads());
    return 0;
}

int info(const InfoOptions& opt) {
    if (opt.system) return system_info();
    if (opt.model.empty()) fail("info needs a MODEL (or --system)");
    auto model = Model::load(opt.model, Model::Mode::Inspect);
    const gguf::File& f = model->file();
    const Hparams& hp = model->hparams();
    const Vocab& vocab = model->vocab();

    uint64_t params = 0, bytes = 0;
    std::map<std::string, int> type_counts;
    for (const auto& t : f.tensors()) {
        params += uint64_t(t.n_elements());
        bytes += t.size;
        type_counts[std::string(type_name(t.type))]++;
    }
    const double bpw = params ? 8.0 * double(bytes) / double(params) : 0.0;
    const bool tied = !f.find_tensor("output.weight");

    if (opt.json) {
        nlohmann::ordered_json j;
        j["file"] = opt.model;
        j["gguf_version"] = f.version();
        j["architecture"] = hp.arch;
        j["name"] = f.get_string_or("general.name", "");
        j["file_type"] = file_type_name(hp.file_type);
        j["parameters"] = params;
        j["size_bytes"] = bytes;
        j["bits_per_weight"] = bpw;
        j["hparams"] = {{"n_vocab", hp.n_vocab},     {"n_ctx_train", hp.n_ctx_train}, {"n_embd", hp.n_embd},
                        {"n_layer", hp.n_layer},     {"n_ff", hp.n_ff},               {"n_head", hp.n_head},
                        {"n_head_kv", hp.n_head_kv}, {"head_dim", hp.head_dim},       {"n_rot", hp.n_rot},
                        {"rope_freq_base", hp.rope_base}, {"rope_freq_scale", hp.rope_freq_scale},
                        {"rms_norm_eps", hp.rms_eps},     {"tied_embeddings", tied},
                        {"sliding_window", hp.sliding_window}, {"swa_pattern", hp.swa_pattern},
                        {"attn_logit_softcapping", hp.attn_softcap}, {"final_logit_softcapping", hp.final_softcap},
                        {"rope_freq_factors", bool(model->weights().rope_freqs)}, {"embedding_scale", hp.embed_scale}};
        j["tokenizer"] = {{"model", vocab.model}, {"pre", vocab.pre}, {"tokens", vocab.size()},
                          {"bos", vocab.bos},     {"eos", vocab.eos}, {"add_bos", vocab.add_bos}};
        nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
        for (const auto& t : f.tensors()) {
            std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
            tensors.push_back({{"name", t.name}, {"type", type_name(t.type)}, {"shape", shape}, {"bytes", t.size}});
        }
        j["tensors"] = tensors;
        fmt::print("{}\n", j.dump(2));
        return 0;
    }

    fmt::print("file:          {} (GGUF v{}, {:.2f} MiB)\n", opt.model, f.version(), double(f.file_size()) / 1048576.0);
    fmt::print("architecture:  {}{}\n", hp.arch,
               f.has("general.name") ? fmt::format(" ({})", f.get_string("general.name")) : "");
    fmt::print("file type:     {}\n", file_type_name(hp.file_type));
    fmt::print("parameters:    {} ({})\n", human_count(double(params)), params);
    fmt::print("size:          {:.2f} MiB, {:.2f} bits per weight\n", double(bytes) / 1048576.0, bpw);
    fmt::print("context:       {} (training)\n", hp.n_ctx_train);
    fmt::print("embedding:     {}, feed-forward {}, layers {}\n", hp.n_embd, hp.n_ff, hp.n_layer);
    fmt::print("attention:     {} heads, {} KV heads, head size {}, rms eps {:g}\n", hp.n_head, hp.n_head_kv,
               hp.head_dim, hp.rms_eps);
    fmt::print("rope:          {} dims, base {:g}, scale {:g}, {}\n", hp.n_rot, hp.rope_base, hp.rope_freq_scale,
               hp.rope_style == RopeStyle::Norm ? "adjacent pairs" : "half split");
    if (hp.sliding_window > 0) {
        fmt::print("sliding:       window of {} tokens on {} of every {} layers (rope base {:g} there)\n", hp.sliding_window,
                   hp.swa_pattern - 1, hp.swa_pattern, hp.rope_base_swa);
    }
    if (hp.attn_softcap > 0 || hp.final_softcap > 0) {
        fmt::print("soft-capping:  attention {:g}, final logits {:g}\n", hp.attn_softcap, hp.final_softcap);
    }
    if (model->weights().rope_freqs) fmt::print("rope scaling:  per-pair frequency factors (rope_freqs.weight)\n");
    if (hp.embed_scale != 1.0f) fmt::print("embeddings:    scaled by {:g}\n", hp.embed_scale);
    fmt::print("output:        {}\n", tied ? "tied to token embeddings" : "separate output.weight");
    fmt::print("tokenizer:     {}{}, {} tokens, BOS {} ({}), EOS {}\n", vocab.model,
               vocab.pre.empty() ? "" : " / " + vocab.pre, vocab.size(), vocab.bos,
               vocab.add_bos ? "added" : "not added", vocab.eos);
    std::string types;
    for (const auto& [name, n] : type_counts) types += fmt::format("{}{}: {}", types.empty() ? "" : ", ", name, n);
    fmt::print("tensor types:  {}\n", types);
    if (opt.tensors) {
        fmt::print("\n{:>4}  {:<32} {:<8} {:<22} {:>12}\n", "#", "tensor", "type", "shape", "bytes");
        int i = 0;
        for (const auto& t : f.tensors()) {
            fmt::print("{:>4}  {:<32} {:<8} {:<22} {:>12}\n", i++, t.name, type_name(t.type), t.shape_string(), t.size);
        }
    }
    return 0;
}

}  // namespace

void add_info(CLI::App& app, Action& action) {
    auto opt = std::make_shared<InfoOptions>();
    CLI::App* cmd = app.add_subcommand("info", "Describe a model file without loading its weights");
    cmd->add_option("model", opt->model, "GGUF model file");
    cmd->add_flag("--system", opt->system, "describe this machine's CPU features and the kernels in use");
    cmd->add_flag("--json", opt->json, "print JSON");
    cmd->add_flag("!--no-tensors", opt->tensors, "leave out the tensor table");
    cmd->callback([&action, opt] { action = [opt] { return info(*opt); }; });
}

}  // namespace qllm::cli
