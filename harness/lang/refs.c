/* refs.c: the ${...} reference pass (see refs.h). */
#include "lang/refs.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/action.h"
#include "lang/jpos.h"
#include "lang/template.h"
#include "lang/validate.h"

/* ---- names ------------------------------------------------------------- */

int er_names_add(er_names_t *ns, const char *s) {
  char *cp;
  if (ns->n == ns->alloc) {
    size_t na = ns->alloc ? ns->alloc * 2 : 16;
    char **nv = realloc(ns->v, na * sizeof *nv);
    if (!nv)
      return -1;
    ns->v = nv;
    ns->alloc = na;
  }
  cp = er_strdup(s);
  if (!cp)
    return -1;
  ns->v[ns->n++] = cp;
  return 0;
}

bool er_names_has(const er_names_t *ns, const char *s) {
  for (size_t i = 0; i < ns->n; i++)
    if (strcmp(ns->v[i], s) == 0)
      return true;
  return false;
}

void er_names_free(er_names_t *ns) {
  for (size_t i = 0; i < ns->n; i++)
    free(ns->v[i]);
  free(ns->v);
  memset(ns, 0, sizeof *ns);
}

/* ---- strings ----------------------------------------------------------- */

typedef struct refs {
  char roots[16][128];
  size_t n;
} refs_t;

static void ref_cb(void *ud, const char *root, size_t off) {
  refs_t *r = ud;
  (void)off;
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->roots[i], root) == 0)
      return;
  if (r->n < 16)
    snprintf(r->roots[r->n++], sizeof r->roots[0], "%s", root);
}

/* Builtins worth suggesting for a misspelt name (those template.c does
 * not know are dropped by er_tmpl_is_builtin). */
static const char *const g_builtin_guess[] = {"uuid", "now", "run", "env"};

void er_refs_string(er_refscan_t *rs, const char *s, const char *ptr,
                    bool key) {
  refs_t r;
  char msg[256];
  size_t bad = 0;
  r.n = 0;
  if (!strstr(s, "${"))
    return;
  if (er_tmpl_scan(s, ref_cb, &r, msg, sizeof msg, &bad) != 0)
    er_diag_err(rs->c, ptr, key, "%s", msg);
  for (size_t i = 0; i < r.n; i++) {
    const char *name = r.roots[i];
    if (er_tmpl_is_builtin(name) || er_names_has(rs->defined, name))
      continue;
    if (json_object_get(rs->vars, name)) {
      er_diag_err(
          rs->c, ptr, key,
          "variable '%s' is used before it is defined (a var can use only "
          "the vars above it)",
          name);
    } else if (rs->later && er_names_has(rs->later, name)) {
      er_diag_err(rs->c, ptr, key,
                  "variable '%s' is used before the step that captures it",
                  name);
    } else {
      er_names_t cands = {NULL, 0, 0};
      char dym[160];
      bool ok = true;
      for (size_t j = 0; j < rs->defined->n && ok; j++)
        ok = er_names_add(&cands, rs->defined->v[j]) == 0;
      for (size_t j = 0; j < sizeof g_builtin_guess / sizeof *g_builtin_guess;
           j++)
        if (ok && er_tmpl_is_builtin(g_builtin_guess[j]))
          ok = er_names_add(&cands, g_builtin_guess[j]) == 0;
      er_dym_text(name, (const char *const *)cands.v, cands.n, dym, sizeof dym);
      er_diag_err(rs->c, ptr, key, "undefined variable '%s'%s", name, dym);
      er_names_free(&cands);
    }
  }
}

void er_refs_value(er_refscan_t *rs, const json_t *v, const char *ptr) {
  if (json_is_string(v)) {
    er_refs_string(rs, json_string_value(v), ptr, false);
  } else if (json_is_object(v)) {
    const char *k;
    json_t *el;
    json_object_foreach((json_t *)v, k, el) {
      char *cp = er_jpos_child(ptr, k);
      er_refs_string(rs, k, cp ? cp : ptr, true);
      er_refs_value(rs, el, cp ? cp : ptr);
      free(cp);
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      char *cp = er_jpos_child_index(ptr, i);
      er_refs_value(rs, json_array_get(v, i), cp ? cp : ptr);
      free(cp);
    }
  }
}

