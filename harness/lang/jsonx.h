/* jsonx.h: JSON helpers shared by every action: JSON pointers, comparison
 * with matchers, compact rendering for messages.
 *
 * Matchers. Wherever a scenario states an expected value, it may give
 *  - a literal: the actual value must equal it (objects and arrays deeply;
 *    numbers numerically, 1 == 1.0; a numeric string such as a Redis reply
 *    "5" equals the number 5), or
 *  - an operator object, all of whose keys start with '$':
 *      {"$eq": v} {"$ne": v} {"$gt": n} {"$gte": n} {"$lt": n} {"$lte": n}
 *      {"$exists": true|false}   (for pointers/fields that may be missing)
 *      {"$regex": "ERE"}         (POSIX extended, on strings)
 *      {"$contains": v}          (array has an element matching v; string
 *                                 has substring v; object has key v)
 *      {"$len": matcher}         (length of string, array or object)
 *      {"$in": [v, ...]}         (equals one of)
 *      {"$type": "string"|"number"|"integer"|"boolean"|"null"|"array"|"object"}
 *    Several operators in one object must all hold.
 * Borrowed references are marked "borrowed"; otherwise the caller owns.
 */
#ifndef ER_JSONX_H
#define ER_JSONX_H

#include <jansson.h>
#include <stdbool.h>

#include "base/util.h"

/* RFC 6901 JSON pointer lookup; "" is the whole document. Returns a
 * borrowed reference or NULL when the path does not exist. */
json_t *er_json_pointer(const json_t *root, const char *ptr);

/* Writes prefix + "/" + key (key escaped per RFC 6901: ~0 ~1) into out,
 * cut to outsz. */
void er_json_pointer_join(char *out, size_t outsz, const char *prefix,
                          const char *key);

/* Deep equality with numeric tolerance (integer vs real compare by value)
 * and numeric-string leniency described above. */
bool er_json_equal(const json_t *a, const json_t *b);

/* True when expected is an operator object ({"$gte": 3}). */
bool er_json_is_matcher(const json_t *expected);

/* Does actual (may be NULL: missing) satisfy expected (literal or
 * matcher)? On false, appends a one-line reason to why (may be NULL),
 * e.g. "expected >= 3, got 1". */
bool er_json_match(const json_t *actual, const json_t *expected, er_buf_t *why);

/* Validates a matcher's shape (unknown $operators, wrong operand types).
 * Returns 0 or -1 with a message in msg. */
int er_json_matcher_check(const json_t *expected, char *msg, size_t msgsz);

/* Compact one-line rendering for messages, cut to max bytes with "...".
 * Caller frees. Never NULL unless memory ran out. */
char *er_json_brief(const json_t *v, size_t max);

/* The duration under key in an object ("250ms", "5s"), in milliseconds,
 * or dflt when the key is absent or not a duration. */
int64_t er_json_duration(const json_t *obj, const char *key, int64_t dflt);

/* "an object", "an array", "a string", "a number", "a boolean", "null":
 * for messages. */
const char *er_json_type_noun(const json_t *v);

/* Parses a reply string as JSON if it looks like JSON, else returns a JSON
 * string. New reference. */
json_t *er_json_from_text(const char *s, size_t len);

#endif
