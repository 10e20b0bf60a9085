// Writes the starting corpora of the fuzz targets, one directory per target, under the
// directory given on the command line: small valid GGUF models built in code (the bad-input
// corpus's tiny llama and variants of it), texts, well-formed blocks and rows, logits.
// tools/fuzz.sh adds files from ../shared to the GGUF and tokenizer seeds.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gguf_builder.h"
#include "kernels/types.h"

namespace fs = std::filesystem;
using qllm::test::GgufBuilder;

namespace {

void write(const fs::path& path, const std::vector<uint8_t>& bytes) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

std::vector<uint8_t> bytes_of(const std::vector<float>& v) {
    std::vector<uint8_t> out(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// A tensor of `type` holding a quantized gaussian (rows must fit the type's blocks).
std::vector<uint8_t> quantized(qllm::TensorType type, uint64_t cols, uint64_t rows, uint32_t seed) {
    const auto& t = qllm::reference_table()[size_t(type)];
    const auto values = gaussian(cols * rows, seed, 0.1f);
    std::vector<uint8_t> out(t.row_size(int64_t(cols)) * rows);
    t.from_float(values.data(), out.data(), int64_t(cols * rows));
    return out;
}

// The tiny llama with every matrix converted to `type`.
GgufBuilder tiny_llama_as(qllm::TensorType type) {
    qllm::test::TinyLlamaShape shape;
    shape.n_embd = 32, shape.n_ff = 64, shape.n_head = 2, shape.n_head_kv = 1, shape.n_ctx = 32;
    GgufBuilder g = qllm::test::make_tiny_llama(shape);
    uint32_t seed = 1;
    for (auto& t : g.tensors) {
        if (t.dims.size() != 2) continue;
        t.type = uint32_t(type);
        t.data = quantized(type, t.dims[0], t.dims[1], seed++);
    }
    return g;
}

void gguf_seeds(const fs::path& dir) {
    using T = qllm::TensorType;
    write(dir / "tiny-llama-f32.gguf", qllm::test::make_tiny_llama().build());
    for (T type : {T::F16, T::BF16, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::Q8_0, T::IQ4_NL}) {
        write(dir / ("tiny-llama-" + std::string(qllm::reference_table()[size_t(type)].name) + ".gguf"),
              tiny_llama_as(type).build());
    }
    // Tied embeddings, a v2 header, no tensors at all (a vocabulary-only file).
    GgufBuilder tied = tiny_llama_as(T::Q8_0);
    tied.remove_tensor("output.weight");
    write(dir / "tiny-llama-tied.gguf", tied.build());
    GgufBuilder v2 = tiny_llama_as(T::F16);
    v2.version = 2;
    write(dir / "tiny-llama-v2.gguf", v2.build());
    GgufBuilder vocab_only = qllm::test::make_tiny_llama();
    vocab_only.tensors.clear();
    write(dir / "vocab-only.gguf", vocab_only.build());
}

void tokenizer_seeds(const fs::path& dir) {
    const std::vector<std::string> texts = {
        "Once upon a time, there was a little girl named Lily. She loved to play",
        " leading space,  two spaces,\ttab,\nnewline\r\n and trailing ",
        "12345 3.14159 1,000,000 don't we'll I'M",
        "caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x98\x80 \xD0\x9F\xD1\x80\xD0\xB8",
        "\xFF\xFE bad \xC3 utf8 \xE2\x82 \xED\xA0\x80 \x80\x80",
        "<s>hello</s><unk> <|im_start|>user\nhi<|im_end|><|begin_of_text|>",
        "\xE2\x96\x81" "already" "\xE2\x96\x81" "escaped",
        "int main() { return 0; }  // code\n\n\n",
    };
    for (size_t i = 0; i < texts.size(); ++i) {
        for (uint8_t vocab = 0; vocab < 3; ++vocab) {
            const uint8_t options = uint8_t(vocab << 4 | (i % 8));
            std::vector<uint8_t> bytes = {options};
            bytes.insert(bytes.end(), texts[i].begin(), texts[i].end());
            write(dir / ("text-" + std::to_string(i) + "-" + std::to_string(vocab)), bytes);
        }
    }
}

// Types in the order the kernel and quantize targets index them.
std::vector<qllm::TensorType> types_where(bool (*want)(const qllm::TypeTraits&)) {
    std::vector<qllm::TensorType> out;
    for (uint32_t id = 0; id < qllm::kTensorTypeCount; ++id) {
        if (want(qllm::reference_table()[id])) out.push_back(qllm::TensorType(id));
    }
    return out;
}

void kernel_seeds(const fs::path& dir) {
    const auto types = types_where([](const qllm::TypeTraits& t) { return t.to_float != nullptr; });
    constexpr uint8_t kLength = 63;  // 64 plain values, or 8 blocks
    for (size_t i = 0; i < types.size(); ++i) {
        const auto& t = qllm::reference_table()[size_t(types[i])];
        const int64_t n = t.block_size == 1 ? 64 : t.block_size * 8;
        std::vector<uint8_t> bytes = {uint8_t(i), 0, kLength};
        const auto x = quantized(types[i], uint64_t(n), 1, uint32_t(i));
        bytes.insert(bytes.end(), x.begin(), x.end());
        if (t.vec_dot) {
            const auto y = quantized(t.vec_dot_type, uint64_t(n), 1, uint32_t(100 + i));
            bytes.insert(bytes.end(), y.begin(), y.end());
        }
        for (uint8_t table = 0; table < 3; ++table) {
            bytes[1] = table;
            write(dir / (std::string(t.name) + "-" + std::to_string(table)), bytes);
        }
    }
}

void quantize_seeds(const fs::path& dir) {
    const auto types = types_where([](const qllm::TypeTraits& t) { return t.from_float != nullptr; });
    for (size_t i = 0; i < types.size(); ++i) {
        const auto& t = qllm::reference_table()[size_t(types[i])];
        // Raw gaussian values with gaussian importance (mode 2|4: absolute values)...
        std::vector<uint8_t> raw = {uint8_t(i), 0, 0, 2 | 4};
        const auto x = bytes_of(gaussian(512, uint32_t(i)));
        raw.insert(raw.end(), x.begin(), x.end());
        const auto w = bytes_of(gaussian(512, uint32_t(i + 50)));
        raw.insert(raw.end(), w.begin(), w.end());
        write(dir / (std::string(t.name) + "-gaussian"), raw);
        // ...and one byte per value, mostly small integers with a few special values.
        std::vector<uint8_t> compact = {uint8_t(i), 1, 1, 1};
        for (int j = 0; j < 512; ++j) compact.push_back(uint8_t(j % 37 == 0 ? 0xF0 + j % 16 : j * 7));
        write(dir / (std::string(t.name) + "-special"), compact);
    }
}

void sampler_seeds(const fs::path& dir) {
    // options, then params (compact: temp, top_k, top_p, min_p, repeat, freq, presence, last_n, seed).
    // temperature 0.75, top-k 40, top-p 0.5, min-p off, penalties off, last 64 tokens, seed 7
    const uint8_t defaults[] = {1, 125, 40, 124, 122, 126, 122, 122, 64, 7};
    auto seed = [&](const std::string& name, uint8_t options, std::vector<uint8_t> logits) {
        std::vector<uint8_t> bytes(std::begin(defaults), std::end(defaults));
        bytes[0] = options;
        bytes.insert(bytes.end(), {3, 64, 1, 2, 3, 0x3F});  // recent tokens, vocabulary of 64
        bytes.insert(bytes.end(), logits.begin(), logits.end());
        write(dir / name, bytes);
    };
    std::vector<uint8_t> ramp;
    for (int i = 0; i < 64; ++i) ramp.push_back(uint8_t(90 + i));
    seed("ramp", 1, ramp);
    seed("all-equal", 1 | 2, {122});
    std::vector<uint8_t> specials = ramp;
    for (int i = 0; i < 12; ++i) specials[size_t(5 * i)] = uint8_t(0xF4 + i);
    seed("specials", 1, specials);
    std::vector<uint8_t> greedy(std::begin(defaults), std::end(defaults));
    greedy[1] = 122;  // temperature 0
    greedy.insert(greedy.end(), {0, 64});
    greedy.insert(greedy.end(), ramp.begin(), ramp.end());
    write(dir / "greedy", greedy);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    const fs::path out = argv[1];
    gguf_seeds(out / "fuzz_gguf");
    tokenizer_seeds(out / "fuzz_tokenizer");
    kernel_seeds(out / "fuzz_kernels");
    quantize_seeds(out / "fuzz_quantize");
    sampler_seeds(out / "fuzz_sampler");
    return 0;
}
