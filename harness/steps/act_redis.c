/* act_redis.c: the "redis", "redis.clean" and "redis.seed" steps.
 *
 * {"redis": {"command": ["HGET", "k", "f"], "expect": <matcher>,
 *            "capture": {"name": "" | "/pointer" | "$.path" | {...}},
 *            "url": "redis://..."}}
 *   The reply becomes JSON (bulk/status -> string, integer -> integer,
 *   nil -> null, array -> array; HGETALL / CONFIG GET replies become
 *   objects) and is matched against expect (see jsonx.h matchers).
 *   Without expect, an error reply fails the step. An error reply is
 *   the object {"error": "ERR text"}, so expect can match it:
 *   "expect": {"error": {"$regex": "^WRONGTYPE"}}.
 *   Command elements are strings or numbers (numbers are sent as their
 *   decimal text; integers beyond 64 bits too). capture (lang/capture.h)
 *   stores the whole reply (""), the value at a JSON pointer or JSONPath
 *   into it ("/0", "$[0]"; into a string reply that holds JSON too), or a
 *   regex group of its text, under the name, after expect held.
 *
 * {"redis.clean": {"match": "els:*" | ["a:*", "b:*"], "batch": 500,
 *                  "flush": false, "url": "..."}}
 *   SCAN MATCH + UNLINK in batches; never KEYS. "flush": true uses FLUSHDB
 *   and is refused unless the environment sets redis.allow_flush.
 *   batch is SCAN's COUNT (1 to 100000, default 5000). Give either match
 *   or "flush": true. The log says how many keys each pattern deleted.
 *
 * {"redis.seed": {"keys": {"k": "v" | {"value": "v", "ttl": "1h"} |
 *                          {"hash": {...}, "ttl": ..} | {"set": [...]}},
 *                 "ttl": "1h", "url": "..."}}
 *   Strings go in with SET (PX when there is a TTL); {"hash": {...}} is
 *   written with HSET, {"set": [...]} with SADD and {"list": [...]} with
 *   RPUSH, each after deleting the key, in one MULTI/EXEC. Numbers are
 *   sent as their decimal text; an object or array given as "value" is
 *   stored as its compact JSON text. A key's "ttl" overrides the step's;
 *   "ttl": null on a key means no expiry. An empty hash/set/list deletes
 *   the key (Redis has no empty collections).
 *
 * The URL defaults to the environment's redis.url. Connections are kept
 * in the branch's session, one per URL. Connection problems make the step
 * an error (await retries those); problems with the step's arguments
 * found at run time make it fatal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/redis.h"
#include "base/jsonbig.h"
#include "lang/capture.h"
#include "lang/jsonx.h"
#include "run/exec.h"
#include "run/safety.h"

static const er_keyspec_t redis_keys[] = {
    {"command", ER_T_ARRAY, true, NULL, NULL},
    {"expect", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"capture", ER_T_OBJECT, false, NULL, NULL},
    {"url", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t clean_keys[] = {
    {"match", ER_T_STRING | ER_T_ARRAY, false, NULL, NULL},
    {"batch", ER_T_INT, false, NULL, NULL},
    {"flush", ER_T_BOOL, false, NULL, NULL},
    {"url", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t seed_keys[] = {
    {"keys", ER_T_OBJECT, false, NULL, NULL},
    {"keys_file", ER_T_STRING | ER_T_DATA, false, NULL, NULL},
    {"ttl", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"url", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

#define CLEAN_BATCH_DEFAULT 5000
#define CLEAN_BATCH_MAX 100000
#define BRIEF 300 /* bytes of a value shown in a message */

/* ---- shared helpers ------------------------------------------------------ */

/* The connection for the step's URL (or the environment's), kept in the
 * session. Returns it, or NULL with *rc and x->detail set. */
static er_redis_t *conn_for(er_exec_t *x, const json_t *args, const char *act,
                            int *rc) {
  const char *url = json_string_value(json_object_get(args, "url"));
  er_redis_t *r = NULL;
  er_buf_t name = ER_BUF_INIT(8192);
  er_err_t err = {0};

  if (!url)
    url = er_exec_env_str(x, "redis", "url");
  if (!url) {
    er_buf_printf(x->detail,
                  "%s: no Redis URL: set redis.url in the environment file "
                  "({\"redis\": {\"url\": \"redis://127.0.0.1:6379/0\"}}) "
                  "or give \"url\" in the step",
                  act);
    *rc = ER_STEP_FATAL;
    goto out;
  }
  if (!x->session) {
    er_buf_printf(x->detail, "%s: no session to keep the connection in", act);
    *rc = ER_STEP_FATAL;
    goto out;
  }
  er_buf_printf(&name, "redis:%s", url);
  if (name.truncated) {
    er_buf_printf(x->detail, "%s: the Redis URL is too long", act);
    *rc = ER_STEP_FATAL;
    goto out;
  }
  r = er_session_get(x->session, er_buf_cstr(&name));
  if (r)
    goto out;
  r = er_redis_new(url, 0, &err);
  if (!r) {
    er_buf_printf(x->detail, "%s: %s", act, err.msg);
    *rc = ER_STEP_FATAL;
    goto out;
  }
  if (er_session_put(x->session, er_buf_cstr(&name), r, er_redis_free) != 0) {
    er_redis_free(r);
    r = NULL;
    er_buf_printf(x->detail, "%s: out of memory", act);
    *rc = ER_STEP_ERROR;
  }
out:
  er_buf_free(&name);
  return r;
}

