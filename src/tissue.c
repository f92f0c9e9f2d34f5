/*
 * tissue.c — where the tissue is, on a thumbnail: HSV saturation (stained
 * tissue is coloured, glass and background are grey or white), an Otsu
 * threshold when there is glass to split from (else only the floor, so a
 * field that is all tissue stays whole), floored so an empty slide stays
 * empty, a morphological closing, then small objects removed and small
 * holes filled (sizes in µm², so the result does not depend on the scanner;
 * objects also relative to the image, so a crop's only object stays). The
 * mask decides which tiles run.
 */
#include "eosin-private.h"

#include <math.h>

/* Otsu's lower class is glass when its median saturation is at most
 * GLASS_MAX_SATURATION (or the floor, if higher), or at most
 * GLASS_SATURATION_RATIO of the upper class's: glass is unsaturated, and
 * beside the stained tissue even with a colour cast. Measured at 4 and
 * 16 µm/px thumbnails, lower / upper class medians (of 255): CAMELYON16
 * tumor_001 0/78, CMU-1 2/98, the Ki-67 crop 15/38, an HSIL LBC field
 * 25/79, an NL one on cyan-tinted glass 62/131 = 0.47; while the halves of a
 * field that is all tissue are alike (he-crop-ome.tif 71/97 = 0.73, 74/86 =
 * 0.86; pale stroma beside cellular tissue about 0.6). Brightness does not
 * tell them apart (that field's pale half is as bright as the tinted glass),
 * and dark unsaturated pixels (black padding outside a scan) are background
 * as much as glass is. */
#define GLASS_MAX_SATURATION 0.10
#define GLASS_SATURATION_RATIO 0.5
/* Objects are removed as debris only below this fraction of the image as
 * well as below min_object_um2: on a whole slide the µm² rule decides, on a
 * crop smaller than it assumes (he-crop-ome.tif: 250 µm wide, 62,500 µm²)
 * the crop's tissue stays. Holes keep the µm² rule alone: filling one keeps
 * tissue, it never loses any. */
#define MAX_SMALL_FRACTION 0.01

void eosin_tissue_clear(EosinTissueMask *m) {
  g_clear_pointer(&m->mask, g_free);
  g_clear_pointer(&m->integral, g_free);
}

/* Otsu's threshold of a 256-bin histogram: the bin maximising the
 * between-class variance; values above the returned bin are foreground. */
static int otsu(const uint64_t hist[256]) {
  uint64_t total = 0;
  double sum = 0;
  for (int i = 0; i < 256; i++)
    total += hist[i], sum += (double) i * hist[i];
  double sum_b = 0, best = -1;
  uint64_t w_b = 0;
  int thr = 0, thr_last = 0;
  for (int t = 0; t < 256; t++) {
    w_b += hist[t];
    if (!w_b)
      continue;
    uint64_t w_f = total - w_b;
    if (!w_f)
      break;
    sum_b += (double) t * hist[t];
    double m_b = sum_b / w_b, m_f = (sum - sum_b) / w_f;
    double between = (double) w_b * w_f * (m_b - m_f) * (m_b - m_f);
    if (between > best)
      best = between, thr = thr_last = t;
    else if (between == best)
      thr_last = t;
  }
  /* between two well-separated populations every bin of the gap splits
   * them alike: take the middle of the gap, not its edge */
  return (thr + thr_last) / 2;
}

/* The median of the histogram's bins @lo..@hi, or -1 when they are empty. */
static int median_of(const uint64_t hist[256], int lo, int hi) {
  uint64_t n = 0, seen = 0;
  for (int i = lo; i <= hi; i++)
    n += hist[i];
  for (int i = lo; i <= hi && n; i++) {
    seen += hist[i];
    if (2 * seen >= n)
      return i;
  }
  return -1;
}

