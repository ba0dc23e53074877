/* report_console.c: the human-readable progress on the terminal
 * (report.h).
 *
 * Plain, greppable lines:
 *   PASS  name (1.234s)
 *   FAIL  name (20.003s)
 *         file: scenarios/dup.json
 *         step: await one essay row
 *         expected ...          (the detail, each line indented)
 *         last seen ...
 *   ERROR name (12ms)
 *   SKIP  name - reason
 *   3 passed, 1 failed, 0 errors, 1 skipped in 41.2s
 * Colour (the status word and the summary) as er_color_decide says:
 * --color=always|never, FORCE_COLOR, NO_COLOR, else only on a terminal. Text
 * from outside (names, details, logs) is printed with control characters shown
 * as \xNN / \u00NN, so a reply cannot drive the terminal, bytes that are not
 * UTF-8 as \xNN (the output is always valid UTF-8), and with every recorded
 * secret (util.h) shown as "***".
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/report.h"

#define C_RESET "\033[0m"
#define C_GREEN "\033[32m"
#define C_RED "\033[31m"
#define C_BOLDRED "\033[1;31m"
#define C_YELLOW "\033[33m"
#define INDENT "      "

bool er_color_decide(er_color_t mode, FILE *out) {
  const char *fc = getenv("FORCE_COLOR");
  const char *nc = getenv("NO_COLOR");
  const char *term = getenv("TERM");
  if (mode == ER_COLOR_ALWAYS)
    return true;
  if (mode == ER_COLOR_NEVER || !out)
    return false;
  if (fc && *fc)
    return strcmp(fc, "0") != 0 && strcmp(fc, "false") != 0;
  return isatty(fileno(out)) && !(nc && nc[0]) &&
         !(term && strcmp(term, "dumb") == 0);
}

void er_console_init(er_console_t *c, FILE *out) {
  c->out = out;
  c->verbose = false;
  c->color = er_color_decide(ER_COLOR_AUTO, out);
}

/* er_utf8_safe_write with every recorded secret (util.h) as "***". */
static void safe_write(FILE *f, const char *s, size_t n) {
  char *cp = malloc(n + 1);
  if (!cp) {
    fputs("(out of memory)", f);
    return;
  }
  memcpy(cp, s, n);
  cp[n] = '\0';
  er_secret_redact(cp); /* text after a NUL byte is not printed */
  er_utf8_safe_write(f, cp, strlen(cp));
  free(cp);
}

static void safe_puts(FILE *f, const char *s) {
  if (s)
    safe_write(f, s, strlen(s));
}

/* Every line of text, indented. */
static void indented(FILE *f, const char *text) {
  const char *p = text;
  while (p && *p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n && p[n - 1] == '\r')
      n--;
    fputs(INDENT, f);
    safe_write(f, p, n);
    fputc('\n', f);
    p = nl ? nl + 1 : NULL;
  }
}

static void status_word(er_console_t *c, const char *word, const char *col) {
  /* padded to the width of "ERROR" so names line up */
  if (c->color)
    fprintf(c->out, "%s%s%s%*s ", col, word, C_RESET, (int)(5 - strlen(word)),
            "");
  else
    fprintf(c->out, "%-5s ", word);
}

void er_console_scenario_start(er_console_t *c, const char *name) {
  if (!c->out || !c->verbose)
    return;
  fputs("RUN   ", c->out);
  safe_puts(c->out, name);
  fputc('\n', c->out);
  fflush(c->out);
}

void er_console_result(er_console_t *c, const er_result_t *r) {
  char dur[32];
  const char *name = r->name ? r->name : "(unnamed)";
  if (!c->out)
    return;
  er_fmt_duration(r->duration_ms < 0 ? 0 : r->duration_ms, dur);
  switch (r->status) {
  case ER_RES_PASS:
    status_word(c, "PASS", C_GREEN);
    break;
  case ER_RES_FAIL:
    status_word(c, "FAIL", C_RED);
    break;
  case ER_RES_ERROR:
    status_word(c, "ERROR", C_BOLDRED);
    break;
  case ER_RES_SKIP:
    status_word(c, "SKIP", C_YELLOW);
    safe_puts(c->out, name);
    if (r->message && r->message[0]) {
      fputs(" - ", c->out);
      safe_puts(c->out, r->message);
    }
    fputc('\n', c->out);
    fflush(c->out);
    return;
  }
  safe_puts(c->out, name);
  fprintf(c->out, " (%s)\n", dur);
  if (r->status == ER_RES_FAIL || r->status == ER_RES_ERROR) {
    if (r->file) {
      fputs(INDENT "file: ", c->out);
      safe_puts(c->out, r->file);
      fputc('\n', c->out);
    }
    if (r->failed_step) {
      fputs(INDENT "step: ", c->out);
      safe_puts(c->out, r->failed_step);
      fputc('\n', c->out);
    }
    if (r->detail && r->detail[0])
      indented(c->out, r->detail);
    else if (r->message && r->message[0])
      indented(c->out, r->message);
  }
  fflush(c->out);
}

void er_console_summary(er_console_t *c, const er_results_t *rs,
                        int64_t wall_ms) {
  size_t pass = 0, fail = 0, err = 0, skip = 0;
  if (!c->out)
    return;
  for (size_t i = 0; i < rs->n; i++) {
    switch (rs->v[i].status) {
    case ER_RES_PASS:
      pass++;
      break;
    case ER_RES_FAIL:
      fail++;
      break;
    case ER_RES_ERROR:
      err++;
      break;
    case ER_RES_SKIP:
      skip++;
      break;
    }
  }
  if (wall_ms < 0)
    wall_ms = 0;
  if (c->color)
    fputs(fail || err ? C_RED : C_GREEN, c->out);
  fprintf(c->out,
          "%zu passed, %zu failed, %zu errors, %zu skipped in %lld.%llds", pass,
          fail, err, skip, (long long)(wall_ms / 1000),
          (long long)(wall_ms % 1000 / 100));
  if (c->color)
    fputs(C_RESET, c->out);
  fputc('\n', c->out);
  fflush(c->out);
}
