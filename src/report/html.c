/*
 * html.c — report.html, a slide's result as a pathologist reads it: the
 * slide (name, hash, µm/px), the QC verdict and warnings first, the
 * preview with its legend and numbered outlines, the headline score and
 * every score with the rule behind it, the lesions / cells / tiles as
 * tables with level-0 coordinates (numbered as the outlines are), the
 * task's other images, and the provenance folded away. One file, no
 * network, no script; images beside it; readable on a phone, printable.
 * Written from report.json, so the page can never say what the data does
 * not.
 */
#include "report/report.h"

#include <math.h>
#include <stdio.h>

static const char CSS[] =
    "body{font:15px/1.45 'DejaVu Sans',sans-serif;margin:0 auto;max-width:1100px;padding:12px;"
    "color:#1a1a1a}h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em;"
    "border-bottom:1px solid #ccc}img{max-width:100%;height:auto;border:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.3em 0;font-size:.92em}td,th{border:1px solid #ccc;"
    "padding:2px 7px;text-align:left}th{background:#f0f0f0}.num{text-align:right;"
    "font-variant-numeric:tabular-nums}.verdict{display:inline-block;padding:1px 9px;"
    "border-radius:9px;font-weight:bold;color:#fff}.pass{background:#2e7d32}.warn{background:"
    "#ef8f00}.fail{background:#c62828}.none{background:#777}.headline{font-size:1.25em;margin:"
    ".4em 0}.muted{color:#666}.scroll{overflow-x:auto}pre{white-space:pre-wrap;font-size:.8em}"
    "@media print{details{display:block}summary{display:none}img{max-width:90%}}";

/* The score a slide is known by and its category, from report.json
 * "scores": the first of the tasks' headline values that is there. */
void _eosin_report_headline(JsonObject *scores, double *value, const char **label,
                            const char **category) {
  static const char *const VALUES[][2] = {
      {"lesions.slide_probability", "slide probability of metastasis"},
      {"triage.abnormal", "abnormal score"},
      {"ki67_index", "Ki-67 index (%)"},
      {"h_score", "H-score"},
      {"positive_percent", "positive cells (%)"}};
  static const char *const CATS[] = {"triage.category", "her2_category.category",
                                     "allred.category", NULL};
  *value = NAN, *label = NULL, *category = NULL;
  for (size_t i = 0; scores && i < G_N_ELEMENTS(VALUES) && isnan(*value); i++) {
    *value = _eosin_json_number_at(scores, VALUES[i][0]);
    *label = isnan(*value) ? NULL : VALUES[i][1];
  }
  for (int i = 0; scores && CATS[i] && !*category; i++)
    *category = _eosin_json_string_at(scores, CATS[i]);
  /* [lesions]: the slide's CAMELYON17 category is its largest lesion's */
  JsonNode *ln = scores && !*category ? json_object_get_member(scores, "lesions") : NULL;
  JsonObject *lo = ln && JSON_NODE_HOLDS_OBJECT(ln) ? json_node_get_object(ln) : NULL;
  JsonNode *an = lo ? json_object_get_member(lo, "lesions") : NULL;
  if (an && JSON_NODE_HOLDS_ARRAY(an)) {
    static const char *const SEVERITY[] = {"negative", "itc", "micro", "macro"};
    int worst = 0;
    JsonArray *a = json_node_get_array(an);
    for (guint i = 0; i < json_array_get_length(a); i++) {
      JsonNode *e = json_array_get_element(a, i);
      const char *c = JSON_NODE_HOLDS_OBJECT(e) ? _eosin_json_string_at(json_node_get_object(e), "category") : NULL;
      for (int k = 1; c && k < 4; k++)
        if (!strcmp(c, SEVERITY[k]))
          worst = MAX(worst, k);
    }
    *category = SEVERITY[worst];
  }
}

static void scalar(GString *s, JsonNode *n) {
  if (JSON_NODE_HOLDS_NULL(n)) {
    g_string_append(s, "<span class=\"muted\">—</span>");
    return;
  }
  GType t = json_node_get_value_type(n);
  if (t == G_TYPE_STRING)
    _eosin_html_append(s, json_node_get_string(n));
  else if (t == G_TYPE_BOOLEAN)
    g_string_append(s, json_node_get_boolean(n) ? "yes" : "no");
  else if (t == G_TYPE_INT64)
    g_string_append_printf(s, "%" G_GINT64_FORMAT, json_node_get_int(n));
  else if (fabs(json_node_get_double(n)) >= 1000)
    g_string_append_printf(s, "%.0f", json_node_get_double(n)); /* areas, coordinates */
  else
    g_string_append_printf(s, "%.4g", json_node_get_double(n));
}

