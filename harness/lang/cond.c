/* cond.c: conditions (see cond.h). */
#include "lang/cond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lang/jpos.h"
#include "lang/jsonx.h"
#include "lang/validate.h"

#define COND_DEPTH_MAX 32

static const char *const g_forms[] = {"value", "is", "not", "all", "any"};

/* A string that is exactly one ${...}. */
static bool single_expr(const char *s) {
  size_t n = s ? strlen(s) : 0;
  return n >= 4 && s[0] == '$' && s[1] == '{' && s[n - 1] == '}' &&
         strchr(s + 2, '}') == s + n - 1 && !strstr(s + 2, "${");
}

bool er_cond_truthy(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_TRUE:
    return true;
  case JSON_FALSE:
  case JSON_NULL:
    return false;
  case JSON_INTEGER:
    return json_integer_value(v) != 0;
  case JSON_REAL:
    return json_real_value(v) != 0.0;
  case JSON_STRING: {
    const char *s = json_string_value(v);
    return *s && strcmp(s, "0") != 0 && strcasecmp(s, "false") != 0;
  }
  case JSON_ARRAY:
    return json_array_size(v) > 0;
  case JSON_OBJECT:
    return json_object_size(v) > 0;
  }
  return false;
}

static void check_at(const er_diag_src_t *c, const json_t *cond,
                     const char *ptr, int depth) {
  const char *k;
  json_t *v;
  size_t n = 0;
  char msg[512];
  if (depth > COND_DEPTH_MAX) {
    er_diag_err(c, ptr, false, "conditions nest more than %d deep",
                COND_DEPTH_MAX);
    return;
  }
  if (json_is_boolean(cond))
    return;
  if (json_is_string(cond)) {
    if (!single_expr(json_string_value(cond)))
      er_diag_err(c, ptr, false,
                  "a condition string is one ${...} whose value is tested "
                  "(\"${flag}\"); to compare, write {\"value\": \"${x}\", "
                  "\"is\": ...}");
    return;
  }
  if (!json_is_object(cond)) {
    er_diag_err(
        c, ptr, false,
        "a condition is \"${...}\", true/false, or an object: "
        "{\"value\", \"is\"}, {\"not\"}, {\"all\"} or {\"any\"}; not %s",
        er_validate_type_noun(cond));
    return;
  }
  json_object_foreach((json_t *)cond, k, v) {
    bool known = false;
    for (size_t i = 0; i < sizeof g_forms / sizeof *g_forms; i++)
      known = known || !strcmp(k, g_forms[i]);
    if (!known) {
      char dym[160], *cp = er_jpos_child(ptr, k);
      er_dym_text(k, g_forms, sizeof g_forms / sizeof *g_forms, dym,
                  sizeof dym);
      er_diag_err(c, cp ? cp : ptr, true,
                  "unknown key '%s' in a condition%s (value and is, not, "
                  "all, any)",
                  k, dym);
      free(cp);
      return;
    }
    n++;
  }
  if (json_object_get(cond, "value") || json_object_get(cond, "is")) {
    if (!json_object_get(cond, "value") || !json_object_get(cond, "is") ||
        n != 2) {
      er_diag_err(c, ptr, false,
                  "a comparison is {\"value\": ..., \"is\": ...}, alone");
      return;
    }
    if (er_json_matcher_check(json_object_get(cond, "is"), msg, sizeof msg) !=
        0) {
      char *cp = er_jpos_child(ptr, "is");
      er_diag_err(c, cp ? cp : ptr, false, "%s", msg);
      free(cp);
    }
    return;
  }
  if (n != 1) {
    er_diag_err(c, ptr, false,
                "a condition is one of {\"value\", \"is\"}, {\"not\"}, "
                "{\"all\"}, {\"any\"}%s",
                n ? ", not several" : "");
    return;
  }
  if ((v = json_object_get(cond, "not"))) {
    char *cp = er_jpos_child(ptr, "not");
    check_at(c, v, cp ? cp : ptr, depth + 1);
    free(cp);
    return;
  }
  k = json_object_get(cond, "all") ? "all" : "any";
  v = json_object_get(cond, k);
  {
    char *kp = er_jpos_child(ptr, k);
    if (!json_is_array(v) || json_array_size(v) == 0) {
      er_diag_err(c, kp ? kp : ptr, false,
                  "'%s' is a non-empty array of conditions", k);
    } else {
      for (size_t i = 0; i < json_array_size(v); i++) {
        char *ep = er_jpos_child_index(kp ? kp : ptr, i);
        check_at(c, json_array_get(v, i), ep ? ep : ptr, depth + 1);
        free(ep);
      }
    }
    free(kp);
  }
}

