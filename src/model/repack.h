// Weights rewritten once (at load, or later by Model::repack) into an interleaved layout that
// this build's kernels read faster (kernels/types.h: row_group, repack), as llama.cpp's CPU
// "repack" buffers do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "model/model.h"

namespace qllm {

// Anonymous memory holding the repacked weights; the views point into it.
class RepackedWeights {
public:
    RepackedWeights() = default;
    RepackedWeights(const RepackedWeights&) = delete;
    RepackedWeights& operator=(const RepackedWeights&) = delete;
    ~RepackedWeights();
    size_t bytes() const { return bytes_; }
    int weights() const { return weights_; }  // how many were repacked

private:
    friend std::unique_ptr<RepackedWeights> repack_weights(Weights& w);
    void* memory_ = nullptr;
    size_t bytes_ = 0;
    int weights_ = 0;
};

// Rewrites every multiplied weight that has an interleaved layout in the active kernel table
// (and whole groups of rows) into it, points its view there, and gives the file's pages of those
// weights back to the page cache. Returns null when there was nothing to repack. The embedding
// table is left alone: it is read a row at a time.
std::unique_ptr<RepackedWeights> repack_weights(Weights& w);

}  // namespace qllm
