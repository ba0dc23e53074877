/* redis.c: URL parsing, one deadline-bounded connection, replies as JSON.
 *
 * hiredis does the connecting (with a timeout) and the protocol (command
 * formatting, the reply reader). The bytes are moved here with poll() and
 * send()/recv() so that every wait ends at the caller's deadline, no
 * SIGPIPE is raised, and the bytes of a reply can be counted and capped
 * before they are buffered. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "adapters/redis.h"
#include "base/redact.h"

struct er_redis {
  er_redis_url_t url;
  size_t cap;
  redisContext *c; /* NULL until connected, and after an I/O error */
};

/* ---- URLs ---------------------------------------------------------------- */

/* Appends the query q ("?a=1&b=2#f", or "") with the value of every
 * parameter whose name looks secret ("password", "auth", ...) as "***". */
static void redact_query(er_buf_t *b, const char *q) {
  while (*q) {
    size_t n = strcspn(q + 1, "&#") + 1; /* one "?name=value" or "&..." */
    const char *eq = memchr(q, '=', n);
    if (*q == '#') {
      er_buf_puts(b, q);
      return;
    }
    if (eq) {
      char name[64];
      size_t nl = (size_t)(eq - q - 1);
      snprintf(name, sizeof name, "%.*s", (int)(nl < 63 ? nl : 63), q + 1);
      if (er_redact_name_is_secret(name)) {
        er_buf_append(b, q, (size_t)(eq - q) + 1);
        er_buf_puts(b, "***");
        q += n;
        continue;
      }
    }
    er_buf_append(b, q, n);
    q += n;
  }
}

void er_redis_redact(const char *url, char *out, size_t outsz) {
  const char *rest, *at, *colon, *scheme_end, *q;
  er_buf_t b = ER_BUF_INIT(outsz ? outsz : 1);

  if (!outsz)
    return;
  out[0] = '\0';
  if (!url)
    return;
  scheme_end = strstr(url, "://");
  rest = scheme_end ? scheme_end + 3 : url;
  at = strrchr(rest, '@');
  if (!at)
    at = rest; /* no userinfo */
  er_buf_append(&b, url, (size_t)(rest - url));
  if (at != rest || *rest == '@') {
    colon = memchr(rest, ':', (size_t)(at - rest));
    if (colon && scheme_end) {
      er_buf_append(&b, rest, (size_t)(colon - rest));
      er_buf_puts(&b, ":***");
    } else {
      er_buf_puts(&b, "***"); /* no ':': the whole userinfo may be secret */
    }
  }
  q = at + strcspn(at, "?#");
  er_buf_append(&b, at, (size_t)(q - at));
  redact_query(&b, q);
  snprintf(out, outsz, "%s", er_buf_cstr(&b));
  er_buf_free(&b);
}

/* Whether every '%' in s starts a %XX escape (curl keeps a bad one as
 * text; we refuse it, as a password would otherwise be silently wrong). */
static bool escapes_ok(const char *s) {
  for (const char *p = strchr(s, '%'); p; p = strchr(p + 1, '%'))
    if (er_hexval((unsigned char)p[1]) < 0 ||
        er_hexval((unsigned char)p[2]) < 0)
      return false;
  return true;
}

/* Parses all of s as a decimal in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int *out) {
  long v = 0;
  size_t n = strlen(s);
  if (n == 0 || n > 10)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi)
    return -1;
  *out = (int)v;
  return 0;
}

void er_redis_url_free(er_redis_url_t *u) {
  if (!u)
    return;
  free(u->host);
  free(u->path);
  free(u->user);
  free(u->password);
  free(u->redacted);
  memset(u, 0, sizeof *u);
}

/* What libcurl is given: url with '@', '/', '?' and '#' in the userinfo
 * (everything before the last '@', as er_redis_redact sees it) written
 * %XX, so that "redis://:p@ss@h" keeps meaning the password "p@ss"; and
 * for unix://, "localhost" as the host when none is written (curl needs
 * one; unix:///tmp/r.sock has an empty host). NULL if memory ran out. */
static char *curl_form(const char *url, size_t scheme_len, bool is_unix) {
  const char *rest = url + scheme_len + 3;
  const char *at = strrchr(rest, '@');
  const char *hp = at ? at + 1 : rest;
  er_buf_t b = ER_BUF_INIT(strlen(url) * 3 + 16);
  char *s;

  er_buf_append(&b, url, (size_t)(rest - url));
  for (const char *p = rest; at && p < at; p++) {
    if (strchr("@/?#", *p))
      er_buf_printf(&b, "%%%02X", (unsigned)(unsigned char)*p);
    else
      er_buf_append(&b, p, 1);
  }
  if (at)
    er_buf_puts(&b, "@");
  if (is_unix && strchr("/?#", *hp))
    er_buf_puts(&b, "localhost");
  er_buf_puts(&b, hp);
  s = er_strdup(er_buf_cstr(&b));
  er_buf_free(&b);
  return s;
}

/* A part of u, %-decoded (decode) or as written. Returns CURLUE_OK with
 * *out a malloc'ed copy, or curl's code (*out NULL) for a part that is
 * absent or cannot be decoded. */