/* Adapter failure -> step outcome: bad input is fatal, the rest (server
 * away, timeouts, interrupts) an error await may retry. */
static int io_rc(const er_err_t *err) {
  return err->code == ER_E_INPUT ? ER_STEP_FATAL : ER_STEP_ERROR;
}

/* Text of a scalar to send: strings as they are (binary-safe), integers
 * and reals as decimal text. Returns a new string with *len, or NULL when
 * v is not a string or number (or memory ran out). */
static char *scalar_text(const json_t *v, size_t *len) {
  char tmp[64];
  char *s;
  if (er_big_digits(v)) { /* an integer beyond 64 bits: its digits */
    *len = strlen(er_big_digits(v));
    return er_strdup(er_big_digits(v));
  }
  if (json_is_string(v)) {
    *len = json_string_length(v);
    s = malloc(*len + 1);
    if (s)
      memcpy(s, json_string_value(v), *len + 1);
    return s;
  }
  if (json_is_integer(v)) {
    snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(v));
  } else if (json_is_real(v)) {
    double d = json_real_value(v);
    snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d)
      snprintf(tmp, sizeof tmp, "%.17g", d);
  } else {
    return NULL;
  }
  *len = strlen(tmp);
  return er_strdup(tmp);
}

/* An argv being built; owns its strings. */
typedef struct argv_s {
  char **v;
  size_t *len;
  size_t n, alloc;
} argv_t;

static void argv_free(argv_t *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
  free(a->len);
  memset(a, 0, sizeof *a);
}

static int argv_push_n(argv_t *a, char *s, size_t len) { /* steals s */
  if (!s)
    return -1;
  if (a->n == a->alloc) {
    size_t na = a->alloc ? a->alloc * 2 : 8;
    char **nv = realloc(a->v, na * sizeof *nv);
    size_t *nl;
    if (!nv) {
      free(s);
      return -1;
    }
    a->v = nv;
    nl = realloc(a->len, na * sizeof *nl);
    if (!nl) {
      free(s);
      return -1;
    }
    a->len = nl;
    a->alloc = na;
  }
  a->v[a->n] = s;
  a->len[a->n] = len;
  a->n++;
  return 0;
}

static int argv_push(argv_t *a, const char *s) {
  return argv_push_n(a, er_strdup(s), strlen(s));
}

/* Pushes a string or number; 1 when v is neither, -1 out of memory. */
static int argv_push_scalar(argv_t *a, const json_t *v) {
  size_t len = 0;
  char *s;
  if (!json_is_string(v) && !json_is_number(v))
    return 1;
  s = scalar_text(v, &len);
  return argv_push_n(a, s, len);
}

/* JSON pointer token escaping: "~" -> "~0", "/" -> "~1". */
static void ptr_token(er_buf_t *b, const char *k) {
  for (; *k; k++) {
    if (*k == '~')
      er_buf_puts(b, "~0");
    else if (*k == '/')
      er_buf_puts(b, "~1");
    else
      er_buf_append(b, k, 1);
  }
}

static bool has_template(const char *s) { return s && strstr(s, "${"); }

/* ---- "redis" ------------------------------------------------------------- */

/* HGETALL and CONFIG GET answer with flat [k1, v1, k2, v2, ...] arrays;
 * they read better as objects. Returns a new object, or NULL to keep the
 * array. */
static json_t *pairs_object(const json_t *cmd, const json_t *reply) {
  const char *c0 = json_string_value(json_array_get(cmd, 0));
  const char *c1 = json_string_value(json_array_get(cmd, 1));
  json_t *o;
  size_t n = json_array_size(reply);
  bool pairs =
      c0 && (!strcasecmp(c0, "HGETALL") ||
             (!strcasecmp(c0, "CONFIG") && c1 && !strcasecmp(c1, "GET")));
  if (!pairs || !json_is_array(reply) || n % 2 != 0)
    return NULL;
  for (size_t i = 0; i < n; i += 2)
    if (!json_is_string(json_array_get(reply, i)))
      return NULL;
  o = json_object();
  for (size_t i = 0; o && i < n; i += 2)
    json_object_set(o, json_string_value(json_array_get(reply, i)),
                    json_array_get(reply, i + 1));
  return o;
}

/* One "redis" step: its arguments (borrowed from the step's args) and
 * what sending the command gave (owned, freed by run_redis). */
typedef struct redis_call {
  const json_t *cmd, *expect, *capture;
  char *cmdtxt;  /* owned: the command, brief */
  argv_t av;     /* owned: the command to send */
  json_t *reply; /* owned */
  char *rtxt;    /* owned: the reply, brief (NULL when memory ran out) */
  int got;       /* er_redis_command's answer */
  er_err_t err;
} redis_call_t;

/* "command" -> c->av; ER_STEP_OK, or an ER_STEP_* code with x->detail
 * set when the step's arguments are at fault. */
