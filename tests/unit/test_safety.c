/* test_safety.c: the classifiers of safety.h (SQL words, COMMAND INFO
 * entries, globs, prefixes, targets), the plan walk, the static (dry-run)
 * decisions and the Kafka guard's refusal for a real cluster. */
#include <stdlib.h>
#include <string.h>

#include "lang/scenario.h"
#include "lang/template.h"
#include "run/exec.h"
#include "run/safety.h"
#include "tap.h"

extern const er_module_t er_mod_safety;

static const char *verb_of(const char *sql) {
  const char *v = NULL;
  return er_safety_sql_destructive(sql, &v) ? v : "-";
}

static void test_sql(void) {
  T_STREQ(verb_of("TRUNCATE t"), "TRUNCATE", "TRUNCATE t");
  T_STREQ(verb_of("truncate table t restart identity"), "TRUNCATE",
          "lower case");
  T_STREQ(verb_of("  delete from t where id = 1"), "DELETE", "DELETE");
  T_STREQ(verb_of("DROP TABLE IF EXISTS t"), "DROP", "DROP");
  T_STREQ(verb_of("CREATE TABLE t (id int); INSERT INTO t VALUES (1);\n"
                  "  Delete FROM t"),
          "DELETE", "the third statement of several");
  T_STREQ(verb_of("SELECT 1; /* comment */ TRUNCATE t"), "TRUNCATE",
          "after a block comment");
  T_STREQ(verb_of("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"),
          "DELETE", "DELETE inside WITH");
  T_STREQ(verb_of("EXPLAIN ANALYZE DELETE FROM t"), "DELETE",
          "EXPLAIN ANALYZE DELETE");
  T_STREQ(verb_of("SELECT 'TRUNCATE t; DELETE FROM x'"), "-",
          "verbs in a string literal");
  T_STREQ(verb_of("SELECT 'it''s; DROP TABLE x'"), "-",
          "a doubled quote inside a literal");
  T_STREQ(verb_of("SELECT E'a\\'; DROP TABLE x'"), "-",
          "a backslash-escaped quote in E''");
  T_STREQ(verb_of("-- TRUNCATE t\nSELECT 1"), "-", "a line comment");
  T_STREQ(verb_of("/* outer /* DROP t */ still comment; DELETE */ SELECT 1"),
          "-", "nested block comments");
  T_STREQ(verb_of("DO $$ BEGIN DELETE FROM t; END $$"), "-",
          "a dollar-quoted body");
  T_STREQ(verb_of("SELECT $tag$ ; DROP TABLE x $tag$"), "-",
          "a tagged dollar quote");
  T_STREQ(verb_of("SELECT \"delete\" FROM t"), "-", "a quoted identifier");
  T_STREQ(verb_of("CREATE TABLE c (p int REFERENCES p ON DELETE CASCADE)"), "-",
          "ON DELETE CASCADE is not a DELETE");
  T_STREQ(verb_of("INSERT INTO t VALUES (1); UPDATE t SET deleted = true"), "-",
          "no destructive statement");
  T_STREQ(verb_of("SELECT 1; -- x\n; ; drop index i"), "DROP",
          "empty statements and a comment before DROP");
  T_STREQ(verb_of("ALTER TABLE t DROP COLUMN c"), "-",
          "ALTER ... DROP is not a DROP statement");
  T_STREQ(verb_of("SELECT 'unterminated"), "-", "an unterminated literal");
  T_OK(!er_safety_sql_destructive(NULL, NULL), "NULL is not destructive");
}

static const char *what_of(const char *sql) {
  static char w[32];
  er_safety_sql_what(sql, w, sizeof w);
  return w;
}

