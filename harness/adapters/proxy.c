/* proxy.c: TCP fault proxies on one epoll loop thread (see proxy.h).
 *
 * Threading: the loop thread owns every socket, connection and fault
 * field. Other threads talk to it only through er_proxy_set_t.cmd (one
 * slot, guarded by mu) and an eventfd; the loop applies the command under
 * mu and signals cv. The proxy list is changed only under mu (by the loop,
 * or inline before the loop runs), so callers may read it under mu.
 *
 * Data path: each connection has two pipes (up: client -> upstream, down:
 * upstream -> client). Bytes read from a side go straight to the other
 * side when nothing is queued and no latency applies (the fast path);
 * otherwise they go into a queue of chunks, each with a release time.
 * Release times never decrease along a queue, so order is preserved even
 * with jitter. The loop never sleeps: epoll_wait's timeout is the nearest
 * release time, reset deadline or connect deadline.
 */
#include "adapters/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEF_BUF_CAP (256u * 1024u)
#define DEF_MAX_CONNS 512
#define DEF_CONNECT_MS 5000
#define DEF_CMD_MS 10000
#define IOBUF_LEN (64u * 1024u)
#define MAX_EVENTS 64
#define READS_PER_EVENT 4
#define ACCEPTS_PER_EVENT 64

enum { TAG_WAKE = 1, TAG_LISTEN, TAG_SIDE };
enum { DIR_UP = 0, DIR_DOWN = 1 };

typedef struct chunk {
  struct chunk *next;
  int64_t release_us; /* monotonic; never earlier than the chunk ahead */
  size_t len, off;
  char data[];
} chunk_t;

typedef struct pipeq {
  chunk_t *head, *tail;
  size_t queued; /* unsent bytes in the queue */
  bool want_out; /* due data blocked on a full socket: wait for EPOLLOUT */
} pipeq_t;

struct conn;

typedef struct side {
  int tag; /* TAG_SIDE; first member: epoll data.ptr points here */
  struct conn *conn;
  int fd;       /* -1 once closed */
  uint32_t ev;  /* events registered in epoll; 0 = not registered */
  bool rd_eof;  /* the peer sent FIN (read returned 0) */
  bool wr_shut; /* we sent FIN (shutdown SHUT_WR) */
  bool dead;    /* failed (err); fd closed */
  int err;
} side_t;

typedef struct conn {
  struct proxy *p;
  struct conn *prev, *next;
  side_t c, u;
  pipeq_t up, down; /* up: c -> u, down: u -> c */
  bool connecting;  /* upstream connect in progress */
  bool closed;      /* on the grave list, freed at the end of the batch */
  int64_t connect_deadline_us;
  int64_t reset_at_us; /* 0 = no reset pending */
} conn_t;

typedef struct proxy {
  int tag; /* TAG_LISTEN; first member */
  struct proxy *next;
  er_proxy_set_t *set;
  char *name;
  int lfd; /* -1 while down */
  int port;
  struct sockaddr_storage up_addr;
  socklen_t up_len;
  char *up_desc; /* "host:port" for messages */
  conn_t *conns;
  int nconns;
  /* faults */
  bool down, blackhole;
  int64_t lat_ms[2], jit_ms[2]; /* [DIR_UP], [DIR_DOWN] */
  int64_t reset_delay_ms;       /* -1 = no reset_peer */
  er_proxy_stats_t st;
} proxy_t;

enum {
  OP_DOWN = 1,
  OP_UP,
  OP_LATENCY,
  OP_RESET,
  OP_BLACKHOLE,
  OP_HEAL,
  OP_HEAL_ALL,
  OP_STATS,
  OP_ADD,
};

typedef struct cmd {
  int op;
  proxy_t *p; /* target (resolved by the caller under mu) */
  er_proxy_dir_t dir;
  int64_t a, b;
  int rc;
  er_err_t err;
  er_proxy_stats_t stats;
} cmd_t;

struct er_proxy_set {
  int wake_tag; /* TAG_WAKE; epoll data.ptr for the eventfd */
  er_proxy_limits_t lim;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool mu_ok, cv_ok;
  int epfd, wakefd;
  bool running;   /* loop thread started and not joined */
  bool stopped;   /* er_proxy_set_stop ran */
  bool stop_req;  /* loop: exit at the end of this batch */
  bool loop_dead; /* loop thread ended on an error */
  char loop_msg[256];
  pthread_t thr;
  proxy_t *proxies;
  cmd_t cmd; /* the slot */
  bool cmd_pending, cmd_abandoned;
  uint64_t cmd_seq, cmd_done_seq;
  conn_t *grave; /* closed connections, freed after the batch */
  char *iobuf;
  uint64_t rng;
};

/* ---- small helpers ---------------------------------------------------- */

