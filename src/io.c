/* io.c - connections on a shard's io_uring: accept, multishot recv into
 * provided buffers, coalesced sendmsg of shared frames, cancel and close,
 * and the hand-over of a socket to another shard.
 *
 * Runs on the owning shard's thread only.
 *
 * Invariants:
 *  1. A connection's slot is reused only after inflight == 0: no completion
 *     can name a freed connection. user_data also carries the generation,
 *     and a completion whose generation does not match is ignored (belt and
 *     braces).
 *  2. A buffer named by an in-flight send (the frames of the first
 *     sending_segs segments, the leased io_sendctx_t) belongs to the kernel
 *     until its completion is reaped; shard_send only appends behind them.
 *  3. At most one recv and one send are in flight per connection; everything
 *     queued during one loop turn leaves in one sendmsg (up to IO_IOV_MAX
 *     frames) at the end of the turn.
 *  4. on_closed / on_detached run exactly once, from io_finish_closing at
 *     the end of a loop turn, never under a caller that still uses c.
 *
 * Design notes: docs/architecture.md, "Ring I/O".
 */
#include "io_ring.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

struct io_uring_sqe *io_sqe(shard_t *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        /* The submission queue is full: push it to the kernel and retry. */
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    if (!sqe) {
        LOG_ERR("io_uring submission queue exhausted");
        abort();   /* our sizing mistake, not a peer's: see shard_init */
    }
    return sqe;
}

static io_conn_t *io__conn_new(shard_t *s, int fd)
{
    if (s->free_len == 0) {
        uint32_t cap = s->conns_cap ? s->conns_cap * 2 : 1024;
        io_conn_t **conns = realloc(s->conns, cap * sizeof(*conns));
        uint32_t *free_slots = conns ? realloc(s->free_slots, cap * sizeof(*free_slots)) : NULL;
        if (!conns || !free_slots) {
            if (conns)
                s->conns = conns;
            return NULL;
        }
        s->conns = conns;
        s->free_slots = free_slots;
        for (uint32_t i = cap; i > s->conns_cap; i--) {
            s->conns[i - 1] = NULL;
            s->free_slots[s->free_len++] = i - 1;
        }
        s->conns_cap = cap;
    }
    io_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    uint32_t slot = s->free_slots[--s->free_len];
    static _Thread_local uint16_t io__gen;
    c->fd = fd;
    c->slot = slot;
    c->gen = ++io__gen;
    s->conns[slot] = c;
    atomic_fetch_add_explicit(&s->stats.conns, 1, memory_order_relaxed);
    return c;
}

static void io__conn_free(shard_t *s, io_conn_t *c)
{
    for (uint32_t i = 0; i < c->seg_len; i++)
        buf_blob_unref(c->segs[(c->seg_head + i) % c->seg_cap].blob);
    free(c->segs);
    s->conns[c->slot] = NULL;
    s->free_slots[s->free_len++] = c->slot;
    atomic_fetch_sub_explicit(&s->stats.conns, 1, memory_order_relaxed);
    free(c);
}

io_conn_t *shard_conn(shard_t *s, connh_t h)
{
    uint32_t slot = (uint32_t)h;
    if (connh_shard(h) != s->id || slot >= s->conns_cap)
        return NULL;
    io_conn_t *c = s->conns[slot];
    if (!c || c->gen != (uint16_t)(h >> 32) || (c->flags & (IO_CLOSING | IO_DETACHING)))
        return NULL;
    return c;
}

static void io__arm_recv(shard_t *s, io_conn_t *c)
{
    struct io_uring_sqe *sqe = io_sqe(s);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = IO_BGID;
    io_uring_sqe_set_data64(sqe, io_ud(IO_UD_RECV, c->gen, c->slot));
    c->flags |= IO_RECV_ARMED;
    c->inflight++;
}

void io_arm_accept(shard_t *s)
{
    struct io_uring_sqe *sqe = io_sqe(s);
    io_uring_prep_multishot_accept(sqe, s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, io_ud(IO_UD_ACCEPT, 0, 0));
    s->accept_armed = true;
}

