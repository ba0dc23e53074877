/* jsonpath.c: see jsonpath.h. A recursive-descent parser into a small
 * tree, and an evaluator over nodelists (value + JSON pointer). */
#include "lang/jsonpath.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonbig.h"
#include "base/util.h"
#include "lang/jpos.h"
#include "lang/jsonx.h"

#define MAX_DEPTH 64               /* nesting of filters and parentheses */
#define MAX_INT 9007199254740991LL /* I-JSON: 2^53 - 1 */

/* ---- the tree ---------------------------------------------------------- */

typedef struct expr expr_t;
typedef struct query query_t;

typedef enum { S_NAME, S_WILD, S_INDEX, S_SLICE, S_FILTER } skind_t;

typedef struct sel {
  skind_t k;
  char *name; /* S_NAME */
  size_t nlen;
  long long idx;              /* S_INDEX */
  long long start, end, step; /* S_SLICE */
  bool has_start, has_end;    /* S_SLICE */
  expr_t *filter;             /* S_FILTER */
} sel_t;

typedef struct seg {
  bool desc; /* ".." */
  sel_t *s;
  size_t n;
} seg_t;

struct query {
  bool rel; /* "@" (else "$") */
  seg_t *g;
  size_t n;
};

typedef enum {
  E_OR,
  E_AND,
  E_NOT,
  E_CMP,
  E_TEST,
  E_LIT,
  E_QUERY,
  E_FUNC
} ekind_t;
typedef enum { F_LENGTH, F_COUNT, F_MATCH, F_SEARCH, F_VALUE } fkind_t;
typedef enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } op_t;

struct expr {
  ekind_t k;
  expr_t *a, *b; /* OR, AND: operands; NOT, TEST: a; CMP: a op b */
  op_t op;
  json_t *lit; /* E_LIT */
  query_t *q;  /* E_QUERY */
  fkind_t f;   /* E_FUNC */
  expr_t *args[2];
  size_t nargs;
  regex_t re; /* match/search with a literal pattern */
  bool re_ok;
};

struct er_jsonpath {
  query_t *q;
};

static void query_free(query_t *q);

static void expr_free(expr_t *e) {
  if (!e)
    return;
  expr_free(e->a);
  expr_free(e->b);
  json_decref(e->lit);
  query_free(e->q);
  for (size_t i = 0; i < e->nargs; i++)
    expr_free(e->args[i]);
  if (e->re_ok)
    regfree(&e->re);
  free(e);
}

static void query_free(query_t *q) {
  if (!q)
    return;
  for (size_t i = 0; i < q->n; i++) {
    for (size_t j = 0; j < q->g[i].n; j++) {
      free(q->g[i].s[j].name);
      expr_free(q->g[i].s[j].filter);
    }
    free(q->g[i].s);
  }
  free(q->g);
  free(q);
}

void er_jsonpath_free(er_jsonpath_t *p) {
  if (!p)
    return;
  query_free(p->q);
  free(p);
}

/* ---- the parser -------------------------------------------------------- */

typedef struct parser {
  const char *s;
  size_t i, len;
  char *msg;
  size_t msgsz;
  bool failed;
  int depth;
} parser_t;

