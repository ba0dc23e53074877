/* test_jsonpath.c: JSONPath (lang/jsonpath.c) against the examples of RFC
 * 9535 and the selection helpers steps use (er_select, er_sel_match). */
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"
#include "base/pyjson.h"
#include "lang/jsonpath.h"
#include "lang/jsonx.h"
#include "tap.h"

/* The RFC's bookstore (section 1.5). */
static const char *g_store =
    "{\"store\": {\"book\": ["
    "{\"category\": \"reference\", \"author\": \"Nigel Rees\", "
    "\"title\": \"Sayings of the Century\", \"price\": 8.95},"
    "{\"category\": \"fiction\", \"author\": \"Evelyn Waugh\", "
    "\"title\": \"Sword of Honour\", \"price\": 12.99},"
    "{\"category\": \"fiction\", \"author\": \"Herman Melville\", "
    "\"title\": \"Moby Dick\", \"isbn\": \"0-553-21311-3\", \"price\": 8.99},"
    "{\"category\": \"fiction\", \"author\": \"J. R. R. Tolkien\", "
    "\"title\": \"The Lord of the Rings\", \"isbn\": \"0-395-19395-8\", "
    "\"price\": 22.99}],"
    "\"bicycle\": {\"color\": \"red\", \"price\": 399}}}";

static json_t *parse(const char *text) {
  json_t *v = er_json_loadb(text, strlen(text), JSON_DECODE_ANY, NULL);
  if (!v)
    printf("# bad test JSON: %s\n", text);
  return v;
}

/* The compact JSON of what query selects in doc, or "ERROR: msg". */
static char *q(const json_t *doc, const char *query) {
  char msg[512];
  er_jsonpath_t *p = er_jsonpath_compile(query, msg, sizeof msg);
  json_t *vals = json_array();
  char *out;
  if (!p) {
    size_t n = strlen(msg) + 8;
    json_decref(vals);
    out = malloc(n);
    snprintf(out, n, "ERROR: %s", msg);
    return out;
  }
  er_jsonpath_eval(p, doc, vals, NULL);
  er_jsonpath_free(p);
  out = er_pyjson_compact(vals, NULL); /* reals as Python prints them */
  json_decref(vals);
  return out;
}

/* The JSON pointers of what query selects, compact. */
static char *qp(const json_t *doc, const char *query) {
  char msg[512];
  er_jsonpath_t *p = er_jsonpath_compile(query, msg, sizeof msg);
  json_t *vals = json_array(), *paths = json_array();
  char *out;
  if (p)
    er_jsonpath_eval(p, doc, vals, paths);
  er_jsonpath_free(p);
  out = json_dumps(paths, JSON_COMPACT);
  json_decref(vals);
  json_decref(paths);
  return out;
}

#define EXPECT(doc, query, want)                                               \
  do {                                                                         \
    char *got_ = q(doc, query);                                                \
    T_STREQ(got_, want, "%s", query);                                          \
    free(got_);                                                                \
  } while (0)

#define EXPECT_BAD(doc, query, part)                                           \
  do {                                                                         \
    char *got_ = q(doc, query);                                                \
    T_OK(strncmp(got_, "ERROR:", 6) == 0 && strstr(got_, part), "%s: %s",      \
         query, got_);                                                         \
    free(got_);                                                                \
  } while (0)

