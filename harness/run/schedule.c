/* schedule.c: see schedule.h. */
#include "run/schedule.h"

#include <stdio.h>
#include <string.h>

static const char *const g_alone[] = {
    "service.stop", "service.start", "service.kill",  "service.restart",
    "fault",        "proxy",         "redis.contend", "kafka.reset",
};

/* Values that are data sent or expected, never steps: not searched. */
static const char *const g_data[] = {
    "json",  "body", "value",   "expect", "headers",  "params", "keys",
    "where", "vars", "capture", "equals", "contains", "key",    "query",
};

static bool is_one_of(const char *k, const char *const *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(k, v[i]))
      return true;
  return false;
}

/* The first step action under v that makes a scenario run alone. */
static const char *alone_in(const json_t *v, int depth) {
  const char *k;
  json_t *x;
  if (depth > 64)
    return NULL;
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      const char *w = alone_in(json_array_get(v, i), depth + 1);
      if (w)
        return w;
    }
    return NULL;
  }
  if (!json_is_object(v))
    return NULL;
  json_object_foreach((json_t *)v, k, x) {
    const char *w;
    if (is_one_of(k, g_alone, sizeof g_alone / sizeof *g_alone))
      return k;
    if (!strcmp(k, "redis.clean") && json_is_true(json_object_get(x, "flush")))
      return "redis.clean with flush";
    if (is_one_of(k, g_data, sizeof g_data / sizeof *g_data))
      continue;
    w = alone_in(x, depth + 1);
    if (w)
      return w;
  }
  return NULL;
}

bool er_schedule_exclusive(const er_scenario_t *s, char *why, size_t whysz) {
  static const char *const lists[] = {"setup", "steps", "teardown"};
  const char *w = NULL;
  if (why && whysz)
    why[0] = '\0';
  if (s->exclusive >= 0) {
    if (why && whysz)
      snprintf(why, whysz, "\"exclusive\": %s",
               s->exclusive ? "true" : "false");
    return s->exclusive == 1;
  }
  for (size_t l = 0; l < 3 && !w; l++)
    w = alone_in(json_object_get(s->doc, lists[l]), 0);
  if (w && why && whysz)
    snprintf(why, whysz, "%s", w);
  return w != NULL;
}
