/*
 * eosin-nn.h — the neural runtime as the rest of Eosin sees it: ONNX models
 * (onnx-load.c, graph.c), a model running on a device (infer.c: the backend
 * choice, the GPU's retries and its fall back to the CPU, the backends kept
 * from one slide to the next), the device grammar (device.c), and what the
 * analyzers do with a classifier's outputs (activate.c, classifier.c).
 *
 * Everything else under nn/ (graph-private.h, backend.h, the backends) is
 * the runtime's own. This header needs only glib and json-glib, so it
 * includes none of the spine's headers; the functions report errors in
 * EOSIN_ERROR's domain (eosin.h).
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

/* ---------------------------------------------------------------- preprocess */

/* How uint8 RGB tiles become a network's float input:
 * x = (v / 255 - mean[c]) / std[c] in the network's channel order, which is
 * BGR (channels reversed) when @bgr. */
typedef struct {
  float mean[3], std[3];
  bool bgr;
} EosinPreprocess;

/* ---------------------------------------------------------------- models */

typedef struct _EosinModel EosinModel;

/* Loads an ONNX model (opsets 11-17, float32) into a graph ready to run:
 * every node checked, sorted, its shapes inferred for a batch of @batch
 * (which resolves a symbolic batch dimension), BatchNormalization folded
 * into the convolution before it. A corrupt or truncated file, an
 * unsupported op, opset or data type, a missing input, a cycle or a shape
 * that cannot be resolved is an error naming the node and the reason.
 * Free with eosin_model_free. */
EosinModel *eosin_model_load(const char *path, int batch, GError **err);
/* The same from @len bytes in memory; @name is used in messages. */
EosinModel *eosin_model_load_from_memory(const char *name, const void *data, size_t len,
                                         int batch, GError **err);
void eosin_model_free(EosinModel *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinModel, eosin_model_free)

/* The shape of the model's image input / first output; returns the rank. */
int eosin_model_input_shape(const EosinModel *model, int64_t dims[6]);
int eosin_model_output_shape(const EosinModel *model, int64_t dims[6]);
/* Nodes left to run (after folding), and how many BatchNormalizations were folded. */
int eosin_model_n_nodes(const EosinModel *model);
int eosin_model_n_folded(const EosinModel *model);

/* ---------------------------------------------------------------- devices */

/* The one grammar of a device string, for [model] device, --device and
 * EosinInferOptions.device alike, so a value the config loader or the
 * command line accepts is one inference can run on. */
typedef enum {
  EOSIN_DEVICE_AUTO, /* the GPU when it starts, otherwise the CPU */
  EOSIN_DEVICE_CPU,  /* oneDNN */
  EOSIN_DEVICE_REF,  /* "ref": the plain-C reference backend (slow; for checking) */
  EOSIN_DEVICE_CUDA, /* cuDNN on GPU @gpu; an error if that GPU cannot start */
} EosinDeviceKind;

/* The highest N of "cuda:N": far above the GPUs of one machine, and one
 * bound for every place a device string is read. */
#define EOSIN_DEVICE_MAX_GPU 63

typedef struct {
  EosinDeviceKind kind;
  int gpu; /* EOSIN_DEVICE_CUDA: the GPU index ("cuda" is 0); 0 otherwise */
} EosinDevice;

/* What a device string may be, as every message about a bad one says it
 * (after "expected "); "ref" is left out, being for checking only. */
#define EOSIN_DEVICE_GRAMMAR \
  "auto, cpu, cuda or cuda:N (N from 0 to " G_STRINGIFY(EOSIN_DEVICE_MAX_GPU) ")"

/* Parses "auto" (or NULL), "cpu", "ref", "cuda" or "cuda:N" (N one or two
 * decimal digits, at most EOSIN_DEVICE_MAX_GPU) into *@out. Anything else
 * is an EOSIN_ERROR_CONFIG error "device 'VALUE': expected
 * EOSIN_DEVICE_GRAMMAR"; a caller that says where the value came from (a
 * config file and key, an option) passes NULL and words its own message
 * around EOSIN_DEVICE_GRAMMAR. */
bool eosin_device_parse(const char *s, EosinDevice *out, GError **err);

/* ---------------------------------------------------------------- inference */

typedef struct _EosinInfer EosinInfer;

/* Backends shared by the slides of a batch (see eosin_infer_cache_new). */
typedef struct _EosinInferCache EosinInferCache;

