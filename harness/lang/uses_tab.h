/* uses_tab.h: the table of step files and calls (uses.h), inside lang:
 * shared by uses.c (which fills it) and usetab.c (which reads it). */
#ifndef ER_USES_TAB_H
#define ER_USES_TAB_H

#include "lang/uses.h"

typedef struct er_use_call {
  const json_t *step;
  const er_stepfile_t *sf;
} er_use_call_t;

struct er_uses {
  int refs;
  er_stepfile_t **files;
  size_t nfiles, afiles;
  er_use_call_t *calls;
  size_t ncalls, acalls;
};

/* Registers a call of sf by step. Returns 0 or -1 (memory). */
int er_uses_add_call(er_uses_t *u, const json_t *step, const er_stepfile_t *sf);
/* A new entry for the step file at file (real: its real path), or NULL. */
er_stepfile_t *er_uses_add_file(er_uses_t *u, const char *file,
                                const char *real);
/* The entry for a real path, or NULL. */
er_stepfile_t *er_uses_by_real(const er_uses_t *u, const char *real);

#endif
