/* itest_redis.c: the redis adapter and the redis, redis.clean and
 * redis.seed steps against a real redis-server (tests/integration/redis.sh).
 *
 * Environment:
 *   REDIS_HOST, REDIS_PORT   the server (db 0 and 1 are used freely)
 *   REDIS_UNIX_URL           a second server on a unix socket
 *   ITEST_REDIS_STOP         shell command that stops the server
 *   ITEST_REDIS_START        shell command that starts it again, same port
 * What the steps did is checked with a separate plain hiredis connection,
 * not through the code under test. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "adapters/redis.h"
#include "base/jsonbig.h"
#include "lang/jsonpath.h"
#include "lang/jsonx.h"
#include "run/exec.h"
#include "tap.h"

/* ---- er_diag_error / er_diag_warn -----------------------------------------
 * They belong to the loader, merged in parallel. These weak local versions
 * let this program link without it and record what validate() reports; a
 * real definition linked in wins, and diag_is_local() then says so (the
 * validate tests are skipped rather than given a foreign er_diag_t). */
struct er_diag {
  int unused;
};
static er_buf_t g_diags = ER_BUF_INIT(64 * 1024);

static void local_diag(const char *sev, const char *path, const char *fmt,
                       va_list ap) {
  er_buf_printf(&g_diags, "%s %s: ", sev, path);
  er_buf_vprintf(&g_diags, fmt, ap);
  er_buf_puts(&g_diags, "\n");
}
static void local_diag_error(er_diag_t *d, const char *path, const char *fmt,
                             ...) {
  va_list ap;
  (void)d;
  va_start(ap, fmt);
  local_diag("error", path, fmt, ap);
  va_end(ap);
}
static void local_diag_warn(er_diag_t *d, const char *path, const char *fmt,
                            ...) {
  va_list ap;
  (void)d;
  va_start(ap, fmt);
  local_diag("warning", path, fmt, ap);
  va_end(ap);
}
void er_diag_error(er_diag_t *d, const char *path, const char *fmt, ...)
    __attribute__((weak, alias("local_diag_error")));
void er_diag_warn(er_diag_t *d, const char *path, const char *fmt, ...)
    __attribute__((weak, alias("local_diag_warn")));
static void local_diag_matcher(er_diag_t *d, const char *path,
                               const json_t *m) {
  char msg[512], at[512], full[1100];
  if (m && er_json_matcher_check_at(m, msg, sizeof msg, at, sizeof at) != 0) {
    snprintf(full, sizeof full, "%s%s", path, at);
    local_diag_error(d, full, "%s", msg);
  }
}
static void local_diag_select(er_diag_t *d, const char *path, const char *sel) {
  char msg[512];
  if (er_select_check(sel, msg, sizeof msg))
    local_diag_error(d, path, "%s", msg);
}
void er_diag_matcher(er_diag_t *d, const char *path, const json_t *m)
    __attribute__((weak, alias("local_diag_matcher")));
void er_diag_select(er_diag_t *d, const char *path, const char *sel)
    __attribute__((weak, alias("local_diag_select")));
static void local_diag_file(er_diag_t *d, const char *path, const char *name) {
  (void)d;
  (void)path;
  (void)name;
}
void er_diag_file(er_diag_t *d, const char *path, const char *name)
    __attribute__((weak, alias("local_diag_file")));
static bool diag_is_local(void) {
  return (void (*)(void))er_diag_error == (void (*)(void))local_diag_error;
}

/* ---- fixture --------------------------------------------------------------
 */

static const char *g_host;
static int g_port;
static char g_url[256];
static redisContext *g_raw; /* the checker's own connection */

typedef struct fx {
  json_t *env;
  er_session_t *sess;
  er_buf_t log, detail;
  json_t *caps;
  int64_t took_ms;
} fx_t;

/* JSON with ' for " so tests stay readable. New reference. */
static json_t *J(const char *text) {
  char *s = er_strdup(text);
  json_error_t je;
  json_t *v;
  for (char *p = s; *p; p++)
    if (*p == '\'')
      *p = '"';
  v = er_json_loadb(s, strlen(s), JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (!v)
    printf("# bad test JSON %s: %s\n", s, je.text);
  free(s);
  return v;
}

static void fx_init(fx_t *f, const char *env) {
  memset(f, 0, sizeof *f);
  f->env = J(env);
  f->sess = er_session_new();
  er_buf_init(&f->log, 64 * 1024);
  er_buf_init(&f->detail, 16 * 1024);
  f->caps = json_object();
}

static void fx_free(fx_t *f) {
  json_decref(f->env);
  er_session_free(f->sess);
  er_buf_free(&f->log);
  er_buf_free(&f->detail);
  json_decref(f->caps);
}

/* Runs one step (args in J() syntax) with timeout_ms before its deadline. */
static int step(fx_t *f, const char *action, const char *args,
                int64_t timeout_ms) {
  const er_action_t *a = er_action_find(action);
  json_t *j = J(args);
  int64_t t0 = er_now_ms();
  er_exec_t x = {.env = f->env,
                 .session = f->sess,
                 .deadline_ms = t0 + timeout_ms,
                 .log = &f->log,
                 .captures = f->caps,
                 .detail = &f->detail};
  int rc;
  er_buf_reset(&f->detail);
  if (!a || !j) {
    json_decref(j);
    return -1;
  }
  rc = a->run(&x, j);
  f->took_ms = er_now_ms() - t0;
  json_decref(j);
  if (rc != ER_STEP_OK && f->detail.len)
    printf("#   %s rc=%d: %s\n", action, rc, er_buf_cstr(&f->detail));
  return rc;
}

static bool has(er_buf_t *b, const char *s) {
  return strstr(er_buf_cstr(b), s) != NULL;
}

static redisReply *R(const char *fmt, ...) {
  va_list ap;
  redisReply *r;
  va_start(ap, fmt);
  r = redisvCommand(g_raw, fmt, ap);
  va_end(ap);
  return r;
}

static long long R_int(const char *fmt, ...) {
  va_list ap;
  redisReply *r;
  long long v = -99999;
  va_start(ap, fmt);
  r = redisvCommand(g_raw, fmt, ap);
  va_end(ap);
  if (r && r->type == REDIS_REPLY_INTEGER)
    v = r->integer;
  freeReplyObject(r);
  return v;
}

/* String reply as a heap copy (or NULL). */
static char *R_str(const char *fmt, ...) {
  va_list ap;
  redisReply *r;
  char *s = NULL;
  va_start(ap, fmt);
  r = redisvCommand(g_raw, fmt, ap);
  va_end(ap);
  if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
    s = strndup(r->str, r->len);
  freeReplyObject(r);
  return s;
}

static void R_ok(const char *fmt, ...) {
  va_list ap;
  redisReply *r;
  va_start(ap, fmt);
  r = redisvCommand(g_raw, fmt, ap);
  va_end(ap);
  if (!r || r->type == REDIS_REPLY_ERROR)
    printf("# checker command failed: %s\n",
           r ? r->str : (g_raw ? g_raw->errstr : "?"));
  freeReplyObject(r);
}

static int raw_connect(void) {
  struct timeval tv = {2, 0};
  if (g_raw)
    redisFree(g_raw);
  g_raw = redisConnectWithTimeout(g_host, g_port, tv);
  if (!g_raw || g_raw->err)
    return -1;
  redisSetTimeout(g_raw, tv);
  return 0;
}

/* Waits (deadline-bounded) until the port accepts (up) or refuses (!up). */
static bool wait_port(int port, bool up, int64_t within_ms) {
  int64_t end = er_now_ms() + within_ms;
  while (er_now_ms() < end) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (ok == up)
      return true;
    er_sleep_ms(20);
  }
  return false;
}

