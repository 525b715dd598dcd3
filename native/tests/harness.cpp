// harness.cpp: the harness machinery (guarded buffers, comparisons, finite differences), the
// CPU backend and the test_ops command line:
//   test_ops [-o <op substring>] [-b <backend>] [-v] [-l]
// Prints one line per case and ends with "N passed, N failed[, N skipped]"; exits 1 on failure.
#include "harness.h"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>

#include "core/cpu_features.h"
#include "core/threadpool.h"

namespace cztest {

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::vector<double> to_f64(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

std::string fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += a[i] * b[i];
  return s;
}

void add_case(Registry& r, std::string name, std::function<void(Ctx&)> run) {
  r.push_back(Case{std::move(name), std::move(run)});
}

// ---- Ctx ------------------------------------------------------------------------------------------
namespace {
uint8_t guard_byte(size_t i) { return static_cast<uint8_t>(0xA5u ^ (i * 29u)); }
}  // namespace

Ctx::Ctx(Backend& b, const std::string& case_name, bool v) : be(b), rng(hash_name(case_name)), verbose(v) {}

Ctx::~Ctx() {
  for (auto& b : bufs_) be.free(be.ctx, b->base);
}

DevBuf* Ctx::output(const std::string& name, const void* init, size_t bytes) {
  auto b = std::make_unique<DevBuf>();
  b->name = name;
  b->bytes = bytes;
  b->base = be.alloc(be.ctx, bytes + 2 * kGuardBytes);
  if (!b->base) throw std::runtime_error("device alloc failed for " + name);
  b->ptr = static_cast<uint8_t*>(b->base) + kGuardBytes;
  std::vector<uint8_t> g(kGuardBytes);
  for (size_t i = 0; i < kGuardBytes; ++i) g[i] = guard_byte(i);
  be.upload(be.ctx, b->base, g.data(), kGuardBytes);
  be.upload(be.ctx, static_cast<uint8_t*>(b->ptr) + bytes, g.data(), kGuardBytes);
  if (init && bytes) be.upload(be.ctx, b->ptr, init, bytes);
  bufs_.push_back(std::move(b));
  return bufs_.back().get();
}

DevBuf* Ctx::input(const std::string& name, const void* data, size_t bytes) {
  DevBuf* b = output(name, data, bytes);
  b->is_input = true;
  b->host_copy.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
  return b;
}

float* Ctx::out_nan(const std::string& name, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
  return out(name, v);
}

void Ctx::check(const char* after_what) {
  std::vector<uint8_t> g(kGuardBytes);
  for (auto& b : bufs_) {
    for (int side = 0; side < 2; ++side) {
      const uint8_t* src = side == 0 ? static_cast<uint8_t*>(b->base) : static_cast<uint8_t*>(b->ptr) + b->bytes;
      be.download(be.ctx, g.data(), src, kGuardBytes);
      for (size_t i = 0; i < kGuardBytes; ++i)
        if (g[i] != guard_byte(i)) {
          fail(fmt("%s: guard bytes %s buffer '%s' overwritten (byte %zu)", after_what, side == 0 ? "before" : "after",
                   b->name.c_str(), i));
          break;
        }
    }
    if (b->is_input && b->bytes) {
      std::vector<uint8_t> now(b->bytes);
      be.download(be.ctx, now.data(), b->ptr, b->bytes);
      if (std::memcmp(now.data(), b->host_copy.data(), b->bytes) != 0)
        fail(fmt("%s: input '%s' was modified", after_what, b->name.c_str()));
    }
  }
}

void Ctx::fail(const std::string& w) {
  if (!failed) why = w;
  failed = true;
  if (verbose) std::printf("      fail: %s\n", w.c_str());
}

void Ctx::skip(const std::string& w) {
  skipped = true;
  why = w;
}

void Ctx::expect(bool cond, const std::string& w) {
  if (!cond) fail(w);
}

double Ctx::expect_close(const std::string& what, const std::vector<float>& out, const std::vector<double>& ref,
                         double tol) {
  if (out.size() != ref.size()) {
    fail(fmt("%s: size %zu != reference size %zu", what.c_str(), out.size(), ref.size()));
    return INFINITY;
  }
  double num = 0, den = 0, worst = -1;
  size_t wi = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i]) && std::isfinite(ref[i])) {
      fail(fmt("%s: non-finite value %g at [%zu] (reference %g)", what.c_str(), out[i], i, ref[i]));
      return INFINITY;
    }
    if (!std::isfinite(ref[i])) {  // reference inf/-inf (e.g. lse of a fully masked row)
      if (!(out[i] == ref[i])) {
        fail(fmt("%s: [%zu] = %g, reference %g", what.c_str(), i, out[i], ref[i]));
        return INFINITY;
      }
      continue;
    }
    double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    if (std::fabs(d) > worst) worst = std::fabs(d), wi = i;
  }
  double nmse = den > 0 ? num / den : num;
  if (verbose) std::printf("      %-28s nmse=%.3e (n=%zu)\n", what.c_str(), nmse, out.size());
  if (!(nmse <= tol))
    fail(fmt("%s: nmse=%.3e > %.1e (worst [%zu]: %.9g vs reference %.9g)", what.c_str(), nmse, tol, wi,
             wi < out.size() ? out[wi] : 0.0f, wi < ref.size() ? ref[wi] : 0.0));
  max_nmse = std::max(max_nmse, nmse);
  return nmse;
}

