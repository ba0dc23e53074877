/* itest_pg.c: the Postgres adapter (pg.c) and the postgres.* steps
 * (act_pg.c) against real servers started by tests/integration/pg.sh.
 *
 * Environment: PG_DSN (a server for the whole test), PG2_DSN and PG2_PID
 * (a second server, and the pid of its pg-throwaway.sh, which this test
 * stops to check what a vanished server looks like). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapters/pg.h"
#include "base/jsonbig.h"
#include "lang/jsonx.h"
#include "run/exec.h"
#include "tap.h"

extern const er_action_t er_act_pg_exec;
extern const er_action_t er_act_pg_expect;
extern const er_action_t er_act_pg_alias;

#include "diag_standin.h"

/* ---- a step context ---------------------------------------------------- */

typedef struct ctx {
  er_exec_t x;
  er_buf_t log, detail;
  json_t *env, *caps;
  er_session_t *s;
} ctx_t;

static void ctx_init(ctx_t *c, const char *dsn) {
  memset(c, 0, sizeof *c);
  er_buf_init(&c->log, 256 * 1024);
  er_buf_init(&c->detail, 64 * 1024);
  c->env = dsn ? json_pack("{s:{s:s}}", "postgres", "dsn", dsn) : json_object();
  c->caps = json_object();
  c->s = er_session_new();
  c->x.env = c->env;
  c->x.session = c->s;
  c->x.log = &c->log;
  c->x.detail = &c->detail;
  c->x.captures = c->caps;
  c->x.base_dir = NULL;
}

static void ctx_free(ctx_t *c) {
  er_session_free(c->s);
  json_decref(c->env);
  json_decref(c->caps);
  er_buf_free(&c->log);
  er_buf_free(&c->detail);
}

/* Runs action a with args (JSON text) and a deadline timeout_ms away. */
static int run_step(ctx_t *c, const er_action_t *a, int64_t timeout_ms,
                    const char *args_json) {
  json_error_t je;
  json_t *args = er_json_loadb(args_json, strlen(args_json), 0, &je);
  int rc;
  if (!args) {
    printf("# bad test JSON: %s: %s\n", je.text, args_json);
    return -1;
  }
  er_buf_reset(&c->detail);
  c->x.deadline_ms = er_now_ms() + timeout_ms;
  rc = a->run(&c->x, args);
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

#define STEP(c, a, ms, rcwant, ...)                                            \
  do {                                                                         \
    int rc_ = run_step((c), (a), (ms), __VA_ARGS__);                           \
    T_OK(rc_ == (rcwant), "%s -> %d (got %d): %.70s", (a)->name, (rcwant),     \
         rc_, __VA_ARGS__);                                                    \
    if (rc_ != (rcwant))                                                       \
      show("detail", &(c)->detail);                                            \
  } while (0)

/* A loopback port nothing listens on (bound, then closed). */
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

/* A listening socket that never accepts: TCP connects, nothing answers. */
static int silent_listener(int *port) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0)
    return -1;
  getsockname(fd, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return fd;
}

static json_t *cell(const er_pg_result_t *r, size_t row, size_t col) {
  return json_array_get(json_array_get(r->rows, row), col);
}

/* ---- adapter tests ----------------------------------------------------- */

static void test_redact(void) {
  char out[256];
  er_pg_redact_dsn("postgresql://u:s3cret@h:5432/db", out, sizeof out);
  T_STREQ(out, "postgresql://u:***@h:5432/db", "redact: URI userinfo");
  er_pg_redact_dsn("postgres://u@h/db?sslmode=disable&password=s3cret&x=1", out,
                   sizeof out);
  T_STREQ(out, "postgres://u@h/db?sslmode=disable&password=***&x=1",
          "redact: URI query parameter");
  er_pg_redact_dsn("host=h password=s3cret user=u", out, sizeof out);
  T_STREQ(out, "host=h password=*** user=u", "redact: key=value");
  er_pg_redact_dsn("host=h password = 'se cr\\'et' user=u", out, sizeof out);
  T_STREQ(out, "host=h password = *** user=u", "redact: quoted key=value");
  er_pg_redact_dsn("postgresql://postgres@127.0.0.1:5/postgres", out,
                   sizeof out);
  T_STREQ(out, "postgresql://postgres@127.0.0.1:5/postgres",
          "redact: nothing to hide stays as is");
}

static void test_bad_dsn(void) {
  er_err_t err = {0, ""};
  er_pg_t *pg = er_pg_new("host=h password=s3cretpw port", &err);
  T_OK(!pg && err.code == ER_E_INPUT, "malformed DSN -> ER_E_INPUT");
  T_OK(strstr(err.msg, "s3cretpw") == NULL && strstr(err.msg, "***"),
       "malformed DSN message hides the password: %s", err.msg);
  er_pg_free(pg);
}

