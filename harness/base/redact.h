/* redact.h: finding secrets in text and keeping them out of eventrig's
 * output. The list of secret values itself is in util.h (er_secret_add,
 * er_secret_redact); this module finds values to put into it:
 *   - the password of every URL written scheme://user:password@host
 *     (anywhere in a string), as written and percent-decoded;
 *   - the value of password=... in a libpq key=value DSN
 *     ("host=h password='a b'") and in a URL query (?password=...);
 *   - values of "secrets" vars and secret-looking Kafka properties
 *     (er_secrets_from_env).
 * and makes a stream that scrubs every line written to it.
 */
#ifndef ER_REDACT_H
#define ER_REDACT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* Passwords found in s (see above), at most max of them, each a new
 * string in out[] (caller frees each). Returns how many. Empty passwords
 * are not returned. */
size_t er_redact_find_passwords(const char *s, char **out, size_t max);

/* er_secret_add for every password er_redact_find_passwords finds in s.
 * Returns 0, or -1 if memory ran out. */
int er_secret_add_passwords(const char *s);

/* The same for every string in v (objects' values and arrays' elements,
 * at any depth; keys are not searched). */
int er_secret_add_passwords_json(const json_t *v);

/* True for a property name that looks secret (case-insensitive: password,
 * passwd, secret, token, jaas, credential, ssl.key.pem, ssl_key,
 * private_key, oauthbearer.config). */
bool er_redact_name_is_secret(const char *name);

/* True for an HTTP header whose value is secret (case-insensitive):
 * Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key and
 * Api-Key, *-Token, *-Secret, X-Auth-*, and every name (or glob) added
 * with er_redact_secret_header_add (the environment's "secret_headers"). */
bool er_redact_header_is_secret(const char *name);
/* Adds a header name or glob ("X-Tenant-Key", "X-Internal-*") to the
 * process-wide list. Returns 0, or -1 if memory ran out. */
int er_redact_secret_header_add(const char *name);
void er_redact_secret_headers_clear(void);

/* Records the secrets of a resolved environment (env.h): passwords in
 * every string, kafka.config values whose name looks secret. (Values of
 * the vars named in "secrets" are recorded by er_env_resolve.) The
 * names in "secret_headers" go to er_redact_secret_header_add. */
int er_secrets_from_env(const json_t *env);

/* A stream that writes to under, each line (up to '\n' or '\r') with every
 * recorded secret replaced by "***" at the time the line is complete.
 * Line-buffered; a line longer than 64 KB is written in pieces. fclose()
 * writes what is pending and flushes under (it does not close under).
 * NULL if memory ran out. */
FILE *er_redact_stream(FILE *under);

#endif
