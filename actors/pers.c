/* pers.c - the persistence actor (writer and reader threads).
 *
 * Writer (hub thread N): pops MAIL_W_MSG / MAIL_W_CHAT / MAIL_W_MEMBER from
 * every shard. Messages wait in a FIFO; a batch is committed when it holds
 * --batch-max messages or its oldest has waited --batch-delay-ms, in one
 * transaction (SQLite) or one unordered bulk insert (MongoDB). On a
 * transient failure it retries with capped exponential backoff; a message
 * still unstored after --confirm-deadline-ms is given up (message:failed).
 * Each outcome goes back to the room's shard in one MAIL_CONFIRM per shard
 * per batch.
 *
 * Reader (hub thread N+1): answers a user's chats (ready, chats:list) and
 * message reads for join/history, so neither a shard nor the write batching
 * ever waits on a read.
 *
 * Both threads block in poll() on their mailbox eventfd (they are not
 * shards; blocking is their job) using the mailbox sleep protocol.
 */
#include "pers.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../persistence/store.h"
#include "../src/err.h"
#include "../src/hmap.h"
#include "../src/log.h"
#include "../src/tmr.h"
#include "actor_types.h"

#define PERS_BACKOFF_MIN_MS 10
#define PERS_BACKOFF_MAX_MS 1000
/* Notifications older than 30 days are removed by this sweep (TTL indexes
 * are not available on every MongoDB-wire server). A minute after start,
 * then hourly; a failed sweep is retried a minute later. */
#define PERS_SWEEP_FIRST_MS 60000
#define PERS_SWEEP_EVERY_MS 3600000
#define PERS_SWEEP_RETRY_MS 60000

typedef struct {
    store_msg_t *m;
    uint64_t queued_ms;
} pers_item_t;

struct pers {
    const cfg_t *cfg;
    mbox_hub_t *hub;
    int n;                       /* shards                                   */
    store_t *wstore, *rstore;
    pthread_t writer, reader;
    _Atomic bool stop;
    pers_item_t *q;              /* writer FIFO                              */
    size_t qhead, qlen, qcap;
};

static _Atomic int64_t pers__down_since;   /* wall ms of the first failure, 0 = fine */
static _Atomic uint64_t pers__batches, pers__stored;

int64_t pers_store_down_ms(void)
{
    int64_t t = atomic_load_explicit(&pers__down_since, memory_order_relaxed);
    return t ? tmr_wall_ms() - t + 1 : 0;
}
uint64_t pers_batches(void) { return atomic_load_explicit(&pers__batches, memory_order_relaxed); }
uint64_t pers_stored(void) { return atomic_load_explicit(&pers__stored, memory_order_relaxed); }

/* Blocking send from a persistence thread: a full ring means the shard is
 * behind; wait for it rather than drop (no shard ever waits on us). */
static void pers__mail(pers_t *p, int self, int to, mbox_msg_t m)
{
    while (mbox_push(p->hub, self, to, &m) == ERR_FULL) {
        mbox_flush(p->hub, self);
        usleep(200);
    }
}

static void pers__wait(pers_t *p, int self, int timeout_ms)
{
    if (mbox_sleep_begin(p->hub, self)) {
        struct pollfd pfd = { .fd = mbox_wake_fd(p->hub, self), .events = POLLIN };
        if (poll(&pfd, 1, timeout_ms) > 0) {
            uint64_t v;
            ssize_t r = read(pfd.fd, &v, sizeof(v));
            (void)r;
        }
    }
    mbox_sleep_end(p->hub, self);
}

/* ---- writer ------------------------------------------------------------- */

static int pers__queue(pers_t *p, store_msg_t *m, uint64_t now)
{
    if (p->qlen == p->qcap) {
        size_t cap = p->qcap ? p->qcap * 2 : 1024;
        pers_item_t *q = malloc(cap * sizeof(*q));
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < p->qlen; i++)
            q[i] = p->q[(p->qhead + i) % p->qcap];
        free(p->q);
        p->q = q;
        p->qcap = cap;
        p->qhead = 0;
    }
    p->q[(p->qhead + p->qlen++) % p->qcap] = (pers_item_t){ .m = m, .queued_ms = now };
    return 0;
}

