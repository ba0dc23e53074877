/* jsonx.c: see jsonx.h. */
#include "lang/jsonx.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/jsonbig.h"
#include "lang/jpos.h"

json_t *er_json_pointer(const json_t *root, const char *ptr) {
  const json_t *cur = root;
  const char *p = ptr;
  char tok[1024];
  if (!ptr || !*ptr)
    return (json_t *)root;
  if (*p != '/')
    return NULL;
  while (cur && *p == '/') {
    size_t n = 0;
    p++;
    while (*p && *p != '/') {
      char c = *p++;
      if (c == '~') {
        if (*p == '0')
          c = '~';
        else if (*p == '1')
          c = '/';
        else
          return NULL;
        p++;
      }
      if (n + 1 >= sizeof tok)
        return NULL;
      tok[n++] = c;
    }
    tok[n] = '\0';
    if (json_is_object(cur)) {
      cur = json_object_get(cur, tok);
    } else if (json_is_array(cur)) {
      char *end = NULL;
      unsigned long idx;
      if (n == 0 || (n > 1 && tok[0] == '0'))
        return NULL;
      errno = 0;
      idx = strtoul(tok, &end, 10);
      if (errno || *end)
        return NULL;
      cur = json_array_get(cur, idx);
    } else {
      return NULL;
    }
  }
  return (json_t *)cur;
}

/* ---- equality ---------------------------------------------------------- */

bool er_json_equal(const json_t *a, const json_t *b) {
  er_num_t x, y;
  if (!a || !b)
    return a == b;
  if (er_num_of(a, false, &x) || er_num_of(b, false, &y)) {
    /* a number on one side: numbers and numeric strings by value */
    return er_num_of(a, true, &x) && er_num_of(b, true, &y) &&
           er_num_cmp(&x, &y) == 0;
  }
  if (json_typeof(a) != json_typeof(b))
    return false;
  switch (json_typeof(a)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *va;
    if (json_object_size(a) != json_object_size(b))
      return false;
    json_object_foreach((json_t *)a, k, va) {
      if (!er_json_equal(va, json_object_get(b, k)))
        return false;
    }
    return true;
  }
  case JSON_ARRAY:
    if (json_array_size(a) != json_array_size(b))
      return false;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!er_json_equal(json_array_get(a, i), json_array_get(b, i)))
        return false;
    return true;
  case JSON_STRING:
    return json_string_length(a) == json_string_length(b) &&
           memcmp(json_string_value(a), json_string_value(b),
                  json_string_length(a)) == 0;
  default:
    return true; /* true/false/null of the same type */
  }
}

/* ---- operators --------------------------------------------------------- */

static const char *const g_ops[] = {
    "$eq",      "$ne",     "$gt",    "$gte",      "$lt",  "$lte",
    "$exists",  "$regex",  "$flags", "$contains", "$len", "$in",
    "$nin",     "$type",   "$set",   "$subset",   "$not", "$and",
    "$or",      "$count",  "$each",  "$all",      "$any", "$nth",
    "$isoDate", "$before", "$after", "$uuid",
};

static const char *const g_types[] = {"string", "number", "integer", "boolean",
                                      "null",   "array",  "object"};

/* "$gte" is an operator; "${slot}" is a templated key, not one */
static bool is_op_key(const char *k) { return k[0] == '$' && k[1] != '{'; }

bool er_json_is_matcher(const json_t *e) {
  const char *k;
  json_t *v;
  if (!json_is_object(e) || json_object_size(e) == 0)
    return false;
  json_object_foreach((json_t *)e, k, v) {
    if (!is_op_key(k))
      return false;
  }
  return true;
}

static bool is_op(const char *k, const char *op) { return strcmp(k, op) == 0; }

static bool is_cmp_op(const char *k) {
  return is_op(k, "$gt") || is_op(k, "$gte") || is_op(k, "$lt") ||
         is_op(k, "$lte");
}

/* Operators that see the list of values a JSONPath selected. */
static bool is_list_op(const char *k) {
  return is_op(k, "$count") || is_op(k, "$each") || is_op(k, "$all") ||
         is_op(k, "$any") || is_op(k, "$nth");
}

/* ---- times and UUIDs --------------------------------------------------- */

typedef struct etime {
  int64_t sec;
  long nsec;
} etime_t;

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  int64_t era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static bool num_at(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

/* RFC 3339: a date-time ("2024-05-01T12:00:00Z", "...T12:00:00.5+02:00")
 * or, with date_ok, a full-date ("2024-05-01", midnight UTC). */
static bool parse_rfc3339(const char *s, bool date_ok, etime_t *t) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0, sign = 0, dim;
  long ns = 0;
  const char *p;
  if (strlen(s) < 10 || !num_at(s, 4, &y) || s[4] != '-' ||
      !num_at(s + 5, 2, &mo) || s[7] != '-' || !num_at(s + 8, 2, &d))
    return false;
  if (mo < 1 || mo > 12)
    return false;
  dim = mdays[mo - 1] +
        (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0) ? 1 : 0);
  if (d < 1 || d > dim)
    return false;
  if (s[10] == '\0') {
    if (!date_ok)
      return false;
  } else {
    if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || strlen(s) < 20 ||
        !num_at(s + 11, 2, &h) || s[13] != ':' || !num_at(s + 14, 2, &mi) ||
        s[16] != ':' || !num_at(s + 17, 2, &se))
      return false;
    if (h > 23 || mi > 59 || se > 60)
      return false;
    p = s + 19;
    if (*p == '.') {
      long scale = 100000000;
      p++;
      if (*p < '0' || *p > '9')
        return false;
      for (; *p >= '0' && *p <= '9'; p++) {
        ns += (*p - '0') * scale;
        scale /= 10;
      }
    }
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      sign = *p == '+' ? 1 : -1;
      if (!num_at(p + 1, 2, &oh) || p[3] != ':' || !num_at(p + 4, 2, &om) ||
          oh > 23 || om > 59)
        return false;
      p += 6;
    } else {
      return false;
    }
    if (*p)
      return false;
  }
  t->sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se -
           sign * (oh * 3600 + om * 60);
  t->nsec = ns;
  return true;
}