static int redis_argv(er_exec_t *x, redis_call_t *c) {
  if (json_array_size(c->cmd) == 0) {
    er_buf_puts(x->detail, "redis: \"command\" must be a non-empty array");
    return ER_STEP_FATAL;
  }
  for (size_t i = 0; i < json_array_size(c->cmd); i++) {
    int p = argv_push_scalar(&c->av, json_array_get(c->cmd, i));
    if (p > 0) {
      er_buf_printf(x->detail,
                    "redis %s: /command/%zu must be a string or a number",
                    c->cmdtxt, i);
      return ER_STEP_FATAL;
    }
    if (p < 0)
      return ER_STEP_ERROR;
  }
  return ER_STEP_OK;
}

/* Sends the command; the reply (pairs as an object) into c->reply and
 * c->rtxt. */
static int redis_send(er_exec_t *x, er_redis_t *r, redis_call_t *c) {
  json_t *obj;
  c->got = er_redis_command(r, (int)c->av.n, (const char *const *)c->av.v,
                            c->av.len, x->deadline_ms, &c->reply, &c->err);
  if (c->got < 0) {
    er_buf_printf(x->detail, "redis %s: %s", c->cmdtxt, c->err.msg);
    return io_rc(&c->err);
  }
  obj = pairs_object(c->cmd, c->reply);
  if (obj) {
    json_decref(c->reply);
    c->reply = obj;
  }
  c->rtxt = er_json_brief(c->reply, BRIEF);
  return ER_STEP_OK;
}

/* The reply against "expect", or without it: no error reply. */
static int redis_check_reply(er_exec_t *x, const redis_call_t *c) {
  er_buf_t why = ER_BUF_INIT(4096);
  int rc = ER_STEP_OK;
  if (c->expect) {
    if (!er_json_match(c->reply, c->expect, &why)) {
      er_buf_printf(x->detail, "redis %s: %s", c->cmdtxt, er_buf_cstr(&why));
      if (er_json_is_matcher(c->expect) || json_is_object(c->expect) ||
          json_is_array(c->expect))
        er_buf_printf(x->detail, "\nreply: %s", c->rtxt ? c->rtxt : "?");
      rc = ER_STEP_FAIL;
    }
  } else if (c->got == ER_REDIS_ERROR_REPLY) {
    er_buf_printf(x->detail, "redis %s: the server replied with an error: %s",
                  c->cmdtxt, c->err.msg);
    rc = ER_STEP_FAIL;
  }
  er_buf_free(&why);
  return rc;
}

/* The sources of a capture (lang/capture.h): the reply; a string reply
 * that holds JSON is also read as JSON by paths. */
typedef struct redis_cap {
  const json_t *reply;
  json_t *parsed; /* owned */
  bool tried;
} redis_cap_t;

static const json_t *cap_doc(void *ud, const char **why_not) {
  (void)why_not;
  return ((redis_cap_t *)ud)->reply;
}

static const json_t *cap_alt(void *ud) {
  redis_cap_t *rc = ud;
  if (!rc->tried && json_is_string(rc->reply)) {
    json_t *v = er_json_from_text(json_string_value(rc->reply),
                                  json_string_length(rc->reply));
    rc->tried = true;
    if (json_is_object(v) || json_is_array(v))
      rc->parsed = v;
    else
      json_decref(v);
  }
  return rc->parsed;
}

/* Stores the captures from the reply in x->captures. */
static int redis_capture(er_exec_t *x, const redis_call_t *c) {
  const char *name;
  json_t *spec;
  redis_cap_t rc = {c->reply, NULL, false};
  er_cap_src_t src = {0, "reply", &rc, cap_doc, cap_alt, NULL, 0, NULL, NULL};
  int out = ER_STEP_OK;
  if (!c->capture)
    return ER_STEP_OK;
  if (json_is_string(c->reply) && !er_big_digits(c->reply)) {
    src.text = json_string_value(c->reply);
    src.text_len = json_string_length(c->reply);
  }
  json_object_foreach((json_t *)c->capture, name, spec) {
    er_buf_t why = ER_BUF_INIT(2048);
    char msg[512];
    json_t *v;
    if (er_capture_check(spec, 0, msg, sizeof msg)) {
      er_buf_printf(x->detail, "redis %s: capture \"%s\": %s", c->cmdtxt, name,
                    msg);
      out = ER_STEP_FATAL;
    } else if ((v = er_capture_take(spec, &src, &why)) == NULL) {
      er_buf_printf(x->detail, "redis %s: capture \"%s\": %s; the reply: %s",
                    c->cmdtxt, name, er_buf_cstr(&why),
                    c->rtxt ? c->rtxt : "?");
      out = ER_STEP_FAIL;
    } else if (x->captures && json_object_set_new(x->captures, name, v) != 0) {
      out = ER_STEP_ERROR;
    } else if (!x->captures) {
      json_decref(v);
    }
    er_buf_free(&why);
    if (out != ER_STEP_OK)
      break;
  }
  json_decref(rc.parsed);
  return out;
}

