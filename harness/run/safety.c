/* safety.c: the interlock on destructive actions (see safety.h). */
#include "run/safety.h"

#include <ctype.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/pg.h"
#include "adapters/redis.h"
#include "lang/jpos.h"
#include "lang/jsonx.h"
#include "lang/template.h"
#include "run/exec.h"

#define CHECK_MS 5000            /* a preflight check of one target */
#define SQL_FILE_CAP (16u << 20) /* as act_pg.c */
#define SCEN_FILE_CAP (16u << 20)
#define WHY_CAP 2048

/* ---- classifiers --------------------------------------------------------- */

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

bool er_safety_sql_destructive(const char *sql, const char **verb) {
  const char *p = sql;
  char first[16] = "", prev[16] = "";
  int ntok = 0; /* significant tokens of this statement */

  if (!sql)
    return false;
  while (*p) {
    unsigned char c = (unsigned char)*p;
    if (isspace(c)) {
      p++;
    } else if (c == '-' && p[1] == '-') {
      while (*p && *p != '\n')
        p++;
    } else if (c == '/' && p[1] == '*') {
      int depth = 1; /* Postgres nests block comments */
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
    } else if (c == '\'' || c == '"') {
      /* string literal / quoted identifier; doubled quote escapes it, and
       * a backslash escapes in E'' strings (close enough for all) */
      bool esc = c == '\'' && p > sql && (p[-1] == 'E' || p[-1] == 'e');
      p++;
      while (*p) {
        if ((esc && *p == '\\' && p[1]) || (*p == (char)c && p[1] == (char)c)) {
          p += 2;
        } else if (*p == (char)c) {
          p++;
          break;
        } else {
          p++;
        }
      }
      snprintf(prev, sizeof prev, "%s", "'");
      ntok++;
    } else if (c == '$' && dollar_tag_end(p)) {
      const char *te = dollar_tag_end(p);
      size_t tl = (size_t)(te - p);
      const char *q = te;
      while (*q && strncmp(q, p, tl) != 0)
        q++;
      p = *q ? q + tl : q;
      snprintf(prev, sizeof prev, "%s", "'");
      ntok++;
    } else if (c == ';') {
      ntok = 0;
      first[0] = prev[0] = '\0';
      p++;
    } else if (isalpha(c) || c == '_') {
      char w[16];
      size_t n = 0;
      while (isalnum((unsigned char)*p) || *p == '_' || *p == '$') {
        if (n + 1 < sizeof w)
          w[n++] = (char)toupper((unsigned char)*p);
        p++;
      }
      w[n] = '\0';
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
    } else {
      if (!(c == '(' && ntok == 0)) { /* "(DELETE ...)" is not a thing, but
                                         "(SELECT" leads like SELECT */
        prev[0] = (char)c;
        prev[1] = '\0';
        ntok++;
      }
      p++;
    }
  }
  return false;
}

bool er_safety_redis_cmd_destructive(const char *name) {
  return name &&
         (!strcasecmp(name, "DEL") || !strcasecmp(name, "UNLINK") ||
          !strcasecmp(name, "FLUSHDB") || !strcasecmp(name, "FLUSHALL"));
}

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

