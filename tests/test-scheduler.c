/*
 * test-scheduler.c — _eosin_schedule (src/scheduler.c) on its own, with a
 * probe analyzer that records what it is handed: every tile of the plan
 * delivered exactly once, in batches of at most batch_size holding
 * consecutive tiles, each value written at its tile's index with the
 * pixels of that tile; the same values and focus measures for 1 and 3
 * readers; a cancel (before the start or between batches) stopping it
 * with EOSIN_ERROR_CANCELLED and the tiles done; a tile that cannot be
 * read failing the run with that tile's place in the error, its batch
 * never handed to the analyzer; an analyzer error naming the batch's
 * tiles.
 *
 * The slide is the generated blocks-aperio.svs (3001 x 2003 px at
 * 0.5 µm/px, 256 px JPEG tiles): 256 px tiles at 0.5 µm/px without
 * overlap read level 0 as it is, 12 x 8 = 96 tiles, tile (c, r) at
 * level-0 (256 c, 256 r), each one TIFF tile of the file.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <math.h>
#include <tiffio.h>

enum { TILE = 256, COLS = 12, ROWS = 8, N_TILES = COLS * ROWS, PER_TILE = 3 };

/* What the probe analyzer saw. */
typedef struct {
  int batch_size;
  int batches;            /* run() calls */
  int seen[N_TILES];      /* deliveries per tile */
  int first[N_TILES];     /* per batch: its first tile, in call order */
  int n[N_TILES];         /* per batch: its tile count, in call order */
  bool consecutive;       /* every batch's tiles were first, first+1, ... */
  EosinCancel *cancel;    /* set after @cancel_after batches (> 0) */
  int cancel_after;
  int fail_tile;          /* >= 0: fail the batch holding this tile */
} Probe;

/* FNV-1a of a tile's pixels, as two exact 16-bit halves. */
static uint32_t pixel_hash(const uint8_t *px, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ px[i]) * 16777619u;
  return h;
}

/* Writes, per tile: its index, and the hash of the pixels it was given. */
static bool probe_run(void *ctx, const EosinTileBatch *b, float *values, GError **err) {
  Probe *p = ctx;
  size_t tile_bytes = (size_t) b->tile_size * b->tile_size * 3;
  if (p->batches < N_TILES) {
    p->first[p->batches] = b->tile_ids[0];
    p->n[p->batches] = b->n;
  }
  p->batches++;
  for (int k = 0; k < b->n; k++) {
    int id = b->tile_ids[k];
    if (id != b->tile_ids[0] + k)
      p->consecutive = false;
    if (id >= 0 && id < N_TILES)
      p->seen[id]++;
    if (id == p->fail_tile) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_NUMERIC, "probe refused tile %d", id);
      return false;
    }
    uint32_t h = pixel_hash(b->pixels + k * tile_bytes, tile_bytes);
    values[k * PER_TILE + 0] = (float) id;
    values[k * PER_TILE + 1] = (float) (h >> 16);
    values[k * PER_TILE + 2] = (float) (h & 0xffff);
  }
  if (p->cancel && p->batches == p->cancel_after)
    g_atomic_int_set(&p->cancel->cancelled, 1);
  return true;
}

static const EosinAnalyzerOps probe_ops = {.name = "probe", .run = probe_run};

/* A probe that has seen nothing, for batches of @batch_size. */
static void probe_init(Probe *p, int batch_size) {
  memset(p, 0, sizeof *p);
  p->batch_size = batch_size;
  p->consecutive = true;
  p->fail_tile = -1;
}

/* The plan of the file comment on @slide (asserted, so a change of the
 * tile plan shows here and not as a scheduler failure); the caller clears
 * it with eosin_tile_plan_clear. */
