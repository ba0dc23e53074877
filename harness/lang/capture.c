/* capture.c: see capture.h. */
#include "lang/capture.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"
#include "lang/jsonpath.h"
#include "lang/jsonx.h"

static const char *const g_keys[] = {"path",  "text",   "header",
                                     "key",   "status", "all",
                                     "regex", "group",  "flags"};

static bool templated(const json_t *v) {
  return json_is_string(v) && strstr(json_string_value(v), "${") != NULL;
}

static int re_flags(const json_t *flags) {
  int f = REG_EXTENDED;
  const char *s = json_string_value(flags);
  for (; s && *s; s++) {
    if (*s == 'i')
      f |= REG_ICASE;
    else if (*s == 'm')
      f |= REG_NEWLINE;
    else
      return -1;
  }
  return f;
}

/* The sources of spec: how many and the first one's name. */
static int sources(const json_t *spec, const char **first) {
  static const char *const src[] = {"path", "text",   "header",
                                    "key",  "status", "all"};
  int n = 0;
  *first = NULL;
  for (size_t i = 0; i < sizeof src / sizeof src[0]; i++)
    if (json_object_get(spec, src[i])) {
      if (!*first)
        *first = src[i];
      n++;
    }
  return n;
}

static const char *check_regex(const json_t *spec, char *msg, size_t msgsz) {
  const json_t *re = json_object_get(spec, "regex");
  const json_t *group = json_object_get(spec, "group");
  const json_t *flags = json_object_get(spec, "flags");
  regex_t r;
  int cf;
  if (!re) {
    if (group || flags) {
      snprintf(msg, msgsz, "\"group\" and \"flags\" go with \"regex\"");
      return msg;
    }
    return NULL;
  }
  if (!json_is_string(re)) {
    snprintf(msg, msgsz, "\"regex\" is a string (a POSIX extended regex)");
    return msg;
  }
  if (flags && (!json_is_string(flags) || re_flags(flags) < 0)) {
    snprintf(msg, msgsz, "\"flags\" is a string of i (ignore case) and m");
    return msg;
  }
  if (templated(re))
    return NULL;
  cf = re_flags(flags);
  if (regcomp(&r, json_string_value(re), cf) != 0) {
    snprintf(msg, msgsz, "\"regex\" is not a valid extended regex");
    return msg;
  }
  if (group && (!json_is_integer(group) || json_integer_value(group) < 0 ||
                (size_t)json_integer_value(group) > r.re_nsub)) {
    snprintf(msg, msgsz, "\"group\" is a group of the regex: 0 to %zu",
             r.re_nsub);
    regfree(&r);
    return msg;
  }
  regfree(&r);
  return NULL;
}

