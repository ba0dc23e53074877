/* kafka.c: see kafka.h. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/kafka.h"

#define LOG_CAP (64u * 1024u)

/* Every handle's opaque points at a struct starting with this, so the log
 * callback finds its target whatever the handle is for. */
typedef struct kctx {
  er_kafka_t *k;
} kctx_t;

struct er_kafka {
  kctx_t ctx; /* first: ctx.k == this */
  bool embedded;
  int brokers;
  rd_kafka_t *host; /* embedded: the handle the mock cluster lives on */
  rd_kafka_mock_cluster_t *mock;
  char *bootstrap;
  char **props; /* name, value, ... (2 * nprops) */
  size_t nprops;
  char **secrets;
  size_t nsecrets;
  pthread_mutex_t mu; /* guards log and meta's creation */
  er_buf_t log;
  bool log_dropped;
  rd_kafka_t *meta; /* metadata / list offsets handle, made on first use */
  int refs;         /* 1 + producers still alive; guarded by mu */
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t left_ms(int64_t deadline_ms) {
  int64_t l = deadline_ms - er_now_ms();
  return l > 0 ? l : 0;
}

static int tmo(int64_t deadline_ms) {
  int64_t l = left_ms(deadline_ms);
  return l > INT32_MAX ? INT32_MAX : (int)l;
}

static bool secret_name(const char *name) {
  static const char *const parts[] = {
      "password",           "secret",  "token",  "jaas", "ssl.key.pem",
      "oauthbearer.config", "ssl_key", "private"};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (strstr(name, parts[i]))
      return true;
  return false;
}

void er_kafka_redact(const er_kafka_t *k, char *s, size_t cap) {
  if (!k || !s || cap == 0)
    return;
  for (size_t i = 0; i < k->nsecrets; i++) {
    const char *sec = k->secrets[i];
    size_t sl = strlen(sec);
    char *p;
    if (sl < 4)
      continue;
    while ((p = strstr(s, sec)) != NULL) {
      size_t tail = strlen(p + sl);
      /* "***" is never longer than the secret (sl >= 4) */
      p[0] = p[1] = p[2] = '*';
      memmove(p + 3, p + sl, tail + 1);
    }
  }
}

/* er_errf, with secrets taken out of the message. */
static int kerr(const er_kafka_t *k, er_err_t *err, int code, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
static int kerr(const er_kafka_t *k, er_err_t *err, int code, const char *fmt,
                ...) {
  char msg[ER_ERRSTR];
  va_list ap;
  if (!err || err->code != 0)
    return -1;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  er_kafka_redact(k, msg, sizeof msg);
  return er_errf(err, code, "%s", msg);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
  kctx_t *c = rd_kafka_opaque(rk);
  er_kafka_t *k = c ? c->k : NULL;
  char line[1024];
  if (!k)
    return;
  snprintf(line, sizeof line, "%d %s %s: %s\n", level, rd_kafka_name(rk), fac,
           buf);
  er_kafka_redact(k, line, sizeof line);
  pthread_mutex_lock(&k->mu);
  if (k->log.len + strlen(line) > LOG_CAP) {
    /* keep the newest lines: drop what is there */
    er_buf_reset(&k->log);
    k->log_dropped = true;
  }
  er_buf_puts(&k->log, line);
  pthread_mutex_unlock(&k->mu);
}

void er_kafka_log_copy(er_kafka_t *k, er_buf_t *out) {
  if (!k)
    return;
  pthread_mutex_lock(&k->mu);
  if (k->log_dropped)
    er_buf_puts(out, "(earlier librdkafka log lines dropped)\n");
  er_buf_append(out, k->log.data ? k->log.data : "", k->log.len);
  pthread_mutex_unlock(&k->mu);
}

static int conf_set(er_kafka_t *k, rd_kafka_conf_t *conf, const char *name,
                    const char *value, er_err_t *err) {
  char es[512];
  if (rd_kafka_conf_set(conf, name, value, es, sizeof es) != RD_KAFKA_CONF_OK)
    return kerr(k, err, ER_E_INPUT, "kafka property '%s': %s", name, es);
  return 0;
}

/* A configuration for one handle: bootstrap, eventrig's defaults for that
 * handle (pairs, NULL-terminated), then the user's properties. */
static rd_kafka_conf_t *mkconf(er_kafka_t *k, void *opaque,
                               const char *const *defaults, er_err_t *err) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (!conf) {
    er_errf(err, ER_E_ENV, "kafka: out of memory");
    return NULL;
  }
  rd_kafka_conf_set_opaque(conf, opaque);
  rd_kafka_conf_set_log_cb(conf, log_cb);
  if (conf_set(k, conf, "log_level", "6", err) != 0 ||
      conf_set(k, conf, "client.id", "eventrig", err) != 0 ||
      (k->bootstrap &&
       conf_set(k, conf, "bootstrap.servers", k->bootstrap, err) != 0))
    goto fail;
  for (size_t i = 0; defaults && defaults[i]; i += 2)
    if (conf_set(k, conf, defaults[i], defaults[i + 1], err) != 0)
      goto fail;
  for (size_t i = 0; i < k->nprops; i++)
    if (conf_set(k, conf, k->props[2 * i], k->props[2 * i + 1], err) != 0)
      goto fail;
  return conf;
fail:
  rd_kafka_conf_destroy(conf);
  return NULL;
}

static rd_kafka_t *mkhandle(er_kafka_t *k, rd_kafka_type_t type, void *opaque,
                            const char *const *defaults, er_err_t *err) {
  char es[512];
  rd_kafka_t *rk;
  rd_kafka_conf_t *conf = mkconf(k, opaque, defaults, err);
  if (!conf)
    return NULL;
  rk = rd_kafka_new(type, conf, es, sizeof es);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    kerr(k, err, ER_E_INPUT, "kafka: cannot make a client: %s", es);
  }
  return rk;
}

static er_kafka_t *target_new(void) {
  er_kafka_t *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->ctx.k = k;
  k->refs = 1;
  pthread_mutex_init(&k->mu, NULL);
  er_buf_init(&k->log, LOG_CAP + 2048);
  return k;
}

/* ---- targets ------------------------------------------------------------ */

er_kafka_t *er_kafka_embedded(int brokers, er_err_t *err) {
  er_kafka_t *k = NULL;
  const char *bs;

  if (brokers < 1 || brokers > 16) {
    er_errf(err, ER_E_INPUT, "kafka: embedded brokers must be 1..16, not %d",
            brokers);
    return NULL;
  }
  k = target_new();
  if (!k)
    goto oom;
  k->embedded = true;
  k->brokers = brokers;
  /* the host handle never connects anywhere */
  k->host = mkhandle(k, RD_KAFKA_PRODUCER, &k->ctx, NULL, err);
  if (!k->host)
    goto fail;
  k->mock = rd_kafka_mock_cluster_new(k->host, brokers);
  if (!k->mock) {
    er_errf(err, ER_E_ENV, "kafka: could not start the embedded broker");
    goto fail;
  }
  bs = rd_kafka_mock_cluster_bootstraps(k->mock);
  k->bootstrap = er_strdup(bs);
  if (!k->bootstrap)
    goto oom;
  return k;
oom:
  er_errf(err, ER_E_ENV, "kafka: out of memory");
fail:
  er_kafka_free(k);
  return NULL;
}