static int run_redis(er_exec_t *x, const json_t *args) {
  redis_call_t c = {.cmd = json_object_get(args, "command"),
                    .expect = json_object_get(args, "expect"),
                    .capture = json_object_get(args, "capture")};
  er_redis_t *r;
  int rc = ER_STEP_FATAL;

  c.cmdtxt = er_json_brief(c.cmd, BRIEF);
  if (!c.cmdtxt) {
    rc = ER_STEP_ERROR;
    goto out;
  }
  rc = redis_argv(x, &c);
  if (rc != ER_STEP_OK)
    goto out;
  rc = ER_STEP_FATAL; /* conn_for sets it when it fails */
  r = conn_for(x, args, "redis", &rc);
  if (!r)
    goto out;
  rc = er_safety_guard_redis_cmd(x, r, c.cmdtxt, c.av.n,
                                 (const char *const *)c.av.v);
  if (rc != ER_STEP_OK)
    goto out;
  rc = redis_send(x, r, &c);
  if (rc != ER_STEP_OK)
    goto out;
  rc = redis_check_reply(x, &c);
  if (rc != ER_STEP_OK)
    goto out;
  rc = redis_capture(x, &c);
  if (rc != ER_STEP_OK)
    goto out;
  if (!x->polling)
    er_exec_log(x, "redis %s -> %s", c.cmdtxt, c.rtxt ? c.rtxt : "?");
  rc = ER_STEP_OK;
out:
  argv_free(&c.av);
  json_decref(c.reply);
  free(c.cmdtxt);
  free(c.rtxt);
  return rc;
}

static void validate_url(const json_t *args, er_diag_t *d) {
  const char *url = json_string_value(json_object_get(args, "url"));
  er_redis_url_t u;
  er_err_t err = {0};
  if (!url || has_template(url))
    return;
  if (er_redis_url_parse(url, &u, &err) != 0)
    er_diag_error(d, "/url", "%s", err.msg);
  else
    er_redis_url_free(&u);
}

static void validate_redis(const json_t *args, er_diag_t *d) {
  const json_t *cmd = json_object_get(args, "command");
  const json_t *capture = json_object_get(args, "capture");
  if (json_is_array(cmd)) {
    if (json_array_size(cmd) == 0)
      er_diag_error(d, "/command",
                    "the command is empty; write it as an array such as "
                    "[\"GET\", \"key\"]");
    for (size_t i = 0; i < json_array_size(cmd); i++) {
      const json_t *e = json_array_get(cmd, i);
      char p[48];
      snprintf(p, sizeof p, "/command/%zu", i);
      if (!json_is_string(e) && !json_is_number(e))
        er_diag_error(d, p,
                      "command elements are strings or numbers; write "
                      "booleans, null and JSON as strings");
      else if (i == 0 && json_is_string(e) && json_string_length(e) == 0)
        er_diag_error(d, p, "the command name is empty");
    }
  }
  if (json_is_object(capture)) {
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)capture, name, v) {
      char msg[512];
      if (er_capture_check(v, 0, msg, sizeof msg)) {
        er_buf_t p = ER_BUF_INIT(1024);
        er_buf_puts(&p, "/capture/");
        ptr_token(&p, name);
        er_diag_error(d, er_buf_cstr(&p), "%s", msg);
        er_buf_free(&p);
      }
    }
  }
  validate_url(args, d);
}

/* ---- "redis.clean" ------------------------------------------------------- */

static bool allow_flush(const er_exec_t *x) {
  json_t *sec = x->env ? json_object_get(x->env, "redis") : NULL;
  return json_is_true(json_object_get(sec, "allow_flush"));
}

static int run_clean(er_exec_t *x, const json_t *args) {
  const json_t *match = json_object_get(args, "match");
  const json_t *jbatch = json_object_get(args, "batch");
  bool flush = json_is_true(json_object_get(args, "flush"));
  json_int_t batch = CLEAN_BATCH_DEFAULT;
  er_err_t err = {0};
  er_redis_t *r;
  size_t npat;
  int rc = ER_STEP_FATAL;

  if (jbatch) {
    batch = json_integer_value(jbatch);
    if (!json_is_integer(jbatch) || batch < 1 || batch > CLEAN_BATCH_MAX) {
      er_buf_printf(x->detail,
                    "redis.clean: \"batch\" must be an integer from 1 to %d",
                    CLEAN_BATCH_MAX);
      return ER_STEP_FATAL;
    }
  }
  if (flush && match) {
    er_buf_puts(x->detail,
                "redis.clean: give either \"match\" or \"flush\": true");
    return ER_STEP_FATAL;
  }
  if (!flush && !match) {
    er_buf_puts(x->detail, "redis.clean: nothing to clean: give \"match\" "
                           "(a pattern such as \"els:*\") or \"flush\": true");
    return ER_STEP_FATAL;
  }
  if (flush && !allow_flush(x)) {
    er_buf_puts(x->detail,
                "redis.clean: \"flush\": true empties the whole database and "
                "is refused; to allow it set \"allow_flush\": true in the "
                "\"redis\" section of the environment file, or clean only "
                "your keys with \"match\": \"prefix:*\"");
    return ER_STEP_FATAL;
  }
  npat = json_is_array(match) ? json_array_size(match) : 1;
  for (size_t i = 0; match && i < npat; i++) {
    const json_t *p = json_is_array(match) ? json_array_get(match, i) : match;
    if (!json_is_string(p) || json_string_length(p) == 0) {
      er_buf_puts(x->detail,
                  "redis.clean: \"match\" takes non-empty glob patterns");
      return ER_STEP_FATAL;
    }
  }

  r = conn_for(x, args, "redis.clean", &rc);
  if (!r)
    return rc;
  rc = er_safety_guard_redis(x, r, "redis.clean");
  if (rc != ER_STEP_OK)
    return rc;
  if (flush) {
    if (er_redis_flushdb(r, x->deadline_ms, &err) != 0) {
      er_buf_printf(x->detail, "redis.clean: %s", err.msg);
      return io_rc(&err);
    }
    er_exec_log(x, "redis.clean: FLUSHDB on %s", er_redis_redacted(r));
    return ER_STEP_OK;
  }
  for (size_t i = 0; i < npat; i++) {
    const json_t *p = json_is_array(match) ? json_array_get(match, i) : match;
    long long deleted = 0;
    int s = er_redis_scan_unlink(r, json_string_value(p), (int)batch,
                                 x->deadline_ms, &deleted, &err);
    er_exec_log(x, "redis.clean: deleted %lld key(s) matching \"%s\"%s",
                deleted, json_string_value(p), s != 0 ? " before failing" : "");
    if (s != 0) {
      er_buf_printf(x->detail, "redis.clean \"%s\": %s", json_string_value(p),
                    err.msg);
      return io_rc(&err);
    }
  }
  return ER_STEP_OK;
}

