#include "core/allocator.h"

#include "core/host_memory.h"

namespace peft {

const char* device_name(Device device) {
  switch (device) {
    case Device::CPU:
      return "cpu";
  }
  return "unknown";
}

namespace {

class HostAllocator final : public Allocator {
 public:
  Device device() const override { return Device::CPU; }
  const char* name() const override { return "host"; }
  void* allocate(size_t nbytes, bool zero_fill) override { return host_allocate(nbytes, zero_fill); }
  void free(void* data, size_t nbytes) override { host_free(data, nbytes); }
};

}  // namespace

Allocator& host_allocator() {
  static HostAllocator allocator;
  return allocator;
}

}  // namespace peft