er_kafka_t *er_kafka_connect(const char *bootstrap, const char *const *props,
                             size_t nprops, er_err_t *err) {
  er_kafka_t *k = NULL;
  rd_kafka_conf_t *probe = NULL;
  if (!bootstrap || !*bootstrap) {
    er_errf(err, ER_E_INPUT, "kafka: empty bootstrap address");
    return NULL;
  }
  k = target_new();
  if (!k)
    goto oom;
  k->bootstrap = er_strdup(bootstrap);
  k->props = calloc(2 * nprops + 1, sizeof *k->props);
  k->secrets = calloc(nprops + 1, sizeof *k->secrets);
  if (!k->bootstrap || !k->props || !k->secrets)
    goto oom;
  for (size_t i = 0; i < nprops; i++) {
    k->props[2 * i] = er_strdup(props[2 * i]);
    k->props[2 * i + 1] = er_strdup(props[2 * i + 1]);
    k->nprops = i + 1;
    if (!k->props[2 * i] || !k->props[2 * i + 1])
      goto oom;
    if (secret_name(props[2 * i])) {
      k->secrets[k->nsecrets] = er_strdup(props[2 * i + 1]);
      if (!k->secrets[k->nsecrets])
        goto oom;
      k->nsecrets++;
    }
  }
  /* check the properties once, now */
  probe = mkconf(k, &k->ctx, NULL, err);
  if (!probe)
    goto fail;
  rd_kafka_conf_destroy(probe);
  return k;
oom:
  er_errf(err, ER_E_ENV, "kafka: out of memory");
fail:
  er_kafka_free(k);
  return NULL;
}

/* Drops a reference; the last one frees the memory (log, secrets). */
static void release(er_kafka_t *k) {
  int left;
  pthread_mutex_lock(&k->mu);
  left = --k->refs;
  pthread_mutex_unlock(&k->mu);
  if (left > 0)
    return;
  for (size_t i = 0; k->props && i < 2 * k->nprops; i++)
    free(k->props[i]);
  free(k->props);
  for (size_t i = 0; k->secrets && i < k->nsecrets; i++)
    free(k->secrets[i]);
  free(k->secrets);
  free(k->bootstrap);
  er_buf_free(&k->log);
  pthread_mutex_destroy(&k->mu);
  free(k);
}

/* Stops the broker and the handles now; a producer still alive keeps the
 * memory its callbacks use until it is freed. */
void er_kafka_free(er_kafka_t *k) {
  if (!k)
    return;
  if (k->meta)
    rd_kafka_destroy(k->meta);
  k->meta = NULL;
  if (k->mock)
    rd_kafka_mock_cluster_destroy(k->mock);
  k->mock = NULL;
  if (k->host)
    rd_kafka_destroy(k->host);
  k->host = NULL;
  release(k);
}

const char *er_kafka_bootstrap(const er_kafka_t *k) { return k->bootstrap; }
bool er_kafka_is_embedded(const er_kafka_t *k) { return k->embedded; }
void *er_kafka_mock_cluster(er_kafka_t *k) { return k->mock; }

/* ---- metadata ----------------------------------------------------------- */

static rd_kafka_t *meta_handle(er_kafka_t *k, er_err_t *err) {
  static const char *const defaults[] = {"allow.auto.create.topics", "false",
                                         NULL};
  rd_kafka_t *rk;
  pthread_mutex_lock(&k->mu);
  rk = k->meta;
  pthread_mutex_unlock(&k->mu);
  if (rk)
    return rk;
  rk = mkhandle(k, RD_KAFKA_CONSUMER, &k->ctx, defaults, err);
  if (!rk)
    return NULL;
  pthread_mutex_lock(&k->mu);
  if (!k->meta) {
    k->meta = rk;
    rk = NULL;
  }
  pthread_mutex_unlock(&k->mu);
  if (rk) /* another thread was faster */
    rd_kafka_destroy(rk);
  return k->meta;
}

/* Metadata of all topics (never names a topic: see kafka.h). */
static const rd_kafka_metadata_t *all_topics(er_kafka_t *k, int64_t deadline_ms,
                                             er_err_t *err) {
  const rd_kafka_metadata_t *md = NULL;
  rd_kafka_resp_err_t e;
  rd_kafka_t *rk = meta_handle(k, err);
  if (!rk)
    return NULL;
  e = rd_kafka_metadata(rk, 1, NULL, &md, tmo(deadline_ms));
  if (e) {
    kerr(k, err, ER_E_ENV, "kafka: no metadata from %s: %s", k->bootstrap,
         rd_kafka_err2str(e));
    return NULL;
  }
  return md;
}

static const rd_kafka_metadata_topic_t *md_topic(const rd_kafka_metadata_t *md,
                                                 const char *topic) {
  for (int i = 0; i < md->topic_cnt; i++)
    if (strcmp(md->topics[i].topic, topic) == 0 && md->topics[i].err == 0)
      return &md->topics[i];
  return NULL;
}

int er_kafka_topic_partitions(er_kafka_t *k, const char *topic, int *nparts,
                              int64_t deadline_ms, er_err_t *err) {
  const rd_kafka_metadata_t *md = all_topics(k, deadline_ms, err);
  const rd_kafka_metadata_topic_t *t;
  int rc;
  if (!md)
    return -1;
  t = md_topic(md, topic);
  *nparts = t ? t->partition_cnt : 0;
  rc = t ? 1 : 0;
  rd_kafka_metadata_destroy(md);
  return rc;
}

int er_kafka_topics_missing(er_kafka_t *k, const char *const *names, size_t n,
                            er_buf_t *missing, int64_t deadline_ms,
                            er_err_t *err) {
  const rd_kafka_metadata_t *md = all_topics(k, deadline_ms, err);
  int cnt = 0;
  if (!md)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (md_topic(md, names[i]))
      continue;
    er_buf_printf(missing, "%s%s", cnt ? ", " : "", names[i]);
    cnt++;
  }
  rd_kafka_metadata_destroy(md);
  return cnt;
}

/* Waits for one admin result event on q until the deadline. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, int64_t deadline_ms) {
  for (;;) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
    if (ev)
      return ev;
    if (left_ms(deadline_ms) == 0)
      return NULL;
  }
}

/* The answer to an admin request sent to q: the event (caller destroys
 * it), or NULL with err set when none came before the deadline ("no
 * answer to REQUEST('NAME') in time") or it carries an error ("DOING
 * 'NAME': ..."). */
static rd_kafka_event_t *admin_result(const er_kafka_t *k, rd_kafka_queue_t *q,
                                      int64_t deadline_ms, const char *request,
                                      const char *doing, const char *name,
                                      er_err_t *err) {
  rd_kafka_event_t *ev = admin_wait(q, deadline_ms);
  if (!ev) {
    kerr(k, err, ER_E_ENV, "kafka: no answer to %s('%s') in time", request,
         name);
    return NULL;
  }
  if (rd_kafka_event_error(ev)) {
    kerr(k, err, ER_E_ENV, "kafka: %s '%s': %s", doing, name,
         rd_kafka_event_error_string(ev));
    rd_kafka_event_destroy(ev);
    return NULL;
  }
  return ev;
}

