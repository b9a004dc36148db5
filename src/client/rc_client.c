/* rc_client.c - the ringcast client state machine (see rc_client.h for the
 * readiness-based design and the caller's duties).
 *
 * Owns: one TCP socket at a time, its input and output buffers, the table
 * of pending acks and the rooms to re-join. Runs on whichever single thread
 * drives the client; nothing here blocks except host resolution in rcc_new.
 *
 * States of one connection (rcc_state_t), each with its own deadline in
 * c->deadline_ms:
 *
 *   IDLE/CLOSED --rcc_connect--> CONNECTING --writable, SO_ERROR 0--> UPGRADING
 *   UPGRADING --101 with the right Sec-WebSocket-Accept--> OPENING
 *   OPENING --engine OPEN: send CONNECT {token}--> AUTHING
 *   AUTHING --CONNECT reply--> CONNECTED --`ready`: re-join rooms--> READY
 *   any connected state --drop--> BACKOFF --timer--> CONNECTING   (or CLOSED)
 *
 *   CONNECTING..AUTHING  deadline = handshake timeout
 *   CONNECTED, READY     deadline = last server ping (or the CONNECT reply)
 *                                   + pingInterval + pingTimeout
 *   BACKOFF              deadline = time of the next attempt
 *
 * Invariants:
 *  - fd >= 0 exactly in CONNECTING..READY.
 *  - c->epoch changes whenever the socket is dropped or replaced; a loop that
 *    runs callbacks compares it before touching the connection again,
 *    because a callback may have called rcc_close().
 *  - acks[head..len) are sorted by id (ids only grow), and acks[head] is
 *    never a finished entry, so it holds the earliest ack deadline.
 *  - out[out_off..len) is what is still to be sent; it holds whole frames.
 *
 * Frames: the server sends unmasked frames (RFC 6455 §5.1) and ws_scan()
 * refuses those by design, so rcc__frame() parses them here; client frames
 * must be masked, and wire/ws.h writes only unmasked ones, so rcc__frame_put()
 * writes ours.
 */
#include "rc_client.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../buf.h"
#include "../err.h"
#include "../../wire/eio.h"
#include "../../wire/http.h"
#include "../../wire/json.h"
#include "../../wire/sio.h"
#include "../../wire/ws.h"

#define RCC__MSG_MAX (16u << 20)      /* largest server message we accept (bytes)    */
#define RCC__OUT_KEEP 16384           /* an emptied output buffer this small is kept */
#define RCC__SCRATCH 65536            /* read() size                                 */

enum { RCC__ACK_APP = 0, RCC__ACK_JOIN = 1, RCC__ACK_DONE = 2 };

typedef struct {
    int64_t id;             /* ack id sent with the event                      */
    uint64_t deadline_ms;   /* UINT64_MAX: no timeout                          */
    rcc_ack_cb cb;          /* RCC__ACK_APP only                               */
    void *ud;
    int32_t room;           /* rooms[] slot whose seq the ack may raise, or -1 */
    uint8_t kind;           /* RCC__ACK_*                                      */
} rcc__ack_t;

typedef struct {
    char *id;               /* NULL: free slot                                 */
    int64_t seq;            /* highest seq seen, -1 before any                 */
    int64_t live_first;     /* first live message:new seq on this socket, 0: none */
} rcc__room_t;

typedef union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} rcc__addr_t;

struct rcc {
    int fd;                     /* socket, -1 when none                           */
    rcc_state_t state;
    uint32_t sock_id;           /* bumped for every new socket                    */
    uint32_t epoch;             /* bumped on every drop or new socket             */
    rcc_enc_t enc;
    bool reconnect;
    bool frag_open;             /* a fragmented server message is being built     */
    uint8_t frag_op;            /* its opcode                                     */
    uint8_t in_cb;              /* callbacks running (debug check for rcc_free)   */
    uint32_t attempt;           /* reconnects since the last `ready`              */
    uint32_t backoff_min_ms, backoff_max_ms, handshake_timeout_ms, ack_timeout_ms;
    uint32_t out_max_bytes;
    uint32_t ping_interval_ms, ping_timeout_ms;   /* from the engine OPEN         */
    uint64_t now_ms;            /* the latest time a caller gave us               */
    uint64_t deadline_ms;       /* the state's deadline, see the header comment   */
    uint64_t rng;               /* xorshift64* state                              */
    int64_t ack_next;           /* next ack id; starts at 1 (protocol.md §2)      */
    buf_t in;                   /* partial input; empty (no storage) most of the time */
    buf_t out;                  /* whole frames to send                           */
    size_t out_off;             /* bytes of out already sent                      */
    buf_t frag;                 /* fragmented message being reassembled           */
    rcc__ack_t *acks;
    uint32_t acks_head, acks_len, acks_cap;
    rcc__room_t *rooms;
    uint32_t rooms_len;
    char ws_accept[29];         /* expected Sec-WebSocket-Accept                  */
    char *token;
    char *host_hdr;             /* "host:port" for the Host header                */
    char *user_id;              /* from `ready`                                   */
    rcc__addr_t addr, bind;
    socklen_t addr_len, bind_len;
    rcc_cbs_t cbs;
    void *ud;
};

/* One read buffer per thread, shared by all its clients: thousands of idle
 * clients then hold no input storage. Safe because a client's input is
 * parsed before the next read on that thread (callbacks must not call
 * rcc_on_readable, see rc_client.h). */
static __thread uint8_t rcc__scratch[RCC__SCRATCH];
/* Encoding scratch per thread, kept allocated between emits. */
static __thread buf_t rcc__enc;

#define RCC__CB(c, call)   \
    do {                   \
        (c)->in_cb++;      \
        call;              \
        (c)->in_cb--;      \
    } while (0)

static void rcc__drop(rcc_t *c, const char *reason, bool may_reconnect);
static int rcc__start(rcc_t *c);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t rcc__rand(rcc_t *c)
{
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int rcc__addr_parse(const char *s, uint16_t port, rcc__addr_t *a, socklen_t *len, bool numeric)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, s, &a->in4.sin_addr) == 1) {
        a->in4.sin_family = AF_INET;
        a->in4.sin_port = htons(port);
        *len = sizeof(a->in4);
        return 0;
    }
    if (inet_pton(AF_INET6, s, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons(port);
        *len = sizeof(a->in6);
        return 0;
    }
    if (numeric)
        return -EINVAL;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    if (getaddrinfo(s, NULL, &hints, &res) != 0)
        return -EINVAL;
    int rc = -EINVAL;
    for (struct addrinfo *r = res; r; r = r->ai_next) {
        if (r->ai_family == AF_INET || r->ai_family == AF_INET6) {
            memcpy(a, r->ai_addr, r->ai_addrlen);
            *len = r->ai_addrlen;
            if (r->ai_family == AF_INET)
                a->in4.sin_port = htons(port);
            else
                a->in6.sin6_port = htons(port);
            rc = 0;
            break;
        }
    }
    freeaddrinfo(res);
    return rc;
}

