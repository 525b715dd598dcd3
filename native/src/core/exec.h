// exec.h: what core knows of the op layer. A Context hands each op an Exec (its execution state)
// and points at its device's op table, which core sees only as an opaque type: the table itself
// (ops.h, one level up) depends on core, never the reverse.
#pragma once

namespace carzero {

class ThreadPool;
struct OpTable;

// Execution state handed to every op: the CPU thread pool, or the CUDA stream/handles/workspace.
struct Exec {
  ThreadPool* pool = nullptr;  // CPU backend: the pool ops parallelise over (never null on CPU)
  void* cuda = nullptr;        // CUDA backend: opaque per-context state (streams, cuBLAS, arena)
};

// The CPU backend's op table (cpu/table.cpp).
const OpTable& cpu_ops();

}  // namespace carzero