static uint64_t rng_next(er_proxy_set_t *s) {
  /* xorshift64*: jitter only, not security */
  uint64_t x = s->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static void set_nodelay(int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void close_rst(int fd) {
  struct linger lg = {1, 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

static void wake(er_proxy_set_t *s) {
  uint64_t one = 1;
  ssize_t n;
  do {
    n = write(s->wakefd, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
  /* EAGAIN means the counter is already non-zero: the loop will wake. */
}

/* Opens a non-blocking listening socket on 127.0.0.1:port. */
static int listen_on(const char *name, int port, int *port_out, er_err_t *err) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return er_errf(err, ER_E_ENV, "proxy \"%s\": socket: %s", name,
                   strerror(errno));
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return er_errf(err, ER_E_ENV,
                   "proxy \"%s\": cannot listen on 127.0.0.1:%d: %s", name,
                   port, strerror(e));
  }
  if (listen(fd, SOMAXCONN) < 0) {
    int e = errno;
    close(fd);
    return er_errf(err, ER_E_ENV, "proxy \"%s\": listen on 127.0.0.1:%d: %s",
                   name, port, strerror(e));
  }
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
    int e = errno;
    close(fd);
    return er_errf(err, ER_E_ENV, "proxy \"%s\": getsockname: %s", name,
                   strerror(e));
  }
  *port_out = ntohs(sa.sin_port);
  return fd;
}

/* ---- queues ----------------------------------------------------------- */

/* Drops everything queued; returns the number of bytes dropped. */
static size_t pipe_clear(pipeq_t *q) {
  size_t n = q->queued;
  chunk_t *ch = q->head;
  while (ch) {
    chunk_t *nx = ch->next;
    free(ch);
    ch = nx;
  }
  q->head = q->tail = NULL;
  q->queued = 0;
  q->want_out = false;
  return n;
}

/* Every queued chunk becomes due now (latency removed). */
static void pipe_release_all(pipeq_t *q) {
  for (chunk_t *ch = q->head; ch; ch = ch->next)
    ch->release_us = 0;
}

/* ---- connections ------------------------------------------------------ */

static void side_events(er_proxy_set_t *s, side_t *sd, uint32_t want) {
  if (sd->dead || sd->fd < 0 || want == sd->ev)
    return;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = want;
  ev.data.ptr = sd;
  int rc;
  if (want == 0)
    rc = epoll_ctl(s->epfd, EPOLL_CTL_DEL, sd->fd, NULL);
  else
    rc =
        epoll_ctl(s->epfd, sd->ev ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sd->fd, &ev);
  if (rc == 0)
    sd->ev = want;
}

static void side_close(side_t *sd, bool rst) {
  if (sd->fd >= 0) {
    /* out of epoll before the close: a child forked by another thread
     * holds a copy of the socket until its exec, and while any copy is
     * open epoll goes on reporting the socket, with a pointer to this
     * side after its connection is freed */
    if (sd->ev && sd->conn)
      epoll_ctl(sd->conn->p->set->epfd, EPOLL_CTL_DEL, sd->fd, NULL);
    if (rst)
      close_rst(sd->fd);
    else
      close(sd->fd);
  }
  sd->fd = -1;
  sd->ev = 0;
}

/* Marks a side failed and closes its socket; what becomes of the other
 * side is conn_update's decision. Queued bytes for it are dropped. */
static void side_fail(conn_t *cn, side_t *sd, int e) {
  if (sd->dead)
    return;
  sd->dead = true;
  sd->err = e;
  side_close(sd, false);
  if (sd == &cn->u) {
    cn->p->st.dropped_up += pipe_clear(&cn->up);
    cn->connecting = false;
  } else {
    cn->p->st.dropped_down += pipe_clear(&cn->down);
  }
}

static void conn_close(conn_t *cn, bool rst) {
  if (cn->closed)
    return;
  proxy_t *p = cn->p;
  side_close(&cn->c, rst);
  side_close(&cn->u, rst);
  p->st.dropped_up += pipe_clear(&cn->up);
  p->st.dropped_down += pipe_clear(&cn->down);
  if (cn->prev)
    cn->prev->next = cn->next;
  else
    p->conns = cn->next;
  if (cn->next)
    cn->next->prev = cn->prev;
  p->nconns--;
  cn->closed = true;
  cn->prev = NULL;
  cn->next = p->set->grave;
  p->set->grave = cn;
}

static void grave_free(er_proxy_set_t *s) {
  conn_t *cn = s->grave;
  while (cn) {
    conn_t *nx = cn->next;
    free(cn);
    cn = nx;
  }
  s->grave = NULL;
}

static bool upstream_ready(const conn_t *cn) {
  return !cn->connecting && !cn->u.dead;
}

/* Sends due chunks of q to dest. */
static void pipe_flush(conn_t *cn, pipeq_t *q, side_t *dest, int dir,
                       int64_t now) {
  if (dest->dead || dest->fd < 0 || (dest == &cn->u && cn->connecting))
    return;
  proxy_t *p = cn->p;
  while (q->head && q->head->release_us <= now) {
    chunk_t *ch = q->head;
    ssize_t w = send(dest->fd, ch->data + ch->off, ch->len - ch->off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        q->want_out = true;
        return;
      }
      side_fail(cn, dest, errno);
      return;
    }
    ch->off += (size_t)w;
    q->queued -= (size_t)w;
    if (dir == DIR_UP)
      p->st.bytes_up += (uint64_t)w;
    else
      p->st.bytes_down += (uint64_t)w;
    if (ch->off < ch->len) {
      q->want_out = true; /* partial write: the socket is full */
      return;
    }
    q->head = ch->next;
    if (!q->head)
      q->tail = NULL;
    free(ch);
  }
  q->want_out = false;
}

/* Takes n bytes read from the source of q (direction dir). */
static void pipe_push(conn_t *cn, pipeq_t *q, side_t *dest, int dir,
                      const char *buf, size_t n) {
  proxy_t *p = cn->p;
  int64_t lat = p->lat_ms[dir], jit = p->jit_ms[dir];
  if (dest->dead) {
    if (dir == DIR_UP)
      p->st.dropped_up += n;
    else
      p->st.dropped_down += n;
    return;
  }
  if (lat == 0 && jit == 0 && !q->head && !dest->wr_shut &&
      (dest != &cn->u || upstream_ready(cn))) {
    /* fast path: straight through */
    ssize_t w;
    do {
      w = send(dest->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      side_fail(cn, dest, errno);
      return;
    }
    if (w > 0) {
      if (dir == DIR_UP)
        p->st.bytes_up += (uint64_t)w;
      else
        p->st.bytes_down += (uint64_t)w;
      buf += w;
      n -= (size_t)w;
    }
    if (n == 0)
      return;
    q->want_out = true; /* the rest waits for EPOLLOUT */
  }
  int64_t rel = 0;
  if (lat > 0 || jit > 0) {
    int64_t d = lat * 1000;
    if (jit > 0)
      d += (int64_t)(rng_next(p->set) % (uint64_t)(2 * jit * 1000 + 1)) -
           jit * 1000;
    if (d < 0)
      d = 0;
    rel = er_now_us() + d; /* from the read itself, not the batch start */
  }
  if (q->tail && q->tail->release_us > rel)
    rel = q->tail->release_us; /* keep order */
  chunk_t *ch = malloc(sizeof *ch + n);
  if (!ch) { /* out of memory: lose the connection rather than the order */
    side_fail(cn, dest, ENOMEM);
    return;
  }
  ch->next = NULL;
  ch->release_us = rel;
  ch->len = n;
  ch->off = 0;
  memcpy(ch->data, buf, n);
  if (q->tail)
    q->tail->next = ch;
  else
    q->head = ch;
  q->tail = ch;
  q->queued += n;
}

static void conn_read(conn_t *cn, side_t *src) {
  proxy_t *p = cn->p;
  er_proxy_set_t *s = p->set;
  bool from_client = src == &cn->c;
  pipeq_t *q = from_client ? &cn->up : &cn->down;
  side_t *dest = from_client ? &cn->u : &cn->c;
  int dir = from_client ? DIR_UP : DIR_DOWN;
  for (int i = 0; i < READS_PER_EVENT && !src->dead && !src->rd_eof; i++) {
    size_t room = IOBUF_LEN;
    if (!p->blackhole) {
      if (q->queued >= s->lim.buf_cap)
        break;
      if (s->lim.buf_cap - q->queued < room)
        room = s->lim.buf_cap - q->queued;
    }
    ssize_t n = recv(src->fd, s->iobuf, room, MSG_DONTWAIT);
    if (n > 0) {
      if (p->blackhole) {
        if (dir == DIR_UP)
          p->st.dropped_up += (uint64_t)n;
        else
          p->st.dropped_down += (uint64_t)n;
      } else {
        pipe_push(cn, q, dest, dir, s->iobuf, (size_t)n);
      }
      if ((size_t)n < room)
        break; /* drained for now */
    } else if (n == 0) {
      src->rd_eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else {
      side_fail(cn, src, errno);
    }
  }
}

static bool pipe_finished(const pipeq_t *q, const side_t *src,
                          const side_t *dest) {
  return src->rd_eof && !q->head && (dest->wr_shut || dest->dead);
}

static bool can_read(const proxy_t *p, const side_t *src, const pipeq_t *q) {
  return !src->dead && !src->rd_eof &&
         (p->blackhole || q->queued < p->set->lim.buf_cap);
}

/* Passes FIN on, closes finished or failed connections, sets epoll
 * interest. Call after anything that changed a connection. */
static void conn_update(conn_t *cn) {
  if (cn->closed)
    return;
  proxy_t *p = cn->p;
  if (cn->c.dead) {
    conn_close(cn, cn->c.err == ECONNRESET);
    return;
  }
  if (cn->u.dead && !p->blackhole) {
    /* a blackholed client keeps hanging; it learns after heal */
    conn_close(cn, cn->u.err == ECONNRESET);
    return;
  }
  if (!p->blackhole) {
    if (cn->c.rd_eof && !cn->up.head && !cn->u.wr_shut && upstream_ready(cn)) {
      if (shutdown(cn->u.fd, SHUT_WR) < 0)
        side_fail(cn, &cn->u, errno);
      cn->u.wr_shut = true;
    }
    if (cn->u.rd_eof && !cn->down.head && !cn->c.wr_shut && !cn->c.dead) {
      if (shutdown(cn->c.fd, SHUT_WR) < 0)
        side_fail(cn, &cn->c, errno);
      cn->c.wr_shut = true;
    }
    if (cn->c.dead || cn->u.dead) {
      conn_update(cn);
      return;
    }
    if (pipe_finished(&cn->up, &cn->c, &cn->u) &&
        pipe_finished(&cn->down, &cn->u, &cn->c)) {
      conn_close(cn, false);
      return;
    }
  }
  er_proxy_set_t *s = p->set;
  uint32_t cw = (can_read(p, &cn->c, &cn->up) ? EPOLLIN : 0) |
                (cn->down.want_out ? EPOLLOUT : 0);
  uint32_t uw;
  if (cn->connecting)
    uw = EPOLLOUT;
  else
    uw = (can_read(p, &cn->u, &cn->down) ? EPOLLIN : 0) |
         (cn->up.want_out ? EPOLLOUT : 0);
  side_events(s, &cn->c, cw);
  side_events(s, &cn->u, uw);
}

static void conn_new(proxy_t *p, int cfd, int64_t now) {
  er_proxy_set_t *s = p->set;
  conn_t *cn = calloc(1, sizeof *cn);
  if (!cn) {
    close_rst(cfd);
    p->st.refused++;
    return;
  }
  cn->p = p;
  cn->c.tag = cn->u.tag = TAG_SIDE;
  cn->c.conn = cn->u.conn = cn;
  cn->c.fd = cfd;
  cn->u.fd = -1;
  set_nodelay(cfd);
  cn->next = p->conns;
  if (p->conns)
    p->conns->prev = cn;
  p->conns = cn;
  p->nconns++;
  p->st.accepted++;
  if (p->reset_delay_ms >= 0)
    cn->reset_at_us = now + p->reset_delay_ms * 1000;
  int ufd = socket(p->up_addr.ss_family,
                   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (ufd < 0) {
    p->st.upstream_errors++;
    cn->u.dead = true;
    cn->u.err = errno;
    conn_update(cn);
    return;
  }
  set_nodelay(ufd);
  cn->u.fd = ufd;
  if (connect(ufd, (struct sockaddr *)&p->up_addr, p->up_len) == 0) {
    cn->connecting = false;
  } else if (errno == EINPROGRESS) {
    cn->connecting = true;
    cn->connect_deadline_us = now + s->lim.connect_timeout_ms * 1000;
  } else {
    p->st.upstream_errors++;
    side_fail(cn, &cn->u, errno);
  }
  conn_update(cn);
}

static void proxy_accept(proxy_t *p, int64_t now) {
  er_proxy_set_t *s = p->set;
  for (int i = 0; i < ACCEPTS_PER_EVENT && p->lfd >= 0; i++) {
    int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return; /* EAGAIN, or EMFILE and the like: try on the next event */
    }
    if (p->nconns >= s->lim.max_conns) {
      close_rst(fd);
      p->st.refused++;
      continue;
    }
    conn_new(p, fd, now);
  }
}

static void conn_event(conn_t *cn, side_t *sd, uint32_t ev, int64_t now) {
  if (cn->closed || sd->dead)
    return;
  if (sd == &cn->u && cn->connecting) {
    if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
      int e = 0;
      socklen_t len = sizeof e;
      if (getsockopt(sd->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        e = errno;
      if (e) {
        cn->p->st.upstream_errors++;
        side_fail(cn, sd, e);
      } else {
        cn->connecting = false;
        pipe_flush(cn, &cn->up, &cn->u, DIR_UP, now);
      }
    }
    conn_update(cn);
    return;
  }
  if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !sd->rd_eof)
    conn_read(cn, sd);
  if ((ev & EPOLLOUT) && !sd->dead) {
    if (sd == &cn->u)
      pipe_flush(cn, &cn->up, &cn->u, DIR_UP, now);
    else
      pipe_flush(cn, &cn->down, &cn->c, DIR_DOWN, now);
  }
  if ((ev & EPOLLERR) && !sd->dead) {
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(sd->fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e)
      side_fail(cn, sd, e);
  }
  conn_update(cn);
}

/* Timers of every connection; returns the nearest future deadline or -1. */
static int64_t tick(er_proxy_set_t *s, int64_t now) {
  int64_t next = -1;
#define NEAR(t)                                                                \
  do {                                                                         \
    if (next < 0 || (t) < next)                                                \
      next = (t);                                                              \
  } while (0)
  for (proxy_t *p = s->proxies; p; p = p->next) {
    conn_t *cn = p->conns;
    while (cn) {
      conn_t *nx = cn->next;
      if (cn->reset_at_us && now >= cn->reset_at_us) {
        p->st.resets++;
        conn_close(cn, true);
        cn = nx;
        continue;
      }
      if (cn->connecting && now >= cn->connect_deadline_us) {
        p->st.upstream_errors++;
        side_fail(cn, &cn->u, ETIMEDOUT);
      }
      if (!cn->up.want_out && cn->up.head && cn->up.head->release_us <= now)
        pipe_flush(cn, &cn->up, &cn->u, DIR_UP, now);
      if (!cn->down.want_out && cn->down.head &&
          cn->down.head->release_us <= now)
        pipe_flush(cn, &cn->down, &cn->c, DIR_DOWN, now);
      conn_update(cn);
      if (!cn->closed) {
        if (cn->reset_at_us)
          NEAR(cn->reset_at_us);
        if (cn->connecting)
          NEAR(cn->connect_deadline_us);
        if (cn->up.head && cn->up.head->release_us > now)
          NEAR(cn->up.head->release_us);
        if (cn->down.head && cn->down.head->release_us > now)
          NEAR(cn->down.head->release_us);
      }
      cn = nx;
    }
  }
#undef NEAR
  return next;
}

/* ---- commands (run by the loop under mu, or inline before start) ------ */

static int listener_register(er_proxy_set_t *s, proxy_t *p, er_err_t *err) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = p;
  if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, p->lfd, &ev) < 0)
    return er_errf(err, ER_E_ENV, "proxy \"%s\": epoll_ctl: %s", p->name,
                   strerror(errno));
  return 0;
}

static void close_all_conns(proxy_t *p) {
  while (p->conns)
    conn_close(p->conns, false);
}

static int do_up(er_proxy_set_t *s, proxy_t *p, er_err_t *err) {
  if (!p->down)
    return 0;
  int port = 0;
  int fd = listen_on(p->name, p->port, &port, err);
  if (fd < 0)
    return -1;
  p->lfd = fd;
  if (listener_register(s, p, err) < 0) {
    close(fd);
    p->lfd = -1;
    return -1;
  }
  p->down = false;
  return 0;
}

static void do_latency(proxy_t *p, int dir, int64_t ms, int64_t jit) {
  p->lat_ms[dir] = ms;
  p->jit_ms[dir] = jit;
  if (ms == 0 && jit == 0)
    for (conn_t *cn = p->conns; cn; cn = cn->next)
      pipe_release_all(dir == DIR_UP ? &cn->up : &cn->down);
}

/* Reads and discards what a side has pending (bounded). */
static void drain_discard(conn_t *cn, side_t *sd, int dir) {
  proxy_t *p = cn->p;
  for (int i = 0; i < 16 && !sd->dead && !sd->rd_eof && sd->fd >= 0; i++) {
    ssize_t n = recv(sd->fd, p->set->iobuf, IOBUF_LEN, MSG_DONTWAIT);
    if (n > 0) {
      if (dir == DIR_UP)
        p->st.dropped_up += (uint64_t)n;
      else
        p->st.dropped_down += (uint64_t)n;
    } else if (n == 0) {
      sd->rd_eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else {
      side_fail(cn, sd, errno);
    }
  }
}

static int do_heal(er_proxy_set_t *s, proxy_t *p, er_err_t *err) {
  if (p->blackhole)
    /* a clean cut: whatever was sent before heal (and is still in a
     * kernel buffer) belongs to the blackhole and is dropped */
    for (conn_t *cn = p->conns; cn; cn = cn->next) {
      drain_discard(cn, &cn->c, DIR_UP);
      if (!cn->connecting)
        drain_discard(cn, &cn->u, DIR_DOWN);
    }
  do_latency(p, DIR_UP, 0, 0);
  do_latency(p, DIR_DOWN, 0, 0);
  p->reset_delay_ms = -1;
  p->blackhole = false;
  for (conn_t *cn = p->conns; cn; cn = cn->next)
    cn->reset_at_us = 0;
  /* conn_update of each connection runs in the next tick */
  return do_up(s, p, err);
}

static void cmd_exec(er_proxy_set_t *s, cmd_t *c) {
  proxy_t *p = c->p;
  int64_t now = er_now_us();
  c->rc = 0;
  switch (c->op) {
  case OP_DOWN:
    if (!p->down) {
      p->down = true;
      if (p->lfd >= 0)
        close(p->lfd); /* pending connects in its backlog get RST */
      p->lfd = -1;
      close_all_conns(p);
    }
    break;
  case OP_UP:
    c->rc = do_up(s, p, &c->err);
    break;
  case OP_LATENCY:
    if (c->dir & ER_PROXY_UPSTREAM)
      do_latency(p, DIR_UP, c->a, c->b);
    if (c->dir & ER_PROXY_DOWNSTREAM)
      do_latency(p, DIR_DOWN, c->a, c->b);
    break;
  case OP_RESET:
    p->reset_delay_ms = c->a;
    for (conn_t *cn = p->conns; cn; cn = cn->next)
      cn->reset_at_us = now + c->a * 1000;
    break;
  case OP_BLACKHOLE:
    p->blackhole = true;
    for (conn_t *cn = p->conns; cn; cn = cn->next) {
      p->st.dropped_up += pipe_clear(&cn->up);
      p->st.dropped_down += pipe_clear(&cn->down);
      conn_update(cn); /* read (and discard) both sides from now on */
    }
    break;
  case OP_HEAL:
    c->rc = do_heal(s, p, &c->err);
    break;
  case OP_HEAL_ALL:
    for (proxy_t *q = s->proxies; q; q = q->next)
      if (do_heal(s, q, &c->err) < 0)
        c->rc = -1;
    break;
  case OP_STATS:
    c->stats = p->st;
    c->stats.open = (uint64_t)p->nconns;
    break;
  case OP_ADD:
    for (proxy_t *q = s->proxies; q; q = q->next)
      if (strcmp(q->name, p->name) == 0) {
        c->rc = er_errf(&c->err, ER_E_INPUT, "proxy \"%s\" is defined twice",
                        p->name);
        return;
      }
    if (listener_register(s, p, &c->err) < 0) {
      c->rc = -1;
      break;
    }
    p->next = s->proxies;
    s->proxies = p;
    break;
  default:
    c->rc = er_errf(&c->err, ER_E_INPUT, "proxy: unknown command %d", c->op);
  }
}

/* ---- the loop --------------------------------------------------------- */

static void loop_wake(er_proxy_set_t *s) {
  uint64_t v;
  while (read(s->wakefd, &v, sizeof v) < 0 && errno == EINTR)
    ;
  pthread_mutex_lock(&s->mu);
  if (s->cmd_pending) {
    if (!s->cmd_abandoned)
      cmd_exec(s, &s->cmd);
    s->cmd_pending = false;
    s->cmd_done_seq = s->cmd_seq;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
}

static bool loop_should_stop(er_proxy_set_t *s) {
  pthread_mutex_lock(&s->mu);
  bool stop = s->stop_req;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

static void *loop_main(void *arg) {
  er_proxy_set_t *s = arg;
  struct epoll_event evs[MAX_EVENTS];
  int timeout = -1;
  for (;;) {
    int n = epoll_wait(s->epfd, evs, MAX_EVENTS, timeout);
    if (n < 0 && errno != EINTR) {
      pthread_mutex_lock(&s->mu);
      snprintf(s->loop_msg, sizeof s->loop_msg, "epoll_wait: %s",
               strerror(errno));
      s->loop_dead = true;
      pthread_cond_broadcast(&s->cv);
      pthread_mutex_unlock(&s->mu);
      break;
    }
    int64_t now = er_now_us();
    bool woke = false;
    for (int i = 0; i < n; i++) {
      int tag = *(int *)evs[i].data.ptr;
      if (tag == TAG_WAKE) {
        loop_wake(s);
        woke = true;
      } else if (tag == TAG_LISTEN) {
        proxy_accept((proxy_t *)evs[i].data.ptr, now);
      } else {
        side_t *sd = evs[i].data.ptr;
        conn_event(sd->conn, sd, evs[i].events, now);
      }
    }
    now = er_now_us();
    int64_t next = tick(s, now);
    grave_free(s);
    if (woke && loop_should_stop(s))
      break;
    if (next < 0) {
      timeout = -1;
    } else {
      int64_t ms = (next - now + 999) / 1000;
      timeout = ms < 0 ? 0 : (ms > 60000 ? 60000 : (int)ms);
    }
  }
  return NULL;
}

/* ---- public API ------------------------------------------------------- */

int er_proxy_dir_parse(const char *s, er_proxy_dir_t *out, er_err_t *err) {
  if (s && strcmp(s, "upstream") == 0)
    *out = ER_PROXY_UPSTREAM;
  else if (s && strcmp(s, "downstream") == 0)
    *out = ER_PROXY_DOWNSTREAM;
  else if (s && strcmp(s, "both") == 0)
    *out = ER_PROXY_BOTH;
  else
    return er_errf(err, ER_E_INPUT,
                   "direction \"%s\": expected upstream, downstream or both",
                   s ? s : "(null)");
  return 0;
}

er_proxy_set_t *er_proxy_set_new(const er_proxy_limits_t *limits,
                                 er_err_t *err) {
  er_proxy_set_t *s = calloc(1, sizeof *s);
  if (!s) {
    er_errf(err, ER_E_ENV, "proxy set: out of memory");
    goto fail;
  }
  s->wake_tag = TAG_WAKE;
  s->epfd = s->wakefd = -1;
  if (limits)
    s->lim = *limits;
  if (s->lim.buf_cap == 0)
    s->lim.buf_cap = DEF_BUF_CAP;
  if (s->lim.max_conns <= 0)
    s->lim.max_conns = DEF_MAX_CONNS;
  if (s->lim.connect_timeout_ms <= 0)
    s->lim.connect_timeout_ms = DEF_CONNECT_MS;
  if (s->lim.cmd_timeout_ms <= 0)
    s->lim.cmd_timeout_ms = DEF_CMD_MS;
  s->rng = (uint64_t)er_now_us() * 0x9E3779B97F4A7C15ULL | 1;
  if (pthread_mutex_init(&s->mu, NULL) != 0) {
    er_errf(err, ER_E_ENV, "proxy set: mutex init failed");
    goto fail;
  }
  s->mu_ok = true;
  if (er_cond_init_mono(&s->cv) != 0) {
    er_errf(err, ER_E_ENV, "proxy set: condition variable init failed");
    goto fail;
  }
  s->cv_ok = true;
  s->iobuf = malloc(IOBUF_LEN);
  if (!s->iobuf) {
    er_errf(err, ER_E_ENV, "proxy set: out of memory");
    goto fail;
  }
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (s->epfd < 0) {
    er_errf(err, ER_E_ENV, "proxy set: epoll_create1: %s", strerror(errno));
    goto fail;
  }
  s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->wakefd < 0) {
    er_errf(err, ER_E_ENV, "proxy set: eventfd: %s", strerror(errno));
    goto fail;
  }
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = &s->wake_tag;
  if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev) < 0) {
    er_errf(err, ER_E_ENV, "proxy set: epoll_ctl: %s", strerror(errno));
    goto fail;
  }
  return s;
fail:
  er_proxy_set_free(s);
  return NULL;
}

static proxy_t *find_locked(er_proxy_set_t *s, const char *name,
                            er_err_t *err) {
  const char *cands[64];
  size_t n = 0;
  for (proxy_t *p = s->proxies; p; p = p->next) {
    if (name && strcmp(p->name, name) == 0)
      return p;
    if (n < sizeof cands / sizeof cands[0])
      cands[n++] = p->name;
  }
  const char *dym = name ? er_did_you_mean(name, cands, n) : NULL;
  if (dym)
    er_errf(err, ER_E_INPUT, "no proxy named \"%s\" (did you mean \"%s\"?)",
            name ? name : "(null)", dym);
  else
    er_errf(err, ER_E_INPUT, "no proxy named \"%s\"", name ? name : "(null)");
  return NULL;
}

/* Runs c on the loop (or inline if the loop is not running). name NULL:
 * no target proxy. c->err is copied into err. */
static int run_cmd(er_proxy_set_t *s, const char *name, cmd_t *c,
                   er_err_t *err) {
  int rc = -1;
  struct timespec ts;
  pthread_mutex_lock(&s->mu);
  if (s->stopped) {
    er_errf(err, ER_E_ENV, "proxy set is stopped");
    goto out;
  }
  if (s->loop_dead) {
    er_errf(err, ER_E_ENV, "proxy loop failed: %s", s->loop_msg);
    goto out;
  }
  if (name) {
    c->p = find_locked(s, name, err);
    if (!c->p)
      goto out;
  }
  er_err_clear(&c->err);
  if (!s->running) {
    cmd_exec(s, c);
  } else {
    er_deadline_ts(&ts, s->lim.cmd_timeout_ms);
    while (s->cmd_pending && !s->loop_dead)
      if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
        er_errf(err, ER_E_ENV, "proxy loop busy for %lldms",
                (long long)s->lim.cmd_timeout_ms);
        goto out;
      }
    s->cmd = *c;
    uint64_t my = ++s->cmd_seq;
    s->cmd_pending = true;
    s->cmd_abandoned = false;
    wake(s);
    while (s->cmd_done_seq < my && !s->loop_dead)
      if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
        if (s->cmd_pending && s->cmd_seq == my)
          s->cmd_abandoned = true;
        er_errf(err, ER_E_ENV, "proxy loop did not answer within %lldms",
                (long long)s->lim.cmd_timeout_ms);
        goto out;
      }
    if (s->cmd_done_seq < my) {
      er_errf(err, ER_E_ENV, "proxy loop failed: %s", s->loop_msg);
      goto out;
    }
    *c = s->cmd;
  }
  if (c->rc < 0) {
    er_errf(err, c->err.code ? c->err.code : ER_E_ENV, "%s", c->err.msg);
    goto out;
  }
  rc = 0;
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int er_proxy_add(er_proxy_set_t *s, const char *name, int listen_port,
                 const char *upstream_host, int upstream_port, int *port_out,
                 er_err_t *err) {
  proxy_t *p = NULL;
  struct addrinfo *res = NULL;
  int rc = -1;
  if (!name || !*name)
    return er_errf(err, ER_E_INPUT, "proxy: a name is required");
  if (listen_port < 0 || listen_port > 65535)
    return er_errf(err, ER_E_INPUT, "proxy \"%s\": listen port %d out of range",
                   name, listen_port);
  if (!upstream_host || !*upstream_host || upstream_port <= 0 ||
      upstream_port > 65535)
    return er_errf(err, ER_E_INPUT,
                   "proxy \"%s\": upstream host and port (1-65535) required",
                   name);
  p = calloc(1, sizeof *p);
  if (!p) {
    er_errf(err, ER_E_ENV, "proxy \"%s\": out of memory", name);
    goto out;
  }
  p->tag = TAG_LISTEN;
  p->set = s;
  p->lfd = -1;
  p->reset_delay_ms = -1;
  p->name = er_strdup(name);
  char portstr[16], desc[300];
  snprintf(portstr, sizeof portstr, "%d", upstream_port);
  snprintf(desc, sizeof desc, "%s:%d", upstream_host, upstream_port);
  p->up_desc = er_strdup(desc);
  if (!p->name || !p->up_desc) {
    er_errf(err, ER_E_ENV, "proxy \"%s\": out of memory", name);
    goto out;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int gai = getaddrinfo(upstream_host, portstr, &hints, &res);
  if (gai != 0) {
    er_errf(err, ER_E_ENV, "proxy \"%s\": cannot resolve upstream %s: %s", name,
            desc, gai_strerror(gai));
    goto out;
  }
  /* prefer IPv4: "localhost" servers often listen on 127.0.0.1 only */
  const struct addrinfo *pick = res;
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
    if (ai->ai_family == AF_INET) {
      pick = ai;
      break;
    }
  if (!pick || pick->ai_addrlen > sizeof p->up_addr) {
    er_errf(err, ER_E_ENV, "proxy \"%s\": odd upstream address", name);
    goto out;
  }
  memcpy(&p->up_addr, pick->ai_addr, pick->ai_addrlen);
  p->up_len = pick->ai_addrlen;
  p->lfd = listen_on(name, listen_port, &p->port, err);
  if (p->lfd < 0)
    goto out;
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = OP_ADD;
  c.p = p;
  if (run_cmd(s, NULL, &c, err) < 0)
    goto out;
  if (port_out)
    *port_out = p->port;
  p = NULL; /* owned by the set */
  rc = 0;
out:
  if (res)
    freeaddrinfo(res);
  if (p) {
    if (p->lfd >= 0)
      close(p->lfd);
    free(p->name);
    free(p->up_desc);
    free(p);
  }
  return rc;
}

int er_proxy_set_start(er_proxy_set_t *s, er_err_t *err) {
  int rc = -1;
  sigset_t all, old;
  pthread_mutex_lock(&s->mu);
  if (s->stopped) {
    er_errf(err, ER_E_ENV, "proxy set is stopped");
    goto out;
  }
  if (s->running) {
    rc = 0;
    goto out;
  }
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int e = pthread_create(&s->thr, NULL, loop_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e != 0) {
    er_errf(err, ER_E_ENV, "proxy set: cannot start its thread: %s",
            strerror(e));
    goto out;
  }
  s->running = true;
  rc = 0;
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int er_proxy_port(er_proxy_set_t *s, const char *name, er_err_t *err) {
  pthread_mutex_lock(&s->mu);
  proxy_t *p = find_locked(s, name, err);
  int port = p ? p->port : -1;
  pthread_mutex_unlock(&s->mu);
  return port;
}

static int simple(er_proxy_set_t *s, const char *name, int op, er_err_t *err) {
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = op;
  return run_cmd(s, name, &c, err);
}

int er_proxy_down(er_proxy_set_t *s, const char *name, er_err_t *err) {
  return simple(s, name, OP_DOWN, err);
}

int er_proxy_up(er_proxy_set_t *s, const char *name, er_err_t *err) {
  return simple(s, name, OP_UP, err);
}

int er_proxy_blackhole(er_proxy_set_t *s, const char *name, er_err_t *err) {
  return simple(s, name, OP_BLACKHOLE, err);
}

int er_proxy_heal(er_proxy_set_t *s, const char *name, er_err_t *err) {
  return simple(s, name, OP_HEAL, err);
}

int er_proxy_heal_all(er_proxy_set_t *s, er_err_t *err) {
  pthread_mutex_lock(&s->mu);
  bool stopped = s->stopped;
  pthread_mutex_unlock(&s->mu);
  if (stopped)
    return 0;
  return simple(s, NULL, OP_HEAL_ALL, err);
}

int er_proxy_latency(er_proxy_set_t *s, const char *name, er_proxy_dir_t dir,
                     int64_t ms, int64_t jitter_ms, er_err_t *err) {
  if (dir != ER_PROXY_UPSTREAM && dir != ER_PROXY_DOWNSTREAM &&
      dir != ER_PROXY_BOTH)
    return er_errf(err, ER_E_INPUT, "proxy \"%s\": latency: bad direction %d",
                   name ? name : "(null)", (int)dir);
  if (ms < 0 || jitter_ms < 0 || jitter_ms > ms || ms > 3600 * 1000)
    return er_errf(err, ER_E_INPUT,
                   "proxy \"%s\": latency %lldms jitter %lldms: need 0 <= "
                   "jitter <= latency <= 1h",
                   name ? name : "(null)", (long long)ms, (long long)jitter_ms);
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = OP_LATENCY;
  c.dir = dir;
  c.a = ms;
  c.b = jitter_ms;
  return run_cmd(s, name, &c, err);
}

int er_proxy_reset_peer(er_proxy_set_t *s, const char *name, int64_t delay_ms,
                        er_err_t *err) {
  if (delay_ms < 0 || delay_ms > 3600 * 1000)
    return er_errf(err, ER_E_INPUT,
                   "proxy \"%s\": reset_peer delay %lldms: need 0 to 1h",
                   name ? name : "(null)", (long long)delay_ms);
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = OP_RESET;
  c.a = delay_ms;
  return run_cmd(s, name, &c, err);
}

int er_proxy_stats(er_proxy_set_t *s, const char *name, er_proxy_stats_t *out,
                   er_err_t *err) {
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = OP_STATS;
  if (run_cmd(s, name, &c, err) < 0)
    return -1;
  *out = c.stats;
  return 0;
}

void er_proxy_set_stop(er_proxy_set_t *s) {
  if (!s || !s->mu_ok)
    return;
  pthread_mutex_lock(&s->mu);
  bool join = s->running;
  s->stop_req = true;
  if (join && s->wakefd >= 0)
    wake(s);
  pthread_mutex_unlock(&s->mu);
  if (join)
    pthread_join(s->thr, NULL);
  pthread_mutex_lock(&s->mu);
  s->running = false;
  s->stopped = true;
  for (proxy_t *p = s->proxies; p; p = p->next) {
    close_all_conns(p);
    if (p->lfd >= 0)
      close(p->lfd);
    p->lfd = -1;
  }
  grave_free(s);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

void er_proxy_set_free(er_proxy_set_t *s) {
  if (!s)
    return;
  er_proxy_set_stop(s);
  proxy_t *p = s->proxies;
  while (p) {
    proxy_t *nx = p->next;
    free(p->name);
    free(p->up_desc);
    free(p);
    p = nx;
  }
  if (s->wakefd >= 0)
    close(s->wakefd);
  if (s->epfd >= 0)
    close(s->epfd);
  free(s->iobuf);
  if (s->cv_ok)
    pthread_cond_destroy(&s->cv);
  if (s->mu_ok)
    pthread_mutex_destroy(&s->mu);
  free(s);
}
