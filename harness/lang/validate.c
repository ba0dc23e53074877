/* validate.c: checking a parsed file against key specs (see validate.h).
 * It reports every problem it finds (it does not stop at the first), each
 * mapped to file:line:col through diags.h. */
#include "lang/validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"
#include "lang/cond.h"
#include "lang/jpos.h"
#include "lang/jsonpath.h"
#include "lang/jsonx.h"

/* er_diag_t: one action's argument object, for its validate(). */
struct er_diag {
  const er_diag_src_t *c;
  const char *prefix; /* pointer of the argument object */
};

static void diag_at(er_diag_t *d, er_diag_sev_t sev, const char *path,
                    const char *fmt, va_list ap) {
  char *full = NULL;
  size_t pl, sl;
  if (!d)
    return;
  if (!path)
    path = "";
  pl = strlen(d->prefix);
  sl = strlen(path);
  full = malloc(pl + sl + 1);
  if (full) {
    memcpy(full, d->prefix, pl);
    memcpy(full + pl, path, sl + 1);
  }
  /* "" is the action itself: point at its key ("sleep": ...) */
  er_diag_vat(d->c, sev, full ? full : d->prefix, *path == '\0', fmt, ap);
  free(full);
}

/* A problem at path (relative to the action's arguments), at the key of
 * the member when key is true. */
static void diag_key(er_diag_t *d, const char *path, bool key, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
static void diag_key(er_diag_t *d, const char *path, bool key, const char *fmt,
                     ...) {
  char *full;
  size_t pl, sl;
  va_list ap;
  if (!d)
    return;
  pl = strlen(d->prefix);
  sl = strlen(path);
  full = malloc(pl + sl + 1);
  if (full) {
    memcpy(full, d->prefix, pl);
    memcpy(full + pl, path, sl + 1);
  }
  va_start(ap, fmt);
  er_diag_vat(d->c, ER_DIAG_ERROR, full ? full : d->prefix, key || !*path, fmt,
              ap);
  va_end(ap);
  free(full);
}

void er_diag_error(er_diag_t *d, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_at(d, ER_DIAG_ERROR, path, fmt, ap);
  va_end(ap);
}

void er_diag_warn(er_diag_t *d, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_at(d, ER_DIAG_WARNING, path, fmt, ap);
  va_end(ap);
}

/* " (did you mean 'x'?)" or "" into out. */
void er_dym_text(const char *word, const char *const *cands, size_t n,
                 char *out, size_t outsz) {
  const char *m = er_did_you_mean(word, cands, n);
  if (m)
    snprintf(out, outsz, " (did you mean '%s'?)", m);
  else if (outsz)
    out[0] = '\0';
}

const char *er_validate_type_noun(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
    return "an integer";
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  case JSON_NULL:
    return "null";
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  }
  return "a value";
}

static unsigned type_bit(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_STRING:
    return ER_T_STRING;
  case JSON_INTEGER:
    return ER_T_INT;
  case JSON_REAL:
    return ER_T_REAL;
  case JSON_TRUE:
  case JSON_FALSE:
    return ER_T_BOOL;
  case JSON_NULL:
    return ER_T_NULL;
  case JSON_OBJECT:
    return ER_T_OBJECT;
  case JSON_ARRAY:
    return ER_T_ARRAY;
  }
  return 0;
}

/* "a string or an array" for a type mask (with flags). */
static void types_text(unsigned types, char *out, size_t outsz) {
  const char *parts[8];
  size_t n = 0, used = 0;
  if (types & ER_T_DURATION) {
    parts[n++] = "a duration string";
    types &= ~(unsigned)ER_T_STRING;
  }
  if (types & ER_T_STRING)
    parts[n++] = "a string";
  if (types & ER_T_REAL)
    parts[n++] = "a number";
  else if (types & ER_T_INT)
    parts[n++] = "an integer";
  if (types & ER_T_BOOL)
    parts[n++] = "true or false";
  if (types & ER_T_NULL)
    parts[n++] = "null";
  if (types & (ER_T_OBJECT | ER_T_CHECK))
    parts[n++] = "an object";
  if (types & (ER_T_ARRAY | ER_T_STEPS))
    parts[n++] = "an array";
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    int w = snprintf(out + used, outsz - used, "%s%s",
                     i == 0       ? ""
                     : i + 1 == n ? " or "
                                  : ", ",
                     parts[i]);
    if (w < 0 || (size_t)w >= outsz - used)
      break;
    used += (size_t)w;
  }
}

