/*
 * triage.c — slide-level Bethesda triage for the cytology task,
 * from the tile model's class probabilities and the cell model's abnormal
 * scores. A Pap slide is reported by its most severe lesion, however small
 * (The Bethesda System 2014); top_tile_fraction can narrow the tile
 * evidence to the most suspicious part, but with a tile model that calls
 * some normal fields abnormal the default takes every tile (README).
 */
#include "tasks/cytology/cytology-private.h"

#include <math.h>

int _eosin_cyto_cell_cmp(const EosinCytoCell *a, const EosinCytoCell *b) {
  if (a->suspicion != b->suspicion)
    return a->suspicion > b->suspicion ? -1 : 1;
  if (a->p_abnormal != b->p_abnormal)
    return a->p_abnormal > b->p_abnormal ? -1 : 1;
  if (a->tile != b->tile)
    return a->tile < b->tile ? -1 : 1;
  if (a->y != b->y)
    return a->y < b->y ? -1 : 1;
  if (a->x != b->x)
    return a->x < b->x ? -1 : 1;
  return 0;
}

typedef struct {
  float abnormal;
  uint32_t tile;
} Ranked;

static int ranked_cmp(const void *pa, const void *pb) {
  const Ranked *a = pa, *b = pb;
  if (a->abnormal != b->abnormal)
    return a->abnormal > b->abnormal ? -1 : 1;
  return a->tile < b->tile ? -1 : a->tile > b->tile;
}

double _eosin_binomial_tail(int k, int n, double p) {
  if (k <= 0)
    return 1;
  if (k > n || p <= 0)
    return 0;
  if (p >= 1)
    return 1;
  /* P(X >= k) summed in log space from k up: each term from the last */
  double lt = lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0) + k * log(p) +
              (n - k) * log1p(-p);
  double sum = 0, term = exp(lt);
  for (int i = k; i <= n && term > 0; i++) {
    sum += term;
    term *= (double) (n - i) / (i + 1) * p / (1 - p);
  }
  return MIN(sum, 1.0);
}

void _eosin_cyto_triage(const EosinTriageRule *r, const float *tile_probs, size_t stride,
                        size_t n_tiles, const EosinCytoCell *cells, size_t n_cells,
                        EosinTriage *out) {
  memset(out, 0, sizeof *out);
  out->cell_abnormal = NAN;
  out->fields_expected = out->chance = NAN;
  if (!n_tiles)
    return;
  /* 1. tile evidence: the mean P(abnormal) = 1 - P(NL) over the most
   *    abnormal top_tile_fraction of the tiles (at least min_top_tiles).
   *    The default is every tile: the tile model calls some normal fields
   *    abnormal (1.6 % in its cross-validation), so on a slide of hundreds
   *    of tiles any "most abnormal few" would look abnormal */
  g_autofree Ranked *rk = g_new(Ranked, n_tiles);
  for (size_t t = 0; t < n_tiles; t++)
    rk[t] = (Ranked){1.0f - tile_probs[t * stride], (uint32_t) t};
  qsort(rk, n_tiles, sizeof *rk, ranked_cmp);
  size_t k = (size_t) ceil(r->top_tile_fraction * n_tiles - 1e-9);
  k = MIN(MAX(k, (size_t) MAX(r->min_top_tiles, 1)), n_tiles);
  for (size_t i = 0; i < k; i++)
    out->tile_abnormal += rk[i].abnormal / k;
  out->top_tiles = (int) k;
  /* 2. the grade: the class probabilities averaged over the tiles the
   *    model calls abnormal (the lesion), or over the top tiles if none */
  size_t nl = 0;
  while (nl < n_tiles && rk[nl].abnormal >= 0.5f)
    nl++;
  out->lesion_tiles = (int) nl;
  size_t ng = nl ? nl : k;
  for (size_t i = 0; i < ng; i++)
    for (int c = 0; c < EOSIN_CYTO_FIELD_CLASSES; c++)
      out->grade[c] += tile_probs[rk[i].tile * stride + c] / ng;
  /* 3. cell evidence: the mean abnormal probability of all cells; and
   *    abnormal = (1 - cell_weight) tile evidence + cell_weight cell
   *    evidence (tile evidence alone when no cell was found) */
  if (n_cells) {
    double s = 0;
    for (size_t i = 0; i < n_cells; i++)
      s += cells[i].p_abnormal;
    out->cell_abnormal = s / n_cells;
  }
  double w = n_cells ? r->cell_weight : 0;
  out->abnormal = (1 - w) * out->tile_abnormal + (n_cells ? w * out->cell_abnormal : 0);
  if (r->count) {
    /* evidence that scales with the lesion, not the slide: a lesion of a
     * few fields is as many abnormal fields whatever the slide's size,
     * while the mean over every field dilutes it to nothing. abnormal =
     * 1 - the chance that a normal slide of this size shows that many */
    out->fields_expected = r->field_fp_rate * (double) n_tiles;
    out->chance = _eosin_binomial_tail((int) nl, (int) n_tiles, r->field_fp_rate);
    out->abnormal = 1 - out->chance;
  }
  /* 4. NILM = 1 - abnormal; the abnormal share split between LSIL, HSIL
   *    and SCC as the grade splits it; the category is NILM below the
   *    threshold, else the most probable lesion */
  double lesion = out->grade[1] + out->grade[2] + out->grade[3];
  out->prob[0] = 1 - out->abnormal;
  for (int c = 1; c < EOSIN_CYTO_FIELD_CLASSES; c++)
    out->prob[c] = lesion > 0 ? out->abnormal * out->grade[c] / lesion : out->abnormal / 3;
  out->category = 0;
  if (r->count ? out->chance < r->alpha : out->abnormal >= r->threshold) {
    out->category = 1;
    for (int c = 2; c < EOSIN_CYTO_FIELD_CLASSES; c++)
      if (out->prob[c] > out->prob[out->category])
        out->category = c;
  }
  out->assessable = true;
}
