/* rc_client.h - a ringcast client (Socket.IO v4 over WebSocket) that owns no
 * event loop (protocol.md; notes/socketio-wire.md).
 *
 * Design: readiness-based and single-threaded. The caller owns the loop
 * (epoll, poll, io_uring with IORING_OP_POLL_ADD, ...). It watches rcc_fd()
 * for readability always and for writability while rcc_want_write() is
 * true, and it calls rcc_on_readable() / rcc_on_writable() when the kernel
 * says so; the library then does the non-blocking read()/send() itself.
 * Time is the caller's too: every entry point that may arm a timer takes
 * now_ms (any monotonic millisecond clock, the same one throughout), and
 * rcc_next_timer_ms() tells when to call rcc_on_timer(). Because the library
 * reads until EAGAIN and tolerates spurious calls (an extra rcc_on_readable()
 * just sees EAGAIN), the same code works with level-triggered epoll,
 * edge-triggered epoll and one-shot io_uring polls.
 *
 * After any call into the library (and after a callback ran), the caller
 * re-reads three things and updates its registration when they changed:
 *   rcc_fd()       -1 while there is no socket (backoff, closed);
 *   rcc_sock_id()  changes whenever a new socket is opened, because a new
 *                  socket may reuse the old descriptor number, which then
 *                  has to be registered again (closing it dropped it from
 *                  epoll);
 *   rcc_want_write()  output is queued: watch for writability (or call
 *                  rcc_flush() at the end of the loop turn).
 *
 * Output is coalesced: rcc_emit() and rcc_join() only append to the
 * client's output buffer; bytes leave in rcc_on_*(), or in rcc_flush().
 *
 * Memory: one small struct per client plus its token; input and output
 * buffers exist only while bytes wait in them. A per-thread 64 KiB scratch
 * buffer (shared by every client of that thread) receives read() data.
 *
 * Threads: a client is used by one thread at a time; different clients may
 * live on different threads.
 *
 * Reconnection: after any drop except rcc_close() and CONNECT_ERROR
 * UNAUTHORIZED (and only when opts.reconnect), the client waits
 * min(backoff_max, backoff_min * 2^attempt) with +-50% jitter, connects
 * again, authenticates with the same token and, once `ready` arrives,
 * re-joins every room given to rcc_join() with sinceSeq = the highest seq
 * it has seen in that room.
 */
#ifndef RC_CLIENT_H
#define RC_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct rcc rcc_t;

typedef enum { RCC_MSGPACK = 0, RCC_JSON = 1 } rcc_enc_t;

typedef enum {
    RCC_ST_IDLE = 0,     /* made, rcc_connect() not called yet                  */
    RCC_ST_CONNECTING,   /* TCP connect in flight                               */
    RCC_ST_UPGRADING,    /* HTTP upgrade sent, waiting for 101                  */
    RCC_ST_OPENING,      /* WebSocket up, waiting for Engine.IO OPEN            */
    RCC_ST_AUTHING,      /* Socket.IO CONNECT sent, waiting for the reply       */
    RCC_ST_CONNECTED,    /* CONNECT accepted, waiting for `ready`               */
    RCC_ST_READY,        /* `ready` received: emits are accepted                */
    RCC_ST_BACKOFF,      /* dropped, waiting to reconnect                       */
    RCC_ST_CLOSED,       /* closed for good (rcc_close, UNAUTHORIZED, no reconnect) */
} rcc_state_t;

/* Callbacks. Every json_t handed to a callback is borrowed: valid during the
 * call only (json_incref() it to keep it). A callback may call rcc_emit(),
 * rcc_join(), rcc_forget(), rcc_flush(), rcc_close() and rcc_connect() on any
 * client, and rcc_free() on other clients; never rcc_free() on its own
 * client (close it, then free it after the rcc_on_*() call returns), and
 * never rcc_on_readable/writable/timer() (they share the thread's read
 * buffer with the parse that is running the callback). */
typedef struct {
    /* `ready` arrived; chats is its `chats` array (protocol.md §7). */
    void (*on_ready)(rcc_t *c, void *ud, json_t *chats);
    /* Any other server event; payload is its first argument or NULL. The
     * acks of room:join requests the library sends itself (rcc_join) come
     * here too, as the event "room:join" with the ack object as payload,
     * after the library has taken the seqs from it. */
    void (*on_event)(rcc_t *c, void *ud, const char *name, json_t *payload);
    /* The connection dropped. reason: "UNAUTHORIZED", "TOO_MANY_CONNECTIONS"
     * (or another CONNECT_ERROR code), "io server disconnect", "io client
     * disconnect", "transport close", "transport error", "ping timeout",
     * "parse error", "handshake timeout", "handshake failed", "out of memory".
     * will_reconnect tells whether a reconnect is scheduled. */
    void (*on_disconnect)(rcc_t *c, void *ud, const char *reason, bool will_reconnect);
    /* Optional (NULL costs nothing): offered every server EVENT before any
     * jansson decode, for clients that cannot afford a decode per message
     * (the load harness). event[0..event_len) is the name (not
     * NUL-terminated; names with JSON escapes are not offered); payload
     * [0..len) is the encoded first argument exactly as it came off the
     * wire (JSON text when enc is RCC_JSON, one msgpack value when
     * RCC_MSGPACK), or NULL/0 when the event has none. The library has
     * checked the packet's framing (type, namespace "/", ack id, the name,
     * the extent of the payload) but not the payload's contents. Return
     * true when handled: the library then skips the decode and on_event (it
     * still answers an ack the server asked for). Return false to have the
     * event decoded and delivered to on_event as usual. Not offered: `ready`
     * (the library needs it), events with more than one argument, and
     * message:* events while rcc_join() rooms are remembered (the library
     * takes their seqs for re-joins). The bytes are valid during the call
     * only. The same rules as for on_event apply to what it may call. */
    bool (*on_raw)(rcc_t *c, void *ud, const char *event, size_t event_len, const uint8_t *payload, size_t len,
                   int enc);
} rcc_cbs_t;

