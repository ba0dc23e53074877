/* fixture.c: where the files a scenario names are found (fixture.h). */
#include "lang/fixture.h"

#include "lang/action.h"
#include "lang/doc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA_MAX_BYTES (64u * 1024u * 1024u) /* a data fixture checked */

static char *join(const char *dir, const char *name) {
  char *p = NULL;
  if (!dir || !*dir || !strcmp(dir, "."))
    return er_strdup(name);
  if (asprintf(&p, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
               name) < 0)
    return NULL;
  return p;
}

static bool is_file(const char *p) {
  struct stat st;
  return p && stat(p, &st) == 0 && !S_ISDIR(st.st_mode);
}

static bool is_dir(const char *p) {
  struct stat st;
  return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

char *er_fixture_root(const char *root, const char *dir) {
  char *d;
  if (root && *root)
    return er_strdup(root);
  d = realpath(dir && *dir ? dir : ".", NULL);
  while (d) {
    char *f = join(*d ? d : "/", "fixtures");
    if (is_dir(f)) {
      free(d);
      return f;
    }
    free(f);
    if (!er_path_up(d))
      break;
  }
  free(d);
  return NULL;
}

/* root as shown: relative to the current folder when inside it */
static const char *shown(const char *root, char *cwd, size_t cwdsz) {
  size_t n;
  if (!getcwd(cwd, cwdsz))
    return root;
  n = strlen(cwd);
  if (strncmp(root, cwd, n) == 0 && root[n] == '/')
    return root + n + 1;
  return root;
}

char *er_fixture_find(const char *dir, const char *root, const char *name,
                      er_err_t *err) {
  char *p;
  char cwd[4096];
  if (!name || !*name) {
    er_errf(err, ER_E_INPUT, "an empty file name");
    return NULL;
  }
  if (name[0] == '/') {
    if (is_file(name))
      return er_strdup(name);
    er_errf(err, ER_E_INPUT, "file '%s' not found", name);
    return NULL;
  }
  p = join(dir, name);
  if (is_file(p))
    return p;
  free(p);
  if (root) {
    p = join(shown(root, cwd, sizeof cwd), name);
    if (is_file(p))
      return p;
    free(p);
    er_errf(err, ER_E_INPUT,
            "file '%s' not found in %s nor in the fixtures root %s", name,
            dir && *dir ? dir : ".", shown(root, cwd, sizeof cwd));
  } else {
    er_errf(err, ER_E_INPUT,
            "file '%s' not found in %s (and there is no fixtures root: no "
            "\"fixtures\" in the environment, no fixtures/ folder above)",
            name, dir && *dir ? dir : ".");
  }
  return NULL;
}

void er_fixture_ref(const er_diag_src_t *c, const char *ptr, const char *name,
                    unsigned types) {
  const er_fixture_dir_t *fd = c->ud;
  er_err_t err = {0};
  char *p = er_fixture_find(fd->dir, fd->root, name, &err);
  if (!p) {
    er_diag_err(c, ptr, false, "%s", err.msg);
    return;
  }
  if (types & ER_T_DATA) {
    int line, col;
    char *used = NULL;
    const char *saved = c->out->suffix;
    json_t *d;
    er_diag_pos(c, ptr, false, &line, &col);
    /* "(used at a.json:4:7)", or "(used at a.json:4:7, used at ...)" */
    if (asprintf(&used, "(used at %s:%d:%d%s%s", c->file, line, col,
                 saved && saved[0] == '(' ? ", " : ")",
                 saved && saved[0] == '(' ? saved + 1 : "") < 0)
      used = NULL;
    c->out->suffix = used ? used : saved;
    d = er_doc_load(p, DATA_MAX_BYTES, NULL, c->out);
    c->out->suffix = saved;
    json_decref(d);
    free(used);
  }
  free(p);
}
