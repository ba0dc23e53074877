/* itest_proxy.c: the fault proxy in front of a real redis-server, with
 * hiredis as the real client. Run by tests/integration/proxy.sh with
 * REDIS_PORT set. */
#include <dirent.h>
#include <errno.h>
#include <hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "adapters/proxy.h"
#include "base/util.h"
#include "tap.h"

static int redis_port;

static int count_dir(const char *path, bool sockets_only) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    if (sockets_only) {
      char p[300], target[300];
      snprintf(p, sizeof p, "%s/%s", path, e->d_name);
      ssize_t len = readlink(p, target, sizeof target - 1);
      if (len < 0)
        continue;
      target[len] = 0;
      if (strncmp(target, "socket:", 7) != 0)
        continue;
    }
    n++;
  }
  closedir(d);
  return n;
}

static redisContext *rconn(int port, int timeout_ms) {
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c && !c->err)
    redisSetTimeout(c, tv);
  return c;
}

/* Runs a command; returns the reply's string (status or bulk) copied into
 * out, or -1 with c->err set. */
static int rcmd(redisContext *c, char *out, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (!r)
    return -1;
  int rc = 0;
  if (out && cap) {
    out[0] = 0;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_ERROR)
      snprintf(out, cap, "%s", r->str);
    else if (r->type == REDIS_REPLY_INTEGER)
      snprintf(out, cap, "%lld", r->integer);
    else if (r->type == REDIS_REPLY_NIL)
      snprintf(out, cap, "(nil)");
  }
  freeReplyObject(r);
  return rc;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Median PING round trip in microseconds over n, or -1. */
static int64_t rtt_median(redisContext *c, int n) {
  int64_t v[64];
  if (n > 64)
    n = 64;
  for (int i = 0; i < n; i++) {
    char out[32];
    int64_t t0 = er_now_us();
    if (rcmd(c, out, sizeof out, "PING") < 0 || strcmp(out, "PONG") != 0)
      return -1;
    v[i] = er_now_us() - t0;
  }
  qsort(v, (size_t)n, sizeof v[0], cmp64);
  return v[n / 2];
}

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads what arrives within ms (stops early at want bytes or EOF).
 * Returns bytes read; *eof set on EOF. */
static size_t raw_read(int fd, char *buf, size_t cap, size_t want, int ms,
                       bool *eof) {
  size_t got = 0;
  int64_t end = er_now_ms() + ms;
  *eof = false;
  while (got < cap - 1 && got < want) {
    int64_t left = end - er_now_ms();
    if (left <= 0)
      break;
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, (int)left) <= 0)
      break;
    ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
    if (n == 0) {
      *eof = true;
      break;
    }
    if (n < 0)
      break;
    got += (size_t)n;
  }
  buf[got] = 0;
  return got;
}

/* Waits (deadline 3s) until stats.open of name equals want. */
static bool wait_open(er_proxy_set_t *s, const char *name, uint64_t want,
                      er_proxy_stats_t *st) {
  er_err_t err = {0};
  int64_t end = er_now_ms() + 3000;
  do {
    if (er_proxy_stats(s, name, st, &err) < 0)
      return false;
    if (st->open == want)
      return true;
    usleep(10000);
  } while (er_now_ms() < end);
  return false;
}

/* connected_clients from INFO clients on a direct connection, or -1 */
static long redis_clients(redisContext *d) {
  redisReply *r = redisCommand(d, "INFO clients");
  long n = -1;
  if (r && r->type == REDIS_REPLY_STRING) {
    const char *p = strstr(r->str, "connected_clients:");
    if (p)
      n = atol(p + strlen("connected_clients:"));
  }
  freeReplyObject(r);
  return n;
}

/* the largest omem= (output buffer bytes) in CLIENT LIST, or -1 */
static long long redis_max_omem(redisContext *d) {
  redisReply *r = redisCommand(d, "CLIENT LIST");
  long long mx = -1;
  if (r && r->type == REDIS_REPLY_STRING)
    for (const char *p = r->str; (p = strstr(p, " omem=")) != NULL; p += 6) {
      long long v = atoll(p + 6);
      mx = v > mx ? v : mx;
    }
  freeReplyObject(r);
  return mx;
}