static void fail(parser_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(parser_t *p, const char *fmt, ...) {
  va_list ap;
  char what[256];
  if (p->failed)
    return;
  p->failed = true;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(p->msg, p->msgsz, "JSONPath %s: at offset %zu: %s", p->s, p->i,
           what);
}

static char peek(const parser_t *p) { return p->i < p->len ? p->s[p->i] : 0; }
static char peek2(const parser_t *p) {
  return p->i + 1 < p->len ? p->s[p->i + 1] : 0;
}

static void blanks(parser_t *p) {
  while (p->i < p->len && strchr(" \t\n\r", p->s[p->i]))
    p->i++;
}

/* The next non-blank character, without moving. */
static char after_blanks(const parser_t *p) {
  size_t i = p->i;
  while (i < p->len && strchr(" \t\n\r", p->s[i]))
    i++;
  return i < p->len ? p->s[i] : 0;
}

static bool name_first(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c >= 0x80;
}
static bool name_char(unsigned char c) {
  return name_first(c) || (c >= '0' && c <= '9');
}

static void *grow(void *arr, size_t n, size_t elem) {
  /* room for element n (arrays grow by powers of two) */
  if (n && (n & (n - 1)))
    return arr;
  return realloc(arr, (n ? n * 2 : 1) * elem);
}

/* Appends code point cp as UTF-8. */
static void put_utf8(er_buf_t *b, unsigned long cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  er_buf_append(b, u, n);
}

static long hex4(parser_t *p) {
  long v = 0;
  for (int k = 0; k < 4; k++) {
    int h = er_hexval(peek(p));
    if (h < 0) {
      fail(p, "\\u needs four hex digits");
      return -1;
    }
    v = v * 16 + h;
    p->i++;
  }
  return v;
}

/* A quoted string ('...' or "...") into a new buffer (caller frees). */
static char *parse_string(parser_t *p, size_t *len) {
  char q = peek(p);
  er_buf_t b = ER_BUF_INIT(1u << 20);
  p->i++;
  while (!p->failed) {
    unsigned char c = (unsigned char)peek(p);
    if (p->i >= p->len) {
      fail(p, "a string is not closed (%c missing)", q);
      break;
    }
    if (c == (unsigned char)q) {
      p->i++;
      *len = b.len;
      if (b.truncated) {
        fail(p, "a string too long");
        break;
      }
      return er_buf_steal(&b);
    }
    if (c < 0x20) {
      fail(p, "a control character in a string (write it escaped)");
      break;
    }
    if (c != '\\') {
      er_buf_append(&b, &p->s[p->i], 1);
      p->i++;
      continue;
    }
    p->i++;
    c = (unsigned char)peek(p);
    p->i++;
    switch (c) {
    case 'b':
      er_buf_puts(&b, "\b");
      break;
    case 'f':
      er_buf_puts(&b, "\f");
      break;
    case 'n':
      er_buf_puts(&b, "\n");
      break;
    case 'r':
      er_buf_puts(&b, "\r");
      break;
    case 't':
      er_buf_puts(&b, "\t");
      break;
    case '/':
    case '\\':
    case '\'':
    case '"':
      er_buf_append(&b, &c, 1);
      break;
    case 'u': {
      long cp = hex4(p);
      if (cp < 0)
        break;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo;
        if (peek(p) != '\\' || peek2(p) != 'u') {
          fail(p, "a high surrogate without its low half");
          break;
        }
        p->i += 2;
        lo = hex4(p);
        if (lo < 0xDC00 || lo > 0xDFFF) {
          fail(p, "a high surrogate without its low half");
          break;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        fail(p, "a lone low surrogate");
        break;
      }
      put_utf8(&b, (unsigned long)cp);
      break;
    }
    default:
      p->i--;
      fail(p, "unknown escape \\%c", c ? c : '?');
    }
  }
  er_buf_free(&b);
  return NULL;
}

/* An integer (index or slice part) in the I-JSON range. */
static bool parse_int(parser_t *p, long long *out) {
  size_t st = p->i;
  long long v = 0;
  bool neg = false;
  if (peek(p) == '-') {
    neg = true;
    p->i++;
  }
  if (peek(p) < '0' || peek(p) > '9') {
    p->i = st;
    fail(p, "expected an integer");
    return false;
  }
  if (peek(p) == '0' && peek2(p) >= '0' && peek2(p) <= '9') {
    fail(p, "an integer with a leading zero");
    return false;
  }
  if (neg && peek(p) == '0') {
    fail(p, "-0 is not an index");
    return false;
  }
  while (peek(p) >= '0' && peek(p) <= '9') {
    v = v * 10 + (peek(p) - '0');
    p->i++;
    if (v > MAX_INT) {
      p->i = st;
      fail(p, "an integer beyond 2^53-1");
      return false;
    }
  }
  *out = neg ? -v : v;
  return true;
}

static query_t *parse_query(parser_t *p);
static expr_t *parse_or(parser_t *p);

static expr_t *expr_new(ekind_t k) {
  expr_t *e = calloc(1, sizeof *e);
  if (e)
    e->k = k;
  return e;
}

/* A number literal (RFC grammar), as an integer (exact, big ones
 * included) or a real. */
static json_t *parse_number(parser_t *p) {
  size_t st = p->i;
  bool frac = false;
  char buf[400];
  if (peek(p) == '-')
    p->i++;
  if (peek(p) == '0') {
    p->i++;
  } else if (peek(p) >= '1' && peek(p) <= '9') {
    while (peek(p) >= '0' && peek(p) <= '9')
      p->i++;
  } else {
    fail(p, "expected a number");
    return NULL;
  }
  if (peek(p) == '.') {
    frac = true;
    p->i++;
    if (peek(p) < '0' || peek(p) > '9') {
      fail(p, "a fraction needs digits");
      return NULL;
    }
    while (peek(p) >= '0' && peek(p) <= '9')
      p->i++;
  }
  if (peek(p) == 'e' || peek(p) == 'E') {
    frac = true;
    p->i++;
    if (peek(p) == '+' || peek(p) == '-')
      p->i++;
    if (peek(p) < '0' || peek(p) > '9') {
      fail(p, "an exponent needs digits");
      return NULL;
    }
    while (peek(p) >= '0' && peek(p) <= '9')
      p->i++;
  }
  if (!frac)
    return er_big_from_text(p->s + st, p->i - st);
  if (p->i - st >= sizeof buf) {
    fail(p, "a number too long");
    return NULL;
  }
  memcpy(buf, p->s + st, p->i - st);
  buf[p->i - st] = '\0';
  return json_real(strtod(buf, NULL));
}

static bool word_at(const parser_t *p, const char *w) {
  size_t n = strlen(w);
  return p->i + n <= p->len && memcmp(p->s + p->i, w, n) == 0 &&
         (p->i + n == p->len || !name_char((unsigned char)p->s[p->i + n]));
}

static expr_t *parse_literal(parser_t *p) {
  expr_t *e = expr_new(E_LIT);
  char c = peek(p);
  if (!e)
    return NULL;
  if (c == '\'' || c == '"') {
    size_t n = 0;
    char *s = parse_string(p, &n);
    if (s)
      e->lit = json_stringn(s, n);
    if (s && !e->lit)
      fail(p, "a string literal is not valid UTF-8");
    free(s);
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    e->lit = parse_number(p);
  } else if (word_at(p, "true")) {
    p->i += 4;
    e->lit = json_true();
  } else if (word_at(p, "false")) {
    p->i += 5;
    e->lit = json_false();
  } else if (word_at(p, "null")) {
    p->i += 4;
    e->lit = json_null();
  } else {
    fail(p, "expected a value (a number, 'string', true, false, null, @... "
            "or $...)");
  }
  if (!e->lit) {
    fail(p, "expected a value");
    expr_free(e);
    return NULL;
  }
  return e;
}

static bool singular(const query_t *q) {
  for (size_t i = 0; i < q->n; i++)
    if (q->g[i].desc || q->g[i].n != 1 ||
        (q->g[i].s[0].k != S_NAME && q->g[i].s[0].k != S_INDEX))
      return false;
  return true;
}

/* Is the function value-typed (length, count, value) or logical? */
static bool func_is_value(fkind_t f) { return f != F_MATCH && f != F_SEARCH; }

static expr_t *parse_func(parser_t *p);

/* A comparable, or a query/function for a test: literal, query,
 * function. */
static expr_t *parse_operand(parser_t *p) {
  char c = peek(p);
  if (c == '@' || c == '$') {
    expr_t *e = expr_new(E_QUERY);
    if (!e)
      return NULL;
    e->q = parse_query(p);
    if (!e->q) {
      expr_free(e);
      return NULL;
    }
    return e;
  }
  if (c >= 'a' && c <= 'z' && !word_at(p, "true") && !word_at(p, "false") &&
      !word_at(p, "null"))
    return parse_func(p);
  return parse_literal(p);
}

static void check_value_arg(parser_t *p, const expr_t *a, const char *fname) {
  if (a->k == E_QUERY && !singular(a->q))
    fail(p,
         "%s() takes a value: a literal or a singular query (names and "
         "indexes only)",
         fname);
  else if (a->k == E_FUNC && !func_is_value(a->f))
    fail(p, "%s() takes a value, not a test", fname);
}

static expr_t *parse_func(parser_t *p) {
  static const struct {
    const char *name;
    fkind_t f;
    size_t nargs;
  } fns[] = {{"length", F_LENGTH, 1},
             {"count", F_COUNT, 1},
             {"match", F_MATCH, 2},
             {"search", F_SEARCH, 2},
             {"value", F_VALUE, 1}};
  size_t st = p->i, n;
  expr_t *e;
  int which = -1;
  while (name_char((unsigned char)peek(p)))
    p->i++;
  n = p->i - st;
  for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++)
    if (strlen(fns[k].name) == n && !memcmp(fns[k].name, p->s + st, n))
      which = (int)k;
  if (which < 0 || peek(p) != '(') {
    p->i = st;
    fail(p, "expected a value, a query or a function (length, count, match, "
            "search, value)");
    return NULL;
  }
  e = expr_new(E_FUNC);
  if (!e)
    return NULL;
  e->f = fns[which].f;
  p->i++;
  for (size_t k = 0; k < fns[which].nargs && !p->failed; k++) {
    blanks(p);
    if (k > 0) {
      if (peek(p) != ',') {
        fail(p, "%s() takes %zu arguments", fns[which].name, fns[which].nargs);
        break;
      }
      p->i++;
      blanks(p);
    }
    e->args[k] = parse_operand(p);
    if (!e->args[k])
      break;
    e->nargs++;
    if (e->f == F_COUNT || e->f == F_VALUE) {
      if (e->args[k]->k != E_QUERY)
        fail(p, "%s() takes a query (@... or $...)", fns[which].name);
    } else {
      check_value_arg(p, e->args[k], fns[which].name);
    }
  }
  blanks(p);
  if (!p->failed && peek(p) != ')')
    fail(p, "%s() takes %zu argument%s; ')' expected", fns[which].name,
         fns[which].nargs, fns[which].nargs == 1 ? "" : "s");
  if (p->failed) {
    expr_free(e);
    return NULL;
  }
  p->i++;
  if ((e->f == F_MATCH || e->f == F_SEARCH) && e->args[1]->k == E_LIT &&
      json_is_string(e->args[1]->lit)) {
    er_buf_t re = ER_BUF_INIT(1u << 20);
    const char *pat = json_string_value(e->args[1]->lit);
    if (e->f == F_MATCH)
      er_buf_printf(&re, "^(%s)$", pat);
    else
      er_buf_puts(&re, pat);
    if (regcomp(&e->re, er_buf_cstr(&re), REG_EXTENDED | REG_NOSUB) != 0) {
      fail(p, "%s(): '%s' is not a valid extended regex", fns[which].name, pat);
      er_buf_free(&re);
      expr_free(e);
      return NULL;
    }
    e->re_ok = true;
    er_buf_free(&re);
  }
  return e;
}

