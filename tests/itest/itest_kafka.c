/* itest_kafka.c: the kafka module and steps against the embedded broker
 * (librdkafka's mock cluster, started through the adapter in this
 * process), with kcat as an independent client. Run by
 * tests/integration/kafka.sh (needs kcat on PATH; KCAT overrides). */
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters/kafka.h"
#include "base/jsonbig.h"
#include "lang/jsonx.h"
#include "lang/template.h"
#include "run/exec.h"
#include "run/targets.h"
#include "tap.h"

extern char **environ;
extern const er_action_t er_act_kafka_produce;
extern const er_action_t er_act_kafka_expect;
extern const er_action_t er_act_kafka_drained;
extern const er_action_t er_act_kafka_reset;
extern const er_module_t er_mod_kafka;

static const char *kcat_bin(void) {
  const char *k = getenv("KCAT");
  return k && *k ? k : "kcat";
}

/* ---- processes ------------------------------------------------------------
 */

/* Runs argv with `in` on stdin, collects stdout into out (capped); kills it
 * after timeout_ms. Returns the exit status, or -1. */
static int run(char *const argv[], const char *in, er_buf_t *out,
               int64_t timeout_ms) {
  int pin[2], pout[2], status = -1;
  posix_spawn_file_actions_t fa;
  pid_t pid;
  int64_t deadline = er_now_ms() + timeout_ms;
  size_t off = 0, inlen = in ? strlen(in) : 0;
  if (pipe(pin) != 0 || pipe(pout) != 0)
    return -1;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
  posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
  posix_spawn_file_actions_addclose(&fa, pin[1]);
  posix_spawn_file_actions_addclose(&fa, pout[0]);
  if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return -1;
  }
  posix_spawn_file_actions_destroy(&fa);
  close(pin[0]);
  close(pout[1]);
  fcntl(pin[1], F_SETFL, O_NONBLOCK);
  if (inlen == 0) {
    close(pin[1]);
    pin[1] = -1;
  }
  for (;;) {
    struct pollfd p[2];
    int np = 0, r;
    int64_t left = deadline - er_now_ms();
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    p[np].fd = pout[0];
    p[np].events = POLLIN;
    np++;
    if (pin[1] >= 0) {
      p[np].fd = pin[1];
      p[np].events = POLLOUT;
      np++;
    }
    r = poll(p, (nfds_t)np, (int)(left < 200 ? left : 200));
    if (r < 0 && errno != EINTR)
      break;
    if (np == 2 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(pin[1], in + off, inlen - off);
      if (w > 0)
        off += (size_t)w;
      if (w < 0 || off == inlen) {
        close(pin[1]);
        pin[1] = -1;
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[4096];
      ssize_t n = read(pout[0], buf, sizeof buf);
      if (n <= 0)
        break;
      if (out)
        er_buf_append(out, buf, (size_t)n);
    }
  }
  if (pin[1] >= 0)
    close(pin[1]);
  close(pout[0]);
  if (waitpid(pid, &status, 0) < 0)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A background process with stdout and stderr to /dev/null. */
static pid_t spawn_bg(char *const argv[]) {
  posix_spawn_file_actions_t fa;
  pid_t pid;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0)
    pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

static void stop_bg(pid_t pid) {
  int st;
  if (pid <= 0)
    return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      return;
    er_sleep_ms(50);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
}

/* kcat -P: lines of `in` are messages ("key:value" with -K:). */
static int kcat_produce(const char *bs, const char *topic, const char *in,
                        const char *h1, const char *h2) {
  char *argv[16];
  int n = 0;
  argv[n++] = (char *)kcat_bin();
  argv[n++] = "-P";
  argv[n++] = "-b";
  argv[n++] = (char *)bs;
  argv[n++] = "-t";
  argv[n++] = (char *)topic;
  argv[n++] = "-K:";
  if (h1) {
    argv[n++] = "-H";
    argv[n++] = (char *)h1;
  }
  if (h2) {
    argv[n++] = "-H";
    argv[n++] = (char *)h2;
  }
  argv[n] = NULL;
  return run(argv, in, NULL, 15000);
}

/* kcat -C -J -e: every message of topic as one JSON per line. */
static json_t *kcat_consume(const char *bs, const char *topic) {
  char *argv[] = {
      (char *)kcat_bin(), "-C", "-b", (char *)bs, "-t", (char *)topic, "-o",
      "beginning",        "-e", "-J", "-q",       NULL};
  er_buf_t out = ER_BUF_INIT(8u * 1024u * 1024u);
  json_t *arr = json_array();
  const char *s;
  int rc = run(argv, NULL, &out, 20000);
  s = er_buf_cstr(&out);
  while (rc == 0 && *s) {
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    json_t *m = json_loadb(s, len, 0, NULL);
    if (m)
      json_array_append_new(arr, m);
    s += len + (nl ? 1 : 0);
  }
  er_buf_free(&out);
  if (rc != 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

/* ---- running steps -------------------------------------------------------
 */

typedef struct ctx {
  json_t *env;
  er_tmpl_t *t;
  er_session_t *shared, *scenario, *session;
  er_buf_t detail, log;
  json_t *caps;
  const char *bs;
} ctx_t;

static void new_scenario(ctx_t *c) {
  er_err_t err = {0};
  er_session_free(c->session);
  er_session_free(c->scenario);
  c->session = er_session_new();
  c->scenario = er_session_new();
  if (er_mod_kafka.scenario_begin(c->env, c->shared, c->scenario, &err) != 0)
    printf("# scenario_begin: %s\n", err.msg);
}

static int step(ctx_t *c, const er_action_t *a, const char *args,
                int64_t timeout_ms) {
  json_error_t je;
  json_t *j = er_json_loadb(args, strlen(args), 0, &je);
  er_exec_t x;
  int rc;
  if (!j) {
    printf("# bad test json: %s: %s\n", je.text, args);
    return -1;
  }
  memset(&x, 0, sizeof x);
  x.env = c->env;
  x.session = c->session;
  x.shared = c->shared;
  x.scenario = c->scenario;
  x.tmpl = c->t;
  x.base_dir = ".";
  x.deadline_ms = er_now_ms() + timeout_ms;
  x.log = &c->log;
  x.captures = c->caps;
  x.detail = &c->detail;
  er_buf_reset(&c->detail);
  json_object_clear(c->caps);
  rc = a->run(&x, j);
  json_decref(j);
  if (rc != ER_STEP_OK)
    printf("# %s -> %d: %s\n", a->name, rc, er_buf_cstr(&c->detail));
  return rc;
}

static bool has(const er_buf_t *b, const char *s) {
  return b->data && strstr(b->data, s) != NULL;
}

/* ---- tests ---------------------------------------------------------------
 */

static void test_kcat_to_expect(ctx_t *c) {
  json_t *ns;
  bool saw[4] = {false, false, false, false};
  size_t i;
  json_t *v;
  new_scenario(c);
  T_OK(kcat_produce(c->bs, "in", "k1:{\"n\":1}\nk2:{\"n\":2}\nk3:{\"n\":3}\n",
                    "trace=abc", "kind=test") == 0,
       "kcat -P produced three keyed messages with headers");
  T_OK(
      step(
          c, &er_act_kafka_expect,
          "{\"topic\": \"in\", \"count\": 3, \"within\": \"10s\","
          " \"headers\": {\"trace\": \"abc\", \"kind\": {\"$regex\": \"^te\"}},"
          " \"where\": {\"/n\": {\"$gte\": 1}},"
          " \"capture\": {\"ns\": {\"all\": \"/n\"}}}",
          20000) == ER_STEP_OK,
      "kafka.expect sees exactly the three messages kcat produced");
  ns = json_object_get(c->caps, "ns");
  json_array_foreach(ns, i, v) {
    if (json_integer_value(v) >= 1 && json_integer_value(v) <= 3)
      saw[json_integer_value(v)] = true;
  }
  T_OK(json_array_size(ns) == 3 && saw[1] && saw[2] && saw[3],
       "capture all /n collected 1, 2 and 3");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"in\", \"key\": \"k2\", \"count\": 1,"
            " \"capture\": {\"n\": \"/n\", \"k\": {\"key\": true},"
            " \"tr\": {\"header\": \"trace\"}}}",
            20000) == ER_STEP_OK,
       "kafka.expect filters by key");
  T_OK(
      json_integer_value(json_object_get(c->caps, "n")) == 2 &&
          strcmp(json_string_value(json_object_get(c->caps, "k")), "k2") == 0 &&
          strcmp(json_string_value(json_object_get(c->caps, "tr")), "abc") == 0,
      "captures from the first match: /n = 2, key k2, header trace abc");

  /* failures say what was seen and why it did not match */
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"in\", \"key\": \"zz\", \"count\": 1,"
            " \"within\": \"2s\"}",
            5000) == ER_STEP_FAIL,
       "kafka.expect on a key nobody sent fails");
  T_OK(has(&c->detail, "expected count 1, got 0 matching of 3 message(s)") &&
           has(&c->detail, "message(s) seen:\n"),
       "the failure counts matches and messages seen");
  T_OK(has(&c->detail, "key=\"k1\" value={\"n\":1} -> key: expected \"zz\", "
                       "got \"k1\""),
       "the failure lists each message with why it did not match");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"in\", \"count\": 2, \"within\": \"3s\"}",
            5000) == ER_STEP_FAIL &&
           has(&c->detail, "expected count 2, but 3 matching message(s) "
                           "arrived"),
       "an exact count fails as soon as there are more");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"in\", \"count\": 1,"
            " \"where\": {\"/n\": 3, \"/missing\": {\"$exists\": false}},"
            " \"headers\": {\"nope\": {\"$exists\": false}}}",
            5000) == ER_STEP_OK,
       "$exists false works for missing pointers and headers");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"in\", \"count\": 1, \"within\": \"300ms\","
            " \"where\": {\"/n\": 2}, \"headers\": {\"trace\": \"xyz\"}}",
            5000) == ER_STEP_FAIL &&
           has(&c->detail, "header trace: expected \"xyz\", got \"abc\""),
       "a header mismatch is named with expected vs got");
}

