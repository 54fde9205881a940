/* ktui's load generator: syscall(SYS_getppid) in a tight loop.
 *
 *   loadgen SECONDS [MAX_CALLS]
 *
 * Runs for SECONDS (or until MAX_CALLS calls, when given and > 0), then prints
 * "calls seconds calls_per_second" on stdout. Built by bench/bench_engine.py with
 * gcc -O2 into a temporary directory; one process per core gives full load. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    long max_calls = argc > 2 ? atol(argv[2]) : 0;
    long calls = 0;
    double start = now(), elapsed = 0;
    for (;;) {
        for (int i = 0; i < 1024; i++)
            syscall(SYS_getppid);
        calls += 1024;
        if ((calls & 0x3fff) == 0 || (max_calls && calls >= max_calls)) {
            elapsed = now() - start;
            if (elapsed >= seconds || (max_calls && calls >= max_calls))
                break;
        }
    }
    elapsed = now() - start;
    printf("%ld %.6f %.0f\n", calls, elapsed, calls / elapsed);
    return 0;
}
