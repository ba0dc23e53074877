/* rconn.h: one reconnecting Redis connection with deadlines.
 *
 * Connects lazily on the first command, and again after any failure, with
 * a backoff (100 ms doubling to 2 s) between attempts; while in backoff a
 * command fails at once instead of waiting. Connecting and every command
 * have a 1 s timeout, so an unreachable or hanging Redis never blocks a
 * caller for longer. Each state change (up / down) is logged once.
 *
 * Not thread-safe: one thread (or one mutex holder) at a time.
 */
#ifndef SUT_RCONN_H
#define SUT_RCONN_H

#include <hiredis/hiredis.h>
#include <stdarg.h>

typedef struct rconn rconn_t;

/* Parses "redis://host:port[/db]". Returns 0 or -1 with a message in err. */
int rconn_parse_url(const char *url, char *host, size_t hostlen, int *port,
                    int *db, char *err, size_t errlen);

/* name is used in log lines ("redis", "guard-redis"). The URL must parse
 * (check with rconn_parse_url first); returns NULL otherwise or when out of
 * memory. Does not connect. Free with rconn_free(). */
rconn_t *rconn_new(const char *name, const char *url);
void rconn_free(rconn_t *c);

/* Runs one command (hiredis format). Returns the reply (caller frees with
 * freeReplyObject), which may be a REDIS_REPLY_ERROR; or NULL when Redis is
 * unreachable, timed out or the connection broke (the connection is then
 * dropped and rconn_error() says why). */
redisReply *rconn_cmd(rconn_t *c, const char *fmt, ...);
redisReply *rconn_vcmd(rconn_t *c, const char *fmt, va_list ap);
redisReply *rconn_cmdargv(rconn_t *c, int argc, const char **argv,
                          const size_t *argvlen);

/* Call at the start of a unit of work (an event, an HTTP request), never
 * in the middle of a WATCH/MULTI sequence: when the connection has been
 * idle for a second or more, checks it with PING and, if it died meanwhile
 * (e.g. Redis restarted), drops it so that the next command reconnects at
 * once instead of failing on the dead socket. */
void rconn_refresh(rconn_t *c);

/* Drops the connection (e.g. after an error inside MULTI, so that no
 * half-finished transaction state survives); the next command reconnects.
 */
void rconn_reset(rconn_t *c, const char *why);

/* The last failure, for log lines (borrowed; valid until the next call). */
const char *rconn_error(const rconn_t *c);

/* A reply is usable when non-NULL and not an error reply. Returns the
 * reply's error text (or rconn_error) for NULL / error replies, else NULL.
 */
const char *rconn_reply_error(const rconn_t *c, const redisReply *r);

#endif