static void test_sql_what(void) {
  T_STREQ(what_of("UPDATE t SET v = 1"), "UPDATE", "UPDATE");
  T_STREQ(what_of("  -- x\n insert into t values (1)"), "INSERT",
          "after a comment, lower case");
  T_STREQ(what_of("SELECT 1; ALTER TABLE t DROP COLUMN c"), "ALTER",
          "the first statement that is not a read");
  T_STREQ(what_of("DO $$ BEGIN DELETE FROM t; END $$"), "DO",
          "a DO block (its body is quoted)");
  T_STREQ(what_of("WITH u AS (UPDATE t SET v = 1 RETURNING id) SELECT * FROM "
                  "u"),
          "UPDATE", "UPDATE inside WITH");
  T_STREQ(what_of("WITH a AS (SELECT 1) SELECT * FROM a"), "SELECT",
          "a WITH that only reads");
  T_STREQ(what_of("EXPLAIN ANALYZE MERGE INTO t USING s ON true WHEN "
                  "MATCHED THEN DELETE"),
          "DELETE", "the destructive verb wins");
  T_STREQ(what_of("COPY (SELECT 1) TO PROGRAM 'x'"), "COPY", "COPY");
  T_STREQ(what_of("(SELECT 1)"), "SELECT", "a parenthesised SELECT");
  T_STREQ(what_of("SELECT il_wipe()"), "SELECT",
          "a function call reads as SELECT (the server decides)");
  T_STREQ(what_of(" ; -- nothing"), "", "no statement");
  T_STREQ(what_of(NULL), "", "NULL");
}

/* COMMAND INFO entries as Redis 7 answers them (RESP2, as JSON) */
static json_t *entry(const char *text) { return json_loads(text, 0, NULL); }

static void test_redis_reads(void) {
  json_t *get = entry("[\"get\", 2, [\"readonly\", \"fast\"], 1, 1, 1, "
                      "[\"@read\"], [], [], []]");
  json_t *getdel =
      entry("[\"getdel\", 2, [\"write\", \"fast\"], 1, 1, 1, [], [], [], []]");
  json_t *evalro =
      entry("[\"eval_ro\", -3, [\"readonly\", \"noscript\", \"stale\", "
            "\"skip_monitor\", \"no_mandatory_keys\", \"movablekeys\"], 0, 0, "
            "0, [], [], [], []]");
  json_t *eval = entry("[\"eval\", -3, [\"noscript\", \"stale\", "
                       "\"skip_monitor\"], 0, 0, 0, [], [], [], []]");
  json_t *config = entry(
      "[\"config\", -2, [], 0, 0, 0, [], [], [], ["
      " [\"config|get\", -3, [\"admin\", \"noscript\"], 0, 0, 0, [], [], [], "
      "[]],"
      " [\"config|set\", -4, [\"admin\", \"noscript\", \"loading\", "
      "\"stale\"], 0, 0, 0, [], [], [], []]]]");
  json_t *object =
      entry("[\"object\", -2, [], 0, 0, 0, [], [], [], ["
            " [\"object|encoding\", 3, [\"readonly\"], 2, 2, 1, [], [], [], "
            "[]]]]");
  json_t *both =
      entry("[\"odd\", 2, [\"readonly\", \"write\"], 1, 1, 1, [], [], [], []]");
  json_t *err = json_pack("{s:s}", "error", "ERR unknown command 'COMMAND'");
  char why[512];

  T_OK(get && getdel && evalro && eval && config && object && both,
       "entries parse");
  T_OK(er_safety_redis_reads(get, "k", why, sizeof why) == 1,
       "GET is flagged readonly");
  T_OK(er_safety_redis_reads(evalro, "return 1", why, sizeof why) == 1,
       "EVAL_RO is flagged readonly");
  T_OK(er_safety_redis_reads(getdel, "k", why, sizeof why) == 0,
       "GETDEL is not");
  T_STREQ(why,
          "the server does not flag GETDEL readonly (COMMAND INFO flags: "
          "write, fast)",
          "the reason names the command and its flags");
  T_OK(er_safety_redis_reads(eval, NULL, why, sizeof why) == 0 &&
           strstr(why, "EVAL readonly"),
       "EVAL is not: %s", why);
  T_OK(er_safety_redis_reads(both, "k", why, sizeof why) == 0,
       "readonly and write together: not a read");
  T_OK(er_safety_redis_reads(config, "get", why, sizeof why) == 0 &&
           strstr(why, "CONFIG GET readonly (COMMAND INFO flags: admin, "
                       "noscript)"),
       "CONFIG GET: by its subcommand's entry, not a read: %s", why);
  T_OK(er_safety_redis_reads(config, "SET", why, sizeof why) == 0 &&
           strstr(why, "CONFIG SET"),
       "CONFIG SET (any case): not a read: %s", why);
  T_OK(er_safety_redis_reads(object, "ENCODING", why, sizeof why) == 1,
       "OBJECT ENCODING: its subcommand is flagged readonly");
  T_OK(er_safety_redis_reads(object, "FREQX", why, sizeof why) == 0 &&
           strstr(why, "does not know the subcommand OBJECT FREQX"),
       "an unknown subcommand: %s", why);
  T_OK(er_safety_redis_reads(object, NULL, why, sizeof why) == 0 &&
           strstr(why, "OBJECT without a subcommand"),
       "a container without its subcommand: %s", why);
  T_OK(er_safety_redis_reads(json_null(), "k", why, sizeof why) == 0 &&
           strstr(why, "does not know the command"),
       "an unknown command (null entry): %s", why);
  T_OK(er_safety_redis_reads(err, "k", why, sizeof why) == 0 &&
           strstr(why, "did not describe the command (COMMAND INFO: ERR"),
       "COMMAND INFO answered with an error: %s", why);
  json_decref(get);
  json_decref(getdel);
  json_decref(evalro);
  json_decref(eval);
  json_decref(config);
  json_decref(object);
  json_decref(both);
  json_decref(err);
}

