/*
 * test-ops.c — every operator alone (and the op pairs backends fuse) on
 * every backend this build has, against the plain-C reference, on the
 * single-op models of scripts/make-test-ops.py with a fixed random input:
 * what ggml's test-backend-ops does. A backend that cannot start here (no
 * GPU) is skipped with its reason; the CPU backend always runs.
 */
#include "test-util.h"

#include "../src/backend-cpu.h"

#include <math.h>

static float *run_on(const EosinBackendOps *be, const EosinModel *m, const float *x,
                     size_t nout, GError **err) {
  void *ctx = NULL;
  EosinBackendOptions opt = {0};
  if (!be->init(&ctx, &opt, err)) {
    if (ctx)
      be->destroy(ctx);
    return NULL;
  }
  float *y = g_new0(float, nout);
  bool ok = be->load(ctx, m, err) && be->run(ctx, x, y, err);
  be->destroy(ctx);
  if (!ok)
    g_clear_pointer(&y, g_free);
  return y;
}

/* Runs every case on @be and the reference; |diff| <= 1e-4 max(1, |ref|). */
static void check_backend(const EosinBackendOps *be) {
  g_autofree char *dir = td("ops");
  g_autofree char *list_path = g_build_filename(dir, "ops.tsv", NULL);
  g_autofree char *list = slurp(list_path);
  g_auto(GStrv) cases = g_strsplit(list, "\n", -1);
  int checked = 0;
  g_autoptr(GString) failures = g_string_new(NULL);
  for (char **c = cases; *c && **c; c++) {
    g_autofree char *path = g_strdup_printf("%s/%s.onnx", dir, *c);
    g_autoptr(GError) err = NULL;
    g_autoptr(EosinModel) m = eosin_model_load(path, 2, &err);
    cr_assert(m, "%s: %s", *c, err ? err->message : "");
    size_t nin = _eosin_tensor_numel(m->tensors->pdata[m->input]);
    size_t nout = _eosin_tensor_numel(m->tensors->pdata[m->output]);
    g_autofree float *x = g_new(float, nin);
    GRand *r = g_rand_new_with_seed(42);
    for (size_t i = 0; i < nin; i++)
      x[i] = (float) g_rand_double_range(r, -2, 2);
    g_rand_free(r);
    g_autofree float *want = run_on(&_eosin_backend_ref, m, x, nout, &err);
    cr_assert(want, "%s on ref: %s", *c, err ? err->message : "");
    g_autofree float *got = run_on(be, m, x, nout, &err);
    if (!got) {
      g_string_append_printf(failures, "\n  %s: %s", *c, err ? err->message : "failed");
      continue;
    }
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < nout; i++) {
      double diff = fabs(got[i] - want[i]) / fmax(1.0, fabs(want[i]));
      if (!(diff <= worst)) {  /* NaN counts as the worst */
        worst = isnan(diff) ? INFINITY : diff;
        at = i;
      }
    }
    if (worst > 1e-4)
      g_string_append_printf(failures, "\n  %s: element %zu: %s %.7g, ref %.7g", *c, at,
                             be->name, got[at], want[at]);
    checked++;
  }
  cr_expect_eq(failures->len, 0, "%s differs from the reference:%s", be->name, failures->str);
  cr_expect_geq(checked, 40, "every op case ran (%d)", checked);
}

Test(ops, cpu_onednn_equals_reference_op_by_op) {
  g_unsetenv("EOSIN_CPU_WINOGRAD"); /* the default path, whatever the caller set */
  check_backend(&_eosin_backend_cpu);
}

/* How many steps of the CPU backend's plan for ops case @name run as
 * Winograd, how many as oneDNN primitives, and how many of those are
 * oneDNN's reference implementations (@refs may be NULL). */
