/* room_test.c - tests for actors/room.c (the room side of a shard), without
 * sockets and without threads (STYLE.md §7: messages in, messages and frames
 * out).
 *
 * Harness: a mailbox hub of NSH shards + writer (NSH) + reader (NSH + 1),
 * NSH fake shard_t (id, n, cfg, hub, now_ms, overflow, actor) and one
 * actor_t per shard. A request is fed with room_on_mail() on the room's
 * owning shard as if it came from `from`; then the shard's staged mail is
 * flushed and every ring leaving it is popped into `got[]`, in pop order.
 * The checks take messages out of `got[]` by (destination, kind), decode
 * the frames they carry (WebSocket header, Engine.IO '4', Socket.IO packet;
 * the MessagePack twin of every fan-out frame must decode to the same
 * value) and finally require that nothing unexpected was sent.
 *
 * Covered (protocol.md §5-§8):
 *  1. seq: successive sends get 1, 2, 3 ...; the ack, message:new and the
 *     writer's store_msg_t carry it; the fan-out leaves before the ack.
 *  2. dedup: a resent (user, tempId) is acked duplicate:true with the
 *     original seq, no new fan-out or write, and the rate token refunded;
 *     after MAIL_CONFIRM the resend also repeats message:confirmed (frame2);
 *     the same tempId from another user is a new message.
 *  3. membership: NOT_FOUND for an unknown room (ack and "error" event),
 *     UNAUTHORIZED for non-members (send/history/typing/leave/group join),
 *     channel join (W_MEMBER add, USER_SUB, room:member-joined), group leave
 *     (member-left, W_MEMBER remove, USER_SUB), direct leave (unsubscribe
 *     only); typing start/expiry/stop.
 *  4. rate: flag=false -> RATE_LIMITED (no refund, seq not consumed), after
 *     the permission check; a duplicate with flag=false is still answered.
 *  5. replyTo beyond the room's seq -> INVALID_INPUT (refund); = seq is fine.
 *  6. fan-out addressing: only shards holding members; exclude_conn is the
 *     sender's socket for message:new, 0 for confirmed/failed.
 *  7. confirm failure: message:failed (UNAVAILABLE / INTERNAL), the tempId
 *     may be resent as a new message, and failed messages vanish from reads.
 *  8. room:join with sinceSeq and history:get from the ring (ascending, the
 *     limit and 1 MiB caps give more:true), from the reader when the ring
 *     does not cover it (restart; eviction with recent_max lowered), and
 *     UNAVAILABLE when the reader fails.
 *  9. warm-up: the first send to a room loaded with last_seq > 0 is parked,
 *     one MAIL_RD_MSGS (REQ_WARM) goes to the reader, and the answer turns a
 *     parked resend into a duplicate; a failed warm-up lets sends through.
 * 10. chat:create: W_CHAT, then CHAT_STORED -> chat:new per member shard and
 *     the ack; and a chat whose store write fails is removed without
 *     leaving a dangling pointer (KNOWN BUG: this check fails today, see
 *     test_create_fail).
 *
 * Build: part of `scripts/zig build` (zig-out/test-bin/room_test) and of
 * `scripts/asan-build` (build-asan/test-bin/room_test).
 */
#include "actors/room.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/actor_types.h"
#include "actors/evt.h"
#include "actors/mbox.h"
#include "src/cfg.h"
#include "src/err.h"
#include "src/shard.h"
#include "tests/support/check.h"
#include "wire/sio.h"
#include "wire/ws.h"

#define NSH 2
#define WRITER NSH
#define READER (NSH + 1)
#define DEDUP_MAX 1000

static mbox_hub_t *hub;
static cfg_t cfg;
static shard_t sh[NSH];
static actor_t act[NSH];

/* ---- mail capture -------------------------------------------------------- */

typedef struct {
    int from, to;
    mbox_msg_t m;
} got_t;

#define GOT_MAX 1024
static got_t got[GOT_MAX];
static size_t ngot;

static int owner(const char *id) { return actor_owner(&sh[0], id); }

/* Publish what shard `from` staged and pop every ring leaving it. */
static void drain(int from)
{
    mbox_flush(hub, from);
    for (int to = 0; to < NSH + 2; to++) {
        CHECK_EQ_INT(sh[from].overflow[to].len, 0);
        mbox_msg_t m;
        while (mbox_pop(hub, from, to, &m, 1) == 1) {
            if (ngot == GOT_MAX) {
                fprintf(stderr, "room_test: capture full\n");
                abort();
            }
            got[ngot++] = (got_t){ .from = from, .to = to, .m = m };
        }
    }
}

/* Deliver mail to the room side of `room`'s owner as if sent by `from`. */
static void deliver(const char *room, int from, uint32_t kind, void *ptr)
{
    int o = owner(room);
    mbox_msg_t m = { .kind = kind, .ptr = ptr };
    CHECK(room_on_mail(&act[o], from, &m));
    drain(o);
}

static int idx(int to, uint32_t kind)
{
    for (size_t i = 0; i < ngot; i++)
        if (got[i].to == to && got[i].m.kind == kind)
            return (int)i;
    return -1;
}

static int count(int to, uint32_t kind)
{
    int n = 0;
    for (size_t i = 0; i < ngot; i++)
        if (got[i].to == to && got[i].m.kind == kind)
            n++;
    return n;
}

/* Remove and return the first captured message of `kind` to `to`. */
static void *take(int to, uint32_t kind)
{
    int i = idx(to, kind);
    if (i < 0)
        return NULL;
    void *p = got[i].m.ptr;
    memmove(&got[i], &got[i + 1], (ngot - (size_t)i - 1) * sizeof(got[0]));
    ngot--;
    return p;
}

static void free_mail(mbox_msg_t *m)
{
    switch (m->kind) {
    case MAIL_FANOUT:
    case MAIL_CHAT_NEW: fanout_free(m->ptr); break;
    case MAIL_W_MSG: store_msg_unref(m->ptr); break;
    default: req_free(m->ptr); break;
    }
}

/* Nothing else was sent: report and free whatever is left. */
#define EXPECT_NONE() expect_none(__LINE__)
static void expect_none(int line)
{
    CHECK_EQ_INT(ngot, 0);
    for (size_t i = 0; i < ngot; i++) {
        fprintf(stderr, "  line %d: unexpected mail kind %" PRIu32 " from %d to %d\n", line, got[i].m.kind,
                got[i].from, got[i].to);
        free_mail(&got[i].m);
    }
    ngot = 0;
}

/* ---- JSON values kept until the end of a scenario ------------------------ */

static json_t *kept[4096];
static size_t nkept;

static json_t *keep(json_t *v)
{
    if (v) {
        if (nkept == sizeof(kept) / sizeof(kept[0]))
            abort();
        kept[nkept++] = v;
    }
    return v;
}

static void gc(void)
{
    for (size_t i = 0; i < nkept; i++)
        json_decref(kept[i]);
    nkept = 0;
}

static long long jint(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -999999;
}

static const char *jstr(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "(missing)";
}

/* 1 true, 0 false, -1 missing or not a boolean */
static int jbool(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : -1;
}

static const char *err_code(const json_t *p)
{
    return jstr(json_object_get(p, "error"), "code");
}

/* ---- frames --------------------------------------------------------------- */

/* Decode one frame: WebSocket header per ws_header's rules (2, 4 or 10
 * bytes), then the Engine.IO/Socket.IO packet. Returns the packet's data
 * (kept), or NULL. */
