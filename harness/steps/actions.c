/* actions.c: the table of every step action. One line per action; the
 * loader and the runner find actions only through here. */
#include <string.h>

#include "run/exec.h"

extern const er_action_t er_act_http;
extern const er_action_t er_act_redis;
extern const er_action_t er_act_redis_clean;
extern const er_action_t er_act_redis_seed;
extern const er_action_t er_act_pg_exec;
extern const er_action_t er_act_pg_expect;
extern const er_action_t er_act_pg_alias;
extern const er_action_t er_act_await;
extern const er_action_t er_act_hold;
extern const er_action_t er_act_sleep;
extern const er_action_t er_act_group;
extern const er_action_t er_act_repeat;
extern const er_action_t er_act_parallel;
extern const er_action_t er_act_kafka_produce;
extern const er_action_t er_act_kafka_expect;
extern const er_action_t er_act_kafka_drained;
extern const er_action_t er_act_kafka_reset;
extern const er_action_t er_act_fault;
extern const er_action_t er_act_metrics;
extern const er_action_t er_act_service_stop;
extern const er_action_t er_act_service_kill;
extern const er_action_t er_act_service_start;
extern const er_action_t er_act_service_restart;
extern const er_action_t er_act_redis_contend;
extern const er_action_t er_act_use;
extern const er_action_t er_act_foreach;
extern const er_module_t er_mod_kafka;
extern const er_module_t er_mod_proxy;
extern const er_module_t er_mod_services;
extern const er_module_t er_mod_audit;
extern const er_module_t er_mod_safety;

static const er_action_t *const g_actions[] = {
    &er_act_http,          &er_act_redis,           &er_act_redis_clean,
    &er_act_redis_seed,    &er_act_pg_exec,         &er_act_pg_expect,
    &er_act_pg_alias,      &er_act_await,           &er_act_hold,
    &er_act_sleep,         &er_act_group,           &er_act_repeat,
    &er_act_parallel,      &er_act_kafka_produce,   &er_act_kafka_expect,
    &er_act_kafka_drained, &er_act_kafka_reset,     &er_act_fault,
    &er_act_metrics,       &er_act_service_stop,    &er_act_service_kill,
    &er_act_service_start, &er_act_service_restart, &er_act_redis_contend,
    &er_act_use,           &er_act_foreach,
};

const er_action_t *er_action_find(const char *name) {
  for (size_t i = 0; i < sizeof g_actions / sizeof g_actions[0]; i++)
    if (strcmp(g_actions[i]->name, name) == 0)
      return g_actions[i];
  return NULL;
}

static const er_module_t *const g_modules[] = {
    /* safety first: its preflight refuses before any other module acts */
    &er_mod_safety,
    /* services first: hooks at the end run in reverse order, so starting
     * again what a scenario stopped comes after its faults are healed */
    &er_mod_services,
    /* then proxies: they come up before services, and go after them */
    &er_mod_proxy,
    &er_mod_kafka,
    /* after kafka (its target) and every other check: stale state */
    &er_mod_audit,
};

const er_module_t *const *er_modules_all(size_t *n) {
  *n = sizeof g_modules / sizeof g_modules[0];
  return g_modules;
}

const er_action_t *const *er_actions_all(size_t *n) {
  *n = sizeof g_actions / sizeof g_actions[0];
  return g_actions;
}
