/* env.h: the environment file: where things are and what eventrig may
 * start or touch.
 *
 * {
 *   "ports": ["redis", "pg", "http"],       free loopback ports, ${port.X}
 *   "vars": {"SUT_URL": "http://127.0.0.1:${port.http}"},   ${env.SUT_URL}
 *   "redis": {"url": "redis://127.0.0.1:${port.redis}/0",
 *             "allow_flush": false},
 *   "postgres": {"dsn": "postgresql://postgres@127.0.0.1:${port.pg}/postgres"},
 *   "services": [
 *     {"name": "redis",
 *      "command": ["redis-server", "--port", "${port.redis}", ...],
 *      "env": {"K": "v"}, "cwd": "dir",
 *      "ready": {"tcp": "127.0.0.1:${port.redis}" | "http": "url" |
 *                "command": ["pg_isready", ...], "within": "20s"},
 *      "stop_timeout": "5s"}
 *   ]
 * }
 * Strings may use ${env.NAME} (process environment, ":-default" allowed),
 * ${port.NAME}, ${run.id} and earlier vars. Relative paths (cwd, command
 * programs containing '/') are relative to the environment file's folder's
 * parent when it is named ci/, else to the file's folder. Without --env,
 * an empty environment is used.
 */
#ifndef ER_ENV_H
#define ER_ENV_H

#include <jansson.h>

#include "scenario.h"
#include "template.h"
#include "util.h"

typedef struct er_env er_env_t;

/* Phase 1: loads and validates (problems with file:line:col into diags),
 * allocates the free ports. path may be NULL for the empty environment.
 * Returns NULL on errors. */
er_env_t *er_env_load(const char *path, er_diags_t *diags);
/* The environment as loaded, before templates are resolved. Borrowed. */
const json_t *er_env_raw(const er_env_t *e);
/* Phase 2: puts port.* and the env vars into t and resolves every
 * template of the file. Returns 0, or -1 with problems in diags. */
int er_env_resolve(er_env_t *e, er_tmpl_t *t, er_diags_t *diags);
void er_env_free(er_env_t *e);

/* The resolved JSON given to actions (er_exec_t.env). Borrowed. */
const json_t *er_env_json(const er_env_t *e);
/* Directory relative paths resolve against. Borrowed. */
const char *er_env_base_dir(const er_env_t *e);

#endif
