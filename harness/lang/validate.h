/* validate.h: checking a parsed file against key specs (action.h): the
 * structural half of validation, shared by the scenario loader and the
 * environment loader.
 *
 * It reports unknown keys (with "did you mean"), wrong types, bad
 * durations, malformed matchers, missing required keys, and, for steps
 * (ER_T_STEPS, ER_T_CHECK), unknown or doubled actions and each action's
 * own validate(). Every problem goes to the document's diags.h list with
 * its position; validation never stops at the first.
 */
#ifndef ER_VALIDATE_H
#define ER_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

#include "lang/action.h"
#include "lang/diags.h"

/* Checks obj (at JSON pointer ptr of the document) against spec. what
 * names the object in messages (NULL at the top of a file). */
void er_validate_obj(const er_diag_src_t *c, const json_t *obj, const char *ptr,
                     const er_keyspec_t *spec, const char *what);

/* Checks one step (at JSON pointer ptr): one known action with its keys,
 * the keys every step may have. */
void er_validate_step(const er_diag_src_t *c, const json_t *step,
                      const char *ptr);

/* Validates a whole document doc (parsed from text, read from file)
 * against spec: it must be an object. Builds the position map from text
 * (NULL: no positions). Problems of the file are sorted by position. */
void er_validate_keys(const char *file, const char *text, const json_t *doc,
                      const er_keyspec_t *spec, er_diags_t *out);

/* The same with the document's position map (a YAML file's, doc.h). */
void er_validate_keys_pos(const char *file, const er_jpos_t *pos,
                          const json_t *doc, const er_keyspec_t *spec,
                          er_diags_t *out);

/* The spec of key k, or NULL. */
const er_keyspec_t *er_keyspec_find(const er_keyspec_t *spec, const char *k);
/* " (did you mean 'x'?)" for the candidate closest to word, or "", into
 * out. */
void er_dym_text(const char *word, const char *const *cands, size_t n,
                 char *out, size_t outsz);
/* "a string", "an integer", "a number", ...: for messages. */
const char *er_validate_type_noun(const json_t *v);

#endif