static json_t *cap(fx_t *f, const char *name) {
  return json_object_get(f->caps, name);
}

/* ---- tests ----------------------------------------------------------------
 */

static void test_replies(void) {
  fx_t f;
  char env[512];
  json_t *v;
  snprintf(env, sizeof env, "{'redis': {'url': '%s'}}", g_url);
  fx_init(&f, env);
  R_ok("FLUSHALL");

  T_OK(step(&f, "redis", "{'command': ['SET', 'k', 'v'], 'expect': 'OK'}",
            2000) == ER_STEP_OK,
       "SET: status reply OK matches \"OK\"");
  T_OK(step(&f, "redis", "{'command': ['GET', 'k'], 'capture': {'g': ''}}",
            2000) == ER_STEP_OK &&
           json_is_string(cap(&f, "g")) &&
           !strcmp(json_string_value(cap(&f, "g")), "v"),
       "GET: bulk string becomes a JSON string");
  T_OK(step(&f, "redis",
            "{'command': ['GET', 'nokey'], 'capture': {'n': ''}, "
            "'expect': null}",
            2000) == ER_STEP_OK &&
           json_is_null(cap(&f, "n")),
       "GET of a missing key: nil becomes null");
  T_OK(step(&f, "redis",
            "{'command': ['INCRBY', 'n', 41], 'capture': {'i': ''}}",
            2000) == ER_STEP_OK &&
           json_is_integer(cap(&f, "i")) &&
           json_integer_value(cap(&f, "i")) == 41,
       "INCRBY with a number argument: integer reply becomes an integer");
  T_OK(step(&f, "redis", "{'command': ['SET', 'r', 1.5]}", 2000) ==
               ER_STEP_OK &&
           step(&f, "redis", "{'command': ['GET', 'r'], 'expect': '1.5'}",
                2000) == ER_STEP_OK,
       "a real argument is sent as its decimal text");
  R_ok("RPUSH l a b c");
  T_OK(step(&f, "redis",
            "{'command': ['LRANGE', 'l', 0, -1], 'expect': ['a', 'b', 'c'], "
            "'capture': {'all': '', 'second': '/1'}}",
            2000) == ER_STEP_OK &&
           json_array_size(cap(&f, "all")) == 3 &&
           !strcmp(json_string_value(cap(&f, "second")), "b"),
       "LRANGE: array reply; capture whole reply and /1");
  R_ok("HSET h f1 v1 f2 2");
  T_OK(step(&f, "redis",
            "{'command': ['hgetall', 'h'], 'expect': {'f1': 'v1', 'f2': 2}, "
            "'capture': {'h': ''}}",
            2000) == ER_STEP_OK &&
           json_is_object(cap(&f, "h")),
       "HGETALL (any case) becomes an object; '2' matches 2");
  T_OK(step(&f, "redis",
            "{'command': ['CONFIG', 'GET', 'maxmemory-policy'], "
            "'expect': {'maxmemory-policy': 'noeviction'}}",
            2000) == ER_STEP_OK,
       "CONFIG GET becomes an object");
  T_OK(step(&f, "redis",
            "{'command': ['EVAL', 'return {1, {\\\"a\\\", {2}}, "
            "redis.error_reply(\\\"boom\\\")}', 0], "
            "'expect': [1, ['a', [2]], {'error': {'$regex': 'boom$'}}]}",
            2000) == ER_STEP_OK,
       "nested arrays convert recursively; a nested error is {\"error\": ..}");
  T_OK(step(&f, "redis",
            "{'command': ['EVAL', 'return redis.status_reply(\\\"FINE\\\")', "
            "0], 'expect': 'FINE'}",
            2000) == ER_STEP_OK,
       "status reply becomes a string");
  /* binary-safe both ways */
  R_ok("SET bin %b", "\xff\x00z", (size_t)3);
  T_OK(step(&f, "redis", "{'command': ['GET', 'bin'], 'capture': {'b': ''}}",
            2000) == ER_STEP_OK &&
           json_string_length(cap(&f, "b")) == 6 &&
           !memcmp(json_string_value(cap(&f, "b")), "\\xff\0z", 6),
       "bytes that are not UTF-8 become \\xNN; a NUL byte survives");
  T_OK(step(&f, "redis",
            "{'command': ['SET', 'nul', 'a\\u0000b', 'GET'], 'expect': null}",
            2000) == ER_STEP_OK &&
           R_int("STRLEN nul") == 3,
       "arguments are binary-safe (a NUL inside a value is sent)");
  {
    T_OK(step(&f, "redis", "{'command': ['SET', 'utf', 'h\\u00e9\\u20ac']}",
              2000) == ER_STEP_OK &&
             step(&f, "redis",
                  "{'command': ['GET', 'utf'], 'capture': "
                  "{'u': ''}}",
                  2000) == ER_STEP_OK &&
             !strcmp(json_string_value(cap(&f, "u")), "h\xc3\xa9\xe2\x82\xac"),
         "UTF-8 text round-trips unchanged");
  }

  /* error replies */
  T_OK(step(&f, "redis", "{'command': ['NOSUCHCMD', 'x']}", 2000) ==
               ER_STEP_FAIL &&
           has(&f.detail, "redis [\"NOSUCHCMD\",\"x\"]: the server replied "
                          "with an error: ERR unknown command"),
       "an error reply without expect fails, with the server's text");
  T_OK(step(&f, "redis",
            "{'command': ['GET', 'l'], "
            "'expect': {'error': {'$regex': '^WRONGTYPE'}}}",
            2000) == ER_STEP_OK,
       "an error reply can be matched as {\"error\": ...}");
  T_OK(step(&f, "redis", "{'command': ['GET', 'l'], 'expect': 'x'}", 2000) ==
               ER_STEP_FAIL &&
           has(&f.detail, "expected \"x\", got {\"error\":\"WRONGTYPE"),
       "an error reply against a plain expect fails and shows the error");

  /* expect: passing and failing matchers, detail text */
  T_OK(step(&f, "redis", "{'command': ['INCR', 'n'], 'expect': {'$gte': 42}}",
            2000) == ER_STEP_OK,
       "matcher {$gte: 42} holds on 42");
  T_OK(step(&f, "redis", "{'command': ['GET', 'k'], 'expect': 'other'}",
            2000) == ER_STEP_FAIL,
       "a literal mismatch fails");
  T_STREQ(er_buf_cstr(&f.detail),
          "redis [\"GET\",\"k\"]: expected \"other\", got \"v\"",
          "the detail names the command, expected and got");
  T_OK(step(&f, "redis", "{'command': ['GET', 'n'], 'expect': {'$gt': 100}}",
            2000) == ER_STEP_FAIL,
       "a matcher mismatch fails");
  T_STREQ(er_buf_cstr(&f.detail),
          "redis [\"GET\",\"n\"]: expected > 100, got 42\nreply: \"42\"",
          "a matcher's detail shows the reply too");
  T_OK(step(&f, "redis",
            "{'command': ['HGETALL', 'h'], 'expect': {'f1': 'v1', 'f2': 3}}",
            2000) == ER_STEP_FAIL &&
           has(&f.detail, "at /f2: expected 3, got \"2\"\nreply: "
                          "{\"f1\":\"v1\",\"f2\":\"2\"}"),
       "an object mismatch names the field and shows the reply");

  /* capture */
  json_object_clear(f.caps);
  T_OK(step(&f, "redis",
            "{'command': ['LRANGE', 'l', 0, -1], 'capture': {'z': '/9'}}",
            2000) == ER_STEP_FAIL &&
           has(&f.detail, "capture \"z\": /9 is not in the reply") &&
           cap(&f, "z") == NULL,
       "a capture pointer that finds nothing fails the step");
  T_OK(step(&f, "redis", "{'command': ['GET', 'k'], 'capture': {'z': 'x'}}",
            2000) == ER_STEP_FATAL,
       "a capture that is not a pointer is fatal");
  T_OK(step(&f, "redis",
            "{'command': ['GET', 'k'], 'expect': 'nope', 'capture': "
            "{'z': ''}}",
            2000) == ER_STEP_FAIL &&
           cap(&f, "z") == NULL,
       "nothing is captured when expect does not hold");
  T_OK(step(&f, "redis", "{'command': ['GET', true]}", 2000) == ER_STEP_FATAL &&
           has(&f.detail, "/command/1 must be a string or a number"),
       "a boolean command element is fatal at run time");
  T_OK(has(&f.log, "redis [\"SET\",\"k\",\"v\"] -> \"OK\""),
       "steps are logged with their reply");
  /* as the check inside await: quiet while polling, detail on timeout */
  er_buf_reset(&f.log);
  T_OK(step(&f, "await",
            "{'within': '1s', 'redis': {'command': ['GET', 'k'], "
            "'expect': 'v', 'capture': {'aw': ''}}}",
            5000) == ER_STEP_OK &&
           !has(&f.log, "redis [") &&
           !strcmp(json_string_value(cap(&f, "aw")), "v"),
       "await with a redis check: holds, captures, no per-poll log line");
  T_OK(step(&f, "hold",
            "{'for': '100ms', 'redis': {'command': ['GET', 'k'], "
            "'expect': 'w'}}",
            5000) == ER_STEP_FAIL &&
           has(&f.detail, "last seen: redis [\"GET\",\"k\"]: expected "
                          "\"w\", got \"v\""),
       "hold that does not hold shows the redis mismatch");
  fx_free(&f);
  (void)v;
}

