/* pg.c: see pg.h. */
#include "adapters/pg.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"

#define NOTICE_CAP (8u * 1024u)
#define CANCEL_GRACE_MS 1000 /* how long a cancelled statement may take */
#define POLL_SLICE_MS 100    /* to notice an interrupt while waiting */

/* Column type OIDs (pg_type.h, stable across versions). */
enum {
  OID_BOOL = 16,
  OID_INT8 = 20,
  OID_INT2 = 21,
  OID_INT4 = 23,
  OID_OID = 26,
  OID_JSON = 114,
  OID_FLOAT4 = 700,
  OID_FLOAT8 = 701,
  OID_NUMERIC = 1700,
  OID_JSONB = 3802,
};

struct er_pg {
  char *dsn;
  char *password; /* from the DSN, to scrub from messages; may be NULL */
  char *redacted; /* dsn with the password as *** */
  PGconn *conn;   /* NULL until connected; dropped when broken */
  bool doomed;    /* the server sent FATAL: the connection is ending */
  er_buf_t notices;
};

/* ---- redaction --------------------------------------------------------- */

static bool is_uri(const char *dsn) {
  return er_str_has_prefix(dsn, "postgresql://") ||
         er_str_has_prefix(dsn, "postgres://");
}

static void redact_uri(const char *dsn, er_buf_t *b) {
  const char *p = strstr(dsn, "://") + 3;
  const char *q = p, *rest, *qm;
  /* userinfo ends at '@'; like libpq, the authority ends at '/' */
  while (*q && *q != '@' && *q != '/')
    q++;
  if (*q == '@') {
    const char *colon = memchr(p, ':', (size_t)(q - p));
    if (colon) {
      er_buf_append(b, dsn, (size_t)(colon + 1 - dsn));
      er_buf_puts(b, "***");
    } else {
      er_buf_append(b, dsn, (size_t)(q - dsn));
    }
    rest = q;
  } else {
    er_buf_append(b, dsn, (size_t)(p - dsn));
    rest = p;
  }
  qm = strchr(rest, '?');
  if (!qm) {
    er_buf_puts(b, rest);
    return;
  }
  er_buf_append(b, rest, (size_t)(qm + 1 - rest));
  for (const char *s = qm + 1; *s;) {
    const char *e = strchr(s, '&');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n >= 9 && strncmp(s, "password=", 9) == 0)
      er_buf_puts(b, "password=***");
    else
      er_buf_append(b, s, n);
    s += n;
    if (*s == '&') {
      er_buf_puts(b, "&");
      s++;
    }
  }
}

static void redact_kv(const char *dsn, er_buf_t *b) {
  const char *s = dsn;
  bool hide_next = false; /* "password secret" (malformed): hide secret */
  while (*s) {
    const char *kw, *v;
    bool secret;
    if (isspace((unsigned char)*s)) {
      er_buf_append(b, s++, 1);
      continue;
    }
    kw = s;
    while (*s && *s != '=' && !isspace((unsigned char)*s))
      s++;
    if (hide_next) {
      er_buf_puts(b, "***");
      hide_next = false;
      continue;
    }
    secret = (size_t)(s - kw) == 8 && strncmp(kw, "password", 8) == 0;
    er_buf_append(b, kw, (size_t)(s - kw));
    while (isspace((unsigned char)*s))
      er_buf_append(b, s++, 1);
    if (*s != '=') {
      hide_next = secret;
      continue;
    }
    er_buf_append(b, s++, 1);
    while (isspace((unsigned char)*s))
      er_buf_append(b, s++, 1);
    v = s;
    if (*s == '\'') {
      s++;
      while (*s && *s != '\'') {
        if (*s == '\\' && s[1])
          s++;
        s++;
      }
      if (*s)
        s++;
    } else {
      while (*s && !isspace((unsigned char)*s)) {
        if (*s == '\\' && s[1])
          s++;
        s++;
      }
    }
    if (secret)
      er_buf_puts(b, "***");
    else
      er_buf_append(b, v, (size_t)(s - v));
  }
}

void er_pg_redact_dsn(const char *dsn, char *out, size_t outsz) {
  er_buf_t b = ER_BUF_INIT(8192);
  if (!outsz)
    return;
  if (!dsn)
    dsn = "";
  if (is_uri(dsn))
    redact_uri(dsn, &b);
  else
    redact_kv(dsn, &b);
  snprintf(out, outsz, "%s", er_buf_cstr(&b));
  er_buf_free(&b);
}

