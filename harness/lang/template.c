/* template.c: see template.h.
 *
 * One parser (parse_expr) serves both the static scanner and expansion, so
 * whatever validation accepts, expansion parses the same way.
 *
 * Syntax of one expression, after "${":
 *   path                 name segments [A-Za-z0-9_-]+ joined by '.'
 *   path:-default        default text up to the first '}' (no nesting);
 *                        used when the name is undefined, or for env vars
 *                        also when the variable is set but empty (shell
 *                        semantics of ${VAR:-default})
 *   fn(path)             fn is event_id, sha256 or urlencode
 * followed by "}".
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"
#include "base/pyjson.h"
#include "lang/jsonx.h"
#include "lang/template.h"

/* An expanded string may not grow past this (interpolated captures), nor
 * may the values one expansion copies (a typed var used many times). */
#define ER_TMPL_CAP (8u * 1024u * 1024u)
/* Expression text quoted in messages is cut to this many bytes. */
#define ER_TMPL_QUOTE 120

extern char **environ;

struct er_tmpl {
  json_t *ctx;            /* object: name -> value (owned) */
  const json_t *env_vars; /* environment file's vars (borrowed) */
};

static const char *const g_builtins[] = {
    "uuid",  "now",     "run",      "env",    "kafka",   "port",
    "proxy", "service", "instance", "repeat", "foreach",
};

/* Names er_tmpl_set refuses: they are computed, never stored. */
static const char *const g_reserved[] = {"uuid", "now", "env"};

int er_tmpl_is_builtin(const char *root) {
  for (size_t i = 0; i < sizeof g_builtins / sizeof g_builtins[0]; i++)
    if (strcmp(root, g_builtins[i]) == 0)
      return 1;
  return 0;
}

static int name_char(int c) { return isalnum(c) || c == '_' || c == '-'; }

int er_tmpl_name_ok(const char *name) {
  if (!name || !*name)
    return 0;
  for (const char *p = name; *p; p++)
    if (!name_char((unsigned char)*p))
      return 0;
  return 1;
}

/* ---- parsing ---------------------------------------------------------- */

typedef struct {
  size_t start, end;       /* s[start..end) is the whole "${...}" */
  size_t path_off, path_n; /* the name path (a function's argument) */
  size_t fn_n;             /* > 0: function name at start + 2 */
  int path_ok;             /* the path parsed (even if '}' is missing) */
  int has_def;
  size_t def_off, def_n;
} expr_t;

/* Length of the name path "a.b.0" at s (0 when there is none). */
static size_t path_len(const char *s) {
  size_t i = 0;
  while (name_char((unsigned char)s[i]) || (i > 0 && s[i] == '.'))
    i++;
  return i;
}

