/* act_contend.c: the "redis.contend" step: several connections keep
 * writing to given keys for a while, to provoke WATCH conflicts (and
 * other races) in the system under test, and say how many writes they
 * made.
 *
 * {"redis.contend": {"keys": ["els:slots:${b}", "els:idx:${b}"],
 *                    "for": "2s", "connections": 4,
 *                    "command": ["SADD", "{key}", "x"],
 *                    "capture": {"w": "/writes"}, "url": "redis://..."}}
 *
 * Each connection is a thread with its own Redis connection (redis.h);
 * all connect first, then start together and write until "for" has
 * passed, connection c taking the keys round-robin from key c. "for" is
 * 1ms to 10m and must fit in what is left of the scenario; connections 1
 * to 64 (default 4); keys 1 to 1000.
 *
 * The default write modifies each key and leaves its data as it was, so
 * that a WATCH on it fails while nothing the system under test reads
 * changes: a Lua script (atomic: no one sees the intermediate state) that
 * by the key's TYPE adds then removes a sentinel member (set, zset),
 * field (hash) or element (list; an existing sentinel is removed and put
 * back), sets a string to its own value (SET ... KEEPTTL), or creates and
 * deletes a missing key. A no-op write such as SADD of a member already
 * there would not do: Redis touches a key (and fails the WATCHes on it)
 * only when a command really modifies it. Other types (streams) need a
 * "command".
 * "command" replaces the default: every element's "{key}" is replaced by
 * the key (a literal placeholder, not a ${...} template). Each command
 * sent and answered without an error is one write.
 *
 * The step's result is {"writes": N, "connections": C, "for_ms": ms,
 * "per_key": {"key": n, ...}}; capture takes "" (all of it) or a JSON
 * pointer ("/writes"). An error reply or a connection problem stops every
 * connection and makes the step an error; a bad argument is fatal. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/redis.h"
#include "lang/jsonx.h"
#include "run/diag.h"
#include "run/exec.h"
#include "run/safety.h"

#define MAX_CONNS 64
#define MAX_KEYS 1000
#define MAX_FOR_MS (10 * 60 * 1000)
#define CONNECT_MS 5000  /* for every connection to be up */
#define WRITE_GRACE 5000 /* a write begun before the end may finish */
#define SENTINEL "__eventrig_contend__"

