/* util.c: see util.h. */
#include "base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

int er_errf(er_err_t *err, int code, const char *fmt, ...) {
  va_list ap;
  if (!err || err->code != ER_E_NONE)
    return -1;
  err->code = code ? code : ER_E_ENV;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return -1;
}

void er_err_clear(er_err_t *err) {
  err->code = ER_E_NONE;
  err->msg[0] = '\0';
}

void er_buf_init(er_buf_t *b, size_t cap) {
  memset(b, 0, sizeof *b);
  b->cap = cap;
}

static size_t buf_cap(const er_buf_t *b) {
  return b->cap ? b->cap : ER_BUF_DEFAULT_CAP;
}

static int buf_reserve(er_buf_t *b, size_t need) {
  size_t want;
  char *p;
  if (need + 1 <= b->alloc)
    return 0;
  want = b->alloc ? b->alloc : 256;
  while (want < need + 1)
    want *= 2;
  p = realloc(b->data, want);
  if (!p)
    return -1;
  b->data = p;
  b->alloc = want;
  return 0;
}

int er_buf_append(er_buf_t *b, const void *p, size_t n) {
  size_t cap = buf_cap(b);
  if (b->len + n > cap) {
    b->truncated = true;
    n = cap > b->len ? cap - b->len : 0;
  }
  if (buf_reserve(b, b->len + n) != 0)
    return -1;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int er_buf_puts(er_buf_t *b, const char *s) {
  return er_buf_append(b, s, strlen(s));
}

int er_buf_vprintf(er_buf_t *b, const char *fmt, va_list ap) {
  char small[512];
  va_list cp;
  int n;
  va_copy(cp, ap);
  n = vsnprintf(small, sizeof small, fmt, cp);
  va_end(cp);
  if (n < 0)
    return -1;
  if ((size_t)n < sizeof small)
    return er_buf_append(b, small, (size_t)n);
  {
    char *big = malloc((size_t)n + 1);
    int rc;
    if (!big)
      return -1;
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    rc = er_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
  }
}

int er_buf_printf(er_buf_t *b, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = er_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

const char *er_buf_cstr(er_buf_t *b) { return b->data ? b->data : ""; }

void er_buf_reset(er_buf_t *b) {
  b->len = 0;
  b->truncated = false;
  if (b->data)
    b->data[0] = '\0';
}

void er_buf_free(er_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->alloc = 0;
  b->truncated = false;
}

char *er_buf_steal(er_buf_t *b) {
  char *p = b->data;
  if (!p)
    p = er_strdup("");
  b->data = NULL;
  b->len = b->alloc = 0;
  b->truncated = false;
  return p;
}

int64_t er_now_ms(void) { return er_now_us() / 1000; }

int64_t er_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void er_rfc3339_now(char out[40]) {
  struct timespec ts;
  struct tm tm;
  char base[32];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 40, "%.20s.%03dZ", base, (int)(ts.tv_nsec / 1000000) % 1000);
}

int er_parse_duration(const char *s, int64_t *ms) {
  char *end = NULL;
  double v;
  double mult;
  if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
    return -1;
  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || !isfinite(v) || v < 0)
    return -1;
  if (strcmp(end, "ms") == 0)
    mult = 1;
  else if (strcmp(end, "s") == 0)
    mult = 1000;
  else if (strcmp(end, "m") == 0)
    mult = 60000;
  else if (strcmp(end, "h") == 0)
    mult = 3600000;
  else
    return -1;
  if (v * mult > 7.0 * 24 * 3600 * 1000)
    return -1; /* more than a week is certainly a mistake */
  *ms = (int64_t)(v * mult + 0.5);
  return 0;
}

void er_fmt_duration(int64_t ms, char out[32]) {
  if (ms < 1000)
    snprintf(out, 32, "%lldms", (long long)ms);
  else
    snprintf(out, 32, "%.3fs", (double)ms / 1000.0);
}

static volatile sig_atomic_t g_interrupted;
static volatile sig_atomic_t g_hold;

void er_set_interrupted(int signo) { g_interrupted = signo; }
int er_interrupted(void) { return g_hold ? 0 : (int)g_interrupted; }
int er_interrupt_signal(void) { return (int)g_interrupted; }
void er_interrupt_hold(bool hold) { g_hold = hold ? 1 : 0; }

