/* test_template.c: ${...} expansion, the static scanner, and the event id
 * through a template variable. */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "lang/template.h"
#include "tap.h"

/* Python: hashlib.sha256(json.dumps({"batch_id": "b-1", "text_storage_id":
 * "t-1", "file_name": "a.txt"}, sort_keys=True).encode()).hexdigest() */
#define ESSAY_ID                                                               \
  "f2585eb3fe040484e2f43cba24ccc5173f50cba99aa667730f5d3a82575cc2d6"

static int matches(const char *s, const char *ere) {
  regex_t re;
  int ok;
  if (!s || regcomp(&re, ere, REG_EXTENDED | REG_NOSUB) != 0)
    return 0;
  ok = regexec(&re, s, 0, NULL, 0) == 0;
  regfree(&re);
  return ok;
}

/* Expands s and returns the string result (static copy) or NULL. */
static const char *xs(er_tmpl_t *t, const char *s) {
  static char out[4096];
  er_err_t err = {0};
  json_t *v = er_tmpl_expand_str(t, s, &err);
  if (!v || !json_is_string(v)) {
    snprintf(out, sizeof out, "<%s>", v ? "not a string" : err.msg);
    json_decref(v);
    return out;
  }
  snprintf(out, sizeof out, "%s", json_string_value(v));
  json_decref(v);
  return out;
}

/* Expands s expecting an error; returns the message (static copy). */
static const char *xerr(er_tmpl_t *t, const char *s, int *code) {
  static char out[ER_ERRSTR];
  er_err_t err = {0};
  json_t *v = er_tmpl_expand_str(t, s, &err);
  *code = err.code;
  snprintf(out, sizeof out, "%s", v ? "<no error>" : err.msg);
  json_decref(v);
  return out;
}

static void test_set_get(er_tmpl_t *t) {
  json_t *v;
  T_OK(er_tmpl_set(t, "batch", json_string("b-42")) == 0, "set batch");
  T_OK(er_tmpl_set(t, "run.id", json_string("r1")) == 0, "set run.id");
  T_OK(er_tmpl_set(t, "run.n", json_integer(7)) == 0, "set run.n");
  v = er_tmpl_get(t, "run");
  T_OK(json_is_object(v) && json_object_size(v) == 2,
       "dotted names build one nested object");
  T_STREQ(json_string_value(er_tmpl_get(t, "run.id")), "r1", "get run.id");
  T_OK(er_tmpl_get(t, "run.nope") == NULL, "get of a missing name is NULL");
  T_OK(er_tmpl_set(t, "batch.x", json_string("y")) == -1,
       "cannot descend into a string when setting");
  T_OK(er_tmpl_set(t, "uuid", json_string("fixed")) == -1 &&
           er_tmpl_set(t, "env.X", json_string("x")) == -1,
       "uuid and env are reserved");
  T_OK(er_tmpl_set(t, "a..b", json_string("x")) == -1 &&
           er_tmpl_set(t, "a.", json_string("x")) == -1,
       "empty name segments are refused");
}

