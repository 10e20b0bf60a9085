// gguf::File: maps a GGUF file read-only and validates every number in it before use.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gguf/gguf.h"
#include "qllm/error.h"

namespace qllm::gguf {
namespace {

constexpr uint64_t kMaxStringLength = 1ull << 30;  // no key or token is a gigabyte long
constexpr uint64_t kMaxKeyLength = 65535;

size_t scalar_size(ValueType type) {
    switch (type) {
        case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
        case ValueType::U16: case ValueType::I16: return 2;
        case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
        case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
        default: return 0;
    }
}

bool valid_value_type(uint32_t t) { return t <= uint32_t(ValueType::F64); }

// A bounds-checked cursor over the mapped bytes.
class Reader {
public:
    Reader(const uint8_t* data, uint64_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    void need(uint64_t n, const char* what) const {
        if (n > remaining()) {
            fail("{}: truncated file: {} needs {} bytes at offset {}, only {} left", path_, what, n, pos_, remaining());
        }
    }
    template <typename T>
    T read(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    const uint8_t* take(uint64_t n, const char* what) {
        need(n, what);
        const uint8_t* p = data_ + pos_;
        pos_ += n;
        return p;
    }
    std::string read_string(const char* what, uint64_t max_length = kMaxStringLength) {
        const auto length = read<uint64_t>(what);
        if (length > max_length) fail("{}: {} has absurd length {} at offset {}", path_, what, length, pos_ - 8);
        const uint8_t* p = take(length, what);
        return std::string(reinterpret_cast<const char*>(p), length);
    }

private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string& path_;
};

Value read_value(Reader& r, ValueType type, const std::string& key, const std::string& path) {
    Value v;
    v.type = type;
    if (type == ValueType::STRING) {
        v.strings.push_back(r.read_string(("value of " + key).c_str()));
    } else if (type == ValueType::ARRAY) {
        const auto elem = r.read<uint32_t>("array element type");
        if (!valid_value_type(elem)) fail("{}: key '{}': unknown array element type {}", path, key, elem);
        if (ValueType(elem) == ValueType::ARRAY) fail("{}: key '{}': nested arrays are not supported", path, key);
        v.array_type = ValueType(elem);
        const auto count = r.read<uint64_t>("array length");
        if (v.array_type == ValueType::STRING) {
            // Each string needs at least its 8-byte length: check before reserving anything.
            if (count > r.remaining() / 8) {
                fail("{}: key '{}': array of {} strings runs past the end of the file", path, key, count);
            }
            v.strings.reserve(count);
            for (uint64_t i = 0; i < count; ++i) v.strings.push_back(r.read_string(("element of " + key).c_str()));
        } else {
            const size_t elem_size = scalar_size(v.array_type);
            if (count > r.remaining() / elem_size) {
                fail("{}: key '{}': array of {} elements runs past the end of the file", path, key, count);
            }
            const uint8_t* p = r.take(count * elem_size, "array data");
            v.bytes.assign(p, p + count * elem_size);
        }
    } else {
        const size_t n = scalar_size(type);
        const uint8_t* p = r.take(n, ("value of " + key).c_str());
        v.bytes.assign(p, p + n);
        if (type == ValueType::BOOL && v.bytes[0] > 1) fail("{}: key '{}': invalid bool value {}", path, key, v.bytes[0]);
    }
    return v;
}

template <typename T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

}  // namespace

File::File(const std::string& path) : path_(path) {
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever (no effect on files).
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("{}: not a regular file", path);
    }
    size_ = uint64_t(st.st_size);
    if (size_ > 0) {
        void* m = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            ::close(fd);
            fail("{}: cannot map file: {}", path, std::strerror(errno));
        }
        map_ = static_cast<const uint8_t*>(m);
    }
    ::close(fd);
    try {
        parse();
    } catch (...) {
        if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
        throw;
    }
}

File::~File() {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

void File::parse() {
    Reader r(map_, size_, path_);
    if (size_ < 4 || std::memcmp(map_, "GGUF", 4) != 0) fail("{}: not a GGUF file (bad magic)", path_);
    r.take(4, "magic");
    version_ = r.read<uint32_t>("version");
    if (version_ != 2 && version_ != 3) fail("{}: unsupported GGUF version {} (supported: 2, 3)", path_, version_);
    const auto n_tensors = r.read<uint64_t>("tensor count");
    const auto n_kv = r.read<uint64_t>("metadata count");
    // Every key-value pair takes at least 12 bytes, every tensor info at least 24.
    if (n_kv > r.remaining() / 12) fail("{}: metadata count {} is larger than the file allows", path_, n_kv);
    if (n_tensors > r.remaining() / 24) fail("{}: tensor count {} is larger than the file allows", path_, n_tensors);

    kv_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
        std::string key = r.read_string("metadata key", kMaxKeyLength);
        if (key.empty()) fail("{}: metadata entry {} has an empty key", path_, i);
        const auto type = r.read<uint32_t>("metadata value type");
        if (!valid_value_type(type)) fail("{}: key '{}': unknown value type {}", path_, key, type);
        Value value = read_value(r, ValueType(type), key, path_);
        if (kv_index_.count(key)) fail("{}: duplicate metadata key '{}'", path_, key);
        kv_index_.emplace(key, kv_.size());
        kv_.emplace_back(std::move(key), std::move(value));
    }

    if (const Value* a = find("general.alignment")) {
        if (a->type != ValueType::U32) fail("{}: general.alignment must be u32, found {}", path_, value_type_name(a->type));
        alignment_ = load<uint32_t>(a->bytes.data());
        if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0) {
            fail("{}: general.alignment = {} is not a power of two", path_, alignment_);
        }
    }

    tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
        TensorInfo t;
        t.name = r.read_string("tensor name", kMaxKeyLength);
        const auto n_dims = r.read<uint32_t>("tensor dimension count");
        if (n_dims < 1 || n_dims > 4) fail("{}: tensor '{}' has {} dimensions (1 to 4 allowed)", path_, t.name, n_dims);
        t.n_dims = int(n_dims);
        for (uint32_t d = 0; d < n_dims; ++d) {
            const auto ne = r.read<uint64_t>("tensor dimension");
            if (ne == 0 || ne > uint64_t(INT64_MAX)) fail("{}: tensor '{}' dimension {} is {}", path_, t.name, d, ne);
            t.ne[d] = int64_t(ne);
        }
        const auto type_id = r.read<uint32_t>("tensor type");
        const TypeTraits& tt = traits(type_id);
        if (!tt.known() || tt.row_group != 1) fail("{}: tensor '{}' has unknown type id {}", path_, t.name, type_id);
        t.type = TensorType(type_id);
        t.offset = r.read<uint64_t>("tensor offset");

        // Element count and byte size, with every product checked for overflow.
        uint64_t elements = 1;
        for (int d = 0; d < t.n_dims; ++d) {
            if (__builtin_mul_overflow(elements, uint64_t(t.ne[d]), &elements) || elements > uint64_t(INT64_MAX)) {
                fail("{}: tensor '{}' shape {} has too many elements", path_, t.name, t.shape_string());
            }
        }
        if (t.ne[0] % tt.block_size != 0) {
            fail("{}: tensor '{}' row length {} is not a multiple of the {} block size {}", path_, t.name, t.ne[0],
                 tt.name, tt.block_size);
        }
        if (__builtin_mul_overflow(elements / uint64_t(tt.block_size), uint64_t(tt.type_size), &t.size)) {
            fail("{}: tensor '{}' byte size overflows", path_, t.name);
        }
        if (t.offset % alignment_ != 0) {
            fail("{}: tensor '{}' offset {} is not a multiple of the alignment {}", path_, t.name, t.offset, alignment_);
        }
        if (tensor_index_.count(t.name)) fail("{}: duplicate tensor name '{}'", path_, t.name);
        tensor_index_.emplace(t.name, tensors_.size());
        tensors_.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment.
    const uint64_t header_end = r.pos();
    data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
    if (n_tensors > 0 && data_offset_ > size_) fail("{}: truncated file: data section starts past the end", path_);
    const uint64_t data_size = size_ > data_offset_ ? size_ - data_offset_ : 0;

    // Every tensor must lie inside the data section, and no two may overlap.
    std::vector<const TensorInfo*> by_offset;
    for (auto& t : tensors_) {
        if (t.offset > data_size || t.size > data_size - t.offset) {
            fail("{}: tensor '{}' data (offset {}, {} bytes) runs past the end of the file (data section is {} bytes)",
                 path_, t.name, t.offset, t.size, data_size);
        }
        t.data = map_ + data_offset_ + t.offset;
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const TensorInfo& prev = *by_offset[i - 1];
        if (prev.offset + prev.size > by_offset[i]->offset) {
            fail("{}: tensors '{}' and '{}' overlap", path_, prev.name, by_offset[i]->name);
        }
    }
}

const Value* File::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

[[noreturn]] void wrong_type(const std::string& path, std::string_view key, const Value& v, const char* wanted) {
    std::string found(value_type_name(v.type));
    if (v.type == ValueType::ARRAY) found = fmt::format("array of {}", value_type_name(v.array_type));
    fail("{}: key '{}' has type {}, expected {}", path, key, found, wanted);
}

