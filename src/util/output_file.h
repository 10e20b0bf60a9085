// OutputFile: writes a file so that it appears only when complete. Data goes to a temporary
// file in the target directory; commit() flushes and renames it into place. Destroyed without
// commit() (an error), or interrupted by SIGINT/SIGTERM, it removes the temporary file, so a
// failure never leaves a partial file and never touches an existing one.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace qllm {

class OutputFile {
public:
    explicit OutputFile(std::string path);
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    void write(std::span<const uint8_t> bytes);
    void write(const void* data, size_t size) { write({static_cast<const uint8_t*>(data), size}); }
    void pad_to(uint64_t alignment);  // zero bytes up to the next multiple of alignment
    uint64_t position() const { return written_; }
    void commit();

private:
    std::string path_;
    std::string temp_path_;
    int fd_ = -1;
    int slot_ = -1;  // index in the signal handler's list of temporary files
    uint64_t written_ = 0;
};

// Removes every temporary output file still in progress. Async-signal-safe: for a signal
// handler that leaves the process at once.
void remove_pending_outputs();

// Refuses (qllm::Error) when `output` names the same file as `input`, following links.
void check_not_same_file(const std::string& input, const std::string& output);

}  // namespace qllm
