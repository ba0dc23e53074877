/* runner.h: executes plans. The runner knows scenarios, steps, deadlines,
 * setup/steps/teardown and reports; it knows no wire protocol (actions and
 * modules do that, through action.h).
 *
 * Lifecycle of `eventrig run`:
 *  1. load and validate every scenario file and the environment file:
 *     any error -> exit 2 before anything is started;
 *  2. modules' run_begin (e.g. the embedded Kafka broker), then the
 *     environment's templates are resolved;
 *  3. services start and become ready (failure -> exit 3);
 *  4. modules' preflight (failure -> exit 3);
 *  5. each scenario: vars, setup, steps (stop at the first failure),
 *     teardown (always); the JUnit file is rewritten atomically after
 *     every scenario;
 *  6. modules' run_end, services stopped, final report.
 * SIGINT/SIGTERM (er_interrupted) stop the run after the current step:
 * teardown still runs, services are stopped and the report of what
 * finished is written; the exit code is 128 + signal.
 */
#ifndef ER_RUNNER_H
#define ER_RUNNER_H

#include <stdbool.h>
#include <stdio.h>

/* Exit code of a run whose --filter selects no scenario (as pytest's 5,
 * "no tests collected"): a typo in a CI filter is not a green build. */
#define ER_EXIT_NONE_SELECTED 5

typedef struct er_run_opts {
  const char *env_path;   /* NULL: empty environment (main.c looks for a
                             default one before) */
  const char *junit_path; /* NULL: <report_dir>/junit.xml */
  const char *report_dir; /* NULL: "reports" */
  const char *filter;     /* NULL: all */
  char *const *paths;     /* files or folders of scenarios */
  size_t npaths;
  bool fail_fast;           /* stop after the first failing scenario */
  bool verbose;             /* print every scenario's log */
  bool dry_run;             /* run: print the resolved plan, touch nothing */
  int color;                /* er_color_t (report.h): auto, always, never */
  const char *shard;        /* "K/N" or NULL (select.h) */
  const char *durations;    /* JUnit report balancing the shards, or NULL */
  const char *rerun_failed; /* JUnit report whose failures to run, or NULL */
  const char *json_path;    /* --json FILE, or NULL */
  int jobs;                 /* -j N: scenarios at once (<= 1: one) */
  const char *html_path;    /* --html FILE, or NULL */
  FILE *out;                /* console (stdout) */
  FILE *err;                /* diagnostics (stderr) */
} er_run_opts_t;

/* Each returns the process exit code (0, 1, 2, 3, 130, 143). */
int er_run(const er_run_opts_t *o);
int er_validate(const er_run_opts_t *o);
int er_list(const er_run_opts_t *o);

/* dryrun.c: `eventrig run --dry-run`: loads the environment (starting
 * nothing, contacting nothing) and prints each scenario of plan (an
 * er_plan_t, action.h) with its steps and, for every step the interlock
 * guards, its target and what the environment says of it. t holds the run-wide
 * names (run.id); borrowed. Returns the exit code (0, or 2 on a bad
 * environment). */
struct er_plan;
struct er_tmpl;
int er_dry_run(const er_run_opts_t *o, const struct er_plan *plan,
               struct er_tmpl *t);

#endif
