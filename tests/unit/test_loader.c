/* test_loader.c: scenario loading and validation (scenario.h).
 *
 * tests/data/bad/NAME.json must fail to load and print exactly the lines
 * of NAME.expected, where @ACTIONS@ / @CHECKS@ stand for the names of
 * every action / every check action of the table (so adding an action
 * does not rewrite the expectations). tests/data/good/ files load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lang/doc.h"
#include "lang/scenario.h"
#include "lang/validate.h"
#include "tap.h"

static char *diags_text(const er_diags_t *d, bool color) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return NULL;
  er_diags_print(d, f, color);
  fclose(f);
  return buf;
}

static char *slurp(const char *path) {
  er_err_t err;
  er_err_clear(&err);
  return er_read_file(path, 1 << 20, NULL, &err);
}

static void action_names(bool checks, er_buf_t *b) {
  size_t n = 0;
  const er_action_t *const *all = er_actions_all(&n);
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    if (checks && !all[i]->check)
      continue;
    er_buf_printf(b, "%s%s", first ? "" : ", ", all[i]->name);
    first = false;
  }
}

/* s with @ACTIONS@ and @CHECKS@ replaced. Caller frees. */
static char *subst(const char *s) {
  er_buf_t out = ER_BUF_INIT(0);
  while (*s) {
    if (strncmp(s, "@ACTIONS@", 9) == 0) {
      action_names(false, &out);
      s += 9;
    } else if (strncmp(s, "@CHECKS@", 8) == 0) {
      action_names(true, &out);
      s += 8;
    } else {
      er_buf_append(&out, s, 1);
      s++;
    }
  }
  return er_buf_steal(&out);
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; s && *s; s++)
    if (*s == '\n')
      n++;
  return n;
}

static void test_bad_files(void) {
  char *dir[] = {"tests/data/bad"};
  char **files = NULL;
  size_t n = 0;
  er_err_t err;
  er_err_clear(&err);
  T_OK(er_scenario_collect(dir, 1, &files, &n, &err) == 0, "collect bad/");
  T_OK(n >= 17, "at least 17 bad files (got %zu)", n);
  for (size_t i = 0; i < n; i++) {
    er_diags_t d = {0};
    er_scenario_t *s = er_scenario_load(files[i], &d);
    char *exp_path = malloc(strlen(files[i]) + 16);
    char *raw, *want, *got;
    strcpy(exp_path, files[i]);
    /* NAME.json or NAME.yaml: the same length */
    strcpy(exp_path + strlen(exp_path) - strlen(".json"), ".expected");
    raw = slurp(exp_path);
    T_OK(raw != NULL, "%s exists", exp_path);
    want = raw ? subst(raw) : NULL;
    got = diags_text(&d, false);
    T_OK(s == NULL, "%s: not loaded", files[i]);
    T_OK(d.errors > 0, "%s: has errors", files[i]);
    T_STREQ(got, want, "%s: exact diagnostics", files[i]);
    if (strstr(files[i], "many-problems")) {
      T_OK(count_lines(got) == 11 && d.errors == 10 && d.warnings == 1,
           "many-problems: all 11 problems reported (%zu lines)",
           count_lines(got));
    }
    er_scenario_free(s);
    er_diags_free(&d);
    free(exp_path);
    free(raw);
    free(want);
    free(got);
    free(files[i]);
  }
  free(files);
}

/* Does the step (or the check it wraps) use action a? */
/* Does a step (as JSON) use action a, itself or nested in a check or a
 * group's steps? */
static bool json_step_uses(const json_t *step, const er_action_t *a) {
  const char *k, *ik;
  json_t *v, *iv;
  json_object_foreach((json_t *)step, k, v) {
    const er_action_t *sa = er_action_find(k);
    if (!sa)
      continue;
    if (sa == a)
      return true;
    if (!json_is_object(v))
      continue;
    json_object_foreach(v, ik, iv) {
      if (sa->wraps_check && er_action_find(ik) == a)
        return true;
      if (sa->raw_args && json_is_array(iv))
        for (size_t i = 0; i < json_array_size(iv); i++)
          if (json_step_uses(json_array_get(iv, i), a))
            return true;
    }
  }
  return false;
}

