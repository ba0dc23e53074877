/* safety.c: the interlock's decisions, run-time guards and the "safety"
 * module's preflight (see safety.h; the pure part is safety_classify.c). */
#include "run/safety.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/pg.h"
#include "adapters/redis.h"
#include "lang/jsonx.h"
#include "lang/template.h"
#include "run/exec.h"

#define CHECK_MS 5000 /* a preflight check of one target */
#define WHY_CAP 2048

/* ---- decisions ----------------------------------------------------------- */

static const json_t *target_spec(const json_t *env, const char *section) {
  const json_t *sec = env ? json_object_get(env, section) : NULL;
  const json_t *tt =
      json_is_object(sec) ? json_object_get(sec, "test_target") : NULL;
  return json_is_object(tt) ? tt : NULL;
}

static const char *env_name(const char *env_path) {
  return env_path ? env_path : "the environment file";
}

static bool kafka_env_embedded(const json_t *env) {
  const json_t *kc = env ? json_object_get(env, "kafka") : NULL;
  return !kc || json_object_get(kc, "embedded") != NULL;
}

/* The fix for a Kafka refusal: the prefixes that would allow it. */
static void kafka_fix(const char *env_path, const char *group,
                      const char *const *topics, size_t nt, er_buf_t *fix) {
  er_buf_puts(fix, "add \"test_target\": {");
  if (group)
    er_buf_printf(fix, "\"group_prefixes\": [\"%s\"]%s", group, nt ? ", " : "");
  if (nt) {
    er_buf_puts(fix, "\"topic_prefixes\": [");
    for (size_t i = 0; i < nt; i++)
      er_buf_printf(fix, "%s\"%s\"", i ? ", " : "", topics[i]);
    er_buf_puts(fix, "]");
  }
  er_buf_printf(fix, "} to \"kafka\" in %s", env_name(env_path));
}

/* 1 allowed, -1 refused (why: reason, fix: the env change). group NULL:
 * only the topics count (kafka.produce). */
static int kafka_decide(const json_t *env, const char *env_path, bool embedded,
                        const char *group, const char *const *topics, size_t nt,
                        er_buf_t *why, er_buf_t *fix) {
  const json_t *tt = target_spec(env, "kafka");
  const json_t *gp = tt ? json_object_get(tt, "group_prefixes") : NULL;
  const json_t *tp = tt ? json_object_get(tt, "topic_prefixes") : NULL;
  const char *bad = NULL;
  bool gok;
  if (embedded)
    return 1;
  gok = !group || er_safety_prefix_any(gp, group);
  for (size_t i = 0; i < nt && !bad; i++)
    if (!er_safety_prefix_any(tp, topics[i]))
      bad = topics[i];
  if (tt && gok && !bad)
    return 1;
  if (!tt)
    er_buf_puts(why, "\"kafka\" has no \"test_target\"");
  else if (!gok)
    er_buf_printf(why, "group \"%s\" matches no test_target.group_prefixes",
                  group);
  else
    er_buf_printf(why, "topic \"%s\" matches no test_target.topic_prefixes",
                  bad);
  kafka_fix(env_path, group, topics, nt, fix);
  return -1;
}

/* Redis: 1 allowed (claimed says whether the marker was written just
 * now), 0 refused (why, fix), -1 could not check (err). */
static int redis_decide(const json_t *env, const char *env_path,
                        const char *run_id, er_redis_t *r, int64_t deadline,
                        bool *claimed, er_buf_t *why, er_buf_t *fix,
                        er_err_t *err) {
  const json_t *tt = target_spec(env, "redis");
  const char *marker =
      tt ? json_string_value(json_object_get(tt, "marker")) : NULL;
  bool claim = tt && json_is_true(json_object_get(tt, "claim_empty"));
  char target[512];
  json_t *reply = NULL;
  long long nkeys = -1;
  int rc = 0;

  *claimed = false;
  er_safety_redis_target(er_redis_redacted(r), target, sizeof target);
  if (tt && er_safety_glob_any(json_object_get(tt, "allow"), target))
    return 1;
  if (marker && *marker) {
    const char *ex[] = {"EXISTS", marker};
    if (er_redis_command(r, 2, ex, NULL, deadline, &reply, err) != ER_REDIS_OK)
      return -1;
    if (json_integer_value(reply) > 0) {
      json_decref(reply);
      return 1;
    }
    json_decref(reply);
    reply = NULL;
    {
      const char *ds[] = {"DBSIZE"};
      if (er_redis_command(r, 1, ds, NULL, deadline, &reply, err) !=
          ER_REDIS_OK)
        return -1;
      nkeys = json_integer_value(reply);
      json_decref(reply);
      reply = NULL;
    }
    if (claim && nkeys == 0) {
      char val[200], ts[40];
      const char *set[] = {"SET", marker, val, "NX"};
      er_rfc3339_now(ts);
      snprintf(val, sizeof val, "%s %s", run_id ? run_id : "eventrig", ts);
      if (er_redis_command(r, 4, set, NULL, deadline, &reply, err) !=
          ER_REDIS_OK)
        return -1;
      json_decref(reply);
      *claimed = true;
      return 1;
    }
    er_buf_printf(why,
                  "the marker key \"%s\" is not in %s (%lld key(s) there%s)",
                  marker, target, nkeys,
                  claim ? "; claim_empty claims only an empty database" : "");
  } else if (tt) {
    er_buf_printf(why, "%s matches no test_target.allow glob", target);
  } else {
    er_buf_puts(why, "\"redis\" has no \"test_target\"");
  }
  er_buf_printf(fix,
                "add \"test_target\": {\"allow\": [\"%s\"]} to \"redis\" in "
                "%s",
                target, env_name(env_path));
  if (marker && *marker)
    er_buf_printf(fix, ", or mark the database: SET %s 1", marker);
  return rc;
}

