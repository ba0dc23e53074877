/* main.c: eventrig-sut, the reference system under test.
 *
 * Reads its configuration from the environment (see README.md), creates
 * the schema (waiting for Postgres), starts the HTTP API, then consumes
 * events until SIGTERM or SIGINT, and shuts down in a few seconds.
 *
 * Exit codes: 0 after a signal; 1 when it cannot start (e.g. the HTTP port
 * is taken); 2 on a bad configuration (unknown SUT_BUG, bad URL, bad
 * SUT_KAFKA_CONFIG property).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "http.h"
#include "rconn.h"
#include "sut.h"

volatile sig_atomic_t sut_stop = 0;

static void on_signal(int sig) {
  (void)sig;
  sut_stop = 1;
}

/* The variable's value, or def when it is unset or empty. */
static const char *env_or(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && v[0] ? v : def;
}

/* Fills cfg from the environment. Returns 0, or -1 with a message. */
static int load_config(sut_config_t *cfg, char *err, size_t errlen) {
  cfg->kafka_bootstrap = env_or("SUT_KAFKA_BOOTSTRAP", "127.0.0.1:9092");
  cfg->redis_url = env_or("SUT_REDIS_URL", "redis://127.0.0.1:6379/0");
  cfg->guard_redis_url = env_or("SUT_IDEMPOTENCY_REDIS_URL", cfg->redis_url);
  cfg->pg_dsn =
      env_or("SUT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/sut");
  cfg->group_id = env_or("SUT_GROUP_ID", "els-group");
  cfg->key_prefix = env_or("SUT_KEY_PREFIX", "els");
  cfg->instance = env_or("SUT_INSTANCE", "els-1");
  cfg->kafka_config = env_or("SUT_KAFKA_CONFIG", "");

  const char *port = env_or("SUT_HTTP_PORT", "8080");
  char *end = NULL;
  long p = strtol(port, &end, 10);
  if (end == port || *end || p < 1 || p > 65535) {
    snprintf(err, errlen, "SUT_HTTP_PORT=%s: not a port number", port);
    return -1;
  }
  cfg->http_port = (int)p;

  const char *bug = env_or("SUT_BUG", "");
  int b = sut_bug_parse(bug);
  if (b < 0) {
    snprintf(err, errlen,
             "unknown SUT_BUG value \"%s\" (known: spop-outside-multi, "
             "no-idempotency, envelope-hash, fail-closed, no-watch, "
             "no-retry, ready-unguarded, keep-key-on-error, no-ttl, "
             "commit-before-process, no-commit, poison-stall, key-collision, "
             "pg-fail-drop, ready-early, excess-silent; empty = correct "
             "service)",
             bug);
    return -1;
  }
  cfg->bug = (sut_bug_t)b;

  char host[256];
  int rport, db;
  if (rconn_parse_url(cfg->redis_url, host, sizeof host, &rport, &db, err,
                      errlen) < 0 ||
      rconn_parse_url(cfg->guard_redis_url, host, sizeof host, &rport, &db, err,
                      errlen) < 0)
    return -1;
  return 0;
}

int main(void) {
  sut_config_t cfg;
  sut_metrics_t metrics;
  consumer_t *consumer = NULL;
  http_t *http = NULL;
  char err[1024];
  int rc = 1;

  memset(&cfg, 0, sizeof cfg);
  if (load_config(&cfg, err, sizeof err) < 0) {
    fprintf(stderr, "eventrig-sut: %s\n", err);
    return 2;
  }
  atomic_init(&metrics.events_processed, 0);
  atomic_init(&metrics.duplicates_skipped, 0);
  atomic_init(&metrics.watch_conflicts, 0);
  atomic_init(&metrics.redis_failopen, 0);
  atomic_init(&metrics.excess_content, 0);
  atomic_init(&metrics.malformed, 0);
  sut_log_init(cfg.instance);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN); /* a peer that went away is an error, not death */

  consumer = consumer_new(&cfg, &metrics, err, sizeof err);
  if (consumer == NULL) {
    fprintf(stderr, "eventrig-sut: %s\n", err);
    rc = 2;
    goto out;
  }
  sut_log("starting: kafka %s, group %s, redis %s, guard redis %s, http "
          "127.0.0.1:%d, key prefix %s, bug %s",
          cfg.kafka_bootstrap, cfg.group_id, cfg.redis_url, cfg.guard_redis_url,
          cfg.http_port, cfg.key_prefix, sut_bug_name(cfg.bug));
  /* the schema exists before the API answers: once /healthz says ok, the
   * tables are there */
  if (consumer_wait_schema(consumer) < 0) {
    rc = 0; /* stopped by a signal while waiting */
    goto out;
  }
  http = http_start(&cfg, &metrics, err, sizeof err);
  if (http == NULL) {
    sut_log("%s", err);
    goto out;
  }
  sut_log("ready: http://127.0.0.1:%d", cfg.http_port);
  consumer_run(consumer);
  sut_log("stopping");
  rc = 0;
out:
  http_stop(http);
  consumer_close(consumer);
  if (rc == 0)
    sut_log("stopped");
  return rc;
}
