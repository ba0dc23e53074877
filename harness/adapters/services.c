/* services.c: child processes eventrig starts and stops (see services.h).
 *
 * Everything a child needs (program path, argv, envp, cwd, open log and
 * /dev/null descriptors) is prepared before fork(), so that the child only
 * makes system calls before execve: eventrig may have other threads
 * (librdkafka), and after fork only async-signal-safe calls are allowed.
 * An exec failure travels back through a close-on-exec pipe. */
#include "adapters/services.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/jsonbig.h"

extern char **environ;

#define DEFAULT_READY_MS 30000
#define DEFAULT_STOP_MS 10000
#define KILL_WAIT_MS 5000 /* after SIGKILL, for the kernel to finish */
#define TAIL_LINES 20
#define TAIL_MAX_BYTES (64 * 1024)
#define PROBE_OUT_CAP 2048

typedef enum { READY_NONE, READY_TCP, READY_HTTP, READY_CMD } ready_kind_t;

typedef struct svc {
  char *name;
  char *group; /* NULL when it belongs to none */
  char **argv; /* NULL-terminated, as resolved (argv[0] as written) */
  char **env;  /* the service's own "K=V" entries, NULL-terminated */
  char *cwd;   /* absolute */
  char *log_path;
  ready_kind_t ready;
  char *ready_target; /* host:port or URL */
  char **ready_argv;  /* READY_CMD */
  int64_t ready_ms;
  int64_t stop_ms;
  /* run state */
  char **envp;     /* eventrig's environment plus env */
  off_t log_start; /* where this run's output begins */
  pid_t pid;       /* > 0 once spawned; also its process group */
  bool reaped;     /* the leader was waited for */
  int status;      /* its wait status once reaped */
  bool stopped;
  pid_t keeper;       /* watchdog process, 0 when none */
  int keeper_fd;      /* our end of its socket, -1 when none */
  pthread_mutex_t mu; /* held for a whole operation on this service */
  bool mu_init;
} svc_t;

/* The thread every service is forked from (see services.h): one job at a
 * time, handed over under mu. */
typedef struct spawner {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t th;
  bool up;   /* the thread runs */
  bool quit; /* asked to end */
  bool busy; /* a job is handed over (until its caller took the result) */
  bool done; /* the job ran */
  svc_t *v;
  er_err_t *err;
  int rc;
} spawner_t;

struct er_services {
  svc_t *v;
  size_t n;
  char *base_dir;
  char *log_dir;
  bool started;
  spawner_t sp;
};

/* ---- small helpers --------------------------------------------------------
 */

static void sleep_ms(int64_t ms) {
  struct timespec ts;
  if (ms <= 0)
    return;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* "1s", "1.500s", "250ms" */
static void fmt_dur(int64_t ms, char out[32]) {
  if (ms >= 1000 && ms % 1000 == 0)
    snprintf(out, 32, "%llds", (long long)(ms / 1000));
  else
    er_fmt_duration(ms, out);
}

static void strv_free(char **v) {
  if (!v)
    return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

static char *join_path(const char *dir, const char *p) {
  er_buf_t b = ER_BUF_INIT(0);
  if (p[0] == '/')
    return er_strdup(p);
  if (er_buf_printf(&b, "%s%s%s", dir, er_str_has_suffix(dir, "/") ? "" : "/",
                    p) != 0) {
    er_buf_free(&b);
    return NULL;
  }
  return er_buf_steal(&b);
}

/* A scalar JSON value as text (strings raw); NULL for others. */
static char *scalar_text(const json_t *v) {
  if (er_big_digits(v)) /* an integer beyond 64 bits */
    return er_strdup(er_big_digits(v));
  if (json_is_string(v))
    return er_strdup(json_string_value(v));
  if (json_is_number(v) || json_is_boolean(v))
    return er_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  return NULL;
}

/* Array of scalars -> NULL-terminated strings. */
static char **argv_of(const json_t *a, const char *svc, const char *what,
                      er_err_t *err) {
  size_t n = json_array_size(a);
  char **v;
  if (!json_is_array(a) || n == 0) {
    er_errf(err, ER_E_INPUT, "service '%s': '%s' must be a non-empty array",
            svc, what);
    return NULL;
  }
  v = calloc(n + 1, sizeof *v);
  if (!v) {
    er_errf(err, ER_E_ENV, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    v[i] = scalar_text(json_array_get(a, i));
    if (!v[i]) {
      er_errf(err, ER_E_INPUT,
              "service '%s': element %zu of '%s' is not a string once "
              "resolved",
              svc, i, what);
      strv_free(v);
      return NULL;
    }
  }
  if (!v[0][0]) {
    er_errf(err, ER_E_INPUT, "service '%s': the program of '%s' is empty", svc,
            what);
    strv_free(v);
    return NULL;
  }
  return v;
}

static int duration_of(const json_t *v, int64_t dflt, int64_t *out,
                       const char *svc, const char *what, er_err_t *err) {
  *out = dflt;
  if (!v)
    return 0;
  if (!json_is_string(v) || er_parse_duration(json_string_value(v), out) != 0)
    return er_errf(err, ER_E_INPUT,
                   "service '%s': '%s' is not a duration once resolved", svc,
                   what);
  return 0;
}

/* ---- new / free -------------------------------------------------------------
 */

/* A service's "env" object as NAME=value strings in v->env. */
static int svc_env(svc_t *v, const json_t *env, er_err_t *err) {
  size_t n = json_is_object(env) ? json_object_size(env) : 0, i = 0;
  const char *k;
  json_t *val;
  if (env && !json_is_object(env))
    return er_errf(err, ER_E_INPUT, "service '%s': 'env' must be an object",
                   v->name);
  v->env = calloc(n + 1, sizeof *v->env);
  if (!v->env)
    return er_errf(err, ER_E_ENV, "out of memory");
  json_object_foreach((json_t *)env, k, val) {
    char *t = scalar_text(val);
    er_buf_t b = ER_BUF_INIT(0);
    if (!t)
      return er_errf(err, ER_E_INPUT,
                     "service '%s': env '%s' is not a string once resolved",
                     v->name, k);
    if (er_buf_printf(&b, "%s=%s", k, t) != 0) {
      free(t);
      er_buf_free(&b);
      return er_errf(err, ER_E_ENV, "out of memory");
    }
    free(t);
    v->env[i++] = er_buf_steal(&b);
  }
  return 0;
}

/* A service's "cwd" and "log" (paths relative to the environment file;
 * the log by default in the run's log directory). */
static int svc_paths(er_services_t *s, svc_t *v, const json_t *o,
                     er_err_t *err) {
  const json_t *cwd = json_object_get(o, "cwd");
  const json_t *logv = json_object_get(o, "log");
  if (cwd && !json_is_string(cwd))
    return er_errf(err, ER_E_INPUT, "service '%s': 'cwd' must be a string",
                   v->name);
  v->cwd = join_path(s->base_dir, cwd ? json_string_value(cwd) : ".");
  if (logv && !json_is_string(logv))
    return er_errf(err, ER_E_INPUT, "service '%s': 'log' must be a string",
                   v->name);
  if (logv) {
    v->log_path = join_path(s->base_dir, json_string_value(logv));
  } else {
    er_buf_t b = ER_BUF_INIT(0);
    if (er_buf_printf(&b, "%s/%s.log", s->log_dir, v->name) == 0)
      v->log_path = er_buf_steal(&b);
    er_buf_free(&b);
  }
  if (!v->cwd || !v->log_path)
    return er_errf(err, ER_E_ENV, "out of memory");
  return 0;
}

/* A service's "ready" check: one of tcp, http, command, and its within. */
static int svc_ready(svc_t *v, const json_t *ready, er_err_t *err) {
  const char *nm = v->name;
  const json_t *tcp = json_object_get(ready, "tcp");
  const json_t *http = json_object_get(ready, "http");
  const json_t *cmd = json_object_get(ready, "command");
  v->ready = READY_NONE;
  v->ready_ms = DEFAULT_READY_MS;
  if (!ready)
    return 0;
  if (!json_is_object(ready) || (!!tcp + !!http + !!cmd) != 1)
    return er_errf(err, ER_E_INPUT,
                   "service '%s': 'ready' needs exactly one of tcp, http, "
                   "command",
                   nm);
  if (duration_of(json_object_get(ready, "within"), DEFAULT_READY_MS,
                  &v->ready_ms, nm, "ready.within", err) != 0)
    return -1;
  if (cmd) {
    v->ready = READY_CMD;
    v->ready_argv = argv_of(cmd, nm, "ready.command", err);
    return v->ready_argv ? 0 : -1;
  }
  v->ready = tcp ? READY_TCP : READY_HTTP;
  v->ready_target = scalar_text(tcp ? tcp : http);
  if (!v->ready_target || !json_is_string(tcp ? tcp : http))
    return er_errf(err, ER_E_INPUT, "service '%s': 'ready.%s' must be a string",
                   nm, tcp ? "tcp" : "http");
  return 0;
}

static int svc_parse(er_services_t *s, svc_t *v, const json_t *o,
                     er_err_t *err) {
  const json_t *name = json_object_get(o, "name");
  const json_t *group = json_object_get(o, "group");
  const char *nm;

  if (!json_is_object(o) || !json_is_string(name) ||
      !json_string_value(name)[0])
    return er_errf(err, ER_E_INPUT, "each service needs a 'name'");
  nm = json_string_value(name);
  v->name = er_strdup(nm);
  if (!v->name)
    return er_errf(err, ER_E_ENV, "out of memory");
  if (group && (!json_is_string(group) || !json_string_value(group)[0]))
    return er_errf(err, ER_E_INPUT,
                   "service '%s': 'group' must be a non-empty string", nm);
  if (group && !(v->group = er_strdup(json_string_value(group))))
    return er_errf(err, ER_E_ENV, "out of memory");
  v->argv = argv_of(json_object_get(o, "command"), nm, "command", err);
  if (!v->argv)
    return -1;
  if (svc_env(v, json_object_get(o, "env"), err) != 0 ||
      svc_paths(s, v, o, err) != 0)
    return -1;
  if (duration_of(json_object_get(o, "stop_timeout"), DEFAULT_STOP_MS,
                  &v->stop_ms, nm, "stop_timeout", err) != 0)
    return -1;
  return svc_ready(v, json_object_get(o, "ready"), err);
}

er_services_t *er_services_new(const json_t *spec, const char *base_dir,
                               const char *log_dir, er_err_t *err) {
  er_services_t *s = calloc(1, sizeof *s);
  size_t n = json_is_array(spec) ? json_array_size(spec) : 0;
  if (!s) {
    er_errf(err, ER_E_ENV, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&s->sp.mu, NULL);
  pthread_cond_init(&s->sp.cv, NULL);
  s->base_dir = er_strdup(base_dir ? base_dir : ".");
  s->log_dir = er_strdup(log_dir ? log_dir : ".");
  s->v = calloc(n ? n : 1, sizeof *s->v);
  if (!s->base_dir || !s->log_dir || !s->v) {
    er_errf(err, ER_E_ENV, "out of memory");
    goto fail;
  }
  if (spec && !json_is_array(spec)) {
    er_errf(err, ER_E_INPUT, "'services' must be an array");
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    svc_t *v = &s->v[s->n++];
    v->keeper_fd = -1;
    pthread_mutex_init(&v->mu, NULL);
    v->mu_init = true;
    if (svc_parse(s, v, json_array_get(spec, i), err) != 0)
      goto fail;
    for (size_t j = 0; j + 1 < s->n; j++) {
      const svc_t *o = &s->v[j];
      if (!o->name || !v->name)
        continue;
      if (strcmp(o->name, v->name) == 0) {
        er_errf(err, ER_E_INPUT, "two services are named '%s'", v->name);
        goto fail;
      }
      if ((o->group && strcmp(o->group, v->name) == 0) ||
          (v->group && strcmp(v->group, o->name) == 0)) {
        er_errf(err, ER_E_INPUT,
                "'%s' names both a service and a group of services",
                v->group && strcmp(v->group, o->name) == 0 ? o->name : v->name);
        goto fail;
      }
    }
  }
  return s;
fail:
  er_services_free(s);
  return NULL;
}

static void svc_free(svc_t *v) {
  free(v->name);
  free(v->group);
  if (v->mu_init)
    pthread_mutex_destroy(&v->mu);
  strv_free(v->argv);
  strv_free(v->env);
  free(v->cwd);
  free(v->log_path);
  free(v->ready_target);
  strv_free(v->ready_argv);
  strv_free(v->envp);
}

void er_services_free(er_services_t *s) {
  if (!s)
    return;
  er_services_stop(s);
  if (s->sp.up) {
    /* after the stop: what it forked gets PDEATHSIG when it ends */
    pthread_mutex_lock(&s->sp.mu);
    s->sp.quit = true;
    pthread_cond_broadcast(&s->sp.cv);
    pthread_mutex_unlock(&s->sp.mu);
    pthread_join(s->sp.th, NULL);
    s->sp.up = false;
  }
  for (size_t i = 0; s->v && i < s->n; i++)
    svc_free(&s->v[i]);
  pthread_mutex_destroy(&s->sp.mu);
  pthread_cond_destroy(&s->sp.cv);
  free(s->v);
  free(s->base_dir);
  free(s->log_dir);
  free(s);
}

/* ---- spawning
 * ----------------------------------------------------------------- */

/* eventrig's environment with the service's entries added or replacing. */
static char **build_envp(char **own) {
  size_t n = 0, k = 0, nown = 0;
  char **out;
  while (environ && environ[n])
    n++;
  while (own[nown])
    nown++;
  out = calloc(n + nown + 1, sizeof *out);
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    bool replaced = false;
    for (size_t j = 0; j < nown; j++)
      if (strncmp(own[j], environ[i], nl) == 0 && own[j][nl] == '=')
        replaced = true;
    if (replaced)
      continue;
    if (!(out[k++] = er_strdup(environ[i])))
      goto fail;
  }
  for (size_t j = 0; j < nown; j++)
    if (!(out[k++] = er_strdup(own[j])))
      goto fail;
  return out;
fail:
  strv_free(out);
  return NULL;
}

static const char *envp_get(char **envp, const char *name) {
  size_t nl = strlen(name);
  for (char **p = envp; p && *p; p++)
    if (strncmp(*p, name, nl) == 0 && (*p)[nl] == '=')
      return *p + nl + 1;
  return NULL;
}

static bool is_exec_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* A program containing '/' relative to base_dir; a bare name searched in
 * the child's PATH. Caller frees. */
static char *find_program(const char *prog, const char *base_dir, char **envp,
                          const char *svc, er_err_t *err) {
  const char *path;
  char *dirs = NULL, *save = NULL, *out = NULL;
  if (strchr(prog, '/')) {
    out = join_path(base_dir, prog);
    if (!out)
      er_errf(err, ER_E_ENV, "out of memory");
    return out;
  }
  path = envp_get(envp, "PATH");
  dirs = er_strdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
  if (!dirs) {
    er_errf(err, ER_E_ENV, "out of memory");
    return NULL;
  }
  for (char *d = strtok_r(dirs, ":", &save); d;
       d = strtok_r(NULL, ":", &save)) {
    char *cand = join_path(*d ? d : ".", prog);
    if (cand && is_exec_file(cand)) {
      out = cand;
      break;
    }
    free(cand);
  }
  if (!out)
    er_errf(err, ER_E_ENV, "service '%s': program '%s' not found in PATH", svc,
            prog);
  free(dirs);
  return out;
}

typedef struct spawn_req {
  const char *prog;
  char **argv;
  char **envp;
  const char *cwd;
  int in_fd, out_fd; /* become 0 and 1+2 */
} spawn_req_t;

typedef struct exec_fail {
  int stage; /* index into g_stage */
  int err;
} exec_fail_t;

static const char *const g_stage[] = {"setpgid", "prctl", "dup2", "chdir",
                                      "execve"};

static void child_fail(int fd, int stage) {
  exec_fail_t f = {stage, errno};
  ssize_t w = write(fd, &f, sizeof f);
  (void)w;
  _exit(127);
}

/* In the child: only system calls from here to execve. */
static void child_exec(const spawn_req_t *r, pid_t parent, int efd) {
  sigset_t none;
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &dfl, NULL); /* fails harmlessly for KILL, STOP, ... */
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (setpgid(0, 0) != 0)
    child_fail(efd, 0);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    child_fail(efd, 1);
  if (getppid() != parent)
    _exit(137); /* eventrig died before PDEATHSIG was armed */
  if (dup2(r->in_fd, 0) < 0 || dup2(r->out_fd, 1) < 0 || dup2(r->out_fd, 2) < 0)
    child_fail(efd, 2);
  if (r->cwd && chdir(r->cwd) != 0)
    child_fail(efd, 3);
  /* whatever eventrig inherited or opened without O_CLOEXEC */
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < 4096; fd++)
      if (fd != efd)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  execve(r->prog, r->argv, r->envp);
  child_fail(efd, 4);
}

/* fork + exec; *pid set on success. Exec failures come back through a
 * close-on-exec pipe, waited for at most wait_ms (EXEC_WAIT_MS when 0). */
#define EXEC_WAIT_MS 5000
static int spawn(const spawn_req_t *r, pid_t *pid_out, const char *svc,
                 int64_t wait_ms, er_err_t *err) {
  int ep[2] = {-1, -1};
  pid_t parent = getpid(), pid;
  exec_fail_t f;
  ssize_t n = 0;
  struct pollfd pfd;

  *pid_out = -1;
  if (pipe2(ep, O_CLOEXEC) != 0)
    return er_errf(err, ER_E_ENV, "service '%s': pipe: %s", svc,
                   strerror(errno));
  pid = fork();
  if (pid < 0) {
    int e = errno;
    close(ep[0]);
    close(ep[1]);
    return er_errf(err, ER_E_ENV, "service '%s': fork: %s", svc, strerror(e));
  }
  if (pid == 0)
    child_exec(r, parent, ep[1]);
  close(ep[1]);
  /* also here, so that a signal to the group right after fork reaches it */
  setpgid(pid, pid);
  pfd.fd = ep[0];
  pfd.events = POLLIN;
  /* a service without a readiness check (wait_ms 0) is still waited
   * for until its exec: what it runs then is the program, with only its
   * own descriptors, and an exec that fails is reported here */
  if (poll(&pfd, 1, (int)(wait_ms > 0 ? wait_ms : EXEC_WAIT_MS)) > 0) {
    do
      n = read(ep[0], &f, sizeof f);
    while (n < 0 && errno == EINTR);
  }
  close(ep[0]);
  if (n == (ssize_t)sizeof f) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
    return er_errf(err, ER_E_ENV, "service '%s': cannot start %s: %s: %s", svc,
                   r->prog, g_stage[f.stage % 5], strerror(f.err));
  }
  *pid_out = pid;
  return 0;
}

