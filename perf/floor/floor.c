/* floor.c - `ringcast-floor`: the delivery pattern of ringcast with no broker
 * logic, to show what this machine can do (docs/perf.md, "the floor").
 *
 * One thread, one io_uring. It accepts the harness's handshake just far
 * enough for rc_client to reach `ready` (HTTP upgrade, Engine.IO OPEN,
 * Socket.IO CONNECT with the JWT verified, `ready` with no chats), answers
 * chat:create by recording the member sockets and sending them chat:new,
 * and for each message:send:
 *   1. decodes the packet (jansson, as ringcast does) and assigns seq+1;
 *   2. encodes ONE message:new frame (the sender's body and tempId, so the
 *      harness can time and check it) and queues a reference to it on every
 *      member socket except the sender's;
 *   3. acks the sender {ok, tempId, seq};
 *   4. encodes ONE message:confirmed frame (a constant id) and queues it on
 *      every member socket, the sender's included;
 * and at the end of each loop turn every socket with queued frames gets one
 * sendmsg whose iovecs point into the shared frames (as ringcast's step 8).
 * The only per-recipient work is that pointer push and the write.
 *
 * What it skips, on purpose (each is work ringcast does): shards and the
 * mailboxes between them (one thread owns everything), the socket hand-over
 * to the user's shard, per-user state (socket limits, the rate bucket),
 * membership, dedup, replyTo and field checks, the recent-message ring,
 * persistence (no store: message:confirmed follows at once), Engine.IO
 * heartbeats (OPEN announces a one-hour pingInterval and no ping is sent),
 * outbound limits and slow-consumer handling, typing, chat lists in `ready`
 * (always empty), fragmented WebSocket messages and close handshakes (a
 * close frame or EOF just closes the socket), and freeing state of closed
 * users. Receive buffers are a plain 4 KiB per connection, so its RSS per
 * connection is not a meaningful floor.
 *
 * Usage: ringcast-floor --jwt-secret S [--host 127.0.0.1] [--port 0]
 * Logs `listening on HOST:PORT`; SIGINT/SIGTERM exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../src/buf.h"
#include "../../src/err.h"
#include "../../wire/http.h"
#include "../../wire/jwt.h"
#include "../../wire/sio.h"
#include "../../wire/ws.h"

#define FL_RBUF 4096
#define FL_IOV_MAX 64
#define FL_RING 8192
#define FL_UID_SLOTS (1u << 17)   /* open addressing, > 2x the most clients an FD limit allows */

enum { FL_OP_ACCEPT = 1, FL_OP_RECV = 2, FL_OP_SEND = 3 };
enum { FL_HTTP = 0, FL_WS = 1, FL_CLOSED = 2 };

typedef struct {
    int fd;
    uint32_t gen;             /* bumped when the slot is reused         */
    int state;                /* FL_HTTP, FL_WS, FL_CLOSED              */
    sio_enc_t enc;            /* from the CONNECT frame                 */
    bool recv_busy, send_busy, dirty;
    buf_t in;                 /* partial input                          */
    uint8_t *rbuf;            /* recv target                            */
    buf_blob_t **q;           /* queued frames (ring)                   */
    uint32_t qhead, qlen, qcap, qoff;   /* qoff: bytes of q[head] sent  */
    uint32_t inflight_n;      /* frames named by the in-flight sendmsg  */
    struct iovec iov[FL_IOV_MAX];
    struct msghdr mh;
    char uid[JWT_SUB_MAX + 1];
} fl_conn_t;

typedef struct {
    int *fds;                 /* member sockets                          */
    uint32_t n;
    int64_t seq;
} fl_room_t;

static struct {
    struct io_uring ring;
    int lfd;
    fl_conn_t *c;             /* indexed by fd                           */
    int nconn;
    int *dirty;
    int ndirty;
    fl_room_t *rooms;
    uint32_t nrooms, rooms_cap;
    int uid_fd[FL_UID_SLOTS]; /* uid hash -> fd, -1 empty                */
    const char *secret;
    volatile sig_atomic_t stop;
} F;

