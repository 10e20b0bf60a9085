// The quantize driver: reads a GGUF model, chooses each tensor's type (quant/mixture.h) and
// writes the file llama-quantize would write, one tensor in memory at a time, atomically.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

#include "qllm/error.h"
#include "quant/ftype.h"

namespace qllm::quant {

struct QuantizeOptions {
    std::string input, output;
    FileType ftype = FileType::Q4_K_M;
    int threads = 0;                 // 0: OpenMP's default
    bool pure = false;               // no mixture: every quantizable tensor gets the base type
    bool leave_output = false;       // keep output.weight as it is
    bool allow_requantize = false;   // allow converting tensors that are quantized already
    bool dry_run = false;            // plan and sizes only; nothing is written
    std::optional<TensorType> output_type;      // type of output.weight
    std::optional<TensorType> token_embd_type;  // type of token_embd.weight
    std::string imatrix;             // importance matrix file ("" = none)
    std::FILE* log = stderr;         // progress lines and warnings; null = quiet
    // Polled from the worker threads between rows (so it must be thread-safe); returning true
    // abandons the output and throws Cancelled.
    std::function<bool()> cancelled;
};

struct QuantizeSummary {
    size_t n_tensors = 0;
    size_t n_converted = 0;
    size_t n_fallback = 0;
    uint64_t n_elements = 0;
    uint64_t bytes_in = 0;   // tensor data of the input
    uint64_t bytes_out = 0;  // tensor data of the output
    double seconds = 0;

    double bpw_in() const { return n_elements ? double(bytes_in) * 8.0 / double(n_elements) : 0.0; }
    double bpw_out() const { return n_elements ? double(bytes_out) * 8.0 / double(n_elements) : 0.0; }
};

class Cancelled : public Error {
public:
    using Error::Error;
};

// Quantizes opt.input into opt.output. Throws qllm::Error (nothing is left at opt.output and an
// existing file there is untouched) on bad input, refused conversions and I/O failures.
QuantizeSummary quantize_model(const QuantizeOptions& opt);

// "1.46 MiB", "512.0 KiB", "2.05 GiB".
std::string format_bytes(uint64_t bytes);

}  // namespace qllm::quant
