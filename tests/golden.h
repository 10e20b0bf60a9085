// Reading the golden reference outputs (logits files, greedy files) and comparing logits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "support.h"

namespace qllm::test {

struct LogitsFile {
    std::vector<int32_t> tokens;
    int32_t n_vocab = 0;
    std::vector<float> logits;  // n_tokens * n_vocab

    const float* row(size_t i) const { return logits.data() + i * size_t(n_vocab); }
};

inline LogitsFile read_logits(const std::filesystem::path& path) {
    const std::string bytes = read_text(path);
    LogitsFile f;
    int32_t n = 0;
    if (bytes.size() < 8) return f;
    std::memcpy(&n, bytes.data(), 4);
    std::memcpy(&f.n_vocab, bytes.data() + 4, 4);
    const size_t expected = 8 + size_t(n) * 4 + size_t(n) * size_t(f.n_vocab) * 4;
    if (n <= 0 || f.n_vocab <= 0 || bytes.size() != expected) return LogitsFile{};
    f.tokens.resize(size_t(n));
    std::memcpy(f.tokens.data(), bytes.data() + 8, size_t(n) * 4);
    f.logits.resize(size_t(n) * size_t(f.n_vocab));
    std::memcpy(f.logits.data(), bytes.data() + 8 + size_t(n) * 4, f.logits.size() * 4);
    return f;
}

// How far `ours` is from `ref`: mean over positions of KL(softmax(ref) || softmax(ours)),
// the largest |logit difference|, and the share of positions whose argmax agrees.
struct LogitsComparison {
    double mean_kl = 0.0;
    double max_abs_diff = 0.0;
    double top1 = 0.0;
};

inline std::vector<double> log_softmax(const float* x, int32_t n) {
    double max = x[0];
    for (int32_t i = 1; i < n; ++i) max = std::max(max, double(x[i]));
    double sum = 0.0;
    for (int32_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - max);
    const double log_z = max + std::log(sum);
    std::vector<double> out(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - log_z;
    return out;
}

inline LogitsComparison compare_logits(const LogitsFile& ref, const float* ours) {
    LogitsComparison c;
    const size_t n = ref.tokens.size();
    int agree = 0;
    for (size_t t = 0; t < n; ++t) {
        const float* r = ref.row(t);
        const float* y = ours + t * size_t(ref.n_vocab);
        const auto lr = log_softmax(r, ref.n_vocab);
        const auto ly = log_softmax(y, ref.n_vocab);
        double kl = 0.0;
        size_t arg_r = 0, arg_y = 0;
        for (size_t i = 0; i < size_t(ref.n_vocab); ++i) {
            kl += std::exp(lr[i]) * (lr[i] - ly[i]);
            c.max_abs_diff = std::max(c.max_abs_diff, double(std::fabs(r[i] - y[i])));
            if (r[i] > r[arg_r]) arg_r = i;
            if (y[i] > y[arg_y]) arg_y = i;
        }
        c.mean_kl += kl / double(n);
        agree += arg_r == arg_y;
    }
    c.top1 = double(agree) / double(n);
    return c;
}

// The ids of the `gen:` line of a golden greedy file.
inline std::vector<int32_t> read_greedy_ids(const std::filesystem::path& path, const std::string& field = "gen:") {
    std::istringstream in(read_text(path));
    std::string line;
    std::vector<int32_t> ids;
    while (std::getline(in, line)) {
        if (line.rfind(field, 0) == 0) {
            std::istringstream nums(line.substr(field.size()));
            int32_t id;
            while (nums >> id) ids.push_back(id);
        }
    }
    return ids;
}

}  // namespace qllm::test