static bool step_uses(const er_step_t *st, const er_action_t *a) {
  json_t *step = json_object();
  bool used;
  json_object_set(step, st->action->name, st->args);
  used = json_step_uses(step, a);
  json_decref(step);
  return used;
}

static void test_every_action(void) {
  er_diags_t d = {0};
  er_scenario_t *s = er_scenario_load("tests/data/good/every-action.json", &d);
  char *txt = diags_text(&d, false);
  size_t n = 0;
  const er_action_t *const *all = er_actions_all(&n);
  T_OK(s != NULL, "every-action.json loads");
  T_STREQ(txt, "", "every-action.json: no diagnostics");
  free(txt);
  if (!s) {
    er_diags_free(&d);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    bool used = false;
    const er_steplist_t *lists[] = {&s->setup, &s->steps, &s->teardown};
    if (all[i]->warn_on_use)
      continue; /* sleep warns: see sleep.json */
    for (size_t l = 0; l < 3; l++)
      for (size_t j = 0; j < lists[l]->n; j++)
        used = used || step_uses(&lists[l]->v[j], all[i]);
    T_OK(used, "every-action.json uses '%s'", all[i]->name);
  }
  T_STREQ(s->name, "every action", "name");
  T_STREQ(s->file, "tests/data/good/every-action.json", "file");
  T_STREQ(s->dir, "tests/data/good", "dir");
  T_STREQ(s->classname, "tests.data.good", "classname from the folder");
  T_OK(s->skip == NULL, "not skipped");
  T_OK(s->timeout_ms == 120000, "timeout 2m = 120000 ms");
  T_OK(json_array_size(s->tags) == 2 &&
           !strcmp(json_string_value(json_array_get(s->tags, 1)), "all"),
       "tags");
  T_OK(json_integer_value(json_object_get(s->vars, "n")) == 3, "vars");
  T_OK(s->setup.n == 2 && s->steps.n == 10 && s->teardown.n == 2,
       "2 setup, 10 steps, 2 teardown");
  T_STREQ(s->setup.v[0].name, "redis.clean #1", "default step name");
  T_STREQ(s->setup.v[0].path, "/setup/0", "setup path");
  T_OK(s->setup.v[0].line == 8 && s->setup.v[0].col == 5, "setup[0] at 8:5");
  T_STREQ(s->steps.v[0].name, "seed", "named step");
  T_OK(s->steps.v[0].action == er_action_find("redis.seed"), "action");
  T_STREQ(s->steps.v[1].name, "register", "named step 2");
  T_OK(s->steps.v[1].timeout_ms == 5000, "step timeout 5s");
  T_OK(s->steps.v[0].timeout_ms == 0, "no step timeout: 0");
  T_STREQ(s->steps.v[2].name, "redis #3", "default name counts from 1");
  T_STREQ(s->steps.v[2].path, "/steps/2", "step path");
  T_OK(s->steps.v[2].line == 24 && s->steps.v[2].col == 5,
       "steps[2] at 24:5 (got %d:%d)", s->steps.v[2].line, s->steps.v[2].col);
  T_OK(s->steps.v[2].args ==
           json_object_get(json_array_get(json_object_get(s->doc, "steps"), 2),
                           "redis"),
       "args borrowed from the doc");
  T_STREQ(s->steps.v[3].name, "await #4", "await step");
  T_STREQ(s->teardown.v[0].path, "/teardown/0", "teardown path");
  T_OK(s->teardown.v[0].line == 49, "teardown[0] on line 49");
  er_scenario_free(s);
  er_diags_free(&d);
}

static void test_sleep_warns(void) {
  er_diags_t d = {0};
  er_scenario_t *s = er_scenario_load("tests/data/good/sleep.json", &d);
  char *txt = diags_text(&d, false);
  T_OK(s != NULL, "sleep.json loads despite the warning");
  T_OK(d.errors == 0 && d.warnings == 1, "one warning, no error");
  T_STREQ(txt,
          "tests/data/good/sleep.json:4:7: warning: sleep makes a scenario "
          "slow and flaky; use await (until something holds) or hold (stays "
          "true) instead\n",
          "sleep warning text and position");
  free(txt);
  txt = diags_text(&d, true);
  T_OK(txt && strstr(txt, "\033[1;35mwarning:\033[0m") &&
           strstr(txt, "\033[1mtests/data/good/sleep.json:4:7:\033[0m"),
       "colour when asked");
  free(txt);
  er_scenario_free(s);
  er_diags_free(&d);
}

