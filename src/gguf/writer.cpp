// gguf::Writer: GGUF v3 with 32-byte alignment (or general.alignment), written atomically.
#include <algorithm>
#include <cstring>

#include "gguf/gguf.h"
#include "qllm/error.h"
#include "util/output_file.h"

namespace qllm::gguf {
namespace {

class Sink {
public:
    explicit Sink(OutputFile& out) : out_(out) {}
    template <typename T>
    void put(T v) { out_.write(&v, sizeof(T)); }
    void put_string(const std::string& s) {
        put<uint64_t>(s.size());
        out_.write(s.data(), s.size());
    }
    void put_value(const Value& v) {
        put<uint32_t>(uint32_t(v.type));
        if (v.type == ValueType::STRING) {
            put_string(v.strings.at(0));
        } else if (v.type == ValueType::ARRAY) {
            put<uint32_t>(uint32_t(v.array_type));
            put<uint64_t>(v.array_size());
            if (v.array_type == ValueType::STRING) {
                for (const auto& s : v.strings) put_string(s);
            } else {
                out_.write(v.bytes);
            }
        } else {
            out_.write(v.bytes);
        }
    }

private:
    OutputFile& out_;
};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

void Writer::set(std::string key, Value value) {
    for (auto& kv : kv_) {
        if (kv.first == key) {
            kv.second = std::move(value);
            return;
        }
    }
    kv_.emplace_back(std::move(key), std::move(value));
}

void Writer::remove(std::string_view key) {
    std::erase_if(kv_, [&](const auto& kv) { return kv.first == key; });
}

void Writer::add_tensor(std::string name, TensorType type, std::vector<int64_t> dims, Producer produce) {
    const TypeTraits& t = traits(type);
    if (dims.empty() || dims.size() > 4) fail("tensor '{}': {} dimensions", name, dims.size());
    if (dims[0] % t.block_size != 0) {
        fail("tensor '{}': row length {} is not a multiple of the {} block size {}", name, dims[0], t.name, t.block_size);
    }
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    const uint64_t size = uint64_t(n / t.block_size) * t.type_size;
    tensors_.push_back({std::move(name), type, std::move(dims), size, std::move(produce)});
}

void Writer::add_tensor(std::string name, TensorType type, std::vector<int64_t> dims, std::span<const uint8_t> bytes) {
    add_tensor(std::move(name), type, std::move(dims), [bytes](std::span<uint8_t> out) {
        if (out.size() != bytes.size()) fail("tensor data size mismatch: {} vs {}", out.size(), bytes.size());
        std::memcpy(out.data(), bytes.data(), bytes.size());
    });
}

void Writer::write(const std::string& path) const {
    uint64_t alignment = 32;
    for (const auto& [key, v] : kv_) {
        if (key == "general.alignment" && v.type == ValueType::U32) {
            uint32_t a;
            std::memcpy(&a, v.bytes.data(), 4);
            alignment = a;
        }
    }
    OutputFile out(path);
    Sink sink(out);
    out.write("GGUF", 4);
    sink.put<uint32_t>(3);
    sink.put<uint64_t>(tensors_.size());
    sink.put<uint64_t>(kv_.size());
    for (const auto& [key, v] : kv_) {
        sink.put_string(key);
        sink.put_value(v);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
        sink.put_string(t.name);
        sink.put<uint32_t>(uint32_t(t.dims.size()));
        for (int64_t d : t.dims) sink.put<uint64_t>(uint64_t(d));
        sink.put<uint32_t>(uint32_t(t.type));
        sink.put<uint64_t>(offset);
        offset = align_up(offset + t.size, alignment);
    }
    out.pad_to(alignment);
    std::vector<uint8_t> buffer;
    for (const auto& t : tensors_) {
        buffer.assign(t.size, 0);
        t.produce(buffer);
        out.write(buffer);
        out.pad_to(alignment);
    }
    out.commit();
}

}  // namespace qllm::gguf
