/* itest_http.c: the HTTP adapter (http.c) and the "http" step
 * (act_http.c) against tests/support/testhttpd.py, started by
 * tests/integration/http.sh. Environment: HTTP_URL (http://127.0.0.1:PORT),
 * HTTPS_URL (the same server over TLS, asking for a client certificate),
 * CERT_DIR (its ca.pem, client.pem, client.key) and FILE_DIR (a folder
 * for files the tests write).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "adapters/http.h"
#include "base/jsonbig.h"
#include "lang/jsonx.h"
#include "run/exec.h"
#include "tap.h"

extern const er_action_t er_act_http;

#include "diag_standin.h"

/* ---- a step context ---------------------------------------------------- */

typedef struct ctx {
  er_exec_t x;
  er_buf_t log, detail;
  json_t *env, *caps;
  er_session_t *s;
} ctx_t;

static const char *g_url;   /* http://127.0.0.1:PORT */
static const char *g_https; /* https://127.0.0.1:PORT */
static const char *g_certs; /* CERT_DIR */
static const char *g_files; /* FILE_DIR */

static void ctx_init(ctx_t *c) {
  memset(c, 0, sizeof *c);
  er_buf_init(&c->log, 256 * 1024);
  er_buf_init(&c->detail, 64 * 1024);
  c->env = json_object();
  c->caps = json_object();
  c->s = er_session_new();
  c->x.env = c->env;
  c->x.session = c->s;
  c->x.log = &c->log;
  c->x.detail = &c->detail;
  c->x.captures = c->caps;
}

static void ctx_free(ctx_t *c) {
  er_session_free(c->s);
  json_decref(c->env);
  json_decref(c->caps);
  er_buf_free(&c->log);
  er_buf_free(&c->detail);
}

/* Runs the http step with args (JSON text; "@" stands for the server's
 * base URL) and a deadline timeout_ms away. */
static int run_step(ctx_t *c, int64_t timeout_ms, const char *args_json) {
  json_error_t je;
  er_buf_t text = ER_BUF_INIT(64 * 1024);
  json_t *args;
  int rc;
  for (const char *p = args_json; *p; p++) {
    if (*p == '@' && p[1] == '/')
      er_buf_puts(&text, g_url);
    else
      er_buf_append(&text, p, 1);
  }
  args = er_json_loadb(er_buf_cstr(&text), text.len, 0, &je);
  er_buf_free(&text);
  if (!args) {
    printf("# bad test JSON: %s: %s\n", je.text, args_json);
    return -1;
  }
  er_buf_reset(&c->detail);
  c->x.deadline_ms = er_now_ms() + timeout_ms;
  rc = er_act_http.run(&c->x, args);
  json_decref(args);
  return rc;
}

static int has(er_buf_t *b, const char *s) {
  return strstr(er_buf_cstr(b), s) != NULL;
}

static void show(const char *label, er_buf_t *b) {
  const char *p = er_buf_cstr(b);
  printf("#   %s:\n", label);
  while (*p) {
    const char *e = strchr(p, '\n');
    int n = e ? (int)(e - p) : (int)strlen(p);
    printf("#     %.*s\n", n, p);
    p += n + (e ? 1 : 0);
  }
}

/* run_step with args written with ' for " and %S% for the HTTPS URL,
 * %C% for CERT_DIR, %F% for FILE_DIR. */
static int run_stepq(ctx_t *c, int64_t timeout_ms, const char *src) {
  er_buf_t t = ER_BUF_INIT(64 * 1024);
  int rc;
  for (const char *p = src; *p; p++) {
    if (*p == '\'')
      er_buf_puts(&t, "\"");
    else if (!strncmp(p, "%S%", 3) || !strncmp(p, "%C%", 3) ||
             !strncmp(p, "%F%", 3)) {
      er_buf_puts(&t, p[1] == 'S' ? g_https : p[1] == 'C' ? g_certs : g_files);
      p += 2;
    } else
      er_buf_append(&t, p, 1);
  }
  rc = run_step(c, timeout_ms, er_buf_cstr(&t));
  er_buf_free(&t);
  return rc;
}

#define STEPQ(c, ms, rcwant, args)                                             \
  do {                                                                         \
    int rc_ = run_stepq((c), (ms), (args));                                    \
    T_OK(rc_ == (rcwant), "http -> %d (got %d): %.90s", (rcwant), rc_, args);  \
    if (rc_ != (rcwant))                                                       \
      show("detail", &(c)->detail);                                            \
  } while (0)

static void write_file(const char *name, const char *data, size_t len) {
  char path[1024];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", g_files, name);
  f = fopen(path, "wb");
  if (f) {
    fwrite(data, 1, len, f);
    fclose(f);
  }
}

#define STEP(c, ms, rcwant, args)                                              \
  do {                                                                         \
    int rc_ = run_step((c), (ms), (args));                                     \
    T_OK(rc_ == (rcwant), "http -> %d (got %d): %.80s", (rcwant), rc_, args);  \
    if (rc_ != (rcwant))                                                       \
      show("detail", &(c)->detail);                                            \
  } while (0)

static int closed_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &len);
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

/* ---- tests ------------------------------------------------------------- */

