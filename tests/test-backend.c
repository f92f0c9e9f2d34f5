/*
 * test-backend.c — backends against ONNX Runtime: the test models run on
 * every available backend with the fixed input scripts/reference/onnx-reference.py
 * fed ONNX Runtime, and the outputs must agree to 1e-4 (fp32; 1e-2 for the
 * CUDA backend's fp16). The CPU backend runs on the ISA oneDNN picks here
 * and again capped at AVX2 (the _avx2 tests: nChw8c and Eosin's Winograd,
 * the path of CPUs without AVX-512), so both are checked on any x86-64
 * machine. The CUDA tests skip, saying why, where no GPU is usable (fail
 * with EOSIN_REQUIRE_CUDA=1: test-cuda.h); its host-side planning is
 * checked everywhere. Every output value is compared.
 */
#include "test-cuda.h"
#include "nn/backend-cuda-plan.h"

#include <math.h>
#include <oneapi/dnnl/dnnl.h>

static const EosinBackendOptions FP32 = {0};

/* Caps oneDNN at AVX2 for this test, as ONEDNN_MAX_CPU_ISA=AVX2 would: it
 * takes the cap only before its first primitive, and Criterion runs each
 * Test in a process of its own. On a CPU without AVX-512 the capped path
 * is the native one. */
static void cap_onednn_at_avx2(void) {
  cr_assert_eq(dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2), dnnl_success,
               "oneDNN's ISA was fixed before this test began (is it in a process of its own?)");
  dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  cr_assert_eq(isa & ~dnnl_cpu_isa_avx2, 0, "capped at AVX2, oneDNN dispatches to %#x",
               (unsigned) isa);
}

static float *read_f32(const char *path, size_t *n) {
  gsize len = 0;
  char *data = NULL;
  cr_assert(g_file_get_contents(path, &data, &len, NULL), "cannot read %s", path);
  *n = len / sizeof(float);
  return (float *) data;
}

/* Runs @dir/@stem.onnx (batch @batch) on @be started with @opt on
 * @stem.in.f32 and checks the output against @stem.out.f32:
 * |diff| <= @rtol max(1, max |want|). */
static void check_model(const EosinBackendOps *be, const EosinBackendOptions *opt, const char *dir,
                        const char *stem, int batch, double rtol) {
  g_autofree char *onnx = g_strdup_printf("%s/%s.onnx", dir, stem);
  g_autofree char *inp = g_strdup_printf("%s/%s.in.f32", dir, stem);
  g_autofree char *outp = g_strdup_printf("%s/%s.out.f32", dir, stem);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinModel) m = eosin_model_load(onnx, batch, &err);
  cr_assert(m, "%s", err ? err->message : "");
  size_t nin, nout;
  g_autofree float *x = read_f32(inp, &nin);
  g_autofree float *want = read_f32(outp, &nout);
  int64_t dims[6];
  int nd = eosin_model_input_shape(m, dims);
  int64_t expect_in = 1;
  for (int i = 0; i < nd; i++)
    expect_in *= dims[i];
  cr_assert_eq((int64_t) nin, expect_in, "%s: input size", stem);
  nd = eosin_model_output_shape(m, dims);
  int64_t expect_out = 1;
  for (int i = 0; i < nd; i++)
    expect_out *= dims[i];
  cr_assert_eq((int64_t) nout, expect_out, "%s: output size", stem);

  void *ctx = NULL;
  cr_assert(be->init(&ctx, opt, &err), "%s: %s", be->name, err ? err->message : "");
  for (guint i = 0; i < m->nodes->len; i++)
    cr_assert(be->supports(ctx, m, &g_array_index(m->nodes, EosinNode, i)));
  cr_assert(be->load(ctx, m, &err), "%s", err ? err->message : "");
  g_autofree float *got = g_new(float, nout);
  cr_assert(be->run(ctx, x, got, &err), "%s", err ? err->message : "");
  /* over every output value: the largest absolute difference (held to
   * rtol of the output scale) and the largest relative one, for the log */
  double worst = 0, worst_rel = 0, scale = 1;
  size_t at = 0;
  for (size_t i = 0; i < nout; i++) {
    double d = fabs(got[i] - want[i]);
    if (!(d <= worst)) /* NaN counts as the worst */
      worst = isnan(d) ? INFINITY : d, at = i;
    worst_rel = fmax(worst_rel, d / fmax(1e-6, fabs(want[i])));
    scale = fmax(scale, fabs(want[i]));
  }
  cr_expect_leq(worst, rtol * scale,
                "%s on %s%s: max |diff| over %zu values = %g at %zu (%g vs %g), allowed %g; "
                "max relative %g",
                stem, be->name, opt->fp16 ? " (fp16)" : "", nout, worst, at, got[at], want[at],
                rtol * scale, worst_rel);
  /* a second run on the same loaded model gives the same answer */
  g_autofree float *again = g_new(float, nout);
  cr_assert(be->run(ctx, x, again, &err));
  cr_expect_eq(memcmp(got, again, nout * sizeof(float)), 0, "runs are repeatable");
  be->destroy(ctx);
}