/* ---- many clients ----------------------------------------------------- */

#define N_CLIENTS 50
#define N_ROUNDS 200

typedef struct {
  int port;
  int ok_rounds;
  char err[256];
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  redisContext *c = rconn(w->port, 10000);
  if (!c || c->err) {
    snprintf(w->err, sizeof w->err, "connect: %.100s", c ? c->errstr : "oom");
    goto out;
  }
  for (int i = 0; i < N_ROUNDS; i++) {
    char out[32];
    if (rcmd(c, out, sizeof out, "PING") < 0 || strcmp(out, "PONG") != 0) {
      snprintf(w->err, sizeof w->err, "round %d: %.100s", i,
               c->err ? c->errstr : out);
      goto out;
    }
    w->ok_rounds++;
  }
out:
  redisFree(c);
  return NULL;
}

/* ---- tests ------------------------------------------------------------ */

static void t_healthy(int port) {
  redisContext *c = rconn(port, 5000);
  T_OK(c && !c->err, "connect through the proxy (%s)", c ? c->errstr : "");
  char out[64];
  T_OK(rcmd(c, out, sizeof out, "SET itest_proxy:k %s", "v1") == 0 &&
           strcmp(out, "OK") == 0,
       "SET through the proxy");
  T_OK(rcmd(c, out, sizeof out, "GET itest_proxy:k") == 0 &&
           strcmp(out, "v1") == 0,
       "GET through the proxy returns the value");

  size_t n = 1024 * 1024;
  char *big = malloc(n);
  for (size_t i = 0; i < n; i++)
    big[i] = (char)('a' + (i * 7919 + i / 1000) % 26);
  redisReply *r = redisCommand(c, "SET itest_proxy:big %b", big, n);
  T_OK(r && r->type == REDIS_REPLY_STATUS, "SET of a 1 MB value");
  freeReplyObject(r);
  r = redisCommand(c, "GET itest_proxy:big");
  T_OK(r && r->type == REDIS_REPLY_STRING && r->len == n &&
           memcmp(r->str, big, n) == 0,
       "GET of the 1 MB value returns it intact");
  freeReplyObject(r);
  /* and intact on the server itself */
  redisContext *d = rconn(redis_port, 5000);
  r = redisCommand(d, "GET itest_proxy:big");
  T_OK(r && r->type == REDIS_REPLY_STRING && r->len == n &&
           memcmp(r->str, big, n) == 0,
       "the 1 MB value reached Redis intact");
  freeReplyObject(r);
  redisFree(d);
  free(big);
  redisFree(c);
}