/* A string that is exactly one ${...} expression expands to a value of
 * any type at run time, so it passes any type check. */
static bool is_single_expr(const char *s) {
  size_t n = strlen(s);
  if (n < 4 || s[0] != '$' || s[1] != '{' || s[n - 1] != '}')
    return false;
  return strchr(s + 2, '}') == s + n - 1 && !strstr(s + 2, "${");
}

/* Names of check actions, for messages: "http, redis, ...". */
static void action_list(bool checks_only, char *out, size_t outsz) {
  size_t n = 0, used = 0;
  const er_action_t *const *all = er_actions_all(&n);
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    int w;
    if (checks_only && !all[i]->check)
      continue;
    w = snprintf(out + used, outsz - used, "%s%s", used ? ", " : "",
                 all[i]->name);
    if (w < 0 || (size_t)w >= outsz - used)
      break;
    used += (size_t)w;
  }
}

const er_keyspec_t *er_keyspec_find(const er_keyspec_t *spec, const char *k) {
  for (const er_keyspec_t *ks = spec; ks && ks->name; ks++)
    if (strcmp(ks->name, k) == 0)
      return ks;
  return NULL;
}

/* ---- structural validation --------------------------------------------- */

static void validate_step(const er_diag_src_t *c, const json_t *step,
                          const char *ptr);
static void validate_action(const er_diag_src_t *c, const er_action_t *a,
                            const json_t *args, const char *ptr);
static void validate_wrapped(const er_diag_src_t *c, const char *what,
                             const json_t *args, const char *ptr,
                             const er_keyspec_t *own);

/* Finds where a matcher is wrong and reports the message there (the
 * offending $operator key when there is one). True if it reported. */
static bool matcher_report(const er_diag_src_t *c, const json_t *v,
                           const char *ptr) {
  char msg[512], at[1024];
  char *full;
  if (er_json_matcher_check_at(v, msg, sizeof msg, at, sizeof at) == 0)
    return false;
  full = malloc(strlen(ptr) + strlen(at) + 1);
  if (full) {
    strcpy(full, ptr);
    strcat(full, at);
  }
  er_diag_err(c, full ? full : ptr, *at != '\0', "%s", msg);
  free(full);
  return true;
}

void er_diag_matcher(er_diag_t *d, const char *path, const json_t *m) {
  char msg[512], at[1024];
  char *full;
  if (!m || er_json_matcher_check_at(m, msg, sizeof msg, at, sizeof at) == 0)
    return;
  full = malloc(strlen(path) + strlen(at) + 1);
  if (full) {
    strcpy(full, path);
    strcat(full, at);
  }
  diag_key(d, full ? full : path, *at != '\0', "%s", msg);
  free(full);
}

void er_diag_file(er_diag_t *d, const char *path, const char *name) {
  char *full;
  size_t pl, sl;
  if (!d || !d->c->file_ref || !name || strstr(name, "${"))
    return;
  pl = strlen(d->prefix);
  sl = strlen(path);
  full = malloc(pl + sl + 1);
  if (!full)
    return;
  memcpy(full, d->prefix, pl);
  memcpy(full + pl, path, sl + 1);
  d->c->file_ref(d->c, full, name, ER_T_FILE);
  free(full);
}

void er_diag_select(er_diag_t *d, const char *path, const char *sel) {
  char msg[512];
  if (er_select_check(sel, msg, sizeof msg))
    diag_key(d, path, true, "%s", msg);
}

/* Checks one value against its key spec ks. name is the key, for
 * messages. */
