/*
 * activate.c — a model's [model] activation applied to its raw outputs:
 * softmax or sigmoid over the classes of each position, for the analyzers
 * (cnn, cytology) and `eosin predict`, which read networks exported
 * without their final activation. Moved from the cnn analyzer unchanged,
 * so every caller keeps the same floating-point operations.
 */
#include "nn/eosin-nn.h"

#include <math.h>
#include <string.h>

/* In place over @v (the caller's); nothing is allocated. */
void _eosin_activate(const char *activation, float *v, size_t n, int C, size_t stride) {
  char kind = !strcmp(activation, "sigmoid") ? 'g' : !strcmp(activation, "softmax") ? 's' : 'n';
  for (size_t p = 0; kind != 'n' && p < n; p++) {
    float *x = v + (stride == 1 ? p * C : p);
    if (kind == 'g') {
      for (int k = 0; k < C; k++)
        x[k * stride] = 1.0f / (1.0f + expf(-x[k * stride]));
    } else {
      float mx = x[0];
      for (int k = 1; k < C; k++)
        mx = fmaxf(mx, x[k * stride]);
      double sum = 0;
      for (int k = 0; k < C; k++)
        sum += x[k * stride] = expf(x[k * stride] - mx);
      for (int k = 0; k < C; k++)
        x[k * stride] = (float) (x[k * stride] / sum);
    }
  }
}
