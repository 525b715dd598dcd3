/* classify_files.c: zero-shot scores of image FILES from C, with no JavaScript step.
 *
 *   classify_files <model dir> <prompts.safetensors> [--precision fp32|bf16] [--threads N] <image>...
 *
 * prompts.safetensors holds the prompt embeddings that the CLI writes once per prompt set:
 *   npx carzero embed --model <model dir> --texts --out prompts.safetensors prompts.json
 * (tensors "sentence" (Q, C) and "words" (Q, L, C)). The images (PNG, JPEG, DICOM) are read,
 * decoded and preprocessed by the library itself (cz_images_load, on a pool of decode threads).
 *
 * Output (stdout): one line per image that could be read: its path, a tab, then its Q raw scores
 * ((i2t + t2i^T) / 2, the logits `carzero classify` prints) separated by spaces, in "%.9g".
 * A file that cannot be read or decoded is reported on stderr ("skipped <path>: <reason>") and
 * left out; the exit status is 1 when no image could be scored or a carzero call fails, 2 on a
 * usage error, 0 otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carzero.h"

static cz_status report(const char* what, cz_status st) {
  fprintf(stderr, "classify_files: %s failed (%s): %s\n", what, cz_status_name(st), cz_last_error());
  return st;
}

#define CZ_TRY(what, call)  \
  do {                      \
    cz_status st_ = (call); \
    if (st_ != CZ_OK) {     \
      report((what), st_);  \
      goto cleanup;         \
    }                       \
  } while (0)

static void free_tensor(cz_tensor* t) {
  if (t) cz_tensor_free(t);
}

static void usage(void) {
  fprintf(stderr,
          "usage: classify_files <model dir> <prompts.safetensors> [--precision fp32|bf16] "
          "[--threads N] <image>...\n");
}

int main(int argc, char** argv) {
  int rc = 1;
  const char* model_dir;
  const char* prompts;
  const char* precision = "fp32";
  int threads = 0; /* <= 0: one decode thread per core */
  const char** files = NULL;
  int n_files = 0, n_ok = 0, i, j;
  cz_image_status* status = NULL;
  float* scores = NULL;
  int64_t* keep = NULL;
  cz_context* ctx = NULL;
  cz_model* model = NULL;
  cz_tensor *pixels = NULL, *good = NULL, *sentence = NULL, *words = NULL;
  cz_tensor *img_global = NULL, *img_local = NULL, *i2t = NULL, *t2i = NULL, *score = NULL;

  if (argc < 4) {
    usage();
    return 2;
  }
  model_dir = argv[1];
  prompts = argv[2];
  files = malloc(sizeof(char*) * (size_t)argc);
  if (!files) return 1;
  for (i = 3; i < argc; ++i) {
    if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) {
      precision = argv[++i];
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else {
      files[n_files++] = argv[i];
    }
  }
  if (n_files == 0) {
    usage();
    free(files);
    return 2;
  }

  CZ_TRY("cz_context_create", cz_context_create(CZ_DEVICE_CPU, 0, 0, &ctx));
  CZ_TRY("cz_model_load", cz_model_load(ctx, model_dir, precision, &model));
  CZ_TRY("cz_safetensors_load(sentence)", cz_safetensors_load(ctx, prompts, "sentence", &sentence));
  CZ_TRY("cz_safetensors_load(words)", cz_safetensors_load(ctx, prompts, "words", &words));

  /* Every file at once here; a pipeline over thousands of files calls this per batch. */
  status = calloc((size_t)n_files, sizeof(cz_image_status));
  keep = malloc(sizeof(int64_t) * (size_t)n_files);
  if (!status || !keep) goto cleanup;
  CZ_TRY("cz_images_load", cz_images_load(ctx, files, n_files, threads, NULL, &pixels, status));
  for (i = 0; i < n_files; ++i) {
    if (status[i].status == CZ_OK) keep[n_ok++] = i;
    else fprintf(stderr, "skipped %s: %s\n", files[i], status[i].message);
  }
  if (n_ok == 0) {
    fprintf(stderr, "classify_files: no image could be read\n");
    goto cleanup;
  }
  {
    /* The batch without the skipped slots: copy the good rows into a tensor of n_ok images. */
    const size_t plane = 224 * 224;
    int64_t shape[4] = {n_ok, 1, 224, 224};
    float* all = malloc(sizeof(float) * plane * (size_t)n_files);
    float* sel = malloc(sizeof(float) * plane * (size_t)n_ok);
    cz_status st = CZ_ERR_OUT_OF_MEMORY;
    if (all && sel && (st = cz_tensor_to_host(pixels, all, sizeof(float) * plane * (size_t)n_files)) == CZ_OK) {
      for (j = 0; j < n_ok; ++j) memcpy(sel + (size_t)j * plane, all + (size_t)keep[j] * plane, sizeof(float) * plane);
      st = cz_tensor_from_host(ctx, CZ_F32, shape, 4, sel, sizeof(float) * plane * (size_t)n_ok, &good);
    }
    free(all);
    free(sel);
    if (st != CZ_OK) {
      report("selecting the readable images", st);
      goto cleanup;
    }
  }
  CZ_TRY("cz_model_embed_images", cz_model_embed_images(model, good, &img_global, &img_local));
  CZ_TRY("cz_model_score", cz_model_score(model, img_global, img_local, sentence, words, 0, &i2t, &t2i, &score, NULL));
  {
    cz_dtype dt;
    int nd;
    int64_t shape[8];
    int64_t q;
    CZ_TRY("cz_tensor_info", cz_tensor_info(score, &dt, &nd, shape));
    q = shape[1];
    scores = malloc(sizeof(float) * (size_t)(n_ok * q));
    if (!scores) goto cleanup;
    CZ_TRY("cz_tensor_to_host(score)", cz_tensor_to_host(score, scores, sizeof(float) * (size_t)(n_ok * q)));
    for (j = 0; j < n_ok; ++j) {
      printf("%s\t", files[keep[j]]);
      for (i = 0; i < q; ++i) printf(i ? " %.9g" : "%.9g", scores[j * q + i]);
      printf("\n");
    }
  }
  rc = 0;

cleanup:
  free_tensor(score);
  free_tensor(t2i);
  free_tensor(i2t);
  free_tensor(img_local);
  free_tensor(img_global);
  free_tensor(good);
  free_tensor(pixels);
  free_tensor(words);
  free_tensor(sentence);
  if (model) cz_model_free(model);
  if (ctx) cz_context_free(ctx);
  free(scores);
  free(keep);
  free(status);
  free(files);
  return rc;
}
