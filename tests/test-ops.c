/*
 * test-ops.c — every operator alone (and the op pairs backends fuse) on
 * every backend this build has, against the plain-C reference, on the
 * single-op models of scripts/test/make-test-ops.py with a fixed random input:
 * what ggml's test-backend-ops does. A backend that cannot start here (no
 * GPU) is skipped with its reason (a failure with EOSIN_REQUIRE_CUDA=1);
 * the CPU backend always runs, on the ISA oneDNN picks here and again
 * capped at AVX2 (the _avx2 tests), so both of its paths are checked on
 * any x86-64 machine. CUDA runs every case in fp32 (1e-4) and fp16 (1e-2),
 * a ConvTranspose with asymmetric pads, and the trial run's fallbacks
 * (unfused convolution, next algorithm, own pooling kernel) forced by its
 * test hooks.
 */
#include "test-cuda.h"

#include "nn/backend-cpu.h"

#include <math.h>

/* How a case runs on a backend: options, the CUDA test hooks to set
 * between init and load (0: none), and what the trial run then moved. */
typedef struct {
  EosinBackendOptions opt;
  unsigned refuse;
  int unfused, next_algo, own_pool;
} RunSetup;

static float *run_on(const EosinBackendOps *be, const EosinModel *m, const float *x,
                     size_t nout, RunSetup *rs, GError **err) {
  void *ctx = NULL;
  RunSetup none = {0};
  rs = rs ? rs : &none;
  if (!be->init(&ctx, &rs->opt, err)) {
    if (ctx)
      be->destroy(ctx);
    return NULL;
  }
#ifdef EOSIN_HAVE_CUDA
  if (be == &_eosin_backend_cuda && rs->refuse)
    _eosin_cuda_test_refuse(ctx, rs->refuse);
#endif
  float *y = g_new0(float, nout);
  bool ok = be->load(ctx, m, err);
#ifdef EOSIN_HAVE_CUDA
  if (ok && be == &_eosin_backend_cuda)
    _eosin_cuda_test_fallbacks(ctx, &rs->unfused, &rs->next_algo, &rs->own_pool);
#endif
  ok = ok && be->run(ctx, x, y, err);
  be->destroy(ctx);
  if (!ok)
    g_clear_pointer(&y, g_free);
  return y;
}

/* The batch-2 input of every case: fixed random values in [-2, 2]. */
static float *case_input(const EosinModel *m, size_t *nin) {
  *nin = _eosin_tensor_numel(m->tensors->pdata[m->input]);
  float *x = g_new(float, *nin);
  GRand *r = g_rand_new_with_seed(42);
  for (size_t i = 0; i < *nin; i++)
    x[i] = (float) g_rand_double_range(r, -2, 2);
  g_rand_free(r);
  return x;
}

/* Runs @m (case @name) on @be set up by @rs and on the reference; appends
 * to @failures when any value differs by more than @tol max(1, |ref|). */
