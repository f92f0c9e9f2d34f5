/*
 * index.c — OUTDIR/index.html, a night's batch at a glance: totals and
 * slides per hour at the top, then one row per slide — its preview, status,
 * headline score and category, QC verdict, time, error — each linking to
 * its report.html. Rewritten with the summaries (batch-rows.c). Sorted by
 * the highest probability first for [lesions] tasks (the slides to read
 * first), else in manifest order; every column sorts on a click (a few
 * lines of plain script; the page works without it). No network.
 */
#include "report/report.h"

#include <math.h>
#include <stdlib.h>

static const char CSS[] =
    "body{font:14px/1.4 'DejaVu Sans',sans-serif;margin:0 auto;max-width:1300px;padding:12px}"
    "h1{font-size:1.3em}table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;"
    "padding:3px 6px;vertical-align:middle}th{background:#f0f0f0;cursor:pointer;user-select:none}"
    "th:hover{background:#e0e0e0}.num{text-align:right;font-variant-numeric:tabular-nums}"
    "img{width:140px;height:auto;display:block}.failed td{background:#fdecea}"
    ".err{color:#b71c1c;font-size:.9em;max-width:30em}.muted{color:#666}"
    ".scroll{overflow-x:auto}";

/* Sorting by a click on a column's header (numbers as numbers, empty last);
 * "#sort=COLUMN" or "#sort=-COLUMN" in the address sorts on load; the
 * page's body says how many of its images loaded (data-images). */
static const char SCRIPT[] =
    "(function(){var t=document.getElementById('slides');if(!t)return;"
    "function key(r,c){var v=r.cells[c].getAttribute('data-v');if(v===null)v=r.cells[c].textContent;"
    "var n=parseFloat(v);return v===''?null:(isNaN(n)?v.toLowerCase():n);}"
    "function sort(c,desc){var b=t.tBodies[0],rs=Array.prototype.slice.call(b.rows);"
    "rs.sort(function(x,y){var a=key(x,c),z=key(y,c);if(a===z)return 0;if(a===null)return 1;"
    "if(z===null)return -1;return (a<z?-1:1)*(desc?-1:1);});rs.forEach(function(r){b.appendChild(r);});"
    "t.setAttribute('data-sorted',t.tHead.rows[0].cells[c].getAttribute('data-col')+(desc?' desc':''));}"
    "var hs=t.tHead.rows[0].cells;for(var i=0;i<hs.length;i++)(function(c){hs[c].onclick=function(){"
    "var d=t.getAttribute('data-sorted')===hs[c].getAttribute('data-col');sort(c,d);};})(i);"
    "var m=/sort=(-?)([a-z_]+)/.exec(location.hash);if(m)for(var j=0;j<hs.length;j++)"
    "if(hs[j].getAttribute('data-col')===m[2])sort(j,m[1]==='-');"
    "window.addEventListener('load',function(){var im=document.images,ok=0;"
    "for(var k=0;k<im.length;k++)if(im[k].complete&&im[k].naturalWidth>0)ok++;"
    "document.body.setAttribute('data-images',ok+'/'+im.length);});})();";

/* A row and its headline (from the row: index.html reads no report.json,
 * so a merge of 100,000 rows reads 100,000 small files, not reports). */
typedef struct {
  const EosinBatchRow *row;
  struct {
    double score;
    const char *label, *category;
  } f;
} Line;

static int by_score(const void *a, const void *b) {
  const Line *x = a, *y = b;
  bool fx = isfinite(x->f.score), fy = isfinite(y->f.score);
  if (fx != fy)
    return fx ? -1 : 1;
  if (fx && x->f.score != y->f.score)
    return x->f.score > y->f.score ? -1 : 1;
  return 0;
}