static rd_kafka_AdminOptions_t *
admin_opts(rd_kafka_t *rk, rd_kafka_admin_op_t op, int64_t deadline_ms) {
  char es[256];
  rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
  int t = tmo(deadline_ms);
  if (o) {
    rd_kafka_AdminOptions_set_request_timeout(o, t > 0 ? t : 1, es, sizeof es);
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS)
      rd_kafka_AdminOptions_set_operation_timeout(o, t > 0 ? t : 1, es,
                                                  sizeof es);
  }
  return o;
}

int er_kafka_create_topic(er_kafka_t *k, const char *topic, int partitions,
                          int replication, int64_t deadline_ms, er_err_t *err) {
  char es[512];
  rd_kafka_t *rk = NULL;
  rd_kafka_NewTopic_t *nt = NULL;
  rd_kafka_AdminOptions_t *o = NULL;
  rd_kafka_queue_t *q = NULL;
  rd_kafka_event_t *ev = NULL;
  int rc = -1;

  if (partitions < 1)
    partitions = 1;
  if (k->embedded) {
    rd_kafka_resp_err_t e;
    int rf = replication < 1 ? 1 : replication;
    if (rf > k->brokers)
      rf = k->brokers;
    e = rd_kafka_mock_topic_create(k->mock, topic, partitions, rf);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
      return kerr(k, err, ER_E_ENV, "kafka: creating topic '%s': %s", topic,
                  rd_kafka_err2str(e));
    return 0;
  }
  rk = meta_handle(k, err);
  if (!rk)
    goto out;
  nt = rd_kafka_NewTopic_new(topic, partitions, replication, es, sizeof es);
  if (!nt) {
    kerr(k, err, ER_E_INPUT, "kafka: topic '%s': %s", topic, es);
    goto out;
  }
  o = admin_opts(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, deadline_ms);
  q = rd_kafka_queue_new(rk);
  if (!o || !q) {
    er_errf(err, ER_E_ENV, "kafka: out of memory");
    goto out;
  }
  rd_kafka_CreateTopics(rk, &nt, 1, o, q);
  ev = admin_result(k, q, deadline_ms, "CreateTopics", "creating topic", topic,
                    err);
  if (!ev) {
    goto out;
  } else {
    size_t n = 0;
    const rd_kafka_CreateTopics_result_t *res =
        rd_kafka_event_CreateTopics_result(ev);
    const rd_kafka_topic_result_t **tr =
        res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
      if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char *s = rd_kafka_topic_result_error_string(tr[i]);
        kerr(k, err, ER_E_ENV, "kafka: creating topic '%s': %s", topic,
             s ? s : rd_kafka_err2str(e));
        goto out;
      }
    }
  }
  rc = 0;
out:
  if (ev)
    rd_kafka_event_destroy(ev);
  if (q)
    rd_kafka_queue_destroy(q);
  if (o)
    rd_kafka_AdminOptions_destroy(o);
  if (nt)
    rd_kafka_NewTopic_destroy(nt);
  return rc;
}

/* ---- offsets ------------------------------------------------------------ */

/* ListOffsets for partitions 0..n-1 with timestamp `which` (-1 latest,
 * -2 earliest) into out[]. */
static int list_offsets(er_kafka_t *k, rd_kafka_t *rk, const char *topic, int n,
                        int64_t which, int64_t *out, int64_t deadline_ms,
                        er_err_t *err) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
  rd_kafka_resp_err_t e;
  int rc = -1;
  if (!l)
    return er_errf(err, ER_E_ENV, "kafka: out of memory");
  for (int i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(l, topic, i)->offset = which;
  e = rd_kafka_offsets_for_times(rk, l, tmo(deadline_ms));
  if (e) {
    kerr(k, err, ER_E_ENV, "kafka: offsets of '%s': %s", topic,
         rd_kafka_err2str(e));
    goto out;
  }
  for (int i = 0; i < l->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &l->elems[i];
    if (tp->err) {
      kerr(k, err, ER_E_ENV, "kafka: offsets of '%s' [%d]: %s", topic,
           (int)tp->partition, rd_kafka_err2str(tp->err));
      goto out;
    }
    if (tp->partition >= 0 && tp->partition < n)
      out[tp->partition] = tp->offset;
  }
  rc = 0;
out:
  rd_kafka_topic_partition_list_destroy(l);
  return rc;
}

int er_kafka_watermarks(er_kafka_t *k, const char *topic, int64_t **lo,
                        int64_t **hi, int *n, int64_t deadline_ms,
                        er_err_t *err) {
  int np = 0, ex;
  int64_t *l = NULL, *h = NULL;
  rd_kafka_t *rk;
  if (lo)
    *lo = NULL;
  *hi = NULL;
  *n = 0;
  ex = er_kafka_topic_partitions(k, topic, &np, deadline_ms, err);
  if (ex <= 0 || np == 0)
    return ex < 0 ? -1 : 0;
  rk = meta_handle(k, err);
  h = calloc((size_t)np, sizeof *h);
  l = calloc((size_t)np, sizeof *l);
  if (!rk || !h || !l) {
    er_errf(err, ER_E_ENV, "kafka: out of memory");
    goto fail;
  }
  if (list_offsets(k, rk, topic, np, RD_KAFKA_OFFSET_END, h, deadline_ms,
                   err) != 0 ||
      (lo && list_offsets(k, rk, topic, np, RD_KAFKA_OFFSET_BEGINNING, l,
                          deadline_ms, err) != 0))
    goto fail;
  *hi = h;
  if (lo)
    *lo = l;
  else
    free(l);
  *n = np;
  return 0;
fail:
  free(h);
  free(l);
  return -1;
}

/* A consumer handle with group.id that never subscribes. */
static rd_kafka_t *group_handle(er_kafka_t *k, const char *group,
                                er_err_t *err) {
  const char *defaults[] = {"group.id",
                            group,
                            "enable.auto.commit",
                            "false",
                            "enable.auto.offset.store",
                            "false",
                            "allow.auto.create.topics",
                            "false",
                            NULL};
  return mkhandle(k, RD_KAFKA_CONSUMER, &k->ctx, defaults, err);
}

