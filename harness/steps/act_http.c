/* act_http.c: the "http" step.
 *
 * {"http": {"method": "POST", "url": "...", "headers": {"K": "v"},
 *           "query": {"q": "a b", "page": 2, "tag": ["x", "y"]},
 *           "json": <any> | "body": "raw text" |
 *           "json_file": "bodies/x.json" | "body_file": "bodies/x.txt" |
 *           "form": {"k": "v"} | "multipart": {"k": "v" | {"file": "x"}} |
 *           "body_base64": "AQL//g==",
 *           "timeout": "5s", "follow_redirects": true | 5, "cookies": true,
 *           "insecure": false, "ca": "ca.pem", "cert": "c.pem", "key": "k.pem",
 *           "expect": {"status": <matcher>, "headers": {"Name": <matcher>},
 *                      "json": {"/pointer": <matcher>}, "body": <matcher>,
 *                      "body_file": "x.bin", "sha256": "<hex>",
 *                      "duration": {"$lt": "500ms"}, "http_version": "1.1",
 *                      "url": <matcher>, "redirects": <matcher>,
 *                      "cookies": {"name": <matcher> | {"path": <matcher>,
 *                                  "secure": true, ...}}},
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
 * - form: urlencoded (application/x-www-form-urlencoded), as query;
 *   multipart: curl's MIME parts (a value, {"value", "type"} or {"file",
 *   "filename", "type"}: the file's bytes); body_base64: the bytes
 *   (application/octet-stream). One body per step.
 * - timeout bounds the request (connect to last byte) within the step's
 *   own deadline. Redirects are followed only with follow_redirects
 *   (true: up to MAX_REDIRECTS). cookies (default true): the session's
 *   jar (adapters/http.h) is used. insecure/ca/cert/key: TLS.
 * - expect.headers: a repeated header is an array of its values, one a
 *   string. duration: milliseconds, duration strings in the matcher
 *   converted; cookies: the Set-Cookie headers parsed (cookie_parse);
 *   body_file: the same bytes; sha256: the body's hash.
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
#include "base/pyjson.h"
#include "lang/capture.h"
#include "lang/jsonpath.h"
#include "lang/jsonx.h"
#include "lang/template.h"
#include "run/exec.h"

#define DETAIL_BODY 2048 /* bytes of the response body in a detail */
#define MAX_SECRETS 16
#define URL_SHOWN 2048
#define FILE_CAP (16u << 20) /* bytes read of a file a step names */
#define MAX_REDIRECTS 30     /* "follow_redirects": true */