static void t_latency(er_proxy_set_t *s, int port) {
  er_err_t err = {0};
  /* a pooled connection opened before the fault */
  redisContext *pool = rconn(port, 5000);
  int64_t base = rtt_median(pool, 9);
  T_OK(base >= 0, "baseline round trip through the proxy: %lld us",
       (long long)base);

  T_OK(er_proxy_latency(s, "redis", ER_PROXY_DOWNSTREAM, 50, 0, &err) == 0,
       "latency 50ms downstream set (%s)", err.msg);
  int64_t m = rtt_median(pool, 7);
  T_OK(m - base >= 50000 && m - base < 200000,
       "latency 50ms downstream: existing connection's round trip +%lld us "
       "(want 50000..200000)",
       (long long)(m - base));
  redisContext *fresh = rconn(port, 5000);
  m = rtt_median(fresh, 7);
  T_OK(m - base >= 50000 && m - base < 200000,
       "latency 50ms downstream: new connection's round trip +%lld us",
       (long long)(m - base));

  T_OK(er_proxy_latency(s, "redis", ER_PROXY_DOWNSTREAM, 0, 0, &err) == 0 &&
           er_proxy_latency(s, "redis", ER_PROXY_UPSTREAM, 50, 0, &err) == 0,
       "latency moved to upstream (%s)", err.msg);
  m = rtt_median(pool, 7);
  T_OK(m - base >= 50000 && m - base < 200000,
       "latency 50ms upstream: round trip +%lld us", (long long)(m - base));

  T_OK(er_proxy_latency(s, "redis", ER_PROXY_BOTH, 50, 0, &err) == 0,
       "latency 50ms both (%s)", err.msg);
  m = rtt_median(pool, 5);
  T_OK(m - base >= 100000 && m - base < 250000,
       "latency 50ms both ways: round trip +%lld us (want 100000..250000)",
       (long long)(m - base));

  /* jitter: bounded, and order preserved with pipelined commands */
  T_OK(er_proxy_latency(s, "redis", ER_PROXY_BOTH, 0, 0, &err) == 0 &&
           er_proxy_latency(s, "redis", ER_PROXY_DOWNSTREAM, 40, 30, &err) == 0,
       "latency 40ms +/- 30ms downstream (%s)", err.msg);
  int64_t mn = INT64_MAX, mx = 0;
  for (int i = 0; i < 10; i++) {
    char out[16];
    int64_t t0 = er_now_us();
    rcmd(pool, out, sizeof out, "PING");
    int64_t d = er_now_us() - t0 - base;
    mn = d < mn ? d : mn;
    mx = d > mx ? d : mx;
  }
  T_OK(mn >= 10000 && mx < 70000 + 150000,
       "jitter: added delays between %lld and %lld us (want >= 10000, "
       "< 220000)",
       (long long)mn, (long long)mx);
  rcmd(pool, NULL, 0, "DEL itest_proxy:ctr");
  for (int i = 0; i < 100; i++)
    redisAppendCommand(pool, "INCR itest_proxy:ctr");
  int in_order = 0;
  for (int i = 0; i < 100; i++) {
    redisReply *r = NULL;
    if (redisGetReply(pool, (void **)&r) == REDIS_OK && r &&
        r->type == REDIS_REPLY_INTEGER && r->integer == i + 1)
      in_order++;
    freeReplyObject(r);
  }
  T_OK(in_order == 100,
       "100 pipelined replies under jitter arrive in order "
       "(%d in order)",
       in_order);

  T_OK(er_proxy_heal(s, "redis", &err) == 0, "heal (%s)", err.msg);
  m = rtt_median(pool, 9);
  T_OK(m >= 0 && m - base < 20000,
       "after heal the existing connection is fast again (+%lld us)",
       (long long)(m - base));
  redisFree(fresh);
  redisFree(pool);
}