static CURLUcode url_part(CURLU *u, CURLUPart what, bool decode, char **out) {
  char *s = NULL;
  CURLUcode uc = curl_url_get(u, what, &s, decode ? CURLU_URLDECODE : 0);
  *out = NULL;
  if (uc == CURLUE_OK) {
    *out = er_strdup(s);
    curl_free(s);
    if (!*out)
      uc = CURLUE_OUT_OF_MEMORY;
  }
  return uc;
}

/* The message for a URL curl refused. */
static void set_failed(CURLUcode uc, bool is_unix, const char *red,
                       er_err_t *err) {
  switch (uc) {
  case CURLUE_BAD_PORT_NUMBER:
    er_errf(err, ER_E_INPUT,
            "redis URL %s: the port must be a number from 1 to 65535", red);
    break;
  case CURLUE_BAD_IPV6:
    er_errf(err, ER_E_INPUT, "redis URL %s: bad [IPv6 address]", red);
    break;
  case CURLUE_NO_HOST:
    if (is_unix)
      er_errf(err, ER_E_INPUT,
              "redis URL %s: expected an absolute socket path "
              "(unix:///path/to.sock)",
              red);
    else
      er_errf(err, ER_E_INPUT, "redis URL %s: missing host", red);
    break;
  case CURLUE_BAD_LOGIN:
  case CURLUE_BAD_USER:
  case CURLUE_BAD_PASSWORD:
    er_errf(err, ER_E_INPUT,
            "redis URL %s: bad %%-escape in the user or password", red);
    break;
  case CURLUE_OUT_OF_MEMORY:
    er_errf(err, ER_E_INPUT, "redis URL: out of memory");
    break;
  default:
    er_errf(err, ER_E_INPUT, "redis URL %s: %s", red, curl_url_strerror(uc));
    break;
  }
}

/* The query: db=<number> and nothing else. */
static int parse_query(const char *q, bool db_in_path, er_redis_url_t *out,
                       const char *red, er_err_t *err) {
  bool seen = db_in_path;
  const char *p = q;
  while (*p) {
    size_t n = strcspn(p, "&");
    size_t kl = strcspn(p, "=&");
    char *k = curl_easy_unescape(NULL, p, (int)kl, NULL);
    char *v =
        kl < n ? curl_easy_unescape(NULL, p + kl + 1, (int)(n - kl - 1), NULL)
               : NULL;
    int rc = 0;
    if (!k || (kl < n && !v)) {
      er_errf(err, ER_E_INPUT, "redis URL: out of memory");
      rc = -1;
    } else if (n == 0) {
      /* "?" alone or "&&": nothing */
    } else if (strcmp(k, "db") != 0) {
      er_errf(err, ER_E_INPUT,
              "redis URL %s: unsupported query parameter \"%.40s\" "
              "(the only one is db=<number>)",
              red, k);
      rc = -1;
    } else if (seen) {
      er_errf(err, ER_E_INPUT, "redis URL %s: the database is given twice",
              red);
      rc = -1;
    } else if (!v || parse_int(v, 0, INT_MAX, &out->db) != 0) {
      er_errf(err, ER_E_INPUT,
              "redis URL %s: the query parameter db=<number> needs a number",
              red);
      rc = -1;
    }
    seen = seen || (k && strcmp(k, "db") == 0);
    curl_free(k);
    curl_free(v);
    if (rc != 0)
      return -1;
    p += n + (p[n] == '&');
  }
  return 0;
}

/* Fills out (host/path, port, user, password, db) from the parsed u. */
/* The user and password of u into out, %-decoded: bad escapes are
 * refused, and so is a user without a password. Returns 0 or -1. */
static int url_credentials(CURLU *u, er_redis_url_t *out, const char *red,
                           er_err_t *err) {
  char *raw = NULL;
  CURLUcode uc;
  int rc = -1;

  for (int i = 0; i < 2; i++) {
    CURLUPart part = i == 0 ? CURLUPART_USER : CURLUPART_PASSWORD;
    char **dst = i == 0 ? &out->user : &out->password;
    uc = url_part(u, part, false, &raw);
    if (uc == CURLUE_OUT_OF_MEMORY)
      goto nomem;
    if (!raw)
      continue;
    if (!escapes_ok(raw) || (uc = url_part(u, part, true, dst)) != CURLUE_OK) {
      if (uc == CURLUE_OUT_OF_MEMORY)
        goto nomem;
      er_errf(err, ER_E_INPUT,
              "redis URL %s: bad %%-escape in the user or password", red);
      goto out;
    }
    free(raw);
    raw = NULL;
  }
  if (out->user && !out->password) {
    er_errf(err, ER_E_INPUT,
            "redis URL %s: a user needs a password "
            "(redis://user:password@host or redis://:password@host)",
            red);
    goto out;
  }
  if (out->user && !out->user[0]) {
    free(out->user); /* redis://:password@host: AUTH password */
    out->user = NULL;
  }
  rc = 0;
  goto out;

nomem:
  er_errf(err, ER_E_INPUT, "redis URL: out of memory");
out:
  free(raw);
  return rc;
}