static const er_keyspec_t expect_keys[] = {
    {"status", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"headers", ER_T_OBJECT, false, NULL, NULL},
    {"json", ER_T_OBJECT, false, NULL, NULL},
    {"body", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"body_file", ER_T_STRING | ER_T_FILE, false, NULL, NULL},
    {"sha256", ER_T_STRING, false, NULL, NULL},
    {"duration", ER_T_ANY, false, NULL, NULL}, /* durations: validate() */
    {"http_version", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"url", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"redirects", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"cookies", ER_T_OBJECT, false, NULL, NULL},
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
    {"body_base64", ER_T_STRING, false, NULL, NULL},
    {"form", ER_T_OBJECT, false, NULL, NULL},
    {"multipart", ER_T_OBJECT, false, NULL, NULL},
    {"timeout", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"follow_redirects", ER_T_BOOL | ER_T_INT, false, NULL, NULL},
    {"cookies", ER_T_BOOL, false, NULL, NULL},
    {"insecure", ER_T_BOOL, false, NULL, NULL},
    {"ca", ER_T_STRING | ER_T_FILE, false, NULL, NULL},
    {"cert", ER_T_STRING | ER_T_FILE, false, NULL, NULL},
    {"key", ER_T_STRING | ER_T_FILE, false, NULL, NULL},
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
  const json_t *want_version, *want_url, *want_redirects, *want_cookies;
  const json_t *want_sha256;
  json_t *want_duration; /* in milliseconds, owned */
  char *want_file;       /* expect.body_file's bytes, owned */
  size_t want_file_len;
  char *want_file_name; /* its path, owned */
  char method[32], shown_url[URL_SHOWN];
  char **lines; /* request header lines, each owned */
  size_t nlines;
  char *url_q;       /* url with the query's parameters, owned */
  json_t *file_body; /* json_file / body_file, templated, owned */
  char *body;
  size_t body_len;
  er_http_part_t *parts; /* multipart; names and data in own */
  size_t nparts;
  char **own; /* strings the request borrows, each owned */
  size_t nown;
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
  c->want_version = json_object_get(expect, "http_version");
  c->want_url = json_object_get(expect, "url");
  c->want_redirects = json_object_get(expect, "redirects");
  c->want_cookies = json_object_get(expect, "cookies");
  c->want_sha256 = json_object_get(expect, "sha256");
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
  free(c->parts);
  for (size_t i = 0; i < c->nown; i++)
    free(c->own[i]);
  free(c->own);
  json_decref(c->want_duration);
  free(c->want_file);
  free(c->want_file_name);
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

/* Parameters name=value percent-encoded onto u, each after sep ("&",
 * the first after first_sep); an array value repeats the name, null
 * gives the name alone. ER_STEP_OK, or ER_STEP_FATAL with detail naming
 * what ("query parameter", "form field"). */
static int encode_params(call_t *c, er_buf_t *u, const json_t *map,
                         const char *first_sep, const char *what) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)map, k, v) {
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
      char num[64];
      const json_t *one = json_is_array(v) ? json_array_get(v, i) : v;
      const char *val = header_value(one, num, sizeof num);
      if (!val && !json_is_null(one)) {
        er_buf_printf(&c->d,
                      "http: %s \"%s\" is a string, a number, "
                      "a boolean or an array of them",
                      what, k);
        return ER_STEP_FATAL;
      }
      er_buf_puts(u, first_sep ? first_sep : "&");
      first_sep = NULL;
      er_url_encode(u, k, strlen(k));
      if (val) {
        er_buf_puts(u, "=");
        er_url_encode(u, val, strlen(val));
      }
    }
  }
  return ER_STEP_OK;
}

/* "query": each parameter percent-encoded onto the URL ("?" or "&").
 * ER_STEP_OK, or ER_STEP_FATAL with detail. */
static int build_query(call_t *c, const json_t *query) {
  er_buf_t u = ER_BUF_INIT(1u << 20);
  int rc;
  er_buf_puts(&u, c->url);
  rc = encode_params(c, &u, query, strchr(c->url, '?') ? "&" : "?",
                     "query parameter");
  if (rc == ER_STEP_OK) {
    c->url_q = er_buf_steal(&u);
    rc = c->url_q ? ER_STEP_OK : ER_STEP_ERROR;
  }
  er_buf_free(&u);
  if (rc != ER_STEP_OK)
    return rc;
  c->url = c->url_q;
  er_http_redact_url(c->url, c->shown_url, sizeof c->shown_url);
  return ER_STEP_OK;
}

/* Keeps p (may be NULL: memory ran out) until call_free; returns it. */
static char *keep(call_t *c, char *p) {
  char **n;
  if (!p)
    return NULL;
  n = realloc(c->own, (c->nown + 1) * sizeof *n);
  if (!n) {
    free(p);
    return NULL;
  }
  c->own = n;
  c->own[c->nown++] = p;
  return p;
}

static int b64val(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9')
    return ch - '0' + 52;
  if (ch == '+' || ch == '-')
    return 62;
  if (ch == '/' || ch == '_')
    return 63;
  return -1;
}

/* Standard or URL-safe base64 (whitespace and padding ignored) into a new
 * buffer of *len bytes; NULL when s is not base64 (or memory ran out). */
static char *base64_decode(const char *s, size_t *len) {
  size_t n = strlen(s), o = 0;
  unsigned acc = 0;
  int bits = 0;
  char *out = malloc(n / 4 * 3 + 3);
  if (!out)
    return NULL;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int v = b64val(*p);
    if (*p == '=' || isspace(*p))
      continue;
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  *len = o;
  return out;
}

/* "form": the fields urlencoded (application/x-www-form-urlencoded);
 * "body_base64": the bytes it decodes to. ER_STEP_OK, or another
 * ER_STEP_* with detail. */