static void now_time(etime_t *t) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  t->sec = ts.tv_sec;
  t->nsec = ts.tv_nsec;
}

/* The operand of $before / $after: "now", "now+5m", "now-1h" or an
 * RFC 3339 date-time or date. */
static bool parse_when(const char *s, etime_t *t) {
  if (strncmp(s, "now", 3) == 0) {
    int64_t ms = 0;
    now_time(t);
    if (s[3] == '\0')
      return true;
    if ((s[3] != '+' && s[3] != '-') || er_parse_duration(s + 4, &ms) != 0)
      return false;
    if (s[3] == '-')
      ms = -ms;
    t->sec += ms / 1000;
    t->nsec += (long)(ms % 1000) * 1000000;
    if (t->nsec < 0) {
      t->nsec += 1000000000;
      t->sec--;
    } else if (t->nsec >= 1000000000) {
      t->nsec -= 1000000000;
      t->sec++;
    }
    return true;
  }
  return parse_rfc3339(s, true, t);
}

static int time_cmp(const etime_t *a, const etime_t *b) {
  if (a->sec != b->sec)
    return a->sec < b->sec ? -1 : 1;
  return a->nsec < b->nsec ? -1 : a->nsec > b->nsec ? 1 : 0;
}

static void time_text(const etime_t *t, char *out, size_t n) {
  time_t s = (time_t)t->sec;
  struct tm tm;
  char b[24];
  if (!gmtime_r(&s, &tm) ||
      strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
    snprintf(out, n, "?");
    return;
  }
  snprintf(out, n, "%.19s.%03dZ", b, (int)(t->nsec / 1000000) % 1000);
}

/* 8-4-4-4-12 hex digits (either case); *version: the version digit. */
static bool is_uuid(const char *s, size_t n, int *version) {
  if (n != 36)
    return false;
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return false;
    } else if (er_hexval((unsigned char)s[i]) < 0) {
      return false;
    }
  }
  *version = er_hexval((unsigned char)s[14]);
  return true;
}

/* ---- checking a matcher's shape ---------------------------------------- */

typedef struct chk {
  char *msg;
  size_t msgsz;
  er_buf_t at; /* pointer of the problem inside the matcher */
} chk_t;

static int check_rec(chk_t *c, const json_t *e, int depth);

static int chk_fail(chk_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int chk_fail(chk_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->msg, c->msgsz, fmt, ap);
  va_end(ap);
  return -1;
}

static int check_elems(chk_t *c, const json_t *arr, int depth) {
  for (size_t i = 0; i < json_array_size(arr); i++) {
    size_t mark = c->at.len;
    er_buf_printf(&c->at, "/%zu", i);
    if (check_rec(c, json_array_get(arr, i), depth + 1) != 0)
      return -1;
    c->at.len = mark;
    if (c->at.data)
      c->at.data[mark] = '\0';
  }
  return 0;
}

static bool templated(const json_t *v) {
  return json_is_string(v) && strstr(json_string_value(v), "${") != NULL;
}

static bool numeric_operand(const json_t *v) {
  er_num_t n;
  return er_num_of(v, true, &n);
}

static int regex_flags(const json_t *flags, int *cflags) {
  const char *f = json_string_value(flags);
  *cflags = REG_EXTENDED | REG_NOSUB;
  if (!flags)
    return 0;
  if (!f)
    return -1;
  for (; *f; f++) {
    if (*f == 'i')
      *cflags |= REG_ICASE;
    else if (*f == 'm')
      *cflags |= REG_NEWLINE;
    else
      return -1;
  }
  return 0;
}

