/* util.c: logging, time, random ids and the capped string buffer. */
#include "sut.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const bug_names[] = {
    [BUG_NONE] = "",
    [BUG_SPOP_OUTSIDE_MULTI] = "spop-outside-multi",
    [BUG_NO_IDEMPOTENCY] = "no-idempotency",
    [BUG_ENVELOPE_HASH] = "envelope-hash",
    [BUG_FAIL_CLOSED] = "fail-closed",
    [BUG_NO_WATCH] = "no-watch",
    [BUG_NO_RETRY] = "no-retry",
    [BUG_READY_UNGUARDED] = "ready-unguarded",
    [BUG_KEEP_KEY_ON_ERROR] = "keep-key-on-error",
    [BUG_NO_TTL] = "no-ttl",
    [BUG_COMMIT_BEFORE_PROCESS] = "commit-before-process",
    [BUG_NO_COMMIT] = "no-commit",
    [BUG_POISON_STALL] = "poison-stall",
    [BUG_KEY_COLLISION] = "key-collision",
    [BUG_PG_FAIL_DROP] = "pg-fail-drop",
    [BUG_READY_EARLY] = "ready-early",
    [BUG_EXCESS_SILENT] = "excess-silent",
};

int sut_bug_parse(const char *name) {
  if (name == NULL || name[0] == '\0')
    return BUG_NONE;
  for (size_t i = 1; i < sizeof bug_names / sizeof bug_names[0]; i++)
    if (strcmp(name, bug_names[i]) == 0)
      return (int)i;
  return -1;
}

const char *sut_bug_name(sut_bug_t bug) {
  if ((size_t)bug >= sizeof bug_names / sizeof bug_names[0])
    return "?";
  return bug == BUG_NONE ? "none" : bug_names[bug];
}

static const char *log_instance = "sut";

void sut_log_init(const char *instance) { log_instance = instance; }

void sut_log(const char *fmt, ...) {
  char ts[32];
  char msg[1024];
  va_list ap;
  sut_rfc3339_now(ts);
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* one line per entry: libpq's messages, for one, span several */
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
  /* one fprintf per line so lines of different threads do not interleave */
  fprintf(stderr, "%s %s %s\n", ts, log_instance, msg);
}

int64_t sut_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sut_rfc3339_now(char out[32]) {
  struct timespec ts;
  struct tm tm;
  char base[24];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 32, "%.20s.%03dZ", base, (int)(ts.tv_nsec / 1000000) % 1000);
}

void sut_sleep_ms(int64_t ms) {
  int64_t deadline = sut_now_ms() + ms;
  while (!sut_stop) {
    int64_t left = deadline - sut_now_ms();
    if (left <= 0)
      break;
    if (left > 50)
      left = 50;
    struct timespec ts = {0, (long)left * 1000000L};
    nanosleep(&ts, NULL);
  }
}

void sut_uuid4(char out[37]) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    /* libcrypto's generator does not fail once seeded; fall back anyway */
    for (size_t i = 0; i < sizeof b; i++)
      b[i] = (unsigned char)(rand() & 0xff);
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
           "%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
           b[11], b[12], b[13], b[14], b[15]);
}

unsigned sut_rand_below(unsigned n) {
  unsigned v = 0;
  if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
    v = (unsigned)rand();
  return n ? v % n : 0;
}

int sbuf_append(sbuf_t *b, const void *p, size_t n) {
  if (b->failed)
    return -1;
  if (b->len + n + 1 > b->cap) {
    b->failed = true;
    return -1;
  }
  if (b->len + n + 1 > b->alloc) {
    size_t na = b->alloc ? b->alloc : 256;
    while (na < b->len + n + 1)
      na *= 2;
    if (na > b->cap)
      na = b->cap;
    char *nd = realloc(b->data, na);
    if (nd == NULL) {
      b->failed = true;
      return -1;
    }
    b->data = nd;
    b->alloc = na;
  }
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int sbuf_puts(sbuf_t *b, const char *s) { return sbuf_append(b, s, strlen(s)); }

int sbuf_printf(sbuf_t *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -1;
  if ((size_t)n < sizeof small)
    return sbuf_append(b, small, (size_t)n);
  char *big = malloc((size_t)n + 1);
  if (big == NULL) {
    b->failed = true;
    return -1;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  int rc = sbuf_append(b, big, (size_t)n);
  free(big);
  return rc;
}

const char *sbuf_cstr(const sbuf_t *b) { return b->len ? b->data : ""; }

void sbuf_free(sbuf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->alloc = 0;
  b->failed = false;
}
