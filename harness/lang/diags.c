/* diags.c: problems found in the files a user writes (see diags.h). */
#include "lang/diags.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"

void er_diags_vaddf(er_diags_t *d, const char *file, int line, int col,
                    er_diag_sev_t sev, const char *fmt, va_list ap) {
  er_buf_t b = ER_BUF_INIT(4096);
  er_diag_item_t *it;
  /* counted even if the message cannot be stored: an error must never
   * be lost to an allocation failure */
  if (sev == ER_DIAG_ERROR)
    d->errors++;
  else
    d->warnings++;
  if (d->n >= ER_DIAGS_KEEP) /* counted, not kept: see er_diags_print */
    return;
  if (d->n == d->alloc) {
    size_t na = d->alloc ? d->alloc * 2 : 16;
    er_diag_item_t *ni = realloc(d->items, na * sizeof *ni);
    if (!ni)
      return;
    d->items = ni;
    d->alloc = na;
  }
  if (er_buf_vprintf(&b, fmt, ap) != 0 ||
      (d->suffix && er_buf_printf(&b, " %s", d->suffix) != 0)) {
    er_buf_free(&b);
    return;
  }
  it = &d->items[d->n];
  it->file = er_strdup(file ? file : "");
  it->msg = er_buf_steal(&b);
  it->line = line > 0 ? line : 0;
  it->col = line > 0 ? (col > 0 ? col : 1) : 0;
  it->sev = sev;
  if (!it->file || !it->msg) {
    free(it->file);
    free(it->msg);
    return;
  }
  d->n++;
}

void er_diags_addf(er_diags_t *d, const char *file, int line, int col,
                   er_diag_sev_t sev, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  er_diags_vaddf(d, file, line, col, sev, fmt, ap);
  va_end(ap);
}

/* Stable sort of items [from, n) by line, then column (insertion sort:
 * one file has few problems). */
static void sort_range(er_diags_t *d, size_t a, size_t b);

void er_diags_sort_from(er_diags_t *d, size_t from) {
  sort_range(d, from, d->n);
}

/* Stable sort of items [a, b) by line, then column. */
static void sort_range(er_diags_t *d, size_t a, size_t b) {
  for (size_t i = a + 1; i < b; i++) {
    er_diag_item_t it = d->items[i];
    size_t j = i;
    while (j > a && (d->items[j - 1].line > it.line ||
                     (d->items[j - 1].line == it.line &&
                      d->items[j - 1].col > it.col))) {
      d->items[j] = d->items[j - 1];
      j--;
    }
    d->items[j] = it;
  }
}

void er_diags_sort_main(er_diags_t *d, size_t from, const char *main_file) {
  size_t w = from;
  bool main_done = main_file == NULL;
  /* the main file's problems first, then each other file's, in the order
   * the files first appear; each file's by position */
  while (w < d->n) {
    const char *f = main_done ? d->items[w].file : main_file;
    size_t start = w;
    for (size_t j = w; j < d->n; j++) {
      if (strcmp(d->items[j].file, f) == 0) {
        er_diag_item_t it = d->items[j];
        memmove(&d->items[w + 1], &d->items[w], (j - w) * sizeof it);
        d->items[w++] = it;
      }
    }
    sort_range(d, start, w);
    main_done = true;
  }
}

void er_diags_free(er_diags_t *d) {
  if (!d)
    return;
  for (size_t i = 0; i < d->n; i++) {
    free(d->items[i].file);
    free(d->items[i].msg);
  }
  free(d->items);
  memset(d, 0, sizeof *d);
}

void er_diags_print(const er_diags_t *d, FILE *f, bool color) {
  const char *bold = color ? "\033[1m" : "";
  const char *reset = color ? "\033[0m" : "";
  for (size_t i = 0; d && i < d->n; i++) {
    const er_diag_item_t *it = &d->items[i];
    bool err = it->sev == ER_DIAG_ERROR;
    const char *sevc = !color ? "" : err ? "\033[1;31m" : "\033[1;35m";
    fputs(bold, f);
    er_utf8_safe_write(f, it->file, strlen(it->file));
    if (it->line > 0)
      fprintf(f, ":%d:%d:%s ", it->line, it->col, reset);
    else
      fprintf(f, ":%s ", reset);
    fprintf(f, "%s%s:%s ", sevc, err ? "error" : "warning", reset);
    er_utf8_safe_write(f, it->msg, strlen(it->msg));
    fputc('\n', f);
  }
  if (d && d->errors + d->warnings > d->n)
    fprintf(f, "... and %zu more problem(s) not shown (the first %zu are)\n",
            d->errors + d->warnings - d->n, d->n);
}

void er_diag_pos(const er_diag_src_t *s, const char *ptr, bool key, int *line,
                 int *col) {
  *line = *col = 0;
  /* the shallow map when it knows ptr itself, else the full one */
  if (er_jpos_find(s->pos, ptr ? ptr : "", key, line, col) != 0 && s->full &&
      s->text) {
    if (!*s->full)
      *s->full = er_jpos_build(s->text, s->len);
    if (*s->full)
      er_jpos_find(*s->full, ptr ? ptr : "", key, line, col);
  }
}

void er_diag_vat(const er_diag_src_t *s, er_diag_sev_t sev, const char *ptr,
                 bool key, const char *fmt, va_list ap) {
  int line = 0, col = 0;
  er_diag_pos(s, ptr, key, &line, &col);
  er_diags_vaddf(s->out, s->file, line, col, sev, fmt, ap);
}

void er_diag_at(const er_diag_src_t *s, er_diag_sev_t sev, const char *ptr,
                bool key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  er_diag_vat(s, sev, ptr, key, fmt, ap);
  va_end(ap);
}

void er_diag_err(const er_diag_src_t *s, const char *ptr, bool key,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  er_diag_vat(s, ER_DIAG_ERROR, ptr, key, fmt, ap);
  va_end(ap);
}

json_t *er_parse_json_text(const char *file, const char *text, size_t len,
                           er_diags_t *out) {
  json_error_t e;
  json_t *doc;
  memset(&e, 0, sizeof e);
  /* integers beyond 64 bits kept exactly (base/jsonbig.h) */
  doc = er_json_loadb(text ? text : "", text ? len : 0, JSON_DECODE_ANY, &e);
  if (!doc)
    er_diags_addf(out, file, e.line > 0 ? e.line : 0, e.column, ER_DIAG_ERROR,
                  "JSON syntax error: %s", e.text[0] ? e.text : "invalid JSON");
  return doc;
}
