/* services.h: child processes eventrig starts before the first scenario
 * and stops after the last.
 *
 * Each service runs in its own process group (pgid = its pid) with stdin
 * from /dev/null, stdout and stderr appended to a log file, the
 * environment of eventrig plus the service's "env", and its "cwd"
 * (default: the environment's base folder). Stop sends SIGTERM to the
 * group, waits up to its stop timeout (default 10s) for the whole group
 * to exit, then SIGKILLs the group, and reaps every child.
 *
 * No child survives eventrig: services are stopped on every exit path,
 * each child gets PR_SET_PDEATHSIG(SIGKILL), and a small keeper process
 * per service (in its own process group, holding one end of a socket
 * whose other end only eventrig has) SIGKILLs the service's whole group
 * when eventrig dies without stopping it, which PDEATHSIG alone cannot
 * do for grandchildren (or after a uid change, as with Postgres).
 *
 * Process-wide effect: er_services_start makes eventrig a child
 * subreaper (PR_SET_CHILD_SUBREAPER), so that grandchildren orphaned when
 * a service's leader exits become eventrig's children and are reaped by
 * stop instead of lingering as zombies under an init that may not reap.
 * Only children in a service's process group are reaped here
 * (waitpid(-pgid)); SIGCHLD must not be set to SIG_IGN.
 *
 * PR_SET_PDEATHSIG fires when the creating *thread* ends, so no service
 * is forked by a caller's thread: every fork of a service (and of its
 * keeper) happens on a thread of the services object, created by
 * er_services_start with every signal blocked and joined by
 * er_services_free. Services may thus be (re)started from any thread,
 * e.g. a parallel branch that ends right after (see er_services_control).
 *
 * Groups: a service may belong to a group (the resolved spec's "group",
 * which env.c writes for each instance NAME-i of a service declared with
 * "instances"); er_services_control on a group name acts on every member.
 *
 * Thread safety: er_services_control, er_services_state, er_services_pid
 * and er_services_log_tail may be called from several threads at once
 * (each service has its own lock, held for the whole of an operation on
 * it). er_services_new, _start, _stop and _free are for one thread while
 * no other call runs.
 */
#ifndef ER_SERVICES_H
#define ER_SERVICES_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/util.h"

typedef struct er_services er_services_t;

/* spec: the resolved "services" array of the environment (NULL or empty:
 * no services); copied, so the caller need not keep it. base_dir
 * (absolute) for relative paths; log_dir gets <name>.log per service
 * unless a service gives "log". Returns NULL with err (ER_E_INPUT) when a
 * resolved value is unusable. Caller frees with er_services_free. */
er_services_t *er_services_new(const json_t *spec, const char *base_dir,
                               const char *log_dir, er_err_t *err);
/* Starts every service in order and waits for each to be ready within
 * its deadline ("within", default 30s). On failure: err (code ER_E_ENV;
 * ER_E_INTR when er_interrupted() cut a wait short) names the service,
 * what was awaited and for how long, or its exit status, with the last
 * lines of its log; already started services keep running until
 * er_services_stop. Call once. */
int er_services_start(er_services_t *s, er_err_t *err);
/* Stops all started services in reverse order and reaps them (those
 * stopped already by er_services_control are skipped). Safe to call twice
 * and after a partial start. Not cut short by er_interrupted():
 * stopping is what follows an interrupt, and each service's stop timeout
 * bounds it. */
void er_services_stop(er_services_t *s);
/* Stops (if needed) and frees. s may be NULL. */
void er_services_free(er_services_t *s);

/* Last n lines that a service wrote to its log during this run (caller
 * frees; "" when none), or NULL for an unknown name. */
char *er_services_log_tail(er_services_t *s, const char *name, int n);
/* Pid (= process group id) of the last start of a service (also after
 * it was stopped), or -1 when never started or unknown. For diagnostics
 * and tests. */
pid_t er_services_pid(const er_services_t *s, const char *name);

typedef enum er_svc_state {
  ER_SVC_UNKNOWN = -1,    /* no service of that name */
  ER_SVC_NOT_STARTED = 0, /* never started */
  ER_SVC_RUNNING,         /* started and its leader has not exited */
  ER_SVC_STOPPED,         /* stopped or killed by eventrig */
  ER_SVC_EXITED,          /* its leader exited on its own */
} er_svc_state_t;

/* The state of one service (not a group), reaping it if it exited. */
er_svc_state_t er_services_state(er_services_t *s, const char *name);
/* "running", "stopped", ... */
const char *er_svc_state_name(er_svc_state_t st);

typedef enum er_svc_op {
  ER_SVC_OP_STOP,    /* SIGTERM to its group, its stop_timeout, SIGKILL */
  ER_SVC_OP_KILL,    /* SIGKILL to its group at once (a crash) */
  ER_SVC_OP_START,   /* start it again and await its readiness */
  ER_SVC_OP_RESTART, /* stop, then start */
} er_svc_op_t;

const char *er_svc_op_name(er_svc_op_t op); /* "stop", ... */

/* Applies op to the service called name, or to every member of the group
 * called name (stop and kill in reverse order, start in order; restart
 * stops them all, then starts them all). Stopping a stopped service and
 * starting a running one do nothing (said in report); starting one that
 * exited on its own cleans up what is left of it first. A started
 * service gets a new keeper and the same guarantees as at the first
 * start, whatever thread calls this.
 * Readiness after a start is awaited for ready_ms (0: the service's own
 * ready.within), never past deadline_ms (er_now_ms() clock; 0: none).
 * Stopping is bounded by the stop timeout and is not cut short by an
 * interrupt; the readiness wait is.
 * report (may be NULL) gets one line per service acted on, with pids
 * ("service 'web-2' (pid 123) stopped by SIGTERM in 12ms").
 * Returns 0, or -1 with err: ER_E_INPUT for an unknown name (with a
 * did-you-mean and the names there are), ER_E_ENV when a service could
 * not be started or was not ready in time (with the last lines of its
 * log), ER_E_INTR when an interrupt cut the readiness wait short. Stops
 * at the first service that fails. Call after er_services_start. */
int er_services_control(er_services_t *s, const char *name, er_svc_op_t op,
                        int64_t ready_ms, int64_t deadline_ms, er_buf_t *report,
                        er_err_t *err);

/* Starts again, in order, every service that er_services_control stopped
 * or killed (state ER_SVC_STOPPED; not those that exited on their own)
 * and awaits each one's readiness (its own ready.within): what a
 * scenario stopped is up again for the next one. report as for
 * er_services_control. Returns 0, or -1 with err (the first failure; the
 * other services are still started). */
int er_services_start_stopped(er_services_t *s, er_buf_t *report,
                              er_err_t *err);

#endif
