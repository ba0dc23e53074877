/* safety.h: the interlock between steps and servers, and the plan walk
 * that `eventrig run --dry-run` prints.
 *
 * The rule: on a server the environment does not mark as a test target, a
 * step may only read, and what counts as a read is decided by the server
 * itself wherever it can be, never by a list of dangerous words:
 *   redis          the command runs only when the server flags it
 *                  "readonly" (and not "write") in COMMAND INFO, asked once
 *                  per command name and target and cached; a container
 *                  command (CONFIG, OBJECT, CLIENT, FUNCTION, ...) by its
 *                  subcommand's entry ("config|set"). An unknown command,
 *                  or one the server does not describe, is refused. EVAL_RO
 *                  and FCALL_RO are flagged readonly (Redis refuses writes
 *                  from them); EVAL, FCALL and FUNCTION LOAD are not.
 *   redis.clean, redis.seed, redis.contend, postgres.exec
 *                  always write: a test target only.
 *   postgres.expect / postgres
 *                  on a database that is not a test target, the query runs
 *                  as one statement in a transaction the server keeps
 *                  read-only (er_pg_query_ro), so Postgres itself refuses
 *                  UPDATE, DDL, DO blocks, functions and rules that write,
 *                  COPY ... FROM. COPY is not sent at all there (COPY ... TO
 *                  PROGRAM or to a server file is not stopped by a
 *                  read-only transaction).
 *   kafka.produce, kafka.reset
 *                  on a real cluster, the topic(s) and group must start
 *                  with test_target prefixes; the embedded broker is always
 *                  a test target.
 * The SQL scanner (er_safety_sql_*) only words messages.
 *
 * Test targets, in the environment file:
 *   redis.test_target     {"allow": ["127.0.0.1:*\/0"], "marker": "key",
 *                          "claim_empty": true}   (allow globs match
 *                          "host:port/db"; the marker key exists in that
 *                          DB; claim_empty writes the marker into an empty
 *                          DB and then counts it as marked)
 *   postgres.test_target  {"databases": ["*_test"], "marker_table": "t"}
 *   kafka.test_target     {"topic_prefixes": [..], "group_prefixes": [..]}
 *
 * The "safety" module (actions.c) checks the plan at preflight: every
 * writing step whose target is known then, and every "redis" step whose
 * target and command name are known (COMMAND INFO is asked then); a
 * refusal stops the run with exit 3 before any scenario, naming each
 * refused step (file:line:col), its target, what it would do and the
 * environment key that would allow it. The act_*.c files call the guards
 * below before sending anything (targets and commands known only at run
 * time; await/hold polls); decisions and COMMAND INFO replies are cached
 * per target in the run's shared session. The guards allow everything when
 * the safety module is not set up (x->shared without its state: actions
 * run outside `eventrig run`, as in the itests).
 *
 * Limits: a marked database does not keep server-wide commands on it
 * (FLUSHALL, SWAPDB, REPLICAOF, ...) from reaching the other databases of
 * its server. A read-only transaction keeps a database's data, not the
 * server's files and processes: a superuser can still reach them from a
 * function (lo_export, COPY ... TO PROGRAM inside PL/pgSQL, adminpack);
 * give unmarked databases a DSN whose role has none of superuser,
 * pg_write_server_files, pg_execute_server_program.
 */
#ifndef ER_SAFETY_H
#define ER_SAFETY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lang/scenario.h"
#include "run/exec.h"

typedef struct er_redis er_redis_t;         /* redis.h */
typedef struct er_pg er_pg_t;               /* pg.h */
typedef struct er_pg_result er_pg_result_t; /* pg.h */

/* ---- classifiers (pure) -------------------------------------------------- */

/* Whether sql holds a TRUNCATE, DELETE or DROP statement (any statement of
 * a multi-statement text, also DELETE inside WITH / EXPLAIN; comments,
 * string literals, dollar quotes and quoted identifiers are skipped).
 * *verb (may be NULL) gets "TRUNCATE" / "DELETE" / "DROP" (static). For
 * messages only. */
bool er_safety_sql_destructive(const char *sql, const char **verb);
/* What sql would do, in one upper-case word for messages: the verb above
 * when there is one, else the first statement's first word that is not a
 * plain read (SELECT, VALUES, TABLE, SHOW), with INSERT / UPDATE / DELETE /
 * MERGE found inside WITH and EXPLAIN; else the first word ("SELECT");
 * "" for no statement. */
void er_safety_sql_what(const char *sql, char *out, size_t outsz);
/* Whether the server's COMMAND INFO entry for a command (entry: the array
 * it returns for one name, JSON null for a command it does not know, or
 * {"error": ...}) flags it as a read: "readonly" among its flags and not
 * "write". For a container command (its entry lists subcommands) the
 * subcommand arg1 decides ("config|set"). Returns 1 a read; 0 not, with
 * why ("the server does not flag GETDEL readonly (COMMAND INFO flags:
 * write, fast)"). */
