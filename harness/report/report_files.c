/* report_files.c: the --json and --html reports (report.h).
 *
 * JSON (version 1), for other tools:
 *   {"version": 1, "suite": "eventrig", "timestamp": "...", "time_s": 4.2,
 *    "counts": {"tests", "passed", "failed", "errors", "skipped"},
 *    "scenarios": [{"name", "classname", "file", "line", "status":
 *      "passed"|"failed"|"error"|"skipped", "time_s", "message",
 *      "failed_step", "verdict", "detail", "log",
 *      "steps": [{"phase", "index", "name", "line", "start_s", "time_s",
 *                 "status": "ok"|"failed"|"error"|"fatal", "polls",
 *                 "last_seen"}]}]}
 * (absent values are null). HTML: one self-contained file (no script, no
 * network): the summary, each scenario with its steps on a timeline
 * (bars placed by start and length, polls and the last value seen in the
 * bar's title and row), failures opened with their verdict, detail and
 * log. Both are rewritten atomically after every scenario, like JUnit, and
 * every text in them has its recorded secrets replaced by "***".
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"
#include "report/report.h"

static const char *status_word(er_res_status_t s) {
  switch (s) {
  case ER_RES_PASS:
    return "passed";
  case ER_RES_FAIL:
    return "failed";
  case ER_RES_ERROR:
    return "error";
  case ER_RES_SKIP:
    return "skipped";
  }
  return "?";
}

static const char *step_word(int st) {
  static const char *const w[] = {"ok", "failed", "error", "fatal"};
  return st >= 0 && st <= 3 ? w[st] : "?";
}

/* A scrubbed copy of s (recorded secrets as "***"), or NULL. */
static char *scrub(const char *s) {
  char *c = s ? er_strdup(s) : NULL;
  if (c)
    er_secret_redact(c);
  return c;
}

/* The "verdict: ..." line of a failure's detail, without the prefix. */
static char *verdict_of(const char *detail) {
  const char *p = detail;
  while (p && *p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    const char *q = p;
    while (q < p + n && *q == ' ')
      q++;
    if (!strncmp(q, "verdict: ", 9)) {
      char *v = malloc((size_t)(p + n - q - 9) + 1);
      if (v) {
        memcpy(v, q + 9, (size_t)(p + n - q - 9));
        v[p + n - q - 9] = '\0';
      }
      return v;
    }
    p = nl ? nl + 1 : NULL;
  }
  return NULL;
}

/* ---- JSON ------------------------------------------------------------------
 */

/* A scrubbed copy of s with invalid UTF-8 as U+FFFD (jansson wants valid
 * UTF-8), or NULL. */
static char *clean(const char *s) {
  char *c = scrub(s);
  er_buf_t b = ER_BUF_INIT(64u * 1024u * 1024u);
  const unsigned char *p = (const unsigned char *)c;
  size_t n = c ? strlen(c) : 0, i = 0;
  if (!c)
    return NULL;
  while (i < n) {
    long cp;
    size_t k = er_utf8_next(p + i, n - i, &cp);
    if (cp < 0)
      er_buf_puts(&b, "\xEF\xBF\xBD");
    else
      er_buf_append(&b, p + i, k);
    i += k;
  }
  free(c);
  return b.len || !n ? (b.data ? er_buf_steal(&b) : er_strdup("")) : NULL;
}

static json_t *jstr(const char *s) {
  char *c = clean(s);
  json_t *j = c ? json_string(c) : json_null();
  free(c);
  return j ? j : json_null();
}

static json_t *steps_json(const er_result_t *r) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < r->nsteps; i++) {
    const er_step_rec_t *s = &r->steps[i];
    json_array_append_new(
        a, json_pack("{s:o,s:i,s:o,s:i,s:f,s:f,s:s,s:i,s:o}", "phase",
                     jstr(s->phase), "index", s->index, "name", jstr(s->name),
                     "line", s->line, "start_s", (double)s->start_ms / 1000.0,
                     "time_s", (double)s->time_ms / 1000.0, "status",
                     step_word(s->status), "polls", s->polls, "last_seen",
                     jstr(s->last_seen)));
  }
  return a;
}

