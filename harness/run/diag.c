/* diag.c: diagnostics when a scenario fails (diag.h). */
#include "run/diag.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/http.h"
#include "adapters/pg.h"
#include "adapters/redis.h"
#include "adapters/services.h"
#include "base/jsonbig.h"
#include "base/promtext.h"
#include "base/util.h"
#include "lang/jsonx.h"
#include "lang/template.h"
#include "run/targets.h"

#define MAX_PRODUCES 256 /* produce steps recorded per scenario */
#define MAX_KEYS 64      /* distinct idempotency keys per scenario */
#define CHECK_MS 1000    /* budget of one check while producing */
#define LOG_LINES 20     /* service log tail */
#define LOG_BYTES 8192
#define TEXT_CAP (256u * 1024u)
#define WM_CACHE 16    /* topics whose watermarks are kept */
#define BRIEF_ITEMS 10 /* produces and keys listed in the text */
#define HEAD_BYTES 48  /* start of a produced value kept for the text */
#define NOTES 8        /* services and faults noted per scenario */
#define OUT_RECORDS 5000
#define OUT_BYTES (2u * 1024u * 1024u)
#define COMPLETION_KEYS 16 /* keys whose expected count is queried */
#define COLLIDE_KEYS 3     /* absent keys whose hash is looked for */

/* process-wide: guards the lazy creation of the record in a scenario
 * session and the record itself (see diag.h) */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct prod {
  char *topic, *key;
  size_t delivered, failed;
  bool reached; /* er_kafka_produce ran */
  size_t ndr;
  int32_t part[ER_KAFKA_DR_KEEP];
  int64_t off[ER_KAFKA_DR_KEEP];
  char *error;
  int ik;     /* index into keys, -1 */
  char *head; /* the first bytes of the (first) value, printable */
  char *item; /* state.assignments.item of the value, or NULL */
} prod_t;

typedef struct ikey {
  char *key;
  int before; /* 1 existed, 0 not, -1 unknown */
  int64_t before_pttl;
  char *why; /* why unknown */
} ikey_t;

typedef struct rec {
  prod_t p[MAX_PRODUCES];
  size_t np;
  ikey_t k[MAX_KEYS];
  size_t nk;
  char *read[32]; /* topics read by kafka.expect */
  size_t nread;
  bool redis_down;  /* a check could not reach Redis: skip the others */
  json_t *metrics0; /* baseline: {url: {counter: value}}; NULL: none */
  er_redis_t *redis;
  /* end offsets of the output topics (state.assignments, .completion) at
   * the first produce: [0] assignments, [1] completion */
  int64_t *out_start[2];
  int out_n[2];
  bool out_set[2];
  char *kills[NOTES], *services[NOTES], *faults[NOTES];
  size_t nkills, nservices, nfaults;
  bool rows_seen;   /* a postgres expectation passed with rows */
  char *rows_query; /* ... the last one */
  char *exp_topic;  /* a kafka.expect failed on this topic */
  long exp_matched, exp_seen;
  bool exp_exceeded;
  long long contend_writes;
} rec_t;

static void rec_free(void *v) {
  rec_t *r = v;
  if (!r)
    return;
  for (size_t i = 0; i < r->np; i++) {
    free(r->p[i].topic);
    free(r->p[i].key);
    free(r->p[i].error);
    free(r->p[i].head);
    free(r->p[i].item);
  }
  for (size_t i = 0; i < r->nk; i++) {
    free(r->k[i].key);
    free(r->k[i].why);
  }
  for (size_t i = 0; i < r->nread; i++)
    free(r->read[i]);
  json_decref(r->metrics0);
  er_redis_free(r->redis);
  for (int i = 0; i < 2; i++)
    free(r->out_start[i]);
  for (size_t i = 0; i < r->nkills; i++)
    free(r->kills[i]);
  for (size_t i = 0; i < r->nservices; i++)
    free(r->services[i]);
  for (size_t i = 0; i < r->nfaults; i++)
    free(r->faults[i]);
  free(r->rows_query);
  free(r->exp_topic);
  free(r);
}