// Reads one integer element of `type` at p as int64 (u64 above INT64_MAX is reported by the caller).
bool integer_at(ValueType type, const uint8_t* p, int64_t& out, uint64_t& out_unsigned) {
    switch (type) {
        case ValueType::U8: out_unsigned = load<uint8_t>(p); break;
        case ValueType::U16: out_unsigned = load<uint16_t>(p); break;
        case ValueType::U32: out_unsigned = load<uint32_t>(p); break;
        case ValueType::U64: out_unsigned = load<uint64_t>(p); break;
        case ValueType::I8: out = load<int8_t>(p); return out >= 0 ? (out_unsigned = uint64_t(out), true) : false;
        case ValueType::I16: out = load<int16_t>(p); return out >= 0 ? (out_unsigned = uint64_t(out), true) : false;
        case ValueType::I32: out = load<int32_t>(p); return out >= 0 ? (out_unsigned = uint64_t(out), true) : false;
        case ValueType::I64: out = load<int64_t>(p); return out >= 0 ? (out_unsigned = uint64_t(out), true) : false;
        default: return false;
    }
    return true;
}

}  // namespace

std::string File::get_string(std::string_view key) const {
    const Value* v = find(key);
    if (!v) fail("{}: missing required key '{}'", path_, key);
    if (v->type != ValueType::STRING) wrong_type(path_, key, *v, "string");
    return v->strings[0];
}

uint64_t File::get_count(std::string_view key) const {
    const Value* v = find(key);
    if (!v) fail("{}: missing required key '{}'", path_, key);
    int64_t s = 0;
    uint64_t u = 0;
    if (v->type == ValueType::ARRAY || v->type == ValueType::STRING || v->type == ValueType::BOOL ||
        v->type == ValueType::F32 || v->type == ValueType::F64) {
        wrong_type(path_, key, *v, "an unsigned integer");
    }
    if (!integer_at(v->type, v->bytes.data(), s, u)) fail("{}: key '{}' is negative ({})", path_, key, s);
    return u;
}

float File::get_f32(std::string_view key) const {
    const Value* v = find(key);
    if (!v) fail("{}: missing required key '{}'", path_, key);
    if (v->type == ValueType::F32) return load<float>(v->bytes.data());
    if (v->type == ValueType::F64) return float(load<double>(v->bytes.data()));
    wrong_type(path_, key, *v, "f32");
}

bool File::get_bool(std::string_view key) const {
    const Value* v = find(key);
    if (!v) fail("{}: missing required key '{}'", path_, key);
    if (v->type != ValueType::BOOL) wrong_type(path_, key, *v, "bool");
    return v->bytes[0] != 0;
}

std::vector<std::string> File::get_string_array(std::string_view key) const {
    const Value* v = find(key);
    if (!v) fail("{}: missing required key '{}'", path_, key);
    if (v->type != ValueType::ARRAY || v->array_type != ValueType::STRING) wrong_type(path_, key, *v, "array of string");
    return v->strings;
}

std::vector<float> File::get_f32_array(std::string_view key) const {
    const Value* v = find(key);
    if (!v) fail("{}: missing required key '{}'", path_, key);
    if (v->type != ValueType::ARRAY || v->array_type != ValueType::F32) wrong_type(path_, key, *v, "array of f32");
    std::vector<float> out(v->bytes.size() / 4);
    std::memcpy(out.data(), v->bytes.data(), out.size() * 4);
    return out;
}

std::vector<int32_t> File::get_i32_array(std::string_view key) const {
    const Value* v = find(key);
    if (!v) fail("{}: missing required key '{}'", path_, key);
    if (v->type != ValueType::ARRAY || (v->array_type != ValueType::I32 && v->array_type != ValueType::U32)) {
        wrong_type(path_, key, *v, "array of i32");
    }
    std::vector<int32_t> out(v->bytes.size() / 4);
    std::memcpy(out.data(), v->bytes.data(), out.size() * 4);
    return out;
}

std::string File::get_string_or(std::string_view key, std::string fallback) const {
    return has(key) ? get_string(key) : fallback;
}
uint64_t File::get_count_or(std::string_view key, uint64_t fallback) const {
    return has(key) ? get_count(key) : fallback;
}
float File::get_f32_or(std::string_view key, float fallback) const { return has(key) ? get_f32(key) : fallback; }
bool File::get_bool_or(std::string_view key, bool fallback) const { return has(key) ? get_bool(key) : fallback; }

void release_mapped_pages(const void* data, size_t bytes) {
    static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(data) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes + page - 1) / page * page;
    madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace qllm::gguf
