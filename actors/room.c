/* room.c - the room side of a shard: members, the per-room seq (total
 * order), the ring of recent messages, tempId dedup, typing, and the
 * confirmations that come back from the persistence writer.
 *
 * Runs on the room's owning shard (hash(roomId) % N). A room event is
 * encoded once per encoding here and addressed to every shard that holds
 * members (shard_members[i] > 0); each of those delivers it to its own
 * subscribed sockets (user.c). Per-pair mailbox FIFO keeps every socket's
 * view of one room in seq order.
 *
 * message:send, step by step (numbers reused below):
 *   1. existence (NOT_FOUND), membership (UNAUTHORIZED), replyTo
 *      (INVALID_INPUT), duplicate tempId (the original seq, duplicate:true,
 *      and the confirmation again if the message is already confirmed);
 *   2. the rate decision made on the user's shard (RATE_LIMITED);
 *   3. next seq, ring, dedup entry;
 *   4. fan-out of message:new to the member shards, then the ack;
 *   5. hand-off to the persistence writer (optimistic first: the store
 *      write begins only after the fan-out left).
 */
#include "room.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/err.h"
#include "../src/log.h"
#include "evt.h"

#define ROOM_TYPING_MS 5000
#define ROOM_MISSED_MAX 1000
#define ROOM_REPLY_BYTES (1u << 20)

static room_t *room__new(actor_t *a, const store_chat_t *c)
{
    room_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    snprintf(r->id, sizeof(r->id), "%s", c->id);
    r->type = c->type;
    r->name = strdup(c->name ? c->name : "");
    r->created_at = c->created_at;
    r->seq = c->last_seq;
    r->first_seq = c->last_seq + 1;
    /* A room with stored messages learns their tempIds before its first
     * message:send, so a resend after a restart is still a duplicate. */
    r->warm = c->last_seq > 0 ? ROOM_COLD : ROOM_WARM;
    r->shard_members = calloc((size_t)a->sh->n, sizeof(*r->shard_members));
    if (!r->name || !r->shard_members)
        goto fail;
    for (size_t i = 0; i < c->n_members; i++) {
        if (hmap_get(&r->members, c->members[i]))
            continue;
        char *k = strdup(c->members[i]);
        if (!k || hmap_put(&r->members, k, k, NULL) < 0) {
            free(k);
            goto fail;
        }
        r->shard_members[actor_owner(a->sh, k)]++;
    }
    if (hmap_put(&a->rooms, r->id, r, NULL) < 0)
        goto fail;
    return r;
fail:
    LOG_ERR("out of memory creating room %s", c->id);
    free(r->name);
    free(r->shard_members);
    const char *k;
    void *v;
    for (size_t it = 0; hmap_next(&r->members, &it, &k, &v);)
        free(v);
    hmap_deinit(&r->members);
    free(r);
    return NULL;
}

int room_load(actor_t *a, store_chat_t *c)
{
    room_t *r = room__new(a, c);
    store_chat_free(c);
    return r ? 0 : -ENOMEM;
}

static bool room__member(const room_t *r, const char *user) { return hmap_get(&r->members, user) != NULL; }

static rmsg_t *room__ring_at(room_t *r, uint32_t i) { return &r->ring[(r->ring_head + i) % r->ring_cap]; }

static rmsg_t *room__ring_seq(room_t *r, int64_t seq)
{
    if (r->ring_len == 0 || seq < r->first_seq || seq >= r->first_seq + r->ring_len)
        return NULL;
    return room__ring_at(r, (uint32_t)(seq - r->first_seq));
}

static int room__cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* room__unlist forgets r in the shard's list of rooms with typing state
 * (before r is freed). */
static void room__unlist(actor_t *a, room_t *r)
{
    for (uint32_t i = 0; r->typing_listed && i < a->ntyping_rooms; i++) {
        if (a->typing_rooms[i] == r) {
            a->typing_rooms[i] = a->typing_rooms[--a->ntyping_rooms];
            r->typing_listed = false;
        }
    }
}

/* ---- fan-out and replies ----------------------------------------------- */

static void room__fanout(actor_t *a, room_t *r, buf_blob_t *frames[2], connh_t exclude_conn,
                         const char *exclude_user)
{
    for (int i = 0; i < a->sh->n; i++) {
        if (!r->shard_members[i])
            continue;
        fanout_t *f = calloc(1, sizeof(*f));
        if (!f) {
            LOG_ERR("out of memory fanning out in %s", r->id);
            continue;
        }
        snprintf(f->room_id, sizeof(f->room_id), "%s", r->id);
        f->frames[0] = buf_blob_ref(frames[0]);
        f->frames[1] = buf_blob_ref(frames[1]);
        f->exclude_conn = exclude_conn;
        if (exclude_user)
            snprintf(f->exclude_user, sizeof(f->exclude_user), "%s", exclude_user);
        shard_mail(a->sh, i, &(mbox_msg_t){ .kind = MAIL_FANOUT, .ptr = f });
    }
    buf_blob_unref(frames[0]);
    buf_blob_unref(frames[1]);
}