static void test_types(const char *dsn) {
  er_err_t err = {0, ""};
  er_pg_result_t r = {0};
  er_pg_t *pg = er_pg_new(dsn, &err);
  int rc;
  char *s;
  rc = er_pg_query(pg,
                   "SELECT 1::int2 AS a, 2::int4, 3000000000::int8, 4::oid, "
                   "1.5::float4, 2.25::float8, 3.125::numeric, "
                   "12.000::numeric, '123456789012345678901234.5'::numeric, "
                   "true, false, '{\"a\":[1,2]}'::json, "
                   "'{\"b\":null}'::jsonb, NULL::int, 'héllo'::text, "
                   "'2024-01-02'::date, 'NaN'::float8, "
                   "'99999999999999999999'::numeric",
                   NULL, 0, er_now_ms() + 5000, &r, &err);
  T_OK(rc == 0, "typed select runs (%s)", err.msg);
  s = er_json_brief(r.rows, 1000);
  printf("# rows: %s\n", s);
  free(s);
  T_OK(json_array_size(r.rows) == 1 && r.total_rows == 1 && !r.truncated,
       "one row");
  T_STREQ(json_string_value(json_array_get(r.columns, 0)), "a",
          "column names returned");
  T_OK(json_is_integer(cell(&r, 0, 0)) &&
           json_integer_value(cell(&r, 0, 0)) == 1,
       "int2 -> integer");
  T_OK(json_is_integer(cell(&r, 0, 1)) &&
           json_integer_value(cell(&r, 0, 1)) == 2,
       "int4 -> integer");
  T_OK(json_is_integer(cell(&r, 0, 2)) &&
           json_integer_value(cell(&r, 0, 2)) == 3000000000LL,
       "int8 -> integer (beyond 32 bits)");
  T_OK(json_is_integer(cell(&r, 0, 3)) &&
           json_integer_value(cell(&r, 0, 3)) == 4,
       "oid -> integer");
  T_OK(json_is_real(cell(&r, 0, 4)) && json_real_value(cell(&r, 0, 4)) == 1.5,
       "float4 -> number");
  T_OK(json_is_real(cell(&r, 0, 5)) && json_real_value(cell(&r, 0, 5)) == 2.25,
       "float8 -> number");
  T_OK(json_is_real(cell(&r, 0, 6)) && json_real_value(cell(&r, 0, 6)) == 3.125,
       "numeric with a fraction -> real");
  T_OK(json_is_integer(cell(&r, 0, 7)) &&
           json_integer_value(cell(&r, 0, 7)) == 12,
       "integral numeric -> integer");
  T_STREQ(json_string_value(cell(&r, 0, 8)), "123456789012345678901234.5",
          "huge numeric -> string, exact");
  T_OK(json_is_true(cell(&r, 0, 9)) && json_is_false(cell(&r, 0, 10)),
       "bool -> true/false");
  T_OK(json_is_object(cell(&r, 0, 11)) &&
           json_array_size(json_object_get(cell(&r, 0, 11), "a")) == 2,
       "json -> parsed");
  T_OK(json_is_object(cell(&r, 0, 12)) &&
           json_is_null(json_object_get(cell(&r, 0, 12), "b")),
       "jsonb -> parsed");
  T_OK(json_is_null(cell(&r, 0, 13)), "NULL -> null");
  T_STREQ(json_string_value(cell(&r, 0, 14)), "héllo",
          "text -> string (UTF-8)");
  T_STREQ(json_string_value(cell(&r, 0, 15)), "2024-01-02",
          "other types -> their text form");
  T_STREQ(json_string_value(cell(&r, 0, 16)), "NaN", "float NaN -> string");
  T_STREQ(er_big_digits(cell(&r, 0, 17)), "99999999999999999999",
          "integral numeric beyond int64 -> an exact integer (jsonbig.h)");
  er_pg_result_free(&r);

  /* parameters: text, typed by the server */
  {
    const char *p[] = {"41", "x", "{\"k\": \"v\"}", NULL, "true"};
    rc = er_pg_query(pg,
                     "SELECT $1::int + 1, $2::text, $3::jsonb->>'k', "
                     "$4::text IS NULL, NOT $5::bool",
                     p, 5, er_now_ms() + 5000, &r, &err);
    T_OK(rc == 0 && json_integer_value(cell(&r, 0, 0)) == 42 &&
             !strcmp(json_string_value(cell(&r, 0, 1)), "x") &&
             !strcmp(json_string_value(cell(&r, 0, 2)), "v") &&
             json_is_true(cell(&r, 0, 3)) && json_is_false(cell(&r, 0, 4)),
         "adapter params ($1..$5, NULL)");
    er_pg_result_free(&r);
  }

  /* caps */
  rc = er_pg_query(pg, "SELECT g FROM generate_series(1, 20000) g", NULL, 0,
                   er_now_ms() + 10000, &r, &err);
  T_OK(rc == 0 && r.truncated && r.total_rows == 20000 &&
           json_array_size(r.rows) == ER_PG_MAX_ROWS,
       "20000 rows: %zu kept, truncated flag set, total counted",
       json_array_size(r.rows));
  er_pg_result_free(&r);
  rc = er_pg_query(pg, "SELECT repeat('x', 1000000) FROM generate_series(1, 6)",
                   NULL, 0, er_now_ms() + 10000, &r, &err);
  T_OK(rc == 0 && r.truncated && json_array_size(r.rows) == 4 &&
           r.total_rows == 6,
       "6 MB of rows: the byte cap keeps 4 of 6 (%zu)",
       json_array_size(r.rows));
  er_pg_result_free(&r);

  /* SQL error: SQLSTATE and the server's message */
  er_err_clear(&err);
  rc = er_pg_query(pg, "SELECT * FROM no_such_table", NULL, 0,
                   er_now_ms() + 5000, &r, &err);
  T_OK(rc == -1 && err.code == ER_E_FAIL && !strcmp(r.sqlstate, "42P01"),
       "SQL error -> ER_E_FAIL with SQLSTATE 42P01");
  T_STREQ(err.msg,
          "ERROR 42P01: relation \"no_such_table\" does not exist (at "
          "character 15)",
          "SQL error message");
  er_pg_result_free(&r);
  /* the connection is fine after an error */
  er_err_clear(&err);
  rc = er_pg_query(pg, "SELECT 7", NULL, 0, er_now_ms() + 5000, &r, &err);
  T_OK(rc == 0 && json_integer_value(cell(&r, 0, 0)) == 7,
       "next statement after an error works");
  er_pg_result_free(&r);
  er_pg_free(pg);
}

