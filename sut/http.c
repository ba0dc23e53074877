/* http.c: the HTTP API (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "rconn.h"

#define BODY_CAP (64u * 1024u)
#define MAX_EXPECTED_COUNT 10000 /* one SADD of that many ids at most */
#define METRICS_CAP (16u * 1024u)

struct http {
  struct MHD_Daemon *daemon;
  const sut_config_t *cfg; /* borrowed */
  sut_metrics_t *m;        /* borrowed */
  pthread_mutex_t lock;    /* guards redis and pg */
  rconn_t *redis;
  pgconn_t *pg;
};

/* Per-request state: the body, capped. */
typedef struct request {
  sbuf_t body;
  bool too_big;
} request_t;

/* ------------------------------------------------------------ replies */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
                               const char *ctype, const char *body,
                               size_t len) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (resp == NULL)
    return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  enum MHD_Result rc = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return rc;
}

/* Sends v (stolen) as the JSON body. */
static enum MHD_Result respond_json(struct MHD_Connection *conn,
                                    unsigned status, json_t *v) {
  char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
  json_decref(v);
  if (s == NULL) {
    static const char oom[] = "{\"error\":\"out of memory\"}";
    return respond(conn, 500, "application/json", oom, sizeof oom - 1);
  }
  enum MHD_Result rc = respond(conn, status, "application/json", s, strlen(s));
  free(s);
  return rc;
}

static enum MHD_Result respond_error(struct MHD_Connection *conn,
                                     unsigned status, const char *msg) {
  return respond_json(conn, status, json_pack("{s:s}", "error", msg));
}

/* ------------------------------------------------------ POST /v1/batches */

/* Rolls back; drops the connection when even that fails, so that no open
 * transaction survives into the next request. */
static void rollback(http_t *h) {
  PGresult *r = pgconn_exec(h->pg, "ROLLBACK", 0, NULL);
  if (r == NULL)
    pgconn_reset(h->pg, "rollback failed");
  PQclear(r);
}

/* Removes the slots this request added (after a later failure), best
 * effort: they are fresh UUIDs, so nothing else is touched. */
static void remove_slots(http_t *h, int argc, const char **argv) {
  argv[0] = "SREM";
  redisReply *r = rconn_cmdargv(h->redis, argc, argv, NULL);
  const char *err = rconn_reply_error(h->redis, r);
  if (err)
    sut_log("register: could not remove the slots of a failed request "
            "from %s: %s",
            argv[1], err);
  if (r)
    freeReplyObject(r);
}

/* The registration itself, under h->lock. Order: the tracker row is
 * inserted in a transaction (its primary key decides 201 vs 409, also
 * between instances: a concurrent insert waits for this transaction); then
 * the slots are added to Redis; then the transaction commits. On any
 * failure the transaction is rolled back and the slots added are removed
 * again, so a retry of the same request starts from nothing and works.
 * Returns the HTTP status; fills msg for 409/503. */
static unsigned register_locked(http_t *h, const char *batch, long long n,
                                char (*slots)[37], char *msg, size_t msglen) {
  char count[32];
  const char **argv = NULL;
  char *key = NULL;
  unsigned status = 503;
  snprintf(count, sizeof count, "%lld", n);
  const char *params[] = {batch, count};
  PGresult *r = pgconn_exec(h->pg, "BEGIN", 0, NULL);
  if (r == NULL) {
    snprintf(msg, msglen, "postgres: %s", pgconn_error(h->pg));
    goto out;
  }
  PQclear(r);
  r = pgconn_exec(h->pg,
                  "INSERT INTO batch_essay_trackers (batch_id, expected_count) "
                  "VALUES ($1, $2) ON CONFLICT (batch_id) DO NOTHING "
                  "RETURNING batch_id",
                  2, params);
  if (r == NULL) {
    snprintf(msg, msglen, "postgres: %s", pgconn_error(h->pg));
    rollback(h);
    goto out;
  }
  int inserted = PQntuples(r);
  PQclear(r);
  if (inserted == 0) {
    snprintf(msg, msglen, "batch %s already exists", batch);
    rollback(h);
    status = 409;
    goto out;
  }
  if (asprintf(&key, "%s:batch:%s:available_slots", h->cfg->key_prefix, batch) <
      0) {
    key = NULL;
    snprintf(msg, msglen, "out of memory");
    rollback(h);
    goto out;
  }
  argv = calloc((size_t)n + 2, sizeof *argv);
  if (argv == NULL) {
    snprintf(msg, msglen, "out of memory");
    rollback(h);
    goto out;
  }
  argv[0] = "SADD";
  argv[1] = key;
  for (long long i = 0; i < n; i++)
    argv[i + 2] = slots[i];
  redisReply *rr = rconn_cmdargv(h->redis, (int)n + 2, argv, NULL);
  const char *rerr = rconn_reply_error(h->redis, rr);
  if (rerr) {
    snprintf(msg, msglen, "redis: %s", rerr);
    if (rr)
      freeReplyObject(rr);
    remove_slots(h, (int)n + 2, argv); /* SADD may have run before a timeout */
    rollback(h);
    goto out;
  }
  freeReplyObject(rr);
  r = pgconn_exec(h->pg, "COMMIT", 0, NULL);
  if (r == NULL) {
    snprintf(msg, msglen, "postgres: %s", pgconn_error(h->pg));
    remove_slots(h, (int)n + 2, argv);
    pgconn_reset(h->pg, "commit failed");
    goto out;
  }
  PQclear(r);
  status = 201;
out:
  free(argv);
  free(key);
  return status;
}