static json_t *frame_decode(const buf_blob_t *b, sio_enc_t enc, int *type, int64_t *id)
{
    CHECK(b != NULL);
    if (!b || b->len < 2)
        return NULL;
    int op = b->data[0] & 0x0f;
    CHECK(b->data[0] & 0x80);   /* FIN */
    CHECK_EQ_INT(op, enc == SIO_ENC_MSGPACK ? WS_OP_BINARY : WS_OP_TEXT);
    CHECK((b->data[1] & 0x80) == 0);   /* server frames are unmasked */
    uint64_t len = b->data[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
        len = ((uint64_t)b->data[2] << 8) | b->data[3];
        hl = 4;
        CHECK(len >= 126);
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | b->data[2 + i];
        hl = 10;
        CHECK(len > 0xffff);
    }
    CHECK_EQ_INT(hl + len, b->len);
    if (hl + len != b->len)
        return NULL;
    sio_packet_t pkt = { 0 };
    int rc;
    if (enc == SIO_ENC_JSON) {
        CHECK_EQ_INT(b->data[hl], '4');
        rc = sio_decode_json(b->data + hl + 1, len - 1, &pkt);
    } else {
        rc = sio_decode_msgpack(b->data + hl, len, &pkt);
    }
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        return NULL;
    CHECK_EQ_STR(pkt.nsp, "/");
    *type = pkt.type;
    *id = pkt.id;
    json_t *d = pkt.data;
    pkt.data = NULL;
    sio_packet_clear(&pkt);
    return keep(d);
}

/* The payload of an ACK frame with the given id (JSON encoding). */
static json_t *ack_payload(const buf_blob_t *b, int64_t ack_id)
{
    int type = -1;
    int64_t id = -2;
    json_t *d = frame_decode(b, SIO_ENC_JSON, &type, &id);
    CHECK_EQ_INT(type, SIO_ACK);
    CHECK_EQ_INT(id, ack_id);
    CHECK(json_is_array(d) && json_array_size(d) == 1);
    return d ? json_array_get(d, 0) : NULL;
}

/* The payload of an EVENT frame named `name` in encoding enc. */
static json_t *event_payload(const buf_blob_t *b, sio_enc_t enc, const char *name)
{
    int type = -1;
    int64_t id = -2;
    json_t *d = frame_decode(b, enc, &type, &id);
    CHECK_EQ_INT(type, SIO_EVENT);
    CHECK_EQ_INT(id, -1);
    CHECK(json_is_array(d) && json_array_size(d) == 2);
    if (!d)
        return NULL;
    CHECK_EQ_STR(json_string_value(json_array_get(d, 0)), name);
    return json_array_get(d, 1);
}

/* A fan-out: both frames carry the same event; returns the payload. */
static json_t *fanout_payload(const fanout_t *f, const char *name)
{
    CHECK(f != NULL);
    if (!f)
        return NULL;
    /* the JSON frame's text starts with 42[ */
    size_t hl = (f->frames[0]->data[1] & 0x7f) == 126 ? 4 : (f->frames[0]->data[1] & 0x7f) == 127 ? 10 : 2;
    CHECK(memcmp(f->frames[0]->data + hl, "42[", 3) == 0);
    json_t *pj = event_payload(f->frames[0], SIO_ENC_JSON, name);
    json_t *pm = event_payload(f->frames[1], SIO_ENC_MSGPACK, name);
    CHECK(pj && pm && json_equal(pj, pm));
    return pj;
}

/* ---- actors ---------------------------------------------------------------- */

typedef struct {
    char id[32];
    int sh;
    connh_t c;
} usr_t;

static usr_t A, A2, B, C, D;   /* A, A2, D on shard 0; B, C on shard 1 */

static void pick_id(char *out, size_t n, const char *prefix, int want)
{
    for (int i = 0;; i++) {
        snprintf(out, n, "%s%d", prefix, i);
        if (owner(out) == want)
            return;
    }
}

static void mk_user(usr_t *u, const char *prefix, int shard, uint32_t slot)
{
    pick_id(u->id, sizeof(u->id), prefix, shard);
    u->sh = shard;
    u->c = ((uint64_t)(uint32_t)shard << 48) | ((uint64_t)7 << 32) | slot;
}

