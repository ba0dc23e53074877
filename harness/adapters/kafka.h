/* kafka.h: the Kafka adapter (librdkafka). Knows nothing of scenarios.
 *
 * A target (er_kafka_t) is either an embedded broker (librdkafka's mock
 * cluster, running in this process) or a real cluster reached through a
 * bootstrap address plus librdkafka properties (SASL, SSL) passed through.
 * Property values whose name looks secret (password, secret, token, jaas,
 * ssl.key.pem, sasl.oauthbearer.config) are never printed: every error
 * text and log line from here has them replaced by "***".
 *
 * librdkafka's own log goes into a capped buffer per target, never to
 * stderr. Every call that talks to a broker takes a deadline (er_now_ms()
 * clock) and never waits past it.
 *
 * Metadata is always asked for all topics: a request naming a topic makes
 * the embedded broker (Metadata <= v2) create it, and checking for a topic
 * must never create it.
 *
 * Threads: a target may be used from several threads (each call makes the
 * handles it needs, except the shared metadata handle, which librdkafka
 * makes safe). A producer or a reader belongs to one thread.
 */
#ifndef ER_KAFKA_H
#define ER_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct er_kafka er_kafka_t;

/* ---- targets ------------------------------------------------------------ */

/* Starts an embedded broker with `brokers` brokers (1..16) listening on
 * free loopback ports. NULL with err (ER_E_ENV) on failure. */
er_kafka_t *er_kafka_embedded(int brokers, er_err_t *err);
/* A real cluster: props are name/value pairs (props[2*i], props[2*i+1]),
 * nprops pairs, applied to every handle eventrig makes (after its own
 * defaults, so they may override them). Does not connect yet. NULL with
 * err (ER_E_INPUT: unknown property or bad value, secret values not
 * shown). */
er_kafka_t *er_kafka_connect(const char *bootstrap, const char *const *props,
                             size_t nprops, er_err_t *err);
/* Stops the embedded broker (if any) and the target's handles, and frees
 * it; producers and readers still alive keep what their callbacks need
 * until they are freed themselves (they cannot reach the broker any
 * more). NULL is fine. */
void er_kafka_free(er_kafka_t *k);

/* Borrowed; "127.0.0.1:port,..." for the embedded broker. */
const char *er_kafka_bootstrap(const er_kafka_t *k);
bool er_kafka_is_embedded(const er_kafka_t *k);
/* For tests: the embedded broker's rd_kafka_mock_cluster_t (to inject
 * errors with rdkafka_mock.h), or NULL for a real cluster. Borrowed. */
void *er_kafka_mock_cluster(er_kafka_t *k);
/* Replaces secret values in s (NUL-terminated, buffer of size cap) with
 * "***". Secrets shorter than 4 bytes are not searched for. */
void er_kafka_redact(const er_kafka_t *k, char *s, size_t cap);
/* Appends the last librdkafka log lines (redacted, at most ~64 KB kept)
 * to out. */
void er_kafka_log_copy(er_kafka_t *k, er_buf_t *out);

/* ---- topics ------------------------------------------------------------- */

/* Partition count of topic: 1 and *nparts when it exists, 0 when it does
 * not, -1 on error (ER_E_ENV: broker unreachable before the deadline). */
int er_kafka_topic_partitions(er_kafka_t *k, const char *topic, int *nparts,
                              int64_t deadline_ms, er_err_t *err);
/* Which of names[0..n) do not exist: appends "a, b" to missing and
 * returns how many (0 = all there), or -1 on error. One metadata
 * request. */
int er_kafka_topics_missing(er_kafka_t *k, const char *const *names, size_t n,
                            er_buf_t *missing, int64_t deadline_ms,
                            er_err_t *err);
/* Creates a topic: the embedded broker's own call, or the Admin API
 * (CreateTopics) on a real cluster; replication -1 = the broker's
 * default. An existing topic is not an error. */
int er_kafka_create_topic(er_kafka_t *k, const char *topic, int partitions,
                          int replication, int64_t deadline_ms, er_err_t *err);

/* ---- offsets ------------------------------------------------------------ */

/* Low and high watermarks of every partition of topic. *n = 0 (and NULL
 * arrays) when the topic does not exist. lo may be NULL. Caller frees
 * *lo and *hi. */
int er_kafka_watermarks(er_kafka_t *k, const char *topic, int64_t **lo,
                        int64_t **hi, int *n, int64_t deadline_ms,
                        er_err_t *err);
