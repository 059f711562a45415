// Instruction-set variants of the CPU kernels, chosen once at start-up from the CPU's features.
// PEFT_ISA=scalar|avx2|avx512|avx512bf16 forces one (an error if the CPU cannot run it).
#pragma once
#include <string>
#include <vector>

namespace peft::kernels {

enum class Isa { Scalar, Avx2, Avx512, Avx512Bf16 };

const char* isa_name(Isa isa);
Isa parse_isa(const std::string& name);  // throws E_ARGUMENT for unknown names
bool isa_supported(Isa isa);
std::vector<Isa> supported_isas();
Isa best_isa();
// The variant used when PEFT_ISA is not set: the best one that has been verified on real hardware.
// The AVX-512 variants are built and tested by the suite but have not yet run on an AVX-512 CPU,
// so until they have, they are used only when asked for (PEFT_ISA or set_isa).
Isa default_isa();
Isa active_isa();
// Selects isa for every later kernel call; throws E_UNSUPPORTED if this CPU cannot run it.
void set_isa(Isa isa);
// Applies PEFT_ISA if set, else default_isa(). Throws like set_isa.
void init_isa_from_env();

}  // namespace peft::kernels
