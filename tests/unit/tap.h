/* tap.h: the smallest test helper. Each check prints "ok N - what" or
 * "not ok N - what (file:line)"; tests/run.sh counts the lines.
 * A test binary's main ends with `return t_done();`. */
#ifndef ER_TAP_H
#define ER_TAP_H

#include <stdio.h>

static int t_n, t_failed;

#define T_OK(cond, ...)                                                        \
  do {                                                                         \
    int t_c_ = (cond) ? 1 : 0;                                                 \
    t_n++;                                                                     \
    printf("%sok %d - ", t_c_ ? "" : "not ", t_n);                             \
    printf(__VA_ARGS__);                                                       \
    if (!t_c_) {                                                               \
      t_failed++;                                                              \
      printf(" (%s:%d)", __FILE__, __LINE__);                                  \
    }                                                                          \
    printf("\n");                                                              \
    fflush(stdout);                                                            \
  } while (0)

/* string equality with both values shown on failure */
#define T_STREQ(got, want, ...)                                                \
  do {                                                                         \
    const char *t_g_ = (got), *t_w_ = (want);                                  \
    int t_e_ = t_g_ && t_w_ && strcmp(t_g_, t_w_) == 0;                        \
    T_OK(t_e_, __VA_ARGS__);                                                   \
    if (!t_e_)                                                                 \
      printf("#   got:  %s\n#   want: %s\n", t_g_ ? t_g_ : "(null)",           \
             t_w_ ? t_w_ : "(null)");                                          \
  } while (0)

static inline int t_done(void) { return t_failed ? 1 : 0; }

#endif
