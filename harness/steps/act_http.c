/* act_http.c: the "http" step.
 *
 * {"http": {"method": "POST", "url": "...", "headers": {"K": "v"},
 *           "json": <any> | "body": "raw text", "timeout": "5s",
 *           "expect": {"status": <matcher>, "headers": {"Name": <matcher>},
 *                      "json": {"/pointer": <matcher>}, "body": <matcher>},
 *           "capture": {"name": "/json/pointer" | {"header": "Name"} |
 *                       {"status": true}}}}
 * Header names compare case-insensitively. A step without expect.status
 * expects a 2xx status.
 *
 * Details:
 * - method defaults to GET, also when a body is given (say "POST").
 *   Methods are upper-cased. HEAD sends and reads no body.
 * - json is serialised compactly and sent with "Content-Type:
 *   application/json"; body is sent as is with "Content-Type: text/plain;
 *   charset=utf-8"; a Content-Type in headers wins. Not both json and body.
 * - headers values are strings (numbers and booleans are sent as text).
 * - timeout bounds the request (connect to last byte) within the step's
 *   own deadline. Redirects are not followed.
 * - expect.json: JSON pointer ("" = the whole body) -> matcher; the body
 *   must be JSON. expect.body: a matcher on the body as text
 *   ({"$contains": "ok"}, {"$regex": "^OK"}, or the exact text).
 *   expect.headers: a missing header is a missing value, so
 *   {"$exists": false} checks absence.
 * - capture (only when every expectation holds): a JSON pointer string
 *   into the body, {"header": "Name"} (its value, a string), or
 *   {"status": true} (the status, an integer).
 * - Outcomes: no response (connection refused, reset, timeout) ->
 *   ER_STEP_ERROR; an expectation not met -> ER_STEP_FAIL with the
 *   method, URL, status expected and seen, what differed and the first
 *   2 KB of the body; a malformed URL -> ER_STEP_FATAL.
 * - Secrets: values of Authorization, Proxy-Authorization and Cookie
 *   request headers and a password in the URL never appear in the log or
 *   the failure detail (also when the server echoes them back).
 * - One curl handle (and its connections) per branch. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/http.h"
#include "lang/jsonx.h"
#include "run/exec.h"

#define DETAIL_BODY 2048 /* bytes of the response body in a detail */
#define MAX_SECRETS 16
#define URL_SHOWN 2048