/* The keeper: a process of its own that SIGKILLs the service's group when
 * its socket reports end of file without the "q" eventrig sends after a
 * normal stop, i.e. when eventrig died. */
static void keeper_main(int fd, pid_t pgid) {
  struct sigaction ign;
  char c = 0;
  ssize_t n;
  int devnull;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ign, NULL);
  sigaction(SIGTERM, &ign, NULL);
  sigaction(SIGHUP, &ign, NULL);
  sigaction(SIGQUIT, &ign, NULL);
  sigaction(SIGPIPE, &ign, NULL);
  setpgid(0, 0);
  if (fd != 3) {
    dup2(fd, 3);
    fd = 3;
  }
  devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
  }
  /* let go of everything else: other keepers' sockets, eventrig's pipes */
  if (close_range(4, ~0U, 0) != 0)
    for (int i = 4; i < 4096; i++)
      close(i);
  do
    n = read(fd, &c, 1);
  while (n < 0 && errno == EINTR);
  if (!(n == 1 && c == 'q'))
    kill(-pgid, SIGKILL);
  _exit(0);
}

static int keeper_start(svc_t *v, er_err_t *err) {
  int sp[2];
  pid_t k;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
    return er_errf(err, ER_E_ENV, "service '%s': socketpair: %s", v->name,
                   strerror(errno));
  k = fork();
  if (k < 0) {
    int e = errno;
    close(sp[0]);
    close(sp[1]);
    return er_errf(err, ER_E_ENV, "service '%s': fork: %s", v->name,
                   strerror(e));
  }
  if (k == 0) {
    close(sp[0]);
    keeper_main(sp[1], v->pid);
  }
  close(sp[1]);
  v->keeper = k;
  v->keeper_fd = sp[0];
  return 0;
}

