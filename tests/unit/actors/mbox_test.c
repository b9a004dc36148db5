/* mbox_test.c - tests for actors/mbox.c (the cross-thread mailboxes).
 *
 * 1. Single thread: FIFO through push/flush/pop, staged messages invisible
 *    until flush, ERR_FULL at capacity counting staged messages, wrap-around
 *    of the slot index many times, argument checks of mbox_hub_new.
 * 2. Sleep and wake: an asleep receiver thread is woken by one push+flush
 *    within 1 s; a flush with nothing staged, or to a receiver that did not
 *    announce a sleep, writes no eventfd; two producers flushing to one
 *    sleeper write it once.
 * 3. Stress: P producer threads and 1 or 2 consumer threads on a hub of 4
 *    threads with small rings (cap 64), so producers hit ERR_FULL often.
 *    Each producer sends RC_MBOX_N (default 200000) messages to each
 *    consumer, carrying (producer id, sequence) and flushing after a random
 *    batch. Consumers block with the real protocol (mbox_sleep_begin, poll on
 *    mbox_wake_fd, read, mbox_sleep_end) and check that every sequence
 *    arrives exactly once and in order per producer. A consumer that sleeps
 *    through a whole poll timeout (1000 ms) while messages are published but
 *    unpopped has lost a wake-up: the test fails.
 *
 * Build and run (also under -fsanitize=thread, and address,undefined):
 *   gcc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror \
 *       -O1 -g -I. tests/unit/actors/mbox_test.c actors/mbox.c src/err.c \
 *       -lpthread -o /tmp/mbox_test && /tmp/mbox_test
 * RC_SEED sets the random seed (batch sizes), RC_MBOX_N the message count.
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
#include <unistd.h>

#include "src/err.h"
#include "tests/support/check.h"

#define T "mbox_test"

/* Messages and helpers ------------------------------------------------- */

static mbox_msg_t mbox_test_msg(uint32_t from, uint64_t seq)
{
    mbox_msg_t m = {.kind = 7, .arg = from, .u64 = seq, .ptr = (void *)(uintptr_t)(seq * 8 + 8)};
    return m;
}

/* mbox_test_readable polls fd for up to timeout_ms; 1 readable, 0 not. */
static int mbox_test_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc;
    do
        rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    return rc > 0 && (p.revents & POLLIN);
}

static void mbox_test_drain_fd(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        ;
}

/* splitmix64: small, seedable, good enough to vary batch sizes. */
static uint64_t mbox_test_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* 1. Single thread ------------------------------------------------------ */

static void mbox_test_new_args(void)
{
    CHECK(mbox_hub_new(2, 0) == NULL);
    CHECK(mbox_hub_new(2, 1) == NULL);
    CHECK(mbox_hub_new(2, 6) == NULL);
    CHECK(mbox_hub_new(0, 8) == NULL);
    mbox_hub_t *h = mbox_hub_new(1, 2);
    CHECK(h != NULL);
    mbox_hub_free(h);
    mbox_hub_free(NULL);
}