er_safe_kind_t er_safety_classify(const er_action_t *a, const json_t *args,
                                  const char *base_dir, char *what,
                                  size_t whatsz, const char **target_arg) {
  const char *name = a ? a->name : "";
  const char *verb = NULL;
  if (target_arg)
    *target_arg = NULL;
  what[0] = '\0';
  if (!json_is_object(args))
    return ER_SAFE_NONE;
  if (!strcmp(name, "redis.clean")) {
    const json_t *m = json_object_get(args, "match");
    if (target_arg)
      *target_arg = json_string_value(json_object_get(args, "url"));
    if (json_is_true(json_object_get(args, "flush"))) {
      snprintf(what, whatsz, "FLUSHDB");
    } else {
      char *b = er_json_brief(m, 120);
      snprintf(what, whatsz, "SCAN+UNLINK %s", b ? b : "?");
      free(b);
    }
    return ER_SAFE_REDIS;
  }
  if (!strcmp(name, "redis") || !strcmp(name, "redis.contend")) {
    const char *c0 =
        json_string_value(json_array_get(json_object_get(args, "command"), 0));
    if (!er_safety_redis_cmd_destructive(c0))
      return ER_SAFE_NONE;
    if (target_arg)
      *target_arg = json_string_value(json_object_get(args, "url"));
    for (size_t i = 0; c0[i] && i + 1 < whatsz; i++) {
      what[i] = (char)toupper((unsigned char)c0[i]);
      what[i + 1] = '\0';
    }
    return ER_SAFE_REDIS;
  }
  if (!strcmp(name, "postgres.exec") || !strcmp(name, "postgres.expect") ||
      !strcmp(name, "postgres")) {
    const char *sql = json_string_value(
        json_object_get(args, strcmp(name, "postgres.exec") ? "query" : "sql"));
    const char *file = json_string_value(json_object_get(args, "file"));
    char *text = NULL;
    bool d;
    if (!sql && file && !strstr(file, "${")) {
      er_err_t err = {0};
      char path[4096];
      if (file[0] == '/' || !base_dir)
        snprintf(path, sizeof path, "%s", file);
      else
        snprintf(path, sizeof path, "%s/%s", base_dir, file);
      text = er_read_file(path, SQL_FILE_CAP, NULL, &err);
      sql = text;
    }
    d = er_safety_sql_destructive(sql, &verb);
    free(text);
    if (!d)
      return ER_SAFE_NONE;
    if (target_arg)
      *target_arg = json_string_value(json_object_get(args, "dsn"));
    snprintf(what, whatsz, "%s", verb);
    return ER_SAFE_PG;
  }
  if (!strcmp(name, "kafka.reset")) {
    const char *g = json_string_value(json_object_get(args, "group"));
    const char *to = json_string_value(json_object_get(args, "to"));
    snprintf(what, whatsz, "offsets of group \"%s\" to %s", g ? g : "?",
             to ? to : "end");
    return ER_SAFE_KAFKA;
  }
  return ER_SAFE_NONE;
}

/* ---- the plan walk ------------------------------------------------------- */

typedef struct walk {
  const er_scenario_t *s;
  er_jpos_t *pos;
  const char *section;
  er_safety_visit_fn fn;
  void *ud;
} walk_t;

static void visit_step(walk_t *w, const json_t *step, const char *path,
                       int depth);

