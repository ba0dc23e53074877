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
           "redis: expected 1, got 0\n  seen 0 row(s)") == 0,
       "not a postgres expectation");
  T_OK(er_diag_detail_rows_missing(NULL) == 0, "NULL detail");
  return t_done();
}
