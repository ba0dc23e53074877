/* runner.c: see runner.h. */
#include "run/runner.h"
#include "run/diag.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adapters/services.h"
#include "base/redact.h"
#include "base/util.h"
#include "lang/cond.h"
#include "lang/env.h"
#include "lang/jsonx.h"
#include "lang/scenario.h"
#include "lang/template.h"
#include "report/report.h"
#include "run/exec.h"
#include "run/schedule.h"
#include "run/select.h"

#define LOG_CAP (256u * 1024u)
#define DETAIL_CAP (64u * 1024u)
#define TEARDOWN_BUDGET_MS 30000

typedef struct run {
  const er_run_opts_t *o;
  er_tmpl_t *base; /* run-wide names: run.id, port.*, kafka.* */
  er_env_t *env;
  er_session_t *shared; /* modules' run-wide objects */
  er_services_t *services;
  er_results_t results;
  er_console_t con;
  char run_id[64];
  char report_dir[1024];
  char run_dir[1100];
  char junit_path[1100];
  bool modules_begun;
  const er_scenario_t **plan_v; /* the scenarios that will run */
  er_plan_t plan;               /* in shared as "plan" */
  er_progress_t prog;           /* prog.mu: the console lock (progress
                                   lines, streamed logs, results) */
  struct scen *live[64];        /* scenarios running (under prog.mu) */
  size_t nlive;
  pthread_t prog_thread;
  pthread_cond_t prog_wake; /* with prog.mu: wakes the thread to stop */
  bool prog_cv_ok;          /* prog_wake was made */
  bool prog_started;
  bool prog_stop;  /* under prog.mu */
  bool prog_drawn; /* a status line is on the terminal (under prog.mu) */
  bool prog_tty;   /* the console is a terminal: a live status line */
} run_t;

/* One scenario in flight. */
typedef struct scen {
  run_t *r;
  const er_scenario_t *s;
  er_session_t *scenario; /* modules' per-scenario objects */
  int64_t started_ms;
  size_t log_shown;    /* --verbose: bytes of the log already printed */
  er_step_rec_t *recs; /* top-level steps as they ran (to res->steps) */
  size_t nrecs, arecs;
  er_progress_t prog; /* its running top-level step (exec.h) */
  int64_t prog_shown; /* when its last plain progress line was printed */
} scen_t;

/* A branch: a line of execution with its own connections, template scope,
 * log and failure detail. A scenario runs in one branch; a parallel step
 * forks branches and joins them. */
typedef struct branch {
  scen_t *sc;
  er_tmpl_t *t;
  er_session_t *session;
  er_buf_t log;
  er_buf_t detail;
  json_t *captured;  /* names captured in this branch (to hand back) */
  char *failed_step; /* where it failed: "step 3 'x' (file:l:c)" */
  int failed_line;   /* the line of the innermost step that failed (in
                        the scenario's file) */
  char *label;
  const char *dir;       /* where the steps' files are found: a step
                            file's folder in a call, else the scenario's */
  bool session_borrowed; /* a call runs on its caller's connections */
  int calls;             /* how many step files deep */
} branch_t;

static const er_group_ops_t g_group_ops;

static branch_t *branch_new(scen_t *sc, er_tmpl_t *t, const char *label) {
  branch_t *b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->sc = sc;
  b->t = t;
  b->session = er_session_new();
  b->captured = json_object();
  b->label = er_strdup(label ? label : "");
  er_buf_init(&b->log, LOG_CAP);
  er_buf_init(&b->detail, DETAIL_CAP);
  if (!b->t || !b->session || !b->captured || !b->label) {
    er_tmpl_free(b->t);
    er_session_free(b->session);
    json_decref(b->captured);
    free(b->label);
    free(b);
    return NULL;
  }
  return b;
}

static void branch_free(branch_t *b) {
  if (!b)
    return;
  if (!b->session_borrowed)
    er_session_free(b->session);
  er_tmpl_free(b->t);
  json_decref(b->captured);
  er_buf_free(&b->log);
  er_buf_free(&b->detail);
  free(b->failed_step);
  free(b->label);
  free(b);
}

static void load_diags_print(const run_t *r, const er_diags_t *d) {
  er_diags_print(d, r->o->err, r->con.color);
}

static void make_run_id(char out[64]) {
  char rnd[37];
  time_t now = time(NULL);
  struct tm tm;
  char ts[32];
  gmtime_r(&now, &tm);
  strftime(ts, sizeof ts, "%Y%m%dT%H%M%S", &tm);
  er_uuid4(rnd);
  snprintf(out, 64, "%s-%.6s", ts, rnd);
}

/* Loads every scenario named by the paths. Returns 0 when all loaded
 * (and, with need_one, there is at least one: step files are checked,
 * not run). */
static int load_all(const er_run_opts_t *o, bool need_one, size_t lean_bytes,
                    er_scenario_t ***out, size_t *nout, er_diags_t *diags,
                    er_err_t *err) {
  char **files = NULL;
  size_t nfiles = 0;
  er_scenario_t **v = NULL;
  size_t n = 0;
  int rc = -1;
  char *fixtures = NULL;
  er_load_opts_t lo = {NULL};

  if (er_scenario_collect(o->paths, o->npaths, &files, &nfiles, err) != 0)
    goto out;
  if (nfiles == 0) {
    er_errf(err, ER_E_INPUT,
            "no scenario files (*.json, *.yaml, *.yml) found in the given "
            "paths");
    goto out;
  }
  v = calloc(nfiles, sizeof(er_scenario_t *));
  if (!v) {
    er_errf(err, ER_E_ENV, "out of memory");
    goto out;
  }
  /* the fixtures root the environment names, before it is loaded */
  fixtures = o->env_path ? er_env_peek_fixtures(o->env_path) : NULL;
  lo.fixtures = fixtures;
  lo.lean_bytes = lean_bytes;
  for (size_t i = 0; i < nfiles; i++) {
    er_scenario_t **one = NULL;
    size_t k = 0;
    if (er_scenario_load_all(files[i], &lo, diags, &one, &k) == 0 && k) {
      /* a table of cases gives several scenarios */
      er_scenario_t **nv =
          realloc(v, (n + k + nfiles) * sizeof(er_scenario_t *));
      if (!nv) {
        for (size_t j = 0; j < k; j++)
          er_scenario_free(one[j]);
      } else {
        v = nv;
        for (size_t j = 0; j < k; j++)
          v[n++] = one[j];
      }
    }
    free(one);
  }
  rc = diags->errors ? -1 : 0;
  if (rc == 0 && n == 0 && need_one) /* only step files: nothing to run */
    rc = er_errf(err, ER_E_INPUT,
                 "no scenario in the given paths (step files are checked, "
                 "not run: a scenario runs them with \"use\")");
out:
  free(fixtures);
  for (size_t i = 0; i < nfiles; i++)
    free(files[i]);
  free(files);
  *out = v;
  *nout = n;
  return rc;
}

/* How many scenarios filter selects (skipped ones included: their
 * author's skip is a result, an empty selection is not). */
static size_t count_selected(er_scenario_t **v, size_t n, const char *filter) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (er_scenario_matches(v[i], filter))
      k++;
  return k;
}

/* --shard / --rerun-failed (select.h): drops the scenarios this run does
 * not take from sv (and frees them). Returns -1 to go on, else the exit
 * code to end with (a message printed). */