static void cpu_plan_of(const char *name, int *wino, int *prims, int *refs) {
  g_autofree char *dir = td("ops");
  g_autofree char *path = g_strdup_printf("%s/%s.onnx", dir, name);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinModel) m = eosin_model_load(path, 2, &err);
  cr_assert(m, "%s: %s", name, err ? err->message : "");
  void *ctx = NULL;
  EosinBackendOptions opt = {0};
  cr_assert(_eosin_backend_cpu.init(&ctx, &opt, &err));
  cr_assert(_eosin_backend_cpu.load(ctx, m, &err), "%s: %s", name, err ? err->message : "");
  const CpuCtx *c = ctx;
  *wino = *prims = 0;
  if (refs)
    *refs = 0;
  for (guint i = 0; i < c->steps->len; i++) {
    const CpuStep *s = &g_array_index(c->steps, CpuStep, i);
    *wino += s->wino != NULL;
    *prims += s->prim != NULL;
    const_dnnl_primitive_desc_t pd;
    const char *impl = "";
    if (s->prim && refs && dnnl_primitive_get_primitive_desc(s->prim, &pd) == dnnl_success &&
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success)
      *refs += !strncmp(impl, "ref", 3);
  }
  _eosin_backend_cpu.destroy(ctx);
}

/* A Relu between a convolution and its residual Add is a post-op order
 * oneDNN's AVX2 kernels lack: the convolution must not fall to oneDNN's
 * reference implementation for it (100x slower), but run its own kernel
 * with the Relu and the Add as steps of their own (or, wide enough, as
 * Winograd with both folded in). */
Test(ops, cpu_relu_before_residual_add_avoids_the_reference_kernel) {
  g_unsetenv("EOSIN_CPU_WINOGRAD");
  int wino, prims, refs;
  cpu_plan_of("conv-relu-add", &wino, &prims, &refs);
  cr_expect_eq(refs, 0, "conv-relu-add: %d steps on oneDNN's reference", refs);
  cr_expect_geq(prims, 3, "conv-relu-add: the Relu and the Add are steps (%d)", prims);
  g_setenv("EOSIN_CPU_WINOGRAD", "0", TRUE);
  cpu_plan_of("conv3x3-wide-relu-add", &wino, &prims, &refs);
  cr_expect_eq(refs, 0, "conv3x3-wide-relu-add (direct): %d steps on the reference", refs);
}

/* The wide 3x3 cases that check_backend holds to the reference are the
 * Winograd path, not oneDNN's direct one (on a CPU with AVX2; without it
 * they run direct and this is skipped), with Pad, Clip, Relu and the
 * residual Add folded into its step; EOSIN_CPU_WINOGRAD=0 turns it off. */
Test(ops, cpu_runs_wide_3x3_convolutions_as_winograd) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    cr_skip_test("no AVX2 here: Winograd is not used");
  g_unsetenv("EOSIN_CPU_WINOGRAD");
  static const char *cases[] = {"conv3x3-wide", "conv3x3-wide-add-relu", "conv3x3-wide-pad-clip",
                                "conv3x3-wide-relu-add", "conv3x3-wide-shared"};
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    int wino, prims;
    cpu_plan_of(cases[i], &wino, &prims, NULL);
    cr_expect_eq(wino, 1, "%s: %d Winograd steps", cases[i], wino);
    /* the only primitives are layout reorders: in, out, and the residual
     * cases' copy of their addend (the sum writes over it) */
    bool residual = i == 1 || i == 3;
    cr_expect_leq(prims, residual ? 3 : 2, "%s: %d oneDNN steps besides it", cases[i], prims);
  }
  int wino, prims;
  cpu_plan_of("conv3x3", &wino, &prims, NULL); /* 8 channels: direct */
  cr_expect_eq(wino, 0, "conv3x3 (8 channels) ran as Winograd");
  g_setenv("EOSIN_CPU_WINOGRAD", "0", TRUE);
  cpu_plan_of("conv3x3-wide", &wino, &prims, NULL);
  cr_expect_eq(wino, 0, "EOSIN_CPU_WINOGRAD=0 left a Winograd step");
}

#ifdef EOSIN_HAVE_CUDA
Test(ops, cuda_equals_reference_op_by_op) {
  void *ctx = NULL;
  g_autoptr(GError) err = NULL;
  EosinBackendOptions opt = {0};
  if (!_eosin_backend_cuda.init(&ctx, &opt, &err))
    cr_skip_test("no CUDA device here: %s", err ? err->message : "init failed");
  _eosin_backend_cuda.destroy(ctx);
  check_backend(&_eosin_backend_cuda);
}
#endif
