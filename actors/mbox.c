/* mbox.c - mailboxes between threads (see mbox.h and docs/architecture.md,
 * "Mailboxes"; STYLE.md §4).
 *
 * Owns: the n*n rings of a hub, one per ordered pair (from, to), and one
 * eventfd plus a `sleeping` flag per receiver. Runs on every shard and
 * persistence thread: thread `from` is the only writer of the producer half
 * of its rings, thread `to` the only writer of the consumer half. The hub
 * itself is created and freed by the startup thread while no other thread
 * uses it.
 *
 * Layout of one ring (two 64-byte lines, so the threads never write the same
 * line; each half carries its own copy of the read-only slots pointer and
 * mask, so neither side reads the other's line on its fast path):
 *
 *      producer line (written by `from`)      consumer line (written by `to`)
 *     +-----------------------------------+  +-------------------------------+
 *     | tail      published, atomic       |  | head       popped, atomic     |
 *     | staged    tail + unpublished      |  | tail_seen  cached tail        |
 *     | head_seen cached head             |  | slots, mask (read-only copy)  |
 *     | dirty, slots, mask                |  +-------------------------------+
 *     +-----------------------------------+
 *
 *     slots:  ... | popped | head .. published .. tail | staged .. | free ...
 *
 * Indices are free-running uint32_t counters; a slot is `index & mask`.
 * Unsigned subtraction gives the right distance across the 2^32 wrap because
 * cap <= 2^31. Invariants: head <= tail <= staged <= head + cap (as
 * distances), head_seen <= head and tail_seen <= tail (the caches only lag).
 *
 * Memory order of the data path:
 *   - mbox_flush release-stores tail after the slots were written; mbox_pop
 *     acquire-loads tail before reading them (message contents visible).
 *   - mbox_pop release-stores head after copying the slots out; mbox_push
 *     acquire-loads head before overwriting a slot (no overwrite of a slot
 *     still being read).
 *   Each side reloads the other's index only when its cached copy says the
 *   ring looks full (producer) or empty (consumer), so in steady state an
 *   index line crosses cores once per batch, not once per message.
 *
 * Sleep and wake (a Dekker handshake between two seq_cst fences):
 *
 *     receiver (mbox_sleep_begin)         producer (mbox_flush)
 *     S1 sleeping = 1                     P1 tail = staged   (release)
 *     S2 fence(seq_cst)   <-- pairs -->   P2 fence(seq_cst)
 *     S3 load every incoming tail         P3 load sleeping; if 1, exchange
 *        all empty: block on eventfd         it to 0 and, if the exchange
 *                                            returned 1, write the eventfd
 *
 * Why no wake-up is lost. Take a flush by producer P and the receiver's
 * rounds of S1..S3. All seq_cst fences lie in one total order (C11 7.17.3,
 * the rules for memory_order_seq_cst fences):
 *   (a) A round whose S2 comes after P2 sees, at S3, the tail stored at P1
 *       or a later one (P1 is sequenced before P2, S3 after S2), so
 *       mbox_sleep_begin returns false and the receiver does not block.
 *   (b) Let round k be the last round whose S2 comes before P2. Then P3 reads
 *       round k's S1 (the 1) or a later value of `sleeping`. The only later
 *       values come from producers' exchanges and the receiver's own
 *       mbox_sleep_end. An exchange is a read-modify-write, so the first
 *       modification after S1 reads that 1: if it is a producer's exchange,
 *       that producer writes the eventfd (maybe not P, which is fine: one
 *       write wakes the receiver for all of its rings); if it is
 *       mbox_sleep_end, the receiver is already awake. Either way round k
 *       does not stay blocked, and the round after it falls under (a).
 *   The eventfd counts, so a write that lands before the receiver reaches
 *   poll() still leaves it readable; only the receiver reads it.
 *
 * Spurious wake-ups are possible and harmless: a producer may see the flag
 * after mbox_sleep_begin returned false, before mbox_sleep_end; the receiver
 * then finds the eventfd readable once with nothing new. The exchange makes
 * one producer write per announced sleep, not one per producer.
 *
 * STYLE.md §4 also allows a wake on an empty -> non-empty transition; we wake
 * only announced sleepers, because a running receiver will poll its rings
 * anyway, and that keeps write(2) off the hot path.
 */