static int build_form_b64(call_t *c, const json_t *args) {
  const json_t *form = json_object_get(args, "form");
  const json_t *b64 = json_object_get(args, "body_base64");
  if (json_is_object(form)) {
    er_buf_t b = ER_BUF_INIT(FILE_CAP);
    int rc = encode_params(c, &b, form, "", "form field");
    if (rc == ER_STEP_OK) {
      c->body_len = b.len;
      c->body = er_buf_steal(&b);
      rc = c->body ? ER_STEP_OK : ER_STEP_ERROR;
    }
    er_buf_free(&b);
    return rc;
  }
  if (json_is_string(b64)) {
    c->body = base64_decode(json_string_value(b64), &c->body_len);
    if (!c->body) {
      er_buf_puts(&c->d, "http: \"body_base64\" is not base64");
      return ER_STEP_FATAL;
    }
  }
  return ER_STEP_OK;
}

/* The bytes of a file a step names; NULL with detail ("http: what: ..."). */
static char *read_named(er_exec_t *x, call_t *c, const char *what,
                        const char *name, size_t *len, char **path_out) {
  er_err_t err = {0, ""};
  char *path = er_exec_file(x, name, &err);
  char *data = path ? er_read_file(path, FILE_CAP, len, &err) : NULL;
  if (!data)
    er_buf_printf(&c->d, "http: %s: %s", what, err.msg);
  if (path_out && data)
    *path_out = path;
  else
    free(path);
  return data;
}

/* One multipart part from a value: a field (a string, number or boolean,
 * or {"value": v, "type": t}) or a file ({"file": "name", "filename":
 * "x", "type": t}). ER_STEP_OK, or another ER_STEP_* with detail. */
static int build_part(er_exec_t *x, call_t *c, const char *name,
                      const json_t *v) {
  er_http_part_t *p = &c->parts[c->nparts];
  const json_t *val = json_is_object(v) ? json_object_get(v, "value") : v;
  const char *file = json_string_value(json_object_get(v, "file"));
  const char *fname = json_string_value(json_object_get(v, "filename"));
  char num[64];
  memset(p, 0, sizeof *p);
  p->name = name;
  p->type = json_string_value(json_object_get(v, "type"));
  if (file) {
    char *path = NULL, *data = read_named(x, c, name, file, &p->len, &path);
    if (!data)
      return ER_STEP_FATAL;
    p->data = keep(c, data);
    keep(c, path);
    p->filename = fname                ? fname
                  : strrchr(file, '/') ? strrchr(file, '/') + 1
                                       : file;
    if (!p->data || !path)
      return ER_STEP_ERROR;
  } else {
    p->data = header_value(val, num, sizeof num);
    if (!p->data) {
      er_buf_printf(&c->d,
                    "http: multipart part \"%s\" is a string, a number, a "
                    "boolean, {\"value\": ...} or {\"file\": ...}",
                    name);
      return ER_STEP_FATAL;
    }
    p->data = keep(c, er_strdup(p->data));
    if (!p->data)
      return ER_STEP_ERROR;
    p->len = strlen(p->data);
    p->filename = fname;
  }
  c->nparts++;
  return ER_STEP_OK;
}

/* "multipart": a part per name (an array gives several of one name). */
static int build_multipart(er_exec_t *x, call_t *c, const json_t *mp) {
  const char *k;
  json_t *v;
  size_t n = 0;
  json_object_foreach((json_t *)mp, k, v) n +=
      json_is_array(v) ? json_array_size(v) : 1;
  c->parts = calloc(n + 1, sizeof *c->parts);
  if (!c->parts)
    return ER_STEP_ERROR;
  json_object_foreach((json_t *)mp, k, v) {
    size_t m = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < m; i++) {
      int rc = build_part(x, c, k, json_is_array(v) ? json_array_get(v, i) : v);
      if (rc != ER_STEP_OK)
        return rc;
    }
  }
  c->req.parts = c->parts;
  c->req.nparts = c->nparts;
  return ER_STEP_OK;
}