/* One operator k with operand v of matcher e (c->at points at k). */
static int check_op(chk_t *c, const json_t *e, const char *k, const json_t *v,
                    int depth) {
  bool known = false;
  for (size_t i = 0; i < sizeof g_ops / sizeof g_ops[0]; i++)
    if (is_op(k, g_ops[i]))
      known = true;
  if (!known) {
    const char *dym = er_did_you_mean(k, g_ops, sizeof g_ops / sizeof g_ops[0]);
    return chk_fail(c, "unknown operator '%s'%s%s%s", k,
                    dym ? " (did you mean '" : "", dym ? dym : "",
                    dym ? "'?)" : "");
  }
  if (is_op(k, "$flags") && !json_object_get(e, "$regex"))
    return chk_fail(c, "'$flags' goes with '$regex' in the same object");
  if (templated(v))
    return 0; /* its type is known only once expanded */
  if (is_cmp_op(k) && !numeric_operand(v))
    return chk_fail(c, "'%s' needs a number", k);
  if (is_op(k, "$exists") && !json_is_boolean(v))
    return chk_fail(c, "'$exists' needs true or false");
  if (is_op(k, "$isoDate") && !json_is_boolean(v))
    return chk_fail(c, "'$isoDate' needs true or false");
  if (is_op(k, "$uuid") && !json_is_boolean(v) &&
      !(json_is_integer(v) && json_integer_value(v) >= 1 &&
        json_integer_value(v) <= 8))
    return chk_fail(c, "'$uuid' needs true, false or a version (1 to 8)");
  if (is_op(k, "$before") || is_op(k, "$after")) {
    etime_t t;
    if (!json_is_string(v) || !parse_when(json_string_value(v), &t))
      return chk_fail(c,
                      "'%s' needs \"now\", \"now+5m\", \"now-1h\" or an RFC "
                      "3339 time such as \"2024-05-01T12:00:00Z\"",
                      k);
  }
  if (is_op(k, "$flags")) {
    int cf;
    if (regex_flags(v, &cf) != 0)
      return chk_fail(c, "'$flags' is a string of flags: i (ignore case), m "
                         "(^ and $ at line ends)");
  }
  if (is_op(k, "$regex")) {
    regex_t re;
    int cf;
    if (!json_is_string(v))
      return chk_fail(c, "'$regex' needs a string");
    if (regex_flags(json_object_get(e, "$flags"), &cf) != 0)
      cf = REG_EXTENDED | REG_NOSUB;
    if (regcomp(&re, json_string_value(v), cf))
      return chk_fail(c, "'$regex' is not a valid extended regex");
    regfree(&re);
  }
  if ((is_op(k, "$in") || is_op(k, "$nin") || is_op(k, "$set")) &&
      !json_is_array(v))
    return chk_fail(c, "'%s' needs an array", k);
  if ((is_op(k, "$and") || is_op(k, "$or")) &&
      (!json_is_array(v) || json_array_size(v) == 0))
    return chk_fail(c, "'%s' needs a non-empty array of matchers", k);
  if (is_op(k, "$type")) {
    const char *dym;
    if (!json_is_string(v))
      return chk_fail(c, "'$type' needs a type name");
    for (size_t i = 0; i < sizeof g_types / sizeof g_types[0]; i++)
      if (is_op(json_string_value(v), g_types[i]))
        return 0;
    dym = er_did_you_mean(json_string_value(v), g_types,
                          sizeof g_types / sizeof g_types[0]);
    return chk_fail(c,
                    "'$type': unknown type '%s'%s%s%s (string, number, "
                    "integer, boolean, null, array, object)",
                    json_string_value(v), dym ? " (did you mean '" : "",
                    dym ? dym : "", dym ? "'?)" : "");
  }
  if (is_op(k, "$subset") && !json_is_object(v) && !json_is_array(v))
    return chk_fail(c, "'$subset' needs an object or an array");
  if (is_op(k, "$nth")) {
    if (!json_is_array(v) || json_array_size(v) != 2 ||
        !json_is_integer(json_array_get(v, 0)))
      return chk_fail(c, "'$nth' needs [index, matcher] (index from 0; "
                         "negative from the end)");
    er_buf_puts(&c->at, "/1");
    return check_rec(c, json_array_get(v, 1), depth + 1);
  }
  /* operands that are matchers themselves */
  if (is_op(k, "$in") || is_op(k, "$nin") || is_op(k, "$set") ||
      is_op(k, "$and") || is_op(k, "$or"))
    return check_elems(c, v, depth);
  if (is_op(k, "$eq") || is_op(k, "$subset") || is_op(k, "$not") ||
      is_op(k, "$contains") || is_op(k, "$len") || is_op(k, "$count") ||
      is_op(k, "$each") || is_op(k, "$all") || is_op(k, "$any"))
    return check_rec(c, v, depth + 1);
  return 0;
}

static int check_rec(chk_t *c, const json_t *e, int depth) {
  const char *k;
  json_t *v;
  if (depth > 200)
    return chk_fail(c, "the matcher is nested too deeply");
  if (!er_json_is_matcher(e)) {
    if (json_is_object(e)) {
      json_object_foreach((json_t *)e, k, v) {
        size_t mark = c->at.len;
        er_jpos_append_token(&c->at, k);
        if (is_op_key(k))
          return chk_fail(c,
                          "'%s' mixes operators with plain keys; use only $ "
                          "operators or only literal keys",
                          k);
        if (check_rec(c, v, depth + 1) != 0)
          return -1;
        c->at.len = mark;
        if (c->at.data)
          c->at.data[mark] = '\0';
      }
    } else if (json_is_array(e)) {
      return check_elems(c, e, depth);
    }
    return 0;
  }
  json_object_foreach((json_t *)e, k, v) {
    size_t mark = c->at.len;
    er_jpos_append_token(&c->at, k);
    if (check_op(c, e, k, v, depth) != 0)
      return -1;
    c->at.len = mark;
    if (c->at.data)
      c->at.data[mark] = '\0';
  }
  return 0;
}

