/*
 * test-infer.c — how infer.c picks and keeps a device, checked without a
 * GPU through fake GPU backends wrapping the reference: a load that runs
 * out of memory above a batch is retried smaller, then falls back (auto)
 * with the reason in report.json or fails (cuda); a device lost to a sticky
 * fault is neither retried nor tried again by later slides; an
 * EosinInferCache keeps the loaded backend from one slide to the next. On
 * this machine's real CUDA backend (no GPU): `cuda` is a device error
 * naming the reason, `auto` runs on the CPU saying why, and a bad
 * EOSIN_CUDA_MAX_MEMORY_MB is an error naming the variable and value.
 */
#include "test-util.h"

#include "nn/backend.h"

#include <json-glib/json-glib.h>

/* What the fakes did in this test's process (Criterion runs each Test in
 * a process of its own). */
static int n_init, n_load;

/* mode: 0 load fails above batch 2 with an out-of-memory device error;
 * 1 every load fails so; 2 loads, and every run fails with a device error
 * after which the device is lost. */
typedef struct {
  void *ref;
  int mode;
  bool lost;
} Fake;

static bool fake_init(void **ctx, const EosinBackendOptions *o, int mode, GError **err) {
  n_init++;
  Fake *f = g_new0(Fake, 1);
  f->mode = mode;
  *ctx = f;
  return _eosin_backend_ref.init(&f->ref, o, err);
}
static bool init_oom(void **c, const EosinBackendOptions *o, GError **e) {
  return fake_init(c, o, 0, e);
}
static bool init_full(void **c, const EosinBackendOptions *o, GError **e) {
  return fake_init(c, o, 1, e);
}
static bool init_faulty(void **c, const EosinBackendOptions *o, GError **e) {
  return fake_init(c, o, 2, e);
}
static bool fake_supports(void *c, const EosinModel *m, const EosinNode *n) {
  return true;
}
static bool fake_load(void *c, const EosinModel *m, GError **err) {
  Fake *f = c;
  n_load++;
  if (f->mode == 1 || (f->mode == 0 && m->batch > 2)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "fake GPU: out of memory at batch %d",
                m->batch);
    return false;
  }
  return _eosin_backend_ref.load(f->ref, m, err);
}
static bool fake_run(void *c, const float *x, float *y, GError **err) {
  Fake *f = c;
  if (f->mode == 2) {
    f->lost = true;
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "fake GPU: an illegal memory access");
    return false;
  }
  return _eosin_backend_ref.run(f->ref, x, y, err);
}
static bool fake_lost(void *c) {
  return ((Fake *) c)->lost;
}
static void fake_destroy(void *c) {
  Fake *f = c;
  if (f->ref)
    _eosin_backend_ref.destroy(f->ref);
  g_free(f);
}
#define FAKE(n, i)                                                                         \
  {.name = n, .init = i, .supports = fake_supports, .load = fake_load, .run = fake_run,    \
   .destroy = fake_destroy, .lost = fake_lost}
static const EosinBackendOps FAKE_OOM = FAKE("fake-oom", init_oom);
static const EosinBackendOps FAKE_FULL = FAKE("fake-full", init_full);
static const EosinBackendOps FAKE_FAULTY = FAKE("fake-faulty", init_faulty);

static EosinInfer *new_infer(const EosinBackendOps *gpu, const char *device,
                             EosinInferCache *cache, GError **err) {
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  EosinInferOptions o = {.device = device, .batch = 8, .cache = cache};
  return _eosin_infer_new_with(model, &o, gpu, err);
}

/* report.json's inference block of @inf, as text. Caller frees. */
static char *report_of(const EosinInfer *inf) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  eosin_infer_report(inf, b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, FALSE);
}

/* Runs 5 random tiles; true when the run succeeded. */
static bool run_some(EosinInfer *inf, GError **err) {
  enum { N = 5, S = 64 };
  g_autofree uint8_t *rgb = g_new(uint8_t, N * S * S * 3);
  for (int i = 0; i < N * S * S * 3; i++)
    rgb[i] = (uint8_t) (i * 37);
  EosinPreprocess pp = {{0.3f, 0.4f, 0.5f}, {0.5f, 0.4f, 0.6f}, true};
  float out[3 * N];
  return eosin_infer_run_rgb(inf, rgb, N, &pp, out, err);
}

