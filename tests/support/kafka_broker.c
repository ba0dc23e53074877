/* kafka_broker.c: an embedded Kafka broker (librdkafka's mock cluster) in a
 * process of its own, for tests and benchmarks that need a broker outside
 * the process under test.
 *
 *   kafka_broker [-b BROKERS] [TOPIC[:PARTITIONS]]...
 *
 * Prints the bootstrap address on one line, then keeps the broker up until
 * SIGTERM or SIGINT, then stops it and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"

static volatile sig_atomic_t g_stop; /* set by the signal handler */

static void on_signal(int signo) {
  (void)signo;
  g_stop = 1;
}

int main(int argc, char **argv) {
  er_err_t err = {0};
  er_kafka_t *k = NULL;
  int brokers = 1, first = 1, rc = 1;
  struct sigaction sa;

  if (argc > 2 && strcmp(argv[1], "-b") == 0) {
    brokers = atoi(argv[2]);
    first = 3;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  k = er_kafka_embedded(brokers, &err);
  if (!k) {
    fprintf(stderr, "kafka_broker: %s\n", err.msg);
    goto out;
  }
  for (int i = first; i < argc; i++) {
    char name[200];
    const char *colon = strchr(argv[i], ':');
    int parts = colon ? atoi(colon + 1) : 1;
    size_t len = colon ? (size_t)(colon - argv[i]) : strlen(argv[i]);
    if (len == 0 || len >= sizeof name || parts < 1) {
      fprintf(stderr, "kafka_broker: bad topic '%s' (NAME[:PARTITIONS])\n",
              argv[i]);
      goto out;
    }
    memcpy(name, argv[i], len);
    name[len] = '\0';
    if (er_kafka_create_topic(k, name, parts, 1, er_now_ms() + 5000, &err) !=
        0) {
      fprintf(stderr, "kafka_broker: %s\n", err.msg);
      goto out;
    }
  }
  printf("%s\n", er_kafka_bootstrap(k));
  fflush(stdout);
  /* until a signal comes (checked every 100 ms) */
  while (!g_stop)
    er_sleep_ms(100);
  rc = 0;
out:
  er_kafka_free(k);
  return rc;
}
