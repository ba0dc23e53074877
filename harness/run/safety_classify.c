/* safety_classify.c: the pure part of the interlock (safety.h): what a
 * step touches and how it is decided, the words of SQL for messages,
 * COMMAND INFO entries, targets, and the plan walk. */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/pg.h"
#include "adapters/redis.h"
#include "lang/doc.h"
#include "lang/fixture.h"
#include "lang/jpos.h"
#include "lang/jsonx.h"
#include "run/safety.h"

#define SQL_FILE_CAP (16u << 20) /* as act_pg.c */
#define SCEN_FILE_CAP (16u << 20)

/* ---- SQL words (for messages) -------------------------------------------- */

static bool is_verb(const char *w) {
  return !strcmp(w, "TRUNCATE") || !strcmp(w, "DELETE") || !strcmp(w, "DROP");
}

static const char *verb_str(const char *w) {
  if (!strcmp(w, "TRUNCATE"))
    return "TRUNCATE";
  if (!strcmp(w, "DELETE"))
    return "DELETE";
  return "DROP";
}

/* End of a dollar-quote opening tag at p ("$$" or "$tag$"), or NULL. */
static const char *dollar_tag_end(const char *p) {
  const char *q = p + 1;
  if (*q == '$')
    return q + 1;
  if (!(isalpha((unsigned char)*q) || *q == '_'))
    return NULL;
  while (isalnum((unsigned char)*q) || *q == '_')
    q++;
  return *q == '$' ? q + 1 : NULL;
}

/* Past whitespace and comments (Postgres nests block comments). */
static const char *skip_blank(const char *p) {
  for (;;) {
    if (isspace((unsigned char)*p)) {
      p++;
    } else if (p[0] == '-' && p[1] == '-') {
      while (*p && *p != '\n')
        p++;
    } else if (p[0] == '/' && p[1] == '*') {
      int depth = 1;
      p += 2;
      while (*p && depth > 0) {
        if (p[0] == '/' && p[1] == '*') {
          depth++;
          p += 2;
        } else if (p[0] == '*' && p[1] == '/') {
          depth--;
          p += 2;
        } else {
          p++;
        }
      }
    } else {
      return p;
    }
  }
}

/* Past a string literal or quoted identifier at p; a doubled quote
 * escapes it, and a backslash escapes in E'' strings (close enough). */
static const char *skip_quoted(const char *p, const char *start) {
  char c = *p;
  bool esc = c == '\'' && p > start && (p[-1] == 'E' || p[-1] == 'e');
  p++;
  while (*p) {
    if ((esc && *p == '\\' && p[1]) || (*p == c && p[1] == c)) {
      p += 2;
    } else if (*p == c) {
      return p + 1;
    } else {
      p++;
    }
  }
  return p;
}

/* Token kinds of sql_token. */
enum { TOK_END = 0, TOK_WORD, TOK_QUOTED, TOK_SEMI, TOK_OTHER };

/* The next token of SQL text from p (start: the beginning of the text):
 * a word (upper case into w, cut to wsz), a quoted thing (literal, quoted
 * identifier, dollar quote), ';', another character (into w), or the end.
 * Returns the position after it. */
static const char *sql_token(const char *p, const char *start, char *w,
                             size_t wsz, int *kind) {
  unsigned char c;
  p = skip_blank(p);
  c = (unsigned char)*p;
  w[0] = '\0';
  if (!c) {
    *kind = TOK_END;
    return p;
  }
  if (c == '\'' || c == '"') {
    *kind = TOK_QUOTED;
    return skip_quoted(p, start);
  }
  if (c == '$' && dollar_tag_end(p)) {
    const char *te = dollar_tag_end(p);
    size_t tl = (size_t)(te - p);
    const char *q = te;
    while (*q && strncmp(q, p, tl) != 0)
      q++;
    *kind = TOK_QUOTED;
    return *q ? q + tl : q;
  }
  if (c == ';') {
    *kind = TOK_SEMI;
    return p + 1;
  }
  if (isalpha(c) || c == '_') {
    size_t n = 0;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == '$') {
      if (n + 1 < wsz)
        w[n++] = (char)toupper((unsigned char)*p);
      p++;
    }
    w[n] = '\0';
    *kind = TOK_WORD;
    return p;
  }
  w[0] = (char)c;
  w[1] = '\0';
  *kind = TOK_OTHER;
  return p + 1;
}