/* Outputs of the hand-built models are at most 1 in size, so 1e-4 of
 * max(1, |y|) is 1e-4 absolute. */
Test(backend, ref_cnn_matches_onnxruntime) {
  g_autofree char *dir = td("onnx");
  check_model(&_eosin_backend_ref, &FP32, dir, "tiny-cnn", 3, 1e-4);
}

Test(backend, ref_unet_matches_onnxruntime) {
  g_autofree char *dir = td("onnx");
  check_model(&_eosin_backend_ref, &FP32, dir, "tiny-unet", 3, 1e-4);
}

/* The torchvision architectures (scripts/test/export-test-models.py): Eosin's
 * output against PyTorch's computed in float64, |diff| <= rtol max(1, |y|)
 * with each model's rtol from models.tsv, at least @min_rtol. */
static void torchvision_models(const EosinBackendOps *be, const EosinBackendOptions *opt,
                               double min_rtol) {
  g_autofree char *dir = td("torch");
  g_autofree char *list = g_build_filename(dir, "models.tsv", NULL);
  g_autofree char *text = slurp(list);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  int checked = 0, absent = 0;
  for (int l = 0; lines[l] && *lines[l]; l++) {
    g_auto(GStrv) f = g_strsplit(lines[l], "\t", -1);
    cr_assert_eq(g_strv_length(f), 4, "models.tsv: %s", lines[l]);
    g_autofree char *rel = g_strdup_printf("torch/%s.onnx", f[0]);
    if (td_absent(rel)) { /* the device bundle carries a subset */
      cr_log_info("%s is not carried by the device bundle: not checked", rel);
      absent++;
      continue;
    }
    check_model(be, opt, dir, f[0], 2, fmax(min_rtol, g_ascii_strtod(f[3], NULL)));
    checked++;
  }
  if (absent && !checked)
    cr_skip_test("none of the torchvision models is carried by the device bundle: skipped");
  cr_expect_eq(checked + absent, 9, "ResNet-18/34/50, DenseNet-121, MobileNetV2/V3, EfficientNet-B0, "
                           "Inception-v3 and a U-Net");
}

Test(backend, ref_matches_pytorch_on_torchvision_architectures, .timeout = 600) {
  torchvision_models(&_eosin_backend_ref, &FP32, 0);
}

static void cpu_onnxruntime_models(void) {
  g_autofree char *dir = td("onnx");
  check_model(&_eosin_backend_cpu, &FP32, dir, "tiny-cnn", 3, 1e-4);
  check_model(&_eosin_backend_cpu, &FP32, dir, "tiny-unet", 3, 1e-4);
}

Test(backend, cpu_onednn_matches_onnxruntime) {
  cpu_onnxruntime_models();
}

Test(backend, cpu_onednn_matches_onnxruntime_avx2) {
  cap_onednn_at_avx2();
  cpu_onnxruntime_models();
}