/* Replaces every occurrence of the DSN's password in s with "***". */
static void scrub(const er_pg_t *pg, er_buf_t *s) {
  size_t n;
  char *hit;
  er_buf_t out = ER_BUF_INIT(s->cap);
  const char *p;
  if (!pg || !pg->password || (n = strlen(pg->password)) < 3 || !s->len)
    return;
  p = er_buf_cstr(s);
  if (!strstr(p, pg->password))
    return;
  while ((hit = strstr(p, pg->password)) != NULL) {
    er_buf_append(&out, p, (size_t)(hit - p));
    er_buf_puts(&out, "***");
    p = hit + n;
  }
  er_buf_puts(&out, p);
  er_buf_reset(s);
  er_buf_append(s, er_buf_cstr(&out), out.len);
  er_buf_free(&out);
}

/* libpq messages are multi-line; make them one line. */
static void one_line(er_buf_t *b, const char *msg) {
  bool space = false;
  for (const char *p = msg ? msg : ""; *p; p++) {
    if (*p == '\n' || *p == '\t' || *p == '\r') {
      space = true;
      continue;
    }
    if (space && b->len && b->data[b->len - 1] != ' ')
      er_buf_puts(b, " ");
    space = false;
    er_buf_append(b, p, 1);
  }
  while (b->len && b->data[b->len - 1] == ' ')
    b->data[--b->len] = '\0';
}

/* Formats a message, scrubs the password out, stores it in err. */
static int fail(const er_pg_t *pg, er_err_t *err, int code, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
static int fail(const er_pg_t *pg, er_err_t *err, int code, const char *fmt,
                ...) {
  er_buf_t b = ER_BUF_INIT(ER_ERRSTR * 2);
  va_list ap;
  va_start(ap, fmt);
  er_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  scrub(pg, &b);
  er_errf(err, code, "%s", er_buf_cstr(&b));
  er_buf_free(&b);
  return -1;
}

int er_pg_dsn_dbname(const char *dsn, char *out, size_t outsz) {
  PQconninfoOption *opts = PQconninfoParse(dsn ? dsn : "", NULL);
  const char *db = NULL, *user = NULL;
  if (!opts) {
    snprintf(out, outsz, "postgres");
    return -1;
  }
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    if (!strcmp(o->keyword, "dbname") && o->val && *o->val)
      db = o->val;
    else if (!strcmp(o->keyword, "user") && o->val && *o->val)
      user = o->val;
  }
  snprintf(out, outsz, "%s", db ? db : user ? user : "postgres");
  PQconninfoFree(opts);
  return 0;
}

/* ---- lifetime ---------------------------------------------------------- */

er_pg_t *er_pg_new(const char *dsn, er_err_t *err) {
  er_pg_t *pg = NULL;
  PQconninfoOption *opts = NULL;
  char *perr = NULL;
  char red[2048];

  er_pg_redact_dsn(dsn, red, sizeof red);
  opts = PQconninfoParse(dsn ? dsn : "", &perr);
  if (!opts) {
    char mine[2048];
    /* libpq's message may quote parts of the DSN: show it only when the
     * DSN holds nothing to hide */
    er_pg_redact_dsn(dsn, mine, sizeof mine);
    if (perr && strcmp(mine, dsn) == 0) {
      er_buf_t b = ER_BUF_INIT(ER_ERRSTR);
      one_line(&b, perr);
      er_errf(err, ER_E_INPUT, "postgres: malformed DSN %s: %s", red,
              er_buf_cstr(&b));
      er_buf_free(&b);
    } else {
      er_errf(err, ER_E_INPUT, "postgres: malformed DSN %s", red);
    }
    goto fail;
  }
  pg = calloc(1, sizeof *pg);
  if (!pg) {
    er_errf(err, ER_E_ENV, "postgres: out of memory");
    goto fail;
  }
  er_buf_init(&pg->notices, NOTICE_CAP);
  pg->dsn = er_strdup(dsn);
  pg->redacted = er_strdup(red);
  if (!pg->dsn || !pg->redacted) {
    er_errf(err, ER_E_ENV, "postgres: out of memory");
    goto fail;
  }
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
      pg->password = er_strdup(o->val);
      if (!pg->password) {
        er_errf(err, ER_E_ENV, "postgres: out of memory");
        goto fail;
      }
    }
  }
  PQconninfoFree(opts);
  return pg;