static const json_t *state_of(const json_t *env) {
  return json_object_get(env, "state");
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- metrics ------------------------------------------------------------ */

typedef struct msum {
  const char *names[3];
  double v[3];
  bool seen[3];
} msum_t;

static int msum_cb(void *ud, const er_prom_sample_t *s) {
  msum_t *m = ud;
  for (int i = 0; i < 3; i++)
    if (m->names[i] && strcmp(s->name, m->names[i]) == 0) {
      m->v[i] += s->value;
      m->seen[i] = true;
    }
  return 0;
}

static const char *const k_counters[3] = {"exec_aborted", "processed",
                                          "duplicates"};

/* {url: {counter-name: value}} for every url that answered; NULL when
 * state.metrics is not set. */
static json_t *metrics_sample(const json_t *env, int64_t deadline) {
  const json_t *m = json_object_get(state_of(env), "metrics");
  const json_t *urls = json_object_get(m, "urls");
  json_t *out = NULL;
  er_http_t *h = NULL;
  er_err_t err = {0};
  size_t i;
  const json_t *u;
  if (!json_is_array(urls) || json_array_size(urls) == 0)
    return NULL;
  out = json_object();
  h = er_http_new(&err);
  if (!out || !h)
    goto out;
  json_array_foreach(urls, i, u) {
    er_http_req_t req;
    er_http_resp_t resp;
    msum_t ms;
    json_t *o;
    if (!json_is_string(u))
      continue;
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    memset(&ms, 0, sizeof ms);
    for (int c = 0; c < 3; c++)
      ms.names[c] = json_string_value(json_object_get(m, k_counters[c]));
    req.url = json_string_value(u);
    req.deadline_ms = min64(deadline, er_now_ms() + 500);
    er_err_clear(&err);
    if (er_http_perform(h, &req, &resp, &err) == 0 && resp.status == 200 &&
        er_prom_parse(er_buf_cstr(&resp.body), resp.body.len, msum_cb, &ms,
                      &err) == 0) {
      o = json_object();
      for (int c = 0; c < 3; c++)
        if (ms.seen[c])
          json_object_set_new(o, ms.names[c], json_real(ms.v[c]));
      json_object_set_new(out, req.url, o);
    }
    er_http_resp_free(&resp);
  }
out:
  er_http_free(h);
  return out;
}

/* ---- recording ----------------------------------------------------------- */

static rec_t *rec_get(er_exec_t *x) {
  rec_t *r;
  if (!x->scenario)
    return NULL;
  r = er_session_get(x->scenario, "diag");
  if (r)
    return r;
  r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  if (er_session_put(x->scenario, "diag", r, rec_free) != 0) {
    free(r);
    return NULL;
  }
  return r;
}

static er_redis_t *rec_redis(rec_t *r, const json_t *env) {
  const char *url =
      json_string_value(json_object_get(json_object_get(env, "redis"), "url"));
  er_err_t err = {0};
  if (!r->redis && url)
    r->redis = er_redis_new(url, 0, &err);
  return r->redis;
}

/* PTTL of key (-2: no such key, -1: no TTL): 0 with *exists / *pttl, or
 * -1 with why. */
static int key_probe(er_redis_t *rd, const char *key, int64_t deadline,
                     int *exists, int64_t *pttl, char *why, size_t whysz) {
  const char *argv[] = {"PTTL", key};
  json_t *rep = NULL;
  er_err_t err = {0};
  if (!rd) {
    snprintf(why, whysz, "no redis.url in the environment");
    return -1;
  }
  if (er_redis_command(rd, 2, argv, NULL, deadline, &rep, &err) !=
          ER_REDIS_OK ||
      !json_is_integer(rep)) {
    snprintf(why, whysz, "PTTL: %.250s", err.msg[0] ? err.msg : "odd reply");
    json_decref(rep);
    return -1;
  }
  *pttl = json_integer_value(rep);
  *exists = *pttl != -2;
  json_decref(rep);
  return 0;
}

/* The idempotency key of a message value, or NULL with why. */
static char *idem_key(const char *tmpl, const char *value, size_t len,
                      char *why, size_t whysz) {
  json_error_t je;
  json_t *ev = value ? er_json_loadb(value, len, 0, &je) : NULL;
  er_tmpl_t *t = NULL;
  json_t *k = NULL;
  er_err_t err = {0};
  char *out = NULL;
  if (!json_is_object(ev)) {
    snprintf(why, whysz, "the message value is not a JSON object");
    goto out;
  }
  t = er_tmpl_new();
  if (!t || er_tmpl_set(t, "event", ev) != 0) {
    ev = NULL;
    snprintf(why, whysz, "out of memory");
    goto out;
  }
  ev = NULL;
  k = er_tmpl_expand_str(t, tmpl, &err);
  if (!k) {
    snprintf(why, whysz, "state.idempotency_key: %.250s", err.msg);
    goto out;
  }
  if (!json_is_string(k)) {
    snprintf(why, whysz, "state.idempotency_key is not a string");
    goto out;
  }
  out = er_strdup(json_string_value(k));
out:
  json_decref(ev);
  json_decref(k);
  er_tmpl_free(t);
  return out;
}

/* The first bytes of a value, printable (other bytes as '?'). */
static char *value_head(const char *value, size_t len) {
  size_t n = len < HEAD_BYTES ? len : HEAD_BYTES, j = 0;
  char *h = value ? malloc(n + 4) : NULL;
  if (!h)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)value[i];
    h[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  if (len > n) {
    memcpy(h + j, "...", 3);
    j += 3;
  }
  h[j] = '\0';
  return h;
}

/* state.assignments.item (a JSON pointer) of a JSON value, as text; NULL
 * when not configured, not JSON or not a string. */
static char *value_item(const json_t *env, const char *value, size_t len) {
  const char *ptr = json_string_value(
      json_object_get(json_object_get(state_of(env), "assignments"), "item"));
  json_error_t je;
  json_t *v = ptr && value ? er_json_loadb(value, len, 0, &je) : NULL;
  const char *it = json_string_value(er_json_pointer(v, ptr));
  char *out = it ? er_strdup(it) : NULL;
  json_decref(v);
  return out;
}

/* The end offsets of the output topics now (for reading them back on
 * failure); out_set stays false for a topic not configured or not read. */
static void outputs_start(const er_exec_t *x, int64_t *start[2], int n[2],
                          bool set[2], int64_t deadline) {
  static const char *const which[2] = {"assignments", "completion"};
  er_kafka_t *k = x->shared ? er_target_kafka(x->shared) : NULL;
  for (int i = 0; i < 2; i++) {
    const char *topic = json_string_value(
        json_object_get(json_object_get(state_of(x->env), which[i]), "topic"));
    er_err_t err = {0};
    set[i] = false;
    start[i] = NULL;
    n[i] = 0;
    if (!k || !topic)
      continue;
    if (er_kafka_watermarks(k, topic, NULL, &start[i], &n[i], deadline, &err) ==
        0)
      set[i] = true;
  }
}

/* Records ik (taken) as a new idempotency key of produce p, with whether
 * it exists now; why (whysz bytes) holds the reason when that is unknown.
 * Under g_lock. */
static void ikey_add(rec_t *r, prod_t *p, const json_t *env, char *ik,
                     int64_t deadline, char *why, size_t whysz) {
  ikey_t *k = &r->k[r->nk];
  int ex = 0;
  int64_t pttl = -2;
  memset(k, 0, sizeof *k);
  k->key = ik;
  if (r->redis_down)
    snprintf(why, whysz, "Redis unreachable earlier in this scenario");
  if (!r->redis_down && key_probe(rec_redis(r, env), k->key, deadline, &ex,
                                  &pttl, why, whysz) == 0) {
    k->before = ex;
    k->before_pttl = pttl;
  } else {
    k->before = -1;
    k->why = er_strdup(why);
    r->redis_down = r->redis && !er_redis_connected(r->redis);
  }
  p->ik = (int)r->nk++;
}

int er_diag_produce_begin(er_exec_t *x, const char *topic, const char *key,
                          const char *value, size_t len) {
  const char *tmpl =
      json_string_value(json_object_get(state_of(x->env), "idempotency_key"));
  int64_t deadline = min64(x->deadline_ms, er_now_ms() + CHECK_MS);
  rec_t *r;
  prod_t *p;
  int h = -1;
  char why[300] = "";
  char *ik = NULL, *head = NULL, *item = NULL;
  json_t *m0 = NULL;
  int64_t *ostart[2] = {NULL, NULL};
  int on[2] = {0, 0};
  bool oset[2] = {false, false};
  bool first;

  /* no HTTP and no template work under the lock: parallel branches
   * produce at once (only the key check shares the Redis connection) */
  if (tmpl)
    ik = idem_key(tmpl, value, len, why, sizeof why);
  head = value_head(value, len);
  item = value_item(x->env, value, len);
  pthread_mutex_lock(&g_lock);
  r = rec_get(x);
  first = r && r->np == 0 && !r->metrics0;
  pthread_mutex_unlock(&g_lock);
  if (first) { /* the baselines, at the scenario's first produce */
    m0 = metrics_sample(x->env, deadline);
    outputs_start(x, ostart, on, oset, deadline);
  }
  pthread_mutex_lock(&g_lock);
  if (!r || r->np >= MAX_PRODUCES)
    goto out;
  if (m0 && !r->metrics0) {
    r->metrics0 = m0;
    m0 = NULL;
  }
  for (int i = 0; i < 2; i++)
    if (oset[i] && !r->out_set[i]) {
      r->out_start[i] = ostart[i];
      r->out_n[i] = on[i];
      r->out_set[i] = true;
      ostart[i] = NULL;
    }
  p = &r->p[r->np];
  memset(p, 0, sizeof *p);
  p->topic = er_strdup(topic ? topic : "?");
  p->key = key ? er_strdup(key) : NULL;
  p->ik = -1;
  p->head = head;
  p->item = item;
  head = item = NULL;
  h = (int)r->np++;
  if (!ik)
    goto out;
  for (size_t i = 0; i < r->nk; i++)
    if (strcmp(r->k[i].key, ik) == 0) {
      p->ik = (int)i; /* the first produce's "before" is the one that counts */
      goto out;
    }
  if (r->nk < MAX_KEYS) {
    ikey_add(r, p, x->env, ik, deadline, why, sizeof why);
    ik = NULL;
  }
out:
  pthread_mutex_unlock(&g_lock);
  json_decref(m0);
  free(ik);
  free(head);
  free(item);
  free(ostart[0]);
  free(ostart[1]);
  return h;
}

void er_diag_produce_end(er_exec_t *x, int h,
                         const er_kafka_produce_stats_t *st,
                         const char *error) {
  rec_t *r;
  prod_t *p;
  if (h < 0 || !x->scenario)
    return;
  pthread_mutex_lock(&g_lock);
  r = er_session_get(x->scenario, "diag");
  if (r && (size_t)h < r->np) {
    p = &r->p[h];
    if (st) {
      p->reached = true;
      p->delivered = st->delivered;
      p->failed = st->failed;
      p->ndr = st->ndr;
      for (size_t i = 0; i < st->ndr && i < ER_KAFKA_DR_KEEP; i++) {
        p->part[i] = st->dr[i].partition;
        p->off[i] = st->dr[i].offset;
      }
    }
    if (error && !p->error)
      p->error = er_strdup(error);
  }
  pthread_mutex_unlock(&g_lock);
}

void er_diag_note_topic(er_exec_t *x, const char *topic) {
  rec_t *r;
  if (!topic)
    return;
  pthread_mutex_lock(&g_lock);
  r = rec_get(x);
  if (r) {
    size_t i;
    for (i = 0; i < r->nread; i++)
      if (strcmp(r->read[i], topic) == 0)
        break;
    if (i == r->nread && r->nread < 32) {
      r->read[r->nread] = er_strdup(topic);
      if (r->read[r->nread])
        r->nread++;
    }
  }
  pthread_mutex_unlock(&g_lock);
}

/* Appends a copy of text to a list of at most NOTES (under g_lock). */
static void note_add(char **v, size_t *n, const char *text) {
  if (*n < NOTES && text) {
    v[*n] = er_strdup(text);
    if (v[*n])
      (*n)++;
  }
}

void er_diag_note_service(er_exec_t *x, const char *op, const char *name) {
  rec_t *r;
  char line[300];
  if (!op || !name)
    return;
  snprintf(line, sizeof line, "%s %s", op, name);
  pthread_mutex_lock(&g_lock);
  r = rec_get(x);
  if (r) {
    note_add(r->services, &r->nservices, line);
    if (strcmp(op, "kill") == 0)
      note_add(r->kills, &r->nkills, name);
  }
  pthread_mutex_unlock(&g_lock);
}

void er_diag_note_fault(er_exec_t *x, const char *proxy, const char *action) {
  rec_t *r;
  char line[300];
  if (!proxy || !action || strcmp(action, "heal") == 0)
    return;
  snprintf(line, sizeof line, "proxy '%s' %s", proxy, action);
  pthread_mutex_lock(&g_lock);
  r = rec_get(x);
  if (r)
    note_add(r->faults, &r->nfaults, line);
  pthread_mutex_unlock(&g_lock);
}

void er_diag_note_rows(er_exec_t *x, const char *query) {
  rec_t *r;
  pthread_mutex_lock(&g_lock);
  r = rec_get(x);
  if (r) {
    char *q = query ? er_strdup(query) : NULL;
    r->rows_seen = true;
    if (q) {
      free(r->rows_query);
      r->rows_query = q;
    }
  }
  pthread_mutex_unlock(&g_lock);
}

void er_diag_note_contend(er_exec_t *x, long long writes) {
  rec_t *r;
  pthread_mutex_lock(&g_lock);
  r = rec_get(x);
  if (r && writes > 0)
    r->contend_writes += writes;
  pthread_mutex_unlock(&g_lock);
}

void er_diag_note_expect(er_exec_t *x, const char *topic, long matched,
                         long seen, bool exceeded) {
  rec_t *r;
  pthread_mutex_lock(&g_lock);
  r = rec_get(x);
  if (r && topic) {
    char *t = er_strdup(topic);
    if (t) {
      free(r->exp_topic);
      r->exp_topic = t;
      r->exp_matched = matched;
      r->exp_seen = seen;
      r->exp_exceeded = exceeded;
    }
  }
  pthread_mutex_unlock(&g_lock);
}

/* ---- the verdict ----------------------------------------------------------
 */

/* The rules of the consumer's side that come before a general stall:
 * offsets not committed, a partition stalled behind one event. */
static int verdict_offsets(const er_diag_ev_t *e, char *out, size_t outsz) {
  bool idle = !e->counters_known2 || !e->counters_moving;
  if (e->lag_known && e->lag > 0 && !e->lag_moving && idle &&
      e->never_committed && e->has_processed && e->processed > 0) {
    snprintf(out, outsz,
             "lag %lld never reaches 0 while the service is idle: it "
             "processed events but the group has no committed offset, its "
             "offsets are not committed",
             (long long)e->lag);
    return 1;
  }
  if (e->stuck && e->lag_known && !e->lag_moving && e->has_processed &&
      e->processed > 0) {
    snprintf(out, outsz,
             "a partition stalled behind one event: its committed offset "
             "stays on a message this scenario produced while %lld later "
             "message(s) wait and the service processes other events",
             (long long)e->stuck_waiting);
    return 1;
  }
  return 0;
}

/* The service's output events: completion twice or too early, a slot
 * given to two items. */
static int verdict_outputs(const er_diag_ev_t *e, char *out, size_t outsz) {
  const char *t = e->completion_topic ? e->completion_topic : "completion";
  if (e->completion_max > 1) {
    snprintf(out, outsz,
             "%s published %d times for one key: readiness is not guarded "
             "(published more than once)",
             t, e->completion_max);
    return 1;
  }
  if (e->completion_expected > 0 &&
      e->completion_items < e->completion_expected) {
    snprintf(out, outsz,
             "%s published with %ld of %ld item(s): readiness published "
             "before the count was complete",
             t, e->completion_items, e->completion_expected);
    return 1;
  }
  if (e->slots_twice > 0) {
    snprintf(out, outsz,
             "a slot assigned twice: one assignment id given to two "
             "different items%s: the assignment is not atomic",
             e->no_row || e->rows_short ? ", so a row is missing" : "");
    return 1;
  }
  return 0;
}

/* Rows missing although every event was consumed: why. */
static int verdict_rows(const er_diag_ev_t *e, const char *cons, bool dup,
                        char *out, size_t outsz) {
  const char *rows = e->no_row ? "no row" : "a row missing";
  if (e->kills > 0 && e->keys_absent > 0 && e->lost_max <= 1) {
    snprintf(out, outsz,
             "%s but %s after a service instance was killed: %d event(s) "
             "with neither row nor idempotency key, at most one per "
             "partition: committed before it was processed, lost in the "
             "crash",
             cons, rows, e->keys_absent);
    return 1;
  }
  if (e->keys_before > 0 && e->keys_absent == 0 && dup) {
    snprintf(out, outsz,
             "%s but %s: skipped as a duplicate, its "
             "idempotency key existed before this scenario produced the "
             "event (stale key)",
             cons, rows);
    return 1;
  }
  if (e->keys_after > 0 && e->keys_absent == 0 && dup) {
    snprintf(out, outsz,
             "%s but %s: skipped as a duplicate, its "
             "idempotency key was written after this scenario produced the "
             "event and kept (a failed attempt kept it)",
             cons, rows);
    return 1;
  }
  if (e->keys_absent > 0 && e->colliding_key && e->has_duplicates &&
      e->duplicates > 0) {
    snprintf(out, outsz,
             "%s but %s: skipped as a duplicate though its own idempotency "
             "key does not exist; the same event hash is under another name "
             "(%s): the keys collide",
             cons, rows, e->colliding_key);
    return 1;
  }
  if (e->keys_after > 0 && e->keys_absent == 0 && e->has_duplicates &&
      e->duplicates <= 0 && e->has_processed &&
      e->processed < (double)e->delivered) {
    snprintf(out, outsz,
             "%s but %s, neither processed nor skipped as a duplicate, its "
             "idempotency key written and kept%s%s%s: committed after a "
             "failed attempt instead of retried (the event was dropped)",
             cons, rows, e->fault ? " (while " : "", e->fault ? e->fault : "",
             e->fault ? ")" : "");
    return 1;
  }
  if (e->keys > 0 && e->keys_absent == e->keys && e->metrics_known &&
      e->has_processed && e->processed <= 0 &&
      (!e->has_duplicates || e->duplicates <= 0)) {
    snprintf(out, outsz,
             "%s but %s, no event processed and no idempotency "
             "key: the event was dropped",
             cons, rows);
    return 1;
  }
  if (e->keys_absent > 0 && e->metrics_known && e->has_processed &&
      e->has_duplicates &&
      e->processed + e->duplicates < (double)e->delivered) {
    snprintf(out, outsz,
             "%s but %s: %d event(s) with neither row nor idempotency key, "
             "never processed: dropped",
             cons, rows, e->keys_absent);
    return 1;
  }
  return 0;
}

/* The rules of the service's Redis transaction: EXEC aborted on every
 * attempt (and the consumer stalled, when it is), or never aborted while
 * redis.contend wrote. */
static int verdict_exec(const er_diag_ev_t *e, bool stalled, char *out,
                        size_t outsz) {
  /* every attempt aborted: conflicts and nothing processed, or as many
   * conflicts as events processed and still no row (each event gave up
   * its slot and ended as excess) */
  if (e->metrics_known && e->has_exec_aborted && e->has_processed &&
      e->exec_aborted > 0 &&
      (e->processed <= 0 || (e->no_row && e->exec_aborted >= e->processed))) {
    int n;
    if (e->processed <= 0)
      n = snprintf(out, outsz,
                   "EXEC aborted on every attempt (watch conflicts +%.0f, "
                   "no event processed)",
                   e->exec_aborted);
    else
      n = snprintf(out, outsz,
                   "EXEC aborted on every attempt (watch conflicts +%.0f for "
                   "%.0f event(s) processed, no row written)",
                   e->exec_aborted, e->processed);
    if (stalled && n >= 0 && (size_t)n < outsz)
      snprintf(out + n, outsz - (size_t)n,
               "; on the topic, lag %lld not moving: consumer stalled",
               (long long)e->lag);
    return 1;
  }
  /* a forced race that never made an EXEC abort: nothing is watched */
  if (e->contend_writes > 0 && e->metrics_known && e->has_exec_aborted &&
      e->exec_aborted <= 0 && e->has_processed && e->processed > 0) {
    snprintf(out, outsz,
             "no EXEC aborted (watch conflicts +0) while redis.contend kept "
             "writing to the keys the service works on: its transaction does "
             "not WATCH them (no optimistic locking)");
    return 1;
  }
  return 0;
}

/* The rules after the rows': copies of one event all processed, a key
 * not under the expected name, an expected event missing while its row
 * exists, a key without TTL. */
static int verdict_after_rows(const er_diag_ev_t *e, bool consumed, char *out,
                              size_t outsz) {
  if (e->max_copies > 1 && e->metrics_known && e->has_processed &&
      e->has_duplicates && e->processed > 1 && e->duplicates <= 0) {
    snprintf(out, outsz,
             "%lld copies of one event: %.0f processed, none skipped as a "
             "duplicate: the idempotency guard did not hold",
             (long long)e->max_copies, e->processed);
    return 1;
  }
  if (e->keys > 0 && e->keys_absent == e->keys && consumed &&
      e->metrics_known && e->has_processed && e->processed > 0) {
    if (e->colliding_key)
      snprintf(out, outsz,
               "processed (+%.0f) but no idempotency key under the expected "
               "name; the same event hash is under another name (%s): the "
               "service writes another key, one that collides",
               e->processed, e->colliding_key);
    else
      snprintf(out, outsz,
               "processed (+%.0f) but no idempotency key under the expected "
               "name: the service writes another key",
               e->processed);
    return 1;
  }
  if (e->expect_topic && !e->expect_exceeded && e->expect_matched == 0 &&
      e->rows_seen) {
    snprintf(out, outsz,
             "an expected event is missing: no message on '%s' matched%s "
             "while the row exists (an earlier postgres check saw it): the "
             "state is written but the event is not published",
             e->expect_topic,
             e->expect_seen == 0 ? " (none at all since the scenario started)"
                                 : "");
    return 1;
  }
  if (e->keys_no_ttl > 0) {
    snprintf(out, outsz, "idempotency key has no TTL: it never expires");
    return 1;
  }
  return 0;
}

int er_diag_verdict(const er_diag_ev_t *e, char *out, size_t outsz) {
  /* the service counted every delivered message as processed or skipped,
   * though its offset commit may still be on the way */
  bool handled = e->has_processed && e->has_duplicates && e->delivered > 0 &&
                 e->processed + e->duplicates >= (double)e->delivered;
  bool stalled = e->lag_known && e->lag > 0 && !e->lag_moving && !handled;
  bool consumed = (e->lag_known && e->lag == 0) || handled;
  const char *cons = e->lag_known && e->lag == 0
                         ? "consumed (lag 0)"
                         : "consumed (the service counted every event; its "
                           "offset commit is pending)";
  /* skipped as a duplicate: the counter says so (when it is known) */
  bool dup = !e->has_duplicates || e->duplicates > 0;
  if (e->missing_topic) {
    snprintf(out, outsz, "topic '%s' missing", e->missing_topic);
    return 1;
  }
  if (verdict_exec(e, stalled, out, outsz))
    return 1;
  if (verdict_offsets(e, out, outsz))
    return 1;
  if (stalled) {
    snprintf(out, outsz, "on the topic, lag %lld not moving: consumer stalled",
             (long long)e->lag);
    return 1;
  }
  if (verdict_outputs(e, out, outsz))
    return 1;
  if ((e->no_row || e->rows_short) && consumed &&
      verdict_rows(e, cons, dup, out, outsz))
    return 1;
  if (verdict_after_rows(e, consumed, out, outsz))
    return 1;
  snprintf(out, outsz, "no known pattern");
  return 0;
}

/* "expected N, got M" with integers M < N somewhere in the "why:" line */
static bool why_short(const char *d) {
  const char *w = strstr(d, "why: ");
  const char *e;
  if (!w)
    return false;
  e = strstr(w, "expected ");
  while (e) {
    char *end;
    long want = strtol(e + 9, &end, 10);
    if (end != e + 9 && strncmp(end, ", got ", 6) == 0) {
      char *end2;
      long got = strtol(end + 6, &end2, 10);
      if (end2 != end + 6)
        return got < want;
    }
    e = strstr(e + 9, "expected ");
  }
  return false;
}

/* "[0]" or "[0, 0, ...]" up to the end of the line: a row of counts that
 * are all 0 */
static bool zeros_row(const char *p) {
  if (*p++ != '[')
    return false;
  for (;;) {
    if (*p++ != '0')
      return false;
    if (*p == ']')
      return p[1] == '\0' || p[1] == '\n';
    if (strncmp(p, ", ", 2) != 0)
      return false;
    p += 2;
  }
}

int er_diag_detail_rows_missing(const char *d) {
  const char *s;
  if (!d || !strstr(d, "rows do not match") || !strstr(d, "postgres"))
    return 0;
  s = strstr(d, "seen ");
  while (s) {
    if (strncmp(s, "seen 0 row(s)", 13) == 0)
      return 2;
    if (strncmp(s, "seen 1 row(s)", 13) == 0) {
      const char *nl = strchr(s, '\n');
      if (nl) {
        while (*nl == '\n' || *nl == ' ')
          nl++;
        if (zeros_row(nl))
          return 2;
      }
    }
    s = strstr(s + 5, "seen ");
  }
  return why_short(d) ? 1 : 0;
}

/* ---- collection ------------------------------------------------------------
 */

static bool past(int64_t deadline) { return er_now_ms() >= deadline; }

/* What the sections of er_diag_collect share (coll_free frees it). */
typedef struct coll {
  const er_diag_in_t *in;
  const json_t *mcfg; /* state.metrics */
  er_kafka_t *k;
  er_services_t *svcs;
  rec_t *r; /* the scenario's record, or NULL */
  int64_t t0, deadline;
  /* diagnostics.json and its parts; m1 and mmid: the counters at the
   * failure and at the start of the lag interval; keep: strings ev
   * points to */
  json_t *doc, *jprod, *jgroups, *jkeys, *jsvcs, *jmet, *jread, *m1, *mmid,
      *keep;
  const char *stuck_head; /* in r */
  char *missing;          /* ev.missing_topic */
  char *colliding;        /* ev.colliding_key */
  int64_t colliding_pttl;
  er_buf_t full, brief, sink; /* sink: what is not listed */
  er_diag_ev_t ev;
  er_err_t err;
} coll_t;

static int64_t group_committed_sum(const er_kafka_lag_t *l) {
  int64_t s = 0;
  for (int i = 0; i < l->n; i++)
    s += l->committed[i];
  return s;
}

static void tail_cap(char *s) {
  size_t n = strlen(s);
  if (n > LOG_BYTES)
    memmove(s, s + n - LOG_BYTES, LOG_BYTES + 1);
}

/* the health probe of a service: GET of its ready.http, if any */
static void health(const json_t *svc, json_t *o, int64_t deadline) {
  const char *url =
      json_string_value(json_object_get(json_object_get(svc, "ready"), "http"));
  er_http_t *h;
  er_http_req_t req;
  er_http_resp_t resp;
  er_err_t err = {0};
  if (!url)
    return;
  h = er_http_new(&err);
  if (!h)
    return;
  memset(&req, 0, sizeof req);
  memset(&resp, 0, sizeof resp);
  req.url = url;
  req.deadline_ms = min64(deadline, er_now_ms() + 500);
  if (er_http_perform(h, &req, &resp, &err) == 0)
    json_object_set_new(o, "health", json_sprintf("HTTP %ld", resp.status));
  else
    json_object_set_new(o, "health", json_sprintf("no answer: %s", err.msg));
  er_http_resp_free(&resp);
  er_http_free(h);
}

static double mval(const json_t *m, const char *url, const char *name,
                   bool *ok) {
  const json_t *v = json_object_get(json_object_get(m, url), name);
  if (!json_is_number(v)) {
    *ok = false;
    return 0;
  }
  return json_number_value(v);
}

static void slash_join(char *out, size_t n, const char *dir, const char *f) {
  snprintf(out, n, "%s/%s", dir, f);
}

/* Looks for a partition of topic whose committed offset did not move
 * between l1 and l2 and sits on a message this scenario produced (one of
 * the first delivery reports of a produce), with later messages behind
 * it. Fills ev->stuck* and *head (the message's first bytes). */
static void find_stuck(const rec_t *r, const char *topic,
                       const er_kafka_lag_t *l1, const er_kafka_lag_t *l2,
                       er_diag_ev_t *ev, const char **head) {
  for (int p = 0; r && p < l1->n && p < l2->n; p++) {
    int64_t pos;
    if (l1->committed[p] != l2->committed[p])
      continue;
    pos = l2->committed[p] >= 0 ? l2->committed[p] : l2->lo[p];
    if (l2->end[p] - pos < 2)
      continue;
    for (size_t j = 0; j < r->np; j++) {
      const prod_t *q = &r->p[j];
      if (strcmp(q->topic, topic) != 0)
        continue;
      for (size_t d = 0; d < q->ndr && d < ER_KAFKA_DR_KEEP; d++)
        if (q->part[d] == p && q->off[d] == pos) {
          ev->stuck = true;
          ev->stuck_partition = p;
          ev->stuck_offset = pos;
          ev->stuck_waiting = l2->end[p] - pos - 1;
          *head = q->head;
          return;
        }
    }
  }
}

/* processed + duplicates summed over the URLs sampled in both a and b;
 * false when none is. */
static bool counters_pair(const json_t *mcfg, const json_t *a, const json_t *b,
                          double *va, double *vb) {
  const char *url;
  json_t *v;
  bool any = false;
  *va = *vb = 0;
  json_object_foreach((json_t *)b, url, v) {
    for (int c = 1; c < 3; c++) {
      const char *name =
          json_string_value(json_object_get(mcfg, k_counters[c]));
      const json_t *x = json_object_get(json_object_get(a, url), name);
      const json_t *y = json_object_get(v, name);
      if (name && json_is_number(x) && json_is_number(y)) {
        *va += json_number_value(x);
        *vb += json_number_value(y);
        any = true;
      }
    }
  }
  return any;
}

/* Keys holding the event hash (the last ':' part) of key under another
 * name: the first one found, with its TTL, into *found (caller frees) as
 * the name with the hash written "<hash>". */
static void find_colliding(er_redis_t *rd, const char *key, int64_t deadline,
                           char **found, int64_t *pttl) {
  const char *hash = strrchr(key, ':');
  char pattern[160];
  er_redis_scan_ttl_t sc;
  er_err_t err = {0};
  *found = NULL;
  if (!rd || !hash || strlen(hash + 1) < 16 || strlen(hash + 1) > 128)
    return;
  hash++;
  snprintf(pattern, sizeof pattern, "*%s*", hash);
  memset(&sc, 0, sizeof sc);
  if (er_redis_scan_pttl(rd, pattern, 1000, 200000, 8,
                         min64(deadline, er_now_ms() + 1000),
                         min64(deadline, er_now_ms() + 1500), &sc, &err) == 0) {
    for (size_t i = 0; i < sc.nkeys && !*found; i++) {
      const char *at = strstr(sc.keys[i].key, hash);
      er_buf_t b = ER_BUF_INIT(1024);
      if (strcmp(sc.keys[i].key, key) == 0 || !at)
        continue;
      er_buf_printf(&b, "%.*s<hash>%s", (int)(at - sc.keys[i].key),
                    sc.keys[i].key, at + strlen(hash));
      *found = er_buf_steal(&b);
      *pttl = sc.keys[i].pttl;
      er_buf_free(&b);
    }
  }
  er_redis_scan_ttl_free(&sc);
}

/* One integer from a query with one parameter (the completion's expected
 * count); -1 when it cannot be had. */
static long query_long(er_pg_t *pg, const char *sql, const char *param,
                       int64_t deadline) {
  er_pg_result_t res;
  er_err_t err = {0};
  const char *params[1] = {param};
  long v = -1;
  memset(&res, 0, sizeof res);
  if (pg && er_pg_query(pg, sql, params, 1, deadline, &res, &err) == 0) {
    const json_t *c = json_array_get(json_array_get(res.rows, 0), 0);
    if (json_is_integer(c))
      v = (long)json_integer_value(c);
    else if (json_is_string(c))
      v = strtol(json_string_value(c), NULL, 10);
  }
  er_pg_result_free(&res);
  return v;
}

/* The messages on output w (0 assignments, 1 completion) since the first
 * produce, into *cp (freed by the caller); a failed read leaves fewer. */
static void read_out(er_kafka_t *k, const rec_t *r, int w, const char *topic,
                     int64_t deadline, er_kafka_copies_t *cp) {
  er_err_t err = {0};
  memset(cp, 0, sizeof *cp);
  er_kafka_read_to_end(k, topic, r->out_start[w], r->out_n[w], OUT_RECORDS,
                       OUT_BYTES, cp, min64(deadline, er_now_ms() + 2000),
                       &err);
}

/* A message's value as JSON, or NULL (not JSON, or none). New reference. */
static json_t *copy_json(const er_kafka_copy_t *c) {
  json_error_t je;
  return c->value ? er_json_loadb(c->value, c->value_len, 0, &je) : NULL;
}

/* What the assignment events gave, for both outputs' evidence */
typedef struct omaps {
  json_t *slots;  /* slot id -> the first item given it */
  json_t *twice;  /* slot id -> [item, another item] */
  json_t *items;  /* item -> true: given a slot */
  json_t *perkey; /* key -> {slot: true} */
} omaps_t;

/* An assignment event (slot and item at the pointers sp and ip) into m,
 * a slot given to a second item counted in ev; false when it names no
 * slot and item. */
static bool assign_event(omaps_t *m, er_diag_ev_t *ev,
                         const er_kafka_copy_t *cp, const char *sp,
                         const char *ip) {
  json_t *v = copy_json(cp);
  const char *slot = json_string_value(er_json_pointer(v, sp));
  const char *item = json_string_value(er_json_pointer(v, ip));
  const char *had;
  bool named = slot && item;
  if (named) {
    had = json_string_value(json_object_get(m->slots, slot));
    if (!had) {
      json_object_set_new(m->slots, slot, json_string(item));
    } else if (strcmp(had, item) != 0 && !json_object_get(m->twice, slot)) {
      json_object_set_new(m->twice, slot, json_pack("[s,s]", had, item));
      ev->slots_twice++;
    }
    json_object_set_new(m->items, item, json_true());
    if (cp->key) {
      json_t *ks = json_object_get(m->perkey, cp->key);
      if (!ks) {
        ks = json_object();
        json_object_set_new(m->perkey, cp->key, ks);
      }
      json_object_set_new(ks, slot, json_true());
    }
  }
  json_decref(v);
  return named;
}

/* How many of the items produced (*produced, each counted once) no
 * assignment event gave a slot. */
static size_t items_without(const rec_t *r, const json_t *items,
                            size_t *produced) {
  json_t *seen = json_object();
  size_t without = 0;
  *produced = 0;
  for (size_t j = 0; j < r->np; j++) {
    const char *it = r->p[j].item;
    if (!it || json_object_get(seen, it))
      continue;
    json_object_set_new(seen, it, json_true());
    (*produced)++;
    if (!json_object_get(items, it))
      without++;
  }
  json_decref(seen);
  return without;
}

/* The ids given to two items: the first three into b, all into jt. */
static void assign_twice(er_buf_t *b, json_t *twice, json_t *jt) {
  const char *sl;
  json_t *pair;
  int shown = 0;
  json_object_foreach(twice, sl, pair) {
    if (shown++ < 3)
      er_buf_printf(b, " (%s: %s, %s)", sl,
                    json_string_value(json_array_get(pair, 0)),
                    json_string_value(json_array_get(pair, 1)));
    json_array_append_new(jt, json_pack("{s:s,s:O}", "id", sl, "items", pair));
  }
}

/* 5b. state.assignments: a slot id given to two items; produced items
 * with no assignment event */
static void read_assignments(coll_t *c, omaps_t *m) {
  const json_t *ac = json_object_get(state_of(c->in->env), "assignments");
  const char *topic = json_string_value(json_object_get(ac, "topic"));
  const char *sp = json_string_value(json_object_get(ac, "slot"));
  const char *ip = json_string_value(json_object_get(ac, "item"));
  er_kafka_copies_t cp;
  json_t *o = json_object(), *jt = json_array();
  size_t events = 0, without, produced;
  read_out(c->k, c->r, 0, topic, c->deadline, &cp);
  for (size_t i = 0; i < cp.n; i++)
    if (assign_event(m, &c->ev, &cp.v[i], sp, ip))
      events++;
  without = items_without(c->r, m->items, &produced);
  c->ev.items_unassigned = (int)without;
  er_buf_printf(&c->brief,
                "\nassignments on %s since the first produce: %zu event(s), "
                "%zu id(s); given to two items: %d",
                topic, events, json_object_size(m->slots), c->ev.slots_twice);
  assign_twice(&c->brief, m->twice, jt);
  er_buf_printf(&c->brief, "; produced items without one: %zu of %zu", without,
                produced);
  if (cp.dropped)
    er_buf_printf(&c->brief, " (%zu event(s) past the cap not read)",
                  cp.dropped);
  json_object_set_new(o, "topic", json_string(topic));
  json_object_set_new(o, "events", json_integer((json_int_t)events));
  json_object_set_new(o, "twice", jt);
  json_object_set_new(o, "items_without", json_integer((json_int_t)without));
  json_object_set_new(c->doc, "assignments", o);
  er_kafka_copies_free(&cp);
}

/* The completion events per key into count, the items of each key's
 * last one (at the pointer ip) into last; the most for one key into ev. */
static void completion_count(er_diag_ev_t *ev, const er_kafka_copies_t *cp,
                             const char *ip, json_t *count, json_t *last) {
  for (size_t i = 0; i < cp->n; i++) {
    json_t *v = copy_json(&cp->v[i]);
    const json_t *its = er_json_pointer(v, ip);
    const char *kk = cp->v[i].key ? cp->v[i].key : "";
    json_int_t had = json_integer_value(json_object_get(count, kk));
    json_object_set_new(count, kk, json_integer(had + 1));
    if (had + 1 > ev->completion_max)
      ev->completion_max = (int)(had + 1);
    if (json_is_array(its))
      json_object_set_new(last, kk,
                          json_integer((json_int_t)json_array_size(its)));
    json_decref(v);
  }
}

/* What the keys of the completion events share */
typedef struct compl {
  const char *topic, *sql; /* sql: state.completion.expected, or NULL */
  er_pg_t *pg;             /* for sql, or NULL */
  size_t asked;            /* keys whose expected count was queried */
  json_t *last;            /* key -> the items of its last event */
  const json_t *perkey;    /* key -> {slot: true}, from the assignments */
  json_t *arr;             /* diagnostics.json's "completion" */
}
compl_t;

/* 5b. the completion events of key (n of them): their items against the
 * expected count, or against the slots assigned for that key when no
 * query is given */
static void completion_key(coll_t *c, compl_t *q, const char *key, json_t *n) {
  const json_t *li = json_object_get(q->last, key);
  long items_n = json_is_integer(li) ? (long)json_integer_value(li) : -1;
  long expected = -1;
  json_t *o = json_object();
  if (q->pg && q->asked < COMPLETION_KEYS && !past(c->deadline)) {
    q->asked++;
    expected =
        query_long(q->pg, q->sql, key, min64(c->deadline, er_now_ms() + 1000));
  } else if (!q->sql) {
    expected = (long)json_object_size(json_object_get(q->perkey, key));
  }
  er_buf_printf(&c->brief, "\ncompletion on %s, key %s: %lld event(s)",
                q->topic, key, (long long)json_integer_value(n));
  if (items_n >= 0)
    er_buf_printf(&c->brief, ", %ld item(s)", items_n);
  if (expected > 0)
    er_buf_printf(&c->brief, " of %ld %s", expected,
                  q->sql ? "expected" : "assigned");
  json_object_set_new(o, "key", json_string(key));
  json_object_set(o, "events", n);
  if (items_n >= 0)
    json_object_set_new(o, "items", json_integer(items_n));
  if (expected >= 0)
    json_object_set_new(o, "expected", json_integer(expected));
  json_array_append_new(q->arr, o);
  if (items_n >= 0 && expected > 0 && items_n < expected &&
      c->ev.completion_expected == 0) {
    c->ev.completion_items = items_n;
    c->ev.completion_expected = expected;
  }
}

/* 5b. state.completion: events per key, their items against the
 * expected count (perkey: the slots assigned per key) */
static void read_completion(coll_t *c, const json_t *perkey) {
  const json_t *cc = json_object_get(state_of(c->in->env), "completion");
  const char *ip = json_string_value(json_object_get(cc, "items"));
  const char *dsn = json_string_value(
      json_object_get(json_object_get(c->in->env, "postgres"), "dsn"));
  compl_t q;
  er_kafka_copies_t cp;
  json_t *count = json_object(), *n, *t;
  const char *key;
  er_err_t err = {0};
  memset(&q, 0, sizeof q);
  q.topic = json_string_value(json_object_get(cc, "topic"));
  q.sql = json_string_value(json_object_get(cc, "expected"));
  q.last = json_object();
  q.perkey = perkey;
  q.arr = json_array();
  read_out(c->k, c->r, 1, q.topic, c->deadline, &cp);
  completion_count(&c->ev, &cp, ip, count, q.last);
  if (q.sql && dsn)
    q.pg = er_pg_new(dsn, &err);
  er_err_clear(&err);
  json_object_foreach(count, key, n) { completion_key(c, &q, key, n); }
  if (json_object_size(count) == 0)
    er_buf_printf(&c->brief, "\ncompletion on %s: none since the first produce",
                  q.topic);
  t = json_string(q.topic);
  json_array_append_new(c->keep, t);
  c->ev.completion_topic = json_string_value(t);
  json_object_set_new(c->doc, "completion", q.arr);
  er_pg_free(q.pg);
  json_decref(count);
  json_decref(q.last);
  er_kafka_copies_free(&cp);
}

/* 5b. Reads the service's output events since the scenario's first
 * produce: state.assignments (a slot id given to two items; produced
 * items with no assignment event) and state.completion (events per key,
 * their items against the expected count, or against the slots assigned
 * for that key when no query is given). Evidence into c->ev, text into
 * the brief, JSON into doc. Strings put into ev are kept alive in keep. */
static void read_outputs(coll_t *c) {
  omaps_t m;
  m.slots = json_object();
  m.twice = json_object();
  m.items = json_object();
  m.perkey = json_object();
  if (!c->r || !c->k || !m.slots || !m.twice || !m.items || !m.perkey)
    goto out;
  if (c->r->out_set[0] && !past(c->deadline))
    read_assignments(c, &m);
  if (c->r->out_set[1] && !past(c->deadline))
    read_completion(c, m.perkey);
out:
  json_decref(m.slots);
  json_decref(m.twice);
  json_decref(m.items);
  json_decref(m.perkey);
}

/* Starts a collection: its budget, targets, empty documents and texts;
 * -1 when memory ran out (coll_free frees it either way). */
static int coll_init(coll_t *c, const er_diag_in_t *in) {
  memset(c, 0, sizeof *c);
  c->in = in;
  c->t0 = er_now_ms();
  c->deadline = c->t0 + (in->budget_ms > 0 ? in->budget_ms : 8000);
  c->mcfg = json_object_get(state_of(in->env), "metrics");
  c->k = er_target_kafka(in->shared);
  c->svcs = in->shared ? er_session_get(in->shared, "services") : NULL;
  c->doc = json_object();
  c->jprod = json_array();
  c->jgroups = json_array();
  c->jkeys = json_array();
  c->jsvcs = json_array();
  c->jread = json_array();
  c->keep = json_array();
  c->colliding_pttl = -2;
  er_buf_init(&c->full, TEXT_CAP);
  er_buf_init(&c->brief, TEXT_CAP);
  er_buf_init(&c->sink, 4096);
  if (!c->doc || !c->jprod || !c->jgroups || !c->jkeys || !c->jsvcs ||
      !c->jread || !c->keep)
    return -1;
  return 0;
}

static void coll_free(coll_t *c) {
  free(c->missing);
  json_decref(c->doc);
  json_decref(c->jprod);
  json_decref(c->jgroups);
  json_decref(c->jkeys);
  json_decref(c->jsvcs);
  json_decref(c->jread);
  json_decref(c->jmet);
  json_decref(c->m1);
  json_decref(c->mmid);
  json_decref(c->keep);
  free(c->colliding);
  er_buf_free(&c->full);
  er_buf_free(&c->brief);
  er_buf_free(&c->sink);
}

/* The watermarks of the topics produced to, asked once per topic (topic
 * borrowed from r). */
typedef struct wmc {
  struct {
    const char *topic;
    int64_t *lo, *hi;
    int n;
  } v[WM_CACHE];
  size_t n;
} wmc_t;

/* 1. the watermarks of topic, from the cache or asked (and cached while
 * there is room: *cached; else the caller frees *lo and *hi); false when
 * not known. */
static bool topic_marks(coll_t *c, wmc_t *wm, const char *topic, int64_t **lo,
                        int64_t **hi, int *n, bool *cached) {
  bool known = false;
  size_t w;
  for (w = 0; w < wm->n; w++)
    if (strcmp(wm->v[w].topic, topic) == 0)
      break;
  if (w < wm->n) { /* one metadata request per topic */
    *lo = wm->v[w].lo;
    *hi = wm->v[w].hi;
    *n = wm->v[w].n;
    known = true;
    *cached = true;
  } else if (c->k && !past(c->deadline) &&
             er_kafka_watermarks(c->k, topic, lo, hi, n,
                                 min64(c->deadline, er_now_ms() + 2000),
                                 &c->err) == 0) {
    known = true;
    if (wm->n < WM_CACHE) {
      wm->v[wm->n].topic = topic;
      wm->v[wm->n].lo = *lo;
      wm->v[wm->n].hi = *hi;
      wm->v[wm->n].n = *n;
      wm->n++;
      *cached = true;
    }
  }
  er_err_clear(&c->err);
  return known;
}

/* 1. a produce in diagnostics.json (joffs: its offsets, taken) */
static json_t *produced_json(const rec_t *r, const prod_t *p, bool known,
                             bool exists, json_t *joffs) {
  json_t *jp = json_object();
  json_object_set_new(jp, "topic", json_string(p->topic));
  if (p->key)
    json_object_set_new(jp, "key", json_string(p->key));
  json_object_set_new(jp, "delivered", json_integer((json_int_t)p->delivered));
  json_object_set_new(jp, "failed", json_integer((json_int_t)p->failed));
  json_object_set_new(jp, "offsets", joffs);
  if (known)
    json_object_set_new(jp, "topic_exists", json_boolean(exists));
  if (p->error)
    json_object_set_new(jp, "error", json_string(p->error));
  if (p->ik >= 0)
    json_object_set_new(jp, "idempotency_key", json_string(r->k[p->ik].key));
  return jp;
}

/* 1. a produce in the text */
static void produced_text(er_buf_t *bb, const prod_t *p, bool known,
                          bool exists, bool on) {
  er_buf_printf(bb, "\n  %s key %s: %zu delivered", p->topic,
                p->key ? p->key : "(none)", p->delivered);
  if (p->ndr)
    er_buf_printf(bb, " (p%d@%lld%s)", (int)p->part[0], (long long)p->off[0],
                  p->delivered > 1 ? ", ..." : "");
  if (!known)
    er_buf_puts(bb, "; topic not checked");
  else if (!exists)
    er_buf_puts(bb, "; topic MISSING");
  else if (p->ndr)
    er_buf_printf(bb, "; on the topic: %s", on ? "yes" : "NO");
  if (p->error)
    er_buf_printf(bb, "; error: %s", p->error);
}

/* 1. produce i: are its first messages on their topic? */
static void produced_one(coll_t *c, wmc_t *wm, size_t i) {
  prod_t *p = &c->r->p[i];
  er_buf_t *bb = i < BRIEF_ITEMS ? &c->brief : &c->sink;
  int64_t *lo = NULL, *hi = NULL;
  int n = 0;
  bool known, exists, on = true, cached = false;
  json_t *joffs = json_array();
  c->ev.delivered += (int64_t)p->delivered;
  known = topic_marks(c, wm, p->topic, &lo, &hi, &n, &cached);
  exists = known && n > 0;
  for (size_t j = 0; j < p->ndr; j++) {
    bool here = exists && p->part[j] < n && p->part[j] >= 0 &&
                p->off[j] >= lo[p->part[j]] && p->off[j] < hi[p->part[j]];
    json_t *o = json_object();
    json_object_set_new(o, "partition", json_integer(p->part[j]));
    json_object_set_new(o, "offset", json_integer(p->off[j]));
    if (known)
      json_object_set_new(o, "on_topic", json_boolean(here));
    json_array_append_new(joffs, o);
    if (!here)
      on = false;
  }
  if (known && !exists && !c->missing)
    c->missing = er_strdup(p->topic);
  json_array_append_new(c->jprod, produced_json(c->r, p, known, exists, joffs));
  produced_text(bb, p, known, exists, on);
  if (!cached) {
    free(lo);
    free(hi);
  }
}

/* 1. produced messages: on their topics? */
static void coll_produced(coll_t *c) {
  wmc_t wm;
  wm.n = 0;
  er_buf_puts(&c->brief, "produced:");
  if (!c->r || c->r->np == 0)
    er_buf_puts(&c->brief, " nothing recorded");
  for (size_t i = 0; c->r && i < c->r->np; i++)
    produced_one(c, &wm, i);
  for (size_t w = 0; w < wm.n; w++) {
    free(wm.v[w].lo);
    free(wm.v[w].hi);
  }
  if (c->r && c->r->np > BRIEF_ITEMS)
    er_buf_printf(&c->brief, "\n  ... %zu more (diagnostics.json)",
                  c->r->np - BRIEF_ITEMS);
}

/* 1b. topics read by expectations */
static void coll_read_topics(coll_t *c) {
  rec_t *r = c->r;
  for (size_t i = 0; r && i < r->nread && !past(c->deadline); i++) {
    int nparts = 0;
    int ex = c->k ? er_kafka_topic_partitions(
                        c->k, r->read[i], &nparts,
                        min64(c->deadline, er_now_ms() + 2000), &c->err)
                  : -1;
    er_err_clear(&c->err);
    if (ex == 0) {
      er_buf_printf(&c->brief, "\nread by an expectation: %s: topic MISSING",
                    r->read[i]);
      json_array_append_new(c->jread, json_string(r->read[i]));
      if (!c->missing)
        c->missing = er_strdup(r->read[i]);
    }
  }
}

/* 2. a consumer group on a topic, its lag sampled twice */
typedef struct gs {
  const char *group, *topic;
  er_kafka_lag_t l1, l2;
  bool ok1, ok2;
} gs_t;

/* 2. the groups' lag twice ~1 s apart, the counters in between */
static void groups_sample(coll_t *c, gs_t *gv, size_t ng) {
  for (size_t g = 0; g < ng && !past(c->deadline); g++) {
    gv[g].ok1 = er_kafka_group_lag(c->k, gv[g].group, gv[g].topic, &gv[g].l1,
                                   min64(c->deadline, er_now_ms() + 1500),
                                   &c->err) == 0;
    er_err_clear(&c->err);
  }
  /* the service's counters at the start of the lag interval: are they
   * moving (busy) or not (idle)? */
  if (ng && json_is_object(c->mcfg) && !past(c->deadline))
    c->mmid =
        metrics_sample(c->in->env, min64(c->deadline, er_now_ms() + 1000));
  if (ng && c->deadline - er_now_ms() > 2500)
    er_sleep_ms(1000); /* the lag interval; ends early on Ctrl-C */
  for (size_t g = 0; g < ng && !past(c->deadline); g++) {
    if (!gv[g].ok1)
      continue;
    gv[g].ok2 = er_kafka_group_lag(c->k, gv[g].group, gv[g].topic, &gv[g].l2,
                                   min64(c->deadline, er_now_ms() + 1500),
                                   &c->err) == 0;
    er_err_clear(&c->err);
  }
}

/* 2. "committed [...], end [...], lag ..." of a group sampled */
static void group_lag_text(er_buf_t *b, const gs_t *s, const er_kafka_lag_t *l,
                           bool moving) {
  er_buf_puts(b, "committed [");
  for (int p = 0; p < l->n; p++)
    er_buf_printf(b, "%s%lld", p ? " " : "", (long long)l->committed[p]);
  er_buf_printf(b, "], end [");
  for (int p = 0; p < l->n; p++)
    er_buf_printf(b, "%s%lld", p ? " " : "", (long long)l->end[p]);
  if (s->ok2)
    er_buf_printf(b, "], lag %lld -> %lld 1s later (%s)",
                  (long long)s->l1.total, (long long)s->l2.total,
                  moving ? "moving" : "not moving");
  else
    er_buf_printf(b, "], lag %lld", (long long)l->total);
}

/* 2. a group's lag as evidence: lag counts for the verdict only on a
 * topic the scenario used */
static void group_evidence(coll_t *c, const gs_t *s, const er_kafka_lag_t *l,
                           bool moving) {
  er_diag_ev_t *ev = &c->ev;
  for (size_t j = 0; c->r && j < c->r->np; j++)
    if (strcmp(c->r->p[j].topic, s->topic) == 0) {
      bool none = true;
      if (!ev->lag_known) {
        ev->lag_moving = false;
        ev->never_committed = true;
      }
      ev->lag_known = true;
      ev->lag += l->total;
      ev->lag_moving = ev->lag_moving || moving;
      for (int p = 0; p < l->n; p++)
        if (l->committed[p] >= 0)
          none = false;
      ev->never_committed = ev->never_committed && none;
      if (s->ok2 && !ev->stuck)
        find_stuck(c->r, s->topic, &s->l1, &s->l2, ev, &c->stuck_head);
      break;
    }
}

/* 2. a group sampled: into the text, diagnostics.json and the evidence */
static void group_report(coll_t *c, const gs_t *s) {
  json_t *o = json_object(), *cm = json_array();
  const er_kafka_lag_t *l = s->ok2 ? &s->l2 : &s->l1;
  bool moving = s->ok1 && s->ok2 &&
                (group_committed_sum(&s->l1) != group_committed_sum(&s->l2) ||
                 s->l1.total != s->l2.total);
  json_object_set_new(o, "group", json_string(s->group));
  json_object_set_new(o, "topic", json_string(s->topic));
  er_buf_printf(&c->brief, "\ngroup %s on %s: ", s->group, s->topic);
  if (!s->ok1) {
    json_object_set_new(o, "error", json_string("not sampled"));
    er_buf_puts(&c->brief, "not sampled");
  } else if (l->n == 0) {
    json_object_set_new(o, "topic_exists", json_false());
    er_buf_puts(&c->brief, "topic MISSING");
    if (!c->missing)
      c->missing = er_strdup(s->topic);
  } else {
    for (int p = 0; p < l->n; p++)
      json_array_append_new(cm, json_integer(l->committed[p]));
    json_object_set(o, "committed", cm);
    json_object_set_new(o, "lag", json_integer(l->total));
    if (s->ok2) {
      json_object_set_new(o, "lag_first", json_integer(s->l1.total));
      json_object_set_new(o, "moving", json_boolean(moving));
    }
    group_lag_text(&c->brief, s, l, moving);
    group_evidence(c, s, l, moving);
  }
  json_decref(cm);
  json_array_append_new(c->jgroups, o);
}

/* 2. consumer groups: committed offsets and lag, twice ~1 s apart */
static void coll_groups(coll_t *c) {
  const json_t *groups =
      json_object_get(state_of(c->in->env), "consumer_groups");
  const char *gname;
  const json_t *gtopics;
  gs_t gv[32];
  size_t ng = 0;
  if (!json_is_object(groups) || !c->k)
    return;
  memset(gv, 0, sizeof gv);
  json_object_foreach((json_t *)groups, gname, gtopics) {
    const json_t *t;
    size_t j;
    json_array_foreach(gtopics, j, t) {
      if (ng < 32 && json_is_string(t)) {
        gv[ng].group = gname;
        gv[ng].topic = json_string_value(t);
        ng++;
      }
    }
  }
  groups_sample(c, gv, ng);
  for (size_t g = 0; g < ng; g++) {
    group_report(c, &gv[g]);
    er_kafka_lag_free(&gv[g].l1);
    er_kafka_lag_free(&gv[g].l2);
  }
}

/* 3. key i does not exist now: on which partition its event went, and
 * its event hash under another name */
static void key_absent(coll_t *c, size_t i, int *lost) {
  const rec_t *r = c->r;
  c->ev.keys_absent++;
  /* on which partition the event went: at most one lost per
   * partition is what a crash can do */
  for (size_t j = 0; j < r->np; j++)
    if (r->p[j].ik == (int)i && r->p[j].ndr > 0 && r->p[j].part[0] >= 0 &&
        r->p[j].part[0] < 64) {
      if (++lost[r->p[j].part[0]] > c->ev.lost_max)
        c->ev.lost_max = lost[r->p[j].part[0]];
      break;
    }
  if (!c->colliding && (int)c->ev.keys_absent <= COLLIDE_KEYS &&
      !past(c->deadline))
    find_colliding(rec_redis(c->r, c->in->env), r->k[i].key, c->deadline,
                   &c->colliding, &c->colliding_pttl);
}

/* 3. key i now (exists: ex, PTTL: pttl): into o, bb and the evidence */
static void key_now(coll_t *c, size_t i, json_t *o, er_buf_t *bb, int ex,
                    int64_t pttl, int *lost) {
  json_object_set_new(o, "exists", json_boolean(ex));
  if (ex)
    json_object_set_new(o, "pttl_ms", json_integer(pttl));
  er_buf_printf(bb, "exists now %s", ex ? "yes" : "no");
  if (ex && pttl >= 0)
    er_buf_printf(bb, ", TTL %.1fs", (double)pttl / 1000.0);
  else if (ex)
    er_buf_puts(bb, ", no TTL");
  if (ex && pttl == -1)
    c->ev.keys_no_ttl++;
  if (ex && c->r->k[i].before == 0)
    c->ev.keys_after++;
  if (!ex)
    key_absent(c, i, lost);
}

/* 3. messages delivered for key i: copies of one event */
static int64_t key_copies(const rec_t *r, size_t i) {
  int64_t copies = 0;
  for (size_t j = 0; j < r->np; j++)
    if (r->p[j].ik == (int)i)
      copies += (int64_t)r->p[j].delivered;
  return copies;
}

/* 3. idempotency key i: now and before */
static void key_report(coll_t *c, size_t i, int *lost) {
  const ikey_t *ik = &c->r->k[i];
  er_buf_t *bb = i < BRIEF_ITEMS ? &c->brief : &c->sink;
  json_t *o = json_object();
  int ex = 0;
  int64_t pttl = -2, copies;
  char why[300] = "";
  bool now_ok =
      !past(c->deadline) && key_probe(rec_redis(c->r, c->in->env), ik->key,
                                      min64(c->deadline, er_now_ms() + 1000),
                                      &ex, &pttl, why, sizeof why) == 0;
  c->ev.keys++;
  json_object_set_new(o, "key", json_string(ik->key));
  json_object_set_new(o, "existed_before",
                      ik->before < 0 ? json_string("unknown")
                                     : json_boolean(ik->before));
  if (ik->before == 1)
    json_object_set_new(o, "pttl_before_ms", json_integer(ik->before_pttl));
  if (ik->why)
    json_object_set_new(o, "before_error", json_string(ik->why));
  er_buf_printf(bb, "\nidempotency key %s: ", ik->key);
  if (now_ok) {
    key_now(c, i, o, bb, ex, pttl, lost);
  } else {
    json_object_set_new(o, "exists", json_string("unknown"));
    json_object_set_new(o, "error", json_string(why));
    er_buf_printf(bb, "now unknown (%s)", why);
  }
  er_buf_printf(bb, "; existed before this scenario produced it: %s",
                ik->before < 0 ? "unknown"
                : ik->before   ? "yes"
                               : "no");
  if (ik->before == 1)
    c->ev.keys_before++;
  copies = key_copies(c->r, i);
  if (copies > c->ev.max_copies)
    c->ev.max_copies = copies;
  json_array_append_new(c->jkeys, o);
}

/* 3. idempotency keys */
static void coll_keys(coll_t *c) {
  int lost[64];
  memset(lost, 0, sizeof lost);
  for (size_t i = 0; c->r && i < c->r->nk; i++)
    key_report(c, i, lost);
  if (c->r && c->r->nk > BRIEF_ITEMS)
    er_buf_printf(&c->brief,
                  "\nidempotency keys: ... %zu more (diagnostics.json)",
                  c->r->nk - BRIEF_ITEMS);
  if (c->colliding) {
    er_buf_printf(&c->brief,
                  "\na key with the same event hash under another name: %s",
                  c->colliding);
    if (c->colliding_pttl >= 0)
      er_buf_printf(&c->brief, " (TTL %.1fs)",
                    (double)c->colliding_pttl / 1000.0);
    else if (c->colliding_pttl == -1)
      er_buf_puts(&c->brief, " (no TTL)");
    json_object_set_new(c->doc, "colliding_key", json_string(c->colliding));
    c->ev.colliding_key = c->colliding;
  }
}

/* 4. the change of counter name from m0 to m1, summed over the URLs
 * sampled in both; false when none is */
static bool counter_delta(const json_t *m0, json_t *m1, const char *name,
                          double *d) {
  const char *url;
  json_t *v;
  bool any = false;
  *d = 0;
  json_object_foreach(m1, url, v) {
    bool ok = true;
    double a = mval(m0, url, name, &ok);
    double b = mval(m1, url, name, &ok);
    if (ok) {
      *d += b >= a ? b - a : b; /* lower: the service restarted */
      any = true;
    }
  }
  return any;
}

/* 4. counters */
static void coll_counters(coll_t *c) {
  er_diag_ev_t *ev = &c->ev;
  if (!json_is_object(c->mcfg) || past(c->deadline))
    return;
  c->m1 = metrics_sample(c->in->env, c->deadline);
  c->jmet = json_object();
  er_buf_puts(&c->brief, "\nmetrics since the scenario's first produce:");
  for (int i = 0; i < 3; i++) {
    const char *name =
        json_string_value(json_object_get(c->mcfg, k_counters[i]));
    double d;
    if (!name)
      continue;
    if (!counter_delta(c->r ? c->r->metrics0 : NULL, c->m1, name, &d)) {
      er_buf_printf(&c->brief, " %s ?", name);
      continue;
    }
    json_object_set_new(c->jmet, name, json_real(d));
    er_buf_printf(&c->brief, " %s %+.0f", name, d);
    if (i == 0) {
      ev->has_exec_aborted = true;
      ev->exec_aborted = d;
    } else if (i == 1) {
      ev->has_processed = true;
      ev->processed = d;
    } else {
      ev->has_duplicates = true;
      ev->duplicates = d;
    }
  }
  ev->metrics_known = ev->has_exec_aborted || ev->has_processed;
  if (c->mmid) {
    double va, vb;
    ev->counters_known2 = counters_pair(c->mcfg, c->mmid, c->m1, &va, &vb);
    ev->counters_moving = ev->counters_known2 && va != vb;
    if (ev->counters_known2)
      er_buf_printf(&c->brief, "; processed + skipped %s over the lag interval",
                    ev->counters_moving ? "moving" : "not moving (idle)");
  }
}

/* 5. the failing step */
static void coll_failing_step(coll_t *c) {
  int rm = er_diag_detail_rows_missing(c->in->detail);
  c->ev.no_row = rm == 2;
  c->ev.rows_short = rm == 1;
}

/* 5b. the partition stalled behind a message (found in 2.) */
static void coll_stalled(coll_t *c) {
  const er_diag_ev_t *ev = &c->ev;
  const char *head = c->stuck_head;
  if (!head && !ev->stuck)
    return;
  er_buf_printf(&c->brief,
                "\npartition %d stalled at offset %lld, %lld later "
                "message(s) waiting; the message there (produced by this "
                "scenario): %s",
                ev->stuck_partition, (long long)ev->stuck_offset,
                (long long)ev->stuck_waiting, head ? head : "?");
  json_object_set_new(
      c->doc, "stalled_partition",
      json_pack("{s:i,s:I,s:I,s:s}", "partition", ev->stuck_partition, "offset",
                (json_int_t)ev->stuck_offset, "waiting",
                (json_int_t)ev->stuck_waiting, "value", head ? head : ""));
}

/* 5b. a list of what the steps did, into the text after title and into
 * diagnostics.json under name */
static void steps_list(coll_t *c, const char *title, const char *name,
                       char *const *v, size_t n) {
  json_t *a;
  if (!n)
    return;
  a = json_array();
  er_buf_puts(&c->brief, title);
  for (size_t j = 0; j < n; j++) {
    er_buf_printf(&c->brief, "%s %s", j ? ";" : "", v[j]);
    json_array_append_new(a, json_string(v[j]));
  }
  json_object_set_new(c->doc, name, a);
}

/* 5b. what the scenario's steps did */
static void coll_steps(coll_t *c) {
  const rec_t *r = c->r;
  er_diag_ev_t *ev = &c->ev;
  if (!r)
    return;
  ev->kills = (int)r->nkills;
  ev->killed = r->nkills ? r->kills[0] : NULL;
  /* the first fault that breaks a connection (latency only slows) */
  for (size_t j = 0; j < r->nfaults && !ev->fault; j++)
    if (!strstr(r->faults[j], " latency"))
      ev->fault = r->faults[j];
  ev->rows_seen = r->rows_seen;
  ev->contend_writes = r->contend_writes;
  if (r->contend_writes > 0)
    er_buf_printf(&c->brief, "\nredis.contend wrote %lld time(s)",
                  r->contend_writes);
  if (r->exp_topic) {
    ev->expect_topic = r->exp_topic;
    ev->expect_matched = r->exp_matched;
    ev->expect_seen = r->exp_seen;
    ev->expect_exceeded = r->exp_exceeded;
  }
  steps_list(c, "\nservice steps:", "service_steps", r->services, r->nservices);
  steps_list(c, "\nfaults applied:", "faults", r->faults, r->nfaults);
  if (r->rows_seen && r->rows_query)
    json_object_set_new(c->doc, "rows_seen_by", json_string(r->rows_query));
}

/* 6. services: state, health, last log lines */
static void coll_services(coll_t *c) {
  const json_t *sv = json_object_get(c->in->env, "services");
  const json_t *s;
  size_t i;
  json_array_foreach(sv, i, s) {
    const char *name = json_string_value(json_object_get(s, "name"));
    json_t *o;
    char *tail;
    if (!name || !c->svcs)
      continue;
    o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(
        o, "state",
        json_string(er_svc_state_name(er_services_state(c->svcs, name))));
    if (!past(c->deadline))
      health(s, o, c->deadline);
    tail = er_services_log_tail(c->svcs, name, LOG_LINES);
    if (tail) {
      tail_cap(tail);
      er_secret_redact(tail);
      json_t *jt = json_string(tail);
      json_object_set_new(o, "log_tail", jt ? jt : json_string("?"));
    }
    free(tail);
    json_array_append_new(c->jsvcs, o);
  }
}

/* diagnostics.json: the verdict, the failure and the sections */
static void coll_doc(coll_t *c, const char *verdict) {
  const er_diag_in_t *in = c->in;
  json_t *doc = c->doc;
  json_object_set_new(doc, "verdict", json_string(verdict));
  if (in->failed_step)
    json_object_set_new(doc, "failed_step", json_string(in->failed_step));
  json_object_set_new(doc, "detail", json_string(in->detail ? in->detail : ""));
  json_object_set(doc, "produced", c->jprod);
  json_object_set(doc, "missing_topics_read", c->jread);
  json_object_set(doc, "consumer_groups", c->jgroups);
  json_object_set(doc, "idempotency_keys", c->jkeys);
  if (c->jmet)
    json_object_set(doc, "metrics_delta", c->jmet);
  json_object_set(doc, "services", c->jsvcs);
  json_object_set_new(doc, "rows",
                      json_string(c->ev.no_row       ? "none"
                                  : c->ev.rows_short ? "fewer than expected"
                                                     : "not a row shortfall"));
  json_object_set_new(doc, "elapsed_ms", json_integer(er_now_ms() - c->t0));
}

/* A service's last log lines, indented, into the full text. */
static void log_lines(er_buf_t *full, const char *lt) {
  const char *p = lt;
  er_buf_printf(full, "  last log lines:\n");
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    er_buf_printf(full, "    %.*s\n", (int)n, p);
    p += n + (nl ? 1 : 0);
  }
}