/* vars that double the one before: refused at their name, unexpanded */
static void test_vars_bomb(void) {
  er_buf_t b = ER_BUF_INIT(1u << 20);
  er_diags_t d = {0};
  er_scenario_t *s;
  char *txt, path[] = "/tmp/eventrig-bomb-XXXXXX";
  int fd = mkstemp(path);
  er_buf_puts(
      &b, "{\"name\": \"bomb\",\n \"vars\": {\n  \"v0\": {\"a\": \"AAAA\"}");
  for (int i = 1; i <= 22; i++)
    er_buf_printf(&b, ",\n  \"v%d\": [\"${v%d}\", \"${v%d}\"]", i, i - 1,
                  i - 1);
  er_buf_puts(&b, "},\n \"steps\": [{\"sleep\": {\"for\": \"1ms\"}}]}\n");
  T_OK(fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len,
       "bomb: %zu bytes written", b.len);
  if (fd >= 0)
    close(fd);
  s = er_scenario_load(path, &d);
  txt = diags_text(&d, false);
  T_OK(s == NULL && d.errors == 1, "bomb: one error, not loaded");
  T_OK(txt && strstr(txt, ":22:3: error: var 'v19' expands to more than "
                          "8388608 bytes"),
       "bomb: the error is at v19's name (%s)", txt ? txt : "");
  free(txt);
  er_scenario_free(s);
  er_diags_free(&d);
  er_buf_free(&b);
  unlink(path);
}

static void test_skip_and_classname(void) {
  er_diags_t d = {0};
  er_scenario_t *s =
      er_scenario_load("tests/data/good/nested/skipped.json", &d);
  char cwd[4096];
  T_OK(s && s->skip && !strcmp(s->skip, "upstream is flaky"), "skip reason");
  T_STREQ(s ? s->classname : NULL, "tests.data.good.nested",
          "nested classname");
  er_scenario_free(s);
  s = er_scenario_load("tests/data/good/nested/deeper/a.json", &d);
  T_STREQ(s ? s->skip : NULL, "skipped", "skip: true");
  er_scenario_free(s);

  T_OK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
  /* inside the repository: relative to its root however the path is
   * typed and wherever the current folder is in it */
  T_OK(chdir("tests/data/good") == 0, "chdir good");
  s = er_scenario_load("sleep.json", &d);
  T_STREQ(s ? s->classname : NULL, "tests.data.good",
          "file in . -> the repository-relative folder");
  T_STREQ(s ? s->relfile : NULL, "tests/data/good/sleep.json",
          "relfile from the repository root");
  T_STREQ(s ? s->dir : NULL, ".", "dir .");
  er_scenario_free(s);
  s = er_scenario_load("./nested//skipped.json", &d);
  T_STREQ(s ? s->classname : NULL, "tests.data.good.nested",
          "./nested//x -> tests.data.good.nested");
  er_scenario_free(s);
  T_OK(chdir("nested") == 0, "chdir nested");
  s = er_scenario_load("../sleep.json", &d);
  T_STREQ(s ? s->classname : NULL, "tests.data.good", "../x: the same");
  er_scenario_free(s);
  {
    char abs[4200];
    snprintf(abs, sizeof abs, "%s/tests/data/good/sleep.json", cwd);
    s = er_scenario_load(abs, &d);
    T_STREQ(s ? s->relfile : NULL, "tests/data/good/sleep.json",
            "an absolute path: the same relfile");
    er_scenario_free(s);
  }
  T_OK(chdir(cwd) == 0, "chdir back");
  T_OK(d.errors == 0, "no errors");
  er_diags_free(&d);
}