int er_json_matcher_check_at(const json_t *e, char *msg, size_t msgsz, char *at,
                             size_t atsz) {
  chk_t c = {msg, msgsz, ER_BUF_INIT(64 * 1024)};
  int rc = check_rec(&c, e, 0);
  if (at && atsz)
    snprintf(at, atsz, "%s", rc != 0 ? er_buf_cstr(&c.at) : "");
  er_buf_free(&c.at);
  return rc;
}

int er_json_matcher_check(const json_t *e, char *msg, size_t msgsz) {
  return er_json_matcher_check_at(e, msg, msgsz, NULL, 0);
}

char *er_json_brief(const json_t *v, size_t max) {
  char *s;
  size_t n;
  if (!v)
    return er_strdup("(missing)");
  s = er_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s)
    return er_strdup("?");
  n = strlen(s);
  if (max >= 8 && n > max) {
    size_t cut = er_utf8_cut(s, n, max - 3);
    memcpy(s + cut, "...", 4);
  }
  return s;
}

static const char *type_name(const json_t *v) {
  if (!v)
    return "missing";
  if (er_big_digits(v))
    return "integer";
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
    return "integer";
  case JSON_REAL:
    return "number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "boolean";
  default:
    return "null";
  }
}

/* ---- matching ---------------------------------------------------------- */

/* The values a JSONPath selected, for the list operators. */
typedef struct list {
  const json_t *nodes; /* array */
  const json_t *paths; /* their JSON pointers, or NULL: "/<index>" below */
} list_t;

typedef struct m {
  er_buf_t *why; /* NULL: silent */
  er_buf_t path; /* JSON pointer of the value being matched */
  size_t quiet;  /* messages say "at <path>" only below this length */
  int depth;
} m_t;

