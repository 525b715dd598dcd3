// threadpool.h: a fixed pool of worker threads that run one parallel job at a time.
//
// run(n_tasks, fn) calls fn(task) for every task in [0, n_tasks) on the workers and the calling
// thread, and returns when all are done. Exceptions thrown by tasks are captured and the first
// one is rethrown in the caller after the job has drained. Called from inside a task (nested
// parallelism), run() executes serially on that thread instead of deadlocking. Concurrent callers
// from different threads (two async jobs) are serialised.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace carzero {

class ThreadPool {
 public:
  // n_threads <= 0: default_threads(). The pool runs n_threads - 1 workers plus the caller.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  void run(int64_t n_tasks, const std::function<void(int64_t)>& fn);
  // Splits [0, n) into about size() * 4 chunks of at least `grain` items: fn(begin, end).
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // CARZERO_NUM_THREADS if set and positive, else the number of online CPUs.
  static int default_threads();

 private:
  void worker_loop(int index);
  void work_on_job();

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex submit_mu_;  // one job at a time
  std::mutex mu_;
  std::condition_variable cv_work_;
  std::condition_variable cv_done_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<int64_t> tasks_done_{0};
  std::atomic<uint64_t> generation_{0};
  int active_workers_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::mutex error_mu_;
};

// The process-wide default pool, created on first use with default_threads() threads. Contexts
// may own their own pools instead (cz_context_create with num_threads).
ThreadPool& default_pool();

}  // namespace carzero