/* Issue 15 on real messages: captures by regex from a text value, a key
 * and a header, the whole text, "all" with a regex; JSONPath in where and
 * captures; integers beyond 64 bits produced and matched exactly. */
static void test_values(ctx_t *c) {
  json_t *msgs, *v;
  size_t i;
  bool exact = false;
  new_scenario(c);
  T_OK(kcat_produce(c->bs, "vals",
                    "k-7:order id=7 total=12\n"
                    "k-8:{\"id\": 8, \"big\": 123456789012345678901234567890,"
                    " \"items\": [{\"sku\": \"a\"}, {\"sku\": \"b\"}]}\n",
                    "trace=t-123", NULL) == 0,
       "kcat produced a text value and a JSON one");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"vals\", \"count\": 1, \"within\": \"10s\","
            " \"key\": {\"$regex\": \"^K-7$\", \"$flags\": \"i\"},"
            " \"capture\": {\"id\": {\"regex\": \"id=([0-9]+)\"},"
            " \"txt\": {\"text\": true}, \"whole\": \"\","
            " \"kn\": {\"key\": true, \"regex\": \"k-([0-9]+)\"},"
            " \"tr\": {\"header\": \"trace\", \"regex\": \"t-(.*)\"}}}",
            20000) == ER_STEP_OK,
       "kafka.expect on a text value");
  T_OK(!strcmp(json_string_value(json_object_get(c->caps, "id")), "7") &&
           !strcmp(json_string_value(json_object_get(c->caps, "txt")),
                   "order id=7 total=12") &&
           !strcmp(json_string_value(json_object_get(c->caps, "whole")),
                   "order id=7 total=12") &&
           !strcmp(json_string_value(json_object_get(c->caps, "kn")), "7") &&
           !strcmp(json_string_value(json_object_get(c->caps, "tr")), "123"),
       "captures: a regex group of the value, the key and a header; the "
       "whole text");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"vals\", \"count\": 1, \"within\": \"10s\","
            " \"where\": {\"$.items[*].sku\": {\"$count\": 2, \"$any\": \"b\"},"
            " \"$..sku\": [\"a\", \"b\"],"
            " \"/big\": {\"$gt\": 123456789012345678901234567889}},"
            " \"capture\": {\"skus\": \"$..sku\", \"big\": \"/big\","
            " \"b\": \"$.items[?@.sku == 'b'].sku\"}}",
            20000) == ER_STEP_OK,
       "JSONPath keys in where; a big integer compared exactly");
  v = json_object_get(c->caps, "big");
  T_OK(json_array_size(json_object_get(c->caps, "skus")) == 2 &&
           er_big_digits(v) &&
           !strcmp(er_big_digits(v), "123456789012345678901234567890") &&
           !strcmp(json_string_value(json_object_get(c->caps, "b")), "b"),
       "JSONPath captures; a big integer captured exactly");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"vals\", \"count\": 2, \"within\": \"10s\","
            " \"capture\": {\"ids\": {\"all\": {\"regex\": \"id\\\"?[=:] "
            "?([0-9]+)\"}},"
            " \"keys\": {\"all\": {\"key\": true}}}}",
            20000) == ER_STEP_OK &&
           json_array_size(json_object_get(c->caps, "ids")) == 2 &&
           json_array_size(json_object_get(c->caps, "keys")) == 2,
       "\"all\" with a regex and with the key collects from every message");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"vals\", \"count\": 1, \"within\": \"300ms\","
            " \"where\": {\"$.items[*]\": {\"$each\": {\"sku\": \"a\"}}}}",
            5000) == ER_STEP_FAIL &&
           has(&c->detail, "$.items[*]: at /items/1/sku: expected \"a\", got "
                           "\"b\""),
       "a where mismatch names the place in the message");
  T_OK(step(c, &er_act_kafka_produce,
            "{\"topic\": \"vals\", \"key\": 98765432109876543210,"
            " \"value\": {\"n\": 123456789012345678901234567891}}",
            20000) == ER_STEP_OK,
       "kafka.produce with big integers");
  msgs = kcat_consume(c->bs, "vals");
  json_array_foreach(msgs, i, v) {
    const char *pl = json_string_value(json_object_get(v, "payload"));
    const char *key = json_string_value(json_object_get(v, "key"));
    if (pl && key && !strcmp(pl, "{\"n\":123456789012345678901234567891}") &&
        !strcmp(key, "98765432109876543210"))
      exact = true;
  }
  T_OK(exact, "kcat sees the big integers exactly, in the value and the key");
  json_decref(msgs);
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"vals\", \"count\": 1, \"within\": \"10s\","
            " \"key\": 98765432109876543210,"
            " \"where\": {\"/n\": 123456789012345678901234567891}}",
            20000) == ER_STEP_OK,
       "and kafka.expect matches them exactly");
}

