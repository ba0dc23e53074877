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
 *                      "empty": true, "capture": {"name": "/0/1" |
 *                      "/0/column" | "$[*].column" | {...}},
 *                      "dsn": "..."}}
 *   Rows are arrays of values typed from the column types (int -> integer,
 *   float/numeric -> number, bool -> boolean, json/jsonb -> parsed,
 *   NULL -> null, anything else -> string). Row cells in equals/contains
 *   may be matchers. A row may also be an object {"column": <matcher>}:
 *   the cells of those columns (by name), the others not checked.
 *
 * The DSN defaults to the environment's postgres.dsn.
 *
 * Details:
 * - exec: exactly one of sql / file (found in the scenario's folder, then
 *   under the fixtures root: lang/fixture.h; not templated);
 *   params only with sql ($1, $2, ...; strings, numbers, booleans, null;
 *   objects and arrays are sent as JSON text). The text of a file or of
 *   sql without params may hold several statements; they run as one
 *   implicit transaction and an error in any of them fails the step.
 * - expect: at least one of equals / contains / count / empty.
 *   equals: exactly these rows, in this order (any order with
 *   "unordered": true). contains: each listed row is present (distinct
 *   rows for repeated entries), others may be too. count: a matcher on
 *   the number of rows (3, {"$gte": 1}). empty: true = no rows, false =
 *   at least one. A row may also be a matcher object on the whole row.
 *   capture (lang/capture.h): a JSON pointer or JSONPath into the rows
 *   array ("/0/0" = first row's first cell, "/0" = the whole first row,
 *   "" = every row); a path that finds nothing there is tried on the
 *   rows as objects by column name ("/0/essay_id", "$[*].essay_id");
 *   taken only when the expectations hold.
 * - Outcomes: cannot connect / connection lost / deadline passed ->
 *   ER_STEP_ERROR (await keeps trying); an SQL error -> ER_STEP_FAIL with
 *   the server's message and SQLSTATE; rows that do not match ->
 *   ER_STEP_FAIL with the query, what was expected and the rows seen.
 * - One connection per branch and DSN, kept in the session. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/pg.h"
#include "base/jsonbig.h"
#include "lang/capture.h"
#include "lang/jsonx.h"
#include "run/diag.h"
#include "run/exec.h"
#include "run/safety.h"

#define DETAIL_ROWS 10            /* rows shown in a failure detail */
#define BRIEF_ROW 300             /* bytes per row shown */
#define BRIEF_SQL 500             /* bytes of the query shown */
#define BRIEF_EXPECT 1000         /* bytes of an expectation shown */
#define SQL_FILE_CAP (16u << 20)  /* largest SQL file read */
#define KUHN_MAX_PAIRS (4u << 20) /* memo size for unordered matching */