static enum MHD_Result do_register(http_t *h, struct MHD_Connection *conn,
                                   request_t *req) {
  json_error_t jerr;
  char msg[600];
  char(*slots)[37] = NULL;
  json_t *body = NULL;
  enum MHD_Result rc;
  if (req->too_big) {
    rc = respond_error(conn, 413, "body too large");
    goto out;
  }
  body =
      json_loadb(req->body.len ? req->body.data : "", req->body.len, 0, &jerr);
  if (body == NULL) {
    snprintf(msg, sizeof msg, "malformed JSON: %s", jerr.text);
    rc = respond_error(conn, 400, msg);
    goto out;
  }
  const json_t *jb = json_object_get(body, "batch_id");
  const json_t *jn = json_object_get(body, "expected_count");
  if (!json_is_object(body)) {
    rc = respond_error(conn, 400, "body must be a JSON object");
    goto out;
  }
  if (!json_is_string(jb) || json_string_length(jb) == 0 ||
      strlen(json_string_value(jb)) != json_string_length(jb)) {
    rc = respond_error(conn, 400, "batch_id must be a non-empty string");
    goto out;
  }
  if (!json_is_integer(jn) || json_integer_value(jn) <= 0) {
    rc = respond_error(conn, 400, "expected_count must be an integer > 0");
    goto out;
  }
  if (json_integer_value(jn) > MAX_EXPECTED_COUNT) {
    snprintf(msg, sizeof msg, "expected_count must be at most %d",
             MAX_EXPECTED_COUNT);
    rc = respond_error(conn, 400, msg);
    goto out;
  }
  const char *batch = json_string_value(jb);
  long long n = json_integer_value(jn);
  slots = calloc((size_t)n, sizeof *slots);
  if (slots == NULL) {
    rc = respond_error(conn, 500, "out of memory");
    goto out;
  }
  for (long long i = 0; i < n; i++)
    sut_uuid4(slots[i]);
  pthread_mutex_lock(&h->lock);
  rconn_refresh(h->redis);
  pgconn_refresh(h->pg);
  unsigned status = register_locked(h, batch, n, slots, msg, sizeof msg);
  pthread_mutex_unlock(&h->lock);
  if (status != 201) {
    sut_log("register %s: %u %s", batch, status, msg);
    rc = respond_error(conn, status, msg);
    goto out;
  }
  json_t *arr = json_array();
  for (long long i = 0; arr && i < n; i++)
    json_array_append_new(arr, json_string(slots[i]));
  sut_log("register %s: %lld slots", batch, n);
  rc = respond_json(conn, 201,
                    json_pack("{s:s, s:o*}", "batch_id", batch, "slots", arr));
out:
  free(slots);
  json_decref(body);
  return rc;
}

/* ------------------------------------------------- GET /v1/batches/{id} */

static enum MHD_Result do_get_batch(http_t *h, struct MHD_Connection *conn,
                                    const char *batch) {
  const char *params[] = {batch};
  char msg[600];
  pthread_mutex_lock(&h->lock);
  pgconn_refresh(h->pg);
  PGresult *r = pgconn_exec(
      h->pg,
      "SELECT t.expected_count, t.ready_published, (SELECT count(*) FROM "
      "essay_states s WHERE s.batch_id = t.batch_id) FROM "
      "batch_essay_trackers t WHERE t.batch_id = $1",
      1, params);
  if (r == NULL)
    snprintf(msg, sizeof msg, "postgres: %s", pgconn_error(h->pg));
  pthread_mutex_unlock(&h->lock);
  if (r == NULL)
    return respond_error(conn, 503, msg);
  enum MHD_Result rc;
  if (PQntuples(r) == 0) {
    rc = respond_error(conn, 404, "unknown batch");
  } else {
    rc = respond_json(
        conn, 200,
        json_pack("{s:s, s:I, s:I, s:b}", "batch_id", batch, "expected_count",
                  (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10),
                  "assigned_count",
                  (json_int_t)strtoll(PQgetvalue(r, 0, 2), NULL, 10),
                  "ready_published", strcmp(PQgetvalue(r, 0, 1), "t") == 0));
  }
  PQclear(r);
  return rc;
}

/* ------------------------------------------------------- GET /metrics */

static void metric(sbuf_t *b, const char *name, const char *help,
                   const char *instance, unsigned long long v) {
  sbuf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s{instance=\"%s\"} %llu\n",
              name, help, name, name, instance, v);
}

