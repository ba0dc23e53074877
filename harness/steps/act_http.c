/* act_http.c: the "http" step.
 *
 * {"http": {"method": "POST", "url": "...", "headers": {"K": "v"},
 *           "query": {"q": "a b", "page": 2, "tag": ["x", "y"]},
 *           "json": <any> | "body": "raw text" |
 *           "json_file": "bodies/x.json" | "body_file": "bodies/x.txt",
 *           "timeout": "5s",
 *           "expect": {"status": <matcher>, "headers": {"Name": <matcher>},
 *                      "json": {"/pointer": <matcher>}, "body": <matcher>},
 *           "capture": {"name": "/json/pointer" | "$.json.path" |
 *                       {"header": "Name"} | {"status": true} |
 *                       {"text": true} | {"regex": "...", ...}}}}
 * Header names compare case-insensitively. A step without expect.status
 * expects a 2xx status.
 *
 * Details:
 * - method defaults to GET, also when a body is given (say "POST").
 *   Methods are upper-cased. HEAD sends and reads no body.
 * - json is serialised compactly and sent with "Content-Type:
 *   application/json"; body is sent as is with "Content-Type: text/plain;
 *   charset=utf-8"; a Content-Type in headers wins. Not both json and body.
 * - json_file / body_file: the same from a file (lang/fixture.h finds
 *   it), templated in the step's scope as it runs.
 * - query: parameters appended to the url, names and values
 *   percent-encoded (RFC 3986: all but A-Z a-z 0-9 - . _ ~); an array
 *   repeats the name; null gives the name alone.
 * - headers values are strings (numbers and booleans are sent as text).
 * - timeout bounds the request (connect to last byte) within the step's
 *   own deadline. Redirects are not followed.
 * - expect.json: JSON pointer ("" = the whole body) or JSONPath ("$..id")
 *   -> matcher (lang/jsonpath.h: what a multi-valued path is matched
 *   as); the body must be JSON (integers beyond 64 bits kept exactly).
 * expect.body: a matcher on the body as text
 *   ({"$contains": "ok"}, {"$regex": "^OK"}, or the exact text).
 *   expect.headers: a missing header is a missing value, so
 *   {"$exists": false} checks absence.
 * - capture (only when every expectation holds): lang/capture.h, with the
 *   body as the value, {"header": "Name"} (a string) and {"status": true}
 *   (an integer) as sources.
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
#include "base/jsonbig.h"
#include "lang/capture.h"
#include "lang/jsonpath.h"
#include "lang/jsonx.h"
#include "lang/template.h"
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
    {"query", ER_T_OBJECT, false, NULL, NULL},
    {"json", ER_T_ANY, false, NULL, NULL},
    {"body", ER_T_STRING, false, NULL, NULL},
    {"json_file", ER_T_STRING | ER_T_DATA, false, NULL, NULL},
    {"body_file", ER_T_STRING | ER_T_FILE, false, NULL, NULL},
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
  p->doc = er_json_loadb(r->body.data ? r->body.data : "", r->body.len,
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

/* One request from build to capture. The json_t pointers are borrowed
 * from the step's args; the rest is owned and freed by call_free. */
typedef struct call {
  const char *url;
  const json_t *hdrs, *jbody, *tbody, *tmo, *capture;
  const json_t *want_status, *want_headers, *want_json, *want_body;
  char method[32], shown_url[URL_SHOWN];
  char **lines; /* request header lines, each owned */
  size_t nlines;
  char *url_q;       /* url with the query's parameters, owned */
  json_t *file_body; /* json_file / body_file, templated, owned */
  char *body;
  size_t body_len;
  bool ok; /* every expectation holds (and every capture was found) */
  er_http_req_t req;
  er_http_resp_t resp;
  secrets_t sec;
  er_buf_t why;
  er_buf_t d; /* detail before scrubbing */
  parsed_t parsed;
  json_t *caps;
} call_t;

static void call_init(call_t *c, const json_t *args) {
  const json_t *expect = json_object_get(args, "expect");
  memset(c, 0, sizeof *c);
  c->url = json_string_value(json_object_get(args, "url"));
  c->hdrs = json_object_get(args, "headers");
  c->jbody = json_object_get(args, "json");
  c->tbody = json_object_get(args, "body");
  c->tmo = json_object_get(args, "timeout");
  c->capture = json_object_get(args, "capture");
  c->want_status = json_object_get(expect, "status");
  c->want_headers = json_object_get(expect, "headers");
  c->want_json = json_object_get(expect, "json");
  c->want_body = json_object_get(expect, "body");
  c->ok = true;
  er_buf_init(&c->why, 16 * 1024);
  er_buf_init(&c->d, 32 * 1024);
}

