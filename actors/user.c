/* user.c - the user side of a shard: users and their sockets, the rate
 * bucket, local room subscriptions, client event handlers, and the mail that
 * comes back from room shards and the persistence reader.
 *
 * Runs on the shard that owns the user (hash(userId) % N). Client events
 * are validated here (fields: INVALID_INPUT, PAYLOAD_TOO_LARGE) and then
 * forwarded to the room's shard, which checks existence, permission and
 * (for message:send) the rate decision made here (protocol.md §5).
 */
#include "user.h"

#include <bson/bson.h>
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/err.h"
#include "../src/log.h"
#include "../wire/json.h"
#include "evt.h"
#include "sess.h"

#define USER_BODY_MAX 65536
#define USER_NAME_MAX 256
#define USER_CREATE_MEMBERS_MAX 10000

req_t *req_new(void) { return calloc(1, sizeof(req_t)); }

void req_free(req_t *r)
{
    if (!r)
        return;
    free(r->user_name);
    free(r->body);
    if (r->chat)
        store_chat_free(r->chat);
    if (r->frame)
        buf_blob_unref(r->frame);
    if (r->frame2)
        buf_blob_unref(r->frame2);
    for (size_t i = 0; i < r->nmsgs; i++)
        store_msg_unref(r->msgs[i]);
    free(r->msgs);
    for (size_t i = 0; i < r->nchats; i++)
        store_chat_free(r->chats[i]);
    free(r->chats);
    if (r->part)
        json_decref(r->part);
    free(r);
}

/* ---- subscriptions ------------------------------------------------------ */

void sub_add(actor_t *a, sess_t *s, const char *room_id)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i]->room_id, room_id) == 0)
            return;
    sub_t *sub = hmap_get(&a->subs, room_id);
    if (!sub) {
        sub = calloc(1, sizeof(*sub));
        if (!sub || !(sub->room_id = strdup(room_id)) || hmap_put(&a->subs, sub->room_id, sub, NULL) < 0)
            goto nomem;
    }
    if (sub->n == sub->cap) {
        uint32_t cap = sub->cap ? sub->cap * 2 : 4;
        sess_t **p = realloc(sub->socks, cap * sizeof(*p));
        if (!p)
            goto nomem;
        sub->socks = p;
        sub->cap = cap;
    }
    if (s->nsubs == s->subs_cap) {
        uint32_t cap = s->subs_cap ? s->subs_cap * 2 : 4;
        sub_t **p = realloc(s->subs, cap * sizeof(*p));
        if (!p)
            goto nomem;
        s->subs = p;
        s->subs_cap = cap;
    }
    sub->socks[sub->n++] = s;
    s->subs[s->nsubs++] = sub;
    return;
nomem:
    LOG_ERR("out of memory subscribing a socket to %s", room_id);
    sess_close_ws(a, s, WS_CLOSE_INTERNAL, "out of memory");
}

static void sub__drop(actor_t *a, sess_t *s, uint32_t idx)
{
    sub_t *sub = s->subs[idx];
    s->subs[idx] = s->subs[--s->nsubs];
    for (uint32_t i = 0; i < sub->n; i++) {
        if (sub->socks[i] == s) {
            sub->socks[i] = sub->socks[--sub->n];
            break;
        }
    }
    if (sub->n == 0) {
        hmap_del(&a->subs, sub->room_id);
        free(sub->room_id);
        free(sub->socks);
        free(sub);
    }
}

void sub_remove(actor_t *a, sess_t *s, const char *room_id)
{
    for (uint32_t i = 0; i < s->nsubs; i++) {
        if (strcmp(s->subs[i]->room_id, room_id) == 0) {
            sub__drop(a, s, i);
            return;
        }
    }
}

/* ---- users -------------------------------------------------------------- */

static void user__chat_add(user_t *u, const char *room_id)
{
    if (hmap_get(&u->chats, room_id))
        return;
    char *k = strdup(room_id);
    if (!k || hmap_put(&u->chats, k, k, NULL) < 0)
        free(k);
}

static void user__chat_del(user_t *u, const char *room_id)
{
    free(hmap_del(&u->chats, room_id));
}