static bool is_scalar(JsonNode *n) {
  return JSON_NODE_HOLDS_VALUE(n) || JSON_NODE_HOLDS_NULL(n);
}

/* An array of objects as a table: a "#" column (the rank, as the outlines
 * and the gallery number them) and one column per scalar member of the
 * first object. */
static void table(GString *s, JsonArray *a) {
  guint n = json_array_get_length(a);
  JsonNode *first = n ? json_array_get_element(a, 0) : NULL;
  if (!first || !JSON_NODE_HOLDS_OBJECT(first)) {
    g_string_append(s, "<p class=\"muted\">none</p>");
    return;
  }
  g_autoptr(GList) keys = json_object_get_members(json_node_get_object(first));
  g_string_append(s, "<div class=\"scroll\"><table><tr><th>#</th>");
  for (GList *k = keys; k; k = k->next)
    if (is_scalar(json_object_get_member(json_node_get_object(first), k->data)) &&
        strcmp(k->data, "rank")) {
      g_string_append(s, "<th>");
      _eosin_html_append(s, k->data);
      g_string_append(s, "</th>");
    }
  g_string_append(s, "</tr>\n");
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element(a, i);
    if (!JSON_NODE_HOLDS_OBJECT(e))
      continue;
    JsonObject *o = json_node_get_object(e);
    g_string_append_printf(s, "<tr><td class=\"num\">%u</td>", i + 1);
    for (GList *k = keys; k; k = k->next) {
      JsonNode *v = json_object_get_member(json_node_get_object(first), k->data);
      if (!is_scalar(v) || !strcmp(k->data, "rank"))
        continue;
      JsonNode *m = json_object_get_member(o, k->data);
      g_string_append(s, m && !JSON_NODE_HOLDS_NULL(m) && json_node_get_value_type(m) != G_TYPE_STRING
                             ? "<td class=\"num\">"
                             : "<td>");
      if (m && is_scalar(m))
        scalar(s, m);
      g_string_append(s, "</td>");
    }
    g_string_append(s, "</tr>\n");
  }
  g_string_append(s, "</table></div>\n");
}

/* An object's scalars as a two-column table; its objects and arrays of
 * objects as sections of their own, @depth deep at most. */
static void section(GString *s, JsonObject *o, const char *title, int depth) {
  if (title) {
    g_string_append_printf(s, "<h%d>", depth <= 1 ? 2 : 3);
    _eosin_html_append(s, title);
    g_string_append_printf(s, "</h%d>\n", depth <= 1 ? 2 : 3);
  }
  g_autoptr(GList) keys = json_object_get_members(o);
  bool open = false;
  for (GList *k = keys; k; k = k->next) {
    JsonNode *v = json_object_get_member(o, k->data);
    if (!is_scalar(v))
      continue;
    if (!open)
      g_string_append(s, "<table>\n"), open = true;
    g_string_append(s, "<tr><th>");
    _eosin_html_append(s, k->data);
    g_string_append(s, "</th><td>");
    scalar(s, v);
    g_string_append(s, "</td></tr>\n");
  }
  if (open)
    g_string_append(s, "</table>\n");
  for (GList *k = keys; k; k = k->next) {
    JsonNode *v = json_object_get_member(o, k->data);
    if (JSON_NODE_HOLDS_OBJECT(v) && depth < 3) {
      section(s, json_node_get_object(v), k->data, depth + 1);
    } else if (JSON_NODE_HOLDS_ARRAY(v)) {
      JsonArray *a = json_node_get_array(v);
      JsonNode *e0 = json_array_get_length(a) ? json_array_get_element(a, 0) : NULL;
      if (e0 && JSON_NODE_HOLDS_OBJECT(e0)) {
        g_string_append(s, "<h3>");
        _eosin_html_append(s, k->data);
        g_string_append_printf(s, " <span class=\"muted\">(%u)</span></h3>\n",
                               json_array_get_length(a));
        table(s, a);
      } else if (e0) {
        g_string_append(s, "<p><b>");
        _eosin_html_append(s, k->data);
        g_string_append(s, "</b>: ");
        for (guint i = 0; i < json_array_get_length(a); i++) {
          JsonNode *e = json_array_get_element(a, i);
          if (is_scalar(e)) {
            g_string_append(s, i ? ", " : "");
            scalar(s, e);
          }
        }
        g_string_append(s, "</p>\n");
      }
    }
  }
}

