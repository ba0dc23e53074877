/* pg.h: the Postgres adapter (libpq). Knows nothing of scenarios.
 *
 * One er_pg_t holds one DSN and at most one connection, opened lazily and
 * reopened after it broke. Every call takes a deadline (er_now_ms()
 * clock): connecting is non-blocking and polled, a statement still running
 * at the deadline is cancelled on the server (PQcancel) and the call
 * returns; the connection stays usable.
 *
 * The password of a DSN (URI "postgresql://u:pw@h/db", "?password=pw", or
 * key=value "password=pw") never appears in any message this module
 * writes. Server notices are kept in a capped buffer, never printed.
 *
 * Errors: functions return 0, or -1 with err->code set to
 *   ER_E_ENV   could not connect, the connection broke, or the deadline
 *              passed (statement cancelled)
 *   ER_E_FAIL  the server reported an error (res->sqlstate holds its
 *              SQLSTATE; the message starts "ERROR <SQLSTATE>: ...")
 *   ER_E_INPUT the DSN is malformed, or an unsupported statement (COPY)
 *   ER_E_INTR  interrupted (er_interrupted())
 */
#ifndef ER_PG_H
#define ER_PG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/util.h"

/* Caps on what one statement's result keeps in memory. */
#define ER_PG_MAX_ROWS 10000
#define ER_PG_MAX_BYTES (4u * 1024u * 1024u)

typedef struct er_pg er_pg_t;

/* A result. Zero-initialise, or let er_pg_query do it; free with
 * er_pg_result_free (also after a failed query). */
typedef struct er_pg_result {
  json_t *columns;     /* owned: array of column names */
  json_t *rows;        /* owned: array of rows, each an array of cells:
                          int2/int4/int8/oid -> integer; float4/float8 ->
                          real (NaN/Infinity -> string); numeric ->
                          integer when integral and in int64 range, real
                          up to 15 significant digits, else string;
                          bool -> true/false; json/jsonb -> parsed; NULL
                          -> null; everything else -> string (text form) */
  size_t total_rows;   /* rows the server returned; rows may hold fewer */
  bool truncated;      /* rows stopped at ER_PG_MAX_ROWS/ER_PG_MAX_BYTES */
  int statements;      /* results consumed (statements run) */
  char cmd_status[64]; /* command tag of the last statement: "INSERT 0 1" */
  char sqlstate[6];    /* on a server error: its SQLSTATE, else "" */
} er_pg_result_t;

/* Parses dsn (URI or key=value) without connecting. Returns NULL with
 * err (ER_E_INPUT) when it is malformed. Caller frees with er_pg_free. */
er_pg_t *er_pg_new(const char *dsn, er_err_t *err);
/* Closes the connection (if any) and frees pg. NULL is fine. */
void er_pg_free(er_pg_t *pg);

/* The DSN with its password replaced by "***". Borrowed from pg. */
const char *er_pg_dsn_redacted(const er_pg_t *pg);

/* Connects now unless already connected and healthy. */
int er_pg_connect(er_pg_t *pg, int64_t deadline_ms, er_err_t *err);

/* Runs sql (connecting first when needed) and fills res.
 * - params == NULL: the simple query protocol; sql may hold several
 *   statements, all results are consumed, an error in any of them fails
 *   the call; rows are those of the last statement that returned rows.
 * - params != NULL: one statement with nparams text parameters ($1..$n;
 *   a NULL entry is SQL NULL); the server infers their types.
 * Returns 0, or -1 with err (see above). */
int er_pg_query(er_pg_t *pg, const char *sql, const char *const *params,
                int nparams, int64_t deadline_ms, er_pg_result_t *res,
                er_err_t *err);
void er_pg_result_free(er_pg_result_t *res);

/* As er_pg_query, in a transaction the server keeps read-only: BEGIN
 * TRANSACTION READ ONLY; a first query that reads back
 * transaction_read_only (after a first query Postgres refuses to switch
 * the transaction to read-write, and the server confirms the mode); sql
 * as one statement through the extended protocol, with or without params
 * (so a second statement such as "; COMMIT; DELETE ..." is refused);
 * ROLLBACK. Postgres itself refuses every write (SQLSTATE 25006, "cannot
 * execute UPDATE in a read-only transaction"), also inside functions, DO
 * blocks and rules. The connection is never reopened in between: if it
 * breaks, the statement is not sent. A connection left inside a
 * transaction (before or after) is closed. Errors as er_pg_query. */
int er_pg_query_ro(er_pg_t *pg, const char *sql, const char *const *params,
                   int nparams, int64_t deadline_ms, er_pg_result_t *res,
                   er_err_t *err);

/* Notices (RAISE NOTICE, warnings) from the last er_pg_query, capped at
 * 8 KB, one per line. Borrowed; "" when none. */
const char *er_pg_notices(er_pg_t *pg);

/* Writes dsn with any password replaced by "***" into out (always
 * NUL-terminated, cut to outsz). Handles both URI and key=value forms. */
void er_pg_redact_dsn(const char *dsn, char *out, size_t outsz);

/* The database a DSN (URI or key=value) names, as libpq reads it
 * (PQconninfoParse: %-escapes decoded, ?dbname= in a URI, the later of
 * repeated keys): dbname, else the user name, else "postgres", into out.
 * Returns 0, or -1 when libpq cannot parse the DSN ("postgres" then). */
int er_pg_dsn_dbname(const char *dsn, char *out, size_t outsz);

#endif
