/* act_fault.c: fault proxies in scenarios: the "proxy" module and the
 * "fault" step.
 *
 * Environment:
 *   "proxies": [{"name": "redis", "listen": 0,
 *                "upstream": "127.0.0.1:${port.redis}"}]
 *   Each proxy listens on 127.0.0.1 ("listen": 0 or absent picks a free
 *   port) and forwards to upstream (host:port or [v6]:port; templates are
 *   resolved like the rest of the file). Names hold letters, digits, '_'
 *   and '-'. The module puts these names into the templates before the
 *   environment is resolved, so services and vars can point at a proxy:
 *     ${proxy.NAME.port}  the listening port (an integer)
 *     ${proxy.NAME.host}  "127.0.0.1"
 *     ${proxy.NAME.addr}  "127.0.0.1:PORT"
 *     ${proxy.NAME.url}   "tcp://127.0.0.1:PORT" (protocol-neutral; write
 *                         redis://${proxy.NAME.addr}/0 for a Redis URL)
 *
 * Module hooks (action.h):
 *   run_begin   checks the raw "proxies", reserves every listening port
 *               (a socket bound to it and held, so nothing else takes it
 *               before the proxy listens) and sets the template names;
 *   env_ready   with the upstreams resolved, starts the proxy set (one
 *               epoll thread, proxy.h) before the services start;
 *   scenario_end  heals every proxy, however the scenario ended (passed,
 *               failed, timed out or interrupted: the runner calls it
 *               when the steps end, before teardown, with
 *               interrupts held);
 *   run_end     stops the set (every connection closed).
 * The set lives in the run's shared session under "proxy".
 *
 * Step:
 *   {"fault": {"proxy": "redis", "action": "down"}}
 *   actions: down, up, latency, reset_peer, blackhole, heal
 *     latency     needs "latency" (a duration); "jitter" (<= latency) and
 *                 "direction": "downstream" (default: server -> client,
 *                 so a request/reply round trip grows by the latency),
 *                 "upstream" or "both" (each direction: twice the latency
 *                 per round trip)
 *     reset_peer  "delay" (default 0ms) before each connection is reset
 *   Other keys are refused for actions they do not apply to. A fault is
 *   in force on the proxy's open connections (pooled ones included) and
 *   on new ones once the step returns (proxy.h). An unknown proxy is a
 *   fatal error with a did-you-mean. The log says what was done and how
 *   many connections were open. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "adapters/proxy.h"
#include "lang/jsonx.h"
#include "lang/template.h"
#include "run/diag.h"
#include "run/exec.h"

#define SHARED_KEY "proxy"
#define NAME_MAX_LEN 64
#define MAX_PROXIES 64

/* ---- the module ------------------------------------------------------- */

typedef struct pentry {
  char *name;
  int port;
  int fd; /* the reservation until env_ready, then -1 */
} pentry_t;

typedef struct pstate {
  er_proxy_set_t *set; /* NULL until env_ready */
  pentry_t *v;
  size_t n;
} pstate_t;

static void pstate_free(void *p) {
  pstate_t *st = p;
  if (!st)
    return;
  er_proxy_set_free(st->set);
  for (size_t i = 0; i < st->n; i++) {
    if (st->v[i].fd >= 0)
      close(st->v[i].fd);
    free(st->v[i].name);
  }
  free(st->v);
  free(st);
}

static bool proxy_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NAME_MAX_LEN)
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
      return false;
  return true;
}

/* Binds a socket to 127.0.0.1:port (0 = any free port) and keeps it, so
 * the port stays ours until the proxy listens on it. Returns the fd with
 * *got, or -1 with err. */
static int reserve_port(const char *name, int port, int *got, er_err_t *err) {
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0)
    return er_errf(err, ER_E_ENV, "proxy \"%s\": socket: %s", name,
                   strerror(errno));
  /* a fixed port may still have connections in TIME_WAIT from a previous
   * run; the proxy itself binds with SO_REUSEADDR too */
  if (port != 0)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
    int e = errno;
    close(fd);
    if (port)
      return er_errf(err, ER_E_ENV,
                     "proxy \"%s\": cannot listen on 127.0.0.1:%d: %s", name,
                     port, strerror(e));
    return er_errf(err, ER_E_ENV, "proxy \"%s\": no free port: %s", name,
                   strerror(e));
  }
  *got = ntohs(a.sin_port);
  return fd;
}

