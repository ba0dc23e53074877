/* services.h: child processes eventrig starts before the first scenario
 * and stops after the last.
 *
 * Each service runs in its own process group, with stdout and stderr
 * appended to a log file; stop sends SIGTERM to the group, waits up to
 * its stop timeout, then SIGKILL. No child survives eventrig: services
 * are stopped on every exit path, and each child also gets
 * PR_SET_PDEATHSIG so a SIGKILLed eventrig does not leave it behind.
 */
#ifndef ER_SERVICES_H
#define ER_SERVICES_H

#include <jansson.h>
#include <stdint.h>

#include "util.h"

typedef struct er_services er_services_t;

/* spec: the resolved "services" array of the environment (borrowed, kept
 * alive by the caller); base_dir for relative paths; log_dir gets
 * <name>.log per service. */
er_services_t *er_services_new(const json_t *spec, const char *base_dir,
                               const char *log_dir, er_err_t *err);
/* Starts every service in order and waits for each to be ready within
 * its deadline. On failure: err (code ER_E_ENV) says which service, why,
 * and the last lines of its log; already started services keep running
 * until er_services_stop. */
int er_services_start(er_services_t *s, er_err_t *err);
/* Stops all running services in reverse order. Safe to call twice. */
void er_services_stop(er_services_t *s);
void er_services_free(er_services_t *s);

/* Last n lines of a service's log (caller frees), for diagnostics. */
char *er_services_log_tail(er_services_t *s, const char *name, int n);

/* Finds a free TCP port on 127.0.0.1. Returns the port or -1. */
int er_free_port(er_err_t *err);

#endif
