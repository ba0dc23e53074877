/* test_env.c: the environment file: validation with file:line:col,
 * did-you-mean, duplicate services, relative paths, ports, vars. */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lang/env.h"
#include "tap.h"

#define DATA "tests/data/env/"

/* "line:col: message" of every diag, one per line. Caller frees. */
static char *diag_text(const er_diags_t *d) {
  er_buf_t b = ER_BUF_INIT(0);
  for (size_t i = 0; i < d->n; i++)
    er_buf_printf(&b, "%s:%d:%d: %s\n", d->items[i].file, d->items[i].line,
                  d->items[i].col, d->items[i].msg);
  return er_buf_steal(&b);
}

static int has_line(const char *all, const char *want) {
  const char *p = all;
  size_t n = strlen(want);
  while (p && *p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len == n && strncmp(p, want, n) == 0)
      return 1;
    p = nl ? nl + 1 : NULL;
  }
  return 0;
}

static int has_prefix_line(const char *all, const char *prefix) {
  const char *p = all;
  size_t n = strlen(prefix);
  while (p && *p) {
    if (strncmp(p, prefix, n) == 0)
      return 1;
    p = strchr(p, '\n');
    p = p ? p + 1 : NULL;
  }
  return 0;
}

#define WANT(all, line)                                                        \
  do {                                                                         \
    T_OK(has_line(all, line), "diag: %s", line);                               \
    if (!has_line(all, line))                                                  \
      printf("# got:\n%s", all);                                               \
  } while (0)

static void test_bad_file(void) {
  er_diags_t d = {0};
  er_env_t *e = er_env_load(DATA "bad.env.json", &d);
  char *all = diag_text(&d);
  const char *f = DATA "bad.env.json";
  char w[512];
  T_OK(e == NULL, "a bad environment file is refused");
  T_OK(d.errors >= 14, "every problem is reported (%zu errors)", d.errors);
#define AT(l, c, msg)                                                          \
  snprintf(w, sizeof w, "%s:%d:%d: %s", f, l, c, msg);                         \
  WANT(all, w)
  AT(2, 22, "port 'redis' is listed twice");
  AT(2, 31, "each element of 'ports' must be a string, not a number");
  AT(3, 22, "var name 'not ok' may hold only letters, digits, '_' and '-'");
  AT(4, 20, "'url' must be a string, not an integer");
  AT(5, 3, "unknown key 'servics' (did you mean 'services'?)");
  AT(8, 14, "duplicate service name 'db' (first used at line 7)");
  AT(8, 31,
     "'command' must not be empty: give the program and its "
     "arguments");
  AT(9, 36, "each element of 'command' must be a string, not a number");
  AT(9, 49, "'ready' takes only one of 'tcp', 'http' or 'command'");
  AT(10, 19, "unknown key 'cmd' in 'services[3]' (did you mean 'cwd'?)");
  AT(10, 5, "'services[3]' needs the key 'command'");
  AT(12, 41, "'tcp' must be host:port, not 'nohost'");
  AT(13, 50, "environment variable 'K' must be a string, not a number");
  AT(14, 31, "unterminated ${ (missing '}') (at character 1 of the string)");
#undef AT
  /* durations: the validator's wording, checked by position and subject */
  snprintf(w, sizeof w, "%s:11:53: 'stop_timeout'", f);
  T_OK(has_prefix_line(all, w), "stop_timeout '5 s' is not a duration");
  snprintf(w, sizeof w, "%s:12:26: 'within'", f);
  T_OK(has_prefix_line(all, w), "within 'soon' is not a duration");
  /* sorted by position */
  {
    int sorted = 1;
    for (size_t i = 1; i < d.n; i++)
      if (d.items[i].line < d.items[i - 1].line ||
          (d.items[i].line == d.items[i - 1].line &&
           d.items[i].col < d.items[i - 1].col))
        sorted = 0;
    T_OK(sorted, "problems are sorted by line and column");
  }
  free(all);
  er_diags_free(&d);
  er_env_free(e);
}

static void test_missing_and_syntax(void) {
  er_diags_t d = {0};
  er_env_t *e = er_env_load(DATA "no-such.env.json", &d);
  T_OK(e == NULL && d.errors == 1 && d.n == 1, "a missing file is an error");
  T_OK(d.n == 1 && strcmp(d.items[0].file, DATA "no-such.env.json") == 0 &&
           strstr(d.items[0].msg, "cannot open") &&
           !strstr(d.items[0].msg, "no-such"),
       "it names the file once: %s", d.n ? d.items[0].msg : "");
  er_diags_free(&d);
  e = er_env_load(DATA "syntax.env.json", &d);
  T_OK(e == NULL && d.n == 1 && d.items[0].line == 2 &&
           strstr(d.items[0].msg, "JSON syntax error"),
       "a JSON syntax error is reported with its line");
  er_diags_free(&d);
}

