/* test_doc.c: files a user writes read by kind (doc.h: JSON, JSON Lines,
 * YAML) with positions, and where the files a scenario names are found
 * (fixture.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lang/doc.h"
#include "lang/fixture.h"
#include "tap.h"

static char *diags_text(const er_diags_t *d) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return NULL;
  er_diags_print(d, f, false);
  fclose(f);
  return buf;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static void test_kinds(void) {
  T_OK(er_doc_kind("a/b.json") == ER_DOC_JSON, "json");
  T_OK(er_doc_kind("a/b.YAML") == ER_DOC_YAML, "YAML (any case)");
  T_OK(er_doc_kind("b.yml") == ER_DOC_YAML, "yml");
  T_OK(er_doc_kind("b.jsonl") == ER_DOC_JSONL, "jsonl");
  T_OK(er_doc_kind("b.ndjson") == ER_DOC_JSONL, "ndjson");
  T_OK(er_doc_kind("b.sql") == ER_DOC_JSON, "anything else: JSON");
  T_OK(er_doc_is_scenario_name("x.json") && er_doc_is_scenario_name("x.yml") &&
           !er_doc_is_scenario_name("x.jsonl") &&
           !er_doc_is_scenario_name("x.txt"),
       "scenario names: json, yaml, yml");
}

static void test_jsonl(void) {
  const char *text = "{\"a\": 1}\n\n  [2, 3]\r\n\"x\"\n";
  er_diags_t d = {0};
  er_jpos_t *pos = NULL;
  int line, col;
  json_t *v = er_doc_parse("m.jsonl", text, strlen(text), 0, &pos, &d);
  char *dump = v ? json_dumps(v, JSON_COMPACT) : NULL;
  T_STREQ(dump, "[{\"a\":1},[2,3],\"x\"]", "JSON Lines: the lines' values");
  T_OK(d.n == 0, "no problems");
  T_OK(er_jpos_find(pos, "/1", false, &line, &col) == 0 && line == 3 &&
           col == 3,
       "the second value is at 3:3 (blank line skipped, indent counted)");
  T_OK(er_jpos_find(pos, "/2", false, &line, &col) == 0 && line == 4,
       "the third on line 4");
  free(dump);
  json_decref(v);
  er_jpos_free(pos);

  text = "{\"a\": 1}\n{\"a\": }\n[\n";
  v = er_doc_parse("m.jsonl", text, strlen(text), 0, &pos, &d);
  dump = diags_text(&d);
  T_OK(v == NULL && d.errors == 2, "two bad lines: two errors, no value");
  T_STREQ(dump,
          "m.jsonl:2:7: error: JSON syntax error: unexpected token near '}'\n"
          "m.jsonl:3:1: error: JSON syntax error: ']' expected near end of "
          "file\n",
          "each at its line and column");
  free(dump);
  er_diags_free(&d);
}

static void test_load_err(void) {
  char dir[] = "/tmp/er_doc_XXXXXX";
  char path[256];
  er_err_t err = {0};
  json_t *v;
  T_OK(mkdtemp(dir) != NULL, "mkdtemp");
  snprintf(path, sizeof path, "%s/x.json", dir);
  write_file(path, "{\n  \"a\": [1,\n}");
  v = er_doc_load_err(path, 1 << 20, NULL, &err);
  T_OK(v == NULL && err.code == ER_E_INPUT && strstr(err.msg, "x.json:3:1: "),
       "a syntax error at run time: file:line:col in the message (%s)",
       err.msg);
  unlink(path);
  er_err_clear(&err);
  v = er_doc_load_err(path, 1 << 20, NULL, &err);
  T_OK(v == NULL && strstr(err.msg, "x.json: cannot open"),
       "a missing file says so (%s)", err.msg);
  rmdir(dir);
}

static void test_fixture_find(void) {
  char top[] = "/tmp/er_fix_XXXXXX";
  char p[512], cwd[4096];
  er_err_t err = {0};
  char *root, *found;
  T_OK(mkdtemp(top) != NULL && getcwd(cwd, sizeof cwd), "mkdtemp");
  snprintf(p, sizeof p, "%s/fixtures", top);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/fixtures/events", top);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/scen", top);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/scen/deep", top);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/fixtures/events/e.jsonl", top);
  write_file(p, "{}\n");
  snprintf(p, sizeof p, "%s/scen/local.json", top);
  write_file(p, "{}");
  snprintf(p, sizeof p, "%s/scen/deep/e.jsonl", top);
  write_file(p, "{}");

  T_OK(chdir(top) == 0, "chdir to the temporary tree");
  root = er_fixture_root(NULL, "scen/deep");
  T_OK(root && strstr(root, "/fixtures") &&
           !strcmp(root + strlen(root) - 9, "/fixtures"),
       "the nearest fixtures/ above the folder (%s)", root ? root : "NULL");
  found = er_fixture_find("scen", root, "local.json", &err);
  T_STREQ(found, "scen/local.json", "the naming file's folder first");
  free(found);
  found = er_fixture_find("scen/deep", root, "events/e.jsonl", &err);
  T_STREQ(found, "fixtures/events/e.jsonl",
          "then the fixtures root, shown relative to the current folder");
  free(found);
  found = er_fixture_find("scen/deep", root, "e.jsonl", &err);
  T_STREQ(found, "scen/deep/e.jsonl", "the folder wins over the root");
  free(found);
  found = er_fixture_find("scen", root, "events/nope.jsonl", &err);
  T_OK(found == NULL && err.code == ER_E_INPUT, "missing: NULL, ER_E_INPUT");
  T_STREQ(err.msg,
          "file 'events/nope.jsonl' not found in scen nor in the fixtures "
          "root fixtures",
          "missing: says where it looked");
  free(root);
  root = er_fixture_root("/elsewhere/fx", "scen");
  T_STREQ(root, "/elsewhere/fx", "the environment's root wins");
  free(root);
  er_err_clear(&err);
  found = er_fixture_find("scen", NULL, "x.json", &err);
  T_OK(found == NULL && strstr(err.msg, "there is no fixtures root"),
       "no root: says so (%s)", err.msg);
  er_err_clear(&err);
  snprintf(p, sizeof p, "%s/scen/local.json", top);
  found = er_fixture_find("nowhere", NULL, p, &err);
  T_STREQ(found, p, "an absolute name as it is");
  free(found);
  T_OK(chdir(cwd) == 0, "chdir back");
  {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    T_OK(system(cmd) == 0, "cleanup");
  }
}

static void test_url_encode(void) {
  er_buf_t b = ER_BUF_INIT(0);
  const char s[] = "a b/c?d=é&~._-Z9";
  er_url_encode(&b, s, strlen(s));
  T_STREQ(er_buf_cstr(&b), "a%20b%2Fc%3Fd%3D%C3%A9%26~._-Z9",
          "percent-encoding keeps only the unreserved characters");
  er_buf_free(&b);
}

/* Parses YAML text; the JSON it gives (compact, keys in order) into out,
 * the problems into probs. */
