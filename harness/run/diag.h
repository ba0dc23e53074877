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
 * are sampled as a baseline, and so are the end offsets of the topics
 * named by state.assignments and state.completion (the service's output
 * events read back on failure).
 *
 * Other steps record what they did that a verdict may need: service.kill
 * and service.stop/restart (er_diag_note_service), faults applied
 * (er_diag_note_fault), a postgres expectation that passed having seen
 * rows (er_diag_note_rows), a kafka.expect that failed
 * (er_diag_note_expect).
 *
 * When the setup or the steps of a scenario fail (not when interrupted),
 * the runner calls er_diag_collect before the modules' scenario_end and
 * the teardown (which may clean the evidence). It gathers, within a
 * budget (every call has a deadline): whether the produced messages are
 * on their topics, each named consumer group's committed offsets and lag
 * (sampled twice ~1 s apart: moving or not), each recorded idempotency
 * key now (exists, PTTL) and before, keys with the same event hash
 * under other names (SCAN), the counters' deltas (and whether they moved
 * over the lag interval), a partition stalled behind one message, the
 * service's assignment and completion events since the scenario's first
 * produce, the failing step's detail, each service's state, health and
 * last log lines; then
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

/* A service step acted on name: op "kill", "stop" or "restart" (a kill
 * is evidence for the crash verdict). At most 8 per scenario. */
void er_diag_note_service(er_exec_t *x, const char *op, const char *name);
/* A fault applied to a proxy ("down", "latency", ...; heal is not
 * noted). At most 8 per scenario. */
void er_diag_note_fault(er_exec_t *x, const char *proxy, const char *action);
/* A postgres expectation passed and saw rows (more than one row, or one
 * row that is not all zeros such as a count of 0): the state it queries
 * exists. query is kept (the last one). */
void er_diag_note_rows(er_exec_t *x, const char *query);
/* redis.contend wrote that many times (summed over the scenario). */
void er_diag_note_contend(er_exec_t *x, long long writes);
/* A kafka.expect on topic failed: matched of seen messages after the
 * scenario's start offsets; exceeded when too many matched. */
void er_diag_note_expect(er_exec_t *x, const char *topic, long matched,
                         long seen, bool exceeded);

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
  /* the consumer's side */
  bool never_committed; /* the lagging group has no committed offset on any
                           partition of the topic */
  bool counters_known2; /* processed + duplicates sampled at both ends of
                           the lag interval */
  bool counters_moving; /* ... and they changed */
  bool stuck;           /* a partition whose committed offset did not move
                           sits on a message this scenario produced, with
                           later messages waiting behind it */
  int stuck_partition;
  int64_t stuck_offset, stuck_waiting;
  int lost_max;         /* most absent keys of produced events on one
                           partition */
  int kills;            /* service.kill steps in this scenario */
  const char *killed;   /* the first service killed */
  const char *fault;    /* the first fault applied, "'pg' down" */
  int slots_twice;      /* assignment ids given to two or more items */
  int items_unassigned; /* produced items without an assignment event */
  int completion_max;   /* most completion events for one key */
  const char *completion_topic;
  long completion_items;     /* items of the first incomplete completion */
  long completion_expected;  /* ... what it should have had (0: none) */
  const char *colliding_key; /* a key holding the event hash of an absent
                                expected key under another name, the hash
                                written as <hash> */
  const char *expect_topic;  /* the failing kafka.expect's topic */
  long expect_matched, expect_seen;
  bool expect_exceeded;
  bool rows_seen;           /* an earlier postgres expectation saw rows */
  long long contend_writes; /* redis.contend writes in this scenario */
} er_diag_ev_t;

/* Writes the verdict into out (always NUL-terminated) and returns 1 when
 * a known pattern fits, 0 otherwise (out = "no known pattern"). Rules in
 * order, first match wins: topic missing; EXEC aborted on every attempt
 * (+ consumer stalled); no EXEC aborted while redis.contend wrote (no
 * WATCH); offsets not committed (lag not moving, no
 * committed offset at all though the service processed events, its
 * counters idle); a
 * partition stalled behind one event (while the service processes
 * others); consumer stalled; completion published twice; completion
 * published incomplete; a slot assigned twice; an event lost in a crash
 * (a service killed, at most one event without key per partition); stale
 * key; key kept after a failed attempt; colliding key (skipped, its own
 * key absent, the hash under another name); committed after a failed
 * attempt (key kept, neither processed nor skipped); dropped (consumed,
 * not processed, no key); copies of one event all processed (none
 * skipped); key not under the expected name (naming the colliding name
 * when there is one); an expected event missing from its topic while a
 * postgres check saw the row; key without TTL. Events count as consumed
 * when the lag is 0, or when the service's counters (processed +
 * duplicates) account for every delivered message (its offset commit
 * still pending); a lag that does not move is a stall only when they do
 * not. The duplicate rules need the duplicate counter to have moved when
 * it is known, and say "no row" or "a row missing". Verdicts carry no
 * ids and no offsets (those are in the evidence), so the same failure
 * gives the same line on every run. */
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
