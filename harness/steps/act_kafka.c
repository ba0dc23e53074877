/* act_kafka.c: the "kafka" module and the kafka.* steps.
 *
 * Environment (env["kafka"]):
 *   absent                      embedded broker, 1 broker, no topics
 *   {"embedded": {"brokers": 1, "topics": [{"name": "t", "partitions": 3}]}}
 *   {"bootstrap": "host:9092", "config": {"security.protocol": "SASL_SSL",
 *    "sasl.password": "${env.KAFKA_PASSWORD}", ...},
 *    "topics": [{"name": "t", "partitions": 3, "replication": 3} | "t"],
 *    "create_topics": false}
 *   plus "timeout": "15s" (either form): how long pre-flight and the
 *   recording of offsets at a scenario's start may wait for the broker.
 *   ${kafka.embedded} is true with the embedded broker, false with a real
 *   cluster (a scenario's {"skip": {"if": "${kafka.embedded}"}}).
 *   The embedded broker starts in run_begin and ${kafka.bootstrap} names
 *   it; a real cluster is reached in preflight (its settings may use
 *   templates). Declared topics must exist before the first scenario:
 *   created when embedded or when create_topics is true, else the run
 *   stops (exit 3) naming them.
 *
 * Start offsets: at the start of every scenario the end offsets of every
 *   declared topic are recorded; a kafka.expect only sees messages after
 *   them. A topic that is not declared is recorded at the first kafka step
 *   of the scenario that names it (a message published to it before that
 *   step is not seen: declare the topics you expect on). A topic that does
 *   not exist when recorded is read from its beginning once it appears.
 *
 * {"kafka.produce": {"topic": "t", "key": "k", "headers": {"h": "v"},
 *    "value": <JSON> | "text": "raw" | "file": "payload.bin" |
 *    "value_file": "events/x.jsonl" |
 *    "envelope": "fresh" | "fixed", "data": {...} | "data_file": "x.jsonl",
 *    "event_type": "...", "source_service": "eventrig",
 *    "correlation_id": "...", "partition": 2 | "key" | "spread",
 *    "count": 1, "concurrency": N, "rate": 1000}}
 *   Waits for every delivery report; any failed delivery fails the step.
 *   value_file / data_file: a data file (lang/doc.h) templated in the
 *   step's scope: a JSON Lines file is one message a line (in order, the
 *   whole file count times), a JSON or YAML file one message; data_file
 *   gives each message's envelope data. file is sent as it is.
 *
 * {"kafka.expect": {"topic": "t" | "topics": ["a", "b"], "key": <matcher>,
 *    "headers": {"h": <matcher>}, "where": {"/data/id" | "$..id": <matcher>},
 *    "count": 1 | {"$gte": 1}, "within": "10s", "then_quiet_for": "2s",
 *    "capture": {"name": "/pointer" | "$.path" | {"key": true} |
 *                {"header": "h"} | {"text": true} | {"regex": ...} |
 *                {"all": <capture>}}}}
 *   Counts messages after the start offsets that pass every filter (on
 *   every topic of "topics": read in turn, each message listed with its
 *   topic in a failure).
 *   where keys are JSON pointers or JSONPaths into the value (parsed as
 *   JSON, integers beyond 64 bits kept exactly); captures: lang/capture.h,
 *   the first matching message's value (its text when it is not JSON),
 *   or with "all" an array over every matching message.
 *   count N (exact): passes once N matched and nothing more is there yet
 *   (fails at once past N); {"$gte"/"$gt": n} (default {"$gte": 1}): passes
 *   as soon as it holds; any other matcher is judged when `within` ends.
 *   then_quiet_for: after passing, keeps reading that long and fails on
 *   any further match. Not a check (it has its own `within`).
 *
 * {"kafka.drained": {"group": "g", "topics": ["t"], "within": "30s"}}
 *   the group's committed offsets reach the end offsets measured when the
 *   step starts ("consumed everything produced so far"); topics default to
 *   the declared ones.
 *
 * {"kafka.reset": {"group": "g", "topics": ["t"], "to": "end" | "earliest"}}
 *   see er_kafka_reset_group: refused while the group has members (real
 *   cluster), or once it has had any (embedded broker).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/kafka.h"
#include "base/jsonbig.h"
#include "lang/capture.h"
#include "lang/doc.h"
#include "lang/jsonpath.h"
#include "lang/jsonx.h"
#include "lang/template.h"
#include "run/diag.h"
#include "run/exec.h"
#include "run/safety.h"
#include "run/targets.h"

#define DEFAULT_TIMEOUT_MS 15000 /* kafka.timeout: pre-flight, recording */
#define SHOWN 10                 /* messages listed in a kafka.expect failure */
#define VALUE_SHOWN 200

/* ---- module state ---------------------------------------------------------
 */

typedef struct ktopic {
  char *name;
  int partitions;
  int replication;
} ktopic_t;

/* shared "kafka" */
typedef struct kmod {
  er_kafka_t *k; /* NULL until preflight for a real cluster */
  ktopic_t *topics;
  size_t ntopics;
  bool create;
  int64_t timeout_ms; /* for run-wide calls (preflight, scenario start) */
} kmod_t;

/* one recorded topic of a scenario */
typedef struct koff {
  char *topic;
  int n; /* 0: the topic did not exist: read from the beginning */
  int64_t *start;
} koff_t;

/* scenario "kafka.offsets" */
typedef struct koffs {
  pthread_mutex_t mu;
  koff_t **v;
  size_t n, alloc;
} koffs_t;

static void kmod_free(void *p) {
  kmod_t *m = p;
  if (!m)
    return;
  er_kafka_free(m->k);
  for (size_t i = 0; i < m->ntopics; i++)
    free(m->topics[i].name);
  free(m->topics);
  free(m);
}

static void koffs_free(void *p) {
  koffs_t *o = p;
  if (!o)
    return;
  for (size_t i = 0; i < o->n; i++) {
    free(o->v[i]->topic);
    free(o->v[i]->start);
    free(o->v[i]);
  }
  free(o->v);
  pthread_mutex_destroy(&o->mu);
  free(o);
}

static void producer_free(void *p) { er_kafka_producer_free(p); }

/* ---- environment -------------------------------------------------------- */

static const char *const kafka_keys[] = {
    "embedded",      "bootstrap", "config",     "topics",
    "create_topics", "timeout",   "test_target" /* safety.h */};
static const char *const embedded_keys[] = {"brokers", "topics"};
static const char *const topic_keys[] = {"name", "partitions", "replication"};

static int check_keys(const json_t *o, const char *const *keys, size_t n,
                      const char *where, er_err_t *err) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    bool ok = false;
    for (size_t i = 0; i < n; i++)
      if (strcmp(keys[i], k) == 0)
        ok = true;
    if (!ok) {
      const char *dym = er_did_you_mean(k, keys, n);
      return er_errf(err, ER_E_INPUT,
                     "environment: unknown key '%s' in %s%s%s%s", k, where,
                     dym ? " (did you mean '" : "", dym ? dym : "",
                     dym ? "'?)" : "");
    }
  }
  return 0;
}

static int parse_topics(const json_t *arr, kmod_t *m, const char *where,
                        er_err_t *err) {
  size_t i;
  json_t *t;
  if (!arr)
    return 0;
  if (!json_is_array(arr))
    return er_errf(err, ER_E_INPUT, "environment: %s must be an array", where);
  m->topics = calloc(json_array_size(arr) + 1, sizeof *m->topics);
  if (!m->topics)
    return er_errf(err, ER_E_ENV, "out of memory");
  json_array_foreach(arr, i, t) {
    ktopic_t *kt = &m->topics[m->ntopics];
    const char *name = NULL;
    kt->partitions = 1;
    kt->replication = -1;
    if (json_is_string(t)) {
      name = json_string_value(t);
    } else if (json_is_object(t)) {
      json_t *p = json_object_get(t, "partitions");
      json_t *r = json_object_get(t, "replication");
      if (check_keys(t, topic_keys, 3, where, err) != 0)
        return -1;
      name = json_string_value(json_object_get(t, "name"));
      if (p && (!json_is_integer(p) || json_integer_value(p) < 1 ||
                json_integer_value(p) > 10000))
        return er_errf(err, ER_E_INPUT,
                       "environment: %s/%zu/partitions must be 1..10000", where,
                       i);
      if (r && (!json_is_integer(r) || json_integer_value(r) < 1 ||
                json_integer_value(r) > 100))
        return er_errf(err, ER_E_INPUT,
                       "environment: %s/%zu/replication must be 1..100", where,
                       i);
      if (p)
        kt->partitions = (int)json_integer_value(p);
      if (r)
        kt->replication = (int)json_integer_value(r);
    }
    if (!name || !*name)
      return er_errf(err, ER_E_INPUT, "environment: %s/%zu needs a topic name",
                     where, i);
    kt->name = er_strdup(name);
    if (!kt->name)
      return er_errf(err, ER_E_ENV, "out of memory");
    m->ntopics++;
  }
  return 0;
}

/* The embedded broker (kc absent or with "embedded"): starts it, creates
 * the declared topics and sets ${kafka.bootstrap}. m->k on success. */
