// Host memory for tensor storage. Large blocks are mapped straight from the kernel instead of the
// malloc heap: glibc raises its mmap threshold after each freed big block and gives every thread its
// own arena, so a training step's activations (freed and reallocated each step, from different
// threads) otherwise pile up in heaps that never shrink and resident memory grows step after step.
#pragma once
#include <cstddef>

namespace peft {

// At least `nbytes` bytes, 64-byte aligned, zeroed when `zero_fill`; nullptr when out of memory.
void* host_allocate(size_t nbytes, bool zero_fill);
// Frees a block from host_allocate with the same `nbytes`.
void host_free(void* data, size_t nbytes);

}  // namespace peft
