// GGUF reading (gguf::File, over a read-only mmap) and writing (gguf::Writer, atomic).
//
// On-disk layout (little-endian), versions 2 and 3:
//   1. magic "GGUF", u32 version, u64 tensor_count, u64 kv_count
//   2. kv_count metadata pairs: string key, u32 value type, value
//      (string = u64 length + bytes; array = u32 element type + u64 count + elements)
//   3. tensor_count infos: string name, u32 n_dims, u64 dims[n_dims] (innermost first),
//      u32 type, u64 offset (relative to the data section, a multiple of the alignment)
//   4. padding to `general.alignment` (default 32), then the data section.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/types.h"

namespace qllm::gguf {

enum class ValueType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view value_type_name(ValueType type);

// A metadata value. Scalars and numeric arrays keep their little-endian bytes;
// strings (one, or an array of them) are kept as std::string.
struct Value {
    ValueType type = ValueType::U8;
    ValueType array_type = ValueType::U8;  // element type when type == ARRAY
    std::vector<uint8_t> bytes;            // scalar or numeric-array payload
    std::vector<std::string> strings;      // STRING: one entry; ARRAY of STRING: all entries

    static Value u32(uint32_t v);
    static Value i32(int32_t v);
    static Value u64(uint64_t v);
    static Value f32(float v);
    static Value boolean(bool v);
    static Value string(std::string v);
    static Value string_array(std::vector<std::string> v);
    static Value f32_array(std::span<const float> v);
    static Value i32_array(std::span<const int32_t> v);

    uint64_t array_size() const;  // elements of an ARRAY value
    bool operator==(const Value&) const = default;
};

struct TensorInfo {
    std::string name;
    TensorType type = TensorType::F32;
    int n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // dims, innermost first; unused dims are 1
    uint64_t offset = 0;           // from the start of the data section
    uint64_t size = 0;             // bytes
    const uint8_t* data = nullptr; // into the mapping

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    std::string shape_string() const;  // e.g. "[64, 512]"
};

// Gives the mapped file pages under [data, data + bytes) back to the page cache, so that they no
// longer count in the process's memory (a hint; they are read again if touched).
void release_mapped_pages(const void* data, size_t bytes);

// A parsed, validated GGUF file. Every number in it has been checked against the file size.
class File {
public:
    explicit File(const std::string& path);
    ~File();
    File(const File&) = delete;
    File& operator=(const File&) = delete;

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t file_size() const { return size_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }

    // Metadata in file order.
    const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
    const Value* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }

    // Typed getters: a missing key or a value of another type is a qllm::Error naming the key.
    std::string get_string(std::string_view key) const;
    uint64_t get_count(std::string_view key) const;  // u8/u16/u32/u64 or non-negative signed ints
    float get_f32(std::string_view key) const;       // f32 (or f64)
    bool get_bool(std::string_view key) const;
    std::vector<std::string> get_string_array(std::string_view key) const;
    std::vector<float> get_f32_array(std::string_view key) const;
    std::vector<int32_t> get_i32_array(std::string_view key) const;

    // Optional variants: return `fallback` when the key is absent (wrong type is still an error).
    std::string get_string_or(std::string_view key, std::string fallback) const;
    uint64_t get_count_or(std::string_view key, uint64_t fallback) const;
    float get_f32_or(std::string_view key, float fallback) const;
    bool get_bool_or(std::string_view key, bool fallback) const;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;

private:
    void parse();

    std::string path_;
    const uint8_t* map_ = nullptr;
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kv_;
    std::map<std::string, size_t, std::less<>> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Writes a GGUF v3 file: metadata, then tensors whose bytes are produced one at a time
// (so a quantizer never holds the whole output). The file appears at `path` only when
// complete: it is written to a temporary file in the same directory and renamed.
class Writer {
public:
    // Fills `out` (exactly the tensor's byte size) with the tensor's data.
    using Producer = std::function<void(std::span<uint8_t> out)>;

    void set(std::string key, Value value);  // replaces an existing key, keeps its position
    void remove(std::string_view key);
    void add_tensor(std::string name, TensorType type, std::vector<int64_t> dims, Producer produce);
    void add_tensor(std::string name, TensorType type, std::vector<int64_t> dims,
                    std::span<const uint8_t> bytes);
    void write(const std::string& path) const;

private:
    struct Pending {
        std::string name;
        TensorType type;
        std::vector<int64_t> dims;
        uint64_t size;
        Producer produce;
    };
    std::vector<std::pair<std::string, Value>> kv_;
    std::vector<Pending> tensors_;
};

}  // namespace qllm::gguf
