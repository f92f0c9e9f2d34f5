/*
 * test-report.c — what a pathologist looks at (issue 21): the legend band
 * decor.c draws under preview.png (the colour bar's pixels are the colour
 * map's, the scale bar is its µm long at the image's scale, outlines fall
 * on the lesions' level-0 edges), the heatmap rule (nothing drawn below the
 * floor, opacity growing with the value) shared by overlay.tif and the
 * preview, and tissue.png as the thumbnail with the mask outlined.
 */
#include "test-util.h"
#include "report/report.h"

#include <math.h>
#include <vips/vips.h>

/* The RGB pixels of a PNG (caller frees), its size in *@w, *@h. */
static uint8_t *png_rgb(const char *path, int *w, int *h) {
  cr_assert(vips_init("eosin-tests") == 0);
  g_autoptr(VipsImage) img = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
  cr_assert(img, "%s: %s", path, vips_error_buffer());
  g_autoptr(VipsImage) rgb = NULL;
  cr_assert(vips_extract_band(img, &rgb, 0, "n", 3, NULL) == 0);
  size_t len;
  uint8_t *px = vips_image_write_to_memory(rgb, &len);
  *w = img->Xsize, *h = img->Ysize;
  cr_assert_eq(len, (size_t) *w * *h * 3);
  return px;
}

static const uint8_t *at(const uint8_t *px, int w, int x, int y) {
  return px + 3 * ((size_t) y * w + x);
}

Test(report, legend_colour_bar_scale_bar_and_outlines_are_where_they_say) {
  const int W = 600, H = 400;
  g_autofree uint8_t *img = g_malloc((size_t) W * H * 3);
  memset(img, 128, (size_t) W * H * 3);
  EosinColormap cm;
  cr_assert(_eosin_colormap_get("viridis", &cm, NULL));
  /* a square lesion from level-0 (200, 100) to (400, 300), at 2 level-0 px
   * per image px: image (100, 50) .. (200, 150) */
  EosinOutline *o = g_new0(EosinOutline, 1);
  o->xy = g_array_new(FALSE, FALSE, sizeof(double));
  const double sq[] = {200, 100, 400, 100, 400, 300, 200, 300};
  g_array_append_vals(o->xy, sq, 8);
  o->number = 1;
  g_autoptr(GPtrArray) outlines = g_ptr_array_new_with_free_func(_eosin_outline_free);
  g_ptr_array_add(outlines, o);
  /* 0.5 µm per level-0 px x 2 = 1 µm per image px */
  EosinDecor d = {.title = "slide-x", .channel = "tumor", .units = "probability", .cm = &cm,
                  .vmin = 0, .vmax = 1, .floor = NAN, .um_per_px = 1.0, .scale_x = 2,
                  .scale_y = 2, .outlines = outlines};
  g_autofree char *dir = tmp_dir();
  g_autofree char *path = g_build_filename(dir, "decor.png", NULL);
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_decor_png(img, W, H, &d, path, &err), "%s", err ? err->message : "");
  int w, h;
  g_autofree uint8_t *px = png_rgb(path, &w, &h);
  EosinDecorLayout L;
  _eosin_decor_layout(W, H, 1.0, &L);
  cr_expect_eq(w, W);
  cr_expect_eq(h, L.height, "the band is below the image");
  cr_expect_gt(L.height, H);
  /* the colour bar: pixel i is the colour map at i / (width - 1) */
  for (int i = 0; i < L.bar_w; i += 17) {
    const uint8_t *p = at(px, w, L.bar_x + i, L.bar_y + L.bar_h / 2);
    const uint8_t *c = cm.lut[(int) lround(255.0 * i / (L.bar_w - 1))];
    for (int k = 0; k < 3; k++)
      cr_expect_leq(abs(p[k] - c[k]), 1, "bar pixel %d channel %d: %d, map %d", i, k, p[k], c[k]);
  }
  /* the scale bar: 1, 2 or 5 x 10^k µm, at most a quarter of 600 µm, so
   * 100 µm = 100 px at 1 µm/px, dark from its start to its end */
  cr_expect_float_eq(L.scale_um, 100, 1e-9);
  cr_expect_eq(L.scale_x1 - L.scale_x0, 100);
  for (int x = L.scale_x0 + 1; x < L.scale_x1 - 1; x += 7)
    cr_expect_lt(at(px, w, x, L.scale_y)[0], 60, "scale bar at x %d", x);
  cr_expect_gt(at(px, w, L.scale_x1 + 3, L.scale_y)[0], 200, "white past its end");
  /* the outline: cyan on the square's edges, the inside untouched */
  const uint8_t *edge = at(px, w, 150, 50), *inside = at(px, w, 150, 100);
  cr_expect(edge[2] > 200 && edge[1] > 180 && edge[0] < 60, "cyan on the top edge: %d %d %d",
            edge[0], edge[1], edge[2]);
  const uint8_t *left = at(px, w, 100, 120);
  cr_expect(left[2] > 200 && left[0] < 60, "cyan on the left edge");
  cr_expect(inside[0] == 128 && inside[1] == 128 && inside[2] == 128, "inside untouched");
  const uint8_t *far = at(px, w, 450, 300);
  cr_expect(far[0] == 128, "the image elsewhere untouched");
}