/* unix:///path/to.sock: the socket path into out->path. Returns 0 or -1. */
static int url_socket_path(CURLU *u, er_redis_url_t *out, const char *red,
                           er_err_t *err) {
  char *host = NULL, *port = NULL;
  CURLUcode uc;
  int rc = -1;

  if ((uc = url_part(u, CURLUPART_HOST, true, &host)) != CURLUE_OK)
    goto curlfail;
  if (strcmp(host, "localhost") == 0 &&
      url_part(u, CURLUPART_PORT, false, &port) == CURLUE_NO_PORT) {
    if ((uc = url_part(u, CURLUPART_PATH, true, &out->path)) != CURLUE_OK)
      goto curlfail;
    if (strlen(out->path) >= 2) {
      rc = 0;
      goto out;
    }
  }
  er_errf(err, ER_E_INPUT,
          "redis URL %s: expected an absolute socket path "
          "(unix:///path/to.sock)",
          red);
  goto out;

curlfail:
  set_failed(uc, true, red, err);
out:
  free(host);
  free(port);
  return rc;
}

/* The host of u into out->host: an [IPv6 address] without its brackets,
 * with its %zone if any. Returns 0 or -1. */
static int url_host(CURLU *u, er_redis_url_t *out, const char *red,
                    er_err_t *err) {
  char *s = NULL, *zone = NULL;
  size_t hl;
  CURLUcode uc;
  int rc = -1;

  if ((uc = url_part(u, CURLUPART_HOST, true, &s)) != CURLUE_OK) {
    set_failed(uc, false, red, err);
    goto out;
  }
  hl = strlen(s);
  if (hl == 0) {
    er_errf(err, ER_E_INPUT, "redis URL %s: missing host", red);
    goto out;
  }
  if (s[0] == '[' && hl > 2 && s[hl - 1] == ']') {
    /* [v6addr] -> v6addr, with its %zone if any (fe80::1%eth0) */
    uc = url_part(u, CURLUPART_ZONEID, false, &zone);
    if (uc == CURLUE_OUT_OF_MEMORY)
      goto nomem;
    if (asprintf(&out->host, "%.*s%s%s", (int)(hl - 2), s + 1, zone ? "%" : "",
                 zone ? zone : "") < 0)
      out->host = NULL;
  } else {
    out->host = er_strdup(s);
  }
  if (!out->host)
    goto nomem;
  rc = 0;
  goto out;

nomem:
  er_errf(err, ER_E_INPUT, "redis URL: out of memory");
out:
  free(zone);
  free(s);
  return rc;
}

/* The port of u into out->port (6379 when absent) and the database from
 * the path "/N" ("" and "/" are 0) into out->db; *db_in_path says whether
 * the path gave one. Returns 0 or -1. */
static int url_port_db(CURLU *u, er_redis_url_t *out, bool *db_in_path,
                       const char *red, er_err_t *err) {
  char *s = NULL;
  CURLUcode uc;
  int rc = -1;

  out->port = 6379;
  uc = url_part(u, CURLUPART_PORT, false, &s);
  if (uc == CURLUE_OK && parse_int(s, 1, 65535, &out->port) != 0) {
    er_errf(err, ER_E_INPUT,
            "redis URL %s: the port must be a number from 1 to 65535", red);
    goto out;
  }
  if (uc != CURLUE_OK && uc != CURLUE_NO_PORT)
    goto curlfail;
  free(s);
  s = NULL;

  if ((uc = url_part(u, CURLUPART_PATH, true, &s)) != CURLUE_OK)
    goto curlfail;
  if (s[0] == '/' && s[1] && parse_int(s + 1, 0, INT_MAX, &out->db) != 0) {
    er_errf(err, ER_E_INPUT,
            "redis URL %s: the database after the '/' must be a number", red);
    goto out;
  }
  *db_in_path = s[0] == '/' && s[1];
  rc = 0;
  goto out;

curlfail:
  set_failed(uc, false, red, err);
out:
  free(s);
  return rc;
}

/* Fills out (host/path, port, user, password, db) from the parsed u. */
static int from_curl(CURLU *u, bool is_unix, er_redis_url_t *out,
                     const char *red, er_err_t *err) {
  char *s = NULL;
  bool db_in_path = false;
  CURLUcode uc;
  int rc = -1;

  if (url_credentials(u, out, red, err) != 0)
    goto out;
  if (url_part(u, CURLUPART_FRAGMENT, false, &s) == CURLUE_OK) {
    er_errf(err, ER_E_INPUT, "redis URL %s: a #fragment is not supported", red);
    goto out;
  }
  if (is_unix) {
    if (url_socket_path(u, out, red, err) != 0)
      goto out;
  } else if (url_host(u, out, red, err) != 0 ||
             url_port_db(u, out, &db_in_path, red, err) != 0) {
    goto out;
  }

  uc = url_part(u, CURLUPART_QUERY, false, &s);
  if (uc == CURLUE_OK)
    rc = parse_query(s, db_in_path, out, red, err);
  else if (uc == CURLUE_NO_QUERY)
    rc = 0;
  else
    set_failed(uc, is_unix, red, err);
out:
  free(s);
  return rc;
}