Test(backend, cpu_onednn_matches_pytorch_on_torchvision_architectures, .timeout = 600) {
  torchvision_models(&_eosin_backend_cpu, &FP32, 0);
}

Test(backend, cpu_onednn_matches_pytorch_on_torchvision_architectures_avx2, .timeout = 600) {
  cap_onednn_at_avx2();
  torchvision_models(&_eosin_backend_cpu, &FP32, 0);
}

/* The CPU backend runs a batch as slices of a smaller one when every op is
 * per sample: batch 8 (two slices of 4) against the reference on the same
 * random input, 1e-4 of max(1, |y|). */
static void check_sliced(const char *dir_name, const char *stem) {
  g_autofree char *rel = g_strdup_printf("%s/%s.onnx", dir_name, stem);
  if (td_absent(rel)) { /* the device bundle carries a subset */
    cr_log_info("%s is not carried by the device bundle: not checked", rel);
    return;
  }
  g_autofree char *dir = td(dir_name);
  g_autofree char *onnx = g_strdup_printf("%s/%s.onnx", dir, stem);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinModel) m = eosin_model_load(onnx, 8, &err);
  cr_assert(m, "%s", err ? err->message : "");
  int64_t nin = _eosin_tensor_numel(m->tensors->pdata[m->input]);
  int64_t nout = _eosin_tensor_numel(m->tensors->pdata[m->output]);
  g_autofree float *x = g_new(float, nin);
  g_autofree float *want = g_new(float, nout);
  g_autofree float *got = g_new(float, nout);
  GRand *r = g_rand_new_with_seed(7);
  for (int64_t i = 0; i < nin; i++)
    x[i] = (float) g_rand_double_range(r, -1, 1);
  g_rand_free(r);
  const EosinBackendOps *bes[] = {&_eosin_backend_ref, &_eosin_backend_cpu};
  float *outs[] = {want, got};
  for (int b = 0; b < 2; b++) {
    void *ctx = NULL;
    cr_assert(bes[b]->init(&ctx, &(EosinBackendOptions){0}, &err));
    cr_assert(bes[b]->load(ctx, m, &err), "%s", err ? err->message : "");
    cr_assert(bes[b]->run(ctx, x, outs[b], &err), "%s", err ? err->message : "");
    bes[b]->destroy(ctx);
  }
  double worst = 0, scale = 1;
  for (int64_t i = 0; i < nout; i++) {
    worst = fmax(worst, fabs(got[i] - want[i]));
    scale = fmax(scale, fabs(want[i]));
  }
  cr_expect_leq(worst, 1e-4 * scale, "%s batch 8 on cpu-onednn: max |diff| = %g", stem, worst);
}

static void cpu_sliced_models(void) {
  check_sliced("onnx", "tiny-cnn");
  check_sliced("onnx", "tiny-unet");
  check_sliced("torch", "tiny_unet");
  check_sliced("torch", "mobilenet_v3_small");
}

Test(backend, cpu_onednn_sliced_batch_matches_ref, .timeout = 300) {
  cpu_sliced_models();
}

Test(backend, cpu_onednn_sliced_batch_matches_ref_avx2, .timeout = 300) {
  cap_onednn_at_avx2();
  cpu_sliced_models();
}

/* The CUDA backend's host-side arithmetic, checked with or without a GPU:
 * cuDNN pads both ends alike, so the rest is explicit (or trimmed when no
 * window reads it). */