/* Notices are kept, never printed on stderr. */
static void test_notices(const char *dsn) {
  er_err_t err = {0, ""};
  er_pg_result_t r = {0};
  er_pg_t *pg = er_pg_new(dsn, &err);
  char tmpl[] = "/tmp/itest-pg-stderr.XXXXXX";
  int fd = mkstemp(tmpl), saved = dup(2), rc;
  char buf[4096];
  ssize_t n;
  fflush(stderr);
  dup2(fd, 2);
  rc = er_pg_query(pg,
                   "DO $$BEGIN RAISE NOTICE 'hello-notice'; END$$; "
                   "DO $$BEGIN RAISE WARNING 'careful-warning'; END$$",
                   NULL, 0, er_now_ms() + 5000, &r, &err);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  n = pread(fd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(tmpl);
  T_OK(rc == 0 && r.statements == 2, "two DO statements run");
  T_OK(strstr(er_pg_notices(pg), "hello-notice") &&
           strstr(er_pg_notices(pg), "careful-warning"),
       "notices kept: %s", er_pg_notices(pg));
  T_OK(strstr(buf, "hello-notice") == NULL, "nothing printed on stderr");
  er_pg_result_free(&r);
  er_pg_free(pg);
}

/* A statement past the deadline is cancelled; the connection stays. */
static void test_deadline(const char *dsn) {
  ctx_t c;
  json_t *pid1, *pid2;
  int64_t t0, took;
  int rc;
  ctx_init(&c, dsn);
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT pg_backend_pid()\", \"count\": 1,"
       " \"capture\": {\"pid\": \"/0/0\"}}");
  pid1 = json_incref(json_object_get(c.caps, "pid"));
  t0 = er_now_ms();
  rc = run_step(&c, &er_act_pg_expect, 300,
                "{\"query\": \"SELECT pg_sleep(5)\", \"count\": 1}");
  took = er_now_ms() - t0;
  T_OK(rc == ER_STEP_ERROR,
       "pg_sleep(5) with a 300ms deadline -> ER_STEP_ERROR");
  T_OK(took >= 290 && took < 1200, "returned after %lldms (about the deadline)",
       (long long)took);
  T_OK(has(&c.detail, "cancelled at the deadline"), "detail says cancelled");
  if (!has(&c.detail, "cancelled at the deadline"))
    show("detail", &c.detail);
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT pg_backend_pid()\", \"count\": 1,"
       " \"capture\": {\"pid\": \"/0/0\"}}");
  pid2 = json_object_get(c.caps, "pid");
  T_OK(pid1 && pid2 && json_equal(pid1, pid2),
       "same connection afterwards (backend pid unchanged)");
  json_decref(pid1);

  /* a server that accepts TCP but never answers: connect ends at the
   * deadline */
  {
    int port, lfd = silent_listener(&port);
    char args[512];
    snprintf(args, sizeof args,
             "{\"query\": \"SELECT 1\", \"count\": 1, \"dsn\": "
             "\"postgresql://postgres@127.0.0.1:%d/postgres\"}",
             port);
    t0 = er_now_ms();
    rc = run_step(&c, &er_act_pg_expect, 300, args);
    took = er_now_ms() - t0;
    T_OK(rc == ER_STEP_ERROR && took >= 290 && took < 1200,
         "silent server: ER_STEP_ERROR at the deadline (%lldms)",
         (long long)took);
    T_OK(has(&c.detail, "no answer within"), "detail says no answer");
    close(lfd);
  }
  ctx_free(&c);
}

/* A connection the server ended is replaced without failing the step. */
static void test_reconnect(const char *dsn) {
  ctx_t c, other;
  char args[256];
  json_int_t pid1;
  ctx_init(&c, dsn);
  ctx_init(&other, dsn);
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT pg_backend_pid()\", \"count\": 1,"
       " \"capture\": {\"pid\": \"/0/0\"}}");
  pid1 = json_integer_value(json_object_get(c.caps, "pid"));
  snprintf(args, sizeof args,
           "{\"query\": \"SELECT pg_terminate_backend($1::int)\","
           " \"params\": [%lld], \"equals\": [[true]]}",
           (long long)pid1);
  STEP(&other, &er_act_pg_expect, 5000, ER_STEP_OK, args);
  /* wait (bounded) for the backend to be gone */
  for (int i = 0; i < 100; i++) {
    snprintf(args, sizeof args,
             "{\"query\": \"SELECT 1 FROM pg_stat_activity WHERE pid = "
             "$1::int\", \"params\": [%lld], \"empty\": true}",
             (long long)pid1);
    if (run_step(&other, &er_act_pg_expect, 5000, args) == ER_STEP_OK)
      break;
    er_sleep_ms(20);
  }
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT pg_backend_pid()\", \"count\": 1,"
       " \"capture\": {\"pid\": \"/0/0\"}}");
  T_OK(json_integer_value(json_object_get(c.caps, "pid")) != pid1,
       "after the backend was terminated, a new connection serves the step");
  ctx_free(&c);
  ctx_free(&other);
}