static int select_scenarios(const er_run_opts_t *o, er_scenario_t **sv,
                            size_t *ns) {
  bool *keep;
  er_err_t err = {0};
  size_t nfailed = 0, kept = 0;
  int k = 0, n = 0, rc = -1;
  if (!o->shard && !o->rerun_failed)
    return -1;
  keep = calloc(*ns ? *ns : 1, sizeof *keep);
  if (!keep) {
    fprintf(o->err, "eventrig: out of memory\n");
    return 3;
  }
  if (o->rerun_failed &&
      er_select_rerun(sv, *ns, o->rerun_failed, keep, &nfailed, &err) != 0) {
    fprintf(o->err, "eventrig: --rerun-failed: %s\n", err.msg);
    rc = 2;
    goto out;
  }
  if (o->shard) {
    bool *in = calloc(*ns ? *ns : 1, sizeof *in);
    if (!in || er_shard_parse(o->shard, &k, &n) != 0 ||
        er_select_shard(sv, *ns, k, n, o->durations, in, &err) != 0) {
      fprintf(o->err, "eventrig: --shard %s: %s\n", o->shard,
              err.msg[0] ? err.msg : "expected K/N with 1 <= K <= N");
      free(in);
      rc = 2;
      goto out;
    }
    for (size_t i = 0; i < *ns; i++)
      keep[i] = in[i] && (!o->rerun_failed || keep[i]);
    free(in);
  }
  for (size_t i = 0; i < *ns; i++) {
    if (keep[i])
      sv[kept++] = sv[i];
    else
      er_scenario_free(sv[i]);
  }
  if (o->shard)
    fprintf(o->out, "shard %d/%d: %zu of %zu scenario(s)%s\n", k, n, kept, *ns,
            o->durations ? " (balanced by --durations)" : "");
  if (o->rerun_failed)
    fprintf(o->out, "rerun: %zu scenario(s) that failed in %s\n", kept,
            o->rerun_failed);
  *ns = kept;
  if (kept == 0) { /* nothing to do here is not a failure */
    fprintf(o->out, "nothing to run%s\n",
            o->rerun_failed && !nfailed ? ": no failure in that report"
                                        : " in this part");
    rc = 0;
  }
out:
  free(keep);
  return rc;
}

static void free_all(er_scenario_t **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    er_scenario_free(v[i]);
  free(v);
}

/* ---- one step ---------------------------------------------------------- */

static void capture_set(branch_t *b, const char *name, json_t *v) {
  er_tmpl_set(b->t, name, json_incref(v));
  json_object_set(b->captured, name, v);
}

static void merge_captures(branch_t *b, json_t *caps) {
  const char *k;
  json_t *v;
  json_object_foreach(caps, k, v) {
    char *brief = er_json_brief(v, 120);
    capture_set(b, k, v);
    er_buf_printf(&b->log, "  captured %s = %s\n", k, brief ? brief : "?");
    free(brief);
  }
}

static void exec_init(er_exec_t *x, branch_t *b, int64_t deadline,
                      json_t *caps) {
  memset(x, 0, sizeof *x);
  x->env = er_env_json(b->sc->r->env);
  x->session = b->session;
  x->shared = b->sc->r->shared;
  x->scenario = b->sc->scenario;
  x->tmpl = b->t;
  x->base_dir = b->dir ? b->dir : b->sc->s->dir;
  x->deadline_ms = deadline;
  x->log = &b->log;
  x->captures = caps;
  x->detail = &b->detail;
  x->group = &g_group_ops;
  x->rt = b;
  x->progress = &b->sc->prog;
}

/* Where a step failed, for the report. A failure recorded by a nested
 * step during this one gets this step's name in front of it. */
static void note_failure(branch_t *b, const char *before, const char *where,
                         int line) {
  if (!b->failed_step) {
    b->failed_step = er_strdup(where);
    b->failed_line = line;
  } else if (!before) {
    er_buf_t m = ER_BUF_INIT(4096);
    er_buf_printf(&m, "%s > %s", where, b->failed_step);
    free(b->failed_step);
    b->failed_step = er_buf_steal(&m);
    if (b->failed_line <= 0) /* the innermost step was in a step file */
      b->failed_line = line;
  }
}

/* A step's "if" (cond.h), in the branch's scope: *skipped when it does
 * not hold. ER_STEP_OK, or ER_STEP_FATAL with detail (a template error). */
static int step_condition(branch_t *b, const er_step_t *st, bool *skipped) {
  const json_t *cond = st->step ? json_object_get(st->step, "if") : NULL;
  er_buf_t why = ER_BUF_INIT(2048);
  er_err_t err = {0};
  bool holds = true;
  *skipped = false;
  if (!cond)
    return ER_STEP_OK;
  if (er_cond_eval(b->t, cond, &holds, &why, &err) != 0) {
    er_buf_printf(&b->detail, "if: %s", err.msg);
    er_buf_free(&why);
    return ER_STEP_FATAL;
  }
  if (!holds) {
    *skipped = true;
    er_buf_printf(&b->log, "  not run: its condition does not hold (%s)\n",
                  er_buf_cstr(&why));
  }
  er_buf_free(&why);
  return ER_STEP_OK;
}

/* Returns ER_STEP_* for one step. deadline is the phase's deadline. */
static int run_step(branch_t *b, const er_step_t *st, const char *phase,
                    size_t idx, int64_t deadline) {
  er_err_t err = {0};
  json_t *args = NULL;
  json_t *caps = json_object();
  const char *failed_before = b->failed_step;
  er_exec_t x;
  int rc = ER_STEP_FATAL;
  int64_t t0 = er_now_ms();
  int64_t dl = deadline;
  char took[32];
  bool skipped = false;

  er_buf_reset(&b->detail);
  if (!caps)
    goto out;
  if (st->timeout_ms > 0 && t0 + st->timeout_ms < dl)
    dl = t0 + st->timeout_ms;
  er_buf_printf(&b->log, "[%+.3fs] %s%s%s %zu: %s\n",
                (double)(t0 - b->sc->started_ms) / 1000.0, b->label,
                *b->label ? " " : "", phase, idx + 1, st->name);
  rc = step_condition(b, st, &skipped);
  if (rc != ER_STEP_OK || skipped)
    goto out;
  if (st->action->raw_args || st->action->whole_step) {
    args = json_incref(st->args);
  } else {
    args = er_tmpl_expand(b->t, st->args, &err);
    if (!args) {
      er_buf_printf(&b->detail, "%s", err.msg);
      rc = ER_STEP_FATAL;
      goto out;
    }
    er_secret_add_passwords_json(args); /* a step's own url / dsn */
  }
  exec_init(&x, b, dl, caps);
  if (er_now_ms() >= dl) {
    er_buf_puts(&b->detail, "no time left before the scenario timeout");
    rc = ER_STEP_FAIL;
    goto out;
  }
  rc = st->action->run(&x, args);
  if (rc == ER_STEP_OK)
    merge_captures(b, caps);
  else if (er_now_ms() >= dl && b->detail.len == 0)
    er_buf_puts(&b->detail, "timed out");
  if (rc != ER_STEP_OK && er_interrupted()) {
    er_buf_printf(&b->detail, "%sinterrupted by signal %d",
                  b->detail.len ? "\n" : "", er_interrupted());
    rc = ER_STEP_FATAL; /* reported as an error, not a failed check */
  }
out:
  er_fmt_duration(er_now_ms() - t0, took);
  er_buf_printf(&b->log, "  -> %s (%s)\n",
                skipped              ? "skipped"
                : rc == ER_STEP_OK   ? "ok"
                : rc == ER_STEP_FAIL ? "FAILED"
                                     : "ERROR",
                took);
  if (rc != ER_STEP_OK) {
    char where[1024];
    const char *file = b->sc->s->file;
    int line = st->line, col = st->col;
    if (b->detail.len)
      er_buf_printf(&b->log, "  %s\n", er_buf_cstr(&b->detail));
    /* a nested step's place is looked up now, on the failure path */
    if (line <= 0 && st->step)
      er_scenario_locate(b->sc->s, st->step, &file, &line, &col);
    if (line > 0)
      snprintf(where, sizeof where, "%s%s%s %zu '%s' (%s:%d:%d)", b->label,
               *b->label ? " " : "", phase, idx + 1, st->name, file, line, col);
    else
      snprintf(where, sizeof where, "%s%s%s %zu '%s'", b->label,
               *b->label ? " " : "", phase, idx + 1, st->name);
    /* the report's line is one of the scenario's own file */
    note_failure(b, failed_before, where, file == b->sc->s->file ? line : 0);
  }
  json_decref(args);
  json_decref(caps);
  return rc;
}

