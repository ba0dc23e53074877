/* doc.c: the files a user writes, read by kind (see doc.h). */
#include "lang/doc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/jsonbig.h"

static bool has_ext(const char *path, const char *ext) {
  size_t n = strlen(path), e = strlen(ext);
  return n > e && strcasecmp(path + n - e, ext) == 0;
}

er_doc_kind_t er_doc_kind(const char *path) {
  if (!path)
    return ER_DOC_JSON;
  if (has_ext(path, ".yaml") || has_ext(path, ".yml"))
    return ER_DOC_YAML;
  if (has_ext(path, ".jsonl") || has_ext(path, ".ndjson"))
    return ER_DOC_JSONL;
  return ER_DOC_JSON;
}

const char *er_doc_kind_name(er_doc_kind_t k) {
  return k == ER_DOC_YAML ? "YAML" : k == ER_DOC_JSONL ? "JSON Lines" : "JSON";
}

bool er_doc_is_scenario_name(const char *name) {
  return er_str_has_suffix(name, ".json") || er_str_has_suffix(name, ".yaml") ||
         er_str_has_suffix(name, ".yml");
}

/* JSON Lines: an array of each non-blank line's value; a line that is not
 * JSON is a problem at its line (and jansson's column). */
static json_t *parse_jsonl(const char *file, const char *text, size_t len,
                           er_jpos_t **pos, er_diags_t *diags) {
  json_t *arr = json_array();
  er_jpos_t *p = pos ? er_jpos_new() : NULL;
  size_t i = 0, errors = diags->errors;
  int line = 1;
  if (!arr || (pos && !p))
    goto oom;
  if (p && er_jpos_add(p, "", 0, 0, 1, 1) != 0)
    goto oom;
  while (i < len) {
    size_t e = i, b = i;
    json_error_t je;
    json_t *v;
    while (e < len && text[e] != '\n')
      e++;
    while (b < e && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r'))
      b++;
    if (b < e) {
      memset(&je, 0, sizeof je);
      v = er_json_loadb(text + b, e - b, JSON_DECODE_ANY, &je);
      if (!v) {
        er_diags_addf(diags, file, line,
                      (int)(b - i) + (je.column > 0 ? je.column : 1),
                      ER_DIAG_ERROR, "JSON syntax error: %s",
                      je.text[0] ? je.text : "invalid JSON");
      } else {
        if (p) {
          char ptr[32];
          snprintf(ptr, sizeof ptr, "/%zu", json_array_size(arr));
          if (er_jpos_add(p, ptr, 0, 0, line, (int)(b - i) + 1) != 0) {
            json_decref(v);
            goto oom;
          }
        }
        if (json_array_append_new(arr, v) != 0)
          goto oom;
      }
    }
    i = e + 1;
    line++;
  }
  if (diags->errors != errors)
    goto fail;
  if (pos)
    *pos = p;
  return arr;
oom:
  er_diags_addf(diags, file, 0, 0, ER_DIAG_ERROR, "out of memory");
fail:
  er_jpos_free(p);
  json_decref(arr);
  return NULL;
}

json_t *er_doc_parse(const char *file, const char *text, size_t len,
                     int max_depth, er_jpos_t **pos, er_diags_t *diags) {
  json_t *doc;
  if (pos)
    *pos = NULL;
  switch (er_doc_kind(file)) {
  case ER_DOC_YAML:
    return er_yaml_parse(file, text, len, pos, diags);
  case ER_DOC_JSONL:
    return parse_jsonl(file, text, len, pos, diags);
  case ER_DOC_JSON:
    break;
  }
  doc = er_parse_json_text(file, text, len, diags);
  if (doc && pos)
    *pos = er_jpos_build_depth(text, len, max_depth);
  return doc;
}

char *er_doc_read(const char *path, size_t cap, size_t *len,
                  er_diags_t *diags) {
  er_err_t err = {0};
  char *text = er_read_file(path, cap, len, &err);
  if (!text) {
    const char *m = err.msg;
    size_t pl = strlen(path);
    if (strncmp(m, path, pl) == 0 && m[pl] == ':' && m[pl + 1] == ' ')
      m += pl + 2; /* the problem names the file already */
    er_diags_addf(diags, path, 0, 0, ER_DIAG_ERROR, "%s", m);
  }
  return text;
}

json_t *er_doc_load(const char *path, size_t cap, er_jpos_t **pos,
                    er_diags_t *diags) {
  size_t len = 0;
  char *text = er_doc_read(path, cap, &len, diags);
  json_t *doc;
  if (pos)
    *pos = NULL;
  if (!text)
    return NULL;
  doc = er_doc_parse(path, text, len, 1 << 20, pos, diags);
  free(text);
  return doc;
}

json_t *er_doc_load_err(const char *path, size_t cap, er_jpos_t **pos,
                        er_err_t *err) {
  er_diags_t d = {0};
  json_t *doc = er_doc_load(path, cap, pos, &d);
  if (!doc) {
    const er_diag_item_t *it = d.n ? &d.items[0] : NULL;
    if (it && it->line > 0)
      er_errf(err, ER_E_INPUT, "%s:%d:%d: %s", it->file, it->line, it->col,
              it->msg);
    else if (it)
      er_errf(err, ER_E_INPUT, "%s: %s", it->file, it->msg);
    else
      er_errf(err, ER_E_INPUT, "%s: cannot be read", path);
  }
  er_diags_free(&d);
  return doc;
}

er_jpos_t *er_doc_positions(const char *path, size_t cap) {
  er_diags_t d = {0};
  er_jpos_t *pos = NULL;
  json_t *doc = er_doc_load(path, cap, &pos, &d);
  json_decref(doc);
  er_diags_free(&d);
  return pos;
}

/* ---- the outline of a JSON text (er_doc_json_elems) ----------------------
 * Lax on purpose: the pieces it finds are parsed by jansson, and the
 * caller parses the rest, so an error anywhere is still found there. */

static size_t skip_ws(const char *t, size_t len, size_t i) {
  while (i < len &&
         (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
    i++;
  return i;
}

/* Past the string that opens at i, or 0. */
static size_t skip_str(const char *t, size_t len, size_t i) {
  for (i++; i < len; i++) {
    if (t[i] == '\\')
      i++;
    else if (t[i] == '"')
      return i + 1;
  }
  return 0;
}

/* Past the value that starts at i, or 0 (nothing there, or not closed). */
static size_t skip_val(const char *t, size_t len, size_t i) {
  size_t depth = 0, s = i;
  if (i >= len)
    return 0;
  if (t[i] == '"')
    return skip_str(t, len, i);
  if (t[i] != '{' && t[i] != '[') {
    while (i < len && !memchr(",]} \t\r\n", t[i], 8))
      i++;
    return i > s ? i : 0;
  }
  for (; i < len; i++) {
    if (t[i] == '"') {
      size_t e = skip_str(t, len, i);
      if (!e)
        return 0;
      i = e - 1;
    } else if (t[i] == '{' || t[i] == '[') {
      depth++;
    } else if ((t[i] == '}' || t[i] == ']') && --depth == 0) {
      return i + 1;
    }
  }
  return 0;
}

/* The elements of the array at [i] (t[i] is '['): their ranges appended
 * to *r (2 per element); *close gets the ']'. Returns the index past the
 * array, or 0. */
static size_t array_elems(const char *t, size_t len, size_t i, size_t *close,
                          size_t **r, size_t *n) {
  size_t cap = 0;
  i = skip_ws(t, len, i + 1);
  if (i < len && t[i] == ']') {
    *close = i;
    return i + 1;
  }
  for (;;) {
    size_t e = skip_val(t, len, i);
    if (!e)
      return 0;
    if (*n == cap) {
      size_t nc = cap ? cap * 2 : 256;
      size_t *nr = realloc(*r, nc * 2 * sizeof **r);
      if (!nr)
        return 0;
      *r = nr;
      cap = nc;
    }
    (*r)[2 * *n] = i;
    (*r)[2 * *n + 1] = e;
    (*n)++;
    i = skip_ws(t, len, e);
    if (i < len && t[i] == ',') {
      i = skip_ws(t, len, i + 1);
    } else if (i < len && t[i] == ']') {
      *close = i;
      return i + 1;
    } else {
      return 0;
    }
  }
}

long er_doc_json_elems(const char *t, size_t len, const char *key, size_t *open,
                       size_t *close, size_t **ranges) {
  size_t i = skip_ws(t, len, 0), n = 0, klen = strlen(key);
  bool found = false;
  *ranges = NULL;
  if (i >= len || t[i] != '{')
    goto fail;
  i = skip_ws(t, len, i + 1);
  while (i < len && t[i] == '"') {
    size_t ks = i, ke = skip_str(t, len, i);
    bool match;
    if (!ke || memchr(t + ks, '\\', ke - ks))
      goto fail; /* an escaped key: leave it to the parser */
    match = ke - ks - 2 == klen && !memcmp(t + ks + 1, key, klen);
    i = skip_ws(t, len, ke);
    if (i >= len || t[i] != ':')
      goto fail;
    i = skip_ws(t, len, i + 1);
    if (match) {
      if (found || i >= len || t[i] != '[')
        goto fail; /* twice, or not an array */
      found = true;
      *open = i;
      i = array_elems(t, len, i, close, ranges, &n);
    } else {
      i = skip_val(t, len, i);
    }
    if (!i)
      goto fail;
    i = skip_ws(t, len, i);
    if (i < len && t[i] == ',')
      i = skip_ws(t, len, i + 1);
    else if (i < len && t[i] == '}')
      break;
    else
      goto fail;
  }
  if (found && i < len && t[i] == '}')
    return (long)n;
fail:
  free(*ranges);
  *ranges = NULL;
  return -1;
}