static void figure(GString *s, const char *dir, const char *file, const char *caption) {
  g_autofree char *p = g_build_filename(dir, file, NULL);
  if (!g_file_test(p, G_FILE_TEST_IS_REGULAR))
    return;
  g_string_append_printf(s, "<figure><a href=\"%s\"><img src=\"%s\" alt=\"%s\"></a>"
                            "<figcaption class=\"muted\">", file, file, file);
  _eosin_html_append(s, caption);
  g_string_append(s, "</figcaption></figure>\n");
}

static void pretty(GString *s, JsonNode *n) {
  if (!n)
    return;
  g_autofree char *t = json_to_string(n, TRUE);
  g_string_append(s, "<pre>");
  _eosin_html_append(s, t);
  g_string_append(s, "</pre>\n");
}

/* The page's head and the slide's line: name, task, hash, µm/px, size. */
static void page_head(GString *s, JsonObject *r) {
  const char *name = r ? _eosin_json_string_at(r, "slide.name") : NULL;
  const char *task = r ? _eosin_json_string_at(r, "identity.task") : NULL;
  g_string_append(s, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width, "
                     "initial-scale=1\"><title>");
  _eosin_html_append(s, name);
  g_string_append(s, " — Eosin</title><style>");
  g_string_append(s, CSS);
  g_string_append(s, "</style></head><body>\n<h1>");
  _eosin_html_append(s, name);
  g_string_append(s, "</h1>\n<p class=\"muted\">");
  _eosin_html_append(s, task);
  g_string_append(s, " · slide ");
  _eosin_html_append(s, r ? _eosin_json_string_at(r, "identity.slide.hash") : NULL);
  double mpp = r ? _eosin_json_number_at(r, "slide.mpp_x") : NAN;
  g_string_append_printf(s, " · %.4g µm/px (", mpp);
  _eosin_html_append(s, r ? _eosin_json_string_at(r, "slide.mpp_source") : NULL);
  g_string_append_printf(s, ") · %.0f × %.0f px · " RUN_BEGIN,
                         r ? _eosin_json_number_at(r, "slide.width") : 0,
                         r ? _eosin_json_number_at(r, "slide.height") : 0);
  _eosin_html_append(s, r ? _eosin_json_string_at(r, "created") : NULL);
  g_string_append(s, RUN_END "</p>\n");
}

/* The QC verdict, its findings and the run's warnings: before any number,
 * as a score on a failed slide is not one. */
static void quality(GString *s, JsonObject *r) {
  const char *verdict = r ? _eosin_json_string_at(r, "qc.verdict") : NULL;
  g_string_append_printf(s, "<p>Quality control: <span class=\"verdict %s\">%s</span></p>\n",
                         verdict && strspn(verdict, "pasfilwrn") == strlen(verdict) ? verdict : "none",
                         verdict ? verdict : "not checked");
  JsonNode *qr = r ? json_object_get_member(r, "qc") : NULL;
  JsonObject *qo = qr && JSON_NODE_HOLDS_OBJECT(qr) ? json_node_get_object(qr) : NULL;
  JsonNode *reasons = qo ? json_object_get_member(qo, "reasons") : NULL;
  JsonNode *warnings = r ? json_object_get_member(r, "warnings") : NULL;
  for (int w = 0; w < 2; w++) {
    JsonNode *list = w ? warnings : reasons;
    if (!list || !JSON_NODE_HOLDS_ARRAY(list) || !json_array_get_length(json_node_get_array(list)))
      continue;
    g_string_append_printf(s, "<p><b>%s</b></p><ul>\n", w ? "Warnings" : "QC findings");
    JsonArray *a = json_node_get_array(list);
    for (guint i = 0; i < json_array_get_length(a); i++) {
      JsonNode *e = json_array_get_element(a, i);
      g_string_append(s, "<li>");
      if (is_scalar(e))
        scalar(s, e);
      g_string_append(s, "</li>\n");
    }
    g_string_append(s, "</ul>\n");
  }
}