static void keeper_release(svc_t *v) {
  int64_t end;
  if (v->keeper_fd >= 0) {
    ssize_t w = send(v->keeper_fd, "q", 1, MSG_NOSIGNAL);
    (void)w;
    close(v->keeper_fd);
    v->keeper_fd = -1;
  }
  if (v->keeper <= 0)
    return;
  end = er_now_ms() + 2000;
  for (;;) {
    pid_t r = waitpid(v->keeper, NULL, WNOHANG);
    if (r == v->keeper || (r < 0 && errno != EINTR))
      break;
    if (er_now_ms() >= end) {
      kill(v->keeper, SIGKILL);
      while (waitpid(v->keeper, NULL, 0) < 0 && errno == EINTR)
        ;
      break;
    }
    sleep_ms(5);
  }
  v->keeper = 0;
}

/* ---- state of a service
 * ------------------------------------------------------- */

/* Reaps what can be reaped in the service's group (the leader and
 * orphans adopted as subreaper). True when the leader has exited. */
static bool svc_reap(svc_t *v) {
  int st;
  pid_t r;
  if (v->pid <= 0)
    return true;
  while ((r = waitpid(-v->pid, &st, WNOHANG)) > 0) {
    if (r == v->pid) {
      v->reaped = true;
      v->status = st;
    }
  }
  if (!v->reaped) {
    /* the leader may have left its group (setsid) */
    r = waitpid(v->pid, &st, WNOHANG);
    if (r == v->pid) {
      v->reaped = true;
      v->status = st;
    }
  }
  return v->reaped;
}

static bool group_gone(svc_t *v) {
  bool leader = svc_reap(v);
  return leader && kill(-v->pid, 0) != 0 && errno == ESRCH;
}

static void status_text(int st, char out[64]) {
  if (WIFEXITED(st))
    snprintf(out, 64, "exited with status %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st))
    snprintf(out, 64, "was killed by signal %d (%s)", WTERMSIG(st),
             strsignal(WTERMSIG(st)));
  else
    snprintf(out, 64, "ended (wait status %d)", st);
}

/* ---- log tail
 * ----------------------------------------------------------------- */

static char *tail_file(const char *path, off_t start, int n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  char *buf = NULL;
  off_t from;
  size_t len = 0, end, pos;
  int lines = 0;
  ssize_t r;
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0)
      close(fd);
    return er_strdup("");
  }
  from = st.st_size - TAIL_MAX_BYTES;
  if (from < start)
    from = start;
  if (from < 0)
    from = 0;
  if (st.st_size <= from) {
    close(fd);
    return er_strdup("");
  }
  buf = malloc((size_t)(st.st_size - from) + 1);
  if (!buf) {
    close(fd);
    return NULL;
  }
  while (len < (size_t)(st.st_size - from) &&
         (r = pread(fd, buf + len, (size_t)(st.st_size - from) - len,
                    from + (off_t)len)) > 0)
    len += (size_t)r;
  close(fd);
  buf[len] = '\0';
  end = len;
  while (end > 0 && buf[end - 1] == '\n')
    end--;
  buf[end] = '\0';
  pos = end;
  while (pos > 0) {
    if (buf[pos - 1] == '\n' && ++lines >= n)
      break;
    pos--;
  }
  if (n <= 0)
    pos = end;
  memmove(buf, buf + pos, end - pos + 1);
  return buf;
}

static svc_t *svc_find(const er_services_t *s, const char *name) {
  for (size_t i = 0; s && name && i < s->n; i++)
    if (strcmp(s->v[i].name, name) == 0)
      return &s->v[i];
  return NULL;
}

char *er_services_log_tail(er_services_t *s, const char *name, int n) {
  svc_t *v = svc_find(s, name);
  char *out;
  if (!v)
    return NULL;
  pthread_mutex_lock(&v->mu);
  out = tail_file(v->log_path, v->log_start, n);
  pthread_mutex_unlock(&v->mu);
  return out;
}

pid_t er_services_pid(const er_services_t *s, const char *name) {
  svc_t *v = svc_find(s, name);
  pid_t pid;
  if (!v)
    return -1;
  pthread_mutex_lock(&v->mu);
  pid = v->pid > 0 ? v->pid : -1;
  pthread_mutex_unlock(&v->mu);
  return pid;
}

/* err = head + the last lines of the service's log, cut from the front to
 * fit the error message. */
static int fail_with_log(svc_t *v, int code, const char *head, er_err_t *err) {
  char *tail = tail_file(v->log_path, v->log_start, TAIL_LINES);
  const char *t = tail ? tail : "";
  size_t room = ER_ERRSTR - 1, hl = strlen(head) + strlen(v->log_path) + 40;
  bool cut = false;
  if (!*t) {
    er_errf(err, code, "%s (its log %s is empty)", head, v->log_path);
    free(tail);
    return -1;
  }
  while (hl + strlen(t) > room && strchr(t, '\n')) {
    t = strchr(t, '\n') + 1;
    cut = true;
  }
  er_errf(err, code, "%s; last lines of %s:\n%s%s", head, v->log_path,
          cut ? "...\n" : "", t);
  free(tail);
  return -1;
}

/* ---- readiness probes
 * ---------------------------------------------------------- */

/* Each returns 0 when ready, 1 when not yet (reason in why, empty on
 * entry), -1 when
 * interrupted or the service exited (checked by the caller). */

static int probe_tcp(const char *target, int64_t deadline, er_buf_t *why) {
  char host[256], port[16];
  const char *colon = strrchr(target, ':');
  struct addrinfo hints, *res = NULL;
  int rc = 1, gai;
  size_t hl;
  if (!colon || colon == target || strlen(colon + 1) >= sizeof port) {
    er_buf_printf(why, "'%s' is not host:port", target);
    return 1;
  }
  hl = (size_t)(colon - target);
  if (target[0] == '[' && hl >= 2 && target[hl - 1] == ']') {
    target++;
    hl -= 2;
  }
  if (hl >= sizeof host)
    hl = sizeof host - 1;
  memcpy(host, target, hl);
  host[hl] = '\0';
  snprintf(port, sizeof port, "%s", colon + 1);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  gai = getaddrinfo(host, port, &hints, &res);
  if (gai != 0) {
    er_buf_printf(why, "%s", gai_strerror(gai));
    return 1;
  }
  for (struct addrinfo *a = res; a && rc != 0; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    a->ai_protocol);
    int e = 0;
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      rc = 0;
    } else if (fd >= 0 && errno == EINPROGRESS) {
      struct pollfd p = {fd, POLLOUT, 0};
      int64_t left = deadline - er_now_ms();
      int pr = poll(&p, 1, (int)(left > 1000 ? 1000 : left > 0 ? left : 0));
      socklen_t sl = sizeof e;
      if (pr > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == 0 &&
          e == 0)
        rc = 0;
      else if (pr == 0)
        e = ETIMEDOUT;
    } else {
      e = errno;
    }
    if (fd >= 0)
      close(fd);
    if (rc != 0) {
      er_buf_reset(why);
      er_buf_printf(why, "%s", strerror(e ? e : ECONNREFUSED));
    }
  }
  freeaddrinfo(res);
  return rc;
}

