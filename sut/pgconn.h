/* pgconn.h: one reconnecting Postgres connection with deadlines, and the
 * contract's schema.
 *
 * Connects lazily and again after a broken connection, with a backoff
 * (100 ms doubling to 2 s) between attempts; while in backoff a statement
 * fails at once. Connecting is bounded by libpq's connect_timeout (2 s) and
 * every statement by a 5 s client-side deadline (a hanging server or proxy
 * makes the statement fail and the connection be dropped). Each new
 * connection first creates the schema if it is missing (under an advisory
 * lock, so several instances starting together do not race). State changes
 * (up / down) are logged once.
 *
 * Not thread-safe: one thread (or one mutex holder) at a time.
 */
#ifndef SUT_PGCONN_H
#define SUT_PGCONN_H

#include <libpq-fe.h>

typedef struct pgconn pgconn_t;

/* name is used in log lines. Returns NULL when out of memory. Does not
 * connect. Free with pgconn_free(). */
pgconn_t *pgconn_new(const char *name, const char *dsn);
void pgconn_free(pgconn_t *c);

/* Connects now if not connected (schema included). Returns 0 or -1. */
int pgconn_ensure(pgconn_t *c);

/* Runs one statement with nparams text parameters (nparams 0: the simple
 * query protocol, several statements allowed). Returns the result (caller
 * PQclear()s) when it succeeded (PGRES_COMMAND_OK / PGRES_TUPLES_OK); NULL
 * otherwise, with the reason in pgconn_error(). */
PGresult *pgconn_exec(pgconn_t *c, const char *sql, int nparams,
                      const char *const *params);

/* Call at the start of a unit of work: when the connection has been idle
 * for a second or more and no transaction is open, checks it with a
 * trivial query and, if it died meanwhile (e.g. Postgres restarted),
 * reconnects at once instead of failing the next statement. */
void pgconn_refresh(pgconn_t *c);

/* Drops the connection (e.g. when a ROLLBACK failed); the next statement
 * reconnects. */
void pgconn_reset(pgconn_t *c, const char *why);

/* The last failure (borrowed; valid until the next call). */
const char *pgconn_error(const pgconn_t *c);

#endif