static void say(m_t *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(m_t *m, const char *fmt, ...) {
  va_list ap;
  if (!m->why)
    return;
  if (m->path.len > m->quiet)
    er_buf_printf(m->why, "at %s: ", er_buf_cstr(&m->path));
  va_start(ap, fmt);
  er_buf_vprintf(m->why, fmt, ap);
  va_end(ap);
}

/* fmt has two %s: the expected value and the actual one. */
static void say_ea(m_t *m, const char *fmt, const json_t *exp,
                   const json_t *act) {
  char *e, *a;
  if (!m->why)
    return;
  e = er_json_brief(exp, 200);
  a = er_json_brief(act, 200);
  say(m, fmt, e ? e : "?", a ? a : "?");
  free(e);
  free(a);
}

static size_t push_key(m_t *m, const char *k) {
  size_t mark = m->path.len;
  er_jpos_append_token(&m->path, k);
  return mark;
}

static size_t push_index(m_t *m, size_t i) {
  size_t mark = m->path.len;
  er_buf_printf(&m->path, "/%zu", i);
  return mark;
}

static void pop(m_t *m, size_t mark) {
  m->path.len = mark;
  if (m->path.data)
    m->path.data[mark] = '\0';
}

/* Element i of a list: its own pointer when known. Returns what leave_el
 * needs. */
typedef struct el_mark {
  size_t mark;
  char *saved;
} el_mark_t;

static el_mark_t enter_el(m_t *m, const list_t *l, size_t i) {
  el_mark_t em = {m->path.len, NULL};
  const char *p =
      l->paths ? json_string_value(json_array_get(l->paths, i)) : NULL;
  if (!p) {
    push_index(m, i);
    return em;
  }
  em.saved = er_strdup(er_buf_cstr(&m->path));
  er_buf_reset(&m->path);
  er_buf_puts(&m->path, p);
  return em;
}

static void leave_el(m_t *m, el_mark_t em) {
  if (em.saved) {
    er_buf_reset(&m->path);
    er_buf_puts(&m->path, em.saved);
    free(em.saved);
  } else {
    pop(m, em.mark);
  }
}

static bool match(m_t *m, const json_t *act, const json_t *exp,
                  const list_t *list);
static bool subset(m_t *m, const json_t *act, const json_t *exp);

static bool quiet_match(m_t *m, const json_t *act, const json_t *exp,
                        const list_t *list) {
  er_buf_t *w = m->why;
  bool ok;
  m->why = NULL;
  ok = match(m, act, exp, list);
  m->why = w;
  return ok;
}

static bool quiet_subset(m_t *m, const json_t *act, const json_t *exp) {
  er_buf_t *w = m->why;
  bool ok;
  m->why = NULL;
  ok = subset(m, act, exp);
  m->why = w;
  return ok;
}

static bool op_compare(m_t *m, const json_t *act, const char *op,
                       const json_t *arg) {
  er_num_t x, y;
  char xs[80], ys[80];
  int c;
  bool ok;
  const char *sym = is_op(op, "$gt")    ? ">"
                    : is_op(op, "$gte") ? ">="
                    : is_op(op, "$lt")  ? "<"
                                        : "<=";
  if (!er_num_of(arg, true, &y)) {
    say(m, "bad matcher: '%s' needs a number", op);
    return false;
  }
  er_num_text(&y, ys, sizeof ys);
  if (!act || !er_num_of(act, true, &x)) {
    char *a = er_json_brief(act, 200);
    say(m, "expected a number %s %s, got %s", sym, ys, a ? a : "?");
    free(a);
    return false;
  }
  c = er_num_cmp(&x, &y);
  ok = is_op(op, "$gt")    ? c > 0
       : is_op(op, "$gte") ? c >= 0
       : is_op(op, "$lt")  ? c < 0
                           : c <= 0;
  if (!ok) {
    er_num_text(&x, xs, sizeof xs);
    say(m, "expected %s %s, got %s", sym, ys, xs);
  }
  return ok;
}

static bool op_regex(m_t *m, const json_t *act, const json_t *arg,
                     const json_t *exp) {
  regex_t re;
  int cflags;
  bool ok;
  const json_t *flags = json_object_get(exp, "$flags");
  if (!json_is_string(act) || er_big_digits(act)) {
    say_ea(m, "expected a string matching %s, got %s", arg, act);
    return false;
  }
  if (regex_flags(flags, &cflags) != 0 ||
      regcomp(&re, json_string_value(arg), cflags) != 0) {
    say(m, "bad $regex");
    return false;
  }
  ok = regexec(&re, json_string_value(act), 0, NULL, 0) == 0;
  regfree(&re);
  if (!ok) {
    if (flags)
      say_ea(m, "expected a string matching %s (case ignored), got %s", arg,
             act);
    else
      say_ea(m, "expected a string matching %s, got %s", arg, act);
  }
  return ok;
}

static bool op_contains(m_t *m, const json_t *act, const json_t *arg) {
  if (json_is_array(act)) {
    for (size_t i = 0; i < json_array_size(act); i++) {
      size_t mark = push_index(m, i);
      bool ok = quiet_match(m, json_array_get(act, i), arg, NULL);
      pop(m, mark);
      if (ok)
        return true;
    }
  } else if (json_is_string(act) && json_is_string(arg)) {
    if (strstr(json_string_value(act), json_string_value(arg)))
      return true;
  } else if (json_is_object(act) && json_is_string(arg)) {
    if (json_object_get(act, json_string_value(arg)))
      return true;
  }
  say_ea(m, "expected something containing %s, got %s", arg, act);
  return false;
}

static bool op_len(m_t *m, const json_t *act, const json_t *arg) {
  json_t *len;
  bool ok;
  size_t n;
  if (json_is_string(act) && !er_big_digits(act))
    n = json_string_length(act);
  else if (json_is_array(act))
    n = json_array_size(act);
  else if (json_is_object(act))
    n = json_object_size(act);
  else {
    say_ea(m, "expected something with a length %s, got %s", arg, act);
    return false;
  }
  len = json_integer((json_int_t)n);
  ok = quiet_match(m, len, arg, NULL);
  if (!ok && m->why) {
    char *e = er_json_brief(arg, 200);
    say(m, "expected length %s, got length %zu", e ? e : "?", n);
    free(e);
  }
  json_decref(len);
  return ok;
}

static bool op_set(m_t *m, const json_t *act, const json_t *arg) {
  /* unordered equality: same size, every expected element matched by a
   * distinct actual element */
  size_t n = json_array_size(arg);
  bool ok = json_is_array(act) && json_array_size(act) == n;
  char *used = ok ? calloc(n ? n : 1, 1) : NULL;
  if (ok && !used)
    ok = false;
  for (size_t i = 0; ok && i < n; i++) {
    bool found = false;
    for (size_t j = 0; j < n && !found; j++) {
      if (!used[j] && quiet_match(m, json_array_get(act, j),
                                  json_array_get(arg, i), NULL)) {
        used[j] = 1;
        found = true;
      }
    }
    ok = found;
  }
  free(used);
  if (!ok)
    say_ea(m, "expected the set %s (any order), got %s", arg, act);
  return ok;
}

/* The list the list operators work on: the JSONPath's values, or an
 * array value. */
static bool get_list(m_t *m, const json_t *act, const list_t *list,
                     const char *op, list_t *out) {
  if (list) {
    *out = *list;
    return true;
  }
  if (json_is_array(act)) {
    out->nodes = act;
    out->paths = NULL;
    return true;
  }
  {
    char *a = er_json_brief(act, 200);
    say(m, "'%s' needs an array or the values of a JSONPath, got %s", op,
        a ? a : "?");
    free(a);
  }
  return false;
}

static bool op_list(m_t *m, const json_t *act, const char *op,
                    const json_t *arg, const list_t *list) {
  list_t l;
  size_t n;
  if (!get_list(m, act, list, op, &l))
    return false;
  n = json_array_size(l.nodes);
  if (is_op(op, "$count")) {
    json_t *cnt = json_integer((json_int_t)n);
    bool ok = quiet_match(m, cnt, arg, NULL);
    json_decref(cnt);
    if (!ok && m->why) {
      char *e = er_json_brief(arg, 200);
      say(m, "expected count %s, got %zu", e ? e : "?", n);
      free(e);
    }
    return ok;
  }
  if (is_op(op, "$each") || is_op(op, "$all")) {
    if (n == 0) {
      char *e = er_json_brief(arg, 200);
      say(m, "expected every value to match %s, but there is none",
          e ? e : "?");
      free(e);
      return false;
    }
    for (size_t i = 0; i < n; i++) {
      el_mark_t em = enter_el(m, &l, i);
      bool ok = match(m, json_array_get(l.nodes, i), arg, NULL);
      leave_el(m, em);
      if (!ok)
        return false;
    }
    return true;
  }
  if (is_op(op, "$any")) {
    for (size_t i = 0; i < n; i++) {
      el_mark_t em = enter_el(m, &l, i);
      bool ok = quiet_match(m, json_array_get(l.nodes, i), arg, NULL);
      leave_el(m, em);
      if (ok)
        return true;
    }
    say_ea(m, "expected some value to match %s, got %s", arg, l.nodes);
    return false;
  }
  /* $nth */
  {
    long long i = (long long)json_integer_value(json_array_get(arg, 0));
    long long k = i < 0 ? (long long)n + i : i;
    el_mark_t em;
    bool ok;
    if (k < 0 || k >= (long long)n) {
      say(m, "expected a value at index %lld, got %zu value(s)", i, n);
      return false;
    }
    em = enter_el(m, &l, (size_t)k);
    ok = match(m, json_array_get(l.nodes, (size_t)k), json_array_get(arg, 1),
               NULL);
    leave_el(m, em);
    return ok;
  }
}

static bool op_time(m_t *m, const json_t *act, const char *op,
                    const json_t *arg) {
  etime_t want, have;
  char ws[48];
  bool before = is_op(op, "$before");
  if (!json_is_string(arg) || !parse_when(json_string_value(arg), &want)) {
    say(m, "bad matcher: '%s' needs \"now\", \"now+5m\" or an RFC 3339 time",
        op);
    return false;
  }
  time_text(&want, ws, sizeof ws);
  if (!json_is_string(act) ||
      !parse_rfc3339(json_string_value(act), true, &have)) {
    char *a = er_json_brief(act, 200);
    say(m, "expected an RFC 3339 time %s %s (%s), got %s",
        before ? "before" : "after", ws, json_string_value(arg), a ? a : "?");
    free(a);
    return false;
  }
  if (before ? time_cmp(&have, &want) < 0 : time_cmp(&have, &want) > 0)
    return true;
  {
    char *a = er_json_brief(act, 200);
    say(m, "expected a time %s %s (%s), got %s", before ? "before" : "after",
        ws, json_string_value(arg), a ? a : "?");
    free(a);
  }
  return false;
}

static bool op_exists(m_t *m, const json_t *act, const json_t *arg,
                      const list_t *list) {
  bool want = json_is_true(arg);
  bool have = list ? json_array_size(list->nodes) > 0 : act != NULL;
  if (want != have)
    say(m, "expected %s, got %s", want ? "present" : "absent",
        have ? "present" : "missing");
  return want == have;
}

/* $in (want_in) or $nin */
static bool op_in(m_t *m, const json_t *act, const json_t *arg, bool want_in) {
  bool in = false;
  for (size_t i = 0; i < json_array_size(arg) && !in; i++)
    in = quiet_match(m, act, json_array_get(arg, i), NULL);
  if (in != want_in)
    say_ea(m, in ? "expected none of %s, got %s" : "expected one of %s, got %s",
           arg, act);
  return in == want_in;
}

static bool op_type(m_t *m, const json_t *act, const json_t *arg) {
  const char *want = json_string_value(arg);
  const char *have = type_name(act);
  bool ok = !strcmp(want, have) ||
            (!strcmp(want, "number") && !strcmp(have, "integer"));
  if (!ok)
    say(m, "expected a value of type %s, got %s", want, have);
  return ok;
}

/* $not, $and, $or */
static bool op_logic(m_t *m, const json_t *act, const char *op,
                     const json_t *arg, const list_t *list) {
  if (is_op(op, "$not")) {
    if (quiet_match(m, act, arg, list)) {
      say_ea(m, "expected something that does not match %s, got %s", arg, act);
      return false;
    }
    return true;
  }
  if (is_op(op, "$and")) {
    for (size_t i = 0; i < json_array_size(arg); i++)
      if (!match(m, act, json_array_get(arg, i), list))
        return false;
    return true;
  }
  for (size_t i = 0; i < json_array_size(arg); i++) /* $or */
    if (quiet_match(m, act, json_array_get(arg, i), list))
      return true;
  say_ea(m, "expected something matching one of %s, got %s", arg, act);
  return false;
}

static bool op_isodate(m_t *m, const json_t *act, const json_t *arg) {
  etime_t t;
  bool have =
      json_is_string(act) && parse_rfc3339(json_string_value(act), true, &t);
  if (have != json_is_true(arg)) {
    char *a = er_json_brief(act, 200);
    say(m, "expected %san RFC 3339 date or date-time, got %s",
        have ? "no " : "", a ? a : "?");
    free(a);
  }
  return have == json_is_true(arg);
}

static bool op_uuid(m_t *m, const json_t *act, const json_t *arg) {
  int ver = -1;
  bool have = json_is_string(act) &&
              is_uuid(json_string_value(act), json_string_length(act), &ver);
  bool want = !json_is_false(arg);
  if (have && json_is_integer(arg) && ver != json_integer_value(arg)) {
    char *a = er_json_brief(act, 200);
    say(m, "expected a version %lld UUID, got %s (version %d)",
        (long long)json_integer_value(arg), a ? a : "?", ver);
    free(a);
    return false;
  }
  if (have != want) {
    char *a = er_json_brief(act, 200);
    say(m, "expected %sa UUID, got %s", have ? "no " : "", a ? a : "?");
    free(a);
  }
  return have == want;
}

static bool match_op(m_t *m, const json_t *act, const char *op,
                     const json_t *arg, const json_t *exp, const list_t *list) {
  if (is_op(op, "$exists"))
    return op_exists(m, act, arg, list);
  if (is_op(op, "$eq"))
    return match(m, act, arg, list);
  if (is_op(op, "$ne")) {
    if (act && er_json_equal(act, arg)) {
      say_ea(m, "expected anything but %s, got %s", arg, act);
      return false;
    }
    return true;
  }
  if (is_cmp_op(op))
    return op_compare(m, act, op, arg);
  if (is_op(op, "$regex"))
    return op_regex(m, act, arg, exp);
  if (is_op(op, "$flags"))
    return true; /* read by $regex */
  if (is_op(op, "$contains"))
    return op_contains(m, act, arg);
  if (is_op(op, "$len"))
    return op_len(m, act, arg);
  if (is_op(op, "$in") || is_op(op, "$nin"))
    return op_in(m, act, arg, is_op(op, "$in"));
  if (is_op(op, "$type"))
    return op_type(m, act, arg);
  if (is_op(op, "$set"))
    return op_set(m, act, arg);
  if (is_op(op, "$subset"))
    return subset(m, act, arg);
  if (is_op(op, "$not") || is_op(op, "$and") || is_op(op, "$or"))
    return op_logic(m, act, op, arg, list);
  if (is_list_op(op))
    return op_list(m, act, op, arg, list);
  if (is_op(op, "$isoDate"))
    return op_isodate(m, act, arg);
  if (is_op(op, "$before") || is_op(op, "$after"))
    return op_time(m, act, op, arg);
  if (is_op(op, "$uuid"))
    return op_uuid(m, act, arg);
  say(m, "unknown operator %s", op);
  return false;
}

/* Operators that hold or fail on a missing value by themselves. */
static bool takes_missing(const char *op, const list_t *list) {
  return is_op(op, "$exists") || is_op(op, "$not") || is_op(op, "$and") ||
         is_op(op, "$or") || is_op(op, "$flags") || (list && is_list_op(op));
}

static bool match_ops(m_t *m, const json_t *act, const json_t *exp,
                      const list_t *list) {
  const char *k;
  json_t *v;
  bool has_exists = json_object_get(exp, "$exists") != NULL;
  json_object_foreach((json_t *)exp, k, v) {
    if (!act && !takes_missing(k, list)) {
      if (has_exists)
        continue;
      say(m, "expected a value, got nothing (missing)");
      return false;
    }
    if (!match_op(m, act, k, v, exp, list))
      return false;
  }
  return true;
}

static bool match_object(m_t *m, const json_t *act, const json_t *exp) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)exp, k, v) {
    size_t mark = push_key(m, k);
    bool ok = match(m, json_object_get(act, k), v, NULL);
    pop(m, mark);
    if (!ok)
      return false;
  }
  json_object_foreach((json_t *)act, k, v) {
    if (!json_object_get(exp, k)) {
      char *a = er_json_brief(act, 200);
      say(m, "unexpected key \"%s\" in %s", k, a ? a : "?");
      free(a);
      return false;
    }
  }
  return true;
}

