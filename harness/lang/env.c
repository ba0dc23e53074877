/* env.c: the environment file (see env.h).
 *
 * Loading checks the structure with the shared key-spec validator
 * (er_validate_keys), then what a key spec cannot say (ports and service
 * names unique, commands non-empty arrays of strings, one kind of
 * readiness, ${...} syntax) with positions from jpos.h. Resolution walks
 * each section and expands its strings one by one, so that a bad
 * reference is reported at its own line:col. */
#include "lang/env.h"
#include "lang/jsonx.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/jsonbig.h"
#include "base/redact.h"
#include "lang/doc.h"
#include "lang/jpos.h"
#include "lang/validate.h"

#define ENV_MAX_BYTES (4u * 1024u * 1024u)
#define PORT_TRIES 20
#define MAX_INSTANCES 16

struct er_env {
  char *file;         /* as given, for messages */
  char *text;         /* the file's text (NULL without a file) */
  er_jpos_t *pos;     /* positions in text (may be NULL) */
  char *base_dir;     /* absolute */
  json_t *raw;        /* as loaded */
  json_t *ports;      /* {name: port} */
  json_t *vars;       /* expanded vars, consulted by ${env.NAME} */
  json_t *resolved;   /* NULL until er_env_resolve succeeds */
  char *fixtures;     /* the fixtures root, absolute, or NULL */
  bool resolve_tried; /* er_env_resolve is called once */
};

/* ---- key spec ---------------------------------------------------------- */

/* test_target: what makes a server a test target that steps may write to
 * (elsewhere they may only read; safety.h checks them) */
