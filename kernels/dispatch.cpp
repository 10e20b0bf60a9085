// Chooses the kernels once: detects CPU features, honours QLLM_ISA, builds the active table.
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "kernels/cpu.h"
#include "qllm/error.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace qllm {
namespace {

struct Features {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
    bool neon = false, dotprod = false;
};

Features detect() {
    Features f;
#if defined(__x86_64__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    // CPUID.1:ECX.F16C[bit 29]: clang's __builtin_cpu_supports has no "f16c" (GCC's has).
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    f.f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
    f.avx512vnni = __builtin_cpu_supports("avx512vnni");
#elif defined(__aarch64__)
    f.neon = true;
#if defined(__linux__)
    f.dotprod = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
    f.dotprod = true;  // every Apple Silicon core has it
#endif
#endif
    return f;
}

const Features& features() {
    static const Features f = detect();
    return f;
}

bool can_run(Isa isa) {
    const Features& f = features();
    switch (isa) {
        case Isa::Scalar: return true;
#if defined(QLLM_HAVE_X86)
        case Isa::Avx2: return f.avx2 && f.fma && f.f16c;
        case Isa::Avx512:
            return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.avx2 && f.fma && f.f16c;
#endif
#if defined(QLLM_HAVE_NEON)
        case Isa::Neon: return f.neon && f.dotprod;
#endif
        default: return false;
    }
}

TraitsTable build(Isa isa) {
    TraitsTable table = reference_table();
#if defined(QLLM_HAVE_X86)
    if (isa == Isa::Avx2 || isa == Isa::Avx512) register_avx2_kernels(table);
    if (isa == Isa::Avx512) {
        register_avx512_kernels(table);
        register_avx512_gemm(table);
    }
#endif
#if defined(QLLM_HAVE_NEON)
    if (isa == Isa::Neon) register_neon_kernels(table);
#endif
    return table;
}

Isa choose() {
    if (const char* env = std::getenv("QLLM_ISA"); env && *env) {
        const auto isa = isa_from_name(env);
        if (!isa) fail("QLLM_ISA={} is not one of scalar, avx2, avx512, neon", env);
        if (!can_run(*isa)) fail("QLLM_ISA={}: this CPU or build cannot run it", env);
        return *isa;
    }
    return supported_isas().back();
}

}  // namespace

std::string_view isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
        case Isa::Neon: return "neon";
    }
    return "unknown";
}

std::optional<Isa> isa_from_name(std::string_view name) {
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {
        if (isa_name(isa) == name) return isa;
    }
    return std::nullopt;
}

std::vector<Isa> supported_isas() {
    std::vector<Isa> out;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {
        if (can_run(isa)) out.push_back(isa);
    }
    return out;
}

const TraitsTable& kernels_for(Isa isa) {
    static std::mutex mutex;
    static std::map<Isa, TraitsTable> tables;
    std::lock_guard lock(mutex);
    auto it = tables.find(isa);
    if (it == tables.end()) it = tables.emplace(isa, build(isa)).first;
    return it->second;
}

Isa active_isa() {
    static const Isa isa = choose();
    return isa;
}

const TraitsTable& active_table() {
    static const TraitsTable& table = kernels_for(active_isa());
    return table;
}

std::string cpu_features() {
    const Features& f = features();
    std::string s;
    auto add = [&](bool on, const char* name) {
        if (on) s += (s.empty() ? "" : " ") + std::string(name);
    };
    add(f.avx2, "avx2");
    add(f.fma, "fma");
    add(f.f16c, "f16c");
    add(f.avx512f, "avx512f");
    add(f.avx512bw, "avx512bw");
    add(f.avx512vl, "avx512vl");
    add(f.avx512dq, "avx512dq");
    add(f.avx512vnni, "avx512vnni");
    add(f.neon, "neon");
    add(f.dotprod, "dotprod");
    return s.empty() ? "none" : s;
}

}  // namespace qllm
