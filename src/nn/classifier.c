/*
 * classifier.c — the check every user of a classification model makes
 * before its first tile (the cnn and cytology analyzers, `eosin predict`):
 * the network gives one value per class the config names. The caller
 * passes what its config expects (EosinClassifierExpect), so the runtime
 * does not depend on the config's layout.
 */
#include "nn/eosin-nn.h"
#include "eosin.h"

/* Nothing is allocated but *@err (the caller's) on a mismatch. */
bool _eosin_check_classifier(const EosinInfer *inf, const EosinClassifierExpect *want,
                             GError **err) {
  size_t got = eosin_infer_output_per_image(inf);
  if (got == (size_t) want->n_classes)
    return true;
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
              "%s: [model] classes names %d classes but model %s gives %zu values per image",
              want->config, want->n_classes, want->model, got);
  return false;
}