Test(infer, out_of_memory_at_load_retries_at_half_the_batch) {
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinInfer) inf = new_infer(&FAKE_OOM, "cuda", NULL, &err);
  cr_assert(inf, "%s", err ? err->message : "");
  cr_expect_str_eq(eosin_infer_backend(inf), "fake-oom");
  g_autofree char *s = eosin_infer_summary(inf);
  cr_expect(strstr(s, "batch 2") && strstr(s, "could not load at batch 8") &&
                strstr(s, "could not load at batch 4") && strstr(s, "loaded at batch 2"),
            "%s", s);
  cr_expect_eq(n_init, 3, "8, 4, 2: %d starts", n_init);
  cr_assert(run_some(inf, &err), "%s", err ? err->message : "");
}

Test(infer, load_failing_at_every_batch_falls_back_with_the_reason_or_fails) {
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinInfer) inf = new_infer(&FAKE_FULL, "auto", NULL, &err);
  cr_assert(inf, "%s", err ? err->message : "");
  cr_expect_str_eq(eosin_infer_backend(inf), "cpu-onednn");
  cr_expect_eq(n_load, 4, "8, 4, 2, 1 on the GPU before the CPU: %d loads", n_load);
  g_autofree char *r = report_of(inf);
  cr_expect(strstr(r, "\"gpu_not_used\":\"fake GPU: out of memory at batch 1\"") &&
                strstr(r, "\"batch\":8") && strstr(r, "could not load at batch 8"),
            "%s", r);
  cr_expect_null(new_infer(&FAKE_FULL, "cuda", NULL, &err));
  cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE) &&
                strstr(err->message, "device cuda: fake GPU: out of memory at batch 1"),
            "%s", err ? err->message : "");
}

Test(infer, a_lost_gpu_is_not_retried_and_later_slides_skip_it) {
  g_autoptr(EosinInferCache) cache = eosin_infer_cache_new();
  g_autoptr(GError) err = NULL;
  EosinInfer *inf = new_infer(&FAKE_FAULTY, "auto", cache, &err);
  cr_assert(inf, "%s", err ? err->message : "");
  cr_assert(run_some(inf, &err), "%s", err ? err->message : "");
  cr_expect_str_eq(eosin_infer_backend(inf), "cpu-onednn");
  g_autofree char *r = report_of(inf);
  cr_expect(strstr(r, "lost for this process") && !strstr(r, "retrying") &&
                strstr(r, "\"gpu_not_used\":\"fake-faulty failed: fake GPU: an illegal"),
            "%s", r);
  cr_expect_eq(n_init, 1, "no restart on a lost device: %d starts", n_init);
  eosin_infer_free(inf);

  /* the next slide (another model key: nothing to reuse) does not touch it */
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  EosinInferOptions o = {.device = "auto", .batch = 4, .cache = cache};
  inf = _eosin_infer_new_with(model, &o, &FAKE_FAULTY, &err);
  cr_assert(inf, "%s", err ? err->message : "");
  cr_expect_eq(n_init, 1, "the lost GPU was started again");
  g_autofree char *r2 = report_of(inf);
  cr_expect(strstr(r2, "\"gpu_not_used\":\"the GPU was lost earlier in this process: "
                       "fake GPU: an illegal memory access\""),
            "%s", r2);
  eosin_infer_free(inf);

  /* asked for by name: one error with the reason, at once */
  o.device = "cuda";
  cr_expect_null(_eosin_infer_new_with(model, &o, &FAKE_FAULTY, &err));
  cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE) &&
                strstr(err->message, "lost earlier in this process: fake GPU: an illegal"),
            "%s", err ? err->message : "");
  cr_expect_eq(n_init, 1);
}

Test(infer, a_lost_gpu_asked_for_by_name_fails_the_run_once) {
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinInfer) inf = new_infer(&FAKE_FAULTY, "cuda", NULL, &err);
  cr_assert(inf, "%s", err ? err->message : "");
  cr_expect_not(run_some(inf, &err));
  cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE) &&
                strstr(err->message, "device cuda: lost: fake GPU: an illegal"),
            "%s", err ? err->message : "");
  cr_expect_eq(n_init, 1, "no restart on a lost device: %d starts", n_init);
}