static void check_case(const EosinBackendOps *be, const EosinModel *m, const char *name,
                       RunSetup *rs, double tol, GString *failures) {
  g_autoptr(GError) err = NULL;
  size_t nin, nout = _eosin_tensor_numel(m->tensors->pdata[m->output]);
  g_autofree float *x = case_input(m, &nin);
  g_autofree float *want = run_on(&_eosin_backend_ref, m, x, nout, NULL, &err);
  cr_assert(want, "%s on ref: %s", name, err ? err->message : "");
  g_autofree float *got = run_on(be, m, x, nout, rs, &err);
  if (!got) {
    g_string_append_printf(failures, "\n  %s: %s", name, err ? err->message : "failed");
    return;
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
  if (worst > tol)
    g_string_append_printf(failures, "\n  %s: element %zu of %zu: %s%s %.7g, ref %.7g", name,
                           at, nout, be->name, rs && rs->opt.fp16 ? " (fp16)" : "", got[at],
                           want[at]);
}

static EosinModel *load_case(const char *name) {
  g_autofree char *dir = td("ops");
  g_autofree char *path = g_strdup_printf("%s/%s.onnx", dir, name);
  g_autoptr(GError) err = NULL;
  EosinModel *m = eosin_model_load(path, 2, &err);
  cr_assert(m, "%s: %s", name, err ? err->message : "");
  return m;
}

/* Runs every case on @be (with @opt) and the reference; |diff| <= @tol
 * max(1, |ref|) for every value. */
static void check_backend_with(const EosinBackendOps *be, const EosinBackendOptions *opt,
                               double tol) {
  g_autofree char *dir = td("ops");
  g_autofree char *list_path = g_build_filename(dir, "ops.tsv", NULL);
  g_autofree char *list = slurp(list_path);
  g_auto(GStrv) cases = g_strsplit(list, "\n", -1);
  int checked = 0;
  g_autoptr(GString) failures = g_string_new(NULL);
  for (char **c = cases; *c && **c; c++) {
    g_autoptr(EosinModel) m = load_case(*c);
    RunSetup rs = {.opt = *opt};
    check_case(be, m, *c, &rs, tol, failures);
    checked++;
  }
  cr_expect_eq(failures->len, 0, "%s%s differs from the reference:%s", be->name,
               opt->fp16 ? " (fp16)" : "", failures->str);
  cr_expect_geq(checked, 40, "every op case ran (%d)", checked);
}

static void check_backend(const EosinBackendOps *be) {
  check_backend_with(be, &(EosinBackendOptions){0}, 1e-4);
}

/* The ISA oneDNN dispatches to in this process, in the classes that decide
 * the CPU backend's plan: nChw8c activations and Eosin's Winograd below
 * AVX-512, nChw16c and oneDNN's own Winograd from it on. Asking fixes the
 * ISA for the rest of the process. */
typedef enum { ISA_PRE_AVX2, ISA_AVX2, ISA_AVX512 } IsaClass;

static IsaClass onednn_isa(void) {
  dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ||
      (isa & dnnl_cpu_isa_avx512_mic) == dnnl_cpu_isa_avx512_mic)
    return ISA_AVX512;
  return (isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2 ? ISA_AVX2 : ISA_PRE_AVX2;
}

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

Test(ops, cpu_onednn_equals_reference_op_by_op) {
  g_unsetenv("EOSIN_CPU_WINOGRAD"); /* the default path, whatever the caller set */
  check_backend(&_eosin_backend_cpu);
}

Test(ops, cpu_onednn_equals_reference_op_by_op_avx2) {
  cap_onednn_at_avx2();
  g_unsetenv("EOSIN_CPU_WINOGRAD");
  check_backend(&_eosin_backend_cpu);
}

/* What the CPU backend's plan for an ops case is made of. */
typedef struct {
  int wino;       /* steps run as Eosin's Winograd */
  int prims;      /* steps run as oneDNN primitives */
  int refs;       /* of those, oneDNN's reference implementations */
  int convs;      /* of those, convolutions */
  int dnnl_wino;  /* of those, oneDNN's own Winograd */
} CpuPlan;

static CpuPlan cpu_plan_of(const char *name) {
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
  CpuPlan p = {0};
  for (guint i = 0; i < c->steps->len; i++) {
    const CpuStep *s = &g_array_index(c->steps, CpuStep, i);
    p.wino += s->wino != NULL;
    const_dnnl_primitive_desc_t pd;
    const char *impl = "";
    dnnl_primitive_kind_t kind = dnnl_undefined_primitive;
    if (!s->prim)
      continue;
    p.prims++;
    cr_assert_eq(dnnl_primitive_get_primitive_desc(s->prim, &pd), dnnl_success);
    cr_assert_eq(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl), dnnl_success);
    cr_assert_eq(dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, &kind), dnnl_success);
    p.refs += !strncmp(impl, "ref", 3);
    p.convs += kind == dnnl_convolution;
    p.dnnl_wino += kind == dnnl_convolution && strstr(impl, "wino") != NULL;
  }
  _eosin_backend_cpu.destroy(ctx);
  return p;
}

/* A Relu between a convolution and its residual Add is a post-op order
 * oneDNN's AVX2 kernels lack: the convolution must not fall to oneDNN's
 * reference implementation for it (100x slower), but run its own kernel
 * with the Relu and the Add as steps of their own (or, wide enough, as
 * Winograd with both folded in). */
static void check_relu_before_residual_add(void) {
  g_unsetenv("EOSIN_CPU_WINOGRAD");
  CpuPlan p = cpu_plan_of("conv-relu-add");
  cr_expect_eq(p.refs, 0, "conv-relu-add: %d steps on oneDNN's reference", p.refs);
  cr_expect_geq(p.prims, 3, "conv-relu-add: the Relu and the Add are steps (%d)", p.prims);
  g_setenv("EOSIN_CPU_WINOGRAD", "0", TRUE);
  p = cpu_plan_of("conv3x3-wide-relu-add");
  cr_expect_eq(p.refs, 0, "conv3x3-wide-relu-add (direct): %d steps on the reference", p.refs);
}

