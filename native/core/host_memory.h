// Host memory for tensor storage. Large blocks are mapped straight from the kernel instead of the
// malloc heap: glibc raises its mmap threshold after each freed big block and gives every thread its
// own arena, so a training step's activations (freed and reallocated each step, from different
// threads) otherwise pile up in heaps that never shrink and resident memory grows step after step.
// Freed large blocks are kept (up to 256 MiB) for reuse at the same size, as the next step asks.
#pragma once
#include <cstddef>

namespace peft {

// At least `nbytes` bytes, 64-byte aligned, zeroed when `zero_fill`; nullptr when out of memory.
void* host_allocate(size_t nbytes, bool zero_fill);
// Frees a block from host_allocate with the same `nbytes`.
void host_free(void* data, size_t nbytes);
// A scratch block from host_allocate (not zeroed), freed when it goes out of scope. Throws E_MEMORY
// when the system has no memory for it.
class HostBuffer {
 public:
  explicit HostBuffer(size_t nbytes);
  ~HostBuffer();
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  void* data() const { return data_; }

 private:
  void* data_;
  size_t nbytes_;
};

// Returns the kept freed blocks to the system (a disposed model's activations, for example).
void host_release_cached();

}  // namespace peft