/* er_pg_query_ro: a transaction the server keeps read-only, one statement */
static json_t *ro_cell(er_pg_t *pg, bool ro, const char *sql, er_err_t *err) {
  er_pg_result_t r = {0};
  json_t *v = NULL;
  int rc = (ro ? er_pg_query_ro : er_pg_query)(pg, sql, NULL, 0,
                                               er_now_ms() + 5000, &r, err);
  if (rc == 0)
    v = json_incref(json_array_get(json_array_get(r.rows, 0), 0));
  er_pg_result_free(&r);
  return v;
}

static void test_read_only(const char *dsn) {
  er_err_t err = {0, ""};
  er_pg_result_t r = {0};
  er_pg_t *pg = er_pg_new(dsn, &err);
  const char *p1[] = {"2"};
  json_t *v;
  int rc;
  int64_t t0;

  rc = er_pg_query(pg,
                   "DROP TABLE IF EXISTS ro_t; CREATE TABLE ro_t (id int); "
                   "INSERT INTO ro_t VALUES (1), (2)",
                   NULL, 0, er_now_ms() + 5000, &r, &err);
  er_pg_result_free(&r);
  T_OK(rc == 0, "read-only: a table to guard (%s)", err.msg);
  v = ro_cell(pg, true, "SHOW transaction_read_only", &err);
  T_STREQ(json_string_value(v), "on", "read-only: the server says so");
  json_decref(v);
  rc = er_pg_query_ro(pg, "SELECT id FROM ro_t WHERE id = $1", p1, 1,
                      er_now_ms() + 5000, &r, &err);
  T_OK(rc == 0 && json_array_size(r.rows) == 1, "read-only: a query with "
                                                "params reads");
  er_pg_result_free(&r);
  memset(&err, 0, sizeof err);
  rc = er_pg_query_ro(pg, "UPDATE ro_t SET id = 9", NULL, 0, er_now_ms() + 5000,
                      &r, &err);
  T_OK(rc != 0 && err.code == ER_E_FAIL && !strcmp(r.sqlstate, "25006"),
       "read-only: UPDATE refused by the server (%s)", err.msg);
  er_pg_result_free(&r);
  memset(&err, 0, sizeof err);
  rc = er_pg_query_ro(pg, "DO $$ BEGIN DELETE FROM ro_t; END $$", NULL, 0,
                      er_now_ms() + 5000, &r, &err);
  T_OK(rc != 0 && !strcmp(r.sqlstate, "25006"),
       "read-only: a DELETE inside a DO block too (%s)", err.msg);
  er_pg_result_free(&r);
  memset(&err, 0, sizeof err);
  rc = er_pg_query_ro(pg, "SELECT 1; COMMIT; DELETE FROM ro_t", NULL, 0,
                      er_now_ms() + 5000, &r, &err);
  T_OK(rc != 0 && strstr(err.msg, "multiple commands"),
       "read-only: one statement only, also without params (%s)", err.msg);
  er_pg_result_free(&r);
  memset(&err, 0, sizeof err);
  rc = er_pg_query_ro(pg, "SET TRANSACTION READ WRITE", NULL, 0,
                      er_now_ms() + 5000, &r, &err);
  T_OK(rc != 0 && !strcmp(r.sqlstate, "25001"),
       "read-only: no switch to read-write after the first query (%s)",
       err.msg);
  er_pg_result_free(&r);
  memset(&err, 0, sizeof err);
  rc = er_pg_query_ro(pg,
                      "SET SESSION CHARACTERISTICS AS TRANSACTION READ "
                      "WRITE",
                      NULL, 0, er_now_ms() + 5000, &r, &err);
  er_pg_result_free(&r);
  v = ro_cell(pg, true, "SHOW transaction_read_only", &err);
  T_OK(rc == 0 && json_string_value(v) && !strcmp(json_string_value(v), "on"),
       "read-only: session defaults do not reach the next one");
  json_decref(v);
  memset(&err, 0, sizeof err);
  t0 = er_now_ms();
  rc = er_pg_query_ro(pg, "SELECT pg_sleep(5)", NULL, 0, er_now_ms() + 300, &r,
                      &err);
  er_pg_result_free(&r);
  T_OK(rc != 0 && er_now_ms() - t0 < 2500,
       "read-only: cancelled at the deadline (%s)", err.msg);
  memset(&err, 0, sizeof err);
  v = ro_cell(pg, false, "SELECT count(*) FROM ro_t", &err);
  T_OK(json_integer_value(v) == 2, "read-only: every row is still there");
  json_decref(v);
  v = ro_cell(pg, false, "SHOW transaction_read_only", &err);
  T_STREQ(json_string_value(v), "off",
          "read-only: the connection is left idle, not read-only");
  json_decref(v);
  er_pg_free(pg);
}

/* ---- step tests -------------------------------------------------------- */

