/* http.c: see http.h. */
#include "adapters/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/redact.h"

struct er_http {
  CURL *curl;
  CURLSH *jar; /* the cookie jar, made on first use */
};

/* ---- global init ------------------------------------------------------- */

/* The only globals: curl_global_init must run once per process, before
 * any other thread uses curl. */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_OK;

static void global_init_once(void) {
  g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int er_http_global_init(er_err_t *err) {
  pthread_once(&g_once, global_init_once);
  if (g_init_rc != CURLE_OK)
    return er_errf(err, ER_E_ENV, "http: curl_global_init: %s",
                   curl_easy_strerror(g_init_rc));
  return 0;
}

er_http_t *er_http_new(er_err_t *err) {
  er_http_t *h = NULL;
  if (er_http_global_init(err) != 0)
    return NULL;
  h = calloc(1, sizeof *h);
  if (!h || !(h->curl = curl_easy_init())) {
    free(h);
    er_errf(err, ER_E_ENV, "http: cannot create a curl handle");
    return NULL;
  }
  return h;
}

void er_http_free(er_http_t *h) {
  if (!h)
    return;
  if (h->curl)
    curl_easy_cleanup(h->curl);
  if (h->jar)
    curl_share_cleanup(h->jar);
  free(h);
}

/* ---- response ---------------------------------------------------------- */

void er_http_resp_free(er_http_resp_t *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->nhdr; i++) {
    free(r->hdr[i].name);
    free(r->hdr[i].value);
  }
  free(r->hdr);
  er_buf_free(&r->body);
  free(r->url);
  memset(r, 0, sizeof *r);
}

static void headers_clear(er_http_resp_t *r) {
  for (size_t i = 0; i < r->nhdr; i++) {
    free(r->hdr[i].name);
    free(r->hdr[i].value);
  }
  free(r->hdr);
  r->hdr = NULL;
  r->nhdr = 0;
  r->headers_truncated = false;
}

typedef struct xfer {
  er_http_resp_t *resp;
  size_t hdr_bytes;
  size_t hdr_alloc;
  bool oom;
} xfer_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  xfer_t *x = ud;
  if (er_buf_append(&x->resp->body, p, size * n) != 0) {
    x->oom = true;
    return 0;
  }
  return size * n; /* past the cap: dropped, marked truncated, read on */
}

static char *trimmed(const char *s, size_t n) {
  char *out;
  while (n && isspace((unsigned char)*s)) {
    s++;
    n--;
  }
  while (n && isspace((unsigned char)s[n - 1]))
    n--;
  out = malloc(n + 1);
  if (out) {
    memcpy(out, s, n);
    out[n] = '\0';
  }
  return out;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  xfer_t *x = ud;
  er_http_resp_t *r = x->resp;
  size_t len = size * n;
  const char *colon;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    /* a new response (after 100 Continue, say): its headers only */
    headers_clear(r);
    x->hdr_bytes = 0;
    x->hdr_alloc = 0; /* headers_clear freed the array */
    return len;
  }
  if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n'))
    return len; /* end of headers */
  if (r->nhdr >= ER_HTTP_MAX_HEADERS ||
      x->hdr_bytes + len > ER_HTTP_HEADERS_CAP) {
    r->headers_truncated = true;
    return len;
  }
  x->hdr_bytes += len;
  if ((p[0] == ' ' || p[0] == '\t') && r->nhdr) {
    /* obsolete line folding: continues the previous value */
    er_http_header_t *last = &r->hdr[r->nhdr - 1];
    char *more = trimmed(p, len);
    size_t a = strlen(last->value), b = more ? strlen(more) : 0;
    char *joined = more ? realloc(last->value, a + b + 2) : NULL;
    if (!joined) {
      free(more);
      x->oom = true;
      return 0;
    }
    joined[a] = ' ';
    memcpy(joined + a + 1, more, b + 1);
    last->value = joined;
    free(more);
    return len;
  }
  colon = memchr(p, ':', len);
  if (!colon)
    return len; /* not a header line; ignore */
  if (r->nhdr == x->hdr_alloc) {
    size_t na = x->hdr_alloc ? x->hdr_alloc * 2 : 16;
    er_http_header_t *nh = realloc(r->hdr, na * sizeof *nh);
    if (!nh) {
      x->oom = true;
      return 0;
    }
    r->hdr = nh;
    x->hdr_alloc = na;
  }
  r->hdr[r->nhdr].name = trimmed(p, (size_t)(colon - p));
  r->hdr[r->nhdr].value = trimmed(colon + 1, len - (size_t)(colon + 1 - p));
  if (!r->hdr[r->nhdr].name || !r->hdr[r->nhdr].value) {
    free(r->hdr[r->nhdr].name);
    free(r->hdr[r->nhdr].value);
    x->oom = true;
    return 0;
  }
  r->nhdr++;
  return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                       curl_off_t un) {
  (void)ud;
  (void)dt;
  (void)dn;
  (void)ut;
  (void)un;
  return er_interrupted() ? 1 : 0;
}

