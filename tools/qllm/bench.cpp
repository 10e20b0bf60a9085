// qllm bench: llama-bench's two tests, ppP (one forward pass over P prompt tokens) and tgN
// (N single-token steps), as mean ± sd tokens/s over -r repetitions, from an empty cache or
// (-d D, "@ dD") after D tokens already in it. Token generation is also reported as weight
// bandwidth and a fraction of the machine's, probed before each repetition.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "kernels/cpu.h"
#include "model/context.h"
#include "qllm/error.h"
#include "quant/quantize.h"
#include "util/bandwidth.h"

namespace qllm::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
    std::string models;
    std::string sweep;  // F16/F32 source to quantize to each of `types`
    std::string types = "Q2_K,Q3_K_M,Q4_0,Q4_K_M,Q5_K_M,Q6_K,Q8_0";
    std::string quality_text;  // -f: KL divergence of each level from the source on this text
    std::string prompt_sizes = "512";
    std::string gen_sizes = "128";
    std::string depths = "0";
    std::string threads;
    int repetitions = 5;
    std::string output = "md";
    bool no_repack = false;
};

// One result row. The machine-readable formats use llama-bench's field names where it has one.
struct Row {
    std::string filename, name, model_type, type, test;  // model_type as llama-bench: "llama 7B Q4_0"
    uint64_t size = 0, params = 0;  // bytes and parameters of the weights
    double bpw = 0;
    int threads = 0, n_prompt = 0, n_gen = 0, n_depth = 0;
    std::vector<double> samples_ns;  // one per repetition
    double gbps = 0, bw_frac = 0;  // tg only: weight GB/s, and its mean fraction of the probes
    std::vector<double> probes;    // tg only: GB/s read by the probe before each repetition
    double kl = -1;                // --sweep -f: mean KL(source || this level); < 0: not measured

