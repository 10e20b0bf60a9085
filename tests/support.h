// Shared test helpers: where ../shared is, and skipping golden tests when it is absent.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace qllm::test {

// QLLM_SHARED_DIR, else ../shared beside the source tree.
inline std::filesystem::path shared_dir() {
    if (const char* env = std::getenv("QLLM_SHARED_DIR"); env && *env) return env;
    return std::filesystem::path(QLLM_SOURCE_DIR).parent_path() / "shared";
}

inline bool golden_required() {
    const char* env = std::getenv("QLLM_REQUIRE_GOLDEN");
    return env && std::string(env) == "1";
}

// The lines of `text`, without their newlines.
inline std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

inline std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A fresh empty directory under the system temp dir, removed by the destructor.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "qllm-test-XXXXXX").string();
        path = mkdtemp(tmpl.data());
    }
    ~TempDir() { std::error_code ec; std::filesystem::remove_all(path, ec); }
    std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

}  // namespace qllm::test

// Skips the test when the golden file is missing, unless QLLM_REQUIRE_GOLDEN=1 (CI), where
// a missing file fails the test.
#define QLLM_REQUIRE_SHARED(path)                                                          \
    do {                                                                                   \
        if (!std::filesystem::exists(path)) {                                              \
            if (::qllm::test::golden_required()) FAIL() << "missing golden file " << (path); \
            GTEST_SKIP() << "golden file not found (set QLLM_SHARED_DIR): " << (path);     \
        }                                                                                  \
    } while (0)
