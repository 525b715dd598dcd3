/* carzero.h: the C ABI of the carzero native core.
 *
 * Opaque handles, status codes and messages; nothing here exits or aborts the calling process.
 * Every function that can fail returns a cz_status; on failure, cz_last_error() returns a message
 * (valid until the next failing call on the same thread) that names the failing argument or call.
 *
 * Tensors are dense, row-major, contiguous. Ops are run by name through cz_op_run(): the op
 * registry (see cz_op_list_json) declares, per op, its tensor arguments (name, role, dtype, shape
 * rule) and scalar parameters, and validates every call against that declaration.
 */
#ifndef CARZERO_H
#define CARZERO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CZ_API __declspec(dllexport)
#else
#define CZ_API __attribute__((visibility("default")))
#endif

typedef enum cz_status {
  CZ_OK = 0,
  CZ_ERR_INVALID_ARGUMENT = 1, /* bad shape, dtype, size, null pointer, freed handle */
  CZ_ERR_OUT_OF_MEMORY = 2,    /* host or device allocation failed */
  CZ_ERR_IO = 3,               /* file could not be read or written */
  CZ_ERR_FORMAT = 4,           /* file or data is malformed */
  CZ_ERR_UNSUPPORTED = 5,      /* feature not available on this machine or build */
  CZ_ERR_CUDA = 6,             /* a CUDA / cuBLAS call failed (message names it) */
  CZ_ERR_INTERNAL = 7          /* a bug: please report */
} cz_status;

typedef enum cz_dtype { CZ_F32 = 0, CZ_BF16 = 1, CZ_F16 = 2, CZ_I32 = 3, CZ_U8 = 4 } cz_dtype;
typedef enum cz_device { CZ_DEVICE_CPU = 0, CZ_DEVICE_CUDA = 1 } cz_device;

#define CZ_MAX_DIMS 8

typedef struct cz_context cz_context; /* a device + its execution state (thread pool, streams) */
typedef struct cz_tensor cz_tensor;   /* a tensor owned by the caller until cz_tensor_free */

/* ---- library ---------------------------------------------------------------------------- */
CZ_API const char* cz_version(void);
CZ_API const char* cz_status_name(cz_status status);
/* Message of the last failing call on this thread ("" if none). */
CZ_API const char* cz_last_error(void);
/* Machine and build capabilities as a JSON object (CPU features in use, threads, CUDA state and,
 * when unavailable, why). Writes at most cap bytes including the terminating NUL into buf;
 * *needed receives the full length + 1. buf may be NULL to query the size. */
CZ_API cz_status cz_info_json(char* buf, size_t cap, size_t* needed);

/* ---- contexts --------------------------------------------------------------------------- */
/* num_threads <= 0 picks the default (CARZERO_NUM_THREADS or the machine's cores). */
CZ_API cz_status cz_context_create(cz_device device, int device_index, int num_threads, cz_context** out);
CZ_API void cz_context_free(cz_context* ctx);

/* ---- tensors ---------------------------------------------------------------------------- */
/* A zero-filled tensor. */
CZ_API cz_status cz_tensor_create(cz_context* ctx, cz_dtype dtype, const int64_t* shape, int ndim, cz_tensor** out);
/* A tensor holding a copy of host data (nbytes must equal numel * dtype size). */
CZ_API cz_status cz_tensor_from_host(cz_context* ctx, cz_dtype dtype, const int64_t* shape, int ndim, const void* data,
                                     size_t nbytes, cz_tensor** out);
CZ_API cz_status cz_tensor_to_host(const cz_tensor* t, void* dst, size_t nbytes);
CZ_API cz_status cz_tensor_copy_from_host(cz_tensor* t, const void* src, size_t nbytes);
/* dtype, ndim and up to CZ_MAX_DIMS sizes; any output pointer may be NULL. */
CZ_API cz_status cz_tensor_info(const cz_tensor* t, cz_dtype* dtype, int* ndim, int64_t* shape);
CZ_API void cz_tensor_free(cz_tensor* t);

/* ---- ops -------------------------------------------------------------------------------- */
/* JSON array describing every op: name, tensor arguments (name, role in|out|inout, dtypes,
 * optional) and scalar parameters (name, default). */
CZ_API cz_status cz_op_list_json(char* buf, size_t cap, size_t* needed);
/* Run op `name` on ctx. tensors[i] is the i-th tensor argument in declaration order (NULL for an
 * omitted optional one); params[i] the i-th scalar parameter (NAN-free; integers as doubles).
 * nparams may be smaller than the declared count: missing ones take their defaults. Scalar
 * results (losses, norms) are written to results[0..nresults). */
