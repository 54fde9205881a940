/* Load for bench_capture.py: open and close one path in a loop for SECONDS; prints
   "calls seconds rate". One openat per iteration is what the probes under test see. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    const char *path = argc > 2 ? argv[2] : "/etc/hostname";
    long calls = 0;
    double start = now(), t = start;
    while (t - start < seconds) {
        for (int i = 0; i < 256; i++) {
            int fd = open(path, O_RDONLY);
            if (fd >= 0)
                close(fd);
            calls++;
        }
        t = now();
    }
    printf("%ld %.3f %.0f\n", calls, t - start, calls / (t - start));
    return 0;
}
