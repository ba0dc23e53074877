/* proxy_driver.c: one healthy eventrig fault proxy in front of
 * 127.0.0.1:UPSTREAM_PORT, for bench/proxy/run.sh.
 * Usage: proxy_driver UPSTREAM_PORT
 * Prints "port N" once listening, runs until SIGTERM or SIGINT, then prints
 * the proxy's counters on stderr and exits 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "adapters/proxy.h"
#include "base/util.h"

int main(int argc, char **argv) {
  er_err_t err = {0};
  er_proxy_set_t *s = NULL;
  int rc = 1, port = 0, sig = 0;
  sigset_t set;
  if (argc != 2) {
    fprintf(stderr, "usage: proxy_driver UPSTREAM_PORT\n");
    return 2;
  }
  /* block before the loop thread exists; sigwait below */
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  s = er_proxy_set_new(NULL, &err);
  if (!s ||
      er_proxy_add(s, "bench", 0, "127.0.0.1", atoi(argv[1]), &port, &err) <
          0 ||
      er_proxy_set_start(s, &err) < 0)
    goto out;
  printf("port %d\n", port);
  fflush(stdout);
  sigwait(&set, &sig);
  er_proxy_stats_t st;
  if (er_proxy_stats(s, "bench", &st, &err) < 0)
    goto out;
  fprintf(stderr,
          "proxy stats: accepted %llu, bytes up %llu, bytes down %llu, "
          "dropped %llu\n",
          (unsigned long long)st.accepted, (unsigned long long)st.bytes_up,
          (unsigned long long)st.bytes_down,
          (unsigned long long)(st.dropped_up + st.dropped_down));
  rc = 0;
out:
  if (rc)
    fprintf(stderr, "proxy_driver: %s\n", err.msg);
  er_proxy_set_free(s);
  return rc;
}
