/* main.c: the command line only; runner.c does the work. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/redact.h"
#include "base/util.h"
#include "report/junit_read.h"
#include "report/report.h"
#include "run/audit.h"
#include "run/runner.h"

#define ER_VERSION "0.1.0"

static const char *const g_usage =
    "eventrig " ER_VERSION
    ": end-to-end scenarios for services on Kafka, Redis, Postgres and HTTP\n"
    "\n"
    "Usage:\n"
    "  eventrig run [options] PATH...      run scenarios (files or folders)\n"
    "  eventrig validate [--env FILE] PATH...\n"
    "                                      check files, report every problem\n"
    "  eventrig list [--filter EXPR] PATH...\n"
    "                                      list scenarios: file, name, tags\n"
    "  eventrig merge-reports OUT IN...    one JUnit report from several\n"
    "                                      (shards'); a testcase in two is\n"
    "                                      an error\n"
    "  eventrig audit --env FILE           report stale state earlier runs\n"
    "                                      left (idempotency keys, consumer\n"
    "                                      lag), without starting services;\n"
    "                                      exit 0 clean, 1 stale, 3 server\n"
    "                                      unreachable\n"
    "  eventrig --help | --version\n"
    "\n"
    "Options of run:\n"
    "  -e, --env FILE        environment file: servers, services to start,\n"
    "                        what may be cleaned (default: $EVENTRIG_ENV,\n"
    "                        else eventrig.env.json (.yaml, .yml) in the\n"
    "                        current folder or the nearest parent that\n"
    "                        has one)\n"
    "      --junit PATH      JUnit XML report (default: REPORT_DIR/junit.xml)\n"
    "      --html FILE       also a self-contained HTML report: each\n"
    "                        scenario's steps on a timeline, failures with\n"
    "                        their verdict\n"
    "      --json FILE       also the results as JSON (shape in the README)\n"
    "  -r, --report-dir DIR  where reports and logs go (default: reports)\n"
    "  -f, --filter EXPR     run only matching scenarios; EXPR is a comma\n"
    "                        list of terms: tag:NAME, name:TEXT, TEXT (in\n"
    "                        name or file), !TERM excludes\n"
    "  -j, --jobs N          run up to N scenarios at once (default 1); one\n"
    "                        that stops services, sets faults, contends or\n"
    "                        resets offsets (or says \"exclusive\": true)\n"
    "                        runs alone; reports keep the serial order\n"
    "  -x, --fail-fast       skip the remaining scenarios after a failure\n"
    "  -v, --verbose         print each scenario's step log\n"
    "  -n, --dry-run         print each scenario's resolved plan (steps,\n"
    "                        every cleaning action, its target and whether\n"
    "                        the environment allows it); start nothing,\n"
    "                        connect to nothing\n"
    "      --shard K/N       run the K-th of N parts of the suite (default\n"
    "                        from CI_NODE_INDEX/CI_NODE_TOTAL when set)\n"
    "      --durations FILE  balance the shards by the times in this\n"
    "                        earlier JUnit report (else by a path hash)\n"
    "      --rerun-failed FILE\n"
    "                        run only what failed or errored in FILE\n"
    "      --color WHEN      auto (default: on a terminal, or when\n"
    "                        FORCE_COLOR is set), always, never\n"
    "\n"
    "Exit codes:\n"
    "  0 all passed   1 a scenario failed   2 unusable input (scenario,\n"
    "  environment file, flags)   3 unusable environment (a server or\n"
    "  service could not be reached or started, or a step would write to\n"
    "  a target not marked as a test target)   5 --filter selected no\n"
    "  scenario   130/143 interrupted\n"
    "\n"
    "Colour: --color, else FORCE_COLOR (set, not 0) forces it, NO_COLOR\n"
    "turns it off, else only on a terminal.\n"
    "Docs: README.md (scenario and environment format, reading failures).\n";

static void on_signal(int signo) {
  if (er_interrupt_signal()) {
    /* second signal: stop now; children die with us (PDEATHSIG) */
    signal(signo, SIG_DFL);
    raise(signo);
    return;
  }
  er_set_interrupted(signo);
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* looked for in this order in each folder */
static const char *const g_default_env[] = {
    "eventrig.env.json", "eventrig.env.yaml", "eventrig.env.yml"};

/* The environment file to use without --env: $EVENTRIG_ENV, else the
 * nearest eventrig.env.json (.yaml, .yml) from the current folder up.
 * Returns 0 with
 * its path in out, or -1 (out: the folder the search started from). */