/* Runs a list of steps; stops at the first that does not pass (unless
 * keep_going, used by teardown). Returns the worst ER_STEP_*; the detail
 * of the first failure stays in b->detail. */
/* ---- progress of a long step ------------------------------------------- */

/* A plain progress line after PROGRESS_PLAIN_MS, then every as long; a
 * terminal's status line after PROGRESS_TTY_MS, redrawn every second. */
#define PROGRESS_PLAIN_MS 10000
#define PROGRESS_TTY_MS 2000

/* The text of sc's progress line into b. */
static void progress_text(scen_t *sc, er_buf_t *b, int64_t now) {
  er_progress_t *p = &sc->prog;
  char el[32];
  pthread_mutex_lock(&p->mu);
  er_fmt_duration(now - p->started_ms, el);
  er_buf_printf(b, "%s: %s running for %s", p->scenario, p->step, el);
  if (p->polls)
    er_buf_printf(b, ", %d poll(s)", p->polls);
  if (p->produced)
    er_buf_printf(b, ", %ld of %ld message(s) acknowledged", p->acked,
                  p->produced);
  if (p->polls && p->last[0])
    er_buf_printf(b, ", last seen: %s", p->last);
  pthread_mutex_unlock(&p->mu);
}

/* when sc's running step started, or -1 when none runs */
static int64_t step_started(scen_t *sc) {
  int64_t t;
  pthread_mutex_lock(&sc->prog.mu);
  t = sc->prog.active ? sc->prog.started_ms : -1;
  pthread_mutex_unlock(&sc->prog.mu);
  return t;
}

/* One line (plain, or the terminal's status line) for sc. Under the
 * console lock (r->prog.mu). */
static void progress_line(run_t *r, scen_t *sc, int64_t now, bool status) {
  er_buf_t b = ER_BUF_INIT(1024);
  char *line;
  progress_text(sc, &b, now);
  line = er_buf_steal(&b);
  if (line) {
    size_t n;
    er_secret_redact(line);
    n = strlen(line);
    if (status) {
      fputs("\r\033[K  ... ", r->o->out);
      er_utf8_safe_write(r->o->out, line, er_utf8_cut(line, n, 150));
      r->prog_drawn = true;
    } else {
      if (r->prog_drawn)
        fputs("\r\033[K", r->o->out);
      r->prog_drawn = false;
      fputs("  ... ", r->o->out);
      er_utf8_safe_write(r->o->out, line, n);
      fputc('\n', r->o->out);
    }
    fflush(r->o->out);
  }
  free(line);
  er_buf_free(&b);
}

/* On a terminal with one scenario running: its status line; else a plain
 * line every PROGRESS_PLAIN_MS for each long step. */
static void progress_tick(run_t *r) {
  int64_t now = er_now_ms();
  pthread_mutex_lock(&r->prog.mu);
  if (r->prog_tty && r->nlive == 1) {
    int64_t t = step_started(r->live[0]);
    if (t >= 0 && now - t >= PROGRESS_TTY_MS)
      progress_line(r, r->live[0], now, true);
  } else {
    for (size_t i = 0; i < r->nlive; i++) {
      scen_t *sc = r->live[i];
      int64_t t = step_started(sc);
      if (t >= 0 && now - t >= PROGRESS_PLAIN_MS &&
          now - sc->prog_shown >= PROGRESS_PLAIN_MS) {
        progress_line(r, sc, now, false);
        sc->prog_shown = now;
      }
    }
  }
  pthread_mutex_unlock(&r->prog.mu);
}

/* Ticks every second on a terminal, every 250 ms otherwise, and ends as
 * soon as progress_stop says so (a timed wait, not a sleep: the end of a
 * run does not wait out a tick). */
static void *progress_main(void *arg) {
  run_t *r = arg;
  const int64_t tick_ms = r->prog_tty ? 1000 : 250;
  pthread_mutex_lock(&r->prog.mu);
  while (!r->prog_stop) {
    struct timespec ts;
    pthread_mutex_unlock(&r->prog.mu);
    progress_tick(r);
    pthread_mutex_lock(&r->prog.mu);
    er_deadline_ts(&ts, tick_ms);
    while (!r->prog_stop &&
           pthread_cond_timedwait(&r->prog_wake, &r->prog.mu, &ts) == 0) {
    }
  }
  pthread_mutex_unlock(&r->prog.mu);
  return NULL;
}

/* Clears a terminal's status line. Under the console lock. */
static void progress_clear(run_t *r) {
  if (r->prog_drawn) {
    fputs("\r\033[K", r->o->out);
    fflush(r->o->out);
    r->prog_drawn = false;
  }
}

/* A top-level step of sc starts (step != NULL) or ends. */
static void progress_step(scen_t *sc, const char *step) {
  run_t *r = sc->r;
  er_progress_t *p = &sc->prog;
  pthread_mutex_lock(&r->prog.mu);
  progress_clear(r);
  pthread_mutex_lock(&p->mu);
  p->active = step != NULL;
  if (step) {
    snprintf(p->scenario, sizeof p->scenario, "%s", sc->s->name);
    snprintf(p->step, sizeof p->step, "%s", step);
    p->started_ms = er_now_ms();
    p->polls = 0;
    p->last[0] = '\0';
    p->produced = p->acked = 0;
    sc->prog_shown = p->started_ms;
  }
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_unlock(&r->prog.mu);
}

/* sc runs (on) or has ended (off): the progress thread looks at it. */
static void progress_live(scen_t *sc, bool on) {
  run_t *r = sc->r;
  pthread_mutex_lock(&r->prog.mu);
  if (on && r->nlive < sizeof r->live / sizeof r->live[0]) {
    r->live[r->nlive++] = sc;
  } else if (!on) {
    for (size_t i = 0; i < r->nlive; i++)
      if (r->live[i] == sc) {
        r->live[i] = r->live[--r->nlive];
        break;
      }
    progress_clear(r);
  }
  pthread_mutex_unlock(&r->prog.mu);
}

static void progress_start(run_t *r) {
  pthread_mutex_init(&r->prog.mu, NULL);
  r->prog_cv_ok = er_cond_init_mono(&r->prog_wake) == 0;
  r->prog_tty = isatty(fileno(r->o->out)) != 0;
  /* without its condition variable there is no progress line: the
   * thread could not be stopped without waiting out a tick */
  r->prog_started = r->prog_cv_ok && pthread_create(&r->prog_thread, NULL,
                                                    progress_main, r) == 0;
}

static void progress_stop(run_t *r) {
  if (r->prog_started) {
    pthread_mutex_lock(&r->prog.mu);
    r->prog_stop = true;
    pthread_cond_signal(&r->prog_wake);
    pthread_mutex_unlock(&r->prog.mu);
    pthread_join(r->prog_thread, NULL);
    r->prog_started = false;
  }
  pthread_mutex_lock(&r->prog.mu);
  progress_clear(r);
  pthread_mutex_unlock(&r->prog.mu);
  if (r->prog_cv_ok)
    pthread_cond_destroy(&r->prog_wake);
  r->prog_cv_ok = false;
  pthread_mutex_destroy(&r->prog.mu);
}

