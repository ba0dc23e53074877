/* itest_services.c: services started and stopped for real.
 * Run by tests/integration/services.sh (needs redis-server, the
 * PostgreSQL server binaries, pg_isready, python3, sh, sleep).
 *
 * Proves: a real redis-server and a throwaway Postgres start, answer and
 * leave nothing behind (no process, no zombie, no temp dir); readiness
 * fails at once when a service exits and at its deadline when it never
 * gets ready; stop escalates to SIGKILL for the whole group; services die
 * with a SIGKILLed eventrig. Instances: names, groups, per-instance ports
 * and ${instance.*} values of a resolved environment; stop, kill, start
 * and restart of one service and of a group (states, pids, order, report
 * lines, unknown names, readiness deadlines, interrupts); services
 * started again from threads that then end keep running (PDEATHSIG is
 * per thread), and die with a SIGKILLed parent (their new keepers). */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters/services.h"
#include "lang/env.h"
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
  /* exec is done once start returns, but the program's own start-up
   * (the dynamic loader opening its libraries, setlocale) briefly has a
   * 4th fd open: look until only 0, 1, 2 are left, for up to 2 s. An fd
   * inherited from eventrig stays open and fails this. */
  for (int tries = 0; tries < 40; tries++) {
    nfd = others = 0;
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
    if (nfd == 3 && others == 0)
      break;
    er_sleep_ms(50);
  }
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

/* ---- instances, and control of single services and groups ----------------
 */

/* GET path on 127.0.0.1:port (HTTP/1.0: the server closes); the body, or
 * NULL when the connection is refused. Caller frees. */
static char *http_get(int port, const char *path) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  char req[256], buf[8192];
  size_t len = 0;
  ssize_t n;
  char *body;
  struct timeval tv = {5, 0};
  if (fd < 0)
    return NULL;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
  if (write(fd, req, strlen(req)) < 0) {
    close(fd);
    return NULL;
  }
  while (len < sizeof buf - 1 &&
         (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
    len += (size_t)n;
  close(fd);
  buf[len] = '\0';
  body = strstr(buf, "\r\n\r\n");
  return er_strdup(body ? body + 4 : "");
}

/* The "pid" of whoami.py's /who on port, or -1. */
static pid_t who_pid(int port) {
  char *b = http_get(port, "/who");
  json_t *j = b ? json_loads(b, 0, NULL) : NULL;
  pid_t pid = j ? (pid_t)json_integer_value(json_object_get(j, "pid")) : -1;
  json_decref(j);
  free(b);
  return pid;
}

static bool alive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0; }

static void test_env_instances(void) {
  er_diags_t d = {0};
  er_tmpl_t *t = er_tmpl_new();
  er_env_t *e = er_env_load("tests/data/svc/instances.env.json", &d);
  const json_t *svcs;
  int ports[4] = {0, 0, 0, 0};
  bool names = true, groups = true, envs = true, ready = true;

  T_OK(e && er_env_resolve(e, t, &d) == 0,
       "an environment with instances loads and resolves");
  if (!e || !er_env_json(e)) {
    er_diags_print(&d, stdout, false);
    goto out;
  }
  svcs = json_object_get(er_env_json(e), "services");
  T_OK(json_array_size(svcs) == 6,
       "solo + 3 instances of web + 2 of tail = 6 services (%zu)",
       json_array_size(svcs));
  for (int k = 1; k <= 3; k++) {
    const json_t *s = json_array_get(svcs, (size_t)k);
    const json_t *env = json_object_get(s, "env");
    char want[32], pn[16], of[16], tcp[64];
    snprintf(want, sizeof want, "web-%d", k);
    snprintf(pn, sizeof pn, "p-%d", k);
    snprintf(of, sizeof of, "%d/3", k);
    ports[k] = er_env_port(e, pn);
    snprintf(tcp, sizeof tcp, "127.0.0.1:%d", ports[k]);
    names &= json_is_string(json_object_get(s, "name")) &&
             strcmp(json_string_value(json_object_get(s, "name")), want) == 0;
    groups &=
        json_is_string(json_object_get(s, "group")) &&
        strcmp(json_string_value(json_object_get(s, "group")), "web") == 0 &&
        !json_object_get(s, "instances") &&
        !json_object_get(s, "port_per_instance");
    envs &=
        strcmp(json_string_value(json_object_get(env, "WHOAMI")), want) == 0 &&
        json_integer_value(json_object_get(env, "INSTANCE_INDEX")) == k &&
        strcmp(json_string_value(json_object_get(env, "OF")), of) == 0 &&
        json_integer_value(json_object_get(env, "OTHER")) ==
            er_env_port(e, "other");
    ready &= strcmp(json_string_value(
                        json_object_get(json_object_get(s, "ready"), "tcp")),
                    tcp) == 0 &&
             json_integer_value(
                 json_array_get(json_object_get(s, "command"), 2)) == ports[k];
  }
  T_OK(names, "instances are named web-1, web-2, web-3 in order");
  T_OK(groups, "each in the group web, without instances/port_per_instance");
  T_OK(envs, "${instance.name}, ${instance.index} (an integer) and "
             "${instance.count} resolve per instance, ${port.X} too");
  T_OK(ports[1] > 0 && ports[2] > 0 && ports[3] > 0 && ports[1] != ports[2] &&
           ports[2] != ports[3] && ports[1] != ports[3] &&
           ports[1] != er_env_port(e, "other"),
       "port_per_instance allocates distinct ports p-1..p-3 (%d %d %d)",
       ports[1], ports[2], ports[3]);
  T_OK(ready, "${instance.port} is the instance's own port");
  T_OK(er_env_port(e, "p-4") == -1, "and no more");
  {
    char want[128];
    snprintf(want, sizeof want, "http://127.0.0.1:%d/who", ports[2]);
    T_STREQ(json_string_value(json_object_get(
                json_object_get(er_env_json(e), "vars"), "SECOND")),
            want, "${port.p-2} is usable elsewhere (vars)");
  }
  T_STREQ(json_string_value(json_array_get(
              json_object_get(json_array_get(svcs, 5), "command"), 1)),
          "1002",
          "a service without port_per_instance: ${instance.index} "
          "in text");
  T_STREQ(json_string_value(json_object_get(json_array_get(svcs, 0), "name")),
          "solo", "a plain service keeps its name");
  T_OK(!json_object_get(json_array_get(svcs, 0), "group"),
       "and belongs to no group");
out:
  er_tmpl_set_env_vars(t, NULL);
  er_env_free(e);
  er_tmpl_free(t);
  er_diags_free(&d);
}

/* The services of tests/data/svc/instances.env.json, started. */
static er_services_t *start_instances(er_env_t **envp, er_tmpl_t **tp) {
  er_diags_t d = {0};
  er_err_t err = {0};
  er_services_t *s = NULL;
  *tp = er_tmpl_new();
  *envp = er_env_load("tests/data/svc/instances.env.json", &d);
  if (!*envp || er_env_resolve(*envp, *tp, &d) != 0) {
    er_diags_print(&d, stdout, false);
    er_diags_free(&d);
    return NULL;
  }
  er_diags_free(&d);
  s = er_services_new(json_object_get(er_env_json(*envp), "services"),
                      er_env_base_dir(*envp), g_logs, &err);
  if (!s || er_services_start(s, &err) != 0) {
    printf("# %s\n", err.msg);
    er_services_free(s);
    return NULL;
  }
  return s;
}

static void stop_instances(er_services_t *s, er_env_t *e, er_tmpl_t *t) {
  er_services_free(s);
  er_tmpl_set_env_vars(t, NULL);
  er_env_free(e);
  er_tmpl_free(t);
}

static void test_control(void) {
  er_env_t *e = NULL;
  er_tmpl_t *t = NULL;
  er_services_t *s = start_instances(&e, &t);
  er_buf_t rep = ER_BUF_INIT(16 * 1024);
  er_err_t err = {0};
  int p1, p2, p3;
  pid_t w1, w2, w3, w2b, solo;
  char want[256], *body;
  int rc;

  T_OK(s != NULL, "solo, web-1..3, tail-1..2 start");
  if (!s)
    goto out;
  p1 = er_env_port(e, "p-1");
  p2 = er_env_port(e, "p-2");
  p3 = er_env_port(e, "p-3");
  w1 = er_services_pid(s, "web-1");
  w2 = er_services_pid(s, "web-2");
  w3 = er_services_pid(s, "web-3");
  solo = er_services_pid(s, "solo");
  body = http_get(p2, "/who");
  T_OK(body && strstr(body, "\"name\": \"web-2\"") && who_pid(p2) == w2,
       "web-2 answers on its port with its name: %s", body ? body : "");
  free(body);
  T_OK(er_services_state(s, "web-2") == ER_SVC_RUNNING &&
           strcmp(er_svc_state_name(er_services_state(s, "web-2")),
                  "running") == 0,
       "state: running");
  T_OK(er_services_state(s, "web") == ER_SVC_UNKNOWN &&
           er_services_state(s, "nope") == ER_SVC_UNKNOWN,
       "state is per service, not per group");

  /* stop one instance */
  rc = er_services_control(s, "web-2", ER_SVC_OP_STOP, 0, 0, &rep, &err);
  snprintf(want, sizeof want, "service 'web-2' (pid %d) stopped by SIGTERM in ",
           (int)w2);
  T_OK(rc == 0 && er_str_has_prefix(er_buf_cstr(&rep), want), "stop web-2: %s",
       er_buf_cstr(&rep));
  T_OK(group_gone(w2) && er_services_state(s, "web-2") == ER_SVC_STOPPED,
       "its group is gone, its state is stopped");
  T_OK(http_get(p2, "/who") == NULL, "its port refuses connections");
  T_OK(who_pid(p1) == w1 && who_pid(p3) == w3 && alive(solo),
       "the other instances and services still run");
  er_buf_reset(&rep);
  rc = er_services_control(s, "web-2", ER_SVC_OP_STOP, 0, 0, &rep, &err);
  snprintf(want, sizeof want, "service 'web-2' (pid %d) is stopped already\n",
           (int)w2);
  T_OK(rc == 0 && strcmp(er_buf_cstr(&rep), want) == 0,
       "stopping it again does nothing: %s", er_buf_cstr(&rep));

  /* start it again */
  er_buf_reset(&rep);
  rc = er_services_control(s, "web-2", ER_SVC_OP_START, 0, 0, &rep, &err);
  w2b = er_services_pid(s, "web-2");
  snprintf(want, sizeof want, "service 'web-2' started (pid %d), ready in ",
           (int)w2b);
  T_OK(rc == 0 && w2b != w2 && er_str_has_prefix(er_buf_cstr(&rep), want),
       "start web-2: %s%s", er_buf_cstr(&rep), err.msg);
  T_OK(who_pid(p2) == w2b && getpgid(w2b) == w2b,
       "it answers on its port again, as its new pid, in its own group");
  er_buf_reset(&rep);
  rc = er_services_control(s, "web-2", ER_SVC_OP_START, 0, 0, &rep, &err);
  snprintf(want, sizeof want, "service 'web-2' (pid %d) is running already\n",
           (int)w2b);
  T_OK(rc == 0 && strcmp(er_buf_cstr(&rep), want) == 0 &&
           er_services_pid(s, "web-2") == w2b,
       "starting it again does nothing: %s", er_buf_cstr(&rep));
  {
    char *tail = er_services_log_tail(s, "web-2", 100);
    const char *l1 = tail ? strstr(tail, "listening on ") : NULL;
    T_OK(l1 && !strstr(l1 + 1, "listening on ") &&
             !strstr(tail, "--- eventrig"),
         "its log tail holds only this start's output: %s", tail ? tail : "");
    free(tail);
  }

  /* kill: SIGKILL at once */
  er_buf_reset(&rep);
  rc = er_services_control(s, "solo", ER_SVC_OP_KILL, 0, 0, &rep, &err);
  snprintf(want, sizeof want, "service 'solo' (pid %d) killed with SIGKILL",
           (int)solo);
  T_OK(rc == 0 && er_str_has_prefix(er_buf_cstr(&rep), want) &&
           group_gone(solo) && er_services_state(s, "solo") == ER_SVC_STOPPED,
       "kill solo: %s", er_buf_cstr(&rep));

  /* the group */
  er_buf_reset(&rep);
  rc = er_services_control(s, "web", ER_SVC_OP_RESTART, 5000, 0, &rep, &err);
  T_OK(rc == 0 && group_gone(w1) && group_gone(w2b) && group_gone(w3),
       "restart the group web: the old processes are gone");
  T_OK(who_pid(p1) == er_services_pid(s, "web-1") &&
           who_pid(p2) == er_services_pid(s, "web-2") &&
           who_pid(p3) == er_services_pid(s, "web-3") &&
           er_services_pid(s, "web-1") != w1,
       "and every instance answers as its new pid");
  {
    const char *r = er_buf_cstr(&rep);
    const char *s3 = strstr(r, "'web-3' (pid"), *s1 = strstr(r, "'web-1' (pid");
    const char *st1 = strstr(r, "'web-1' started"),
               *st3 = strstr(r, "'web-3' started");
    T_OK(s3 && s1 && st1 && st3 && s3 < s1 && s1 < st1 && st1 < st3,
         "stopped in reverse order, then started in order:\n%s", r);
  }
  er_buf_reset(&rep);
  rc = er_services_control(s, "tail", ER_SVC_OP_STOP, 0, 0, &rep, &err);
  T_OK(rc == 0 && er_services_state(s, "tail-1") == ER_SVC_STOPPED &&
           er_services_state(s, "tail-2") == ER_SVC_STOPPED &&
           er_services_state(s, "web-1") == ER_SVC_RUNNING,
       "stop the group tail: both of its instances, nothing else");

  /* what was stopped starts again */
  er_buf_reset(&rep);
  rc = er_services_start_stopped(s, &rep, &err);
  T_OK(rc == 0 && er_services_state(s, "solo") == ER_SVC_RUNNING &&
           er_services_state(s, "tail-1") == ER_SVC_RUNNING &&
           er_services_state(s, "tail-2") == ER_SVC_RUNNING &&
           alive(er_services_pid(s, "solo")) &&
           er_services_pid(s, "solo") != solo,
       "er_services_start_stopped starts solo, tail-1, tail-2 again:\n%s",
       er_buf_cstr(&rep));

  /* unknown names */
  er_err_clear(&err);
  rc = er_services_control(s, "wbe", ER_SVC_OP_STOP, 0, 0, &rep, &err);
  T_OK(rc == -1 && err.code == ER_E_INPUT &&
           strcmp(err.msg,
                  "no service or group named 'wbe' (did you mean 'web'?); "
                  "the environment has: solo, web (web-1, web-2, web-3), "
                  "tail (tail-1, tail-2)") == 0,
       "an unknown name: %s", err.msg);
  er_err_clear(&err);
  rc = er_services_control(s, "xyzzy", ER_SVC_OP_START, 0, 0, &rep, &err);
  T_OK(rc == -1 && err.code == ER_E_INPUT &&
           er_str_has_prefix(err.msg, "no service or group named 'xyzzy'; "),
       "no suggestion when nothing is close: %s", err.msg);
  er_buf_free(&rep);
  {
    int64_t t0 = er_now_ms();
    stop_instances(s, e, t);
    s = NULL;
    printf("# final stop took %lldms\n", (long long)(er_now_ms() - t0));
  }
  T_OK(my_descendants() == 0, "nothing left after the final stop");
out:
  if (s)
    stop_instances(s, e, t);
}

