/*
 * fuzz-onnx.c — libFuzzer target for the ONNX loader (`make fuzz`): any
 * bytes must give a model or an error, never a crash, a hang or a leak.
 */
#include "eosin-private.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  GError *err = NULL;
  EosinModel *m = eosin_model_load_from_memory("fuzz.onnx", data, size, 2, &err);
  /* the contract: exactly one of a model and an error */
  if (!m == !err)
    __builtin_trap();
  eosin_model_free(m);
  g_clear_error(&err);
  return 0;
}