static void test_defaults(void) {
  char dir[] = "/tmp/er_loader_XXXXXX";
  char path[256];
  FILE *f;
  er_diags_t d = {0};
  er_scenario_t *s;
  T_OK(mkdtemp(dir) != NULL, "mkdtemp");
  snprintf(path, sizeof path, "%s/defaults.json", dir);
  f = fopen(path, "w");
  fputs("{\"name\": \"defaults\", \"skip\": false,\n"
        " \"steps\": [{\"redis\": {\"command\": [\"PING\"]}}]}",
        f);
  fclose(f);
  s = er_scenario_load(path, &d);
  T_OK(s != NULL && d.n == 0, "defaults.json loads");
  if (s) {
    T_OK(s->timeout_ms == 60000, "default timeout 60s");
    T_OK(s->skip == NULL, "skip: false is not skipped");
    T_OK(json_is_array(s->tags) && json_array_size(s->tags) == 0,
         "tags default to []");
    T_OK(json_is_object(s->vars) && json_object_size(s->vars) == 0,
         "vars default to {}");
    T_OK(s->setup.n == 0 && s->teardown.n == 0, "no setup/teardown");
    T_STREQ(s->classname, strrchr(dir, '/') + 1,
            "folder outside cwd: its name");
    T_OK(s->steps.v[0].line == 2 && s->steps.v[0].col == 12, "step at 2:12");
  }
  er_scenario_free(s);
  unlink(path);
  rmdir(dir);

  s = er_scenario_load("tests/data/nope.json", &d);
  {
    char *txt = diags_text(&d, false);
    T_OK(s == NULL, "missing file: NULL");
    T_STREQ(txt,
            "tests/data/nope.json: error: cannot open: No such file or "
            "directory\n",
            "missing file: message without position");
    free(txt);
  }
  er_diags_free(&d);
}

static void test_collect(void) {
  char *good[] = {"tests/data/good"};
  char *mixed[] = {"tests/data/good/sleep.json", "tests/data/good/nested/",
                   "tests/data/good/sleep.json"};
  char *missing[] = {"tests/data/good", "tests/data/nope"};
  char **files = NULL;
  size_t n = 0;
  er_err_t err;
  er_buf_t b = ER_BUF_INIT(0);

  er_err_clear(&err);
  T_OK(er_scenario_collect(good, 1, &files, &n, &err) == 0, "collect good/");
  for (size_t i = 0; i < n; i++) {
    er_buf_printf(&b, "%s\n", files[i]);
    free(files[i]);
  }
  free(files);
  T_STREQ(er_buf_cstr(&b),
          "tests/data/good/every-action.json\n"
          "tests/data/good/nested/deeper/a.json\n"
          "tests/data/good/nested/skipped.json\n"
          "tests/data/good/sleep.json\n",
          "recursive, sorted, *.json only, no hidden, no *.env.json");
  er_buf_reset(&b);

  T_OK(er_scenario_collect(mixed, 3, &files, &n, &err) == 0, "collect mixed");
  for (size_t i = 0; i < n; i++) {
    er_buf_printf(&b, "%s\n", files[i]);
    free(files[i]);
  }
  free(files);
  T_STREQ(er_buf_cstr(&b),
          "tests/data/good/sleep.json\n"
          "tests/data/good/nested/deeper/a.json\n"
          "tests/data/good/nested/skipped.json\n",
          "argument order kept, duplicates dropped, no '//'");
  er_buf_free(&b);

  T_OK(er_scenario_collect(missing, 2, &files, &n, &err) == -1,
       "missing path fails");
  T_OK(err.code == ER_E_INPUT && files == NULL && n == 0, "ER_E_INPUT");
  T_STREQ(err.msg, "tests/data/nope: No such file or directory",
          "missing path message");
}

