/* pyjson.h: Python-compatible JSON serialisation and the deterministic
 * event id.
 *
 * er_pyjson_dumps() writes what Python's json.dumps(value, sort_keys=True)
 * writes with its defaults: separators ", " and ": ", keys sorted by code
 * point, non-ASCII escaped as \uXXXX (surrogate pairs above U+FFFF),
 * floats as Python's repr (1.0, 1e+16, 1.5e-07), integers as digits.
 * er_event_id() is the lowercase hex SHA-256 of that text (UTF-8 bytes),
 * the id the reference service's idempotency keys are built from.
 */
#ifndef ER_PYJSON_H
#define ER_PYJSON_H

#include <jansson.h>

#include "base/util.h"

/* Returns a heap string (caller frees) or NULL with err set. */
char *er_pyjson_dumps(const json_t *v, er_err_t *err);
/* Python's json.dumps(value, separators=(",", ":"), ensure_ascii=False):
 * compact, keys in their stored order, UTF-8 kept (only '"', '\\' and
 * control characters escaped), floats as Python's repr (0.1, not
 * 0.10000000000000001). Used to interpolate non-string values into text.
 * Heap string (caller frees) or NULL with err set. */
char *er_pyjson_compact(const json_t *v, er_err_t *err);
/* Lowercase hex SHA-256 of len bytes. */
void er_sha256_hex(const void *data, size_t len, char out[65]);
/* SHA-256 of er_pyjson_dumps(v). Returns 0 or -1 with err set. */
int er_event_id(const json_t *v, char out[65], er_err_t *err);

#endif