int er_safety_redis_reads(const json_t *entry, const char *arg1, char *why,
                          size_t whysz);
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

typedef enum {
  ER_SAFE_WRITE = 0, /* writes: on a test target only */
  ER_SAFE_READ_CMD,  /* "redis": anywhere when the server flags the command
                        readonly, else on a test target only */
  ER_SAFE_READ_TX,   /* a postgres query: on a database that is not a test
                        target, in a read-only transaction */
} er_safe_mode_t;

/* Classifies one step: action a with its raw (untemplated) arguments.
 * Returns which server it touches (ER_SAFE_NONE: none this module
 * guards), and *mode how it is decided. what gets a short description
 * ("FLUSHDB", "SCAN+UNLINK \"els:*\"", "GETDEL", "UPDATE", "writes 2
 * key(s)"). A postgres.exec "file" is read relative to base_dir.
 * *target_arg (may be NULL) gets the step's own url / dsn (borrowed from
 * args) or NULL for the environment's. */
er_safe_kind_t er_safety_classify(const er_action_t *a, const json_t *args,
                                  const char *base_dir, char *what,
                                  size_t whatsz, const char **target_arg,
                                  er_safe_mode_t *mode);

/* ---- the plan walk ------------------------------------------------------- */

/* Where a visited step is written. */
typedef struct er_safety_at {
  const char *section; /* "setup", "steps" or "teardown" */
  const char *path;    /* the JSON pointer of the step object in file */
  const char *file;    /* the scenario's, or a step file's it uses */
  const char *dir;     /* where the files the step names are found */
  int line, col;
  int depth;    /* 0 for the steps of setup / steps / teardown */
  bool in_call; /* inside a step file: the scenario's vars do not apply */
} er_safety_at_t;

/* Called for every step of a scenario, nested ones too, and the steps of
 * the step files its `use` steps call; args the raw arguments (borrowed;
 * the step object itself for `use`). */
typedef void (*er_safety_visit_fn)(void *ud, const er_scenario_t *s,
                                   const er_safety_at_t *at,
                                   const er_action_t *a, const json_t *args);
void er_safety_walk(const er_scenario_t *s, er_safety_visit_fn fn, void *ud);

/* ---- static checks (dry run) -------------------------------------------- */

/* What the environment env (resolved) says of a step without contacting
 * anything, into out: "allowed (...)", "checked at run time (...)", a
 * decision left to the server ("a read if the server flags GET readonly
 * ..., else REFUSED: ...", "read-only transaction: ...") or "REFUSED: ...".
 * Returns 1 allowed (a read-only transaction included), 0 decided at run
 * time, -1 refused. cmd is a "redis" step's command name. For Kafka,
 * target is unused and group (NULL for kafka.produce) / topics (nt) are
 * checked. */
int er_safety_static(const json_t *env, er_safe_kind_t kind,
                     er_safe_mode_t mode, const char *target, const char *cmd,
                     const char *group, const char *const *topics, size_t nt,
                     char *out, size_t outsz);

/* ---- run-time guards ----------------------------------------------------- */

/* A writing step (redis.clean, redis.seed, redis.contend; postgres.exec):
 * ER_STEP_OK when the target is a test target, else ER_STEP_FATAL
 * (refused; x->detail says what and how to allow it) or ER_STEP_ERROR (the
 * check could not reach the server). what names the action. Nothing is
 * written by a guard (a claim writes only the marker key into an empty
 * DB). */
int er_safety_guard_redis(er_exec_t *x, er_redis_t *r, const char *what);
int er_safety_guard_pg(er_exec_t *x, er_pg_t *pg, const char *what);
/* A "redis" step about to send argv (argc >= 1; shown is the command as
 * the step shows it): allowed on a test target, elsewhere only when the
 * server flags it readonly (COMMAND INFO, cached). Outcomes as above. */
int er_safety_guard_redis_cmd(er_exec_t *x, er_redis_t *r, const char *shown,
                              size_t argc, const char *const *argv);
/* A postgres query step: er_pg_query on a test target, elsewhere
 * er_pg_query_ro (refusing COPY before sending). Returns as er_pg_query;
 * a write the server refused (SQLSTATE 25006 / 25001), a COPY, or a
 * target that could not be checked (ER_E_ENV) is explained in err, a
 * refusal with code ER_E_INPUT (nothing to retry). */
int er_safety_pg_query(er_exec_t *x, er_pg_t *pg, const char *sql,
                       const char *const *params, int nparams,
                       er_pg_result_t *res, er_err_t *err);
/* kafka.produce (group NULL, the topic) and kafka.reset: a real cluster
 * needs test_target prefixes. what names the action. */
int er_safety_guard_kafka(er_exec_t *x, const char *what, bool embedded,
                          const char *group, const char *const *topics,
                          size_t nt);

/* The environment's declared Kafka topics (kafka.topics, or
 * kafka.embedded.topics): up to max names into out (borrowed from env).
 * Returns how many. */
size_t er_safety_env_topics(const json_t *env, const char **out, size_t max);

#endif
