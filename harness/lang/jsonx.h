/* jsonx.h: JSON helpers shared by every action: JSON pointers, comparison
 * with matchers, compact rendering for messages.
 *
 * Matchers. Wherever a scenario states an expected value, it may give
 *  - a literal: the actual value must equal it (objects and arrays deeply;
 *    numbers numerically and exactly, 1 == 1.0, integers beyond 64 bits
 *    as decimal text (base/jsonbig.h); a numeric string such as a Redis
 *    reply "5" equals the number 5), or
 *  - an operator object, all of whose keys start with '$':
 *      {"$eq": v} {"$ne": v} {"$gt": n} {"$gte": n} {"$lt": n} {"$lte": n}
 *      {"$exists": true|false}   (for pointers/fields that may be missing)
 *      {"$regex": "ERE"}         (POSIX extended, on strings), with
 *        "$flags": "i" (ignore case) and/or "m" (^ $ at line ends)
 *      {"$contains": v}          (array has an element matching v; string
 *                                 has substring v; object has key v)
 *      {"$len": matcher}         (length of string, array or object)
 *      {"$in": [v, ...]} {"$nin": [v, ...]}  (matches one of / none of)
 *      {"$type": "string"|"number"|"integer"|"boolean"|"null"|"array"|"object"}
 *      {"$set": [v, ...]}        (these elements in any order)
 *      {"$subset": {..}|[..]}    (at least these keys / elements, deeply:
 *                                 nested objects and arrays lenient too)
 *      {"$not": m} {"$and": [m, ...]} {"$or": [m, ...]}
 *      {"$count": m} {"$each": m} {"$all": m} {"$any": m} {"$nth": [i, m]}
 *                                (on a list: a JSONPath's values, or an
 *                                 array; $each/$all fail on none)
 *      {"$isoDate": true}        (an RFC 3339 date-time or date)
 *      {"$before": "now+5m"} {"$after": "2024-05-01T00:00:00Z"}
 *      {"$uuid": true | 4}       (8-4-4-4-12 hex; a version digit)
 *    Several operators in one object must all hold; several of one kind
 *    go in {"$and": [...]}.
 * A mismatch below the top names where: "at /items/1/tag: expected "b",
 * got "c"".
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

/* er_json_match for a value found at JSON pointer where: a mismatch below
 * it is named by its full pointer ("at /items/1/tag: ..."). */
bool er_json_match_at(const json_t *actual, const json_t *expected,
                      const char *where, er_buf_t *why);

/* Matches the values a JSONPath selected: nodes (an array) with their
 * JSON pointers paths (array of strings, may be NULL). The list operators
 * ($count, $each/$all, $any, $nth) see nodes; everything else sees value
 * (er_sel_value: NULL for none, the value for one, nodes for several). */
bool er_json_match_list(const json_t *value, const json_t *nodes,
                        const json_t *paths, const json_t *expected,
                        er_buf_t *why);

/* Validates a matcher's shape (unknown $operators with "did you mean",
 * wrong operand types), literals with nested matchers included.
 * Returns 0 or -1 with a message in msg. */
int er_json_matcher_check(const json_t *expected, char *msg, size_t msgsz);
/* The same; on a problem, at gets the JSON pointer of the offending key
 * inside expected ("/$and/1/$regex"; "" for expected itself). */
int er_json_matcher_check_at(const json_t *expected, char *msg, size_t msgsz,
                             char *at, size_t atsz);

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