static void check_value(const er_diag_src_t *c, const json_t *v,
                        const char *ptr, const er_keyspec_t *ks,
                        const char *name) {
  unsigned mask = ks->types & ER_T_ANY;
  if (ks->types & ER_T_CHECK)
    mask |= ER_T_OBJECT;
  if (ks->types & ER_T_STEPS)
    mask |= ER_T_ARRAY;
  if (mask == 0)
    mask = ER_T_ANY;
  if (json_is_string(v) && is_single_expr(json_string_value(v)) &&
      !(ks->types & ER_T_COND))
    return; /* its type is known only at run time */
  if (er_big_digits(v) && (mask & ER_T_NUMBER) && !(mask & ER_T_STRING)) {
    er_diag_err(c, ptr, false,
                "'%s' is an integer beyond 64 bits; it must be at most "
                "9223372036854775807",
                name);
    return;
  }
  if (!(type_bit(v) & mask)) {
    char want[160];
    types_text(ks->types, want, sizeof want);
    er_diag_err(c, ptr, false, "'%s' must be %s, not %s", name, want,
                er_validate_type_noun(v));
    return;
  }
  if (ks->types & ER_T_COND) {
    er_cond_check(c, v, ptr);
    return;
  }
  if ((ks->types & ER_T_DURATION) && json_is_string(v)) {
    const char *s = json_string_value(v);
    int64_t ms;
    if (!strstr(s, "${") && er_parse_duration(s, &ms) != 0) {
      char *b = er_json_brief(v, 60);
      er_diag_err(
          c, ptr, false,
          "'%s': %s is not a duration (write a number and a unit: 250ms, "
          "5s, 2m)",
          name, b ? b : "value");
      free(b);
    }
  }
  if (ks->types & ER_T_MATCHER)
    matcher_report(c, v, ptr);

  if ((ks->types & ER_T_CHECK) && json_is_object(v))
    validate_wrapped(c, name, v, ptr, NULL);
  if ((ks->types & ER_T_STEPS) && json_is_array(v) && c->lean_steps &&
      !strcmp(ptr, "/steps")) {
    c->lean_steps(c);
  } else if ((ks->types & ER_T_STEPS) && json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      char *cp = er_jpos_child_index(ptr, i);
      validate_step(c, json_array_get(v, i), cp ? cp : ptr);
      free(cp);
    }
  }
  if (ks->sub && json_is_object(v))
    er_validate_obj(c, v, ptr, ks->sub, name);
  if (ks->each && (json_is_array(v) || (json_is_object(v) && !ks->sub))) {
    /* elements of an array, or values of a free-form object */
    if (json_is_array(v)) {
      for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *el = json_array_get(v, i);
        char *cp = er_jpos_child_index(ptr, i);
        if (!json_is_object(el))
          er_diag_err(c, cp ? cp : ptr, false,
                      "each element of '%s' must be an object, not %s", name,
                      er_validate_type_noun(el));
        else {
          char label[160];
          snprintf(label, sizeof label, "%s[%zu]", name, i);
          er_validate_obj(c, el, cp ? cp : ptr, ks->each, label);
        }
        free(cp);
      }
    } else {
      const char *k;
      json_t *el;
      json_object_foreach((json_t *)v, k, el) {
        char *cp = er_jpos_child(ptr, k);
        if (!json_is_object(el))
          er_diag_err(c, cp ? cp : ptr, false, "'%s' must be an object, not %s",
                      k, er_validate_type_noun(el));
        else
          er_validate_obj(c, el, cp ? cp : ptr, ks->each, k);
        free(cp);
      }
    }
  }
}

void er_validate_obj(const er_diag_src_t *c, const json_t *obj, const char *ptr,
                     const er_keyspec_t *spec, const char *what) {
  const char *k;
  json_t *v;
  const char *cands[64];
  size_t ncand = 0;
  for (const er_keyspec_t *ks = spec; ks && ks->name && ncand < 64; ks++)
    cands[ncand++] = ks->name;
  json_object_foreach((json_t *)obj, k, v) {
    const er_keyspec_t *ks = er_keyspec_find(spec, k);
    char *cp = er_jpos_child(ptr, k);
    const char *p = cp ? cp : ptr;
    if (!ks) {
      char dym[160];
      er_dym_text(k, cands, ncand, dym, sizeof dym);
      if (what)
        er_diag_err(c, p, true, "unknown key '%s' in '%s'%s", k, what, dym);
      else
        er_diag_err(c, p, true, "unknown key '%s'%s", k, dym);
    } else {
      check_value(c, v, p, ks, k);
    }
    free(cp);
  }
  for (const er_keyspec_t *ks = spec; ks && ks->name; ks++) {
    if (!ks->required || json_object_get(obj, ks->name))
      continue;
    if (what)
      er_diag_err(c, ptr, true, "'%s' needs the key '%s'", what, ks->name);
    else
      er_diag_err(c, ptr, true, "missing required key '%s'", ks->name);
  }
}