Test(backend, cuda_pad_plan) {
  EosinCudaPadPlan p;
  /* symmetric 3x3, pad 1 */
  cr_assert(_eosin_cuda_pad_plan(32, 3, 1, 1, 1, 1, 32, &p));
  cr_expect(p.sym == 1 && p.pre_begin == 0 && p.pre_end == 0 && !p.overhang);
  /* TensorFlow SAME, stride 2, even input: one explicit row at the end */
  cr_assert(_eosin_cuda_pad_plan(224, 3, 2, 1, 0, 1, 112, &p));
  cr_expect(p.sym == 0 && p.pre_begin == 0 && p.pre_end == 1 && !p.overhang);
  /* the same on an odd input: the end pad is never read, so trimmed */
  cr_assert(_eosin_cuda_pad_plan(225, 3, 2, 1, 0, 1, 112, &p));
  cr_expect(p.sym == 0 && p.pre_begin == 0 && p.pre_end == 0 && !p.overhang);
  /* more at the start: the excess is explicit */
  cr_assert(_eosin_cuda_pad_plan(10, 4, 1, 1, 2, 1, 10, &p));
  cr_expect(p.sym == 1 && p.pre_begin == 1 && p.pre_end == 0, "sym %ld pre %ld/%ld",
            (long) p.sym, (long) p.pre_begin, (long) p.pre_end);
  /* dilation 2, pad 2 keeps the size */
  cr_assert(_eosin_cuda_pad_plan(32, 3, 1, 2, 2, 2, 32, &p));
  cr_expect(p.sym == 2 && p.pre_begin == 0 && p.pre_end == 0);
  /* ceil_mode pooling: the last window reaches past the input */
  cr_assert(_eosin_cuda_pad_plan(112, 3, 2, 1, 0, 0, 56, &p));
  cr_expect(p.sym == 0 && p.pre_end == 1 && p.overhang);
  /* ResNet's stem pooling, floor mode: cuDNN as is */
  cr_assert(_eosin_cuda_pad_plan(112, 3, 2, 1, 1, 1, 56, &p));
  cr_expect(p.sym == 1 && p.pre_begin == 0 && p.pre_end == 0 && !p.overhang);
  /* more outputs than the padding gives: windows past it, as ceil_mode */
  cr_assert(_eosin_cuda_pad_plan(32, 3, 1, 1, 1, 1, 33, &p));
  cr_expect(p.sym == 1 && p.pre_end == 1 && p.overhang);
  /* fewer outputs than the numbers give cannot be */
  cr_expect(!_eosin_cuda_pad_plan(32, 3, 1, 1, 1, 1, 30, &p));
  cr_expect(!_eosin_cuda_pad_plan(32, 3, 0, 1, 1, 1, 32, &p));
}

Test(backend, cuda_arena_plan) {
  /* a chain: each buffer lives from its step to the next, so two at a time */
  enum { CHAIN = 10 };
  size_t size[CHAIN], off[CHAIN];
  int first[CHAIN], last[CHAIN];
  for (int i = 0; i < CHAIN; i++)
    size[i] = 1000, first[i] = i, last[i] = i + 1;
  cr_expect_eq(_eosin_cuda_plan_arena(CHAIN, size, first, last, 256, off), 2048);
  /* random lifetimes: buffers live together never overlap, offsets aligned */
  enum { N = 300 };
  size_t rs[N], ro[N], sum = 0, biggest = 0;
  int rf[N], rl[N];
  GRand *r = g_rand_new_with_seed(7);
  for (int i = 0; i < N; i++) {
    rs[i] = g_rand_int_range(r, 0, 4) ? (size_t) g_rand_int_range(r, 1, 1 << 20) : 0;
    rf[i] = g_rand_int_range(r, -1, 200);
    rl[i] = rf[i] + g_rand_int_range(r, 0, 30);
    sum += rs[i];
    biggest = MAX(biggest, rs[i]);
  }
  g_rand_free(r);
  size_t total = _eosin_cuda_plan_arena(N, rs, rf, rl, 256, ro);
  cr_expect_geq(total, biggest);
  cr_expect_lt(total, sum, "liveness must let buffers share memory");
  for (int i = 0; i < N; i++) {
    if (!rs[i])
      continue;
    cr_expect_eq(ro[i] % 256, 0);
    cr_expect_leq(ro[i] + rs[i], total);
    for (int j = i + 1; j < N; j++)
      if (rs[j] && rf[i] <= rl[j] && rf[j] <= rl[i])
        cr_expect(ro[i] + rs[i] <= ro[j] || ro[j] + rs[j] <= ro[i],
                  "buffers %d and %d live together and overlap", i, j);
  }
}