bool er_safety_sql_destructive(const char *sql, const char **verb) {
  const char *p = sql;
  char w[16], first[16] = "", prev[16] = "";
  int ntok = 0, kind; /* ntok: significant tokens of this statement */

  if (!sql)
    return false;
  for (;;) {
    p = sql_token(p, sql, w, sizeof w, &kind);
    if (kind == TOK_END)
      break;
    if (kind == TOK_SEMI) {
      ntok = 0;
      first[0] = prev[0] = '\0';
      continue;
    }
    if (kind == TOK_QUOTED) {
      snprintf(prev, sizeof prev, "%s", "'");
      ntok++;
      continue;
    }
    if (kind == TOK_OTHER) {
      /* "(SELECT" leads like SELECT; "(DELETE ...)" is not a thing */
      if (!(w[0] == '(' && ntok == 0)) {
        snprintf(prev, sizeof prev, "%s", w);
        ntok++;
      }
      continue;
    }
    if (ntok == 0) {
      snprintf(first, sizeof first, "%s", w);
      if (is_verb(w)) {
        if (verb)
          *verb = verb_str(w);
        return true;
      }
    } else if ((!strcmp(first, "WITH") || !strcmp(first, "EXPLAIN")) &&
               (!strcmp(w, "DELETE") || !strcmp(w, "TRUNCATE")) &&
               strcmp(prev, "ON") != 0) {
      if (verb)
        *verb = verb_str(w);
      return true;
    }
    snprintf(prev, sizeof prev, "%s", w);
    ntok++;
  }
  return false;
}

static bool is_plain_read(const char *w) {
  return !strcmp(w, "SELECT") || !strcmp(w, "VALUES") || !strcmp(w, "TABLE") ||
         !strcmp(w, "SHOW");
}

static bool is_dml(const char *w) {
  return !strcmp(w, "INSERT") || !strcmp(w, "UPDATE") || !strcmp(w, "DELETE") ||
         !strcmp(w, "MERGE");
}

/* The word of one statement from p: its first word, or for WITH / EXPLAIN
 * the first INSERT / UPDATE / DELETE / MERGE inside (not after ON), else
 * SELECT. Returns the position after the statement. */
static const char *stmt_word(const char *p, const char *start, char *out,
                             size_t outsz) {
  char w[16], prev[16] = "";
  int kind, n = 0;
  bool wrapper = false;
  out[0] = '\0';
  for (;;) {
    p = sql_token(p, start, w, sizeof w, &kind);
    if (kind == TOK_END || kind == TOK_SEMI)
      break;
    if (kind == TOK_WORD && n == 0) {
      snprintf(out, outsz, "%s", w);
      wrapper = !strcmp(w, "WITH") || !strcmp(w, "EXPLAIN");
    } else if (kind == TOK_WORD && wrapper && is_dml(w) &&
               strcmp(prev, "ON") != 0) {
      snprintf(out, outsz, "%s", w);
      wrapper = false;
    }
    if (!(kind == TOK_OTHER && w[0] == '(' && n == 0)) {
      snprintf(prev, sizeof prev, "%s", w);
      n++;
    }
  }
  if (wrapper)
    snprintf(out, outsz, "%s", "SELECT");
  return p;
}