/* The headline score and category, and the rule behind each score. */
static void headline(GString *s, JsonObject *scores) {
  double value;
  const char *label, *category;
  _eosin_report_headline(scores, &value, &label, &category);
  if (label || category) {
    g_string_append(s, "<p class=\"headline\">");
    if (label)
      g_string_append_printf(s, "%s: <b>%.3g</b>", label, value);
    if (category) {
      g_string_append(s, label ? " · category <b>" : "category <b>");
      _eosin_html_append(s, category);
      g_string_append(s, "</b>");
    }
    g_string_append(s, "</p>\n");
  }
  const char *rule = scores ? _eosin_json_string_at(scores, "lesions.slide_score_rule") : NULL;
  if (rule) {
    g_string_append(s, "<p>Rule: the slide's probability is the ");
    _eosin_html_append(s, rule);
    g_string_append(s, "; lesions are the connected cells above the threshold, numbered by "
                       "their highest probability as outlined on the preview.</p>\n");
  }
  /* the rule behind each IHC and cytology score, in one sentence each */
  static const char *const RULES[][2] = {
      {"ki67_index", "Ki-67 index: DAB-positive nuclei as a percentage of all nuclei detected "
                     "in the tissue."},
      {"ki67_hotspot_index", "Ki-67 hot spot: the window of the asked area with the highest "
                             "index among windows holding at least the minimum number of cells "
                             "(outlined on the preview)."},
      {"h_score", "H-score: 1 × % weak + 2 × % moderate + 3 × % strong positive cells (0–300)."},
      {"allred.total", "Allred: proportion score (0–5) + intensity score (0–3) of the positive "
                       "cells."},
      {"triage.abnormal", "Triage: the slide is reported by its most severe lesion (Bethesda "
                          "2014), from the tile model's class probabilities and the cell "
                          "model's abnormal scores; the evidence is listed below."}};
  for (size_t i = 0; scores && i < G_N_ELEMENTS(RULES); i++)
    if (!isnan(_eosin_json_number_at(scores, RULES[i][0]))) {
      g_string_append(s, "<p>");
      _eosin_html_append(s, RULES[i][1]);
      g_string_append(s, "</p>\n");
    }
}

/* Links to the slide's files, and the provenance folded away. */
static void files_and_provenance(GString *s, const char *dir, JsonObject *r) {
  g_string_append(s, "<h2>Files</h2><p>");
  static const char *const FILES[] = {"overlay.tif", "heatmap.tif", "tiles.csv", "tiles.geojson",
                                      "lesions.geojson", "lesions.xml", "detections.csv",
                                      "cells.geojson", "cells.csv", "suspicious-cells.geojson",
                                      "report.json", NULL};
  for (int i = 0; FILES[i]; i++) {
    g_autofree char *p = g_build_filename(dir, FILES[i], NULL);
    if (g_file_test(p, G_FILE_TEST_IS_REGULAR) || !strcmp(FILES[i], "report.json"))
      g_string_append_printf(s, "<a href=\"%s\">%s</a> ", FILES[i], FILES[i]);
  }
  g_string_append(s, "</p>\n<details><summary>Provenance: model, versions, config, command"
                     "</summary>\n<h3>identity</h3>");
  pretty(s, r ? json_object_get_member(r, "identity") : NULL);
  g_string_append(s, "<h3>versions</h3>");
  pretty(s, r ? json_object_get_member(r, "versions") : NULL);
  g_string_append(s, "<h3>inference</h3>");
  pretty(s, r ? json_object_get_member(r, "inference") : NULL);
  g_string_append(s, "<h3>config</h3>");
  pretty(s, r ? json_object_get_member(r, "config") : NULL);
  g_string_append(s, "<h3>command</h3>" RUN_BEGIN);
  pretty(s, r ? json_object_get_member(r, "command") : NULL);
  g_string_append(s, RUN_END);
  g_string_append(s, "</details>\n<p class=\"muted\">Eosin ");
  _eosin_html_append(s, eosin_version());
  g_string_append(s, "</p></body></html>\n");
}

bool _eosin_report_html(const char *dir, GError **err) {
  g_autofree char *rp = g_build_filename(dir, "report.json", NULL);
  g_autoptr(JsonNode) root =
      _eosin_read_json_file(rp, "report", EOSIN_REPORT_MAX_BYTES, EOSIN_REPORT_MAX_DEPTH, err);
  if (!root)
    return false;
  JsonObject *r = JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  JsonNode *sn = r ? json_object_get_member(r, "scores") : NULL;
  JsonObject *scores = sn && JSON_NODE_HOLDS_OBJECT(sn) ? json_node_get_object(sn) : NULL;
  g_autoptr(GString) s = g_string_new(NULL);
  page_head(s, r);
  quality(s, r);
  headline(s, scores);
  figure(s, dir, "preview.png",
         "The heatmap over the slide: colour bar and scale bar below; outlines numbered as "
         "in the tables.");
  if (scores) {
    section(s, scores, "Scores", 1);
    g_string_append(s, "<p class=\"muted\">x, y: level-0 pixels of the slide; areas in µm², "
                       "extents in µm.</p>\n");
  }
  figure(s, dir, "gallery.png", "The most suspicious cells, ranked as top_cells.");
  figure(s, dir, "tissue.png", "The tissue analysed, outlined in green.");
  figure(s, dir, "qc.png", "The quality gate's artefact classes.");
  files_and_provenance(s, dir, r);
  g_autofree char *path = g_build_filename(dir, "report.html", NULL);
  return _eosin_write_atomic(path, s->str, s->len, err);
}
