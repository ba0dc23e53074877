/* itest_audit.c: the stale-state audit (audit.h) against a real Redis
 * (REDIS_URL, from tests/integration/audit.sh) and the embedded Kafka
 * broker started here: exact key counts, TTLs and lag numbers, the SCAN
 * bounds, and the validation of the "state" section. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/kafka.h"
#include "adapters/redis.h"
#include "run/audit.h"
#include "tap.h"

static int64_t in_ms(int64_t ms) { return er_now_ms() + ms; }

static int redis_cmd(er_redis_t *r, int argc, const char *const *argv,
                     const size_t *lens) {
  er_err_t err = {0};
  json_t *rep = NULL;
  int rc = er_redis_command(r, argc, argv, lens, in_ms(5000), &rep, &err);
  json_decref(rep);
  if (rc != ER_REDIS_OK)
    printf("# redis: %s\n", err.msg);
  return rc;
}

static bool has(const char *text, const char *needle) {
  bool ok = strstr(text, needle) != NULL;
  if (!ok)
    printf("# missing: %s\n# in:\n%s", needle, text);
  return ok;
}

/* ---- Redis --------------------------------------------------------------- */

static void test_keys(const char *url) {
  er_err_t err = {0};
  er_redis_t *r = er_redis_new(url, 0, &err);
  er_audit_t a;
  json_t *env;
  const char *flush[] = {"FLUSHDB"};
  const char *set_a[] = {"SET", "au:idem:a", "1", "EX", "3600"};
  const char *set_b[] = {"SET", "au:idem:b", "1"};
  const char *set_c[] = {"SET", "au:other:c", "1"};
  const char *set_bin[] = {"SET", "au:idem:\001z", "1", "PX", "1500"};

  T_OK(r != NULL, "redis handle for %s", url);
  if (!r)
    return;
  redis_cmd(r, 1, flush, NULL);

  /* clean */
  env = json_pack("{s:{s:s}, s:{s:[s]}}", "redis", "url", url, "state",
                  "idempotency_keys", "au:idem:*");
  T_OK(er_audit_run(env, NULL, NULL, NULL, NULL, in_ms(10000), &a, &err) == 0,
       "audit of an empty database runs (%s)", err.msg);
  T_OK(!a.stale && a.stale_keys == 0, "empty database: not stale");
  T_OK(a.nkeys == 1 && a.keys[0].scan.found == 0 && !a.keys[0].scan.incomplete,
       "empty database: the pattern found no keys, scan complete");
  T_OK(has(er_buf_cstr(&a.text), "  au:idem:* : no keys\n") &&
           has(er_buf_cstr(&a.text),
               "clean: no idempotency keys, no consumer lag\n"),
       "empty database: the text says clean");
  er_audit_free(&a);

  /* keys with and without TTL, one not matching, one binary */
  T_OK(redis_cmd(r, 5, set_a, NULL) == 0 && redis_cmd(r, 3, set_b, NULL) == 0 &&
           redis_cmd(r, 3, set_c, NULL) == 0 &&
           redis_cmd(r, 5, set_bin, NULL) == 0,
       "seeded 3 matching keys (TTL 1h, no TTL, binary with 1.5s) and 1 other");
  T_OK(er_audit_run(env, r, NULL, NULL, NULL, in_ms(10000), &a, &err) == 0,
       "audit with stale keys runs (%s)", err.msg);
  T_OK(a.stale && a.stale_keys == 3, "stale: 3 keys (got %lld)", a.stale_keys);
  if (a.nkeys == 1 && a.keys[0].scan.nkeys == 3) {
    long long ttl_a = -3, ttl_b = -3, ttl_bin = -3;
    for (size_t i = 0; i < 3; i++) {
      const er_redis_key_ttl_t *k = &a.keys[0].scan.keys[i];
      if (!strcmp(k->key, "au:idem:a"))
        ttl_a = k->pttl;
      else if (!strcmp(k->key, "au:idem:b"))
        ttl_b = k->pttl;
      else if (k->len == 10 && !memcmp(k->key, "au:idem:\001z", 10))
        ttl_bin = k->pttl;
    }
    T_OK(ttl_a > 3590000 && ttl_a <= 3600000, "au:idem:a PTTL about 1h (%lld)",
         ttl_a);
    T_OK(ttl_b == -1, "au:idem:b has no TTL: PTTL -1 (%lld)", ttl_b);
    T_OK(ttl_bin > 0 && ttl_bin <= 1500, "binary key PTTL <= 1.5s (%lld)",
         ttl_bin);
  } else {
    T_OK(0, "3 keys listed (got %zu)", a.nkeys ? a.keys[0].scan.nkeys : 0);
  }
  {
    const char *t = er_buf_cstr(&a.text);
    char head[300];
    snprintf(head, sizeof head,
             "idempotency keys in %s:\n  au:idem:* : 3 keys\n", url);
    T_OK(has(t, head), "text: the server and the count");
    /* PTTL 3600000 right after the SET shows as 1h00m */
    T_OK(strstr(t, "    au:idem:a      TTL 59m5") ||
             has(t, "    au:idem:a      TTL 1h00m\n"),
         "text: the TTL of a, aligned");
    T_OK(has(t, "    au:idem:b      no TTL (never expires)\n"),
         "text: no TTL made obvious");
    T_OK(has(t, "    au:idem:\\x01z  TTL "), "text: a binary key escaped");
    T_OK(strstr(t, "au:other") == NULL, "text: the key not matching is absent");
    T_OK(has(t, "stale state: 3 idempotency keys, consumer lag 0\n"),
         "text: the summary");
  }
  er_audit_free(&a);

  /* bounds: many keys; 10 listed; budget of keys examined; soft deadline */
  {
    bool ok = true;
    er_redis_scan_ttl_t s;
    for (int i = 0; i < 3000 && ok; i++) {
      char key[32];
      const char *argv[3] = {"SET", key, "1"};
      snprintf(key, sizeof key, "au:many:%d", i);
      ok = redis_cmd(r, 3, argv, NULL) == 0;
    }
    T_OK(ok, "seeded 3000 keys au:many:*");
    T_OK(er_audit_run(env, r, NULL, NULL, NULL, in_ms(10000), &a, &err) == 0,
         "audit runs");
    T_OK(a.stale_keys == 3 && !a.keys[0].scan.incomplete,
         "the pattern au:idem:* still counts 3 among 3004 keys (%lld)",
         a.stale_keys);
    er_audit_free(&a);

    T_OK(er_redis_scan_pttl(r, "au:many:*", 1000, 0, 10, in_ms(10000),
                            in_ms(10000), &s, &err) == 0,
         "scan of au:many:* without a budget (%s)", err.msg);
    /* SCAN returns every key present throughout at least once (a key may
     * come twice while Redis rehashes) */
    T_OK(s.found >= 3000 && s.found <= 3100 && !s.incomplete,
         "found the 3000 keys (%lld), complete", s.found);
    T_OK(s.nkeys == 10 && s.keys[9].pttl == -1,
         "10 distinct keys kept with their PTTL (%zu)", s.nkeys);
    er_redis_scan_ttl_free(&s);

    T_OK(er_redis_scan_pttl(r, "au:many:*", 100, 300, 10, in_ms(10000),
                            in_ms(10000), &s, &err) == 0,
         "scan with a budget of 300 keys examined");
    T_OK(s.incomplete && s.scanned == 300 && s.found < 3000,
         "stopped after 3 SCANs of 100: incomplete (scanned %lld, found %lld)",
         s.scanned, s.found);
    er_redis_scan_ttl_free(&s);

    T_OK(er_redis_scan_pttl(r, "au:many:*", 100, 0, 10, er_now_ms(),
                            in_ms(10000), &s, &err) == 0,
         "scan with its soft deadline already past");
    T_OK(s.incomplete && s.scanned == 100,
         "one SCAN then stopped: incomplete (scanned %lld)", s.scanned);
    er_redis_scan_ttl_free(&s);

    T_OK(er_redis_scan_pttl(r, "au:many:*", 100, 0, 10, in_ms(10000),
                            er_now_ms() - 1, &s, &err) == -1 &&
             err.code == ER_E_ENV,
         "a hard deadline already past fails: %s", err.msg);
    er_redis_scan_ttl_free(&s);
    er_err_clear(&err);
  }
  {
    er_audit_t b;
    const char *t;
    json_t *env2 = json_pack("{s:{s:s}, s:{s:[s]}}", "redis", "url", url,
                             "state", "idempotency_keys", "au:many:*");
    T_OK(er_audit_run(env2, r, NULL, NULL, NULL, in_ms(10000), &b, &err) == 0,
         "audit of au:many:*");
    t = er_buf_cstr(&b.text);
    T_OK(b.keys[0].scan.nkeys == 10 && has(t, "    ... 2990 more not listed\n"),
         "10 listed, the rest counted");
    er_audit_free(&b);
    json_decref(env2);
  }
  redis_cmd(r, 1, flush, NULL);
  json_decref(env);
  er_redis_free(r);
}

