/* itest_contend.c: the redis.contend step against a real redis-server
 * (tests/integration/contend.sh; REDIS_HOST, REDIS_PORT).
 *
 * Proves, with a plain hiredis connection of its own (not the code under
 * test): a WATCH on a key of every type (set, hash, list, zset, string,
 * missing key) is broken by the contention (EXEC returns nil), while the
 * same WATCH/MULTI/EXEC commits without it; the data is what it was
 * afterwards (members, fields, elements, scores, value and TTL); with a
 * command, every write is counted (INCR totals equal the counts); bad
 * arguments, a stream key, an unreachable server, a duration longer than
 * the scenario's time left and an interrupt end the step as they should. */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "run/exec.h"
#include "tap.h"

static const char *g_host;
static int g_port;
static char g_url[256];
static char g_pfx[64];
static redisContext *g_raw;

/* ---- the step, run as the runner would ------------------------------------
 */

typedef struct job {
  json_t *args;
  int64_t timeout_ms;
  er_buf_t log, detail;
  json_t *caps;
  int rc;
  int64_t took_ms;
} job_t;

static json_t *g_env;

static void job_init(job_t *j, json_t *args, int64_t timeout_ms) {
  memset(j, 0, sizeof *j);
  j->args = args;
  j->timeout_ms = timeout_ms;
  er_buf_init(&j->log, 64 * 1024);
  er_buf_init(&j->detail, 16 * 1024);
  j->caps = json_object();
}

static void job_free(job_t *j) {
  json_decref(j->args);
  er_buf_free(&j->log);
  er_buf_free(&j->detail);
  json_decref(j->caps);
}

static void *job_run(void *arg) {
  job_t *j = arg;
  const er_action_t *a = er_action_find("redis.contend");
  er_session_t *sess = er_session_new();
  int64_t t0 = er_now_ms();
  er_exec_t x = {.env = g_env,
                 .session = sess,
                 .deadline_ms = t0 + j->timeout_ms,
                 .log = &j->log,
                 .captures = j->caps,
                 .detail = &j->detail};
  j->rc = a && j->args ? a->run(&x, j->args) : -1;
  j->took_ms = er_now_ms() - t0;
  er_session_free(sess);
  return NULL;
}

/* ---- plain hiredis helpers -------------------------------------------------
 */

static redisReply *cmd(const char *fmt, ...) {
  va_list ap;
  redisReply *r;
  va_start(ap, fmt);
  r = redisvCommand(g_raw, fmt, ap);
  va_end(ap);
  return r;
}

static void cmd_ok(const char *fmt, ...) {
  va_list ap;
  redisReply *r;
  va_start(ap, fmt);
  r = redisvCommand(g_raw, fmt, ap);
  va_end(ap);
  if (!r || r->type == REDIS_REPLY_ERROR)
    printf("# command failed: %s\n", r ? r->str : g_raw->errstr);
  if (r)
    freeReplyObject(r);
}

/* A reply as text: arrays as "a,b,c"; nil as "(nil)". Caller frees. */
static char *reply_text(redisReply *r) {
  er_buf_t b = ER_BUF_INIT(4096);
  if (!r)
    er_buf_puts(&b, "(no reply)");
  else if (r->type == REDIS_REPLY_NIL)
    er_buf_puts(&b, "(nil)");
  else if (r->type == REDIS_REPLY_INTEGER)
    er_buf_printf(&b, "%lld", r->integer);
  else if (r->type == REDIS_REPLY_ARRAY)
    for (size_t i = 0; i < r->elements; i++) {
      char *e = reply_text(r->element[i]);
      er_buf_printf(&b, "%s%s", i ? "," : "", e);
      free(e);
    }
  else
    er_buf_append(&b, r->str, r->len);
  er_buf_cstr(&b);
  return er_buf_steal(&b);
}

/* Runs a command, returns its reply as text. Caller frees. */
static char *q(const char *fmt, ...) {
  va_list ap;
  redisReply *r;
  char *t;
  va_start(ap, fmt);
  r = redisvCommand(g_raw, fmt, ap);
  va_end(ap);
  t = reply_text(r);
  if (r)
    freeReplyObject(r);
  return t;
}

/* WATCH key, wait 100 ms, MULTI, SET a scratch key, EXEC. True when the
 * transaction committed (EXEC returned an array), false when aborted
 * (nil). */
static bool watch_commits(const char *key) {
  redisReply *r;
  bool committed = false;
  cmd_ok("WATCH %s", key);
  er_sleep_ms(100); /* the window in which others may touch the key */
  cmd_ok("MULTI");
  cmd_ok("SET %s:scratch x", g_pfx);
  r = cmd("EXEC");
  committed = r && r->type == REDIS_REPLY_ARRAY;
  if (r && r->type != REDIS_REPLY_ARRAY && r->type != REDIS_REPLY_NIL)
    printf("# EXEC replied type %d\n", r->type);
  if (r)
    freeReplyObject(r);
  return committed;
}

