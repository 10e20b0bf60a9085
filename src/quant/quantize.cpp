// The quantize driver: plan every tensor's type first (so refusals come before any output),
// then let gguf::Writer pull each tensor's bytes from a producer that converts it row by row
// over OpenMP threads and drops the source pages it has read.
#include "quant/quantize.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "gguf/gguf.h"
#include "quant/imatrix.h"
#include "quant/mixture.h"
#include "util/output_file.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace qllm::quant {
namespace {

// llama.cpp's GGML_QNT_VERSION: the revision of the quantized block layouts.
constexpr uint32_t kQuantizationVersion = 2;

struct Planned {
    const gguf::TensorInfo* tensor = nullptr;
    TensorChoice choice;
    const float* importance = nullptr;  // n_per_row * ne[2] values, or null
    uint64_t bytes_out = 0;
};

// llama.cpp writes tensors in its loader's order: by layer number (non-layer tensors first),
// then by name.
std::vector<const gguf::TensorInfo*> writing_order(const gguf::File& file) {
    auto layer = [](const std::string& name) {
        int l = -1;
        return std::sscanf(name.c_str(), "blk.%d.", &l) == 1 ? l : -1;
    };
    std::vector<const gguf::TensorInfo*> order;
    for (const auto& t : file.tensors()) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [&](const auto* a, const auto* b) {
        const int la = layer(a->name), lb = layer(b->name);
        return la != lb ? la < lb : a->name < b->name;
    });
    return order;
}

uint64_t tensor_bytes(const gguf::TensorInfo& t, TensorType type) {
    return uint64_t(t.n_elements() / t.ne[0]) * traits(type).row_size(t.ne[0]);
}

void validate(const Planned& p, const QuantizeOptions& opt) {
    const gguf::TensorInfo& t = *p.tensor;
    if (!p.choice.convert) return;
    const TypeTraits& src = traits(t.type);
    const TypeTraits& dst = traits(p.choice.type);
    if (src.is_quantized && !opt.allow_requantize) {
        fail("tensor '{}' is already {}: requantizing it to {} loses quality (pass --allow-requantize to do it anyway)",
             t.name, type_name(t.type), type_name(p.choice.type));
    }
    if (!src.to_float) fail("tensor '{}': cannot convert from type {}", t.name, type_name(t.type));
    if (!dst.quantize && !dst.from_float) fail("tensor '{}': no quantizer for type {}", t.name, type_name(p.choice.type));
}

// The importance row set for a tensor: llama.cpp wants n_per_row values per matrix (ne[2]).
const float* importance_for(const gguf::TensorInfo& t, TensorType target, const ImportanceMatrix& im, std::FILE* log) {
    if (!traits(target).is_quantized) return nullptr;
    const std::vector<float>* v = im.find(t.name);
    if (!v) {
        if (log) fmt::print(log, "qllm: note: no importance data for {}\n", t.name);
        return nullptr;
    }
    if (int64_t(v->size()) == t.ne[0] * t.ne[2]) return v->data();
    // The token embedding is a lookup table; llama-imatrix's entry for it is routinely off.
    if (t.name == "token_embd.weight") return nullptr;
    fail("tensor '{}': importance data has {} values, the tensor wants {}", t.name, v->size(), t.ne[0] * t.ne[2]);
}

void convert(const Planned& p, std::span<uint8_t> out, const QuantizeOptions& opt) {
    const gguf::TensorInfo& t = *p.tensor;
    const int64_t n = t.ne[0];
    const int64_t rows = t.n_elements() / n;
    const TypeTraits& src = traits(t.type);
    const TypeTraits& dst = traits(p.choice.type);
    const size_t src_row = src.row_size(n), dst_row = dst.row_size(n);
    const bool src_f32 = t.type == TensorType::F32;
    std::atomic<bool> stop{false};
#ifdef _OPENMP
    const int threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
#endif
#pragma omp parallel num_threads(threads)
    {
        std::vector<float> row(src_f32 ? 0 : size_t(n));
#pragma omp for schedule(dynamic, 8)
        for (int64_t r = 0; r < rows; ++r) {
            if (stop.load(std::memory_order_relaxed)) continue;
            if (opt.cancelled && opt.cancelled()) {
                stop.store(true);
                continue;
            }
            const uint8_t* s = t.data + size_t(r) * src_row;
            const float* x = reinterpret_cast<const float*>(s);
            if (!src_f32) {
                src.to_float(s, row.data(), n);
                x = row.data();
            }
            const float* w = p.importance ? p.importance + ((r / t.ne[1]) % t.ne[2]) * n : nullptr;
            uint8_t* d = out.data() + size_t(r) * dst_row;
            if (dst.quantize) {
                dst.quantize(x, d, n, w);
            } else {
                dst.from_float(x, d, n);
            }
        }
    }
    if (stop.load()) throw Cancelled("interrupted");
}

