/* act_metrics.c: the "metrics" check: an expectation on a Prometheus text
 * endpoint, usable on its own and in await / hold.
 *
 * {"metrics": {"url": "http://127.0.0.1:9100/metrics"  (or "urls": [..]),
 *              "name": "sut_watch_conflicts_total",
 *              "labels": {"instance": "els-1", "kind": {"$regex": "^w"}},
 *              "value": <matcher>, "sum": true, "baseline": 12,
 *              "capture": {"n": "value"}, "timeout": "2s"}}
 *   Fetches every URL (GET, Accept: text/plain;version=0.0.4), parses the
 *   text format strictly (promtext.h) and selects the samples named
 *   "name" whose labels match "labels" (each given label must match, as a
 *   literal string or a jsonx.h matcher; {"$exists": false} asks for a
 *   label to be absent; labels not given may have any value).
 *   - One selected sample: its value is matched. Several: an error that
 *     lists them, unless "sum": true, which matches their sum (over every
 *     URL: one metric summed across the instances of a service).
 *   - "baseline": N matches value - N instead ("rose by at least 3":
 *     "baseline": "${before}", "value": {"$gte": 3}).
 *   - No "value": the check holds when a sample is selected.
 *   - Values are JSON numbers (integers when integral); NaN, +Inf and
 *     -Inf are the strings "NaN", "+Inf", "-Inf".
 *   - capture: name -> "value" (the value or sum), "delta" (value -
 *     baseline) or "samples" (how many were selected).
 *   - A numeric operand of $gt/$gte/$lt/$lte may be a template
 *     ("${before}"): it expands to the captured number.
 * Outcomes: no response, a status other than 200, a body over the HTTP
 * cap or one that does not parse -> ER_STEP_ERROR (await retries); no
 * sample selected or the value does not match -> ER_STEP_FAIL with the
 * URL(s), the samples of that name seen (first 10 lines), expected and
 * got; several samples without "sum", bad arguments -> ER_STEP_FATAL. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/http.h"
#include "base/promtext.h"
#include "lang/jsonx.h"
#include "run/exec.h"

#define SEEN_MAX 10   /* sample lines shown in a failure */
#define NAMES_MAX 256 /* distinct names kept for did-you-mean */
#define LINE_SHOWN 300
#define URLS_MAX 32
#define SESSION_KEY "metrics.http"

