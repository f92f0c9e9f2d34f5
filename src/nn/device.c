/*
 * device.c — the grammar of a device string ("auto", "cpu", "ref", "cuda",
 * "cuda:N"), in one place: the config loader ([model] device), the command
 * line (--device) and inference (EosinInferOptions.device) all call
 * eosin_device_parse, so a value that passes the first two is one
 * inference accepts, with one bound on N (EOSIN_DEVICE_MAX_GPU).
 */
#include "nn/eosin-nn.h"
#include "eosin.h"

#include <string.h>

/* Sets *@out (the caller's) or *@err; nothing else is allocated. */
bool eosin_device_parse(const char *s, EosinDevice *out, GError **err) {
  *out = (EosinDevice){.kind = EOSIN_DEVICE_AUTO, .gpu = 0};
  if (!s || !strcmp(s, "auto"))
    return true;
  if (!strcmp(s, "cpu"))
    return out->kind = EOSIN_DEVICE_CPU, true;
  if (!strcmp(s, "ref")) /* the plain-C reference: slow, for checking */
    return out->kind = EOSIN_DEVICE_REF, true;
  if (!strcmp(s, "cuda"))
    return out->kind = EOSIN_DEVICE_CUDA, true;
  /* "cuda:" and one or two decimal digits: no sign, space or other base
   * (strtol would take " 5" and "+5") */
  const char *p = g_str_has_prefix(s, "cuda:") ? s + 5 : NULL;
  size_t digits = p ? strspn(p, "0123456789") : 0;
  if (digits >= 1 && digits <= 2 && !p[digits]) {
    int n = digits == 1 ? p[0] - '0' : (p[0] - '0') * 10 + (p[1] - '0');
    if (n <= EOSIN_DEVICE_MAX_GPU) {
      out->kind = EOSIN_DEVICE_CUDA;
      out->gpu = n;
      return true;
    }
  }
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "device '%s': expected " EOSIN_DEVICE_GRAMMAR,
              s);
  return false;
}
