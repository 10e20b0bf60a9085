// CPU feature detection and kernel dispatch. The ISA is chosen once, at the first use of the
// traits table: the best the CPU supports, or the one named by QLLM_ISA=scalar|avx2|avx512|neon.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "kernels/types.h"

namespace qllm {

enum class Isa { Scalar, Avx2, Avx512, Neon };

std::string_view isa_name(Isa isa);
std::optional<Isa> isa_from_name(std::string_view name);

// Every ISA this build has kernels for and this CPU can run, scalar first.
std::vector<Isa> supported_isas();
// The reference table with `isa`'s kernels written over it (for tests and benchmarks).
const TraitsTable& kernels_for(Isa isa);
// The ISA in use. Throws qllm::Error if QLLM_ISA names one that cannot run here.
Isa active_isa();
// A one-line description of the CPU features seen, e.g. "avx2 fma f16c avx512f avx512vnni".
std::string cpu_features();

// Per-ISA registration, each in its own translation unit compiled with its own flags.
void register_avx2_kernels(TraitsTable& table);
void register_avx512_kernels(TraitsTable& table);
void register_avx512_gemm(TraitsTable& table);  // batched products (avx512_gemm.cpp)
void register_neon_kernels(TraitsTable& table);

}  // namespace qllm
