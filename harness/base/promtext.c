/* promtext.c: the Prometheus text format parser (see promtext.h).
 *
 * One pass over the text, line by line, without copying the text: a
 * scratch buffer (reused for every line) holds the unescaped metric name,
 * label names and label values of the current sample. */
#include "base/promtext.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define VALUE_TOKEN_MAX 128

typedef struct scratch {
  char *p;
  size_t len, alloc;
} scratch_t;

/* Appends n bytes (no NUL). 0, or -1 when memory ran out. */
static int sc_add(scratch_t *sc, const char *s, size_t n) {
  size_t need = sc->len + n + 1;
  if (!sc->p || need > sc->alloc) {
    size_t na = sc->alloc ? sc->alloc : 256;
    char *np;
    while (na < need)
      na *= 2;
    np = realloc(sc->p, na);
    if (!np)
      return -1;
    sc->p = np;
    sc->alloc = na;
  }
  if (n)
    memcpy(sc->p + sc->len, s, n);
  sc->len += n;
  return 0;
}

/* Appends n bytes plus a NUL; returns the offset of the copy, or -1 when
 * memory ran out. */
static long sc_put(scratch_t *sc, const char *s, size_t n) {
  long off = (long)sc->len;
  if (sc_add(sc, s, n) != 0 || sc_add(sc, "", 1) != 0)
    return -1;
  return off;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

static bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == ':';
}

static bool name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

static bool label_start(char c) { return c != ':' && name_start(c); }
static bool label_char(char c) { return c != ':' && name_char(c); }

bool er_prom_name_ok(const char *s) {
  if (!s || !name_start(*s))
    return false;
  for (s++; *s; s++)
    if (!name_char(*s))
      return false;
  return true;
}

bool er_prom_label_name_ok(const char *s) {
  if (!s || !label_start(*s))
    return false;
  for (s++; *s; s++)
    if (!label_char(*s))
      return false;
  return true;
}

void er_prom_fmt_value(double v, char out[40]) {
  if (isnan(v)) {
    snprintf(out, 40, "NaN");
  } else if (isinf(v)) {
    snprintf(out, 40, "%cInf", v > 0 ? '+' : '-');
  } else if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(out, 40, "%.0f", v);
  } else {
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(out, 40, "%.*g", prec, v);
      if (strtod(out, NULL) == v)
        break;
    }
  }
}

/* A float token (s, n bytes). 0, or -1 with a reason in why. */
static int parse_value(const char *s, size_t n, double *out, const char **why) {
  char tmp[VALUE_TOKEN_MAX + 1];
  const char *p, *end;
  size_t digits = 0;
  double v;

  if (n > VALUE_TOKEN_MAX) {
    *why = "the value is too long";
    return -1;
  }
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  p = tmp;
  if (strcasecmp(p, "nan") == 0) {
    *out = NAN;
    return 0;
  }
  if (*p == '+' || *p == '-')
    p++;
  if (strcasecmp(p, "inf") == 0 || strcasecmp(p, "infinity") == 0) {
    *out = tmp[0] == '-' ? -INFINITY : INFINITY;
    return 0;
  }
  /* [+-]? digits [. digits] | . digits, then [eE][+-]?digits */
  while (*p >= '0' && *p <= '9') {
    p++;
    digits++;
  }
  if (*p == '.') {
    p++;
    while (*p >= '0' && *p <= '9') {
      p++;
      digits++;
    }
  }
  if (digits == 0) {
    *why = "the value is not a number";
    return -1;
  }
  if (*p == 'e' || *p == 'E') {
    size_t ed = 0;
    p++;
    if (*p == '+' || *p == '-')
      p++;
    while (*p >= '0' && *p <= '9') {
      p++;
      ed++;
    }
    if (ed == 0) {
      *why = "the value has an exponent without digits";
      return -1;
    }
  }
  if (*p != '\0') {
    *why = "the value is not a number";
    return -1;
  }
  errno = 0;
  v = strtod(tmp, (char **)&end);
  if (end != tmp + n) {
    *why = "the value is not a number";
    return -1;
  }
  if (isinf(v)) {
    *why = "the value is out of range (write +Inf or -Inf)";
    return -1;
  }
  *out = v;
  return 0;
}

