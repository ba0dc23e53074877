/* scenario.c: loading and validating scenario files (see scenario.h).
 *
 * Validation walks the parsed document with the key specs of action.h
 * (validate.h) and reports every problem it finds (it does not stop at
 * the first), each mapped to file:line:col (diags.h). A second pass checks
 * ${...} references: a name must be a builtin, a var defined before, or the
 * capture of an earlier step. Problems of one file are reported sorted by
 * position. A plan (er_scenario_t) is built only from a file without
 * errors. */
#include "lang/scenario.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/jsonbig.h"
#include "lang/diags.h"
#include "lang/doc.h"
#include "lang/fixture.h"
#include "lang/jpos.h"
#include "lang/jsonx.h"
#include "lang/refs.h"
#include "lang/template.h"
#include "lang/uses.h"
#include "lang/validate.h"

#define SCENARIO_MAX_BYTES (8u * 1024u * 1024u)
#define DEFAULT_TIMEOUT_MS 60000

/* ---- top level --------------------------------------------------------- */

/* {"skip": {"if": <condition>, "reason": "..."}} */
static const er_keyspec_t g_skip[] = {
    {"if", ER_T_ANY | ER_T_COND, true, NULL, NULL},
    {"reason", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t g_case[] = {
    {"name", ER_T_STRING, true, NULL, NULL},
    {"vars", ER_T_OBJECT, false, NULL, NULL},
    {"tags", ER_T_ARRAY, false, NULL, NULL},
    {"skip", ER_T_STRING | ER_T_BOOL | ER_T_OBJECT, false, g_skip, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t g_top[] = {
    {"name", ER_T_STRING, true, NULL, NULL},
    {"description", ER_T_STRING, false, NULL, NULL},
    {"tags", ER_T_ARRAY, false, NULL, NULL},
    {"vars", ER_T_OBJECT, false, NULL, NULL},
    {"timeout", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"skip", ER_T_STRING | ER_T_BOOL | ER_T_OBJECT, false, g_skip, NULL},
    {"exclusive", ER_T_BOOL, false, NULL, NULL}, /* run/schedule.h */
    {"setup", ER_T_STEPS, false, NULL, NULL},
    {"steps", ER_T_STEPS, true, NULL, NULL},
    {"teardown", ER_T_STEPS, false, NULL, NULL},
    {"cases", ER_T_ARRAY, false, NULL, g_case},
    {NULL, 0, false, NULL, NULL},
};

static const char *const g_lists[] = {"setup", "steps", "teardown"};

/* A conditional skip is decided before the scenario starts: it may use
 * only the run's names (env, run, kafka, port, ...). */
typedef struct skipref {
  const er_diag_src_t *c;
  const char *ptr;
} skipref_t;

static void skip_ref_cb(void *ud, const char *root, size_t off) {
  const skipref_t *sr = ud;
  (void)off;
  if (!er_tmpl_is_builtin(root))
    er_diag_err(sr->c, sr->ptr, false,
                "'skip' is decided before the scenario starts: it may use "
                "the run's names (env, run, kafka, port, ...), not '%s'",
                root);
}

static void check_skip_refs(const er_diag_src_t *c, const json_t *v,
                            const char *ptr) {
  if (json_is_string(v)) {
    skipref_t sr = {c, ptr};
    char msg[256];
    size_t bad;
    if (strstr(json_string_value(v), "${") &&
        er_tmpl_scan(json_string_value(v), skip_ref_cb, &sr, msg, sizeof msg,
                     &bad) != 0)
      er_diag_err(c, ptr, false, "%s", msg);
  } else if (json_is_object(v) || json_is_array(v)) {
    size_t i;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)(json_is_object(v) ? v : NULL), k, x) {
      char *cp = er_jpos_child(ptr, k);
      check_skip_refs(c, x, cp ? cp : ptr);
      free(cp);
    }
    json_array_foreach((json_t *)(json_is_array(v) ? v : NULL), i, x) {
      char *cp = er_jpos_child_index(ptr, i);
      check_skip_refs(c, x, cp ? cp : ptr);
      free(cp);
    }
  }
}

/* ---- a large file, checked a step at a time (validate) -------------------
 * The top-level "steps" of a large JSON file are not kept: each pass that
 * needs a step parses it from the text and drops it, so checking a file of
 * 100k steps holds one step at a time, not all of them. The rest of the
 * file is parsed from a copy with the steps blanked out (the same lines
 * and columns). A step that calls a step file stays: the call table knows
 * it by its node. Problems, positions and counts are the same as a whole
 * load's; only past the first ER_DIAGS_KEEP problems may the ones kept
 * differ (they are found in another order). */
typedef struct lean {
  const char *text;
  size_t n;
  size_t *r;     /* each step's byte range: [r[2i], r[2i+1]) */
  json_t **keep; /* steps that must stay, by index; NULL elsewhere */
} lean_t;

static json_t *lean_parse(const lean_t *L, size_t i) {
  return er_json_loadb(L->text + L->r[2 * i], L->r[2 * i + 1] - L->r[2 * i],
                       JSON_DECODE_ANY, NULL);
}

/* Step i (a new reference), or NULL when memory ran out. */
static json_t *lean_step(const lean_t *L, size_t i) {
  return L->keep[i] ? json_incref(L->keep[i]) : lean_parse(L, i);
}

static void lean_close(lean_t *L) {
  for (size_t i = 0; L->keep && i < L->n; i++)
    json_decref(L->keep[i]);
  free(L->keep);
  free(L->r);
  memset(L, 0, sizeof *L);
}

/* Whether the text can be read this way: its outline is plain and every
 * step and the rest parse (else the whole load reports what is wrong).
 * *doc gets the document without its steps. */
static bool lean_open(const char *text, size_t len, lean_t *L, json_t **doc) {
  size_t open = 0, close = 0;
  long n = er_doc_json_elems(text, len, "steps", &open, &close, &L->r);
  char *skel = NULL;
  L->text = text;
  L->n = n > 0 ? (size_t)n : 0;
  if (n <= 0)
    goto no;
  for (size_t i = 0; i < L->n; i++) {
    json_t *v = lean_parse(L, i);
    if (!v)
      goto no;
    json_decref(v);
  }
  L->keep = calloc(L->n, sizeof(json_t *));
  skel = malloc(len);
  if (!L->keep || !skel)
    goto no;
  memcpy(skel, text, len);
  for (size_t j = open + 1; j < close; j++)
    if (skel[j] != '\n')
      skel[j] = ' ';
  *doc = er_json_loadb(skel, len, JSON_DECODE_ANY, NULL);
  free(skel);
  if (*doc)
    return true;
no:
  free(skel);
  lean_close(L);
  return false;
}

static void lean_oom(const er_diag_src_t *c) {
  er_diags_addf(c->out, c->file, 0, 0, ER_DIAG_ERROR, "out of memory");
}

/* Each step's keys (as er_validate_obj does for a list). */
static void lean_validate(const er_diag_src_t *c, const lean_t *L) {
  for (size_t i = 0; i < L->n; i++) {
    json_t *st = lean_step(L, i);
    char *sp = er_jpos_child_index("/steps", i);
    if (st)
      er_validate_step(c, st, sp ? sp : "/steps");
    free(sp);
    json_decref(st);
    if (!st) {
      lean_oom(c);
      return;
    }
  }
}

static void lean_validate_cb(const er_diag_src_t *c) {
  lean_validate(c, c->lean);
}

/* Each step's `use` calls (as er_uses_load does for a list). */
static void lean_uses(er_uses_t *u, const er_diag_src_t *c, lean_t *L,
                      const char *dir, const char *fixtures,
                      const er_use_site_t *at) {
  for (size_t i = 0; i < L->n; i++) {
    json_t *st = lean_step(L, i);
    char *sp = er_jpos_child_index("/steps", i);
    size_t calls = er_uses_calls(u);
    if (st)
      er_uses_load_step(u, c, st, sp ? sp : "/steps", dir, fixtures, at);
    free(sp);
    if (st && er_uses_calls(u) != calls && !L->keep[i])
      L->keep[i] = st; /* the table holds it by its node */
    else
      json_decref(st);
    if (!st) {
      lean_oom(c);
      return;
    }
  }
}

/* The ${...} pass over the steps: with all, the names they capture go to
 * all; else each step is checked and its captures join rs->defined (as
 * er_refs_steps does). */
static void lean_refs(er_refscan_t *rs, const lean_t *L, er_names_t *all) {
  for (size_t i = 0; i < L->n; i++) {
    json_t *st = lean_step(L, i);
    if (!st) {
      lean_oom(rs->c);
      return;
    }
    if (all) {
      er_refs_captures(rs, st, all);
    } else {
      char *sp = er_jpos_child_index("/steps", i);
      er_refs_step(rs, st, sp ? sp : "/steps");
      er_refs_captures(rs, st, rs->defined);
      free(sp);
    }
    json_decref(st);
  }
}

/* The ${...} pass over a whole scenario document (its steps from L when
 * not NULL). */
static void check_scenario_refs(const er_diag_src_t *c, const json_t *doc,
                                const er_names_t *case_vars,
                                er_use_outputs_fn use_outputs, void *ud,
                                const lean_t *L) {
  er_names_t defined = {NULL, 0, 0}, all_caps = {NULL, 0, 0};
  const json_t *vars = json_object_get(doc, "vars");
  const char *k;
  json_t *v;
  er_refscan_t rs = {
      c, &defined, NULL, json_is_object(vars) ? vars : NULL, use_outputs, ud};

  for (size_t l = 0; l < 3; l++) {
    const json_t *list = json_object_get(doc, g_lists[l]);
    if (L && l == 1)
      lean_refs(&rs, L, &all_caps);
    for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++)
      er_refs_captures(&rs, json_array_get(list, i), &all_caps);
  }
  /* a case's vars are set before the file's */
  for (size_t i = 0; i < case_vars->n; i++)
    er_names_add(&defined, case_vars->v[i]);

  /* vars: each sees the ones before it */
  if (json_is_object(vars)) {
    json_object_foreach((json_t *)vars, k, v) {
      char *cp = er_jpos_child("/vars", k);
      er_refs_string(&rs, k, cp ? cp : "/vars", true);
      er_refs_value(&rs, v, cp ? cp : "/vars");
      free(cp);
      if (!er_names_has(&defined, k))
        er_names_add(&defined, k);
    }
    er_refs_vars_size(c, vars, "/vars");
  }
  /* other top-level keys see every var */
  json_object_foreach((json_t *)doc, k, v) {
    char *cp;
    bool is_list = false;
    for (size_t l = 0; l < 3; l++)
      if (strcmp(k, g_lists[l]) == 0)
        is_list = true;
    cp = er_jpos_child("", k);
    er_refs_string(&rs, k, cp ? cp : "", true);
    if (!strcmp(k, "skip"))
      check_skip_refs(c, json_object_get(v, "if"), "/skip/if");
    else if (!strcmp(k, "name") || !strcmp(k, "description") ||
             !strcmp(k, "tags"))
      ; /* text shown as it is, never templated: a ${ in prose is prose */
    else if (strcmp(k, "vars") != 0 && strcmp(k, "cases") != 0 &&
             !(is_list && json_is_array(v)))
      er_refs_value(&rs, v, cp ? cp : "");
    free(cp);
  }
  /* steps see the captures of earlier steps: setup, then steps;
   * teardown sees them all */
  rs.later = &all_caps;
  for (size_t l = 0; l < 3; l++) {
    const json_t *list = json_object_get(doc, g_lists[l]);
    char base[32];
    if (!json_is_array(list))
      continue;
    if (l == 2) {
      for (size_t j = 0; j < all_caps.n; j++)
        if (!er_names_has(&defined, all_caps.v[j]))
          er_names_add(&defined, all_caps.v[j]);
    }
    snprintf(base, sizeof base, "/%s", g_lists[l]);
    if (L && l == 1)
      lean_refs(&rs, L, NULL);
    else
      er_refs_steps(&rs, list, base);
  }
  er_names_free(&defined);
  er_names_free(&all_caps);
}

/* ---- building the plan ------------------------------------------------- */

static void steplist_free(er_steplist_t *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].name);
    free(l->v[i].path);
  }
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

