#include "model/repack.h"

#include <sys/mman.h>

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

std::unique_ptr<RepackedWeights> repack_weights(Weights& w, int* count) {
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
    *count = int(jobs.size());
    if (jobs.empty()) return {};

    void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) fail("cannot allocate {} MiB for the repacked weights", bytes >> 20);
    auto repacked = std::make_unique<RepackedWeights>();
    repacked->memory_ = memory;
    repacked->bytes_ = bytes;

    // One weight after the other, its groups shared among the threads, and its pages in the file
    // released as soon as it is done: resident memory stays near the file's size.
    for (const Job& job : jobs) {
        TensorView& v = *job.view;
        const size_t row_bytes = v.row_bytes();
        const int64_t group = traits(job.layout).row_group;
        uint8_t* out = static_cast<uint8_t*>(memory) + job.offset;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < v.rows(); r += group) {
            traits(job.layout).repack(v.data + size_t(r) * row_bytes, row_bytes, v.ne[0], out + size_t(r) * row_bytes);
        }
        gguf::release_mapped_pages(v.data, size_t(v.rows()) * row_bytes);
        v.data = out;
        v.type = job.layout;
    }
    return repacked;
}

}  // namespace qllm
