// Helpers shared by the libFuzzer targets: where ../shared is, reading typed values off the
// fuzzer's bytes, and a private temporary file for code that only reads from paths.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace qllm::fuzz {

// QLLM_SHARED_DIR (as for the tests), else ../shared beside the source tree.
inline std::filesystem::path shared_dir() {
    if (const char* env = std::getenv("QLLM_SHARED_DIR"); env && *env) return env;
    return std::filesystem::path(QLLM_SOURCE_DIR).parent_path() / "shared";
}

// A fuzzer's hard error: a property that must hold did not. abort() is what libFuzzer reports.
#define QLLM_FUZZ_CHECK(cond)                                                              \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                  \
        }                                                                                  \
    } while (0)

// Consumes the fuzzer's input front to back; reads past the end give zeros.
class Input {
public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

    size_t remaining() const { return size_ - pos_; }
    const uint8_t* rest() const { return data_ + pos_; }

    template <typename T>
    T take() {
        T v{};
        const size_t n = std::min(sizeof(T), remaining());
        std::memcpy(&v, data_ + pos_, n);
        pos_ += n;
        return v;
    }
    uint8_t byte() { return take<uint8_t>(); }
    void skip(size_t n) { pos_ += std::min(n, remaining()); }
    bool flag() { return byte() & 1; }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

// One file per process (libFuzzer may run several jobs side by side), on tmpfs when there is one,
// rewritten for every input and removed when the process ends.
class ScratchFile {
public:
    ScratchFile() {
        const char* dir = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
        path_ = std::string(dir) + "/qllm-fuzz-" + std::to_string(::getpid()) + ".gguf";
    }
    ~ScratchFile() { std::remove(path_.c_str()); }

    const std::string& write(const uint8_t* data, size_t size) {
        std::FILE* f = std::fopen(path_.c_str(), "wb");
        if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
            std::perror(path_.c_str());
            std::abort();
        }
        return path_;
    }

private:
    std::string path_;
};

}  // namespace qllm::fuzz