/* Matchers and captures of issue 15 on real replies: regex groups and
 * JSONPath into a value, text, big integers sent and compared exactly. */
static void test_values(void) {
  fx_t f;
  char env[512];
  char *s;
  snprintf(env, sizeof env, "{'redis': {'url': '%s'}}", g_url);
  fx_init(&f, env);
  R_ok("SET v id=42;name=x");
  R_ok("SET j {\"a\":[1,{\"b\":\"c\"}],\"n\":123456789012345678901234567890}");
  T_OK(step(&f, "redis",
            "{'command': ['GET', 'v'], 'expect': {'$and': [{'$contains': "
            "'id='}, {'$contains': 'name='}, {'$not': {'$regex': 'ID', "
            "'$flags': ''}}], '$regex': 'ID', '$flags': 'i'}, 'capture': "
            "{'id': {'regex': 'id=([0-9]+)'}, 'all': {'text': true}, 'name': "
            "{'regex': '(name)=([a-z]+)', 'group': 2}}}",
            2000) == ER_STEP_OK &&
           !strcmp(json_string_value(cap(&f, "id")), "42") &&
           !strcmp(json_string_value(cap(&f, "all")), "id=42;name=x") &&
           !strcmp(json_string_value(cap(&f, "name")), "x"),
       "regex groups of a string reply; its text; two $contains with $and");
  T_OK(step(&f, "redis",
            "{'command': ['GET', 'v'], 'capture': {'id': {'regex': "
            "'id=([a-z]+)'}}}",
            2000) == ER_STEP_FAIL &&
           has(&f.detail, "capture \"id\": regex id=([a-z]+) does not match "
                          "\"id=42;name=x\""),
       "a regex that does not match fails the capture");
  T_OK(step(&f, "redis",
            "{'command': ['GET', 'j'], 'capture': {'b': '$.a[1].b', 'p': "
            "'/a/0', 'n': '/n', 'raw': ''}}",
            2000) == ER_STEP_OK &&
           !strcmp(json_string_value(cap(&f, "b")), "c") &&
           json_integer_value(cap(&f, "p")) == 1 &&
           er_big_digits(cap(&f, "n")) &&
           !strcmp(er_big_digits(cap(&f, "n")),
                   "123456789012345678901234567890") &&
           json_is_string(cap(&f, "raw")) && !er_big_digits(cap(&f, "raw")),
       "JSONPath and pointers into a string reply that holds JSON (a big "
       "integer exact); \"\" is the reply itself");
  T_OK(step(&f, "redis",
            "{'command': ['SET', 'big', 123456789012345678901234567890]}",
            2000) == ER_STEP_OK &&
           (s = R_str("GET big")) != NULL &&
           !strcmp(s, "123456789012345678901234567890"),
       "a big integer in a command is sent as its digits");
  free(s);
  T_OK(step(&f, "redis",
            "{'command': ['GET', 'big'], 'expect': {'$eq': "
            "123456789012345678901234567890, '$gt': "
            "123456789012345678901234567889, '$lt': 1e30}}",
            2000) == ER_STEP_OK,
       "a reply compared exactly with big integers");
  T_OK(step(&f, "redis",
            "{'command': ['GET', 'big'], 'expect': "
            "123456789012345678901234567891}",
            2000) == ER_STEP_FAIL &&
           has(&f.detail, "expected 123456789012345678901234567891, got "
                          "\"123456789012345678901234567890\""),
       "big integers one apart differ");
  T_OK(step(&f, "redis.seed",
            "{'keys': {'bs': 123456789012345678901234567890, 'bh': {'hash': "
            "{'f': -123456789012345678901234567890}}}}",
            2000) == ER_STEP_OK &&
           (s = R_str("GET bs")) != NULL &&
           !strcmp(s, "123456789012345678901234567890"),
       "redis.seed writes a big integer exactly");
  free(s);
  T_OK(step(&f, "redis",
            "{'command': ['HGETALL', 'bh'], 'expect': {'$subset': {'f': "
            "-123456789012345678901234567890}}}",
            2000) == ER_STEP_OK,
       "and reads it back exactly");
  R_ok("RPUSH lst a b c");
  T_OK(step(&f, "redis",
            "{'command': ['LRANGE', 'lst', 0, -1], 'expect': {'$count': 3, "
            "'$each': {'$regex': '^[a-c]$'}, '$nth': [1, 'b'], '$nin': [[]]}, "
            "'capture': {'last': '$[-1]', 'two': '$[0:2]'}}",
            2000) == ER_STEP_OK &&
           !strcmp(json_string_value(cap(&f, "last")), "c") &&
           json_array_size(cap(&f, "two")) == 2,
       "list operators on an array reply; JSONPath captures");
  T_OK(step(&f, "redis",
            "{'command': ['LRANGE', 'lst', 0, -1], 'expect': {'$each': "
            "{'$ne': 'c'}}}",
            2000) == ER_STEP_FAIL &&
           has(&f.detail, "at /2: expected anything but \"c\", got \"c\""),
       "$each names the element that fails");
  fx_free(&f);
}

