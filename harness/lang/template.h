/* template.h: ${...} expansion.
 *
 * Expressions:
 *   ${name}            a scenario var or a capture of an earlier step
 *   ${a.b.0}           descend into objects (and arrays by index)
 *   ${env.NAME}        the environment file's vars, then the process
 *                      environment; ${env.NAME:-default} gives a default
 *   ${run.id}          unique per run (set by the runner)
 *   ${uuid}            a fresh random UUID at each expansion
 *   ${now}             current UTC time, RFC 3339 with milliseconds
 *   ${event_id(name)}  lowercase hex SHA-256 of the Python json.dumps
 *                      (sort_keys=True) of the value of name (pyjson.h)
 *   ${sha256(name)}    hex SHA-256 of a string value
 *   ${urlencode(name)} a string (number, boolean) percent-encoded for a URL
 *                      path segment or query value (RFC 3986 unreserved
 *                      characters kept: A-Z a-z 0-9 - . _ ~)
 *   $${                a literal "${" (read left to right: "$$${x}" is
 *                      "$" followed by the literal "${x}")
 *   ${name:-text}      text when name is undefined (and for env vars
 *                      also when set but empty, as in the shell); the
 *                      default is literal text up to the first '}'
 * Other namespaces (kafka.bootstrap, port.NAME, proxy.NAME.port, ...) are
 * plain values put into the context by whoever owns them.
 *
 * A string that is exactly one ${...} expression expands to the value with
 * its JSON type (a captured array stays an array); otherwise values are
 * interpolated as text (strings raw, others as compact JSON with floats as
 * Python's repr: 0.1, not 0.10000000000000001). Object keys always expand
 * to text. An undefined name is an error (ER_E_INPUT), never "".
 */
#ifndef ER_TEMPLATE_H
#define ER_TEMPLATE_H

#include <jansson.h>

#include "base/util.h"

typedef struct er_tmpl er_tmpl_t;

er_tmpl_t *er_tmpl_new(void);
void er_tmpl_free(er_tmpl_t *t);
/* A copy of t's names (deep) sharing nothing with it; the env-vars object
 * reference is copied as is. For a scenario's own scope on top of the
 * run-wide names. NULL if memory ran out. */
er_tmpl_t *er_tmpl_clone(const er_tmpl_t *t);

/* Sets a name (dotted names create nested objects: "run.id"). Steals the
 * reference to value (also on failure). Returns 0, or -1 for an empty
 * segment, a parent that is not an object, or a reserved root (uuid, now,
 * env: computed, never stored). */
int er_tmpl_set(er_tmpl_t *t, const char *name, json_t *value);
/* Value at a dotted name ("cap.slots.0": array by index). Borrowed
 * reference or NULL. */
json_t *er_tmpl_get(er_tmpl_t *t, const char *name);
/* Values of the environment file's vars, consulted by ${env.NAME} before
 * the process environment. Borrowed reference kept (caller keeps it alive
 * as long as t). */
void er_tmpl_set_env_vars(er_tmpl_t *t, const json_t *vars);

/* Expand one string. New reference, or NULL with err set
 * (ER_E_INPUT: unknown name, bad syntax). */
json_t *er_tmpl_expand_str(er_tmpl_t *t, const char *s, er_err_t *err);
/* Deep copy of v with every string (values and object keys) expanded.
 * New reference, or NULL with err set; err names the JSON pointer:
 * "at /steps/0/url: ${batc}: unknown name 'batc' (did you mean 'batch'?)". */
json_t *er_tmpl_expand(er_tmpl_t *t, const json_t *v, er_err_t *err);

/* Static scan, for validation without values: calls cb for each
 * expression's root name ("batch" for ${batch.x}; "env" for ${env.X};
 * "event_id" arguments are reported as names too) with its byte offset
 * in s. Returns 0, or -1 on a syntax error (unterminated ${, empty name)
 * with a message and the byte offset in *bad_off. */
typedef void (*er_tmpl_ref_cb)(void *ud, const char *root, size_t off);
int er_tmpl_scan(const char *s, er_tmpl_ref_cb cb, void *ud, char *msg,
                 size_t msgsz, size_t *bad_off);

/* True when name is one name segment: letters, digits, '_' and '-' (a
 * var, an input, an output). */
int er_tmpl_name_ok(const char *name);

/* Names that are always defined (uuid, now, run, env, ...). */
int er_tmpl_is_builtin(const char *root);

#endif
