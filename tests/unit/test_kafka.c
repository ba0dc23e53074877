/* test_kafka.c: the parts of the Kafka adapter and module that need no
 * broker: properties, secrets, the environment's kafka section. (The
 * broker-facing parts are in tests/itest/itest_kafka.c.) */
#include <string.h>

#include "adapters/kafka.h"
#include "lang/template.h"
#include "run/exec.h"
#include "tap.h"

extern const er_module_t er_mod_kafka;

static void test_properties(void) {
  er_err_t err = {0};
  const char *props[] = {"sasl.password", "Sup3rSecretValue", "client.id",
                         "visible-id"};
  const char *unknown[] = {"sasl.password", "Sup3rSecretValue", "no.such.prop",
                           "x"};
  const char *badval[] = {"acks", "banana"};
  er_kafka_t *k = er_kafka_connect("127.0.0.1:1", props, 2, &err);
  char s[128] = "auth failed for Sup3rSecretValue (visible-id), "
                "Sup3rSecretValue again";
  char shortsec[64] = "abc";
  T_OK(k != NULL, "connect takes librdkafka properties");
  if (k) {
    T_OK(!er_kafka_is_embedded(k) &&
             strcmp(er_kafka_bootstrap(k), "127.0.0.1:1") == 0,
         "a real target keeps its bootstrap address");
    er_kafka_redact(k, s, sizeof s);
    T_STREQ(s, "auth failed for *** (visible-id), *** again",
            "every occurrence of a secret value is replaced by ***");
    er_kafka_redact(k, shortsec, sizeof shortsec);
    T_STREQ(shortsec, "abc", "text without secrets is unchanged");
    er_kafka_free(k);
  }
  k = er_kafka_connect("127.0.0.1:1", unknown, 2, &err);
  T_OK(!k && err.code == ER_E_INPUT, "an unknown property is refused");
  T_STREQ(err.msg,
          "kafka property 'no.such.prop': No such configuration property: "
          "\"no.such.prop\"",
          "the message names the property");
  er_err_clear(&err);
  k = er_kafka_connect("127.0.0.1:1", badval, 1, &err);
  T_OK(!k && err.code == ER_E_INPUT && strstr(err.msg, "'acks'"),
       "a bad value is refused naming the property (%s)", err.msg);
  er_err_clear(&err);
  k = er_kafka_connect("", NULL, 0, &err);
  T_OK(!k && err.code == ER_E_INPUT, "an empty bootstrap is refused");
  er_err_clear(&err);
  k = er_kafka_embedded(0, &err);
  T_OK(!k && err.code == ER_E_INPUT, "0 embedded brokers are refused");
}

/* run_begin on an environment; returns its rc and leaves err. */
static int begin(const char *envtext, er_err_t *err) {
  json_t *env = json_loads(envtext, 0, NULL);
  er_session_t *shared = er_session_new();
  er_tmpl_t *t = er_tmpl_new();
  int rc;
  er_err_clear(err);
  rc = er_mod_kafka.run_begin(env, t, shared, err);
  if (rc == 0)
    er_mod_kafka.run_end(shared);
  er_session_free(shared);
  er_tmpl_free(t);
  json_decref(env);
  return rc;
}

static void test_environment(void) {
  er_err_t err = {0};
  T_OK(begin("{\"kafka\": {\"embeded\": {}}}", &err) == -1 &&
           err.code == ER_E_INPUT,
       "an unknown key is refused");
  T_STREQ(err.msg,
          "environment: unknown key 'embeded' in kafka (did you mean "
          "'embedded'?)",
          "with a suggestion");
  T_OK(begin("{\"kafka\": {\"embedded\": {\"brokers\": 0}}}", &err) == -1 &&
           err.code == ER_E_INPUT &&
           strstr(err.msg, "kafka.embedded.brokers must be 1..16"),
       "brokers 0 is refused");
  T_OK(begin("{\"kafka\": {\"embedded\": {}, \"bootstrap\": \"h:1\"}}", &err) ==
               -1 &&
           strstr(err.msg, "both embedded and bootstrap"),
       "embedded and bootstrap together are refused");
  T_OK(begin("{\"kafka\": {\"embedded\": {}, \"topics\": [\"t\"]}}", &err) ==
               -1 &&
           strstr(err.msg, "declare topics in kafka.embedded.topics"),
       "top-level topics with embedded are refused with a pointer");
  T_OK(begin("{\"kafka\": {\"embedded\": {\"topics\": [{\"name\": \"t\","
             " \"partitions\": 0}]}}}",
             &err) == -1 &&
           strstr(err.msg, "kafka.embedded.topics/0/partitions must be "
                           "1..10000"),
       "partitions 0 is refused (%s)", err.msg);
  T_OK(begin("{\"kafka\": {\"embedded\": {\"topics\": [{\"partitions\": 2}]}}}",
             &err) == -1 &&
           strstr(err.msg, "kafka.embedded.topics/0 needs a topic name"),
       "a topic without a name is refused");
  T_OK(begin("{\"kafka\": {\"bootstrap\": \"h:1\", \"timeout\": \"soon\"}}",
             &err) == -1 &&
           strstr(err.msg, "kafka.timeout must be a duration"),
       "a bad timeout is refused");
  T_OK(begin("{\"kafka\": {\"bootstrap\": \"h:1\", \"config\": []}}", &err) ==
               -1 &&
           strstr(err.msg, "kafka.config must be an object"),
       "config must be an object");
  T_OK(begin("{\"kafka\": {}}", &err) == -1 &&
           strstr(err.msg, "needs \"embedded\" or a \"bootstrap\""),
       "an empty kafka section is refused");
  T_OK(begin("{\"kafka\": {\"bootstrap\": \"h:1\", \"topics\": [\"a\"],"
             " \"create_topics\": true, \"config\": {\"acks\": 1}}}",
             &err) == 0,
       "a real cluster's settings are accepted without connecting (%s)",
       err.msg);
  T_OK(begin("{}", &err) == 0, "no kafka section: the embedded default");
}

static void test_default_bootstrap(void) {
  er_err_t err = {0};
  er_session_t *shared = er_session_new();
  er_tmpl_t *t = er_tmpl_new();
  json_t *env = json_object();
  json_t *bs;
  T_OK(er_mod_kafka.run_begin(env, t, shared, &err) == 0,
       "run_begin without a kafka section");
  bs = er_tmpl_get(t, "kafka.bootstrap");
  T_OK(json_is_string(bs) &&
           strncmp(json_string_value(bs), "127.0.0.1:", 10) == 0 &&
           !strchr(json_string_value(bs), ','),
       "starts one embedded broker and names it in kafka.bootstrap (%s)",
       json_is_string(bs) ? json_string_value(bs) : "unset");
  er_mod_kafka.run_end(shared);
  er_session_free(shared);
  er_tmpl_free(t);
  json_decref(env);
}

int main(void) {
  test_properties();
  test_environment();
  test_default_bootstrap();
  return t_done();
}