static void user__presence(actor_t *a, user_t *u, const char *room_id, bool online)
{
    req_t *r = req_new();
    if (!r)
        return;
    snprintf(r->user_id, sizeof(r->user_id), "%s", u->id);
    snprintf(r->room_id, sizeof(r->room_id), "%s", room_id);
    r->flag = online;
    shard_mail(a->sh, actor_owner(a->sh, room_id), &(mbox_msg_t){ .kind = MAIL_PRESENCE, .ptr = r });
}

int user_attach(actor_t *a, sess_t *s, const jwt_claims_t *claims)
{
    user_t *u = hmap_get(&a->users, claims->sub);
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u)
            return -ENOMEM;
        snprintf(u->id, sizeof(u->id), "%s", claims->sub);
        u->name = strdup(claims->name[0] ? claims->name : claims->sub);
        u->role = claims->role;
        u->tokens = a->sh->cfg->rate_burst;
        u->tokens_ms = a->sh->now_ms;
        if (!u->name || hmap_put(&a->users, u->id, u, NULL) < 0) {
            free(u->name);
            free(u);
            return -ENOMEM;
        }
    }
    if (u->nsocks >= a->sh->cfg->max_sockets_per_user)
        return ERR_FULL;
    sess_t **p = realloc(u->socks, (u->nsocks + 1) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    u->socks = p;
    u->socks[u->nsocks++] = s;
    s->user = u;
    return 0;
}

void user_detach(actor_t *a, sess_t *s)
{
    user_t *u = s->user;
    while (s->nsubs)
        sub__drop(a, s, s->nsubs - 1);
    for (uint32_t i = 0; i < u->nsocks; i++) {
        if (u->socks[i] == s) {
            u->socks[i] = u->socks[--u->nsocks];
            break;
        }
    }
    s->user = NULL;
    if (u->nsocks)
        return;
    const char *k;
    void *v;
    for (size_t it = 0; hmap_next(&u->chats, &it, &k, &v);) {
        if (u->online)
            user__presence(a, u, k, false);
        free(v);
    }
    hmap_deinit(&u->chats);
    hmap_del(&a->users, u->id);
    free(u->socks);
    free(u->name);
    free(u);
}

/* ---- client events ------------------------------------------------------ */

static req_t *user__req(sess_t *s, int64_t ack_id, const char *room_id)
{
    req_t *r = req_new();
    if (!r)
        return NULL;
    r->connh = s->h;
    r->ack_id = ack_id;
    r->enc = s->enc;
    r->role = s->user->role;
    snprintf(r->user_id, sizeof(r->user_id), "%s", s->user->id);
    if (room_id)
        snprintf(r->room_id, sizeof(r->room_id), "%s", room_id);
    return r;
}

/* Returns the roomId of payload, or NULL after answering the error. */
static const char *user__room_id(actor_t *a, sess_t *s, json_t *p, int64_t ack_id)
{
    size_t len;
    const char *room = json_get_str(p, "roomId", &len);
    if (!room || !json_id_valid(room, len)) {
        sess_reply(a, s, ack_id, evt_fail("INVALID_INPUT", "roomId must be 1-128 characters of [A-Za-z0-9._:@-]"));
        return NULL;
    }
    return room;
}

/* Every field was checked; a user:<id> room is refused here, so the
 * order of checks stays fields, then existence and permission (§5). */
static void user__forward(actor_t *a, sess_t *s, req_t *r, uint32_t kind)
{
    if (strncmp(r->room_id, "user:", 5) == 0) {
        if (kind == MAIL_SEND && r->flag && s->user->tokens + 1.0 <= a->sh->cfg->rate_burst)
            s->user->tokens += 1.0;   /* the token was not used */
        sess_reply(a, s, r->ack_id, evt_fail("UNAUTHORIZED", "user rooms cannot be named by clients"));
        req_free(r);
        return;
    }
    shard_mail(a->sh, actor_owner(a->sh, r->room_id), &(mbox_msg_t){ .kind = kind, .ptr = r });
}