static const er_keyspec_t exec_keys[] = {
    {"sql", ER_T_STRING, false, NULL, NULL},
    {"file", ER_T_STRING | ER_T_FILE, false, NULL, NULL},
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

/* ---- shared ------------------------------------------------------------ */

static void pg_free_cb(void *p) { er_pg_free(p); }

static int step_rc(int code) {
  switch (code) {
  case ER_E_FAIL:
    return ER_STEP_FAIL;
  case ER_E_INPUT:
    return ER_STEP_FATAL;
  default:
    return ER_STEP_ERROR;
  }
}

/* The connection for the step's DSN, kept in the branch's session. */
static int get_pg(er_exec_t *x, const json_t *args, const char *what,
                  er_pg_t **out) {
  const char *dsn = json_string_value(json_object_get(args, "dsn"));
  er_buf_t name = ER_BUF_INIT(64 * 1024);
  er_err_t err = {0, ""};
  er_pg_t *pg = NULL;
  int rc = ER_STEP_ERROR;

  if (!dsn)
    dsn = er_exec_env_str(x, "postgres", "dsn");
  if (!dsn || !*dsn) {
    er_buf_printf(x->detail,
                  "%s: no DSN: give \"dsn\" in the step or postgres.dsn in "
                  "the environment",
                  what);
    rc = ER_STEP_FATAL;
    goto out;
  }
  er_buf_printf(&name, "postgres %s", dsn);
  pg = er_session_get(x->session, er_buf_cstr(&name));
  if (!pg) {
    pg = er_pg_new(dsn, &err);
    if (!pg) {
      er_buf_printf(x->detail, "%s: %s", what, err.msg);
      rc = step_rc(err.code);
      goto out;
    }
    if (er_session_put(x->session, er_buf_cstr(&name), pg, pg_free_cb) != 0) {
      er_pg_free(pg);
      pg = NULL;
      er_buf_printf(x->detail, "%s: out of memory", what);
      goto out;
    }
  }
  *out = pg;
  rc = ER_STEP_OK;
out:
  er_buf_free(&name);
  return rc;
}

typedef struct params {
  char **v; /* NULL entries are SQL NULL */
  int n;
} params_t;

static void params_free(params_t *p) {
  for (int i = 0; i < p->n; i++)
    free(p->v[i]);
  free(p->v);
  p->v = NULL;
  p->n = 0;
}

/* JSON values -> text parameters. */
static int params_from_json(const json_t *arr, params_t *p, er_buf_t *why) {
  size_t n = json_array_size(arr);
  p->n = 0;
  p->v = calloc(n ? n : 1, sizeof *p->v);
  if (!p->v)
    return er_buf_puts(why, "out of memory"), -1;
  for (size_t i = 0; i < n; i++) {
    const json_t *v = json_array_get(arr, i);
    char num[64];
    char *s = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING: /* an integer beyond 64 bits as its digits */
      s = er_strdup(er_big_digits(v) ? er_big_digits(v) : json_string_value(v));
      break;
    case JSON_INTEGER:
      snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      s = er_strdup(num);
      break;
    case JSON_REAL:
      snprintf(num, sizeof num, "%.17g", json_real_value(v));
      s = er_strdup(num);
      break;
    case JSON_TRUE:
      s = er_strdup("true");
      break;
    case JSON_FALSE:
      s = er_strdup("false");
      break;
    case JSON_NULL:
      p->n++;
      continue;
    default: /* object, array: as JSON text (for json/jsonb columns) */
      s = er_json_dumps(v, JSON_COMPACT);
      break;
    }
    if (!s) {
      er_buf_puts(why, "out of memory");
      return -1;
    }
    p->v[p->n++] = s;
  }
  return 0;
}

