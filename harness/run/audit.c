/* audit.c: the stale-state audit (see audit.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/env.h"
#include "lang/scenario.h"
#include "lang/template.h"
#include "run/audit.h"
#include "run/targets.h"

#define SCAN_BATCH 1000
#define KEY_SHOWN_MAX 120 /* bytes of a key shown (escaped) */

/* ---- configuration ----------------------------------------------------- */

static int strings_array(const json_t *a, const char *where, er_err_t *err) {
  size_t i;
  const json_t *v;
  if (!json_is_array(a))
    return er_errf(err, ER_E_INPUT,
                   "environment: %s must be an array of strings", where);
  json_array_foreach(a, i, v) {
    if (!json_is_string(v) || !*json_string_value(v))
      return er_errf(err, ER_E_INPUT,
                     "environment: %s[%zu] must be a non-empty string", where,
                     i);
  }
  return 0;
}

int er_audit_config(const json_t *env, er_audit_cfg_t *cfg, er_err_t *err) {
  const json_t *st = env ? json_object_get(env, "state") : NULL;
  const json_t *stale, *groups;
  const char *g;
  json_t *topics;

  memset(cfg, 0, sizeof *cfg);
  if (!st)
    return 0;
  if (!json_is_object(st))
    return er_errf(err, ER_E_INPUT, "environment: state must be an object");
  stale = json_object_get(st, "stale");
  if (stale) {
    const char *s = json_string_value(stale);
    if (!s || (strcmp(s, "warn") != 0 && strcmp(s, "fail") != 0))
      return er_errf(err, ER_E_INPUT,
                     "environment: state.stale must be \"warn\" or \"fail\"");
    cfg->fail = strcmp(s, "fail") == 0;
  }
  cfg->patterns = json_object_get(st, "idempotency_keys");
  if (cfg->patterns &&
      strings_array(cfg->patterns, "state.idempotency_keys", err) != 0)
    return -1;
  groups = json_object_get(st, "consumer_groups");
  if (groups && !json_is_object(groups))
    return er_errf(err, ER_E_INPUT,
                   "environment: state.consumer_groups must be an object: "
                   "{\"group\": [\"topic\", ...]}");
  if (groups)
    json_object_foreach((json_t *)groups, g, topics) {
      char where[300];
      if (!*g)
        return er_errf(err, ER_E_INPUT,
                       "environment: state.consumer_groups: a group name is "
                       "empty");
      snprintf(where, sizeof where, "state.consumer_groups.%.200s", g);
      if (strings_array(topics, where, err) != 0)
        return -1;
    }
  cfg->groups = groups;
  if (json_array_size(cfg->patterns) == 0 && json_object_size(groups) == 0)
    return 0;
  return 1;
}

/* ---- rendering --------------------------------------------------------- */

/* Appends key (len bytes) with bytes outside printable ASCII as \xNN, at
 * most KEY_SHOWN_MAX bytes of it; returns the width written. */
static size_t put_key(er_buf_t *b, const char *key, size_t len) {
  size_t w = 0;
  for (size_t i = 0; i < len && i < KEY_SHOWN_MAX; i++) {
    unsigned char c = (unsigned char)key[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      er_buf_append(b, &key[i], 1);
      w++;
    } else {
      er_buf_printf(b, "\\x%02x", c);
      w += 4;
    }
  }
  if (len > KEY_SHOWN_MAX) {
    er_buf_puts(b, "...");
    w += 3;
  }
  return w;
}

static size_t key_width(const char *key, size_t len) {
  er_buf_t b = ER_BUF_INIT(4096);
  size_t w = put_key(&b, key, len);
  er_buf_free(&b);
  return w;
}

/* "23h59m", "4m05s", "12s", "850ms" */
static void fmt_ttl(long long ms, char out[48]) {
  if (ms == -1) {
    snprintf(out, 48, "no TTL (never expires)");
  } else if (ms < 0) {
    snprintf(out, 48, "gone (expired or deleted meanwhile)");
  } else if (ms >= 86400000LL) {
    snprintf(out, 48, "TTL %lldd%02lldh", ms / 86400000LL,
             ms % 86400000LL / 3600000LL);
  } else if (ms >= 3600000LL) {
    snprintf(out, 48, "TTL %lldh%02lldm", ms / 3600000LL,
             ms % 3600000LL / 60000LL);
  } else if (ms >= 60000LL) {
    snprintf(out, 48, "TTL %lldm%02llds", ms / 60000LL, ms % 60000LL / 1000LL);
  } else if (ms >= 1000LL) {
    snprintf(out, 48, "TTL %llds", ms / 1000LL);
  } else {
    snprintf(out, 48, "TTL %lldms", ms);
  }
}

