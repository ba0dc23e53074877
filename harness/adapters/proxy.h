/* proxy.h: TCP fault proxies (knows nothing of scenarios).
 *
 * A proxy set owns any number of named proxies, each listening on
 * 127.0.0.1:PORT and forwarding every accepted connection to one upstream
 * host:port. One event-loop thread per set serves all of its proxies and
 * connections (non-blocking sockets, epoll; no thread per connection).
 * The functions below are called from any other thread: each one hands a
 * command to the loop (a mutex-protected slot plus an eventfd wake-up) and
 * waits, with a deadline, until the loop has applied it. So when a fault
 * call returns, the fault is in force on every connection of that proxy:
 * connections opened before the call and connections opened after it
 * alike (the loop consults the proxy's fault state on every read and every
 * timer tick; there is no per-connection copy of it that could be stale).
 *
 * Faults (see the README for the user-facing description):
 *   down        closes every open connection (both sides, at once) and
 *               closes the listening socket, so a new connect() fails with
 *               ECONNREFUSED immediately, exactly like a stopped server.
 *               (Accept-and-close would let connect() succeed and fail only
 *               at the first read, which pools treat as a flaky server and
 *               which is not what "down" means.)
 *   up          listens again on the same port (connections closed by down
 *               stay closed).
 *   latency     holds bytes in a per-connection timed queue for ms +/-
 *               jitter before forwarding them, per direction; order is
 *               preserved (a chunk is never released before the one ahead
 *               of it). It applies to bytes read after the call; bytes still
 *               queued when latency is removed are released at once.
 *   reset_peer  after delay_ms, resets both sides of every connection
 *               (SO_LINGER 0 + close: the peer sees ECONNRESET); applies to
 *               open connections (delay counted from the call) and to new
 *               ones (counted from their accept) until healed.
 *   blackhole   connections are accepted and kept open but nothing passes
 *               in either direction: bytes read from either side are
 *               discarded (and counted as dropped), bytes already queued are
 *               discarded, FIN is not passed on. Open connections stop
 *               passing too. After heal the same connection passes data
 *               again, but nothing sent during the blackhole is delivered.
 *   heal        all of the above off (latency 0, no reset, no blackhole,
 *               listening).
 * Several faults can be in force at once (blackhole wins over latency).
 *
 * Bounds: each direction of a connection queues at most buf_cap bytes;
 * when full, the proxy stops reading from the sending side (TCP
 * back-pressure). At most max_conns connections per proxy are open; one
 * more is accepted and reset at once (counted in stats.refused). An
 * upstream connect that does not complete within connect_timeout_ms
 * closes the client side.
 * Half-close is passed through: when one side sends FIN, the proxy
 * forwards what is queued, then shutdown(SHUT_WR)s the other side.
 *
 * Errors: every function returns 0 / -1 (or a port / -1) and fills err
 * (code ER_E_INPUT for a bad argument or unknown proxy, ER_E_ENV for a
 * socket or thread failure). Nothing here calls exit().
 */
#ifndef ER_PROXY_H
#define ER_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct er_proxy_set er_proxy_set_t;

typedef struct er_proxy_limits {
  size_t buf_cap;             /* bytes queued per direction; 0 = 256 KiB */
  int max_conns;              /* open connections per proxy; 0 = 512 */
  int64_t connect_timeout_ms; /* upstream connect; 0 = 5000 */
  int64_t cmd_timeout_ms;     /* wait for the loop to apply a call; 0 = 10s */
} er_proxy_limits_t;

/* Direction of a latency fault: upstream is client -> server, downstream
 * is server -> client. A latency on ER_PROXY_BOTH delays each direction,
 * so a request/reply round trip grows by twice the value. */
typedef enum {
  ER_PROXY_UPSTREAM = 1,
  ER_PROXY_DOWNSTREAM = 2,
  ER_PROXY_BOTH = 3,
} er_proxy_dir_t;

/* "upstream", "downstream" or "both"; -1 (err set) otherwise. */
int er_proxy_dir_parse(const char *s, er_proxy_dir_t *out, er_err_t *err);

typedef struct er_proxy_stats {
  uint64_t accepted;        /* connections accepted and forwarded */
  uint64_t refused;         /* accepted past max_conns, reset at once */
  uint64_t open;            /* open now */
  uint64_t bytes_up;        /* client -> upstream, delivered */
  uint64_t bytes_down;      /* upstream -> client, delivered */
  uint64_t dropped_up;      /* client -> upstream, discarded by a fault */
  uint64_t dropped_down;    /* upstream -> client, discarded by a fault */
  uint64_t resets;          /* connections reset by reset_peer */
  uint64_t upstream_errors; /* upstream connect failed or timed out */
} er_proxy_stats_t;

/* limits may be NULL (defaults). Creates the epoll set; starts nothing.
 * Caller frees with er_proxy_set_free. */
er_proxy_set_t *er_proxy_set_new(const er_proxy_limits_t *limits,
                                 er_err_t *err);

/* Adds a proxy named name (unique in the set) listening on
 * 127.0.0.1:listen_port (0 = a free port picked by the kernel) and
 * forwarding to upstream_host:upstream_port (resolved now). The listening
 * socket is open when this returns; *port_out (may be NULL) gets the
 * port. Allowed before and after er_proxy_set_start. */
int er_proxy_add(er_proxy_set_t *s, const char *name, int listen_port,
                 const char *upstream_host, int upstream_port, int *port_out,
                 er_err_t *err);

/* Starts the loop thread (signals are blocked in it). Connections are
 * accepted only once started. */
int er_proxy_set_start(er_proxy_set_t *s, er_err_t *err);

/* Listening port of the proxy named name, or -1 with err set (unknown
 * name, with a did-you-mean suggestion). */
int er_proxy_port(er_proxy_set_t *s, const char *name, er_err_t *err);

/* Faults: each returns 0, or -1 with err set (unknown proxy, bad
 * argument, set stopped, loop did not answer in cmd_timeout_ms). */
int er_proxy_down(er_proxy_set_t *s, const char *name, er_err_t *err);
int er_proxy_up(er_proxy_set_t *s, const char *name, er_err_t *err);
/* ms = 0 and jitter_ms = 0 remove the latency of dir. jitter_ms <= ms. */
int er_proxy_latency(er_proxy_set_t *s, const char *name, er_proxy_dir_t dir,
                     int64_t ms, int64_t jitter_ms, er_err_t *err);
int er_proxy_reset_peer(er_proxy_set_t *s, const char *name, int64_t delay_ms,
                        er_err_t *err);
int er_proxy_blackhole(er_proxy_set_t *s, const char *name, er_err_t *err);
int er_proxy_heal(er_proxy_set_t *s, const char *name, er_err_t *err);
/* Heals every proxy of the set. Safe on a stopped set (returns 0). */
int er_proxy_heal_all(er_proxy_set_t *s, er_err_t *err);

/* Consistent snapshot of one proxy's counters. */
int er_proxy_stats(er_proxy_set_t *s, const char *name, er_proxy_stats_t *out,
                   er_err_t *err);

/* Closes every connection and listening socket and joins the loop thread.
 * Safe to call twice; later fault calls fail with "stopped". */
void er_proxy_set_stop(er_proxy_set_t *s);
/* Stops (if needed) and frees. NULL is fine. */
void er_proxy_set_free(er_proxy_set_t *s);

#endif