static bool user__take_token(actor_t *a, user_t *u)
{
    const cfg_t *cfg = a->sh->cfg;
    uint64_t now = a->sh->now_ms;
    u->tokens += (double)(now - u->tokens_ms) * cfg->rate_limit / 60000.0;
    if (u->tokens > cfg->rate_burst)
        u->tokens = cfg->rate_burst;
    u->tokens_ms = now;
    if (u->tokens < 1.0)
        return false;
    u->tokens -= 1.0;
    return true;
}

static void user__ev_send(actor_t *a, sess_t *s, json_t *p, int64_t ack_id)
{
    const char *room = user__room_id(a, s, p, ack_id);
    if (!room)
        return;
    size_t tlen, blen;
    const char *temp = json_get_str(p, "tempId", &tlen);
    const char *type = json_get_str(p, "type", NULL);
    const char *body = json_get_str(p, "body", &blen);
    int64_t reply_to = 0;
    const char *bad = NULL;
    if (!temp || tlen < 1 || tlen > STORE_TEMPID_MAX || memchr(temp, 0, tlen))
        bad = "tempId must be a string of 1-64 bytes";
    else if (!type || (strcmp(type, "text") != 0 && strcmp(type, "image") != 0))
        bad = "type must be \"text\" or \"image\"";
    else if (!body)
        bad = "body must be a string";
    else if (json_has(p, "replyTo") && (!json_get_int(p, "replyTo", &reply_to) || reply_to < 1))
        bad = "replyTo must be the seq of an earlier message";
    if (bad) {
        sess_reply(a, s, ack_id, evt_fail("INVALID_INPUT", bad));
        return;
    }
    if (blen > USER_BODY_MAX) {
        sess_reply(a, s, ack_id, evt_fail("PAYLOAD_TOO_LARGE", "body is over 65536 bytes"));
        return;
    }
    req_t *r = user__req(s, ack_id, room);
    if (!r || !(r->body = malloc(blen + 1)) || !(r->user_name = strdup(s->user->name))) {
        req_free(r);
        sess_reply(a, s, ack_id, evt_fail("INTERNAL", "out of memory"));
        return;
    }
    memcpy(r->body, body, blen);
    r->body[blen] = 0;
    r->body_len = blen;
    memcpy(r->temp_id, temp, tlen);
    r->temp_id[tlen] = 0;
    r->type = strcmp(type, "image") == 0 ? STORE_MSG_IMAGE : STORE_MSG_TEXT;
    r->b = reply_to;
    /* The rate decision is made here, where the user's bucket lives; the
     * room shard applies it after its existence, permission and duplicate
     * checks and sends the token back when it was not used. */
    r->flag = user__take_token(a, s->user);
    user__forward(a, s, r, MAIL_SEND);
}

static void user__ev_room(actor_t *a, sess_t *s, json_t *p, int64_t ack_id, uint32_t kind, bool start)
{
    const char *room = user__room_id(a, s, p, ack_id);
    if (!room)
        return;
    int64_t n = -1, limit = 50;
    if (kind == MAIL_JOIN && json_has(p, "sinceSeq") && (!json_get_int(p, "sinceSeq", &n) || n < 0)) {
        sess_reply(a, s, ack_id, evt_fail("INVALID_INPUT", "sinceSeq must be an integer >= 0"));
        return;
    }
    if (kind == MAIL_HISTORY) {
        n = 0;
        if (json_has(p, "beforeSeq") && (!json_get_int(p, "beforeSeq", &n) || n < 1)) {
            sess_reply(a, s, ack_id, evt_fail("INVALID_INPUT", "beforeSeq must be an integer >= 1"));
            return;
        }
        if (json_has(p, "limit") && (!json_get_int(p, "limit", &limit) || limit < 1)) {
            sess_reply(a, s, ack_id, evt_fail("INVALID_INPUT", "limit must be an integer >= 1"));
            return;
        }
        if (limit > 100)
            limit = 100;
    }
    req_t *r = user__req(s, ack_id, room);
    if (!r) {
        sess_reply(a, s, ack_id, evt_fail("INTERNAL", "out of memory"));
        return;
    }
    r->a = n;
    r->b = limit;
    r->flag = start;
    user__forward(a, s, r, kind);
}

