// One process-wide pool of worker threads, sized to the physical cores (PEFT_NUM_THREADS overrides).
// parallel_for splits [0, n) into contiguous chunks; the calling thread takes part. Calls made while
// the pool is busy (another async call, or nested inside a task) run inline on the caller instead of
// waiting, so concurrent AsyncWorkers never deadlock.
#pragma once
#include <cstdint>
#include <functional>

namespace peft {

int physical_core_count();

class ThreadPool {
 public:
  static ThreadPool& instance();
  int size() const;  // threads that take part in a parallel_for, the caller included
  // Runs task(t) for t in [0, n_tasks), spread over the pool. Exceptions from tasks are rethrown here.
  void run(int n_tasks, const std::function<void(int)>& task);
  // Resizes the pool (waits for running work). threads >= 1.
  void resize(int threads);

 private:
  ThreadPool();
  ~ThreadPool();
  struct Impl;
  Impl* impl_;
};

// Calls body(begin, end) over chunks of [0, n), at least grain items each.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace peft
