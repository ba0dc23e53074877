/* scenario.h: loading and validating scenario files into plans.
 *
 * A scenario file is one JSON (or YAML) object:
 *   name (string, required), description (string), tags ([string]),
 *   vars ({name: any}), timeout (duration, default 60s),
 *   skip (string reason, true, or {"if": <condition>, "reason": "..."}
 *   decided when the run starts), exclusive (bool: run alone under -j;
 *   inferred from the steps when absent, run/schedule.h),
 *   setup / steps / teardown ([step]),
 *   cases ([{name, vars, tags, skip}]: a table, one scenario per case).
 * A step is an object with optional common keys "name" (string),
 * "timeout" (duration), "if" (a condition, cond.h: the step runs only
 * when it holds) and "with" (the inputs of a `use`), and exactly one
 * action key (action.h table).
 *
 * Validation reports every problem of a file (and er_diags_t, diags.h,
 * collects them across files) with file:line:col: the structure against
 * the key specs (validate.h), then the ${...} references.
 */
#ifndef ER_SCENARIO_H
#define ER_SCENARIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/util.h"
#include "lang/action.h"
#include "lang/diags.h"
#include "lang/uses.h"

typedef struct er_step {
  char *name; /* "name" key, or "<action> #<n>" */
  const er_action_t *action;
  json_t *args;       /* borrowed from the scenario's doc */
  const json_t *step; /* the step object itself (borrowed) */
  int64_t timeout_ms; /* 0 = bounded by the scenario only */
  char *path;         /* JSON pointer in the file: "/steps/2" */
  int line, col;
} er_step_t;

typedef struct er_steplist {
  er_step_t *v;
  size_t n;
} er_steplist_t;

typedef struct er_scenario {
  char *file;            /* as given */
  char *dir;             /* its folder */
  char *relfile;         /* relative to the repository root (or the current
                            directory): "scenarios/happy-path/three.json" */
  char *classname;       /* relfile's folder, dots for slashes:
                            "scenarios.happy-path" */
  char *name;            /* "name", or "name [case]" for a case of a table */
  char *case_name;       /* the case's name, or NULL */
  char *skip;            /* NULL, or the reason it is skipped */
  const json_t *skip_if; /* {"skip": {"if": C}}: decided when the run starts
                            with the run's names (cond.h); NULL: none */
  char *skip_reason;     /* the reason given with skip_if */
  json_t *doc;           /* owned (shared by the cases of one file) */
  json_t *own;           /* owned: holds tags and vars */
  json_t *tags;          /* array (maybe empty): the file's, then the case's */
  json_t *vars;          /* object (maybe empty): the case's vars, then the
                            file's it does not set */
  int64_t timeout_ms;
  int exclusive; /* "exclusive": 1 true, 0 false, -1 not given */
  er_steplist_t setup, steps, teardown;
  er_uses_t *uses; /* the step files its `use` steps call (uses.h) */
} er_scenario_t;

/* What loading needs from outside the file. */
/* The size from which `eventrig validate` checks a JSON file a step at a
 * time (er_load_opts_t.lean_bytes). */
#define ER_SCENARIO_LEAN_BYTES ((size_t)1 << 20)

typedef struct er_load_opts {
  const char *fixtures; /* the environment's fixtures root (absolute), or
                           NULL: the nearest fixtures/ folder (fixture.h) */
  size_t lean_bytes;    /* 0, or: a JSON file of at least this many bytes
                           is checked a step at a time, without keeping its
                           steps (`eventrig validate`: the plans it builds
                           then have no steps; see scenario.c) */
} er_load_opts_t;

/* Loads and validates one file. All problems go to diags. Returns NULL
 * when the file has errors (warnings alone do not stop it). o may be
 * NULL. */
er_scenario_t *er_scenario_load_opts(const char *path, const er_load_opts_t *o,
                                     er_diags_t *diags);
er_scenario_t *er_scenario_load(const char *path, er_diags_t *diags);
/* The same for every scenario of the file: one, or one for each case of
 * its table ("cases"), in order. Returns 0 with *out (caller frees each
 * with er_scenario_free, and the array), or -1 when the file has errors.
 * er_scenario_load(_opts) gives the first (the file's first case). A step
 * file (NAME.step.json, .yaml: uses.h) named as a path is checked on its
 * own and gives no scenario (0 with *nout = 0, or -1). */
int er_scenario_load_all(const char *path, const er_load_opts_t *o,
                         er_diags_t *diags, er_scenario_t ***out, size_t *nout);
void er_scenario_free(er_scenario_t *s);

/* Expands PATH arguments (files, or folders searched recursively for
 * *.json, *.yaml and *.yml, sorted; environment files *.env.*, step
 * files *.step.* and folders named fixtures are not scenarios) into a
 * list of files. Caller frees
 * each string and the array. */
int er_scenario_collect(char *const *paths, size_t n, char ***files_out,
                        size_t *nfiles_out, er_err_t *err);

/* The step file a `use` step (the step object, in the scenario or in a
 * step file it uses) calls, or NULL. */
const er_stepfile_t *er_scenario_use(const er_scenario_t *s,
                                     const json_t *step);

/* Where node (a value of the scenario's document, or of a step file it
 * uses) is written: *file (borrowed) and line:col. Reads the file again,
 * so meant for failures. Returns 0, or -1 when node is not found. */
int er_scenario_locate(const er_scenario_t *s, const json_t *node,
                       const char **file, int *line, int *col);

/* --filter EXPR: a comma-separated list of terms, any of which may match;
 * a term is "tag:NAME", "name:SUBSTRING", "case:NAME" (a case of a table,
 * its whole name, any case), "!term" to exclude, or a bare substring of
 * the name (with the case's: "name [case]") or file. */
bool er_scenario_matches(const er_scenario_t *s, const char *filter);

#endif
