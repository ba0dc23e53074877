/* test_jpos.c: JSON pointer -> line:col positions (jpos.h). */
#include <stdlib.h>
#include <string.h>

#include "lang/jpos.h"
#include "tap.h"

/* Expects pointer (key or value) at line:col, found exactly (rc 0). */
static void at(const er_jpos_t *p, const char *ptr, bool key, int line,
               int col) {
  int l = -1, c = -1;
  int rc = er_jpos_find(p, ptr, key, &l, &c);
  T_OK(rc == 0 && l == line && c == col, "%s '%s' at %d:%d (got rc %d, %d:%d)",
       key ? "key" : "value", ptr, line, col, rc, l, c);
}

static er_jpos_t *build(const char *s) { return er_jpos_build(s, strlen(s)); }

static void test_nested(void) {
  const char *text = "{\n"
                     "  \"a\": {\"b\": [1, {\"c\": \"x\"}]},\n"
                     "  \"d~e/f\": true,\n"
                     "  \"\xc3\xa9\": \"\xc3\xbc\", \"z\": null,\n"
                     "\t\"\xf0\x9f\x98\x80\": [[], {}, -1.5e3]\n"
                     "}\n";
  er_jpos_t *p = build(text);
  T_OK(p != NULL, "built");
  at(p, "", false, 1, 1);
  at(p, "", true, 1, 1); /* the root has no key: its value */
  at(p, "/a", true, 2, 3);
  at(p, "/a", false, 2, 8);
  at(p, "/a/b", true, 2, 9);
  at(p, "/a/b", false, 2, 14);
  at(p, "/a/b/0", false, 2, 15);
  at(p, "/a/b/0", true, 2, 15); /* array element: its value */
  at(p, "/a/b/1", false, 2, 18);
  at(p, "/a/b/1/c", true, 2, 19);
  at(p, "/a/b/1/c", false, 2, 24);
  /* RFC 6901 escaping of ~ and / */
  at(p, "/d~0e~1f", true, 3, 3);
  at(p, "/d~0e~1f", false, 3, 12);
  /* multi-byte UTF-8 counts one column per character */
  at(p, "/\xc3\xa9", true, 4, 3);
  at(p, "/\xc3\xa9", false, 4, 8);
  at(p, "/z", true, 4, 13);
  at(p, "/z", false, 4, 18);
  /* a tab is one column; a 4-byte character is one column */
  at(p, "/\xf0\x9f\x98\x80", true, 5, 2);
  at(p, "/\xf0\x9f\x98\x80", false, 5, 7);
  at(p, "/\xf0\x9f\x98\x80/0", false, 5, 8);
  at(p, "/\xf0\x9f\x98\x80/1", false, 5, 12);
  at(p, "/\xf0\x9f\x98\x80/2", false, 5, 16);
  T_OK(er_jpos_count(p) == 13, "13 values recorded (got %zu)",
       er_jpos_count(p));
  {
    int l, c, rc;
    /* fallback to the nearest recorded parent */
    rc = er_jpos_find(p, "/a/b/7/x", false, &l, &c);
    T_OK(rc == 1 && l == 2 && c == 14, "missing /a/b/7/x falls back to /a/b");
    rc = er_jpos_find(p, "/a/missing", true, &l, &c);
    T_OK(rc == 1 && l == 2 && c == 3, "missing key falls back to key of /a");
    rc = er_jpos_find(p, "/nope", false, &l, &c);
    T_OK(rc == 1 && l == 1 && c == 1, "missing top key falls back to root");
    rc = er_jpos_find(p, "not-a-pointer", false, &l, &c);
    T_OK(rc == 1 && l == 1 && c == 1, "a non-pointer falls back to root");
    /* "/d~e/f" unescaped is not the key: it is /d~e then /f */
    rc = er_jpos_find(p, "/d~e/f", false, &l, &c);
    T_OK(rc == 1 && l == 1, "unescaped pointer is not found (rc %d)", rc);
    rc = er_jpos_find(NULL, "", false, &l, &c);
    T_OK(rc == -1 && l == 0 && c == 0, "NULL index: -1, 0:0");
  }
  er_jpos_free(p);
}

static void test_escaped_keys(void) {
  /* keys with JSON escapes are decoded before pointer escaping */
  const char *text = "{\"a\\\"b\": 1, \"\\u00e9\\ud83d\\ude00\": 2, "
                     "\"s\\/l\": 3, \"t\\u007e\": 4, \"\\t\": 5,\n"
                     "\"\": {\"\": 6}}";
  er_jpos_t *p = build(text);
  at(p, "/a\"b", true, 1, 2);
  at(p, "/a\"b", false, 1, 10);
  at(p, "/\xc3\xa9\xf0\x9f\x98\x80", true, 1, 13);
  at(p, "/\xc3\xa9\xf0\x9f\x98\x80", false, 1, 35);
  at(p, "/s~1l", false, 1, 46);
  at(p, "/t~0", false, 1, 60);
  at(p, "/\t", false, 1, 69);
  at(p, "/", true, 2, 1);
  at(p, "/", false, 2, 5);
  at(p, "//", true, 2, 6);
  at(p, "//", false, 2, 10);
  er_jpos_free(p);
}