static void test_urls(void) {
  fx_t f;
  char args[512];
  fx_init(&f, "{}");
  T_OK(step(&f, "redis", "{'command': ['PING']}", 2000) == ER_STEP_FATAL &&
           has(&f.detail, "set redis.url in the environment file"),
       "no URL anywhere is fatal and says to set redis.url");
  snprintf(args, sizeof args, "{'command': ['PING'], 'url': '%s'}", g_url);
  T_OK(step(&f, "redis", args, 2000) == ER_STEP_OK,
       "the step's url works without an environment");
  T_OK(step(&f, "redis",
            "{'command': ['PING'], 'url': 'redis://:hunter2@h:99999'}",
            2000) == ER_STEP_FATAL &&
           has(&f.detail, "redis://:***@h:99999") && !has(&f.detail, "hunter2"),
       "a bad URL is fatal and its password is redacted");
  fx_free(&f);

  fx_init(&f, "{'redis': {'url': 'redis://127.0.0.1:1/0'}}");
  T_OK(step(&f, "redis", args, 2000) == ER_STEP_OK,
       "the step's url overrides the environment's");
  T_OK(step(&f, "redis", "{'command': ['PING']}", 2000) == ER_STEP_ERROR &&
           has(&f.detail, "redis://127.0.0.1:1/0: cannot connect"),
       "nothing listening: a step error naming the URL");
  fx_free(&f);

  /* database selection */
  snprintf(args, sizeof args, "{'redis': {'url': 'redis://%s:%d/1'}}", g_host,
           g_port);
  fx_init(&f, args);
  R_ok("FLUSHALL");
  T_OK(step(&f, "redis", "{'command': ['SET', 'indb1', 'yes']}", 2000) ==
           ER_STEP_OK,
       "SET through a /1 URL");
  T_OK(R_int("EXISTS indb1") == 0, "the key is not in db 0");
  R_ok("SELECT 1");
  T_OK(R_int("EXISTS indb1") == 1, "the key is in db 1 (SELECT was sent)");
  R_ok("SELECT 0");
  fx_free(&f);
}