int er_kafka_committed(er_kafka_t *k, const char *group, const char *topic,
                       int n, int64_t *out, int64_t deadline_ms,
                       er_err_t *err) {
  rd_kafka_t *rk = NULL;
  rd_kafka_topic_partition_list_t *l = NULL;
  rd_kafka_resp_err_t e;
  int rc = -1;
  for (int i = 0; i < n; i++)
    out[i] = -1;
  if (n <= 0)
    return 0;
  rk = group_handle(k, group, err);
  l = rd_kafka_topic_partition_list_new(n);
  if (!rk || !l) {
    er_errf(err, ER_E_ENV, "kafka: cannot make a group client");
    goto out;
  }
  for (int i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(l, topic, i);
  e = rd_kafka_committed(rk, l, tmo(deadline_ms));
  if (e) {
    kerr(k, err, ER_E_ENV, "kafka: committed offsets of group '%s': %s", group,
         rd_kafka_err2str(e));
    goto out;
  }
  for (int i = 0; i < l->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &l->elems[i];
    if (tp->err) {
      kerr(k, err, ER_E_ENV,
           "kafka: committed offset of group '%s' on '%s' [%d]: %s", group,
           topic, (int)tp->partition, rd_kafka_err2str(tp->err));
      goto out;
    }
    if (tp->partition >= 0 && tp->partition < n)
      out[tp->partition] = tp->offset >= 0 ? tp->offset : -1;
  }
  rc = 0;
out:
  if (l)
    rd_kafka_topic_partition_list_destroy(l);
  if (rk)
    rd_kafka_destroy(rk);
  return rc;
}

int er_kafka_group_lag(er_kafka_t *k, const char *group, const char *topic,
                       er_kafka_lag_t *out, int64_t deadline_ms,
                       er_err_t *err) {
  memset(out, 0, sizeof *out);
  if (er_kafka_watermarks(k, topic, &out->lo, &out->end, &out->n, deadline_ms,
                          err) != 0)
    return -1;
  if (out->n == 0)
    return 0;
  out->committed = calloc((size_t)out->n, sizeof *out->committed);
  if (!out->committed) {
    er_kafka_lag_free(out);
    return er_errf(err, ER_E_ENV, "kafka: out of memory");
  }
  if (er_kafka_committed(k, group, topic, out->n, out->committed, deadline_ms,
                         err) != 0) {
    er_kafka_lag_free(out);
    return -1;
  }
  for (int i = 0; i < out->n; i++) {
    int64_t from = out->committed[i] >= 0 ? out->committed[i] : out->lo[i];
    if (out->end[i] > from)
      out->total += out->end[i] - from;
  }
  return 0;
}

void er_kafka_lag_free(er_kafka_lag_t *l) {
  if (!l)
    return;
  free(l->committed);
  free(l->lo);
  free(l->end);
  memset(l, 0, sizeof *l);
}

/* The committed-offset list a reset writes. */
static rd_kafka_topic_partition_list_t *
reset_list(er_kafka_t *k, const char *const *topics, size_t ntopics,
           bool to_end, int64_t deadline_ms, er_err_t *err) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
  if (!l) {
    er_errf(err, ER_E_ENV, "kafka: out of memory");
    return NULL;
  }
  for (size_t t = 0; t < ntopics; t++) {
    int64_t *lo = NULL, *hi = NULL;
    int n = 0;
    if (er_kafka_watermarks(k, topics[t], &lo, &hi, &n, deadline_ms, err) !=
        0) {
      rd_kafka_topic_partition_list_destroy(l);
      return NULL;
    }
    if (n == 0) {
      kerr(k, err, ER_E_ENV, "kafka: topic '%s' does not exist", topics[t]);
      rd_kafka_topic_partition_list_destroy(l);
      return NULL;
    }
    for (int i = 0; i < n; i++)
      rd_kafka_topic_partition_list_add(l, topics[t], i)->offset =
          to_end ? hi[i] : lo[i];
    free(lo);
    free(hi);
  }
  return l;
}

static int reset_embedded(er_kafka_t *k, const char *group,
                          rd_kafka_topic_partition_list_t *l,
                          int64_t deadline_ms, er_err_t *err) {
  rd_kafka_t *rk = group_handle(k, group, err);
  rd_kafka_queue_t *q = NULL;
  rd_kafka_event_t *ev = NULL;
  rd_kafka_resp_err_t e;
  int rc = -1;
  if (!rk)
    goto out;
  q = rd_kafka_queue_new(rk);
  if (!q) {
    er_errf(err, ER_E_ENV, "kafka: out of memory");
    goto out;
  }
  e = rd_kafka_commit_queue(rk, l, q, NULL, NULL);
  if (e) {
    kerr(k, err, ER_E_ENV, "kafka: commit for group '%s': %s", group,
         rd_kafka_err2str(e));
    goto out;
  }
  for (;;) {
    ev = rd_kafka_queue_poll(q, 100);
    if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT)
      break;
    if (ev) {
      rd_kafka_event_destroy(ev);
      ev = NULL;
    }
    if (left_ms(deadline_ms) == 0) {
      kerr(k, err, ER_E_ENV,
           "kafka: no answer to the commit for group '%s' "
           "in time",
           group);
      goto out;
    }
  }
  e = rd_kafka_event_error(ev);
  if (e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
      e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION) {
    kerr(k, err, ER_E_FAIL,
         "group '%s' has had members since the embedded broker started; the "
         "embedded broker then accepts offset commits only from its members "
         "and cannot tell whether they are still active, so eventrig cannot "
         "reset it (reset a group before its consumer first joins, or use a "
         "real broker)",
         group);
    goto out;
  }
  if (e) {
    kerr(k, err, ER_E_ENV, "kafka: commit for group '%s': %s", group,
         rd_kafka_err2str(e));
    goto out;
  } else {
    const rd_kafka_topic_partition_list_t *res =
        rd_kafka_event_topic_partition_list(ev);
    for (int i = 0; res && i < res->cnt; i++)
      if (res->elems[i].err) {
        kerr(k, err, ER_E_ENV, "kafka: commit for group '%s' on '%s' [%d]: %s",
             group, res->elems[i].topic, (int)res->elems[i].partition,
             rd_kafka_err2str(res->elems[i].err));
        goto out;
      }
  }
  rc = 0;
out:
  if (ev)
    rd_kafka_event_destroy(ev);
  if (q)
    rd_kafka_queue_destroy(q);
  if (rk)
    rd_kafka_destroy(rk);
  return rc;
}

/* A DescribeConsumerGroups result: 0 when the group has no active member
 * (or does not exist), else -1 with err set. */
