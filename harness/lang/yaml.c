/* yaml.c: YAML documents as JSON values, with positions (see doc.h).
 *
 * libyaml's parser gives events with marks; the tree is built here so
 * that every value and key keeps its line:col (jpos.h), the same map a
 * JSON file gets, and validation reports YAML files at file:line:col too.
 *
 * The schema is YAML 1.2's core schema, with what YAML 1.1 reads
 * differently refused rather than guessed (a file means the same to
 * every reader, or it is an error that says why):
 *  - keys are text: `on:` is the key "on";
 *  - plain null (~, null, empty), true/false, decimal integers, 0o17 and
 *    0x1F, decimal floats; anything else plain is a string;
 *  - plain yes/no/on/off (any case) are refused: YAML 1.1 reads them as
 *    booleans, YAML 1.2 as strings; write true/false or quote them;
 *  - plain integers with a leading 0 (0123) are refused: octal in YAML
 *    1.1, decimal in 1.2; write 123 or "0123";
 *  - .inf and .nan are refused (JSON has neither);
 *  - quoted, literal (|) and folded (>) scalars are strings;
 *  - tags !!str, !!int, !!float, !!bool, !!null, !!map, !!seq; others are
 *    refused;
 *  - anchors and aliases: an alias is the anchored value (shared, not
 *    copied); an alias inside its own anchor is refused; merge keys (<<)
 *    are refused;
 *  - a duplicate key is an error (YAML says keys are unique), one
 *    document per file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/jsonbig.h"
#include "lang/doc.h"

#define YAML_DEPTH_MAX 512

typedef struct anchor {
  char *name;
  json_t *v;
} anchor_t;

typedef struct yb {
  yaml_parser_t p;
  const char *file;
  er_jpos_t *pos;
  er_diags_t *d;
  er_buf_t ptr;
  anchor_t *anchors;
  size_t nanchors, aanchors;
  bool failed;
} yb_t;

static void err_at(yb_t *b, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void soft_at(yb_t *b, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A problem that stops the document. */
static void err_at(yb_t *b, const yaml_mark_t *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  er_diags_vaddf(b->d, b->file, m ? (int)m->line + 1 : 0,
                 m ? (int)m->column + 1 : 0, ER_DIAG_ERROR, fmt, ap);
  va_end(ap);
  b->failed = true;
}

/* A problem with one value: reported, and the document is still built
 * (as if it were text) so that validation reports the file's other
 * problems too; the file does not load. */
static void soft_at(yb_t *b, const yaml_mark_t *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  er_diags_vaddf(b->d, b->file, (int)m->line + 1, (int)m->column + 1,
                 ER_DIAG_ERROR, fmt, ap);
  va_end(ap);
}

/* The next event into ev (caller deletes it); false after a syntax error
 * (reported). */
static bool next(yb_t *b, yaml_event_t *ev) {
  if (yaml_parser_parse(&b->p, ev))
    return true;
  {
    const yaml_mark_t *m = &b->p.problem_mark;
    er_diags_addf(b->d, b->file, (int)m->line + 1, (int)m->column + 1,
                  ER_DIAG_ERROR, "YAML syntax error: %s%s%s",
                  b->p.problem ? b->p.problem : "invalid YAML",
                  b->p.context ? " " : "", b->p.context ? b->p.context : "");
  }
  b->failed = true;
  return false;
}

static void record(yb_t *b, const yaml_mark_t *v, int kline, int kcol) {
  if (b->pos && er_jpos_add(b->pos, er_buf_cstr(&b->ptr), kline, kcol,
                            (int)v->line + 1, (int)v->column + 1) != 0)
    b->failed = true;
}

static int add_anchor(yb_t *b, const char *name, json_t *v) {
  if (b->nanchors == b->aanchors) {
    size_t na = b->aanchors ? b->aanchors * 2 : 8;
    anchor_t *nv = realloc(b->anchors, na * sizeof *nv);
    if (!nv)
      return -1;
    b->anchors = nv;
    b->aanchors = na;
  }
  b->anchors[b->nanchors].name = strdup(name);
  if (!b->anchors[b->nanchors].name)
    return -1;
  b->anchors[b->nanchors++].v = json_incref(v);
  return 0;
}

static json_t *find_anchor(const yb_t *b, const char *name) {
  for (size_t i = b->nanchors; i-- > 0;) /* the latest of that name */
    if (!strcmp(b->anchors[i].name, name))
      return b->anchors[i].v;
  return NULL;
}

/* ---- scalars ------------------------------------------------------------- */

static bool all_digits(const char *s, size_t n, const char *set) {
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!strchr(set, s[i]))
      return false;
  return true;
}

