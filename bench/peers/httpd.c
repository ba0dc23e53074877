/* httpd.c: the HTTP server of bench/peers (libmicrohttpd, a thread pool).
 *
 *   httpd PORT FLIP_MS
 *
 * GET /json answers {"ok": true, "n": 1}. GET /flag answers
 * {"ready": false} until FLIP_MS milliseconds after the start, then
 * {"ready": true}; the first "true" answer to each User-Agent is printed
 * on stdout as "first-true UA +MS" (milliseconds after the flip), so the
 * bench can tell how soon each tool saw the change. Runs until killed.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long g_flip_us;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_seen[8][256];
static int g_nseen;

static long long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void first_true(const char *ua, long long late_us) {
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < g_nseen; i++)
    if (!strcmp(g_seen[i], ua)) {
      pthread_mutex_unlock(&g_mu);
      return;
    }
  if (g_nseen < 8)
    snprintf(g_seen[g_nseen++], sizeof g_seen[0], "%s", ua);
  printf("first-true %s +%.3f\n", ua, (double)late_us / 1000.0);
  fflush(stdout);
  pthread_mutex_unlock(&g_mu);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *data,
                              size_t *size, void **state) {
  const char *body = "{\"ok\": true, \"n\": 1}";
  struct MHD_Response *r;
  enum MHD_Result ret;
  (void)cls, (void)method, (void)version, (void)data, (void)size;
  (void)state;
  if (!strcmp(url, "/flag")) {
    long long t = now_us();
    if (t >= g_flip_us) {
      const char *ua =
          MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent");
      body = "{\"ready\": true}";
      first_true(ua ? ua : "?", t - g_flip_us);
    } else {
      body = "{\"ready\": false}";
    }
  }
  r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                      MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(r, "Content-Type", "application/json");
  ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

int main(int argc, char **argv) {
  struct MHD_Daemon *d;
  if (argc != 3)
    return 2;
  g_flip_us = now_us() + atoll(argv[2]) * 1000LL;
  d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
                       (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL,
                       MHD_OPTION_THREAD_POOL_SIZE, 4u, MHD_OPTION_END);
  if (!d)
    return 3;
  printf("ready\n");
  fflush(stdout);
  for (;;)
    pause();
}