Test(ops, cpu_relu_before_residual_add_avoids_the_reference_kernel) {
  check_relu_before_residual_add();
}

Test(ops, cpu_relu_before_residual_add_avoids_the_reference_kernel_avx2) {
  cap_onednn_at_avx2();
  check_relu_before_residual_add();
}

/* The wide 3x3 cases that check_backend holds to the reference take the
 * Winograd path of the ISA oneDNN dispatches to. Below AVX-512 (nChw8c)
 * they are Eosin's Winograd, not oneDNN's direct kernel, with Pad, Clip,
 * Relu and the residual Add folded into its step. From AVX-512 on
 * (nChw16c) they are oneDNN's own Winograd with the Relu and the residual
 * sum as its post-ops, but for the one with a Clip, which it lacks: that
 * is oneDNN's direct kernel with the Clip fused. Narrow ones and
 * EOSIN_CPU_WINOGRAD=0 are oneDNN's direct kernel everywhere. */
static void check_wide_3x3_plan(void) {
  IsaClass isa = onednn_isa();
  if (isa == ISA_PRE_AVX2)
    cr_skip_test("oneDNN runs below AVX2 here (%#x): not a path this checks",
                 (unsigned) dnnl_get_effective_cpu_isa());
  g_unsetenv("EOSIN_CPU_WINOGRAD");
  static const char *cases[] = {"conv3x3-wide", "conv3x3-wide-add-relu", "conv3x3-wide-pad-clip",
                                "conv3x3-wide-relu-add", "conv3x3-wide-shared"};
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    CpuPlan p = cpu_plan_of(cases[i]);
    cr_expect_eq(p.refs, 0, "%s: %d steps on oneDNN's reference", cases[i], p.refs);
    if (isa == ISA_AVX2) {
      cr_expect_eq(p.wino, 1, "%s: %d Winograd steps", cases[i], p.wino);
      cr_expect_eq(p.convs, 0, "%s: %d oneDNN convolutions besides it", cases[i], p.convs);
      /* the only primitives are layout reorders: in, out, and the residual
       * cases' copy of their addend (the sum writes over it) */
      bool residual = i == 1 || i == 3;
      cr_expect_leq(p.prims, residual ? 3 : 2, "%s: %d oneDNN steps besides it", cases[i],
                    p.prims);
    } else {
      bool clip = i == 2;
      cr_expect_eq(p.wino, 0, "%s: Eosin's Winograd on nChw16c", cases[i]);
      cr_expect_eq(p.convs, 1, "%s: %d oneDNN convolutions", cases[i], p.convs);
      cr_expect_eq(p.dnnl_wino, !clip, "%s: %d of them oneDNN's Winograd", cases[i],
                   p.dnnl_wino);
      /* besides it, the reorders in and out (and the residual cases' copy
       * of their addend): nothing left unfused */
      bool residual = i == 1 || i == 3;
      cr_expect_leq(p.prims, residual ? 4 : 3, "%s: %d oneDNN steps", cases[i], p.prims);
    }
  }
  CpuPlan p = cpu_plan_of("conv3x3"); /* 8 channels: direct */
  cr_expect_eq(p.wino + p.dnnl_wino, 0, "conv3x3 (8 channels) ran as Winograd");
  cr_expect_eq(p.convs, 1, "conv3x3: %d oneDNN convolutions", p.convs);
  g_setenv("EOSIN_CPU_WINOGRAD", "0", TRUE);
  p = cpu_plan_of("conv3x3-wide");
  cr_expect_eq(p.wino + p.dnnl_wino, 0, "EOSIN_CPU_WINOGRAD=0 left a Winograd step");
  cr_expect_eq(p.convs, 1, "conv3x3-wide (direct): %d oneDNN convolutions", p.convs);
}

Test(ops, cpu_runs_wide_3x3_convolutions_as_winograd) {
  check_wide_3x3_plan();
}

Test(ops, cpu_runs_wide_3x3_convolutions_as_winograd_avx2) {
  cap_onednn_at_avx2();
  check_wide_3x3_plan();
}

/* conv-transpose-pad (3x3, stride 2, pads 1, output_padding 1) made
 * asymmetric with the same output size: pads only at the end (top/left 0,
 * bottom/right 1) or only at the start, output_padding 0. */
