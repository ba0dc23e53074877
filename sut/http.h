/* http.h: the service's HTTP API on 127.0.0.1 (libmicrohttpd, one thread
 * per connection):
 *   GET  /healthz              200 {"status":"ok"} (checks nothing else)
 *   POST /v1/batches           201 / 409 / 400 (503 when Redis or Postgres
 *                              fails; a retry then works)
 *   GET  /v1/batches/{id}      200 / 404
 *   GET  /metrics              Prometheus text, the six counters
 * Requests that touch Redis or Postgres share one connection to each,
 * taken in turn under a mutex.
 */
#ifndef SUT_HTTP_H
#define SUT_HTTP_H

#include "sut.h"

typedef struct http http_t;

/* Starts listening. cfg and m are borrowed and must outlive the server.
 * Returns NULL with a message in err (e.g. the port is taken). */
http_t *http_start(const sut_config_t *cfg, sut_metrics_t *m, char *err,
                   size_t errlen);

/* Stops listening, waits for running requests (each bounded by the Redis
 * and Postgres deadlines), frees everything. NULL is fine. */
void http_stop(http_t *h);

#endif
