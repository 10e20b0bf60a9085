// The bad-input corpus: hostile GGUF files (and prompts) made here from a valid tiny llama
// model, each run through the real `qllm` binary. Every case must end with exit code 1 and a
// single "qllm: error: ..." line that names the file and the cause: never a crash, a hang,
// a sanitizer report or exit 0.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gguf/gguf.h"
#include "gguf_builder.h"
#include "model/model.h"
#include "support.h"

extern char** environ;

namespace qllm::test {
namespace {

constexpr auto kTimeout = std::chrono::seconds(20);

// ---- Running the binary ----------------------------------------------------------------------

struct ProcessResult {
    int exit_code = -1;   // when the process exited
    int signal = 0;       // when a signal ended it
    bool timed_out = false;
    std::string out, err;
};

// The child's environment: ours, with sanitizer reports given an exit code of their own
// (UBSan's default is 1, which would look like a clean error exit).
std::vector<std::string> child_environment() {
    std::vector<std::string> env;
    bool asan = false, ubsan = false;
    for (char** e = environ; *e; ++e) {
        std::string var = *e;
        if (var.starts_with("ASAN_OPTIONS=")) asan = true;
        if (var.starts_with("UBSAN_OPTIONS=")) ubsan = true;
        if ((var.starts_with("ASAN_OPTIONS=") || var.starts_with("UBSAN_OPTIONS=")) &&
            var.find("exitcode=") == std::string::npos) {
            var += var.back() == '=' ? "exitcode=99" : ":exitcode=99";
        }
        env.push_back(std::move(var));
    }
    if (!asan) env.emplace_back("ASAN_OPTIONS=exitcode=99");
    if (!ubsan) env.emplace_back("UBSAN_OPTIONS=exitcode=99:print_stacktrace=1");
    return env;
}

// Runs argv with stdin from /dev/null, capturing stdout and stderr; kills it after kTimeout.
ProcessResult run_process(const std::vector<std::string>& args) {
    ProcessResult result;
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        ADD_FAILURE() << "pipe2 failed";
        return result;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);

    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env = child_environment();
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (rc != 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        ADD_FAILURE() << "posix_spawn " << args[0] << " failed: " << std::strerror(rc);
        return result;
    }

    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_fds = 2;
    while (open_fds > 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            result.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        if (poll(fds, 2, int(left.count())) < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buf[4096];
            const ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, size_t(n));
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds) {
        if (f.fd >= 0) close(f.fd);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
    return result;
}

// ---- The corpus --------------------------------------------------------------------------------

// What stands at the model path: the bytes, or something that is not a regular file.
enum class PathKind { File, Fifo, Directory, Missing };

struct Case {
    std::string name;
    std::vector<uint8_t> bytes;  // the model file
    std::string expect;          // substring of the error line; empty for the valid model
    bool info = true;            // `qllm info` must detect it too (no weights needed)
    std::string prompt;          // if set, passed with -f instead of -p x
    PathKind kind = PathKind::File;
};

using Mutation = std::function<void(GgufBuilder&)>;

const std::vector<uint8_t>& valid_bytes() {
    static const std::vector<uint8_t> bytes = make_tiny_llama().build();
    return bytes;
}
const GgufBuilder::Layout& valid_layout() {
    static const GgufBuilder::Layout layout = [] {
        GgufBuilder::Layout l;
        make_tiny_llama().build(&l);
        return l;
    }();
    return layout;
}
std::vector<uint8_t> truncated(uint64_t size) {
    std::vector<uint8_t> b = valid_bytes();
    b.resize(size);
    return b;
}
uint64_t kv_at(std::string_view key) { return valid_layout().kv_begin.at(make_tiny_llama().kv_index(key)); }
uint64_t tensor_at(std::string_view name) {
    return valid_layout().tensor_begin.at(make_tiny_llama().tensor_index(name));
}
// Offset of a key's value: after its u64 length, its text and its u32 type.
uint64_t value_at(std::string_view key) { return kv_at(key) + 8 + key.size() + 4; }

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

std::vector<Case> make_cases() {
    std::vector<Case> cases;
    auto mutate = [&](std::string name, std::string expect, const Mutation& m, bool info = true) {
        GgufBuilder g = make_tiny_llama();
        m(g);
        cases.push_back({std::move(name), g.build(), std::move(expect), info, {}});
    };
    auto raw = [&](std::string name, std::string expect, std::vector<uint8_t> bytes) {
        cases.push_back({std::move(name), std::move(bytes), std::move(expect), true, {}});
    };
    auto prompt = [&](std::string name, std::string expect, std::string text) {
        cases.push_back({std::move(name), valid_bytes(), std::move(expect), false, std::move(text)});
    };
    auto not_a_file = [&](std::string name, std::string expect, PathKind kind) {
        cases.push_back({std::move(name), {}, std::move(expect), true, {}, kind});
    };
    const GgufBuilder::Layout& L = valid_layout();
    const uint64_t n_vocab = tiny_vocab().tokens.size();

    // The control: the unmutated model must run, or every other case proves nothing.
    cases.push_back({"valid_model", valid_bytes(), "", true, {}});

    // Paths that are not GGUF files at all. A FIFO must not block the open (a hang).
    not_a_file("missing_file", "cannot open: No such file or directory", PathKind::Missing);
    not_a_file("directory", "not a regular file", PathKind::Directory);
    not_a_file("fifo", "not a regular file", PathKind::Fifo);

    // Header.
    raw("empty_file", "bad magic", {});
    raw("three_bytes", "bad magic", truncated(3));
    mutate("bad_magic", "bad magic", [](GgufBuilder& g) { g.magic = "GGML"; });
    mutate("version_0", "unsupported GGUF version 0", [](GgufBuilder& g) { g.version = 0; });
    mutate("version_1", "unsupported GGUF version 1", [](GgufBuilder& g) { g.version = 1; });
    mutate("version_99", "unsupported GGUF version 99", [](GgufBuilder& g) { g.version = 99; });
    mutate("absurd_tensor_count", "tensor count 1152921504606846976",
           [](GgufBuilder& g) { g.tensor_count = 1ull << 60; });
    mutate("absurd_kv_count", "metadata count 18446744073709551615", [](GgufBuilder& g) { g.kv_count = kU64Max; });
    mutate("zero_tensor_count", "missing tensor 'token_embd.weight'", [](GgufBuilder& g) { g.tensor_count = 0; });

    // Truncated at every section: header fields, keys, value types, values, arrays, tensor
    // infos, the padding and the data.
    raw("truncated_in_version", "truncated file: version", truncated(6));
    raw("truncated_in_tensor_count", "truncated file: tensor count", truncated(12));
    raw("truncated_in_kv_count", "truncated file: metadata count", truncated(20));
    raw("truncated_after_header", "is larger than the file allows", truncated(L.header_end));
    raw("truncated_in_key", "truncated file: metadata key", truncated(kv_at("tokenizer.ggml.add_eos_token") + 12));
    raw("truncated_in_value_type", "truncated file: metadata value type",
        truncated(value_at("tokenizer.ggml.add_eos_token") - 2));
    raw("truncated_in_string_value", "truncated file: value of tokenizer.ggml.model",
        truncated(value_at("tokenizer.ggml.model") + 10));
    raw("truncated_in_token_strings", "truncated file: element of tokenizer.ggml.tokens",
        truncated(kv_at("tokenizer.ggml.scores") - 3));
    raw("truncated_in_array_header", "truncated file: array length",
        truncated(value_at("tokenizer.ggml.tokens") + 6));
    raw("truncated_in_scores", "array of 300 elements runs past the end",
        truncated(value_at("tokenizer.ggml.scores") + 12 + 600));
    raw("truncated_in_bool_value", "truncated file: value of tokenizer.ggml.add_eos_token",
        truncated(value_at("tokenizer.ggml.add_eos_token")));
    raw("truncated_before_tensor_infos", "truncated file: tensor name", truncated(L.kv_end));
    raw("truncated_in_tensor_name", "truncated file: tensor name", truncated(tensor_at("output.weight") + 12));
    raw("truncated_in_tensor_dims", "truncated file: tensor dimension",
        truncated(tensor_at("output.weight") + 8 + 13 + 4 + 12));
    raw("truncated_in_tensor_type", "truncated file: tensor type",
        truncated(tensor_at("output.weight") + 8 + 13 + 4 + 16 + 2));
    raw("truncated_in_tensor_offset", "truncated file: tensor offset", truncated(L.infos_end - 3));
    raw("truncated_before_data", "past the end", truncated(L.infos_end));
    raw("truncated_in_padding", "past the end", truncated(std::min(L.infos_end + 1, L.data_begin)));
    raw("truncated_in_first_tensor", "tensor 'token_embd.weight' data", truncated(L.data_at[0] + 1000));
    raw("truncated_last_byte", "tensor 'output.weight' data", truncated(L.end - 1));

    // Metadata structure: lengths, counts and type ids that cannot be.
    mutate("key_length_absurd", "metadata key has absurd length",
           [](GgufBuilder& g) { g.find_kv("general.name")->key_length = 1ull << 40; });
    mutate("string_length_past_end", "truncated file: value of general.name",
           [](GgufBuilder& g) { g.set("general.name", kString, ByteWriter().str("x", 1ull << 29).bytes); });
    mutate("string_length_absurd", "value of general.name has absurd length",
           [](GgufBuilder& g) { g.set("general.name", kString, ByteWriter().str("x", kU64Max).bytes); });
    mutate("token_length_past_end", "truncated file: element of tokenizer.ggml.tokens", [](GgufBuilder& g) {
        ByteWriter w;
        const auto tokens = tiny_vocab().tokens;
        w.array_header(kString, tokens.size());
        for (size_t i = 0; i < tokens.size(); ++i) w.str(tokens[i], i == 150 ? std::optional(1ull << 29) : std::nullopt);
        g.set("tokenizer.ggml.tokens", kArray, std::move(w.bytes));
    });
    mutate("string_array_count_past_end", "array of 1099511627776 strings runs past the end", [](GgufBuilder& g) {
        g.set("tokenizer.ggml.tokens", kArray, gguf_value::strings(tiny_vocab().tokens, 1ull << 40));
    });
    mutate("numeric_array_count_past_end", "array of 18446744073709551615 elements runs past the end",
           [](GgufBuilder& g) {
               g.set("tokenizer.ggml.scores", kArray, gguf_value::array(kF32, tiny_vocab().scores, kU64Max));
           });
    mutate("unknown_value_type", "key 'general.name': unknown value type 13",
           [](GgufBuilder& g) { g.find_kv("general.name")->type = 13; });
    mutate("unknown_value_type_huge", "unknown value type 4294967295",
           [](GgufBuilder& g) { g.find_kv("llama.block_count")->type = 0xFFFFFFFFu; });
    mutate("unknown_array_element_type", "unknown array element type 99",
           [](GgufBuilder& g) { g.set("tokenizer.ggml.scores", kArray, gguf_value::array(99, tiny_vocab().scores)); });
    mutate("nested_array", "nested arrays", [](GgufBuilder& g) {
        g.set("tokenizer.ggml.token_type", kArray, gguf_value::array(kArray, tiny_vocab().types));
    });
    mutate("invalid_bool", "invalid bool value 2",
           [](GgufBuilder& g) { g.set("tokenizer.ggml.add_bos_token", kBool, gguf_value::scalar<uint8_t>(2)); });
    mutate("empty_key", "empty key", [](GgufBuilder& g) { g.find_kv("general.name")->key.clear(); });
    mutate("duplicate_key", "duplicate metadata key 'llama.block_count'", [](GgufBuilder& g) {
        g.kv.push_back(*g.find_kv("llama.block_count"));
    });
    mutate("alignment_not_power_of_two", "general.alignment = 24 is not a power of two",
           [](GgufBuilder& g) { g.set_u32("general.alignment", 24); });
    mutate("alignment_zero", "general.alignment = 0 is not a power of two",
           [](GgufBuilder& g) { g.set_u32("general.alignment", 0); });
    mutate("alignment_wrong_type", "general.alignment must be u32",
           [](GgufBuilder& g) { g.set_u64("general.alignment", 32); });

    // Tensor infos.
    auto tensor = [](GgufBuilder& g, std::string_view name) { return g.find_tensor(name); };
    mutate("unknown_tensor_type", "tensor 'token_embd.weight' has unknown type id 4",
           [&](GgufBuilder& g) { tensor(g, "token_embd.weight")->type = 4; });
    // Ids past the file types name qllm's in-memory layouts (Q4_0_R16 ...): never valid in a file.
    mutate("interleaved_layout_type", "tensor 'output.weight' has unknown type id 40",
           [&](GgufBuilder& g) { tensor(g, "output.weight")->type = uint32_t(TensorType::Q4_0_R16); });
    mutate("unknown_tensor_type_huge", "tensor 'output.weight' has unknown type id 2147483647",
           [&](GgufBuilder& g) { tensor(g, "output.weight")->type = 0x7FFFFFFF; });
    mutate("five_dims", "tensor 'blk.0.attn_q.weight' has 5 dimensions", [&](GgufBuilder& g) {
        auto* t = tensor(g, "blk.0.attn_q.weight");
        t->dims = {64, 64, 1, 1, 1};
    });
    mutate("zero_dims", "tensor 'output_norm.weight' has 0 dimensions", [&](GgufBuilder& g) {
        tensor(g, "output_norm.weight")->dims.clear();
    });
    mutate("dim_count_huge", "has 4294967295 dimensions",
           [&](GgufBuilder& g) { tensor(g, "output_norm.weight")->n_dims = 0xFFFFFFFFu; });
    mutate("zero_dimension", "tensor 'blk.0.attn_k.weight' dimension 1 is 0",
           [&](GgufBuilder& g) { tensor(g, "blk.0.attn_k.weight")->dims = {64, 0}; });
    mutate("dimension_above_int64", "dimension 0 is 9223372036854775808",
           [&](GgufBuilder& g) { tensor(g, "blk.0.attn_k.weight")->dims = {1ull << 63, 1}; });
    mutate("dimension_product_overflows", "has too many elements",
           [&](GgufBuilder& g) { tensor(g, "blk.0.attn_v.weight")->dims = {1ull << 32, 1ull << 32, 1ull << 32}; });
    mutate("byte_size_overflows", "byte size overflows",
           [&](GgufBuilder& g) { tensor(g, "blk.0.attn_v.weight")->dims = {1ull << 31, 1ull << 31}; });
    mutate("row_not_multiple_of_block", "row length 64 is not a multiple of the q4_K block size 256",
           [&](GgufBuilder& g) { tensor(g, "blk.0.ffn_up.weight")->type = 12; });
    mutate("row_not_multiple_of_q8_0_block", "row length 48 is not a multiple of the q8_0 block size 32",
           [&](GgufBuilder& g) {
               auto* t = tensor(g, "blk.0.attn_norm.weight");
               t->type = 8;
               t->dims = {48};
           });
    mutate("offset_past_end", "tensor 'output.weight' data", [&](GgufBuilder& g) {
        const uint64_t data_size = valid_layout().end - valid_layout().data_begin;
        tensor(g, "output.weight")->offset = (data_size + 31) / 32 * 32;
    });
    mutate("offset_huge", "tensor 'blk.0.ffn_norm.weight' data (offset 18446744073709551584",
           [&](GgufBuilder& g) { tensor(g, "blk.0.ffn_norm.weight")->offset = kU64Max - 31; });
    mutate("data_runs_past_end", "tensor 'output.weight' data", [&](GgufBuilder& g) {
        tensor(g, "output.weight")->offset = valid_layout().data_at.back() - valid_layout().data_begin + 32;
    });
    mutate("misaligned_offset", "tensor 'blk.0.attn_q.weight' offset", [&](GgufBuilder& g) {
        tensor(g, "blk.0.attn_q.weight")->offset = valid_layout().data_at[2] - valid_layout().data_begin + 4;
    });
    mutate("overlapping_tensors", "overlap", [&](GgufBuilder& g) {
        tensor(g, "blk.0.attn_k.weight")->offset = valid_layout().data_at[2] - valid_layout().data_begin;
    });
    mutate("partly_overlapping_tensors", "tensors 'blk.0.attn_q.weight' and 'blk.0.attn_k.weight' overlap",
           [&](GgufBuilder& g) {
               tensor(g, "blk.0.attn_k.weight")->offset = valid_layout().data_at[2] - valid_layout().data_begin + 64;
           });
    mutate("duplicate_tensor_name", "duplicate tensor name 'blk.0.ffn_gate.weight'",
           [&](GgufBuilder& g) { tensor(g, "blk.0.ffn_up.weight")->name = "blk.0.ffn_gate.weight"; });
    mutate("tensor_name_absurd_length", "tensor name has absurd length",
           [&](GgufBuilder& g) { tensor(g, "output.weight")->name_length = 1ull << 40; });

    // Required metadata: missing or of the wrong type.
    mutate("missing_architecture", "missing required key 'general.architecture'",
           [](GgufBuilder& g) { g.remove_kv("general.architecture"); });
    mutate("missing_embedding_length", "missing required key 'llama.embedding_length'",
           [](GgufBuilder& g) { g.remove_kv("llama.embedding_length"); });
    mutate("missing_tokenizer_model", "missing required key 'tokenizer.ggml.model'",
           [](GgufBuilder& g) { g.remove_kv("tokenizer.ggml.model"); });
    mutate("missing_tokens", "missing required key 'tokenizer.ggml.tokens'",
           [](GgufBuilder& g) { g.remove_kv("tokenizer.ggml.tokens"); });
    mutate("architecture_wrong_type", "key 'general.architecture' has type u32, expected string",
           [](GgufBuilder& g) { g.set_u32("general.architecture", 1); });
    mutate("embedding_length_wrong_type", "key 'llama.embedding_length' has type string",
           [](GgufBuilder& g) { g.set_string("llama.embedding_length", "64"); });
    mutate("block_count_negative", "key 'llama.block_count' is negative",
           [](GgufBuilder& g) { g.set_i32("llama.block_count", -1); });
    mutate("rms_eps_wrong_type", "key 'llama.attention.layer_norm_rms_epsilon' has type u32, expected f32",
           [](GgufBuilder& g) { g.set_u32("llama.attention.layer_norm_rms_epsilon", 1); });
    mutate("add_bos_wrong_type", "key 'tokenizer.ggml.add_bos_token' has type u8, expected bool",
           [](GgufBuilder& g) { g.set("tokenizer.ggml.add_bos_token", kU8, gguf_value::scalar<uint8_t>(1)); });
    mutate("unsupported_architecture", "unsupported architecture 'gptj'",
           [](GgufBuilder& g) { g.set_string("general.architecture", "gptj"); });
    mutate("unsupported_tokenizer_model", "unsupported tokenizer model 'bert'",
           [](GgufBuilder& g) { g.set_string("tokenizer.ggml.model", "bert"); });

    // Tensors the architecture needs, and hyperparameters that contradict the tensor shapes.
    mutate("missing_output_norm", "missing tensor 'output_norm.weight'",
           [](GgufBuilder& g) { g.remove_tensor("output_norm.weight"); });
    mutate("missing_ffn_down", "missing tensor 'blk.0.ffn_down.weight'",
           [](GgufBuilder& g) { g.remove_tensor("blk.0.ffn_down.weight"); });
    mutate("embedding_length_mismatch", "tensor 'token_embd.weight' has shape [64, 300], expected [128, 300]",
           [](GgufBuilder& g) { g.set_u32("llama.embedding_length", 128); });
    mutate("head_count_kv_mismatch", "tensor 'blk.0.attn_k.weight' has shape [64, 32], expected [64, 64]",
           [](GgufBuilder& g) { g.set_u32("llama.attention.head_count_kv", 4); });
    mutate("feed_forward_length_mismatch", "tensor 'blk.0.ffn_gate.weight' has shape [64, 128], expected [64, 256]",
           [](GgufBuilder& g) { g.set_u32("llama.feed_forward_length", 256); });
    mutate("block_count_too_large", "missing tensor 'blk.1.attn_norm.weight'",
           [](GgufBuilder& g) { g.set_u32("llama.block_count", 2); });
    mutate("block_count_zero", "llama.block_count = 0 is out of range",
           [](GgufBuilder& g) { g.set_u32("llama.block_count", 0); });
    mutate("block_count_absurd", "llama.block_count = 1099511627776 is out of range",
           [](GgufBuilder& g) { g.set_u64("llama.block_count", 1ull << 40); });
    mutate("head_count_not_dividing_embedding", "embedding_length 64 is not a multiple of head_count 6",
           [](GgufBuilder& g) { g.set_u32("llama.attention.head_count", 6); });
    mutate("head_count_kv_not_dividing", "is not a multiple of head_count_kv 3",
           [](GgufBuilder& g) { g.set_u32("llama.attention.head_count_kv", 3); });
    mutate("rope_dims_odd", "rope.dimension_count 15 must be even",
           [](GgufBuilder& g) { g.set_u32("llama.rope.dimension_count", 15); });
    mutate("rms_eps_negative", "must be positive",
           [](GgufBuilder& g) { g.set_f32("llama.attention.layer_norm_rms_epsilon", -1.0f); });
    mutate("rope_base_nan", "must be positive",
           [](GgufBuilder& g) { g.set_f32("llama.rope.freq_base", std::nanf("")); });
    mutate("rope_base_infinite", "must be positive finite numbers",
           [](GgufBuilder& g) { g.set_f32("llama.rope.freq_base", INFINITY); });
    mutate("rope_base_f64_overflows_f32", "must be positive finite numbers",
           [](GgufBuilder& g) { g.set("llama.rope.freq_base", kF64, gguf_value::scalar(1e300)); });
    mutate("rms_eps_infinite", "must be positive finite numbers",
           [](GgufBuilder& g) { g.set_f32("llama.attention.layer_norm_rms_epsilon", INFINITY); });
    mutate("rope_scaling_factor_tiny", "must be positive finite numbers", [](GgufBuilder& g) {
        g.set_string("llama.rope.scaling.type", "linear");
        g.set_f32("llama.rope.scaling.factor", 1e-40f);  // 1 / factor overflows to infinity
    });
    mutate("name_wrong_type", "key 'general.name' has type u32, expected string",
           [](GgufBuilder& g) { g.set_u32("general.name", 5); });
    mutate("vocab_size_mismatch", "llama.vocab_size = 301 but the vocabulary has 300 tokens",
           [](GgufBuilder& g) { g.set_u32("llama.vocab_size", 301); });
    mutate("vocabulary_shorter_than_embeddings", "tensor 'token_embd.weight' has shape [64, 300], expected [64, 299]",
           [](GgufBuilder& g) {
               TinyVocab v = tiny_vocab();
               v.tokens.pop_back(), v.scores.pop_back(), v.types.pop_back();
               g.set_strings("tokenizer.ggml.tokens", v.tokens);
               g.set_f32s("tokenizer.ggml.scores", v.scores);
               g.set_i32s("tokenizer.ggml.token_type", v.types);
               g.remove_kv("llama.vocab_size");
           });
    mutate("norm_not_f32", "tensor 'output_norm.weight' must be f32, found f16", [](GgufBuilder& g) {
        auto* t = g.find_tensor("output_norm.weight");
        t->type = 1;
        t->data.resize(t->data.size() / 2);
    });
    // Found only when the weights are about to be used, so `info` rightly accepts it.
    mutate("weight_type_without_kernel", "tensor 'token_embd.weight' has type i32, which this build cannot compute",
           [](GgufBuilder& g) { g.find_tensor("token_embd.weight")->type = 26; }, /*info=*/false);

    // The vocabulary: special ids, token arrays of the wrong element type or length.
    mutate("bos_out_of_range", "tokenizer.ggml.bos_token_id = 300 is out of range",
           [&](GgufBuilder& g) { g.set_u32("tokenizer.ggml.bos_token_id", uint32_t(n_vocab)); });
    mutate("eos_out_of_range", "tokenizer.ggml.eos_token_id = 2147483647 is out of range",
           [](GgufBuilder& g) { g.set_u32("tokenizer.ggml.eos_token_id", 0x7FFFFFFF); });
    mutate("unk_out_of_range", "tokenizer.ggml.unknown_token_id = 1099511627776 is out of range",
           [](GgufBuilder& g) { g.set_u64("tokenizer.ggml.unknown_token_id", 1ull << 40); });
    mutate("bos_negative", "key 'tokenizer.ggml.bos_token_id' is negative",
           [](GgufBuilder& g) { g.set_i32("tokenizer.ggml.bos_token_id", -2); });
    mutate("bos_none_but_added", "add_bos_token is true but the vocabulary has no BOS token",
           [](GgufBuilder& g) { g.set_i32("tokenizer.ggml.bos_token_id", -1); });
    mutate("tokens_wrong_element_type", "key 'tokenizer.ggml.tokens' has type array of u32, expected array of string",
           [&](GgufBuilder& g) {
               g.set("tokenizer.ggml.tokens", kArray, gguf_value::array(kU32, std::vector<uint32_t>(n_vocab, 7)));
           });
    mutate("tokens_not_an_array", "key 'tokenizer.ggml.tokens' has type string, expected array of string",
           [](GgufBuilder& g) { g.set_string("tokenizer.ggml.tokens", "abc"); });
    mutate("scores_wrong_element_type", "key 'tokenizer.ggml.scores' has type array of string, expected array of f32",
           [](GgufBuilder& g) { g.set_strings("tokenizer.ggml.scores", tiny_vocab().tokens); });
    mutate("token_type_wrong_element_type", "key 'tokenizer.ggml.token_type' has type array of f32",
           [](GgufBuilder& g) { g.set_f32s("tokenizer.ggml.token_type", tiny_vocab().scores); });
    mutate("scores_too_short", "tokenizer.ggml.scores has 299 entries but tokenizer.ggml.tokens has 300",
           [](GgufBuilder& g) {
               auto s = tiny_vocab().scores;
               s.pop_back();
               g.set_f32s("tokenizer.ggml.scores", s);
           });
    mutate("token_type_too_long", "tokenizer.ggml.token_type has 301 entries but tokenizer.ggml.tokens has 300",
           [](GgufBuilder& g) {
               auto t = tiny_vocab().types;
               t.push_back(1);
               g.set_i32s("tokenizer.ggml.token_type", t);
           });
    mutate("token_type_invalid", "tokenizer.ggml.token_type[5] = 7 is not a token type", [](GgufBuilder& g) {
        auto t = tiny_vocab().types;
        t[5] = 7;
        g.set_i32s("tokenizer.ggml.token_type", t);
    });
    mutate("duplicate_token", "duplicate token 'ed'", [](GgufBuilder& g) {
        auto t = tiny_vocab().tokens;
        t[t.size() - 2] = t.back();
        g.set_strings("tokenizer.ggml.tokens", t);
    });
    mutate("byte_token_bad_text", "is a byte token but its text '<byte>' is not of the form <0xXX>",
           [](GgufBuilder& g) {
               auto t = tiny_vocab().tokens;
               t[3] = "<byte>";
               g.set_strings("tokenizer.ggml.tokens", t);
           });
    mutate("gpt2_without_merges", "tokenizer.ggml.merges is missing or empty",
           [](GgufBuilder& g) { g.set_string("tokenizer.ggml.model", "gpt2"); });
    mutate("merges_wrong_type", "key 'tokenizer.ggml.merges' has type array of i32, expected array of string",
           [](GgufBuilder& g) { g.set_i32s("tokenizer.ggml.merges", {1, 2}); });
    mutate("empty_vocabulary", "tokenizer.ggml.tokens is empty", [](GgufBuilder& g) {
        g.set_strings("tokenizer.ggml.tokens", {});
        g.set_f32s("tokenizer.ggml.scores", {});
        g.set_i32s("tokenizer.ggml.token_type", {});
    });

    // Strings from the file are quoted in errors: a newline in one must not split the line.
    mutate("architecture_with_newline", "unsupported architecture 'gpt\\nj'",
           [](GgufBuilder& g) { g.set_string("general.architecture", "gpt\nj"); });
    mutate("key_with_newline", "duplicate metadata key 'dup\\nkey'", [](GgufBuilder& g) {
        g.set_u32("dup\nkey", 1);
        g.kv.push_back(g.kv.back());
    });
    mutate("tensor_name_with_control_chars", "tensor 'out\\r\\x01put' has unknown type id 99", [](GgufBuilder& g) {
        auto* t = g.find_tensor("output.weight");
        t->name = "out\r\x01put";
        t->type = 99;
    });
    mutate("token_with_newline", "duplicate token 'a\\nb'", [](GgufBuilder& g) {
        auto t = tiny_vocab().tokens;
        t[298] = t[299] = "a\nb";
        g.set_strings("tokenizer.ggml.tokens", t);
    });

    // Prompts that are not UTF-8 (read with -f); the model itself is valid.
    prompt("prompt_invalid_byte", "invalid UTF-8 at byte 1", "a\xFF" "b");
    prompt("prompt_truncated_sequence", "invalid UTF-8 at byte 1", "x\xE2\x96");
    prompt("prompt_lone_continuation", "invalid UTF-8 at byte 0", "\x80xyz");
    prompt("prompt_overlong", "invalid UTF-8 at byte 2", "ab\xC0\xAF");
    prompt("prompt_surrogate", "invalid UTF-8 at byte 1", "a\xED\xA0\x80");
    prompt("prompt_overlong_three_bytes", "invalid UTF-8 at byte 1", "a\xE0\x80\xAF");
    prompt("prompt_above_u10ffff", "invalid UTF-8 at byte 1", "a\xF4\x90\x80\x80");
    prompt("prompt_lead_byte_f5", "invalid UTF-8 at byte 1", "a\xF5\x80\x80\x80");
    return cases;
}

const std::vector<Case>& corpus() {
    static const std::vector<Case> cases = make_cases();
    return cases;
}

// Exit code exactly 1, nothing on stdout, and stderr exactly one error line naming the file
// and the cause. Anything else (a crash, a sanitizer report, a log line) fails.
void expect_one_error(const ProcessResult& r, const std::string& what, const std::string& path,
                      const std::string& expect) {
    SCOPED_TRACE(what);
    ASSERT_FALSE(r.timed_out) << "hang: killed after " << kTimeout.count() << " s\nstderr:\n" << r.err;
    ASSERT_EQ(r.signal, 0) << "crashed with signal " << r.signal << "\nstderr:\n" << r.err;
    EXPECT_EQ(r.exit_code, 1) << "stderr:\n" << r.err;
    EXPECT_EQ(r.out, "") << "stdout must stay empty on an error";
    const std::vector<std::string> lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << "expected exactly one stderr line, got:\n" << r.err;
    const std::string& line = lines[0];
    EXPECT_TRUE(line.starts_with("qllm: error: ")) << line;
    EXPECT_NE(line.find(expect), std::string::npos) << "expected '" << expect << "' in:\n" << line;
    EXPECT_NE(line.find(path), std::string::npos) << "the error should name the file " << path << ":\n" << line;
}

// Writes the case's model (and prompt) to a fresh directory and runs `qllm run`, then `qllm info`.
void check_case(const Case& c) {
    TempDir dir;
    const std::string model = (dir / (c.name + ".gguf")).string();
    if (c.kind == PathKind::File) {
        std::ofstream out(model, std::ios::binary);
        out.write(reinterpret_cast<const char*>(c.bytes.data()), std::streamsize(c.bytes.size()));
        ASSERT_TRUE(out.good());
    } else if (c.kind == PathKind::Fifo) {
        ASSERT_EQ(mkfifo(model.c_str(), 0600), 0) << std::strerror(errno);
    } else if (c.kind == PathKind::Directory) {
        std::filesystem::create_directory(model);
    }
    std::vector<std::string> args = {QLLM_BINARY, "run", "-m", model, "-n", "1"};
    std::string named = model;
    if (!c.prompt.empty()) {
        named = (dir / "prompt.txt").string();
        std::ofstream(named, std::ios::binary) << c.prompt;
        args.insert(args.end(), {"-f", named});
    } else {
        args.insert(args.end(), {"-p", "x"});
    }

    const ProcessResult run = run_process(args);
    if (c.expect.empty()) {
        // The control case: a clean run, no error, no sanitizer report.
        ASSERT_FALSE(run.timed_out) << "hang";
        EXPECT_EQ(run.signal, 0) << run.err;
        EXPECT_EQ(run.exit_code, 0) << run.err;
        EXPECT_EQ(run.err.find("qllm: error"), std::string::npos) << run.err;
        EXPECT_EQ(run.err.find("Sanitizer"), std::string::npos) << run.err;
        EXPECT_EQ(run.err.find("runtime error"), std::string::npos) << run.err;
        const ProcessResult info = run_process({QLLM_BINARY, "info", model});
        EXPECT_EQ(info.exit_code, 0) << info.err;
        EXPECT_NE(info.out.find("llama"), std::string::npos) << info.out;
        EXPECT_EQ(info.err, "");
        return;
    }
    expect_one_error(run, "qllm run", named, c.expect);
    if (c.info) expect_one_error(run_process({QLLM_BINARY, "info", model}), "qllm info", model, c.expect);
}

class BadInputCase : public testing::TestWithParam<size_t> {};
TEST_P(BadInputCase, FailsWithOneErrorLine) { check_case(corpus()[GetParam()]); }
INSTANTIATE_TEST_SUITE_P(BadInput, BadInputCase, testing::Range<size_t>(0, corpus().size()),
                         [](const testing::TestParamInfo<size_t>& info) { return corpus()[info.param].name; });

TEST(BadInputCorpus, IsLargeAndStartsWithTheValidModel) {
    EXPECT_GE(corpus().size(), 46u);
    EXPECT_EQ(corpus()[0].name, "valid_model");
    EXPECT_TRUE(corpus()[0].expect.empty());
    for (size_t i = 1; i < corpus().size(); ++i) EXPECT_FALSE(corpus()[i].expect.empty()) << corpus()[i].name;
}

// The builder itself: the valid model reads back through the project's reader exactly as laid
// out, so a failure in a mutated case is about the mutation, not the serializer.
TEST(BadInputCorpus, BuilderOutputReadsBack) {
    const GgufBuilder built = make_tiny_llama();
    const GgufBuilder::Layout& l = valid_layout();
    EXPECT_EQ(l.end, valid_bytes().size());
    TempDir dir;
    const std::string path = (dir / "valid.gguf").string();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(valid_bytes().data()), std::streamsize(valid_bytes().size()));

    const gguf::File f(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.data_offset(), l.data_begin);
    ASSERT_EQ(f.metadata().size(), built.kv.size());
    for (size_t i = 0; i < built.kv.size(); ++i) EXPECT_EQ(f.metadata()[i].first, built.kv[i].key);
    ASSERT_EQ(f.tensors().size(), built.tensors.size());
    for (size_t i = 0; i < built.tensors.size(); ++i) {
        const auto& t = f.tensors()[i];
        EXPECT_EQ(t.name, built.tensors[i].name);
        EXPECT_EQ(t.size, built.tensors[i].data.size());
        EXPECT_EQ(std::memcmp(t.data, built.tensors[i].data.data(), t.size), 0) << t.name;
        EXPECT_EQ(f.data_offset() + t.offset, l.data_at[i]);
    }
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 300u);

    const auto model = Model::load(path);
    EXPECT_EQ(model->hparams().n_vocab, 300);
    EXPECT_EQ(model->hparams().head_dim, 16);
    EXPECT_EQ(model->vocab().bos, 1);
}

}  // namespace
}  // namespace qllm::test
