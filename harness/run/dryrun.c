/* dryrun.c: `eventrig run --dry-run` (runner.h): the resolved plan of each
 * scenario, every step the interlock guards (safety.h) marked with its
 * target and the decision as far as the environment alone can tell. Starts
 * nothing and contacts nothing: the environment is loaded and resolved with
 * placeholders for the names that only started things know (${kafka.bootstrap},
 * ${proxy.NAME.*}). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/http.h"
#include "adapters/pg.h"
#include "adapters/redis.h"
#include "base/jsonbig.h"
#include "lang/env.h"
#include "lang/jsonx.h"
#include "lang/scenario.h"
#include "lang/template.h"
#include "run/exec.h"
#include "run/runner.h"
#include "run/safety.h"
#include "run/schedule.h"

#define ARGS_SHOWN 400 /* bytes of a step's arguments shown */

typedef struct dctx {
  const er_run_opts_t *o;
  const json_t *env;
  er_tmpl_t *ts;   /* run names + the scenario's vars */
  er_tmpl_t *base; /* run names only (for the steps of step files) */
  const char *section;
  size_t destructive, refused; /* writing steps; refused by the env */
  size_t reading;              /* steps that may only read elsewhere */
  size_t by_server;            /* of those, decided by the server */
} dctx_t;

static bool keep_raw(const char *s) {
  return strstr(s, "${uuid") || strstr(s, "${now") || strstr(s, "${event_id") ||
         strstr(s, "${sha256");
}

/* s with each ${...} whose value is known now replaced by it (as text);
 * the others (captures, ${uuid}, ...) kept as written. New reference. */
static json_t *expand_partial(er_tmpl_t *t, const char *s) {
  er_buf_t b = ER_BUF_INIT(256 * 1024);
  const char *p = s;
  json_t *out;
  while (*p) {
    const char *q;
    if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
      er_buf_append(&b, p, 3);
      p += 3;
      continue;
    }
    if (p[0] != '$' || p[1] != '{' || !(q = strchr(p, '}'))) {
      er_buf_append(&b, p, 1);
      p++;
      continue;
    }
    {
      size_t n = (size_t)(q - p) + 1;
      char *expr = strndup(p, n);
      er_err_t e = {0};
      json_t *v =
          expr && !keep_raw(expr) ? er_tmpl_expand_str(t, expr, &e) : NULL;
      if (json_is_string(v)) {
        er_buf_puts(&b, json_string_value(v));
      } else if (v) {
        char *j = er_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        er_buf_puts(&b, j ? j : "?");
        free(j);
      } else {
        er_buf_append(&b, p, n);
      }
      json_decref(v);
      free(expr);
      p = q + 1;
    }
  }
  out = json_string(er_buf_cstr(&b));
  er_buf_free(&b);
  return out;
}

/* v with strings expanded where the names are known; others kept as
 * written. New reference (NULL only when memory ran out). */
static json_t *expand_known_json(er_tmpl_t *t, const json_t *v) {
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    er_err_t e = {0};
    json_t *x;
    if (!strstr(s, "${"))
      return json_incref((json_t *)v);
    /* a single known expression keeps its JSON type */
    x = keep_raw(s) ? NULL : er_tmpl_expand_str(t, s, &e);
    if (!x)
      x = expand_partial(t, s);
    return x ? x : json_incref((json_t *)v);
  }
  if (json_is_array(v)) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < json_array_size(v); i++)
      json_array_append_new(a, expand_known_json(t, json_array_get(v, i)));
    return a;
  }
  if (json_is_object(v)) {
    json_t *o = json_object();
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
      json_t *kx = strstr(k, "${") ? expand_partial(t, k) : NULL;
      json_object_set_new(o, kx ? json_string_value(kx) : k,
                          expand_known_json(t, x));
      json_decref(kx);
    }
    return o;
  }
  return json_incref((json_t *)v);
}

static void redact_key(json_t *o, const char *key, bool pg) {
  const char *s = json_string_value(json_object_get(o, key));
  char buf[4096];
  if (!s)
    return;
  if (pg)
    er_pg_redact_dsn(s, buf, sizeof buf);
  else if (!strncmp(s, "redis", 5) || !strncmp(s, "unix", 4))
    er_redis_redact(s, buf, sizeof buf);
  else
    er_http_redact_url(s, buf, sizeof buf);
  json_object_set_new(o, key, json_string(buf));
}

/* values of secret-looking headers (er_http_header_is_secret) as "***",
 * at any depth (an http step's "headers", a wrapped check's) */
static void redact_headers(json_t *v) {
  const char *k;
  json_t *x;
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      redact_headers(json_array_get(v, i));
    return;
  }
  if (!json_is_object(v))
    return;
  json_object_foreach(v, k, x) {
    if (!strcmp(k, "headers") && json_is_object(x)) {
      const char *hk;
      json_t *hv;
      json_object_foreach(x, hk, hv) {
        if (er_http_header_is_secret(hk))
          json_object_set_new(x, hk, json_string("***"));
      }
    } else {
      redact_headers(x);
    }
  }
}