static void test_auth(void) {
  fx_t f;
  char env[512];
  R_ok("CONFIG SET requirepass sekrit-pw");

  snprintf(env, sizeof env, "{'redis': {'url': 'redis://:wrong-pw@%s:%d/0'}}",
           g_host, g_port);
  fx_init(&f, env);
  T_OK(step(&f, "redis", "{'command': ['PING']}", 2000) == ER_STEP_ERROR &&
           has(&f.detail, "AUTH failed: WRONGPASS") &&
           has(&f.detail, ":***@") && !has(&f.detail, "wrong-pw"),
       "a wrong password is a step error; the message hides it");
  fx_free(&f);

  snprintf(env, sizeof env, "{'redis': {'url': 'redis://%s:%d/0'}}", g_host,
           g_port);
  fx_init(&f, env);
  T_OK(step(&f, "redis", "{'command': ['PING']}", 2000) == ER_STEP_FAIL &&
           has(&f.detail, "NOAUTH"),
       "no password where one is needed: the NOAUTH error fails the step");
  fx_free(&f);

  snprintf(env, sizeof env,
           "{'redis': {'url': 'redis://default:sekrit-pw@%s:%d/0'}}", g_host,
           g_port);
  fx_init(&f, env);
  T_OK(step(&f, "redis", "{'command': ['PING'], 'expect': 'PONG'}", 2000) ==
           ER_STEP_OK,
       "user and password: AUTH user password works");
  T_OK(step(&f, "redis", "{'command': ['CONFIG', 'SET', 'requirepass', '']}",
            2000) == ER_STEP_OK,
       "(password removed again)");
  fx_free(&f);
  if (raw_connect() != 0)
    printf("# checker reconnect failed\n");
}

/* Pipelines n SETs of prefix<i> through the checker connection. */
static void fill(const char *prefix, int n) {
  for (int i = 0; i < n; i++)
    redisAppendCommand(g_raw, "SET %s%d x", prefix, i);
  for (int i = 0; i < n; i++) {
    void *r = NULL;
    redisGetReply(g_raw, &r);
    freeReplyObject(r);
  }
}

static long long stat_calls(const char *info, const char *cmd) {
  char key[64];
  const char *p;
  snprintf(key, sizeof key, "cmdstat_%s:calls=", cmd);
  p = strstr(info, key);
  return p ? atoll(p + strlen(key)) : 0;
}

static void test_clean(void) {
  fx_t f;
  char env[512];
  char *info;
  snprintf(env, sizeof env, "{'redis': {'url': '%s'}}", g_url);
  fx_init(&f, env);
  R_ok("FLUSHALL");
  fill("els:", 2500);
  fill("other:", 300);
  R_ok("SET elsx:1 keep");
  R_ok("SET xels:1 keep");
  R_ok("HSET els:hash f v");
  R_ok("SCRIPT FLUSH");
  R_ok("CONFIG RESETSTAT");
  T_OK(step(&f, "redis.clean", "{'match': 'els:*', 'batch': 100}", 20000) ==
           ER_STEP_OK,
       "redis.clean match els:* batch 100");
  info = R_str("INFO commandstats");
  T_OK(info && stat_calls(info, "scan") >= 25,
       "it took several SCAN batches (%lld calls)",
       info ? stat_calls(info, "scan") : -1);
  T_OK(info && stat_calls(info, "unlink") >= 25,
       "UNLINK per batch (%lld calls)", info ? stat_calls(info, "unlink") : -1);
  T_OK(info && stat_calls(info, "eval") == 1 &&
           stat_calls(info, "evalsha") >= 25,
       "the script is sent whole once (EVAL %lld), then by its SHA-1 "
       "(EVALSHA %lld)",
       info ? stat_calls(info, "eval") : -1,
       info ? stat_calls(info, "evalsha") : -1);
  T_OK(info && !strstr(info, "cmdstat_keys") && !strstr(info, "cmdstat_del:") &&
           !strstr(info, "cmdstat_flushdb"),
       "no KEYS, DEL or FLUSHDB was used");
  free(info);
  T_OK(R_int("DBSIZE") == 302, "exactly the 2501 matching keys are gone");
  T_OK(R_int("EXISTS elsx:1 xels:1 other:0 other:299") == 4,
       "near misses and other keys are left alone");
  T_OK(has(&f.log, "redis.clean: deleted 2501 key(s) matching \"els:*\""),
       "the log says how many keys were deleted");

  fill("a:", 3);
  fill("b:", 2);
  T_OK(step(&f, "redis.clean", "{'match': ['a:*', 'b:*', 'none:*']}", 5000) ==
               ER_STEP_OK &&
           has(&f.log, "deleted 3 key(s) matching \"a:*\"") &&
           has(&f.log, "deleted 2 key(s) matching \"b:*\"") &&
           has(&f.log, "deleted 0 key(s) matching \"none:*\"") &&
           R_int("DBSIZE") == 302,
       "several patterns, one log line each");
  {
    /* a server where this user may not run scripts: SCAN and UNLINK from
     * the client instead, the same keys gone */
    fx_t g;
    char genv[512];
    char *st;
    R_ok("ACL SETUSER noscript on >pw ~* &* +@all -eval -evalsha");
    snprintf(genv, sizeof genv,
             "{'redis': {'url': 'redis://noscript:pw@%s:%d/0'}}", g_host,
             g_port);
    fx_init(&g, genv);
    fill("c:", 700);
    R_ok("CONFIG RESETSTAT");
    T_OK(step(&g, "redis.clean", "{'match': 'c:*', 'batch': 100}", 20000) ==
                 ER_STEP_OK &&
             has(&g.log, "deleted 700 key(s) matching \"c:*\"") &&
             R_int("DBSIZE") == 302,
         "scripts refused (ACL -eval -evalsha): the same clean without "
         "them");
    st = R_str("INFO commandstats");
    T_OK(st && stat_calls(st, "unlink") >= 7,
         "... by UNLINK from the client (%lld calls)",
         st ? stat_calls(st, "unlink") : -1);
    free(st);
    fx_free(&g);
    R_ok("ACL DELUSER noscript");
  }

  T_OK(step(&f, "redis.clean", "{'flush': true}", 5000) == ER_STEP_FATAL &&
           has(&f.detail, "refused") &&
           has(&f.detail, "set \"allow_flush\": true in the \"redis\" "
                          "section of the environment file") &&
           R_int("DBSIZE") == 302,
       "flush is refused without redis.allow_flush; nothing deleted");
  T_OK(step(&f, "redis.clean", "{}", 5000) == ER_STEP_FATAL,
       "neither match nor flush is fatal");
  T_OK(step(&f, "redis.clean", "{'match': 'x:*', 'batch': 0}", 5000) ==
           ER_STEP_FATAL,
       "batch 0 is fatal");
  fx_free(&f);

  snprintf(env, sizeof env, "{'redis': {'url': '%s', 'allow_flush': true}}",
           g_url);
  fx_init(&f, env);
  T_OK(step(&f, "redis.clean", "{'flush': true}", 5000) == ER_STEP_OK &&
           R_int("DBSIZE") == 0 && has(&f.log, "FLUSHDB on"),
       "flush with redis.allow_flush empties the database");
  fx_free(&f);
}