static void yaml_to(const char *text, char *out, size_t outsz, char *probs,
                    size_t probsz, er_jpos_t **pos) {
  er_diags_t d = {0};
  json_t *v = er_doc_parse("t.yaml", text, strlen(text), 0, pos, &d);
  char *j = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  char *p = diags_text(&d);
  snprintf(out, outsz, "%s", j ? j : "(none)");
  snprintf(probs, probsz, "%s", p ? p : "");
  free(j);
  free(p);
  json_decref(v);
  er_diags_free(&d);
}

static void test_yaml(void) {
  char out[2048], probs[4096];
  er_jpos_t *pos = NULL;
  int line, col;
  yaml_to("name: a\n"
          "n: 3\n"
          "r: 1.5\n"
          "e: 1e3\n"
          "hex: 0x1F\n"
          "oct: 0o17\n"
          "zero: 0\n"
          "neg: -4\n"
          "t: true\n"
          "f: False\n"
          "nil: ~\n"
          "empty:\n"
          "q: \"0123\"\n"
          "s: 'yes'\n"
          "tag: !!str 017\n"
          "dur: 5s\n"
          "time: 12:30\n"
          "on: x\n"
          "list: [1, \"a\", {k: v}]\n"
          "block: |\n"
          "  line one\n"
          "  line two\n"
          "fold: >-\n"
          "  a\n"
          "  b\n"
          "tmpl: ${batch}\n",
          out, sizeof out, probs, sizeof probs, &pos);
  T_STREQ(out,
          "{\"name\":\"a\",\"n\":3,\"r\":1.5,\"e\":1000.0,\"hex\":31,"
          "\"oct\":15,\"zero\":0,\"neg\":-4,\"t\":true,\"f\":false,"
          "\"nil\":null,\"empty\":null,\"q\":\"0123\",\"s\":\"yes\","
          "\"tag\":\"017\",\"dur\":\"5s\",\"time\":\"12:30\",\"on\":\"x\","
          "\"list\":[1,\"a\",{\"k\":\"v\"}],\"block\":\"line one\\nline "
          "two\\n\",\"fold\":\"a b\",\"tmpl\":\"${batch}\"}",
          "YAML 1.2 core: numbers, booleans, null, strings, keys are text");
  T_STREQ(probs, "", "no problems");
  T_OK(er_jpos_find(pos, "/list/2/k", false, &line, &col) == 0 && line == 19 &&
           col == 20,
       "a nested value's line:col (%d:%d)", line, col);
  T_OK(er_jpos_find(pos, "/list/2/k", true, &line, &col) == 0 && line == 19 &&
           col == 17,
       "its key's (%d:%d)", line, col);
  T_OK(er_jpos_find(pos, "/block", false, &line, &col) == 0 && line == 20 &&
           col == 8,
       "a literal block at its indicator (%d:%d)", line, col);
  er_jpos_free(pos);
  pos = NULL;

  yaml_to("a: yes\nb: 0123\nc: .inf\nd: Off\ne: 007.5\n", out, sizeof out,
          probs, sizeof probs, NULL);
  T_STREQ(probs,
          "t.yaml:1:4: error: 'yes' is ambiguous: YAML 1.1 reads it as a "
          "boolean, YAML 1.2 as the string \"yes\"; write true or false, or "
          "quote it\n"
          "t.yaml:2:4: error: '0123' is ambiguous: YAML 1.1 reads a leading 0 "
          "as octal, YAML 1.2 as decimal; write the number without the 0, or "
          "\"0123\" for text\n"
          "t.yaml:3:4: error: '.inf': JSON has no infinity or NaN\n"
          "t.yaml:4:4: error: 'Off' is ambiguous: YAML 1.1 reads it as a "
          "boolean, YAML 1.2 as the string \"Off\"; write true or false, or "
          "quote it\n"
          "t.yaml:5:4: error: '007.5' is ambiguous (a leading 0); write it "
          "without the 0, or quote it\n",
          "the YAML 1.1 traps: each reported at its place, all of them");

  yaml_to("a: 1\nb:\n  c: 2\na: 3\n", out, sizeof out, probs, sizeof probs,
          NULL);
  T_STREQ(probs, "t.yaml:4:1: error: duplicate key 'a' (first at line 1)\n",
          "a duplicate key");
  yaml_to("base: &b {x: 1}\ncopy: *b\nmerged:\n  <<: *b\n  y: 2\n", out,
          sizeof out, probs, sizeof probs, NULL);
  T_STREQ(probs,
          "t.yaml:4:3: error: merge keys (<<) are not supported: share "
          "values with vars, a step file or a fixture\n",
          "an alias is its anchor's value; merge keys are refused");
  yaml_to("base: &b {x: 1}\ncopy: *b\n", out, sizeof out, probs, sizeof probs,
          NULL);
  T_STREQ(out, "{\"base\":{\"x\":1},\"copy\":{\"x\":1}}", "an alias");
  yaml_to("a: &r [1, *r]\n", out, sizeof out, probs, sizeof probs, NULL);
  T_OK(strstr(probs,
              "t.yaml:1:11: error: alias '*r' has no anchor before it") != NULL,
       "an alias inside its own anchor (%s)", probs);
  yaml_to("a: 1\n---\nb: 2\n", out, sizeof out, probs, sizeof probs, NULL);
  T_STREQ(probs,
          "t.yaml:2:1: error: a second YAML document (---): one document "
          "per file\n",
          "one document per file");
  yaml_to("a: [1, 2\nb: 3\n", out, sizeof out, probs, sizeof probs, NULL);
  T_OK(!strcmp(out, "(none)") &&
           !strncmp(probs, "t.yaml:2:2: error: YAML syntax error: ", 38),
       "a syntax error at the parser's mark (%s)", probs);
  yaml_to("", out, sizeof out, probs, sizeof probs, NULL);
  T_STREQ(probs, "t.yaml:1:1: error: the file is empty (no YAML document)\n",
          "an empty file");
  yaml_to("a: !!int '12'\nb: !!float 2\nc: !foo x\nd: !!bool yes\n", out,
          sizeof out, probs, sizeof probs, NULL);
  T_OK(
      strstr(out, "\"a\":12,\"b\":2.0") &&
          strstr(probs, "t.yaml:3:4: error: unknown tag '!foo'") &&
          strstr(probs, "t.yaml:4:4: error: !!bool 'yes': write true or false"),
      "tags: !!int, !!float, unknown, !!bool (%s | %s)", out, probs);
}