static json_t *results_json(const er_results_t *rs, size_t *counts) {
  json_t *sc = json_array(), *doc;
  double total = 0;
  for (size_t i = 0; sc && i < rs->n; i++) {
    const er_result_t *r = &rs->v[i];
    char *v = verdict_of(r->detail);
    counts[r->status]++;
    total += (double)r->duration_ms / 1000.0;
    json_array_append_new(
        sc, json_pack("{s:o,s:o,s:o,s:i,s:s,s:f,s:o,s:o,s:o,s:o,s:o,s:o}",
                      "name", jstr(r->name), "classname", jstr(r->classname),
                      "file", jstr(r->relfile ? r->relfile : r->file), "line",
                      r->line, "status", status_word(r->status), "time_s",
                      (double)r->duration_ms / 1000.0, "message",
                      jstr(r->message), "failed_step", jstr(r->failed_step),
                      "verdict", jstr(v), "detail", jstr(r->detail), "log",
                      jstr(r->log), "steps", steps_json(r)));
    free(v);
  }
  if (rs->started_ms > 0)
    total = (double)(er_now_ms() - rs->started_ms) / 1000.0;
  doc = json_pack("{s:i,s:s,s:s,s:f,s:{s:i,s:i,s:i,s:i,s:i},s:o}", "version", 1,
                  "suite", rs->suite_name[0] ? rs->suite_name : "eventrig",
                  "timestamp", rs->timestamp, "time_s", total, "counts",
                  "tests", (int)rs->n, "passed", (int)counts[ER_RES_PASS],
                  "failed", (int)counts[ER_RES_FAIL], "errors",
                  (int)counts[ER_RES_ERROR], "skipped",
                  (int)counts[ER_RES_SKIP], "scenarios", sc ? sc : json_null());
  return doc;
}

int er_json_report_write(const er_results_t *rs, const char *path,
                         er_err_t *err) {
  size_t counts[4] = {0};
  json_t *doc = results_json(rs, counts);
  char *text =
      doc ? er_json_dumps(doc, JSON_INDENT(1) | JSON_ENSURE_ASCII) : NULL;
  int rc = -1;
  if (!text)
    er_errf(err, ER_E_ENV, "JSON report: out of memory");
  else
    rc = er_write_file_atomic(path, text, strlen(text), err);
  free(text);
  json_decref(doc);
  return rc;
}

/* ---- HTML ------------------------------------------------------------------
 */

/* s as HTML text: markup escaped, invalid UTF-8 and control characters
 * (but newline and tab) as U+FFFD. */
static void html_text(er_buf_t *b, const char *s) {
  char *c = scrub(s);
  const unsigned char *p = (const unsigned char *)(c ? c : "");
  size_t n = strlen((const char *)p), i = 0;
  while (i < n) {
    long cp;
    size_t k = er_utf8_next(p + i, n - i, &cp);
    if (cp < 0 || (cp < 0x20 && cp != '\n' && cp != '\t') ||
        (cp >= 0x7F && cp <= 0x9F))
      er_buf_puts(b, "\xEF\xBF\xBD");
    else if (cp == '&')
      er_buf_puts(b, "&amp;");
    else if (cp == '<')
      er_buf_puts(b, "&lt;");
    else if (cp == '>')
      er_buf_puts(b, "&gt;");
    else if (cp == '"')
      er_buf_puts(b, "&quot;");
    else if (cp == '\'')
      er_buf_puts(b, "&#39;");
    else
      er_buf_append(b, p + i, k);
    i += k;
  }
  free(c);
}

static const char g_css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "h1{font-size:1.4em}.summary{font-size:1.1em}"
    "section{border:1px solid #ccc;border-radius:4px;margin:.6em 0;padding:"
    ".3em .8em}section.failed,section.error{border-color:#c33}"
    "summary{cursor:pointer}.st{display:inline-block;width:4.5em;font-weight:"
    "bold}.passed .st{color:#282}.failed .st,.error .st{color:#c33}"
    ".skipped .st{color:#888}.file,.time{color:#666;font-size:.9em}"
    ".verdict{background:#fee;border-left:4px solid #c33;padding:.3em .6em;"
    "margin:.4em 0;font-weight:bold}"
    "table.tl{width:100%;border-collapse:collapse;margin:.4em 0;"
    "table-layout:fixed}"
    "table.tl td{padding:1px 4px;font-size:.9em;vertical-align:middle}"
    "td.nm{width:30%;white-space:nowrap;overflow:hidden;text-overflow:"
    "ellipsis}td.bar{position:relative;height:1.2em}"
    "td.bar div{position:absolute;top:2px;bottom:2px;min-width:2px;"
    "border-radius:2px;background:#6a6}td.bar div.failed,td.bar div.error,"
    "td.bar div.fatal{background:#c33}td.info{width:35%;color:#555;"
    "white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
    "pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:30em;"
    "white-space:pre-wrap}";