int er_sleep_ms(int64_t ms) {
  int64_t end = er_now_ms() + ms;
  while (!er_interrupted()) {
    int64_t left = end - er_now_ms();
    struct timespec ts;
    if (left <= 0)
      return 0;
    if (left > 50)
      left = 50; /* wake often enough to see an interrupt */
    ts.tv_sec = (time_t)(left / 1000);
    ts.tv_nsec = (long)(left % 1000) * 1000000L;
    nanosleep(&ts, NULL);
  }
  return -1;
}

int er_cond_init_mono(pthread_cond_t *cv) {
  pthread_condattr_t ca;
  int rc = -1;
  if (pthread_condattr_init(&ca) != 0)
    return -1;
  if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
      pthread_cond_init(cv, &ca) == 0)
    rc = 0;
  pthread_condattr_destroy(&ca);
  return rc;
}

void er_deadline_ts(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(ms / 1000);
  ts->tv_nsec += (long)((ms % 1000) * 1000000L);
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

void er_uuid4(char out[37]) {
  unsigned char r[16];
  if (RAND_bytes(r, sizeof r) != 1) {
    /* extremely unlikely; fall back to a time-seeded generator */
    unsigned seed = (unsigned)er_now_us() ^ (unsigned)getpid();
    for (size_t i = 0; i < sizeof r; i++)
      r[i] = (unsigned char)(rand_r(&seed) & 0xff);
  }
  r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
  r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
           r[11], r[12], r[13], r[14], r[15]);
}

size_t er_edit_distance(const char *a, const char *b, size_t max) {
  size_t la = strlen(a), lb = strlen(b);
  size_t *prev, *cur, result;
  if (la > lb ? la - lb > max : lb - la > max)
    return max + 1;
  prev = calloc(lb + 1, sizeof *prev);
  cur = calloc(lb + 1, sizeof *cur);
  if (!prev || !cur) {
    free(prev);
    free(cur);
    return max + 1;
  }
  for (size_t j = 0; j <= lb; j++)
    prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t rowmin;
    cur[0] = i;
    rowmin = cur[0];
    for (size_t j = 1; j <= lb; j++) {
      size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      size_t m = del < ins ? del : ins;
      cur[j] = m < sub ? m : sub;
      if (cur[j] < rowmin)
        rowmin = cur[j];
    }
    if (rowmin > max) {
      free(prev);
      free(cur);
      return max + 1;
    }
    {
      size_t *t = prev;
      prev = cur;
      cur = t;
    }
  }
  result = prev[lb];
  free(prev);
  free(cur);
  return result;
}

const char *er_did_you_mean(const char *word, const char *const *candidates,
                            size_t n) {
  size_t best = (size_t)-1;
  const char *pick = NULL;
  size_t wl = strlen(word);
  size_t limit = wl > 6 ? wl / 3 : 2;
  if (limit < 2)
    limit = 2;
  for (size_t i = 0; i < n; i++) {
    size_t d = er_edit_distance(word, candidates[i], limit);
    if (d <= limit && d < best) {
      best = d;
      pick = candidates[i];
    }
  }
  return pick;
}

char *er_read_file(const char *path, size_t cap, size_t *len_out,
                   er_err_t *err) {
  FILE *f = NULL;
  er_buf_t b = ER_BUF_INIT(cap);
  char chunk[8192];
  size_t n;
  char *out = NULL;

  f = fopen(path, "rb");
  if (!f) {
    er_errf(err, ER_E_INPUT, "%s: cannot open: %s", path, strerror(errno));
    goto out;
  }
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (er_buf_append(&b, chunk, n) != 0) {
      er_errf(err, ER_E_ENV, "%s: out of memory", path);
      goto out;
    }
    if (b.truncated) {
      er_errf(err, ER_E_INPUT, "%s: larger than %zu bytes", path, cap);
      goto out;
    }
  }
  if (ferror(f)) {
    er_errf(err, ER_E_INPUT, "%s: read error: %s", path, strerror(errno));
    goto out;
  }
  if (len_out)
    *len_out = b.len;
  out = er_buf_steal(&b);
out:
  if (f)
    fclose(f);
  er_buf_free(&b);
  return out;
}