static bool is_word(const char *s, const char *const *words, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(s, words[i]))
      return true;
  return false;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float(const char *s) {
  size_t i = 0, digits = 0;
  if (s[i] == '-' || s[i] == '+')
    i++;
  for (; s[i] >= '0' && s[i] <= '9'; i++)
    digits++;
  if (s[i] == '.') {
    for (i++; s[i] >= '0' && s[i] <= '9'; i++)
      digits++;
  }
  if (!digits)
    return false;
  if (s[i] == 'e' || s[i] == 'E') {
    size_t e = 0;
    i++;
    if (s[i] == '-' || s[i] == '+')
      i++;
    for (; s[i] >= '0' && s[i] <= '9'; i++)
      e++;
    if (!e)
      return false;
  }
  return s[i] == '\0';
}

static json_t *int_of(yb_t *b, const yaml_mark_t *m, const char *s, int base,
                      const char *shown) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, base);
  if (errno == ERANGE && base == 10 && !*end) {
    json_t *big = er_big_from_text(s, strlen(s)); /* exact: base/jsonbig.h */
    if (big)
      return big;
  }
  if (errno || *end) {
    err_at(b, m, "%s is not an integer eventrig can hold", shown);
    return NULL;
  }
  return json_integer(v);
}

/* A plain scalar's value (YAML 1.2 core, the YAML 1.1 traps refused). */
static json_t *plain(yb_t *b, const yaml_mark_t *m, const char *s, size_t n) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
  static const char *const trues[] = {"true", "True", "TRUE"};
  static const char *const falses[] = {"false", "False", "FALSE"};
  static const char *const yaml11[] = {"yes", "Yes", "YES", "no",
                                       "No",  "NO",  "on",  "On",
                                       "ON",  "off", "Off", "OFF"};
  static const char *const nonfinite[] = {".inf",  ".Inf",  ".INF",  "+.inf",
                                          "+.Inf", "+.INF", "-.inf", "-.Inf",
                                          "-.INF", ".nan",  ".NaN",  ".NAN"};
  const char *d = s;
  if (strlen(s) != n) {
    err_at(b, m, "a NUL character in a plain scalar");
    return NULL;
  }
  if (is_word(s, nulls, 5))
    return json_null();
  if (is_word(s, trues, 3))
    return json_true();
  if (is_word(s, falses, 3))
    return json_false();
  if (is_word(s, yaml11, 12)) {
    soft_at(b, m,
            "'%s' is ambiguous: YAML 1.1 reads it as a boolean, YAML 1.2 as "
            "the string \"%s\"; write true or false, or quote it",
            s, s);
    return json_stringn(s, n);
  }
  if (is_word(s, nonfinite, 12)) {
    soft_at(b, m, "'%s': JSON has no infinity or NaN", s);
    return json_stringn(s, n);
  }
  if (!strncmp(s, "0o", 2) && all_digits(s + 2, n - 2, "01234567"))
    return int_of(b, m, s + 2, 8, s);
  if (!strncmp(s, "0x", 2) &&
      all_digits(s + 2, n - 2, "0123456789abcdefABCDEF"))
    return int_of(b, m, s + 2, 16, s);
  if (*d == '-' || *d == '+')
    d++;
  if (all_digits(d, strlen(d), "0123456789")) {
    if (d[0] == '0' && d[1]) {
      soft_at(b, m,
              "'%s' is ambiguous: YAML 1.1 reads a leading 0 as octal, YAML "
              "1.2 as decimal; write the number without the 0, or \"%s\" "
              "for text",
              s, s);
      return json_stringn(s, n);
    }
    return int_of(b, m, s, 10, s);
  }
  if (is_float(s)) {
    if (d[0] == '0' && d[1] >= '0' && d[1] <= '9') {
      soft_at(b, m,
              "'%s' is ambiguous (a leading 0); write it without the 0, or "
              "quote it",
              s);
      return json_stringn(s, n);
    }
    return json_real(strtod(s, NULL));
  }
  return json_stringn(s, n);
}

