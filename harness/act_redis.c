/* act_redis.c: the "redis", "redis.clean" and "redis.seed" steps.
 *
 * {"redis": {"command": ["HGET", "k", "f"], "expect": <matcher>,
 *            "capture": {"name": "" | "/pointer"}, "url": "redis://..."}}
 *   The reply becomes JSON (bulk/status -> string, integer -> integer,
 *   nil -> null, array -> array; HGETALL / CONFIG GET replies become
 *   objects) and is matched against expect (see jsonx.h matchers).
 *   Without expect, an error reply fails the step.
 *
 * {"redis.clean": {"match": "els:*" | ["a:*", "b:*"], "batch": 500,
 *                  "flush": false, "url": "..."}}
 *   SCAN MATCH + UNLINK in batches; never KEYS. "flush": true uses FLUSHDB
 *   and is refused unless the environment sets redis.allow_flush.
 *
 * {"redis.seed": {"keys": {"k": "v" | {"value": "v", "ttl": "1h"} |
 *                          {"hash": {...}, "ttl": ..} | {"set": [...]}},
 *                 "ttl": "1h", "url": "..."}}
 *
 * The URL defaults to the environment's redis.url. */
#include "action.h"

static const er_keyspec_t redis_keys[] = {
    {"command", ER_T_ARRAY, true, NULL, NULL},
    {"expect", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"capture", ER_T_OBJECT, false, NULL, NULL},
    {"url", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t clean_keys[] = {
    {"match", ER_T_STRING | ER_T_ARRAY, false, NULL, NULL},
    {"batch", ER_T_INT, false, NULL, NULL},
    {"flush", ER_T_BOOL, false, NULL, NULL},
    {"url", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t seed_keys[] = {
    {"keys", ER_T_OBJECT, true, NULL, NULL},
    {"ttl", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"url", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static int not_yet(er_exec_t *x, const json_t *args) {
  (void)args;
  er_buf_puts(x->detail, "redis: not implemented yet");
  return ER_STEP_FATAL;
}

const er_action_t er_act_redis = {
    .name = "redis", .keys = redis_keys, .check = true, .run = not_yet};
const er_action_t er_act_redis_clean = {
    .name = "redis.clean", .keys = clean_keys, .run = not_yet};
const er_action_t er_act_redis_seed = {
    .name = "redis.seed", .keys = seed_keys, .run = not_yet};
