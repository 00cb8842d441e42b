// A caching pool for large CPU tensors, switched on per thread (fastseg.memory.cpu_pool(), and
// Mask R-CNN's eval forward on CPU). Why: glibc serves every allocation above its mmap threshold
// (at most 32 MiB) with fresh pages, and each first touch is a page fault. One 800x1088 Mask R-CNN
// forward allocates ~1 GB of such feature maps (a 256-channel P2 map is 56 MB): ~220k faults,
// ~400 ms of its 2.7 s on our 2-core VMs. Freed blocks kept here come back already faulted in, as
// CUDA's caching allocator does for device memory.
//
// The pool wraps the CPU allocator (installed when the library loads, with a higher priority than
// c10's default). Allocations of at least kMinBytes on a thread with the pool on are cut from free
// blocks (best fit; the rest of a larger block stays free) or get a new segment from the wrapped
// allocator; everything else goes to the wrapped allocator unchanged. A pooled block freed on any
// thread returns to the pool and merges with free neighbours, as in CUDA's caching allocator, so
// the pool holds about one call's peak. A request no free block fits first gives back wholly free
// segments (all too small for it), smallest first, up to its own size; a wholly free segment is
// also given back once the pool holds more than twice its peak use; fastseg.memory.empty_cpu_pool()
// gives back all of them. FASTSEG_CPU_POOL=0 leaves c10's allocator alone.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#if defined(__unix__)
#include <pthread.h>
#endif

#include <c10/core/CPUAllocator.h>
#include <torch/library.h>

namespace fastseg {
namespace {

constexpr size_t kMinBytes = size_t(1) << 20;  // smaller blocks come from glibc's heap, reused already

thread_local bool pool_on = false;

bool pool_allowed() {
  static const bool allowed = [] {
    const char* env = std::getenv("FASTSEG_CPU_POOL");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  return allowed;
}

// A pooled block: a piece of a segment (one allocation from the wrapped allocator), linked to its
// neighbours in the segment so that freed neighbours merge back into one block.
struct Segment {
  c10::DataPtr memory;
  size_t size;
};

struct Block {
  Segment* segment;
  char* ptr;
  size_t size;
  bool free;
  Block* prev;  // neighbours in the segment, by address
  Block* next;
};

struct BySize {
  bool operator()(const Block* a, const Block* b) const {
    return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
  }
};

class Pool {
 public:
  static Pool& instance() {
    static Pool* pool = new Pool();  // never destroyed: tensors may be freed during exit
    return *pool;
  }

  void* take(size_t n, c10::Allocator* wrapped) {
    n = round_up(n);
    std::unique_lock<std::mutex> lock(mutex_);
    Block probe{nullptr, nullptr, n, true, nullptr, nullptr};
    auto it = free_.lower_bound(&probe);  // best fit: the smallest free block of at least n bytes
    Block* b = nullptr;
    if (it != free_.end()) {
      b = *it;
      free_.erase(it);
      free_bytes_ -= b->size;
      ++hits_;
    } else {
      // Wholly free segments are all smaller than n here: give back up to n bytes of them,
      // smallest first, so that the new segment takes their place instead of adding to the pool.
      std::vector<Segment*> released = take_free_segments(n);
      lock.unlock();  // the wrapped allocator may be slow (mmap); other threads go on
      for (Segment* seg : released) delete seg;
      auto* seg = new Segment{wrapped->allocate(n), n};
      b = new Block{seg, static_cast<char*>(seg->memory.get()), n, false, nullptr, nullptr};
      lock.lock();
      reserved_bytes_ += n;
      ++misses_;
    }
    if (b->size - n >= kMinBytes) {  // split off the rest as a free block
      auto* rest = new Block{b->segment, b->ptr + n, b->size - n, true, b, b->next};
      if (b->next != nullptr) b->next->prev = rest;
      b->next = rest;
      b->size = n;
      insert_free(rest);
    }
    b->free = false;
    in_use_[b->ptr] = b;
    in_use_bytes_ += b->size;
    peak_in_use_bytes_ = std::max(peak_in_use_bytes_, in_use_bytes_);
    return b->ptr;
  }

  // Returns false when `data` is not a pooled block.
  bool give_back(void* data) {
    Segment* released = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = in_use_.find(data);
      if (it == in_use_.end()) return false;
      Block* b = it->second;
      in_use_.erase(it);
      in_use_bytes_ -= b->size;
      b->free = true;
      b = merge(b, b->prev);
      b = merge(b, b->next);
      // A whole free segment goes back when the pool holds more than twice its peak use (inputs
      // whose sizes keep changing), else it is kept for the next call.
      if (b->prev == nullptr && b->next == nullptr && reserved_bytes_ > 2 * peak_in_use_bytes_) {
        released = b->segment;
        reserved_bytes_ -= released->size;
        delete b;
      } else {
        insert_free(b);
      }
    }
    delete released;  // frees outside the lock
    return true;
  }

  void empty() {
    std::vector<Segment*> released;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released = take_free_segments(SIZE_MAX);
    }
    for (Segment* seg : released) delete seg;
  }

