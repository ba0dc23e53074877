/* pgconn.c: reconnecting Postgres connection and schema (see pgconn.h). */
#include "pgconn.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sut.h"

#define PG_STATEMENT_TIMEOUT_MS 5000
#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 2000
#define PG_IDLE_CHECK_MS 1000

/* The contract's schema. The advisory lock serialises concurrent creators
 * (CREATE TABLE IF NOT EXISTS alone can fail with a duplicate pg_type row
 * when two sessions run it at the same time). */
static const char schema_sql[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(7428190363);"
    "CREATE TABLE IF NOT EXISTS batch_essay_trackers ("
    "  batch_id        text PRIMARY KEY,"
    "  expected_count  integer NOT NULL CHECK (expected_count > 0),"
    "  ready_published boolean NOT NULL DEFAULT false,"
    "  created_at      timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS essay_states ("
    "  essay_id        text PRIMARY KEY,"
    "  batch_id        text NOT NULL REFERENCES batch_essay_trackers(batch_id),"
    "  text_storage_id text NOT NULL,"
    "  assigned_by     text NOT NULL,"
    "  created_at      timestamptz NOT NULL DEFAULT now(),"
    "  UNIQUE (batch_id, text_storage_id));"
    "CREATE TABLE IF NOT EXISTS excess_content ("
    "  id              bigserial PRIMARY KEY,"
    "  batch_id        text NOT NULL,"
    "  text_storage_id text NOT NULL,"
    "  reason          text NOT NULL);"
    "COMMIT;";

struct pgconn {
  char name[32];
  char *dsn;
  PGconn *conn; /* NULL while disconnected */
  int state;    /* last logged state: 0 unknown, 1 up, -1 down */
  int64_t next_try;
  int64_t backoff_ms;
  int64_t last_used; /* monotonic ms of the last statement's end */
  char err[512];
};

pgconn_t *pgconn_new(const char *name, const char *dsn) {
  pgconn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->dsn = strdup(dsn);
  if (c->dsn == NULL) {
    free(c);
    return NULL;
  }
  snprintf(c->name, sizeof c->name, "%s", name);
  c->backoff_ms = PG_BACKOFF_MIN_MS;
  return c;
}

void pgconn_free(pgconn_t *c) {
  if (c == NULL)
    return;
  if (c->conn)
    PQfinish(c->conn);
  free(c->dsn);
  free(c);
}

/* Copies libpq's message without its trailing newline. */
static void set_err(pgconn_t *c, const char *prefix, const char *msg) {
  snprintf(c->err, sizeof c->err, "%s%s", prefix, msg ? msg : "");
  size_t n = strlen(c->err);
  while (n > 0 && (c->err[n - 1] == '\n' || c->err[n - 1] == ' '))
    c->err[--n] = '\0';
}

static void mark_down(pgconn_t *c) {
  if (c->conn) {
    PQfinish(c->conn);
    c->conn = NULL;
  }
  if (c->state != -1)
    sut_log("%s down: %s (reconnecting with backoff)", c->name, c->err);
  c->state = -1;
  c->next_try = sut_now_ms() + c->backoff_ms;
  c->backoff_ms *= 2;
  if (c->backoff_ms > PG_BACKOFF_MAX_MS)
    c->backoff_ms = PG_BACKOFF_MAX_MS;
}

void pgconn_reset(pgconn_t *c, const char *why) {
  if (c->conn) {
    PQfinish(c->conn);
    c->conn = NULL;
  }
  set_err(c, "", why);
  c->next_try = 0;
}

/* Waits until the socket is ready for events or the deadline passes.
 * Returns 0 (ready) or -1 (timeout or poll failure). */
static int wait_socket(PGconn *conn, short events, int64_t deadline) {
  struct pollfd pfd = {PQsocket(conn), events, 0};
  for (;;) {
    int64_t left = deadline - sut_now_ms();
    if (left <= 0)
      return -1;
    int rc = poll(&pfd, 1, (int)left);
    if (rc > 0)
      return 0;
    if (rc == 0)
      return -1;
  }
}

/* Sends and collects one query with a deadline. Keeps the first failed
 * result, or else the last one. On a broken connection or a timeout the
 * connection is dropped. */
static PGresult *run1(pgconn_t *c, const char *sql, int nparams,
                      const char *const *params) {
  PGconn *conn = c->conn;
  PGresult *keep = NULL;
  bool failed = false;
  int64_t deadline = sut_now_ms() + PG_STATEMENT_TIMEOUT_MS;
  int sent = nparams > 0 ? PQsendQueryParams(conn, sql, nparams, NULL, params,
                                             NULL, NULL, 0)
                         : PQsendQuery(conn, sql);
  if (!sent) {
    set_err(c, "send: ", PQerrorMessage(conn));
    goto broken;
  }
  for (;;) {
    int f = PQflush(conn);
    if (f == 0)
      break;
    if (f < 0) {
      set_err(c, "send: ", PQerrorMessage(conn));
      goto broken;
    }
    if (wait_socket(conn, POLLIN | POLLOUT, deadline) < 0) {
      set_err(c, "", "statement timed out (sending)");
      goto broken;
    }
    if (!PQconsumeInput(conn)) {
      set_err(c, "receive: ", PQerrorMessage(conn));
      goto broken;
    }
  }
  for (;;) {
    while (PQisBusy(conn)) {
      if (wait_socket(conn, POLLIN, deadline) < 0) {
        set_err(c, "", "statement timed out");
        goto broken;
      }
      if (!PQconsumeInput(conn)) {
        set_err(c, "receive: ", PQerrorMessage(conn));
        goto broken;
      }
    }
    PGresult *r = PQgetResult(conn);
    if (r == NULL)
      break;
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (failed) {
      PQclear(r);
      continue;
    }
    if (!ok) {
      failed = true;
      set_err(c, "", PQresultErrorMessage(r));
      if (c->err[0] == '\0')
        set_err(c, "", PQresStatus(st));
    }
    PQclear(keep);
    keep = r;
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    if (!failed)
      set_err(c, "", PQerrorMessage(conn));
    goto broken;
  }
  if (failed || keep == NULL) {
    if (keep == NULL)
      set_err(c, "", "no result");
    PQclear(keep);
    return NULL;
  }
  return keep;
broken:
  PQclear(keep);
  mark_down(c);
  return NULL;
}

/* Server notices ("relation ... already exists, skipping") are not errors;
 * libpq would print them to stderr. */
static void ignore_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static PGresult *run(pgconn_t *c, const char *sql, int nparams,
                     const char *const *params) {
  PGresult *r = run1(c, sql, nparams, params);
  c->last_used = sut_now_ms();
  return r;
}

int pgconn_ensure(pgconn_t *c) {
  if (c->conn)
    return 0;
  if (sut_now_ms() < c->next_try) {
    if (c->err[0] == '\0')
      set_err(c, "", "unreachable");
    return -1;
  }
  const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
  const char *vals[] = {c->dsn, "2", "eventrig-sut", NULL};
  PGconn *conn = PQconnectdbParams(keys, vals, 1);
  if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
    set_err(c, "connect: ", conn ? PQerrorMessage(conn) : "out of memory");
    if (conn)
      PQfinish(conn);
    mark_down(c);
    return -1;
  }
  PQsetnonblocking(conn, 1);
  PQsetNoticeProcessor(conn, ignore_notice, NULL);
  c->conn = conn;
  PGresult *r = run(c, schema_sql, 0, NULL);
  if (r == NULL) {
    /* a failed schema leaves the session in an aborted transaction */
    char why[600];
    snprintf(why, sizeof why, "schema: %s", c->err);
    set_err(c, "", why);
    mark_down(c);
    return -1;
  }
  PQclear(r);
  if (c->state != 1)
    sut_log("%s up (schema ready)", c->name);
  c->state = 1;
  c->backoff_ms = PG_BACKOFF_MIN_MS;
  c->err[0] = '\0';
  return 0;
}

void pgconn_refresh(pgconn_t *c) {
  if (c->conn == NULL || sut_now_ms() - c->last_used < PG_IDLE_CHECK_MS ||
      PQtransactionStatus(c->conn) != PQTRANS_IDLE)
    return;
  PGresult *r = run(c, "SELECT 1", 0, NULL);
  if (r == NULL && c->conn == NULL) {
    /* it died while idle: not an outage yet, reconnect at once */
    sut_log("%s: idle connection found dead (%s); reconnecting", c->name,
            c->err);
    c->next_try = 0;
    c->backoff_ms = PG_BACKOFF_MIN_MS;
  }
  PQclear(r);
}

PGresult *pgconn_exec(pgconn_t *c, const char *sql, int nparams,
                      const char *const *params) {
  if (pgconn_ensure(c) < 0)
    return NULL;
  return run(c, sql, nparams, params);
}

const char *pgconn_error(const pgconn_t *c) {
  return c->err[0] ? c->err : "unknown error";
}