/* Dilation or erosion of a 0/255 mask with a disc of @radius pixels. */
static VipsImage *morph_disc(VipsImage *in, int radius, VipsOperationMorphology op) {
  int size = 2 * radius + 1;
  g_autoptr(VipsImage) disc = vips_image_new_matrix(size, size);
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++) {
      int dx = x - radius, dy = y - radius;
      /* 255: this neighbour counts; 128: don't care */
      *VIPS_MATRIX(disc, x, y) = dx * dx + dy * dy <= radius * radius ? 255 : 128;
    }
  VipsImage *out = NULL;
  if (vips_morph(in, &out, disc, op, NULL))
    return NULL;
  return out;
}

/* Removes regions of value @value whose area is below @min_area pixels by
 * giving them @replace; with @keep_border, regions touching the image edge
 * stay (the background around the tissue is not a hole). */
static bool remove_small(uint8_t *mask, int w, int h, uint8_t value, double min_area,
                         uint8_t replace, bool keep_border, GError **err) {
  if (min_area <= 0)
    return true;
  g_autoptr(VipsImage) img = vips_image_new_from_memory(mask, (size_t) w * h, w, h, 1,
                                                        VIPS_FORMAT_UCHAR);
  VipsImage *lab = NULL;
  int n = 0;
  if (!img || vips_labelregions(img, &lab, "segments", &n, NULL)) {
    _eosin_set_vips_error(err, "tissue: labelling regions");
    return false;
  }
  g_autoptr(VipsImage) labp = lab;
  size_t len;
  g_autofree int *labels = vips_image_write_to_memory(lab, &len);
  if (!labels) {
    _eosin_set_vips_error(err, "tissue: labelling regions");
    return false;
  }
  g_autofree int64_t *area = g_new0(int64_t, n + 1);
  g_autofree bool *border = g_new0(bool, n + 1);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int l = labels[(size_t) y * w + x];
      area[l]++;
      if (x == 0 || y == 0 || x == w - 1 || y == h - 1)
        border[l] = true;
    }
  for (size_t p = 0; p < (size_t) w * h; p++) {
    int l = labels[p];
    if (mask[p] == value && area[l] < min_area && !(keep_border && border[l]))
      mask[p] = replace;
  }
  return true;
}

void _eosin_thumbnail_bounds(const EosinThumbnail *th, const EosinSlideInfo *info, int b[4]) {
  b[0] = CLAMP((int) floor(info->bounds_x / th->scale_x), 0, th->width);
  b[1] = CLAMP((int) floor(info->bounds_y / th->scale_y), 0, th->height);
  b[2] = MIN(th->width, (int) ceil((info->bounds_x + info->bounds_w) / th->scale_x));
  b[3] = MIN(th->height, (int) ceil((info->bounds_y + info->bounds_h) / th->scale_y));
}