typedef struct http_ctx {
  svc_t *v;
} http_ctx_t;

static size_t http_discard(char *p, size_t sz, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return sz * n;
}

static int http_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c,
                         curl_off_t d) {
  http_ctx_t *h = ud;
  (void)a;
  (void)b;
  (void)c;
  (void)d;
  return er_interrupted() || svc_reap(h->v) ? 1 : 0;
}

static int probe_http(svc_t *v, int64_t deadline, er_buf_t *why) {
  CURL *c = curl_easy_init();
  http_ctx_t h = {v};
  long code = 0;
  int64_t left = deadline - er_now_ms();
  CURLcode rc;
  if (!c) {
    er_buf_printf(why, "cannot create an HTTP handle");
    return 1;
  }
  if (left > 5000)
    left = 5000;
  if (left < 1)
    left = 1;
  curl_easy_setopt(c, CURLOPT_URL, v->ready_target);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_discard);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, http_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &h);
  rc = curl_easy_perform(c);
  if (rc == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  if (rc == CURLE_OK && code == 200)
    return 0;
  if (rc == CURLE_ABORTED_BY_CALLBACK)
    return -1;
  er_buf_reset(why);
  if (rc != CURLE_OK)
    er_buf_printf(why, "%s", curl_easy_strerror(rc));
  else
    er_buf_printf(why, "HTTP status %ld", code);
  return 1;
}

/* Kills what is left of a finished or overrunning command's group and
 * reaps it, bounded. */
static void kill_and_reap_group(pid_t pgid) {
  int64_t end = er_now_ms() + KILL_WAIT_MS;
  kill(-pgid, SIGKILL);
  for (;;) {
    pid_t r;
    while ((r = waitpid(-pgid, NULL, WNOHANG)) > 0)
      ;
    if (r < 0 && errno == ECHILD && kill(-pgid, 0) != 0)
      return;
    if (er_now_ms() >= end)
      return;
    sleep_ms(5);
  }
}

static int probe_cmd(er_services_t *s, svc_t *v, const char *prog,
                     int64_t deadline, er_buf_t *why) {
  int p[2] = {-1, -1}, nullfd = -1, rc = 1, st = 0;
  spawn_req_t r;
  pid_t pid = -1;
  bool done = false;
  er_buf_t out = ER_BUF_INIT(PROBE_OUT_CAP);
  er_err_t err = {0};
  (void)s;

  er_buf_reset(why);
  nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (nullfd < 0 || pipe2(p, O_CLOEXEC) != 0) {
    er_buf_printf(why, "cannot run the command: %s", strerror(errno));
    goto out;
  }
  r.prog = prog;
  r.argv = v->ready_argv;
  r.envp = v->envp;
  r.cwd = v->cwd;
  r.in_fd = nullfd;
  r.out_fd = p[1];
  if (spawn(&r, &pid, v->name, deadline - er_now_ms(), &err) != 0) {
    er_buf_printf(why, "%s", err.msg);
    goto out;
  }
  close(p[1]);
  p[1] = -1;
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  while (!done) {
    struct pollfd pfd = {p[0], POLLIN, 0};
    char chunk[512];
    ssize_t n;
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid) {
      done = true;
    } else if (er_interrupted() || svc_reap(v)) {
      rc = -1;
      break;
    } else if (er_now_ms() >= deadline) {
      er_buf_printf(why, "the command was still running at the deadline");
      break;
    }
    if (!done && poll(&pfd, 1, 20) < 0 && errno != EINTR)
      sleep_ms(20);
    while ((n = read(p[0], chunk, sizeof chunk)) > 0)
      er_buf_append(&out, chunk, (size_t)n);
  }
  if (done) {
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      rc = 0;
    } else {
      char stx[64];
      const char *o = er_buf_cstr(&out);
      size_t ol = strlen(o);
      while (ol > 0 && (o[ol - 1] == '\n' || o[ol - 1] == ' '))
        ol--;
      status_text(st, stx);
      er_buf_printf(why, "the command %s%s%.*s", stx, ol ? ": " : "",
                    (int)(ol > 300 ? 300 : ol), o);
    }
  }
out:
  if (pid > 0)
    kill_and_reap_group(pid); /* the leader too, if it overran */
  if (p[0] >= 0)
    close(p[0]);
  if (p[1] >= 0)
    close(p[1]);
  if (nullfd >= 0)
    close(nullfd);
  er_buf_free(&out);
  return rc;
}

static void awaited_text(const svc_t *v, char *out, size_t outsz) {
  switch (v->ready) {
  case READY_TCP:
    snprintf(out, outsz, "tcp %s", v->ready_target);
    break;
  case READY_HTTP:
    snprintf(out, outsz, "http %s to answer 200", v->ready_target);
    break;
  case READY_CMD: {
    er_buf_t b = ER_BUF_INIT(400);
    er_buf_puts(&b, "command");
    for (char **a = v->ready_argv; *a; a++)
      er_buf_printf(&b, " %s", *a);
    er_buf_puts(&b, " to exit 0");
    snprintf(out, outsz, "%s", er_buf_cstr(&b));
    er_buf_free(&b);
    break;
  }
  default:
    snprintf(out, outsz, "nothing");
  }
}

static int svc_exited_error(svc_t *v, const char *awaited, const char *dur,
                            int64_t t0, er_err_t *err) {
  char st[64], head[800], took[32];
  status_text(v->status, st);
  fmt_dur(er_now_ms() - t0, took);
  snprintf(head, sizeof head,
           "service '%s' %s %s after it started, before it was ready "
           "(awaited %s within %s)",
           v->name, st, took, awaited, dur);
  return fail_with_log(v, ER_E_ENV, head, err);
}

/* Awaits readiness for ready_ms (0: the service's own), never past
 * hard_deadline (0: none). */
