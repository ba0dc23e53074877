/* diag_standin.h: a recording stand-in for the loader's diagnostics, for
 * integration tests that call actions' validate() callbacks directly.
 * er_diag_error/er_diag_warn belong to the loader (lang/validate.c). Weak, so
 * the real ones win if the loader is linked in; the tests only use the
 * recording below while they are not. Include once, in one test file. */
#ifndef ER_DIAG_STANDIN_H
#define ER_DIAG_STANDIN_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lang/jsonpath.h"
#include "lang/jsonx.h"
#include "run/exec.h"

struct er_diag {
  int errors, warnings;
  char paths[1024];
  char msgs[4096];
};

__attribute__((weak)) void er_diag_error(er_diag_t *d, const char *path,
                                         const char *fmt, ...) {
  va_list ap;
  size_t n = strlen(d->msgs);
  d->errors++;
  if (n && n + 2 < sizeof d->msgs) {
    strcat(d->msgs, "; ");
    n += 2;
  }
  snprintf(d->paths + strlen(d->paths), sizeof d->paths - strlen(d->paths),
           "[%s]", path);
  va_start(ap, fmt);
  vsnprintf(d->msgs + n, sizeof d->msgs - n, fmt, ap);
  va_end(ap);
}

__attribute__((weak)) void er_diag_warn(er_diag_t *d, const char *path,
                                        const char *fmt, ...) {
  (void)fmt;
  d->warnings++;
  snprintf(d->paths + strlen(d->paths), sizeof d->paths - strlen(d->paths),
           "(%s)", path);
}

/* er_diag_matcher/er_diag_select as the loader has them, recorded through
 * the stand-in above (the problem's place appended to the path). */
__attribute__((weak)) void er_diag_matcher(er_diag_t *d, const char *path,
                                           const json_t *m) {
  char msg[512], at[512], full[1100];
  if (!m || er_json_matcher_check_at(m, msg, sizeof msg, at, sizeof at) == 0)
    return;
  snprintf(full, sizeof full, "%s%s", path, at);
  er_diag_error(d, full, "%s", msg);
}

/* files are not looked for here */
__attribute__((weak)) void er_diag_file(er_diag_t *d, const char *path,
                                        const char *name) {
  (void)d;
  (void)path;
  (void)name;
}

__attribute__((weak)) void er_diag_select(er_diag_t *d, const char *path,
                                          const char *sel) {
  char msg[512];
  if (er_select_check(sel, msg, sizeof msg))
    er_diag_error(d, path, "%s", msg);
}

#endif