static int group_idle(er_kafka_t *k, rd_kafka_event_t *ev, const char *group,
                      er_err_t *err) {
  size_t n = 0;
  const rd_kafka_DescribeConsumerGroups_result_t *res =
      rd_kafka_event_DescribeConsumerGroups_result(ev);
  const rd_kafka_ConsumerGroupDescription_t **d =
      res ? rd_kafka_DescribeConsumerGroups_result_groups(res, &n) : NULL;
  for (size_t i = 0; i < n; i++) {
    const rd_kafka_error_t *ge = rd_kafka_ConsumerGroupDescription_error(d[i]);
    size_t members = rd_kafka_ConsumerGroupDescription_member_count(d[i]);
    if (ge && rd_kafka_error_code(ge) != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
      return kerr(k, err, ER_E_ENV, "kafka: describing group '%s': %s", group,
                  rd_kafka_error_string(ge));
    if (members > 0)
      return kerr(k, err, ER_E_FAIL,
                  "group '%s' has %zu active member(s) (state %s); stop its "
                  "consumers before resetting its offsets",
                  group, members,
                  rd_kafka_consumer_group_state_name(
                      rd_kafka_ConsumerGroupDescription_state(d[i])));
  }
  return 0;
}

/* An AlterConsumerGroupOffsets result: 0 when every partition was set,
 * else -1 with err set. */
static int alter_done(er_kafka_t *k, rd_kafka_event_t *ev, const char *group,
                      er_err_t *err) {
  size_t n = 0;
  const rd_kafka_AlterConsumerGroupOffsets_result_t *res =
      rd_kafka_event_AlterConsumerGroupOffsets_result(ev);
  const rd_kafka_group_result_t **gr =
      res ? rd_kafka_AlterConsumerGroupOffsets_result_groups(res, &n) : NULL;
  for (size_t i = 0; i < n; i++) {
    const rd_kafka_error_t *ge = rd_kafka_group_result_error(gr[i]);
    const rd_kafka_topic_partition_list_t *pl =
        rd_kafka_group_result_partitions(gr[i]);
    if (ge)
      return kerr(k, err, ER_E_ENV, "kafka: resetting group '%s': %s", group,
                  rd_kafka_error_string(ge));
    for (int j = 0; pl && j < pl->cnt; j++)
      if (pl->elems[j].err)
        return kerr(k, err, ER_E_ENV,
                    "kafka: resetting group '%s' on '%s' [%d]: %s", group,
                    pl->elems[j].topic, (int)pl->elems[j].partition,
                    rd_kafka_err2str(pl->elems[j].err));
  }
  return 0;
}

/* Real cluster: refuse with active members, then AlterConsumerGroupOffsets. */
static int reset_real(er_kafka_t *k, const char *group,
                      rd_kafka_topic_partition_list_t *l, int64_t deadline_ms,
                      er_err_t *err) {
  rd_kafka_t *rk = meta_handle(k, err);
  rd_kafka_queue_t *q = NULL;
  rd_kafka_AdminOptions_t *o = NULL;
  rd_kafka_event_t *ev = NULL;
  rd_kafka_AlterConsumerGroupOffsets_t *alter = NULL;
  int rc = -1;
  const char *groups[1] = {group};

  if (!rk)
    goto out;
  q = rd_kafka_queue_new(rk);
  o = admin_opts(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, deadline_ms);
  if (!q || !o) {
    er_errf(err, ER_E_ENV, "kafka: out of memory");
    goto out;
  }
  rd_kafka_DescribeConsumerGroups(rk, groups, 1, o, q);
  ev = admin_result(k, q, deadline_ms, "DescribeConsumerGroups",
                    "describing group", group, err);
  if (!ev || group_idle(k, ev, group, err) != 0)
    goto out;
  rd_kafka_event_destroy(ev);
  ev = NULL;
  rd_kafka_AdminOptions_destroy(o);
  o = admin_opts(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, deadline_ms);
  alter = rd_kafka_AlterConsumerGroupOffsets_new(group, l);
  if (!o || !alter) {
    er_errf(err, ER_E_ENV, "kafka: out of memory");
    goto out;
  }
  rd_kafka_AlterConsumerGroupOffsets(rk, &alter, 1, o, q);
  ev = admin_result(k, q, deadline_ms, "AlterConsumerGroupOffsets",
                    "resetting group", group, err);
  if (!ev || alter_done(k, ev, group, err) != 0)
    goto out;
  rc = 0;
out:
  if (alter)
    rd_kafka_AlterConsumerGroupOffsets_destroy(alter);
  if (ev)
    rd_kafka_event_destroy(ev);
  if (o)
    rd_kafka_AdminOptions_destroy(o);
  if (q)
    rd_kafka_queue_destroy(q);
  return rc;
}

int er_kafka_reset_group(er_kafka_t *k, const char *group,
                         const char *const *topics, size_t ntopics, bool to_end,
                         int64_t deadline_ms, er_err_t *err) {
  rd_kafka_topic_partition_list_t *l;
  int rc;
  if (!group || !*group)
    return er_errf(err, ER_E_INPUT, "kafka: empty group name");
  l = reset_list(k, topics, ntopics, to_end, deadline_ms, err);
  if (!l)
    return -1;
  rc = k->embedded ? reset_embedded(k, group, l, deadline_ms, err)
                   : reset_real(k, group, l, deadline_ms, err);
  rd_kafka_topic_partition_list_destroy(l);
  return rc;
}

/* ---- producing ---------------------------------------------------------- */

struct er_kafka_producer {
  kctx_t ctx; /* first */
  rd_kafka_t *rk;
  uintptr_t call; /* number of the current er_kafka_produce call */
  size_t reported, delivered, failed;
  size_t purged; /* given up on by this call (rd_kafka_purge) */
  char first_error[256];
  int32_t dr_part[ER_KAFKA_DR_KEEP]; /* first delivered: partition, offset */
  int64_t dr_off[ER_KAFKA_DR_KEEP];
  size_t ndr;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  er_kafka_producer_t *p = opaque;
  (void)rk;
  if ((uintptr_t)m->_private != p->call)
    return; /* a report of an earlier call: already counted as failed */
  p->reported++;
  if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
      m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
    p->purged++; /* this call gave up on it: not the broker's failure */
  } else if (m->err) {
    p->failed++;
    if (!p->first_error[0])
      snprintf(p->first_error, sizeof p->first_error, "%s",
               rd_kafka_err2str(m->err));
  } else {
    p->delivered++;
    if (p->ndr < ER_KAFKA_DR_KEEP) {
      p->dr_part[p->ndr] = m->partition;
      p->dr_off[p->ndr] = m->offset;
      p->ndr++;
    }
  }
}

er_kafka_producer_t *er_kafka_producer_new(er_kafka_t *k, er_err_t *err) {
  static const char *const defaults[] = {"linger.ms",
                                         "5",
                                         "batch.num.messages",
                                         "10000",
                                         "queue.buffering.max.messages",
                                         "100000",
                                         "queue.buffering.max.kbytes",
                                         "65536",
                                         "compression.type",
                                         "none",
                                         "acks",
                                         "all",
                                         "partitioner",
                                         "murmur2_random",
                                         "message.timeout.ms",
                                         "30000",
                                         NULL};
  er_kafka_producer_t *p = calloc(1, sizeof *p);
  rd_kafka_conf_t *conf;
  char es[512];
  if (!p) {
    er_errf(err, ER_E_ENV, "kafka: out of memory");
    return NULL;
  }
  p->ctx.k = k;
  pthread_mutex_lock(&k->mu);
  k->refs++;
  pthread_mutex_unlock(&k->mu);
  conf = mkconf(k, p, defaults, err);
  if (!conf)
    goto fail;
  rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
  if (!p->rk) {
    rd_kafka_conf_destroy(conf);
    kerr(k, err, ER_E_INPUT, "kafka: cannot make a producer: %s", es);
    goto fail;
  }
  return p;
fail:
  release(k);
  free(p);
  return NULL;
}

void er_kafka_producer_free(er_kafka_producer_t *p) {
  if (!p)
    return;
  if (p->rk) {
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0);
    rd_kafka_destroy(p->rk);
  }
  release(p->ctx.k);
  free(p);
}

/* The topic's partition count; a missing topic is asked for by name once,
 * so that a broker that creates topics on demand (the embedded one, or a
 * real one allowing it) does. */
