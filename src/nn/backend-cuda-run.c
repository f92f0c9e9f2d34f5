/*
 * backend-cuda-run.c — one batch through a loaded CUDA context: the input
 * (floats, or uint8 tiles preprocessed on the device) uploaded through
 * pinned memory in EOSIN_CUDA_CHUNKS pieces on the copy stream, the
 * compute stream waiting on each piece's event, then every step, then the
 * output converted (fp16) and downloaded. Synchronous: a run returns its
 * output, so the overlap is within a call.
 */
#include "nn/backend-cuda-private.h"

#define T(i) _eosin_cuda_tensor(c, (i))

/* Batch items [b0, b1) of chunk k of @parts along a batch of @batch. */
static void chunk(size_t batch, int parts, int k, size_t *b0, size_t *b1) {
  *b0 = batch * k / parts;
  *b1 = batch * (k + 1) / parts;
}

/* Uploads the float input in pieces on the copy stream; the compute
 * stream waits for each (and converts it to half in fp16). */
static bool upload_input(CudaCtx *c, const float *input, GError **err) {
  const EosinNode *node = NULL;
  const EosinTensor *in = T(c->m->input);
  size_t batch = in->ndim ? (size_t) in->dims[0] : 1, per = c->n_in / MAX(batch, 1);
  int parts = (int) MIN(batch, EOSIN_CUDA_CHUNKS);
  void *din = c->dev[c->m->input];
  float *pin = c->pin_in;
  for (int k = 0; k < parts; k++) {
    size_t b0, b1;
    chunk(batch, parts, k, &b0, &b1);
    size_t off = b0 * per, n = (b1 - b0) * per;
    /* this copy into pinned memory overlaps the DMA of the piece before */
    memcpy(pin + off, input + off, n * sizeof(float));
    float *dst = c->fp16 ? c->stage_in + off : (float *) din + off;
    CUDA_TRY(cudaMemcpyAsync(dst, pin + off, n * sizeof(float), cudaMemcpyHostToDevice, c->copy),
             "uploading the input");
    CUDA_TRY(cudaEventRecord(c->ev[k], c->copy), "cudaEventRecord");
    CUDA_TRY(cudaStreamWaitEvent(c->compute, c->ev[k], 0), "cudaStreamWaitEvent");
    if (c->fp16)
      KERNEL_TRY(eosin_cuda_convert(c->stage_in + off, EOSIN_CUDA_F32, (char *) din + off * 2,
                                    EOSIN_CUDA_F16, n, c->compute),
                 "converting the input to half");
  }
  return true;
}

/* Converts (fp16) and downloads the first output, waits for the device. */
static bool download_output(CudaCtx *c, float *output, GError **err) {
  const EosinNode *node = NULL;
  const void *src = c->dev[c->m->output];
  if (c->fp16) {
    KERNEL_TRY(eosin_cuda_convert(src, EOSIN_CUDA_F16, c->stage_out, EOSIN_CUDA_F32, c->n_out,
                                  c->compute),
               "converting the output to float");
    src = c->stage_out;
  }
  CUDA_TRY(cudaMemcpyAsync(c->pin_out, src, c->n_out * sizeof(float), cudaMemcpyDeviceToHost,
                           c->compute),
           "downloading the output");
  CUDA_TRY(cudaStreamSynchronize(c->compute), "running the model");
  CUDA_TRY(cudaStreamSynchronize(c->copy), "uploading the input");
  memcpy(output, c->pin_out, c->n_out * sizeof(float));
  return true;
}

/* After a failed run: nothing may still be using the staging buffers when
 * the next call refills them. Errors here are the ones already reported. */
static bool settle(CudaCtx *c, bool ok) {
  if (!ok) {
    cudaStreamSynchronize(c->copy);
    cudaStreamSynchronize(c->compute);
  }
  return ok;
}

static bool ready(CudaCtx *c, GError **err) {
  const EosinNode *node = NULL;
  if (!c->loaded) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "cuda: run before a successful load");
    return false;
  }
  CUDA_TRY(cudaSetDevice(c->device), "cudaSetDevice");
  return true;
}

bool _eosin_cuda_run(void *ctx, const float *input, float *output, GError **err) {
  CudaCtx *c = ctx;
  if (!ready(c, err))
    return false;
  return settle(c, upload_input(c, input, err) && _eosin_cuda_exec_all(c, false, err) &&
                       download_output(c, output, err));
}

/* Uploads @n uint8 tiles in pieces on the copy stream; the compute stream
 * preprocesses each piece (eosin_cuda_preprocess) as it arrives and zeroes
 * the rest of the batch. */
static bool upload_rgb(CudaCtx *c, const uint8_t *rgb, int n, const EosinPreprocess *pp,
                       GError **err) {
  const EosinNode *node = NULL;
  const EosinTensor *in = T(c->m->input);
  int size = (int) in->dims[2];
  size_t tile = (size_t) size * size * 3; /* bytes of one tile, values of one input item */
  void *din = c->dev[c->m->input];
  uint8_t *pin = c->pin_in;
  int parts = MIN(n, EOSIN_CUDA_CHUNKS);
  for (int k = 0; k < parts; k++) {
    size_t t0, t1;
    chunk((size_t) n, parts, k, &t0, &t1);
    size_t off = t0 * tile, bytes = (t1 - t0) * tile;
    memcpy(pin + off, rgb + off, bytes);
    CUDA_TRY(cudaMemcpyAsync(c->rgb + off, pin + off, bytes, cudaMemcpyHostToDevice, c->copy),
             "uploading tiles");
    CUDA_TRY(cudaEventRecord(c->ev[k], c->copy), "cudaEventRecord");
    CUDA_TRY(cudaStreamWaitEvent(c->compute, c->ev[k], 0), "cudaStreamWaitEvent");
    /* a tile is @tile bytes in and @tile values out: off counts both */
    float *dst = c->fp16 ? c->stage_in : (float *) din;
    KERNEL_TRY(eosin_cuda_preprocess(c->rgb + off, (int) (t1 - t0), size, pp->mean, pp->std,
                                     pp->bgr, dst + off, c->compute),
               "preprocessing kernel");
    if (c->fp16)
      KERNEL_TRY(eosin_cuda_convert(c->stage_in + off, EOSIN_CUDA_F32, (char *) din + off * 2,
                                    EOSIN_CUDA_F16, bytes, c->compute),
                 "converting the input to half");
  }
  size_t done = (size_t) n * tile * c->es;
  if (done < c->n_in * c->es)
    CUDA_TRY(cudaMemsetAsync((char *) din + done, 0, c->n_in * c->es - done, c->compute),
             "zeroing the rest of the batch");
  return true;
}

bool _eosin_cuda_run_rgb(void *ctx, const uint8_t *rgb, int n, const EosinPreprocess *pp,
                         float *output, GError **err) {
  CudaCtx *c = ctx;
  if (!ready(c, err))
    return false;
  const EosinTensor *in = T(c->m->input);
  if (!c->rgb) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL,
                "model %s: run_rgb needs an N x 3 x S x S input", c->m->path);
    return false;
  }
  if (n < 0 || n > in->dims[0] || !pp || (n > 0 && !rgb)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "cuda: run_rgb: %d tiles for a batch of %" G_GINT64_FORMAT, n, in->dims[0]);
    return false;
  }
  return settle(c, upload_rgb(c, rgb, n, pp, err) && _eosin_cuda_exec_all(c, false, err) &&
                       download_output(c, output, err));
}