static void validate_clean(const json_t *args, er_diag_t *d) {
  const json_t *match = json_object_get(args, "match");
  const json_t *batch = json_object_get(args, "batch");
  const json_t *flush = json_object_get(args, "flush");
  if (json_is_string(match) && json_string_length(match) == 0)
    er_diag_error(d, "/match", "the pattern is empty; use e.g. \"els:*\"");
  if (json_is_array(match)) {
    if (json_array_size(match) == 0)
      er_diag_error(d, "/match", "no pattern given");
    for (size_t i = 0; i < json_array_size(match); i++) {
      const json_t *p = json_array_get(match, i);
      if (!json_is_string(p) || json_string_length(p) == 0) {
        char path[48];
        snprintf(path, sizeof path, "/match/%zu", i);
        er_diag_error(d, path,
                      "a pattern is a non-empty string such as "
                      "\"els:*\"");
      }
    }
  }
  if (json_is_integer(batch) && (json_integer_value(batch) < 1 ||
                                 json_integer_value(batch) > CLEAN_BATCH_MAX))
    er_diag_error(d, "/batch", "batch must be from 1 to %d", CLEAN_BATCH_MAX);
  if (match && json_is_true(flush))
    er_diag_error(d, "", "give either \"match\" or \"flush\": true, not both");
  if (!match && !json_is_true(flush))
    er_diag_error(d, "",
                  "redis.clean needs \"match\" (a pattern such as \"els:*\") "
                  "or \"flush\": true");
  validate_url(args, d);
}

/* ---- "redis.seed" -------------------------------------------------------- */

static const char *const seed_spec_keys[] = {"value", "hash", "set", "list",
                                             "ttl"};
#define N_SEED_SPEC_KEYS (sizeof seed_spec_keys / sizeof seed_spec_keys[0])

/* Runs one command; a failure, an error reply or an EXEC result holding
 * an error makes the step an error, with detail. Returns 0 or an
 * ER_STEP_* code. */
static int seed_cmd(er_exec_t *x, er_redis_t *r, argv_t *av, const char *key) {
  er_err_t err = {0};
  json_t *reply = NULL;
  int rc = 0;
  int got = er_redis_command(r, (int)av->n, (const char *const *)av->v, av->len,
                             x->deadline_ms, &reply, &err);
  if (got < 0) {
    er_buf_printf(x->detail, "redis.seed \"%s\": %s", key, err.msg);
    rc = io_rc(&err);
  } else if (got == ER_REDIS_ERROR_REPLY) {
    er_buf_printf(x->detail,
                  "redis.seed \"%s\": %s: the server replied with an error: "
                  "%s",
                  key, av->v[0], err.msg);
    rc = ER_STEP_ERROR;
  } else if (json_is_array(reply)) { /* EXEC: one reply per command */
    for (size_t i = 0; i < json_array_size(reply); i++) {
      const char *e =
          json_string_value(json_object_get(json_array_get(reply, i), "error"));
      if (e) {
        er_buf_printf(x->detail,
                      "redis.seed \"%s\": the transaction failed: %.300s", key,
                      e);
        rc = ER_STEP_ERROR;
        break;
      }
    }
  }
  json_decref(reply);
  return rc;
}

/* One key to seed, as its spec gives it (pointers borrowed from the
 * spec). */
typedef struct seed {
  const char *key;
  const json_t *value; /* a plain value: what SET writes */
  const json_t *coll;  /* a hash, set or list: its fields or members */
  const char *kind;    /* "hash", "set" or "list" with coll */
  const char *collcmd; /* HSET, SADD or RPUSH with coll */
  int64_t ttl;         /* ms; 0 = none */
  char ttltxt[32];     /* ttl as decimal text */
} seed_t;

