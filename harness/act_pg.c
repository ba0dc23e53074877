/* act_pg.c: the "postgres.exec" and "postgres.expect" steps ("postgres"
 * is an alias of "postgres.expect", handy inside await/hold).
 *
 * {"postgres.exec": {"sql": "..." | "file": "fixtures/x.sql",
 *                    "params": [..], "dsn": "..."}}
 *   Without params the text may hold several statements.
 *
 * {"postgres.expect": {"query": "SELECT ...", "params": [..],
 *                      "equals": [[..], ..], "unordered": false,
 *                      "contains": [[..], ..], "count": <matcher>,
 *                      "empty": true, "capture": {"name": "/0/1"},
 *                      "dsn": "..."}}
 *   Rows are arrays of values typed from the column types (int -> integer,
 *   float/numeric -> number, bool -> boolean, json/jsonb -> parsed,
 *   NULL -> null, anything else -> string). Row cells in equals/contains
 *   may be matchers.
 *
 * The DSN defaults to the environment's postgres.dsn. */
#include "action.h"

static const er_keyspec_t exec_keys[] = {
    {"sql", ER_T_STRING, false, NULL, NULL},
    {"file", ER_T_STRING, false, NULL, NULL},
    {"params", ER_T_ARRAY, false, NULL, NULL},
    {"dsn", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static const er_keyspec_t expect_keys[] = {
    {"query", ER_T_STRING, true, NULL, NULL},
    {"params", ER_T_ARRAY, false, NULL, NULL},
    {"equals", ER_T_ARRAY, false, NULL, NULL},
    {"unordered", ER_T_BOOL, false, NULL, NULL},
    {"contains", ER_T_ARRAY, false, NULL, NULL},
    {"count", ER_T_ANY | ER_T_MATCHER, false, NULL, NULL},
    {"empty", ER_T_BOOL, false, NULL, NULL},
    {"capture", ER_T_OBJECT, false, NULL, NULL},
    {"dsn", ER_T_STRING, false, NULL, NULL},
    {NULL, 0, false, NULL, NULL},
};

static int not_yet(er_exec_t *x, const json_t *args) {
  (void)args;
  er_buf_puts(x->detail, "postgres: not implemented yet");
  return ER_STEP_FATAL;
}

const er_action_t er_act_pg_exec = {
    .name = "postgres.exec", .keys = exec_keys, .run = not_yet};
const er_action_t er_act_pg_expect = {
    .name = "postgres.expect", .keys = expect_keys, .check = true, .run = not_yet};
const er_action_t er_act_pg_alias = {
    .name = "postgres", .keys = expect_keys, .check = true, .run = not_yet};
