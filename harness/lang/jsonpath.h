/* jsonpath.h: JSONPath (RFC 9535) queries, next to JSON pointers.
 *
 * A query starts with "$" (the root) and is a list of segments:
 *   .name  ['name']  ["name"]        a member (quoted names may hold any
 *                                    character, with JSON-like escapes)
 *   .*  [*]                          every member or element
 *   [3]  [-1]                        an element (negative: from the end)
 *   [1:3]  [::2]  [::-1]             a slice (start:end:step)
 *   [?@.id == 1]  [?(@.id==1)]       a filter: comparisons == != < <= > >=
 *                                    of literals (numbers, 'strings',
 *                                    "strings", true, false, null) and
 *                                    singular queries (@.a.b, $.x[0]);
 *                                    && || ! and parentheses; an existence
 *                                    test [?@.tag] (a query alone: true when
 *                                    it selects something)
 *   ['a', 0, *]                      several selectors in one segment
 *   ..name  ..*  ..[0]               descendants: the node and everything
 *                                    below it, each tried with the selector
 * Function extensions of the RFC: length(v), count(query), value(query),
 * match(v, 'ERE') (whole string), search(v, 'ERE') (a substring); the
 * regular expressions are POSIX extended, not I-Regexp.
 *
 * Comparisons follow the RFC: numbers by value (also integers beyond 64
 * bits, exactly: jsonbig.h), strings by code point, arrays and objects
 * deeply; a query that selects nothing equals only another such query;
 * "<" between other types is false. No leniency: "5" != 5 in a filter.
 *
 * The values a query selects come in document order, each with its JSON
 * pointer (for messages: "/items/1/tag").
 */
#ifndef ER_JSONPATH_H
#define ER_JSONPATH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/util.h"

typedef struct er_jsonpath er_jsonpath_t;

/* Does s look like a JSONPath ("$", "$.a", "$[0]", "$..x") rather than a
 * JSON pointer or a template ("${x}")? */
bool er_jsonpath_is(const char *s);

/* Compiles a query. NULL with a message naming the place ("at offset
 * 7: ...") when it is not a valid query (or memory ran out). */
er_jsonpath_t *er_jsonpath_compile(const char *text, char *msg, size_t msgsz);
void er_jsonpath_free(er_jsonpath_t *p);

/* True when the query is singular (names and indexes only): it selects
 * at most one value. */
bool er_jsonpath_singular(const er_jsonpath_t *p);

/* The values p selects in root, appended to values (new references held
 * by the array), and, when paths is not NULL, their JSON pointers as
 * strings. Returns 0, or -1 when memory ran out. */
int er_jsonpath_eval(const er_jsonpath_t *p, const json_t *root, json_t *values,
                     json_t *paths);

/* What a JSON pointer or a JSONPath selects (er_select). */
typedef struct er_sel {
  bool is_path;  /* a JSONPath (else a JSON pointer) */
  json_t *nodes; /* owned array of the values selected */
  json_t *paths; /* owned array of their JSON pointers */
} er_sel_t;

/* Selects with path (a JSON pointer: "" or "/a/0"; or a JSONPath: "$...")
 * in root (may be NULL: nothing selected). Returns 0, or -1 with a
 * message when path is neither (or memory ran out). Free with
 * er_sel_free (also after a failure). */
int er_select(const json_t *root, const char *path, er_sel_t *out, char *msg,
              size_t msgsz);
void er_sel_free(er_sel_t *s);
/* The selection as one value: NULL when nothing was selected, the value
 * when one was, else the array of them (borrowed from s). */
const json_t *er_sel_value(const er_sel_t *s);
/* The JSON pointer of the selection as one value ("" for an array of
 * several, the pointer given for a JSON pointer). Borrowed. */
const char *er_sel_where(const er_sel_t *s);

/* Matches a selection against expected (jsonx.h): for a JSON pointer,
 * its value; for a JSONPath, the list operators ($count, $each, $all,
 * $any, $nth) see every value selected and anything else sees
 * er_sel_value. Mismatches name the pointer where they are. */
bool er_sel_match(const er_sel_t *s, const json_t *expected, er_buf_t *why);

/* Checks a selector string: NULL when it is a JSON pointer or a valid
 * JSONPath (or a template, checked once expanded), else a message in
 * msg. */
const char *er_select_check(const char *path, char *msg, size_t msgsz);

#endif