static int user__cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* A direct chat's id is a function of the pair, so the same pair always
 * gets the same chat wherever it is created. */
static void user__direct_id(const char *x, const char *y, char out[STORE_ID_MAX + 1])
{
    const char *lo = strcmp(x, y) < 0 ? x : y, *hi = lo == x ? y : x;
    uint8_t d[SHA256_DIGEST_LENGTH];
    size_t a = strlen(lo), b = strlen(hi);
    char pair[2 * STORE_ID_MAX + 2];
    memcpy(pair, lo, a + 1);   /* the NUL separates the two ids */
    memcpy(pair + a + 1, hi, b);
    SHA256((const uint8_t *)pair, a + 1 + b, d);
    char *o = out + sprintf(out, "dm:");
    for (int i = 0; i < 20; i++)
        o += sprintf(o, "%02x", d[i]);
}

static void user__ev_create(actor_t *a, sess_t *s, json_t *p, int64_t ack_id)
{
    const char *type = json_get_str(p, "type", NULL);
    int t = type ? store_chat_type_parse(type) : -1;
    json_t *members = json_object_get(p, "members");
    size_t nlen = 0;
    const char *name = json_get_str(p, "name", &nlen);
    const char *bad = NULL;
    if (t < 0)
        bad = "type must be direct, group or channel";
    else if (!json_is_array(members) || json_array_size(members) > USER_CREATE_MEMBERS_MAX)
        bad = "members must be an array of user ids";
    else if (json_has(p, "name") && (!name || nlen > USER_NAME_MAX))
        bad = "name must be a string of at most 256 bytes";
    size_t n = bad ? 0 : json_array_size(members);
    for (size_t i = 0; !bad && i < n; i++) {
        json_t *m = json_array_get(members, i);
        if (!json_is_string(m) || !json_id_valid(json_string_value(m), json_string_length(m)))
            bad = "members must be an array of user ids";
    }
    if (bad) {
        sess_reply(a, s, ack_id, evt_fail("INVALID_INPUT", bad));
        return;
    }
    store_chat_t *c = calloc(1, sizeof(*c));
    char **ids = c ? calloc(n + 1, sizeof(*ids)) : NULL;
    if (!ids)
        goto nomem;
    c->members = ids;
    ids[c->n_members++] = strdup(s->user->id);   /* the creator is always a member */
    for (size_t i = 0; i < n; i++)
        ids[c->n_members++] = strdup(json_string_value(json_array_get(members, i)));
    for (size_t i = 0; i < c->n_members; i++)
        if (!ids[i])
            goto nomem;
    qsort(ids + 1, c->n_members - 1, sizeof(*ids), user__cmp_str);
    size_t w = 1;   /* drop duplicates and the creator from the rest */
    for (size_t i = 1; i < c->n_members; i++) {
        if (strcmp(ids[i], ids[0]) == 0 || (w > 1 && strcmp(ids[i], ids[w - 1]) == 0))
            free(ids[i]);
        else
            ids[w++] = ids[i];
    }
    c->n_members = w;
    if (t == STORE_CHAT_DIRECT && c->n_members != 2) {
        store_chat_free(c);
        sess_reply(a, s, ack_id, evt_fail("INVALID_INPUT", "a direct chat has exactly one other member"));
        return;
    }
    c->type = t;
    c->created_at = tmr_wall_ms();
    if (!(c->name = strdup(name ? name : "")))
        goto nomem;
    if (t == STORE_CHAT_DIRECT) {
        user__direct_id(c->members[0], c->members[1], c->id);
    } else {
        bson_oid_t oid;
        bson_oid_init(&oid, NULL);
        char hex[25];
        bson_oid_to_string(&oid, hex);
        snprintf(c->id, sizeof(c->id), "%s:%s", t == STORE_CHAT_GROUP ? "g" : "c", hex);
    }
    req_t *r = user__req(s, ack_id, c->id);
    if (!r)
        goto nomem;
    r->chat = c;
    user__forward(a, s, r, MAIL_CREATE);
    return;
nomem:
    if (c)
        store_chat_free(c);
    sess_reply(a, s, ack_id, evt_fail("INTERNAL", "out of memory"));
}