fail:
  if (opts)
    PQconninfoFree(opts);
  if (perr)
    PQfreemem(perr);
  er_pg_free(pg);
  return NULL;
}

static void drop_conn(er_pg_t *pg) {
  if (pg->conn)
    PQfinish(pg->conn);
  pg->conn = NULL;
  pg->doomed = false;
}

void er_pg_free(er_pg_t *pg) {
  if (!pg)
    return;
  drop_conn(pg);
  er_buf_free(&pg->notices);
  free(pg->dsn);
  free(pg->password);
  free(pg->redacted);
  free(pg);
}

const char *er_pg_dsn_redacted(const er_pg_t *pg) { return pg->redacted; }

const char *er_pg_notices(er_pg_t *pg) { return er_buf_cstr(&pg->notices); }

/* Notice receiver: keeps the text; a FATAL arriving outside a statement
 * (pg_terminate_backend, server shutdown) means the server is closing the
 * connection, even if the end of file has not arrived yet. */
static void on_notice(void *arg, const PGresult *r) {
  er_pg_t *pg = arg;
  const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  er_buf_puts(&pg->notices, PQresultErrorMessage(r));
  if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
    pg->doomed = true;
}

/* ---- waiting ----------------------------------------------------------- */

/* Waits for fd to be ready for ev until deadline. Returns 1 when ready
 * (or in error: libpq finds out), 0 when the deadline passed, -1 when
 * interrupted, -2 on a poll failure. */
static int wait_fd(int fd, short ev, int64_t deadline) {
  for (;;) {
    struct pollfd p;
    int64_t left;
    int r;
    if (er_interrupted())
      return -1;
    left = deadline - er_now_ms();
    if (left <= 0)
      return 0;
    p.fd = fd;
    p.events = ev;
    p.revents = 0;
    r = poll(&p, 1, left > POLL_SLICE_MS ? POLL_SLICE_MS : (int)left);
    if (r > 0)
      return 1;
    if (r < 0 && errno != EINTR)
      return -2;
  }
}

/* ---- connecting -------------------------------------------------------- */

static int conn_error(er_pg_t *pg, PGconn *c, er_err_t *err, const char *what) {
  er_buf_t b = ER_BUF_INIT(ER_ERRSTR);
  int rc;
  one_line(&b, c ? PQerrorMessage(c) : "out of memory");
  rc = fail(pg, err, ER_E_ENV, "postgres: %s %s: %s", what, pg->redacted,
            b.len ? er_buf_cstr(&b) : "unknown error");
  er_buf_free(&b);
  return rc;
}

/* Drops a connection the server closed while it sat idle, so the next
 * statement goes to a fresh one instead of failing. */
static void check_idle(er_pg_t *pg) {
  PGnotify *n;
  if (!pg->conn)
    return;
  if (PQstatus(pg->conn) != CONNECTION_OK || pg->doomed ||
      PQtransactionStatus(pg->conn) == PQTRANS_ACTIVE) {
    drop_conn(pg);
    return;
  }
  for (int i = 0; i < 8; i++) {
    struct pollfd p = {PQsocket(pg->conn), POLLIN, 0};
    if (poll(&p, 1, 0) <= 0)
      break;
    /* pending input while idle: a notice, a notification, or the
     * server's goodbye (FATAL message then end of file) */
    if (!PQconsumeInput(pg->conn)) {
      drop_conn(pg);
      return;
    }
    (void)PQisBusy(pg->conn); /* parses what arrived */
    if (PQstatus(pg->conn) != CONNECTION_OK || pg->doomed) {
      drop_conn(pg);
      return;
    }
  }
  while ((n = PQnotifies(pg->conn)) != NULL)
    PQfreemem(n);
}

