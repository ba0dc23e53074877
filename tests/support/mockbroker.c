/* mockbroker.c: a standalone Kafka broker for tests, librdkafka's mock
 * cluster in a process of its own.
 *
 *   mockbroker [-b BROKERS] TOPIC:PARTITIONS...
 *
 * Starts a mock cluster of BROKERS brokers (default 1) with the given
 * topics, prints its bootstrap address as one line on stdout, and runs
 * until SIGTERM or SIGINT. Exit codes: 0 after a signal, 2 bad arguments,
 * 3 the cluster could not be started.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
  fprintf(stderr, "usage: mockbroker [-b BROKERS] TOPIC:PARTITIONS...\n");
  return 2;
}

int main(int argc, char **argv) {
  int brokers = 1;
  int first = 1;
  char errstr[512];
  rd_kafka_t *rk = NULL;
  int rc = 3;

  if (argc > 2 && strcmp(argv[1], "-b") == 0) {
    char *end = NULL;
    long b = strtol(argv[2], &end, 10);
    if (end == argv[2] || *end || b < 1 || b > 16)
      return usage();
    brokers = (int)b;
    first = 3;
  }
  if (first >= argc)
    return usage();
  for (int i = first; i < argc; i++) {
    const char *colon = strrchr(argv[i], ':');
    char *end = NULL;
    if (colon == NULL || colon == argv[i] || strtol(colon + 1, &end, 10) < 1 ||
        *end)
      return usage();
  }

  /* the signals are taken with sigwait: block them before librdkafka
   * starts its threads, which inherit the mask */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  /* test.mock.num.brokers makes the handle create and own the cluster */
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char n[16];
  snprintf(n, sizeof n, "%d", brokers);
  if (rd_kafka_conf_set(conf, "test.mock.num.brokers", n, errstr,
                        sizeof errstr) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "mockbroker: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return 3;
  }
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == NULL) {
    fprintf(stderr, "mockbroker: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return 3;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(rk);
  if (mc == NULL) {
    fprintf(stderr, "mockbroker: no mock cluster\n");
    goto out;
  }
  for (int i = first; i < argc; i++) {
    char topic[256];
    const char *colon = strrchr(argv[i], ':');
    size_t len = (size_t)(colon - argv[i]);
    if (len >= sizeof topic) {
      fprintf(stderr, "mockbroker: topic name too long\n");
      goto out;
    }
    memcpy(topic, argv[i], len);
    topic[len] = '\0';
    int parts = atoi(colon + 1);
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, topic, parts, 1);
    if (err) {
      fprintf(stderr, "mockbroker: topic %s: %s\n", topic,
              rd_kafka_err2str(err));
      goto out;
    }
  }
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);

  int sig = 0;
  sigwait(&set, &sig);
  rc = 0;
out:
  rd_kafka_destroy(rk);
  return rc;
}
