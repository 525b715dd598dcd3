/* classify.c: zero-shot scores from C through the carzero C ABI (carzero.h + libcarzero.so).
 *
 *   classify <model dir> <pixels.f32> <n_images> <ids.i32> <mask.u8> <kinds.u8> <n_texts> [fp32|bf16]
 *
 * Inputs are raw, headerless, row-major, little-endian files (this program reads them as host
 * order, so it assumes a little-endian machine):
 *   pixels.f32  f32 (n_images, 1 or 3, 224, 224): preprocessed, normalised pixels (image decoding,
 *               resize, crop and normalisation live in the TypeScript package; the channel count
 *               is taken from the file size);
 *   ids.i32     i32 (n_texts, L): token ids, [CLS] ... [SEP] then [PAD];
 *   mask.u8     u8  (n_texts, L): 1 up to and including [SEP];
 *   kinds.u8    u8  (n_texts, L): 0 word start, 1 "##" piece, 2 [SEP], 3 after [SEP]
 *               (docs/MODEL-FORMAT.md, "Text input"; L is taken from the file size).
 *
 * Output: the (n_images x n_texts) score matrix (raw logits, (i2t + t2i^T) / 2) on stdout, one
 * row per image, values separated by spaces. Diagnostics go to stderr. Exit status: 0 on success,
 * 1 if a carzero call or a file read fails, 2 on a usage error.
 *
 * Error handling: every carzero function that can fail returns a cz_status; on failure
 * cz_last_error() holds a message naming the failing argument or call. The library never exits;
 * this program reports the error, releases what it owns and returns non-zero from main.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carzero.h"

/* CARZero models take 224 x 224 inputs (docs/MODEL-FORMAT.md). */
#define IMAGE_SIZE 224

/* Prints "classify: <what> failed (<status name>): <message>" and returns st. */
static cz_status report(const char* what, cz_status st) {
  fprintf(stderr, "classify: %s failed (%s): %s\n", what, cz_status_name(st), cz_last_error());
  return st;
}

/* Runs one carzero call; on failure reports it and jumps to the cleanup label of the function. */
#define CZ_TRY(what, call)              \
  do {                                  \
    cz_status st_ = (call);             \
    if (st_ != CZ_OK) {                 \
      report((what), st_);              \
      goto cleanup;                     \
    }                                   \
  } while (0)

/* Reads a whole file into a new malloc'd buffer (the caller frees it); NULL on failure, with a
 * message on stderr. *size receives the byte count. */
static void* read_file(const char* path, size_t* size) {
  void* data = NULL;
  long n;
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "classify: cannot open %s: %s\n", path, strerror(errno));
    return NULL;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fprintf(stderr, "classify: cannot size %s: %s\n", path, strerror(errno));
    fclose(f);
    return NULL;
  }
  data = malloc(n > 0 ? (size_t)n : 1);
  if (!data) {
    fprintf(stderr, "classify: out of memory reading %s (%ld bytes)\n", path, n);
  } else if (fread(data, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "classify: cannot read %s\n", path);
    free(data);
    data = NULL;
  }
  fclose(f);
  *size = (size_t)n;
  return data;
}

/* Parses a positive count; 0 if the text is not one. */
static long parse_count(const char* s) {
  char* end = NULL;
  long v = strtol(s, &end, 10);
  return (end != s && *end == '\0' && v > 0) ? v : 0;
}

/* Frees a tensor the program may or may not own yet (the pointers start out NULL). */
static void free_tensor(cz_tensor* t) {
  if (t) cz_tensor_free(t);
}

static void usage(void) {
  fprintf(stderr,
          "usage: classify <model dir> <pixels.f32> <n_images> <ids.i32> <mask.u8> <kinds.u8> "
          "<n_texts> [fp32|bf16]\n");
}