/* The slides of a batch share one setup per key, on any backend. */
Test(infer, the_cache_keeps_the_backend_across_slides) {
  g_autoptr(EosinInferCache) cache = eosin_infer_cache_new();
  g_autoptr(GError) err = NULL;
  for (int slide = 0; slide < 3; slide++) {
    g_autoptr(EosinInfer) inf = new_infer(&FAKE_OOM, "cuda", cache, &err);
    cr_assert(inf, "%s", err ? err->message : "");
    cr_assert(run_some(inf, &err), "%s", err ? err->message : "");
    g_autofree char *s = eosin_infer_summary(inf);
    cr_expect(strstr(s, "fake-oom, fp32, batch 2"), "slide %d: %s", slide, s);
    if (slide)
      cr_expect(strstr(s, "reused fake-oom at batch 2"), "slide %d: %s", slide, s);
  }
  cr_expect_eq(n_init, 3, "set up once (8, 4, 2), not per slide: %d starts", n_init);
  cr_expect_eq(eosin_infer_cache_reused(cache), 2);

  /* the CPU backend alike; another batch size is another key */
  for (int slide = 0; slide < 2; slide++) {
    g_autoptr(EosinInfer) inf = new_infer(NULL, "cpu", cache, &err);
    cr_assert(inf, "%s", err ? err->message : "");
    cr_assert(run_some(inf, &err), "%s", err ? err->message : "");
  }
  cr_expect_eq(eosin_infer_cache_reused(cache), 3);
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  EosinInferOptions o = {.device = "cpu", .batch = 4, .cache = cache};
  g_autoptr(EosinInfer) other = _eosin_infer_new_with(model, &o, NULL, &err);
  cr_assert(other, "%s", err ? err->message : "");
  cr_expect_eq(eosin_infer_cache_reused(cache), 3, "batch 4 took batch 8's backend");
}

Test(infer, cuda_max_memory_values_are_checked) {
  size_t b = 7;
  g_autoptr(GError) err = NULL;
  cr_expect(_eosin_cuda_parse_max_memory(NULL, &b, &err) && b == 0);
  cr_expect(_eosin_cuda_parse_max_memory("", &b, &err) && b == 0);
  cr_expect(_eosin_cuda_parse_max_memory("512", &b, &err) && b == 512u * 1048576);
  static const char *bad[] = {"0", "-1", "+5", "abc", "12MB", " 12", "1.5",
                              "99999999999999999999999"};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_clear_error(&err);
    cr_expect_not(_eosin_cuda_parse_max_memory(bad[i], &b, &err), "'%s' was taken", bad[i]);
    g_autofree char *want = g_strdup_printf("EOSIN_CUDA_MAX_MEMORY_MB='%s'", bad[i]);
    cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG) &&
                  strstr(err->message, want),
              "%s: %s", bad[i], err ? err->message : "no error");
  }
}

/* One device grammar (nn/device.c) for inference, the config loader and
 * the command line: a GPU index beyond EOSIN_DEVICE_MAX_GPU (cuda:70) is
 * refused by all three with the same bound, not accepted by the first two
 * and failed at run time. */
