/* Exercises ktui/engine/ordering.c the way the ring reader uses it, with two threads: a producer
 * that reserves, fills and commits records in a ring (as the kernel's BPF ring buffer does) and a
 * consumer that follows ktui/engine/ringbuf.py's reader: an acquire load of the producer position,
 * plain (relaxed) loads of the headers, ktui_acquire_fence, the records read, and a release store of
 * the consumer position. Every record must arrive whole and in order, exactly once.
 *
 * Built for aarch64 and run under qemu-aarch64 by tests/test_ordering_arm64.py. Prints
 * "ok N records" and exits 0, or says what was wrong and exits 1. */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

uint64_t ktui_load_acquire_u64(const uint64_t *p);
void ktui_store_release_u64(uint64_t *p, uint64_t v);
void ktui_acquire_fence(void);

#define SLOTS 64u            /* a small ring: the producer laps it many times */
#define BUSY (1ull << 63)    /* header still being written (the kernel's BPF_RINGBUF_BUSY_BIT) */
#define MIX 0x9E3779B97F4A7C15ull

struct record {
    uint64_t header;         /* BUSY while reserved, then seq + 1 once committed */
    uint64_t seq, mixed, inverse;
};

static struct record ring[SLOTS];
static uint64_t prod_pos, cons_pos;  /* positions in records, as the kernel's are in bytes */
static uint64_t total;

static void *producer(void *arg) {
    (void)arg;
    for (uint64_t pos = 0; pos < total; pos++) {
        while (pos - ktui_load_acquire_u64(&cons_pos) >= SLOTS)  /* the consumer still reads this slot */
            sched_yield();
        struct record *r = &ring[pos % SLOTS];
        __atomic_store_n(&r->header, BUSY, __ATOMIC_RELAXED);   /* reserve... */
        ktui_store_release_u64(&prod_pos, pos + 1);              /* ...and publish the reservation */
        r->seq = pos;                                            /* fill with plain stores */
        r->mixed = pos * MIX;
        r->inverse = ~pos;
        ktui_store_release_u64(&r->header, pos + 1);             /* commit: the record is whole */
    }
    return NULL;
}

int main(int argc, char **argv) {
    total = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;

    /* The three functions alone: what is stored is what is loaded, all 64 bits of it. */
    uint64_t cell[2] = {0, 0};
    ktui_store_release_u64(&cell[1], UINT64_MAX - 2);
    ktui_acquire_fence();
    if (ktui_load_acquire_u64(&cell[1]) != UINT64_MAX - 2 || cell[0] != 0) {
        printf("load/store of one cell gave %" PRIx64 " %" PRIx64 "\n", cell[0], cell[1]);
        return 1;
    }

    pthread_t thread;
    if (pthread_create(&thread, NULL, producer, NULL) != 0) {
        printf("could not start the producer thread\n");
        return 1;
    }
    uint64_t cons = 0, batches = 0;
    while (cons < total) {
        uint64_t prod = ktui_load_acquire_u64(&prod_pos);
        uint64_t done = cons;
        while (done < prod) {  /* the headers first, with plain loads, up to the first busy one */
            if (__atomic_load_n(&ring[done % SLOTS].header, __ATOMIC_RELAXED) & BUSY)
                break;
            done++;
        }
        ktui_acquire_fence();  /* header loads before record loads */
        for (uint64_t pos = cons; pos < done; pos++) {
            struct record *r = &ring[pos % SLOTS];
            uint64_t header = __atomic_load_n(&r->header, __ATOMIC_RELAXED);
            if (header != pos + 1 || r->seq != pos || r->mixed != pos * MIX || r->inverse != ~pos) {
                printf("record %" PRIu64 " read torn or out of order: header %" PRIx64 " seq %" PRIu64 "\n",
                       pos, header, r->seq);
                return 1;
            }
        }
        if (done > cons) {
            ktui_store_release_u64(&cons_pos, done);  /* the slots are free once read */
            cons = done;
            batches++;
        } else {
            sched_yield();
        }
    }
    pthread_join(thread, NULL);
    printf("ok %" PRIu64 " records in %" PRIu64 " batches\n", cons, batches);
    return 0;
}
