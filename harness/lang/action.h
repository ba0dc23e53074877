/* action.h: what a step action is, as the language knows it.
 *
 * The loader and the runner know actions only through the table
 * (steps/actions.c): the key specs tell the loader what a step may
 * contain, and run() executes one step with its arguments already
 * expanded from templates (what it runs with, er_exec_t, is the runner's:
 * run/exec.h). Adding an outside system (Kafka, ...) is one new
 * steps/act_*.c file plus one line in steps/actions.c; neither the
 * loader nor the runner changes.
 *
 * Adapters (adapters/redis.c, pg.c, http.c, kafka.c) know nothing of
 * scenarios; steps/act_*.c files translate a step's JSON arguments into
 * adapter calls and check expectations with lang/jsonx.h matchers.
 */
#ifndef ER_ACTION_H
#define ER_ACTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/util.h"

/* ---- key specs (used by the loader for validation) ---------------------- */

enum {
  ER_T_STRING = 1 << 0,
  ER_T_INT = 1 << 1,
  ER_T_REAL = 1 << 2,
  ER_T_NUMBER = (1 << 1) | (1 << 2),
  ER_T_BOOL = 1 << 3,
  ER_T_NULL = 1 << 4,
  ER_T_OBJECT = 1 << 5,
  ER_T_ARRAY = 1 << 6,
  ER_T_ANY = 0x7f,
  /* flags on top of the types */
  ER_T_DURATION = 1 << 8, /* a string that must parse as a duration */
  ER_T_MATCHER = 1 << 9,  /* an expected value: literal or {"$op": ..} */
  ER_T_CHECK = 1 << 10,   /* an object holding exactly one check action */
  ER_T_STEPS = 1 << 11,   /* an array of steps (groups: parallel, repeat) */
  /* a file the step reads (fixture.h finds it: the naming file's folder,
   * then the fixtures root); the loader checks that it exists */
  ER_T_FILE = 1 << 12,
  /* the same for a data file (JSON, YAML or JSON Lines, doc.h), whose
   * values are templated when the step runs; the loader parses it */
  ER_T_DATA = 1 << 13,
  ER_T_COND = 1 << 14, /* a condition (cond.h) */
  /* a name the action binds for its nested steps (foreach's "as") */
  ER_T_BIND = 1 << 15,
};

typedef struct er_keyspec {
  const char *name;
  unsigned types; /* ER_T_* mask plus flags */
  bool required;
  const struct er_keyspec *sub;  /* for objects with fixed keys; NULL-name
                                    terminated; NULL = free-form object */
  const struct er_keyspec *each; /* for arrays/free-form objects whose
                                    elements are objects with fixed keys */
} er_keyspec_t;

/* Semantic problems found by an action's own validate(): path is a JSON
 * pointer relative to the action's argument object ("" = the object
 * itself, "/expect/status"). The loader maps it to file:line:col. */
typedef struct er_diag er_diag_t;
void er_diag_error(er_diag_t *d, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void er_diag_warn(er_diag_t *d, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A malformed matcher m at path (lang/jsonx.h): reported at the
 * offending operator inside it, with "did you mean". Nothing when m is
 * NULL or fine. */
void er_diag_matcher(er_diag_t *d, const char *path, const json_t *m);
/* A selector sel (a key or value at path) that is neither a JSON pointer
 * nor a valid JSONPath (lang/jsonpath.h): reported at the key. */
void er_diag_select(er_diag_t *d, const char *path, const char *sel);
/* A file named at path (a value the key specs cannot reach, e.g. inside
 * a free-form object) that the step reads: looked for as ER_T_FILE keys
 * are (lang/fixture.h), a problem reported there. */
void er_diag_file(er_diag_t *d, const char *path, const char *name);

/* ---- execution (run/exec.h) --------------------------------------------- */

typedef struct er_exec er_exec_t; /* what run() gets: run/exec.h */

typedef struct er_action {
  const char *name;         /* key in the step object: "redis.clean" */
  const er_keyspec_t *keys; /* allowed keys of the argument object */
  bool check;               /* usable inside await / hold */
  bool warn_on_use;         /* validate warns (sleep) */
  bool wraps_check;         /* besides its own keys, the argument object
                               holds exactly one check action (await,
                               hold): {"within": "5s", "redis": {...}} */
  bool raw_args;            /* run() gets the arguments untemplated
                               (groups template their nested steps one
                               by one, as they run) */
  bool whole_step;          /* run() gets the step object itself,
                               untemplated, and the action's value is
                               not an object of arguments: `use`, whose
                               value is a step file's path and whose
                               inputs are the step's "with" */
  /* optional extra validation; args are the raw (untemplated) JSON */
  void (*validate)(const json_t *args, er_diag_t *d);
  /* run once; args are templated. Returns ER_STEP_* (run/exec.h). */
  int (*run)(er_exec_t *x, const json_t *args);
} er_action_t;

/* steps/actions.c: the table. */
const er_action_t *er_action_find(const char *name);
const er_action_t *const *er_actions_all(size_t *n);

#endif