static void test_rfc_examples(void) {
  json_t *s = parse(g_store);
  EXPECT(s, "$.store.book[*].author",
         "[\"Nigel Rees\",\"Evelyn Waugh\",\"Herman Melville\","
         "\"J. R. R. Tolkien\"]");
  EXPECT(s, "$..author",
         "[\"Nigel Rees\",\"Evelyn Waugh\",\"Herman Melville\","
         "\"J. R. R. Tolkien\"]");
  EXPECT(s, "$.store.*..price", "[8.95,12.99,8.99,22.99,399]");
  EXPECT(s, "$..book[2].title", "[\"Moby Dick\"]");
  EXPECT(s, "$..book[-1].title", "[\"The Lord of the Rings\"]");
  EXPECT(s, "$..book[0,1].title",
         "[\"Sayings of the Century\",\"Sword of Honour\"]");
  EXPECT(s, "$..book[:2].title",
         "[\"Sayings of the Century\",\"Sword of Honour\"]");
  EXPECT(s, "$..book[?@.isbn].title",
         "[\"Moby Dick\",\"The Lord of the Rings\"]");
  EXPECT(s, "$..book[?@.price<10].title",
         "[\"Sayings of the Century\",\"Moby Dick\"]");
  EXPECT(s, "$..book[?(@.price < 10)].title",
         "[\"Sayings of the Century\",\"Moby Dick\"]");
  EXPECT(s, "$.store.book[?@.price > $.store.bicycle.price]", "[]");
  EXPECT(s, "$.store.book[?!@.isbn].price", "[8.95,12.99]");
  EXPECT(s, "$.store.book[?@.category == 'fiction' && @.price < 20].title",
         "[\"Sword of Honour\",\"Moby Dick\"]");
  EXPECT(s, "$.store.book[?@.price < 9 || @.author == \"Evelyn Waugh\"].price",
         "[8.95,12.99,8.99]");
  EXPECT(s, "$.store.book[?!(@.price < 10)].price", "[12.99,22.99]");
  EXPECT(s, "$['store']['bicycle'][\"color\"]", "[\"red\"]");
  EXPECT(s, "$.store.bicycle.*", "[\"red\",399]");
  {
    char *r = q(s, "$");
    T_OK(r && r[0] == '[' && strstr(r, "bicycle"), "$ is the root");
    free(r);
  }
  json_decref(s);
}

static void test_selectors(void) {
  json_t *a = parse("[0,1,2,3,4,5,6,7,8,9]");
  json_t *o = parse("{\"a b\": 1, \"o'k\": 2, \"x\": {\"y\": [10, 20]}, "
                    "\"\\u00e9\": 3, \"_1\": 4}");
  char *s;
  EXPECT(a, "$[1:3]", "[1,2]");
  EXPECT(a, "$[5:]", "[5,6,7,8,9]");
  EXPECT(a, "$[1:5:2]", "[1,3]");
  EXPECT(a, "$[5:1:-2]", "[5,3]");
  EXPECT(a, "$[::-1]", "[9,8,7,6,5,4,3,2,1,0]");
  EXPECT(a, "$[-2:]", "[8,9]");
  EXPECT(a, "$[::0]", "[]");
  EXPECT(a, "$[10]", "[]");
  EXPECT(a, "$[-11]", "[]");
  EXPECT(a, "$[0, 0]", "[0,0]");
  EXPECT(a, "$[?@ > 7]", "[8,9]");
  EXPECT(a, "$[?@ >= 8 || @ == 0]", "[0,8,9]");
  EXPECT(o, "$['a b']", "[1]");
  EXPECT(o, "$[\"o'k\"]", "[2]");
  EXPECT(o, "$['o\\'k']", "[2]");
  EXPECT(o, "$.\xc3\xa9", "[3]");
  EXPECT(o, "$['\\u00e9']", "[3]");
  EXPECT(o, "$._1", "[4]");
  EXPECT(o, "$.x.y[1]", "[20]");
  EXPECT(o, "$..y[*]", "[10,20]");
  EXPECT(o, "$.x..[0]", "[10]");
  EXPECT(o, "$.nothing.here", "[]");
  EXPECT(o, "$ .x .y", "[[10,20]]");
  s = qp(o, "$..y[*]");
  T_STREQ(s, "[\"/x/y/0\",\"/x/y/1\"]", "pointers of the values selected");
  free(s);
  s = qp(o, "$['a b']");
  T_STREQ(s, "[\"/a b\"]", "the pointer of a quoted name");
  free(s);
  json_decref(a);
  json_decref(o);
}

