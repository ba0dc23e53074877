/* redact.c: finding secrets in text, and a scrubbing stream (redact.h). */
#include "base/redact.h"

#include <ctype.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/jsonbig.h"
#include "base/util.h"

/* ---- finding passwords ---------------------------------------------------
 */

typedef struct {
  char **out;
  size_t max, n;
  int oom;
} found_t;

static void found_add(found_t *f, const char *p, size_t len) {
  char *s;
  if (len == 0 || f->n >= f->max)
    return;
  for (size_t i = 0; i < f->n; i++)
    if (strlen(f->out[i]) == len && memcmp(f->out[i], p, len) == 0)
      return;
  s = malloc(len + 1);
  if (!s) {
    f->oom = 1;
    return;
  }
  memcpy(s, p, len);
  s[len] = '\0';
  f->out[f->n++] = s;
}

/* Adds p[0..len) and, when it has %XX escapes, its decoded form. */
static void found_add_pct(found_t *f, const char *p, size_t len) {
  char *dec;
  size_t n = 0;
  found_add(f, p, len);
  if (!memchr(p, '%', len))
    return;
  dec = malloc(len + 1);
  if (!dec) {
    f->oom = 1;
    return;
  }
  for (size_t i = 0; i < len; i++) {
    if (p[i] == '%' && i + 2 < len && er_hexval(p[i + 1]) >= 0 &&
        er_hexval(p[i + 2]) >= 0) {
      dec[n++] = (char)(er_hexval(p[i + 1]) * 16 + er_hexval(p[i + 2]));
      i += 2;
    } else {
      dec[n++] = p[i];
    }
  }
  found_add(f, dec, n);
  free(dec);
}

static bool url_end(char c) {
  return c == '\0' || c == '/' || c == '?' || c == '#' ||
         isspace((unsigned char)c) || c == '"' || c == '\'' || c == '<' ||
         c == '>';
}

/* scheme://user:password@host anywhere in s */
static void find_url_passwords(const char *s, found_t *f) {
  const char *p = s;
  while ((p = strstr(p, "://")) != NULL) {
    const char *sch = p, *a = p + 3, *e = a, *at = NULL, *colon;
    while (sch > s && (isalnum((unsigned char)sch[-1]) || sch[-1] == '+' ||
                       sch[-1] == '-' || sch[-1] == '.'))
      sch--;
    p += 3;
    if (sch == p - 3 || !isalpha((unsigned char)*sch))
      continue;
    while (!url_end(*e)) {
      if (*e == '@')
        at = e;
      e++;
    }
    if (!at)
      continue;
    colon = memchr(a, ':', (size_t)(at - a));
    if (colon)
      found_add_pct(f, colon + 1, (size_t)(at - colon - 1));
  }
}

/* password=... in a libpq key=value DSN or a URL query */
static void find_kv_passwords(const char *s, found_t *f) {
  static const char kw[] = "password";
  const char *p = s;
  while ((p = strstr(p, kw)) != NULL) {
    const char *q = p + sizeof kw - 1;
    char before = p > s ? p[-1] : ' ';
    bool query = before == '?' || before == '&';
    p = q;
    if (!query && !isspace((unsigned char)before) && before != ';')
      continue;
    if (!query)
      while (*q == ' ' || *q == '\t')
        q++;
    if (*q != '=')
      continue;
    q++;
    if (query) {
      size_t n = strcspn(q, "&#; \t\r\n\"'");
      found_add_pct(f, q, n);
      continue;
    }
    while (*q == ' ' || *q == '\t')
      q++;
    {
      /* libpq: '...' with \' and \\, or up to white space (\ escapes) */
      bool quoted = *q == '\'';
      const char *start = quoted ? q + 1 : q, *r = start;
      size_t cap = strlen(start) + 1, n = 0;
      char *val = malloc(cap);
      if (!val) {
        f->oom = 1;
        return;
      }
      while (*r) {
        if (quoted ? *r == '\'' : isspace((unsigned char)*r))
          break;
        if (*r == '\\' && r[1]) {
          val[n++] = r[1];
          r += 2;
          continue;
        }
        val[n++] = *r++;
      }
      found_add(f, val, n);
      if ((size_t)(r - start) != n)
        found_add(f, start, (size_t)(r - start)); /* as written */
      free(val);
    }
  }
}