/* Encode once per encoding and fan out; steals payload. */
static void room__emit(actor_t *a, room_t *r, const char *event, json_t *payload, connh_t exclude_conn,
                       const char *exclude_user, bool droppable)
{
    buf_blob_t *frames[2];
    int rc = payload ? evt_event2(event, payload, frames) : -ENOMEM;
    json_decref(payload);
    if (rc < 0) {
        LOG_ERR("out of memory encoding %s in %s", event, r->id);
        return;
    }
    if (droppable) {
        frames[0]->flags |= BUF_BLOB_DROPPABLE;
        frames[1]->flags |= BUF_BLOB_DROPPABLE;
    }
    room__fanout(a, r, frames, exclude_conn, exclude_user);
}

/* Send the answer for req back to the socket's shard (steals payload). */
static void room__reply(actor_t *a, req_t *q, json_t *payload, uint32_t kind)
{
    q->frame = evt_reply(q->enc, q->ack_id, payload);
    shard_mail(a->sh, connh_shard(q->connh), &(mbox_msg_t){ .kind = kind, .ptr = q });
}

static void room__fail(actor_t *a, req_t *q, const char *code, const char *msg, uint32_t kind)
{
    q->refund = q->flag && kind == MAIL_SEND_DONE;
    room__reply(a, q, evt_fail(code, msg), kind);
}

/* Existence and permission, in the order of protocol.md §5. */
static room_t *room__check(actor_t *a, req_t *q, uint32_t reply_kind, bool channel_join)
{
    room_t *r = hmap_get(&a->rooms, q->room_id);
    if (!r) {
        room__fail(a, q, "NOT_FOUND", "unknown room", reply_kind);
        return NULL;
    }
    if (!room__member(r, q->user_id) && !(channel_join && r->type == STORE_CHAT_CHANNEL)) {
        room__fail(a, q, "UNAUTHORIZED", "not a member of this room", reply_kind);
        return NULL;
    }
    return r;
}

/* ---- members ------------------------------------------------------------ */

static void room__user_sub(actor_t *a, const char *user, const char *room, bool subscribe)
{
    req_t *q = req_new();
    if (!q)
        return;
    snprintf(q->user_id, sizeof(q->user_id), "%s", user);
    snprintf(q->room_id, sizeof(q->room_id), "%s", room);
    q->subscribe = subscribe;
    shard_mail(a->sh, actor_owner(a->sh, user), &(mbox_msg_t){ .kind = MAIL_USER_SUB, .ptr = q });
}

static void room__store_member(actor_t *a, const char *user, const char *room, bool add)
{
    req_t *q = req_new();
    if (!q)
        return;
    snprintf(q->user_id, sizeof(q->user_id), "%s", user);
    snprintf(q->room_id, sizeof(q->room_id), "%s", room);
    q->flag = add;
    shard_mail(a->sh, actor_writer(a->sh), &(mbox_msg_t){ .kind = MAIL_W_MEMBER, .ptr = q });
}

static void room__set_online(room_t *r, const char *user, bool online)
{
    if (online) {
        if (hmap_get(&r->online, user))
            return;
        char *k = strdup(user);
        if (k && hmap_put(&r->online, k, k, NULL) < 0)
            free(k);
    } else {
        free(hmap_del(&r->online, user));
    }
}

static void room__typing_clear(actor_t *a, room_t *r, const char *user);
static void room__free(room_t *r);

static int room__add_member(actor_t *a, room_t *r, const char *user)
{
    char *k = strdup(user);
    if (!k || hmap_put(&r->members, k, k, NULL) < 0) {
        free(k);
        return -ENOMEM;
    }
    r->shard_members[actor_owner(a->sh, user)]++;
    return 0;
}

static void room__del_member(actor_t *a, room_t *r, const char *user)
{
    char *k = hmap_del(&r->members, user);
    if (!k)
        return;
    r->shard_members[actor_owner(a->sh, user)]--;
    free(k);
    room__set_online(r, user, false);
}

/* ---- messages ----------------------------------------------------------- */

