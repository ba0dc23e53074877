/* fixture.h: where the files a scenario names are found.
 *
 * A relative name ("events/three-essays.jsonl", "../steps/x.step.json")
 * is looked up in the folder of the file that names it (the scenario, or
 * a step file), then under the fixtures root: the environment's
 * "fixtures" folder when it names one, else the nearest folder called
 * "fixtures" at or above the naming file's folder (symlinks resolved).
 * An absolute name is used as it is.
 */
#ifndef ER_FIXTURE_H
#define ER_FIXTURE_H

#include "base/util.h"
#include "lang/diags.h"

/* The fixtures root for a file in dir: root (absolute, from the
 * environment) when given, else the nearest "fixtures" folder at or above
 * dir, else NULL. Caller frees. */
char *er_fixture_root(const char *root, const char *dir);

/* The path of name as found from dir (then under root, which may be
 * NULL: no fallback). NULL with err (ER_E_INPUT) saying where it looked
 * when the file is in neither. Caller frees. */
char *er_fixture_find(const char *dir, const char *root, const char *name,
                      er_err_t *err);

/* Where the files one file names are found: its folder and the fixtures
 * root for it (er_fixture_root). Borrowed strings. */
typedef struct er_fixture_dir {
  const char *dir;
  char *root;
} er_fixture_dir_t;

/* er_diag_src_t.file_ref for a file validated with ud an
 * er_fixture_dir_t: the named file must be found; a data file (ER_T_DATA)
 * must parse, its problems reported in it with where it is used
 * ("(used at a.json:4:7)", and where that file is used when the source's
 * problems carry such a suffix already). */
void er_fixture_ref(const er_diag_src_t *c, const char *ptr, const char *name,
                    unsigned types);

#endif