#include "actors/mbox.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "src/err.h"

#define MBOX__LINE 64  /* bytes; x86-64 and most arm64 cache lines */

typedef struct {
    /* Producer line: written by `from` only (tail is read by `to`). */
    alignas(MBOX__LINE) _Atomic uint32_t tail; /* published count; `from` */
    uint32_t staged;        /* tail + staged, unpublished count; `from` */
    uint32_t head_seen;     /* last head `from` loaded; `from` */
    uint32_t pmask;         /* cap - 1; read-only after mbox_hub_new */
    mbox_msg_t *pslots;     /* cap slots; read-only pointer */
    /* Consumer line: written by `to` only (head is read by `from`). */
    alignas(MBOX__LINE) _Atomic uint32_t head; /* popped count; `to` */
    uint32_t tail_seen;     /* last tail `to` loaded; `to` */
    uint32_t cmask;         /* copy of pmask for the consumer's line */
    mbox_msg_t *cslots;     /* copy of pslots for the consumer's line */
} mbox__ring_t;

_Static_assert(sizeof(mbox__ring_t) == 2 * MBOX__LINE,
               "a ring is exactly one producer line and one consumer line");

/* Per producer: which rings hold staged messages, so mbox_flush touches
 * only those. Written by the producer thread only. */
typedef struct {
    alignas(MBOX__LINE) int ndirty; /* entries in dirty[]; the producer */
    int *dirty;                     /* receiver ids, n slots; the producer */
} mbox__sender_t;

/* Per receiver. `sleeping` is written by the receiver and by producers (the
 * exchange), so it gets a line of its own; the wake-up counter is written by
 * producers and goes on another line so it does not disturb the flag. */
typedef struct {
    alignas(MBOX__LINE) _Atomic uint32_t sleeping; /* 0/1; receiver, producers */
    int efd;                                       /* read-only after new */
    alignas(MBOX__LINE) _Atomic uint64_t wakeups;  /* count; producers */
} mbox__rcv_t;

struct mbox_hub {
    int n;                  /* threads; read-only */
    uint32_t cap;           /* slots per ring, power of two; read-only */
    mbox__ring_t *rings;    /* n*n, index from*n + to */
    mbox__sender_t *senders;/* n */
    mbox__rcv_t *rcvs;      /* n */
};

static inline mbox__ring_t *mbox__ring(mbox_hub_t *h, int from, int to)
{
    assert(from >= 0 && from < h->n && to >= 0 && to < h->n);
    return &h->rings[(size_t)from * (size_t)h->n + (size_t)to];
}

mbox_hub_t *mbox_hub_new(int n, uint32_t cap)
{
    if (n <= 0 || n > 4096 || cap < 2 || cap > (1u << 31) || (cap & (cap - 1)))
        return NULL;
    mbox_hub_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->n = n;
    h->cap = cap;
    size_t nn = (size_t)n * (size_t)n;
    h->rings = aligned_alloc(MBOX__LINE, nn * sizeof(mbox__ring_t));
    h->senders = aligned_alloc(MBOX__LINE, (size_t)n * sizeof(mbox__sender_t));
    h->rcvs = aligned_alloc(MBOX__LINE, (size_t)n * sizeof(mbox__rcv_t));
    if (!h->rings || !h->senders || !h->rcvs)
        goto fail;
    memset(h->rings, 0, nn * sizeof(mbox__ring_t));
    memset(h->senders, 0, (size_t)n * sizeof(mbox__sender_t));
    memset(h->rcvs, 0, (size_t)n * sizeof(mbox__rcv_t));
    for (int i = 0; i < n; i++)
        h->rcvs[i].efd = -1;
    for (size_t i = 0; i < nn; i++) {
        mbox__ring_t *r = &h->rings[i];
        r->pslots = aligned_alloc(MBOX__LINE,
                                  ((size_t)cap * sizeof(mbox_msg_t) + MBOX__LINE - 1)
                                      / MBOX__LINE * MBOX__LINE);
        if (!r->pslots)
            goto fail;
        r->cslots = r->pslots;
        r->pmask = r->cmask = cap - 1;
        /* Plain initialisation: no other thread sees the hub until the
         * caller hands it over (thread creation orders it). */
        atomic_init(&r->tail, 0);
        atomic_init(&r->head, 0);
    }
    for (int i = 0; i < n; i++) {
        h->senders[i].dirty = calloc((size_t)n, sizeof(int));
        if (!h->senders[i].dirty)
            goto fail;
        atomic_init(&h->rcvs[i].sleeping, 0);
        atomic_init(&h->rcvs[i].wakeups, 0);
        h->rcvs[i].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (h->rcvs[i].efd < 0)
            goto fail;
    }
    return h;
fail:
    mbox_hub_free(h);
    return NULL;
}