/* EOSIN_REQUIRE_CUDA: "1" turns the CUDA tests' skips into failures. */
Test(backend, require_cuda_switch) {
  g_unsetenv("EOSIN_REQUIRE_CUDA");
  cr_expect_not(cuda_required());
  g_setenv("EOSIN_REQUIRE_CUDA", "0", TRUE);
  cr_expect_not(cuda_required());
  g_setenv("EOSIN_REQUIRE_CUDA", "1", TRUE);
  cr_expect(cuda_required());
}

#ifdef EOSIN_HAVE_CUDA
static const EosinBackendOptions FP16 = {.fp16 = true};

/* Without a GPU (here) or with a device index that does not exist, init
 * fails with a device error and a reason, leaving nothing behind. */
Test(backend, cuda_init_fails_cleanly) {
  void *ctx = (void *) 1;
  g_autoptr(GError) err = NULL;
  EosinBackendOptions opt = {.device = 1000};
  cr_assert_not(_eosin_backend_cuda.init(&ctx, &opt, &err));
  cr_assert(err && err->domain == EOSIN_ERROR && err->code == EOSIN_ERROR_DEVICE);
  cr_expect(strstr(err->message, "cuda"), "%s", err->message);
  cr_expect_null(ctx);
}

Test(backend, cuda_fp32_matches_onnxruntime) {
  require_cuda_with(NULL);
  g_autofree char *dir = td("onnx");
  check_model(&_eosin_backend_cuda, &FP32, dir, "tiny-cnn", 3, 1e-4);
  check_model(&_eosin_backend_cuda, &FP32, dir, "tiny-unet", 3, 1e-4);
}

Test(backend, cuda_fp32_matches_pytorch_on_torchvision_architectures, .timeout = 600) {
  require_cuda_with(NULL);
  torchvision_models(&_eosin_backend_cuda, &FP32, 0);
}

/* Half precision: 1e-2 of max(1, |y|). */
Test(backend, cuda_fp16_matches_onnxruntime) {
  require_cuda_with(&FP16);
  g_autofree char *dir = td("onnx");
  check_model(&_eosin_backend_cuda, &FP16, dir, "tiny-cnn", 3, 1e-2);
  check_model(&_eosin_backend_cuda, &FP16, dir, "tiny-unet", 3, 1e-2);
}

Test(backend, cuda_fp16_matches_pytorch_on_torchvision_architectures, .timeout = 600) {
  require_cuda_with(&FP16);
  torchvision_models(&_eosin_backend_cuda, &FP16, 1e-2);
}

/* run_rgb (tiles preprocessed on the GPU, the rest of the batch zero)
 * gives what _eosin_preprocess + run give, in fp32 and fp16. */
Test(backend, cuda_run_rgb_equals_preprocess_then_run) {
  require_cuda_with(NULL);
  g_autofree char *dir = td("onnx");
  g_autofree char *onnx = g_build_filename(dir, "tiny-cnn.onnx", NULL);
  g_autoptr(GError) err = NULL;
  enum { BATCH = 3, TILES = 2, SIZE = 32 };
  g_autoptr(EosinModel) m = eosin_model_load(onnx, BATCH, &err);
  cr_assert(m, "%s", err ? err->message : "");
  int64_t nout = _eosin_tensor_numel(m->tensors->pdata[m->output]);
  size_t tile = SIZE * SIZE * 3;
  g_autofree uint8_t *rgb = g_new(uint8_t, TILES * tile);
  GRand *r = g_rand_new_with_seed(3);
  for (size_t i = 0; i < TILES * tile; i++)
    rgb[i] = (uint8_t) g_rand_int_range(r, 0, 256);
  g_rand_free(r);
  EosinPreprocess pp = {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, true};
  g_autofree float *x = g_new0(float, BATCH * tile);
  _eosin_preprocess(rgb, TILES, SIZE, &pp, x);
  const EosinBackendOptions *opts[] = {&FP32, &FP16};
  for (int o = 0; o < 2; o++) {
    void *ctx = NULL;
    cr_assert(_eosin_backend_cuda.init(&ctx, opts[o], &err), "%s", err ? err->message : "");
    cr_assert(_eosin_backend_cuda.load(ctx, m, &err), "%s", err ? err->message : "");
    g_autofree float *want = g_new(float, nout);
    g_autofree float *got = g_new(float, nout);
    cr_assert(_eosin_backend_cuda.run(ctx, x, want, &err), "%s", err ? err->message : "");
    cr_assert(_eosin_backend_cuda.run_rgb(ctx, rgb, TILES, &pp, got, &err), "%s",
              err ? err->message : "");
    double worst = 0, scale = 1;
    for (int64_t i = 0; i < nout; i++) {
      worst = fmax(worst, fabs(got[i] - want[i]));
      scale = fmax(scale, fabs(want[i]));
    }
    cr_expect_leq(worst, 1e-6 * scale, "%s: run_rgb vs preprocess + run: max |diff| = %g",
                  opts[o]->fp16 ? "fp16" : "fp32", worst);
    _eosin_backend_cuda.destroy(ctx);
  }
}
/* Out of memory at load: with EOSIN_CUDA_MAX_MEMORY_MB between what
 * ResNet-18 needs at batch 1 and at batch 32, `cuda` at 32 loads at a
 * smaller batch, saying so, and runs. */
