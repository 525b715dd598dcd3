// glibc_compat.cpp: local stand-ins for the three glibc symbols that the host compiler's static
// libstdc++ and libgcc (GCC 12, built on glibc 2.36) ask for and glibc 2.31 does not have. Compiled
// only into binaries linked against the glibc 2.31 sysroot (scripts/make-sysroot.sh,
// CARZERO_SYSROOT): there, without them, the link leaves the symbols undefined and the binary does
// not load on glibc < 2.36. All three are hidden: each binary uses its own copy, on every glibc.
//
// - __libc_single_threaded (glibc 2.32): libstdc++ reads it to skip atomic reference counting in a
//   single-threaded process. 0 ("maybe multi-threaded") always takes the atomic path: correct in
//   every process, at the cost of an atomic increment where glibc would have allowed a plain one.
// - arc4random (glibc 2.36): std::random_device's default source in libstdc++'s random.o. Here from
//   getentropy (glibc 2.25), else /dev/urandom.
// - _dl_find_object (glibc 2.35): libgcc's unwinder finds the .eh_frame_hdr of the object that
//   contains a return address with it, on every thrown exception. Here from dl_iterate_phdr (what
//   libgcc itself used before glibc 2.35): the PT_LOAD segments give the object's extent, its
//   PT_GNU_EH_FRAME segment the pointer. Only dlfo_eh_frame is read by the x86-64 unwinder
//   (DLFO_STRUCT_HAS_EH_DBASE is 0 there); dlfo_link_map is left null.
#include <features.h>

#if defined(__GLIBC__) && defined(__x86_64__)
#include <fcntl.h>
#include <link.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#define CZ_HIDDEN __attribute__((visibility("hidden")))

extern "C" {

#if __GLIBC__ == 2 && __GLIBC_MINOR__ < 32
CZ_HIDDEN char __libc_single_threaded = 0;
#endif

#if __GLIBC__ == 2 && __GLIBC_MINOR__ < 36
CZ_HIDDEN uint32_t arc4random(void) {
  uint32_t v = 0;
  if (getentropy(&v, sizeof v) == 0) return v;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, &v, sizeof v);
    close(fd);
    if (n == static_cast<ssize_t>(sizeof v)) return v;
  }
  // No entropy source at all (no getrandom syscall and no /dev/urandom): the address of a stack
  // variable mixed with the process id; std::random_device is not used by carzero itself.
  uintptr_t a = reinterpret_cast<uintptr_t>(&v) ^ (static_cast<uintptr_t>(getpid()) << 17);
  return static_cast<uint32_t>(a ^ (a >> 32)) * 2654435761u;
}
#endif

#if __GLIBC__ == 2 && __GLIBC_MINOR__ < 35
// glibc 2.35's struct dl_find_object on x86-64 (no dlfo_eh_dbase, no dlfo_eh_count).
struct dl_find_object {
  unsigned long long dlfo_flags;
  void* dlfo_map_start;
  void* dlfo_map_end;
  struct link_map* dlfo_link_map;
  void* dlfo_eh_frame;
  unsigned long long __dlfo_reserved[7];
};

namespace {
struct FindQuery {
  uintptr_t pc;
  dl_find_object* out;
  bool found;
};

int find_object_cb(struct dl_phdr_info* info, size_t, void* data) {
  auto* q = static_cast<FindQuery*>(data);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  bool hit = false;
  const ElfW(Phdr)* eh = nullptr;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)* p = &info->dlpi_phdr[i];
    if (p->p_type == PT_LOAD) {
      uintptr_t s = info->dlpi_addr + p->p_vaddr, e = s + p->p_memsz;
      if (s < lo) lo = s;
      if (e > hi) hi = e;
      if (q->pc >= s && q->pc < e) hit = true;
    } else if (p->p_type == PT_GNU_EH_FRAME) {
      eh = p;
    }
  }
  if (!hit) return 0;
  q->out->dlfo_flags = 0;
  q->out->dlfo_map_start = reinterpret_cast<void*>(lo);
  q->out->dlfo_map_end = reinterpret_cast<void*>(hi);
  q->out->dlfo_link_map = nullptr;
  q->out->dlfo_eh_frame = eh ? reinterpret_cast<void*>(info->dlpi_addr + eh->p_vaddr) : nullptr;
  q->found = true;
  return 1;
}
}  // namespace

CZ_HIDDEN int _dl_find_object(void* address, dl_find_object* result) {
  FindQuery q{reinterpret_cast<uintptr_t>(address), result, false};
  dl_iterate_phdr(find_object_cb, &q);
  return q.found ? 0 : -1;
}
#endif

}  // extern "C"
#endif