  // fork() while another thread holds the lock would leave the child's copy locked for good.
  void lock_for_fork() { mutex_.lock(); }
  void unlock_after_fork() { mutex_.unlock(); }

  std::vector<int64_t> stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {int64_t(reserved_bytes_), int64_t(free_bytes_), int64_t(in_use_bytes_), int64_t(peak_in_use_bytes_),
            hits_, misses_};
  }

 private:
  // Multiples of 4 KiB: every block starts at the same page offset as its segment.
  static size_t round_up(size_t n) { return (n + 4095) & ~size_t(4095); }

  // Unlinks wholly free segments, smallest first, until at least `bytes` are taken (to be deleted
  // outside the lock).
  std::vector<Segment*> take_free_segments(size_t bytes) {
    std::vector<Segment*> segments;
    size_t taken = 0;
    for (auto it = free_.begin(); it != free_.end() && taken < bytes;) {
      Block* b = *it;
      if (b->prev != nullptr || b->next != nullptr) {  // part of a segment still in use
        ++it;
        continue;
      }
      it = free_.erase(it);
      free_bytes_ -= b->size;
      reserved_bytes_ -= b->segment->size;
      taken += b->segment->size;
      segments.push_back(b->segment);
      delete b;
    }
    return segments;
  }

  void insert_free(Block* b) {
    free_.insert(b);
    free_bytes_ += b->size;
  }

  // Merges free neighbour `other` into `b` (either order in memory); returns the merged block.
  Block* merge(Block* b, Block* other) {
    if (other == nullptr || !other->free) return b;
    free_.erase(other);
    free_bytes_ -= other->size;
    Block* first = other->ptr < b->ptr ? other : b;
    Block* second = first == b ? other : b;
    first->size += second->size;
    first->next = second->next;
    if (second->next != nullptr) second->next->prev = first;
    delete second;
    return first;
  }

  std::mutex mutex_;
  std::set<Block*, BySize> free_;
  std::unordered_map<void*, Block*> in_use_;
  size_t reserved_bytes_ = 0, free_bytes_ = 0, in_use_bytes_ = 0, peak_in_use_bytes_ = 0;
  int64_t hits_ = 0, misses_ = 0;
};

class PoolingAllocator final : public c10::Allocator {
 public:
  explicit PoolingAllocator(c10::Allocator* wrapped) { wrapped_ = wrapped; }

  c10::DataPtr allocate(size_t n) override {
    if (!pool_on || n < kMinBytes) return wrapped_->allocate(n);
    void* data = Pool::instance().take(n, wrapped_);
    return {data, data, &delete_any, c10::Device(c10::DeviceType::CPU)};
  }

  // raw_allocate/raw_deallocate (ideep's buffers use them) work for blocks of either source:
  // allocate() returns context == data for pooled blocks, as the wrapped allocator does.
  c10::DeleterFnPtr raw_deleter() const override { return wrapped_->raw_deleter() ? &delete_any : nullptr; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  static void delete_any(void* data) {
    if (!Pool::instance().give_back(data)) wrapped_->raw_deleter()(data);
  }

  static c10::Allocator* wrapped_;  // c10's allocator before ours; set once, before any use
};

c10::Allocator* PoolingAllocator::wrapped_ = nullptr;

// Installed while the library loads, before other threads of the process are likely to allocate
// (c10's allocator table is not meant to change under running threads); with the pool off for a
// thread, the wrapper only forwards. FASTSEG_CPU_POOL=0 leaves c10's allocator alone.
const bool installed = [] {
  if (!pool_allowed()) return false;
  static PoolingAllocator* allocator = new PoolingAllocator(c10::GetCPUAllocator());
  c10::SetCPUAllocator(allocator, /*priority=*/100);
#if defined(__unix__)
  pthread_atfork([] { Pool::instance().lock_for_fork(); }, [] { Pool::instance().unlock_after_fork(); },
                 [] { Pool::instance().unlock_after_fork(); });
#endif
  return true;
}();

// Switches the pool on or off for the calling thread; returns the previous setting.
bool set_cpu_pool(bool enabled) {
  const bool previous = pool_on;
  pool_on = enabled && installed;
  return previous;
}

void empty_cpu_pool() { Pool::instance().empty(); }

// [reserved bytes, free bytes, in-use bytes, peak in-use bytes, hits, misses]
std::vector<int64_t> cpu_pool_stats() { return Pool::instance().stats(); }

}  // namespace
}  // namespace fastseg

// Not tensor ops: switches used by fastseg.memory, in their own namespace (the op contract tests
// cover torch.ops.fastseg.*).
TORCH_LIBRARY(fastseg_memory, m) {
  m.def("set_cpu_pool(bool enabled) -> bool", &fastseg::set_cpu_pool);
  m.def("empty_cpu_pool() -> ()", &fastseg::empty_cpu_pool);
  m.def("cpu_pool_stats() -> int[]", &fastseg::cpu_pool_stats);
}