int er_pg_connect(er_pg_t *pg, int64_t deadline_ms, er_err_t *err) {
  static const char *const kw[] = {"dbname", "connect_timeout",
                                   "client_encoding",
                                   "fallback_application_name", NULL};
  const char *vals[5];
  char secs[24];
  int64_t t0 = er_now_ms(), left = deadline_ms - t0;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  PGconn *c = NULL;
  int rc = -1;

  check_idle(pg);
  if (pg->conn)
    return 0;
  if (left <= 0)
    return fail(pg, err, ER_E_ENV,
                "postgres: connect to %s: the deadline passed before "
                "connecting",
                pg->redacted);
  /* libpq's own timeout only backs ours up (it counts whole seconds,
   * at least 2); the poll loop below ends at the deadline exactly */
  snprintf(secs, sizeof secs, "%" PRId64,
           left < 2000 ? 2 : (left + 999) / 1000);
  vals[0] = pg->dsn;
  vals[1] = secs;
  vals[2] = "UTF8";
  vals[3] = "eventrig";
  vals[4] = NULL;
  pg->doomed = false;
  c = PQconnectStartParams(kw, vals, 1);
  if (!c || PQstatus(c) == CONNECTION_BAD) {
    conn_error(pg, c, err, "cannot connect to");
    goto out;
  }
  PQsetNoticeReceiver(c, on_notice, pg);
  while (st != PGRES_POLLING_OK) {
    int w;
    if (st == PGRES_POLLING_FAILED) {
      conn_error(pg, c, err, "cannot connect to");
      goto out;
    }
    w = wait_fd(PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                deadline_ms);
    if (w == 0) {
      fail(pg, err, ER_E_ENV,
           "postgres: connect to %s: no answer within %" PRId64 "ms",
           pg->redacted, er_now_ms() - t0);
      goto out;
    }
    if (w == -1) {
      er_errf(err, ER_E_INTR, "postgres: interrupted while connecting");
      goto out;
    }
    if (w < 0) {
      fail(pg, err, ER_E_ENV, "postgres: connect to %s: poll: %s", pg->redacted,
           strerror(errno));
      goto out;
    }
    st = PQconnectPoll(c);
  }
  if (PQsetnonblocking(c, 1) != 0) {
    conn_error(pg, c, err, "cannot set up the connection to");
    goto out;
  }
  pg->conn = c;
  c = NULL;
  rc = 0;
out:
  if (c)
    PQfinish(c);
  return rc;
}

/* ---- results ----------------------------------------------------------- */

static json_t *text_json(const char *v, size_t len) {
  json_t *j = json_stringn(v, len);
  char *copy;
  if (j)
    return j;
  /* not UTF-8: keep the ASCII, replace the rest */
  copy = malloc(len + 1);
  if (!copy)
    return NULL;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)v[i];
    copy[i] = (ch >= 0x80 || ch == 0) ? '?' : (char)ch;
  }
  copy[len] = '\0';
  j = json_stringn(copy, len);
  free(copy);
  return j;
}

static json_t *numeric_json(const char *v, size_t len) {
  const char *p = v;
  bool integral = true;
  int sig = 0, pending_zeros = 0;
  bool started = false, frac = false;
  if (*p == '-')
    p++;
  if (!isdigit((unsigned char)*p))
    return text_json(v, len); /* NaN, Infinity */
  for (; *p; p++) {
    if (*p == '.') {
      frac = true;
      continue;
    }
    if (!isdigit((unsigned char)*p))
      return text_json(v, len);
    if (frac && *p != '0')
      integral = false;
    if (*p == '0') {
      if (started)
        pending_zeros++;
      continue;
    }
    /* a non-zero digit: zeros between significant digits count */
    sig += started ? pending_zeros + 1 : 1;
    pending_zeros = 0;
    started = true;
  }
  if (integral) {
    /* "12" or "12.000": exact when it fits in int64 */
    char *end = NULL;
    long long ll;
    errno = 0;
    ll = strtoll(v, &end, 10);
    if (errno == 0 && (*end == '\0' || *end == '.'))
      return json_integer((json_int_t)ll);
    if (!strchr(v, '.')) /* beyond 64 bits: exact (base/jsonbig.h) */
      return er_big_from_text(v, len);
  }
  if (sig <= 15) {
    double d = strtod(v, NULL);
    if (isfinite(d))
      return json_real(d);
  }
  return text_json(v, len);
}