static void test_filters(void) {
  json_t *d = parse(
      "{\"items\": [{\"id\": 1, \"tag\": \"a\", \"n\": 1.0}, "
      "{\"id\": 2, \"tag\": \"b\", \"sub\": {\"k\": [1, 2]}}, "
      "{\"id\": 3, \"tag\": null, \"n\": 123456789012345678901234567890}, "
      "{\"id\": \"3\"}], \"max\": 2}");
  EXPECT(d, "$.items[?(@.id==1)].tag", "[\"a\"]");
  EXPECT(d, "$.items[?@.id==1].tag", "[\"a\"]");
  EXPECT(d, "$.items[?@.id == 3].id", "[3]"); /* "3" is not 3 */
  EXPECT(d, "$.items[?@.id != 1].id", "[2,3,\"3\"]");
  EXPECT(d, "$.items[?@.id <= $.max].tag", "[\"a\",\"b\"]");
  EXPECT(d, "$.items[?@.tag == null].id", "[3]");
  EXPECT(d, "$.items[?@.tag].id", "[1,2,3]"); /* existence, null counts */
  EXPECT(d, "$.items[?@.n == 1].id", "[1]");
  EXPECT(d, "$.items[?@.n == 123456789012345678901234567890].id", "[3]");
  EXPECT(d, "$.items[?@.n > 123456789012345678901234567889].id", "[3]");
  EXPECT(d, "$.items[?@.n < 123456789012345678901234567890].id", "[1]");
  EXPECT_BAD(d, "$.items[?@.sub.k == [1, 2]].id", "expected a value");
  EXPECT(d, "$.items[?@.sub.k[1] == 2].id", "[2]");
  EXPECT(d, "$.items[?@.tag > 'a'].id", "[2]");
  EXPECT(d, "$.items[?@.missing == @.other].id", "[1,2,3,\"3\"]");
  EXPECT(d, "$.items[?length(@.tag) == 1].id", "[1,2]");
  EXPECT(d, "$.items[?count(@.*) == 2].id", "[]");
  EXPECT(d, "$.items[?count(@.*) == 3].id", "[1,2,3]");
  EXPECT(d, "$.items[?match(@.tag, '[a-b]')].id", "[1,2]");
  EXPECT(d, "$.items[?search(@.tag, 'b')].id", "[2]");
  EXPECT(d, "$.items[?match(@.tag, 'b+')].id", "[2]");
  EXPECT(d, "$.items[?value(@..k[0]) == 1].id", "[2]");
  EXPECT(d, "$.items[?@.sub[?@[0] == 1]].id", "[2]");
  EXPECT(d, "$..[?@.k].k", "[[1,2]]");
  json_decref(d);
}

static void test_errors(void) {
  json_t *d = parse("{}");
  EXPECT_BAD(d, "$.", "member name");
  EXPECT_BAD(d, "$[", "selector");
  EXPECT_BAD(d, "$['a'", "',' or ']'");
  EXPECT_BAD(d, "$[?@.a ==]", "value");
  EXPECT_BAD(d, "$[?@.a = 1]", "comparison");
  EXPECT_BAD(d, "$[?@.* == 1]", "singular");
  EXPECT_BAD(d, "$[?1]", "literal alone");
  EXPECT_BAD(d, "$[?lenght(@)]", "function");
  EXPECT_BAD(d, "$[?length(@) ]", "not a test");
  EXPECT_BAD(d, "$[?match(@, '(')]", "regex");
  EXPECT_BAD(d, "$[01]", "leading zero");
  EXPECT_BAD(d, "$[9007199254740992]", "2^53");
  EXPECT_BAD(d, "$.a b", "unexpected");
  EXPECT_BAD(d, "$['\\q']", "escape");
  EXPECT_BAD(d, "$.a-b", "unexpected");
  EXPECT_BAD(d, "x.a", "starts with '$'");
  {
    char msg[256];
    er_jsonpath_t *p = er_jsonpath_compile("$.a[?@.b == ]", msg, sizeof msg);
    T_OK(!p && strstr(msg, "at offset 12"), "the message names the place: %s",
         msg);
  }
  json_decref(d);
}