void mbox_hub_free(mbox_hub_t *h)
{
    if (!h)
        return;
    if (h->rings)
        for (size_t i = 0; i < (size_t)h->n * (size_t)h->n; i++)
            free(h->rings[i].pslots);
    if (h->senders)
        for (int i = 0; i < h->n; i++)
            free(h->senders[i].dirty);
    if (h->rcvs)
        for (int i = 0; i < h->n; i++)
            if (h->rcvs[i].efd >= 0)
                close(h->rcvs[i].efd);
    free(h->rings);
    free(h->senders);
    free(h->rcvs);
    free(h);
}

int mbox_push(mbox_hub_t *h, int from, int to, const mbox_msg_t *m)
{
    mbox__ring_t *r = mbox__ring(h, from, to);
    uint32_t staged = r->staged;
    if (staged - r->head_seen > r->pmask) {
        /* Looks full against the cached head: refresh it. Acquire pairs with
         * the release store of head in mbox_pop, so the consumer's copy out
         * of these slots is complete before we overwrite them. */
        r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
        if (staged - r->head_seen > r->pmask)
            return ERR_FULL;
    }
    /* Relaxed: we are tail's only writer, so this reads our own last store.
     * staged == tail means this is the ring's first staged message since the
     * last flush, so mbox_flush must visit it. */
    if (staged == atomic_load_explicit(&r->tail, memory_order_relaxed)) {
        mbox__sender_t *s = &h->senders[from];
        assert(s->ndirty < h->n);
        s->dirty[s->ndirty++] = to;
    }
    r->pslots[staged & r->pmask] = *m;
    r->staged = staged + 1;
    return 0;
}

/* mbox__wake writes the receiver's eventfd. Out of line: it is a system call
 * on the rare path where a receiver announced a sleep. */
static __attribute__((noinline)) void mbox__wake(mbox_hub_t *h, int to)
{
    mbox__rcv_t *v = &h->rcvs[to];
    uint64_t one = 1;
    ssize_t rc;
    do
        rc = write(v->efd, &one, sizeof(one));
    while (rc < 0 && errno == EINTR);
    /* EAGAIN would need a counter near 2^64 - 1 that the receiver never
     * reads; it is still readable then, so the wake-up is not lost. */
    assert(rc == (ssize_t)sizeof(one) || (rc < 0 && errno == EAGAIN));
    /* Relaxed: a statistic; mbox_wakeups reads it relaxed and nothing else
     * is ordered by it. */
    atomic_fetch_add_explicit(&v->wakeups, 1, memory_order_relaxed);
}

/* Steps P1..P3 match the sleep and wake diagram in the file header. */
void mbox_flush(mbox_hub_t *h, int from)
{
    assert(from >= 0 && from < h->n);
    mbox__sender_t *s = &h->senders[from];
    if (s->ndirty == 0)
        return;
    /* P1. Publish each ring with staged messages. Release pairs with the
     * acquire load of tail in mbox_pop / mbox_sleep_begin: the slot writes in
     * mbox_push happen before the consumer reads them. */
    for (int i = 0; i < s->ndirty; i++) {
        mbox__ring_t *r = mbox__ring(h, from, s->dirty[i]);
        atomic_store_explicit(&r->tail, r->staged, memory_order_release);
    }
    /* P2. One fence for all the rings of this flush (every P1 store is
     * sequenced before it). Pairs with fence S2 in mbox_sleep_begin: either
     * the receiver's re-check sees our tails, or our P3 load sees its S1. */
    atomic_thread_fence(memory_order_seq_cst);
    /* P3. Wake the receivers that announced a sleep. The load is relaxed: P2
     * already orders it after P1. It filters out the common case without a
     * locked instruction; the exchange (relaxed: it orders nothing, it only
     * elects one waker per announced sleep, by modification order of
     * `sleeping`) pairs with the store at S1 and with other producers'
     * exchanges. */
    for (int i = 0; i < s->ndirty; i++) {
        mbox__rcv_t *v = &h->rcvs[s->dirty[i]];
        if (atomic_load_explicit(&v->sleeping, memory_order_relaxed) &&
            atomic_exchange_explicit(&v->sleeping, 0, memory_order_relaxed))
            mbox__wake(h, s->dirty[i]);
    }
    s->ndirty = 0;
}