static void load_room(const char *id, int type, int64_t last_seq, const usr_t *const *members, size_t n)
{
    store_chat_t *c = calloc(1, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->type = type;
    c->name = strdup("room name");
    c->members = calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        c->members[i] = strdup(members[i]->id);
    c->n_members = n;
    c->created_at = 1700000000000;
    c->last_seq = last_seq;
    CHECK_EQ_INT(room_load(&act[owner(id)], c), 0);
}

static int64_t ack_counter = 100;

static req_t *mkreq(const usr_t *u, const char *room)
{
    req_t *q = req_new();
    q->connh = u->c;
    q->ack_id = ack_counter++;
    q->enc = SIO_ENC_JSON;
    q->role = 0;
    snprintf(q->user_id, sizeof(q->user_id), "%s", u->id);
    snprintf(q->room_id, sizeof(q->room_id), "%s", room);
    return q;
}

/* message:send; returns the ack id used. */
static int64_t send_body(const usr_t *u, const char *room, const char *temp, bool flag, int64_t reply_to,
                         const char *body, size_t blen)
{
    req_t *q = mkreq(u, room);
    snprintf(q->temp_id, sizeof(q->temp_id), "%s", temp);
    q->user_name = strdup(u->id);
    q->body = malloc(blen + 1);
    memcpy(q->body, body, blen);
    q->body[blen] = 0;
    q->body_len = blen;
    q->type = STORE_MSG_TEXT;
    q->b = reply_to;
    q->flag = flag;
    int64_t ack = q->ack_id;
    deliver(room, u->sh, MAIL_SEND, q);
    return ack;
}

static int64_t send_msg(const usr_t *u, const char *room, const char *temp, bool flag)
{
    char body[64];
    snprintf(body, sizeof(body), "body of %s", temp);
    return send_body(u, room, temp, flag, 0, body, strlen(body));
}

/* Take the SEND_DONE for u (ack id `ack`) and return its ack payload;
 * *refund and *frame2 (may be NULL) report the rest. */
static json_t *send_done(const usr_t *u, int64_t ack, bool *refund, json_t **confirmed)
{
    req_t *q = take(u->sh, MAIL_SEND_DONE);
    CHECK(q != NULL);
    if (!q)
        return NULL;
    CHECK_EQ_INT(q->connh, u->c);
    CHECK_EQ_INT(q->ack_id, ack);
    json_t *p = ack_payload(q->frame, ack);
    if (refund)
        *refund = q->refund;
    if (confirmed)
        *confirmed = q->frame2 ? event_payload(q->frame2, SIO_ENC_JSON, "message:confirmed") : NULL;
    else
        CHECK(q->frame2 == NULL);
    req_free(q);
    return p;
}

/* Take a MAIL_REPLY for u; returns the ack payload. */
static json_t *reply(const usr_t *u, int64_t ack, bool *subscribe, bool *unsubscribe)
{
    req_t *q = take(u->sh, MAIL_REPLY);
    CHECK(q != NULL);
    if (!q)
        return NULL;
    CHECK_EQ_INT(q->connh, u->c);
    json_t *p = ack_payload(q->frame, ack);
    CHECK(q->frame2 == NULL);
    if (subscribe)
        *subscribe = q->subscribe;
    if (unsubscribe)
        *unsubscribe = q->unsubscribe;
    req_free(q);
    return p;
}

/* Expect a successful new message: ack seq, message:new to exactly the
 * shards in `shards` (bitmask) excluding the sender's socket, the fan-out
 * before the ack on the sender's ring, and one W_MSG (returned, one
 * reference, for a later MAIL_CONFIRM). */
static store_msg_t *expect_new(const usr_t *u, const char *room, const char *temp, int64_t ack, int64_t seq,
                               unsigned shards)
{
    CHECK(idx(u->sh, MAIL_SEND_DONE) >= 0);
    if (shards & (1u << u->sh))
        CHECK(idx(u->sh, MAIL_FANOUT) >= 0 && idx(u->sh, MAIL_FANOUT) < idx(u->sh, MAIL_SEND_DONE));
    bool refund = true;
    json_t *p = send_done(u, ack, &refund, NULL);
    CHECK(!refund);
    CHECK_EQ_INT(jbool(p, "ok"), 1);
    CHECK_EQ_STR(jstr(p, "tempId"), temp);
    CHECK_EQ_INT(jint(p, "seq"), seq);
    CHECK(json_object_get(p, "duplicate") == NULL);
    for (int s = 0; s < NSH; s++) {
        if (!(shards & (1u << s))) {
            CHECK_EQ_INT(count(s, MAIL_FANOUT), 0);
            continue;
        }
        CHECK_EQ_INT(count(s, MAIL_FANOUT), 1);
        fanout_t *f = take(s, MAIL_FANOUT);
        if (!f)
            continue;
        CHECK_EQ_STR(f->room_id, room);
        CHECK_EQ_INT(f->exclude_conn, u->c);
        CHECK_EQ_STR(f->exclude_user, "");
        CHECK((f->frames[0]->flags & BUF_BLOB_DROPPABLE) == 0);
        json_t *m = fanout_payload(f, "message:new");
        CHECK_EQ_STR(jstr(m, "roomId"), room);
        CHECK_EQ_INT(jint(m, "seq"), seq);
        CHECK_EQ_STR(jstr(m, "tempId"), temp);
        CHECK_EQ_STR(jstr(m, "senderId"), u->id);
        CHECK_EQ_STR(jstr(m, "status"), "pending");
        CHECK(json_object_get(m, "id") == NULL);
        fanout_free(f);
    }
    store_msg_t *w = take(WRITER, MAIL_W_MSG);
    CHECK(w != NULL);
    if (w) {
        CHECK_EQ_INT(w->seq, seq);
        CHECK_EQ_STR(w->room_id, room);
        CHECK_EQ_STR(w->sender_id, u->id);
        CHECK_EQ_STR(w->temp_id, temp);
    }
    return w;
}

/* Expect a duplicate ack with the original seq; returns the confirmed
 * repeat payload (or NULL). */
static json_t *expect_dup(const usr_t *u, int64_t ack, const char *temp, int64_t seq, bool want_refund)
{
    bool refund = !want_refund;
    json_t *conf = NULL;
    json_t *p = send_done(u, ack, &refund, &conf);
    CHECK_EQ_INT(refund, want_refund);
    CHECK_EQ_INT(jbool(p, "ok"), 1);
    CHECK_EQ_INT(jbool(p, "duplicate"), 1);
    CHECK_EQ_INT(jint(p, "seq"), seq);
    CHECK_EQ_STR(jstr(p, "tempId"), temp);
    return conf;
}

static void expect_send_fail(const usr_t *u, int64_t ack, const char *code, bool want_refund)
{
    bool refund = !want_refund;
    json_t *p = send_done(u, ack, &refund, NULL);
    CHECK_EQ_INT(jbool(p, "ok"), 0);
    CHECK_EQ_STR(err_code(p), code);
    CHECK(json_is_string(json_object_get(json_object_get(p, "error"), "message")));
    CHECK_EQ_INT(refund, want_refund);
}

static void expect_reply_fail(const usr_t *u, int64_t ack, const char *code)
{
    json_t *p = reply(u, ack, NULL, NULL);
    CHECK_EQ_INT(jbool(p, "ok"), 0);
    CHECK_EQ_STR(err_code(p), code);
}

static confirm_t *mk_confirm(store_msg_t *m, int status, const char *id)
{
    confirm_t *c = calloc(1, sizeof(*c) + sizeof(confirm_item_t));
    c->n = 1;
    c->items[0].msg = m;
    c->items[0].status = status;
    snprintf(c->items[0].id, sizeof(c->items[0].id), "%s", id);
    c->items[0].seq = m->seq;
    c->items[0].same_room = true;   /* an ERR_DUP here is this very message, stored earlier */
    return c;
}

/* MAIL_CONFIRM of one message (takes the reference). */
static void confirm(store_msg_t *m, int status, const char *id)
{
    char room[STORE_ID_MAX + 1];
    snprintf(room, sizeof(room), "%s", m->room_id);
    deliver(room, WRITER, MAIL_CONFIRM, mk_confirm(m, status, id));
}

/* Expect one fan-out of `name` to each shard in the mask (and none
 * elsewhere); returns the payload seen by the last one. */
static json_t *expect_fanout(const char *room, const char *name, unsigned shards, connh_t exclude_conn,
                             const char *exclude_user)
{
    json_t *last = NULL;
    for (int s = 0; s < NSH; s++) {
        if (!(shards & (1u << s))) {
            CHECK_EQ_INT(count(s, MAIL_FANOUT), 0);
            continue;
        }
        CHECK_EQ_INT(count(s, MAIL_FANOUT), 1);
        fanout_t *f = take(s, MAIL_FANOUT);
        if (!f)
            continue;
        CHECK_EQ_STR(f->room_id, room);
        CHECK_EQ_INT(f->exclude_conn, exclude_conn);
        CHECK_EQ_STR(f->exclude_user, exclude_user);
        json_t *p = fanout_payload(f, name);
        if (last)
            CHECK(json_equal(last, p));
        last = p;
        fanout_free(f);
    }
    return last;
}

static store_msg_t *stored_msg(const char *room, const usr_t *u, const char *temp, int64_t seq, const char *id)
{
    char body[32];
    snprintf(body, sizeof(body), "stored %" PRId64, seq);
    store_msg_t *m = store_msg_new(room, u->id, u->id, temp, STORE_MSG_TEXT, body, strlen(body), seq, 0,
                                   1700000000000 + seq);
    snprintf(m->id, sizeof(m->id), "%s", id);
    return m;
}

static void oid(char *out, int64_t seq)
{
    snprintf(out, STORE_OID_LEN + 1, "65aa00000000000000%06u", (unsigned)(seq % 1000000));
}

/* The seqs of a message array, as "1,2,3". */
static const char *seqs(const json_t *arr)
{
    static char s[4096];
    size_t n = 0;
    s[0] = 0;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        n += (size_t)snprintf(s + n, sizeof(s) - n, "%s%lld", i ? "," : "", jint(v, "seq"));
    return s;
}

/* ---- scenarios ---------------------------------------------------------- */

static char G1[64], G0[64], CH[64], DM[64], J1[64], J2[64], RS[64], EV[64], W1[64], W2[64];

/* 1, 2, 4, 5, 7 in one group with members on both shards. */
static void test_send_seq_dedup_rate(void)
{
    const usr_t *mem[] = { &A, &B };
    load_room(G1, STORE_CHAT_GROUP, 0, mem, 2);
    store_msg_t *w[16] = { 0 };

    /* (1) seq 1, 2, 3 */
    for (int i = 1; i <= 3; i++) {
        char t[16];
        snprintf(t, sizeof(t), "t%d", i);
        int64_t ack = send_msg(&A, G1, t, true);
        w[i] = expect_new(&A, G1, t, ack, i, 3);
        EXPECT_NONE();
    }

    /* (2) dedup before the confirmation: no fan-out, no write, refund */
    int64_t ack = send_msg(&A, G1, "t2", true);
    CHECK(expect_dup(&A, ack, "t2", 2, true) == NULL);
    EXPECT_NONE();

    /* the writer confirms seq 2: message:confirmed to every member shard,
     * the sender's socket included (exclude_conn 0) */
    char id2[STORE_OID_LEN + 1];
    oid(id2, 2);
    confirm(w[2], 0, id2);
    w[2] = NULL;
    json_t *c = expect_fanout(G1, "message:confirmed", 3, 0, "");
    CHECK_EQ_STR(jstr(c, "roomId"), G1);
    CHECK_EQ_INT(jint(c, "seq"), 2);
    CHECK_EQ_STR(jstr(c, "tempId"), "t2");
    CHECK_EQ_STR(jstr(c, "id"), id2);
    EXPECT_NONE();

    /* a resend now also repeats message:confirmed to that socket */
    ack = send_msg(&A, G1, "t2", true);
    json_t *rep = expect_dup(&A, ack, "t2", 2, true);
    CHECK(rep != NULL);
    CHECK_EQ_STR(jstr(rep, "roomId"), G1);
    CHECK_EQ_INT(jint(rep, "seq"), 2);
    CHECK_EQ_STR(jstr(rep, "tempId"), "t2");
    CHECK_EQ_STR(jstr(rep, "id"), id2);
    EXPECT_NONE();

    /* the same tempId from another sender is a different message */
    ack = send_msg(&B, G1, "t2", true);
    w[4] = expect_new(&B, G1, "t2", ack, 4, 3);
    EXPECT_NONE();

    /* (4) rate: no token -> RATE_LIMITED, nothing refunded, seq unused */
    ack = send_msg(&A, G1, "t-rl", false);
    expect_send_fail(&A, ack, "RATE_LIMITED", false);
    EXPECT_NONE();
    /* a duplicate without a token is still a duplicate (and no refund) */
    ack = send_msg(&A, G1, "t1", false);
    CHECK(expect_dup(&A, ack, "t1", 1, false) == NULL);
    EXPECT_NONE();
    /* the rate-limited tempId goes through once a token is there */
    ack = send_msg(&A, G1, "t-rl", true);
    w[5] = expect_new(&A, G1, "t-rl", ack, 5, 3);
    EXPECT_NONE();

    /* (5) replyTo */
    ack = send_body(&A, G1, "t-reply-bad", true, 6, "x", 1);
    expect_send_fail(&A, ack, "INVALID_INPUT", true);
    EXPECT_NONE();
    ack = send_body(&A, G1, "t-reply-ok", true, 5, "x", 1);
    CHECK(idx(0, MAIL_FANOUT) >= 0);
    if (idx(0, MAIL_FANOUT) >= 0) {
        json_t *m = fanout_payload(got[idx(0, MAIL_FANOUT)].m.ptr, "message:new");
        CHECK_EQ_INT(jint(m, "replyTo"), 5);
    }
    w[6] = expect_new(&A, G1, "t-reply-ok", ack, 6, 3);
    CHECK(w[6] && w[6]->reply_to == 5);
    EXPECT_NONE();

    /* (7) confirm failure: ERR_STORE (deadline) -> message:failed UNAVAILABLE */
    ack = send_msg(&A, G1, "t-fail", true);
    w[7] = expect_new(&A, G1, "t-fail", ack, 7, 3);
    EXPECT_NONE();
    confirm(w[7], ERR_STORE, "");
    w[7] = NULL;
    json_t *f = expect_fanout(G1, "message:failed", 3, 0, "");
    CHECK_EQ_STR(jstr(f, "roomId"), G1);
    CHECK_EQ_INT(jint(f, "seq"), 7);
    CHECK_EQ_STR(jstr(f, "tempId"), "t-fail");
    CHECK_EQ_STR(err_code(f), "UNAVAILABLE");
    EXPECT_NONE();
    /* the failed tempId may be sent again, as a new message */
    ack = send_msg(&A, G1, "t-fail", true);
    w[8] = expect_new(&A, G1, "t-fail", ack, 8, 3);
    EXPECT_NONE();
    /* a permanent refusal -> INTERNAL */
    confirm(w[8], ERR_STORE_FATAL, "");
    w[8] = NULL;
    f = expect_fanout(G1, "message:failed", 3, 0, "");
    CHECK_EQ_INT(jint(f, "seq"), 8);
    CHECK_EQ_STR(err_code(f), "INTERNAL");
    EXPECT_NONE();
    /* ERR_DUP from the store counts as stored */
    char id4[STORE_OID_LEN + 1];
    oid(id4, 4);
    confirm(w[4], ERR_DUP, id4);
    w[4] = NULL;
    c = expect_fanout(G1, "message:confirmed", 3, 0, "");
    CHECK_EQ_INT(jint(c, "seq"), 4);
    CHECK_EQ_STR(jstr(c, "id"), id4);
    EXPECT_NONE();
    /* a second confirmation of a message no longer pending is ignored */
    store_msg_t *again = store_msg_ref(w[5]);
    confirm(w[5], 0, "65aa00000000000000000005");
    w[5] = NULL;
    expect_fanout(G1, "message:confirmed", 3, 0, "");
    confirm(again, ERR_STORE, "");
    EXPECT_NONE();
    /* ERR_DUP for another message (the tempId was used before, elsewhere or
     * at another seq): refused, never reported as stored */
    confirm_t *dc = mk_confirm(w[6], ERR_DUP, "65aa00000000000000000099");
    dc->items[0].seq = 1;
    dc->items[0].same_room = false;
    deliver(G1, WRITER, MAIL_CONFIRM, dc);
    w[6] = NULL;
    f = expect_fanout(G1, "message:failed", 3, 0, "");
    CHECK_EQ_INT(jint(f, "seq"), 6);
    CHECK_EQ_STR(err_code(f), "INVALID_INPUT");
    EXPECT_NONE();

    /* failed messages are withdrawn from reads: history shows 1..5 */
    req_t *q = mkreq(&B, G1);
    q->a = 0;
    q->b = 50;
    int64_t hist_ack = q->ack_id;
    deliver(G1, B.sh, MAIL_HISTORY, q);
    json_t *h = reply(&B, hist_ack, NULL, NULL);
    CHECK_EQ_INT(jbool(h, "ok"), 1);
    CHECK_EQ_STR(seqs(json_object_get(h, "messages")), "1,2,3,4,5");
    CHECK_EQ_INT(jbool(h, "more"), 0);
    json_t *m2 = json_array_get(json_object_get(h, "messages"), 1);
    CHECK_EQ_STR(jstr(m2, "status"), "confirmed");
    CHECK_EQ_STR(jstr(m2, "id"), id2);
    EXPECT_NONE();

    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
        if (w[i])
            store_msg_unref(w[i]);
    gc();
}

/* 3: existence and permission, join/leave, typing. */
static void test_membership(void)
{
    /* unknown room */
    int64_t ack = send_msg(&A, "no-such-room", "t1", true);
    expect_send_fail(&A, ack, "NOT_FOUND", true);
    EXPECT_NONE();
    static const uint32_t kinds[] = { MAIL_JOIN, MAIL_HISTORY, MAIL_LEAVE, MAIL_TYPING };
    for (size_t i = 0; i < 4; i++) {
        req_t *q = mkreq(&B, "no-such-room");
        q->a = -1;
        q->b = 50;
        q->flag = true;
        ack = q->ack_id;
        deliver("no-such-room", B.sh, kinds[i], q);
        expect_reply_fail(&B, ack, "NOT_FOUND");
        EXPECT_NONE();
    }
    /* without an ack id the failure goes as the event "error" */
    req_t *q = mkreq(&B, "no-such-room");
    q->ack_id = -1;
    q->flag = true;
    deliver("no-such-room", B.sh, MAIL_TYPING, q);
    q = take(B.sh, MAIL_REPLY);
    CHECK(q != NULL);
    if (q) {
        json_t *e = event_payload(q->frame, SIO_ENC_JSON, "error");
        CHECK_EQ_STR(jstr(e, "code"), "NOT_FOUND");
        req_free(q);
    }
    EXPECT_NONE();

    /* non-member C of the group G1 */
    ack = send_msg(&C, G1, "c1", true);
    expect_send_fail(&C, ack, "UNAUTHORIZED", true);
    EXPECT_NONE();
    ack = send_msg(&C, G1, "c1", false);   /* permission comes before rate */
    expect_send_fail(&C, ack, "UNAUTHORIZED", false);
    EXPECT_NONE();
    static const uint32_t kinds2[] = { MAIL_HISTORY, MAIL_TYPING, MAIL_JOIN, MAIL_LEAVE };
    for (size_t i = 0; i < 4; i++) {
        q = mkreq(&C, G1);
        q->a = -1;
        q->b = 50;
        q->flag = true;
        ack = q->ack_id;
        deliver(G1, C.sh, kinds2[i], q);
        /* group join by a non-member: no W_MEMBER, no USER_SUB, no fan-out */
        expect_reply_fail(&C, ack, "UNAUTHORIZED");
        EXPECT_NONE();
    }

    /* typing: start fans out (droppable, not to the typist), expires after 5 s */
    sh[owner(G1)].now_ms = 1000;
    q = mkreq(&A, G1);
    q->flag = true;
    ack = q->ack_id;
    deliver(G1, A.sh, MAIL_TYPING, q);
    for (int s = 0; s < NSH; s++) {
        int i = idx(s, MAIL_FANOUT);
        CHECK(i >= 0);
        if (i < 0)
            continue;
        fanout_t *f = got[i].m.ptr;
        CHECK((f->frames[0]->flags & BUF_BLOB_DROPPABLE) && (f->frames[1]->flags & BUF_BLOB_DROPPABLE));
    }
    json_t *t = expect_fanout(G1, "typing", 3, 0, A.id);
    CHECK_EQ_STR(jstr(t, "userId"), A.id);
    CHECK_EQ_INT(jbool(t, "isTyping"), 1);
    CHECK_EQ_INT(jbool(reply(&A, ack, NULL, NULL), "ok"), 1);
    EXPECT_NONE();
    sh[owner(G1)].now_ms = 5999;
    room_tick(&act[owner(G1)]);
    drain(owner(G1));
    EXPECT_NONE();
    sh[owner(G1)].now_ms = 6000;
    room_tick(&act[owner(G1)]);
    drain(owner(G1));
    t = expect_fanout(G1, "typing", 3, 0, A.id);
    CHECK_EQ_INT(jbool(t, "isTyping"), 0);
    EXPECT_NONE();
    /* stop while not typing: just ok */
    q = mkreq(&A, G1);
    q->flag = false;
    ack = q->ack_id;
    deliver(G1, A.sh, MAIL_TYPING, q);
    CHECK_EQ_INT(jbool(reply(&A, ack, NULL, NULL), "ok"), 1);
    EXPECT_NONE();

    /* (6) a room whose members all live on shard 0 */
    const usr_t *m0[] = { &A, &A2 };
    load_room(G0, STORE_CHAT_GROUP, 0, m0, 2);
    ack = send_msg(&A, G0, "g0-1", true);
    store_msg_t *w = expect_new(&A, G0, "g0-1", ack, 1, 1u << 0);
    store_msg_unref(w);
    EXPECT_NONE();

    /* channel: a non-member's join makes them a member */
    load_room(CH, STORE_CHAT_CHANNEL, 0, m0, 2);
    ack = send_msg(&A, CH, "ch-1", true);
    store_msg_unref(expect_new(&A, CH, "ch-1", ack, 1, 1u << 0));
    EXPECT_NONE();
    q = mkreq(&B, CH);
    q->a = -1;
    ack = q->ack_id;
    deliver(CH, B.sh, MAIL_JOIN, q);
    req_t *wm = take(WRITER, MAIL_W_MEMBER);
    CHECK(wm != NULL);
    if (wm) {
        CHECK_EQ_STR(wm->user_id, B.id);
        CHECK_EQ_STR(wm->room_id, CH);
        CHECK(wm->flag);   /* add */
        req_free(wm);
    }
    CHECK(idx(B.sh, MAIL_USER_SUB) >= 0 && idx(B.sh, MAIL_USER_SUB) < idx(B.sh, MAIL_REPLY));
    req_t *us = take(B.sh, MAIL_USER_SUB);
    CHECK(us != NULL);
    if (us) {
        CHECK_EQ_STR(us->user_id, B.id);
        CHECK_EQ_STR(us->room_id, CH);
        CHECK(us->subscribe);
        req_free(us);
    }
    json_t *j = expect_fanout(CH, "room:member-joined", 3, 0, B.id);
    CHECK_EQ_STR(jstr(j, "roomId"), CH);
    CHECK_EQ_STR(jstr(j, "userId"), B.id);
    bool sub = false, unsub = true;
    json_t *r = reply(&B, ack, &sub, &unsub);
    CHECK(sub && !unsub);
    CHECK_EQ_INT(jbool(r, "ok"), 1);
    CHECK_EQ_STR(jstr(r, "roomId"), CH);
    CHECK_EQ_INT(jint(r, "members"), 3);
    CHECK_EQ_INT(jint(r, "lastSeq"), 1);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "missed")), 0);
    CHECK_EQ_INT(jbool(r, "more"), 0);
    json_t *online = json_object_get(r, "online");
    CHECK(json_is_array(online) && json_array_size(online) == 1 &&
          strcmp(json_string_value(json_array_get(online, 0)), B.id) == 0);
    EXPECT_NONE();
    /* a member's join again: no member-joined, no store write */
    q = mkreq(&B, CH);
    q->a = -1;
    ack = q->ack_id;
    deliver(CH, B.sh, MAIL_JOIN, q);
    CHECK_EQ_INT(jint(reply(&B, ack, NULL, NULL), "members"), 3);
    EXPECT_NONE();
    /* now shard 1 holds a member: a send reaches both shards */
    ack = send_msg(&A, CH, "ch-2", true);
    store_msg_unref(expect_new(&A, CH, "ch-2", ack, 2, 3));
    EXPECT_NONE();
    /* B can send now */
    ack = send_msg(&B, CH, "ch-b", true);
    store_msg_unref(expect_new(&B, CH, "ch-b", ack, 3, 3));
    EXPECT_NONE();

    /* leaving the channel: member-left to the other members (shard 0 only,
     * B was shard 1's only member), W_MEMBER remove, USER_SUB unsubscribe */
    q = mkreq(&B, CH);
    ack = q->ack_id;
    deliver(CH, B.sh, MAIL_LEAVE, q);
    wm = take(WRITER, MAIL_W_MEMBER);
    CHECK(wm && !wm->flag && strcmp(wm->user_id, B.id) == 0 && strcmp(wm->room_id, CH) == 0);
    req_free(wm);
    us = take(B.sh, MAIL_USER_SUB);
    CHECK(us && !us->subscribe && strcmp(us->user_id, B.id) == 0);
    req_free(us);
    j = expect_fanout(CH, "room:member-left", 1u << 0, 0, B.id);
    CHECK_EQ_STR(jstr(j, "userId"), B.id);
    CHECK_EQ_INT(jbool(reply(&B, ack, NULL, NULL), "ok"), 1);
    EXPECT_NONE();
    ack = send_msg(&A, CH, "ch-3", true);
    store_msg_unref(expect_new(&A, CH, "ch-3", ack, 4, 1u << 0));
    EXPECT_NONE();

    /* leaving a group: member-left, W_MEMBER remove, then B is no member */
    q = mkreq(&B, G1);
    ack = q->ack_id;
    deliver(G1, B.sh, MAIL_LEAVE, q);
    wm = take(WRITER, MAIL_W_MEMBER);
    CHECK(wm && !wm->flag && strcmp(wm->user_id, B.id) == 0 && strcmp(wm->room_id, G1) == 0);
    req_free(wm);
    us = take(B.sh, MAIL_USER_SUB);
    CHECK(us && !us->subscribe);
    req_free(us);
    j = expect_fanout(G1, "room:member-left", 1u << 0, 0, B.id);
    CHECK_EQ_STR(jstr(j, "roomId"), G1);
    CHECK_EQ_STR(jstr(j, "userId"), B.id);
    sub = true;
    unsub = true;
    r = reply(&B, ack, &sub, &unsub);
    CHECK_EQ_INT(jbool(r, "ok"), 1);
    CHECK(!sub);
    EXPECT_NONE();
    ack = send_msg(&B, G1, "after-leave", true);
    expect_send_fail(&B, ack, "UNAUTHORIZED", true);
    EXPECT_NONE();
    q = mkreq(&B, G1);   /* and cannot join the group back */
    q->a = -1;
    ack = q->ack_id;
    deliver(G1, B.sh, MAIL_JOIN, q);
    expect_reply_fail(&B, ack, "UNAUTHORIZED");
    EXPECT_NONE();

    /* leaving a direct chat: only this socket, no member-left */
    const usr_t *dm[] = { &D, &B };
    load_room(DM, STORE_CHAT_DIRECT, 0, dm, 2);
    q = mkreq(&B, DM);
    ack = q->ack_id;
    deliver(DM, B.sh, MAIL_LEAVE, q);
    sub = true;
    unsub = false;
    r = reply(&B, ack, &sub, &unsub);
    CHECK_EQ_INT(jbool(r, "ok"), 1);
    CHECK(unsub && !sub);
    EXPECT_NONE();   /* no FANOUT, W_MEMBER or USER_SUB */
    ack = send_msg(&B, DM, "dm-1", true);   /* still a member */
    store_msg_unref(expect_new(&B, DM, "dm-1", ack, 1, 3));
    EXPECT_NONE();
    gc();
}