/* follow_redirects, cookies and the TLS options into c->req. */
static int build_options(er_exec_t *x, call_t *c, const json_t *args) {
  const json_t *fr = json_object_get(args, "follow_redirects");
  const json_t *ck = json_object_get(args, "cookies");
  const char *const files[] = {"ca", "cert", "key"};
  const char **dst[] = {&c->req.ca, &c->req.cert, &c->req.key};
  if (json_is_true(fr))
    c->req.max_redirects = MAX_REDIRECTS;
  else if (json_is_integer(fr) && json_integer_value(fr) > 0)
    c->req.max_redirects = (long)json_integer_value(fr);
  c->req.cookies = !json_is_false(ck);
  c->req.insecure = json_is_true(json_object_get(args, "insecure"));
  for (size_t i = 0; i < 3; i++) {
    const char *name = json_string_value(json_object_get(args, files[i]));
    er_err_t err = {0, ""};
    if (!name)
      continue;
    *dst[i] = keep(c, er_exec_file(x, name, &err));
    if (!*dst[i]) {
      er_buf_printf(&c->d, "http: %s: %s", files[i],
                    err.code ? err.msg : "out of memory");
      return err.code ? ER_STEP_FATAL : ER_STEP_ERROR;
    }
  }
  return ER_STEP_OK;
}

/* A matcher with every duration string ("500ms") as milliseconds. */
static json_t *durations_ms(const json_t *m, bool *bad) {
  const char *k;
  json_t *v, *out;
  int64_t ms;
  if (json_is_string(m)) {
    if (er_parse_duration(json_string_value(m), &ms) == 0)
      return json_integer(ms);
    *bad = true;
  }
  if (json_is_array(m)) {
    out = json_array();
    for (size_t i = 0; out && i < json_array_size(m); i++)
      json_array_append_new(out, durations_ms(json_array_get(m, i), bad));
    return out;
  }
  if (!json_is_object(m))
    return json_deep_copy(m);
  out = json_object();
  json_object_foreach((json_t *)m, k, v) {
    if (strcmp(k, "$type") == 0 || strcmp(k, "$regex") == 0)
      json_object_set_new(out, k, json_deep_copy(v));
    else
      json_object_set_new(out, k, durations_ms(v, bad));
  }
  return out;
}