static void test_adapter(void) {
  char out[256];
  er_err_t err = {0, ""};
  er_http_t *h = er_http_new(&err);
  er_http_resp_t r;
  er_http_req_t req;
  char url[512];
  char *v;
  memset(&r, 0, sizeof r);
  memset(&req, 0, sizeof req);

  er_http_redact_url("http://user:pw1234@host:8/x?y=1", out, sizeof out);
  T_STREQ(out, "http://user:***@host:8/x?y=1", "redact URL password");
  er_http_redact_url("http://user@host/x@y", out, sizeof out);
  T_STREQ(out, "http://user@host/x@y", "URL without a password unchanged");
  T_OK(er_http_header_is_secret("authorization") &&
           er_http_header_is_secret("COOKIE") &&
           er_http_header_is_secret("X-Auth-Hint") &&
           er_http_header_is_secret("X-Api-Key") &&
           !er_http_header_is_secret("X-Request-Id"),
       "secret header names (X-Auth-* and X-Api-Key too)");

  T_OK(er_http_global_init(&err) == 0 && er_http_global_init(&err) == 0,
       "global init is idempotent");
  snprintf(url, sizeof url, "%s/json", g_url);
  req.url = url;
  req.deadline_ms = er_now_ms() + 5000;
  T_OK(h && er_http_perform(h, &req, &r, &err) == 0 && r.status == 200,
       "adapter GET /json -> 200 (%s)", err.msg);
  v = er_http_header_get(&r, "x-multi");
  T_STREQ(v, "one, two", "repeated headers joined with \", \"");
  free(v);
  v = er_http_header_get(&r, "X-CUSTOM");
  T_STREQ(v, "Value", "header lookup ignores case");
  free(v);
  T_OK(er_http_header_get(&r, "X-Nope") == NULL, "absent header -> NULL");

  snprintf(url, sizeof url, "%s/big?kb=5000", g_url);
  req.deadline_ms = er_now_ms() + 10000;
  T_OK(er_http_perform(h, &req, &r, &err) == 0 && r.status == 200 &&
           r.body.truncated && r.body.len == ER_HTTP_BODY_CAP,
       "5000 KiB body kept up to the 4 MB cap, flagged (%zu bytes)",
       r.body.len);
  /* the connection is still good after a capped body */
  snprintf(url, sizeof url, "%s/text", g_url);
  req.deadline_ms = er_now_ms() + 5000;
  T_OK(er_http_perform(h, &req, &r, &err) == 0 && r.status == 200 &&
           !r.body.truncated && !strcmp(er_buf_cstr(&r.body), "hello world"),
       "next request after a capped body");
  req.method = "GET /x";
  T_OK(er_http_perform(h, &req, &r, &err) == -1 && err.code == ER_E_INPUT,
       "a method with a space is refused");
  er_http_resp_free(&r);
  er_http_free(h);
}

static void test_methods(void) {
  ctx_t c;
  ctx_init(&c);
  STEP(&c, 5000, ER_STEP_OK, "{\"url\": \"@/json\"}");
  T_OK(has(&c.log, "http GET ") && has(&c.log, "/json -> 200 ("),
       "log line: method, URL, status");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/echo\", \"expect\": {\"json\": {\"/method\": \"GET\","
       " \"/body\": \"\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"POST\", \"url\": \"@/echo\", \"expect\": {\"json\":"
       " {\"/method\": \"POST\", \"/headers/content-length\": \"0\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"PUT\", \"url\": \"@/echo\", \"body\": \"x\","
       " \"expect\": {\"json\": {\"/method\": \"PUT\", \"/body\": \"x\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"patch\", \"url\": \"@/echo\", \"json\": [1],"
       " \"expect\": {\"json\": {\"/method\": \"PATCH\", \"/json\": [1]}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"DELETE\", \"url\": \"@/echo?id=3\", \"expect\": "
       "{\"json\":"
       " {\"/method\": \"DELETE\", \"/query\": \"id=3\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"HEAD\", \"url\": \"@/json\", \"expect\": {\"status\":"
       " 200, \"body\": \"\", \"headers\": {\"content-type\":"
       " \"application/json\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"OPTIONS\", \"url\": \"@/echo\", \"expect\": {\"json\":"
       " {\"/method\": \"OPTIONS\"}}}");
  ctx_free(&c);
}

static void test_bodies_and_headers(void) {
  ctx_t c;
  ctx_init(&c);
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/echo\", \"headers\": {\"X-Test\": \"abc\", \"X-Num\": 42,"
       " \"X-Flag\": true}, \"expect\": {\"json\": {\"/headers/x-test\":"
       " \"abc\", \"/headers/x-num\": \"42\", \"/headers/x-flag\": \"true\","
       " \"/headers/user-agent\": \"eventrig\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"POST\", \"url\": \"@/echo\", \"json\": {\"a\": 1, \"b\":"
       " [true, null]}, \"expect\": {\"json\": {\"/json\": {\"a\": 1, \"b\":"
       " [true, null]}, \"/body\": \"{\\\"a\\\":1,\\\"b\\\":[true,null]}\","
       " \"/headers/content-type\": \"application/json\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"POST\", \"url\": \"@/echo\", \"json\": {\"a\": 1},"
       " \"headers\": {\"content-type\": \"application/vnd.x+json\"},"
       " \"expect\": {\"json\": {\"/headers/content-type\":"
       " \"application/vnd.x+json\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"POST\", \"url\": \"@/echo\", \"body\": \"hi there\","
       " \"expect\": {\"json\": {\"/body\": \"hi there\","
       " \"/headers/content-type\": \"text/plain; charset=utf-8\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"POST\", \"url\": \"@/echo\", \"json\": \"just text\","
       " \"expect\": {\"json\": {\"/json\": \"just text\"}}}");
  STEP(&c, 5000, ER_STEP_FATAL,
       "{\"method\": \"POST\", \"url\": \"@/echo\", \"json\": 1, \"body\": "
       "\"x\"}");
  STEP(&c, 5000, ER_STEP_FATAL,
       "{\"url\": \"@/echo\", \"headers\": {\"X\": {\"no\": 1}}}");
  ctx_free(&c);
}