/* Appends s cut to max bytes, on one line. */
static void put_brief(er_buf_t *b, const char *s, size_t max) {
  size_t n = strlen(s);
  for (size_t i = 0; i < n && i < max; i++)
    er_buf_append(
        b, (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') ? " " : s + i, 1);
  if (n > max)
    er_buf_puts(b, "...");
}

static void put_json(er_buf_t *b, const json_t *v, size_t max) {
  char *s = er_json_brief(v, max);
  er_buf_puts(b, s ? s : "?");
  free(s);
}

static void put_query(er_buf_t *b, const char *label, const char *sql,
                      const json_t *params) {
  er_buf_printf(b, "\n  %s: ", label);
  put_brief(b, sql, BRIEF_SQL);
  if (params) {
    er_buf_puts(b, "\n  params: ");
    put_json(b, params, BRIEF_ROW);
  }
}

static void log_notices(er_exec_t *x, er_pg_t *pg) {
  const char *n = er_pg_notices(pg);
  while (*n) {
    const char *e = strchr(n, '\n');
    int len = e ? (int)(e - n) : (int)strlen(n);
    if (len)
      er_exec_log(x, "postgres: %.*s", len, n);
    n += len + (e ? 1 : 0);
  }
}

/* ---- postgres.exec ----------------------------------------------------- */

static int run_exec(er_exec_t *x, const json_t *args) {
  const char *sql = json_string_value(json_object_get(args, "sql"));
  const char *file = json_string_value(json_object_get(args, "file"));
  const json_t *pj = json_object_get(args, "params");
  char *path = NULL, *text = NULL;
  er_pg_t *pg = NULL;
  params_t params = {NULL, 0};
  er_pg_result_t res = {0};
  er_err_t err = {0, ""};
  er_buf_t why = ER_BUF_INIT(1024);
  int64_t t0;
  char took[32];
  int rc;

  if (!sql == !file) {
    er_buf_puts(x->detail,
                "postgres.exec: give exactly one of \"sql\" and \"file\"");
    rc = ER_STEP_FATAL;
    goto out;
  }
  if (pj && (!sql || !json_is_array(pj))) {
    er_buf_puts(x->detail, "postgres.exec: \"params\" (an array) go only "
                           "with \"sql\"");
    rc = ER_STEP_FATAL;
    goto out;
  }
  if (file) {
    path = er_exec_file(x, file, &err);
    text = path ? er_read_file(path, SQL_FILE_CAP, NULL, &err) : NULL;
    if (!text) {
      er_buf_printf(x->detail, "postgres.exec: cannot read %s: %s",
                    path ? path : file, err.msg[0] ? err.msg : "out of memory");
      rc = ER_STEP_FATAL;
      goto out;
    }
    sql = text;
  }
  rc = get_pg(x, args, "postgres.exec", &pg);
  if (rc != ER_STEP_OK)
    goto out;
  if ((rc = er_safety_guard_pg(x, pg, "postgres.exec")) != ER_STEP_OK)
    goto out;
  if (pj && params_from_json(pj, &params, &why) != 0) {
    er_buf_printf(x->detail, "postgres.exec: params: %s", er_buf_cstr(&why));
    rc = ER_STEP_ERROR;
    goto out;
  }
  t0 = er_now_ms();
  if (er_pg_query(pg, sql, pj ? (const char *const *)params.v : NULL, params.n,
                  x->deadline_ms, &res, &err) != 0) {
    er_buf_printf(x->detail, "postgres.exec: %s", err.msg);
    if (file)
      er_buf_printf(x->detail, "\n  file: %s", path);
    else
      put_query(x->detail, "sql", sql, pj);
    rc = step_rc(err.code);
    if (!x->polling)
      er_exec_log(x, "postgres.exec failed: %s", err.msg);
    goto out;
  }
  er_fmt_duration(er_now_ms() - t0, took);
  if (!x->polling) {
    log_notices(x, pg);
    er_exec_log(x, "postgres.exec%s%s: %s (%d statement%s, %s)",
                file ? " " : "", file ? file : "",
                res.cmd_status[0] ? res.cmd_status : "done", res.statements,
                res.statements == 1 ? "" : "s", took);
  }
  rc = ER_STEP_OK;
out:
  er_pg_result_free(&res);
  params_free(&params);
  er_buf_free(&why);
  free(path);
  free(text);
  return rc;
}

/* ---- postgres.expect --------------------------------------------------- */

static const char *col_name(const json_t *cols, size_t c, char buf[32]) {
  const char *n = json_string_value(json_array_get(cols, c));
  if (n && *n && strcmp(n, "?column?") != 0)
    return n;
  snprintf(buf, 32, "#%zu", c + 1);
  return buf;
}

/* A row given as an object: each named column's cell (the first column of
 * that name) matches; the other columns are not checked. */
static bool row_match_columns(const json_t *act, const json_t *exp,
                              const json_t *cols, size_t ri, er_buf_t *why) {
  const char *k;
  json_t *m;
  json_object_foreach((json_t *)exp, k, m) {
    size_t c = 0, nc = json_array_size(cols);
    er_buf_t w = ER_BUF_INIT(512);
    bool ok;
    while (c < nc) {
      const char *cn = json_string_value(json_array_get(cols, c));
      if (cn && strcmp(cn, k) == 0)
        break;
      c++;
    }
    if (c == nc) {
      if (why) {
        er_buf_printf(why, "row %zu has no column \"%s\" (columns: ", ri, k);
        for (size_t j = 0; j < nc; j++)
          er_buf_printf(why, "%s%s", j ? ", " : "",
                        json_string_value(json_array_get(cols, j))
                            ? json_string_value(json_array_get(cols, j))
                            : "?");
        er_buf_puts(why, ")");
      }
      er_buf_free(&w);
      return false;
    }
    ok = er_json_match(json_array_get(act, c), m, why ? &w : NULL);
    if (!ok && why)
      er_buf_printf(why, "row %zu, column %s: %s", ri, k, er_buf_cstr(&w));
    er_buf_free(&w);
    if (!ok)
      return false;
  }
  return true;
}

/* Does actual row act satisfy expected row exp (an array of cells that
 * may be matchers, an object of cells by column name, or a matcher on the
 * whole row)? */
static bool row_match(const json_t *act, const json_t *exp, const json_t *cols,
                      size_t ri, er_buf_t *why) {
  er_buf_t w = ER_BUF_INIT(512);
  bool ok = false;
  char cb[32];
  if (json_is_object(exp) && !er_json_is_matcher(exp)) {
    ok = row_match_columns(act, exp, cols, ri, why);
    goto out;
  }
  if (!json_is_array(exp)) {
    ok = er_json_match(act, exp, why ? &w : NULL);
    if (!ok && why)
      er_buf_printf(why, "row %zu: %s", ri, er_buf_cstr(&w));
    goto out;
  }
  if (json_array_size(act) != json_array_size(exp)) {
    if (why)
      er_buf_printf(why, "row %zu has %zu column(s), expected %zu", ri,
                    json_array_size(act), json_array_size(exp));
    goto out;
  }
  for (size_t c = 0; c < json_array_size(exp); c++) {
    if (!er_json_match(json_array_get(act, c), json_array_get(exp, c),
                       why ? &w : NULL)) {
      if (why)
        er_buf_printf(why, "row %zu, column %s: %s", ri, col_name(cols, c, cb),
                      er_buf_cstr(&w));
      goto out;
    }
  }
  ok = true;
out:
  er_buf_free(&w);
  return ok;
}

/* Matching expected rows to distinct actual rows (Kuhn's augmenting
 * paths, so overlapping matchers still find a matching when one exists;
 * greedy when the problem is too large to memoise). */
typedef struct kuhn {
  const json_t *rows, *exp, *cols;
  size_t m, n;
  unsigned char *memo; /* m*n: 0 unknown, 1 match, 2 no match */
  unsigned char *seen; /* n */
  long *owner;         /* n: expected row matched to actual j, or -1 */
} kuhn_t;

static bool compat(kuhn_t *k, size_t i, size_t j) {
  unsigned char *m = k->memo ? &k->memo[i * k->n + j] : NULL;
  bool ok;
  if (m && *m)
    return *m == 1;
  ok = row_match(json_array_get(k->rows, j), json_array_get(k->exp, i), k->cols,
                 j, NULL);
  if (m)
    *m = ok ? 1 : 2;
  return ok;
}

static bool augment(kuhn_t *k, size_t i, int depth) {
  for (size_t j = 0; j < k->n; j++) {
    if (k->seen[j] || !compat(k, i, j))
      continue;
    k->seen[j] = 1;
    if (k->owner[j] < 0 ||
        (depth < 4096 && augment(k, (size_t)k->owner[j], depth + 1))) {
      k->owner[j] = (long)i;
      return true;
    }
  }
  return false;
}

/* Appends the expected rows no distinct actual row matches to why;
 * returns how many there are (or -1 when memory ran out). */
static long unmatched_rows(const json_t *rows, const json_t *exp,
                           const json_t *cols, er_buf_t *why) {
  kuhn_t k = {rows, exp,  cols, json_array_size(exp), json_array_size(rows),
              NULL, NULL, NULL};
  long missing = 0;
  k.seen = calloc(k.n ? k.n : 1, 1);
  k.owner = malloc((k.n ? k.n : 1) * sizeof *k.owner);
  if (k.m && k.n && k.m <= KUHN_MAX_PAIRS / k.n)
    k.memo = calloc(k.m * k.n, 1);
  if (!k.seen || !k.owner) {
    missing = -1;
    goto out;
  }
  for (size_t j = 0; j < k.n; j++)
    k.owner[j] = -1;
  for (size_t i = 0; i < k.m; i++) {
    memset(k.seen, 0, k.n ? k.n : 1);
    if (augment(&k, i, 0))
      continue;
    if (missing < 5) {
      er_buf_puts(why, missing ? "; " : "no row matches ");
      put_json(why, json_array_get(exp, i), BRIEF_ROW);
    }
    missing++;
  }
  if (missing > 5)
    er_buf_printf(why, " (and %ld more)", missing - 5);
out:
  free(k.memo);
  free(k.seen);
  free(k.owner);
  return missing;
}

static bool check_equals(const er_pg_result_t *res, const json_t *exp,
                         bool unordered, er_buf_t *why) {
  size_t n = json_array_size(res->rows), m = json_array_size(exp);
  if (res->total_rows != m) {
    er_buf_printf(why, "expected %zu row(s), got %zu", m, res->total_rows);
    return false;
  }
  if (res->truncated) {
    er_buf_printf(why,
                  "the result has %zu rows but only %zu are kept; narrow the "
                  "query or use count/contains",
                  res->total_rows, n);
    return false;
  }
  if (unordered)
    return unmatched_rows(res->rows, exp, res->columns, why) == 0;
  for (size_t i = 0; i < n; i++)
    if (!row_match(json_array_get(res->rows, i), json_array_get(exp, i),
                   res->columns, i, why))
      return false;
  return true;
}

static void put_rows(er_buf_t *b, const er_pg_result_t *res) {
  size_t n = json_array_size(res->rows);
  er_buf_printf(b, "\n  seen %zu row(s)", res->total_rows);
  if (json_array_size(res->columns)) {
    er_buf_puts(b, " (columns: ");
    for (size_t c = 0; c < json_array_size(res->columns); c++) {
      char cb[32];
      er_buf_printf(b, "%s%s", c ? ", " : "", col_name(res->columns, c, cb));
    }
    er_buf_puts(b, ")");
  }
  if (res->truncated)
    er_buf_printf(b, ", only the first %zu kept", n);
  er_buf_puts(b, n ? ":" : "");
  for (size_t i = 0; i < n && i < DETAIL_ROWS; i++) {
    er_buf_puts(b, "\n    ");
    put_json(b, json_array_get(res->rows, i), BRIEF_ROW);
  }
  if (res->total_rows > DETAIL_ROWS)
    er_buf_printf(b, "\n    ... %zu more", res->total_rows - DETAIL_ROWS);
}

/* One postgres.expect step: its arguments (borrowed from the step's args)
 * and what running it gave (owned, freed by run_expect_as). */
typedef struct expect {
  const char *what, *sql;
  const json_t *pj, *equals, *contains, *count, *empty, *capture;
  bool unordered;
  er_pg_t *pg;        /* borrowed from the session */
  params_t params;    /* owned */
  er_pg_result_t res; /* owned */
  er_buf_t why;       /* owned: why the rows do not match */
  char took[32];
} expect_t;

/* Reads and checks the arguments; ER_STEP_OK, or ER_STEP_FATAL with
 * x->detail set. */
static int expect_args(er_exec_t *x, const json_t *args, expect_t *e) {
  const char *what = e->what;
  e->sql = json_string_value(json_object_get(args, "query"));
  e->pj = json_object_get(args, "params");
  e->equals = json_object_get(args, "equals");
  e->contains = json_object_get(args, "contains");
  e->count = json_object_get(args, "count");
  e->empty = json_object_get(args, "empty");
  e->capture = json_object_get(args, "capture");
  e->unordered = json_is_true(json_object_get(args, "unordered"));

  if (!e->sql) {
    er_buf_printf(x->detail, "%s: \"query\" (a string) is required", what);
    return ER_STEP_FATAL;
  }
  if (!e->equals && !e->contains && !e->count && !e->empty) {
    er_buf_printf(x->detail,
                  "%s: give at least one of \"equals\", \"contains\", "
                  "\"count\", \"empty\"",
                  what);
    return ER_STEP_FATAL;
  }
  if ((e->pj && !json_is_array(e->pj)) ||
      (e->equals && !json_is_array(e->equals)) ||
      (e->contains && !json_is_array(e->contains)) ||
      (e->empty && !json_is_boolean(e->empty)) ||
      (e->capture && !json_is_object(e->capture))) {
    er_buf_printf(x->detail,
                  "%s: params, equals and contains are arrays, empty a "
                  "boolean, capture an object",
                  what);
    return ER_STEP_FATAL;
  }
  return ER_STEP_OK;
}

/* Connects and runs the query into e->res (e->took: how long it took). */
static int expect_query(er_exec_t *x, const json_t *args, expect_t *e) {
  er_err_t err = {0, ""};
  int64_t t0;
  int rc = get_pg(x, args, e->what, &e->pg);
  if (rc != ER_STEP_OK)
    return rc;
  if (e->pj && params_from_json(e->pj, &e->params, &e->why) != 0) {
    er_buf_printf(x->detail, "%s: params: %s", e->what, er_buf_cstr(&e->why));
    return ER_STEP_ERROR;
  }
  t0 = er_now_ms();
  /* read-only where the database is not a test target (safety.h) */
  if (er_safety_pg_query(x, e->pg, e->sql,
                         e->pj ? (const char *const *)e->params.v : NULL,
                         e->params.n, &e->res, &err) != 0) {
    er_buf_printf(x->detail, "%s: %s", e->what, err.msg);
    put_query(x->detail, "query", e->sql, e->pj);
    return step_rc(err.code);
  }
  er_fmt_duration(er_now_ms() - t0, e->took);
  return ER_STEP_OK;
}

/* Checks the rows against equals, contains, count and empty; false with
 * every reason in e->why. */
static bool expect_rows_match(expect_t *e) {
  er_buf_t *why = &e->why;
  bool ok = true;
  if (e->equals && !check_equals(&e->res, e->equals, e->unordered, why))
    ok = false;
  if (e->contains) {
    er_buf_t w = ER_BUF_INIT(4096);
    long miss = unmatched_rows(e->res.rows, e->contains, e->res.columns, &w);
    if (miss != 0) {
      er_buf_printf(why, "%s%s", why->len ? "; " : "",
                    miss < 0 ? "out of memory" : er_buf_cstr(&w));
      if (e->res.truncated)
        er_buf_puts(why, " (among the rows kept)");
      ok = false;
    }
    er_buf_free(&w);
  }
  if (e->count) {
    er_buf_t w = ER_BUF_INIT(1024);
    json_t *n = json_integer((json_int_t)e->res.total_rows);
    if (!er_json_match(n, e->count, &w)) {
      er_buf_printf(why, "%scount: %s", why->len ? "; " : "", er_buf_cstr(&w));
      ok = false;
    }
    json_decref(n);
    er_buf_free(&w);
  }
  if (e->empty) {
    bool want = json_is_true(e->empty);
    if (want != (e->res.total_rows == 0)) {
      if (want)
        er_buf_printf(why, "%sexpected no rows, got %zu", why->len ? "; " : "",
                      e->res.total_rows);
      else
        er_buf_printf(why, "%sexpected at least one row, got none",
                      why->len ? "; " : "");
      ok = false;
    }
  }
  return ok;
}

/* The failure detail when the rows do not match. */
static void expect_word_failure(er_exec_t *x, expect_t *e) {
  er_buf_printf(x->detail, "%s: rows do not match", e->what);
  put_query(x->detail, "query", e->sql, e->pj);
  if (e->equals) {
    er_buf_printf(x->detail,
                  "\n  expected rows%s: ", e->unordered ? " (any order)" : "");
    put_json(x->detail, e->equals, BRIEF_EXPECT);
  }
  if (e->contains) {
    er_buf_puts(x->detail, "\n  expected to contain: ");
    put_json(x->detail, e->contains, BRIEF_EXPECT);
  }
  if (e->count) {
    er_buf_puts(x->detail, "\n  expected count: ");
    put_json(x->detail, e->count, BRIEF_EXPECT);
  }
  if (e->empty)
    er_buf_printf(x->detail, "\n  expected: %s",
                  json_is_true(e->empty) ? "no rows" : "at least one row");
  er_buf_printf(x->detail, "\n  why: %s", er_buf_cstr(&e->why));
  put_rows(x->detail, &e->res);
}

/* The sources of a capture (lang/capture.h): the rows, and the rows as
 * objects by column name. */
typedef struct pg_cap {
  const er_pg_result_t *res;
  json_t *objs; /* owned */
} pg_cap_t;

static const json_t *cap_doc(void *ud, const char **why_not) {
  (void)why_not;
  return ((pg_cap_t *)ud)->res->rows;
}

static const json_t *cap_alt(void *ud) {
  pg_cap_t *pc = ud;
  const json_t *rows = pc->res->rows, *cols = pc->res->columns;
  if (pc->objs)
    return pc->objs;
  pc->objs = json_array();
  for (size_t i = 0; pc->objs && i < json_array_size(rows); i++) {
    json_t *o = json_object();
    for (size_t c = 0; o && c < json_array_size(cols); c++) {
      const char *n = json_string_value(json_array_get(cols, c));
      if (n && !json_object_get(o, n))
        json_object_set(o, n, json_array_get(json_array_get(rows, i), c));
    }
    json_array_append_new(pc->objs, o);
  }
  return pc->objs;
}

/* Takes the captures from the rows into x->captures, all or none. */
static int expect_capture(er_exec_t *x, const expect_t *e) {
  const char *name;
  json_t *spec;
  json_t *caps = NULL; /* owned */
  pg_cap_t pc = {&e->res, NULL};
  er_cap_src_t src = {0, "rows", &pc, cap_doc, cap_alt, NULL, 0, NULL, NULL};
  int rc;

  if (!e->capture)
    return ER_STEP_OK;
  caps = json_object();
  if (!caps) {
    rc = ER_STEP_ERROR;
    goto out;
  }
  json_object_foreach((json_t *)e->capture, name, spec) {
    er_buf_t w = ER_BUF_INIT(2048);
    char msg[512];
    json_t *v;
    if (er_capture_check(spec, 0, msg, sizeof msg)) {
      er_buf_printf(x->detail, "%s: capture \"%s\": %s", e->what, name, msg);
      er_buf_free(&w);
      rc = ER_STEP_FATAL;
      goto out;
    }
    v = er_capture_take(spec, &src, &w);
    if (!v) {
      er_buf_printf(x->detail, "%s: capture \"%s\": %s", e->what, name,
                    er_buf_cstr(&w));
      er_buf_free(&w);
      put_query(x->detail, "query", e->sql, e->pj);
      put_rows(x->detail, &e->res);
      rc = ER_STEP_FAIL;
      goto out;
    }
    er_buf_free(&w);
    if (json_object_set_new(caps, name, v) != 0) {
      rc = ER_STEP_ERROR;
      goto out;
    }
  }
  if (x->captures)
    json_object_update(x->captures, caps);
  rc = ER_STEP_OK;
out:
  json_decref(pc.objs);
  json_decref(caps);
  return rc;
}

/* Rows that show state exists: more than one row, or one row that is not
 * all zeros (a count of 0 is no state). */
static bool saw_rows(const er_pg_result_t *res) {
  const json_t *row = json_array_get(res->rows, 0);
  size_t i;
  const json_t *c;
  if (res->total_rows == 0)
    return false;
  if (res->total_rows > 1)
    return true;
  json_array_foreach(row, i, c) {
    if (!json_is_integer(c) || json_integer_value(c) != 0)
      return true;
  }
  return false;
}

static int run_expect_as(er_exec_t *x, const json_t *args, const char *what) {
  expect_t e = {.what = what,
                .params = {NULL, 0},
                .res = {0},
                .why = ER_BUF_INIT(8 * 1024)};
  int rc;

  rc = expect_args(x, args, &e);
  if (rc != ER_STEP_OK)
    goto out;
  rc = expect_query(x, args, &e);
  if (rc != ER_STEP_OK)
    goto out;
  if (!expect_rows_match(&e)) {
    expect_word_failure(x, &e);
    rc = ER_STEP_FAIL;
    goto out;
  }
  rc = expect_capture(x, &e);
  if (rc != ER_STEP_OK)
    goto out;
  if (saw_rows(&e.res))
    er_diag_note_rows(x, e.sql);
  if (!x->polling) {
    log_notices(x, e.pg);
    er_exec_log(x, "%s: %zu row(s) as expected (%s)", what, e.res.total_rows,
                e.took);
  }
  rc = ER_STEP_OK;
out:
  er_pg_result_free(&e.res);
  params_free(&e.params);
  er_buf_free(&e.why);
  return rc;
}

static int run_expect(er_exec_t *x, const json_t *args) {
  return run_expect_as(x, args, "postgres.expect");
}

static int run_alias(er_exec_t *x, const json_t *args) {
  return run_expect_as(x, args, "postgres");
}

/* ---- validation -------------------------------------------------------- */

/* "/capture/" + name with ~ and / escaped (RFC 6901). */
static void validate_rows(const json_t *rows, const char *key, er_diag_t *d) {
  char path[128];
  if (!json_is_array(rows))
    return; /* the key spec reports the type */
  for (size_t i = 0; i < json_array_size(rows); i++) {
    const json_t *r = json_array_get(rows, i);
    snprintf(path, sizeof path, "/%s/%zu", key, i);
    if (json_is_string(r))
      continue; /* "${row}" may expand to an array */
    if (!json_is_array(r) && !json_is_object(r)) {
      er_diag_error(d, path,
                    "a row is an array of cells such as [1, \"a\"], an "
                    "object of cells by column name such as {\"id\": 1} (or "
                    "a matcher on the whole row)");
      continue;
    }
    er_diag_matcher(d, path, r);
  }
}

static void validate_exec(const json_t *args, er_diag_t *d) {
  const json_t *sql = json_object_get(args, "sql");
  const json_t *file = json_object_get(args, "file");
  if (sql && file)
    er_diag_error(d, "/file", "give either \"sql\" or \"file\", not both");
  else if (!sql && !file)
    er_diag_error(d, "", "postgres.exec needs \"sql\" or \"file\"");
  if (json_object_get(args, "params") && !sql)
    er_diag_error(d, "/params",
                  "\"params\" go only with \"sql\" (a file runs without "
                  "parameters)");
  if (json_is_string(file) && !*json_string_value(file))
    er_diag_error(d, "/file", "\"file\" is empty");
}

static void validate_expect(const json_t *args, er_diag_t *d) {
  const json_t *count = json_object_get(args, "count");
  const json_t *capture = json_object_get(args, "capture");
  char msg[512], path[256];
  if (!json_object_get(args, "equals") && !json_object_get(args, "contains") &&
      !count && !json_object_get(args, "empty"))
    er_diag_error(d, "",
                  "give at least one of \"equals\", \"contains\", \"count\", "
                  "\"empty\" (to only capture, use \"count\": {\"$gte\": 1})");
  if (json_object_get(args, "unordered") && !json_object_get(args, "equals"))
    er_diag_warn(d, "/unordered", "\"unordered\" applies only to \"equals\"");
  validate_rows(json_object_get(args, "equals"), "equals", d);
  validate_rows(json_object_get(args, "contains"), "contains", d);
  if (count) {
    if (er_json_is_matcher(count)) {
      er_diag_matcher(d, "/count", count);
    } else if (!json_is_integer(count) && !json_is_string(count)) {
      er_diag_error(d, "/count",
                    "\"count\" is a number of rows or a matcher such as "
                    "{\"$gte\": 1}");
    }
  }
  if (json_is_object(capture)) {
    const char *name;
    json_t *ptr;
    json_object_foreach((json_t *)capture, name, ptr) {
      er_json_pointer_join(path, sizeof path, "/capture", name);
      if (er_capture_check(ptr, 0, msg, sizeof msg))
        er_diag_error(d, path, "%s", msg);
    }
  }
}

const er_action_t er_act_pg_exec = {.name = "postgres.exec",
                                    .keys = exec_keys,
                                    .validate = validate_exec,
                                    .run = run_exec};
const er_action_t er_act_pg_expect = {.name = "postgres.expect",
                                      .keys = expect_keys,
                                      .check = true,
                                      .validate = validate_expect,
                                      .run = run_expect};
const er_action_t er_act_pg_alias = {.name = "postgres",
                                     .keys = expect_keys,
                                     .check = true,
                                     .validate = validate_expect,
                                     .run = run_alias};