static void test_redis_and_globs(void) {
  json_t *globs = json_pack("[s,s]", "127.0.0.1:*/0", "redis-test:6379/*");
  json_t *pre = json_pack("[s,s]", "essay.", "els-");
  char t[128];

  T_OK(er_safety_glob_any(globs, "127.0.0.1:6390/0"), "glob matches a port");
  T_OK(!er_safety_glob_any(globs, "127.0.0.1:6390/1"), "glob: other DB");
  T_OK(!er_safety_glob_any(globs, "10.0.0.1:6390/0"), "glob: other host");
  T_OK(er_safety_glob_any(globs, "redis-test:6379/7"), "second glob");
  T_OK(!er_safety_glob_any(NULL, "x") && !er_safety_glob_any(globs, NULL),
       "no globs / no string: no match");
  T_OK(er_safety_prefix_any(pre, "essay.content.v1") &&
           er_safety_prefix_any(pre, "els-group"),
       "prefixes match");
  T_OK(!er_safety_prefix_any(pre, "orders") &&
           !er_safety_prefix_any(pre, "essay") &&
           !er_safety_prefix_any(NULL, "essay."),
       "prefixes do not match a shorter or other name");

  T_OK(er_safety_redis_target("redis://:pw@127.0.0.1:6390/2", t, sizeof t) == 0,
       "target of a URL with a password");
  T_STREQ(t, "127.0.0.1:6390/2", "host:port/db, no password");
  er_safety_redis_target("redis://localhost", t, sizeof t);
  T_STREQ(t, "localhost:6379/0", "default port and DB");
  er_safety_redis_target("unix:///tmp/r.sock?db=3", t, sizeof t);
  T_STREQ(t, "unix:/tmp/r.sock/3", "unix socket");
  T_OK(er_safety_redis_target("http://x", t, sizeof t) != 0, "not Redis");

  er_safety_pg_dbname("postgresql://u:pw@h:5432/sut?sslmode=disable", t,
                      sizeof t);
  T_STREQ(t, "sut", "dbname from a URI");
  er_safety_pg_dbname("postgresql://u@h/?dbname=other", t, sizeof t);
  T_STREQ(t, "other", "dbname from URI parameters");
  er_safety_pg_dbname("postgresql://alice@h", t, sizeof t);
  T_STREQ(t, "alice", "no dbname: the user's name");
  er_safety_pg_dbname("host=h user=bob dbname='x_test' password=pw", t,
                      sizeof t);
  T_STREQ(t, "x_test", "dbname from key=value");
  er_safety_pg_dbname("postgresql://h/?dbname=sut&sslmode=disable", t,
                      sizeof t);
  T_STREQ(t, "sut", "?dbname= followed by another parameter");
  er_safety_pg_dbname("postgresql://h/my%20db", t, sizeof t);
  T_STREQ(t, "my db", "%%20 in the path is decoded");
  er_safety_pg_dbname("dbname = 'it\\'s' host=h", t, sizeof t);
  T_STREQ(t, "it's", "quoted key=value with spaces around '='");
  json_decref(globs);
  json_decref(pre);
}

