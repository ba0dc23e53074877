/* audit_cmd.c: the `eventrig audit` command (audit.h). Apart from the
 * run module in audit.c, so that linking the module does not pull in the
 * environment loader. */
#include "lang/env.h"
#include "lang/scenario.h"
#include "lang/template.h"
#include "run/audit.h"
#include "run/targets.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- `eventrig audit` --------------------------------------------------- */

/* Loads and resolves the environment file for the audit (into *e, with
 * its template context in *t): 0, or -1 with the problem printed. The
 * raw file's state section is checked before anything is resolved. */
static int audit_env(const char *env_path, FILE *errf, er_env_t **e,
                     er_tmpl_t **t, er_diags_t *diags) {
  er_audit_cfg_t cfg;
  er_err_t err = {0};
  const json_t *raw;
  *e = er_env_load(env_path, diags);
  if (!*e) {
    er_diags_print(diags, errf, false);
    fprintf(errf, "eventrig: the environment file is not usable\n");
    return -1;
  }
  raw = er_env_raw(*e);
  if (er_audit_config(raw, &cfg, &err) < 0) {
    fprintf(errf, "eventrig: %s\n", err.msg);
    return -1;
  }
  *t = er_tmpl_new();
  if (!*t || er_tmpl_set(*t, "run.id", json_string("audit")) != 0 ||
      er_env_set_placeholders(raw, *t) != 0) {
    fprintf(errf, "eventrig: out of memory\n");
    return -1;
  }
  if (er_env_resolve(*e, *t, diags) != 0) {
    er_diags_print(diags, errf, false);
    fprintf(errf, "eventrig: the environment file is not usable\n");
    return -1;
  }
  return 0;
}

int er_audit_command(const char *env_path, FILE *out, FILE *errf) {
  er_diags_t diags = {0};
  er_env_t *e = NULL;
  er_tmpl_t *t = NULL;
  er_kafka_t *k = NULL;
  er_audit_t a;
  er_audit_cfg_t cfg;
  er_err_t err = {0};
  const json_t *env, *raw, *kc;
  const char *skip_redis = NULL, *note = NULL;
  const char *raw_url, *tv;
  int64_t timeout_ms = ER_AUDIT_TIMEOUT_MS;
  int code = 2, has;

  memset(&a, 0, sizeof a);
  if (audit_env(env_path, errf, &e, &t, &diags) != 0)
    goto out;
  raw = er_env_raw(e);
  env = er_env_json(e);
  has = er_audit_config(env, &cfg, &err);
  if (has < 0) {
    fprintf(errf, "eventrig: %s\n", err.msg);
    goto out;
  }
  if (has == 0) {
    fprintf(errf, "eventrig: nothing to audit: the environment has no "
                  "state.idempotency_keys or state.consumer_groups\n");
    goto out;
  }
  raw_url =
      json_string_value(json_object_get(json_object_get(raw, "redis"), "url"));
  if (json_array_size(cfg.patterns) > 0 && !raw_url) {
    fprintf(errf,
            "eventrig: environment: state.idempotency_keys needs redis.url\n");
    goto out;
  }
  if (raw_url && strstr(raw_url, "${port.")) {
    /* ${port.X} is a port picked afresh for each run: that Redis is
     * started by the run, and there is nothing left of earlier runs */
    skip_redis =
        "the URL uses ${port.NAME} (a server the run starts on a fresh "
        "port): nothing to audit";
  }
  kc = json_object_get(env, "kafka");
  if (json_object_size(cfg.groups) > 0) {
    if (json_is_string(json_object_get(kc, "bootstrap"))) {
      k = er_target_kafka_from_env(kc, &err);
      if (!k) {
        fprintf(errf, "eventrig: kafka: %s\n", err.msg);
        goto out;
      }
    } else {
      note = "embedded broker (fresh for each run): nothing to audit";
    }
  }
  /* kafka.timeout (as for the run's pre-flight) bounds the audit too */
  tv = json_string_value(json_object_get(kc, "timeout"));
  if (tv && (er_parse_duration(tv, &timeout_ms) != 0 || timeout_ms <= 0)) {
    fprintf(errf, "eventrig: environment: kafka.timeout must be a duration "
                  "such as \"15s\"\n");
    goto out;
  }
  if (er_audit_run(env, NULL, skip_redis, k, note, er_now_ms() + timeout_ms, &a,
                   &err) != 0) {
    char msg[ER_ERRSTR];
    snprintf(msg, sizeof msg, "%s", err.msg);
    er_secret_redact(msg);
    fprintf(errf, "eventrig: audit: %s\n", msg);
    code = err.code == ER_E_INPUT ? 2 : 3;
    goto out;
  }
  fputs(er_buf_cstr(&a.text), out);
  code = a.stale ? 1 : 0;
out:
  er_audit_free(&a);
  er_kafka_free(k);
  if (t)
    er_tmpl_set_env_vars(t, NULL);
  er_tmpl_free(t);
  er_env_free(e);
  er_diags_free(&diags);
  return code;
}