Test(report, a_larger_image_gets_a_longer_round_scale_bar) {
  EosinDecorLayout L;
  /* 1536 px at 0.97 µm/px: a quarter is 372 µm, the bar 200 µm = 206 px */
  _eosin_decor_layout(1536, 1536, 0.97, &L);
  cr_expect_float_eq(L.scale_um, 200, 1e-9);
  cr_expect_eq(L.scale_x1 - L.scale_x0, 206);
  /* 1600 px at 25 µm/px (a whole slide): 10 mm */
  _eosin_decor_layout(1600, 900, 25, &L);
  cr_expect_float_eq(L.scale_um, 10000, 1e-9);
  cr_expect_eq(L.scale_x1 - L.scale_x0, 400);
}

Test(report, the_heatmap_rule_hides_low_cells_and_ramps_opacity) {
  /* off: one opacity for every value */
  cr_expect_eq(_eosin_overlay_opacity(0.1, 0, 1, 0.5, NAN, false), 128);
  cr_expect_eq(_eosin_overlay_opacity(0.9, 0, 1, 0.5, NAN, false), 128);
  cr_expect_eq(_eosin_overlay_opacity(NAN, 0, 1, 0.5, NAN, false), 0, "no tissue: clear");
  /* floor 0.5: below it nothing, at it a fifth of alpha, at max alpha */
  cr_expect_eq(_eosin_overlay_opacity(0.49, 0, 1, 0.8, 0.5, true), 0);
  cr_expect_eq(_eosin_overlay_opacity(0.5, 0, 1, 0.8, 0.5, true), (int) lround(255 * 0.8 * 0.2));
  cr_expect_eq(_eosin_overlay_opacity(1.0, 0, 1, 0.8, 0.5, true), (int) lround(255 * 0.8));
  uint8_t a = _eosin_overlay_opacity(0.6, 0, 1, 0.8, 0.5, true);
  uint8_t b = _eosin_overlay_opacity(0.9, 0, 1, 0.8, 0.5, true);
  cr_expect_lt(a, b, "opacity grows with the value");
}