const char *er_capture_check(const json_t *spec, unsigned has, char *msg,
                             size_t msgsz) {
  const char *k, *first = NULL;
  json_t *v;
  if (json_is_string(spec))
    return er_select_check(json_string_value(spec), msg, msgsz);
  if (!json_is_object(spec) || json_object_size(spec) == 0) {
    snprintf(msg, msgsz,
             "a capture is a JSON pointer or JSONPath string, or "
             "an object such as {\"regex\": \"id=([0-9]+)\"}");
    return msg;
  }
  json_object_foreach((json_t *)spec, k, v) {
    bool known = false;
    for (size_t i = 0; i < sizeof g_keys / sizeof g_keys[0]; i++)
      if (!strcmp(k, g_keys[i]))
        known = true;
    if ((!strcmp(k, "header") && !(has & ER_CAP_HEADER)) ||
        (!strcmp(k, "key") && !(has & ER_CAP_KEY)) ||
        (!strcmp(k, "status") && !(has & ER_CAP_STATUS)) ||
        (!strcmp(k, "all") && !(has & ER_CAP_ALL))) {
      snprintf(msg, msgsz, "this step has no \"%s\" to capture", k);
      return msg;
    }
    if (!known) {
      const char *dym =
          er_did_you_mean(k, g_keys, sizeof g_keys / sizeof g_keys[0]);
      if (dym)
        snprintf(msg, msgsz,
                 "unknown key '%s' in a capture (did you mean '%s'?)", k, dym);
      else
        snprintf(msg, msgsz,
                 "unknown key '%s' in a capture (a source: path, text, "
                 "header, key, status or all; and regex, group, flags)",
                 k);
      return msg;
    }
  }
  if (sources(spec, &first) > 1) {
    snprintf(msg, msgsz,
             "a capture takes one source: path, text, header, key, status "
             "or all");
    return msg;
  }
  if ((v = json_object_get(spec, "all")) != NULL) {
    if (json_object_size(spec) != 1) {
      snprintf(msg, msgsz,
               "\"all\" holds the whole capture: {\"all\": "
               "{\"path\": \"/id\", \"regex\": \"...\"}}");
      return msg;
    }
    return er_capture_check(v, has & ~(unsigned)ER_CAP_ALL, msg, msgsz);
  }
  v = json_object_get(spec, "path");
  if (v && !json_is_string(v)) {
    snprintf(msg, msgsz, "\"path\" is a JSON pointer or a JSONPath string");
    return msg;
  }
  if (v && er_select_check(json_string_value(v), msg, msgsz))
    return msg;
  if ((v = json_object_get(spec, "text")) && !json_is_true(v)) {
    snprintf(msg, msgsz, "\"text\" takes true");
    return msg;
  }
  if ((v = json_object_get(spec, "key")) && !json_is_true(v)) {
    snprintf(msg, msgsz, "\"key\" takes true");
    return msg;
  }
  if ((v = json_object_get(spec, "status")) && !json_is_true(v)) {
    snprintf(msg, msgsz, "\"status\" takes true");
    return msg;
  }
  if ((v = json_object_get(spec, "header")) && !json_is_string(v)) {
    snprintf(msg, msgsz, "\"header\" takes a header name");
    return msg;
  }
  if (check_regex(spec, msg, msgsz))
    return msg;
  if (!first && !json_object_get(spec, "regex")) {
    snprintf(msg, msgsz,
             "a capture object needs a source (path, text, "
             "header, ...) or a regex");
    return msg;
  }
  return NULL;
}

/* ---- taking ------------------------------------------------------------ */

/* A value as text: strings raw, big integers as digits, others as
 * compact JSON. New string. */
static char *value_text(const json_t *v, size_t *len) {
  char *s;
  if (er_big_digits(v)) {
    s = er_strdup(er_big_digits(v));
  } else if (json_is_string(v)) {
    *len = json_string_length(v);
    s = malloc(*len + 1);
    if (s) {
      memcpy(s, json_string_value(v), *len);
      s[*len] = '\0';
    }
    return s;
  } else {
    s = er_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  }
  *len = s ? strlen(s) : 0;
  return s;
}

/* The whole value as text (new string), or NULL with why. */
static char *whole_text(const er_cap_src_t *src, size_t *len, er_buf_t *why) {
  const char *why_not = NULL;
  const json_t *doc;
  char *s;
  if (src->text) {
    *len = src->text_len;
    s = malloc(*len + 1);
    if (s) {
      memcpy(s, src->text, *len);
      s[*len] = '\0';
    }
    return s;
  }
  doc = src->doc ? src->doc(src->ud, &why_not) : NULL;
  if (!doc) {
    er_buf_printf(why, "the %s is empty", src->what);
    return NULL;
  }
  return value_text(doc, len);
}

/* What path selects (new reference), or NULL with why. */
static json_t *by_path(const char *path, const er_cap_src_t *src,
                       er_buf_t *why) {
  const char *why_not = NULL;
  const json_t *doc = src->doc ? src->doc(src->ud, &why_not) : NULL;
  er_sel_t sel;
  char msg[512];
  json_t *out = NULL;
  if (!doc) {
    if (!*path && src->text) { /* all of a value that is not JSON: text */
      json_t *t = json_stringn(src->text, src->text_len);
      return t ? t : er_json_from_text(src->text, src->text_len);
    }
    er_buf_printf(why, "%s", why_not ? why_not : "there is no JSON value");
    return NULL;
  }
  if (er_select(doc, path, &sel, msg, sizeof msg) != 0) {
    er_buf_puts(why, msg);
    er_sel_free(&sel);
    return NULL;
  }
  if (!er_sel_value(&sel) && src->alt && src->alt(src->ud)) {
    er_sel_free(&sel);
    if (er_select(src->alt(src->ud), path, &sel, msg, sizeof msg) != 0) {
      er_buf_puts(why, msg);
      er_sel_free(&sel);
      return NULL;
    }
  }
  if (er_sel_value(&sel))
    out = json_deep_copy(er_sel_value(&sel));
  else
    er_buf_printf(why, "%s is not in the %s", *path ? path : "\"\"", src->what);
  er_sel_free(&sel);
  return out;
}

