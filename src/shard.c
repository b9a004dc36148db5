/* shard.c - the shard thread: one io_uring, one loop.
 *
 * Each shard owns a SO_REUSEPORT listener (the kernel spreads accepted
 * connections over the shards), a provided-buffer ring for receives, a timer
 * heap driven by a periodic ring timeout, and the consumer ends of its
 * mailboxes (an eventfd read is kept posted on the ring so a producer can
 * wake it). No locks; no blocking system call but the ring wait itself.
 *
 * One loop turn:
 *   1. reap every ready completion (accept, recv, send, tick, wake-up);
 *   2. drain the mailboxes (bounded per ring, so one busy peer cannot
 *      starve the others);
 *   3. run due timers;
 *   4. end of turn: the actors finish their batch (on_turn_end), every
 *      connection with queued frames gets one sendmsg, closing connections
 *      are finished, overflowed mail is retried and all mail is published
 *      (one release store per ring);
 *   5. submit; block in the ring only if there was nothing to do and the
 *      mailbox sleep protocol says no message slipped in (mbox.h).
 *
 * Design notes: docs/architecture.md, "Shards".
 */
#include "shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"
#include "io_ring.h"
#include "log.h"

#define SHARD_TICK_MS 50        /* timer resolution; pings and typing are coarser */
#define SHARD_MAIL_BATCH 256    /* messages taken from one ring per turn          */
#define SHARD_SQ_ENTRIES 4096

int shard_listen(const char *host, uint32_t port, int reuseport_with, uint32_t *port_out)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        LOG_ERR("cannot resolve --host %s: %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        rc = -errno;
        close(fd);
        goto out;
    }
    (void)reuseport_with;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    rc = fd;
out:
    freeaddrinfo(ai);
    return rc;
}

