/* capture.h: captures, one shape for every step.
 *
 * A step's "capture" maps names to specs; each takes one value the step
 * saw and keeps it for later steps (${name}). A spec is
 *   "/pointer" | "$.json.path" | ""        a value in the step's JSON (the
 *                                          body, reply, rows, message
 *                                          value); "" is all of it (its
 *                                          text when it is not JSON)
 *   {"path": "/p" | "$..x"}                the same, with modifiers below
 *   {"text": true}                         the whole value as text (e.g. a
 *                                          body that is not JSON)
 *   {"header": "Name"}                     a header (http, kafka)
 *   {"key": true}                          the message key (kafka)
 *   {"status": true}                       the status (http)
 *   {"all": <spec>}                        kafka: from every matching
 *                                          message, an array
 * and, on any source but "all", a regular expression on its text:
 *   {"regex": "id=([0-9]+)", "group": 1, "flags": "i"}
 * which captures the text of the group (default: group 1 when the regex
 * has one, else the whole match); alone, the regex reads the whole value
 * as text. A JSONPath that selects one value captures it; several, an
 * array of them. POSIX extended regexes.
 */
#ifndef ER_CAPTURE_H
#define ER_CAPTURE_H

#include <jansson.h>
#include <stddef.h>

#include "base/util.h"

/* The sources a step offers besides its JSON value and text. */
enum {
  ER_CAP_HEADER = 1 << 0,
  ER_CAP_KEY = 1 << 1,
  ER_CAP_STATUS = 1 << 2,
  ER_CAP_ALL = 1 << 3,
};

typedef struct er_cap_src {
  unsigned has;     /* ER_CAP_* the step offers */
  const char *what; /* "body", "reply", "rows", "value": for messages */
  void *ud;         /* for the callbacks */
  /* The JSON value (borrowed), parsed on first use; NULL when it is not
   * JSON, with the reason in *why_not. */
  const json_t *(*doc)(void *ud, const char **why_not);
  /* A second view a path is tried in when it selects nothing in doc
   * (rows as objects by column name; a Redis string reply parsed as
   * JSON). May be NULL. */
  const json_t *(*alt)(void *ud);
  /* The raw text of the value; NULL: doc written as JSON. */
  const char *text;
  size_t text_len;
  /* A header's value (new string) or NULL when there is none. */
  char *(*header)(void *ud, const char *name);
  /* "key", "status": a new reference, or NULL when there is none. */
  json_t *(*named)(void *ud, const char *name);
} er_cap_src_t;

/* Checks the shape of one spec for a step offering has (at load time;
 * templated strings pass). NULL when fine, else a message in msg. */
const char *er_capture_check(const json_t *spec, unsigned has, char *msg,
                             size_t msgsz);

/* Takes one capture: a new reference, or NULL with the reason in why
 * ("/id is not in the body", "regex ... does not match ..."). */
json_t *er_capture_take(const json_t *spec, const er_cap_src_t *src,
                        er_buf_t *why);

#endif