static void test_classify(void) {
  char what[256];
  const char *targ = NULL;
  er_safe_mode_t mode;
  json_t *a;

  a = json_pack("{s:b,s:s}", "flush", 1, "url", "redis://h/1");
  T_OK(er_safety_classify(er_action_find("redis.clean"), a, NULL, what,
                          sizeof what, &targ, &mode) == ER_SAFE_REDIS &&
           mode == ER_SAFE_WRITE && !strcmp(what, "FLUSHDB") && targ &&
           !strcmp(targ, "redis://h/1"),
       "redis.clean flush: writes FLUSHDB on the step's url");
  json_decref(a);
  a = json_pack("{s:[s,s]}", "command", "getdel", "k");
  T_OK(er_safety_classify(er_action_find("redis"), a, NULL, what, sizeof what,
                          &targ, &mode) == ER_SAFE_REDIS &&
           mode == ER_SAFE_READ_CMD && !strcmp(what, "GETDEL") && targ == NULL,
       "redis GETDEL: decided by the server, the env's url");
  json_decref(a);
  a = json_pack("{s:[s,s]}", "command", "GET", "k");
  T_OK(er_safety_classify(er_action_find("redis"), a, NULL, what, sizeof what,
                          &targ, &mode) == ER_SAFE_REDIS &&
           mode == ER_SAFE_READ_CMD,
       "redis GET: decided by the server too (no list of commands here)");
  json_decref(a);
  a = json_pack("{s:{s:s,s:s}}", "keys", "a", "1", "b", "2");
  T_OK(er_safety_classify(er_action_find("redis.seed"), a, NULL, what,
                          sizeof what, &targ, &mode) == ER_SAFE_REDIS &&
           mode == ER_SAFE_WRITE && !strcmp(what, "writes 2 key(s)"),
       "redis.seed always writes: %s", what);
  json_decref(a);
  a = json_pack("{s:[s],s:s}", "keys", "k", "for", "1s");
  T_OK(er_safety_classify(er_action_find("redis.contend"), a, NULL, what,
                          sizeof what, &targ, &mode) == ER_SAFE_REDIS &&
           mode == ER_SAFE_WRITE,
       "redis.contend always writes: %s", what);
  json_decref(a);
  a = json_pack("{s:s}", "query", "UPDATE t SET v = 1 RETURNING id");
  T_OK(er_safety_classify(er_action_find("postgres.expect"), a, NULL, what,
                          sizeof what, &targ, &mode) == ER_SAFE_PG &&
           mode == ER_SAFE_READ_TX && !strcmp(what, "UPDATE"),
       "postgres.expect: a read-only transaction elsewhere; UPDATE in "
       "messages");
  json_decref(a);
  a = json_pack("{s:s,s:s}", "sql", "INSERT INTO t VALUES (1)", "dsn", "d");
  T_OK(er_safety_classify(er_action_find("postgres.exec"), a, NULL, what,
                          sizeof what, &targ, &mode) == ER_SAFE_PG &&
           mode == ER_SAFE_WRITE && !strcmp(what, "INSERT") && targ &&
           !strcmp(targ, "d"),
       "postgres.exec always writes, whatever it holds");
  json_decref(a);
  a = json_pack("{s:s}", "group", "g");
  T_OK(er_safety_classify(er_action_find("kafka.reset"), a, NULL, what,
                          sizeof what, &targ, &mode) == ER_SAFE_KAFKA,
       "kafka.reset");
  json_decref(a);
  a = json_pack("{s:s}", "topic", "orders");
  T_OK(er_safety_classify(er_action_find("kafka.produce"), a, NULL, what,
                          sizeof what, &targ, &mode) == ER_SAFE_KAFKA &&
           !strcmp(what, "produce to \"orders\""),
       "kafka.produce: %s", what);
  T_OK(er_safety_classify(er_action_find("kafka.expect"), a, NULL, what,
                          sizeof what, &targ, &mode) == ER_SAFE_NONE,
       "kafka.expect only reads");
  json_decref(a);
}

