/* test_matchers.c: the matcher language (lang/jsonx.c) and integers beyond
 * 64 bits (base/jsonbig.c): logical operators, deep $subset with the path
 * of the first mismatch, dates, UUIDs, case-insensitive regexes, the
 * checks run at load time, exact comparison of big integers. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/jsonbig.h"
#include "base/pyjson.h"
#include "lang/jsonx.h"
#include "tap.h"

static json_t *J(const char *text) {
  json_error_t e;
  json_t *v = er_json_loadb(text, strlen(text), JSON_DECODE_ANY, &e);
  if (!v)
    printf("# bad test JSON (%s): %s\n", e.text, text);
  return v;
}

/* Does actual match expected? why: the reason, into g_why. */
static char g_why[1024];
static bool M(const char *actual, const char *expected) {
  json_t *a = actual ? J(actual) : NULL, *e = J(expected);
  er_buf_t w = ER_BUF_INIT(4096);
  bool ok = er_json_match(a, e, &w);
  snprintf(g_why, sizeof g_why, "%s", er_buf_cstr(&w));
  er_buf_free(&w);
  json_decref(a);
  json_decref(e);
  return ok;
}

static const char *shown(const char *a) { return a ? a : "(missing)"; }
#define YES(a, e) T_OK(M(a, e), "%s matches %s", shown(a), e)
#define NO(a, e, part)                                                         \
  T_OK(!M(a, e) && strstr(g_why, part), "%s does not match %s: %s", shown(a),  \
       e, g_why)

/* The load-time check: "" when fine, else "at: message". */
static char g_chk[1200];
static const char *C(const char *expected) {
  json_t *e = J(expected);
  char msg[512], at[512];
  if (er_json_matcher_check_at(e, msg, sizeof msg, at, sizeof at) == 0)
    snprintf(g_chk, sizeof g_chk, "%s", "");
  else
    snprintf(g_chk, sizeof g_chk, "%s: %s", at, msg);
  json_decref(e);
  return g_chk;
}
#define CHECK_OK(e) T_STREQ(C(e), "", "valid: %s", e)
#define CHECK_BAD(e, part)                                                     \
  T_OK(strstr(C(e), part) != NULL, "refused: %s -> %s", e, g_chk)

static void test_logical(void) {
  YES("5", "{\"$not\": 4}");
  NO("4", "{\"$not\": 4}", "expected something that does not match 4, got 4");
  YES("\"abc\"", "{\"$not\": {\"$regex\": \"^x\"}}");
  YES(NULL, "{\"$not\": {\"$exists\": true}}");
  YES("3", "{\"$nin\": [1, 2]}");
  NO("2", "{\"$nin\": [1, 2]}", "expected none of [1,2], got 2");
  YES("\"b\"", "{\"$nin\": [\"a\", {\"$regex\": \"^c\"}]}");
  YES("2", "{\"$or\": [1, 2]}");
  YES("\"x-9\"", "{\"$or\": [{\"$regex\": \"^y\"}, {\"$regex\": \"9$\"}]}");
  NO("3", "{\"$or\": [1, 2]}", "one of [1,2], got 3");
  /* two $contains and two $regex on one value: $and */
  YES("\"hello big world\"",
      "{\"$and\": [{\"$contains\": \"hello\"}, {\"$contains\": \"world\"}]}");
  NO("\"hello big word\"",
     "{\"$and\": [{\"$contains\": \"hello\"}, {\"$contains\": \"world\"}]}",
     "containing \"world\"");
  YES("\"ab12\"", "{\"$and\": [{\"$regex\": \"^[a-z]+\"}, {\"$regex\": "
                  "\"[0-9]+$\"}], \"$len\": 4}");
  YES("7", "{\"$and\": [{\"$gt\": 5}, {\"$not\": 6}], \"$lt\": 10}");
  YES(NULL, "{\"$or\": [{\"$exists\": false}, 1]}");
}