static int rcc__room_find(const rcc_t *c, const char *id)
{
    for (uint32_t i = 0; i < c->rooms_len; i++)
        if (c->rooms[i].id && strcmp(c->rooms[i].id, id) == 0)
            return (int)i;
    return -1;
}

static void rcc__seq_raise(rcc_t *c, int slot, int64_t seq)
{
    if (slot >= 0 && (uint32_t)slot < c->rooms_len && c->rooms[slot].id && seq > c->rooms[slot].seq)
        c->rooms[slot].seq = seq;
}

/* rcc__seq_from_ack takes seqs from a successful ack: message:send's `seq`,
 * room:join's `missed[].seq` and `lastSeq` (missed holds the newest
 * messages, so lastSeq is where the room stands once they are in). */
static void rcc__seq_from_ack(rcc_t *c, int slot, const json_t *ack)
{
    if (slot < 0 || !json_is_true(json_object_get(ack, "ok")))
        return;
    int64_t seq;
    if (json_get_int(ack, "seq", &seq))
        rcc__seq_raise(c, slot, seq);
    if (json_get_int(ack, "lastSeq", &seq))
        rcc__seq_raise(c, slot, seq);
    const json_t *missed = json_object_get(ack, "missed");
    size_t i;
    const json_t *m;
    json_array_foreach(missed, i, m) {
        if (json_get_int(m, "seq", &seq))
            rcc__seq_raise(c, slot, seq);
    }
}

/* ---- output ------------------------------------------------------------ */

/* rcc__frame_put appends one final, masked client frame (RFC 6455 §5.2-5.3).
 * The copy into the output buffer is the masking pass, 8 bytes at a time. */
static int rcc__frame_put(rcc_t *c, int opcode, const uint8_t *p, size_t n)
{
    int rc = buf_reserve(&c->out, 14 + n);
    if (rc)
        return rc;
    uint8_t *w = c->out.p + c->out.len;
    size_t hl = 2;
    w[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        w[1] = (uint8_t)(0x80 | n);
    } else if (n <= 0xffff) {
        w[1] = 0x80 | 126;
        w[2] = (uint8_t)(n >> 8);
        w[3] = (uint8_t)n;
        hl = 4;
    } else {
        w[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            w[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    uint32_t m32 = (uint32_t)rcc__rand(c);
    memcpy(w + hl, &m32, 4);
    uint8_t mask[8];
    memcpy(mask, &m32, 4);
    memcpy(mask + 4, &m32, 4);
    uint64_t m64;
    memcpy(&m64, mask, 8);
    uint8_t *d = w + hl + 4;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= m64;
        memcpy(d + i, &v, 8);
    }
    for (; i < n; i++)
        d[i] = p[i] ^ mask[i & 3];
    c->out.len += hl + 4 + n;
    return 0;
}

/* rcc__packet_put encodes one Socket.IO packet in the connection's encoding
 * and frames it: JSON is a text engine message, msgpack a binary one. */
static int rcc__packet_put(rcc_t *c, const sio_packet_t *pkt)
{
    buf_reset(&rcc__enc);
    bool json = c->enc == RCC_JSON;
    int rc = sio_encode(json ? SIO_ENC_JSON : SIO_ENC_MSGPACK, pkt, &rcc__enc);
    if (rc == 0)
        rc = rcc__frame_put(c, json ? WS_OP_TEXT : WS_OP_BINARY, rcc__enc.p, rcc__enc.len);
    if (rcc__enc.cap > RCC__OUT_KEEP * 4)
        buf_deinit(&rcc__enc);   /* one huge emit should not pin memory forever */
    return rc;
}

/* rcc__flush sends queued output until the kernel pushes back. Returns 0,
 * or 1 when it dropped the connection. */
static int rcc__flush(rcc_t *c)
{
    if (c->fd < 0 || c->state == RCC_ST_CONNECTING)
        return 0;
    while (c->out_off < c->out.len) {
        ssize_t k = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            rcc__drop(c, "transport error", true);
            return 1;
        }
        c->out_off += (size_t)k;
    }
    c->out.len = c->out_off = 0;
    if (c->out.cap > RCC__OUT_KEEP)
        buf_deinit(&c->out);
    return 0;
}

/* ---- connection setup and teardown ------------------------------------- */

static uint64_t rcc__backoff_ms(rcc_t *c)
{
    uint32_t n = c->attempt < 20 ? c->attempt : 20;
    uint64_t d = (uint64_t)c->backoff_min_ms << n;
    if (d > c->backoff_max_ms)
        d = c->backoff_max_ms;
    d = d / 2 + rcc__rand(c) % (d + 1);   /* +-50% jitter, as socket.io-client */
    if (d > c->backoff_max_ms)
        d = c->backoff_max_ms;
    c->attempt++;
    return d;
}

typedef struct {
    rcc__ack_t *a;
    uint32_t head, len;
} rcc__acks_t;

/* rcc__acks_detach takes the pending acks out of the client, so that
 * callbacks which emit or reconnect meanwhile find a clean table. */
static rcc__acks_t rcc__acks_detach(rcc_t *c)
{
    rcc__acks_t t = { c->acks, c->acks_head, c->acks_len };
    c->acks = NULL;
    c->acks_head = c->acks_len = c->acks_cap = 0;
    return t;
}

/* rcc__acks_fail answers every detached ack with NULL and frees the table. */
static void rcc__acks_fail(rcc_t *c, rcc__acks_t t)
{
    for (uint32_t i = t.head; i < t.len; i++)
        if (t.a[i].kind == RCC__ACK_APP)
            RCC__CB(c, t.a[i].cb(c, t.a[i].ud, NULL));
    free(t.a);
}

static void rcc__sock_close(rcc_t *c)
{
    if (c->fd >= 0) {
        /* shutdown first: close() alone does not end an io_uring poll that
         * still references the socket; shutdown wakes it with POLLHUP. */
        shutdown(c->fd, SHUT_RDWR);
        close(c->fd);
        c->fd = -1;
    }
    buf_deinit(&c->in);
    buf_deinit(&c->out);
    buf_deinit(&c->frag);
    c->out_off = 0;
    c->frag_open = false;
    c->epoch++;
}

/* rcc__drop ends the connection, schedules a reconnect when allowed, then
 * tells the application: on_disconnect, then NULL for each pending ack. */
static void rcc__drop(rcc_t *c, const char *reason, bool may_reconnect)
{
    rcc__sock_close(c);
    bool again = c->reconnect && may_reconnect;
    c->state = again ? RCC_ST_BACKOFF : RCC_ST_CLOSED;
    c->deadline_ms = again ? c->now_ms + rcc__backoff_ms(c) : UINT64_MAX;
    rcc__acks_t t = rcc__acks_detach(c);
    if (c->cbs.on_disconnect)
        RCC__CB(c, c->cbs.on_disconnect(c, c->ud, reason, again));
    rcc__acks_fail(c, t);
}

/* rcc__request_put queues the HTTP upgrade with a fresh random key and
 * remembers the Sec-WebSocket-Accept the server must answer. */
static int rcc__request_put(rcc_t *c)
{
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rcc__rand(c);
        memcpy(raw + i, &r, 8);
    }
    char key[25];
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));   /* 24 chars + NUL */
    int rc = http_ws_accept(key, c->ws_accept);
    if (rc == 0)
        rc = buf_printf(&c->out,
                        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                        "Host: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                        c->host_hdr, key);
    return rc;
}