void er_safety_sql_what(const char *sql, char *out, size_t outsz) {
  const char *verb = NULL, *p = sql;
  char w[32];
  if (!outsz)
    return;
  out[0] = '\0';
  if (!sql)
    return;
  if (er_safety_sql_destructive(sql, &verb)) {
    snprintf(out, outsz, "%s", verb);
    return;
  }
  while (*p) {
    p = stmt_word(p, sql, w, sizeof w);
    if (!w[0])
      continue;
    if (!out[0] || is_plain_read(out))
      snprintf(out, outsz, "%s", w);
    if (!is_plain_read(w))
      return;
  }
}

/* ---- Redis: COMMAND INFO ---------------------------------------------------
 */

/* name as shown in a message: upper case, "|" as a space, printable */
static void cmd_shown(const char *name, char *out, size_t outsz) {
  size_t n = 0;
  for (const char *p = name ? name : "?"; *p && n + 1 < outsz && n < 64; p++)
    out[n++] = *p == '|'                    ? ' '
               : isprint((unsigned char)*p) ? (char)toupper((unsigned char)*p)
                                            : '?';
  out[n] = '\0';
}

static bool has_flag(const json_t *flags, const char *f) {
  size_t i;
  json_t *v;
  json_array_foreach(flags, i, v) {
    if (json_is_string(v) && !strcasecmp(json_string_value(v), f))
      return true;
  }
  return false;
}

/* the subcommand entry "name|arg1" of a container's entry, or NULL */
static const json_t *subcommand(const json_t *entry, const char *arg1) {
  const char *name = json_string_value(json_array_get(entry, 0));
  const json_t *subs = json_array_get(entry, 9);
  size_t nl = name ? strlen(name) : 0, i;
  json_t *s;
  if (!name)
    return NULL;
  json_array_foreach(subs, i, s) {
    const char *sn = json_string_value(json_array_get(s, 0));
    if (sn && !strncasecmp(sn, name, nl) && sn[nl] == '|' &&
        !strcasecmp(sn + nl + 1, arg1))
      return s;
  }
  return NULL;
}

int er_safety_redis_reads(const json_t *entry, const char *arg1, char *why,
                          size_t whysz) {
  const json_t *flags;
  char shown[80];
  er_buf_t b = ER_BUF_INIT(1024);
  size_t i;
  json_t *f;

  if (json_is_object(entry)) {
    snprintf(why, whysz,
             "the server did not describe the command (COMMAND INFO: %.300s)",
             json_string_value(json_object_get(entry, "error"))
                 ? json_string_value(json_object_get(entry, "error"))
                 : "?");
    return 0;
  }
  if (!json_is_array(entry) || !json_is_string(json_array_get(entry, 0))) {
    snprintf(why, whysz, "%s",
             "the server does not know the command (COMMAND INFO)");
    return 0;
  }
  cmd_shown(json_string_value(json_array_get(entry, 0)), shown, sizeof shown);
  if (json_array_size(json_array_get(entry, 9)) > 0) { /* a container */
    const json_t *sub = arg1 ? subcommand(entry, arg1) : NULL;
    if (!arg1) {
      snprintf(why, whysz, "%s without a subcommand is not a read", shown);
      return 0;
    }
    if (!sub) {
      char a1[80];
      cmd_shown(arg1, a1, sizeof a1);
      snprintf(why, whysz,
               "the server does not know the subcommand %s %s (COMMAND INFO)",
               shown, a1);
      return 0;
    }
    entry = sub;
    cmd_shown(json_string_value(json_array_get(entry, 0)), shown, sizeof shown);
  }
  flags = json_array_get(entry, 2);
  if (has_flag(flags, "readonly") && !has_flag(flags, "write"))
    return 1;
  json_array_foreach(flags, i, f) {
    if (json_is_string(f))
      er_buf_printf(&b, "%s%s", b.len ? ", " : "", json_string_value(f));
  }
  snprintf(why, whysz,
           "the server does not flag %s readonly (COMMAND INFO flags: %s)",
           shown, b.len ? er_buf_cstr(&b) : "none");
  er_buf_free(&b);
  return 0;
}

