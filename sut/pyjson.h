/* pyjson.h: Python-compatible JSON serialisation and the event hash.
 *
 * pyjson_dumps() writes exactly what Python's json.dumps(value,
 * sort_keys=True) writes with its other defaults: separators ", " and
 * ": ", object keys sorted by code point, non-ASCII and control characters
 * escaped as \uXXXX (lowercase hex, surrogate pairs above U+FFFF), integers
 * as digits, floats as Python's repr (1.0, 1e+16, 1.5e-07, -0.0).
 *
 * pyjson_hash() is the contract's deterministic event id: the lowercase hex
 * SHA-256 of that text.
 */
#ifndef SUT_PYJSON_H
#define SUT_PYJSON_H

#include <jansson.h>

#include "sut.h"

/* Appends the serialisation of v (borrowed) to out. Returns 0 or -1 (out of
 * memory, or out's cap reached). */
int pyjson_dumps(const json_t *v, sbuf_t *out);

/* Lowercase hex SHA-256 of pyjson_dumps(v). Returns 0 or -1. */
int pyjson_hash(const json_t *v, char out[65]);

#endif