void Ctx::expect_throw(const std::string& what, const std::function<void()>& fn, const std::string& substr) {
  try {
    fn();
  } catch (const carzero::Error& e) {
    std::string m = e.what();
    if (m.find(substr) == std::string::npos)
      fail(fmt("%s: message \"%s\" does not contain \"%s\"", what.c_str(), m.c_str(), substr.c_str()));
    else if (verbose)
      std::printf("      %s threw: %s\n", what.c_str(), m.c_str());
    return;
  } catch (const std::exception& e) {
    fail(fmt("%s: threw a non-carzero exception: %s", what.c_str(), e.what()));
    return;
  }
  fail(what + ": did not throw");
}

void Ctx::check_grads(const std::function<double()>& loss, std::vector<GradInput> inputs, double tol, int directions) {
  const double dir_tol = std::sqrt(tol) * 0.1;
  for (auto& gi : inputs) {
    std::vector<double>& x = *gi.x;
    const size_t n = x.size();
    if (gi.analytic.size() != n) {
      fail(fmt("grad %s: size %zu != input size %zu", gi.name.c_str(), gi.analytic.size(), n));
      continue;
    }
    if (n == 0) continue;
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(gi.analytic[i])) {
        fail(fmt("grad %s: non-finite value %g at [%zu]", gi.name.c_str(), gi.analytic[i], i));
        return;
      }
    // sampled coordinates
    std::vector<size_t> idx;
    if (n <= static_cast<size_t>(gi.samples)) {
      for (size_t i = 0; i < n; ++i) idx.push_back(i);
    } else {
      std::set<size_t> s;
      while (s.size() < static_cast<size_t>(gi.samples))
        s.insert(static_cast<size_t>(rng.below(static_cast<int64_t>(n))));
      idx.assign(s.begin(), s.end());
    }
    double num = 0, den = 0, worst = -1, wfd = 0, wan = 0;
    size_t wi = 0;
    for (size_t i : idx) {
      const double xi = x[i], h = 1e-6 * std::max(1.0, std::fabs(xi));
      x[i] = xi + h;
      const double xp = x[i], lp = loss();
      x[i] = xi - h;
      const double xm = x[i], lm = loss();
      x[i] = xi;
      const double fd = (lp - lm) / (xp - xm), an = gi.analytic[i];
      num += (an - fd) * (an - fd);
      den += fd * fd;
      if (std::fabs(an - fd) > worst) worst = std::fabs(an - fd), wi = i, wfd = fd, wan = an;
    }
    const double gn = num / std::max(den, 1e-8 * static_cast<double>(idx.size()));
    if (verbose)
      std::printf("      grad %-23s nmse=%.3e (%zu of %zu coordinates)\n", gi.name.c_str(), gn, idx.size(), n);
    if (!(gn <= tol))
      fail(fmt("grad %s: nmse=%.3e > %.1e vs finite differences (worst [%zu]: %.9g vs fd %.9g)", gi.name.c_str(), gn,
               tol, wi, wan, wfd));
    max_nmse = std::max(max_nmse, gn);
    // random directional derivatives (every coordinate at once)
    double an_norm = 0;
    for (double a : gi.analytic) an_norm += a * a;
    an_norm = std::sqrt(an_norm);
    for (int d = 0; d < directions; ++d) {
      std::vector<double> saved = x, D(n);
      for (auto& v : D) v = (rng.next() & 1) ? 1.0 : -1.0;
      const double h = 1e-6;
      for (size_t i = 0; i < n; ++i) x[i] = saved[i] + h * D[i];
      const double lp = loss();
      for (size_t i = 0; i < n; ++i) x[i] = saved[i] - h * D[i];
      const double lm = loss();
      x = saved;
      const double fd = (lp - lm) / (2 * h), an = dot(gi.analytic, D);
      const double rel = std::fabs(fd - an) / std::max(an_norm, 1e-6);
      if (verbose)
        std::printf("      grad %-23s direction %d: fd=%.9g analytic=%.9g rel=%.2e\n", gi.name.c_str(), d, fd, an, rel);
      if (!(rel <= dir_tol))
        fail(fmt("grad %s: directional derivative %.9g vs finite differences %.9g (rel %.2e > %.1e)", gi.name.c_str(),
                 an, fd, rel, dir_tol));
    }
  }
}

