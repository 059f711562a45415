#include "core/thread_pool.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace peft {

int physical_core_count() {
  // Linux: count distinct (package, core) pairs; hyperthread siblings share a core id.
  std::set<std::pair<std::string, std::string>> cores;
  unsigned logical = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned cpu = 0; cpu < logical; ++cpu) {
    std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream core_file(base + "core_id"), package_file(base + "physical_package_id");
    std::string core, package;
    if (!(core_file >> core) || !(package_file >> package)) return static_cast<int>(logical);
    cores.emplace(package, core);
  }
  return cores.empty() ? static_cast<int>(logical) : static_cast<int>(cores.size());
}

static int configured_thread_count() {
  const char* env = std::getenv("PEFT_NUM_THREADS");
  if (env != nullptr) {
    char* end = nullptr;
    long value = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && value >= 1 && value <= 1024) return static_cast<int>(value);
  }
  return std::max(1, physical_core_count());
}

static thread_local bool t_inside_pool_task = false;

struct ThreadPool::Impl {
  std::mutex run_mutex;  // one parallel region at a time
  std::mutex mutex;
  std::condition_variable wake;
  std::condition_variable done;
  std::vector<std::thread> workers;
  const std::function<void(int)>* task = nullptr;
  int n_tasks = 0;
  int next_task = 0;
  int pending = 0;
  uint64_t generation = 0;
  bool stopping = false;
  std::exception_ptr error;

  void start(int threads) {
    stopping = false;
    for (int i = 1; i < threads; ++i) workers.emplace_back([this] { worker_loop(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  }

  // Claims and runs tasks until none are left. Called with `lock` held; returns with it held.
  void drain(std::unique_lock<std::mutex>& lock) {
    while (next_task < n_tasks) {
      int t = next_task++;
      const auto* fn = task;
      lock.unlock();
      try {
        t_inside_pool_task = true;
        (*fn)(t);
        t_inside_pool_task = false;
      } catch (...) {
        t_inside_pool_task = false;
        lock.lock();
        if (!error) error = std::current_exception();
        lock.unlock();
      }
      lock.lock();
      if (--pending == 0) done.notify_all();
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      wake.wait(lock, [&] { return stopping || generation != seen; });
      if (stopping) return;
      seen = generation;
      drain(lock);
    }
  }
};

ThreadPool::ThreadPool() : impl_(new Impl) { impl_->start(configured_thread_count()); }

ThreadPool::~ThreadPool() {
  impl_->stop();
  delete impl_;
}

ThreadPool& ThreadPool::instance() {
  // Leaked on purpose: joining threads during static destruction at process exit can hang.
  static ThreadPool* pool = new ThreadPool();
  return *pool;
}

int ThreadPool::size() const { return static_cast<int>(impl_->workers.size()) + 1; }

void ThreadPool::resize(int threads) {
  std::lock_guard<std::mutex> region(impl_->run_mutex);
  impl_->stop();
  impl_->start(std::max(1, threads));
}

void ThreadPool::run(int n_tasks, const std::function<void(int)>& task) {
  if (n_tasks <= 0) return;
  std::unique_lock<std::mutex> region(impl_->run_mutex, std::defer_lock);
  if (n_tasks == 1 || t_inside_pool_task || impl_->workers.empty() || !region.try_lock()) {
    for (int t = 0; t < n_tasks; ++t) task(t);
    return;
  }
  std::unique_lock<std::mutex> lock(impl_->mutex);
  impl_->task = &task;
  impl_->n_tasks = n_tasks;
  impl_->next_task = 0;
  impl_->pending = n_tasks;
  impl_->error = nullptr;
  ++impl_->generation;
  impl_->wake.notify_all();
  impl_->drain(lock);
  impl_->done.wait(lock, [&] { return impl_->pending == 0; });
  impl_->task = nullptr;
  impl_->n_tasks = 0;
  std::exception_ptr error = impl_->error;
  impl_->error = nullptr;
  lock.unlock();
  if (error) std::rethrow_exception(error);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  ThreadPool& pool = ThreadPool::instance();
  int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  int chunks = static_cast<int>(std::min<int64_t>(pool.size(), max_chunks));
  if (chunks <= 1) {
    body(0, n);
    return;
  }
  pool.run(chunks, [&](int t) {
    int64_t begin = n * t / chunks;
    int64_t end = n * (t + 1) / chunks;
    if (begin < end) body(begin, end);
  });
}

}  // namespace peft
