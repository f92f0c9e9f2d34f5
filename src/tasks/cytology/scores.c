/*
 * scores.c — the cytology analyzer's slide stage (finish): cells ranked by
 * suspicion, the gallery chosen, adequacy counted, the triage rule applied
 * and report.json "scores" written: triage, evidence, warnings, the most
 * suspicious cells and tiles.
 */
#include "tasks/cytology/cytology-private.h"

#include <math.h>

static int cell_cmp(gconstpointer a, gconstpointer b) {
  return _eosin_cyto_cell_cmp(a, b);
}

static int crop_cmp(const void *a, const void *b) {
  return _eosin_cyto_cell_cmp(&((const EosinCytoCrop *) a)->cell,
                              &((const EosinCytoCrop *) b)->cell);
}

/* The gallery from the sorted pool: most suspicious first, passing over a
 * cell within half a window of one already shown (the same cluster seen
 * again), up to gallery_n. */
static void select_gallery(CytoCtx *c) {
  double r = c->window_um / 2 / c->mpp_x, r2 = r * r;
  int kept = 0;
  for (int i = 0; i < c->n_gallery; i++) {
    bool near = kept >= c->gallery_n;
    for (int j = 0; j < kept && !near; j++) {
      double dx = c->gallery[i].cell.x - c->gallery[j].cell.x;
      double dy = c->gallery[i].cell.y - c->gallery[j].cell.y;
      near = dx * dx + dy * dy < r2;
    }
    if (near) {
      g_free(c->gallery[i].rgb);
      continue;
    }
    c->gallery[kept++] = c->gallery[i];
  }
  c->n_gallery = kept;
}

static void json_cell(JsonBuilder *b, const CytoCtx *c, const EosinCytoCell *cell, int rank) {
  json_builder_begin_object(b);
  _eosin_json_int(b, "rank", rank);
  _eosin_json_num(b, "x", round(cell->x * 10) / 10);
  _eosin_json_num(b, "y", round(cell->y * 10) / 10);
  _eosin_json_str(b, "class", c->cell_classes[cell->cls]);
  _eosin_json_num(b, "class_probability", cell->p_class);
  _eosin_json_num(b, "abnormal_probability", cell->p_abnormal);
  _eosin_json_num(b, "suspicion", cell->suspicion);
  _eosin_json_num(b, "nucleus_area_um2", cell->nucleus_area_um2);
  json_builder_end_object(b);
}

/* report.json "scores" "triage": the category and the evidence behind it,
 * or why there is none (@reason). */
static void json_triage(JsonBuilder *b, const CytoCtx *c, const char *reason, size_t n) {
  const EosinTriage *t = &c->triage;
  json_builder_set_member_name(b, "triage");
  json_builder_begin_object(b);
  _eosin_json_bool(b, "assessable", t->assessable);
  if (!t->assessable) {
    _eosin_json_str(b, "category", NULL);
    _eosin_json_str(b, "reason", reason);
  } else {
    _eosin_json_str(b, "category", _eosin_cyto_triage_names[t->category]);
    _eosin_json_num(b, "abnormal", t->abnormal);
    _eosin_json_str(b, "rule", c->rule.count ? "count" : "mean");
    if (c->rule.count) {
      /* the evidence in a cytologist's words */
      _eosin_json_int(b, "fields_abnormal", t->lesion_tiles);
      _eosin_json_num(b, "fields_expected_on_a_normal_slide", t->fields_expected);
      _eosin_json_num(b, "chance_on_a_normal_slide", t->chance);
      g_autofree char *ev = g_strdup_printf(
          "%d fields scored abnormal; %.1f expected on a normal slide of this size "
          "(%.1f %% of fields called abnormal in the tile model's cross-validation); "
          "chance %.2g %s %.2g",
          t->lesion_tiles, t->fields_expected, 100 * c->rule.field_fp_rate, t->chance,
          t->chance < c->rule.alpha ? "<" : ">=", c->rule.alpha);
      _eosin_json_str(b, "evidence", ev);
    }
    json_builder_set_member_name(b, "probabilities");
    json_builder_begin_object(b);
    for (int q = 0; q < EOSIN_CYTO_FIELD_CLASSES; q++)
      _eosin_json_num(b, _eosin_cyto_triage_names[q], t->prob[q]);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "tile_evidence");
    json_builder_begin_object(b);
    _eosin_json_int(b, "top_tiles", t->top_tiles);
    _eosin_json_num(b, "abnormal", t->tile_abnormal);
    _eosin_json_int(b, "lesion_tiles", t->lesion_tiles);
    json_builder_set_member_name(b, "grade");
    json_builder_begin_object(b);
    for (int q = 0; q < EOSIN_CYTO_FIELD_CLASSES; q++)
      _eosin_json_num(b, c->names[q], t->grade[q]);
    json_builder_end_object(b);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "cell_evidence");
    json_builder_begin_object(b);
    _eosin_json_int(b, "cells", (gint64) n);
    _eosin_json_num(b, "abnormal", t->cell_abnormal);
    json_builder_end_object(b);
    _eosin_json_num(b, "cell_weight", c->rule.cell_weight);
    _eosin_json_num(b, "threshold", c->rule.threshold);
  }
  json_builder_end_object(b);
}

/* report.json "scores" "top_tiles": the ten tiles the tile model finds
 * most abnormal, ranked. */