static bool parse_op(parser_t *p, op_t *op) {
  char c = peek(p), d = peek2(p);
  if (c == '=' && d == '=')
    *op = OP_EQ;
  else if (c == '!' && d == '=')
    *op = OP_NE;
  else if (c == '<' && d == '=')
    *op = OP_LE;
  else if (c == '>' && d == '=')
    *op = OP_GE;
  else if (c == '<')
    *op = OP_LT;
  else if (c == '>')
    *op = OP_GT;
  else
    return false;
  p->i += (*op == OP_LT || *op == OP_GT) ? 1 : 2;
  return true;
}

static void check_comparable(parser_t *p, const expr_t *e) {
  if (e->k == E_QUERY && !singular(e->q))
    fail(p, "a comparison needs a singular query (names and indexes only, "
            "no *, .., slices or filters)");
  else if (e->k == E_FUNC && !func_is_value(e->f))
    fail(p, "match() and search() are tests, not values to compare");
}

static expr_t *parse_basic(parser_t *p) {
  expr_t *e, *l;
  bool neg = false;
  op_t op;
  if (++p->depth > MAX_DEPTH) {
    fail(p, "nested too deeply");
    return NULL;
  }
  if (peek(p) == '!' && peek2(p) != '=') {
    neg = true;
    p->i++;
    blanks(p);
  }
  if (peek(p) == '(') {
    p->i++;
    blanks(p);
    e = parse_or(p);
    blanks(p);
    if (e && peek(p) != ')') {
      fail(p, "')' expected");
      expr_free(e);
      e = NULL;
    } else if (e) {
      p->i++;
    }
  } else {
    l = parse_operand(p);
    if (!l) {
      p->depth--;
      return NULL;
    }
    if (!neg && after_blanks(p) && strchr("=!<>", after_blanks(p))) {
      blanks(p);
      if (!parse_op(p, &op)) {
        fail(p, "expected a comparison (== != < <= > >=)");
        expr_free(l);
        return NULL;
      }
      blanks(p);
      e = expr_new(E_CMP);
      if (!e) {
        expr_free(l);
        return NULL;
      }
      e->op = op;
      e->a = l;
      check_comparable(p, l);
      e->b = p->failed ? NULL : parse_operand(p);
      if (e->b)
        check_comparable(p, e->b);
      else
        fail(p, "expected a value after the comparison");
    } else if (l->k == E_LIT) {
      fail(p, "a literal alone is not a test; compare it (== != < <= > >=)");
      e = l;
    } else if (l->k == E_FUNC && func_is_value(l->f)) {
      fail(p, "a value alone is not a test; compare it (e.g. length(@) > 0)");
      e = l;
    } else {
      e = expr_new(E_TEST);
      if (e)
        e->a = l;
      else
        expr_free(l);
    }
  }
  p->depth--;
  if (p->failed) {
    expr_free(e);
    return NULL;
  }
  if (neg && e) {
    expr_t *n = expr_new(E_NOT);
    if (!n) {
      expr_free(e);
      return NULL;
    }
    n->a = e;
    e = n;
  }
  return e;
}