/* Backends kept from one slide of a batch to the next: eosin_infer_free
 * hands its loaded model and running backend to the cache, and the next
 * eosin_infer_new of the same model, device string, precision and batch
 * takes them instead of setting up again (on the GPU: handles, weights,
 * cuDNN's algorithm search, pinned buffers, the trial run). It also
 * remembers a GPU lost to a sticky fault, so later slides do not try it
 * again. One thread at a time; eosin_infer_cache_free (after every
 * EosinInfer using it is freed) releases everything. */
EosinInferCache *eosin_infer_cache_new(void);
void eosin_infer_cache_free(EosinInferCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinInferCache, eosin_infer_cache_free)
/* How many times an EosinInfer took a backend from @cache. */
int eosin_infer_cache_reused(const EosinInferCache *cache);

typedef struct {
  const char *device;  /* "auto" (or NULL), "cpu", "cuda", "cuda:N" (eosin_device_parse) */
  bool fp16;           /* half precision on the GPU; the CPU stays fp32 */
  int batch;           /* images per backend call (>= 1) */
  EosinInferCache *cache; /* NULL, or borrowed: outlives the EosinInfer */
} EosinInferOptions;

/* Loads @model_path and starts the backend @opts asks for: "cpu" is oneDNN;
 * "cuda[:N]" is cuDNN on GPU N and an error if that GPU cannot start;
 * "auto" takes the GPU when it starts and otherwise the CPU, remembering
 * why. A CUDA failure at load or during a run (out of memory, driver)
 * retries with half the batch down to 1, then moves to the CPU: the run
 * goes on and eosin_infer_report says what happened. A GPU lost to a
 * sticky fault is not retried: "auto" moves to the CPU, "cuda" fails with
 * the reason (and with opts->cache, later slides do the same at once).
 * Free with eosin_infer_free (with a cache, its backend goes back there). */
EosinInfer *eosin_infer_new(const char *model_path, const EosinInferOptions *opts,
                            GError **err);
void eosin_infer_free(EosinInfer *inf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinInfer, eosin_infer_free)

/* The model's input height and width, and the number of values one image
 * yields (its output shape without the batch: @dims, rank returned). */
void eosin_infer_input_size(const EosinInfer *inf, int *height, int *width);
int eosin_infer_output_shape(const EosinInfer *inf, int64_t dims[6]);
size_t eosin_infer_output_per_image(const EosinInfer *inf);

/* Runs @n images (any number; batched internally) of height x width uint8
 * HWC RGB through the model, preprocessed by @pp, writing n x
 * eosin_infer_output_per_image floats to @out. */
bool eosin_infer_run_rgb(EosinInfer *inf, const uint8_t *rgb, int n, const EosinPreprocess *pp,
                         float *out, GError **err);

/* Orientation @k (0..7: @k & 3 quarter turns, mirrored when @k >= 4) of
 * the @side x @side RGB image @src into @dst (as large; not @src). */
void eosin_dihedral(const uint8_t *src, int side, int k, uint8_t *dst);
/* eosin_infer_run_rgb over @n @side x @side images in each of the 8
 * orientations, each activated (@activation over @C classes) and the 8
 * averaged into @out (n x C probabilities). 8x the work. */
bool eosin_infer_run_dihedral(EosinInfer *inf, const uint8_t *rgb, int n, int side,
                              const EosinPreprocess *pp, const char *activation, int C,
                              float *out, GError **err);

/* The backend running now ("cpu-onednn", "cuda", ...). */
const char *eosin_infer_backend(const EosinInfer *inf);
/* One line: backend, precision, batch and what happened. Caller frees. */
char *eosin_infer_summary(const EosinInfer *inf);
/* Adds an object to @b: device asked for, backend that ran, precision,
 * batch, why a GPU was not used or left, retries. */
void eosin_infer_report(const EosinInfer *inf, JsonBuilder *b);

/* ---------------------------------------------------------------- outputs */

/* Applies [model] activation ("none", "softmax", "sigmoid") over the @C
 * classes of each of @n positions in place; a position's class values are
 * @stride apart (1: class-innermost rows; plane size: NCHW maps). */
void _eosin_activate(const char *activation, float *v, size_t n, int C, size_t stride);

/* What a config expects of a classification model (all borrowed). */
typedef struct {
  const char *config;  /* the config file, for the message */
  const char *model;   /* the model file, for the message */
  int n_classes;       /* [model] classes */
} EosinClassifierExpect;

/* A classification model gives one value per expected class per image; an
 * EOSIN_ERROR_CONFIG error naming the config, the model and both counts if not. */
bool _eosin_check_classifier(const EosinInfer *inf, const EosinClassifierExpect *want,
                             GError **err);

G_END_DECLS