static void test_status(void) {
  ctx_t c;
  ctx_init(&c);
  STEP(&c, 5000, ER_STEP_FAIL, "{\"url\": \"@/status/404\"}");
  T_OK(has(&c.detail, "http GET ") &&
           has(&c.detail, "/status/404: got status "
                          "404 (expected 2xx)") &&
           has(&c.detail, "status: expected 2xx, got 404") &&
           has(&c.detail, "response body (10 bytes):\n    status 404"),
       "default expectation is 2xx; detail: method, URL, statuses, body");
  show("detail", &c.detail);
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/status/404\", \"expect\": {\"status\": 404}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/status/201\", \"expect\": {\"status\": {\"$in\": [200,"
       " 201]}}}");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/status/503\", \"expect\": {\"status\": {\"$lt\": 500}}}");
  T_OK(has(&c.detail, "got status 503 (expected {\"$lt\":500})") &&
           has(&c.detail, "status: expected < 500, got 503"),
       "status matcher mismatch");
  STEP(&c, 5000, ER_STEP_OK, "{\"url\": \"@/status/204\"}");
  STEP(&c, 5000, ER_STEP_FAIL, "{\"url\": \"@/status/302\"}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/status/304\", \"expect\": {\"status\": 304}}");
  STEP(&c, 5000, ER_STEP_OK, "{\"url\": \"@/json\"}");
  ctx_free(&c);
}

static void test_expect_headers_json_body(void) {
  ctx_t c;
  ctx_init(&c);
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/json\", \"expect\": {\"headers\": {\"x-custom\":"
       " \"Value\", \"CONTENT-TYPE\": {\"$regex\": \"json$\"}, \"X-Multi\":"
       " [\"one\", \"two\"], \"X-Missing\": {\"$exists\": false}}}}");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/json\", \"expect\": {\"headers\": {\"X-Custom\":"
       " \"Other\", \"X-Gone\": \"x\"}}}");
  T_OK(has(&c.detail, "header X-Custom: expected \"Other\", got \"Value\"") &&
           has(&c.detail, "header X-Gone: expected \"x\", got (missing)") &&
           has(&c.detail, "/json: header X-Custom: expected \"Other\", got "
                          "\"Value\" (status 200)\n"),
       "header mismatches listed, each; the first one is the headline");
  show("detail", &c.detail);
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/json\", \"expect\": {\"json\": {\"/n\": {\"$gte\": 3},"
       " \"/items/1/tag\": \"b\", \"/nested/a/b\": {\"$regex\": \"^de\"},"
       " \"/none\": null, \"/missing\": {\"$exists\": false}, \"/items\":"
       " {\"$len\": 2}, \"/ok\": true, \"/items/0\": {\"id\": 1, \"tag\":"
       " {\"$in\": [\"a\", \"z\"]}}}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/json\", \"expect\": {\"json\": {\"\": {\"$subset\":"
       " {\"n\": 3}}}}}");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/json\", \"expect\": {\"json\": {\"/n\": {\"$gt\": 5},"
       " \"/name\": \"eventrig\", \"/nope\": 1}}}");
  T_OK(has(&c.detail, "json /n: expected > 5, got 3") &&
           has(&c.detail, "json /nope: expected 1, got (missing)") &&
           !has(&c.detail, "json /name"),
       "JSON pointer mismatches listed, matches not");
  T_OK(has(&c.detail, "/json: json /n: expected > 5, got 3 (status 200)\n") &&
           !has(&c.detail, "got status 200"),
       "the headline is the first failing JSON check, not the status");
  T_OK(has(&c.detail, "\"name\": \"eventrig\""), "detail shows the body");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/text\", \"expect\": {\"json\": {\"/a\": 1}}}");
  T_OK(has(&c.detail, "json: the response body is not JSON (line 1"),
       "expect.json on a non-JSON body says so");
  show("detail", &c.detail);
  STEP(&c, 10000, ER_STEP_FAIL,
       "{\"url\": \"@/big?kb=5000\", \"expect\": {\"json\": {\"/a\": 1}}}");
  T_OK(has(&c.detail, "it was cut at 4194304 bytes") &&
           has(&c.detail, "cut at the 4 MB cap") &&
           has(&c.detail, "more bytes)"),
       "a body past the cap: the detail says so and shows 2 KB");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/text\", \"expect\": {\"body\": {\"$contains\": "
       "\"world\"}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/text\", \"expect\": {\"body\": \"hello world\"}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/json\", \"expect\": {\"body\": {\"$contains\": "
       "\"deep\"}}}");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/text\", \"expect\": {\"body\": {\"$regex\": \"^bye\"}}}");
  T_OK(has(&c.detail, "body: expected a string matching \"^bye\", got "
                      "\"hello world\""),
       "body mismatch");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/binary\", \"expect\": {\"status\": 201}}");
  T_OK(has(&c.detail, "response body (256 bytes)"), "binary body shown safely");
  ctx_free(&c);
}