void er_scenario_free(er_scenario_t *s) {
  if (!s)
    return;
  free(s->file);
  free(s->dir);
  free(s->relfile);
  free(s->classname);
  free(s->name);
  free(s->skip);
  steplist_free(&s->setup);
  steplist_free(&s->steps);
  steplist_free(&s->teardown);
  er_uses_free(s->uses);
  free(s->case_name);
  free(s->skip_reason);
  json_decref(s->own);
  json_decref(s->doc);
  free(s);
}

static int64_t duration_or(const json_t *v, int64_t dflt) {
  int64_t ms;
  if (json_is_string(v) && er_parse_duration(json_string_value(v), &ms) == 0)
    return ms;
  return dflt;
}

/* Builds one list from a validated array. */
static int build_steps(const json_t *arr, const char *listname,
                       const er_jpos_t *pos, er_steplist_t *out) {
  size_t n = json_array_size(arr);
  if (n == 0)
    return 0;
  out->v = calloc(n, sizeof *out->v);
  if (!out->v)
    return -1;
  for (size_t i = 0; i < n; i++) {
    const json_t *step = json_array_get(arr, i);
    er_step_t *st = &out->v[out->n++];
    const char *k;
    json_t *v;
    char buf[64];
    json_object_foreach((json_t *)step, k, v) {
      const er_action_t *a = er_action_find(k);
      if (a && !st->action) {
        st->action = a;
        st->args = v;
      }
    }
    if (!st->action)
      return -1;
    st->step = step;
    if (st->action->whole_step)
      st->args = (json_t *)step;
    if (json_is_string(json_object_get(step, "name"))) {
      st->name = er_strdup(json_string_value(json_object_get(step, "name")));
    } else {
      snprintf(buf, sizeof buf, " #%zu", i + 1);
      st->name = malloc(strlen(st->action->name) + strlen(buf) + 1);
      if (st->name) {
        strcpy(st->name, st->action->name);
        strcat(st->name, buf);
      }
    }
    snprintf(buf, sizeof buf, "/%s/%zu", listname, i);
    st->path = er_strdup(buf);
    st->timeout_ms = duration_or(json_object_get(step, "timeout"), 0);
    er_jpos_find(pos, buf, false, &st->line, &st->col);
    if (!st->name || !st->path)
      return -1;
  }
  return 0;
}

