/* uses.h: step files (reusable steps) and the `use` steps that call them.
 *
 * A step file (NAME.step.json, .step.yaml; never collected as a
 * scenario) holds steps written once and used from many scenarios:
 *   {"description": "...",
 *    "inputs": {"count": {"type": "integer"},
 *               "prefix": {"type": "string", "default": "b"}},
 *    "vars": {"batch": "${prefix}-${run.id}-${uuid}"},
 *    "steps": [...],
 *    "outputs": {"batch": "${batch}", "slots": "${slots}"}}
 * A step calls it with {"use": "steps/x.step.json", "with": {"count": 3}}
 * and gets its outputs as captures. The steps run in a scope of their own:
 * the run-wide names (env, run.id, ports, ...), the inputs, the file's
 * vars, their own captures; nothing of the caller's but what "with"
 * passes in, nothing back but the outputs.
 *
 * Loading checks, before anything runs: the file is found (fixture.h:
 * beside the file naming it, then the fixtures root) and valid (every
 * problem at its own file:line:col, with where it is used); a call's
 * inputs are declared ones (did you mean), every input without a default
 * is given, literal values have the input's type; calls nest at most
 * ER_USE_DEPTH_MAX files deep and never in a cycle.
 */
#ifndef ER_USES_H
#define ER_USES_H

#include <jansson.h>
#include <stdbool.h>

#include "lang/diags.h"

#define ER_USE_DEPTH_MAX 8

typedef struct er_stepfile {
  char *file; /* as found (relative to the current folder when inside it) */
  char *dir;  /* its folder */
  char *real; /* the real path: the file's identity */
  json_t *doc;
  /* borrowed from doc; NULL when absent */
  const json_t *inputs, *vars, *steps, *outputs;
} er_stepfile_t;

/* The step files of one scenario and the calls to each. Shared by the
 * scenarios of one file (cases): reference counted. */
typedef struct er_uses er_uses_t;

/* Whether v has the input type t ("string", "integer", "number",
 * "boolean", "array", "object", "any"; NULL: any). An integer beyond 64
 * bits (base/jsonbig.h) is an integer and a number, not a string. */
bool er_uses_type_fits(const char *t, const json_t *v);

er_uses_t *er_uses_new(void);
er_uses_t *er_uses_ref(er_uses_t *u);
void er_uses_free(er_uses_t *u);

/* Where a file's `use` steps are called from: the chain of callers, for
 * messages and cycles. */
typedef struct er_use_site {
  const char *file; /* the calling file */
  const char *real; /* its real path */
  int line, col;    /* the `use` step in it (0 for the scenario itself) */
  const struct er_use_site *up;
} er_use_site_t;

/* Finds every `use` step in steps (an array at JSON pointer ptr of the
 * file c validates, nested steps too), loads and checks the step files
 * they call (and the ones those call) into u, and checks each call.
 * dir is the folder of c's file; fixtures the environment's root or
 * NULL; at is the calling file itself (at->up its callers). */
void er_uses_load(er_uses_t *u, const er_diag_src_t *c, const json_t *steps,
                  const char *ptr, const char *dir, const char *fixtures,
                  const er_use_site_t *at);

/* The same for one step at JSON pointer here (and the steps nested in
 * it). */
void er_uses_load_step(er_uses_t *u, const er_diag_src_t *c, const json_t *step,
                       const char *here, const char *dir, const char *fixtures,
                       const er_use_site_t *at);

/* How many calls u has registered: a step that added one is known to the
 * table by its node (er_uses_find), which must then stay alive. */
size_t er_uses_calls(const er_uses_t *u);

/* Checks the step file at path on its own (eventrig validate x.step.json):
 * every problem to diags. Returns 0, or -1 when it has errors. */
int er_uses_check_file(const char *path, const char *fixtures,
                       er_diags_t *diags);

/* The step file a `use` step (the step object) calls, or NULL. */
const er_stepfile_t *er_uses_find(const er_uses_t *u, const json_t *step);

/* er_use_outputs_fn (refs.h) for ud an er_uses_t. */
const json_t *er_uses_outputs(void *ud, const json_t *step);

/* The step file whose document holds node, and node's JSON pointer in it
 * (caller frees *ptr). NULL when no step file holds it. */
const er_stepfile_t *er_uses_holding(const er_uses_t *u, const json_t *node,
                                     char **ptr);

/* The JSON pointer of node inside root (caller frees), or NULL. */
char *er_json_path_of(const json_t *root, const json_t *node);

#endif