static void html_steps(er_buf_t *b, const er_result_t *r) {
  double total = (double)(r->duration_ms > 0 ? r->duration_ms : 1);
  er_buf_puts(b, "<table class=\"tl\">\n");
  for (size_t i = 0; i < r->nsteps; i++) {
    const er_step_rec_t *s = &r->steps[i];
    double left = 100.0 * (double)s->start_ms / total;
    double width = 100.0 * (double)s->time_ms / total;
    if (left > 100)
      left = 100;
    if (left + width > 100)
      width = 100 - left;
    er_buf_printf(b, "<tr class=\"step %s\"><td class=\"nm\">",
                  step_word(s->status));
    html_text(b, s->phase);
    er_buf_printf(b, " %d ", s->index);
    html_text(b, s->name);
    er_buf_printf(b,
                  "</td><td class=\"bar\"><div class=\"%s\" style=\"left:"
                  "%.2f%%;width:%.2f%%\" title=\"",
                  step_word(s->status), left, width);
    html_text(b, s->name);
    er_buf_printf(b, ": +%.3fs, %.3fs, %s", (double)s->start_ms / 1000.0,
                  (double)s->time_ms / 1000.0, step_word(s->status));
    er_buf_puts(b, "\"></div></td><td class=\"info\">");
    er_buf_printf(b, "%.3fs", (double)s->time_ms / 1000.0);
    if (s->polls) {
      er_buf_printf(b, ", %d poll(s)", s->polls);
      if (s->last_seen) {
        er_buf_puts(b, ", last seen: ");
        html_text(b, s->last_seen);
      }
    }
    if (s->line > 0)
      er_buf_printf(b, " (line %d)", s->line);
    er_buf_puts(b, "</td></tr>\n");
  }
  er_buf_puts(b, "</table>\n");
}

static void html_scenario(er_buf_t *b, const er_result_t *r, size_t i) {
  bool bad = r->status == ER_RES_FAIL || r->status == ER_RES_ERROR;
  char *v = bad ? verdict_of(r->detail) : NULL;
  er_buf_printf(b, "<section id=\"s%zu\" class=\"%s\"><details%s><summary>",
                i + 1, status_word(r->status), bad ? " open" : "");
  er_buf_printf(b, "<span class=\"st\">%s</span> ",
                r->status == ER_RES_PASS    ? "PASS"
                : r->status == ER_RES_FAIL  ? "FAIL"
                : r->status == ER_RES_ERROR ? "ERROR"
                                            : "SKIP");
  html_text(b, r->name);
  er_buf_printf(b, " <span class=\"time\">%.3fs</span> <span class=\"file\">",
                (double)r->duration_ms / 1000.0);
  html_text(b, r->relfile ? r->relfile : r->file);
  er_buf_printf(b, ":%d</span></summary>\n", r->line > 0 ? r->line : 1);
  if (v) {
    er_buf_puts(b, "<div class=\"verdict\">verdict: ");
    html_text(b, v);
    er_buf_puts(b, "</div>\n");
  }
  if (r->failed_step) {
    er_buf_puts(b, "<p class=\"failed-step\">failed at: ");
    html_text(b, r->failed_step);
    er_buf_puts(b, "</p>\n");
  }
  if (r->nsteps)
    html_steps(b, r);
  if (r->detail && *r->detail) {
    er_buf_puts(b, "<pre class=\"detail\">");
    html_text(b, r->detail);
    er_buf_puts(b, "</pre>\n");
  } else if (r->message && r->status == ER_RES_SKIP) {
    er_buf_puts(b, "<p>");
    html_text(b, r->message);
    er_buf_puts(b, "</p>\n");
  }
  if (r->log && *r->log) {
    er_buf_puts(b, "<details><summary>step log</summary><pre class=\"log\">");
    html_text(b, r->log);
    er_buf_puts(b, "</pre></details>\n");
  }
  er_buf_puts(b, "</details></section>\n");
  free(v);
}

int er_html_report_write(const er_results_t *rs, const char *path,
                         er_err_t *err) {
  er_buf_t b = ER_BUF_INIT(64u * 1024u * 1024u);
  size_t counts[4] = {0};
  int rc;
  for (size_t i = 0; i < rs->n; i++)
    counts[rs->v[i].status]++;
  er_buf_printf(&b,
                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta "
                "charset=\"utf-8\"><title>eventrig report</title><style>%s"
                "</style></head><body>\n<h1>eventrig report</h1>\n",
                g_css);
  er_buf_printf(&b,
                "<p class=\"summary\">%zu passed, %zu failed, %zu errors, %zu "
                "skipped &middot; started ",
                counts[ER_RES_PASS], counts[ER_RES_FAIL], counts[ER_RES_ERROR],
                counts[ER_RES_SKIP]);
  html_text(&b, rs->timestamp);
  er_buf_puts(&b, "</p>\n");
  for (size_t i = 0; i < rs->n; i++)
    html_scenario(&b, &rs->v[i], i);
  er_buf_puts(&b, "</body></html>\n");
  if (b.truncated) {
    er_errf(err, ER_E_ENV, "HTML report: larger than 64 MB");
    er_buf_free(&b);
    return -1;
  }
  rc = er_write_file_atomic(path, b.data ? b.data : "", b.len, err);
  er_buf_free(&b);
  return rc;
}