static const er_keyspec_t expect_keys[] = {
    {"status", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"headers", ER_T_OBJECT, false, NULL, NULL},
    {"json", ER_T_OBJECT, false, NULL, NULL},
    {"body", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t keys[] = {
    {"method", ER_T_STRING, false, NULL, NULL},
    {"url", ER_T_STRING, true, NULL, NULL},
    {"headers", ER_T_OBJECT, false, NULL, NULL},
    {"json", ER_T_ANY, false, NULL, NULL},
    {"body", ER_T_STRING, false, NULL, NULL},
    {"timeout", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"expect", ER_T_OBJECT, false, expect_keys, NULL},
    {"capture", ER_T_OBJECT, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

/* ---- secrets ----------------------------------------------------------- */

typedef struct secrets {
  char *v[MAX_SECRETS];
  size_t n;
} secrets_t;

static void secret_add(secrets_t *s, const char *p, size_t len) {
  if (len < 3 || s->n >= MAX_SECRETS)
    return;
  s->v[s->n] = malloc(len + 1);
  if (!s->v[s->n])
    return;
  memcpy(s->v[s->n], p, len);
  s->v[s->n][len] = '\0';
  er_secret_add(s->v[s->n]); /* and for every other output (util.h) */
  s->n++;
}

/* The whole value and, for "Scheme credentials", the credentials. */
static void secret_add_value(secrets_t *s, const char *value) {
  const char *sp = strchr(value, ' ');
  secret_add(s, value, strlen(value));
  if (sp) {
    while (*sp == ' ')
      sp++;
    secret_add(s, sp, strlen(sp));
  }
}

static void secrets_free(secrets_t *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i]);
  s->n = 0;
}

/* Appends src to dst with every secret replaced by "***". */
static void put_scrubbed(er_buf_t *dst, const char *src, const secrets_t *s) {
  const char *p = src;
  while (*p) {
    size_t best = 0;
    const char *hit = NULL;
    for (size_t i = 0; i < s->n; i++) {
      const char *h = strstr(p, s->v[i]);
      if (h && (!hit || h < hit || (h == hit && strlen(s->v[i]) > best))) {
        hit = h;
        best = strlen(s->v[i]);
      }
    }
    if (!hit) {
      er_buf_puts(dst, p);
      return;
    }
    er_buf_append(dst, p, (size_t)(hit - p));
    er_buf_puts(dst, "***");
    p = hit + best;
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (char)tolower((unsigned char)c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The password of http://user:password@host/..., as written and
 * percent-decoded, and the "Basic" credentials curl makes of it. */
static void url_secret(const char *url, secrets_t *s) {
  static const char b64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *u = strstr(url, "://"), *end, *at = NULL, *colon;
  er_buf_t dec = ER_BUF_INIT(4096), enc = ER_BUF_INIT(8192);
  if (!u)
    return;
  u += 3;
  end = u + strcspn(u, "/?#");
  for (const char *q = u; q < end; q++)
    if (*q == '@')
      at = q;
  colon = at ? memchr(u, ':', (size_t)(at - u)) : NULL;
  if (!colon)
    return;
  secret_add(s, colon + 1, (size_t)(at - colon - 1));
  for (const char *q = u; q < at; q++) {
    char ch = *q;
    if (*q == '%' && q + 2 < at && hexval(q[1]) >= 0 && hexval(q[2]) >= 0) {
      ch = (char)(hexval(q[1]) * 16 + hexval(q[2]));
      q += 2;
    }
    er_buf_append(&dec, &ch, 1);
  }
  {
    const char *pw = memchr(dec.data, ':', dec.len);
    if (pw)
      secret_add(s, pw + 1, dec.len - (size_t)(pw + 1 - dec.data));
  }
  for (size_t i = 0; i < dec.len; i += 3) {
    unsigned v = (unsigned char)dec.data[i] << 16;
    size_t left = dec.len - i;
    if (left > 1)
      v |= (unsigned)(unsigned char)dec.data[i + 1] << 8;
    if (left > 2)
      v |= (unsigned char)dec.data[i + 2];
    er_buf_append(&enc, &b64[(v >> 18) & 63], 1);
    er_buf_append(&enc, &b64[(v >> 12) & 63], 1);
    er_buf_append(&enc, left > 1 ? &b64[(v >> 6) & 63] : "=", 1);
    er_buf_append(&enc, left > 2 ? &b64[v & 63] : "=", 1);
  }
  secret_add(s, er_buf_cstr(&enc), enc.len);
  er_buf_free(&dec);
  er_buf_free(&enc);
}

/* ---- helpers ----------------------------------------------------------- */

/* A scenario log line with secrets masked; nothing while polling. */
static void log_line(er_exec_t *x, const secrets_t *sec, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(er_exec_t *x, const secrets_t *sec, const char *fmt, ...) {
  er_buf_t l = ER_BUF_INIT(8192), s = ER_BUF_INIT(8192);
  va_list ap;
  if (x->polling)
    return;
  va_start(ap, fmt);
  er_buf_vprintf(&l, fmt, ap);
  va_end(ap);
  put_scrubbed(&s, er_buf_cstr(&l), sec);
  er_exec_log(x, "%s", er_buf_cstr(&s));
  er_buf_free(&l);
  er_buf_free(&s);
}

/* The first DETAIL_BODY bytes of a body, indented, control bytes as '?'. */
static void put_body(er_buf_t *d, const er_buf_t *body) {
  size_t n = body->len < DETAIL_BODY ? body->len : DETAIL_BODY;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)body->data[i];
    if (c == '\n')
      er_buf_puts(d, "\n    ");
    else if (c < 0x20 && c != '\t')
      er_buf_puts(d, "?");
    else
      er_buf_append(d, &body->data[i], 1);
  }
  if (body->len > n)
    er_buf_printf(d, "\n    ... (%zu more bytes)", body->len - n);
}

static void http_free_cb(void *p) { er_http_free(p); }

static int step_rc(int code) {
  switch (code) {
  case ER_E_INPUT:
    return ER_STEP_FATAL;
  default:
    return ER_STEP_ERROR;
  }
}

/* The body as a JSON string (invalid UTF-8 bytes shown as '?'). */
static json_t *body_text(const er_buf_t *b) {
  json_t *j = json_stringn(b->data ? b->data : "", b->len);
  char *copy;
  if (j)
    return j;
  if (!b->data)
    return json_string("");
  copy = malloc(b->len + 1);
  if (!copy)
    return NULL;
  for (size_t i = 0; i < b->len; i++) {
    unsigned char c = (unsigned char)b->data[i];
    copy[i] = (c >= 0x80 || c == 0) ? '?' : (char)c;
  }
  copy[b->len] = '\0';
  j = json_stringn(copy, b->len);
  free(copy);
  return j;
}

static void put_json(er_buf_t *b, const json_t *v, size_t max) {
  char *s = er_json_brief(v, max);
  er_buf_puts(b, s ? s : "?");
  free(s);
}

/* Parses the body as JSON once; on failure explains why in msg. */
typedef struct parsed {
  bool tried;
  json_t *doc;
  char msg[300];
} parsed_t;

static json_t *body_json(const er_http_resp_t *r, parsed_t *p) {
  json_error_t je;
  if (p->tried)
    return p->doc;
  p->tried = true;
  p->doc = json_loadb(r->body.data ? r->body.data : "", r->body.len,
                      JSON_DECODE_ANY, &je);
  if (!p->doc) {
    if (r->body.truncated)
      snprintf(p->msg, sizeof p->msg,
               "the response body is not JSON: it was cut at %u bytes",
               ER_HTTP_BODY_CAP);
    else if (r->body.len == 0)
      snprintf(p->msg, sizeof p->msg,
               "the response body is not JSON: it is empty");
    else
      snprintf(p->msg, sizeof p->msg,
               "the response body is not JSON (line %d, column %d: %s)",
               je.line, je.column, je.text);
  }
  return p->doc;
}

/* ---- run --------------------------------------------------------------- */

static int run(er_exec_t *x, const json_t *args) {
  const char *url = json_string_value(json_object_get(args, "url"));
  const json_t *mj = json_object_get(args, "method");
  const json_t *hdrs = json_object_get(args, "headers");
  const json_t *jbody = json_object_get(args, "json");
  const json_t *tbody = json_object_get(args, "body");
  const json_t *tmo = json_object_get(args, "timeout");
  const json_t *expect = json_object_get(args, "expect");
  const json_t *capture = json_object_get(args, "capture");
  const json_t *want_status = json_object_get(expect, "status");
  const json_t *want_headers = json_object_get(expect, "headers");
  const json_t *want_json = json_object_get(expect, "json");
  const json_t *want_body = json_object_get(expect, "body");
  char method[32], shown_url[URL_SHOWN];
  char **lines = NULL;
  size_t nlines = 0;
  char *body = NULL;
  size_t body_len = 0;
  bool has_ctype = false, ok = true;
  er_http_t *h = NULL;
  er_http_req_t req;
  er_http_resp_t resp;
  er_err_t err = {0, ""};
  secrets_t sec = {{NULL}, 0};
  er_buf_t why = ER_BUF_INIT(16 * 1024);
  er_buf_t d = ER_BUF_INIT(32 * 1024); /* detail before scrubbing */
  parsed_t parsed = {false, NULL, ""};
  json_t *caps = NULL, *status_j = NULL;
  int rc = ER_STEP_FATAL;

  memset(&resp, 0, sizeof resp);
  memset(&req, 0, sizeof req);
  if (!url) {
    er_buf_puts(&d, "http: \"url\" (a string) is required");
    goto out;
  }
  er_http_redact_url(url, shown_url, sizeof shown_url);
  url_secret(url, &sec);
  if (mj && !json_is_string(mj)) {
    er_buf_puts(&d, "http: \"method\" is a string");
    goto out;
  }
  snprintf(method, sizeof method, "%s", mj ? json_string_value(mj) : "GET");
  for (char *p = method; *p; p++)
    *p = (char)toupper((unsigned char)*p);
  if (jbody && tbody) {
    er_buf_puts(&d, "http: give \"json\" or \"body\", not both");
    goto out;
  }
  if (tbody && !json_is_string(tbody)) {
    er_buf_puts(&d, "http: \"body\" is a string (use \"json\" for JSON)");
    goto out;
  }
  if ((hdrs && !json_is_object(hdrs)) || (expect && !json_is_object(expect)) ||
      (want_headers && !json_is_object(want_headers)) ||
      (want_json && !json_is_object(want_json)) ||
      (capture && !json_is_object(capture))) {
    er_buf_puts(&d, "http: headers, expect, expect.headers, expect.json and "
                    "capture are objects");
    goto out;
  }

  /* request headers */
  lines = calloc(json_object_size(hdrs) + 1, sizeof *lines);
  if (!lines) {
    rc = ER_STEP_ERROR;
    goto out;
  }
  if (hdrs) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)hdrs, k, v) {
      char num[64];
      const char *val = NULL;
      er_buf_t line = ER_BUF_INIT(64 * 1024);
      if (json_is_string(v)) {
        val = json_string_value(v);
      } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        val = num;
      } else if (json_is_real(v)) {
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        val = num;
      } else if (json_is_boolean(v)) {
        val = json_is_true(v) ? "true" : "false";
      }
      if (!val || strpbrk(k, ":\r\n") || strpbrk(val, "\r\n") || !*k) {
        er_buf_printf(&d,
                      "http: header \"%s\": names have no ':' and values are "
                      "one-line strings",
                      k);
        er_buf_free(&line);
        goto out;
      }
      if (strcasecmp(k, "Content-Type") == 0)
        has_ctype = true;
      if (er_http_header_is_secret(k))
        secret_add_value(&sec, val);
      /* "Name;" sends a header with an empty value in curl */
      er_buf_printf(&line, *val ? "%s: %s" : "%s;", k, val);
      lines[nlines++] = er_buf_steal(&line);
      er_buf_free(&line);
      if (!lines[nlines - 1]) {
        rc = ER_STEP_ERROR;
        goto out;
      }
    }
  }
  if (jbody) {
    body = json_dumps(jbody, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!body) {
      rc = ER_STEP_ERROR;
      goto out;
    }
    body_len = strlen(body);
  } else if (tbody) {
    body = er_strdup(json_string_value(tbody));
    body_len = json_string_length(tbody);
    if (!body) {
      rc = ER_STEP_ERROR;
      goto out;
    }
  }
  if (body && !has_ctype) {
    char **nl = realloc(lines, (nlines + 2) * sizeof *nl);
    if (!nl) {
      rc = ER_STEP_ERROR;
      goto out;
    }
    lines = nl;
    lines[nlines] =
        er_strdup(jbody ? "Content-Type: application/json"
                        : "Content-Type: text/plain; charset=utf-8");
    if (!lines[nlines]) {
      rc = ER_STEP_ERROR;
      goto out;
    }
    nlines++;
  }

  req.method = method;
  req.url = url;
  req.headers = (const char *const *)lines;
  req.nheaders = nlines;
  req.body = body;
  req.body_len = body_len;
  req.deadline_ms = x->deadline_ms;
  if (tmo) {
    int64_t ms;
    if (!json_is_string(tmo) ||
        er_parse_duration(json_string_value(tmo), &ms) != 0) {
      er_buf_puts(&d, "http: \"timeout\" is a duration such as \"5s\"");
      goto out;
    }
    if (er_now_ms() + ms < req.deadline_ms)
      req.deadline_ms = er_now_ms() + ms;
  }

  h = er_session_get(x->session, "http");
  if (!h) {
    h = er_http_new(&err);
    if (!h || er_session_put(x->session, "http", h, http_free_cb) != 0) {
      er_http_free(h);
      h = NULL;
      er_buf_printf(&d, "http: %s", err.msg[0] ? err.msg : "out of memory");
      rc = ER_STEP_ERROR;
      goto out;
    }
  }

  if (er_http_perform(h, &req, &resp, &err) != 0) {
    er_buf_printf(&d, "http %s %s: %s", method, shown_url, err.msg);
    rc = step_rc(err.code);
    log_line(x, &sec, "http %s %s: %s", method, shown_url, err.msg);
    goto out;
  }

  /* expectations */
  status_j = json_integer(resp.status);
  if (want_status) {
    er_buf_t w = ER_BUF_INIT(1024);
    if (!er_json_match(status_j, want_status, &w)) {
      er_buf_printf(&why, "\n  status: %s", er_buf_cstr(&w));
      ok = false;
    }
    er_buf_free(&w);
  } else if (resp.status < 200 || resp.status > 299) {
    er_buf_printf(&why, "\n  status: expected 2xx, got %ld", resp.status);
    ok = false;
  }
  if (want_headers) {
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)want_headers, k, m) {
      char *v = er_http_header_get(&resp, k);
      json_t *vj = v ? json_string(v) : NULL;
      er_buf_t w = ER_BUF_INIT(1024);
      if (v && er_http_header_is_secret(k)) /* Set-Cookie */
        secret_add_value(&sec, v);
      if (!er_json_match(vj, m, &w)) {
        er_buf_printf(&why, "\n  header %s: %s", k, er_buf_cstr(&w));
        ok = false;
      }
      er_buf_free(&w);
      json_decref(vj);
      free(v);
    }
  }
  if (want_json) {
    json_t *doc = body_json(&resp, &parsed);
    if (!doc) {
      er_buf_printf(&why, "\n  json: %s", parsed.msg);
      ok = false;
    } else {
      const char *ptr;
      json_t *m;
      json_object_foreach((json_t *)want_json, ptr, m) {
        er_buf_t w = ER_BUF_INIT(1024);
        if (!er_json_match(er_json_pointer(doc, ptr), m, &w)) {
          er_buf_printf(&why, "\n  json %s: %s", *ptr ? ptr : "\"\"",
                        er_buf_cstr(&w));
          ok = false;
        }
        er_buf_free(&w);
      }
    }
  }
  if (want_body) {
    json_t *t = body_text(&resp.body);
    er_buf_t w = ER_BUF_INIT(1024);
    if (!er_json_match(t, want_body, &w)) {
      er_buf_printf(&why, "\n  body: %s", er_buf_cstr(&w));
      ok = false;
    }
    er_buf_free(&w);
    json_decref(t);
  }

  /* captures */
  if (ok && capture) {
    const char *name;
    json_t *spec;
    caps = json_object();
    if (!caps) {
      rc = ER_STEP_ERROR;
      goto out;
    }
    json_object_foreach((json_t *)capture, name, spec) {
      json_t *v = NULL;
      if (json_is_string(spec)) {
        json_t *doc = body_json(&resp, &parsed);
        json_t *at = doc ? er_json_pointer(doc, json_string_value(spec)) : NULL;
        if (!doc)
          er_buf_printf(&why, "\n  capture %s: %s", name, parsed.msg);
        else if (!at)
          er_buf_printf(&why, "\n  capture %s: %s is not in the body", name,
                        json_string_value(spec));
        else
          v = json_deep_copy(at);
      } else if (json_is_string(json_object_get(spec, "header")) &&
                 json_object_size(spec) == 1) {
        const char *hn = json_string_value(json_object_get(spec, "header"));
        char *hv = er_http_header_get(&resp, hn);
        if (hv && er_http_header_is_secret(hn))
          secret_add_value(&sec, hv);
        if (!hv)
          er_buf_printf(&why, "\n  capture %s: no header %s in the response",
                        name, hn);
        else
          v = json_string(hv);
        free(hv);
      } else if (json_is_true(json_object_get(spec, "status")) &&
                 json_object_size(spec) == 1) {
        v = json_integer(resp.status);
      } else {
        er_buf_printf(&d,
                      "http: capture \"%s\": give a JSON pointer string, "
                      "{\"header\": \"Name\"} or {\"status\": true}",
                      name);
        rc = ER_STEP_FATAL;
        goto out;
      }
      if (!v) {
        ok = false;
        continue;
      }
      json_object_set_new(caps, name, v);
    }
  }

  if (!ok) {
    er_buf_printf(&d, "http %s %s: got status %ld", method, shown_url,
                  resp.status);
    if (!want_status)
      er_buf_puts(&d, " (expected 2xx)");
    else {
      er_buf_puts(&d, " (expected ");
      put_json(&d, want_status, 200);
      er_buf_puts(&d, ")");
    }
    er_buf_puts(&d, er_buf_cstr(&why));
    er_buf_printf(&d, "\n  response body (%zu bytes%s)%s", resp.body.len,
                  resp.body.truncated ? ", cut at the 4 MB cap" : "",
                  resp.body.len ? ":\n    " : "");
    if (resp.body.len)
      put_body(&d, &resp.body);
    rc = ER_STEP_FAIL;
    log_line(x, &sec, "http %s %s -> %ld (%lldms, %zu bytes): not as expected",
             method, shown_url, resp.status, (long long)resp.elapsed_ms,
             resp.body.len);
    goto out;
  }
  if (caps && x->captures)
    json_object_update(x->captures, caps);
  log_line(x, &sec, "http %s %s -> %ld (%lldms, %zu bytes)", method, shown_url,
           resp.status, (long long)resp.elapsed_ms, resp.body.len);
  rc = ER_STEP_OK;
