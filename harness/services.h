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
 * PR_SET_PDEATHSIG fires when the creating *thread* ends: call
 * er_services_start from the main thread (or one that outlives the
 * services).
 */
#ifndef ER_SERVICES_H
#define ER_SERVICES_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

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
/* Stops all started services in reverse order and reaps them. Safe to
 * call twice and after a partial start. Not cut short by er_interrupted():
 * stopping is what follows an interrupt, and each service's stop timeout
 * bounds it. */
void er_services_stop(er_services_t *s);
/* Stops (if needed) and frees. s may be NULL. */
void er_services_free(er_services_t *s);

/* Last n lines that a service wrote to its log during this run (caller
 * frees; "" when none), or NULL for an unknown name. */
char *er_services_log_tail(er_services_t *s, const char *name, int n);
/* Pid (= process group id) of a started service, or -1. For diagnostics
 * and tests. */
pid_t er_services_pid(const er_services_t *s, const char *name);

/* Finds a free TCP port on 127.0.0.1 (bind to port 0, read it, close).
 * Returns the port, or -1 with err (ER_E_ENV). */
int er_free_port(er_err_t *err);

#endif