int er_redis_url_parse(const char *url, er_redis_url_t *out, er_err_t *err) {
  char red[512];
  const char *sep;
  size_t slen;
  bool is_unix;
  char *cu = NULL;
  CURLU *u = NULL;
  CURLUcode uc;
  int rc = -1;

  memset(out, 0, sizeof *out);
  if (!url) {
    er_errf(err, ER_E_INPUT, "redis URL missing");
    return -1;
  }
  er_redis_redact(url, red, sizeof red);
  sep = strstr(url, "://");
  slen = sep ? (size_t)(sep - url) : 0;
  is_unix = slen == 4 && strncasecmp(url, "unix", 4) == 0;
  if (slen == 6 && strncasecmp(url, "rediss", 6) == 0) {
    er_errf(err, ER_E_INPUT,
            "redis URL %s: TLS (rediss://) is not supported; use redis://",
            red);
    return -1;
  }
  if (!is_unix && !(slen == 5 && strncasecmp(url, "redis", 5) == 0)) {
    er_errf(err, ER_E_INPUT,
            "redis URL %s: expected redis://[user:password@]host:port[/db] "
            "or unix:///path/to.sock",
            red);
    return -1;
  }
  out->redacted = er_strdup(red);
  cu = curl_form(url, slen, is_unix);
  u = curl_url();
  if (!out->redacted || !cu || !u) {
    er_errf(err, ER_E_INPUT, "redis URL: out of memory");
    goto out;
  }
  /* redis:// and unix:// are not curl's schemes; spaces are let through
   * so that "/0 x" is reported as a bad database */
  uc = curl_url_set(u, CURLUPART_URL, cu,
                    CURLU_NON_SUPPORT_SCHEME | CURLU_ALLOW_SPACE);
  if (uc != CURLUE_OK)
    set_failed(uc, is_unix, red, err);
  else
    rc = from_curl(u, is_unix, out, red, err);
out:
  curl_url_cleanup(u);
  free(cu);
  if (rc != 0)
    er_redis_url_free(out);
  return rc;
}

/* ---- connections ----------------------------------------------------------
 */

er_redis_t *er_redis_new(const char *url, size_t reply_cap, er_err_t *err) {
  er_redis_t *r = calloc(1, sizeof *r);
  if (!r) {
    er_errf(err, ER_E_INPUT, "redis: out of memory");
    return NULL;
  }
  if (er_redis_url_parse(url, &r->url, err) != 0) {
    free(r);
    return NULL;
  }
  r->cap = reply_cap ? reply_cap : ER_REDIS_REPLY_CAP;
  return r;
}

static void drop(er_redis_t *r) {
  if (r->c)
    redisFree(r->c);
  r->c = NULL;
}

void er_redis_free(void *p) {
  er_redis_t *r = p;
  if (!r)
    return;
  drop(r);
  er_redis_url_free(&r->url);
  free(r);
}

bool er_redis_connected(const er_redis_t *r) { return r->c != NULL; }

const char *er_redis_redacted(const er_redis_t *r) { return r->url.redacted; }

/* The command name for messages: argv[0], printable and short. */
static void cmd_name(int argc, const char *const *argv, const size_t *lens,
                     char out[40]) {
  size_t n = 0, len;
  if (argc < 1) {
    snprintf(out, 40, "?");
    return;
  }
  len = lens ? lens[0] : strlen(argv[0]);
  for (size_t i = 0; i < len && n < 39; i++) {
    unsigned char ch = (unsigned char)argv[0][i];
    out[n++] = (ch > 32 && ch < 127) ? (char)ch : '?';
  }
  out[n] = '\0';
}

/* Waits for fd to be ready for events; 1 ready, 0 deadline passed, -1
 * interrupted or failed (errno). */
static int wait_fd(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
    int64_t left = deadline_ms - er_now_ms();
    int n;
    if (left <= 0)
      return 0;
    if (er_interrupted()) {
      errno = EINTR;
      return -1;
    }
    n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
    if (n > 0)
      return 1;
    if (n < 0 && errno != EINTR)
      return -1;
  }
}

/* Sends one command on the open connection and reads one raw reply.
 * Any failure drops the connection. Returns 0 with *out, or -1. */
/* The message for a wait_fd that returned w (0 or -1) on the way to the
 * reply to name; errno as wait_fd left it. Returns -1. */
static int wait_failed(const er_redis_t *r, int w, const char *name,
                       int64_t start, er_err_t *err) {
  if (w == 0) {
    char t[32];
    er_fmt_duration(er_now_ms() - start, t);
    return er_errf(err, ER_E_ENV,
                   "%s: no reply to %s within %s (the deadline passed)",
                   r->url.redacted, name, t);
  }
  if (errno == EINTR)
    return er_errf(err, ER_E_INTR, "%s: interrupted waiting for %s",
                   r->url.redacted, name);
  return er_errf(err, ER_E_ENV, "%s: poll failed: %s", r->url.redacted,
                 strerror(errno));
}

/* Sends the len bytes of the formatted command cmd (named name). Returns
 * 0 or -1. */