static io_conn_t *io__start(shard_t *s, int fd)
{
    int one = 1;
    /* Small frames must leave at once: latency over packet count. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    io_conn_t *c = io__conn_new(s, fd);
    if (!c) {
        LOG_WRN("out of memory for a new connection; closing fd %d", fd);
        close(fd);
        return NULL;
    }
    io__arm_recv(s, c);
    return c;
}

io_conn_t *shard_adopt(shard_t *s, int fd) { return io__start(s, fd); }

static void io__mark_dirty(shard_t *s, io_conn_t *c)
{
    if (c->flags & IO_DIRTY)
        return;
    c->flags |= IO_DIRTY;
    c->next_dirty = s->dirty_head;
    s->dirty_head = c->slot + 1;
}

static void io__list_closing(shard_t *s, io_conn_t *c)
{
    if (c->flags & IO_LISTED_CLOSE)
        return;
    c->flags |= IO_LISTED_CLOSE;
    c->next_closing = s->closing_head;
    s->closing_head = c->slot + 1;
}

int shard_send(shard_t *s, io_conn_t *c, buf_blob_t *blob)
{
    if (c->flags & (IO_CLOSING | IO_EOF)) {
        buf_blob_unref(blob);
        return 0;
    }
    const cfg_t *cfg = s->cfg;
    if ((blob->flags & BUF_BLOB_DROPPABLE) && c->out_bytes > cfg->outbound_max_bytes / 4) {
        /* Congested: typing and presence go first (protocol.md §8). */
        buf_blob_unref(blob);
        return 0;
    }
    if (c->out_bytes + blob->len > cfg->outbound_max_bytes) {
        buf_blob_unref(blob);
        return ERR_FULL;
    }
    if (c->seg_len == c->seg_cap) {
        uint32_t cap = c->seg_cap ? c->seg_cap * 2 : 4;
        io_seg_t *segs = malloc(cap * sizeof(*segs));
        if (!segs) {
            buf_blob_unref(blob);
            return -ENOMEM;
        }
        for (uint32_t i = 0; i < c->seg_len; i++)
            segs[i] = c->segs[(c->seg_head + i) % c->seg_cap];
        free(c->segs);
        c->segs = segs;
        c->seg_cap = cap;
        c->seg_head = 0;
    }
    c->segs[(c->seg_head + c->seg_len) % c->seg_cap] = (io_seg_t){ .blob = blob, .off = 0 };
    c->seg_len++;
    if (c->out_bytes == 0)
        c->stalled_since_ms = s->now_ms;
    c->out_bytes += blob->len;
    atomic_fetch_add_explicit(&s->stats.frames_out, 1, memory_order_relaxed);
    io__mark_dirty(s, c);
    return 0;
}

static void io__submit_send(shard_t *s, io_conn_t *c)
{
    io_sendctx_t *x = s->sendctx_free;
    if (x)
        s->sendctx_free = x->next;
    else if (!(x = malloc(sizeof(*x))))
        return;   /* retried on the next turn: the conn stays queued */
    uint32_t n = c->seg_len < IO_IOV_MAX ? c->seg_len : IO_IOV_MAX;
    for (uint32_t i = 0; i < n; i++) {
        io_seg_t *g = &c->segs[(c->seg_head + i) % c->seg_cap];
        x->iov[i].iov_base = g->blob->data + g->off;
        x->iov[i].iov_len = g->blob->len - g->off;
    }
    memset(&x->msg, 0, sizeof(x->msg));
    x->msg.msg_iov = x->iov;
    x->msg.msg_iovlen = n;
    struct io_uring_sqe *sqe = io_sqe(s);
    io_uring_prep_sendmsg(sqe, c->fd, &x->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, io_ud(IO_UD_SEND, c->gen, c->slot));
    c->sctx = x;
    c->sending_segs = n;
    c->flags |= IO_SENDING;
    c->inflight++;
}

