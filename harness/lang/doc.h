/* doc.h: the files a user writes, read by kind: JSON, YAML and JSON
 * Lines (data), whatever the file holds (a scenario, a step file, an
 * environment, a fixture).
 *
 * The kind is told by the file name: ".yaml"/".yml" are YAML, ".jsonl"/
 * ".ndjson" JSON Lines (one JSON value a line; blank lines are skipped;
 * the document is the array of the lines' values), anything else JSON.
 * Every document becomes a json_t with a position map (jpos.h), so
 * validation reports file:line:col whatever the syntax.
 */
#ifndef ER_DOC_H
#define ER_DOC_H

#include <jansson.h>
#include <stddef.h>

#include "base/util.h"
#include "lang/diags.h"
#include "lang/jpos.h"

typedef enum { ER_DOC_JSON, ER_DOC_YAML, ER_DOC_JSONL } er_doc_kind_t;

er_doc_kind_t er_doc_kind(const char *path);
/* "JSON", "YAML" or "JSON Lines", for messages. */
const char *er_doc_kind_name(er_doc_kind_t k);
/* True for the names of files a scenario folder holds as scenarios:
 * *.json, *.yaml, *.yml. */
bool er_doc_is_scenario_name(const char *name);

/* Parses len bytes of text read from file, by the file's kind. A syntax
 * error becomes a problem in diags at its file:line:col. When pos is not
 * NULL, *pos gets the positions: for JSON those at most max_depth levels
 * down (er_jpos_build_depth; the caller builds the full map when it needs
 * it), for YAML and JSON Lines every one (they come with the parse; for
 * JSON Lines each line's value). New reference, or NULL. */
json_t *er_doc_parse(const char *file, const char *text, size_t len,
                     int max_depth, er_jpos_t **pos, er_diags_t *diags);

/* The text of path (at most cap bytes; *len its length), or NULL with
 * the problem (the file cannot be read, is too large) in diags. Caller
 * frees. */
char *er_doc_read(const char *path, size_t cap, size_t *len, er_diags_t *diags);

/* Reads (at most cap bytes) and parses path; problems (the file cannot
 * be read, syntax) go to diags. *pos as er_doc_parse with every level.
 * New reference, or NULL. */
json_t *er_doc_load(const char *path, size_t cap, er_jpos_t **pos,
                    er_diags_t *diags);

/* er_doc_load for run time: the first problem goes to err as
 * "file:line:col: message" (ER_E_INPUT). pos may be NULL. */
json_t *er_doc_load_err(const char *path, size_t cap, er_jpos_t **pos,
                        er_err_t *err);

/* Every position of the document in path (for a failure's file:line:col
 * found after loading). NULL when the file cannot be read or parsed. */
er_jpos_t *er_doc_positions(const char *path, size_t cap);

/* The outline of a JSON text whose top level is an object: the array its
 * member key holds, without parsing it. *open and *close get the offsets
 * of the array's brackets, *ranges (malloc'd, the caller frees it) the
 * byte range of each element ([ranges[2i], ranges[2i+1])). Returns the
 * number of elements, or -1 (and *ranges NULL) when the outline is not
 * plain: no such member, held twice or not by an array, a key written
 * with an escape, or a structure the parser must judge. The outline is
 * lax: the elements and the rest must still be parsed, and only when
 * both parse is the text valid JSON (then the outline is exact). */
long er_doc_json_elems(const char *text, size_t len, const char *key,
                       size_t *open, size_t *close, size_t **ranges);

/* yaml.c: parses YAML text (one document) into JSON values with the
 * positions of every value and key from the parser's marks; see yaml.c
 * for the schema (YAML 1.2 core, with the YAML 1.1 traps refused).
 * Problems go to diags. New reference, or NULL. */
json_t *er_yaml_parse(const char *file, const char *text, size_t len,
                      er_jpos_t **pos, er_diags_t *diags);

#endif