static int path_is(const char *s, size_t n, const char *word) {
  return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* Parses the expression starting at s + start ("${"). Returns 0, or -1
 * with a message. */
static int parse_expr(const char *s, size_t start, expr_t *e, char *msg,
                      size_t msgsz) {
  size_t i = start + 2, n;
  memset(e, 0, sizeof *e);
  e->start = start;
  n = path_len(s + i);
  if (n == 0) {
    snprintf(msg, msgsz, "empty or malformed ${...} expression");
    return -1;
  }
  if (s[i + n] == '(') {
    size_t m, r = 0;
    /* the function is named by the root, as the scanner always did */
    while (r < n && s[i + r] != '.')
      r++;
    if (!path_is(s + i, r, "event_id") && !path_is(s + i, r, "sha256") &&
        !path_is(s + i, r, "urlencode")) {
      snprintf(msg, msgsz,
               "unknown function '%.*s' (known: event_id, sha256, urlencode)",
               (int)(r < 127 ? r : 127), s + i);
      return -1;
    }
    e->fn_n = r;
    i += n + 1;
    m = path_len(s + i);
    if (m == 0 || s[i + m] != ')') {
      snprintf(msg, msgsz,
               "a function takes one variable name: "
               "${event_id(name)}");
      return -1;
    }
    e->path_off = i;
    e->path_n = m;
    i += m + 1;
  } else {
    e->path_off = i;
    e->path_n = n;
    i += n;
    if (s[i] == ':' && s[i + 1] == '-') {
      e->has_def = 1;
      e->def_off = i + 2;
      while (s[i] && s[i] != '}')
        i++;
      e->def_n = i - e->def_off;
    }
  }
  e->path_ok = 1;
  if (s[i] != '}') {
    snprintf(msg, msgsz, "unterminated ${ (missing '}')");
    return -1;
  }
  e->end = i + 1;
  return 0;
}

int er_tmpl_scan(const char *s, er_tmpl_ref_cb cb, void *ud, char *msg,
                 size_t msgsz, size_t *bad_off) {
  size_t i = 0;
  while (s[i]) {
    expr_t e;
    char root[128];
    size_t r;
    int rc;
    if (s[i] == '$' && s[i + 1] == '$' && s[i + 2] == '{') {
      i += 3;
      continue;
    }
    if (!(s[i] == '$' && s[i + 1] == '{')) {
      i++;
      continue;
    }
    rc = parse_expr(s, i, &e, msg, msgsz);
    if (rc != 0 && !e.path_ok) {
      *bad_off = i;
      return -1;
    }
    for (r = 0; r < e.path_n && s[e.path_off + r] != '.'; r++)
      ;
    if (r >= sizeof root)
      r = sizeof root - 1;
    memcpy(root, s + e.path_off, r);
    root[r] = '\0';
    if (cb)
      cb(ud, root, i);
    if (rc != 0) { /* the name is reported before the missing '}' */
      *bad_off = i;
      return -1;
    }
    i = e.end;
  }
  return 0;
}

/* ---- context ---------------------------------------------------------- */

er_tmpl_t *er_tmpl_new(void) {
  er_tmpl_t *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->ctx = json_object();
  if (!t->ctx) {
    free(t);
    return NULL;
  }
  return t;
}

void er_tmpl_free(er_tmpl_t *t) {
  if (!t)
    return;
  json_decref(t->ctx);
  free(t);
}

er_tmpl_t *er_tmpl_clone(const er_tmpl_t *t) {
  er_tmpl_t *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->ctx = json_deep_copy(t->ctx);
  if (!c->ctx) {
    free(c);
    return NULL;
  }
  c->env_vars = t->env_vars;
  return c;
}

void er_tmpl_set_env_vars(er_tmpl_t *t, const json_t *vars) {
  t->env_vars = vars;
}

/* Copies the next '.'-separated segment of name (from *pos) into seg.
 * Returns its length, or -1 when it is empty or too long. */
static int next_seg(const char *name, size_t *pos, char *seg, size_t segsz) {
  size_t b = *pos, e = b;
  while (name[e] && name[e] != '.')
    e++;
  if (e == b || e - b >= segsz)
    return -1;
  memcpy(seg, name + b, e - b);
  seg[e - b] = '\0';
  *pos = name[e] ? e + 1 : e;
  if (name[e] == '.' && name[e + 1] == '\0')
    return -1; /* trailing dot */
  return (int)(e - b);
}

int er_tmpl_set(er_tmpl_t *t, const char *name, json_t *value) {
  char seg[256];
  size_t pos = 0;
  json_t *cur;
  int rc = -1;

  if (!t || !name || !value)
    goto out;
  for (size_t i = 0; i < sizeof g_reserved / sizeof g_reserved[0]; i++) {
    size_t n = strlen(g_reserved[i]);
    if (strncmp(name, g_reserved[i], n) == 0 &&
        (name[n] == '\0' || name[n] == '.'))
      goto out;
  }
  do { /* validate every segment before changing anything */
    if (next_seg(name, &pos, seg, sizeof seg) < 0)
      goto out;
  } while (name[pos] != '\0');
  pos = 0;
  cur = t->ctx;
  for (;;) {
    json_t *next;
    if (next_seg(name, &pos, seg, sizeof seg) < 0)
      goto out;
    if (name[pos] == '\0') {
      rc = json_object_set_new(cur, seg, value);
      value = NULL; /* json_object_set_new consumed it, even on failure */
      goto out;
    }
    next = json_object_get(cur, seg);
    if (!next) {
      next = json_object();
      if (!next || json_object_set_new(cur, seg, next) != 0)
        goto out;
    } else if (!json_is_object(next)) {
      goto out; /* "a.b" when a is not an object */
    }
    cur = next;
  }
out:
  json_decref(value);
  return rc;
}

/* Looks seg up in v: object key, or array index. Borrowed or NULL. */
static json_t *child(const json_t *v, const char *seg) {
  if (json_is_object(v))
    return json_object_get(v, seg);
  if (json_is_array(v)) {
    char *endp;
    unsigned long long k;
    if (!isdigit((unsigned char)seg[0]))
      return NULL;
    k = strtoull(seg, &endp, 10);
    if (*endp || k >= json_array_size(v))
      return NULL;
    return json_array_get(v, (size_t)k);
  }
  return NULL;
}

json_t *er_tmpl_get(er_tmpl_t *t, const char *name) {
  char seg[256];
  size_t pos = 0;
  json_t *cur;
  if (!t || !name)
    return NULL;
  cur = t->ctx;
  while (cur) {
    if (next_seg(name, &pos, seg, sizeof seg) < 0)
      return NULL;
    cur = child(cur, seg);
    if (name[pos] == '\0')
      return cur;
  }
  return NULL;
}

/* ---- evaluation ------------------------------------------------------- */

/* Names an unknown name could have meant: keys of obj (or NULL) plus
 * extra. Returns the count; names are borrowed. */
static size_t collect_names(const json_t *obj, const char *const *extra,
                            size_t nextra, const char **out, size_t max) {
  size_t n = 0;
  const char *key;
  json_t *val;
  for (size_t i = 0; i < nextra && n < max; i++)
    out[n++] = extra[i];
  if (json_is_object(obj)) {
    json_object_foreach((json_t *)obj, key, val) {
      (void)val;
      if (n < max)
        out[n++] = key;
    }
  }
  return n;
}

/* Appends " (did you mean 'x'?)" or " (known: a, b, ...)" to b. */
static void hint(er_buf_t *b, const char *word, const char **names, size_t n) {
  const char *best = er_did_you_mean(word, names, n);
  if (best) {
    er_buf_printf(b, " (did you mean '%s'?)", best);
    return;
  }
  if (n == 0)
    return;
  er_buf_puts(b, " (known: ");
  for (size_t i = 0; i < n && i < 12; i++)
    er_buf_printf(b, "%s%s", i ? ", " : "", names[i]);
  if (n > 12)
    er_buf_puts(b, ", ...");
  er_buf_puts(b, ")");
}

typedef struct {
  const char *s; /* the whole template string */
  const expr_t *e;
} where_t;

/* Sets err to "${...}: <msg>" with the expression quoted. */
static int expr_err(er_err_t *err, const where_t *w, er_buf_t *msg) {
  size_t n = w->e->end - w->e->start;
  return er_errf(err, ER_E_INPUT, "%.*s%s: %s",
                 (int)(n > ER_TMPL_QUOTE ? ER_TMPL_QUOTE : n),
                 w->s + w->e->start, n > ER_TMPL_QUOTE ? "..." : "",
                 er_buf_cstr(msg));
}

/* The value of ${env.NAME}: new reference, or NULL with *unset = 1 (no
 * error yet: a default may apply) or with err set. An empty value counts
 * as unset when a default is given. */
static json_t *env_value(er_tmpl_t *t, const char *name, int has_def,
                         int *unset, er_err_t *err) {
  json_t *v = t->env_vars ? json_object_get(t->env_vars, name) : NULL;
  const char *pv;
  *unset = 0;
  if (v && has_def && json_is_string(v) && json_string_length(v) == 0) {
    *unset = 1;
    return NULL;
  }
  if (v)
    return json_incref(v);
  pv = getenv(name);
  if (!pv || (has_def && pv[0] == '\0')) {
    *unset = 1;
    return NULL;
  }
  v = json_string(pv);
  if (!v)
    er_errf(err, ER_E_INPUT, "environment variable '%s' is not valid UTF-8",
            name);
  return v;
}

static void env_hint(er_tmpl_t *t, er_buf_t *b, const char *name) {
  const char **names = NULL;
  char **copies = NULL;
  size_t n = 0, max = 0, k = 0;
  const char *key;
  json_t *val;
  for (char **e = environ; e && *e; e++)
    max++;
  if (json_is_object(t->env_vars))
    max += json_object_size(t->env_vars);
  names = calloc(max + 1, sizeof *names);
  copies = calloc(max + 1, sizeof *copies);
  if (!names || !copies)
    goto out;
  if (json_is_object(t->env_vars)) {
    json_object_foreach((json_t *)t->env_vars, key, val) {
      (void)val;
      names[n++] = key;
    }
  }
  /* names only: values (secrets) are never put into a message */
  for (char **e = environ; e && *e && n < max; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq)
      continue;
    copies[k] = strndup(*e, (size_t)(eq - *e));
    if (copies[k])
      names[n++] = copies[k++];
  }
  {
    const char *best = er_did_you_mean(name, names, n);
    if (best)
      er_buf_printf(b, " (did you mean '%s'?)", best);
  }
out:
  for (size_t i = 0; copies && i < k; i++)
    free(copies[i]);
  free(copies);
  free(names);
}