/* A scalar with an explicit tag. */
static json_t *tagged(yb_t *b, const yaml_mark_t *m, const char *tag,
                      const char *s, size_t n, bool *done) {
  json_t *v;
  *done = true;
  if (!strcmp(tag, YAML_STR_TAG))
    return json_stringn(s, n);
  if (!strcmp(tag, YAML_NULL_TAG))
    return json_null();
  if (!strcmp(tag, YAML_BOOL_TAG)) {
    if (!strcmp(s, "true") || !strcmp(s, "false"))
      return json_boolean(!strcmp(s, "true"));
    soft_at(b, m, "!!bool '%s': write true or false", s);
    return json_stringn(s, n);
  }
  if (!strcmp(tag, YAML_INT_TAG) || !strcmp(tag, YAML_FLOAT_TAG)) {
    v = plain(b, m, s, n);
    if (v && !(json_is_integer(v) ||
               (json_is_real(v) && !strcmp(tag, YAML_FLOAT_TAG)))) {
      soft_at(b, m, "'%s' is not %s", s,
              strcmp(tag, YAML_INT_TAG) ? "a number" : "an integer");
      return v;
    }
    if (v && json_is_integer(v) && !strcmp(tag, YAML_FLOAT_TAG)) {
      json_t *r = json_real((double)json_integer_value(v));
      json_decref(v);
      return r;
    }
    return v;
  }
  *done = false;
  return NULL;
}

static json_t *scalar(yb_t *b, const yaml_event_t *ev) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  const yaml_mark_t *m = &ev->start_mark;
  json_t *v;
  if (tag && !ev->data.scalar.plain_implicit &&
      !ev->data.scalar.quoted_implicit) {
    bool done;
    v = tagged(b, m, tag, s, n, &done);
    if (!done) {
      soft_at(b, m,
              "unknown tag '%s' (eventrig reads !!str, !!int, !!float, !!bool "
              "and !!null)",
              tag);
      v = json_stringn(s, n);
    }
    return v;
  }
  if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
    return plain(b, m, s, n);
  return json_stringn(s, n);
}

/* ---- nodes --------------------------------------------------------------- */

static json_t *node(yb_t *b, yaml_event_t *ev, int kline, int kcol, int depth);

static bool collection_tag_ok(yb_t *b, const yaml_event_t *ev, const char *tag,
                              bool implicit, const char *want) {
  if (!tag || implicit || !strcmp(tag, want))
    return true;
  err_at(b, &ev->start_mark, "unknown tag '%s' here", tag);
  return false;
}

static json_t *sequence(yb_t *b, int depth) {
  json_t *arr = json_array();
  size_t i = 0;
  if (!arr)
    return NULL;
  for (;;) {
    yaml_event_t ev;
    size_t mark = b->ptr.len;
    json_t *v;
    if (!next(b, &ev))
      break;
    if (ev.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&ev);
      return arr;
    }
    er_buf_printf(&b->ptr, "/%zu", i++);
    v = node(b, &ev, 0, 0, depth + 1);
    yaml_event_delete(&ev);
    b->ptr.len = mark;
    if (b->ptr.data)
      b->ptr.data[mark] = '\0';
    if (!v || json_array_append_new(arr, v) != 0)
      break;
  }
  json_decref(arr);
  return NULL;
}

static json_t *mapping(yb_t *b, int depth) {
  json_t *obj = json_object();
  json_t *lines = json_object(); /* key -> its line, for duplicates */
  if (!obj || !lines)
    goto fail;
  for (;;) {
    yaml_event_t kev, vev;
    size_t mark = b->ptr.len;
    const char *key;
    json_t *v;
    int kline, kcol;
    if (!next(b, &kev))
      goto fail;
    if (kev.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&kev);
      json_decref(lines);
      return obj;
    }
    if (kev.type != YAML_SCALAR_EVENT) {
      err_at(b, &kev.start_mark, "a key must be text (a scalar), not a %s",
             kev.type == YAML_ALIAS_EVENT ? "alias" : "collection");
      yaml_event_delete(&kev);
      goto fail;
    }
    key = (const char *)kev.data.scalar.value;
    kline = (int)kev.start_mark.line + 1;
    kcol = (int)kev.start_mark.column + 1;
    if (!strcmp(key, "<<") && kev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
      soft_at(b, &kev.start_mark,
              "merge keys (<<) are not supported: share values with vars, a "
              "step file or a fixture");
    else if (json_object_get(lines, key))
      soft_at(b, &kev.start_mark, "duplicate key '%s' (first at line %d)", key,
              (int)json_integer_value(json_object_get(lines, key)));
    json_object_set_new(lines, key, json_integer(kline));
    er_jpos_append_token(&b->ptr, key);
    if (!next(b, &vev)) {
      yaml_event_delete(&kev);
      goto fail;
    }
    v = node(b, &vev, kline, kcol, depth + 1);
    yaml_event_delete(&vev);
    b->ptr.len = mark;
    if (b->ptr.data)
      b->ptr.data[mark] = '\0';
    if (!v || json_object_set_new(obj, key, v) != 0) {
      yaml_event_delete(&kev);
      goto fail;
    }
    yaml_event_delete(&kev);
  }
fail:
  json_decref(lines);
  json_decref(obj);
  return NULL;
}