static int produce_topic(er_kafka_producer_t *p, const char *topic,
                         rd_kafka_topic_t *rkt, int *nparts,
                         int64_t deadline_ms, er_err_t *err) {
  er_kafka_t *k = p->ctx.k;
  int ex = er_kafka_topic_partitions(k, topic, nparts, deadline_ms, err);
  const rd_kafka_metadata_t *md = NULL;
  if (ex != 0)
    return ex < 0 ? -1 : 0;
  if (rd_kafka_metadata(p->rk, 0, rkt, &md, tmo(deadline_ms)) == 0 && md) {
    if (md->topic_cnt == 1 && md->topics[0].err == 0)
      *nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  if (*nparts > 0)
    return 0;
  return kerr(k, err, ER_E_ENV, "kafka: topic '%s' does not exist", topic);
}

static void poll_once(er_kafka_producer_t *p, int ms) {
  rd_kafka_poll(p->rk, ms);
}

/* Why a produce stops before its count is in. */
enum { PSTOP_NONE, PSTOP_DEADLINE, PSTOP_INTR };

/* One er_kafka_produce call. */
typedef struct prun {
  er_kafka_producer_t *p;
  rd_kafka_topic_t *rkt;
  const char *topic;
  int nparts;
  const er_kafka_produce_opts_t *o;
  er_kafka_produce_stats_t *st;
  size_t inflight;      /* bound on messages without a report */
  size_t step, next_pr; /* progress: every step reports */
  int64_t t0;           /* er_now_us() at the start */
  int stop;             /* PSTOP_*: why producing stopped early */
} prun_t;

/* PSTOP_INTR after a signal, PSTOP_DEADLINE once the deadline passed. */
static int produce_stop(int64_t deadline_ms) {
  if (er_interrupted())
    return PSTOP_INTR;
  return er_now_ms() >= deadline_ms ? PSTOP_DEADLINE : PSTOP_NONE;
}

/* Serves delivery reports for up to ms, never past the deadline. Returns
 * 0, or -1 with pr->stop set when producing must stop. */
static int produce_wait(prun_t *pr, int ms) {
  int left;
  pr->stop = produce_stop(pr->o->deadline_ms);
  if (pr->stop)
    return -1;
  left = tmo(pr->o->deadline_ms);
  poll_once(pr->p, ms < left ? ms : left);
  return 0;
}

static void produce_progress(prun_t *pr) {
  if (pr->o->progress && pr->p->reported >= pr->next_pr) {
    pr->o->progress(pr->o->progress_ud, pr->p->reported, pr->o->count);
    pr->next_pr = pr->p->reported + pr->step;
  }
}

/* Waits until message i may go: the in-flight bound and the rate. -1 with
 * pr->stop set at the deadline or on an interrupt. */
static int produce_pace(prun_t *pr, size_t i) {
  const er_kafka_produce_opts_t *o = pr->o;
  pr->stop = produce_stop(o->deadline_ms);
  if (pr->stop)
    return -1;
  while (pr->st->produced - pr->p->reported >= pr->inflight)
    if (produce_wait(pr, 5) != 0)
      return -1;
  if (o->rate > 0) {
    int64_t due = pr->t0 + (int64_t)((double)i * 1e6 / o->rate);
    int64_t now;
    while ((now = er_now_us()) < due) {
      int64_t w = (due - now + 999) / 1000;
      if (produce_wait(pr, w > 100 ? 100 : (int)w) != 0)
        return -1;
    }
  }
  return 0;
}

/* The partition message m goes to, or -1 with err. */
static int produce_partition(prun_t *pr, size_t i, const er_kafka_msg_t *m,
                             int32_t *part, er_err_t *err) {
  if (m->partition == ER_KAFKA_PARTITION_SPREAD && pr->nparts > 0)
    *part = (int32_t)(i % (size_t)pr->nparts);
  else if (m->partition == ER_KAFKA_PARTITION_KEY)
    *part = RD_KAFKA_PARTITION_UA;
  else if (m->partition >= 0 && m->partition < pr->nparts)
    *part = m->partition;
  else
    return kerr(pr->p->ctx.k, err, ER_E_INPUT,
                "kafka: partition %d does not exist (topic '%s' has %d)",
                (int)m->partition, pr->topic, pr->nparts);
  return 0;
}

/* Hands message i to librdkafka. -1 with err, or with pr->stop set when
 * the deadline passed or a signal came (then err is not set). */
static int produce_one(prun_t *pr, size_t i, er_kafka_next_fn next, void *ud,
                       er_err_t *err) {
  er_kafka_producer_t *p = pr->p;
  er_kafka_msg_t m;
  rd_kafka_headers_t *hdrs = NULL;
  rd_kafka_resp_err_t e;
  int32_t part = RD_KAFKA_PARTITION_UA;

  if (produce_pace(pr, i) != 0)
    return -1;
  memset(&m, 0, sizeof m);
  m.partition = ER_KAFKA_PARTITION_KEY;
  if (next(ud, i, &m, err) != 0 ||
      produce_partition(pr, i, &m, &part, err) != 0)
    return -1;
  if (m.nheaders) {
    hdrs = rd_kafka_headers_new(m.nheaders);
    for (size_t h = 0; h < m.nheaders; h++)
      rd_kafka_header_add(hdrs, m.headers[h].name, -1, m.headers[h].value,
                          m.headers[h].value ? (ssize_t)m.headers[h].len : 0);
  }
  for (;;) {
    e = rd_kafka_producev(
        p->rk, RD_KAFKA_V_RKT(pr->rkt), RD_KAFKA_V_PARTITION(part),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE((void *)m.value, m.value ? m.value_len : 0),
        RD_KAFKA_V_KEY(m.key, m.key ? m.key_len : 0), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE((void *)p->call), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || produce_wait(pr, 5) != 0)
      break;
  }
  if (e) {
    if (hdrs) /* librdkafka owns them only once a message is queued */
      rd_kafka_headers_destroy(hdrs);
    if (!pr->stop)
      kerr(p->ctx.k, err, ER_E_FAIL,
           "kafka: could not produce message %zu to '%s': %s", i + 1, pr->topic,
           rd_kafka_err2str(e));
    return -1;
  }
  pr->st->produced++;
  if ((i & 63) == 63)
    poll_once(p, 0);
  produce_progress(pr);
  return 0;
}

/* Waits for the delivery report of every message handed over, unless
 * producing already stopped early (then nothing more is waited for). */
static void produce_await(prun_t *pr) {
  while (!pr->stop && pr->p->reported < pr->st->produced) {
    if (produce_wait(pr, 100) != 0)
      break;
    produce_progress(pr);
  }
}

/* Gives up on the messages without a report: purges them from
 * librdkafka's queues so that nothing of this call is sent later; the
 * reports that do not come now are ignored later (call number) and
 * counted as purged here. */
static void produce_purge(prun_t *pr) {
  er_kafka_producer_t *p = pr->p;
  if (p->reported >= pr->st->produced)
    return;
  rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  poll_once(p, 0);
  p->call++;
  p->purged += pr->st->produced - p->reported;
  p->reported = pr->st->produced;
}

/* Fills the stats from the producer's counters. */
static void produce_stats(prun_t *pr) {
  er_kafka_producer_t *p = pr->p;
  er_kafka_produce_stats_t *st = pr->st;
  st->delivered = p->delivered;
  st->failed = p->failed + p->purged;
  st->ndr = p->ndr;
  for (size_t i = 0; i < p->ndr; i++) {
    st->dr[i].partition = p->dr_part[i];
    st->dr[i].offset = p->dr_off[i];
  }
  snprintf(st->first_error, sizeof st->first_error, "%s", p->first_error);
  er_kafka_redact(p->ctx.k, st->first_error, sizeof st->first_error);
}

/* The call's outcome: 0 when every message was delivered, else -1 with
 * the most telling message (an error set earlier wins). */
static int produce_verdict(prun_t *pr, er_err_t *err) {
  er_kafka_t *k = pr->p->ctx.k;
  const er_kafka_produce_stats_t *st = pr->st;
  size_t count = pr->o->count;
  size_t purged = pr->p->purged;
  size_t refused = pr->p->failed; /* failed reports from the broker */
  char first[400] = "";
  if (refused > 0)
    snprintf(first, sizeof first, "; %zu deliveries failed, first error: %s",
             refused, st->first_error);
  if (pr->stop && st->produced < count)
    kerr(k, err, ER_E_FAIL,
         "kafka: %s after %zu of %zu message(s) to '%s' were queued: %zu "
         "delivered, %zu purged undelivered%s",
         pr->stop == PSTOP_INTR ? "interrupted" : "deadline reached",
         st->produced, count, pr->topic, st->delivered, purged, first);
  else if (purged > 0)
    kerr(k, err, ER_E_FAIL,
         "kafka: %zu of %zu message(s) to '%s' had no delivery report %s%s",
         purged, st->produced, pr->topic,
         pr->stop == PSTOP_INTR ? "when interrupted (purged)"
                                : "before the deadline",
         first);
  else if (st->failed > 0)
    kerr(k, err, ER_E_FAIL,
         "kafka: %zu of %zu deliveries to '%s' failed; first error: %s",
         st->failed, st->produced, pr->topic, st->first_error);
  if (st->produced < count || st->failed > 0)
    return er_errf(
        err, ER_E_FAIL, "kafka: produced %zu of %zu message(s) to '%s'",
        st->produced, count, pr->topic); /* unless a message is set */
  return 0;
}

int er_kafka_produce(er_kafka_producer_t *p, const char *topic,
                     er_kafka_next_fn next, void *ud,
                     const er_kafka_produce_opts_t *o,
                     er_kafka_produce_stats_t *st, er_err_t *err) {
  prun_t pr;
  int rc = -1;

  memset(st, 0, sizeof *st);
  memset(&pr, 0, sizeof pr);
  pr.p = p;
  pr.topic = topic;
  pr.o = o;
  pr.st = st;
  pr.inflight = o->inflight ? o->inflight : 100000;
  pr.step = o->count / 100 ? o->count / 100 : 1;
  pr.next_pr = pr.step;
  pr.t0 = er_now_us();
  p->call++;
  p->reported = p->delivered = p->failed = p->purged = 0;
  p->ndr = 0;
  p->first_error[0] = '\0';

  pr.rkt = rd_kafka_topic_new(p->rk, topic, NULL);
  if (!pr.rkt) {
    kerr(p->ctx.k, err, ER_E_ENV, "kafka: topic '%s': %s", topic,
         rd_kafka_err2str(rd_kafka_last_error()));
    goto out;
  }
  if (produce_topic(p, topic, pr.rkt, &pr.nparts, o->deadline_ms, err) != 0)
    goto out;
  /* queue, checking the deadline and signals before every message */
  for (size_t i = 0; i < o->count; i++)
    if (produce_one(&pr, i, next, ud, err) != 0)
      break;
  produce_await(&pr);
  produce_purge(&pr);
  if (p->purged > 0 && !p->first_error[0])
    snprintf(p->first_error, sizeof p->first_error, "%s",
             pr.stop == PSTOP_INTR ? "purged: interrupted"
                                   : "no delivery report before the deadline");
  if (o->progress)
    o->progress(o->progress_ud, p->reported, o->count);
  produce_stats(&pr);
  rc = produce_verdict(&pr, err);
out:
  st->elapsed_us = er_now_us() - pr.t0;
  if (pr.rkt)
    rd_kafka_topic_destroy(pr.rkt);
  return rc;
}

/* ---- reading ------------------------------------------------------------ */

struct er_kafka_reader {
  er_kafka_t *k;
  rd_kafka_t *rk;
  char *topic;
  int64_t *start;
  int nstart;
  int nparts; /* 0 until assigned */
  bool *eof;
  rd_kafka_message_t *cur;
  int64_t next_look_ms;
  char last_error[256];
};

er_kafka_reader_t *er_kafka_reader_new(er_kafka_t *k, const char *topic,
                                       const int64_t *start, int nstart,
                                       er_err_t *err) {
  static const char *const defaults[] = {
      /* assign() needs a group.id in librdkafka 2.0; this one never joins
       * and never commits */
      "group.id",
      "eventrig-reader",
      "enable.auto.commit",
      "false",
      "enable.auto.offset.store",
      "false",
      "enable.partition.eof",
      "true",
      "auto.offset.reset",
      "earliest",
      "fetch.wait.max.ms",
      "50",
      "queued.max.messages.kbytes",
      "4096",
      "allow.auto.create.topics",
      "false",
      NULL};
  er_kafka_reader_t *r = calloc(1, sizeof *r);
  if (!r)
    goto oom;
  r->k = k;
  pthread_mutex_lock(&k->mu);
  k->refs++;
  pthread_mutex_unlock(&k->mu);
  r->topic = er_strdup(topic);
  if (!r->topic)
    goto oom;
  if (nstart > 0) {
    r->start = calloc((size_t)nstart, sizeof *r->start);
    if (!r->start)
      goto oom;
    memcpy(r->start, start, (size_t)nstart * sizeof *start);
    r->nstart = nstart;
  }
  r->rk = mkhandle(k, RD_KAFKA_CONSUMER, &k->ctx, defaults, err);
  if (!r->rk)
    goto fail;
  return r;
oom:
  er_errf(err, ER_E_ENV, "kafka: out of memory");
fail:
  er_kafka_reader_free(r);
  return NULL;
}

void er_kafka_reader_free(er_kafka_reader_t *r) {
  if (!r)
    return;
  if (r->cur)
    rd_kafka_message_destroy(r->cur);
  if (r->rk) {
    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
  }
  free(r->eof);
  free(r->start);
  free(r->topic);
  release(r->k);
  free(r);
}

static int reader_assign(er_kafka_reader_t *r, int64_t deadline_ms,
                         er_err_t *err) {
  int np = 0, ex;
  rd_kafka_topic_partition_list_t *l;
  rd_kafka_resp_err_t e;
  er_err_t e2 = {0};
  ex = er_kafka_topic_partitions(r->k, r->topic, &np, deadline_ms, &e2);
  if (ex < 0) {
    snprintf(r->last_error, sizeof r->last_error, "%.200s",
             er_str_has_prefix(e2.msg, "kafka: ") ? e2.msg + 7 : e2.msg);
    return 0;
  }
  if (ex == 0 || np == 0)
    return 0;
  l = rd_kafka_topic_partition_list_new(np);
  r->eof = calloc((size_t)np, sizeof *r->eof);
  if (!l || !r->eof) {
    if (l)
      rd_kafka_topic_partition_list_destroy(l);
    return er_errf(err, ER_E_ENV, "kafka: out of memory");
  }
  for (int i = 0; i < np; i++)
    rd_kafka_topic_partition_list_add(l, r->topic, i)->offset =
        i < r->nstart && r->start[i] >= 0 ? r->start[i]
                                          : RD_KAFKA_OFFSET_BEGINNING;
  e = rd_kafka_assign(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e)
    return kerr(r->k, err, ER_E_ENV, "kafka: reading '%s': %s", r->topic,
                rd_kafka_err2str(e));
  r->nparts = np;
  return 0;
}

int er_kafka_reader_start(er_kafka_reader_t *r, int64_t deadline_ms,
                          er_err_t *err) {
  if (r->nparts > 0)
    return 0;
  if (reader_assign(r, deadline_ms, err) != 0)
    return -1;
  r->next_look_ms = er_now_ms() + 250;
  return 0;
}

int er_kafka_reader_next(er_kafka_reader_t *r, int64_t deadline_ms,
                         er_kafka_record_t *rec, er_err_t *err) {
  if (r->cur) {
    rd_kafka_message_destroy(r->cur);
    r->cur = NULL;
  }
  for (;;) {
    int64_t left = left_ms(deadline_ms);
    rd_kafka_message_t *m;
    if (r->nparts == 0) {
      if (er_now_ms() >= r->next_look_ms) {
        if (reader_assign(r, deadline_ms, err) != 0)
          return -1;
        r->next_look_ms = er_now_ms() + 250;
      }
      if (r->nparts == 0) {
        int64_t w = r->next_look_ms - er_now_ms();
        left = left_ms(deadline_ms); /* the look may have taken a while */
        if (left == 0 || er_interrupted())
          break;
        er_sleep_ms(w < left ? w : left);
        continue;
      }
    }
    if (left == 0 || er_interrupted())
      break;
    m = rd_kafka_consumer_poll(r->rk, left < 100 ? (int)left : 100);
    if (!m)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->partition >= 0 && m->partition < r->nparts)
        r->eof[m->partition] = true;
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->err) {
      snprintf(r->last_error, sizeof r->last_error, "%s",
               rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    r->last_error[0] = '\0';
    if (m->partition >= 0 && m->partition < r->nparts)
      r->eof[m->partition] = false;
    r->cur = m;
    memset(rec, 0, sizeof *rec);
    rec->partition = m->partition;
    rec->offset = m->offset;
    rec->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    rec->key = m->key;
    rec->key_len = m->key ? m->key_len : 0;
    rec->value = m->payload;
    rec->value_len = m->payload ? m->len : 0;
    rec->priv_ = m;
    return 1;
  }
  if (r->last_error[0]) {
    kerr(r->k, err, ER_E_ENV, "kafka: reading '%s': %s", r->topic,
         r->last_error);
    return -1;
  }
  return 0;
}

bool er_kafka_reader_at_end(const er_kafka_reader_t *r) {
  if (r->nparts == 0)
    return false;
  for (int i = 0; i < r->nparts; i++)
    if (!r->eof[i])
      return false;
  return true;
}

static rd_kafka_headers_t *rec_headers(const er_kafka_record_t *rec) {
  rd_kafka_headers_t *h = NULL;
  if (!rec->priv_ ||
      rd_kafka_message_headers((rd_kafka_message_t *)rec->priv_, &h) != 0)
    return NULL;
  return h;
}

size_t er_kafka_record_header_count(const er_kafka_record_t *rec) {
  rd_kafka_headers_t *h = rec_headers(rec);
  return h ? rd_kafka_header_cnt(h) : 0;
}

int er_kafka_record_header(const er_kafka_record_t *rec, size_t i,
                           const char **name, const void **value, size_t *len) {
  rd_kafka_headers_t *h = rec_headers(rec);
  if (!h || rd_kafka_header_get_all(h, i, name, value, len) != 0)
    return -1;
  return 0;
}

int er_kafka_record_header_get(const er_kafka_record_t *rec, const char *name,
                               const void **value, size_t *len) {
  rd_kafka_headers_t *h = rec_headers(rec);
  if (!h || rd_kafka_header_get_last(h, name, value, len) != 0)
    return -1;
  return 0;
}

static char *dup_n(const void *p, size_t n) {
  char *s = malloc(n + 1);
  if (s) {
    if (n)
      memcpy(s, p, n);
    s[n] = '\0';
  }
  return s;
}

static int copy_record(const er_kafka_record_t *rec, er_kafka_copy_t *c) {
  size_t nh = er_kafka_record_header_count(rec);
  memset(c, 0, sizeof *c);
  c->partition = rec->partition;
  c->offset = rec->offset;
  if (rec->key && !(c->key = dup_n(rec->key, rec->key_len)))
    return -1;
  c->key_len = rec->key_len;
  if (rec->value && !(c->value = dup_n(rec->value, rec->value_len)))
    return -1;
  c->value_len = rec->value_len;
  if (nh) {
    c->headers = calloc(2 * nh, sizeof *c->headers);
    if (!c->headers)
      return -1;
    for (size_t i = 0; i < nh; i++) {
      const char *name;
      const void *v;
      size_t len;
      if (er_kafka_record_header(rec, i, &name, &v, &len) != 0)
        break;
      c->nheaders = i + 1;
      c->headers[2 * i] = er_strdup(name);
      c->headers[2 * i + 1] = v ? dup_n(v, len) : NULL;
      if (!c->headers[2 * i] || (v && !c->headers[2 * i + 1]))
        return -1;
    }
  }
  return 0;
}

static void copy_free(er_kafka_copy_t *c) {
  free(c->key);
  free(c->value);
  for (size_t i = 0; i < 2 * c->nheaders; i++)
    free(c->headers[i]);
  free(c->headers);
}

void er_kafka_copies_free(er_kafka_copies_t *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++)
    copy_free(&c->v[i]);
  free(c->v);
  memset(c, 0, sizeof *c);
}