static void t_blackhole(er_proxy_set_t *s, int port) {
  er_err_t err = {0};
  redisContext *pool = rconn(port, 500);
  char out[64];
  T_OK(rcmd(pool, out, sizeof out, "PING") == 0, "pooled connection works");
  int raw = raw_connect(port);
  bool eof = false;
  char buf[256];
  send(raw, "PING\r\n", 6, MSG_NOSIGNAL);
  raw_read(raw, buf, sizeof buf, 7, 2000, &eof);
  T_STREQ(buf, "+PONG\r\n", "raw connection works before the blackhole");
  redisContext *d = rconn(redis_port, 5000);
  rcmd(d, NULL, 0, "DEL itest_proxy:bh");

  T_OK(er_proxy_blackhole(s, "redis", &err) == 0, "blackhole (%s)", err.msg);
  int64_t t0 = er_now_ms();
  int rc = rcmd(pool, out, sizeof out, "PING");
  int64_t el = er_now_ms() - t0;
  T_OK(rc < 0 && el >= 450 && el < 1500,
       "blackhole: existing connection times out at its 500 ms timeout "
       "(%lld ms, %s)",
       (long long)el, pool->errstr);
  redisContext *fresh = rconn(port, 500);
  T_OK(fresh && !fresh->err, "blackhole: a new connection is accepted (%s)",
       fresh ? fresh->errstr : "");
  t0 = er_now_ms();
  rc = rcmd(fresh, out, sizeof out, "PING");
  el = er_now_ms() - t0;
  T_OK(rc < 0 && el >= 450 && el < 1500,
       "blackhole: new connection's command times out (%lld ms)",
       (long long)el);

  send(raw, "SET itest_proxy:bh 1\r\n", 22, MSG_NOSIGNAL);
  size_t got = raw_read(raw, buf, sizeof buf, 1, 600, &eof);
  T_OK(got == 0 && !eof,
       "blackhole: no reply and no close on the raw "
       "connection (%zu bytes)",
       got);
  T_OK(er_proxy_heal(s, "redis", &err) == 0, "heal (%s)", err.msg);
  got = raw_read(raw, buf, sizeof buf, 1, 300, &eof);
  T_OK(got == 0 && !eof,
       "after heal the blackholed command is not "
       "delivered late (%zu bytes)",
       got);
  T_OK(rcmd(d, out, sizeof out, "EXISTS itest_proxy:bh") == 0 &&
           strcmp(out, "0") == 0,
       "the blackholed SET never reached Redis (EXISTS = %s)", out);
  send(raw, "PING\r\n", 6, MSG_NOSIGNAL);
  raw_read(raw, buf, sizeof buf, 7, 2000, &eof);
  T_STREQ(buf, "+PONG\r\n",
          "the same raw connection passes data again after heal, and only "
          "the new reply");
  redisFree(fresh);
  redisFree(pool);
  fresh = rconn(port, 2000);
  T_OK(rcmd(fresh, out, sizeof out, "PING") == 0 && strcmp(out, "PONG") == 0,
       "after heal a new connection works");
  redisFree(fresh);
  redisFree(d);
  close(raw);
}

static void t_down_up(er_proxy_set_t *s, int port) {
  er_err_t err = {0};
  redisContext *pool = rconn(port, 5000);
  char out[64];
  T_OK(rcmd(pool, out, sizeof out, "PING") == 0, "pooled connection works");
  redisContext *extra = rconn(port, 5000);
  T_OK(rcmd(extra, out, sizeof out, "PING") == 0, "second pooled connection");
  redisContext *d = rconn(redis_port, 5000);
  long before = redis_clients(d);
  int64_t t0 = er_now_ms();
  T_OK(er_proxy_down(s, "redis", &err) == 0, "down (%s)", err.msg);
  int rc = rcmd(pool, out, sizeof out, "PING");
  int64_t el = er_now_ms() - t0;
  T_OK(rc < 0 && el < 250,
       "down: a command on an existing connection fails at once (%lld ms, "
       "%s)",
       (long long)el, pool->errstr);
  t0 = er_now_ms();
  redisContext *fresh = rconn(port, 5000);
  el = er_now_ms() - t0;
  T_OK(fresh && fresh->err && el < 250,
       "down: a new connect fails at once (%lld ms, %s)", (long long)el,
       fresh ? fresh->errstr : "");
  T_OK(fresh && strstr(fresh->errstr, "refused") != NULL,
       "down: the connect is refused (%s)", fresh ? fresh->errstr : "");
  redisFree(fresh);
  er_proxy_stats_t st;
  T_OK(er_proxy_stats(s, "redis", &st, &err) == 0 && st.open == 0,
       "down: no connection open (%llu)", (unsigned long long)st.open);
  long after = -1;
  for (int64_t end = er_now_ms() + 2000; er_now_ms() < end; usleep(5000))
    if ((after = redis_clients(d)) == before - 2)
      break;
  T_OK(after == before - 2,
       "down: the upstream side is closed too (Redis clients %ld -> %ld)",
       before, after);
  redisFree(d);
  redisFree(extra);
  T_OK(er_proxy_down(s, "redis", &err) == 0, "down twice is fine");
  T_OK(er_proxy_up(s, "redis", &err) == 0, "up (%s)", err.msg);
  T_OK(er_proxy_port(s, "redis", &err) == port, "up: same port");
  fresh = rconn(port, 5000);
  T_OK(fresh && !fresh->err && rcmd(fresh, out, sizeof out, "PING") == 0 &&
           strcmp(out, "PONG") == 0,
       "up: new connections work again");
  redisFree(fresh);
  redisFree(pool);
}

