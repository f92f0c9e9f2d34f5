/*
 * test-util.h — helpers shared by the Criterion tests: where the generated
 * test data and ../shared live, running the eosin CLI, temporary folders
 * and configs, and reading pixels back through OpenSlide.
 */
#pragma once

#include "eosin-private.h"

#include <criterion/criterion.h>
#include <stdint.h>

/* A generated test file (EOSIN_TESTDATA, made by scripts/test/make-test-data). */
char *td(const char *name);
/* True when @name is listed in EOSIN_TESTDATA/.bundle-absent: the device
 * bundle (scripts/device/device-bundle) leaves it out; td() then skips the test. */
bool td_absent(const char *name);
/* A file under ../shared/data, or NULL when ../shared is absent. */
char *shared_data(const char *rel);
/* Skips the current test with a message unless @path exists. */
#define REQUIRE_SHARED(path, rel)                                                        \
  do {                                                                                   \
    if (!(path))                                                                         \
      cr_skip_test("../shared/data/%s is absent: skipped (CI has ../shared beside the " \
                   "clone)", rel);                                                       \
  } while (0)

/* A new empty temporary folder, removed with its contents when the test
 * process exits (kept when EOSIN_KEEP_TMP is set, to look at a failure). */
char *tmp_dir(void);
/* Writes @text to a new .ini file in a temporary folder; returns its path. */
char *write_config(const char *text);
/* The standard stain config text with @extra lines appended to [tiling]
 * (so tests can vary tile_size / mpp / overlap) and @tail at the end. */
char *stain_config(int tile_size, double mpp, int overlap, double min_fraction, const char *tail);

/* The CNN task of the lesion tests (test data's colour classifier on 64 px
 * tiles, [lesions] on its red channel) named @task, as a config file. */
char *cnn_lesions_config(const char *task);

/* Starts build/eosin with @args (NULL-terminated, without the program),
 * its output to /dev/null; reap_eosin waits for it and gives its exit
 * status, 128 + the signal that ended it. */
GPid spawn_eosin(const char *const *args);
int reap_eosin(GPid pid);
/* Fails the test for every .partial, .tmp, .replaced or .eosin-lock left
 * anywhere under @dir: what a stopped or failed run must not leave. */
void expect_no_leftovers(const char *dir);

/* Runs build/eosin with @argv (NULL-terminated, without the program);
 * returns the exit status and hands out stdout/stderr (caller frees). */
int run_eosin(const char *const *argv, char **out, char **err);

/* One level-0 RGBA pixel of an image through OpenSlide (un-premultiplied). */
bool openslide_pixel(const char *path, int64_t x, int64_t y, uint8_t rgba[4]);
/* Number of levels OpenSlide sees in @path (0 if it cannot open it). */
int openslide_levels(const char *path);

/* Reads a whole small file. */
char *slurp(const char *path);
/* The rows of a CSV file after its header, each split at ','
 * (GPtrArray of GStrv, owned by the caller). */
GPtrArray *read_csv_rows(const char *path);
/* Positions along one axis of a @field px image on the seams of a plan of
 * @tile px tiles overlapping by @overlap: every tile edge and half way
 * through every overlap (where ownership changes), keeping @margin px
 * from the far side. Writes @pos (64 at most), returns the count. */
int seam_positions(int field, int tile, int overlap, int margin, int *pos);
/* Nuclei drawn on a grid of seam positions (@pos[0..np-1] on both axes)
 * against the cells.csv @rows (x, y first): every cell within 2 px of a
 * drawn nucleus and every nucleus found exactly once. Returns, per row,
 * the index (row-major) of its nucleus; caller frees. */
int *expect_seam_nuclei_once(GPtrArray *rows, const int *pos, int np);
/* Loads @cfgpath and expects the @analyzer's init to refuse it with an
 * error naming the file and containing @want; @what names the case. */
void expect_init_error(const char *analyzer, const char *cfgpath, const char *want,
                       const char *what);

/* Loads the config @cfgpath and runs it on @slide into @outdir (a new
 * temporary folder when NULL), asserting both succeed; fills @res (the
 * caller clears it). */
void run_config_ok(const char *cfgpath, const char *slide, const char *outdir,
                   const EosinRunOptions *opts, EosinRunResult *res);

/* True when OUTDIR holds the complete result of config @cfgpath on @slide
 * (eosin_output_check says EOSIN_OUTPUT_COMPLETE). */
bool output_complete(const char *cfgpath, const char *slide, const char *outdir);

/* A block of uniform colour on a generated "blocks" slide (level-0 px). */
typedef struct {
  int64_t x, y, w, h;
  uint8_t rgb[3];
} Block;
/* The blocks listed in a generated slide's JSON sidecar (GArray of Block),
 * and the slide's level-0 size. */
GArray *load_blocks(const char *json_path, int64_t *width, int64_t *height);

/* Runs `eosin ARGV...` and expects exit @code with @needle on stderr. */
void expect_run(const char *const *argv, int code, const char *needle, const char *what);
/* report.json of @path without what differs from run to run ("created",
 * "timing", "command"), as text. */
char *report_sans_timing(const char *path);
/* OUTDIR @out's batch-summary.csv without its columns of time, one
 * "slide|name|status|tiles|error|qc" line per row. */
char *summary_sans_timing(const char *out);
/* OUTDIR @a and @b hold the same results: the same entries, every file
 * byte-identical but for report.json's and the marker's per-run fields
 * (and the workers' bookkeeping, .eosin-batch); with @summary, the
 * summaries the same but for their times. Returns the slide folders. */
int expect_same_results(const char *a, const char *b, bool summary);
