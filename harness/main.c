/* main.c: command line only; see runner.h for the work. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    puts("eventrig 0.1.0");
    return 0;
  }
  fputs("eventrig: not ready yet\n", stderr);
  return 2;
}
