/*
 * run-slide.c — a program embedding Eosin through its public header alone
 * (eosin.h, libeosin.so, pkg-config eosin): describes a slide, runs a task
 * config on it with progress and warnings of its own, and prints the
 * result. tests/test-embed.c runs it; it is also the example README points
 * a lab's own software at.
 *
 *   run-slide CONFIG SLIDE OUTDIR
 * Exit: 0 done, 1 the run failed, 2 usage.
 */
#include <eosin.h>

#include <stdio.h>

static void on_progress(int done, int total, double tiles_per_s, void *data) {
  int *calls = data;
  (*calls)++;
  if (done == total)
    fprintf(stderr, "run-slide: %d/%d tiles\n", done, total);
}

static void on_warning(const char *message, void *data) {
  fprintf(stderr, "run-slide: warning: %s\n", message);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: run-slide CONFIG SLIDE OUTDIR\n");
    return 2;
  }
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) slide = eosin_slide_open(argv[2], 0, &err);
  if (!slide) {
    fprintf(stderr, "run-slide: %s\n", err->message);
    return 1;
  }
  int64_t w, h;
  double mx, my;
  eosin_slide_get_size(slide, &w, &h);
  eosin_slide_get_mpp(slide, &mx, &my);
  printf("slide %s: %lld x %lld px, %.4f um/px, %d levels, %s\n", argv[2], (long long) w,
         (long long) h, mx, eosin_slide_get_level_count(slide), eosin_slide_get_vendor(slide));

  g_autoptr(EosinConfig) cfg = eosin_config_load(argv[1], &err);
  if (!cfg) {
    fprintf(stderr, "run-slide: %s\n", err->message);
    return 2;
  }
  int progress_calls = 0;
  g_autoptr(EosinCancel) cancel = eosin_cancel_new();
  g_autoptr(EosinRunOptions) opts = eosin_run_options_new();
  eosin_run_options_set_cancel(opts, cancel);
  eosin_run_options_set_progress(opts, on_progress, &progress_calls);
  eosin_run_options_set_warning(opts, on_warning, NULL);
  g_autoptr(EosinResult) res = eosin_run(cfg, argv[2], argv[3], opts, &err);
  if (!res) {
    fprintf(stderr, "run-slide: %s\n", err->message);
    return 1;
  }
  int planned = 0, skipped = 0;
  int analysed = eosin_result_get_tiles(res, &planned, &skipped);
  g_autofree char *scores = eosin_result_get_scores_json(res);
  int n_warnings = 0;
  for (const char *const *wv = eosin_result_get_warnings(res); *wv; wv++)
    n_warnings++;
  printf("task %s: %d tiles analysed (%d planned, %d without tissue), %d progress calls, "
         "%d warnings\noutdir %s\nscores %s\n",
         eosin_config_get_task(cfg), analysed, planned, skipped, progress_calls, n_warnings,
         eosin_result_get_outdir(res), scores);
  return 0;
}