/* exited on its own, readiness failing after a start, an interrupt */
static void test_control_edges(void) {
  char json[2048];
  er_err_t err = {0};
  er_buf_t rep = ER_BUF_INIT(16 * 1024);
  er_services_t *s;
  int port = free_port(), rc;
  pid_t pid;
  int64_t t0, end;
  snprintf(json, sizeof json,
           "[{\"name\": \"once\", \"command\": [\"sh\", \"-c\", \"test -e "
           "once.flag && exec sleep 1000; touch once.flag; exit 3\"]},"
           " {\"name\": \"flaky\", \"stop_timeout\": \"2s\","
           "  \"command\": [\"sh\", \"-c\", \"test -e flaky.flag && exec "
           "sleep 1000; touch flaky.flag; exec python3 -m http.server --bind "
           "127.0.0.1 %d\"],"
           "  \"ready\": {\"tcp\": \"127.0.0.1:%d\", \"within\": \"20s\"}}]",
           port, port);
  s = mk(json, &err);
  if (!s) {
    T_OK(0, "edge services: %s", err.msg);
    return;
  }
  {
    char p1[PATH_MAX + 16], p2[PATH_MAX + 16];
    snprintf(p1, sizeof p1, "%s/once.flag", g_tmp);
    snprintf(p2, sizeof p2, "%s/flaky.flag", g_tmp);
    unlink(p1);
    unlink(p2);
  }
  rc = er_services_control(s, "once", ER_SVC_OP_START, 0, 0, &rep, &err);
  T_OK(rc == -1 && err.code == ER_E_ENV &&
           strcmp(err.msg, "the services were not started") == 0,
       "control before start is refused: %s", err.msg);
  er_err_clear(&err);
  rc = er_services_start(s, &err);
  T_OK(rc == 0, "start: %s", err.msg);
  pid = er_services_pid(s, "once");
  for (end = er_now_ms() + 5000;
       er_now_ms() < end && er_services_state(s, "once") != ER_SVC_EXITED;)
    er_sleep_ms(5);
  T_OK(er_services_state(s, "once") == ER_SVC_EXITED &&
           strcmp(er_svc_state_name(ER_SVC_EXITED), "exited") == 0,
       "a service that exits on its own: state exited");
  er_buf_reset(&rep);
  rc = er_services_start_stopped(s, &rep, &err);
  T_OK(rc == 0 && rep.len == 0 && er_services_state(s, "once") == ER_SVC_EXITED,
       "er_services_start_stopped leaves it alone (only what was stopped)");
  er_buf_reset(&rep);
  rc = er_services_control(s, "once", ER_SVC_OP_START, 0, 0, &rep, &err);
  {
    char want[256];
    snprintf(want, sizeof want,
             "service 'once' (pid %d) was not running: it exited with status "
             "3\nservice 'once' started (pid %d), ready in ",
             (int)pid, (int)er_services_pid(s, "once"));
    T_OK(rc == 0 && er_str_has_prefix(er_buf_cstr(&rep), want) &&
             alive(er_services_pid(s, "once")),
         "start cleans up and starts it again:\n%s", er_buf_cstr(&rep));
  }

  /* a restart whose readiness never comes: at the caller's ready_ms */
  er_err_clear(&err);
  er_buf_reset(&rep);
  t0 = er_now_ms();
  rc = er_services_control(s, "flaky", ER_SVC_OP_RESTART, 500, 0, &rep, &err);
  T_OK(rc == -1 && err.code == ER_E_ENV &&
           strstr(err.msg, "service 'flaky' was not ready within 500ms: "
                           "awaited tcp 127.0.0.1:") &&
           er_now_ms() - t0 < 1500,
       "a start not ready within ready_ms fails then: %s", err.msg);
  T_OK(er_services_state(s, "flaky") == ER_SVC_RUNNING,
       "and leaves the service running (stopped at the end)");
  er_err_clear(&err);
  t0 = er_now_ms();
  rc = er_services_control(s, "flaky", ER_SVC_OP_RESTART, 20000, t0 + 400, &rep,
                           &err);
  T_OK(rc == -1 && strstr(err.msg, "was not ready within ") &&
           !strstr(err.msg, "within 20s") && er_now_ms() - t0 < 1000,
       "never past the caller's deadline: %s", err.msg);
  /* an interrupt cuts the readiness wait short */
  {
    struct sigaction sa;
    struct itimerval it = {{0, 0}, {0, 300000}};
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    er_err_clear(&err);
    t0 = er_now_ms();
    setitimer(ITIMER_REAL, &it, NULL);
    rc = er_services_control(s, "flaky", ER_SVC_OP_RESTART, 20000, 0, &rep,
                             &err);
    T_OK(rc == -1 && err.code == ER_E_INTR &&
             strstr(err.msg, "interrupted while awaiting service 'flaky'") &&
             er_now_ms() - t0 < 1500,
         "an interrupt ends the readiness wait of a start: %s (%lldms)",
         err.msg, (long long)(er_now_ms() - t0));
    signal(SIGALRM, SIG_DFL);
  }
  t0 = er_now_ms();
  er_buf_reset(&rep);
  rc = er_services_control(s, "flaky", ER_SVC_OP_STOP, 0, 0, &rep, &err);
  T_OK(rc == 0 && er_now_ms() - t0 < 1500 &&
           group_gone(er_services_pid(s, "flaky")),
       "stopping is not cut short by the interrupt flag (%lldms): %s",
       (long long)(er_now_ms() - t0), er_buf_cstr(&rep));
  er_set_interrupted(0);
  er_services_free(s);
  er_buf_free(&rep);
  T_OK(my_descendants() == 0, "nothing left");
}