static int svc_wait_ready(er_services_t *s, svc_t *v, int64_t ready_ms,
                          int64_t hard_deadline, er_err_t *err) {
  int64_t t0 = er_now_ms(), delay = 10;
  int64_t deadline = t0 + (ready_ms > 0 ? ready_ms : v->ready_ms);
  char awaited[512], dur[32];
  char *prog = NULL;
  er_buf_t why = ER_BUF_INIT(1024), cur = ER_BUF_INIT(1024);
  int rc = -1;

  if (hard_deadline > 0 && hard_deadline < deadline)
    deadline = hard_deadline;
  awaited_text(v, awaited, sizeof awaited);
  fmt_dur(deadline - t0 > 0 ? deadline - t0 : 0, dur);
  if (v->ready == READY_NONE)
    return 0;
  if (v->ready == READY_CMD) {
    prog = find_program(v->ready_argv[0], s->base_dir, v->envp, v->name, err);
    if (!prog)
      goto out;
  }
  for (;;) {
    int r;
    if (er_interrupted()) {
      er_errf(err, ER_E_INTR, "interrupted while awaiting service '%s' (%s)",
              v->name, awaited);
      goto out;
    }
    if (svc_reap(v)) {
      svc_exited_error(v, awaited, dur, t0, err);
      goto out;
    }
    er_buf_reset(&cur);
    if (v->ready == READY_TCP)
      r = probe_tcp(v->ready_target, deadline, &cur);
    else if (v->ready == READY_HTTP)
      r = probe_http(v, deadline, &cur);
    else
      r = probe_cmd(s, v, prog, deadline, &cur);
    if (r == 0) {
      rc = 0;
      goto out;
    }
    if (r < 0)
      continue; /* interrupt or exit: reported at the top */
    /* an attempt cut short by the deadline says less than a whole one */
    if (er_now_ms() < deadline || why.len == 0) {
      er_buf_reset(&why);
      er_buf_puts(&why, er_buf_cstr(&cur));
    }
    if (er_now_ms() >= deadline) {
      char head[900];
      snprintf(head, sizeof head,
               "service '%s' was not ready within %s: awaited %s (last "
               "attempt: %s)",
               v->name, dur, awaited, er_buf_cstr(&why));
      fail_with_log(v, ER_E_ENV, head, err);
      goto out;
    }
    /* back off, watching for an exit or an interrupt meanwhile */
    for (int64_t end = er_now_ms() + delay;
         er_now_ms() < end && er_now_ms() < deadline;) {
      if (er_interrupted() || svc_reap(v))
        break;
      sleep_ms(5);
    }
    delay = delay * 2 > 250 ? 250 : delay * 2;
  }
out:
  free(prog);
  er_buf_free(&why);
  er_buf_free(&cur);
  return rc;
}

/* ---- start / stop
 * -------------------------------------------------------------- */