static json_t *cell_json(const PGresult *pr, int r, int c) {
  const char *v;
  size_t len;
  if (PQgetisnull(pr, r, c))
    return json_null();
  v = PQgetvalue(pr, r, c);
  len = (size_t)PQgetlength(pr, r, c);
  switch (PQftype(pr, c)) {
  case OID_INT2:
  case OID_INT4:
  case OID_INT8:
  case OID_OID: {
    char *end = NULL;
    long long ll;
    errno = 0;
    ll = strtoll(v, &end, 10);
    if (errno == 0 && end != v && *end == '\0')
      return json_integer((json_int_t)ll);
    return text_json(v, len);
  }
  case OID_FLOAT4:
  case OID_FLOAT8: {
    char *end = NULL;
    double d = strtod(v, &end);
    if (end != v && *end == '\0' && isfinite(d))
      return json_real(d);
    return text_json(v, len); /* NaN, Infinity, -Infinity */
  }
  case OID_NUMERIC:
    return numeric_json(v, len);
  case OID_BOOL:
    return json_boolean(v[0] == 't');
  case OID_JSON:
  case OID_JSONB: {
    json_t *j = er_json_loadb(v, len, JSON_DECODE_ANY, NULL);
    return j ? j : text_json(v, len);
  }
  default:
    return text_json(v, len);
  }
}

/* Replaces res->columns/rows with the rows of pr, within the caps. */
static int take_rows(const PGresult *pr, er_pg_result_t *res) {
  int nf = PQnfields(pr), nt = PQntuples(pr);
  size_t bytes = 0;
  json_decref(res->columns);
  json_decref(res->rows);
  res->columns = json_array();
  res->rows = json_array();
  res->total_rows = (size_t)nt;
  res->truncated = false;
  if (!res->columns || !res->rows)
    return -1;
  for (int c = 0; c < nf; c++) {
    const char *name = PQfname(pr, c);
    if (json_array_append_new(res->columns, text_json(name, strlen(name))) != 0)
      return -1;
  }
  for (int r = 0; r < nt; r++) {
    size_t rb = 0;
    json_t *row;
    for (int c = 0; c < nf; c++)
      rb += (size_t)PQgetlength(pr, r, c);
    if (r >= ER_PG_MAX_ROWS || bytes + rb > ER_PG_MAX_BYTES) {
      res->truncated = true;
      break;
    }
    bytes += rb;
    row = json_array();
    if (!row || json_array_append_new(res->rows, row) != 0)
      return -1;
    for (int c = 0; c < nf; c++)
      if (json_array_append_new(row, cell_json(pr, r, c)) != 0)
        return -1;
  }
  return 0;
}

/* "ERROR 42P01: relation "x" does not exist (at character 15)" */
static void server_error(const PGresult *pr, er_buf_t *b) {
  const char *sev = PQresultErrorField(pr, PG_DIAG_SEVERITY);
  const char *state = PQresultErrorField(pr, PG_DIAG_SQLSTATE);
  const char *prim = PQresultErrorField(pr, PG_DIAG_MESSAGE_PRIMARY);
  const char *det = PQresultErrorField(pr, PG_DIAG_MESSAGE_DETAIL);
  const char *hint = PQresultErrorField(pr, PG_DIAG_MESSAGE_HINT);
  const char *pos = PQresultErrorField(pr, PG_DIAG_STATEMENT_POSITION);
  const char *ctx = PQresultErrorField(pr, PG_DIAG_CONTEXT);
  bool paren = false;
  if (!prim) {
    one_line(b, PQresultErrorMessage(pr));
    return;
  }
  er_buf_printf(b, "%s %s: ", sev ? sev : "ERROR", state ? state : "?????");
  one_line(b, prim);
  if (pos) {
    er_buf_printf(b, " (at character %s", pos);
    paren = true;
  }
  if (det) {
    er_buf_puts(b, paren ? "; detail: " : " (detail: ");
    one_line(b, det);
    paren = true;
  }
  if (hint) {
    er_buf_puts(b, paren ? "; hint: " : " (hint: ");
    one_line(b, hint);
    paren = true;
  }
  if (ctx) {
    er_buf_puts(b, paren ? "; context: " : " (context: ");
    one_line(b, ctx);
    paren = true;
  }
  if (paren)
    er_buf_puts(b, ")");
}

void er_pg_result_free(er_pg_result_t *res) {
  if (!res)
    return;
  json_decref(res->columns);
  json_decref(res->rows);
  memset(res, 0, sizeof *res);
}

/* ---- running ----------------------------------------------------------- */

/* Sends the statement and flushes it out. Returns 0, 1 when the
 * connection turned out broken before anything reached the server (worth
 * one retry on a fresh one), -1 on other errors (err set). */