/* --verbose: prints what the scenario's log gained since last time, as
 * the steps happen (a parallel step's branches when it joins). */
static void verbose_flush(branch_t *b) {
  scen_t *sc = b->sc;
  run_t *r = sc->r;
  char *chunk;
  size_t n;
  if (!r->o->verbose || b->log.len <= sc->log_shown)
    return;
  n = b->log.len - sc->log_shown;
  chunk = malloc(n + 1);
  if (!chunk)
    return;
  memcpy(chunk, b->log.data + sc->log_shown, n);
  chunk[n] = '\0';
  er_secret_redact(chunk);
  pthread_mutex_lock(&r->prog.mu);
  progress_clear(r);
  fputs(chunk, r->o->out);
  if (chunk[n - 1] != '\n')
    fputc('\n', r->o->out);
  fflush(r->o->out);
  pthread_mutex_unlock(&r->prog.mu);
  sc->log_shown = b->log.len;
  free(chunk);
}

/* A top-level step that ran, for the timeline (report.h er_step_rec_t);
 * polls and the last value seen come from the progress the step kept. */
static void record_step(branch_t *b, const char *phase, const er_step_t *st,
                        size_t idx, int64_t t0, int rc) {
  scen_t *sc = b->sc;
  er_progress_t *p = &sc->prog;
  er_step_rec_t *rec;
  if (sc->nrecs == sc->arecs) {
    size_t na = sc->arecs ? sc->arecs * 2 : 16;
    er_step_rec_t *nv = realloc(sc->recs, na * sizeof *nv);
    if (!nv)
      return;
    sc->recs = nv;
    sc->arecs = na;
  }
  rec = &sc->recs[sc->nrecs];
  memset(rec, 0, sizeof *rec);
  rec->phase = er_strdup(phase);
  rec->name = er_strdup(st->name);
  rec->index = (int)idx + 1;
  rec->line = st->line;
  rec->start_ms = t0 - sc->started_ms;
  rec->time_ms = er_now_ms() - t0;
  rec->status = rc;
  pthread_mutex_lock(&p->mu);
  rec->polls = p->polls;
  rec->last_seen = p->polls && p->last[0] ? er_strdup(p->last) : NULL;
  pthread_mutex_unlock(&p->mu);
  if (!rec->phase || !rec->name) {
    free(rec->phase);
    free(rec->name);
    free(rec->last_seen);
    return;
  }
  sc->nrecs++;
}

static int run_steps(branch_t *b, const er_steplist_t *l, const char *phase,
                     int64_t deadline, bool keep_going) {
  int worst = ER_STEP_OK;
  int64_t t0;
  er_buf_t first = ER_BUF_INIT(DETAIL_CAP);
  for (size_t i = 0; i < l->n; i++) {
    int rc;
    if (er_interrupted() && !keep_going) {
      char where[512];
      snprintf(where, sizeof where, "before %s %zu '%s'", phase, i + 1,
               l->v[i].name);
      note_failure(b, NULL, where, l->v[i].line);
      er_buf_reset(&first);
      er_buf_printf(&first, "interrupted by signal %d", er_interrupted());
      worst = ER_STEP_FATAL;
      break;
    }
    if (!*b->label) { /* a top-level step: the progress line shows it */
      char what[200];
      snprintf(what, sizeof what, "%s %zu '%s'", phase, i + 1, l->v[i].name);
      progress_step(b->sc, what);
    }
    t0 = er_now_ms();
    rc = run_step(b, &l->v[i], phase, i, deadline);
    if (!*b->label) {
      record_step(b, phase, &l->v[i], i, t0, rc);
      progress_step(b->sc, NULL);
      verbose_flush(b);
    }
    if (rc != ER_STEP_OK) {
      if (worst == ER_STEP_OK)
        er_buf_append(&first, b->detail.data ? b->detail.data : "",
                      b->detail.len);
      if (rc > worst)
        worst = rc;
      if (!keep_going)
        break;
    }
  }
  er_buf_reset(&b->detail);
  er_buf_append(&b->detail, first.data ? first.data : "", first.len);
  er_buf_free(&first);
  return worst;
}

/* ---- group ops (parallel, repeat, group) ------------------------------- */

static int op_run_steps(er_exec_t *x, const json_t *steps, const char *label) {
  branch_t *b = x->rt;
  int rc = ER_STEP_OK;
  char *saved = b->label;
  er_buf_t lab = ER_BUF_INIT(512);
  er_buf_printf(&lab, "%s%s%s", saved, *saved && *label ? " " : "", label);
  b->label = er_buf_steal(&lab);
  for (size_t i = 0; i < json_array_size(steps); i++) {
    er_step_t st;
    const json_t *step = json_array_get(steps, i);
    const char *k;
    json_t *v;
    char name[256];
    memset(&st, 0, sizeof st);
    st.step = step;
    json_object_foreach((json_t *)step, k, v) {
      const er_action_t *a = er_action_find(k);
      if (a) {
        st.action = a;
        st.args = a->whole_step ? (json_t *)step : v;
      } else if (!strcmp(k, "timeout") && json_is_string(v)) {
        er_parse_duration(json_string_value(v), &st.timeout_ms);
      }
    }
    if (!st.action) {
      er_buf_puts(x->detail, "step without an action");
      rc = ER_STEP_FATAL;
      break;
    }
    if (json_is_string(json_object_get(step, "name")))
      snprintf(name, sizeof name, "%s",
               json_string_value(json_object_get(step, "name")));
    else
      snprintf(name, sizeof name, "%s #%zu", st.action->name, i + 1);
    st.name = name;
    if (er_interrupted()) {
      rc = ER_STEP_FATAL;
      break;
    }
    rc = run_step(b, &st, "step", i, x->deadline_ms);
    if (rc != ER_STEP_OK)
      break;
  }
  free(b->label);
  b->label = saved;
  return rc;
}

static er_exec_t *op_branch_new(er_exec_t *x, const char *label) {
  branch_t *parent = x->rt;
  er_buf_t lab = ER_BUF_INIT(512);
  branch_t *b;
  er_exec_t *bx = calloc(1, sizeof *bx);
  json_t *caps = json_object();
  if (!bx || !caps) {
    free(bx);
    json_decref(caps);
    return NULL;
  }
  er_buf_printf(&lab, "%s%s[%s]", parent->label, *parent->label ? " " : "",
                label);
  b = branch_new(parent->sc, er_tmpl_clone(parent->t), er_buf_cstr(&lab));
  er_buf_free(&lab);
  if (!b) {
    free(bx);
    json_decref(caps);
    return NULL;
  }
  b->dir = parent->dir;
  b->calls = parent->calls;
  exec_init(bx, b, x->deadline_ms, caps);
  bx->polling = x->polling;
  return bx;
}

static void op_branch_join(er_exec_t *x, er_exec_t *bx, bool failed) {
  branch_t *parent = x->rt;
  branch_t *b = bx->rt;
  const char *k;
  json_t *v;
  er_buf_append(&parent->log, b->log.data ? b->log.data : "", b->log.len);
  json_object_foreach(b->captured, k, v) capture_set(parent, k, v);
  if (failed) {
    if (x->detail->len)
      er_buf_puts(x->detail, "\n");
    if (b->failed_step)
      er_buf_printf(x->detail, "%s: ", b->failed_step);
    er_buf_append(x->detail, b->detail.data ? b->detail.data : "",
                  b->detail.len);
    if (!parent->failed_step && b->failed_step) {
      parent->failed_step = er_strdup(b->failed_step);
      parent->failed_line = b->failed_line;
    }
  }
  json_decref(bx->captures);
  branch_free(b);
  free(bx);
}