static void test_captures(void) {
  ctx_t c;
  json_t *p1, *p2;
  ctx_init(&c);
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/json\", \"capture\": {\"n\": \"/n\", \"tag\":"
       " \"/items/0/tag\", \"items\": \"/items\", \"all\": \"\", \"ct\":"
       " {\"header\": \"content-type\"}, \"st\": {\"status\": true}}}");
  T_OK(json_integer_value(json_object_get(c.caps, "n")) == 3,
       "capture a number by pointer");
  T_STREQ(json_string_value(json_object_get(c.caps, "tag")), "a",
          "capture a string by pointer");
  T_OK(json_array_size(json_object_get(c.caps, "items")) == 2,
       "capture an array by pointer");
  T_OK(json_is_object(json_object_get(c.caps, "all")), "capture the body");
  T_STREQ(json_string_value(json_object_get(c.caps, "ct")), "application/json",
          "capture a header (name in any case)");
  T_OK(json_integer_value(json_object_get(c.caps, "st")) == 200,
       "capture the status");
  json_object_clear(c.caps);
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/json\", \"capture\": {\"n\": \"/n\", \"x\": \"/nope\"}}");
  T_OK(has(&c.detail, "capture x: /nope is not in the body") &&
           json_object_size(c.caps) == 0,
       "missing pointer fails the step; nothing captured");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/json\", \"capture\": {\"h\": {\"header\": \"X-Nope\"}}}");
  T_OK(has(&c.detail, "capture h: no header X-Nope"),
       "missing header capture fails");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/text\", \"capture\": {\"v\": \"/a\"}}");
  T_OK(has(&c.detail, "capture v: the response body is not JSON"),
       "pointer capture on a non-JSON body fails");
  STEP(
      &c, 5000, ER_STEP_FAIL,
      "{\"url\": \"@/status/500\", \"capture\": {\"st\": {\"status\": true}}}");
  T_OK(json_object_size(c.caps) == 0, "no capture when an expectation fails");
  STEP(&c, 5000, ER_STEP_FATAL,
       "{\"url\": \"@/json\", \"capture\": {\"v\": {\"status\": 1}}}");

  /* one connection per session: the server sees the same client port */
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/echo\", \"capture\": {\"port\": \"/client_port\"}}");
  p1 = json_incref(json_object_get(c.caps, "port"));
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/echo\", \"capture\": {\"port\": \"/client_port\"}}");
  p2 = json_object_get(c.caps, "port");
  T_OK(p1 && p2 && json_equal(p1, p2), "the connection is reused");
  json_decref(p1);

  /* one request per step */
  STEP(&c, 5000, ER_STEP_OK, "{\"url\": \"@/counter?reset=1\"}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/counter\", \"expect\": {\"json\": {\"/count\": 1}}}");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/counter\", \"expect\": {\"json\": {\"/count\": 1}}}");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/counter\", \"expect\": {\"json\": {\"/count\": 3}}}");
  ctx_free(&c);
}

/* JSONPath in expect.json, the list operators, logical operators, the
 * place of a mismatch, dates and UUIDs, big integers sent and matched
 * exactly, and the captures of lang/capture.h (issue 15). */