static void test_select(void) {
  json_t *d = parse("{\"items\": [{\"id\": 1, \"tag\": \"a\"}, "
                    "{\"id\": 2, \"tag\": \"b\"}], \"n\": 3}");
  er_sel_t s;
  char msg[256];
  er_buf_t why = ER_BUF_INIT(4096);
  json_t *m;

  T_OK(er_jsonpath_is("$") && er_jsonpath_is("$.a") && er_jsonpath_is("$[0]") &&
           !er_jsonpath_is("${x}") && !er_jsonpath_is("/a") &&
           !er_jsonpath_is("$x"),
       "what looks like a JSONPath");
  T_OK(er_select(d, "/items/1/tag", &s, msg, sizeof msg) == 0 && !s.is_path &&
           json_is_string(er_sel_value(&s)),
       "a pointer selects one value");
  er_sel_free(&s);
  T_OK(er_select(d, "$.items[*].id", &s, msg, sizeof msg) == 0 && s.is_path &&
           json_is_array(er_sel_value(&s)) &&
           json_array_size(er_sel_value(&s)) == 2,
       "several values are an array");
  m = parse("{\"$count\": 2}");
  T_OK(er_sel_match(&s, m, NULL), "$count sees the list");
  json_decref(m);
  m = parse("[1, 2]");
  T_OK(er_sel_match(&s, m, NULL), "a literal array against several values");
  json_decref(m);
  m = parse("{\"$each\": {\"$lt\": 2}}");
  T_OK(!er_sel_match(&s, m, &why) &&
           strstr(er_buf_cstr(&why), "at /items/1/id: expected < 2, got 2"),
       "$each names the value that fails: %s", er_buf_cstr(&why));
  json_decref(m);
  er_sel_free(&s);
  T_OK(er_select(d, "$.items[?@.id==2].tag", &s, msg, sizeof msg) == 0 &&
           json_is_string(er_sel_value(&s)) &&
           !strcmp(er_sel_where(&s), "/items/1/tag"),
       "a single value is unwrapped, with its pointer");
  m = parse("\"c\"");
  er_buf_reset(&why);
  T_OK(!er_sel_match(&s, m, &why) &&
           !strcmp(er_buf_cstr(&why),
                   "at /items/1/tag: expected \"c\", got \"b\""),
       "a mismatch names the place: %s", er_buf_cstr(&why));
  json_decref(m);
  m = parse("{\"$count\": 1}");
  T_OK(er_sel_match(&s, m, NULL), "$count of a single value is 1");
  json_decref(m);
  er_sel_free(&s);
  T_OK(er_select(d, "$.items[?@.id==9].tag", &s, msg, sizeof msg) == 0 &&
           er_sel_value(&s) == NULL,
       "nothing selected: missing");
  m = parse("{\"$exists\": false}");
  T_OK(er_sel_match(&s, m, NULL), "$exists false when nothing is selected");
  json_decref(m);
  m = parse("{\"$count\": 0}");
  T_OK(er_sel_match(&s, m, NULL), "$count 0 when nothing is selected");
  json_decref(m);
  m = parse("{\"$each\": 1}");
  er_buf_reset(&why);
  T_OK(!er_sel_match(&s, m, &why) && strstr(er_buf_cstr(&why), "none"),
       "$each fails on nothing: %s", er_buf_cstr(&why));
  json_decref(m);
  m = parse("\"b\"");
  er_buf_reset(&why);
  T_OK(!er_sel_match(&s, m, &why) && strstr(er_buf_cstr(&why), "missing"),
       "a plain value against nothing: %s", er_buf_cstr(&why));
  json_decref(m);
  er_sel_free(&s);
  T_OK(er_select(d, "items", &s, msg, sizeof msg) != 0 &&
           strstr(msg, "neither a JSON pointer"),
       "neither pointer nor path: %s", msg);
  er_sel_free(&s);
  T_OK(er_select(d, "$.items[", &s, msg, sizeof msg) != 0 &&
           strstr(msg, "JSONPath"),
       "a bad path: %s", msg);
  er_sel_free(&s);
  T_OK(er_select_check("$.a[?@.b==1]", msg, sizeof msg) == NULL &&
           er_select_check("/a", msg, sizeof msg) == NULL &&
           er_select_check("${p}", msg, sizeof msg) == NULL &&
           er_select_check("$.a[", msg, sizeof msg) != NULL,
       "er_select_check");
  er_buf_free(&why);
  json_decref(d);
}

int main(void) {
  test_rfc_examples();
  test_selectors();
  test_filters();
  test_errors();
  test_select();
  return t_done();
}