static void call_free(call_t *c) {
  free(c->url_q);
  json_decref(c->file_body);
  json_decref(c->caps);
  json_decref(c->parsed.doc);
  er_http_resp_free(&c->resp);
  for (size_t i = 0; i < c->nlines; i++)
    free(c->lines[i]);
  free(c->lines);
  free(c->body);
  secrets_free(&c->sec);
  er_buf_free(&c->why);
  er_buf_free(&c->d);
}

/* ---- run: build -------------------------------------------------------- */

/* url, method and the shapes of the arguments. ER_STEP_OK or ER_STEP_FATAL
 * with detail. */
static int build_args(call_t *c, const json_t *args) {
  const json_t *mj = json_object_get(args, "method");
  const json_t *expect = json_object_get(args, "expect");
  if (!c->url) {
    er_buf_puts(&c->d, "http: \"url\" (a string) is required");
    return ER_STEP_FATAL;
  }
  er_http_redact_url(c->url, c->shown_url, sizeof c->shown_url);
  url_secret(c->url, &c->sec);
  if (mj && !json_is_string(mj)) {
    er_buf_puts(&c->d, "http: \"method\" is a string");
    return ER_STEP_FATAL;
  }
  snprintf(c->method, sizeof c->method, "%s",
           mj ? json_string_value(mj) : "GET");
  for (char *p = c->method; *p; p++)
    *p = (char)toupper((unsigned char)*p);
  if (c->jbody && c->tbody) {
    er_buf_puts(&c->d, "http: give \"json\" or \"body\", not both");
    return ER_STEP_FATAL;
  }
  if (c->tbody && !json_is_string(c->tbody)) {
    er_buf_puts(&c->d, "http: \"body\" is a string (use \"json\" for JSON)");
    return ER_STEP_FATAL;
  }
  if ((c->hdrs && !json_is_object(c->hdrs)) ||
      (expect && !json_is_object(expect)) ||
      (c->want_headers && !json_is_object(c->want_headers)) ||
      (c->want_json && !json_is_object(c->want_json)) ||
      (c->capture && !json_is_object(c->capture))) {
    er_buf_puts(&c->d, "http: headers, expect, expect.headers, expect.json and "
                       "capture are objects");
    return ER_STEP_FATAL;
  }
  return ER_STEP_OK;
}

static const char *header_value(const json_t *v, char *num, size_t n);

/* "query": each parameter percent-encoded onto the URL ("?" or "&"); an
 * array value repeats the name. ER_STEP_OK, or ER_STEP_FATAL with
 * detail. */
static int build_query(call_t *c, const json_t *query) {
  er_buf_t u = ER_BUF_INIT(1u << 20);
  const char *k;
  json_t *v;
  bool first = !strchr(c->url, '?');
  er_buf_puts(&u, c->url);
  json_object_foreach((json_t *)query, k, v) {
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
      char num[64];
      const json_t *one = json_is_array(v) ? json_array_get(v, i) : v;
      const char *val = header_value(one, num, sizeof num);
      if (!val && !json_is_null(one)) {
        er_buf_printf(&c->d,
                      "http: query parameter \"%s\" is a string, a number, "
                      "a boolean or an array of them",
                      k);
        er_buf_free(&u);
        return ER_STEP_FATAL;
      }
      er_buf_puts(&u, first ? "?" : "&");
      first = false;
      er_url_encode(&u, k, strlen(k));
      if (val) {
        er_buf_puts(&u, "=");
        er_url_encode(&u, val, strlen(val));
      }
    }
  }
  c->url_q = er_buf_steal(&u);
  er_buf_free(&u);
  if (!c->url_q)
    return ER_STEP_ERROR;
  c->url = c->url_q;
  er_http_redact_url(c->url, c->shown_url, sizeof c->shown_url);
  return ER_STEP_OK;
}

/* json_file / body_file: the file's content templated in the step's
 * scope (a data file's values; a text file's text). */
