/* exec.h: the runner's side of action.h: creating sessions, and helpers
 * actions share. */
#ifndef ER_EXEC_H
#define ER_EXEC_H

#include "lang/action.h"

er_session_t *er_session_new(void);
/* Closes every connection put into s (reverse order) and frees s. */
void er_session_free(er_session_t *s);

/* A string from the environment: env[section][key], or NULL. Borrowed. */
const char *er_exec_env_str(const er_exec_t *x, const char *section,
                            const char *key);
/* path relative to the scenario's folder (absolute paths unchanged).
 * Caller frees. */
char *er_exec_path(const er_exec_t *x, const char *path);

#endif