/* The texts' ends: the services and the failure detail */
static void coll_texts(coll_t *c, const char *verdict) {
  const er_diag_in_t *in = c->in;
  const json_t *s;
  size_t i;
  /* the full text: brief + services with their log tails + the detail */
  er_buf_printf(&c->full, "verdict: %s\n", verdict);
  if (in->failed_step)
    er_buf_printf(&c->full, "failed step: %s\n", in->failed_step);
  er_buf_printf(&c->full, "%s\n", er_buf_cstr(&c->brief));
  json_array_foreach(c->jsvcs, i, s) {
    const char *h = json_string_value(json_object_get(s, "health"));
    const char *lt = json_string_value(json_object_get(s, "log_tail"));
    er_buf_printf(&c->full, "service %s: %s%s%s\n",
                  json_string_value(json_object_get(s, "name")),
                  json_string_value(json_object_get(s, "state")),
                  h ? ", health " : "", h ? h : "");
    if (lt && *lt)
      log_lines(&c->full, lt);
  }
  er_buf_printf(&c->full, "failure detail:\n%s\n",
                in->detail ? in->detail : "");

  /* the services' states go into the brief too (no logs there) */
  json_array_foreach(c->jsvcs, i, s) {
    const char *h = json_string_value(json_object_get(s, "health"));
    er_buf_printf(&c->brief, "%sservice %s: %s%s%s", i ? "; " : "\n",
                  json_string_value(json_object_get(s, "name")),
                  json_string_value(json_object_get(s, "state")), h ? ", " : "",
                  h ? h : "");
  }
}