static void op_set_var(er_exec_t *x, const char *name, json_t *value) {
  branch_t *b = x->rt;
  er_tmpl_set(b->t, name, value);
}

static const struct er_stepfile *op_use_file(er_exec_t *x, const json_t *step) {
  branch_t *b = x->rt;
  return er_scenario_use(b->sc->s, step);
}

/* A call of a step file: the branch's connections, a scope of the
 * run-wide names only, its own log and detail. */
static er_exec_t *op_call_new(er_exec_t *x, const char *label,
                              const char *dir) {
  branch_t *parent = x->rt;
  er_buf_t lab = ER_BUF_INIT(512);
  branch_t *b;
  er_exec_t *cx;
  json_t *caps;
  if (parent->calls >= ER_USE_DEPTH_MAX)
    return NULL;
  cx = calloc(1, sizeof *cx);
  caps = json_object();
  if (!cx || !caps) {
    free(cx);
    json_decref(caps);
    return NULL;
  }
  er_buf_printf(&lab, "%s%s%s", parent->label, *parent->label ? " " : "",
                label);
  b = branch_new(parent->sc, er_tmpl_clone(parent->sc->r->base),
                 er_buf_cstr(&lab));
  er_buf_free(&lab);
  if (!b) {
    free(cx);
    json_decref(caps);
    return NULL;
  }
  er_session_free(b->session);
  b->session = parent->session;
  b->session_borrowed = true;
  b->dir = dir;
  b->calls = parent->calls + 1;
  exec_init(cx, b, x->deadline_ms, caps);
  cx->polling = x->polling;
  return cx;
}

static void op_call_join(er_exec_t *x, er_exec_t *cx, bool failed) {
  branch_t *parent = x->rt;
  branch_t *b = cx->rt;
  er_buf_append(&parent->log, b->log.data ? b->log.data : "", b->log.len);
  if (failed) {
    if (x->detail->len)
      er_buf_puts(x->detail, "\n");
    er_buf_append(x->detail, b->detail.data ? b->detail.data : "",
                  b->detail.len);
    if (!parent->failed_step && b->failed_step) {
      parent->failed_step = er_strdup(b->failed_step);
      parent->failed_line = 0; /* a line of the step file, not the scenario */
    }
  }
  json_decref(cx->captures);
  branch_free(b);
  free(cx);
}

static const er_group_ops_t g_group_ops = {
    .run_steps = op_run_steps,
    .branch_new = op_branch_new,
    .branch_join = op_branch_join,
    .set_var = op_set_var,
    .use_file = op_use_file,
    .call_new = op_call_new,
    .call_join = op_call_join,
};

/* Sets the scenario's vars in order, each may use the ones before. */
static int set_vars(branch_t *b) {
  const char *k;
  json_t *v;
  json_object_foreach(b->sc->s->vars, k, v) {
    er_err_t err = {0};
    json_t *val = er_tmpl_expand(b->t, v, &err);
    if (!val) {
      er_buf_printf(&b->detail, "vars.%s: %s", k, err.msg);
      return -1;
    }
    er_tmpl_set(b->t, k, val);
  }
  return 0;
}

static char *first_line(const char *s) {
  size_t n = strcspn(s, "\n");
  char *out = malloc(n + 1);
  if (out) {
    memcpy(out, s, n);
    out[n] = '\0';
  }
  return out;
}

static void modules_scenario_end(scen_t *sc, branch_t *b) {
  size_t nmod;
  const er_module_t *const *mods = er_modules_all(&nmod);
  for (size_t i = nmod; i-- > 0;) {
    er_err_t err = {0};
    if (mods[i]->scenario_end &&
        mods[i]->scenario_end(er_env_json(sc->r->env), sc->r->shared,
                              sc->scenario, &err) != 0)
      er_buf_printf(&b->log, "[end] %s: %s\n", mods[i]->name, err.msg);
  }
}

/* Failure diagnostics (diag.h) into reports/<run>/<slug>/ and appended
 * to the detail. */
static void diagnose(scen_t *sc, branch_t *b) {
  char slug[256], dir[1400];
  size_t n = 0;
  const char *src = sc->s->file ? sc->s->file : "scenario";
  const char *base = strrchr(src, '/');
  er_diag_in_t in;
  char *text;
  /* <folder>-<file name without .json>, [a-z0-9-] only */
  const char *dirname = sc->s->dir ? strrchr(sc->s->dir, '/') : NULL;
  char both[600];
  snprintf(both, sizeof both, "%s-%s",
           dirname      ? dirname + 1
           : sc->s->dir ? sc->s->dir
                        : "",
           base ? base + 1 : src);
  if (strrchr(both, '.') &&
      (er_str_has_suffix(both, ".json") || er_str_has_suffix(both, ".yaml") ||
       er_str_has_suffix(both, ".yml")))
    *strrchr(both, '.') = '\0';
  if (sc->s->case_name) /* each case of a table has its own */
    snprintf(both + strlen(both), sizeof both - strlen(both), "-%s",
             sc->s->case_name);
  for (const char *p = both; *p && n + 1 < sizeof slug; p++) {
    char c = *p;
    if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
      c = '-';
    if (c == '-' && (n == 0 || slug[n - 1] == '-'))
      continue;
    slug[n++] = c;
  }
  slug[n] = '\0';
  snprintf(dir, sizeof dir, "%s/%s", sc->r->run_dir, n ? slug : "scenario");
  memset(&in, 0, sizeof in);
  in.env = er_env_json(sc->r->env);
  in.shared = sc->r->shared;
  in.scenario = sc->scenario;
  in.detail = er_buf_cstr(&b->detail);
  in.failed_step = b->failed_step;
  in.dir = dir;
  in.budget_ms = 8000;
  text = er_diag_collect(&in);
  if (text) {
    const char *d = er_buf_cstr(&b->detail);
    size_t dl = strlen(d);
    er_buf_printf(&b->detail, "%s%s", dl && d[dl - 1] != '\n' ? "\n" : "",
                  text);
    free(text);
  }
}