static void blocks_plan(EosinSlide *slide, EosinTilePlan *plan) {
  g_autofree char *cfgpath = stain_config(TILE, 0.5, 0, 0, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  cr_assert(eosin_tile_plan(eosin_slide_get_info(slide), cfg, NULL, plan, &err));
  cr_assert_eq(plan->cols, COLS);
  cr_assert_eq(plan->rows, ROWS);
  cr_assert_eq(plan->tiles->len, N_TILES);
  cr_assert_eq(plan->level.level, 0);
  cr_assert_not(plan->level.resample);
}

typedef struct {
  float values[N_TILES * PER_TILE];
  float sharpness[N_TILES];
  EosinSchedStats stats;
} Outcome;

/* Runs the scheduler on @slide with the probe into @o (the caller's); NaN
 * marks what it left unwritten. */
static bool schedule(EosinSlide *slide, const EosinTilePlan *plan, Probe *p, int readers,
                     const EosinRunOptions *opts, Outcome *o, GError **err) {
  for (int i = 0; i < N_TILES * PER_TILE; i++)
    o->values[i] = NAN;
  for (int i = 0; i < N_TILES; i++)
    o->sharpness[i] = NAN;
  memset(&o->stats, 0, sizeof o->stats);
  return _eosin_schedule(slide, plan, &probe_ops, p, PER_TILE, readers, p->batch_size, 2, opts,
                         o->values, o->sharpness, &o->stats, err);
}

Test(scheduler, every_tile_once_in_batches_of_at_most_batch_size) {
  g_autofree char *path = td("blocks-aperio.svs");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) slide = eosin_slide_open(path, 0, &err);
  cr_assert(slide, "%s", err ? err->message : "");
  EosinTilePlan plan;
  blocks_plan(slide, &plan);
  Probe p;
  probe_init(&p, 7);
  static Outcome o;
  cr_assert(schedule(slide, &plan, &p, 3, NULL, &o, &err), "%s", err ? err->message : "");

  /* 96 tiles in batches of 7: 13 full ones and one of 5 */
  cr_expect_eq(p.batches, 14);
  cr_expect_eq(o.stats.batches, 14);
  cr_expect_eq(o.stats.readers, 3);
  cr_expect(p.consecutive, "a batch holds consecutive tiles of the plan");
  for (int b = 0; b < p.batches && b < N_TILES; b++) {
    cr_expect_eq(p.first[b] % 7, 0, "batch starting at tile %d", p.first[b]);
    cr_expect_eq(p.n[b], p.first[b] == 91 ? 5 : 7, "batch at tile %d has %d tiles", p.first[b],
                 p.n[b]);
  }
  for (int i = 0; i < N_TILES; i++)
    cr_expect_eq(p.seen[i], 1, "tile %d delivered %d times", i, p.seen[i]);

  /* each value at its tile's index, from that tile's pixels */
  g_autoptr(EosinSlide) own = eosin_slide_open(path, 0, &err);
  g_autofree uint8_t *px = g_malloc((size_t) TILE * TILE * 3);
  for (int i = 0; i < N_TILES; i++) {
    const EosinTile *t = &g_array_index(plan.tiles, EosinTile, i);
    cr_assert(eosin_tile_read(own, &plan, t, px, &err));
    uint32_t h = pixel_hash(px, (size_t) TILE * TILE * 3);
    cr_expect_eq(o.values[i * PER_TILE], (float) i, "value of tile %d written at %g", i,
                 o.values[i * PER_TILE]);
    cr_expect_eq(o.values[i * PER_TILE + 1], (float) (h >> 16), "tile %d: other pixels", i);
    cr_expect_eq(o.values[i * PER_TILE + 2], (float) (h & 0xffff), "tile %d: other pixels", i);
    cr_expect_eq(o.sharpness[i], _eosin_qc_tile_sharpness(px, TILE), "tile %d: focus measure", i);
  }
  eosin_tile_plan_clear(&plan);
}

Test(scheduler, results_do_not_depend_on_the_reader_count) {
  g_autofree char *path = td("blocks-aperio.svs");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) slide = eosin_slide_open(path, 0, &err);
  cr_assert(slide, "%s", err ? err->message : "");
  EosinTilePlan plan;
  blocks_plan(slide, &plan);
  static Outcome one, three;
  Probe p1, p3;
  probe_init(&p1, 5);
  probe_init(&p3, 5);
  cr_assert(schedule(slide, &plan, &p1, 1, NULL, &one, &err), "%s", err ? err->message : "");
  cr_assert(schedule(slide, &plan, &p3, 3, NULL, &three, &err), "%s", err ? err->message : "");
  cr_expect_eq(one.stats.readers, 1);
  cr_expect_eq(three.stats.readers, 3);
  for (int i = 0; i < N_TILES; i++) {
    cr_expect(!isnan(one.values[i * PER_TILE]), "tile %d written", i);
    cr_expect_eq(p3.seen[i], 1, "tile %d delivered %d times with 3 readers", i, p3.seen[i]);
  }
  cr_expect_eq(memcmp(one.values, three.values, sizeof one.values), 0,
               "values: 1 reader vs 3 readers");
  cr_expect_eq(memcmp(one.sharpness, three.sharpness, sizeof one.sharpness), 0,
               "focus measures: 1 reader vs 3 readers");
  eosin_tile_plan_clear(&plan);
}

