/* Acquire loads and release stores for reading BPF ring buffers on weakly ordered machines.
 *
 * The kernel's producer publishes a record by storing its header (busy bit cleared) with a full
 * barrier and the producer position with smp_store_release; a consumer must read the producer
 * position and the headers with acquire semantics before it reads the records, and release the
 * consumer position only after it has read them (libbpf's ringbuf.c does the same). Python cannot
 * express that; these four functions can. ktui/engine/ordering.py loads them with ctypes; setup.sh
 * builds this file into _ordering.so beside it. On x86-64 they compile to plain moves. */
#include <stdint.h>

uint64_t ktui_load_acquire_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

void ktui_store_release_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* After headers were read with plain loads: orders those loads before every later load. */
void ktui_acquire_fence(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }

