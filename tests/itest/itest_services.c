/* itest_services.c: services started and stopped for real.
 * Run by tests/integration/services.sh (needs redis-server, the
 * PostgreSQL server binaries, pg_isready, python3, sh, sleep).
 *
 * Proves: a real redis-server and a throwaway Postgres start, answer and
 * leave nothing behind (no process, no zombie, no temp dir); readiness
 * fails at once when a service exits and at its deadline when it never
 * gets ready; stop escalates to SIGKILL for the whole group; services die
 * with a SIGKILLed eventrig. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "env.h"
#include "services.h"
#include "tap.h"

static char g_tmp[PATH_MAX];
static char g_logs[PATH_MAX + 16];

/* ---- process inspection -------------------------------------------------- */

typedef struct pinfo {
  int pid, ppid, pgrp;
  char state;
} pinfo_t;

/* Every process of the system (up to max). */
static size_t list_procs(pinfo_t *out, size_t max) {
  DIR *d = opendir("/proc");
  struct dirent *de;
  size_t n = 0;
  while (d && (de = readdir(d)) && n < max) {
    char path[300], buf[1024], *rp;
    FILE *f;
    size_t len;
    if (!isdigit((unsigned char)de->d_name[0]))
      continue;
    snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
    f = fopen(path, "r");
    if (!f)
      continue;
    len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    rp = strrchr(buf, ')');
    if (!rp || sscanf(rp + 2, "%c %d %d", &out[n].state, &out[n].ppid,
                      &out[n].pgrp) != 3)
      continue;
    out[n].pid = atoi(de->d_name);
    n++;
  }
  if (d)
    closedir(d);
  return n;
}

static pinfo_t g_procs[65536];

/* Processes (zombies included) in process group pgid. */
static int group_members(pid_t pgid) {
  size_t n = list_procs(g_procs, 65536);
  int c = 0;
  for (size_t i = 0; i < n; i++)
    if (g_procs[i].pgrp == pgid)
      c++;
  return c;
}

/* Processes whose parent chain leads to this one; prints them. */
static int my_descendants(void) {
  size_t n = list_procs(g_procs, 65536);
  int me = getpid(), c = 0;
  for (size_t i = 0; i < n; i++) {
    int p = g_procs[i].ppid;
    for (int depth = 0; depth < 64 && p > 1; depth++) {
      size_t j;
      if (p == me) {
        printf("# descendant left: pid %d (ppid %d, pgrp %d, state %c)\n",
               g_procs[i].pid, g_procs[i].ppid, g_procs[i].pgrp,
               g_procs[i].state);
        c++;
        break;
      }
      for (j = 0; j < n && g_procs[j].pid != p; j++)
        ;
      if (j == n)
        break;
      p = g_procs[j].ppid;
    }
  }
  return c;
}

static bool group_gone(pid_t pgid) {
  return kill(-pgid, 0) != 0 && errno == ESRCH && group_members(pgid) == 0;
}

/* ---- helpers ---------------------------------------------------------------
 */

static er_services_t *mk(const char *json, er_err_t *err) {
  json_error_t je;
  json_t *spec = json_loads(json, 0, &je);
  er_services_t *s;
  if (!spec) {
    printf("# bad test JSON: %s\n", je.text);
    return NULL;
  }
  s = er_services_new(spec, g_tmp, g_logs, err);
  json_decref(spec);
  return s;
}

static int free_port(void) {
  er_err_t err = {0};
  return er_free_port(&err);
}

static char *read_small(const char *path) {
  er_err_t err = {0};
  return er_read_file(path, 65536, NULL, &err);
}

/* The Postgres data folder's parent, from the postmaster's command line. */
static char *pg_tmpdir(pid_t pgid) {
  size_t n = list_procs(g_procs, 65536);
  for (size_t i = 0; i < n; i++) {
    char path[64], buf[4096];
    FILE *f;
    size_t len;
    if (g_procs[i].pgrp != pgid)
      continue;
    snprintf(path, sizeof path, "/proc/%d/cmdline", g_procs[i].pid);
    f = fopen(path, "r");
    if (!f)
      continue;
    len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    for (size_t o = 0; o < len; o += strlen(buf + o) + 1) {
      if (strcmp(buf + o, "-D") == 0 && o + 3 < len &&
          strstr(buf + o + 3, "/postgres") == NULL &&
          er_str_has_suffix(buf + o + 3, "/data")) {
        char *d = er_strdup(buf + o + 3);
        *strrchr(d, '/') = '\0';
        return d;
      }
    }
  }
  return NULL;
}