static void test_resolve(void) {
  er_diags_t d = {0};
  er_tmpl_t *t = er_tmpl_new();
  er_env_t *e;
  char root[PATH_MAX], want[PATH_MAX + 64], *rp;
  const json_t *j, *raw;
  int pr, ph;
  er_err_t err = {0};
  json_t *x;

  setenv("ER_TEST_SET", "yes", 1);
  unsetenv("ER_TEST_UNSET_MODE");
  e = er_env_load(DATA "ci/local.env.json", &d);
  T_OK(e != NULL && d.n == 0, "a good file under ci/ loads");
  if (!e) {
    er_diags_print(&d, stdout, false);
    goto out;
  }
  rp = realpath(DATA, root);
  T_OK(rp != NULL, "realpath");
  if (rp && strlen(root) > 1 && root[strlen(root) - 1] == '/')
    root[strlen(root) - 1] = '\0';
  T_STREQ(er_env_base_dir(e), root,
          "a file in ci/ resolves paths against the parent of ci/");
  pr = er_env_port(e, "redis");
  ph = er_env_port(e, "http");
  T_OK(pr > 0 && pr < 65536 && ph > 0 && ph < 65536 && pr != ph,
       "two distinct ports allocated (%d, %d)", pr, ph);
  T_OK(er_env_port(e, "nope") == -1, "no port for an unlisted name");
  {
    /* below the ephemeral range: a proxy or the embedded broker listening
     * on port 0 cannot take one before its service binds it */
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int lo = 0, hi = 0;
    if (f && fscanf(f, "%d %d", &lo, &hi) == 2 && lo >= 11000)
      T_OK(pr >= 10000 && pr < lo && ph >= 10000 && ph < lo,
           "the ports are below the ephemeral range %d-%d (%d, %d)", lo, hi, pr,
           ph);
    else
      T_OK(1, "# SKIP no ephemeral range to stay below");
    if (f)
      fclose(f);
  }
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)pr);
    T_OK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0,
         "the allocated port is free to bind");
    if (fd >= 0)
      close(fd);
  }
  T_OK(er_env_json(e) == NULL, "nothing resolved before er_env_resolve");
  er_tmpl_set(t, "kafka.bootstrap", json_string("127.0.0.1:9092"));
  T_OK(er_env_resolve(e, t, &d) == 0 && d.n == 0, "it resolves");
  j = er_env_json(e);
  raw = er_env_raw(e);
  T_OK(j != NULL, "resolved JSON");
  if (!j) {
    er_diags_print(&d, stdout, false);
    goto out;
  }
  snprintf(want, sizeof want, "http://127.0.0.1:%d", ph);
  T_STREQ(
      json_string_value(json_object_get(json_object_get(j, "vars"), "BASE")),
      want, "a var uses ${port.http}");
  snprintf(want, sizeof want, "http://127.0.0.1:%d/api", ph);
  T_STREQ(json_string_value(json_object_get(json_object_get(j, "vars"), "API")),
          want, "a var uses an earlier var");
  T_STREQ(json_string_value(json_object_get(json_object_get(j, "http"), "sut")),
          want, "a section uses a var through ${env.NAME}");
  T_STREQ(
      json_string_value(json_object_get(json_object_get(j, "vars"), "MODE")),
      "fast", "${env.X:-default} gives the default when X is unset");
  T_STREQ(json_string_value(
              json_object_get(json_object_get(j, "vars"), "FROM_ENV")),
          "yes", "${env.X:-default} gives the process environment's X");
  T_STREQ(
      json_string_value(json_object_get(json_object_get(j, "http"), "literal")),
      "${not.a.ref}", "$${ is a literal ${");
  snprintf(want, sizeof want, "redis://127.0.0.1:%d/0", pr);
  T_STREQ(
      json_string_value(json_object_get(json_object_get(j, "redis"), "url")),
      want, "redis.url resolved");
  T_OK(
      json_is_true(json_object_get(json_object_get(j, "redis"), "allow_flush")),
      "non-string values are kept");
  T_STREQ(json_string_value(
              json_object_get(json_object_get(j, "kafka"), "bootstrap")),
          "127.0.0.1:9092",
          "kafka is expanded with names put into t before resolution");
  T_STREQ(json_string_value(json_array_get(
              json_object_get(json_object_get(j, "kafka"), "topics"), 0)),
          "t-fast", "deep values are expanded");
  {
    const json_t *cmd = json_object_get(
        json_array_get(json_object_get(j, "services"), 0), "command");
    T_OK(json_integer_value(json_array_get(cmd, 2)) == pr,
         "${port.redis} alone is the port number");
  }
  T_STREQ(
      json_string_value(json_object_get(json_object_get(raw, "redis"), "url")),
      "redis://127.0.0.1:${port.redis}/0", "the raw JSON is untouched");
  x = er_tmpl_expand_str(t, "${env.API}|${port.redis}", &err);
  snprintf(want, sizeof want, "http://127.0.0.1:%d/api|%d", ph, pr);
  T_STREQ(x ? json_string_value(x) : err.msg, want,
          "t knows the vars and ports afterwards");
  json_decref(x);
  T_OK(er_env_resolve(e, t, &d) == -1 && d.errors == 1,
       "resolving twice is refused");