/* One kafka.expect over several topics (issue 15). */
static void test_topics(ctx_t *c) {
  new_scenario(c);
  T_OK(step(c, &er_act_kafka_produce,
            "{\"topic\": \"ta\", \"key\": \"x\", \"value\": {\"id\": 1,"
            " \"kind\": \"a\"}}",
            20000) == ER_STEP_OK &&
           step(c, &er_act_kafka_produce,
                "{\"topic\": \"tb\", \"value\": {\"id\": 2, \"kind\":"
                " \"b\"}, \"count\": 2}",
                20000) == ER_STEP_OK,
       "one message to ta, two to tb");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topics\": [\"ta\", \"tb\"], \"count\": 3, \"within\":"
            " \"10s\"}",
            20000) == ER_STEP_OK,
       "topics [ta, tb]: the three messages of both");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topics\": [\"tb\", \"ta\"], \"count\": 1, \"within\":"
            " \"10s\", \"where\": {\"/kind\": \"a\"}, \"key\": \"x\","
            " \"capture\": {\"ids\": {\"all\": \"/id\"}}}",
            20000) == ER_STEP_OK &&
           json_array_size(json_object_get(c->caps, "ids")) == 1,
       "a filter over both topics finds the one of ta");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topics\": [\"ta\"], \"count\": 1, \"within\": \"10s\"}",
            20000) == ER_STEP_OK,
       "topics with one topic reads only it");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topics\": [\"ta\", \"tb\"], \"count\": 4, \"within\":"
            " \"3s\"}",
            5000) == ER_STEP_FAIL &&
           has(&c->detail, "kafka.expect on 'ta', 'tb': expected count 4, "
                           "got 3 matching of 3") &&
           has(&c->detail, "  ta [p") && has(&c->detail, "  tb [p"),
       "a failure names the topics, and each message's topic");
  printf("# %s\n", er_buf_cstr(&c->detail));
}