typedef struct seen {
  char lines[16][160];
  int n;
} seen_t;

static void collect(void *ud, const er_scenario_t *s, const er_safety_at_t *at,
                    const er_action_t *a, const json_t *args) {
  seen_t *v = ud;
  (void)args;
  if (v->n < 16)
    snprintf(v->lines[v->n++], 160, "%s %s %d:%d d%d %s%s%s", at->section,
             a->name, at->line, at->col, at->depth, at->path,
             at->file != s->file ? " in " : "",
             at->file != s->file ? at->file : "");
}

static void test_walk(void) {
  er_diags_t d = {0};
  er_scenario_t *s = er_scenario_load("tests/data/safety/plan/2-pg.json", &d);
  er_scenario_t *s1 =
      er_scenario_load("tests/data/safety/plan/1-redis.json", &d);
  seen_t v;
  memset(&v, 0, sizeof v);
  T_OK(s && s1, "test scenarios load");
  if (!s || !s1)
    goto out;
  er_safety_walk(s, collect, &v);
  T_OK(v.n == 6, "2-pg.json: 6 steps visited, nested check too (%d)", v.n);
  T_STREQ(v.lines[4], "steps postgres 11:30 d1 /steps/1/await/postgres",
          "the check inside await: its position, depth 1");
  T_STREQ(v.lines[5], "teardown postgres.exec 14:5 d0 /teardown/0",
          "teardown is walked");
  memset(&v, 0, sizeof v);
  er_safety_walk(s1, collect, &v);
  T_STREQ(v.lines[3], "steps redis 9:7 d1 /steps/1/group/steps/0",
          "a step inside a group: file position and depth");
  er_scenario_free(s1);
  s1 = er_scenario_load("tests/data/lang/pass/use.json", &d);
  T_OK(s1 != NULL, "a scenario with use steps loads");
  if (!s1)
    goto out;
  memset(&v, 0, sizeof v);
  er_safety_walk(s1, collect, &v);
  T_STREQ(v.lines[0], "steps use 6:5 d0 /steps/0", "the use step itself");
  T_STREQ(v.lines[1],
          "steps redis.seed 10:5 d1 /steps/0 in "
          "tests/data/lang/fixtures/steps/remember.step.json",
          "then the steps of the step file it calls, at their place there");
  T_STREQ(v.lines[4],
          "steps http 4:5 d2 /steps/0 in "
          "tests/data/lang/fixtures/steps/echo.step.json",
          "and of the one that one calls");
out:
  er_scenario_free(s);
  er_scenario_free(s1);
  er_diags_free(&d);
}