static void render(er_audit_t *a, const char *skip_redis,
                   const char *kafka_note, const er_audit_cfg_t *cfg) {
  er_buf_t *b = &a->text;
  if (json_array_size(cfg->patterns) > 0) {
    if (skip_redis) {
      er_buf_printf(b, "redis: %s\n", skip_redis);
    } else {
      er_buf_printf(b, "idempotency keys in %s:\n", a->redis);
      for (size_t i = 0; i < a->nkeys; i++) {
        const er_audit_keys_t *p = &a->keys[i];
        size_t w = 0;
        er_buf_printf(b, "  %s : ", p->pattern);
        if (p->scan.found == 0)
          er_buf_printf(b, "no keys%s\n",
                        p->scan.incomplete ? " (so far)" : "");
        else
          er_buf_printf(b, "%s%lld key%s\n",
                        p->scan.incomplete ? "at least " : "", p->scan.found,
                        p->scan.found == 1 ? "" : "s");
        for (size_t j = 0; j < p->scan.nkeys; j++) {
          size_t kw = key_width(p->scan.keys[j].key, p->scan.keys[j].len);
          if (kw > w)
            w = kw;
        }
        for (size_t j = 0; j < p->scan.nkeys; j++) {
          char ttl[48];
          size_t kw;
          er_buf_puts(b, "    ");
          kw = put_key(b, p->scan.keys[j].key, p->scan.keys[j].len);
          for (; kw < w + 2; kw++)
            er_buf_puts(b, " ");
          fmt_ttl(p->scan.keys[j].pttl, ttl);
          er_buf_printf(b, "%s\n", ttl);
        }
        if (p->scan.found > (long long)p->scan.nkeys)
          er_buf_printf(b, "    ... %lld more not listed\n",
                        p->scan.found - (long long)p->scan.nkeys);
        if (p->scan.incomplete)
          er_buf_printf(b,
                        "    (scan stopped after about %lld keys examined, "
                        "before the end of the keyspace)\n",
                        p->scan.scanned);
      }
    }
  }
  if (json_object_size(cfg->groups) > 0) {
    if (!a->kafka) {
      er_buf_printf(b, "kafka: %s\n",
                    kafka_note ? kafka_note : "no cluster: nothing to audit");
    } else {
      er_buf_printf(b, "consumer groups on %s:\n", a->kafka);
      for (size_t i = 0; i < a->nlags;) {
        const char *g = a->lags[i].group;
        int64_t total = 0;
        size_t j;
        for (j = i; j < a->nlags && strcmp(a->lags[j].group, g) == 0; j++)
          total += a->lags[j].lag.total;
        er_buf_printf(b, "  consumer group %s: lag %" PRId64 "\n", g, total);
        for (; i < j; i++) {
          const er_audit_lag_t *l = &a->lags[i];
          if (l->lag.n == 0) {
            er_buf_printf(b, "    %s: topic does not exist\n", l->topic);
            continue;
          }
          for (int p = 0; p < l->lag.n; p++) {
            int64_t c = l->lag.committed[p];
            int64_t lag =
                c >= 0 ? l->lag.end[p] - c : l->lag.end[p] - l->lag.lo[p];
            if (c >= 0)
              er_buf_printf(b, "    %s [%d] committed %" PRId64, l->topic, p,
                            c);
            else
              er_buf_printf(b, "    %s [%d] committed none", l->topic, p);
            er_buf_printf(b, " end %" PRId64 " lag %" PRId64 "\n",
                          l->lag.end[p], lag < 0 ? 0 : lag);
          }
        }
      }
    }
  }
  if (a->stale) {
    er_buf_printf(
        b, "stale state: %lld idempotency key%s, consumer lag %" PRId64 "\n",
        a->stale_keys, a->stale_keys == 1 ? "" : "s", a->stale_lag);
  } else {
    er_buf_puts(b, "clean: no idempotency keys, no consumer lag\n");
  }
}