static void test_exec(const char *dsn) {
  ctx_t c;
  char dir[] = "/tmp/itest-pg-dir.XXXXXX";
  char path[512];
  FILE *f;
  ctx_init(&c, dsn);

  STEP(&c, &er_act_pg_exec, 5000, ER_STEP_OK,
       "{\"sql\": \"DROP TABLE IF EXISTS t; CREATE TABLE t (id int PRIMARY "
       "KEY, name text, score float8, meta jsonb); INSERT INTO t VALUES (1, "
       "'ann', 1.5, '{\\\"tag\\\": \\\"a\\\"}'); INSERT INTO t VALUES (2, "
       "'bob', 2.5, NULL)\"}");
  T_OK(has(&c.log, "postgres.exec: INSERT 0 1 (4 statements"),
       "exec logs the last command and the statement count");
  if (!has(&c.log, "INSERT 0 1 (4 statements"))
    show("log", &c.log);

  STEP(&c, &er_act_pg_exec, 5000, ER_STEP_OK,
       "{\"sql\": \"INSERT INTO t VALUES ($1, $2, $3, $4)\","
       " \"params\": [3, \"cy\", 3.25, {\"tag\": \"c\"}]}");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT id, name, score, meta FROM t WHERE id = $1\","
       " \"params\": [3], \"equals\": [[3, \"cy\", 3.25, {\"tag\": \"c\"}]]}");

  /* an error in the second statement fails, and the first is rolled back
   * with it (one implicit transaction) */
  STEP(&c, &er_act_pg_exec, 5000, ER_STEP_FAIL,
       "{\"sql\": \"INSERT INTO t VALUES (10, 'x', 0, NULL); SELECT * FROM "
       "nope; INSERT INTO t VALUES (11, 'y', 0, NULL)\"}");
  T_OK(has(&c.detail, "ERROR 42P01: relation \"nope\" does not exist") &&
           has(&c.detail, "in statement 2"),
       "multi-statement error names the SQLSTATE and the statement");
  T_OK(has(&c.detail, "sql: INSERT INTO t VALUES (10"),
       "exec failure detail shows the SQL");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT count(*) FROM t\", \"equals\": [[3]]}");

  /* a constraint violation: FAIL with the server's words */
  STEP(&c, &er_act_pg_exec, 5000, ER_STEP_FAIL,
       "{\"sql\": \"INSERT INTO t VALUES (1, 'dup', 0, NULL)\"}");
  T_OK(has(&c.detail, "ERROR 23505: duplicate key value violates unique "
                      "constraint \"t_pkey\"") &&
           has(&c.detail, "Key (id)=(1) already exists"),
       "unique violation: SQLSTATE, message and detail");

  /* file, relative to the scenario folder */
  if (mkdtemp(dir)) {
    snprintf(path, sizeof path, "%s/fixtures", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/fixtures/seed.sql", dir);
    f = fopen(path, "w");
    fputs("-- seed\nINSERT INTO t VALUES (20, 'file', 0, NULL);\n"
          "INSERT INTO t VALUES (21, 'file', 0, NULL);\n",
          f);
    fclose(f);
    c.x.base_dir = dir;
    STEP(&c, &er_act_pg_exec, 5000, ER_STEP_OK,
         "{\"file\": \"fixtures/seed.sql\"}");
    STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
         "{\"query\": \"SELECT count(*) FROM t WHERE name = 'file'\","
         " \"equals\": [[2]]}");
    STEP(&c, &er_act_pg_exec, 5000, ER_STEP_FATAL,
         "{\"file\": \"fixtures/missing.sql\"}");
    T_OK(has(&c.detail, "fixtures/missing.sql"), "missing file is named");
    unlink(path);
    snprintf(path, sizeof path, "%s/fixtures", dir);
    rmdir(path);
    rmdir(dir);
    c.x.base_dir = NULL;
  }
  STEP(&c, &er_act_pg_exec, 5000, ER_STEP_FATAL,
       "{\"sql\": \"SELECT 1\", \"file\": \"x.sql\"}");
  STEP(&c, &er_act_pg_exec, 5000, ER_STEP_FATAL, "{}");
  STEP(&c, &er_act_pg_exec, 5000, ER_STEP_FATAL,
       "{\"file\": \"x.sql\", \"params\": [1]}");
  ctx_free(&c);

  /* no DSN anywhere */
  ctx_init(&c, NULL);
  STEP(&c, &er_act_pg_exec, 5000, ER_STEP_FATAL, "{\"sql\": \"SELECT 1\"}");
  T_OK(has(&c.detail, "no DSN"), "no DSN is explained");
  /* the step's own dsn */
  {
    char args[512];
    snprintf(args, sizeof args, "{\"sql\": \"SELECT 1\", \"dsn\": \"%s\"}",
             dsn);
    STEP(&c, &er_act_pg_exec, 5000, ER_STEP_OK, args);
  }
  ctx_free(&c);
}