/* abs relative to root ("" for root itself), or NULL when outside it. */
static const char *rel_to(const char *abs, const char *root) {
  size_t rl = strlen(root);
  if (strcmp(abs, root) == 0)
    return "";
  if (strncmp(abs, root, rl) == 0 && (abs[rl] == '/' || rl == 1))
    return abs + (rl == 1 ? 1 : rl + 1);
  return NULL;
}

/* The folder holding ".git" at or above dir (an absolute path), or NULL.
 * Caller frees. */
static char *repo_root(const char *dir) {
  char *d = er_strdup(dir);
  while (d && *d) {
    char *git = NULL;
    struct stat st;
    if (asprintf(&git, "%s/.git", strcmp(d, "/") ? d : "") < 0)
      break;
    if (stat(git, &st) == 0) {
      free(git);
      return d;
    }
    free(git);
    if (!strcmp(d, "/"))
      break;
    {
      char *slash = strrchr(d, '/');
      if (slash == d)
        d[1] = '\0';
      else if (slash)
        *slash = '\0';
      else
        break;
    }
  }
  free(d);
  return NULL;
}

/* The scenario's path as CI readers want it: relative to the repository
 * holding it (a ".git" above it) when the current directory is in that
 * repository too, else relative to the current directory, else absolute;
 * the same however the path was typed (symlinks resolved). */