static void run_scenario(run_t *r, const er_scenario_t *s, er_result_t *res) {
  scen_t sc;
  branch_t *b = NULL;
  er_err_t err = {0};
  int rc = ER_STEP_OK, trc;
  size_t nmod;
  const er_module_t *const *mods = er_modules_all(&nmod);
  int64_t deadline;
  char *message = NULL;

  memset(&sc, 0, sizeof sc);
  sc.r = r;
  sc.s = s;
  sc.started_ms = er_now_ms();
  pthread_mutex_init(&sc.prog.mu, NULL);
  progress_live(&sc, true);
  deadline = sc.started_ms + s->timeout_ms;
  sc.scenario = er_session_new();
  b = branch_new(&sc, er_tmpl_clone(r->base), "");
  if (!b || !sc.scenario) {
    res->status = ER_RES_ERROR;
    res->message = er_strdup("out of memory");
    goto out;
  }
  for (size_t i = 0; i < nmod; i++) {
    if (mods[i]->scenario_begin &&
        mods[i]->scenario_begin(er_env_json(r->env), r->shared, sc.scenario,
                                &err) != 0) {
      er_buf_printf(&b->detail, "%s: %s", mods[i]->name, err.msg);
      b->failed_step = er_strdup("scenario start");
      rc = ER_STEP_ERROR;
      goto finish;
    }
  }
  if (set_vars(b) != 0) {
    b->failed_step = er_strdup("vars");
    rc = ER_STEP_FATAL;
    goto finish;
  }
  rc = run_steps(b, &s->setup, "setup", deadline, false);
  if (rc == ER_STEP_OK)
    rc = run_steps(b, &s->steps, "step", deadline, false);
  /* diagnostics before scenario_end and teardown, which may clean the
   * evidence */
  if (rc != ER_STEP_OK && rc != ER_STEP_FATAL && !er_interrupted())
    diagnose(&sc, b);
  message = er_strdup(er_buf_cstr(&b->detail));
  /* teardown always runs, with a budget of its own, also after Ctrl-C;
   * modules first undo what the steps did (faults healed), so teardown
   * reaches the servers */
  er_interrupt_hold(true);
  modules_scenario_end(&sc, b);
  trc = run_steps(b, &s->teardown, "teardown", er_now_ms() + TEARDOWN_BUDGET_MS,
                  true);
  if (rc == ER_STEP_OK && trc != ER_STEP_OK) {
    rc = trc;
    free(message);
    message = er_strdup(er_buf_cstr(&b->detail));
  }
  er_interrupt_hold(false);
finish:
  res->duration_ms = er_now_ms() - sc.started_ms;
  if (rc == ER_STEP_OK) {
    res->status = ER_RES_PASS;
  } else {
    er_buf_t m = ER_BUF_INIT(2048);
    char *fl;
    res->status = rc == ER_STEP_FATAL ? ER_RES_ERROR : ER_RES_FAIL;
    if (!message)
      message = er_strdup(er_buf_cstr(&b->detail));
    res->failed_step = b->failed_step;
    b->failed_step = NULL;
    if (b->failed_line > 0)
      res->line = b->failed_line;
    res->detail = message;
    message = NULL;
    fl = first_line(res->detail ? res->detail : "");
    er_buf_printf(&m, "%s: %s", res->failed_step ? res->failed_step : "?",
                  fl ? fl : "");
    free(fl);
    res->message = er_buf_steal(&m);
  }
  verbose_flush(b);
  res->log = er_buf_steal(&b->log);
  res->steps = sc.recs;
  res->nsteps = sc.nrecs;
  sc.recs = NULL;
  sc.nrecs = 0;
out:
  er_step_recs_free(sc.recs, sc.nrecs);
  free(message);
  branch_free(b);
  er_session_free(sc.scenario);
  progress_live(&sc, false);
  pthread_mutex_destroy(&sc.prog.mu);
}

/* {"skip": {"if": ...}}, decided now with the run's names: true when the
 * scenario is skipped (res says why) or the condition could not be
 * evaluated (res is an error). */
static bool skip_holds(run_t *r, const er_scenario_t *s, er_result_t *res) {
  er_tmpl_t *t = er_tmpl_clone(r->base);
  er_buf_t why = ER_BUF_INIT(2048);
  er_err_t err = {0};
  bool holds = false;
  if (!t) {
    er_errf(&err, ER_E_ENV, "out of memory");
  } else if (er_cond_eval(t, s->skip_if, &holds, &why, &err) == 0) {
    if (holds) {
      er_buf_t m = ER_BUF_INIT(4096);
      er_buf_printf(&m, "%s (%s)", s->skip_reason ? s->skip_reason : "skipped",
                    er_buf_cstr(&why));
      res->status = ER_RES_SKIP;
      res->message = er_buf_steal(&m);
    }
    er_buf_free(&why);
    er_tmpl_free(t);
    return holds;
  }
  res->status = ER_RES_ERROR;
  res->failed_step = er_strdup("skip");
  res->message = er_strdup(err.msg);
  res->detail = er_strdup(err.msg);
  er_buf_free(&why);
  er_tmpl_free(t);
  return true;
}

static void result_free_fields(er_result_t *res) {
  er_step_recs_free(res->steps, res->nsteps);
  free(res->message);
  free(res->failed_step);
  free(res->detail);
  free(res->log);
}

static int write_report(run_t *r) {
  er_err_t err = {0};
  if (er_junit_write(&r->results, r->junit_path, &err) != 0) {
    fprintf(r->o->err, "eventrig: cannot write the JUnit report: %s\n",
            err.msg);
    return -1;
  }
  if (r->o->json_path &&
      er_json_report_write(&r->results, r->o->json_path, &err) != 0) {
    fprintf(r->o->err, "eventrig: cannot write the JSON report: %s\n", err.msg);
    return -1;
  }
  if (r->o->html_path &&
      er_html_report_write(&r->results, r->o->html_path, &err) != 0) {
    fprintf(r->o->err, "eventrig: cannot write the HTML report: %s\n", err.msg);
    return -1;
  }
  return 0;
}

/* ---- the run --------------------------------------------------------- */

static int setup_dirs(run_t *r, er_err_t *err) {
  const char *rd = r->o->report_dir ? r->o->report_dir : "reports";
  snprintf(r->report_dir, sizeof r->report_dir, "%s", rd);
  snprintf(r->run_dir, sizeof r->run_dir, "%s/%s", rd, r->run_id);
  if (r->o->junit_path)
    snprintf(r->junit_path, sizeof r->junit_path, "%s", r->o->junit_path);
  else
    snprintf(r->junit_path, sizeof r->junit_path, "%s/junit.xml", rd);
  if (er_mkdirs(r->run_dir, err) != 0)
    return -1;
  {
    /* the JUnit file's folder must exist too */
    char dir[1100];
    char *slash;
    snprintf(dir, sizeof dir, "%s", r->junit_path);
    slash = strrchr(dir, '/');
    if (slash && slash != dir) {
      *slash = '\0';
      if (er_mkdirs(dir, err) != 0)
        return -1;
    }
  }
  return 0;
}

static int start_environment(run_t *r, er_err_t *err) {
  er_diags_t diags = {0};
  size_t nmod;
  const er_module_t *const *mods = er_modules_all(&nmod);
  const json_t *spec;
  char logdir[1200];
  int rc = -1;

  r->env = er_env_load(r->o->env_path, &diags);
  if (!r->env) {
    load_diags_print(r, &diags);
    er_errf(err, ER_E_INPUT, "the environment file is not usable");
    goto out;
  }
  er_tmpl_set_env_vars(r->base, NULL);
  r->modules_begun = true;
  for (size_t i = 0; i < nmod; i++) {
    if (mods[i]->run_begin &&
        mods[i]->run_begin(er_env_raw(r->env), r->base, r->shared, err) != 0)
      goto out;
  }
  if (er_env_resolve(r->env, r->base, &diags) != 0) {
    load_diags_print(r, &diags);
    er_errf(err, ER_E_INPUT, "the environment file is not usable");
    goto out;
  }
  for (size_t i = 0; i < nmod; i++) {
    if (mods[i]->env_ready &&
        mods[i]->env_ready(er_env_json(r->env), r->shared, err) != 0)
      goto out;
  }
  spec = json_object_get(er_env_json(r->env), "services");
  snprintf(logdir, sizeof logdir, "%s/services", r->run_dir);
  if (spec && json_array_size(spec) > 0) {
    if (er_mkdirs(logdir, err) != 0)
      goto out;
    r->services = er_services_new(spec, er_env_base_dir(r->env), logdir, err);
    if (!r->services)
      goto out;
    if (er_services_start(r->services, err) != 0)
      goto out;
    /* service steps find them here; the runner keeps ownership */
    if (er_session_put(r->shared, "services", r->services, NULL) != 0) {
      er_errf(err, ER_E_ENV, "out of memory");
      goto out;
    }
  }
  for (size_t i = 0; i < nmod; i++) {
    if (mods[i]->preflight &&
        mods[i]->preflight(er_env_json(r->env), r->shared, err) != 0)
      goto out;
  }
  rc = 0;
out:
  if (diags.n && rc == 0)
    load_diags_print(r, &diags); /* warnings */
  er_diags_free(&diags);
  return rc;
}

