/*
 * test-config.c — the config loader's strictness: unknown keys and groups,
 * values out of range or not numbers, missing required keys, choices, and
 * analyzer keys checked when the analyzer starts; each error names the file
 * and the key.
 */
#include "test-util.h"

Test(config, strict_keys_and_values) {
  struct {
    const char *text, *needle;
  } cases[] = {
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\ntile_sise=256\n", "[tiling] tile_sise = '256': unknown key"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\ntile_size=8\n", "[tiling] tile_size = '8': out of range"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=abc\n", "[tiling] mpp = 'abc': not a number"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\ntile_size=256\n", "[tiling] mpp: required key is missing"},
      {"[task]\nname=t\nanalyzer=nope\n[tiling]\nmpp=1\n", "[task] analyzer = 'nope': no such analyzer"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[tilling]\nx=1\n", "unknown group [tilling]"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\noverlap=256\n", "[tiling] overlap = '256': must be smaller"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[overlay]\ncolormap=rainbow\n", "[overlay] colormap = 'rainbow': must be one of"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[overlay]\nmin=0\n", "[overlay] max: min and max must be given together"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[tissue]\nmin_fraction=1.5\n", "[tissue] min_fraction = '1.5': out of range"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[stain]\nmatrix=xyz\n", NULL},
      {"[task\n", "config"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *path = write_config(cases[i].text);
    g_autoptr(GError) err = NULL;
    g_autoptr(EosinConfig) cfg = eosin_config_load(path, &err);
    if (!cases[i].needle) {
      /* analyzer keys are checked when the analyzer starts */
      cr_assert(cfg, "case %zu", i);
      void *ctx;
      EosinAnalyzerInfo info;
      cr_assert_not(eosin_analyzer_find("stain")->init(cfg, &ctx, &info, &err));
      cr_expect(strstr(err->message, "[stain] matrix = 'xyz'"), "%s", err->message);
      continue;
    }
    cr_assert_null(cfg, "case %zu should fail: %s", i, cases[i].text);
    cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG));
    cr_expect(strstr(err->message, cases[i].needle), "case %zu: '%s' lacks '%s'", i, err->message,
              cases[i].needle);
    cr_expect(strstr(err->message, path), "names the file: %s", err->message);
  }
}
