// A test-only GGUF serializer that writes exactly what it is told, including what no valid
// file holds: every count, length, type id, dimension and offset can be overridden. It is
// deliberately independent of gguf::Writer, whose job is to refuse to write such files.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qllm::test {

// GGUF metadata value type ids, as on disk.
enum GgufValueType : uint32_t {
    kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
    kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

// Little-endian byte sink (the tests only run on little-endian hosts, like the loader).
struct ByteWriter {
    std::vector<uint8_t> bytes;

    template <typename T>
    ByteWriter& put(T v) {
        const size_t at = bytes.size();
        bytes.resize(at + sizeof(T));
        std::memcpy(bytes.data() + at, &v, sizeof(T));
        return *this;
    }
    ByteWriter& raw(std::span<const uint8_t> b) {
        bytes.insert(bytes.end(), b.begin(), b.end());
        return *this;
    }
    ByteWriter& text(std::string_view s) {
        bytes.insert(bytes.end(), s.begin(), s.end());
        return *this;
    }
    // A GGUF string: u64 length (overridable), then the bytes.
    ByteWriter& str(std::string_view s, std::optional<uint64_t> length = std::nullopt) {
        put<uint64_t>(length.value_or(s.size()));
        return text(s);
    }
    // An array header: element type and element count.
    ByteWriter& array_header(uint32_t elem_type, uint64_t count) {
        put<uint32_t>(elem_type);
        return put<uint64_t>(count);
    }
};

// Encoded metadata values: the bytes that follow a key's u32 type id.
namespace gguf_value {
template <typename T>
inline std::vector<uint8_t> scalar(T v) { return ByteWriter().put(v).bytes; }
inline std::vector<uint8_t> str(std::string_view s) { return ByteWriter().str(s).bytes; }
inline std::vector<uint8_t> strings(const std::vector<std::string>& v,
                                    std::optional<uint64_t> count = std::nullopt) {
    ByteWriter w;
    w.array_header(kString, count.value_or(v.size()));
    for (const auto& s : v) w.str(s);
    return w.bytes;
}
template <typename T>
inline std::vector<uint8_t> array(uint32_t elem_type, const std::vector<T>& v,
                                  std::optional<uint64_t> count = std::nullopt) {
    ByteWriter w;
    w.array_header(elem_type, count.value_or(v.size()));
    for (const T& x : v) w.put(x);
    return w.bytes;
}
}  // namespace gguf_value

class GgufBuilder {
public:
    struct Kv {
        std::string key;
        std::optional<uint64_t> key_length;  // written instead of key.size()
        uint32_t type = kU32;
        std::vector<uint8_t> value;          // encoded value (see gguf_value)
    };
    struct Tensor {
        std::string name;
        std::optional<uint64_t> name_length;  // written instead of name.size()
        uint32_t type = 0;                    // tensor type id (0 = F32)
        std::vector<uint64_t> dims;           // innermost first
        std::optional<uint32_t> n_dims;       // written instead of dims.size()
        std::optional<uint64_t> offset;       // written instead of the laid-out offset
        std::vector<uint8_t> data;            // stored in the data section, aligned
    };
    // Where each part landed in the last build(), for truncating "at every section".
    struct Layout {
        uint64_t header_end = 0;              // after magic, version and the two counts
        std::vector<uint64_t> kv_begin;       // per metadata entry
        uint64_t kv_end = 0;
        std::vector<uint64_t> tensor_begin;   // per tensor info
        uint64_t infos_end = 0;
        uint64_t data_begin = 0;              // aligned start of the data section
        std::vector<uint64_t> data_at;        // absolute file offset of each tensor's bytes
        uint64_t end = 0;
    };

    std::string magic = "GGUF";
    uint32_t version = 3;
    std::optional<uint64_t> tensor_count;  // written instead of tensors.size()
    std::optional<uint64_t> kv_count;      // written instead of kv.size()
    uint64_t alignment = 32;               // layout only: general.alignment is an ordinary key
    std::vector<Kv> kv;
    std::vector<Tensor> tensors;

