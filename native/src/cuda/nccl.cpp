// nccl.cpp: NCCL opened at run time (dlopen, our own prototypes; no NCCL headers or link at build
// time) for the CUDA backend's collectives: collective_unique_id, CudaBackend::collective_init
// and all_reduce_sum (core/device_backend.h). Search order: CARZERO_NCCL_PATH, libnccl.so.2,
// then PyTorch's wheel names are the user's to point at with CARZERO_NCCL_PATH.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "cuda/cuda_backend.h"
#include "core/settings.h"

namespace carzero {
namespace cuda {

namespace {

// ncclUniqueId is 128 bytes; ncclComm_t an opaque pointer; enums as in nccl.h (ncclFloat32 = 7,
// ncclSum = 0; ncclResult_t 0 = success).
constexpr size_t kIdBytes = 128;
struct NcclId {
  char internal[kIdBytes];
};
using ncclComm_t = void*;

struct NcclApi {
  int (*get_version)(int*) = nullptr;
  int (*get_unique_id)(NcclId*) = nullptr;
  int (*comm_init_rank)(ncclComm_t*, int, NcclId, int) = nullptr;
  int (*all_reduce)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t) = nullptr;
  int (*comm_destroy)(ncclComm_t) = nullptr;
  const char* (*get_error_string)(int) = nullptr;
  std::string path, error;
};

const NcclApi& api() {
  static NcclApi a;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> cands;
    if (const std::string& p = settings().nccl_path; !p.empty()) cands.push_back(p);
    cands.push_back("libnccl.so.2");
    cands.push_back("libnccl.so");
    void* lib = nullptr;
    std::string tried;
    for (const auto& c : cands) {
      tried += (tried.empty() ? "" : ", ") + c;
      if ((lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL))) {
        a.path = c;
        break;
      }
    }
    if (!lib) {
      a.error = "NCCL not found (tried " + tried + "; set CARZERO_NCCL_PATH to libnccl.so.2)";
      return;
    }
    std::string missing;
    auto sym = [&](const char* name, auto& out) {
      out = reinterpret_cast<std::remove_reference_t<decltype(out)>>(dlsym(lib, name));
      if (!out) missing += std::string(missing.empty() ? "" : ", ") + name;
    };
    sym("ncclGetVersion", a.get_version);
    sym("ncclGetUniqueId", a.get_unique_id);
    sym("ncclCommInitRank", a.comm_init_rank);
    sym("ncclAllReduce", a.all_reduce);
    sym("ncclCommDestroy", a.comm_destroy);
    sym("ncclGetErrorString", a.get_error_string);
    if (!missing.empty()) a.error = a.path + ": missing symbols " + missing;
  });
  return a;
}

const NcclApi& loaded() {
  const NcclApi& a = api();
  if (!a.error.empty()) throw_error(CZ_ERR_UNSUPPORTED, "collectives: %s", a.error.c_str());
  return a;
}

void check(int rc, const char* call) {
  if (rc == 0) return;
  const NcclApi& a = api();
  throw_error(CZ_ERR_CUDA, "%s failed: %s (%d)", call, a.get_error_string ? a.get_error_string(rc) : "NCCL error", rc);
}

}  // namespace

void CudaBackend::collective_init(const std::vector<uint8_t>& id, int rank, int world) {
  const NcclApi& a = loaded();
  CZ_ARG(id.size() == kIdBytes, "collectives: the unique id has %zu bytes, expected %zu", id.size(), kIdBytes);
  CZ_ARG(world >= 1 && rank >= 0 && rank < world, "collectives: rank %d of world %d", rank, world);
  CZ_REQUIRE(!comm_, CZ_ERR_INVALID_ARGUMENT, "collectives: this device already joined a group");
  NcclId nid;
  std::memcpy(nid.internal, id.data(), kIdBytes);
  CZ_CUDA(cudaSetDevice(state_.device));
  ncclComm_t comm = nullptr;
  check(a.comm_init_rank(&comm, world, nid, rank), "ncclCommInitRank");
  comm_ = comm;
  world_ = world;
}

void CudaBackend::all_reduce_sum(float* p, size_t n) {
  CZ_REQUIRE(comm_, CZ_ERR_INVALID_ARGUMENT, "collectives: all_reduce before collective_init");
  if (n == 0) return;
  check(loaded().all_reduce(p, p, n, /*ncclFloat32=*/7, /*ncclSum=*/0, comm_, state_.stream), "ncclAllReduce");
}

void CudaBackend::collective_destroy() noexcept {
  if (comm_ && api().comm_destroy) api().comm_destroy(comm_);
  comm_ = nullptr;
}

}  // namespace cuda

std::vector<uint8_t> collective_unique_id() {
  const cuda::NcclApi& a = cuda::loaded();
  cuda::NcclId id;
  cuda::check(a.get_unique_id(&id), "ncclGetUniqueId");
  return std::vector<uint8_t>(id.internal, id.internal + cuda::kIdBytes);
}

}  // namespace carzero