static expr_t *parse_binary(parser_t *p, bool is_or) {
  expr_t *l = is_or ? parse_binary(p, false) : parse_basic(p);
  const char *tok = is_or ? "||" : "&&";
  while (l && !p->failed) {
    size_t save = p->i;
    expr_t *r, *e;
    blanks(p);
    if (peek(p) != tok[0] || peek2(p) != tok[1]) {
      p->i = save;
      break;
    }
    p->i += 2;
    blanks(p);
    r = is_or ? parse_binary(p, false) : parse_basic(p);
    if (!r) {
      expr_free(l);
      return NULL;
    }
    e = expr_new(is_or ? E_OR : E_AND);
    if (!e) {
      expr_free(l);
      expr_free(r);
      return NULL;
    }
    e->a = l;
    e->b = r;
    l = e;
  }
  if (p->failed) {
    expr_free(l);
    return NULL;
  }
  return l;
}

static expr_t *parse_or(parser_t *p) { return parse_binary(p, true); }

static bool add_sel(parser_t *p, seg_t *g, sel_t s) {
  sel_t *ns = grow(g->s, g->n, sizeof *ns);
  if (!ns) {
    fail(p, "out of memory");
    free(s.name);
    expr_free(s.filter);
    return false;
  }
  g->s = ns;
  g->s[g->n++] = s;
  return true;
}