bool eosin_tissue_detect(const EosinThumbnail *thumb, const EosinSlideInfo *info,
                         const EosinConfig *cfg, EosinTissueMask *out, GError **err) {
  int w = thumb->width, h = thumb->height;
  memset(out, 0, sizeof *out);
  out->width = w, out->height = h;
  out->scale_x = thumb->scale_x, out->scale_y = thumb->scale_y;
  /* the bounds in thumbnail pixels: outside them there is no scanned tissue */
  int b[4];
  _eosin_thumbnail_bounds(thumb, info, b);
  int bx0 = b[0], by0 = b[1], bx1 = b[2], by1 = b[3];

  g_autofree uint8_t *sat = g_malloc0((size_t) w * h);
  uint64_t hist[256] = {0};
  for (int y = by0; y < by1; y++)
    for (int x = bx0; x < bx1; x++) {
      const uint8_t *p = thumb->rgb + ((size_t) y * w + x) * 3;
      int mx = MAX(p[0], MAX(p[1], p[2])), mn = MIN(p[0], MIN(p[1], p[2]));
      int s = mx ? (255 * (mx - mn) + mx / 2) / mx : 0;
      sat[(size_t) y * w + x] = (uint8_t) s;
      hist[s]++;
    }
  /* Otsu splits two populations; with no glass in the image (a crop, a
   * field) it would split the tissue in two, so it is used only when what
   * it calls background looks like glass: otherwise all above the floor is
   * tissue. */
  int floor_s = (int) ceil(cfg->tissue_min_saturation * 255);
  int t_otsu = otsu(hist);
  int below = median_of(hist, 0, t_otsu), above = median_of(hist, t_otsu + 1, 255);
  int glass_max = MAX(floor_s, (int) lround(GLASS_MAX_SATURATION * 255));
  out->glass = above < 0 || below <= glass_max || below <= GLASS_SATURATION_RATIO * above;
  int thr = out->glass ? MAX(t_otsu, floor_s) : floor_s;
  out->threshold = thr / 255.0;

  g_autofree uint8_t *mask = g_malloc0((size_t) w * h);
  for (int y = by0; y < by1; y++)
    for (int x = bx0; x < bx1; x++)
      mask[(size_t) y * w + x] = sat[(size_t) y * w + x] > thr ? 255 : 0;

  double um_per_px = thumb->scale_x * info->mpp_x;
  int radius = (int) lround(cfg->tissue_closing_um / um_per_px);
  if (radius > 0) {
    g_autoptr(VipsImage) m = vips_image_new_from_memory(mask, (size_t) w * h, w, h, 1,
                                                        VIPS_FORMAT_UCHAR);
    g_autoptr(VipsImage) dil = m ? morph_disc(m, radius, VIPS_OPERATION_MORPHOLOGY_DILATE) : NULL;
    g_autoptr(VipsImage) clo = dil ? morph_disc(dil, radius, VIPS_OPERATION_MORPHOLOGY_ERODE)
                                   : NULL;
    size_t len;
    uint8_t *closed = clo ? vips_image_write_to_memory(clo, &len) : NULL;
    if (!closed) {
      _eosin_set_vips_error(err, "tissue: closing");
      return false;
    }
    g_free(mask);
    mask = closed;
  }
  double px_area = um_per_px * thumb->scale_y * info->mpp_y;
  double small = MAX_SMALL_FRACTION * (double) MAX(0, bx1 - bx0) * MAX(0, by1 - by0);
  if (!remove_small(mask, w, h, 255, MIN(cfg->tissue_min_object_um2 / px_area, small), 0, false,
                    err) ||
      !remove_small(mask, w, h, 0, cfg->tissue_max_hole_um2 / px_area, 255, true, err))
    return false;

  out->integral = g_new0(int64_t, (size_t) (w + 1) * (h + 1));
  int64_t count = 0;
  for (int y = 0; y < h; y++) {
    int64_t row = 0;
    for (int x = 0; x < w; x++) {
      bool in = x >= bx0 && x < bx1 && y >= by0 && y < by1;
      uint8_t v = in && mask[(size_t) y * w + x] ? 1 : 0;
      mask[(size_t) y * w + x] = v;
      row += v;
      out->integral[(size_t) (y + 1) * (w + 1) + x + 1] =
          out->integral[(size_t) y * (w + 1) + x + 1] + row;
    }
    count += row;
  }
  int64_t inside = (int64_t) (bx1 - bx0) * (by1 - by0);
  out->fraction = inside > 0 ? (double) count / inside : 0;
  out->mask = g_steal_pointer(&mask);
  return true;
}

double eosin_tissue_fraction(const EosinTissueMask *m, double x, double y, double w, double h) {
  double fx0 = x / m->scale_x, fy0 = y / m->scale_y;
  double fx1 = (x + w) / m->scale_x, fy1 = (y + h) / m->scale_y;
  int64_t x0 = (int64_t) floor(fx0), y0 = (int64_t) floor(fy0);
  int64_t x1 = (int64_t) ceil(fx1), y1 = (int64_t) ceil(fy1);
  int64_t area = (x1 - x0) * (y1 - y0);
  if (area <= 0)
    return 0;
  /* the part outside the thumbnail counts as background */
  int64_t cx0 = CLAMP(x0, 0, m->width), cx1 = CLAMP(x1, 0, m->width);
  int64_t cy0 = CLAMP(y0, 0, m->height), cy1 = CLAMP(y1, 0, m->height);
  const int64_t *I = m->integral;
  size_t W = (size_t) m->width + 1;
  int64_t s = I[cy1 * W + cx1] - I[cy0 * W + cx1] - I[cy1 * W + cx0] + I[cy0 * W + cx0];
  return (double) s / area;
}

