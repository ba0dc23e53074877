/* exec.h: what a step runs with (er_exec_t: deadline, connections,
 * captures, log), the runner's side of lang/action.h: sessions, step
 * groups, outcomes, run-wide modules, and helpers actions share. */
#ifndef ER_EXEC_H
#define ER_EXEC_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/util.h"
#include "lang/action.h"

/* ---- execution -------------------------------------------------------- */

/* Per-branch connections. Actions keep their adapter handles here under a
 * name ("redis", "pg", ...) and they are closed when the session ends.
 * The session owns obj after a successful put and calls free_fn on it. */
typedef struct er_session er_session_t;
void *er_session_get(er_session_t *s, const char *name);
int er_session_put(er_session_t *s, const char *name, void *obj,
                   void (*free_fn)(void *));

typedef struct er_tmpl er_tmpl_t; /* template.h */
typedef struct er_group_ops er_group_ops_t;

/* What a long step shows while it runs: the runner sets scenario, step
 * and start; the step reports polls and what it last saw (await, hold)
 * or messages produced and acknowledged (kafka.produce); a thread of the
 * runner prints it (a status line on a terminal, a plain line every 10 s
 * in CI logs). Every field under mu. */
typedef struct er_progress {
  pthread_mutex_t mu;
  bool active;
  int64_t started_ms;
  char scenario[160];
  char step[200];
  int polls;
  char last[200];       /* first line of the last mismatch seen */
  long produced, acked; /* messages to produce, acknowledged so far */
} er_progress_t;

/* What an action gets to run one step. Borrowed from the runner. */
struct er_exec {
  const json_t *env;           /* resolved environment file (env.h shape) */
  er_session_t *session;       /* connections of this branch */
  er_session_t *shared;        /* run-wide objects modules set up in
                                  run_begin (read-only during scenarios) */
  er_session_t *scenario;      /* objects of the current scenario (e.g. Kafka
                                  end offsets recorded at its start) */
  er_tmpl_t *tmpl;             /* for actions that expand per item */
  const char *base_dir;        /* scenario's folder, for relative file paths */
  int64_t deadline_ms;         /* er_now_ms() clock; never wait past it */
  bool polling;                /* inside await/hold: be quiet, fail fast */
  er_buf_t *log;               /* scenario log (JUnit system-out) */
  json_t *captures;            /* action adds name -> value here */
  er_buf_t *detail;            /* on failure: expected vs last seen */
  const er_group_ops_t *group; /* the runner's ops for step groups */
  void *rt;                    /* the runner's private context of this branch */
  er_progress_t *progress;     /* the run's, or NULL (e.g. in itests) */
};

/* Step groups (parallel, repeat, group): actions with raw_args get their
 * arguments untemplated and run nested steps through these. */
struct er_group_ops {
  /* Runs a JSON array of steps (borrowed) in order in x's branch (its
   * session, template scope and log); label prefixes them in the log.
   * Stops at the first step that does not pass; returns its ER_STEP_*
   * and leaves the detail in x->detail. */
  int (*run_steps)(er_exec_t *x, const json_t *steps, const char *label);
  /* A branch of x: its own session (connections), a copy of x's template
   * scope, its own log and detail. NULL if memory ran out. */
  er_exec_t *(*branch_new)(er_exec_t *x, const char *label);
  /* Appends b's log to x's, its captures to x's scope, its detail to x's
   * detail when failed is true; frees b. Call from x's thread. */
  void (*branch_join)(er_exec_t *x, er_exec_t *b, bool failed);
  /* Sets a name in the branch's template scope (steals value). */
  void (*set_var)(er_exec_t *x, const char *name, json_t *value);
  /* The step file a `use` step (the step object) calls, or NULL. */
  const struct er_stepfile *(*use_file)(er_exec_t *x, const json_t *step);
  /* A call of a step file (lang/uses.h): runs on x's connections, in a
   * scope of its own holding only the run-wide names (env, run.id,
   * ports, ...); its relative file names are found from dir; label
   * prefixes its steps in the log and in where a failure happened. NULL
   * if memory ran out or calls nest deeper than ER_USE_DEPTH_MAX. */
  er_exec_t *(*call_new)(er_exec_t *x, const char *label, const char *dir);
  /* Ends a call: its log into x's, where it failed and its detail into
   * x's when failed is true; its captures stay inside. Frees c. */
  void (*call_join)(er_exec_t *x, er_exec_t *c, bool failed);
};

