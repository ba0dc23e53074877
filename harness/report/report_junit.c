/* report_junit.c: the result list and the JUnit XML report (report.h).
 *
 * Shape (validates against tests/data/junit-10-fileline.xsd: Jenkins xunit
 * plus optional file and line on testcases, which GitHub and GitLab use to
 * put an annotation on the scenario's line):
 *   <testsuites name tests failures errors time>
 *     <testsuite name tests failures errors skipped time timestamp hostname>
 *       <testcase name classname file line time>
 *         <failure message type="expectation">step: ...\n detail</failure>
 *         | <error message type="error">...</error>
 *         | <skipped message="reason"/>
 *         <system-out>scenario file: ...\n log</system-out>
 * Times are seconds with three decimals ("1.234").
 *
 * Escaping for XML 1.0. Every string goes through xml_text(), never into
 * CDATA, so "]]>" is just text ("]]&gt;"):
 * - & < > " ' become entities; in attributes also TAB, LF, CR become
 *   &#9; &#10; &#13; (attribute normalisation would otherwise turn them
 *   into spaces); in text CR becomes &#13; (parsers fold raw CR into LF);
 * - DEL and the C1 controls (U+007F..U+009F), allowed by XML 1.0 but
 *   invisible, are written as character references (&#x7F;);
 * - characters XML 1.0 forbids (C0 controls other than TAB, LF, CR;
 *   U+FFFE, U+FFFF) and invalid UTF-8 (stray or missing continuation
 *   bytes, overlong forms, encoded surrogates, > U+10FFFF) become U+FFFD,
 *   one per maximal invalid subsequence as Unicode recommends (the same
 *   count Python's bytes.decode("utf-8", "replace") gives).
 * Long fields are cut (at a character boundary) with a note saying so.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/report.h"

#define CAP_NAME (4u * 1024u)
#define CAP_MESSAGE (16u * 1024u)
#define CAP_DETAIL (256u * 1024u)
#define CAP_LOG (1024u * 1024u)
/* the document itself is bounded by the field caps; this only guards
 * against an absurd number of scenarios */
#define CAP_DOC ((size_t)1 << 31)

static const char g_fffd[] = "\xef\xbf\xbd";

/* The document being written; bad is set when memory ran out, so a
 * document with a hole in it is never returned. */
typedef struct {
  er_buf_t b;
  int bad;
} xw_t;

static void put(xw_t *w, const char *s) {
  if (er_buf_puts(&w->b, s) != 0)
    w->bad = 1;
}

static void putn(xw_t *w, const void *p, size_t n) {
  if (er_buf_append(&w->b, p, n) != 0)
    w->bad = 1;
}

static void putf(xw_t *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void putf(xw_t *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (er_buf_vprintf(&w->b, fmt, ap) != 0)
    w->bad = 1;
  va_end(ap);
}

/* A copy with the recorded secrets (util.h) replaced by "***". */
static char *dup_or_null(const char *s, int *oom) {
  char *d;
  if (!s)
    return NULL;
  d = strdup(s);
  if (!d)
    *oom = 1;
  else
    er_secret_redact(d);
  return d;
}

void er_step_recs_free(er_step_rec_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].phase);
    free(v[i].name);
    free(v[i].last_seen);
  }
  free(v);
}

static void result_free(er_result_t *r) {
  free(r->classname);
  free(r->name);
  free(r->file);
  free(r->relfile);
  er_step_recs_free(r->steps, r->nsteps);
  free(r->message);
  free(r->failed_step);
  free(r->detail);
  free(r->log);
  memset(r, 0, sizeof *r);
}