char *er_http_header_get(const er_http_resp_t *r, const char *name) {
  er_buf_t b = ER_BUF_INIT(ER_HTTP_HEADERS_CAP);
  bool found = false;
  for (size_t i = 0; i < r->nhdr; i++) {
    if (strcasecmp(r->hdr[i].name, name) != 0)
      continue;
    if (found)
      er_buf_puts(&b, ", ");
    er_buf_puts(&b, r->hdr[i].value);
    found = true;
  }
  if (!found)
    return NULL;
  if (!b.len)
    return er_strdup("");
  return er_buf_steal(&b);
}

size_t er_http_header_values(const er_http_resp_t *r, const char *name,
                             const char **vals, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < r->nhdr; i++) {
    if (strcasecmp(r->hdr[i].name, name) != 0)
      continue;
    if (n < max)
      vals[n] = r->hdr[i].value;
    n++;
  }
  return n;
}

bool er_http_header_is_secret(const char *name) {
  return er_redact_header_is_secret(name);
}

void er_http_redact_url(const char *url, char *out, size_t outsz) {
  const char *p, *end, *at = NULL, *colon;
  if (!outsz)
    return;
  if (!url)
    url = "";
  p = strstr(url, "://");
  if (!p) {
    snprintf(out, outsz, "%s", url);
    return;
  }
  p += 3;
  end = p + strcspn(p, "/?#");
  for (const char *q = p; q < end; q++)
    if (*q == '@')
      at = q;
  colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
  if (!colon) {
    snprintf(out, outsz, "%s", url);
    return;
  }
  snprintf(out, outsz, "%.*s***%s", (int)(colon + 1 - url), url, at);
}

/* ---- perform ----------------------------------------------------------- */

static bool method_ok(const char *m) {
  if (!*m)
    return false;
  for (const char *p = m; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
      return false;
  return true;
}

/* A malformed URL or another scheme is the scenario's mistake (no retry
 * helps); tell it apart from what happens on the wire. */
static int check_url(const char *url, er_err_t *err) {
  CURLU *u = curl_url();
  char *scheme = NULL;
  CURLUcode uc;
  int rc = 0;
  if (!u)
    return er_errf(err, ER_E_ENV, "http: out of memory");
  uc = curl_url_set(u, CURLUPART_URL, url ? url : "", 0);
  if (uc != CURLUE_OK) {
    rc = er_errf(err, ER_E_INPUT, "http: malformed URL: %s",
                 curl_url_strerror(uc));
  } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
    rc = er_errf(err, ER_E_INPUT,
                 "http: only http:// and https:// URLs are supported");
  }
  curl_free(scheme);
  curl_url_cleanup(u);
  return rc;
}

/* The request's body: none (HEAD), multipart parts, bytes or none. */
static int set_body(CURL *c, const er_http_req_t *req, const char *method,
                    curl_mime **mime) {
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req->nparts) {
    *mime = curl_mime_init(c);
    if (!*mime)
      return -1;
    for (size_t i = 0; i < req->nparts; i++) {
      const er_http_part_t *p = &req->parts[i];
      curl_mimepart *mp = curl_mime_addpart(*mime);
      if (!mp || curl_mime_name(mp, p->name) != CURLE_OK ||
          curl_mime_data(mp, p->data ? p->data : "", p->len) != CURLE_OK ||
          (p->filename && curl_mime_filename(mp, p->filename) != CURLE_OK) ||
          (p->type && curl_mime_type(mp, p->type) != CURLE_OK))
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_MIMEPOST, *mime);
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  } else if (req->body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  }
  return 0;
}

/* Redirects, the cookie jar and TLS. -1 when memory ran out. */
static int set_session(er_http_t *h, const er_http_req_t *req) {
  CURL *c = h->curl;
  if (req->max_redirects > 0) {
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, req->max_redirects);
  } else {
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  }
  if (req->cookies) {
    if (!h->jar) {
      h->jar = curl_share_init();
      if (!h->jar || curl_share_setopt(h->jar, CURLSHOPT_SHARE,
                                       CURL_LOCK_DATA_COOKIE) != CURLSHE_OK)
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_SHARE, h->jar);
    curl_easy_setopt(c, CURLOPT_COOKIEFILE, ""); /* the engine, no file */
  } else {
    curl_easy_setopt(c, CURLOPT_SHARE, NULL); /* neither sent nor kept */
  }
  if (req->insecure) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (req->ca)
    curl_easy_setopt(c, CURLOPT_CAINFO, req->ca);
  if (req->cert)
    curl_easy_setopt(c, CURLOPT_SSLCERT, req->cert);
  if (req->key)
    curl_easy_setopt(c, CURLOPT_SSLKEY, req->key);
  return 0;
}

/* The final URL, the redirects followed and the HTTP version. */
static int get_meta(CURL *c, er_http_resp_t *resp) {
  char *u = NULL;
  long ver = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
  curl_easy_getinfo(c, CURLINFO_REDIRECT_COUNT, &resp->redirects);
  curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &ver);
  snprintf(resp->http_version, sizeof resp->http_version, "%s",
           ver == CURL_HTTP_VERSION_1_0   ? "1.0"
           : ver == CURL_HTTP_VERSION_1_1 ? "1.1"
           : ver == CURL_HTTP_VERSION_2_0 ? "2"
           : ver == CURL_HTTP_VERSION_3   ? "3"
                                          : "");
  curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &u);
  resp->url = er_strdup(u ? u : "");
  return resp->url ? 0 : -1;
}

