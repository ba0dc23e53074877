/* test_pyjson.c: er_pyjson_dumps / er_event_id against vectors written by
 * Python itself (tests/data/gen_pyjson_vectors.py). */
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "tap.h"

static void check_vectors(void) {
  const char *root = getenv("ER_ROOT");
  char path[4096];
  json_error_t jerr;
  json_t *vecs;
  size_t i, ok_dumps = 0, ok_hash = 0, ok_compact = 0, n;

  snprintf(path, sizeof path, "%s/tests/data/pyjson_vectors.json",
           root ? root : ".");
  vecs = json_load_file(path, JSON_ALLOW_NUL, &jerr);
  T_OK(vecs && json_is_array(vecs), "vectors file loads (%s)",
       vecs ? path : jerr.text);
  if (!vecs)
    return;
  n = json_array_size(vecs);
  T_OK(n >= 40, "vectors file has %zu vectors", n);
  for (i = 0; i < n; i++) {
    json_t *vv = json_array_get(vecs, i);
    const json_t *value = json_object_get(vv, "value");
    const char *want = json_string_value(json_object_get(vv, "dumps"));
    const char *want_hash = json_string_value(json_object_get(vv, "sha256"));
    er_err_t err = {0};
    char id[65];
    char *got = er_pyjson_dumps(value, &err);
    if (got && want && strcmp(got, want) == 0)
      ok_dumps++;
    else
      T_STREQ(got, want, "vector %zu: dumps (%s)", i, err.msg);
    if (er_event_id(value, id, &err) == 0 && want_hash &&
        strcmp(id, want_hash) == 0)
      ok_hash++;
    else
      T_STREQ(id, want_hash, "vector %zu: event id (%s)", i, err.msg);
    free(got);
    want = json_string_value(json_object_get(vv, "compact"));
    got = er_pyjson_compact(value, &err);
    if (got && want && strcmp(got, want) == 0)
      ok_compact++;
    else
      T_STREQ(got, want, "vector %zu: compact (%s)", i, err.msg);
    free(got);
  }
  T_OK(ok_dumps == n, "%zu/%zu vectors: dumps identical to Python", ok_dumps,
       n);
  T_OK(ok_hash == n, "%zu/%zu vectors: event id identical to Python", ok_hash,
       n);
  T_OK(ok_compact == n, "%zu/%zu vectors: compact form identical to Python",
       ok_compact, n);
  json_decref(vecs);
}

static void check_dumps(json_t *v, const char *want, const char *what) {
  er_err_t err = {0};
  char *got = er_pyjson_dumps(v, &err);
  T_STREQ(got, want, "%s", what);
  free(got);
  json_decref(v);
}

int main(void) {
  char hex[65];
  er_err_t err = {0};
  char id[65];
  json_t *bad;

  er_sha256_hex("", 0, hex);
  T_STREQ(hex,
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
          "sha256 of the empty string");
  er_sha256_hex("abc", 3, hex);
  T_STREQ(hex,
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
          "sha256 of \"abc\"");

  check_vectors();

  /* values built in C, not through the parser */
  check_dumps(json_pack("{s:s, s:s, s:s}", "text_storage_id", "t-1",
                        "file_name", "a.txt", "batch_id", "b-1"),
              "{\"batch_id\": \"b-1\", \"file_name\": \"a.txt\", "
              "\"text_storage_id\": \"t-1\"}",
              "essay data built in reverse order is sorted");
  check_dumps(json_real(0.1), "0.1", "real 0.1");
  check_dumps(json_real(1e16), "1e+16", "real 1e16");
  check_dumps(json_real(1.5e-7), "1.5e-07", "real 1.5e-07");
  check_dumps(json_real(123456789012345.0), "123456789012345.0",
              "real 123456789012345.0");
  check_dumps(json_real(-0.0), "-0.0", "real -0.0");
  check_dumps(json_stringn("a\0b", 3), "\"a\\u0000b\"", "embedded NUL");
  check_dumps(json_string("\x7f"), "\"\\u007f\"", "DEL is escaped like Python");
  check_dumps(json_string("\xf0\x9f\x98\x80"), "\"\\ud83d\\ude00\"",
              "emoji as a surrogate pair");

  /* invalid UTF-8 cannot be what Python would hash: an error, not a guess */
  bad = json_pack("{s:o}", "k", json_stringn_nocheck("\xff\xfe", 2));
  T_OK(er_event_id(bad, id, &err) == -1 && err.code == ER_E_INPUT &&
           strstr(err.msg, "not valid UTF-8") != NULL,
       "invalid UTF-8 is an input error (%s)", err.msg);
  json_decref(bad);

  er_err_clear(&err);
  T_OK(er_pyjson_dumps(NULL, &err) == NULL && err.code == ER_E_INPUT,
       "NULL value is an input error");
  return t_done();
}