int er_write_file_atomic(const char *path, const char *data, size_t len,
                         er_err_t *err) {
  char tmp[4096];
  int fd = -1;
  int rc = -1;
  size_t off = 0;

  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >=
      (int)sizeof tmp) {
    er_errf(err, ER_E_INPUT, "%s: path too long", path);
    goto out;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    er_errf(err, ER_E_ENV, "%s: cannot create: %s", tmp, strerror(errno));
    goto out;
  }
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      er_errf(err, ER_E_ENV, "%s: write failed: %s", tmp, strerror(errno));
      goto out;
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0) {
    er_errf(err, ER_E_ENV, "%s: fsync failed: %s", tmp, strerror(errno));
    goto out;
  }
  if (close(fd) != 0) {
    fd = -1;
    er_errf(err, ER_E_ENV, "%s: close failed: %s", tmp, strerror(errno));
    goto out;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    er_errf(err, ER_E_ENV, "%s: rename failed: %s", path, strerror(errno));
    goto out;
  }
  rc = 0;
out:
  if (fd >= 0)
    close(fd);
  if (rc != 0)
    unlink(tmp);
  return rc;
}

bool er_path_up(char *d) {
  char *slash = d ? strrchr(d, '/') : NULL;
  if (!slash || !strcmp(d, "/"))
    return false;
  if (slash == d)
    d[1] = '\0';
  else
    *slash = '\0';
  return true;
}

int er_mkdirs(const char *path, er_err_t *err) {
  char tmp[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof tmp)
    return er_errf(err, ER_E_INPUT, "bad directory path '%s'", path);
  memcpy(tmp, path, n + 1);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
      return er_errf(err, ER_E_ENV, "%s: cannot create: %s", tmp,
                     strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
    return er_errf(err, ER_E_ENV, "%s: cannot create: %s", tmp,
                   strerror(errno));
  return 0;
}

char *er_strdup(const char *s) {
  size_t n;
  char *p;
  if (!s)
    return NULL;
  n = strlen(s);
  p = malloc(n + 1);
  if (p)
    memcpy(p, s, n + 1);
  return p;
}

bool er_str_has_prefix(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool er_str_has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

size_t er_utf8_next(const unsigned char *s, size_t n, long *cp) {
  unsigned c = s[0], lo = 0x80, hi = 0xBF;
  size_t len;
  long v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    v = c & 0x0F;
    if (c == 0xE0)
      lo = 0xA0;
    else if (c == 0xED)
      hi = 0x9F; /* ED A0..BF would be a surrogate */
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    v = c & 0x07;
    if (c == 0xF0)
      lo = 0x90;
    else if (c == 0xF4)
      hi = 0x8F;
  } else {
    *cp = -1;
    return 1;
  }
  for (size_t i = 1; i < len; i++) {
    unsigned b = i < n ? s[i] : 0;
    if (i >= n || (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))) {
      *cp = -1;
      return i;
    }
    v = (v << 6) | (b & 0x3F);
  }
  *cp = v;
  return len;
}

void er_utf8_safe_write(FILE *f, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    long cp;
    size_t k = er_utf8_next(p + i, n - i, &cp);
    if (cp < 0) {
      for (size_t j = 0; j < k; j++)
        fprintf(f, "\\x%02x", p[i + j]);
    } else if (cp == '\t' || (cp >= 0x20 && cp < 0x7F) || cp > 0x9F) {
      fwrite(p + i, 1, k, f);
    } else if (cp < 0x80) {
      fprintf(f, "\\x%02x", (unsigned)cp);
    } else {
      fprintf(f, "\\u%04lx", cp); /* C1 controls */
    }
    i += k;
  }
}

size_t er_utf8_cut(const char *s, size_t n, size_t max) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  if (n <= max)
    return n;
  while (i < max) {
    long cp;
    size_t k = er_utf8_next(p + i, n - i, &cp);
    if (i + k > max)
      break;
    i += k;
  }
  return i;
}

/* ---- secrets ------------------------------------------------------------ */

static pthread_mutex_t secrets_mu = PTHREAD_MUTEX_INITIALIZER;
static char **secrets_v;
static size_t secrets_n, secrets_alloc;

