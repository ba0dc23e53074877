/* audit.h: the stale-state audit: state earlier runs left behind that
 * makes new events vanish (idempotency keys in Redis) or arrive late
 * (consumer groups with lag).
 *
 * Environment (env["state"], see env.h):
 *   "idempotency_keys": ["els:idempotency:v2:*", ...]   SCAN MATCH patterns
 *                                                       (needs redis.url)
 *   "consumer_groups": {"els-group": ["topic", ...]}    lag per topic
 *   "stale": "warn" (default) | "fail"                  what a run does
 *                                                       when any is found
 *
 * Used twice:
 *   - the "audit" module (er_mod_audit): at preflight of `eventrig run`
 *     (services up, the kafka module's preflight done). Stale state is a
 *     warning printed to stderr (the module writes there itself: modules
 *     have no printer), or with "stale": "fail" an ER_E_ENV error that
 *     stops the run (exit 3) before any scenario, after printing the
 *     report. The embedded broker is fresh per run: groups are audited
 *     only on a real cluster.
 *   - `eventrig audit --env FILE` (er_audit_command): the servers as they
 *     are, without starting the environment's services.
 *
 * "Stale" means: any key matches a pattern, or any group has lag > 0 (a
 * partition with nothing committed counts its whole retained range, as
 * er_kafka_group_lag does).
 */
#ifndef ER_AUDIT_H
#define ER_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "adapters/kafka.h"
#include "adapters/redis.h"
#include "base/util.h"
#include "run/exec.h"

#define ER_AUDIT_MAX_SCANNED 100000 /* keys examined per pattern, at most */
#define ER_AUDIT_KEEP 10            /* keys listed (with TTL) per pattern */
#define ER_AUDIT_TIMEOUT_MS 15000   /* default budget of one audit */

/* What "state" asks for, validated. Borrowed from the env JSON. */
typedef struct er_audit_cfg {
  const json_t *patterns; /* array of non-empty strings, or NULL */
  const json_t *groups;   /* object: group -> array of topics, or NULL */
  bool fail;              /* "stale": "fail" */
} er_audit_cfg_t;

/* Checks env["state"] (raw or resolved). Returns 1 when there is
 * something to audit, 0 when not (no state, or neither patterns nor
 * groups), -1 with err (ER_E_INPUT, naming the key) on a bad value. */
int er_audit_config(const json_t *env, er_audit_cfg_t *cfg, er_err_t *err);

typedef struct er_audit_keys {
  char *pattern;
  er_redis_scan_ttl_t scan;
} er_audit_keys_t;

typedef struct er_audit_lag {
  char *group;
  char *topic;
  er_kafka_lag_t lag; /* lag.n == 0: the topic does not exist */
} er_audit_lag_t;

/* The report. Everything owned; free with er_audit_free. */
typedef struct er_audit {
  char *redis; /* redacted URL audited, or NULL */
  er_audit_keys_t *keys;
  size_t nkeys;
  char *kafka;          /* bootstrap audited, or NULL */
  er_audit_lag_t *lags; /* one per (group, topic), in file order */
  size_t nlags;
  long long stale_keys; /* keys found over every pattern */
  int64_t stale_lag;    /* lag summed over every group and topic */
  bool stale;           /* stale_keys > 0 || stale_lag > 0 */
  er_buf_t text;        /* rendered report, redacted (ends with '\n') */
} er_audit_t;

/* Runs the audit of env (resolved JSON) into *out (zeroed first; free it
 * with er_audit_free also after a failure):
 *   - patterns: on redis (if NULL, a connection to env's redis.url is
 *     made and closed here; no redis.url -> ER_E_INPUT); skip_redis
 *     (non-NULL) skips them with that note instead;
 *   - groups: on k; k NULL skips them with kafka_note (e.g. "embedded
 *     broker: nothing to audit").
 * Every call ends by deadline_ms. Returns 0 (see out->stale), or -1 with
 * err: ER_E_ENV when a server could not be reached or answered in time
 * (the message names it), ER_E_INPUT for a bad state section. */
int er_audit_run(const json_t *env, er_redis_t *redis, const char *skip_redis,
                 er_kafka_t *k, const char *kafka_note, int64_t deadline_ms,
                 er_audit_t *out, er_err_t *err);
void er_audit_free(er_audit_t *a);

/* `eventrig audit --env FILE`: loads and resolves the environment without
 * starting anything (names modules would provide get placeholders), then
 * audits. Prints the report to out, problems to errf. Returns the exit
 * code: 0 clean, 1 stale state found, 2 unusable input (including an
 * environment with nothing to audit), 3 a server could not be reached. */
int er_audit_command(const char *env_path, FILE *out, FILE *errf);

/* The module (actions.c lists it after "kafka"). */
extern const er_module_t er_mod_audit;

#endif
