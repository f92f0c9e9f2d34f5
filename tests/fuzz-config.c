/*
 * fuzz-config.c — libFuzzer target for task configs (`make fuzz`): the
 * input is the text of a config file. eosin_config_load parses it
 * (duplicate groups/keys, GKeyFile, every common key, the [model] mean and
 * std number triples, the memory estimate); a config that loads then goes
 * through what a run checks before any slide is read: its analyzer's init
 * (the [stain] and [ihc] stain vectors "r,g,b; r,g,b; r,g,b" and every key
 * of the analyzer's group), the overlay and lesion channel names against
 * the analyzer's channels, and the config part of a result's identity
 * (the canonical config text and its hash). Models are never loaded: the
 * [model] path is replaced by a file that does not exist, so the cnn and
 * cytology inits stop at the model with an error after their own keys.
 */
#include "fuzz-common.c"

static char *cfg_path, *no_model;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!cfg_path) {
    cfg_path = fuzz_path("fuzz.ini");
    no_model = fuzz_path("no-such-model.onnx");
  }
  fuzz_write(cfg_path, data, size);
  GError *err = NULL;
  EosinConfig *cfg = eosin_config_load(cfg_path, &err);
  fuzz_contract(cfg != NULL, err, "eosin_config_load");
  g_clear_error(&err);
  if (!cfg)
    return 0;

  const EosinAnalyzerOps *ops = eosin_analyzer_find(cfg->analyzer);
  FUZZ_ASSERT(ops, "a config that loads names a known analyzer (%s)", cfg->analyzer);
  FUZZ_ASSERT(cfg->tile_size >= 16 && cfg->overlap >= 0 && cfg->overlap < cfg->tile_size,
              "tile_size %d overlap %d", cfg->tile_size, cfg->overlap);
  FUZZ_ASSERT(cfg->mpp > 0 && cfg->max_memory_bytes > 0, "mpp %g", cfg->mpp);
  for (int c = 0; c < 3; c++)
    FUZZ_ASSERT(isfinite(cfg->model.pre.mean[c]) && cfg->model.pre.std[c] > 0,
                "mean/std %d: %g %g", c, cfg->model.pre.mean[c], cfg->model.pre.std[c]);
  FUZZ_ASSERT(!cfg->model.classes || (int) g_strv_length(cfg->model.classes) == cfg->model.n_classes,
              "n_classes");
  FUZZ_ASSERT(_eosin_config_memory_estimate(cfg, cfg->readers) > 0, "memory estimate");

  /* never a real model: the loaders have fuzz-onnx */
  if (cfg->model.path)
    eosin_config_set_model(cfg, no_model, NULL);

  void *ctx = NULL;
  EosinAnalyzerInfo info = {0};
  bool ok = ops->init(cfg, &ctx, &info, &err);
  fuzz_contract(ok, err, ops->name);
  g_clear_error(&err);
  if (ok) {
    FUZZ_ASSERT(info.n_channels > 0 && info.channel_names && info.default_min &&
                    info.default_max,
                "analyzer info");
    for (int c = 0; c < info.n_channels; c++)
      FUZZ_ASSERT(info.channel_names[c] != NULL, "channel %d has no name", c);
    FUZZ_ASSERT(info.channel_names[info.n_channels] == NULL, "channel names not terminated");
    /* the pipeline's lookup of [overlay] channel and [lesions] channel */
    const char *want[2] = {cfg->overlay_channel, cfg->lesions.present ? cfg->lesions.channel : ""};
    for (int w = 0; w < 2; w++) {
      volatile int found = !*want[w];
      for (int c = 0; c < info.n_channels; c++)
        found |= !strcmp(info.channel_names[c], want[w]);
      (void) found;
    }
  }
  if (ctx && ops->destroy)
    ops->destroy(ctx);

  g_auto(EosinIdentity) id = {0};
  ok = _eosin_identity_config(cfg, &id, &err);
  fuzz_contract(ok, err, "_eosin_identity_config");
  g_clear_error(&err);
  if (ok)
    FUZZ_ASSERT(id.config_sha256 && strlen(id.config_sha256) == 64, "config hash");
  eosin_config_free(cfg);
  return 0;
}