Test(backend, cuda_out_of_memory_at_load_retries_smaller, .timeout = 300) {
  require_cuda_with(NULL);
  g_autofree char *dir = td("torch");
  g_autofree char *onnx = g_build_filename(dir, "resnet18.onnx", NULL);
  g_autoptr(GError) err = NULL;
  size_t used[2];
  int batches[2] = {1, 32};
  for (int k = 0; k < 2; k++) {
    g_autoptr(EosinModel) m = eosin_model_load(onnx, batches[k], &err);
    cr_assert(m, "%s", err ? err->message : "");
    void *ctx = NULL;
    cr_assert(_eosin_backend_cuda.init(&ctx, &FP32, &err), "%s", err ? err->message : "");
    cr_assert(_eosin_backend_cuda.load(ctx, m, &err), "%s", err ? err->message : "");
    used[k] = _eosin_cuda_test_mem_used(ctx);
    _eosin_backend_cuda.destroy(ctx);
  }
  size_t mib = 1048576, cap = (used[0] + used[1]) / 2 / mib;
  cr_assert(cap * mib > used[0] && cap * mib < used[1],
            "ResNet-18 takes %zu bytes at batch 1 and %zu at 32: no whole MiB between", used[0],
            used[1]);
  g_autofree char *v = g_strdup_printf("%zu", cap);
  g_setenv("EOSIN_CUDA_MAX_MEMORY_MB", v, TRUE);
  EosinInferOptions o = {.device = "cuda", .batch = 32};
  g_autoptr(EosinInfer) inf = eosin_infer_new(onnx, &o, &err);
  cr_assert(inf, "%s", err ? err->message : "");
  g_autofree char *s = eosin_infer_summary(inf);
  cr_expect(g_str_has_prefix(s, "cuda, fp32, batch ") && !g_str_has_prefix(s, "cuda, fp32, batch 32") &&
                strstr(s, "could not load at batch 32") && strstr(s, "EOSIN_CUDA_MAX_MEMORY_MB"),
            "%s", s);
  enum { N = 3, S = 64 };
  g_autofree uint8_t *rgb = g_new0(uint8_t, N * S * S * 3);
  g_autofree float *out = g_new(float, N * eosin_infer_output_per_image(inf));
  EosinPreprocess pp = {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, false};
  cr_expect(eosin_infer_run_rgb(inf, rgb, N, &pp, out, &err), "%s", err ? err->message : "");
  /* the same cap with auto: the GPU at a smaller batch too, not the CPU */
  o.device = "auto";
  g_autoptr(EosinInfer) inf2 = eosin_infer_new(onnx, &o, &err);
  cr_assert(inf2, "%s", err ? err->message : "");
  cr_expect_str_eq(eosin_infer_backend(inf2), "cuda");
}
#endif
