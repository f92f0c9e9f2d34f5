/*
 * test-cuda.h — how the CUDA tests (test-backend.c, test-ops.c,
 * test-infer.c) decide to run: they skip, naming the reason, where the
 * CUDA backend cannot start (no GPU, no driver), unless EOSIN_REQUIRE_CUDA=1
 * (scripts/device-check, a GPU machine in CI) turns that skip into a
 * failure with the same reason, so a broken GPU setup cannot pass vacuously.
 */
#pragma once

#include "test-util.h"

#include "nn/backend.h"

/* Whether EOSIN_REQUIRE_CUDA asks for the CUDA backend: unset, "" or "0"
 * no, "1" yes; any other value fails the test, naming it. */
static inline bool cuda_required(void) {
  const char *v = g_getenv("EOSIN_REQUIRE_CUDA");
  if (!v || !*v || !strcmp(v, "0"))
    return false;
  cr_assert_str_eq(v, "1", "EOSIN_REQUIRE_CUDA='%s': expected 0 or 1", v);
  return true;
}

#ifdef EOSIN_HAVE_CUDA
/* Skips the current test (or, with EOSIN_REQUIRE_CUDA=1, fails it) unless
 * the CUDA backend starts here with @opt (NULL: fp32 on cuda:0). */
static inline void require_cuda_with(const EosinBackendOptions *opt) {
  EosinBackendOptions fp32 = {0};
  void *ctx = NULL;
  g_autoptr(GError) err = NULL;
  if (_eosin_backend_cuda.init(&ctx, opt ? opt : &fp32, &err)) {
    _eosin_backend_cuda.destroy(ctx);
    return;
  }
  const char *why = err ? err->message : "init failed without a reason";
  if (cuda_required())
    cr_assert_fail("EOSIN_REQUIRE_CUDA=1, but the CUDA backend does not start: %s", why);
  cr_skip_test("the CUDA backend does not start here (EOSIN_REQUIRE_CUDA=1 makes this a "
               "failure): %s",
               why);
}
#endif
