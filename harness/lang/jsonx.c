/* jsonx.c: see jsonx.h. */
#include "lang/jsonx.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A string that is entirely a JSON number ("5", "-2.5"). */
static bool numeric_string(const json_t *v, double *out) {
  const char *s;
  char *end = NULL;
  if (!json_is_string(v))
    return false;
  s = json_string_value(v);
  if (!*s || *s == ' ' || *s == '+')
    return false;
  errno = 0;
  *out = strtod(s, &end);
  return errno == 0 && *end == '\0' && isfinite(*out);
}

static bool as_number(const json_t *v, double *out) {
  if (json_is_number(v)) {
    *out = json_number_value(v);
    return true;
  }
  return numeric_string(v, out);
}

bool er_json_equal(const json_t *a, const json_t *b) {
  double x, y;
  if (!a || !b)
    return a == b;
  if (json_is_integer(a) && json_is_integer(b))
    return json_integer_value(a) == json_integer_value(b);
  if ((json_is_number(a) || json_is_number(b)) && as_number(a, &x) &&
      as_number(b, &y))
    return x == y;
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

static const char *const g_ops[] = {
    "$eq",    "$ne",       "$gt",  "$gte", "$lt",   "$lte", "$exists",
    "$regex", "$contains", "$len", "$in",  "$type", "$set", "$subset",
};

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

int er_json_matcher_check(const json_t *e, char *msg, size_t msgsz) {
  const char *k;
  json_t *v;
  if (!er_json_is_matcher(e)) {
    if (json_is_object(e)) {
      json_object_foreach((json_t *)e, k, v) {
        if (is_op_key(k)) {
          snprintf(msg, msgsz,
                   "'%s' mixes operators with plain keys; use only $ "
                   "operators or only literal keys",
                   k);
          return -1;
        }
        if (er_json_matcher_check(v, msg, msgsz) != 0)
          return -1;
      }
    } else if (json_is_array(e)) {
      for (size_t i = 0; i < json_array_size(e); i++)
        if (er_json_matcher_check(json_array_get(e, i), msg, msgsz) != 0)
          return -1;
    }
    return 0;
  }
  json_object_foreach((json_t *)e, k, v) {
    bool known = false;
    bool templated = json_is_string(v) && strstr(json_string_value(v), "${");
    for (size_t i = 0; i < sizeof g_ops / sizeof g_ops[0]; i++)
      if (strcmp(k, g_ops[i]) == 0)
        known = true;
    if (!known) {
      const char *dym =
          er_did_you_mean(k, g_ops, sizeof g_ops / sizeof g_ops[0]);
      snprintf(msg, msgsz, "unknown operator '%s'%s%s%s", k,
               dym ? " (did you mean '" : "", dym ? dym : "", dym ? "'?)" : "");
      return -1;
    }
    if (templated)
      continue; /* its type is known only once expanded */
    if ((!strcmp(k, "$gt") || !strcmp(k, "$gte") || !strcmp(k, "$lt") ||
         !strcmp(k, "$lte")) &&
        !json_is_number(v)) {
      snprintf(msg, msgsz, "'%s' needs a number", k);
      return -1;
    }
    if (!strcmp(k, "$exists") && !json_is_boolean(v)) {
      snprintf(msg, msgsz, "'$exists' needs true or false");
      return -1;
    }
    if (!strcmp(k, "$regex")) {
      regex_t re;
      if (!json_is_string(v)) {
        snprintf(msg, msgsz, "'$regex' needs a string");
        return -1;
      }
      if (regcomp(&re, json_string_value(v), REG_EXTENDED | REG_NOSUB)) {
        snprintf(msg, msgsz, "'$regex' is not a valid extended regex");
        return -1;
      }
      regfree(&re);
    }
    if ((!strcmp(k, "$in") || !strcmp(k, "$set")) && !json_is_array(v)) {
      snprintf(msg, msgsz, "'%s' needs an array", k);
      return -1;
    }
    if (!strcmp(k, "$type") && !json_is_string(v)) {
      snprintf(msg, msgsz, "'$type' needs a type name");
      return -1;
    }
    if (!strcmp(k, "$subset") && !json_is_object(v) && !json_is_array(v)) {
      snprintf(msg, msgsz, "'$subset' needs an object or an array");
      return -1;
    }
  }
  return 0;
}

char *er_json_brief(const json_t *v, size_t max) {
  char *s;
  size_t n;
  if (!v)
    return er_strdup("(missing)");
  s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s)
    return er_strdup("?");
  n = strlen(s);
  if (max >= 8 && n > max) {
    memcpy(s + max - 3, "...", 4);
  }
  return s;
}