static const er_keyspec_t metrics_keys[] = {
    {"url", ER_T_STRING, false, NULL, NULL},
    {"urls", ER_T_ARRAY, false, NULL, NULL},
    {"name", ER_T_STRING, true, NULL, NULL},
    {"labels", ER_T_OBJECT, false, NULL, NULL},
    /* a matcher, checked by validate(), which lets a numeric operand be a
     * template such as "${before}" */
    {"value", ER_T_ANY, false, NULL, NULL},
    {"sum", ER_T_BOOL, false, NULL, NULL},
    {"baseline", ER_T_NUMBER, false, NULL, NULL},
    {"capture", ER_T_OBJECT, false, NULL, NULL},
    {"timeout", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

/* ---- helpers ------------------------------------------------------------ */

static bool is_single_template(const json_t *v) {
  const char *s = json_string_value(v);
  size_t n = s ? strlen(s) : 0;
  return n > 3 && s[0] == '$' && s[1] == '{' && s[n - 1] == '}' &&
         !strchr(s + 2, '$');
}

static bool is_numeric_op(const char *k) {
  return !strcmp(k, "$gt") || !strcmp(k, "$gte") || !strcmp(k, "$lt") ||
         !strcmp(k, "$lte");
}

/* Copy of a matcher with every "${...}" operand of a numeric operator
 * replaced by 0, so its shape can be checked before the value is known. */
static json_t *with_placeholders(const json_t *v) {
  json_t *c = json_deep_copy(v);
  const char *k;
  json_t *el;
  if (!c)
    return NULL;
  if (json_is_object(c)) {
    json_object_foreach(c, k, el) {
      if (is_numeric_op(k) && is_single_template(el)) {
        json_object_set_new(c, k, json_integer(0));
      } else if (json_is_object(el) || json_is_array(el)) {
        json_t *sub = with_placeholders(el);
        if (sub)
          json_object_set_new(c, k, sub);
      }
    }
  } else if (json_is_array(c)) {
    for (size_t i = 0; i < json_array_size(c); i++) {
      json_t *sub = with_placeholders(json_array_get(c, i));
      if (sub)
        json_array_set_new(c, i, sub);
    }
  }
  return c;
}

/* A sample value as JSON (see the top comment). New reference. */
static json_t *value_json(double v) {
  if (isnan(v))
    return json_string("NaN");
  if (isinf(v))
    return json_string(v > 0 ? "+Inf" : "-Inf");
  if (v == floor(v) && fabs(v) <= 9007199254740992.0)
    return json_integer((json_int_t)v);
  return json_real(v);
}

/* name{k="v",k2=<matcher>} for messages. */
static void selector_text(er_buf_t *b, const char *name, const json_t *labels) {
  const char *k;
  json_t *v;
  bool first = true;
  er_buf_puts(b, name);
  if (json_object_size(labels) == 0)
    return;
  er_buf_puts(b, "{");
  json_object_foreach((json_t *)labels, k, v) {
    char *brief = er_json_brief(v, 120);
    er_buf_printf(b, "%s%s=%s", first ? "" : ",", k, brief ? brief : "?");
    free(brief);
    first = false;
  }
  er_buf_puts(b, "}");
}

/* ---- selecting samples ---------------------------------------------------
 */

typedef struct pick {
  const char *name;
  const json_t *labels; /* selector; borrowed */
  const char *url;      /* the URL being parsed */
  bool many_urls;
  double sum;
  size_t nsel;   /* samples selected */
  size_t nname;  /* samples with that name */
  er_buf_t seen; /* first SEEN_MAX lines with that name */
  size_t nseen;
  er_buf_t sel; /* first SEEN_MAX selected lines */
  size_t nsel_shown;
  char *names[NAMES_MAX]; /* other names seen, for did-you-mean */
  size_t nnames;
} pick_t;

static void line_add(er_buf_t *b, const pick_t *p, const er_prom_sample_t *s) {
  size_t n = s->text_len > LINE_SHOWN ? LINE_SHOWN : s->text_len;
  er_buf_puts(b, "  ");
  er_buf_append(b, s->text, n);
  if (n < s->text_len)
    er_buf_puts(b, "...");
  if (p->many_urls)
    er_buf_printf(b, "   (%s)", p->url);
  er_buf_puts(b, "\n");
}

static bool labels_match(const pick_t *p, const er_prom_sample_t *s) {
  const char *k;
  json_t *want;
  json_object_foreach((json_t *)p->labels, k, want) {
    const er_prom_label_t *have = NULL;
    json_t *actual = NULL;
    bool ok;
    for (size_t i = 0; i < s->nlabels; i++)
      if (strcmp(s->labels[i].name, k) == 0)
        have = &s->labels[i];
    if (have) {
      actual = json_stringn(have->value, have->value_len);
      if (!actual)
        return false; /* not UTF-8: no JSON string can equal it */
    }
    ok = er_json_match(actual, want, NULL);
    json_decref(actual);
    if (!ok)
      return false;
  }
  return true;
}

static int pick_cb(void *ud, const er_prom_sample_t *s) {
  pick_t *p = ud;
  if (strcmp(s->name, p->name) != 0) {
    if (p->nname == 0 && p->nnames < NAMES_MAX) {
      for (size_t i = 0; i < p->nnames; i++)
        if (strcmp(p->names[i], s->name) == 0)
          return 0;
      p->names[p->nnames] = er_strdup(s->name);
      if (p->names[p->nnames])
        p->nnames++;
    }
    return 0;
  }
  p->nname++;
  if (p->nseen < SEEN_MAX) {
    line_add(&p->seen, p, s);
    p->nseen++;
  }
  if (!labels_match(p, s))
    return 0;
  p->nsel++;
  p->sum += s->value;
  if (p->nsel_shown < SEEN_MAX) {
    line_add(&p->sel, p, s);
    p->nsel_shown++;
  }
  return 0;
}

static void pick_free(pick_t *p) {
  er_buf_free(&p->seen);
  er_buf_free(&p->sel);
  for (size_t i = 0; i < p->nnames; i++)
    free(p->names[i]);
  p->nnames = 0;
}

/* ---- fetching --------------------------------------------------------- */

static void http_free_cb(void *h) { er_http_free(h); }

/* GETs url and feeds its samples to p. ER_STEP_OK, or ER_STEP_ERROR /
 * ER_STEP_FATAL with detail. */
static int fetch_one(er_http_t *h, const char *url, int64_t deadline, pick_t *p,
                     er_buf_t *d) {
  static const char *const hdrs[] = {
      "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1"};
  er_http_req_t req;
  er_http_resp_t resp;
  er_err_t err = {0};
  char shown[1024];
  int rc = ER_STEP_ERROR;

  memset(&req, 0, sizeof req);
  memset(&resp, 0, sizeof resp);
  er_http_redact_url(url, shown, sizeof shown);
  req.method = "GET";
  req.url = url;
  req.headers = hdrs;
  req.nheaders = 1;
  req.deadline_ms = deadline;
  if (er_http_perform(h, &req, &resp, &err) != 0) {
    er_buf_printf(d, "metrics: GET %s: %s", shown, err.msg);
    rc = err.code == ER_E_INPUT ? ER_STEP_FATAL : ER_STEP_ERROR;
    goto out;
  }
  if (resp.status != 200) {
    char *brief;
    json_t *b = json_stringn(er_buf_cstr(&resp.body),
                             resp.body.len > 300 ? 300 : resp.body.len);
    brief = b ? er_json_brief(b, 320) : NULL;
    er_buf_printf(d, "metrics: GET %s: status %ld (expected 200); body: %s",
                  shown, resp.status, brief ? brief : "(not text)");
    free(brief);
    json_decref(b);
    goto out;
  }
  if (resp.body.truncated) {
    er_buf_printf(d,
                  "metrics: GET %s: the body is larger than %u bytes; "
                  "refused",
                  shown, ER_HTTP_BODY_CAP);
    goto out;
  }
  p->url = shown;
  er_err_clear(&err);
  if (er_prom_parse(er_buf_cstr(&resp.body), resp.body.len, pick_cb, p, &err) !=
      0) {
    er_buf_printf(d,
                  "metrics: GET %s: the body is not valid Prometheus text "
                  "format: %s",
                  shown, err.msg);
    goto out;
  }
  rc = ER_STEP_OK;
out:
  p->url = NULL;
  er_http_resp_free(&resp);
  return rc;
}

/* ---- the step ----------------------------------------------------------- */

/* One check from its arguments to its captures. name, the json_t pointers
 * and urls are borrowed from the step's args; the rest is owned and freed
 * by mcheck_free. */
typedef struct mcheck {
  const char *name;
  const json_t *labels, *expect, *baseline, *capture;
  bool sum;
  const char *urls[URLS_MAX];
  size_t nurls;
  int64_t deadline;
  pick_t p;
  er_buf_t sel;    /* the selector, for messages */
  er_buf_t urltxt; /* the URLs (redacted), for messages */
  er_buf_t why;
  json_t *val, *delta; /* the value (or sum) and value - baseline */
  char *vtxt;          /* val, for messages */
} mcheck_t;

static void mcheck_init(mcheck_t *m, er_exec_t *x, const json_t *args) {
  memset(m, 0, sizeof *m);
  m->name = json_string_value(json_object_get(args, "name"));
  m->labels = json_object_get(args, "labels");
  m->expect = json_object_get(args, "value");
  m->baseline = json_object_get(args, "baseline");
  m->capture = json_object_get(args, "capture");
  m->sum = json_is_true(json_object_get(args, "sum"));
  m->deadline = x->deadline_ms;
  er_buf_init(&m->p.seen, 64 * 1024);
  er_buf_init(&m->p.sel, 64 * 1024);
  er_buf_init(&m->sel, 4096);
  er_buf_init(&m->urltxt, 8192);
  er_buf_init(&m->why, 4096);
}

static void mcheck_free(mcheck_t *m) {
  pick_free(&m->p);
  er_buf_free(&m->sel);
  er_buf_free(&m->urltxt);
  er_buf_free(&m->why);
  json_decref(m->val);
  json_decref(m->delta);
  free(m->vtxt);
}

/* "url" or "urls" into m->urls and m->urltxt. ER_STEP_OK or ER_STEP_FATAL
 * with detail. */
static int args_urls(er_exec_t *x, mcheck_t *m, const json_t *args) {
  const json_t *jurl = json_object_get(args, "url");
  const json_t *jurls = json_object_get(args, "urls");
  if (!jurl == !jurls) {
    er_buf_puts(x->detail, "metrics: give either \"url\" or \"urls\"");
    return ER_STEP_FATAL;
  }
  if (jurl) {
    m->urls[m->nurls++] = json_string_value(jurl);
  } else {
    for (size_t i = 0; i < json_array_size(jurls) && m->nurls < URLS_MAX; i++)
      m->urls[m->nurls++] = json_string_value(json_array_get(jurls, i));
    if (json_array_size(jurls) > URLS_MAX || m->nurls == 0) {
      er_buf_printf(x->detail, "metrics: \"urls\" takes 1 to %d URLs",
                    URLS_MAX);
      return ER_STEP_FATAL;
    }
  }
  for (size_t i = 0; i < m->nurls; i++) {
    char shown[1024];
    if (!m->urls[i] || !*m->urls[i]) {
      er_buf_puts(x->detail, "metrics: each URL must be a non-empty string");
      return ER_STEP_FATAL;
    }
    er_http_redact_url(m->urls[i], shown, sizeof shown);
    er_buf_printf(&m->urltxt, "%s%s", i ? ", " : "", shown);
  }
  return ER_STEP_OK;
}

/* The arguments run_metrics checks itself. ER_STEP_OK or ER_STEP_FATAL
 * with detail. */
static int args_check(er_exec_t *x, mcheck_t *m, const json_t *args) {
  const json_t *tmo = json_object_get(args, "timeout");
  int rc;
  if (!m->name || !er_prom_name_ok(m->name)) {
    er_buf_puts(x->detail, "metrics: \"name\" must be a metric name such as "
                           "sut_events_total");
    return ER_STEP_FATAL;
  }
  if (m->labels && !json_is_object(m->labels)) {
    er_buf_puts(x->detail, "metrics: \"labels\" must be an object");
    return ER_STEP_FATAL;
  }
  rc = args_urls(x, m, args);
  if (rc != ER_STEP_OK)
    return rc;
  if (m->baseline && !json_is_number(m->baseline)) {
    char *b = er_json_brief(m->baseline, 100);
    er_buf_printf(x->detail, "metrics: \"baseline\" must be a number, not %s",
                  b ? b : "?");
    free(b);
    return ER_STEP_FATAL;
  }
  if (tmo) {
    int64_t ms;
    if (!json_is_string(tmo) ||
        er_parse_duration(json_string_value(tmo), &ms) != 0) {
      er_buf_puts(x->detail,
                  "metrics: \"timeout\" is a duration such as \"2s\"");
      return ER_STEP_FATAL;
    }
    if (er_now_ms() + ms < m->deadline)
      m->deadline = er_now_ms() + ms;
  }
  return ER_STEP_OK;
}

/* Fetches every URL on the session's HTTP handle into m->p. ER_STEP_OK,
 * or another ER_STEP_* with detail. */
static int fetch_all(er_exec_t *x, mcheck_t *m) {
  er_err_t err = {0};
  er_http_t *h;
  int rc;
  if (!x->session) {
    er_buf_puts(x->detail, "metrics: no session to keep the connection in");
    return ER_STEP_FATAL;
  }
  h = er_session_get(x->session, SESSION_KEY);
  if (!h) {
    h = er_http_new(&err);
    if (!h || er_session_put(x->session, SESSION_KEY, h, http_free_cb) != 0) {
      er_http_free(h);
      er_buf_printf(x->detail, "metrics: %s",
                    err.msg[0] ? err.msg : "out of memory");
      return ER_STEP_ERROR;
    }
  }
  m->p.name = m->name;
  m->p.labels = m->labels;
  m->p.many_urls = m->nurls > 1;
  for (size_t i = 0; i < m->nurls; i++) {
    rc = fetch_one(h, m->urls[i], m->deadline, &m->p, x->detail);
    if (rc != ER_STEP_OK)
      return rc;
  }
  return ER_STEP_OK;
}

/* No sample of that name, none with these labels, or several without
 * "sum": ER_STEP_FAIL / ER_STEP_FATAL with detail; else ER_STEP_OK. */
static int check_selected(er_exec_t *x, mcheck_t *m) {
  const pick_t *p = &m->p;
  if (p->nname == 0) {
    const char *dym =
        er_did_you_mean(m->name, (const char *const *)p->names, p->nnames);
    er_buf_printf(x->detail, "metrics %s: no sample named %s%s%s%s\nurl%s: %s",
                  er_buf_cstr(&m->sel), m->name, dym ? " (did you mean " : "",
                  dym ? dym : "", dym ? "?)" : "", m->nurls > 1 ? "s" : "",
                  er_buf_cstr(&m->urltxt));
    return ER_STEP_FAIL;
  }
  if (p->nsel == 0) {
    er_buf_printf(x->detail,
                  "metrics %s: no sample has these labels\nurl%s: %s\n"
                  "samples of %s seen (%zu%s):\n%s",
                  er_buf_cstr(&m->sel), m->nurls > 1 ? "s" : "",
                  er_buf_cstr(&m->urltxt), m->name, p->nname,
                  p->nname > SEEN_MAX ? ", first 10 shown" : "",
                  er_buf_cstr(&m->p.seen));
    return ER_STEP_FAIL;
  }
  if (p->nsel > 1 && !m->sum) {
    er_buf_printf(x->detail,
                  "metrics %s: %zu samples match; narrow \"labels\" to one, "
                  "or set \"sum\": true to add them up\nurl%s: %s\n"
                  "matching samples%s:\n%s",
                  er_buf_cstr(&m->sel), p->nsel, m->nurls > 1 ? "s" : "",
                  er_buf_cstr(&m->urltxt),
                  p->nsel > SEEN_MAX ? " (first 10)" : "",
                  er_buf_cstr(&m->p.sel));
    return ER_STEP_FATAL;
  }
  return ER_STEP_OK;
}

/* The value (less the baseline) against "value". ER_STEP_OK, or
 * ER_STEP_FAIL / ER_STEP_ERROR with detail. */
static int match_value(er_exec_t *x, mcheck_t *m) {
  json_t *target;
  char *btxt;
  m->val = value_json(m->p.sum);
  if (m->baseline)
    m->delta = value_json(m->p.sum - json_number_value(m->baseline));
  target = m->baseline ? m->delta : m->val;
  if (!m->val || (m->baseline && !m->delta)) {
    er_buf_puts(x->detail, "metrics: out of memory");
    return ER_STEP_ERROR;
  }
  m->vtxt = er_json_brief(m->val, 60);
  if (!m->expect || er_json_match(target, m->expect, &m->why))
    return ER_STEP_OK;
  btxt = m->baseline ? er_json_brief(m->baseline, 60) : NULL;
  er_buf_printf(x->detail, "metrics %s: %s%s\n", er_buf_cstr(&m->sel),
                m->baseline ? "the rise since the baseline: " : "",
                er_buf_cstr(&m->why));
  if (m->baseline)
    er_buf_printf(x->detail, "value %s, baseline %s\n", m->vtxt ? m->vtxt : "?",
                  btxt ? btxt : "?");
  free(btxt);
  er_buf_printf(x->detail, "url%s: %s\nsamples of %s seen (%zu%s):\n%s",
                m->nurls > 1 ? "s" : "", er_buf_cstr(&m->urltxt), m->name,
                m->p.nname, m->p.nname > SEEN_MAX ? ", first 10 shown" : "",
                er_buf_cstr(&m->p.seen));
  return ER_STEP_FAIL;
}

/* The captures into x->captures. ER_STEP_OK, ER_STEP_FATAL with detail
 * or ER_STEP_ERROR. */
static int capture_values(er_exec_t *x, mcheck_t *m) {
  const char *k;
  json_t *what;
  if (!m->capture)
    return ER_STEP_OK;
  json_object_foreach((json_t *)m->capture, k, what) {
    const char *w = json_string_value(what);
    json_t *cv = NULL;
    if (w && !strcmp(w, "value"))
      cv = json_incref(m->val);
    else if (w && !strcmp(w, "samples"))
      cv = json_integer((json_int_t)m->p.nsel);
    else if (w && !strcmp(w, "delta") && m->delta)
      cv = json_incref(m->delta);
    if (!cv) {
      er_buf_printf(x->detail,
                    "metrics: capture \"%s\" must be \"value\", "
                    "\"samples\" or (with \"baseline\") \"delta\"",
                    k);
      return ER_STEP_FATAL;
    }
    if (x->captures && json_object_set_new(x->captures, k, cv) != 0)
      return ER_STEP_ERROR;
  }
  return ER_STEP_OK;
}

static int run_metrics(er_exec_t *x, const json_t *args) {
  mcheck_t m;
  int rc;

  mcheck_init(&m, x, args);
  rc = args_check(x, &m, args);
  if (rc != ER_STEP_OK)
    goto out;
  rc = fetch_all(x, &m);
  if (rc != ER_STEP_OK)
    goto out;
  selector_text(&m.sel, m.name, m.labels);
  rc = check_selected(x, &m);
  if (rc != ER_STEP_OK)
    goto out;
  rc = match_value(x, &m);
  if (rc != ER_STEP_OK)
    goto out;
  rc = capture_values(x, &m);
  if (rc != ER_STEP_OK)
    goto out;
  if (!x->polling) {
    if (m.p.nsel > 1)
      er_exec_log(x, "metrics %s = %s (sum of %zu samples from %zu URL(s))",
                  er_buf_cstr(&m.sel), m.vtxt ? m.vtxt : "?", m.p.nsel,
                  m.nurls);
    else
      er_exec_log(x, "metrics %s = %s", er_buf_cstr(&m.sel),
                  m.vtxt ? m.vtxt : "?");
  }
  rc = ER_STEP_OK;
out:
  mcheck_free(&m);
  return rc;
}

/* ---- validation ---------------------------------------------------------- */

/* parent + "/" + the key as a JSON pointer token ("~" -> "~0", "/" ->
 * "~1"), cut to n bytes. */
static void ptr_child(char *out, size_t n, const char *parent,
                      const char *key) {
  er_buf_t b = ER_BUF_INIT(n);
  er_buf_printf(&b, "%s/", parent);
  for (; *key; key++)
    er_buf_puts(&b, *key == '~'   ? "~0"
                    : *key == '/' ? "~1"
                                  : (char[2]){*key, 0});
  snprintf(out, n, "%s", er_buf_cstr(&b));
  er_buf_free(&b);
}

static void validate_metrics(const json_t *args, er_diag_t *d) {
  const json_t *url = json_object_get(args, "url");
  const json_t *urls = json_object_get(args, "urls");
  const json_t *name = json_object_get(args, "name");
  const json_t *labels = json_object_get(args, "labels");
  const json_t *value = json_object_get(args, "value");
  const json_t *capture = json_object_get(args, "capture");
  const json_t *baseline = json_object_get(args, "baseline");
  const char *k;
  json_t *v;

  if (!url == !urls)
    er_diag_error(d, "",
                  "metrics needs exactly one of \"url\" (one endpoint) or "
                  "\"urls\" (a list whose samples are taken together)");
  if (json_is_array(urls)) {
    if (json_array_size(urls) == 0 || json_array_size(urls) > URLS_MAX)
      er_diag_error(d, "/urls", "\"urls\" takes 1 to %d URLs", URLS_MAX);
    for (size_t i = 0; i < json_array_size(urls); i++)
      if (!json_is_string(json_array_get(urls, i))) {
        char p[40];
        snprintf(p, sizeof p, "/urls/%zu", i);
        er_diag_error(d, p, "each URL is a string");
      }
  }
  if (json_is_string(name) && !strstr(json_string_value(name), "${") &&
      !er_prom_name_ok(json_string_value(name)))
    er_diag_error(d, "/name",
                  "'%s' is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                  json_string_value(name));
  if (json_is_object(labels)) {
    json_object_foreach((json_t *)labels, k, v) {
      char p[300], msg[256];
      ptr_child(p, sizeof p, "/labels", k);
      if (!strstr(k, "${") && !er_prom_label_name_ok(k))
        er_diag_error(d, p, "'%s' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                      k);
      if (!json_is_string(v) && !er_json_is_matcher(v))
        er_diag_error(d, p,
                      "a label value is a string or a matcher such as "
                      "{\"$regex\": \"^els-\"}");
      else if (er_json_is_matcher(v)) {
        json_t *c = with_placeholders(v);
        if (c && er_json_matcher_check(c, msg, sizeof msg) != 0)
          er_diag_error(d, p, "%s", msg);
        json_decref(c);
      }
    }
  }
  if (value) {
    char msg[256];
    json_t *c = with_placeholders(value);
    if (c && er_json_matcher_check(c, msg, sizeof msg) != 0)
      er_diag_error(d, "/value", "%s", msg);
    json_decref(c);
  }
  if (json_is_object(capture)) {
    json_object_foreach((json_t *)capture, k, v) {
      const char *w = json_string_value(v);
      char p[300];
      ptr_child(p, sizeof p, "/capture", k);
      if (!w || (strcmp(w, "value") != 0 && strcmp(w, "samples") != 0 &&
                 strcmp(w, "delta") != 0))
        er_diag_error(d, p,
                      "a capture takes \"value\", \"samples\" or "
                      "\"delta\" (with \"baseline\")");
      else if (!strcmp(w, "delta") && !baseline)
        er_diag_error(d, p, "\"delta\" needs a \"baseline\"");
    }
  }
}

const er_action_t er_act_metrics = {.name = "metrics",
                                    .keys = metrics_keys,
                                    .check = true,
                                    .validate = validate_metrics,
                                    .run = run_metrics};
