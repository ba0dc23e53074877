/* junit_read.h: reading JUnit XML reports back (libxml2), for choosing
 * what a run takes (--durations, --rerun-failed; run/select.h) and for
 * `eventrig merge-reports`.
 *
 * Any JUnit file is read (ours, or another producer's): every <testcase>
 * anywhere in the document, with its classname, name, file, time and
 * outcome (<failure>, <error>, <skipped> child). libxml2 reads it with
 * network access and entity expansion off (XML_PARSE_NONET; no DTD
 * loading), so a hostile report can neither reach out nor blow up.
 */
#ifndef ER_JUNIT_READ_H
#define ER_JUNIT_READ_H

#include <stddef.h>

#include "base/util.h"
#include "report/report.h"

typedef struct er_junit_case {
  char *classname; /* "" when absent; owned */
  char *name;      /* owned */
  char *file;      /* the file attribute, or NULL; owned */
  double time;     /* seconds; 0 when absent */
  er_res_status_t status;
} er_junit_case_t;

typedef struct er_junit_cases {
  er_junit_case_t *v;
  size_t n;
} er_junit_cases_t;

/* Every testcase of the report at path, in document order. Returns 0, or
 * -1 with err (ER_E_INPUT: unreadable or not XML, naming the file and
 * libxml2's line). */
int er_junit_read(const char *path, er_junit_cases_t *out, er_err_t *err);
void er_junit_cases_free(er_junit_cases_t *c);

/* Writes one report to out_path (atomically) holding the testcases of
 * every input report: one <testsuite> whose counts and time are the sums
 * of the inputs', testcases in the order of their file attribute (then
 * as read), so shards merge into the order of a serial run. A testcase
 * present twice (same classname, name and file) is an error
 * (ER_E_INPUT) naming both reports. *ncases gets the count. */
int er_junit_merge(const char *out_path, char *const *in, size_t nin,
                   size_t *ncases, er_err_t *err);

#endif