static int send_cmd(er_redis_t *r, const char *cmd, size_t len,
                    const char *name, int64_t start, int64_t deadline_ms,
                    er_err_t *err) {
  int fd = r->c->fd;
  size_t off = 0;
  while (off < len) {
    ssize_t n;
    int w = wait_fd(fd, POLLOUT, deadline_ms);
    if (w <= 0)
      return wait_failed(r, w, name, start, err);
    n = send(fd, cmd + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        continue;
      return er_errf(err, ER_E_ENV, "%s: sending %s failed: %s",
                     r->url.redacted, name, strerror(errno));
    }
    off += (size_t)n;
  }
  return 0;
}

/* Reads one raw reply to the command named name, up to r->cap bytes.
 * Returns 0 with *rep, or -1. */
static int read_reply(er_redis_t *r, const char *name, int64_t start,
                      int64_t deadline_ms, void **rep, er_err_t *err) {
  char buf[16384];
  size_t total = 0;
  int fd = r->c->fd;
  for (;;) {
    ssize_t n;
    int w;
    if (redisReaderGetReply(r->c->reader, rep) != REDIS_OK)
      return er_errf(err, ER_E_ENV, "%s: protocol error in the reply to %s: %s",
                     r->url.redacted, name, r->c->reader->errstr);
    if (*rep)
      return 0;
    w = wait_fd(fd, POLLIN, deadline_ms);
    if (w <= 0)
      return wait_failed(r, w, name, start, err);
    n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0)
      return er_errf(err, ER_E_ENV,
                     "%s: the server closed the connection (sent %s)",
                     r->url.redacted, name);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        continue;
      return er_errf(err, ER_E_ENV, "%s: reading the reply to %s failed: %s",
                     r->url.redacted, name, strerror(errno));
    }
    total += (size_t)n;
    if (total > r->cap)
      return er_errf(err, ER_E_ENV,
                     "%s: the reply to %s is larger than %zu bytes; refused "
                     "(ask for less: a narrower pattern, a range, COUNT)",
                     r->url.redacted, name, r->cap);
    if (redisReaderFeed(r->c->reader, buf, (size_t)n) != REDIS_OK)
      return er_errf(err, ER_E_ENV, "%s: out of memory reading %s",
                     r->url.redacted, name);
  }
}

/* Sends one command on the open connection and reads one raw reply.
 * Any failure drops the connection. Returns 0 with *out, or -1. */
static int roundtrip(er_redis_t *r, int argc, const char *const *argv,
                     const size_t *lens, int64_t deadline_ms, redisReply **out,
                     er_err_t *err) {
  char *cmd = NULL, name[40];
  long long len;
  void *rep = NULL;
  int rc = -1;
  int64_t start = er_now_ms();

  *out = NULL;
  cmd_name(argc, argv, lens, name);
  len = redisFormatCommandArgv(&cmd, argc, (const char **)argv, lens);
  if (len < 0) {
    er_errf(err, ER_E_ENV, "%s: out of memory formatting %s", r->url.redacted,
            name);
    goto out;
  }
  if (send_cmd(r, cmd, (size_t)len, name, start, deadline_ms, err) != 0 ||
      read_reply(r, name, start, deadline_ms, &rep, err) != 0)
    goto out;
  *out = rep;
  rep = NULL;
  rc = 0;

out:
  if (rep)
    freeReplyObject(rep);
  if (cmd)
    redisFreeCommand(cmd);
  if (rc != 0)
    drop(r);
  return rc;
}

static struct timeval ms_tv(int64_t ms) {
  struct timeval tv;
  if (ms < 1)
    ms = 1;
  tv.tv_sec = (time_t)(ms / 1000);
  tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
  return tv;
}

/* One command during connection setup (AUTH, SELECT): an error reply
 * fails the connection. */
static int setup_cmd(er_redis_t *r, int argc, const char *const *argv,
                     const char *what, int64_t deadline_ms, er_err_t *err) {
  redisReply *rep = NULL;
  if (roundtrip(r, argc, argv, NULL, deadline_ms, &rep, err) != 0)
    return -1;
  if (rep->type == REDIS_REPLY_ERROR) {
    er_errf(err, ER_E_ENV, "%s: %s failed: %.*s", r->url.redacted, what,
            (int)(rep->len > 300 ? 300 : rep->len), rep->str);
    freeReplyObject(rep);
    drop(r);
    return -1;
  }
  freeReplyObject(rep);
  return 0;
}

static int ensure_connected(er_redis_t *r, int64_t deadline_ms, er_err_t *err) {
  int64_t left;
  redisContext *c;

  if (r->c)
    return 0;
  left = deadline_ms - er_now_ms();
  if (left <= 0)
    return er_errf(err, ER_E_ENV, "%s: the deadline passed before connecting",
                   r->url.redacted);
  if (r->url.path)
    c = redisConnectUnixWithTimeout(r->url.path, ms_tv(left));
  else
    c = redisConnectWithTimeout(r->url.host, r->url.port, ms_tv(left));
  if (!c)
    return er_errf(err, ER_E_ENV, "%s: out of memory connecting",
                   r->url.redacted);
  if (c->err) {
    er_errf(err, ER_E_ENV, "%s: cannot connect: %s", r->url.redacted,
            c->errstr);
    redisFree(c);
    return -1;
  }
  r->c = c;
  if (r->url.password) {
    const char *argv[3];
    int argc = 0;
    argv[argc++] = "AUTH";
    if (r->url.user)
      argv[argc++] = r->url.user;
    argv[argc++] = r->url.password;
    if (setup_cmd(r, argc, argv, "AUTH", deadline_ms, err) != 0)
      return -1;
  }
  if (r->url.db != 0) {
    char db[16];
    const char *argv[2] = {"SELECT", db};
    snprintf(db, sizeof db, "%d", r->url.db);
    if (setup_cmd(r, 2, argv, "SELECT", deadline_ms, err) != 0)
      return -1;
  }
  return 0;
}

