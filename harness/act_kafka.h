/* act_kafka.h: what other modules (safety, audit, diagnostics) may ask
 * the "kafka" module of a run. */
#ifndef ER_ACT_KAFKA_H
#define ER_ACT_KAFKA_H

#include "action.h"
#include "kafka.h"

/* The run's Kafka target: the embedded broker (from run_begin on) or the
 * real cluster (from preflight on); NULL before that or when the module
 * is not set up. Borrowed from shared; valid until run_end. */
er_kafka_t *er_act_kafka_target(er_session_t *shared);

#endif
