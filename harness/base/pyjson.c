/* pyjson.c: see pyjson.h.
 *
 * Mirrors CPython's json encoder with sort_keys=True and the defaults
 * (ensure_ascii=True, allow_nan=True, separators ", " and ": "):
 * - strings: '"' and '\\' escaped, \n \r \t \b \f as such, every other
 *   character outside ' '..'~' (so also 0x7f) as \uXXXX, characters above
 *   U+FFFF as a surrogate pair;
 * - keys sorted by code point: for valid UTF-8, byte-wise comparison
 *   (memcmp, shorter prefix first) gives exactly code point order;
 * - floats as float.__repr__: the shortest digit string that reads back
 *   as the same double, positional when -4 <= exponent < 16 ("0.0001",
 *   "1e-05", "1000000000000000.0", "1e+16"), exponent with a sign and at
 *   least two digits;
 * - integers as digits, true/false/null.
 */
#include "base/pyjson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/jsonbig.h"

/* One UTF-8 character: its length, or 0 when invalid (util.h). */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp) {
  long c;
  size_t len = er_utf8_next(s, n, &c);
  if (c < 0)
    return 0;
  *cp = (unsigned)c;
  return len;
}

/* Output of a dumps is bounded: an event payload is small. */
#define PYJSON_CAP (64u * 1024u * 1024u)
#define PYJSON_MAX_DEPTH 256

static int put_u(er_buf_t *b, unsigned u) {
  return er_buf_printf(b, "\\u%04x", u);
}

typedef struct {
  int sort;  /* sort_keys */
  int ascii; /* ensure_ascii */
  const char *item_sep, *key_sep;
} dopts_t;

static int dump_string(er_buf_t *b, const char *s, size_t n, int ascii,
                       er_err_t *err) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  if (er_buf_puts(b, "\"") != 0)
    return er_errf(err, ER_E_ENV, "out of memory");
  while (i < n) {
    unsigned cp = 0;
    size_t k = utf8_decode(p + i, n - i, &cp);
    int rc = 0;
    if (k == 0)
      return er_errf(err, ER_E_INPUT,
                     "string is not valid UTF-8 (byte 0x%02x at offset %zu)",
                     p[i], i);
    switch (cp) {
    case '"':
      rc = er_buf_puts(b, "\\\"");
      break;
    case '\\':
      rc = er_buf_puts(b, "\\\\");
      break;
    case '\n':
      rc = er_buf_puts(b, "\\n");
      break;
    case '\r':
      rc = er_buf_puts(b, "\\r");
      break;
    case '\t':
      rc = er_buf_puts(b, "\\t");
      break;
    case '\b':
      rc = er_buf_puts(b, "\\b");
      break;
    case '\f':
      rc = er_buf_puts(b, "\\f");
      break;
    default:
      if (cp >= 0x20 && cp <= 0x7E) {
        char c = (char)cp;
        rc = er_buf_append(b, &c, 1);
      } else if (!ascii && cp >= 0x20) {
        rc = er_buf_append(b, p + i, k);
      } else if (cp < 0x10000) {
        rc = put_u(b, cp);
      } else {
        unsigned v = cp - 0x10000;
        rc = put_u(b, 0xD800 | (v >> 10));
        if (rc == 0)
          rc = put_u(b, 0xDC00 | (v & 0x3FF));
      }
    }
    if (rc != 0)
      return er_errf(err, ER_E_ENV, "out of memory");
    i += k;
  }
  if (er_buf_puts(b, "\"") != 0)
    return er_errf(err, ER_E_ENV, "out of memory");
  return 0;
}

/* Writes x with %.{prec-1}e and reads it back; returns 1 on a round trip.
 * digits gets the significant digits (no dot), *exp10 the exponent. */
static int try_prec(double x, int prec, char *digits, int *exp10) {
  char tmp[64];
  char *e;
  size_t nd = 0;
  snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
  for (char *q = tmp; *q && *q != 'e'; q++)
    if (*q >= '0' && *q <= '9')
      digits[nd++] = *q;
  digits[nd] = '\0';
  e = strchr(tmp, 'e');
  *exp10 = atoi(e + 1);
  return strtod(tmp, NULL) == x;
}

/* Reads "d.ddd" x 10^exp10 back as a double. */
static double digits_value(const char *digits, int exp10) {
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%c.%se%d", digits[0], digits + 1, exp10);
  return strtod(tmp, NULL);
}

/* Adds delta (+1/-1) to the last digit of a digit string, carrying;
 * returns 0, or -1 when the result would change the digit count. */