/* what is shown of a step's arguments: nested steps and wrapped checks
 * are printed as children, so they are left out here */
static json_t *shown_args(dctx_t *c, const er_action_t *a, const json_t *args) {
  json_t *x = expand_known_json(c->ts, args);
  if (!json_is_object(x))
    return x;
  for (const er_keyspec_t *ks = a->keys; ks && ks->name; ks++)
    if ((ks->types & ER_T_STEPS) && json_object_get(x, ks->name)) {
      size_t n = json_array_size(json_object_get(x, ks->name));
      char buf[48];
      snprintf(buf, sizeof buf, "<%zu step(s) below>", n);
      json_object_set_new(x, ks->name, json_string(buf));
    } else if ((ks->types & ER_T_CHECK) &&
               json_is_object(json_object_get(x, ks->name))) {
      /* await's until: named, not shown (its URL and headers unredacted) */
      const char *ik;
      json_t *iv;
      char buf[96] = "<a check>";
      json_object_foreach(json_object_get(x, ks->name), ik, iv) {
        if (er_action_find(ik))
          snprintf(buf, sizeof buf, "<a check: %s>", ik);
      }
      json_object_set_new(x, ks->name, json_string(buf));
    }
  if (a->wraps_check) {
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(x, tmp, k, v) {
      bool own = false;
      for (const er_keyspec_t *ks = a->keys; ks && ks->name; ks++)
        if (!strcmp(ks->name, k))
          own = true;
      if (!own && er_action_find(k))
        json_object_del(x, k);
    }
  }
  redact_key(x, "url", false);
  redact_key(x, "dsn", true);
  redact_headers(x);
  return x;
}

/* kafka.produce / kafka.reset: the names against the prefixes */
static int kafka_status(dctx_t *c, const er_action_t *a, const json_t *xa,
                        char *status, size_t statussz) {
  const char *topics[256];
  size_t nt = 0;
  bool produce = !strcmp(a->name, "kafka.produce");
  const json_t *ta = json_object_get(xa, "topics");
  const char *group =
      produce ? NULL : json_string_value(json_object_get(xa, "group"));
  const char *topic = json_string_value(json_object_get(xa, "topic"));
  if (produce && topic)
    topics[nt++] = topic;
  else if (ta)
    for (size_t i = 0; i < json_array_size(ta) && nt < 256; i++)
      if (json_string_value(json_array_get(ta, i)))
        topics[nt++] = json_string_value(json_array_get(ta, i));
  if (!produce && !ta)
    nt = er_safety_env_topics(c->env, topics, 256);
  for (size_t i = 0; i < nt; i++)
    if (strstr(topics[i], "${"))
      group = "${";
  if (group && strstr(group, "${")) {
    snprintf(status, statussz,
             "checked at run time (the names are known only then)");
    return 0;
  }
  return er_safety_static(c->env, ER_SAFE_KAFKA, ER_SAFE_WRITE, NULL, NULL,
                          group, topics, nt, status, statussz);
}

static void print_decision(dctx_t *c, const er_action_t *a, const json_t *args,
                           er_safe_kind_t kind, er_safe_mode_t mode,
                           const char *what, const char *targ,
                           const char *indent) {
  char status[1024], shown[4096];
  const char *label = mode == ER_SAFE_WRITE ? "destructive: " : "";
  const char *cmd =
      json_string_value(json_array_get(json_object_get(args, "command"), 0));
  json_t *x = NULL;
  int d;

  if (mode == ER_SAFE_WRITE)
    c->destructive++;
  else
    c->reading++;
  if (kind == ER_SAFE_KAFKA) {
    const char *bs = json_string_value(
        json_object_get(json_object_get(c->env, "kafka"), "bootstrap"));
    d = kafka_status(c, a, args, status, sizeof status);
    fprintf(c->o->out, "%s  ! %s%s (%s) on Kafka %s: %s\n", indent, label,
            a->name, what, bs ? bs : "the embedded broker", status);
    if (d < 0)
      c->refused++;
    return;
  }
  if (!targ)
    targ = json_string_value(json_object_get(
        json_object_get(c->env, kind == ER_SAFE_REDIS ? "redis" : "postgres"),
        kind == ER_SAFE_REDIS ? "url" : "dsn"));
  if (targ) {
    json_t *raw = json_string(targ);
    x = expand_known_json(c->ts, raw);
    json_decref(raw);
  }
  if (!json_is_string(x)) {
    fprintf(c->o->out, "%s  ! %s%s (%s): no %s target\n", indent, label,
            a->name, what, kind == ER_SAFE_REDIS ? "Redis" : "Postgres");
    json_decref(x);
    return;
  }
  if (kind == ER_SAFE_REDIS)
    er_redis_redact(json_string_value(x), shown, sizeof shown);
  else
    er_pg_redact_dsn(json_string_value(x), shown, sizeof shown);
  if (strstr(json_string_value(x), "${")) {
    snprintf(status, sizeof status,
             "checked at run time (the target is known only then)");
    d = 0;
  } else if (mode == ER_SAFE_READ_CMD && (!cmd || strstr(cmd, "${"))) {
    snprintf(status, sizeof status,
             "checked at run time (the command is known only then)");
    d = 0;
  } else {
    d = er_safety_static(c->env, kind, mode, json_string_value(x), cmd, NULL,
                         NULL, 0, status, sizeof status);
  }
  if (d < 0)
    c->refused++;
  if (mode != ER_SAFE_WRITE && strncmp(status, "allowed (", 9) != 0)
    c->by_server++;
  fprintf(c->o->out, "%s  ! %s%s (%s) on %s: %s\n", indent, label, a->name,
          what, shown, status);
  json_decref(x);
}