/* A spec object ({"value"|"hash"|"set"|"list": .., "ttl": ..}) -> s.
 * ER_STEP_OK, or ER_STEP_FATAL with x->detail set. */
static int seed_spec(er_exec_t *x, const json_t *spec, seed_t *s) {
  const json_t *jt = json_object_get(spec, "ttl");
  const char *k, *kind = NULL;
  json_t *v;
  int nkinds = 0;
  json_object_foreach((json_t *)spec, k, v) {
    if (!strcmp(k, "ttl"))
      continue;
    if (!strcmp(k, "value") || !strcmp(k, "hash") || !strcmp(k, "set") ||
        !strcmp(k, "list")) {
      kind = k;
      nkinds++;
    } else {
      er_buf_printf(x->detail,
                    "redis.seed \"%s\": unknown key \"%s\" (value, hash, "
                    "set, list, ttl)",
                    s->key, k);
      return ER_STEP_FATAL;
    }
  }
  if (nkinds != 1) {
    er_buf_printf(x->detail,
                  "redis.seed \"%s\": give exactly one of value, hash, set, "
                  "list",
                  s->key);
    return ER_STEP_FATAL;
  }
  if (json_is_null(jt)) {
    s->ttl = 0;
  } else if (jt) {
    if (!json_is_string(jt) ||
        er_parse_duration(json_string_value(jt), &s->ttl) != 0 || s->ttl <= 0) {
      er_buf_printf(x->detail,
                    "redis.seed \"%s\": ttl must be a duration above 0 such "
                    "as \"1h\", or null for no expiry",
                    s->key);
      return ER_STEP_FATAL;
    }
  }
  if (!strcmp(kind, "value")) {
    s->value = json_object_get(spec, "value");
  } else {
    s->kind = kind;
    s->coll = json_object_get(spec, kind);
    s->collcmd = !strcmp(kind, "hash")  ? "HSET"
                 : !strcmp(kind, "set") ? "SADD"
                                        : "RPUSH";
  }
  return ER_STEP_OK;
}

/* A string: SET key v [PX ttl]. */
static int seed_string(er_exec_t *x, er_redis_t *r, const seed_t *s) {
  argv_t av = {0};
  char *text = NULL; /* owned until pushed */
  size_t tlen = 0;
  int rc = ER_STEP_FATAL, p;

  if (json_is_object(s->value) || json_is_array(s->value)) {
    text = er_json_dumps(s->value, JSON_COMPACT | JSON_ENCODE_ANY);
    tlen = text ? strlen(text) : 0;
  } else if (json_is_string(s->value) || json_is_number(s->value)) {
    text = scalar_text(s->value, &tlen);
  } else {
    er_buf_printf(x->detail,
                  "redis.seed \"%s\": a value is a string, a number, or an "
                  "object with value, hash, set or list",
                  s->key);
    goto out;
  }
  if (argv_push(&av, "SET") || argv_push(&av, s->key)) {
    rc = ER_STEP_ERROR;
    goto out;
  }
  p = argv_push_n(&av, text, tlen); /* av owns text now */
  text = NULL;
  if (p ||
      (s->ttl > 0 && (argv_push(&av, "PX") || argv_push(&av, s->ttltxt)))) {
    rc = ER_STEP_ERROR;
    goto out;
  }
  rc = seed_cmd(x, r, &av, s->key);
out:
  free(text);
  argv_free(&av);
  return rc;
}

/* A hash's fields and values onto av (after HSET key). */
static int push_hash(er_exec_t *x, argv_t *av, const seed_t *s) {
  const char *f;
  json_t *v;
  int p;
  json_object_foreach((json_t *)s->coll, f, v) {
    if (argv_push(av, f))
      return ER_STEP_ERROR;
    if ((p = argv_push_scalar(av, v)) != 0) {
      if (p > 0)
        er_buf_printf(x->detail,
                      "redis.seed \"%s\": hash field \"%s\" must be a "
                      "string or a number",
                      s->key, f);
      return p > 0 ? ER_STEP_FATAL : ER_STEP_ERROR;
    }
  }
  return ER_STEP_OK;
}

/* A set's or list's members onto av (after SADD/RPUSH key). */
static int push_members(er_exec_t *x, argv_t *av, const seed_t *s) {
  int p;
  for (size_t i = 0; i < json_array_size(s->coll); i++) {
    if ((p = argv_push_scalar(av, json_array_get(s->coll, i))) != 0) {
      if (p > 0)
        er_buf_printf(x->detail,
                      "redis.seed \"%s\": %s element %zu must be a string "
                      "or a number",
                      s->key, s->kind, i);
      return p > 0 ? ER_STEP_FATAL : ER_STEP_ERROR;
    }
  }
  return ER_STEP_OK;
}

/* A hash, set or list: MULTI; DEL key; HSET/SADD/RPUSH key ...;
 * PEXPIRE key ttl; EXEC. */