static const er_keyspec_t k_redis_target[] = {
    {"allow", ER_T_ARRAY, false, NULL, NULL}, /* "host:port/db" globs */
    {"marker", ER_T_STRING, false, NULL, NULL},
    {"claim_empty", ER_T_BOOL, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t k_redis[] = {
    {"url", ER_T_STRING, true, NULL, NULL},
    {"allow_flush", ER_T_BOOL, false, NULL, NULL},
    {"test_target", ER_T_OBJECT, false, k_redis_target, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t k_pg_target[] = {
    {"databases", ER_T_ARRAY, false, NULL, NULL}, /* name globs */
    {"marker_table", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t k_postgres[] = {
    {"dsn", ER_T_STRING, true, NULL, NULL},
    {"test_target", ER_T_OBJECT, false, k_pg_target, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t k_state_metrics[] = {
    {"urls", ER_T_ARRAY, true, NULL, NULL}, /* Prometheus text endpoints */
    {"exec_aborted", ER_T_STRING, false, NULL, NULL}, /* counter names */
    {"processed", ER_T_STRING, false, NULL, NULL},
    {"duplicates", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

/* the service's output events read back by failure diagnostics */
static const er_keyspec_t k_state_assignments[] = {
    {"topic", ER_T_STRING, true, NULL, NULL},
    {"slot", ER_T_STRING, true, NULL, NULL}, /* JSON pointers */
    {"item", ER_T_STRING, true, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t k_state_completion[] = {
    {"topic", ER_T_STRING, true, NULL, NULL},
    {"items", ER_T_STRING, true, NULL, NULL},     /* JSON pointer */
    {"expected", ER_T_STRING, false, NULL, NULL}, /* SQL, $1 = message key */
    {NULL, 0, false, NULL, NULL},
};

/* "state": where stale state hides (audit, diagnostics).
 * idempotency_key is a template expanded per produced event (with
 * ${event...}), so it is kept unexpanded in the resolved JSON. */
static const er_keyspec_t k_state[] = {
    {"idempotency_keys", ER_T_ARRAY, false, NULL, NULL}, /* SCAN patterns */
    {"idempotency_key", ER_T_STRING, false, NULL, NULL},
    {"consumer_groups", ER_T_OBJECT, false, NULL, NULL}, /* group: [topics] */
    {"stale", ER_T_STRING, false, NULL, NULL},           /* warn | fail */
    /* counters sampled for failure diagnostics (diag.h) */
    {"metrics", ER_T_OBJECT, false, k_state_metrics, NULL},
    {"assignments", ER_T_OBJECT, false, k_state_assignments, NULL},
    {"completion", ER_T_OBJECT, false, k_state_completion, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t k_ready[] = {
    {"tcp", ER_T_STRING, false, NULL, NULL},
    {"http", ER_T_STRING, false, NULL, NULL},
    {"command", ER_T_ARRAY, false, NULL, NULL},
    {"within", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t k_service[] = {
    {"name", ER_T_STRING, true, NULL, NULL},
    {"command", ER_T_ARRAY, true, NULL, NULL},
    {"env", ER_T_OBJECT, false, NULL, NULL},
    {"cwd", ER_T_STRING, false, NULL, NULL},
    {"ready", ER_T_OBJECT, false, k_ready, NULL},
    {"stop_timeout", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"log", ER_T_STRING, false, NULL, NULL},
    {"instances", ER_T_INT, false, NULL, NULL},
    {"port_per_instance", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t k_proxy[] = {
    {"name", ER_T_STRING, true, NULL, NULL},
    {"listen", ER_T_INT, false, NULL, NULL},
    {"upstream", ER_T_STRING, true, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t k_env[] = {
    {"ports", ER_T_ARRAY, false, NULL, NULL},
    {"vars", ER_T_OBJECT, false, NULL, NULL},
    {"redis", ER_T_OBJECT, false, k_redis, NULL},
    {"postgres", ER_T_OBJECT, false, k_postgres, NULL},
    {"http", ER_T_OBJECT, false, NULL, NULL},
    {"kafka", ER_T_OBJECT, false, NULL, NULL},
    {"services", ER_T_ARRAY, false, NULL, k_service},
    {"proxies", ER_T_ARRAY, false, NULL, k_proxy}, /* act_fault.c */
    {"state", ER_T_OBJECT, false, k_state, NULL},
    {"secrets", ER_T_ARRAY, false, NULL, NULL}, /* names of secret vars */
    {"secret_headers", ER_T_ARRAY, false, NULL, NULL}, /* header names */
    {"fixtures", ER_T_STRING, false, NULL, NULL}, /* fixtures root folder */
    {NULL, 0, false, NULL, NULL},
};

/* ---- diagnostics ------------------------------------------------------- */

typedef er_diag_src_t ctx_t;

/* A whole-file problem (no position). */
static void diag_add(er_diags_t *d, const char *file, int line, int col,
                     const char *msg) {
  er_diags_addf(d, file, line, col, ER_DIAG_ERROR, "%s", msg);
}

/* ---- structural checks a key spec cannot express ----------------------- */

/* Names usable in ${port.NAME} / ${env.NAME}. */
static bool ref_name_ok(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
      return false;
  return true;
}

/* Service names become file names (<name>.log). */
static bool service_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64 || s[0] == '.')
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
      return false;
  return true;
}

/* ${...} syntax of every string under v. */
static void check_syntax(ctx_t *c, const json_t *v, const char *ptr) {
  if (json_is_string(v)) {
    char msg[256];
    size_t off = 0;
    if (er_tmpl_scan(json_string_value(v), NULL, NULL, msg, sizeof msg, &off) !=
        0)
      er_diag_err(c, ptr, false, "%s (at character %zu of the string)", msg,
                  off + 1);
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      char *cp = er_jpos_child_index(ptr, i);
      check_syntax(c, json_array_get(v, i), cp ? cp : ptr);
      free(cp);
    }
  } else if (json_is_object(v)) {
    const char *k;
    json_t *el;
    json_object_foreach((json_t *)v, k, el) {
      char *cp = er_jpos_child(ptr, k);
      check_syntax(c, el, cp ? cp : ptr);
      free(cp);
    }
  }
}

static void check_ports(ctx_t *c, const json_t *ports) {
  if (!json_is_array(ports))
    return;
  for (size_t i = 0; i < json_array_size(ports); i++) {
    const json_t *p = json_array_get(ports, i);
    char *cp = er_jpos_child_index("/ports", i);
    const char *ptr = cp ? cp : "/ports";
    if (!json_is_string(p)) {
      er_diag_err(c, ptr, false,
                  "each element of 'ports' must be a string, not %s",
                  er_json_type_noun(p));
    } else if (!ref_name_ok(json_string_value(p))) {
      er_diag_err(c, ptr, false,
                  "port name '%s' may hold only letters, digits, '_' and '-'",
                  json_string_value(p));
    } else {
      for (size_t j = 0; j < i; j++) {
        const json_t *q = json_array_get(ports, j);
        if (json_is_string(q) &&
            strcmp(json_string_value(q), json_string_value(p)) == 0) {
          er_diag_err(c, ptr, false, "port '%s' is listed twice",
                      json_string_value(p));
          break;
        }
      }
    }
    free(cp);
  }
}

static void check_vars(ctx_t *c, const json_t *vars) {
  const char *k;
  json_t *v;
  if (!json_is_object(vars))
    return;
  json_object_foreach((json_t *)vars, k, v) {
    char *cp = er_jpos_child("/vars", k);
    if (!ref_name_ok(k))
      er_diag_err(c, cp ? cp : "/vars", true,
                  "var name '%s' may hold only letters, digits, '_' and '-'",
                  k);
    free(cp);
  }
}

/* "secrets": names of vars of the file or of the process environment. */
static void check_secrets(ctx_t *c, const json_t *names, const json_t *vars) {
  if (!json_is_array(names))
    return; /* reported by the key spec */
  for (size_t i = 0; i < json_array_size(names); i++) {
    const json_t *n = json_array_get(names, i);
    char *cp = er_jpos_child_index("/secrets", i);
    const char *ptr = cp ? cp : "/secrets";
    if (!json_is_string(n))
      er_diag_err(
          c, ptr, false,
          "each element of 'secrets' must be a var name (a string), not %s",
          er_json_type_noun(n));
    else if (!json_object_get(vars, json_string_value(n)) &&
             !getenv(json_string_value(n)))
      er_diag_err(c, ptr, false,
                  "secret '%s' is neither a var of this file nor set in the "
                  "environment",
                  json_string_value(n));
    free(cp);
  }
}

/* Records the values of the "secrets" vars and every password and secret
 * Kafka property of the resolved environment (redact.h). */
static void record_secrets(er_env_t *e, json_t *resolved, er_diags_t *diags) {
  const json_t *names = json_object_get(e->raw, "secrets");
  int rc = er_secrets_from_env(resolved);
  for (size_t i = 0; i < json_array_size(names); i++) {
    const char *n = json_string_value(json_array_get(names, i));
    const json_t *v = n ? json_object_get(e->vars, n) : NULL;
    if (json_is_string(v)) {
      rc |= er_secret_add(json_string_value(v));
    } else if (v) {
      char *d = er_json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      rc |= d ? er_secret_add(d) : -1;
      free(d);
    } else if (n && getenv(n)) {
      rc |= er_secret_add(getenv(n));
    }
  }
  if (rc)
    diag_add(diags, e->file, 0, 0, "out of memory recording secrets");
}

/* A command: non-empty array of strings. what names it ("command"). */
static void check_command(ctx_t *c, const json_t *cmd, const char *ptr,
                          const char *what) {
  if (!json_is_array(cmd))
    return; /* reported by the key spec */
  if (json_array_size(cmd) == 0) {
    er_diag_err(c, ptr, false,
                "'%s' must not be empty: give the program and its arguments",
                what);
    return;
  }
  for (size_t i = 0; i < json_array_size(cmd); i++) {
    const json_t *a = json_array_get(cmd, i);
    if (!json_is_string(a)) {
      char *cp = er_jpos_child_index(ptr, i);
      er_diag_err(c, cp ? cp : ptr, false,
                  "each element of '%s' must be a string, not %s", what,
                  er_json_type_noun(a));
      free(cp);
    }
  }
  if (json_is_string(json_array_get(cmd, 0)) &&
      json_string_value(json_array_get(cmd, 0))[0] == '\0')
    er_diag_err(c, ptr, false, "the program of '%s' is an empty string", what);
}

/* "host:port" with a literal numeric port (templated values are checked
 * when they are used). */
static void check_hostport(ctx_t *c, const char *s, const char *ptr) {
  const char *colon = strrchr(s, ':');
  char *end = NULL;
  long port;
  if (strstr(s, "${"))
    return;
  if (!colon || colon == s) {
    er_diag_err(c, ptr, false, "'tcp' must be host:port, not '%s'", s);
    return;
  }
  errno = 0;
  port = strtol(colon + 1, &end, 10);
  if (errno || !end || *end || end == colon + 1 || port < 1 || port > 65535)
    er_diag_err(c, ptr, false, "'tcp': '%s' has no valid port (1-65535)", s);
}

static void check_service(ctx_t *c, const json_t *svc, const char *ptr,
                          const json_t *all, size_t idx) {
  const json_t *name = json_object_get(svc, "name");
  const json_t *env = json_object_get(svc, "env");
  const json_t *ready = json_object_get(svc, "ready");
  char *p = NULL;

  if (json_is_string(name)) {
    const char *n = json_string_value(name);
    p = er_jpos_child(ptr, "name");
    if (!service_name_ok(n))
      er_diag_err(
          c, p ? p : ptr, false,
          "service name '%s' may hold only letters, digits, '_', '-' and "
          "'.' (64 at most, not starting with '.'): it names its log file",
          n);
    for (size_t j = 0; j < idx; j++) {
      const json_t *o = json_object_get(json_array_get(all, j), "name");
      if (json_is_string(o) && strcmp(json_string_value(o), n) == 0) {
        char *op = er_jpos_child_index("/services", j);
        char *onp = op ? er_jpos_child(op, "name") : NULL;
        int line = 0, col = 0;
        er_jpos_find(c->pos, onp ? onp : "/services", false, &line, &col);
        er_diag_err(c, p ? p : ptr, false,
                    "duplicate service name '%s' (first used at line %d)", n,
                    line);
        free(onp);
        free(op);
        break;
      }
    }
    free(p);
    p = NULL;
  }
  p = er_jpos_child(ptr, "command");
  check_command(c, json_object_get(svc, "command"), p ? p : ptr, "command");
  free(p);
  p = NULL;
  if (json_is_object(env)) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)env, k, v) {
      char *ep = er_jpos_child(ptr, "env");
      char *kp = ep ? er_jpos_child(ep, k) : NULL;
      if (!json_is_string(v))
        er_diag_err(c, kp ? kp : ptr, false,
                    "environment variable '%s' must be a string, not %s", k,
                    er_json_type_noun(v));
      else if (!*k || strchr(k, '='))
        er_diag_err(c, kp ? kp : ptr, true,
                    "bad environment variable name '%s'", k);
      free(kp);
      free(ep);
    }
  }
  if (json_is_object(ready)) {
    static const char *const kinds[] = {"tcp", "http", "command"};
    int nk = 0;
    char *rp = er_jpos_child(ptr, "ready");
    const char *rptr = rp ? rp : ptr;
    for (size_t i = 0; i < 3; i++)
      if (json_object_get(ready, kinds[i]))
        nk++;
    if (nk == 0)
      er_diag_err(c, rptr, false,
                  "'ready' needs one of 'tcp', 'http' or 'command' (with "
                  "'within')");
    else if (nk > 1)
      er_diag_err(c, rptr, false,
                  "'ready' takes only one of 'tcp', 'http' or 'command'");
    if (json_is_string(json_object_get(ready, "tcp"))) {
      char *tp = er_jpos_child(rptr, "tcp");
      check_hostport(c, json_string_value(json_object_get(ready, "tcp")),
                     tp ? tp : rptr);
      free(tp);
    }
    {
      char *cp = er_jpos_child(rptr, "command");
      check_command(c, json_object_get(ready, "command"), cp ? cp : rptr,
                    "command");
      free(cp);
    }
    free(rp);
  }
}

/* ---- instances ----------------------------------------------------------- */

/* "instances" of a service: 0 when it declares none (or an unusable
 * value, reported by check_instances). */
static int instances_of(const json_t *svc) {
  const json_t *n = json_object_get(svc, "instances");
  if (!json_is_integer(n) || json_integer_value(n) < 1 ||
      json_integer_value(n) > MAX_INSTANCES)
    return 0;
  return (int)json_integer_value(n);
}

typedef struct inst_scan {
  bool uses_instance; /* some ${instance...} */
  bool bare;          /* ${instance} or ${instance:-...} */
  bool port;          /* ${instance.port...} */
} inst_scan_t;

static void inst_scan_cb(void *ud, const char *root, size_t off) {
  inst_scan_t *sc = ud;
  (void)off;
  if (strcmp(root, "instance") == 0)
    sc->uses_instance = true;
}

static void inst_scan(const json_t *v, inst_scan_t *sc) {
  if (json_is_string(v)) {
    const char *str = json_string_value(v);
    char msg[64];
    size_t bad = 0;
    if (!strstr(str, "${"))
      return;
    er_tmpl_scan(str, inst_scan_cb, sc, msg, sizeof msg, &bad);
    if (strstr(str, "${instance}") || strstr(str, "${instance:-"))
      sc->bare = true;
    if (strstr(str, "${instance.port"))
      sc->port = true;
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      inst_scan(json_array_get(v, i), sc);
  } else if (json_is_object(v)) {
    const char *k;
    json_t *el;
    json_object_foreach((json_t *)v, k, el) {
      json_t *ks = json_string(k);
      inst_scan(ks, sc);
      json_decref(ks);
      inst_scan(el, sc);
    }
  }
}

/* instances, port_per_instance and the ${instance...} names a service
 * uses. */
static void check_instances(ctx_t *c, const json_t *svc, const char *ptr,
                            const json_t *ports) {
  const json_t *n = json_object_get(svc, "instances");
  const json_t *ppi = json_object_get(svc, "port_per_instance");
  const json_t *name = json_object_get(svc, "name");
  inst_scan_t sc = {false, false, false};
  char *p = NULL;

  inst_scan(svc, &sc);
  if (n && json_is_integer(n)) {
    p = er_jpos_child(ptr, "instances");
    if (json_integer_value(n) < 1 || json_integer_value(n) > MAX_INSTANCES)
      er_diag_err(c, p ? p : ptr, false, "'instances' must be between 1 and %d",
                  MAX_INSTANCES);
    else if (json_is_string(name) && strlen(json_string_value(name)) + 3 > 64)
      er_diag_err(
          c, p ? p : ptr, false,
          "service name '%s' is too long for instances (NAME-N must fit "
          "in 64 characters)",
          json_string_value(name));
    free(p);
    p = NULL;
  }
  if (json_is_string(ppi)) {
    const char *pn = json_string_value(ppi);
    p = er_jpos_child(ptr, "port_per_instance");
    if (!n)
      er_diag_err(
          c, p ? p : ptr, false,
          "'port_per_instance' needs 'instances' (one port per instance)");
    else if (!ref_name_ok(pn))
      er_diag_err(c, p ? p : ptr, false,
                  "port name '%s' may hold only letters, digits, '_' and '-'",
                  pn);
    else {
      /* NAME-1..NAME-N must not be names of "ports" */
      for (size_t i = 0; json_is_array(ports) && i < json_array_size(ports);
           i++) {
        const char *q = json_string_value(json_array_get(ports, i));
        size_t pl = strlen(pn);
        char *end = NULL;
        long k;
        if (!q || strncmp(q, pn, pl) != 0 || q[pl] != '-')
          continue;
        k = strtol(q + pl + 1, &end, 10);
        if (end && !*end && k >= 1 && k <= instances_of(svc)) {
          er_diag_err(
              c, p ? p : ptr, false,
              "'port_per_instance' makes port '%s', which 'ports' lists "
              "too",
              q);
          break;
        }
      }
    }
    free(p);
    p = NULL;
  }
  if (!n && sc.uses_instance)
    er_diag_err(c, ptr, false,
                "service '%s' uses ${instance...} but declares no 'instances'",
                json_is_string(name) ? json_string_value(name) : "?");
  if (n && sc.bare)
    er_diag_err(c, ptr, false,
                "service '%s': write ${instance.index} (1, 2, ...), "
                "${instance.name} or ${instance.port}, not ${instance}",
                json_is_string(name) ? json_string_value(name) : "?");
  if (n && sc.port && !ppi)
    er_diag_err(c, ptr, false,
                "service '%s' uses ${instance.port} but declares no "
                "'port_per_instance'",
                json_is_string(name) ? json_string_value(name) : "?");
}

/* What a service declared at index i becomes: NAME, or NAME-1..NAME-N
 * (and the group NAME). Adds "name" strings to out. */
static void final_names(const json_t *svc, json_t *out) {
  const json_t *name = json_object_get(svc, "name");
  int n = instances_of(svc);
  if (!json_is_string(name))
    return;
  json_array_append_new(out, json_string(json_string_value(name)));
  for (int k = 1; k <= n; k++) {
    char buf[96];
    snprintf(buf, sizeof buf, "%s-%d", json_string_value(name), k);
    json_array_append_new(out, json_string(buf));
  }
}

/* Instance names (and groups) must not collide with other services'
 * names; per-instance ports not with each other. */
static void check_instance_names(ctx_t *c, const json_t *svcs) {
  json_t *seen = json_object(); /* name -> index of the service */
  json_t *pseen = json_object();
  if (!seen || !pseen)
    goto out;
  for (size_t i = 0; i < json_array_size(svcs); i++) {
    const json_t *svc = json_array_get(svcs, i);
    const json_t *ppi = json_object_get(svc, "port_per_instance");
    json_t *names = json_array();
    char *cp = er_jpos_child_index("/services", i);
    char *np = cp ? er_jpos_child(cp, "name") : NULL;
    if (!json_is_object(svc) || !names) {
      json_decref(names);
      free(np);
      free(cp);
      continue;
    }
    final_names(svc, names);
    for (size_t k = 0; k < json_array_size(names); k++) {
      const char *nm = json_string_value(json_array_get(names, k));
      const json_t *prev = json_object_get(seen, nm);
      if (prev && (size_t)json_integer_value(prev) != i) {
        const json_t *po =
            json_array_get(svcs, (size_t)json_integer_value(prev));
        const char *pname = json_string_value(json_object_get(po, "name"));
        if (k == 0 && pname && strcmp(pname, nm) == 0)
          break; /* a plain duplicate, reported by check_service */
        er_diag_err(
            c, np ? np : "/services", false,
            "two services would be named '%s' (with services[%lld] '%s'; "
            "a service with \"instances\": N becomes NAME-1..NAME-N)",
            nm, (long long)json_integer_value(prev), pname ? pname : "?");
        break;
      }
      json_object_set_new(seen, nm, json_integer((json_int_t)i));
    }
    if (json_is_string(ppi) && instances_of(svc) > 0) {
      const char *pn = json_string_value(ppi);
      const json_t *prev = json_object_get(pseen, pn);
      if (prev) {
        char *pp = er_jpos_child(cp ? cp : "/services", "port_per_instance");
        er_diag_err(c, pp ? pp : "/services", false,
                    "'port_per_instance' '%s' is used by services[%lld] too",
                    pn, (long long)json_integer_value(prev));
        free(pp);
      } else {
        json_object_set_new(pseen, pn, json_integer((json_int_t)i));
      }
    }
    json_decref(names);
    free(np);
    free(cp);
  }
out:
  json_decref(seen);
  json_decref(pseen);
}

static void check_services(ctx_t *c, const json_t *svcs, const json_t *ports) {
  if (!json_is_array(svcs))
    return;
  for (size_t i = 0; i < json_array_size(svcs); i++) {
    const json_t *s = json_array_get(svcs, i);
    char *cp = er_jpos_child_index("/services", i);
    if (json_is_object(s)) {
      check_service(c, s, cp ? cp : "/services", svcs, i);
      check_instances(c, s, cp ? cp : "/services", ports);
    }
    free(cp);
  }
  check_instance_names(c, svcs);
}

/* ---- paths --------------------------------------------------------------- */

/* Folder of the absolute path p, or its parent when that folder is named
 * "ci". Caller frees. */
static char *base_dir_of(const char *abs) {
  char *d = er_strdup(abs);
  char *slash;
  if (!d)
    return NULL;
  slash = strrchr(d, '/');
  if (slash == d)
    d[1] = '\0';
  else if (slash)
    *slash = '\0';
  slash = strrchr(d, '/');
  if (slash && strcmp(slash + 1, "ci") == 0) {
    if (slash == d)
      d[1] = '\0';
    else
      *slash = '\0';
  }
  return d;
}

/* The fixtures root named by "fixtures" (fixture.h), relative to base as
 * other paths are; NULL when the file names none. Caller frees. */
static char *fixtures_abs(const json_t *raw, const char *base) {
  const char *f = json_string_value(json_object_get(raw, "fixtures"));
  char *p = NULL;
  if (!f)
    return NULL;
  if (f[0] == '/')
    return er_strdup(f);
  if (asprintf(&p, "%s/%s", base, f) < 0)
    return NULL;
  return p;
}

/* "fixtures" is a plain folder name (scenarios are loaded, and their
 * files looked for, before any template could be expanded). */
static int check_fixtures(er_env_t *e, ctx_t *c) {
  const char *f = json_string_value(json_object_get(e->raw, "fixtures"));
  struct stat st;
  if (!f)
    return 0;
  if (strstr(f, "${")) {
    er_diag_err(c, "/fixtures", false,
                "'fixtures' is a folder name, not a template: it is needed "
                "before anything is expanded");
    return -1;
  }
  e->fixtures = fixtures_abs(e->raw, e->base_dir);
  if (!e->fixtures)
    return -1;
  if (stat(e->fixtures, &st) != 0 || !S_ISDIR(st.st_mode)) {
    er_diag_err(c, "/fixtures", false,
                "fixtures folder '%s' not found (relative paths are relative "
                "to %s)",
                f, e->base_dir);
    return -1;
  }
  return 0;
}

char *er_env_peek_fixtures(const char *path) {
  er_diags_t d = {0};
  json_t *raw = path ? er_doc_load(path, ENV_MAX_BYTES, NULL, &d) : NULL;
  char *abs = raw ? realpath(path, NULL) : NULL;
  char *base = abs ? base_dir_of(abs) : NULL;
  char *out = NULL;
  const char *f = json_string_value(json_object_get(raw, "fixtures"));
  if (base && f && !strstr(f, "${"))
    out = fixtures_abs(raw, base);
  free(base);
  free(abs);
  json_decref(raw);
  er_diags_free(&d);
  return out;
}

const char *er_env_fixtures(const er_env_t *e) { return e->fixtures; }

/* ---- load ---------------------------------------------------------------- */

/* A free port for name, distinct from those allocated already; an error
 * at ptr when none is found. */
static int alloc_one(er_env_t *e, ctx_t *c, const char *name, const char *ptr) {
  int port = -1;
  er_err_t err = {0};
  for (int tries = 0; tries < PORT_TRIES; tries++) {
    const char *k;
    json_t *v;
    bool dup = false;
    er_err_clear(&err);
    port = er_free_port(&err);
    if (port < 0)
      break;
    json_object_foreach(e->ports, k, v) {
      if (json_integer_value(v) == port)
        dup = true;
    }
    if (!dup)
      break;
    port = -1;
  }
  if (port < 0 || json_object_set_new(e->ports, name, json_integer(port))) {
    er_diag_err(c, ptr, false, "cannot allocate port '%s': %s", name,
                err.msg[0] ? err.msg : "no distinct free port found");
    return -1;
  }
  return 0;
}

/* "ports", then NAME-1..NAME-N of each service's "port_per_instance". */
static int alloc_ports(er_env_t *e, ctx_t *c) {
  const json_t *ports = json_object_get(e->raw, "ports");
  const json_t *svcs = json_object_get(e->raw, "services");
  for (size_t i = 0; i < json_array_size(ports); i++) {
    const char *name = json_string_value(json_array_get(ports, i));
    char *cp = er_jpos_child_index("/ports", i);
    int rc = alloc_one(e, c, name, cp ? cp : "/ports");
    free(cp);
    if (rc != 0)
      return -1;
  }
  for (size_t i = 0; i < json_array_size(svcs); i++) {
    const json_t *svc = json_array_get(svcs, i);
    const char *pn =
        json_string_value(json_object_get(svc, "port_per_instance"));
    int n = instances_of(svc);
    for (int k = 1; pn && k <= n; k++) {
      char name[160];
      char *cp = er_jpos_child_index("/services", i);
      char *pp = cp ? er_jpos_child(cp, "port_per_instance") : NULL;
      int rc;
      snprintf(name, sizeof name, "%s-%d", pn, k);
      rc = alloc_one(e, c, name, pp ? pp : "/services");
      free(pp);
      free(cp);
      if (rc != 0)
        return -1;
    }
  }
  return 0;
}

er_env_t *er_env_load(const char *path, er_diags_t *diags) {
  er_env_t *e = NULL;
  er_err_t err = {0};
  char *abs = NULL;
  size_t len = 0, from = diags->n, errors0 = diags->errors;
  ctx_t c = {NULL, NULL, diags, NULL, 0, NULL, NULL, NULL, NULL, NULL};

  e = calloc(1, sizeof *e);
  if (!e)
    goto fail;
  e->ports = json_object();
  if (!e->ports)
    goto fail;
  if (!path) {
    char cwd[PATH_MAX];
    e->file = er_strdup("(no environment file)");
    e->raw = json_object();
    e->base_dir = er_strdup(getcwd(cwd, sizeof cwd) ? cwd : "/");
    if (!e->file || !e->raw || !e->base_dir)
      goto fail;
    return e;
  }
  e->file = er_strdup(path);
  if (!e->file)
    goto fail;
  c.file = e->file;
  e->text = er_read_file(path, ENV_MAX_BYTES, &len, &err);
  if (!e->text) {
    const char *m = err.msg;
    size_t pl = strlen(path);
    if (strncmp(m, path, pl) == 0 && m[pl] == ':' && m[pl + 1] == ' ')
      m += pl + 2; /* the diag names the file already */
    diag_add(diags, path, 0, 0, m);
    goto fail;
  }
  /* JSON or YAML by the name (doc.h), every position kept */
  e->raw = er_doc_parse(path, e->text, len, 1 << 20, &e->pos, diags);
  if (!e->raw)
    goto fail;
  er_validate_keys_pos(path, e->pos, e->raw, k_env, diags);
  c.pos = e->pos;
  if (json_is_object(e->raw)) {
    check_ports(&c, json_object_get(e->raw, "ports"));
    check_vars(&c, json_object_get(e->raw, "vars"));
    check_secrets(&c, json_object_get(e->raw, "secrets"),
                  json_object_get(e->raw, "vars"));
    check_services(&c, json_object_get(e->raw, "services"),
                   json_object_get(e->raw, "ports"));
    check_syntax(&c, e->raw, "");
  }
  er_diags_sort_from(diags, from);
  if (diags->errors > errors0)
    goto fail;
  abs = realpath(path, NULL);
  if (!abs) {
    diag_add(diags, path, 0, 0, "cannot find the file's folder");
    goto fail;
  }
  e->base_dir = base_dir_of(abs);
  if (!e->base_dir)
    goto fail;
  if (check_fixtures(e, &c) != 0)
    goto fail;
  if (alloc_ports(e, &c) != 0)
    goto fail;
  free(abs);
  return e;

fail:
  if (diags->errors == errors0)
    diag_add(diags, path ? path : "(environment)", 0, 0, "out of memory");
  free(abs);
  er_env_free(e);
  return NULL;
}

/* ---- resolve ---------------------------------------------------------------
 */

/* Copy of v with every string expanded; problems reported at their own
 * position. NULL after an error (reported). */
static json_t *expand_at(ctx_t *c, er_tmpl_t *t, const json_t *v,
                         const char *ptr) {
  json_t *out = NULL;
  if (json_is_string(v)) {
    er_err_t err = {0};
    out = er_tmpl_expand(t, v, &err);
    if (!out)
      er_diag_err(c, ptr, false, "%s",
                  err.msg[0] ? err.msg : "cannot expand this value");
    return out;
  }
  if (json_is_array(v)) {
    bool bad = false;
    out = json_array();
    if (!out)
      return NULL;
    for (size_t i = 0; i < json_array_size(v); i++) {
      char *cp = er_jpos_child_index(ptr, i);
      json_t *x = expand_at(c, t, json_array_get(v, i), cp ? cp : ptr);
      free(cp);
      if (!x || json_array_append_new(out, x) != 0)
        bad = true;
    }
    if (bad) {
      json_decref(out);
      return NULL;
    }
    return out;
  }
  if (json_is_object(v)) {
    const char *k;
    json_t *el;
    bool bad = false;
    out = json_object();
    if (!out)
      return NULL;
    json_object_foreach((json_t *)v, k, el) {
      char *cp = er_jpos_child(ptr, k);
      const char *p = cp ? cp : ptr;
      json_t *x = expand_at(c, t, el, p);
      char *key = NULL;
      if (x && strstr(k, "${")) {
        er_err_t err = {0};
        json_t *kx = er_tmpl_expand_str(t, k, &err);
        if (!kx)
          er_diag_err(c, p, true, "%s",
                      err.msg[0] ? err.msg : "cannot expand key");
        else if (json_is_string(kx))
          key = er_strdup(json_string_value(kx));
        else
          key = er_json_dumps(kx, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(kx);
        if (!key) {
          json_decref(x);
          x = NULL;
        }
      }
      free(cp);
      if (!x || json_object_set_new(out, key ? key : k, x) != 0)
        bad = true;
      free(key);
    }
    if (bad) {
      json_decref(out);
      return NULL;
    }
    return out;
  }
  return json_copy((json_t *)v);
}

/* One instance (k of its n) of a service: expanded with instance.index,
 * .name, .count (and .port with port_per_instance) in its scope, named
 * NAME-k, in the group NAME. NULL after an error (reported). */
static json_t *expand_instance(er_env_t *e, ctx_t *c, er_tmpl_t *t,
                               const json_t *svc, const char *ptr, int k,
                               int n) {
  const char *name = json_string_value(json_object_get(svc, "name"));
  const char *ppi =
      json_string_value(json_object_get(svc, "port_per_instance"));
  er_tmpl_t *ti = er_tmpl_clone(t);
  json_t *x = NULL;
  char iname[96];
  bool ok;

  snprintf(iname, sizeof iname, "%s-%d", name, k);
  ok = ti && er_tmpl_set(ti, "instance.index", json_integer(k)) == 0 &&
       er_tmpl_set(ti, "instance.count", json_integer(n)) == 0 &&
       er_tmpl_set(ti, "instance.name", json_string(iname)) == 0;
  if (ok && ppi) {
    char pn[160];
    snprintf(pn, sizeof pn, "%s-%d", ppi, k);
    ok =
        er_tmpl_set(ti, "instance.port", json_integer(er_env_port(e, pn))) == 0;
  }
  if (!ok) {
    er_diag_err(c, ptr, false, "out of memory");
    goto out;
  }
  x = expand_at(c, ti, svc, ptr);
  if (!x)
    goto out;
  json_object_del(x, "instances");
  json_object_del(x, "port_per_instance");
  if (json_object_set_new(x, "name", json_string(iname)) != 0 ||
      json_object_set_new(x, "group", json_string(name)) != 0) {
    er_diag_err(c, ptr, false, "out of memory");
    json_decref(x);
    x = NULL;
  }
out:
  er_tmpl_free(ti);
  return x;
}

/* The "services" section: each service expanded, a service with
 * "instances" N expanded N times. NULL after an error (reported). */
static json_t *expand_services(er_env_t *e, ctx_t *c, er_tmpl_t *t,
                               const json_t *svcs) {
  json_t *out = json_array();
  bool bad = !out;
  for (size_t i = 0; out && i < json_array_size(svcs); i++) {
    const json_t *svc = json_array_get(svcs, i);
    char *cp = er_jpos_child_index("/services", i);
    const char *ptr = cp ? cp : "/services";
    int n = instances_of(svc);
    if (n == 0) {
      json_t *x = expand_at(c, t, svc, ptr);
      if (!x || json_array_append_new(out, x) != 0)
        bad = true;
    }
    for (int k = 1; k <= n; k++) {
      json_t *x = expand_instance(e, c, t, svc, ptr, k, n);
      if (!x || json_array_append_new(out, x) != 0) {
        bad = true;
        break; /* the others would repeat the same errors */
      }
    }
    free(cp);
  }
  if (bad) {
    json_decref(out);
    return NULL;
  }
  return out;
}

int er_env_resolve(er_env_t *e, er_tmpl_t *t, er_diags_t *diags) {
  ctx_t c = {e->file, e->pos, diags, NULL, 0, NULL, NULL, NULL, NULL, NULL};
  size_t from = diags->n, errors0 = diags->errors;
  json_t *resolved = NULL;
  const json_t *rawvars = json_object_get(e->raw, "vars");
  const char *k;
  json_t *v;

  if (e->resolve_tried) {
    diag_add(diags, e->file, 0, 0, "environment resolved twice");
    return -1;
  }
  e->resolve_tried = true;
  json_object_foreach(e->ports, k, v) {
    char name[160];
    snprintf(name, sizeof name, "port.%s", k);
    if (er_tmpl_set(t, name, json_integer(json_integer_value(v))) != 0)
      diag_add(diags, e->file, 0, 0, "out of memory");
  }
  e->vars = json_object();
  resolved = json_object();
  if (!e->vars || !resolved) {
    diag_add(diags, e->file, 0, 0, "out of memory");
    goto out;
  }
  er_tmpl_set_env_vars(t, e->vars);
  json_object_foreach((json_t *)rawvars, k, v) {
    char *cp = er_jpos_child("/vars", k);
    json_t *x = expand_at(&c, t, v, cp ? cp : "/vars");
    free(cp);
    if (x && json_object_set_new(e->vars, k, x) != 0)
      diag_add(diags, e->file, 0, 0, "out of memory");
  }
  json_object_foreach(e->raw, k, v) {
    json_t *x;
    if (strcmp(k, "vars") == 0) {
      x = json_incref(e->vars);
    } else if (strcmp(k, "fixtures") == 0) {
      x = json_string(e->fixtures ? e->fixtures : "");
    } else if (strcmp(k, "ports") == 0) {
      x = json_deep_copy(v);
    } else if (strcmp(k, "services") == 0 && json_is_array(v)) {
      x = expand_services(e, &c, t, v);
      if (!x)
        continue; /* reported */
    } else if (strcmp(k, "state") == 0 && json_is_object(v)) {
      /* state.idempotency_key is expanded per event later */
      json_t *cp = json_deep_copy(v);
      const json_t *ik = json_object_get(v, "idempotency_key");
      json_object_del(cp, "idempotency_key");
      x = cp ? expand_at(&c, t, cp, "/state") : NULL;
      json_decref(cp);
      if (!x)
        continue; /* reported */
      if (ik)
        json_object_set(x, "idempotency_key", (json_t *)ik);
    } else {
      char *cp = er_jpos_child("", k);
      x = expand_at(&c, t, v, cp ? cp : "");
      free(cp);
      if (!x)
        continue; /* reported */
    }
    if (!x || json_object_set_new(resolved, k, x) != 0)
      diag_add(diags, e->file, 0, 0, "out of memory");
  }
  record_secrets(e, resolved, diags); /* also for the error messages */
out:
  er_diags_sort_from(diags, from);
  if (diags->errors > errors0) {
    json_decref(resolved);
    return -1;
  }
  e->resolved = resolved;
  return 0;
}

/* ---- accessors -------------------------------------------------------------
 */

void er_env_free(er_env_t *e) {
  if (!e)
    return;
  free(e->file);
  free(e->text);
  er_jpos_free(e->pos);
  free(e->base_dir);
  free(e->fixtures);
  json_decref(e->raw);
  json_decref(e->ports);
  json_decref(e->vars);
  json_decref(e->resolved);
  free(e);
}

const json_t *er_env_raw(const er_env_t *e) { return e->raw; }
const json_t *er_env_json(const er_env_t *e) { return e->resolved; }
const char *er_env_base_dir(const er_env_t *e) { return e->base_dir; }

int er_env_port(const er_env_t *e, const char *name) {
  const json_t *p = json_object_get(e->ports, name);
  return p ? (int)json_integer_value(p) : -1;
}

int er_env_set_placeholders(const json_t *raw, er_tmpl_t *t) {
  static const char *const parts[] = {"port", "host", "addr", "url"};
  const json_t *bs =
      json_object_get(json_object_get(raw, "kafka"), "bootstrap");
  const json_t *px = json_object_get(raw, "proxies");
  json_t *v = NULL, *p;
  size_t i;
  int bad = 0;

  if (json_is_string(bs)) {
    er_err_t err = {0};
    v = er_tmpl_expand_str(t, json_string_value(bs), &err);
  }
  bad |= er_tmpl_set(t, "kafka.bootstrap",
                     v ? v : json_string("<kafka.bootstrap>"));
  bad |= er_tmpl_set(t, "kafka.embedded", json_boolean(!json_is_string(bs)));
  json_array_foreach(px, i, p) {
    const char *name = json_string_value(json_object_get(p, "name"));
    if (!name)
      continue;
    for (size_t j = 0; j < sizeof parts / sizeof parts[0]; j++) {
      char key[256], val[300];
      snprintf(key, sizeof key, "proxy.%s.%s", name, parts[j]);
      snprintf(val, sizeof val, "<%s>", key);
      bad |= er_tmpl_set(t, key, json_string(val));
    }
  }
  return bad ? -1 : 0;
}
