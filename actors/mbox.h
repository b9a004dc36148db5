/* mbox.h - mailboxes between threads: one bounded, lock-free,
 * single-producer/single-consumer ring per ordered pair of threads
 * (shards and the persistence threads). See docs/architecture.md, "Mailboxes".
 *
 * Threads are numbered 0..n-1. Thread `from` is the only producer of ring
 * (from, to) and thread `to` its only consumer.
 *
 * Producer side: mbox_push() stages a message in the ring (invisible to the
 * consumer); mbox_flush() publishes everything `from` staged, on every ring,
 * with one release store per ring, and wakes a receiver only when it may be
 * asleep. A full ring returns ERR_FULL: the caller keeps the message and
 * retries later (backpressure); nothing is ever dropped here.
 *
 * Consumer side: mbox_pop() takes published messages from one ring. Before
 * blocking, a receiver calls mbox_sleep_begin(): it announces the sleep and
 * checks every ring once more; if that returns false the receiver must not
 * block (call mbox_sleep_end()). Otherwise it blocks on mbox_wake_fd() (an
 * eventfd; readable when woken) and calls mbox_sleep_end() after waking.
 *
 * A message belongs to the ring from push until pop, then to the receiver.
 */
#ifndef RC_MBOX_H
#define RC_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t kind;   /* message kind (actor-defined)            */
    uint32_t arg;    /* small argument                          */
    uint64_t u64;    /* e.g. a connection handle or a sequence  */
    void *ptr;       /* payload; ownership moves with the message */
} mbox_msg_t;

typedef struct mbox_hub mbox_hub_t;

/* mbox_hub_new creates n*n rings of `cap` slots each (cap: power of two,
 * >= 2) and one eventfd per thread. Returns NULL on failure. */
mbox_hub_t *mbox_hub_new(int n, uint32_t cap);
void mbox_hub_free(mbox_hub_t *h);

/* Producer (thread `from` only). mbox_push returns 0, or ERR_FULL when the
 * ring has no free slot (counting staged, unpublished messages). */
int mbox_push(mbox_hub_t *h, int from, int to, const mbox_msg_t *m);
/* mbox_flush publishes the staged messages of `from` on all its rings and
 * wakes each receiver that announced a sleep. Cheap when nothing is staged. */
void mbox_flush(mbox_hub_t *h, int from);

/* Consumer (thread `to` only). mbox_pop copies up to max published messages
 * from ring (from, to) into out and returns how many. */
size_t mbox_pop(mbox_hub_t *h, int from, int to, mbox_msg_t *out, size_t max);
/* mbox_sleep_begin announces that `to` is about to block, then checks all
 * its rings; returns true if it may block (all empty), false if a message
 * arrived meanwhile. Either way call mbox_sleep_end after. */
bool mbox_sleep_begin(mbox_hub_t *h, int to);
void mbox_sleep_end(mbox_hub_t *h, int to);
/* mbox_wake_fd returns the eventfd that becomes readable when `to` is woken.
 * The receiver reads (and so resets) it. */
int mbox_wake_fd(mbox_hub_t *h, int to);

/* Observability: published, not yet popped messages in ring (from, to).
 * Approximate when called from a third thread. */
uint32_t mbox_depth(mbox_hub_t *h, int from, int to);
/* Number of wake-ups sent to `to` (eventfd writes), for tests and metrics. */
uint64_t mbox_wakeups(mbox_hub_t *h, int to);

#endif