static void why_add(er_buf_t *why, const char *fmt, const json_t *exp,
                    const json_t *act) {
  char *e, *a;
  if (!why)
    return;
  e = er_json_brief(exp, 200);
  a = er_json_brief(act, 200);
  er_buf_printf(why, fmt, e ? e : "?", a ? a : "?");
  free(e);
  free(a);
}

static const char *type_name(const json_t *v) {
  if (!v)
    return "missing";
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

static bool match_op(const json_t *act, const char *op, const json_t *arg,
                     er_buf_t *why) {
  double x, y;
  if (!strcmp(op, "$exists")) {
    bool want = json_is_true(arg);
    bool have = act != NULL;
    if (want != have && why)
      er_buf_printf(why, "expected %s, got %s", want ? "present" : "absent",
                    have ? "present" : "missing");
    return want == have;
  }
  if (!strcmp(op, "$eq"))
    return er_json_match(act, arg, why);
  if (!strcmp(op, "$ne")) {
    if (act && er_json_equal(act, arg)) {
      why_add(why, "expected anything but %s, got %s", arg, act);
      return false;
    }
    return true;
  }
  if (!strcmp(op, "$gt") || !strcmp(op, "$gte") || !strcmp(op, "$lt") ||
      !strcmp(op, "$lte")) {
    bool ok;
    const char *sym = !strcmp(op, "$gt")    ? ">"
                      : !strcmp(op, "$gte") ? ">="
                      : !strcmp(op, "$lt")  ? "<"
                                            : "<=";
    if (!act || !as_number(act, &x)) {
      char *a = er_json_brief(act, 200);
      if (why)
        er_buf_printf(why, "expected a number %s %g, got %s", sym,
                      json_number_value(arg), a ? a : "?");
      free(a);
      return false;
    }
    y = json_number_value(arg);
    ok = !strcmp(op, "$gt")    ? x > y
         : !strcmp(op, "$gte") ? x >= y
         : !strcmp(op, "$lt")  ? x < y
                               : x <= y;
    if (!ok && why)
      er_buf_printf(why, "expected %s %g, got %g", sym, y, x);
    return ok;
  }
  if (!strcmp(op, "$regex")) {
    regex_t re;
    bool ok;
    if (!json_is_string(act)) {
      why_add(why, "expected a string matching /%s/, got %s", arg, act);
      return false;
    }
    if (regcomp(&re, json_string_value(arg), REG_EXTENDED | REG_NOSUB) != 0) {
      if (why)
        er_buf_puts(why, "bad $regex");
      return false;
    }
    ok = regexec(&re, json_string_value(act), 0, NULL, 0) == 0;
    regfree(&re);
    if (!ok)
      why_add(why, "expected a string matching %s, got %s", arg, act);
    return ok;
  }
  if (!strcmp(op, "$contains")) {
    if (json_is_array(act)) {
      for (size_t i = 0; i < json_array_size(act); i++)
        if (er_json_match(json_array_get(act, i), arg, NULL))
          return true;
    } else if (json_is_string(act) && json_is_string(arg)) {
      if (strstr(json_string_value(act), json_string_value(arg)))
        return true;
    } else if (json_is_object(act) && json_is_string(arg)) {
      if (json_object_get(act, json_string_value(arg)))
        return true;
    }
    why_add(why, "expected something containing %s, got %s", arg, act);
    return false;
  }
  if (!strcmp(op, "$len")) {
    json_t *len;
    bool ok;
    size_t n;
    if (json_is_string(act))
      n = json_string_length(act);
    else if (json_is_array(act))
      n = json_array_size(act);
    else if (json_is_object(act))
      n = json_object_size(act);
    else {
      why_add(why, "expected something with a length %s, got %s", arg, act);
      return false;
    }
    len = json_integer((json_int_t)n);
    ok = er_json_match(len, arg, NULL);
    if (!ok && why) {
      char *e = er_json_brief(arg, 200);
      er_buf_printf(why, "expected length %s, got length %zu", e ? e : "?", n);
      free(e);
    }
    json_decref(len);
    return ok;
  }
  if (!strcmp(op, "$in")) {
    for (size_t i = 0; i < json_array_size(arg); i++)
      if (er_json_match(act, json_array_get(arg, i), NULL))
        return true;
    why_add(why, "expected one of %s, got %s", arg, act);
    return false;
  }
  if (!strcmp(op, "$type")) {
    const char *want = json_string_value(arg);
    const char *have = type_name(act);
    bool ok = !strcmp(want, have) ||
              (!strcmp(want, "number") && !strcmp(have, "integer"));
    if (!ok && why)
      er_buf_printf(why, "expected a value of type %s, got %s", want, have);
    return ok;
  }
  if (!strcmp(op, "$set")) {
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
        if (!used[j] && er_json_match(json_array_get(act, j),
                                      json_array_get(arg, i), NULL)) {
          used[j] = 1;
          found = true;
        }
      }
      ok = found;
    }
    free(used);
    if (!ok)
      why_add(why, "expected the set %s (any order), got %s", arg, act);
    return ok;
  }
  if (!strcmp(op, "$subset")) {
    if (json_is_object(arg)) {
      const char *k;
      json_t *v;
      if (!json_is_object(act)) {
        why_add(why, "expected an object with %s, got %s", arg, act);
        return false;
      }
      json_object_foreach((json_t *)arg, k, v) {
        if (!er_json_match(json_object_get(act, k), v, NULL)) {
          why_add(why, "expected an object with %s, got %s", arg, act);
          return false;
        }
      }
      return true;
    }
    if (!json_is_array(act)) {
      why_add(why, "expected an array holding %s, got %s", arg, act);
      return false;
    }
    for (size_t i = 0; i < json_array_size(arg); i++) {
      bool found = false;
      for (size_t j = 0; j < json_array_size(act) && !found; j++)
        found =
            er_json_match(json_array_get(act, j), json_array_get(arg, i), NULL);
      if (!found) {
        why_add(why, "expected an array holding %s, got %s", arg, act);
        return false;
      }
    }
    return true;
  }
  if (why)
    er_buf_printf(why, "unknown operator %s", op);
  return false;
}