static void test_paths_and_captures(void) {
  ctx_t c;
  ctx_init(&c);
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/json\", \"expect\": {\"json\": {"
       " \"$.items[*].id\": [1, 2],"
       " \"$.items[?@.id==2].tag\": \"b\","
       " \"$.items[?(@.id > 5)]\": {\"$exists\": false, \"$count\": 0},"
       " \"$..tag\": {\"$count\": 2, \"$each\": {\"$regex\": \"^[ab]$\"},"
       "   \"$any\": \"a\", \"$nth\": [-1, \"b\"]},"
       " \"$['nested']['a'].b\": {\"$and\": [{\"$contains\": \"de\"},"
       "   {\"$contains\": \"ep\"}]},"
       " \"$.name\": {\"$regex\": \"^EVENT\", \"$flags\": \"i\"},"
       " \"/n\": {\"$not\": {\"$in\": [1, 2]}, \"$nin\": [4],"
       "   \"$or\": [3, \"three\"]},"
       " \"\": {\"$subset\": {\"items\": [{\"tag\": \"b\"}],"
       "   \"nested\": {\"a\": {}}}}}}}");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/json\", \"expect\": {\"json\": {"
       " \"$.items[*]\": {\"$each\": {\"tag\": \"a\", \"id\": {\"$lt\": "
       "9}}}}}}");
  T_OK(has(&c.detail, "json $.items[*]: at /items/1/tag: expected \"a\", "
                      "got \"b\""),
       "a JSONPath failure names the value's pointer");
  show("detail", &c.detail);
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/json\", \"expect\": {\"json\": {\"\": {\"$subset\":"
       " {\"nested\": {\"a\": {\"b\": \"shallow\"}}}}}}}");
  T_OK(has(&c.detail,
           "json \"\": at /nested/a/b: expected \"shallow\", got \"deep\""),
       "a deep $subset names the first mismatching field");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/json\", \"expect\": {\"json\": {\"/items\": [{\"id\":"
       " 1, \"tag\": \"a\"}, {\"id\": 2, \"tag\": \"c\"}]}}}");
  T_OK(has(&c.detail, "json /items: at /items/1/tag: expected \"c\", got "
                      "\"b\""),
       "a literal names the first mismatching field");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/json\", \"expect\": {\"json\": {\"$.items[\": 1}}}");
  T_OK(has(&c.detail, "json $.items[: JSONPath $.items[: at offset 8"),
       "a bad JSONPath at run time says where");

  /* big integers: sent exactly, echoed by Python, matched exactly */
  STEP(&c, 5000, ER_STEP_OK,
       "{\"method\": \"POST\", \"url\": \"@/echo\","
       " \"headers\": {\"X-Big\": 123456789012345678901234567890},"
       " \"json\": {\"id\": 123456789012345678901234567890, \"neg\":"
       " -98765432109876543210, \"when\": \"2024-05-01T12:00:00.250+02:00\","
       " \"uuid\": \"3fa85f64-5717-4562-b3fc-2c963f66afa6\"},"
       " \"expect\": {\"json\": {"
       " \"/json/id\": 123456789012345678901234567890,"
       " \"/body\": {\"$contains\": \"123456789012345678901234567890\"},"
       " \"/headers/x-big\": \"123456789012345678901234567890\","
       " \"$.json.neg\": {\"$lt\": -98765432109876543209, \"$gt\":"
       "   -98765432109876543211, \"$type\": \"integer\"},"
       " \"$[?@.id == 123456789012345678901234567890].uuid\": {\"$uuid\": 4},"
       " \"/json/when\": {\"$isoDate\": true, \"$before\": \"now\","
       "   \"$after\": \"2024-05-01T10:00:00Z\"}}},"
       " \"capture\": {\"id\": \"/json/id\", \"ids\": \"$..id\"}}");
  T_OK(er_big_digits(json_object_get(c.caps, "id")) &&
           !strcmp(er_big_digits(json_object_get(c.caps, "id")),
                   "123456789012345678901234567890"),
       "a big integer is captured exactly");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"method\": \"POST\", \"url\": \"@/echo\","
       " \"json\": {\"id\": 123456789012345678901234567891},"
       " \"expect\": {\"json\": {\"/json/id\": "
       "123456789012345678901234567890}}}");
  T_OK(has(&c.detail, "json /json/id: expected 123456789012345678901234567890, "
                      "got 123456789012345678901234567891"),
       "big integers that differ in the last digit differ");

  /* captures: regex on the body, on a header, whole text, JSONPath */
  json_object_clear(c.caps);
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/text\", \"capture\": {\"all\": {\"text\": true},"
       " \"whole\": \"\", \"w\": {\"regex\": \"hello (w[a-z]+)\"},"
       " \"h\": {\"regex\": \"^H\", \"flags\": \"i\", \"group\": 0}}}");
  T_STREQ(json_string_value(json_object_get(c.caps, "all")), "hello world",
          "a body that is not JSON captured as text");
  T_STREQ(json_string_value(json_object_get(c.caps, "whole")), "hello world",
          "\"\" of a body that is not JSON is its text");
  T_STREQ(json_string_value(json_object_get(c.caps, "w")), "world",
          "a regex group of the body");
  T_STREQ(json_string_value(json_object_get(c.caps, "h")), "h",
          "group 0, case ignored");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/json\", \"capture\": {"
       " \"v\": {\"header\": \"X-Custom\", \"regex\": \"^V(.*)$\"},"
       " \"ids\": \"$.items[*].id\", \"b\": \"$.items[?@.id==2].tag\","
       " \"t\": {\"path\": \"$.items[0]\", \"regex\": \"tag\\\":\\\"([a-z])\"},"
       " \"s\": {\"status\": true, \"regex\": \"^2\"}}}");
  T_STREQ(json_string_value(json_object_get(c.caps, "v")), "alue",
          "a regex group of a header");
  T_OK(json_array_size(json_object_get(c.caps, "ids")) == 2,
       "a JSONPath with several values captures an array");
  T_STREQ(json_string_value(json_object_get(c.caps, "b")), "b",
          "a JSONPath with one value captures it");
  T_STREQ(json_string_value(json_object_get(c.caps, "t")), "a",
          "a regex on a value a path selected (as JSON text)");
  T_STREQ(json_string_value(json_object_get(c.caps, "s")), "2",
          "a regex on the status");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/text\", \"capture\": {\"n\": {\"regex\": "
       "\"id=([0-9]+)\"}}}");
  T_OK(has(&c.detail, "capture n: regex id=([0-9]+) does not match \"hello "
                      "world\""),
       "a regex that does not match fails the step and says why");
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/json\", \"capture\": {\"n\": \"$.items[?@.id==9]\"}}");
  T_OK(has(&c.detail, "capture n: $.items[?@.id==9] is not in the body"),
       "a JSONPath that selects nothing fails the capture");
  ctx_free(&c);
}