/* One name path being evaluated: the path (a copy), where its next
 * segment starts, the segment read last, its default, the message of a
 * problem and where the problem goes. */
typedef struct path_eval {
  er_tmpl_t *t;
  const where_t *w;
  char *pathz;
  size_t pos;
  char seg[256];
  int has_def;
  const char *def;
  size_t def_n;
  er_buf_t msg;
  er_err_t *err;
} path_eval_t;

/* Sets err from p->msg; returns NULL. */
static json_t *pe_fail(path_eval_t *p) {
  expr_err(p->err, p->w, &p->msg);
  return NULL;
}

/* Reads the next segment into p->seg: 0, or -1 with err set. */
static int pe_next(path_eval_t *p) {
  if (next_seg(p->pathz, &p->pos, p->seg, sizeof p->seg) >= 0)
    return 0;
  er_buf_printf(&p->msg, "bad name '%s' (empty or over-long segment)",
                p->pathz);
  pe_fail(p);
  return -1;
}

/* ${uuid} / ${now} (p->seg): a new string, or NULL with err set. */
static json_t *pe_builtin(path_eval_t *p) {
  char buf[40];
  if (p->pathz[p->pos] != '\0') {
    er_buf_printf(&p->msg, "'%s' has no fields", p->seg);
    return pe_fail(p);
  }
  if (p->seg[0] == 'u')
    er_uuid4(buf);
  else
    er_rfc3339_now(buf);
  return json_string(buf);
}