    std::vector<double> samples_ts() const {
        std::vector<double> ts;
        for (double ns : samples_ns) ts.push_back(1e9 * double(n_prompt + n_gen) / ns);
        return ts;
    }
};

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) {
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

std::vector<int> split_ints(const std::string& s, const char* flag) {
    std::vector<int> out;
    for (const auto& item : split(s)) {
        try {
            size_t used = 0;
            const int v = std::stoi(item, &used);
            if (used != item.size() || v < 0) throw std::invalid_argument(item);
            out.push_back(v);
        } catch (const std::exception&) {
            fail("{}: '{}' is not a non-negative integer", flag, item);
        }
    }
    return out;
}

// A temporary directory for the quantized levels, removed with everything in it on every exit
// path (Ctrl-C included: the interrupt only sets a flag, and the error unwinds through here).
struct SweepDir {
    std::filesystem::path path;
    SweepDir() {
        // $TMPDIR as POSIX tools read it, else /tmp: the levels can be as large as the source.
        const char* env = std::getenv("TMPDIR");
        const std::string base = env && *env ? env : "/tmp";
        std::string tmpl = base + "/qllm-sweep-XXXXXX";
        if (!mkdtemp(tmpl.data())) {
            fail("cannot create a temporary directory in {}: {} (set TMPDIR to a writable directory)", base,
                 std::strerror(errno));
        }
        path = tmpl;
    }
    ~SweepDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

// Quantizes `source` to each level; returns the source followed by the quantized files.
std::vector<std::string> quantize_levels(const std::string& source, const std::vector<std::string>& types,
                                         const SweepDir& dir) {
    std::vector<std::string> out = {source};
    for (const auto& name : types) {
        const quant::FileTypeInfo* ft = quant::parse_file_type(name);
        if (!ft) fail("--types: unknown type '{}' (one of {})", name, quant::file_type_names());
        quant::QuantizeOptions q;
        q.input = source;
        q.output = (dir.path / (std::string(ft->name) + ".gguf")).string();
        q.ftype = ft->id;
        q.log = nullptr;
        q.cancelled = [] { return interrupted(); };
        fmt::print(stderr, "qllm: quantizing {} to {}...\n", source, ft->name);
        quant::quantize_model(q);
        out.push_back(q.output);
    }
    return out;
}

std::pair<double, double> mean_sd(const std::vector<double>& v) {
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
    double var = 0;
    for (double x : v) var += (x - mean) * (x - mean);
    return {mean, v.size() > 1 ? std::sqrt(var / double(v.size() - 1)) : 0.0};
}

// Nanoseconds of each repetition (after one warm-up run) of either test, each after n_depth
// tokens are put in the cache (not timed). With a `probe`, the machine's read bandwidth (GB/s) is
// also measured just before each repetition, into `readings`, so that a generation test can be
// judged against what the shared host gave at that moment.
std::vector<double> time_test(const Model& model, int n_prompt, int n_gen, int n_depth, int reps,
                              const ReadBandwidthProbe* probe = nullptr, std::vector<double>* readings = nullptr) {
    const int64_t n_vocab = model.hparams().n_vocab;
    std::vector<TokenId> tokens(size_t(n_depth) + size_t(std::max(n_prompt, 1)));
    uint64_t state = 12345;
    for (auto& t : tokens) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        t = TokenId((state >> 33) % uint64_t(n_vocab));
    }
    Context ctx(model, int64_t(n_depth) + std::max(n_prompt, n_gen) + 1);
    const auto depth = std::span(tokens).first(size_t(n_depth)), rest = std::span(tokens).subspan(size_t(n_depth));
    std::vector<double> samples;
    for (int rep = -1; rep < reps; ++rep) {
        ctx.reset();
        if (n_depth > 0) ctx.eval(depth, false);
        if (probe && rep >= 0) readings->push_back(probe->measure() / 1e9);
        const auto t0 = Clock::now();
        if (n_prompt > 0) {
            ctx.eval(rest.first(size_t(n_prompt)), false);
        } else {
            for (int i = 0; i < n_gen; ++i) ctx.eval(rest.subspan(size_t(i) % rest.size(), 1), false);
        }
        const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
        if (rep >= 0) samples.push_back(ns);
        if (interrupted()) fail("interrupted");
    }
    return samples;
}

// Every field of a row; optional ones are left out when not measured.
nlohmann::ordered_json row_json(const Row& r, const std::string& isa) {
    const auto [avg_ns, stddev_ns] = mean_sd(r.samples_ns);
    const auto samples_ts = r.samples_ts();
    const auto [avg_ts, stddev_ts] = mean_sd(samples_ts);
    const std::vector<uint64_t> samples_ns(r.samples_ns.begin(), r.samples_ns.end());  // whole ns, as llama-bench
    nlohmann::ordered_json j = {
        {"model_filename", r.filename}, {"model_name", r.name},     {"model_type", r.model_type},
        {"model_size", r.size},         {"model_n_params", r.params}, {"type", r.type},
        {"bpw", r.bpw},                 {"n_threads", r.threads},  {"isa", isa},
        {"n_prompt", r.n_prompt},       {"n_gen", r.n_gen},        {"n_depth", r.n_depth},
        {"test", r.test},
        {"avg_ns", uint64_t(avg_ns)},   {"stddev_ns", uint64_t(stddev_ns)},
        {"avg_ts", avg_ts},             {"stddev_ts", stddev_ts},
        {"samples_ns", samples_ns},   {"samples_ts", samples_ts},
    };
    if (r.gbps > 0) {
        j["machine_read_gbps"] = mean_sd(r.probes).first;
        j["weights_gbps"] = r.gbps;
        j["bandwidth_fraction"] = r.bw_frac;
    }
    if (r.kl >= 0) j["kl_divergence"] = r.kl;
    return j;
}

// One CSV cell, quoted like llama-bench's (every value; arrays joined with commas).
std::string csv_cell(const nlohmann::ordered_json& v) {
    std::string text;
    if (v.is_string()) {
        text = v.get<std::string>();
    } else if (v.is_array()) {
        for (const auto& x : v) text += (text.empty() ? "" : ",") + x.dump();
    } else if (!v.is_null()) {
        text = v.dump();
    }
    std::string out = "\"";
    for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

// A markdown cell: a '|' in a model name must not split the row.
std::string md_cell(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
    return out;
}

std::string human_size(uint64_t bytes) {
    const double mib = double(bytes) / double(1 << 20);
    return mib < 1024 ? fmt::format("{:.2f} MiB", mib) : fmt::format("{:.2f} GiB", mib / 1024);
}

// The isa column also says when the weights were kept as the file has them (--no-repack).
void print_rows(const std::vector<Row>& rows, const std::string& format, double bandwidth, bool repacked) {
    const std::string isa = std::string(isa_name(active_isa())) + (repacked ? "" : " no-repack");
    if (format == "json" || format == "jsonl") {
        nlohmann::ordered_json all = nlohmann::ordered_json::array();
        for (const auto& r : rows) {
            const auto j = row_json(r, isa);
            if (format == "jsonl") fmt::print("{}\n", j.dump());
            all.push_back(j);
        }
        if (format == "json") fmt::print("{}\n", all.dump(2));
        return;
    }
    if (format == "csv") {
        // Fixed columns, so that rows with and without the optional fields line up.
        static const char* const columns[] = {
            "model_filename", "model_name", "model_type", "model_size", "model_n_params", "type",
            "bpw", "n_threads", "isa", "n_prompt", "n_gen", "n_depth", "test", "avg_ns", "stddev_ns", "avg_ts",
            "stddev_ts", "samples_ns", "samples_ts", "machine_read_gbps", "weights_gbps",
            "bandwidth_fraction", "kl_divergence"};
        std::string line;
        for (const char* c : columns) line += (line.empty() ? "" : ",") + std::string(c);
        fmt::print("{}\n", line);
        for (const auto& r : rows) {
            const auto j = row_json(r, isa);
            line.clear();
            for (const char* c : columns) {
                line += (line.empty() ? "" : ",") + csv_cell(j.contains(c) ? j[c] : nlohmann::ordered_json());
            }
            fmt::print("{}\n", line);
        }
        return;
    }
    if (bandwidth > 0) {
        fmt::print("machine read bandwidth: up to {:.1f} GB/s (probed before each generation repetition)\n\n",
                   bandwidth);
    }
    const bool with_kl = std::any_of(rows.begin(), rows.end(), [](const Row& r) { return r.kl >= 0; });
    fmt::print("| model | type | size | params | bpw | threads | isa | test | t/s | GB/s | probe GB/s | % bw |{}\n",
               with_kl ? " KL vs source |" : "");
    fmt::print("|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|{}\n", with_kl ? "---:|" : "");
    for (const auto& r : rows) {
        const auto [mean, sd] = mean_sd(r.samples_ts());
        const double probe = r.gbps > 0 ? mean_sd(r.probes).first : 0.0;
        const std::string bw = r.gbps > 0 ? fmt::format("{:.1f} | {:.1f} | {:.0f}%", r.gbps, probe, 100 * r.bw_frac) : " |  | ";
        const std::string kl = !with_kl ? "" : r.kl >= 0 ? fmt::format(" {:.5f} |", r.kl) : " |";
        fmt::print("| {} | {} | {} | {:.2f} M | {:.2f} | {} | {} | {} | {:.2f} ± {:.2f} | {} |{}\n", md_cell(r.name),
                   r.type, human_size(r.size), double(r.params) / 1e6, r.bpw, r.threads, isa, r.test, mean, sd, bw, kl);
    }
}

// llama-quantize's name of a file type ("Q4_K_M"), else llama.cpp's description.
std::string short_type_name(uint32_t file_type) {
    for (const auto& ft : quant::file_types()) {
        if (uint32_t(ft.id) == (file_type & ~1024u)) return std::string(ft.name);  // 1024: "guessed"
    }
    return file_type_name(file_type);
}

// A parameter count as llama.cpp prints model sizes: "260K", "1.1B".
std::string params_label(uint64_t n) {
    const double x = double(n);
    if (x >= 1e9) return fmt::format("{:.1f}B", x / 1e9);
    if (x >= 1e6) return fmt::format("{:.0f}M", x / 1e6);
    return fmt::format("{:.0f}K", x / 1e3);
}

// Mean KL(source || model) of the next-token distributions over the tokens of `text`.
std::vector<float> all_logits(const Model& model, const std::vector<TokenId>& tokens) {
    Context ctx(model, int64_t(tokens.size()));
    const auto logits = ctx.eval(tokens, true);
    return {logits.begin(), logits.end()};
}

double mean_kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits, int64_t n_vocab) {
    const size_t n = p_logits.size() / size_t(n_vocab);
    double total = 0;
    for (size_t t = 0; t < n; ++t) {
        const float* p = p_logits.data() + t * size_t(n_vocab);
        const float* q = q_logits.data() + t * size_t(n_vocab);
        const double p_max = *std::max_element(p, p + n_vocab), q_max = *std::max_element(q, q + n_vocab);
        double p_sum = 0, q_sum = 0;
        for (int64_t i = 0; i < n_vocab; ++i) {
            p_sum += std::exp(p[i] - p_max);
            q_sum += std::exp(q[i] - q_max);
        }
        const double p_log_z = p_max + std::log(p_sum), q_log_z = q_max + std::log(q_sum);
        double kl = 0;
        for (int64_t i = 0; i < n_vocab; ++i) {
            const double lp = p[i] - p_log_z, lq = q[i] - q_log_z;
            kl += std::exp(lp) * (lp - lq);
        }
        total += kl;
    }
    return total / double(n);
}

int bench(const BenchOptions& opt) {
    static const std::vector<std::string> formats = {"md", "csv", "json", "jsonl"};
    if (std::find(formats.begin(), formats.end(), opt.output) == formats.end()) {
        fail("-o must be md, csv, json or jsonl (got '{}')", opt.output);
    }
    if (opt.repetitions < 1) fail("-r must be at least 1");
    auto models = split(opt.models);
    std::unique_ptr<SweepDir> sweep;
    if (!opt.sweep.empty()) {
        if (!models.empty()) fail("use either -m or --sweep, not both");
        sweep = std::make_unique<SweepDir>();
        models = quantize_levels(opt.sweep, split(opt.types), *sweep);
    }
    if (models.empty()) fail("bench needs -m MODEL[,MODEL...] or --sweep F16.gguf");
    const auto prompts = split_ints(opt.prompt_sizes, "-p");
    const auto gens = split_ints(opt.gen_sizes, "-n");
    const auto depths = split_ints(opt.depths, "-d");
    if (depths.empty()) fail("-d needs at least one depth");
    auto threads = opt.threads.empty() ? std::vector<int>{default_threads()} : split_ints(opt.threads, "-t");
    install_interrupt_handler();

    // The probe serves the generation rows only. On a shared host the bandwidth changes from one
    // minute to the next, so it runs before every repetition of a generation test, and each
    // repetition is judged against the reading just before it. The best reading is shown.
    double bandwidth = 0;
    std::unique_ptr<ReadBandwidthProbe> probe_buffer;  // made at the first generation test
    auto probe = [&]() -> const ReadBandwidthProbe& {
        if (!probe_buffer) probe_buffer = std::make_unique<ReadBandwidthProbe>();
        return *probe_buffer;
    };
    std::vector<Row> rows;
    std::vector<TokenId> quality_tokens;
    std::vector<float> source_logits;
    for (const auto& path : models) {
        auto model = Model::load(path, Model::Mode::Full, !opt.no_repack);
        double kl = -1;
        if (sweep && !opt.quality_text.empty()) {
            if (quality_tokens.empty()) {
                quality_tokens = model->tokenizer().encode(read_prompt("", opt.quality_text), model->vocab().add_bos);
                quality_tokens.resize(std::min<size_t>(quality_tokens.size(), 512));
                if (quality_tokens.size() < 2) fail("{}: too little text to measure quality", opt.quality_text);
            }
            fmt::print(stderr, "qllm: KL divergence of {} on {} tokens...\n", path, quality_tokens.size());
            const auto logits = all_logits(*model, quality_tokens);
            if (source_logits.empty()) source_logits = logits;  // the source comes first
            kl = mean_kl(source_logits, logits, model->hparams().n_vocab);
        }
        uint64_t params = 0, bytes = 0;
        for (const auto& t : model->file().tensors()) {
            params += uint64_t(t.n_elements());
            bytes += t.size;
        }
        for (int t : threads) {
            set_threads(t);
            auto add = [&](int n_prompt, int n_gen, int n_depth) {
                Row r;
                r.filename = path;
                r.name = model->file().get_string_or("general.name", path);
                r.type = short_type_name(model->hparams().file_type);
                r.model_type = fmt::format("{} {} {}", model->hparams().arch, params_label(params),
                                           file_type_name(model->hparams().file_type));
                r.size = bytes;
                r.params = params;
                r.bpw = 8.0 * double(bytes) / double(params);
                r.threads = t;
                r.n_prompt = n_prompt;
                r.n_gen = n_gen;
                r.n_depth = n_depth;
                r.test = (n_prompt > 0 ? fmt::format("pp{}", n_prompt) : fmt::format("tg{}", n_gen)) +
                         (n_depth > 0 ? fmt::format(" @ d{}", n_depth) : "");
                r.kl = kl;
                fmt::print(stderr, "qllm: {} {} t={}...\n", path, r.test, t);
                r.samples_ns = n_prompt > 0 ? time_test(*model, n_prompt, 0, n_depth, opt.repetitions)
                                            : time_test(*model, 0, n_gen, n_depth, opt.repetitions, &probe(), &r.probes);
                if (n_prompt == 0) {
                    // Every weight is read once per token (the cache, read too, is left out).
                    const auto ts = r.samples_ts();
                    r.gbps = mean_sd(ts).first * double(bytes) / 1e9;
                    for (size_t i = 0; i < ts.size(); ++i) {  // each repetition against the probe before it
                        r.bw_frac += ts[i] * double(bytes) / 1e9 / r.probes[i] / double(ts.size());
                    }
                    bandwidth = std::max(bandwidth, *std::max_element(r.probes.begin(), r.probes.end()));
                }
                rows.push_back(r);
            };
            for (int d : depths) {
                for (int p : prompts) if (p > 0) add(p, 0, d);
                for (int n : gens) if (n > 0) add(0, n, d);
            }
        }
    }
    if (sweep) {  // one table sorted by size, the source last
        std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.size < b.size; });
    }
    print_rows(rows, opt.output, bandwidth, !opt.no_repack);
    return 0;
}

}  // namespace