/* form, multipart, body_base64 (issue 15). */
static void test_request_bodies(void) {
  ctx_t c;
  ctx_init(&c);
  write_file("up.txt", "file content\n", 13);
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'method': 'POST', 'url': '@/echo', 'form': {'a': 'x y&z', 'n': 2,"
        " 't': ['p', 'q'], 'e': null}, 'expect': {'json': {"
        " '/body': 'a=x%20y%26z&n=2&t=p&t=q&e',"
        " '/headers/content-type': 'application/x-www-form-urlencoded'}}}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'method': 'POST', 'url': '@/echo', 'multipart': {'field': 'v1',"
        " 'n': 7, 'doc': {'file': '%F%/up.txt', 'type': 'text/plain'},"
        " 'meta': {'value': '{}', 'type': 'application/json'}},"
        " 'expect': {'json': {"
        " '/headers/content-type': {'$regex': '^multipart/form-data; "
        "boundary='},"
        " '/body': {'$and': ["
        "   {'$regex': 'name=\\\"field\\\"\\r\\n\\r\\nv1\\r\\n'},"
        "   {'$regex': 'name=\\\"n\\\"\\r\\n\\r\\n7\\r\\n'},"
        "   {'$regex': 'name=\\\"doc\\\"; "
        "filename=\\\"up.txt\\\"\\r\\nContent-Type: "
        "text/plain\\r\\n\\r\\nfile content\\n\\r\\n'},"
        "   {'$regex': 'name=\\\"meta\\\"\\r\\nContent-Type: "
        "application/json'}]}}}}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'method': 'PUT', 'url': '@/echo', 'multipart': {'doc': {'file':"
        " '%F%/up.txt', 'filename': 'renamed.bin'}}, 'expect': {'json': {"
        " '/method': 'PUT', '/body': {'$contains': "
        "'filename=\\\"renamed.bin\\\"'}}}}");
  STEPQ(&c, 5000, ER_STEP_FATAL,
        "{'method': 'POST', 'url': '@/echo', 'multipart': {'doc': {'file':"
        " '%F%/nope.txt'}}}");
  T_OK(has(&c.detail, "http: doc: ") && has(&c.detail, "nope.txt"),
       "a missing multipart file: fatal, names the part and the file");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'method': 'POST', 'url': '@/echo', 'body_base64': 'AQL//g==',"
        " 'expect': {'json': {'/body_len': 4, '/body_sha256': "
        "'118f946e25e768ff1b65482e6b8f6944576413130d1f3f786c885d68372efa8b',"
        " '/headers/content-type': 'application/octet-stream'}}}");
  STEPQ(&c, 5000, ER_STEP_FATAL,
        "{'method': 'POST', 'url': '@/echo', 'body_base64': 'AA*C'}");
  T_OK(has(&c.detail, "\"body_base64\" is not base64"), "bad base64: fatal");
  ctx_free(&c);
}

/* The cookie jar of a session, follow_redirects. */
static void test_cookies_redirects(void) {
  ctx_t c, other;
  ctx_init(&c);
  ctx_init(&other);
  STEPQ(&c, 5000, ER_STEP_OK, "{'url': '@/cookie?name=s&value=one'}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/echo', 'expect': {'json': {'/headers/cookie': 's=one'}}}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/echo', 'cookies': false, 'expect': {'json':"
        " {'/headers/cookie': {'$exists': false}}}}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/cookie?name=t&value=two', 'cookies': false}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/echo', 'expect': {'json': {'/headers/cookie': 's=one'}}}");
  STEPQ(&c, 5000, ER_STEP_OK, "{'url': '@/cookie?name=s&value=new'}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/echo', 'expect': {'json': {'/headers/cookie': 's=new'}}}");
  STEPQ(&other, 5000, ER_STEP_OK,
        "{'url': '@/echo', 'expect': {'json': {'/headers/cookie':"
        " {'$exists': false}}}}");

  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/redirect?n=2&to=/json', 'expect': {'status': 302,"
        " 'redirects': 0, 'headers': {'location': '/redirect?n=1&to=/json'}}}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/redirect?n=2&to=/json', 'follow_redirects': true,"
        " 'expect': {'status': 200, 'redirects': 2, 'url': {'$regex':"
        " '^http://127[.]0[.]0[.]1:[0-9]+/json$'}, 'json': {'/ok': true}}}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/redirect?n=2&to=/json', 'follow_redirects': 2}");
  STEPQ(&c, 5000, ER_STEP_ERROR,
        "{'url': '@/redirect?n=2&to=/json', 'follow_redirects': 1}");
  T_OK(has(&c.detail, "redirect"), "past the redirect limit: an error");
  show("detail", &c.detail);
  STEPQ(&c, 5000, ER_STEP_FAIL,
        "{'url': '@/redirect?n=1&to=/json', 'follow_redirects': true,"
        " 'expect': {'redirects': 0, 'url': {'$regex': 'nope'}}}");
  T_OK(has(&c.detail, "redirects: expected 0, got 1") &&
           has(&c.detail, "url: expected a string matching \"nope\""),
       "redirects and final URL mismatches named");
  ctx_free(&c);
  ctx_free(&other);
}

/* duration, http_version, cookies, body_file, sha256, repeated headers. */
static void test_response_meta(void) {
  ctx_t c;
  ctx_init(&c);
  write_file("hello.txt", "hello world", 11);
  write_file("hello2.txt", "hello there", 11);
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/slow?ms=200', 'expect': {'duration': {'$gte': '190ms',"
        " '$lt': '5s'}, 'http_version': '1.1'}}");
  STEPQ(&c, 5000, ER_STEP_FAIL,
        "{'url': '@/slow?ms=200', 'expect': {'duration': {'$lt': '100ms'}}}");
  T_OK(has(&c.detail, "duration (ms): expected < 100, got 2"),
       "a slow response fails a duration bound, in ms");
  STEPQ(&c, 5000, ER_STEP_FAIL,
        "{'url': '@/json', 'expect': {'http_version': '2'}}");
  T_OK(has(&c.detail, "http_version: expected \"2\", got \"1.1\""),
       "http_version mismatch");
  STEPQ(
      &c, 5000, ER_STEP_OK,
      "{'url': '@/text', 'expect': {'body_file': '%F%/hello.txt', 'sha256':"
      " 'B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9'}}");
  STEPQ(
      &c, 5000, ER_STEP_FAIL,
      "{'url': '@/text', 'expect': {'body_file': '%F%/hello2.txt', 'sha256':"
      " '0000000000000000000000000000000000000000000000000000000000000000'}}");
  T_OK(has(&c.detail, "body_file: the body (11 bytes) differs from ") &&
           has(&c.detail, "hello2.txt (11 bytes) from byte 6") &&
           has(&c.detail, "sha256: expected 0000") &&
           has(&c.detail, "got b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee"
                          "9088f7ace2efcde9"),
       "body_file and sha256 mismatches say where and what");
  show("detail", &c.detail);
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/binary', 'expect': {'sha256': "
        "'40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880'}}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '@/setcookies', 'expect': {'cookies': {"
        " 'sid': {'value': 'abc123', 'path': '/', 'secure': true, 'httponly':"
        " true, 'samesite': 'Lax', 'expires': {'$contains': '2037'},"
        " 'domain': {'$exists': false}},"
        " 'theme': 'dark', 'gone': {'$exists': false}},"
        " 'headers': {'Set-Cookie': {'$len': 2, '$nth': [0, {'$regex':"
        " '^sid=.*Expires=Wed, 21 Oct 2037 07:28:00 GMT$'}]},"
        " 'Content-Type': 'text/plain'}}}");
  STEPQ(&c, 5000, ER_STEP_FAIL,
        "{'url': '@/setcookies', 'expect': {'cookies': {"
        " 'theme': {'httponly': true, 'path': '/'}, 'sid': 'other'}}}");
  T_OK(has(&c.detail, "cookie theme httponly: expected true, got false") &&
           has(&c.detail, "cookie theme path: expected \"/\", got \"/app\"") &&
           has(&c.detail, "cookie sid: expected \"other\", got \"***\""),
       "cookie attribute mismatches named; the value stays masked");
  show("detail", &c.detail);
  ctx_free(&c);
}