/* An int64 token. 0 or -1. */
static int parse_ts(const char *s, size_t n, int64_t *out) {
  char tmp[32];
  char *end;
  long long v;
  size_t i = 0;
  if (n == 0 || n >= sizeof tmp)
    return -1;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  if (tmp[0] == '-')
    i = 1;
  if (i == n)
    return -1;
  for (; i < n; i++)
    if (tmp[i] < '0' || tmp[i] > '9')
      return -1;
  errno = 0;
  v = strtoll(tmp, &end, 10);
  if (errno || *end)
    return -1;
  *out = (int64_t)v;
  return 0;
}

typedef struct lctx {
  const char *p, *end; /* the rest of the line */
  int line;
  er_err_t *err;
} lctx_t;

static void skip_blanks(lctx_t *c) {
  while (c->p < c->end && is_blank(*c->p))
    c->p++;
}

static int lerr(lctx_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int lerr(lctx_t *c, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return er_errf(c->err, ER_E_INPUT, "line %d: %s", c->line, msg);
}

/* Shows one character for a message. */
static const char *show_char(char ch, char buf[8]) {
  if ((unsigned char)ch >= 33 && (unsigned char)ch < 127)
    snprintf(buf, 8, "'%c'", ch);
  else
    snprintf(buf, 8, "0x%02x", (unsigned char)ch);
  return buf;
}

/* A token up to a blank or the end of the line. */
static void token(lctx_t *c, const char **s, size_t *n) {
  *s = c->p;
  while (c->p < c->end && !is_blank(*c->p))
    c->p++;
  *n = (size_t)(c->p - *s);
}

/* "# HELP name doc" / "# TYPE name type" / any other comment. */
static int comment_line(lctx_t *c) {
  const char *w, *name;
  size_t wn, nn;
  char nbuf[256];
  c->p++; /* '#' */
  skip_blanks(c);
  token(c, &w, &wn);
  if (!((wn == 4 && memcmp(w, "HELP", 4) == 0) ||
        (wn == 4 && memcmp(w, "TYPE", 4) == 0)))
    return 0; /* a plain comment */
  skip_blanks(c);
  token(c, &name, &nn);
  snprintf(nbuf, sizeof nbuf, "%.*s", (int)(nn > 200 ? 200 : nn), name);
  if (nn == 0 || nn >= sizeof nbuf || !er_prom_name_ok(nbuf))
    return lerr(c, "# %s needs a valid metric name",
                w[0] == 'H' ? "HELP" : "TYPE");
  skip_blanks(c);
  if (w[0] == 'T') {
    static const char *const types[] = {"counter", "gauge", "histogram",
                                        "summary", "untyped"};
    const char *t;
    size_t tn;
    bool known = false;
    char tbuf[64];
    token(c, &t, &tn);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (tn == strlen(types[i]) && memcmp(t, types[i], tn) == 0)
        known = true;
    snprintf(tbuf, sizeof tbuf, "%.*s", (int)(tn > 40 ? 40 : tn), t);
    if (!known)
      return lerr(c,
                  "unknown metric type '%s' (counter, gauge, histogram, "
                  "summary or untyped)",
                  tbuf);
    skip_blanks(c);
    if (c->p < c->end)
      return lerr(c, "unexpected text after the type in # TYPE");
    return 0;
  }
  /* HELP docstring: escapes \\ and \n only */
  for (const char *q = c->p; q < c->end; q++) {
    if (*q == '\\') {
      if (q + 1 >= c->end || (q[1] != '\\' && q[1] != 'n'))
        return lerr(c, "bad escape in # HELP (only \\\\ and \\n are allowed)");
      q++;
    }
  }
  return 0;
}

/* A label value after the opening quote: unescapes into sc. Returns the
 * offset in sc, or -1 (reported). */
static long label_value(lctx_t *c, scratch_t *sc, size_t *vlen) {
  size_t start = sc->len;
  const char *run = c->p;
  char sb[8];
  *vlen = 0;
  for (;;) {
    char ch;
    if (c->p >= c->end)
      return lerr(c, "unterminated label value (a '\"' is missing)");
    if (*c->p != '"' && *c->p != '\\') {
      c->p++;
      continue;
    }
    if (sc_add(sc, run, (size_t)(c->p - run)) != 0)
      goto nomem;
    if (*c->p == '"') {
      c->p++;
      break;
    }
    if (c->p + 1 >= c->end)
      return lerr(c, "unterminated label value (ends in a backslash)");
    switch (c->p[1]) {
    case '\\':
      ch = '\\';
      break;
    case '"':
      ch = '"';
      break;
    case 'n':
      ch = '\n';
      break;
    default:
      return lerr(c,
                  "bad escape: a backslash before %s in a label value (only "
                  "\\\\, \\\" and \\n are allowed)",
                  show_char(c->p[1], sb));
    }
    if (sc_add(sc, &ch, 1) != 0)
      goto nomem;
    c->p += 2;
    run = c->p;
  }
  *vlen = sc->len - start;
  if (sc_add(sc, "", 1) != 0)
    goto nomem;
  return (long)start;
nomem:
  er_errf(c->err, ER_E_ENV, "line %d: out of memory", c->line);
  return -1;
}

/* A sample's labels as offsets into the scratch buffer, which may still
 * move while the line is read. */
typedef struct label_offs {
  long name[ER_PROM_MAX_LABELS], val[ER_PROM_MAX_LABELS];
  size_t val_len[ER_PROM_MAX_LABELS];
  size_t n;
} label_offs_t;

static int no_memory(lctx_t *c) {
  return er_errf(c->err, ER_E_ENV, "line %d: out of memory", c->line);
}

/* One 'name="value"' at c->p, appended to lo: 0, or -1 with the error. */
static int one_label(lctx_t *c, scratch_t *sc, label_offs_t *lo) {
  const char *ln = c->p;
  const char *name;
  size_t k = lo->n;
  char sb[8];
  if (!label_start(*c->p))
    return lerr(c, "expected a label name, found %s", show_char(*c->p, sb));
  if (k == ER_PROM_MAX_LABELS)
    return lerr(c, "more than %d labels on one sample", ER_PROM_MAX_LABELS);
  while (c->p < c->end && label_char(*c->p))
    c->p++;
  lo->name[k] = sc_put(sc, ln, (size_t)(c->p - ln));
  if (lo->name[k] < 0)
    return no_memory(c);
  name = sc->p + lo->name[k];
  for (size_t i = 0; i < k; i++)
    if (strcmp(sc->p + lo->name[i], name) == 0)
      return lerr(c, "label '%s' given twice", name);
  skip_blanks(c);
  if (c->p >= c->end || *c->p != '=')
    return lerr(c, "expected '=' after label '%s'", name);
  c->p++;
  skip_blanks(c);
  if (c->p >= c->end || *c->p != '"')
    return lerr(c, "the value of label '%s' must be in double quotes", name);
  c->p++;
  lo->val[k] = label_value(c, sc, &lo->val_len[k]);
  if (lo->val[k] < 0)
    return -1;
  lo->n++;
  return 0;
}

/* The labels after a '{' (c->p just past it) up to its '}' into lo: 0, or
 * -1 with the error. */
static int label_set(lctx_t *c, scratch_t *sc, label_offs_t *lo) {
  char sb[8];
  for (;;) {
    skip_blanks(c);
    if (c->p >= c->end)
      return lerr(c, "unterminated label set (a '}' is missing)");
    if (*c->p == '}') {
      c->p++;
      return 0;
    }
    if (one_label(c, sc, lo) != 0)
      return -1;
    skip_blanks(c);
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      continue;
    }
    if (c->p < c->end && *c->p == '}') {
      c->p++;
      return 0;
    }
    if (c->p >= c->end)
      return lerr(c, "unterminated label set (a '}' is missing)");
    return lerr(c, "expected ',' or '}' after a label value, found %s",
                show_char(*c->p, sb));
  }
}

