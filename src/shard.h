/* shard.h - a shard: one thread, one io_uring, a slice of users and rooms.
 *
 * The runtime here knows sockets, buffers, timers and mailboxes; it knows
 * nothing of users, rooms or packets. The actors plug in through
 * shard_hooks_t (set once at startup) and keep their state in shard->actor.
 *
 * Thread indexes in the mailbox hub: shards 0..n-1, then the persistence
 * writer (n) and the persistence reader (n + 1).
 */
#ifndef RC_SHARD_H
#define RC_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../actors/mbox.h"
#include "cfg.h"
#include "io.h"
#include "tmr.h"

typedef struct shard shard_t;

typedef struct {
    void (*on_open)(shard_t *s, io_conn_t *c);                 /* accepted connection */
    void (*on_data)(shard_t *s, io_conn_t *c, const uint8_t *p, size_t n);
    void (*on_closed)(shard_t *s, io_conn_t *c);               /* last call for c     */
    /* c was detached (shard_detach) and is quiescent: move it to its new
     * owner. The fd is no longer ours after this returns. */
    void (*on_detached)(shard_t *s, io_conn_t *c, int fd);
    void (*on_mail)(shard_t *s, int from, mbox_msg_t *m);
    void (*on_timer)(shard_t *s, uint64_t id);                 /* a due tmr entry     */
    void (*on_turn_end)(shard_t *s);                           /* before sends go out */
    void (*on_stop)(shard_t *s);                               /* thread is exiting   */
} shard_hooks_t;

typedef struct {
    mbox_msg_t *q;            /* FIFO of messages the ring could not take */
    uint32_t head, len, cap;
} shard_overflow_t;

typedef struct {
    _Atomic uint64_t conns;        /* open connections (written by this shard)   */
    _Atomic uint64_t frames_out;   /* frames queued to sockets                   */
    _Atomic uint64_t bytes_out;    /* bytes handed to send                       */
    _Atomic uint64_t msgs_in;      /* mailbox messages received                  */
} shard_stats_t;

struct shard {
    int id;                        /* 0..n-1                                     */
    int n;                         /* number of shards                           */
    const cfg_t *cfg;
    const shard_hooks_t *hooks;
    mbox_hub_t *hub;
    pthread_t thread;
    struct io_uring ring;
    int listen_fd;
    uint64_t now_ms;               /* monotonic ms, refreshed every loop turn    */

    /* provided receive buffers */
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    uint32_t nbufs, buf_size;
    bool recv_starved;             /* a recv ended with ENOBUFS: re-arm later    */

    /* connections */
    io_conn_t **conns;             /* slot -> connection (NULL when free)        */
    uint32_t conns_cap;
    uint32_t *free_slots;
    uint32_t free_len;
    uint32_t dirty_head;           /* list of connections with output to send    */
    uint32_t closing_head;         /* list of connections to finish closing      */
    io_sendctx_t *sendctx_free;

    tmr_heap_t timers;
    struct __kernel_timespec tick_ts;
    uint64_t wake_val;             /* eventfd read target                        */
    bool accept_armed;
    bool ring_disabled;            /* created R_DISABLED: enabled by the thread */

    shard_overflow_t *overflow;    /* [n + 2] per destination thread             */
    void *actor;                   /* the actors' per-shard state                */
    shard_stats_t stats;
    _Atomic bool stop;             /* set by the main thread                     */
    bool accepting;
};

/* shard_init prepares the ring, buffers and listener of shard id. Returns 0
 * or a negative error with the reason logged. Called on the main thread. */
int shard_init(shard_t *s, int id, int n, const cfg_t *cfg, const shard_hooks_t *hooks,
               mbox_hub_t *hub, int listen_fd);
int shard_start(shard_t *s);
/* shard_stop asks the thread to exit (from any thread) and wakes it. */
void shard_stop(shard_t *s);
void shard_join(shard_t *s);
void shard_deinit(shard_t *s);

/* shard_listen opens a SO_REUSEPORT listener on host:port; *port_out gets the
 * bound port (for --port 0). Returns the fd or a negative error. */
int shard_listen(const char *host, uint32_t port, int reuseport_with, uint32_t *port_out);

/* shard_mail sends a message to thread `to` (shard or persistence thread).
 * Never blocks and never drops: when the ring is full the message waits in
 * this shard's overflow queue for that destination, in order. */
void shard_mail(shard_t *s, int to, const mbox_msg_t *m);

/* shard_timer schedules on_timer(id) at at_ms (monotonic). */
void shard_timer(shard_t *s, uint64_t at_ms, uint64_t id);

/* Connections. Handles pack (shard, slot, generation) so a stale handle is
 * recognised after its slot was reused. */
typedef uint64_t connh_t;
static inline connh_t shard_connh(const shard_t *s, const io_conn_t *c)
{
    return ((uint64_t)(uint32_t)s->id << 48) | ((uint64_t)c->gen << 32) | c->slot;
}
static inline int connh_shard(connh_t h) { return (int)(h >> 48); }
/* shard_conn returns the live connection for a handle of this shard, or NULL. */
io_conn_t *shard_conn(shard_t *s, connh_t h);

/* shard_send queues a frame (takes one reference of blob) on c. Returns 0,
 * or ERR_FULL when the socket's outbound queue is over its limit (the
 * caller closes it as a slow consumer). */
int shard_send(shard_t *s, io_conn_t *c, buf_blob_t *blob);
/* shard_close starts closing c: in-flight operations are cancelled and
 * on_closed runs once after the last completion, at the end of a loop turn.
 * With after_flush, queued output is sent first. */
void shard_close(shard_t *s, io_conn_t *c, bool after_flush);
/* shard_detach stops reading c and hands it to on_detached once no
 * operation is in flight and its output is sent. */
void shard_detach(shard_t *s, io_conn_t *c);
/* shard_adopt takes an fd handed over by another shard: makes a connection,
 * starts reading. Returns the connection or NULL (fd closed). */
io_conn_t *shard_adopt(shard_t *s, int fd);

#endif