/* TLS: verification, insecure, a CA, a client certificate. */
static void test_tls(void) {
  ctx_t c;
  ctx_init(&c);
  STEPQ(&c, 5000, ER_STEP_ERROR, "{'url': '%S%/echo'}");
  T_OK(has(&c.detail, "certificate") || has(&c.detail, "SSL"),
       "a self-signed server is refused by default");
  show("detail", &c.detail);
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '%S%/echo', 'insecure': true, 'expect': {'json':"
        " {'/client_cn': null}}}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '%S%/echo', 'ca': '%C%/ca.pem', 'expect': {'json':"
        " {'/client_cn': null}}}");
  STEPQ(&c, 5000, ER_STEP_OK,
        "{'url': '%S%/echo', 'ca': '%C%/ca.pem', 'cert': '%C%/client.pem',"
        " 'key': '%C%/client.key', 'expect': {'json': {'/client_cn':"
        " 'eventrig-client'}}}");
  STEPQ(&c, 5000, ER_STEP_FATAL, "{'url': '%S%/echo', 'ca': '%C%/none.pem'}");
  STEPQ(&c, 5000, ER_STEP_FATAL,
        "{'url': '%S%/echo', 'ca': '%C%/ca.pem', 'cert': '%C%/ca.key'}");
  show("detail", &c.detail);
  ctx_free(&c);
}

static void test_failures(void) {
  ctx_t c;
  char args[512];
  int64_t t0, took;
  int rc;
  ctx_init(&c);
  t0 = er_now_ms();
  rc = run_step(&c, 300, "{\"url\": \"@/slow?ms=3000\"}");
  took = er_now_ms() - t0;
  T_OK(rc == ER_STEP_ERROR && took >= 290 && took < 1200,
       "/slow past a 300ms deadline -> ER_STEP_ERROR after %lldms",
       (long long)took);
  T_OK(has(&c.detail, "no complete response by the deadline"),
       "timeout detail");
  show("detail", &c.detail);
  t0 = er_now_ms();
  rc = run_step(&c, 5000,
                "{\"url\": \"@/slow?ms=3000\", \"timeout\": \"200ms\"}");
  took = er_now_ms() - t0;
  T_OK(rc == ER_STEP_ERROR && took >= 190 && took < 1200,
       "step timeout 200ms bounds the request (%lldms)", (long long)took);
  STEP(&c, 5000, ER_STEP_OK, "{\"url\": \"@/slow?ms=50\"}");

  snprintf(args, sizeof args, "{\"url\": \"http://127.0.0.1:%d/x\"}",
           closed_port());
  t0 = er_now_ms();
  rc = run_step(&c, 5000, args);
  took = er_now_ms() - t0;
  T_OK(rc == ER_STEP_ERROR && took < 1000,
       "connection refused -> ER_STEP_ERROR (%lldms)", (long long)took);
  T_OK(has(&c.detail, "Couldn't connect to server") &&
           has(&c.detail, "(Connection refused)") &&
           has(&c.detail, "http GET http://127.0.0.1:"),
       "refused detail names method, URL and cause");
  show("detail", &c.detail);
  STEP(&c, 5000, ER_STEP_FATAL, "{\"url\": \"ftp://127.0.0.1/x\"}");
  STEP(&c, 5000, ER_STEP_FATAL, "{\"url\": \"not a url\"}");
  STEP(&c, 5000, ER_STEP_FATAL, "{\"url\": \"@/json\", \"timeout\": \"soon\"}");
  ctx_free(&c);
}

/* Authorization / Cookie values and URL passwords never reach the log or
 * the detail, even when the server echoes them. */
