/* itest_redact.c: librdkafka's own log lines, as eventrig keeps them for
 * diagnostics (er_kafka_log_copy), hold no secret of the Kafka config,
 * after the environment's secrets are recorded (er_secrets_from_env) and
 * the copy is scrubbed (er_secret_redact), as the diagnostics do.
 * Two real-cluster targets on a closed loopback port (no broker needed:
 * the secrets are in librdkafka's configuration and its error texts):
 * SASL/PLAIN with sasl.password, and SASL/OAUTHBEARER with an unsecured
 * JWT whose sasl.oauthbearer.config librdkafka cannot parse (its error
 * quotes the text). RD_CANARY (tests/integration/redact.sh) is the
 * canary prefix. */
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "adapters/kafka.h"
#include "base/redact.h"
#include "base/util.h"
#include "tap.h"

/* A loopback port nothing listens on (bound, then closed). */
static int closed_port(void) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &al) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

/* Connects with config (a JSON object of strings), asks for metadata
 * until the deadline, and checks the scrubbed log copy. want: a text the
 * log must hold (proves librdkafka said something about the secret). */
static void one(const char *what, const char *canary, json_t *config,
                const char *want) {
  char boot[64];
  json_t *env = json_pack("{s:{s:O}}", "kafka", "config", config);
  const char *props[32];
  size_t n = 0;
  const char *k;
  json_t *v;
  er_err_t err = {0};
  er_kafka_t *kt;
  er_buf_t log = ER_BUF_INIT(256 * 1024);
  int parts = 0;

  snprintf(boot, sizeof boot, "127.0.0.1:%d", closed_port());
  er_secrets_clear();
  T_OK(env && er_secrets_from_env(env) == 0, "%s: secrets recorded", what);
  json_object_foreach(config, k, v) {
    props[2 * n] = k;
    props[2 * n + 1] = json_string_value(v);
    n++;
  }
  kt = er_kafka_connect(boot, props, n, &err);
  T_OK(kt != NULL, "%s: er_kafka_connect (%s)", what, err.msg);
  if (kt) {
    int rc = er_kafka_topic_partitions(kt, "redact.events", &parts,
                                       er_now_ms() + 3000, &err);
    T_OK(rc == -1, "%s: no broker: an error (%s)", what, err.msg);
    T_OK(!strstr(err.msg, canary), "%s: the error holds no canary", what);
    er_kafka_log_copy(kt, &log);
    er_secret_redact(log.data);
    T_OK(log.len > 0, "%s: librdkafka logged (%zu bytes)", what, log.len);
    T_OK(!strstr(er_buf_cstr(&log), canary), "%s: the log holds no canary",
         what);
    T_OK(strstr(er_buf_cstr(&log), want) != NULL, "%s: the log says \"%s\"",
         what, want);
    if (strstr(er_buf_cstr(&log), canary) || !strstr(er_buf_cstr(&log), want))
      printf("# log:\n%s\n", er_buf_cstr(&log)); /* canary hidden above */
  }
  er_kafka_free(kt);
  er_buf_free(&log);
  json_decref(env);
  er_secrets_clear();
}

int main(void) {
  const char *canary = getenv("RD_CANARY");
  char pw[128], oauth[256];
  json_t *plain, *bearer;
  if (!canary || !*canary)
    canary = "CANARY-itest";
  snprintf(pw, sizeof pw, "%skafka-itest", canary);
  snprintf(oauth, sizeof oauth, "%soauth-itest principal", canary);
  plain =
      json_pack("{s:s, s:s, s:s, s:s, s:s}", "security.protocol",
                "SASL_PLAINTEXT", "sasl.mechanism", "PLAIN", "sasl.username",
                "u", "sasl.password", pw, "debug", "security,conf");
  bearer = json_pack("{s:s, s:s, s:s, s:s}", "security.protocol",
                     "SASL_PLAINTEXT", "sasl.mechanism", "OAUTHBEARER",
                     "enable.sasl.oauthbearer.unsecure.jwt", "true",
                     "sasl.oauthbearer.config", oauth);
  one("SASL/PLAIN", canary, plain, "Connection refused");
  one("SASL/OAUTHBEARER", canary, bearer,
      "Unrecognized sasl.oauthbearer.config beginning at: ***");
  json_decref(plain);
  json_decref(bearer);
  return t_done();
}