static void test_seed(void) {
  fx_t f;
  char env[512];
  long long t;
  char *s;
  redisReply *r;
  snprintf(env, sizeof env, "{'redis': {'url': '%s'}}", g_url);
  fx_init(&f, env);
  R_ok("FLUSHALL");
  R_ok("HSET s:h old 1");
  R_ok("SADD s:set old");
  R_ok("SET s:empty x");
  T_OK(step(&f, "redis.seed",
            "{'ttl': '1h', 'keys': {"
            " 's:plain': 'v', 's:num': 7, 's:real': 0.25,"
            " 's:ttl': {'value': 'x', 'ttl': '10s'},"
            " 's:forever': {'value': 'p', 'ttl': null},"
            " 's:json': {'value': {'a': [1, 'b']}},"
            " 's:h': {'hash': {'a': '1', 'b': 2}},"
            " 's:set': {'set': ['m1', 'm2', 3], 'ttl': '5m'},"
            " 's:list': {'list': ['x', 'y', 'x']},"
            " 's:empty': {'hash': {}}}}",
            5000) == ER_STEP_OK,
       "redis.seed with strings, numbers, JSON, hash, set, list");
  s = R_str("GET s:plain");
  T_STREQ(s, "v", "plain string");
  free(s);
  t = R_int("PTTL s:plain");
  T_OK(t > 3590000 && t <= 3600000, "step ttl 1h applies (PTTL %lld)", t);
  s = R_str("GET s:num");
  T_STREQ(s, "7", "number stored as its text");
  free(s);
  s = R_str("GET s:real");
  T_STREQ(s, "0.25", "real stored as its text");
  free(s);
  t = R_int("PTTL s:ttl");
  T_OK(t > 9000 && t <= 10000, "a key's ttl overrides the step's (%lld)", t);
  T_OK(R_int("PTTL s:forever") == -1, "ttl null: no expiry");
  s = R_str("GET s:json");
  T_STREQ(s, "{\"a\":[1,\"b\"]}", "an object value is stored as JSON text");
  free(s);
  r = R("HGETALL s:h");
  T_OK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
           R_int("HEXISTS s:h old") == 0,
       "hash written fresh (old field gone)");
  freeReplyObject(r);
  s = R_str("HGET s:h b");
  T_STREQ(s, "2", "hash number field stored as text");
  free(s);
  t = R_int("PTTL s:h");
  T_OK(t > 3590000 && t <= 3600000, "hash gets the step ttl (%lld)", t);
  T_OK(R_int("SCARD s:set") == 3 && R_int("SISMEMBER s:set 3") == 1 &&
           R_int("SISMEMBER s:set old") == 0,
       "set written fresh with its members");
  t = R_int("PTTL s:set");
  T_OK(t > 290000 && t <= 300000, "set gets its own ttl 5m (%lld)", t);
  T_OK(R_int("LLEN s:list") == 3, "list written with RPUSH");
  s = R_str("LINDEX s:list 1");
  T_STREQ(s, "y", "list order kept");
  free(s);
  T_OK(R_int("EXISTS s:empty") == 0, "an empty hash deletes the key");
  T_OK(has(&f.log, "redis.seed: wrote 10 key(s)"), "seed logs the count");

  T_OK(step(&f, "redis.seed", "{'keys': {'k': true}}", 5000) == ER_STEP_FATAL &&
           has(&f.detail, "redis.seed \"k\": a value is a string"),
       "a boolean seed value is fatal");
  T_OK(step(&f, "redis.seed", "{'keys': {'k': {'hash': {'f': [1]}}}}", 5000) ==
               ER_STEP_FATAL &&
           R_int("EXISTS k") == 0,
       "a bad hash field is fatal and leaves nothing behind");
  T_OK(step(&f, "redis", "{'command': ['SET', 'after', '1'], 'expect': 'OK'}",
            2000) == ER_STEP_OK &&
           R_int("EXISTS after") == 1,
       "the connection is not left inside MULTI after a failed seed");
  T_OK(step(&f, "redis.seed", "{'keys': {'k': 'v'}, 'ttl': '0s'}", 5000) ==
           ER_STEP_FATAL,
       "ttl 0s is fatal");
  fx_free(&f);
}

