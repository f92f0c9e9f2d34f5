/*
 * backend-cuda-plan.h — the host-only arithmetic of the CUDA backend: how a
 * model's padding maps onto cuDNN (which pads both ends of a dimension
 * alike) and where each activation lives in one device arena. Plain C with
 * no CUDA headers, compiled in every build, so the tests check it on
 * machines without a GPU.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One spatial dimension of a window op (convolution, pooling) as cuDNN
 * runs it: explicit zero padding added first, then `sym` at both ends. */
typedef struct {
  int64_t sym;       /* padding cuDNN applies at both ends */
  int64_t pre_begin; /* explicit zero padding before the data */
  int64_t pre_end;   /* explicit zero padding after it (trimmed to what is read) */
  bool overhang;     /* windows reach past the model's end padding (ceil_mode) */
} EosinCudaPadPlan;

/* Plans one dimension of a window op over @in values (kernel @k, stride
 * @s, dilation @d, model pads @pb / @pe) whose output has @out values:
 * cuDNN's floor((in' + 2 sym - d (k - 1) - 1) / s) + 1 over the explicitly
 * padded in' = pre_begin + in + pre_end gives exactly @out, with the least
 * explicit padding. False when the numbers are inconsistent. */
bool _eosin_cuda_pad_plan(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe,
                          int64_t out, EosinCudaPadPlan *plan);

/* Places @n buffers in one arena: buffer i has @size[i] bytes (0: none)
 * and is live from step @first[i] to step @last[i] inclusive; buffers live
 * at a common step never overlap. Writes each offset (a multiple of
 * @align, a power of two) to @offset and returns the arena's size. Greedy
 * by size, largest first, each at the lowest offset that fits. */
size_t _eosin_cuda_plan_arena(int n, const size_t *size, const int *first, const int *last,
                              size_t align, size_t *offset);