Test(report, metastasis_preview_and_overlay_draw_only_above_the_floor, .timeout = 300) {
  /* configs/metastasis.ini's rule through a whole run: the overlay's
   * alpha is 0 wherever the tumour probability is below 0.5 */
  g_autofree char *cfg = cnn_lesions_config("floor-test");
  g_autofree char *text = slurp(cfg);
  g_autofree char *dir = tmp_dir();
  g_autofree char *c2 = g_build_filename(dir, "floor.ini", NULL);
  g_autofree char *t2 = g_strdup(text);
  char *ov = strstr(t2, "[overlay]\nchannel = red\n");
  cr_assert(ov);
  g_autofree char *t3 = g_strdup_printf("%.*s[overlay]\nchannel = red\nfloor = 0.5\nopacity = ramp\n"
                                        "colormap = inferno\nalpha = 0.8\n%s",
                                        (int) (ov - t2), t2, ov + strlen("[overlay]\nchannel = red\n"));
  cr_assert(g_file_set_contents(c2, t3, -1, NULL));
  g_autofree char *slide = td("tissue-a.svs"), *out = tmp_dir();
  const char *argv[] = {"run", "--task", c2, slide, "-o", out, NULL};
  g_autofree char *err = NULL;
  cr_assert_eq(run_eosin(argv, NULL, &err), 0, "%s", err);
  /* tiles.csv has each tile's red probability; overlay.tif's alpha at a
   * tile's centre must be 0 below 0.5 and > 0 at or above */
  g_autofree char *csv = g_build_filename(out, "tissue-a", "tiles.csv", NULL);
  g_autoptr(GPtrArray) rows = _eosin_csv_read(csv, "tiles", EOSIN_CSV_PLAIN, NULL);
  cr_assert(rows && rows->len > 10);
  EosinCsvRow *head = rows->pdata[0];
  int red = -1;
  for (int i = 0; i < head->n; i++)
    if (!strcmp(head->fields[i], "red"))
      red = i;
  cr_assert_geq(red, 0);
  g_autofree char *tif = g_build_filename(out, "tissue-a", "overlay.tif", NULL);
  g_autoptr(VipsImage) o = vips_image_new_from_file(tif, NULL);
  cr_assert(o && o->Bands == 4, "%s", vips_error_buffer());
  int below = 0, above = 0;
  for (guint r = 1; r < rows->len; r += 5) {
    EosinCsvRow *row = rows->pdata[r];
    double x = g_ascii_strtod(row->fields[0], NULL) + g_ascii_strtod(row->fields[2], NULL) / 2;
    double y = g_ascii_strtod(row->fields[1], NULL) + g_ascii_strtod(row->fields[3], NULL) / 2;
    double p = g_ascii_strtod(row->fields[red], NULL);
    double *v = NULL;
    int n = 0;
    cr_assert(vips_getpoint(o, &v, &n, (int) x, (int) y, NULL) == 0 && n == 4);
    if (p < 0.5) {
      cr_expect_eq(v[3], 0, "tile at (%g, %g), p %.3f < floor: alpha %g", x, y, p, v[3]);
      below++;
    } else {
      cr_expect_gt(v[3], 0, "tile at (%g, %g), p %.3f: alpha %g", x, y, p, v[3]);
      above++;
    }
    g_free(v);
  }
  cr_expect_gt(below + above, 5, "tiles sampled: %d below, %d above", below, above);
  /* tissue.png: the thumbnail (colour) with the mask's edge in green */
  g_autofree char *tp = g_build_filename(out, "tissue-a", "tissue.png", NULL);
  int w, h;
  g_autofree uint8_t *px = png_rgb(tp, &w, &h);
  int green = 0;
  for (int i = 0; i < w * h; i++)
    green += px[3 * i] == 0 && px[3 * i + 1] == 200 && px[3 * i + 2] == 83;
  cr_expect_gt(green, 100, "the tissue's edge is drawn: %d green pixels", green);
  cr_expect_gt(w, 500, "tissue.png is the preview's size, not the bare mask's: %d px", w);
}

/* ---------------------------------------------------------------- in a browser */

/* Chromium (Debian's, installed by scripts/setup/install) run headless on
 * @url: the DOM after the page's script and load (*@dom), its console
 * (*@console: the INFO:CONSOLE lines), a screenshot at @png when given.
 * False when there is no Chromium (the caller skips, saying so). */
static bool chromium(const char *url, const char *png, char **dom, char **console) {
  g_autofree char *bin = g_find_program_in_path("chromium");
  if (!bin)
    return false;
  g_autofree char *shot = png ? g_strdup_printf("--screenshot=%s", png) : NULL;
  const char *argv[] = {bin, "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--virtual-time-budget=5000",
                        "--enable-logging=stderr", "--v=0", "--window-size=1200,1600",
                        shot ? shot : "--dump-dom", url, NULL};
  g_autofree char *out = NULL, *err = NULL;
  int status = -1;
  cr_assert(g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err,
                         &status, NULL));
  cr_assert(g_spawn_check_wait_status(status, NULL), "chromium %s: %s", url, err);
  g_autoptr(GString) c = g_string_new(NULL);
  g_auto(GStrv) lines = g_strsplit(err ? err : "", "\n", -1);
  for (int i = 0; lines[i]; i++)
    if (strstr(lines[i], ":CONSOLE"))
      g_string_append_printf(c, "%s\n", lines[i]);
  if (dom)
    *dom = g_steal_pointer(&out);
  if (console)
    *console = g_string_free(g_steal_pointer(&c), FALSE);
  return true;
}

/* The names of the rows of index.html's table, in the DOM's order. */
static GPtrArray *row_names(const char *dom) {
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  for (const char *p = strstr(dom, "<tr data-name=\""); p; p = strstr(p + 1, "<tr data-name=\"")) {
    const char *a = p + strlen("<tr data-name=\""), *z = strchr(a, '"');
    g_ptr_array_add(names, g_strndup(a, z - a));
  }
  return names;
}

