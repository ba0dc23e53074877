/* consumer.h: the Kafka side of the service: consumes
 * essay.content.provisioned.v1 in group SUT_GROUP_ID, processes each event
 * by the contract's steps 1-7 and publishes the resulting events.
 *
 * One thread (the caller of consumer_run) does all of it, one event at a
 * time: it owns the consumer, the producer, its two Redis connections (main
 * and guard) and its Postgres connection.
 */
#ifndef SUT_CONSUMER_H
#define SUT_CONSUMER_H

#include <librdkafka/rdkafka.h>

#include "sut.h"

typedef struct consumer consumer_t;

/* Applies "k=v,k=v" librdkafka properties to conf. Returns 0, or -1 with a
 * message in err. */
int kafka_conf_apply(rd_kafka_conf_t *conf, const char *kv, char *err,
                     size_t errlen);

/* Creates the Kafka clients and the connections (not connected yet). cfg
 * and m are borrowed and must outlive the consumer. Returns NULL with a
 * message in err (e.g. a bad SUT_KAFKA_CONFIG property). */
consumer_t *consumer_new(const sut_config_t *cfg, sut_metrics_t *m, char *err,
                         size_t errlen);

/* Waits until Postgres is reachable and the schema exists, retrying with
 * backoff. Returns 0, or -1 when sut_stop was set first. */
int consumer_wait_schema(consumer_t *c);

/* Subscribes and processes events until sut_stop is set. */
void consumer_run(consumer_t *c);

/* Closes the consumer group membership and flushes the producer, each
 * with a deadline of a few seconds, then frees everything. NULL is fine. */
void consumer_close(consumer_t *c);

#endif