/* ---- the audit --------------------------------------------------------- */

void er_audit_free(er_audit_t *a) {
  if (!a)
    return;
  free(a->redis);
  for (size_t i = 0; i < a->nkeys; i++) {
    free(a->keys[i].pattern);
    er_redis_scan_ttl_free(&a->keys[i].scan);
  }
  free(a->keys);
  free(a->kafka);
  for (size_t i = 0; i < a->nlags; i++) {
    free(a->lags[i].group);
    free(a->lags[i].topic);
    er_kafka_lag_free(&a->lags[i].lag);
  }
  free(a->lags);
  er_buf_free(&a->text);
  memset(a, 0, sizeof *a);
}

static int audit_keys(const er_audit_cfg_t *cfg, er_redis_t *r,
                      int64_t deadline_ms, er_audit_t *a, er_err_t *err) {
  size_t n = json_array_size(cfg->patterns);
  /* leave time for the PTTLs and the groups after the SCANs */
  int64_t left = deadline_ms - er_now_ms();
  int64_t scan_until = er_now_ms() + (left > 0 ? left / 2 : 0);
  a->redis = er_strdup(er_redis_redacted(r));
  a->keys = calloc(n ? n : 1, sizeof *a->keys);
  if (!a->redis || !a->keys)
    return er_errf(err, ER_E_ENV, "audit: out of memory");
  for (size_t i = 0; i < n; i++) {
    const char *pat = json_string_value(json_array_get(cfg->patterns, i));
    er_audit_keys_t *p = &a->keys[a->nkeys++];
    p->pattern = er_strdup(pat);
    if (!p->pattern)
      return er_errf(err, ER_E_ENV, "audit: out of memory");
    if (er_redis_scan_pttl(r, pat, SCAN_BATCH, ER_AUDIT_MAX_SCANNED,
                           ER_AUDIT_KEEP, scan_until, deadline_ms, &p->scan,
                           err) != 0) {
      err->code = ER_E_ENV;
      return -1;
    }
    a->stale_keys += p->scan.found;
  }
  return 0;
}

static int audit_groups(const er_audit_cfg_t *cfg, er_kafka_t *k,
                        int64_t deadline_ms, er_audit_t *a, er_err_t *err) {
  size_t n = 0;
  const char *g;
  json_t *topics;
  json_object_foreach((json_t *)cfg->groups, g, topics) n +=
      json_array_size(topics);
  a->kafka = er_strdup(er_kafka_bootstrap(k));
  a->lags = calloc(n ? n : 1, sizeof *a->lags);
  if (!a->kafka || !a->lags)
    return er_errf(err, ER_E_ENV, "audit: out of memory");
  json_object_foreach((json_t *)cfg->groups, g, topics) {
    size_t i;
    json_t *tv;
    json_array_foreach(topics, i, tv) {
      er_audit_lag_t *l = &a->lags[a->nlags++];
      l->group = er_strdup(g);
      l->topic = er_strdup(json_string_value(tv));
      if (!l->group || !l->topic)
        return er_errf(err, ER_E_ENV, "audit: out of memory");
      if (er_kafka_group_lag(k, g, l->topic, &l->lag, deadline_ms, err) != 0) {
        err->code = ER_E_ENV;
        return -1;
      }
      a->stale_lag += l->lag.total;
    }
  }
  return 0;
}

