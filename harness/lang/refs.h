/* refs.h: the ${...} reference pass of validation, shared by scenarios
 * and step files: every name a template uses must be a builtin, a var or
 * input defined before, or the capture of an earlier step; a name used
 * too early says so ("used before the step that captures it").
 *
 * Steps are checked in execution order: the nested steps of a group see
 * the captures of the nested steps before them; a name an action binds
 * for its nested steps (ER_T_BIND: foreach's "as") is defined for them; a
 * `use` step defines the outputs of the step file it calls. Text that is
 * never sent anywhere is not templated, so not checked: a step's "name",
 * the path of a `use`.
 */
#ifndef ER_REFS_H
#define ER_REFS_H

#include <jansson.h>
#include <stdbool.h>

#include "lang/diags.h"

/* A list of names (copies: a step's document may be gone before its
 * names are, scenario.c). Zero-initialise; er_names_free. */
typedef struct er_names {
  char **v;
  size_t n, alloc;
} er_names_t;

int er_names_add(er_names_t *ns, const char *s);
bool er_names_has(const er_names_t *ns, const char *s);
void er_names_free(er_names_t *ns);

/* The outputs object of the step file a `use` step (the step object)
 * calls, or NULL (unknown). */
typedef const json_t *(*er_use_outputs_fn)(void *ud, const json_t *step);

typedef struct er_refscan {
  const er_diag_src_t *c;
  er_names_t *defined;     /* names defined so far */
  const er_names_t *later; /* names captured by later steps (messages) */
  const json_t *vars;      /* the file's vars object, or NULL (messages) */
  er_use_outputs_fn use_outputs;
  void *ud;
} er_refscan_t;

/* One string (a value, or an object key when key is true) at ptr. */
void er_refs_string(er_refscan_t *rs, const char *s, const char *ptr, bool key);
/* Every string under v (values and keys). */
void er_refs_value(er_refscan_t *rs, const json_t *v, const char *ptr);
/* One step at ptr, in execution order (nested steps see the captures of
 * the nested steps before them). Does not add its own captures. */
void er_refs_step(er_refscan_t *rs, const json_t *step, const char *ptr);
/* The names step captures (its action's "capture", the wrapped check's,
 * nested steps', a `use` step's outputs) added to out. */
void er_refs_captures(const er_refscan_t *rs, const json_t *step,
                      er_names_t *out);
/* A list of steps at ptr: each checked, then its captures defined. */
void er_refs_steps(er_refscan_t *rs, const json_t *steps, const char *ptr);

/* Vars whose expansion would pass the bytes a template may make (a typed
 * var that doubles the one before it, 22 times): an error at the first
 * one's name (vars at ptr), found without expanding anything. */
void er_refs_vars_size(const er_diag_src_t *c, const json_t *vars,
                       const char *ptr);

#endif