/* The embedded broker keeps about 5 MB per partition: a failure says when
 * messages after the scenario start were dropped. */
static void test_dropped_note(ctx_t *c) {
  char args[512];
  new_scenario(c);
  snprintf(args, sizeof args,
           "{\"topic\": \"big\", \"text\": \"%0100d\", \"count\": 120000,"
           " \"partition\": 0}",
           0);
  T_OK(step(c, &er_act_kafka_produce, args, 60000) == ER_STEP_OK,
       "120000 messages of 100 bytes on one partition");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"big\", \"count\": 120000, \"within\": \"2s\"}",
            30000) == ER_STEP_FAIL,
       "expecting all of them fails on the embedded broker");
  T_OK(has(&c->detail, "message(s) produced to 'big' after the scenario "
                       "started are no longer on the broker (the embedded "
                       "broker keeps about the newest 5 MB of each "
                       "partition)"),
       "and the failure says that the broker dropped the oldest");
}

static bool distinct_strings(json_t *arr) {
  for (size_t i = 0; i < json_array_size(arr); i++)
    for (size_t j = i + 1; j < json_array_size(arr); j++)
      if (json_equal(json_array_get(arr, i), json_array_get(arr, j)))
        return false;
  return true;
}

static void test_produce_to_kcat(ctx_t *c) {
  json_t *msgs, *ids = json_array(), *v;
  size_t i, good = 0;
  int per_part[3] = {0, 0, 0};
  new_scenario(c);
  T_OK(step(c, &er_act_kafka_produce,
            "{\"topic\": \"storm\", \"key\": \"b-1\","
            " \"headers\": {\"origin\": \"eventrig\", \"n\": 7},"
            " \"envelope\": \"fresh\", \"event_type\": \"essay.v1\","
            " \"data\": {\"batch_id\": \"b-1\", \"file\": \"a.txt\"},"
            " \"partition\": \"spread\", \"count\": 50, \"concurrency\": 8}",
            30000) == ER_STEP_OK,
       "kafka.produce sent 50 fresh envelopes");
  T_OK(has(&c->log, "kafka.produce: 50 message(s) to 'storm' delivered in"),
       "the step logs count, time and rate");
  msgs = kcat_consume(c->bs, "storm");
  T_OK(msgs && json_array_size(msgs) == 50,
       "kcat -C consumed exactly 50 messages (got %zu)",
       msgs ? json_array_size(msgs) : 0);
  json_array_foreach(msgs, i, v) {
    json_t *env =
        json_loads(json_string_value(json_object_get(v, "payload")), 0, NULL);
    json_t *h = json_object_get(v, "headers");
    int p = (int)json_integer_value(json_object_get(v, "partition"));
    json_t *want_data =
        json_pack("{s:s,s:s}", "batch_id", "b-1", "file", "a.txt");
    bool hdr_ok =
        json_array_size(h) == 4 &&
        strcmp(json_string_value(json_array_get(h, 0)), "origin") == 0 &&
        strcmp(json_string_value(json_array_get(h, 1)), "eventrig") == 0 &&
        strcmp(json_string_value(json_array_get(h, 2)), "n") == 0 &&
        strcmp(json_string_value(json_array_get(h, 3)), "7") == 0;
    if (p >= 0 && p < 3)
      per_part[p]++;
    if (env &&
        strcmp(json_string_value(json_object_get(v, "key")), "b-1") == 0 &&
        hdr_ok && json_string_length(json_object_get(env, "event_id")) == 36 &&
        strcmp(json_string_value(json_object_get(env, "event_type")),
               "essay.v1") == 0 &&
        strcmp(json_string_value(json_object_get(env, "source_service")),
               "eventrig") == 0 &&
        json_string_length(json_object_get(env, "correlation_id")) == 36 &&
        json_string_length(json_object_get(env, "event_timestamp")) == 24 &&
        json_equal(json_object_get(env, "data"), want_data) &&
        json_object_size(env) == 6)
      good++;
    if (env)
      json_array_append(ids, json_object_get(env, "event_id"));
    json_decref(want_data);
    json_decref(env);
  }
  T_OK(good == 50,
       "every message has key b-1, both headers and a full "
       "envelope around the data (%zu of 50)",
       good);
  T_OK(json_array_size(ids) == 50 && distinct_strings(ids),
       "fresh envelopes have 50 distinct event_ids");
  T_OK(per_part[0] + per_part[1] + per_part[2] == 50 && per_part[0] >= 16 &&
           per_part[1] >= 16 && per_part[2] >= 16,
       "spread put the messages round-robin on the 3 partitions (%d/%d/%d)",
       per_part[0], per_part[1], per_part[2]);
  json_decref(msgs);
  json_decref(ids);

  /* fixed: the same envelope every time */
  T_OK(step(c, &er_act_kafka_produce,
            "{\"topic\": \"fixed\", \"envelope\": \"fixed\","
            " \"data\": {\"x\": 1}, \"count\": 5, \"partition\": 1}",
            20000) == ER_STEP_OK,
       "kafka.produce sent 5 fixed envelopes");
  msgs = kcat_consume(c->bs, "fixed");
  ids = json_array();
  good = 0;
  json_array_foreach(msgs, i, v) {
    json_t *env =
        json_loads(json_string_value(json_object_get(v, "payload")), 0, NULL);
    if (env && json_integer_value(json_object_get(v, "partition")) == 1 &&
        json_is_null(json_object_get(v, "key")) &&
        strcmp(json_string_value(json_object_get(env, "event_type")),
               "fixed") == 0)
      good++;
    if (env &&
        (json_array_size(ids) == 0 ||
         !json_equal(json_array_get(ids, 0), json_object_get(env, "event_id"))))
      json_array_append(ids, json_object_get(env, "event_id"));
    json_decref(env);
  }
  T_OK(msgs && json_array_size(msgs) == 5 && good == 5,
       "kcat saw 5 messages on partition 1 without key, event_type = topic");
  T_OK(json_array_size(ids) == 1,
       "fixed envelopes all carry the same event_id");
  json_decref(msgs);
  json_decref(ids);

  /* rate: 20 messages at 50/s take about 0.4 s */
  {
    int64_t t0 = er_now_ms(), took;
    int rc = step(c, &er_act_kafka_produce,
                  "{\"topic\": \"fixed\", \"text\": \"r\", \"count\": 20,"
                  " \"rate\": 50}",
                  10000);
    took = er_now_ms() - t0;
    T_OK(rc == ER_STEP_OK && took >= 370 && took < 3000,
         "rate 50/s spreads 20 messages over about 0.4 s (%lld ms)",
         (long long)took);
  }

  /* text value, explicit partition out of range */
  T_OK(step(c, &er_act_kafka_produce,
            "{\"topic\": \"fixed\", \"text\": \"hi\", \"partition\": 9}",
            5000) == ER_STEP_FATAL &&
           has(&c->detail, "partition 9 does not exist (topic 'fixed' has 3)"),
       "a partition that does not exist is refused");
}

