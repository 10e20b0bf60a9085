// qllm: run, quantize and benchmark GGUF models. stdout carries results only; logs and
// errors go to stderr. Exit codes: 0 success, 1 runtime error, 2 usage error.
#include <algorithm>
#include <cstdio>
#include <string_view>
#include <string>
#include <vector>
#include <new>

#include <fmt/core.h>

#include "commands.h"
#include "kernels/cpu.h"
#include "qllm/error.h"

namespace {

// One line whatever the message quotes from a file: control characters are escaped.
std::string one_line(std::string_view message) {
    std::string out;
    for (const char c : message) {
        if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) out += fmt::format("\\x{:02X}", static_cast<unsigned char>(c));
        else out += c;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"qllm: a CPU inference engine for quantized GGUF language models", "qllm"};
    app.require_subcommand(1, 1);
    app.set_version_flag("--version", "qllm 0.1.0");

    qllm::cli::Action action;
    qllm::cli::add_run(app, action);
    qllm::cli::add_logits(app, action);
    qllm::cli::add_info(app, action);
    qllm::cli::add_tokenize(app, action);
    qllm::cli::add_synth(app, action);
    qllm::cli::add_quantize(app, action);
    qllm::cli::add_bench(app, action);
    qllm::cli::add_chat(app, action);
    qllm::cli::add_perplexity(app, action);
    qllm::cli::add_imatrix(app, action);

    // llama.cpp's -sys is a multi-letter short option, which CLI11 does not allow: spell it out.
    std::vector<std::string> args(argv + 1, argv + argc);
    for (auto& a : args) {
        if (a == "-sys") a = "--system-prompt";
    }
    std::reverse(args.begin(), args.end());  // CLI11 takes the arguments in reverse order
    try {
        app.parse(args);
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        fmt::print(stderr, "qllm: error: {}\n", e.what());
        fmt::print(stderr, "Run 'qllm --help' or 'qllm COMMAND --help' for usage.\n");
        return 2;
    }
    try {
        qllm::active_isa();  // choose the kernels now, so a bad QLLM_ISA is reported cleanly
        return action();
    } catch (const std::bad_alloc&) {
        fmt::print(stderr, "qllm: error: out of memory\n");
    } catch (const std::exception& e) {
        fmt::print(stderr, "qllm: error: {}\n", one_line(e.what()));
    }
    return 1;
}
