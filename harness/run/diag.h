/* diag.h: diagnostics when a scenario fails, with a one-line verdict.
 *
 * During a scenario, kafka.produce records into the scenario session
 * (under "diag") what it produced: topic, key, count, where the first
 * messages went (partition, offset from the delivery reports) and, when
 * the environment's state.idempotency_key is set, the event's
 * idempotency key (the template expanded with the parsed message value
 * bound as "event") and whether that key existed in the environment's
 * Redis ("redis.url") just before the messages were sent (EXISTS +
 * PTTL; an error there records "unknown", it never fails the step). At
 * the first produce of a scenario the counters named by state.metrics
 * are sampled as a baseline.
 *
 * When the setup or the steps of a scenario fail (not when interrupted),
 * the runner calls er_diag_collect before the modules' scenario_end and
 * the teardown (which may clean the evidence). It gathers, within a
 * budget (every call has a deadline): whether the produced messages are
 * on their topics, each named consumer group's committed offsets and lag
 * (sampled twice ~1 s apart: moving or not), each recorded idempotency
 * key now (exists, PTTL) and before, the counters' deltas, the failing
 * step's detail, each service's state, health and last log lines; then
 * picks a verdict (er_diag_verdict) and writes diagnostics.txt and
 * diagnostics.json (atomically, secrets redacted) into a folder.
 *
 * Threads: recording may happen from parallel branches; the scenario
 * session is reached under one process-wide lock (a global on purpose:
 * sessions have no lock of their own and the record is created lazily).
 */
#ifndef ER_DIAG_H
#define ER_DIAG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/kafka.h"
#include "run/exec.h"

/* ---- recording (kafka.produce) ----------------------------------------- */

/* Before producing count messages whose value is value[0..len) (the
 * first message's; NULL for a null value) with key (may be NULL) to
 * topic: records the produce, computes the event's idempotency key and
 * checks whether it exists now (bounded by ~1 s and x's deadline).
 * Returns a handle for er_diag_produce_end, or -1 (nothing recorded: no
 * scenario session, or past the record's caps). Never fails the step. */
int er_diag_produce_begin(er_exec_t *x, const char *topic, const char *key,
                          const char *value, size_t len);
/* After producing: the stats (NULL when er_kafka_produce was not
 * reached) and the error text (NULL on success). */
void er_diag_produce_end(er_exec_t *x, int h,
                         const er_kafka_produce_stats_t *st, const char *error);

/* A topic a step reads (kafka.expect): checked for existence on
 * failure. At most 32 per scenario. */
void er_diag_note_topic(er_exec_t *x, const char *topic);

/* ---- the verdict (a pure function, unit-tested) ------------------------- */

typedef struct er_diag_ev {
  const char *missing_topic; /* a topic the scenario used that is missing */
  bool lag_known;            /* named groups sampled on produced topics */
  int64_t lag;               /* total lag at the second sample */
  bool lag_moving;           /* committed offsets moved between samples */
  bool metrics_known;        /* baseline and failure samples both there */
  bool has_exec_aborted, has_processed, has_duplicates;
  double exec_aborted, processed, duplicates; /* deltas */
  int keys;                                   /* idempotency keys recorded */
  int keys_before;    /* ... that existed before the produce */
  int keys_after;     /* ... that did not exist before and exist now */
  int keys_no_ttl;    /* ... that exist now with no TTL (PTTL -1) */
  bool no_row;        /* the failing step is a postgres expectation that saw
                         no row (or a single count of 0) */
  bool rows_short;    /* ... that saw fewer rows (or a smaller count) than
                         expected, but some */
  int keys_absent;    /* recorded keys that do not exist now */
  int64_t max_copies; /* most messages delivered for one recorded key */
  int64_t delivered;  /* messages this scenario's produces delivered */
} er_diag_ev_t;

/* Writes the verdict into out (always NUL-terminated) and returns 1 when
 * a known pattern fits, 0 otherwise (out = "no known pattern"). Rules in
 * order, first match wins: topic missing; EXEC aborted on every attempt
 * (+ consumer stalled); consumer stalled; stale key; key kept after a
 * failed attempt; dropped (consumed, nothing processed, no key); copies
 * of one event all processed (none skipped); key not under the expected
 * name; key without TTL. Events count as consumed when the lag is 0, or
 * when the service's counters (processed + duplicates) account for every
 * delivered message (its offset commit still pending); a lag that does
 * not move is a stall only when they do not. The duplicate rules need the
 * duplicate counter to have moved when it is known, and say "no row" or
 * "a row missing". */
int er_diag_verdict(const er_diag_ev_t *e, char *out, size_t outsz);

/* Reads a failure detail: 2 when it is a postgres expectation that saw
 * no row or one row holding 0 (a count); 1 when it saw fewer rows than
 * expected (its "why:" says "expected N, got M" with M < N); else 0. */
int er_diag_detail_rows_missing(const char *detail);

/* ---- collection on failure --------------------------------------------- */

typedef struct er_diag_in {
  const json_t *env;      /* resolved environment */
  er_session_t *shared;   /* kafka target, "services" */
  er_session_t *scenario; /* what was recorded */
  const char *detail;     /* the failure detail so far */
  const char *failed_step;
  const char *dir;   /* folder for the files (made if missing) */
  int64_t budget_ms; /* total time allowed */
} er_diag_in_t;

/* Gathers, writes in->dir/diagnostics.{txt,json} and returns the compact
 * section for the failure text, starting with "verdict: ..." (caller
 * frees; redacted), or NULL when memory ran out. */
char *er_diag_collect(const er_diag_in_t *in);

#endif
