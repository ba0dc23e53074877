/* redis.h: a small Redis client on top of hiredis (RESP2).
 *
 * Knows nothing of scenarios: it parses URLs, keeps one connection,
 * runs commands given as argv (binary-safe) with a deadline and turns
 * replies into jansson JSON:
 *   bulk / status string -> string (bytes that are not UTF-8 are written
 *                           as "\xNN" escapes)
 *   integer              -> integer
 *   nil                  -> null
 *   array                -> array (recursively)
 *   error                -> {"error": "ERR text"} (see er_redis_command)
 *
 * Every call is bounded by the caller's deadline (er_now_ms() clock):
 * connecting, writing the command and reading the reply. A reply larger
 * than the connection's cap is refused. After an I/O error, a timeout,
 * a protocol error or a refused reply, the connection is dropped and the
 * next call reconnects (a scenario may restart the server).
 *
 * Messages never contain the password of a URL: URLs are shown with the
 * password replaced by "***".
 */
#ifndef ER_REDIS_H
#define ER_REDIS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

/* Default cap on the bytes of one reply, as read off the wire. */
#define ER_REDIS_REPLY_CAP (4u * 1024u * 1024u)

/* A parsed URL. Every string is owned by the struct (er_redis_url_free).
 *   redis://[[user]:password@]host[:port][/db]   (host may be [v6addr])
 *   unix://[[user]:password@]/path/to.sock[?db=N]
 * user and password may be %XX-encoded. */
typedef struct er_redis_url {
  char *host;     /* NULL for unix sockets */
  int port;       /* 6379 when not given; 0 for unix sockets */
  char *path;     /* unix socket path, or NULL */
  char *user;     /* NULL when not given (AUTH password only) */
  char *password; /* NULL when not given (no AUTH) */
  int db;         /* 0 when not given (no SELECT) */
  char *redacted; /* the URL as given, password replaced by "***" */
} er_redis_url_t;

/* Parses url into out (zeroed first). Returns 0, or -1 with err (code
 * ER_E_INPUT; the message shows the URL redacted). On failure out holds
 * nothing to free. */
int er_redis_url_parse(const char *url, er_redis_url_t *out, er_err_t *err);
void er_redis_url_free(er_redis_url_t *u);

/* Writes url with its password replaced by "***" into out (always
 * NUL-terminated, cut to outsz). Works on malformed URLs too. */
void er_redis_redact(const char *url, char *out, size_t outsz);

/* ---- connections ------------------------------------------------------ */

typedef struct er_redis er_redis_t;

/* A handle for url; no I/O happens until the first command. reply_cap is
 * the largest reply accepted in bytes (0 = ER_REDIS_REPLY_CAP). Returns
 * NULL with err (ER_E_INPUT) on a bad URL. Caller frees with
 * er_redis_free. */
er_redis_t *er_redis_new(const char *url, size_t reply_cap, er_err_t *err);
/* Closes the connection and frees r (NULL is fine). Its signature suits
 * er_session_put. */
void er_redis_free(void *r);
/* Whether a connection is open now (false before the first command and
 * after an I/O error dropped it). */
bool er_redis_connected(const er_redis_t *r);
/* The URL with the password as "***". Borrowed, lives as long as r. */
const char *er_redis_redacted(const er_redis_t *r);

/* Outcomes of er_redis_command (besides -1). */
enum {
  ER_REDIS_OK = 0,
  ER_REDIS_ERROR_REPLY = 1, /* the server answered with an error */
};

/* Runs one command: argv[i] holds argvlen[i] bytes (argvlen NULL: every
 * argv[i] is a C string). Connects first if needed (connect timeout,
 * AUTH, SELECT), all before deadline_ms.
 * Returns
 *   ER_REDIS_OK           *reply = the reply as JSON (new reference);
 *   ER_REDIS_ERROR_REPLY  *reply = {"error": "ERR text"} (new reference)
 *                         and err holds the text (code ER_E_FAIL);
 *   -1                    *reply = NULL, err says why: ER_E_ENV when the
 *                         server could not be reached or answered in time
 *                         or sent too much (the connection is dropped),
 *                         ER_E_INPUT for an unusable argv.
 * A deadline already past fails at once with ER_E_ENV. */
int er_redis_command(er_redis_t *r, int argc, const char *const *argv,
                     const size_t *argvlen, int64_t deadline_ms, json_t **reply,
                     er_err_t *err);

/* Deletes every key matching the glob pattern: SCAN cursor MATCH pattern
 * COUNT batch, then UNLINK of each batch found; never KEYS. Each page
 * runs as one script on the server (EVAL: the SCAN and the UNLINK of its
 * keys), or, where the server refuses scripts, as the two commands. Adds the
 * number of keys actually deleted to *deleted (also on failure, for the
 * batches done). Returns 0, or -1 with err (an error reply counts as
 * ER_E_ENV here). */
int er_redis_scan_unlink(er_redis_t *r, const char *pattern, int batch,
                         int64_t deadline_ms, long long *deleted,
                         er_err_t *err);

/* Keys matching a glob pattern with their remaining time to live, for
 * audits: SCAN cursor MATCH pattern COUNT batch (never KEYS), then PTTL
 * of the first `keep` keys found. */
typedef struct er_redis_key_ttl {
  char *key;      /* the key's bytes, NUL-terminated copy */
  size_t len;     /* its length (keys may hold NUL bytes) */
  long long pttl; /* ms left; -1 = no TTL (never expires); -2 = gone */
} er_redis_key_ttl_t;

typedef struct er_redis_scan_ttl {
  long long found;          /* matching keys returned by SCAN (a key may
                               be counted twice while Redis rehashes) */
  long long scanned;        /* keys examined, about: SCAN calls x batch */
  er_redis_key_ttl_t *keys; /* the first min(found, keep) distinct keys */
  size_t nkeys;
  bool incomplete; /* stopped before the end of the keyspace: more than
                      max_scanned examined, or scan_until_ms reached */
} er_redis_scan_ttl_t;

/* Fills *out (zeroed first; free with er_redis_scan_ttl_free, also after
 * a failure). The SCAN loop stops (incomplete) once max_scanned keys
 * were examined (0 = no limit) or when er_now_ms() >= scan_until_ms;
 * every command must finish before deadline_ms (hard: past it, -1 with
 * ER_E_ENV). Returns 0, or -1 with err (an error reply counts as ER_E_ENV
 * here). */
int er_redis_scan_pttl(er_redis_t *r, const char *pattern, int batch,
                       long long max_scanned, size_t keep,
                       int64_t scan_until_ms, int64_t deadline_ms,
                       er_redis_scan_ttl_t *out, er_err_t *err);
void er_redis_scan_ttl_free(er_redis_scan_ttl_t *s);

/* FLUSHDB (the database selected by the URL). Returns 0 or -1 with err. */
int er_redis_flushdb(er_redis_t *r, int64_t deadline_ms, er_err_t *err);

#endif
