/* template.c: see template.h.
 * (The static scanner is here first; expansion is filled in next.) */
#include <ctype.h>
#include <string.h>

#include "template.h"

static const char *const g_builtins[] = {
    "uuid", "now", "run", "env", "kafka", "port", "proxy", "service",
    "instance",
};

int er_tmpl_is_builtin(const char *root) {
  for (size_t i = 0; i < sizeof g_builtins / sizeof g_builtins[0]; i++)
    if (strcmp(root, g_builtins[i]) == 0)
      return 1;
  return 0;
}

static int name_char(int c) {
  return isalnum(c) || c == '_' || c == '-';
}

/* Scans one name path "a.b.0" starting at s; returns its length and puts
 * the root (up to the first '.') into root. */
static size_t scan_path(const char *s, char *root, size_t rootsz) {
  size_t i = 0, r = 0;
  while (name_char((unsigned char)s[i]) || (i > 0 && s[i] == '.')) {
    if (s[i] == '.' && r == 0)
      r = i;
    i++;
  }
  if (r == 0)
    r = i;
  if (r >= rootsz)
    r = rootsz - 1;
  memcpy(root, s, r);
  root[r] = '\0';
  return i;
}

int er_tmpl_scan(const char *s, er_tmpl_ref_cb cb, void *ud, char *msg,
                 size_t msgsz, size_t *bad_off) {
  size_t i = 0;
  while (s[i]) {
    size_t start, n;
    char root[128];
    if (s[i] == '$' && s[i + 1] == '$' && s[i + 2] == '{') {
      i += 3;
      continue;
    }
    if (!(s[i] == '$' && s[i + 1] == '{')) {
      i++;
      continue;
    }
    start = i;
    i += 2;
    n = scan_path(s + i, root, sizeof root);
    if (n == 0) {
      snprintf(msg, msgsz, "empty or malformed ${...} expression");
      *bad_off = start;
      return -1;
    }
    if (s[i + n] == '(') {
      /* function call: the argument is a name path */
      size_t m;
      if (strcmp(root, "event_id") != 0 && strcmp(root, "sha256") != 0) {
        snprintf(msg, msgsz, "unknown function '%s' (known: event_id, sha256)",
                 root);
        *bad_off = start;
        return -1;
      }
      i += n + 1;
      m = scan_path(s + i, root, sizeof root);
      if (m == 0 || s[i + m] != ')') {
        snprintf(msg, msgsz, "a function takes one variable name: "
                             "${event_id(name)}");
        *bad_off = start;
        return -1;
      }
      if (cb)
        cb(ud, root, start);
      i += m + 1;
    } else {
      if (cb)
        cb(ud, root, start);
      i += n;
      if (s[i] == ':' && s[i + 1] == '-') {
        while (s[i] && s[i] != '}')
          i++;
      }
    }
    if (s[i] != '}') {
      snprintf(msg, msgsz, "unterminated ${ (missing '}')");
      *bad_off = start;
      return -1;
    }
    i++;
  }
  return 0;
}