static void test_expect(const char *dsn) {
  ctx_t c;
  const char *q2 = "\"query\": \"SELECT id, name FROM t WHERE id IN (1, 2) "
                   "ORDER BY id\"";
  char a[1024];
  ctx_init(&c, dsn);

#define ARGS(...) (snprintf(a, sizeof a, __VA_ARGS__), a)
  /* equals, ordered */
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       ARGS("{%s, \"equals\": [[1, \"ann\"], [2, \"bob\"]]}", q2));
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       ARGS("{%s, \"equals\": [[2, \"bob\"], [1, \"ann\"]]}", q2));
  T_OK(has(&c.detail, "postgres.expect: rows do not match") &&
           has(&c.detail, "query: SELECT id, name FROM t") &&
           has(&c.detail, "expected rows: [[2,\"bob\"],[1,\"ann\"]]") &&
           has(&c.detail, "why: row 0, column id: expected 2, got 1") &&
           has(&c.detail, "seen 2 row(s) (columns: id, name):") &&
           has(&c.detail, "[1,\"ann\"]"),
       "equals mismatch detail: query, expected, why, rows seen");
  show("equals detail", &c.detail);
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       ARGS("{%s, \"equals\": [[1, \"ann\"]]}", q2));
  T_OK(has(&c.detail, "expected 1 row(s), got 2"), "row count difference");
  /* unordered */
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       ARGS("{%s, \"equals\": [[2, \"bob\"], [1, \"ann\"]], \"unordered\": "
            "true}",
            q2));
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       ARGS("{%s, \"equals\": [[2, \"bob\"], [2, \"bob\"]], \"unordered\": "
            "true}",
            q2));
  T_OK(has(&c.detail, "no row matches [2,\"bob\"]") &&
           has(&c.detail, "(any order)"),
       "unordered mismatch names the missing row");
  /* overlapping matchers need a real matching, not a greedy one */
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       ARGS("{%s, \"equals\": [[{\"$gte\": 1}, {\"$type\": \"string\"}],"
            " [1, \"ann\"]], \"unordered\": true}",
            q2));
  /* matchers in cells */
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       ARGS("{%s, \"equals\": [[{\"$lt\": 2}, {\"$regex\": \"^a\"}],"
            " [2, {\"$in\": [\"bob\", \"bo\"]}]]}",
            q2));
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       ARGS("{%s, \"equals\": [[1, {\"$regex\": \"^z\"}], [2, \"bob\"]]}", q2));
  T_OK(has(&c.detail, "row 0, column name: expected a string matching"),
       "cell matcher mismatch explained");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT meta FROM t WHERE id = 1\","
       " \"equals\": [[{\"tag\": {\"$in\": [\"a\", \"b\"]}}]]}");
  /* contains */
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT id, name FROM t\", \"contains\": [[2, \"bob\"]]}");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       "{\"query\": \"SELECT id, name FROM t ORDER BY id\","
       " \"contains\": [[2, \"bob\"], [9, \"zed\"]]}");
  T_OK(has(&c.detail, "no row matches [9,\"zed\"]") &&
           has(&c.detail, "expected to contain: [[2,\"bob\"],[9,\"zed\"]]") &&
           !has(&c.detail, "no row matches [2"),
       "contains mismatch names only the missing row");
  /* count */
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT * FROM t\", \"count\": 5}");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT * FROM t\", \"count\": {\"$gte\": 3}}");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       "{\"query\": \"SELECT * FROM t\", \"count\": {\"$gte\": 50}}");
  T_OK(has(&c.detail, "why: count: expected >= 50, got 5") &&
           has(&c.detail, "expected count: {\"$gte\":50}"),
       "count mismatch detail");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT g FROM generate_series(1, 20000) g\","
       " \"count\": 20000}");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       "{\"query\": \"SELECT g FROM generate_series(1, 20000) g\","
       " \"count\": 1}");
  T_OK(has(&c.detail, "seen 20000 row(s)") &&
           has(&c.detail, "only the first 10000 kept") &&
           has(&c.detail, "... 19990 more"),
       "a truncated result says so; the detail shows 10 rows");
  /* empty */
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT * FROM t WHERE id < 0\", \"empty\": true}");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       "{\"query\": \"SELECT * FROM t\", \"empty\": true}");
  T_OK(has(&c.detail, "expected no rows, got 5"), "empty mismatch");
  STEP(&c, &er_act_pg_alias, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT * FROM t\", \"empty\": false}");
  STEP(&c, &er_act_pg_alias, 5000, ER_STEP_FAIL,
       "{\"query\": \"SELECT * FROM t WHERE false\", \"empty\": false}");
  T_OK(has(&c.detail, "postgres: rows do not match") &&
           has(&c.detail, "expected at least one row, got none"),
       "alias names itself in the detail");
  /* SQL errors */
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       "{\"query\": \"SELECT nosuchcol FROM t\", \"count\": 1}");
  T_OK(has(&c.detail, "ERROR 42703: column \"nosuchcol\" does not exist") &&
           has(&c.detail, "query: SELECT nosuchcol FROM t"),
       "SQL error in expect: message, SQLSTATE and query");
  /* captures */
  json_object_clear(c.caps);
  STEP(
      &c, &er_act_pg_expect, 5000, ER_STEP_OK,
      "{\"query\": \"SELECT id, name, meta FROM t WHERE id = 1\", \"count\": 1,"
      " \"capture\": {\"id\": \"/0/0\", \"row\": \"/0\", \"tag\": "
      "\"/0/2/tag\", \"all\": \"\"}}");
  T_OK(json_integer_value(json_object_get(c.caps, "id")) == 1,
       "capture a cell (typed)");
  T_OK(json_array_size(json_object_get(c.caps, "row")) == 3, "capture a row");
  T_STREQ(json_string_value(json_object_get(c.caps, "tag")), "a",
          "capture into a jsonb cell");
  T_OK(json_array_size(json_object_get(c.caps, "all")) == 1,
       "capture every row with \"\"");
  json_object_clear(c.caps);
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       "{\"query\": \"SELECT id FROM t WHERE id = 1\", \"count\": 1,"
       " \"capture\": {\"x\": \"/3/0\"}}");
  T_OK(has(&c.detail, "capture \"x\": /3/0 is not in the rows") &&
           json_object_size(c.caps) == 0,
       "capture of a missing row fails, captures nothing");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       "{\"query\": \"SELECT 1\", \"equals\": [[2]],"
       " \"capture\": {\"x\": \"/0/0\"}}");
  T_OK(json_object_size(c.caps) == 0, "no capture when the rows differ");
  /* no expectation at run time */
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FATAL, "{\"query\": \"SELECT 1\"}");
  /* polling: quiet */
  er_buf_reset(&c.log);
  c.x.polling = true;
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT 1\", \"count\": 1}");
  T_OK(c.log.len == 0, "no log lines while polling");
  c.x.polling = false;
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT 1\", \"count\": 1}");
  T_OK(has(&c.log, "postgres.expect: 1 row(s) as expected"),
       "logged when not polling");
#undef ARGS
  ctx_free(&c);
}

/* Rows by column name, captures by column name and JSONPath, integers
 * beyond 64 bits in parameters and results (issue 15). */