static int room__ring_push(actor_t *a, room_t *r, store_msg_t *m)
{
    if (r->ring_len == r->ring_cap) {
        uint32_t cap = r->ring_cap ? r->ring_cap * 2 : 16;
        rmsg_t *ring = malloc(cap * sizeof(*ring));
        if (!ring)
            return -ENOMEM;
        for (uint32_t i = 0; i < r->ring_len; i++)
            ring[i] = *room__ring_at(r, i);
        free(r->ring);
        r->ring = ring;
        r->ring_cap = cap;
        r->ring_head = 0;
    }
    if (r->ring_len == 0)
        r->first_seq = m->seq;
    *room__ring_at(r, r->ring_len++) = (rmsg_t){ .m = m, .status = RMSG_PENDING };
    /* Evict the oldest once over the limit, but never an unconfirmed one:
     * everything below first_seq must be findable in the store. */
    while (r->ring_len > a->sh->cfg->recent_max && r->ring[r->ring_head].status != RMSG_PENDING) {
        store_msg_unref(r->ring[r->ring_head].m);
        r->ring_head = (r->ring_head + 1) % r->ring_cap;
        r->ring_len--;
        r->first_seq++;
    }
    return 0;
}

static char *room__dedup_key(const char *sender, const char *temp)
{
    size_t a = strlen(sender), b = strlen(temp);
    char *k = malloc(a + b + 2);
    if (k) {
        memcpy(k, sender, a);
        k[a] = '\x1f';   /* cannot appear in a user id */
        memcpy(k + a + 1, temp, b + 1);
    }
    return k;
}

static dedup_t *room__dedup_add(actor_t *a, room_t *r, char *key, int64_t seq)
{
    dedup_t *d = calloc(1, sizeof(*d));
    if (!d || hmap_put(&r->dedup, key, d, NULL) < 0) {
        free(d);
        free(key);
        return NULL;
    }
    d->key = key;
    d->seq = seq;
    if (r->dedup_len == r->dedup_cap) {
        uint32_t cap = r->dedup_cap ? r->dedup_cap * 2 : 16;
        dedup_t **f = malloc(cap * sizeof(*f));
        if (!f)
            return d;   /* stays in the map, just never evicted */
        for (uint32_t i = 0; i < r->dedup_len; i++)
            f[i] = r->dedup_fifo[(r->dedup_head + i) % r->dedup_cap];
        free(r->dedup_fifo);
        r->dedup_fifo = f;
        r->dedup_cap = cap;
        r->dedup_head = 0;
    }
    r->dedup_fifo[(r->dedup_head + r->dedup_len++) % r->dedup_cap] = d;
    while (r->dedup_len > a->dedup_max) {
        dedup_t *old = r->dedup_fifo[r->dedup_head];
        r->dedup_head = (r->dedup_head + 1) % r->dedup_cap;
        r->dedup_len--;
        if (old->key) {
            hmap_del(&r->dedup, old->key);
            free(old->key);
        }
        if (old == d)
            d = NULL;
        free(old);
    }
    return d;
}

static json_t *room__confirmed_json(const rmsg_t *e)
{
    return json_pack("{s:s, s:I, s:s, s:s}", "roomId", e->m->room_id, "seq", (json_int_t)e->m->seq,
                     "tempId", e->m->temp_id, "id", e->id);
}

/* The store backlog is bounded per shard: each room shard counts what it
 * handed to the writer and has not heard back about (no counter is shared
 * between threads), and takes an equal share of --store-backlog-max and
 * --store-backlog-bytes. */
static bool room__backlog_full(actor_t *a, size_t body_len)
{
    const cfg_t *cfg = a->sh->cfg;
    uint64_t n = (uint64_t)a->sh->n;
    return a->backlog_msgs + 1 > (cfg->store_backlog_max + n - 1) / n ||
           a->backlog_bytes + body_len > (cfg->store_backlog_bytes + n - 1) / n;
}

/* ---- warm-up after a restart ------------------------------------------- */

static void room__park(actor_t *a, room_t *r, req_t *q)
{
    req_t **p = realloc(r->parked, (r->nparked + 1) * sizeof(*p));
    if (!p) {
        room__fail(a, q, "INTERNAL", "out of memory", MAIL_SEND_DONE);
        return;
    }
    r->parked = p;
    r->parked[r->nparked++] = q;
    if (r->warm == ROOM_WARMING)
        return;
    req_t *w = req_new();
    if (!w) {
        r->warm = ROOM_WARM;   /* best effort: the store's unique index still catches it */
        return;
    }
    r->warm = ROOM_WARMING;
    snprintf(w->room_id, sizeof(w->room_id), "%s", r->id);
    w->purpose = REQ_WARM;
    w->rd_after = 0;
    w->rd_before = 0;
    w->rd_limit = a->dedup_max;
    w->rd_bytes = SIZE_MAX;
    shard_mail(a->sh, actor_reader(a->sh), &(mbox_msg_t){ .kind = MAIL_RD_MSGS, .ptr = w });
}

static void room__on_send(actor_t *a, req_t *q);

