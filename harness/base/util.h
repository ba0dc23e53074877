/* util.h: errors, capped buffers, time, durations and small string helpers.
 *
 * Conventions used across eventrig:
 * - A function that can fail returns 0 on success and -1 on failure, and
 *   fills a caller-supplied er_err_t. The first error written wins
 *   (er_errf does not overwrite a message already set).
 * - Nothing below main() calls exit().
 * - Anything captured from outside goes into an er_buf_t with a hard cap;
 *   bytes past the cap are dropped and the buffer is marked truncated.
 */
#ifndef ER_UTIL_H
#define ER_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define ER_ERRSTR 1024

typedef struct er_err {
  int code;            /* 0 = none; otherwise an ER_E* value */
  char msg[ER_ERRSTR]; /* human-readable, NUL-terminated */
} er_err_t;

/* Error codes: they map to the process exit codes of the design. */
enum {
  ER_E_NONE = 0,
  ER_E_FAIL = 1,  /* an expectation did not hold */
  ER_E_INPUT = 2, /* unusable input (scenario, environment, flags) */
  ER_E_ENV = 3,   /* unusable environment (server down, service failed) */
  ER_E_INTR = 4,  /* interrupted by a signal */
};

/* Sets err (if no message is set yet) and returns -1. */
int er_errf(er_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void er_err_clear(er_err_t *err);

/* Growable byte buffer with a hard cap. Always NUL-terminated when len > 0
 * or after er_buf_cstr(). Owned by whoever declared it; free with
 * er_buf_free(). */
typedef struct er_buf {
  char *data;
  size_t len;
  size_t alloc;
  size_t cap;     /* hard cap in bytes; 0 means ER_BUF_DEFAULT_CAP */
  bool truncated; /* set when an append hit the cap */
} er_buf_t;

#define ER_BUF_DEFAULT_CAP (1024u * 1024u)
#define ER_BUF_INIT(capbytes)                                                  \
  { NULL, 0, 0, (capbytes), false }

void er_buf_init(er_buf_t *b, size_t cap);
/* Appends up to the cap; returns 0, or -1 if memory ran out. Hitting the
 * cap is not an error: the buffer is marked truncated. */
int er_buf_append(er_buf_t *b, const void *p, size_t n);
int er_buf_puts(er_buf_t *b, const char *s);
int er_buf_printf(er_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int er_buf_vprintf(er_buf_t *b, const char *fmt, va_list ap);
const char *er_buf_cstr(er_buf_t *b); /* "" when empty; never NULL */
void er_buf_reset(er_buf_t *b);       /* len = 0, keeps memory */
void er_buf_free(er_buf_t *b);
/* Detaches the data (caller frees with free()); buffer becomes empty. */
char *er_buf_steal(er_buf_t *b);

/* Monotonic clock in milliseconds and microseconds. */
int64_t er_now_ms(void);
int64_t er_now_us(void);
/* Wall clock as RFC 3339 UTC with milliseconds: 2026-11-23T10:00:00.123Z */
void er_rfc3339_now(char out[40]);

/* Parses "250ms", "5s", "2m", "1h", "1.5s" (also "0s"). Returns 0 and
 * stores milliseconds, or -1 on a malformed value. */
int er_parse_duration(const char *s, int64_t *ms);
/* Formats milliseconds as "1.234s" / "250ms". */
void er_fmt_duration(int64_t ms, char out[32]);

/* Sleeps up to ms milliseconds; returns early (returning -1) if the
 * interrupt flag gets set. */
int er_sleep_ms(int64_t ms);

/* A condition variable whose timed waits use the monotonic clock (so a
 * wall-clock step does not stretch them): 0, or -1. Destroy it with
 * pthread_cond_destroy. */
int er_cond_init_mono(pthread_cond_t *cv);
/* *ts = the monotonic clock ms milliseconds from now, for
 * pthread_cond_timedwait on a condition made by er_cond_init_mono. */
void er_deadline_ts(struct timespec *ts, int64_t ms);

/* Process-wide interrupt flag, set by main's signal handler.
 * er_interrupted() is what waits check: 0, or the signal number. While the
 * runner holds interrupts (teardown, stopping services: the work that must
 * still happen after Ctrl-C) it returns 0; er_interrupt_signal() always
 * tells whether a signal came. */
void er_set_interrupted(int signo);
int er_interrupted(void);
int er_interrupt_signal(void);
void er_interrupt_hold(bool hold);

/* Random v4 UUID (lowercase, 36 chars + NUL). */
void er_uuid4(char out[37]);

/* Levenshtein distance, capped: returns a value > max as soon as it is
 * known to exceed max. */
size_t er_edit_distance(const char *a, const char *b, size_t max);
/* The candidate closest to word (distance <= 2, or <= len/3 for longer
 * words), or NULL. */
const char *er_did_you_mean(const char *word, const char *const *candidates,
                            size_t n);

/* The next UTF-8 character at s (n > 0 bytes left): returns its length
 * and stores its code point in *cp; for an invalid or truncated sequence
 * (overlong forms, surrogates, above U+10FFFF) stores -1 and returns the
 * length of the maximal invalid subpart (at least 1). */
size_t er_utf8_next(const unsigned char *s, size_t n, long *cp);

/* Writes s[0..n) to f as valid UTF-8 a terminal cannot be driven by:
 * C0 controls (but tab), DEL and bytes of invalid or truncated sequences
 * as \xNN, C1 controls (U+0080..U+009F, e.g. U+009B, CSI) as \u00NN;
 * every valid character else as it is. */
void er_utf8_safe_write(FILE *f, const char *s, size_t n);

/* The longest prefix of s[0..n) of at most max bytes that does not cut a
 * valid multi-byte character in two (invalid bytes count as one). */
size_t er_utf8_cut(const char *s, size_t n, size_t max);

/* Reads a whole file into a NUL-terminated heap string (cap bytes max).
 * Caller frees. */
char *er_read_file(const char *path, size_t cap, size_t *len_out,
                   er_err_t *err);
/* Writes data to path atomically: temp file in the same directory, fsync,
 * rename. */
int er_write_file_atomic(const char *path, const char *data, size_t len,
                         er_err_t *err);
/* mkdir -p */
int er_mkdirs(const char *path, er_err_t *err);
/* Cuts the absolute folder path d (in place) to its parent ("/a/b" ->
 * "/a", "/a" -> "/"). Returns false when d is "/" (or not absolute):
 * there is nothing above it. For searches from a folder upwards. */
bool er_path_up(char *d);

/* Finds a free TCP port on 127.0.0.1: a random one between 10000 and the
 * system's ephemeral range (so that no listener on port 0 and no outgoing
 * connection takes it before whoever it is for binds it), checked by
 * binding it; else one the system gives (bind to port 0). Returns the
 * port, or -1 with err (ER_E_ENV). */
int er_free_port(er_err_t *err);

/* strdup that never returns NULL on success paths (returns NULL only if
 * s is NULL or memory ran out). */
char *er_strdup(const char *s);
bool er_str_has_prefix(const char *s, const char *prefix);
bool er_str_has_suffix(const char *s, const char *suffix);
/* Value of a hex digit (either case), or -1. */
int er_hexval(int c);
/* Appends s[0..n) to b percent-encoded for a URL query or path segment:
 * every byte but RFC 3986's unreserved A-Z a-z 0-9 - . _ ~ as %XX
 * (uppercase hex; a space is %20). Returns 0, or -1 if memory ran out. */
int er_url_encode(er_buf_t *b, const char *s, size_t n);

/* ---- secrets -------------------------------------------------------------
 * Process-wide list of secret values (a global on purpose: every output of
 * every module, console, logs, diagnostics and JUnit, must be scrubbed of
 * them, whoever learnt the secret). Thread-safe. Values shorter than
 * ER_SECRET_MIN bytes are not recorded (they would scrub ordinary text);
 * structural redaction (URL passwords, Authorization headers) still hides
 * them where they appear. */
#define ER_SECRET_MIN 3
/* Records a copy of s as secret (no-op for NULL, short or known ones).
 * Returns 0, or -1 if memory ran out. */
int er_secret_add(const char *s);
/* Replaces every occurrence of a recorded secret in s (NUL-terminated) by
 * "***" in place (the text only shrinks); longer secrets first, so one that
 * contains another is hidden whole. Returns how many were replaced. Finding
 * secrets in URLs and DSNs: redact.h. */
size_t er_secret_redact(char *s);
/* Forgets every secret (tests, end of run). */
void er_secrets_clear(void);

#endif