static void test_delivery_failure(ctx_t *c, er_kafka_t *k) {
  rd_kafka_mock_cluster_t *mc = er_kafka_mock_cluster(k);
  new_scenario(c);
  /* a permanent error for the next Produce requests */
  rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 3,
                                    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  T_OK(step(c, &er_act_kafka_produce,
            "{\"topic\": \"fail\", \"value\": {\"a\": 1}, \"count\": 3,"
            " \"partition\": 0}",
            20000) == ER_STEP_FAIL,
       "a failed delivery fails kafka.produce");
  T_OK(has(&c->detail, "3 of 3 deliveries to 'fail' failed; first error: "
                       "Broker: Message size too large"),
       "the detail says how many failed and the first error");
  rd_kafka_mock_clear_request_errors(mc, 0);
}

typedef struct late {
  const char *bs;
  int64_t delay_ms;
  int rc;
} late_t;

static void *late_dup(void *p) {
  late_t *l = p;
  er_sleep_ms(l->delay_ms);
  l->rc = kcat_produce(l->bs, "quiet", "b-9:{\"batch\":\"b-9\"}\n", NULL, NULL);
  return NULL;
}

static void test_then_quiet_for(ctx_t *c) {
  pthread_t th;
  /* the duplicate comes 2 s after the step started: by then the step has
   * read the first message (on a loaded machine its first read took 1 s),
   * so the duplicate lands in the then_quiet_for window */
  late_t l = {c->bs, 2000, -1};
  new_scenario(c);
  T_OK(kcat_produce(c->bs, "quiet", "b-9:{\"batch\":\"b-9\"}\n", NULL, NULL) ==
           0,
       "one message on quiet");
  pthread_create(&th, NULL, late_dup, &l);
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"quiet\", \"where\": {\"/batch\": \"b-9\"},"
            " \"count\": 1, \"within\": \"5s\", \"then_quiet_for\": \"4s\"}",
            20000) == ER_STEP_FAIL,
       "a duplicate arriving during then_quiet_for fails the step");
  pthread_join(th, NULL);
  T_OK(l.rc == 0, "the late duplicate was produced by kcat");
  T_OK(has(&c->detail, "1 further matching message(s) arrived during "
                       "then_quiet_for 4s (after 1 had matched)"),
       "the detail names the late duplicate");
  T_OK(has(&c->detail, "key=\"b-9\""), "and shows it");

  new_scenario(c);
  T_OK(kcat_produce(c->bs, "quiet", "b-10:{\"batch\":\"b-10\"}\n", NULL,
                    NULL) == 0,
       "one message on quiet (new scenario)");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"quiet\", \"where\": {\"/batch\": \"b-10\"},"
            " \"count\": 1, \"within\": \"5s\", \"then_quiet_for\": \"1s\"}",
            20000) == ER_STEP_OK,
       "then_quiet_for passes when nothing further arrives");
}

