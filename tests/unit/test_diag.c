/* test_diag.c: the verdict rules of failure diagnostics (diag.h), a pure
 * function over the evidence; and the "no row" reading of a postgres
 * failure detail. */
#include <string.h>

#include "run/diag.h"
#include "tap.h"

static const char *verdict(const er_diag_ev_t *e, int *fit) {
  static char out[512];
  *fit = er_diag_verdict(e, out, sizeof out);
  return out;
}

/* a consumed event with no row, counters known */
static er_diag_ev_t consumed_no_row(void) {
  er_diag_ev_t e;
  memset(&e, 0, sizeof e);
  e.lag_known = true;
  e.lag = 0;
  e.metrics_known = e.has_exec_aborted = e.has_processed = e.has_duplicates =
      true;
  e.keys = 1;
  e.no_row = true;
  return e;
}

int main(void) {
  er_diag_ev_t e;
  int fit;

  /* nothing known: no verdict */
  memset(&e, 0, sizeof e);
  T_STREQ(verdict(&e, &fit), "no known pattern", "empty evidence");
  T_OK(fit == 0, "empty evidence: 0");

  /* topic missing wins over everything */
  e = consumed_no_row();
  e.missing_topic = "orders.v1";
  e.keys_before = 1;
  e.duplicates = 1;
  T_STREQ(verdict(&e, &fit), "topic 'orders.v1' missing", "topic missing");
  T_OK(fit == 1, "topic missing: 1");

  /* EXEC aborted, nothing processed, consumer stuck */
  memset(&e, 0, sizeof e);
  e.metrics_known = e.has_exec_aborted = e.has_processed = true;
  e.exec_aborted = 150;
  e.processed = 0;
  e.lag_known = true;
  e.lag = 3;
  e.lag_moving = false;
  T_STREQ(verdict(&e, &fit),
          "EXEC aborted on every attempt (watch conflicts +150, no event "
          "processed); on the topic, lag 3 not moving: consumer stalled",
          "EXEC aborted + stalled");
  e.lag_moving = true;
  T_STREQ(verdict(&e, &fit),
          "EXEC aborted on every attempt (watch conflicts +150, no event "
          "processed)",
          "EXEC aborted, lag moving: no stall clause");

  /* EXEC aborted as often as events were processed, no row */
  e = consumed_no_row();
  e.exec_aborted = 3;
  e.processed = 3;
  T_STREQ(verdict(&e, &fit),
          "EXEC aborted on every attempt (watch conflicts +3 for 3 event(s) "
          "processed, no row written)",
          "EXEC aborted for each processed event, no row");
  /* fewer conflicts than events with rows present: not that */
  e.no_row = false;
  e.exec_aborted = 2;
  T_STREQ(verdict(&e, &fit), "no known pattern",
          "some conflicts, rows there: no verdict (conflicts are normal)");

  /* stalled consumer without conflicts */
  memset(&e, 0, sizeof e);
  e.lag_known = true;
  e.lag = 7;
  T_STREQ(verdict(&e, &fit), "on the topic, lag 7 not moving: consumer stalled",
          "stalled");
  e.lag_moving = true;
  T_STREQ(verdict(&e, &fit), "no known pattern", "lag moving: not stalled");

  /* stale key */
  e = consumed_no_row();
  e.keys_before = 1;
  e.duplicates = 1;
  T_STREQ(verdict(&e, &fit),
          "consumed (lag 0) but no row: skipped as a duplicate, its "
          "idempotency key existed before this scenario produced the event "
          "(stale key)",
          "stale key");
  e.duplicates = 0;
  T_STREQ(verdict(&e, &fit), "no known pattern",
          "stale key but no duplicate counted: no verdict");
  e.has_duplicates = false;
  e.metrics_known = false;
  T_OK(strstr(verdict(&e, &fit), "(stale key)") != NULL,
       "stale key without counters: the key alone decides");
  e = consumed_no_row();
  e.keys_before = 1;
  e.duplicates = 1;
  e.lag = 2;
  e.lag_moving = true;
  T_STREQ(verdict(&e, &fit), "no known pattern",
          "stale key but not consumed yet (lag 2, moving): no verdict");

  /* the service counted the event (skipped) but has not committed its
   * offset yet: a lag that does not move is no stall then */
  e = consumed_no_row();
  e.keys_before = 1;
  e.duplicates = 1;
  e.delivered = 1;
  e.lag = 1;
  e.lag_moving = false;
  T_STREQ(verdict(&e, &fit),
          "consumed (the service counted every event; its offset commit is "
          "pending) but no row: skipped as a duplicate, its idempotency key "
          "existed before this scenario produced the event (stale key)",
          "commit pending, counters account for the event: stale key, not "
          "stalled");
  e.duplicates = 0;
  e.keys_before = 0;
  T_STREQ(verdict(&e, &fit), "on the topic, lag 1 not moving: consumer stalled",
          "nothing counted for the delivered event: stalled");

  /* key kept after a failed attempt */
  e = consumed_no_row();
  e.keys_after = 1;
  e.duplicates = 2;
  T_STREQ(verdict(&e, &fit),
          "consumed (lag 0) but no row: skipped as a duplicate, its "
          "idempotency key was written after this scenario produced the "
          "event and kept (a failed attempt kept it)",
          "kept key");
  e.no_row = false;
  T_STREQ(verdict(&e, &fit), "no known pattern", "kept key but rows there");

  /* no TTL */
  e = consumed_no_row();
  e.no_row = false;
  e.keys_after = 1;
  e.keys_no_ttl = 1;
  T_STREQ(verdict(&e, &fit), "idempotency key has no TTL: it never expires",
          "no TTL");
  T_OK(fit == 1, "no TTL: 1");

  /* a row missing (one of two processed) */
  e = consumed_no_row();
  e.no_row = false;
  e.rows_short = true;
  e.keys_after = 2;
  e.duplicates = 1;
  T_STREQ(verdict(&e, &fit),
          "consumed (lag 0) but a row missing: skipped as a duplicate, its "
          "idempotency key was written after this scenario produced the "
          "event and kept (a failed attempt kept it)",
          "kept key, one row of two");

  /* dropped: consumed, nothing processed, no key */
  e = consumed_no_row();
  e.keys_absent = 1;
  T_STREQ(verdict(&e, &fit),
          "consumed (lag 0) but no row, no event processed and no "
          "idempotency key: the event was dropped",
          "dropped");
  e.processed = 1;
  T_OK(strstr(verdict(&e, &fit), "dropped") == NULL,
       "one processed: not dropped");

  /* copies processed, none skipped */
  e = consumed_no_row();
  e.no_row = false;
  e.max_copies = 300;
  e.processed = 300;
  e.keys_absent = 1;
  T_STREQ(verdict(&e, &fit),
          "300 copies of one event: 300 processed, none skipped as a "
          "duplicate: the idempotency guard did not hold",
          "guard did not hold");
  e.duplicates = 299;
  e.processed = 1;
  T_STREQ(verdict(&e, &fit),
          "processed (+1) but no idempotency key under the expected name: "
          "the service writes another key",
          "duplicates skipped, but the key is elsewhere");
  e.keys_absent = 0;
  T_STREQ(verdict(&e, &fit), "no known pattern",
          "duplicates skipped, key there: no verdict");

  /* a forced race without any WATCH conflict */
  e = consumed_no_row();
  e.no_row = false;
  e.processed = 24;
  e.contend_writes = 5000;
  T_STREQ(verdict(&e, &fit),
          "no EXEC aborted (watch conflicts +0) while redis.contend kept "
          "writing to the keys the service works on: its transaction does not "
          "WATCH them (no optimistic locking)",
          "contended, no conflict");
  e.exec_aborted = 3;
  T_OK(strstr(verdict(&e, &fit), "WATCH them") == NULL,
       "conflicts counted: not this");

  /* ---- the consumer's side ---- */

  /* offsets never committed: lag not moving, the service idle */
  memset(&e, 0, sizeof e);
  e.lag_known = true;
  e.lag = 18;
  e.never_committed = true;
  e.metrics_known = e.has_processed = e.has_duplicates = true;
  e.processed = 18;
  e.counters_known2 = true;
  T_STREQ(verdict(&e, &fit),
          "lag 18 never reaches 0 while the service is idle: it processed "
          "events but the group has no committed offset, its offsets are not "
          "committed",
          "no commit");
  e.counters_moving = true;
  T_OK(strstr(verdict(&e, &fit), "not committed") == NULL,
       "counters still moving: busy catching up, not this");
  e.counters_moving = false;
  e.never_committed = false;
  T_OK(strstr(verdict(&e, &fit), "not committed") == NULL,
       "some offsets committed: not this");
  e.never_committed = true;
  e.processed = 0;
  e.duplicates = 1;
  e.delivered = 1;
  T_OK(strstr(verdict(&e, &fit), "not committed") == NULL,
       "nothing processed, one skipped (a young group whose first commit "
       "failed in a rebalance): not this");

  /* a partition stalled behind one event */
  memset(&e, 0, sizeof e);
  e.lag_known = true;
  e.lag = 4;
  e.stuck = true;
  e.stuck_waiting = 4;
  e.metrics_known = e.has_processed = e.has_duplicates = true;
  e.processed = 1;
  e.delivered = 6;
  T_STREQ(verdict(&e, &fit),
          "a partition stalled behind one event: its committed offset stays "
          "on a message this scenario produced while 4 later message(s) wait "
          "and the service processes other events",
          "poison stall");
  e.processed = 0;
  T_STREQ(verdict(&e, &fit), "on the topic, lag 4 not moving: consumer stalled",
          "nothing processed at all (an outage): a plain stall");

  /* completion published twice, or early */
  e = consumed_no_row();
  e.no_row = false;
  e.completion_topic = "batch.essays.ready.v1";
  e.completion_max = 2;
  T_STREQ(verdict(&e, &fit),
          "batch.essays.ready.v1 published 2 times for one key: readiness is "
          "not guarded (published more than once)",
          "completion twice");
  e.completion_max = 1;
  e.completion_items = 2;
  e.completion_expected = 3;
  T_STREQ(verdict(&e, &fit),
          "batch.essays.ready.v1 published with 2 of 3 item(s): readiness "
          "published before the count was complete",
          "completion early");
  e.completion_items = 3;
  T_STREQ(verdict(&e, &fit), "no known pattern", "complete: nothing");

  /* a slot assigned twice */
  e = consumed_no_row();
  e.no_row = false;
  e.rows_short = true;
  e.slots_twice = 1;
  T_STREQ(verdict(&e, &fit),
          "a slot assigned twice: one assignment id given to two different "
          "items, so a row is missing: the assignment is not atomic",
          "slot twice");
  T_OK(fit == 1, "slot twice: 1");

  /* lost in a crash: a kill, one event per partition without key or row */
  e = consumed_no_row();
  e.no_row = false;
  e.rows_short = true;
  e.keys = 18;
  e.keys_after = 17;
  e.keys_absent = 1;
  e.lost_max = 1;
  e.kills = 1;
  e.killed = "sut-1";
  e.duplicates = 9; /* redeliveries after the rebalance */
  T_STREQ(verdict(&e, &fit),
          "consumed (lag 0) but a row missing after a service instance was "
          "killed: 1 event(s) with neither row nor idempotency key, at most "
          "one per partition: committed before it was processed, lost in the "
          "crash",
          "crash");
  e.kills = 0;
  T_OK(strstr(verdict(&e, &fit), "crash") == NULL, "no kill: not a crash");
  /* many per partition: dropped, not a crash */
  e.kills = 1;
  e.keys_absent = 15;
  e.keys_after = 3;
  e.lost_max = 5;
  e.processed = 3;
  e.duplicates = 0;
  e.delivered = 18;
  T_STREQ(verdict(&e, &fit),
          "consumed (lag 0) but a row missing: 15 event(s) with neither row "
          "nor idempotency key, never processed: dropped",
          "five lost on a partition: dropped, not the crash");

  /* colliding key */
  e = consumed_no_row();
  e.keys_absent = 1;
  e.duplicates = 1;
  e.colliding_key = "els:idempotency:v2:<hash>";
  T_STREQ(verdict(&e, &fit),
          "consumed (lag 0) but no row: skipped as a duplicate though its own "
          "idempotency key does not exist; the same event hash is under "
          "another name (els:idempotency:v2:<hash>): the keys collide",
          "collision");
  e.duplicates = 0;
  T_OK(strstr(verdict(&e, &fit), "collide") == NULL,
       "not skipped: no collision verdict");
  /* processed, key written under the colliding name */
  e = consumed_no_row();
  e.no_row = false;
  e.keys_absent = 1;
  e.processed = 1;
  e.colliding_key = "els:idempotency:v2:<hash>";
  T_STREQ(verdict(&e, &fit),
          "processed (+1) but no idempotency key under the expected name; the "
          "same event hash is under another name (els:idempotency:v2:<hash>): "
          "the service writes another key, one that collides",
          "key under the colliding name");

  /* committed after a failed attempt */
  e = consumed_no_row();
  e.keys_after = 1;
  e.delivered = 1;
  e.fault = "proxy 'pg' down";
  T_STREQ(verdict(&e, &fit),
          "consumed (lag 0) but no row, neither processed nor skipped as a "
          "duplicate, its idempotency key written and kept (while proxy 'pg' "
          "down): committed after a failed attempt instead of retried (the "
          "event was dropped)",
          "committed after a failure");
  e.processed = 1;
  T_STREQ(verdict(&e, &fit), "no known pattern",
          "processed: not dropped (the row is missing for another reason)");

  /* an expected event missing while its row exists */
  e = consumed_no_row();
  e.no_row = false;
  e.expect_topic = "essay.excess.content.v1";
  e.expect_matched = 0;
  e.rows_seen = true;
  T_STREQ(verdict(&e, &fit),
          "an expected event is missing: no message on "
          "'essay.excess.content.v1' matched (none at all since the scenario "
          "started) while the row exists (an earlier postgres check saw it): "
          "the state is written but the event is not published",
          "event missing");
  e.rows_seen = false;
  T_STREQ(verdict(&e, &fit), "no known pattern",
          "no postgres check saw a row: nothing said");
  e.rows_seen = true;
  e.expect_exceeded = true;
  T_STREQ(verdict(&e, &fit), "no known pattern",
          "too many, not missing: nothing said");

  /* reading the postgres detail */
  T_OK(er_diag_detail_rows_missing(
           "postgres did not hold within 30s\nlast seen: postgres: rows do "
           "not match\n  query: SELECT a FROM t\n  expected count: 3\n  why: "
           "count: expected 3, got 0\n  seen 0 row(s) (columns: a)") == 2,
       "no row: 0 rows");
  T_OK(er_diag_detail_rows_missing(
           "postgres: rows do not match\n  query: SELECT count(*) FROM t\n"
           "  why: row 0, column count: expected 1, got 0\n"
           "  seen 1 row(s) (columns: count):\n    [0]") == 2,
       "no row: a count of 0");
  T_OK(er_diag_detail_rows_missing(
           "postgres: rows do not match\n  expected rows: [[2]]\n  why: row "
           "0, column count: expected 2, got 1\n  seen 1 row(s) (columns: "
           "count):\n    [1]") == 1,
       "a count of 1 where 2 were expected: fewer rows");
  T_OK(er_diag_detail_rows_missing(
           "postgres: rows do not match\n  why: row 0, column count: "
           "expected 1, got 2\n  seen 1 row(s) (columns: count):\n    [2]") ==
           0,
       "a count above the expected one: not a shortfall");
  T_OK(er_diag_detail_rows_missing(
           "postgres: rows do not match\n  seen 1 row(s) (columns: count):\n"
           "    [0, 1]") == 0,
       "a row [0, 1] is a row");
  T_OK(er_diag_detail_rows_missing(
           "postgres: rows do not match\n  why: row 0, column count: "
           "expected 3, got 0\n  seen 1 row(s) (columns: count, count):\n"
           "    [0, 0]") == 2,
       "a row of two counts of 0: no row");
  T_OK(er_diag_detail_rows_missing(
           "postgres: rows do not match\n  seen 1 row(s) (columns: a, b):\n"
           "    [0, 10]") == 0,
       "[0, 10] is a row");
  T_OK(er_diag_detail_rows_missing(
           "redis: expected 1, got 0\n  seen 0 row(s)") == 0,
       "not a postgres expectation");
  T_OK(er_diag_detail_rows_missing(NULL) == 0, "NULL detail");
  return t_done();
}