/* 8: room:join with sinceSeq and history:get. */
static int64_t join(const usr_t *u, const char *room, int64_t since)
{
    req_t *q = mkreq(u, room);
    q->a = since;
    int64_t ack = q->ack_id;
    deliver(room, u->sh, MAIL_JOIN, q);
    return ack;
}

static int64_t history(const usr_t *u, const char *room, int64_t before, int64_t limit)
{
    req_t *q = mkreq(u, room);
    q->a = before;
    q->b = limit;
    int64_t ack = q->ack_id;
    deliver(room, u->sh, MAIL_HISTORY, q);
    return ack;
}

static void test_join_since(void)
{
    const usr_t *mem[] = { &A, &B };
    load_room(J1, STORE_CHAT_GROUP, 0, mem, 2);
    for (int i = 1; i <= 3; i++) {
        char t[16];
        snprintf(t, sizeof(t), "j%d", i);
        int64_t ack = send_msg(&A, J1, t, true);
        store_msg_unref(expect_new(&A, J1, t, ack, i, 3));
        EXPECT_NONE();
    }
    /* missed: seq > 1, ascending, from the ring (no reader) */
    int64_t ack = join(&B, J1, 1);
    bool sub = false;
    json_t *r = reply(&B, ack, &sub, NULL);
    CHECK(sub);
    CHECK_EQ_INT(jbool(r, "ok"), 1);
    CHECK_EQ_INT(jint(r, "lastSeq"), 3);
    CHECK_EQ_INT(jint(r, "members"), 2);
    CHECK_EQ_STR(seqs(json_object_get(r, "missed")), "2,3");
    CHECK_EQ_STR(jstr(json_array_get(json_object_get(r, "missed"), 0), "tempId"), "j2");
    CHECK_EQ_STR(jstr(json_array_get(json_object_get(r, "missed"), 0), "status"), "pending");
    CHECK_EQ_INT(jbool(r, "more"), 0);
    EXPECT_NONE();
    ack = join(&B, J1, 0);
    CHECK_EQ_STR(seqs(json_object_get(reply(&B, ack, NULL, NULL), "missed")), "1,2,3");
    EXPECT_NONE();
    ack = join(&B, J1, 3);   /* nothing missed */
    r = reply(&B, ack, NULL, NULL);
    CHECK_EQ_STR(seqs(json_object_get(r, "missed")), "");
    CHECK_EQ_INT(jbool(r, "more"), 0);
    EXPECT_NONE();
    ack = join(&B, J1, -1);   /* no sinceSeq */
    r = reply(&B, ack, NULL, NULL);
    CHECK_EQ_STR(seqs(json_object_get(r, "missed")), "");
    CHECK_EQ_INT(jbool(r, "more"), 0);
    EXPECT_NONE();

    /* history from the ring: limit 2 -> 2,3 more; before 3 -> 1,2 */
    ack = history(&B, J1, 0, 2);
    r = reply(&B, ack, NULL, NULL);
    CHECK_EQ_STR(seqs(json_object_get(r, "messages")), "2,3");
    CHECK_EQ_INT(jbool(r, "more"), 1);
    EXPECT_NONE();
    ack = history(&B, J1, 3, 50);
    r = reply(&B, ack, NULL, NULL);
    CHECK_EQ_STR(seqs(json_object_get(r, "messages")), "1,2");
    CHECK_EQ_INT(jbool(r, "more"), 0);
    EXPECT_NONE();

    /* the 1 MiB cap: three 400 kB messages, join since 0 -> 2,3 and more */
    load_room(J2, STORE_CHAT_GROUP, 0, mem, 2);
    size_t big = 400000;
    char *body = malloc(big);
    memset(body, 'x', big);
    for (int i = 1; i <= 3; i++) {
        char t[16];
        snprintf(t, sizeof(t), "big%d", i);
        ack = send_body(&A, J2, t, true, 0, body, big);
        store_msg_unref(expect_new(&A, J2, t, ack, i, 3));
        EXPECT_NONE();
    }
    free(body);
    ack = join(&B, J2, 0);
    r = reply(&B, ack, NULL, NULL);
    CHECK_EQ_STR(seqs(json_object_get(r, "missed")), "2,3");
    CHECK_EQ_INT(jbool(r, "more"), 1);
    EXPECT_NONE();

    /* after a restart: last_seq 10, empty ring -> the reader is asked */
    load_room(RS, STORE_CHAT_GROUP, 10, mem, 2);
    ack = join(&B, RS, 5);
    CHECK_EQ_INT(count(B.sh, MAIL_REPLY), 0);
    req_t *q = take(READER, MAIL_RD_MSGS);
    CHECK(q != NULL);
    EXPECT_NONE();
    if (q) {
        CHECK_EQ_INT(q->purpose, REQ_JOIN);
        CHECK_EQ_STR(q->room_id, RS);
        CHECK_EQ_INT(q->rd_after, 5);
        CHECK_EQ_INT(q->rd_before, 11);
        CHECK_EQ_INT(q->rd_limit, 1000);
        CHECK_EQ_INT(q->rd_bytes, 1u << 20);
        q->msgs = calloc(5, sizeof(*q->msgs));
        for (int s = 6; s <= 10; s++) {
            char id[STORE_OID_LEN + 1];
            oid(id, s);
            q->msgs[q->nmsgs++] = stored_msg(RS, &A, "old", s, id);
        }
        q->more = false;
        q->status = 0;
        deliver(RS, READER, MAIL_RD_MSGS_DONE, q);
        sub = false;
        r = reply(&B, ack, &sub, NULL);
        CHECK(sub);
        CHECK_EQ_INT(jbool(r, "ok"), 1);
        CHECK_EQ_INT(jint(r, "lastSeq"), 10);
        CHECK_EQ_STR(seqs(json_object_get(r, "missed")), "6,7,8,9,10");
        json_t *m6 = json_array_get(json_object_get(r, "missed"), 0);
        CHECK_EQ_STR(jstr(m6, "status"), "confirmed");
        CHECK_EQ_STR(jstr(m6, "id"), "65aa00000000000000000006");
        CHECK_EQ_INT(jbool(r, "more"), 0);
        EXPECT_NONE();
    }
    /* the reader failing -> UNAVAILABLE */
    ack = join(&B, RS, 2);
    q = take(READER, MAIL_RD_MSGS);
    CHECK(q != NULL);
    EXPECT_NONE();
    if (q) {
        q->status = ERR_STORE;
        deliver(RS, READER, MAIL_RD_MSGS_DONE, q);
        expect_reply_fail(&B, ack, "UNAVAILABLE");
        EXPECT_NONE();
    }
    /* history after a restart also goes to the reader */
    ack = history(&B, RS, 0, 3);
    q = take(READER, MAIL_RD_MSGS);
    CHECK(q != NULL);
    EXPECT_NONE();
    if (q) {
        CHECK_EQ_INT(q->purpose, REQ_HISTORY);
        CHECK_EQ_INT(q->rd_before, 11);
        CHECK_EQ_INT(q->rd_limit, 3);
        q->msgs = calloc(3, sizeof(*q->msgs));
        for (int s = 8; s <= 10; s++)
            q->msgs[q->nmsgs++] = stored_msg(RS, &A, "h", s, "65aa000000000000000000aa");
        q->more = true;
        deliver(RS, READER, MAIL_RD_MSGS_DONE, q);
        r = reply(&B, ack, NULL, NULL);
        CHECK_EQ_STR(seqs(json_object_get(r, "messages")), "8,9,10");
        CHECK_EQ_INT(jbool(r, "more"), 1);
        EXPECT_NONE();
    }

    /* eviction (recent_max 4): the ring keeps 4..7, the reader supplies 2..3 */
    uint32_t saved = cfg.recent_max;
    cfg.recent_max = 4;
    load_room(EV, STORE_CHAT_GROUP, 0, mem, 2);
    store_msg_t *w[8] = { 0 };
    for (int i = 1; i <= 6; i++) {
        char t[16];
        snprintf(t, sizeof(t), "e%d", i);
        ack = send_msg(&A, EV, t, true);
        w[i] = expect_new(&A, EV, t, ack, i, 3);
        EXPECT_NONE();
    }
    for (int i = 1; i <= 6; i++) {
        char id[STORE_OID_LEN + 1];
        oid(id, i);
        confirm(w[i], 0, id);
        expect_fanout(EV, "message:confirmed", 3, 0, "");
        EXPECT_NONE();
    }
    ack = send_msg(&A, EV, "e7", true);
    store_msg_unref(expect_new(&A, EV, "e7", ack, 7, 3));
    EXPECT_NONE();
    ack = join(&B, EV, 1);
    q = take(READER, MAIL_RD_MSGS);
    CHECK(q != NULL);
    EXPECT_NONE();
    if (q) {
        CHECK_EQ_INT(q->purpose, REQ_JOIN);
        CHECK_EQ_INT(q->rd_after, 1);
        CHECK_EQ_INT(q->rd_before, 4);
        CHECK_EQ_INT(q->rd_limit, 1000 - 4);
        CHECK(q->rd_bytes < (1u << 20));
        CHECK_EQ_STR(seqs(q->part), "4,5,6,7");
        q->msgs = calloc(2, sizeof(*q->msgs));
        q->msgs[q->nmsgs++] = stored_msg(EV, &A, "e2", 2, "65aa00000000000000000002");
        q->msgs[q->nmsgs++] = stored_msg(EV, &A, "e3", 3, "65aa00000000000000000003");
        deliver(EV, READER, MAIL_RD_MSGS_DONE, q);
        r = reply(&B, ack, NULL, NULL);
        CHECK_EQ_STR(seqs(json_object_get(r, "missed")), "2,3,4,5,6,7");
        json_t *missed = json_object_get(r, "missed");
        CHECK_EQ_STR(jstr(json_array_get(missed, 2), "status"), "confirmed");
        CHECK_EQ_STR(jstr(json_array_get(missed, 2), "id"), "65aa00000000000000000004");
        CHECK_EQ_STR(jstr(json_array_get(missed, 5), "status"), "pending");
        CHECK_EQ_INT(jbool(r, "more"), 0);
        EXPECT_NONE();
    }
    /* history below the ring: the reader supplies all of it */
    ack = history(&B, EV, 4, 50);
    q = take(READER, MAIL_RD_MSGS);
    CHECK(q != NULL);
    EXPECT_NONE();
    if (q) {
        CHECK_EQ_INT(q->purpose, REQ_HISTORY);
        CHECK_EQ_INT(q->rd_before, 4);
        CHECK_EQ_INT(q->rd_limit, 50);
        CHECK_EQ_STR(seqs(q->part), "");
        q->msgs = calloc(3, sizeof(*q->msgs));
        for (int s = 1; s <= 3; s++)
            q->msgs[q->nmsgs++] = stored_msg(EV, &A, "e", s, "65aa000000000000000000bb");
        deliver(EV, READER, MAIL_RD_MSGS_DONE, q);
        r = reply(&B, ack, NULL, NULL);
        CHECK_EQ_STR(seqs(json_object_get(r, "messages")), "1,2,3");
        CHECK_EQ_INT(jbool(r, "more"), 0);
        EXPECT_NONE();
    }
    /* the limit used up exactly at the ring's first seq: 4,5 and more:true
     * (older ones are in the store). The room may ask the reader for 0
     * more; answer like the store does (LIMIT 0: none, more). */
    ack = history(&B, EV, 6, 2);
    q = take(READER, MAIL_RD_MSGS);
    if (q) {
        CHECK_EQ_INT(q->rd_limit, 0);
        q->more = true;
        deliver(EV, READER, MAIL_RD_MSGS_DONE, q);
    }
    r = reply(&B, ack, NULL, NULL);
    CHECK_EQ_STR(seqs(json_object_get(r, "messages")), "4,5");
    CHECK_EQ_INT(jbool(r, "more"), 1);
    EXPECT_NONE();
    cfg.recent_max = saved;
    gc();
}