void io_flush_dirty(shard_t *s)
{
    while (s->dirty_head) {
        io_conn_t *c = s->conns[s->dirty_head - 1];
        s->dirty_head = c->next_dirty;
        c->flags &= ~IO_DIRTY;
        if (!(c->flags & (IO_SENDING | IO_CLOSING | IO_EOF)) && c->seg_len)
            io__submit_send(s, c);
    }
}

static void io__cancel(shard_t *s, io_conn_t *c, int kind)
{
    struct io_uring_sqe *sqe = io_sqe(s);
    io_uring_prep_cancel64(sqe, io_ud(kind, c->gen, c->slot), 0);
    io_uring_sqe_set_data64(sqe, io_ud(IO_UD_CANCEL, 0, 0));
}

void shard_close(shard_t *s, io_conn_t *c, bool after_flush)
{
    if (c->flags & IO_CLOSING)
        return;
    if ((c->flags & IO_RECV_ARMED) && !(c->flags & IO_CANCELLING)) {
        c->flags |= IO_CANCELLING;   /* no more input either way */
        io__cancel(s, c, IO_UD_RECV);
    }
    if (after_flush && !(c->flags & IO_EOF) && (c->seg_len || (c->flags & IO_SENDING))) {
        c->flags |= IO_FLUSH_CLOSE;   /* io__on_send closes when drained */
        return;
    }
    c->flags |= IO_CLOSING;
    if (c->flags & IO_SENDING)
        io__cancel(s, c, IO_UD_SEND);
    io__list_closing(s, c);
}

void shard_detach(shard_t *s, io_conn_t *c)
{
    c->flags |= IO_DETACHING;
    if ((c->flags & IO_RECV_ARMED) && !(c->flags & IO_CANCELLING)) {
        c->flags |= IO_CANCELLING;
        io__cancel(s, c, IO_UD_RECV);
    }
    io__list_closing(s, c);
}

void io_finish_closing(shard_t *s)
{
    uint32_t keep = 0;
    while (s->closing_head) {
        io_conn_t *c = s->conns[s->closing_head - 1];
        s->closing_head = c->next_closing;
        c->flags &= ~IO_LISTED_CLOSE;
        bool quiet = c->inflight == 0;
        if (quiet && (c->flags & IO_DETACHING) && !(c->flags & IO_CLOSING) && c->seg_len == 0) {
            int fd = c->fd;
            s->hooks->on_detached(s, c, fd);
            io__conn_free(s, c);
        } else if (quiet && (c->flags & IO_CLOSING)) {
            s->hooks->on_closed(s, c);
            struct io_uring_sqe *sqe = io_sqe(s);
            io_uring_prep_close(sqe, c->fd);
            io_uring_sqe_set_data64(sqe, io_ud(IO_UD_CLOSE, 0, 0));
            io__conn_free(s, c);
        } else {
            /* Not yet: keep it listed (re-linked below). */
            c->next_closing = keep;
            keep = c->slot + 1;
            c->flags |= IO_LISTED_CLOSE;
        }
    }
    s->closing_head = keep;
}

static void io__on_recv(shard_t *s, io_conn_t *c, struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) {
        c->flags &= ~(IO_RECV_ARMED | IO_CANCELLING);
        c->inflight--;
    }
    int res = cqe->res;
    if (res > 0) {
        uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *p = s->bufs + (size_t)bid * s->buf_size;
        if (!(c->flags & IO_CLOSING))
            s->hooks->on_data(s, c, p, (size_t)res);
        /* The bytes were consumed or copied: the buffer goes back at once. */
        io_uring_buf_ring_add(s->br, p, s->buf_size, (unsigned short)bid,
                              io_uring_buf_ring_mask(s->nbufs), 0);
        io_uring_buf_ring_advance(s->br, 1);
    } else if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED)) {
        c->flags |= IO_EOF;
        if (res < 0)
            LOG_DBG("recv on fd %d: %s", c->fd, err_str(res));
        shard_close(s, c, false);
    }
    if (!more && !(c->flags & (IO_CLOSING | IO_DETACHING | IO_EOF | IO_FLUSH_CLOSE)))
        io__arm_recv(s, c);   /* multishot ended (ENOBUFS, or the kernel chose to) */
    if (c->flags & (IO_CLOSING | IO_DETACHING))
        io__list_closing(s, c);
}