/* The value the path starts from, ${env.NAME} or a name of the context
 * (p->seg): a new reference; *def_used when it is the default instead;
 * NULL with err set. */
static json_t *pe_root(path_eval_t *p, bool *def_used) {
  static const char *const comp[] = {"uuid", "now", "env"};
  const char *names[256];
  json_t *cur;
  int unset = 0;
  *def_used = false;
  if (strcmp(p->seg, "env") == 0) {
    if (p->pathz[p->pos] == '\0' ||
        next_seg(p->pathz, &p->pos, p->seg, sizeof p->seg) < 0) {
      er_buf_puts(&p->msg, "env needs a variable name: ${env.NAME}");
      return pe_fail(p);
    }
    cur = env_value(p->t, p->seg, p->has_def, &unset, p->err);
    if (cur || !unset)
      return cur;
  } else {
    cur = json_object_get(p->t->ctx, p->seg);
    if (cur)
      return json_incref(cur);
  }
  if (p->has_def) {
    *def_used = true;
    return json_stringn(p->def, p->def_n);
  }
  if (unset) {
    er_buf_printf(&p->msg, "environment variable '%s' is not set", p->seg);
    env_hint(p->t, &p->msg, p->seg);
    er_buf_printf(&p->msg, "; give a default with ${env.%s:-value}", p->seg);
  } else {
    er_buf_printf(&p->msg, "unknown name '%s'", p->seg);
    hint(&p->msg, p->seg, names, collect_names(p->t->ctx, comp, 3, names, 256));
  }
  return pe_fail(p);
}