/* ---- tests ------------------------------------------------------------------
 */

static void test_redis_pg(void) {
  er_diags_t d = {0};
  er_tmpl_t *t = er_tmpl_new();
  er_env_t *e = er_env_load("tests/data/env/itest-services.env.json", &d);
  er_services_t *s = NULL;
  er_err_t err = {0};
  pid_t rpid = -1, ppid = -1;
  char *pgdir = NULL;
  int rc;

  T_OK(e && er_env_resolve(e, t, &d) == 0, "environment loads and resolves");
  if (!e || !er_env_json(e)) {
    er_diags_print(&d, stdout, false);
    goto out;
  }
  s = er_services_new(json_object_get(er_env_json(e), "services"),
                      er_env_base_dir(e), g_logs, &err);
  T_OK(s != NULL, "services from the environment: %s", err.msg);
  if (!s)
    goto out;
  rc = er_services_start(s, &err);
  T_OK(rc == 0, "redis-server and Postgres start and get ready: %s", err.msg);
  rpid = er_services_pid(s, "redis");
  ppid = er_services_pid(s, "pg");
  T_OK(rpid > 0 && ppid > 0 && getpgid(rpid) == rpid && getpgid(ppid) == ppid,
       "each service leads its own process group");
  if (rc == 0) {
    struct timeval tv = {5, 0};
    redisContext *rc2 =
        redisConnectWithTimeout("127.0.0.1", er_env_port(e, "redis"), tv);
    redisReply *rep = rc2 && !rc2->err ? redisCommand(rc2, "PING") : NULL;
    char dsn[256];
    PGconn *pg;
    PGresult *res = NULL;
    T_OK(rep && rep->type == REDIS_REPLY_STATUS &&
             strcmp(rep->str, "PONG") == 0,
         "redis answers PING with PONG");
    if (rep)
      freeReplyObject(rep);
    if (rc2)
      redisFree(rc2);
    snprintf(dsn, sizeof dsn,
             "postgresql://postgres@127.0.0.1:%d/postgres?connect_timeout=5",
             er_env_port(e, "pg"));
    pg = PQconnectdb(dsn);
    if (PQstatus(pg) == CONNECTION_OK)
      res = PQexec(pg, "SELECT 1");
    T_OK(res && PQresultStatus(res) == PGRES_TUPLES_OK &&
             strcmp(PQgetvalue(res, 0, 0), "1") == 0,
         "postgres answers SELECT 1: %s", PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
    pgdir = pg_tmpdir(ppid);
    T_OK(pgdir && access(pgdir, F_OK) == 0, "postgres runs in its temp dir %s",
         pgdir ? pgdir : "(none)");
  }
  {
    int64_t t0 = er_now_ms();
    er_services_stop(s);
    printf("# stopping redis and postgres took %lldms\n",
           (long long)(er_now_ms() - t0));
  }
  T_OK(rpid > 0 && group_gone(rpid), "no process of redis remains");
  T_OK(ppid > 0 && group_gone(ppid),
       "no process of postgres remains (zombies included)");
  T_OK(pgdir && access(pgdir, F_OK) != 0 && errno == ENOENT,
       "the Postgres temp dir is gone");
  if (pgdir && access(pgdir, F_OK) == 0) {
    char *tail = er_services_log_tail(s, "pg", 20);
    printf("# pg log:\n%s\n", tail ? tail : "");
    free(tail);
  }
  T_OK(my_descendants() == 0, "no descendant of the test remains");
  er_services_stop(s);
  T_OK(1, "stop twice is harmless");
out:
  free(pgdir);
  er_services_free(s);
  er_tmpl_set_env_vars(t, NULL);
  er_env_free(e);
  er_tmpl_free(t);
  er_diags_free(&d);
}

static void test_exit_at_once(void) {
  char json[1024], want[256], *tail;
  er_err_t err = {0};
  er_services_t *s;
  int port = free_port(), rc;
  int64_t t0, took;
  snprintf(json, sizeof json,
           "[{\"name\": \"boom\", \"command\": [\"sh\", \"-c\", \"echo "
           "starting; echo boom >&2; exit 7\"], \"ready\": {\"tcp\": "
           "\"127.0.0.1:%d\", \"within\": \"20s\"}}]",
           port);
  s = mk(json, &err);
  T_OK(s != NULL, "boom service: %s", err.msg);
  if (!s)
    return;
  t0 = er_now_ms();
  rc = er_services_start(s, &err);
  took = er_now_ms() - t0;
  T_OK(rc == -1 && err.code == ER_E_ENV, "a service that exits fails start");
  T_OK(took < 2000, "at once, not at its 20s deadline (%lldms)",
       (long long)took);
  T_OK(strstr(err.msg, "service 'boom' exited with status 7") != NULL,
       "the error names the service and its exit status");
  snprintf(want, sizeof want, "(awaited tcp 127.0.0.1:%d within 20s)", port);
  T_OK(strstr(err.msg, want) != NULL, "and what was awaited, for how long");
  T_OK(strstr(err.msg, "last lines of ") &&
           er_str_has_suffix(err.msg, ":\nstarting\nboom"),
       "and the last lines of its log, stdout and stderr");
  printf("# %s\n", err.msg);
  tail = er_services_log_tail(s, "boom", 1);
  T_STREQ(tail, "boom", "er_services_log_tail gives the last line");
  free(tail);
  tail = er_services_log_tail(s, "nope", 1);
  T_OK(tail == NULL, "no tail for an unknown service");
  er_services_stop(s);
  er_services_free(s);
  T_OK(my_descendants() == 0, "nothing left after a failed start");
}

static void test_never_ready(void) {
  char json[1024], want[256];
  er_err_t err = {0};
  er_services_t *s;
  int port = free_port(), rc;
  int64_t t0, took;
  pid_t pid;
  snprintf(json, sizeof json,
           "[{\"name\": \"first\", \"command\": [\"sleep\", \"1000\"]},"
           " {\"name\": \"never\", \"command\": [\"sleep\", \"1000\"],"
           "  \"ready\": {\"tcp\": \"127.0.0.1:%d\", \"within\": \"1s\"}},"
           " {\"name\": \"third\", \"command\": [\"sleep\", \"1000\"]}]",
           port);
  s = mk(json, &err);
  if (!s) {
    T_OK(0, "never service: %s", err.msg);
    return;
  }
  t0 = er_now_ms();
  rc = er_services_start(s, &err);
  took = er_now_ms() - t0;
  T_OK(rc == -1 && err.code == ER_E_ENV, "a service never ready fails start");
  T_OK(took >= 1000 && took < 1500, "at its 1s deadline, not later (%lldms)",
       (long long)took);
  snprintf(want, sizeof want,
           "service 'never' was not ready within 1s: awaited tcp "
           "127.0.0.1:%d (last attempt: Connection refused)",
           port);
  T_OK(strstr(err.msg, want) != NULL, "the error says what and how long");
  printf("# %s\n", err.msg);
  T_OK(er_services_pid(s, "third") == -1,
       "later services are not started after a failure");
  pid = er_services_pid(s, "never");
  T_OK(pid > 0 && kill(pid, 0) == 0, "started services keep running");
  t0 = er_now_ms();
  er_services_stop(s);
  took = er_now_ms() - t0;
  T_OK(pid > 0 && group_gone(pid) && group_gone(er_services_pid(s, "first")),
       "stop after a partial start stops them");
  T_OK(took < 1000, "services that obey SIGTERM stop at once (%lldms)",
       (long long)took);
  er_services_free(s);
  T_OK(my_descendants() == 0, "nothing left");
}

static void test_ignores_term(void) {
  char json[1024], dirp[PATH_MAX + 16];
  er_err_t err = {0};
  er_services_t *s;
  int64_t t0, took;
  pid_t pid;
  snprintf(json, sizeof json,
           "[{\"name\": \"stubborn\", \"cwd\": \"stubborn\","
           "  \"command\": [\"sh\", \"-c\", \"trap '' TERM; touch "
           "ready.flag; sleep 1000\"],"
           "  \"ready\": {\"command\": [\"test\", \"-e\", \"ready.flag\"],"
           "             \"within\": \"10s\"},"
           "  \"stop_timeout\": \"700ms\"}]");
  snprintf(dirp, sizeof dirp, "%s/stubborn", g_tmp);
  mkdir(dirp, 0755);
  s = mk(json, &err);
  if (!s) {
    T_OK(0, "stubborn service: %s", err.msg);
    return;
  }
  T_OK(er_services_start(s, &err) == 0,
       "ready by command, in its relative cwd: %s", err.msg);
  pid = er_services_pid(s, "stubborn");
  kill(-pid, SIGTERM);
  er_sleep_ms(100);
  T_OK(kill(pid, 0) == 0, "it does ignore SIGTERM");
  t0 = er_now_ms();
  er_services_stop(s);
  took = er_now_ms() - t0;
  T_OK(group_gone(pid), "a service ignoring SIGTERM is killed");
  T_OK(took >= 700 && took < 1700, "after its stop_timeout of 700ms (%lldms)",
       (long long)took);
  er_services_free(s);
  T_OK(my_descendants() == 0, "nothing left");
}

static pid_t read_pid(const char *file) {
  char path[PATH_MAX + 64], *txt;
  pid_t p;
  snprintf(path, sizeof path, "%s/%s", g_tmp, file);
  txt = read_small(path);
  p = txt ? (pid_t)atoi(txt) : -1;
  free(txt);
  return p;
}

static void test_grandchildren(void) {
  char json[2048];
  er_err_t err = {0};
  er_services_t *s;
  pid_t a, b, ga, gb;
  int64_t t0, took;
  snprintf(json, sizeof json,
           "[{\"name\": \"parent\","
           "  \"command\": [\"sh\", \"-c\", \"sleep 1000 & echo $! > "
           "gc-a.pid; wait\"],"
           "  \"ready\": {\"command\": [\"test\", \"-s\", \"gc-a.pid\"]}},"
           " {\"name\": \"parent2\", \"stop_timeout\": \"600ms\","
           "  \"command\": [\"sh\", \"-c\", \"(trap '' TERM; exec sleep 1000) "
           "& echo $! > gc-b.pid; wait\"],"
           "  \"ready\": {\"command\": [\"test\", \"-s\", \"gc-b.pid\"]}}]");
  s = mk(json, &err);
  if (!s) {
    T_OK(0, "grandchild services: %s", err.msg);
    return;
  }
  T_OK(er_services_start(s, &err) == 0, "services with children start: %s",
       err.msg);
  a = er_services_pid(s, "parent");
  b = er_services_pid(s, "parent2");
  ga = read_pid("gc-a.pid");
  gb = read_pid("gc-b.pid");
  T_OK(ga > 0 && gb > 0 && getpgid(ga) == a && getpgid(gb) == b,
       "their children run in their groups");
  t0 = er_now_ms();
  er_services_stop(s);
  took = er_now_ms() - t0;
  T_OK(kill(ga, 0) != 0 && errno == ESRCH,
       "a child of a service is stopped with it (and reaped)");
  T_OK(kill(gb, 0) != 0 && errno == ESRCH,
       "a child ignoring SIGTERM is killed after its leader exited");
  T_OK(took >= 600 && took < 1600, "after the stop_timeout of 600ms (%lldms)",
       (long long)took);
  T_OK(group_gone(a) && group_gone(b), "both groups are empty");
  er_services_free(s);
  T_OK(my_descendants() == 0, "nothing left");
}

static bool fd_is(pid_t pid, int fd, const char *target) {
  char path[64], buf[PATH_MAX];
  ssize_t n;
  snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
  n = readlink(path, buf, sizeof buf - 1);
  if (n < 0)
    return false;
  buf[n] = '\0';
  return strcmp(buf, target) == 0;
}

static void test_process_setup(void) {
  char json[1024], path[PATH_MAX + 64], logp[PATH_MAX + 64], *envs;
  er_err_t err = {0};
  er_services_t *s;
  pid_t pid;
  size_t len = 0;
  int leak = open("/dev/null", O_RDONLY); /* deliberately not O_CLOEXEC */
  DIR *dir;
  struct dirent *de;
  int nfd = 0, others = 0, ovr = 0, mark = 0, foo = 0, num = 0;

  setenv("ER_ITEST_MARK", "inherited", 1);
  setenv("ER_ITEST_OVR", "old", 1);
  snprintf(path, sizeof path, "%s/work", g_tmp);
  mkdir(path, 0755);
  snprintf(json, sizeof json,
           "[{\"name\": \"plain\", \"cwd\": \"work\","
           "  \"env\": {\"FOO\": \"bar\", \"NUM\": 5, \"ER_ITEST_OVR\": "
           "\"new\"},"
           "  \"log\": \"custom/dir/plain-out.log\","
           "  \"command\": [\"sleep\", \"1000\"]}]");
  s = mk(json, &err);
  if (!s) {
    T_OK(0, "plain service: %s", err.msg);
    return;
  }
  T_OK(er_services_start(s, &err) == 0, "plain service starts: %s", err.msg);
  pid = er_services_pid(s, "plain");
  snprintf(logp, sizeof logp, "%s/custom/dir/plain-out.log", g_tmp);
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  /* exec is done once start returns: the fds are the program's own */
  dir = opendir(path);
  while (dir && (de = readdir(dir))) {
    if (de->d_name[0] == '.')
      continue;
    nfd++;
    if (atoi(de->d_name) > 2)
      others++;
  }
  if (dir)
    closedir(dir);
  T_OK(nfd == 3 && others == 0, "only fds 0, 1, 2 are open (%d fds)", nfd);
  T_OK(fd_is(pid, 0, "/dev/null"), "stdin is /dev/null");
  T_OK(fd_is(pid, 1, logp) && fd_is(pid, 2, logp),
       "stdout and stderr go to its log, relative to the base dir");
  snprintf(path, sizeof path, "%s/work", g_tmp);
  {
    char cwdl[64], buf[PATH_MAX];
    ssize_t n;
    snprintf(cwdl, sizeof cwdl, "/proc/%d/cwd", (int)pid);
    n = readlink(cwdl, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    T_STREQ(buf, path, "cwd is relative to the base dir");
  }
  snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
  {
    er_err_t e2 = {0};
    envs = er_read_file(path, 1 << 20, &len, &e2);
  }
  for (size_t o = 0; envs && o < len; o += strlen(envs + o) + 1) {
    if (strcmp(envs + o, "ER_ITEST_MARK=inherited") == 0)
      mark++;
    if (strncmp(envs + o, "ER_ITEST_OVR=", 13) == 0)
      ovr += strcmp(envs + o, "ER_ITEST_OVR=new") == 0 ? 1 : 100;
    if (strcmp(envs + o, "FOO=bar") == 0)
      foo++;
    if (strcmp(envs + o, "NUM=5") == 0)
      num++;
  }
  free(envs);
  T_OK(mark == 1, "it inherits eventrig's environment");
  T_OK(foo == 1 && num == 1, "plus the service's env (numbers as text)");
  T_OK(ovr == 1, "a service's env replaces an inherited variable");
  er_services_free(s);
  T_OK(group_gone(pid), "stopped by free");
  close(leak);
}

static void test_bad_programs(void) {
  er_err_t err = {0};
  {
    er_services_t *none = er_services_new(NULL, g_tmp, g_logs, &err);
    T_OK(none && er_services_start(none, &err) == 0,
         "no services: nothing to do");
    er_services_free(none);
  }
  er_services_t *s = mk(
      "[{\"name\": \"ghost\", \"command\": [\"no-such-program-er\"]}]", &err);
  T_OK(s && er_services_start(s, &err) == -1 && err.code == ER_E_ENV &&
           strstr(err.msg, "service 'ghost': program 'no-such-program-er' "
                           "not found in PATH"),
       "a program missing from PATH: %s", err.msg);
  er_services_free(s);
  er_err_clear(&err);
  s = mk("[{\"name\": \"rel\", \"command\": [\"./nope.sh\"]}]", &err);
  T_OK(s && er_services_start(s, &err) == -1 && err.code == ER_E_ENV &&
           strstr(err.msg, "service 'rel': cannot start ") &&
           strstr(err.msg, "/nope.sh: execve: No such file or directory") &&
           strstr(err.msg, g_tmp),
       "a relative program resolves against the base dir: %s", err.msg);
  er_services_free(s);
  er_err_clear(&err);
  s = mk("[{\"name\": \"a\", \"command\": [\"x\"]},"
         " {\"name\": \"a\", \"command\": [\"y\"]}]",
         &err);
  T_OK(!s && err.code == ER_E_INPUT && strstr(err.msg, "'a'"),
       "duplicate names are refused: %s", err.msg);
}

static void test_http(void) {
  char json[2048];
  er_err_t err = {0};
  er_services_t *s;
  int port = free_port(), rc;
  int64_t t0, took;
  snprintf(json, sizeof json,
           "[{\"name\": \"web\", \"command\": [\"python3\", \"-m\", "
           "\"http.server\", \"--bind\", \"127.0.0.1\", \"%d\"],"
           "  \"ready\": {\"http\": \"http://127.0.0.1:%d/\", \"within\": "
           "\"20s\"}},"
           " {\"name\": \"waiter\", \"command\": [\"sleep\", \"1000\"],"
           "  \"ready\": {\"http\": \"http://127.0.0.1:%d/missing\", "
           "\"within\": \"1s\"}}]",
           port, port, port);
  s = mk(json, &err);
  if (!s) {
    T_OK(0, "http services: %s", err.msg);
    return;
  }
  rc = er_services_start(s, &err);
  took = 0;
  T_OK(er_services_pid(s, "waiter") > 0, "an HTTP server gets ready by http");
  T_OK(rc == -1 &&
           strstr(err.msg, "service 'waiter' was not ready within "
                           "1s: awaited http") &&
           strstr(err.msg, "(last attempt: HTTP status 404)"),
       "a URL answering 404 is not ready: %s", err.msg);
  t0 = er_now_ms();
  er_services_stop(s);
  took = er_now_ms() - t0;
  T_OK(took < 3000, "stopped (%lldms)", (long long)took);
  er_services_free(s);
  T_OK(my_descendants() == 0, "nothing left");
}

static void on_alarm(int sig) {
  (void)sig;
  er_set_interrupted(SIGINT);
}

/* An interrupt (main's signal handler sets the flag) cuts readiness waits
 * short, with the tcp and with the command probe. */
static void test_interrupt(void) {
  static const char *const kinds[] = {"tcp", "command"};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  for (int k = 0; k < 2; k++) {
    char json[1024];
    er_err_t err = {0};
    er_services_t *s;
    struct itimerval it = {{0, 0}, {0, 300000}};
    int64_t t0, took;
    int rc;
    if (k == 0)
      snprintf(json, sizeof json,
               "[{\"name\": \"slow\", \"command\": [\"sleep\", \"1000\"],"
               "  \"ready\": {\"tcp\": \"127.0.0.1:%d\", \"within\": "
               "\"20s\"}}]",
               free_port());
    else
      snprintf(json, sizeof json,
               "[{\"name\": \"slow\", \"command\": [\"sleep\", \"1000\"],"
               "  \"ready\": {\"command\": [\"sleep\", \"100\"], "
               "\"within\": \"20s\"}}]");
    s = mk(json, &err);
    if (!s) {
      T_OK(0, "slow service: %s", err.msg);
      continue;
    }
    t0 = er_now_ms();
    setitimer(ITIMER_REAL, &it, NULL);
    rc = er_services_start(s, &err);
    took = er_now_ms() - t0;
    T_OK(rc == -1 && err.code == ER_E_INTR &&
             strstr(err.msg, "interrupted while awaiting service 'slow'"),
         "an interrupt ends the %s readiness wait: %s", kinds[k], err.msg);
    T_OK(took >= 300 && took < 1000, "at once (%lldms)", (long long)took);
    er_services_stop(s); /* not cut short by the interrupt flag */
    T_OK(group_gone(er_services_pid(s, "slow")),
         "stop still stops the service");
    er_services_free(s);
    er_set_interrupted(0);
    T_OK(my_descendants() == 0, "nothing left (the ready command too)");
  }
  signal(SIGALRM, SIG_DFL);
}

/* The start runs in a child that is SIGKILLed: its services must die
 * with it, grandchildren included. */
static void test_killed_parent(void) {
  int p[2];
  pid_t child, pg[3] = {0, 0, 0};
  struct pollfd pfd;
  size_t got = 0;
  int64_t end, t0;
  bool gone = false;
  if (pipe(p) != 0) {
    T_OK(0, "pipe");
    return;
  }
  child = fork();
  if (child == 0) {
    er_err_t err = {0};
    er_services_t *s;
    close(p[0]);
    s = mk("[{\"name\": \"k1\", \"command\": [\"sleep\", \"1000\"]},"
           " {\"name\": \"k2\", \"command\": [\"sh\", \"-c\", \"sleep 1000 & "
           "echo $! > k2.pid; wait\"],"
           "  \"ready\": {\"command\": [\"test\", \"-s\", \"k2.pid\"]}},"
           " {\"name\": \"k3\", \"command\": [\"sh\", \"-c\", \"trap '' TERM; "
           "sleep 1000 & echo $! > k3.pid; wait\"],"
           "  \"ready\": {\"command\": [\"test\", \"-s\", \"k3.pid\"]}}]",
           &err);
    if (s && er_services_start(s, &err) == 0) {
      pid_t v[3] = {er_services_pid(s, "k1"), er_services_pid(s, "k2"),
                    er_services_pid(s, "k3")};
      ssize_t w = write(p[1], v, sizeof v);
      (void)w;
    }
    for (int i = 0; i < 600; i++)
      sleep(1); /* until killed */
    _exit(1);
  }
  close(p[1]);
  pfd.fd = p[0];
  pfd.events = POLLIN;
  end = er_now_ms() + 20000;
  while (got < sizeof pg && er_now_ms() < end) {
    ssize_t n;
    if (poll(&pfd, 1, 200) <= 0)
      continue;
    n = read(p[0], (char *)pg + got, sizeof pg - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(p[0]);
  T_OK(got == sizeof pg, "the child started three services");
  T_OK(got == sizeof pg && group_members(pg[1]) == 2 &&
           group_members(pg[2]) == 2,
       "two of them have a child of their own");
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  t0 = er_now_ms();
  end = t0 + 5000;
  while (got == sizeof pg && er_now_ms() < end) {
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ; /* orphans come to us: we are a subreaper */
    if (group_gone(pg[0]) && group_gone(pg[1]) && group_gone(pg[2])) {
      gone = true;
      break;
    }
    er_sleep_ms(10);
  }
  T_OK(gone, "all of them die with the SIGKILLed parent within 5s (%lldms)",
       (long long)(er_now_ms() - t0));
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
  T_OK(my_descendants() == 0, "nothing left");
}

int main(void) {
  const char *root = getenv("ER_ROOT");
  if (root && chdir(root) != 0)
    return 1;
  /* orphans of the SIGKILL test reparent here, to be reaped and counted */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  snprintf(g_tmp, sizeof g_tmp, "/tmp/er-itest-svc.XXXXXX");
  if (!mkdtemp(g_tmp))
    return 1;
  snprintf(g_logs, sizeof g_logs, "%s/logs", g_tmp);
  test_exit_at_once();
  test_never_ready();
  test_ignores_term();
  test_grandchildren();
  test_process_setup();
  test_bad_programs();
  test_http();
  test_interrupt();
  test_killed_parent();
  test_redis_pg();
  {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0)
      printf("# could not remove %s\n", g_tmp);
  }
  return t_done();
}