static void stop_environment(run_t *r) {
  size_t nmod;
  const er_module_t *const *mods = er_modules_all(&nmod);
  er_interrupt_hold(true); /* stopping must finish even after Ctrl-C */
  /* services first: they may still be talking to what modules run (the
   * embedded broker, fault proxies) */
  if (r->services) {
    er_services_stop(r->services);
    er_services_free(r->services);
    r->services = NULL;
  }
  if (r->modules_begun) {
    for (size_t i = nmod; i-- > 0;)
      if (mods[i]->run_end)
        mods[i]->run_end(r->shared);
    r->modules_begun = false;
  }
  if (r->base)
    er_tmpl_set_env_vars(r->base, NULL);
  er_env_free(r->env);
  r->env = NULL;
  er_interrupt_hold(false);
}

/* ---- the scenarios, one after another or -j at once ------------------ */

static void result_start(er_result_t *res, const er_scenario_t *s) {
  memset(res, 0, sizeof *res);
  res->classname = s->classname;
  res->name = s->name;
  res->file = s->file;
  res->relfile = s->relfile;
  res->line = 1;
}

/* Why s is not run (a skipped result), or NULL. */
static const char *skip_reason(const run_t *r, const er_scenario_t *s,
                               size_t failed) {
  const er_run_opts_t *o = r->o;
  if (s->skip)
    return s->skip;
  if (o->filter && !er_scenario_matches(s, o->filter))
    return "filtered out";
  if (o->fail_fast && failed > 0)
    return "--fail-fast";
  return NULL;
}

/* True when s is not run: res is a skipped result (or an error when its
 * skip condition could not be evaluated). */
static bool not_run(run_t *r, const er_scenario_t *s, size_t failed,
                    er_result_t *res) {
  const char *why = skip_reason(r, s, failed);
  if (why) {
    res->status = ER_RES_SKIP;
    res->message = er_strdup(why);
    return true;
  }
  return s->skip_if && skip_holds(r, s, res);
}

/* Prints, records and writes one result, then frees its fields. */
static void result_done(run_t *r, er_result_t *res) {
  pthread_mutex_lock(&r->prog.mu);
  progress_clear(r);
  er_console_result(&r->con, res);
  pthread_mutex_unlock(&r->prog.mu);
  er_results_add(&r->results, res);
  result_free_fields(res);
  write_report(r);
}

static void scenario_start_line(run_t *r, const char *name) {
  pthread_mutex_lock(&r->prog.mu);
  progress_clear(r);
  er_console_scenario_start(&r->con, name);
  pthread_mutex_unlock(&r->prog.mu);
}

/* Returns how many failed or errored. */
static size_t run_serial(run_t *r, er_scenario_t **sv, size_t ns) {
  size_t failed = 0;
  for (size_t i = 0; i < ns; i++) {
    er_result_t res;
    const er_scenario_t *s = sv[i];
    result_start(&res, s);
    if (er_interrupted())
      break;
    if (not_run(r, s, failed, &res)) {
      if (res.status == ER_RES_ERROR)
        failed++;
    } else {
      scenario_start_line(r, s->name);
      run_scenario(r, s, &res);
      if (res.status == ER_RES_FAIL || res.status == ER_RES_ERROR)
        failed++;
    }
    result_done(r, &res);
  }
  return failed;
}

/* -j N: N workers start the scenarios that may run together first (in
 * file order), then those that run alone (schedule.h), each when none
 * other runs; results are reported in the order of a serial run. */
typedef struct sched {
  run_t *r;
  er_scenario_t **sv;
  size_t ns;
  er_result_t *res;
  bool *done, *alone;
  size_t *order;  /* start order: indices into sv */
  size_t next;    /* the next of order to start */
  size_t out;     /* the next to report */
  size_t running; /* scenarios running now */
  bool alone_now; /* one that runs alone is running */
  size_t failed;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} sched_t;

/* Reports the finished scenarios that come next in order (under q->mu). */
static void report_ready(sched_t *q) {
  while (q->out < q->ns && q->done[q->out])
    result_done(q->r, &q->res[q->out++]);
}

