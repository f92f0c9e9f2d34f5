/*
 * fuzz-manifest.c — libFuzzer target for the batch manifest and the
 * predict image list (`make fuzz`): the input is the text of one file,
 * read as a manifest by eosin_batch_from_manifest ("path" or "path,mpp"
 * rows, comments, a header) and as an image list by eosin_predict (one
 * path per line, '#' comments). The list reader is static in predict.c;
 * eosin_predict reaches it before any model or image is touched, and the
 * config here names a model file that does not exist, so each input costs
 * the list and one failed stat, never an inference.
 */
#include "fuzz-common.c"

static char *manifest, *csv_out;
static EosinConfig *predict_cfg;

static void init_once(void) {
  if (manifest)
    return;
  manifest = fuzz_path("manifest.csv");
  csv_out = fuzz_path("predictions.csv");
  static const char CFG[] = "[task]\nname = fuzz\nanalyzer = cnn\n"
                            "[tiling]\ntile_size = 96\nmpp = 1\n"
                            "[model]\npath = no-such-model.onnx\nclasses = normal, tumour\n";
  g_autofree char *cfg = fuzz_write_rel("predict.ini", CFG, strlen(CFG));
  GError *err = NULL;
  predict_cfg = eosin_config_load(cfg, &err);
  if (!predict_cfg) {
    fprintf(stderr, "fuzz-manifest: %s\n", err->message);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init_once();
  fuzz_write(manifest, data, size);
  GError *err = NULL;
  GPtrArray *items = eosin_batch_from_manifest(manifest, &err);
  fuzz_contract(items != NULL, err, "eosin_batch_from_manifest");
  g_clear_error(&err);
  if (items) {
    FUZZ_ASSERT(items->len > 0, "an empty manifest loaded");
    for (guint i = 0; i < items->len; i++) {
      const EosinBatchItem *it = items->pdata[i];
      FUZZ_ASSERT(it->path && *it->path, "item %u has no path", i);
      FUZZ_ASSERT(it->mpp == 0 || (it->mpp > 0 && isfinite(it->mpp)), "item %u mpp %g", i,
                  it->mpp);
    }
    g_ptr_array_unref(items);
  }

  /* the same bytes as an image list: the model is missing, so this must fail */
  EosinPredictResult res;
  bool ok = eosin_predict(predict_cfg, manifest, csv_out, NULL, &res, &err);
  fuzz_contract(ok, err, "eosin_predict");
  FUZZ_ASSERT(!ok, "predict ran without a model");
  g_clear_error(&err);
  eosin_predict_result_clear(&res);
  return 0;
}