static void room__on_warm(actor_t *a, req_t *w)
{
    room_t *r = hmap_get(&a->rooms, w->room_id);
    if (r) {
        if (w->status < 0)
            LOG_WRN("room %s: could not read its recent tempIds (%s); duplicates are caught by the store",
                    r->id, err_str(w->status));
        for (size_t i = 0; i < w->nmsgs; i++) {   /* ascending: FIFO order kept */
            store_msg_t *m = w->msgs[i];
            char *key = room__dedup_key(m->sender_id, m->temp_id);
            if (!key)
                continue;
            if (hmap_get(&r->dedup, key)) {
                free(key);
                continue;
            }
            dedup_t *d = room__dedup_add(a, r, key, m->seq);
            if (d)
                memcpy(d->id, m->id, sizeof(d->id));
        }
        r->warm = ROOM_WARM;
        req_t **parked = r->parked;
        uint32_t n = r->nparked;
        r->parked = NULL;
        r->nparked = 0;
        for (uint32_t i = 0; i < n; i++)
            room__on_send(a, parked[i]);
        free(parked);
    }
    req_free(w);
}

static void room__on_send(actor_t *a, req_t *q)
{
    room_t *r = room__check(a, q, MAIL_SEND_DONE, false);   /* 1 */
    if (!r)
        return;
    if (r->warm != ROOM_WARM) {
        room__park(a, r, q);
        return;
    }
    if (q->b > 0 && q->b > r->seq) {
        room__fail(a, q, "INVALID_INPUT", "replyTo must be the seq of an earlier message in this room", MAIL_SEND_DONE);
        return;
    }
    char *key = room__dedup_key(q->user_id, q->temp_id);
    if (!key) {
        room__fail(a, q, "INTERNAL", "out of memory", MAIL_SEND_DONE);
        return;
    }
    dedup_t *d = hmap_get(&r->dedup, key);
    if (d) {
        free(key);
        if (d->id[0]) {   /* already confirmed: repeat it to this socket */
            json_t *c = json_pack("{s:s, s:I, s:s, s:s}", "roomId", r->id, "seq", (json_int_t)d->seq,
                                  "tempId", q->temp_id, "id", d->id);
            q->frame2 = evt_event(q->enc, "message:confirmed", c);
            json_decref(c);
        }
        q->refund = q->flag;
        room__reply(a, q, json_pack("{s:b, s:s, s:I, s:b}", "ok", 1, "tempId", q->temp_id,
                                    "seq", (json_int_t)d->seq, "duplicate", 1), MAIL_SEND_DONE);
        return;
    }
    if (!q->flag) {   /* 2 */
        free(key);
        room__reply(a, q, evt_fail("RATE_LIMITED", "too many messages; slow down"), MAIL_SEND_DONE);
        return;
    }
    if (room__backlog_full(a, q->body_len)) {
        free(key);
        room__fail(a, q, "UNAVAILABLE", "the store is behind; try again later", MAIL_SEND_DONE);
        return;
    }
    store_msg_t *m = store_msg_new(r->id, q->user_id, q->user_name, q->temp_id, q->type, q->body,
                                   q->body_len, r->seq + 1, q->b, tmr_wall_ms());
    if (!m || room__ring_push(a, r, m) < 0) {   /* 3 */
        if (m)
            store_msg_unref(m);
        free(key);
        room__fail(a, q, "INTERNAL", "out of memory", MAIL_SEND_DONE);
        return;
    }
    r->seq++;
    room__dedup_add(a, r, key, m->seq);
    room__emit(a, r, "message:new", evt_msg_json(m, "", false), q->connh, NULL, false);   /* 4 */
    room__reply(a, q, json_pack("{s:b, s:s, s:I}", "ok", 1, "tempId", q->temp_id, "seq", (json_int_t)m->seq),
                MAIL_SEND_DONE);
    a->backlog_msgs++;
    a->backlog_bytes += m->body_len;
    shard_mail(a->sh, actor_writer(a->sh), &(mbox_msg_t){ .kind = MAIL_W_MSG, .ptr = store_msg_ref(m) });   /* 5 */
}