/* Outcomes of run(). */
enum {
  ER_STEP_OK = 0,    /* done / expectation holds */
  ER_STEP_FAIL = 1,  /* expectation does not hold (await retries these) */
  ER_STEP_ERROR = 2, /* could not execute (await retries these too until
                        its deadline, since servers may be coming back) */
  ER_STEP_FATAL = 3, /* unusable input discovered at run time: no retry */
};

/* Milliseconds left before the deadline (0 when past). */
int64_t er_exec_left_ms(const er_exec_t *x);

/* For the progress line (no-ops when x->progress is NULL): polls so far
 * and the first line of what the last one saw; messages to produce and
 * acknowledged so far. */
void er_progress_note(er_exec_t *x, int polls, const char *last_seen);
void er_progress_count(er_exec_t *x, long produced, long acked);
/* Append a line to the scenario log ("[+1.234s] ..." prefix added). */
void er_exec_log(er_exec_t *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Modules: run-wide setup an outside system may need (an embedded Kafka
 * broker, pre-flight checks), and per-scenario preparation. All hooks are
 * optional. Errors with code ER_E_ENV stop the run with exit 3.
 * - run_begin: before services start and before the environment's
 *   templates are resolved, so it may put names into t
 *   (kafka.bootstrap); env is the environment file as loaded. Objects it
 *   makes go into shared (which owns them).
 * - env_ready: right after the environment is resolved, before services
 *   start (start what services must reach, e.g. fault proxies whose
 *   upstreams use ${port.X}).
 * - preflight: after services are up, before the first scenario
 *   (topics exist, ...); env is resolved.
 * - scenario_begin: at the start of every scenario (record offsets into
 *   scenario).
 * - scenario_end: when the steps are over, however they ended, before
 *   teardown (heal every fault, so teardown reaches the servers); errors
 *   are logged, they do not fail the scenario.
 * - run_end: after the last scenario, before shared is freed.
 * The runner puts its services (services.h) into shared as "services"
 * (owned by the runner) before preflight, and the scenarios that will run
 * (filtered, not skipped) as "plan", an er_plan_t (owned by the runner),
 * and the run's report folder ("reports/<run-id>", a string) as "run_dir",
 * before run_begin. */
typedef struct er_scenario er_scenario_t; /* scenario.h */
typedef struct er_plan {
  const er_scenario_t *const *v; /* borrowed */
  size_t n;
} er_plan_t;

typedef struct er_module {
  const char *name;
  int (*run_begin)(const json_t *env, er_tmpl_t *t, er_session_t *shared,
                   er_err_t *err);
  int (*env_ready)(const json_t *env, er_session_t *shared, er_err_t *err);
  int (*preflight)(const json_t *env, er_session_t *shared, er_err_t *err);
  int (*scenario_begin)(const json_t *env, er_session_t *shared,
                        er_session_t *scenario, er_err_t *err);
  int (*scenario_end)(const json_t *env, er_session_t *shared,
                      er_session_t *scenario, er_err_t *err);
  void (*run_end)(er_session_t *shared);
} er_module_t;

/* steps/actions.c: the table of run-wide modules. */
const er_module_t *const *er_modules_all(size_t *n);

er_session_t *er_session_new(void);
/* Closes every connection put into s (reverse order) and frees s. */
void er_session_free(er_session_t *s);

/* A string from the environment: env[section][key], or NULL. Borrowed. */
const char *er_exec_env_str(const er_exec_t *x, const char *section,
                            const char *key);
/* A file a step names (lang/fixture.h): found in the folder of the file
 * the step is written in (x->base_dir), then under the fixtures root (the
 * environment's "fixtures", else the nearest fixtures/ folder). Caller
 * frees; NULL with err (ER_E_INPUT) saying where it looked. */
char *er_exec_file(const er_exec_t *x, const char *name, er_err_t *err);
/* The values of a data file (JSON, YAML, JSON Lines: lang/doc.h) a step
 * names, templated in the step's scope (x->tmpl), so each message of a
 * JSON Lines file gets its own ${uuid}. New reference, or NULL with err
 * naming the file (and the line of a JSON Lines file). */
json_t *er_exec_data(er_exec_t *x, const char *name, er_err_t *err);

#endif
