/* consumer.c: consuming essay.content.provisioned.v1 and processing one
 * event by the contract's steps 1-7 (see ../shared/sut-contract.md,
 * "Processing one essay.content.provisioned.v1 event").
 *
 * Outcome of one event:
 * - processed (assigned, or recorded as excess): offset committed;
 * - duplicate (idempotency key existed): counted, offset committed;
 * - malformed (not JSON, not an envelope with a data object, or data
 *   without a string batch_id, text_storage_id or file_name): its value is
 *   published unchanged to the dead-letter topic (same key, header "error"
 *   with the reason), counted, offset committed: a poison message must not
 *   stall its partition;
 * - infrastructure failure in steps 2-6 (Redis or Postgres error): the
 *   idempotency key is deleted, the offset is NOT committed, the consumer
 *   seeks back to the event and retries it after a backoff (100 ms doubling
 *   to 2 s), for as long as it takes. Nothing is skipped.
 */
#include "consumer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "pyjson.h"
#include "rconn.h"

#define TOPIC_IN "essay.content.provisioned.v1"
#define TOPIC_READY "batch.essays.ready.v1"
#define TOPIC_ASSIGNED "essay.slot.assigned.v1"
#define TOPIC_EXCESS "essay.excess.content.v1"
#define TOPIC_DLQ "essay.content.provisioned.dlq.v1"
#define N_OUT_TOPICS 4
#define SOURCE_SERVICE "essay-lifecycle-service"
#define IDEMPOTENCY_TTL_S 86400
#define MAX_EXEC_ATTEMPTS 50
#define RETRY_BACKOFF_MIN_MS 100
#define RETRY_BACKOFF_MAX_MS 2000
#define DELIVERY_WAIT_MS 5000
#define CLOSE_DEADLINE_MS 3000
#define PENDING_DEL_MAX 1024

struct consumer {
  const sut_config_t *cfg; /* borrowed */
  sut_metrics_t *m;        /* borrowed */
  rd_kafka_t *rk;          /* the consumer */
  rd_kafka_t *prod;        /* the producer of the published events */
  /* handles of the published topics, made at start so that their metadata
   * is fetched before the first event needs it */
  rd_kafka_topic_t *out_topics[N_OUT_TOPICS];
  rconn_t *redis; /* SUT_REDIS_URL: slots and assignments */
  rconn_t *guard; /* SUT_IDEMPOTENCY_REDIS_URL: step 1 only */
  pgconn_t *pg;
  /* idempotency keys whose DEL failed (guard Redis down): deleted before
   * the next event is looked at, so a retried event is not mistaken for a
   * duplicate of itself */
  char *pending_del[PENDING_DEL_MAX];
  size_t npending;
};

/* One consumed event while it is processed. */
typedef struct event {
  const rd_kafka_message_t *msg;
  json_t *envelope;           /* owned */
  const char *batch_id;       /* borrowed from envelope */
  const char *tsid;           /* text_storage_id, borrowed from envelope */
  const char *correlation_id; /* borrowed, NULL when absent */
  char *key;                  /* idempotency key, owned */
  char where[160];            /* "topic[partition]@offset", for logs */
} event_t;

/* What steps 2-6 did, for the outcome log line. */
typedef struct outcome {
  char text[512];
  bool dropped; /* the pg-fail-drop mutant gave the event up */
} outcome_t;

/* ---------------------------------------------------------------- kafka */

