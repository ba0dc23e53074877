/* rconn.c: reconnecting Redis connection (see rconn.h). */
#include "rconn.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sut.h"

#define RCONN_TIMEOUT_MS 1000
#define RCONN_BACKOFF_MIN_MS 100
#define RCONN_BACKOFF_MAX_MS 2000
#define RCONN_IDLE_CHECK_MS 1000

struct rconn {
  char name[32];
  char host[256];
  int port;
  int db;
  redisContext *ctx;  /* NULL while disconnected */
  int state;          /* last logged state: 0 unknown, 1 up, -1 down */
  int64_t next_try;   /* monotonic ms of the next connection attempt */
  int64_t backoff_ms; /* current backoff between attempts */
  int64_t last_used;  /* monotonic ms of the last command's reply */
  char err[256];
};

int rconn_parse_url(const char *url, char *host, size_t hostlen, int *port,
                    int *db, char *err, size_t errlen) {
  const char *p = url;
  if (strncmp(p, "redis://", 8) != 0) {
    snprintf(err, errlen, "Redis URL %s: must start with redis://", url);
    return -1;
  }
  p += 8;
  const char *colon = strchr(p, ':');
  const char *slash = strchr(p, '/');
  if (colon == NULL || (slash && slash < colon) || colon == p) {
    snprintf(err, errlen, "Redis URL %s: expected redis://host:port[/db]", url);
    return -1;
  }
  if ((size_t)(colon - p) >= hostlen) {
    snprintf(err, errlen, "Redis URL %s: host too long", url);
    return -1;
  }
  memcpy(host, p, (size_t)(colon - p));
  host[colon - p] = '\0';
  char *end = NULL;
  long pt = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || pt < 1 || pt > 65535 || (*end && *end != '/')) {
    snprintf(err, errlen, "Redis URL %s: bad port", url);
    return -1;
  }
  *port = (int)pt;
  *db = 0;
  if (*end == '/' && end[1] != '\0') {
    const char *d = end + 1;
    long dbn = strtol(d, &end, 10);
    if (end == d || *end || dbn < 0 || dbn > 1000000) {
      snprintf(err, errlen, "Redis URL %s: bad database number", url);
      return -1;
    }
    *db = (int)dbn;
  }
  return 0;
}

rconn_t *rconn_new(const char *name, const char *url) {
  char err[256];
  rconn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  if (rconn_parse_url(url, c->host, sizeof c->host, &c->port, &c->db, err,
                      sizeof err) < 0) {
    free(c);
    return NULL;
  }
  snprintf(c->name, sizeof c->name, "%s", name);
  c->backoff_ms = RCONN_BACKOFF_MIN_MS;
  return c;
}

void rconn_free(rconn_t *c) {
  if (c == NULL)
    return;
  if (c->ctx)
    redisFree(c->ctx);
  free(c);
}

static void mark_down(rconn_t *c) {
  if (c->ctx) {
    redisFree(c->ctx);
    c->ctx = NULL;
  }
  if (c->state != -1)
    sut_log("%s %s:%d down: %s (reconnecting with backoff)", c->name, c->host,
            c->port, c->err);
  c->state = -1;
  c->next_try = sut_now_ms() + c->backoff_ms;
  c->backoff_ms *= 2;
  if (c->backoff_ms > RCONN_BACKOFF_MAX_MS)
    c->backoff_ms = RCONN_BACKOFF_MAX_MS;
}

void rconn_reset(rconn_t *c, const char *why) {
  if (c->ctx) {
    redisFree(c->ctx);
    c->ctx = NULL;
  }
  snprintf(c->err, sizeof c->err, "%s", why);
  /* reconnect at the next command; not a "down" state */
  c->next_try = 0;
}

/* Ensures a connection; returns 0 or -1 (unreachable, in backoff). */
static int ensure(rconn_t *c) {
  if (c->ctx)
    return 0;
  int64_t now = sut_now_ms();
  if (now < c->next_try) {
    if (c->err[0] == '\0')
      snprintf(c->err, sizeof c->err, "unreachable");
    return -1;
  }
  struct timeval tv = {RCONN_TIMEOUT_MS / 1000,
                       (RCONN_TIMEOUT_MS % 1000) * 1000};
  redisContext *ctx = redisConnectWithTimeout(c->host, c->port, tv);
  if (ctx == NULL || ctx->err) {
    snprintf(c->err, sizeof c->err, "connect: %s",
             ctx ? ctx->errstr : "out of memory");
    if (ctx)
      redisFree(ctx);
    mark_down(c);
    return -1;
  }
  if (redisSetTimeout(ctx, tv) != REDIS_OK) {
    snprintf(c->err, sizeof c->err, "cannot set timeout");
    redisFree(ctx);
    mark_down(c);
    return -1;
  }
  c->ctx = ctx;
  if (c->db != 0) {
    redisReply *r = redisCommand(ctx, "SELECT %d", c->db);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    snprintf(c->err, sizeof c->err, "SELECT %d: %s", c->db,
             r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply")
               : ctx->errstr);
    if (r)
      freeReplyObject(r);
    if (!ok) {
      mark_down(c);
      return -1;
    }
  }
  if (c->state != 1)
    sut_log("%s %s:%d up", c->name, c->host, c->port);
  c->state = 1;
  c->backoff_ms = RCONN_BACKOFF_MIN_MS;
  c->err[0] = '\0';
  return 0;
}

static redisReply *finish(rconn_t *c, void *reply) {
  c->last_used = sut_now_ms();
  if (reply == NULL) {
    snprintf(c->err, sizeof c->err, "%s",
             c->ctx && c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
    mark_down(c);
    return NULL;
  }
  return reply;
}

void rconn_refresh(rconn_t *c) {
  if (c->ctx == NULL || sut_now_ms() - c->last_used < RCONN_IDLE_CHECK_MS)
    return;
  redisReply *r = redisCommand(c->ctx, "PING");
  bool alive = r != NULL && r->type != REDIS_REPLY_ERROR;
  if (r)
    freeReplyObject(r);
  c->last_used = sut_now_ms();
  if (!alive) {
    sut_log("%s %s:%d: idle connection found dead; reconnecting", c->name,
            c->host, c->port);
    rconn_reset(c, "idle connection found dead");
  }
}

redisReply *rconn_vcmd(rconn_t *c, const char *fmt, va_list ap) {
  if (ensure(c) < 0)
    return NULL;
  return finish(c, redisvCommand(c->ctx, fmt, ap));
}

redisReply *rconn_cmd(rconn_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = rconn_vcmd(c, fmt, ap);
  va_end(ap);
  return r;
}

redisReply *rconn_cmdargv(rconn_t *c, int argc, const char **argv,
                          const size_t *argvlen) {
  if (ensure(c) < 0)
    return NULL;
  return finish(c, redisCommandArgv(c->ctx, argc, argv, argvlen));
}

const char *rconn_error(const rconn_t *c) {
  return c->err[0] ? c->err : "unknown error";
}

const char *rconn_reply_error(const rconn_t *c, const redisReply *r) {
  if (r == NULL)
    return rconn_error(c);
  if (r->type == REDIS_REPLY_ERROR)
    return r->str ? r->str : "error reply";
  return NULL;
}
