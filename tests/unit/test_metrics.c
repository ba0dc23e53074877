/* test_metrics.c: the Prometheus text format parser (promtext.h) on good
 * and hostile inputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/promtext.h"
#include "tap.h"

/* What the callback saw, flattened for comparisons:
 * name{k=v,k2=v2} value [ts] per sample, one per line. */
typedef struct seen {
  er_buf_t out;
  int n;
  double last;
  int last_line;
  char last_text[256];
  int stop_after; /* 0 = never */
} seen_t;

static int collect(void *ud, const er_prom_sample_t *s) {
  seen_t *w = ud;
  char v[40];
  er_buf_puts(&w->out, s->name);
  if (s->nlabels) {
    er_buf_puts(&w->out, "{");
    for (size_t i = 0; i < s->nlabels; i++)
      er_buf_printf(&w->out, "%s%s=%s", i ? "," : "", s->labels[i].name,
                    s->labels[i].value);
    er_buf_puts(&w->out, "}");
  }
  er_prom_fmt_value(s->value, v);
  er_buf_printf(&w->out, " %s", v);
  if (s->has_timestamp)
    er_buf_printf(&w->out, " @%lld", (long long)s->timestamp_ms);
  er_buf_puts(&w->out, "\n");
  w->n++;
  w->last = s->value;
  w->last_line = s->line;
  snprintf(w->last_text, sizeof w->last_text, "%.*s", (int)s->text_len,
           s->text);
  if (w->stop_after && w->n >= w->stop_after)
    return 7;
  return 0;
}

/* Parses text; returns the rc, fills w (reset first) and err. */
static int parse(const char *text, seen_t *w, er_err_t *err) {
  er_buf_reset(&w->out);
  w->n = 0;
  er_err_clear(err);
  return er_prom_parse(text, strlen(text), collect, w, err);
}

/* The text must be refused with a message containing want. */
static void refused(const char *text, const char *want, const char *what) {
  seen_t w = {ER_BUF_INIT(1 << 20), 0, 0, 0, "", 0};
  er_err_t err = {0};
  int rc = parse(text, &w, &err);
  T_OK(rc == -1 && err.code == ER_E_INPUT && strstr(err.msg, want),
       "refused: %s", what);
  if (!(rc == -1 && strstr(err.msg, want)))
    printf("#   rc %d, message: %s\n#   want: %s\n", rc, err.msg, want);
  er_buf_free(&w.out);
}