void er_cond_check(const er_diag_src_t *c, const json_t *cond,
                   const char *ptr) {
  check_at(c, cond, ptr, 0);
}

static int eval_at(er_tmpl_t *t, const json_t *cond, bool *holds, er_buf_t *why,
                   er_err_t *err, int depth) {
  json_t *v;
  if (depth > COND_DEPTH_MAX)
    return er_errf(err, ER_E_INPUT, "conditions nest more than %d deep",
                   COND_DEPTH_MAX);
  if (json_is_boolean(cond)) {
    *holds = json_is_true(cond);
    if (why)
      er_buf_puts(why, *holds ? "true" : "false");
    return 0;
  }
  if (json_is_string(cond)) {
    char *b;
    v = er_tmpl_expand_str(t, json_string_value(cond), err);
    if (!v)
      return -1;
    *holds = er_cond_truthy(v);
    b = why ? er_json_brief(v, 120) : NULL;
    if (why)
      er_buf_printf(why, "%s is %s%s", json_string_value(cond), b ? b : "?",
                    *holds ? "" : " (false)");
    free(b);
    json_decref(v);
    return 0;
  }
  if (!json_is_object(cond))
    return er_errf(err, ER_E_INPUT,
                   "a condition is a string, a boolean or "
                   "an object");
  if (json_object_get(cond, "value")) {
    json_t *want;
    er_buf_t no = ER_BUF_INIT(2048);
    char *b;
    v = er_tmpl_expand(t, json_object_get(cond, "value"), err);
    if (!v)
      return -1;
    want = er_tmpl_expand(t, json_object_get(cond, "is"), err);
    if (!want) {
      json_decref(v);
      return -1;
    }
    *holds = er_json_match(v, want, &no);
    b = why ? er_json_brief(v, 120) : NULL;
    if (why && *holds)
      er_buf_printf(why, "%s matches", b ? b : "?");
    else if (why)
      er_buf_printf(why, "%s: %s", b ? b : "?", er_buf_cstr(&no));
    free(b);
    er_buf_free(&no);
    json_decref(v);
    json_decref(want);
    return 0;
  }
  if ((v = json_object_get(cond, "not"))) {
    if (why)
      er_buf_puts(why, "not (");
    if (eval_at(t, v, holds, why, err, depth + 1) != 0)
      return -1;
    *holds = !*holds;
    if (why)
      er_buf_puts(why, ")");
    return 0;
  }
  {
    bool all = json_object_get(cond, "all") != NULL;
    const json_t *list = json_object_get(cond, all ? "all" : "any");
    if (!json_is_array(list))
      return er_errf(err, ER_E_INPUT,
                     "a condition without value, not, all "
                     "or any");
    *holds = all;
    for (size_t i = 0; i < json_array_size(list); i++) {
      bool one = false;
      er_buf_t part = ER_BUF_INIT(4096);
      if (eval_at(t, json_array_get(list, i), &one, why ? &part : NULL, err,
                  depth + 1) != 0) {
        er_buf_free(&part);
        return -1;
      }
      if (one != all) { /* the one that decides */
        *holds = one;
        if (why)
          er_buf_printf(why, "%s: %s", all ? "all" : "any", er_buf_cstr(&part));
        er_buf_free(&part);
        return 0;
      }
      er_buf_free(&part);
    }
    if (why)
      er_buf_printf(why, "%s of %zu", all ? "all" : "none",
                    json_array_size(list));
    return 0;
  }
}

int er_cond_eval(er_tmpl_t *t, const json_t *cond, bool *holds, er_buf_t *why,
                 er_err_t *err) {
  *holds = false;
  return eval_at(t, cond, holds, why, err, 0);
}