/* expect.duration in milliseconds and expect.body_file's bytes. */
static int build_expect(er_exec_t *x, call_t *c, const json_t *args) {
  const json_t *expect = json_object_get(args, "expect");
  const json_t *dur = json_object_get(expect, "duration");
  const char *bf = json_string_value(json_object_get(expect, "body_file"));
  if (dur) {
    bool bad = false;
    c->want_duration = durations_ms(dur, &bad);
    if (bad) {
      er_buf_puts(&c->d, "http: expect.duration: its values are durations "
                         "such as \"500ms\" or milliseconds");
      return ER_STEP_FATAL;
    }
    if (!c->want_duration)
      return ER_STEP_ERROR;
  }
  if (bf) {
    c->want_file = read_named(x, c, "expect.body_file", bf, &c->want_file_len,
                              &c->want_file_name);
    if (!c->want_file)
      return ER_STEP_FATAL;
  }
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

/* The body and, unless the headers have one, its Content-Type (form and
 * body_base64 made theirs already; multipart's is curl's).
 * ER_STEP_OK or ER_STEP_ERROR. */
static int build_body(call_t *c, const json_t *args, bool has_ctype) {
  const char *ctype = "Content-Type: text/plain; charset=utf-8";
  char **nl;
  if (json_object_get(args, "form"))
    ctype = "Content-Type: application/x-www-form-urlencoded";
  else if (json_object_get(args, "body_base64"))
    ctype = "Content-Type: application/octet-stream";
  else if (c->jbody)
    ctype = "Content-Type: application/json";
  if (!c->body && c->jbody) {
    c->body = er_json_dumps(c->jbody, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!c->body)
      return ER_STEP_ERROR;
    c->body_len = strlen(c->body);
  } else if (!c->body && c->tbody) {
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
  c->lines[c->nlines] = er_strdup(ctype);
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
    rc = build_form_b64(c, args);
  if (rc == ER_STEP_OK && json_is_object(json_object_get(args, "multipart")))
    rc = build_multipart(x, c, json_object_get(args, "multipart"));
  if (rc == ER_STEP_OK)
    rc = build_headers(c, &has_ctype);
  if (rc == ER_STEP_OK)
    rc = build_body(c, args, has_ctype);
  if (rc == ER_STEP_OK)
    rc = build_options(x, c, args);
  if (rc == ER_STEP_OK)
    rc = build_expect(x, c, args);
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

/* A header's values: NULL when absent, a string when there is one, an
 * array of strings when it is repeated (Set-Cookie). */
static json_t *header_json(call_t *c, const char *name) {
  const char *vals[ER_HTTP_MAX_HEADERS];
  size_t n = er_http_header_values(&c->resp, name, vals, ER_HTTP_MAX_HEADERS);
  json_t *arr;
  for (size_t i = 0; i < n; i++)
    if (er_http_header_is_secret(name)) /* Set-Cookie */
      secret_add_value(&c->sec, vals[i]);
  if (n <= 1)
    return n ? json_string(vals[0]) : NULL;
  arr = json_array();
  for (size_t i = 0; arr && i < n; i++)
    json_array_append_new(arr, json_string(vals[i]));
  return arr;
}

static void check_headers(call_t *c) {
  const char *k;
  json_t *m;
  if (!c->want_headers)
    return;
  json_object_foreach((json_t *)c->want_headers, k, m) {
    json_t *vj = header_json(c, k);
    er_buf_t w = ER_BUF_INIT(1024);
    if (!er_json_match(vj, m, &w)) {
      er_buf_printf(&c->why, "\n  header %s: %s", k, er_buf_cstr(&w));
      c->ok = false;
    }
    er_buf_free(&w);
    json_decref(vj);
  }
}

/* One check of a value (new reference, NULL: missing) against want. */
static void check_one(call_t *c, const char *what, json_t *v,
                      const json_t *want) {
  er_buf_t w = ER_BUF_INIT(1024);
  if (want && !er_json_match(v, want, &w)) {
    er_buf_printf(&c->why, "\n  %s: %s", what, er_buf_cstr(&w));
    c->ok = false;
  }
  er_buf_free(&w);
  json_decref(v);
}

/* duration (ms), http_version, url (final) and redirects (followed). */
static void check_meta(call_t *c) {
  check_one(c, "duration (ms)", json_integer(c->resp.elapsed_ms),
            c->want_duration);
  check_one(c, "http_version", json_string(c->resp.http_version),
            c->want_version);
  check_one(c, "url", json_string(c->resp.url ? c->resp.url : ""), c->want_url);
  check_one(c, "redirects", json_integer(c->resp.redirects), c->want_redirects);
}

/* A Set-Cookie value as {"name", "value", "path", "domain", "expires",
 * "max_age", "samesite", "secure", "httponly"} (absent attributes
 * missing; secure and httponly always there). */
static json_t *cookie_parse(const char *sc) {
  json_t *o = json_object();
  const char *p = sc;
  bool first = true;
  json_object_set_new(o, "secure", json_false());
  json_object_set_new(o, "httponly", json_false());
  while (o && *p) {
    size_t n = strcspn(p, ";"), kn;
    const char *eq;
    char key[32];
    while (*p == ' ' && n) {
      p++;
      n--;
    }
    eq = memchr(p, '=', n);
    kn = eq ? (size_t)(eq - p) : n;
    while (kn && p[kn - 1] == ' ')
      kn--;
    if (first) {
      json_object_set_new(o, "name", json_stringn(p, kn));
      json_object_set_new(o, "value",
                          json_stringn(eq ? eq + 1 : "", eq ? n - kn - 1 : 0));
    } else if (kn < sizeof key) {
      for (size_t i = 0; i < kn; i++)
        key[i] = p[i] == '-' ? '_' : (char)tolower((unsigned char)p[i]);
      key[kn] = '\0';
      if (!strcmp(key, "secure") || !strcmp(key, "httponly"))
        json_object_set_new(o, key, json_true());
      else if (eq)
        json_object_set_new(o, key,
                            json_stringn(eq + 1, n - (size_t)(eq + 1 - p)));
    }
    first = false;
    p += n + (p[n] == ';');
  }
  return o;
}

/* expect.cookies: {"name": <matcher on the value> | {"value": m, "path":
 * m, "secure": m, ...}} against the response's Set-Cookie headers (the
 * last of a name wins). */
static void check_cookies(call_t *c) {
  const char *vals[ER_HTTP_MAX_HEADERS];
  size_t n =
      er_http_header_values(&c->resp, "Set-Cookie", vals, ER_HTTP_MAX_HEADERS);
  json_t *jar = json_object(), *want;
  const char *name;
  if (!c->want_cookies || !jar) {
    json_decref(jar);
    return;
  }
  for (size_t i = 0; i < n && i < ER_HTTP_MAX_HEADERS; i++) {
    json_t *ck = cookie_parse(vals[i]);
    const char *nm = json_string_value(json_object_get(ck, "name"));
    const json_t *cv = json_object_get(ck, "value");
    secret_add(&c->sec, json_string_value(cv), json_string_length(cv));
    if (nm)
      json_object_set(jar, nm, ck);
    json_decref(ck);
  }
  json_object_foreach((json_t *)c->want_cookies, name, want) {
    json_t *ck = json_object_get(jar, name), *attr;
    const char *an;
    char what[300];
    if (!json_is_object(want) || er_json_is_matcher(want)) {
      snprintf(what, sizeof what, "cookie %s", name);
      check_one(c, what, json_incref(json_object_get(ck, "value")), want);
      continue;
    }
    json_object_foreach(want, an, attr) {
      snprintf(what, sizeof what, "cookie %s %s", name, an);
      check_one(c, what, json_incref(json_object_get(ck, an)), attr);
    }
  }
  json_decref(jar);
}

/* expect.body_file (the same bytes) and expect.sha256 (hex, any case). */
static void check_body_bytes(call_t *c) {
  const er_buf_t *b = &c->resp.body;
  if (c->want_file &&
      (b->len != c->want_file_len ||
       (b->len && memcmp(b->data, c->want_file, b->len) != 0))) {
    size_t at = 0;
    while (at < b->len && at < c->want_file_len &&
           b->data[at] == c->want_file[at])
      at++;
    er_buf_printf(&c->why,
                  "\n  body_file: the body (%zu bytes) differs from %s "
                  "(%zu bytes) from byte %zu",
                  b->len, c->want_file_name, c->want_file_len, at);
    c->ok = false;
  }
  if (json_is_string(c->want_sha256)) {
    char hex[65];
    er_sha256_hex(b->data ? b->data : "", b->len, hex);
    if (strcasecmp(hex, json_string_value(c->want_sha256)) != 0) {
      er_buf_printf(&c->why, "\n  sha256: expected %s, got %s",
                    json_string_value(c->want_sha256), hex);
      c->ok = false;
    }
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
  check_body_bytes(c);
  check_meta(c);
  check_cookies(c);
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

static void validate_part(const json_t *v, const char *path, er_diag_t *d) {
  static const char *const keys_ok[] = {"value", "file", "filename", "type"};
  const char *k;
  json_t *pv;
  if (json_is_string(v) || json_is_number(v) || json_is_boolean(v))
    return;
  if (!json_is_object(v) ||
      !json_object_get(v, "value") == !json_object_get(v, "file")) {
    er_diag_error(d, path,
                  "a multipart part is a string, a number, a boolean, "
                  "{\"value\": ..., \"type\": ...} or {\"file\": "
                  "\"name\", \"filename\": ..., \"type\": ...}");
    return;
  }
  json_object_foreach((json_t *)v, k, pv) {
    char kp[600];
    bool known = false;
    er_json_pointer_join(kp, sizeof kp, path, k);
    for (size_t i = 0; i < 4; i++)
      known = known || !strcmp(k, keys_ok[i]);
    if (!known) {
      const char *m = er_did_you_mean(k, keys_ok, 4);
      er_diag_error(d, kp,
                    "unknown key '%s' in a multipart part%s%s%s (value, "
                    "file, filename, type)",
                    k, m ? " (did you mean '" : "", m ? m : "", m ? "'?)" : "");
    } else if (strcmp(k, "value") != 0 && !json_is_string(pv))
      er_diag_error(d, kp, "\"%s\" is a string", k);
    else if (strcmp(k, "file") == 0)
      er_diag_file(d, kp, json_string_value(pv));
  }
}

/* form and multipart: their values' shapes. */
static void validate_form(const json_t *args, er_diag_t *d) {
  const json_t *form = json_object_get(args, "form");
  const json_t *mp = json_object_get(args, "multipart");
  const char *k;
  json_t *v;
  char path[512];
  json_object_foreach((json_t *)form, k, v) {
    bool ok = !json_is_object(v);
    for (size_t i = 0; ok && json_is_array(v) && i < json_array_size(v); i++)
      ok = !json_is_object(json_array_get(v, i)) &&
           !json_is_array(json_array_get(v, i));
    er_json_pointer_join(path, sizeof path, "/form", k);
    if (!ok)
      er_diag_error(d, path,
                    "a form field is a string, a number, a boolean, "
                    "null or an array of them");
  }
  json_object_foreach((json_t *)mp, k, v) {
    er_json_pointer_join(path, sizeof path, "/multipart", k);
    if (!json_is_array(v)) {
      validate_part(v, path, d);
      continue;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
      char ip[600];
      snprintf(ip, sizeof ip, "%s/%zu", path, i);
      validate_part(json_array_get(v, i), ip, d);
    }
  }
}

/* Every string in a duration matcher is a duration. */
static void validate_duration(const json_t *m, const char *path, er_diag_t *d) {
  const char *k;
  json_t *v;
  int64_t ms;
  if (json_is_string(m) && !strstr(json_string_value(m), "${") &&
      er_parse_duration(json_string_value(m), &ms) != 0)
    er_diag_error(d, path,
                  "\"%s\" is not a duration (such as \"500ms\" or \"2s\")",
                  json_string_value(m));
  for (size_t i = 0; json_is_array(m) && i < json_array_size(m); i++) {
    char ip[600];
    snprintf(ip, sizeof ip, "%s/%zu", path, i);
    validate_duration(json_array_get(m, i), ip, d);
  }
  json_object_foreach((json_t *)m, k, v) {
    char kp[600];
    er_json_pointer_join(kp, sizeof kp, path, k);
    if (strcmp(k, "$type") != 0 && strcmp(k, "$regex") != 0)
      validate_duration(v, kp, d);
  }
}

/* expect.cookies: per name a matcher on the value or an object of
 * attributes. */
static void validate_cookies(const json_t *ck, er_diag_t *d) {
  static const char *const attrs[] = {"value",   "path",     "domain",
                                      "expires", "max_age",  "samesite",
                                      "secure",  "httponly", NULL};
  const char *name, *a;
  json_t *want, *m;
  char path[512], ap[600];
  json_object_foreach((json_t *)ck, name, want) {
    er_json_pointer_join(path, sizeof path, "/expect/cookies", name);
    if (!json_is_object(want) || er_json_is_matcher(want)) {
      er_diag_matcher(d, path, want);
      continue;
    }
    json_object_foreach(want, a, m) {
      bool known = false;
      er_json_pointer_join(ap, sizeof ap, path, a);
      for (size_t i = 0; attrs[i]; i++)
        known = known || !strcmp(a, attrs[i]);
      if (!known) {
        const char *dym = er_did_you_mean(a, attrs, 8);
        er_diag_error(d, ap,
                      "unknown cookie attribute '%s'%s%s%s (value, path, "
                      "domain, expires, max_age, samesite, secure, "
                      "httponly)",
                      a, dym ? " (did you mean '" : "", dym ? dym : "",
                      dym ? "'?)" : "");
      } else
        er_diag_matcher(d, ap, m);
    }
  }
}

/* The response metadata checks of expect. */
static void validate_expect_meta(const json_t *expect, er_diag_t *d) {
  const json_t *sha = json_object_get(expect, "sha256");
  const json_t *fr = json_object_get(expect, "redirects");
  check_matcher(json_object_get(expect, "http_version"), "/expect/http_version",
                d);
  check_matcher(json_object_get(expect, "url"), "/expect/url", d);
  check_matcher(fr, "/expect/redirects", d);
  if (json_object_get(expect, "duration")) {
    bool bad = false;
    json_t *ms = durations_ms(json_object_get(expect, "duration"), &bad);
    validate_duration(json_object_get(expect, "duration"), "/expect/duration",
                      d);
    if (!bad)
      check_matcher(ms, "/expect/duration", d);
    json_decref(ms);
  }
  if (json_is_string(sha) && !strstr(json_string_value(sha), "${")) {
    const char *h = json_string_value(sha);
    bool ok = strlen(h) == 64;
    for (const char *p = h; ok && *p; p++)
      ok = isxdigit((unsigned char)*p);
    if (!ok)
      er_diag_error(d, "/expect/sha256", "sha256 is 64 hex digits");
  }
  if (json_object_get(expect, "body_file") && json_object_get(expect, "body"))
    er_diag_error(d, "/expect/body_file",
                  "give \"body\" or \"body_file\", not both");
  validate_cookies(json_object_get(expect, "cookies"), d);
}

/* One body at most; form and multipart shapes; the request options. */
static void validate_bodies(const json_t *args, er_diag_t *d) {
  const char *const bodies[] = {"json", "body",      "json_file",  "body_file",
                                "form", "multipart", "body_base64"};
  const char *first = NULL;
  const json_t *fr = json_object_get(args, "follow_redirects");
  const json_t *b64 = json_object_get(args, "body_base64");
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
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
  validate_form(args, d);
  if (json_is_integer(fr) && json_integer_value(fr) < 0)
    er_diag_error(d, "/follow_redirects",
                  "follow_redirects is true, false or a maximum count (0 "
                  "or more)");
  if (json_is_string(b64) && !strstr(json_string_value(b64), "${")) {
    size_t n;
    char *bytes = base64_decode(json_string_value(b64), &n);
    if (!bytes)
      er_diag_error(d, "/body_base64", "body_base64 is not base64");
    free(bytes);
  }
  if (json_object_get(args, "key") && !json_object_get(args, "cert"))
    er_diag_error(d, "/key", "a client \"key\" goes with a \"cert\"");
}

/* The method and the request headers. */
static void validate_request(const json_t *args, er_diag_t *d) {
  const json_t *method = json_object_get(args, "method");
  const json_t *hdrs = json_object_get(args, "headers");
  const char *k;
  json_t *v;
  char path[512];
  if (json_is_string(method) && !strstr(json_string_value(method), "${")) {
    const char *m = json_string_value(method);
    bool tok = *m != '\0';
    for (const char *p = m; *p; p++)
      if (!isalpha((unsigned char)*p) && *p != '-' && *p != '_')
        tok = false;
    if (!tok)
      er_diag_error(d, "/method", "\"%s\" is not an HTTP method", m);
  }
  json_object_foreach((json_t *)hdrs, k, v) {
    er_json_pointer_join(path, sizeof path, "/headers", k);
    if (!*k || strpbrk(k, ": \t\r\n"))
      er_diag_error(d, path, "\"%s\" is not a header name", k);
    else if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
      er_diag_error(d, path, "a header value is a string");
  }
}

/* expect: matchers, pointers and paths, the metadata checks. */
static void validate_expect(const json_t *expect, er_diag_t *d) {
  const json_t *eh = json_object_get(expect, "headers");
  const json_t *ej = json_object_get(expect, "json");
  const char *k;
  json_t *v;
  char path[512];
  check_matcher(json_object_get(expect, "status"), "/expect/status", d);
  validate_expect_meta(expect, d);
  check_matcher(json_object_get(expect, "body"), "/expect/body", d);
  json_object_foreach((json_t *)eh, k, v) {
    er_json_pointer_join(path, sizeof path, "/expect/headers", k);
    check_matcher(v, path, d);
  }
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

static void validate(const json_t *args, er_diag_t *d) {
  const json_t *expect = json_object_get(args, "expect");
  const json_t *capture = json_object_get(args, "capture");
  const char *k;
  json_t *v;
  char path[512];
  validate_bodies(args, d);
  validate_request(args, d);
  if (json_is_object(expect))
    validate_expect(expect, d);
  json_object_foreach((json_t *)capture, k, v) {
    char msg[512];
    er_json_pointer_join(path, sizeof path, "/capture", k);
    if (er_capture_check(v, ER_CAP_HEADER | ER_CAP_STATUS, msg, sizeof msg))
      er_diag_error(d, path, "%s", msg);
  }
}

const er_action_t er_act_http = {.name = "http",
                                 .keys = keys,
                                 .check = true,
                                 .validate = validate,
                                 .run = run};