/* Send outcomes to the rooms' shards: one MAIL_CONFIRM per shard. */
static void pers__confirm(pers_t *p, store_msg_t **msgs, const store_result_t *res, const int *status, size_t n)
{
    int self = p->n;
    for (int sh = 0; sh < p->n; sh++) {
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++)
            if ((int)(hmap_hash(msgs[i]->room_id, strlen(msgs[i]->room_id)) % (uint64_t)p->n) == sh)
                cnt++;
        if (!cnt)
            continue;
        confirm_t *c = malloc(sizeof(*c) + cnt * sizeof(c->items[0]));
        if (!c) {
            LOG_ERR("out of memory sending confirmations");
            abort();   /* a lost confirmation would leave messages pending forever */
        }
        c->n = 0;
        for (size_t i = 0; i < n; i++) {
            if ((int)(hmap_hash(msgs[i]->room_id, strlen(msgs[i]->room_id)) % (uint64_t)p->n) != sh)
                continue;
            confirm_item_t *it = &c->items[c->n++];
            it->msg = msgs[i];   /* the queue's reference moves on */
            it->status = status[i];
            memcpy(it->id, res ? res[i].id : "", res ? sizeof(it->id) : 1);
            it->seq = res ? res[i].seq : msgs[i]->seq;
            it->same_room = res && strcmp(res[i].room_id, msgs[i]->room_id) == 0;
        }
        pers__mail(p, self, sh, (mbox_msg_t){ .kind = MAIL_CONFIRM, .ptr = c });
    }
    mbox_flush(p->hub, self);
}

/* Drop messages whose confirm deadline passed: they get message:failed
 * and are never written. */
static void pers__expire(pers_t *p, uint64_t now)
{
    size_t k = 0;
    while (k < p->qlen && now - p->q[(p->qhead + k) % p->qcap].queued_ms > p->cfg->confirm_deadline_ms)
        k++;
    if (!k)
        return;
    store_msg_t **msgs = malloc(k * sizeof(*msgs));
    int *status = malloc(k * sizeof(*status));
    if (!msgs || !status) {
        free(msgs);
        free(status);
        return;
    }
    for (size_t i = 0; i < k; i++) {
        msgs[i] = p->q[(p->qhead + i) % p->qcap].m;
        status[i] = ERR_STORE;
    }
    p->qhead = (p->qhead + k) % p->qcap;
    p->qlen -= k;
    LOG_WRN("%zu messages not stored within --confirm-deadline-ms: failing them", k);
    pers__confirm(p, msgs, NULL, status, k);
    free(msgs);
    free(status);
}

/* Commit the next batch. Returns 0, or ERR_STORE (nothing committed). */
static int pers__commit(pers_t *p)
{
    size_t n = p->qlen < p->cfg->batch_max ? p->qlen : p->cfg->batch_max;
    store_msg_t **msgs = malloc(n * sizeof(*msgs));
    store_result_t *res = calloc(n, sizeof(*res));
    int *status = malloc(n * sizeof(*status));
    int rc = -ENOMEM;
    if (!msgs || !res || !status)
        goto out;
    for (size_t i = 0; i < n; i++)
        msgs[i] = p->q[(p->qhead + i) % p->qcap].m;
    rc = store_insert_batch(p->wstore, msgs, n, res);
    if (rc < 0)
        goto out;
    p->qhead = (p->qhead + n) % p->qcap;
    p->qlen -= n;
    for (size_t i = 0; i < n; i++)
        status[i] = res[i].status;
    atomic_fetch_add_explicit(&pers__batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pers__stored, n, memory_order_relaxed);
    pers__confirm(p, msgs, res, status, n);
out:
    free(msgs);
    free(res);
    free(status);
    return rc;
}