/* Postgres: 1 allowed, 0 refused, -1 could not check. */
static int pg_decide(const json_t *env, const char *env_path, er_pg_t *pg,
                     int64_t deadline, er_buf_t *why, er_buf_t *fix,
                     er_err_t *err) {
  const json_t *tt = target_spec(env, "postgres");
  const char *mt =
      tt ? json_string_value(json_object_get(tt, "marker_table")) : NULL;
  er_pg_result_t res = {0};
  char db[256];
  bool marked = false;
  int rc = -1;

  er_safety_pg_dbname(er_pg_dsn_redacted(pg), db, sizeof db);
  if (!tt) {
    er_buf_puts(why, "\"postgres\" has no \"test_target\"");
    rc = 0;
    goto refuse;
  }
  {
    const char *params[] = {mt ? mt : ""};
    if (er_pg_query(pg,
                    "SELECT current_database(), CASE WHEN $1::text = '' THEN "
                    "false ELSE to_regclass($1::text) IS NOT NULL END",
                    params, 1, deadline, &res, err) != 0)
      goto out;
  }
  {
    const json_t *row = json_array_get(res.rows, 0);
    const char *cur = json_string_value(json_array_get(row, 0));
    if (cur)
      snprintf(db, sizeof db, "%s", cur);
    marked = json_is_true(json_array_get(row, 1));
  }
  if (er_safety_glob_any(json_object_get(tt, "databases"), db) || marked) {
    rc = 1;
    goto out;
  }
  if (mt)
    er_buf_printf(why,
                  "database \"%s\" matches no test_target.databases glob and "
                  "has no table \"%s\"",
                  db, mt);
  else
    er_buf_printf(why, "database \"%s\" matches no test_target.databases glob",
                  db);
  rc = 0;
refuse:
  er_buf_printf(fix,
                "add \"test_target\": {\"databases\": [\"%s\"]} to "
                "\"postgres\" in %s",
                db, env_name(env_path));
  if (mt)
    er_buf_printf(fix, ", or create the table %s in it", mt);
out:
  er_pg_result_free(&res);
  return rc;
}

/* What the environment alone says of a Redis / Postgres target: 1 a test
 * target, 0 only the server can tell (marker; text says how), -1 not (text
 * says why). */
static int static_marked(const json_t *env, er_safe_kind_t kind,
                         const char *target, char *text, size_t textsz) {
  const json_t *tt =
      target_spec(env, kind == ER_SAFE_REDIS ? "redis" : "postgres");
  char t[512];
  if (kind == ER_SAFE_REDIS) {
    const char *marker = json_string_value(json_object_get(tt, "marker"));
    er_safety_redis_target(target, t, sizeof t);
    if (tt && er_safety_glob_any(json_object_get(tt, "allow"), t)) {
      snprintf(text, textsz, "test_target.allow matches %s", t);
      return 1;
    }
    if (marker) {
      snprintf(text, textsz, "marker key \"%s\"%s", marker,
               json_is_true(json_object_get(tt, "claim_empty"))
                   ? ", claimed if the database is empty"
                   : "");
      return 0;
    }
    snprintf(text, textsz, "%s",
             tt ? "matches no test_target.allow glob"
                : "\"redis\" has no \"test_target\"");
    return -1;
  }
  er_safety_pg_dbname(target, t, sizeof t);
  if (tt && er_safety_glob_any(json_object_get(tt, "databases"), t)) {
    snprintf(text, textsz, "test_target.databases matches \"%s\"", t);
    return 1;
  }
  if (tt && json_is_string(json_object_get(tt, "marker_table"))) {
    snprintf(text, textsz, "marker table \"%s\"",
             json_string_value(json_object_get(tt, "marker_table")));
    return 0;
  }
  snprintf(text, textsz, "%s",
           tt ? "the database matches no test_target.databases glob"
              : "\"postgres\" has no \"test_target\"");
  return -1;
}

static int static_kafka(const json_t *env, const char *group,
                        const char *const *topics, size_t nt, char *out,
                        size_t outsz) {
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  int rc = -1;
  if (kafka_decide(env, NULL, kafka_env_embedded(env), group, topics, nt, &why,
                   &fix) > 0) {
    snprintf(out, outsz, "allowed (%s)",
             kafka_env_embedded(env) ? "the embedded broker"
                                     : "test_target prefixes");
    rc = 1;
  } else {
    snprintf(out, outsz, "REFUSED: %s", er_buf_cstr(&why));
  }
  er_buf_free(&why);
  er_buf_free(&fix);
  return rc;
}

