/*
 * bench-read.c — the read stage alone, for `make bench`: every level-0
 * tile of a slide read by Eosin's scheduler (N reader threads, each with
 * its own OpenSlide handle, through the bounded batch queue, into an
 * analyzer that does nothing), or by a plain single-threaded OpenSlide
 * read_region loop over exactly the same tiles. Prints one JSON line.
 *
 *   bench-read SLIDE eosin|openslide [READERS] [TILE]
 */
#include "eosin-private.h"

#include <openslide.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static bool null_run(void *ctx, const EosinTileBatch *b, float *values, GError **err) {
  /* touch one byte per tile so the read cannot be optimised away */
  for (int t = 0; t < b->n; t++)
    values[t] = b->pixels[(size_t) t * b->tile_size * b->tile_size * 3];
  return true;
}

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench-read SLIDE eosin|openslide [READERS] [TILE]\n");
    return 2;
  }
  const char *path = argv[1], *mode = argv[2];
  int readers = argc > 3 ? atoi(argv[3]) : 2;
  int tile = argc > 4 ? atoi(argv[4]) : 256;
  if (readers < 1 || tile < 16 || (strcmp(mode, "eosin") && strcmp(mode, "openslide"))) {
    fprintf(stderr, "bench-read: bad arguments\n");
    return 2;
  }
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) slide = eosin_slide_open(path, 0, &err);
  if (!slide) {
    fprintf(stderr, "bench-read: %s\n", err->message);
    return 1;
  }
  const EosinSlideInfo *info = eosin_slide_get_info(slide);
  /* level-0 tiles over the whole slide: the slide's own µm/px, no mask */
  EosinConfig cfg = {.tile_size = tile, .mpp = info->mpp_x, .readers = readers,
                     .batch_size = 16, .queue_depth = 4};
  EosinTilePlan plan;
  if (!eosin_tile_plan(info, &cfg, NULL, &plan, &err)) {
    fprintf(stderr, "bench-read: %s\n", err->message);
    return 1;
  }
  int n = plan.tiles->len;
  gint64 t0 = g_get_monotonic_time();
  if (!strcmp(mode, "eosin")) {
    EosinAnalyzerOps ops = {.name = "null", .run = null_run};
    g_autofree float *values = g_new0(float, n);
    EosinSchedStats st;
    if (!_eosin_schedule(slide, &plan, &ops, NULL, 1, readers, cfg.batch_size, cfg.queue_depth,
                         NULL, values, NULL, &st, &err)) {
      fprintf(stderr, "bench-read: %s\n", err->message);
      return 1;
    }
  } else {
    readers = 1;
    openslide_t *osr = openslide_open(path);
    g_autofree uint32_t *buf = g_new(uint32_t, (size_t) tile * tile);
    const EosinTile *tiles = (const EosinTile *) plan.tiles->data;
    for (int i = 0; i < n; i++)
      openslide_read_region(osr, buf, tiles[i].x, tiles[i].y, 0, tile, tile);
    const char *e = openslide_get_error(osr);
    if (e) {
      fprintf(stderr, "bench-read: %s\n", e);
      return 1;
    }
    openslide_close(osr);
  }
  double s = (g_get_monotonic_time() - t0) / 1e6;
  printf("{\"mode\":\"%s\",\"readers\":%d,\"tiles\":%d,\"seconds\":%.3f,\"tiles_per_s\":%.1f,"
         "\"peak_rss_mb\":%.1f}\n",
         mode, readers, n, s, n / s, peak_rss_mb());
  eosin_tile_plan_clear(&plan);
  return 0;
}