static void test_types(er_tmpl_t *t) {
  er_err_t err = {0};
  json_t *v, *arr;

  er_tmpl_set(t, "n", json_integer(5));
  er_tmpl_set(t, "ratio", json_real(0.1));
  er_tmpl_set(t, "flag", json_true());
  er_tmpl_set(t, "nothing", json_null());
  er_tmpl_set(t, "cap",
              json_pack("{s:[s,s], s:{s:{s:s}}}", "slots", "s0", "s1", "body",
                        "user", "name", "\xc3\xa9va"));
  v = er_tmpl_expand_str(t, "${n}", &err);
  T_OK(json_is_integer(v) && json_integer_value(v) == 5,
       "whole-string ${n} keeps the integer type");
  json_decref(v);
  v = er_tmpl_expand_str(t, "${flag}", &err);
  T_OK(json_is_true(v), "whole-string ${flag} is true");
  json_decref(v);
  v = er_tmpl_expand_str(t, "${nothing}", &err);
  T_OK(json_is_null(v), "whole-string ${nothing} is null");
  json_decref(v);
  v = er_tmpl_expand_str(t, "${cap.slots}", &err);
  T_OK(json_is_array(v) && json_array_size(v) == 2,
       "whole-string ${cap.slots} is the array");
  json_array_append_new(v, json_string("mutated"));
  arr = er_tmpl_get(t, "cap.slots");
  T_OK(json_array_size(arr) == 2, "the result is a copy, not the context");
  json_decref(v);

  T_STREQ(xs(t, "n=${n}"), "n=5", "integer interpolated");
  T_STREQ(xs(t, "r=${ratio}"), "r=0.1", "real interpolated as Python repr");
  T_STREQ(xs(t, "${flag}/${nothing}"), "true/null", "true and null");
  T_STREQ(xs(t, "slots: ${cap.slots}"), "slots: [\"s0\",\"s1\"]",
          "array interpolated as compact JSON");
  T_STREQ(xs(t, "u=${cap.body}"), "u={\"user\":{\"name\":\"\xc3\xa9va\"}}",
          "object interpolated as compact JSON, UTF-8 kept");
  T_STREQ(xs(t, "b-${run.id}-${batch}"), "b-r1-b-42",
          "two expressions interpolated");
  T_STREQ(xs(t, "${cap.slots.1}"), "s1", "array index");
  T_STREQ(xs(t, "[${cap.body.user.name}]"), "[\xc3\xa9va]", "nested path");
  T_STREQ(xs(t, "no expressions $ here $$ { }"), "no expressions $ here $$ { }",
          "plain text and lone $ unchanged");
  T_STREQ(xs(t, ""), "", "empty string");
  T_STREQ(xs(t, "${missing:-fallback}"), "fallback",
          "default for an undefined name");
  T_STREQ(xs(t, "${batch:-fallback}"), "b-42", "default unused when defined");
}

static void test_escape(er_tmpl_t *t) {
  er_err_t err = {0};
  json_t *v = er_tmpl_expand_str(t, "$${batch}", &err);
  T_OK(json_is_string(v) && strcmp(json_string_value(v), "${batch}") == 0,
       "$${batch} is the literal text ${batch}");
  json_decref(v);
  T_STREQ(xs(t, "$${x} and ${batch} and $${"), "${x} and b-42 and ${",
          "escape mixed with an expression");
  T_STREQ(xs(t, "$$${batch}"), "$${batch}",
          "$$${ reads left to right: '$' then the escape $${");
}

static void test_generators(er_tmpl_t *t) {
  char a[64], b[64];
  const char *uuid_re =
      "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
      "[0-9a-f]{12}$";
  snprintf(a, sizeof a, "%s", xs(t, "${uuid}"));
  snprintf(b, sizeof b, "%s", xs(t, "${uuid}"));
  T_OK(matches(a, uuid_re), "${uuid} is a v4 UUID (%s)", a);
  T_OK(strcmp(a, b) != 0, "${uuid} differs between expansions");
  {
    const char *two = xs(t, "${uuid}|${uuid}");
    T_OK(strlen(two) == 73 && strncmp(two, two + 37, 36) != 0,
         "two ${uuid} in one string differ (%s)", two);
  }
  T_OK(matches(xs(t, "${now}"),
               "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{"
               "3}Z$"),
       "${now} is RFC 3339 UTC with milliseconds");
}

