/* test_redis_url.c: Redis URL parsing and password redaction. */
#include <string.h>

#include "adapters/redis.h"
#include "tap.h"

static void parses(const char *url, const char *host, int port,
                   const char *path, const char *user, const char *pw, int db) {
  er_redis_url_t u;
  er_err_t err = {0};
  int rc = er_redis_url_parse(url, &u, &err);
  T_OK(rc == 0, "parses %s", url);
  if (rc != 0) {
    printf("#   error: %s\n", err.msg);
    return;
  }
  if (host)
    T_STREQ(u.host, host, "%s: host", url);
  else
    T_OK(u.host == NULL, "%s: no host", url);
  T_OK(u.port == port, "%s: port %d (got %d)", url, port, u.port);
  if (path)
    T_STREQ(u.path, path, "%s: path", url);
  else
    T_OK(u.path == NULL, "%s: no path", url);
  if (user)
    T_STREQ(u.user, user, "%s: user", url);
  else
    T_OK(u.user == NULL, "%s: no user", url);
  if (pw)
    T_STREQ(u.password, pw, "%s: password", url);
  else
    T_OK(u.password == NULL, "%s: no password", url);
  T_OK(u.db == db, "%s: db %d (got %d)", url, db, u.db);
  if (pw)
    T_OK(strstr(u.redacted, pw) == NULL && strstr(u.redacted, "***"),
         "%s: redacted form %s hides the password", url, u.redacted);
  er_redis_url_free(&u);
}

/* A bad URL fails with a message containing want, and never the secret. */
static void refuses(const char *url, const char *want, const char *secret) {
  er_redis_url_t u;
  er_err_t err = {0};
  int rc = er_redis_url_parse(url, &u, &err);
  T_OK(rc == -1 && err.code == ER_E_INPUT, "refuses %s", url);
  T_OK(strstr(err.msg, want) != NULL, "%s: message has \"%s\"", url, want);
  if (!strstr(err.msg, want))
    printf("#   message: %s\n", err.msg);
  if (secret)
    T_OK(strstr(err.msg, secret) == NULL && strstr(err.msg, "***"),
         "%s: message hides the password: %s", url, err.msg);
  T_OK(u.host == NULL && u.redacted == NULL, "%s: nothing left to free", url);
}

static void redacts(const char *url, const char *want) {
  char out[256];
  er_redis_redact(url, out, sizeof out);
  T_STREQ(out, want, "redact %s", url);
}

