// Where tensor storage comes from. Each backend brings an allocator for its device's memory; a
// Storage keeps the allocator that made it, so it is freed by the same one and its Tensor knows
// which device its bytes are on. The host allocator is the CPU backend's.
#pragma once
#include <cstddef>
#include <cstdint>

namespace peft {

// The memory a tensor's bytes live in. A backend's kernels read and write only their own device's.
enum class Device : uint8_t { CPU };

const char* device_name(Device device);

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  virtual const char* name() const = 0;
  // At least `nbytes` bytes, 64-byte aligned, zeroed when `zero_fill`; nullptr when out of memory.
  virtual void* allocate(size_t nbytes, bool zero_fill) = 0;
  // Frees a block this allocator returned for the same `nbytes`.
  virtual void free(void* data, size_t nbytes) = 0;
};

// Host memory (core/host_memory.h): large blocks mapped from the kernel and reused at the same size.
Allocator& host_allocator();

}  // namespace peft