/* Arguments of await/hold (own = their keys), or an ER_T_CHECK value
 * (own = NULL): exactly one check action besides the own keys. */
static void validate_wrapped(const er_diag_src_t *c, const char *what,
                             const json_t *args, const char *ptr,
                             const er_keyspec_t *own) {
  const char *k;
  json_t *v;
  const char *found = NULL;
  bool other = false; /* an action or unknown key reported on its own */
  char checks[512];
  const char *cands[96];
  size_t ncand = 0, nact = 0;
  const er_action_t *const *all = er_actions_all(&nact);

  action_list(true, checks, sizeof checks);
  for (const er_keyspec_t *ks = own; ks && ks->name && ncand < 32; ks++)
    cands[ncand++] = ks->name;
  for (size_t i = 0; i < nact && ncand < 96; i++)
    if (all[i]->check)
      cands[ncand++] = all[i]->name;

  json_object_foreach((json_t *)args, k, v) {
    const er_keyspec_t *ks = er_keyspec_find(own, k);
    const er_action_t *a = ks ? NULL : er_action_find(k);
    char *cp = er_jpos_child(ptr, k);
    const char *p = cp ? cp : ptr;
    if (ks) {
      check_value(c, v, p, ks, k);
    } else if (a && !a->check) {
      er_diag_err(
          c, p, true,
          "'%s' cannot be used inside '%s': it is not a check (checks: %s)", k,
          what, checks);
      other = true;
    } else if (a) {
      if (found) {
        er_diag_err(c, p, true,
                    "'%s' polls exactly one check, but has '%s' and '%s'", what,
                    found, k);
      } else {
        found = k;
      }
      validate_action(c, a, v, p);
    } else {
      char dym[160];
      er_dym_text(k, cands, ncand, dym, sizeof dym);
      er_diag_err(c, p, true, "unknown key '%s' in '%s'%s", k, what, dym);
      other = true;
    }
    free(cp);
  }
  for (const er_keyspec_t *ks = own; ks && ks->name; ks++)
    if (ks->required && !json_object_get(args, ks->name))
      er_diag_err(c, ptr, true, "'%s' needs the key '%s'", what, ks->name);
  if (!found && !other)
    er_diag_err(c, ptr, true, "'%s' needs a check to poll (one of: %s)", what,
                checks);
}

/* The files an action's arguments name (ER_T_FILE, ER_T_DATA), checked
 * by the loader after the action's own validation: a missing fixture is
 * not a wrong shape, so it does not hide the action's other problems. */
/* The files named by keys of args (ER_T_FILE, ER_T_DATA), in objects with
 * fixed keys too ("expect": {"body_file": ...}). */
static void file_refs_in(const er_diag_src_t *c, const er_keyspec_t *keys,
                         const json_t *args, const char *ptr) {
  for (const er_keyspec_t *ks = keys; ks && ks->name; ks++) {
    const json_t *v = json_object_get(args, ks->name);
    const char *name = json_string_value(v);
    char *cp;
    if (ks->sub && json_is_object(v)) {
      cp = er_jpos_child(ptr, ks->name);
      file_refs_in(c, ks->sub, v, cp ? cp : ptr);
      free(cp);
    }
    if (!(ks->types & (ER_T_FILE | ER_T_DATA)) || !name || strstr(name, "${"))
      continue;
    cp = er_jpos_child(ptr, ks->name);
    c->file_ref(c, cp ? cp : ptr, name, ks->types);
    free(cp);
  }
}

static void check_file_refs(const er_diag_src_t *c, const er_action_t *a,
                            const json_t *args, const char *ptr) {
  if (!c->file_ref || !json_is_object(args))
    return;
  file_refs_in(c, a->keys, args, ptr);
}

