/* env.h: the environment file: where things are and what eventrig may
 * start or touch.
 *
 * {
 *   "ports": ["redis", "pg", "http"],       free loopback ports, ${port.X}
 *   "vars": {"SUT_URL": "http://127.0.0.1:${port.http}"},   ${env.SUT_URL}
 *   "redis": {"url": "redis://127.0.0.1:${port.redis}/0",
 *             "allow_flush": false,
 *             "test_target": {"allow": ["127.0.0.1:6379/0"],
 *                             "marker": "eventrig:test-target",
 *                             "claim_empty": true}},
 *   "postgres": {"dsn": "postgresql://postgres@127.0.0.1:${port.pg}/postgres",
 *                "test_target": {"databases": ["*_test"],
 *                                "marker_table": "eventrig_test_target"}},
 *   "state": {"idempotency_keys": ["app:idempotency:*"],
 *             "idempotency_key": "app:idempotency:${event.event_type}:..",
 *             "consumer_groups": {"group": ["topic", ...]},
 *             "stale": "warn" | "fail"},
 *   "secrets": ["API_TOKEN"],               names of secret vars (of
 *                                           "vars" or the process env)
 *   "fixtures": "fixtures",                 the fixtures root (fixture.h),
 *                                           relative like other paths
 *   "secret_headers": ["X-Tenant-Key"],     HTTP headers whose values are
 *                                           shown as *** (names or globs;
 *                                           Authorization, X-Api-Key,
 *                                           *-Token, ... always are)
 *   "http": {...free-form...},
 *   "kafka": {...free-form...},
 *   "services": [
 *     {"name": "redis",
 *      "command": ["redis-server", "--port", "${port.redis}", ...],
 *      "env": {"K": "v"}, "cwd": "dir", "log": "path",
 *      "ready": {"tcp": "127.0.0.1:${port.redis}" | "http": "url" |
 *                "command": ["pg_isready", ...], "within": "20s"},
 *      "stop_timeout": "5s"},
 *     {"name": "web", "instances": 3, "port_per_instance": "web",
 *      "command": ["python3", "-m", "http.server", "${instance.port}"],
 *      "env": {"SUT_INSTANCE": "${instance.name}"},
 *      "ready": {"tcp": "127.0.0.1:${instance.port}"}}
 *   ]
 * }
 * Instances: a service with "instances": N (1..16) becomes N services
 * NAME-1..NAME-N (in that order, each with "group": NAME in the resolved
 * JSON, so service steps can name one instance or the whole group), each
 * resolved with ${instance.index} (1..N), ${instance.name} ("NAME-i") and
 * ${instance.count} (N) in its own strings. "port_per_instance": "P"
 * allocates the ports P-1..P-N, usable anywhere as ${port.P-i} and in the
 * instance's own strings as ${instance.port}. ${instance...} in a service
 * without "instances" is an error, and so is a bare ${instance}.
 * Strings may use ${env.NAME} (the file's vars, then the process
 * environment; ":-default" allowed), ${port.NAME}, ${run.id}, names that
 * modules put into the template context before resolution
 * (${kafka.bootstrap}), and, in "vars", earlier vars. Relative paths (cwd,
 * log, command programs containing '/') are relative to the environment
 * file's folder's parent when that folder is named ci/, else to the file's
 * folder; bare program names are looked up in PATH. Without --env, an
 * empty environment is used.
 *
 * Two phases, because modules started in between (an embedded Kafka
 * broker) provide names the file may use:
 *   e = er_env_load(path, &diags);          parse, validate, pick ports
 *   ...modules' run_begin(er_env_raw(e), t, ...) put kafka.bootstrap...
 *   er_env_resolve(e, t, &diags);           expand every section
 *   er_env_json(e)                          what actions see
 */
#ifndef ER_ENV_H
#define ER_ENV_H

#include <jansson.h>

#include "base/util.h"
#include "lang/diags.h"
#include "lang/template.h"

typedef struct er_env er_env_t;

/* Reads, parses and validates the file (every problem goes to diags with
 * file:line:col) and allocates a free loopback port for each name of
 * "ports". path may be NULL for the empty environment. Returns NULL when
 * there were errors. Caller frees with er_env_free. */
er_env_t *er_env_load(const char *path, er_diags_t *diags);

/* Resolves the templates: puts port.NAME (integers) into t, expands
 * "vars" in file order (each may use earlier ones) into the object that
 * t consults for ${env.NAME} (er_tmpl_set_env_vars(t, ...); that object
 * belongs to e, so e must outlive t's expansions, or reset it with
 * er_tmpl_set_env_vars(t, NULL) before er_env_free), then expands every
 * other section. Problems go to diags with file:line:col. Call once.
 * Records the secrets (util.h er_secret_add): the values of the vars
 * named in "secrets", passwords of URLs and DSNs anywhere, secret-looking
 * kafka.config and services' env values (redact.h er_secrets_from_env).
 * Returns 0 or -1. */
int er_env_resolve(er_env_t *e, er_tmpl_t *t, er_diags_t *diags);

/* For commands that resolve the environment without starting anything
 * (run --dry-run, audit): puts into t the names modules would provide
 * during a run: kafka.bootstrap (the configured "bootstrap" expanded, or
 * "<kafka.bootstrap>" for the embedded broker) and
 * proxy.NAME.{port,host,addr,url} as "<proxy.NAME.addr>" and so on.
 * Call before er_env_resolve. Returns 0, or -1 if memory ran out. */
int er_env_set_placeholders(const json_t *raw, er_tmpl_t *t);

void er_env_free(er_env_t *e);

/* The JSON as loaded, before resolution (for modules' run_begin).
 * Borrowed, valid until er_env_free. */
const json_t *er_env_raw(const er_env_t *e);
/* The resolved JSON given to actions (er_exec_t.env): same shape as the
 * file, with "vars" holding the expanded values. NULL before a successful
 * er_env_resolve. Borrowed, valid until er_env_free. */
const json_t *er_env_json(const er_env_t *e);
/* Absolute directory relative paths resolve against. Borrowed. */
const char *er_env_base_dir(const er_env_t *e);
/* The port allocated for a name of "ports", or -1. */
int er_env_port(const er_env_t *e, const char *name);
/* The fixtures root the file names ("fixtures", fixture.h), absolute, or
 * NULL. Borrowed. The resolved JSON holds it as "fixtures" too. */
const char *er_env_fixtures(const er_env_t *e);
/* The same read from the file at path without loading it (scenarios are
 * loaded before the environment): NULL when it names none or cannot be
 * read (er_env_load reports why). Caller frees. */
char *er_env_peek_fixtures(const char *path);

#endif