/* Connects if needed, then one round trip. */
static int call(er_redis_t *r, int argc, const char *const *argv,
                const size_t *lens, int64_t deadline_ms, redisReply **out,
                er_err_t *err) {
  char name[40];
  *out = NULL;
  if (er_now_ms() >= deadline_ms) {
    cmd_name(argc, argv, lens, name);
    return er_errf(err, ER_E_ENV,
                   "%s: the deadline passed before %s could be sent",
                   r->url.redacted, name);
  }
  if (ensure_connected(r, deadline_ms, err) != 0)
    return -1;
  return roundtrip(r, argc, argv, lens, deadline_ms, out, err);
}

/* ---- replies as JSON ------------------------------------------------------
 */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  long cp;
  size_t len = er_utf8_next(s, n, &cp);
  return cp < 0 ? 0 : len;
}

/* A JSON string of bytes: as is when valid UTF-8, else with each invalid
 * byte written as "\xNN". */
static json_t *bytes_json(const char *s, size_t n) {
  json_t *v = json_stringn(s, n);
  er_buf_t b = ER_BUF_INIT((size_t)-1);
  if (v)
    return v;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq((const unsigned char *)s + i, n - i);
    if (k) {
      er_buf_append(&b, s + i, k);
      i += k;
    } else {
      er_buf_printf(&b, "\\x%02x", (unsigned char)s[i]);
      i++;
    }
  }
  v = json_stringn(er_buf_cstr(&b), b.len);
  er_buf_free(&b);
  return v;
}

static json_t *reply_json(const redisReply *rep) {
  json_t *v = NULL;
  if (!rep)
    return json_null();
  switch (rep->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    return bytes_json(rep->str, rep->len);
  case REDIS_REPLY_INTEGER:
    return json_integer((json_int_t)rep->integer);
  case REDIS_REPLY_NIL:
    return json_null();
  case REDIS_REPLY_ERROR: {
    json_t *s = bytes_json(rep->str, rep->len);
    v = s ? json_pack("{s:o}", "error", s) : NULL;
    return v;
  }
  case REDIS_REPLY_ARRAY:
    v = json_array();
    for (size_t i = 0; v && i < rep->elements; i++) {
      json_t *e = reply_json(rep->element[i]);
      if (!e || json_array_append_new(v, e) != 0) {
        json_decref(v);
        return NULL;
      }
    }
    return v;
  default:
    return NULL;
  }
}

int er_redis_command(er_redis_t *r, int argc, const char *const *argv,
                     const size_t *argvlen, int64_t deadline_ms, json_t **reply,
                     er_err_t *err) {
  redisReply *rep = NULL;
  int rc = -1;

  *reply = NULL;
  if (argc < 1 || !argv || !argv[0]) {
    er_errf(err, ER_E_INPUT, "redis: empty command");
    goto out;
  }
  if (call(r, argc, argv, argvlen, deadline_ms, &rep, err) != 0 || !rep)
    goto out;
  *reply = reply_json(rep);
  if (!*reply) {
    char name[40];
    cmd_name(argc, argv, argvlen, name);
    er_errf(err, ER_E_ENV, "%s: cannot convert the reply to %s (type %d)",
            r->url.redacted, name, rep->type);
    goto out;
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    er_errf(err, ER_E_FAIL, "%.*s", (int)(rep->len > 900 ? 900 : rep->len),
            rep->str);
    rc = ER_REDIS_ERROR_REPLY;
    goto out;
  }
  rc = ER_REDIS_OK;
out:
  if (rep)
    freeReplyObject(rep);
  return rc;
}

/* One SCAN call: sends cursor (updated in place, 32 bytes), returns the
 * reply's key array (borrowed from *rep, which the caller frees), or NULL
 * with err set. */
static redisReply *scan_page(er_redis_t *r, char cursor[32],
                             const char *pattern, const char *count,
                             int64_t deadline_ms, redisReply **rep,
                             er_err_t *err) {
  const char *sargv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", count};
  if (call(r, 6, sargv, NULL, deadline_ms, rep, err) != 0 || !*rep)
    return NULL;
  if ((*rep)->type == REDIS_REPLY_ERROR) {
    er_errf(err, ER_E_ENV, "%s: SCAN failed: %.*s", r->url.redacted,
            (int)((*rep)->len > 300 ? 300 : (*rep)->len), (*rep)->str);
    return NULL;
  }
  if ((*rep)->type != REDIS_REPLY_ARRAY || (*rep)->elements != 2 ||
      (*rep)->element[0]->type != REDIS_REPLY_STRING ||
      (*rep)->element[0]->len >= 32 ||
      (*rep)->element[1]->type != REDIS_REPLY_ARRAY) {
    er_errf(err, ER_E_ENV, "%s: unexpected reply to SCAN", r->url.redacted);
    drop(r);
    return NULL;
  }
  memcpy(cursor, (*rep)->element[0]->str, (*rep)->element[0]->len);
  cursor[(*rep)->element[0]->len] = '\0';
  return (*rep)->element[1];
}