static void test_scenario_start(ctx_t *c) {
  json_t *whens;
  T_OK(kcat_produce(c->bs, "ba", "k:{\"when\":\"before\"}\n", NULL, NULL) == 0,
       "a message before the scenario");
  new_scenario(c);
  T_OK(kcat_produce(c->bs, "ba", "k:{\"when\":\"after\"}\n", NULL, NULL) == 0,
       "a message after the scenario started");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"ba\", \"count\": 1, \"within\": \"2s\","
            " \"capture\": {\"whens\": {\"all\": \"/when\"}}}",
            10000) == ER_STEP_OK,
       "kafka.expect sees exactly one message");
  whens = json_object_get(c->caps, "whens");
  T_OK(json_array_size(whens) == 1 &&
           strcmp(json_string_value(json_array_get(whens, 0)), "after") == 0,
       "and it is the one produced after the scenario started");

  /* an undeclared topic is recorded at the first step naming it */
  T_OK(kcat_produce(c->bs, "undeclared", "k:{\"v\":1}\n", NULL, NULL) == 0,
       "a message on an undeclared topic before any step names it");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"undeclared\", \"count\": 0, \"within\": \"1s\"}",
            10000) == ER_STEP_OK,
       "the first step naming an undeclared topic starts from its end");
  T_OK(has(&c->log, "start offsets of 'undeclared' recorded at this step"),
       "and logs that it recorded it there");
  T_OK(kcat_produce(c->bs, "undeclared", "k:{\"v\":2}\n", NULL, NULL) == 0,
       "another message");
  T_OK(step(c, &er_act_kafka_expect,
            "{\"topic\": \"undeclared\", \"count\": 1, \"where\": {\"/v\": 2}}",
            10000) == ER_STEP_OK,
       "later steps see what came after that point");
}

