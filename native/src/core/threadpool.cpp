// threadpool.cpp: see threadpool.h.
#include "threadpool.h"
#include "settings.h"

#include <unistd.h>

#include <cstdlib>

namespace carzero {

namespace {
thread_local bool tls_in_pool_task = false;
}

int ThreadPool::default_threads() {
  if (settings().num_threads > 0) return settings().num_threads;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = static_cast<long>(std::thread::hardware_concurrency());
  return n < 1 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : default_threads();
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work_on_job() {
  const auto& fn = *job_;
  const int64_t n = job_tasks_;
  bool prev = tls_in_pool_task;
  tls_in_pool_task = true;
  for (;;) {
    int64_t t = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (t >= n) break;
    try {
      fn(t);
    } catch (...) {
      std::lock_guard<std::mutex> lk(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
    tasks_done_.fetch_add(1, std::memory_order_acq_rel);
  }
  tls_in_pool_task = prev;
}

void ThreadPool::worker_loop(int) {
  uint64_t seen = 0;
  for (;;) {
    // Spin briefly for a new generation (low dispatch latency for back-to-back small jobs),
    // then sleep on the condition variable.
    bool got = false;
    for (int spin = 0; spin < 20000; ++spin) {
      if (generation_.load(std::memory_order_acquire) != seen) {
        got = true;
        break;
      }
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    std::unique_lock<std::mutex> lk(mu_);
    if (!got) cv_work_.wait(lk, [&] { return stop_ || generation_.load() != seen; });
    if (stop_) return;
    seen = generation_.load();
    if (job_ == nullptr) continue;
    ++active_workers_;
    lk.unlock();
    work_on_job();
    lk.lock();
    if (--active_workers_ == 0) cv_done_.notify_all();
  }
}

void ThreadPool::run(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1 || tls_in_pool_task) {
    bool prev = tls_in_pool_task;
    tls_in_pool_task = true;
    try {
      for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    } catch (...) {
      tls_in_pool_task = prev;
      throw;
    }
    tls_in_pool_task = prev;
    return;
  }
  std::lock_guard<std::mutex> submit(submit_mu_);
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = &fn;
    job_tasks_ = n_tasks;
    next_task_.store(0);
    tasks_done_.store(0);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_work_.notify_all();
  work_on_job();
  // Wait until every task finished and every worker has left the job (so job_ can be cleared).
  while (tasks_done_.load(std::memory_order_acquire) < n_tasks) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, [&] { return active_workers_ == 0; });
    job_ = nullptr;
  }
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = static_cast<int64_t>(n_threads_) * 4;
  int64_t max_chunks = (n + grain - 1) / grain;
  if (chunks > max_chunks) chunks = max_chunks;
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  int64_t per = (n + chunks - 1) / chunks;
  run(chunks, [&](int64_t c) {
    int64_t b = c * per, e = b + per < n ? b + per : n;
    if (b < e) fn(b, e);
  });
}

ThreadPool& default_pool() {
  static ThreadPool pool(0);
  return pool;
}

}  // namespace carzero
