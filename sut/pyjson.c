/* pyjson.c: json.dumps(v, sort_keys=True) as Python writes it, and the
 * SHA-256 event hash built on it. */
#include "pyjson.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decodes one UTF-8 sequence at s (jansson only holds valid UTF-8). Returns
 * its length and stores the code point. */
static size_t utf8_decode(const unsigned char *s, size_t left, unsigned *cp) {
  if (s[0] < 0x80 || left < 2) {
    *cp = s[0];
    return 1;
  }
  if ((s[0] & 0xe0) == 0xc0) {
    *cp = ((s[0] & 0x1fu) << 6) | (s[1] & 0x3fu);
    return 2;
  }
  if ((s[0] & 0xf0) == 0xe0 && left >= 3) {
    *cp = ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
    return 3;
  }
  if (left >= 4) {
    *cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) |
          ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
    return 4;
  }
  *cp = s[0];
  return 1;
}

/* A string the way json.dumps(ensure_ascii=True) writes it: printable ASCII
 * (space to '~') as is, the usual short escapes, everything else \uXXXX. */
static int dump_string(const char *str, size_t len, sbuf_t *out) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  if (sbuf_append(out, "\"", 1) < 0)
    return -1;
  while (i < len) {
    unsigned cp;
    i += utf8_decode(s + i, len - i, &cp);
    int rc;
    switch (cp) {
    case '"':
      rc = sbuf_puts(out, "\\\"");
      break;
    case '\\':
      rc = sbuf_puts(out, "\\\\");
      break;
    case '\n':
      rc = sbuf_puts(out, "\\n");
      break;
    case '\r':
      rc = sbuf_puts(out, "\\r");
      break;
    case '\t':
      rc = sbuf_puts(out, "\\t");
      break;
    case '\b':
      rc = sbuf_puts(out, "\\b");
      break;
    case '\f':
      rc = sbuf_puts(out, "\\f");
      break;
    default:
      if (cp >= 0x20 && cp <= 0x7e) {
        char c = (char)cp;
        rc = sbuf_append(out, &c, 1);
      } else if (cp < 0x10000) {
        rc = sbuf_printf(out, "\\u%04x", cp);
      } else {
        unsigned v = cp - 0x10000;
        rc = sbuf_printf(out, "\\u%04x\\u%04x", 0xd800 + (v >> 10),
                         0xdc00 + (v & 0x3ff));
      }
    }
    if (rc < 0)
      return -1;
  }
  return sbuf_append(out, "\"", 1);
}

/* Python's float repr: the shortest digit string that reads back as the
 * same double; positional when the decimal exponent is in (-4, 16],
 * scientific otherwise ("1e+16", "1.5e-07"); positional values always carry
 * a ".0" when they have no fraction. */