CZ_API cz_status cz_op_run(cz_context* ctx, const char* name, cz_tensor* const* tensors, int ntensors,
                           const double* params, int nparams, double* results, int nresults);

/* ---- model ------------------------------------------------------------------------------ */
/* A CARZero model on a context (docs/MODEL-FORMAT.md): ViT image encoder, BERT text encoder with
 * CARZero's word aggregation, and the alignment head. The context must outlive the model. Calls
 * on one model are serialised; results are new tensors on the model's context, owned by the
 * caller (cz_tensor_free). */
typedef struct cz_model cz_model;

/* Loads <dir>/config.json and <dir>/model.safetensors (mmapped, every tensor validated; errors name
 * the tensor, the expected and actual shape, and the file). precision: "fp32" (or NULL), "bf16"
 * (GEMM weights stored bf16, bf16 GEMMs with fp32 accumulation, fp32 activations) or "tf32" (fp32,
 * with the GEMMs on CUDA allowed TF32 tensor cores; exact fp32 on the CPU). */
CZ_API cz_status cz_model_load(cz_context* ctx, const char* dir, const char* precision, cz_model** out);
CZ_API void cz_model_free(cz_model* model);
/* The resolved configuration (sizes as used, from the tensor shapes) as a JSON object; same
 * buffer protocol as cz_info_json. */
CZ_API cz_status cz_model_config_json(const cz_model* model, char* buf, size_t cap, size_t* needed);
/* pixels (B, 3 or 1, H, W) f32, normalised -> global (B, C), local (B, P, C). */
CZ_API cz_status cz_model_embed_images(cz_model* model, const cz_tensor* pixels, cz_tensor** global, cz_tensor** local);
/* ids (Q, L) i32, mask (Q, L) u8, kinds (Q, L) u8 (0 word start, 1 "##", 2 [SEP], 3 after) ->
 * sentence (Q, C), words (Q, L, C). */
CZ_API cz_status cz_model_embed_texts(cz_model* model, const cz_tensor* ids, const cz_tensor* mask,
                                      const cz_tensor* kinds, cz_tensor** sentence, cz_tensor** words);
/* Every (image, text) pair: i2t (B, Q), t2i (Q, B), score (B, Q) = (i2t + t2i^T) / 2 (raw logits);
 * with want_attention != 0 also attention (B, Q, P), the grounding maps (i2t cross-attention
 * averaged over heads and layers, global entry dropped). attention may be NULL otherwise. */
CZ_API cz_status cz_model_score(cz_model* model, const cz_tensor* img_global, const cz_tensor* img_local,
                                const cz_tensor* sentence, const cz_tensor* words, int want_attention, cz_tensor** i2t,
                                cz_tensor** t2i, cz_tensor** score, cz_tensor** attention);

/* ---- image files and stored embeddings --------------------------------------------------- */
/* The outcome of one file of cz_images_load. */
typedef struct cz_image_status {
  cz_status status;      /* CZ_OK, or why the file was skipped (CZ_ERR_IO, CZ_ERR_FORMAT,
                            CZ_ERR_UNSUPPORTED, CZ_ERR_OUT_OF_MEMORY for a too-large image) */
  int32_t width, height; /* the decoded image's size (0 when it failed) */
  char message[256];     /* "" on success, else the reason naming the file (cut to fit) */
} cz_image_status;

/* CARZero's preprocessing; NULL means the model's defaults (256, 224, 0.4978, 0.2449). */
typedef struct cz_image_options {
  int32_t resize; /* longer side after resizing = the padded square's side */
  int32_t crop;   /* centre crop side */
  float mean, std;
} cz_image_options;

/* Reads, decodes (PNG, JPEG, DICOM: the transfer syntaxes cz_info_json lists under "images") and
 * preprocesses n image files on `threads` decode threads (<= 0: one per core) into a new
 * (n, 1, crop, crop) f32 tensor on ctx, in input order: the pixels cz_model_embed_images takes.
 * With statuses (n entries) a bad file is a per-file skip: its status says why, its slot is zero
 * and the call returns CZ_OK. With statuses NULL the first bad file fails the whole call. */
CZ_API cz_status cz_images_load(cz_context* ctx, const char* const* paths, int n, int threads,
                                const cz_image_options* options, cz_tensor** pixels, cz_image_status* statuses);

/* One tensor of a safetensors file (e.g. "sentence" and "words" of the prompt embeddings that
 * `carzero embed --texts --out prompts.safetensors` writes) as a new tensor on ctx. The file is
 * validated whole first (header, offsets, sizes); errors name the file and the tensor. */
CZ_API cz_status cz_safetensors_load(cz_context* ctx, const char* path, const char* name, cz_tensor** out);

#ifdef __cplusplus
}
#endif
#endif /* CARZERO_H */