static const er_keyspec_t contend_keys[] = {
    {"keys", ER_T_ARRAY, true, NULL, NULL},
    {"for", ER_T_STRING | ER_T_DURATION, true, NULL, NULL},
    {"connections", ER_T_INT, false, NULL, NULL},
    {"command", ER_T_ARRAY, false, NULL, NULL},
    {"capture", ER_T_OBJECT, false, NULL, NULL},
    {"url", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

/* KEYS[1] the key, ARGV[1] the sentinel. Returns the key's type. */
static const char g_script[] =
    "local k, m = KEYS[1], ARGV[1]\n"
    "local t = redis.call('TYPE', k)['ok']\n"
    "if t == 'set' then\n"
    "  if redis.call('SREM', k, m) == 1 then redis.call('SADD', k, m)\n"
    "  else redis.call('SADD', k, m); redis.call('SREM', k, m) end\n"
    "elseif t == 'hash' then\n"
    "  local v = redis.call('HGET', k, m)\n"
    "  if v then redis.call('HDEL', k, m); redis.call('HSET', k, m, v)\n"
    "  else redis.call('HSET', k, m, '1'); redis.call('HDEL', k, m) end\n"
    "elseif t == 'zset' then\n"
    "  local s = redis.call('ZSCORE', k, m)\n"
    "  if s then redis.call('ZREM', k, m); redis.call('ZADD', k, s, m)\n"
    "  else redis.call('ZADD', k, 0, m); redis.call('ZREM', k, m) end\n"
    "elseif t == 'list' then\n"
    "  redis.call('RPUSH', k, m); redis.call('RPOP', k)\n"
    "elseif t == 'string' then\n"
    "  redis.call('SET', k, redis.call('GET', k), 'KEEPTTL')\n"
    "elseif t == 'none' then\n"
    "  redis.call('SET', k, m); redis.call('DEL', k)\n"
    "else\n"
    "  return redis.error_reply('key ' .. k .. ' holds a ' .. t .. \n"
    "    ', which redis.contend cannot modify without changing it: give a "
    "command')\n"
    "end\n"
    "return t\n";

/* One prepared command per key: argv with lengths (owned). */
typedef struct kcmd {
  char **v;
  size_t *len;
  int n;
} kcmd_t;

typedef struct contend {
  const char *url;
  kcmd_t *cmds;      /* per key */
  const char **keys; /* borrowed from the arguments */
  size_t nkeys;
  int64_t deadline_ms; /* the scenario's */
  /* start gate */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int connected; /* connections up (or failed) */
  bool open;
  int64_t end_ms;
  atomic_bool stop;
  /* first error (under mu) */
  char err[ER_ERRSTR + 64];
  bool err_input;
} contend_t;

typedef struct worker {
  contend_t *c;
  int idx;
  long long *counts; /* per key */
  long long total;
} worker_t;

static void kcmd_free(kcmd_t *k) {
  for (int i = 0; k->v && i < k->n; i++)
    free(k->v[i]);
  free(k->v);
  free(k->len);
}

static void set_error(contend_t *c, bool input, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(contend_t *c, bool input, const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&c->mu);
  if (!c->err[0]) {
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->err_input = input;
  }
  pthread_mutex_unlock(&c->mu);
  atomic_store(&c->stop, true);
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  contend_t *c = w->c;
  er_err_t err = {0};
  er_redis_t *r = er_redis_new(c->url, 64 * 1024, &err);
  json_t *reply = NULL;
  int64_t end;
  size_t k;

  /* connect before the start, so that the whole time is spent writing */
  if (r) {
    const char *ping[] = {"PING"};
    int64_t dl = er_now_ms() + CONNECT_MS;
    if (dl > c->deadline_ms)
      dl = c->deadline_ms;
    if (er_redis_command(r, 1, ping, NULL, dl, &reply, &err) != ER_REDIS_OK)
      set_error(c, false, "connection %d: %s", w->idx + 1, err.msg);
    json_decref(reply);
    reply = NULL;
  } else {
    set_error(c, true, "%s", err.msg);
  }
  pthread_mutex_lock(&c->mu);
  c->connected++;
  pthread_cond_broadcast(&c->cv);
  while (!c->open)
    pthread_cond_wait(&c->cv, &c->mu);
  end = c->end_ms;
  pthread_mutex_unlock(&c->mu);

  k = (size_t)w->idx % c->nkeys;
  while (r && !atomic_load(&c->stop) && er_now_ms() < end &&
         !er_interrupted()) {
    kcmd_t *cmd = &c->cmds[k];
    int64_t dl = end + WRITE_GRACE;
    int got;
    if (dl > c->deadline_ms)
      dl = c->deadline_ms;
    er_err_clear(&err);
    got = er_redis_command(r, cmd->n, (const char *const *)cmd->v, cmd->len, dl,
                           &reply, &err);
    json_decref(reply);
    reply = NULL;
    if (got != ER_REDIS_OK) {
      set_error(
          c, false, "connection %d, key %.200s: %s%s", w->idx + 1, c->keys[k],
          got == ER_REDIS_ERROR_REPLY ? "the server replied: " : "", err.msg);
      break;
    }
    w->counts[k]++;
    w->total++;
    k = (k + 1) % c->nkeys;
  }
  er_redis_free(r);
  return NULL;
}

/* "{key}" in s replaced by key. Caller frees. */
static char *subst_key(const char *s, size_t slen, const char *key,
                       size_t *outlen) {
  er_buf_t b = ER_BUF_INIT(64u * 1024u * 1024u);
  size_t klen = strlen(key);
  for (size_t i = 0; i < slen;) {
    if (slen - i >= 5 && memcmp(s + i, "{key}", 5) == 0) {
      er_buf_append(&b, key, klen);
      i += 5;
    } else {
      er_buf_append(&b, s + i, 1);
      i++;
    }
  }
  *outlen = b.len;
  if (b.len == 0) {
    er_buf_free(&b);
    return calloc(1, 1);
  }
  er_buf_cstr(&b);
  return er_buf_steal(&b);
}

/* A command element as text: strings as they are, numbers in decimal. */
static char *elem_text(const json_t *e, size_t *len) {
  if (json_is_string(e)) {
    *len = json_string_length(e);
    return (char *)json_string_value(e); /* borrowed */
  }
  return NULL;
}

static int prepare(contend_t *c, const json_t *keys, const json_t *command,
                   er_buf_t *detail) {
  c->cmds = calloc(c->nkeys, sizeof *c->cmds);
  c->keys = calloc(c->nkeys, sizeof *c->keys);
  if (!c->cmds || !c->keys)
    return -1;
  for (size_t i = 0; i < c->nkeys; i++) {
    const char *key = json_string_value(json_array_get(keys, i));
    c->keys[i] = key;
    kcmd_t *k = &c->cmds[i];
    int n = command ? (int)json_array_size(command) : 5;
    k->v = calloc((size_t)n, sizeof *k->v);
    k->len = calloc((size_t)n, sizeof *k->len);
    if (!k->v || !k->len)
      return -1;
    k->n = n;
    if (!command) {
      const char *a[] = {"EVAL", g_script, "1", key, SENTINEL};
      for (int j = 0; j < 5; j++) {
        k->v[j] = er_strdup(a[j]);
        if (!k->v[j])
          return -1;
        k->len[j] = strlen(a[j]);
      }
      continue;
    }
    for (int j = 0; j < n; j++) {
      const json_t *e = json_array_get(command, (size_t)j);
      char num[64];
      size_t len = 0;
      const char *t = elem_text(e, &len);
      if (!t && json_is_integer(e)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(e));
        t = num;
        len = strlen(num);
      } else if (!t && json_is_real(e)) {
        snprintf(num, sizeof num, "%.17g", json_real_value(e));
        t = num;
        len = strlen(num);
      } else if (!t) {
        er_buf_printf(detail,
                      "redis.contend: /command/%d must be a string or a "
                      "number",
                      j);
        return 1;
      }
      k->v[j] = subst_key(t, len, key, &k->len[j]);
      if (!k->v[j])
        return -1;
    }
  }
  return 0;
}

static bool is_key_list(const json_t *keys) {
  if (!json_is_array(keys) || json_array_size(keys) == 0 ||
      json_array_size(keys) > MAX_KEYS)
    return false;
  for (size_t i = 0; i < json_array_size(keys); i++) {
    const json_t *k = json_array_get(keys, i);
    if (!json_is_string(k) || json_string_length(k) == 0)
      return false;
  }
  return true;
}

static bool has_key_placeholder(const json_t *command) {
  for (size_t i = 0; i < json_array_size(command); i++) {
    const char *s = json_string_value(json_array_get(command, i));
    if (s && strstr(s, "{key}"))
      return true;
  }
  return false;
}

/* Checks the arguments into c (nkeys, url), *nconn and *ms. Returns
 * ER_STEP_OK, or the step's result with the detail written. */
static int contend_args(er_exec_t *x, const json_t *args, contend_t *c,
                        int *nconn, int64_t *ms) {
  const json_t *keys = json_object_get(args, "keys");
  const json_t *command = json_object_get(args, "command");
  const json_t *jconns = json_object_get(args, "connections");
  const char *fortxt = json_string_value(json_object_get(args, "for"));
  char dur[32];

  *nconn = jconns ? (int)json_integer_value(jconns) : 4;
  if (!is_key_list(keys)) {
    er_buf_printf(x->detail,
                  "redis.contend: \"keys\" must be 1 to %d non-empty strings",
                  MAX_KEYS);
    return ER_STEP_FATAL;
  }
  c->nkeys = json_array_size(keys);
  if (jconns &&
      (!json_is_integer(jconns) || *nconn < 1 || *nconn > MAX_CONNS)) {
    er_buf_printf(x->detail, "redis.contend: \"connections\" must be 1 to %d",
                  MAX_CONNS);
    return ER_STEP_FATAL;
  }
  if (!fortxt || er_parse_duration(fortxt, ms) != 0 || *ms < 1 ||
      *ms > MAX_FOR_MS) {
    er_buf_printf(x->detail,
                  "redis.contend: \"for\" must be a duration from 1ms to 10m");
    return ER_STEP_FATAL;
  }
  if (command &&
      (json_array_size(command) == 0 || !has_key_placeholder(command))) {
    er_buf_printf(x->detail,
                  "redis.contend: \"command\" must be a non-empty array with "
                  "\"{key}\" where the key goes");
    return ER_STEP_FATAL;
  }
  c->url = json_string_value(json_object_get(args, "url"));
  if (!c->url)
    c->url = er_exec_env_str(x, "redis", "url");
  if (!c->url) {
    er_buf_printf(x->detail,
                  "redis.contend: no Redis URL: set redis.url in the "
                  "environment file or give \"url\" in the step");
    return ER_STEP_FATAL;
  }
  er_fmt_duration(*ms, dur);
  if (er_now_ms() + *ms > x->deadline_ms) {
    er_buf_printf(x->detail,
                  "redis.contend for %s does not fit in what is left of the "
                  "scenario timeout",
                  dur);
    return ER_STEP_FAIL;
  }
  return ER_STEP_OK;
}

/* The workers and their threads (nconn each, *w and *th owned by the
 * caller, also when this fails). */
static int alloc_workers(contend_t *c, int nconn, worker_t **w,
                         pthread_t **th) {
  *w = calloc((size_t)nconn, sizeof **w);
  *th = calloc((size_t)nconn, sizeof **th);
  if (!*w || !*th)
    return -1;
  for (int i = 0; i < nconn; i++) {
    (*w)[i].c = c;
    (*w)[i].idx = i;
    (*w)[i].counts = calloc(c->nkeys, sizeof *(*w)[i].counts);
    if (!(*w)[i].counts)
      return -1;
  }
  return 0;
}

/* Starts the workers, lets them write for ms together and waits for them.
 * Returns how long they wrote. */
static int64_t run_workers(contend_t *c, worker_t *w, pthread_t *th, int nconn,
                           int64_t ms) {
  int started = 0;
  int64_t t0;
  for (int i = 0; i < nconn; i++) {
    if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0) {
      set_error(c, false, "could not start a thread");
      break;
    }
    started++;
  }
  /* every connection up (each bounded by CONNECT_MS), then all at once */
  pthread_mutex_lock(&c->mu);
  while (c->connected < started)
    pthread_cond_wait(&c->cv, &c->mu);
  t0 = er_now_ms();
  c->end_ms = t0 + ms;
  if (c->end_ms > c->deadline_ms)
    c->end_ms = c->deadline_ms;
  c->open = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  for (int i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  return er_now_ms() - t0;
}

/* The step's result (caller owns it; NULL when out of memory), *total the
 * writes; logs what was written. */
static json_t *collect(er_exec_t *x, const contend_t *c, const worker_t *w,
                       int nconn, int64_t took, long long *total) {
  json_t *result = json_object(), *per_key = json_object();
  er_buf_t summary = ER_BUF_INIT(2048);
  char tk[32];

  *total = 0;
  if (!result || !per_key) {
    json_decref(result);
    json_decref(per_key);
    return NULL;
  }
  for (size_t k = 0; k < c->nkeys; k++) {
    long long n = 0;
    for (int i = 0; i < nconn; i++)
      n += w[i].counts[k];
    *total += n;
    json_object_set_new(per_key, c->keys[k], json_integer(n));
    if (k < 8)
      er_buf_printf(&summary, "%s%s: %lld", k ? ", " : "", c->keys[k], n);
    else if (k == 8)
      er_buf_puts(&summary, ", ...");
  }
  json_object_set_new(result, "writes", json_integer(*total));
  json_object_set_new(result, "connections", json_integer(nconn));
  json_object_set_new(result, "for_ms", json_integer(took));
  json_object_set_new(result, "per_key", per_key); /* result owns it */
  er_fmt_duration(took, tk);
  er_exec_log(x,
              "redis.contend: %d connection(s) wrote %lld time(s) to %zu "
              "key(s) in %s (%s)",
              nconn, *total, c->nkeys, tk, er_buf_cstr(&summary));
  er_buf_free(&summary);
  er_diag_note_contend(x, *total);
  return result;
}

/* capture: "" (all of result) or a pointer into it. Returns the step's
 * result. */
static int capture_result(er_exec_t *x, const json_t *capture, json_t *result) {
  const char *name;
  json_t *ptr;
  if (!capture)
    return ER_STEP_OK;
  json_object_foreach((json_t *)capture, name, ptr) {
    const char *pp = json_string_value(ptr);
    json_t *v = pp && (pp[0] == '\0' || pp[0] == '/')
                    ? er_json_pointer(result, pp)
                    : NULL;
    if (!v) {
      er_buf_printf(x->detail,
                    "redis.contend: capture \"%s\" must be \"\" (the whole "
                    "result) or a pointer into it: \"/writes\", "
                    "\"/connections\", \"/for_ms\" or \"/per_key/KEY\"",
                    name);
      return ER_STEP_FATAL;
    }
    if (x->captures && json_object_set(x->captures, name, v) != 0)
      return ER_STEP_ERROR;
  }
  return ER_STEP_OK;
}

/* safety.h: contending writes, so only on a test target */
static int guard(er_exec_t *x, const char *url) {
  er_err_t err = {0};
  er_redis_t *r = er_redis_new(url, 0, &err);
  int rc = r ? er_safety_guard_redis(x, r, "redis.contend") : ER_STEP_OK;
  er_redis_free(r); /* a bad URL: the connections report it */
  return rc;
}

static int run_contend(er_exec_t *x, const json_t *args) {
  contend_t c;
  worker_t *w = NULL;
  pthread_t *th = NULL;
  int nconn = 0;
  int64_t ms = 0, took;
  long long total = 0;
  json_t *result = NULL;
  int rc, p;
  char tk[32];

  memset(&c, 0, sizeof c);
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv, NULL);
  atomic_init(&c.stop, false);
  c.deadline_ms = x->deadline_ms;

  rc = contend_args(x, args, &c, &nconn, &ms);
  if (rc != ER_STEP_OK || (rc = guard(x, c.url)) != ER_STEP_OK)
    goto out;
  p = prepare(&c, json_object_get(args, "keys"),
              json_object_get(args, "command"), x->detail);
  if (p != 0) {
    if (p < 0)
      er_buf_puts(x->detail, "redis.contend: out of memory");
    rc = p < 0 ? ER_STEP_ERROR : ER_STEP_FATAL;
    goto out;
  }
  if (alloc_workers(&c, nconn, &w, &th) != 0) {
    er_buf_puts(x->detail, "redis.contend: out of memory");
    rc = ER_STEP_ERROR;
    goto out;
  }
  took = run_workers(&c, w, th, nconn, ms);
  result = collect(x, &c, w, nconn, took, &total);
  if (!result) {
    er_buf_puts(x->detail, "redis.contend: out of memory");
    rc = ER_STEP_ERROR;
    goto out;
  }
  if (c.err[0] || er_interrupted()) {
    er_fmt_duration(took, tk);
    er_buf_printf(x->detail, "redis.contend: %s (after %lld write(s) in %s)",
                  c.err[0] ? c.err : "interrupted", total, tk);
    rc = c.err_input ? ER_STEP_FATAL : ER_STEP_ERROR;
    goto out;
  }
  rc = capture_result(x, json_object_get(args, "capture"), result);
out:
  if (w)
    for (int i = 0; i < nconn; i++)
      free(w[i].counts);
  free(w);
  free(th);
  for (size_t k = 0; c.cmds && k < c.nkeys; k++)
    kcmd_free(&c.cmds[k]);
  free(c.cmds);
  free(c.keys);
  json_decref(result);
  pthread_mutex_destroy(&c.mu);
  pthread_cond_destroy(&c.cv);
  return rc;
}