static int send_query(er_pg_t *pg, const char *sql, const char *const *params,
                      int nparams, bool extended, int64_t deadline,
                      er_err_t *err) {
  PGconn *c = pg->conn;
  int sent = params || extended ? PQsendQueryParams(c, sql, nparams, NULL,
                                                    params, NULL, NULL, 0)
                                : PQsendQuery(c, sql);
  if (!sent) {
    if (PQstatus(c) == CONNECTION_BAD)
      return 1;
    return conn_error(pg, c, err, "cannot send the statement to");
  }
  for (;;) {
    int f = PQflush(c), w;
    if (f == 0)
      return 0;
    if (f < 0)
      return conn_error(pg, c, err, "lost the connection to");
    w = wait_fd(PQsocket(c), POLLOUT | POLLIN, deadline);
    if (w == 0)
      return fail(pg, err, ER_E_ENV,
                  "postgres: the deadline passed while sending the "
                  "statement to %s",
                  pg->redacted);
    if (w == -1)
      return er_errf(err, ER_E_INTR, "postgres: interrupted");
    if (w < 0)
      return fail(pg, err, ER_E_ENV, "postgres: poll: %s", strerror(errno));
    if (!PQconsumeInput(c))
      return conn_error(pg, c, err, "lost the connection to");
  }
}

static void cancel(PGconn *c) {
  char buf[256];
  PGcancel *cn = PQgetCancel(c);
  if (cn) {
    /* blocking, but only a connect + one packet to the same server */
    (void)PQcancel(cn, buf, sizeof buf);
    PQfreeCancel(cn);
  }
}

/* How run() sends a statement. */
enum {
  RUN_EXTENDED = 1, /* the extended protocol even without parameters (one
                       statement only) */
  RUN_SAME_CONN = 2 /* never (re)connect: the statement belongs to the
                       transaction open on the current connection */
};

/* Connects when needed and sends the statement, once more on a fresh
 * connection when a reused one turned out stale (not with RUN_SAME_CONN).
 * Returns 0 when sent, -1 (err set). */
static int connect_and_send(er_pg_t *pg, const char *sql,
                            const char *const *params, int nparams, int flags,
                            int64_t deadline_ms, er_err_t *err) {
  for (int attempt = 0;; attempt++) {
    bool reused;
    int s;
    check_idle(pg);
    reused = pg->conn != NULL;
    if ((flags & RUN_SAME_CONN) && !pg->conn)
      return fail(pg, err, ER_E_ENV,
                  "postgres: lost the connection to %s inside the read-only "
                  "transaction; the statement was not sent",
                  pg->redacted);
    if (er_pg_connect(pg, deadline_ms, err) != 0)
      return -1;
    if (er_now_ms() >= deadline_ms)
      return fail(
          pg, err, ER_E_ENV,
          "postgres: the deadline passed before the statement was sent");
    s = send_query(pg, sql, params, nparams, (flags & RUN_EXTENDED) != 0,
                   deadline_ms, err);
    if (s == 0)
      return 0;
    if (s == 1 && reused && attempt == 0 && !(flags & RUN_SAME_CONN)) {
      drop_conn(pg); /* went stale while idle: once more on a new one */
      continue;
    }
    if (s == 1)
      conn_error(pg, pg->conn, err, "lost the connection to");
    drop_conn(pg);
    return -1;
  }
}

/* What reading a sent statement's results came to (run()). */
typedef struct reading {
  int64_t wait_until;          /* the deadline, then the cancel's grace */
  bool cancelled, interrupted; /* cancelled at the deadline / on a signal */
  bool drop;                   /* the connection is to be dropped */
  bool have_error;             /* err is set */
  bool unsupported;            /* a COPY */
  er_buf_t emsg;               /* the server's first error */
  int statements_before_error;
} reading_t;

/* Waits until c has a result ready, cancelling the statement at the
 * deadline or on an interrupt. Returns 0 when ready, -1 when the reading
 * ends here (rd->drop set). */