static void test_secrets(void) {
  ctx_t c;
  char args[512];
  const char *port = strrchr(g_url, ':') + 1;
  ctx_init(&c);
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/echo\", \"headers\": {\"Authorization\": \"Bearer "
       "tok-SECRET-123\", \"cookie\": \"sid=cookieSECRET\"}, \"expect\":"
       " {\"status\": 500}}");
  T_OK(has(&c.detail, "\"authorization\": \"***\"") &&
           has(&c.detail, "\"cookie\": \"***\""),
       "echoed secrets are masked in the detail's body");
  T_OK(!has(&c.detail, "tok-SECRET-123") && !has(&c.log, "tok-SECRET-123") &&
           !has(&c.detail, "cookieSECRET") && !has(&c.log, "cookieSECRET"),
       "Authorization and Cookie values never in detail or log");
  show("detail", &c.detail);
  STEP(&c, 5000, ER_STEP_FAIL,
       "{\"url\": \"@/echo\", \"headers\": {\"Authorization\": \"Bearer "
       "tok-SECRET-123\"}, \"expect\": {\"json\": {\"/headers/authorization\":"
       " \"Bearer other\"}}}");
  T_OK(!has(&c.detail, "tok-SECRET-123") && has(&c.detail, "got \"***\""),
       "a mismatch on the echoed header is masked too");
  STEP(&c, 5000, ER_STEP_OK,
       "{\"url\": \"@/echo\", \"headers\": {\"Authorization\": \"Bearer "
       "tok-SECRET-123\"}, \"expect\": {\"json\": {\"/headers/authorization\":"
       " \"Bearer tok-SECRET-123\"}}}");
  T_OK(!has(&c.log, "tok-SECRET-123"), "passing step: log has no token");
  snprintf(args, sizeof args,
           "{\"url\": \"http://bob:pw-SECRET-9@127.0.0.1:%s/echo\","
           " \"expect\": {\"status\": 418}}",
           port);
  STEP(&c, 5000, ER_STEP_FAIL, args);
  T_OK(!has(&c.detail, "pw-SECRET-9") && !has(&c.log, "pw-SECRET-9") &&
           !has(&c.detail, "Ym9iOnB3LVNFQ1JFVC05") &&
           has(&c.detail, "http://bob:***@127.0.0.1:") &&
           has(&c.detail, "\"authorization\": \"Basic ***\""),
       "URL password masked (and the Basic credentials it made)");
  show("detail", &c.detail);
  ctx_free(&c);
}

static void test_polling(void) {
  ctx_t c;
  ctx_init(&c);
  c.x.polling = true;
  STEP(&c, 5000, ER_STEP_OK, "{\"url\": \"@/json\"}");
  STEP(&c, 5000, ER_STEP_FAIL, "{\"url\": \"@/status/500\"}");
  T_OK(c.log.len == 0, "no log lines while polling");
  ctx_free(&c);
}

static void test_validate(void) {
  struct {
    const char *args;
    int errors;
    const char *paths;
  } cases[] = {
      {"{\"url\": \"u\"}", 0, ""},
      {"{\"url\": \"u\", \"json\": {}, \"body\": \"x\"}", 1, "[/body]"},
      {"{\"url\": \"u\", \"method\": \"GE T\"}", 1, "[/method]"},
      {"{\"url\": \"u\", \"method\": \"${m}\"}", 0, ""},
      {"{\"url\": \"u\", \"headers\": {\"A B\": \"x\", \"C\": [1]}}", 2,
       "[/headers/A B][/headers/C]"},
      {"{\"url\": \"u\", \"expect\": {\"status\": {\"$gtt\": 1}}}", 1,
       "[/expect/status/$gtt]"},
      {"{\"url\": \"u\", \"expect\": {\"json\": {\"a/b\": 1, \"/ok\": 1,"
       " \"\": {}}}}",
       1, "[/expect/json/a~1b]"},
      {"{\"url\": \"u\", \"expect\": {\"json\": {\"/x\": {\"$regex\": 1}}}}", 1,
       "[/expect/json/~1x/$regex]"},
      {"{\"url\": \"u\", \"expect\": {\"headers\": {\"H\": {\"$len\": 1,"
       " \"x\": 2}}}}",
       1, "[/expect/headers/H/$len]"},
      {"{\"url\": \"u\", \"capture\": {\"a\": \"/x\", \"b\": {\"header\":"
       " \"H\"}, \"c\": {\"status\": true}, \"d\": \"x\", \"e\": {\"status\":"
       " true, \"header\": \"H\"}, \"f\": 3}}",
       3, "[/capture/d][/capture/e][/capture/f]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct er_diag d;
    json_t *args = json_loads(cases[i].args, 0, NULL);
    memset(&d, 0, sizeof d);
    er_act_http.validate(args, &d);
    T_OK(d.errors == cases[i].errors && !strcmp(d.paths, cases[i].paths),
         "validate %s: %d error(s) at %s", cases[i].args, d.errors, d.paths);
    if (d.msgs[0])
      printf("#   %s\n", d.msgs);
    json_decref(args);
  }
}

int main(void) {
  g_url = getenv("HTTP_URL");
  g_https = getenv("HTTPS_URL");
  g_certs = getenv("CERT_DIR");
  g_files = getenv("FILE_DIR");
  if (!g_url || !strrchr(g_url, ':') || !g_https || !g_certs || !g_files) {
    printf("not ok 1 - HTTP_URL, HTTPS_URL, CERT_DIR and FILE_DIR must be "
           "set (run tests/integration/http.sh)\n");
    return 1;
  }
  test_validate();
  test_adapter();
  test_methods();
  test_bodies_and_headers();
  test_status();
  test_expect_headers_json_body();
  test_captures();
  test_paths_and_captures();
  test_request_bodies();
  test_cookies_redirects();
  test_response_meta();
  test_tls();
  test_failures();
  test_secrets();
  test_polling();
  return t_done();
}