out:
  er_tmpl_set_env_vars(t, NULL);
  er_env_free(e);
  er_tmpl_free(t);
  er_diags_free(&d);
}

static void test_unresolved(void) {
  er_diags_t d = {0};
  er_tmpl_t *t = er_tmpl_new();
  er_env_t *e;
  unsetenv("LATE");
  e = er_env_load(DATA "unresolved.env.json", &d);
  T_OK(e != NULL && d.n == 0, "a file with unknown names loads");
  if (!e)
    goto out;
  T_OK(er_env_resolve(e, t, &d) == -1, "but does not resolve");
  T_OK(d.n == 2, "two problems (%zu)", d.n);
  if (d.n == 2) {
    T_OK(d.items[0].line == 3 && d.items[0].col == 14,
         "a var using a later var is an error at its position (%d:%d: %s)",
         d.items[0].line, d.items[0].col, d.items[0].msg);
    T_OK(d.items[1].line == 6 && d.items[1].col == 20,
         "an unknown name is an error at its position (%d:%d: %s)",
         d.items[1].line, d.items[1].col, d.items[1].msg);
  }
  T_OK(er_env_json(e) == NULL, "nothing resolved after errors");
out:
  er_tmpl_set_env_vars(t, NULL);
  er_env_free(e);
  er_tmpl_free(t);
  er_diags_free(&d);
}

static void test_paths(void) {
  er_diags_t d = {0};
  er_tmpl_t *t = er_tmpl_new();
  er_env_t *e = er_env_load(DATA "other/plain.env.json", &d);
  char want[PATH_MAX], cwd[PATH_MAX];
  T_OK(e != NULL, "a plain file loads");
  if (e && realpath(DATA "other", want))
    T_STREQ(er_env_base_dir(e), want,
            "a file outside ci/ resolves paths against its own folder");
  er_env_free(e);
  e = er_env_load(NULL, &d);
  T_OK(e != NULL && d.n == 0, "no file: the empty environment");
  if (e && getcwd(cwd, sizeof cwd)) {
    T_STREQ(er_env_base_dir(e), cwd, "the empty environment's base is cwd");
    T_OK(er_env_resolve(e, t, &d) == 0 && json_is_object(er_env_json(e)) &&
             json_object_size(er_env_json(e)) == 0,
         "it resolves to {}");
  }
  er_tmpl_set_env_vars(t, NULL);
  er_env_free(e);
  er_tmpl_free(t);
  er_diags_free(&d);
}

/* "fixtures": a folder relative like other paths, resolved absolute;
 * missing or templated: an error at its value */
static void test_fixtures(void) {
  char dir[] = "/tmp/er_envfx_XXXXXX", p[512], want[PATH_MAX + 16];
  er_diags_t d = {0};
  er_tmpl_t *t = er_tmpl_new();
  er_env_t *e;
  char *peek, *all;
  FILE *f;
  T_OK(mkdtemp(dir) != NULL, "mkdtemp");
  snprintf(p, sizeof p, "%s/fx", dir);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/a.env.json", dir);
  f = fopen(p, "w");
  fputs("{\"fixtures\": \"fx\"}", f);
  fclose(f);
  e = er_env_load(p, &d);
  T_OK(e && realpath(dir, want), "loads");
  strcat(want, "/fx");
  T_STREQ(e ? er_env_fixtures(e) : NULL, want, "resolved absolute");
  T_OK(e && er_env_resolve(e, t, &d) == 0 &&
           !strcmp(
               json_string_value(json_object_get(er_env_json(e), "fixtures")),
               want),
       "the resolved JSON holds it");
  peek = er_env_peek_fixtures(p);
  T_STREQ(peek, want, "peeked before loading, the same");
  free(peek);
  er_tmpl_set_env_vars(t, NULL);
  er_env_free(e);
  f = fopen(p, "w");
  fputs("{\n  \"fixtures\": \"nope\"\n}", f);
  fclose(f);
  e = er_env_load(p, &d);
  all = diag_text(&d);
  T_OK(e == NULL && strstr(all, "a.env.json:2:15: fixtures folder 'nope' not "
                                "found (relative paths are relative to "),
       "a missing folder: an error at its value");
  free(all);
  er_diags_free(&d);
  f = fopen(p, "w");
  fputs("{\"fixtures\": \"${env.X}\"}", f);
  fclose(f);
  e = er_env_load(p, &d);
  all = diag_text(&d);
  T_OK(e == NULL && strstr(all, "'fixtures' is a folder name, not a template"),
       "a template: refused");
  free(all);
  er_diags_free(&d);
  er_tmpl_free(t);
  unlink(p);
  snprintf(p, sizeof p, "%s/fx", dir);
  rmdir(p);
  rmdir(dir);
}

int main(void) {
  const char *root = getenv("ER_ROOT");
  if (root && chdir(root) != 0)
    return 1;
  test_bad_file();
  test_missing_and_syntax();
  test_resolve();
  test_unresolved();
  test_paths();
  test_fixtures();
  return t_done();
}