/* ---- steps ------------------------------------------------------------- */

/* A group's arguments (raw_args): its other values first, then the names
 * it binds, then its nested steps in order. */
static void group_refs(er_refscan_t *rs, const er_action_t *a,
                       const json_t *args, const char *here) {
  const char *ak;
  json_t *av;
  json_object_foreach((json_t *)args, ak, av) {
    const er_keyspec_t *ks = er_keyspec_find(a->keys, ak);
    char *ap;
    if (ks && (ks->types & ER_T_STEPS) && json_is_array(av))
      continue;
    ap = er_jpos_child(here, ak);
    er_refs_string(rs, ak, ap ? ap : here, true);
    if (!(ks && (ks->types & ER_T_BIND)))
      er_refs_value(rs, av, ap ? ap : here);
    free(ap);
  }
  json_object_foreach((json_t *)args, ak, av) {
    const er_keyspec_t *ks = er_keyspec_find(a->keys, ak);
    if (ks && (ks->types & ER_T_BIND) && json_is_string(av) &&
        !er_names_has(rs->defined, json_string_value(av)))
      er_names_add(rs->defined, json_string_value(av));
  }
  json_object_foreach((json_t *)args, ak, av) {
    const er_keyspec_t *ks = er_keyspec_find(a->keys, ak);
    char *ap;
    if (!(ks && (ks->types & ER_T_STEPS) && json_is_array(av)))
      continue;
    ap = er_jpos_child(here, ak);
    er_refs_steps(rs, av, ap ? ap : here);
    free(ap);
  }
}

void er_refs_step(er_refscan_t *rs, const json_t *step, const char *ptr) {
  const char *k;
  json_t *v;
  if (!json_is_object(step)) {
    er_refs_value(rs, step, ptr);
    return;
  }
  json_object_foreach((json_t *)step, k, v) {
    const er_action_t *a = er_action_find(k);
    char *cp;
    if (!strcmp(k, "name") || (a && a->whole_step))
      continue; /* text, or a path: not templated */
    cp = er_jpos_child(ptr, k);
    if (a && a->raw_args && json_is_object(v))
      group_refs(rs, a, v, cp ? cp : ptr);
    else
      er_refs_value(rs, v, cp ? cp : ptr);
    free(cp);
  }
}

void er_refs_steps(er_refscan_t *rs, const json_t *steps, const char *ptr) {
  for (size_t i = 0; json_is_array(steps) && i < json_array_size(steps); i++) {
    char *sp = er_jpos_child_index(ptr, i);
    er_refs_step(rs, json_array_get(steps, i), sp ? sp : ptr);
    er_refs_captures(rs, json_array_get(steps, i), rs->defined);
    free(sp);
  }
}

static void add_keys(const json_t *obj, er_names_t *out) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) {
    if (!er_names_has(out, k))
      er_names_add(out, k);
  }
}

/* Names an action's arguments capture: its "capture" object, the wrapped
 * check's, and those of nested steps. */
static void action_captures(const er_refscan_t *rs, const er_action_t *a,
                            const json_t *args, er_names_t *out) {
  const char *k;
  json_t *v;
  json_t *cap;
  if (!json_is_object(args))
    return;
  cap = json_object_get(args, "capture");
  if (json_is_object(cap) && er_keyspec_find(a->keys, "capture"))
    add_keys(cap, out);
  json_object_foreach((json_t *)args, k, v) {
    const er_keyspec_t *ks = er_keyspec_find(a->keys, k);
    if (ks && (ks->types & ER_T_STEPS) && json_is_array(v)) {
      for (size_t i = 0; i < json_array_size(v); i++)
        er_refs_captures(rs, json_array_get(v, i), out);
    } else if (ks && (ks->types & ER_T_CHECK) && json_is_object(v)) {
      const char *ik;
      json_t *iv;
      json_object_foreach(v, ik, iv) {
        const er_action_t *ia = er_action_find(ik);
        if (ia)
          action_captures(rs, ia, iv, out);
      }
    } else if (!ks && a->wraps_check) {
      const er_action_t *ia = er_action_find(k);
      if (ia)
        action_captures(rs, ia, v, out);
    }
  }
}

