/*
 * scores.c — the numbers a pathologist reports from counted IHC cells:
 * positive percentage (the Ki-67 index), H-score, Allred score, the HER2
 * category of ASCO/CAP 2018, and the Ki-67 hot spot. Pure functions of
 * the cells, each rule written out where it is applied (and in README).
 */
#include "tasks/ihc/ihc-private.h"

#include <math.h>

int _eosin_intensity_class(const EosinIntensityRule *r, double v) {
  if (!(v >= r->thresholds[0])) /* NaN is negative, as in QuPath */
    return 0;
  if (r->single_threshold)
    return 1;
  return v >= r->thresholds[2] ? 3 : v >= r->thresholds[1] ? 2 : 1;
}

double _eosin_positive_percent(const EosinCellCounts *c) {
  if (!c->total)
    return NAN;
  return 100.0 * (c->by_class[1] + c->by_class[2] + c->by_class[3]) / c->total;
}

double _eosin_h_score(const EosinCellCounts *c) {
  if (!c->total)
    return NAN;
  return 100.0 * (c->by_class[1] + 2.0 * c->by_class[2] + 3.0 * c->by_class[3]) / c->total;
}

EosinAllred _eosin_allred(const EosinCellCounts *c) {
  EosinAllred a = {0, 0, 0};
  int64_t pos = c->by_class[1] + c->by_class[2] + c->by_class[3];
  if (!c->total || !pos)
    return a;
  double pct = 100.0 * pos / c->total;
  /* proportion score: 1 < 1 %, 2 1-10 %, 3 > 10-33 %, 4 > 33-66 %, 5 > 66 % */
  a.proportion = pct < 1 ? 1 : pct <= 10 ? 2 : pct <= 100.0 / 3 ? 3 : pct <= 200.0 / 3 ? 4 : 5;
  /* intensity score: the positive cells' mean class, rounded half up */
  double mean = (c->by_class[1] + 2.0 * c->by_class[2] + 3.0 * c->by_class[3]) / pos;
  a.intensity = CLAMP((int) floor(mean + 0.5), 1, 3);
  a.total = a.proportion + a.intensity;
  return a;
}

EosinHer2 _eosin_her2(const EosinCell *cells, size_t n, const EosinIntensityRule *membrane,
                      double complete_fraction) {
  EosinHer2 h = {.category = -1, .cells = (int64_t) n};
  if (!n)
    return h;
  int64_t complete_intense = 0, complete = 0, any = 0;
  EosinIntensityRule r = *membrane;
  r.single_threshold = false;
  for (size_t i = 0; i < n; i++) {
    int cls = _eosin_intensity_class(&r, cells[i].dab[EOSIN_COMP_MEMBRANE]);
    bool full = cells[i].membrane_complete >= complete_fraction;
    if (cls >= 1)
      any++;
    if (cls >= 1 && full)
      complete++;
    if (cls == 3 && full)
      complete_intense++;
  }
  h.complete_intense_percent = 100.0 * complete_intense / n;
  h.complete_percent = 100.0 * complete / n;
  h.any_membrane_percent = 100.0 * any / n;
  /* ASCO/CAP 2018: > 10 % of the (tumour) cells decides each category */
  h.category = h.complete_intense_percent > 10 ? 3
               : h.complete_percent > 10       ? 2
               : h.any_membrane_percent > 10   ? 1
                                               : 0;
  return h;
}

EosinHotspot _eosin_hotspot(const EosinCell *cells, size_t n, double mpp_x, double mpp_y,
                            double x0, double y0, double w, double h, double area_mm2,
                            double step_um, int64_t min_cells) {
  EosinHotspot best = {0};
  if (!n || !(w > 0) || !(h > 0) || !(mpp_x > 0) || !(mpp_y > 0))
    return best;
  /* counts on a grid of step_um bins; windows are whole numbers of bins */
  double side_um = sqrt(area_mm2) * 1000;
  double bx = step_um / mpp_x, by = step_um / mpp_y; /* level-0 px per bin */
  int gw = MAX(1, (int) ceil(w / bx)), gh = MAX(1, (int) ceil(h / by));
  int kw = MAX(1, (int) floor(side_um / step_um + 0.5)), kh = kw;
  bool clipped = false;
  if (kw > gw || kh > gh) /* the window does not fit: the whole box */
    kw = MIN(kw, gw), kh = MIN(kh, gh), clipped = true;
  size_t gn = (size_t) (gw + 1) * (gh + 1);
  g_autofree int64_t *all = g_new0(int64_t, gn), *pos = g_new0(int64_t, gn);
  for (size_t i = 0; i < n; i++) {
    int gx = (int) floor((cells[i].x - x0) / bx), gy = (int) floor((cells[i].y - y0) / by);
    if (gx < 0 || gy < 0 || gx >= gw || gy >= gh)
      continue;
    size_t k = (size_t) (gy + 1) * (gw + 1) + gx + 1;
    all[k]++;
    pos[k] += cells[i].intensity > 0;
  }
  /* summed-area tables */
  for (int y = 1; y <= gh; y++)
    for (int x = 1; x <= gw; x++) {
      size_t k = (size_t) y * (gw + 1) + x;
      all[k] += all[k - 1] + all[k - gw - 1] - all[k - gw - 2];
      pos[k] += pos[k - 1] + pos[k - gw - 1] - pos[k - gw - 2];
    }
#define BOX(t, x, y)                                                                   \
  (t[(size_t) ((y) + kh) * (gw + 1) + (x) + kw] - t[(size_t) (y) * (gw + 1) + (x) + kw] - \
   t[(size_t) ((y) + kh) * (gw + 1) + (x)] + t[(size_t) (y) * (gw + 1) + (x)])
  for (int y = 0; y + kh <= gh; y++)
    for (int x = 0; x + kw <= gw; x++) {
      int64_t a = BOX(all, x, y), p = BOX(pos, x, y);
      if (!a || a < min_cells)
        continue;
      double idx = 100.0 * p / a;
      /* the highest index; ties go to the window with more cells */
      if (!best.found || idx > best.index || (idx == best.index && a > best.cells)) {
        best.found = true;
        best.index = idx;
        best.cells = a, best.positive = p;
        best.x = x0 + x * bx, best.y = y0 + y * by;
        best.w = MIN(kw * bx, w), best.h = MIN(kh * by, h);
      }
    }
#undef BOX
  best.clipped = clipped;
  return best;
}