static int set_names(er_tmpl_t *t, const char *name, int port, er_err_t *err) {
  char key[128], val[64];
  int bad = 0;
  snprintf(key, sizeof key, "proxy.%s.port", name);
  bad |= er_tmpl_set(t, key, json_integer(port));
  snprintf(key, sizeof key, "proxy.%s.host", name);
  bad |= er_tmpl_set(t, key, json_string("127.0.0.1"));
  snprintf(key, sizeof key, "proxy.%s.addr", name);
  snprintf(val, sizeof val, "127.0.0.1:%d", port);
  bad |= er_tmpl_set(t, key, json_string(val));
  snprintf(key, sizeof key, "proxy.%s.url", name);
  snprintf(val, sizeof val, "tcp://127.0.0.1:%d", port);
  bad |= er_tmpl_set(t, key, json_string(val));
  if (bad)
    return er_errf(err, ER_E_ENV, "proxy \"%s\": cannot set ${proxy.%s.*}",
                   name, name);
  return 0;
}

static int mod_run_begin(const json_t *env, er_tmpl_t *t, er_session_t *shared,
                         er_err_t *err) {
  const json_t *arr = json_object_get(env, "proxies");
  size_t n = json_array_size(arr);
  pstate_t *st = NULL;
  int rc = -1;

  if (n == 0)
    return 0;
  if (n > MAX_PROXIES)
    return er_errf(err, ER_E_INPUT, "proxies: at most %d proxies", MAX_PROXIES);
  st = calloc(1, sizeof *st);
  if (!st || !(st->v = calloc(n, sizeof *st->v))) {
    er_errf(err, ER_E_ENV, "proxies: out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    st->v[i].fd = -1;
  for (size_t i = 0; i < n; i++) {
    const json_t *p = json_array_get(arr, i);
    const char *name = json_string_value(json_object_get(p, "name"));
    const json_t *listen = json_object_get(p, "listen");
    json_int_t port = json_is_integer(listen) ? json_integer_value(listen) : 0;
    if (!name || !proxy_name_ok(name)) {
      er_errf(err, ER_E_INPUT,
              "proxies[%zu]: the name must be 1 to %d letters, digits, '_' "
              "or '-' (it is used in ${proxy.NAME.port})",
              i, NAME_MAX_LEN);
      goto out;
    }
    for (size_t j = 0; j < i; j++)
      if (strcmp(st->v[j].name, name) == 0) {
        er_errf(err, ER_E_INPUT, "proxies: the name \"%s\" is used twice",
                name);
        goto out;
      }
    if ((listen && !json_is_integer(listen)) || port < 0 || port > 65535) {
      er_errf(err, ER_E_INPUT,
              "proxy \"%s\": \"listen\" must be a port from 1 to 65535, or "
              "0 for a free one",
              name);
      goto out;
    }
    for (size_t j = 0; port != 0 && j < i; j++)
      if (json_integer_value(
              json_object_get(json_array_get(arr, j), "listen")) == port) {
        er_errf(err, ER_E_INPUT,
                "proxy \"%s\": listen port %d is taken by proxy \"%s\" "
                "already",
                name, (int)port, st->v[j].name);
        goto out;
      }
    if (!json_is_string(json_object_get(p, "upstream"))) {
      er_errf(err, ER_E_INPUT,
              "proxy \"%s\": \"upstream\" (host:port) is required", name);
      goto out;
    }
    st->v[i].name = er_strdup(name);
    if (!st->v[i].name) {
      er_errf(err, ER_E_ENV, "proxies: out of memory");
      goto out;
    }
    st->n = i + 1;
    st->v[i].fd = reserve_port(name, (int)port, &st->v[i].port, err);
    if (st->v[i].fd < 0)
      goto out;
    if (set_names(t, name, st->v[i].port, err) != 0)
      goto out;
  }
  if (er_session_put(shared, SHARED_KEY, st, pstate_free) != 0) {
    er_errf(err, ER_E_ENV, "proxies: out of memory");
    goto out;
  }
  st = NULL;
  rc = 0;
out:
  pstate_free(st);
  return rc;
}

/* "host:port" or "[v6]:port" -> host (caller frees) and port. */
static int split_hostport(const char *s, char **host, int *port) {
  const char *colon, *h = s;
  size_t hl;
  char *end = NULL;
  long p;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':')
      return -1;
    h = s + 1;
    hl = (size_t)(rb - h);
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon)
      return -1;
    hl = (size_t)(colon - s);
  }
  if (hl == 0)
    return -1;
  errno = 0;
  p = strtol(colon + 1, &end, 10);
  if (errno || end == colon + 1 || *end || p < 1 || p > 65535)
    return -1;
  *host = strndup(h, hl);
  if (!*host)
    return -1;
  *port = (int)p;
  return 0;
}