static void io__on_send(shard_t *s, io_conn_t *c, int res)
{
    c->flags &= ~IO_SENDING;
    c->inflight--;
    io_sendctx_t *x = c->sctx;
    c->sctx = NULL;
    x->next = s->sendctx_free;
    s->sendctx_free = x;
    if (res < 0) {
        if (res != -ECANCELED)
            LOG_DBG("send on fd %d: %s", c->fd, err_str(res));
        c->flags |= IO_EOF;
        shard_close(s, c, false);
        io__list_closing(s, c);
        return;
    }
    atomic_fetch_add_explicit(&s->stats.bytes_out, (uint64_t)res, memory_order_relaxed);
    size_t left = (size_t)res;
    c->out_bytes -= left;
    while (left && c->seg_len) {
        io_seg_t *g = &c->segs[c->seg_head];
        size_t avail = g->blob->len - g->off;
        if (left < avail) {
            g->off += (uint32_t)left;
            break;
        }
        left -= avail;
        buf_blob_unref(g->blob);
        c->seg_head = (c->seg_head + 1) % c->seg_cap;
        c->seg_len--;
    }
    c->stalled_since_ms = s->now_ms;
    if (c->seg_len) {
        io__mark_dirty(s, c);
    } else {
        free(c->segs);   /* an idle connection holds no queue memory */
        c->segs = NULL;
        c->seg_cap = c->seg_head = 0;
        if (c->flags & IO_FLUSH_CLOSE)
            shard_close(s, c, false);
    }
    if (c->flags & (IO_CLOSING | IO_DETACHING))
        io__list_closing(s, c);
}

void io_on_cqe(shard_t *s, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    int kind = io_ud_kind(ud);
    if (kind == IO_UD_ACCEPT) {
        if (cqe->res >= 0) {
            if (s->accepting) {
                io_conn_t *c = io__start(s, cqe->res);
                if (c)
                    s->hooks->on_open(s, c);
            } else {
                close(cqe->res);
            }
        } else if (cqe->res != -ECANCELED) {
            LOG_WRN("accept: %s", err_str(cqe->res));
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
            s->accept_armed = false;
            if (s->accepting)
                io_arm_accept(s);
        }
        return;
    }
    if (kind != IO_UD_RECV && kind != IO_UD_SEND)
        return;   /* cancel and close completions carry nothing we need */
    uint32_t slot = io_ud_slot(ud);
    io_conn_t *c = slot < s->conns_cap ? s->conns[slot] : NULL;
    if (!c || c->gen != io_ud_gen(ud)) {
        LOG_ERR("completion for a freed connection (slot %u)", slot);
        return;
    }
    if (kind == IO_UD_RECV)
        io__on_recv(s, c, cqe);
    else
        io__on_send(s, c, cqe->res);
}

void io_check_stalls(shard_t *s)
{
    uint64_t limit = s->cfg->outbound_stall_ms;
    for (uint32_t i = 0; i < s->conns_cap; i++) {
        io_conn_t *c = s->conns[i];
        if (c && c->out_bytes && !(c->flags & IO_CLOSING) &&
            s->now_ms - c->stalled_since_ms > limit) {
            LOG_INF("closing a slow consumer: %llu bytes not drained for %u ms",
                    (unsigned long long)c->out_bytes, (unsigned)limit);
            shard_close(s, c, false);
        }
    }
}

void io_close_all(shard_t *s)
{
    for (uint32_t i = 0; i < s->conns_cap; i++) {
        io_conn_t *c = s->conns[i];
        if (c && !(c->flags & IO_CLOSING))
            shard_close(s, c, false);
    }
}