int er_results_add(er_results_t *rs, const er_result_t *r) {
  er_result_t c;
  int oom = 0;
  if (rs->n == rs->alloc) {
    size_t na = rs->alloc ? rs->alloc * 2 : 16;
    er_result_t *nv = realloc(rs->v, na * sizeof *nv);
    if (!nv)
      return -1;
    rs->v = nv;
    rs->alloc = na;
  }
  memset(&c, 0, sizeof c);
  c.status = r->status;
  c.duration_ms = r->duration_ms;
  c.line = r->line;
  c.classname = dup_or_null(r->classname, &oom);
  c.name = dup_or_null(r->name, &oom);
  c.file = dup_or_null(r->file, &oom);
  c.relfile = dup_or_null(r->relfile, &oom);
  c.message = dup_or_null(r->message, &oom);
  c.failed_step = dup_or_null(r->failed_step, &oom);
  c.detail = dup_or_null(r->detail, &oom);
  c.log = dup_or_null(r->log, &oom);
  if (r->nsteps && !oom) {
    c.steps = calloc(r->nsteps, sizeof *c.steps);
    oom = !c.steps;
    for (size_t i = 0; c.steps && i < r->nsteps; i++) {
      c.steps[i] = r->steps[i];
      c.steps[i].phase = dup_or_null(r->steps[i].phase, &oom);
      c.steps[i].name = dup_or_null(r->steps[i].name, &oom);
      c.steps[i].last_seen = dup_or_null(r->steps[i].last_seen, &oom);
      c.nsteps = i + 1;
    }
  }
  if (oom) {
    result_free(&c);
    return -1;
  }
  rs->v[rs->n++] = c;
  return 0;
}

void er_results_free(er_results_t *rs) {
  for (size_t i = 0; i < rs->n; i++)
    result_free(&rs->v[i]);
  free(rs->v);
  rs->v = NULL;
  rs->n = rs->alloc = 0;
}

static int xml_char_ok(long cp) {
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

/* Appends s[0..n) escaped (see the top of the file). */
static void xml_esc(xw_t *b, const char *s, size_t n, int attr) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    long cp;
    size_t k = er_utf8_next(p + i, n - i, &cp);
    if (cp < 0 || !xml_char_ok(cp)) {
      put(b, g_fffd);
    } else if (cp == '&') {
      put(b, "&amp;");
    } else if (cp == '<') {
      put(b, "&lt;");
    } else if (cp == '>') {
      put(b, "&gt;");
    } else if (cp == '"') {
      put(b, "&quot;");
    } else if (cp == '\'') {
      put(b, "&apos;");
    } else if (cp == '\r' || (attr && (cp == '\n' || cp == '\t'))) {
      putf(b, "&#%ld;", cp);
    } else if (cp >= 0x7F && cp <= 0x9F) {
      putf(b, "&#x%lX;", cp);
    } else {
      putn(b, p + i, k);
    }
    i += k;
  }
}

/* Escapes at most cap bytes of s (cut back to a character start) and
 * notes what was cut. */
static void xml_field(xw_t *b, const char *s, size_t cap, int attr) {
  char *red = strdup(s); /* secrets out before escaping and cutting */
  size_t n, cut;
  if (!red) {
    b->bad = 1;
    return;
  }
  er_secret_redact(red);
  s = red;
  n = cut = strlen(s);
  if (n > cap) {
    cut = cap;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
      cut--;
  }
  xml_esc(b, s, cut, attr);
  if (cut < n)
    putf(b, "%s[... %zu more bytes cut by eventrig]", attr ? " " : "\n",
         n - cut);
  free(red);
}

static void attr(xw_t *b, const char *name, const char *val, size_t cap) {
  putf(b, " %s=\"", name);
  xml_field(b, val ? val : "", cap, 1);
  put(b, "\"");
}

static void secs(char out[32], int64_t ms) {
  if (ms < 0)
    ms = 0;
  snprintf(out, 32, "%lld.%03lld", (long long)(ms / 1000),
           (long long)(ms % 1000));
}

/* <failure>/<error> body: the failing step, then what was expected and
 * last seen (or the one-line message when there is no detail). */
static void problem(xw_t *b, const char *tag, const char *type,
                    const er_result_t *r) {
  putf(b, "      <%s", tag);
  attr(b, "message", r->message ? r->message : "", CAP_MESSAGE);
  attr(b, "type", type, CAP_NAME);
  put(b, ">");
  if (r->failed_step) {
    put(b, "step: ");
    xml_field(b, r->failed_step, CAP_NAME, 0);
    put(b, "\n");
  }
  if (r->detail)
    xml_field(b, r->detail, CAP_DETAIL, 0);
  else if (r->message)
    xml_field(b, r->message, CAP_MESSAGE, 0);
  putf(b, "</%s>\n", tag);
}