    // Replaces the value of `key` in place, or appends it.
    GgufBuilder& set(const std::string& key, uint32_t type, std::vector<uint8_t> value) {
        if (Kv* e = find_kv(key)) {
            e->type = type;
            e->value = std::move(value);
        } else {
            kv.push_back({key, std::nullopt, type, std::move(value)});
        }
        return *this;
    }
    GgufBuilder& set_u32(const std::string& key, uint32_t v) { return set(key, kU32, gguf_value::scalar(v)); }
    GgufBuilder& set_i32(const std::string& key, int32_t v) { return set(key, kI32, gguf_value::scalar(v)); }
    GgufBuilder& set_u64(const std::string& key, uint64_t v) { return set(key, kU64, gguf_value::scalar(v)); }
    GgufBuilder& set_f32(const std::string& key, float v) { return set(key, kF32, gguf_value::scalar(v)); }
    GgufBuilder& set_bool(const std::string& key, bool v) { return set(key, kBool, gguf_value::scalar<uint8_t>(v)); }
    GgufBuilder& set_string(const std::string& key, std::string_view v) { return set(key, kString, gguf_value::str(v)); }
    GgufBuilder& set_strings(const std::string& key, const std::vector<std::string>& v) {
        return set(key, kArray, gguf_value::strings(v));
    }
    GgufBuilder& set_f32s(const std::string& key, const std::vector<float>& v) {
        return set(key, kArray, gguf_value::array(kF32, v));
    }
    GgufBuilder& set_i32s(const std::string& key, const std::vector<int32_t>& v) {
        return set(key, kArray, gguf_value::array(kI32, v));
    }

    Kv* find_kv(std::string_view key) {
        for (auto& e : kv) {
            if (e.key == key) return &e;
        }
        return nullptr;
    }
    size_t kv_index(std::string_view key) const {
        for (size_t i = 0; i < kv.size(); ++i) {
            if (kv[i].key == key) return i;
        }
        return kv.size();
    }
    void remove_kv(std::string_view key) { std::erase_if(kv, [&](const Kv& e) { return e.key == key; }); }

    Tensor* find_tensor(std::string_view name) {
        for (auto& t : tensors) {
            if (t.name == name) return &t;
        }
        return nullptr;
    }
    size_t tensor_index(std::string_view name) const {
        for (size_t i = 0; i < tensors.size(); ++i) {
            if (tensors[i].name == name) return i;
        }
        return tensors.size();
    }
    void remove_tensor(std::string_view name) {
        std::erase_if(tensors, [&](const Tensor& t) { return t.name == name; });
    }
    void add_tensor(std::string name, uint32_t type, std::vector<uint64_t> dims, std::vector<uint8_t> data) {
        tensors.push_back({std::move(name), std::nullopt, type, std::move(dims), std::nullopt, std::nullopt,
                           std::move(data)});
    }