/* One selector inside [...]. */
static bool parse_selector(parser_t *p, seg_t *g) {
  sel_t s;
  char c = peek(p);
  memset(&s, 0, sizeof s);
  if (c == '\'' || c == '"') {
    s.k = S_NAME;
    s.name = parse_string(p, &s.nlen);
    if (!s.name)
      return false;
  } else if (c == '*') {
    s.k = S_WILD;
    p->i++;
  } else if (c == '?') {
    p->i++;
    blanks(p);
    s.k = S_FILTER;
    s.filter = parse_or(p);
    if (!s.filter)
      return false;
  } else if (c == ':' || c == '-' || (c >= '0' && c <= '9')) {
    s.k = S_INDEX;
    if (c != ':' && !parse_int(p, &s.idx))
      return false;
    blanks(p);
    if (peek(p) == ':') {
      s.k = S_SLICE;
      s.start = s.idx;
      s.has_start = c != ':';
      s.step = 1;
      p->i++;
      blanks(p);
      if (peek(p) == '-' || (peek(p) >= '0' && peek(p) <= '9')) {
        if (!parse_int(p, &s.end))
          return false;
        s.has_end = true;
        blanks(p);
      }
      if (peek(p) == ':') {
        p->i++;
        blanks(p);
        if (peek(p) == '-' || (peek(p) >= '0' && peek(p) <= '9')) {
          if (!parse_int(p, &s.step))
            return false;
        }
      }
    }
  } else {
    fail(p, "expected a selector: 'name', *, an index, a slice or ?filter");
    return false;
  }
  return add_sel(p, g, s);
}

static bool parse_bracket(parser_t *p, seg_t *g) {
  p->i++; /* [ */
  for (;;) {
    blanks(p);
    if (!parse_selector(p, g))
      return false;
    blanks(p);
    if (peek(p) == ',') {
      p->i++;
      continue;
    }
    if (peek(p) == ']') {
      p->i++;
      return true;
    }
    fail(p, "expected ',' or ']'");
    return false;
  }
}

static bool parse_shorthand(parser_t *p, seg_t *g) {
  sel_t s;
  size_t st = p->i;
  memset(&s, 0, sizeof s);
  if (peek(p) == '*') {
    p->i++;
    s.k = S_WILD;
    return add_sel(p, g, s);
  }
  if (!name_first((unsigned char)peek(p))) {
    fail(p, "expected a member name or * after '.' (quote other names: "
            "['a-b'])");
    return false;
  }
  while (name_char((unsigned char)peek(p)))
    p->i++;
  s.k = S_NAME;
  s.nlen = p->i - st;
  s.name = malloc(s.nlen + 1);
  if (!s.name) {
    fail(p, "out of memory");
    return false;
  }
  memcpy(s.name, p->s + st, s.nlen);
  s.name[s.nlen] = '\0';
  return add_sel(p, g, s);
}

static query_t *parse_query(parser_t *p) {
  query_t *q = calloc(1, sizeof *q);
  if (!q) {
    fail(p, "out of memory");
    return NULL;
  }
  q->rel = peek(p) == '@';
  p->i++;
  while (!p->failed) {
    char c = after_blanks(p);
    seg_t g;
    seg_t *ng;
    memset(&g, 0, sizeof g);
    if (c != '.' && c != '[')
      break;
    blanks(p);
    if (c == '.' && peek2(p) == '.') {
      p->i += 2;
      g.desc = true;
      if (peek(p) == '[')
        parse_bracket(p, &g);
      else
        parse_shorthand(p, &g);
    } else if (c == '.') {
      p->i++;
      parse_shorthand(p, &g);
    } else {
      parse_bracket(p, &g);
    }
    ng = p->failed ? NULL : grow(q->g, q->n, sizeof *ng);
    if (!ng) {
      for (size_t j = 0; j < g.n; j++) {
        free(g.s[j].name);
        expr_free(g.s[j].filter);
      }
      free(g.s);
      fail(p, "out of memory");
      break;
    }
    q->g = ng;
    q->g[q->n++] = g;
  }
  if (p->failed) {
    query_free(q);
    return NULL;
  }
  return q;
}

bool er_jsonpath_is(const char *s) {
  return s && s[0] == '$' && (s[1] == '\0' || s[1] == '.' || s[1] == '[');
}

er_jsonpath_t *er_jsonpath_compile(const char *text, char *msg, size_t msgsz) {
  parser_t p;
  er_jsonpath_t *jp;
  memset(&p, 0, sizeof p);
  p.s = text ? text : "";
  p.len = strlen(p.s);
  p.msg = msg;
  p.msgsz = msgsz;
  if (peek(&p) != '$') {
    fail(&p, "a JSONPath starts with '$'");
    return NULL;
  }
  jp = calloc(1, sizeof *jp);
  if (!jp)
    return NULL;
  jp->q = parse_query(&p);
  if (jp->q && p.i < p.len && !p.failed)
    fail(&p, "unexpected '%c'", peek(&p));
  if (p.failed || !jp->q) {
    if (!p.failed)
      fail(&p, "out of memory");
    er_jsonpath_free(jp);
    return NULL;
  }
  return jp;
}

bool er_jsonpath_singular(const er_jsonpath_t *p) {
  return p && singular(p->q);
}

/* ---- evaluation -------------------------------------------------------- */

typedef struct node {
  const json_t *v;
  char *ptr; /* NULL unless paths are kept */
} node_t;

typedef struct nlist {
  node_t *a;
  size_t n;
  bool paths;
  bool oom;
} nlist_t;

static void nl_free(nlist_t *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->a[i].ptr);
  free(l->a);
  l->a = NULL;
  l->n = 0;
}