out:
  if (d.len)
    put_scrubbed(x->detail, er_buf_cstr(&d), &sec);
  json_decref(status_j);
  json_decref(caps);
  json_decref(parsed.doc);
  er_http_resp_free(&resp);
  for (size_t i = 0; i < nlines; i++)
    free(lines[i]);
  free(lines);
  free(body);
  secrets_free(&sec);
  er_buf_free(&why);
  er_buf_free(&d);
  return rc;
}

/* ---- validation -------------------------------------------------------- */

static void check_matcher(const json_t *m, const char *path, er_diag_t *d) {
  char msg[256];
  if (m && er_json_matcher_check(m, msg, sizeof msg) != 0)
    er_diag_error(d, path, "%s", msg);
}

static void validate(const json_t *args, er_diag_t *d) {
  const json_t *method = json_object_get(args, "method");
  const json_t *hdrs = json_object_get(args, "headers");
  const json_t *expect = json_object_get(args, "expect");
  const json_t *capture = json_object_get(args, "capture");
  const char *k;
  json_t *v;
  char path[512];

  if (json_object_get(args, "json") && json_object_get(args, "body"))
    er_diag_error(d, "/body", "give \"json\" or \"body\", not both");
  if (json_is_string(method) && !strstr(json_string_value(method), "${")) {
    const char *m = json_string_value(method);
    bool tok = *m != '\0';
    for (const char *p = m; *p; p++)
      if (!isalpha((unsigned char)*p) && *p != '-' && *p != '_')
        tok = false;
    if (!tok)
      er_diag_error(d, "/method", "\"%s\" is not an HTTP method", m);
  }
  if (json_is_object(hdrs)) {
    json_object_foreach((json_t *)hdrs, k, v) {
      er_json_pointer_join(path, sizeof path, "/headers", k);
      if (!*k || strpbrk(k, ": \t\r\n"))
        er_diag_error(d, path, "\"%s\" is not a header name", k);
      else if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
        er_diag_error(d, path, "a header value is a string");
    }
  }
  if (json_is_object(expect)) {
    const json_t *eh = json_object_get(expect, "headers");
    const json_t *ej = json_object_get(expect, "json");
    check_matcher(json_object_get(expect, "status"), "/expect/status", d);
    check_matcher(json_object_get(expect, "body"), "/expect/body", d);
    if (json_is_object(eh)) {
      json_object_foreach((json_t *)eh, k, v) {
        er_json_pointer_join(path, sizeof path, "/expect/headers", k);
        check_matcher(v, path, d);
      }
    }
    if (json_is_object(ej)) {
      json_object_foreach((json_t *)ej, k, v) {
        er_json_pointer_join(path, sizeof path, "/expect/json", k);
        if (*k && *k != '/')
          er_diag_error(d, path,
                        "keys of expect.json are JSON pointers such as "
                        "\"/items/0/id\" (\"\" = the whole body)");
        else
          check_matcher(v, path, d);
      }
    }
  }
  if (json_is_object(capture)) {
    json_object_foreach((json_t *)capture, k, v) {
      const char *p = json_string_value(v);
      bool good;
      er_json_pointer_join(path, sizeof path, "/capture", k);
      if (p)
        good = !*p || *p == '/';
      else
        good = json_object_size(v) == 1 &&
               (json_is_string(json_object_get(v, "header")) ||
                json_is_true(json_object_get(v, "status")));
      if (!good)
        er_diag_error(d, path,
                      "a capture is a JSON pointer into the body "
                      "(\"/id\"), {\"header\": \"Name\"} or "
                      "{\"status\": true}");
    }
  }
}

const er_action_t er_act_http = {.name = "http",
                                 .keys = keys,
                                 .check = true,
                                 .validate = validate,
                                 .run = run};
