/* cond.h: conditions: a step's "if", a scenario's {"skip": {"if": ...}}.
 *
 *   "${flag}"                      the value is true: anything but false,
 *                                  null, 0, "", "0", "false" (any case),
 *                                  an empty array or object
 *   true / false                   always / never
 *   {"value": V, "is": M}          V (templated) matches M (a literal or a
 *                                  matcher: jsonx.h; templated too)
 *   {"not": C}                     C does not hold
 *   {"all": [C, ...]}              every C holds (evaluated in order, the
 *                                  first that does not hold ends it)
 *   {"any": [C, ...]}              some C holds
 * Conditions are evaluated with the scope of the step that carries them
 * (vars, captures of the steps before); a name that is not defined is an
 * error, never false (use ${name:-} for "maybe unset").
 */
#ifndef ER_COND_H
#define ER_COND_H

#include <jansson.h>
#include <stdbool.h>

#include "base/util.h"
#include "lang/diags.h"
#include "lang/template.h"

/* The shape of cond at JSON pointer ptr of c's document (its ${...}
 * references are checked with the step's other values, refs.h). */
void er_cond_check(const er_diag_src_t *c, const json_t *cond, const char *ptr);

/* Evaluates cond in t's scope: 0 with *holds, or -1 with err (a template
 * error, a malformed condition). why (may be NULL) gets what decided it,
 * e.g. "${mode} is \"embedded\", not \"real\"". */
int er_cond_eval(er_tmpl_t *t, const json_t *cond, bool *holds, er_buf_t *why,
                 er_err_t *err);

/* The truth of a value, as "${flag}" tests it. */
bool er_cond_truthy(const json_t *v);

#endif