/* One SCAN page and the UNLINK of its keys in one script on the server,
 * so the key names never cross the connection (about half the time of
 * sending them back as UNLINK arguments on a large clean); UNLINK in
 * chunks of 1000 (Lua's unpack has a stack limit). */
static const char g_scan_unlink_lua[] =
    "local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', "
    "ARGV[3]) "
    "local k, n = r[2], 0 "
    "for i = 1, #k, 1000 do "
    "n = n + redis.call('UNLINK', unpack(k, i, math.min(i + 999, #k))) "
    "end "
    "return {r[1], n}";

/* The script's SHA-1 in hex (41 bytes), for EVALSHA. */
static void script_sha(char hex[41]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  hex[0] = '\0';
  if (EVP_Digest(g_scan_unlink_lua, sizeof g_scan_unlink_lua - 1, md, &mdlen,
                 EVP_sha1(), NULL) != 1 ||
      mdlen != 20)
    return;
  for (unsigned int i = 0; i < mdlen; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* 1: one page done (cursor advanced, *n keys deleted); 0: the server
 * runs no such script (scripting off, an ACL, a proxy): the caller goes
 * on without it; -1: failed (err). The script is sent by its SHA-1
 * (EVALSHA), and whole only when the server does not have it yet
 * (NOSCRIPT): once per server, not once per page. */
static int lua_page(er_redis_t *r, char cursor[32], const char *pattern,
                    const char *count, int64_t deadline_ms, long long *n,
                    er_err_t *err) {
  char sha[41];
  const char *argv[6] = {"EVALSHA", sha, "0", cursor, pattern, count};
  redisReply *rep = NULL;
  int rc = -1;
  script_sha(sha);
  if (sha[0] && (call(r, 6, argv, NULL, deadline_ms, &rep, err) != 0 || !rep))
    goto out;
  if (!sha[0] ||
      (rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8))) {
    if (rep)
      freeReplyObject(rep);
    rep = NULL;
    argv[0] = "EVAL";
    argv[1] = g_scan_unlink_lua;
    if (call(r, 6, argv, NULL, deadline_ms, &rep, err) != 0 || !rep)
      goto out;
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    rc = 0;
    goto out;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
      rep->element[0]->type != REDIS_REPLY_STRING ||
      rep->element[0]->len >= 32 ||
      rep->element[1]->type != REDIS_REPLY_INTEGER) {
    er_errf(err, ER_E_ENV, "%s: unexpected reply to SCAN", r->url.redacted);
    drop(r);
    goto out;
  }
  memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
  cursor[rep->element[0]->len] = '\0';
  *n = rep->element[1]->integer;
  rc = 1;
out:
  if (rep)
    freeReplyObject(rep);
  return rc;
}

int er_redis_scan_unlink(er_redis_t *r, const char *pattern, int batch,
                         int64_t deadline_ms, long long *deleted,
                         er_err_t *err) {
  char cursor[32] = "0", count[16];
  const char **uargv = NULL;
  size_t *ulens = NULL;
  redisReply *rep = NULL, *urep = NULL;
  int rc = -1;

  if (batch < 1)
    batch = 1;
  snprintf(count, sizeof count, "%d", batch);
  for (;;) { /* on the server while it runs the script */
    long long n = 0;
    int lr = lua_page(r, cursor, pattern, count, deadline_ms, &n, err);
    if (lr < 0)
      goto out;
    if (lr == 0)
      break; /* from this cursor on, SCAN and UNLINK from here */
    *deleted += n;
    if (strcmp(cursor, "0") == 0) {
      rc = 0;
      goto out;
    }
  }
  do {
    redisReply *keys =
        scan_page(r, cursor, pattern, count, deadline_ms, &rep, err);
    if (!keys)
      goto out;
    keys = rep->element[1];
    if (keys->elements > 0) {
      size_t n = keys->elements + 1;
      uargv = calloc(n, sizeof *uargv);
      ulens = calloc(n, sizeof *ulens);
      if (!uargv || !ulens) {
        er_errf(err, ER_E_ENV, "redis: out of memory");
        goto out;
      }
      uargv[0] = "UNLINK";
      ulens[0] = 6;
      for (size_t i = 0; i < keys->elements; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING) {
          er_errf(err, ER_E_ENV, "%s: unexpected key type in SCAN",
                  r->url.redacted);
          goto out;
        }
        uargv[i + 1] = keys->element[i]->str;
        ulens[i + 1] = keys->element[i]->len;
      }
      if (call(r, (int)n, uargv, ulens, deadline_ms, &urep, err) != 0 || !urep)
        goto out;
      if (urep->type != REDIS_REPLY_INTEGER) {
        er_errf(err, ER_E_ENV, "%s: UNLINK failed: %.*s", r->url.redacted,
                urep->type == REDIS_REPLY_ERROR ? (int)urep->len : 0,
                urep->type == REDIS_REPLY_ERROR ? urep->str : "");
        goto out;
      }
      *deleted += urep->integer;
      freeReplyObject(urep);
      urep = NULL;
      free(uargv);
      free(ulens);
      uargv = NULL;
      ulens = NULL;
    }
    freeReplyObject(rep);
    rep = NULL;
  } while (strcmp(cursor, "0") != 0);
  rc = 0;
out:
  if (rep)
    freeReplyObject(rep);
  if (urep)
    freeReplyObject(urep);
  free(uargv);
  free(ulens);
  return rc;
}