/* The problem of a segment (p->seg) that cur (reached by prev) lacks. */
static json_t *pe_no_child(path_eval_t *p, const json_t *cur,
                           const char *prev) {
  const char *names[256];
  if (json_is_object(cur)) {
    er_buf_printf(&p->msg, "'%s' has no key '%s'", prev, p->seg);
    hint(&p->msg, p->seg, names, collect_names(cur, NULL, 0, names, 256));
  } else if (json_is_array(cur)) {
    er_buf_printf(&p->msg,
                  "'%s' is an array of %zu; '%s' is not an index in it", prev,
                  json_array_size(cur), p->seg);
  } else {
    er_buf_printf(&p->msg, "'%s' is %s, it has no '%s'", prev,
                  er_json_type_noun(cur), p->seg);
  }
  return pe_fail(p);
}

/* Follows the rest of the path from cur (taken over): a new reference,
 * the default, or NULL with err set. */
static json_t *pe_descend(path_eval_t *p, json_t *cur) {
  char prev[256];
  while (p->pathz[p->pos] != '\0') {
    json_t *next;
    snprintf(prev, sizeof prev, "%.*s", (int)(p->pos ? p->pos - 1 : 0),
             p->pathz);
    if (pe_next(p) < 0) {
      json_decref(cur);
      return NULL;
    }
    next = child(cur, p->seg);
    if (!next) {
      json_t *out = p->has_def ? json_stringn(p->def, p->def_n)
                               : pe_no_child(p, cur, prev);
      json_decref(cur);
      return out;
    }
    json_incref(next);
    json_decref(cur);
    cur = next;
  }
  return cur;
}

/* Evaluates a name path (with an optional default). Returns a new
 * reference, or NULL with err set. */
static json_t *eval_path(er_tmpl_t *t, const where_t *w, const char *path,
                         size_t plen, int has_def, const char *def,
                         size_t def_n, er_err_t *err) {
  path_eval_t p = {t,  w, NULL, 0, "", has_def, def, def_n, ER_BUF_INIT(2048),
                   err};
  json_t *out = NULL;
  bool def_used = false;

  p.pathz = strndup(path, plen);
  if (!p.pathz) {
    er_errf(err, ER_E_ENV, "out of memory");
    goto out;
  }
  do { /* "a..b" and "a." are refused before any lookup */
    if (pe_next(&p) < 0)
      goto out;
  } while (p.pathz[p.pos] != '\0');
  p.pos = 0;
  pe_next(&p);
  if (strcmp(p.seg, "uuid") == 0 || strcmp(p.seg, "now") == 0)
    out = pe_builtin(&p);
  else if ((out = pe_root(&p, &def_used)) != NULL && !def_used)
    out = pe_descend(&p, out);
out:
  if (!out && err && err->code == ER_E_NONE)
    er_errf(err, ER_E_ENV, "out of memory");
  er_buf_free(&p.msg);
  free(p.pathz);
  return out;
}

