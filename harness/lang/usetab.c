/* usetab.c: the step files of a scenario and the calls to them (uses.h):
 * the table that running, the dry run and the safety walk read. Apart
 * from uses.c (loading and checking), so that reading the table does not
 * link the loader. */
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"
#include "lang/jpos.h"
#include "lang/uses_tab.h"

er_uses_t *er_uses_new(void) {
  er_uses_t *u = calloc(1, sizeof *u);
  if (u)
    u->refs = 1;
  return u;
}

er_uses_t *er_uses_ref(er_uses_t *u) {
  if (u)
    u->refs++;
  return u;
}

void er_uses_free(er_uses_t *u) {
  if (!u || --u->refs > 0)
    return;
  for (size_t i = 0; i < u->nfiles; i++) {
    free(u->files[i]->file);
    free(u->files[i]->dir);
    free(u->files[i]->real);
    json_decref(u->files[i]->doc);
    free(u->files[i]);
  }
  free(u->files);
  free(u->calls);
  free(u);
}

const er_stepfile_t *er_uses_find(const er_uses_t *u, const json_t *step) {
  for (size_t i = 0; u && i < u->ncalls; i++)
    if (u->calls[i].step == step)
      return u->calls[i].sf;
  return NULL;
}

const json_t *er_uses_outputs(void *ud, const json_t *step) {
  const er_stepfile_t *sf = er_uses_find(ud, step);
  return sf ? sf->outputs : NULL;
}

/* ---- paths of nodes ------------------------------------------------------ */

static bool path_of(const json_t *v, const json_t *node, er_buf_t *b) {
  size_t mark = b->len;
  if (v == node)
    return true;
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
      er_jpos_append_token(b, k);
      if (path_of(x, node, b))
        return true;
      b->len = mark;
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      er_buf_printf(b, "/%zu", i);
      if (path_of(json_array_get(v, i), node, b))
        return true;
      b->len = mark;
    }
  }
  return false;
}

char *er_json_path_of(const json_t *root, const json_t *node) {
  er_buf_t b = ER_BUF_INIT(1u << 20);
  char *out;
  if (!path_of(root, node, &b)) {
    er_buf_free(&b);
    return NULL;
  }
  er_buf_cstr(&b);
  out = b.len ? er_buf_steal(&b) : er_strdup("");
  er_buf_free(&b);
  return out;
}

const er_stepfile_t *er_uses_holding(const er_uses_t *u, const json_t *node,
                                     char **ptr) {
  for (size_t i = 0; u && i < u->nfiles; i++) {
    char *p = er_json_path_of(u->files[i]->doc, node);
    if (p) {
      *ptr = p;
      return u->files[i];
    }
  }
  return NULL;
}

int er_uses_add_call(er_uses_t *u, const json_t *step,
                     const er_stepfile_t *sf) {
  if (u->ncalls == u->acalls) {
    size_t na = u->acalls ? u->acalls * 2 : 8;
    er_use_call_t *nv = realloc(u->calls, na * sizeof *nv);
    if (!nv)
      return -1;
    u->calls = nv;
    u->acalls = na;
  }
  u->calls[u->ncalls++] = (er_use_call_t){step, sf};
  return 0;
}

er_stepfile_t *er_uses_add_file(er_uses_t *u, const char *file,
                                const char *real) {
  er_stepfile_t *sf;
  char *slash;
  if (u->nfiles == u->afiles) {
    size_t na = u->afiles ? u->afiles * 2 : 4;
    er_stepfile_t **nv = realloc(u->files, na * sizeof(er_stepfile_t *));
    if (!nv)
      return NULL;
    u->files = nv;
    u->afiles = na;
  }
  sf = calloc(1, sizeof *sf);
  if (!sf)
    return NULL;
  sf->file = er_strdup(file);
  sf->real = er_strdup(real);
  sf->dir = er_strdup(file);
  if (!sf->file || !sf->real || !sf->dir) {
    free(sf->file);
    free(sf->real);
    free(sf->dir);
    free(sf);
    return NULL;
  }
  slash = strrchr(sf->dir, '/');
  if (slash == sf->dir)
    sf->dir[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    strcpy(sf->dir, ".");
  u->files[u->nfiles++] = sf;
  return sf;
}

er_stepfile_t *er_uses_by_real(const er_uses_t *u, const char *real) {
  for (size_t i = 0; i < u->nfiles; i++)
    if (!strcmp(u->files[i]->real, real))
      return u->files[i];
  return NULL;
}

bool er_uses_type_fits(const char *t, const json_t *v) {
  bool big = er_big_digits(v) != NULL; /* an integer beyond 64 bits */
  if (!t || !strcmp(t, "any"))
    return true;
  if (!strcmp(t, "string"))
    return json_is_string(v) && !big;
  if (!strcmp(t, "integer"))
    return json_is_integer(v) || big;
  if (!strcmp(t, "number"))
    return json_is_number(v) || big;
  if (!strcmp(t, "boolean"))
    return json_is_boolean(v);
  if (!strcmp(t, "array"))
    return json_is_array(v);
  if (!strcmp(t, "object"))
    return json_is_object(v);
  return true;
}
