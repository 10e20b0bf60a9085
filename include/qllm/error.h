// qllm::Error: the one exception type library code throws on bad input or failed I/O.
// The CLI turns it into a single "qllm: error: ..." line and exit code 1.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace qllm {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace qllm
