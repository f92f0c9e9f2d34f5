/*
 * test-model.c — the ONNX loader and graph preparation on small models
 * built by scripts/test/make-test-onnx.py: every intermediate shape equals ONNX's
 * own shape inference, BatchNormalization is folded into the convolution
 * before it, and each broken model gets its own clear error. The ops the
 * reference once got wrong (Softmax's default axis before opset 13, Resize
 * by non-integer scales) run on the reference and CPU backends against
 * ONNX Runtime's outputs (ort-ops.tsv, scripts/reference/onnx-reference.py).
 */
#include "test-cuda.h"

#include "nn/backend.h"
#include "nn/graph-private.h"

#include <math.h>
#include <oneapi/dnnl/dnnl.h>

static char *model_path(const char *name) {
  g_autofree char *dir = td("onnx");
  return g_build_filename(dir, name, NULL);
}

/* Compares every tensor listed in @name.shapes.tsv with Eosin's shape. */
static void check_shapes(const char *name, int batch) {
  g_autofree char *path = model_path(name);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinModel) m = eosin_model_load(path, batch, &err);
  cr_assert(m, "%s", err ? err->message : "");
  g_autofree char *stem = g_strndup(name, strlen(name) - strlen(".onnx"));
  g_autofree char *tsv_name = g_strconcat(stem, ".shapes.tsv", NULL);
  g_autofree char *tsv = model_path(tsv_name);
  g_autofree char *text = slurp(tsv);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  int checked = 0;
  for (int i = 0; lines[i] && *lines[i]; i++) {
    g_auto(GStrv) f = g_strsplit(lines[i], "\t", 2);
    gpointer v = g_hash_table_lookup(m->by_name, f[0]);
    cr_assert(v, "%s: tensor %s unknown to Eosin", name, f[0]);
    const EosinTensor *t = m->tensors->pdata[GPOINTER_TO_INT(v) - 1];
    g_auto(GStrv) dims = g_strsplit(f[1], ",", -1);
    cr_assert_eq(t->ndim, (int) g_strv_length(dims), "%s: %s rank", name, f[0]);
    for (int d = 0; d < t->ndim; d++) {
      if (!strcmp(dims[d], "?"))
        continue;
      int64_t want = !strcmp(dims[d], "N") ? batch : g_ascii_strtoll(dims[d], NULL, 10);
      cr_expect_eq(t->dims[d], want, "%s: %s dim %d is %ld, ONNX says %ld", name, f[0], d,
                   (long) t->dims[d], (long) want);
    }
    checked++;
  }
  cr_expect_gt(checked, 10);
}

Test(model, shapes_match_onnx_inference_cnn) {
  check_shapes("tiny-cnn.onnx", 1);
  check_shapes("tiny-cnn.onnx", 7);
}

Test(model, shapes_match_onnx_inference_unet) {
  check_shapes("tiny-unet.onnx", 4);
}

Test(model, batchnorm_folded_into_conv) {
  g_autofree char *path = model_path("tiny-cnn.onnx");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinModel) m = eosin_model_load(path, 2, &err);
  cr_assert(m, "%s", err ? err->message : "");
  cr_expect_eq(eosin_model_n_folded(m), 2);
  cr_expect_eq(eosin_model_n_nodes(m), 11, "13 nodes less the 2 folded");
  int64_t d[6];
  cr_assert_eq(eosin_model_input_shape(m, d), 4);
  cr_expect(d[0] == 2 && d[1] == 3 && d[2] == 32 && d[3] == 32);
  cr_assert_eq(eosin_model_output_shape(m, d), 2);
  cr_expect(d[0] == 2 && d[1] == 2);
  /* the first convolution now writes what the normalisation wrote, with
   * w' = w s / sqrt(v + eps), b' = (b - mean) s / sqrt(v + eps) + beta */
  for (guint i = 0; i < m->nodes->len; i++) {
    const EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (n->op != EOSIN_OP_CONV || strcmp(((EosinTensor *) m->tensors->pdata[n->out])->name, "b1"))
      continue;
    gpointer s = g_hash_table_lookup(m->by_name, "bn1_s"), v = g_hash_table_lookup(m->by_name, "bn1_v");
    gpointer w = g_hash_table_lookup(m->by_name, "c1_w");
    const EosinTensor *ts = m->tensors->pdata[GPOINTER_TO_INT(s) - 1];
    const EosinTensor *tv = m->tensors->pdata[GPOINTER_TO_INT(v) - 1];
    const EosinTensor *tw = m->tensors->pdata[GPOINTER_TO_INT(w) - 1];
    const EosinTensor *nw = m->tensors->pdata[n->in[1]];
    double k = ts->data[3] / sqrt(tv->data[3] + 1e-5);
    cr_expect_float_eq(nw->data[3 * 27 + 5], tw->data[3 * 27 + 5] * k, 1e-6);
    return;
  }
  cr_assert_fail("no convolution writes b1 after folding");
}