/* Committed offsets of group for partitions 0..n-1 of topic into out[]
 * (-1 = nothing committed). Uses a handle with that group.id that never
 * subscribes (OffsetFetch); works on the embedded broker and on real
 * clusters. */
int er_kafka_committed(er_kafka_t *k, const char *group, const char *topic,
                       int n, int64_t *out, int64_t deadline_ms, er_err_t *err);
/* Where a consumer group stands on one topic. */
typedef struct er_kafka_lag {
  int n;              /* partitions (0: the topic does not exist) */
  int64_t *committed; /* per partition; -1 = nothing committed */
  int64_t *lo, *end;  /* low and high watermarks per partition */
  int64_t total;      /* sum of end - committed (end - lo when nothing is
                         committed) */
} er_kafka_lag_t;
/* Fills *out (caller frees with er_kafka_lag_free): watermarks plus the
 * group's committed offsets. */
int er_kafka_group_lag(er_kafka_t *k, const char *group, const char *topic,
                       er_kafka_lag_t *out, int64_t deadline_ms, er_err_t *err);
void er_kafka_lag_free(er_kafka_lag_t *l);
/* Commits, for every partition of the given topics, the end offset (high
 * watermark; to_end) or the earliest retained offset (low watermark) as
 * group's committed offset.
 * Real cluster: refused (ER_E_FAIL, "group 'g' has N active member(s)")
 * when DescribeConsumerGroups shows members; else AlterConsumerGroupOffsets.
 * Embedded broker: a commit from a handle that is not a member; the
 * embedded broker accepts that only for a group that has never had
 * members since it started, otherwise this is refused (ER_E_FAIL) with a
 * message saying so (it cannot tell whether members are still active). */
int er_kafka_reset_group(er_kafka_t *k, const char *group,
                         const char *const *topics, size_t ntopics, bool to_end,
                         int64_t deadline_ms, er_err_t *err);

/* ---- producing ---------------------------------------------------------- */

typedef struct er_kafka_producer er_kafka_producer_t;

enum {
  ER_KAFKA_PARTITION_KEY = -1,    /* by key (murmur2, as Java clients) */
  ER_KAFKA_PARTITION_SPREAD = -2, /* round-robin over all partitions */
};

typedef struct er_kafka_header {
  const char *name;
  const void *value; /* NULL = null header value */
  size_t len;
} er_kafka_header_t;

typedef struct er_kafka_msg {
  const void *key; /* NULL = no key */
  size_t key_len;
  const void *value; /* NULL = null value (tombstone) */
  size_t value_len;
  const er_kafka_header_t *headers;
  size_t nheaders;
  int32_t partition; /* >= 0, or ER_KAFKA_PARTITION_* */
} er_kafka_msg_t;

/* Fills message i (0-based). Everything it points to must stay valid
 * until the next call (the adapter copies). Returns 0, or -1 with err set
 * to stop producing. */
typedef int (*er_kafka_next_fn)(void *ud, size_t i, er_kafka_msg_t *m,
                                er_err_t *err);

typedef struct er_kafka_produce_opts {
  size_t count;        /* messages to produce */
  size_t inflight;     /* at most this many without a delivery report
                          (0 = 100000) */
  double rate;         /* messages per second, 0 = as fast as possible */
  int64_t deadline_ms; /* every report must be in by then; no message is
                          queued after it */
  /* called now and then (at most every 1% of count) from the producing
   * thread; may be NULL */
  void (*progress)(void *ud, size_t reported, size_t total);
  void *progress_ud;
} er_kafka_produce_opts_t;

typedef struct er_kafka_produce_stats {
  size_t produced;  /* handed to librdkafka */
  size_t delivered; /* acknowledged by the broker */
  size_t failed;    /* failed delivery reports, incl. the messages purged
                       at the deadline or on an interrupt */
  char first_error[256];
  int64_t elapsed_us;
  /* where the first ER_KAFKA_DR_KEEP delivered messages went (in report
   * order), for diagnostics; ndr of them filled */
#define ER_KAFKA_DR_KEEP 8
  struct {
    int32_t partition;
    int64_t offset;
  } dr[ER_KAFKA_DR_KEEP];
  size_t ndr;
} er_kafka_produce_stats_t;

/* A producer for one thread (linger 5 ms, batches of 10000, no
 * compression, acks=all, at most 64 MB queued in librdkafka). */
er_kafka_producer_t *er_kafka_producer_new(er_kafka_t *k, er_err_t *err);
void er_kafka_producer_free(er_kafka_producer_t *p);