// ---- the CPU backend --------------------------------------------------------------------------------
namespace {

void* cpu_alloc(void*, size_t bytes) { return std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }
void cpu_free(void*, void* p) { std::free(p); }
void cpu_copy(void*, void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

bool cpu_gemm_isa(Exec& ex, const GemmArgs& g, const std::string& isa, std::string* why) {
  carzero::CpuIsa level;
  if (isa == "generic")
    level = carzero::CpuIsa::Generic;
  else if (isa == "avx2")
    level = carzero::CpuIsa::Avx2;
  else if (isa == "avx512")
    level = carzero::CpuIsa::Avx512;
  else {
    *why = "unknown isa " + isa;
    return false;
  }
  if (static_cast<int>(carzero::cpu_isa_detected()) < static_cast<int>(level)) {
    *why = "CPU lacks " + isa;
    return false;
  }
  try {
    carzero::cpu::gemm_with_isa(ex, g, level);
  } catch (const carzero::Error& e) {
    if (e.code() == CZ_ERR_UNSUPPORTED) {
      *why = e.what();
      return false;
    }
    throw;
  }
  return true;
}

// -o FILTER: the case names containing FILTER, or any of its '|'-separated parts.
bool matches(const std::string& name, const std::string& filter) {
  if (filter.empty()) return true;
  size_t b = 0;
  for (;;) {
    const size_t e = filter.find('|', b);
    const std::string part = filter.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (!part.empty() && name.find(part) != std::string::npos) return true;
    if (e == std::string::npos) return false;
    b = e + 1;
  }
}

void usage() {
  std::printf(
      "usage: test_ops [-o <op substring>] [-b <backend>] [-v] [-l]\n"
      "  -o S   run only cases whose name contains S (or any part of S split at |)\n"
      "  -b B   run on backend B (cpu; cuda-emu: bf16 attention on the CUDA kernels, emulated on the CPU;\n"
      "         cuda when this build has CUDA and a GPU is present)\n"
      "  -v     print every comparison\n"
      "  -l     list case names and exit\n");
}

}  // namespace
}  // namespace cztest