static void mbox_test_basics(void)
{
    mbox_hub_t *h = mbox_hub_new(3, 8);
    CHECK(h != NULL);
    if (!h)
        return;
    mbox_msg_t out[16];

    /* Staged messages are invisible until flush. */
    for (uint64_t i = 0; i < 3; i++) {
        mbox_msg_t m = mbox_test_msg(0, i);
        CHECK_EQ_INT(mbox_push(h, 0, 1, &m), 0);
    }
    CHECK_EQ_INT(mbox_depth(h, 0, 1), 0);
    CHECK_EQ_INT(mbox_pop(h, 0, 1, out, 16), 0);
    CHECK(mbox_sleep_begin(h, 1)); /* nothing published: may sleep */
    mbox_sleep_end(h, 1);
    mbox_flush(h, 0);
    CHECK_EQ_INT(mbox_depth(h, 0, 1), 3);
    CHECK(!mbox_sleep_begin(h, 1)); /* published: must not sleep */
    mbox_sleep_end(h, 1);
    /* Other rings stay empty. */
    CHECK_EQ_INT(mbox_pop(h, 0, 2, out, 16), 0);
    CHECK_EQ_INT(mbox_pop(h, 2, 1, out, 16), 0);

    /* FIFO, and pop honours max. */
    CHECK_EQ_INT(mbox_pop(h, 0, 1, out, 2), 2);
    CHECK_EQ_INT(out[0].u64, 0);
    CHECK_EQ_INT(out[1].u64, 1);
    CHECK(out[1].ptr == (void *)(uintptr_t)16);
    CHECK_EQ_INT(mbox_pop(h, 0, 1, out, 16), 1);
    CHECK_EQ_INT(out[0].u64, 2);
    CHECK_EQ_INT(out[0].kind, 7);
    CHECK_EQ_INT(mbox_depth(h, 0, 1), 0);

    /* ERR_FULL at capacity, counting staged messages. */
    int full = 0;
    for (uint64_t i = 0; i < 8; i++) {
        mbox_msg_t m = mbox_test_msg(0, 100 + i);
        full |= mbox_push(h, 0, 1, &m);
    }
    CHECK_EQ_INT(full, 0);
    mbox_msg_t extra = mbox_test_msg(0, 999);
    CHECK_EQ_INT(mbox_push(h, 0, 1, &extra), ERR_FULL);
    mbox_flush(h, 0);
    CHECK_EQ_INT(mbox_push(h, 0, 1, &extra), ERR_FULL);
    CHECK_EQ_INT(mbox_depth(h, 0, 1), 8);
    /* A full ring does not affect another ring of the same producer. */
    CHECK_EQ_INT(mbox_push(h, 0, 2, &extra), 0);
    mbox_flush(h, 0);
    CHECK_EQ_INT(mbox_pop(h, 0, 2, out, 16), 1);
    /* One pop frees one slot. */
    CHECK_EQ_INT(mbox_pop(h, 0, 1, out, 1), 1);
    CHECK_EQ_INT(out[0].u64, 100);
    CHECK_EQ_INT(mbox_push(h, 0, 1, &extra), 0);
    CHECK_EQ_INT(mbox_push(h, 0, 1, &extra), ERR_FULL);
    mbox_flush(h, 0);
    CHECK_EQ_INT(mbox_pop(h, 0, 1, out, 16), 8);
    CHECK_EQ_INT(out[0].u64, 101);
    CHECK_EQ_INT(out[6].u64, 107);
    CHECK_EQ_INT(out[7].u64, 999);

    /* A thread may mail itself. */
    CHECK_EQ_INT(mbox_push(h, 1, 1, &extra), 0);
    mbox_flush(h, 1);
    CHECK_EQ_INT(mbox_pop(h, 1, 1, out, 16), 1);

    /* No eventfd writes: nobody announced a sleep while we flushed. */
    CHECK_EQ_INT(mbox_wakeups(h, 1), 0);
    CHECK_EQ_INT(mbox_wakeups(h, 2), 0);
    mbox_hub_free(h);
}

/* Wrap the slot index many times with varying batch and pop sizes; the pops
 * cross the end of the slot array in every phase. */