typedef struct {
    const char *host;           /* numeric IPv4/IPv6 or a name (resolved once, blocking, in rcc_new) */
    uint16_t port;              /* broker port                                     */
    const char *token;          /* JWT sent as CONNECT auth {token}; copied        */
    rcc_enc_t encoding;         /* RCC_MSGPACK (default) or RCC_JSON               */
    const char *bind_addr;      /* optional numeric source address, e.g. "127.0.0.7" */
    bool reconnect;             /* reconnect after drops (see above)              */
    uint32_t backoff_min_ms;    /* first reconnect delay; 0 means 500              */
    uint32_t backoff_max_ms;    /* delay cap; 0 means 5000                         */
    uint32_t handshake_timeout_ms; /* TCP connect to CONNECT reply; 0 means 10000  */
    uint32_t ack_timeout_ms;    /* 0: acks wait until the connection drops        */
    uint32_t out_max_bytes;     /* queued output cap for rcc_emit; 0 means 4 MiB  */
    uint64_t seed;              /* jitter, WebSocket keys and masks; 0: from getrandom */
    rcc_cbs_t cbs;
    void *ud;                   /* passed to every callback                        */
} rcc_opts_t;

/* An ack callback runs exactly once: with the ack's first argument (the
 * {"ok":...} object), or with NULL when the connection dropped, the ack timed
 * out or the client was closed or freed first. */
typedef void (*rcc_ack_cb)(rcc_t *c, void *ud, json_t *ack);

/* rcc_new copies opts and resolves the host. Returns NULL on a bad option
 * (no host, port or token), an unresolvable host or allocation failure. */
rcc_t *rcc_new(const rcc_opts_t *opts);

/* rcc_connect starts a non-blocking connect (IDLE or CLOSED state only).
 * Returns 0 (in progress: watch rcc_fd), -EALREADY when not idle or closed,
 * or -errno from socket/bind/connect (no callback runs, the state stays). */
int rcc_connect(rcc_t *c, uint64_t now_ms);

int rcc_fd(const rcc_t *c);
uint32_t rcc_sock_id(const rcc_t *c);
bool rcc_want_write(const rcc_t *c);
rcc_state_t rcc_state(const rcc_t *c);
/* The user id from `ready`, "" before it. */
const char *rcc_user_id(const rcc_t *c);

/* rcc_on_readable / rcc_on_writable handle readiness (errors and hang-ups
 * too: report EPOLLERR/EPOLLHUP as readable). rcc_on_timer handles expired
 * deadlines (a call before the deadline does nothing). rcc_flush sends
 * queued output now. Each returns 0 while the client lives (connected,
 * connecting or waiting to reconnect: re-read rcc_fd and friends), or
 * -ENOTCONN once it is closed for good (stop watching; rcc_free it). */
int rcc_on_readable(rcc_t *c, uint64_t now_ms);
int rcc_on_writable(rcc_t *c, uint64_t now_ms);
int rcc_on_timer(rcc_t *c, uint64_t now_ms);
int rcc_flush(rcc_t *c);

/* rcc_next_timer_ms is the absolute time (caller's clock) at which
 * rcc_on_timer wants to run, or UINT64_MAX for never. */
uint64_t rcc_next_timer_ms(const rcc_t *c);

/* rcc_emit queues the event [event, payload] (payload may be NULL; it is
 * not stolen). With cb, the packet carries an ack id (ids start at 1) and cb
 * runs exactly once later. Ack deadlines count from the last now_ms the
 * client saw. Returns 0, -ENOTCONN before `ready` or after a drop (cb never
 * runs), ERR_FULL when out_max_bytes are queued, or -ENOMEM. */
int rcc_emit(rcc_t *c, const char *event, json_t *payload, rcc_ack_cb cb, void *ud);

/* rcc_join remembers room_id and joins it now (when ready) and after every
 * reconnect, with sinceSeq = the highest seq seen in the room. since_seq
 * seeds that value; -1 joins the first time without sinceSeq. The acks are
 * delivered to on_event as "room:join" (the library adds "roomId" to them
 * when absent, so failures name their room, and removes from `missed` the
 * messages that already reached this socket live, so that a replay after a
 * reconnect overlaps nothing). Joining a room already
 * remembered only raises its seq to since_seq. Returns 0, -EINVAL for a bad
 * room id, or -ENOMEM. */
int rcc_join(rcc_t *c, const char *room_id, int64_t since_seq);
/* rcc_forget stops re-joining room_id (it does not emit room:leave). */
void rcc_forget(rcc_t *c, const char *room_id);
/* rcc_room_seq: the highest seq seen in a remembered room, or -1. */
int64_t rcc_room_seq(const rcc_t *c, const char *room_id);

/* rcc_close sends a Socket.IO DISCONNECT and a WebSocket close when
 * possible, closes the socket, fails pending acks (NULL) and calls
 * on_disconnect("io client disconnect", false) if it had a socket; waiting
 * for a reconnect just stops. The client can rcc_connect() again later. */
void rcc_close(rcc_t *c);
/* rcc_free closes without on_disconnect (pending acks still get NULL) and
 * frees everything. Not from a callback of the same client. */
void rcc_free(rcc_t *c);

/* rcc_thread_done frees this thread's encoding scratch; call it before a
 * thread that used clients exits (the main thread need not). */
void rcc_thread_done(void);

#endif