static void pers__writer_mail(pers_t *p, int from, mbox_msg_t *m, uint64_t now)
{
    int rc = 0;
    switch (m->kind) {
    case MAIL_W_MSG:
        if (pers__queue(p, m->ptr, now) < 0) {
            LOG_ERR("out of memory queueing a message for the store");
            abort();
        }
        return;
    case MAIL_W_CHAT: {
        req_t *q = m->ptr;
        q->status = store_chat_create(p->wstore, q->chat);
        if (q->status < 0 && q->status != ERR_DUP)
            LOG_ERR("storing chat %s: %s", q->chat->id, err_str(q->status));
        pers__mail(p, p->n, from, (mbox_msg_t){ .kind = MAIL_CHAT_STORED, .ptr = q });
        mbox_flush(p->hub, p->n);
        return;
    }
    case MAIL_W_MEMBER: {
        req_t *q = m->ptr;
        rc = q->flag ? store_chat_add_member(p->wstore, q->room_id, q->user_id)
                     : store_chat_remove_member(p->wstore, q->room_id, q->user_id);
        if (rc < 0)
            LOG_ERR("updating members of %s: %s", q->room_id, err_str(rc));
        req_free(q);
        return;
    }
    default:
        LOG_ERR("writer: unexpected mail kind %u", m->kind);
    }
}

static uint64_t pers__sweep(pers_t *p, uint64_t now)
{
    uint64_t removed = 0;
    int rc = store_notif_sweep(p->wstore, tmr_wall_ms() - STORE_NOTIF_TTL_MS, &removed);
    if (rc < 0) {
        LOG_WRN("notification sweep failed: %s; retrying in a minute", err_str(rc));
        return now + PERS_SWEEP_RETRY_MS;
    }
    if (removed)
        LOG_INF("notification sweep: removed %llu older than 30 days", (unsigned long long)removed);
    return now + PERS_SWEEP_EVERY_MS;
}

static void *pers__writer_main(void *arg)
{
    pers_t *p = arg;
    log_set_thread("pers-writer");
    int self = p->n;
    uint64_t backoff = 0, retry_at = 0, sweep_at = tmr_now_ms() + PERS_SWEEP_FIRST_MS;
    mbox_msg_t batch[128];
    for (;;) {
        uint64_t now = tmr_now_ms();
        size_t got_any = 0;
        for (int from = 0; from < p->n; from++) {
            size_t got;
            while ((got = mbox_pop(p->hub, from, self, batch, 128))) {
                for (size_t i = 0; i < got; i++)
                    pers__writer_mail(p, from, &batch[i], now);
                got_any += got;
            }
        }
        bool stopping = atomic_load_explicit(&p->stop, memory_order_acquire);
        pers__expire(p, now);
        if (now >= sweep_at && !stopping)
            sweep_at = pers__sweep(p, now);
        bool due = p->qlen && (p->qlen >= p->cfg->batch_max || stopping ||
                               now - p->q[p->qhead].queued_ms >= p->cfg->batch_delay_ms);
        if (due && now >= retry_at) {
            if (pers__commit(p) < 0) {
                backoff = backoff ? backoff * 2 : PERS_BACKOFF_MIN_MS;
                if (backoff > PERS_BACKOFF_MAX_MS)
                    backoff = PERS_BACKOFF_MAX_MS;
                retry_at = now + backoff;
                int64_t zero = 0;
                atomic_compare_exchange_strong(&pers__down_since, &zero, tmr_wall_ms());
                LOG_WRN("store write failed; retrying in %llu ms", (unsigned long long)backoff);
            } else {
                backoff = 0;
                atomic_store_explicit(&pers__down_since, 0, memory_order_relaxed);
            }
            continue;
        }
        if (p->qlen == 0 && now >= retry_at &&
            atomic_load_explicit(&pers__down_since, memory_order_relaxed) != 0) {
            /* Down, with nothing left to write (the deadline failed the
             * rest): only a probe can tell /healthz the store is back. */
            if (store_ping(p->wstore) == 0) {
                atomic_store_explicit(&pers__down_since, 0, memory_order_relaxed);
                backoff = 0;
                LOG_INF("store reachable again");
            } else {
                backoff = backoff ? backoff * 2 : PERS_BACKOFF_MIN_MS;
                if (backoff > PERS_BACKOFF_MAX_MS)
                    backoff = PERS_BACKOFF_MAX_MS;
                retry_at = now + backoff;
            }
        }
        if (stopping && p->qlen == 0 && got_any == 0)
            break;
        int timeout = 100;
        if (p->qlen == 0 && atomic_load_explicit(&pers__down_since, memory_order_relaxed) != 0)
            timeout = retry_at > now ? (int)(retry_at - now) : 1;
        if (p->qlen) {
            uint64_t at = p->q[p->qhead].queued_ms + p->cfg->batch_delay_ms;
            if (retry_at > at)
                at = retry_at;
            timeout = at > now ? (int)(at - now) : 0;
        }
        if (got_any == 0 && timeout > 0)
            pers__wait(p, self, timeout);
    }
    return NULL;
}

