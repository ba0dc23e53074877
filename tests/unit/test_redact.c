/* test_redact.c: the process-wide secret list (util.h), finding URL and
 * DSN passwords (redact.h), the scrubbing stream, and the report sinks
 * (console, JUnit) scrubbing what they write. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/redact.h"
#include "base/util.h"
#include "report/report.h"
#include "tap.h"

static void redacts(const char *in, const char *want, size_t hits) {
  char buf[512];
  size_t n;
  snprintf(buf, sizeof buf, "%s", in);
  n = er_secret_redact(buf);
  T_STREQ(buf, want, "redact \"%s\"", in);
  T_OK(n == hits, "redact \"%s\": %zu hits (got %zu)", in, hits, n);
}

static void secret_list(void) {
  er_secrets_clear();
  redacts("nothing recorded", "nothing recorded", 0);
  T_OK(er_secret_add(NULL) == 0 && er_secret_add("") == 0 &&
           er_secret_add("ab") == 0,
       "NULL, empty and short values are accepted (and ignored)");
  redacts("ab ab", "ab ab", 0);
  T_OK(er_secret_add("hunter2") == 0, "add hunter2");
  T_OK(er_secret_add("hunter2") == 0, "add hunter2 twice");
  redacts("pw=hunter2, again hunter2.", "pw=***, again ***.", 2);
  redacts("hunter", "hunter", 0);
  /* a longer secret containing a shorter one is hidden whole, whatever
   * the order they were recorded in */
  T_OK(er_secret_add("abc") == 0 && er_secret_add("xxabcyy") == 0,
       "add abc, then xxabcyy");
  redacts("[xxabcyy] [abc]", "[***] [***]", 2);
  /* a secret equal to the replacement terminates */
  T_OK(er_secret_add("***") == 0, "add ***");
  redacts("a *** b", "a *** b", 1);
  redacts("", "", 0);
  T_OK(er_secret_redact(NULL) == 0, "NULL text");
  er_secrets_clear();
  redacts("hunter2 abc", "hunter2 abc", 0);
}