Test(report, the_report_and_the_dashboard_work_in_a_browser, .timeout = 300) {
  if (!g_find_program_in_path("chromium"))
    cr_skip_test("chromium is not installed (scripts/setup/install installs Debian's): the "
                 "browser check of report.html and index.html is skipped");
  g_autofree char *dir = tmp_dir(), *out = tmp_dir();
  const char *names[] = {"tissue-a.svs", "tissue-b.svs", "tissue-c.svs", "blank.svs"};
  for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *s = td(names[i]), *d = g_build_filename(dir, names[i], NULL);
    cr_assert_eq(symlink(s, d), 0);
  }
  g_autofree char *cfg = cnn_lesions_config("browser-test");
  const char *argv[] = {"batch", "--task", cfg, dir, "-o", out, NULL};
  g_autofree char *err = NULL;
  cr_assert_eq(run_eosin(argv, NULL, &err), 3, "blank.svs fails, the others finish: %s", err);
  /* index.html: one row per slide, highest probability first, every image
   * loads, no console message */
  g_autofree char *index = g_build_filename(out, "index.html", NULL);
  g_autofree char *url = g_strdup_printf("file://%s", index);
  g_autofree char *dom = NULL, *console = NULL;
  cr_assert(chromium(url, NULL, &dom, &console));
  cr_expect_str_empty(console, "no console messages: %s", console);
  g_autoptr(GPtrArray) rows = row_names(dom);
  cr_expect_eq(rows->len, 4, "one row per slide");
  cr_expect(strstr(dom, "data-images=\"3/3\""), "every preview loads (3 finished slides): %.300s",
            strstr(dom, "<body") ? strstr(dom, "<body") : dom);
  double last = INFINITY;
  for (const char *p = strstr(dom, "data-v=\""); p; p = strstr(p + 1, "data-v=\"")) {
    if (p[8] == '"')
      continue; /* the failed slide: no score, last */
    double v = g_ascii_strtod(p + 8, NULL);
    cr_expect_leq(v, last, "highest probability first");
    last = v;
  }
  cr_expect(strstr(rows->pdata[3], "blank"), "the failed slide last: %s",
            (char *) rows->pdata[3]);
  cr_expect(strstr(dom, "no tissue found"), "the failed slide's error is shown");
  /* sorting by a column works (the page sorts on load by #sort=...) */
  g_autofree char *url2 = g_strdup_printf("file://%s#sort=-slide", index);
  g_autofree char *dom2 = NULL, *console2 = NULL;
  cr_assert(chromium(url2, NULL, &dom2, &console2));
  cr_expect_str_empty(console2);
  g_autoptr(GPtrArray) sorted = row_names(dom2);
  cr_assert_eq(sorted->len, 4);
  const char *want[] = {"tissue-c", "tissue-b", "tissue-a", "blank"};
  for (int i = 0; i < 4; i++)
    cr_expect_str_eq(sorted->pdata[i], want[i], "sorted by name, descending: row %d", i);
  cr_expect(strstr(dom2, "data-sorted=\"slide desc\""));
  /* report.html: loads with no console message, names its images, which exist */
  g_autofree char *rep = g_build_filename(out, "tissue-a", "report.html", NULL);
  g_autofree char *rurl = g_strdup_printf("file://%s", rep);
  g_autofree char *rdom = NULL, *rconsole = NULL;
  cr_assert(chromium(rurl, NULL, &rdom, &rconsole));
  cr_expect_str_empty(rconsole);
  const char *must[] = {"tissue-a", "Quality control", "preview.png", "tissue.png",
                        "slide probability", "Provenance", "µm/px"};
  for (size_t i = 0; i < G_N_ELEMENTS(must); i++)
    cr_expect(strstr(rdom, must[i]), "report.html shows '%s'", must[i]);
  for (const char *p = strstr(rdom, "<img src=\""); p; p = strstr(p + 1, "<img src=\"")) {
    const char *a = p + 10, *z = strchr(a, '"');
    g_autofree char *file = g_strndup(a, z - a);
    g_autofree char *fp = g_build_filename(out, "tissue-a", file, NULL);
    cr_expect(g_file_test(fp, G_FILE_TEST_IS_REGULAR), "report.html's image %s exists", file);
  }
  /* screenshots, for looking at (kept beside the outputs when EOSIN_KEEP_SHOTS names a folder) */
  const char *keep = g_getenv("EOSIN_KEEP_SHOTS");
  if (keep) {
    g_autofree char *s1 = g_build_filename(keep, "index.png", NULL);
    g_autofree char *s2 = g_build_filename(keep, "report.png", NULL);
    cr_expect(chromium(url, s1, NULL, NULL) && chromium(rurl, s2, NULL, NULL));
  }
}