/* req's headers, then an empty "Expect:", appended to *hl (the caller's
 * to free, also after a failure). -1 when memory ran out. */
static int header_list(const er_http_req_t *req, struct curl_slist **hl) {
  struct curl_slist *tmp;
  for (size_t i = 0; i < req->nheaders; i++) {
    tmp = curl_slist_append(*hl, req->headers[i]);
    if (!tmp)
      return -1;
    *hl = tmp;
  }
  /* no "Expect: 100-continue" round trip for larger bodies */
  tmp = curl_slist_append(*hl, "Expect:");
  if (!tmp)
    return -1;
  *hl = tmp;
  return 0;
}

/* The time the transfer has (left ms), where its error text, body and
 * headers go, the interrupt check, the user agent and the headers hl. */
static void set_transfer(CURL *c, int64_t left, char *errbuf, xfer_t *x,
                         struct curl_slist *hl) {
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)left);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "eventrig");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
}

/* The message for a transfer that ended with rc (not CURLE_OK), with
 * curl's text errbuf; left is the time it had. Returns -1. */
static int perform_failed(CURL *c, CURLcode rc, const char *errbuf,
                          int64_t left, er_err_t *err) {
  switch (rc) {
  case CURLE_URL_MALFORMAT:
  case CURLE_BAD_FUNCTION_ARGUMENT:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
    return er_errf(err, ER_E_INPUT, "http: %s%s%s", curl_easy_strerror(rc),
                   errbuf[0] ? ": " : "", errbuf);
  case CURLE_ABORTED_BY_CALLBACK:
    return er_errf(err, ER_E_INTR, "http: interrupted");
  case CURLE_OPERATION_TIMEDOUT:
    return er_errf(err, ER_E_ENV,
                   "http: no complete response by the deadline (%" PRId64
                   "ms): %s",
                   (int64_t)left, errbuf[0] ? errbuf : curl_easy_strerror(rc));
  default: {
    long oserr = 0;
    curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
    return er_errf(err, ER_E_ENV, "http: %s%s%s%s%s%s", curl_easy_strerror(rc),
                   errbuf[0] ? ": " : "", errbuf, oserr ? " (" : "",
                   oserr ? strerror((int)oserr) : "", oserr ? ")" : "");
  }
  }
}

/* After a transfer: the handle must not keep pointers into this call's
 * stack. */
static void unhook_call(CURL *c, const er_http_req_t *req) {
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
  curl_easy_setopt(c, CURLOPT_MIMEPOST, NULL);
  /* the list of cookie files ("" each time) outlives curl_easy_reset in
   * libcurl 7.x: empty it (the jar's cookies are in the share) */
  if (req->cookies)
    curl_easy_setopt(c, CURLOPT_COOKIEFILE, NULL);
}

int er_http_perform(er_http_t *h, const er_http_req_t *req,
                    er_http_resp_t *resp, er_err_t *err) {
  CURL *c = h->curl;
  const char *method = req->method ? req->method : "GET";
  struct curl_slist *hl = NULL;
  curl_mime *mime = NULL;
  char errbuf[CURL_ERROR_SIZE];
  xfer_t x;
  int64_t left = req->deadline_ms - er_now_ms();
  curl_off_t total_us = 0;
  CURLcode rc;
  int ret = -1;

  er_http_resp_free(resp);
  er_buf_init(&resp->body, ER_HTTP_BODY_CAP);
  memset(&x, 0, sizeof x);
  x.resp = resp;
  errbuf[0] = '\0';
  if (!method_ok(method))
    return er_errf(err, ER_E_INPUT, "http: \"%s\" is not a method", method);
  if (check_url(req->url, err) != 0)
    return -1;
  if (left <= 0)
    return er_errf(err, ER_E_ENV,
                   "http: the deadline passed before the request was sent");

  curl_easy_reset(c); /* keeps live connections and the DNS cache */
  if (header_list(req, &hl) != 0)
    goto oom;

  curl_easy_setopt(c, CURLOPT_URL, req->url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  if (set_session(h, req) != 0)
    goto oom;
  set_transfer(c, left, errbuf, &x, hl);
  if (set_body(c, req, method, &mime) != 0)
    goto oom;

  rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &total_us);
  resp->elapsed_ms = (int64_t)(total_us / 1000);
  if (x.oom)
    goto oom;
  if (rc != CURLE_OK) {
    perform_failed(c, rc, errbuf, left, err);
    goto out;
  }
  if (get_meta(c, resp) != 0)
    goto oom;
  ret = 0;
  goto out;
oom:
  er_errf(err, ER_E_ENV, "http: out of memory");
out:
  unhook_call(c, req);
  curl_mime_free(mime);
  curl_slist_free_all(hl);
  return ret;
}