static void user__ev_chats_list(actor_t *a, sess_t *s, int64_t ack_id)
{
    req_t *r = user__req(s, ack_id, NULL);
    if (!r) {
        sess_reply(a, s, ack_id, evt_fail("INTERNAL", "out of memory"));
        return;
    }
    r->purpose = REQ_CHATS_LIST;
    shard_mail(a->sh, actor_reader(a->sh), &(mbox_msg_t){ .kind = MAIL_RD_CHATS, .ptr = r });
}

void user_on_event(actor_t *a, sess_t *s, const char *name, json_t *payload, int64_t ack_id)
{
    static const char *const later[] = { "message:edit", "message:delete", "messages:read", "presence:get" };
    for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
        if (strcmp(name, later[i]) == 0) {
            sess_reply(a, s, ack_id, evt_fail("UNAVAILABLE", "this event is not available in this version of ringcast"));
            return;
        }
    }
    bool known = strcmp(name, "message:send") == 0 || strcmp(name, "room:join") == 0 ||
                 strcmp(name, "room:leave") == 0 || strcmp(name, "typing:start") == 0 ||
                 strcmp(name, "typing:stop") == 0 || strcmp(name, "history:get") == 0 ||
                 strcmp(name, "chat:create") == 0 || strcmp(name, "chats:list") == 0;
    if (!known) {
        sess_reply(a, s, ack_id, evt_fail("INVALID_INPUT", "unknown event"));
        return;
    }
    if (!json_is_object(payload)) {
        sess_reply(a, s, ack_id, evt_fail("INVALID_INPUT", "the payload must be an object"));
        return;
    }
    if (strcmp(name, "message:send") == 0)
        user__ev_send(a, s, payload, ack_id);
    else if (strcmp(name, "room:join") == 0)
        user__ev_room(a, s, payload, ack_id, MAIL_JOIN, false);
    else if (strcmp(name, "room:leave") == 0)
        user__ev_room(a, s, payload, ack_id, MAIL_LEAVE, false);
    else if (strcmp(name, "typing:start") == 0)
        user__ev_room(a, s, payload, ack_id, MAIL_TYPING, true);
    else if (strcmp(name, "typing:stop") == 0)
        user__ev_room(a, s, payload, ack_id, MAIL_TYPING, false);
    else if (strcmp(name, "history:get") == 0)
        user__ev_room(a, s, payload, ack_id, MAIL_HISTORY, false);
    else if (strcmp(name, "chat:create") == 0)
        user__ev_create(a, s, payload, ack_id);
    else
        user__ev_chats_list(a, s, ack_id);
}

/* ---- mail from rooms and the reader ------------------------------------ */

static sess_t *user__sess(actor_t *a, connh_t h)
{
    io_conn_t *c = shard_conn(a->sh, h);
    sess_t *s = c ? c->sess : NULL;
    return s && s->state == SESS_CONNECTED ? s : NULL;
}

static void user__on_reply(actor_t *a, req_t *r, bool send_done)
{
    if (send_done && r->refund) {
        user_t *u = hmap_get(&a->users, r->user_id);
        if (u && u->tokens + 1.0 <= a->sh->cfg->rate_burst)
            u->tokens += 1.0;
    }
    sess_t *s = user__sess(a, r->connh);
    if (s) {
        if (r->subscribe)
            sub_add(a, s, r->room_id);
        if (r->unsubscribe)
            sub_remove(a, s, r->room_id);
        if (r->frame)
            sess_send(a, s, r->frame);
        if (r->frame2)
            sess_send(a, s, r->frame2);
        r->frame = r->frame2 = NULL;
    }
    req_free(r);
}

static void user__on_fanout(actor_t *a, fanout_t *f)
{
    sub_t *sub = hmap_get(&a->subs, f->room_id);
    for (uint32_t i = 0; sub && i < sub->n; i++) {
        sess_t *s = sub->socks[i];
        if (s->h == f->exclude_conn || (f->exclude_user[0] && strcmp(s->user->id, f->exclude_user) == 0))
            continue;
        sess_send(a, s, buf_blob_ref(f->frames[s->enc - 1]));
    }
}

