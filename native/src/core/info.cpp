// info.cpp: the CUDA availability probe and the capabilities report (`carzero info`).
//
// The driver (libcuda.so.1) and cuBLAS are opened with dlopen at run time, never linked, so this
// binary loads on machines without a GPU, a driver or cuBLAS and can say which one is missing.
#include <dlfcn.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "context.h"
#include "cublas_paths.h"
#include "json.h"
#include "cpu_features.h"
#include "threadpool.h"
#include "image/image.h"

namespace carzero {

namespace {

// The driver branch a CUDA runtime major version needs (NVIDIA's CUDA Toolkit release notes: CUDA
// 13.x needs R580 or newer; 12.x R525, with minor-version compatibility inside a major version).
int driver_floor(int runtime_version) {
  int major = runtime_version / 1000;
  return major >= 13 ? 580 : major == 12 ? 525 : 0;
}

// "550.54.15" from /proc/driver/nvidia/version, or "" when not readable.
std::string driver_release() {
  FILE* f = std::fopen("/proc/driver/nvidia/version", "r");
  if (!f) return "";
  char line[512] = {0};
  std::string out;
  if (std::fgets(line, sizeof line, f)) {
    std::string l(line);
    // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
    for (size_t i = 0; i < l.size() && out.empty(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(l[i])) || (i && !std::isspace(static_cast<unsigned char>(l[i - 1]))))
        continue;
      size_t j = i;
      while (j < l.size() && (std::isdigit(static_cast<unsigned char>(l[j])) || l[j] == '.')) ++j;
      std::string tok = l.substr(i, j - i);
      if (tok.find('.') != std::string::npos) out = tok;
    }
  }
  std::fclose(f);
  return out;
}

std::string cuda_version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown error";
}

CudaStatus probe_cuda() {
  CudaStatus s;
#ifdef CARZERO_WITH_CUDA
  s.compiled = true;
#ifdef CZ_CUDA_RUNTIME_VERSION
  s.runtime_version = CZ_CUDA_RUNTIME_VERSION;
#endif
#endif
  std::vector<std::string> missing;
  if (!s.compiled) missing.push_back("this build has no CUDA backend");

  void* cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!cu) {
    missing.push_back("no NVIDIA driver (" + dl_error() + ")");
  } else {
    using InitFn = int (*)(unsigned);
    using IntFn = int (*)(int*);
    auto cu_init = reinterpret_cast<InitFn>(dlsym(cu, "cuInit"));
    auto cu_version = reinterpret_cast<IntFn>(dlsym(cu, "cuDriverGetVersion"));
    auto cu_count = reinterpret_cast<IntFn>(dlsym(cu, "cuDeviceGetCount"));
    if (!cu_init || !cu_count) {
      missing.push_back("libcuda.so.1 lacks cuInit/cuDeviceGetCount");
    } else {
      int rc = cu_init(0);
      if (cu_version) cu_version(&s.driver_version);
      s.driver_release = driver_release();
      if (s.runtime_version && s.driver_version && s.driver_version < s.runtime_version) {
        // Checked before anything of the runtime runs: the CUDA runtime would fail with
        // cudaErrorInsufficientDriver on the first call.
        s.driver_too_old = true;
        int floor = driver_floor(s.runtime_version);
        missing.push_back("NVIDIA driver too old: " +
                          (s.driver_release.empty() ? std::string("the driver") : "driver " + s.driver_release) +
                          " supports CUDA up to " + cuda_version_string(s.driver_version) + ", this build's CUDA " +
                          cuda_version_string(s.runtime_version) + " runtime needs " +
                          (floor ? "an R" + std::to_string(floor) + " or newer driver" : "a newer driver") + " (CUDA " +
                          cuda_version_string(s.runtime_version) + "); running on the CPU");
      } else if (rc != 0) {
        missing.push_back("cuInit failed with CUresult " + std::to_string(rc) +
                          (rc == 100 ? " (no CUDA-capable device)" : ""));
      } else {
        s.driver = true;
        if (cu_count(&s.device_count) != 0 || s.device_count == 0) missing.push_back("no CUDA device found");
      }
    }
    // The driver stays loaded: unloading it while a backend may use it later is unsafe.
  }

  std::string tried;
  for (const auto& c : cublas_candidates()) {
    void* h = open_cublas(c, nullptr);
    if (h) {
      s.cublas_path = c;
      dlclose(h);
      break;
    }
    tried += (tried.empty() ? "" : ", ") + c;
  }
  if (s.cublas_path.empty()) missing.push_back("cuBLAS not found (tried " + tried + ")");

  s.available = missing.empty();
  for (size_t i = 0; i < missing.size(); ++i) s.reason += (i ? "; " : "") + missing[i];
  return s;
}

// one JSON string writer for the package (core/json.cpp)
std::string json_str(const std::string& v) { return json::quote(v); }

}  // namespace

const CudaStatus& cuda_status() {
  static const CudaStatus s = probe_cuda();
  return s;
}

std::string info_json() {
  const CpuFeatures& f = cpu_features();
  const CudaStatus& c = cuda_status();
  std::string feats;
  auto add = [&](bool on, const char* n) {
    if (on) feats += std::string(feats.empty() ? "" : ",") + "\"" + n + "\"";
  };
  add(f.sse42, "sse4.2");
  add(f.avx && f.os_avx, "avx");
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f && f.os_avx512, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512dq, "avx512dq");
  add(f.avx512_vnni, "avx512_vnni");
  add(f.avx512_bf16, "avx512_bf16");
  std::string j = "{";
  j += "\"version\":" + json_str(CZ_VERSION_STRING) + ",";
  j += "\"cpu\":{\"vendor\":" + json_str(f.vendor) + ",\"brand\":" + json_str(f.brand) + ",\"features\":[" + feats +
       "],\"isa_detected\":" + json_str(cpu_isa_name(cpu_isa_detected())) +
       ",\"isa\":" + json_str(cpu_isa_name(cpu_isa())) + ",\"bf16_dot\":" + (cpu_has_bf16_dot() ? "true" : "false") +
       "},";
  j += "\"threads\":" + std::to_string(ThreadPool::default_threads()) + ",";
  j += "\"cuda\":{\"compiled\":" + std::string(c.compiled ? "true" : "false") +
       ",\"driver\":" + (c.driver ? "true" : "false") + ",\"driver_version\":" + std::to_string(c.driver_version) +
       ",\"runtime_version\":" + std::to_string(c.runtime_version) +
       ",\"driver_too_old\":" + (c.driver_too_old ? "true" : "false") +
       ",\"driver_release\":" + json_str(c.driver_release) + ",\"devices\":" + std::to_string(c.device_count) +
       ",\"cublas\":" + (c.cublas_path.empty() ? "null" : json_str(c.cublas_path)) +
       ",\"available\":" + (c.available ? "true" : "false") +
       ",\"reason\":" + (c.available ? "null" : json_str(c.reason)) + "}";
  // The image feed's native decoders (a build without a codec decodes that format in JavaScript).
  const img::Codecs ic = img::codecs();
  std::string ts;
  for (const auto& u : ic.dicom_syntaxes) ts += (ts.empty() ? "" : ",") + json_str(u);
  j += ",\"images\":{\"png\":" + std::string(ic.png ? "true" : "false") + ",\"jpeg\":" + (ic.jpeg ? "true" : "false") +
       ",\"dicom\":" + (ic.dicom ? "true" : "false") + ",\"versions\":" + json_str(ic.versions) +
       ",\"dicom_syntaxes\":[" + ts + "]}";
  j += "}";
  return j;
}

}  // namespace carzero
