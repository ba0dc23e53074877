/* exec.c: sessions (per-branch connections) and helpers for actions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/exec.h"

#include "lang/doc.h"
#include "lang/fixture.h"
#include "lang/template.h"

#define DATA_FILE_CAP (64u * 1024u * 1024u) /* largest data fixture read */

typedef struct slot {
  char *name;
  void *obj;
  void (*free_fn)(void *);
} slot_t;

struct er_session {
  slot_t *v;
  size_t n, alloc;
};

er_session_t *er_session_new(void) { return calloc(1, sizeof(er_session_t)); }

void er_session_free(er_session_t *s) {
  if (!s)
    return;
  /* close in reverse order of opening */
  for (size_t i = s->n; i-- > 0;) {
    if (s->v[i].free_fn)
      s->v[i].free_fn(s->v[i].obj);
    free(s->v[i].name);
  }
  free(s->v);
  free(s);
}

void *er_session_get(er_session_t *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].name, name) == 0)
      return s->v[i].obj;
  return NULL;
}

int er_session_put(er_session_t *s, const char *name, void *obj,
                   void (*free_fn)(void *)) {
  for (size_t i = 0; i < s->n; i++) {
    if (strcmp(s->v[i].name, name) == 0) {
      if (s->v[i].free_fn && s->v[i].obj != obj)
        s->v[i].free_fn(s->v[i].obj);
      s->v[i].obj = obj;
      s->v[i].free_fn = free_fn;
      return 0;
    }
  }
  if (s->n == s->alloc) {
    size_t na = s->alloc ? s->alloc * 2 : 8;
    slot_t *nv = realloc(s->v, na * sizeof *nv);
    if (!nv)
      return -1;
    s->v = nv;
    s->alloc = na;
  }
  s->v[s->n].name = er_strdup(name);
  if (!s->v[s->n].name)
    return -1;
  s->v[s->n].obj = obj;
  s->v[s->n].free_fn = free_fn;
  s->n++;
  return 0;
}

void er_progress_note(er_exec_t *x, int polls, const char *last_seen) {
  er_progress_t *p = x ? x->progress : NULL;
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->polls = polls;
  if (last_seen) {
    size_t n = strcspn(last_seen, "\n");
    if (n >= sizeof p->last)
      n = er_utf8_cut(last_seen, n, sizeof p->last - 1);
    memcpy(p->last, last_seen, n);
    p->last[n] = '\0';
  }
  pthread_mutex_unlock(&p->mu);
}

void er_progress_count(er_exec_t *x, long produced, long acked) {
  er_progress_t *p = x ? x->progress : NULL;
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->produced = produced;
  p->acked = acked;
  pthread_mutex_unlock(&p->mu);
}

int64_t er_exec_left_ms(const er_exec_t *x) {
  int64_t left = x->deadline_ms - er_now_ms();
  return left > 0 ? left : 0;
}

void er_exec_log(er_exec_t *x, const char *fmt, ...) {
  va_list ap;
  er_buf_t line = ER_BUF_INIT(64 * 1024);
  if (!x->log)
    return;
  va_start(ap, fmt);
  er_buf_vprintf(&line, fmt, ap);
  va_end(ap);
  if (line.data)
    er_secret_redact(line.data); /* secrets never reach the log */
  er_buf_printf(x->log, "[%s] %s\n", x->polling ? "poll" : "step",
                er_buf_cstr(&line));
  er_buf_free(&line);
}

const char *er_exec_env_str(const er_exec_t *x, const char *section,
                            const char *key) {
  json_t *sec = x->env ? json_object_get(x->env, section) : NULL;
  json_t *v = sec ? json_object_get(sec, key) : NULL;
  return json_is_string(v) ? json_string_value(v) : NULL;
}

char *er_exec_file(const er_exec_t *x, const char *name, er_err_t *err) {
  const char *envroot = json_string_value(json_object_get(x->env, "fixtures"));
  char *root, *p;
  if (!name)
    return NULL;
  root = er_fixture_root(envroot && *envroot ? envroot : NULL, x->base_dir);
  p = er_fixture_find(x->base_dir, root, name, err);
  free(root);
  return p;
}

json_t *er_exec_data(er_exec_t *x, const char *name, er_err_t *err) {
  er_err_t in = {0};
  char *path = er_exec_file(x, name, err);
  json_t *raw, *out = NULL;
  er_jpos_t *pos = NULL;
  if (!path)
    return NULL;
  raw = er_doc_load_err(path, DATA_FILE_CAP, &pos, err);
  if (!raw)
    goto out;
  if (er_doc_kind(path) == ER_DOC_JSONL && json_is_array(raw)) {
    /* line by line, so that an error names its line */
    out = json_array();
    for (size_t i = 0; out && i < json_array_size(raw); i++) {
      json_t *v = er_tmpl_expand(x->tmpl, json_array_get(raw, i), &in);
      if (!v) {
        char ptr[32];
        int line = 0, col = 0;
        snprintf(ptr, sizeof ptr, "/%zu", i);
        er_jpos_find(pos, ptr, false, &line, &col);
        er_errf(err, in.code, "%s:%d: %s", path, line, in.msg);
        json_decref(out);
        out = NULL;
        goto out;
      }
      json_array_append_new(out, v);
    }
  } else {
    out = er_tmpl_expand(x->tmpl, raw, &in);
    if (!out)
      er_errf(err, in.code, "%s: %s", path, in.msg);
  }
out:
  er_jpos_free(pos);
  json_decref(raw);
  free(path);
  return out;
}
