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

json_t *er_doc_load(const char *path, size_t cap, er_jpos_t **pos,
                    er_diags_t *diags) {
  er_err_t err = {0};
  size_t len = 0;
  char *text = er_read_file(path, cap, &len, &err);
  json_t *doc;
  if (pos)
    *pos = NULL;
  if (!text) {
    const char *m = err.msg;
    size_t pl = strlen(path);
    if (strncmp(m, path, pl) == 0 && m[pl] == ':' && m[pl + 1] == ' ')
      m += pl + 2; /* the problem names the file already */
    er_diags_addf(diags, path, 0, 0, ER_DIAG_ERROR, "%s", m);
    return NULL;
  }
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