static void test_rows_by_name(const char *dsn) {
  ctx_t c;
  const char *q2 = "\"query\": \"SELECT id, name, meta FROM t WHERE id IN "
                   "(1, 2) ORDER BY id\"";
  char a[1024];
  ctx_init(&c, dsn);
#define ARGS(...) (snprintf(a, sizeof a, __VA_ARGS__), a)
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       ARGS("{%s, \"equals\": [{\"name\": \"ann\", \"id\": 1}, {\"id\": 2}]}",
            q2));
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       ARGS("{%s, \"equals\": [{\"id\": 2}, [1, \"ann\", {\"$subset\": "
            "{\"tag\": \"a\"}}]], \"unordered\": true, \"contains\": "
            "[{\"meta\": {\"tag\": {\"$in\": [\"a\", \"b\"]}}}]}",
            q2));
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       ARGS("{%s, \"equals\": [{\"id\": 1, \"name\": \"bob\"}, {\"id\": 2}]}",
            q2));
  T_OK(has(&c.detail, "why: row 0, column name: expected \"bob\", got "
                      "\"ann\""),
       "a row by column name names the column that differs");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       ARGS("{%s, \"contains\": [{\"nam\": \"ann\"}]}", q2));
  T_OK(has(&c.detail, "no row matches {\"nam\":\"ann\"}"),
       "a column that is not there matches no row");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       ARGS("{%s, \"equals\": [{\"nam\": \"ann\"}, {\"id\": 2}]}", q2));
  T_OK(has(&c.detail, "row 0 has no column \"nam\" (columns: id, name, meta)"),
       "and the ordered comparison lists the columns there are");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       ARGS("{%s, \"equals\": [[1, \"ann\", {\"tag\": \"b\"}], {\"id\": 2}]}",
            q2));
  T_OK(has(&c.detail, "why: row 0, column meta: at /tag: expected \"b\", got "
                      "\"a\""),
       "a mismatch inside a json cell names its place");
  json_object_clear(c.caps);
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       ARGS("{%s, \"count\": 2, \"capture\": {\"n0\": \"/0/name\", "
            "\"names\": \"$[*].name\", \"tag\": \"$[0].meta.tag\", "
            "\"bob\": \"$[?@.id == 2].name\", \"cell\": \"/1/1\", "
            "\"initial\": {\"path\": \"/1/name\", \"regex\": \"^(.)\"}}}",
            q2));
  T_STREQ(json_string_value(json_object_get(c.caps, "n0")), "ann",
          "capture a cell by column name");
  T_OK(json_array_size(json_object_get(c.caps, "names")) == 2,
       "capture a column of every row with JSONPath");
  T_STREQ(json_string_value(json_object_get(c.caps, "tag")), "a",
          "capture into a json cell by column name");
  T_STREQ(json_string_value(json_object_get(c.caps, "bob")), "bob",
          "capture with a filter on a column");
  T_STREQ(json_string_value(json_object_get(c.caps, "cell")), "bob",
          "positional pointers still work");
  T_STREQ(json_string_value(json_object_get(c.caps, "initial")), "b",
          "a regex group of a cell");
  /* integers beyond 64 bits: parameters sent and numerics read exactly */
  json_object_clear(c.caps);
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT $1::numeric + 1 AS n, $2::numeric AS m\","
       " \"params\": [123456789012345678901234567890, -98765432109876543210],"
       " \"equals\": [{\"n\": 123456789012345678901234567891, \"m\":"
       " {\"$lt\": -98765432109876543209, \"$type\": \"integer\"}}],"
       " \"capture\": {\"n\": \"/0/n\"}}");
  T_STREQ(er_big_digits(json_object_get(c.caps, "n")),
          "123456789012345678901234567891",
          "a numeric beyond 64 bits compared and captured exactly");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_FAIL,
       "{\"query\": \"SELECT 123456789012345678901234567890::numeric AS n\","
       " \"equals\": [[123456789012345678901234567891]]}");
  T_OK(has(&c.detail, "expected 123456789012345678901234567891, got "
                      "123456789012345678901234567890"),
       "big integers one apart differ");
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT $1::jsonb AS j\","
       " \"params\": [{\"id\": 123456789012345678901234567890}],"
       " \"equals\": [{\"j\": {\"id\": 123456789012345678901234567890}}]}");
#undef ARGS
  ctx_free(&c);
}