/* 9: warm-up after a restart. */
static void test_warm_up(void)
{
    const usr_t *mem[] = { &A, &B };
    load_room(W1, STORE_CHAT_GROUP, 5, mem, 2);
    /* the first send is parked and the reader is asked for recent tempIds */
    int64_t ack_old = send_msg(&A, W1, "old", true);
    req_t *w = take(READER, MAIL_RD_MSGS);
    CHECK(w != NULL);
    EXPECT_NONE();   /* no ack, no fan-out, no write yet */
    if (!w)
        return;
    CHECK_EQ_INT(w->purpose, REQ_WARM);
    CHECK_EQ_STR(w->room_id, W1);
    CHECK_EQ_INT(w->rd_limit, DEDUP_MAX);
    /* a second send waits too, without a second read */
    int64_t ack_new = send_msg(&A, W1, "new", true);
    int64_t ack_b = send_msg(&B, W1, "b5", false);
    EXPECT_NONE();
    /* the store had (A, old) at seq 4 and (B, b5) at seq 5 */
    w->msgs = calloc(2, sizeof(*w->msgs));
    w->msgs[w->nmsgs++] = stored_msg(W1, &A, "old", 4, "65aa00000000000000000004");
    w->msgs[w->nmsgs++] = stored_msg(W1, &B, "b5", 5, "65aa00000000000000000005");
    deliver(W1, READER, MAIL_RD_MSGS_DONE, w);
    /* parked sends run in order: old is a duplicate (confirmed again), new
     * gets seq 6, B's resend without a token is still a duplicate */
    CHECK(idx(A.sh, MAIL_SEND_DONE) >= 0);
    json_t *conf = expect_dup(&A, ack_old, "old", 4, true);
    CHECK(conf != NULL);
    CHECK_EQ_STR(jstr(conf, "id"), "65aa00000000000000000004");
    CHECK_EQ_INT(jint(conf, "seq"), 4);
    store_msg_unref(expect_new(&A, W1, "new", ack_new, 6, 3));
    conf = expect_dup(&B, ack_b, "b5", 5, false);
    CHECK(conf && strcmp(jstr(conf, "id"), "65aa00000000000000000005") == 0);
    EXPECT_NONE();
    /* warm now: the next send goes straight through */
    int64_t ack = send_msg(&A, W1, "next", true);
    store_msg_unref(expect_new(&A, W1, "next", ack, 7, 3));
    EXPECT_NONE();

    /* a cold room still checks existence and membership before parking */
    load_room(W2, STORE_CHAT_GROUP, 3, mem, 2);
    ack = send_msg(&C, W2, "c", true);
    expect_send_fail(&C, ack, "UNAUTHORIZED", true);
    EXPECT_NONE();   /* no warm-up read for it */
    /* a failed warm-up still lets the parked send through */
    ack = send_msg(&B, W2, "x", true);
    w = take(READER, MAIL_RD_MSGS);
    CHECK(w != NULL);
    EXPECT_NONE();
    if (w) {
        w->status = ERR_STORE;
        deliver(W2, READER, MAIL_RD_MSGS_DONE, w);
        store_msg_unref(expect_new(&B, W2, "x", ack, 4, 3));
        EXPECT_NONE();
    }
    gc();
}

