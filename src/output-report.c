/*
 * output-report.c — the text outputs of a slide: tiles.csv (one row per
 * analysed tile, level-0 geometry and every channel — the mean over the
 * tile's map for analyzers that give one) and the completeness
 * test a batch uses to skip finished slides (report.json with status
 * "complete", which the pipeline writes last).
 */
#include "eosin-private.h"

bool _eosin_write_tiles_csv(const char *path, const EosinTilePlan *plan,
                            const EosinAnalyzerInfo *ai, const float *values, GError **err) {
  g_autoptr(GString) s = g_string_new("tile,col,row,x,y,width,height,tissue");
  for (int c = 0; c < ai->n_channels; c++)
    g_string_append_printf(s, ",%s", ai->channel_names[c]);
  g_string_append_c(s, '\n');
  const EosinTile *tiles = (const EosinTile *) plan->tiles->data;
  int w = (int) (plan->tile_l0_x + 0.5), h = (int) (plan->tile_l0_y + 0.5);
  char num[G_ASCII_DTOSTR_BUF_SIZE];
  size_t cells = _eosin_values_per_tile(ai) / ai->n_channels;
  for (guint t = 0; t < plan->tiles->len; t++) {
    g_string_append_printf(s, "%u,%d,%d,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%d,%d,%s", t,
                           tiles[t].col, tiles[t].row, tiles[t].x, tiles[t].y, w, h,
                           g_ascii_formatd(num, sizeof num, "%.4f", tiles[t].tissue));
    const float *v = values + t * cells * ai->n_channels;
    for (int c = 0; c < ai->n_channels; c++) {
      double sum = 0;
      for (size_t k = 0; k < cells; k++)
        sum += v[k * ai->n_channels + c];
      g_string_append_printf(s, ",%s", g_ascii_formatd(num, sizeof num, "%.9g", sum / cells));
    }
    g_string_append_c(s, '\n');
  }
  return _eosin_write_atomic(path, s->str, s->len, err);
}

bool eosin_output_is_complete(const char *outdir, const char *name) {
  g_autofree char *path = g_build_filename(outdir, name, "report.json", NULL);
  g_autoptr(JsonParser) parser = json_parser_new();
  if (!json_parser_load_from_file(parser, path, NULL))
    return false;
  JsonNode *root = json_parser_get_root(parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root))
    return false;
  JsonObject *o = json_node_get_object(root);
  const char *status = json_object_get_string_member_with_default(o, "status", "");
  return !strcmp(status, "complete");
}