static void test_subset_paths(void) {
  YES("{\"a\": {\"b\": 1, \"c\": 2}, \"d\": 3}",
      "{\"$subset\": {\"a\": {\"b\": 1}}}");
  YES("{\"items\": [{\"id\": 1, \"tag\": \"a\"}, {\"id\": 2, \"tag\": \"b\", "
      "\"x\": [1, 2]}]}",
      "{\"$subset\": {\"items\": [{\"tag\": \"b\", \"x\": [2]}]}}");
  NO("{\"a\": {\"b\": {\"c\": 1, \"d\": 2}}}",
     "{\"$subset\": {\"a\": {\"b\": {\"c\": 2}}}}",
     "at /a/b/c: expected 2, got 1");
  NO("{\"a\": {}}", "{\"$subset\": {\"a\": {\"z\": 1}}}",
     "at /a/z: expected 1, got (missing)");
  NO("{\"a\": [1, 2]}", "{\"$subset\": {\"a\": [3]}}",
     "at /a: expected an element matching 3, got [1,2]");
  YES("{\"a\": {\"b\": 5}}", "{\"$subset\": {\"a\": {\"b\": {\"$gt\": 4}}}}");
  YES("{\"a\": 1}", "{\"$subset\": {\"z\": {\"$exists\": false}}}");
  /* literals name the first mismatching field too */
  NO("{\"items\": [{\"tag\": \"a\"}, {\"tag\": \"c\"}]}",
     "{\"items\": [{\"tag\": \"a\"}, {\"tag\": \"b\"}]}",
     "at /items/1/tag: expected \"b\", got \"c\"");
  NO("{\"a\": 1, \"b\": 2}", "{\"a\": 1}", "unexpected key \"b\"");
  NO("{\"a\": [1]}", "{\"a\": [1, 2]}", "at /a: expected 2 element(s), got 1");
  NO("{\"a\": {\"n\": 3}}", "{\"a\": {\"n\": {\"$lt\": 2}}}",
     "at /a/n: expected < 2, got 3");
  NO("5", "6", "expected 6, got 5");
  T_OK(strncmp(g_why, "at ", 3) != 0, "no place for a top-level mismatch");
  {
    json_t *a = J("{\"t\": \"c\"}"), *e = J("{\"t\": \"b\"}");
    er_buf_t w = ER_BUF_INIT(1024);
    T_OK(!er_json_match_at(a, e, "/items/1", &w) &&
             !strcmp(er_buf_cstr(&w),
                     "at /items/1/t: expected \"b\", got \"c\""),
         "er_json_match_at prefixes the pointer: %s", er_buf_cstr(&w));
    er_buf_free(&w);
    json_decref(a);
    json_decref(e);
  }
  /* the list operators on plain arrays */
  YES("[1, 2, 3]", "{\"$count\": 3, \"$each\": {\"$gt\": 0}, \"$any\": 2}");
  NO("[1, 2, 3]", "{\"$each\": {\"$lt\": 3}}", "at /2: expected < 3, got 3");
  YES("[1, 2, 3]", "{\"$nth\": [-1, 3]}");
  YES("[1, 2, 3]", "{\"$all\": {\"$type\": \"integer\"}}");
  NO("[]", "{\"$all\": 1}", "there is none");
  NO("[1]", "{\"$nth\": [3, 1]}", "index 3, got 1 value(s)");
  NO("{}", "{\"$count\": 0}", "needs an array");
}