static void test_restart(void) {
  fx_t f;
  char env[512];
  const char *stop = getenv("ITEST_REDIS_STOP");
  const char *start = getenv("ITEST_REDIS_START");
  if (!stop || !start) {
    T_OK(0, "ITEST_REDIS_STOP / ITEST_REDIS_START not set");
    return;
  }
  snprintf(env, sizeof env, "{'redis': {'url': '%s'}}", g_url);
  fx_init(&f, env);
  T_OK(step(&f, "redis", "{'command': ['SET', 'before', '1']}", 2000) ==
           ER_STEP_OK,
       "connected before the restart");
  T_OK(system(stop) == 0 && wait_port(g_port, false, 10000), "server stopped");
  T_OK(step(&f, "redis", "{'command': ['PING']}", 2000) == ER_STEP_ERROR &&
           has(&f.detail, g_url),
       "server gone: step error naming the URL");
  T_OK(f.took_ms < 1000, "it fails fast (%lld ms)", (long long)f.took_ms);
  T_OK(step(&f, "redis", "{'command': ['PING']}", 2000) == ER_STEP_ERROR &&
           has(&f.detail, "cannot connect"),
       "still gone: cannot connect");
  T_OK(system(start) == 0 && wait_port(g_port, true, 10000),
       "server started again on the same port");
  T_OK(step(&f, "redis", "{'command': ['PING'], 'expect': 'PONG'}", 2000) ==
           ER_STEP_OK,
       "the same session reconnects and succeeds");
  fx_free(&f);
  if (raw_connect() != 0)
    printf("# checker reconnect failed\n");
}

/* A listener that never accepts: the kernel completes the handshake, and
 * nothing ever answers. */
static int hang_listener(int *port) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

static void test_deadlines(void) {
  fx_t f;
  char env[512];
  int hport = 0, hfd = hang_listener(&hport);
  snprintf(env, sizeof env, "{'redis': {'url': '%s'}}", g_url);
  fx_init(&f, env);
  T_OK(step(&f, "redis", "{'command': ['PING']}", -1000) == ER_STEP_ERROR &&
           has(&f.detail, "deadline passed"),
       "a deadline in the past is a step error");
  T_OK(f.took_ms < 50, "and fails at once (%lld ms)", (long long)f.took_ms);
  T_OK(step(&f, "redis", "{'command': ['PING']}", 2000) == ER_STEP_OK,
       "connected");
  T_OK(step(&f, "redis", "{'command': ['BLPOP', 'nothing', 0]}", 300) ==
               ER_STEP_ERROR &&
           has(&f.detail, "no reply to BLPOP within"),
       "a command that blocks on the server is cut at the deadline");
  T_OK(f.took_ms >= 290 && f.took_ms < 800, "after %lld ms (deadline 300)",
       (long long)f.took_ms);
  T_OK(step(&f, "redis", "{'command': ['PING'], 'expect': 'PONG'}", 2000) ==
           ER_STEP_OK,
       "the next call reconnects (no late reply read as the answer)");
  fx_free(&f);

  T_OK(hfd >= 0, "hanging listener on port %d", hport);
  snprintf(env, sizeof env, "{'redis': {'url': 'redis://127.0.0.1:%d/0'}}",
           hport);
  fx_init(&f, env);
  T_OK(step(&f, "redis", "{'command': ['GET', 'x']}", 400) == ER_STEP_ERROR &&
           has(&f.detail, "no reply to GET within"),
       "a server that accepts and never answers: step error");
  T_OK(f.took_ms >= 390 && f.took_ms < 900, "bounded by the deadline (%lld ms)",
       (long long)f.took_ms);
  fx_free(&f);
  snprintf(env, sizeof env, "{'redis': {'url': 'redis://:pw@127.0.0.1:%d/3'}}",
           hport);
  fx_init(&f, env);
  T_OK(step(&f, "redis.clean", "{'match': 'x:*'}", 300) == ER_STEP_ERROR &&
           has(&f.detail, "no reply to AUTH within") && f.took_ms < 800,
       "AUTH on a silent server is bounded too (%lld ms)",
       (long long)f.took_ms);
  fx_free(&f);
  if (hfd >= 0)
    close(hfd);
}

static void test_adapter(void) {
  er_err_t err = {0};
  er_redis_t *r = er_redis_new(g_url, 64 * 1024, &err);
  json_t *rep = NULL;
  const char *set[3] = {"SET", "big", NULL};
  const char *get[2] = {"GET", "big"};
  const char *ping[1] = {"PING"};
  char *big = malloc(100 * 1024 + 1);
  long long deleted = 0;
  int rc;

  memset(big, 'b', 100 * 1024);
  big[100 * 1024] = '\0';
  set[2] = big;
  rc = er_redis_command(r, 3, set, NULL, er_now_ms() + 2000, &rep, &err);
  T_OK(rc == ER_REDIS_OK, "adapter: SET of 100 KB");
  json_decref(rep);
  rc = er_redis_command(r, 2, get, NULL, er_now_ms() + 2000, &rep, &err);
  T_OK(rc == -1 && rep == NULL && err.code == ER_E_ENV &&
           strstr(err.msg, "larger than 65536 bytes; refused"),
       "a reply over the cap is refused: %s", err.msg);
  T_OK(!er_redis_connected(r), "and the connection is dropped");
  er_err_clear(&err);
  rc = er_redis_command(r, 1, ping, NULL, er_now_ms() + 2000, &rep, &err);
  T_OK(rc == ER_REDIS_OK && json_is_string(rep) &&
           !strcmp(json_string_value(rep), "PONG"),
       "the next command reconnects");
  json_decref(rep);
  rc = er_redis_command(r, 0, ping, NULL, er_now_ms() + 2000, &rep, &err);
  T_OK(rc == -1 && err.code == ER_E_INPUT, "an empty argv is refused");
  er_err_clear(&err);
  R_ok("SET gone:1 x");
  R_ok("SET gone:2 x");
  rc = er_redis_scan_unlink(r, "gone:*", 1, er_now_ms() + 2000, &deleted, &err);
  T_OK(rc == 0 && deleted == 2 && R_int("EXISTS gone:1 gone:2") == 0,
       "scan_unlink with batch 1 deletes both (%lld)", deleted);
  er_redis_free(r);
  free(big);
}