static char *make_relfile(const char *path) {
  char *abs = realpath(path, NULL), *cwd = getcwd(NULL, 0), *root = NULL;
  char *out = NULL;
  const char *rel = NULL;
  if (abs && cwd) {
    char *adir = er_strdup(abs);
    if (adir && strrchr(adir, '/'))
      *strrchr(adir, '/') = '\0';
    root = adir ? repo_root(*adir ? adir : "/") : NULL;
    free(adir);
    if (root && rel_to(cwd, root))
      rel = rel_to(abs, root);
    if (!rel)
      rel = rel_to(abs, cwd);
  }
  out = er_strdup(rel && *rel ? rel : abs ? abs : path);
  free(abs);
  free(cwd);
  free(root);
  return out;
}

/* "scenarios/happy-path/a.json" -> "scenarios.happy-path", from the
 * folder of the relative path (make_relfile); "scenarios" for a file at
 * the top; the folder's name for an absolute path. */
static char *make_classname(const char *relfile) {
  char *out = NULL, *tmp = er_strdup(relfile);
  char *slash = tmp ? strrchr(tmp, '/') : NULL;
  if (!tmp)
    return NULL;
  if (!slash) {
    out = er_strdup("scenarios");
  } else if (tmp[0] == '/') {
    const char *b;
    *slash = '\0';
    b = basename(tmp);
    out = er_strdup(!*b || !strcmp(b, "/") ? "scenarios" : b);
  } else {
    *slash = '\0';
    out = er_strdup(tmp);
  }
  free(tmp);
  for (char *p = out; p && *p; p++)
    if (*p == '/')
      *p = '.';
  return out;
}

static char *dir_of(const char *path) {
  char *cp = er_strdup(path);
  char *d, *out;
  if (!cp)
    return NULL;
  d = dirname(cp);
  out = er_strdup(d);
  free(cp);
  return out;
}

er_scenario_t *er_scenario_load(const char *path, er_diags_t *diags) {
  return er_scenario_load_opts(path, NULL, diags);
}

/* ---- cases --------------------------------------------------------------- */

static const char *case_name(const json_t *kase) {
  return json_string_value(json_object_get(kase, "name"));
}

/* A table of cases: names unique and non-empty, each case's vars using
 * only builtins and the row's earlier vars, and every var some row sets
 * set by every row unless "vars" gives it a default. The names rows set
 * go to *set (borrowed). */
