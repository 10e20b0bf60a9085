// Synthetic models: shapes table, a SentencePiece-style vocabulary, heavy-tailed weights.
#include "model/synth.h"

#include <cmath>
#include <cstring>
#include <string_view>

#include "gguf/gguf.h"
#include "qllm/error.h"
#include "tokenizer/tokenizer.h"

namespace qllm {
namespace {

uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t hash_name(std::string_view s) {
    uint64_t h = 1469598103934665603ull;
    for (char c : s) h = (h ^ uint8_t(c)) * 1099511628211ull;
    return h;
}

// One row of weights: approximately N(0, scale^2) (Irwin-Hall sum of four uniforms), one value
// in 256 five times larger, and input columns picked by `outlier_cols` four times larger.
void fill_row(float* out, int64_t n, uint64_t stream, float scale, uint64_t column_salt) {
    uint64_t state = splitmix64(stream);
    for (int64_t i = 0; i < n; ++i) {
        state = splitmix64(state);
        const float u = float((state & 0xFFFF) + ((state >> 16) & 0xFFFF) + ((state >> 32) & 0xFFFF) +
                              ((state >> 48) & 0xFFFF)) / 65536.0f;
        float x = (u - 2.0f) * 1.7320508f;
        if ((state & 0xFF00000000000000ull) == 0xFF00000000000000ull) x *= 5.0f;
        if (splitmix64(uint64_t(i) ^ column_salt) % 97 == 0) x *= 4.0f;
        out[i] = x * scale;
    }
}

// Pieces for the vocabulary: single characters first, then longer strings grown one character
// at a time from earlier pieces, so SentencePiece merges can always reach them.
std::vector<std::string> make_pieces(size_t count) {
    const std::string_view letters = "etaoinshrdlucmfwypvbgkjqxz";
    std::vector<std::string> units = {"\xE2\x96\x81"};  // U+2581, SentencePiece's space
    for (char c : letters) units.emplace_back(1, c);
    for (char c : std::string_view("ETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,!?'\"-:;()")) units.emplace_back(1, c);
    std::vector<std::string> pieces;
    for (const auto& u : units) {
        if (pieces.size() < count) pieces.push_back(u);
    }
    const std::vector<std::string> growth = {"\xE2\x96\x81", "e", "t", "a", "o", "i", "n", "s", "h", "r", "d", "l"};
    for (size_t level_start = 0; pieces.size() < count;) {
        const size_t level_end = pieces.size();
        for (size_t i = level_start; i < level_end && pieces.size() < count; ++i) {
            for (const auto& g : growth) {
                if (pieces.size() == count) break;
                if (pieces[i].size() > 1 && g == growth[0]) continue;  // spaces only lead a piece
                pieces.push_back(pieces[i] + g);
            }
        }
        level_start = level_end;
    }
    return pieces;
}

// ChatML, as Qwen models carry it in tokenizer.chat_template.
constexpr const char* kChatmlTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

void add_vocabulary(gguf::Writer& w, int64_t n_vocab, bool chat) {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<int32_t> kinds = {int32_t(TokenKind::Unknown), int32_t(TokenKind::Control), int32_t(TokenKind::Control)};
    for (int b = 0; b < 256; ++b) {
        tokens.push_back(fmt::format("<0x{:02X}>", b));
        kinds.push_back(int32_t(TokenKind::Byte));
    }
    if (n_vocab < int64_t(tokens.size()) + 1) fail("a synthetic vocabulary needs at least {} tokens", tokens.size() + 1);
    std::vector<float> scores(tokens.size(), 0.0f);
    const std::vector<std::string> chat_tokens = chat ? std::vector<std::string>{"<|im_start|>", "<|im_end|>"}
                                                      : std::vector<std::string>{};
    for (auto& piece : make_pieces(size_t(n_vocab) - tokens.size() - chat_tokens.size())) {
        scores.push_back(-float(tokens.size()));
        tokens.push_back(std::move(piece));
        kinds.push_back(int32_t(TokenKind::Normal));
    }
    for (const auto& t : chat_tokens) {
        scores.push_back(0.0f);
        tokens.push_back(t);
        kinds.push_back(int32_t(TokenKind::Control));
    }
    if (chat) w.set("tokenizer.chat_template", gguf::Value::string(kChatmlTemplate));
    w.set("tokenizer.ggml.model", gguf::Value::string("llama"));
    w.set("tokenizer.ggml.tokens", gguf::Value::string_array(std::move(tokens)));
    w.set("tokenizer.ggml.scores", gguf::Value::f32_array(scores));
    w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(kinds));
    w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(1));
    w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(2));
    w.set("tokenizer.ggml.unknown_token_id", gguf::Value::u32(0));
    w.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(true));
    w.set("tokenizer.ggml.add_eos_token", gguf::Value::boolean(false));
}

uint32_t file_type_of(TensorType t) {
    switch (t) {
        case TensorType::F32: return 0;
        case TensorType::F16: return 1;
        case TensorType::BF16: return 32;
        default: fail("synthetic models are written as F32, F16 or BF16 (got {})", type_name(t));
    }
}

}  // namespace