static void test_types_dates_uuids(void) {
  char now[40], js[64];
  YES("\"2024-05-01T12:00:00Z\"", "{\"$isoDate\": true}");
  YES("\"2024-05-01T12:00:00.123+02:00\"", "{\"$isoDate\": true}");
  YES("\"2024-02-29\"", "{\"$isoDate\": true}");
  NO("\"2023-02-29\"", "{\"$isoDate\": true}", "RFC 3339");
  NO("\"2024-05-01 12:00\"", "{\"$isoDate\": true}", "RFC 3339");
  NO("17", "{\"$isoDate\": true}", "RFC 3339");
  YES("\"tomorrow\"", "{\"$isoDate\": false}");
  YES("\"2024-05-01T12:00:00Z\"",
      "{\"$before\": \"2024-05-01T12:00:00.001Z\"}");
  YES("\"2024-05-01T14:00:00+02:00\"",
      "{\"$after\": \"2024-05-01T11:59:59Z\", \"$before\": "
      "\"2024-05-01T12:00:01Z\"}");
  NO("\"2024-05-01T12:00:00Z\"",
     "{\"$after\": \"2024-05-01\", \"$before\": \"2024-05-01T11:00:00Z\"}",
     "expected a time before 2024-05-01T11:00:00.000Z");
  er_rfc3339_now(now);
  snprintf(js, sizeof js, "\"%s\"", now);
  YES(js, "{\"$after\": \"now-1m\", \"$before\": \"now+1m\"}");
  NO(js, "{\"$before\": \"now-1h\"}", "(now-1h)");
  YES("\"2000-01-01T00:00:00Z\"", "{\"$before\": \"now\"}");
  NO("\"yesterday\"", "{\"$before\": \"now\"}", "expected an RFC 3339 time");
  YES("\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"", "{\"$uuid\": true}");
  YES("\"3FA85F64-5717-4562-B3FC-2C963F66AFA6\"", "{\"$uuid\": 4}");
  NO("\"3fa85f64-5717-1562-b3fc-2c963f66afa6\"", "{\"$uuid\": 4}",
     "version 4 UUID");
  NO("\"3fa85f64-5717-4562-b3fc-2c963f66afa\"", "{\"$uuid\": true}",
     "expected a UUID");
  YES("\"not-a-uuid\"", "{\"$uuid\": false}");
  YES("\"Hello World\"", "{\"$regex\": \"^hello\", \"$flags\": \"i\"}");
  NO("\"Hello World\"", "{\"$regex\": \"^hello\"}", "matching \"^hello\"");
  YES("\"a\\nb\"", "{\"$regex\": \"^b$\", \"$flags\": \"m\"}");
  YES("{\"a\": 1}", "{\"$type\": \"object\", \"$len\": 1}");
  YES("12345678901234567890123", "{\"$type\": \"integer\"}");
  YES("12345678901234567890123", "{\"$type\": \"number\"}");
  NO("\"x\"", "{\"$type\": \"number\"}", "type number, got string");
}

static void test_big_integers(void) {
  const char *big = "123456789012345678901234567890";
  json_t *v = J("{\"id\": 123456789012345678901234567890, \"neg\": "
                "-99999999999999999999, \"max\": 9223372036854775807, "
                "\"r\": 1.5, \"s\": \"x\"}");
  char *out;
  T_OK(v != NULL, "a text with integers beyond 64 bits parses");
  T_OK(v && er_big_digits(json_object_get(v, "id")) &&
           !strcmp(er_big_digits(json_object_get(v, "id")), big),
       "the big integer keeps its digits");
  T_OK(v && json_is_integer(json_object_get(v, "max")),
       "int64 max stays an integer");
  out = er_json_dumps(v, JSON_COMPACT);
  T_STREQ(
      out,
      "{\"id\":123456789012345678901234567890,\"neg\":-99999999999999999999,"
      "\"max\":9223372036854775807,\"r\":1.5,\"s\":\"x\"}",
      "er_json_dumps writes it back as a number");
  free(out);
  out = er_pyjson_compact(v, NULL);
  T_OK(out && strstr(out, "\"id\":123456789012345678901234567890"),
       "pyjson (event ids) writes it as Python does: %s", out ? out : "");
  free(out);
  out = er_json_brief(json_object_get(v, "id"), 200);
  T_STREQ(out, big, "messages show the digits");
  free(out);
  json_decref(v);

  YES("123456789012345678901234567890", "123456789012345678901234567890");
  NO("123456789012345678901234567891", "123456789012345678901234567890",
     "expected 123456789012345678901234567890, got "
     "123456789012345678901234567891");
  YES("\"123456789012345678901234567890\"", "123456789012345678901234567890");
  NO("1.2345678901234568e29", "123456789012345678901234567890", "expected");
  YES("123456789012345678901234567890",
      "{\"$gt\": 123456789012345678901234567889}");
  NO("123456789012345678901234567890",
     "{\"$gt\": 123456789012345678901234567890}",
     "expected > 123456789012345678901234567890, got "
     "123456789012345678901234567890");
  YES("123456789012345678901234567890", "{\"$gt\": 9223372036854775807}");
  YES("-123456789012345678901234567890", "{\"$lt\": -9223372036854775808}");
  YES("123456789012345678901234567890", "{\"$lt\": 1e30, \"$gt\": 1e29}");
  YES("100000000000000000000", "{\"$eq\": 1e20}"); /* 1e20 is exact */
  NO("100000000000000000001", "{\"$eq\": 1e20}", "expected");
  YES("[1, 123456789012345678901234567890]",
      "{\"$contains\": 123456789012345678901234567890}");
  YES("{\"n\": 123456789012345678901234567890}",
      "{\"$subset\": {\"n\": {\"$gte\": 123456789012345678901234567890}}}");
  /* exact int64 against doubles */
  NO("9007199254740993", "9007199254740992.0", "expected");
  YES("9007199254740992", "9007199254740992.0");
  YES("3", "{\"$gt\": 2.5, \"$lt\": 3.5}");
  /* the error places of a text with big integers are the original ones */
  {
    json_error_t e;
    const char *bad = "{\"a\": 123456789012345678901234567890, \"b\": ]}";
    json_t *x = er_json_loadb(bad, strlen(bad), 0, &e);
    T_OK(!x && e.line == 1 && e.column == 44,
         "a syntax error keeps its column (%d:%d)", e.line, e.column);
    json_decref(x);
  }
  {
    json_t *s = json_string("\001"
                            "42");
    T_OK(er_big_digits(s) == NULL, "a tag before a small number is a string");
    json_decref(s);
  }
}

static void test_checks(void) {
  CHECK_OK("{\"$and\": [{\"$contains\": \"a\"}, {\"$contains\": \"b\"}]}");
  CHECK_OK("{\"a\": [{\"$nth\": [0, {\"$gt\": 1}]}]}");
  CHECK_OK("{\"$regex\": \"x\", \"$flags\": \"i\"}");
  CHECK_OK("{\"$before\": \"now+5m\", \"$after\": \"2024-01-01T00:00:00Z\"}");
  CHECK_OK("{\"$gt\": 123456789012345678901234567890}");
  CHECK_OK("{\"$gt\": \"${n}\"}");
  CHECK_BAD("{\"$gtee\": 1}",
            ": unknown operator '$gtee' (did you mean '$gte'?)");
  CHECK_BAD("{\"$and\": [{\"$regx\": \"a\"}]}",
            "/$and/0/$regx: unknown operator '$regx' (did you mean '$regex'?)");
  CHECK_BAD("{\"a\": {\"b\": {\"$not\": {\"$lenn\": 1}}}}",
            "/a/b/$not/$lenn: unknown operator");
  CHECK_BAD("{\"$and\": []}", "non-empty array");
  CHECK_BAD("{\"$or\": 1}", "non-empty array");
  CHECK_BAD("{\"$nin\": 1}", "needs an array");
  CHECK_BAD("{\"$flags\": \"i\"}", "goes with '$regex'");
  CHECK_BAD("{\"$regex\": \"a\", \"$flags\": \"q\"}", "string of flags");
  CHECK_BAD("{\"$regex\": \"(\"}", "not a valid extended regex");
  CHECK_BAD("{\"$before\": \"soon\"}", "now+5m");
  CHECK_BAD("{\"$after\": \"now+5x\"}", "now+5m");
  CHECK_BAD("{\"$uuid\": 9}", "version");
  CHECK_BAD("{\"$isoDate\": 1}", "true or false");
  CHECK_BAD("{\"$nth\": [\"a\", 1]}", "[index, matcher]");
  CHECK_BAD("{\"$nth\": [0, {\"$eqq\": 1}]}", "/$nth/1/$eqq: unknown");
  CHECK_BAD("{\"$type\": \"strng\"}", "did you mean 'string'");
  CHECK_BAD("{\"$each\": {\"$in\": [{\"$lt\": \"x\"}]}}",
            "/$each/$in/0/$lt: '$lt' needs a number");
  CHECK_BAD("{\"$subset\": {\"a\": {\"$exist\": true}}}",
            "/$subset/a/$exist: unknown operator '$exist'");
  CHECK_BAD("{\"a\": 1, \"$gt\": 2}", "/$gt: '$gt' mixes operators");
}

/* An expected value nested deeper than matching follows: refused with a
 * clear message, for plain comparison and deep $subset alike, never a
 * stack overflow (the matcher check stops at 200 levels; the comparison
 * itself also stops at 400). */
static void test_depth(void) {
  json_t *a = json_array(), *e = json_array(), *sub;
  er_buf_t w = ER_BUF_INIT(4096);
  for (int i = 0; i < 500; i++) {
    json_t *na = json_array(), *ne = json_array();
    json_array_append_new(na, a);
    json_array_append_new(ne, e);
    a = na;
    e = ne;
  }
  T_OK(!er_json_match(a, e, &w) && strstr(er_buf_cstr(&w), "nested too deeply"),
       "500 levels of arrays: refused, and said so (%s)", er_buf_cstr(&w));
  er_buf_reset(&w);
  sub = json_pack("{s:O}", "$subset", e);
  T_OK(sub && !er_json_match(a, sub, &w) &&
           strstr(er_buf_cstr(&w), "nested too deeply"),
       "the same under a deep $subset");
  json_decref(sub);
  json_decref(a);
  json_decref(e);
  er_buf_free(&w);
}

int main(void) {
  test_depth();
  test_logical();
  test_subset_paths();
  test_types_dates_uuids();
  test_big_integers();
  test_checks();
  return t_done();
}
