/* junit_read.c: see junit_read.h. */
#include "report/junit_read.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_OPTS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

/* An attribute as a new string ("" when absent, NULL if memory ran out). */
static char *attr_dup(xmlNode *n, const char *name) {
  xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
  char *out = er_strdup(v ? (const char *)v : "");
  xmlFree(v);
  return out;
}

static bool is_elem(const xmlNode *n, const char *name) {
  return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static er_res_status_t case_status(xmlNode *tc) {
  for (xmlNode *c = tc->children; c; c = c->next) {
    if (is_elem(c, "failure"))
      return ER_RES_FAIL;
    if (is_elem(c, "error"))
      return ER_RES_ERROR;
    if (is_elem(c, "skipped"))
      return ER_RES_SKIP;
  }
  return ER_RES_PASS;
}

static xmlDoc *read_doc(const char *path, er_err_t *err) {
  xmlDoc *doc = xmlReadFile(path, NULL, READ_OPTS);
  if (!doc) {
    const xmlError *e = xmlGetLastError();
    er_errf(err, ER_E_INPUT, "%s:%d: not a readable JUnit XML report%s%s", path,
            e ? e->line : 0, e && e->message ? ": " : "",
            e && e->message ? e->message : "");
    /* libxml2's messages end with a newline */
    if (err && strchr(err->msg, '\n'))
      *strchr(err->msg, '\n') = '\0';
  }
  return doc;
}

/* Calls fn for every testcase under n, in document order. */
typedef int (*case_fn)(void *ud, xmlNode *tc);
static int walk_cases(xmlNode *n, case_fn fn, void *ud) {
  for (; n; n = n->next) {
    if (is_elem(n, "testcase")) {
      if (fn(ud, n) != 0)
        return -1;
    } else if (n->type == XML_ELEMENT_NODE &&
               walk_cases(n->children, fn, ud) != 0) {
      return -1;
    }
  }
  return 0;
}

typedef struct collect {
  er_junit_cases_t *out;
  size_t alloc;
} collect_t;

static int collect_one(void *ud, xmlNode *tc) {
  collect_t *c = ud;
  er_junit_case_t *k;
  xmlChar *file = xmlGetProp(tc, (const xmlChar *)"file");
  char *t;
  if (c->out->n == c->alloc) {
    size_t na = c->alloc ? c->alloc * 2 : 64;
    er_junit_case_t *nv = realloc(c->out->v, na * sizeof *nv);
    if (!nv) {
      xmlFree(file);
      return -1;
    }
    c->out->v = nv;
    c->alloc = na;
  }
  k = &c->out->v[c->out->n];
  memset(k, 0, sizeof *k);
  k->classname = attr_dup(tc, "classname");
  k->name = attr_dup(tc, "name");
  k->file = file ? er_strdup((const char *)file) : NULL;
  t = attr_dup(tc, "time");
  k->time = t ? strtod(t, NULL) : 0;
  free(t);
  k->status = case_status(tc);
  xmlFree(file);
  if (!k->classname || !k->name || (file && !k->file)) {
    free(k->classname);
    free(k->name);
    free(k->file);
    return -1;
  }
  c->out->n++;
  return 0;
}

int er_junit_read(const char *path, er_junit_cases_t *out, er_err_t *err) {
  collect_t c = {out, 0};
  xmlDoc *doc;
  int rc = 0;
  memset(out, 0, sizeof *out);
  doc = read_doc(path, err);
  if (!doc)
    return -1;
  if (walk_cases(xmlDocGetRootElement(doc), collect_one, &c) != 0) {
    er_errf(err, ER_E_ENV, "%s: out of memory", path);
    er_junit_cases_free(out);
    rc = -1;
  }
  xmlFreeDoc(doc);
  return rc;
}

void er_junit_cases_free(er_junit_cases_t *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++) {
    free(c->v[i].classname);
    free(c->v[i].name);
    free(c->v[i].file);
  }
  free(c->v);
  memset(c, 0, sizeof *c);
}

/* ---- merge --------------------------------------------------------------- */

typedef struct mcase {
  xmlNode *node; /* a copy, owned until linked into the output */
  char *key;     /* file \x1f classname \x1f name */
  const char *from;
  size_t seq;
} mcase_t;

typedef struct merge {
  mcase_t *v;
  size_t n, alloc;
  const char *from;
  xmlDoc *out;
} merge_t;

static int merge_one(void *ud, xmlNode *tc) {
  merge_t *m = ud;
  char *f = attr_dup(tc, "file"), *cl = attr_dup(tc, "classname");
  char *nm = attr_dup(tc, "name");
  mcase_t *k;
  int rc = -1;
  if (!f || !cl || !nm)
    goto out;
  if (m->n == m->alloc) {
    size_t na = m->alloc ? m->alloc * 2 : 64;
    mcase_t *nv = realloc(m->v, na * sizeof *nv);
    if (!nv)
      goto out;
    m->v = nv;
    m->alloc = na;
  }
  k = &m->v[m->n];
  if (asprintf(&k->key, "%s\x1f%s\x1f%s", f, cl, nm) < 0)
    goto out;
  k->node = xmlDocCopyNode(tc, m->out, 1);
  if (!k->node) {
    free(k->key);
    goto out;
  }
  k->from = m->from;
  k->seq = m->n;
  m->n++;
  rc = 0;
out:
  free(f);
  free(cl);
  free(nm);
  return rc;
}