bool er_json_match(const json_t *act, const json_t *exp, er_buf_t *why) {
  if (er_json_is_matcher(exp)) {
    const char *k;
    json_t *v;
    char bad[256];
    /* operands filled in by templates are checked once expanded */
    if (er_json_matcher_check(exp, bad, sizeof bad) != 0) {
      if (why)
        er_buf_printf(why, "bad matcher: %s", bad);
      return false;
    }
    json_object_foreach((json_t *)exp, k, v) {
      if (strcmp(k, "$exists") != 0 && !act) {
        if (json_object_get(exp, "$exists") == NULL) {
          if (why)
            er_buf_puts(why, "expected a value, got nothing (missing)");
          return false;
        }
        continue;
      }
      if (!match_op(act, k, v, why))
        return false;
    }
    return true;
  }
  /* literal; recurse so nested matchers work inside objects and arrays */
  if (json_is_object(exp) && json_is_object(act)) {
    const char *k;
    json_t *v;
    if (json_object_size(exp) != json_object_size(act))
      goto differ;
    json_object_foreach((json_t *)exp, k, v) {
      if (!er_json_match(json_object_get(act, k), v, NULL))
        goto differ;
    }
    return true;
  }
  if (json_is_array(exp) && json_is_array(act)) {
    if (json_array_size(exp) != json_array_size(act))
      goto differ;
    for (size_t i = 0; i < json_array_size(exp); i++)
      if (!er_json_match(json_array_get(act, i), json_array_get(exp, i), NULL))
        goto differ;
    return true;
  }
  if (act && er_json_equal(act, exp))
    return true;
differ:
  why_add(why, "expected %s, got %s", exp, act);
  return false;
}

json_t *er_json_from_text(const char *s, size_t len) {
  size_t i = 0;
  while (i < len &&
         (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
    i++;
  if (i < len && (s[i] == '{' || s[i] == '[')) {
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY, NULL);
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