static void test_env(er_tmpl_t *t) {
  json_t *vars =
      json_pack("{s:s, s:i}", "SUT_URL", "http://sut:8080", "ER_TT_BOTH", 3);
  int code = 0;
  er_tmpl_set_env_vars(t, vars);
  setenv("ER_TT_BOTH", "from-process", 1);
  setenv("ER_TT_PROC", "proc-value", 1);
  setenv("ER_TT_EMPTY", "", 1);
  unsetenv("ER_TT_UNSET_XYZ");

  T_STREQ(xs(t, "${env.SUT_URL}/v1/batches"), "http://sut:8080/v1/batches",
          "env var from the environment file's vars");
  T_STREQ(xs(t, "n=${env.ER_TT_BOTH}"), "n=3",
          "the environment file's vars come before the process environment");
  T_STREQ(xs(t, "${env.ER_TT_PROC}"), "proc-value",
          "process environment as the fallback");
  T_STREQ(xs(t, "${env.ER_TT_UNSET_XYZ:-dflt}"), "dflt", "default when unset");
  T_STREQ(xs(t, "${env.ER_TT_UNSET_XYZ:-}"), "", "empty default");
  T_STREQ(xs(t, "${env.ER_TT_EMPTY:-dflt}"), "dflt",
          "default when set but empty (shell :- semantics)");
  T_STREQ(xs(t, "<${env.ER_TT_EMPTY}>"), "<>", "set but empty, no default");
  T_STREQ(xs(t, "${env.ER_TT_PROC:-dflt}"), "proc-value",
          "default unused when set");
  T_STREQ(xerr(t, "x ${env.ER_TT_UNSET_XYZ} y", &code),
          "${env.ER_TT_UNSET_XYZ}: environment variable 'ER_TT_UNSET_XYZ' is "
          "not set; give a default with ${env.ER_TT_UNSET_XYZ:-value}",
          "unset env var without default names it");
  T_OK(code == ER_E_INPUT, "... as an input error");
  T_STREQ(xerr(t, "${env.ER_TT_PRO}", &code),
          "${env.ER_TT_PRO}: environment variable 'ER_TT_PRO' is not set "
          "(did you mean 'ER_TT_PROC'?); give a default with "
          "${env.ER_TT_PRO:-value}",
          "unset env var suggests a close name");
  T_STREQ(xerr(t, "${env}", &code),
          "${env}: env needs a variable name: ${env.NAME}", "bare ${env}");
  er_tmpl_set_env_vars(t, NULL);
  T_STREQ(xs(t, "${env.ER_TT_BOTH}"), "from-process",
          "without env vars the process environment answers");
  json_decref(vars);
}

static void test_hashes(er_tmpl_t *t) {
  er_err_t err = {0};
  char want[65];
  int code = 0;
  json_t *essay = json_pack("{s:s, s:s, s:s}", "batch_id", "b-1",
                            "text_storage_id", "t-1", "file_name", "a.txt");
  er_tmpl_set(t, "essay", essay);
  er_tmpl_set(t, "word", json_string("abc"));
  T_STREQ(xs(t, "${event_id(essay)}"), ESSAY_ID,
          "event_id of a var holding the essay data equals Python's");
  T_STREQ(xs(t, "els:${event_id(essay)}"), "els:" ESSAY_ID,
          "event_id interpolated");
  er_sha256_hex("\"abc\"", 5, want);
  T_STREQ(xs(t, "${event_id(word)}"), want,
          "event_id of a string hashes its JSON text \"abc\"");
  T_STREQ(xs(t, "${sha256(word)}"),
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
          "sha256 of a string value");
  T_STREQ(xerr(t, "${sha256(essay)}", &code),
          "${sha256(essay)}: sha256 needs a string, 'essay' is an object",
          "sha256 of an object is an error");
  T_STREQ(xerr(t, "${event_id(esay)}", &code),
          "${event_id(esay)}: unknown name 'esay' (did you mean 'essay'?)",
          "event_id of an unknown name");
  (void)err;
}