static void nl_add(nlist_t *l, const json_t *v, const char *parent,
                   const char *name, long long idx) {
  node_t *na;
  char *ptr = NULL;
  if (l->oom)
    return;
  na = grow(l->a, l->n, sizeof *na);
  if (!na) {
    l->oom = true;
    return;
  }
  l->a = na;
  if (l->paths) {
    er_buf_t b = ER_BUF_INIT(1u << 20);
    er_buf_puts(&b, parent ? parent : "");
    if (name)
      er_jpos_append_token(&b, name);
    else if (idx >= 0)
      er_buf_printf(&b, "/%lld", idx);
    er_buf_cstr(&b);
    ptr = er_buf_steal(&b);
    er_buf_free(&b);
    if (!ptr) {
      l->oom = true;
      return;
    }
  }
  l->a[l->n].v = v;
  l->a[l->n].ptr = ptr;
  l->n++;
}

static bool eval_logical(const expr_t *e, const json_t *root,
                         const json_t *cur);

static long long norm_index(long long i, long long len) {
  return i >= 0 ? i : len + i;
}

static long long clamp(long long v, long long lo, long long hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* Applies one selector to node (v at ptr), appending to out. */
static void apply_sel(const sel_t *s, const json_t *v, const char *ptr,
                      const json_t *root, nlist_t *out) {
  switch (s->k) {
  case S_NAME:
    if (json_is_object(v)) {
      const json_t *m = json_object_getn(v, s->name, s->nlen);
      if (m)
        nl_add(out, m, ptr, s->name, -1);
    }
    break;
  case S_WILD:
  case S_FILTER:
    if (json_is_array(v)) {
      for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *el = json_array_get(v, i);
        if (s->k == S_WILD || eval_logical(s->filter, root, el))
          nl_add(out, el, ptr, NULL, (long long)i);
      }
    } else if (json_is_object(v)) {
      const char *k;
      json_t *m;
      json_object_foreach((json_t *)v, k, m) {
        if (s->k == S_WILD || eval_logical(s->filter, root, m))
          nl_add(out, m, ptr, k, -1);
      }
    }
    break;
  case S_INDEX:
    if (json_is_array(v)) {
      long long len = (long long)json_array_size(v);
      long long i = norm_index(s->idx, len);
      if (i >= 0 && i < len)
        nl_add(out, json_array_get(v, (size_t)i), ptr, NULL, i);
    }
    break;
  case S_SLICE: {
    long long len, step = s->step, lo, hi;
    if (!json_is_array(v) || step == 0)
      break;
    len = (long long)json_array_size(v);
    if (step > 0) {
      lo = clamp(s->has_start ? norm_index(s->start, len) : 0, 0, len);
      hi = clamp(s->has_end ? norm_index(s->end, len) : len, 0, len);
      for (long long i = lo; i < hi; i += step)
        nl_add(out, json_array_get(v, (size_t)i), ptr, NULL, i);
    } else {
      hi = clamp(s->has_start ? norm_index(s->start, len) : len - 1, -1,
                 len - 1);
      lo = clamp(s->has_end ? norm_index(s->end, len) : -len - 1, -1, len - 1);
      for (long long i = hi; lo < i; i += step)
        nl_add(out, json_array_get(v, (size_t)i), ptr, NULL, i);
    }
    break;
  }
  }
}

/* The node and its descendants, pre-order, each with every selector. */
static void apply_desc(const seg_t *g, const json_t *v, const char *ptr,
                       const json_t *root, nlist_t *out) {
  for (size_t k = 0; k < g->n; k++)
    apply_sel(&g->s[k], v, ptr, root, out);
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      char *cp = out->paths ? er_jpos_child_index(ptr ? ptr : "", i) : NULL;
      if (out->paths && !cp) {
        out->oom = true;
        return;
      }
      apply_desc(g, json_array_get(v, i), cp, root, out);
      free(cp);
    }
  } else if (json_is_object(v)) {
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)v, k, m) {
      char *cp = out->paths ? er_jpos_child(ptr ? ptr : "", k) : NULL;
      if (out->paths && !cp) {
        out->oom = true;
        return;
      }
      apply_desc(g, m, cp, root, out);
      free(cp);
    }
  }
}

static void eval_query(const query_t *q, const json_t *root, const json_t *cur,
                       nlist_t *out) {
  nlist_t a = {NULL, 0, out->paths, false};
  nl_add(&a, q->rel ? cur : root, "", NULL, -1);
  for (size_t i = 0; i < q->n && !a.oom; i++) {
    nlist_t b = {NULL, 0, out->paths, false};
    for (size_t j = 0; j < a.n; j++) {
      if (q->g[i].desc)
        apply_desc(&q->g[i], a.a[j].v, a.a[j].ptr, root, &b);
      else
        for (size_t k = 0; k < q->g[i].n; k++)
          apply_sel(&q->g[i].s[k], a.a[j].v, a.a[j].ptr, root, &b);
    }
    nl_free(&a);
    a = b;
  }
  if (a.oom)
    out->oom = true;
  nl_free(out);
  *out = a;
}

/* A value of a comparison or a function argument: v (NULL: Nothing),
 * own holds a reference to release. */