static int seed_collection(er_exec_t *x, er_redis_t *r, const seed_t *s) {
  argv_t av = {0};
  bool hash = !strcmp(s->kind, "hash");
  int rc = ER_STEP_FATAL;
  bool multi = false;

  if ((hash && !json_is_object(s->coll)) ||
      (!hash && !json_is_array(s->coll))) {
    er_buf_printf(x->detail, "redis.seed \"%s\": %s must be %s", s->key,
                  s->kind, hash ? "an object" : "an array");
    goto out;
  }
  if (argv_push(&av, "MULTI")) {
    rc = ER_STEP_ERROR;
    goto out;
  }
  if ((rc = seed_cmd(x, r, &av, s->key)) != 0)
    goto out;
  multi = true;
  argv_free(&av);
  if (argv_push(&av, "DEL") || argv_push(&av, s->key)) {
    rc = ER_STEP_ERROR;
    goto out;
  }
  if ((rc = seed_cmd(x, r, &av, s->key)) != 0)
    goto out;
  argv_free(&av);
  if (argv_push(&av, s->collcmd) || argv_push(&av, s->key)) {
    rc = ER_STEP_ERROR;
    goto out;
  }
  rc = hash ? push_hash(x, &av, s) : push_members(x, &av, s);
  if (rc != ER_STEP_OK)
    goto out;
  if (av.n > 2) { /* an empty collection is a deleted key */
    if ((rc = seed_cmd(x, r, &av, s->key)) != 0)
      goto out;
    argv_free(&av);
    if (s->ttl > 0) {
      if (argv_push(&av, "PEXPIRE") || argv_push(&av, s->key) ||
          argv_push(&av, s->ttltxt)) {
        rc = ER_STEP_ERROR;
        goto out;
      }
      if ((rc = seed_cmd(x, r, &av, s->key)) != 0)
        goto out;
    }
  }
  argv_free(&av);
  multi = false;
  if (argv_push(&av, "EXEC")) {
    rc = ER_STEP_ERROR;
    goto out;
  }
  rc = seed_cmd(x, r, &av, s->key);
out:
  if (multi && er_redis_connected(r)) {
    /* leave no transaction open on the connection we keep */
    const char *discard[1] = {"DISCARD"};
    er_err_t ignore = {0};
    json_t *rep = NULL;
    er_redis_command(r, 1, discard, NULL, x->deadline_ms, &rep, &ignore);
    json_decref(rep);
  }
  argv_free(&av);
  return rc;
}

/* One key. spec is the value from "keys". step_ttl 0 = none. */
static int seed_key(er_exec_t *x, er_redis_t *r, const char *key,
                    const json_t *spec, int64_t step_ttl) {
  seed_t s = {.key = key, .value = spec, .ttl = step_ttl};
  int rc = ER_STEP_OK;

  if (json_is_object(spec))
    rc = seed_spec(x, spec, &s);
  if (rc != ER_STEP_OK)
    return rc;
  snprintf(s.ttltxt, sizeof s.ttltxt, "%lld", (long long)s.ttl);
  return s.coll ? seed_collection(x, r, &s) : seed_string(x, r, &s);
}

/* Writes every key of keys (an object of seeds). */
static int seed_keys_in(er_exec_t *x, const json_t *args, const json_t *keys,
                        const json_t *jttl, size_t *n) {
  int64_t ttl = 0;
  er_redis_t *r;
  const char *k;
  json_t *spec;
  int rc = ER_STEP_FATAL;

  if (jttl &&
      (!json_is_string(jttl) ||
       er_parse_duration(json_string_value(jttl), &ttl) != 0 || ttl <= 0)) {
    er_buf_puts(x->detail, "redis.seed: \"ttl\" must be a duration above 0 "
                           "such as \"1h\"");
    return ER_STEP_FATAL;
  }
  r = conn_for(x, args, "redis.seed", &rc);
  if (!r)
    return rc;
  if ((rc = er_safety_guard_redis(x, r, "redis.seed")) != ER_STEP_OK)
    return rc;
  json_object_foreach((json_t *)keys, k, spec) {
    rc = seed_key(x, r, k, spec, ttl);
    if (rc != ER_STEP_OK)
      return rc;
    (*n)++;
  }
  return ER_STEP_OK;
}

static int run_seed(er_exec_t *x, const json_t *args) {
  const json_t *keys = json_object_get(args, "keys");
  const char *file = json_string_value(json_object_get(args, "keys_file"));
  const json_t *jttl = json_object_get(args, "ttl");
  json_t *loaded = NULL;
  int rc;
  size_t n = 0;

  if (file) {
    er_err_t err = {0};
    keys = loaded = er_exec_data(x, file, &err);
    if (!loaded) {
      er_buf_printf(x->detail, "redis.seed: %s", err.msg);
      return ER_STEP_FATAL;
    }
  }
  if (!json_is_object(keys)) {
    er_buf_printf(x->detail, "redis.seed: %s must be an object of keys",
                  file ? file : "\"keys\"");
    json_decref(loaded);
    return ER_STEP_FATAL;
  }
  rc = seed_keys_in(x, args, keys, jttl, &n);
  json_decref(loaded);
  if (rc == ER_STEP_OK)
    er_exec_log(x, "redis.seed: wrote %zu key(s)%s%s", n, file ? " from " : "",
                file ? file : "");
  return rc;
}

