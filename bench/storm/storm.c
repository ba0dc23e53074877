/* storm.c: eventrig's produce path under load, for bench/storm/run.sh.
 *
 *   storm produce BOOTSTRAP TOPIC COUNT SIZE   one kafka.produce step of
 *        COUNT messages of SIZE bytes through the kafka module (real-broker
 *        path: run_begin, preflight, scenario_begin, then the step); prints
 *        "messages=N seconds=S rate=R peak_rss_kb=K"
 *   storm count BOOTSTRAP TOPIC                prints the sum of the end
 *        offsets of TOPIC's partitions
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "adapters/kafka.h"
#include "lang/action.h"
#include "lang/template.h"
#include "run/exec.h"

extern const er_action_t er_act_kafka_produce;
extern const er_module_t er_mod_kafka;

static long vm_hwm_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0)
      kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

static int count(const char *bs, const char *topic) {
  er_err_t err = {0};
  er_kafka_t *k = er_kafka_connect(bs, NULL, 0, &err);
  int64_t *hi = NULL, sum = 0;
  int n = 0;
  if (!k || er_kafka_watermarks(k, topic, NULL, &hi, &n, er_now_ms() + 10000,
                                &err) != 0) {
    fprintf(stderr, "storm: %s\n", err.msg);
    er_kafka_free(k);
    return 1;
  }
  for (int i = 0; i < n; i++)
    sum += hi[i];
  printf("%lld\n", (long long)sum);
  free(hi);
  er_kafka_free(k);
  return 0;
}

static int produce(const char *bs, const char *topic, long n, long size) {
  er_err_t err = {0};
  er_session_t *shared = er_session_new(), *scenario = er_session_new(),
               *session = er_session_new();
  er_tmpl_t *t = er_tmpl_new();
  er_buf_t detail = ER_BUF_INIT(64 * 1024), log = ER_BUF_INIT(64 * 1024);
  json_t *env = NULL, *args = NULL, *caps = json_object();
  char *text = NULL;
  er_exec_t x;
  int64_t t0, t1;
  int rc = 1, step;
  struct rusage ru;

  env = json_pack("{s:{s:s,s:[s]}}", "kafka", "bootstrap", bs, "topics", topic);
  text = malloc((size_t)size + 1);
  if (!env || !text || !shared || !scenario || !session || !t)
    goto out;
  memset(text, 'x', (size_t)size);
  text[size] = '\0';
  if (er_mod_kafka.run_begin(env, t, shared, &err) != 0 ||
      er_mod_kafka.preflight(env, shared, &err) != 0 ||
      er_mod_kafka.scenario_begin(env, shared, scenario, &err) != 0) {
    fprintf(stderr, "storm: %s\n", err.msg);
    goto out;
  }
  args = json_pack("{s:s,s:s,s:I}", "topic", topic, "text", text, "count",
                   (json_int_t)n);
  memset(&x, 0, sizeof x);
  x.env = env;
  x.session = session;
  x.shared = shared;
  x.scenario = scenario;
  x.tmpl = t;
  x.deadline_ms = er_now_ms() + 240000;
  x.log = &log;
  x.captures = caps;
  x.detail = &detail;
  t0 = er_now_us();
  step = er_act_kafka_produce.run(&x, args);
  t1 = er_now_us();
  if (step != ER_STEP_OK) {
    fprintf(stderr, "storm: kafka.produce failed: %s\n", er_buf_cstr(&detail));
    goto out;
  }
  getrusage(RUSAGE_SELF, &ru);
  printf("messages=%ld seconds=%.3f rate=%.0f peak_rss_kb=%ld vm_hwm_kb=%ld\n",
         n, (double)(t1 - t0) / 1e6, (double)n * 1e6 / (double)(t1 - t0),
         ru.ru_maxrss, vm_hwm_kb());
  fprintf(stderr, "%s", er_buf_cstr(&log));
  rc = 0;
out:
  er_session_free(session);
  er_session_free(scenario);
  if (shared)
    er_mod_kafka.run_end(shared);
  er_session_free(shared);
  er_tmpl_free(t);
  json_decref(env);
  json_decref(args);
  json_decref(caps);
  er_buf_free(&detail);
  er_buf_free(&log);
  free(text);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 6 && strcmp(argv[1], "produce") == 0)
    return produce(argv[2], argv[3], atol(argv[4]), atol(argv[5]));
  if (argc == 4 && strcmp(argv[1], "count") == 0)
    return count(argv[2], argv[3]);
  fprintf(stderr, "usage: storm produce BOOTSTRAP TOPIC COUNT SIZE\n"
                  "       storm count BOOTSTRAP TOPIC\n");
  return 2;
}
