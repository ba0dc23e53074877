/* test_junit.c: the JUnit XML report and the console output (report.h).
 *
 * Usage: test_junit [HOSTILE.xml [EMPTY.xml]]
 * With paths, also writes the hostile report and a report of an empty run
 * there, for tests/integration/junit_schema.sh to validate with xmllint
 * against the Jenkins xunit schema. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/report.h"
#include "tap.h"

/* every hostile thing at once */
#define HOSTILE                                                                \
  "ctl:\x01\x02\x08\x0b\x0c\x1b\x1f del:\x7f bad:\xff\xfe trunc:\xe6\x97 "     \
  "surr:\xed\xa0\x80 cdata:]]> esc:&<>\"' emoji:\xf0\x9f\x98\x80 "             \
  "tab:\t cr:\r lf:\n end"

#define FFFD "\xef\xbf\xbd"

/* The escaping of HOSTILE as text and as an attribute value. */
#define HOSTILE_TEXT                                                           \
  "ctl:" FFFD FFFD FFFD FFFD FFFD FFFD FFFD " del:&#x7F; bad:" FFFD FFFD       \
  " trunc:" FFFD " surr:" FFFD FFFD FFFD " cdata:]]&gt; "                      \
  "esc:&amp;&lt;&gt;&quot;&apos; emoji:\xf0\x9f\x98\x80 tab:\t cr:&#13; "      \
  "lf:\n end"
#define HOSTILE_ATTR                                                           \
  "ctl:" FFFD FFFD FFFD FFFD FFFD FFFD FFFD " del:&#x7F; bad:" FFFD FFFD       \
  " trunc:" FFFD " surr:" FFFD FFFD FFFD " cdata:]]&gt; "                      \
  "esc:&amp;&lt;&gt;&quot;&apos; emoji:\xf0\x9f\x98\x80 tab:&#9; cr:&#13; "    \
  "lf:&#10; end"

/* ---- a small XML well-formedness check ------------------------------- */

static int valid_ref(const char *p, size_t *len) {
  static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;",
                                     "&apos;"};
  size_t i;
  for (i = 0; i < 5; i++)
    if (strncmp(p, ents[i], strlen(ents[i])) == 0) {
      *len = strlen(ents[i]);
      return 1;
    }
  if (p[1] == '#') {
    i = 2;
    if (p[2] == 'x')
      for (i = 3; strchr("0123456789abcdefABCDEF", p[i]) && p[i]; i++)
        ;
    else
      for (; p[i] >= '0' && p[i] <= '9'; i++)
        ;
    if (i > 2 && p[i] == ';') {
      *len = i + 1;
      return 1;
    }
  }
  return 0;
}