typedef struct thr_job {
  er_services_t *s;
  const char *name;
  er_svc_op_t op;
  int rc;
  er_err_t err;
} thr_job_t;

static void *thr_control(void *arg) {
  thr_job_t *j = arg;
  j->rc = er_services_control(j->s, j->name, j->op, 0, 0, NULL, &j->err);
  return NULL;
}

/* PR_SET_PDEATHSIG fires when the forking thread ends: a service started
 * from a thread that then ends must keep running. */
static void test_restart_from_thread(void) {
  er_err_t err = {0};
  er_services_t *s =
      mk("[{\"name\": \"t1\", \"command\": [\"sleep\", \"1000\"]},"
         " {\"name\": \"t2\", \"command\": [\"sleep\", \"1000\"]}]",
         &err);
  thr_job_t j[2];
  pthread_t th[2];
  pid_t old1, old2, new1, new2;
  bool ok = true;
  if (!s || er_services_start(s, &err) != 0) {
    T_OK(0, "thread services: %s", err.msg);
    er_services_free(s);
    return;
  }
  old1 = er_services_pid(s, "t1");
  old2 = er_services_pid(s, "t2");
  er_services_control(s, "t2", ER_SVC_OP_STOP, 0, 0, NULL, &err);
  memset(j, 0, sizeof j);
  j[0] = (thr_job_t){s, "t1", ER_SVC_OP_RESTART, 0, {0}};
  j[1] = (thr_job_t){s, "t2", ER_SVC_OP_START, 0, {0}};
  /* both at once, from two threads that end right after */
  pthread_create(&th[0], NULL, thr_control, &j[0]);
  pthread_create(&th[1], NULL, thr_control, &j[1]);
  pthread_join(th[0], NULL);
  pthread_join(th[1], NULL);
  new1 = er_services_pid(s, "t1");
  new2 = er_services_pid(s, "t2");
  T_OK(j[0].rc == 0 && j[1].rc == 0 && new1 != old1 && new2 != old2,
       "restart t1 and start t2 from two threads at once: %s%s", j[0].err.msg,
       j[1].err.msg);
  /* PDEATHSIG would have killed them by now; watch for half a second */
  for (int64_t end = er_now_ms() + 500; er_now_ms() < end && ok;) {
    ok = alive(new1) && alive(new2) &&
         er_services_state(s, "t1") == ER_SVC_RUNNING &&
         er_services_state(s, "t2") == ER_SVC_RUNNING;
    er_sleep_ms(20);
  }
  T_OK(ok, "both outlive the threads that started them");
  er_services_free(s);
  T_OK(group_gone(new1) && group_gone(new2), "and are stopped with the others");
  T_OK(my_descendants() == 0, "nothing left");
}