int er_kafka_read_to_end(er_kafka_t *k, const char *topic, const int64_t *start,
                         int nstart, size_t max_records, size_t max_bytes,
                         er_kafka_copies_t *out, int64_t deadline_ms,
                         er_err_t *err) {
  int64_t *hi = NULL, *next = NULL;
  int n = 0, rc = -1;
  size_t bytes = 0, alloc = 0;
  er_kafka_reader_t *r = NULL;
  memset(out, 0, sizeof *out);
  if (er_kafka_watermarks(k, topic, NULL, &hi, &n, deadline_ms, err) != 0)
    return -1;
  if (n == 0) {
    rc = 0;
    goto out;
  }
  next = calloc((size_t)n, sizeof *next);
  if (!next) {
    er_errf(err, ER_E_ENV, "kafka: out of memory");
    goto out;
  }
  for (int i = 0; i < n; i++)
    next[i] = i < nstart && start[i] >= 0 ? start[i] : 0;
  r = er_kafka_reader_new(k, topic, start, nstart, err);
  if (!r)
    goto out;
  for (;;) {
    er_kafka_record_t rec;
    bool done = true;
    int got;
    for (int i = 0; i < n; i++)
      if (next[i] < hi[i])
        done = false;
    if (done)
      break;
    got = er_kafka_reader_next(r, deadline_ms, &rec, err);
    if (got < 0)
      goto out;
    if (got == 0) {
      kerr(k, err, ER_E_ENV,
           "kafka: reading '%s' did not reach its end in "
           "time",
           topic);
      goto out;
    }
    if (rec.partition >= 0 && rec.partition < n)
      next[rec.partition] = rec.offset + 1;
    {
      size_t sz = rec.key_len + rec.value_len;
      if (out->n >= max_records || bytes + sz > max_bytes) {
        out->dropped++;
        continue;
      }
      if (out->n == alloc) {
        size_t na = alloc ? alloc * 2 : 64;
        er_kafka_copy_t *nv = realloc(out->v, na * sizeof *nv);
        if (!nv) {
          er_errf(err, ER_E_ENV, "kafka: out of memory");
          goto out;
        }
        out->v = nv;
        alloc = na;
      }
      if (copy_record(&rec, &out->v[out->n]) != 0) {
        copy_free(&out->v[out->n]);
        er_errf(err, ER_E_ENV, "kafka: out of memory");
        goto out;
      }
      out->n++;
      bytes += sz;
    }
  }
  rc = 0;
out:
  er_kafka_reader_free(r);
  free(next);
  free(hi);
  return rc;
}