static int begin_embedded(const json_t *kc, const json_t *emb, kmod_t *m,
                          er_tmpl_t *t, er_err_t *err) {
  int brokers = 1;
  json_t *b;
  if (emb && !json_is_object(emb))
    return er_errf(err, ER_E_INPUT,
                   "environment: kafka.embedded must be an object");
  if (emb && check_keys(emb, embedded_keys, 2, "kafka.embedded", err) != 0)
    return -1;
  if (kc && (json_object_get(kc, "topics") || json_object_get(kc, "config") ||
             json_object_get(kc, "create_topics")))
    return er_errf(err, ER_E_INPUT,
                   "environment: with kafka.embedded, declare topics in "
                   "kafka.embedded.topics (config and create_topics are for a "
                   "real cluster)");
  b = emb ? json_object_get(emb, "brokers") : NULL;
  if (b && (!json_is_integer(b) || json_integer_value(b) < 1 ||
            json_integer_value(b) > 16))
    return er_errf(err, ER_E_INPUT,
                   "environment: kafka.embedded.brokers must be 1..16");
  if (b)
    brokers = (int)json_integer_value(b);
  if (parse_topics(emb ? json_object_get(emb, "topics") : NULL, m,
                   "kafka.embedded.topics", err) != 0)
    return -1;
  m->k = er_kafka_embedded(brokers, err);
  if (!m->k)
    return -1;
  for (size_t i = 0; i < m->ntopics; i++)
    if (er_kafka_create_topic(m->k, m->topics[i].name, m->topics[i].partitions,
                              m->topics[i].replication,
                              er_now_ms() + m->timeout_ms, err) != 0)
      return -1;
  if (t && (er_tmpl_set(t, "kafka.bootstrap",
                        json_string(er_kafka_bootstrap(m->k))) != 0 ||
            er_tmpl_set(t, "kafka.embedded", json_true()) != 0))
    return er_errf(err, ER_E_ENV, "kafka: could not set kafka.bootstrap");
  return 0;
}

/* A real cluster: checks its settings (they may hold templates; preflight
 * connects) and sets ${kafka.bootstrap} when it can be expanded yet. */
static int begin_real(const json_t *kc, kmod_t *m, er_tmpl_t *t,
                      er_err_t *err) {
  const json_t *bs = json_object_get(kc, "bootstrap");
  const json_t *ct = json_object_get(kc, "create_topics");
  const json_t *cf = json_object_get(kc, "config");
  if (!json_is_string(bs) || !*json_string_value(bs))
    return er_errf(err, ER_E_INPUT,
                   "environment: kafka needs \"embedded\" or a \"bootstrap\" "
                   "address");
  if (ct && !json_is_boolean(ct))
    return er_errf(err, ER_E_INPUT,
                   "environment: kafka.create_topics must be true or false");
  if (cf && !json_is_object(cf))
    return er_errf(err, ER_E_INPUT,
                   "environment: kafka.config must be an object");
  m->create = json_is_true(ct);
  if (parse_topics(json_object_get(kc, "topics"), m, "kafka.topics", err) != 0)
    return -1;
  if (t) {
    er_err_t e2 = {0};
    json_t *v = er_tmpl_expand_str(t, json_string_value(bs), &e2);
    if (er_tmpl_set(t, "kafka.embedded", json_false()) != 0)
      return er_errf(err, ER_E_ENV, "kafka: could not set kafka.embedded");
    /* when it cannot be expanded yet, ${kafka.bootstrap} stays unset */
    if (v && er_tmpl_set(t, "kafka.bootstrap", v) != 0)
      return er_errf(err, ER_E_ENV, "kafka: could not set kafka.bootstrap");
  }
  return 0;
}

static int run_begin(const json_t *env, er_tmpl_t *t, er_session_t *shared,
                     er_err_t *err) {
  const json_t *kc = env ? json_object_get(env, "kafka") : NULL;
  const json_t *emb = NULL;
  kmod_t *m = calloc(1, sizeof *m);

  if (!m)
    return er_errf(err, ER_E_ENV, "out of memory");
  if (kc && !json_is_object(kc)) {
    er_errf(err, ER_E_INPUT, "environment: kafka must be an object");
    goto fail;
  }
  if (kc && check_keys(kc, kafka_keys, 7, "kafka", err) != 0)
    goto fail;
  m->timeout_ms = DEFAULT_TIMEOUT_MS;
  if (kc && json_object_get(kc, "timeout")) {
    const json_t *tv = json_object_get(kc, "timeout");
    if (!json_is_string(tv) ||
        er_parse_duration(json_string_value(tv), &m->timeout_ms) != 0 ||
        m->timeout_ms <= 0) {
      er_errf(err, ER_E_INPUT,
              "environment: kafka.timeout must be a duration such as \"15s\"");
      goto fail;
    }
  }
  emb = kc ? json_object_get(kc, "embedded") : NULL;
  if (kc && emb && json_object_get(kc, "bootstrap")) {
    er_errf(err, ER_E_INPUT,
            "environment: kafka has both embedded and bootstrap; choose one");
    goto fail;
  }
  if (!kc || emb) { /* embedded */
    if (begin_embedded(kc, emb, m, t, err) != 0)
      goto fail;
  } else { /* a real cluster: settings may hold templates; connect later */
    if (begin_real(kc, m, t, err) != 0)
      goto fail;
  }
  if (er_session_put(shared, "kafka", m, kmod_free) != 0) {
    er_errf(err, ER_E_ENV, "out of memory");
    goto fail;
  }
  /* m belongs to shared now */
  return m->k ? er_target_kafka_set(shared, m->k, err) : 0;
fail:
  kmod_free(m);
  return -1;
}

/* Connects to a real cluster with the resolved settings. */
static int connect_real(kmod_t *m, er_session_t *shared, const json_t *kc,
                        er_err_t *err) {
  m->k = er_target_kafka_from_env(kc, err);
  if (!m->k)
    return -1;
  return er_target_kafka_set(shared, m->k, err);
}