/* ${urlencode(name)}: a string, number or boolean as percent-encoded
 * text (RFC 3986: all but A-Z a-z 0-9 - . _ ~). */
static json_t *urlencode_value(const json_t *v, const char *s, const expr_t *e,
                               const where_t *w, er_err_t *err) {
  er_buf_t out = ER_BUF_INIT(ER_TMPL_CAP);
  er_buf_t msg = ER_BUF_INIT(2048);
  json_t *res = NULL;
  char num[64];
  const char *text = NULL;
  if (json_is_string(v)) {
    text = json_string_value(v);
  } else if (json_is_integer(v)) {
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    text = num;
  } else if (json_is_real(v)) {
    snprintf(num, sizeof num, "%.17g", json_real_value(v));
    text = num;
  } else if (json_is_boolean(v)) {
    text = json_is_true(v) ? "true" : "false";
  }
  if (!text) {
    er_buf_printf(&msg,
                  "urlencode needs a string, a number or a boolean; '%.*s' is "
                  "%s",
                  (int)e->path_n, s + e->path_off, er_json_type_noun(v));
    expr_err(err, w, &msg);
  } else if (er_url_encode(&out, text,
                           json_is_string(v) ? json_string_length(v)
                                             : strlen(text)) != 0 ||
             out.truncated) {
    er_errf(err, ER_E_INPUT, "urlencode: the encoded text is too long");
  } else {
    res = json_stringn(out.data ? out.data : "", out.len);
    if (!res)
      er_errf(err, ER_E_ENV, "out of memory");
  }
  er_buf_free(&out);
  er_buf_free(&msg);
  return res;
}

/* Evaluates a parsed expression: new reference or NULL with err set. */
static json_t *eval_expr(er_tmpl_t *t, const char *s, const expr_t *e,
                         er_err_t *err) {
  where_t w = {s, e};
  json_t *v = eval_path(t, &w, s + e->path_off, e->path_n, e->has_def,
                        s + e->def_off, e->def_n, err);
  json_t *out = NULL;
  char hex[65];
  er_err_t inner = {0};
  er_buf_t msg = ER_BUF_INIT(2048);

  if (!v || e->fn_n == 0)
    return v;
  if (path_is(s + e->start + 2, e->fn_n, "urlencode")) {
    out = urlencode_value(v, s, e, &w, err);
    goto out;
  }
  if (path_is(s + e->start + 2, e->fn_n, "event_id")) {
    if (er_event_id(v, hex, &inner) != 0) {
      er_buf_printf(&msg, "%s", inner.msg);
      expr_err(err, &w, &msg);
      goto out;
    }
  } else {
    if (!json_is_string(v)) {
      er_buf_printf(&msg, "sha256 needs a string, '%.*s' is %s", (int)e->path_n,
                    s + e->path_off, er_json_type_noun(v));
      expr_err(err, &w, &msg);
      goto out;
    }
    er_sha256_hex(json_string_value(v), json_string_length(v), hex);
  }
  out = json_string(hex);
  if (!out)
    er_errf(err, ER_E_ENV, "out of memory");
out:
  er_buf_free(&msg);
  json_decref(v);
  return out;
}

/* About the compact JSON size of v, counting stops past limit. */
static size_t json_size_capped(const json_t *v, size_t limit) {
  size_t n = 2;
  if (json_is_string(v))
    return json_string_length(v) + 2;
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v) && n <= limit; i++)
      n += json_size_capped(json_array_get(v, i), limit - n + 1) + 1;
    return n;
  }
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
      if (n > limit)
        break;
      n += strlen(k) + 4 + json_size_capped(x, limit - n + 1);
    }
    return n;
  }
  return 8;
}

/* Counts n more bytes of one expansion into *used; -1 past the cap. */
static int budget_take(size_t *used, size_t n, er_err_t *err) {
  if (n > ER_TMPL_CAP || *used > ER_TMPL_CAP - n) {
    er_errf(err, ER_E_INPUT, "expanded value exceeds %u bytes",
            (unsigned)ER_TMPL_CAP);
    return -1;
  }
  *used += n;
  return 0;
}