    // Serializes the file. Tensor bytes are laid out back to back at multiples of `alignment`
    // whatever offsets the infos claim, so a wrong offset never changes the file's size.
    std::vector<uint8_t> build(Layout* layout_out = nullptr) const {
        Layout layout;
        ByteWriter w;
        w.text(magic);
        w.put<uint32_t>(version);
        w.put<uint64_t>(tensor_count.value_or(tensors.size()));
        w.put<uint64_t>(kv_count.value_or(kv.size()));
        layout.header_end = w.bytes.size();

        for (const Kv& e : kv) {
            layout.kv_begin.push_back(w.bytes.size());
            w.str(e.key, e.key_length);
            w.put<uint32_t>(e.type);
            w.raw(e.value);
        }
        layout.kv_end = w.bytes.size();

        std::vector<uint64_t> offsets;
        uint64_t next = 0;
        for (const Tensor& t : tensors) {
            offsets.push_back(next);
            next = align(next + t.data.size());
        }
        for (size_t i = 0; i < tensors.size(); ++i) {
            const Tensor& t = tensors[i];
            layout.tensor_begin.push_back(w.bytes.size());
            w.str(t.name, t.name_length);
            w.put<uint32_t>(t.n_dims.value_or(uint32_t(t.dims.size())));
            for (uint64_t d : t.dims) w.put<uint64_t>(d);
            w.put<uint32_t>(t.type);
            w.put<uint64_t>(t.offset.value_or(offsets[i]));
        }
        layout.infos_end = w.bytes.size();

        layout.data_begin = align(w.bytes.size());
        w.bytes.resize(layout.data_begin, 0);
        for (size_t i = 0; i < tensors.size(); ++i) {
            w.bytes.resize(layout.data_begin + offsets[i], 0);
            layout.data_at.push_back(w.bytes.size());
            w.raw(tensors[i].data);
        }
        layout.end = w.bytes.size();
        if (layout_out) *layout_out = std::move(layout);
        return std::move(w.bytes);
    }

private:
    uint64_t align(uint64_t n) const { return (n + alignment - 1) / alignment * alignment; }
};

// ---- A valid tiny llama model ----------------------------------------------------------------

struct TinyLlamaShape {
    uint32_t n_embd = 64, n_ff = 128, n_head = 4, n_head_kv = 2, n_layer = 1, n_ctx = 128;
};

// f32 weights from a fixed LCG: small values, so the forward pass stays finite.
inline std::vector<uint8_t> tiny_f32_tensor(size_t n, uint32_t seed, float scale) {
    std::vector<float> v(n);
    uint32_t s = seed * 2654435761u + 12345u;
    for (float& x : v) {
        s = s * 1664525u + 1013904223u;
        x = scale * (float(s >> 8) / float(1u << 24) - 0.5f);
    }
    std::vector<uint8_t> out(n * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

inline std::vector<uint8_t> tiny_ones(size_t n) {
    const std::vector<float> v(n, 1.0f);
    std::vector<uint8_t> out(n * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

// SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then 41 pieces (300 tokens).
struct TinyVocab {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;  // tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control, 6 byte
};

inline TinyVocab tiny_vocab() {
    TinyVocab v;
    auto add = [&](std::string text, float score, int32_t type) {
        v.tokens.push_back(std::move(text));
        v.scores.push_back(score);
        v.types.push_back(type);
    };
    add("<unk>", 0.0f, 2);
    add("<s>", 0.0f, 3);
    add("</s>", 0.0f, 3);
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", 0.0f, 6);
    const std::string space = "\xE2\x96\x81";  // U+2581, SentencePiece's space
    std::vector<std::string> pieces = {space};
    for (char c : std::string_view("etaoinshrdlucmfwypvbgkjqxz")) pieces.emplace_back(1, c);
    for (const char* p : {"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "the", "ing", "ion", "ed"}) {
        pieces.emplace_back(p);
    }
    float score = -1.0f;
    for (auto& p : pieces) add(std::move(p), score--, 1);
    return v;
}

inline GgufBuilder make_tiny_llama(const TinyLlamaShape& s = {}) {
    GgufBuilder g;
    const TinyVocab vocab = tiny_vocab();
    const auto n_vocab = uint64_t(vocab.tokens.size());
    const uint32_t head_dim = s.n_embd / s.n_head;
    g.set_string("general.architecture", "llama");
    g.set_string("general.name", "bad-input tiny llama");
    g.set_u32("general.alignment", 32);
    g.set_u32("general.file_type", 0);
    g.set_u32("llama.context_length", s.n_ctx);
    g.set_u32("llama.embedding_length", s.n_embd);
    g.set_u32("llama.block_count", s.n_layer);
    g.set_u32("llama.feed_forward_length", s.n_ff);
    g.set_u32("llama.attention.head_count", s.n_head);
    g.set_u32("llama.attention.head_count_kv", s.n_head_kv);
    g.set_u32("llama.rope.dimension_count", head_dim);
    g.set_f32("llama.rope.freq_base", 10000.0f);
    g.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    g.set_u32("llama.vocab_size", uint32_t(n_vocab));
    g.set_string("tokenizer.ggml.model", "llama");
    g.set_strings("tokenizer.ggml.tokens", vocab.tokens);
    g.set_f32s("tokenizer.ggml.scores", vocab.scores);
    g.set_i32s("tokenizer.ggml.token_type", vocab.types);
    g.set_u32("tokenizer.ggml.unknown_token_id", 0);
    g.set_u32("tokenizer.ggml.bos_token_id", 1);
    g.set_u32("tokenizer.ggml.eos_token_id", 2);
    g.set_bool("tokenizer.ggml.add_bos_token", true);
    g.set_bool("tokenizer.ggml.add_eos_token", false);

    uint32_t seed = 1;
    auto matrix = [&](std::string name, uint64_t cols, uint64_t rows) {
        g.add_tensor(std::move(name), 0, {cols, rows}, tiny_f32_tensor(cols * rows, seed++, 0.2f));
    };
    auto norm = [&](std::string name) { g.add_tensor(std::move(name), 0, {s.n_embd}, tiny_ones(s.n_embd)); };
    matrix("token_embd.weight", s.n_embd, n_vocab);
    for (uint32_t il = 0; il < s.n_layer; ++il) {
        const std::string b = "blk." + std::to_string(il) + ".";
        norm(b + "attn_norm.weight");
        matrix(b + "attn_q.weight", s.n_embd, s.n_head * head_dim);
        matrix(b + "attn_k.weight", s.n_embd, s.n_head_kv * head_dim);
        matrix(b + "attn_v.weight", s.n_embd, s.n_head_kv * head_dim);
        matrix(b + "attn_output.weight", s.n_head * head_dim, s.n_embd);
        norm(b + "ffn_norm.weight");
        matrix(b + "ffn_gate.weight", s.n_embd, s.n_ff);
        matrix(b + "ffn_up.weight", s.n_embd, s.n_ff);
        matrix(b + "ffn_down.weight", s.n_ff, s.n_embd);
    }
    norm("output_norm.weight");
    matrix("output.weight", s.n_embd, n_vocab);
    return g;
}

}  // namespace qllm::test
