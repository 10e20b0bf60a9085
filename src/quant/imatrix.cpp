// Importance matrices in llama-imatrix's legacy and GGUF formats: loading, and accumulating
// and saving them for `qllm imatrix`.
#include "quant/imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "gguf/gguf.h"
#include "qllm/error.h"
#include "util/output_file.h"

namespace qllm::quant {
namespace {

class Reader {
public:
    explicit Reader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
        if (!in_) fail("{}: cannot open importance matrix", path);
    }
    bool at_end() { return in_.peek() == std::char_traits<char>::eof(); }
    int32_t i32(const char* what) {
        int32_t v = 0;
        read(&v, 4, what);
        return v;
    }
    void read(void* dst, size_t n, const char* what) {
        if (!in_.read(static_cast<char*>(dst), std::streamsize(n))) fail("{}: truncated importance matrix ({})", path_, what);
    }

private:
    std::string path_;
    std::ifstream in_;
};

void check_finite(const std::string& path, const std::string& name, const std::vector<float>& v) {
    for (float x : v) {
        if (!std::isfinite(x)) fail("{}: entry '{}' holds a non-finite value", path, name);
    }
}

ImportanceMatrix load_legacy(const std::string& path) {
    ImportanceMatrix m;
    Reader r(path);
    const int32_t n_entries = r.i32("entry count");
    if (n_entries <= 0 || n_entries > 1000000) fail("{}: not an importance matrix ({} entries)", path, n_entries);
    for (int32_t e = 0; e < n_entries; ++e) {
        const int32_t len = r.i32("name length");
        if (len <= 0 || len > 4096) fail("{}: entry {}: bad name length {}", path, e, len);
        std::string name(size_t(len), '\0');
        r.read(name.data(), name.size(), "name");
        const int32_t ncall = r.i32("call count");
        const int32_t nval = r.i32("value count");
        if (nval <= 0 || nval > (1 << 28)) fail("{}: entry '{}': bad value count {}", path, name, nval);
        std::vector<float> v(static_cast<size_t>(nval));
        r.read(v.data(), v.size() * 4, "values");
        if (ncall > 0) {
            for (float& x : v) x /= float(ncall);
        }
        check_finite(path, name, v);
        m.entries[name] = std::move(v);
    }
    if (!r.at_end()) {
        m.chunk_count = r.i32("chunk count");
        if (!r.at_end()) {
            const int32_t len = r.i32("dataset length");
            if (len > 0 && len < (1 << 20)) {
                std::string dataset(size_t(len), '\0');
                r.read(dataset.data(), dataset.size(), "dataset");
                m.datasets.push_back(std::move(dataset));
            }
        }
    }
    return m;
}

ImportanceMatrix load_gguf(const std::string& path) {
    ImportanceMatrix m;
    gguf::File f(path);
    if (const gguf::Value* v = f.find("imatrix.datasets"); v && v->type == gguf::ValueType::ARRAY) m.datasets = v->strings;
    m.chunk_count = int64_t(f.get_count_or("imatrix.chunk_count", 0));
    constexpr std::string_view kSums = ".in_sum2";
    for (const auto& t : f.tensors()) {
        if (!std::string_view(t.name).ends_with(kSums)) continue;
        const std::string name = t.name.substr(0, t.name.size() - kSums.size());
        const gguf::TensorInfo* counts = f.find_tensor(name + ".counts");
        if (!counts) fail("{}: '{}' has sums but no counts", path, name);
        if (t.type != TensorType::F32 || counts->type != TensorType::F32) fail("{}: '{}' is not f32", path, name);
        const int64_t n_mat = counts->n_elements();
        if (n_mat <= 0 || t.n_elements() % n_mat != 0) fail("{}: '{}': {} sums for {} counts", path, name, t.n_elements(), n_mat);
        const int64_t ne0 = t.n_elements() / n_mat;
        std::vector<float> sums(static_cast<size_t>(t.n_elements()));
        std::vector<float> cnt(static_cast<size_t>(n_mat));
        std::memcpy(sums.data(), t.data, sums.size() * 4);
        std::memcpy(cnt.data(), counts->data, cnt.size() * 4);
        std::vector<float> v(sums.size());
        for (int64_t j = 0; j < n_mat; ++j) {
            for (int64_t i = 0; i < ne0; ++i) {
                // A matrix never reached (an unused expert) weighs all columns alike, as llama.cpp does.
                v[size_t(j * ne0 + i)] = cnt[size_t(j)] > 0 ? sums[size_t(j * ne0 + i)] / cnt[size_t(j)] : 1.0f;
            }
        }
        check_finite(path, name, v);
        m.entries[name] = std::move(v);
    }
    if (m.entries.empty()) fail("{}: GGUF file holds no importance data (*.in_sum2 tensors)", path);
    return m;
}

}  // namespace