static void test_unix(void) {
  fx_t f;
  char env[512];
  const char *u = getenv("REDIS_UNIX_URL");
  if (!u) {
    T_OK(0, "REDIS_UNIX_URL not set");
    return;
  }
  snprintf(env, sizeof env, "{'redis': {'url': '%s'}}", u);
  fx_init(&f, env);
  T_OK(step(&f, "redis.seed", "{'keys': {'u': 'sock'}}", 2000) == ER_STEP_OK &&
           step(&f, "redis", "{'command': ['GET', 'u'], 'expect': 'sock'}",
                2000) == ER_STEP_OK,
       "unix socket URL with ?db=2");
  T_OK(step(&f, "redis",
            "{'command': ['CLIENT', 'INFO'], "
            "'expect': {'$regex': ' db=2 '}}",
            2000) == ER_STEP_OK,
       "the unix connection selected db 2");
  fx_free(&f);
}

/* validate(): raw args -> the messages recorded by the local er_diag. */
static const char *diags(const char *action, const char *args) {
  const er_action_t *a = er_action_find(action);
  json_t *j = J(args);
  struct er_diag d = {0};
  er_buf_reset(&g_diags);
  if (a && a->validate && j)
    a->validate(j, &d);
  json_decref(j);
  return er_buf_cstr(&g_diags);
}

static void test_validate(void) {
  if (!diag_is_local()) {
    /* a failure, not a skip: 18 checks would vanish without a trace */
    printf("not ok - validate tests cannot run: the loader's er_diag_error "
           "is linked into this program (a step module now pulls in the "
           "loader)\n");
    return;
  }
  T_STREQ(diags("redis", "{'command': ['GET', 'k'], 'capture': {'a': '/0'}}"),
          "", "redis: a good step has no diagnostics");
  T_STREQ(diags("redis", "{'command': []}"),
          "error /command: the command is empty; write it as an array such "
          "as [\"GET\", \"key\"]\n",
          "redis: empty command");
  T_OK(strstr(diags("redis", "{'command': ['GET', {'a': 1}, true]}"),
              "error /command/1: command elements are strings or numbers") &&
           strstr(er_buf_cstr(&g_diags), "error /command/2:"),
       "redis: object and boolean command elements");
  T_OK(strstr(diags("redis", "{'command': ['GET'], 'capture': {'a/b': 'x'}}"),
              "error /capture/a~1b: \"x\" is neither a JSON pointer"),
       "redis: a capture that is not a pointer (path escaped)");
  T_OK(strstr(diags("redis", "{'command': ['GET'], 'url': 'redis://:pw@h:0'}"),
              "error /url: redis URL redis://:***@h:0: the port") &&
           !strstr(er_buf_cstr(&g_diags), "pw@"),
       "redis: a bad url, redacted");
  T_STREQ(diags("redis", "{'command': ['GET'], 'url': '${env.R}'}"), "",
          "redis: a templated url is left for run time");
  T_STREQ(diags("redis.clean", "{'match': ['a:*', 'b:*'], 'batch': 10}"), "",
          "redis.clean: good step");
  T_OK(
      strstr(diags("redis.clean", "{}"), "error : redis.clean needs \"match\""),
      "redis.clean: needs match or flush");
  T_OK(
      strstr(diags("redis.clean", "{'flush': true, 'match': 'a'}"), "not both"),
      "redis.clean: match and flush together");
  T_OK(strstr(diags("redis.clean", "{'match': ['a', ''], 'batch': 0}"),
              "error /match/1:") &&
           strstr(er_buf_cstr(&g_diags), "error /batch: batch must be from 1"),
       "redis.clean: empty pattern and batch 0");
  T_STREQ(diags("redis.seed",
                "{'keys': {'a': 'v', 'b': 1, 'c': {'value': {'x': 1}}, "
                "'d': {'hash': {'f': 1}, 'ttl': '1m'}, 'e': {'set': ['x']}, "
                "'f': {'list': [1], 'ttl': null}}, 'ttl': '1h'}"),
          "", "redis.seed: good step");
  T_OK(strstr(diags("redis.seed", "{'keys': {'k': {'hahs': {}}}}"),
              "error /keys/k/hahs: unknown key \"hahs\"; did you mean "
              "\"hash\"?"),
       "redis.seed: unknown key with a suggestion");
  T_OK(strstr(diags("redis.seed", "{'keys': {'k': {'hash': {}, 'set': []}}}"),
              "error /keys/k: give exactly one of"),
       "redis.seed: two kinds at once");
  T_OK(strstr(diags("redis.seed", "{'keys': {'k': {'hash': {'f': true}}}}"),
              "error /keys/k/hash/f: hash values are strings or numbers"),
       "redis.seed: a boolean hash value");
  T_OK(strstr(diags("redis.seed", "{'keys': {'k': {'set': [null]}}}"),
              "error /keys/k/set/0: set elements"),
       "redis.seed: a null set member");
  T_OK(strstr(diags("redis.seed", "{'keys': {'k': {'value': 1, 'ttl': "
                                  "'soon'}}}"),
              "error /keys/k/ttl: ttl is a duration"),
       "redis.seed: a bad key ttl");
  T_OK(strstr(diags("redis.seed", "{'keys': {'k': true}}"),
              "error /keys/k: a seed is a string"),
       "redis.seed: a boolean seed");
  T_OK(strstr(diags("redis.seed", "{'keys': {'k': 'v'}, 'ttl': '0s'}"),
              "error /ttl: ttl must be above 0"),
       "redis.seed: ttl 0s");
}

int main(void) {
  const char *port = getenv("REDIS_PORT");
  g_host = getenv("REDIS_HOST") ? getenv("REDIS_HOST") : "127.0.0.1";
  if (!port) {
    printf("not ok 1 - REDIS_PORT not set (run tests/integration/redis.sh)\n");
    return 1;
  }
  g_port = atoi(port);
  snprintf(g_url, sizeof g_url, "redis://%s:%d/0", g_host, g_port);
  if (raw_connect() != 0) {
    printf("not ok 1 - cannot connect the checker to %s\n", g_url);
    return 1;
  }
  test_validate();
  test_replies();
  test_values();
  test_urls();
  test_auth();
  test_clean();
  test_seed();
  test_adapter();
  test_deadlines();
  test_unix();
  test_restart();
  redisFree(g_raw);
  er_buf_free(&g_diags);
  return t_done();
}