static int bump_digits(char *digits, int *exp10, int delta) {
  size_t n = strlen(digits);
  size_t i = n;
  if (delta > 0) {
    while (i > 0 && digits[i - 1] == '9')
      digits[--i] = '0';
    if (i == 0) {
      /* 99..9 + 1 = 10..0 x 10 (the zeros are already in place) */
      digits[0] = '1';
      (*exp10)++;
      return 0;
    }
    digits[i - 1]++;
  } else {
    while (i > 0 && digits[i - 1] == '0')
      digits[--i] = '9';
    if (i == 0)
      return -1;
    digits[i - 1]--;
    if (digits[0] == '0')
      return -1; /* would lose a digit */
  }
  return 0;
}

/* Shortest significant digits that read back as x (x finite, > 0). */
static void shortest_digits(double x, char *digits, int *exp10) {
  for (int prec = 1; prec <= 17; prec++) {
    char near[32];
    int e = 0;
    if (try_prec(x, prec, near, &e)) {
      strcpy(digits, near);
      *exp10 = e;
      return;
    }
    /* The nearest prec-digit value misses; at a power of two the rounding
     * interval is lopsided and a neighbour may still read back. */
    for (int d = -1; d <= 1; d += 2) {
      char alt[32];
      int ae = e;
      strcpy(alt, near);
      if (bump_digits(alt, &ae, d) == 0 && digits_value(alt, ae) == x) {
        strcpy(digits, alt);
        *exp10 = ae;
        return;
      }
    }
  }
  try_prec(x, 17, digits, exp10); /* not reached: 17 digits always do */
}

/* Python's float.__repr__ into out (at least 32 bytes). */
static void py_float_repr(double x, char *out, size_t outsz) {
  char digits[32];
  int exp10 = 0, decpt;
  size_t nd, o = 0;
  char buf[400];

  if (isnan(x)) {
    snprintf(out, outsz, "NaN");
    return;
  }
  if (isinf(x)) {
    snprintf(out, outsz, x < 0 ? "-Infinity" : "Infinity");
    return;
  }
  if (x == 0) {
    snprintf(out, outsz, signbit(x) ? "-0.0" : "0.0");
    return;
  }
  if (x < 0)
    buf[o++] = '-';
  shortest_digits(fabs(x), digits, &exp10);
  nd = strlen(digits);
  while (nd > 1 && digits[nd - 1] == '0')
    digits[--nd] = '\0';
  decpt = exp10 + 1; /* value = 0.DIGITS x 10^decpt */
  if (decpt <= -4 || decpt > 16) {
    buf[o++] = digits[0];
    if (nd > 1) {
      buf[o++] = '.';
      memcpy(buf + o, digits + 1, nd - 1);
      o += nd - 1;
    }
    o += (size_t)snprintf(buf + o, sizeof buf - o, "e%c%02d",
                          exp10 < 0 ? '-' : '+', abs(exp10));
  } else if (decpt <= 0) {
    buf[o++] = '0';
    buf[o++] = '.';
    for (int i = 0; i < -decpt; i++)
      buf[o++] = '0';
    memcpy(buf + o, digits, nd);
    o += nd;
  } else if ((size_t)decpt >= nd) {
    memcpy(buf + o, digits, nd);
    o += nd;
    for (size_t i = nd; i < (size_t)decpt; i++)
      buf[o++] = '0';
    buf[o++] = '.';
    buf[o++] = '0';
  } else {
    memcpy(buf + o, digits, (size_t)decpt);
    o += (size_t)decpt;
    buf[o++] = '.';
    memcpy(buf + o, digits + decpt, nd - (size_t)decpt);
    o += nd - (size_t)decpt;
  }
  buf[o] = '\0';
  snprintf(out, outsz, "%s", buf);
}

typedef struct {
  const char *key;
  size_t len;
  json_t *val;
} kv_t;

static int kv_cmp(const void *a, const void *b) {
  const kv_t *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->key, y->key, n);
  if (c)
    return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

/* Appends s: 0, or -1 with err set. */
static int put(er_buf_t *b, const char *s, er_err_t *err) {
  return er_buf_puts(b, s) == 0 ? 0 : er_errf(err, ER_E_ENV, "out of memory");
}

static int dump(er_buf_t *b, const json_t *v, const dopts_t *o, int depth,
                er_err_t *err);