Test(infer, one_device_grammar_for_the_config_the_cli_and_inference) {
  static const struct {
    const char *s;
    EosinDeviceKind kind;
    int gpu;
  } good[] = {{NULL, EOSIN_DEVICE_AUTO, 0},   {"auto", EOSIN_DEVICE_AUTO, 0},
              {"cpu", EOSIN_DEVICE_CPU, 0},   {"ref", EOSIN_DEVICE_REF, 0},
              {"cuda", EOSIN_DEVICE_CUDA, 0}, {"cuda:0", EOSIN_DEVICE_CUDA, 0},
              {"cuda:07", EOSIN_DEVICE_CUDA, 7}, {"cuda:63", EOSIN_DEVICE_CUDA, 63}};
  for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
    EosinDevice d = {.kind = EOSIN_DEVICE_REF, .gpu = -1};
    g_autoptr(GError) err = NULL;
    cr_expect(eosin_device_parse(good[i].s, &d, &err), "'%s': %s", good[i].s,
              err ? err->message : "");
    cr_expect(d.kind == good[i].kind && d.gpu == good[i].gpu, "'%s': kind %d, gpu %d",
              good[i].s, d.kind, d.gpu);
  }
  static const char *bad[] = {"",        "gpu0",     "cuda:",    "cuda:64", "cuda:70",
                              "cuda:99", "cuda:100", "cuda:-1",  "cuda:+5", "cuda: 5",
                              "cuda:5 ", "CUDA",     "cuda0",    "cpu:0"};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    EosinDevice d;
    g_autoptr(GError) err = NULL;
    cr_expect_not(eosin_device_parse(bad[i], &d, &err), "'%s' was taken", bad[i]);
    g_autofree char *want = g_strdup_printf("device '%s': expected %s", bad[i],
                                            EOSIN_DEVICE_GRAMMAR);
    cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG) &&
                  !strcmp(err->message, want),
              "'%s': %s", bad[i], err ? err->message : "no error");
  }
  cr_expect(strstr(EOSIN_DEVICE_GRAMMAR, "N from 0 to 63"), "%s", EOSIN_DEVICE_GRAMMAR);

  /* inference refuses it before loading anything */
  g_autoptr(GError) err = NULL;
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  EosinInferOptions o = {.device = "cuda:70", .batch = 4};
  cr_expect_null(eosin_infer_new(model, &o, &err));
  cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG) &&
                strstr(err->message, "device 'cuda:70': expected " EOSIN_DEVICE_GRAMMAR),
            "%s", err ? err->message : "");
  g_clear_error(&err);

  /* the config loader: the same bound, with file and key */
  const char *head = "[task]\nname = t\nanalyzer = cnn\n[tiling]\nmpp = 1\n[model]\n"
                     "classes = blue, green, red\n";
  g_autofree char *text70 = g_strdup_printf("%sdevice = cuda:70\n", head);
  g_autofree char *cfg70 = write_config(text70);
  cr_expect_null(eosin_config_load(cfg70, &err));
  g_autofree char *want = g_strdup_printf("%s: [model] device = 'cuda:70': expected %s", cfg70,
                                          EOSIN_DEVICE_GRAMMAR);
  cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG) &&
                strstr(err->message, want),
            "%s", err ? err->message : "");
  g_clear_error(&err);
  g_autofree char *text63 = g_strdup_printf("%sdevice = cuda:63\n", head);
  g_autofree char *cfg63 = write_config(text63);
  g_autoptr(EosinConfig) ok = eosin_config_load(cfg63, &err);
  cr_expect(ok, "cuda:63 is within the bound: %s", err ? err->message : "");

  /* the command line: the same bound, a usage error naming the option */
  g_autofree char *cpu_text = g_strdup_printf("%sdevice = cpu\n", head);
  g_autofree char *cfg = write_config(cpu_text);
  g_autofree char *dir = tmp_dir();
  g_autofree char *csv = g_build_filename(dir, "preds.csv", NULL);
  g_autofree char *none = g_build_filename(dir, "no-images", NULL);
  char *out = NULL, *errs = NULL;
  const char *argv[] = {"predict", "-c", cfg, "--model", model, "--device", "cuda:70",
                        none, "-o", csv, NULL};
  int rc = run_eosin(argv, &out, &errs);
  cr_expect_eq(rc, EOSIN_EXIT_USAGE, "%s", errs);
  g_autofree char *cli_want = g_strdup_printf("eosin: --device 'cuda:70': expected %s",
                                              EOSIN_DEVICE_GRAMMAR);
  cr_expect(strstr(errs, cli_want), "%s", errs);
  g_free(out);
  g_free(errs);
  /* cuda:63 passes the option check (and fails later, on the missing
   * images, whatever the machine) */
  argv[6] = "cuda:63";
  rc = run_eosin(argv, &out, &errs);
  cr_expect(!strstr(errs, "expected auto") && strstr(errs, "no-images"), "%s", errs);
  g_free(out);
  g_free(errs);
}

#ifdef EOSIN_HAVE_CUDA
/* The real CUDA backend where it cannot start (no GPU: this machine, CI):
 * `cuda` is a device error (exit 2) with the reason; `auto` runs on the
 * CPU with the reason in report.json. */
Test(infer, cuda_without_a_usable_gpu_is_a_clear_error_or_a_cpu_run_saying_why) {
  void *ctx = NULL;
  g_autoptr(GError) why = NULL;
  EosinBackendOptions opt = {0};
  if (_eosin_backend_cuda.init(&ctx, &opt, &why)) {
    _eosin_backend_cuda.destroy(ctx);
    cr_skip_test("a GPU starts here: this checks machines without one");
  }
  g_autoptr(GError) err = NULL;
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  EosinInferOptions o = {.device = "cuda", .batch = 8};
  cr_expect_null(eosin_infer_new(model, &o, &err));
  g_autofree char *want = g_strdup_printf("device cuda: %s", why->message);
  cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE) && strstr(err->message, want),
            "%s", err ? err->message : "");
  o.device = "auto";
  g_autoptr(EosinInfer) inf = eosin_infer_new(model, &o, &err);
  cr_assert(inf, "%s", err ? err->message : "");
  cr_expect_str_eq(eosin_infer_backend(inf), "cpu-onednn");
  g_autofree char *r = report_of(inf);
  cr_expect(strstr(r, "\"gpu_not_used\":\"cuda: "), "%s", r);
}

/* A bad cap is the user's mistake on any machine: an error, never a
 * silent CPU run. */
Test(infer, a_bad_cuda_max_memory_is_an_error_even_for_auto) {
  g_setenv("EOSIN_CUDA_MAX_MEMORY_MB", "lots", TRUE);
  g_autoptr(GError) err = NULL;
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  EosinInferOptions o = {.device = "auto", .batch = 8};
  cr_expect_null(eosin_infer_new(model, &o, &err));
  cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG) &&
                strstr(err->message, "EOSIN_CUDA_MAX_MEMORY_MB='lots'"),
            "%s", err ? err->message : "");
}
#endif
