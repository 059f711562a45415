// See host_memory.h for why large blocks bypass malloc.
#include "core/host_memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

namespace peft {

namespace {
constexpr size_t kAlignment = 64;
// Below this, malloc's free lists are faster than a system call and its pages are reused anyway.
constexpr size_t kMapThreshold = size_t{1} << 20;
constexpr size_t kHugeThreshold = size_t{4} << 20;

#if defined(__SANITIZE_ADDRESS__)
// The sanitizer build keeps every block on the (instrumented) heap so overruns of big tensors are caught.
constexpr bool kMapLarge = false;
#else
constexpr bool kMapLarge = true;
#endif

bool mapped(size_t nbytes) { return kMapLarge && nbytes >= kMapThreshold; }
}  // namespace

void* host_allocate(size_t nbytes, bool zero_fill) {
  if (mapped(nbytes)) {
    // Fresh anonymous pages are already zero, and page-aligned (so 64-byte aligned).
    void* p = mmap(nullptr, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    // Transparent huge pages where the system allows them on request: a step maps hundreds of MB of
    // activations, and 2 MiB pages fault 512 times less often than 4 KiB ones. Only whole aligned
    // 2 MiB ranges inside the block become huge pages, so resident memory does not grow.
    if (nbytes >= kHugeThreshold) madvise(p, nbytes, MADV_HUGEPAGE);
    return p;
  }
  const size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (p != nullptr && zero_fill) std::memset(p, 0, rounded == 0 ? kAlignment : rounded);
  return p;
}

void host_free(void* data, size_t nbytes) {
  if (data == nullptr) return;
  if (mapped(nbytes)) {
    munmap(data, nbytes);
  } else {
    std::free(data);
  }
}

}  // namespace peft
