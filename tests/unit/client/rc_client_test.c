/* rc_client_test.c - src/client/rc_client.c against the real broker.
 *
 * Forks $RINGCAST_BIN (default zig-out/bin/ringcast; exit 77 when missing)
 * on a free port with a SQLite store in a fresh temporary directory, mints
 * tokens with `ringcast token`, and drives N clients (RCC_TEST_CLIENTS,
 * default 200; even ones MessagePack, odd ones JSON; source addresses spread
 * over 127.0.0.1-8) from one epoll loop on this thread:
 *   1. all get `ready`;
 *   2. one creates a group chat of everybody; all get chat:new and join it
 *      through rcc_join();
 *   3. several clients send interleaved messages: every client sees every
 *      seq exactly once (message:new, or its own ack) and in order, and one
 *      message:confirmed per seq; acks carry the tempId and growing seqs;
 *   4. a MessagePack and a JSON client lose their sockets (shutdown from the
 *      test) while others send: they reconnect with backoff, re-join with
 *      sinceSeq and get exactly what they missed;
 *   5. a client whose socket goes silent (the descriptor is swapped for a
 *      quiet socketpair) is dropped by the ping watchdog and recovers too;
 *   6. a bad token ends with UNAUTHORIZED and no reconnect.
 * Before that, without the broker, a scripted server checks the exact bytes
 * both ways with its input split at every byte: the upgrade, OPEN and
 * CONNECT, pings of both kinds, a fragmented message, ack ids from 1, seqs
 * taken from acks, join replays and events, and a drop failing pending acks.
 * The raw-event hook (cbs.on_raw): its scanners on exact bytes, and end to
 * end in both encodings (taken, declined, acked, never offered); half of the
 * broker clients also run a hook that inspects every event and declines.
 * Includes the .c to check internals (ack ids start at 1, memory per client).
 * No timing assertions: every wait is "until done or a generous limit".
 */
#include "../../../src/client/rc_client.c"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "../../../wire/mp.h"
#include "../../support/check.h"

#define T_SEQ_MAX 1024
#define T_SENDERS 5
#define T_PER_SENDER 20
#define T_WAIT_MS 60000

typedef struct {
    rcc_t *c;
    int idx;
    int reg_fd;
    uint32_t reg_id, reg_ev;
    int readies, disconnects, chat_new, joins, join_errors;
    bool last_will;
    char last_reason[64];
    int64_t last_new;          /* last live message:new seq on this socket */
    int order_errors;
    uint32_t order_sock;       /* sock_id that last_new belongs to */
    uint8_t seen[T_SEQ_MAX];   /* message:new + missed + own send acks, per seq */
    uint8_t conf[T_SEQ_MAX];   /* message:confirmed per seq */
} tc_t;

typedef struct {
    tc_t *from;
    char temp[32];
    bool acked, ok, temp_ok;
    int64_t seq;
} t_send_t;

static int t_ep;
static char t_room[160];
static char t_chat_name[32];
static int t_null_acks;

static uint64_t t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the broker ---------------------------------------------------- */

static pid_t t_broker_start(const char *bin, const char *dir, int *port)
{
    char store[600], log[600];
    snprintf(store, sizeof(store), "sqlite:%s/rc.db", dir);
    snprintf(log, sizeof(log), "%s/broker.log", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);   /* never our stdout: a pipe reader would wait for the broker */
        dup2(fd, 2);
        /* Pings of 4 s exercise pong and the watchdog (8 s after the last
         * ping) while leaving a loaded sanitizer run seconds of slack: at
         * 1.5 s, TSan runs in CI dropped clients whose pongs came late; the
         * broker's handshake deadline matches the clients' 45 s for the same
         * reason (200 connects at once under a sanitizer). The
         * rate limit is lifted because this test sends in bursts. */
        execl(bin, "ringcast", "--port", "0", "--jwt-secret", "x", "--store", store,
              "--ping-interval-ms", "4000", "--ping-timeout-ms", "4000", "--handshake-timeout-ms", "45000",
              "--rate-limit", "1000000",
              "--rate-burst", "1000000", (char *)NULL);
        _exit(127);
    }
    /* Wait for "listening on 127.0.0.1:PORT" in its log. */
    for (int i = 0; i < 1000 && pid > 0; i++) {
        FILE *f = fopen(log, "r");
        char line[512];
        while (f && fgets(line, sizeof(line), f)) {
            const char *p = strstr(line, "listening on 127.0.0.1:");
            if (p && (*port = atoi(p + 23)) > 0) {
                fclose(f);
                return pid;
            }
        }
        if (f)
            fclose(f);
        if (waitpid(pid, NULL, WNOHANG) == pid)
            break;
        usleep(10000);
    }
    fprintf(stderr, "broker did not start; see %s\n", log);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return -1;
}

static char *t_token(const char *bin, const char *user)
{
    char cmd[1024], out[2048];
    snprintf(cmd, sizeof(cmd), "'%s' token %s --jwt-secret x", bin, user);
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    char *s = fgets(out, sizeof(out), p);
    pclose(p);
    if (!s)
        return NULL;
    out[strcspn(out, "\r\n")] = '\0';
    return strdup(out);
}

/* ---- callbacks -------------------------------------------------------- */

static void t_on_ready(rcc_t *c, void *ud, json_t *chats)
{
    tc_t *t = ud;
    t->readies++;
    CHECK(json_is_array(chats));
}

static void t_seen(tc_t *t, const json_t *msg, bool live)
{
    int64_t seq;
    const char *room = json_get_str(msg, "roomId", NULL);
    if (!room || strcmp(room, t_room) != 0 || !json_get_int(msg, "seq", &seq))
        return;
    CHECK(seq > 0 && seq < T_SEQ_MAX);
    if (seq <= 0 || seq >= T_SEQ_MAX)
        return;
    t->seen[seq]++;
    if (!live) {
        /* A replayed message confirmed meanwhile says so in its status; a
         * pending one is confirmed later by a live event. */
        const char *st = json_get_str(msg, "status", NULL);
        if (st && strcmp(st, "confirmed") == 0)
            t->conf[seq]++;
        return;
    }
    /* Order is per socket: after a reconnect the replay comes in the join
     * ack, separately from live events. */
    if (t->order_sock != rcc_sock_id(t->c)) {
        t->order_sock = rcc_sock_id(t->c);
        t->last_new = 0;
    }
    if (seq <= t->last_new)
        t->order_errors++;
    t->last_new = seq;
}

