// gguf::Value constructors and small helpers shared by the reader and the writer.
#include <cstring>

#include "gguf/gguf.h"

namespace qllm::gguf {
namespace {

template <typename T>
Value scalar(ValueType type, T v) {
    Value out;
    out.type = type;
    out.bytes.resize(sizeof(T));
    std::memcpy(out.bytes.data(), &v, sizeof(T));
    return out;
}

template <typename T>
Value numeric_array(ValueType elem, std::span<const T> v) {
    Value out;
    out.type = ValueType::ARRAY;
    out.array_type = elem;
    out.bytes.resize(v.size_bytes());
    if (!v.empty()) std::memcpy(out.bytes.data(), v.data(), v.size_bytes());
    return out;
}

}  // namespace

Value Value::u32(uint32_t v) { return scalar(ValueType::U32, v); }
Value Value::i32(int32_t v) { return scalar(ValueType::I32, v); }
Value Value::u64(uint64_t v) { return scalar(ValueType::U64, v); }
Value Value::f32(float v) { return scalar(ValueType::F32, v); }
Value Value::boolean(bool v) { return scalar(ValueType::BOOL, uint8_t(v ? 1 : 0)); }

Value Value::string(std::string v) {
    Value out;
    out.type = ValueType::STRING;
    out.strings.push_back(std::move(v));
    return out;
}

Value Value::string_array(std::vector<std::string> v) {
    Value out;
    out.type = ValueType::ARRAY;
    out.array_type = ValueType::STRING;
    out.strings = std::move(v);
    return out;
}

Value Value::f32_array(std::span<const float> v) { return numeric_array(ValueType::F32, v); }
Value Value::i32_array(std::span<const int32_t> v) { return numeric_array(ValueType::I32, v); }

uint64_t Value::array_size() const {
    if (type != ValueType::ARRAY) return 0;
    if (array_type == ValueType::STRING) return strings.size();
    switch (array_type) {
        case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return bytes.size();
        case ValueType::U16: case ValueType::I16: return bytes.size() / 2;
        case ValueType::U32: case ValueType::I32: case ValueType::F32: return bytes.size() / 4;
        default: return bytes.size() / 8;
    }
}

std::string_view value_type_name(ValueType type) {
    static constexpr std::string_view names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                 "bool", "string", "array", "u64", "i64", "f64"};
    return uint32_t(type) < std::size(names) ? names[uint32_t(type)] : "unknown";
}

std::string TensorInfo::shape_string() const {
    std::string s = "[";
    for (int d = 0; d < n_dims; ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
    return s + "]";
}

}  // namespace qllm::gguf