int er_safety_static(const json_t *env, er_safe_kind_t kind,
                     er_safe_mode_t mode, const char *target, const char *cmd,
                     const char *group, const char *const *topics, size_t nt,
                     char *out, size_t outsz) {
  char text[600], shown[80];
  int m;

  if (kind == ER_SAFE_KAFKA)
    return static_kafka(env, group, topics, nt, out, outsz);
  if (kind != ER_SAFE_REDIS && kind != ER_SAFE_PG) {
    snprintf(out, outsz, "not guarded");
    return 1;
  }
  m = static_marked(env, kind, target, text, sizeof text);
  if (m > 0) {
    snprintf(out, outsz, "allowed (%s)", text);
    return 1;
  }
  if (mode == ER_SAFE_READ_TX) {
    if (m == 0)
      snprintf(out, outsz,
               "checked at run time (%s): a read-only transaction unless "
               "it is there",
               text);
    else
      snprintf(out, outsz,
               "runs in a read-only transaction (not a test target: %s)", text);
    return m == 0 ? 0 : 1;
  }
  if (mode == ER_SAFE_READ_CMD) {
    snprintf(shown, sizeof shown, "%s", cmd ? cmd : "?");
    for (char *p = shown; *p; p++)
      *p = (char)toupper((unsigned char)*p);
    snprintf(out, outsz,
             "allowed if the server flags %s readonly (COMMAND INFO, asked "
             "at run time), else %s%s%s",
             shown, m == 0 ? "checked at run time (" : "REFUSED: ", text,
             m == 0 ? ")" : "");
    return 0;
  }
  if (m == 0)
    snprintf(out, outsz, "checked at run time (%s)", text);
  else
    snprintf(out, outsz, "REFUSED: %s", text);
  return m;
}

/* ---- module state -------------------------------------------------------- */

/* shared "safety" */
typedef struct sstate {
  pthread_mutex_t mu;
  json_t *cache;        /* target key -> true (a test target) | [why, fix] */
  json_t *cmds;         /* redis target -> {command name: COMMAND INFO
                           entry, null (unknown) or {"error": ...}} */
  er_tmpl_t *t;         /* the run's template context (borrowed) */
  const char *env_path; /* borrowed from the runner's options, or NULL */
} sstate_t;

static void sstate_free(void *p) {
  sstate_t *st = p;
  if (!st)
    return;
  pthread_mutex_destroy(&st->mu);
  json_decref(st->cache);
  json_decref(st->cmds);
  free(st);
}

static sstate_t *the_state(er_session_t *shared) {
  return shared ? er_session_get(shared, "safety") : NULL;
}