static void visit(void *ud, const er_scenario_t *s, const er_safety_at_t *at,
                  const er_action_t *a, const json_t *args) {
  dctx_t *c = ud;
  char indent[64], what[256];
  const char *targ = NULL;
  json_t *x;
  char *txt;
  er_safe_kind_t kind;
  er_safe_mode_t mode;
  int n = 4 + 2 * (at->depth < 20 ? at->depth : 20);
  /* inside a step file the scenario's vars are not its names */
  er_tmpl_t *saved = c->ts;
  (void)s;
  if (at->in_call)
    c->ts = c->base;

  if (c->section != at->section) {
    fprintf(c->o->out, "  %s:\n", at->section);
    c->section = at->section;
  }
  memset(indent, ' ', (size_t)n);
  indent[n] = '\0';
  x = shown_args(c, a, args);
  txt = x ? er_json_brief(x, ARGS_SHOWN) : NULL;
  if (txt)
    er_secret_redact(txt);
  fprintf(c->o->out, "%s- %s %s  [%s:%d:%d]\n", indent, a->name,
          txt ? txt : "?", at->file, at->line, at->col);
  free(txt);
  json_decref(x);
  /* classified on the expanded arguments, so `what` shows known values */
  x = expand_known_json(c->ts, args);
  kind = er_safety_classify(a, x ? x : args, at->dir, what, sizeof what, &targ,
                            &mode);
  if (kind != ER_SAFE_NONE)
    print_decision(c, a, x ? x : args, kind, mode, what, targ, indent);
  json_decref(x);
  c->ts = saved;
}

static er_tmpl_t *scenario_names(er_tmpl_t *t, const er_scenario_t *s) {
  er_tmpl_t *ts = er_tmpl_clone(t);
  const char *k;
  json_t *v;
  if (!ts)
    return NULL;
  json_object_foreach(s->vars, k, v) {
    json_t *x = expand_known_json(ts, v);
    if (x)
      er_tmpl_set(ts, k, x);
  }
  return ts;
}

int er_dry_run(const er_run_opts_t *o, const er_plan_t *plan, er_tmpl_t *t) {
  er_diags_t diags = {0};
  er_env_t *e = er_env_load(o->env_path, &diags);
  dctx_t c;
  int code = 0;

  memset(&c, 0, sizeof c);
  c.o = o;
  if (!e) {
    er_diags_print(&diags, o->err, false);
    code = 2;
    goto out;
  }
  if (er_env_set_placeholders(er_env_raw(e), t) != 0 ||
      er_env_resolve(e, t, &diags) != 0) {
    er_diags_print(&diags, o->err, false);
    code = 2;
    goto out;
  }
  c.env = er_env_json(e);
  c.base = t;
  fprintf(o->out,
          "dry run: %zu scenario(s), environment %s; nothing is started or "
          "contacted\n",
          plan->n, o->env_path ? o->env_path : "(none)");
  for (size_t i = 0; i < plan->n; i++) {
    const er_scenario_t *s = plan->v[i];
    fprintf(o->out, "\nscenario \"%s\" (%s)\n", s->name, s->file);
    {
      char why[128];
      bool alone = er_schedule_exclusive(s, why, sizeof why);
      fprintf(o->out, "  under -j: %s%s%s%s\n",
              alone ? "runs alone" : "may run with others", why[0] ? " (" : "",
              why, why[0] ? ")" : "");
    }
    c.ts = scenario_names(t, s);
    c.section = NULL;
    if (c.ts)
      er_safety_walk(s, visit, &c);
    er_tmpl_free(c.ts);
    c.ts = NULL;
  }
  fprintf(o->out,
          "\n%zu destructive step(s), %zu refused by the environment as it "
          "stands; %zu step(s) that may only read where the target is not a "
          "test target, %zu of them left to the server (COMMAND INFO, "
          "read-only transactions)\n",
          c.destructive, c.refused, c.reading, c.by_server);
out:
  er_tmpl_set_env_vars(t, NULL);
  er_env_free(e);
  er_diags_free(&diags);
  return code;
}