static int name_ch(char c) {
  return c && (strchr("-_:.", c) || (c >= 'a' && c <= 'z') ||
               (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
}

/* Checks that x is one well-formed element (after an XML declaration):
 * tags nest, attributes are quoted, & starts a reference, no '<' in text
 * or attribute values. Returns NULL or a reason. */
static const char *well_formed(const char *x) {
  static char why[128];
  const char *stack[32];
  size_t depth = 0, roots = 0;
  const char *p = x;
  if (strncmp(p, "<?xml ", 6) != 0)
    return "no XML declaration";
  p = strstr(p, "?>");
  if (!p)
    return "unterminated declaration";
  p += 2;
  while (*p) {
    if (*p == '<') {
      const char *n;
      size_t nl;
      if (p[1] == '/') {
        n = p + 2;
        for (nl = 0; name_ch(n[nl]); nl++)
          ;
        if (!depth || strncmp(stack[depth - 1], n, nl) != 0 ||
            name_ch(stack[depth - 1][nl]) || n[nl] != '>') {
          snprintf(why, sizeof why, "bad end tag at offset %zu",
                   (size_t)(p - x));
          return why;
        }
        depth--;
        p = n + nl + 1;
        continue;
      }
      n = p + 1;
      for (nl = 0; name_ch(n[nl]); nl++)
        ;
      if (nl == 0)
        return "'<' without a tag name";
      if (depth == 0)
        roots++;
      p = n + nl;
      for (;;) {
        size_t al;
        while (*p == ' ' || *p == '\n')
          p++;
        if (p[0] == '/' && p[1] == '>') {
          p += 2;
          break;
        }
        if (*p == '>') {
          if (depth == 32)
            return "too deep";
          stack[depth++] = n;
          p++;
          break;
        }
        for (al = 0; name_ch(p[al]); al++)
          ;
        if (al == 0 || p[al] != '=' || p[al + 1] != '"')
          return "malformed attribute";
        p += al + 2;
        while (*p && *p != '"') {
          size_t rl;
          if (*p == '<')
            return "'<' in an attribute value";
          if (*p == '&') {
            if (!valid_ref(p, &rl))
              return "bad reference in an attribute value";
            p += rl;
            continue;
          }
          p++;
        }
        if (*p != '"')
          return "unterminated attribute value";
        p++;
      }
      continue;
    }
    if (*p == '&') {
      size_t rl;
      if (!valid_ref(p, &rl))
        return "bad reference in text";
      p += rl;
      continue;
    }
    if (depth == 0 && *p != '\n' && *p != ' ')
      return "text outside the root element";
    p++;
  }
  if (depth)
    return "unclosed element";
  if (roots != 1)
    return "not exactly one root element";
  return NULL;
}

/* NULL when every character is valid UTF-8 and allowed by XML 1.0, and no
 * DEL/C1 control appears raw; else a reason. */
static const char *only_xml_chars(const char *x) {
  static char why[96];
  const unsigned char *p = (const unsigned char *)x;
  size_t i = 0;
  while (p[i]) {
    unsigned c = p[i];
    long cp;
    size_t k;
    if (c < 0x80) {
      cp = c;
      k = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1F;
      k = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0F;
      k = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07;
      k = 4;
    } else {
      snprintf(why, sizeof why, "invalid UTF-8 lead 0x%02x at %zu", c, i);
      return why;
    }
    for (size_t j = 1; j < k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) {
        snprintf(why, sizeof why, "truncated UTF-8 at %zu", i);
        return why;
      }
      cp = (cp << 6) | (p[i + j] & 0x3F);
    }
    if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) ||
        (k == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
      snprintf(why, sizeof why, "overlong UTF-8 at %zu", i);
      return why;
    }
    if (!(cp == 9 || cp == 10 || cp == 13 || (cp >= 0x20 && cp < 0x7F) ||
          (cp > 0x9F && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
          cp >= 0x10000)) {
      snprintf(why, sizeof why, "character U+%04lX at %zu", cp, i);
      return why;
    }
    i += k;
  }
  return NULL;
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

/* ---- fixtures --------------------------------------------------------- */

static void add(er_results_t *rs, er_res_status_t st, const char *name,
                int64_t ms, const char *msg, const char *step,
                const char *detail, const char *log) {
  er_result_t r = {0};
  r.classname = "scenarios.smoke";
  r.name = (char *)name;
  r.file = "scenarios/smoke/x.json";
  r.status = st;
  r.duration_ms = ms;
  r.message = (char *)msg;
  r.failed_step = (char *)step;
  r.detail = (char *)detail;
  r.log = (char *)log;
  if (er_results_add(rs, &r) != 0)
    T_OK(0, "er_results_add");
}

static void hostile_results(er_results_t *rs) {
  er_result_t r = {0};
  memset(rs, 0, sizeof *rs);
  snprintf(rs->suite_name, sizeof rs->suite_name, "suite %s", "&<>");
  snprintf(rs->timestamp, sizeof rs->timestamp, "2026-11-23T10:00:00.123Z");
  add(rs, ER_RES_PASS, "plain pass", 1234, NULL, NULL, NULL, "log line\n");
  add(rs, ER_RES_FAIL, "fail " HOSTILE, 20003, "msg " HOSTILE, "step " HOSTILE,
      "expected: 1\nlast seen: " HOSTILE, "log " HOSTILE);
  add(rs, ER_RES_ERROR, "error case", 5, "redis down", NULL, NULL, NULL);
  add(rs, ER_RES_SKIP, "skipped case", 0, "filtered by tag", NULL, NULL, NULL);
  /* every field hostile, classname and file too */
  r.classname = "cls " HOSTILE;
  r.name = "all " HOSTILE;
  r.file = "file " HOSTILE;
  r.status = ER_RES_SKIP;
  r.message = "skip " HOSTILE;
  r.log = "]]>]]>";
  er_results_add(rs, &r);
}

static void test_render(void) {
  er_results_t rs;
  char *x;
  const char *why;
  hostile_results(&rs);
  x = er_junit_render(&rs);
  T_OK(x != NULL, "render");
  if (!x)
    return;
  why = well_formed(x);
  T_OK(why == NULL, "hostile report is well-formed (%s)", why ? why : "ok");
  why = only_xml_chars(x);
  T_OK(why == NULL, "only XML 1.0 characters, valid UTF-8 (%s)",
       why ? why : "ok");
  T_OK(strstr(x, "]]>") == NULL, "\"]]>\" never appears raw");
  T_OK(strstr(x, "CDATA") == NULL, "no CDATA sections");
  T_OK(strstr(x, "\x7f") == NULL && strstr(x, "\x1b") == NULL,
       "no raw DEL or ESC");
  T_OK(strstr(x, "<testsuite name=\"suite &amp;&lt;&gt;\" tests=\"5\" "
                 "failures=\"1\" errors=\"1\" skipped=\"2\" time=\"") != NULL,
       "testsuite counts and escaped name");
  T_OK(strstr(x, "timestamp=\"2026-11-23T10:00:00.123Z\" hostname=\"") != NULL,
       "timestamp and hostname");
  T_OK(strstr(x, "<testcase name=\"plain pass\" classname=\"scenarios.smoke\" "
                 "file=\"scenarios/smoke/x.json\" line=\"1\" "
                 "time=\"1.234\">") != NULL,
       "testcase with file, line and seconds to three decimals");
  T_OK(strstr(x, "name=\"error case\" classname=\"scenarios.smoke\" "
                 "file=\"scenarios/smoke/x.json\" line=\"1\" "
                 "time=\"0.005\">") != NULL,
       "5 ms is 0.005");
  T_OK(strstr(x, "<testcase name=\"fail " HOSTILE_ATTR "\"") != NULL,
       "hostile name escaped as an attribute");
  T_OK(strstr(x,
              "<failure message=\"msg " HOSTILE_ATTR
              "\" type=\"expectation\">step: step " HOSTILE_TEXT
              "\nexpected: 1\nlast seen: " HOSTILE_TEXT "</failure>") != NULL,
       "failure: message attribute, failing step, then the detail");
  T_OK(strstr(x, "<error message=\"redis down\" type=\"error\">redis "
                 "down</error>") != NULL,
       "error element with the message as text when there is no detail");
  T_OK(strstr(x, "<skipped message=\"filtered by tag\"/>") != NULL,
       "skipped with the reason");
  T_OK(
      strstr(
          x,
          "<system-out>scenario file: scenarios/smoke/x.json\nlog " HOSTILE_TEXT
          "</system-out>") != NULL,
      "system-out: the file, then the scenario log");
  T_OK(strstr(x, "classname=\"cls " HOSTILE_ATTR "\"") != NULL &&
           strstr(x, "<skipped message=\"skip " HOSTILE_ATTR "\"/>") != NULL &&
           strstr(x, "scenario file: file " HOSTILE_TEXT "\n]]&gt;]]&gt;") !=
               NULL,
       "classname, skip reason, file and log escaped too");
  T_OK(count(x, "<testcase ") == 5 && count(x, "</testcase>") == 5,
       "one testcase per scenario");
  T_OK(count(x, "<testsuite ") == 1, "one testsuite per run");
  T_OK(strncmp(x,
               "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "
               "name=\"suite &amp;&lt;&gt;\" tests=\"5\" failures=\"1\" "
               "errors=\"1\" time=\"",
               111) == 0,
       "declaration and testsuites");
  free(x);
  er_results_free(&rs);
  T_OK(rs.v == NULL && rs.n == 0, "er_results_free empties the list");
}

static void test_empty_and_defaults(void) {
  er_results_t rs;
  char *x;
  memset(&rs, 0, sizeof rs);
  x = er_junit_render(&rs);
  T_OK(x && strstr(x, "<testsuite name=\"eventrig\" tests=\"0\" failures=\"0\" "
                      "errors=\"0\" skipped=\"0\" time=\"0.000\"") != NULL,
       "empty run: suite named eventrig, zero counts");
  T_OK(x && well_formed(x) == NULL, "empty run is well-formed");
  free(x);
}

static void test_cut(void) {
  er_results_t rs;
  char *big = malloc(3u * 1024u * 1024u);
  char *x;
  size_t n = 3u * 1024u * 1024u - 1;
  memset(&rs, 0, sizeof rs);
  /* 3 MiB of "é": the cut falls inside a character at an odd byte */
  for (size_t i = 0; i + 1 < n; i += 2) {
    big[i] = (char)0xC3;
    big[i + 1] = (char)0xA9;
  }
  big[n - 1] = 'z';
  big[n] = '\0';
  add(&rs, ER_RES_FAIL, "big", 1, "m", "s", NULL, big);
  x = er_junit_render(&rs);
  T_OK(x && strstr(x, "more bytes cut by eventrig]</system-out>") != NULL,
       "a huge log is cut with a note");
  T_OK(x && only_xml_chars(x) == NULL && strstr(x, FFFD) == NULL,
       "the cut is at a character boundary (no U+FFFD made)");
  T_OK(x && strlen(x) < 1100u * 1024u, "the report stays bounded");
  free(x);
  free(big);
  er_results_free(&rs);
}

static int only_file(const char *dir, const char *name) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0, found = 0;
  if (!d)
    return 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    n++;
    if (strcmp(e->d_name, name) == 0)
      found = 1;
  }
  closedir(d);
  return n == 1 && found;
}