/* ${urlencode(name)}: a value made safe for a URL path segment or query */
static void test_urlencode(er_tmpl_t *t) {
  int code = 0;
  er_tmpl_set(t, "q", json_string("a b&c=d/é?"));
  er_tmpl_set(t, "num", json_integer(42));
  er_tmpl_set(t, "obj", json_pack("{s:s}", "name", "x y"));
  T_STREQ(xs(t, "http://h/search?q=${urlencode(q)}&n=${urlencode(num)}"),
          "http://h/search?q=a%20b%26c%3Dd%2F%C3%A9%3F&n=42",
          "a string and a number, percent-encoded");
  T_STREQ(xs(t, "/v1/users/${urlencode(obj.name)}"), "/v1/users/x%20y",
          "a path into a value");
  T_STREQ(xs(t, "${urlencode(q)}"), "a%20b%26c%3Dd%2F%C3%A9%3F",
          "alone: still a string");
  T_STREQ(xerr(t, "${urlencode(obj)}", &code),
          "${urlencode(obj)}: urlencode needs a string, a number or a "
          "boolean; 'obj' is an object",
          "an object is an error");
  T_STREQ(xerr(t, "${urlencod(q)}", &code),
          "unknown function 'urlencod' (known: event_id, sha256, urlencode) "
          "at offset 0 of \"${urlencod(q)}\"",
          "an unknown function names the known ones");
}

/* One expansion copies at most 8 MB of values (typed or interpolated). */
static void test_budget(void) {
  er_tmpl_t *t = er_tmpl_new();
  char *big = malloc(3u * 1024u * 1024u + 1);
  json_t *two, *three, *v;
  er_err_t err = {0};
  if (!t || !big) {
    T_OK(0, "budget: setup");
    free(big);
    er_tmpl_free(t);
    return;
  }
  memset(big, 'x', 3u * 1024u * 1024u);
  big[3u * 1024u * 1024u] = '\0';
  T_OK(er_tmpl_set(t, "big", json_string(big)) == 0, "budget: a 3 MB var");
  two = json_pack("[s,s]", "${big}", "${big}");
  three = json_pack("[s,s,s]", "${big}", "${big}", "${big}");
  v = er_tmpl_expand(t, two, &err);
  T_OK(v && json_array_size(v) == 2, "budget: 6 MB of copies expand");
  json_decref(v);
  v = er_tmpl_expand(t, three, &err);
  T_OK(!v && err.code == ER_E_INPUT &&
           strstr(err.msg, "expanded value exceeds 8388608 bytes"),
       "budget: 9 MB of copies is an error (%s)", err.msg);
  json_decref(v);
  v = er_tmpl_expand_str(t, "${big}${big}${big}", &err);
  T_OK(!v, "budget: and interpolated (9 MB) too");
  json_decref(v);
  json_decref(two);
  json_decref(three);
  free(big);
  er_tmpl_free(t);
}

static void test_errors(er_tmpl_t *t) {
  int code = 0;
  T_STREQ(xerr(t, "b-${batc}", &code),
          "${batc}: unknown name 'batc' (did you mean 'batch'?)",
          "unknown name with did-you-mean");
  T_OK(code == ER_E_INPUT, "unknown name is ER_E_INPUT");
  T_STREQ(xerr(t, "${zzzzzzzz}", &code),
          "${zzzzzzzz}: unknown name 'zzzzzzzz' (known: uuid, now, env, "
          "batch, run, n, ratio, flag, nothing, cap, essay, word)",
          "unknown name without a close one lists the known names");
  T_STREQ(xerr(t, "${cap.body.usr}", &code),
          "${cap.body.usr}: 'cap.body' has no key 'usr' (did you mean "
          "'user'?)",
          "missing key in a nested object");
  T_STREQ(xerr(t, "${cap.slots.2}", &code),
          "${cap.slots.2}: 'cap.slots' is an array of 2; '2' is not an index "
          "in it",
          "array index out of range");
  T_STREQ(xerr(t, "${batch.x}", &code),
          "${batch.x}: 'batch' is a string, it has no 'x'",
          "descending into a string");
  T_STREQ(xerr(t, "${uuid.x}", &code), "${uuid.x}: 'uuid' has no fields",
          "uuid has no fields");
  T_STREQ(xerr(t, "x-${batch", &code),
          "unterminated ${ (missing '}') at offset 2 of \"x-${batch\"",
          "unterminated expression");
  T_OK(code == ER_E_INPUT, "syntax error is ER_E_INPUT");
  T_STREQ(xerr(t, "${}", &code),
          "empty or malformed ${...} expression at offset 0 of \"${}\"",
          "empty expression");
  T_STREQ(xerr(t, "${lower(batch)}", &code),
          "unknown function 'lower' (known: event_id, sha256, urlencode) at "
          "offset 0 of "
          "\"${lower(batch)}\"",
          "unknown function");
  T_STREQ(xerr(t, "${a..b}", &code),
          "${a..b}: bad name 'a..b' (empty or over-long segment)",
          "empty segment");
}