static int wait_ready(er_pg_t *pg, PGconn *c, reading_t *rd, er_err_t *err) {
  while (PQisBusy(c)) {
    int w = wait_fd(PQsocket(c), POLLIN, rd->wait_until);
    if (w <= 0 && !rd->cancelled) {
      /* deadline, interrupt or poll failure: cancel the statement and
       * give the server a moment to say so, keeping the connection */
      rd->cancelled = true;
      rd->interrupted = w == -1;
      cancel(c);
      rd->wait_until = er_now_ms() + CANCEL_GRACE_MS;
      continue;
    }
    if (w <= 0) {
      rd->drop = true; /* the cancel went unanswered */
      return -1;
    }
    if (!PQconsumeInput(c)) {
      if (!rd->have_error) {
        conn_error(pg, c, err, "lost the connection to");
        rd->have_error = true;
      }
      rd->drop = true;
      return -1;
    }
  }
  return 0;
}

/* Takes one result of the statement into res and rd. Returns 0, or -1
 * when the reading ends here (a COPY). Does not clear pr. */
static int take_result(PGresult *pr, er_pg_result_t *res, reading_t *rd,
                       er_err_t *err) {
  switch (PQresultStatus(pr)) {
  case PGRES_TUPLES_OK:
  case PGRES_SINGLE_TUPLE:
    res->statements++;
    if (!rd->have_error && take_rows(pr, res) != 0) {
      er_errf(err, ER_E_ENV, "postgres: out of memory for the rows");
      rd->have_error = true;
    }
    snprintf(res->cmd_status, sizeof res->cmd_status, "%s", PQcmdStatus(pr));
    break;
  case PGRES_COMMAND_OK:
  case PGRES_EMPTY_QUERY:
    res->statements++;
    snprintf(res->cmd_status, sizeof res->cmd_status, "%s", PQcmdStatus(pr));
    break;
  case PGRES_COPY_IN:
  case PGRES_COPY_OUT:
  case PGRES_COPY_BOTH:
    rd->unsupported = true;
    rd->drop = true; /* simplest way out of a copy: a new connection */
    return -1;
  case PGRES_NONFATAL_ERROR:
    break;
  default: /* PGRES_FATAL_ERROR, PGRES_BAD_RESPONSE */
    if (!rd->have_error && !rd->cancelled && rd->emsg.len == 0) {
      const char *st = PQresultErrorField(pr, PG_DIAG_SQLSTATE);
      server_error(pr, &rd->emsg);
      rd->statements_before_error = res->statements;
      if (st)
        snprintf(res->sqlstate, sizeof res->sqlstate, "%s", st);
    }
    break;
  }
  return 0;
}

/* Reads every result of the sent statement into res and rd, then drops
 * the connection when rd->drop says so. */
static void read_results(er_pg_t *pg, er_pg_result_t *res, reading_t *rd,
                         er_err_t *err) {
  for (;;) {
    PGconn *c = pg->conn;
    PGresult *pr;
    int t;
    if (wait_ready(pg, c, rd, err) != 0)
      goto done;
    pr = PQgetResult(c);
    if (!pr)
      break;
    t = take_result(pr, res, rd, err);
    PQclear(pr);
    if (t != 0)
      goto done;
  }
  if (PQstatus(pg->conn) != CONNECTION_OK)
    rd->drop = true;

done:
  if (rd->drop)
    drop_conn(pg);
}

/* run()'s verdict on what read_results found: 0, or -1 with err set. */
static int reading_verdict(er_pg_t *pg, reading_t *rd, int64_t t0,
                           er_pg_result_t *res, er_err_t *err) {
  if (rd->have_error)
    return -1;
  if (rd->interrupted)
    return er_errf(err, ER_E_INTR,
                   "postgres: interrupted; statement cancelled");
  if (rd->cancelled)
    return fail(
        pg, err, ER_E_ENV,
        "postgres: statement cancelled at the deadline, after %" PRId64 "ms%s",
        er_now_ms() - t0,
        rd->drop ? " (the server did not confirm; connection closed)" : "");
  if (rd->unsupported)
    return fail(pg, err, ER_E_INPUT,
                "postgres: COPY ... FROM STDIN / TO STDOUT is not supported");
  if (rd->emsg.len) {
    if (rd->drop) {
      /* the connection broke under the statement (terminated backend,
       * server shutdown): an environment problem, not the SQL's */
      res->sqlstate[0] = '\0';
      return fail(pg, err, ER_E_ENV, "postgres: lost the connection to %s: %s",
                  pg->redacted, er_buf_cstr(&rd->emsg));
    }
    if (rd->statements_before_error > 0)
      return fail(pg, err, ER_E_FAIL, "%s (in statement %d of the text)",
                  er_buf_cstr(&rd->emsg), rd->statements_before_error + 1);
    return fail(pg, err, ER_E_FAIL, "%s", er_buf_cstr(&rd->emsg));
  }
  if (!res->columns) {
    res->columns = json_array();
    res->rows = json_array();
    if (!res->columns || !res->rows)
      return er_errf(err, ER_E_ENV, "postgres: out of memory");
  }
  return 0;
}

