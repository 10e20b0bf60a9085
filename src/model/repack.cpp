#include "model/repack.h"

#include <sys/mman.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "qllm/error.h"

namespace qllm {
namespace {

// The interleaved layout the active kernels offer for a weight, if any.
std::optional<TensorType> layout_for(const TensorView& w) {
    for (uint32_t id = 0; id < kTensorTypeCount; ++id) {
        const TypeTraits& t = traits(id);
        if (t.row_group > 1 && t.repacked_from == w.type && t.repack && t.vec_dot_rows && t.gemm &&
            w.ne[2] == 1 && w.ne[3] == 1 && w.ne[1] % t.row_group == 0) {
            return TensorType(id);
        }
    }
    return std::nullopt;
}

struct Job {
    TensorView* view;
    TensorType layout;
    size_t offset;  // in the repacked memory
};

}  // namespace

RepackedWeights::~RepackedWeights() {
    if (memory_) munmap(memory_, bytes_);
}

std::unique_ptr<RepackedWeights> repack_weights(Weights& w) {
    std::vector<TensorView*> candidates;
    if (w.output.data != w.token_embd.data) candidates.push_back(&w.output);
    for (LayerWeights& l : w.layers) {
        for (TensorView* m : {&l.wq, &l.wk, &l.wv, &l.wqkv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
            if (*m) candidates.push_back(m);
        }
    }
    std::vector<Job> jobs;
    size_t bytes = 0;
    for (TensorView* v : candidates) {
        const std::optional<TensorType> layout = layout_for(*v);
        if (!layout) continue;
        jobs.push_back({v, *layout, bytes});
        bytes += (size_t(v->rows()) * v->row_bytes() + 63) / 64 * 64;
    }
    if (jobs.empty()) return {};

    void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) fail("cannot allocate {} MiB for the repacked weights", bytes >> 20);
    auto repacked = std::make_unique<RepackedWeights>();
    repacked->memory_ = memory;
    repacked->bytes_ = bytes;
    repacked->weights_ = int(jobs.size());

    // One weight after the other, a few MiB of its rows at a time shared among the threads, and
    // the file's pages of each piece released as soon as it is done: resident memory stays near
    // the file's size, also when all of the file is in memory already (run repacks after the
    // prompt), where releasing whole weights let it reach the file plus the largest weight.
    constexpr size_t kPieceBytes = size_t(4) << 20;
    for (const Job& job : jobs) {
        TensorView& v = *job.view;
        const size_t row_bytes = v.row_bytes();
        const int64_t group = traits(job.layout).row_group;
        const int64_t piece_rows = std::max<int64_t>(1, int64_t(kPieceBytes / (size_t(group) * row_bytes))) * group;
        uint8_t* out = static_cast<uint8_t*>(memory) + job.offset;
        for (int64_t first = 0; first < v.rows(); first += piece_rows) {
            const int64_t last = std::min(v.rows(), first + piece_rows);
#pragma omp parallel for schedule(static)
            for (int64_t r = first; r < last; r += group) {
                traits(job.layout).repack(v.data + size_t(r) * row_bytes, row_bytes, v.ne[0], out + size_t(r) * row_bytes);
            }
            gguf::release_mapped_pages(v.data + size_t(first) * row_bytes, size_t(last - first) * row_bytes);
        }
        v.data = out;
        v.type = job.layout;
    }
    return repacked;
}

}  // namespace qllm
