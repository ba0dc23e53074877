/* test_capture.c: the capture shapes every step shares (lang/capture.c),
 * on a stand-in source, and big integers through templates. */
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"
#include "base/pyjson.h"
#include "lang/capture.h"
#include "lang/template.h"
#include "tap.h"

static json_t *J(const char *text) {
  json_t *v = er_json_loadb(text, strlen(text), JSON_DECODE_ANY, NULL);
  if (!v)
    printf("# bad test JSON: %s\n", text);
  return v;
}

/* A source: a JSON document (or none), a text, a header and a key. */
typedef struct fake {
  json_t *doc;
  json_t *alt;
} fake_t;

static const json_t *f_doc(void *ud, const char **why_not) {
  fake_t *f = ud;
  if (!f->doc)
    *why_not = "the body is not JSON";
  return f->doc;
}
static const json_t *f_alt(void *ud) { return ((fake_t *)ud)->alt; }
static char *f_header(void *ud, const char *name) {
  (void)ud;
  return strcmp(name, "Location") == 0 ? strdup("/batches/b-17") : NULL;
}
static json_t *f_named(void *ud, const char *name) {
  (void)ud;
  return strcmp(name, "key") == 0 ? json_string("order-42") : NULL;
}

static char g_got[512];
/* The capture as compact JSON, or "!" and the reason. */
static const char *take(er_cap_src_t *src, const char *spec_text) {
  json_t *spec = J(spec_text), *v;
  er_buf_t why = ER_BUF_INIT(1024);
  v = er_capture_take(spec, src, &why);
  if (v) {
    char *s = er_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(g_got, sizeof g_got, "%s", s ? s : "?");
    free(s);
  } else {
    snprintf(g_got, sizeof g_got, "!%s", er_buf_cstr(&why));
  }
  json_decref(v);
  json_decref(spec);
  er_buf_free(&why);
  return g_got;
}

static const char *check(unsigned has, const char *spec_text) {
  json_t *spec = J(spec_text);
  const char *m = er_capture_check(spec, has, g_got, sizeof g_got);
  json_decref(spec);
  return m ? m : "";
}

static void test_take(void) {
  fake_t f = {J("{\"items\": [{\"id\": 1, \"note\": \"see #12\"}, {\"id\": "
                "2}], \"big\": 123456789012345678901234567890}"),
              J("[{\"name\": \"ann\"}]")};
  const char *text = "{\"items\": [...]} id=77";
  er_cap_src_t src = {ER_CAP_HEADER | ER_CAP_KEY,
                      "body",
                      &f,
                      f_doc,
                      f_alt,
                      text,
                      strlen(text),
                      f_header,
                      f_named};
  T_STREQ(take(&src, "\"/items/1/id\""), "2", "a JSON pointer");
  T_STREQ(take(&src, "\"$.items[*].id\""), "[1,2]", "a JSONPath, several");
  T_STREQ(take(&src, "\"$.items[?@.id==1].note\""), "\"see #12\"",
          "a JSONPath, one");
  T_STREQ(take(&src, "\"/big\""), "123456789012345678901234567890",
          "a big integer, exactly");
  T_STREQ(take(&src, "{\"path\": \"/big\", \"regex\": \"^(123)\"}"), "\"123\"",
          "a regex on a big integer reads its digits");
  T_STREQ(take(&src, "\"/0/name\""), "\"ann\"", "the second view (columns)");
  T_STREQ(take(&src, "\"/nope\""), "!/nope is not in the body",
          "a pointer that finds nothing");
  T_STREQ(take(&src, "{\"text\": true}"), "\"{\\\"items\\\": [...]} id=77\"",
          "the whole text");
  T_STREQ(take(&src, "{\"regex\": \"id=([0-9]+)\"}"), "\"77\"",
          "a regex group of the text");
  T_STREQ(take(&src, "{\"regex\": \"ID=[0-9]+\", \"flags\": \"i\"}"),
          "\"id=77\"", "no group: the whole match; flags");
  T_STREQ(
      take(&src, "{\"path\": \"$.items[0].note\", \"regex\": \"#([0-9]+)\"}"),
      "\"12\"", "a regex on a selected value");
  T_STREQ(
      take(&src, "{\"header\": \"Location\", \"regex\": \"/batches/(.*)$\"}"),
      "\"b-17\"", "a regex on a header");
  T_STREQ(take(&src, "{\"header\": \"X-None\"}"), "!no header X-None",
          "a header that is not there");
  T_STREQ(take(&src, "{\"key\": true, \"regex\": \"-([0-9]+)$\"}"), "\"42\"",
          "a regex on the key");
  T_STREQ(take(&src, "{\"regex\": \"nothing ([a-z]+)\"}"),
          "!regex nothing ([a-z]+) does not match \"{\\\"items\\\": [...]} "
          "id=77\"",
          "a regex that does not match says so");
  T_STREQ(take(&src, "{\"regex\": \"(a)|(id)\", \"group\": 1}"),
          "!group 1 of regex (a)|(id) took no part in the match",
          "a group that took no part");
  json_decref(f.doc);
  f.doc = NULL;
  T_STREQ(take(&src, "\"\""), "\"{\\\"items\\\": [...]} id=77\"",
          "\"\" of a value that is not JSON is its text");
  T_STREQ(take(&src, "\"/a\""), "!the body is not JSON",
          "a pointer into a value that is not JSON");
  json_decref(f.alt);
}

