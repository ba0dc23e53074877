/* select.c: see select.h. */
#include "run/select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/junit_read.h"

int er_shard_parse(const char *s, int *k, int *n) {
  char *end = NULL;
  long a, b;
  if (!s)
    return -1;
  a = strtol(s, &end, 10);
  if (end == s || *end != '/')
    return -1;
  s = end + 1;
  b = strtol(s, &end, 10);
  if (end == s || *end != '\0' || b < 1 || b > 1000 || a < 1 || a > b)
    return -1;
  *k = (int)a;
  *n = (int)b;
  return 0;
}

static unsigned long long fnv1a(const char *s) {
  unsigned long long h = 1469598103934665603ULL;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

typedef struct job {
  size_t idx;
  double secs;
  const char *file;
} job_t;

static int cmp_job(const void *a, const void *b) {
  const job_t *x = a, *y = b;
  if (x->secs != y->secs)
    return x->secs > y->secs ? -1 : 1;
  return strcmp(x->file, y->file);
}

/* Seconds per scenario from an earlier report: the sum of the times of
 * its file's testcases; the mean of the known ones for the others. */
static int durations_of(er_scenario_t *const *v, size_t n, const char *path,
                        job_t *jobs, er_err_t *err) {
  er_junit_cases_t cs;
  double sum = 0;
  size_t known = 0;
  if (er_junit_read(path, &cs, err) != 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    jobs[i].idx = i;
    jobs[i].file = v[i]->relfile;
    jobs[i].secs = -1;
    for (size_t j = 0; j < cs.n; j++) {
      if (cs.v[j].file && !strcmp(cs.v[j].file, v[i]->relfile))
        jobs[i].secs = (jobs[i].secs < 0 ? 0 : jobs[i].secs) + cs.v[j].time;
    }
    if (jobs[i].secs >= 0) {
      sum += jobs[i].secs;
      known++;
    }
  }
  for (size_t i = 0; i < n; i++)
    if (jobs[i].secs < 0)
      jobs[i].secs = known ? sum / (double)known : 1.0;
  er_junit_cases_free(&cs);
  return 0;
}

int er_select_shard(er_scenario_t *const *v, size_t n, int k, int nshards,
                    const char *durations, bool *keep, er_err_t *err) {
  job_t *jobs = NULL;
  double *load = NULL;
  int rc = -1;
  if (!durations) {
    for (size_t i = 0; i < n; i++)
      keep[i] = (int)(fnv1a(v[i]->relfile) % (unsigned)nshards) == k - 1;
    return 0;
  }
  jobs = calloc(n ? n : 1, sizeof *jobs);
  load = calloc((size_t)nshards, sizeof *load);
  if (!jobs || !load) {
    er_errf(err, ER_E_ENV, "out of memory");
    goto out;
  }
  if (durations_of(v, n, durations, jobs, err) != 0)
    goto out;
  /* longest first, each to the least loaded shard (lowest on a tie) */
  qsort(jobs, n, sizeof *jobs, cmp_job);
  for (size_t i = 0; i < n; i++) {
    int best = 0;
    for (int s = 1; s < nshards; s++)
      if (load[s] < load[best])
        best = s;
    load[best] += jobs[i].secs;
    keep[jobs[i].idx] = best == k - 1;
  }
  rc = 0;
out:
  free(jobs);
  free(load);
  return rc;
}

int er_select_rerun(er_scenario_t *const *v, size_t n, const char *path,
                    bool *keep, size_t *nfailed, er_err_t *err) {
  er_junit_cases_t cs;
  *nfailed = 0;
  if (er_junit_read(path, &cs, err) != 0)
    return -1;
  for (size_t i = 0; i < n; i++)
    keep[i] = false;
  for (size_t j = 0; j < cs.n; j++) {
    const er_junit_case_t *c = &cs.v[j];
    if (c->status != ER_RES_FAIL && c->status != ER_RES_ERROR)
      continue;
    (*nfailed)++;
    for (size_t i = 0; i < n; i++) {
      bool same = c->file ? !strcmp(c->file, v[i]->relfile)
                          : !strcmp(c->classname, v[i]->classname);
      if (same && !strcmp(c->name, v[i]->name))
        keep[i] = true;
    }
  }
  er_junit_cases_free(&cs);
  return 0;
}