int main(int argc, char** argv) {
  using namespace cztest;
  std::string filter, backend_name = "cpu";
  bool verbose = false, list = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o" && i + 1 < argc)
      filter = argv[++i];
    else if (a == "-b" && i + 1 < argc)
      backend_name = argv[++i];
    else if (a == "-v")
      verbose = true;
    else if (a == "-l")
      list = true;
    else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }

  Registry reg;
  register_gemm_cases(reg);
  register_nn_cases(reg);
  register_attention_cases(reg);
  register_data_cases(reg);
  register_misc_cases(reg);
  register_error_cases(reg);
  register_warp_emu_cases(reg);

  if (list) {
    for (auto& c : reg)
      if (matches(c.name, filter)) std::printf("%s\n", c.name.c_str());
    return 0;
  }

  // Backends: the CPU today; the CUDA backend adds an entry here (its cases are compared with the
  // same float64 references).
  carzero::ThreadPool pool(0);
  Backend cpu;
  cpu.name = "cpu";
  cpu.ops = &carzero::cpu_ops();
  cpu.exec.pool = &pool;
  cpu.alloc = cpu_alloc;
  cpu.free = cpu_free;
  cpu.upload = cpu_copy;
  cpu.download = cpu_copy;
  cpu.gemm_isa = cpu_gemm_isa;
  std::vector<Backend*> backends = {&cpu};
  // The CUDA backend runs the same cases against the same float64 references when present.
  Backend cuda;
  std::string cuda_why;
  const bool have_cuda = make_cuda_backend(&cuda, &cuda_why);
  if (have_cuda) backends.push_back(&cuda);
  Backend emu;
  make_emu_backend(&emu, cpu);
  backends.push_back(&emu);
  Backend* be = nullptr;
  for (auto* b : backends)
    if (b->name == backend_name) be = b;
  if (!be && backend_name == "cuda") {
    // No GPU here: not a failure of the CPU build, unless the caller requires CUDA.
    std::printf("cuda: CUDA cases skipped (%s)\n", cuda_why.c_str());
    const char* req = std::getenv("CARZERO_REQUIRE_CUDA");
    return (req && std::string(req) == "1") ? 1 : 0;
  }
  if (!be) {
    std::printf("unknown backend '%s' (available: cpu, cuda-emu%s)\n", backend_name.c_str(), have_cuda ? ", cuda" : "");
    return 2;
  }

  std::printf("backend %s: %d threads, isa %s (%s)\n", be->name.c_str(), pool.size(),
              carzero::cpu_isa_name(carzero::cpu_isa()), carzero::cpu_features().brand.c_str());
  int passed = 0, failed = 0, skipped = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& c : reg) {
    if (!matches(c.name, filter)) continue;
    Ctx ctx(*be, c.name, verbose);
    const auto c0 = std::chrono::steady_clock::now();
    try {
      c.run(ctx);
    } catch (const carzero::Error& e) {
      ctx.fail(std::string("unexpected carzero::Error: ") + e.what());
    } catch (const std::exception& e) {
      ctx.fail(std::string("unexpected exception: ") + e.what());
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count();
    if (ctx.failed) {
      ++failed;
      std::printf("  FAIL %s  %s\n", c.name.c_str(), ctx.why.c_str());
    } else if (ctx.skipped) {
      ++skipped;
      std::printf("  SKIP %s  %s\n", c.name.c_str(), ctx.why.c_str());
    } else {
      ++passed;
      if (verbose)
        std::printf("  OK   %s  nmse=%.2e  (%.0f ms)\n", c.name.c_str(), ctx.max_nmse, ms);
      else
        std::printf("  OK   %s  nmse=%.2e\n", c.name.c_str(), ctx.max_nmse);
    }
    std::fflush(stdout);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%d cases on %s in %.1f s\n", passed + failed + skipped, be->name.c_str(), secs);
  if (!have_cuda) std::printf("cuda: CUDA cases skipped (%s)\n", cuda_why.c_str());
  if (skipped)
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  else
    std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