static void validate_action(const er_diag_src_t *c, const er_action_t *a,
                            const json_t *args, const char *ptr) {
  size_t before = c->out->errors;
  if (a->whole_step) { /* `use`: a step file's name; the loader does the rest */
    if (!json_is_string(args))
      er_diag_err(c, ptr, false, "'%s' names a step file (a string), not %s",
                  a->name, er_validate_type_noun(args));
    return;
  }
  if (!json_is_object(args)) {
    er_diag_err(c, ptr, false, "'%s' takes an object of arguments, not %s",
                a->name, er_validate_type_noun(args));
    return;
  }
  if (a->wraps_check)
    validate_wrapped(c, a->name, args, ptr, a->keys);
  else
    er_validate_obj(c, args, ptr, a->keys, a->name);
  if (a->validate) {
    /* its own checks may assume the shape the key spec promises */
    if (c->out->errors == before) {
      er_diag_t d = {c, ptr};
      a->validate(args, &d);
    }
  } else if (a->warn_on_use) {
    er_diag_t d = {c, ptr};
    er_diag_warn(&d, "", "'%s' is discouraged", a->name);
  }
  check_file_refs(c, a, args, ptr);
}

static const er_keyspec_t g_step_common[] = {
    {"name", ER_T_STRING, false, NULL, NULL},
    {"timeout", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"with", ER_T_OBJECT, false, NULL, NULL},        /* the inputs of a `use` */
    {"if", ER_T_ANY | ER_T_COND, false, NULL, NULL}, /* cond.h */
    {NULL, 0, false, NULL, NULL},
};

static void validate_step(const er_diag_src_t *c, const json_t *step,
                          const char *ptr) {
  const char *k;
  json_t *v;
  const char *first = NULL;
  bool unknown = false;
  const char *cands[96];
  size_t ncand = 0, nact = 0;
  const er_action_t *const *all = er_actions_all(&nact);

  if (!json_is_object(step)) {
    er_diag_err(c, ptr, false,
                "a step must be an object with one action key, not %s",
                er_validate_type_noun(step));
    return;
  }
  for (const er_keyspec_t *ks = g_step_common; ks->name; ks++)
    cands[ncand++] = ks->name;
  for (size_t i = 0; i < nact && ncand < 96; i++)
    cands[ncand++] = all[i]->name;

  json_object_foreach((json_t *)step, k, v) {
    const er_keyspec_t *ks = er_keyspec_find(g_step_common, k);
    const er_action_t *a = ks ? NULL : er_action_find(k);
    char *cp = er_jpos_child(ptr, k);
    const char *p = cp ? cp : ptr;
    if (ks) {
      check_value(c, v, p, ks, k);
    } else if (a) {
      if (first)
        er_diag_err(c, p, true,
                    "a step has exactly one action, this one has '%s' and '%s' "
                    "(split it into two steps)",
                    first, k);
      else
        first = k;
      validate_action(c, a, v, p);
    } else {
      char dym[160];
      er_dym_text(k, cands, ncand, dym, sizeof dym);
      er_diag_err(c, p, true, "unknown action '%s'%s", k, dym);
      unknown = true;
    }
    free(cp);
  }
  if (!first && !unknown) {
    char acts[1024];
    action_list(false, acts, sizeof acts);
    er_diag_err(c, ptr, false, "step has no action (one of: %s)", acts);
  }
  if (json_object_get(step, "with") &&
      !(first && er_action_find(first)->whole_step)) {
    char *cp = er_jpos_child(ptr, "with");
    er_diag_err(c, cp ? cp : ptr, true,
                "'with' gives the inputs of a 'use' step (a step file); "
                "this step has %s%s%s",
                first ? "'" : "no 'use'", first ? first : "", first ? "'" : "");
    free(cp);
  }
}

void er_validate_step(const er_diag_src_t *c, const json_t *step,
                      const char *ptr) {
  validate_step(c, step, ptr);
}

void er_validate_keys_pos(const char *file, const er_jpos_t *pos,
                          const json_t *doc, const er_keyspec_t *spec,
                          er_diags_t *out) {
  er_diag_src_t c = {file, pos, out, NULL, 0, NULL, NULL, NULL, NULL, NULL};
  size_t from = out->n;
  if (!doc)
    ; /* not parsed: er_parse_json_text reported why */
  else if (!json_is_object(doc))
    er_diag_err(&c, "", false, "the file must hold a JSON object, not %s",
                er_validate_type_noun(doc));
  else
    er_validate_obj(&c, doc, "", spec, NULL);
  er_diags_sort_from(out, from);
}

void er_validate_keys(const char *file, const char *text, const json_t *doc,
                      const er_keyspec_t *spec, er_diags_t *out) {
  er_jpos_t *pos = text ? er_jpos_build(text, strlen(text)) : NULL;
  er_validate_keys_pos(file, pos, doc, spec, out);
  er_jpos_free(pos);
}