static void room__on_confirm(actor_t *a, confirm_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        confirm_item_t *it = &c->items[i];
        a->backlog_msgs--;
        a->backlog_bytes -= it->msg->body_len;
        room_t *r = hmap_get(&a->rooms, it->msg->room_id);
        rmsg_t *e = r ? room__ring_seq(r, it->msg->seq) : NULL;
        if (e && e->m == it->msg && e->status == RMSG_PENDING) {
            /* A store duplicate is this message only if it sits in this room
             * at this seq (a resend the store saw first); otherwise the
             * tempId was used for another message and this one is refused. */
            bool mine = it->status == 0 ||
                        (it->status == ERR_DUP && it->same_room && it->seq == e->m->seq);
            if (mine) {
                e->status = RMSG_CONFIRMED;
                memcpy(e->id, it->id, sizeof(e->id));
                char *key = room__dedup_key(e->m->sender_id, e->m->temp_id);
                dedup_t *d = key ? hmap_get(&r->dedup, key) : NULL;
                if (d && d->seq == e->m->seq)
                    memcpy(d->id, it->id, sizeof(d->id));
                free(key);
                room__emit(a, r, "message:confirmed", room__confirmed_json(e), 0, NULL, false);
            } else {
                e->status = RMSG_FAILED;   /* withdrawn: a resend may try again */
                char *key = room__dedup_key(e->m->sender_id, e->m->temp_id);
                dedup_t *d = key ? hmap_del(&r->dedup, key) : NULL;
                if (d) {
                    free(d->key);
                    d->key = NULL;   /* the FIFO frees the entry later */
                }
                free(key);
                const char *code = it->status == ERR_STORE ? "UNAVAILABLE"
                                 : it->status == ERR_DUP ? "INVALID_INPUT" : "INTERNAL";
                const char *why = it->status == ERR_STORE ? "the message could not be stored in time"
                                : it->status == ERR_DUP ? "tempId was already used for another message"
                                                        : "the store refused the message";
                room__emit(a, r, "message:failed",
                           json_pack("{s:s, s:I, s:s, s:{s:s, s:s}}", "roomId", r->id, "seq",
                                     (json_int_t)e->m->seq, "tempId", e->m->temp_id, "error", "code", code,
                                     "message", why),
                           0, NULL, false);
            }
        }
        store_msg_unref(it->msg);
    }
    free(c);
}

/* ---- join and history --------------------------------------------------- */

/* Collect ring messages with lo < seq < hi, newest first, at most *limit
 * and *bytes; return them ascending. Updates *limit and *bytes by what was
 * taken; *lowest gets the lowest seq taken (or hi). */
static json_t *room__collect(room_t *r, int64_t lo, int64_t hi, size_t *limit, size_t *bytes, int64_t *lowest,
                             bool *capped)
{
    json_t *out = json_array();
    *lowest = hi;
    *capped = false;
    if (hi > r->first_seq + r->ring_len)
        hi = r->first_seq + r->ring_len;
    for (int64_t seq = hi - 1; seq > lo && seq >= r->first_seq; seq--) {
        rmsg_t *e = room__ring_seq(r, seq);
        if (!e || e->status == RMSG_FAILED)
            continue;
        size_t sz = store_msg_size_estimate(e->m);
        if (*limit == 0 || (sz > *bytes && json_array_size(out) > 0)) {
            *capped = true;
            break;
        }
        json_array_insert_new(out, 0, evt_msg_json(e->m, e->id, e->status == RMSG_CONFIRMED));
        *bytes = sz > *bytes ? 0 : *bytes - sz;
        (*limit)--;
        *lowest = seq;
    }
    return out;
}

static json_t *room__online_json(room_t *r)
{
    json_t *o = json_array();
    const char *k;
    for (size_t it = 0; hmap_next(&r->online, &it, &k, NULL);)
        json_array_append_new(o, json_string(k));
    return o;
}

static void room__finish_read(actor_t *a, room_t *r, req_t *q, json_t *msgs, bool more)
{
    if (q->purpose == REQ_JOIN) {
        q->subscribe = true;
        room__reply(a, q, json_pack("{s:b, s:s, s:I, s:o, s:I, s:o, s:b}", "ok", 1, "roomId", r->id,
                                    "members", (json_int_t)r->members.len, "online", room__online_json(r),
                                    "lastSeq", (json_int_t)r->seq, "missed", msgs, "more", more),
                    MAIL_REPLY);
    } else {
        room__reply(a, q, json_pack("{s:b, s:o, s:b}", "ok", 1, "messages", msgs, "more", more), MAIL_REPLY);
    }
}

/* Answer from the ring when it covers the request; otherwise keep the
 * ring's part in the request and ask the reader for the older rest. */
static void room__read(actor_t *a, room_t *r, req_t *q)
{
    size_t limit = q->purpose == REQ_JOIN ? ROOM_MISSED_MAX : (size_t)q->b, bytes = ROOM_REPLY_BYTES;
    int64_t lo, hi, lowest;
    bool capped;
    if (q->purpose == REQ_JOIN) {
        if (q->a < 0 || q->a >= r->seq) {   /* no sinceSeq, or nothing missed */
            room__finish_read(a, r, q, json_array(), false);
            return;
        }
        lo = q->a;
        hi = r->seq + 1;
    } else {
        lo = 0;
        hi = (q->a <= 0 || q->a > r->seq + 1) ? r->seq + 1 : q->a;
    }
    json_t *part = room__collect(r, lo, hi, &limit, &bytes, &lowest, &capped);
    if (limit == 0 && !capped)   /* the limit ran out exactly at the ring's start */
        capped = lowest > lo + 1;
    if (capped || limit == 0 || lowest <= lo + 1 || r->first_seq <= 1 || lowest <= 1) {
        room__finish_read(a, r, q, part, capped && lowest > lo + 1);
        return;
    }
    q->part = part;
    q->rd_after = lo;
    q->rd_before = lowest < r->first_seq ? lowest : r->first_seq;
    q->rd_limit = limit;
    q->rd_bytes = bytes;
    shard_mail(a->sh, actor_reader(a->sh), &(mbox_msg_t){ .kind = MAIL_RD_MSGS, .ptr = q });
}

