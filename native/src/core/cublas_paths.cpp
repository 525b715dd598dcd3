// cublas_paths.cpp: see cublas_paths.h.
#include "core/cublas_paths.h"
#include "core/settings.h"

#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

namespace carzero {

namespace {

const char* const kSonames[] = {"libcublas.so.13", "libcublas.so.12"};

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

// Matches of a glob pattern, newest-looking first (reverse lexical: cuda-13.1 before cuda-13.0).
std::vector<std::string> glob_dirs(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (glob(pattern.c_str(), GLOB_ONLYDIR | GLOB_NOSORT, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  std::sort(out.rbegin(), out.rend());
  return out;
}

void add_folder(std::vector<std::string>* out, const std::string& dir) {
  if (dir.empty()) return;
  for (const char* so : kSonames) {
    const std::string p = dir + "/" + so;
    if (is_file(p) && std::find(out->begin(), out->end(), p) == out->end()) out->push_back(p);
  }
}

}  // namespace

std::vector<std::string> cublas_candidates() {
  std::vector<std::string> c;
  if (const std::string p = settings().cublas_path; !p.empty()) {
    if (is_dir(p)) {
      for (const char* so : kSonames) c.push_back(p + "/" + so);
    } else {
      c.push_back(p);
    }
  }
  for (const char* so : kSonames) c.emplace_back(so);
  // the CUDA toolkit
  for (const std::string& home : {settings().cuda_home, settings().cuda_path})
    if (!home.empty()) {
      add_folder(&c, home + "/lib64");
      add_folder(&c, home + "/targets/x86_64-linux/lib");
    }
  add_folder(&c, "/usr/local/cuda/lib64");
  for (const auto& d : glob_dirs("/usr/local/cuda-*/lib64")) add_folder(&c, d);
  // conda's CUDA packages
  if (const std::string& conda = settings().conda_prefix; !conda.empty()) add_folder(&c, conda + "/lib");
  // PyTorch's pip dependencies
  std::vector<std::string> prefixes;
  for (const std::string& v : {settings().virtual_env, settings().conda_prefix})
    if (!v.empty()) prefixes.push_back(v);
  if (const std::string& home = settings().home; !home.empty()) prefixes.push_back(home + "/.local");
  for (const char* p : {"/usr/local", "/usr", "/opt/conda"}) prefixes.emplace_back(p);
  for (const auto& prefix : prefixes)
    for (const char* pk : {"site-packages", "dist-packages"})
      for (const auto& site : glob_dirs(prefix + "/lib/python3*/" + pk))
        for (const char* sub : {"/nvidia/cu13/lib", "/nvidia/cublas/lib"}) add_folder(&c, site + sub);
  return c;
}

std::string cublaslt_sibling(const std::string& cublas) {
  const std::string key = "libcublas.";
  const size_t pos = cublas.rfind(key);
  if (pos == std::string::npos) return "";
  return cublas.substr(0, pos) + "libcublasLt." + cublas.substr(pos + key.size());
}

void* open_cublas(const std::string& candidate, std::string* error) {
  if (candidate.find('/') != std::string::npos) {
    // Held for the life of the process (as libcublas itself is); failure is fine: libcublas's
    // own search may still find one.
    const std::string lt = cublaslt_sibling(candidate);
    if (!lt.empty() && is_file(lt)) dlopen(lt.c_str(), RTLD_NOW | RTLD_LOCAL);
  }
  void* h = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h && error) {
    const char* e = dlerror();
    *error = e ? e : "dlopen failed";
  }
  return h;
}

}  // namespace carzero