void add_bench(CLI::App& app, Action& action) {
    auto opt = std::make_shared<BenchOptions>();
    CLI::App* cmd = app.add_subcommand("bench", "Measure prompt and generation speed (tokens/s)");
    cmd->add_option("-m,--model", opt->models, "GGUF model file(s), comma-separated");
    cmd->add_option("-p,--n-prompt", opt->prompt_sizes, "prompt sizes, comma-separated")->capture_default_str();
    cmd->add_option("-n,--n-gen", opt->gen_sizes, "generation lengths, comma-separated")->capture_default_str();
    cmd->add_option("-d,--n-depth", opt->depths, "tokens already in the cache before each test, comma-separated")
        ->capture_default_str();
    cmd->add_option("-r,--repetitions", opt->repetitions, "repetitions of each test")->capture_default_str();
    cmd->add_option("-t,--threads", opt->threads, "thread counts, comma-separated (default: physical cores)");
    add_no_repack_flag(cmd, opt->no_repack);
    cmd->add_option("-o,--output", opt->output, "output format: md, csv, json, jsonl")->capture_default_str();
    cmd->add_option("--sweep", opt->sweep, "quantize this F16/F32 model to each of --types and benchmark them all");
    cmd->add_option("--types", opt->types, "levels for --sweep, comma-separated")->capture_default_str();
    cmd->add_option("-f,--file", opt->quality_text, "with --sweep: text on which to measure each level's KL divergence");
    cmd->callback([&action, opt] { action = [opt] { return bench(*opt); }; });
}

}  // namespace qllm::cli
