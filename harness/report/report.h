/* report.h: results of a run and how they are written.
 *
 * The runner fills er_result_t per scenario; report_junit.c writes JUnit
 * XML (schema: junit-10-fileline.xsd, Jenkins' junit-10.xsd plus file and
 * line on each testcase, where CI annotations land), atomically after every
 * scenario; report_console.c prints one line per scenario, and for a
 * failure the step, what was expected and what was last seen.
 */
#ifndef ER_REPORT_H
#define ER_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/util.h"

typedef enum {
  ER_RES_PASS,
  ER_RES_FAIL,  /* an expectation did not hold, or a step timed out */
  ER_RES_ERROR, /* the scenario could not be executed */
  ER_RES_SKIP,  /* filtered out or marked skip */
} er_res_status_t;

/* One top-level step as it ran, for the timeline of --html / --json. */
typedef struct er_step_rec {
  char *phase;      /* "setup", "step", "teardown" (owned) */
  char *name;       /* owned */
  int index;        /* 1-based in its phase */
  int line;         /* in the scenario file; 0 when unknown */
  int64_t start_ms; /* since the scenario started */
  int64_t time_ms;  /* how long it took */
  int status;       /* 0 ok, 1 failed, 2 error, 3 fatal (exec.h ER_STEP_*) */
  int polls;        /* await / hold: how many polls */
  char *last_seen;  /* first line of what the last poll saw, or NULL */
} er_step_rec_t;

/* Frees the strings of n records and the array v. */
void er_step_recs_free(er_step_rec_t *v, size_t n);

typedef struct er_result {
  char *classname; /* from the scenario's folder */
  char *name;
  char *file;    /* as given on the command line */
  char *relfile; /* for the testcase's file attribute (scenario.h) */
  int line;      /* the failing step's line; 1 when none failed */
  er_res_status_t status;
  int64_t duration_ms;
  char *message;        /* one line: "step 'x': expected ..., last seen ..." */
  char *failed_step;    /* NULL when passed */
  char *detail;         /* multi-line failure text (expected / last seen) */
  char *log;            /* scenario log, for system-out */
  er_step_rec_t *steps; /* the top-level steps as they ran (owned) */
  size_t nsteps;
} er_result_t;

typedef struct er_results {
  er_result_t *v;
  size_t n, alloc;
  char suite_name[128];
  char timestamp[40]; /* RFC 3339 start of the run */
  int64_t started_ms; /* er_now_ms() at the start: the suite's time is
                         the wall time since (0: sum of the scenarios) */
} er_results_t;

/* Appends a copy of r (strings duplicated). */
int er_results_add(er_results_t *rs, const er_result_t *r);
void er_results_free(er_results_t *rs);

/* Writes the whole report to path atomically (temp + rename).
 * Text is escaped for XML 1.0: forbidden characters and invalid UTF-8
 * are replaced, "]]>" cannot break out. */
int er_junit_write(const er_results_t *rs, const char *path, er_err_t *err);
/* The XML text itself (caller frees), for tests. */
char *er_junit_render(const er_results_t *rs);

/* --json FILE and --html FILE (report_files.c: the JSON shape is at the
 * top of that file and in the README), written atomically. */
int er_json_report_write(const er_results_t *rs, const char *path,
                         er_err_t *err);
int er_html_report_write(const er_results_t *rs, const char *path,
                         er_err_t *err);

typedef struct er_console {
  FILE *out;
  bool color; /* only on a terminal, never with NO_COLOR */
  bool verbose;
} er_console_t;

/* Colour modes of --color. */
typedef enum { ER_COLOR_AUTO = 0, ER_COLOR_ALWAYS, ER_COLOR_NEVER } er_color_t;

/* Whether to colour out: ALWAYS yes, NEVER no; AUTO: FORCE_COLOR set and
 * not "0" (force-color.org) yes, else NO_COLOR set and not empty
 * (no-color.org) no, else only on a terminal whose TERM is not "dumb". */
bool er_color_decide(er_color_t mode, FILE *out);

/* color = er_color_decide(ER_COLOR_AUTO, out). verbose is false; set it
 * to get a line when a scenario starts. */
void er_console_init(er_console_t *c, FILE *out);
void er_console_scenario_start(er_console_t *c, const char *name);
void er_console_result(er_console_t *c, const er_result_t *r);
void er_console_summary(er_console_t *c, const er_results_t *rs,
                        int64_t wall_ms);

#endif