static int dump_object(er_buf_t *b, const json_t *v, const dopts_t *o,
                       int depth, er_err_t *err) {
  size_t n = json_object_size(v), i = 0;
  kv_t *kvs;
  int rc = -1;
  if (n == 0)
    return put(b, "{}", err);
  kvs = calloc(n, sizeof *kvs);
  if (!kvs)
    return er_errf(err, ER_E_ENV, "out of memory");
  for (void *it = json_object_iter((json_t *)v); it && i < n;
       it = json_object_iter_next((json_t *)v, it)) {
    kvs[i].key = json_object_iter_key(it);
    kvs[i].len = json_object_iter_key_len(it);
    kvs[i].val = json_object_iter_value(it);
    i++;
  }
  if (o->sort)
    qsort(kvs, i, sizeof *kvs, kv_cmp);
  if (put(b, "{", err) != 0)
    goto out;
  for (size_t j = 0; j < i; j++) {
    if ((j > 0 && put(b, o->item_sep, err) != 0) ||
        dump_string(b, kvs[j].key, kvs[j].len, o->ascii, err) != 0 ||
        put(b, o->key_sep, err) != 0 ||
        dump(b, kvs[j].val, o, depth + 1, err) != 0)
      goto out;
  }
  rc = put(b, "}", err);
out:
  free(kvs);
  return rc;
}

static int dump_array(er_buf_t *b, const json_t *v, const dopts_t *o, int depth,
                      er_err_t *err) {
  size_t n = json_array_size(v);
  if (put(b, "[", err) != 0)
    return -1;
  for (size_t j = 0; j < n; j++)
    if ((j > 0 && put(b, o->item_sep, err) != 0) ||
        dump(b, json_array_get(v, j), o, depth + 1, err) != 0)
      return -1;
  return put(b, "]", err);
}

static int dump(er_buf_t *b, const json_t *v, const dopts_t *o, int depth,
                er_err_t *err) {
  char tmp[400];
  if (depth > PYJSON_MAX_DEPTH)
    return er_errf(err, ER_E_INPUT, "value nested deeper than %d levels",
                   PYJSON_MAX_DEPTH);
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return dump_object(b, v, o, depth, err);
  case JSON_ARRAY:
    return dump_array(b, v, o, depth, err);
  case JSON_STRING:
    if (er_big_digits(v)) /* an integer beyond 64 bits, as Python prints it */
      return put(b, er_big_digits(v), err);
    return dump_string(b, json_string_value(v), json_string_length(v), o->ascii,
                       err);
  case JSON_INTEGER:
    return er_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) == 0
               ? 0
               : er_errf(err, ER_E_ENV, "out of memory");
  case JSON_REAL:
    py_float_repr(json_real_value(v), tmp, sizeof tmp);
    return put(b, tmp, err);
  case JSON_TRUE:
    return put(b, "true", err);
  case JSON_FALSE:
    return put(b, "false", err);
  case JSON_NULL:
    return put(b, "null", err);
  }
  return -1;
}

static char *dumps_with(const json_t *v, const dopts_t *o, er_err_t *err) {
  er_buf_t b = ER_BUF_INIT(PYJSON_CAP);
  char *out = NULL;
  if (!v) {
    er_errf(err, ER_E_INPUT, "no value to serialise");
    goto out;
  }
  if (dump(&b, v, o, 0, err) != 0)
    goto out;
  if (b.truncated) {
    er_errf(err, ER_E_INPUT, "serialised value exceeds %u bytes",
            (unsigned)PYJSON_CAP);
    goto out;
  }
  er_buf_cstr(&b);
  out = er_buf_steal(&b);
  if (!out)
    out = er_strdup("");
  if (!out)
    er_errf(err, ER_E_ENV, "out of memory");
out:
  er_buf_free(&b);
  return out;
}

char *er_pyjson_dumps(const json_t *v, er_err_t *err) {
  static const dopts_t o = {1, 1, ", ", ": "};
  return dumps_with(v, &o, err);
}

char *er_pyjson_compact(const json_t *v, er_err_t *err) {
  static const dopts_t o = {0, 0, ",", ":"};
  return dumps_with(v, &o, err);
}

void er_sha256_hex(const void *data, size_t len, char out[65]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
      mdlen != 32) {
    /* libcrypto cannot fail here short of running out of memory; an empty
     * string never equals a real digest */
    out[0] = '\0';
    return;
  }
  for (unsigned i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
}

int er_event_id(const json_t *v, char out[65], er_err_t *err) {
  char *text = er_pyjson_dumps(v, err);
  if (!text) {
    out[0] = '\0';
    return -1;
  }
  er_sha256_hex(text, strlen(text), out);
  free(text);
  if (out[0] == '\0')
    return er_errf(err, ER_E_ENV, "SHA-256 failed (libcrypto)");
  return 0;
}