static int load_body_file(er_exec_t *x, call_t *c, const json_t *args) {
  const char *jf = json_string_value(json_object_get(args, "json_file"));
  const char *bf = json_string_value(json_object_get(args, "body_file"));
  er_err_t err = {0};
  if (jf) {
    c->file_body = er_exec_data(x, jf, &err);
    c->jbody = c->file_body;
  } else if (bf) {
    char *path = er_exec_file(x, bf, &err);
    char *text = path ? er_read_file(path, 16u << 20, NULL, &err) : NULL;
    json_t *v = text ? er_tmpl_expand_str(x->tmpl, text, &err) : NULL;
    if (v && !json_is_string(v)) { /* the file is one ${...} of a value */
      char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      json_decref(v);
      v = t ? json_string(t) : NULL;
      free(t);
    }
    c->file_body = v;
    c->tbody = v;
    if (!v && !err.code)
      er_errf(&err, ER_E_ENV, "out of memory");
    else if (!v && path)
      er_buf_printf(&c->d, "http: %s: ", path);
    free(text);
    free(path);
  } else {
    return ER_STEP_OK;
  }
  if (!c->file_body) {
    er_buf_printf(&c->d, "http: %s", err.msg);
    return ER_STEP_FATAL;
  }
  return ER_STEP_OK;
}

/* A header value as text (in num when it is a number); NULL when it is
 * not a string, number or boolean. */