int er_audit_run(const json_t *env, er_redis_t *redis, const char *skip_redis,
                 er_kafka_t *k, const char *kafka_note, int64_t deadline_ms,
                 er_audit_t *out, er_err_t *err) {
  er_audit_cfg_t cfg;
  er_redis_t *own = NULL;
  int rc = -1;

  memset(out, 0, sizeof *out);
  er_buf_init(&out->text, 256u * 1024u);
  if (er_audit_config(env, &cfg, err) < 0)
    goto out;
  if (json_array_size(cfg.patterns) > 0 && !skip_redis) {
    if (!redis) {
      const char *url = json_string_value(
          json_object_get(json_object_get(env, "redis"), "url"));
      if (!url) {
        er_errf(err, ER_E_INPUT,
                "environment: state.idempotency_keys needs redis.url");
        goto out;
      }
      own = er_redis_new(url, 0, err);
      if (!own)
        goto out;
      redis = own;
    }
    if (audit_keys(&cfg, redis, deadline_ms, out, err) != 0)
      goto out;
  }
  if (json_object_size(cfg.groups) > 0 && k &&
      audit_groups(&cfg, k, deadline_ms, out, err) != 0)
    goto out;
  out->stale = out->stale_keys > 0 || out->stale_lag > 0;
  render(out, skip_redis, kafka_note, &cfg);
  /* keys or URLs may hold a secret value */
  er_secret_redact((char *)er_buf_cstr(&out->text));
  out->text.len = strlen(er_buf_cstr(&out->text));
  rc = 0;
out:
  er_redis_free(own);
  return rc;
}

/* ---- the module --------------------------------------------------------- */

static int mod_run_begin(const json_t *env, er_tmpl_t *t, er_session_t *shared,
                         er_err_t *err) {
  er_audit_cfg_t cfg;
  (void)t;
  (void)shared;
  /* bad values stop the run before anything starts (exit 2) */
  if (er_audit_config(env, &cfg, err) < 0)
    return -1;
  if (json_array_size(cfg.patterns) > 0 &&
      !json_object_get(json_object_get(env, "redis"), "url"))
    return er_errf(err, ER_E_INPUT,
                   "environment: state.idempotency_keys needs redis.url");
  return 0;
}

static int mod_preflight(const json_t *env, er_session_t *shared,
                         er_err_t *err) {
  er_audit_cfg_t cfg;
  er_audit_t a;
  er_kafka_t *k = er_target_kafka(shared);
  const char *note = NULL;
  int rc = -1, has;

  memset(&a, 0, sizeof a);
  has = er_audit_config(env, &cfg, err);
  if (has <= 0)
    return has;
  if (k && er_kafka_is_embedded(k)) {
    note = "embedded broker (fresh for this run): nothing to audit";
    k = NULL;
  } else if (!k) {
    note = "no Kafka target: consumer groups not audited";
  }
  if (er_audit_run(env, NULL, NULL, k, note, er_now_ms() + ER_AUDIT_TIMEOUT_MS,
                   &a, err) != 0) {
    char msg[ER_ERRSTR];
    int code = err->code == ER_E_INPUT ? ER_E_INPUT : ER_E_ENV;
    memcpy(msg, err->msg, sizeof msg);
    er_err_clear(err);
    er_errf(err, code, "stale-state audit: %s", msg);
    goto out;
  }
  {
    /* kept with the run's reports (runner: shared "run_dir") */
    const char *dir = er_session_get(shared, "run_dir");
    if (dir) {
      char path[1200];
      er_err_t werr = {0};
      char *txt = er_strdup(er_buf_cstr(&a.text));
      snprintf(path, sizeof path, "%s/audit.txt", dir);
      if (txt) {
        er_secret_redact(txt);
        if (er_write_file_atomic(path, txt, strlen(txt), &werr) != 0)
          fprintf(stderr, "eventrig: warning: %s\n", werr.msg);
      }
      free(txt);
    }
  }
  if (a.stale) {
    /* modules have no printer: the report goes to stderr, as the runner's
     * own diagnostics do */
    fprintf(stderr, "eventrig: %s: stale state left by earlier runs:\n%s",
            cfg.fail ? "error" : "warning", er_buf_cstr(&a.text));
    fflush(stderr);
    if (cfg.fail) {
      er_errf(err, ER_E_ENV,
              "stale state found before the run (%lld idempotency key(s), "
              "consumer lag %" PRId64
              "), and state.stale is \"fail\": delete the keys (a "
              "redis.clean step with the pattern, or redis-cli --scan "
              "--pattern P | xargs redis-cli unlink), move the groups to the "
              "end (kafka.reset with \"to\": \"end\"), or set state.stale "
              "to \"warn\"",
              a.stale_keys, a.stale_lag);
      goto out;
    }
  }
  rc = 0;
out:
  er_audit_free(&a);
  return rc;
}

const er_module_t er_mod_audit = {
    .name = "audit",
    .run_begin = mod_run_begin,
    .preflight = mod_preflight,
};