size_t er_redact_find_passwords(const char *s, char **out, size_t max) {
  found_t f = {out, max, 0, 0};
  if (!s || !out || !max)
    return 0;
  find_url_passwords(s, &f);
  find_kv_passwords(s, &f);
  return f.n;
}

#define MAX_FOUND 16

int er_secret_add_passwords(const char *s) {
  char *v[MAX_FOUND];
  size_t n;
  int rc = 0;
  if (!s || (!strstr(s, "://") && !strstr(s, "password")))
    return 0; /* the common case, quickly */
  n = er_redact_find_passwords(s, v, MAX_FOUND);
  for (size_t i = 0; i < n; i++) {
    if (er_secret_add(v[i]) != 0)
      rc = -1;
    free(v[i]);
  }
  return rc;
}

int er_secret_add_passwords_json(const json_t *v) {
  int rc = 0;
  if (json_is_string(v)) {
    rc = er_secret_add_passwords(json_string_value(v));
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      if (er_secret_add_passwords_json(json_array_get(v, i)) != 0)
        rc = -1;
  } else if (json_is_object(v)) {
    const char *k;
    json_t *el;
    json_object_foreach((json_t *)v, k, el) {
      if (er_secret_add_passwords_json(el) != 0)
        rc = -1;
    }
  }
  return rc;
}

bool er_redact_name_is_secret(const char *name) {
  static const char *const parts[] = {
      "password", "passwd",      "secret",  "token",   "jaas",
      "ssl.key",  "oauthbearer", "ssl_key", "private", "credential"};
  if (!name)
    return false;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (strcasestr(name, parts[i]))
      return true;
  return false;
}

/* Values of o's members whose name looks secret. */
static int add_secret_members(const json_t *o) {
  const char *k;
  json_t *v;
  int rc = 0;
  if (!json_is_object(o))
    return 0;
  json_object_foreach((json_t *)o, k, v) {
    if (!er_redact_name_is_secret(k))
      continue;
    if (json_is_string(v)) {
      rc |= er_secret_add(json_string_value(v));
    } else if (json_is_number(v)) {
      char *d = er_json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      rc |= d ? er_secret_add(d) : -1;
      free(d);
    }
  }
  return rc ? -1 : 0;
}

/* ---- secret header names ------------------------------------------------ */

static const char *const g_secret_header_globs[] = {
    "authorization", "proxy-authorization",
    "cookie",        "set-cookie",
    "x-api-key",     "api-key",
    "*-token",       "*-secret",
    "x-auth-*",
};

static pthread_mutex_t g_hdr_mu = PTHREAD_MUTEX_INITIALIZER;
static char **g_hdr_v;
static size_t g_hdr_n;

bool er_redact_header_is_secret(const char *name) {
  bool found = false;
  if (!name)
    return false;
  for (size_t i = 0;
       i < sizeof g_secret_header_globs / sizeof *g_secret_header_globs; i++)
    if (fnmatch(g_secret_header_globs[i], name, FNM_CASEFOLD) == 0)
      return true;
  pthread_mutex_lock(&g_hdr_mu);
  for (size_t i = 0; i < g_hdr_n && !found; i++)
    found = fnmatch(g_hdr_v[i], name, FNM_CASEFOLD) == 0;
  pthread_mutex_unlock(&g_hdr_mu);
  return found;
}

int er_redact_secret_header_add(const char *name) {
  char **v;
  int rc = -1;
  if (!name || !*name)
    return 0;
  pthread_mutex_lock(&g_hdr_mu);
  v = realloc(g_hdr_v, (g_hdr_n + 1) * sizeof *v);
  if (v) {
    g_hdr_v = v;
    g_hdr_v[g_hdr_n] = er_strdup(name);
    if (g_hdr_v[g_hdr_n]) {
      g_hdr_n++;
      rc = 0;
    }
  }
  pthread_mutex_unlock(&g_hdr_mu);
  return rc;
}