static void check_cases(const er_diag_src_t *c, const json_t *doc,
                        er_names_t *set) {
  const json_t *cases = json_object_get(doc, "cases");
  const json_t *vars = json_object_get(doc, "vars");
  if (!json_is_array(cases))
    return;
  if (json_array_size(cases) == 0)
    er_diag_err(c, "/cases", false,
                "'cases' is empty: give at least one case, or leave it out");
  for (size_t i = 0; i < json_array_size(cases); i++) {
    const json_t *kase = json_array_get(cases, i);
    const json_t *cv = json_object_get(kase, "vars");
    const json_t *tags = json_object_get(kase, "tags");
    const char *name = case_name(kase);
    char *cp = er_jpos_child_index("/cases", i);
    char *np = cp ? er_jpos_child(cp, "name") : NULL;
    char *vp = cp ? er_jpos_child(cp, "vars") : NULL;
    er_names_t row = {NULL, 0, 0};
    er_refscan_t rs = {c, &row, NULL, NULL, NULL, NULL};
    const char *k;
    json_t *v;
    if (name && !*name)
      er_diag_err(c, np ? np : "/cases", false,
                  "a case's name must not be empty");
    for (size_t j = 0; name && *name && j < i; j++) {
      const char *other = case_name(json_array_get(cases, j));
      if (other && !strcmp(other, name)) {
        char *op = er_jpos_child_index("/cases", j);
        char *onp = op ? er_jpos_child(op, "name") : NULL;
        int line, col;
        er_diag_pos(c, onp ? onp : "/cases", false, &line, &col);
        er_diag_err(c, np ? np : "/cases", false,
                    "case name '%s' is used twice (first at line %d): each "
                    "case is a testcase of its own, named from it",
                    name, line);
        free(onp);
        free(op);
        break;
      }
    }
    for (size_t j = 0; json_is_array(tags) && j < json_array_size(tags); j++)
      if (!json_is_string(json_array_get(tags, j))) {
        char *tp = cp ? er_jpos_child(cp, "tags") : NULL;
        char *ep = tp ? er_jpos_child_index(tp, j) : NULL;
        er_diag_err(c, ep ? ep : "/cases", false,
                    "a tag must be a string, not %s",
                    er_validate_type_noun(json_array_get(tags, j)));
        free(ep);
        free(tp);
      }
    json_object_foreach((json_t *)(json_is_object(cv) ? cv : NULL), k, v) {
      char *kp = er_jpos_child(vp ? vp : "/cases", k);
      if (!er_tmpl_name_ok(k))
        er_diag_err(c, kp ? kp : "/cases", true,
                    "var name '%s' may hold only letters, digits, '_' and "
                    "'-'",
                    k);
      er_refs_value(&rs, v, kp ? kp : "/cases");
      er_names_add(&row, k);
      if (!er_names_has(set, k) && er_tmpl_name_ok(k))
        er_names_add(set, k);
      free(kp);
    }
    if (json_is_object(json_object_get(kase, "skip"))) {
      char *sp = cp ? er_jpos_child(cp, "skip") : NULL;
      char *ip = sp ? er_jpos_child(sp, "if") : NULL;
      check_skip_refs(c, json_object_get(json_object_get(kase, "skip"), "if"),
                      ip ? ip : "/cases");
      free(ip);
      free(sp);
    }
    er_names_free(&row);
    free(vp);
    free(np);
    free(cp);
  }
  /* a var some row sets: every row sets it, or "vars" defaults it */
  for (size_t i = 0; i < json_array_size(cases); i++) {
    const json_t *kase = json_array_get(cases, i);
    const json_t *cv = json_object_get(kase, "vars");
    for (size_t n = 0; json_is_object(kase) && n < set->n; n++) {
      char *cp, label[160];
      const char *nm = case_name(kase);
      if (json_object_get(cv, set->v[n]) || json_object_get(vars, set->v[n]))
        continue;
      if (nm && *nm)
        snprintf(label, sizeof label, "case '%s'", nm);
      else
        snprintf(label, sizeof label, "case %zu", i + 1);
      cp = er_jpos_child_index("/cases", i);
      er_diag_err(c, cp ? cp : "/cases", false,
                  "%s does not set '%s', which other cases set (set it "
                  "here, or give a default in \"vars\")",
                  label, set->v[n]);
      free(cp);
    }
  }
}

/* One scenario of a file: the file's own, or one case of its table
 * (kase); shares doc and uses. NULL when memory ran out. */
static er_scenario_t *build(const char *path, json_t *doc, const er_jpos_t *pos,
                            er_uses_t *uses, const json_t *kase) {
  er_scenario_t *s = calloc(1, sizeof *s);
  const json_t *v;
  const char *k;
  json_t *x;
  if (!s)
    return NULL;
  s->doc = json_incref(doc);
  s->uses = er_uses_ref(uses);
  s->own = json_object();
  s->file = er_strdup(path);
  s->dir = dir_of(path);
  s->relfile = make_relfile(path);
  s->classname = s->relfile ? make_classname(s->relfile) : NULL;
  if (!s->own || !s->file || !s->dir || !s->relfile || !s->classname)
    goto oom;
  v = json_object_get(doc, "name");
  if (kase) {
    s->case_name = er_strdup(case_name(kase));
    if (!s->case_name ||
        asprintf(&s->name, "%s [%s]", json_string_value(v), s->case_name) < 0)
      s->name = NULL;
  } else {
    s->name = er_strdup(json_string_value(v));
  }
  if (!s->name)
    goto oom;
  v = kase && json_object_get(kase, "skip") ? json_object_get(kase, "skip")
                                            : json_object_get(doc, "skip");
  if (json_is_string(v) || json_is_true(v)) {
    s->skip = er_strdup(json_is_string(v) ? json_string_value(v) : "skipped");
    if (!s->skip)
      goto oom;
  } else if (json_is_object(v)) { /* decided when the run starts */
    const json_t *r = json_object_get(v, "reason");
    s->skip_if = json_object_get(v, "if");
    s->skip_reason = er_strdup(json_is_string(r) ? json_string_value(r)
                                                 : "skipped (its condition "
                                                   "holds)");
    if (!s->skip_reason)
      goto oom;
  }
  /* tags: the file's, then the case's */
  s->tags = json_array();
  if (!s->tags || json_object_set_new(s->own, "tags", s->tags) != 0)
    goto oom;
  json_array_extend(s->tags, json_object_get(doc, "tags"));
  if (kase && json_is_array(json_object_get(kase, "tags")))
    json_array_extend(s->tags, json_object_get(kase, "tags"));
  /* vars: the case's first, then the file's it does not set */
  s->vars = json_object();
  if (!s->vars || json_object_set_new(s->own, "vars", s->vars) != 0)
    goto oom;
  json_object_foreach(json_object_get(kase, "vars"), k, x) {
    json_object_set(s->vars, k, x);
  }
  json_object_foreach(json_object_get(doc, "vars"), k, x) {
    if (!json_object_get(s->vars, k))
      json_object_set(s->vars, k, x);
  }
  v = json_object_get(doc, "exclusive");
  s->exclusive = json_is_boolean(v) ? json_is_true(v) : -1;
  s->timeout_ms =
      duration_or(json_object_get(doc, "timeout"), DEFAULT_TIMEOUT_MS);
  if (build_steps(json_object_get(doc, "setup"), "setup", pos, &s->setup) !=
          0 ||
      build_steps(json_object_get(doc, "steps"), "steps", pos, &s->steps) !=
          0 ||
      build_steps(json_object_get(doc, "teardown"), "teardown", pos,
                  &s->teardown) != 0)
    goto oom;
  return s;
oom:
  er_scenario_free(s);
  return NULL;
}

