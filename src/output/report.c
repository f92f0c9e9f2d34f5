/*
 * report.c — the completeness test a batch uses to skip finished
 * slides: an output folder Eosin sealed, every file it lists intact,
 * report.json parsing and saying "complete", its identity that of this
 * slide, config and models, and every file this config writes there
 * (tiles.geojson, which an earlier Eosin did not write).
 */
#include "eosin-private.h"

#include <glib/gstdio.h>
#include <math.h>

EosinOutputState _eosin_output_state(const char *final, const EosinIdentity *want, char **why) {
  g_autofree char *w = NULL;
  GStatBuf st;
  if (g_lstat(final, &st) != 0)
    return EOSIN_OUTPUT_ABSENT;
  g_autoptr(GError) e = NULL;
  EosinOutputState state = EOSIN_OUTPUT_COMPLETE;
  if (!_eosin_output_is_ours(final, want->slide_path, &e)) {
    state = EOSIN_OUTPUT_FOREIGN;
    w = g_strdup(e->message);
  } else if (!_eosin_output_sealed_intact(final, &w)) {
    state = EOSIN_OUTPUT_BROKEN;
  } else {
    g_autofree char *path = g_build_filename(final, "report.json", NULL);
    g_autoptr(JsonNode) root = _eosin_read_json_file(path, "report", EOSIN_REPORT_MAX_BYTES,
                                                     EOSIN_REPORT_MAX_DEPTH, NULL);
    JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
    JsonNode *status = o ? json_object_get_member(o, "status") : NULL;
    if (!o) {
      state = EOSIN_OUTPUT_BROKEN;
      w = g_strdup("its report.json does not parse");
    } else if (!status || !JSON_NODE_HOLDS_VALUE(status) ||
               json_node_get_value_type(status) != G_TYPE_STRING ||
               strcmp(json_node_get_string(status), "complete")) {
      state = EOSIN_OUTPUT_BROKEN;
      w = g_strdup("its report.json does not say it is complete");
    } else {
      JsonNode *idn = json_object_get_member(o, "identity");
      w = _eosin_identity_differs(want, idn && JSON_NODE_HOLDS_OBJECT(idn)
                                            ? json_node_get_object(idn)
                                            : NULL);
      if (w)
        state = EOSIN_OUTPUT_STALE;
      /* the folder is sealed and holds nothing unlisted: a file there is
       * listed and intact */
      for (char **f = want->outputs; !w && f && *f; f++) {
        g_autofree char *p = g_build_filename(final, *f, NULL);
        if (!g_file_test(p, G_FILE_TEST_IS_REGULAR)) {
          state = EOSIN_OUTPUT_STALE;
          w = g_strdup_printf("it has no %s, which this config writes (a result of an "
                              "earlier Eosin)",
                              *f);
        }
      }
    }
  }
  if (why)
    *why = g_steal_pointer(&w);
  return state;
}

bool eosin_output_check(const EosinConfig *cfg, const char *slide, const EosinRunOptions *opts,
                        const char *outdir, EosinOutputState *state, char **why, GError **err) {
  g_auto(EosinIdentity) id = {0};
  if (!_eosin_identity_config(cfg, &id, err) ||
      !_eosin_identity_slide(slide, opts ? opts->mpp_override : 0, opts ? opts->cancel : NULL,
                             &id, err))
    return false;
  g_autofree char *name = eosin_slide_name_from_path(slide);
  g_autofree char *final = g_build_filename(outdir, name, NULL);
  *state = _eosin_output_state(final, &id, why);
  return true;
}
