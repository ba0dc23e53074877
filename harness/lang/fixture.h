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

/* The fixtures root for a file in dir: root (absolute, from the
 * environment) when given, else the nearest "fixtures" folder at or above
 * dir, else NULL. Caller frees. */
char *er_fixture_root(const char *root, const char *dir);

/* The path of name as found from dir (then under root, which may be
 * NULL: no fallback). NULL with err (ER_E_INPUT) saying where it looked
 * when the file is in neither. Caller frees. */
char *er_fixture_find(const char *dir, const char *root, const char *name,
                      er_err_t *err);

#endif
