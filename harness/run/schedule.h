/* schedule.h: which scenarios may run at the same time under -j N.
 *
 * A scenario that changes what every scenario shares runs alone (none
 * other runs while it does): one with a step, at any depth, of
 * service.stop / service.start / service.kill / service.restart, fault or
 * proxy (the shared fault proxies), redis.contend, kafka.reset, or
 * redis.clean with "flush": true. "exclusive": true / false in the
 * scenario overrides what the steps say.
 */
#ifndef ER_SCHEDULE_H
#define ER_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>

#include "lang/scenario.h"

/* Whether s runs alone; why (may be NULL) gets the reason ("service.stop",
 * "\"exclusive\": true") or "". */
bool er_schedule_exclusive(const er_scenario_t *s, char *why, size_t whysz);

#endif