typedef struct val {
  const json_t *v;
  json_t *own;
} val_t;

static val_t eval_value(const expr_t *e, const json_t *root, const json_t *cur);

static size_t utf8_len(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80)
      c++;
  return c;
}

static bool re_test(const expr_t *e, const json_t *root, const json_t *cur) {
  val_t s = eval_value(e->args[0], root, cur);
  val_t r = eval_value(e->args[1], root, cur);
  bool ok = false;
  if (json_is_string(s.v) && json_is_string(r.v) && !er_big_digits(s.v) &&
      strlen(json_string_value(s.v)) == json_string_length(s.v)) {
    if (e->re_ok) {
      ok = regexec(&e->re, json_string_value(s.v), 0, NULL, 0) == 0;
    } else {
      er_buf_t pat = ER_BUF_INIT(1u << 20);
      regex_t re;
      if (e->f == F_MATCH)
        er_buf_printf(&pat, "^(%s)$", json_string_value(r.v));
      else
        er_buf_puts(&pat, json_string_value(r.v));
      if (regcomp(&re, er_buf_cstr(&pat), REG_EXTENDED | REG_NOSUB) == 0) {
        ok = regexec(&re, json_string_value(s.v), 0, NULL, 0) == 0;
        regfree(&re);
      }
      er_buf_free(&pat);
    }
  }
  json_decref(s.own);
  json_decref(r.own);
  return ok;
}

static val_t eval_func(const expr_t *e, const json_t *root, const json_t *cur) {
  val_t out = {NULL, NULL};
  switch (e->f) {
  case F_LENGTH: {
    val_t a = eval_value(e->args[0], root, cur);
    if (er_big_digits(a.v))
      ; /* a number has no length */
    else if (json_is_string(a.v))
      out.own = json_integer((json_int_t)utf8_len(json_string_value(a.v),
                                                  json_string_length(a.v)));
    else if (json_is_array(a.v))
      out.own = json_integer((json_int_t)json_array_size(a.v));
    else if (json_is_object(a.v))
      out.own = json_integer((json_int_t)json_object_size(a.v));
    json_decref(a.own);
    break;
  }
  case F_COUNT:
  case F_VALUE: {
    nlist_t l = {NULL, 0, false, false};
    eval_query(e->args[0]->q, root, cur, &l);
    if (e->f == F_COUNT)
      out.own = json_integer((json_int_t)l.n);
    else if (l.n == 1)
      out.own = json_incref((json_t *)l.a[0].v);
    nl_free(&l);
    break;
  }
  case F_MATCH:
  case F_SEARCH:
    out.own = json_boolean(re_test(e, root, cur));
    break;
  }
  out.v = out.own;
  return out;
}

static val_t eval_value(const expr_t *e, const json_t *root,
                        const json_t *cur) {
  val_t out = {NULL, NULL};
  if (e->k == E_LIT) {
    out.v = e->lit;
  } else if (e->k == E_QUERY) {
    nlist_t l = {NULL, 0, false, false};
    eval_query(e->q, root, cur, &l);
    if (l.n == 1)
      out.v = l.a[0].v; /* a node of root or cur: lives as long as they do */
    nl_free(&l);
  } else if (e->k == E_FUNC) {
    out = eval_func(e, root, cur);
  }
  return out;
}

/* RFC 9535 equality: numbers by value, the rest by type and content. */
static bool jp_equal(const json_t *a, const json_t *b) {
  er_num_t x, y;
  bool na = er_num_of(a, false, &x), nb = er_num_of(b, false, &y);
  if (na || nb)
    return na && nb && er_num_cmp(&x, &y) == 0;
  if (json_typeof(a) != json_typeof(b))
    return false;
  switch (json_typeof(a)) {
  case JSON_STRING:
    return json_string_length(a) == json_string_length(b) &&
           memcmp(json_string_value(a), json_string_value(b),
                  json_string_length(a)) == 0;
  case JSON_ARRAY:
    if (json_array_size(a) != json_array_size(b))
      return false;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!jp_equal(json_array_get(a, i), json_array_get(b, i)))
        return false;
    return true;
  case JSON_OBJECT: {
    const char *k;
    json_t *va;
    if (json_object_size(a) != json_object_size(b))
      return false;
    json_object_foreach((json_t *)a, k, va) {
      const json_t *vb = json_object_get(b, k);
      if (!vb || !jp_equal(va, vb))
        return false;
    }
    return true;
  }
  default:
    return true;
  }
}

/* a < b: numbers and strings only. */
static bool jp_less(const json_t *a, const json_t *b) {
  er_num_t x, y;
  if (er_num_of(a, false, &x) && er_num_of(b, false, &y))
    return er_num_cmp(&x, &y) < 0;
  if (json_is_string(a) && json_is_string(b) && !er_big_digits(a) &&
      !er_big_digits(b)) {
    size_t la = json_string_length(a), lb = json_string_length(b);
    int c =
        memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
    return c < 0 || (c == 0 && la < lb);
  }
  return false;
}