void fanout_free(fanout_t *f)
{
    for (int i = 0; i < 2; i++)
        if (f->frames[i])
            buf_blob_unref(f->frames[i]);
    for (size_t i = 0; i < f->nmembers; i++)
        free(f->members[i]);
    free(f->members);
    free(f);
}

static void user__on_user_sub(actor_t *a, req_t *r)
{
    user_t *u = hmap_get(&a->users, r->user_id);
    if (u) {
        if (r->subscribe)
            user__chat_add(u, r->room_id);
        else
            user__chat_del(u, r->room_id);
        for (uint32_t i = 0; i < u->nsocks; i++) {
            if (u->socks[i]->state != SESS_CONNECTED)
                continue;
            if (r->subscribe)
                sub_add(a, u->socks[i], r->room_id);
            else
                sub_remove(a, u->socks[i], r->room_id);
        }
    }
    req_free(r);
}

static void user__on_chat_new(actor_t *a, fanout_t *f)
{
    for (size_t i = 0; i < f->nmembers; i++) {
        if (actor_owner(a->sh, f->members[i]) != a->sh->id)
            continue;
        user_t *u = hmap_get(&a->users, f->members[i]);
        if (!u)
            continue;
        user__chat_add(u, f->room_id);
        for (uint32_t k = 0; k < u->nsocks; k++) {
            sess_t *s = u->socks[k];
            if (s->state != SESS_CONNECTED)
                continue;
            sub_add(a, s, f->room_id);   /* joined first, then told */
            sess_send(a, s, buf_blob_ref(f->frames[s->enc - 1]));
        }
        if (u->online)
            user__presence(a, u, f->room_id, true);
    }
}

static void user__on_chats(actor_t *a, req_t *r)
{
    sess_t *s = user__sess(a, r->connh);
    if (!s) {
        req_free(r);
        return;
    }
    json_t *chats = json_array();
    for (size_t i = 0; i < r->nchats; i++)
        json_array_append_new(chats, evt_chat_json(r->chats[i]));
    if (r->purpose == REQ_CHATS_LIST) {
        if (r->status < 0) {
            json_decref(chats);
            sess_reply(a, s, r->ack_id, evt_fail("UNAVAILABLE", "the store is unavailable; try again"));
        } else {
            sess_reply(a, s, r->ack_id, json_pack("{s:b, s:o}", "ok", 1, "chats", chats));
        }
        req_free(r);
        return;
    }
    user_t *u = s->user;
    for (size_t i = 0; i < r->nchats; i++) {
        sub_add(a, s, r->chats[i]->id);
        user__chat_add(u, r->chats[i]->id);
    }
    if (r->status < 0)
        sess_send(a, s, evt_event(s->enc, "error", evt_fail("UNAVAILABLE", "could not load chats")));
    json_t *ready = json_pack("{s:s, s:o}", "userId", u->id, "chats", chats);
    sess_send(a, s, evt_event(s->enc, "ready", ready));
    json_decref(ready);
    s->ready_sent = true;
    if (!u->online) {
        u->online = true;
        const char *k;
        for (size_t it = 0; hmap_next(&u->chats, &it, &k, NULL);)
            user__presence(a, u, k, true);
    }
    req_free(r);
}

bool user_on_mail(actor_t *a, mbox_msg_t *m)
{
    switch (m->kind) {
    case MAIL_SEND_DONE:
        user__on_reply(a, m->ptr, true);
        return true;
    case MAIL_REPLY:
        user__on_reply(a, m->ptr, false);
        return true;
    case MAIL_FANOUT:
        user__on_fanout(a, m->ptr);
        fanout_free(m->ptr);
        return true;
    case MAIL_USER_SUB:
        user__on_user_sub(a, m->ptr);
        return true;
    case MAIL_CHAT_NEW:
        user__on_chat_new(a, m->ptr);
        fanout_free(m->ptr);
        return true;
    case MAIL_RD_CHATS_DONE:
        user__on_chats(a, m->ptr);
        return true;
    default:
        return false;
    }
}
