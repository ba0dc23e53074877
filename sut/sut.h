/* sut.h: the reference system under test (see ../shared/sut-contract.md):
 * configuration, metrics, logging and small helpers shared by its modules.
 *
 * Modules: main.c (configuration, start, shutdown), http.c (HTTP API),
 * consumer.c (Kafka consumer and the processing of one event), rconn.c
 * (reconnecting Redis connection), pgconn.c (reconnecting Postgres
 * connection, schema), pyjson.c (Python-compatible JSON and the event hash),
 * util.c (this header's helpers).
 *
 * The service is a separate program: it shares no code with the harness.
 */
#ifndef SUT_H
#define SUT_H

#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The deliberate defects of the contract's mutant table (SUT_BUG). */
typedef enum {
  BUG_NONE = 0,
  BUG_SPOP_OUTSIDE_MULTI, /* SPOP after WATCH, before MULTI */
  BUG_NO_IDEMPOTENCY,     /* no SET NX guard */
  BUG_ENVELOPE_HASH,      /* hash the whole envelope, not data */
  BUG_FAIL_CLOSED,        /* guard Redis down: drop the event */
  BUG_NO_WATCH,           /* assign without WATCH/MULTI/EXEC */
  BUG_NO_RETRY,           /* EXEC nil treated as "no slots" */
  BUG_READY_UNGUARDED,    /* ready event without the guarded UPDATE */
  BUG_KEEP_KEY_ON_ERROR,  /* idempotency key kept on infrastructure error */
  BUG_NO_TTL,             /* idempotency key without TTL */
  /* round 2: the consumer's side */
  BUG_COMMIT_BEFORE_PROCESS, /* offset committed before steps 1-6 */
  BUG_NO_COMMIT,             /* offsets never committed */
  BUG_POISON_STALL,          /* a malformed event retried forever */
  BUG_KEY_COLLISION,         /* idempotency key without the event type */
  BUG_PG_FAIL_DROP,          /* essay_states INSERT failure: commit, go on */
  BUG_READY_EARLY,           /* ready event with one essay still missing */
  BUG_EXCESS_SILENT,         /* excess recorded, its event not published */
} sut_bug_t;

/* Returns the bug for a SUT_BUG value ("" or NULL = BUG_NONE), or -1. */
int sut_bug_parse(const char *name);
const char *sut_bug_name(sut_bug_t bug);

/* Configuration from the environment. The strings are borrowed from the
 * process environment (they live as long as the process). */
typedef struct sut_config {
  const char *kafka_bootstrap;
  const char *redis_url;       /* main Redis: slots, assignments */
  const char *guard_redis_url; /* idempotency guard (step 1) only */
  const char *pg_dsn;
  int http_port;
  const char *group_id;
  const char *key_prefix;
  const char *instance;
  const char *kafka_config; /* "k=v,k=v", may be "" */
  sut_bug_t bug;
} sut_config_t;

/* The six counters of GET /metrics. Written by the consumer thread, read
 * by HTTP threads, hence atomic. */
typedef struct sut_metrics {
  atomic_ullong events_processed; /* events that went through steps 2-7 */
  atomic_ullong duplicates_skipped;
  atomic_ullong watch_conflicts; /* EXEC returned nil */
  atomic_ullong redis_failopen;  /* processed with the guard bypassed */
  atomic_ullong excess_content;  /* excess_content rows recorded */
  atomic_ullong malformed;       /* malformed events sent to the DLQ */
} sut_metrics_t;

/* Set by the SIGTERM/SIGINT handler (main.c), polled by every loop. A
 * global because a signal handler can reach nothing else. */
extern volatile sig_atomic_t sut_stop;

/* Logging: one line to stderr, "2026-01-01T10:00:00.123Z els-1 message".
 * sut_log_init() stores the instance name once at start (read-only
 * afterwards, so shared by all threads without locking). */
void sut_log_init(const char *instance);
void sut_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic milliseconds. */
int64_t sut_now_ms(void);
/* Wall clock, RFC 3339 UTC with milliseconds (fits 32 bytes). */
void sut_rfc3339_now(char out[32]);
/* Sleeps ms milliseconds in short slices; returns early once sut_stop is
 * set. */
void sut_sleep_ms(int64_t ms);
/* A random (version 4) UUID, lowercase, 36 characters + NUL. */
void sut_uuid4(char out[37]);
/* A uniformly random integer in [0, n) (n > 0), from libcrypto. */
unsigned sut_rand_below(unsigned n);

/* Growable string with a hard cap (anything captured from outside is
 * capped). Append functions return 0, or -1 (and mark the buffer failed)
 * when memory runs out or the cap is reached; once failed, it stays failed.
 * The owner frees with sbuf_free(). */
typedef struct sbuf {
  char *data; /* NUL-terminated when len > 0 */
  size_t len;
  size_t alloc;
  size_t cap;
  bool failed;
} sbuf_t;

#define SBUF_INIT(capbytes)                                                    \
  { NULL, 0, 0, (capbytes), false }
int sbuf_append(sbuf_t *b, const void *p, size_t n);
int sbuf_puts(sbuf_t *b, const char *s);
int sbuf_printf(sbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *sbuf_cstr(const sbuf_t *b); /* "" when empty */
void sbuf_free(sbuf_t *b);

#endif