static void t_reset_peer(er_proxy_set_t *s, int port) {
  er_err_t err = {0};
  redisContext *pool = rconn(port, 5000);
  char out[64];
  T_OK(rcmd(pool, out, sizeof out, "PING") == 0, "pooled connection works");
  er_proxy_stats_t st0, st;
  er_proxy_stats(s, "redis", &st0, &err);
  int64_t t0 = er_now_ms();
  T_OK(er_proxy_reset_peer(s, "redis", 150, &err) == 0, "reset_peer 150ms");
  /* BLPOP blocks on the server; the reset must cut it short */
  int rc = rcmd(pool, out, sizeof out, "BLPOP itest_proxy:nolist 3");
  int64_t el = er_now_ms() - t0;
  T_OK(rc < 0 && strstr(pool->errstr, "reset") != NULL,
       "reset_peer: existing connection gets a connection reset (%s)",
       pool->errstr);
  T_OK(el >= 140 && el < 1000, "reset_peer: after its delay (%lld ms)",
       (long long)el);
  t0 = er_now_ms();
  redisContext *fresh = rconn(port, 5000);
  T_OK(fresh && !fresh->err, "reset_peer: a new connection is accepted");
  rc = rcmd(fresh, out, sizeof out, "BLPOP itest_proxy:nolist 3");
  el = er_now_ms() - t0;
  T_OK(rc < 0 && strstr(fresh->errstr, "reset") != NULL && el >= 140 &&
           el < 1000,
       "reset_peer: a new connection is reset after the delay too (%lld ms, "
       "%s)",
       (long long)el, fresh->errstr);
  T_OK(er_proxy_stats(s, "redis", &st, &err) == 0 &&
           st.resets == st0.resets + 2,
       "stats: 2 resets counted (%llu)",
       (unsigned long long)(st.resets - st0.resets));
  redisFree(fresh);
  redisFree(pool);
  T_OK(er_proxy_heal(s, "redis", &err) == 0, "heal");
  fresh = rconn(port, 5000);
  rc = rcmd(fresh, out, sizeof out, "BLPOP itest_proxy:nolist 1");
  T_OK(rc == 0 && strcmp(out, "(nil)") == 0,
       "after heal a connection outlives the old delay (%s)", fresh->errstr);
  redisFree(fresh);
}

static void t_half_close(int port) {
  int raw = raw_connect(port);
  send(raw, "PING\r\n", 6, MSG_NOSIGNAL);
  shutdown(raw, SHUT_WR);
  char buf[64];
  bool eof = false;
  raw_read(raw, buf, sizeof buf, sizeof buf, 3000, &eof);
  T_STREQ(buf, "+PONG\r\n",
          "half-close: the reply still arrives after the "
          "client's FIN");
  T_OK(eof, "half-close: the client's FIN reached Redis and Redis's FIN came "
            "back");
  close(raw);
  raw = raw_connect(port);
  send(raw, "QUIT\r\n", 6, MSG_NOSIGNAL);
  raw_read(raw, buf, sizeof buf, sizeof buf, 3000, &eof);
  T_OK(strcmp(buf, "+OK\r\n") == 0 && eof,
       "server-side close: QUIT's reply, then EOF (%s)", eof ? "eof" : "open");
  close(raw);
}