static void test_drained(ctx_t *c, er_kafka_t *k) {
  char *argv[] = {(char *)kcat_bin(),
                  "-b",
                  (char *)c->bs,
                  "-G",
                  "grp-d",
                  "-X",
                  "auto.offset.reset=earliest",
                  "-X",
                  "auto.commit.interval.ms=100",
                  "work",
                  NULL};
  pid_t pid;
  int64_t committed[3];
  er_err_t err = {0};
  new_scenario(c);
  T_OK(step(c, &er_act_kafka_produce,
            "{\"topic\": \"work\", \"value\": {\"job\": 1},"
            " \"partition\": \"spread\", \"count\": 30}",
            20000) == ER_STEP_OK,
       "30 messages on work");
  T_OK(step(c, &er_act_kafka_drained,
            "{\"group\": \"nobody\", \"topics\": [\"work\"],"
            " \"within\": \"1s\"}",
            10000) == ER_STEP_FAIL,
       "kafka.drained times out when nothing consumes");
  T_OK(has(&c->detail, "work [0]: end 10, committed none, lag 10") &&
           has(&c->detail, "work [2]: end 10, committed none, lag 10"),
       "the detail lists end offset, committed offset and lag per partition");
  pid = spawn_bg(argv);
  T_OK(pid > 0, "kcat -G grp-d consumes work in the background");
  T_OK(step(c, &er_act_kafka_drained,
            "{\"group\": \"grp-d\", \"topics\": [\"work\"],"
            " \"within\": \"25s\"}",
            30000) == ER_STEP_OK,
       "kafka.drained passes once the real consumer group committed "
       "everything");
  stop_bg(pid);
  T_OK(er_kafka_committed(k, "grp-d", "work", 3, committed, er_now_ms() + 5000,
                          &err) == 0 &&
           committed[0] == 10 && committed[1] == 10 && committed[2] == 10,
       "committed offsets read back: 10/10/10");
  T_OK(step(c, &er_act_kafka_produce,
            "{\"topic\": \"work\", \"value\": {\"job\": 2}, \"partition\": 1}",
            10000) == ER_STEP_OK,
       "one more message after the consumer stopped");
  T_OK(step(c, &er_act_kafka_drained,
            "{\"group\": \"grp-d\", \"topics\": [\"work\"],"
            " \"within\": \"800ms\"}",
            10000) == ER_STEP_FAIL &&
           has(&c->detail, "work [1]: end 11, committed 10, lag 1"),
       "and kafka.drained sees the lag of 1");
}

static void test_reset(ctx_t *c, er_kafka_t *k) {
  int64_t committed[3];
  er_err_t err = {0};
  new_scenario(c);
  T_OK(step(c, &er_act_kafka_reset,
            "{\"group\": \"rg\", \"topics\": [\"work\"], \"to\": \"end\"}",
            10000) == ER_STEP_OK,
       "kafka.reset to end");
  T_OK(er_kafka_committed(k, "rg", "work", 3, committed, er_now_ms() + 5000,
                          &err) == 0 &&
           committed[0] == 10 && committed[1] == 11 && committed[2] == 10,
       "committed offsets are the end offsets (10/11/10)");
  T_OK(step(c, &er_act_kafka_reset,
            "{\"group\": \"rg\", \"topics\": [\"work\"], \"to\": \"earliest\"}",
            10000) == ER_STEP_OK,
       "kafka.reset to earliest");
  T_OK(er_kafka_committed(k, "rg", "work", 3, committed, er_now_ms() + 5000,
                          &err) == 0 &&
           committed[0] == 0 && committed[1] == 0 && committed[2] == 0,
       "committed offsets are 0/0/0");
  T_OK(step(c, &er_act_kafka_drained,
            "{\"group\": \"rg\", \"topics\": [\"work\"], \"within\": \"1s\"}",
            10000) == ER_STEP_FAIL &&
           has(&c->detail, "work [1]: end 11, committed 0, lag 11"),
       "kafka.drained agrees: lag 11 after the reset to earliest");
  T_OK(step(c, &er_act_kafka_reset,
            "{\"group\": \"grp-d\", \"topics\": [\"work\"], \"to\": \"end\"}",
            10000) == ER_STEP_FAIL &&
           has(&c->detail, "group 'grp-d' has had members since the embedded "
                           "broker started"),
       "a group that had members is refused on the embedded broker");
  T_OK(step(c, &er_act_kafka_reset,
            "{\"group\": \"rg\", \"topics\": [\"work\"], \"to\": \"start\"}",
            10000) == ER_STEP_FATAL,
       "to must be end or earliest");
}

/* The real-cluster path, pointed at a second embedded broker that lacks
 * some topics (the check must not create them). */