static void visit_action(walk_t *w, const er_action_t *a, const json_t *args,
                         const char *path, const char *argpath, int depth) {
  int line = 0, col = 0;
  er_jpos_find(w->pos, path, false, &line, &col);
  w->fn(w->ud, w->s, w->section, path, line, col, depth, a, args);
  if (!json_is_object(args))
    return;
  for (const er_keyspec_t *ks = a->keys; ks && ks->name; ks++) {
    const json_t *arr = json_object_get(args, ks->name);
    char *kp;
    if (!(ks->types & ER_T_STEPS) || !json_is_array(arr))
      continue;
    kp = er_jpos_child(argpath, ks->name);
    for (size_t i = 0; kp && i < json_array_size(arr); i++) {
      char *cp = er_jpos_child_index(kp, i);
      if (cp)
        visit_step(w, json_array_get(arr, i), cp, depth + 1);
      free(cp);
    }
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
}

static void visit_step(walk_t *w, const json_t *step, const char *path,
                       int depth) {
  const char *k;
  json_t *v;
  if (!json_is_object(step))
    return;
  json_object_foreach((json_t *)step, k, v) {
    const er_action_t *a;
    char *ap;
    if (!strcmp(k, "name") || !strcmp(k, "timeout"))
      continue;
    a = er_action_find(k);
    if (!a)
      continue;
    ap = er_jpos_child(path, k);
    if (ap)
      visit_action(w, a, v, path, ap, depth);
    free(ap);
  }
}

void er_safety_walk(const er_scenario_t *s, er_safety_visit_fn fn, void *ud) {
  static const char *const names[] = {"setup", "steps", "teardown"};
  const er_steplist_t *lists[3];
  walk_t w = {s, NULL, NULL, fn, ud};
  size_t len = 0;
  er_err_t err = {0};
  char *text = er_read_file(s->file, SCEN_FILE_CAP, &len, &err);

  lists[0] = &s->setup;
  lists[1] = &s->steps;
  lists[2] = &s->teardown;
  if (text)
    w.pos = er_jpos_build(text, len);
  for (int l = 0; l < 3; l++) {
    w.section = names[l];
    for (size_t i = 0; i < lists[l]->n; i++) {
      const er_step_t *st = &lists[l]->v[i];
      char *ap = er_jpos_child(st->path, st->action->name);
      if (ap)
        visit_action(&w, st->action, st->args, st->path, ap, 0);
      free(ap);
    }
  }
  er_jpos_free(w.pos);
  free(text);
}

/* ---- decisions ----------------------------------------------------------- */

static const json_t *target_spec(const json_t *env, const char *section) {
  const json_t *sec = env ? json_object_get(env, section) : NULL;
  const json_t *tt =
      json_is_object(sec) ? json_object_get(sec, "test_target") : NULL;
  return json_is_object(tt) ? tt : NULL;
}

static const char *env_name(const char *env_path) {
  return env_path ? env_path : "the environment file";
}

static bool kafka_env_embedded(const json_t *env) {
  const json_t *kc = env ? json_object_get(env, "kafka") : NULL;
  return !kc || json_object_get(kc, "embedded") != NULL;
}

/* 1 allowed, -1 refused (why: reason, fix: the env change) */
static int kafka_decide(const json_t *env, const char *env_path, bool embedded,
                        const char *group, const char *const *topics, size_t nt,
                        er_buf_t *why, er_buf_t *fix) {
  const json_t *tt = target_spec(env, "kafka");
  const json_t *gp = tt ? json_object_get(tt, "group_prefixes") : NULL;
  const json_t *tp = tt ? json_object_get(tt, "topic_prefixes") : NULL;
  bool gok, tok = true;
  if (embedded)
    return 1;
  gok = er_safety_prefix_any(gp, group);
  for (size_t i = 0; i < nt; i++)
    if (!er_safety_prefix_any(tp, topics[i]))
      tok = false;
  if (gok && tok)
    return 1;
  if (!tt)
    er_buf_puts(why, "\"kafka\" has no \"test_target\"");
  else if (!gok)
    er_buf_printf(why, "group \"%s\" matches no test_target.group_prefixes",
                  group ? group : "");
  else
    er_buf_puts(why, "a topic matches no test_target.topic_prefixes");
  er_buf_printf(fix, "add \"test_target\": {\"group_prefixes\": [\"%s\"]",
                group ? group : "");
  if (nt) {
    er_buf_puts(fix, ", \"topic_prefixes\": [");
    for (size_t i = 0; i < nt; i++)
      er_buf_printf(fix, "%s\"%s\"", i ? ", " : "", topics[i]);
    er_buf_puts(fix, "]");
  }
  er_buf_printf(fix, "} to \"kafka\" in %s", env_name(env_path));
  return -1;
}

/* Redis: 1 allowed (claimed says whether the marker was written just
 * now), 0 refused (why, fix), -1 could not check (err). */
static int redis_decide(const json_t *env, const char *env_path,
                        const char *run_id, er_redis_t *r, int64_t deadline,
                        bool *claimed, er_buf_t *why, er_buf_t *fix,
                        er_err_t *err) {
  const json_t *tt = target_spec(env, "redis");
  const char *marker =
      tt ? json_string_value(json_object_get(tt, "marker")) : NULL;
  bool claim = tt && json_is_true(json_object_get(tt, "claim_empty"));
  char target[512];
  json_t *reply = NULL;
  long long nkeys = -1;
  int rc = 0;

  *claimed = false;
  er_safety_redis_target(er_redis_redacted(r), target, sizeof target);
  if (tt && er_safety_glob_any(json_object_get(tt, "allow"), target))
    return 1;
  if (marker && *marker) {
    const char *ex[] = {"EXISTS", marker};
    if (er_redis_command(r, 2, ex, NULL, deadline, &reply, err) != ER_REDIS_OK)
      return -1;
    if (json_integer_value(reply) > 0) {
      json_decref(reply);
      return 1;
    }
    json_decref(reply);
    reply = NULL;
    {
      const char *ds[] = {"DBSIZE"};
      if (er_redis_command(r, 1, ds, NULL, deadline, &reply, err) !=
          ER_REDIS_OK)
        return -1;
      nkeys = json_integer_value(reply);
      json_decref(reply);
      reply = NULL;
    }
    if (claim && nkeys == 0) {
      char val[200], ts[40];
      const char *set[] = {"SET", marker, val, "NX"};
      er_rfc3339_now(ts);
      snprintf(val, sizeof val, "%s %s", run_id ? run_id : "eventrig", ts);
      if (er_redis_command(r, 4, set, NULL, deadline, &reply, err) !=
          ER_REDIS_OK)
        return -1;
      json_decref(reply);
      *claimed = true;
      return 1;
    }
    er_buf_printf(why,
                  "the marker key \"%s\" is not in %s (%lld key(s) there%s)",
                  marker, target, nkeys,
                  claim ? "; claim_empty claims only an empty database" : "");
  } else if (tt) {
    er_buf_printf(why, "%s matches no test_target.allow glob", target);
  } else {
    er_buf_puts(why, "\"redis\" has no \"test_target\"");
  }
  er_buf_printf(fix,
                "add \"test_target\": {\"allow\": [\"%s\"]} to \"redis\" in "
                "%s",
                target, env_name(env_path));
  if (marker && *marker)
    er_buf_printf(fix, ", or mark the database: SET %s 1", marker);
  return rc;
}

/* Postgres: 1 allowed, 0 refused, -1 could not check. */
static int pg_decide(const json_t *env, const char *env_path, er_pg_t *pg,
                     int64_t deadline, er_buf_t *why, er_buf_t *fix,
                     er_err_t *err) {
  const json_t *tt = target_spec(env, "postgres");
  const char *mt =
      tt ? json_string_value(json_object_get(tt, "marker_table")) : NULL;
  er_pg_result_t res = {0};
  char db[256];
  bool marked = false;
  int rc = -1;

  er_safety_pg_dbname(er_pg_dsn_redacted(pg), db, sizeof db);
  if (!tt) {
    er_buf_puts(why, "\"postgres\" has no \"test_target\"");
    rc = 0;
    goto refuse;
  }
  {
    const char *params[] = {mt ? mt : ""};
    if (er_pg_query(pg,
                    "SELECT current_database(), CASE WHEN $1::text = '' THEN "
                    "false ELSE to_regclass($1::text) IS NOT NULL END",
                    params, 1, deadline, &res, err) != 0)
      goto out;
  }
  {
    const json_t *row = json_array_get(res.rows, 0);
    const char *cur = json_string_value(json_array_get(row, 0));
    if (cur)
      snprintf(db, sizeof db, "%s", cur);
    marked = json_is_true(json_array_get(row, 1));
  }
  if (er_safety_glob_any(json_object_get(tt, "databases"), db) || marked) {
    rc = 1;
    goto out;
  }
  if (mt)
    er_buf_printf(why,
                  "database \"%s\" matches no test_target.databases glob and "
                  "has no table \"%s\"",
                  db, mt);
  else
    er_buf_printf(why, "database \"%s\" matches no test_target.databases glob",
                  db);
  rc = 0;
refuse:
  er_buf_printf(fix,
                "add \"test_target\": {\"databases\": [\"%s\"]} to "
                "\"postgres\" in %s",
                db, env_name(env_path));
  if (mt)
    er_buf_printf(fix, ", or create the table %s in it", mt);
out:
  er_pg_result_free(&res);
  return rc;
}

int er_safety_static(const json_t *env, er_safe_kind_t kind, const char *target,
                     const char *group, const char *const *topics, size_t nt,
                     char *out, size_t outsz) {
  const json_t *tt;
  char t[512];
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  int rc = -1;

  switch (kind) {
  case ER_SAFE_REDIS:
    tt = target_spec(env, "redis");
    er_safety_redis_target(target, t, sizeof t);
    if (tt && er_safety_glob_any(json_object_get(tt, "allow"), t)) {
      snprintf(out, outsz, "allowed (test_target.allow matches %s)", t);
      rc = 1;
    } else if (tt && json_is_string(json_object_get(tt, "marker"))) {
      snprintf(out, outsz, "checked at run time (marker key \"%s\"%s)",
               json_string_value(json_object_get(tt, "marker")),
               json_is_true(json_object_get(tt, "claim_empty"))
                   ? ", claimed if the database is empty"
                   : "");
      rc = 0;
    } else {
      snprintf(out, outsz, "REFUSED: %s",
               tt ? "matches no test_target.allow glob"
                  : "\"redis\" has no \"test_target\"");
    }
    break;
  case ER_SAFE_PG:
    tt = target_spec(env, "postgres");
    er_safety_pg_dbname(target, t, sizeof t);
    if (tt && er_safety_glob_any(json_object_get(tt, "databases"), t)) {
      snprintf(out, outsz, "allowed (test_target.databases matches \"%s\")", t);
      rc = 1;
    } else if (tt && json_is_string(json_object_get(tt, "marker_table"))) {
      snprintf(out, outsz, "checked at run time (marker table \"%s\")",
               json_string_value(json_object_get(tt, "marker_table")));
      rc = 0;
    } else {
      snprintf(out, outsz, "REFUSED: %s",
               tt ? "the database matches no test_target.databases glob"
                  : "\"postgres\" has no \"test_target\"");
    }
    break;
  case ER_SAFE_KAFKA:
    if (kafka_decide(env, NULL, kafka_env_embedded(env), group, topics, nt,
                     &why, &fix) > 0) {
      snprintf(out, outsz, "allowed (%s)",
               kafka_env_embedded(env) ? "the embedded broker"
                                       : "test_target prefixes");
      rc = 1;
    } else {
      snprintf(out, outsz, "REFUSED: %s", er_buf_cstr(&why));
    }
    break;
  default:
    snprintf(out, outsz, "not destructive");
    rc = 1;
  }
  er_buf_free(&why);
  er_buf_free(&fix);
  return rc;
}

/* ---- module state -------------------------------------------------------- */

/* shared "safety" */
typedef struct sstate {
  pthread_mutex_t mu;
  json_t *cache;        /* target key -> "" (allowed) or the refusal text */
  er_tmpl_t *t;         /* the run's template context (borrowed) */
  const char *env_path; /* borrowed from the runner's options, or NULL */
} sstate_t;

static void sstate_free(void *p) {
  sstate_t *st = p;
  if (!st)
    return;
  pthread_mutex_destroy(&st->mu);
  json_decref(st->cache);
  free(st);
}

static sstate_t *the_state(er_session_t *shared) {
  return shared ? er_session_get(shared, "safety") : NULL;
}

/* cached decision: 1 allowed, 0 refused (text copied to out), -1 none */
static int cache_get(sstate_t *st, const char *key, er_buf_t *out) {
  int rc = -1;
  const json_t *v;
  pthread_mutex_lock(&st->mu);
  v = json_object_get(st->cache, key);
  if (json_is_string(v)) {
    rc = json_string_length(v) == 0 ? 1 : 0;
    if (rc == 0 && out)
      er_buf_puts(out, json_string_value(v));
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static void cache_put(sstate_t *st, const char *key, const char *text) {
  pthread_mutex_lock(&st->mu);
  json_object_set_new(st->cache, key, json_string(text ? text : ""));
  pthread_mutex_unlock(&st->mu);
}

static const char *run_id(sstate_t *st) {
  return st && st->t ? json_string_value(er_tmpl_get(st->t, "run.id")) : NULL;
}

/* ---- guards -------------------------------------------------------------- */

/* Caches a decision d (1 allowed, 0 refused) for key; a refusal's text
 * (what a step refused later shows) goes into text. */
static void decided(sstate_t *st, const char *key, const char *shown, int d,
                    er_buf_t *why, er_buf_t *fix, er_buf_t *text) {
  if (d == 0)
    er_buf_printf(text,
                  "refused: %s is not a test target: %s\n  to allow it: %s",
                  shown, er_buf_cstr(why), er_buf_cstr(fix));
  cache_put(st, key, d ? "" : er_buf_cstr(text));
}

/* The end of a guard: a fresh decision d (1 allowed, 0 refused, -1 could
 * not tell, err says why) is explained and cached under key; a refusal
 * (fresh or cached, text holds it) makes the step fail. */
static int guard_outcome(er_exec_t *x, sstate_t *st, const char *key,
                         const char *shown, const char *what, int d, bool fresh,
                         er_buf_t *why, er_buf_t *fix, er_buf_t *text,
                         const er_err_t *err) {
  if (fresh) {
    if (d < 0) {
      er_buf_printf(x->detail, "%s: cannot check that %s is a test target: %s",
                    what, shown, err->msg);
      return ER_STEP_ERROR;
    }
    decided(st, key, shown, d, why, fix, text);
  }
  if (d == 0) {
    er_buf_printf(x->detail, "%s %s", what, er_buf_cstr(text));
    return ER_STEP_FATAL;
  }
  return ER_STEP_OK;
}

int er_safety_guard_redis(er_exec_t *x, er_redis_t *r, const char *what) {
  sstate_t *st = the_state(x->shared);
  char target[512], key[600];
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP),
           text = ER_BUF_INIT(WHY_CAP);
  er_err_t err = {0};
  bool claimed = false, fresh;
  int d, rc;

  if (!st)
    return ER_STEP_OK;
  er_safety_redis_target(er_redis_redacted(r), target, sizeof target);
  snprintf(key, sizeof key, "redis %s", target);
  d = cache_get(st, key, &text);
  fresh = d < 0;
  if (fresh) {
    d = redis_decide(x->env, st->env_path, run_id(st), r, x->deadline_ms,
                     &claimed, &why, &fix, &err);
    if (claimed)
      er_exec_log(x, "safety: claimed the empty database %s as a test target",
                  er_redis_redacted(r));
  }
  rc = guard_outcome(x, st, key, er_redis_redacted(r), what, d, fresh, &why,
                     &fix, &text, &err);
  er_buf_free(&why);
  er_buf_free(&fix);
  er_buf_free(&text);
  return rc;
}

int er_safety_guard_pg(er_exec_t *x, er_pg_t *pg, const char *what) {
  sstate_t *st = the_state(x->shared);
  char key[4200];
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP),
           text = ER_BUF_INIT(WHY_CAP);
  er_err_t err = {0};
  bool fresh;
  int d, rc;

  if (!st)
    return ER_STEP_OK;
  snprintf(key, sizeof key, "pg %s", er_pg_dsn_redacted(pg));
  d = cache_get(st, key, &text);
  fresh = d < 0;
  if (fresh)
    d = pg_decide(x->env, st->env_path, pg, x->deadline_ms, &why, &fix, &err);
  rc = guard_outcome(x, st, key, er_pg_dsn_redacted(pg), what, d, fresh, &why,
                     &fix, &text, &err);
  er_buf_free(&why);
  er_buf_free(&fix);
  er_buf_free(&text);
  return rc;
}

int er_safety_guard_kafka(er_exec_t *x, bool embedded, const char *group,
                          const char *const *topics, size_t nt) {
  sstate_t *st = the_state(x->shared);
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP);
  int rc = ER_STEP_OK;
  if (!st)
    return ER_STEP_OK;
  if (kafka_decide(x->env, st->env_path, embedded, group, topics, nt, &why,
                   &fix) < 0) {
    er_buf_printf(x->detail,
                  "kafka.reset refused: the Kafka cluster is not a test "
                  "target for it: %s\n  to allow it: %s",
                  er_buf_cstr(&why), er_buf_cstr(&fix));
    rc = ER_STEP_FATAL;
  }
  er_buf_free(&why);
  er_buf_free(&fix);
  return rc;
}