static void room__on_read_done(actor_t *a, req_t *q)
{
    if (q->purpose == REQ_WARM) {
        room__on_warm(a, q);
        return;
    }
    room_t *r = hmap_get(&a->rooms, q->room_id);
    if (!r || q->status < 0) {
        room__reply(a, q, evt_fail("UNAVAILABLE", "the store is unavailable; try again"), MAIL_REPLY);
        return;
    }
    json_t *msgs = json_array();
    for (size_t i = 0; i < q->nmsgs; i++)
        json_array_append_new(msgs, evt_msg_json(q->msgs[i], q->msgs[i]->id, true));
    json_array_extend(msgs, q->part);
    json_decref(q->part);
    q->part = NULL;
    room__finish_read(a, r, q, msgs, q->more);
}

static void room__on_join(actor_t *a, req_t *q)
{
    room_t *r = room__check(a, q, MAIL_REPLY, true);
    if (!r)
        return;
    if (!room__member(r, q->user_id)) {   /* a channel: joining makes you a member */
        if (room__add_member(a, r, q->user_id) < 0) {
            room__fail(a, q, "INTERNAL", "out of memory", MAIL_REPLY);
            return;
        }
        room__store_member(a, q->user_id, r->id, true);
        room__user_sub(a, q->user_id, r->id, true);   /* all of the user's sockets */
        room__emit(a, r, "room:member-joined", json_pack("{s:s, s:s}", "roomId", r->id, "userId", q->user_id),
                   0, q->user_id, false);
    }
    room__set_online(r, q->user_id, true);
    q->purpose = REQ_JOIN;
    room__read(a, r, q);
}

static void room__on_history(actor_t *a, req_t *q)
{
    room_t *r = room__check(a, q, MAIL_REPLY, false);
    if (!r)
        return;
    q->purpose = REQ_HISTORY;
    room__read(a, r, q);
}

static void room__on_leave(actor_t *a, req_t *q)
{
    room_t *r = room__check(a, q, MAIL_REPLY, false);
    if (!r)
        return;
    if (r->type == STORE_CHAT_DIRECT) {   /* only this socket stops receiving */
        q->unsubscribe = true;
        room__reply(a, q, evt_ok(), MAIL_REPLY);
        return;
    }
    room__typing_clear(a, r, q->user_id);
    room__del_member(a, r, q->user_id);
    room__store_member(a, q->user_id, r->id, false);
    room__user_sub(a, q->user_id, r->id, false);
    room__emit(a, r, "room:member-left", json_pack("{s:s, s:s}", "roomId", r->id, "userId", q->user_id), 0,
               q->user_id, false);
    room__reply(a, q, evt_ok(), MAIL_REPLY);
}

/* ---- chats -------------------------------------------------------------- */

/* chat:create, in two steps: the room exists in memory at once (so a
 * concurrent create of the same direct chat finds it), but chat:new and the
 * ack wait until the writer committed the chat, so a chats:list or a
 * restart right after the ack sees it. */
/* The chat as the room knows it (for a create that finds it existing). */
static json_t *room__chat_json(room_t *r)
{
    store_chat_t c = { .type = r->type, .name = r->name, .created_at = r->created_at, .last_seq = r->seq };
    snprintf(c.id, sizeof(c.id), "%s", r->id);
    char **members = calloc(r->members.len ? r->members.len : 1, sizeof(*members));
    if (!members)
        return NULL;
    const char *k;
    for (size_t it = 0; hmap_next(&r->members, &it, &k, NULL);)
        members[c.n_members++] = (char *)k;
    qsort(members, c.n_members, sizeof(*members), room__cmp_str);
    c.members = members;
    for (uint32_t i = r->ring_len; i > 0 && !c.last_msg; i--) {
        rmsg_t *e = room__ring_at(r, i - 1);
        if (e->status != RMSG_FAILED)
            c.last_msg = e->m;
    }
    json_t *o = evt_chat_json(&c);
    if (o && c.last_msg) {   /* evt_chat_json reads the stored id; ours is in the ring */
        rmsg_t *e = room__ring_seq(r, c.last_msg->seq);
        json_object_set_new(o, "lastMessage", evt_msg_json(e->m, e->id, e->status == RMSG_CONFIRMED));
    }
    free(members);
    return o;
}

