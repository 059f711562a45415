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
Isa active_isa();
// Selects isa for every later kernel call; throws E_UNSUPPORTED if this CPU cannot run it.
void set_isa(Isa isa);
// Applies PEFT_ISA if set, else picks the best supported variant. Throws like set_isa.
void init_isa_from_env();

}  // namespace peft::kernels
