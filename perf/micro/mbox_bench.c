/* mbox_bench.c - one producer thread -> one consumer thread through one
 * mailbox ring (actors/mbox.c), at batch sizes 1, 16 and 256.
 *
 * Back-of-envelope estimate this run should confirm (x86-64, two cores):
 *   - mbox_push is a 24-byte store and a compare: about 1-2 ns.
 *   - mbox_flush is one release store (a plain mov on x86), one seq_cst
 *     fence (a locked instruction, about 20-30 ns) and a load of the
 *     receiver's `sleeping` line.
 *   - The consumer pays one cross-core transfer of the tail line per batch
 *     (about 50-100 ns on a VM) plus the slot lines (64 / 24 = 2.7 messages
 *     per line; these misses overlap, the hardware prefetches the next line).
 *   So with a polling consumer: batch 1 is bound by the fence and the index
 *   ping-pong, about 100 ns per message or 5-15 M msg/s; batches of 16 and
 *   256 amortise both and are bound by copying slot lines between cores,
 *   about 50-150 M msg/s.
 *   With a blocking consumer (mbox_sleep_begin, poll, read), every sleep
 *   costs an eventfd write plus a poll and read, about 2-5 us, and a fast
 *   consumer sleeps after nearly every batch: batch 1 falls to well under
 *   1 M msg/s, batch 256 stays within a factor of two of polling.
 * Measured 2026-11-22 (commit 8227178, -O2 -DNDEBUG, 2-vCPU KVM Xeon
 * (Sapphire Rapids), kernel 6.18, load average about 2-3 from other jobs on
 * the same two vCPUs, so this did NOT confirm the estimate cleanly):
 *   polling  batch 1/16/256:  2.1 /  6.2 /  9.1 M msg/s, p50 0.9/1.8/8.3 us
 *   blocking batch 1/16/256:  2.7 /  7.0 / 13.5 M msg/s, wake-ups 0.025,
 *                             0.004, 0.002 per message
 *   p99 was 2-4 ms in every row: scheduler slices lost to the other jobs.
 *   A single-thread push 256 + flush + pop 256 loop costs about 12 ns per
 *   message, so the rows above are bound by sharing the CPUs, not by the
 *   ring. Batch 1 with a blocking consumer is far better than estimated
 *   because the producer is slower than the consumer and the consumer
 *   sleeps on about 1 flush in 40. Repeat on an idle machine before quoting.
 * Latency is sampled on every 1024th message, from its push to its pop, so
 * it includes the wait for the rest of its batch.
 *
 * Build and run (from the repository root; about 7 s):
 *   gcc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror \
 *       -O2 -DNDEBUG -I. perf/micro/mbox_bench.c actors/mbox.c src/err.c \
 *       -lpthread -o /tmp/mbox_bench && /tmp/mbox_bench
 * RC_BENCH_MS sets the time per row (default 1000); RC_BENCH_PIN=0 leaves the
 * two threads unpinned (they are pinned to CPUs 0 and 1 by default).
 */
#include "actors/mbox.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "src/err.h"

#define MBOX_BENCH_CAP 1024        /* slots: four batches of 256 in flight */
#define MBOX_BENCH_SAMPLE 1024     /* every 1024th message carries a timestamp */
#define MBOX_BENCH_SAMPLES_MAX (1u << 20)

enum { MBOX_BENCH_DATA = 1, MBOX_BENCH_STAMPED, MBOX_BENCH_END };

typedef struct {
    mbox_hub_t *h;
    uint32_t batch;
    bool blocking;        /* consumer sleeps on the eventfd when empty,
                             else polls with sched_yield() */
    uint64_t run_ns;
    uint64_t sent;        /* written by the producer, read after join */
    uint64_t received;    /* written by the consumer, read after join */
    uint64_t bad;         /* sequence errors seen by the consumer */
    uint64_t *lat_ns;     /* latency samples; the consumer */
    size_t nlat;
} mbox_bench_run_t;

