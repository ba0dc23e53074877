/* select.h: which of the loaded scenarios a run takes, besides --filter:
 *   --shard K/N        the K-th of N parts of the suite (1-based), each
 *                      scenario file in exactly one part: by a hash of its
 *                      repository-relative path, or, with --durations FILE
 *                      (an earlier JUnit report), balanced by its time
 *                      (longest first, each to the least loaded part);
 *                      CI_NODE_INDEX / CI_NODE_TOTAL (GitLab's parallel:)
 *                      give K/N when --shard is not used;
 *   --rerun-failed F   only the scenarios that failed or errored in the
 *                      JUnit report F.
 * Scenarios not taken are left out of the run and its report (so that
 * shards' reports merge without duplicates).
 */
#ifndef ER_SELECT_H
#define ER_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/util.h"
#include "lang/scenario.h"

/* Parses "K/N" (1 <= K <= N <= 1000). Returns 0, or -1. */
int er_shard_parse(const char *s, int *k, int *n);

/* keep[i] = whether scenario v[i] is in shard k of n. durations (may be
 * NULL) is an earlier JUnit report. Returns 0, or -1 with err when the
 * report cannot be read. */
int er_select_shard(er_scenario_t *const *v, size_t n, int k, int nshards,
                    const char *durations, bool *keep, er_err_t *err);

/* keep[i] = whether v[i] failed or errored in the report at path (matched
 * by file and name; by classname and name in a report without files).
 * *nfailed gets how many testcases of the report failed or errored. */
int er_select_rerun(er_scenario_t *const *v, size_t n, const char *path,
                    bool *keep, size_t *nfailed, er_err_t *err);

#endif