Test(model, broken_models_give_their_own_errors) {
  g_autofree char *list = model_path("bad-models.tsv");
  g_autofree char *text = slurp(list);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  int n = 0;
  for (int i = 0; lines[i] && *lines[i]; i++, n++) {
    g_auto(GStrv) f = g_strsplit(lines[i], "\t", 2);
    g_autofree char *path = model_path(f[0]);
    g_autoptr(GError) err = NULL;
    g_autoptr(EosinModel) m = eosin_model_load(path, 4, &err);
    cr_expect_null(m, "%s loaded", f[0]);
    if (!err)
      continue;
    cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_MODEL), "%s: %s", f[0], err->message);
    cr_expect(strstr(err->message, f[1]), "%s: '%s' lacks '%s'", f[0], err->message, f[1]);
    cr_expect(strstr(err->message, f[0]), "names the file: %s", err->message);
  }
  cr_expect_eq(n, 13, "every broken model of scripts/test/make-test-onnx.py");
  g_autoptr(GError) err = NULL;
  g_autofree char *missing = model_path("no-such.onnx");
  cr_expect_null(eosin_model_load(missing, 1, &err));
  /* a model that cannot be read is a model error: exit 2, like a bad config */
  cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_MODEL));
}

Test(model, fixed_batch_must_match) {
  g_autofree char *path = model_path("tiny-cnn.onnx");
  g_autoptr(GError) err = NULL;
  cr_expect_null(eosin_model_load(path, 0, &err), "batch 0 is refused");
}

Test(model, softmax_default_axis_follows_the_opset) {
  static const struct { const char *name; int64_t axis; } cases[] = {
      {"tiny-softmax-opset11.onnx", 1},       /* opset <= 12: 1 (then C*H*W together) */
      {"tiny-softmax-opset11-axis2.onnx", 2}, /* as given */
      {"tiny-softmax-opset13.onnx", 3},       /* opset 13: -1, the last */
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *path = model_path(cases[i].name);
    g_autoptr(GError) err = NULL;
    g_autoptr(EosinModel) m = eosin_model_load(path, 1, &err);
    cr_assert(m, "%s", err ? err->message : "");
    const EosinNode *n = &g_array_index(m->nodes, EosinNode, 0);
    cr_expect_eq(n->a.axis, cases[i].axis, "%s: axis %ld", cases[i].name, (long) n->a.axis);
  }
}

/* Runs every case of ort-ops.tsv (batch 3, as ONNX Runtime ran it) on @be
 * with @opt (NULL: defaults): the output shape and every value must equal
 * ONNX Runtime's, to @tol. */