/* The node that starts with ev (a scalar, an alias or a collection's
 * start event; the caller deletes ev). */
static json_t *node(yb_t *b, yaml_event_t *ev, int kline, int kcol, int depth) {
  json_t *v = NULL;
  const char *anchor = NULL;
  if (depth > YAML_DEPTH_MAX) {
    err_at(b, &ev->start_mark, "nested more than %d levels deep",
           YAML_DEPTH_MAX);
    return NULL;
  }
  record(b, &ev->start_mark, kline, kcol);
  switch (ev->type) {
  case YAML_SCALAR_EVENT:
    anchor = (const char *)ev->data.scalar.anchor;
    v = scalar(b, ev);
    break;
  case YAML_ALIAS_EVENT:
    v = find_anchor(b, (const char *)ev->data.alias.anchor);
    if (!v) {
      err_at(b, &ev->start_mark,
             "alias '*%s' has no anchor before it (or is inside its own "
             "anchor's value)",
             (const char *)ev->data.alias.anchor);
      return NULL;
    }
    return json_incref(v);
  case YAML_SEQUENCE_START_EVENT:
    anchor = (const char *)ev->data.sequence_start.anchor;
    if (collection_tag_ok(b, ev, (const char *)ev->data.sequence_start.tag,
                          ev->data.sequence_start.implicit, YAML_SEQ_TAG))
      v = sequence(b, depth);
    break;
  case YAML_MAPPING_START_EVENT:
    anchor = (const char *)ev->data.mapping_start.anchor;
    if (collection_tag_ok(b, ev, (const char *)ev->data.mapping_start.tag,
                          ev->data.mapping_start.implicit, YAML_MAP_TAG))
      v = mapping(b, depth);
    break;
  default:
    err_at(b, &ev->start_mark, "unexpected YAML event");
    return NULL;
  }
  /* registered once complete: an alias inside its own anchor is refused */
  if (v && anchor && add_anchor(b, anchor, v) != 0) {
    json_decref(v);
    v = NULL;
  }
  if (!v && !b->failed)
    err_at(b, &ev->start_mark, "out of memory");
  return v;
}

json_t *er_yaml_parse(const char *file, const char *text, size_t len,
                      er_jpos_t **pos, er_diags_t *diags) {
  yb_t b;
  yaml_event_t ev;
  json_t *doc = NULL;
  memset(&b, 0, sizeof b);
  b.file = file;
  b.d = diags;
  if (pos)
    *pos = NULL;
  er_buf_init(&b.ptr, 1u << 20);
  if (!yaml_parser_initialize(&b.p)) {
    er_diags_addf(diags, file, 0, 0, ER_DIAG_ERROR, "out of memory");
    return NULL;
  }
  yaml_parser_set_input_string(&b.p, (const unsigned char *)(text ? text : ""),
                               text ? len : 0);
  b.pos = pos ? er_jpos_new() : NULL;
  /* STREAM-START, DOCUMENT-START */
  if (!next(&b, &ev))
    goto out;
  yaml_event_delete(&ev);
  if (!next(&b, &ev))
    goto out;
  if (ev.type == YAML_STREAM_END_EVENT) {
    er_diags_addf(diags, file, 1, 1, ER_DIAG_ERROR,
                  "the file is empty (no YAML document)");
    yaml_event_delete(&ev);
    goto out;
  }
  yaml_event_delete(&ev);
  if (!next(&b, &ev))
    goto out;
  doc = node(&b, &ev, 0, 0, 0);
  yaml_event_delete(&ev);
  if (!doc)
    goto out;
  /* DOCUMENT-END, then the stream ends: one document per file */
  if (!next(&b, &ev))
    goto out;
  yaml_event_delete(&ev);
  if (!next(&b, &ev))
    goto out;
  if (ev.type == YAML_DOCUMENT_START_EVENT)
    err_at(&b, &ev.start_mark,
           "a second YAML document (---): one document per file");
  yaml_event_delete(&ev);
out:
  if (b.failed || !doc) {
    json_decref(doc);
    doc = NULL;
    er_jpos_free(b.pos);
  } else if (pos) {
    *pos = b.pos;
  } else {
    er_jpos_free(b.pos);
  }
  for (size_t i = 0; i < b.nanchors; i++) {
    free(b.anchors[i].name);
    json_decref(b.anchors[i].v);
  }
  free(b.anchors);
  er_buf_free(&b.ptr);
  yaml_parser_delete(&b.p);
  return doc;
}
