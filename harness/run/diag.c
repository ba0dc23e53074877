/* diag.c: diagnostics when a scenario fails (diag.h). */
#include "run/diag.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/http.h"
#include "adapters/redis.h"
#include "adapters/services.h"
#include "base/jsonbig.h"
#include "base/promtext.h"
#include "base/util.h"
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
  int ik; /* index into keys, -1 */
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
} rec_t;

static void rec_free(void *v) {
  rec_t *r = v;
  if (!r)
    return;
  for (size_t i = 0; i < r->np; i++) {
    free(r->p[i].topic);
    free(r->p[i].key);
    free(r->p[i].error);
  }
  for (size_t i = 0; i < r->nk; i++) {
    free(r->k[i].key);
    free(r->k[i].why);
  }
  for (size_t i = 0; i < r->nread; i++)
    free(r->read[i]);
  json_decref(r->metrics0);
  er_redis_free(r->redis);
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

int er_diag_produce_begin(er_exec_t *x, const char *topic, const char *key,
                          const char *value, size_t len) {
  const char *tmpl =
      json_string_value(json_object_get(state_of(x->env), "idempotency_key"));
  int64_t deadline = min64(x->deadline_ms, er_now_ms() + CHECK_MS);
  rec_t *r;
  prod_t *p;
  int h = -1;
  char why[300] = "";
  char *ik = NULL;
  json_t *m0 = NULL;
  bool first;

  /* no HTTP and no template work under the lock: parallel branches
   * produce at once (only the key check shares the Redis connection) */
  if (tmpl)
    ik = idem_key(tmpl, value, len, why, sizeof why);
  pthread_mutex_lock(&g_lock);
  r = rec_get(x);
  first = r && r->np == 0 && !r->metrics0;
  pthread_mutex_unlock(&g_lock);
  if (first) /* the counters' baseline, at the scenario's first produce */
    m0 = metrics_sample(x->env, deadline);
  pthread_mutex_lock(&g_lock);
  if (!r || r->np >= MAX_PRODUCES)
    goto out;
  if (m0 && !r->metrics0) {
    r->metrics0 = m0;
    m0 = NULL;
  }
  p = &r->p[r->np];
  memset(p, 0, sizeof *p);
  p->topic = er_strdup(topic ? topic : "?");
  p->key = key ? er_strdup(key) : NULL;
  p->ik = -1;
  h = (int)r->np++;
  if (!ik)
    goto out;
  for (size_t i = 0; i < r->nk; i++)
    if (strcmp(r->k[i].key, ik) == 0) {
      p->ik = (int)i; /* the first produce's "before" is the one that counts */
      goto out;
    }
  if (r->nk < MAX_KEYS) {
    ikey_t *k = &r->k[r->nk];
    int ex = 0;
    int64_t pttl = -2;
    memset(k, 0, sizeof *k);
    k->key = ik;
    ik = NULL;
    if (r->redis_down)
      snprintf(why, sizeof why, "Redis unreachable earlier in this scenario");
    if (!r->redis_down && key_probe(rec_redis(r, x->env), k->key, deadline, &ex,
                                    &pttl, why, sizeof why) == 0) {
      k->before = ex;
      k->before_pttl = pttl;
    } else {
      k->before = -1;
      k->why = er_strdup(why);
      r->redis_down = r->redis && !er_redis_connected(r->redis);
    }
    p->ik = (int)r->nk++;
  }
out:
  pthread_mutex_unlock(&g_lock);
  json_decref(m0);
  free(ik);
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

/* ---- the verdict ----------------------------------------------------------
 */

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
  const char *rows = e->no_row ? "no row" : "a row missing";
  if (e->missing_topic) {
    snprintf(out, outsz, "topic '%s' missing", e->missing_topic);
    return 1;
  }
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
  if (stalled) {
    snprintf(out, outsz, "on the topic, lag %lld not moving: consumer stalled",
             (long long)e->lag);
    return 1;
  }
  if ((e->no_row || e->rows_short) && consumed && e->keys_before > 0 && dup) {
    snprintf(out, outsz,
             "%s but %s: skipped as a duplicate, its "
             "idempotency key existed before this scenario produced the "
             "event (stale key)",
             cons, rows);
    return 1;
  }
  if ((e->no_row || e->rows_short) && consumed && e->keys_after > 0 && dup) {
    snprintf(out, outsz,
             "%s but %s: skipped as a duplicate, its "
             "idempotency key was written after this scenario produced the "
             "event and kept (a failed attempt kept it)",
             cons, rows);
    return 1;
  }
  if ((e->no_row || e->rows_short) && consumed && e->keys > 0 &&
      e->keys_absent == e->keys && e->metrics_known && e->has_processed &&
      e->processed <= 0 && (!e->has_duplicates || e->duplicates <= 0)) {
    snprintf(out, outsz,
             "%s but %s, no event processed and no idempotency "
             "key: the event was dropped",
             cons, rows);
    return 1;
  }
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
    snprintf(out, outsz,
             "processed (+%.0f) but no idempotency key under the expected "
             "name: the service writes another key",
             e->processed);
    return 1;
  }
  if (e->keys_no_ttl > 0) {
    snprintf(out, outsz, "idempotency key has no TTL: it never expires");
    return 1;
  }
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
        if (strncmp(nl, "[0]", 3) == 0 && (nl[3] == '\0' || nl[3] == '\n'))
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

char *er_diag_collect(const er_diag_in_t *in) {
  int64_t t0 = er_now_ms();
  int64_t deadline = t0 + (in->budget_ms > 0 ? in->budget_ms : 8000);
  const json_t *state = state_of(in->env);
  const json_t *groups = json_object_get(state, "consumer_groups");
  const json_t *mcfg = json_object_get(state, "metrics");
  er_kafka_t *k = er_target_kafka(in->shared);
  er_services_t *svcs =
      in->shared ? er_session_get(in->shared, "services") : NULL;
  rec_t *r = NULL;
  json_t *doc = json_object(), *jprod = json_array(), *jgroups = json_array(),
         *jkeys = json_array(), *jsvcs = json_array(), *jmet = NULL,
         *jread = json_array(), *m1 = NULL;
  er_buf_t full = ER_BUF_INIT(TEXT_CAP), brief = ER_BUF_INIT(TEXT_CAP),
           sink = ER_BUF_INIT(4096); /* what is not listed */
  er_diag_ev_t ev;
  char verdict[512], path[1200], *missing = NULL, *dumped = NULL,
                                 *result = NULL;
  er_err_t err = {0};
  const char *gname;
  const json_t *gtopics;
  size_t i;

  memset(&ev, 0, sizeof ev);
  if (!doc || !jprod || !jgroups || !jkeys || !jsvcs || !jread)
    goto out;
  pthread_mutex_lock(&g_lock);
  r = in->scenario ? er_session_get(in->scenario, "diag") : NULL;
  pthread_mutex_unlock(&g_lock);
  /* from here on the scenario's steps are over: r is ours */

  /* 1. produced messages: on their topics? */
  struct {
    const char *topic; /* borrowed from r */
    int64_t *lo, *hi;
    int n;
  } wm[WM_CACHE];
  size_t nwm = 0;
  er_buf_puts(&brief, "produced:");
  if (!r || r->np == 0)
    er_buf_puts(&brief, " nothing recorded");
  for (i = 0; r && i < r->np; i++) {
    prod_t *p = &r->p[i];
    er_buf_t *bb = i < BRIEF_ITEMS ? &brief : &sink;
    int64_t *lo = NULL, *hi = NULL;
    int n = 0;
    ev.delivered += (int64_t)p->delivered;
    bool known = false, exists = false, on = true;
    json_t *jp = json_object(), *joffs = json_array();
    size_t w;
    bool cached = false;
    for (w = 0; w < nwm; w++)
      if (strcmp(wm[w].topic, p->topic) == 0)
        break;
    if (w < nwm) { /* one metadata request per topic */
      lo = wm[w].lo;
      hi = wm[w].hi;
      n = wm[w].n;
      known = true;
      cached = true;
    } else if (k && !past(deadline) &&
               er_kafka_watermarks(k, p->topic, &lo, &hi, &n,
                                   min64(deadline, er_now_ms() + 2000),
                                   &err) == 0) {
      known = true;
      if (nwm < WM_CACHE) {
        wm[nwm].topic = p->topic;
        wm[nwm].lo = lo;
        wm[nwm].hi = hi;
        wm[nwm].n = n;
        nwm++;
        cached = true;
      }
    }
    exists = known && n > 0;
    er_err_clear(&err);
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
    if (known && !exists && !missing)
      missing = er_strdup(p->topic);
    json_object_set_new(jp, "topic", json_string(p->topic));
    if (p->key)
      json_object_set_new(jp, "key", json_string(p->key));
    json_object_set_new(jp, "delivered",
                        json_integer((json_int_t)p->delivered));
    json_object_set_new(jp, "failed", json_integer((json_int_t)p->failed));
    json_object_set_new(jp, "offsets", joffs);
    if (known)
      json_object_set_new(jp, "topic_exists", json_boolean(exists));
    if (p->error)
      json_object_set_new(jp, "error", json_string(p->error));
    if (p->ik >= 0)
      json_object_set_new(jp, "idempotency_key", json_string(r->k[p->ik].key));
    json_array_append_new(jprod, jp);
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
    if (!cached) {
      free(lo);
      free(hi);
    }
  }
  for (size_t w = 0; w < nwm; w++) {
    free(wm[w].lo);
    free(wm[w].hi);
  }
  if (r && r->np > BRIEF_ITEMS)
    er_buf_printf(&brief, "\n  ... %zu more (diagnostics.json)",
                  r->np - BRIEF_ITEMS);

  /* 1b. topics read by expectations */
  for (i = 0; r && i < r->nread && !past(deadline); i++) {
    int nparts = 0;
    int ex =
        k ? er_kafka_topic_partitions(k, r->read[i], &nparts,
                                      min64(deadline, er_now_ms() + 2000), &err)
          : -1;
    er_err_clear(&err);
    if (ex == 0) {
      er_buf_printf(&brief, "\nread by an expectation: %s: topic MISSING",
                    r->read[i]);
      json_array_append_new(jread, json_string(r->read[i]));
      if (!missing)
        missing = er_strdup(r->read[i]);
    }
  }

  /* 2. consumer groups: committed offsets and lag, twice ~1 s apart */
  if (json_is_object(groups) && k) {
    typedef struct gs {
      const char *group, *topic;
      er_kafka_lag_t l1, l2;
      bool ok1, ok2;
    } gs_t;
    gs_t gv[32];
    size_t ng = 0;
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
    for (size_t g = 0; g < ng && !past(deadline); g++) {
      gv[g].ok1 =
          er_kafka_group_lag(k, gv[g].group, gv[g].topic, &gv[g].l1,
                             min64(deadline, er_now_ms() + 1500), &err) == 0;
      er_err_clear(&err);
    }
    if (ng && deadline - er_now_ms() > 2500)
      er_sleep_ms(1000); /* the lag interval; ends early on Ctrl-C */
    for (size_t g = 0; g < ng && !past(deadline); g++) {
      if (!gv[g].ok1)
        continue;
      gv[g].ok2 =
          er_kafka_group_lag(k, gv[g].group, gv[g].topic, &gv[g].l2,
                             min64(deadline, er_now_ms() + 1500), &err) == 0;
      er_err_clear(&err);
    }
    for (size_t g = 0; g < ng; g++) {
      json_t *o = json_object(), *cm = json_array();
      gs_t *s = &gv[g];
      er_kafka_lag_t *l = s->ok2 ? &s->l2 : &s->l1;
      bool moving =
          s->ok1 && s->ok2 &&
          (group_committed_sum(&s->l1) != group_committed_sum(&s->l2) ||
           s->l1.total != s->l2.total);
      json_object_set_new(o, "group", json_string(s->group));
      json_object_set_new(o, "topic", json_string(s->topic));
      er_buf_printf(&brief, "\ngroup %s on %s: ", s->group, s->topic);
      if (!s->ok1) {
        json_object_set_new(o, "error", json_string("not sampled"));
        er_buf_puts(&brief, "not sampled");
      } else if (l->n == 0) {
        json_object_set_new(o, "topic_exists", json_false());
        er_buf_puts(&brief, "topic MISSING");
        if (!missing)
          missing = er_strdup(s->topic);
      } else {
        for (int p = 0; p < l->n; p++)
          json_array_append_new(cm, json_integer(l->committed[p]));
        json_object_set(o, "committed", cm);
        json_object_set_new(o, "lag", json_integer(l->total));
        if (s->ok2) {
          json_object_set_new(o, "lag_first", json_integer(s->l1.total));
          json_object_set_new(o, "moving", json_boolean(moving));
        }
        er_buf_puts(&brief, "committed [");
        for (int p = 0; p < l->n; p++)
          er_buf_printf(&brief, "%s%lld", p ? " " : "",
                        (long long)l->committed[p]);
        er_buf_printf(&brief, "], end [");
        for (int p = 0; p < l->n; p++)
          er_buf_printf(&brief, "%s%lld", p ? " " : "", (long long)l->end[p]);
        if (s->ok2)
          er_buf_printf(&brief, "], lag %lld -> %lld 1s later (%s)",
                        (long long)s->l1.total, (long long)s->l2.total,
                        moving ? "moving" : "not moving");
        else
          er_buf_printf(&brief, "], lag %lld", (long long)l->total);
        /* lag counts for the verdict only on a topic the scenario used */
        for (size_t j = 0; r && j < r->np; j++)
          if (strcmp(r->p[j].topic, s->topic) == 0) {
            if (!ev.lag_known)
              ev.lag_moving = false;
            ev.lag_known = true;
            ev.lag += l->total;
            ev.lag_moving = ev.lag_moving || moving;
            break;
          }
      }
      json_decref(cm);
      json_array_append_new(jgroups, o);
      er_kafka_lag_free(&s->l1);
      er_kafka_lag_free(&s->l2);
    }
  }

  /* 3. idempotency keys */
  for (i = 0; r && i < r->nk; i++) {
    ikey_t *ik = &r->k[i];
    er_buf_t *bb = i < BRIEF_ITEMS ? &brief : &sink;
    json_t *o = json_object();
    int ex = 0;
    int64_t pttl = -2;
    char why[300] = "";
    bool now_ok =
        !past(deadline) && key_probe(rec_redis(r, in->env), ik->key,
                                     min64(deadline, er_now_ms() + 1000), &ex,
                                     &pttl, why, sizeof why) == 0;
    ev.keys++;
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
      json_object_set_new(o, "exists", json_boolean(ex));
      if (ex)
        json_object_set_new(o, "pttl_ms", json_integer(pttl));
      er_buf_printf(bb, "exists now %s", ex ? "yes" : "no");
      if (ex && pttl >= 0)
        er_buf_printf(bb, ", TTL %.1fs", (double)pttl / 1000.0);
      else if (ex)
        er_buf_puts(bb, ", no TTL");
      if (ex && pttl == -1)
        ev.keys_no_ttl++;
      if (ex && ik->before == 0)
        ev.keys_after++;
      if (!ex)
        ev.keys_absent++;
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
      ev.keys_before++;
    {
      int64_t copies = 0;
      for (size_t j = 0; j < r->np; j++)
        if (r->p[j].ik == (int)i)
          copies += (int64_t)r->p[j].delivered;
      if (copies > ev.max_copies)
        ev.max_copies = copies;
    }
    json_array_append_new(jkeys, o);
  }
  if (r && r->nk > BRIEF_ITEMS)
    er_buf_printf(&brief, "\nidempotency keys: ... %zu more (diagnostics.json)",
                  r->nk - BRIEF_ITEMS);

  /* 4. counters */
  if (json_is_object(mcfg) && !past(deadline)) {
    m1 = metrics_sample(in->env, deadline);
    jmet = json_object();
    er_buf_puts(&brief, "\nmetrics since the scenario's first produce:");
    for (int c = 0; c < 3; c++) {
      const char *name =
          json_string_value(json_object_get(mcfg, k_counters[c]));
      const char *url;
      json_t *v;
      double d = 0;
      bool any = false;
      if (!name)
        continue;
      json_object_foreach(m1, url, v) {
        bool ok = true;
        double a = mval(r ? r->metrics0 : NULL, url, name, &ok);
        double b = mval(m1, url, name, &ok);
        if (ok) {
          d += b - a;
          any = true;
        }
      }
      if (!any) {
        er_buf_printf(&brief, " %s ?", name);
        continue;
      }
      json_object_set_new(jmet, name, json_real(d));
      er_buf_printf(&brief, " %s %+.0f", name, d);
      if (c == 0) {
        ev.has_exec_aborted = true;
        ev.exec_aborted = d;
      } else if (c == 1) {
        ev.has_processed = true;
        ev.processed = d;
      } else {
        ev.has_duplicates = true;
        ev.duplicates = d;
      }
    }
    ev.metrics_known = ev.has_exec_aborted || ev.has_processed;
  }

  /* 5. the failing step */
  {
    int rm = er_diag_detail_rows_missing(in->detail);
    ev.no_row = rm == 2;
    ev.rows_short = rm == 1;
  }
  ev.missing_topic = missing;

  /* 6. services */
  {
    const json_t *sv = json_object_get(in->env, "services");
    const json_t *s;
    json_array_foreach(sv, i, s) {
      const char *name = json_string_value(json_object_get(s, "name"));
      json_t *o;
      char *tail;
      if (!name || !svcs)
        continue;
      o = json_object();
      json_object_set_new(o, "name", json_string(name));
      json_object_set_new(
          o, "state",
          json_string(er_svc_state_name(er_services_state(svcs, name))));
      if (!past(deadline))
        health(s, o, deadline);
      tail = er_services_log_tail(svcs, name, LOG_LINES);
      if (tail) {
        tail_cap(tail);
        er_secret_redact(tail);
        json_t *jt = json_string(tail);
        json_object_set_new(o, "log_tail", jt ? jt : json_string("?"));
      }
      free(tail);
      json_array_append_new(jsvcs, o);
    }
  }

  er_diag_verdict(&ev, verdict, sizeof verdict);

  json_object_set_new(doc, "verdict", json_string(verdict));
  if (in->failed_step)
    json_object_set_new(doc, "failed_step", json_string(in->failed_step));
  json_object_set_new(doc, "detail", json_string(in->detail ? in->detail : ""));
  json_object_set(doc, "produced", jprod);
  json_object_set(doc, "missing_topics_read", jread);
  json_object_set(doc, "consumer_groups", jgroups);
  json_object_set(doc, "idempotency_keys", jkeys);
  if (jmet)
    json_object_set(doc, "metrics_delta", jmet);
  json_object_set(doc, "services", jsvcs);
  json_object_set_new(doc, "rows",
                      json_string(ev.no_row       ? "none"
                                  : ev.rows_short ? "fewer than expected"
                                                  : "not a row shortfall"));
  json_object_set_new(doc, "elapsed_ms", json_integer(er_now_ms() - t0));

  /* the full text: brief + services with their log tails + the detail */
  er_buf_printf(&full, "verdict: %s\n", verdict);
  if (in->failed_step)
    er_buf_printf(&full, "failed step: %s\n", in->failed_step);
  er_buf_printf(&full, "%s\n", er_buf_cstr(&brief));
  json_array_foreach(jsvcs, i, gtopics) {
    const char *h = json_string_value(json_object_get(gtopics, "health"));
    const char *lt = json_string_value(json_object_get(gtopics, "log_tail"));
    er_buf_printf(&full, "service %s: %s%s%s\n",
                  json_string_value(json_object_get(gtopics, "name")),
                  json_string_value(json_object_get(gtopics, "state")),
                  h ? ", health " : "", h ? h : "");
    if (lt && *lt) {
      const char *p = lt;
      er_buf_printf(&full, "  last log lines:\n");
      while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        er_buf_printf(&full, "    %.*s\n", (int)n, p);
        p += n + (nl ? 1 : 0);
      }
    }
  }
  er_buf_printf(&full, "failure detail:\n%s\n", in->detail ? in->detail : "");

  /* the services' states go into the brief too (no logs there) */
  json_array_foreach(jsvcs, i, gtopics) {
    const char *h = json_string_value(json_object_get(gtopics, "health"));
    er_buf_printf(&brief, "%sservice %s: %s%s%s", i ? "; " : "\n",
                  json_string_value(json_object_get(gtopics, "name")),
                  json_string_value(json_object_get(gtopics, "state")),
                  h ? ", " : "", h ? h : "");
  }

  if (in->dir && er_mkdirs(in->dir, &err) == 0) {
    char *t = er_strdup(er_buf_cstr(&full));
    dumped = er_json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (t) {
      er_secret_redact(t);
      slash_join(path, sizeof path, in->dir, "diagnostics.txt");
      er_write_file_atomic(path, t, strlen(t), &err);
      free(t);
    }
    if (dumped) {
      er_secret_redact(dumped);
      slash_join(path, sizeof path, in->dir, "diagnostics.json");
      er_write_file_atomic(path, dumped, strlen(dumped), &err);
    }
  }
  {
    er_buf_t o = ER_BUF_INIT(TEXT_CAP);
    er_buf_printf(&o, "verdict: %s\ndiagnostics", verdict);
    if (in->dir)
      er_buf_printf(&o, " (full: %s/diagnostics.txt)", in->dir);
    er_buf_printf(&o, ":\n%s", er_buf_cstr(&brief));
    result = er_buf_steal(&o);
    if (result)
      er_secret_redact(result);
  }
out:
  free(missing);
  free(dumped);
  json_decref(doc);
  json_decref(jprod);
  json_decref(jgroups);
  json_decref(jkeys);
  json_decref(jsvcs);
  json_decref(jread);
  json_decref(jmet);
  json_decref(m1);
  er_buf_free(&full);
  er_buf_free(&brief);
  er_buf_free(&sink);
  return result;
}
