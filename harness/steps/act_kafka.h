/* act_kafka.h: what other modules (safety, audit, diagnostics) may ask
 * the "kafka" module of a run. */
#ifndef ER_ACT_KAFKA_H
#define ER_ACT_KAFKA_H

#include <jansson.h>

#include "adapters/kafka.h"
#include "run/exec.h"

/* The run's Kafka target: the embedded broker (from run_begin on) or the
 * real cluster (from preflight on); NULL before that or when the module
 * is not set up. Borrowed from shared; valid until run_end. */
er_kafka_t *er_act_kafka_target(er_session_t *shared);

/* A real cluster from a resolved env["kafka"] object: its "bootstrap" and
 * "config" (librdkafka properties; numbers and booleans as text). Does not
 * connect yet (er_kafka_connect). NULL with err: ER_E_INPUT for a bad
 * config value. Caller frees with er_kafka_free. */
er_kafka_t *er_act_kafka_connect(const json_t *kc, er_err_t *err);

#endif
