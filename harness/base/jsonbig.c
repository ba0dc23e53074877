/* jsonbig.c: see jsonbig.h. */
#include "base/jsonbig.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

bool er_int_text(const char *s, size_t n) {
  size_t i = 0;
  if (n > 0 && s[0] == '-')
    i = 1;
  if (i == n)
    return false;
  for (; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

/* Compares the magnitudes of two digit strings (leading zeros skipped). */
static int mag_cmp(const char *a, size_t an, const char *b, size_t bn) {
  int c;
  while (an > 1 && *a == '0') {
    a++;
    an--;
  }
  while (bn > 1 && *b == '0') {
    b++;
    bn--;
  }
  if (an != bn)
    return an < bn ? -1 : 1;
  c = memcmp(a, b, an);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

static bool all_zero(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != '0')
      return false;
  return true;
}

bool er_int_text_fits(const char *s, size_t n, long long *out) {
  bool neg;
  const char *d;
  size_t dn;
  if (!er_int_text(s, n))
    return false;
  neg = s[0] == '-';
  d = s + (neg ? 1 : 0);
  dn = n - (neg ? 1 : 0);
  if (mag_cmp(d, dn, neg ? "9223372036854775808" : "9223372036854775807", 19) >
      0)
    return false;
  if (out) {
    char buf[32];
    while (dn > 1 && *d == '0') {
      d++;
      dn--;
    }
    snprintf(buf, sizeof buf, "%s%.*s", neg ? "-" : "", (int)dn, d);
    errno = 0;
    *out = strtoll(buf, NULL, 10);
  }
  return true;
}

const char *er_big_digits(const json_t *v) {
  const char *s;
  size_t n;
  if (!json_is_string(v))
    return NULL;
  s = json_string_value(v);
  n = json_string_length(v);
  if (n < 2 || s[0] != ER_BIG_TAG)
    return NULL;
  if (!er_int_text(s + 1, n - 1) || er_int_text_fits(s + 1, n - 1, NULL))
    return NULL;
  return s + 1;
}

json_t *er_big_from_text(const char *s, size_t n) {
  long long ll;
  char *buf;
  json_t *v;
  if (!er_int_text(s, n))
    return NULL;
  if (er_int_text_fits(s, n, &ll))
    return json_integer((json_int_t)ll);
  buf = malloc(n + 1);
  if (!buf)
    return NULL;
  buf[0] = ER_BIG_TAG;
  memcpy(buf + 1, s, n);
  v = json_stringn(buf, n + 1);
  free(buf);
  return v;
}

/* ---- loading ----------------------------------------------------------- */

typedef struct big_at {
  size_t start, end; /* the literal in the original text */
  int line;          /* 1-based */
} big_at_t;

/* Finds the integer literals of text that do not fit in int64, outside
 * strings. Returns how many (their places in *out, caller frees), or -1
 * when memory ran out. */
static long find_bigs(const char *s, size_t len, big_at_t **out) {
  size_t i = 0, n = 0, alloc = 0;
  int line = 1;
  big_at_t *v = NULL;
  *out = NULL;
  while (i < len) {
    char c = s[i];
    if (c == '\n') {
      line++;
      i++;
    } else if (c == '"') {
      for (i++; i < len && s[i] != '"'; i++) {
        if (s[i] == '\\')
          i++;
        else if (s[i] == '\n')
          line++;
      }
      i++;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t st = i, e;
      if (c == '-')
        i++;
      while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
      e = i;
      if (i < len && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) {
        while (i < len && (strchr("0123456789.eE+-", s[i]) != NULL))
          i++;
        continue; /* a real: jansson's business */
      }
      if (e - st < 19 || !er_int_text(s + st, e - st) ||
          er_int_text_fits(s + st, e - st, NULL))
        continue;
      if (s[st + (c == '-' ? 1 : 0)] == '0')
        continue; /* a leading zero: not JSON, let jansson say so */
      if (n == alloc) {
        size_t na = alloc ? alloc * 2 : 8;
        big_at_t *nv = realloc(v, na * sizeof *nv);
        if (!nv) {
          free(v);
          return -1;
        }
        v = nv;
        alloc = na;
      }
      v[n].start = st;
      v[n].end = e;
      v[n].line = line;
      n++;
    } else {
      i++;
    }
  }
  *out = v;
  return (long)n;
}

/* What one literal grows by: "\u0001 ... " */
#define TAG_OPEN "\"\\u0001"
#define TAG_GROWTH 8

json_t *er_json_loadb(const char *buf, size_t len, size_t flags,
                      json_error_t *err) {
  big_at_t *at = NULL;
  long n;
  er_buf_t t;
  json_t *v;
  if (flags & JSON_DECODE_INT_AS_REAL)
    return json_loadb(buf, len, flags, err);
  n = find_bigs(buf, len, &at);
  if (n <= 0) {
    free(at);
    return json_loadb(buf, len, flags, err);
  }
  er_buf_init(&t, len + (size_t)n * TAG_GROWTH + 16);
  {
    size_t from = 0;
    for (long i = 0; i < n; i++) {
      er_buf_append(&t, buf + from, at[i].start - from);
      er_buf_puts(&t, TAG_OPEN);
      er_buf_append(&t, buf + at[i].start, at[i].end - at[i].start);
      er_buf_puts(&t, "\"");
      from = at[i].end;
    }
    er_buf_append(&t, buf + from, len - from);
  }
  if (t.truncated || !t.data) {
    er_buf_free(&t);
    free(at);
    return json_loadb(buf, len, flags, err);
  }
  v = json_loadb(t.data, t.len, flags, err);
  if (!v && err) {
    /* map the error's place back to the original text */
    size_t pos = (size_t)err->position, shift = 0, col_shift = 0;
    for (long i = 0; i < n; i++) {
      size_t new_start = at[i].start + (size_t)i * TAG_GROWTH;
      if (new_start >= pos)
        break;
      shift += TAG_GROWTH;
      if (at[i].line == err->line)
        col_shift += TAG_GROWTH;
    }
    err->position = (int)(pos >= shift ? pos - shift : 0);
    if (err->column > (int)col_shift)
      err->column -= (int)col_shift;
  }
  er_buf_free(&t);
  free(at);
  return v;
}

/* ---- dumping ----------------------------------------------------------- */

char *er_json_dumps(const json_t *v, size_t flags) {
  char *s = json_dumps(v, flags);
  char *r, *w;
  if (!s || !strstr(s, TAG_OPEN))
    return s;
  r = w = s;
  while (*r) {
    if (strncmp(r, TAG_OPEN, 7) == 0) {
      const char *d = r + 7, *e = d;
      if (*e == '-')
        e++;
      while (*e >= '0' && *e <= '9')
        e++;
      if (*e == '"' && e[1] != ':' && er_int_text(d, (size_t)(e - d)) &&
          !er_int_text_fits(d, (size_t)(e - d), NULL)) {
        size_t k = (size_t)(e - d);
        memmove(w, d, k);
        w += k;
        r = (char *)e + 1;
        continue;
      }
    }
    if (*r == '"') {
      /* copy a whole string so a tag inside it is never seen */
      *w++ = *r++;
      while (*r && *r != '"') {
        if (*r == '\\' && r[1])
          *w++ = *r++;
        *w++ = *r++;
      }
      if (*r)
        *w++ = *r++;
      continue;
    }
    *w++ = *r++;
  }
  *w = '\0';
  return s;
}

/* ---- numbers ----------------------------------------------------------- */

bool er_num_of(const json_t *v, bool strings, er_num_t *out) {
  const char *s;
  size_t n;
  memset(out, 0, sizeof *out);
  if (json_is_integer(v)) {
    out->kind = ER_NUM_INT;
    out->i = (long long)json_integer_value(v);
    return true;
  }
  if (json_is_real(v)) {
    out->kind = ER_NUM_REAL;
    out->d = json_real_value(v);
    return isfinite(out->d);
  }
  if ((s = er_big_digits(v)) != NULL) {
    out->kind = ER_NUM_BIG;
    out->dec = s;
    out->declen = json_string_length(v) - 1;
    return true;
  }
  if (!strings || !json_is_string(v))
    return false;
  s = json_string_value(v);
  n = json_string_length(v);
  if (n == 0 || strlen(s) != n || *s == ' ' || *s == '+')
    return false;
  if (er_int_text(s, n)) {
    if (er_int_text_fits(s, n, &out->i)) {
      out->kind = ER_NUM_INT;
    } else {
      out->kind = ER_NUM_BIG;
      out->dec = s;
      out->declen = n;
    }
    return true;
  }
  {
    char *end = NULL;
    errno = 0;
    out->d = strtod(s, &end);
    out->kind = ER_NUM_REAL;
    return errno == 0 && *end == '\0' && isfinite(out->d);
  }
}

/* Signed decimal texts compared by value. */
static int dec_cmp(const char *a, size_t an, const char *b, size_t bn) {
  bool na = an > 0 && a[0] == '-', nb = bn > 0 && b[0] == '-';
  const char *da = a + (na ? 1 : 0), *db = b + (nb ? 1 : 0);
  size_t dan = an - (na ? 1 : 0), dbn = bn - (nb ? 1 : 0);
  int m;
  if (na && all_zero(da, dan))
    na = false;
  if (nb && all_zero(db, dbn))
    nb = false;
  if (na != nb)
    return na ? -1 : 1;
  m = mag_cmp(da, dan, db, dbn);
  return na ? -m : m;
}

static int cmp3(double x, double y) { return x < y ? -1 : x > y ? 1 : 0; }

/* An integer against a double, exactly. */
static int int_real_cmp(long long i, double d) {
  double t;
  long long ti;
  if (d >= 9223372036854775808.0)
    return -1;
  if (d < -9223372036854775808.0)
    return 1;
  t = trunc(d);
  ti = (long long)t;
  if (i != ti)
    return i < ti ? -1 : 1;
  return cmp3(0.0, d - t); /* same integral part: the fraction decides */
}

int er_num_cmp(const er_num_t *a, const er_num_t *b) {
  char ta[400], tb[400];
  const char *pa, *pb;
  size_t la, lb;
  if (a->kind == ER_NUM_INT && b->kind == ER_NUM_INT)
    return a->i < b->i ? -1 : a->i > b->i ? 1 : 0;
  if (a->kind == ER_NUM_REAL && b->kind == ER_NUM_REAL)
    return cmp3(a->d, b->d);
  if (a->kind == ER_NUM_INT && b->kind == ER_NUM_REAL)
    return int_real_cmp(a->i, b->d);
  if (a->kind == ER_NUM_REAL && b->kind == ER_NUM_INT)
    return -int_real_cmp(b->i, a->d);
  /* a big integer on one side: both as decimal text */
  if (a->kind == ER_NUM_REAL && a->d != trunc(a->d))
    return (b->dec[0] == '-') ? 1 : -1; /* |a| < 2^53 < |b| */
  if (b->kind == ER_NUM_REAL && b->d != trunc(b->d))
    return (a->dec[0] == '-') ? -1 : 1;
  if (a->kind == ER_NUM_BIG) {
    pa = a->dec;
    la = a->declen;
  } else {
    if (a->kind == ER_NUM_INT)
      snprintf(ta, sizeof ta, "%lld", a->i);
    else
      snprintf(ta, sizeof ta, "%.0f", a->d);
    pa = ta;
    la = strlen(ta);
  }
  if (b->kind == ER_NUM_BIG) {
    pb = b->dec;
    lb = b->declen;
  } else {
    if (b->kind == ER_NUM_INT)
      snprintf(tb, sizeof tb, "%lld", b->i);
    else
      snprintf(tb, sizeof tb, "%.0f", b->d);
    pb = tb;
    lb = strlen(tb);
  }
  return dec_cmp(pa, la, pb, lb);
}

void er_num_text(const er_num_t *n, char *out, size_t outsz) {
  switch (n->kind) {
  case ER_NUM_INT:
    snprintf(out, outsz, "%lld", n->i);
    break;
  case ER_NUM_REAL:
    snprintf(out, outsz, "%.17g", n->d);
    {
      /* the shortest text that reads back the same */
      char tmp[64];
      for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, n->d);
        if (strtod(tmp, NULL) == n->d) {
          snprintf(out, outsz, "%s", tmp);
          break;
        }
      }
    }
    break;
  case ER_NUM_BIG:
    if (n->declen + 1 > outsz && outsz > 4)
      snprintf(out, outsz, "%.*s...", (int)(outsz - 4), n->dec);
    else
      snprintf(out, outsz, "%.*s", (int)n->declen, n->dec);
    break;
  }
}
