/* http.h: the HTTP adapter (libcurl). Knows nothing of scenarios.
 *
 * One er_http_t wraps one curl easy handle, kept per branch so that
 * connections are reused between requests, and its cookie jar (libcurl's
 * cookie engine, in memory for the handle's life). A request is bounded
 * by its deadline (connect and transfer); redirects are followed only
 * when the request says so (max_redirects).
 *
 * libcurl's global state: er_http_new() initialises it once per process
 * with pthread_once (curl_global_init is not thread-safe itself), so no
 * caller has to. That pthread_once_t is the module's only global.
 *
 * Secrets: nothing here logs. Callers that show requests use
 * er_http_header_is_secret() and er_http_redact_url() to hide the values
 * of Authorization, Proxy-Authorization and Cookie headers and the
 * password in a URL.
 *
 * Errors: er_http_perform returns 0 when a response arrived (any status),
 * or -1 with err->code
 *   ER_E_ENV   could not connect, connection reset, deadline passed
 *   ER_E_INPUT malformed URL, unsupported scheme, bad method, a CA,
 *              client certificate or key file curl cannot use
 *   ER_E_INTR  interrupted
 */
#ifndef ER_HTTP_H
#define ER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define ER_HTTP_BODY_CAP (4u * 1024u * 1024u) /* response body kept */
#define ER_HTTP_HEADERS_CAP (64u * 1024u)     /* response headers kept */
#define ER_HTTP_MAX_HEADERS 200

typedef struct er_http er_http_t;

/* One part of a multipart/form-data body (RFC 7578). All borrowed. */
typedef struct er_http_part {
  const char *name;
  const char *data; /* len bytes */
  size_t len;
  const char *filename; /* NULL: a field; else a file part of that name */
  const char *type;     /* the part's Content-Type, or NULL */
} er_http_part_t;

typedef struct er_http_req {
  const char *method;         /* "GET" when NULL; any token (HEAD: no body) */
  const char *url;            /* http:// or https:// */
  const char *const *headers; /* "Name: value" lines, nheaders of them */
  size_t nheaders;
  const char *body; /* NULL: no body; else body_len bytes (borrowed) */
  size_t body_len;
  const er_http_part_t *parts; /* nparts > 0: a multipart/form-data body
                                  (body is ignored); borrowed */
  size_t nparts;
  int64_t deadline_ms; /* er_now_ms() clock */
  long max_redirects;  /* 0: not followed; N: up to N followed (more is
                          an ER_E_ENV error) */
  bool cookies;        /* use the handle's cookie jar: send its cookies,
                          keep the Set-Cookie of the responses */
  bool insecure;       /* TLS: verify neither the peer nor its name */
  const char *ca;      /* TLS: a PEM CA bundle file, or NULL (system's) */
  const char *cert;    /* TLS: a PEM client certificate file, or NULL */
  const char *key;     /* TLS: its PEM private key file, or NULL */
} er_http_req_t;

typedef struct er_http_header {
  char *name; /* as the server spelled it */
  char *value;
} er_http_header_t;

/* A response. Zero-initialise; er_http_perform fills it (resetting what
 * it held); free with er_http_resp_free. */
typedef struct er_http_resp {
  long status;           /* 200, 404, ...; 0 when no response */
  er_http_header_t *hdr; /* owned; of the final response only */
  size_t nhdr;
  bool headers_truncated; /* past ER_HTTP_HEADERS_CAP/MAX_HEADERS */
  er_buf_t body;          /* owned, capped at ER_HTTP_BODY_CAP; body.truncated
                             says it was cut */
  int64_t elapsed_ms;     /* request start to last byte */
  char *url;              /* owned: the final URL (after redirects) */
  long redirects;         /* redirects followed */
  char http_version[8];   /* "1.0", "1.1", "2", "3" ("" unknown) */
} er_http_resp_t;

/* Process-wide libcurl initialisation (pthread_once); safe to call from
 * any thread, any number of times. Returns 0 or -1 with err. */
int er_http_global_init(er_err_t *err);

/* New handle (calls er_http_global_init). Caller frees with
 * er_http_free. NULL with err when curl cannot be set up. */
er_http_t *er_http_new(er_err_t *err);
void er_http_free(er_http_t *h); /* NULL is fine */

/* Performs one request. Returns 0 with resp filled when a response
 * arrived, whatever its status; -1 with err otherwise (see above). */
int er_http_perform(er_http_t *h, const er_http_req_t *req,
                    er_http_resp_t *resp, er_err_t *err);
void er_http_resp_free(er_http_resp_t *resp);

/* The value of header name (case-insensitive); several headers of the
 * same name are joined with ", ". NULL when absent. Caller frees. */
char *er_http_header_get(const er_http_resp_t *resp, const char *name);

/* The values of header name (case-insensitive), each its own (Set-Cookie
 * dates hold commas): returns how many there are and puts the first max
 * of them in vals (borrowed from resp). */
size_t er_http_header_values(const er_http_resp_t *resp, const char *name,
                             const char **vals, size_t max);

/* Whether the value of header name is secret: er_redact_header_is_secret
 * (Authorization, Cookie, X-Api-Key, *-Token, ..., the environment's
 * "secret_headers"). */
bool er_http_header_is_secret(const char *name);

/* url with a password in its userinfo replaced by "***" (cut to outsz). */
void er_http_redact_url(const char *url, char *out, size_t outsz);

#endif