/* cached decision: 1 a test target, 0 not (why and fix appended), -1 none */
static int cache_get(sstate_t *st, const char *key, er_buf_t *why,
                     er_buf_t *fix) {
  int rc = -1;
  const json_t *v;
  pthread_mutex_lock(&st->mu);
  v = json_object_get(st->cache, key);
  if (json_is_true(v)) {
    rc = 1;
  } else if (json_is_array(v)) {
    rc = 0;
    if (why)
      er_buf_puts(why, json_string_value(json_array_get(v, 0)));
    if (fix)
      er_buf_puts(fix, json_string_value(json_array_get(v, 1)));
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static void cache_put(sstate_t *st, const char *key, int d, er_buf_t *why,
                      er_buf_t *fix) {
  pthread_mutex_lock(&st->mu);
  json_object_set_new(
      st->cache, key,
      d ? json_true() : json_pack("[ss]", er_buf_cstr(why), er_buf_cstr(fix)));
  pthread_mutex_unlock(&st->mu);
}

static const char *run_id(sstate_t *st) {
  return st && st->t ? json_string_value(er_tmpl_get(st->t, "run.id")) : NULL;
}

/* Whether r's database is a test target: 1 yes, 0 no (why, fix), -1 could
 * not tell (err). Decided once per target and run; a claim is logged to x
 * (may be NULL). */
static int redis_marked(sstate_t *st, const json_t *env, er_redis_t *r,
                        int64_t deadline, er_exec_t *x, er_buf_t *why,
                        er_buf_t *fix, er_err_t *err) {
  char target[512], key[600];
  bool claimed = false;
  int d;
  er_safety_redis_target(er_redis_redacted(r), target, sizeof target);
  snprintf(key, sizeof key, "redis %s", target);
  d = cache_get(st, key, why, fix);
  if (d >= 0)
    return d;
  d = redis_decide(env, st->env_path, run_id(st), r, deadline, &claimed, why,
                   fix, err);
  if (claimed && x)
    er_exec_log(x, "safety: claimed the empty database %s as a test target",
                er_redis_redacted(r));
  if (d >= 0)
    cache_put(st, key, d, why, fix);
  return d;
}

/* The same for Postgres, once per DSN and run. */
static int pg_marked(sstate_t *st, const json_t *env, er_pg_t *pg,
                     int64_t deadline, er_buf_t *why, er_buf_t *fix,
                     er_err_t *err) {
  char key[4200];
  int d;
  snprintf(key, sizeof key, "pg %s", er_pg_dsn_redacted(pg));
  d = cache_get(st, key, why, fix);
  if (d >= 0)
    return d;
  d = pg_decide(env, st->env_path, pg, deadline, why, fix, err);
  if (d >= 0)
    cache_put(st, key, d, why, fix);
  return d;
}

/* The server's COMMAND INFO entry of a command name (new reference into
 * *entry: the entry, JSON null for an unknown command, {"error": ...} when
 * the server answered with an error), asked once per target and name.
 * Returns 0, or -1 with err (the server could not be asked). */
static int redis_cmd_entry(sstate_t *st, er_redis_t *r, const char *name,
                           int64_t deadline, json_t **entry, er_err_t *err) {
  char target[512], lname[128];
  const char *argv[3] = {"COMMAND", "INFO", name};
  json_t *reply = NULL, *e, *per;
  size_t n = 0;
  int got;

  for (; name[n] && n + 1 < sizeof lname; n++)
    lname[n] = (char)tolower((unsigned char)name[n]);
  lname[n] = '\0';
  er_safety_redis_target(er_redis_redacted(r), target, sizeof target);
  pthread_mutex_lock(&st->mu);
  e = json_object_get(json_object_get(st->cmds, target), lname);
  *entry = json_incref(e);
  pthread_mutex_unlock(&st->mu);
  if (e)
    return 0;
  got = er_redis_command(r, 3, argv, NULL, deadline, &reply, err);
  if (got < 0)
    return -1;
  e = got == ER_REDIS_OK ? json_array_get(reply, 0) : reply;
  *entry = e ? json_incref(e) : json_null();
  json_decref(reply);
  pthread_mutex_lock(&st->mu);
  per = json_object_get(st->cmds, target);
  if (!per) {
    per = json_object();
    json_object_set_new(st->cmds, target, per);
  }
  json_object_set(per, lname, *entry);
  pthread_mutex_unlock(&st->mu);
  return 0;
}

/* Whether argv (a "redis" step's command) only reads, by the server's
 * flags: 1 yes, 0 no (rwhy says why), -1 the server could not be asked
 * (err). */
static int redis_cmd_reads(sstate_t *st, er_redis_t *r, size_t argc,
                           const char *const *argv, int64_t deadline,
                           char *rwhy, size_t rwhysz, er_err_t *err) {
  json_t *entry = NULL;
  int d;
  if (redis_cmd_entry(st, r, argv[0], deadline, &entry, err) != 0)
    return -1;
  d = er_safety_redis_reads(entry, argc > 1 ? argv[1] : NULL, rwhy, rwhysz);
  json_decref(entry);
  return d;
}

/* ---- guards -------------------------------------------------------------- */

/* A writing step's guard: d (1 a test target, 0 not, -1 could not tell)
 * made into the step's outcome and detail. */
static int write_outcome(er_exec_t *x, const char *what, const char *shown,
                         int d, er_buf_t *why, er_buf_t *fix,
                         const er_err_t *err) {
  if (d < 0) {
    er_buf_printf(x->detail, "%s: cannot check that %s is a test target: %s",
                  what, shown, err->msg);
    return ER_STEP_ERROR;
  }
  if (d == 0) {
    er_buf_printf(x->detail,
                  "%s refused: %s is not a test target: %s\n  to allow it: %s",
                  what, shown, er_buf_cstr(why), er_buf_cstr(fix));
    return ER_STEP_FATAL;
  }
  return ER_STEP_OK;
}

int er_safety_guard_redis(er_exec_t *x, er_redis_t *r, const char *what) {
  sstate_t *st = the_state(x->shared);
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  er_err_t err = {0};
  int rc;
  if (!st)
    return ER_STEP_OK;
  rc = write_outcome(
      x, what, er_redis_redacted(r),
      redis_marked(st, x->env, r, x->deadline_ms, x, &why, &fix, &err), &why,
      &fix, &err);
  er_buf_free(&why);
  er_buf_free(&fix);
  return rc;
}

int er_safety_guard_pg(er_exec_t *x, er_pg_t *pg, const char *what) {
  sstate_t *st = the_state(x->shared);
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  er_err_t err = {0};
  int rc;
  if (!st)
    return ER_STEP_OK;
  rc =
      write_outcome(x, what, er_pg_dsn_redacted(pg),
                    pg_marked(st, x->env, pg, x->deadline_ms, &why, &fix, &err),
                    &why, &fix, &err);
  er_buf_free(&why);
  er_buf_free(&fix);
  return rc;
}

/* Whether the environment alone marks a Redis target (an allow glob). */
static bool redis_allowed_statically(const json_t *env, er_redis_t *r) {
  const json_t *tt = target_spec(env, "redis");
  char target[512];
  if (!tt)
    return false;
  er_safety_redis_target(er_redis_redacted(r), target, sizeof target);
  return er_safety_glob_any(json_object_get(tt, "allow"), target);
}

int er_safety_guard_redis_cmd(er_exec_t *x, er_redis_t *r, const char *shown,
                              size_t argc, const char *const *argv) {
  sstate_t *st = the_state(x->shared);
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  er_err_t err = {0};
  char rwhy[1024], target[512], key[600];
  int d, rc = ER_STEP_OK;

  if (!st || argc == 0 || redis_allowed_statically(x->env, r))
    return ER_STEP_OK;
  er_safety_redis_target(er_redis_redacted(r), target, sizeof target);
  snprintf(key, sizeof key, "redis %s", target);
  if (cache_get(st, key, NULL, NULL) == 1)
    return ER_STEP_OK;
  /* a read (by the server's word) runs anywhere */
  d = redis_cmd_reads(st, r, argc, argv, x->deadline_ms, rwhy, sizeof rwhy,
                      &err);
  if (d < 0) {
    er_buf_printf(x->detail,
                  "redis %s: %s (asking the server whether the command only "
                  "reads: COMMAND INFO)",
                  shown, err.msg);
    return ER_STEP_ERROR;
  }
  if (d > 0)
    return ER_STEP_OK;
  /* anything else only on a test target */
  d = redis_marked(st, x->env, r, x->deadline_ms, x, &why, &fix, &err);
  if (d < 0) {
    er_buf_printf(x->detail,
                  "redis %s: cannot check that %s is a test "
                  "target: %s",
                  shown, er_redis_redacted(r), err.msg);
    rc = ER_STEP_ERROR;
  } else if (d == 0) {
    er_buf_printf(x->detail,
                  "redis refused: %s on %s, which is not a test target (%s), "
                  "where a step may only read, and %s\n  to allow it: %s",
                  shown, er_redis_redacted(r), er_buf_cstr(&why), rwhy,
                  er_buf_cstr(&fix));
    rc = ER_STEP_FATAL;
  }
  er_buf_free(&why);
  er_buf_free(&fix);
  return rc;
}

/* Whether a failed query was refused by what a read-only transaction of
 * one statement lets through: a write (25006), a statement that cannot
 * run in a transaction or a switch to read-write (25001), a second
 * statement (42601 from the extended protocol). */
static bool ro_refusal(const er_pg_result_t *res, const er_err_t *err) {
  return err->code == ER_E_FAIL &&
         (!strcmp(res->sqlstate, "25006") || !strcmp(res->sqlstate, "25001") ||
          (!strcmp(res->sqlstate, "42601") &&
           strstr(err->msg, "cannot insert multiple commands")));
}

/* A read-only transaction's refusal made into the step's message. */
static void pg_refused(er_pg_t *pg, const char *sql, er_buf_t *why,
                       er_buf_t *fix, er_err_t *err) {
  char what[32], msg[ER_ERRSTR];
  er_safety_sql_what(sql, what, sizeof what);
  snprintf(msg, sizeof msg, "%s", err->msg);
  er_err_clear(err);
  er_errf(err, ER_E_INPUT,
          "refused by the server: %s is not a test target (%s), so the query "
          "(%s) ran as one statement in a read-only transaction, and "
          "Postgres refused it: %s\n  to allow it: %s",
          er_pg_dsn_redacted(pg), er_buf_cstr(why), what, msg,
          er_buf_cstr(fix));
}

int er_safety_pg_query(er_exec_t *x, er_pg_t *pg, const char *sql,
                       const char *const *params, int nparams,
                       er_pg_result_t *res, er_err_t *err) {
  sstate_t *st = the_state(x->shared);
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  er_err_t e = {0};
  char what[32];
  int d, rc = -1;

  memset(res, 0, sizeof *res);
  if (!st)
    return er_pg_query(pg, sql, params, nparams, x->deadline_ms, res, err);
  d = pg_marked(st, x->env, pg, x->deadline_ms, &why, &fix, &e);
  if (d < 0) {
    er_errf(err, e.code == ER_E_INTR ? ER_E_INTR : ER_E_ENV,
            "cannot check that %s is a test target: %s", er_pg_dsn_redacted(pg),
            e.msg);
    goto out;
  }
  if (d > 0) {
    rc = er_pg_query(pg, sql, params, nparams, x->deadline_ms, res, err);
    goto out;
  }
  er_safety_sql_what(sql, what, sizeof what);
  if (!strcmp(what, "COPY")) {
    er_errf(err, ER_E_INPUT,
            "refused: %s is not a test target (%s): there a query runs in a "
            "read-only transaction, which does not stop COPY ... TO PROGRAM "
            "or to a server file, so COPY is not sent\n  to allow it: %s",
            er_pg_dsn_redacted(pg), er_buf_cstr(&why), er_buf_cstr(&fix));
    goto out;
  }
  rc = er_pg_query_ro(pg, sql, params, nparams, x->deadline_ms, res, err);
  if (rc != 0 && ro_refusal(res, err))
    pg_refused(pg, sql, &why, &fix, err);
out:
  er_buf_free(&why);
  er_buf_free(&fix);
  return rc;
}

int er_safety_guard_kafka(er_exec_t *x, const char *what, bool embedded,
                          const char *group, const char *const *topics,
                          size_t nt) {
  sstate_t *st = the_state(x->shared);
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  int rc = ER_STEP_OK;
  if (!st)
    return ER_STEP_OK;
  if (kafka_decide(x->env, st->env_path, embedded, group, topics, nt, &why,
                   &fix) < 0) {
    er_buf_printf(x->detail,
                  "%s refused: the Kafka cluster is not a test target for "
                  "it: %s\n  to allow it: %s",
                  what, er_buf_cstr(&why), er_buf_cstr(&fix));
    rc = ER_STEP_FATAL;
  }
  er_buf_free(&why);
  er_buf_free(&fix);
  return rc;
}

/* ---- the module ---------------------------------------------------------- */

static int mod_run_begin(const json_t *env, er_tmpl_t *t, er_session_t *shared,
                         er_err_t *err) {
  sstate_t *st = calloc(1, sizeof *st);
  (void)env;
  if (!st)
    return er_errf(err, ER_E_ENV, "out of memory");
  pthread_mutex_init(&st->mu, NULL);
  st->cache = json_object();
  st->cmds = json_object();
  st->t = t;
  st->env_path = er_session_get(shared, "env_path");
  if (!st->cache || !st->cmds ||
      er_session_put(shared, "safety", st, sstate_free) != 0) {
    sstate_free(st);
    return er_errf(err, ER_E_ENV, "out of memory");
  }
  return 0;
}

/* preflight: every step of the plan this module guards */
typedef struct pf {
  const json_t *env;
  sstate_t *st;
  er_tmpl_t *ts; /* run names + the scenario's vars */
  er_buf_t list; /* refused steps */
  json_t *fixes; /* the distinct fixes, in order */
  json_t *down;  /* Redis targets that could not be asked: run time */
  size_t refused;
  er_err_t err; /* a check that could not be made */
} pf_t;

/* the step being checked */
typedef struct pstep {
  const er_scenario_t *s;
  const char *file; /* where the step is written */
  int line, col;
  const er_action_t *a;
  const json_t *args;
  char what[256];
} pstep_t;

/* s expanded where possible: a new string, or NULL (known at run time) */
static char *expand_known(er_tmpl_t *t, const char *s) {
  er_err_t e = {0};
  json_t *v;
  char *out = NULL;
  if (!s)
    return NULL;
  if (!strstr(s, "${"))
    return er_strdup(s);
  v = t ? er_tmpl_expand_str(t, s, &e) : NULL;
  if (json_is_string(v))
    out = er_strdup(json_string_value(v));
  json_decref(v);
  return out;
}

static void add_fix(pf_t *p, const char *fix) {
  size_t i;
  json_t *v;
  json_array_foreach(p->fixes, i, v) {
    if (!strcmp(json_string_value(v), fix))
      return;
  }
  json_array_append_new(p->fixes, json_string(fix));
}

static void refuse(pf_t *p, const pstep_t *ps, const char *target,
                   const char *why, const char *fix) {
  p->refused++;
  er_buf_printf(&p->list, "\n  %s:%d:%d: %s (%s) on %s: %s", ps->file, ps->line,
                ps->col, ps->a->name, ps->what, target, why);
  add_fix(p, fix);
}

size_t er_safety_env_topics(const json_t *env, const char **out, size_t max) {
  const json_t *kc = json_object_get(env, "kafka");
  const json_t *arr = json_object_get(kc, "topics");
  size_t n = 0, i;
  json_t *v;
  if (!arr)
    arr = json_object_get(json_object_get(kc, "embedded"), "topics");
  json_array_foreach(arr, i, v) {
    const char *name = json_is_string(v)
                           ? json_string_value(v)
                           : json_string_value(json_object_get(v, "name"));
    if (name && n < max)
      out[n++] = name;
  }
  return n;
}

#define PF_TOPICS 256

/* A name of a Kafka step expanded into topics[*nt] (owned), or false
 * when it is known only at run time. */
static bool pf_topic(pf_t *p, const char *raw, char **topics, size_t *nt) {
  char *t = expand_known(p->ts, raw);
  if (!t)
    return false;
  topics[(*nt)++] = t;
  return true;
}

/* kafka.produce and kafka.reset, when their names are known now */
static void pf_kafka(pf_t *p, pstep_t *ps) {
  const char *env_topics[PF_TOPICS];
  char *topics[PF_TOPICS];
  size_t nt = 0, nenv = 0;
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  bool produce = !strcmp(ps->a->name, "kafka.produce");
  const json_t *ta = json_object_get(ps->args, "topics");
  char *group = produce ? NULL
                        : expand_known(p->ts, json_string_value(json_object_get(
                                                  ps->args, "group")));
  bool known = produce || group != NULL;

  if (produce) {
    known = pf_topic(p, json_string_value(json_object_get(ps->args, "topic")),
                     topics, &nt);
  } else if (ta) {
    for (size_t i = 0; i < json_array_size(ta) && nt < PF_TOPICS; i++)
      if (!pf_topic(p, json_string_value(json_array_get(ta, i)), topics, &nt))
        known = false;
  } else {
    nenv = er_safety_env_topics(p->env, env_topics, PF_TOPICS);
  }
  if (known &&
      kafka_decide(p->env, p->st->env_path, kafka_env_embedded(p->env), group,
                   nenv ? env_topics : (const char *const *)topics,
                   nenv ? nenv : nt, &why, &fix) < 0) {
    if (produce)
      snprintf(ps->what, sizeof ps->what, "produce to \"%s\"", topics[0]);
    else
      snprintf(ps->what, sizeof ps->what, "offsets of group \"%s\"", group);
    refuse(p, ps, "the Kafka cluster", er_buf_cstr(&why), er_buf_cstr(&fix));
  }
  free(group);
  for (size_t i = 0; i < nt; i++)
    free(topics[i]);
  er_buf_free(&why);
  er_buf_free(&fix);
}

/* The literal command of a "redis" step: its name and, when there is one,
 * its second element (the subcommand of a container command such as
 * CONFIG), borrowed from args; *sub_later when that element is known only
 * at run time. Returns how many, 0 when the name itself is known only at
 * run time. */
static size_t literal_cmd(const json_t *args, const char *argv[2],
                          bool *sub_later) {
  const json_t *cmd = json_object_get(args, "command");
  const char *c0 = json_string_value(json_array_get(cmd, 0));
  const json_t *e1 = json_array_get(cmd, 1);
  *sub_later = false;
  if (!c0 || strstr(c0, "${"))
    return 0;
  argv[0] = c0;
  if (!e1)
    return 1;
  argv[1] = json_is_string(e1) ? json_string_value(e1) : "";
  *sub_later = strstr(argv[1], "${") != NULL;
  return 2;
}

/* Whether the server flags a "redis" step's command as a read: 1 yes, 0
 * no (rwhy), -1 decided at run time (the subcommand is not known yet, or
 * the server cannot be asked now). */
static int pf_reads(pf_t *p, er_redis_t *r, const json_t *args, char *rwhy,
                    size_t rwhysz) {
  const char *argv[2] = {NULL, NULL};
  bool sub_later;
  size_t argc = literal_cmd(args, argv, &sub_later);
  json_t *entry = NULL;
  er_err_t e = {0};
  char target[512];
  int d;
  er_safety_redis_target(er_redis_redacted(r), target, sizeof target);
  if (argc == 0 || json_object_get(p->down, target))
    return -1;
  if (redis_cmd_entry(p->st, r, argv[0], er_now_ms() + CHECK_MS, &entry, &e) !=
      0) {
    json_object_set_new(p->down, target, json_true());
    return -1;
  }
  if (sub_later && json_array_size(json_array_get(entry, 9)) > 0)
    d = -1; /* a container whose subcommand comes from a template */
  else
    d = er_safety_redis_reads(entry, argc > 1 ? argv[1] : NULL, rwhy, rwhysz);
  json_decref(entry);
  return d;
}

/* A Redis target known now. A "redis" step: the server's flags first (a
 * read runs anywhere; a server that cannot be asked now is asked again
 * at run time), then whether the target is a test target. */
static void pf_redis(pf_t *p, pstep_t *ps, er_safe_mode_t mode,
                     const char *url) {
  char shown[4200], rwhy[1024] = "";
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  er_err_t e = {0};
  er_redis_t *r;
  int d;

  er_redis_redact(url, shown, sizeof shown);
  r = er_redis_new(url, 0, &e);
  if (!r)
    return; /* a bad URL: the step reports it */
  if (mode == ER_SAFE_READ_CMD &&
      (redis_allowed_statically(p->env, r) ||
       pf_reads(p, r, ps->args, rwhy, sizeof rwhy) != 0))
    goto out; /* allowed, a read, or decided at run time */
  d = redis_marked(p->st, p->env, r, er_now_ms() + CHECK_MS, NULL, &why, &fix,
                   &e);
  if (d < 0) {
    er_errf(&p->err, ER_E_ENV,
            "safety: cannot check that %s is a test target (for %s at "
            "%s:%d:%d): %s",
            shown, ps->a->name, ps->file, ps->line, ps->col, e.msg);
  } else if (d == 0) {
    if (rwhy[0])
      er_buf_printf(&why, "; there a step may only read, and %s", rwhy);
    refuse(p, ps, shown, er_buf_cstr(&why), er_buf_cstr(&fix));
  }
out:
  er_redis_free(r);
  er_buf_free(&why);
  er_buf_free(&fix);
}

/* postgres.exec on a DSN known now */
static void pf_pg(pf_t *p, pstep_t *ps, const char *dsn) {
  char shown[4200];
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  er_err_t e = {0};
  er_pg_t *pg = er_pg_new(dsn, &e);
  int d;
  er_pg_redact_dsn(dsn, shown, sizeof shown);
  if (!pg)
    return;
  d = pg_marked(p->st, p->env, pg, er_now_ms() + CHECK_MS, &why, &fix, &e);
  er_pg_free(pg);
  if (d < 0)
    er_errf(&p->err, ER_E_ENV,
            "safety: cannot check that %s is a test target (for %s at "
            "%s:%d:%d): %s",
            shown, ps->a->name, ps->file, ps->line, ps->col, e.msg);
  else if (d == 0)
    refuse(p, ps, shown, er_buf_cstr(&why), er_buf_cstr(&fix));
  er_buf_free(&why);
  er_buf_free(&fix);
}

static void pf_visit(void *ud, const er_scenario_t *s, const er_safety_at_t *at,
                     const er_action_t *a, const json_t *args) {
  pf_t *p = ud;
  pstep_t ps = {s, at->file, at->line, at->col, a, args, ""};
  const char *targ = NULL;
  er_safe_mode_t mode;
  er_safe_kind_t kind = er_safety_classify(a, args, at->dir, ps.what,
                                           sizeof ps.what, &targ, &mode);
  char *url;
  er_tmpl_t *saved = p->ts;

  if (kind == ER_SAFE_NONE || p->err.code)
    return;
  /* inside a step file the scenario's vars are not its names */
  if (at->in_call)
    p->ts = p->st->t;
  if (kind == ER_SAFE_KAFKA) {
    pf_kafka(p, &ps);
    goto out;
  }
  if (mode == ER_SAFE_READ_TX)
    goto out; /* the server decides, in a read-only transaction */
  if (!targ)
    targ = json_string_value(json_object_get(
        json_object_get(p->env, kind == ER_SAFE_REDIS ? "redis" : "postgres"),
        kind == ER_SAFE_REDIS ? "url" : "dsn"));
  url = expand_known(p->ts, targ);
  if (!url)
    goto out; /* known at run time: the step's own guard checks it */
  if (kind == ER_SAFE_REDIS)
    pf_redis(p, &ps, mode, url);
  else
    pf_pg(p, &ps, url);
  free(url);
out:
  p->ts = saved;
}

/* a clone of the run's names with the scenario's vars set where they
 * expand (in file order; later ones may use earlier ones) */
static er_tmpl_t *scenario_names(er_tmpl_t *t, const er_scenario_t *s) {
  er_tmpl_t *ts = t ? er_tmpl_clone(t) : er_tmpl_new();
  const char *k;
  json_t *v;
  if (!ts)
    return NULL;
  json_object_foreach(s->vars, k, v) {
    er_err_t e = {0};
    json_t *x = er_tmpl_expand(ts, v, &e);
    if (x)
      er_tmpl_set(ts, k, x);
  }
  return ts;
}

/* The refusal of the whole run (p->refused > 0) into err. */
static int pf_refusal(pf_t *p, er_err_t *err) {
  er_buf_t msg = ER_BUF_INIT(96 * 1024);
  size_t i;
  json_t *v;
  int rc;
  er_buf_printf(&msg,
                "safety: refused %zu step(s) that would write where the "
                "target is not marked as a test target; no scenario ran and "
                "nothing was written:%s",
                p->refused, er_buf_cstr(&p->list));
  json_array_foreach(p->fixes, i, v) {
    er_buf_printf(&msg, "\n  to allow it: %s", json_string_value(v));
  }
  if (msg.len < ER_ERRSTR - 1) {
    rc = er_errf(err, ER_E_ENV, "%s", er_buf_cstr(&msg));
  } else {
    /* too long for an er_err_t: the whole list goes to stderr */
    fprintf(stderr, "eventrig: %s\n", er_buf_cstr(&msg));
    rc = er_errf(err, ER_E_ENV, "safety: refused %zu step(s) (listed above)",
                 p->refused);
  }
  er_buf_free(&msg);
  return rc;
}

static int mod_preflight(const json_t *env, er_session_t *shared,
                         er_err_t *err) {
  sstate_t *st = the_state(shared);
  const er_plan_t *plan = shared ? er_session_get(shared, "plan") : NULL;
  pf_t p;
  int rc = 0;

  if (!st || !plan)
    return 0;
  memset(&p, 0, sizeof p);
  p.env = env;
  p.st = st;
  er_buf_init(&p.list, 64 * 1024);
  p.fixes = json_array();
  p.down = json_object();
  for (size_t i = 0; i < plan->n && !p.err.code; i++) {
    p.ts = scenario_names(st->t, plan->v[i]);
    er_safety_walk(plan->v[i], pf_visit, &p);
    er_tmpl_free(p.ts);
    p.ts = NULL;
  }
  if (p.err.code)
    rc = er_errf(err, p.err.code, "%s", p.err.msg);
  else if (p.refused)
    rc = pf_refusal(&p, err);
  er_buf_free(&p.list);
  json_decref(p.fixes);
  json_decref(p.down);
  return rc;
}

const er_module_t er_mod_safety = {
    .name = "safety",
    .run_begin = mod_run_begin,
    .preflight = mod_preflight,
};