static int run(er_pg_t *pg, const char *sql, const char *const *params,
               int nparams, int flags, int64_t deadline_ms, er_pg_result_t *res,
               er_err_t *err) {
  int64_t t0 = er_now_ms();
  reading_t rd;
  int rc = -1;

  memset(res, 0, sizeof *res);
  memset(&rd, 0, sizeof rd);
  rd.wait_until = deadline_ms;
  er_buf_init(&rd.emsg, ER_ERRSTR);
  if (connect_and_send(pg, sql, params, nparams, flags, deadline_ms, err) != 0)
    goto out;
  read_results(pg, res, &rd, err);
  rc = reading_verdict(pg, &rd, t0, res, err);
out:
  er_buf_free(&rd.emsg);
  return rc;
}

int er_pg_query(er_pg_t *pg, const char *sql, const char *const *params,
                int nparams, int64_t deadline_ms, er_pg_result_t *res,
                er_err_t *err) {
  er_buf_reset(&pg->notices);
  return run(pg, sql, params, nparams, 0, deadline_ms, res, err);
}

/* ---- read-only --------------------------------------------------------- */

static bool in_transaction(const er_pg_t *pg) {
  return pg->conn && PQtransactionStatus(pg->conn) == PQTRANS_INTRANS;
}

/* Ends the read-only transaction (with a deadline of its own: the
 * statement's may have passed); a connection that is not idle afterwards
 * is closed, so no later statement can land in a leftover transaction. */
static void end_read_only(er_pg_t *pg) {
  er_pg_result_t r = {0};
  er_err_t ignore = {0};
  if (pg->conn && PQtransactionStatus(pg->conn) != PQTRANS_IDLE)
    (void)run(pg, "ROLLBACK", NULL, 0, RUN_SAME_CONN,
              er_now_ms() + 2 * CANCEL_GRACE_MS, &r, &ignore);
  er_pg_result_free(&r);
  if (pg->conn && PQtransactionStatus(pg->conn) != PQTRANS_IDLE)
    drop_conn(pg);
}

int er_pg_query_ro(er_pg_t *pg, const char *sql, const char *const *params,
                   int nparams, int64_t deadline_ms, er_pg_result_t *res,
                   er_err_t *err) {
  er_pg_result_t first = {0};
  const char *ro;
  int rc = -1;

  er_buf_reset(&pg->notices);
  memset(res, 0, sizeof *res);
  /* a connection left inside a transaction is not reused */
  if (pg->conn && PQtransactionStatus(pg->conn) != PQTRANS_IDLE)
    drop_conn(pg);
  if (run(pg, "BEGIN TRANSACTION READ ONLY", NULL, 0, 0, deadline_ms, &first,
          err) != 0)
    goto out;
  er_pg_result_free(&first);
  /* the first query of the transaction: from now on Postgres refuses to
   * make it read-write ("SET TRANSACTION READ WRITE" must come before any
   * query), and the server itself confirms the mode */
  if (!in_transaction(pg) ||
      run(pg, "SELECT current_setting('transaction_read_only')", NULL, 0,
          RUN_SAME_CONN, deadline_ms, &first, err) != 0)
    goto out;
  ro = json_string_value(json_array_get(json_array_get(first.rows, 0), 0));
  if (!in_transaction(pg) || !ro || strcmp(ro, "on") != 0) {
    fail(pg, err, ER_E_ENV,
         "postgres: %s did not start a read-only transaction "
         "(transaction_read_only is %s); the statement was not sent",
         pg->redacted, ro ? ro : "unknown");
    goto out;
  }
  /* one statement, the extended protocol: no "; COMMIT; ..." after it */
  rc = run(pg, sql, params, nparams, RUN_EXTENDED | RUN_SAME_CONN, deadline_ms,
           res, err);
out:
  er_pg_result_free(&first);
  end_read_only(pg);
  return rc;
}