void er_redact_secret_headers_clear(void) {
  pthread_mutex_lock(&g_hdr_mu);
  for (size_t i = 0; i < g_hdr_n; i++)
    free(g_hdr_v[i]);
  free(g_hdr_v);
  g_hdr_v = NULL;
  g_hdr_n = 0;
  pthread_mutex_unlock(&g_hdr_mu);
}

int er_secrets_from_env(const json_t *env) {
  const json_t *kafka = json_object_get(env, "kafka");
  const json_t *svcs = json_object_get(env, "services");
  const json_t *hdrs = json_object_get(env, "secret_headers");
  int rc = er_secret_add_passwords_json(env);
  for (size_t i = 0; i < json_array_size(hdrs); i++)
    if (json_is_string(json_array_get(hdrs, i)) &&
        er_redact_secret_header_add(
            json_string_value(json_array_get(hdrs, i))) != 0)
      rc = -1;
  if (add_secret_members(json_object_get(kafka, "config")) != 0)
    rc = -1;
  for (size_t i = 0; i < json_array_size(svcs); i++)
    if (add_secret_members(json_object_get(json_array_get(svcs, i), "env")) !=
        0)
      rc = -1;
  return rc;
}

/* ---- the scrubbing stream ------------------------------------------------
 */

#define PIECE_MAX (64 * 1024)

typedef struct {
  FILE *under;
  char *pend; /* pending bytes, room for a NUL after them */
  size_t len, cap;
} rstream_t;

/* Writes pend[0..n) scrubbed and drops it from pend. */
static void rs_emit(rstream_t *r, size_t n) {
  size_t i = 0;
  char saved;
  if (n == 0)
    return;
  saved = r->pend[n];
  r->pend[n] = '\0';
  while (i < n) { /* NUL-separated pieces */
    size_t pl = strlen(r->pend + i);
    if (pl) {
      er_secret_redact(r->pend + i);
      fputs(r->pend + i, r->under);
    }
    if (i + pl < n)
      fputc('\0', r->under);
    i += pl + 1;
  }
  r->pend[n] = saved;
  memmove(r->pend, r->pend + n, r->len - n);
  r->len -= n;
  fflush(r->under);
}

static ssize_t rs_write(void *cookie, const char *buf, size_t size) {
  rstream_t *r = cookie;
  size_t last = 0;
  bool have = false;
  if (r->len + size + 1 > r->cap) {
    size_t nc = r->cap ? r->cap : 4096;
    char *np;
    while (nc < r->len + size + 1)
      nc *= 2;
    np = realloc(r->pend, nc);
    if (!np) {
      /* no memory for the line: better lose it than leak a secret */
      return -1;
    }
    r->pend = np;
    r->cap = nc;
  }
  memcpy(r->pend + r->len, buf, size);
  r->len += size;
  for (size_t i = r->len; i > 0; i--)
    if (r->pend[i - 1] == '\n' || r->pend[i - 1] == '\r') {
      last = i;
      have = true;
      break;
    }
  if (have)
    rs_emit(r, last);
  if (r->len > PIECE_MAX)
    rs_emit(r, r->len);
  return (ssize_t)size;
}

static int rs_close(void *cookie) {
  rstream_t *r = cookie;
  rs_emit(r, r->len);
  fflush(r->under);
  free(r->pend);
  free(r);
  return 0;
}

FILE *er_redact_stream(FILE *under) {
  cookie_io_functions_t io = {NULL, rs_write, NULL, rs_close};
  rstream_t *r = calloc(1, sizeof *r);
  FILE *f;
  if (!r)
    return NULL;
  r->under = under;
  f = fopencookie(r, "w", io);
  if (!f) {
    free(r);
    return NULL;
  }
  setvbuf(f, NULL, _IOLBF, 4096);
  return f;
}