static void test_preflight_missing(void) {
  er_err_t err = {0};
  er_kafka_t *other = er_kafka_embedded(1, &err);
  er_session_t *shared = er_session_new();
  er_tmpl_t *t = er_tmpl_new();
  json_t *env;
  int np = -1;
  T_OK(other != NULL, "a second embedded broker");
  if (!other)
    return;
  er_kafka_create_topic(other, "present", 2, 1, er_now_ms() + 5000, &err);
  env = json_pack("{s:{s:s,s:[s,s,{s:s}]}}", "kafka", "bootstrap",
                  er_kafka_bootstrap(other), "topics", "present", "absent1",
                  "name", "absent2");
  T_OK(er_mod_kafka.run_begin(env, t, shared, &err) == 0,
       "run_begin with a bootstrap address");
  T_OK(er_mod_kafka.preflight(env, shared, &err) == -1 && err.code == ER_E_ENV,
       "preflight stops the run (ER_E_ENV) when declared topics are missing");
  T_OK(strncmp(err.msg,
               "kafka: topic(s) missing: absent1, absent2 (on "
               "127.0.0.1:",
               56) == 0,
       "the message names the missing topics (%s)", err.msg);
  T_OK(er_kafka_topic_partitions(other, "absent1", &np, er_now_ms() + 5000,
                                 &err) == 0,
       "checking did not create the topic");
  er_mod_kafka.run_end(shared);
  er_session_free(shared);
  json_decref(env);

  /* create_topics on a broker without CreateTopics: a clear error */
  er_err_clear(&err);
  shared = er_session_new();
  env = json_pack("{s:{s:s,s:[s],s:b,s:s}}", "kafka", "bootstrap",
                  er_kafka_bootstrap(other), "topics", "absent3",
                  "create_topics", 1, "timeout", "3s");
  {
    int64_t t0 = er_now_ms();
    T_OK(er_mod_kafka.run_begin(env, t, shared, &err) == 0 &&
             er_mod_kafka.preflight(env, shared, &err) == -1 &&
             err.code == ER_E_ENV &&
             strstr(err.msg, "creating topic 'absent3'") &&
             er_now_ms() - t0 < 4500,
         "create_topics against a broker without the Admin API fails "
         "clearly within kafka.timeout (%s)",
         err.msg);
  }
  er_mod_kafka.run_end(shared);
  er_session_free(shared);
  json_decref(env);

  /* secrets never show */
  er_err_clear(&err);
  shared = er_session_new();
  env = json_pack("{s:{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s}}}", "kafka", "bootstrap",
                  er_kafka_bootstrap(other), "timeout", "5s", "config",
                  "security.protocol", "SASL_PLAINTEXT", "sasl.mechanism",
                  "PLAIN", "sasl.username", "u", "sasl.password",
                  "Sup3rSecretValue", "socket.timeout.ms", "2000");
  T_OK(er_mod_kafka.run_begin(env, t, shared, &err) == 0,
       "run_begin with SASL settings");
  {
    int64_t t0 = er_now_ms();
    int rc = er_mod_kafka.preflight(env, shared, &err);
    T_OK(rc == -1 && err.code == ER_E_ENV && er_now_ms() - t0 < 6000,
         "a broker that does not speak SASL stops preflight within its "
         "deadline (%s)",
         err.msg);
    T_OK(strstr(err.msg, "Sup3rSecretValue") == NULL,
         "the error does not show the password");
  }
  er_mod_kafka.run_end(shared);
  er_session_free(shared);
  json_decref(env);

  er_tmpl_free(t);
  er_kafka_free(other);
}

int main(void) {
  ctx_t c;
  er_err_t err = {0};
  json_t *bsv;
  er_kafka_t *k;
  memset(&c, 0, sizeof c);
  signal(SIGPIPE, SIG_IGN);
  er_buf_init(&c.detail, 64 * 1024);
  er_buf_init(&c.log, 256 * 1024);
  c.caps = json_object();
  c.env = json_loads("{\"kafka\": {\"embedded\": {\"brokers\": 2, \"topics\": ["
                     "{\"name\": \"in\", \"partitions\": 3},"
                     "{\"name\": \"storm\", \"partitions\": 3},"
                     "{\"name\": \"fixed\", \"partitions\": 3},"
                     "{\"name\": \"fail\", \"partitions\": 1},"
                     "{\"name\": \"quiet\", \"partitions\": 2},"
                     "{\"name\": \"ba\", \"partitions\": 1},"
                     "{\"name\": \"work\", \"partitions\": 3},"
                     "{\"name\": \"big\", \"partitions\": 1},"
                     "{\"name\": \"vals\", \"partitions\": 1},"
                     "{\"name\": \"ta\", \"partitions\": 2},"
                     "{\"name\": \"tb\", \"partitions\": 1}]}}}",
                     0, NULL);
  c.t = er_tmpl_new();
  c.shared = er_session_new();
  T_OK(er_mod_kafka.run_begin(c.env, c.t, c.shared, &err) == 0,
       "run_begin starts the embedded broker (%s)", err.msg);
  bsv = er_tmpl_get(c.t, "kafka.bootstrap");
  T_OK(json_is_string(bsv) &&
           strncmp(json_string_value(bsv), "127.0.0.1:", 10) == 0,
       "run_begin sets kafka.bootstrap (%s)",
       bsv ? json_string_value(bsv) : "unset");
  if (!json_is_string(bsv))
    return t_done();
  c.bs = json_string_value(bsv);
  T_OK(er_mod_kafka.preflight(c.env, c.shared, &err) == 0,
       "preflight finds the declared topics (%s)", err.msg);
  k = er_target_kafka(c.shared);

  test_kcat_to_expect(&c);
  test_values(&c);
  test_topics(&c);
  test_produce_to_kcat(&c);
  test_delivery_failure(&c, k);
  test_then_quiet_for(&c);
  test_scenario_start(&c);
  test_drained(&c, k);
  test_reset(&c, k);
  test_dropped_note(&c);
  test_preflight_missing();

  er_mod_kafka.run_end(c.shared);
  T_OK(er_session_get(c.shared, "kafka") == NULL,
       "run_end stopped the embedded broker");
  er_session_free(c.session);
  er_session_free(c.scenario);
  er_session_free(c.shared);
  er_tmpl_free(c.t);
  json_decref(c.env);
  json_decref(c.caps);
  er_buf_free(&c.detail);
  er_buf_free(&c.log);
  return t_done();
}
