// Helpers shared by the verbs: threads, prompt input, memory and interrupt reporting.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "commands.h"
#include "qllm/error.h"
#include "util/output_file.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace qllm::cli {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
    if (g_interrupted.exchange(true)) {  // a second Ctrl-C leaves at once, leaving no partial file
        remove_pending_outputs();
        std::_Exit(130);
    }
}

// Offset of the first byte that is not part of valid UTF-8, or npos. Rejects overlong forms,
// surrogates and code points above U+10FFFF, as the Unicode standard's table 3-7 does.
size_t invalid_utf8_at(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        const int len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (len == 0 || i + size_t(len) > s.size()) return i;
        // The second byte's range depends on the first; the others are plain continuations.
        const auto c1 = static_cast<unsigned char>(s[i + 1]);
        const unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        const unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        if (c1 < lo || c1 > hi) return i;
        for (int k = 2; k < len; ++k) {
            if ((static_cast<unsigned char>(s[i + size_t(k)]) & 0xC0) != 0x80) return i;
        }
        i += size_t(len);
    }
    return std::string::npos;
}

}  // namespace

void add_no_repack_flag(CLI::App* cmd, bool& no_repack) {
    cmd->add_flag("--no-repack", no_repack,
                  "keep the weights as the file has them (no interleaved layouts: slower products, no time spent repacking)");
}

int default_threads() {
    // Physical cores: logical CPUs divided by the SMT width the kernel reports.
    unsigned logical = std::thread::hardware_concurrency();
    std::ifstream smt("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list");
    std::string siblings;
    if (smt >> siblings && (siblings.find(',') != std::string::npos || siblings.find('-') != std::string::npos)) {
        logical /= 2;
    }
    return logical > 0 ? int(logical) : 1;
}

void set_threads(int n) {
    if (n < 1 || n > 1024) fail("thread count must be between 1 and 1024 (got {})", n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

std::string read_prompt(const std::string& prompt, const std::string& file) {
    std::string text = prompt;
    if (!file.empty()) {
        // A FIFO or a device could block or never end: prompts come from regular files.
        std::error_code ec;
        if (!std::filesystem::is_regular_file(file, ec)) fail("{}: not a regular file", file);
        constexpr uintmax_t kMaxPromptBytes = 256u << 20;
        if (std::filesystem::file_size(file, ec) > kMaxPromptBytes) fail("{}: larger than 256 MiB", file);
        std::ifstream in(file, std::ios::binary);
        if (!in) fail("{}: cannot open prompt file", file);
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    if (size_t bad = invalid_utf8_at(text); bad != std::string::npos) {
        fail("{}: invalid UTF-8 at byte {}", file.empty() ? "prompt" : file, bad);
    }
    return text;
}

double peak_rss_mib() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

bool interrupted() { return g_interrupted.load(); }

void clear_interrupted() { g_interrupted.store(false); }

void install_interrupt_handler() { std::signal(SIGINT, on_interrupt); }

}  // namespace qllm::cli