Test(scheduler, cancel_stops_it_between_batches) {
  g_autofree char *path = td("blocks-aperio.svs");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) slide = eosin_slide_open(path, 0, &err);
  cr_assert(slide, "%s", err ? err->message : "");
  EosinTilePlan plan;
  blocks_plan(slide, &plan);
  EosinCancel cancel = {0};
  EosinRunOptions opts = {.cancel = &cancel};
  Probe p;
  probe_init(&p, 7);
  p.cancel = &cancel;
  p.cancel_after = 2;
  static Outcome o;
  cr_assert_not(schedule(slide, &plan, &p, 3, &opts, &o, &err));
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED), "%s", err->message);
  /* the consumer checks the flag before each batch: no third one */
  cr_expect_eq(p.batches, 2);
  cr_expect(strstr(err->message, "cancelled after 14 of 96 tiles"), "%s", err->message);
  cr_expect(strstr(err->message, "blocks-aperio.svs"), "%s", err->message);
  g_clear_error(&err);

  /* cancelled before it starts: no batch at all */
  probe_init(&p, 7);
  cr_assert_not(schedule(slide, &plan, &p, 3, &opts, &o, &err));
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED), "%s", err->message);
  cr_expect_eq(p.batches, 0);
  cr_expect(strstr(err->message, "cancelled after 0 of 96 tiles"), "%s", err->message);
  eosin_tile_plan_clear(&plan);
}

/* A copy of @src in @dir whose level-0 TIFF tile @index is zeros: OpenSlide
 * opens it (the directories are intact) but cannot decode that tile. The
 * caller frees the returned path. */
static char *slide_with_broken_tile(const char *src, const char *dir, uint32_t index) {
  char *copy = g_build_filename(dir, "broken-tile.svs", NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  cr_assert(g_file_get_contents(src, &data, &len, NULL));
  TIFF *tif = TIFFOpen(src, "r");
  cr_assert(tif);
  uint64_t *off = NULL, *bytes = NULL;
  cr_assert(TIFFGetField(tif, TIFFTAG_TILEOFFSETS, &off));
  cr_assert(TIFFGetField(tif, TIFFTAG_TILEBYTECOUNTS, &bytes));
  cr_assert_lt(index, TIFFNumberOfTiles(tif));
  cr_assert_leq(off[index] + bytes[index], len);
  memset(data + off[index], 0, bytes[index]);
  TIFFClose(tif);
  cr_assert(g_file_set_contents(copy, data, len, NULL));
  return copy;
}

Test(scheduler, a_tile_that_cannot_be_read_fails_it_naming_the_tile) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *src = td("blocks-aperio.svs");
  /* TIFF tile 41 is (5, 3): plan tile 41, level-0 (1280, 768) */
  g_autofree char *path = slide_with_broken_tile(src, dir, 3 * COLS + 5);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) slide = eosin_slide_open(path, 0, &err);
  cr_assert(slide, "%s", err ? err->message : "");
  EosinTilePlan plan;
  blocks_plan(slide, &plan);
  Probe p;
  probe_init(&p, 7);
  static Outcome o;
  cr_assert_not(schedule(slide, &plan, &p, 3, NULL, &o, &err));
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE), "%s", err->message);
  cr_expect(strstr(err->message, "level 0 region (1280, 768) 256x256"), "%s", err->message);
  cr_expect(strstr(err->message, "broken-tile.svs"), "%s", err->message);
  /* its batch (tiles 35-41) is never handed to the analyzer half-read */
  for (int i = 35; i <= 41; i++)
    cr_expect_eq(p.seen[i], 0, "tile %d of the failed batch delivered", i);
  eosin_tile_plan_clear(&plan);
}

Test(scheduler, an_analyzer_error_names_the_batch_tiles) {
  g_autofree char *path = td("blocks-aperio.svs");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) slide = eosin_slide_open(path, 0, &err);
  cr_assert(slide, "%s", err ? err->message : "");
  EosinTilePlan plan;
  blocks_plan(slide, &plan);
  Probe p;
  probe_init(&p, 7);
  p.fail_tile = 40;
  static Outcome o;
  cr_assert_not(schedule(slide, &plan, &p, 2, NULL, &o, &err));
  /* the analyzer's own error code, prefixed with the batch it failed on */
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_NUMERIC), "%s", err->message);
  cr_expect_str_eq(err->message, "analyzer probe, tiles 35-41: probe refused tile 40");
  eosin_tile_plan_clear(&plan);
}
