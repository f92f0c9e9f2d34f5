/*
 * test-backend.c — backends against ONNX Runtime: the test models run on
 * every available backend with the fixed input scripts/onnx-reference.py
 * fed ONNX Runtime, and the outputs must agree to 1e-4 (fp32).
 */
#include "test-util.h"

#include "../src/backend.h"

#include <math.h>

static float *read_f32(const char *path, size_t *n) {
  gsize len = 0;
  char *data = NULL;
  cr_assert(g_file_get_contents(path, &data, &len, NULL), "cannot read %s", path);
  *n = len / sizeof(float);
  return (float *) data;
}

/* Runs @dir/@stem.onnx (batch @batch) on @be with @stem.in.f32 and checks
 * the output against @stem.out.f32: |diff| <= @rtol max(1, max |want|). */
static void check_model(const EosinBackendOps *be, const char *dir, const char *stem, int batch,
                        double rtol) {
  g_autofree char *onnx = g_strdup_printf("%s/%s.onnx", dir, stem);
  g_autofree char *inp = g_strdup_printf("%s/%s.in.f32", dir, stem);
  g_autofree char *outp = g_strdup_printf("%s/%s.out.f32", dir, stem);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinModel) m = eosin_model_load(onnx, batch, &err);
  cr_assert(m, "%s", err ? err->message : "");
  size_t nin, nout;
  g_autofree float *x = read_f32(inp, &nin);
  g_autofree float *want = read_f32(outp, &nout);
  int64_t d[6];
  int nd = eosin_model_input_shape(m, d);
  int64_t expect_in = 1;
  for (int i = 0; i < nd; i++)
    expect_in *= d[i];
  cr_assert_eq((int64_t) nin, expect_in, "%s: input size", stem);
  nd = eosin_model_output_shape(m, d);
  int64_t expect_out = 1;
  for (int i = 0; i < nd; i++)
    expect_out *= d[i];
  cr_assert_eq((int64_t) nout, expect_out, "%s: output size", stem);

  void *ctx = NULL;
  cr_assert(be->init(&ctx, &(EosinBackendOptions){0}, &err), "%s: %s", be->name, err ? err->message : "");
  for (guint i = 0; i < m->nodes->len; i++)
    cr_assert(be->supports(ctx, m, &g_array_index(m->nodes, EosinNode, i)));
  cr_assert(be->load(ctx, m, &err), "%s", err ? err->message : "");
  g_autofree float *got = g_new(float, nout);
  cr_assert(be->run(ctx, x, got, &err), "%s", err ? err->message : "");
  double worst = 0, scale = 1;
  for (size_t i = 0; i < nout; i++) {
    worst = fmax(worst, fabs(got[i] - want[i]));
    scale = fmax(scale, fabs(want[i]));
  }
  cr_expect_leq(worst, rtol * scale, "%s on %s: max |diff| = %g, allowed %g", stem, be->name,
                worst, rtol * scale);
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
  check_model(&_eosin_backend_ref, dir, "tiny-cnn", 3, 1e-4);
}

Test(backend, ref_unet_matches_onnxruntime) {
  g_autofree char *dir = td("onnx");
  check_model(&_eosin_backend_ref, dir, "tiny-unet", 3, 1e-4);
}

/* The torchvision architectures (scripts/export-test-models.py): Eosin's
 * output against PyTorch's computed in float64, |diff| <= rtol max(1, |y|). */
static void torchvision_models(const EosinBackendOps *be) {
  g_autofree char *dir = td("torch");
  g_autofree char *list = g_build_filename(dir, "models.tsv", NULL);
  g_autofree char *text = slurp(list);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  int checked = 0;
  for (int l = 0; lines[l] && *lines[l]; l++) {
    g_auto(GStrv) f = g_strsplit(lines[l], "\t", -1);
    cr_assert_eq(g_strv_length(f), 4, "models.tsv: %s", lines[l]);
    check_model(be, dir, f[0], 2, g_ascii_strtod(f[3], NULL));
    checked++;
  }
  cr_expect_eq(checked, 9, "ResNet-18/34/50, DenseNet-121, MobileNetV2/V3, EfficientNet-B0, "
                           "Inception-v3 and a U-Net");
}

Test(backend, ref_matches_pytorch_on_torchvision_architectures, .timeout = 600) {
  torchvision_models(&_eosin_backend_ref);
}

Test(backend, cpu_onednn_matches_onnxruntime) {
  g_autofree char *dir = td("onnx");
  check_model(&_eosin_backend_cpu, dir, "tiny-cnn", 3, 1e-4);
  check_model(&_eosin_backend_cpu, dir, "tiny-unet", 3, 1e-4);
}

Test(backend, cpu_onednn_matches_pytorch_on_torchvision_architectures, .timeout = 600) {
  torchvision_models(&_eosin_backend_cpu);
}

/* The CPU backend runs a batch as slices of a smaller one when every op is
 * per sample: batch 8 (two slices of 4) against the reference on the same
 * random input, 1e-4 of max(1, |y|). */
static void check_sliced(const char *dir_name, const char *stem) {
  g_autofree char *dir = td(dir_name);
  g_autofree char *onnx = g_strdup_printf("%s/%s.onnx", dir, stem);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinModel) m = eosin_model_load(onnx, 8, &err);
  cr_assert(m, "%s", err ? err->message : "");
  int64_t d[6], nin = 1, nout = 1;
  int nd = eosin_model_input_shape(m, d);
  for (int i = 0; i < nd; i++)
    nin *= d[i];
  nd = eosin_model_output_shape(m, d);
  for (int i = 0; i < nd; i++)
    nout *= d[i];
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

Test(backend, cpu_onednn_sliced_batch_matches_ref, .timeout = 300) {
  check_sliced("onnx", "tiny-cnn");
  check_sliced("onnx", "tiny-unet");
  check_sliced("torch", "tiny_unet");
  check_sliced("torch", "mobilenet_v3_small");
}
