/* jpos.h: where each value of a JSON text is (line:col).
 *
 * jansson does not keep positions of values, so validation problems found
 * on a json_t would have no line:col. er_jpos_build() scans the text once
 * and records, for every value and every object key, its JSON pointer
 * (RFC 6901: "~" written "~0", "/" written "~1") and its 1-based line and
 * column. Columns count characters (UTF-8 code points), as editors do.
 *
 * Meant for text jansson has already accepted, but any input is safe: on
 * malformed or truncated text the scan stops and keeps what it recorded.
 * Duplicate keys: like jansson, the last one wins (the earlier member and
 * everything under it are forgotten).
 */
#ifndef ER_JPOS_H
#define ER_JPOS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/util.h"

typedef struct er_jpos er_jpos_t;

/* Scans len bytes of text (need not be NUL-terminated). Returns NULL only
 * when memory ran out. Caller frees with er_jpos_free. */
er_jpos_t *er_jpos_build(const char *text, size_t len);
/* The same recording only values at most max_depth levels down (the root
 * is level 0): "/steps/3" is level 2. Lookups below fall back to the
 * nearest recorded parent. A cheap map for what every load needs (step
 * positions); diags.h builds the full one when a problem needs it. */
er_jpos_t *er_jpos_build_depth(const char *text, size_t len, int max_depth);
void er_jpos_free(er_jpos_t *p);
/* An empty map, for documents whose positions come from elsewhere (a
 * YAML parser's node marks): er_jpos_add records each value. NULL when
 * memory ran out. */
er_jpos_t *er_jpos_new(void);
/* Records the value at pointer: its key at kline:kcol (0:0 when it has
 * none) and the value at vline:vcol. A pointer recorded again replaces
 * the earlier entry. Returns 0, or -1 when memory ran out. */
int er_jpos_add(er_jpos_t *p, const char *pointer, int kline, int kcol,
                int vline, int vcol);

/* Position of the value at pointer (key = false), or of the key string of
 * the object member at pointer (key = true; array elements and the root
 * have no key, so their value position is given). A pointer that was not
 * recorded falls back to its nearest recorded parent.
 * Returns 0 when the pointer itself was found, 1 when a parent was used,
 * -1 when nothing was recorded at all (*line = *col = 0). p may be NULL. */
int er_jpos_find(const er_jpos_t *p, const char *pointer, bool key, int *line,
                 int *col);

/* Number of positions recorded (values; keys do not count separately). */
size_t er_jpos_count(const er_jpos_t *p);

/* Appends "/" and the RFC 6901 escaped token to b. Returns 0 or -1. */
int er_jpos_append_token(er_buf_t *b, const char *token);

/* base + "/" + escaped token as a new string (caller frees), or NULL when
 * memory ran out. */
char *er_jpos_child(const char *base, const char *token);
/* base + "/" + index as a new string (caller frees), or NULL. */
char *er_jpos_child_index(const char *base, size_t index);

#endif
