/* test_cond.c: conditions (cond.h): truth of values, the forms, what
 * decided, errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/cond.h"
#include "tap.h"

static void test_truthy(void) {
  struct {
    const char *json;
    bool want;
  } cases[] = {
      {"true", true},       {"false", false}, {"null", false},
      {"0", false},         {"0.0", false},   {"2", true},
      {"-1", true},         {"\"\"", false},  {"\"0\"", false},
      {"\"FALSE\"", false}, {"\"no\"", true}, {"\"x\"", true},
      {"[]", false},        {"[0]", true},    {"{}", false},
      {"{\"a\": 0}", true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
    T_OK(v && er_cond_truthy(v) == cases[i].want, "%s is %s", cases[i].json,
         cases[i].want ? "true" : "false");
    json_decref(v);
  }
}

/* Evaluates the condition text in t: 1 holds, 0 does not, -1 error; why
 * into out. */
static int eval(er_tmpl_t *t, const char *text, char *out, size_t outsz) {
  json_t *c = json_loads(text, JSON_DECODE_ANY, NULL);
  er_buf_t why = ER_BUF_INIT(4096);
  er_err_t err = {0};
  bool holds;
  int rc = c ? er_cond_eval(t, c, &holds, &why, &err) : -1;
  snprintf(out, outsz, "%s", rc == 0 ? er_buf_cstr(&why) : err.msg);
  er_buf_free(&why);
  json_decref(c);
  return rc == 0 ? holds : -1;
}

static void test_eval(void) {
  er_tmpl_t *t = er_tmpl_new();
  char why[512];
  er_tmpl_set(t, "mode", json_string("fast"));
  er_tmpl_set(t, "n", json_integer(3));
  er_tmpl_set(t, "list", json_pack("[s,s]", "a", "b"));
  T_OK(eval(t, "true", why, sizeof why) == 1, "true");
  T_OK(eval(t, "\"${mode}\"", why, sizeof why) == 1, "a non-empty string");
  T_STREQ(why, "${mode} is \"fast\"", "why: the value");
  T_OK(eval(t, "{\"value\": \"${mode}\", \"is\": \"slow\"}", why, sizeof why) ==
           0,
       "a comparison that does not hold");
  T_OK(strstr(why, "\"fast\"") != NULL, "why names the value (%s)", why);
  T_OK(eval(t, "{\"value\": \"${n}\", \"is\": {\"$gte\": 3}}", why,
            sizeof why) == 1,
       "a matcher on a typed value");
  T_OK(eval(t, "{\"value\": \"${list}\", \"is\": {\"$len\": 2}}", why,
            sizeof why) == 1,
       "a matcher on an array");
  T_OK(eval(t, "{\"not\": {\"value\": \"${mode}\", \"is\": \"fast\"}}", why,
            sizeof why) == 0,
       "not");
  T_OK(eval(t,
            "{\"all\": [true, \"${n}\", {\"value\": \"${mode}\", \"is\": "
            "{\"$regex\": \"^f\"}}]}",
            why, sizeof why) == 1,
       "all of three");
  T_OK(eval(t, "{\"all\": [true, false, \"${nope}\"]}", why, sizeof why) == 0,
       "all stops at the first that does not hold (the undefined name after "
       "it is not evaluated)");
  T_STREQ(why, "all: false", "why: the one that decided");
  T_OK(eval(t, "{\"any\": [false, {\"value\": \"${n}\", \"is\": 3}]}", why,
            sizeof why) == 1,
       "any");
  T_OK(eval(t, "{\"any\": [false, \"${mode:-}\"]}", why, sizeof why) == 1,
       "a default");
  T_OK(eval(t, "\"${nope}\"", why, sizeof why) == -1 &&
           strstr(why, "unknown name 'nope'"),
       "an undefined name is an error, not false (%s)", why);
  T_OK(eval(t, "\"${env.ER_COND_UNSET:-}\"", why, sizeof why) == 0,
       "an unset environment variable with a default: false");
  er_tmpl_free(t);
}

int main(void) {
  test_truthy();
  test_eval();
  return t_done();
}