static void test_validate(void) {
  struct {
    const er_action_t *a;
    const char *args;
    int errors;
    const char *paths;
  } cases[] = {
      {&er_act_pg_exec, "{\"sql\": \"SELECT 1\"}", 0, ""},
      {&er_act_pg_exec, "{\"sql\": \"SELECT $1\", \"params\": [1]}", 0, ""},
      {&er_act_pg_exec, "{\"file\": \"a.sql\"}", 0, ""},
      {&er_act_pg_exec, "{\"sql\": \"x\", \"file\": \"a.sql\"}", 1, "[/file]"},
      {&er_act_pg_exec, "{}", 1, "[]"},
      {&er_act_pg_exec, "{\"file\": \"a.sql\", \"params\": [1]}", 1,
       "[/params]"},
      {&er_act_pg_expect, "{\"query\": \"q\", \"count\": 1}", 0, ""},
      {&er_act_pg_expect, "{\"query\": \"q\"}", 1, "[]"},
      {&er_act_pg_expect,
       "{\"query\": \"q\", \"equals\": [[1], \"${row}\", 3]}", 1,
       "[/equals/2]"},
      {&er_act_pg_expect,
       "{\"query\": \"q\", \"contains\": [[{\"$gt\": \"x\"}]]}", 1,
       "[/contains/0/0/$gt]"},
      {&er_act_pg_expect, "{\"query\": \"q\", \"count\": {\"$gtee\": 1}}", 1,
       "[/count/$gtee]"},
      {&er_act_pg_expect, "{\"query\": \"q\", \"count\": true}", 1, "[/count]"},
      {&er_act_pg_expect,
       "{\"query\": \"q\", \"empty\": true, \"capture\": {\"a/b\": \"0/0\","
       " \"ok\": \"/0/0\"}}",
       1, "[/capture/a~1b]"},
      {&er_act_pg_alias,
       "{\"query\": \"q\", \"empty\": true, \"unordered\": true}", 0,
       "(/unordered)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct er_diag d;
    json_t *args = json_loads(cases[i].args, 0, NULL);
    memset(&d, 0, sizeof d);
    cases[i].a->validate(args, &d);
    T_OK(d.errors == cases[i].errors && !strcmp(d.paths, cases[i].paths),
         "validate %s %s: %d error(s) at %s", cases[i].a->name, cases[i].args,
         d.errors, d.paths);
    if (d.msgs[0])
      printf("#   %s\n", d.msgs);
    json_decref(args);
  }
}

/* A server that went away: ER_STEP_ERROR, quickly; the password of the
 * DSN is never shown. */
static void test_stopped(const char *dsn2, pid_t pid2) {
  ctx_t c;
  int64_t t0, took;
  int rc, port;
  char args[1024], dsn[512];
  ctx_init(&c, dsn2);
  STEP(&c, &er_act_pg_expect, 5000, ER_STEP_OK,
       "{\"query\": \"SELECT 1\", \"count\": 1}");
  if (pid2 > 0 && kill(pid2, SIGTERM) == 0) {
    /* bounded wait until the server refuses connections */
    for (int i = 0; i < 300; i++) {
      if (run_step(&c, &er_act_pg_expect, 1000,
                   "{\"query\": \"SELECT 1\", \"count\": 1}") == ER_STEP_ERROR)
        break;
      er_sleep_ms(50);
    }
    t0 = er_now_ms();
    rc = run_step(&c, &er_act_pg_expect, 5000,
                  "{\"query\": \"SELECT 1\", \"count\": 1}");
    took = er_now_ms() - t0;
    T_OK(rc == ER_STEP_ERROR && took < 1000,
         "stopped server: ER_STEP_ERROR in %lldms", (long long)took);
    T_OK(has(&c.detail, "cannot connect to postgresql://postgres@127.0.0.1:"),
         "detail names the (redacted) DSN");
    show("detail", &c.detail);
    ctx_free(&c);
    ctx_init(&c, dsn2);
    t0 = er_now_ms();
    rc = run_step(&c, &er_act_pg_exec, 5000, "{\"sql\": \"SELECT 1\"}");
    took = er_now_ms() - t0;
    T_OK(rc == ER_STEP_ERROR && took < 1000,
         "stopped server, new session: ER_STEP_ERROR in %lldms",
         (long long)took);
  } else {
    T_OK(0, "could not stop the second server (PG2_PID=%d)", (int)pid2);
  }
  ctx_free(&c);

  /* passwords never shown: URI form */
  ctx_init(&c, NULL);
  port = closed_port();
  snprintf(dsn, sizeof dsn,
           "postgresql://postgres:Sup3rS3cretPw@127.0.0.1:%d/postgres", port);
  snprintf(args, sizeof args,
           "{\"query\": \"SELECT 1\", \"count\": 1, \"dsn\": \"%s\"}", dsn);
  STEP(&c, &er_act_pg_expect, 3000, ER_STEP_ERROR, args);
  T_OK(!has(&c.detail, "Sup3rS3cretPw") && !has(&c.log, "Sup3rS3cretPw") &&
           has(&c.detail, "postgresql://postgres:***@127.0.0.1"),
       "URI DSN password redacted in the detail");
  show("detail", &c.detail);
  /* key=value form, and in exec's detail and log */
  snprintf(dsn, sizeof dsn,
           "host=127.0.0.1 port=%d user=postgres password=Sup3rS3cretPw "
           "dbname=postgres",
           port);
  snprintf(args, sizeof args, "{\"sql\": \"SELECT 1\", \"dsn\": \"%s\"}", dsn);
  STEP(&c, &er_act_pg_exec, 3000, ER_STEP_ERROR, args);
  T_OK(!has(&c.detail, "Sup3rS3cretPw") && !has(&c.log, "Sup3rS3cretPw") &&
           has(&c.detail, "password=***"),
       "key=value DSN password redacted in detail and log");
  show("detail", &c.detail);
  ctx_free(&c);
}

int main(void) {
  const char *dsn = getenv("PG_DSN");
  const char *dsn2 = getenv("PG2_DSN");
  const char *pid2 = getenv("PG2_PID");
  if (!dsn || !dsn2 || !pid2) {
    printf("not ok 1 - PG_DSN, PG2_DSN and PG2_PID must be set "
           "(run tests/integration/pg.sh)\n");
    return 1;
  }
  test_redact();
  test_bad_dsn();
  test_validate();
  test_types(dsn);
  test_notices(dsn);
  test_exec(dsn);
  test_expect(dsn);
  test_rows_by_name(dsn);
  test_deadline(dsn);
  test_reconnect(dsn);
  test_read_only(dsn);
  test_stopped(dsn2, (pid_t)atoi(pid2));
  return t_done();
}