static void test_unreachable(void) {
  er_err_t err = {0};
  er_audit_t a;
  json_t *env =
      json_pack("{s:{s:s}, s:{s:[s]}}", "redis", "url", "redis://127.0.0.1:1/0",
                "state", "idempotency_keys", "x:*");
  T_OK(er_audit_run(env, NULL, NULL, NULL, NULL, in_ms(5000), &a, &err) == -1 &&
           err.code == ER_E_ENV && strstr(err.msg, "127.0.0.1:1"),
       "unreachable Redis: ER_E_ENV naming it (%s)", err.msg);
  er_audit_free(&a);
  json_decref(env);
}

/* ---- config ----------------------------------------------------------------
 */

static void bad_state(const char *json, const char *want) {
  er_err_t err = {0};
  er_audit_cfg_t cfg;
  json_t *env = json_loads(json, 0, NULL);
  int rc = er_audit_config(env, &cfg, &err);
  T_OK(rc == -1 && err.code == ER_E_INPUT && strstr(err.msg, want),
       "%s refused: %s", json, err.msg);
  json_decref(env);
}

static void test_config(void) {
  er_err_t err = {0};
  er_audit_cfg_t cfg;
  json_t *env;
  bad_state("{\"state\": {\"stale\": \"maybe\"}}",
            "state.stale must be \"warn\" or \"fail\"");
  bad_state("{\"state\": {\"idempotency_keys\": [\"\"]}}",
            "state.idempotency_keys[0] must be a non-empty string");
  bad_state("{\"state\": {\"idempotency_keys\": \"a:*\"}}",
            "state.idempotency_keys must be an array of strings");
  bad_state("{\"state\": {\"consumer_groups\": {\"g\": \"t\"}}}",
            "state.consumer_groups.g must be an array of strings");
  bad_state("{\"state\": {\"consumer_groups\": [\"g\"]}}",
            "state.consumer_groups must be an object");
  env = json_loads("{\"state\": {\"stale\": \"fail\", \"idempotency_key\": "
                   "\"x\"}}",
                   0, NULL);
  T_OK(er_audit_config(env, &cfg, &err) == 0 && cfg.fail,
       "only stale/idempotency_key: nothing to audit (0), fail read");
  json_decref(env);
  env = json_loads("{\"state\": {\"consumer_groups\": {\"g\": [\"t\"]}}}", 0,
                   NULL);
  T_OK(er_audit_config(env, &cfg, &err) == 1 && !cfg.fail,
       "consumer_groups: something to audit, warn by default");
  json_decref(env);
}