static void test_matches(void) {
  er_diags_t d = {0};
  er_scenario_t *s =
      er_scenario_load("tests/data/good/nested/skipped.json", &d);
  struct {
    const char *f;
    bool want;
  } cases[] = {
      {NULL, true},
      {"", true},
      {"tag:storm", true},
      {"tag:sto", false},
      {"name:storm", true},
      {"name:nested", false},
      {"nested/skipped", true},
      {"STORM", true},
      {"xyz", false},
      {"!tag:slow", false},
      {"!tag:fast", true},
      {"tag:fast,tag:slow", true},
      {"tag:storm,!name:skipped", false},
      {" tag:storm , name:zzz ", true},
      {"tag:fast,!tag:slow", false},
      {",,", true},
  };
  if (!s) {
    T_OK(0, "skipped.json loads");
    return;
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    T_OK(er_scenario_matches(s, cases[i].f) == cases[i].want,
         "filter '%s' -> %s", cases[i].f ? cases[i].f : "(null)",
         cases[i].want ? "match" : "no match");
  er_scenario_free(s);
  er_diags_free(&d);
}

/* Every node of v, as borrowed pointers with their parents. */
typedef struct node {
  json_t *parent;
  const char *key; /* NULL for array elements */
  size_t index;
} node_t;

static void collect_nodes(json_t *v, node_t *out, size_t *n, size_t max) {
  const char *k;
  json_t *el;
  if (json_is_object(v)) {
    json_object_foreach(v, k, el) {
      if (*n < max)
        out[(*n)++] = (node_t){v, k, 0};
      collect_nodes(el, out, n, max);
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (*n < max)
        out[(*n)++] = (node_t){v, NULL, i};
      collect_nodes(json_array_get(v, i), out, n, max);
    }
  }
}

/* Replaces random values of a good scenario by values of other types and
 * loads the result: the loader must report, never crash or leak. */
static void test_mutations(void) {
  char dir[] = "/tmp/er_mut_XXXXXX";
  char path[256];
  json_t *orig;
  json_error_t je;
  unsigned long seed = 7;
  int loaded = 0, rejected = 0, silent_reject = 0;
  const char *repl[] = {"\"x\"",
                        "1",
                        "2.5",
                        "true",
                        "null",
                        "[]",
                        "{}",
                        "\"${nope}\"",
                        "\"${a\"",
                        "\"5 sec\"",
                        "[{}]",
                        "{\"$gtee\": 1}",
                        "{\"sleep\": {\"for\": \"1s\"}}"};
  T_OK(mkdtemp(dir) != NULL, "mkdtemp");
  snprintf(path, sizeof path, "%s/m.json", dir);
  orig = json_load_file("tests/data/good/every-action.json", 0, &je);
  T_OK(orig != NULL, "jansson reads every-action.json");
  for (int round = 0; orig && round < 400; round++) {
    json_t *doc = json_deep_copy(orig);
    node_t nodes[512];
    size_t n = 0;
    er_diags_t d = {0};
    er_scenario_t *s;
    collect_nodes(doc, nodes, &n, 512);
    for (int m = 0; m < 1 + round % 3 && n; m++) {
      node_t *nd;
      json_t *nv;
      seed = seed * 6364136223846793005UL + 1442695040888963407UL;
      nd = &nodes[(seed >> 33) % n];
      nv = json_loads(repl[(seed >> 20) % (sizeof repl / sizeof *repl)],
                      JSON_DECODE_ANY, NULL);
      if (nd->key)
        json_object_set_new(nd->parent, nd->key, nv);
      else
        json_array_set_new(nd->parent, nd->index, nv);
      n = 0; /* the tree changed: collect again */
      collect_nodes(doc, nodes, &n, 512);
    }
    json_dump_file(doc, path, JSON_INDENT(2));
    s = er_scenario_load(path, &d);
    if (s)
      loaded++;
    else
      rejected++;
    if (!s && d.errors == 0)
      silent_reject++;
    er_scenario_free(s);
    er_diags_free(&d);
    json_decref(doc);
  }
  T_OK(loaded + rejected == 400 && rejected > 100,
       "400 mutated scenarios: %d loaded, %d rejected", loaded, rejected);
  T_OK(silent_reject == 0, "every rejection comes with an error");
  json_decref(orig);
  {
    /* nesting as deep as jansson allows, inside a step's arguments */
    FILE *f = fopen(path, "w");
    er_diags_t d = {0};
    er_scenario_t *s;
    fputs("{\"name\": \"deep\", \"steps\": [{\"http\": {\"url\": \"u\", "
          "\"json\": ",
          f);
    for (int i = 0; i < 2000; i++)
      fputs("[\"${x}\",", f);
    fputs("1", f);
    for (int i = 0; i < 2000; i++)
      fputs("]", f);
    fputs("}}]}", f);
    fclose(f);
    s = er_scenario_load(path, &d);
    T_OK(s == NULL && d.errors == 2000 && d.n == ER_DIAGS_KEEP,
         "2000-deep value: every undefined ${x} counted (%zu), the first "
         "%d kept",
         d.errors, ER_DIAGS_KEEP);
    {
      char *txt = diags_text(&d, false);
      T_OK(txt && strstr(txt, "... and 1000 more problem(s) not shown (the "
                              "first 1000 are)\n"),
           "the problems not kept are counted in the output");
      free(txt);
    }
    er_scenario_free(s);
    er_diags_free(&d);
  }
  unlink(path);
  rmdir(dir);
}

/* A table of cases: one scenario per row, named from it, with the row's
 * vars first, the file's tags then the row's, the row's skip. */
static void test_cases(void) {
  er_diags_t d = {0};
  er_scenario_t **v = NULL;
  size_t n = 0;
  char *vars;
  T_OK(er_scenario_load_all("tests/data/lang/pass/cases.json", NULL, &d, &v,
                            &n) == 0 &&
           n == 3,
       "three rows, three scenarios (%zu)", n);
  if (n != 3) {
    er_diags_free(&d);
    return;
  }
  T_STREQ(v[0]->name, "cases [small]", "named from the row");
  T_STREQ(v[2]->case_name, "not today", "case_name");
  vars = json_dumps(v[1]->vars, JSON_COMPACT);
  T_STREQ(vars,
          "{\"n\":3,\"words\":[\"x\",\"y\",\"z\"],\"suffix\":\"!\",\"k\":"
          "\"lang:${run.id}:${uuid}\"}",
          "the row's vars first, then the file's it does not set");
  free(vars);
  vars = json_dumps(v[0]->tags, JSON_COMPACT);
  T_STREQ(vars, "[\"cases\",\"small\"]", "the file's tags, then the row's");
  free(vars);
  T_OK(v[0]->skip == NULL && v[2]->skip &&
           !strcmp(v[2]->skip, "a row skipped on purpose"),
       "a row's own skip");
  T_OK(v[0]->doc == v[1]->doc && v[0]->steps.n == 9 && v[1]->steps.n == 9,
       "the rows share the document, each has its steps");
  T_OK(er_scenario_matches(v[1], "case:big") &&
           !er_scenario_matches(v[0], "case:big") &&
           er_scenario_matches(v[0], "case:SMALL") &&
           er_scenario_matches(v[0], "name:[small]") &&
           !er_scenario_matches(v[1], "name:[small]"),
       "--filter case:NAME and name:[row]");
  for (size_t i = 0; i < n; i++)
    er_scenario_free(v[i]);
  free(v);
  er_diags_free(&d);
}

static const er_keyspec_t ready_keys[] = {
    {"tcp", ER_T_STRING, false, NULL, NULL},
    {"http", ER_T_STRING, false, NULL, NULL},
    {"within", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};
static const er_keyspec_t service_keys[] = {
    {"name", ER_T_STRING, true, NULL, NULL},
    {"command", ER_T_ARRAY, true, NULL, NULL},
    {"env", ER_T_OBJECT, false, NULL, NULL},
    {"ready", ER_T_OBJECT, false, ready_keys, NULL},
    {NULL, 0, false, NULL, NULL},
};
static const er_keyspec_t redis_keys[] = {
    {"url", ER_T_STRING, true, NULL, NULL},
    {"allow_flush", ER_T_BOOL, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};
static const er_keyspec_t env_keys[] = {
    {"redis", ER_T_OBJECT, false, redis_keys, NULL},
    {"services", ER_T_ARRAY, false, NULL, service_keys},
    {NULL, 0, false, NULL, NULL},
};
static const er_keyspec_t group_keys[] = {
    {"group", ER_T_STEPS, false, NULL, NULL},
    {"probe", ER_T_CHECK, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static void check_keys(const char *text, const er_keyspec_t *spec,
                       const char *want_raw, const char *what) {
  er_diags_t d = {0};
  json_t *doc = er_parse_json_text("env.json", text, strlen(text), &d);
  char *want = subst(want_raw);
  char *got;
  er_validate_keys("env.json", text, doc, spec, &d);
  got = diags_text(&d, false);
  T_STREQ(got, want, "%s", what);
  free(got);
  free(want);
  json_decref(doc);
  er_diags_free(&d);
}

static void test_validate_keys(void) {
  check_keys("{\n"
             "  \"redis\": {\"url\": 5, \"alow_flush\": true},\n"
             "  \"services\": [\n"
             "    {\"name\": \"sut\", \"command\": [\"./sut\"], \"ready\": "
             "{\"tcp\": \"127.0.0.1:1\", \"within\": \"soon\"}},\n"
             "    {\"command\": \"sut\"},\n"
             "    \"x\"\n"
             "  ],\n"
             "  \"extra\": 1\n"
             "}\n",
             env_keys,
             "env.json:2:20: error: 'url' must be a string, not an integer\n"
             "env.json:2:23: error: unknown key 'alow_flush' in 'redis' (did "
             "you mean 'allow_flush'?)\n"
             "env.json:4:85: error: 'within': \"soon\" is not a duration "
             "(write a number and a unit: 250ms, 5s, 2m)\n"
             "env.json:5:5: error: 'services[1]' needs the key 'name'\n"
             "env.json:5:17: error: 'command' must be an array, not a string\n"
             "env.json:6:5: error: each element of 'services' must be an "
             "object, not a string\n"
             "env.json:8:3: error: unknown key 'extra'\n",
             "generic key spec: sub, each, types, durations, required");
  check_keys(
      "{\"group\": [{\"redis.clean\": {\"match\": \"a*\"}}, {\"sleeep\": {}}], "
      "\"probe\": {\"redis.clean\": {}}}",
      group_keys,
      "env.json:1:47: error: unknown action 'sleeep' (did you mean "
      "'sleep'?)\n"
      "env.json:1:73: error: 'redis.clean' cannot be used inside "
      "'probe': it is not a check (checks: @CHECKS@)\n",
      "ER_T_STEPS and ER_T_CHECK values");
  check_keys("[1]", env_keys,
             "env.json:1:1: error: the file must hold a JSON object, not an "
             "array\n",
             "non-object document");
  check_keys("{\n  \"a\": 1,\n}", env_keys,
             "env.json:3:1: error: JSON syntax error: string or '}' expected "
             "near '}'\n",
             "syntax error at jansson's line:col");
  check_keys("", env_keys,
             "env.json:1:1: error: JSON syntax error: unexpected token near "
             "end of file\n",
             "empty text");
}

/* A large file is checked a step at a time by `validate` (lean_bytes):
 * every JSON scenario of the repository, loaded whole and a step at a
 * time, must give the same problems, at the same places, and the same
 * number of scenarios. */
static void load_both(const char *path, const char *label) {
  er_load_opts_t whole = {NULL, 0}, lean = {NULL, 1};
  er_diags_t d1 = {0}, d2 = {0};
  er_scenario_t **v1 = NULL, **v2 = NULL;
  size_t n1 = 0, n2 = 0;
  int rc1 = er_scenario_load_all(path, &whole, &d1, &v1, &n1);
  int rc2 = er_scenario_load_all(path, &lean, &d2, &v2, &n2);
  char *t1 = diags_text(&d1, false), *t2 = diags_text(&d2, false);
  bool same = rc1 == rc2 && n1 == n2 && d1.errors == d2.errors &&
              d1.warnings == d2.warnings && t1 && t2 && !strcmp(t1, t2);
  T_OK(same,
       "%s: the same a step at a time (%zu/%zu errors, %zu/%zu "
       "warnings, %zu/%zu scenarios)%s%s%s%s",
       label, d1.errors, d2.errors, d1.warnings, d2.warnings, n1, n2,
       same ? "" : "\n--- whole:\n",
       same ? ""
       : t1 ? t1
            : "",
       same ? "" : "--- a step at a time:\n",
       same ? ""
       : t2 ? t2
            : "");
  for (size_t i = 0; i < n1; i++)
    er_scenario_free(v1[i]);
  for (size_t i = 0; i < n2; i++)
    er_scenario_free(v2[i]);
  free(v1);
  free(v2);
  free(t1);
  free(t2);
  er_diags_free(&d1);
  er_diags_free(&d2);
}

static void test_lean(void) {
  char *dirs[] = {"tests/data", "scenarios"};
  char **files = NULL;
  size_t n = 0, outlined = 0, with_errors = 0;
  er_err_t err;
  er_err_clear(&err);
  T_OK(er_scenario_collect(dirs, 2, &files, &n, &err) == 0, "collect");
  for (size_t i = 0; i < n; i++) {
    char *text = slurp(files[i]);
    size_t open, close, *r = NULL;
    er_diags_t d = {0};
    if (text && er_doc_kind(files[i]) == ER_DOC_JSON &&
        er_doc_json_elems(text, strlen(text), "steps", &open, &close, &r) > 0) {
      er_scenario_t *s = er_scenario_load(files[i], &d);
      outlined++;
      with_errors += d.errors > 0;
      er_scenario_free(s);
      load_both(files[i], files[i]);
    }
    er_diags_free(&d);
    free(r);
    free(text);
    free(files[i]);
  }
  free(files);
  /* the corpus must reach the step-at-a-time path, bad files included */
  T_OK(outlined >= 100, "%zu files read a step at a time", outlined);
  T_OK(with_errors >= 30, "%zu of them with errors", with_errors);
}

/* A generated file of n steps: steps that capture and use earlier
 * captures, a step file called from a step and from a nested one,
 * problems at every level (with 2000 steps, more than are kept: the ones
 * kept must be the same too). */
static void test_lean_generated(int n) {
  const char *path = "build/test_loader_lean.json";
  er_buf_t b = ER_BUF_INIT(0);
  FILE *f;
  er_buf_puts(&b,
              "{\"name\": \"gen\",\n \"vars\": {\"v\": 1},\n \"steps\": [\n");
  for (int i = 0; i < n; i++) {
    switch (i % 10) {
    case 0:
      er_buf_printf(&b, "  {\"sleep\": {\"for\": \"1ms\"}, \"name\": \"s%d\"}",
                    i);
      break;
    case 1:
      er_buf_printf(&b,
                    "  {\"redis\": {\"command\": [\"GET\", \"k${c%d}\"], "
                    "\"capture\": {\"c%d\": \"\"}}}",
                    i + 5, i);
      break;
    case 2:
      er_buf_printf(&b,
                    "  {\"redis\": {\"command\": [\"GET\", \"k${c%d}%s\"]}}",
                    i - 1, i % 20 == 12 ? "${batch}${slots}" : "");
      break;
    case 3:
      er_buf_printf(&b,
                    "  {\"http\": {\"url\": \"http://h/${nope%d}\", "
                    "\"expect\": {\"stauts\": 200}}}",
                    i);
      break;
    case 4:
      er_buf_printf(&b,
                    "  {\"use\": \"steps/register-batch.step.json\", \"with\": "
                    "{\"%s\": %d}}",
                    i % 20 == 4 ? "count" : "cuont", i);
      break;
    case 5:
      er_buf_printf(&b,
                    "  {\"repeat\": {\"count\": 2, \"steps\": [{\"use\": "
                    "\"steps/none%d.step.json\"}, {\"slep\": 1}]}}",
                    i);
      break;
    case 6:
      er_buf_printf(&b, "  %d", i);
      break;
    case 7:
      er_buf_printf(
          &b, "  {\"sleep\": {\"for\": \"1ms\"}, \"http\": {\"url\": \"x\"}}");
      break;
    case 8:
      er_buf_printf(&b,
                    "  {\"await\": {\"within\": \"soon\", \"redis\": "
                    "{\"command\": [\"GET\", \"${t%d}\"]}}}",
                    i + 100);
      break;
    default:
      er_buf_printf(&b,
                    "  {\"postgres\": {\"query\": \"SELECT 1\", \"capture\": "
                    "{\"t%d\": \"/0/0\"}}}",
                    i);
      break;
    }
    er_buf_puts(&b, i < n - 1 ? ",\n" : "\n");
  }
  er_buf_puts(&b, " ],\n \"teardown\": [{\"redis\": {\"command\": [\"DEL\", "
                  "\"${c291}${t299}${x}\"]}}, {\"http\": {\"url\": "
                  "\"x\", \"expect\": {\"stauts\": 1}}}]\n}\n");
  f = fopen(path, "w");
  T_OK(f && fwrite(b.data, 1, b.len, f) == b.len, "write %s", path);
  if (f)
    fclose(f);
  {
    char label[64];
    snprintf(label, sizeof label, "a generated file of %d steps", n);
    load_both(path, label);
  }
  er_buf_free(&b);
}

int main(void) {
  test_vars_bomb();
  const char *root = getenv("ER_ROOT");
  if (root && chdir(root) != 0) {
    printf("not ok 1 - chdir %s\n", root);
    return 1;
  }
  test_bad_files();
  test_every_action();
  test_sleep_warns();
  test_skip_and_classname();
  test_defaults();
  test_collect();
  test_matches();
  test_cases();
  test_validate_keys();
  test_mutations();
  test_lean();
  test_lean_generated(300);
  test_lean_generated(2000);
  return t_done();
}