/* er_doc_json_elems: the outline of a JSON text, found without parsing
 * it; lax, but never wrong on valid JSON. */
static void outline_is(const char *text, long want, const char *first) {
  size_t open = 0, close = 0, *r = NULL;
  long n = er_doc_json_elems(text, strlen(text), "steps", &open, &close, &r);
  T_OK(n == want, "outline of %s: %ld elements (want %ld)", text, n, want);
  if (n > 0 && first) {
    T_OK(r[1] - r[0] == strlen(first) &&
             !memcmp(text + r[0], first, r[1] - r[0]),
         "its first element is %s (got %.*s)", first, (int)(r[1] - r[0]),
         text + r[0]);
    T_OK(text[open] == '[' && text[close] == ']', "brackets found");
  }
  if (n < 0)
    T_OK(r == NULL, "no ranges when not found");
  free(r);
}

static void test_outline(void) {
  outline_is("{\"steps\": [{\"a\": 1}, 2, \"x\"]}", 3, "{\"a\": 1}");
  outline_is(
      "{\"name\": \"[}{\\\"]\", \"steps\":[ {\"s\": \"]\\\"}\"} ,[[]] ]}", 2,
      "{\"s\": \"]\\\"}\"}");
  outline_is(" \n{ \"x\": {\"steps\": [1]}, \"steps\" : [ true ] } ", 1,
             "true");
  outline_is("{\"steps\": []}", 0, NULL);
  outline_is("{\"steps\": [1], \"steps\": [2]}", -1, NULL); /* twice */
  outline_is("{\"st\\u0065ps\": [1]}", -1, NULL);           /* an escaped key */
  outline_is("{\"steps\": {\"a\": 1}}", -1, NULL);
  outline_is("{\"steps\": [1 2]}", -1, NULL);
  outline_is("{\"steps\": [1,]}", -1, NULL);
  outline_is("{\"steps\": [{\"a\": [}]", -1, NULL);
  outline_is("{\"steps\": [\"open", -1, NULL);
  outline_is("[{\"steps\": [1]}]", -1, NULL);
  outline_is("{\"name\": 1}", -1, NULL);
  outline_is("", -1, NULL);
}

int main(void) {
  const char *root = getenv("ER_ROOT");
  if (root && chdir(root) != 0) {
    printf("not ok 1 - chdir %s\n", root);
    return 1;
  }
  test_kinds();
  test_jsonl();
  test_load_err();
  test_fixture_find();
  test_url_encode();
  test_yaml();
  test_outline();
  return t_done();
}