static bool compare(op_t op, const json_t *a, const json_t *b) {
  bool eq = (!a || !b) ? a == b : jp_equal(a, b);
  switch (op) {
  case OP_EQ:
    return eq;
  case OP_NE:
    return !eq;
  case OP_LT:
    return a && b && jp_less(a, b);
  case OP_LE:
    return eq || (a && b && jp_less(a, b));
  case OP_GT:
    return a && b && jp_less(b, a);
  case OP_GE:
    return eq || (a && b && jp_less(b, a));
  }
  return false;
}

static bool eval_logical(const expr_t *e, const json_t *root,
                         const json_t *cur) {
  switch (e->k) {
  case E_OR:
    return eval_logical(e->a, root, cur) || eval_logical(e->b, root, cur);
  case E_AND:
    return eval_logical(e->a, root, cur) && eval_logical(e->b, root, cur);
  case E_NOT:
    return !eval_logical(e->a, root, cur);
  case E_CMP: {
    val_t a = eval_value(e->a, root, cur), b = eval_value(e->b, root, cur);
    bool r = compare(e->op, a.v, b.v);
    json_decref(a.own);
    json_decref(b.own);
    return r;
  }
  case E_TEST:
    if (e->a->k == E_QUERY) {
      nlist_t l = {NULL, 0, false, false};
      bool some;
      eval_query(e->a->q, root, cur, &l);
      some = l.n > 0;
      nl_free(&l);
      return some;
    }
    return e->a->k == E_FUNC && re_test(e->a, root, cur);
  default:
    return false;
  }
}

int er_jsonpath_eval(const er_jsonpath_t *p, const json_t *root, json_t *values,
                     json_t *paths) {
  nlist_t l = {NULL, 0, paths != NULL, false};
  int rc = 0;
  if (!p || !root)
    return 0;
  eval_query(p->q, root, root, &l);
  if (l.oom)
    rc = -1;
  for (size_t i = 0; i < l.n && rc == 0; i++) {
    if (json_array_append(values, (json_t *)l.a[i].v) != 0)
      rc = -1;
    if (paths && json_array_append_new(paths, json_string(l.a[i].ptr)) != 0)
      rc = -1;
  }
  nl_free(&l);
  return rc;
}

/* ---- selection --------------------------------------------------------- */

int er_select(const json_t *root, const char *path, er_sel_t *out, char *msg,
              size_t msgsz) {
  memset(out, 0, sizeof *out);
  out->nodes = json_array();
  out->paths = json_array();
  if (!out->nodes || !out->paths) {
    snprintf(msg, msgsz, "out of memory");
    return -1;
  }
  if (!path) {
    snprintf(msg, msgsz, "no path");
    return -1;
  }
  if (er_jsonpath_is(path)) {
    er_jsonpath_t *jp = er_jsonpath_compile(path, msg, msgsz);
    int rc;
    out->is_path = true;
    if (!jp)
      return -1;
    rc = er_jsonpath_eval(jp, root, out->nodes, out->paths);
    er_jsonpath_free(jp);
    if (rc != 0)
      snprintf(msg, msgsz, "out of memory");
    return rc;
  }
  if (*path && *path != '/') {
    snprintf(msg, msgsz,
             "\"%s\" is neither a JSON pointer (\"/a/0\", \"\" for the whole "
             "value) nor a JSONPath (\"$.a[0]\")",
             path);
    return -1;
  }
  {
    json_t *v = root ? er_json_pointer(root, path) : NULL;
    if (v && (json_array_append(out->nodes, v) != 0 ||
              json_array_append_new(out->paths, json_string(path)) != 0)) {
      snprintf(msg, msgsz, "out of memory");
      return -1;
    }
  }
  return 0;
}

void er_sel_free(er_sel_t *s) {
  json_decref(s->nodes);
  json_decref(s->paths);
  s->nodes = s->paths = NULL;
}

const json_t *er_sel_value(const er_sel_t *s) {
  size_t n = json_array_size(s->nodes);
  if (n == 0)
    return NULL;
  if (n == 1)
    return json_array_get(s->nodes, 0);
  return s->nodes;
}

const char *er_sel_where(const er_sel_t *s) {
  if (json_array_size(s->paths) == 1)
    return json_string_value(json_array_get(s->paths, 0));
  return "";
}

const char *er_select_check(const char *path, char *msg, size_t msgsz) {
  er_jsonpath_t *jp;
  if (!path || !*path || *path == '/' || strstr(path, "${"))
    return NULL;
  if (!er_jsonpath_is(path)) {
    snprintf(msg, msgsz,
             "\"%s\" is neither a JSON pointer (\"/a/0\", \"\" for the whole "
             "value) nor a JSONPath (\"$.a[0]\")",
             path);
    return msg;
  }
  jp = er_jsonpath_compile(path, msg, msgsz);
  if (!jp)
    return msg;
  er_jsonpath_free(jp);
  return NULL;
}

bool er_sel_match(const er_sel_t *s, const json_t *expected, er_buf_t *why) {
  if (!s->is_path)
    return er_json_match_at(er_sel_value(s), expected, er_sel_where(s), why);
  return er_json_match_list(er_sel_value(s), s->nodes, s->paths, expected, why);
}