static EosinModel *asymmetric_conv_transpose(bool at_start) {
  EosinModel *m = load_case("conv-transpose-pad");
  int found = 0;
  for (guint i = 0; i < m->nodes->len; i++) {
    EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (n->op != EOSIN_OP_CONV_TRANSPOSE)
      continue;
    int64_t pads[4] = {at_start, at_start, !at_start, !at_start};
    memcpy(n->a.pads, pads, sizeof pads);
    n->a.output_padding[0] = n->a.output_padding[1] = 0;
    found++;
  }
  cr_assert_eq(found, 1);
  return m;
}

/* The reference and the CPU backend agree on it, so the case checks CUDA's
 * crop from the larger symmetric output against a trusted answer. */
Test(ops, asymmetric_conv_transpose_on_cpu) {
  g_autoptr(GString) failures = g_string_new(NULL);
  for (int start = 0; start < 2; start++) {
    g_autoptr(EosinModel) m = asymmetric_conv_transpose(start);
    check_case(&_eosin_backend_cpu, m, start ? "pads at the start" : "pads at the end", NULL,
               1e-4, failures);
  }
  cr_expect_eq(failures->len, 0, "%s", failures->str);
}

#ifdef EOSIN_HAVE_CUDA
Test(ops, cuda_equals_reference_op_by_op) {
  require_cuda_with(NULL);
  check_backend(&_eosin_backend_cuda);
}

/* Half precision, every case: 1e-2 of max(1, |ref|), as whole models. */
Test(ops, cuda_fp16_equals_reference_op_by_op) {
  EosinBackendOptions fp16 = {.fp16 = true};
  require_cuda_with(&fp16);
  check_backend_with(&_eosin_backend_cuda, &fp16, 1e-2);
}

Test(ops, cuda_asymmetric_conv_transpose) {
  require_cuda_with(NULL);
  g_autoptr(GString) failures = g_string_new(NULL);
  for (int start = 0; start < 2; start++)
    for (int half = 0; half < 2; half++) {
      g_autoptr(EosinModel) m = asymmetric_conv_transpose(start);
      RunSetup rs = {.opt.fp16 = half};
      check_case(&_eosin_backend_cuda, m, start ? "pads at the start" : "pads at the end", &rs,
                 half ? 1e-2 : 1e-4, failures);
    }
  cr_expect_eq(failures->len, 0, "%s", failures->str);
}

/* The trial run's fallbacks, forced: a refused fused convolution runs
 * unfused, a refused first algorithm moves to the next, refused cuDNN
 * pooling runs on the own kernel; each still equals the reference. */
Test(ops, cuda_trial_run_fallbacks) {
  require_cuda_with(NULL);
  static const struct {
    const char *name;
    unsigned refuse;
    int unfused, next_algo, own_pool;
  } cases[] = {
      {"conv-relu", EOSIN_CUDA_REFUSE_FUSED, 1, 0, 0},
      {"conv3x3", EOSIN_CUDA_REFUSE_FIRST_ALGO, 0, 1, 0},
      {"conv-relu", EOSIN_CUDA_REFUSE_FUSED | EOSIN_CUDA_REFUSE_FIRST_ALGO, 1, 1, 0},
      {"maxpool3x3-s2-p1", EOSIN_CUDA_REFUSE_POOL, 0, 0, 1},
      {"avgpool2x2", EOSIN_CUDA_REFUSE_POOL, 0, 0, 1},
  };
  g_autoptr(GString) failures = g_string_new(NULL);
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
    for (int half = 0; half < 2; half++) {
      g_autoptr(EosinModel) m = load_case(cases[i].name);
      RunSetup rs = {.opt.fp16 = half, .refuse = cases[i].refuse};
      check_case(&_eosin_backend_cuda, m, cases[i].name, &rs, half ? 1e-2 : 1e-4, failures);
      /* a case whose step cuDNN could not take as is has nothing to move */
      cr_expect(rs.unfused == cases[i].unfused && rs.next_algo == cases[i].next_algo &&
                    rs.own_pool == cases[i].own_pool,
                "%s%s: moved %d unfused, %d to the next algorithm, %d to the own pooling "
                "kernel; expected %d, %d, %d",
                cases[i].name, half ? " (fp16)" : "", rs.unfused, rs.next_algo, rs.own_pool,
                cases[i].unfused, cases[i].next_algo, cases[i].own_pool);
    }
  cr_expect_eq(failures->len, 0, "%s", failures->str);
}
#endif
