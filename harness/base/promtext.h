/* promtext.h: a parser of the Prometheus text exposition format (0.0.4),
 * as served on /metrics. Knows nothing of scenarios or HTTP.
 *
 * Accepted, line by line ('\n' ends a line; a '\r' before it is dropped):
 *   empty lines (or only blanks)                       ignored
 *   # HELP name docstring                              name checked
 *   # TYPE name counter|gauge|histogram|summary|untyped
 *   # anything else                                    a comment, ignored
 *   name value [timestamp]
 *   name{label="value",label2="v2",} value [timestamp]
 * Blanks (spaces, tabs) may separate tokens, also inside the braces.
 *   name      [a-zA-Z_:][a-zA-Z0-9_:]*
 *   label     [a-zA-Z_][a-zA-Z0-9_]* (each at most once per sample)
 *   value "…" escapes \\ \" \n, nothing else; no raw line breaks
 *   value     a decimal float with optional exponent (1, -2.5, 1e3,
 *             .5, 6.02E+23), or NaN, Inf, +Inf, -Inf (any case); no hex
 *   timestamp an integer (milliseconds since the epoch), may be negative
 * Anything else is an error naming the line: the whole text is refused,
 * as Prometheus refuses a scrape it cannot parse.
 *
 * Bounds: at most ER_PROM_MAX_LABELS labels per sample; the caller caps
 * the text itself (the HTTP adapter keeps at most ER_HTTP_BODY_CAP).
 */
#ifndef ER_PROMTEXT_H
#define ER_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define ER_PROM_MAX_LABELS 64

typedef struct er_prom_label {
  const char *name;
  const char *value; /* unescaped, NUL-terminated */
  size_t value_len;  /* bytes (a value may hold "\0" only if sent raw) */
} er_prom_label_t;

/* One sample. Every pointer is borrowed and valid only during the
 * callback. */
typedef struct er_prom_sample {
  const char *name;
  const er_prom_label_t *labels;
  size_t nlabels;
  double value;
  bool has_timestamp;
  int64_t timestamp_ms;
  int line;         /* 1-based line number */
  const char *text; /* the line as written (no line break), text_len bytes */
  size_t text_len;
} er_prom_sample_t;

/* Called for every sample in order; a non-zero return stops the parse,
 * which then returns that value (err untouched). */
typedef int (*er_prom_cb)(void *ud, const er_prom_sample_t *s);

/* Parses len bytes of text. Returns 0 when every line was well formed
 * (cb may be NULL to only validate), the callback's non-zero value when
 * it stopped the parse, or -1 with err (ER_E_INPUT, "line N: ...") on
 * the first malformed line or when memory ran out (ER_E_ENV). */
int er_prom_parse(const char *text, size_t len, er_prom_cb cb, void *ud,
                  er_err_t *err);

/* Whether s is a valid metric name / label name. */
bool er_prom_name_ok(const char *s);
bool er_prom_label_name_ok(const char *s);

/* Formats a value the way the text format writes it: NaN, +Inf, -Inf,
 * integers without a fraction, else the shortest %g that reads back the
 * same. */
void er_prom_fmt_value(double v, char out[40]);

#endif