static int find_default_env(char *out, size_t outsz) {
  const char *ev = getenv("EVENTRIG_ENV");
  char *dir = getcwd(NULL, 0);
  int rc = -1;
  if (ev && *ev) {
    snprintf(out, outsz, "%s", ev);
    free(dir);
    return 0;
  }
  snprintf(out, outsz, "%s", dir ? dir : ".");
  for (char *d = dir; d && *d && rc != 0;) {
    char cand[4096];
    for (size_t i = 0; i < 3 && rc != 0; i++) {
      snprintf(cand, sizeof cand, "%s/%s", strcmp(d, "/") ? d : "",
               g_default_env[i]);
      if (access(cand, R_OK) == 0) {
        snprintf(out, outsz, "%s", cand);
        rc = 0;
      }
    }
    if (rc == 0 || !er_path_up(d))
      break;
  }
  free(dir);
  return rc;
}

static int usage_error(const char *fmt, const char *arg);

/* eventrig merge-reports OUT IN...: 0, 2 on bad input (unreadable report,
 * a testcase in two reports), 3 when OUT cannot be written. */
static int merge_reports(int argc, char **argv) {
  er_err_t err = {0};
  size_t n = 0;
  if (argc < 2)
    return usage_error("%s", "merge-reports needs OUT and at least one IN");
  if (er_junit_merge(argv[0], argv + 1, (size_t)(argc - 1), &n, &err) != 0) {
    fprintf(stderr, "eventrig: merge-reports: %s\n", err.msg);
    return err.code == ER_E_INPUT ? 2 : 3;
  }
  printf("merged %zu testcase(s) from %d report(s) into %s\n", n, argc - 1,
         argv[0]);
  return 0;
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "eventrig: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry 'eventrig --help'.\n");
  return 2;
}

/* Runs the command with stderr (and o->err) scrubbed of every recorded
 * secret (redact.h); the console scrubs stdout itself. */
static int run_command(const char *cmd, er_run_opts_t *o) {
  FILE *under = stderr, *red = er_redact_stream(under);
  int rc;
  if (red) {
    stderr = red;
    o->err = red;
  }
  if (!strcmp(cmd, "validate")) {
    rc = er_validate(o);
  } else if (!strcmp(cmd, "list")) {
    rc = er_list(o);
  } else {
    install_signals();
    rc = er_run(o);
  }
  if (red) {
    stderr = under;
    fclose(red);
  }
  er_secrets_clear();
  return rc;
}

/* -1 when cmd is a command main goes on with (run, validate, list, audit),
 * else 2 after saying so (with a suggestion when one is close). */
static int check_command(const char *cmd) {
  static const char *const cmds[] = {"run", "validate", "list", "audit",
                                     "merge-reports"};
  const char *dym;
  if (!strcmp(cmd, "run") || !strcmp(cmd, "validate") || !strcmp(cmd, "list") ||
      !strcmp(cmd, "audit"))
    return -1;
  dym = er_did_you_mean(cmd, cmds, 5);
  if (dym) {
    fprintf(stderr,
            "eventrig: unknown command '%s' (did you mean '%s'?)\nTry "
            "'eventrig --help'.\n",
            cmd, dym);
    return 2;
  }
  return usage_error("unknown command '%s'", cmd);
}

/* Applies the option getopt_long returned as c to o: -1 to go on, else
 * the exit code (0 after --help or --version, 2 on a bad option). */
static int apply_option(int c, char **argv, er_run_opts_t *o) {
  switch (c) {
  case 'e':
    o->env_path = optarg;
    break;
  case 'J':
    o->junit_path = optarg;
    break;
  case 'S':
    o->shard = optarg;
    break;
  case 'D':
    o->durations = optarg;
    break;
  case 'R':
    o->rerun_failed = optarg;
    break;
  case 'O':
    o->json_path = optarg;
    break;
  case 'j': {
    char *end = NULL;
    long j = strtol(optarg, &end, 10);
    if (end == optarg || *end || j < 1 || j > 64)
      return usage_error("-j/--jobs takes a number from 1 to 64, not '%s'",
                         optarg);
    o->jobs = (int)j;
    break;
  }
  case 'H':
    o->html_path = optarg;
    break;
  case 'C':
    if (!strcmp(optarg, "auto"))
      o->color = ER_COLOR_AUTO;
    else if (!strcmp(optarg, "always"))
      o->color = ER_COLOR_ALWAYS;
    else if (!strcmp(optarg, "never"))
      o->color = ER_COLOR_NEVER;
    else
      return usage_error("--color takes auto, always or never, not '%s'",
                         optarg);
    break;
  case 'r':
    o->report_dir = optarg;
    break;
  case 'f':
    o->filter = optarg;
    break;
  case 'x':
    o->fail_fast = true;
    break;
  case 'v':
    o->verbose = true;
    break;
  case 'n':
    o->dry_run = true;
    break;
  case 'h':
    fputs(g_usage, stdout);
    return 0;
  case 'V':
    puts("eventrig " ER_VERSION);
    return 0;
  case ':':
    return usage_error("option '%s' needs a value", argv[optind - 1]);
  default:
    return usage_error("unknown option '%s'", argv[optind - 1]);
  }
  return -1;
}