bool _eosin_report_index(const char *outdir, const char *batch_id, const EosinBatchRow *rows,
                         guint n, guint total, bool lesions, GError **err) {
  g_autofree Line *lines = g_new0(Line, MAX(n, 1));
  int done = 0, failed = 0;
  double secs = 0;
  const char *label = NULL;
  for (guint i = 0; i < n; i++) {
    lines[i].row = &rows[i];
    lines[i].f.score = strcmp(rows[i].status, "failed") ? rows[i].score : NAN;
    lines[i].f.label = rows[i].score_label;
    lines[i].f.category = rows[i].category;
    label = label ? label : lines[i].f.label;
    bool ok = strcmp(rows[i].status, "failed") != 0;
    done += ok, failed += !ok;
    if (!strcmp(rows[i].status, "done") || !strcmp(rows[i].status, "done-replaced"))
      secs += isfinite(rows[i].seconds) ? rows[i].seconds : 0;
  }
  if (lesions) /* the slides most likely to hold metastases first */
    qsort(lines, n, sizeof *lines, by_score);
  g_autoptr(GString) s = g_string_new("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                                      "<meta name=\"viewport\" content=\"width=device-width, "
                                      "initial-scale=1\"><title>Eosin batch " RUN_BEGIN);
  _eosin_html_append(s, batch_id);
  g_string_append_printf(s, RUN_END "</title><style>%s</style></head><body>\n<h1>Batch " RUN_BEGIN,
                         CSS);
  _eosin_html_append(s, batch_id);
  g_string_append(s, RUN_END);
  g_autoptr(GDateTime) now = g_date_time_new_now_local();
  g_autofree char *when = g_date_time_format(now, "%Y-%m-%d %H:%M");
  g_string_append_printf(s, "</h1>\n<p><b>%d</b> of %u slides finished, <b>%d</b> failed, %u not "
                            "yet; ",
                         done, total, failed, total - MIN(total, n));
  g_string_append(s, RUN_BEGIN);
  if (secs > 0)
    g_string_append_printf(s, "%.0f slides/hour per worker (%.1f s a slide analysed here); ",
                           3600.0 * (done) / secs, secs / MAX(done, 1));
  g_string_append_printf(s, "updated %s" RUN_END ". %s</p>\n", when,
                         lesions ? "Highest probability first; click a column to sort."
                                 : "Click a column to sort.");
  g_string_append(s, "<div class=\"scroll\"><table id=\"slides\"><thead><tr>"
                     "<th data-col=\"preview\">preview</th><th data-col=\"slide\">slide</th>"
                     "<th data-col=\"status\">status</th><th data-col=\"score\">");
  _eosin_html_append(s, label ? label : "score");
  g_string_append(s, "</th><th data-col=\"category\">category</th><th data-col=\"qc\">QC</th>"
                     "<th data-col=\"seconds\">s</th><th data-col=\"error\">error</th></tr></thead>"
                     "<tbody>\n");
  for (guint i = 0; i < n; i++) {
    const EosinBatchRow *r = lines[i].row;
    bool ok = strcmp(r->status, "failed") != 0;
    g_autofree char *href = g_uri_escape_string(r->name, NULL, FALSE);
    g_string_append_printf(s, "<tr data-name=\"%s\"%s><td>", href, ok ? "" : " class=\"failed\"");
    g_autofree char *pp = g_build_filename(outdir, r->name, "preview.png", NULL);
    if (ok && g_file_test(pp, G_FILE_TEST_IS_REGULAR))
      g_string_append_printf(s, "<a href=\"%s/report.html\"><img loading=\"lazy\" "
                                "src=\"%s/preview.png\" alt=\"preview\"></a>", href, href);
    g_string_append(s, "</td><td>");
    if (ok)
      g_string_append_printf(s, "<a href=\"%s/report.html\">", href);
    _eosin_html_append(s, r->name);
    g_string_append_printf(s, "%s</td><td>", ok ? "</a>" : "");
    _eosin_html_append(s, r->status);
    if (isfinite(lines[i].f.score))
      g_string_append_printf(s, "</td><td class=\"num\" data-v=\"%.6f\">%.3f</td><td>",
                             lines[i].f.score, lines[i].f.score);
    else
      g_string_append(s, "</td><td class=\"num\" data-v=\"\"></td><td>");
    _eosin_html_append(s, lines[i].f.category);
    g_string_append(s, "</td><td>");
    _eosin_html_append(s, r->qc);
    g_string_append_printf(s, "</td><td class=\"num\">" RUN_BEGIN "%.1f" RUN_END
                              "</td><td class=\"err\">",
                           isfinite(r->seconds) ? r->seconds : 0);
    _eosin_html_append(s, r->error);
    g_string_append(s, "</td></tr>\n");
  }
  g_string_append(s, "</tbody></table></div>\n<script>");
  g_string_append(s, SCRIPT);
  g_string_append(s, "</script>\n</body></html>\n");
  g_autofree char *path = g_build_filename(outdir, "index.html", NULL);
  return _eosin_write_atomic(path, s->str, s->len, err);
}
