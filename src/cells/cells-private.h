/*
 * cells-private.h — what only the files of cells/ share: the image filters
 * (filters.c), grayscale reconstruction (reconstruct.c), the seeded
 * watershed (watershed.c) and regional and prominent maxima (maxima.c)
 * that nucleus detection (nuclei.c) is assembled from. Images are W x H
 * row-major floats; edges are replicated, as ImageJ (and so QuPath) does.
 */
#pragma once

#include "cells/eosin-cells.h"
#include "eosin.h" /* EOSIN_ERROR */

#include <string.h>

G_BEGIN_DECLS

/* ---------------------------------------------------------------- filters.c */

/* Circular min (@max = false) or max filter of radius @r pixels (ImageJ
 * RankFilters' kernel) of @in into @out. */
void _eosin_cells_rank_filter(const float *in, int W, int H, double r, bool max, float *out);
/* Median of radius @r pixels, the same circular kernel, into @out. */
void _eosin_cells_median(const float *in, int W, int H, double r, float *out);
/* Gaussian blur of @sigma pixels (ImageJ's kernel reach), in place. */
void _eosin_cells_gaussian(float *img, int W, int H, double sigma);
/* The negative Laplacian of a Gaussian of @sigma of @in into @out:
 * positive on blobs. */
void _eosin_cells_neg_log(const float *in, int W, int H, double sigma, float *out);

/* ---------------------------------------------------------------- reconstruct.c */

/* Grayscale reconstruction by dilation of @marker under @mask, 8-connected;
 * @marker is replaced by the result. */
void _eosin_cells_reconstruct(float *marker, const float *mask, int W, int H);

/* ---------------------------------------------------------------- watershed.c */

/* Seeded watershed on @img, highest first: @labels (> 0 = seeds) grow
 * 4-connected into pixels with img > @min_value (and @mask set, when
 * given); a pixel whose labelled 4-neighbours disagree stays 0, a line.
 * @level (or NULL) gives every pixel the flood can reach an integer in
 * 0..@n_levels-1 that orders pixels exactly as @img does (equal levels for
 * equal values), for a bucket queue instead of the heap. */
void _eosin_cells_watershed(const float *img, int W, int H, int *labels, float min_value,
                            const uint8_t *mask, const uint32_t *level, uint32_t n_levels);
/* Integer levels for a flood on a distance map @d (_eosin_edt's output:
 * square roots of whole squared distances), over the pixels where @use is
 * set (all when NULL) and d <= @max_d: the squared distance, or its
 * complement when @nearest_first, into the caller's @level (@n). Returns
 * the number of levels. */
uint32_t _eosin_cells_distance_levels(const float *d, size_t n, const uint8_t *use, float max_d,
                                      bool nearest_first, uint32_t *level);

/* ---------------------------------------------------------------- maxima.c */

/* Regional maxima of @img (8-connected plateaus with no higher neighbour,
 * at least @min_value; away from the 1-px frame when @skip_frame, as
 * QuPath's seeds), labelled 4-connected into the caller's @seeds (W*H);
 * returns the count. */
int _eosin_cells_regional_maxima(const float *img, int W, int H, float min_value,
                                 bool skip_frame, int *seeds);
/* Maxima of the distance map @d inside @bin with a prominence above @tol
 * (ImageJ's MaximumFinder idea), whole plateaus labelled 1..count into the
 * caller's @seeds (W*H); returns the count. */
int _eosin_cells_prominent_maxima(const float *d, const uint8_t *bin, int W, int H, float tol,
                                  int *seeds);

G_END_DECLS