/* ---- targets ---------------------------------------------------------------
 */

bool er_safety_glob_any(const json_t *globs, const char *s) {
  size_t i;
  json_t *g;
  if (!s || !json_is_array(globs))
    return false;
  json_array_foreach(globs, i, g) {
    if (json_is_string(g) && fnmatch(json_string_value(g), s, 0) == 0)
      return true;
  }
  return false;
}

bool er_safety_prefix_any(const json_t *prefixes, const char *s) {
  size_t i;
  json_t *g;
  if (!s || !json_is_array(prefixes))
    return false;
  json_array_foreach(prefixes, i, g) {
    if (json_is_string(g) && er_str_has_prefix(s, json_string_value(g)))
      return true;
  }
  return false;
}

int er_safety_redis_target(const char *url, char *out, size_t outsz) {
  er_redis_url_t u;
  er_err_t err = {0};
  if (!url || er_redis_url_parse(url, &u, &err) != 0) {
    snprintf(out, outsz, "?");
    return -1;
  }
  if (u.path)
    snprintf(out, outsz, "unix:%s/%d", u.path, u.db);
  else if (strchr(u.host, ':'))
    snprintf(out, outsz, "[%s]:%d/%d", u.host, u.port, u.db);
  else
    snprintf(out, outsz, "%s:%d/%d", u.host, u.port, u.db);
  er_redis_url_free(&u);
  return 0;
}

void er_safety_pg_dbname(const char *dsn, char *out, size_t outsz) {
  er_pg_dsn_dbname(dsn, out, outsz);
}

/* ---- steps -----------------------------------------------------------------
 */

/* The SQL of a postgres step (sql / query, or a file's text read into
 * *text, which the caller frees). NULL when not known before the run. */
static const char *step_sql(const json_t *args, const char *key,
                            const char *base_dir, char **text) {
  const char *sql = json_string_value(json_object_get(args, key));
  const char *file = json_string_value(json_object_get(args, "file"));
  *text = NULL;
  if (!sql && file && !strstr(file, "${")) {
    er_err_t err = {0};
    char *root = er_fixture_root(NULL, base_dir);
    char *path = er_fixture_find(base_dir, root, file, &err);
    *text = path ? er_read_file(path, SQL_FILE_CAP, NULL, &err) : NULL;
    sql = *text;
    free(path);
    free(root);
  }
  return sql;
}

static er_safe_kind_t classify_redis(const char *name, const json_t *args,
                                     char *what, size_t whatsz,
                                     er_safe_mode_t *mode) {
  if (!strcmp(name, "redis.clean")) {
    if (json_is_true(json_object_get(args, "flush"))) {
      snprintf(what, whatsz, "FLUSHDB");
    } else {
      char *b = er_json_brief(json_object_get(args, "match"), 120);
      snprintf(what, whatsz, "SCAN+UNLINK %s", b ? b : "?");
      free(b);
    }
  } else if (!strcmp(name, "redis.seed")) {
    const char *f = json_string_value(json_object_get(args, "keys_file"));
    if (f)
      snprintf(what, whatsz, "writes the keys of %s", f);
    else
      snprintf(what, whatsz, "writes %zu key(s)",
               json_object_size(json_object_get(args, "keys")));
  } else if (!strcmp(name, "redis.contend")) {
    const char *c0 =
        json_string_value(json_array_get(json_object_get(args, "command"), 0));
    char shown[80];
    cmd_shown(c0 ? c0 : "", shown, sizeof shown);
    snprintf(what, whatsz, "writes to %zu key(s)%s%s",
             json_array_size(json_object_get(args, "keys")), c0 ? " with " : "",
             c0 ? shown : "");
  } else { /* "redis" */
    const char *c0 =
        json_string_value(json_array_get(json_object_get(args, "command"), 0));
    cmd_shown(c0 ? c0 : "?", what, whatsz);
    *mode = ER_SAFE_READ_CMD;
  }
  return ER_SAFE_REDIS;
}