static long long eval_calls(void) {
  char *info = q("INFO commandstats");
  char *p = info ? strstr(info, "cmdstat_eval:calls=") : NULL;
  long long n = p ? atoll(p + strlen("cmdstat_eval:calls=")) : 0;
  free(info);
  return n;
}

static json_t *J(const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  json_error_t je;
  json_t *v;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  for (char *p = buf; *p; p++)
    if (*p == '\'')
      *p = '"';
  v = json_loads(buf, 0, &je);
  if (!v)
    printf("# bad test JSON %s: %s\n", buf, je.text);
  return v;
}

/* ---- tests ----------------------------------------------------------------
 */

static const char *const g_types[] = {"set",  "hash", "list",
                                      "zset", "str",  "none"};

static void seed(void) {
  cmd_ok("DEL %s:set %s:hash %s:list %s:zset %s:str %s:none", g_pfx, g_pfx,
         g_pfx, g_pfx, g_pfx, g_pfx);
  cmd_ok("SADD %s:set a b c", g_pfx);
  cmd_ok("HSET %s:hash f 1 g 2", g_pfx);
  cmd_ok("RPUSH %s:list x y x", g_pfx);
  cmd_ok("ZADD %s:zset 1.5 m 2 n", g_pfx);
  cmd_ok("SET %s:str hello EX 1000", g_pfx);
}

static void check_data(const char *when) {
  char *t;
  t = q("SORT %s:set ALPHA", g_pfx);
  T_STREQ(t, "a,b,c", "%s: the set has its members", when);
  free(t);
  t = q("HGETALL %s:hash", g_pfx);
  T_OK(t && (strcmp(t, "f,1,g,2") == 0 || strcmp(t, "g,2,f,1") == 0),
       "%s: the hash has its fields (%s)", when, t ? t : "");
  free(t);
  t = q("LRANGE %s:list 0 -1", g_pfx);
  T_STREQ(t, "x,y,x", "%s: the list has its elements in order", when);
  free(t);
  t = q("ZRANGE %s:zset 0 -1 WITHSCORES", g_pfx);
  T_STREQ(t, "m,1.5,n,2", "%s: the zset has its members and scores", when);
  free(t);
  t = q("GET %s:str", g_pfx);
  T_STREQ(t, "hello", "%s: the string has its value", when);
  free(t);
  t = q("TTL %s:str", g_pfx);
  T_OK(t && atoi(t) > 900, "%s: and its TTL (%s)", when, t ? t : "");
  free(t);
  t = q("EXISTS %s:none", g_pfx);
  T_STREQ(t, "0", "%s: the missing key is still missing", when);
  free(t);
}

static void test_watch_conflicts(void) {
  job_t j;
  pthread_t th;
  long long calls0;
  int64_t end;
  bool running = false;
  char key[128];

  seed();
  for (size_t i = 0; i < 6; i++) {
    snprintf(key, sizeof key, "%s:%s", g_pfx, g_types[i]);
    T_OK(watch_commits(key), "without contention, WATCH %s then EXEC commits",
         g_types[i]);
  }
  calls0 = eval_calls();
  job_init(&j,
           J("{'keys': ['%s:set', '%s:hash', '%s:list', '%s:zset', '%s:str', "
             "'%s:none'], 'for': '2s', 'connections': 4, "
             "'capture': {'w': '/writes', 'all': ''}}",
             g_pfx, g_pfx, g_pfx, g_pfx, g_pfx, g_pfx),
           30000);
  pthread_create(&th, NULL, job_run, &j);
  /* contention has begun once the server counts its writes */
  for (end = er_now_ms() + 5000; er_now_ms() < end;) {
    if (eval_calls() > calls0 + 20) {
      running = true;
      break;
    }
    er_sleep_ms(5);
  }
  T_OK(running, "the contention started (the server counts EVAL calls)");
  for (size_t i = 0; i < 6 && running; i++) {
    snprintf(key, sizeof key, "%s:%s", g_pfx, g_types[i]);
    T_OK(!watch_commits(key),
         "during contention, WATCH %s then EXEC is aborted (nil)", g_types[i]);
  }
  pthread_join(th, NULL);
  T_OK(j.rc == ER_STEP_OK, "the step passes: %s", er_buf_cstr(&j.detail));
  T_OK(j.took_ms >= 2000 && j.took_ms < 4000, "it lasted its 2s (%lldms)",
       (long long)j.took_ms);
  {
    json_t *w = json_object_get(j.caps, "w");
    json_t *all = json_object_get(j.caps, "all");
    long long sum = 0;
    const char *k;
    json_t *v;
    T_OK(json_is_integer(w) && json_integer_value(w) > 100,
         "captured writes > 100 (%lld)", (long long)json_integer_value(w));
    T_OK(json_integer_value(json_object_get(all, "connections")) == 4,
         "the result says 4 connections");
    json_object_foreach(json_object_get(all, "per_key"), k, v) {
      sum += json_integer_value(v);
      T_OK(json_integer_value(v) > 10, "key %s got writes (%lld)", k,
           (long long)json_integer_value(v));
    }
    T_OK(sum == json_integer_value(w), "per_key adds up to writes");
    T_OK(strstr(er_buf_cstr(&j.log), "redis.contend: 4 connection(s) wrote ") !=
             NULL,
         "the log says how many writes: %s", er_buf_cstr(&j.log));
  }
  job_free(&j);
  check_data("after contention");
  for (size_t i = 0; i < 6; i++) {
    snprintf(key, sizeof key, "%s:%s", g_pfx, g_types[i]);
    T_OK(watch_commits(key),
         "after contention, WATCH %s then EXEC commits again", g_types[i]);
  }
  check_data("after the transactions");
}