/* Expands s[0..len). keep_type: a string that is one whole expression
 * yields the value with its JSON type. *used: bytes this expansion made
 * so far (bounded by ER_TMPL_CAP). New reference or NULL + err. */
static json_t *expand_text(er_tmpl_t *t, const char *s, size_t len,
                           int keep_type, size_t *used, er_err_t *err) {
  er_buf_t out = ER_BUF_INIT(ER_TMPL_CAP);
  json_t *res = NULL, *v = NULL;
  char *text = NULL;
  size_t i = 0, lit = 0;
  char msg[256];
  expr_t e;

  if (!t || !s) {
    er_errf(err, ER_E_INPUT, "no template or string to expand");
    goto out;
  }
  if (keep_type && len >= 2 && s[0] == '$' && s[1] == '{' &&
      parse_expr(s, 0, &e, msg, sizeof msg) == 0 && e.end == len) {
    v = eval_expr(t, s, &e, err);
    if (v && budget_take(used, json_size_capped(v, ER_TMPL_CAP), err) == 0) {
      res = json_deep_copy(v);
      if (!res)
        er_errf(err, ER_E_ENV, "out of memory");
    }
    goto out;
  }
  while (i < len) {
    if (s[i] != '$' || i + 1 >= len) {
      i++;
      continue;
    }
    if (s[i + 1] == '$' && i + 2 < len && s[i + 2] == '{') {
      er_buf_append(&out, s + lit, i - lit);
      er_buf_puts(&out, "${");
      i += 3;
      lit = i;
      continue;
    }
    if (s[i + 1] != '{') {
      i++;
      continue;
    }
    if (parse_expr(s, i, &e, msg, sizeof msg) != 0) {
      er_errf(err, ER_E_INPUT, "%s at offset %zu of \"%.*s%s\"", msg, i,
              (int)(len > ER_TMPL_QUOTE ? ER_TMPL_QUOTE : len), s,
              len > ER_TMPL_QUOTE ? "..." : "");
      goto out;
    }
    er_buf_append(&out, s + lit, i - lit);
    v = eval_expr(t, s, &e, err);
    if (!v)
      goto out;
    if (er_big_digits(v)) { /* an integer beyond 64 bits: its digits */
      er_buf_puts(&out, er_big_digits(v));
    } else if (json_is_string(v)) {
      er_buf_append(&out, json_string_value(v), json_string_length(v));
    } else {
      text = er_pyjson_compact(v, err);
      if (!text)
        goto out;
      er_buf_puts(&out, text);
      free(text);
      text = NULL;
    }
    json_decref(v);
    v = NULL;
    i = e.end;
    lit = i;
  }
  er_buf_append(&out, s + lit, len - lit);
  if (out.truncated) {
    er_errf(err, ER_E_INPUT, "expanded string exceeds %u bytes",
            (unsigned)ER_TMPL_CAP);
    goto out;
  }
  if (budget_take(used, out.len, err) != 0)
    goto out;
  res = json_stringn(out.data ? out.data : "", out.len);
  if (!res)
    er_errf(err, ER_E_ENV, "out of memory");
out:
  json_decref(v);
  free(text);
  er_buf_free(&out);
  return res;
}

json_t *er_tmpl_expand_str(er_tmpl_t *t, const char *s, er_err_t *err) {
  size_t used = 0;
  return expand_text(t, s, s ? strlen(s) : 0, 1, &used, err);
}

/* Appends an RFC 6901 reference token to ptr. */
static void ptr_push(er_buf_t *ptr, const char *tok, size_t n) {
  er_buf_puts(ptr, "/");
  for (size_t i = 0; i < n; i++) {
    if (tok[i] == '~')
      er_buf_puts(ptr, "~0");
    else if (tok[i] == '/')
      er_buf_puts(ptr, "~1");
    else
      er_buf_append(ptr, tok + i, 1);
  }
}