/* ---- the module ---------------------------------------------------------- */

static int mod_run_begin(const json_t *env, er_tmpl_t *t, er_session_t *shared,
                         er_err_t *err) {
  sstate_t *st = calloc(1, sizeof *st);
  (void)env;
  if (!st)
    return er_errf(err, ER_E_ENV, "out of memory");
  pthread_mutex_init(&st->mu, NULL);
  st->cache = json_object();
  st->t = t;
  st->env_path = er_session_get(shared, "env_path");
  if (!st->cache || er_session_put(shared, "safety", st, sstate_free) != 0) {
    sstate_free(st);
    return er_errf(err, ER_E_ENV, "out of memory");
  }
  return 0;
}

/* preflight: every destructive step of the plan */
typedef struct pf {
  const json_t *env;
  sstate_t *st;
  er_tmpl_t *ts; /* run names + the scenario's vars */
  er_buf_t list; /* refused steps */
  json_t *fixes; /* the distinct fixes, in order */
  json_t *seen;  /* target key -> true | [why, fix] */
  size_t refused;
  er_err_t err; /* a check that could not be made */
} pf_t;

/* s expanded where possible: a new string, or NULL (known at run time) */
static char *expand_known(er_tmpl_t *t, const char *s) {
  er_err_t e = {0};
  json_t *v;
  char *out = NULL;
  if (!s)
    return NULL;
  if (!strstr(s, "${"))
    return er_strdup(s);
  v = t ? er_tmpl_expand_str(t, s, &e) : NULL;
  if (json_is_string(v))
    out = er_strdup(json_string_value(v));
  json_decref(v);
  return out;
}