static void mbox_test_wrap(uint64_t seed)
{
    mbox_hub_t *h = mbox_hub_new(2, 8);
    CHECK(h != NULL);
    if (!h)
        return;
    uint64_t rnd = seed, next_push = 0, next_pop = 0, bad = 0, fulls = 0;
    mbox_msg_t out[8];
    while (next_pop < 100000) {
        uint64_t batch = 1 + mbox_test_rand(&rnd) % 9;
        for (uint64_t i = 0; i < batch; i++) {
            mbox_msg_t m = mbox_test_msg(1, next_push);
            int rc = mbox_push(h, 1, 0, &m);
            if (rc == ERR_FULL) {
                fulls++;
                break;
            }
            bad += rc != 0;
            next_push++;
        }
        mbox_flush(h, 1);
        size_t want = 1 + mbox_test_rand(&rnd) % 8;
        size_t k = mbox_pop(h, 1, 0, out, want);
        bad += k > want;
        for (size_t i = 0; i < k; i++)
            bad += out[i].u64 != next_pop++ || out[i].arg != 1;
        bad += mbox_depth(h, 1, 0) != next_push - next_pop;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(fulls > 0);
    fprintf(stderr, T ": wrap: %" PRIu64 " messages, %" PRIu64 " times full\n",
            next_pop, fulls);
    mbox_hub_free(h);
}

/* 2. Sleep and wake ----------------------------------------------------- */

typedef struct {
    mbox_hub_t *h;
    int self;
    _Atomic int asleep;   /* 1 once mbox_sleep_begin said we may block */
    int woke;             /* 1 if the eventfd became readable within 1 s */
    mbox_msg_t got;       /* the message popped after waking */
    size_t ngot;
} mbox_test_sleeper_t;

static void *mbox_test_sleeper_main(void *arg)
{
    mbox_test_sleeper_t *s = arg;
    bool may_block = mbox_sleep_begin(s->h, s->self);
    /* Release pairs with the acquire load in the main thread: it pushes only
     * after our announcement, so this test checks the wake, not the recheck. */
    atomic_store_explicit(&s->asleep, may_block, memory_order_release);
    if (may_block)
        s->woke = mbox_test_readable(mbox_wake_fd(s->h, s->self), 1000);
    mbox_test_drain_fd(mbox_wake_fd(s->h, s->self));
    mbox_sleep_end(s->h, s->self);
    s->ngot = mbox_pop(s->h, 0, s->self, &s->got, 1);
    return NULL;
}

static void mbox_test_sleep_wake(void)
{
    mbox_hub_t *h = mbox_hub_new(3, 4);
    CHECK(h != NULL);
    if (!h)
        return;
    int fd = mbox_wake_fd(h, 1);
    CHECK(fd >= 0);

    /* An asleep receiver thread wakes within 1 s of one push + flush. */
    mbox_test_sleeper_t s = {.h = h, .self = 1};
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, mbox_test_sleeper_main, &s), 0);
    /* Acquire pairs with the sleeper's release store of asleep. */
    while (!atomic_load_explicit(&s.asleep, memory_order_acquire))
        sched_yield();
    mbox_msg_t m = mbox_test_msg(0, 42);
    CHECK_EQ_INT(mbox_push(h, 0, 1, &m), 0);
    mbox_flush(h, 0);
    pthread_join(th, NULL);
    CHECK_EQ_INT(s.woke, 1);
    CHECK_EQ_INT(s.ngot, 1);
    CHECK_EQ_INT(s.got.u64, 42);
    CHECK_EQ_INT(mbox_wakeups(h, 1), 1);

    /* A flush with nothing staged wakes nobody, even an announced sleeper. */
    CHECK(mbox_sleep_begin(h, 1));
    mbox_flush(h, 0);
    mbox_flush(h, 2);
    CHECK_EQ_INT(mbox_test_readable(fd, 50), 0);
    CHECK_EQ_INT(mbox_wakeups(h, 1), 1);

    /* Two producers flushing to one sleeper: the exchange elects one writer. */
    CHECK_EQ_INT(mbox_push(h, 0, 1, &m), 0);
    CHECK_EQ_INT(mbox_push(h, 2, 1, &m), 0);
    mbox_flush(h, 0);
    mbox_flush(h, 2);
    CHECK_EQ_INT(mbox_test_readable(fd, 1000), 1);
    uint64_t v = 0;
    CHECK_EQ_INT(read(fd, &v, sizeof(v)), sizeof(v));
    CHECK_EQ_INT(v, 1);
    CHECK_EQ_INT(mbox_wakeups(h, 1), 2);
    mbox_sleep_end(h, 1);

    /* A receiver that is awake (no announcement) is not woken. */
    mbox_msg_t out[4];
    CHECK_EQ_INT(mbox_pop(h, 0, 1, out, 4), 1);
    CHECK_EQ_INT(mbox_pop(h, 2, 1, out, 4), 1);
    CHECK_EQ_INT(mbox_push(h, 0, 1, &m), 0);
    mbox_flush(h, 0);
    CHECK_EQ_INT(mbox_test_readable(fd, 0), 0);
    CHECK_EQ_INT(mbox_wakeups(h, 1), 2);
    /* ... and after announcing it must not block: the message is there. */
    CHECK(!mbox_sleep_begin(h, 1));
    mbox_sleep_end(h, 1);
    mbox_hub_free(h);
}

