/* safety.h: the interlock on destructive actions, and the plan walk that
 * `eventrig run --dry-run` prints.
 *
 * Destructive: redis.clean (any form), a "redis" / "redis.contend" step
 * whose command is DEL / UNLINK / FLUSHDB / FLUSHALL, a postgres step
 * (exec, expect) whose SQL holds a TRUNCATE / DELETE / DROP statement, and
 * kafka.reset. Such a step may touch a target only when the environment
 * marks it as a test target:
 *   redis.test_target     {"allow": ["127.0.0.1:*\/0"], "marker": "key",
 *                          "claim_empty": true}   (allow globs match
 *                          "host:port/db"; the marker key exists in that
 *                          DB; claim_empty writes the marker into an empty
 *                          DB and then counts it as marked)
 *   postgres.test_target  {"databases": ["*_test"], "marker_table": "t"}
 *   kafka.test_target     {"topic_prefixes": [..], "group_prefixes": [..]}
 *                          (the embedded broker is always a test target)
 *
 * The "safety" module (actions.c) checks every destructive step of the
 * plan at preflight: a refusal stops the run with exit 3 before any
 * scenario, naming each refused step and the environment key that would
 * allow it. The act_*.c files call the guards below before sending a
 * destructive command (targets known only at run time); decisions are
 * cached per target in the run's shared session. The guards allow
 * everything when the safety module is not set up (x->shared without its
 * state: actions run outside `eventrig run`, as in the itests).
 */
#ifndef ER_SAFETY_H
#define ER_SAFETY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lang/scenario.h"
#include "run/exec.h"

typedef struct er_redis er_redis_t; /* redis.h */
typedef struct er_pg er_pg_t;       /* pg.h */

/* ---- classifiers (pure) -------------------------------------------------- */

/* Whether sql holds a TRUNCATE, DELETE or DROP statement (any statement of
 * a multi-statement text, also DELETE inside WITH / EXPLAIN; comments,
 * string literals, dollar quotes and quoted identifiers are skipped).
 * *verb (may be NULL) gets "TRUNCATE" / "DELETE" / "DROP" (static). */
bool er_safety_sql_destructive(const char *sql, const char **verb);
/* Whether a Redis command name is DEL / UNLINK / FLUSHDB / FLUSHALL. */
bool er_safety_redis_cmd_destructive(const char *name);
/* fnmatch of s against any string of globs (an array; other JSON: no). */
bool er_safety_glob_any(const json_t *globs, const char *s);
/* Whether s starts with any string of prefixes (an array). */
bool er_safety_prefix_any(const json_t *prefixes, const char *s);
/* "host:port/db" of a Redis URL ("unix:/path/db" for sockets) into out.
 * Returns 0, or -1 when the URL does not parse. */
int er_safety_redis_target(const char *url, char *out, size_t outsz);
/* The database name of a DSN as libpq reads it (er_pg_dsn_dbname), else
 * the user name, else "postgres", into out. */
void er_safety_pg_dbname(const char *dsn, char *out, size_t outsz);

typedef enum {
  ER_SAFE_NONE = 0,
  ER_SAFE_REDIS,
  ER_SAFE_PG,
  ER_SAFE_KAFKA,
} er_safe_kind_t;

/* Classifies one step: action a with its raw (untemplated) arguments.
 * what gets a short description ("FLUSHDB", "SCAN+UNLINK \"els:*\"",
 * "TRUNCATE"). A postgres.exec "file" is read relative to base_dir.
 * *target_arg (may be NULL) gets the step's own url / dsn (borrowed from
 * args) or NULL for the environment's. */
er_safe_kind_t er_safety_classify(const er_action_t *a, const json_t *args,
                                  const char *base_dir, char *what,
                                  size_t whatsz, const char **target_arg);

/* ---- the plan walk ------------------------------------------------------- */

/* Called for every step of a scenario, nested ones too (depth 0 for the
 * steps of setup / steps / teardown). section is "setup", "steps" or
 * "teardown"; path the JSON pointer of the step object; args the raw
 * arguments (borrowed). */
typedef void (*er_safety_visit_fn)(void *ud, const er_scenario_t *s,
                                   const char *section, const char *path,
                                   int line, int col, int depth,
                                   const er_action_t *a, const json_t *args);
void er_safety_walk(const er_scenario_t *s, er_safety_visit_fn fn, void *ud);

/* ---- static checks (dry run) -------------------------------------------- */

/* What the environment env (resolved) says of a target without contacting
 * it, into out: "allowed (...)", "checked at run time (...)" or
 * "REFUSED: ...". Returns 1 allowed, 0 decided at run time, -1 refused.
 * For Kafka, target is unused and group / topics (nt) are checked. */
int er_safety_static(const json_t *env, er_safe_kind_t kind, const char *target,
                     const char *group, const char *const *topics, size_t nt,
                     char *out, size_t outsz);

/* ---- run-time guards ----------------------------------------------------- */

/* Each returns ER_STEP_OK when the target is a test target, else
 * ER_STEP_FATAL (refused; x->detail says what and how to allow it) or
 * ER_STEP_ERROR (the check could not reach the server). what names the
 * action. Nothing destructive is sent by a guard (a claim writes only the
 * marker key into an empty DB). */
int er_safety_guard_redis(er_exec_t *x, er_redis_t *r, const char *what);
int er_safety_guard_pg(er_exec_t *x, er_pg_t *pg, const char *what);
int er_safety_guard_kafka(er_exec_t *x, bool embedded, const char *group,
                          const char *const *topics, size_t nt);

/* The environment's declared Kafka topics (kafka.topics, or
 * kafka.embedded.topics): up to max names into out (borrowed from env).
 * Returns how many. */
size_t er_safety_env_topics(const json_t *env, const char **out, size_t max);

#endif