static void test_static(const json_t *env, const json_t *bare) {
  const char *ok_topics[] = {"essay.a", "essay.b"};
  const char *bad_topics[] = {"essay.a", "orders"};
  const char *orders[] = {"orders"};
  char out[512];

  T_OK(er_safety_static(env, ER_SAFE_REDIS, ER_SAFE_WRITE, "redis://:pw@h:1/5",
                        NULL, NULL, NULL, 0, out, sizeof out) == 1,
       "redis allowed by glob: %s", out);
  T_OK(er_safety_static(env, ER_SAFE_REDIS, ER_SAFE_WRITE, "redis://h:2/0",
                        NULL, NULL, NULL, 0, out, sizeof out) == -1 &&
           strstr(out, "REFUSED"),
       "redis refused: %s", out);
  T_OK(er_safety_static(env, ER_SAFE_REDIS, ER_SAFE_READ_CMD, "redis://h:2/0",
                        "getdel", NULL, NULL, 0, out, sizeof out) == 0,
       "a redis command on an unmarked target: left to the server");
  T_STREQ(out,
          "allowed if the server flags GETDEL readonly (COMMAND INFO, asked at "
          "run time), else REFUSED: matches no test_target.allow glob",
          "... and said so");
  T_OK(er_safety_static(env, ER_SAFE_REDIS, ER_SAFE_READ_CMD, "redis://h:1/0",
                        "getdel", NULL, NULL, 0, out, sizeof out) == 1,
       "a redis command on a marked target: allowed: %s", out);
  T_OK(er_safety_static(env, ER_SAFE_PG, ER_SAFE_WRITE,
                        "postgresql://u@h/x_test", NULL, NULL, NULL, 0, out,
                        sizeof out) == 1,
       "postgres allowed by database glob: %s", out);
  T_OK(er_safety_static(env, ER_SAFE_PG, ER_SAFE_WRITE, "postgresql://u@h/app",
                        NULL, NULL, NULL, 0, out, sizeof out) == 0 &&
           strstr(out, "checked at run time"),
       "postgres marker table: checked at run time: %s", out);
  T_OK(er_safety_static(bare, ER_SAFE_PG, ER_SAFE_READ_TX,
                        "postgresql://u@h/app", NULL, NULL, NULL, 0, out,
                        sizeof out) == 1,
       "postgres.expect on an unmarked database runs, read-only: %s", out);
  T_STREQ(out,
          "runs in a read-only transaction (not a test target: \"postgres\" "
          "has no \"test_target\")",
          "... and said so");
  T_OK(er_safety_static(env, ER_SAFE_KAFKA, ER_SAFE_WRITE, NULL, NULL, "els-1",
                        ok_topics, 2, out, sizeof out) == 1,
       "kafka allowed by prefixes: %s", out);
  T_OK(er_safety_static(env, ER_SAFE_KAFKA, ER_SAFE_WRITE, NULL, NULL, "other",
                        ok_topics, 2, out, sizeof out) == -1,
       "kafka: group prefix missing: %s", out);
  T_OK(er_safety_static(env, ER_SAFE_KAFKA, ER_SAFE_WRITE, NULL, NULL, "els-1",
                        bad_topics, 2, out, sizeof out) == -1,
       "kafka: a topic prefix missing: %s", out);
  T_OK(
      er_safety_static(env, ER_SAFE_KAFKA, ER_SAFE_WRITE, NULL, NULL, NULL,
                       orders, 1, out, sizeof out) == -1 &&
          strstr(out, "topic \"orders\" matches no test_target.topic_prefixes"),
      "kafka.produce to a topic without a prefix: %s", out);
  T_OK(er_safety_static(env, ER_SAFE_KAFKA, ER_SAFE_WRITE, NULL, NULL, NULL,
                        ok_topics, 1, out, sizeof out) == 1,
       "kafka.produce to a marked topic: %s", out);
  T_OK(er_safety_static(bare, ER_SAFE_KAFKA, ER_SAFE_WRITE, NULL, NULL, "els-1",
                        ok_topics, 2, out, sizeof out) == -1,
       "kafka real cluster without test_target: refused");
}