static const char *header_value(const json_t *v, char *num, size_t n) {
  if (er_big_digits(v))
    return er_big_digits(v);
  if (json_is_string(v))
    return json_string_value(v);
  if (json_is_integer(v)) {
    snprintf(num, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return num;
  }
  if (json_is_real(v)) {
    snprintf(num, n, "%.17g", json_real_value(v));
    return num;
  }
  if (json_is_boolean(v))
    return json_is_true(v) ? "true" : "false";
  return NULL;
}

/* The request header lines; has_ctype tells whether one is a Content-Type.
 * ER_STEP_OK, ER_STEP_FATAL with detail or ER_STEP_ERROR. */
static int build_headers(call_t *c, bool *has_ctype) {
  const char *k;
  json_t *v;
  c->lines = calloc(json_object_size(c->hdrs) + 1, sizeof *c->lines);
  if (!c->lines)
    return ER_STEP_ERROR;
  if (!c->hdrs)
    return ER_STEP_OK;
  json_object_foreach((json_t *)c->hdrs, k, v) {
    char num[64];
    const char *val = header_value(v, num, sizeof num);
    er_buf_t line = ER_BUF_INIT(64 * 1024);
    if (!val || strpbrk(k, ":\r\n") || strpbrk(val, "\r\n") || !*k) {
      er_buf_printf(&c->d,
                    "http: header \"%s\": names have no ':' and values are "
                    "one-line strings",
                    k);
      er_buf_free(&line);
      return ER_STEP_FATAL;
    }
    if (strcasecmp(k, "Content-Type") == 0)
      *has_ctype = true;
    if (er_http_header_is_secret(k))
      secret_add_value(&c->sec, val);
    /* "Name;" sends a header with an empty value in curl */
    er_buf_printf(&line, *val ? "%s: %s" : "%s;", k, val);
    c->lines[c->nlines++] = er_buf_steal(&line);
    er_buf_free(&line);
    if (!c->lines[c->nlines - 1])
      return ER_STEP_ERROR;
  }
  return ER_STEP_OK;
}

/* The body and, unless the headers have one, its Content-Type.
 * ER_STEP_OK or ER_STEP_ERROR. */
static int build_body(call_t *c, bool has_ctype) {
  char **nl;
  if (c->jbody) {
    c->body = er_json_dumps(c->jbody, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!c->body)
      return ER_STEP_ERROR;
    c->body_len = strlen(c->body);
  } else if (c->tbody) {
    c->body = er_strdup(json_string_value(c->tbody));
    c->body_len = json_string_length(c->tbody);
    if (!c->body)
      return ER_STEP_ERROR;
  }
  if (!c->body || has_ctype)
    return ER_STEP_OK;
  nl = realloc(c->lines, (c->nlines + 2) * sizeof *nl);
  if (!nl)
    return ER_STEP_ERROR;
  c->lines = nl;
  c->lines[c->nlines] =
      er_strdup(c->jbody ? "Content-Type: application/json"
                         : "Content-Type: text/plain; charset=utf-8");
  if (!c->lines[c->nlines])
    return ER_STEP_ERROR;
  c->nlines++;
  return ER_STEP_OK;
}

/* The request: URL, method, headers, body and deadline. ER_STEP_OK, or
 * another ER_STEP_* with detail (none when memory ran out). */
static int build(er_exec_t *x, call_t *c, const json_t *args) {
  bool has_ctype = false;
  const json_t *query = json_object_get(args, "query");
  int rc = build_args(c, args);
  if (rc == ER_STEP_OK && json_is_object(query))
    rc = build_query(c, query);
  if (rc == ER_STEP_OK)
    rc = load_body_file(x, c, args);
  if (rc == ER_STEP_OK)
    rc = build_headers(c, &has_ctype);
  if (rc == ER_STEP_OK)
    rc = build_body(c, has_ctype);
  if (rc != ER_STEP_OK)
    return rc;
  c->req.method = c->method;
  c->req.url = c->url;
  c->req.headers = (const char *const *)c->lines;
  c->req.nheaders = c->nlines;
  c->req.body = c->body;
  c->req.body_len = c->body_len;
  c->req.deadline_ms = x->deadline_ms;
  if (c->tmo) {
    int64_t ms;
    if (!json_is_string(c->tmo) ||
        er_parse_duration(json_string_value(c->tmo), &ms) != 0) {
      er_buf_puts(&c->d, "http: \"timeout\" is a duration such as \"5s\"");
      return ER_STEP_FATAL;
    }
    if (er_now_ms() + ms < c->req.deadline_ms)
      c->req.deadline_ms = er_now_ms() + ms;
  }
  return ER_STEP_OK;
}

/* ---- run: do ----------------------------------------------------------- */

/* Sends the request on the branch's curl handle and reads the response
 * into c->resp. ER_STEP_OK, or ER_STEP_ERROR / ER_STEP_FATAL with
 * detail. */
static int do_request(er_exec_t *x, call_t *c) {
  er_err_t err = {0, ""};
  er_http_t *h = er_session_get(x->session, "http");
  if (!h) {
    h = er_http_new(&err);
    if (!h || er_session_put(x->session, "http", h, http_free_cb) != 0) {
      er_http_free(h);
      er_buf_printf(&c->d, "http: %s", err.msg[0] ? err.msg : "out of memory");
      return ER_STEP_ERROR;
    }
  }
  if (er_http_perform(h, &c->req, &c->resp, &err) != 0) {
    bool raw = false; /* a character a URL must not hold as it is */
    for (const unsigned char *p = (const unsigned char *)c->url; p && *p; p++)
      raw = raw || *p <= ' ' || *p >= 0x7f || *p == '"' || *p == '<' ||
            *p == '>' || *p == '\\' || *p == '^' || *p == '`' || *p == '{' ||
            *p == '|' || *p == '}';
    er_buf_printf(&c->d, "http %s %s: %s", c->method, c->shown_url, err.msg);
    if (err.code == ER_E_INPUT && raw)
      er_buf_puts(&c->d, " (a value put into the URL with spaces or other "
                         "characters a URL cannot hold must be encoded: "
                         "${urlencode(name)}, or give it in \"query\")");
    log_line(x, &c->sec, "http %s %s: %s", c->method, c->shown_url, err.msg);
    return step_rc(err.code);
  }
  return ER_STEP_OK;
}

/* ---- run: check -------------------------------------------------------- */

/* Each check appends what differs to c->why and clears c->ok. */

static void check_status(call_t *c) {
  json_t *status_j = json_integer(c->resp.status);
  if (c->want_status) {
    er_buf_t w = ER_BUF_INIT(1024);
    if (!er_json_match(status_j, c->want_status, &w)) {
      er_buf_printf(&c->why, "\n  status: %s", er_buf_cstr(&w));
      c->ok = false;
    }
    er_buf_free(&w);
  } else if (c->resp.status < 200 || c->resp.status > 299) {
    er_buf_printf(&c->why, "\n  status: expected 2xx, got %ld", c->resp.status);
    c->ok = false;
  }
  json_decref(status_j);
}

static void check_headers(call_t *c) {
  const char *k;
  json_t *m;
  if (!c->want_headers)
    return;
  json_object_foreach((json_t *)c->want_headers, k, m) {
    char *v = er_http_header_get(&c->resp, k);
    json_t *vj = v ? json_string(v) : NULL;
    er_buf_t w = ER_BUF_INIT(1024);
    if (v && er_http_header_is_secret(k)) /* Set-Cookie */
      secret_add_value(&c->sec, v);
    if (!er_json_match(vj, m, &w)) {
      er_buf_printf(&c->why, "\n  header %s: %s", k, er_buf_cstr(&w));
      c->ok = false;
    }
    er_buf_free(&w);
    json_decref(vj);
    free(v);
  }
}

static void check_json(call_t *c) {
  const char *ptr;
  json_t *m, *doc;
  if (!c->want_json)
    return;
  doc = body_json(&c->resp, &c->parsed);
  if (!doc) {
    er_buf_printf(&c->why, "\n  json: %s", c->parsed.msg);
    c->ok = false;
    return;
  }
  json_object_foreach((json_t *)c->want_json, ptr, m) {
    er_buf_t w = ER_BUF_INIT(1024);
    er_sel_t sel;
    char msg[512];
    if (er_select(doc, ptr, &sel, msg, sizeof msg) != 0)
      er_buf_puts(&w, msg);
    if (w.len || !er_sel_match(&sel, m, &w)) {
      er_buf_printf(&c->why, "\n  json %s: %s", *ptr ? ptr : "\"\"",
                    er_buf_cstr(&w));
      c->ok = false;
    }
    er_sel_free(&sel);
    er_buf_free(&w);
  }
}

static void check_body(call_t *c) {
  json_t *t;
  er_buf_t w = ER_BUF_INIT(1024);
  if (!c->want_body)
    return;
  t = body_text(&c->resp.body);
  if (!er_json_match(t, c->want_body, &w)) {
    er_buf_printf(&c->why, "\n  body: %s", er_buf_cstr(&w));
    c->ok = false;
  }
  er_buf_free(&w);
  json_decref(t);
}

static void check(call_t *c) {
  check_status(c);
  check_headers(c);
  check_json(c);
  check_body(c);
}

/* The failure detail: what was sent, what differed and the body. */
/* The first line names the first check that failed: the status when it
 * did, else e.g. "json /ok: expected true, got false (status 200)". */
static void put_failure(call_t *c) {
  const char *why = er_buf_cstr(&c->why);
  er_buf_printf(&c->d, "http %s %s: ", c->method, c->shown_url);
  if (strncmp(why, "\n  ", 3) == 0 && strncmp(why, "\n  status:", 10) != 0) {
    size_t n = strcspn(why + 3, "\n");
    er_buf_append(&c->d, why + 3, n);
    er_buf_printf(&c->d, " (status %ld)", c->resp.status);
  } else {
    er_buf_printf(&c->d, "got status %ld", c->resp.status);
    if (!c->want_status)
      er_buf_puts(&c->d, " (expected 2xx)");
    else {
      er_buf_puts(&c->d, " (expected ");
      put_json(&c->d, c->want_status, 200);
      er_buf_puts(&c->d, ")");
    }
  }
  er_buf_puts(&c->d, why);
  er_buf_printf(&c->d, "\n  response body (%zu bytes%s)%s", c->resp.body.len,
                c->resp.body.truncated ? ", cut at the 4 MB cap" : "",
                c->resp.body.len ? ":\n    " : "");
  if (c->resp.body.len)
    put_body(&c->d, &c->resp.body);
}

/* ---- run: capture ------------------------------------------------------ */

/* The sources of the captures (lang/capture.h). */
static const json_t *cap_doc(void *ud, const char **why_not) {
  call_t *c = ud;
  json_t *doc = body_json(&c->resp, &c->parsed);
  if (!doc)
    *why_not = c->parsed.msg;
  return doc;
}

static char *cap_header(void *ud, const char *name) {
  call_t *c = ud;
  char *hv = er_http_header_get(&c->resp, name);
  if (hv && er_http_header_is_secret(name))
    secret_add_value(&c->sec, hv);
  return hv;
}

static json_t *cap_named(void *ud, const char *name) {
  call_t *c = ud;
  return strcmp(name, "status") == 0 ? json_integer(c->resp.status) : NULL;
}

/* The captures into c->caps (when every expectation holds); one not found
 * clears c->ok. ER_STEP_OK, ER_STEP_FATAL with detail or ER_STEP_ERROR. */
static int capture(call_t *c) {
  const char *name;
  json_t *spec;
  if (!c->ok || !c->capture)
    return ER_STEP_OK;
  c->caps = json_object();
  if (!c->caps)
    return ER_STEP_ERROR;
  json_object_foreach((json_t *)c->capture, name, spec) {
    er_cap_src_t src = {ER_CAP_HEADER | ER_CAP_STATUS,
                        "body",
                        c,
                        cap_doc,
                        NULL,
                        c->resp.body.data ? c->resp.body.data : "",
                        c->resp.body.len,
                        cap_header,
                        cap_named};
    er_buf_t w = ER_BUF_INIT(2048);
    char msg[512];
    json_t *v = NULL;
    if (er_capture_check(spec, src.has, msg, sizeof msg)) {
      er_buf_printf(&c->d, "http: capture \"%s\": %s", name, msg);
      er_buf_free(&w);
      return ER_STEP_FATAL;
    }
    v = er_capture_take(spec, &src, &w);
    if (!v) {
      er_buf_printf(&c->why, "\n  capture %s: %s", name, er_buf_cstr(&w));
      c->ok = false;
    } else {
      json_object_set_new(c->caps, name, v);
    }
    er_buf_free(&w);
  }
  return ER_STEP_OK;
}

/* ---- run: the step ----------------------------------------------------- */

static int run(er_exec_t *x, const json_t *args) {
  call_t c;
  int rc;

  call_init(&c, args);
  rc = build(x, &c, args);
  if (rc != ER_STEP_OK)
    goto out;
  rc = do_request(x, &c);
  if (rc != ER_STEP_OK)
    goto out;
  check(&c);
  rc = capture(&c);
  if (rc != ER_STEP_OK)
    goto out;
  if (!c.ok) {
    put_failure(&c);
    rc = ER_STEP_FAIL;
    log_line(x, &c.sec,
             "http %s %s -> %ld (%lldms, %zu bytes): not as expected", c.method,
             c.shown_url, c.resp.status, (long long)c.resp.elapsed_ms,
             c.resp.body.len);
    goto out;
  }
  if (c.caps && x->captures)
    json_object_update(x->captures, c.caps);
  log_line(x, &c.sec, "http %s %s -> %ld (%lldms, %zu bytes)", c.method,
           c.shown_url, c.resp.status, (long long)c.resp.elapsed_ms,
           c.resp.body.len);
  rc = ER_STEP_OK;
out:
  if (c.d.len)
    put_scrubbed(x->detail, er_buf_cstr(&c.d), &c.sec);
  call_free(&c);
  return rc;
}

/* ---- validation -------------------------------------------------------- */

static void check_matcher(const json_t *m, const char *path, er_diag_t *d) {
  er_diag_matcher(d, path, m);
}

static void validate(const json_t *args, er_diag_t *d) {
  const json_t *method = json_object_get(args, "method");
  const json_t *hdrs = json_object_get(args, "headers");
  const json_t *expect = json_object_get(args, "expect");
  const json_t *capture = json_object_get(args, "capture");
  const char *k;
  json_t *v;
  char path[512];

  {
    const char *const bodies[] = {"json", "body", "json_file", "body_file"};
    const char *first = NULL;
    for (size_t i = 0; i < 4; i++) {
      if (!json_object_get(args, bodies[i]))
        continue;
      if (first) {
        char bp[32];
        snprintf(bp, sizeof bp, "/%s", bodies[i]);
        er_diag_error(d, bp, "give one body: \"%s\" or \"%s\", not both", first,
                      bodies[i]);
      }
      first = bodies[i];
    }
  }
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
        if (*k && *k != '/' && !er_jsonpath_is(k) && !strstr(k, "${"))
          er_diag_error(d, path,
                        "keys of expect.json are JSON pointers such as "
                        "\"/items/0/id\" (\"\" = the whole body) or "
                        "JSONPaths such as \"$.items[*].id\"");
        else
          er_diag_select(d, path, k);
        check_matcher(v, path, d);
      }
    }
  }
  if (json_is_object(capture)) {
    json_object_foreach((json_t *)capture, k, v) {
      char msg[512];
      er_json_pointer_join(path, sizeof path, "/capture", k);
      if (er_capture_check(v, ER_CAP_HEADER | ER_CAP_STATUS, msg, sizeof msg))
        er_diag_error(d, path, "%s", msg);
    }
  }
}

const er_action_t er_act_http = {.name = "http",
                                 .keys = keys,
                                 .check = true,
                                 .validate = validate,
                                 .run = run};