static const char *ptr_name(er_buf_t *ptr) {
  return ptr->len ? er_buf_cstr(ptr) : "(top level)";
}

static json_t *expand_rec(er_tmpl_t *t, const json_t *v, er_buf_t *ptr,
                          size_t *used, er_err_t *err) {
  json_t *res = NULL, *k = NULL, *c = NULL;
  er_err_t in = {0};
  size_t mark = ptr->len;

  switch (json_typeof(v)) {
  case JSON_STRING:
    res = expand_text(t, json_string_value(v), json_string_length(v), 1, used,
                      &in);
    if (!res)
      er_errf(err, in.code, "at %s: %s", ptr_name(ptr), in.msg);
    break;
  case JSON_ARRAY:
    res = json_array();
    if (!res) {
      er_errf(err, ER_E_ENV, "out of memory");
      break;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
      char idx[32];
      int n = snprintf(idx, sizeof idx, "%zu", i);
      ptr_push(ptr, idx, (size_t)n);
      c = expand_rec(t, json_array_get(v, i), ptr, used, err);
      ptr->len = mark;
      if (ptr->data)
        ptr->data[mark] = '\0';
      if (!c || json_array_append_new(res, c) != 0) {
        c = NULL;
        if (err->code == ER_E_NONE)
          er_errf(err, ER_E_ENV, "out of memory");
        goto fail;
      }
      c = NULL;
    }
    break;
  case JSON_OBJECT: {
    void *it;
    res = json_object();
    if (!res) {
      er_errf(err, ER_E_ENV, "out of memory");
      break;
    }
    for (it = json_object_iter((json_t *)v); it;
         it = json_object_iter_next((json_t *)v, it)) {
      const char *key = json_object_iter_key(it);
      size_t klen = json_object_iter_key_len(it);
      k = expand_text(t, key, klen, 0, used, &in);
      if (!k) {
        er_errf(err, in.code, "at %s (key \"%.*s\"): %s", ptr_name(ptr),
                (int)(klen > ER_TMPL_QUOTE ? ER_TMPL_QUOTE : klen), key,
                in.msg);
        goto fail;
      }
      if (json_object_getn(res, json_string_value(k), json_string_length(k))) {
        er_errf(err, ER_E_INPUT,
                "at %s (key \"%.*s\"): expands to \"%s\", a key that "
                "already exists",
                ptr_name(ptr),
                (int)(klen > ER_TMPL_QUOTE ? ER_TMPL_QUOTE : klen), key,
                json_string_value(k));
        goto fail;
      }
      ptr_push(ptr, key, klen);
      c = expand_rec(t, json_object_iter_value(it), ptr, used, err);
      ptr->len = mark;
      if (ptr->data)
        ptr->data[mark] = '\0';
      if (!c)
        goto fail;
      if (json_object_setn_new(res, json_string_value(k), json_string_length(k),
                               c) != 0) {
        c = NULL;
        er_errf(err, ER_E_ENV, "out of memory");
        goto fail;
      }
      c = NULL;
      json_decref(k);
      k = NULL;
    }
    break;
  }
  default:
    res = json_deep_copy(v);
    if (!res)
      er_errf(err, ER_E_ENV, "out of memory");
  }
  return res;
fail:
  json_decref(k);
  json_decref(c);
  json_decref(res);
  return NULL;
}

json_t *er_tmpl_expand(er_tmpl_t *t, const json_t *v, er_err_t *err) {
  er_buf_t ptr = ER_BUF_INIT(64 * 1024);
  json_t *res = NULL;
  size_t used = 0;
  if (!t || !v) {
    er_errf(err, ER_E_INPUT, "no template or value to expand");
    return NULL;
  }
  res = expand_rec(t, v, &ptr, &used, err);
  er_buf_free(&ptr);
  return res;
}
