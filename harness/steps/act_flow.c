/* act_flow.c: "await", "hold" and "sleep".
 *
 * {"await": {"within": "10s", "interval": "250ms", "attempts": 5,
 *            "until": {<check>: {...}}, <check>: {...}}}
 *   polls the check until it holds or `within` passes: first poll at
 *   once, then, without `interval`, after 10 ms, backing off by 1.5x up
 *   to 250 ms; with `interval`, every `interval` (no backoff).
 *   `attempts` caps the polls (within still bounds them). `until` is a
 *   check run after each poll that did not hold: when it holds, the await
 *   fails at once (a state that will not change: "failed", ...).
 * {"hold": {"for": "2s", "interval": "100ms", <check>: {...}}}
 *   the check must hold at every poll for the whole duration, including
 *   a last poll at its end.
 * {"sleep": {"for": "500ms"}}
 *   waits; `eventrig validate` warns, since await/hold say what is meant.
 * <check> is any action marked `check` in actions.c (http, redis,
 * postgres, postgres.expect, ...). */
#include <string.h>

#include "lang/jsonx.h"
#include "run/exec.h"

/* the least time worth starting one more poll with */
#define MIN_POLL_MS 50

static const er_keyspec_t await_keys[] = {
    {"within", ER_T_STRING | ER_T_DURATION, true, NULL, NULL},
    {"interval", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"attempts", ER_T_INT, false, NULL, NULL},
    {"until", ER_T_CHECK, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t no_keys[] = {{NULL, 0, false, NULL, NULL}};

static const er_keyspec_t hold_keys[] = {
    {"for", ER_T_STRING | ER_T_DURATION, true, NULL, NULL},
    {"interval", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t sleep_keys[] = {
    {"for", ER_T_STRING | ER_T_DURATION, true, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

/* The inner check: the one key that is not one of the wrapper's own. */
static const er_action_t *inner_check(const json_t *args,
                                      const er_keyspec_t *own,
                                      const json_t **inner_args) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)args, k, v) {
    bool mine = false;
    for (const er_keyspec_t *ks = own; ks->name; ks++)
      if (strcmp(ks->name, k) == 0)
        mine = true;
    if (!mine) {
      const er_action_t *a = er_action_find(k);
      if (a && a->check) {
        *inner_args = v;
        return a;
      }
    }
  }
  return NULL;
}

/* One poll: run the check with a private detail buffer and captures. */
static int poll_once(er_exec_t *x, const er_action_t *a, const json_t *iargs,
                     int64_t deadline, er_buf_t *detail, json_t *caps) {
  er_exec_t sub = *x;
  sub.deadline_ms = deadline < x->deadline_ms ? deadline : x->deadline_ms;
  sub.polling = true;
  sub.detail = detail;
  sub.captures = caps;
  er_buf_reset(detail);
  json_object_clear(caps);
  return a->run(&sub, iargs);
}

/* One await: its check and the retry controls. */
typedef struct await {
  const er_action_t *a, *ua; /* the check, the until check (or NULL) */
  const json_t *iargs, *uargs;
  int64_t within, start, deadline, interval;
  bool fixed;         /* a given interval: no backoff */
  long long attempts; /* 0: no cap */
  int polls;
  bool capped, stopped; /* by attempts, by until */
} await_t;

/* After a poll that did not hold: the until check. ER_STEP_OK when it
 * holds (stop), ER_STEP_FATAL with its detail in detail, else
 * ER_STEP_FAIL. */
static int poll_until(er_exec_t *x, await_t *w, er_buf_t *detail) {
  er_buf_t ud = ER_BUF_INIT(16 * 1024);
  json_t *caps = json_object();
  int rc = caps ? poll_once(x, w->ua, w->uargs, w->deadline, &ud, caps)
                : ER_STEP_ERROR;
  if (rc == ER_STEP_FATAL) {
    er_buf_reset(detail);
    er_buf_append(detail, ud.data ? ud.data : "", ud.len);
  }
  er_buf_free(&ud);
  json_decref(caps);
  return rc == ER_STEP_OK || rc == ER_STEP_FATAL ? rc : ER_STEP_FAIL;
}

/* Polls until the check holds, fails for good, or a bound is reached.
 * The last poll's detail in detail, its captures in caps. */
static int poll_loop(er_exec_t *x, await_t *w, er_buf_t *detail, json_t *caps) {
  er_buf_t prev = ER_BUF_INIT(16 * 1024);
  int64_t wait = w->fixed ? w->interval : 10;
  int rc;
  for (;;) {
    int64_t left;
    w->polls++;
    rc = poll_once(x, w->a, w->iargs, w->deadline, detail, caps);
    er_progress_note(x, w->polls, er_buf_cstr(detail));
    if (rc == ER_STEP_OK || rc == ER_STEP_FATAL)
      break;
    /* a poll cut off by the deadline says only that; keep the mismatch
     * seen before it, which is what the user needs */
    if (rc == ER_STEP_ERROR && er_now_ms() >= w->deadline && prev.len) {
      er_buf_reset(detail);
      er_buf_append(detail, prev.data, prev.len);
    }
    er_buf_reset(&prev);
    er_buf_append(&prev, detail->data ? detail->data : "", detail->len);
    if (w->attempts && w->polls >= w->attempts) {
      w->capped = true;
      break;
    }
    if (w->ua) {
      int urc = poll_until(x, w, detail);
      w->stopped = urc == ER_STEP_OK;
      if (urc != ER_STEP_FAIL) {
        rc = urc == ER_STEP_FATAL ? urc : rc;
        break;
      }
    }
    left = w->deadline - er_now_ms();
    if (er_interrupted() || left <= MIN_POLL_MS)
      break;
    /* the last poll starts early enough to have time to answer */
    er_sleep_ms(wait < left - MIN_POLL_MS ? wait : left - MIN_POLL_MS);
    if (!w->fixed)
      wait = wait * 3 / 2 > w->interval ? w->interval : wait * 3 / 2;
  }
  er_buf_free(&prev);
  return rc;
}

/* The failure detail of an await that did not hold. */
static void await_failure(er_exec_t *x, const await_t *w, const char *took,
                          er_buf_t *detail) {
  char within_txt[32];
  er_fmt_duration(w->within, within_txt);
  if (w->stopped && w->ua)
    er_buf_printf(x->detail,
                  "%s did not hold; stopped after %d poll(s) (%s) because "
                  "the until check (%s) held\n",
                  w->a->name, w->polls, took, w->ua->name);
  else if (w->capped)
    er_buf_printf(x->detail,
                  "%s did not hold after %d attempts (%s, limit %s)\n",
                  w->a->name, w->polls, took, within_txt);
  else if (er_interrupted() && er_now_ms() < w->deadline)
    er_buf_printf(x->detail,
                  "await interrupted after %s (limit %s, %d polls of %s)\n",
                  took, within_txt, w->polls, w->a->name);
  else
    er_buf_printf(x->detail, "%s did not hold within %s (%d polls%s)\n",
                  w->a->name, within_txt, w->polls,
                  w->deadline < w->start + w->within
                      ? ", cut short by the scenario timeout"
                      : "");
  er_buf_printf(x->detail, "last seen: %s", er_buf_cstr(detail));
}

static int run_await(er_exec_t *x, const json_t *args) {
  await_t w;
  const json_t *until = json_object_get(args, "until");
  er_buf_t detail = ER_BUF_INIT(16 * 1024);
  json_t *caps = json_object();
  char took[32];
  int rc = ER_STEP_FAIL;

  memset(&w, 0, sizeof w);
  w.a = inner_check(args, await_keys, &w.iargs);
  w.ua = until ? inner_check(until, no_keys, &w.uargs) : NULL;
  w.within = er_json_duration(args, "within", 0);
  w.fixed = json_object_get(args, "interval") != NULL;
  w.interval = er_json_duration(args, "interval", 250);
  w.attempts = json_integer_value(json_object_get(args, "attempts"));
  w.start = er_now_ms();
  w.deadline = w.start + w.within;
  if (!w.a || !caps || (until && !w.ua)) {
    er_buf_puts(x->detail, w.a && caps ? "await: until holds no check"
                                       : "await: no check to poll");
    rc = ER_STEP_FATAL;
    goto out;
  }
  if (w.deadline > x->deadline_ms)
    w.deadline = x->deadline_ms;
  rc = poll_loop(x, &w, &detail, caps);
  er_fmt_duration(er_now_ms() - w.start, took);
  if (rc == ER_STEP_OK) {
    json_object_update(x->captures, caps);
    er_exec_log(x, "%s held after %d poll(s), %s", w.a->name, w.polls, took);
  } else if (rc != ER_STEP_FATAL) {
    await_failure(x, &w, took, &detail);
    rc = ER_STEP_FAIL;
  } else {
    er_buf_puts(x->detail, er_buf_cstr(&detail));
  }
out:
  er_buf_free(&detail);
  json_decref(caps);
  return rc;
}

static void validate_await(const json_t *args, er_diag_t *d) {
  const json_t *n = json_object_get(args, "attempts");
  const json_t *until = json_object_get(args, "until");
  const char *k;
  json_t *v;
  if (json_is_integer(n) && json_integer_value(n) < 1)
    er_diag_error(d, "/attempts", "attempts is 1 or more");
  json_object_foreach((json_t *)until, k, v) {
    if (json_is_object(v) && json_object_get(v, "capture")) {
      char at[300], path[320];
      er_json_pointer_join(at, sizeof at, "/until", k);
      er_json_pointer_join(path, sizeof path, at, "capture");
      er_diag_error(d, path,
                    "the until check captures nothing (it only stops the "
                    "polling): capture in the polled check");
    }
  }
}

static int run_hold(er_exec_t *x, const json_t *args) {
  const json_t *iargs = NULL;
  const er_action_t *a = inner_check(args, hold_keys, &iargs);
  int64_t len = er_json_duration(args, "for", 0);
  int64_t interval = er_json_duration(args, "interval", 100);
  int64_t start = er_now_ms();
  int64_t end = start + len;
  int polls = 0, rc = ER_STEP_OK;
  er_buf_t detail = ER_BUF_INIT(16 * 1024);
  json_t *caps = json_object();
  char t1[32], t2[32];

  if (!a || !caps) {
    er_buf_puts(x->detail, "hold: no check to poll");
    rc = ER_STEP_FATAL;
    goto out;
  }
  if (end > x->deadline_ms) {
    er_fmt_duration(len, t1);
    er_buf_printf(x->detail,
                  "hold for %s does not fit in what is left of the scenario "
                  "timeout",
                  t1);
    rc = ER_STEP_FAIL;
    goto out;
  }
  for (;;) {
    int64_t now;
    polls++;
    /* a poll started within the hold may take until the step's deadline:
     * a slow answer is waited for, not taken for a broken condition */
    rc = poll_once(x, a, iargs, x->deadline_ms, &detail, caps);
    er_progress_note(x, polls, er_buf_cstr(&detail));
    now = er_now_ms();
    if (rc != ER_STEP_OK || er_interrupted())
      break;
    if (now >= end)
      break;
    er_sleep_ms(interval < end - now ? interval : end - now);
  }
  if (rc == ER_STEP_OK && er_interrupted())
    rc = ER_STEP_ERROR;
  er_fmt_duration(er_now_ms() - start, t1);
  er_fmt_duration(len, t2);
  if (rc == ER_STEP_OK) {
    json_object_update(x->captures, caps);
    er_exec_log(x, "%s held for %s (%d polls)", a->name, t2, polls);
  } else if (rc != ER_STEP_FATAL) {
    if (er_interrupted())
      er_buf_printf(x->detail,
                    "hold interrupted after %s (of %s, %d polls of %s)\n", t1,
                    t2, polls, a->name);
    else
      er_buf_printf(x->detail, "%s stopped holding after %s of %s (poll %d)\n",
                    a->name, t1, t2, polls);
    er_buf_printf(x->detail, "last seen: %s", er_buf_cstr(&detail));
    rc = ER_STEP_FAIL;
  } else {
    er_buf_puts(x->detail, er_buf_cstr(&detail));
  }
out:
  er_buf_free(&detail);
  json_decref(caps);
  return rc;
}

static int run_sleep(er_exec_t *x, const json_t *args) {
  int64_t ms = er_json_duration(args, "for", 0);
  int64_t left = er_exec_left_ms(x);
  if (ms > left) {
    er_buf_puts(x->detail, "sleep is longer than what is left of the "
                           "scenario timeout");
    er_sleep_ms(left);
    return ER_STEP_FAIL;
  }
  return er_sleep_ms(ms) == 0 ? ER_STEP_OK : ER_STEP_ERROR;
}

static void validate_sleep(const json_t *args, er_diag_t *d) {
  (void)args;
  er_diag_warn(d, "",
               "sleep makes a scenario slow and flaky; use await (until "
               "something holds) or hold (stays true) instead");
}

const er_action_t er_act_await = {.name = "await",
                                  .keys = await_keys,
                                  .wraps_check = true,
                                  .validate = validate_await,
                                  .run = run_await};
const er_action_t er_act_hold = {
    .name = "hold", .keys = hold_keys, .wraps_check = true, .run = run_hold};
const er_action_t er_act_sleep = {.name = "sleep",
                                  .keys = sleep_keys,
                                  .warn_on_use = true,
                                  .validate = validate_sleep,
                                  .run = run_sleep};