/* The value and the optional timestamp after the name and labels. */
static int value_and_ts(lctx_t *c, const char *name, er_prom_sample_t *smp) {
  const char *vs, *why = NULL;
  size_t vn;
  token(c, &vs, &vn);
  if (vn == 0)
    return lerr(c, "sample '%s' has no value", name);
  if (parse_value(vs, vn, &smp->value, &why) != 0)
    return lerr(c, "%s", why);
  skip_blanks(c);
  if (c->p < c->end) {
    const char *ts;
    size_t tn;
    token(c, &ts, &tn);
    if (parse_ts(ts, tn, &smp->timestamp_ms) != 0)
      return lerr(c, "the timestamp must be an integer (milliseconds)");
    smp->has_timestamp = true;
    skip_blanks(c);
    if (c->p < c->end)
      return lerr(c, "unexpected text after the timestamp");
  }
  return 0;
}

static int sample_line(lctx_t *c, const char *lstart, scratch_t *sc,
                       er_prom_cb cb, void *ud) {
  label_offs_t lo;
  er_prom_label_t labels[ER_PROM_MAX_LABELS];
  long name_off;
  const char *s;
  er_prom_sample_t smp;
  char sb[8];

  memset(&smp, 0, sizeof smp);
  lo.n = 0;
  sc->len = 0;
  s = c->p;
  if (!name_start(*c->p))
    return lerr(c, "expected a metric name, found %s", show_char(*c->p, sb));
  while (c->p < c->end && name_char(*c->p))
    c->p++;
  name_off = sc_put(sc, s, (size_t)(c->p - s));
  if (name_off < 0)
    return no_memory(c);
  if (c->p < c->end && !is_blank(*c->p) && *c->p != '{')
    return lerr(c, "unexpected %s after the metric name", show_char(*c->p, sb));
  skip_blanks(c);
  if (c->p < c->end && *c->p == '{') {
    c->p++;
    if (label_set(c, sc, &lo) != 0)
      return -1;
    skip_blanks(c);
  }
  if (value_and_ts(c, sc->p + name_off, &smp) != 0)
    return -1;
  /* the scratch buffer no longer moves: make the pointers */
  for (size_t i = 0; i < lo.n; i++) {
    labels[i].name = sc->p + lo.name[i];
    labels[i].value = sc->p + lo.val[i];
    labels[i].value_len = lo.val_len[i];
  }
  smp.name = sc->p + name_off;
  smp.labels = labels;
  smp.nlabels = lo.n;
  smp.line = c->line;
  smp.text = lstart;
  smp.text_len = (size_t)(c->end - lstart);
  return cb ? cb(ud, &smp) : 0;
}

int er_prom_parse(const char *text, size_t len, er_prom_cb cb, void *ud,
                  er_err_t *err) {
  scratch_t sc = {NULL, 0, 0};
  const char *p = text, *end = text + len;
  int line = 0, rc = 0;

  while (p < end && rc == 0) {
    size_t left = (size_t)(end - p);
    const char *nl = memchr(p, '\n', left);
    size_t n = nl ? (size_t)(nl - p) : left;
    lctx_t c;
    line++;
    if (n > 0 && p[n - 1] == '\r')
      n--;
    c.p = p;
    c.end = p + n;
    c.line = line;
    c.err = err;
    if (memchr(p, '\0', n)) {
      rc = er_errf(err, ER_E_INPUT, "line %d: a NUL byte", line);
      break;
    }
    skip_blanks(&c);
    if (c.p < c.end) {
      if (*c.p == '#')
        rc = comment_line(&c);
      else
        rc = sample_line(&c, p, &sc, cb, ud);
    }
    p = nl ? nl + 1 : end;
  }
  free(sc.p);
  return rc;
}