/* The options after the command into o: -1 to go on, else the exit code
 * (apply_option's). Leaves optind at the first path. */
static int parse_options(int argc, char **argv, er_run_opts_t *o) {
  static const struct option longopts[] = {
      {"env", required_argument, NULL, 'e'},
      {"junit", required_argument, NULL, 'J'},
      {"color", required_argument, NULL, 'C'},
      {"shard", required_argument, NULL, 'S'},
      {"durations", required_argument, NULL, 'D'},
      {"rerun-failed", required_argument, NULL, 'R'},
      {"json", required_argument, NULL, 'O'},
      {"html", required_argument, NULL, 'H'},
      {"jobs", required_argument, NULL, 'j'},
      {"colour", required_argument, NULL, 'C'},
      {"report-dir", required_argument, NULL, 'r'},
      {"filter", required_argument, NULL, 'f'},
      {"fail-fast", no_argument, NULL, 'x'},
      {"verbose", no_argument, NULL, 'v'},
      {"dry-run", no_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  int c;
  optind = 2;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":e:r:f:j:xvnhV", longopts, NULL)) !=
         -1) {
    int rc = apply_option(c, argv, o);
    if (rc >= 0)
      return rc;
  }
  return -1;
}

/* What the options leave unsaid: the shard from CI_NODE_INDEX and
 * CI_NODE_TOTAL, the environment file found by find_default_env. -1 to go
 * on, else the exit code (2). */
static int apply_defaults(const char *cmd, er_run_opts_t *o) {
  if (!o->shard && !strcmp(cmd, "run")) { /* GitLab's parallel: */
    static char shard[64];
    const char *ki = getenv("CI_NODE_INDEX"), *kn = getenv("CI_NODE_TOTAL");
    if (ki && *ki && kn && *kn) {
      snprintf(shard, sizeof shard, "%s/%s", ki, kn);
      o->shard = shard;
    }
  }
  if (o->durations && !o->shard)
    return usage_error("%s", "--durations balances --shard K/N; give both");
  if (!o->env_path && strcmp(cmd, "list") != 0) {
    static char found[4096];
    int fr = find_default_env(found, sizeof found);
    if (fr == 0)
      o->env_path = found;
    else if (fr < 0 && strcmp(cmd, "validate") != 0) {
      fprintf(stderr,
              "eventrig: no environment file: give --env FILE, set "
              "EVENTRIG_ENV, or put an eventrig.env.json (or .yaml)"
              " in this folder or a parent (searched from %s)\nTry "
              "'eventrig --help'.\n",
              found);
      return 2;
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  er_run_opts_t o;
  const char *cmd;
  int rc;

  memset(&o, 0, sizeof o);
  o.out = stdout;
  o.err = stderr;
  if (argc < 2)
    return usage_error("%s", "no command given (run, validate, list or audit)");
  cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    fputs(g_usage, stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
    puts("eventrig " ER_VERSION);
    return 0;
  }
  if (!strcmp(cmd, "merge-reports"))
    return merge_reports(argc - 2, argv + 2);
  if ((rc = check_command(cmd)) >= 0)
    return rc;
  if ((rc = parse_options(argc, argv, &o)) >= 0)
    return rc;
  if ((rc = apply_defaults(cmd, &o)) >= 0)
    return rc;
  if (!strcmp(cmd, "audit")) {
    if (optind < argc)
      return usage_error("audit takes no scenario paths ('%s')", argv[optind]);
    if (!o.env_path)
      return usage_error("%s", "audit needs --env FILE");
    install_signals();
    return er_audit_command(o.env_path, o.out, o.err);
  }
  if (optind >= argc)
    return usage_error("%s", "no scenario file or folder given");
  o.paths = argv + optind;
  o.npaths = (size_t)(argc - optind);
  return run_command(cmd, &o);
}