uint64_t SynthShape::parameter_count() const {
    const int64_t head_dim = n_embd / n_head;
    const int64_t per_layer = 2 * n_embd + n_embd * n_embd * 2 + 2 * n_embd * n_head_kv * head_dim + 3 * n_embd * n_ff;
    return uint64_t(n_vocab * n_embd * (tied_embeddings ? 1 : 2) + n_embd + n_layer * per_layer);
}

const std::vector<SynthShape>& synth_shapes() {
    static const std::vector<SynthShape> shapes = {
        {"tiny", 256, 768, 4, 8, 4, 512, 2048, 10000.0f, false},
        {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f, false},
        {"llama-3.2-1b", 2048, 8192, 16, 32, 8, 128256, 131072, 500000.0f, true},
        {"llama-2-7b", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f, false},
    };
    return shapes;
}

std::optional<SynthShape> find_synth_shape(const std::string& name) {
    for (const auto& s : synth_shapes()) {
        if (s.name == name) return s;
    }
    return std::nullopt;
}

void write_synth_model(const SynthShape& shape, const SynthOptions& options, const std::string& path) {
    const int64_t n_layer = options.layers > 0 ? options.layers : shape.n_layer;
    const int64_t head_dim = shape.n_embd / shape.n_head;
    gguf::Writer w;
    w.set("general.architecture", gguf::Value::string("llama"));
    w.set("general.name", gguf::Value::string("synthetic " + shape.name));
    w.set("general.file_type", gguf::Value::u32(file_type_of(options.type)));
    w.set("llama.context_length", gguf::Value::u32(uint32_t(shape.n_ctx)));
    w.set("llama.embedding_length", gguf::Value::u32(uint32_t(shape.n_embd)));
    w.set("llama.block_count", gguf::Value::u32(uint32_t(n_layer)));
    w.set("llama.feed_forward_length", gguf::Value::u32(uint32_t(shape.n_ff)));
    w.set("llama.attention.head_count", gguf::Value::u32(uint32_t(shape.n_head)));
    w.set("llama.attention.head_count_kv", gguf::Value::u32(uint32_t(shape.n_head_kv)));
    w.set("llama.rope.dimension_count", gguf::Value::u32(uint32_t(head_dim)));
    w.set("llama.rope.freq_base", gguf::Value::f32(shape.rope_base));
    w.set("llama.attention.layer_norm_rms_epsilon", gguf::Value::f32(1e-5f));
    w.set("llama.vocab_size", gguf::Value::u32(uint32_t(shape.n_vocab)));
    add_vocabulary(w, shape.n_vocab, options.chat);

    // A matrix (n_in inputs, n_out rows) of the model's weight type, scaled so activations stay O(1).
    auto matrix = [&](const std::string& name, int64_t n_in, int64_t n_out) {
        const TensorType type = options.type;
        const uint64_t stream = splitmix64(options.seed ^ hash_name(name));
        w.add_tensor(name, type, {n_in, n_out}, [=](std::span<uint8_t> out) {
            const TypeTraits& t = traits(type);
            const size_t row_bytes = t.row_size(n_in);
            const float scale = 1.0f / std::sqrt(float(n_in));
#pragma omp parallel
            {
                std::vector<float> row(static_cast<size_t>(n_in));
#pragma omp for schedule(static)
                for (int64_t r = 0; r < n_out; ++r) {
                    fill_row(row.data(), n_in, stream + uint64_t(r) * 0x9E3779B97F4A7C15ull, scale, stream);
                    t.from_float(row.data(), out.data() + size_t(r) * row_bytes, n_in);
                }
            }
        });
    };
    // Norm weights near 1.
    auto norm = [&](const std::string& name) {
        const uint64_t stream = splitmix64(options.seed ^ hash_name(name));
        w.add_tensor(name, TensorType::F32, {shape.n_embd}, [=](std::span<uint8_t> out) {
            std::vector<float> v(size_t(shape.n_embd));
            fill_row(v.data(), shape.n_embd, stream, 0.1f, stream);
            for (float& x : v) x += 1.0f;
            std::memcpy(out.data(), v.data(), out.size());
        });
    };

    matrix("token_embd.weight", shape.n_embd, shape.n_vocab);
    for (int64_t il = 0; il < n_layer; ++il) {
        const std::string b = "blk." + std::to_string(il) + ".";
        norm(b + "attn_norm.weight");
        matrix(b + "attn_q.weight", shape.n_embd, shape.n_head * head_dim);
        matrix(b + "attn_k.weight", shape.n_embd, shape.n_head_kv * head_dim);
        matrix(b + "attn_v.weight", shape.n_embd, shape.n_head_kv * head_dim);
        matrix(b + "attn_output.weight", shape.n_head * head_dim, shape.n_embd);
        norm(b + "ffn_norm.weight");
        matrix(b + "ffn_gate.weight", shape.n_embd, shape.n_ff);
        matrix(b + "ffn_up.weight", shape.n_embd, shape.n_ff);
        matrix(b + "ffn_down.weight", shape.n_ff, shape.n_embd);
    }
    norm("output_norm.weight");
    if (!shape.tied_embeddings) matrix("output.weight", shape.n_embd, shape.n_vocab);
    w.write(path);
}

}  // namespace qllm