static er_safe_kind_t classify_pg(const char *name, const json_t *args,
                                  const char *base_dir, char *what,
                                  size_t whatsz, er_safe_mode_t *mode) {
  bool exec = !strcmp(name, "postgres.exec");
  char *text = NULL;
  const char *sql = step_sql(args, exec ? "sql" : "query", base_dir, &text);
  if (sql)
    er_safety_sql_what(sql, what, whatsz);
  else
    snprintf(what, whatsz, "%s", "SQL known at run time");
  if (!what[0])
    snprintf(what, whatsz, "%s", "no statement");
  free(text);
  *mode = exec ? ER_SAFE_WRITE : ER_SAFE_READ_TX;
  return ER_SAFE_PG;
}

er_safe_kind_t er_safety_classify(const er_action_t *a, const json_t *args,
                                  const char *base_dir, char *what,
                                  size_t whatsz, const char **target_arg,
                                  er_safe_mode_t *mode) {
  const char *name = a ? a->name : "";
  er_safe_kind_t k = ER_SAFE_NONE;
  if (target_arg)
    *target_arg = NULL;
  *mode = ER_SAFE_WRITE;
  what[0] = '\0';
  if (!json_is_object(args))
    return ER_SAFE_NONE;
  if (!strcmp(name, "redis") || !strcmp(name, "redis.clean") ||
      !strcmp(name, "redis.seed") || !strcmp(name, "redis.contend")) {
    k = classify_redis(name, args, what, whatsz, mode);
    if (target_arg)
      *target_arg = json_string_value(json_object_get(args, "url"));
  } else if (!strcmp(name, "postgres.exec") ||
             !strcmp(name, "postgres.expect") || !strcmp(name, "postgres")) {
    k = classify_pg(name, args, base_dir, what, whatsz, mode);
    if (target_arg)
      *target_arg = json_string_value(json_object_get(args, "dsn"));
  } else if (!strcmp(name, "kafka.reset")) {
    const char *g = json_string_value(json_object_get(args, "group"));
    const char *to = json_string_value(json_object_get(args, "to"));
    snprintf(what, whatsz, "offsets of group \"%s\" to %s", g ? g : "?",
             to ? to : "end");
    k = ER_SAFE_KAFKA;
  } else if (!strcmp(name, "kafka.produce")) {
    const char *t = json_string_value(json_object_get(args, "topic"));
    snprintf(what, whatsz, "produce to \"%s\"", t ? t : "?");
    k = ER_SAFE_KAFKA;
  }
  return k;
}

/* ---- the plan walk ------------------------------------------------------- */

typedef struct walk {
  const er_scenario_t *s;
  er_jpos_t *pos; /* of the file being walked */
  er_safety_at_t at;
  er_safety_visit_fn fn;
  void *ud;
} walk_t;

static void visit_steps(walk_t *w, const json_t *arr, const char *base,
                        int depth);

/* The steps of the step file a `use` step calls, in that file. */
static void visit_call(walk_t *w, const json_t *step, int depth) {
  const er_stepfile_t *sf = er_uses_find(w->s->uses, step);
  walk_t in;
  if (!sf || depth > 64)
    return;
  in = *w;
  in.pos = er_doc_positions(sf->file, SCEN_FILE_CAP);
  in.at.file = sf->file;
  in.at.dir = sf->dir;
  in.at.in_call = true;
  visit_steps(&in, sf->steps, "/steps", depth);
  er_jpos_free(in.pos);
}

static void visit_action(walk_t *w, const er_action_t *a, const json_t *args,
                         const char *path, const char *argpath, int depth);