static void room__on_create(actor_t *a, req_t *q)
{
    store_chat_t *c = q->chat;
    room_t *r = hmap_get(&a->rooms, c->id);
    if (r && r->creating) {   /* the same direct chat, still being stored */
        q->purpose = REQ_CREATE_WAIT;
        req_t **p = realloc(r->parked, (r->nparked + 1) * sizeof(*p));
        if (!p) {
            room__fail(a, q, "INTERNAL", "out of memory", MAIL_REPLY);
            return;
        }
        r->parked = p;
        r->parked[r->nparked++] = q;
        return;
    }
    if (r) {   /* the same pair always gets the same direct chat */
        room__reply(a, q, json_pack("{s:b, s:o}", "ok", 1, "chat", room__chat_json(r)), MAIL_REPLY);
        return;
    }
    if (!(r = room__new(a, c))) {
        room__fail(a, q, "INTERNAL", "out of memory", MAIL_REPLY);
        return;
    }
    r->creating = true;
    shard_mail(a->sh, actor_writer(a->sh), &(mbox_msg_t){ .kind = MAIL_W_CHAT, .ptr = q });
}

/* Answer the creates that waited for this chat to be stored. */
static void room__unpark_creates(actor_t *a, room_t *r, bool ok)
{
    uint32_t w = 0;
    for (uint32_t i = 0; i < r->nparked; i++) {
        req_t *q = r->parked[i];
        if (q->purpose != REQ_CREATE_WAIT) {
            r->parked[w++] = q;
        } else if (ok) {
            room__reply(a, q, json_pack("{s:b, s:o}", "ok", 1, "chat", room__chat_json(r)), MAIL_REPLY);
        } else {
            room__fail(a, q, "UNAVAILABLE", "the chat could not be stored; try again", MAIL_REPLY);
        }
    }
    r->nparked = w;
}

static void room__on_chat_stored(actor_t *a, req_t *q)
{
    store_chat_t *c = q->chat;
    room_t *r = hmap_get(&a->rooms, c->id);
    if (!r) {
        room__fail(a, q, "INTERNAL", "the chat vanished", MAIL_REPLY);
        return;
    }
    r->creating = false;
    if (q->status < 0 && q->status != ERR_DUP) {
        room__unpark_creates(a, r, false);
        room__unlist(a, r);
        hmap_del(&a->rooms, r->id);
        room__free(r);
        room__fail(a, q, "UNAVAILABLE", "the chat could not be stored; try again", MAIL_REPLY);
        return;
    }
    room__unpark_creates(a, r, true);
    json_t *chat = evt_chat_json(c);
    buf_blob_t *frames[2];
    if (chat && evt_event2("chat:new", chat, frames) == 0) {
        for (int i = 0; i < a->sh->n; i++) {
            if (!r->shard_members[i])
                continue;
            fanout_t *f = calloc(1, sizeof(*f));
            char **members = f ? calloc(c->n_members, sizeof(*members)) : NULL;
            if (!members) {
                free(f);
                continue;
            }
            snprintf(f->room_id, sizeof(f->room_id), "%s", r->id);
            f->frames[0] = buf_blob_ref(frames[0]);
            f->frames[1] = buf_blob_ref(frames[1]);
            f->members = members;
            for (size_t k = 0; k < c->n_members; k++)
                if (actor_owner(a->sh, c->members[k]) == i && (members[f->nmembers] = strdup(c->members[k])))
                    f->nmembers++;
            shard_mail(a->sh, i, &(mbox_msg_t){ .kind = MAIL_CHAT_NEW, .ptr = f });
        }
        buf_blob_unref(frames[0]);
        buf_blob_unref(frames[1]);
    }
    room__reply(a, q, json_pack("{s:b, s:o}", "ok", 1, "chat", chat), MAIL_REPLY);
}

/* ---- typing ------------------------------------------------------------- */

static void room__typing_emit(actor_t *a, room_t *r, const char *user, bool typing)
{
    room__emit(a, r, "typing", json_pack("{s:s, s:s, s:b}", "roomId", r->id, "userId", user, "isTyping", typing),
               0, user, true);
}

static void room__typing_clear(actor_t *a, room_t *r, const char *user)
{
    for (uint32_t i = 0; i < r->ntyping; i++) {
        if (strcmp(r->typing[i].user_id, user) == 0) {
            r->typing[i] = r->typing[--r->ntyping];
            room__typing_emit(a, r, user, false);
            return;
        }
    }
}