static void fl_on_signal(int s) { F.stop = 1; }

static struct io_uring_sqe *fl_sqe(void)
{
    struct io_uring_sqe *s = io_uring_get_sqe(&F.ring);
    for (int i = 0; !s && i < 1000; i++) {
        io_uring_submit(&F.ring);
        s = io_uring_get_sqe(&F.ring);
    }
    if (!s) {
        fprintf(stderr, "ringcast-floor: submission queue stuck\n");
        exit(1);
    }
    return s;
}

static uint64_t fl_ud(int kind, int fd, uint32_t gen) { return (uint64_t)kind | (uint64_t)fd << 8 | (uint64_t)gen << 32; }

static void fl_recv(fl_conn_t *c)
{
    struct io_uring_sqe *s = fl_sqe();
    io_uring_prep_recv(s, c->fd, c->rbuf, FL_RBUF, 0);
    io_uring_sqe_set_data64(s, fl_ud(FL_OP_RECV, c->fd, c->gen));
    c->recv_busy = true;
}

static void fl_close(fl_conn_t *c)
{
    if (c->state == FL_CLOSED)
        return;
    c->state = FL_CLOSED;
    shutdown(c->fd, SHUT_RDWR);   /* completes the in-flight recv; close() once nothing is in flight */
}

static void fl_maybe_free(fl_conn_t *c)
{
    if (c->state != FL_CLOSED || c->recv_busy || c->send_busy || c->fd < 0)
        return;
    for (uint32_t i = 0; i < c->qlen; i++)
        buf_blob_unref(c->q[(c->qhead + i) & (c->qcap - 1)]);
    c->qlen = c->qhead = c->qoff = 0;
    buf_deinit(&c->in);
    close(c->fd);
    c->fd = -1;
    F.nconn--;
}

static void fl_push(fl_conn_t *c, buf_blob_t *b)
{
    if (c->state == FL_CLOSED)
        return;
    if (c->qlen == c->qcap) {
        uint32_t cap = c->qcap ? c->qcap * 2 : 16;
        buf_blob_t **q = malloc(cap * sizeof(*q));
        if (!q)
            abort();
        for (uint32_t i = 0; i < c->qlen; i++)
            q[i] = c->q[(c->qhead + i) & (c->qcap - 1)];
        free(c->q);
        c->q = q, c->qcap = cap, c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen++) & (c->qcap - 1)] = buf_blob_ref(b);
    if (!c->dirty) {
        c->dirty = true;
        F.dirty[F.ndirty++] = c->fd;
    }
}

static void fl_send(fl_conn_t *c)
{
    uint32_t n = c->qlen < FL_IOV_MAX ? c->qlen : FL_IOV_MAX;
    for (uint32_t i = 0; i < n; i++) {
        buf_blob_t *b = c->q[(c->qhead + i) & (c->qcap - 1)];
        uint32_t off = i == 0 ? c->qoff : 0;
        c->iov[i] = (struct iovec){ b->data + off, b->len - off };
    }
    c->mh = (struct msghdr){ .msg_iov = c->iov, .msg_iovlen = n };
    c->inflight_n = n;
    struct io_uring_sqe *s = fl_sqe();
    io_uring_prep_sendmsg(s, c->fd, &c->mh, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, fl_ud(FL_OP_SEND, c->fd, c->gen));
    c->send_busy = true;
}

static void fl_on_sent(fl_conn_t *c, int res)
{
    c->send_busy = false;
    if (res < 0) {
        fl_close(c);
        return;
    }
    size_t left = (size_t)res;
    while (c->qlen && left) {
        buf_blob_t *b = c->q[c->qhead];
        size_t rest = b->len - c->qoff;
        if (left < rest) {
            c->qoff += (uint32_t)left;
            break;
        }
        left -= rest;
        buf_blob_unref(b);
        c->qhead = (c->qhead + 1) & (c->qcap - 1), c->qlen--, c->qoff = 0;
    }
    if (c->qlen && !c->dirty) {
        c->dirty = true;
        F.dirty[F.ndirty++] = c->fd;
    }
}