/* 3. Stress ------------------------------------------------------------- */

#define MBOX_TEST_N 4           /* threads in the hub */
#define MBOX_TEST_CAP 64        /* slots per ring: small, to force ERR_FULL */
#define MBOX_TEST_POLL_MS 1000  /* a sleep this long with work pending fails */

typedef struct {
    mbox_hub_t *h;
    int nprod, ncons;   /* producers are threads 0..nprod-1, consumers next */
    uint64_t count;     /* messages per (producer, consumer) */
    uint64_t seed;
    _Atomic int stop;   /* set by a consumer that detected a lost wake-up */
} mbox_test_cfg_t;

typedef struct {
    mbox_test_cfg_t *cfg;
    int self;
    uint64_t fulls;     /* ERR_FULL results seen (producer) */
    uint64_t flushes;   /* mbox_flush calls (producer) */
    uint64_t popped;    /* messages received (consumer) */
    uint64_t bad;       /* out-of-order, duplicate or foreign messages */
    uint64_t stalls;    /* poll timeouts with published messages unpopped */
    uint64_t announces; /* mbox_sleep_begin calls (consumer) */
    uint64_t sleeps;    /* times mbox_sleep_begin allowed blocking */
} mbox_test_worker_t;

static void *mbox_test_producer_main(void *arg)
{
    mbox_test_worker_t *w = arg;
    mbox_test_cfg_t *c = w->cfg;
    uint64_t rnd = c->seed ^ (0x1000u * (uint64_t)(w->self + 1));
    uint64_t batch = 0, batch_max = 1 + mbox_test_rand(&rnd) % 48;
    for (uint64_t seq = 0; seq < c->count; seq++) {
        for (int k = 0; k < c->ncons; k++) {
            int to = c->nprod + k;
            mbox_msg_t m = mbox_test_msg((uint32_t)w->self, seq);
            int spins = 0;
            while (mbox_push(c->h, w->self, to, &m) == ERR_FULL) {
                /* Relaxed: only ends the test early after a failure; pairs
                 * with the store in the consumer. */
                if (atomic_load_explicit(&c->stop, memory_order_relaxed))
                    return NULL;
                /* Backpressure: publish what we have, let the consumer run. */
                w->fulls++;
                mbox_flush(c->h, w->self);
                w->flushes++;
                if (++spins > 4)
                    sched_yield();
            }
        }
        if (++batch >= batch_max) {
            mbox_flush(c->h, w->self);
            w->flushes++;
            batch = 0;
            batch_max = 1 + mbox_test_rand(&rnd) % 48;
        }
    }
    mbox_flush(c->h, w->self);
    w->flushes++;
    return NULL;
}

/* mbox_test_pending sums published, unpopped messages on our rings. */
static uint32_t mbox_test_pending(const mbox_test_cfg_t *c, int self)
{
    uint32_t d = 0;
    for (int p = 0; p < c->nprod; p++)
        d += mbox_depth(c->h, p, self);
    return d;
}