static void test_duplicates_and_crlf(void) {
  er_jpos_t *p = build("{\"a\": {\"x\": 1}, \"a\": {\"y\": 2}}");
  int l, c, rc;
  at(p, "/a", true, 1, 17);
  at(p, "/a", false, 1, 22);
  at(p, "/a/y", false, 1, 28);
  rc = er_jpos_find(p, "/a/x", false, &l, &c);
  T_OK(rc == 1 && l == 1 && c == 22,
       "earlier duplicate's child is forgotten (falls back to the last /a)");
  T_OK(er_jpos_count(p) == 3, "root, /a, /a/y recorded (got %zu)",
       er_jpos_count(p));
  er_jpos_free(p);

  p = build("{\r\n  \"a\": [1,\r\n 2]\r\n}");
  at(p, "/a", true, 2, 3);
  at(p, "/a/1", false, 3, 2);
  er_jpos_free(p);

  /* many members: the table grows and keeps every entry */
  {
    char *big = malloc(200000);
    size_t n = 0;
    n += (size_t)sprintf(big + n, "{");
    for (int i = 0; i < 5000; i++)
      n += (size_t)sprintf(big + n, "%s\"k%d\": [%d]", i ? ",\n" : "", i, i);
    sprintf(big + n, "}");
    p = build(big);
    at(p, "/k0", true, 1, 2);
    at(p, "/k4999", true, 5000, 1);
    at(p, "/k4999/0", false, 5000, 11);
    T_OK(er_jpos_count(p) == 10001, "10001 values (got %zu)", er_jpos_count(p));
    er_jpos_free(p);
    free(big);
  }
}

static void test_truncated_and_garbage(void) {
  const char *text = "{\"a\": {\"b\": [1, {\"c\": \"x\\u00e9\\\"\"}]}, "
                     "\"d\": true, \"e\": \"\xc3\xa9\"}";
  size_t len = strlen(text);
  int survived = 0;
  for (size_t i = 0; i <= len; i++) {
    /* a copy of exactly i bytes, so ASan sees any read past it */
    char *cp = malloc(i ? i : 1);
    er_jpos_t *p;
    int l, c;
    memcpy(cp, text, i);
    p = er_jpos_build(cp, i);
    if (p) {
      er_jpos_find(p, "/a/b/1/c", false, &l, &c);
      survived++;
    }
    er_jpos_free(p);
    free(cp);
  }
  T_OK(survived == (int)len + 1, "every truncation of a document scans");
  {
    er_jpos_t *p = er_jpos_build(text, 16); /* {"a": {"b": [1, */
    at(p, "/a/b/0", false, 1, 14);
    er_jpos_free(p);
  }
  {
    /* deterministic random bytes, biased towards JSON punctuation */
    const char alphabet[] = "{}[]\",:\\u0123456789abcdeftrunl \n\t\x80\xc3\xff";
    unsigned long seed = 12345;
    int ok = 1;
    for (int round = 0; round < 3000; round++) {
      size_t n = (size_t)(round % 97);
      char *buf = malloc(n ? n : 1);
      er_jpos_t *p;
      for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005UL + 1442695040888963407UL;
        buf[i] = alphabet[(seed >> 33) % (sizeof alphabet - 1)];
      }
      p = er_jpos_build(buf, n);
      if (!p)
        ok = 0;
      else {
        int l, c;
        er_jpos_find(p, "/0/a", true, &l, &c);
      }
      er_jpos_free(p);
      free(buf);
    }
    T_OK(ok, "3000 random garbage inputs scan without crashing");
  }
  {
    /* nesting far deeper than the depth limit */
    size_t n = 100000;
    char *deep = malloc(n);
    er_jpos_t *p;
    memset(deep, '[', n);
    p = er_jpos_build(deep, n);
    T_OK(p != NULL && er_jpos_count(p) > 1000,
         "100000 nested '[' stop at the depth limit");
    er_jpos_free(p);
    free(deep);
  }
  {
    const char *bad[] = {"",      "   ",    "}",       "]",
                         ",",     ":",      "\"",      "\"\\",
                         "{\"",   "{\"a\"", "{\"a\":", "{\"a\" 1}",
                         "[1 2]", "{1: 2}", "\"\\u12", "\"\\ud800\\u",
                         "nul",   "{,}",    "[,]"};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      er_jpos_t *p = build(bad[i]);
      if (!p)
        ok = 0;
      er_jpos_free(p);
    }
    T_OK(ok, "malformed fragments scan");
  }
  {
    er_jpos_t *p = er_jpos_build(NULL, 10);
    int l, c;
    T_OK(p && er_jpos_find(p, "", false, &l, &c) == -1,
         "NULL text: nothing recorded");
    er_jpos_free(p);
  }
}

static void test_helpers(void) {
  char *s = er_jpos_child("/steps/0", "a/b~c");
  T_STREQ(s, "/steps/0/a~1b~0c", "child pointer escapes / and ~");
  free(s);
  s = er_jpos_child("", "");
  T_STREQ(s, "/", "empty key under the root");
  free(s);
  s = er_jpos_child_index("/steps", 12);
  T_STREQ(s, "/steps/12", "child index");
  free(s);
}

int main(void) {
  test_nested();
  test_escaped_keys();
  test_duplicates_and_crlf();
  test_truncated_and_garbage();
  test_helpers();
  return t_done();
}
