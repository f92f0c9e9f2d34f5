/*
 * stain-estimate.c — haematoxylin and DAB vectors estimated from a slide's
 * own pixels (Macenko et al., "A method for normalizing histology slides
 * for quantitative analysis", ISBI 2009), for stains that differ from the
 * defaults (another antibody lot, scanner or protocol). Transparent pixels
 * and background are left out by an optical density floor in every channel.
 */
#include "cells/cells-private.h"

#include <math.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Eigenvectors of a symmetric 3 x 3 matrix by Jacobi rotations; columns of
 * @vec, eigenvalues in @val (unsorted). */
static void jacobi3(double a[3][3], double val[3], double vec[3][3]) {
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      vec[i][j] = i == j;
  for (int sweep = 0; sweep < 50; sweep++) {
    double off = fabs(a[0][1]) + fabs(a[0][2]) + fabs(a[1][2]);
    if (off < 1e-15)
      break;
    for (int p = 0; p < 2; p++)
      for (int q = p + 1; q < 3; q++) {
        if (fabs(a[p][q]) < 1e-18)
          continue;
        double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
        double cs = 1 / sqrt(t * t + 1), sn = t * cs;
        for (int k = 0; k < 3; k++) { /* A = J^T A J */
          double akp = a[k][p], akq = a[k][q];
          a[k][p] = cs * akp - sn * akq;
          a[k][q] = sn * akp + cs * akq;
        }
        for (int k = 0; k < 3; k++) {
          double apk = a[p][k], aqk = a[q][k];
          a[p][k] = cs * apk - sn * aqk;
          a[q][k] = sn * apk + cs * aqk;
        }
        for (int k = 0; k < 3; k++) {
          double vkp = vec[k][p], vkq = vec[k][q];
          vec[k][p] = cs * vkp - sn * vkq;
          vec[k][q] = sn * vkp + cs * vkq;
        }
      }
  }
  for (int i = 0; i < 3; i++)
    val[i] = a[i][i];
}

bool _eosin_stain_estimate(const uint8_t *rgb, size_t n, double min_od, double percentile,
                           double m[3][3], GError **err) {
  double od_lut[256];
  _eosin_stain_od_table(od_lut);
  /* mean and covariance of the qualifying optical densities */
  double mean[3] = {0}, cov[3][3] = {{0}};
  size_t k = 0;
  for (size_t p = 0; p < n; p++) {
    double o[3] = {od_lut[rgb[3 * p]], od_lut[rgb[3 * p + 1]], od_lut[rgb[3 * p + 2]]};
    if (o[0] < min_od || o[1] < min_od || o[2] < min_od)
      continue;
    k++;
    for (int i = 0; i < 3; i++)
      mean[i] += o[i];
  }
  if (k < 1000) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "only %zu stained pixels (optical density >= %g in every channel)", k, min_od);
    return false;
  }
  for (int i = 0; i < 3; i++)
    mean[i] /= k;
  g_autofree double *proj = g_new(double, 2 * k);
  for (size_t p = 0; p < n; p++) {
    double o[3] = {od_lut[rgb[3 * p]], od_lut[rgb[3 * p + 1]], od_lut[rgb[3 * p + 2]]};
    if (o[0] < min_od || o[1] < min_od || o[2] < min_od)
      continue;
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++)
        cov[i][j] += (o[i] - mean[i]) * (o[j] - mean[j]);
  }
  double val[3], vec[3][3];
  jacobi3(cov, val, vec);
  /* the plane of the two largest eigenvectors */
  int order[3] = {0, 1, 2};
  for (int a = 0; a < 3; a++)
    for (int b = a + 1; b < 3; b++)
      if (val[order[b]] > val[order[a]]) {
        int t = order[a];
        order[a] = order[b], order[b] = t;
      }
  double e1[3], e2[3];
  for (int i = 0; i < 3; i++)
    e1[i] = vec[i][order[0]], e2[i] = vec[i][order[1]];
  /* both pointing into positive optical density */
  if (e1[0] + e1[1] + e1[2] < 0)
    for (int i = 0; i < 3; i++)
      e1[i] = -e1[i];
  if (e2[0] + e2[1] + e2[2] < 0)
    for (int i = 0; i < 3; i++)
      e2[i] = -e2[i];
  size_t q = 0;
  for (size_t p = 0; p < n; p++) {
    double o[3] = {od_lut[rgb[3 * p]], od_lut[rgb[3 * p + 1]], od_lut[rgb[3 * p + 2]]};
    if (o[0] < min_od || o[1] < min_od || o[2] < min_od)
      continue;
    double a = o[0] * e1[0] + o[1] * e1[1] + o[2] * e1[2];
    double b = o[0] * e2[0] + o[1] * e2[1] + o[2] * e2[2];
    proj[q++] = atan2(b, a);
  }
  qsort(proj, q, sizeof(double), cmp_double);
  double lo = proj[(size_t) CLAMP(percentile / 100 * (q - 1), 0, q - 1)];
  double hi = proj[(size_t) CLAMP((100 - percentile) / 100 * (q - 1), 0, q - 1)];
  double v1[3], v2[3];
  for (int i = 0; i < 3; i++) {
    v1[i] = cos(lo) * e1[i] + sin(lo) * e2[i];
    v2[i] = cos(hi) * e1[i] + sin(hi) * e2[i];
  }
  double dot = 0, n1 = 0, n2 = 0;
  for (int i = 0; i < 3; i++)
    dot += v1[i] * v2[i], n1 += v1[i] * v1[i], n2 += v2[i] * v2[i];
  if (dot / sqrt(n1 * n2) > 0.995) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "the two stain directions coincide (angle %.2f degrees): one stain only?",
                acos(CLAMP(dot / sqrt(n1 * n2), -1, 1)) * 180 / G_PI);
    return false;
  }
  for (int i = 0; i < 3; i++)
    if (v1[i] < 0 || v2[i] < 0) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                  "an estimated stain vector has a negative optical density");
      return false;
    }
  /* DAB absorbs blue most (its OD rises from red to blue); haematoxylin does not */
  double r1 = v1[2] / sqrt(n1), r2 = v2[2] / sqrt(n2);
  const double *h = r1 < r2 ? v1 : v2, *d = r1 < r2 ? v2 : v1;
  for (int i = 0; i < 3; i++)
    m[0][i] = h[i], m[1][i] = d[i];
  _eosin_stain_complete(m);
  return true;
}