/* The source's value before any regex (new reference), or NULL + why. */
static json_t *source_value(const json_t *spec, const er_cap_src_t *src,
                            er_buf_t *why) {
  const json_t *v;
  if (json_is_string(spec))
    return by_path(json_string_value(spec), src, why);
  if ((v = json_object_get(spec, "path")) != NULL)
    return by_path(json_string_value(v), src, why);
  if ((v = json_object_get(spec, "header")) != NULL) {
    char *h = src->header ? src->header(src->ud, json_string_value(v)) : NULL;
    json_t *out;
    if (!h) {
      er_buf_printf(why, "no header %s", json_string_value(v));
      return NULL;
    }
    out = json_string(h);
    if (!out) /* not UTF-8 */
      out = er_json_from_text(h, strlen(h));
    free(h);
    return out;
  }
  if (json_object_get(spec, "key") || json_object_get(spec, "status")) {
    const char *name = json_object_get(spec, "key") ? "key" : "status";
    json_t *out = src->named ? src->named(src->ud, name) : NULL;
    if (!out)
      er_buf_printf(why, "no %s", name);
    return out;
  }
  {
    size_t n = 0;
    char *t = whole_text(src, &n, why);
    json_t *out;
    if (!t)
      return NULL;
    out = json_stringn(t, n);
    if (!out)
      out = er_json_from_text(t, n);
    free(t);
    return out;
  }
}

static json_t *apply_regex(const json_t *spec, const json_t *v, er_buf_t *why) {
  const json_t *re = json_object_get(spec, "regex");
  const json_t *group = json_object_get(spec, "group");
  regex_t r;
  regmatch_t m[10];
  size_t n = 0;
  int cf = re_flags(json_object_get(spec, "flags"));
  char *text = value_text(v, &n);
  json_t *out = NULL;
  size_t g;
  if (!text)
    return NULL;
  if (cf < 0 || regcomp(&r, json_string_value(re), cf) != 0) {
    er_buf_printf(why, "\"regex\" is not a valid extended regex");
    free(text);
    return NULL;
  }
  g = group ? (size_t)json_integer_value(group) : (r.re_nsub > 0 ? 1 : 0);
  if (g > r.re_nsub || g >= sizeof m / sizeof m[0]) {
    er_buf_printf(why, "the regex has no group %zu", g);
  } else if (regexec(&r, text, sizeof m / sizeof m[0], m, 0) != 0) {
    char *b = er_json_brief(v, 200);
    er_buf_printf(why, "regex %s does not match %s", json_string_value(re),
                  b ? b : "?");
    free(b);
  } else if (m[g].rm_so < 0) {
    er_buf_printf(why, "group %zu of regex %s took no part in the match", g,
                  json_string_value(re));
  } else {
    out = json_stringn(text + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
    if (!out)
      out = er_json_from_text(text + m[g].rm_so,
                              (size_t)(m[g].rm_eo - m[g].rm_so));
  }
  regfree(&r);
  free(text);
  return out;
}

json_t *er_capture_take(const json_t *spec, const er_cap_src_t *src,
                        er_buf_t *why) {
  json_t *v;
  if (json_is_object(spec) && json_object_get(spec, "all")) {
    er_buf_puts(why, "\"all\" is taken by the step, message by message");
    return NULL;
  }
  v = source_value(spec, src, why);
  if (v && json_is_object(spec) && json_object_get(spec, "regex")) {
    json_t *r = apply_regex(spec, v, why);
    json_decref(v);
    v = r;
  }
  return v;
}