char *er_junit_render(const er_results_t *rs) {
  xw_t b = {ER_BUF_INIT(CAP_DOC), 0};
  size_t fails = 0, errors = 0, skips = 0;
  int64_t total = 0, wall;
  const char *suite = rs->suite_name[0] ? rs->suite_name : "eventrig";
  char ts[40], host[256], t[32];
  char *out = NULL;

  for (size_t i = 0; i < rs->n; i++) {
    fails += rs->v[i].status == ER_RES_FAIL;
    errors += rs->v[i].status == ER_RES_ERROR;
    skips += rs->v[i].status == ER_RES_SKIP;
    if (rs->v[i].duration_ms > 0)
      total += rs->v[i].duration_ms;
  }
  /* suite time: wall time since the run started (er_now_ms clock) when
   * known, never less than the sum of the scenarios */
  wall = rs->started_ms > 0 ? er_now_ms() - rs->started_ms : 0;
  if (wall > total)
    total = wall;
  if (rs->timestamp[0])
    snprintf(ts, sizeof ts, "%s", rs->timestamp);
  else
    er_rfc3339_now(ts);
  if (gethostname(host, sizeof host) != 0)
    snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  secs(t, total);

  put(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
  attr(&b, "name", suite, CAP_NAME);
  putf(&b,
       " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" "
       "time=\"%s\">\n  <testsuite",
       rs->n, fails, errors, t);
  attr(&b, "name", suite, CAP_NAME);
  putf(&b,
       " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" "
       "skipped=\"%zu\" time=\"%s\"",
       rs->n, fails, errors, skips, t);
  attr(&b, "timestamp", ts, CAP_NAME);
  attr(&b, "hostname", host, CAP_NAME);
  put(&b, ">\n");

  for (size_t i = 0; i < rs->n; i++) {
    const er_result_t *r = &rs->v[i];
    put(&b, "    <testcase");
    attr(&b, "name", r->name ? r->name : "(unnamed)", CAP_NAME);
    attr(&b, "classname", r->classname ? r->classname : suite, CAP_NAME);
    if (r->relfile || r->file) {
      attr(&b, "file", r->relfile ? r->relfile : r->file, CAP_NAME);
      putf(&b, " line=\"%d\"", r->line > 0 ? r->line : 1);
    }
    secs(t, r->duration_ms);
    putf(&b, " time=\"%s\">\n", t);
    switch (r->status) {
    case ER_RES_FAIL:
      problem(&b, "failure", "expectation", r);
      break;
    case ER_RES_ERROR:
      problem(&b, "error", "error", r);
      break;
    case ER_RES_SKIP:
      put(&b, "      <skipped");
      if (r->message)
        attr(&b, "message", r->message, CAP_MESSAGE);
      put(&b, "/>\n");
      break;
    case ER_RES_PASS:
      break;
    }
    if (r->file || r->log) {
      put(&b, "      <system-out>");
      if (r->file) {
        put(&b, "scenario file: ");
        xml_field(&b, r->file, CAP_NAME, 0);
        put(&b, "\n");
      }
      if (r->log)
        xml_field(&b, r->log, CAP_LOG, 0);
      put(&b, "</system-out>\n");
    }
    put(&b, "    </testcase>\n");
  }
  put(&b, "  </testsuite>\n</testsuites>\n");
  /* a cut document would not be XML: report nothing rather than that */
  if (!b.bad && !b.b.truncated && b.b.data)
    out = er_buf_steal(&b.b);
  er_buf_free(&b.b);
  return out;
}

int er_junit_write(const er_results_t *rs, const char *path, er_err_t *err) {
  char *xml = er_junit_render(rs);
  int rc;
  if (!xml)
    return er_errf(err, ER_E_ENV,
                   "%s: cannot render the JUnit report "
                   "(out of memory)",
                   path);
  rc = er_write_file_atomic(path, xml, strlen(xml), err);
  free(xml);
  return rc;
}