int kafka_conf_apply(rd_kafka_conf_t *conf, const char *kv, char *err,
                     size_t errlen) {
  char *copy = strdup(kv ? kv : "");
  char *save = NULL;
  int rc = -1;
  if (copy == NULL) {
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  for (char *tok = strtok_r(copy, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ')
      tok++;
    if (*tok == '\0')
      continue;
    char *eq = strchr(tok, '=');
    if (eq == NULL || eq == tok) {
      snprintf(err, errlen, "SUT_KAFKA_CONFIG: \"%s\" is not k=v", tok);
      goto out;
    }
    *eq = '\0';
    char kerr[256];
    if (rd_kafka_conf_set(conf, tok, eq + 1, kerr, sizeof kerr) !=
        RD_KAFKA_CONF_OK) {
      snprintf(err, errlen, "SUT_KAFKA_CONFIG: %s", kerr);
      goto out;
    }
  }
  rc = 0;
out:
  free(copy);
  return rc;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
                    char *err, size_t errlen) {
  char kerr[256];
  if (rd_kafka_conf_set(conf, k, v, kerr, sizeof kerr) == RD_KAFKA_CONF_OK)
    return 0;
  snprintf(err, errlen, "kafka property %s=%s: %s", k, v, kerr);
  return -1;
}

static void on_kafka_error(rd_kafka_t *rk, int code, const char *reason,
                           void *opaque) {
  (void)opaque;
  sut_log("kafka %s: %s: %s", rd_kafka_name(rk),
          rd_kafka_err2name((rd_kafka_resp_err_t)code), reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err)
    sut_log("publish to %s failed: %s", rd_kafka_topic_name(m->rkt),
            rd_kafka_err2str(m->err));
}

static void fmt_partitions(const rd_kafka_topic_partition_list_t *l, char *out,
                           size_t outlen) {
  size_t n = 0;
  out[0] = '\0';
  for (int i = 0; l && i < l->cnt && n + 1 < outlen; i++) {
    int w = snprintf(out + n, outlen - n, "%s%s[%d]", i ? " " : "",
                     l->elems[i].topic, (int)l->elems[i].partition);
    if (w < 0)
      break;
    n += (size_t)w;
  }
  if (out[0] == '\0')
    snprintf(out, outlen, "(none)");
}

/* Logs assignment changes and applies them (the default behaviour, for the
 * eager and the cooperative protocol alike). */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  (void)opaque;
  char list[512];
  bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  fmt_partitions(parts, list, sizeof list);
  rd_kafka_error_t *e = NULL;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    sut_log("kafka: assigned %s", list);
    if (coop)
      e = rd_kafka_incremental_assign(rk, parts);
    else
      rd_kafka_assign(rk, parts);
  } else {
    sut_log("kafka: revoked %s", list);
    if (coop)
      e = rd_kafka_incremental_unassign(rk, parts);
    else
      rd_kafka_assign(rk, NULL);
  }
  if (e) {
    sut_log("kafka: rebalance: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
}

static rd_kafka_t *make_client(const sut_config_t *cfg, rd_kafka_type_t type,
                               char *err, size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char kerr[512];
  if (conf_set(conf, "bootstrap.servers", cfg->kafka_bootstrap, err, errlen) <
          0 ||
      conf_set(conf, "client.id", cfg->instance, err, errlen) < 0)
    goto fail;
  if (type == RD_KAFKA_CONSUMER) {
    if (conf_set(conf, "group.id", cfg->group_id, err, errlen) < 0 ||
        conf_set(conf, "session.timeout.ms", "6000", err, errlen) < 0 ||
        conf_set(conf, "heartbeat.interval.ms", "1000", err, errlen) < 0 ||
        conf_set(conf, "auto.offset.reset", "earliest", err, errlen) < 0 ||
        conf_set(conf, "enable.auto.commit", "false", err, errlen) < 0 ||
        /* notice a subscribed topic created after the start in seconds,
         * not in librdkafka's default 5 minutes */
        conf_set(conf, "topic.metadata.refresh.interval.ms", "10000", err,
                 errlen) < 0)
      goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
  } else {
    /* send at once: every event waits for its publications anyway */
    if (conf_set(conf, "linger.ms", "0", err, errlen) < 0)
      goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  }
  rd_kafka_conf_set_error_cb(conf, on_kafka_error);
  if (kafka_conf_apply(conf, cfg->kafka_config, err, errlen) < 0)
    goto fail;
  rd_kafka_t *rk = rd_kafka_new(type, conf, kerr, sizeof kerr);
  if (rk == NULL) {
    snprintf(err, errlen, "kafka: %s", kerr);
    goto fail;
  }
  return rk; /* rd_kafka_new took conf */
fail:
  rd_kafka_conf_destroy(conf);
  return NULL;
}

/* Queues one published event: the contract's envelope around data (stolen),
 * key = the batch id. Returns 0, or -1 if it could not even be queued.
 * Delivery is awaited once per event (await_delivery). */
static int publish(consumer_t *c, const event_t *e, const char *topic,
                   json_t *data) {
  char id[37], corr[37], ts[32];
  char *payload = NULL;
  int rc = -1;
  sut_uuid4(id);
  sut_rfc3339_now(ts);
  if (e->correlation_id == NULL)
    sut_uuid4(corr);
  json_t *env = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:o}", "event_id", id, "event_type", topic,
      "event_timestamp", ts, "source_service", SOURCE_SERVICE, "correlation_id",
      e->correlation_id ? e->correlation_id : corr, "data", data);
  if (env == NULL || (payload = json_dumps(env, JSON_COMPACT)) == NULL) {
    sut_log("%s: cannot build the %s envelope", e->where, topic);
    goto out;
  }
  rd_kafka_resp_err_t err = rd_kafka_producev(
      c->prod, RD_KAFKA_V_TOPIC(topic),
      RD_KAFKA_V_KEY(e->batch_id, strlen(e->batch_id)),
      RD_KAFKA_V_VALUE(payload, strlen(payload)),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (err) {
    sut_log("%s: cannot queue %s: %s", e->where, topic, rd_kafka_err2str(err));
    goto out;
  }
  rc = 0;
out:
  free(payload);
  json_decref(env);
  return rc;
}

/* Waits (bounded) until everything published so far is acknowledged, so
 * that the offset is committed after the publications (at-least-once). A
 * publication not confirmed in time stays queued in librdkafka, which keeps
 * retrying it. */
static void await_delivery(consumer_t *c, const event_t *e) {
  if (rd_kafka_outq_len(c->prod) == 0)
    return;
  rd_kafka_flush(c->prod, DELIVERY_WAIT_MS);
  if (rd_kafka_outq_len(c->prod) > 0)
    sut_log("%s: publications not confirmed within %d ms; left queued",
            e->where, DELIVERY_WAIT_MS);
}

/* ---------------------------------------------------------------- parse */

/* A string member of obj, non-empty and without NUL bytes, or NULL. */
static const char *str_member(const json_t *obj, const char *name) {
  const json_t *v = json_object_get(obj, name);
  if (!json_is_string(v) || json_string_length(v) == 0 ||
      strlen(json_string_value(v)) != json_string_length(v))
    return NULL;
  return json_string_value(v);
}

/* Parses the envelope and computes the idempotency key. Returns 0; -1
 * with why filled for a malformed event; -2 with why filled when the
 * service itself failed (out of memory: retried, never dead-lettered). */
static int parse_event(consumer_t *c, const rd_kafka_message_t *m, event_t *e,
                       char *why, size_t whylen) {
  json_error_t jerr;
  char hash[65];
  snprintf(e->where, sizeof e->where, "%s[%d]@%lld",
           rd_kafka_topic_name(m->rkt), (int)m->partition,
           (long long)m->offset);
  e->msg = m;
  if (m->payload == NULL) {
    snprintf(why, whylen, "empty message");
    return -1;
  }
  e->envelope = json_loadb(m->payload, m->len, JSON_ALLOW_NUL, &jerr);
  if (e->envelope == NULL) {
    snprintf(why, whylen, "not JSON: %s", jerr.text);
    return -1;
  }
  const json_t *data = json_object_get(e->envelope, "data");
  if (!json_is_object(data)) {
    snprintf(why, whylen, "no \"data\" object");
    return -1;
  }
  e->batch_id = str_member(data, "batch_id");
  e->tsid = str_member(data, "text_storage_id");
  if (e->batch_id == NULL || e->tsid == NULL) {
    snprintf(why, whylen,
             "data.batch_id and data.text_storage_id must be "
             "non-empty strings");
    return -1;
  }
  if (!json_is_string(json_object_get(data, "file_name"))) {
    snprintf(why, whylen, "data.file_name must be a string");
    return -1;
  }
  e->correlation_id = str_member(e->envelope, "correlation_id");
  /* the envelope's event_type is the topic name by contract; the topic is
   * the fallback when it is missing */
  const char *etype = str_member(e->envelope, "event_type");
  if (etype == NULL)
    etype = rd_kafka_topic_name(m->rkt);
  /* the deterministic event id: SHA-256 of data only, so the same payload
   * in a new envelope is the same event (the envelope-hash mutant hashes
   * the whole envelope) */
  const json_t *hashed = c->cfg->bug == BUG_ENVELOPE_HASH ? e->envelope : data;
  if (pyjson_hash(hashed, hash) < 0) {
    snprintf(why, whylen, "cannot hash the event");
    return -2;
  }
  /* the key-collision mutant leaves the service and the event type out,
   * so equal data under another type, or another service's key, looks
   * processed */
  int n =
      c->cfg->bug == BUG_KEY_COLLISION
          ? asprintf(&e->key, "%s:idempotency:v2:%s", c->cfg->key_prefix, hash)
          : asprintf(&e->key, "%s:idempotency:v2:els:%s:%s", c->cfg->key_prefix,
                     etype, hash);
  if (n < 0) {
    e->key = NULL;
    snprintf(why, whylen, "out of memory");
    return -2;
  }
  return 0;
}

/* ----------------------------------------------------------- idempotency */

/* Deletes idempotency keys left by failed DELs, oldest first, while the
 * guard's Redis answers. */
static void flush_pending_deletes(consumer_t *c) {
  size_t done = 0;
  while (done < c->npending) {
    redisReply *r = rconn_cmd(c->guard, "DEL %s", c->pending_del[done]);
    bool ok = rconn_reply_error(c->guard, r) == NULL;
    if (r)
      freeReplyObject(r);
    if (!ok)
      break;
    sut_log("deleted idempotency key %s (left by an earlier failure)",
            c->pending_del[done]);
    free(c->pending_del[done]);
    done++;
  }
  if (done > 0) {
    memmove(c->pending_del, c->pending_del + done,
            (c->npending - done) * sizeof c->pending_del[0]);
    c->npending -= done;
  }
}

/* After an infrastructure failure: removes the key so that the retried
 * event is processed again; remembers it when the guard's Redis is down. */
static void release_key(consumer_t *c, const event_t *e) {
  redisReply *r = rconn_cmd(c->guard, "DEL %s", e->key);
  const char *err = rconn_reply_error(c->guard, r);
  if (err == NULL) {
    freeReplyObject(r);
    return;
  }
  sut_log("%s: cannot delete idempotency key (%s); will retry", e->where, err);
  if (r)
    freeReplyObject(r);
  for (size_t i = 0; i < c->npending; i++)
    if (strcmp(c->pending_del[i], e->key) == 0)
      return;
  char *k = c->npending < PENDING_DEL_MAX ? strdup(e->key) : NULL;
  if (k == NULL) {
    sut_log("%s: too many undeleted idempotency keys; %s stays", e->where,
            e->key);
    return;
  }
  c->pending_del[c->npending++] = k;
}

/* ------------------------------------------------------------ step 3 */

/* Formats "P:batch:{batch}:{what}" (caller frees), NULL when out of
 * memory. */
static char *batch_key(const consumer_t *c, const char *batch,
                       const char *what) {
  char *k = NULL;
  if (asprintf(&k, "%s:batch:%s:%s", c->cfg->key_prefix, batch, what) < 0)
    return NULL;
  return k;
}

typedef struct assign_result {
  char *slot;   /* owned: the essay's slot, when assigned */
  bool reused;  /* the essay already had this slot (HGET content) */
  int attempts; /* WATCH/MULTI/EXEC rounds */
  bool exec_nil_as_no_slots; /* no-retry mutant took a conflict as full */
} assign_result_t;

/* Runs one Redis command of the assignment. Returns the reply, or NULL on
 * a failure (unreachable, timeout, error reply) with why filled and the
 * connection dropped, so that no WATCH or MULTI state survives into the
 * next attempt. */
static redisReply *vacmd(consumer_t *c, char *why, size_t whylen,
                         const char *fmt, va_list ap) {
  redisReply *r = rconn_vcmd(c->redis, fmt, ap);
  const char *err = rconn_reply_error(c->redis, r);
  if (err == NULL)
    return r;
  char cmd[16];
  snprintf(cmd, sizeof cmd, "%s", fmt);
  char *sp = strchr(cmd, ' ');
  if (sp)
    *sp = '\0';
  snprintf(why, whylen, "redis %s: %s", cmd, err);
  if (r) {
    freeReplyObject(r);
    rconn_reset(c->redis, why);
  }
  return NULL;
}

static redisReply *acmd(consumer_t *c, char *why, size_t whylen,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static redisReply *acmd(consumer_t *c, char *why, size_t whylen,
                        const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vacmd(c, why, whylen, fmt, ap);
  va_end(ap);
  return r;
}

/* acmd for a command whose reply is not needed: 0, or -1 (why filled). */
static int acmd_ok(consumer_t *c, char *why, size_t whylen, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
static int acmd_ok(consumer_t *c, char *why, size_t whylen, const char *fmt,
                   ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vacmd(c, why, whylen, fmt, ap);
  va_end(ap);
  const int rc = r ? 0 : -1;
  freeReplyObject(r);
  return rc;
}

/* A short random pause before the next WATCH round (jittered, growing with
 * the attempt, at most 50 ms), so that competing instances spread out. */
static void conflict_backoff(int attempt) {
  unsigned cap = (unsigned)attempt * 5u;
  if (cap > 50)
    cap = 50;
  sut_sleep_ms(1 + (int64_t)sut_rand_below(cap));
}

/* The keys of one batch's slot assignment (owned). */
typedef struct slot_keys {
  char *avail, *asg, *cnt;
} slot_keys_t;

enum { ASSIGN_ABORTED = 2 }; /* EXEC returned nil: retry */

/* Writes slot cand for the essay: in MULTI/EXEC under the WATCH, or, for
 * the no-watch mutant, as three separate writes with no transaction.
 * Returns 1 (written), ASSIGN_ABORTED or -1 (why filled). */
static int write_slot(consumer_t *c, const slot_keys_t *k, const event_t *e,
                      const char *cand, bool watch, char *why, size_t whylen) {
  if (!watch)
    return acmd_ok(c, why, whylen, "SREM %s %s", k->avail, cand) == 0 &&
                   acmd_ok(c, why, whylen, "HSET %s %s %s", k->asg, cand,
                           e->tsid) == 0 &&
                   acmd_ok(c, why, whylen, "HSET %s %s %s", k->cnt, e->tsid,
                           cand) == 0
               ? 1
               : -1;
  if (acmd_ok(c, why, whylen, "MULTI") != 0 ||
      acmd_ok(c, why, whylen, "SREM %s %s", k->avail, cand) != 0 ||
      acmd_ok(c, why, whylen, "HSET %s %s %s", k->asg, cand, e->tsid) != 0 ||
      acmd_ok(c, why, whylen, "HSET %s %s %s", k->cnt, e->tsid, cand) != 0)
    return -1;
  redisReply *r = acmd(c, why, whylen, "EXEC");
  if (r == NULL)
    return -1;
  const int type = r->type;
  freeReplyObject(r);
  if (type == REDIS_REPLY_ARRAY) /* committed */
    return 1;
  if (type == REDIS_REPLY_NIL)
    return ASSIGN_ABORTED;
  snprintf(why, whylen, "redis EXEC: unexpected reply");
  rconn_reset(c->redis, why);
  return -1;
}

/* One WATCH round. Returns 1 (res->slot set: assigned now or reused), 0
 * (no slot free), ASSIGN_ABORTED or -1 (why filled). */
static int assign_once(consumer_t *c, const slot_keys_t *k, const event_t *e,
                       assign_result_t *res, char *why, size_t whylen) {
  const bool watch = c->cfg->bug != BUG_NO_WATCH;
  redisReply *r;
  if (watch &&
      acmd_ok(c, why, whylen, "WATCH %s %s %s", k->avail, k->asg, k->cnt) != 0)
    return -1;
  /* the essay may already have a slot (a redelivered event) */
  if (!(r = acmd(c, why, whylen, "HGET %s %s", k->cnt, e->tsid)))
    return -1;
  if (r->type == REDIS_REPLY_STRING) {
    res->slot = strndup(r->str, r->len);
    res->reused = true;
    freeReplyObject(r);
    if (watch && acmd_ok(c, why, whylen, "UNWATCH") != 0)
      return -1;
    return res->slot ? 1 : -1;
  }
  freeReplyObject(r);
  /* pick a free slot; the spop-outside-multi mutant removes it here,
   * outside the transaction, which changes a watched key and so aborts
   * its own EXEC every time */
  if (c->cfg->bug == BUG_SPOP_OUTSIDE_MULTI)
    r = acmd(c, why, whylen, "SPOP %s", k->avail);
  else
    r = acmd(c, why, whylen, "SRANDMEMBER %s", k->avail);
  if (r == NULL)
    return -1;
  if (r->type != REDIS_REPLY_STRING) { /* nil: no slot left */
    freeReplyObject(r);
    return watch && acmd_ok(c, why, whylen, "UNWATCH") != 0 ? -1 : 0;
  }
  char *cand = strndup(r->str, r->len);
  freeReplyObject(r);
  if (cand == NULL) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  const int rc = write_slot(c, k, e, cand, watch, why, whylen);
  if (rc == 1)
    res->slot = cand;
  else
    free(cand);
  return rc;
}

/* Step 3: gives the essay a slot, atomically with optimistic locking.
 * Returns 1 (res->slot set: assigned now or reused), 0 (no slot free), or
 * -1 on an infrastructure failure (why filled). */
static int assign_slot(consumer_t *c, const event_t *e, assign_result_t *res,
                       char *why, size_t whylen) {
  slot_keys_t k = {batch_key(c, e->batch_id, "available_slots"),
                   batch_key(c, e->batch_id, "assignments"),
                   batch_key(c, e->batch_id, "content")};
  int rc = -1;
  if (k.avail == NULL || k.asg == NULL || k.cnt == NULL) {
    snprintf(why, whylen, "out of memory");
    goto out;
  }
  for (res->attempts = 1; res->attempts <= MAX_EXEC_ATTEMPTS; res->attempts++) {
    if (sut_stop) {
      snprintf(why, whylen, "shutting down");
      rc = -1;
      goto out;
    }
    rc = assign_once(c, &k, e, res, why, whylen);
    if (rc != ASSIGN_ABORTED)
      goto out;
    /* EXEC nil: a watched key changed between WATCH and EXEC */
    atomic_fetch_add(&c->m->watch_conflicts, 1);
    if (c->cfg->bug == BUG_NO_RETRY) {
      res->exec_nil_as_no_slots = true;
      rc = 0;
      goto out;
    }
    conflict_backoff(res->attempts);
  }
  rc = -1;
  res->attempts = MAX_EXEC_ATTEMPTS;
  snprintf(why, whylen, "redis: EXEC aborted %d times in a row",
           MAX_EXEC_ATTEMPTS);
out:
  free(k.avail);
  free(k.asg);
  free(k.cnt);
  return rc;
}

/* --------------------------------------------------------- steps 2-6 */

/* Records excess content (row + event). Returns 0 or -1 (why filled). */
static int record_excess(consumer_t *c, const event_t *e, const char *reason,
                         char *why, size_t whylen) {
  const char *params[] = {e->batch_id, e->tsid, reason};
  PGresult *r = pgconn_exec(c->pg,
                            "INSERT INTO excess_content (batch_id, "
                            "text_storage_id, reason) VALUES ($1, $2, $3)",
                            3, params);
  if (r == NULL) {
    snprintf(why, whylen, "postgres: %s", pgconn_error(c->pg));
    return -1;
  }
  PQclear(r);
  atomic_fetch_add(&c->m->excess_content, 1);
  if (c->cfg->bug == BUG_EXCESS_SILENT) /* the mutant: recorded, not told */
    return 0;
  /* the row is recorded: a failure to queue the event is logged only (a
   * retry would record a second row) */
  publish(c, e, TOPIC_EXCESS,
          json_pack("{s:s, s:s, s:s}", "batch_id", e->batch_id,
                    "text_storage_id", e->tsid, "reason", reason));
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Step 6: when every slot has its row, the instance that flips
 * ready_published publishes batch.essays.ready.v1 (essay_ids sorted).
 * Returns 0 (*published says whether this call published) or -1. */
static int check_ready(consumer_t *c, const event_t *e, long expected,
                       bool *published, char *why, size_t whylen) {
  const char *params[] = {e->batch_id};
  PGresult *rows = NULL, *upd = NULL;
  const char **ids = NULL;
  json_t *arr = NULL;
  int rc = -1;
  *published = false;
  /* the essay ids are read before the UPDATE, so that nothing can fail
   * between claiming the batch and publishing its ready event */
  rows = pgconn_exec(c->pg,
                     "SELECT essay_id FROM essay_states WHERE batch_id = $1", 1,
                     params);
  if (rows == NULL)
    goto pgfail;
  int n = PQntuples(rows);
  /* the ready-early mutant is off by one: one essay may still be missing */
  if (n < (c->cfg->bug == BUG_READY_EARLY ? expected - 1 : expected)) {
    rc = 0;
    goto out;
  }
  if (c->cfg->bug == BUG_READY_UNGUARDED) {
    /* the mutant: publishes whenever it sees the count complete */
    upd = pgconn_exec(c->pg,
                      "UPDATE batch_essay_trackers SET ready_published = true "
                      "WHERE batch_id = $1",
                      1, params);
    if (upd == NULL)
      goto pgfail;
  } else {
    upd = pgconn_exec(c->pg,
                      "UPDATE batch_essay_trackers SET ready_published = true "
                      "WHERE batch_id = $1 AND NOT ready_published "
                      "RETURNING batch_id",
                      1, params);
    if (upd == NULL)
      goto pgfail;
    if (PQntuples(upd) != 1) { /* another instance (or event) claimed it */
      rc = 0;
      goto out;
    }
  }
  ids = calloc((size_t)n, sizeof *ids);
  arr = json_array();
  if (ids == NULL || arr == NULL) {
    snprintf(why, whylen, "out of memory");
    goto out;
  }
  for (int i = 0; i < n; i++)
    ids[i] = PQgetvalue(rows, i, 0);
  /* byte order = code point order, as Python's sorted() on str */
  qsort(ids, (size_t)n, sizeof *ids, cmp_str);
  for (int i = 0; i < n; i++)
    json_array_append_new(arr, json_string(ids[i]));
  if (publish(c, e, TOPIC_READY,
              json_pack("{s:s, s:o}", "batch_id", e->batch_id, "essay_ids",
                        arr)) < 0)
    sut_log("%s: the ready event of batch %s could not be queued", e->where,
            e->batch_id);
  arr = NULL; /* stolen by json_pack */
  *published = true;
  rc = 0;
  goto out;
pgfail:
  snprintf(why, whylen, "postgres: %s", pgconn_error(c->pg));
out:
  json_decref(arr);
  free(ids);
  PQclear(rows);
  PQclear(upd);
  return rc;
}

/* Steps 2-6. Returns 0 (outcome filled) or -1 on an infrastructure failure
 * (why filled). */
static int process(consumer_t *c, const event_t *e, outcome_t *o, char *why,
                   size_t whylen) {
  const char *params1[] = {e->batch_id};
  assign_result_t ar = {NULL, false, 0, false};
  int rc = -1;
  /* step 2: the batch must be registered */
  PGresult *r = pgconn_exec(
      c->pg,
      "SELECT expected_count FROM batch_essay_trackers WHERE batch_id = $1", 1,
      params1);
  if (r == NULL) {
    snprintf(why, whylen, "postgres: %s", pgconn_error(c->pg));
    goto out;
  }
  if (PQntuples(r) == 0) {
    PQclear(r);
    if (record_excess(c, e, "unknown_batch", why, whylen) < 0)
      goto out;
    snprintf(o->text, sizeof o->text, "excess content (unknown_batch)");
    rc = 0;
    goto out;
  }
  long expected = strtol(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  /* step 3: a slot, atomically */
  int got = assign_slot(c, e, &ar, why, whylen);
  if (got < 0)
    goto out;
  if (got == 0) {
    if (record_excess(c, e, "no_slots", why, whylen) < 0)
      goto out;
    snprintf(o->text, sizeof o->text, "excess content (no_slots)%s",
             ar.exec_nil_as_no_slots ? " after an EXEC conflict" : "");
    rc = 0;
    goto out;
  }
  /* step 4: the essay's row, exactly once */
  const char *params4[] = {ar.slot, e->batch_id, e->tsid, c->cfg->instance};
  r = pgconn_exec(c->pg,
                  "INSERT INTO essay_states (essay_id, batch_id, "
                  "text_storage_id, assigned_by) VALUES ($1, $2, $3, $4) "
                  "ON CONFLICT DO NOTHING",
                  4, params4);
  if (r == NULL) {
    snprintf(why, whylen, "postgres: %s", pgconn_error(c->pg));
    if (c->cfg->bug == BUG_PG_FAIL_DROP) {
      /* the mutant: the failure is logged, the event given up */
      snprintf(o->text, sizeof o->text,
               "slot %s assigned but its row failed (%.200s): event dropped",
               ar.slot, why);
      o->dropped = true;
      rc = 0;
    }
    goto out;
  }
  PQclear(r);
  /* step 5: the assignment event (again on a retry: at-least-once) */
  if (publish(c, e, TOPIC_ASSIGNED,
              json_pack("{s:s, s:s, s:s}", "batch_id", e->batch_id, "essay_id",
                        ar.slot, "text_storage_id", e->tsid)) < 0) {
    snprintf(why, whylen, "kafka: cannot queue %s", TOPIC_ASSIGNED);
    goto out;
  }
  /* step 6: the batch's ready event, exactly once */
  bool ready = false;
  if (check_ready(c, e, expected, &ready, why, whylen) < 0)
    goto out;
  snprintf(o->text, sizeof o->text, "slot %s %s (%d attempt%s)%s", ar.slot,
           ar.reused ? "reused" : "assigned", ar.attempts,
           ar.attempts == 1 ? "" : "s",
           ready ? "; batch complete, ready event published" : "");
  rc = 0;
out:
  free(ar.slot);
  return rc;
}

/* A malformed event: its value, unchanged, to the dead-letter topic with
 * the same key and a header "error" holding why on one line; counted once
 * the publication is confirmed (or left queued after DELIVERY_WAIT_MS, as
 * every publication). Returns 0 (commit), or -1 when the publication could
 * not even be queued (the event is retried, never skipped). */
static int dead_letter(consumer_t *c, const event_t *e, const char *why) {
  const rd_kafka_message_t *m = e->msg;
  char reason[512];
  size_t j = 0;
  for (const char *p = why; *p && j + 1 < sizeof reason; p++)
    reason[j++] = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
  reason[j] = '\0';
  rd_kafka_headers_t *h = rd_kafka_headers_new(1);
  rd_kafka_header_add(h, "error", -1, reason, -1);
  rd_kafka_resp_err_t err = rd_kafka_producev(
      c->prod, RD_KAFKA_V_TOPIC(TOPIC_DLQ), RD_KAFKA_V_KEY(m->key, m->key_len),
      RD_KAFKA_V_VALUE(m->payload, m->len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
      RD_KAFKA_V_END);
  if (err) { /* the headers stay ours when producev fails */
    rd_kafka_headers_destroy(h);
    sut_log("%s: malformed (%s); cannot queue it to %s: %s; will retry",
            e->where, reason, TOPIC_DLQ, rd_kafka_err2str(err));
    return -1;
  }
  await_delivery(c, e);
  atomic_fetch_add(&c->m->malformed, 1);
  sut_log("%s: malformed event sent to %s: %s", e->where, TOPIC_DLQ, reason);
  return 0;
}

/* One event, steps 1-7. Returns 0 when the offset may be committed, -1
 * when the event must be retried (infrastructure failure). */
static int handle(consumer_t *c, const rd_kafka_message_t *m) {
  event_t e;
  outcome_t o;
  char why[512];
  int rc = 0;
  memset(&e, 0, sizeof e);
  memset(&o, 0, sizeof o);
  int parsed = parse_event(c, m, &e, why, sizeof why);
  if (parsed == -2) {
    sut_log("%s: cannot read the event: %s; will retry", e.where, why);
    rc = -1;
    goto out;
  }
  if (parsed < 0) {
    if (c->cfg->bug == BUG_POISON_STALL) {
      /* the mutant: a malformed event is retried like a failure, forever,
       * and everything behind it on its partition waits */
      sut_log("%s: malformed event (%s): will retry", e.where, why);
      rc = -1;
      goto out;
    }
    rc = dead_letter(c, &e, why);
    goto out;
  }
  /* step 1: the idempotency guard, on its own Redis */
  bool own_key = false, bypassed = false;
  /* connections idle since the last event may have died meanwhile */
  rconn_refresh(c->guard);
  rconn_refresh(c->redis);
  pgconn_refresh(c->pg);
  if (c->cfg->bug != BUG_NO_IDEMPOTENCY) {
    flush_pending_deletes(c);
    redisReply *r = c->cfg->bug == BUG_NO_TTL
                        ? rconn_cmd(c->guard, "SET %s 1 NX", e.key)
                        : rconn_cmd(c->guard, "SET %s 1 NX EX %d", e.key,
                                    IDEMPOTENCY_TTL_S);
    const char *err = rconn_reply_error(c->guard, r);
    bool dup = err == NULL && r->type == REDIS_REPLY_NIL;
    if (r)
      freeReplyObject(r);
    if (err) {
      if (c->cfg->bug == BUG_FAIL_CLOSED) {
        sut_log("%s: idempotency guard unavailable (%s): event dropped",
                e.where, err);
        goto out;
      }
      /* fail open: availability over duplicates */
      bypassed = true;
      sut_log("%s: idempotency guard unavailable (%s): processing without "
              "it (fail-open)",
              e.where, err);
    } else if (dup) {
      atomic_fetch_add(&c->m->duplicates_skipped, 1);
      sut_log("%s: duplicate (batch %s, text %s): skipped", e.where, e.batch_id,
              e.tsid);
      goto out;
    } else {
      own_key = true;
    }
  }
  /* steps 2-6 */
  if (process(c, &e, &o, why, sizeof why) < 0) {
    sut_log("%s: batch %s, text %s: infrastructure failure: %s; not "
            "committed, will retry",
            e.where, e.batch_id, e.tsid, why);
    if (own_key && c->cfg->bug != BUG_KEEP_KEY_ON_ERROR)
      release_key(c, &e);
    rc = -1;
    goto out;
  }
  await_delivery(c, &e);
  if (o.dropped) { /* the pg-fail-drop mutant: committed, never done */
    sut_log("%s: batch %s, text %s: %s", e.where, e.batch_id, e.tsid, o.text);
    goto out;
  }
  atomic_fetch_add(&c->m->events_processed, 1);
  if (bypassed)
    atomic_fetch_add(&c->m->redis_failopen, 1);
  sut_log("%s: batch %s, text %s: %s%s", e.where, e.batch_id, e.tsid, o.text,
          bypassed ? " [guard bypassed]" : "");
out:
  free(e.key);
  json_decref(e.envelope);
  return rc;
}

/* Step 7: commits the event's offset (synchronously). */
static void commit(consumer_t *c, const rd_kafka_message_t *m) {
  rd_kafka_resp_err_t cerr = rd_kafka_commit_message(c->rk, m, 0);
  if (cerr)
    sut_log("kafka: commit of %s[%d]@%lld failed: %s",
            rd_kafka_topic_name(m->rkt), (int)m->partition,
            (long long)m->offset, rd_kafka_err2str(cerr));
}

/* Sets the partition's position back to the failed event, so that the
 * next poll delivers it again. */
static void seek_back(consumer_t *c, const rd_kafka_message_t *m) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt),
                                    m->partition)
      ->offset = m->offset;
  rd_kafka_error_t *err = rd_kafka_seek_partitions(c->rk, l, 2000);
  if (err) {
    sut_log("kafka: seek back failed: %s", rd_kafka_error_string(err));
    rd_kafka_error_destroy(err);
  } else if (l->elems[0].err) {
    sut_log("kafka: seek back failed: %s", rd_kafka_err2str(l->elems[0].err));
  }
  rd_kafka_topic_partition_list_destroy(l);
}

/* ---------------------------------------------------------- lifecycle */

consumer_t *consumer_new(const sut_config_t *cfg, sut_metrics_t *m, char *err,
                         size_t errlen) {
  consumer_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  c->cfg = cfg;
  c->m = m;
  c->redis = rconn_new("redis", cfg->redis_url);
  c->guard = rconn_new("guard-redis", cfg->guard_redis_url);
  c->pg = pgconn_new("postgres", cfg->pg_dsn);
  if (c->redis == NULL || c->guard == NULL || c->pg == NULL) {
    snprintf(err, errlen, "cannot set up connections");
    goto fail;
  }
  if ((c->rk = make_client(cfg, RD_KAFKA_CONSUMER, err, errlen)) == NULL ||
      (c->prod = make_client(cfg, RD_KAFKA_PRODUCER, err, errlen)) == NULL)
    goto fail;
  rd_kafka_poll_set_consumer(c->rk); /* callbacks served by consumer_poll */
  static const char *const out[N_OUT_TOPICS] = {TOPIC_ASSIGNED, TOPIC_READY,
                                                TOPIC_EXCESS, TOPIC_DLQ};
  for (size_t i = 0; i < N_OUT_TOPICS; i++) {
    c->out_topics[i] = rd_kafka_topic_new(c->prod, out[i], NULL);
    if (c->out_topics[i] == NULL) {
      snprintf(err, errlen, "kafka: topic %s: %s", out[i],
               rd_kafka_err2str(rd_kafka_last_error()));
      goto fail;
    }
  }
  return c;
fail:
  consumer_close(c);
  return NULL;
}

int consumer_wait_schema(consumer_t *c) {
  while (!sut_stop) {
    if (pgconn_ensure(c->pg) == 0)
      return 0;
    sut_sleep_ms(200);
  }
  return -1;
}

void consumer_run(consumer_t *c) {
  rd_kafka_topic_partition_list_t *topics =
      rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, TOPIC_IN, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err) {
    /* only a local, permanent problem can fail here; keep polling anyway so
     * that the process stays up and says so */
    sut_log("kafka: subscribe failed: %s", rd_kafka_err2str(err));
  } else {
    sut_log("kafka: subscribed to %s as group %s", TOPIC_IN, c->cfg->group_id);
  }
  int64_t backoff = 0;
  while (!sut_stop) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
    if (m == NULL)
      continue;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        sut_log("kafka: %s", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    /* the commit-before-process mutant commits step 7 first: killed now,
     * the event is lost */
    if (c->cfg->bug == BUG_COMMIT_BEFORE_PROCESS)
      commit(c, m);
    if (handle(c, m) == 0) {
      /* step 7 (never, for the no-commit mutant) */
      if (c->cfg->bug != BUG_COMMIT_BEFORE_PROCESS &&
          c->cfg->bug != BUG_NO_COMMIT)
        commit(c, m);
      backoff = 0;
    } else {
      seek_back(c, m);
      backoff = backoff ? backoff * 2 : RETRY_BACKOFF_MIN_MS;
      if (backoff > RETRY_BACKOFF_MAX_MS)
        backoff = RETRY_BACKOFF_MAX_MS;
      sut_sleep_ms(backoff);
    }
    rd_kafka_message_destroy(m);
  }
}

/* Leaves the group with a deadline: serves the close queue until closed. */
static void close_consumer(rd_kafka_t *rk) {
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_error_t *err = rd_kafka_consumer_close_queue(rk, q);
  if (err) {
    sut_log("kafka: close: %s", rd_kafka_error_string(err));
    rd_kafka_error_destroy(err);
  } else {
    int64_t deadline = sut_now_ms() + CLOSE_DEADLINE_MS;
    while (!rd_kafka_consumer_closed(rk) && sut_now_ms() < deadline) {
      rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
      if (ev == NULL)
        continue;
      if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
        on_rebalance(rk, rd_kafka_event_error(ev),
                     rd_kafka_event_topic_partition_list(ev), NULL);
      rd_kafka_event_destroy(ev);
    }
    if (!rd_kafka_consumer_closed(rk))
      sut_log("kafka: consumer not closed within %d ms", CLOSE_DEADLINE_MS);
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

void consumer_close(consumer_t *c) {
  if (c == NULL)
    return;
  if (c->rk)
    close_consumer(c->rk);
  for (size_t i = 0; i < N_OUT_TOPICS; i++)
    if (c->out_topics[i])
      rd_kafka_topic_destroy(c->out_topics[i]);
  if (c->prod) {
    rd_kafka_flush(c->prod, CLOSE_DEADLINE_MS);
    if (rd_kafka_outq_len(c->prod) > 0)
      sut_log("kafka: %d publication(s) not delivered at shutdown",
              rd_kafka_outq_len(c->prod));
    rd_kafka_destroy(c->prod);
  }
  for (size_t i = 0; i < c->npending; i++)
    free(c->pending_del[i]);
  rconn_free(c->redis);
  rconn_free(c->guard);
  pgconn_free(c->pg);
  free(c);
}
