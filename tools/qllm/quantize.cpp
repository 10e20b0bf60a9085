// qllm quantize: write the file llama-quantize would write for IN at file type TYPE.
#include <cctype>

#include <fmt/core.h>

#include "commands.h"
#include "qllm/error.h"
#include "quant/quantize.h"

namespace qllm::cli {
namespace {

struct QuantizeCliOptions {
    std::string input, output, type, threads_arg;
    int threads = 0;
    std::string output_type, token_embd_type;
    quant::QuantizeOptions q;
};

// A ggml type name in any case. Looked up in the reference table: parsing runs before the CPU
// kernels are chosen (main reports a bad QLLM_ISA only after parsing).
std::optional<TensorType> parse_tensor_type(const std::string& flag, const std::string& text) {
    if (text.empty()) return std::nullopt;
    auto lower = [](std::string_view s) {
        std::string out(s);
        for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
        return out;
    };
    const auto& table = reference_table();
    for (size_t id = 0; id < table.size(); ++id) {
        if (table[id].known() && lower(table[id].name) == lower(text) && table[id].from_float) return TensorType(id);
    }
    throw CLI::ValidationError(flag, fmt::format("'{}' is not a tensor type qllm can write (e.g. q8_0, q6_K, f16)", text));
}

// Runs inside CLI parsing: everything here is a usage error (exit 2).
void check_arguments(QuantizeCliOptions& o) {
    // llama-quantize's dry-run form needs no output: `--dry-run IN TYPE`.
    if (o.q.dry_run && o.type.empty() && !o.output.empty() && quant::parse_file_type(o.output)) {
        o.type = o.output;
        o.output.clear();
    }
    if (o.type.empty()) throw CLI::ValidationError("TYPE", "missing; valid types: " + quant::file_type_names());
    const quant::FileTypeInfo* ft = quant::parse_file_type(o.type);
    if (!ft) {
        throw CLI::ValidationError("TYPE", fmt::format("unknown quantization type '{}'; valid types: {} (or Q3_K/Q4_K/Q5_K, "
                                                       "or a numeric id, see qllm quantize --help)",
                                                       o.type, quant::file_type_names()));
    }
    if (o.output.empty() && !o.q.dry_run) throw CLI::ValidationError("OUT", "missing output file");
    if (!o.threads_arg.empty() && o.threads == 0) {
        try {
            o.threads = std::stoi(o.threads_arg);
        } catch (const std::exception&) {
            throw CLI::ValidationError("THREADS", fmt::format("'{}' is not a number", o.threads_arg));
        }
    }
    if (o.threads < 0 || o.threads > 1024) throw CLI::ValidationError("THREADS", "must be between 1 and 1024");
    o.q.input = o.input;
    o.q.output = o.output;
    o.q.ftype = ft->id;
    o.q.output_type = parse_tensor_type("--output-tensor-type", o.output_type);
    o.q.token_embd_type = parse_tensor_type("--token-embedding-type", o.token_embd_type);
}

int quantize(QuantizeCliOptions& o) {
    const int threads = o.threads > 0 ? o.threads : default_threads();
    set_threads(threads);
    o.q.threads = threads;
    o.q.log = stderr;
    // Ctrl-C sets a flag the workers poll; the writer then removes its temporary file.
    install_interrupt_handler();
    o.q.cancelled = [] { return interrupted(); };
    const auto& ft = quant::file_type_info(o.q.ftype);
    try {
        const auto s = quant::quantize_model(o.q);
        const std::string target = o.q.dry_run ? "(dry run, nothing written)" : o.q.output;
        fmt::print(stderr, "qllm: {} -> {} as {}: {} tensors, {} converted, {} with fallback types\n", o.q.input, target,
                   ft.name, s.n_tensors, s.n_converted, s.n_fallback);
        fmt::print(stderr, "qllm: size {} ({:.2f} bpw) -> {} ({:.2f} bpw) in {:.2f} s, {} threads, peak RSS {:.0f} MiB\n",
                   quant::format_bytes(s.bytes_in), s.bpw_in(), quant::format_bytes(s.bytes_out), s.bpw_out(), s.seconds,
                   threads, peak_rss_mib());
    } catch (const quant::Cancelled&) {
        fmt::print(stderr, "qllm: error: interrupted; {} was not written\n", o.q.output);
        return 130;
    }
    return 0;
}

}  // namespace

void add_quantize(CLI::App& app, Action& action) {
    auto o = std::make_shared<QuantizeCliOptions>();
    CLI::App* cmd = app.add_subcommand("quantize", "Quantize a GGUF model as llama-quantize does (IN OUT TYPE [THREADS])");
    cmd->add_option("IN", o->input, "input GGUF model (F32, F16 or BF16; quantized with --allow-requantize)")->required();
    cmd->add_option("OUT", o->output, "output GGUF file (written atomically)");
    cmd->add_option("TYPE", o->type, "file type, e.g. Q4_K_M (see below)");
    cmd->add_option("THREADS", o->threads_arg, "worker threads (same as -t)");
    cmd->add_option("-t,--threads", o->threads, "worker threads (default: physical cores)");
    cmd->add_flag("--pure", o->q.pure, "no mixture: every 2-D weight gets TYPE's base type");
    cmd->add_flag("--leave-output-tensor", o->q.leave_output, "keep output.weight as it is");
    cmd->add_option("--output-tensor-type", o->output_type, "type of output.weight (e.g. q8_0)");
    cmd->add_option("--token-embedding-type", o->token_embd_type, "type of token_embd.weight (e.g. q8_0)");
    cmd->add_flag("--allow-requantize", o->q.allow_requantize, "allow converting tensors that are already quantized");
    cmd->add_option("--imatrix", o->q.imatrix, "importance matrix from llama-imatrix (.dat or .gguf)");
    cmd->add_flag("--dry-run", o->q.dry_run, "print the plan and final size without writing (OUT may be left out)");
    cmd->footer(quant::file_type_table());
    cmd->callback([&action, o] {
        check_arguments(*o);
        action = [o] { return quantize(*o); };
    });
}

}  // namespace qllm::cli