static void room__on_typing(actor_t *a, req_t *q)
{
    room_t *r = room__check(a, q, MAIL_REPLY, false);
    if (!r)
        return;
    if (!q->flag) {
        room__typing_clear(a, r, q->user_id);
        room__reply(a, q, evt_ok(), MAIL_REPLY);
        return;
    }
    uint64_t until = a->sh->now_ms + ROOM_TYPING_MS;
    bool found = false;
    for (uint32_t i = 0; i < r->ntyping && !found; i++) {
        if (strcmp(r->typing[i].user_id, q->user_id) == 0) {
            r->typing[i].until_ms = until;
            found = true;
        }
    }
    if (!found) {
        if (r->ntyping == r->typing_cap) {
            uint32_t cap = r->typing_cap ? r->typing_cap * 2 : 4;
            typing_t *t = realloc(r->typing, cap * sizeof(*t));
            if (!t) {
                room__fail(a, q, "INTERNAL", "out of memory", MAIL_REPLY);
                return;
            }
            r->typing = t;
            r->typing_cap = cap;
        }
        typing_t *t = &r->typing[r->ntyping++];
        snprintf(t->user_id, sizeof(t->user_id), "%s", q->user_id);
        t->until_ms = until;
    }
    if (!r->typing_listed) {
        room_t **l = realloc(a->typing_rooms, (a->ntyping_rooms + 1) * sizeof(*l));
        if (l) {
            a->typing_rooms = l;
            a->typing_rooms[a->ntyping_rooms++] = r;
            r->typing_listed = true;
        }
    }
    room__typing_emit(a, r, q->user_id, true);
    room__reply(a, q, evt_ok(), MAIL_REPLY);
}

void room_tick(actor_t *a)
{
    uint64_t now = a->sh->now_ms;
    for (uint32_t i = 0; i < a->ntyping_rooms;) {
        room_t *r = a->typing_rooms[i];
        for (uint32_t k = 0; k < r->ntyping;) {
            if (r->typing[k].until_ms <= now) {
                char user[STORE_ID_MAX + 1];
                memcpy(user, r->typing[k].user_id, sizeof(user));
                r->typing[k] = r->typing[--r->ntyping];
                room__typing_emit(a, r, user, false);
            } else {
                k++;
            }
        }
        if (r->ntyping == 0) {
            r->typing_listed = false;
            a->typing_rooms[i] = a->typing_rooms[--a->ntyping_rooms];
        } else {
            i++;
        }
    }
}

static void room__on_presence(actor_t *a, req_t *q)
{
    room_t *r = hmap_get(&a->rooms, q->room_id);
    if (r && room__member(r, q->user_id)) {
        room__set_online(r, q->user_id, q->flag);
        if (!q->flag)
            room__typing_clear(a, r, q->user_id);
    }
    req_free(q);
}

bool room_on_mail(actor_t *a, int from, mbox_msg_t *m)
{
    (void)from;
    switch (m->kind) {
    case MAIL_SEND: room__on_send(a, m->ptr); return true;
    case MAIL_JOIN: room__on_join(a, m->ptr); return true;
    case MAIL_LEAVE: room__on_leave(a, m->ptr); return true;
    case MAIL_TYPING: room__on_typing(a, m->ptr); return true;
    case MAIL_HISTORY: room__on_history(a, m->ptr); return true;
    case MAIL_CREATE: room__on_create(a, m->ptr); return true;
    case MAIL_CHAT_STORED: room__on_chat_stored(a, m->ptr); return true;
    case MAIL_PRESENCE: room__on_presence(a, m->ptr); return true;
    case MAIL_CONFIRM: room__on_confirm(a, m->ptr); return true;
    case MAIL_RD_MSGS_DONE: room__on_read_done(a, m->ptr); return true;
    default: return false;
    }
}

static void room__free(room_t *r)
{
    const char *k;
    void *v;
    for (size_t it = 0; hmap_next(&r->members, &it, &k, &v);)
        free(v);
    hmap_deinit(&r->members);
    for (size_t it = 0; hmap_next(&r->online, &it, &k, &v);)
        free(v);
    hmap_deinit(&r->online);
    for (uint32_t i = 0; i < r->ring_len; i++)
        store_msg_unref(room__ring_at(r, i)->m);
    free(r->ring);
    for (uint32_t i = 0; i < r->dedup_len; i++) {
        dedup_t *d = r->dedup_fifo[(r->dedup_head + i) % r->dedup_cap];
        free(d->key);
        free(d);
    }
    hmap_deinit(&r->dedup);
    free(r->dedup_fifo);
    free(r->typing);
    for (uint32_t i = 0; i < r->nparked; i++)
        req_free(r->parked[i]);
    free(r->parked);
    free(r->shard_members);
    free(r->name);
    free(r);
}

void room_free_all(actor_t *a)
{
    void *v;
    for (size_t it = 0; hmap_next(&a->rooms, &it, NULL, &v);)
        room__free(v);
    hmap_deinit(&a->rooms);
    free(a->typing_rooms);
}
