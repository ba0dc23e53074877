/* jpos.c: see jpos.h.
 *
 * A recursive-descent scan (depth-limited like jansson's parser) that
 * never reads past len and stops at the first thing it does not
 * understand. Positions go into an array; a hash table (open addressing,
 * tombstones for members replaced by a later duplicate key) maps
 * pointers to entries. */
#include "lang/jpos.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048
#define SLOT_EMPTY UINT32_MAX
#define SLOT_GONE (UINT32_MAX - 1)
#define IDX_MAX (UINT32_MAX - 2) /* entries and arena bytes fit in 32 bits */
#define BIG_CAP (SIZE_MAX / 4)

/* Compact on purpose (a 100k-step scenario has ~500k values): pointers
 * live in one arena, entries and slots use 32-bit indices. */
typedef struct ent {
  uint32_t off;        /* of the pointer's text in the arena */
  uint32_t end;        /* one past the last entry of this value's subtree */
  int32_t kline, kcol; /* 0 when the value has no key */
  int32_t vline, vcol;
  bool dead; /* replaced by a later duplicate key */
} ent_t;

struct er_jpos {
  ent_t *e;
  size_t n, alloc;
  char *arena; /* NUL-terminated pointers, back to back */
  size_t alen, acap;
  uint32_t *slots;
  size_t nslots; /* power of two */
  size_t used;   /* live + tombstone slots */
};

static const char *ent_ptr(const er_jpos_t *p, size_t i) {
  return p->arena + p->e[i].off;
}

/* ---- hash table -------------------------------------------------------- */

static size_t hash_str(const char *s) {
  size_t h = (size_t)1469598103934665603ULL;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= (size_t)1099511628211ULL;
  }
  return h;
}

/* Slot holding pointer ptr, or SLOT_EMPTY. */
static size_t slot_find(const er_jpos_t *p, const char *ptr) {
  size_t mask, i;
  if (!p->nslots)
    return SLOT_EMPTY;
  mask = p->nslots - 1;
  i = hash_str(ptr) & mask;
  for (size_t probes = 0; probes < p->nslots; probes++) {
    uint32_t v = p->slots[i];
    if (v == SLOT_EMPTY)
      return SLOT_EMPTY;
    if (v != SLOT_GONE && strcmp(ent_ptr(p, v), ptr) == 0)
      return i;
    i = (i + 1) & mask;
  }
  return SLOT_EMPTY;
}

static void slot_put(uint32_t *slots, size_t nslots, const char *ptr,
                     size_t idx) {
  size_t mask = nslots - 1, i = hash_str(ptr) & mask;
  while (slots[i] != SLOT_EMPTY && slots[i] != SLOT_GONE)
    i = (i + 1) & mask;
  slots[i] = (uint32_t)idx;
}

static int rehash(er_jpos_t *p) {
  size_t n = p->nslots ? p->nslots * 2 : 64;
  uint32_t *s;
  size_t live = 0;
  for (size_t i = 0; i < p->n; i++)
    if (!p->e[i].dead)
      live++;
  while (n < live * 2)
    n *= 2;
  s = malloc(n * sizeof *s);
  if (!s)
    return -1;
  for (size_t i = 0; i < n; i++)
    s[i] = SLOT_EMPTY;
  for (size_t i = 0; i < p->n; i++)
    if (!p->e[i].dead)
      slot_put(s, n, ent_ptr(p, i), i);
  free(p->slots);
  p->slots = s;
  p->nslots = n;
  p->used = live;
  return 0;
}

/* Forgets entries [from, to) (an earlier duplicate member's subtree). */
static void kill_range(er_jpos_t *p, size_t from, size_t to) {
  for (size_t k = from; k < to && k < p->n; k++) {
    size_t s;
    if (p->e[k].dead)
      continue;
    s = slot_find(p, ent_ptr(p, k));
    if (s != SLOT_EMPTY && p->slots[s] == k)
      p->slots[s] = SLOT_GONE;
    p->e[k].dead = true;
  }
}

/* Copies ptr into the arena; its offset, or SIZE_MAX when out of memory
 * or past 32 bits. */