/* The checks given as a key's value (await's "until"): their actions. */
static void visit_key_checks(walk_t *w, const er_action_t *a,
                             const json_t *args, const char *argpath,
                             int depth) {
  for (const er_keyspec_t *ks = a->keys; ks && ks->name; ks++) {
    const json_t *chk = json_object_get(args, ks->name);
    const char *k;
    json_t *v;
    char *kp;
    if (!(ks->types & ER_T_CHECK) || !json_is_object(chk))
      continue;
    kp = er_jpos_child(argpath, ks->name);
    json_object_foreach((json_t *)chk, k, v) {
      const er_action_t *in = er_action_find(k);
      char *cp = in && kp ? er_jpos_child(kp, k) : NULL;
      if (cp)
        visit_action(w, in, v, cp, cp, depth + 1);
      free(cp);
    }
    free(kp);
  }
}

static void visit_action(walk_t *w, const er_action_t *a, const json_t *args,
                         const char *path, const char *argpath, int depth) {
  er_safety_at_t at = w->at;
  at.path = path;
  at.depth = depth;
  er_jpos_find(w->pos, path, false, &at.line, &at.col);
  w->fn(w->ud, w->s, &at, a, args);
  if (a->whole_step) {
    visit_call(w, args, depth + 1);
    return;
  }
  if (!json_is_object(args))
    return;
  for (const er_keyspec_t *ks = a->keys; ks && ks->name; ks++) {
    const json_t *arr = json_object_get(args, ks->name);
    char *kp;
    if (!(ks->types & ER_T_STEPS) || !json_is_array(arr))
      continue;
    kp = er_jpos_child(argpath, ks->name);
    if (kp)
      visit_steps(w, arr, kp, depth + 1);
    free(kp);
  }
  if (a->wraps_check) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)args, k, v) {
      bool own = false;
      const er_action_t *in;
      for (const er_keyspec_t *ks = a->keys; ks && ks->name; ks++)
        if (!strcmp(ks->name, k))
          own = true;
      in = own ? NULL : er_action_find(k);
      if (in) {
        char *cp = er_jpos_child(argpath, k);
        if (cp)
          visit_action(w, in, v, cp, cp, depth + 1);
        free(cp);
      }
    }
  }
  visit_key_checks(w, a, args, argpath, depth);
}

static void visit_step(walk_t *w, const json_t *step, const char *path,
                       int depth) {
  const char *k;
  json_t *v;
  if (!json_is_object(step))
    return;
  json_object_foreach((json_t *)step, k, v) {
    const er_action_t *a = er_action_find(k);
    char *ap;
    if (!a)
      continue;
    ap = er_jpos_child(path, k);
    if (ap)
      visit_action(w, a, a->whole_step ? step : v, path, ap, depth);
    free(ap);
  }
}

static void visit_steps(walk_t *w, const json_t *arr, const char *base,
                        int depth) {
  for (size_t i = 0; json_is_array(arr) && i < json_array_size(arr); i++) {
    char *cp = er_jpos_child_index(base, i);
    if (cp)
      visit_step(w, json_array_get(arr, i), cp, depth);
    free(cp);
  }
}

void er_safety_walk(const er_scenario_t *s, er_safety_visit_fn fn, void *ud) {
  static const char *const names[] = {"setup", "steps", "teardown"};
  const er_steplist_t *lists[3];
  walk_t w;

  memset(&w, 0, sizeof w);
  w.s = s;
  w.fn = fn;
  w.ud = ud;
  w.at.file = s->file;
  w.at.dir = s->dir;
  lists[0] = &s->setup;
  lists[1] = &s->steps;
  lists[2] = &s->teardown;
  w.pos = er_doc_positions(s->file, SCEN_FILE_CAP);
  for (int l = 0; l < 3; l++) {
    w.at.section = names[l];
    for (size_t i = 0; i < lists[l]->n; i++) {
      const er_step_t *st = &lists[l]->v[i];
      char *ap = er_jpos_child(st->path, st->action->name);
      if (ap)
        visit_action(&w, st->action, st->args, st->path, ap, 0);
      free(ap);
    }
  }
  er_jpos_free(w.pos);
}