static bool match_array(m_t *m, const json_t *act, const json_t *exp,
                        const list_t *list) {
  size_t n = json_array_size(exp);
  list_t own = {act, NULL};
  const list_t *l = (list && act == list->nodes) ? list : &own;
  if (json_array_size(act) != n) {
    char *a = er_json_brief(act, 200);
    say(m, "expected %zu element(s), got %zu: %s", n, json_array_size(act),
        a ? a : "?");
    free(a);
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    el_mark_t em = enter_el(m, l, i);
    bool ok = match(m, json_array_get(act, i), json_array_get(exp, i), NULL);
    leave_el(m, em);
    if (!ok)
      return false;
  }
  return true;
}

/* Enters one level of a comparison; false (and a message) past 400
 * levels, where the caller stops without entering. */
static bool too_deep(m_t *m) {
  if (++m->depth <= 400)
    return false;
  say(m, "the values are nested too deeply to compare");
  m->depth--;
  return true;
}

static bool match(m_t *m, const json_t *act, const json_t *exp,
                  const list_t *list) {
  bool ok;
  if (too_deep(m))
    return false;
  if (er_json_is_matcher(exp)) {
    ok = match_ops(m, act, exp, list);
  } else if (json_is_object(exp) && json_is_object(act)) {
    ok = match_object(m, act, exp);
  } else if (json_is_array(exp) && json_is_array(act)) {
    ok = match_array(m, act, exp, list);
  } else {
    ok = act && er_json_equal(act, exp);
    if (!ok)
      say_ea(m, "expected %s, got %s", exp, act);
  }
  m->depth--;
  return ok;
}