void er_redis_scan_ttl_free(er_redis_scan_ttl_t *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->nkeys; i++)
    free(s->keys[i].key);
  free(s->keys);
  s->keys = NULL;
  s->nkeys = 0;
}

/* Keeps a copy of key (len bytes) unless already kept or keep reached. */
static int keep_key(er_redis_scan_ttl_t *out, size_t keep, const char *key,
                    size_t len) {
  char *cp;
  if (out->nkeys >= keep)
    return 0;
  for (size_t i = 0; i < out->nkeys; i++)
    if (out->keys[i].len == len &&
        (len == 0 || memcmp(out->keys[i].key, key, len) == 0))
      return 0;
  cp = malloc(len + 1);
  if (!cp)
    return -1;
  if (len > 0)
    memcpy(cp, key, len);
  cp[len] = '\0';
  out->keys[out->nkeys].key = cp;
  out->keys[out->nkeys].len = len;
  out->keys[out->nkeys].pttl = -2;
  out->nkeys++;
  return 0;
}

int er_redis_scan_pttl(er_redis_t *r, const char *pattern, int batch,
                       long long max_scanned, size_t keep,
                       int64_t scan_until_ms, int64_t deadline_ms,
                       er_redis_scan_ttl_t *out, er_err_t *err) {
  char cursor[32] = "0", count[16];
  redisReply *rep = NULL;
  int rc = -1;

  memset(out, 0, sizeof *out);
  if (batch < 1)
    batch = 1;
  snprintf(count, sizeof count, "%d", batch);
  if (keep > 0) {
    out->keys = calloc(keep, sizeof *out->keys);
    if (!out->keys) {
      er_errf(err, ER_E_ENV, "redis: out of memory");
      goto out;
    }
  }
  do {
    redisReply *keys =
        scan_page(r, cursor, pattern, count, deadline_ms, &rep, err);
    if (!keys)
      goto out;
    out->scanned += batch;
    keys = rep->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
      if (keys->element[i]->type != REDIS_REPLY_STRING) {
        er_errf(err, ER_E_ENV, "%s: unexpected key type in SCAN",
                r->url.redacted);
        goto out;
      }
      out->found++;
      if (keep_key(out, keep, keys->element[i]->str, keys->element[i]->len) !=
          0) {
        er_errf(err, ER_E_ENV, "redis: out of memory");
        goto out;
      }
    }
    freeReplyObject(rep);
    rep = NULL;
    if (strcmp(cursor, "0") != 0 &&
        ((max_scanned > 0 && out->scanned >= max_scanned) ||
         er_now_ms() >= scan_until_ms)) {
      out->incomplete = true;
      break;
    }
  } while (strcmp(cursor, "0") != 0);
  for (size_t i = 0; i < out->nkeys; i++) {
    const char *pargv[2] = {"PTTL", out->keys[i].key};
    size_t plens[2] = {4, out->keys[i].len};
    if (call(r, 2, pargv, plens, deadline_ms, &rep, err) != 0 || !rep)
      goto out;
    if (rep->type != REDIS_REPLY_INTEGER) {
      er_errf(err, ER_E_ENV, "%s: PTTL failed: %.*s", r->url.redacted,
              rep->type == REDIS_REPLY_ERROR ? (int)rep->len : 0,
              rep->type == REDIS_REPLY_ERROR ? rep->str : "");
      goto out;
    }
    out->keys[i].pttl = rep->integer;
    freeReplyObject(rep);
    rep = NULL;
  }
  rc = 0;
out:
  if (rep)
    freeReplyObject(rep);
  return rc;
}

int er_redis_flushdb(er_redis_t *r, int64_t deadline_ms, er_err_t *err) {
  const char *argv[1] = {"FLUSHDB"};
  redisReply *rep = NULL;
  int rc = -1;
  if (call(r, 1, argv, NULL, deadline_ms, &rep, err) != 0 || !rep)
    return -1;
  if (rep->type == REDIS_REPLY_ERROR)
    er_errf(err, ER_E_ENV, "%s: FLUSHDB failed: %.*s", r->url.redacted,
            (int)(rep->len > 300 ? 300 : rep->len), rep->str);
  else
    rc = 0;
  freeReplyObject(rep);
  return rc;
}