int main(void) {
  seen_t w = {ER_BUF_INIT(1 << 20), 0, 0, 0, "", 0};
  er_err_t err = {0};
  int rc;

  /* ---- good inputs ---- */
  rc = parse("# HELP sut_events_total Events seen.\n"
             "# TYPE sut_events_total counter\n"
             "sut_events_total{instance=\"els-1\",kind=\"a\"} 3\n"
             "sut_events_total{instance=\"els-2\",kind=\"a\"} 4.5\n"
             "\n"
             "   \t\n"
             "# a plain comment with \\q anything\n"
             "up 1\n",
             &w, &err);
  T_OK(rc == 0, "a typical exposition parses (%s)", err.msg);
  T_STREQ(er_buf_cstr(&w.out),
          "sut_events_total{instance=els-1,kind=a} 3\n"
          "sut_events_total{instance=els-2,kind=a} 4.5\n"
          "up 1\n",
          "samples, labels and values as written");
  T_OK(w.last_line == 8, "line numbers count comments and blank lines (%d)",
       w.last_line);
  T_STREQ(w.last_text, "up 1", "the sample's text is its line");

  rc = parse("a_b:c{path=\"C:\\\\dir\\\\x\",q=\"say \\\"hi\\\"\","
             "nl=\"1\\n2\"} 1\n",
             &w, &err);
  T_OK(rc == 0, "escapes in label values parse (%s)", err.msg);
  T_STREQ(er_buf_cstr(&w.out),
          "a_b:c{path=C:\\dir\\x,q=say \"hi\",nl=1\n2} 1\n",
          "\\\\, \\\" and \\n are unescaped");

  rc = parse("m{a=\"x,y\",b=\"}{=\"} 2\n", &w, &err);
  T_OK(rc == 0, "commas and braces inside quotes parse (%s)", err.msg);
  T_STREQ(er_buf_cstr(&w.out), "m{a=x,y,b=}{=} 2\n",
          "commas and braces inside quotes belong to the value");

  rc = parse("m{ a = \"1\" , b=\"2\", } 5\nm{} 6\n", &w, &err);
  T_OK(rc == 0, "blanks around tokens, a trailing comma, empty braces (%s)",
       err.msg);
  T_STREQ(er_buf_cstr(&w.out), "m{a=1,b=2} 5\nm 6\n",
          "blanks and trailing comma ignored");

  rc = parse("n1 NaN\nn2 +Inf\nn3 -Inf\nn4 inf\nn5 1.5e3\nn6 -2E-2\n"
             "n7 .5\nn8 6.02e+23\nn9 -0\nn10 1e-400\n",
             &w, &err);
  T_OK(rc == 0, "NaN, Inf and scientific notation parse (%s)", err.msg);
  T_STREQ(er_buf_cstr(&w.out),
          "n1 NaN\nn2 +Inf\nn3 -Inf\nn4 +Inf\nn5 1500\nn6 -0.02\n"
          "n7 0.5\nn8 6.02e+23\nn9 -0\nn10 0\n",
          "special and scientific values read right");

  rc = parse("ts 1 1700000000000\nneg 2 -5\nbl\t3\t 4 \n", &w, &err);
  T_OK(rc == 0, "timestamps parse (%s)", err.msg);
  T_STREQ(er_buf_cstr(&w.out), "ts 1 @1700000000000\nneg 2 @-5\nbl 3 @4\n",
          "timestamps kept, negative allowed, tabs separate");

  rc = parse("crlf 1\r\nlast 2", &w, &err);
  T_OK(rc == 0 && w.n == 2 && w.last == 2,
       "CRLF line ends and a last line without a line break");

  {
    /* a huge label value (1 MiB) and many lines */
    size_t big = 1u << 20;
    er_buf_t t = ER_BUF_INIT(8u << 20);
    er_buf_puts(&t, "huge{v=\"");
    for (size_t i = 0; i < big; i++)
      er_buf_append(&t, "x", 1);
    er_buf_puts(&t, "\"} 9\n");
    for (int i = 0; i < 20000; i++)
      er_buf_printf(&t, "many{i=\"%d\"} %d\n", i, i);
    er_buf_reset(&w.out);
    w.n = 0;
    rc = er_prom_parse(er_buf_cstr(&t), t.len, collect, &w, &err);
    T_OK(rc == 0 && w.n == 20001 && w.last == 19999,
         "a 1 MiB label value and 20000 lines parse (%d samples)", w.n);
    er_buf_free(&t);
  }

  rc = parse("a 1\nb 2\nc 3\n", &w, &err);
  w.stop_after = 2;
  rc = parse("a 1\nb 2\nc 3\n", &w, &err);
  T_OK(rc == 7 && w.n == 2, "a callback's non-zero return stops the parse");
  w.stop_after = 0;

  rc = er_prom_parse("", 0, NULL, NULL, &err);
  T_OK(rc == 0, "an empty body is valid (no samples)");
  rc = er_prom_parse("x 1\n", 4, NULL, NULL, &err);
  T_OK(rc == 0, "a NULL callback only validates");

  /* ---- hostile and malformed inputs ---- */
  refused("up\n", "line 1: sample 'up' has no value", "a missing value");
  refused("# ok\nup{a=\"b\"}\n", "line 2: sample 'up' has no value",
          "a missing value after labels names its line");
  refused("up one\n", "not a number", "a word as the value");
  refused("up 0x10\n", "not a number", "a hex value");
  refused("up 1e\n", "exponent without digits", "an exponent without digits");
  refused("up 1e999\n", "out of range", "an overflowing value");
  refused("up 1 2 3\n", "unexpected text after the timestamp",
          "text after the timestamp");
  refused("up 1 1.5\n", "timestamp must be an integer", "a float timestamp");
  refused("up{a=\"b} 1\n", "unterminated label value",
          "an unterminated label value");
  refused("up{a=\"b\" 1\n", "expected ',' or '}'", "a missing closing brace");
  refused("up{a=\"b\",\n", "unterminated label set", "a line ending in labels");
  refused("up{a=b} 1\n", "must be in double quotes", "an unquoted label value");
  refused("up{a=\"\\t\"} 1\n", "bad escape", "an unknown escape \\t");
  refused("up{a=\"x\\", "unterminated label value",
          "a value ending in a backslash");
  refused("up{a=\"1\",a=\"2\"} 1\n", "label 'a' given twice",
          "a duplicate label");
  refused("up{1a=\"1\"} 1\n", "expected a label name", "a bad label name");
  refused("up{a:b=\"1\"} 1\n", "expected '=' after label 'a'",
          "a colon in a label name");
  refused("1up 1\n", "expected a metric name", "a name starting with a digit");
  refused("up-down 1\n", "unexpected '-' after the metric name",
          "a dash in a metric name");
  refused("# TYPE up countr\n", "unknown metric type 'countr'",
          "an unknown # TYPE");
  refused("# TYPE 9up counter\n", "# TYPE needs a valid metric name",
          "# TYPE with a bad name");
  refused("# HELP up bad \\x escape\n", "bad escape in # HELP",
          "a bad escape in # HELP");
  {
    const char nul[] = "up 1\nx\0y 2\n";
    er_err_clear(&err);
    rc = er_prom_parse(nul, sizeof nul - 1, NULL, NULL, &err);
    T_OK(rc == -1 && strstr(err.msg, "line 2: a NUL byte"),
         "a NUL byte is refused (%s)", err.msg);
  }
  {
    er_buf_t t = ER_BUF_INIT(1 << 20);
    er_buf_puts(&t, "m{");
    for (int i = 0; i < ER_PROM_MAX_LABELS + 1; i++)
      er_buf_printf(&t, "l%d=\"v\",", i);
    er_buf_puts(&t, "} 1\n");
    refused(er_buf_cstr(&t), "more than 64 labels", "too many labels");
    er_buf_free(&t);
  }
  {
    er_buf_t t = ER_BUF_INIT(1 << 20);
    er_buf_puts(&t, "up ");
    for (int i = 0; i < 200; i++)
      er_buf_puts(&t, "1");
    er_buf_puts(&t, "\n");
    refused(er_buf_cstr(&t), "too long", "a 200-digit value");
    er_buf_free(&t);
  }
  refused("good 1\nbad{\n",
          "line 2:", "a bad line after good ones fails the whole text");

  /* ---- names and formatting ---- */
  T_OK(er_prom_name_ok("a:b_c9") && !er_prom_name_ok("9a") &&
           !er_prom_name_ok("") && !er_prom_name_ok("a-b"),
       "metric names");
  T_OK(er_prom_label_name_ok("_a9") && !er_prom_label_name_ok("a:b") &&
           !er_prom_label_name_ok(""),
       "label names (no colon)");
  {
    char v[40];
    er_prom_fmt_value(0.1, v);
    T_STREQ(v, "0.1", "0.1 formats as 0.1");
    er_prom_fmt_value(1e20, v);
    T_STREQ(v, "1e+20", "1e20 formats in exponent form");
    er_prom_fmt_value(NAN, v);
    T_STREQ(v, "NaN", "NaN formats as NaN");
  }

  er_buf_free(&w.out);
  return t_done();
}
