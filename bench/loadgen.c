/* ktui's load generator: syscall(SYS_getppid) in a tight loop.
 *
 *   loadgen SECONDS [MAX_CALLS] [THREADS]
 *
 * Each of THREADS threads (default 1) runs for SECONDS, or until it has made
 * MAX_CALLS calls when MAX_CALLS > 0; then the process prints
 * "calls seconds calls_per_second" (totals over its threads) on stdout. Threads,
 * not processes, so one thread group id covers the whole load and a tracer can
 * filter on it (`ktui record ... -- loadgen 3 0 2`). Built by bench/bench_engine.py
 * with gcc -O2 -pthread into a temporary directory. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static double seconds = 1.0;
static long max_calls = 0;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

struct result { long calls; double elapsed; };

static void *run(void *arg) {
    struct result *r = arg;
    long calls = 0;
    double start = now();
    for (;;) {
        for (int i = 0; i < 1024; i++)
            syscall(SYS_getppid);
        calls += 1024;
        if (max_calls && calls >= max_calls)
            break;
        if ((calls & 0x3fff) == 0 && now() - start >= seconds)
            break;
    }
    r->calls = calls;
    r->elapsed = now() - start;
    return NULL;
}

int main(int argc, char **argv) {
    seconds = argc > 1 ? atof(argv[1]) : 1.0;
    max_calls = argc > 2 ? atol(argv[2]) : 0;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    if (threads < 1) threads = 1;
    pthread_t tid[threads];
    struct result res[threads];
    for (int i = 1; i < threads; i++)
        pthread_create(&tid[i], NULL, run, &res[i]);
    run(&res[0]);
    long calls = res[0].calls;
    double elapsed = res[0].elapsed, rate = res[0].calls / res[0].elapsed;
    for (int i = 1; i < threads; i++) {
        pthread_join(tid[i], NULL);
        calls += res[i].calls;
        rate += res[i].calls / res[i].elapsed;
        if (res[i].elapsed > elapsed) elapsed = res[i].elapsed;
    }
    printf("%ld %.6f %.0f\n", calls, elapsed, rate);
    return 0;
}
