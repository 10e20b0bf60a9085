// OutputFile: temporary file + rename, with cleanup on error and on SIGINT/SIGTERM.
#include "util/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "qllm/error.h"

namespace qllm {
namespace {

// Temporary files in progress, for the signal handler (which may only call async-signal-safe
// functions: it unlinks the paths and re-raises the signal with the default action).
constexpr int kMaxPending = 8;
std::array<std::atomic<const char*>, kMaxPending> g_pending{};
std::array<std::string, kMaxPending> g_pending_storage;

extern "C" void remove_pending_and_reraise(int sig) {
    remove_pending_outputs();
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

int register_pending(const std::string& path) {
    static std::once_flag installed;
    std::call_once(installed, [] {
        // Keep a handler the program installed itself (e.g. run's SIGINT); chain only defaults.
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
            struct sigaction old {};
            sigaction(sig, nullptr, &old);
            if (old.sa_handler == SIG_DFL) std::signal(sig, remove_pending_and_reraise);
        }
        // Past `ulimit -f`, write() should fail with EFBIG (and be reported) instead of killing us.
        std::signal(SIGXFSZ, SIG_IGN);
    });
    for (int i = 0; i < kMaxPending; ++i) {
        if (g_pending[i].load() == nullptr) {
            g_pending_storage[i] = path;
            g_pending[i].store(g_pending_storage[i].c_str());
            return i;
        }
    }
    return -1;  // too many at once: still safe on errors, just not on signals
}

void unregister_pending(int slot) {
    if (slot >= 0) g_pending[slot].store(nullptr);
}

}  // namespace

void remove_pending_outputs() {
    for (auto& slot : g_pending) {
        if (const char* p = slot.load()) ::unlink(p);
    }
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
    namespace fs = std::filesystem;
    const fs::path target(path_);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::string tmpl = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
    fd_ = ::mkstemp(tmpl.data());
    if (fd_ < 0) fail("{}: cannot create output file in '{}': {}", path_, dir.string(), std::strerror(errno));
    temp_path_ = tmpl;
    slot_ = register_pending(temp_path_);
    ::fchmod(fd_, 0644);
}

OutputFile::~OutputFile() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(temp_path_.c_str());
    }
    unregister_pending(slot_);
}

void OutputFile::write(std::span<const uint8_t> bytes) {
    const uint8_t* p = bytes.data();
    size_t left = bytes.size();
    while (left > 0) {
        const ssize_t n = ::write(fd_, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("{}: write failed: {}", path_, std::strerror(errno));
        }
        p += n;
        left -= size_t(n);
        written_ += uint64_t(n);
    }
}

void OutputFile::pad_to(uint64_t alignment) {
    static const uint8_t zeros[64] = {};
    while (written_ % alignment != 0) {
        write(zeros, std::min<uint64_t>(sizeof(zeros), alignment - written_ % alignment));
    }
}

void OutputFile::commit() {
    if (::fsync(fd_) != 0) fail("{}: cannot flush output: {}", path_, std::strerror(errno));
    if (::close(fd_) != 0) {
        fd_ = -1;
        ::unlink(temp_path_.c_str());
        fail("{}: cannot close output: {}", path_, std::strerror(errno));
    }
    fd_ = -1;
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
        const int err = errno;
        ::unlink(temp_path_.c_str());
        fail("{}: cannot move output into place: {}", path_, std::strerror(err));
    }
    unregister_pending(slot_);
    slot_ = -1;
}

void check_not_same_file(const std::string& input, const std::string& output) {
    std::error_code ec;
    if (std::filesystem::exists(output, ec) && std::filesystem::equivalent(input, output, ec)) {
        fail("{}: output is the same file as the input", output);
    }
}

}  // namespace qllm