static int preflight(const json_t *env, er_session_t *shared, er_err_t *err) {
  kmod_t *m = er_session_get(shared, "kafka");
  const char **names = NULL;
  er_buf_t missing = ER_BUF_INIT(4096);
  int64_t deadline;
  int rc = -1, nmiss;

  if (!m)
    return 0;
  deadline = er_now_ms() + m->timeout_ms;
  if (!m->k) {
    const json_t *kc = env ? json_object_get(env, "kafka") : NULL;
    if (!kc || connect_real(m, shared, kc, err) != 0)
      goto out;
  }
  names = calloc(m->ntopics + 1, sizeof *names);
  if (!names) {
    er_errf(err, ER_E_ENV, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < m->ntopics; i++)
    names[i] = m->topics[i].name;
  /* also the reachability check: one metadata request */
  nmiss =
      er_kafka_topics_missing(m->k, names, m->ntopics, &missing, deadline, err);
  if (nmiss < 0) {
    err->code = ER_E_ENV;
    goto out;
  }
  if (nmiss > 0 && (m->create || er_kafka_is_embedded(m->k))) {
    for (size_t i = 0; i < m->ntopics; i++)
      if (er_kafka_create_topic(m->k, m->topics[i].name,
                                m->topics[i].partitions,
                                m->topics[i].replication, deadline, err) != 0) {
        err->code = ER_E_ENV;
        goto out;
      }
    /* a real broker answers CreateTopics before its metadata shows every
     * new topic (KRaft propagates it asynchronously): look again until
     * they are all there or the deadline passes */
    for (;;) {
      er_buf_reset(&missing);
      nmiss = er_kafka_topics_missing(m->k, names, m->ntopics, &missing,
                                      deadline, err);
      if (nmiss < 0) {
        err->code = ER_E_ENV;
        goto out;
      }
      if (nmiss == 0 || er_now_ms() + 100 >= deadline)
        break;
      er_sleep_ms(100);
    }
  }
  if (nmiss > 0) {
    er_errf(err, ER_E_ENV, "kafka: topic(s) missing: %s (on %s)",
            er_buf_cstr(&missing), er_kafka_bootstrap(m->k));
    goto out;
  }
  rc = 0;
out:
  free(names);
  er_buf_free(&missing);
  return rc;
}

static koff_t *koff_new(const char *topic, const int64_t *hi, int n) {
  koff_t *o = calloc(1, sizeof *o);
  if (!o)
    return NULL;
  o->topic = er_strdup(topic);
  o->n = n;
  if (n > 0)
    o->start = calloc((size_t)n, sizeof *o->start);
  if (!o->topic || (n > 0 && !o->start)) {
    free(o->topic);
    free(o->start);
    free(o);
    return NULL;
  }
  if (n > 0)
    memcpy(o->start, hi, (size_t)n * sizeof *hi);
  return o;
}

static int koffs_add(koffs_t *os, koff_t *o) {
  if (os->n == os->alloc) {
    size_t na = os->alloc ? os->alloc * 2 : 8;
    koff_t **nv = realloc(os->v, na * sizeof(koff_t *));
    if (!nv)
      return -1;
    os->v = nv;
    os->alloc = na;
  }
  os->v[os->n++] = o;
  return 0;
}

static koff_t *koffs_find(koffs_t *os, const char *topic) {
  for (size_t i = 0; i < os->n; i++)
    if (strcmp(os->v[i]->topic, topic) == 0)
      return os->v[i];
  return NULL;
}

/* Records the end offsets of topic now (k's clock deadline). */
static koff_t *record_topic(er_kafka_t *k, const char *topic, int64_t deadline,
                            er_err_t *err) {
  int64_t *hi = NULL;
  int n = 0;
  koff_t *o;
  if (er_kafka_watermarks(k, topic, NULL, &hi, &n, deadline, err) != 0)
    return NULL;
  o = koff_new(topic, hi, n);
  free(hi);
  if (!o)
    er_errf(err, ER_E_ENV, "out of memory");
  return o;
}

static int scenario_begin(const json_t *env, er_session_t *shared,
                          er_session_t *scenario, er_err_t *err) {
  kmod_t *m = er_session_get(shared, "kafka");
  koffs_t *os;
  int64_t deadline;
  (void)env;
  if (!m || !m->k)
    return 0;
  deadline = er_now_ms() + m->timeout_ms;
  os = calloc(1, sizeof *os);
  if (!os)
    return er_errf(err, ER_E_ENV, "out of memory");
  pthread_mutex_init(&os->mu, NULL);
  for (size_t i = 0; i < m->ntopics; i++) {
    koff_t *o = record_topic(m->k, m->topics[i].name, deadline, err);
    if (!o || koffs_add(os, o) != 0) {
      if (o) {
        free(o->topic);
        free(o->start);
        free(o);
      }
      koffs_free(os);
      if (err->code)
        err->code = ER_E_ENV; /* keep the message, stop the run */
      return er_errf(err, ER_E_ENV, "out of memory");
    }
  }
  if (er_session_put(scenario, "kafka.offsets", os, koffs_free) != 0) {
    koffs_free(os);
    return er_errf(err, ER_E_ENV, "out of memory");
  }
  return 0;
}

static void run_end(er_session_t *shared) {
  er_err_t e = {0};
  /* stops the embedded broker now: replacing the object frees it */
  if (er_session_get(shared, "kafka")) {
    er_target_kafka_set(shared, NULL, &e);
    er_session_put(shared, "kafka", NULL, NULL);
  }
}

const er_module_t er_mod_kafka = {
    .name = "kafka",
    .run_begin = run_begin,
    .preflight = preflight,
    .scenario_begin = scenario_begin,
    .run_end = run_end,
};

/* ---- helpers for the steps -------------------------------------------- */

static int step_rc(const er_err_t *e) {
  switch (e->code) {
  case ER_E_FAIL:
    return ER_STEP_FAIL;
  case ER_E_INPUT:
    return ER_STEP_FATAL;
  default:
    return ER_STEP_ERROR;
  }
}

static kmod_t *the_kafka(er_exec_t *x) {
  kmod_t *m = x->shared ? er_session_get(x->shared, "kafka") : NULL;
  if (!m || !m->k) {
    er_buf_puts(x->detail, "kafka: no broker (the kafka module has not "
                           "started one for this run)");
    return NULL;
  }
  return m;
}

/* Start offsets of topic for this scenario (recorded now if this is the
 * first kafka step naming it). Copies into *start (caller frees). */
static int start_offsets(er_exec_t *x, er_kafka_t *k, const char *topic,
                         int64_t **start, int *n, er_err_t *err) {
  koffs_t *os =
      x->scenario ? er_session_get(x->scenario, "kafka.offsets") : NULL;
  koff_t *o;
  *start = NULL;
  *n = 0;
  if (!os) { /* no scenario state (scenario_begin did not run): record */
    os = calloc(1, sizeof *os);
    if (!os)
      return er_errf(err, ER_E_ENV, "out of memory");
    pthread_mutex_init(&os->mu, NULL);
    if (!x->scenario ||
        er_session_put(x->scenario, "kafka.offsets", os, koffs_free) != 0) {
      koffs_free(os);
      return er_errf(err, ER_E_ENV, "kafka: no scenario state");
    }
  }
  pthread_mutex_lock(&os->mu);
  o = koffs_find(os, topic);
  pthread_mutex_unlock(&os->mu);
  if (!o) {
    koff_t *fresh = record_topic(k, topic, x->deadline_ms, err);
    if (!fresh)
      return -1;
    pthread_mutex_lock(&os->mu);
    o = koffs_find(os, topic);
    if (!o) {
      if (koffs_add(os, fresh) != 0) {
        pthread_mutex_unlock(&os->mu);
        free(fresh->topic);
        free(fresh->start);
        free(fresh);
        return er_errf(err, ER_E_ENV, "out of memory");
      }
      o = fresh;
      fresh = NULL;
      er_exec_log(x,
                  "kafka: start offsets of '%s' recorded at this step "
                  "(not declared in the environment)",
                  topic);
    }
    pthread_mutex_unlock(&os->mu);
    if (fresh) {
      free(fresh->topic);
      free(fresh->start);
      free(fresh);
    }
  }
  if (o->n > 0) {
    *start = calloc((size_t)o->n, sizeof **start);
    if (!*start)
      return er_errf(err, ER_E_ENV, "out of memory");
    memcpy(*start, o->start, (size_t)o->n * sizeof **start);
  }
  *n = o->n;
  return 0;
}

/* Text of a header value or key given as JSON: strings raw, others
 * compact JSON. Caller frees. */
static char *as_text(const json_t *v) {
  if (er_big_digits(v))
    return er_strdup(er_big_digits(v));
  if (json_is_string(v))
    return er_strdup(json_string_value(v));
  return er_json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* Bytes as a JSON string (bytes that are not UTF-8 shown as '?'). */
static json_t *jtext(const char *p, size_t n) {
  json_t *v = json_stringn(p, n);
  return v ? v : er_json_from_text(p, n);
}

/* ---- kafka.produce --------------------------------------------------------
 */

static const er_keyspec_t produce_keys[] = {
    {"topic", ER_T_STRING, true, NULL, NULL},
    {"key", ER_T_STRING | ER_T_INT | ER_T_NULL, false, NULL, NULL},
    {"headers", ER_T_OBJECT, false, NULL, NULL},
    {"value", ER_T_ANY, false, NULL, NULL},
    {"text", ER_T_STRING, false, NULL, NULL},
    {"file", ER_T_STRING | ER_T_FILE, false, NULL, NULL},
    {"value_file", ER_T_STRING | ER_T_DATA, false, NULL, NULL},
    {"envelope", ER_T_STRING, false, NULL, NULL},
    {"data", ER_T_ANY, false, NULL, NULL},
    {"data_file", ER_T_STRING | ER_T_DATA, false, NULL, NULL},
    {"event_type", ER_T_STRING, false, NULL, NULL},
    {"source_service", ER_T_STRING, false, NULL, NULL},
    {"correlation_id", ER_T_STRING, false, NULL, NULL},
    {"partition", ER_T_INT | ER_T_STRING, false, NULL, NULL},
    {"count", ER_T_INT, false, NULL, NULL},
    {"concurrency", ER_T_INT, false, NULL, NULL},
    {"rate", ER_T_NUMBER, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

enum { ENV_NONE, ENV_FRESH, ENV_FIXED };

typedef struct pgen {
  char *key;
  size_t key_len;
  er_kafka_header_t *hdrs;
  char **hdr_text;
  size_t nhdrs;
  int32_t partition;
  /* payload */
  char *fixed; /* value/text/file/fixed envelope: the same bytes each time */
  size_t fixed_len;
  bool null_value;
  int envelope;
  const json_t *data;
  const char *event_type, *source_service, *correlation_id;
  char *cur; /* fresh envelope of the current message */
  /* from value_file / data_file: the messages (a JSON Lines file has
   * one a line), sent in order, count times over */
  json_t *many; /* values or envelopes' data, templated */
  char **texts; /* value_file, fixed envelope: each message's bytes */
  size_t nmany;
} pgen_t;

static char *envelope(const pgen_t *g) {
  char id[37], corr[37], ts[40];
  json_t *e;
  char *s;
  er_uuid4(id);
  er_uuid4(corr);
  er_rfc3339_now(ts);
  e = json_object();
  if (!e)
    return NULL;
  json_object_set_new(e, "event_id", json_string(id));
  json_object_set_new(e, "event_type", json_string(g->event_type));
  json_object_set_new(e, "event_timestamp", json_string(ts));
  json_object_set_new(e, "source_service", json_string(g->source_service));
  json_object_set_new(
      e, "correlation_id",
      json_string(g->correlation_id ? g->correlation_id : corr));
  json_object_set(e, "data", (json_t *)(g->data ? g->data : json_null()));
  s = er_json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(e);
  return s;
}

static int pgen_next(void *ud, size_t i, er_kafka_msg_t *m, er_err_t *err) {
  pgen_t *g = ud;
  m->key = g->key;
  m->key_len = g->key_len;
  m->headers = g->hdrs;
  m->nheaders = g->nhdrs;
  m->partition = g->partition;
  if (g->nmany && g->envelope != ENV_FRESH) {
    m->value = g->texts[i % g->nmany];
    m->value_len = strlen(m->value);
    return 0;
  }
  if (g->nmany)
    g->data = json_array_get(g->many, i % g->nmany);
  if (g->envelope == ENV_FRESH) {
    free(g->cur);
    g->cur = envelope(g);
    if (!g->cur)
      return er_errf(err, ER_E_ENV, "out of memory");
    m->value = g->cur;
    m->value_len = strlen(g->cur);
  } else if (!g->null_value) {
    m->value = g->fixed ? g->fixed : "";
    m->value_len = g->fixed_len;
  }
  return 0;
}

static void pgen_free(pgen_t *g) {
  for (size_t i = 0; g->texts && i < g->nmany; i++)
    free(g->texts[i]);
  free(g->texts);
  json_decref(g->many);
  free(g->key);
  for (size_t i = 0; i < g->nhdrs; i++)
    free(g->hdr_text[i]);
  free(g->hdr_text);
  free(g->hdrs);
  free(g->fixed);
  free(g->cur);
}

/* For the runner's progress line (exec.h): acknowledged of all. */
static void on_progress(void *ud, size_t reported, size_t total) {
  er_progress_count(ud, (long)total, (long)reported);
}

/* The key and headers of every message (g owns their text). */
static int pgen_key_headers(const json_t *key, const json_t *hdrs, pgen_t *g,
                            er_err_t *err) {
  const char *k;
  json_t *v;
  if (key && !json_is_null(key)) {
    g->key = as_text(key);
    if (!g->key)
      return er_errf(err, ER_E_ENV, "out of memory");
    g->key_len = strlen(g->key);
  }
  if (hdrs) {
    size_t n = json_object_size(hdrs);
    g->hdrs = calloc(n + 1, sizeof *g->hdrs);
    g->hdr_text = calloc(n + 1, sizeof *g->hdr_text);
    if (!g->hdrs || !g->hdr_text)
      return er_errf(err, ER_E_ENV, "out of memory");
    json_object_foreach((json_t *)hdrs, k, v) {
      er_kafka_header_t *h = &g->hdrs[g->nhdrs];
      h->name = k;
      if (!json_is_null(v)) {
        g->hdr_text[g->nhdrs] = as_text(v);
        if (!g->hdr_text[g->nhdrs])
          return er_errf(err, ER_E_ENV, "out of memory");
        h->value = g->hdr_text[g->nhdrs];
        h->len = strlen(g->hdr_text[g->nhdrs]);
      }
      g->nhdrs++;
    }
  }
  return 0;
}

static int pgen_partition(const json_t *part, pgen_t *g, er_err_t *err) {
  if (json_is_integer(part)) {
    if (json_integer_value(part) < 0 || json_integer_value(part) > INT32_MAX)
      return er_errf(err, ER_E_INPUT, "partition must be >= 0");
    g->partition = (int32_t)json_integer_value(part);
  } else if (json_is_string(part)) {
    if (strcmp(json_string_value(part), "spread") == 0)
      g->partition = ER_KAFKA_PARTITION_SPREAD;
    else if (strcmp(json_string_value(part), "key") != 0)
      return er_errf(err, ER_E_INPUT,
                     "partition must be a number, \"key\" or \"spread\", not "
                     "\"%s\"",
                     json_string_value(part));
  }
  return 0;
}

/* An envelope: its fields (borrowed from a), its bytes once when fixed. */
static int pgen_envelope(const json_t *a, const char *mode, pgen_t *g,
                         er_err_t *err) {
  if (strcmp(mode, "fresh") == 0 || strcmp(mode, "fresh-per-message") == 0)
    g->envelope = ENV_FRESH;
  else if (strcmp(mode, "fixed") == 0)
    g->envelope = ENV_FIXED;
  else
    return er_errf(err, ER_E_INPUT,
                   "envelope must be \"fresh\" or \"fixed\", not \"%s\"", mode);
  g->data = json_object_get(a, "data");
  g->event_type = json_string_value(json_object_get(a, "event_type"));
  if (!g->event_type)
    g->event_type = json_string_value(json_object_get(a, "topic"));
  g->source_service = json_string_value(json_object_get(a, "source_service"));
  if (!g->source_service)
    g->source_service = "eventrig";
  g->correlation_id = json_string_value(json_object_get(a, "correlation_id"));
  if (g->envelope == ENV_FIXED) {
    g->fixed = envelope(g);
    if (!g->fixed)
      return er_errf(err, ER_E_ENV, "out of memory");
    g->fixed_len = strlen(g->fixed);
  }
  return 0;
}

/* The messages of value_file / data_file: a JSON Lines file's lines, or
 * a JSON or YAML file's one value; with a fixed envelope or without one,
 * the bytes of each are made once. */
static int pgen_many(er_exec_t *x, const char *file, pgen_t *g, er_err_t *err) {
  json_t *v = er_exec_data(x, file, err);
  if (!v)
    return -1;
  if (er_doc_kind(file) == ER_DOC_JSONL) {
    g->many = v;
  } else {
    g->many = json_array();
    if (!g->many || json_array_append_new(g->many, v) != 0)
      return er_errf(err, ER_E_ENV, "out of memory");
  }
  g->nmany = json_array_size(g->many);
  if (g->nmany == 0)
    return er_errf(err, ER_E_INPUT, "%s holds no message", file);
  if (g->envelope == ENV_FRESH)
    return 0;
  g->texts = calloc(g->nmany, sizeof *g->texts);
  if (!g->texts)
    return er_errf(err, ER_E_ENV, "out of memory");
  for (size_t i = 0; i < g->nmany; i++) {
    g->data = json_array_get(g->many, i);
    g->texts[i] = g->envelope == ENV_FIXED
                      ? envelope(g)
                      : er_json_dumps(g->data, JSON_ENCODE_ANY | JSON_COMPACT |
                                                   JSON_PRESERVE_ORDER);
    if (!g->texts[i])
      return er_errf(err, ER_E_ENV, "out of memory");
  }
  return 0;
}

/* The payload: an envelope, value, text, file or null. */
static int pgen_payload(er_exec_t *x, const json_t *a, pgen_t *g,
                        er_err_t *err) {
  const json_t *env = json_object_get(a, "envelope");
  const json_t *value = json_object_get(a, "value");
  const json_t *text = json_object_get(a, "text");
  const json_t *file = json_object_get(a, "file");
  const char *vfile = json_string_value(json_object_get(a, "value_file"));
  const char *dfile = json_string_value(json_object_get(a, "data_file"));
  if (env && dfile) {
    if (pgen_envelope(a, json_string_value(env), g, err) != 0)
      return -1;
    free(g->fixed); /* one envelope per message of the file instead */
    g->fixed = NULL;
    return pgen_many(x, dfile, g, err);
  }
  if (env)
    return pgen_envelope(a, json_string_value(env), g, err);
  if (vfile)
    return pgen_many(x, vfile, g, err);
  if (value) {
    g->fixed = er_json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT |
                                        JSON_PRESERVE_ORDER);
    if (!g->fixed)
      return er_errf(err, ER_E_ENV, "out of memory");
    g->fixed_len = strlen(g->fixed);
  } else if (text) {
    g->fixed = er_strdup(json_string_value(text));
    if (!g->fixed)
      return er_errf(err, ER_E_ENV, "out of memory");
    g->fixed_len = strlen(g->fixed);
  } else if (file) {
    char *path = er_exec_file(x, json_string_value(file), err);
    if (!path)
      return -1;
    g->fixed = er_read_file(path, 16u * 1024u * 1024u, &g->fixed_len, err);
    free(path);
    if (!g->fixed) {
      err->code = ER_E_INPUT;
      return -1;
    }
  } else {
    g->null_value = true;
  }
  return 0;
}

static int pgen_init(er_exec_t *x, const json_t *a, pgen_t *g, er_err_t *err) {
  memset(g, 0, sizeof *g);
  g->partition = ER_KAFKA_PARTITION_KEY;
  if (pgen_key_headers(json_object_get(a, "key"), json_object_get(a, "headers"),
                       g, err) != 0 ||
      pgen_partition(json_object_get(a, "partition"), g, err) != 0)
    return -1;
  return pgen_payload(x, a, g, err);
}

/* Records the produce for failure diagnostics (diag.h): the first
 * message's value names the event. */
static int diag_begin(er_exec_t *x, const char *topic, pgen_t *g) {
  char *tmp;
  const char *v;
  size_t len;
  if (g->nmany)
    g->data = json_array_get(g->many, 0);
  tmp = g->envelope == ENV_FRESH ? envelope(g) : NULL;
  v = tmp                    ? tmp
      : g->nmany && g->texts ? g->texts[0]
      : g->null_value        ? NULL
                             : g->fixed;
  len = tmp ? strlen(tmp) : v && g->nmany ? strlen(v) : g->fixed_len;
  int h = er_diag_produce_begin(x, topic, g->key, v, len);
  free(tmp);
  return h;
}

static int run_produce(er_exec_t *x, const json_t *a) {
  kmod_t *km = the_kafka(x);
  const char *topic = json_string_value(json_object_get(a, "topic"));
  const json_t *cnt = json_object_get(a, "count");
  const json_t *conc = json_object_get(a, "concurrency");
  const json_t *rate = json_object_get(a, "rate");
  er_kafka_produce_opts_t o;
  er_kafka_produce_stats_t st;
  er_kafka_producer_t *p;
  pgen_t g;
  er_err_t err = {0};
  int64_t *start = NULL;
  int n = 0, rc = ER_STEP_OK, dh = -1;
  bool reached = false;
  char took[32];
  double secs;

  memset(&g, 0, sizeof g);
  memset(&st, 0, sizeof st);
  if (!km)
    return ER_STEP_ERROR;
  memset(&o, 0, sizeof o);
  o.count = json_is_integer(cnt) ? (size_t)json_integer_value(cnt) : 1;
  o.inflight = json_is_integer(conc) ? (size_t)json_integer_value(conc) : 0;
  o.rate = json_is_number(rate) ? json_number_value(rate) : 0;
  o.deadline_ms = x->deadline_ms;
  if ((cnt && (!json_is_integer(cnt) || json_integer_value(cnt) < 1)) ||
      (conc && (!json_is_integer(conc) || json_integer_value(conc) < 1)) ||
      (rate && o.rate <= 0)) {
    er_buf_puts(x->detail, "kafka.produce: count and concurrency must be "
                           "integers >= 1, rate a number > 0");
    return ER_STEP_FATAL;
  }
  /* safety.h: on a real cluster, only to topics with test_target prefixes */
  if ((rc = er_safety_guard_kafka(x, "kafka.produce",
                                  er_kafka_is_embedded(km->k), NULL, &topic,
                                  1)) != ER_STEP_OK)
    return rc;
  if (pgen_init(x, a, &g, &err) != 0)
    goto fail;
  if (g.nmany)
    o.count *= g.nmany; /* the file's messages, count times over */
  dh = diag_begin(x, topic, &g);
  /* the topic's start offsets are recorded before anything is sent to it */
  if (start_offsets(x, km->k, topic, &start, &n, &err) != 0)
    goto fail;
  p = er_session_get(x->session, "kafka.producer");
  if (!p) {
    p = er_kafka_producer_new(km->k, &err);
    if (!p)
      goto fail;
    if (er_session_put(x->session, "kafka.producer", p, producer_free) != 0) {
      er_kafka_producer_free(p);
      er_errf(&err, ER_E_ENV, "out of memory");
      goto fail;
    }
  }
  if (!x->polling) {
    o.progress = on_progress;
    o.progress_ud = x;
  }
  reached = true;
  if (er_kafka_produce(p, topic, pgen_next, &g, &o, &st, &err) != 0)
    goto fail;
  er_fmt_duration(st.elapsed_us / 1000, took);
  secs = (double)st.elapsed_us / 1e6;
  er_exec_log(x,
              "kafka.produce: %zu message(s) to '%s' delivered in %s "
              "(%.0f msg/s)",
              st.delivered, topic, took,
              secs > 0 ? (double)st.delivered / secs : 0.0);
  goto out;
fail:
  er_buf_printf(x->detail, "kafka.produce to '%s': %s", topic ? topic : "?",
                err.msg);
  rc = step_rc(&err);
out:
  er_diag_produce_end(x, dh, reached ? &st : NULL,
                      rc == ER_STEP_OK ? NULL : err.msg);
  free(start);
  pgen_free(&g);
  return rc;
}

static void validate_produce(const json_t *a, er_diag_t *d) {
  int payloads = 0;
  const json_t *env = json_object_get(a, "envelope");
  const json_t *part = json_object_get(a, "partition");
  const char *const names[] = {"value", "text", "file", "value_file",
                               "envelope"};
  for (size_t i = 0; i < 5; i++)
    if (json_object_get(a, names[i]))
      payloads++;
  if (payloads > 1)
    er_diag_error(d, "",
                  "give one of value, text, file, value_file or envelope");
  if (json_object_get(a, "data") && json_object_get(a, "data_file"))
    er_diag_error(d, "/data_file",
                  "give one of data and data_file (the envelope's data, or "
                  "a file of them)");
  if (json_is_string(env) && strstr(json_string_value(env), "${") == NULL &&
      strcmp(json_string_value(env), "fresh") != 0 &&
      strcmp(json_string_value(env), "fresh-per-message") != 0 &&
      strcmp(json_string_value(env), "fixed") != 0)
    er_diag_error(d, "/envelope", "envelope must be \"fresh\" or \"fixed\"");
  if (!env) {
    const char *const envkeys[] = {"data", "event_type", "source_service",
                                   "correlation_id", "data_file"};
    for (size_t i = 0; i < 5; i++)
      if (json_object_get(a, envkeys[i])) {
        char path[64];
        snprintf(path, sizeof path, "/%s", envkeys[i]);
        er_diag_error(d, path,
                      "%s belongs to an envelope: add \"envelope\": "
                      "\"fresh\" or \"fixed\" (or put it in %s)",
                      envkeys[i], i == 4 ? "value_file" : "value");
      }
  }
  if (json_is_string(part) && strstr(json_string_value(part), "${") == NULL &&
      strcmp(json_string_value(part), "key") != 0 &&
      strcmp(json_string_value(part), "spread") != 0)
    er_diag_error(d, "/partition",
                  "partition must be a number, \"key\" or \"spread\"");
  if (json_is_integer(part) && json_integer_value(part) < 0)
    er_diag_error(d, "/partition", "partition must be >= 0");
  if (json_is_integer(json_object_get(a, "count")) &&
      json_integer_value(json_object_get(a, "count")) < 1)
    er_diag_error(d, "/count", "count must be >= 1");
  if (json_is_integer(json_object_get(a, "concurrency")) &&
      json_integer_value(json_object_get(a, "concurrency")) < 1)
    er_diag_error(d, "/concurrency", "concurrency must be >= 1");
  if (json_is_number(json_object_get(a, "rate")) &&
      json_number_value(json_object_get(a, "rate")) <= 0)
    er_diag_error(d, "/rate", "rate must be > 0 (messages per second)");
}

/* ---- kafka.expect ---------------------------------------------------------
 */

static const er_keyspec_t expect_keys[] = {
    {"topic", ER_T_STRING, false, NULL, NULL},
    {"topics", ER_T_ARRAY, false, NULL, NULL},
    {"key", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"headers", ER_T_OBJECT, false, NULL, NULL},
    {"where", ER_T_OBJECT, false, NULL, NULL},
    {"count", ER_T_INT | ER_T_OBJECT | ER_T_MATCHER, false, NULL, NULL},
    {"within", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"then_quiet_for", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"capture", ER_T_OBJECT, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

/* How a count is judged. */
enum { COUNT_EXACT, COUNT_AT_LEAST, COUNT_WINDOW };

static int count_kind(const json_t *count) {
  const char *k;
  json_t *v;
  if (!count || json_is_integer(count))
    return count ? COUNT_EXACT : COUNT_AT_LEAST;
  if (!json_is_object(count))
    return COUNT_WINDOW;
  json_object_foreach((json_t *)count, k, v) {
    if (strcmp(k, "$gte") != 0 && strcmp(k, "$gt") != 0)
      return COUNT_WINDOW;
  }
  return COUNT_AT_LEAST;
}

static bool count_holds(const json_t *expect, size_t n) {
  json_t *got = json_integer((json_int_t)n);
  bool ok = er_json_match(got, expect, NULL);
  json_decref(got);
  return ok;
}

/* Does a record match? Reasons for a mismatch go to why ("; "-joined). */
static bool record_matches(const er_kafka_record_t *rec, const json_t *parsed,
                           const json_t *a, er_buf_t *why) {
  const json_t *key = json_object_get(a, "key");
  const json_t *hdrs = json_object_get(a, "headers");
  const json_t *where = json_object_get(a, "where");
  const char *k;
  json_t *v;
  bool ok = true;
  if (key) {
    json_t *got = rec->key ? jtext(rec->key, rec->key_len) : json_null();
    er_buf_t r = ER_BUF_INIT(512);
    if (!er_json_match(got, key, &r)) {
      er_buf_printf(why, "%skey: %s", ok ? "" : "; ", er_buf_cstr(&r));
      ok = false;
    }
    er_buf_free(&r);
    json_decref(got);
  }
  if (hdrs)
    json_object_foreach((json_t *)hdrs, k, v) {
      const void *hv = NULL;
      size_t hl = 0;
      json_t *got = NULL;
      er_buf_t r = ER_BUF_INIT(512);
      if (er_kafka_record_header_get(rec, k, &hv, &hl) == 0)
        got = hv ? jtext(hv, hl) : json_null();
      if (!er_json_match(got, v, &r)) {
        er_buf_printf(why, "%sheader %s: %s", ok ? "" : "; ", k,
                      got ? er_buf_cstr(&r) : "missing");
        ok = false;
      }
      er_buf_free(&r);
      json_decref(got);
    }
  if (where)
    json_object_foreach((json_t *)where, k, v) {
      er_buf_t r = ER_BUF_INIT(512);
      if (!parsed) {
        er_buf_printf(why, "%svalue is not JSON", ok ? "" : "; ");
        ok = false;
        er_buf_free(&r);
        break;
      }
      {
        er_sel_t sel;
        char msg[512];
        if (er_select(parsed, k, &sel, msg, sizeof msg) != 0)
          er_buf_puts(&r, msg);
        if (r.len || !er_sel_match(&sel, v, &r)) {
          er_buf_printf(why, "%s%s: %s", ok ? "" : "; ", k,
                        er_sel_value(&sel) || sel.is_path ? er_buf_cstr(&r)
                                                          : "missing");
          ok = false;
        }
        er_sel_free(&sel);
      }
      er_buf_free(&r);
    }
  return ok;
}

/* A one-line description of a record for failure details. */
static void describe(er_buf_t *b, const er_kafka_record_t *rec,
                     const json_t *parsed) {
  char *val = NULL, *key = NULL;
  json_t *ks = rec->key ? jtext(rec->key, rec->key_len) : NULL;
  key = ks ? er_json_brief(ks, 80) : er_strdup("(none)");
  if (parsed) {
    val = er_json_brief(parsed, VALUE_SHOWN);
  } else if (rec->value) {
    json_t *s = jtext(rec->value, rec->value_len);
    val = s ? er_json_brief(s, VALUE_SHOWN) : NULL;
    if (!s)
      val = er_strdup("(not text)");
    json_decref(s);
  } else {
    val = er_strdup("null");
  }
  er_buf_printf(b, "[p%d @%" PRId64 "] key=%s value=%s", (int)rec->partition,
                rec->offset, key ? key : "?", val ? val : "?");
  free(key);
  free(val);
  json_decref(ks);
}

typedef struct expect_state {
  size_t seen, matched;
  er_buf_t list; /* first SHOWN messages and why */
  json_t *caps;  /* name -> value (first-match captures) */
  json_t *alls;  /* name -> array ("all" captures) */
  bool first_done;
  er_buf_t capfail;
} expect_state_t;

/* The sources of a capture (lang/capture.h): one record. */
typedef struct kcap {
  const er_kafka_record_t *rec;
  const json_t *parsed;
} kcap_t;

static const json_t *cap_doc(void *ud, const char **why_not) {
  kcap_t *k = ud;
  if (!k->parsed)
    *why_not = k->rec->value ? "the value is not JSON" : "the value is null";
  return k->parsed;
}

static char *cap_header(void *ud, const char *name) {
  kcap_t *k = ud;
  const void *hv = NULL;
  size_t hl = 0;
  char *out;
  if (er_kafka_record_header_get(k->rec, name, &hv, &hl) != 0 || !hv)
    return NULL;
  out = malloc(hl + 1);
  if (out) {
    memcpy(out, hv, hl);
    out[hl] = '\0';
  }
  return out;
}

static json_t *cap_named(void *ud, const char *name) {
  kcap_t *k = ud;
  if (strcmp(name, "key") != 0)
    return NULL;
  return k->rec->key ? jtext(k->rec->key, k->rec->key_len) : json_null();
}

/* Captures from a matching record: "all" ones from every one, the others
 * from the first. */
static void capture(expect_state_t *s, const json_t *spec,
                    const er_kafka_record_t *rec, const json_t *parsed) {
  const char *name;
  json_t *c;
  kcap_t kc = {rec, parsed};
  er_cap_src_t src = {ER_CAP_HEADER | ER_CAP_KEY,
                      "value",
                      &kc,
                      cap_doc,
                      NULL,
                      rec->value ? rec->value : NULL,
                      rec->value ? rec->value_len : 0,
                      cap_header,
                      cap_named};
  if (!spec)
    return;
  json_object_foreach((json_t *)spec, name, c) {
    json_t *all = json_is_object(c) ? json_object_get(c, "all") : NULL;
    er_buf_t why = ER_BUF_INIT(2048);
    json_t *got;
    if (all) {
      json_t *arr = json_object_get(s->alls, name);
      if (!arr) {
        arr = json_array();
        json_object_set_new(s->alls, name, arr);
      }
      got = er_capture_take(all, &src, &why);
      if (got)
        json_array_append_new(arr, got);
    } else if (!s->first_done) {
      got = er_capture_take(c, &src, &why);
      if (got)
        json_object_set_new(s->caps, name, got);
      else
        er_buf_printf(&s->capfail,
                      "capture %s: %s in the first matching message\n", name,
                      er_buf_cstr(&why));
    }
    er_buf_free(&why);
  }
  s->first_done = true;
}

/* Reads one record (or nothing until deadline); evaluates it. Returns 1 when
 * a record was read and matched, 0 when read and not matched or nothing
 * came, -1 on error. *got tells whether a record was read. */
static int expect_read(er_kafka_reader_t *r, const char *tname, const json_t *a,
                       expect_state_t *s, int64_t deadline, bool *got,
                       er_buf_t *late, er_err_t *err) {
  er_kafka_record_t rec;
  json_t *parsed = NULL;
  er_buf_t why = ER_BUF_INIT(2048);
  int rc = er_kafka_reader_next(r, deadline, &rec, err);
  bool m;
  *got = rc == 1;
  if (rc <= 0) {
    er_buf_free(&why);
    return rc;
  }
  s->seen++;
  if (rec.value)
    parsed = er_json_loadb(rec.value, rec.value_len, JSON_DECODE_ANY, NULL);
  m = record_matches(&rec, parsed, a, &why);
  if (s->seen <= SHOWN) {
    er_buf_puts(&s->list, "  ");
    if (tname)
      er_buf_printf(&s->list, "%s ", tname);
    describe(&s->list, &rec, parsed);
    er_buf_printf(&s->list, " -> %s\n", m ? "matched" : er_buf_cstr(&why));
  }
  if (m) {
    s->matched++;
    capture(s, json_object_get(a, "capture"), &rec, parsed);
    if (late) {
      er_buf_puts(late, "  ");
      if (tname)
        er_buf_printf(late, "%s ", tname);
      describe(late, &rec, parsed);
      er_buf_puts(late, "\n");
    }
  }
  json_decref(parsed);
  er_buf_free(&why);
  return m ? 1 : 0;
}

/* After a failure: did the broker drop messages that came after the
 * scenario's start offsets (the embedded broker keeps only the newest few
 * MB of every partition)? Then say so. */
static void note_dropped(er_exec_t *x, er_kafka_t *k, const char *topic,
                         const int64_t *start, int n) {
  int64_t *lo = NULL, *hi = NULL, lost = 0;
  int np = 0;
  er_err_t e2 = {0};
  if (er_kafka_watermarks(k, topic, &lo, &hi, &np, er_now_ms() + 2000, &e2) !=
      0)
    return;
  for (int i = 0; i < np; i++) {
    int64_t from = i < n ? start[i] : 0;
    if (lo[i] > from)
      lost += lo[i] - from;
  }
  if (lost > 0)
    er_buf_printf(x->detail,
                  "note: %" PRId64 " message(s) produced to '%s' after the "
                  "scenario started are no longer on the broker (%s) and "
                  "were not seen\n",
                  lost, topic,
                  er_kafka_is_embedded(k)
                      ? "the embedded broker keeps about the newest 5 MB of "
                        "each partition"
                      : "retention");
  free(lo);
  free(hi);
}

/* One kafka.expect in progress, shared by the phases of run_expect. */
typedef struct expect_run {
  er_exec_t *x;
  const json_t *a;
  const char *topic;   /* for messages: "t", or "a', 'b" for several */
  const char **topics; /* ntopics names (borrowed), owned array */
  size_t ntopics;
  const json_t *count; /* the step's, or the default (run_expect owns it) */
  int kind;            /* COUNT_* */
  int64_t t0;
  er_kafka_reader_t **r; /* one per topic, owned */
  int64_t **start;       /* each topic's start offsets, owned */
  int *nstart;
  size_t cur; /* the reader read next */
  er_buf_t label;
  expect_state_t s;
} expect_run_t;

/* Reads one record from the topics in turn (each of several waits at
 * most 20 ms before the next is tried); see expect_read. */
static int expect_next(expect_run_t *e, int64_t deadline, bool *got,
                       er_buf_t *late, er_err_t *err) {
  size_t i = e->cur;
  int64_t slice = er_now_ms() + 20;
  if (e->ntopics == 1)
    return expect_read(e->r[0], NULL, e->a, &e->s, deadline, got, late, err);
  e->cur = (e->cur + 1) % e->ntopics;
  return expect_read(e->r[i], e->topics[i], e->a, &e->s,
                     slice < deadline ? slice : deadline, got, late, err);
}

/* Nothing more is there right now on any topic. */
static bool expect_at_end(const expect_run_t *e) {
  for (size_t i = 0; i < e->ntopics; i++)
    if (!er_kafka_reader_at_end(e->r[i]))
      return false;
  return true;
}

/* Reads until the count is reached (or within ends). Returns 1 when it
 * passed, 0 when not (*too_many: past an exact count), -1 on error. */
static int expect_until_count(expect_run_t *e, int64_t wdeadline,
                              bool *too_many, er_err_t *err) {
  bool got;
  for (;;) {
    int64_t slice = er_now_ms() + 100;
    int m =
        expect_next(e, slice < wdeadline ? slice : wdeadline, &got, NULL, err);
    if (m < 0)
      return -1;
    if (e->kind == COUNT_EXACT &&
        e->s.matched > (size_t)json_integer_value(e->count)) {
      *too_many = true;
      return 0;
    }
    if (e->kind == COUNT_AT_LEAST && count_holds(e->count, e->s.matched))
      return 1;
    if (e->kind == COUNT_EXACT &&
        e->s.matched == (size_t)json_integer_value(e->count) && !got &&
        expect_at_end(e))
      return 1; /* the count, and nothing more is there now */
    if (er_now_ms() >= wdeadline || er_interrupted())
      return count_holds(e->count, e->s.matched) ? 1 : 0;
  }
}

/* then_quiet_for after passing: keeps reading that long. Returns 0 when
 * nothing more matched, 1 when it failed (detail written), -1 on error. */
static int expect_quiet(expect_run_t *e, int64_t quiet, er_err_t *err) {
  er_exec_t *x = e->x;
  int64_t qend = er_now_ms() + quiet;
  size_t before = e->s.matched;
  er_buf_t late = ER_BUF_INIT(4096);
  char wtext[32];
  bool got;
  int rc = 1;

  if (qend > x->deadline_ms) {
    snprintf(wtext, sizeof wtext, "%s",
             json_string_value(json_object_get(e->a, "then_quiet_for")));
    er_buf_printf(x->detail,
                  "kafka.expect on '%s': then_quiet_for %s does not fit in "
                  "what is left of the scenario timeout\n",
                  e->topic, wtext);
    goto out;
  }
  while (er_now_ms() < qend && !er_interrupted()) {
    if (expect_next(e, qend, &got, &late, err) < 0) {
      rc = -1;
      goto out;
    }
  }
  if (e->s.matched > before) {
    snprintf(wtext, sizeof wtext, "%s",
             json_string_value(json_object_get(e->a, "then_quiet_for")));
    er_buf_printf(x->detail,
                  "kafka.expect on '%s': %zu further matching message(s) "
                  "arrived during then_quiet_for %s (after %zu had "
                  "matched):\n%s",
                  e->topic, e->s.matched - before, wtext, before,
                  er_buf_cstr(&late));
    goto out;
  }
  rc = 0;
out:
  er_buf_free(&late);
  return rc;
}

/* Passed: the captures, and the log line. */
static void expect_passed(expect_run_t *e) {
  char took[32];
  json_object_update(e->x->captures, e->s.caps);
  json_object_update(e->x->captures, e->s.alls);
  er_fmt_duration(er_now_ms() - e->t0, took);
  er_exec_log(e->x,
              "kafka.expect on '%s': %zu matching of %zu message(s) "
              "after %s",
              e->topic, e->s.matched, e->s.seen, took);
}

/* Failed: say what was seen (and what the broker no longer has). */
static void expect_failed(expect_run_t *e, er_kafka_t *k, bool too_many) {
  er_exec_t *x = e->x;
  expect_state_t *s = &e->s;
  char *cbrief = er_json_brief(e->count, 60);
  char ctext[64], wtext[32];

  snprintf(ctext, sizeof ctext, "%s", cbrief ? cbrief : "?");
  free(cbrief);
  er_fmt_duration(er_now_ms() - e->t0, wtext);
  if (too_many)
    er_buf_printf(x->detail,
                  "kafka.expect on '%s': expected count %s, but %zu "
                  "matching message(s) arrived (of %zu read, after %s)\n",
                  e->topic, ctext, s->matched, s->seen, wtext);
  else
    er_buf_printf(x->detail,
                  "kafka.expect on '%s': expected count %s, got %zu matching "
                  "of %zu message(s) produced after the scenario started "
                  "(waited %s)\n",
                  e->topic, ctext, s->matched, s->seen, wtext);
  er_diag_note_expect(x, e->topics[0], (long)s->matched, (long)s->seen,
                      too_many);
  if (s->seen) {
    if (s->seen > SHOWN)
      er_buf_printf(x->detail, "the first %d of %zu messages seen:\n%s", SHOWN,
                    s->seen, er_buf_cstr(&s->list));
    else
      er_buf_printf(x->detail, "message(s) seen:\n%s", er_buf_cstr(&s->list));
    if (s->seen > SHOWN)
      er_buf_printf(x->detail, "  ... and %zu more\n", s->seen - SHOWN);
  }
  for (size_t i = 0; i < e->ntopics; i++)
    note_dropped(x, k, e->topics[i], e->start[i], e->nstart[i]);
}

/* The topics of the step ("topic" or "topics") and the label naming them
 * in messages. -1 when memory ran out. */
static int expect_topics(expect_run_t *e) {
  const json_t *ta = json_object_get(e->a, "topics");
  size_t n = ta ? json_array_size(ta) : 1;
  e->topics = calloc(n + 1, sizeof *e->topics);
  e->r = calloc(n + 1, sizeof(er_kafka_reader_t *));
  e->start = calloc(n + 1, sizeof *e->start);
  e->nstart = calloc(n + 1, sizeof *e->nstart);
  if (!e->topics || !e->r || !e->start || !e->nstart)
    return -1;
  for (size_t i = 0; i < n; i++) {
    const char *t = ta ? json_string_value(json_array_get(ta, i))
                       : json_string_value(json_object_get(e->a, "topic"));
    if (!t)
      continue;
    er_buf_puts(&e->label, e->ntopics ? "', '" : "");
    er_buf_puts(&e->label, t);
    e->topics[e->ntopics++] = t;
  }
  e->topic = er_buf_cstr(&e->label);
  return 0;
}

/* A reader from each topic's start offsets. -1 with err. */
static int expect_readers(expect_run_t *e, er_kafka_t *k, er_err_t *err) {
  for (size_t i = 0; i < e->ntopics; i++) {
    er_diag_note_topic(e->x, e->topics[i]);
    if (start_offsets(e->x, k, e->topics[i], &e->start[i], &e->nstart[i],
                      err) != 0)
      return -1;
    e->r[i] =
        er_kafka_reader_new(k, e->topics[i], e->start[i], e->nstart[i], err);
    if (!e->r[i])
      return -1;
  }
  /* several are read in turn, 20 ms each: assign them first */
  for (size_t i = 0; e->ntopics > 1 && i < e->ntopics; i++) {
    int64_t dl = er_now_ms() + 5000;
    if (er_kafka_reader_start(
            e->r[i], dl < e->x->deadline_ms ? dl : e->x->deadline_ms, err) != 0)
      return -1;
  }
  return 0;
}

static void expect_run_free(expect_run_t *e) {
  for (size_t i = 0; e->r && i < e->ntopics; i++) {
    er_kafka_reader_free(e->r[i]);
    free(e->start[i]);
  }
  free(e->r);
  free(e->start);
  free(e->nstart);
  free(e->topics);
  er_buf_free(&e->label);
}

static int run_expect(er_exec_t *x, const json_t *a) {
  kmod_t *km = the_kafka(x);
  json_t *dflt_count = NULL;
  int64_t within = er_json_duration(a, "within", 10000);
  int64_t quiet = er_json_duration(a, "then_quiet_for", -1);
  int64_t wdeadline;
  int rc = ER_STEP_FAIL, passed, q;
  er_err_t err = {0};
  expect_run_t e;
  bool too_many = false;

  memset(&e, 0, sizeof e);
  e.x = x;
  e.a = a;
  er_buf_init(&e.label, 4096);
  e.count = json_object_get(a, "count");
  e.kind = count_kind(e.count);
  e.t0 = er_now_ms();
  er_buf_init(&e.s.list, 16 * 1024);
  er_buf_init(&e.s.capfail, 2048);
  e.s.caps = json_object();
  e.s.alls = json_object();
  if (!km || expect_topics(&e) != 0 || e.ntopics == 0) {
    er_buf_puts(x->detail, km ? "kafka.expect: no topic (or out of memory)"
                              : "kafka.expect: no kafka module");
    rc = km ? ER_STEP_FATAL : ER_STEP_ERROR;
    goto out;
  }
  if (!e.count) {
    dflt_count = json_pack("{s:i}", "$gte", 1);
    e.count = dflt_count;
  }
  wdeadline = e.t0 + within < x->deadline_ms ? e.t0 + within : x->deadline_ms;
  if (expect_readers(&e, km->k, &err) != 0)
    goto error;
  passed = expect_until_count(&e, wdeadline, &too_many, &err);
  if (passed < 0)
    goto error;
  if (passed && quiet >= 0) {
    q = expect_quiet(&e, quiet, &err);
    if (q < 0)
      goto error;
    if (q > 0) {
      er_diag_note_expect(x, e.topics[0], (long)e.s.matched, (long)e.s.seen,
                          true);
      goto fail;
    }
  }
  if (passed && e.s.capfail.len) {
    er_buf_printf(x->detail, "kafka.expect on '%s': %s", e.topic,
                  er_buf_cstr(&e.s.capfail));
    goto fail;
  }
  if (passed) {
    expect_passed(&e);
    rc = ER_STEP_OK;
    goto out;
  }
  expect_failed(&e, km->k, too_many);
fail:
  rc = ER_STEP_FAIL;
  goto out;
error:
  er_buf_printf(x->detail, "kafka.expect on '%s': %s", e.topic ? e.topic : "?",
                err.msg);
  rc = step_rc(&err);
out:
  expect_run_free(&e);
  json_decref(dflt_count);
  json_decref(e.s.caps);
  json_decref(e.s.alls);
  er_buf_free(&e.s.list);
  er_buf_free(&e.s.capfail);
  return rc;
}

static void validate_expect(const json_t *a, er_diag_t *d) {
  const json_t *count = json_object_get(a, "count");
  const json_t *where = json_object_get(a, "where");
  const json_t *hdrs = json_object_get(a, "headers");
  const json_t *caps = json_object_get(a, "capture");
  const json_t *key = json_object_get(a, "key");
  const char *k;
  json_t *v;
  const json_t *ta = json_object_get(a, "topics");
  char msg[512];
  if (!json_object_get(a, "topic") == !ta)
    er_diag_error(d, "",
                  "give the topic to read, \"topic\": \"t\", or the "
                  "topics, \"topics\": [\"a\", \"b\"] (one of them)");
  if (ta && json_array_size(ta) == 0)
    er_diag_error(d, "/topics", "topics names at least one topic");
  for (size_t i = 0; i < json_array_size(ta); i++) {
    const json_t *t = json_array_get(ta, i);
    char path[64];
    snprintf(path, sizeof path, "/topics/%zu", i);
    if (!json_is_string(t) || !*json_string_value(t))
      er_diag_error(d, path, "a topic name is a non-empty string");
    for (size_t j = 0; j < i && json_is_string(t); j++)
      if (json_equal(t, json_array_get(ta, j)))
        er_diag_error(d, path, "topic \"%s\" is named twice",
                      json_string_value(t));
  }
  if (json_is_integer(count) && json_integer_value(count) < 0)
    er_diag_error(d, "/count", "count must be >= 0");
  if (json_is_object(count) &&
      er_json_matcher_check(count, msg, sizeof msg) != 0)
    er_diag_error(d, "/count", "%s", msg);
  if (json_is_object(count) && !er_json_is_matcher(count))
    er_diag_error(d, "/count",
                  "count must be a number or a matcher such as "
                  "{\"$gte\": 1}");
  er_diag_matcher(d, "/key", key);
  if (where)
    json_object_foreach((json_t *)where, k, v) {
      char path[300];
      er_json_pointer_join(path, sizeof path, "/where", k);
      if (k[0] != '/' && k[0] != '\0' && !er_jsonpath_is(k) && !strstr(k, "${"))
        er_diag_error(d, path,
                      "where keys are JSON pointers such as "
                      "\"/data/batch_id\" or JSONPaths such as "
                      "\"$.data.batch_id\"");
      else
        er_diag_select(d, path, k);
      er_diag_matcher(d, path, v);
    }
  if (hdrs)
    json_object_foreach((json_t *)hdrs, k, v) {
      char path[300];
      er_json_pointer_join(path, sizeof path, "/headers", k);
      er_diag_matcher(d, path, v);
    }
  if (caps)
    json_object_foreach((json_t *)caps, k, v) {
      char path[300];
      er_json_pointer_join(path, sizeof path, "/capture", k);
      if (er_capture_check(v, ER_CAP_HEADER | ER_CAP_KEY | ER_CAP_ALL, msg,
                           sizeof msg))
        er_diag_error(d, path, "%s", msg);
    }
}

/* ---- kafka.drained --------------------------------------------------------
 */

static const er_keyspec_t drained_keys[] = {
    {"group", ER_T_STRING, true, NULL, NULL},
    {"topics", ER_T_ARRAY, false, NULL, NULL},
    {"within", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

/* The topics a step names, or the declared ones. names borrowed. */
static const char **step_topics(const json_t *a, const kmod_t *km, size_t *n) {
  const json_t *t = json_object_get(a, "topics");
  const char **names;
  *n = t ? json_array_size(t) : km->ntopics;
  names = calloc(*n + 1, sizeof *names);
  if (!names)
    return NULL;
  for (size_t i = 0; i < *n; i++)
    names[i] = t ? json_string_value(json_array_get(t, i)) : km->topics[i].name;
  for (size_t i = 0; i < *n; i++)
    if (!names[i]) {
      free(names);
      return NULL;
    }
  return names;
}

typedef struct dtopic {
  const char *name;
  int n;
  int64_t *lo, *end, *committed, *probe;
} dtopic_t;

/* One kafka.drained in progress, shared by the phases of run_drained. */
typedef struct drain {
  er_kafka_t *k;
  const char *group;
  dtopic_t *ts; /* owned (and what each holds), nt of them */
  size_t nt;
  int polls, reads;  /* reads: polls that read every topic's offsets */
  er_err_t last_err; /* of the last poll's failed read, if any */
} drain_t;

/* End offsets now ("consumed everything produced so far"); names
 * borrowed. */
static int drain_measure(er_exec_t *x, drain_t *d, const char **names,
                         er_err_t *err) {
  dtopic_t *ts = d->ts = calloc(d->nt, sizeof *d->ts);
  if (!ts)
    return er_errf(err, ER_E_ENV, "out of memory");
  for (size_t i = 0; i < d->nt; i++) {
    ts[i].name = names[i];
    if (er_kafka_watermarks(d->k, names[i], &ts[i].lo, &ts[i].end, &ts[i].n,
                            x->deadline_ms, err) != 0)
      return -1;
    if (ts[i].n == 0)
      return er_errf(err, ER_E_ENV, "topic '%s' does not exist", names[i]);
    ts[i].committed = calloc((size_t)ts[i].n, sizeof *ts[i].committed);
    ts[i].probe = calloc((size_t)ts[i].n, sizeof *ts[i].probe);
    if (!ts[i].committed || !ts[i].probe)
      return er_errf(err, ER_E_ENV, "out of memory");
    for (int p = 0; p < ts[i].n; p++)
      ts[i].committed[p] = -1;
  }
  return 0;
}

/* One poll of the committed offsets: have they reached the end? */
static bool drain_poll(drain_t *d, int64_t call_deadline) {
  bool all = true, read_all = true;
  d->polls++;
  er_err_clear(&d->last_err);
  for (size_t i = 0; i < d->nt; i++) {
    dtopic_t *t = &d->ts[i];
    er_err_t e2 = {0};
    if (er_kafka_committed(d->k, d->group, t->name, t->n, t->probe,
                           call_deadline, &e2) != 0) {
      d->last_err = e2; /* a coordinator may be moving: try again */
      read_all = false;
      all = false;
      continue;
    }
    memcpy(t->committed, t->probe, (size_t)t->n * sizeof(int64_t));
    for (int p = 0; p < t->n; p++)
      if (t->committed[p] < t->end[p] && t->end[p] > t->lo[p])
        all = false;
  }
  if (read_all)
    d->reads++;
  return all;
}

/* Polls until drained (true) or deadline (or the scenario's, x_deadline)
 * passes. */
static bool drain_wait(drain_t *d, int64_t deadline, int64_t x_deadline) {
  for (;;) {
    /* a poll that starts before `within` ends may finish a little after
     * it (never after the scenario's deadline) */
    int64_t call_deadline = er_now_ms() + 2000;
    if (call_deadline < deadline)
      call_deadline = deadline;
    if (call_deadline > x_deadline)
      call_deadline = x_deadline;
    if (drain_poll(d, call_deadline))
      return true;
    if (deadline - er_now_ms() < 20 || er_interrupted())
      return false;
    {
      int64_t left = deadline - er_now_ms();
      er_sleep_ms(left < 200 ? left : 200);
    }
  }
}

/* Not drained: the lag of every partition. */
static void drain_report(er_exec_t *x, const drain_t *d, const char *took) {
  er_buf_printf(x->detail,
                "kafka.drained: group '%s' did not commit up to the end "
                "offsets of %s within %s:\n",
                d->group, d->nt == 1 ? "its topic" : "its topics", took);
  if (d->last_err.code)
    er_buf_printf(x->detail, "  (a read of the committed offsets failed: %s)\n",
                  d->last_err.msg);
  for (size_t i = 0; i < d->nt; i++) {
    const dtopic_t *t = &d->ts[i];
    for (int p = 0; p < t->n; p++) {
      int64_t c = t->committed[p];
      int64_t from = c >= 0 ? c : t->lo[p];
      char ctext[32];
      if (c >= 0)
        snprintf(ctext, sizeof ctext, "%" PRId64, c);
      else
        snprintf(ctext, sizeof ctext, "none");
      er_buf_printf(x->detail,
                    "  %s [%d]: end %" PRId64 ", committed %s, lag %" PRId64
                    "\n",
                    t->name, p, t->end[p], ctext,
                    t->end[p] > from ? t->end[p] - from : 0);
    }
  }
}

static int run_drained(er_exec_t *x, const json_t *a) {
  kmod_t *km = the_kafka(x);
  int64_t within = er_json_duration(a, "within", 30000);
  int64_t t0 = er_now_ms(), deadline;
  const char **names = NULL;
  drain_t d;
  int rc = ER_STEP_FAIL;
  er_err_t err = {0};
  char took[32];

  memset(&d, 0, sizeof d);
  d.group = json_string_value(json_object_get(a, "group"));
  if (!km)
    return ER_STEP_ERROR;
  d.k = km->k;
  deadline = t0 + within < x->deadline_ms ? t0 + within : x->deadline_ms;
  names = step_topics(a, km, &d.nt);
  if (!names || d.nt == 0) {
    er_buf_puts(x->detail, "kafka.drained: no topics (list them in topics, or "
                           "declare them in the environment)");
    free(names);
    return ER_STEP_FATAL;
  }
  if (drain_measure(x, &d, names, &err) != 0)
    goto error;
  if (drain_wait(&d, deadline, x->deadline_ms)) {
    er_fmt_duration(er_now_ms() - t0, took);
    er_exec_log(x, "kafka.drained: group '%s' caught up after %s (%d polls)",
                d.group, took, d.polls);
    rc = ER_STEP_OK;
    goto out;
  }
  if (d.reads == 0) {
    err = d.last_err;
    goto error;
  }
  er_fmt_duration(er_now_ms() - t0, took);
  drain_report(x, &d, took);
  rc = ER_STEP_FAIL;
  goto out;
error:
  er_buf_printf(x->detail, "kafka.drained (group '%s'): %s",
                d.group ? d.group : "?", err.msg);
  rc = step_rc(&err);
out:
  for (size_t i = 0; d.ts && i < d.nt; i++) {
    free(d.ts[i].lo);
    free(d.ts[i].end);
    free(d.ts[i].committed);
    free(d.ts[i].probe);
  }
  free(d.ts);
  free(names);
  return rc;
}

static void validate_topics(const json_t *a, er_diag_t *d) {
  const json_t *t = json_object_get(a, "topics");
  size_t i;
  json_t *v;
  if (!t)
    return;
  if (json_array_size(t) == 0)
    er_diag_error(d, "/topics",
                  "topics must not be empty (leave it out to "
                  "mean every declared topic)");
  json_array_foreach(t, i, v) {
    if (!json_is_string(v) || !*json_string_value(v)) {
      char path[64];
      snprintf(path, sizeof path, "/topics/%zu", i);
      er_diag_error(d, path, "a topic name (string)");
    }
  }
}

/* ---- kafka.reset ----------------------------------------------------------
 */

static const er_keyspec_t reset_keys[] = {
    {"group", ER_T_STRING, true, NULL, NULL},
    {"topics", ER_T_ARRAY, false, NULL, NULL},
    {"to", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

/* safety.h: a real cluster needs test_target prefixes */
static int reset_guard(er_exec_t *x, kmod_t *km, const char *group,
                       const char **names, size_t nt) {
  return er_safety_guard_kafka(x, "kafka.reset", er_kafka_is_embedded(km->k),
                               group, (const char *const *)names, nt);
}

static int run_reset(er_exec_t *x, const json_t *a) {
  kmod_t *km = the_kafka(x);
  const char *group = json_string_value(json_object_get(a, "group"));
  const char *to = json_string_value(json_object_get(a, "to"));
  const char **names = NULL;
  size_t nt = 0;
  er_err_t err = {0};
  bool to_end;
  if (!km)
    return ER_STEP_ERROR;
  if (!to)
    to = "end";
  if (strcmp(to, "end") != 0 && strcmp(to, "earliest") != 0) {
    er_buf_printf(x->detail,
                  "kafka.reset: to must be \"end\" or "
                  "\"earliest\", not \"%s\"",
                  to);
    return ER_STEP_FATAL;
  }
  to_end = strcmp(to, "end") == 0;
  names = step_topics(a, km, &nt);
  if (!names || nt == 0) {
    er_buf_puts(x->detail, "kafka.reset: no topics (list them in topics, or "
                           "declare them in the environment)");
    free(names);
    return ER_STEP_FATAL;
  }
  if (reset_guard(x, km, group, names, nt) != ER_STEP_OK) {
    free(names);
    return ER_STEP_FATAL;
  }
  if (er_kafka_reset_group(km->k, group, names, nt, to_end, x->deadline_ms,
                           &err) != 0) {
    er_buf_printf(x->detail, "kafka.reset: %s", err.msg);
    free(names);
    return step_rc(&err);
  }
  er_exec_log(x, "kafka.reset: group '%s' set to the %s of %zu topic(s)", group,
              to_end ? "end" : "earliest offsets", nt);
  free(names);
  return ER_STEP_OK;
}

static void validate_reset(const json_t *a, er_diag_t *d) {
  const json_t *to = json_object_get(a, "to");
  validate_topics(a, d);
  if (json_is_string(to) && strstr(json_string_value(to), "${") == NULL &&
      strcmp(json_string_value(to), "end") != 0 &&
      strcmp(json_string_value(to), "earliest") != 0)
    er_diag_error(d, "/to", "to must be \"end\" or \"earliest\"");
}

/* ---- the table entries ----------------------------------------------------
 */

const er_action_t er_act_kafka_produce = {.name = "kafka.produce",
                                          .keys = produce_keys,
                                          .validate = validate_produce,
                                          .run = run_produce};
/* not a check: it has its own `within` */
const er_action_t er_act_kafka_expect = {.name = "kafka.expect",
                                         .keys = expect_keys,
                                         .validate = validate_expect,
                                         .run = run_expect};
const er_action_t er_act_kafka_drained = {.name = "kafka.drained",
                                          .keys = drained_keys,
                                          .validate = validate_topics,
                                          .run = run_drained};
const er_action_t er_act_kafka_reset = {.name = "kafka.reset",
                                        .keys = reset_keys,
                                        .validate = validate_reset,
                                        .run = run_reset};