ImportanceMatrix ImportanceMatrix::load(const std::string& path) {
    char magic[4] = {};
    {
        std::ifstream in(path, std::ios::binary);
        if (!in) fail("{}: cannot open importance matrix", path);
        in.read(magic, 4);
    }
    return std::memcmp(magic, "GGUF", 4) == 0 ? load_gguf(path) : load_legacy(path);
}

const std::vector<float>* ImportanceMatrix::find(std::string_view tensor) const {
    auto it = entries.find(tensor);
    return it == entries.end() ? nullptr : &it->second;
}

void ImatrixStats::add(std::string_view weight, const float* x, int64_t n_rows, int64_t n_cols) {
    if (n_rows <= 0) return;
    auto it = entries.find(weight);
    if (it == entries.end()) it = entries.emplace(std::string(weight), Entry{}).first;
    Entry& e = it->second;
    if (e.sum2.empty()) e.sum2.assign(size_t(n_cols), 0.0);
    if (int64_t(e.sum2.size()) != n_cols) fail("'{}': input width changed from {} to {}", weight, e.sum2.size(), n_cols);
    // Each thread owns a band of columns and walks every row for it.
    constexpr int64_t kBand = 64;
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= (1 << 16))
    for (int64_t j0 = 0; j0 < n_cols; j0 += kBand) {
        const int64_t j1 = std::min(n_cols, j0 + kBand);
        for (int64_t r = 0; r < n_rows; ++r) {
            const float* row = x + r * n_cols;
            for (int64_t j = j0; j < j1; ++j) e.sum2[size_t(j)] += double(row[j]) * double(row[j]);
        }
    }
    e.count += n_rows;
    for (double v : e.sum2) {
        if (!std::isfinite(v)) fail("'{}': non-finite activation (the model overflowed on the calibration text)", weight);
    }
}

namespace {

void save_gguf(const ImatrixStats& s, const std::string& path) {
    gguf::Writer w;
    w.set("general.type", gguf::Value::string("imatrix"));
    w.set("imatrix.datasets", gguf::Value::string_array(s.datasets));
    w.set("imatrix.chunk_count", gguf::Value::u32(uint32_t(s.chunk_count)));
    w.set("imatrix.chunk_size", gguf::Value::u32(uint32_t(s.chunk_size)));
    // The writer copies tensor bytes at write(): keep the f32 arrays alive until then.
    std::vector<std::vector<float>> data;
    data.reserve(s.entries.size() * 2);
    auto bytes = [](const std::vector<float>& v) {
        return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float));
    };
    for (const auto& [name, e] : s.entries) {  // std::map: sorted by name, as llama-imatrix writes them
        const auto& sums = data.emplace_back(e.sum2.begin(), e.sum2.end());
        w.add_tensor(name + ".in_sum2", TensorType::F32, {int64_t(sums.size()), 1}, bytes(sums));
        const auto& counts = data.emplace_back(1, float(e.count));
        w.add_tensor(name + ".counts", TensorType::F32, {1, 1}, bytes(counts));
    }
    w.write(path);
}

// Legacy values are mean * ncall, ncall being the count in chunks rounded up; readers divide
// by ncall again.
void save_legacy(const ImatrixStats& s, const std::string& path) {
    OutputFile out(path);
    auto put_i32 = [&](int64_t v) {
        const auto i = int32_t(v);
        out.write(&i, sizeof(i));
    };
    put_i32(int64_t(s.entries.size()));
    const int64_t chunk = std::max<int64_t>(s.chunk_size, 1);
    std::vector<float> values;
    for (const auto& [name, e] : s.entries) {
        put_i32(int64_t(name.size()));
        out.write(name.data(), name.size());
        const int64_t ncall = (e.count + chunk - 1) / chunk;
        put_i32(ncall);
        put_i32(int64_t(e.sum2.size()));
        values.resize(e.sum2.size());
        for (size_t j = 0; j < values.size(); ++j) values[j] = float(e.sum2[j] / double(e.count) * double(ncall));
        out.write(values.data(), values.size() * sizeof(float));
    }
    put_i32(s.chunk_count);
    const std::string dataset = s.datasets.empty() ? std::string() : s.datasets.back();
    put_i32(int64_t(dataset.size()));
    out.write(dataset.data(), dataset.size());
    out.commit();
}

}  // namespace

void ImatrixStats::save(const std::string& path) const {
    if (entries.empty()) fail("{}: no activations were collected, nothing to write", path);
    if (std::string_view(path).ends_with(".dat")) {
        save_legacy(*this, path);
    } else {
        save_gguf(*this, path);
    }
}

}  // namespace qllm::quant
