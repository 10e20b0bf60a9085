// Fuzz target: a GGUF file from arbitrary bytes through the loader and model validation, and,
// when a small model validates, through its tokenizer and one forward pass. A hostile file may
// only ever end in qllm::Error.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "model/context.h"
#include "model/model.h"
#include "qllm/error.h"

namespace {

using qllm::Model;
using qllm::TokenId;

constexpr uint64_t kMaxEvalBytes = 4u << 20;  // forward passes only on small models: speed
constexpr int64_t kMaxEvalLayers = 8;

// What `qllm info` and `qllm tokenize` read of a model: metadata, tensor table, vocabulary.
void inspect(const Model& model) {
    const qllm::gguf::File& f = model.file();
    for (const auto& [key, value] : f.metadata()) {
        QLLM_FUZZ_CHECK(f.find(key) == &value);
        if (value.type == qllm::gguf::ValueType::ARRAY) (void)value.array_size();
    }
    for (const auto& t : f.tensors()) {
        QLLM_FUZZ_CHECK(t.data != nullptr && t.offset + t.size <= f.file_size() - f.data_offset());
        (void)t.shape_string();
    }
    (void)qllm::file_type_name(qllm::guess_file_type(f));

    const qllm::Tokenizer& tok = model.tokenizer();
    const size_t n_vocab = model.vocab().size();
    for (size_t id = 0; id < n_vocab && id < 1024; ++id) (void)tok.piece(TokenId(id), true);
    try {
        const auto ids = tok.encode("Once upon a time, <s> 42 caf\xC3\xA9\n", model.vocab().add_bos, true);
        for (TokenId id : ids) QLLM_FUZZ_CHECK(id >= 0 && size_t(id) < n_vocab);
        (void)tok.decode(ids, true);
    } catch (const qllm::Error&) {
        // A vocabulary without byte tokens cannot spell every byte: an error, as documented.
    }
}

// Whether every weight is finite and of moderate size. The forward pass does not screen weights
// for NaN or Inf (neither does llama.cpp), and NaN activations reach ops.cpp's vector_expf,
// whose int(NaN) is undefined behaviour (harmless on x86, reported, not fixed here).
bool tame_weights(const Model& model) {
    std::vector<float> row;
    for (const auto& t : model.file().tensors()) {
        const qllm::TypeTraits& tt = qllm::traits(t.type);
        if (!tt.to_float) continue;
        row.resize(static_cast<size_t>(t.ne[0]));
        for (int64_t r = 0; r < t.n_elements() / t.ne[0]; ++r) {
            tt.to_float(t.data + size_t(r) * tt.row_size(t.ne[0]), row.data(), t.ne[0]);
            for (float w : row) {
                if (!(std::fabs(w) <= 1e4f)) return false;
            }
        }
    }
    return true;
}

// One short prompt through the model, when it is small enough to be quick.
void evaluate(const Model& model) {
    const qllm::Hparams& hp = model.hparams();
    uint64_t bytes = 0;
    for (const auto& t : model.file().tensors()) bytes += t.size;
    if (bytes > kMaxEvalBytes || hp.n_layer > kMaxEvalLayers || !tame_weights(model)) return;

    std::vector<TokenId> tokens = {0, TokenId(hp.n_vocab - 1)};
    if (model.vocab().bos >= 0) tokens.insert(tokens.begin(), model.vocab().bos);
    qllm::Context ctx(model, 8);
    const auto logits = ctx.eval(tokens, true);
    QLLM_FUZZ_CHECK(logits.size() == tokens.size() * size_t(hp.n_vocab));
    const auto next = ctx.eval(std::vector<TokenId>{TokenId(hp.n_vocab / 2)}, false);
    QLLM_FUZZ_CHECK(next.size() == size_t(hp.n_vocab));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static qllm::fuzz::ScratchFile scratch;
    const std::string& path = scratch.write(data, size);
    // Inspect validates shapes only (what `qllm info` loads); Full also wants kernels for every
    // weight. Both must fail cleanly or give a consistent model.
    for (const Model::Mode mode : {Model::Mode::Inspect, Model::Mode::Full}) {
        try {
            const auto model = Model::load(path, mode);
            inspect(*model);
            if (mode == Model::Mode::Full) evaluate(*model);
        } catch (const qllm::Error&) {
            if (mode == Model::Mode::Inspect) return 0;  // Full checks a superset
        }
    }
    return 0;
}