/* $subset, deeply: objects need (at least) the expected keys, arrays hold
 * elements matching the expected ones (in any order), each compared the
 * same way; matchers keep their meaning. */
static bool subset(m_t *m, const json_t *act, const json_t *exp) {
  bool ok = true;
  if (too_deep(m))
    return false;
  if (er_json_is_matcher(exp)) {
    ok = match(m, act, exp, NULL);
  } else if (json_is_object(exp)) {
    const char *k;
    json_t *v;
    if (!json_is_object(act)) {
      say_ea(m, "expected an object with %s, got %s", exp, act);
      ok = false;
    } else {
      json_object_foreach((json_t *)exp, k, v) {
        size_t mark = push_key(m, k);
        ok = subset(m, json_object_get(act, k), v);
        pop(m, mark);
        if (!ok)
          break;
      }
    }
  } else if (json_is_array(exp)) {
    if (!json_is_array(act)) {
      say_ea(m, "expected an array holding %s, got %s", exp, act);
      ok = false;
    }
    for (size_t i = 0; ok && i < json_array_size(exp); i++) {
      const json_t *e = json_array_get(exp, i);
      bool found = false;
      for (size_t j = 0; j < json_array_size(act) && !found; j++) {
        size_t mark = push_index(m, j);
        found = quiet_subset(m, json_array_get(act, j), e);
        pop(m, mark);
      }
      if (!found) {
        say_ea(m, "expected an element matching %s, got %s", e, act);
        ok = false;
      }
    }
  } else {
    ok = act && er_json_equal(act, exp);
    if (!ok)
      say_ea(m, "expected %s, got %s", exp, act);
  }
  m->depth--;
  return ok;
}