void er_refs_captures(const er_refscan_t *rs, const json_t *step,
                      er_names_t *out) {
  const char *k;
  json_t *v;
  if (!json_is_object(step))
    return;
  json_object_foreach((json_t *)step, k, v) {
    const er_action_t *a = er_action_find(k);
    if (a && a->whole_step) {
      const json_t *outs =
          rs->use_outputs ? rs->use_outputs(rs->ud, step) : NULL;
      if (json_is_object(outs))
        add_keys(outs, out);
    } else if (a) {
      action_captures(rs, a, v, out);
    }
  }
}

/* ---- how big typed vars grow -------------------------------------------- */

/* Expanded values are bounded as template.c bounds them at run time. */
#define VARS_EXPANDED_MAX (8u * 1024u * 1024u)

typedef struct vsize {
  const json_t *vars;
  size_t *sz;   /* estimated expanded size of each var before this one */
  size_t n;     /* vars sized so far */
  size_t extra; /* what the refs of the string being sized add */
} vsize_t;

static size_t sat_add(size_t a, size_t b) {
  return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static void vsize_ref(void *ud, const char *root, size_t off) {
  vsize_t *vs = ud;
  size_t i = 0;
  const char *k;
  json_t *v;
  (void)off;
  json_object_foreach((json_t *)vs->vars, k, v) {
    if (i >= vs->n)
      break;
    if (strcmp(k, root) == 0) {
      vs->extra = sat_add(vs->extra, vs->sz[i]);
      break;
    }
    i++;
  }
}

/* An upper bound of the compact JSON size of v once expanded: each
 * ${var} of an earlier var counts that var's whole size. */
static size_t vsize_of(vsize_t *vs, const json_t *v) {
  size_t n = 2;
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char msg[64];
    size_t bad;
    vs->extra = 0;
    if (strstr(s, "${"))
      er_tmpl_scan(s, vsize_ref, vs, msg, sizeof msg, &bad);
    return sat_add(json_string_length(v) + 2, vs->extra);
  }
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      n = sat_add(n, sat_add(vsize_of(vs, json_array_get(v, i)), 1));
    return n;
  }
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
      json_t *ks = json_string(k);
      n = sat_add(n, sat_add(ks ? vsize_of(vs, ks) : strlen(k), 1));
      n = sat_add(n, sat_add(vsize_of(vs, x), 1));
      json_decref(ks);
    }
    return n;
  }
  return 8;
}

/* A var whose expansion would pass VARS_EXPANDED_MAX (a typed var that
 * doubles the one before it, 22 times) is an error at its name, found
 * without expanding anything. */
void er_refs_vars_size(const er_diag_src_t *c, const json_t *vars,
                       const char *ptr) {
  vsize_t vs = {vars, NULL, 0, 0};
  const char *k;
  json_t *v;
  if (!json_is_object(vars) || !json_object_size(vars))
    return;
  vs.sz = calloc(json_object_size(vars), sizeof *vs.sz);
  if (!vs.sz)
    return;
  json_object_foreach((json_t *)vars, k, v) {
    size_t n = vsize_of(&vs, v);
    vs.sz[vs.n++] = n;
    if (n > VARS_EXPANDED_MAX) {
      char *cp = er_jpos_child(ptr, k);
      er_diag_err(
          c, cp ? cp : ptr, true,
          "var '%s' expands to more than %u bytes (each ${...} of a var "
          "above copies all of it); build it from smaller parts",
          k, (unsigned)VARS_EXPANDED_MAX);
      free(cp);
      break; /* the vars below that use it say nothing new */
    }
  }
  free(vs.sz);
}