static void test_static_and_kafka_guard(void) {
  json_t *env = json_loads(
      "{\"redis\": {\"url\": \"redis://h:1/0\", \"test_target\": "
      "{\"allow\": [\"h:1/*\"]}},"
      " \"postgres\": {\"dsn\": \"postgresql://u@h/app\", \"test_target\": "
      "{\"databases\": [\"*_test\"], \"marker_table\": \"mark\"}},"
      " \"kafka\": {\"bootstrap\": \"k:9092\", \"test_target\": "
      "{\"topic_prefixes\": [\"essay.\"], \"group_prefixes\": [\"els-\"]}}}",
      0, NULL);
  json_t *bare =
      json_loads("{\"kafka\": {\"bootstrap\": \"k:9092\"}}", 0, NULL);
  const char *ok_topics[] = {"essay.a", "essay.b"};
  const char *bad_topics[] = {"essay.a", "orders"};
  const char *orders[] = {"orders"};
  er_session_t *shared = er_session_new();
  er_tmpl_t *t = er_tmpl_new();
  er_err_t err = {0};
  er_buf_t detail = ER_BUF_INIT(8192);
  er_exec_t x;

  test_static(env, bare);
  /* the run-time guard, as the runner sets it up */
  er_session_put(shared, "env_path", (void *)"ci/x.env.json", NULL);
  T_OK(er_mod_safety.run_begin(env, t, shared, &err) == 0, "run_begin");
  memset(&x, 0, sizeof x);
  x.env = env;
  x.shared = shared;
  x.detail = &detail;
  T_OK(er_safety_guard_kafka(&x, "kafka.reset", false, "els-1", ok_topics, 2) ==
           ER_STEP_OK,
       "guard: allowed group and topics");
  T_OK(er_safety_guard_kafka(&x, "kafka.reset", true, "any", bad_topics, 2) ==
           ER_STEP_OK,
       "guard: the embedded broker is always a test target");
  T_OK(er_safety_guard_kafka(&x, "kafka.reset", false, "els-1", bad_topics,
                             2) == ER_STEP_FATAL,
       "guard: a topic without an allowed prefix is refused");
  T_STREQ(er_buf_cstr(&detail),
          "kafka.reset refused: the Kafka cluster is not a test target for "
          "it: topic \"orders\" matches no test_target.topic_prefixes\n"
          "  to allow it: add \"test_target\": {\"group_prefixes\": "
          "[\"els-1\"], \"topic_prefixes\": [\"essay.a\", \"orders\"]} to "
          "\"kafka\" in ci/x.env.json",
          "guard: the message names the fix");
  er_buf_reset(&detail);
  T_OK(er_safety_guard_kafka(&x, "kafka.produce", false, NULL, orders, 1) ==
           ER_STEP_FATAL,
       "guard: kafka.produce to a topic without a prefix is refused");
  T_STREQ(er_buf_cstr(&detail),
          "kafka.produce refused: the Kafka cluster is not a test target for "
          "it: topic \"orders\" matches no test_target.topic_prefixes\n"
          "  to allow it: add \"test_target\": {\"topic_prefixes\": "
          "[\"orders\"]} to \"kafka\" in ci/x.env.json",
          "guard: kafka.produce: the fix names only topics");
  T_OK(er_safety_guard_kafka(&x, "kafka.produce", false, NULL, ok_topics, 1) ==
           ER_STEP_OK,
       "guard: kafka.produce to a marked topic");
  er_buf_reset(&detail);
  x.env = bare;
  T_OK(er_safety_guard_kafka(&x, "kafka.reset", false, "els-1", ok_topics, 2) ==
               ER_STEP_FATAL &&
           strstr(er_buf_cstr(&detail), "\"kafka\" has no \"test_target\""),
       "guard: no test_target on a real cluster");
  er_buf_free(&detail);
  er_session_free(shared);
  er_tmpl_free(t);
  json_decref(env);
  json_decref(bare);
}

int main(void) {
  test_sql();
  test_sql_what();
  test_redis_reads();
  test_redis_and_globs();
  test_classify();
  test_walk();
  test_static_and_kafka_guard();
  return t_done();
}