int er_secret_add(const char *s) {
  int rc = 0;
  if (!s || strlen(s) < ER_SECRET_MIN)
    return 0;
  pthread_mutex_lock(&secrets_mu);
  for (size_t i = 0; i < secrets_n; i++)
    if (strcmp(secrets_v[i], s) == 0)
      goto out;
  if (secrets_n == secrets_alloc) {
    size_t na = secrets_alloc ? secrets_alloc * 2 : 8;
    char **nv = realloc(secrets_v, na * sizeof *nv);
    if (!nv) {
      rc = -1;
      goto out;
    }
    secrets_v = nv;
    secrets_alloc = na;
  }
  {
    /* kept longest first, so a secret that contains another one is
     * replaced whole, not around the shorter one */
    size_t sl = strlen(s), at = 0;
    char *cp = strdup(s);
    if (!cp) {
      rc = -1;
      goto out;
    }
    while (at < secrets_n && strlen(secrets_v[at]) >= sl)
      at++;
    memmove(secrets_v + at + 1, secrets_v + at,
            (secrets_n - at) * sizeof *secrets_v);
    secrets_v[at] = cp;
    secrets_n++;
  }
out:
  pthread_mutex_unlock(&secrets_mu);
  return rc;
}

size_t er_secret_redact(char *s) {
  size_t hits = 0;
  if (!s)
    return 0;
  pthread_mutex_lock(&secrets_mu);
  for (size_t i = 0; i < secrets_n; i++) {
    const char *sec = secrets_v[i];
    size_t sl = strlen(sec);
    char *p, *from = s;
    while ((p = strstr(from, sec)) != NULL) {
      p[0] = p[1] = p[2] = '*';
      memmove(p + 3, p + sl, strlen(p + sl) + 1);
      from = p + 3;
      hits++;
    }
  }
  pthread_mutex_unlock(&secrets_mu);
  return hits;
}

void er_secrets_clear(void) {
  pthread_mutex_lock(&secrets_mu);
  for (size_t i = 0; i < secrets_n; i++)
    free(secrets_v[i]);
  free(secrets_v);
  secrets_v = NULL;
  secrets_n = secrets_alloc = 0;
  pthread_mutex_unlock(&secrets_mu);
}

int er_hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Whether port is free to listen on at 127.0.0.1 (no SO_REUSEADDR: a
 * port with connections in TIME_WAIT is not taken either). 1 yes, 0 no,
 * -1 on a socket error (err). With port 0, *got gets the one the system
 * gave. */
static int try_port(int port, int *got, er_err_t *err) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
  if (fd < 0)
    return er_errf(err, ER_E_ENV, "socket: %s", strerror(errno));
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
       getsockname(fd, (struct sockaddr *)&a, &al) == 0;
  if (ok && got)
    *got = ntohs(a.sin_port);
  if (!ok && port == 0)
    er_errf(err, ER_E_ENV, "cannot bind a free port on 127.0.0.1: %s",
            strerror(errno));
  close(fd);
  return ok ? 1 : (port == 0 ? -1 : 0);
}

/* The first port of the system's ephemeral range (the ports bind to port
 * 0 and outgoing connections take), or 32768. */
static int ephemeral_low(void) {
  FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
  int lo = 32768, hi = 60999;
  if (f) {
    if (fscanf(f, "%d %d", &lo, &hi) != 2)
      lo = 32768;
    fclose(f);
  }
  return lo;
}

int er_free_port(er_err_t *err) {
  enum { FLOOR = 10000, TRIES = 200 };
  int lo = ephemeral_low(), port = -1;
  /* below the ephemeral range: a port handed out here is not bound until
   * its service starts, and a listener on port 0 (a proxy, the embedded
   * broker) or an outgoing connection must not take it in between */
  for (int i = 0; lo - FLOOR >= 1000 && i < TRIES; i++) {
    uint32_t r;
    int rc;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
      break;
    port = FLOOR + (int)(r % (uint32_t)(lo - FLOOR));
    if ((rc = try_port(port, NULL, err)) == 1)
      return port;
    if (rc < 0)
      return -1;
  }
  /* no such range (or nothing free in it): any port the system gives */
  return try_port(0, &port, err) == 1 ? port : -1;
}

int er_url_encode(er_buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char e[3];
    int rc;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      rc = er_buf_append(b, &s[i], 1);
    } else {
      e[0] = '%';
      e[1] = hex[c >> 4];
      e[2] = hex[c & 15];
      rc = er_buf_append(b, e, 3);
    }
    if (rc != 0)
      return -1;
  }
  return 0;
}