/* A sentinel already in the set, hash or zset: removed and put back. */
static void test_sentinel_present(void) {
  job_t j;
  char *t;
  cmd_ok("DEL %s:sset %s:shash", g_pfx, g_pfx);
  cmd_ok("SADD %s:sset a __eventrig_contend__", g_pfx);
  cmd_ok("HSET %s:shash __eventrig_contend__ keep", g_pfx);
  job_init(&j,
           J("{'keys': ['%s:sset', '%s:shash'], 'for': '200ms', "
             "'connections': 2}",
             g_pfx, g_pfx),
           10000);
  job_run(&j);
  T_OK(j.rc == ER_STEP_OK, "contend on keys holding the sentinel");
  job_free(&j);
  t = q("SORT %s:sset ALPHA", g_pfx);
  T_STREQ(t, "__eventrig_contend__,a", "a sentinel member stays a member");
  free(t);
  t = q("HGET %s:shash __eventrig_contend__", g_pfx);
  T_STREQ(t, "keep", "a sentinel field keeps its value");
  free(t);
}

static void test_command_counts(void) {
  job_t j;
  char *t1, *t2;
  json_t *n1, *n2;
  cmd_ok("DEL %s:n1 %s:n2", g_pfx, g_pfx);
  job_init(&j,
           J("{'keys': ['%s:n1', '%s:n2'], 'for': '300ms', 'connections': 3, "
             "'command': ['INCRBY', '{key}', 1], "
             "'capture': {'n1': '/per_key/%s:n1', 'n2': '/per_key/%s:n2'}}",
             g_pfx, g_pfx, g_pfx, g_pfx),
           10000);
  job_run(&j);
  T_OK(j.rc == ER_STEP_OK, "contend with a command passes: %s",
       er_buf_cstr(&j.detail));
  n1 = json_object_get(j.caps, "n1");
  n2 = json_object_get(j.caps, "n2");
  t1 = q("GET %s:n1", g_pfx);
  t2 = q("GET %s:n2", g_pfx);
  T_OK(json_is_integer(n1) && t1 && atoll(t1) == json_integer_value(n1) &&
           json_integer_value(n1) > 10,
       "{key} is replaced and every write counted: INCRBY total %s == %lld",
       t1 ? t1 : "", (long long)json_integer_value(n1));
  T_OK(json_is_integer(n2) && t2 && atoll(t2) == json_integer_value(n2),
       "on the second key too: %s == %lld", t2 ? t2 : "",
       (long long)json_integer_value(n2));
  free(t1);
  free(t2);
  job_free(&j);
}

