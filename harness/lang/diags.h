/* diags.h: problems found in the files a user writes (scenarios, the
 * environment), each with file:line:col, collected across files and
 * printed as "file:line:col: error: message".
 *
 * A problem is found on a parsed document (json_t) and named by a JSON
 * pointer into it; er_diag_at maps the pointer to line:col through the
 * file's position map (jpos.h), so loaders never count lines themselves.
 * Used by the scenario loader (scenario.c), the environment loader
 * (env.c) and key-spec validation (validate.c).
 */
#ifndef ER_DIAGS_H
#define ER_DIAGS_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "base/util.h"
#include "lang/jpos.h"

typedef enum { ER_DIAG_ERROR, ER_DIAG_WARNING } er_diag_sev_t;

typedef struct er_diag_item {
  char *file;
  int line, col; /* 1-based; 0 when unknown */
  er_diag_sev_t sev;
  char *msg;
} er_diag_item_t;

/* A growing list of problems. Zero-initialise, free with er_diags_free.
 * errors and warnings count every problem added, also one whose text
 * could not be stored (memory ran out, or past the first ER_DIAGS_KEEP,
 * which bounds the memory of a file with a warning on each of 100k
 * steps): an error is never lost. */
#define ER_DIAGS_KEEP 1000
typedef struct er_diags {
  er_diag_item_t *items;
  size_t n, alloc;
  size_t errors, warnings;
  /* while set, appended to every message added: where a file used by
   * another one was used ("(used at scenarios/a.json:12:5)"); borrowed */
  const char *suffix;
} er_diags_t;

void er_diags_free(er_diags_t *d);
/* Adds one problem (file may be NULL; line/col 0 when unknown). */
void er_diags_addf(er_diags_t *d, const char *file, int line, int col,
                   er_diag_sev_t sev, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void er_diags_vaddf(er_diags_t *d, const char *file, int line, int col,
                    er_diag_sev_t sev, const char *fmt, va_list ap);
/* Sorts the problems from index `from` on by line and column (stable). */
void er_diags_sort_from(er_diags_t *d, size_t from);
/* The same grouped by file: main_file's first, then each other file's
 * (files it uses) in the order they first appear. */
void er_diags_sort_main(er_diags_t *d, size_t from, const char *main_file);
/* Prints "file:line:col: error: message" lines to f, colour if asked. */
void er_diags_print(const er_diags_t *d, FILE *f, bool color);

/* Where problems of one document go: its file name, its position map
 * (may be NULL: positions unknown) and the list. All borrowed.
 * Optionally text/len and full: the first problem builds the full
 * position map of text into *full (the loader frees it), so that a valid
 * file costs only the shallow pos (er_jpos_build_depth). */
typedef struct er_diag_src er_diag_src_t;
struct er_diag_src {
  const char *file;
  const er_jpos_t *pos;
  er_diags_t *out;
  const char *text;
  size_t len;
  er_jpos_t **full;
  /* optional: called by validation for a value naming a file (a key spec
   * with ER_T_FILE or ER_T_DATA, action.h) at pointer ptr; the loader
   * finds and checks the file. ud is the loader's. */
  void (*file_ref)(const er_diag_src_t *s, const char *ptr, const char *name,
                   unsigned types);
  void *ud;
  /* optional: the top-level "steps" are not in the document (a large file
   * read a step at a time, scenario.c): validation calls this where it
   * would walk that list, so problems are found in the same order. lean
   * is the loader's. */
  void (*lean_steps)(const er_diag_src_t *s);
  const void *lean;
};

/* A problem at JSON pointer ptr of the document: at the member's key when
 * key is true (array elements and the root have none: their value), else
 * at its value. */
void er_diag_at(const er_diag_src_t *s, er_diag_sev_t sev, const char *ptr,
                bool key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void er_diag_vat(const er_diag_src_t *s, er_diag_sev_t sev, const char *ptr,
                 bool key, const char *fmt, va_list ap);
/* Where JSON pointer ptr of the document is (0:0 when unknown). */
void er_diag_pos(const er_diag_src_t *s, const char *ptr, bool key, int *line,
                 int *col);
/* er_diag_at with ER_DIAG_ERROR, the loaders' usual case. */
void er_diag_err(const er_diag_src_t *s, const char *ptr, bool key,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Parses text (from file) with jansson; a syntax error becomes a problem
 * with jansson's line:col. New reference, or NULL. */
json_t *er_parse_json_text(const char *file, const char *text, size_t len,
                           er_diags_t *out);

#endif