/* ---- loading ---------------------------------------------------------------
 */

/* NAME.step.json, NAME.step.yaml, NAME.step.yml */
static bool is_step_file(const char *path) {
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  const char *dot = strrchr(base, '.');
  size_t stem = dot ? (size_t)(dot - base) : strlen(base);
  return er_doc_is_scenario_name(base) && stem >= 5 &&
         !strncmp(base + stem - 5, ".step", 5);
}

er_scenario_t *er_scenario_load_opts(const char *path, const er_load_opts_t *o,
                                     er_diags_t *diags) {
  er_scenario_t **v = NULL, *first = NULL;
  size_t n = 0;
  if (er_scenario_load_all(path, o, diags, &v, &n) == 0 && n > 0) {
    first = v[0];
    for (size_t i = 1; i < n; i++)
      er_scenario_free(v[i]);
  }
  free(v);
  return first;
}

/* The document of text: whole, or, for a JSON file of at least
 * o->lean_bytes, without its steps, which *L then gives (*lean says
 * which). *pos gets the steps' and their actions' positions (level 3:
 * "/steps/3/http"); the full map is built only when a problem lies deeper
 * (diags.c). New reference, or NULL. */
static json_t *parse_doc(const char *path, const char *text, size_t len,
                         const er_load_opts_t *o, lean_t *L, bool *lean,
                         er_jpos_t **pos, er_diags_t *diags) {
  json_t *doc = NULL;
  *lean = o && o->lean_bytes && len >= o->lean_bytes &&
          er_doc_kind(path) == ER_DOC_JSON && lean_open(text, len, L, &doc);
  if (!*lean)
    return er_doc_parse(path, text, len, 3, pos, diags);
  *pos = er_jpos_build_depth(text, len, 3);
  return doc;
}

/* What the keys' specs do not say: tags are strings, the name and the
 * steps are not empty. */
static void check_top(const er_diag_src_t *c, const json_t *doc, bool lean) {
  const json_t *v = json_object_get(doc, "tags");
  for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
    if (!json_is_string(json_array_get(v, i))) {
      char *cp = er_jpos_child_index("/tags", i);
      er_diag_err(c, cp ? cp : "/tags", false, "a tag must be a string, not %s",
                  er_validate_type_noun(json_array_get(v, i)));
      free(cp);
    }
  }
  v = json_object_get(doc, "name");
  if (json_is_string(v) && json_string_value(v)[0] == '\0')
    er_diag_err(c, "/name", false, "'name' must not be empty");
  v = json_object_get(doc, "steps");
  if (!lean && json_is_array(v) && json_array_size(v) == 0)
    er_diag_err(c, "/steps", false,
                "'steps' is empty: a scenario needs at least one step");
}

/* The step files the lists call (the steps from L when not NULL). */
static void load_uses(er_uses_t *uses, const er_diag_src_t *c,
                      const json_t *doc, lean_t *L, const char *dir,
                      const char *fixtures) {
  char *real = realpath(c->file, NULL);
  er_use_site_t root = {c->file, real, 0, 0, NULL};
  for (size_t l = 0; l < 3; l++) {
    char lp[32];
    snprintf(lp, sizeof lp, "/%s", g_lists[l]);
    if (L && l == 1)
      lean_uses(uses, c, L, dir, fixtures, &root);
    else
      er_uses_load(uses, c, json_object_get(doc, g_lists[l]), lp, dir, fixtures,
                   &root);
  }
  free(real);
}

/* One scenario per case (one for a file without cases) into *out.
 * Returns 0, or -1 when memory ran out. */
static int build_all(const char *path, json_t *doc, const er_jpos_t *pos,
                     er_uses_t *uses, er_scenario_t ***out, size_t *nout) {
  const json_t *cases = json_object_get(doc, "cases");
  size_t n = json_is_array(cases) ? json_array_size(cases) : 1;
  er_scenario_t **sv = calloc(n, sizeof(er_scenario_t *));
  for (size_t i = 0; sv && i < n; i++) {
    sv[i] =
        build(path, doc, pos, uses, cases ? json_array_get(cases, i) : NULL);
    if (!sv[i]) {
      for (size_t j = 0; j < i; j++)
        er_scenario_free(sv[j]);
      free(sv);
      return -1;
    }
  }
  if (!sv)
    return -1;
  *out = sv;
  *nout = n;
  return 0;
}