static void test_errors(void) {
  job_t j;
  char url[300];

  cmd_ok("DEL %s:stream", g_pfx);
  cmd_ok("XADD %s:stream * f v", g_pfx);
  job_init(&j, J("{'keys': ['%s:stream'], 'for': '300ms'}", g_pfx), 10000);
  job_run(&j);
  T_OK(j.rc == ER_STEP_ERROR &&
           strstr(er_buf_cstr(&j.detail), "holds a stream, which "
                                          "redis.contend cannot modify") &&
           strstr(er_buf_cstr(&j.detail), "give a command"),
       "a stream key without a command is an error: %s",
       er_buf_cstr(&j.detail));
  T_OK(j.took_ms < 300, "at once (%lldms)", (long long)j.took_ms);
  job_free(&j);
  {
    char *t = q("XLEN %s:stream", g_pfx);
    T_STREQ(t, "1", "and the stream is untouched");
    free(t);
  }

  job_init(&j,
           J("{'keys': ['%s:x'], 'for': '300ms', 'command': ['NOSUCHCMD', "
             "'{key}']}",
             g_pfx),
           10000);
  job_run(&j);
  T_OK(j.rc == ER_STEP_ERROR &&
           strstr(er_buf_cstr(&j.detail), "the server replied: ERR unknown "
                                          "command"),
       "an error reply stops the step: %s", er_buf_cstr(&j.detail));
  job_free(&j);

  snprintf(url, sizeof url, "redis://127.0.0.1:1/0"); /* nobody there */
  job_init(
      &j,
      J("{'keys': ['k'], 'for': '300ms', 'url': '%s', 'connections': 3}", url),
      10000);
  job_run(&j);
  T_OK(j.rc == ER_STEP_ERROR &&
           strstr(er_buf_cstr(&j.detail), "cannot connect") &&
           strstr(er_buf_cstr(&j.detail), "after 0 write(s)"),
       "an unreachable server is an error: %s", er_buf_cstr(&j.detail));
  job_free(&j);

  job_init(&j, J("{'keys': ['k'], 'for': '5s'}"), 1000);
  job_run(&j);
  T_OK(j.rc == ER_STEP_FAIL &&
           strstr(er_buf_cstr(&j.detail),
                  "redis.contend for 5.000s does not fit in what is left of "
                  "the scenario timeout"),
       "longer than the time left fails at once: %s", er_buf_cstr(&j.detail));
  job_free(&j);

  job_init(&j, J("{'keys': ['k'], 'for': '1s', 'connections': 65}"), 10000);
  job_run(&j);
  T_OK(j.rc == ER_STEP_FATAL &&
           strstr(er_buf_cstr(&j.detail), "\"connections\" must be 1 to 64"),
       "65 connections are refused: %s", er_buf_cstr(&j.detail));
  job_free(&j);

  job_init(&j, J("{'keys': ['k'], 'for': '11m'}"), 3600000);
  job_run(&j);
  T_OK(j.rc == ER_STEP_FATAL &&
           strstr(er_buf_cstr(&j.detail), "\"for\" must be a duration from 1ms "
                                          "to 10m"),
       "11 minutes are refused: %s", er_buf_cstr(&j.detail));
  job_free(&j);

  job_init(&j, J("{'keys': [], 'for': '1s'}"), 10000);
  job_run(&j);
  T_OK(j.rc == ER_STEP_FATAL, "no keys is fatal: %s", er_buf_cstr(&j.detail));
  job_free(&j);
}

static void test_interrupt(void) {
  job_t j;
  pthread_t th;
  long long calls0 = eval_calls();
  int64_t end, t0;
  job_init(&j, J("{'keys': ['%s:set'], 'for': '20s', 'connections': 2}", g_pfx),
           60000);
  pthread_create(&th, NULL, job_run, &j);
  for (end = er_now_ms() + 5000;
       er_now_ms() < end && eval_calls() < calls0 + 20;)
    er_sleep_ms(5);
  t0 = er_now_ms();
  er_set_interrupted(SIGINT);
  pthread_join(th, NULL);
  er_set_interrupted(0);
  T_OK(er_now_ms() - t0 < 1000,
       "an interrupt ends the contention at once "
       "(%lldms)",
       (long long)(er_now_ms() - t0));
  T_OK(j.rc == ER_STEP_ERROR && strstr(er_buf_cstr(&j.detail), "interrupted"),
       "as an error: %s", er_buf_cstr(&j.detail));
  job_free(&j);
}

int main(void) {
  struct timeval tv = {5, 0};
  char pfx[37];
  g_host = getenv("REDIS_HOST");
  g_port = getenv("REDIS_PORT") ? atoi(getenv("REDIS_PORT")) : 0;
  if (!g_host || !g_port) {
    printf("not ok 1 - REDIS_HOST and REDIS_PORT are set\n");
    return 1;
  }
  snprintf(g_url, sizeof g_url, "redis://%s:%d/0", g_host, g_port);
  er_uuid4(pfx);
  snprintf(g_pfx, sizeof g_pfx, "ct:%.8s", pfx);
  g_env = json_pack("{s:{s:s}}", "redis", "url", g_url);
  g_raw = redisConnectWithTimeout(g_host, g_port, tv);
  if (!g_raw || g_raw->err) {
    printf("not ok 1 - connect to redis\n");
    return 1;
  }
  redisSetTimeout(g_raw, tv);
  test_watch_conflicts();
  test_sentinel_present();
  test_command_counts();
  test_errors();
  test_interrupt();
  redisFree(g_raw);
  json_decref(g_env);
  return t_done();
}
