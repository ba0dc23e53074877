/* uses.c: step files and the `use` steps that call them (see uses.h). */
#include "lang/uses.h"
#include "lang/uses_tab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/action.h"
#include "lang/doc.h"
#include "lang/fixture.h"
#include "lang/jpos.h"
#include "lang/refs.h"
#include "lang/template.h"
#include "lang/validate.h"

#define STEPFILE_MAX_BYTES (8u * 1024u * 1024u)

static const er_keyspec_t g_input[] = {
    {"type", ER_T_STRING, false, NULL, NULL},
    {"default", ER_T_ANY, false, NULL, NULL},
    {"description", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t g_stepfile[] = {
    {"description", ER_T_STRING, false, NULL, NULL},
    {"inputs", ER_T_OBJECT, false, NULL, g_input},
    {"vars", ER_T_OBJECT, false, NULL, NULL},
    {"steps", ER_T_STEPS, true, NULL, NULL},
    {"outputs", ER_T_OBJECT, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

/* The types an input may declare. */
static const char *const g_types[] = {"string", "integer", "number", "boolean",
                                      "array",  "object",  "any"};
#define NTYPES (sizeof g_types / sizeof g_types[0])

/* ---- messages ------------------------------------------------------------ */

/* "(used at a.step.json:3:5, used at s.json:12:7)" for the chain at. */
static char *used_at(const er_use_site_t *at) {
  er_buf_t b = ER_BUF_INIT(16 * 1024);
  const char *sep = "(";
  for (const er_use_site_t *s = at; s; s = s->up) {
    if (s->line <= 0)
      continue; /* a file, not a call in it */
    er_buf_printf(&b, "%sused at %s:%d:%d", sep, s->file, s->line, s->col);
    sep = ", ";
  }
  if (b.len)
    er_buf_puts(&b, ")");
  er_buf_cstr(&b);
  return er_buf_steal(&b);
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* "s.json > a.step.json > b.step.json > a.step.json" */
static void chain_text(const er_use_site_t *at, const char *last, er_buf_t *b) {
  const char *names[ER_USE_DEPTH_MAX + 4];
  size_t n = 0;
  for (const er_use_site_t *s = at; s && n < ER_USE_DEPTH_MAX + 2; s = s->up)
    if (s->real)
      names[n++] = s->file;
  while (n-- > 0)
    er_buf_printf(b, "%s > ", base_name(names[n]));
  er_buf_puts(b, base_name(last));
}

/* ---- input types --------------------------------------------------------- */

static bool type_known(const char *t) {
  for (size_t i = 0; i < NTYPES; i++)
    if (!strcmp(g_types[i], t))
      return true;
  return false;
}

/* A string that is exactly one ${...}: its type is known only at run
 * time. */
static bool single_expr(const json_t *v) {
  const char *s = json_string_value(v);
  size_t n = s ? strlen(s) : 0;
  return n >= 4 && s[0] == '$' && s[1] == '{' && s[n - 1] == '}' &&
         strchr(s + 2, '}') == s + n - 1;
}

static void check_inputs_spec(const er_diag_src_t *c, const json_t *inputs) {
  const char *k;
  json_t *spec;
  json_object_foreach((json_t *)inputs, k, spec) {
    const json_t *t = json_object_get(spec, "type");
    const json_t *d = json_object_get(spec, "default");
    char *cp = er_jpos_child("/inputs", k);
    char *tp = cp ? er_jpos_child(cp, "type") : NULL;
    char *dp = cp ? er_jpos_child(cp, "default") : NULL;
    if (!er_tmpl_name_ok(k))
      er_diag_err(c, cp ? cp : "/inputs", true,
                  "input name '%s' may hold only letters, digits, '_' and '-'",
                  k);
    if (json_is_string(t) && !type_known(json_string_value(t))) {
      char dym[160];
      const char *w = json_string_value(t);
      dym[0] = '\0';
      for (size_t i = 0; i < NTYPES && !dym[0]; i++) /* int, bool, obj */
        if (*w && !strncmp(g_types[i], w, strlen(w)))
          snprintf(dym, sizeof dym, " (did you mean '%s'?)", g_types[i]);
      if (!dym[0])
        er_dym_text(w, g_types, NTYPES, dym, sizeof dym);
      er_diag_err(c, tp ? tp : "/inputs", false,
                  "unknown type '%s'%s; types are string, integer, number, "
                  "boolean, array, object and any",
                  json_string_value(t), dym);
    } else if (d && json_is_string(t) && !single_expr(d) &&
               !(json_is_string(d) && strstr(json_string_value(d), "${")) &&
               !er_uses_type_fits(json_string_value(t), d)) {
      er_diag_err(c, dp ? dp : "/inputs", false,
                  "the default of '%s' is %s, not %s %s", k,
                  er_validate_type_noun(d),
                  strchr("aeiou", json_string_value(t)[0]) ? "an" : "a",
                  json_string_value(t));
    }
    free(tp);
    free(dp);
    free(cp);
  }
}

/* ---- the step file's own references ------------------------------------- */

static void check_stepfile_refs(er_uses_t *u, const er_diag_src_t *c,
                                const er_stepfile_t *sf) {
  er_names_t defined = {NULL, 0, 0}, all_caps = {NULL, 0, 0};
  er_refscan_t rs = {c,
                     &defined,
                     NULL,
                     json_is_object(sf->vars) ? sf->vars : NULL,
                     er_uses_outputs,
                     u};
  const char *k;
  json_t *v;

  if (json_is_array(sf->steps))
    for (size_t i = 0; i < json_array_size(sf->steps); i++)
      er_refs_captures(&rs, json_array_get(sf->steps, i), &all_caps);
  /* the inputs are set first; a default may use the others */
  json_object_foreach((json_t *)sf->inputs, k, v) { er_names_add(&defined, k); }
  json_object_foreach((json_t *)sf->inputs, k, v) {
    char *cp = er_jpos_child("/inputs", k);
    char *dp = cp ? er_jpos_child(cp, "default") : NULL;
    if (json_object_get(v, "default"))
      er_refs_value(&rs, json_object_get(v, "default"), dp ? dp : "/inputs");
    free(dp);
    free(cp);
  }
  json_object_foreach((json_t *)sf->vars, k, v) {
    char *cp = er_jpos_child("/vars", k);
    er_refs_string(&rs, k, cp ? cp : "/vars", true);
    er_refs_value(&rs, v, cp ? cp : "/vars");
    free(cp);
    if (!er_names_has(&defined, k))
      er_names_add(&defined, k);
  }
  if (json_is_object(sf->vars))
    er_refs_vars_size(c, sf->vars, "/vars");
  rs.later = &all_caps;
  er_refs_steps(&rs, sf->steps, "/steps");
  rs.later = NULL;
  json_object_foreach((json_t *)sf->outputs, k, v) {
    char *cp = er_jpos_child("/outputs", k);
    if (!er_tmpl_name_ok(k))
      er_diag_err(c, cp ? cp : "/outputs", true,
                  "output name '%s' may hold only letters, digits, '_' and '-'",
                  k);
    er_refs_value(&rs, v, cp ? cp : "/outputs");
    free(cp);
  }
  er_names_free(&defined);
  er_names_free(&all_caps);
}

/* ---- loading ------------------------------------------------------------- */

/* Loads, validates and registers the step file found at path (real: its
 * real path), called from the chain at. NULL when it cannot be read. */
static er_stepfile_t *load_file(er_uses_t *u, er_diags_t *diags,
                                const char *path, const char *real,
                                const char *fixtures, const er_use_site_t *at) {
  er_stepfile_t *sf = NULL;
  er_jpos_t *pos = NULL;
  const char *saved = diags->suffix;
  char *suffix = used_at(at);
  er_fixture_dir_t fd = {NULL, NULL};
  er_diag_src_t c;
  json_t *doc;
  er_use_site_t me;

  diags->suffix = suffix && *suffix ? suffix : NULL;
  doc = er_doc_load(path, STEPFILE_MAX_BYTES, &pos, diags);
  if (!doc)
    goto out;
  sf = er_uses_add_file(u, path, real);
  if (!sf) {
    json_decref(doc);
    er_diags_addf(diags, path, 0, 0, ER_DIAG_ERROR, "out of memory");
    goto out;
  }
  sf->doc = doc;
  fd.dir = sf->dir;
  fd.root = er_fixture_root(fixtures, sf->dir);
  c = (er_diag_src_t){sf->file,       pos, diags, NULL, 0, NULL,
                      er_fixture_ref, &fd, NULL,  NULL};
  if (!json_is_object(doc)) {
    er_diag_err(&c, "", false,
                "a step file must hold an object (\"inputs\", \"steps\", "
                "\"outputs\"), not %s",
                er_validate_type_noun(doc));
    goto out;
  }
  er_validate_obj(&c, doc, "", g_stepfile, NULL);
  sf->inputs = json_object_get(doc, "inputs");
  sf->vars = json_object_get(doc, "vars");
  sf->steps = json_object_get(doc, "steps");
  sf->outputs = json_object_get(doc, "outputs");
  if (!json_is_object(sf->inputs))
    sf->inputs = NULL;
  if (!json_is_object(sf->vars))
    sf->vars = NULL;
  if (!json_is_object(sf->outputs))
    sf->outputs = NULL;
  if (!json_is_array(sf->steps)) {
    sf->steps = NULL;
  } else if (json_array_size(sf->steps) == 0) {
    er_diag_err(&c, "/steps", false,
                "'steps' is empty: a step file needs at least one step");
  }
  check_inputs_spec(&c, sf->inputs);
  me = (er_use_site_t){sf->file, sf->real, 0, 0, at};
  if (sf->steps)
    er_uses_load(u, &c, sf->steps, "/steps", sf->dir, fixtures, &me);
  check_stepfile_refs(u, &c, sf);
out:
  free(fd.root);
  er_jpos_free(pos);
  diags->suffix = saved;
  free(suffix);
  return sf;
}

/* The inputs of one call against the step file's. */
static void check_call(const er_diag_src_t *c, const json_t *step,
                       const char *ptr, const er_stepfile_t *sf) {
  const json_t *with = json_object_get(step, "with");
  const char *cands[64];
  size_t ncand = 0;
  const char *k;
  json_t *v;
  char *usep = er_jpos_child(ptr, "use");
  char *withp = er_jpos_child(ptr, "with");
  const char *base =
      strrchr(sf->file, '/') ? strrchr(sf->file, '/') + 1 : sf->file;

  json_object_foreach((json_t *)sf->inputs, k, v) {
    if (ncand < 64)
      cands[ncand++] = k;
  }
  json_object_foreach((json_t *)(json_is_object(with) ? with : NULL), k, v) {
    const json_t *spec = json_object_get(sf->inputs, k);
    char *cp = er_jpos_child(withp ? withp : ptr, k);
    const char *p = cp ? cp : ptr;
    if (!spec) {
      char dym[160];
      er_dym_text(k, cands, ncand, dym, sizeof dym);
      er_diag_err(c, p, true, "'%s' has no input '%s'%s", base, k,
                  *dym                  ? dym
                  : sf->inputs && ncand ? ""
                                        : " (it takes no inputs)");
    } else {
      const char *t = json_string_value(json_object_get(spec, "type"));
      if (t && !single_expr(v) &&
          !(json_is_string(v) && strstr(json_string_value(v), "${") &&
            !strcmp(t, "string")) &&
          !er_uses_type_fits(t, v))
        er_diag_err(c, p, false, "input '%s' of '%s' is %s %s, not %s", k, base,
                    strchr("aeiou", t[0]) ? "an" : "a", t,
                    er_validate_type_noun(v));
    }
    free(cp);
  }
  json_object_foreach((json_t *)sf->inputs, k, v) {
    if (json_object_get(v, "default") ||
        (json_is_object(with) && json_object_get(with, k)))
      continue;
    er_diag_err(c, usep ? usep : ptr, true,
                "'%s' needs the input '%s' (give it in \"with\")", base, k);
  }
  free(usep);
  free(withp);
}

/* One `use` step at ptr of c's file. */
static void use_step(er_uses_t *u, const er_diag_src_t *c, const json_t *step,
                     const char *ptr, const char *dir, const char *fixtures,
                     const er_use_site_t *at) {
  const char *name = json_string_value(json_object_get(step, "use"));
  char *usep = er_jpos_child(ptr, "use");
  char *root = NULL, *path = NULL, *real = NULL;
  er_err_t err = {0};
  er_stepfile_t *sf;
  er_use_site_t here;
  int depth = 0;

  if (!name)
    goto out; /* validate.c said what it must be */
  if (strstr(name, "${")) {
    er_diag_err(c, usep ? usep : ptr, false,
                "'use' names a step file, not a template (files are found "
                "and checked before anything runs)");
    goto out;
  }
  root = er_fixture_root(fixtures, dir);
  path = er_fixture_find(dir, root, name, &err);
  if (!path) {
    er_diag_err(c, usep ? usep : ptr, false, "%s", err.msg);
    goto out;
  }
  real = realpath(path, NULL);
  if (!real) {
    er_diag_err(c, usep ? usep : ptr, false, "%s: cannot resolve the path",
                path);
    goto out;
  }
  here = (er_use_site_t){c->file, NULL, 0, 0, at};
  er_diag_pos(c, ptr, false, &here.line, &here.col);
  for (const er_use_site_t *s = at; s; s = s->up) {
    if (!s->real)
      continue; /* a call site, not a file */
    if (!strcmp(s->real, real)) {
      er_buf_t b = ER_BUF_INIT(4096);
      chain_text(at, path, &b);
      er_diag_err(c, usep ? usep : ptr, false,
                  "a cycle of step files: %s is already in use (%s)",
                  base_name(path), er_buf_cstr(&b));
      er_buf_free(&b);
      goto out;
    }
    if (s->up)
      depth++; /* a step file (the scenario is the root) */
  }
  if (depth >= ER_USE_DEPTH_MAX) {
    er_buf_t b = ER_BUF_INIT(4096);
    chain_text(at, path, &b);
    er_diag_err(c, usep ? usep : ptr, false,
                "step files nest more than %d deep: %s", ER_USE_DEPTH_MAX,
                er_buf_cstr(&b));
    er_buf_free(&b);
    goto out;
  }
  sf = er_uses_by_real(u, real);
  if (!sf)
    sf = load_file(u, c->out, path, real, fixtures, &here);
  if (!sf)
    goto out;
  check_call(c, step, ptr, sf);
  if (er_uses_add_call(u, step, sf) != 0)
    er_diags_addf(c->out, c->file, 0, 0, ER_DIAG_ERROR, "out of memory");
out:
  free(real);
  free(path);
  free(root);
  free(usep);
}

void er_uses_load_step(er_uses_t *u, const er_diag_src_t *c, const json_t *step,
                       const char *here, const char *dir, const char *fixtures,
                       const er_use_site_t *at) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)(json_is_object(step) ? step : NULL), k, v) {
    const er_action_t *a = er_action_find(k);
    if (a && a->whole_step) {
      use_step(u, c, step, here, dir, fixtures, at);
    } else if (a && a->raw_args && json_is_object(v)) {
      const char *ak;
      json_t *av;
      json_object_foreach(v, ak, av) {
        const er_keyspec_t *ks = er_keyspec_find(a->keys, ak);
        if (ks && (ks->types & ER_T_STEPS) && json_is_array(av)) {
          char *ap = er_jpos_child(here, k);
          char *np = ap ? er_jpos_child(ap, ak) : NULL;
          er_uses_load(u, c, av, np ? np : here, dir, fixtures, at);
          free(np);
          free(ap);
        }
      }
    }
  }
}

void er_uses_load(er_uses_t *u, const er_diag_src_t *c, const json_t *steps,
                  const char *ptr, const char *dir, const char *fixtures,
                  const er_use_site_t *at) {
  for (size_t i = 0; json_is_array(steps) && i < json_array_size(steps); i++) {
    char *sp = er_jpos_child_index(ptr, i);
    er_uses_load_step(u, c, json_array_get(steps, i), sp ? sp : ptr, dir,
                      fixtures, at);
    free(sp);
  }
}

size_t er_uses_calls(const er_uses_t *u) { return u ? u->ncalls : 0; }

int er_uses_check_file(const char *path, const char *fixtures,
                       er_diags_t *diags) {
  er_uses_t *u = er_uses_new();
  char *real = realpath(path, NULL);
  size_t from = diags->n, errors = diags->errors;
  if (!u || !real) {
    er_diags_addf(diags, path, 0, 0, ER_DIAG_ERROR, "%s",
                  u ? "cannot resolve the path" : "out of memory");
  } else {
    load_file(u, diags, path, real, fixtures, NULL);
  }
  er_diags_sort_main(diags, from, path);
  free(real);
  er_uses_free(u);
  return diags->errors == errors ? 0 : -1;
}