static void validate_scalars(er_diag_t *d, const char *base, const json_t *v,
                             const char *what) {
  const char *k;
  json_t *e;
  er_buf_t p = ER_BUF_INIT(2048);
  if (json_is_object(v)) {
    json_object_foreach((json_t *)v, k, e) {
      if (!json_is_string(e) && !json_is_number(e)) {
        er_buf_reset(&p);
        er_buf_printf(&p, "%s/", base);
        ptr_token(&p, k);
        er_diag_error(d, er_buf_cstr(&p), "%s values are strings or numbers",
                      what);
      }
    }
  } else {
    for (size_t i = 0; i < json_array_size(v); i++) {
      e = json_array_get(v, i);
      if (!json_is_string(e) && !json_is_number(e)) {
        er_buf_reset(&p);
        er_buf_printf(&p, "%s/%zu", base, i);
        er_diag_error(d, er_buf_cstr(&p), "%s elements are strings or numbers",
                      what);
      }
    }
  }
  er_buf_free(&p);
}

static void validate_seed(const json_t *args, er_diag_t *d) {
  const json_t *keys = json_object_get(args, "keys");
  const json_t *ttl = json_object_get(args, "ttl");
  const char *key;
  json_t *spec;
  er_buf_t base = ER_BUF_INIT(2048), p = ER_BUF_INIT(2048);
  int64_t ms;

  if (!keys == !json_object_get(args, "keys_file"))
    er_diag_error(d, "",
                  "give exactly one of \"keys\" and \"keys_file\" (a JSON "
                  "or YAML file holding the keys)");

  if (json_is_string(ttl) && !has_template(json_string_value(ttl)) &&
      er_parse_duration(json_string_value(ttl), &ms) == 0 && ms <= 0)
    er_diag_error(d, "/ttl",
                  "ttl must be above 0 (leave it out for keys "
                  "that do not expire)");
  if (json_is_object(keys) && json_object_size(keys) == 0)
    er_diag_error(d, "/keys", "no keys to seed");
  json_object_foreach((json_t *)keys, key, spec) {
    er_buf_reset(&base);
    er_buf_puts(&base, "/keys/");
    ptr_token(&base, key);
    if (json_is_string(spec) || json_is_number(spec))
      continue;
    if (!json_is_object(spec)) {
      er_diag_error(d, er_buf_cstr(&base),
                    "a seed is a string, a number, or an object with "
                    "\"value\", \"hash\", \"set\" or \"list\" (and \"ttl\")");
      continue;
    }
    {
      const char *k;
      json_t *v;
      int nkinds = 0, unknown = 0;
      json_object_foreach(spec, k, v) {
        er_buf_reset(&p);
        er_buf_printf(&p, "%s/", er_buf_cstr(&base));
        ptr_token(&p, k);
        if (!strcmp(k, "ttl")) {
          const char *s = json_string_value(v);
          if (json_is_null(v) || has_template(s))
            continue;
          if (!s || er_parse_duration(s, &ms) != 0 || ms <= 0)
            er_diag_error(d, er_buf_cstr(&p),
                          "ttl is a duration above 0 such as \"1h\", or "
                          "null for no expiry");
        } else if (!strcmp(k, "value")) {
          nkinds++;
          if (!json_is_string(v) && !json_is_number(v) && !json_is_object(v) &&
              !json_is_array(v))
            er_diag_error(d, er_buf_cstr(&p),
                          "value is a string or a number (objects and "
                          "arrays are stored as JSON text)");
        } else if (!strcmp(k, "hash")) {
          nkinds++;
          if (!json_is_object(v))
            er_diag_error(d, er_buf_cstr(&p),
                          "hash is an object of fields: {\"f\": \"v\"}");
          else
            validate_scalars(d, er_buf_cstr(&p), v, "hash");
        } else if (!strcmp(k, "set") || !strcmp(k, "list")) {
          nkinds++;
          if (!json_is_array(v))
            er_diag_error(d, er_buf_cstr(&p), "%s is an array of members", k);
          else
            validate_scalars(d, er_buf_cstr(&p), v, k);
        } else {
          const char *dym =
              er_did_you_mean(k, seed_spec_keys, N_SEED_SPEC_KEYS);
          er_diag_error(d, er_buf_cstr(&p),
                        "unknown key \"%s\"%s%s%s (a seed takes value, hash, "
                        "set, list and ttl)",
                        k, dym ? "; did you mean \"" : "", dym ? dym : "",
                        dym ? "\"?" : "");
          unknown++;
        }
      }
      if (nkinds != 1 && !unknown)
        er_diag_error(d, er_buf_cstr(&base),
                      "give exactly one of \"value\", \"hash\", \"set\" or "
                      "\"list\"");
    }
  }
  er_buf_free(&base);
  er_buf_free(&p);
  validate_url(args, d);
}

const er_action_t er_act_redis = {.name = "redis",
                                  .keys = redis_keys,
                                  .check = true,
                                  .validate = validate_redis,
                                  .run = run_redis};
const er_action_t er_act_redis_clean = {.name = "redis.clean",
                                        .keys = clean_keys,
                                        .validate = validate_clean,
                                        .run = run_clean};
const er_action_t er_act_redis_seed = {.name = "redis.seed",
                                       .keys = seed_keys,
                                       .validate = validate_seed,
                                       .run = run_seed};