/* 10: chat:create in two steps. */
static void test_create(void)
{
    char id[64];
    pick_id(id, sizeof(id), "newgrp", 1);
    store_chat_t *c = calloc(1, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->type = STORE_CHAT_GROUP;
    c->name = strdup("new group");
    c->members = calloc(3, sizeof(char *));
    c->members[0] = strdup(A.id);
    c->members[1] = strdup(A2.id);
    c->members[2] = strdup(B.id);
    c->n_members = 3;
    c->created_at = 1700000000001;
    req_t *q = mkreq(&A, id);
    q->chat = c;
    int64_t ack = q->ack_id;
    deliver(id, A.sh, MAIL_CREATE, q);
    q = take(WRITER, MAIL_W_CHAT);
    CHECK(q != NULL);
    EXPECT_NONE();   /* no ack before the store has it */
    if (!q)
        return;
    q->status = 0;
    deliver(id, WRITER, MAIL_CHAT_STORED, q);
    for (int s = 0; s < NSH; s++) {
        CHECK_EQ_INT(count(s, MAIL_CHAT_NEW), 1);
        fanout_t *f = take(s, MAIL_CHAT_NEW);
        if (!f)
            continue;
        json_t *p = fanout_payload(f, "chat:new");
        CHECK_EQ_STR(jstr(p, "id"), id);
        CHECK_EQ_INT(f->nmembers, s == 0 ? 2 : 1);
        for (size_t k = 0; k < f->nmembers; k++)
            CHECK_EQ_INT(owner(f->members[k]), s);
        fanout_free(f);
    }
    json_t *r = reply(&A, ack, NULL, NULL);
    CHECK_EQ_INT(jbool(r, "ok"), 1);
    CHECK_EQ_STR(jstr(json_object_get(r, "chat"), "type"), "group");
    EXPECT_NONE();
    /* the room exists now */
    ack = send_msg(&B, id, "n1", true);
    store_msg_unref(expect_new(&B, id, "n1", ack, 1, 3));
    EXPECT_NONE();
    gc();
}

/* 10b: a chat whose store write fails is removed again; nothing may keep
 * pointing at it. Between MAIL_CREATE and MAIL_CHAT_STORED the room already
 * exists in memory (so a concurrent create of the same direct chat finds
 * it), and a member can address it: a direct chat's id is derived from the
 * pair, so the other member may send typing:start to it meanwhile. */
static void test_create_fail(void)
{
    char id[64];
    pick_id(id, sizeof(id), "dmfail", 0);
    store_chat_t *c = calloc(1, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->type = STORE_CHAT_DIRECT;
    c->name = strdup("");
    c->members = calloc(2, sizeof(char *));
    c->members[0] = strdup(A.id);
    c->members[1] = strdup(B.id);
    c->n_members = 2;
    req_t *q = mkreq(&A, id);
    q->chat = c;
    int64_t ack = q->ack_id;
    deliver(id, A.sh, MAIL_CREATE, q);
    req_t *wc = take(WRITER, MAIL_W_CHAT);
    CHECK(wc != NULL);
    EXPECT_NONE();
    if (!wc)
        return;
    actor_t *a = &act[owner(id)];
    const void *room = hmap_get(&a->rooms, id);
    CHECK(room != NULL);

    /* B types in the not yet stored chat */
    sh[owner(id)].now_ms = 100000;
    q = mkreq(&B, id);
    q->flag = true;
    int64_t tack = q->ack_id;
    deliver(id, B.sh, MAIL_TYPING, q);
    expect_fanout(id, "typing", 3, 0, B.id);
    CHECK_EQ_INT(jbool(reply(&B, tack, NULL, NULL), "ok"), 1);
    EXPECT_NONE();

    /* the store refuses the chat: the creator is told, the room is gone */
    wc->status = ERR_STORE;
    deliver(id, WRITER, MAIL_CHAT_STORED, wc);
    expect_reply_fail(&A, ack, "UNAVAILABLE");
    EXPECT_NONE();
    CHECK(hmap_get(&a->rooms, id) == NULL);

    /* BUG (actors/room.c, room__on_chat_stored): the freed room stays in
     * actor_t.typing_rooms, and the next room_tick reads freed memory
     * (heap-use-after-free under ASan). Correct: a removed room is no
     * longer listed, and room_tick sends nothing for it. The pointer is
     * only compared here; room_tick runs only when it is gone. */
    bool dangling = false;
    for (uint32_t i = 0; i < a->ntyping_rooms; i++)
        if ((const void *)a->typing_rooms[i] == room)
            dangling = true;
    CHECK(!dangling);   /* BUG: see above */
    if (!dangling) {
        sh[owner(id)].now_ms = 200000;
        room_tick(a);
        drain(owner(id));
        EXPECT_NONE();
    } else {
        /* keep the rest of the run safe: forget the dangling entries */
        uint32_t k = 0;
        for (uint32_t i = 0; i < a->ntyping_rooms; i++)
            if ((const void *)a->typing_rooms[i] != room)
                a->typing_rooms[k++] = a->typing_rooms[i];
        a->ntyping_rooms = k;
    }
    int64_t sack = send_msg(&B, id, "after", true);
    expect_send_fail(&B, sack, "NOT_FOUND", true);
    EXPECT_NONE();
    gc();
}

/* The store backlog: each room shard takes its share of
 * --store-backlog-max; past it message:send answers UNAVAILABLE (token
 * refunded), and a confirmation makes room again. */
static void test_backlog(void)
{
    char room[64];
    pick_id(room, sizeof(room), "backlog", 1);
    const usr_t *mem[] = { &A, &B };
    load_room(room, STORE_CHAT_GROUP, 0, mem, 2);
    uint32_t saved = cfg.store_backlog_max;
    /* two more than the room's shard already holds (earlier cases leave
     * messages unconfirmed) */
    const actor_t *owner = &act[hmap_hash(room, strlen(room)) % NSH];
    cfg.store_backlog_max = (uint32_t)((owner->backlog_msgs + 2) * NSH);
    store_msg_t *w1 = expect_new(&A, room, "b1", send_msg(&A, room, "b1", true), 1, 3);
    store_msg_t *w2 = expect_new(&A, room, "b2", send_msg(&A, room, "b2", true), 2, 3);
    EXPECT_NONE();
    expect_send_fail(&A, send_msg(&A, room, "b3", true), "UNAVAILABLE", true);
    EXPECT_NONE();
    confirm(w1, 0, "65aa000000000000000000b1");
    expect_fanout(room, "message:confirmed", 3, 0, "");
    store_msg_t *w3 = expect_new(&A, room, "b3", send_msg(&A, room, "b3", true), 3, 3);
    EXPECT_NONE();
    confirm(w2, 0, "65aa000000000000000000b2");
    expect_fanout(room, "message:confirmed", 3, 0, "");
    confirm(w3, 0, "65aa000000000000000000b3");
    expect_fanout(room, "message:confirmed", 3, 0, "");
    EXPECT_NONE();
    cfg.store_backlog_max = saved;
}

int main(void)
{
    cfg_defaults(&cfg);
    hub = mbox_hub_new(NSH + 2, 256);
    CHECK(hub != NULL);
    if (!hub)
        return check_done("room_test");
    for (int i = 0; i < NSH; i++) {
        sh[i].id = i;
        sh[i].n = NSH;
        sh[i].cfg = &cfg;
        sh[i].hub = hub;
        sh[i].now_ms = 1;
        sh[i].overflow = calloc(NSH + 2, sizeof(shard_overflow_t));
        sh[i].actor = &act[i];
        act[i].sh = &sh[i];
        act[i].dedup_max = DEDUP_MAX;
    }
    mk_user(&A, "alice", 0, 1);
    mk_user(&A2, "anna", 0, 2);
    mk_user(&D, "dora", 0, 3);
    mk_user(&B, "bob", 1, 1);
    mk_user(&C, "carl", 1, 2);
    pick_id(G1, sizeof(G1), "grp", 1);     /* A's sends cross shards */
    pick_id(G0, sizeof(G0), "g0only", 1);
    pick_id(CH, sizeof(CH), "chan", 0);
    pick_id(DM, sizeof(DM), "dm", 1);
    pick_id(J1, sizeof(J1), "join", 0);
    pick_id(J2, sizeof(J2), "bigjoin", 1);
    pick_id(RS, sizeof(RS), "restart", 0);
    pick_id(EV, sizeof(EV), "evict", 1);
    pick_id(W1, sizeof(W1), "warm", 0);
    pick_id(W2, sizeof(W2), "warm2", 1);

    test_send_seq_dedup_rate();
    test_membership();
    test_join_since();
    test_warm_up();
    test_create();
    test_create_fail();
    test_backlog();

    EXPECT_NONE();
    for (int i = 0; i < NSH; i++) {
        room_free_all(&act[i]);
        free(sh[i].overflow);
    }
    mbox_hub_free(hub);
    evt_thread_exit();
    return check_done("room_test");
}
