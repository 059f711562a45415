// See host_memory.h for why large blocks bypass malloc.
#include "core/host_memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"

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

// Freed mapped blocks kept for reuse at the same size: a training step frees and maps again the
// same few hundred MB of activations every step, and fresh pages cost a fault and the kernel's
// zeroing each (about 5% of a step). Bounded, so resident memory stays bounded.
constexpr size_t kCacheBytes = size_t{256} << 20;
constexpr size_t kCacheBlocks = 64;

class BlockCache {
 public:
  void* take(size_t nbytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = blocks_.size(); i-- > 0;) {  // the most recently freed first
      if (blocks_[i].nbytes != nbytes) continue;
      void* p = blocks_[i].data;
      blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(i));
      bytes_ -= nbytes;
      return p;
    }
    return nullptr;
  }
  bool put(void* data, size_t nbytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes_ + nbytes > kCacheBytes || blocks_.size() >= kCacheBlocks) return false;
    blocks_.push_back({data, nbytes});
    bytes_ += nbytes;
    return true;
  }
  void release() {
    std::vector<Block> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(blocks_);
      bytes_ = 0;
    }
    for (const Block& b : blocks) munmap(b.data, b.nbytes);
  }

 private:
  struct Block {
    void* data;
    size_t nbytes;
  };
  std::mutex mutex_;
  std::vector<Block> blocks_;
  size_t bytes_ = 0;
};

BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache();  // leaked on purpose: used by tensors freed at exit
  return *cache;
}
}  // namespace

void* host_allocate(size_t nbytes, bool zero_fill) {
  if (mapped(nbytes)) {
    if (void* reused = block_cache().take(nbytes)) {
      if (zero_fill) std::memset(reused, 0, nbytes);
      return reused;
    }
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
    if (!block_cache().put(data, nbytes)) munmap(data, nbytes);
  } else {
    std::free(data);
  }
}

HostBuffer::HostBuffer(size_t nbytes) : data_(host_allocate(nbytes, false)), nbytes_(nbytes) {
  if (data_ == nullptr)
    throw Error(ErrorCode::Memory, "Could not allocate " + std::to_string(nbytes) + " bytes of scratch memory");
}

HostBuffer::~HostBuffer() { host_free(data_, nbytes_); }

void host_release_cached() { block_cache().release(); }

}  // namespace peft