void print_line(std::FILE* log, size_t i, size_t count, const Planned& p) {
    if (!log) return;
    const gguf::TensorInfo& t = *p.tensor;
    const int w = int(fmt::formatted_size("{}", count));
    const std::string note = !p.choice.convert          ? "  (copied)"
                             : p.choice.fallback.empty() ? ""
                                                         : "  (fallback: " + p.choice.fallback + ")";
    fmt::print(log, "[{:>{}}/{}] {:<32} {:<13} {:>6} -> {:<6} {:>10} -> {}{}\n", i + 1, w, count, t.name,
               t.shape_string(), type_name(t.type), type_name(p.choice.type), format_bytes(t.size),
               format_bytes(p.bytes_out), note);
    std::fflush(log);
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
    const double b = double(bytes);
    if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
    if (b >= 1024.0 * 1024) return fmt::format("{:.2f} MiB", b / (1024.0 * 1024));
    return fmt::format("{:.1f} KiB", b / 1024.0);
}

QuantizeSummary quantize_model(const QuantizeOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!opt.dry_run) check_not_same_file(opt.input, opt.output);
    gguf::File in(opt.input);

    ImportanceMatrix imatrix;
    if (!opt.imatrix.empty()) imatrix = ImportanceMatrix::load(opt.imatrix);

    MixtureOptions mix;
    mix.ftype = opt.ftype;
    mix.pure = opt.pure;
    mix.quantize_output = !opt.leave_output;
    mix.output_type = opt.output_type;
    mix.token_embd_type = opt.token_embd_type;
    mix.has_imatrix = !imatrix.entries.empty();

    const auto order = writing_order(in);
    const auto choices = choose_types(order, ModelFacts::read(in), mix);

    QuantizeSummary sum;
    std::vector<Planned> plan(order.size());
    for (size_t i = 0; i < order.size(); ++i) {
        Planned& p = plan[i];
        p.tensor = order[i];
        p.choice = choices[i];
        p.bytes_out = p.choice.convert ? tensor_bytes(*p.tensor, p.choice.type) : p.tensor->size;
        validate(p, opt);
        if (p.choice.convert && mix.has_imatrix) p.importance = importance_for(*p.tensor, p.choice.type, imatrix, opt.log);
        sum.n_tensors++;
        sum.n_converted += p.choice.convert;
        sum.n_fallback += !p.choice.fallback.empty();
        sum.n_elements += uint64_t(p.tensor->n_elements());
        sum.bytes_in += p.tensor->size;
        sum.bytes_out += p.bytes_out;
    }

    if (opt.dry_run) {
        for (size_t i = 0; i < plan.size(); ++i) print_line(opt.log, i, plan.size(), plan[i]);
    } else {
        gguf::Writer w;
        for (const auto& [key, value] : in.metadata()) {
            // Rewritten below (llama.cpp appends them after the copied keys); a split input
            // becomes one file.
            if (key == "general.quantization_version" || key == "general.file_type" || key == "split.no" ||
                key == "split.count" || key == "split.tensors.count") {
                continue;
            }
            w.set(key, value);
        }
        w.set("general.quantization_version", gguf::Value::u32(kQuantizationVersion));
        w.set("general.file_type", gguf::Value::u32(uint32_t(opt.ftype)));
        if (mix.has_imatrix) {
            // llama-quantize records the imatrix provenance (file name cut at 127 bytes).
            w.set("quantize.imatrix.file", gguf::Value::string(opt.imatrix.substr(0, 127)));
            if (!imatrix.datasets.empty()) {
                w.set("quantize.imatrix.dataset", gguf::Value::string(imatrix.datasets[0].substr(0, 127)));
            }
            w.set("quantize.imatrix.entries_count", gguf::Value::u32(uint32_t(imatrix.entries.size())));
            if (imatrix.chunk_count > 0) {
                w.set("quantize.imatrix.chunks_count", gguf::Value::u32(uint32_t(imatrix.chunk_count)));
            }
        }
        for (size_t i = 0; i < plan.size(); ++i) {
            const Planned& p = plan[i];
            const gguf::TensorInfo& t = *p.tensor;
            std::vector<int64_t> dims(t.ne, t.ne + effective_dims(t));
            w.add_tensor(t.name, p.choice.type, std::move(dims), [&opt, &p, i, n = plan.size()](std::span<uint8_t> out) {
                if (p.choice.convert) {
                    convert(p, out, opt);
                } else {
                    if (opt.cancelled && opt.cancelled()) throw Cancelled("interrupted");
                    std::memcpy(out.data(), p.tensor->data, out.size());
                }
                gguf::release_mapped_pages(p.tensor->data, p.tensor->size);  // RSS stays near one tensor
                print_line(opt.log, i, n, p);
            });
        }
        w.write(opt.output);
    }
    sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return sum;
}

}  // namespace qllm::quant