static void add_fix(pf_t *p, const char *fix) {
  size_t i;
  json_t *v;
  json_array_foreach(p->fixes, i, v) {
    if (!strcmp(json_string_value(v), fix))
      return;
  }
  json_array_append_new(p->fixes, json_string(fix));
}

static void refuse(pf_t *p, const er_scenario_t *s, int line, int col,
                   const char *action, const char *what, const char *target,
                   const char *why, const char *fix) {
  p->refused++;
  er_buf_printf(&p->list, "\n  %s:%d:%d: %s (%s) on %s: %s", s->file, line, col,
                action, what, target, why);
  add_fix(p, fix);
}

size_t er_safety_env_topics(const json_t *env, const char **out, size_t max) {
  const json_t *kc = json_object_get(env, "kafka");
  const json_t *arr = json_object_get(kc, "topics");
  size_t n = 0, i;
  json_t *v;
  if (!arr)
    arr = json_object_get(json_object_get(kc, "embedded"), "topics");
  json_array_foreach(arr, i, v) {
    const char *name = json_is_string(v)
                           ? json_string_value(v)
                           : json_string_value(json_object_get(v, "name"));
    if (name && n < max)
      out[n++] = name;
  }
  return n;
}

static void pf_visit(void *ud, const er_scenario_t *s, const char *section,
                     const char *path, int line, int col, int depth,
                     const er_action_t *a, const json_t *args) {
  pf_t *p = ud;
  char what[256], shown[4200], key[4300];
  const char *targ = NULL;
  char *url = NULL;
  er_buf_t why = ER_BUF_INIT(WHY_CAP), fix = ER_BUF_INIT(WHY_CAP),
           text = ER_BUF_INIT(WHY_CAP);
  er_safe_kind_t kind =
      er_safety_classify(a, args, s->dir, what, sizeof what, &targ);
  const json_t *seen;
  er_err_t e = {0};
  int d;
  (void)section;
  (void)path;
  (void)depth;

  if (kind == ER_SAFE_NONE || p->err.code)
    goto out;
  if (kind == ER_SAFE_KAFKA) {
    const char *topics[256];
    char *tv[256];
    size_t nt = 0;
    const json_t *ta = json_object_get(args, "topics");
    char *group =
        expand_known(p->ts, json_string_value(json_object_get(args, "group")));
    bool known = group != NULL;
    if (ta) {
      for (size_t i = 0; i < json_array_size(ta) && nt < 256; i++) {
        tv[nt] = expand_known(p->ts, json_string_value(json_array_get(ta, i)));
        if (!tv[nt])
          known = false;
        else
          topics[nt] = tv[nt], nt++;
      }
    } else {
      nt = er_safety_env_topics(p->env, topics, 256);
      for (size_t i = 0; i < nt; i++)
        tv[i] = NULL;
    }
    if (known &&
        kafka_decide(p->env, p->st->env_path, kafka_env_embedded(p->env), group,
                     topics, nt, &why, &fix) < 0) {
      snprintf(what, sizeof what, "offsets of group \"%s\"", group);
      refuse(p, s, line, col, a->name, what, "the Kafka cluster",
             er_buf_cstr(&why), er_buf_cstr(&fix));
    }
    free(group);
    for (size_t i = 0; i < nt; i++)
      if (ta)
        free(tv[i]);
    goto out;
  }
  if (!targ)
    targ = json_string_value(json_object_get(
        json_object_get(p->env, kind == ER_SAFE_REDIS ? "redis" : "postgres"),
        kind == ER_SAFE_REDIS ? "url" : "dsn"));
  url = expand_known(p->ts, targ);
  if (!url)
    goto out; /* known at run time: the step's own guard checks it */
  if (kind == ER_SAFE_REDIS) {
    char target[512];
    er_redis_redact(url, shown, sizeof shown);
    if (er_safety_redis_target(url, target, sizeof target) != 0)
      goto out; /* a bad URL: the step reports it */
    snprintf(key, sizeof key, "redis %s", target);
  } else {
    er_pg_redact_dsn(url, shown, sizeof shown);
    snprintf(key, sizeof key, "pg %s", shown);
  }
  seen = json_object_get(p->seen, key);
  if (seen) { /* decided for an earlier step */
    if (json_is_array(seen))
      refuse(p, s, line, col, a->name, what, shown,
             json_string_value(json_array_get(seen, 0)),
             json_string_value(json_array_get(seen, 1)));
    goto out;
  }
  if (kind == ER_SAFE_REDIS) {
    er_redis_t *r = er_redis_new(url, 0, &e);
    bool claimed = false;
    if (!r)
      goto out;
    d = redis_decide(p->env, p->st->env_path, run_id(p->st), r,
                     er_now_ms() + CHECK_MS, &claimed, &why, &fix, &e);
    er_redis_free(r);
  } else {
    er_pg_t *pg = er_pg_new(url, &e);
    if (!pg)
      goto out;
    d = pg_decide(p->env, p->st->env_path, pg, er_now_ms() + CHECK_MS, &why,
                  &fix, &e);
    er_pg_free(pg);
  }
  if (d < 0) {
    er_errf(&p->err, ER_E_ENV,
            "safety: cannot check that %s is a test target (for %s at "
            "%s:%d:%d): %s",
            shown, a->name, s->file, line, col, e.msg);
    goto out;
  }
  decided(p->st, key, shown, d, &why, &fix, &text);
  if (d == 0) {
    refuse(p, s, line, col, a->name, what, shown, er_buf_cstr(&why),
           er_buf_cstr(&fix));
    json_object_set_new(
        p->seen, key, json_pack("[ss]", er_buf_cstr(&why), er_buf_cstr(&fix)));
  } else {
    json_object_set_new(p->seen, key, json_true());
  }
out:
  free(url);
  er_buf_free(&why);
  er_buf_free(&fix);
  er_buf_free(&text);
}