static int dump_real(double d, sbuf_t *out) {
  if (isnan(d))
    return sbuf_puts(out, "NaN");
  if (isinf(d))
    return sbuf_puts(out, d < 0 ? "-Infinity" : "Infinity");
  char e[40];
  int prec;
  for (prec = 1; prec <= 17; prec++) {
    snprintf(e, sizeof e, "%.*e", prec - 1, d);
    if (strtod(e, NULL) == d)
      break;
  }
  /* e is "[-]d[.ddd]e[+-]XX": collect the digits and the exponent */
  const char *p = e;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  char digits[24];
  size_t nd = 0;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9' && nd < sizeof digits - 1)
      digits[nd++] = *p;
  digits[nd] = '\0';
  int exp10 = *p == 'e' ? atoi(p + 1) : 0;
  while (nd > 1 && digits[nd - 1] == '0') /* %e may pad with zeros */
    digits[--nd] = '\0';
  if (nd == 1 && digits[0] == '0')
    exp10 = 0;
  int decpt = exp10 + 1; /* value = 0.digits * 10^decpt */
  if (neg && sbuf_puts(out, "-") < 0)
    return -1;
  if (decpt <= -4 || decpt > 16) {
    if (sbuf_append(out, digits, 1) < 0)
      return -1;
    if (nd > 1 &&
        (sbuf_puts(out, ".") < 0 || sbuf_append(out, digits + 1, nd - 1) < 0))
      return -1;
    return sbuf_printf(out, "e%c%02d", exp10 < 0 ? '-' : '+',
                       exp10 < 0 ? -exp10 : exp10);
  }
  if (decpt <= 0) { /* 0.000ddd */
    if (sbuf_puts(out, "0.") < 0)
      return -1;
    for (int i = 0; i < -decpt; i++)
      if (sbuf_puts(out, "0") < 0)
        return -1;
    return sbuf_append(out, digits, nd);
  }
  if ((size_t)decpt >= nd) { /* ddd000.0 */
    if (sbuf_append(out, digits, nd) < 0)
      return -1;
    for (size_t i = nd; i < (size_t)decpt; i++)
      if (sbuf_puts(out, "0") < 0)
        return -1;
    return sbuf_puts(out, ".0");
  }
  if (sbuf_append(out, digits, (size_t)decpt) < 0 || sbuf_puts(out, ".") < 0)
    return -1;
  return sbuf_append(out, digits + decpt, nd - (size_t)decpt);
}

static int cmp_key(const void *a, const void *b) {
  /* strcmp compares bytes as unsigned char: for UTF-8 that is code point
   * order, which is how Python sorts str keys */
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int dump_object(const json_t *v, sbuf_t *out) {
  size_t n = json_object_size(v);
  const char **keys = NULL;
  int rc = -1;
  if (n == 0)
    return sbuf_puts(out, "{}");
  keys = calloc(n, sizeof *keys);
  if (keys == NULL)
    goto out;
  size_t i = 0;
  const char *k;
  json_t *val;
  json_object_foreach((json_t *)v, k, val) keys[i++] = k;
  qsort(keys, n, sizeof *keys, cmp_key);
  if (sbuf_puts(out, "{") < 0)
    goto out;
  for (i = 0; i < n; i++) {
    if (i > 0 && sbuf_puts(out, ", ") < 0)
      goto out;
    if (dump_string(keys[i], strlen(keys[i]), out) < 0 ||
        sbuf_puts(out, ": ") < 0 ||
        pyjson_dumps(json_object_get(v, keys[i]), out) < 0)
      goto out;
  }
  rc = sbuf_puts(out, "}");
out:
  free(keys);
  return rc;
}

int pyjson_dumps(const json_t *v, sbuf_t *out) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return dump_object(v, out);
  case JSON_ARRAY: {
    if (sbuf_puts(out, "[") < 0)
      return -1;
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i > 0 && sbuf_puts(out, ", ") < 0)
        return -1;
      if (pyjson_dumps(json_array_get(v, i), out) < 0)
        return -1;
    }
    return sbuf_puts(out, "]");
  }
  case JSON_STRING:
    return dump_string(json_string_value(v), json_string_length(v), out);
  case JSON_INTEGER:
    return sbuf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  case JSON_REAL:
    return dump_real(json_real_value(v), out);
  case JSON_TRUE:
    return sbuf_puts(out, "true");
  case JSON_FALSE:
    return sbuf_puts(out, "false");
  case JSON_NULL:
    return sbuf_puts(out, "null");
  }
  return -1;
}

int pyjson_hash(const json_t *v, char out[65]) {
  sbuf_t s = SBUF_INIT(16u * 1024 * 1024);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  int rc = -1;
  if (pyjson_dumps(v, &s) < 0)
    goto out;
  if (EVP_Digest(s.len ? s.data : "", s.len, md, &mdlen, EVP_sha256(), NULL) !=
      1)
    goto out;
  for (unsigned i = 0; i < mdlen && i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  out[64] = '\0';
  rc = 0;
out:
  sbuf_free(&s);
  return rc;
}
