/*
 * stain.c — stain maths: Ruifrok–Johnston colour deconvolution ("Quantification
 * of histochemical staining by color deconvolution", Anal Quant Cytol
 * Histol 2001) of RGB pixels into stain concentrations (optical density
 * units), the stain matrix's inverse, and the stain vectors' parsing,
 * completion and normalisation. Two optical density conventions: the stain
 * analyzer's is scikit-image's (separate_stains), the IHC and cytology
 * analyzers' QuPath's (per-channel tables, so the blank may differ from 255).
 */
#include "cells/cells-private.h"

#include <math.h>

bool _eosin_stain_matrix_invert(const double m[3][3], double inv[3][3], GError **err) {
  double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
               m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
               m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  if (fabs(det) < 1e-9) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "stain vectors are linearly dependent (determinant %g)", det);
    return false;
  }
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      /* cofactor of m[j][i] over det: the adjugate's transpose */
      int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
      inv[i][j] = (m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]) / det;
    }
  return true;
}

void _eosin_stain_deconvolve(const uint8_t *rgb, size_t n, const double M[3][3], float *out) {
  double od[256];
  for (int v = 0; v < 256; v++)
    od[v] = -log10(MAX(v / 255.0, 1e-6));
  for (size_t p = 0; p < n; p++) {
    double r = od[rgb[3 * p]], g = od[rgb[3 * p + 1]], b = od[rgb[3 * p + 2]];
    for (int j = 0; j < 3; j++) {
      double c = r * M[0][j] + g * M[1][j] + b * M[2][j];
      out[3 * p + j] = (float) MAX(c, 0.0);
    }
  }
}

void _eosin_stain_deconvolve_lut(const uint8_t *rgb, size_t n, const float od[3][256],
                                 const double M[3][3], float *out) {
  for (size_t p = 0; p < n; p++) {
    float r = od[0][rgb[3 * p]], g = od[1][rgb[3 * p + 1]], b = od[2][rgb[3 * p + 2]];
    for (int j = 0; j < 3; j++)
      out[3 * p + j] = (float) (r * M[0][j] + g * M[1][j] + b * M[2][j]);
  }
}

bool _eosin_stain_parse_vectors(const char *v, double m[3][3], GError **err) {
  g_auto(GStrv) rows = g_strsplit(v, ";", -1);
  bool ok = g_strv_length(rows) == 3;
  for (int i = 0; ok && i < 3; i++) {
    g_auto(GStrv) cols = g_strsplit(rows[i], ",", -1);
    ok = g_strv_length(cols) == 3;
    for (int j = 0; ok && j < 3; j++) {
      char *end;
      g_strstrip(cols[j]);
      m[i][j] = g_ascii_strtod(cols[j], &end);
      ok = *cols[j] && !*end && isfinite(m[i][j]) && m[i][j] >= 0;
    }
  }
  if (!ok)
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "'%s': expected three 'r,g,b' triplets of non-negative numbers separated by "
                "';'",
                v);
  return ok;
}

void _eosin_stain_cross(double m[3][3]) {
  const double *a = m[0], *b = m[1];
  m[2][0] = a[1] * b[2] - a[2] * b[1];
  m[2][1] = a[2] * b[0] - a[0] * b[2];
  m[2][2] = a[0] * b[1] - a[1] * b[0];
}

void _eosin_stain_normalise(double m[3][3]) {
  for (int i = 0; i < 3; i++) {
    double n = sqrt(m[i][0] * m[i][0] + m[i][1] * m[i][1] + m[i][2] * m[i][2]);
    for (int j = 0; n > 0 && j < 3; j++)
      m[i][j] /= n;
  }
}

void _eosin_stain_complete(double m[3][3]) {
  _eosin_stain_cross(m);
  _eosin_stain_normalise(m);
}

void _eosin_stain_od_table(double od[256]) {
  for (int v = 0; v < 256; v++)
    od[v] = MAX(0.0, -log10(MAX(v, 1) / 255.0));
}