static enum MHD_Result do_metrics(http_t *h, struct MHD_Connection *conn) {
  sbuf_t b = SBUF_INIT(METRICS_CAP);
  char inst[256];
  size_t j = 0;
  /* label value escaping of the text format: \ " and newline */
  for (const char *p = h->cfg->instance; *p && j + 3 < sizeof inst; p++) {
    if (*p == '\\' || *p == '"') {
      inst[j++] = '\\';
      inst[j++] = *p;
    } else if (*p == '\n') {
      inst[j++] = '\\';
      inst[j++] = 'n';
    } else {
      inst[j++] = *p;
    }
  }
  inst[j] = '\0';
  sut_metrics_t *m = h->m;
  metric(&b, "sut_events_processed_total",
         "Events processed (slot assigned or excess content recorded).", inst,
         atomic_load(&m->events_processed));
  metric(&b, "sut_duplicates_skipped_total",
         "Events skipped because their idempotency key existed.", inst,
         atomic_load(&m->duplicates_skipped));
  metric(&b, "sut_watch_conflicts_total",
         "Slot assignments whose EXEC returned nil (a watched key changed).",
         inst, atomic_load(&m->watch_conflicts));
  metric(&b, "sut_redis_failopen_total",
         "Events processed while the idempotency guard's Redis was "
         "unreachable (fail-open).",
         inst, atomic_load(&m->redis_failopen));
  metric(&b, "sut_excess_content_total",
         "Excess content recorded (unknown_batch or no_slots).", inst,
         atomic_load(&m->excess_content));
  metric(&b, "sut_malformed_total",
         "Malformed events published to the dead-letter topic.", inst,
         atomic_load(&m->malformed));
  enum MHD_Result rc =
      b.failed ? respond(conn, 500, "text/plain", "out of memory\n", 14)
               : respond(conn, 200, "text/plain; version=0.0.4", sbuf_cstr(&b),
                         b.len);
  sbuf_free(&b);
  return rc;
}

/* ------------------------------------------------------------ routing */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  (void)version;
  http_t *h = cls;
  request_t *req = *con_cls;
  if (req == NULL) { /* first call: headers only */
    req = calloc(1, sizeof *req);
    if (req == NULL)
      return MHD_NO;
    req->body.cap = BODY_CAP;
    *con_cls = req;
    return MHD_YES;
  }
  if (*upload_size > 0) { /* a piece of the body */
    if (sbuf_append(&req->body, upload, *upload_size) < 0)
      req->too_big = true;
    *upload_size = 0;
    return MHD_YES;
  }
  bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
  bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
  static const char prefix[] = "/v1/batches/";
  if (strcmp(url, "/healthz") == 0)
    return get ? respond_json(conn, 200, json_pack("{s:s}", "status", "ok"))
               : respond_error(conn, 405, "method not allowed");
  if (strcmp(url, "/metrics") == 0)
    return get ? do_metrics(h, conn)
               : respond_error(conn, 405, "method not allowed");
  if (strcmp(url, "/v1/batches") == 0)
    return post ? do_register(h, conn, req)
                : respond_error(conn, 405, "method not allowed");
  if (strncmp(url, prefix, sizeof prefix - 1) == 0 &&
      url[sizeof prefix - 1] != '\0')
    return get ? do_get_batch(h, conn, url + sizeof prefix - 1)
               : respond_error(conn, 405, "method not allowed");
  return respond_error(conn, 404, "not found");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  request_t *req = *con_cls;
  if (req) {
    sbuf_free(&req->body);
    free(req);
    *con_cls = NULL;
  }
}

/* ---------------------------------------------------------- lifecycle */

http_t *http_start(const sut_config_t *cfg, sut_metrics_t *m, char *err,
                   size_t errlen) {
  http_t *h = calloc(1, sizeof *h);
  if (h == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  h->cfg = cfg;
  h->m = m;
  pthread_mutex_init(&h->lock, NULL);
  h->redis = rconn_new("http-redis", cfg->redis_url);
  h->pg = pgconn_new("http-postgres", cfg->pg_dsn);
  if (h->redis == NULL || h->pg == NULL) {
    snprintf(err, errlen, "cannot set up connections");
    goto fail;
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)cfg->http_port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  h->daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
          MHD_USE_POLL | MHD_USE_ERROR_LOG,
      (uint16_t)cfg->http_port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
  if (h->daemon == NULL) {
    snprintf(err, errlen, "cannot listen on 127.0.0.1:%d", cfg->http_port);
    goto fail;
  }
  return h;
fail:
  http_stop(h);
  return NULL;
}

void http_stop(http_t *h) {
  if (h == NULL)
    return;
  if (h->daemon)
    MHD_stop_daemon(h->daemon);
  rconn_free(h->redis);
  pgconn_free(h->pg);
  pthread_mutex_destroy(&h->lock);
  free(h);
}