size_t mbox_pop(mbox_hub_t *h, int from, int to, mbox_msg_t *out, size_t max)
{
    mbox__ring_t *r = mbox__ring(h, from, to);
    /* Relaxed: we are head's only writer, so this reads our own last store. */
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t avail = r->tail_seen - head;
    if (avail < max) {
        /* Acquire pairs with the release store of tail in mbox_flush (P1):
         * the message contents written in mbox_push are visible. */
        r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        avail = r->tail_seen - head;
    }
    assert(avail <= r->cmask + 1);
    size_t k = avail < max ? avail : max;
    if (k == 0)
        return 0;
    size_t at = head & r->cmask;
    size_t first = (size_t)r->cmask + 1 - at;
    if (first > k)
        first = k;
    memcpy(out, &r->cslots[at], first * sizeof(*out));
    memcpy(out + first, &r->cslots[0], (k - first) * sizeof(*out));
    /* Release pairs with the acquire load of head in mbox_push: our reads of
     * the slots complete before the producer may reuse them. */
    atomic_store_explicit(&r->head, head + (uint32_t)k, memory_order_release);
    return k;
}

/* Steps S1..S3 match the sleep and wake diagram in the file header. */
bool mbox_sleep_begin(mbox_hub_t *h, int to)
{
    assert(to >= 0 && to < h->n);
    mbox__rcv_t *v = &h->rcvs[to];
    /* S1. Relaxed: fence S2 orders it before the loads of S3. Pairs with the
     * load and exchange at P3 in mbox_flush. */
    atomic_store_explicit(&v->sleeping, 1, memory_order_relaxed);
    /* S2. Pairs with fence P2 in mbox_flush (see "Why no wake-up is lost"). */
    atomic_thread_fence(memory_order_seq_cst);
    /* S3. Acquire pairs with the release store of tail at P1, so the cached
     * tail can be used by the next mbox_pop without another load. */
    for (int from = 0; from < h->n; from++) {
        mbox__ring_t *r = mbox__ring(h, from, to);
        r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        /* Relaxed: our own variable. */
        if (r->tail_seen != atomic_load_explicit(&r->head, memory_order_relaxed))
            return false;
    }
    return true;
}

void mbox_sleep_end(mbox_hub_t *h, int to)
{
    assert(to >= 0 && to < h->n);
    /* Relaxed: clearing only saves producers a needless wake-up; the order
     * against their exchanges is the modification order of `sleeping`
     * alone. A producer that still sees 1 causes one spurious wake-up. */
    atomic_store_explicit(&h->rcvs[to].sleeping, 0, memory_order_relaxed);
}

int mbox_wake_fd(mbox_hub_t *h, int to)
{
    assert(to >= 0 && to < h->n);
    return h->rcvs[to].efd;
}

uint32_t mbox_depth(mbox_hub_t *h, int from, int to)
{
    mbox__ring_t *r = mbox__ring(h, from, to);
    /* Head first, with acquire pairing with the release store of head in
     * mbox_pop: the consumer had seen a tail >= that head, so the tail we
     * load next is at least as large (read-read coherence), and the
     * difference never underflows. */
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    /* Relaxed: only the value matters; pairs with the release at P1. */
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t d = tail - head;
    return d <= h->cap ? d : h->cap;
}

uint64_t mbox_wakeups(mbox_hub_t *h, int to)
{
    assert(to >= 0 && to < h->n);
    /* Relaxed: pairs with the fetch_add in mbox__wake; a statistic. */
    return atomic_load_explicit(&h->rcvs[to].wakeups, memory_order_relaxed);
}
