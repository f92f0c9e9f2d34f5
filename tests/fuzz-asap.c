/*
 * fuzz-asap.c — libFuzzer target for ASAP XML annotations, the CAMELYON16
 * truth (`make fuzz`): the input is an XML file, loaded by
 * _eosin_asap_xml_load (GMarkup, the root and nesting checks, Coordinate
 * values). Polygons that load must be well formed (vertices in pairs
 * within [0, EOSIN_EVAL_MAX_COORD], a line per vertex); they are then
 * rasterised as eval does (_eosin_c16_mask_from_polygons on a grid sized
 * like read_truth's) and labelled into lesions (_eosin_c16_lesions) when
 * that grid has at most FUZZ_MAX_CELLS cells: eval allows 4e8 (gigabytes,
 * by design), which would make every large-but-valid input a slow one.
 */
#include "fuzz-common.c"

#define FUZZ_MAX_CELLS (1 << 18)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char *path;
  if (!path)
    path = fuzz_path("truth.xml");
  fuzz_write(path, data, size);
  GError *err = NULL;
  GArray *polys = _eosin_asap_xml_load(path, &err);
  fuzz_contract(polys != NULL, err, "_eosin_asap_xml_load");
  g_clear_error(&err);
  if (!polys)
    return 0;
  double mx = 0, my = 0;
  for (guint i = 0; i < polys->len; i++) {
    const EosinPolygon *p = &g_array_index(polys, EosinPolygon, i);
    FUZZ_ASSERT(p->group && p->xy && p->line, "polygon %u", i);
    FUZZ_ASSERT(p->xy->len % 2 == 0 && p->xy->len == 2 * p->line->len,
                "polygon %u: %u values, %u lines", i, p->xy->len, p->line->len);
    int kind = _eosin_asap_group_kind(p->group);
    FUZZ_ASSERT(kind == 0 || p->xy->len > 0, "tumour/exclusion polygon %u without vertices", i);
    for (guint k = 0; k < p->xy->len; k++) {
      double v = g_array_index(p->xy, double, k);
      FUZZ_ASSERT(v >= 0 && v <= EOSIN_EVAL_MAX_COORD, "polygon %u value %u = %g", i, k, v);
      if (k % 2)
        my = MAX(my, v);
      else
        mx = MAX(mx, v);
    }
  }
  double gw = ceil(mx / 32) + 16, gh = ceil(my / 32) + 16;
  if (gw * gh <= FUZZ_MAX_CELLS) {
    int w = (int) gw, h = (int) gh;
    uint8_t *mask = _eosin_c16_mask_from_polygons(polys, w, h);
    EosinTruthLesions les;
    bool ok = _eosin_c16_lesions(mask, w, h, &les, &err);
    fuzz_contract(ok, err, "_eosin_c16_lesions");
    g_clear_error(&err);
    if (ok) {
      FUZZ_ASSERT(les.n_tumours >= 0 && les.n_tumours <= les.n_labels, "lesion counts");
      for (size_t i = 0; i < (size_t) w * h; i++)
        FUZZ_ASSERT(les.label[i] >= 0 && les.label[i] <= les.n_labels, "label %d",
                    les.label[i]);
    }
    _eosin_truth_lesions_clear(&les);
    g_free(mask);
  }
  g_array_unref(polys);
  return 0;
}