/* finds exactly the passwords in want (NULL-terminated), in any order */
static void finds(const char *s, const char *const *want) {
  char *got[16];
  size_t n = er_redact_find_passwords(s, got, 16), nw = 0;
  while (want[nw])
    nw++;
  T_OK(n == nw, "\"%s\": %zu password(s) (got %zu)", s, nw, n);
  for (size_t i = 0; i < nw; i++) {
    bool seen = false;
    for (size_t j = 0; j < n; j++)
      seen = seen || strcmp(got[j], want[i]) == 0;
    T_OK(seen, "\"%s\": finds \"%s\"", s, want[i]);
  }
  for (size_t j = 0; j < n; j++) {
    if (n != nw)
      printf("#   found: %s\n", got[j]);
    free(got[j]);
  }
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

static void passwords(void) {
  finds("postgresql://app:s3cret@127.0.0.1:5432/db", W("s3cret"));
  finds("redis://:r3dis@127.0.0.1:6379/0", W("r3dis"));
  finds("rediss://default:pw%40x%2Fy@host/0", W("pw%40x%2Fy", "pw@x/y"));
  finds("see http://u:p1@h:1/x and amqp://v:p2@h2 too", W("p1", "p2"));
  finds("http://user@host/", NONE);
  finds("http://host/path?mail=a:b@c", NONE); /* not in the authority */
  finds("://u:p@h", NONE);                    /* no scheme */
  finds("http://u:@host/", NONE);             /* empty password */
  finds("host=127.0.0.1 port=1 password=kv-pw dbname=x", W("kv-pw"));
  finds("password = 'a b\\'c' user=u", W("a b'c", "a b\\'c"));
  finds("user=u password=x\\ y", W("x y", "x\\ y"));
  finds("nopassword=zzz mypassword=yyy", NONE);
  finds("the password is wrong", NONE);
  finds("postgresql:///db?host=/tmp&password=q%21q&sslmode=disable",
        W("q%21q", "q!q"));
  finds("", NONE);
  T_OK(er_redact_find_passwords(NULL, NULL, 0) == 0, "NULL text");

  er_secrets_clear();
  T_OK(er_secret_add_passwords("dsn host=h password=pgpw1 and "
                               "redis://:rdpw2@h/0") == 0,
       "er_secret_add_passwords");
  redacts("FATAL: password authentication for pgpw1; AUTH rdpw2",
          "FATAL: password authentication for ***; AUTH ***", 2);
  er_secrets_clear();
}

static void names(void) {
  T_OK(er_redact_name_is_secret("sasl.password"), "sasl.password");
  T_OK(er_redact_name_is_secret("SASL.PASSWORD"), "case-insensitive");
  T_OK(er_redact_name_is_secret("ssl.key.pem"), "ssl.key.pem");
  T_OK(er_redact_name_is_secret("sasl.oauthbearer.config"),
       "sasl.oauthbearer.config");
  T_OK(er_redact_name_is_secret("PGPASSWORD"), "PGPASSWORD");
  T_OK(er_redact_name_is_secret("API_TOKEN"), "API_TOKEN");
  T_OK(!er_redact_name_is_secret("bootstrap.servers"), "not bootstrap");
  T_OK(!er_redact_name_is_secret("sasl.username"), "not sasl.username");
  T_OK(!er_redact_name_is_secret(NULL), "not NULL");
}

static void from_env(void) {
  json_error_t je;
  json_t *env = json_loads(
      "{\"vars\": {\"DB\": \"postgresql://u:envpw1@h/db\", \"PLAIN\": "
      "\"visible\"},"
      " \"kafka\": {\"bootstrap\": \"h:9092\", \"config\": "
      "{\"sasl.username\": \"kuser\", \"sasl.password\": \"kpw22\","
      " \"ssl.key.password\": 12345}},"
      " \"services\": [{\"name\": \"s\", \"command\": [\"x\", "
      "\"--url=redis://:svcpw3@h\"], \"env\": {\"PGPASSWORD\": \"svpw4\","
      " \"MODE\": \"fast\"}}]}",
      0, &je);
  char text[] = "envpw1 visible kuser kpw22 12345 svcpw3 svpw4 fast";
  T_OK(env != NULL, "environment JSON parses");
  er_secrets_clear();
  T_OK(er_secrets_from_env(env) == 0, "er_secrets_from_env");
  er_secret_redact(text);
  T_STREQ(text, "*** visible kuser *** *** *** *** fast",
          "URL passwords, secret kafka.config and service env values");
  json_decref(env);
  er_secrets_clear();
}

static char *read_all(FILE *f) {
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

static void stream(void) {
  FILE *under = tmpfile(), *f;
  char *out;
  T_OK(under != NULL, "tmpfile");
  if (!under)
    return;
  er_secrets_clear();
  er_secret_add("CANARY-123");
  f = er_redact_stream(under);
  T_OK(f != NULL, "er_redact_stream");
  if (!f) {
    fclose(under);
    return;
  }
  /* a secret split over several writes and flushes */
  fputs("one CAN", f);
  fflush(f);
  fputs("ARY-1", f);
  fflush(f);
  fprintf(f, "23 two\r%s three\n", "CANARY-123");
  fputs("tail CANARY-123", f); /* no newline: written at fclose */
  fclose(f);
  out = read_all(under);
  T_STREQ(out, "one *** two\r*** three\ntail ***",
          "the stream scrubs whole lines");
  free(out);
  fclose(under);
  er_secrets_clear();
}

static void sinks(void) {
  er_results_t rs;
  er_result_t r;
  char *xml, *con = NULL;
  size_t conlen = 0;
  FILE *mf;
  er_console_t c;

  memset(&rs, 0, sizeof rs);
  memset(&r, 0, sizeof r);
  er_secrets_clear();
  er_secret_add("CANARY-xyz");
  r.classname = "c";
  r.name = "scenario CANARY-xyz";
  r.file = "f.json";
  r.status = ER_RES_FAIL;
  r.message = "step 's': last seen CANARY-xyz";
  r.failed_step = "s";
  r.detail = "expected 1\nlast seen {\"auth\": \"Bearer CANARY-xyz\"}";
  r.log = "[step] GET http://u:CANARY-xyz@h/\n";

  mf = open_memstream(&con, &conlen);
  er_console_init(&c, mf);
  er_console_result(&c, &r);
  fclose(mf);
  T_OK(con && !strstr(con, "CANARY-xyz"), "console: no secret");
  T_OK(con && strstr(con, "Bearer ***"), "console: *** in its place");
  free(con);

  T_OK(er_results_add(&rs, &r) == 0, "er_results_add");
  T_OK(rs.n == 1 && !strstr(rs.v[0].detail, "CANARY-xyz") &&
           !strstr(rs.v[0].log, "CANARY-xyz"),
       "the stored result is scrubbed");
  /* a secret learnt after the result was stored is scrubbed on output */
  free(rs.v[0].log);
  rs.v[0].log = strdup("late: LATE-SECRET-9");
  er_secret_add("LATE-SECRET-9");
  xml = er_junit_render(&rs);
  T_OK(xml != NULL, "er_junit_render");
  T_OK(xml && !strstr(xml, "CANARY-xyz") && !strstr(xml, "LATE-SECRET-9"),
       "JUnit: no secret");
  T_OK(xml && strstr(xml, "Bearer ***") && strstr(xml, "late: ***"),
       "JUnit: *** in its place");
  free(xml);
  er_results_free(&rs);
  er_secrets_clear();
}

static void header_names(void) {
  static const char *const secret[] = {
      "Authorization", "proxy-authorization", "Cookie",      "Set-Cookie",
      "X-Api-Key",     "x-api-key",           "Api-Key",     "X-Upload-Token",
      "X-CSRF-TOKEN",  "X-Client-Secret",     "X-Auth-User", "x-auth-whatever",
  };
  static const char *const plain[] = {
      "Content-Type", "Accept",      "X-Request-Id",
      "Tokens-Left",  "X-Authority", "X-Tenant-Key",
  };
  json_t *env;
  er_redact_secret_headers_clear();
  for (size_t i = 0; i < sizeof secret / sizeof *secret; i++)
    T_OK(er_redact_header_is_secret(secret[i]), "header %s is secret",
         secret[i]);
  for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
    T_OK(!er_redact_header_is_secret(plain[i]), "header %s is not secret",
         plain[i]);
  env = json_pack("{s:[s,s]}", "secret_headers", "X-Tenant-*", "X-Shop-Pin");
  T_OK(env && er_secrets_from_env(env) == 0, "secret_headers of an env");
  T_OK(er_redact_header_is_secret("x-tenant-key") &&
           er_redact_header_is_secret("X-Shop-Pin"),
       "secret_headers names and globs are secret (any case)");
  T_OK(!er_redact_header_is_secret("X-Shop-Pins"), "... and only those");
  json_decref(env);
  er_redact_secret_headers_clear();
  T_OK(!er_redact_header_is_secret("X-Tenant-Key"), "cleared");
  er_secrets_clear();
}

/* er_utf8_safe_write / er_utf8_cut (util.h): what the console prints */
static void safe_text(const char *in, size_t n, const char *want,
                      const char *what) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (f) {
    er_utf8_safe_write(f, in, n);
    fclose(f);
  }
  T_STREQ(out, want, "safe text: %s", what);
  free(out);
}

static void utf8_output(void) {
  safe_text("plain \xc3\xa9t\xc3\xa9 \xe2\x82\xac", 15,
            "plain \xc3\xa9t\xc3\xa9 \xe2\x82\xac", "valid UTF-8 kept");
  safe_text("a\x9b"
            "31mb",
            6, "a\\x9b31mb", "a lone 0x9b (8-bit CSI)");
  safe_text("a\xc2\x9b"
            "31m",
            6, "a\\u009b31m", "U+009B (C1 CSI)");
  safe_text("\x1b[2J\tx\x7f", 7, "\\x1b[2J\tx\\x7f", "C0, tab, DEL");
  safe_text("\xff\xfe", 2, "\\xff\\xfe", "bytes never in UTF-8");
  safe_text("\xe2\x82", 2, "\\xe2\\x82", "a truncated character");
  safe_text("\xed\xa0\x80", 3, "\\xed\\xa0\\x80", "a surrogate");
  safe_text("\xc0\xaf", 2, "\\xc0\\xaf", "an overlong form");
  T_OK(er_utf8_cut("ab\xe2\x82\xac", 5, 4) == 2,
       "cut before a 3-byte character that would be split");
  T_OK(er_utf8_cut("ab\xe2\x82\xac", 5, 5) == 5, "no cut when it fits");
  T_OK(er_utf8_cut("\xc3\xa9\xc3\xa9", 4, 3) == 2, "cut between characters");
  T_OK(er_utf8_cut("a\xff"
                   "b",
                   3, 2) == 2,
       "an invalid byte counts as one");
}

int main(void) {
  header_names();
  utf8_output();
  secret_list();
  passwords();
  names();
  from_env();
  stream();
  sinks();
  return t_done();
}