static void test_expand_tree(er_tmpl_t *t) {
  er_err_t err = {0};
  json_error_t jerr;
  json_t *in, *out, *want, *copy;

  er_tmpl_set(t, "keyname", json_string("dyn"));
  in = json_loads(
      "{\"url\": \"${env.SUT_URL}/v1\", \"json\": {\"batch_id\": \"${batch}\","
      " \"${keyname}\": \"${n}\", \"k-${n}\": \"${cap.slots}\", \"list\":"
      " [\"${n}\", \"x${n}\", 3, null, 1.5, {\"$${lit}\": \"$${lit}\"}]}}",
      0, &jerr);
  copy = json_deep_copy(in);
  {
    json_t *vars = json_pack("{s:s}", "SUT_URL", "http://sut");
    er_tmpl_set_env_vars(t, vars);
    out = er_tmpl_expand(t, in, &err);
    er_tmpl_set_env_vars(t, NULL);
    json_decref(vars);
  }
  want = json_loads(
      "{\"url\": \"http://sut/v1\", \"json\": {\"batch_id\": \"b-42\","
      " \"dyn\": 5, \"k-5\": [\"s0\", \"s1\"], \"list\":"
      " [5, \"x5\", 3, null, 1.5, {\"${lit}\": \"${lit}\"}]}}",
      0, &jerr);
  T_OK(out && json_equal(out, want),
       "expand: values and keys of a nested value (%s)", err.msg);
  if (out && !json_equal(out, want)) {
    char *s = json_dumps(out, JSON_COMPACT);
    printf("#   got: %s\n", s);
    free(s);
  }
  T_OK(json_equal(in, copy), "expand leaves its input untouched");
  json_decref(in);
  json_decref(out);
  json_decref(want);
  json_decref(copy);

  /* errors name the JSON pointer */
  in = json_loads("{\"steps\": [{\"http\": {\"url\": \"${batc}/x\"}}]}", 0,
                  &jerr);
  er_err_clear(&err);
  out = er_tmpl_expand(t, in, &err);
  T_OK(out == NULL && err.code == ER_E_INPUT, "expand fails on a bad name");
  T_STREQ(err.msg,
          "at /steps/0/http/url: ${batc}: unknown name 'batc' (did you mean "
          "'batch'?)",
          "error names the JSON pointer and the name");
  json_decref(in);

  in = json_loads("{\"a/b~c\": {\"${nope}\": 1}}", 0, &jerr);
  er_err_clear(&err);
  out = er_tmpl_expand(t, in, &err);
  T_STREQ(out ? "<no error>" : err.msg,
          "at /a~1b~0c (key \"${nope}\"): ${nope}: unknown name 'nope' "
          "(did you mean 'now'?)",
          "error in a key; pointer tokens escaped");
  json_decref(in);

  in = json_loads("{\"${batch}\": 1, \"b-42\": 2}", 0, &jerr);
  er_err_clear(&err);
  out = er_tmpl_expand(t, in, &err);
  T_STREQ(out ? "<no error>" : err.msg,
          "at (top level) (key \"b-42\"): expands to \"b-42\", a key that "
          "already exists",
          "two keys expanding to the same name");
  json_decref(in);

  in = json_string("${n}");
  er_err_clear(&err);
  out = er_tmpl_expand(t, in, &err);
  T_OK(json_is_integer(out), "expand of a top-level string keeps the type");
  json_decref(out);
  json_decref(in);

  in = json_string("${nope}");
  er_err_clear(&err);
  out = er_tmpl_expand(t, in, &err);
  T_STREQ(out ? "<no error>" : err.msg,
          "at (top level): ${nope}: unknown name 'nope' (did you mean 'now'?)",
          "error in a top-level string");
  json_decref(in);

  /* a key is text even when it is a whole expression */
  in = json_pack("{s:i}", "${cap.slots}", 1);
  er_err_clear(&err);
  out = er_tmpl_expand(t, in, &err);
  T_OK(out && json_object_get(out, "[\"s0\",\"s1\"]") != NULL,
       "a key expands to text");
  json_decref(out);
  json_decref(in);
}