/* rcc__start opens a socket and starts the non-blocking connect. Returns 0
 * or -errno (nothing is left open then). */
static int rcc__start(rcc_t *c)
{
    int fd = socket(c->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rc = 0;
    /* We coalesce output ourselves; Nagle would only add latency. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->bind_len) {
        /* Pick the port at connect time, per destination: thousands of
         * clients on one source address then do not run out of ports. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, &c->bind.sa, c->bind_len) < 0)
            rc = -errno;
    }
    if (rc == 0 && connect(fd, &c->addr.sa, c->addr_len) < 0 && errno != EINPROGRESS)
        rc = -errno;
    if (rc) {
        close(fd);
        return rc;
    }
    c->fd = fd;
    c->sock_id++;
    for (uint32_t i = 0; i < c->rooms_len; i++)
        c->rooms[i].live_first = 0;
    c->epoch++;
    buf_deinit(&c->out);
    c->out_off = 0;
    rc = rcc__request_put(c);
    if (rc) {
        rcc__sock_close(c);
        return rc;
    }
    c->state = RCC_ST_CONNECTING;
    c->deadline_ms = c->now_ms + c->handshake_timeout_ms;
    return 0;
}

/* rcc__connected checks the outcome of the connect. Returns 0 when the
 * socket is connected (state UPGRADING), 1 when it dropped. */
static int rcc__connected(rcc_t *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof(peer);
        if (getpeername(c->fd, (struct sockaddr *)&peer, &pl) < 0)
            err = errno == ENOTCONN ? EINPROGRESS : errno;
    }
    if (err == EINPROGRESS || err == EALREADY)
        return 0;   /* a spurious wake-up: still connecting */
    if (err) {
        rcc__drop(c, "transport error", true);
        return 1;
    }
    c->state = RCC_ST_UPGRADING;
    return 0;
}

/* ---- input: HTTP response, frames, engine and Socket.IO packets ------- */

/* rcc__http checks the 101 response. Returns the head length, 0 when it
 * is incomplete, or ERR_PROTO. */
static int rcc__http(rcc_t *c, const uint8_t *p, size_t n)
{
    const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return n >= HTTP_HEAD_MAX ? ERR_PROTO : 0;
    size_t head = (size_t)(end - p) + 4;
    if (head < 13 || (memcmp(p, "HTTP/1.1 101", 12) != 0 && memcmp(p, "HTTP/1.0 101", 12) != 0))
        return ERR_PROTO;
    bool upgrade = false, conn = false, accept = false;
    const char *line = memchr(p, '\n', head);
    while (line && (const uint8_t *)line + 1 < end) {
        const char *s = line + 1;
        line = memchr(s, '\n', (size_t)((const char *)end + 2 - s));
        size_t ll = line ? (size_t)(line - s) : 0;
        if (ll && s[ll - 1] == '\r')
            ll--;
        const char *colon = memchr(s, ':', ll);
        if (!colon)
            continue;
        size_t nl = (size_t)(colon - s);
        const char *v = colon + 1;
        size_t vl = ll - nl - 1;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        if (nl == 7 && strncasecmp(s, "upgrade", 7) == 0)
            upgrade = vl == 9 && strncasecmp(v, "websocket", 9) == 0;
        else if (nl == 10 && strncasecmp(s, "connection", 10) == 0)
            conn = memmem(v, vl, "pgrade", 6) != NULL;   /* "Upgrade" in any case of U */
        else if (nl == 20 && strncasecmp(s, "sec-websocket-accept", 20) == 0)
            accept = vl == 28 && memcmp(v, c->ws_accept, 28) == 0;
    }
    return upgrade && conn && accept ? (int)head : ERR_PROTO;
}

static void rcc__send_join(rcc_t *c, int slot);

/* rcc__event handles an EVENT; data is [name, payload?]. */
static void rcc__event(rcc_t *c, json_t *data, int64_t id)
{
    json_t *name = json_array_get(data, 0);
    json_t *payload = json_array_get(data, 1);
    if (!json_is_string(name))
        return;
    const char *ev = json_string_value(name);
    if (id >= 0) {   /* the server asked for an ack: answer [] */
        sio_packet_t ack = { .type = SIO_ACK, .nsp = "/", .id = id, .data = json_array() };
        if (ack.data)
            rcc__packet_put(c, &ack);
        json_decref(ack.data);
    }
    if (strcmp(ev, "ready") == 0) {
        if (c->state != RCC_ST_CONNECTED)
            return;
        c->state = RCC_ST_READY;
        c->attempt = 0;
        const char *uid = json_get_str(payload, "userId", NULL);
        free(c->user_id);
        c->user_id = strdup(uid ? uid : "");
        for (uint32_t i = 0; i < c->rooms_len; i++)
            if (c->rooms[i].id)
                rcc__send_join(c, (int)i);
        if (c->cbs.on_ready)
            RCC__CB(c, c->cbs.on_ready(c, c->ud, json_object_get(payload, "chats")));
        return;
    }
    if (strncmp(ev, "message:", 8) == 0) {   /* message:new, :confirmed carry {roomId, seq} */
        const char *room = json_get_str(payload, "roomId", NULL);
        int64_t seq;
        if (room && c->rooms_len && json_get_int(payload, "seq", &seq) &&
            (strcmp(ev + 8, "new") == 0 || strcmp(ev + 8, "confirmed") == 0)) {
            int slot = rcc__room_find(c, room);
            rcc__seq_raise(c, slot, seq);
            if (slot >= 0 && ev[8] == 'n' && c->rooms[slot].live_first == 0)
                c->rooms[slot].live_first = seq;
        }
    }
    if (c->cbs.on_event)
        RCC__CB(c, c->cbs.on_event(c, c->ud, ev, payload));
}

/* rcc__ack_find: binary search of acks[head..len) by id, or -1. */
static int64_t rcc__ack_find(const rcc_t *c, int64_t id)
{
    uint32_t lo = c->acks_head, hi = c->acks_len;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->acks[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->acks_len && c->acks[lo].id == id && c->acks[lo].kind != RCC__ACK_DONE ? (int64_t)lo : -1;
}

/* rcc__ack_take copies out entry i, marks it done and advances head past
 * finished entries, so acks[head] stays the oldest live one. */
static rcc__ack_t rcc__ack_take(rcc_t *c, uint32_t i)
{
    rcc__ack_t a = c->acks[i];
    c->acks[i].kind = RCC__ACK_DONE;
    while (c->acks_head < c->acks_len && c->acks[c->acks_head].kind == RCC__ACK_DONE)
        c->acks_head++;
    if (c->acks_head == c->acks_len)
        c->acks_head = c->acks_len = 0;
    return a;
}

/* rcc__join_fix prepares the ack of a join the library sent: it names the
 * room, and it drops replayed messages that already arrived live. After a
 * reconnect the socket is in its rooms before `ready` (protocol.md §7), so
 * messages fanned out between then and our room:join arrive live and are
 * also in `missed` (seq > sinceSeq). The room's shard fans out in seq order
 * and answers the join after those, so every missed seq at or above the
 * first live seq on this socket was delivered already. */
static void rcc__join_fix(rcc_t *c, const rcc__room_t *r, json_t *ack)
{
    if (!json_is_object(ack))
        return;
    if (!json_object_get(ack, "roomId"))
        json_object_set_new(ack, "roomId", json_string(r->id));
    json_t *missed = json_object_get(ack, "missed");
    if (r->live_first <= 0 || !json_is_array(missed))
        return;
    for (size_t i = json_array_size(missed); i-- > 0;) {
        int64_t seq;
        if (json_get_int(json_array_get(missed, i), "seq", &seq) && seq >= r->live_first)
            json_array_remove(missed, i);
    }
}

static void rcc__ack(rcc_t *c, json_t *data, int64_t id)
{
    int64_t i = rcc__ack_find(c, id);
    if (i < 0)
        return;   /* unknown or timed out: ignore, as the protocol allows */
    rcc__ack_t a = rcc__ack_take(c, (uint32_t)i);
    json_t *ack = json_array_size(data) ? json_array_get(data, 0) : data;
    rcc__seq_from_ack(c, a.room, ack);
    if (a.kind == RCC__ACK_APP) {
        RCC__CB(c, a.cb(c, a.ud, ack));
    } else if (c->cbs.on_event) {
        if (a.room >= 0 && c->rooms[a.room].id)
            rcc__join_fix(c, &c->rooms[a.room], ack);
        RCC__CB(c, c->cbs.on_event(c, c->ud, "room:join", ack));
    }
}

/* rcc__packet dispatches one decoded Socket.IO packet. */
static void rcc__packet(rcc_t *c, sio_packet_t *pkt)
{
    if (strcmp(pkt->nsp, "/") != 0)
        return;   /* we only ever connect "/" */
    switch (pkt->type) {
    case SIO_CONNECT:
        if (c->state != RCC_ST_AUTHING) {
            rcc__drop(c, "parse error", true);
            return;
        }
        c->state = RCC_ST_CONNECTED;
        c->deadline_ms = c->now_ms + c->ping_interval_ms + c->ping_timeout_ms;
        return;
    case SIO_CONNECT_ERROR: {
        /* {"message", "data":{"code"}} (protocol.md §3); keep the code: it
         * decides whether retrying can help. */
        char code[64];
        const char *s = json_get_str(json_object_get(pkt->data, "data"), "code", NULL);
        if (!s)
            s = json_is_string(pkt->data) ? json_string_value(pkt->data) : "connect error";
        snprintf(code, sizeof(code), "%s", s);
        rcc__drop(c, code, strcmp(code, "UNAUTHORIZED") != 0);
        return;
    }
    case SIO_DISCONNECT:
        /* Unlike socket.io-client we reconnect: the broker disconnects slow
         * sockets and expects them back with sinceSeq (protocol.md §8). */
        rcc__drop(c, "io server disconnect", true);
        return;
    case SIO_EVENT:
        if (c->state >= RCC_ST_CONNECTED)
            rcc__event(c, pkt->data, pkt->id);
        return;
    case SIO_ACK:
        if (pkt->id >= 0)
            rcc__ack(c, pkt->data, pkt->id);
        return;
    default:
        return;
    }
}

/* rcc__open reads the engine OPEN and sends the Socket.IO CONNECT. */
static void rcc__open(rcc_t *c, const uint8_t *p, size_t n)
{
    json_t *o = NULL;
    if (c->state != RCC_ST_OPENING || json_parse(p, n, &o) != 0 || !json_is_object(o)) {
        json_decref(o);
        rcc__drop(c, "parse error", true);
        return;
    }
    int64_t pi = 25000, pt = 20000;
    json_get_int(o, "pingInterval", &pi);
    json_get_int(o, "pingTimeout", &pt);
    json_decref(o);
    c->ping_interval_ms = pi > 0 && pi < UINT32_MAX / 4 ? (uint32_t)pi : 25000;
    c->ping_timeout_ms = pt > 0 && pt < UINT32_MAX / 4 ? (uint32_t)pt : 20000;
    sio_packet_t pkt = { .type = SIO_CONNECT, .nsp = "/", .id = -1, .data = json_pack("{ss}", "token", c->token) };
    int rc = pkt.data ? rcc__packet_put(c, &pkt) : -ENOMEM;
    json_decref(pkt.data);
    if (rc) {
        rcc__drop(c, "out of memory", true);
        return;
    }
    c->state = RCC_ST_AUTHING;
}

/* ---- the raw-event hook (cbs.on_raw) ------------------------------------
 * A tiny scan finds the event name and the extent of its payload without
 * decoding anything; whatever it does not understand falls back to the full
 * decode, so the hook never changes what the library accepts or refuses. */

/* rcc__json_skip returns the length of the JSON value starting at p[0]
 * (a non-space byte), or 0 when it does not end inside p[0..n). Only
 * strings and nesting are followed; the contents are not validated. */
static size_t rcc__json_skip(const uint8_t *p, size_t n)
{
    size_t i = 0, depth = 0;
    do {
        if (i >= n)
            return 0;
        uint8_t ch = p[i];
        if (ch == '"') {
            for (i++;; i++) {
                if (i >= n)
                    return 0;
                if (p[i] == '\\')
                    i++;
                else if (p[i] == '"')
                    break;
            }
            i++;
        } else if (ch == '{' || ch == '[') {
            depth++, i++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return 0;
            depth--, i++;
        } else if (depth == 0) {   /* a top-level number or literal */
            while (i < n && p[i] != ',' && p[i] != ']' && p[i] != '}' && p[i] != ' ' && p[i] != '\t' &&
                   p[i] != '\r' && p[i] != '\n')
                i++;
            return i;
        } else {
            i++;
        }
    } while (depth > 0);
    return i;
}

static size_t rcc__json_ws(const uint8_t *p, size_t i, size_t n)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

typedef struct {
    const char *ev;
    size_t ev_len;
    const uint8_t *pl;      /* NULL: no payload */
    size_t pl_len;
    int64_t id;             /* ack id, -1 none */
} rcc__raw_t;

/* rcc__raw_json scans a Socket.IO JSON packet `2[<id>]["name"(,<payload>)?]`
 * (the engine's "4" already removed). Returns false for anything else. */
static bool rcc__raw_json(const uint8_t *p, size_t n, rcc__raw_t *r)
{
    size_t i = 1;
    if (n < 4 || p[0] != '0' + SIO_EVENT)
        return false;
    r->id = -1;
    if (p[i] >= '0' && p[i] <= '9') {
        int64_t id = 0;
        for (int d = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++, d++) {
            if (d >= 15)
                return false;
            id = id * 10 + (p[i] - '0');
        }
        r->id = id;
    }
    if (i + 2 >= n || p[i] != '[' || p[i + 1] != '"')
        return false;   /* a namespace, whitespace or a non-string name: full decode */
    i += 2;
    const uint8_t *q = memchr(p + i, '"', n - i);
    if (!q || memchr(p + i, '\\', (size_t)(q - (p + i))))
        return false;
    r->ev = (const char *)p + i;
    r->ev_len = (size_t)(q - (p + i));
    i = rcc__json_ws(p, (size_t)(q - p) + 1, n);
    r->pl = NULL, r->pl_len = 0;
    if (i < n && p[i] == ',') {
        i = rcc__json_ws(p, i + 1, n);
        size_t k = i < n ? rcc__json_skip(p + i, n - i) : 0;
        if (!k)
            return false;
        r->pl = p + i, r->pl_len = k;
        i = rcc__json_ws(p, i + k, n);
    }
    return i + 1 == n && p[i] == ']';
}

/* msgpack headers: the byte count of the header at p and what follows it. */
typedef struct {
    uint8_t kind;           /* 's' str, 'a' array, 'm' map, 'i' int, 'x' other */
    uint64_t count;         /* str: bytes; array: items; map: pairs; other: body bytes */
    int64_t ival;
} rcc__mph_t;

static uint64_t rcc__be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* rcc__mp_head reads one header at p[0..n). Returns its length, or 0. */
static size_t rcc__mp_head(const uint8_t *p, size_t n, rcc__mph_t *h)
{
    if (n < 1)
        return 0;
    uint8_t b = p[0];
    h->count = 0, h->ival = 0, h->kind = 'x';
    if (b <= 0x7f) { h->kind = 'i', h->ival = b; return 1; }
    if (b >= 0xe0) { h->kind = 'i', h->ival = (int8_t)b; return 1; }
    if ((b & 0xf0) == 0x80) { h->kind = 'm', h->count = b & 0x0f; return 1; }
    if ((b & 0xf0) == 0x90) { h->kind = 'a', h->count = b & 0x0f; return 1; }
    if ((b & 0xe0) == 0xa0) { h->kind = 's', h->count = b & 0x1f; return 1; }
    int lb;
    switch (b) {
    case 0xc0: case 0xc2: case 0xc3: return 1;                  /* nil, false, true */
    case 0xc4: case 0xc5: case 0xc6:                             /* bin 8/16/32 */
        lb = 1 << (b - 0xc4);
        if (n < 1u + lb) return 0;
        h->count = rcc__be(p + 1, lb);
        return 1 + (size_t)lb;
    case 0xc7: case 0xc8: case 0xc9:                             /* ext 8/16/32: + type byte */
        lb = 1 << (b - 0xc7);
        if (n < 2u + lb) return 0;
        h->count = rcc__be(p + 1, lb) + 1;
        return 1 + (size_t)lb;
    case 0xca: h->count = 4; return 1;                           /* float 32/64 */
    case 0xcb: h->count = 8; return 1;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:                  /* uint 8..64 */
        lb = 1 << (b - 0xcc);
        if (n < 1u + lb) return 0;
        h->kind = 'i';
        h->ival = (int64_t)rcc__be(p + 1, lb);
        if (h->ival < 0) h->kind = 'x';                          /* beyond int64 */
        return 1 + (size_t)lb;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3:                  /* int 8..64 */
        lb = 1 << (b - 0xd0);
        if (n < 1u + lb) return 0;
        h->kind = 'i';
        h->ival = (int64_t)(rcc__be(p + 1, lb) << (64 - 8 * lb)) >> (64 - 8 * lb);
        return 1 + (size_t)lb;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:       /* fixext 1..16: type + data */
        h->count = 1 + (1u << (b - 0xd4));
        return 1;
    case 0xd9: case 0xda: case 0xdb:                             /* str 8/16/32 */
        lb = 1 << (b - 0xd9);
        if (n < 1u + lb) return 0;
        h->kind = 's', h->count = rcc__be(p + 1, lb);
        return 1 + (size_t)lb;
    case 0xdc: case 0xdd:                                        /* array 16/32 */
        lb = 2 << (b - 0xdc);
        if (n < 1u + lb) return 0;
        h->kind = 'a', h->count = rcc__be(p + 1, lb);
        return 1 + (size_t)lb;
    case 0xde: case 0xdf:                                        /* map 16/32 */
        lb = 2 << (b - 0xde);
        if (n < 1u + lb) return 0;
        h->kind = 'm', h->count = rcc__be(p + 1, lb);
        return 1 + (size_t)lb;
    default: return 0;                                           /* 0xc1: never used */
    }
}

/* rcc__mp_skip returns the length of the msgpack value at p, or 0. No
 * recursion: it counts the values still owed. */
static size_t rcc__mp_skip(const uint8_t *p, size_t n)
{
    size_t i = 0;
    uint64_t owed = 1;
    while (owed) {
        rcc__mph_t h;
        size_t k = rcc__mp_head(p + i, n - i, &h);
        if (!k)
            return 0;
        i += k;
        owed--;
        if (h.kind == 'a' || h.kind == 'm') {
            owed += h.kind == 'm' ? 2 * h.count : h.count;
            if (owed > n - i)   /* every value takes at least a byte */
                return 0;
        } else if (h.kind != 'i') {
            if (h.count > n - i)
                return 0;
            i += (size_t)h.count;
        }
    }
    return i;
}

static bool rcc__mp_key_is(const uint8_t *k, size_t kl, const char *s)
{
    return kl == strlen(s) && memcmp(k, s, kl) == 0;
}

/* rcc__raw_mp scans the socket.io-msgpack-parser map {type:2, nsp:"/",
 * data:[name, payload?], id?} in any key order. */
static bool rcc__raw_mp(const uint8_t *p, size_t n, rcc__raw_t *r)
{
    rcc__mph_t h;
    size_t i = rcc__mp_head(p, n, &h);
    if (!i || h.kind != 'm' || h.count > 8)
        return false;
    bool type_ok = false, nsp_ok = false, data_ok = false;
    r->id = -1, r->pl = NULL, r->pl_len = 0;
    for (uint64_t e = 0; e < h.count; e++) {
        rcc__mph_t kh, vh;
        size_t k = rcc__mp_head(p + i, n - i, &kh);
        if (!k || kh.kind != 's' || kh.count > n - i - k)
            return false;
        const uint8_t *key = p + i + k;
        size_t kl = (size_t)kh.count;
        i += k + kl;
        size_t vs = rcc__mp_skip(p + i, n - i);
        if (!vs || !rcc__mp_head(p + i, n - i, &vh))
            return false;
        if (rcc__mp_key_is(key, kl, "type")) {
            if (vh.kind != 'i' || vh.ival != SIO_EVENT)
                return false;
            type_ok = true;
        } else if (rcc__mp_key_is(key, kl, "nsp")) {
            if (vh.kind != 's' || vs != 2 || p[i + 1] != '/')
                return false;
            nsp_ok = true;
        } else if (rcc__mp_key_is(key, kl, "id")) {
            if (vh.kind == 'i' && vh.ival >= 0)
                r->id = vh.ival;
            else if (!(vs == 3 && p[i] == 0xd4 && p[i + 1] == 0))   /* fixext undefined: absent */
                return false;
        } else if (rcc__mp_key_is(key, kl, "data")) {
            if (vh.kind != 'a' || vh.count < 1 || vh.count > 2)
                return false;
            size_t j = i + rcc__mp_head(p + i, n - i, &vh);
            rcc__mph_t sh;
            size_t sk = rcc__mp_head(p + j, n - j, &sh);
            if (!sk || sh.kind != 's')
                return false;
            r->ev = (const char *)p + j + sk;
            r->ev_len = (size_t)sh.count;
            j += sk + (size_t)sh.count;
            if (vh.count == 2) {
                r->pl = p + j;
                r->pl_len = i + vs - j;
            }
            data_ok = true;
        } else {
            return false;   /* an unknown key: let the full decode judge */
        }
        i += vs;
    }
    return i == n && type_ok && nsp_ok && data_ok;
}

/* rcc__raw offers one EVENT to cbs.on_raw. Returns true when the hook took
 * it (the ack the server asked for is answered here); false means "decode
 * it as usual". p[0..n) is the Socket.IO packet (JSON: without the engine
 * "4"; msgpack: the whole binary message). */
static bool rcc__raw(rcc_t *c, const uint8_t *p, size_t n)
{
    rcc__raw_t r = { 0 };
    bool json = c->enc == RCC_JSON;
    if (c->state < RCC_ST_CONNECTED || !(json ? rcc__raw_json(p, n, &r) : rcc__raw_mp(p, n, &r)))
        return false;
    if ((r.ev_len == 5 && memcmp(r.ev, "ready", 5) == 0) ||
        (c->rooms_len && r.ev_len >= 8 && memcmp(r.ev, "message:", 8) == 0))
        return false;
    bool done;
    uint32_t epoch = c->epoch;
    RCC__CB(c, done = c->cbs.on_raw(c, c->ud, r.ev, r.ev_len, r.pl, r.pl_len, (int)c->enc));
    if (done && r.id >= 0 && epoch == c->epoch) {   /* as rcc__event: answer [] */
        sio_packet_t ack = { .type = SIO_ACK, .nsp = "/", .id = r.id, .data = json_array() };
        if (ack.data)
            rcc__packet_put(c, &ack);
        json_decref(ack.data);
    }
    return done;
}

/* rcc__message handles one complete WebSocket data message. */
static void rcc__message(rcc_t *c, int op, const uint8_t *p, size_t n)
{
    sio_packet_t pkt;
    int rc;
    if (op == WS_OP_BINARY) {
        if (c->enc != RCC_MSGPACK || c->state < RCC_ST_AUTHING)
            goto bad;
        if (c->cbs.on_raw && rcc__raw(c, p, n))
            return;
        rc = sio_decode_msgpack(p, n, &pkt);
    } else {
        int b64;
        int type = eio_text_type(p, n, &b64);
        switch (type) {
        case EIO_OPEN: rcc__open(c, p + 1, n - 1); return;
        case EIO_PING:
            if (c->state >= RCC_ST_CONNECTED)
                c->deadline_ms = c->now_ms + c->ping_interval_ms + c->ping_timeout_ms;
            if (rcc__frame_put(c, WS_OP_TEXT, (const uint8_t *)"3", 1))
                rcc__drop(c, "out of memory", true);
            return;
        case EIO_CLOSE: rcc__drop(c, "transport close", true); return;
        case EIO_MESSAGE: break;
        case EIO_PONG: case EIO_NOOP: case EIO_UPGRADE: return;
        default: goto bad;
        }
        if (b64 || c->enc != RCC_JSON || c->state < RCC_ST_AUTHING)
            goto bad;   /* the server answers in our encoding (protocol.md §2) */
        if (c->cbs.on_raw && rcc__raw(c, p + 1, n - 1))
            return;
        rc = sio_decode_json(p + 1, n - 1, &pkt);
    }
    if (rc == -ENOMEM) {
        rcc__drop(c, "out of memory", true);
        return;
    }
    if (rc)
        goto bad;
    rcc__packet(c, &pkt);
    sio_packet_clear(&pkt);
    return;
bad:
    rcc__drop(c, "parse error", true);
}

/* rcc__control answers server control frames. */
static void rcc__control(rcc_t *c, int op, const uint8_t *p, size_t n)
{
    if (op == WS_OP_PING) {
        if (rcc__frame_put(c, WS_OP_PONG, p, n))
            rcc__drop(c, "out of memory", true);
    } else if (op == WS_OP_CLOSE) {
        /* Echo the status code (RFC 6455 §5.5.1), push it out, then go. */
        rcc__frame_put(c, WS_OP_CLOSE, p, n >= 2 ? 2 : 0);
        if (rcc__flush(c) == 0)
            rcc__drop(c, "transport close", true);
    }
}

/* rcc__frame parses one server frame at p and handles it. Returns its total
 * length, 0 if incomplete, or ERR_PROTO. */
static int64_t rcc__frame(rcc_t *c, const uint8_t *p, size_t n)
{
    if (n < 2)
        return 0;
    int fin = p[0] & 0x80, op = p[0] & 0x0f;
    if ((p[0] & 0x70) || (p[1] & 0x80))
        return ERR_PROTO;   /* no extensions were negotiated; servers never mask */
    uint64_t len = p[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        hl = 10;
    }
    if (len > RCC__MSG_MAX)
        return ERR_PROTO;
    if (n - hl < len)
        return 0;
    const uint8_t *pl = p + hl;
    if (op >= 8) {
        if (!fin || len > 125)
            return ERR_PROTO;
        rcc__control(c, op, pl, (size_t)len);
    } else if (op == WS_OP_TEXT || op == WS_OP_BINARY) {
        if (c->frag_open)
            return ERR_PROTO;
        if (fin) {
            rcc__message(c, op, pl, (size_t)len);
        } else {
            c->frag_open = true;
            c->frag_op = (uint8_t)op;
            if (buf_append(&c->frag, pl, (size_t)len))
                return -ENOMEM;
        }
    } else if (op == WS_OP_CONT) {   /* rare: our broker never fragments */
        if (!c->frag_open || c->frag.len + len > RCC__MSG_MAX)
            return ERR_PROTO;
        if (buf_append(&c->frag, pl, (size_t)len))
            return -ENOMEM;
        if (fin) {
            buf_t m = c->frag;
            c->frag = (buf_t){ 0 };
            c->frag_open = false;
            rcc__message(c, c->frag_op, m.p, m.len);
            buf_deinit(&m);
        }
    } else {
        return ERR_PROTO;
    }
    return (int64_t)(hl + len);
}

/* rcc__parse consumes what it can of p[0..n). Returns the bytes consumed;
 * stops early (return value unused) when the connection dropped, which the
 * caller sees through c->epoch. */
static size_t rcc__parse(rcc_t *c, const uint8_t *p, size_t n)
{
    uint32_t epoch = c->epoch;
    size_t off = 0;
    if (c->state == RCC_ST_UPGRADING) {
        int rc = rcc__http(c, p, n);
        if (rc <= 0) {
            if (rc < 0)
                rcc__drop(c, "handshake failed", true);
            return 0;
        }
        off = (size_t)rc;
        c->state = RCC_ST_OPENING;
    }
    while (off < n && epoch == c->epoch) {
        int64_t k = rcc__frame(c, p + off, n - off);
        if (k == 0)
            break;
        if (k < 0) {
            if (epoch == c->epoch)
                rcc__drop(c, k == -ENOMEM ? "out of memory" : "parse error", true);
            break;
        }
        off += (size_t)k;
    }
    return off;
}

/* rcc__input parses newly read bytes. Fast path: nothing is pending, so
 * frames are parsed straight from the read buffer and only a partial tail is
 * copied. Otherwise the bytes join c->in, which is detached while parsing so
 * that a callback closing the client cannot free it under us. */
static void rcc__input(rcc_t *c, const uint8_t *p, size_t n)
{
    uint32_t epoch = c->epoch;
    if (c->in.len == 0 && c->state != RCC_ST_UPGRADING) {
        size_t used = rcc__parse(c, p, n);
        if (epoch == c->epoch && used < n && buf_append(&c->in, p + used, n - used))
            rcc__drop(c, "out of memory", true);
        return;
    }
    if (buf_append(&c->in, p, n)) {
        rcc__drop(c, "out of memory", true);
        return;
    }
    buf_t work = c->in;
    c->in = (buf_t){ 0 };
    size_t used = rcc__parse(c, work.p, work.len);
    if (epoch != c->epoch || used == work.len) {
        buf_deinit(&work);   /* dropped, or all consumed: hold no storage */
        return;
    }
    buf_consume(&work, used);
    c->in = work;
}

/* ---- public API ------------------------------------------------------- */

rcc_t *rcc_new(const rcc_opts_t *o)
{
    if (!o || !o->host || !o->port || !o->token || !o->token[0])
        return NULL;
    rcc_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = -1;
    c->state = RCC_ST_IDLE;
    c->enc = o->encoding == RCC_JSON ? RCC_JSON : RCC_MSGPACK;
    c->reconnect = o->reconnect;
    c->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 500;
    c->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 5000;
    if (c->backoff_max_ms < c->backoff_min_ms)
        c->backoff_max_ms = c->backoff_min_ms;
    c->handshake_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : 10000;
    c->ack_timeout_ms = o->ack_timeout_ms;
    c->out_max_bytes = o->out_max_bytes ? o->out_max_bytes : 4u << 20;
    c->ping_interval_ms = 25000;
    c->ping_timeout_ms = 20000;
    c->deadline_ms = UINT64_MAX;
    c->ack_next = 1;
    c->cbs = o->cbs;
    c->ud = o->ud;
    c->rng = o->seed;
    if (!c->rng && getrandom(&c->rng, sizeof(c->rng), GRND_NONBLOCK) != sizeof(c->rng))
        c->rng = (uint64_t)(uintptr_t)c ^ (uint64_t)getpid() << 32;
    c->rng |= 1;   /* xorshift must not start at 0 */
    bool v6 = strchr(o->host, ':') != NULL;
    c->token = strdup(o->token);
    if (asprintf(&c->host_hdr, v6 ? "[%s]:%u" : "%s:%u", o->host, o->port) < 0)
        c->host_hdr = NULL;
    if (!c->token || !c->host_hdr || rcc__addr_parse(o->host, o->port, &c->addr, &c->addr_len, false) ||
        (o->bind_addr && rcc__addr_parse(o->bind_addr, 0, &c->bind, &c->bind_len, true)) ||
        (c->bind_len && c->bind.sa.sa_family != c->addr.sa.sa_family)) {
        rcc_free(c);
        return NULL;
    }
    return c;
}

int rcc_connect(rcc_t *c, uint64_t now_ms)
{
    if (c->state != RCC_ST_IDLE && c->state != RCC_ST_CLOSED)
        return -EALREADY;
    c->now_ms = now_ms;
    c->attempt = 0;
    return rcc__start(c);
}

int rcc_fd(const rcc_t *c) { return c->fd; }
uint32_t rcc_sock_id(const rcc_t *c) { return c->sock_id; }
rcc_state_t rcc_state(const rcc_t *c) { return c->state; }
const char *rcc_user_id(const rcc_t *c) { return c->user_id ? c->user_id : ""; }

bool rcc_want_write(const rcc_t *c)
{
    return c->fd >= 0 && (c->state == RCC_ST_CONNECTING || c->out_off < c->out.len);
}

static int rcc__result(const rcc_t *c) { return c->state == RCC_ST_CLOSED ? -ENOTCONN : 0; }

int rcc_on_writable(rcc_t *c, uint64_t now_ms)
{
    c->now_ms = now_ms;
    if (c->fd < 0)
        return rcc__result(c);
    if (c->state == RCC_ST_CONNECTING && rcc__connected(c))
        return rcc__result(c);
    rcc__flush(c);
    return rcc__result(c);
}

int rcc_on_readable(rcc_t *c, uint64_t now_ms)
{
    c->now_ms = now_ms;
    if (c->fd < 0)
        return rcc__result(c);
    if (c->state == RCC_ST_CONNECTING) {
        if (rcc__connected(c) || c->state == RCC_ST_CONNECTING)
            return rcc__result(c);
        rcc__flush(c);   /* the upgrade request */
        if (c->fd < 0)
            return rcc__result(c);
    }
    /* Read until the socket is drained (a short read means it was), so
     * edge-triggered and one-shot readiness work as well as level. */
    uint32_t epoch = c->epoch;
    for (;;) {
        ssize_t k = read(c->fd, rcc__scratch, sizeof(rcc__scratch));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                rcc__drop(c, "transport error", true);
            break;
        }
        if (k == 0) {
            rcc__drop(c, "transport close", true);
            break;
        }
        rcc__input(c, rcc__scratch, (size_t)k);
        if (epoch != c->epoch || (size_t)k < sizeof(rcc__scratch))
            break;
    }
    if (epoch == c->epoch)
        rcc__flush(c);   /* pongs and whatever callbacks emitted */
    return rcc__result(c);
}

int rcc_flush(rcc_t *c)
{
    rcc__flush(c);
    return rcc__result(c);
}

uint64_t rcc_next_timer_ms(const rcc_t *c)
{
    uint64_t t = c->state == RCC_ST_IDLE || c->state == RCC_ST_CLOSED ? UINT64_MAX : c->deadline_ms;
    if (c->acks_head < c->acks_len && c->acks[c->acks_head].deadline_ms < t)
        t = c->acks[c->acks_head].deadline_ms;
    return t;
}

int rcc_on_timer(rcc_t *c, uint64_t now_ms)
{
    c->now_ms = now_ms;
    /* 1. Ack timeouts: deadlines grow with ids, so only the head can expire. */
    while (c->acks_head < c->acks_len && c->acks[c->acks_head].deadline_ms <= now_ms) {
        rcc__ack_t a = rcc__ack_take(c, c->acks_head);
        if (a.kind == RCC__ACK_APP)
            RCC__CB(c, a.cb(c, a.ud, NULL));
    }
    /* 2. The state's own deadline. */
    if (now_ms < c->deadline_ms)
        return rcc__result(c);
    switch (c->state) {
    case RCC_ST_CONNECTING: case RCC_ST_UPGRADING: case RCC_ST_OPENING: case RCC_ST_AUTHING:
        rcc__drop(c, "handshake timeout", true);
        break;
    case RCC_ST_CONNECTED: case RCC_ST_READY:
        rcc__drop(c, "ping timeout", true);
        break;
    case RCC_ST_BACKOFF:
        if (rcc__start(c))
            rcc__drop(c, "transport error", true);
        break;
    default:
        break;
    }
    return rcc__result(c);
}

/* rcc__ack_push appends a pending ack; ids only grow, keeping acks sorted. */
static int rcc__ack_push(rcc_t *c, rcc__ack_t a)
{
    if (c->acks_len == c->acks_cap) {
        if (c->acks_head > c->acks_cap / 2) {   /* slide down before growing */
            memmove(c->acks, c->acks + c->acks_head, (c->acks_len - c->acks_head) * sizeof(*c->acks));
            c->acks_len -= c->acks_head;
            c->acks_head = 0;
        } else {
            uint32_t cap = c->acks_cap ? c->acks_cap * 2 : 4;
            rcc__ack_t *n = realloc(c->acks, cap * sizeof(*n));
            if (!n)
                return -ENOMEM;
            c->acks = n;
            c->acks_cap = cap;
        }
    }
    c->acks[c->acks_len++] = a;
    return 0;
}

/* rcc__emit queues [event, payload] with an ack entry of the given kind
 * (or none when kind < 0). All or nothing: on failure nothing is queued. */
static int rcc__emit(rcc_t *c, const char *event, json_t *payload, int kind, rcc_ack_cb cb, void *ud, int room)
{
    if (c->state != RCC_ST_READY || c->fd < 0)
        return -ENOTCONN;
    if (c->out.len - c->out_off >= c->out_max_bytes)
        return ERR_FULL;
    sio_packet_t pkt = { .type = SIO_EVENT, .nsp = "/", .id = kind >= 0 ? c->ack_next : -1 };
    pkt.data = json_array();
    if (!pkt.data || json_array_append_new(pkt.data, json_string(event)) ||
        (payload && json_array_append(pkt.data, payload))) {
        json_decref(pkt.data);
        return -ENOMEM;
    }
    size_t len0 = c->out.len;
    int rc = rcc__packet_put(c, &pkt);
    json_decref(pkt.data);
    if (rc == 0 && kind >= 0) {
        uint64_t dl = c->ack_timeout_ms ? c->now_ms + c->ack_timeout_ms : UINT64_MAX;
        rc = rcc__ack_push(c, (rcc__ack_t){ .id = pkt.id, .deadline_ms = dl, .cb = cb, .ud = ud,
                                            .room = room, .kind = (uint8_t)kind });
        if (rc)
            c->out.len = len0;
        else
            c->ack_next++;
    }
    return rc;
}

int rcc_emit(rcc_t *c, const char *event, json_t *payload, rcc_ack_cb cb, void *ud)
{
    int room = -1;
    if (cb && c->rooms_len) {   /* acks of sends and joins carry seqs of tracked rooms */
        const char *rid = json_get_str(payload, "roomId", NULL);
        if (rid && (strcmp(event, "message:send") == 0 || strcmp(event, "room:join") == 0))
            room = rcc__room_find(c, rid);
    }
    return rcc__emit(c, event, payload, cb ? RCC__ACK_APP : -1, cb, ud, room);
}

static void rcc__send_join(rcc_t *c, int slot)
{
    json_t *p = json_pack("{ss}", "roomId", c->rooms[slot].id);
    if (p && c->rooms[slot].seq >= 0)
        json_object_set_new(p, "sinceSeq", json_integer(c->rooms[slot].seq));
    /* A failure here is memory or a full output queue; the next reconnect
     * tries again, and the connection stays usable meanwhile. */
    if (p)
        rcc__emit(c, "room:join", p, RCC__ACK_JOIN, NULL, NULL, slot);
    json_decref(p);
}

int rcc_join(rcc_t *c, const char *room_id, int64_t since_seq)
{
    if (!room_id || !json_id_valid(room_id, strlen(room_id)))
        return -EINVAL;
    int slot = rcc__room_find(c, room_id);
    if (slot >= 0) {
        rcc__seq_raise(c, slot, since_seq);
        return 0;
    }
    for (uint32_t i = 0; i < c->rooms_len && slot < 0; i++)
        if (!c->rooms[i].id)
            slot = (int)i;
    if (slot < 0) {
        rcc__room_t *r = realloc(c->rooms, (c->rooms_len + 1) * sizeof(*r));
        if (!r)
            return -ENOMEM;
        c->rooms = r;
        slot = (int)c->rooms_len++;
        c->rooms[slot].id = NULL;
    }
    c->rooms[slot].id = strdup(room_id);
    if (!c->rooms[slot].id)
        return -ENOMEM;
    c->rooms[slot].seq = since_seq >= 0 ? since_seq : -1;
    c->rooms[slot].live_first = 0;
    if (c->state == RCC_ST_READY)
        rcc__send_join(c, slot);
    return 0;
}

void rcc_forget(rcc_t *c, const char *room_id)
{
    /* The slot is reused by a later join; an ack in flight for the old room
     * could then raise the new room's seq, which only shortens its replay. */
    int slot = rcc__room_find(c, room_id);
    if (slot >= 0) {
        free(c->rooms[slot].id);
        c->rooms[slot].id = NULL;
    }
}

int64_t rcc_room_seq(const rcc_t *c, const char *room_id)
{
    int slot = rcc__room_find(c, room_id);
    return slot >= 0 ? c->rooms[slot].seq : -1;
}

void rcc_close(rcc_t *c)
{
    if (c->fd < 0) {
        if (c->state != RCC_ST_IDLE)
            c->state = RCC_ST_CLOSED;
        c->deadline_ms = UINT64_MAX;
        return;
    }
    if (c->state >= RCC_ST_AUTHING) {   /* best effort: 41, then a WebSocket close */
        sio_packet_t pkt = { .type = SIO_DISCONNECT, .nsp = "/", .id = -1 };
        uint8_t code[2] = { WS_CLOSE_NORMAL >> 8, WS_CLOSE_NORMAL & 0xff };
        if (rcc__packet_put(c, &pkt) == 0 && rcc__frame_put(c, WS_OP_CLOSE, code, 2) == 0)
            rcc__flush(c);
        if (c->fd < 0)
            return;   /* the flush failed and already dropped the connection */
    }
    rcc__drop(c, "io client disconnect", false);
}

void rcc_free(rcc_t *c)
{
    if (!c)
        return;
    assert(c->in_cb == 0 && "rcc_free from a callback of the same client");
    rcc__sock_close(c);
    c->state = RCC_ST_CLOSED;
    rcc__acks_fail(c, rcc__acks_detach(c));
    for (uint32_t i = 0; i < c->rooms_len; i++)
        free(c->rooms[i].id);
    free(c->rooms);
    free(c->token);
    free(c->host_hdr);
    free(c->user_id);
    free(c);
}

void rcc_thread_done(void) { buf_deinit(&rcc__enc); }