static void t_many(er_proxy_set_t *s, int port) {
  er_err_t err = {0};
  pthread_t th[N_CLIENTS];
  worker_t w[N_CLIENTS];
  memset(w, 0, sizeof w);
  int64_t t0 = er_now_ms();
  for (int i = 0; i < N_CLIENTS; i++) {
    w[i].port = port;
    pthread_create(&th[i], NULL, worker, &w[i]);
  }
  int all = 0;
  for (int i = 0; i < N_CLIENTS; i++) {
    pthread_join(th[i], NULL);
    if (w[i].ok_rounds == N_ROUNDS)
      all++;
    else
      printf("# client %d: %s\n", i, w[i].err);
  }
  T_OK(all == N_CLIENTS,
       "%d clients x %d round trips: %d clients all "
       "succeeded (%lld ms)",
       N_CLIENTS, N_ROUNDS, all, (long long)(er_now_ms() - t0));
  er_proxy_stats_t st;
  T_OK(wait_open(s, "many", 0, &st), "stats: open returns to 0 (%llu)",
       (unsigned long long)st.open);
  T_OK(st.accepted == N_CLIENTS && st.refused == 0,
       "stats: accepted %llu (want %d), refused %llu",
       (unsigned long long)st.accepted, N_CLIENTS,
       (unsigned long long)st.refused);
  /* PING is "*1\r\n$4\r\nPING\r\n" (14 bytes), PONG "+PONG\r\n" (7) */
  T_OK(st.bytes_up == (uint64_t)N_CLIENTS * N_ROUNDS * 14,
       "stats: bytes up %llu (want %d)", (unsigned long long)st.bytes_up,
       N_CLIENTS * N_ROUNDS * 14);
  T_OK(st.bytes_down == (uint64_t)N_CLIENTS * N_ROUNDS * 7,
       "stats: bytes down %llu (want %d)", (unsigned long long)st.bytes_down,
       N_CLIENTS * N_ROUNDS * 7);
  T_OK(st.dropped_up == 0 && st.dropped_down == 0 && st.upstream_errors == 0,
       "stats: nothing dropped, no upstream error");
  (void)err;
}

/* A client that does not read: the proxy stops reading from Redis once its
 * 64 KiB queue is full, so Redis holds the rest in its output buffer; when
 * the client reads, every byte arrives. */