static int mod_env_ready(const json_t *env, er_session_t *shared,
                         er_err_t *err) {
  pstate_t *st = er_session_get(shared, SHARED_KEY);
  const json_t *arr = json_object_get(env, "proxies");
  if (!st)
    return 0;
  st->set = er_proxy_set_new(NULL, err);
  if (!st->set)
    return -1;
  for (size_t i = 0; i < st->n; i++) {
    const json_t *p = json_array_get(arr, i);
    const char *up = json_string_value(json_object_get(p, "upstream"));
    char *host = NULL;
    int uport = 0, got = 0, rc;
    if (!up || split_hostport(up, &host, &uport) != 0)
      return er_errf(err, ER_E_INPUT,
                     "proxy \"%s\": upstream \"%s\" must be host:port (or "
                     "[v6addr]:port) with a port from 1 to 65535",
                     st->v[i].name, up ? up : "");
    /* hand the reserved port over to the proxy */
    close(st->v[i].fd);
    st->v[i].fd = -1;
    rc = er_proxy_add(st->set, st->v[i].name, st->v[i].port, host, uport, &got,
                      err);
    free(host);
    if (rc != 0)
      return -1;
  }
  return er_proxy_set_start(st->set, err);
}

static int mod_scenario_end(const json_t *env, er_session_t *shared,
                            er_session_t *scenario, er_err_t *err) {
  pstate_t *st = er_session_get(shared, SHARED_KEY);
  (void)env;
  (void)scenario;
  if (!st || !st->set)
    return 0;
  return er_proxy_heal_all(st->set, err);
}

static void mod_run_end(er_session_t *shared) {
  pstate_t *st = er_session_get(shared, SHARED_KEY);
  if (!st)
    return;
  er_proxy_set_stop(st->set);
  for (size_t i = 0; i < st->n; i++) {
    if (st->v[i].fd >= 0)
      close(st->v[i].fd);
    st->v[i].fd = -1;
  }
}

const er_module_t er_mod_proxy = {
    .name = "proxy",
    .run_begin = mod_run_begin,
    .env_ready = mod_env_ready,
    .scenario_end = mod_scenario_end,
    .run_end = mod_run_end,
};

/* ---- the "fault" step ------------------------------------------------- */

