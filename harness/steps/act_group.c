/* act_group.c: step groups: "group", "repeat" and "parallel".
 *
 * {"group": {"steps": [...]}}
 *   runs its steps in order (a branch of a parallel step with several
 *   steps is a group).
 * {"repeat": {"count": 10 | "for": "5s", "steps": [...]}}
 *   runs its steps count times, or again and again until `for` has passed
 *   (at least once); ${repeat.index} is 1, 2, ... Stops at a failure.
 * {"parallel": {"steps": [step, step, ...]}}
 *   runs every step as its own branch at the same time, each on its own
 *   connections, released together by a start barrier once every branch's
 *   thread is up; waits for all, fails if any fails (all failures are
 *   reported). Captures of the branches are visible after the step. The
 *   log records when each branch started and ended, so overlap can be seen.
 * {"foreach": {"in": [..] | "${list}", "as": "essay", "steps": [...]}}
 * {"foreach": {"in_file": "events/essays.jsonl", "as": "essay", ...}}
 *   runs its steps once for each element of an array (a literal, a var,
 *   a capture, or a data file: the lines of a JSON Lines file, or a JSON
 *   or YAML file holding an array), the element bound to the name `as`
 *   and ${foreach.index} = 1, 2, ...; stops at a failure. An empty array
 *   runs nothing.
 * Nested steps are templated as they run, not before. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/jsonx.h"
#include "lang/template.h"
#include "run/exec.h"

#define MAX_BRANCHES 64

static const er_keyspec_t group_keys[] = {
    {"steps", ER_T_STEPS, true, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t repeat_keys[] = {
    {"count", ER_T_INT, false, NULL, NULL},
    {"for", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"steps", ER_T_STEPS, true, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t foreach_keys[] = {
    {"in", ER_T_ANY, false, NULL, NULL},
    {"in_file", ER_T_STRING | ER_T_DATA, false, NULL, NULL},
    {"as", ER_T_STRING | ER_T_BIND, true, NULL, NULL},
    {"steps", ER_T_STEPS, true, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t parallel_keys[] = {
    {"steps", ER_T_STEPS, true, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static int run_group(er_exec_t *x, const json_t *args) {
  return x->group->run_steps(x, json_object_get(args, "steps"), "group");
}

static void validate_repeat(const json_t *args, er_diag_t *d) {
  json_t *count = json_object_get(args, "count");
  json_t *dur = json_object_get(args, "for");
  if (!count == !dur)
    er_diag_error(d, "", "repeat needs exactly one of \"count\" or \"for\"");
  if (json_is_integer(count) &&
      (json_integer_value(count) < 1 || json_integer_value(count) > 1000000))
    er_diag_error(d, "/count", "count must be between 1 and 1000000");
}

static int run_repeat(er_exec_t *x, const json_t *args) {
  const json_t *steps = json_object_get(args, "steps");
  json_t *count = json_object_get(args, "count");
  json_t *dur = json_object_get(args, "for");
  int64_t until = 0, ms = 0;
  long long n = json_is_integer(count) ? json_integer_value(count) : 0;
  long long i;
  int rc = ER_STEP_OK;

  if (json_is_string(dur) &&
      er_parse_duration(json_string_value(dur), &ms) == 0)
    until = er_now_ms() + ms;
  for (i = 1;; i++) {
    char label[64];
    if (n > 0 && i > n)
      break;
    if (n == 0 && i > 1 && er_now_ms() >= until)
      break;
    snprintf(label, sizeof label, "repeat %lld", i);
    x->group->set_var(x, "repeat.index", json_integer(i));
    rc = x->group->run_steps(x, steps, label);
    if (rc != ER_STEP_OK)
      break;
  }
  if (rc == ER_STEP_OK)
    er_exec_log(x, "repeated %lld time(s)", i - 1);
  return rc;
}

static void validate_foreach(const json_t *args, er_diag_t *d) {
  const json_t *in = json_object_get(args, "in");
  const char *as = json_string_value(json_object_get(args, "as"));
  if (!in == !json_object_get(args, "in_file"))
    er_diag_error(d, "",
                  "foreach needs exactly one of \"in\" (an array, or a "
                  "${...} of one) and \"in_file\" (a data file)");
  if (in && !json_is_array(in) &&
      !(json_is_string(in) && strstr(json_string_value(in), "${")))
    er_diag_error(d, "/in",
                  "\"in\" is an array, or a ${...} that gives one, not %s",
                  er_json_type_noun(in));
  if (as && (!er_tmpl_name_ok(as) || er_tmpl_is_builtin(as)))
    er_diag_error(d, "/as",
                  "\"as\" names the element: '%s' cannot (letters, digits, "
                  "'_' and '-'; not a builtin such as env or run)",
                  as);
}

static int run_foreach(er_exec_t *x, const json_t *args) {
  const json_t *steps = json_object_get(args, "steps");
  const json_t *in = json_object_get(args, "in");
  const char *file = json_string_value(json_object_get(args, "in_file"));
  const char *as = json_string_value(json_object_get(args, "as"));
  er_err_t err = {0};
  json_t *items;
  size_t i;
  int rc = ER_STEP_OK;

  items =
      file ? er_exec_data(x, file, &err) : er_tmpl_expand(x->tmpl, in, &err);
  if (!items) {
    er_buf_printf(x->detail, "foreach: %s", err.msg);
    return ER_STEP_FATAL;
  }
  if (!json_is_array(items) || !as) {
    er_buf_printf(x->detail, "foreach: %s gives %s, not an array",
                  file ? file : "\"in\"", er_json_type_noun(items));
    json_decref(items);
    return ER_STEP_FATAL;
  }
  for (i = 0; i < json_array_size(items); i++) {
    char label[64];
    snprintf(label, sizeof label, "foreach %zu", i + 1);
    x->group->set_var(x, as, json_incref(json_array_get(items, i)));
    x->group->set_var(x, "foreach.index", json_integer((json_int_t)i + 1));
    rc = x->group->run_steps(x, steps, label);
    if (rc != ER_STEP_OK)
      break;
  }
  if (rc == ER_STEP_OK)
    er_exec_log(x, "foreach: %zu element(s)", i);
  json_decref(items);
  return rc;
}

/* The start barrier: branches wait until every thread is up and the gate
 * opens, so they start together. */
typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
} gate_t;

static void gate_wait(gate_t *g) {
  pthread_mutex_lock(&g->mu);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate_t *g) {
  pthread_mutex_lock(&g->mu);
  g->open = true;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

typedef struct branch_job {
  er_exec_t *bx;
  const json_t *step;
  gate_t *gate;
  int64_t t0_ms, start_ms, end_ms;
  int rc;
} branch_job_t;

static void *branch_main(void *arg) {
  branch_job_t *j = arg;
  json_t *one = json_array();
  gate_wait(j->gate);
  j->start_ms = er_now_ms();
  if (!one) {
    j->rc = ER_STEP_FATAL;
  } else {
    json_array_append(one, (json_t *)j->step);
    j->rc = j->bx->group->run_steps(j->bx, one, "");
    json_decref(one);
  }
  j->end_ms = er_now_ms();
  return NULL;
}

static void validate_parallel(const json_t *args, er_diag_t *d) {
  json_t *steps = json_object_get(args, "steps");
  if (json_is_array(steps) && json_array_size(steps) < 2)
    er_diag_warn(d, "/steps",
                 "parallel with fewer than two steps runs "
                 "nothing at the same time");
  if (json_is_array(steps) && json_array_size(steps) > MAX_BRANCHES)
    er_diag_error(d, "/steps", "at most %d parallel branches", MAX_BRANCHES);
}

static int run_parallel(er_exec_t *x, const json_t *args) {
  const json_t *steps = json_object_get(args, "steps");
  size_t n = json_array_size(steps), started = 0;
  branch_job_t *jobs = NULL;
  pthread_t *th = NULL;
  gate_t gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
  int rc = ER_STEP_OK;
  int64_t t0 = er_now_ms(), first_end = INT64_MAX, last_start = 0;

  if (n == 0 || n > MAX_BRANCHES) {
    er_buf_printf(x->detail, "parallel needs 1 to %d steps", MAX_BRANCHES);
    return ER_STEP_FATAL;
  }
  jobs = calloc(n, sizeof *jobs);
  th = calloc(n, sizeof *th);
  if (!jobs || !th) {
    er_buf_puts(x->detail, "parallel: out of memory");
    rc = ER_STEP_FATAL;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    char label[32];
    snprintf(label, sizeof label, "branch %zu", i + 1);
    jobs[i].bx = x->group->branch_new(x, label);
    jobs[i].step = json_array_get(steps, i);
    jobs[i].gate = &gate;
    jobs[i].t0_ms = t0;
    if (!jobs[i].bx) {
      er_buf_puts(x->detail, "parallel: out of memory");
      rc = ER_STEP_FATAL;
      goto out;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (pthread_create(&th[i], NULL, branch_main, &jobs[i]) != 0)
      break;
    started++;
  }
  for (size_t i = started; i < n; i++) {
    jobs[i].rc = ER_STEP_FATAL;
    er_buf_puts(jobs[i].bx->detail, "could not start a thread");
  }
  gate_open(&gate);
  for (size_t i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  for (size_t i = 0; i < n; i++) {
    if (jobs[i].rc > rc)
      rc = jobs[i].rc;
    if (jobs[i].end_ms < first_end)
      first_end = jobs[i].end_ms;
    if (jobs[i].start_ms > last_start)
      last_start = jobs[i].start_ms;
  }
  for (size_t i = 0; i < n; i++) {
    er_exec_log(x, "branch %zu: started +%lldms, ended +%lldms: %s", i + 1,
                (long long)(jobs[i].start_ms - t0),
                (long long)(jobs[i].end_ms - t0),
                jobs[i].rc == ER_STEP_OK ? "ok" : "FAILED");
    x->group->branch_join(x, jobs[i].bx, jobs[i].rc != ER_STEP_OK);
    jobs[i].bx = NULL;
  }
  /* every branch had started before the first one ended: they overlapped */
  er_exec_log(x,
              "parallel: %zu branches, last started +%lldms, first ended "
              "+%lldms (%s)",
              n, (long long)(last_start - t0), (long long)(first_end - t0),
              last_start <= first_end ? "all overlapped"
                                      : "not all overlapped");
out:
  if (jobs)
    for (size_t i = 0; i < n; i++)
      if (jobs[i].bx)
        x->group->branch_join(x, jobs[i].bx, false);
  free(jobs);
  free(th);
  return rc;
}

const er_action_t er_act_group = {
    .name = "group", .keys = group_keys, .raw_args = true, .run = run_group};
const er_action_t er_act_repeat = {.name = "repeat",
                                   .keys = repeat_keys,
                                   .raw_args = true,
                                   .validate = validate_repeat,
                                   .run = run_repeat};
const er_action_t er_act_foreach = {.name = "foreach",
                                    .keys = foreach_keys,
                                    .raw_args = true,
                                    .validate = validate_foreach,
                                    .run = run_foreach};
const er_action_t er_act_parallel = {.name = "parallel",
                                     .keys = parallel_keys,
                                     .raw_args = true,
                                     .validate = validate_parallel,
                                     .run = run_parallel};