typedef struct {
  char got[512];
} scan_t;

static void scan_cb(void *ud, const char *root, size_t off) {
  scan_t *s = ud;
  size_t l = strlen(s->got);
  snprintf(s->got + l, sizeof s->got - l, "%s@%zu ", root, off);
}

static void test_scan(void) {
  scan_t s = {""};
  char msg[256] = "";
  size_t bad = 0;
  int rc = er_tmpl_scan("x ${batch.id} $${no} ${event_id(data.x)} "
                        "${env.A:-d} ${uuid}",
                        scan_cb, &s, msg, sizeof msg, &bad);
  T_OK(rc == 0, "scan accepts valid text");
  T_STREQ(s.got, "batch@2 data@21 env@41 uuid@53 ",
          "scan reports roots and offsets, skips $${");
  s.got[0] = '\0';
  rc = er_tmpl_scan("ok ${a} ${b", scan_cb, &s, msg, sizeof msg, &bad);
  T_OK(rc == -1 && bad == 8 &&
           strcmp(msg, "unterminated ${ (missing '}')") == 0,
       "scan: unterminated at offset 8 (%zu, %s)", bad, msg);
  rc = er_tmpl_scan("${f(x)}", NULL, NULL, msg, sizeof msg, &bad);
  T_STREQ(msg, "unknown function 'f' (known: event_id, sha256, urlencode)",
          "scan: unknown function");
  T_OK(er_tmpl_is_builtin("run") && er_tmpl_is_builtin("uuid") &&
           !er_tmpl_is_builtin("batch"),
       "builtin names");
}

/* a clone sees the names of its origin, and the two never share changes */
static void test_clone(void) {
  er_tmpl_t *base = er_tmpl_new(), *c;
  er_err_t err = {0};
  json_t *v;
  er_tmpl_set(base, "run.id", json_string("r1"));
  c = er_tmpl_clone(base);
  T_OK(c != NULL, "clone made");
  v = er_tmpl_expand_str(c, "${run.id}", &err);
  T_OK(json_is_string(v) && !strcmp(json_string_value(v), "r1"),
       "clone sees run.id of its origin");
  json_decref(v);
  er_tmpl_set(c, "batch", json_string("b"));
  er_tmpl_set(c, "run.id", json_string("changed"));
  T_OK(er_tmpl_get(base, "batch") == NULL, "names set in a clone stay there");
  v = er_tmpl_get(base, "run.id");
  T_OK(json_is_string(v) && !strcmp(json_string_value(v), "r1"),
       "a clone's change does not reach its origin");
  er_tmpl_free(c);
  er_tmpl_free(base);
}

int main(void) {
  er_tmpl_t *t = er_tmpl_new();
  test_clone();
  test_set_get(t);
  test_types(t);
  test_escape(t);
  test_generators(t);
  test_env(t);
  test_hashes(t);
  test_errors(t);
  test_urlencode(t);
  test_expand_tree(t);
  test_budget();
  test_scan();
  er_tmpl_free(t);
  return t_done();
}