/* Probe the ring's features once; refuse to start rather than guess. */
static int shard__probe(shard_t *s)
{
    static const struct { int op; const char *name; } need[] = {
        { IORING_OP_ACCEPT, "ACCEPT" }, { IORING_OP_RECV, "RECV" },
        { IORING_OP_SENDMSG, "SENDMSG" }, { IORING_OP_TIMEOUT, "TIMEOUT" },
        { IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL" }, { IORING_OP_READ, "READ" },
        { IORING_OP_CLOSE, "CLOSE" },
    };
    struct io_uring_probe *p = io_uring_get_probe_ring(&s->ring);
    if (!p) {
        LOG_ERR("io_uring probe failed: the kernel is too old for ringcast");
        return -ENOSYS;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        if (!io_uring_opcode_supported(p, need[i].op)) {
            LOG_ERR("io_uring lacks IORING_OP_%s: refusing to start", need[i].name);
            rc = -ENOSYS;
        }
    }
    io_uring_free_probe(p);
    if (rc == 0 && s->id == 0)
        LOG_INF("io_uring: features 0x%x, ops ACCEPT RECV SENDMSG TIMEOUT ASYNC_CANCEL READ CLOSE present",
                s->ring.features);
    if (rc == 0 && !(s->ring.features & IORING_FEAT_FAST_POLL)) {
        LOG_ERR("io_uring lacks FEAT_FAST_POLL (kernel >= 5.7 needed): refusing to start");
        rc = -ENOSYS;
    }
    return rc;
}

static int shard__bufs(shard_t *s)
{
    s->nbufs = s->cfg->bufs_per_shard;
    s->buf_size = s->cfg->buf_size;
    size_t ring_bytes = s->nbufs * sizeof(struct io_uring_buf);
    s->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (s->br == MAP_FAILED) {
        s->br = NULL;
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg = { .ring_addr = (unsigned long)s->br,
                                    .ring_entries = s->nbufs, .bgid = IO_BGID };
    int rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (rc < 0) {
        LOG_ERR("io_uring_register_buf_ring: %s (kernel >= 5.19 needed): refusing to start",
                err_str(rc));
        return rc;
    }
    s->bufs = malloc((size_t)s->nbufs * s->buf_size);
    if (!s->bufs)
        return -ENOMEM;
    io_uring_buf_ring_init(s->br);
    for (uint32_t i = 0; i < s->nbufs; i++)
        io_uring_buf_ring_add(s->br, s->bufs + (size_t)i * s->buf_size, s->buf_size,
                              (unsigned short)i, io_uring_buf_ring_mask(s->nbufs), (int)i);
    io_uring_buf_ring_advance(s->br, (int)s->nbufs);
    return 0;
}

int shard_init(shard_t *s, int id, int n, const cfg_t *cfg, const shard_hooks_t *hooks,
               mbox_hub_t *hub, int listen_fd)
{
    memset(s, 0, sizeof(*s));
    s->id = id;
    s->n = n;
    s->cfg = cfg;
    s->hooks = hooks;
    s->hub = hub;
    s->listen_fd = listen_fd;
    s->accepting = true;
    /* SINGLE_ISSUER ties the ring to the task that submits first; the ring
     * starts disabled (R_DISABLED) and the shard thread enables it, so that
     * task is the shard thread, not main. */
    struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
                                          IORING_SETUP_R_DISABLED,
                                 .cq_entries = SHARD_SQ_ENTRIES * 8 };
    p.flags |= IORING_SETUP_CQSIZE;
    int rc = io_uring_queue_init_params(SHARD_SQ_ENTRIES, &s->ring, &p);
    if (rc == -EINVAL) {   /* kernels before 6.0 lack SINGLE_ISSUER */
        p = (struct io_uring_params){ .flags = IORING_SETUP_CQSIZE, .cq_entries = SHARD_SQ_ENTRIES * 8 };
        rc = io_uring_queue_init_params(SHARD_SQ_ENTRIES, &s->ring, &p);
    }
    if (rc < 0) {
        LOG_ERR("io_uring_queue_init: %s", err_str(rc));
        return rc;
    }
    s->ring_disabled = p.flags & IORING_SETUP_R_DISABLED;
    if ((rc = shard__probe(s)) || (rc = shard__bufs(s)))
        return rc;
    s->overflow = calloc((size_t)n + 2, sizeof(*s->overflow));
    if (!s->overflow)
        return -ENOMEM;
    s->tick_ts.tv_nsec = SHARD_TICK_MS * 1000000LL;
    return 0;
}

void shard_mail(shard_t *s, int to, const mbox_msg_t *m)
{
    shard_overflow_t *o = &s->overflow[to];
    if (o->len == 0 && mbox_push(s->hub, s->id, to, m) == 0)
        return;
    if (o->len == o->cap) {   /* keep FIFO order behind what already waits */
        uint32_t cap = o->cap ? o->cap * 2 : 256;
        mbox_msg_t *q = malloc(cap * sizeof(*q));
        if (!q) {
            LOG_ERR("out of memory growing a mailbox overflow queue");
            abort();   /* dropping would break the no-loss guarantee */
        }
        for (uint32_t i = 0; i < o->len; i++)
            q[i] = o->q[(o->head + i) % o->cap];
        free(o->q);
        o->q = q;
        o->cap = cap;
        o->head = 0;
    }
    o->q[(o->head + o->len) % o->cap] = *m;
    o->len++;
}

static void shard__retry_overflow(shard_t *s)
{
    for (int to = 0; to < s->n + 2; to++) {
        shard_overflow_t *o = &s->overflow[to];
        while (o->len && mbox_push(s->hub, s->id, to, &o->q[o->head]) == 0) {
            o->head = (o->head + 1) % o->cap;
            o->len--;
        }
    }
}

static bool shard__overflow_pending(const shard_t *s)
{
    for (int to = 0; to < s->n + 2; to++)
        if (s->overflow[to].len)
            return true;
    return false;
}

void shard_timer(shard_t *s, uint64_t at_ms, uint64_t id)
{
    if (tmr_add(&s->timers, at_ms, id) < 0) {
        LOG_ERR("out of memory adding a timer");
        abort();
    }
}

static void shard__arm_tick(shard_t *s)
{
    struct io_uring_sqe *sqe = io_sqe(s);
    io_uring_prep_timeout(sqe, &s->tick_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, io_ud(IO_UD_TICK, 0, 0));
}

static void shard__arm_wake(shard_t *s)
{
    struct io_uring_sqe *sqe = io_sqe(s);
    io_uring_prep_read(sqe, mbox_wake_fd(s->hub, s->id), &s->wake_val, sizeof(s->wake_val), 0);
    io_uring_sqe_set_data64(sqe, io_ud(IO_UD_WAKE, 0, 0));
}

static bool shard__drain_mail(shard_t *s)
{
    mbox_msg_t batch[64];
    bool more = false;
    /* from == s->id included: a shard mails itself (a user and a room on the
     * same shard) through its own ring, so every hop has one code path. */
    for (int from = 0; from < s->n + 2; from++) {
        size_t taken = 0, got;
        while (taken < SHARD_MAIL_BATCH &&
               (got = mbox_pop(s->hub, from, s->id, batch, sizeof(batch) / sizeof(batch[0])))) {
            for (size_t i = 0; i < got; i++)
                s->hooks->on_mail(s, from, &batch[i]);
            taken += got;
        }
        if (taken >= SHARD_MAIL_BATCH)
            more = true;
        if (taken)
            atomic_fetch_add_explicit(&s->stats.msgs_in, taken, memory_order_relaxed);
    }
    return more;
}

static void *shard__main(void *arg)
{
    shard_t *s = arg;
    char name[16];
    snprintf(name, sizeof(name), "shard-%d", s->id);
    log_set_thread(name);
    s->now_ms = tmr_now_ms();
    if (s->ring_disabled) {
        /* liburing 2.3 declares io_uring_enable_rings but does not export it */
        long rc = syscall(__NR_io_uring_register, s->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        if (rc < 0) {
            LOG_ERR("enabling the io_uring: %s", err_str(-errno));
            abort();
        }
    }
    io_arm_accept(s);
    shard__arm_wake(s);
    shard__arm_tick(s);
    uint64_t next_stall_check = s->now_ms + 1000;
    bool stopping = false;
    for (;;) {
        s->now_ms = tmr_now_ms();
        if (!stopping && atomic_load_explicit(&s->stop, memory_order_acquire)) {
            /* Drain: stop accepting, close every socket, then leave once
             * every connection is finished. */
            stopping = true;
            s->accepting = false;
            io_close_all(s);
        }
        unsigned head, reaped = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            if (io_ud_kind(ud) == IO_UD_TICK)
                shard__arm_tick(s);
            else if (io_ud_kind(ud) == IO_UD_WAKE)
                shard__arm_wake(s);
            else
                io_on_cqe(s, cqe);
            reaped++;
        }
        io_uring_cq_advance(&s->ring, reaped);

        bool busy = shard__drain_mail(s);
        tmr_ent_t t;
        while (tmr_pop(&s->timers, s->now_ms, &t))
            s->hooks->on_timer(s, t.id);
        if (s->now_ms >= next_stall_check) {
            io_check_stalls(s);
            next_stall_check = s->now_ms + 1000;
        }

        s->hooks->on_turn_end(s);
        io_flush_dirty(s);
        io_finish_closing(s);
        shard__retry_overflow(s);
        mbox_flush(s->hub, s->id);

        if (stopping && atomic_load_explicit(&s->stats.conns, memory_order_relaxed) == 0 &&
            !shard__overflow_pending(s))
            break;
        if (reaped == 0 && !busy && io_uring_cq_ready(&s->ring) == 0) {
            if (mbox_sleep_begin(s->hub, s->id))
                io_uring_submit_and_wait(&s->ring, 1);
            else
                io_uring_submit(&s->ring);
            mbox_sleep_end(s->hub, s->id);
        } else {
            io_uring_submit(&s->ring);
        }
    }
    s->hooks->on_stop(s);
    mbox_flush(s->hub, s->id);
    return NULL;
}

int shard_start(shard_t *s)
{
    int rc = pthread_create(&s->thread, NULL, shard__main, s);
    return rc ? -rc : 0;
}

void shard_stop(shard_t *s)
{
    /* release: pairs with the acquire load at the top of the loop turn. */
    atomic_store_explicit(&s->stop, true, memory_order_release);
    uint64_t one = 1;
    ssize_t w = write(mbox_wake_fd(s->hub, s->id), &one, sizeof(one));
    (void)w;
}

void shard_join(shard_t *s) { pthread_join(s->thread, NULL); }

void shard_deinit(shard_t *s)
{
    io_uring_queue_exit(&s->ring);
    if (s->br)
        munmap(s->br, s->nbufs * sizeof(struct io_uring_buf));
    free(s->bufs);
    for (int i = 0; i < s->n + 2 && s->overflow; i++)
        free(s->overflow[i].q);
    free(s->overflow);
    while (s->sendctx_free) {
        io_sendctx_t *x = s->sendctx_free;
        s->sendctx_free = x->next;
        free(x);
    }
    free(s->conns);
    free(s->free_slots);
    tmr_deinit(&s->timers);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
}