static void json_top_tiles(JsonBuilder *b, const CytoCtx *c, const EosinTilePlan *plan) {
  json_builder_set_member_name(b, "top_tiles");
  json_builder_begin_array(b);
  g_autofree EosinCytoCell *rank = g_new0(EosinCytoCell, MAX(c->n_tiles, 1));
  size_t nr = 0;
  for (size_t i = 0; i < c->n_tiles; i++)
    if (!isnan(c->tile_probs[4 * i])) {
      const EosinTile *tl = &g_array_index(plan->tiles, EosinTile, i);
      float a = 1 - c->tile_probs[4 * i];
      rank[nr++] = (EosinCytoCell){.x = tl->x, .y = tl->y, .tile = (uint32_t) i,
                                   .p_abnormal = a, .suspicion = a};
    }
  qsort(rank, nr, sizeof *rank, cell_cmp);
  for (size_t i = 0; i < MIN(nr, (size_t) 10); i++) {
    const float *pr = c->tile_probs + 4 * rank[i].tile;
    int best = 0;
    for (int q = 1; q < 4; q++)
      if (pr[q] > pr[best])
        best = q;
    json_builder_begin_object(b);
    _eosin_json_int(b, "rank", (gint64) i + 1);
    _eosin_json_int(b, "x", (gint64) rank[i].x);
    _eosin_json_int(b, "y", (gint64) rank[i].y);
    _eosin_json_num(b, "abnormal", rank[i].p_abnormal);
    _eosin_json_str(b, "class", c->names[best]);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
}

bool _eosin_cyto_finish(void *ctx, const EosinTilePlan *plan, float *values, JsonBuilder *b,
                        GError **err) {
  (void) values;
  CytoCtx *c = ctx;
  if (!c->tiles.tile_at) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "cytology: finish() before prepare()");
    return false;
  }
  g_array_sort(c->cells, cell_cmp);
  qsort(c->gallery, c->n_gallery, sizeof *c->gallery, crop_cmp);
  select_gallery(c);
  const EosinCytoCell *cells = (const EosinCytoCell *) c->cells->data;
  size_t n = c->cells->len;
  int64_t by_class[EOSIN_CYTO_MAX_CELL_CLASSES] = {0}, n_abn = 0, n_sq = 0;
  for (size_t i = 0; i < n; i++)
    by_class[cells[i].cls]++, n_abn += cells[i].p_abnormal >= 0.5f;
  for (int q = 0; q < c->n_cell_classes; q++)
    n_sq += c->not_squamous[q] ? 0 : by_class[q];

  g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func(g_free);
  const char *reason = NULL;
  if (c->not_brightfield) {
    reason = c->not_brightfield;
  } else if (n < (size_t) c->min_cells_triage) {
    g_ptr_array_add(warnings, g_strdup_printf("%zu cells found, fewer than the %d a triage "
                                              "needs (min_cells_for_triage): no triage",
                                              n, c->min_cells_triage));
    reason = warnings->pdata[warnings->len - 1];
  }
  if (n_sq < c->min_cells && !c->not_brightfield)
    g_ptr_array_add(warnings,
                    g_strdup_printf("%" G_GINT64_FORMAT " squamous cells (by the cell model): "
                                    "below the %d The Bethesda System asks of a liquid-based "
                                    "slide (adequacy: unsatisfactory)",
                                    n_sq, c->min_cells));
  if (c->not_brightfield)
    g_ptr_array_add(warnings, g_strdup(c->not_brightfield));
  memset(&c->triage, 0, sizeof c->triage);
  if (!reason)
    _eosin_cyto_triage(&c->rule, c->tile_probs, 4, c->n_tiles, cells, n, &c->triage);
  c->finished = true;

  _eosin_json_int(b, "cells", (gint64) n);
  _eosin_json_int(b, "abnormal_cells", n_abn);
  json_builder_set_member_name(b, "cells_by_class");
  json_builder_begin_object(b);
  for (int q = 0; q < c->n_cell_classes; q++)
    _eosin_json_int(b, c->cell_classes[q], by_class[q]);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "adequacy");
  json_builder_begin_object(b);
  _eosin_json_int(b, "squamous_cells", n_sq);
  _eosin_json_int(b, "min_cells", c->min_cells);
  _eosin_json_bool(b, "satisfactory", !c->not_brightfield && n_sq >= c->min_cells);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "glass_rgb");
  json_builder_begin_array(b);
  for (int k = 0; k < 3; k++)
    _eosin_json_value(b, isfinite(c->glass[k]) ? round(c->glass[k] * 10) / 10 : 0);
  json_builder_end_array(b);

  json_triage(b, c, reason, n);

  json_builder_set_member_name(b, "warnings");
  json_builder_begin_array(b);
  for (guint i = 0; i < warnings->len; i++)
    json_builder_add_string_value(b, warnings->pdata[i]);
  json_builder_end_array(b);

  /* the most suspicious cells, one ranking with one source: the gallery's
   * cells, one per place, in its order (rank k is gallery #k); without a
   * gallery ([cytology] gallery_cells = 0) the ten most suspicious */
  json_builder_set_member_name(b, "top_cells");
  json_builder_begin_array(b);
  if (c->gallery_n > 0)
    for (int i = 0; i < c->n_gallery; i++)
      json_cell(b, c, &c->gallery[i].cell, i + 1);
  else
    for (size_t i = 0; i < MIN(n, (size_t) 10); i++)
      json_cell(b, c, &cells[i], (int) i + 1);
  json_builder_end_array(b);
  json_top_tiles(b, c, plan);
  return true;
}