static void t_on_event(rcc_t *c, void *ud, const char *name, json_t *payload)
{
    tc_t *t = ud;
    if (strcmp(name, "chat:new") == 0) {
        const char *n = json_get_str(payload, "name", NULL);
        const char *id = json_get_str(payload, "id", NULL);
        if (n && id && strcmp(n, t_chat_name) == 0) {
            t->chat_new++;
            if (!t_room[0])
                snprintf(t_room, sizeof(t_room), "%s", id);
        }
    } else if (strcmp(name, "message:new") == 0) {
        t_seen(t, payload, true);
    } else if (strcmp(name, "message:confirmed") == 0) {
        int64_t seq;
        const char *room = json_get_str(payload, "roomId", NULL);
        if (room && strcmp(room, t_room) == 0 && json_get_int(payload, "seq", &seq) && seq > 0 && seq < T_SEQ_MAX)
            t->conf[seq]++;
    } else if (strcmp(name, "room:join") == 0) {
        if (!json_is_true(json_object_get(payload, "ok"))) {
            t->join_errors++;
            return;
        }
        const char *room = json_get_str(payload, "roomId", NULL);
        CHECK(room && strcmp(room, t_room) == 0);
        t->joins++;
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(payload, "missed"), i, m)
            t_seen(t, m, false);
    }
}

/* t_on_raw (half of the broker clients): every event the real broker sends
 * must scan, its payload must decode on its own, and returning false must
 * leave the rest of the test (which then sees the decoded event) unchanged. */
static int t_raw_offers, t_raw_bad, t_raw_message;
static bool t_on_raw(rcc_t *c, void *ud, const char *ev, size_t ev_len, const uint8_t *pl, size_t len, int enc)
{
    t_raw_offers++;
    json_t *v = NULL;
    if (pl && (enc == RCC_JSON ? json_parse(pl, len, &v) : mp_parse(pl, len, &v)) != 0)
        t_raw_bad++;
    json_decref(v);
    if (ev_len >= 8 && memcmp(ev, "message:", 8) == 0)
        t_raw_message++;   /* never offered: these clients rcc_join() their room */
    if (ev_len == 5 && memcmp(ev, "ready", 5) == 0)
        t_raw_bad++;
    return false;
}

static void t_on_disconnect(rcc_t *c, void *ud, const char *reason, bool will_reconnect)
{
    tc_t *t = ud;
    t->disconnects++;
    t->last_will = will_reconnect;
    snprintf(t->last_reason, sizeof(t->last_reason), "%s", reason);
}

static void t_on_send_ack(rcc_t *c, void *ud, json_t *ack)
{
    t_send_t *s = ud;
    s->acked = true;
    if (!ack) {
        t_null_acks++;
        return;
    }
    s->ok = json_is_true(json_object_get(ack, "ok"));
    const char *temp = json_get_str(ack, "tempId", NULL);
    s->temp_ok = temp && strcmp(temp, s->temp) == 0;
    if (json_get_int(ack, "seq", &s->seq) && s->seq > 0 && s->seq < T_SEQ_MAX)
        s->from->seen[s->seq]++;
}

static void t_on_create_ack(rcc_t *c, void *ud, json_t *ack)
{
    int *done = ud;
    *done = ack && json_is_true(json_object_get(ack, "ok")) ? 1 : -1;
    const char *id = json_get_str(json_object_get(ack, "chat"), "id", NULL);
    if (id && !t_room[0])
        snprintf(t_room, sizeof(t_room), "%s", id);
}

/* ---- a scripted server: exact bytes, fed one at a time ---------------- */

static int f_events, f_readies, f_disconnects, f_acks, f_missed;
static int64_t f_missed_last;
static int64_t f_ack_seq = -1;
static char f_reason[64];
static bool f_will;

static void f_on_ready(rcc_t *c, void *ud, json_t *chats) { f_readies++; }
static void f_on_event(rcc_t *c, void *ud, const char *name, json_t *payload)
{
    if (strcmp(name, "room:join") == 0 && json_is_true(json_object_get(payload, "ok"))) {
        f_events++;
        json_t *m = json_object_get(payload, "missed");
        f_missed = (int)json_array_size(m);
        if (!json_get_int(json_array_get(m, f_missed - 1), "seq", &f_missed_last))
            f_missed_last = -1;
    }
}
static void f_on_disconnect(rcc_t *c, void *ud, const char *reason, bool will_reconnect)
{
    f_disconnects++;
    f_will = will_reconnect;
    snprintf(f_reason, sizeof(f_reason), "%s", reason);
}
static void f_on_ack(rcc_t *c, void *ud, json_t *ack)
{
    f_acks++;
    if (!ack || !json_get_int(ack, "seq", &f_ack_seq))
        f_ack_seq = -2;
}

/* f_feed writes p[0..n) to the client one byte at a time and lets it read
 * after each: every frame and the HTTP head arrive split at every boundary. */
static void f_feed(int srv, rcc_t *c, const void *p, size_t n)
{
    for (size_t i = 0; i < n && rcc_fd(c) >= 0; i++) {
        CHECK(write(srv, (const uint8_t *)p + i, 1) == 1);
        struct pollfd pf = { .fd = rcc_fd(c), .events = POLLIN };
        CHECK(poll(&pf, 1, 5000) == 1);
        rcc_on_readable(c, t_now());
    }
}

/* f_frame writes a server frame (unmasked, optionally not final). */
static void f_frame(int srv, rcc_t *c, int op, bool fin, const char *p, size_t n)
{
    uint8_t h[WS_HEADER_MAX];
    size_t hl = ws_header(h, op, n);
    if (!fin)
        h[0] &= 0x7f;
    f_feed(srv, c, h, hl);
    f_feed(srv, c, p, n);
}

