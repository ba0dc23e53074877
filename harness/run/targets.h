/* targets.h: outside targets of a run that several run-wide modules use.
 *
 * The Kafka cluster of the run is set up by the kafka module
 * (steps/act_kafka.c: the embedded broker in run_begin, a real cluster in
 * preflight) and read by safety, the stale-state audit and diagnostics on
 * failure. It is kept in the run's shared session, so none of them calls
 * into a step module: they only read what was put here.
 */
#ifndef ER_TARGETS_H
#define ER_TARGETS_H

#include <jansson.h>

#include "adapters/kafka.h"
#include "base/util.h"
#include "run/exec.h"

/* The run's Kafka cluster, or NULL (not set up yet, or no kafka module
 * in this run). Borrowed; valid until the module's run_end. */
er_kafka_t *er_target_kafka(er_session_t *shared);
/* Records k (borrowed: its owner, the kafka module, frees it after
 * run_end) as the run's Kafka cluster. Returns 0, or -1 with err when
 * memory ran out. */
int er_target_kafka_set(er_session_t *shared, er_kafka_t *k, er_err_t *err);

/* A real cluster from a resolved env["kafka"] object: its "bootstrap" and
 * "config" (librdkafka properties; numbers and booleans as text). Does not
 * connect yet (er_kafka_connect). NULL with err: ER_E_INPUT for a bad
 * config value. Caller frees with er_kafka_free. */
er_kafka_t *er_target_kafka_from_env(const json_t *kc, er_err_t *err);

#endif
