/* jsonbig.h: integers beyond 64 bits in JSON, and exact number
 * comparison.
 *
 * jansson refuses an integer literal that does not fit in a json_int_t
 * (int64): the whole text would be "not JSON". er_json_loadb pre-scans
 * the text and, for each such literal (an integer: no fraction, no
 * exponent), writes it as a *tagged string* before parsing: a JSON string
 * holding ER_BIG_TAG (the byte 0x01) followed by the literal's decimal
 * text ("-" and digits, as written). Everything else is parsed as
 * jansson does. er_json_dumps writes a tagged string back as the bare
 * literal, so a value read with er_json_loadb round-trips exactly.
 *
 * A tagged string is recognised only when the digits after the tag do
 * not fit in int64 (a string "\u0001" "42" stays a string). Code that
 * takes a scalar as text (headers, Redis arguments, SQL parameters,
 * templates) asks er_big_digits first.
 *
 * Numbers (er_num_t) compare exactly: 64-bit integers, doubles and big
 * integers against each other by value (a big integer as decimal text,
 * an integral double by its exact decimal expansion), never through a
 * lossy conversion.
 */
#ifndef ER_JSONBIG_H
#define ER_JSONBIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define ER_BIG_TAG '\x01'

/* The decimal text of a big integer (a tagged string: "-?[0-9]+" beyond
 * int64), or NULL for any other value. Borrowed from v. */
const char *er_big_digits(const json_t *v);

/* A JSON value for the integer literal s[0..n) ("-?[0-9]+"): an integer
 * when it fits in int64, else a tagged string. NULL when s is not such a
 * literal or memory ran out. New reference. */
json_t *er_big_from_text(const char *s, size_t n);

/* s[0..n) is "-?[0-9]+" (leading zeros allowed). */
bool er_int_text(const char *s, size_t n);
/* s[0..n) is an integer literal that fits in int64 (*out set). */
bool er_int_text_fits(const char *s, size_t n, long long *out);

/* json_loadb with integers beyond 64 bits kept exactly as tagged strings
 * (see above). Error positions are those of the original text. */
json_t *er_json_loadb(const char *buf, size_t len, size_t flags,
                      json_error_t *err);

/* json_dumps with tagged strings written as bare integer literals.
 * Caller frees. */
char *er_json_dumps(const json_t *v, size_t flags);

/* A number for exact comparison. */
typedef enum { ER_NUM_INT, ER_NUM_REAL, ER_NUM_BIG } er_num_kind_t;
typedef struct er_num {
  er_num_kind_t kind;
  long long i;     /* ER_NUM_INT */
  double d;        /* ER_NUM_REAL (finite) */
  const char *dec; /* ER_NUM_BIG: "-?[0-9]+", borrowed */
  size_t declen;
} er_num_t;

/* v as a number: an integer, a real, a big integer, or (when strings is
 * true) a string that is wholly a number ("5", "-2.5", "123...": no
 * spaces, no '+'). False when it is none of them. */
bool er_num_of(const json_t *v, bool strings, er_num_t *out);
/* -1, 0 or 1: a < b, a == b, a > b, exactly. */
int er_num_cmp(const er_num_t *a, const er_num_t *b);
/* The number as text (integers exactly, reals with %.17g), into out. */
void er_num_text(const er_num_t *n, char *out, size_t outsz);

#endif