/* ---- Kafka ------------------------------------------------------------------
 */

typedef struct pctx {
  int partition;
} pctx_t;

static int next_msg(void *ud, size_t i, er_kafka_msg_t *m, er_err_t *err) {
  pctx_t *p = ud;
  (void)i;
  (void)err;
  memset(m, 0, sizeof *m);
  m->value = "v";
  m->value_len = 1;
  m->partition = p->partition;
  return 0;
}

static int produce(er_kafka_t *k, const char *topic, int partition, size_t n) {
  er_err_t err = {0};
  er_kafka_producer_t *p = er_kafka_producer_new(k, &err);
  er_kafka_produce_opts_t o;
  er_kafka_produce_stats_t st;
  pctx_t c = {partition};
  int rc;
  if (!p)
    return -1;
  memset(&o, 0, sizeof o);
  o.count = n;
  o.deadline_ms = in_ms(20000);
  rc = er_kafka_produce(p, topic, next_msg, &c, &o, &st, &err);
  if (rc != 0)
    printf("# produce: %s\n", err.msg);
  er_kafka_producer_free(p);
  return rc;
}

static void test_lag(void) {
  er_err_t err = {0};
  er_kafka_t *k = er_kafka_embedded(1, &err);
  const char *topics[] = {"au.t"};
  er_audit_t a;
  json_t *env;

  T_OK(k != NULL, "embedded broker (%s)", err.msg);
  if (!k)
    return;
  T_OK(er_kafka_create_topic(k, "au.t", 2, -1, in_ms(10000), &err) == 0,
       "topic au.t with 2 partitions");
  T_OK(produce(k, "au.t", 0, 5) == 0 && produce(k, "au.t", 1, 3) == 0,
       "5 messages to [0], 3 to [1]");
  T_OK(er_kafka_reset_group(k, "au-g1", topics, 1, true, in_ms(10000), &err) ==
           0,
       "au-g1 committed at the end (%s)", err.msg);
  T_OK(produce(k, "au.t", 0, 2) == 0, "2 more messages to [0]");

  env = json_pack("{s:{s:{s:[s], s:[s], s:[s]}}}", "state", "consumer_groups",
                  "au-g1", "au.t", "au-g2", "au.t", "au-g3", "au.none");
  T_OK(er_audit_run(env, NULL, NULL, k, NULL, in_ms(20000), &a, &err) == 0,
       "audit of 3 groups runs (%s)", err.msg);
  T_OK(a.nlags == 3, "3 (group, topic) pairs (%zu)", a.nlags);
  if (a.nlags == 3) {
    const er_kafka_lag_t *g1 = &a.lags[0].lag, *g2 = &a.lags[1].lag;
    T_OK(!strcmp(a.lags[0].group, "au-g1") && g1->n == 2 &&
             g1->committed[0] == 5 && g1->committed[1] == 3 &&
             g1->end[0] == 7 && g1->end[1] == 3 && g1->total == 2,
         "au-g1: committed 5/3, end 7/3, lag 2");
    T_OK(!strcmp(a.lags[1].group, "au-g2") && g2->n == 2 &&
             g2->committed[0] == -1 && g2->committed[1] == -1 &&
             g2->total == 10,
         "au-g2 (nothing committed): lag 10 (%lld)", (long long)g2->total);
    T_OK(a.lags[2].lag.n == 0, "au-g3: the topic does not exist");
  }
  T_OK(a.stale && a.stale_lag == 12, "stale: lag 12 in all");
  {
    const char *t = er_buf_cstr(&a.text);
    char head[200];
    snprintf(head, sizeof head, "consumer groups on %s:\n",
             er_kafka_bootstrap(k));
    T_OK(has(t, head), "text: the cluster");
    T_OK(has(t, "  consumer group au-g1: lag 2\n"
                "    au.t [0] committed 5 end 7 lag 2\n"
                "    au.t [1] committed 3 end 3 lag 0\n"),
         "text: au-g1 per partition");
    T_OK(has(t, "  consumer group au-g2: lag 10\n"
                "    au.t [0] committed none end 7 lag 7\n"
                "    au.t [1] committed none end 3 lag 3\n"),
         "text: au-g2 per partition, nothing committed");
    T_OK(has(t, "  consumer group au-g3: lag 0\n"
                "    au.none: topic does not exist\n"),
         "text: au-g3 missing topic");
    T_OK(has(t, "stale state: 0 idempotency keys, consumer lag 12\n"),
         "text: the summary");
  }
  er_audit_free(&a);

  /* `eventrig audit` on a cluster named by kafka.bootstrap */
  {
    char path[] = "/tmp/itest-audit-XXXXXX";
    int fd = mkstemp(path);
    char *outs = NULL, *errs = NULL;
    size_t outn = 0, errn = 0;
    FILE *out = open_memstream(&outs, &outn);
    FILE *errf = open_memstream(&errs, &errn);
    json_t *f = json_pack("{s:{s:s, s:s}, s:{s:{s:[s]}}}", "kafka", "bootstrap",
                          er_kafka_bootstrap(k), "timeout", "10s", "state",
                          "consumer_groups", "au-g1", "au.t");
    int code;
    T_OK(fd >= 0 && json_dumpfd(f, fd, 0) == 0, "environment file written");
    if (fd >= 0)
      close(fd);
    code = er_audit_command(path, out, errf);
    fclose(out);
    fclose(errf);
    T_OK(code == 1, "eventrig audit on the cluster: exit 1 (got %d; %s)", code,
         errs);
    T_OK(has(outs, "  consumer group au-g1: lag 2\n"
                   "    au.t [0] committed 5 end 7 lag 2\n"
                   "    au.t [1] committed 3 end 3 lag 0\n"
                   "stale state: 0 idempotency keys, consumer lag 2\n"),
         "eventrig audit: the lag per partition");
    free(outs);
    free(errs);
    json_decref(f);

    /* unreachable cluster: exit 3 naming it, within kafka.timeout */
    f = json_pack("{s:{s:s, s:s}, s:{s:{s:[s]}}}", "kafka", "bootstrap",
                  "127.0.0.1:1", "timeout", "2s", "state", "consumer_groups",
                  "au-g1", "au.t");
    outs = errs = NULL;
    out = open_memstream(&outs, &outn);
    errf = open_memstream(&errs, &errn);
    fd = open(path, O_WRONLY | O_TRUNC);
    T_OK(fd >= 0 && json_dumpfd(f, fd, 0) == 0, "environment file rewritten");
    if (fd >= 0)
      close(fd);
    {
      int64_t t0 = er_now_ms();
      code = er_audit_command(path, out, errf);
      fclose(out);
      fclose(errf);
      T_OK(code == 3 && strstr(errs, "127.0.0.1:1") && er_now_ms() - t0 < 6000,
           "unreachable cluster: exit 3 naming it, in time (got %d: %s)", code,
           errs);
    }
    free(outs);
    free(errs);
    json_decref(f);
    unlink(path);
  }

  /* the group catches up: clean */
  T_OK(er_kafka_reset_group(k, "au-g2", topics, 1, true, in_ms(10000), &err) ==
           0,
       "au-g2 committed at the end");
  json_decref(env);
  env =
      json_pack("{s:{s:{s:[s]}}}", "state", "consumer_groups", "au-g2", "au.t");
  T_OK(er_audit_run(env, NULL, NULL, k, NULL, in_ms(20000), &a, &err) == 0 &&
           !a.stale && a.stale_lag == 0,
       "au-g2 at the end: not stale");
  T_OK(has(er_buf_cstr(&a.text), "  consumer group au-g2: lag 0\n"),
       "text: lag 0");
  er_audit_free(&a);

  /* no target: skipped with the note */
  T_OK(er_audit_run(env, NULL, NULL, NULL, "embedded broker: nothing to audit",
                    in_ms(5000), &a, &err) == 0 &&
           !a.stale &&
           has(er_buf_cstr(&a.text),
               "kafka: embedded broker: nothing to audit\n"),
       "no Kafka target: groups skipped with the note");
  er_audit_free(&a);
  json_decref(env);
  er_kafka_free(k);
}

int main(void) {
  const char *url = getenv("REDIS_URL");
  test_config();
  if (url && *url) {
    test_keys(url);
    test_unreachable();
  } else {
    T_OK(0, "REDIS_URL is set (run through tests/integration/audit.sh)");
  }
  test_lag();
  return t_done();
}