static int cmp_key(const void *a, const void *b) {
  const mcase_t *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c)
    return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* file part of a key (up to \x1f) compared, then read order */
static int cmp_file(const void *a, const void *b) {
  const mcase_t *x = a, *y = b;
  size_t lx = strcspn(x->key, "\x1f"), ly = strcspn(y->key, "\x1f");
  int c = strncmp(x->key, y->key, lx < ly ? lx : ly);
  if (c == 0 && lx != ly)
    c = lx < ly ? -1 : 1;
  if (c)
    return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static double suite_time(xmlNode *root) {
  for (xmlNode *n = root; n; n = n->next) {
    if (is_elem(n, "testsuites") || is_elem(n, "testsuite")) {
      char *t = attr_dup(n, "time");
      double v = t ? strtod(t, NULL) : 0;
      free(t);
      return v;
    }
  }
  return 0;
}

static void set_count(xmlNode *n, const char *name, size_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%zu", v);
  xmlSetProp(n, (const xmlChar *)name, (const xmlChar *)buf);
}

int er_junit_merge(const char *out_path, char *const *in, size_t nin,
                   size_t *ncases, er_err_t *err) {
  merge_t m = {0};
  xmlNode *suites = NULL, *suite = NULL;
  xmlChar *text = NULL;
  int len = 0, rc = -1;
  size_t fails = 0, errors = 0, skips = 0;
  double total = 0;
  char tbuf[32], ts[40], host[256] = "localhost";

  *ncases = 0;
  m.out = xmlNewDoc((const xmlChar *)"1.0");
  if (!m.out)
    goto oom;
  for (size_t i = 0; i < nin; i++) {
    xmlDoc *doc = read_doc(in[i], err);
    if (!doc)
      goto out;
    m.from = in[i];
    total += suite_time(xmlDocGetRootElement(doc));
    if (walk_cases(xmlDocGetRootElement(doc), merge_one, &m) != 0) {
      xmlFreeDoc(doc);
      goto oom;
    }
    xmlFreeDoc(doc);
  }
  /* duplicates: the same testcase in two reports (or twice in one) */
  if (m.n > 1)
    qsort(m.v, m.n, sizeof *m.v, cmp_key);
  for (size_t i = 1; i < m.n; i++) {
    if (!strcmp(m.v[i - 1].key, m.v[i].key)) {
      char *k = er_strdup(m.v[i].key);
      for (char *p = k; p && *p; p++)
        if (*p == '\x1f')
          *p = ' ';
      er_errf(err, ER_E_INPUT,
              "testcase \"%s\" (file, classname, name) is in %s and in %s: "
              "the reports overlap",
              k ? k : "?", m.v[i - 1].from, m.v[i].from);
      free(k);
      goto out;
    }
  }
  if (m.n > 1)
    qsort(m.v, m.n, sizeof *m.v, cmp_file);
  suites = xmlNewNode(NULL, (const xmlChar *)"testsuites");
  suite = suites ? xmlNewChild(suites, NULL, (const xmlChar *)"testsuite", NULL)
                 : NULL;
  if (!suite)
    goto oom;
  xmlDocSetRootElement(m.out, suites);
  for (size_t i = 0; i < m.n; i++) {
    er_res_status_t st = case_status(m.v[i].node);
    fails += st == ER_RES_FAIL;
    errors += st == ER_RES_ERROR;
    skips += st == ER_RES_SKIP;
    xmlAddChild(suite, m.v[i].node);
    m.v[i].node = NULL;
  }
  snprintf(tbuf, sizeof tbuf, "%.3f", total);
  er_rfc3339_now(ts);
  if (gethostname(host, sizeof host) != 0)
    snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  xmlSetProp(suites, (const xmlChar *)"name", (const xmlChar *)"eventrig");
  set_count(suites, "tests", m.n);
  set_count(suites, "failures", fails);
  set_count(suites, "errors", errors);
  xmlSetProp(suites, (const xmlChar *)"time", (const xmlChar *)tbuf);
  xmlSetProp(suite, (const xmlChar *)"name", (const xmlChar *)"eventrig");
  set_count(suite, "tests", m.n);
  set_count(suite, "failures", fails);
  set_count(suite, "errors", errors);
  set_count(suite, "skipped", skips);
  xmlSetProp(suite, (const xmlChar *)"time", (const xmlChar *)tbuf);
  xmlSetProp(suite, (const xmlChar *)"timestamp", (const xmlChar *)ts);
  xmlSetProp(suite, (const xmlChar *)"hostname", (const xmlChar *)host);
  xmlDocDumpFormatMemoryEnc(m.out, &text, &len, "UTF-8", 1);
  if (!text)
    goto oom;
  if (er_write_file_atomic(out_path, (const char *)text, (size_t)len, err) != 0)
    goto out;
  *ncases = m.n;
  rc = 0;
  goto out;
oom:
  er_errf(err, ER_E_ENV, "merge-reports: out of memory");
out:
  xmlFree(text);
  for (size_t i = 0; i < m.n; i++) {
    xmlFreeNode(m.v[i].node);
    free(m.v[i].key);
  }
  free(m.v);
  xmlFreeDoc(m.out);
  return rc;
}