/* Forks the service and its keeper. Runs on the spawner thread only. */
static int svc_spawn(er_services_t *s, svc_t *v, er_err_t *err) {
  char *prog = NULL, *logdir = NULL, *slash;
  int logfd = -1, nullfd = -1, rc = -1;
  spawn_req_t r;
  char now[40];

  strv_free(v->envp); /* from an earlier start */
  v->envp = build_envp(v->env);
  if (!v->envp) {
    er_errf(err, ER_E_ENV, "out of memory");
    goto out;
  }
  prog = find_program(v->argv[0], s->base_dir, v->envp, v->name, err);
  if (!prog)
    goto out;
  logdir = er_strdup(v->log_path);
  if (!logdir) {
    er_errf(err, ER_E_ENV, "out of memory");
    goto out;
  }
  slash = strrchr(logdir, '/');
  if (slash && slash != logdir) {
    *slash = '\0';
    if (er_mkdirs(logdir, err) != 0)
      goto out;
  }
  logfd = open(v->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (logfd < 0 || nullfd < 0) {
    er_errf(err, ER_E_ENV, "service '%s': cannot open %s: %s", v->name,
            logfd < 0 ? v->log_path : "/dev/null", strerror(errno));
    goto out;
  }
  er_rfc3339_now(now);
  dprintf(logfd, "--- eventrig: starting service '%s' at %s ---\n", v->name,
          now);
  v->log_start = lseek(logfd, 0, SEEK_END);
  if (v->log_start < 0)
    v->log_start = 0;
  r.prog = prog;
  r.argv = v->argv;
  r.envp = v->envp;
  r.cwd = v->cwd;
  r.in_fd = nullfd;
  r.out_fd = logfd;
  v->pid = 0;
  v->reaped = false;
  v->status = 0;
  v->stopped = false;
  if (spawn(&r, &v->pid, v->name, v->ready_ms, err) != 0) {
    v->pid = 0;
    goto out;
  }
  if (keeper_start(v, err) != 0)
    goto out; /* the service runs; stop will end it */
  rc = 0;
out:
  if (logfd >= 0)
    close(logfd);
  if (nullfd >= 0)
    close(nullfd);
  free(logdir);
  free(prog);
  return rc;
}

static void *spawner_main(void *arg) {
  er_services_t *s = arg;
  spawner_t *sp = &s->sp;
  pthread_mutex_lock(&sp->mu);
  for (;;) {
    if (sp->busy && !sp->done) {
      svc_t *v = sp->v;
      er_err_t *err = sp->err;
      int rc;
      pthread_mutex_unlock(&sp->mu);
      rc = svc_spawn(s, v, err);
      pthread_mutex_lock(&sp->mu);
      sp->rc = rc;
      sp->done = true;
      pthread_cond_broadcast(&sp->cv);
      continue;
    }
    if (sp->quit)
      break;
    pthread_cond_wait(&sp->cv, &sp->mu);
  }
  pthread_mutex_unlock(&sp->mu);
  return NULL;
}

static int spawner_up(er_services_t *s, er_err_t *err) {
  sigset_t all, old;
  int e;
  if (s->sp.up)
    return 0;
  /* signals go to the other threads, as before it existed; the children
   * reset their mask before exec */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  e = pthread_create(&s->sp.th, NULL, spawner_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e != 0)
    return er_errf(err, ER_E_ENV, "cannot start the services' thread: %s",
                   strerror(e));
  s->sp.up = true;
  return 0;
}

/* Starts v from the spawner thread (v's lock held by the caller). The
 * spawn itself is bounded (exec failure pipe), so this wait is too. */
static int svc_start(er_services_t *s, svc_t *v, er_err_t *err) {
  spawner_t *sp = &s->sp;
  int rc;
  if (spawner_up(s, err) != 0)
    return -1;
  pthread_mutex_lock(&sp->mu);
  while (sp->busy)
    pthread_cond_wait(&sp->cv, &sp->mu);
  sp->busy = true;
  sp->done = false;
  sp->v = v;
  sp->err = err;
  pthread_cond_broadcast(&sp->cv);
  while (!sp->done)
    pthread_cond_wait(&sp->cv, &sp->mu);
  rc = sp->rc;
  sp->busy = false;
  sp->v = NULL;
  sp->err = NULL;
  pthread_cond_broadcast(&sp->cv);
  pthread_mutex_unlock(&sp->mu);
  return rc;
}

int er_services_start(er_services_t *s, er_err_t *err) {
  if (s->started)
    return er_errf(err, ER_E_ENV, "services were started already");
  s->started = true;
  if (s->n == 0)
    return 0;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    return er_errf(err, ER_E_ENV, "prctl(PR_SET_CHILD_SUBREAPER): %s",
                   strerror(errno));
  if (er_mkdirs(s->log_dir, err) != 0)
    return -1;
  for (size_t i = 0; i < s->n; i++) {
    svc_t *v = &s->v[i];
    int rc;
    if (er_interrupted())
      return er_errf(err, ER_E_INTR, "interrupted before starting service '%s'",
                     v->name);
    pthread_mutex_lock(&v->mu);
    rc = svc_start(s, v, err);
    if (rc == 0)
      rc = svc_wait_ready(s, v, 0, 0, err);
    pthread_mutex_unlock(&v->mu);
    if (rc != 0)
      return -1;
  }
  return 0;
}

/* Once: a second SIGTERM can cut a shell's cleanup trap short. */
static void signal_svc(svc_t *v, int sig) {
  kill(-v->pid, sig);
  if (!v->reaped && getpgid(v->pid) != v->pid)
    kill(v->pid, sig); /* the leader left its group (setsid) */
}

static bool wait_gone(svc_t *v, int64_t ms) {
  int64_t end = er_now_ms() + ms;
  while (!group_gone(v)) {
    if (er_now_ms() >= end)
      return false;
    sleep_ms(5);
  }
  return true;
}

/* SIGKILL to v's group, and a wait for it to be empty. */
static void kill_group(svc_t *v) {
  signal_svc(v, SIGKILL);
  if (!wait_gone(v, KILL_WAIT_MS))
    fprintf(stderr,
            "eventrig: service '%s': process group %d still not empty "
            "after SIGKILL\n",
            v->name, (int)v->pid);
}

/* The first half of a stop (v's lock held): SIGTERM to its group, or,
 * when there is nothing to stop, what to say in report (may be NULL).
 * True when v was signalled: svc_stop_end waits for it. */
static bool svc_stop_begin(svc_t *v, er_buf_t *report) {
  char st[64];
  if (v->pid <= 0) {
    if (report)
      er_buf_printf(report, "service '%s' was never started\n", v->name);
    return false;
  }
  if (v->stopped) {
    if (report)
      er_buf_printf(report, "service '%s' (pid %d) is stopped already\n",
                    v->name, (int)v->pid);
    return false;
  }
  v->stopped = true;
  if (group_gone(v)) {
    status_text(v->status, st);
    if (report)
      er_buf_printf(report, "service '%s' (pid %d) was not running: it %s\n",
                    v->name, (int)v->pid, st);
    keeper_release(v);
    return false;
  }
  signal_svc(v, SIGTERM);
  return true;
}

/* The second half (v's lock held): waits until t0 (when SIGTERM was
 * sent) + its stop time for the group to be gone, else SIGKILL. */
static void svc_stop_end(svc_t *v, int64_t t0, er_buf_t *report) {
  char took[32], dur[32];
  int64_t left = t0 + v->stop_ms - er_now_ms();
  if (wait_gone(v, left > 0 ? left : 0)) {
    er_fmt_duration(er_now_ms() - t0, took);
    if (report)
      er_buf_printf(report, "service '%s' (pid %d) stopped by SIGTERM in %s\n",
                    v->name, (int)v->pid, took);
  } else {
    kill_group(v);
    fmt_dur(v->stop_ms, dur);
    if (report)
      er_buf_printf(report,
                    "service '%s' (pid %d) did not stop within %s of "
                    "SIGTERM: killed with SIGKILL\n",
                    v->name, (int)v->pid, dur);
  }
  keeper_release(v);
}

/* Stops v (its lock held); how it went goes into report (may be NULL). */
static void svc_stop(svc_t *v, er_buf_t *report) {
  int64_t t0 = er_now_ms();
  if (svc_stop_begin(v, report))
    svc_stop_end(v, t0, report);
}

/* Stops vs[0..n) together (their locks held), last first: every one gets
 * SIGTERM, then each is waited for. The instances of one service leave
 * at once; one after another, each would wait out the consumer-group
 * rebalance the one before it started. */
static void svc_stop_all(svc_t *const *vs, size_t n, er_buf_t *report) {
  int64_t t0 = er_now_ms();
  bool *sent = calloc(n ? n : 1, sizeof *sent);
  if (!sent) { /* one at a time, then */
    for (size_t k = n; k-- > 0;)
      svc_stop(vs[k], report);
    return;
  }
  for (size_t k = n; k-- > 0;)
    sent[k] = svc_stop_begin(vs[k], report);
  for (size_t k = n; k-- > 0;)
    if (sent[k])
      svc_stop_end(vs[k], t0, report);
  free(sent);
}

/* SIGKILL to v's group at once (its lock held). */
static void svc_kill(svc_t *v, er_buf_t *report) {
  int64_t t0 = er_now_ms();
  char took[32];
  if (v->pid <= 0 || v->stopped || group_gone(v)) {
    svc_stop(v, report); /* says so, and cleans up after an exit */
    return;
  }
  v->stopped = true;
  kill_group(v);
  keeper_release(v);
  er_fmt_duration(er_now_ms() - t0, took);
  if (report)
    er_buf_printf(report,
                  "service '%s' (pid %d) killed with SIGKILL (gone in %s)\n",
                  v->name, (int)v->pid, took);
}

/* Locks vs[0..n) in order, stops them together, unlocks them. */
static void stop_locked(svc_t *const *vs, size_t n, er_buf_t *report) {
  for (size_t k = 0; k < n; k++)
    pthread_mutex_lock(&vs[k]->mu);
  svc_stop_all(vs, n, report);
  for (size_t k = 0; k < n; k++)
    pthread_mutex_unlock(&vs[k]->mu);
}

void er_services_stop(er_services_t *s) {
  svc_t **vs;
  if (!s || !s->v)
    return;
  vs = calloc(s->n ? s->n : 1, sizeof(svc_t *));
  /* last first; the instances of one group together */
  for (size_t i = s->n; i > 0;) {
    size_t j = i - 1, n = 0;
    const char *g = s->v[j].group;
    while (j > 0 && g && s->v[j - 1].group && !strcmp(s->v[j - 1].group, g))
      j--;
    for (size_t k = j; k < i; k++) {
      if (vs)
        vs[n++] = &s->v[k];
      else
        stop_locked((svc_t *const[]){&s->v[k]}, 1, NULL);
    }
    if (vs)
      stop_locked(vs, n, NULL);
    i = j;
  }
  free(vs);
}

/* ---- control of single services and groups
 * -------------------------------------------------- */

static er_svc_state_t svc_state(svc_t *v) {
  if (v->pid <= 0)
    return ER_SVC_NOT_STARTED;
  if (v->stopped)
    return ER_SVC_STOPPED;
  return svc_reap(v) ? ER_SVC_EXITED : ER_SVC_RUNNING;
}

er_svc_state_t er_services_state(er_services_t *s, const char *name) {
  svc_t *v = svc_find(s, name);
  er_svc_state_t st;
  if (!v)
    return ER_SVC_UNKNOWN;
  pthread_mutex_lock(&v->mu);
  st = svc_state(v);
  pthread_mutex_unlock(&v->mu);
  return st;
}

const char *er_svc_state_name(er_svc_state_t st) {
  switch (st) {
  case ER_SVC_NOT_STARTED:
    return "not started";
  case ER_SVC_RUNNING:
    return "running";
  case ER_SVC_STOPPED:
    return "stopped";
  case ER_SVC_EXITED:
    return "exited";
  default:
    return "unknown";
  }
}

const char *er_svc_op_name(er_svc_op_t op) {
  switch (op) {
  case ER_SVC_OP_STOP:
    return "stop";
  case ER_SVC_OP_KILL:
    return "kill";
  case ER_SVC_OP_START:
    return "start";
  case ER_SVC_OP_RESTART:
    return "restart";
  }
  return "?";
}

/* Starts v again (its lock held) unless it runs. */
static int svc_start_again(er_services_t *s, svc_t *v, int64_t ready_ms,
                           int64_t deadline_ms, er_buf_t *report,
                           er_err_t *err) {
  int64_t t0;
  char took[32];
  er_svc_state_t st = svc_state(v);
  if (st == ER_SVC_RUNNING) {
    if (report)
      er_buf_printf(report, "service '%s' (pid %d) is running already\n",
                    v->name, (int)v->pid);
    return 0;
  }
  if (st == ER_SVC_EXITED) {
    char how[64];
    status_text(v->status, how);
    if (report)
      er_buf_printf(report, "service '%s' (pid %d) was not running: it %s\n",
                    v->name, (int)v->pid, how);
    svc_stop(v, NULL); /* what is left of its group, and its keeper */
  }
  if (er_interrupted())
    return er_errf(err, ER_E_INTR, "interrupted before starting service '%s'",
                   v->name);
  t0 = er_now_ms();
  if (svc_start(s, v, err) != 0)
    return -1;
  if (svc_wait_ready(s, v, ready_ms, deadline_ms, err) != 0)
    return -1;
  er_fmt_duration(er_now_ms() - t0, took);
  if (report)
    er_buf_printf(report, "service '%s' started (pid %d), ready in %s\n",
                  v->name, (int)v->pid, took);
  return 0;
}

/* Indices of the services name stands for, in order; 0 when none. */
static size_t svc_targets(const er_services_t *s, const char *name,
                          size_t *out) {
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].name, name) == 0)
      out[n++] = i;
  if (n)
    return n;
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i].group && strcmp(s->v[i].group, name) == 0)
      out[n++] = i;
  return n;
}