static size_t arena_add(er_jpos_t *p, const char *ptr) {
  size_t n = strlen(ptr) + 1, off = p->alen;
  if (n > IDX_MAX - p->alen)
    return SIZE_MAX;
  if (p->alen + n > p->acap) {
    size_t nc = p->acap ? p->acap : 4096;
    char *na;
    while (nc < p->alen + n)
      nc *= 2;
    na = realloc(p->arena, nc);
    if (!na)
      return SIZE_MAX;
    p->arena = na;
    p->acap = nc;
  }
  memcpy(p->arena + off, ptr, n);
  p->alen += n;
  return off;
}

/* Records a value at ptr; returns its index or SIZE_MAX when out of
 * memory. */
static size_t add_entry(er_jpos_t *p, const char *ptr, int kline, int kcol,
                        int vline, int vcol) {
  size_t s, idx, off;
  s = slot_find(p, ptr);
  if (s != SLOT_EMPTY) {
    size_t old = p->slots[s];
    kill_range(p, old, p->e[old].end > old ? p->e[old].end : old + 1);
  }
  if (p->n >= IDX_MAX)
    return SIZE_MAX;
  if (p->n == p->alloc) {
    size_t na = p->alloc ? p->alloc * 2 : 64;
    ent_t *ne = realloc(p->e, na * sizeof *ne);
    if (!ne)
      return SIZE_MAX;
    p->e = ne;
    p->alloc = na;
  }
  if ((p->used + 1) * 2 > p->nslots && rehash(p) != 0)
    return SIZE_MAX;
  off = arena_add(p, ptr);
  if (off == SIZE_MAX)
    return SIZE_MAX;
  idx = p->n++;
  p->e[idx] = (ent_t){
      (uint32_t)off, (uint32_t)(idx + 1), kline, kcol, vline, vcol, false};
  slot_put(p->slots, p->nslots, ptr, idx);
  p->used++;
  return idx;
}

/* ---- scanner ----------------------------------------------------------- */

typedef struct scan {
  const char *s;
  size_t len, i;
  int line, col; /* of s[i] */
  er_jpos_t *p;
  er_buf_t ptr;  /* pointer of the value being scanned */
  er_buf_t key;  /* decoded key */
  int max_depth; /* values deeper than this are scanned, not recorded */
  bool oom;
} scan_t;

static void adv(scan_t *sc) {
  unsigned char c;
  if (sc->i >= sc->len)
    return;
  c = (unsigned char)sc->s[sc->i++];
  if (c == '\n') {
    sc->line++;
    sc->col = 1;
  } else if ((c & 0xC0) != 0x80) {
    /* count a character on its first byte only (ASCII or a UTF-8 lead
     * byte, not a continuation byte): "é" is 2 bytes but 1 column */
    sc->col++;
  }
}

static void skip_ws(scan_t *sc) {
  while (sc->i < sc->len) {
    char c = sc->s[sc->i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      break;
    adv(sc);
  }
}

static int peek(const scan_t *sc) {
  return sc->i < sc->len ? (unsigned char)sc->s[sc->i] : -1;
}

/* Reads 4 hex digits after "\u"; -1 if malformed. */
static long read_hex4(scan_t *sc) {
  long v = 0;
  for (int k = 0; k < 4; k++) {
    int h = er_hexval(peek(sc));
    if (h < 0)
      return -1;
    v = v * 16 + h;
    adv(sc);
  }
  return v;
}

static void put_utf8(er_buf_t *b, unsigned long cp) {
  char o[4];
  size_t n;
  if (cp < 0x80) {
    o[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  er_buf_append(b, o, n);
}

/* Scans a string starting at '"'; decodes it into out unless NULL.
 * Returns 0, or -1 when it is malformed or unterminated. */
static int scan_string(scan_t *sc, er_buf_t *out) {
  if (peek(sc) != '"')
    return -1;
  adv(sc);
  for (;;) {
    int c = peek(sc);
    if (c < 0)
      return -1;
    if (c == '"') {
      adv(sc);
      return 0;
    }
    if (c != '\\') {
      /* a run of plain characters at once */
      size_t from = sc->i;
      while (sc->i < sc->len && sc->s[sc->i] != '"' && sc->s[sc->i] != '\\')
        adv(sc);
      if (out)
        er_buf_append(out, sc->s + from, sc->i - from);
      continue;
    }
    adv(sc);
    c = peek(sc);
    if (c < 0)
      return -1;
    adv(sc);
    if (c == 'u') {
      long cp = read_hex4(sc);
      if (cp < 0)
        return -1;
      if (cp >= 0xD800 && cp <= 0xDBFF && peek(sc) == '\\' &&
          sc->i + 1 < sc->len && sc->s[sc->i + 1] == 'u') {
        long lo;
        adv(sc);
        adv(sc);
        lo = read_hex4(sc);
        if (lo < 0)
          return -1;
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else {
          if (out)
            put_utf8(out, (unsigned long)cp);
          cp = lo;
        }
      }
      if (out)
        put_utf8(out, (unsigned long)cp);
      continue;
    }
    if (out) {
      char ch;
      switch (c) {
      case 'b':
        ch = '\b';
        break;
      case 'f':
        ch = '\f';
        break;
      case 'n':
        ch = '\n';
        break;
      case 'r':
        ch = '\r';
        break;
      case 't':
        ch = '\t';
        break;
      default: /* '"', '\\', '/' and anything jansson would reject */
        ch = (char)c;
        break;
      }
      er_buf_append(out, &ch, 1);
    }
  }
}

static int is_delim(int c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' ||
         c == ':' || c == '[' || c == ']' || c == '{' || c == '}' || c == '"';
}

static void ptr_truncate(er_buf_t *b, size_t len) {
  if (b->data && len <= b->len) {
    b->len = len;
    b->data[len] = '\0';
  }
}

static int scan_value(scan_t *sc, int depth, int kline, int kcol);

static int scan_object(scan_t *sc, int depth) {
  adv(sc); /* '{' */
  skip_ws(sc);
  if (peek(sc) == '}') {
    adv(sc);
    return 0;
  }
  for (;;) {
    int kline, kcol, rc;
    size_t base = sc->ptr.len;
    skip_ws(sc);
    kline = sc->line;
    kcol = sc->col;
    er_buf_reset(&sc->key);
    /* below max_depth nothing is recorded: no pointer to build */
    if (scan_string(sc, depth + 1 <= sc->max_depth ? &sc->key : NULL) != 0)
      return -1;
    skip_ws(sc);
    if (peek(sc) != ':')
      return -1;
    adv(sc);
    if (depth + 1 <= sc->max_depth &&
        (er_jpos_append_token(&sc->ptr, er_buf_cstr(&sc->key)) != 0 ||
         sc->ptr.truncated)) {
      sc->oom = true;
      return -1;
    }
    rc = scan_value(sc, depth + 1, kline, kcol);
    ptr_truncate(&sc->ptr, base);
    if (rc != 0)
      return -1;
    skip_ws(sc);
    if (peek(sc) == ',') {
      adv(sc);
      continue;
    }
    if (peek(sc) == '}') {
      adv(sc);
      return 0;
    }
    return -1;
  }
}

static int scan_array(scan_t *sc, int depth) {
  size_t idx = 0;
  adv(sc); /* '[' */
  skip_ws(sc);
  if (peek(sc) == ']') {
    adv(sc);
    return 0;
  }
  for (;;) {
    int rc;
    size_t base = sc->ptr.len;
    if (depth + 1 <= sc->max_depth &&
        (er_buf_printf(&sc->ptr, "/%zu", idx) != 0 || sc->ptr.truncated)) {
      sc->oom = true;
      return -1;
    }
    idx++;
    rc = scan_value(sc, depth + 1, 0, 0);
    ptr_truncate(&sc->ptr, base);
    if (rc != 0)
      return -1;
    skip_ws(sc);
    if (peek(sc) == ',') {
      adv(sc);
      continue;
    }
    if (peek(sc) == ']') {
      adv(sc);
      return 0;
    }
    return -1;
  }
}

static int scan_value(scan_t *sc, int depth, int kline, int kcol) {
  size_t idx;
  int c, rc = 0;
  if (depth > MAX_DEPTH)
    return -1;
  skip_ws(sc);
  c = peek(sc);
  if (c < 0)
    return -1;
  if (c == ',' || c == ':' || c == ']' || c == '}')
    return -1;
  if (depth <= sc->max_depth) {
    idx =
        add_entry(sc->p, er_buf_cstr(&sc->ptr), kline, kcol, sc->line, sc->col);
    if (idx == SIZE_MAX) {
      sc->oom = true;
      return -1;
    }
  } else {
    idx = SIZE_MAX; /* not recorded */
  }
  if (c == '{') {
    rc = scan_object(sc, depth);
  } else if (c == '[') {
    rc = scan_array(sc, depth);
  } else if (c == '"') {
    rc = scan_string(sc, NULL);
  } else {
    /* number, true, false, null (or garbage): up to a delimiter */
    while (sc->i < sc->len && !is_delim(peek(sc)))
      adv(sc);
  }
  if (idx != SIZE_MAX)
    sc->p->e[idx].end = (uint32_t)sc->p->n;
  return rc;
}

er_jpos_t *er_jpos_build(const char *text, size_t len) {
  return er_jpos_build_depth(text, len, MAX_DEPTH);
}

er_jpos_t *er_jpos_build_depth(const char *text, size_t len, int max_depth) {
  er_jpos_t *p = calloc(1, sizeof *p);
  scan_t sc;
  if (!p)
    return NULL;
  memset(&sc, 0, sizeof sc);
  sc.s = text ? text : "";
  sc.len = text ? len : 0;
  sc.line = 1;
  sc.col = 1;
  sc.p = p;
  sc.max_depth = max_depth;
  er_buf_init(&sc.ptr, BIG_CAP);
  er_buf_init(&sc.key, BIG_CAP);
  (void)scan_value(&sc, 0, 0, 0);
  er_buf_free(&sc.ptr);
  er_buf_free(&sc.key);
  if (sc.oom) {
    er_jpos_free(p);
    return NULL;
  }
  return p;
}

er_jpos_t *er_jpos_new(void) { return calloc(1, sizeof(er_jpos_t)); }

int er_jpos_add(er_jpos_t *p, const char *pointer, int kline, int kcol,
                int vline, int vcol) {
  if (!p || !pointer)
    return -1;
  return add_entry(p, pointer, kline, kcol, vline, vcol) == SIZE_MAX ? -1 : 0;
}

void er_jpos_free(er_jpos_t *p) {
  if (!p)
    return;
  free(p->e);
  free(p->arena);
  free(p->slots);
  free(p);
}

size_t er_jpos_count(const er_jpos_t *p) {
  size_t live = 0;
  if (!p)
    return 0;
  for (size_t i = 0; i < p->n; i++)
    if (!p->e[i].dead)
      live++;
  return live;
}

int er_jpos_find(const er_jpos_t *p, const char *pointer, bool key, int *line,
                 int *col) {
  char *tmp = NULL;
  int rc = -1;
  *line = 0;
  *col = 0;
  if (!p || !pointer)
    return -1;
  tmp = strdup(pointer);
  if (!tmp)
    return -1;
  for (int up = 0;; up++) {
    size_t s = slot_find(p, tmp);
    if (s != SLOT_EMPTY) {
      const ent_t *e = &p->e[p->slots[s]];
      if (key && e->kline > 0) {
        *line = e->kline;
        *col = e->kcol;
      } else {
        *line = e->vline;
        *col = e->vcol;
      }
      rc = up ? 1 : 0;
      break;
    }
    if (!*tmp)
      break;
    {
      char *slash = strrchr(tmp, '/');
      if (!slash)
        *tmp = '\0'; /* not a pointer: try the root */
      else
        *slash = '\0';
    }
  }
  free(tmp);
  return rc;
}

int er_jpos_append_token(er_buf_t *b, const char *token) {
  const char *t = token;
  if (er_buf_append(b, "/", 1) != 0)
    return -1;
  while (*t) {
    size_t n = strcspn(t, "~/"); /* a run that needs no escape */
    if (n && er_buf_append(b, t, n) != 0)
      return -1;
    t += n;
    if (*t) {
      if (er_buf_append(b, *t == '~' ? "~0" : "~1", 2) != 0)
        return -1;
      t++;
    }
  }
  return 0;
}

char *er_jpos_child(const char *base, const char *token) {
  er_buf_t b = ER_BUF_INIT(BIG_CAP);
  if (er_buf_puts(&b, base ? base : "") != 0 ||
      er_jpos_append_token(&b, token ? token : "") != 0) {
    er_buf_free(&b);
    return NULL;
  }
  if (b.len == 0)
    return er_strdup("");
  return er_buf_steal(&b);
}

char *er_jpos_child_index(const char *base, size_t index) {
  er_buf_t b = ER_BUF_INIT(BIG_CAP);
  if (er_buf_printf(&b, "%s/%zu", base ? base : "", index) != 0) {
    er_buf_free(&b);
    return NULL;
  }
  return er_buf_steal(&b);
}