static uint64_t mbox_bench_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void mbox_bench_pin(int cpu)
{
    const char *pin = getenv("RC_BENCH_PIN");
    if (pin && strcmp(pin, "0") == 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    /* Best effort: unpinned figures are noisier, not wrong. */
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void mbox_bench_push(mbox_bench_run_t *r, const mbox_msg_t *m)
{
    while (mbox_push(r->h, 0, 1, m) == ERR_FULL) {
        mbox_flush(r->h, 0);
        sched_yield();
    }
}

static void *mbox_bench_producer(void *arg)
{
    mbox_bench_run_t *r = arg;
    mbox_bench_pin(0);
    uint64_t seq = 0, end = mbox_bench_now_ns() + r->run_ns;
    for (;;) {
        for (uint32_t i = 0; i < r->batch; i++, seq++) {
            mbox_msg_t m = {.kind = MBOX_BENCH_DATA, .u64 = seq};
            if (seq % MBOX_BENCH_SAMPLE == 0) {
                m.kind = MBOX_BENCH_STAMPED;
                m.ptr = (void *)(uintptr_t)mbox_bench_now_ns();
            }
            mbox_bench_push(r, &m);
        }
        mbox_flush(r->h, 0);
        /* Check the clock once per 4096 messages, not per batch. */
        if (seq % 4096 < r->batch && mbox_bench_now_ns() >= end)
            break;
    }
    mbox_msg_t m = {.kind = MBOX_BENCH_END, .u64 = seq};
    mbox_bench_push(r, &m);
    mbox_flush(r->h, 0);
    r->sent = seq;
    return NULL;
}

static void *mbox_bench_consumer(void *arg)
{
    mbox_bench_run_t *r = arg;
    mbox_bench_pin(1);
    int fd = mbox_wake_fd(r->h, 1);
    mbox_msg_t out[256];
    uint64_t next = 0;
    for (;;) {
        size_t k = mbox_pop(r->h, 0, 1, out, 256);
        for (size_t i = 0; i < k; i++) {
            if (out[i].kind == MBOX_BENCH_END) {
                r->received = next;
                return NULL;
            }
            r->bad += out[i].u64 != next++;
            if (out[i].kind == MBOX_BENCH_STAMPED && r->nlat < MBOX_BENCH_SAMPLES_MAX)
                r->lat_ns[r->nlat++] = mbox_bench_now_ns() - (uint64_t)(uintptr_t)out[i].ptr;
        }
        if (k)
            continue;
        if (!r->blocking) {
            /* Polling consumer: give the CPU away when empty, which costs a
             * system call but keeps the row meaningful when another process
             * shares the core. */
            sched_yield();
            continue;
        }
        if (mbox_sleep_begin(r->h, 1)) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
            uint64_t v;
            while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
                ;
        }
        mbox_sleep_end(r->h, 1);
    }
}

static int mbox_bench_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t mbox_bench_pct(const uint64_t *v, size_t n, double p)
{
    return n ? v[(size_t)(p * (double)(n - 1))] : 0;
}

static int mbox_bench_row(uint32_t batch, bool blocking, uint64_t run_ms)
{
    mbox_bench_run_t r = {.batch = batch, .blocking = blocking, .run_ns = run_ms * 1000000u};
    r.h = mbox_hub_new(2, MBOX_BENCH_CAP);
    r.lat_ns = malloc(MBOX_BENCH_SAMPLES_MAX * sizeof(uint64_t));
    if (!r.h || !r.lat_ns) {
        fprintf(stderr, "mbox_bench: out of memory\n");
        return 1;
    }
    pthread_t pt, ct;
    uint64_t t0 = mbox_bench_now_ns();
    pthread_create(&ct, NULL, mbox_bench_consumer, &r);
    pthread_create(&pt, NULL, mbox_bench_producer, &r);
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);
    double s = (double)(mbox_bench_now_ns() - t0) / 1e9;
    qsort(r.lat_ns, r.nlat, sizeof(uint64_t), mbox_bench_cmp);
    uint64_t wakes = mbox_wakeups(r.h, 1);
    printf("%6u  %-8s  %10.2f  %9.2f  %8.4f  %8" PRIu64 "  %8" PRIu64 "  %8" PRIu64 "\n",
           batch, blocking ? "blocking" : "polling", (double)r.received / s / 1e6,
           s * 1e9 / (double)r.received, (double)wakes / (double)r.received,
           mbox_bench_pct(r.lat_ns, r.nlat, 0.50), mbox_bench_pct(r.lat_ns, r.nlat, 0.99),
           mbox_bench_pct(r.lat_ns, r.nlat, 0.999));
    int rc = r.bad || r.received != r.sent;
    if (rc)
        fprintf(stderr, "mbox_bench: %" PRIu64 " sent, %" PRIu64 " received, %" PRIu64
                " out of sequence\n", r.sent, r.received, r.bad);
    free(r.lat_ns);
    mbox_hub_free(r.h);
    return rc;
}

int main(void)
{
    const char *ms = getenv("RC_BENCH_MS");
    uint64_t run_ms = ms ? strtoull(ms, NULL, 0) : 1000;
    static const uint32_t batches[] = {1, 16, 256};
    int rc = 0;
    printf("mbox_bench: 1 producer -> 1 consumer, cap %u, %" PRIu64 " ms per row, %ld cpus\n",
           MBOX_BENCH_CAP, run_ms, sysconf(_SC_NPROCESSORS_ONLN));
    /* Record the load: on a shared two-core machine another busy process
     * halves the polling rows and puts scheduler slices (ms) into p99. */
    char load[64] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(load, sizeof(load), f))
            strcpy(load, "?\n");
        fclose(f);
    }
    printf("loadavg before the run: %s", load);
    printf("%6s  %-8s  %10s  %9s  %8s  %8s  %8s  %8s\n", "batch", "consumer", "Mmsg/s",
           "ns/msg", "wake/msg", "p50 ns", "p99 ns", "p999 ns");
    for (int blocking = 0; blocking <= 1; blocking++)
        for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++)
            rc |= mbox_bench_row(batches[i], blocking, run_ms);
    return rc;
}