int main(void) {
  parses("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, NULL, NULL, NULL, 0);
  parses("redis://localhost", "localhost", 6379, NULL, NULL, NULL, 0);
  parses("redis://localhost/", "localhost", 6379, NULL, NULL, NULL, 0);
  parses("redis://h:7000/15", "h", 7000, NULL, NULL, NULL, 15);
  parses("redis://:s3cret@h:1/2", "h", 1, NULL, NULL, "s3cret", 2);
  parses("redis://alice:s3cret@h:6380", "h", 6380, NULL, "alice", "s3cret", 0);
  /* '@' and ':' in a password, raw or %-encoded */
  parses("redis://:p@ss:w@h:6379/1", "h", 6379, NULL, NULL, "p@ss:w", 1);
  parses("redis://bob:p%40ss%2Fx@h:6379", "h", 6379, NULL, "bob", "p@ss/x", 0);
  parses("redis://[::1]:6390/3", "::1", 6390, NULL, NULL, NULL, 3);
  parses("unix:///tmp/redis.sock", NULL, 0, "/tmp/redis.sock", NULL, NULL, 0);
  parses("unix:///tmp/redis.sock?db=4", NULL, 0, "/tmp/redis.sock", NULL, NULL,
         4);
  parses("unix://:pw1@/tmp/r.sock", NULL, 0, "/tmp/r.sock", NULL, "pw1", 0);

  /* parsed by libcurl's URL API: what the hand parser got wrong or refused */
  parses("redis://u%20x:p%40ss@h:6379/2", "h", 6379, NULL, "u x", "p@ss", 2);
  parses("redis://:a%20b%3Ac@h", "h", 6379, NULL, NULL, "a b:c", 0);
  parses("redis://:p%25w@h/%31", "h", 6379, NULL, NULL, "p%w", 1);
  parses("redis://h:6380?db=5", "h", 6380, NULL, NULL, NULL, 5);
  parses("redis://h/?db=7", "h", 6379, NULL, NULL, NULL, 7);
  parses("REDIS://H:1/2", "H", 1, NULL, NULL, NULL, 2);
  parses("redis://[fe80::1%25eth0]:1", "fe80::1%eth0", 1, NULL, NULL, NULL, 0);
  parses("unix:///tmp/my%20dir/r.sock?db=2", NULL, 0, "/tmp/my dir/r.sock",
         NULL, NULL, 2);
  parses("unix://u:p%40w@/tmp/r.sock", NULL, 0, "/tmp/r.sock", "u", "p@w", 0);
  refuses("redis://h:1/0?db=1", "given twice", NULL);
  refuses("redis://h:1/?db=x", "db=<number>", NULL);
  refuses("redis://h:1/?db=1&x=2", "query parameter \"x\"", NULL);
  refuses("redis://:p%40ss@h:1/0?timeout=1", "query", "p@ss");
  refuses("redis://:p%40ss@h:x", "port", "p@ss");
  refuses("redis://:p%40ss@h:1/one", "database", "p%40ss");
  refuses("redis://h:1/0/1", "database", NULL);
  refuses("redis://h:1/-1", "database", NULL);
  refuses("redis://h:1/0#x", "fragment", NULL);
  refuses("redis://:s%ZZ@h:1", "%-escape", NULL);
  refuses("unix://localhost:1/tmp/s", "absolute", NULL);
  refuses("unix://", "absolute", NULL);

  refuses("127.0.0.1:6379", "expected redis://", NULL);
  refuses("http://h:1", "expected redis://", NULL);
  refuses("rediss://h:1", "TLS", NULL);
  refuses("redis://h:0", "port", NULL);
  refuses("redis://h:65536", "port", NULL);
  refuses("redis://h:abc/0", "port", NULL);
  refuses("redis://:topsecret@h:99999", "port", "topsecret");
  refuses("redis://u:topsecret@h/x", "database", "topsecret");
  refuses("redis://:topsecret@:6379", "missing host", "topsecret");
  refuses("redis://h:1/0?timeout=1", "query", NULL);
  refuses("redis://h:1/0 x", "database", NULL);
  refuses("redis://[::1:1", "IPv6", NULL);
  refuses("redis://justuser@h:1", "needs a password", NULL);
  refuses("redis://:bad%4@h:1", "%-escape", NULL);
  refuses("redis://:nul%00@h:1", "%-escape", NULL);
  refuses("unix://relative.sock", "absolute", NULL);
  refuses("unix:///tmp/s?x=1", "db=", NULL);

  redacts("redis://h:1/0", "redis://h:1/0");
  redacts("redis://:pw@h:1/0", "redis://:***@h:1/0");
  redacts("redis://alice:pw@h:1", "redis://alice:***@h:1");
  /* a password or token in the query is hidden too (redact.h names),
   * other parameters are kept */
  redacts("redis://h:1/?password=hunter2&db=1",
          "redis://h:1/?password=***&db=1");
  redacts("redis://u:pw@h:1/?db=1&token=x#f",
          "redis://u:***@h:1/?db=1&token=***#f");
  redacts("unix:///tmp/r.sock?db=2", "unix:///tmp/r.sock?db=2");
  redacts("redis://:p@ss@h:1", "redis://:***@h:1");
  redacts("redis://onlysecret@h:1", "redis://***@h:1");
  redacts("secret@h:1", "***@h:1");
  redacts("unix://:pw@/tmp/s", "unix://:***@/tmp/s");
  {
    char tiny[8];
    er_redis_redact("redis://:pw@host:1", tiny, sizeof tiny);
    T_STREQ(tiny, "redis:/", "redaction is cut to the buffer");
  }

  /* er_redis_new: a handle without I/O; a bad URL is refused */
  {
    er_err_t err = {0};
    er_redis_t *r = er_redis_new("redis://:pw@127.0.0.1:1/0", 0, &err);
    T_OK(r != NULL, "er_redis_new makes a handle without connecting");
    T_OK(r && !er_redis_connected(r), "not connected before a command");
    T_STREQ(r ? er_redis_redacted(r) : NULL, "redis://:***@127.0.0.1:1/0",
            "handle shows the redacted URL");
    er_redis_free(r);
    r = er_redis_new("redis://:pw@h:x", 0, &err);
    T_OK(r == NULL && strstr(err.msg, "pw") == NULL,
         "er_redis_new refuses a bad URL without showing the password: %s",
         err.msg);
  }
  return t_done();
}