/* in->dir/diagnostics.{txt,json} (the folder made if missing), redacted */
static void coll_write(coll_t *c) {
  const char *dir = c->in->dir;
  char path[1200], *t, *dumped;
  if (!dir || er_mkdirs(dir, &c->err) != 0)
    return;
  t = er_strdup(er_buf_cstr(&c->full));
  dumped = er_json_dumps(c->doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (t) {
    er_secret_redact(t);
    slash_join(path, sizeof path, dir, "diagnostics.txt");
    er_write_file_atomic(path, t, strlen(t), &c->err);
    free(t);
  }
  if (dumped) {
    er_secret_redact(dumped);
    slash_join(path, sizeof path, dir, "diagnostics.json");
    er_write_file_atomic(path, dumped, strlen(dumped), &c->err);
  }
  free(dumped);
}

/* The section for the failure text (caller frees; redacted), or NULL. */
static char *coll_result(coll_t *c, const char *verdict) {
  er_buf_t o = ER_BUF_INIT(TEXT_CAP);
  char *result;
  er_buf_printf(&o, "verdict: %s\ndiagnostics", verdict);
  if (c->in->dir)
    er_buf_printf(&o, " (full: %s/diagnostics.txt)", c->in->dir);
  er_buf_printf(&o, ":\n%s", er_buf_cstr(&c->brief));
  result = er_buf_steal(&o);
  if (result)
    er_secret_redact(result);
  return result;
}

char *er_diag_collect(const er_diag_in_t *in) {
  coll_t c;
  char verdict[512], *result = NULL;

  if (coll_init(&c, in) != 0)
    goto out;
  pthread_mutex_lock(&g_lock);
  c.r = in->scenario ? er_session_get(in->scenario, "diag") : NULL;
  pthread_mutex_unlock(&g_lock);
  /* from here on the scenario's steps are over: r is ours */
  coll_produced(&c);
  coll_read_topics(&c);
  coll_groups(&c);
  coll_keys(&c);
  coll_counters(&c);
  coll_failing_step(&c);
  c.ev.missing_topic = c.missing;
  coll_stalled(&c);
  coll_steps(&c);
  read_outputs(&c);
  coll_services(&c);
  er_diag_verdict(&c.ev, verdict, sizeof verdict);
  coll_doc(&c, verdict);
  coll_texts(&c, verdict);
  coll_write(&c);
  result = coll_result(&c, verdict);
out:
  coll_free(&c);
  return result;
}