/* fl_frame encodes one Socket.IO packet into a frozen server frame. */
static buf_blob_t *fl_frame(sio_enc_t enc, int type, int64_t id, json_t *data)
{
    static buf_t tmp;
    buf_reset(&tmp);
    sio_packet_t p = { .type = type, .nsp = "/", .id = id, .data = data };
    if (sio_encode(enc, &p, &tmp))
        abort();
    uint8_t h[WS_HEADER_MAX];
    size_t hl = ws_header(h, enc == SIO_ENC_JSON ? WS_OP_TEXT : WS_OP_BINARY, tmp.len);
    buf_blob_t *b = buf_blob_new((uint32_t)(hl + tmp.len));
    if (!b)
        abort();
    memcpy(b->data, h, hl);
    memcpy(b->data + hl, tmp.p, tmp.len);
    buf_blob_freeze(b);
    return b;
}

static void fl_send_one(fl_conn_t *c, int type, int64_t id, json_t *data)
{
    buf_blob_t *b = fl_frame(c->enc, type, id, data);
    fl_push(c, b);
    buf_blob_unref(b);
}

static uint32_t fl_uid_slot(const char *uid)
{
    uint32_t h = 2166136261u;
    for (const char *p = uid; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    uint32_t i = h & (FL_UID_SLOTS - 1);
    for (uint32_t probe = 0; probe < FL_UID_SLOTS; probe++, i = (i + 1) & (FL_UID_SLOTS - 1))
        if (F.uid_fd[i] < 0 || strcmp(F.c[F.uid_fd[i]].uid, uid) == 0)
            return i;
    fprintf(stderr, "ringcast-floor: uid table full\n");
    exit(1);
}

static void fl_chat_create(fl_conn_t *c, json_t *p, int64_t id)
{
    json_t *mem = json_object_get(p, "members");
    if (F.nrooms == F.rooms_cap) {
        F.rooms_cap = F.rooms_cap ? F.rooms_cap * 2 : 64;
        F.rooms = realloc(F.rooms, F.rooms_cap * sizeof(fl_room_t));
    }
    fl_room_t *r = &F.rooms[F.nrooms];
    char rid[32];
    snprintf(rid, sizeof(rid), "g:floor%u", F.nrooms++);
    r->fds = malloc((json_array_size(mem) + 1) * sizeof(int));
    r->n = 0, r->seq = 0;
    r->fds[r->n++] = c->fd;
    for (size_t i = 0; i < json_array_size(mem); i++) {
        const char *u = json_string_value(json_array_get(mem, i));
        if (!u)
            continue;
        int fd = F.uid_fd[fl_uid_slot(u)];
        if (fd >= 0 && fd != c->fd && F.c[fd].state == FL_WS)
            r->fds[r->n++] = fd;
    }
    json_t *chat = json_pack("{ss ss ss s[] sI sI}", "id", rid, "type", "group", "name", "", "members", "lastSeq",
                             (json_int_t)0, "unread", (json_int_t)0);
    json_t *ev = json_pack("[sO]", "chat:new", chat);
    buf_blob_t *b = fl_frame(c->enc, SIO_EVENT, -1, ev);   /* the harness uses one encoding throughout */
    for (uint32_t i = 0; i < r->n; i++)
        fl_push(&F.c[r->fds[i]], b);
    buf_blob_unref(b);
    json_decref(ev);
    if (id >= 0) {
        json_t *ack = json_pack("[{sb sO}]", "ok", 1, "chat", chat);
        fl_send_one(c, SIO_ACK, id, ack);
        json_decref(ack);
    }
    json_decref(chat);
}

static void fl_message_send(fl_conn_t *c, json_t *p, int64_t id)
{
    const char *rid = json_string_value(json_object_get(p, "roomId"));
    unsigned n;
    if (!rid || sscanf(rid, "g:floor%u", &n) != 1 || n >= F.nrooms) {
        json_t *ack = json_pack("[{sb s{ssss}}]", "ok", 0, "error", "code", "NOT_FOUND", "message", "unknown room");
        fl_send_one(c, SIO_ACK, id, ack);
        json_decref(ack);
        return;
    }
    fl_room_t *r = &F.rooms[n];
    int64_t seq = ++r->seq;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *tid = json_object_get(p, "tempId"), *body = json_object_get(p, "body");
    /* 2. one message:new frame for every member but the sender */
    json_t *msg = json_pack("[s{ss sI sO ss ss ss sO sI ss}]", "message:new", "roomId", rid, "seq", (json_int_t)seq,
                            "tempId", tid, "senderId", c->uid, "senderName", c->uid, "type", "text", "body", body,
                            "ts", (json_int_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000), "status", "pending");
    buf_blob_t *b = fl_frame(c->enc, SIO_EVENT, -1, msg);
    for (uint32_t i = 0; i < r->n; i++)
        if (r->fds[i] != c->fd)
            fl_push(&F.c[r->fds[i]], b);
    buf_blob_unref(b);
    json_decref(msg);
    /* 3. ack */
    if (id >= 0) {
        json_t *ack = json_pack("[{sb sO sI}]", "ok", 1, "tempId", tid, "seq", (json_int_t)seq);
        fl_send_one(c, SIO_ACK, id, ack);
        json_decref(ack);
    }
    /* 4. one message:confirmed frame for every member */
    json_t *cf = json_pack("[s{ss sI sO ss}]", "message:confirmed", "roomId", rid, "seq", (json_int_t)seq, "tempId",
                           tid, "id", "000000000000000000000000");
    b = fl_frame(c->enc, SIO_EVENT, -1, cf);
    for (uint32_t i = 0; i < r->n; i++)
        fl_push(&F.c[r->fds[i]], b);
    buf_blob_unref(b);
    json_decref(cf);
}

static void fl_packet(fl_conn_t *c, sio_packet_t *pk)
{
    if (pk->type == SIO_CONNECT) {
        const char *tok = json_string_value(json_object_get(pk->data, "token"));
        jwt_claims_t cl;
        if (!tok || jwt_verify(tok, strlen(tok), (const uint8_t *)F.secret, strlen(F.secret), time(NULL), &cl)) {
            json_t *e = json_pack("{ss s{ss}}", "message", "invalid token", "data", "code", "UNAUTHORIZED");
            fl_send_one(c, SIO_CONNECT_ERROR, -1, e);
            json_decref(e);
            return;
        }
        snprintf(c->uid, sizeof(c->uid), "%s", cl.sub);
        F.uid_fd[fl_uid_slot(c->uid)] = c->fd;
        char sid[24];
        snprintf(sid, sizeof(sid), "%016x", (unsigned)c->fd << 8 | (c->gen & 0xff));
        json_t *d = json_pack("{ss}", "sid", sid);
        fl_send_one(c, SIO_CONNECT, -1, d);
        json_decref(d);
        d = json_pack("[s{ss s[]}]", "ready", "userId", c->uid, "chats");
        fl_send_one(c, SIO_EVENT, -1, d);
        json_decref(d);
        return;
    }
    if (pk->type != SIO_EVENT)
        return;
    const char *ev = json_string_value(json_array_get(pk->data, 0));
    json_t *p = json_array_get(pk->data, 1);
    if (ev && strcmp(ev, "message:send") == 0)
        fl_message_send(c, p, pk->id);
    else if (ev && strcmp(ev, "chat:create") == 0)
        fl_chat_create(c, p, pk->id);
    else if (pk->id >= 0) {
        json_t *ack = json_pack("[{sb s{ssss}}]", "ok", 0, "error", "code", "UNAVAILABLE", "message", "floor");
        fl_send_one(c, SIO_ACK, pk->id, ack);
        json_decref(ack);
    }
}

static void fl_message(fl_conn_t *c, int op, uint8_t *p, size_t n)
{
    sio_packet_t pk;
    int rc;
    if (op == WS_OP_BINARY) {
        c->enc = SIO_ENC_MSGPACK;
        rc = sio_decode_msgpack(p, n, &pk);
    } else {
        if (n < 1 || p[0] != '4')
            return;   /* engine pong/noop */
        if (c->enc == SIO_ENC_NONE)
            c->enc = SIO_ENC_JSON;
        rc = sio_decode_json(p + 1, n - 1, &pk);
    }
    if (rc) {
        fl_close(c);
        return;
    }
    fl_packet(c, &pk);
    sio_packet_clear(&pk);
}

/* fl_ws parses whole masked client frames at p; returns bytes consumed. */
static size_t fl_ws(fl_conn_t *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (c->state == FL_WS && n - off >= 2) {
        uint8_t *f = p + off;
        int op = f[0] & 0x0f;
        uint64_t len = f[1] & 0x7f;
        size_t h = 2;
        if (!(f[1] & 0x80) || !(f[0] & 0x80)) {   /* unmasked or fragmented: not for the floor */
            fl_close(c);
            return n;
        }
        if (len == 126) {
            if (n - off < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3], h = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
            h = 10;
        }
        if (n - off < h + 4 + len)
            break;
        uint8_t *m = f + h, *d = f + h + 4;
        for (uint64_t i = 0; i < len; i++)
            d[i] ^= m[i & 3];
        off += h + 4 + len;
        if (op == WS_OP_TEXT || op == WS_OP_BINARY)
            fl_message(c, op, d, len);
        else if (op == WS_OP_CLOSE)
            fl_close(c);
    }
    return off;
}

static void fl_http(fl_conn_t *c)
{
    http_req_t req;
    int rc = http_parse(c->in.p, c->in.len, &req);
    if (rc == 0)
        return;
    char acc[29];
    if (rc < 0 || http_ws_accept(req.ws_key, acc) != 0) {
        fl_close(c);
        return;
    }
    buf_t out = { 0 };
    http_upgrade_response(&out, acc);
    static const char open_pkt[] =
        "0{\"sid\":\"floor\",\"upgrades\":[],\"pingInterval\":3600000,\"pingTimeout\":3600000,\"maxPayload\":1000000}";
    uint8_t h[WS_HEADER_MAX];
    size_t hl = ws_header(h, WS_OP_TEXT, sizeof(open_pkt) - 1);
    buf_append(&out, h, hl);
    buf_append(&out, open_pkt, sizeof(open_pkt) - 1);
    buf_blob_t *b = buf_blob_new((uint32_t)out.len);
    memcpy(b->data, out.p, out.len);
    buf_blob_freeze(b);
    buf_deinit(&out);
    fl_push(c, b);
    buf_blob_unref(b);
    buf_consume(&c->in, (size_t)rc);
    c->state = FL_WS;
}

static void fl_on_recv(fl_conn_t *c, int res)
{
    c->recv_busy = false;
    if (res <= 0 || c->state == FL_CLOSED) {
        fl_close(c);
        return;
    }
    if (c->state == FL_WS && c->in.len == 0) {   /* common case: parse in place, keep the tail */
        size_t used = fl_ws(c, c->rbuf, (size_t)res);
        if (used < (size_t)res && c->state == FL_WS)
            buf_append(&c->in, c->rbuf + used, (size_t)res - used);
    } else {
        buf_append(&c->in, c->rbuf, (size_t)res);
        if (c->state == FL_HTTP)
            fl_http(c);
        if (c->state == FL_WS && c->in.len) {
            size_t used = fl_ws(c, c->in.p, c->in.len);
            buf_consume(&c->in, used);
        }
    }
    if (c->state != FL_CLOSED)
        fl_recv(c);
}

static void fl_on_accept(int fd)
{
    if (fd < 0)
        return;
    fl_conn_t *c = &F.c[fd];
    uint32_t gen = c->gen + 1;
    uint8_t *rbuf = c->rbuf ? c->rbuf : malloc(FL_RBUF);
    buf_blob_t **q = c->q;
    uint32_t qcap = c->qcap;
    *c = (fl_conn_t){ .fd = fd, .gen = gen, .state = FL_HTTP, .rbuf = rbuf, .q = q, .qcap = qcap };
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    F.nconn++;
    fl_recv(c);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--jwt-secret") == 0) F.secret = argv[i + 1];
        else if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
        else break;
    }
    if (!F.secret) {
        fprintf(stderr, "usage: ringcast-floor --jwt-secret S [--host 127.0.0.1] [--port 0]\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    F.c = calloc(rl.rlim_cur, sizeof(fl_conn_t));
    F.dirty = calloc(rl.rlim_cur, sizeof(int));
    for (uint32_t i = 0; i < FL_UID_SLOTS; i++)
        F.uid_fd[i] = -1;
    struct sigaction sa = { .sa_handler = fl_on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(F.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    socklen_t al = sizeof(a);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || bind(F.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(F.lfd, 65535) < 0 || getsockname(F.lfd, (struct sockaddr *)&a, &al) < 0) {
        fprintf(stderr, "ringcast-floor: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    int rc = io_uring_queue_init(FL_RING, &F.ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN);
    if (rc < 0) {
        fprintf(stderr, "ringcast-floor: io_uring_queue_init: %s\n", strerror(-rc));
        return 1;
    }
    struct io_uring_sqe *s = fl_sqe();
    io_uring_prep_multishot_accept(s, F.lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, fl_ud(FL_OP_ACCEPT, 0, 0));
    fprintf(stderr, "listening on %s:%u\n", host, ntohs(a.sin_port));

    while (!F.stop) {
        rc = io_uring_submit_and_wait(&F.ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            fprintf(stderr, "ringcast-floor: io_uring_submit_and_wait: %s\n", strerror(-rc));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&F.ring, head, cqe) {
            seen++;
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            int kind = (int)(ud & 0xff), fd = (int)((ud >> 8) & 0xffffff);
            uint32_t gen = (uint32_t)(ud >> 32);
            if (kind == FL_OP_ACCEPT) {
                fl_on_accept(cqe->res);
                if (!(cqe->flags & IORING_CQE_F_MORE)) {   /* re-arm a finished multishot accept */
                    s = fl_sqe();
                    io_uring_prep_multishot_accept(s, F.lfd, NULL, NULL, SOCK_CLOEXEC);
                    io_uring_sqe_set_data64(s, fl_ud(FL_OP_ACCEPT, 0, 0));
                }
                continue;
            }
            fl_conn_t *c = &F.c[fd];
            if (c->gen != gen || c->fd != fd)
                continue;   /* stale */
            if (kind == FL_OP_RECV)
                fl_on_recv(c, cqe->res);
            else if (kind == FL_OP_SEND)
                fl_on_sent(c, cqe->res);
            fl_maybe_free(c);
        }
        io_uring_cq_advance(&F.ring, seen);
        for (int i = 0; i < F.ndirty; i++) {   /* end of turn: one sendmsg per socket with frames */
            fl_conn_t *c = &F.c[F.dirty[i]];
            c->dirty = false;
            if (c->state == FL_CLOSED)
                fl_maybe_free(c);
            else if (!c->send_busy && c->qlen)
                fl_send(c);
        }
        F.ndirty = 0;
    }
    fprintf(stderr, "ringcast-floor: stopping with %d connections\n", F.nconn);
    return 0;
}