static const er_keyspec_t fault_keys[] = {
    {"proxy", ER_T_STRING, true, NULL, NULL},
    {"action", ER_T_STRING, true, NULL, NULL},
    {"latency", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"jitter", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"direction", ER_T_STRING, false, NULL, NULL},
    {"delay", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const char *const g_fault_actions[] = {
    "down", "up", "latency", "reset_peer", "blackhole", "heal",
};
#define N_FAULT_ACTIONS (sizeof g_fault_actions / sizeof g_fault_actions[0])

static bool known_action(const char *a) {
  for (size_t i = 0; i < N_FAULT_ACTIONS; i++)
    if (strcmp(a, g_fault_actions[i]) == 0)
      return true;
  return false;
}

static bool literal(const json_t *v) {
  return json_is_string(v) && !strstr(json_string_value(v), "${");
}

static void validate_fault(const json_t *args, er_diag_t *d) {
  const json_t *jaction = json_object_get(args, "action");
  const json_t *lat = json_object_get(args, "latency");
  const json_t *jit = json_object_get(args, "jitter");
  const json_t *dir = json_object_get(args, "direction");
  const json_t *delay = json_object_get(args, "delay");
  const char *action = json_string_value(jaction);
  int64_t lms = 0, jms = 0;

  if (literal(json_object_get(args, "proxy")) &&
      !proxy_name_ok(json_string_value(json_object_get(args, "proxy"))))
    er_diag_error(d, "/proxy",
                  "a proxy name holds letters, digits, '_' and '-' (the "
                  "\"name\" of one of the environment's \"proxies\")");
  if (literal(dir)) {
    er_proxy_dir_t dd;
    er_err_t err = {0};
    if (er_proxy_dir_parse(json_string_value(dir), &dd, &err) != 0)
      er_diag_error(d, "/direction",
                    "direction is \"downstream\" (server to client, the "
                    "default), \"upstream\" or \"both\"");
  }
  if (literal(lat) && er_parse_duration(json_string_value(lat), &lms) == 0 &&
      lms > 3600 * 1000)
    er_diag_error(d, "/latency", "latency is at most 1h");
  if (literal(delay) &&
      er_parse_duration(json_string_value(delay), &lms) == 0 &&
      lms > 3600 * 1000)
    er_diag_error(d, "/delay", "delay is at most 1h");
  if (literal(lat) && literal(jit) &&
      er_parse_duration(json_string_value(lat), &lms) == 0 &&
      er_parse_duration(json_string_value(jit), &jms) == 0 && jms > lms)
    er_diag_error(d, "/jitter",
                  "jitter must not exceed the latency (the delay is latency "
                  "+/- jitter)");
  if (!literal(jaction))
    return; /* a template, or reported by the key spec */
  if (!known_action(action)) {
    const char *dym = er_did_you_mean(action, g_fault_actions, N_FAULT_ACTIONS);
    er_diag_error(d, "/action",
                  "unknown fault action '%s'%s%s%s; one of down, up, latency, "
                  "reset_peer, blackhole, heal",
                  action, dym ? " (did you mean '" : "", dym ? dym : "",
                  dym ? "'?)" : "");
    return;
  }
  if (strcmp(action, "latency") == 0) {
    if (!lat)
      er_diag_error(d, "",
                    "action latency needs \"latency\": a duration such as "
                    "\"50ms\" (\"0ms\" removes it)");
  } else {
    if (lat)
      er_diag_error(d, "/latency",
                    "\"latency\" applies only to action "
                    "latency");
    if (jit)
      er_diag_error(d, "/jitter", "\"jitter\" applies only to action latency");
    if (dir)
      er_diag_error(d, "/direction",
                    "\"direction\" applies only to action latency");
  }
  if (delay && strcmp(action, "reset_peer") != 0)
    er_diag_error(d, "/delay", "\"delay\" applies only to action reset_peer");
}

/* A duration argument (0 when absent). -1 with detail when malformed. */
static int dur_arg(er_exec_t *x, const json_t *args, const char *key,
                   int64_t *ms) {
  const json_t *v = json_object_get(args, key);
  *ms = 0;
  if (!v)
    return 0;
  if (!json_is_string(v) || er_parse_duration(json_string_value(v), ms) != 0) {
    char *b = er_json_brief(v, 80);
    er_buf_printf(x->detail,
                  "fault: \"%s\" must be a duration such as \"50ms\", not %s",
                  key, b ? b : "?");
    free(b);
    return -1;
  }
  return 0;
}

/* A "fault" step's arguments, checked (names borrowed from the step's
 * args, the set from the run's session). */
typedef struct fault {
  const char *name, *action;
  er_proxy_set_t *set;
  int port;
  int64_t lat, jit, delay;
  er_proxy_dir_t dir;
  unsigned long long open; /* connections open before the fault, for the log */
} fault_t;

/* Reads and checks the arguments into f; ER_STEP_OK, or ER_STEP_FATAL
 * with x->detail set. */
static int fault_args(er_exec_t *x, const json_t *args, fault_t *f) {
  const char *name = json_string_value(json_object_get(args, "proxy"));
  const char *action = json_string_value(json_object_get(args, "action"));
  const char *dirs = json_string_value(json_object_get(args, "direction"));
  pstate_t *st = x->shared ? er_session_get(x->shared, SHARED_KEY) : NULL;
  er_err_t err = {0};

  f->name = name;
  f->action = action;
  f->dir = ER_PROXY_DOWNSTREAM;
  if (!name || !action) {
    er_buf_puts(x->detail, "fault: \"proxy\" and \"action\" are strings");
    return ER_STEP_FATAL;
  }
  if (!known_action(action)) {
    er_buf_printf(x->detail,
                  "fault: unknown action \"%s\" (down, up, latency, "
                  "reset_peer, blackhole, heal)",
                  action);
    return ER_STEP_FATAL;
  }
  if (!st || !st->set) {
    er_buf_printf(x->detail,
                  "fault: no proxy named \"%s\": the environment declares no "
                  "proxies (add \"proxies\": [{\"name\": \"%s\", \"listen\": "
                  "0, \"upstream\": \"127.0.0.1:PORT\"}])",
                  name, name);
    return ER_STEP_FATAL;
  }
  f->set = st->set;
  f->port = er_proxy_port(f->set, name, &err);
  if (f->port < 0) {
    er_buf_printf(x->detail, "fault: %s", err.msg);
    return ER_STEP_FATAL;
  }
  if (dur_arg(x, args, "latency", &f->lat) ||
      dur_arg(x, args, "jitter", &f->jit) ||
      dur_arg(x, args, "delay", &f->delay))
    return ER_STEP_FATAL;
  if (dirs && er_proxy_dir_parse(dirs, &f->dir, &err) != 0) {
    er_buf_printf(x->detail, "fault: %s", err.msg);
    return ER_STEP_FATAL;
  }
  if (!strcmp(action, "latency") && !json_object_get(args, "latency")) {
    er_buf_puts(x->detail, "fault: action latency needs \"latency\"");
    return ER_STEP_FATAL;
  }
  return ER_STEP_OK;
}

/* Puts the fault on the proxy; 0, or -1 with err set. */
static int fault_apply(const fault_t *f, er_err_t *err) {
  const char *action = f->action;
  if (!strcmp(action, "down"))
    return er_proxy_down(f->set, f->name, err);
  if (!strcmp(action, "up"))
    return er_proxy_up(f->set, f->name, err);
  if (!strcmp(action, "latency"))
    return er_proxy_latency(f->set, f->name, f->dir, f->lat, f->jit, err);
  if (!strcmp(action, "reset_peer"))
    return er_proxy_reset_peer(f->set, f->name, f->delay, err);
  if (!strcmp(action, "blackhole"))
    return er_proxy_blackhole(f->set, f->name, err);
  return er_proxy_heal(f->set, f->name, err);
}

/* Logs what the fault did. */
static void fault_log(er_exec_t *x, const fault_t *f) {
  const char *action = f->action, *name = f->name;
  char t1[32], t2[32];
  if (!strcmp(action, "down")) {
    er_exec_log(x,
                "fault: proxy %s (127.0.0.1:%d) down: closed %llu open "
                "connection(s); new connections are refused",
                name, f->port, f->open);
  } else if (!strcmp(action, "up")) {
    er_exec_log(x, "fault: proxy %s up: listening on 127.0.0.1:%d again", name,
                f->port);
  } else if (!strcmp(action, "latency")) {
    er_fmt_duration(f->lat, t1);
    er_fmt_duration(f->jit, t2);
    er_exec_log(x,
                "fault: proxy %s latency %s%s%s %s, on its %llu open "
                "connection(s) and new ones",
                name, t1, f->jit ? " +/- " : "", f->jit ? t2 : "",
                f->dir == ER_PROXY_UPSTREAM     ? "upstream"
                : f->dir == ER_PROXY_DOWNSTREAM ? "downstream"
                                                : "both ways",
                f->open);
  } else if (!strcmp(action, "reset_peer")) {
    er_fmt_duration(f->delay, t1);
    er_exec_log(x,
                "fault: proxy %s reset_peer after %s, on its %llu open "
                "connection(s) and new ones",
                name, t1, f->open);
  } else if (!strcmp(action, "blackhole")) {
    er_exec_log(x,
                "fault: proxy %s blackhole: its %llu open connection(s) and "
                "new ones pass nothing",
                name, f->open);
  } else {
    er_exec_log(x, "fault: proxy %s healed (%llu open connection(s))", name,
                f->open);
  }
}

static int run_fault(er_exec_t *x, const json_t *args) {
  fault_t f;
  er_proxy_stats_t stats;
  er_err_t err = {0};
  int rc;

  memset(&f, 0, sizeof f);
  rc = fault_args(x, args, &f);
  if (rc != ER_STEP_OK)
    return rc;
  memset(&stats, 0, sizeof stats);
  er_proxy_stats(f.set, f.name, &stats, &err); /* for the log only */
  f.open = (unsigned long long)stats.open;
  er_err_clear(&err);

  if (fault_apply(&f, &err) != 0) {
    er_buf_printf(x->detail, "fault %s on proxy \"%s\": %s", f.action, f.name,
                  err.msg);
    return err.code == ER_E_INPUT ? ER_STEP_FATAL : ER_STEP_ERROR;
  }
  fault_log(x, &f);
  er_diag_note_fault(x, f.name, f.action);
  return ER_STEP_OK;
}

const er_action_t er_act_fault = {.name = "fault",
                                  .keys = fault_keys,
                                  .validate = validate_fault,
                                  .run = run_fault};