int er_scenario_load_all(const char *path, const er_load_opts_t *o,
                         er_diags_t *diags, er_scenario_t ***out,
                         size_t *nout) {
  er_fixture_dir_t lf = {NULL, NULL};
  const char *fixtures = o ? o->fixtures : NULL;
  er_uses_t *uses = NULL;
  char *text = NULL, *dir = NULL;
  size_t len = 0, from = diags->n, errs = diags->errors;
  json_t *doc = NULL;
  er_jpos_t *pos = NULL, *full = NULL;
  er_diag_src_t c;
  er_names_t case_vars = {NULL, 0, 0};
  lean_t L = {0};
  bool lean = false;
  int rc = -1;

  *out = NULL;
  *nout = 0;
  if (is_step_file(path)) /* checked on its own; it holds no scenario */
    return er_uses_check_file(path, fixtures, diags);
  text = er_doc_read(path, SCENARIO_MAX_BYTES, &len, diags);
  doc = text ? parse_doc(path, text, len, o, &L, &lean, &pos, diags) : NULL;
  if (!doc)
    goto out;
  dir = dir_of(path);
  lf.dir = dir;
  lf.root = er_fixture_root(fixtures, dir);
  c = (er_diag_src_t){path,
                      pos,
                      diags,
                      er_doc_kind(path) == ER_DOC_JSON ? text : NULL,
                      len,
                      &full,
                      er_fixture_ref,
                      &lf,
                      lean ? lean_validate_cb : NULL,
                      &L};
  if (!json_is_object(doc)) {
    er_diag_err(&c, "", false,
                "a scenario file must hold a JSON object, not %s",
                er_validate_type_noun(doc));
    goto out;
  }
  er_validate_obj(&c, doc, "", g_top, NULL);
  check_top(&c, doc, lean);
  uses = er_uses_new();
  if (!uses) {
    er_diags_addf(diags, path, 0, 0, ER_DIAG_ERROR, "out of memory");
    goto out;
  }
  load_uses(uses, &c, doc, lean ? &L : NULL, dir, fixtures);
  check_cases(&c, doc, &case_vars);
  check_scenario_refs(&c, doc, &case_vars, er_uses_outputs, uses,
                      lean ? &L : NULL);
  if (diags->errors != errs)
    goto out;
  rc = build_all(path, doc, pos, uses, out, nout);
  if (rc != 0)
    er_diags_addf(diags, path, 0, 0, ER_DIAG_ERROR, "out of memory");
out:
  lean_close(&L);
  er_names_free(&case_vars);
  er_diags_sort_main(diags, from, path);
  er_jpos_free(pos);
  er_jpos_free(full);
  json_decref(doc);
  free(text);
  free(dir);
  free(lf.root);
  er_uses_free(uses);
  return rc;
}

const er_stepfile_t *er_scenario_use(const er_scenario_t *s,
                                     const json_t *step) {
  return s ? er_uses_find(s->uses, step) : NULL;
}

int er_scenario_locate(const er_scenario_t *s, const json_t *node,
                       const char **file, int *line, int *col) {
  char *ptr = er_json_path_of(s->doc, node);
  const er_stepfile_t *sf = NULL;
  er_jpos_t *pos;
  int rc = -1;
  *line = *col = 0;
  *file = s->file;
  if (!ptr) {
    sf = er_uses_holding(s->uses, node, &ptr);
    if (!sf)
      return -1;
    *file = sf->file;
  }
  pos = er_doc_positions(*file, SCENARIO_MAX_BYTES);
  if (pos && er_jpos_find(pos, ptr, false, line, col) >= 0)
    rc = 0;
  er_jpos_free(pos);
  free(ptr);
  return rc;
}

/* ---- collecting files -------------------------------------------------- */

typedef struct strlist {
  char **v;
  size_t n, alloc;
} strlist_t;