static bool run_match(const json_t *act, const json_t *exp, const char *where,
                      size_t quiet, const list_t *list, er_buf_t *why) {
  m_t m;
  char bad[512];
  bool ok;
  /* operands filled in by templates are checked once expanded */
  if (er_json_matcher_check(exp, bad, sizeof bad) != 0) {
    if (why)
      er_buf_printf(why, "bad matcher: %s", bad);
    return false;
  }
  memset(&m, 0, sizeof m);
  m.why = why;
  er_buf_init(&m.path, 64 * 1024);
  if (where && *where) /* scalars at the top allocate nothing */
    er_buf_puts(&m.path, where);
  m.quiet = quiet == (size_t)-1 ? m.path.len : quiet;
  ok = match(&m, act, exp, list);
  er_buf_free(&m.path);
  return ok;
}

bool er_json_match(const json_t *act, const json_t *exp, er_buf_t *why) {
  return run_match(act, exp, "", (size_t)-1, NULL, why);
}

bool er_json_match_at(const json_t *act, const json_t *exp, const char *where,
                      er_buf_t *why) {
  return run_match(act, exp, where, (size_t)-1, NULL, why);
}

bool er_json_match_list(const json_t *value, const json_t *nodes,
                        const json_t *paths, const json_t *exp, er_buf_t *why) {
  list_t l = {nodes, paths};
  const char *where = json_array_size(paths) == 1
                          ? json_string_value(json_array_get(paths, 0))
                          : "";
  return run_match(value, exp, where, 0, nodes ? &l : NULL, why);
}

json_t *er_json_from_text(const char *s, size_t len) {
  size_t i = 0;
  while (i < len &&
         (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
    i++;
  if (i < len && (s[i] == '{' || s[i] == '[')) {
    json_t *v = er_json_loadb(s, len, JSON_DECODE_ANY, NULL);
    if (v)
      return v;
  }
  {
    json_t *v = json_stringn(s, len);
    char *copy;
    if (v)
      return v;
    /* not UTF-8: keep what can be shown, replace the rest with '?' */
    copy = malloc(len + 1);
    if (!copy)
      return NULL;
    for (size_t j = 0; j < len; j++) {
      unsigned char c = (unsigned char)s[j];
      copy[j] = (c >= 0x80 || c == 0) ? '?' : (char)c;
    }
    copy[len] = '\0';
    v = json_stringn(copy, len);
    free(copy);
    return v;
  }
}

int64_t er_json_duration(const json_t *obj, const char *key, int64_t dflt) {
  int64_t ms;
  json_t *v = json_object_get(obj, key);
  if (json_is_string(v) && er_parse_duration(json_string_value(v), &ms) == 0)
    return ms;
  return dflt;
}

const char *er_json_type_noun(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  default:
    return "null";
  }
}

void er_json_pointer_join(char *out, size_t outsz, const char *prefix,
                          const char *key) {
  size_t n = (size_t)snprintf(out, outsz, "%s/", prefix);
  if (n >= outsz)
    n = outsz - 1;
  for (const char *k = key; *k && n + 3 < outsz; k++) {
    if (*k == '~' || *k == '/') {
      out[n++] = '~';
      out[n++] = *k == '~' ? '0' : '1';
    } else {
      out[n++] = *k;
    }
  }
  out[n < outsz ? n : outsz - 1] = '\0';
}