/* ---- reader ------------------------------------------------------------- */

static void pers__read_msgs(pers_t *p, req_t *q)
{
    store_msg_t **msgs = NULL;
    size_t n = 0;
    bool more = false;
    int rc = store_messages_before(p->rstore, q->room_id, q->rd_before, q->rd_limit, q->rd_bytes, &msgs, &n, &more);
    if (rc < 0) {
        q->status = rc;
        return;
    }
    /* Keep seq > rd_after (join): the store gave the newest below rd_before. */
    size_t skip = 0;
    while (skip < n && msgs[skip]->seq <= q->rd_after)
        store_msg_unref(msgs[skip++]);
    if (skip)
        more = false;   /* we reached sinceSeq: nothing older is missing */
    else if (n && msgs[0]->seq <= q->rd_after + 1)
        more = false;
    memmove(msgs, msgs + skip, (n - skip) * sizeof(*msgs));
    q->msgs = msgs;
    q->nmsgs = n - skip;
    q->more = more;
    q->status = 0;
}

static void *pers__reader_main(void *arg)
{
    pers_t *p = arg;
    log_set_thread("pers-reader");
    int self = p->n + 1;
    mbox_msg_t batch[64];
    while (!atomic_load_explicit(&p->stop, memory_order_acquire)) {
        size_t got_any = 0;
        for (int from = 0; from < p->n; from++) {
            size_t got;
            while ((got = mbox_pop(p->hub, from, self, batch, 64))) {
                for (size_t i = 0; i < got; i++) {
                    req_t *q = batch[i].ptr;
                    if (batch[i].kind == MAIL_RD_CHATS) {
                        q->status = store_chats_for_user(p->rstore, q->user_id, &q->chats, &q->nchats);
                        pers__mail(p, self, connh_shard(q->connh), (mbox_msg_t){ .kind = MAIL_RD_CHATS_DONE, .ptr = q });
                    } else {
                        pers__read_msgs(p, q);
                        pers__mail(p, self, from, (mbox_msg_t){ .kind = MAIL_RD_MSGS_DONE, .ptr = q });
                    }
                }
                got_any += got;
                mbox_flush(p->hub, self);
            }
        }
        if (!got_any)
            pers__wait(p, self, 200);
    }
    return NULL;
}

int pers_start(pers_t **out, const cfg_t *cfg, mbox_hub_t *hub, int nshards, char *err, size_t errlen)
{
    pers_t *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->cfg = cfg;
    p->hub = hub;
    p->n = nshards;
    int rc = store_open(cfg->store, &p->wstore, err, errlen);
    if (rc == 0)
        rc = store_open(cfg->store, &p->rstore, err, errlen);
    if (rc == 0 && (rc = -pthread_create(&p->writer, NULL, pers__writer_main, p)) == 0) {
        if ((rc = -pthread_create(&p->reader, NULL, pers__reader_main, p)) != 0) {
            atomic_store(&p->stop, true);
            pthread_join(p->writer, NULL);
        }
    }
    if (rc < 0) {
        store_close(p->wstore);
        store_close(p->rstore);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void pers_stop(pers_t *p)
{
    /* release: pairs with the acquire loads in both loops. */
    atomic_store_explicit(&p->stop, true, memory_order_release);
    uint64_t one = 1;
    ssize_t w = write(mbox_wake_fd(p->hub, p->n), &one, sizeof(one));
    w = write(mbox_wake_fd(p->hub, p->n + 1), &one, sizeof(one));
    (void)w;
    pthread_join(p->writer, NULL);
    pthread_join(p->reader, NULL);
    store_close(p->wstore);
    store_close(p->rstore);
    free(p->q);
    free(p);
}