static void *mbox_test_consumer_main(void *arg)
{
    mbox_test_worker_t *w = arg;
    mbox_test_cfg_t *c = w->cfg;
    uint64_t rnd = c->seed ^ (0x1000u * (uint64_t)(w->self + 1));
    uint64_t next[MBOX_TEST_N] = {0};
    uint64_t want = c->count * (uint64_t)c->nprod;
    int fd = mbox_wake_fd(c->h, w->self);
    mbox_msg_t out[32];
    /* Relaxed: see the producer's load of stop. */
    while (w->popped < want && !atomic_load_explicit(&c->stop, memory_order_relaxed)) {
        size_t got = 0;
        for (int p = 0; p < c->nprod; p++) {
            size_t k = mbox_pop(c->h, p, w->self, out, 32);
            for (size_t i = 0; i < k; i++) {
                /* Exact sequence: catches loss, duplication and reordering. */
                w->bad += out[i].arg != (uint32_t)p || out[i].u64 != next[p];
                next[p] = out[i].u64 + 1;
            }
            got += k;
        }
        w->popped += got;
        if (got)
            continue;
        /* Sometimes give the producers the CPU between the empty pops and the
         * announcement: the worst moment for a publication, which the
         * re-check in mbox_sleep_begin must catch (2 cores, 3-4 threads). */
        if (mbox_test_rand(&rnd) % 4 == 0)
            sched_yield();
        w->announces++;
        if (mbox_sleep_begin(c->h, w->self)) {
            w->sleeps++;
            if (!mbox_test_readable(fd, MBOX_TEST_POLL_MS) && mbox_test_pending(c, w->self)) {
                /* Asleep for the whole timeout while published messages wait:
                 * a lost wake-up (or a producer stuck for 1 s between its
                 * tail store and its eventfd write, which we do not expect). */
                fprintf(stderr, T ": consumer %d: lost wake-up, %u messages pending\n",
                        w->self, (unsigned)mbox_test_pending(c, w->self));
                w->stalls++;
                atomic_store_explicit(&c->stop, 1, memory_order_relaxed);
            }
            mbox_test_drain_fd(fd);
        }
        mbox_sleep_end(c->h, w->self);
    }
    for (int p = 0; p < c->nprod; p++)
        w->bad += next[p] != c->count;
    return NULL;
}

static void mbox_test_stress(int nprod, int ncons, uint64_t count, uint64_t seed)
{
    mbox_test_cfg_t c = {.nprod = nprod, .ncons = ncons, .count = count, .seed = seed};
    c.h = mbox_hub_new(MBOX_TEST_N, MBOX_TEST_CAP);
    CHECK(c.h != NULL);
    if (!c.h || nprod + ncons > MBOX_TEST_N)
        return;
    mbox_test_worker_t w[MBOX_TEST_N] = {{0}};
    pthread_t th[MBOX_TEST_N];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Consumers first, so they reach the sleep path early. */
    for (int i = nprod + ncons - 1; i >= 0; i--) {
        w[i].cfg = &c;
        w[i].self = i;
        CHECK_EQ_INT(pthread_create(&th[i], NULL,
                                    i < nprod ? mbox_test_producer_main : mbox_test_consumer_main,
                                    &w[i]), 0);
    }
    for (int i = 0; i < nprod + ncons; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    uint64_t fulls = 0, flushes = 0;
    for (int i = 0; i < nprod; i++) {
        fulls += w[i].fulls;
        flushes += w[i].flushes;
    }
    for (int k = nprod; k < nprod + ncons; k++) {
        CHECK_EQ_INT(w[k].popped, count * (uint64_t)nprod);
        CHECK_EQ_INT(w[k].bad, 0);
        CHECK_EQ_INT(w[k].stalls, 0);
        fprintf(stderr,
                T ": stress %dP->%dC: consumer %d: %" PRIu64 " messages, %" PRIu64
                " sleeps, %" PRIu64 " wake-ups (%.4f per message)\n",
                nprod, ncons, k, w[k].popped, w[k].sleeps, mbox_wakeups(c.h, k),
                w[k].popped ? (double)mbox_wakeups(c.h, k) / (double)w[k].popped : 0.0);
        /* The exchange allows at most one eventfd write per announcement. */
        CHECK(mbox_wakeups(c.h, k) <= w[k].announces);
    }
    fprintf(stderr, T ": stress %dP->%dC: %.2f s, %" PRIu64 " flushes, %" PRIu64
            " times full\n", nprod, ncons, s, flushes, fulls);
    CHECK(fulls > 0);   /* the test did exercise backpressure */
    mbox_hub_free(c.h);
}

int main(void)
{
    uint64_t seed = check_seed(T);
    const char *n_env = getenv("RC_MBOX_N");
    uint64_t count = n_env ? strtoull(n_env, NULL, 0) : 200000;
    if (count == 0)
        count = 1;

    mbox_test_new_args();
    mbox_test_basics();
    mbox_test_wrap(seed);
    mbox_test_sleep_wake();
    mbox_test_stress(3, 1, count, seed);
    mbox_test_stress(2, 2, count, seed);
    return check_done(T);
}