static void test_write(void) {
  char dir[] = "/tmp/er-junit-XXXXXX";
  char path[256];
  er_results_t rs;
  er_err_t err = {0};
  struct stat st1, st2;
  int fd;
  ssize_t got;
  char *text;

  if (!mkdtemp(dir)) {
    T_OK(0, "mkdtemp");
    return;
  }
  snprintf(path, sizeof path, "%s/junit.xml", dir);
  memset(&rs, 0, sizeof rs);
  add(&rs, ER_RES_PASS, "one", 1, NULL, NULL, NULL, NULL);
  T_OK(er_junit_write(&rs, path, &err) == 0, "write (%s)", err.msg);
  T_OK(only_file(dir, "junit.xml"), "no temp file left after writing");
  stat(path, &st1);
  fd = open(path, O_RDONLY);
  add(&rs, ER_RES_FAIL, "two", 1, "boom", NULL, NULL, NULL);
  T_OK(er_junit_write(&rs, path, &err) == 0, "second write (%s)", err.msg);
  stat(path, &st2);
  T_OK(st1.st_ino != st2.st_ino, "the file is replaced (rename), not "
                                 "rewritten in place");
  text = malloc((size_t)st1.st_size + 1);
  got = text ? pread(fd, text, (size_t)st1.st_size, 0) : -1;
  if (got >= 0)
    text[got] = '\0';
  T_OK(got == st1.st_size && strstr(text, "tests=\"1\"") &&
           !strstr(text, "boom"),
       "a reader of the old file still sees a complete old report");
  free(text);
  close(fd);
  text = er_read_file(path, 1 << 20, NULL, &err);
  T_OK(text && strstr(text, "tests=\"2\"") && strstr(text, "boom"),
       "the path has the new report");
  free(text);
  T_OK(only_file(dir, "junit.xml"), "still no temp file");

  snprintf(path, sizeof path, "%s/missing/junit.xml", dir);
  er_err_clear(&err);
  T_OK(er_junit_write(&rs, path, &err) == -1 && err.code == ER_E_ENV &&
           strstr(err.msg, "missing") != NULL,
       "a missing directory is an error naming the path (%s)", err.msg);
  er_results_free(&rs);
  snprintf(path, sizeof path, "%s/junit.xml", dir);
  unlink(path);
  rmdir(dir);
}

/* ---- console ---------------------------------------------------------- */

static char *slurp(FILE *f) {
  long n;
  char *s;
  fflush(f);
  n = ftell(f);
  s = calloc(1, (size_t)n + 1);
  rewind(f);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    return NULL;
  }
  return s;
}

static void console_all(er_console_t *c, er_results_t *rs) {
  for (size_t i = 0; i < rs->n; i++) {
    er_console_scenario_start(c, rs->v[i].name);
    er_console_result(c, &rs->v[i]);
  }
  er_console_summary(c, rs, 12345);
}

static void test_console(void) {
  FILE *f = tmpfile();
  er_console_t c;
  er_results_t rs;
  char *out;
  memset(&rs, 0, sizeof rs);
  add(&rs, ER_RES_PASS, "register batch", 1234, NULL, NULL, NULL, NULL);
  add(&rs, ER_RES_FAIL, "duplicate storm", 20003,
      "step 'await': expected [[1]], last seen [[2]]", "await one essay row",
      "expected: [[1]]\nlast seen: [[2]] \x1b[31mred\x1b[0m\n", NULL);
  add(&rs, ER_RES_ERROR, "no redis", 12, "redis: connection refused", NULL,
      NULL, NULL);
  add(&rs, ER_RES_SKIP, "later", 0, "tag slow not selected", NULL, NULL, NULL);

  unsetenv("NO_COLOR");
  setenv("TERM", "xterm-256color", 1);
  er_console_init(&c, f);
  T_OK(!c.color, "no colour when the output is not a terminal");
  console_all(&c, &rs);
  out = slurp(f);
  T_OK(out && strchr(out, '\x1b') == NULL, "no escape byte in the output");
  T_STREQ(out,
          "PASS  register batch (1.234s)\n"
          "FAIL  duplicate storm (20.003s)\n"
          "      file: scenarios/smoke/x.json\n"
          "      step: await one essay row\n"
          "      expected: [[1]]\n"
          "      last seen: [[2]] \\x1b[31mred\\x1b[0m\n"
          "ERROR no redis (12ms)\n"
          "      file: scenarios/smoke/x.json\n"
          "      redis: connection refused\n"
          "SKIP  later - tag slow not selected\n"
          "1 passed, 1 failed, 1 errors, 1 skipped in 12.3s\n",
          "console lines: status, name, duration; failure step and detail");
  free(out);
  fclose(f);

  /* colour forced on: the status word is coloured, the text is the same */
  f = tmpfile();
  c.out = f;
  c.color = true;
  console_all(&c, &rs);
  out = slurp(f);
  T_OK(out && strstr(out, "\x1b[31mFAIL\x1b[0m  duplicate storm (20.003s)\n") &&
           strstr(out, "\x1b[32mPASS\x1b[0m  register batch") &&
           strstr(out, "\\x1b[31mred"),
       "with colour: status words coloured, outside text still escaped");
  free(out);
  fclose(f);

  /* the decision on a real terminal */
  {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    FILE *tty = NULL;
    if (m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0)
      tty = fopen(ptsname(m), "w");
    T_OK(tty != NULL, "pseudo-terminal for the colour decision");
    if (tty) {
      unsetenv("NO_COLOR");
      setenv("TERM", "xterm", 1);
      er_console_init(&c, tty);
      T_OK(c.color, "terminal, NO_COLOR unset, TERM=xterm: colour");
      setenv("NO_COLOR", "", 1);
      er_console_init(&c, tty);
      T_OK(c.color, "NO_COLOR set but empty: colour (no-color.org)");
      setenv("NO_COLOR", "1", 1);
      er_console_init(&c, tty);
      T_OK(!c.color, "NO_COLOR=1: no colour");
      unsetenv("NO_COLOR");
      setenv("TERM", "dumb", 1);
      er_console_init(&c, tty);
      T_OK(!c.color, "TERM=dumb: no colour");
      fclose(tty);
    }
    if (m >= 0)
      close(m);
  }
  er_results_free(&rs);
}

static int write_for_schema(const char *hostile, const char *empty) {
  er_results_t rs;
  er_err_t err = {0};
  int rc;
  hostile_results(&rs);
  rc = er_junit_write(&rs, hostile, &err);
  T_OK(rc == 0, "wrote %s (%s)", hostile, err.msg);
  er_results_free(&rs);
  if (empty) {
    memset(&rs, 0, sizeof rs);
    rc = er_junit_write(&rs, empty, &err);
    T_OK(rc == 0, "wrote %s (%s)", empty, err.msg);
  }
  return rc;
}

int main(int argc, char **argv) {
  test_render();
  test_empty_and_defaults();
  test_cut();
  test_write();
  test_console();
  if (argc > 1)
    write_for_schema(argv[1], argc > 2 ? argv[2] : NULL);
  return t_done();
}
