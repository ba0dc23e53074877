/* targets.c: outside targets of a run (see targets.h). */
#include "run/targets.h"

#include <stdlib.h>

#include "base/jsonbig.h"

#define KEY "target.kafka"

typedef struct kref {
  er_kafka_t *k; /* borrowed */
} kref_t;

er_kafka_t *er_target_kafka(er_session_t *shared) {
  kref_t *r = shared ? er_session_get(shared, KEY) : NULL;
  return r ? r->k : NULL;
}

int er_target_kafka_set(er_session_t *shared, er_kafka_t *k, er_err_t *err) {
  kref_t *r = er_session_get(shared, KEY);
  if (r) {
    r->k = k;
    return 0;
  }
  r = calloc(1, sizeof *r);
  if (!r || er_session_put(shared, KEY, r, free) != 0) {
    free(r);
    return er_errf(err, ER_E_ENV, "out of memory");
  }
  r->k = k;
  return 0;
}

er_kafka_t *er_target_kafka_from_env(const json_t *kc, er_err_t *err) {
  const json_t *cf = json_object_get(kc, "config");
  const char *bs = json_string_value(json_object_get(kc, "bootstrap"));
  size_t n = json_is_object(cf) ? json_object_size(cf) : 0, i = 0;
  const char **props = calloc(2 * n + 1, sizeof *props);
  char **owned = calloc(n + 1, sizeof *owned);
  er_kafka_t *k = NULL;
  const char *key;
  json_t *v;
  if (!props || !owned) {
    er_errf(err, ER_E_ENV, "out of memory");
    goto out;
  }
  if (json_is_object(cf))
    json_object_foreach((json_t *)cf, key, v) {
      props[2 * i] = key;
      if (json_is_string(v)) {
        props[2 * i + 1] = json_string_value(v);
      } else if (json_is_integer(v) || json_is_real(v) || json_is_boolean(v)) {
        owned[i] = er_json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        props[2 * i + 1] = owned[i];
      } else {
        er_errf(err, ER_E_INPUT,
                "environment: kafka.config.%s must be a string, number or "
                "boolean",
                key);
        goto out;
      }
      if (!props[2 * i + 1]) {
        er_errf(err, ER_E_ENV, "out of memory");
        goto out;
      }
      i++;
    }
  k = er_kafka_connect(bs ? bs : "", props, i, err);
out:
  for (size_t j = 0; owned && j < n; j++)
    free(owned[j]);
  free(owned);
  free(props);
  return k;
}
