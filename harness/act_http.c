/* act_http.c: the "http" step.
 *
 * {"http": {"method": "POST", "url": "...", "headers": {"K": "v"},
 *           "json": <any> | "body": "raw text", "timeout": "5s",
 *           "expect": {"status": <matcher>, "headers": {"Name": <matcher>},
 *                      "json": {"/pointer": <matcher>}, "body": <matcher>},
 *           "capture": {"name": "/json/pointer" | {"header": "Name"} |
 *                       {"status": true}}}}
 * Header names compare case-insensitively. A step without expect.status
 * expects a 2xx status. */
#include "action.h"

static const er_keyspec_t expect_keys[] = {
    {"status", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"headers", ER_T_OBJECT, false, NULL, NULL},
    {"json", ER_T_OBJECT, false, NULL, NULL},
    {"body", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t keys[] = {
    {"method", ER_T_STRING, false, NULL, NULL},
    {"url", ER_T_STRING, true, NULL, NULL},
    {"headers", ER_T_OBJECT, false, NULL, NULL},
    {"json", ER_T_ANY, false, NULL, NULL},
    {"body", ER_T_STRING, false, NULL, NULL},
    {"timeout", ER_T_STRING | ER_T_DURATION, false, NULL, NULL},
    {"expect", ER_T_OBJECT, false, expect_keys, NULL},
    {"capture", ER_T_OBJECT, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static int run(er_exec_t *x, const json_t *args) {
  (void)args;
  er_buf_puts(x->detail, "http: not implemented yet");
  return ER_STEP_FATAL;
}

const er_action_t er_act_http = {.name = "http", .keys = keys, .check = true, .run = run};
