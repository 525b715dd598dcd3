// feed.cpp: image files -> a preprocessed batch, on a few threads (image.h: read_file, load_batch).
// The C ABI's cz_images_load uses load_batch; the N-API decode pool (napi/image.cpp) uses
// read_file with its own long-lived threads.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <thread>

#include "core/status.h"
#include "image/image.h"

namespace carzero {
namespace img {

std::vector<uint8_t> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_error(CZ_ERR_IO, "cannot read (%s)", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw_error(CZ_ERR_IO, "cannot read (%s)", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_error(CZ_ERR_IO, "cannot read (%s)", S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
  }
#ifdef POSIX_FADV_SEQUENTIAL
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  std::vector<uint8_t> out;
  try {
    out.resize(static_cast<size_t>(st.st_size));
  } catch (...) {
    ::close(fd);
    throw;
  }
  size_t got = 0;
  while (got < out.size()) {
    ssize_t r = ::read(fd, out.data() + got, out.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = errno;
      ::close(fd);
      throw_error(CZ_ERR_IO, "cannot read (%s)", r == 0 ? "the file shrank while being read" : std::strerror(err));
    }
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  return out;
}

ItemStatus load_item(const std::string& path, std::vector<uint8_t>&& bytes, const DecodeOptions& dec,
                     const PreprocessOptions& pre, uint8_t* padded, float* out, PadLayout* layout) {
  ItemStatus s;
  try {
    std::vector<uint8_t> b = path.empty() ? std::move(bytes) : read_file(path);
    Gray8 g = decode(b.data(), b.size(), dec);
    b = std::vector<uint8_t>();  // the file is no longer needed: free it before preprocessing
    s.width = g.width;
    s.height = g.height;
    if (padded || out) {
      const PadLayout l = preprocess(g, pre, padded, out);
      if (layout) *layout = l;
    }
  } catch (const Error& e) {
    s.code = e.code();
    s.message = e.what();
  } catch (const std::bad_alloc&) {
    s.code = CZ_ERR_OUT_OF_MEMORY;
    s.message = "out of host memory";
  } catch (const std::exception& e) {
    s.code = CZ_ERR_INTERNAL;
    s.message = e.what();
  }
  return s;
}

std::vector<ItemStatus> load_batch(const std::vector<std::string>& paths, int threads, const DecodeOptions& dec,
                                   const PreprocessOptions& pre, float* out) {
  const size_t n = paths.size();
  const size_t plane = size_t(pre.crop) * size_t(pre.crop);
  std::vector<ItemStatus> st(n);
  if (n == 0) return st;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (size_t(threads) > n) threads = static_cast<int>(n);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      float* dst = out + i * plane;
      st[i] = load_item(paths[i], {}, dec, pre, nullptr, dst, nullptr);
      if (st[i].code != CZ_OK) {
        st[i].message = paths[i] + ": " + st[i].message;
        std::memset(dst, 0, plane * sizeof(float));
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return st;
}

}  // namespace img
}  // namespace carzero