static void *sched_worker(void *arg) {
  sched_t *q = arg;
  pthread_mutex_lock(&q->mu);
  while (q->next < q->ns && !er_interrupted()) {
    size_t i = q->order[q->next];
    const er_scenario_t *s = q->sv[i];
    result_start(&q->res[i], s);
    if (not_run(q->r, s, q->failed, &q->res[i])) {
      if (q->res[i].status == ER_RES_ERROR)
        q->failed++;
      q->done[i] = true;
      q->next++;
      report_ready(q);
      continue;
    }
    if (q->alone[i] ? q->running > 0 : q->alone_now) {
      struct timespec ts; /* wake now and then to see a signal */
      er_deadline_ts(&ts, 200);
      pthread_cond_timedwait(&q->cv, &q->mu, &ts);
      continue;
    }
    q->next++;
    q->running++;
    q->alone_now = q->alone[i];
    pthread_mutex_unlock(&q->mu);
    scenario_start_line(q->r, s->name);
    run_scenario(q->r, s, &q->res[i]);
    pthread_mutex_lock(&q->mu);
    q->running--;
    if (q->alone[i])
      q->alone_now = false;
    if (q->res[i].status == ER_RES_FAIL || q->res[i].status == ER_RES_ERROR)
      q->failed++;
    q->done[i] = true;
    report_ready(q);
    pthread_cond_broadcast(&q->cv);
  }
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

static size_t run_parallel(run_t *r, er_scenario_t **sv, size_t ns) {
  sched_t q;
  pthread_t th[64];
  int nth = 0, jobs = r->o->jobs > 64 ? 64 : r->o->jobs;
  memset(&q, 0, sizeof q);
  q.r = r;
  q.sv = sv;
  q.ns = ns;
  q.res = calloc(ns ? ns : 1, sizeof *q.res);
  q.done = calloc(ns ? ns : 1, sizeof *q.done);
  q.alone = calloc(ns ? ns : 1, sizeof *q.alone);
  q.order = calloc(ns ? ns : 1, sizeof *q.order);
  if (!q.res || !q.done || !q.alone || !q.order) {
    free(q.res);
    free(q.done);
    free(q.alone);
    free(q.order);
    return run_serial(r, sv, ns); /* out of memory: one at a time */
  }
  for (size_t i = 0; i < ns; i++)
    q.alone[i] = er_schedule_exclusive(sv[i], NULL, 0);
  {
    size_t k = 0;
    for (size_t i = 0; i < ns; i++)
      if (!q.alone[i])
        q.order[k++] = i;
    for (size_t i = 0; i < ns; i++)
      if (q.alone[i])
        q.order[k++] = i;
  }
  pthread_mutex_init(&q.mu, NULL);
  if (er_cond_init_mono(&q.cv) != 0) /* cannot happen on Linux; then */
    pthread_cond_init(&q.cv, NULL);  /* its waits just poll */
  for (int t = 0; t < jobs; t++)
    if (pthread_create(&th[nth], NULL, sched_worker, &q) == 0)
      nth++;
  if (nth == 0)
    sched_worker(&q);
  for (int t = 0; t < nth; t++)
    pthread_join(th[t], NULL);
  /* an interrupted run: what finished, in order, the rest left out */
  for (size_t i = q.out; i < ns; i++) {
    if (q.done[i])
      result_done(r, &q.res[i]);
    else
      result_free_fields(&q.res[i]);
  }
  pthread_cond_destroy(&q.cv);
  pthread_mutex_destroy(&q.mu);
  free(q.res);
  free(q.done);
  free(q.alone);
  free(q.order);
  return q.failed;
}

/* Loads the scenarios of the paths into *sv (*ns of them) and keeps the
 * ones --shard / --rerun-failed take; a part with none gets its empty
 * report. Returns -1 to go on, else the exit code to end with (a message
 * printed). */
static int load_scenarios(run_t *r, er_scenario_t ***sv, size_t *ns,
                          er_diags_t *diags, er_err_t *err) {
  const er_run_opts_t *o = r->o;
  int code;
  if (load_all(o, true, 0, sv, ns, diags, err) != 0) {
    load_diags_print(r, diags);
    if (err->code)
      fprintf(o->err, "eventrig: %s\n", err->msg);
    return 2;
  }
  if (diags->n)
    load_diags_print(r, diags); /* warnings only */
  code = select_scenarios(o, *sv, ns);
  if (code == 0) { /* nothing in this part: an empty report, for merging */
    er_err_t e2 = {0};
    if (setup_dirs(r, &e2) != 0 || write_report(r) != 0)
      code = 3;
    else
      fprintf(o->out, "report: %s\n", r->junit_path);
  }
  return code;
}

/* The run-wide names, the shared session and the plan in it. Returns -1
 * to go on, else the exit code to end with (a message printed). */
static int make_plan(run_t *r, er_scenario_t **sv, size_t ns) {
  const er_run_opts_t *o = r->o;
  r->base = er_tmpl_new();
  r->shared = er_session_new();
  if (!r->base || !r->shared) {
    fprintf(o->err, "eventrig: out of memory\n");
    return 3;
  }
  er_tmpl_set(r->base, "run.id", json_string(r->run_id));
  /* the scenarios that will run, for modules (safety checks them) */
  /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
  r->plan_v = calloc(ns ? ns : 1, sizeof *r->plan_v);
  if (!r->plan_v) {
    fprintf(o->err, "eventrig: out of memory\n");
    return 3;
  }
  for (size_t i = 0; i < ns; i++)
    if (!sv[i]->skip && (!o->filter || er_scenario_matches(sv[i], o->filter)))
      r->plan_v[r->plan.n++] = sv[i];
  if (o->filter && count_selected(sv, ns, o->filter) == 0) {
    /* never a silent green: a typo in a CI filter must not pass */
    fprintf(o->err,
            "eventrig: --filter '%s' selects none of the %zu scenario(s) "
            "found; nothing was run (exit %d)\n",
            o->filter, ns, ER_EXIT_NONE_SELECTED);
    return ER_EXIT_NONE_SELECTED;
  }
  r->plan.v = (const er_scenario_t *const *)r->plan_v;
  if (er_session_put(r->shared, "plan", &r->plan, NULL) != 0 ||
      (o->env_path &&
       er_session_put(r->shared, "env_path", (void *)o->env_path, NULL) != 0)) {
    fprintf(o->err, "eventrig: out of memory\n");
    return 3;
  }
  return -1;
}

/* Starts the environment, runs the scenarios of sv and writes the report.
 * Returns the exit code. */
static int run_plan(run_t *r, er_scenario_t **sv, size_t ns, er_err_t *err) {
  const er_run_opts_t *o = r->o;
  size_t failed;
  int code;
  if (setup_dirs(r, err) != 0 ||
      er_session_put(r->shared, "run_dir", r->run_dir, NULL) != 0) {
    fprintf(o->err, "eventrig: %s\n", err->msg[0] ? err->msg : "out of memory");
    return 3;
  }
  if (start_environment(r, err) != 0) {
    if (er_interrupted())
      return 128 + er_interrupted();
    fprintf(o->err, "eventrig: %s\n", err->msg);
    return err->code == ER_E_INPUT ? 2 : 3;
  }
  /* a valid report from the start: a run stopped at once by a second
   * signal still leaves one, of what finished (nothing yet) */
  write_report(r);
  progress_start(r);
  failed = o->jobs > 1 ? run_parallel(r, sv, ns) : run_serial(r, sv, ns);
  progress_stop(r);
  er_console_summary(&r->con, &r->results, er_now_ms() - r->results.started_ms);
  if (er_interrupt_signal())
    code = 128 + er_interrupt_signal();
  else
    code = failed ? 1 : 0;
  if (write_report(r) != 0 && code == 0)
    code = 3;
  else
    fprintf(o->out, "report: %s\n", r->junit_path);
  return code;
}

int er_run(const er_run_opts_t *o) {
  run_t r;
  er_err_t err = {0};
  er_diags_t diags = {0};
  er_scenario_t **sv = NULL;
  size_t ns = 0;
  int code = 0;

  memset(&r, 0, sizeof r);
  r.o = o;
  er_console_init(&r.con, o->out);
  r.con.color = er_color_decide((er_color_t)o->color, o->out);
  r.con.verbose = o->verbose; /* "RUN   name" heads its streamed log */
  make_run_id(r.run_id);
  snprintf(r.results.suite_name, sizeof r.results.suite_name, "eventrig");
  er_rfc3339_now(r.results.timestamp);
  r.results.started_ms = er_now_ms();

  code = load_scenarios(&r, &sv, &ns, &diags, &err);
  if (code >= 0)
    goto out;
  code = make_plan(&r, sv, ns);
  if (code >= 0)
    goto out;
  if (o->dry_run) { /* dryrun.c: print the plan, start and touch nothing */
    code = er_dry_run(o, &r.plan, r.base);
    goto out;
  }
  code = run_plan(&r, sv, ns, &err);
out:
  stop_environment(&r);
  er_results_free(&r.results);
  er_session_free(r.shared);
  er_tmpl_free(r.base);
  free(r.plan_v);
  free_all(sv, ns);
  er_diags_free(&diags);
  return code;
}

int er_validate(const er_run_opts_t *o) {
  er_diags_t diags = {0};
  er_scenario_t **sv = NULL;
  size_t ns = 0;
  er_err_t err = {0};
  er_console_t con;
  int code;

  er_console_init(&con, o->out);
  con.color = er_color_decide((er_color_t)o->color, o->err);
  /* a large file is checked a step at a time: its plan is not run */
  load_all(o, false, ER_SCENARIO_LEAN_BYTES, &sv, &ns, &diags, &err);
  if (o->env_path) {
    er_env_t *e = er_env_load(o->env_path, &diags);
    er_env_free(e);
  }
  er_diags_print(&diags, o->err, con.color);
  if (err.code)
    fprintf(o->err, "eventrig: %s\n", err.msg);
  fprintf(o->out, "%zu scenario(s) valid, %zu error(s), %zu warning(s)\n", ns,
          diags.errors, diags.warnings);
  code = (diags.errors || err.code) ? 2 : 0;
  free_all(sv, ns);
  er_diags_free(&diags);
  return code;
}

int er_list(const er_run_opts_t *o) {
  er_diags_t diags = {0};
  er_scenario_t **sv = NULL;
  size_t ns = 0;
  er_err_t err = {0};
  int code = 0;

  if (load_all(o, false, 0, &sv, &ns, &diags, &err) != 0) {
    er_diags_print(&diags, o->err, false);
    if (err.code)
      fprintf(o->err, "eventrig: %s\n", err.msg);
    code = 2;
    goto out;
  }
  for (size_t i = 0; i < ns; i++) {
    const er_scenario_t *s = sv[i];
    char *tags = er_json_brief(s->tags, 200);
    if (o->filter && !er_scenario_matches(s, o->filter)) {
      free(tags);
      continue;
    }
    fprintf(o->out, "%s\t%s\t%s%s%s\n", s->file, s->name, tags ? tags : "[]",
            s->skip      ? "\tskip: "
            : s->skip_if ? "\tskip if it holds: "
                         : "",
            s->skip      ? s->skip
            : s->skip_if ? s->skip_reason
                         : "");
    free(tags);
  }
out:
  free_all(sv, ns);
  er_diags_free(&diags);
  return code;
}