/* Services restarted from a thread in a process that is then SIGKILLed:
 * they die with it, grandchildren included (their new keepers). */
static void test_killed_after_restart(void) {
  int p[2];
  pid_t child, pg[2] = {0, 0};
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
    thr_job_t j;
    pthread_t th;
    close(p[0]);
    s = mk("[{\"name\": \"r1\", \"command\": [\"sh\", \"-c\", \"sleep 1000 & "
           "echo $! > r1.pid; wait\"],"
           "  \"ready\": {\"command\": [\"test\", \"-s\", \"r1.pid\"]}},"
           " {\"name\": \"r2\", \"command\": [\"sh\", \"-c\", \"trap '' TERM; "
           "sleep 1000 & wait\"]}]",
           &err);
    if (s && er_services_start(s, &err) == 0) {
      char pidf[PATH_MAX + 16];
      snprintf(pidf, sizeof pidf, "%s/r1.pid", g_tmp);
      unlink(pidf); /* so that the restart awaits the new one */
      j = (thr_job_t){s, "r1", ER_SVC_OP_RESTART, 0, {0}};
      pthread_create(&th, NULL, thr_control, &j);
      pthread_join(th, NULL);
      j = (thr_job_t){s, "r2", ER_SVC_OP_KILL, 0, {0}};
      thr_control(&j);
      j = (thr_job_t){s, "r2", ER_SVC_OP_START, 0, {0}};
      pthread_create(&th, NULL, thr_control, &j);
      pthread_join(th, NULL);
      {
        pid_t v[2] = {er_services_pid(s, "r1"), er_services_pid(s, "r2")};
        ssize_t w = write(p[1], v, sizeof v);
        (void)w;
      }
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
  T_OK(got == sizeof pg, "the child restarted two services from threads");
  /* the shells' sleep children may take a moment to appear */
  for (end = er_now_ms() + 5000;
       got == sizeof pg && er_now_ms() < end &&
       (group_members(pg[0]) < 2 || group_members(pg[1]) < 2);)
    er_sleep_ms(10);
  T_OK(got == sizeof pg && group_members(pg[0]) == 2 &&
           group_members(pg[1]) == 2,
       "each restarted service has a child of its own");
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  t0 = er_now_ms();
  end = t0 + 5000;
  while (got == sizeof pg && er_now_ms() < end) {
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ;
    if (group_gone(pg[0]) && group_gone(pg[1])) {
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
  test_env_instances();
  test_control();
  test_control_edges();
  test_restart_from_thread();
  test_killed_after_restart();
  test_redis_pg();
  {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0)
      printf("# could not remove %s\n", g_tmp);
  }
  return t_done();
}