static void validate_contend(const json_t *args, er_diag_t *d) {
  const json_t *keys = json_object_get(args, "keys");
  const json_t *conns = json_object_get(args, "connections");
  const json_t *fv = json_object_get(args, "for");
  const json_t *command = json_object_get(args, "command");
  const json_t *capture = json_object_get(args, "capture");
  int64_t ms = 0;

  if (json_is_array(keys)) {
    if (json_array_size(keys) == 0 || json_array_size(keys) > MAX_KEYS)
      er_diag_error(d, "/keys", "give 1 to %d keys", MAX_KEYS);
    for (size_t i = 0; i < json_array_size(keys); i++) {
      const json_t *k = json_array_get(keys, i);
      if (!json_is_string(k) || json_string_length(k) == 0) {
        char p[48];
        snprintf(p, sizeof p, "/keys/%zu", i);
        er_diag_error(d, p, "each key is a non-empty string");
      }
    }
  }
  if (json_is_integer(conns) &&
      (json_integer_value(conns) < 1 || json_integer_value(conns) > MAX_CONNS))
    er_diag_error(d, "/connections", "connections must be between 1 and %d",
                  MAX_CONNS);
  if (json_is_string(fv) && !strstr(json_string_value(fv), "${") &&
      er_parse_duration(json_string_value(fv), &ms) == 0 &&
      (ms < 1 || ms > MAX_FOR_MS))
    er_diag_error(d, "/for", "\"for\" must be from 1ms to 10m");
  if (json_is_array(command)) {
    if (json_array_size(command) == 0)
      er_diag_error(d, "/command", "the command is empty");
    for (size_t i = 0; i < json_array_size(command); i++) {
      const json_t *e = json_array_get(command, i);
      if (!json_is_string(e) && !json_is_number(e)) {
        char p[48];
        snprintf(p, sizeof p, "/command/%zu", i);
        er_diag_error(d, p, "command elements are strings or numbers");
      }
    }
    for (size_t i = 0; i < json_array_size(command); i++) {
      const char *e = json_string_value(json_array_get(command, i));
      if (e && strstr(e, "${key}")) {
        char p[48];
        snprintf(p, sizeof p, "/command/%zu", i);
        er_diag_error(d, p,
                      "the key placeholder is \"{key}\" (a ${...} template "
                      "is expanded once, before the step runs)");
      }
    }
    if (json_array_size(command) > 0 && !has_key_placeholder(command))
      er_diag_error(d, "/command",
                    "write \"{key}\" where each key goes, e.g. [\"SADD\", "
                    "\"{key}\", \"x\"] (\"{key}\", not \"${key}\")");
  }
  if (json_is_object(capture)) {
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)capture, name, v) {
      const char *s = json_string_value(v);
      if (!s || (s[0] != '\0' && s[0] != '/'))
        er_diag_error(d, "/capture",
                      "capture \"%s\": give \"\" (the whole result) or a "
                      "JSON pointer such as \"/writes\"",
                      name);
    }
  }
}

const er_action_t er_act_redis_contend = {.name = "redis.contend",
                                          .keys = contend_keys,
                                          .validate = validate_contend,
                                          .run = run_contend};