/* a clone of the run's names with the scenario's vars set where they
 * expand (in file order; later ones may use earlier ones) */
static er_tmpl_t *scenario_names(er_tmpl_t *t, const er_scenario_t *s) {
  er_tmpl_t *ts = t ? er_tmpl_clone(t) : er_tmpl_new();
  const char *k;
  json_t *v;
  if (!ts)
    return NULL;
  json_object_foreach(s->vars, k, v) {
    er_err_t e = {0};
    json_t *x = er_tmpl_expand(ts, v, &e);
    if (x)
      er_tmpl_set(ts, k, x);
  }
  return ts;
}

static int mod_preflight(const json_t *env, er_session_t *shared,
                         er_err_t *err) {
  sstate_t *st = the_state(shared);
  const er_plan_t *plan = shared ? er_session_get(shared, "plan") : NULL;
  pf_t p;
  int rc = 0;

  if (!st || !plan)
    return 0;
  memset(&p, 0, sizeof p);
  p.env = env;
  p.st = st;
  er_buf_init(&p.list, 64 * 1024);
  p.fixes = json_array();
  p.seen = json_object();
  for (size_t i = 0; i < plan->n && !p.err.code; i++) {
    p.ts = scenario_names(st->t, plan->v[i]);
    er_safety_walk(plan->v[i], pf_visit, &p);
    er_tmpl_free(p.ts);
    p.ts = NULL;
  }
  if (p.err.code) {
    rc = er_errf(err, p.err.code, "%s", p.err.msg);
  } else if (p.refused) {
    er_buf_t msg = ER_BUF_INIT(96 * 1024);
    size_t i;
    json_t *v;
    er_buf_printf(&msg,
                  "safety: refused %zu destructive step(s): their targets are "
                  "not marked as test targets; no scenario ran and nothing "
                  "was sent:%s",
                  p.refused, er_buf_cstr(&p.list));
    json_array_foreach(p.fixes, i, v) {
      er_buf_printf(&msg, "\n  to allow it: %s", json_string_value(v));
    }
    if (msg.len < ER_ERRSTR - 1) {
      rc = er_errf(err, ER_E_ENV, "%s", er_buf_cstr(&msg));
    } else {
      /* too long for an er_err_t: the whole list goes to stderr */
      fprintf(stderr, "eventrig: %s\n", er_buf_cstr(&msg));
      rc = er_errf(err, ER_E_ENV,
                   "safety: refused %zu destructive step(s) (listed above)",
                   p.refused);
    }
    er_buf_free(&msg);
  }
  er_buf_free(&p.list);
  json_decref(p.fixes);
  json_decref(p.seen);
  return rc;
}

const er_module_t er_mod_safety = {
    .name = "safety",
    .run_begin = mod_run_begin,
    .preflight = mod_preflight,
};