static void f_text(int srv, rcc_t *c, const char *s) { f_frame(srv, c, WS_OP_TEXT, true, s, strlen(s)); }

/* f_read reads one client frame, checks it is final and masked, unmasks it
 * into out (NUL-terminated) and returns its opcode, or -1. */
static int f_read(int srv, char *out, size_t cap)
{
    uint8_t h[14];
    if (recv(srv, h, 2, MSG_WAITALL) != 2 || !(h[0] & 0x80) || !(h[1] & 0x80))
        return -1;
    uint64_t len = h[1] & 0x7f;
    size_t ext = len == 126 ? 2 : len == 127 ? 8 : 0;
    if (recv(srv, h + 2, ext + 4, MSG_WAITALL) != (ssize_t)(ext + 4))
        return -1;
    if (ext) {
        len = 0;
        for (size_t i = 0; i < ext; i++)
            len = len << 8 | h[2 + i];
    }
    if (len + 1 > cap || (len && recv(srv, out, len, MSG_WAITALL) != (ssize_t)len))
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] ^= (char)h[2 + ext + (i & 3)];
    out[len] = '\0';
    return h[0] & 0x0f;
}

static void t_fake_server(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(lfd, 4) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
    rcc_opts_t o = {
        .host = "127.0.0.1", .port = ntohs(a.sin_port), .token = "tok", .encoding = RCC_JSON, .seed = 7,
        .cbs = { .on_ready = f_on_ready, .on_event = f_on_event, .on_disconnect = f_on_disconnect },
    };
    rcc_t *c = rcc_new(&o);
    CHECK(c && rcc_connect(c, t_now()) == 0);
    int srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(srv >= 0);
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(srv, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct pollfd pf = { .fd = rcc_fd(c), .events = POLLOUT };
    CHECK(poll(&pf, 1, 5000) == 1);
    CHECK(rcc_want_write(c));
    rcc_on_writable(c, t_now());
    CHECK_EQ_INT(rcc_state(c), RCC_ST_UPGRADING);

    /* 1. The upgrade request, read with the broker's own parser. */
    char req[HTTP_HEAD_MAX];
    size_t rl = 0;
    while (rl < sizeof(req) - 1 && !memmem(req, rl, "\r\n\r\n", 4)) {
        ssize_t k = recv(srv, req + rl, sizeof(req) - 1 - rl, 0);
        if (k <= 0)
            break;
        rl += (size_t)k;
    }
    http_req_t hr;
    CHECK(http_parse((const uint8_t *)req, rl, &hr) == (int)rl);
    CHECK_EQ_STR(hr.path, "/socket.io/");
    CHECK_EQ_STR(hr.query, "EIO=4&transport=websocket");
    CHECK(hr.upgrade_websocket && hr.connection_upgrade && hr.ws_version == 13);
    CHECK_EQ_INT(strlen(hr.ws_key), 24);
    char accept[29];
    CHECK(http_ws_accept(hr.ws_key, accept) == 0);
    buf_t b = { 0 };
    CHECK(http_upgrade_response(&b, accept) == 0);
    f_feed(srv, c, b.p, b.len);
    buf_deinit(&b);
    CHECK_EQ_INT(rcc_state(c), RCC_ST_OPENING);

    /* 2. OPEN -> the client's CONNECT with its token; the reply. */
    f_text(srv, c, "0{\"sid\":\"s\",\"upgrades\":[],\"pingInterval\":1000,\"pingTimeout\":500,\"maxPayload\":1000000}");
    char m[4096];
    CHECK_EQ_INT(f_read(srv, m, sizeof(m)), WS_OP_TEXT);
    CHECK_EQ_STR(m, "40{\"token\":\"tok\"}");
    uint64_t t0 = t_now();
    f_text(srv, c, "40{\"sid\":\"x\"}");
    CHECK_EQ_INT(rcc_state(c), RCC_ST_CONNECTED);
    CHECK(rcc_next_timer_ms(c) >= t0 + 1500 && rcc_next_timer_ms(c) <= t_now() + 1500);

    /* 3. A WebSocket ping, an engine ping, and `ready` in three fragments. */
    f_frame(srv, c, WS_OP_PING, true, "hi", 2);
    CHECK_EQ_INT(f_read(srv, m, sizeof(m)), WS_OP_PONG);
    CHECK_EQ_STR(m, "hi");
    f_text(srv, c, "2");
    CHECK_EQ_INT(f_read(srv, m, sizeof(m)), WS_OP_TEXT);
    CHECK_EQ_STR(m, "3");
    static const char ready[] = "42[\"ready\",{\"userId\":\"u\",\"chats\":[]}]";
    f_frame(srv, c, WS_OP_TEXT, false, ready, 5);
    f_frame(srv, c, WS_OP_CONT, false, ready + 5, 10);
    f_frame(srv, c, WS_OP_CONT, true, ready + 15, strlen(ready) - 15);
    CHECK_EQ_INT(f_readies, 1);
    CHECK_EQ_INT(rcc_state(c), RCC_ST_READY);
    CHECK_EQ_STR(rcc_user_id(c), "u");

    /* 4. Join (ack id 1) and a send (ack id 2); their acks raise the seq. */
    CHECK_EQ_INT(rcc_join(c, "r", 3), 0);
    json_t *p = json_pack("{ssssssss}", "roomId", "r", "tempId", "t", "type", "text", "body", "b");
    CHECK_EQ_INT(rcc_emit(c, "message:send", p, f_on_ack, NULL), 0);
    json_decref(p);
    CHECK(rcc_want_write(c));
    CHECK_EQ_INT(rcc_flush(c), 0);
    CHECK_EQ_INT(f_read(srv, m, sizeof(m)), WS_OP_TEXT);
    CHECK_EQ_STR(m, "421[\"room:join\",{\"roomId\":\"r\",\"sinceSeq\":3}]");
    CHECK_EQ_INT(f_read(srv, m, sizeof(m)), WS_OP_TEXT);
    CHECK_EQ_STR(m, "422[\"message:send\",{\"roomId\":\"r\",\"tempId\":\"t\",\"type\":\"text\",\"body\":\"b\"}]");
    f_text(srv, c, "432[{\"ok\":true,\"tempId\":\"t\",\"seq\":5}]");
    CHECK_EQ_INT(f_acks, 1);
    CHECK_EQ_INT(f_ack_seq, 5);
    CHECK_EQ_INT(rcc_room_seq(c, "r"), 5);
    /* Seq 7 arrives live before the join's ack, which replays 6 and 7: the
     * library hands over only 6. */
    f_text(srv, c, "42[\"message:new\",{\"roomId\":\"r\",\"seq\":7}]");
    f_text(srv, c, "431[{\"ok\":true,\"roomId\":\"r\",\"lastSeq\":7,\"missed\":[{\"roomId\":\"r\",\"seq\":6},"
                   "{\"roomId\":\"r\",\"seq\":7}],\"more\":false}]");
    CHECK_EQ_INT(f_events, 1);
    CHECK_EQ_INT(f_missed, 1);
    CHECK_EQ_INT(f_missed_last, 6);
    CHECK_EQ_INT(rcc_room_seq(c, "r"), 7);
    f_text(srv, c, "42[\"message:new\",{\"roomId\":\"r\",\"seq\":9}]");
    CHECK_EQ_INT(rcc_room_seq(c, "r"), 9);
    f_text(srv, c, "439[{\"ok\":true}]");   /* an unknown ack id is ignored */
    CHECK_EQ_INT(f_acks, 1);

    /* 5. A pending ack fails with NULL when the connection drops; a binary
     * frame on a JSON connection is a parse error; reconnect is off. */
    CHECK_EQ_INT(rcc_emit(c, "chats:list", NULL, f_on_ack, NULL), 0);
    f_frame(srv, c, WS_OP_BINARY, true, "\x80", 1);
    CHECK_EQ_STR(f_reason, "parse error");
    CHECK(!f_will);
    CHECK_EQ_INT(f_acks, 2);
    CHECK_EQ_INT(f_ack_seq, -2);
    CHECK_EQ_INT(rcc_state(c), RCC_ST_CLOSED);
    CHECK_EQ_INT(rcc_on_readable(c, t_now()), -ENOTCONN);
    rcc_free(c);
    close(srv);
    close(lfd);
}

/* ---- the raw-event hook (cbs.on_raw) -------------------------------------- */

/* t_raw_scan: the scanners on exact bytes, without a socket. */
static void t_raw_scan(void)
{
    rcc__raw_t r;
#define RJ(s) rcc__raw_json((const uint8_t *)(s), strlen(s), &r)
    CHECK(RJ("2[\"message:new\",{\"roomId\":\"r\",\"body\":\"a]\\\"}b\",\"x\":[1,{\"y\":2}]}]"));
    CHECK(r.ev_len == 11 && memcmp(r.ev, "message:new", 11) == 0 && r.id == -1);
    CHECK(r.pl && r.pl_len == strlen("{\"roomId\":\"r\",\"body\":\"a]\\\"}b\",\"x\":[1,{\"y\":2}]}"));
    CHECK(r.pl[0] == '{' && r.pl[r.pl_len - 1] == '}');
    CHECK(RJ("217[\"e\"]") && r.id == 17 && r.pl == NULL && r.ev_len == 1);
    CHECK(RJ("2[\"e\",42]") && r.pl_len == 2 && memcmp(r.pl, "42", 2) == 0);
    CHECK(RJ("2[\"e\",\"s\"]") && r.pl_len == 3);
    CHECK(!RJ("2[\"e\",1,2]"));          /* two arguments: full decode */
    CHECK(!RJ("2/chat,[\"e\",{}]"));     /* a namespace */
    CHECK(!RJ("2[\"e\\\"x\",{}]"));      /* an escaped name */
    CHECK(!RJ("2[\"e\",{]"));            /* broken nesting */
    CHECK(!RJ("2[\"e\",{}]x"));          /* trailing bytes */
    CHECK(!RJ("2[\"e\",{\"a\":\"b}]"));  /* unterminated string */
    CHECK(!RJ("3[\"e\",{}]"));           /* not an EVENT */
    CHECK(!RJ("2[1,{}]"));
#undef RJ
    /* msgpack: encode with the library's own encoder, then scan; then the
     * peer's key order and a fixext `undefined` id by hand. */
    json_t *pl = json_pack("{ss sI s[i{sn}] sf sb}", "roomId", "r", "seq", (json_int_t)300000, "a", 1, "x",
                           "d", 1.5, "t", 1);
    sio_packet_t pkt = { .type = SIO_EVENT, .nsp = "/", .id = 9, .data = json_pack("[sO]", "message:new", pl) };
    buf_t b = { 0 }, pe = { 0 };
    CHECK(sio_encode(SIO_ENC_MSGPACK, &pkt, &b) == 0 && mp_emit(pl, &pe) == 0);
    CHECK(rcc__raw_mp(b.p, b.len, &r));
    CHECK(r.ev_len == 11 && memcmp(r.ev, "message:new", 11) == 0 && r.id == 9);
    CHECK(r.pl_len == pe.len && memcmp(r.pl, pe.p, pe.len) == 0);
    CHECK(!rcc__raw_mp(b.p, b.len - 1, &r));   /* truncated */
    json_decref(pkt.data);
    json_decref(pl);
    buf_deinit(&b);
    buf_deinit(&pe);
    static const uint8_t peer[] = { 0x84, 0xa4, 'd', 'a', 't', 'a', 0x92, 0xa1, 'e', 0x81, 0xa1, 'k', 0xc3,
                                    0xa2, 'i', 'd', 0xd4, 0x00, 0x00, 0xa3, 'n', 's', 'p', 0xa1, '/',
                                    0xa4, 't', 'y', 'p', 'e', 0x02 };
    CHECK(rcc__raw_mp(peer, sizeof(peer), &r) && r.id == -1 && r.ev_len == 1 && r.pl_len == 4);
    uint8_t bad[sizeof(peer)];
    memcpy(bad, peer, sizeof(peer));
    bad[sizeof(bad) - 1] = 0x03;   /* type ACK */
    CHECK(!rcc__raw_mp(bad, sizeof(bad), &r));
    memcpy(bad, peer, sizeof(peer));
    bad[24] = 'x';                 /* nsp "x" */
    CHECK(!rcc__raw_mp(bad, sizeof(bad), &r));
    static const uint8_t arr[] = { 0x93, 0x01, 0xdc, 0x00, 0x01, 0xc0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0 };
    CHECK_EQ_INT(rcc__mp_skip(arr, sizeof(arr)), sizeof(arr));
    CHECK_EQ_INT(rcc__mp_skip(arr, sizeof(arr) - 1), 0);
    static const uint8_t huge[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01 };   /* 4G items in 6 bytes */
    CHECK_EQ_INT(rcc__mp_skip(huge, sizeof(huge)), 0);
}

static int f_raws, f_plain;
static char f_raw_ev[64];
static char f_raw_pl[256];
static size_t f_raw_len;
static bool f_raw_null;

static bool f_on_raw(rcc_t *c, void *ud, const char *ev, size_t ev_len, const uint8_t *pl, size_t len, int enc)
{
    if (ev_len < 4 || memcmp(ev, "raw:", 4) != 0)
        return false;
    f_raws++;
    snprintf(f_raw_ev, sizeof(f_raw_ev), "%.*s", (int)ev_len, ev);
    f_raw_null = pl == NULL;
    f_raw_len = len < sizeof(f_raw_pl) ? len : sizeof(f_raw_pl);
    if (pl)
        memcpy(f_raw_pl, pl, f_raw_len);
    return true;
}
static void f_raw_on_event(rcc_t *c, void *ud, const char *name, json_t *payload)
{
    if (strcmp(name, "plain") == 0 || strcmp(name, "raw:two") == 0 || strcmp(name, "message:new") == 0)
        f_plain++;
}

/* f_pkt sends one server packet in the connection's encoding. */
static void f_pkt(int srv, rcc_t *c, rcc_enc_t enc, int type, int64_t id, json_t *data)
{
    sio_packet_t pkt = { .type = type, .nsp = "/", .id = id, .data = data };
    buf_t b = { 0 };
    CHECK(sio_encode(enc == RCC_JSON ? SIO_ENC_JSON : SIO_ENC_MSGPACK, &pkt, &b) == 0);
    f_frame(srv, c, enc == RCC_JSON ? WS_OP_TEXT : WS_OP_BINARY, true, (const char *)b.p, b.len);
    buf_deinit(&b);
    json_decref(data);
}

/* f_pkt_read reads one client packet and decodes it. */
static void f_pkt_read(int srv, rcc_enc_t enc, sio_packet_t *pkt)
{
    char m[4096];
    uint8_t h[14];
    CHECK(recv(srv, h, 2, MSG_WAITALL) == 2 && (h[1] & 0x7f) < 126);
    size_t len = h[1] & 0x7f;
    CHECK(recv(srv, h + 2, 4, MSG_WAITALL) == 4);
    CHECK(len == 0 || recv(srv, m, len, MSG_WAITALL) == (ssize_t)len);
    for (size_t i = 0; i < len; i++)
        m[i] ^= (char)h[2 + (i & 3)];
    if (enc == RCC_JSON) {
        CHECK(len > 1 && m[0] == '4');
        CHECK(sio_decode_json((const uint8_t *)m + 1, len - 1, pkt) == 0);
    } else {
        CHECK(sio_decode_msgpack((const uint8_t *)m, len, pkt) == 0);
    }
}

/* t_fake_raw: the hook end to end, in either encoding, against a scripted
 * server: taken events skip on_event, declined ones reach it, an ack the
 * server asked for is still answered, and `ready`, two-argument events and
 * message:* of a remembered room are never offered. */
static void t_fake_raw(rcc_enc_t enc)
{
    f_raws = f_plain = 0;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(lfd, 4) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
    rcc_opts_t o = {
        .host = "127.0.0.1", .port = ntohs(a.sin_port), .token = "tok", .encoding = enc, .seed = 11,
        .cbs = { .on_ready = f_on_ready, .on_event = f_raw_on_event, .on_disconnect = f_on_disconnect,
                 .on_raw = f_on_raw },
    };
    rcc_t *c = rcc_new(&o);
    CHECK(c && rcc_connect(c, t_now()) == 0);
    int srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(srv >= 0);
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(srv, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct pollfd pf = { .fd = rcc_fd(c), .events = POLLOUT };
    CHECK(poll(&pf, 1, 5000) == 1);
    rcc_on_writable(c, t_now());
    char req[HTTP_HEAD_MAX];
    size_t rl = 0;
    while (rl < sizeof(req) - 1 && !memmem(req, rl, "\r\n\r\n", 4)) {
        ssize_t k = recv(srv, req + rl, sizeof(req) - 1 - rl, 0);
        if (k <= 0)
            break;
        rl += (size_t)k;
    }
    http_req_t hr;
    char accept[29];
    buf_t b = { 0 };
    CHECK(http_parse((const uint8_t *)req, rl, &hr) == (int)rl && http_ws_accept(hr.ws_key, accept) == 0);
    CHECK(http_upgrade_response(&b, accept) == 0);
    f_feed(srv, c, b.p, b.len);
    buf_deinit(&b);
    f_text(srv, c, "0{\"sid\":\"s\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000}");
    sio_packet_t pkt;
    f_pkt_read(srv, enc, &pkt);
    CHECK_EQ_INT(pkt.type, SIO_CONNECT);
    sio_packet_clear(&pkt);
    f_pkt(srv, c, enc, SIO_CONNECT, -1, json_pack("{ss}", "sid", "x"));
    CHECK_EQ_INT(rcc_state(c), RCC_ST_CONNECTED);
    int readies = f_readies;
    f_pkt(srv, c, enc, SIO_EVENT, -1, json_pack("[s{ss s[]}]", "ready", "userId", "u", "chats"));
    CHECK_EQ_INT(f_readies, readies + 1);   /* `ready` is the library's, never offered */
    CHECK_EQ_INT(rcc_state(c), RCC_ST_READY);
    CHECK_EQ_INT(f_raws, 0);

    /* Taken: the exact payload bytes, nothing decoded, on_event skipped. */
    json_t *pl = json_pack("{ss sI ss}", "roomId", "r", "seq", (json_int_t)70000, "body", "a]\"}b");
    buf_t want = { 0 };
    CHECK((enc == RCC_JSON ? json_emit(pl, &want) : mp_emit(pl, &want)) == 0);
    f_pkt(srv, c, enc, SIO_EVENT, -1, json_pack("[so]", "raw:a", pl));
    CHECK_EQ_INT(f_raws, 1);
    CHECK_EQ_STR(f_raw_ev, "raw:a");
    CHECK(f_raw_len == want.len && memcmp(f_raw_pl, want.p, want.len) == 0);
    buf_deinit(&want);
    CHECK_EQ_INT(f_plain, 0);
    f_pkt(srv, c, enc, SIO_EVENT, -1, json_pack("[s]", "raw:none"));
    CHECK_EQ_INT(f_raws, 2);
    CHECK(f_raw_null && f_raw_len == 0);
    /* Declined: decoded and delivered as usual. */
    f_pkt(srv, c, enc, SIO_EVENT, -1, json_pack("[s{}]", "plain"));
    CHECK_EQ_INT(f_plain, 1);
    /* Two arguments: not offered. */
    f_pkt(srv, c, enc, SIO_EVENT, -1, json_pack("[sii]", "raw:two", 1, 2));
    CHECK_EQ_INT(f_raws, 2);
    CHECK_EQ_INT(f_plain, 2);
    /* Taken with an ack id: the library still answers [] with that id. */
    f_pkt(srv, c, enc, SIO_EVENT, 12, json_pack("[s{}]", "raw:ack"));
    CHECK_EQ_INT(f_raws, 3);
    f_pkt_read(srv, enc, &pkt);
    CHECK_EQ_INT(pkt.type, SIO_ACK);
    CHECK_EQ_INT(pkt.id, 12);
    CHECK(json_is_array(pkt.data) && json_array_size(pkt.data) == 0);
    sio_packet_clear(&pkt);
    /* A remembered room: its message:* go through the decode for the seqs. */
    CHECK_EQ_INT(rcc_join(c, "r", -1), 0);
    CHECK_EQ_INT(rcc_flush(c), 0);
    f_pkt_read(srv, enc, &pkt);   /* the room:join */
    sio_packet_clear(&pkt);
    f_pkt(srv, c, enc, SIO_EVENT, -1, json_pack("[s{sssi}]", "message:new", "roomId", "r", "seq", 4));
    CHECK_EQ_INT(rcc_room_seq(c, "r"), 4);
    CHECK_EQ_INT(f_plain, 3);
    CHECK_EQ_INT(f_raws, 3);
    CHECK_EQ_INT(rcc_state(c), RCC_ST_READY);
    rcc_free(c);
    close(srv);
    close(lfd);
}

/* ---- the loop ----------------------------------------------------------- */

/* t_sync follows rc_client.h: re-register when the descriptor or socket id
 * changed, modify when write interest changed. */
static void t_sync(tc_t *t)
{
    int fd = rcc_fd(t->c);
    uint32_t id = rcc_sock_id(t->c);
    uint32_t ev = EPOLLIN | (rcc_want_write(t->c) ? EPOLLOUT : 0);
    if (fd != t->reg_fd || id != t->reg_id) {
        t->reg_fd = -1;
        if (fd >= 0) {
            struct epoll_event e = { .events = ev, .data.ptr = t };
            CHECK(epoll_ctl(t_ep, EPOLL_CTL_ADD, fd, &e) == 0);
            t->reg_fd = fd, t->reg_id = id, t->reg_ev = ev;
        }
    } else if (fd >= 0 && ev != t->reg_ev) {
        struct epoll_event e = { .events = ev, .data.ptr = t };
        CHECK(epoll_ctl(t_ep, EPOLL_CTL_MOD, fd, &e) == 0);
        t->reg_ev = ev;
    }
}

typedef bool (*t_pred)(tc_t *ts, int n);

/* t_run turns the loop until pred holds or limit_ms pass. */
static bool t_run(tc_t *ts, int n, t_pred pred, uint64_t limit_ms)
{
    uint64_t end = t_now() + limit_ms;
    for (;;) {
        uint64_t now = t_now(), next = UINT64_MAX;
        for (int i = 0; i < n; i++) {
            if (rcc_next_timer_ms(ts[i].c) <= now)
                rcc_on_timer(ts[i].c, now);
            if (rcc_want_write(ts[i].c))
                rcc_flush(ts[i].c);
            t_sync(&ts[i]);
            uint64_t x = rcc_next_timer_ms(ts[i].c);
            if (x < next)
                next = x;
        }
        if (pred && pred(ts, n))
            return true;
        if (now >= end)
            return false;
        if (next > end)
            next = end;
        struct epoll_event evs[256];
        int k = epoll_wait(t_ep, evs, 256, next <= now ? 0 : (int)(next - now));
        for (int i = 0; i < k; i++) {
            tc_t *t = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                rcc_on_readable(t->c, t_now());
            if (evs[i].events & EPOLLOUT)
                rcc_on_writable(t->c, t_now());
        }
    }
}

static bool t_all_ready(tc_t *ts, int n)
{
    for (int i = 0; i < n; i++)
        if (rcc_state(ts[i].c) != RCC_ST_READY)
            return false;
    return true;
}

static bool t_all_chat_new(tc_t *ts, int n)
{
    for (int i = 0; i < n; i++)
        if (ts[i].chat_new < 1)
            return false;
    return true;
}

static int t_want_joins;
static bool t_all_joined(tc_t *ts, int n)
{
    for (int i = 0; i < n; i++)
        if (ts[i].joins + ts[i].join_errors < t_want_joins)
            return false;
    return true;
}

/* Clients 6, 7 and 8 are the ones whose sockets the test breaks. */
static bool t_victims_joined(tc_t *ts, int n)
{
    for (int i = 6; i <= 8; i++)
        if (ts[i].joins + ts[i].join_errors < (i == 8 ? t_want_joins : 2))
            return false;
    return true;
}

static int64_t t_want_seq;
static bool t_all_seen(tc_t *ts, int n)
{
    for (int i = 0; i < n; i++)
        for (int64_t s = 1; s <= t_want_seq; s++)
            if (!ts[i].seen[s] || !ts[i].conf[s] || rcc_state(ts[i].c) != RCC_ST_READY)
                return false;
    return true;
}

static bool t_closed(tc_t *ts, int n) { return rcc_state(ts[0].c) == RCC_ST_CLOSED; }

/* t_check_exactly_once: every client saw seqs 1..t_want_seq exactly once and
 * nothing beyond, and one confirmation each. */
static void t_check_exactly_once(tc_t *ts, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        for (int64_t s = 1; s < T_SEQ_MAX; s++) {
            int want = s <= t_want_seq;
            if (ts[i].seen[s] != want || ts[i].conf[s] != want) {
                if (bad++ < 10)
                    fprintf(stderr, "client %d seq %lld: seen %d confirmed %d, want %d\n", i, (long long)s,
                            ts[i].seen[s], ts[i].conf[s], want);
            }
        }
        CHECK_EQ_INT(ts[i].order_errors, 0);
        CHECK_EQ_INT(rcc_room_seq(ts[i].c, t_room), t_want_seq);
    }
    CHECK_EQ_INT(bad, 0);
}

/* t_send queues one message from t; records in s. */
static void t_send(tc_t *t, t_send_t *s, const char *tag, int k)
{
    s->from = t;
    snprintf(s->temp, sizeof(s->temp), "%s-%d-%d", tag, t->idx, k);
    json_t *p = json_pack("{ssssssss}", "roomId", t_room, "tempId", s->temp, "type", "text", "body", s->temp);
    CHECK_EQ_INT(rcc_emit(t->c, "message:send", p, t_on_send_ack, s), 0);
    json_decref(p);
}

static void t_check_sends(t_send_t *s, int n)
{
    int64_t last = 0;
    for (int i = 0; i < n; i++) {
        CHECK(s[i].acked && s[i].ok && s[i].temp_ok);
        /* One socket's sends get growing seqs in send order (protocol.md §8). */
        if (s[i].from == s[0].from) {
            CHECK(s[i].seq > last);
            last = s[i].seq;
        }
    }
}

static tc_t *t_clients(int n)
{
    tc_t *ts = calloc((size_t)n, sizeof(*ts));
    for (int i = 0; i < n; i++)
        ts[i].reg_fd = -1;
    return ts;
}

int main(void)
{
    uint64_t seed = check_seed("rc_client_test");
    srand((unsigned)seed);
    signal(SIGPIPE, SIG_IGN);
    t_fake_server();
    t_raw_scan();
    t_fake_raw(RCC_JSON);
    t_fake_raw(RCC_MSGPACK);
    const char *bin = getenv("RINGCAST_BIN");
    if (!bin)
        bin = "zig-out/bin/ringcast";
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "rc_client_test: %s not found, skipping the broker part (%d checks, %d failed)\n", bin,
                check__count, check__failures);
        return check__failures ? 1 : 77;
    }
    const char *ns = getenv("RCC_TEST_CLIENTS");
    int n = ns ? atoi(ns) : 200;
    if (n < 10)
        n = 10;
    char dir[] = "/tmp/rcc_test.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    int port = 0;
    pid_t broker = t_broker_start(bin, dir, &port);
    CHECK(broker > 0);
    if (broker <= 0)
        return check_done("rc_client_test");
    fprintf(stderr, "rc_client_test: broker on port %d, %d clients, sizeof(rcc_t) %zu\n", port, n, sizeof(rcc_t));
    /* Per-client memory matters to the load harness: keep the struct small. */
    CHECK(sizeof(rcc_t) <= 512);

    t_ep = epoll_create1(EPOLL_CLOEXEC);
    tc_t *ts = t_clients(n);
    json_t *members = json_array();
    for (int i = 0; i < n; i++) {
        char user[32], bind[32];
        snprintf(user, sizeof(user), "u%d", i);
        snprintf(bind, sizeof(bind), "127.0.0.%d", 1 + i % 8);
        char *tok = t_token(bin, user);
        CHECK(tok != NULL);
        if (!tok)
            goto out;
        rcc_opts_t o = {
            .host = "127.0.0.1", .port = (uint16_t)port, .token = tok,
            .encoding = i % 2 ? RCC_JSON : RCC_MSGPACK, .bind_addr = bind, .reconnect = true,
            /* 200 handshakes at once under a sanitizer take over the 10 s default */
            .backoff_min_ms = 100, .backoff_max_ms = 1000, .handshake_timeout_ms = 45000, .seed = seed + (uint64_t)i + 1,
            .cbs = { .on_ready = t_on_ready, .on_event = t_on_event, .on_disconnect = t_on_disconnect,
                     .on_raw = i % 4 < 2 ? t_on_raw : NULL }, .ud = &ts[i],
        };
        ts[i].idx = i;
        ts[i].c = rcc_new(&o);
        free(tok);
        CHECK(ts[i].c != NULL);
        if (!ts[i].c)
            goto out;
        CHECK_EQ_INT(rcc_connect(ts[i].c, t_now()), 0);
        if (i > 0)
            json_array_append_new(members, json_string(user));
    }

    /* 1. Everybody gets ready. */
    CHECK(t_run(ts, n, t_all_ready, T_WAIT_MS));
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(ts[i].readies, 1);
        CHECK_EQ_INT(ts[i].disconnects, 0);
    }
    CHECK_EQ_STR(rcc_user_id(ts[3].c), "u3");

    /* 2. A group chat of everybody; everybody joins it. Ack ids start at 1. */
    snprintf(t_chat_name, sizeof(t_chat_name), "t%llu", (unsigned long long)(seed % 100000));
    int created = 0;
    json_t *cp = json_pack("{sssOss}", "type", "group", "members", members, "name", t_chat_name);
    CHECK_EQ_INT(ts[0].c->ack_next, 1);
    CHECK_EQ_INT(rcc_emit(ts[0].c, "chat:create", cp, t_on_create_ack, &created), 0);
    CHECK_EQ_INT(ts[0].c->acks[0].id, 1);
    json_decref(cp);
    CHECK(t_run(ts, n, t_all_chat_new, T_WAIT_MS));
    CHECK_EQ_INT(created, 1);
    CHECK(t_room[0] != '\0');
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(rcc_join(ts[i].c, t_room, -1), 0);
    t_want_joins = 1;
    CHECK(t_run(ts, n, t_all_joined, T_WAIT_MS));
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(ts[i].join_errors, 0);
        CHECK_EQ_INT(rcc_room_seq(ts[i].c, t_room), 0);   /* lastSeq of an empty room */
    }

    /* 3. Interleaved sends from several clients of both encodings. */
    static t_send_t sends[T_SENDERS][T_PER_SENDER];
    for (int k = 0; k < T_PER_SENDER; k++)
        for (int s = 0; s < T_SENDERS; s++)
            t_send(&ts[s], &sends[s][k], "a", k);
    t_want_seq = T_SENDERS * T_PER_SENDER;
    CHECK(t_run(ts, n, t_all_seen, T_WAIT_MS));
    for (int s = 0; s < T_SENDERS; s++)
        t_check_sends(sends[s], T_PER_SENDER);
    t_check_exactly_once(ts, n);

    /* 4. Two clients (msgpack 6, JSON 7) lose their sockets; others send
     * meanwhile. shutdown, not close: the descriptor stays the library's. */
    tc_t *v[2] = { &ts[6], &ts[7] };
    uint32_t old_id[2];
    for (int i = 0; i < 2; i++) {
        old_id[i] = rcc_sock_id(v[i]->c);
        CHECK(shutdown(rcc_fd(v[i]->c), SHUT_RDWR) == 0);
    }
    static t_send_t more[2][10];
    for (int k = 0; k < 10; k++)
        for (int s = 0; s < 2; s++)
            t_send(&ts[s], &more[s][k], "b", k);
    t_want_seq += 20;
    t_want_joins = 1;   /* client 8 is still on its first connection */
    CHECK(t_run(ts, n, t_all_seen, T_WAIT_MS));
    CHECK(t_run(ts, n, t_victims_joined, T_WAIT_MS));
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(v[i]->disconnects, 1);
        CHECK(v[i]->last_will);
        CHECK(strcmp(v[i]->last_reason, "transport close") == 0 || strcmp(v[i]->last_reason, "transport error") == 0);
        CHECK_EQ_INT(v[i]->readies, 2);
        CHECK(rcc_sock_id(v[i]->c) != old_id[i]);
        CHECK_EQ_INT(v[i]->c->attempt, 0);   /* reset by `ready` */
    }
    for (int s = 0; s < 2; s++)
        t_check_sends(more[s], 10);
    t_check_exactly_once(ts, n);

    /* 5. Client 8's socket goes silent: its descriptor now names one end of
     * a quiet socketpair (the TCP connection closes). Only the ping watchdog
     * (pingInterval + pingTimeout after the last ping) can notice. */
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp) == 0);
    CHECK(dup2(sp[0], rcc_fd(ts[8].c)) >= 0);
    close(sp[0]);
    static t_send_t late[5];
    for (int k = 0; k < 5; k++)
        t_send(&ts[1], &late[k], "c", k);
    t_want_seq += 5;
    t_want_joins = 2;
    CHECK(t_run(ts, n, t_all_seen, T_WAIT_MS));
    CHECK(t_run(ts, n, t_victims_joined, T_WAIT_MS));
    CHECK_EQ_STR(ts[8].last_reason, "ping timeout");
    CHECK_EQ_INT(ts[8].readies, 2);
    CHECK_EQ_INT(ts[8].joins, 2);
    t_check_sends(late, 5);
    t_check_exactly_once(ts, n);
    CHECK(t_raw_offers > 0);        /* the broker's own events scanned... */
    CHECK_EQ_INT(t_raw_bad, 0);     /* ...with payloads that decode alone */
    CHECK_EQ_INT(t_raw_message, 0);
    close(sp[1]);
    CHECK_EQ_INT(t_null_acks, 0);
    for (int i = 0; i < n; i++)
        if (i != 6 && i != 7 && i != 8)
            CHECK_EQ_INT(ts[i].disconnects, 0);

    /* 6. A bad token: UNAUTHORIZED, closed for good, no reconnect. */
    {
        tc_t *bad = t_clients(1);
        rcc_opts_t o = {
            .host = "127.0.0.1", .port = (uint16_t)port, .token = "e30.e30.bad", .encoding = RCC_JSON,
            .reconnect = true, .backoff_min_ms = 50, .backoff_max_ms = 100,
            .cbs = { .on_ready = t_on_ready, .on_event = t_on_event, .on_disconnect = t_on_disconnect },
            .ud = &bad[0],
        };
        bad[0].c = rcc_new(&o);
        CHECK(bad[0].c && rcc_connect(bad[0].c, t_now()) == 0);
        CHECK(t_run(bad, 1, t_closed, T_WAIT_MS));
        CHECK_EQ_STR(bad[0].last_reason, "UNAUTHORIZED");
        CHECK(!bad[0].last_will);
        CHECK_EQ_INT(bad[0].readies, 0);
        CHECK_EQ_INT(rcc_fd(bad[0].c), -1);
        CHECK(rcc_next_timer_ms(bad[0].c) == UINT64_MAX);
        t_run(bad, 1, NULL, 300);   /* more than the backoff: still nothing */
        CHECK_EQ_INT(bad[0].disconnects, 1);
        CHECK_EQ_INT(rcc_emit(bad[0].c, "chats:list", NULL, t_on_send_ack, NULL), -ENOTCONN);
        rcc_free(bad[0].c);
        free(bad);
    }

out:
    for (int i = 0; i < n; i++) {
        if (!ts[i].c)
            continue;
        rcc_close(ts[i].c);
        CHECK_EQ_STR(ts[i].last_reason, "io client disconnect");
        rcc_free(ts[i].c);
    }
    free(ts);
    json_decref(members);
    rcc_thread_done();
    close(t_ep);
    kill(broker, SIGTERM);
    int status = 0;
    CHECK(waitpid(broker, &status, 0) == broker);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_done("rc_client_test");
}