static int strlist_push(strlist_t *l, char *s) {
  if (!s)
    return -1;
  if (l->n == l->alloc) {
    size_t na = l->alloc ? l->alloc * 2 : 32;
    char **nv = realloc(l->v, na * sizeof *nv);
    if (!nv) {
      free(s);
      return -1;
    }
    l->v = nv;
    l->alloc = na;
  }
  /* n < alloc here, so v is set */
  l->v[l->n++] = s; // NOLINT(clang-analyzer-core.NullDereference)
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct dirid {
  dev_t dev;
  ino_t ino;
  const struct dirid *up;
} dirid_t;

static char *join_path(const char *dir, const char *name) {
  size_t dl = strlen(dir), nl = strlen(name);
  char *p;
  while (dl > 1 && dir[dl - 1] == '/')
    dl--;
  p = malloc(dl + nl + 2);
  if (!p)
    return NULL;
  memcpy(p, dir, dl);
  if (!(dl == 1 && dir[0] == '/'))
    p[dl++] = '/';
  memcpy(p + dl, name, nl + 1);
  return p;
}

/* *.json, *.yaml, *.yml, but not environment files (*.env.json, ...)
 * nor step files (*.step.json, ...) */
static bool is_scenario_name(const char *name) {
  const char *dot = strrchr(name, '.');
  size_t stem = dot ? (size_t)(dot - name) : strlen(name);
  if (!er_doc_is_scenario_name(name))
    return false;
  return !((stem >= 4 && !strncmp(name + stem - 4, ".env", 4)) ||
           (stem >= 5 && !strncmp(name + stem - 5, ".step", 5)));
}

static int collect_dir(const char *dir, const dirid_t *up, strlist_t *out,
                       er_err_t *err) {
  DIR *d = NULL;
  struct dirent *de;
  struct stat st;
  dirid_t me;
  int rc = -1;

  if (stat(dir, &st) != 0)
    return er_errf(err, ER_E_INPUT, "%s: %s", dir, strerror(errno));
  for (const dirid_t *a = up; a; a = a->up)
    if (a->dev == st.st_dev && a->ino == st.st_ino)
      return 0; /* a symlink loop: already being searched */
  me = (dirid_t){st.st_dev, st.st_ino, up};
  d = opendir(dir);
  if (!d)
    return er_errf(err, ER_E_INPUT, "%s: cannot open folder: %s", dir,
                   strerror(errno));
  while ((de = readdir(d)) != NULL) {
    char *p;
    if (de->d_name[0] == '.')
      continue; /* hidden, ".", ".." */
    if (!strcmp(de->d_name, "fixtures"))
      continue; /* data scenarios read (fixture.h), not scenarios */
    p = join_path(dir, de->d_name);
    if (!p) {
      er_errf(err, ER_E_INPUT, "out of memory");
      goto out;
    }
    if (stat(p, &st) != 0) {
      free(p); /* a dangling link: nothing to run */
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      int r = collect_dir(p, &me, out, err);
      free(p);
      if (r != 0)
        goto out;
    } else if (S_ISREG(st.st_mode) && is_scenario_name(de->d_name)) {
      if (strlist_push(out, p) != 0) {
        er_errf(err, ER_E_INPUT, "out of memory");
        goto out;
      }
    } else {
      free(p);
    }
  }
  rc = 0;
out:
  closedir(d);
  return rc;
}

int er_scenario_collect(char *const *paths, size_t n, char ***files_out,
                        size_t *nfiles_out, er_err_t *err) {
  strlist_t all = {NULL, 0, 0};
  int rc = -1;
  *files_out = NULL;
  *nfiles_out = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (stat(paths[i], &st) != 0) {
      er_errf(err, ER_E_INPUT, "%s: %s", paths[i], strerror(errno));
      goto out;
    }
    if (S_ISDIR(st.st_mode)) {
      size_t from = all.n;
      if (collect_dir(paths[i], NULL, &all, err) != 0)
        goto out;
      if (all.v && all.n > from)
        qsort(all.v + from, all.n - from, sizeof *all.v, cmp_str);
    } else {
      if (strlist_push(&all, er_strdup(paths[i])) != 0) {
        er_errf(err, ER_E_INPUT, "out of memory");
        goto out;
      }
    }
  }
  /* the same file named twice runs once */
  {
    size_t w = 0;
    for (size_t i = 0; i < all.n; i++) {
      bool dup = false;
      for (size_t j = 0; j < w && !dup; j++)
        dup = strcmp(all.v[j], all.v[i]) == 0;
      if (dup)
        free(all.v[i]);
      else
        all.v[w++] = all.v[i]; // NOLINT(clang-analyzer-core.NullDereference): n
                               // > 0 means v is set
    }
    all.n = w;
  }
  *files_out = all.v;
  *nfiles_out = all.n;
  all.v = NULL;
  all.n = 0;
  rc = 0;
out:
  for (size_t i = 0; i < all.n; i++)
    free(all.v[i]); // NOLINT(clang-analyzer-core.NullDereference): n > 0 means
                    // v is set
  free(all.v);
  return rc;
}

/* ---- filters ----------------------------------------------------------- */

static bool term_matches(const er_scenario_t *s, const char *t) {
  if (strncmp(t, "tag:", 4) == 0) {
    for (size_t i = 0; i < json_array_size(s->tags); i++) {
      const char *tag = json_string_value(json_array_get(s->tags, i));
      if (tag && strcmp(tag, t + 4) == 0)
        return true;
    }
    return false;
  }
  if (strncmp(t, "name:", 5) == 0)
    return s->name && strcasestr(s->name, t + 5) != NULL;
  if (strncmp(t, "case:", 5) == 0) /* a row of a table, by its name */
    return s->case_name && strcasecmp(s->case_name, t + 5) == 0;
  return (s->name && strcasestr(s->name, t)) ||
         (s->file && strcasestr(s->file, t));
}

bool er_scenario_matches(const er_scenario_t *s, const char *filter) {
  bool any_include = false, included = false;
  const char *p = filter;
  if (!filter)
    return true;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char term[512];
    const char *t = term;
    bool neg = false;
    /* trim */
    while (n && (*p == ' ' || *p == '\t')) {
      p++;
      n--;
    }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
      n--;
    if (n >= sizeof term)
      n = sizeof term - 1;
    memcpy(term, p, n);
    term[n] = '\0';
    if (*t == '!') {
      neg = true;
      t++;
    }
    if (*t) {
      bool m = term_matches(s, t);
      if (neg && m)
        return false;
      if (!neg) {
        any_include = true;
        included = included || m;
      }
    }
    if (!e)
      break;
    p = e + 1;
  }
  return !any_include || included;
}