/* Produces o->count messages to topic and waits for every delivery
 * report. The deadline and the interrupt flag (er_interrupted(), util.h)
 * are checked before every message and in every wait: when either stops
 * it, nothing more is queued and what librdkafka still holds of this call
 * is purged (rd_kafka_purge), so it returns within milliseconds of the
 * deadline or the signal. Returns 0 when all were delivered; -1 with err
 * otherwise (ER_E_FAIL "N of M deliveries failed; first error: ...",
 * "deadline reached after N of M message(s) to 't' were queued: ...",
 * "interrupted after ..."; ER_E_ENV when the topic does not exist and
 * cannot be made, ER_E_INPUT for a partition out of range). st is filled
 * either way. */
int er_kafka_produce(er_kafka_producer_t *p, const char *topic,
                     er_kafka_next_fn next, void *ud,
                     const er_kafka_produce_opts_t *o,
                     er_kafka_produce_stats_t *st, er_err_t *err);

/* ---- reading ------------------------------------------------------------ */

/* A consumer that is assigned partitions (no group membership, never
 * commits) and reads a topic from given offsets on. */
typedef struct er_kafka_reader er_kafka_reader_t;

typedef struct er_kafka_record {
  int32_t partition;
  int64_t offset;
  int64_t timestamp_ms; /* -1 when not available */
  const char *key;      /* NULL = no key; not NUL-terminated */
  size_t key_len;
  const char *value; /* NULL = null value; not NUL-terminated */
  size_t value_len;
  void *priv_; /* the adapter's; do not touch */
} er_kafka_record_t;

/* start[i] is the first offset to read of partition i (i < nstart);
 * partitions without one (or a topic that appears later) start at the
 * beginning. The topic need not exist yet: it is looked for again while
 * reading. */
er_kafka_reader_t *er_kafka_reader_new(er_kafka_t *k, const char *topic,
                                       const int64_t *start, int nstart,
                                       er_err_t *err);
/* Assigns the reader its topic's partitions now, waiting for the broker
 * until deadline_ms, when the topic exists (else, as without this call,
 * er_kafka_reader_next looks for it again every 250 ms). For readers read
 * in turn with short deadlines. 0, or -1 with err. */
int er_kafka_reader_start(er_kafka_reader_t *r, int64_t deadline_ms,
                          er_err_t *err);
/* Next record: 1 (rec valid until the next call or free), 0 when the
 * deadline passed without one, -1 on error. */
int er_kafka_reader_next(er_kafka_reader_t *r, int64_t deadline_ms,
                         er_kafka_record_t *rec, er_err_t *err);
/* True when every assigned partition has reported its end since its last
 * record (nothing more is there right now). */
bool er_kafka_reader_at_end(const er_kafka_reader_t *r);
void er_kafka_reader_free(er_kafka_reader_t *r);

/* Headers of a record: count, and the i-th (name/value borrowed from the
 * record; value NULL for a null header). */
size_t er_kafka_record_header_count(const er_kafka_record_t *rec);
int er_kafka_record_header(const er_kafka_record_t *rec, size_t i,
                           const char **name, const void **value, size_t *len);
/* The last header with that name: 0 and value/len, or -1 if absent. */
int er_kafka_record_header_get(const er_kafka_record_t *rec, const char *name,
                               const void **value, size_t *len);

/* Owned copy of records read by er_kafka_read_to_end. */
typedef struct er_kafka_copy {
  int32_t partition;
  int64_t offset;
  char *key; /* NUL-terminated copies; NULL when absent */
  size_t key_len;
  char *value;
  size_t value_len;
  char **headers; /* name, value, name, value, ... (value NULL if null) */
  size_t nheaders;
} er_kafka_copy_t;

typedef struct er_kafka_copies {
  er_kafka_copy_t *v;
  size_t n;
  size_t dropped; /* records read past max_records / max_bytes */
} er_kafka_copies_t;

/* Reads topic from start offsets (as er_kafka_reader_new) up to the high
 * watermarks measured at the call, keeping at most max_records records and
 * max_bytes of keys+values+headers. 0, or -1 on error or when the end was
 * not reached by the deadline (what was read is kept in out). Free out
 * with er_kafka_copies_free. */
int er_kafka_read_to_end(er_kafka_t *k, const char *topic, const int64_t *start,
                         int nstart, size_t max_records, size_t max_bytes,
                         er_kafka_copies_t *out, int64_t deadline_ms,
                         er_err_t *err);
void er_kafka_copies_free(er_kafka_copies_t *c);

#endif