static int unknown_name(const er_services_t *s, const char *name,
                        er_err_t *err) {
  const char **cands = calloc(2 * s->n + 1, sizeof *cands);
  size_t nc = 0;
  const char *dym;
  er_buf_t all = ER_BUF_INIT(600);
  if (!cands)
    return er_errf(err, ER_E_ENV, "out of memory");
  /* "redis, web (web-1, web-2, web-3), ..." */
  for (size_t i = 0; i < s->n; i++) {
    const svc_t *v = &s->v[i];
    bool first = v->group && (i == 0 || !s->v[i - 1].group ||
                              strcmp(s->v[i - 1].group, v->group) != 0);
    bool last = v->group && (i + 1 == s->n || !s->v[i + 1].group ||
                             strcmp(s->v[i + 1].group, v->group) != 0);
    cands[nc++] = v->name;
    if (first) {
      cands[nc++] = v->group;
      er_buf_printf(&all, "%s%s (", i ? ", " : "", v->group);
    } else if (!v->group || i > 0) {
      er_buf_puts(&all, i ? ", " : "");
    }
    er_buf_puts(&all, v->name);
    if (last)
      er_buf_puts(&all, ")");
  }
  dym = er_did_you_mean(name, cands, nc);
  if (dym)
    er_errf(err, ER_E_INPUT,
            "no service or group named '%s' (did you mean '%s'?); the "
            "environment has: %s",
            name, dym, er_buf_cstr(&all));
  else
    er_errf(err, ER_E_INPUT,
            "no service or group named '%s'; the environment has: %s", name,
            s->n ? er_buf_cstr(&all) : "no services");
  er_buf_free(&all);
  free(cands);
  return -1;
}

int er_services_control(er_services_t *s, const char *name, er_svc_op_t op,
                        int64_t ready_ms, int64_t deadline_ms, er_buf_t *report,
                        er_err_t *err) {
  size_t *idx = NULL, n;
  int rc = 0;
  if (!s || !name)
    return er_errf(err, ER_E_INPUT, "no services");
  if (!s->started)
    return er_errf(err, ER_E_ENV, "the services were not started");
  idx = calloc(s->n ? s->n : 1, sizeof *idx);
  if (!idx)
    return er_errf(err, ER_E_ENV, "out of memory");
  n = svc_targets(s, name, idx);
  if (n == 0) {
    rc = unknown_name(s, name, err);
    goto out;
  }
  if (op == ER_SVC_OP_KILL) {
    for (size_t k = n; k-- > 0;) {
      svc_t *v = &s->v[idx[k]];
      pthread_mutex_lock(&v->mu);
      svc_kill(v, report);
      pthread_mutex_unlock(&v->mu);
    }
  } else if (op != ER_SVC_OP_START) { /* stop, the first half of restart */
    svc_t **vs = calloc(n, sizeof(svc_t *));
    if (!vs) {
      rc = er_errf(err, ER_E_ENV, "out of memory");
      goto out;
    }
    for (size_t k = 0; k < n; k++)
      vs[k] = &s->v[idx[k]];
    stop_locked(vs, n, report);
    free(vs);
  }
  if (op == ER_SVC_OP_START || op == ER_SVC_OP_RESTART) {
    for (size_t k = 0; k < n && rc == 0; k++) {
      svc_t *v = &s->v[idx[k]];
      pthread_mutex_lock(&v->mu);
      rc = svc_start_again(s, v, ready_ms, deadline_ms, report, err);
      pthread_mutex_unlock(&v->mu);
    }
  }
out:
  free(idx);
  return rc;
}

int er_services_start_stopped(er_services_t *s, er_buf_t *report,
                              er_err_t *err) {
  int rc = 0;
  if (!s || !s->started)
    return 0;
  for (size_t i = 0; i < s->n; i++) {
    svc_t *v = &s->v[i];
    er_err_t e1 = {0};
    pthread_mutex_lock(&v->mu);
    if (svc_state(v) == ER_SVC_STOPPED &&
        svc_start_again(s, v, 0, 0, report, &e1) != 0) {
      er_errf(err, e1.code, "%s", e1.msg);
      rc = -1;
    }
    pthread_mutex_unlock(&v->mu);
  }
  return rc;
}