static void ort_ops_with(const EosinBackendOps *be, const EosinBackendOptions *opt, double tol) {
  g_autofree char *list = model_path("ort-ops.tsv");
  g_autofree char *text = slurp(list);
  g_auto(GStrv) cases = g_strsplit(text, "\n", -1);
  g_autoptr(GString) failures = g_string_new(NULL);
  int checked = 0;
  for (char **c = cases; *c && **c; c++, checked++) {
    g_autofree char *stem = model_path(*c);
    g_autofree char *onnx = g_strconcat(stem, ".onnx", NULL);
    g_autofree char *inp = g_strconcat(stem, ".in.f32", NULL);
    g_autofree char *outp = g_strconcat(stem, ".out.f32", NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(EosinModel) m = eosin_model_load(onnx, 3, &err);
    if (!m) {
      g_string_append_printf(failures, "\n  %s: %s", *c, err->message);
      continue;
    }
    g_autofree char *x = NULL, *want = NULL;
    gsize nin = 0, nout = 0;
    cr_assert(g_file_get_contents(inp, &x, &nin, NULL) && g_file_get_contents(outp, &want, &nout, NULL));
    nin /= 4, nout /= 4;
    const EosinTensor *y = m->tensors->pdata[m->output];
    cr_assert_eq((gsize) _eosin_tensor_numel(m->tensors->pdata[m->input]), nin, "%s: input", *c);
    if ((gsize) _eosin_tensor_numel(y) != nout) {
      g_string_append_printf(failures, "\n  %s: %ld values, ONNX Runtime has %zu (shape %ldx%ld)",
                             *c, (long) _eosin_tensor_numel(y), (size_t) nout, (long) y->dims[2],
                             (long) y->dims[3]);
      continue;
    }
    void *ctx = NULL;
    EosinBackendOptions none = {0};
    cr_assert(be->init(&ctx, opt ? opt : &none, &err), "%s: %s", be->name,
              err ? err->message : "");
    g_autofree float *got = g_new0(float, nout);
    bool ok = be->load(ctx, m, &err) && be->run(ctx, (const float *) x, got, &err);
    be->destroy(ctx);
    cr_assert(ok, "%s on %s: %s", *c, be->name, err ? err->message : "");
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < nout; i++)
      if (fabs(got[i] - ((float *) want)[i]) > worst)
        worst = fabs(got[i] - ((float *) want)[i]), at = i;
    if (worst > tol)
      g_string_append_printf(failures, "\n  %s: max |diff| %g at %zu (%g, ONNX Runtime %g)", *c,
                             worst, at, got[at], ((float *) want)[at]);
  }
  cr_expect_eq(checked, 15, "every case of ort-ops.tsv");
  cr_expect_eq(failures->len, 0, "%s differs from ONNX Runtime:%s", be->name, failures->str);
}

static void ort_ops_on(const EosinBackendOps *be) {
  ort_ops_with(be, NULL, 1e-5);
}

Test(model, ref_matches_onnxruntime_on_softmax_and_resize) {
  ort_ops_on(&_eosin_backend_ref);
}

Test(model, cpu_matches_onnxruntime_on_softmax_and_resize) {
  ort_ops_on(&_eosin_backend_cpu);
}

/* oneDNN capped at AVX2 (takes only before its first primitive; Criterion
 * runs each Test in a process of its own), the path of CPUs without AVX-512 */
Test(model, cpu_matches_onnxruntime_on_softmax_and_resize_avx2) {
  cr_assert_eq(dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2), dnnl_success);
  ort_ops_on(&_eosin_backend_cpu);
}

#ifdef EOSIN_HAVE_CUDA
/* The CUDA kernels against ONNX Runtime too (their Resize once used out/in
 * like the reference): fp32 to 1e-4, fp16 to 1e-2. Skips without a GPU
 * unless EOSIN_REQUIRE_CUDA=1. */
Test(model, cuda_matches_onnxruntime_on_softmax_and_resize) {
  require_cuda_with(NULL);
  ort_ops_with(&_eosin_backend_cuda, NULL, 1e-4);
}

Test(model, cuda_fp16_matches_onnxruntime_on_softmax_and_resize) {
  EosinBackendOptions fp16 = {.fp16 = true};
  require_cuda_with(&fp16);
  ort_ops_with(&_eosin_backend_cuda, &fp16, 1e-2);
}
#endif