static void t_backpressure(er_proxy_set_t *s, int port) {
  enum { N_GETS = 40 };
  const size_t one = 1024 * 1024;
  const size_t each = strlen("$1048576\r\n") + one + 2;
  int raw = socket(AF_INET, SOCK_STREAM, 0);
  int small = 32 * 1024;
  setsockopt(raw, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  T_OK(connect(raw, (struct sockaddr *)&sa, sizeof sa) == 0,
       "back-pressure: connected");
  for (int i = 0; i < N_GETS; i++)
    send(raw, "GET itest_proxy:big\r\n", 21, MSG_NOSIGNAL);
  redisContext *d = rconn(redis_port, 5000);
  long long omem = -1;
  for (int64_t end = er_now_ms() + 3000; er_now_ms() < end; usleep(20000))
    if ((omem = redis_max_omem(d)) > 10 * 1024 * 1024)
      break;
  T_OK(omem > 10 * 1024 * 1024,
       "back-pressure: Redis holds %lld bytes the proxy did not read "
       "(%d MB requested)",
       omem, N_GETS);
  size_t want = N_GETS * each, got = 0;
  char *buf = malloc(want + 1);
  int64_t end = er_now_ms() + 20000;
  while (got < want && er_now_ms() < end) {
    struct pollfd pf = {raw, POLLIN, 0};
    if (poll(&pf, 1, 1000) <= 0)
      continue;
    ssize_t n = recv(raw, buf + got, want + 1 - got, 0);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  bool intact = got == want;
  for (int i = 0; intact && i < N_GETS; i++)
    intact = memcmp(buf + (size_t)i * each, "$1048576\r\n", 10) == 0 &&
             memcmp(buf + (size_t)i * each + each - 2, "\r\n", 2) == 0;
  T_OK(intact, "back-pressure: then all %zu bytes arrive, framed (%zu)", want,
       got);
  er_proxy_stats_t st;
  er_err_t err = {0};
  T_OK(er_proxy_stats(s, "small", &st, &err) == 0 && st.dropped_down == 0 &&
           st.bytes_down == want,
       "back-pressure: stats count %llu bytes down, none dropped",
       (unsigned long long)st.bytes_down);
  free(buf);
  redisFree(d);
  close(raw);
  T_OK(wait_open(s, "small", 0, &st), "back-pressure: connection closed");
}

static void t_limits_and_errors(void) {
  er_err_t err = {0};
  er_proxy_limits_t lim = {0};
  lim.max_conns = 2;
  lim.buf_cap = 64 * 1024;
  er_proxy_set_t *s = er_proxy_set_new(&lim, &err);
  int port = 0, dead_port = 0;
  T_OK(s && er_proxy_add(s, "small", 0, "localhost", redis_port, &port, &err) ==
                0,
       "second set, proxy to localhost (%s)", err.msg);
  /* an upstream nobody listens on: a port we just had and closed */
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(lfd, (struct sockaddr *)&sa, sizeof sa);
  getsockname(lfd, (struct sockaddr *)&sa, &len);
  close(lfd);
  T_OK(er_proxy_add(s, "nowhere", 0, "127.0.0.1", ntohs(sa.sin_port),
                    &dead_port, &err) == 0,
       "proxy to a closed upstream port");
  T_OK(er_proxy_set_start(s, &err) == 0, "start second set");

  t_backpressure(s, port);
  redisContext *a = rconn(port, 2000), *b = rconn(port, 2000);
  char out[32];
  T_OK(rcmd(a, out, sizeof out, "PING") == 0 &&
           rcmd(b, out, sizeof out, "PING") == 0,
       "max_conns 2: two connections work");
  redisContext *c = rconn(port, 2000);
  int64_t t0 = er_now_ms();
  int rc = c->err ? -1 : rcmd(c, out, sizeof out, "PING");
  T_OK(rc < 0 && er_now_ms() - t0 < 500,
       "max_conns 2: a third fails at once (%s)", c->errstr);
  er_proxy_stats_t st;
  T_OK(er_proxy_stats(s, "small", &st, &err) == 0 && st.refused == 1 &&
           st.accepted == 3,
       "stats: refused 1, accepted 3 (1 earlier + 2) (%llu, %llu)",
       (unsigned long long)st.refused, (unsigned long long)st.accepted);
  redisFree(a);
  redisFree(b);
  redisFree(c);

  c = rconn(dead_port, 2000);
  t0 = er_now_ms();
  rc = c->err ? -1 : rcmd(c, out, sizeof out, "PING");
  T_OK(rc < 0 && er_now_ms() - t0 < 500,
       "upstream down: the client's command fails at once (%s)", c->errstr);
  redisFree(c);
  T_OK(er_proxy_stats(s, "nowhere", &st, &err) == 0 && st.upstream_errors == 1,
       "stats: one upstream error (%llu)",
       (unsigned long long)st.upstream_errors);

  er_err_clear(&err);
  T_OK(er_proxy_port(s, "smal", &err) == -1, "unknown proxy name fails");
  T_STREQ(err.msg, "no proxy named \"smal\" (did you mean \"small\"?)",
          "unknown proxy: message with a suggestion");
  er_err_clear(&err);
  T_OK(er_proxy_latency(s, "small", ER_PROXY_BOTH, 10, 20, &err) == -1,
       "jitter above latency is refused");
  T_STREQ(err.msg,
          "proxy \"small\": latency 10ms jitter 20ms: need 0 <= jitter <= "
          "latency <= 1h",
          "jitter: message");
  er_err_clear(&err);
  T_OK(er_proxy_add(s, "small", 0, "127.0.0.1", 1, NULL, &err) == -1,
       "a duplicate name is refused");
  T_STREQ(err.msg, "proxy \"small\" is defined twice", "duplicate: message");
  er_err_clear(&err);
  er_proxy_dir_t dir;
  T_OK(er_proxy_dir_parse("sideways", &dir, &err) == -1 &&
           er_proxy_dir_parse("both", &dir, &err) == 0 && dir == ER_PROXY_BOTH,
       "direction parse");
  T_STREQ(err.msg,
          "direction \"sideways\": expected upstream, downstream or both",
          "direction: message");
  er_err_clear(&err);
  T_OK(er_proxy_add(s, "bad", 0, "no-such-host.invalid", 6379, NULL, &err) ==
           -1,
       "an unresolvable upstream is refused (%s)", err.msg);
  /* faults on all proxies, then heal_all */
  er_err_clear(&err);
  T_OK(er_proxy_blackhole(s, "small", &err) == 0 &&
           er_proxy_down(s, "nowhere", &err) == 0 &&
           er_proxy_heal_all(s, &err) == 0,
       "heal_all (%s)", err.msg);
  a = rconn(port, 2000);
  T_OK(rcmd(a, out, sizeof out, "PING") == 0 && strcmp(out, "PONG") == 0,
       "after heal_all the blackholed proxy passes data");
  redisFree(a);
  er_proxy_set_stop(s);
  er_err_clear(&err);
  T_OK(er_proxy_down(s, "small", &err) == -1 &&
           strcmp(err.msg, "proxy set is stopped") == 0,
       "a fault on a stopped set fails (%s)", err.msg);
  T_OK(er_proxy_heal_all(s, &err) == 0, "heal_all on a stopped set is fine");
  er_proxy_set_free(s);
}

int main(void) {
  const char *rp = getenv("REDIS_PORT");
  if (!rp) {
    printf("not ok 1 - REDIS_PORT not set\n");
    return 1;
  }
  redis_port = atoi(rp);
  int fds0 = count_dir("/proc/self/fd", false);
  int socks0 = count_dir("/proc/self/fd", true);
  int threads0 = count_dir("/proc/self/task", false);

  er_err_t err = {0};
  er_proxy_set_t *s = er_proxy_set_new(NULL, &err);
  T_OK(s != NULL, "set created (%s)", err.msg);
  int port = 0, mport = 0;
  T_OK(er_proxy_add(s, "redis", 0, "127.0.0.1", redis_port, &port, &err) == 0 &&
           port > 0,
       "proxy redis added on port %d (%s)", port, err.msg);
  T_OK(er_proxy_add(s, "many", 0, "127.0.0.1", redis_port, &mport, &err) == 0,
       "proxy many added on port %d", mport);
  T_OK(er_proxy_port(s, "redis", &err) == port, "lookup by name");
  T_OK(er_proxy_set_start(s, &err) == 0, "set started (%s)", err.msg);
  T_OK(count_dir("/proc/self/task", false) == threads0 + 1,
       "one loop thread for the whole set");

  t_healthy(port);
  t_latency(s, port);
  t_blackhole(s, port);
  t_down_up(s, port);
  t_reset_peer(s, port);
  t_half_close(port);
  t_many(s, mport);
  er_proxy_stats_t st;
  T_OK(er_proxy_stats(s, "redis", &st, &err) == 0 && st.bytes_up > 1048576 &&
           st.bytes_down > 1048576,
       "stats of redis: %llu accepted, %llu up, %llu down, %llu dropped up",
       (unsigned long long)st.accepted, (unsigned long long)st.bytes_up,
       (unsigned long long)st.bytes_down, (unsigned long long)st.dropped_up);
  t_limits_and_errors();

  /* a connection left open at stop is closed by stop */
  int raw = raw_connect(port);
  char buf[16];
  bool eof = false;
  send(raw, "PING\r\n", 6, MSG_NOSIGNAL);
  raw_read(raw, buf, sizeof buf, 7, 2000, &eof);
  er_proxy_set_free(s);
  raw_read(raw, buf, sizeof buf, sizeof buf, 2000, &eof);
  T_OK(eof, "stopping the set closes open connections");
  close(raw);
  T_OK(raw_connect(port) < 0, "after stop the port refuses connections");

  int fds1 = count_dir("/proc/self/fd", false);
  int socks1 = count_dir("/proc/self/fd", true);
  int threads1 = count_dir("/proc/self/task", false);
  T_OK(fds1 == fds0 && socks1 == socks0,
       "no descriptor left open: %d fds (%d sockets) before, %d (%d) after",
       fds0, socks0, fds1, socks1);
  T_OK(threads1 == threads0, "no thread left: %d before, %d after", threads0,
       threads1);
  return t_done();
}
