/* act_service.c: the "service.stop", "service.kill", "service.start" and
 * "service.restart" steps: act on services the environment started.
 *
 * {"service.stop": {"name": "web-2"}}
 *   SIGTERM to the service's process group, its stop_timeout, SIGKILL.
 * {"service.kill": {"name": "web-2"}}
 *   SIGKILL to the group at once (a crash).
 * {"service.start": {"name": "web-2", "within": "20s"}}
 *   starts it again and waits for its readiness ("within" for each
 *   service started; default: the service's own ready.within), never past
 *   the scenario's deadline.
 * {"service.restart": {"name": "web-2", "within": "20s"}}
 *   stop, then start.
 * "name" is a service, or a service declared with "instances" (its group:
 * every instance). Stopping a stopped service and starting a running one
 * do nothing (the log says so). The log gives every pid. A name the
 * environment does not have is fatal, with a did-you-mean. Restarted
 * services are stopped at the end of the run like the others.
 *
 * The "services" module: after every scenario's teardown, the services a
 * step stopped or killed are started again (and awaited), so that the
 * next scenario starts with every service up; not after an interrupt.
 * Services that exited on their own are left as they are.
 * The services come from the run-wide registry ("services", put there by
 * the runner; services.h). */
#include <stdio.h>
#include <string.h>

#include "adapters/services.h"
#include "run/diag.h"
#include "run/exec.h"

#include "base/util.h"

static const er_keyspec_t stop_keys[] = {
    {"name", ER_T_STRING, true, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t start_keys[] = {
    {"name", ER_T_STRING, true, NULL, NULL},
    {"within", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static int run_op(er_exec_t *x, const json_t *args, er_svc_op_t op) {
  const char *name = json_string_value(json_object_get(args, "name"));
  const char *within = json_string_value(json_object_get(args, "within"));
  er_services_t *s = x->shared ? er_session_get(x->shared, "services") : NULL;
  er_buf_t report = ER_BUF_INIT(16 * 1024);
  er_err_t err = {0};
  int64_t ready_ms = 0, deadline = x->deadline_ms;
  int rc;
  const char *line;

  if (!name || !*name) {
    er_buf_printf(x->detail, "service.%s: \"name\" must be a service name",
                  er_svc_op_name(op));
    return ER_STEP_FATAL;
  }
  if (!s) {
    er_buf_printf(x->detail,
                  "service.%s '%s': the environment starts no services "
                  "(give them in its \"services\" and run with --env)",
                  er_svc_op_name(op), name);
    return ER_STEP_FATAL;
  }
  if (within) {
    if (er_parse_duration(within, &ready_ms) != 0 || ready_ms <= 0) {
      er_buf_printf(x->detail,
                    "service.%s '%s': \"within\" must be a positive "
                    "duration such as \"20s\"",
                    er_svc_op_name(op), name);
      return ER_STEP_FATAL;
    }
  }
  rc = er_services_control(s, name, op, ready_ms, deadline, &report, &err);
  /* one log line per service acted on */
  line = er_buf_cstr(&report);
  while (*line) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    er_exec_log(x, "service.%s: %.*s", er_svc_op_name(op), (int)len, line);
    line += len + (nl ? 1 : 0);
  }
  er_buf_free(&report);
  if (op != ER_SVC_OP_START)
    er_diag_note_service(x, er_svc_op_name(op), name);
  if (rc == 0)
    return ER_STEP_OK;
  er_buf_printf(x->detail, "service.%s '%s': %s", er_svc_op_name(op), name,
                err.msg);
  return err.code == ER_E_INPUT ? ER_STEP_FATAL : ER_STEP_ERROR;
}

static int run_stop(er_exec_t *x, const json_t *args) {
  return run_op(x, args, ER_SVC_OP_STOP);
}
static int run_kill(er_exec_t *x, const json_t *args) {
  return run_op(x, args, ER_SVC_OP_KILL);
}
static int run_start(er_exec_t *x, const json_t *args) {
  return run_op(x, args, ER_SVC_OP_START);
}
static int run_restart(er_exec_t *x, const json_t *args) {
  return run_op(x, args, ER_SVC_OP_RESTART);
}

const er_action_t er_act_service_stop = {
    .name = "service.stop", .keys = stop_keys, .run = run_stop};
const er_action_t er_act_service_kill = {
    .name = "service.kill", .keys = stop_keys, .run = run_kill};
const er_action_t er_act_service_start = {
    .name = "service.start", .keys = start_keys, .run = run_start};
const er_action_t er_act_service_restart = {
    .name = "service.restart", .keys = start_keys, .run = run_restart};

/* After the teardown: what a step stopped is started again. */
static int services_scenario_end(const json_t *env, er_session_t *shared,
                                 er_session_t *scenario, er_err_t *err) {
  er_services_t *s = shared ? er_session_get(shared, "services") : NULL;
  (void)env;
  (void)scenario;
  if (!s || er_interrupt_signal())
    return 0;
  if (er_services_start_stopped(s, NULL, err) != 0)
    return -1;
  return 0;
}

const er_module_t er_mod_services = {.name = "services",
                                     .scenario_end = services_scenario_end};