int main(int argc, char** argv) {
  int rc = 1; /* becomes 0 only once the matrix has been printed */
  const char* model_dir;
  const char* precision;
  long n_images, n_texts;
  int64_t channels, seq_len;

  /* Host buffers (malloc'd, freed here) and carzero objects (freed with cz_*_free). */
  float* pixels = NULL;
  int32_t* ids = NULL;
  uint8_t* mask = NULL;
  uint8_t* kinds = NULL;
  float* scores = NULL;
  size_t pixels_bytes = 0, ids_bytes = 0, mask_bytes = 0, kinds_bytes = 0;
  char* config = NULL;
  cz_context* ctx = NULL;
  cz_model* model = NULL;
  cz_tensor *t_pixels = NULL, *t_ids = NULL, *t_mask = NULL, *t_kinds = NULL;
  cz_tensor *img_global = NULL, *img_local = NULL, *sentence = NULL, *words = NULL;
  cz_tensor *i2t = NULL, *t2i = NULL, *score = NULL;
  cz_tensor *bad_global = NULL, *bad_local = NULL;

  if (argc != 8 && argc != 9) {
    usage();
    return 2;
  }
  model_dir = argv[1];
  n_images = parse_count(argv[3]);
  n_texts = parse_count(argv[7]);
  precision = argc == 9 ? argv[8] : "fp32";
  if (n_images == 0 || n_texts == 0) {
    fprintf(stderr, "classify: <n_images> and <n_texts> must be positive integers\n");
    usage();
    return 2;
  }

  /* ---- read the inputs and check their sizes against the counts --------------------------- */
  if (!(pixels = read_file(argv[2], &pixels_bytes)) || !(ids = read_file(argv[4], &ids_bytes)) ||
      !(mask = read_file(argv[5], &mask_bytes)) || !(kinds = read_file(argv[6], &kinds_bytes)))
    goto cleanup;
  {
    const size_t per_channel = (size_t)n_images * IMAGE_SIZE * IMAGE_SIZE * sizeof(float);
    if (pixels_bytes == per_channel) {
      channels = 1;
    } else if (pixels_bytes == 3 * per_channel) {
      channels = 3;
    } else {
      fprintf(stderr, "classify: %s has %zu bytes; (%ld, 1 or 3, %d, %d) f32 needs %zu or %zu\n",
              argv[2], pixels_bytes, n_images, IMAGE_SIZE, IMAGE_SIZE, per_channel,
              3 * per_channel);
      goto cleanup;
    }
  }
  if (ids_bytes == 0 || ids_bytes % ((size_t)n_texts * sizeof(int32_t)) != 0) {
    fprintf(stderr, "classify: %s has %zu bytes, not a multiple of %ld texts x 4 bytes\n", argv[4],
            ids_bytes, n_texts);
    goto cleanup;
  }
  seq_len = (int64_t)(ids_bytes / ((size_t)n_texts * sizeof(int32_t)));
  if (mask_bytes != (size_t)(n_texts * seq_len) || kinds_bytes != (size_t)(n_texts * seq_len)) {
    fprintf(stderr, "classify: mask (%zu bytes) and kinds (%zu bytes) must be (%ld, %lld) u8 like ids\n",
            mask_bytes, kinds_bytes, n_texts, (long long)seq_len);
    goto cleanup;
  }

  /* ---- a CPU context and the model --------------------------------------------------------- */
  fprintf(stderr, "carzero %s\n", cz_version());
  /* device CPU, device index 0, threads <= 0: CARZERO_NUM_THREADS or all cores */
  CZ_TRY("cz_context_create", cz_context_create(CZ_DEVICE_CPU, 0, 0, &ctx));
  CZ_TRY("cz_model_load", cz_model_load(ctx, model_dir, precision, &model));
  {
    /* Buffer protocol shared with cz_info_json: ask for the size, then fill our own buffer. */
    size_t needed = 0;
    CZ_TRY("cz_model_config_json", cz_model_config_json(model, NULL, 0, &needed));
    if (!(config = malloc(needed))) {
      fprintf(stderr, "classify: out of memory\n");
      goto cleanup;
    }
    CZ_TRY("cz_model_config_json", cz_model_config_json(model, config, needed, &needed));
    fprintf(stderr, "model %s (%s): %s\n", model_dir, precision, config);
  }

  /* ---- upload the inputs: the library copies host data into tensors we own ----------------- */
  {
    const int64_t pixel_shape[4] = {n_images, channels, IMAGE_SIZE, IMAGE_SIZE};
    const int64_t text_shape[2] = {n_texts, seq_len};
    CZ_TRY("cz_tensor_from_host(pixels)",
           cz_tensor_from_host(ctx, CZ_F32, pixel_shape, 4, pixels, pixels_bytes, &t_pixels));
    CZ_TRY("cz_tensor_from_host(ids)",
           cz_tensor_from_host(ctx, CZ_I32, text_shape, 2, ids, ids_bytes, &t_ids));
    CZ_TRY("cz_tensor_from_host(mask)",
           cz_tensor_from_host(ctx, CZ_U8, text_shape, 2, mask, mask_bytes, &t_mask));
    CZ_TRY("cz_tensor_from_host(kinds)",
           cz_tensor_from_host(ctx, CZ_U8, text_shape, 2, kinds, kinds_bytes, &t_kinds));
  }

  /* ---- one deliberate bad call: the token ids (2-D, i32) passed as the pixels -------------- */
  {
    cz_status st = cz_model_embed_images(model, t_ids, &bad_global, &bad_local);
    if (st == CZ_OK) {
      fprintf(stderr, "classify: the deliberate bad call unexpectedly succeeded\n");
      goto cleanup;
    }
    fprintf(stderr, "deliberate bad call: cz_model_embed_images(ids as pixels) -> %s: %s\n",
            cz_status_name(st), cz_last_error());
    /* Nothing was produced; the model and context stay usable. */
  }

  /* ---- embed, then score every (image, text) pair ------------------------------------------ */
  CZ_TRY("cz_model_embed_images", cz_model_embed_images(model, t_pixels, &img_global, &img_local));
  CZ_TRY("cz_model_embed_texts",
         cz_model_embed_texts(model, t_ids, t_mask, t_kinds, &sentence, &words));
  /* want_attention = 0, so the attention output may be NULL */
  CZ_TRY("cz_model_score", cz_model_score(model, img_global, img_local, sentence, words, 0, &i2t,
                                          &t2i, &score, NULL));

  /* ---- copy the (B, Q) score tensor back and print it -------------------------------------- */
  {
    cz_dtype dtype;
    int ndim = 0;
    int64_t shape[CZ_MAX_DIMS];
    size_t bytes;
    long b, q;
    CZ_TRY("cz_tensor_info(score)", cz_tensor_info(score, &dtype, &ndim, shape));
    if (dtype != CZ_F32 || ndim != 2 || shape[0] != n_images || shape[1] != n_texts) {
      fprintf(stderr, "classify: unexpected score tensor (dtype %d, ndim %d)\n", (int)dtype, ndim);
      goto cleanup;
    }
    bytes = (size_t)n_images * (size_t)n_texts * sizeof(float);
    if (!(scores = malloc(bytes))) {
      fprintf(stderr, "classify: out of memory\n");
      goto cleanup;
    }
    CZ_TRY("cz_tensor_to_host(score)", cz_tensor_to_host(score, scores, bytes));
    fprintf(stderr, "score (%ld images x %ld texts):\n", n_images, n_texts);
    for (b = 0; b < n_images; ++b) {
      for (q = 0; q < n_texts; ++q)
        printf("%s%.9g", q ? " " : "", (double)scores[b * n_texts + q]);
      printf("\n");
    }
    if (fflush(stdout) != 0) {
      fprintf(stderr, "classify: cannot write the scores: %s\n", strerror(errno));
      goto cleanup;
    }
  }
  rc = 0;

cleanup:
  /* Tensors and the model first, the context last (it must outlive everything made on it). */
  free_tensor(bad_global);
  free_tensor(bad_local);
  free_tensor(i2t);
  free_tensor(t2i);
  free_tensor(score);
  free_tensor(img_global);
  free_tensor(img_local);
  free_tensor(sentence);
  free_tensor(words);
  free_tensor(t_pixels);
  free_tensor(t_ids);
  free_tensor(t_mask);
  free_tensor(t_kinds);
  if (model) cz_model_free(model);
  if (ctx) cz_context_free(ctx);
  free(scores);
  free(config);
  free(pixels);
  free(ids);
  free(mask);
  free(kinds);
  return rc;
}