static void test_check(void) {
  unsigned all = ER_CAP_HEADER | ER_CAP_KEY | ER_CAP_STATUS | ER_CAP_ALL;
  T_STREQ(check(all, "\"/a/0\""), "", "a pointer");
  T_STREQ(check(all, "\"$..id\""), "", "a JSONPath");
  T_STREQ(check(all, "\"${p}\""), "", "a template, checked once expanded");
  T_STREQ(check(all, "{\"all\": {\"regex\": \"([0-9]+)\"}}"), "",
          "all with a regex");
  T_STREQ(
      check(all, "{\"header\": \"H\", \"regex\": \"(a)(b)\", \"group\": 2}"),
      "", "a header with a regex group");
  T_OK(strstr(check(all, "\"a/b\""), "neither a JSON pointer"),
       "neither pointer nor path: %s", g_got);
  T_OK(strstr(check(all, "\"$.a[\""), "JSONPath $.a[: at offset 4"),
       "a bad JSONPath: %s", g_got);
  T_OK(strstr(check(all, "{\"regx\": \"a\"}"), "did you mean 'regex'"),
       "an unknown key: %s", g_got);
  T_OK(strstr(check(all, "{\"from\": \"body\"}"), "a source: path, text"),
       "an unknown key lists the keys: %s", g_got);
  T_OK(strstr(check(0, "{\"header\": \"H\"}"), "no \"header\""),
       "a source the step does not have: %s", g_got);
  T_OK(strstr(check(all, "{\"header\": \"H\", \"key\": true}"), "one source"),
       "two sources: %s", g_got);
  T_OK(strstr(check(all, "{\"regex\": \"(\"}"), "not a valid"),
       "a bad regex: %s", g_got);
  T_OK(strstr(check(all, "{\"regex\": \"(a)\", \"group\": 2}"), "0 to 1"),
       "a group the regex does not have: %s", g_got);
  T_OK(strstr(check(all, "{\"group\": 1}"), "go with \"regex\""),
       "group without regex: %s", g_got);
  T_OK(strstr(check(all, "{\"all\": {\"all\": \"/x\"}}"), "no \"all\""),
       "all inside all: %s", g_got);
  T_OK(strstr(check(all, "{\"all\": \"/x\", \"regex\": \"a\"}"),
              "holds the whole capture"),
       "all beside other keys: %s", g_got);
  T_OK(strstr(check(all, "{}"), "a capture is"), "an empty object: %s", g_got);
  T_OK(strstr(check(all, "3"), "a capture is"), "a number: %s", g_got);
}

static void test_templates(void) {
  er_tmpl_t *t = er_tmpl_new();
  er_err_t err = {0, ""};
  json_t *v, *big = J("123456789012345678901234567890");
  char *s;
  er_tmpl_set(t, "id", big);
  v = er_tmpl_expand_str(t, "id=${id}", &err);
  T_STREQ(json_string_value(v), "id=123456789012345678901234567890",
          "a big integer interpolated as its digits");
  json_decref(v);
  v = er_tmpl_expand_str(t, "${id}", &err);
  T_OK(er_big_digits(v) &&
           !strcmp(er_big_digits(v), "123456789012345678901234567890"),
       "a whole expression keeps it a (big) integer");
  s = er_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  T_STREQ(s, "123456789012345678901234567890", "and it is written as one");
  free(s);
  json_decref(v);
  v = J("{\"a\": [\"${id}\", \"n-${id}\"]}");
  {
    json_t *x = er_tmpl_expand(t, v, &err);
    s = er_json_dumps(x, JSON_COMPACT);
    T_STREQ(s,
            "{\"a\":[123456789012345678901234567890,\"n-"
            "123456789012345678901234567890\"]}",
            "inside a document too");
    free(s);
    json_decref(x);
  }
  json_decref(v);
  er_tmpl_free(t);
}

int main(void) {
  test_take();
  test_check();
  test_templates();
  return t_done();
}
