/* store.c - the backend-independent half of the store interface: message and
 * chat records, type names, the encoded-size estimate, and choosing a backend
 * from a --store URI (see store.h; protocol.md §4, §11).
 *
 * Threads: store_msg_new/ref/unref run on any thread (a message is created on
 * a shard, read by the persistence writer and released by either); the rest
 * runs on the persistence threads, or on the main thread while parsing config.
 *
 * Invariants:
 *   - A store_msg_t is one allocation: the header, then room_id, sender_id,
 *     sender_name, temp_id and body packed in strings[], each NUL-terminated.
 *     None of them changes after store_msg_new returns; only id, deleted and
 *     edited_at are filled in by the one thread that owns the fresh message
 *     (the reader thread when loading) or by the writer after its commit.
 *   - refs counts owners; the thread that drops it to zero frees.
 */
#include "store.h"

#include "persistence/lite.h"
#include "persistence/mongo.h"
#include "src/err.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of the JSON message object that do not depend on the field values:
 * 11 keys with quotes and colons (91), braces and commas (12), the quotes
 * around 8 string values (16), the 24-hex id, the longest type ("image", 5)
 * and status ("confirmed", 9) = 157, rounded up. */
#define STORE_MSG_JSON_FIXED 160
/* ,"editedAt": and ,"deleted":true, present only on edited/deleted messages. */
#define STORE_MSG_JSON_EDITED 12
#define STORE_MSG_JSON_DELETED 15

static char *store__pack(char **p, const char *s, size_t n)
{
    char *dst = *p;
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
    *p = dst + n + 1;
    return dst;
}

store_msg_t *store_msg_new(const char *room_id, const char *sender_id, const char *sender_name,
                           const char *temp_id, int type, const char *body, size_t body_len,
                           int64_t seq, int64_t reply_to, int64_t ts)
{
    /* A NULL string is the caller saying "absent"; store it as "" so readers
     * never test for NULL. */
    room_id = room_id ? room_id : "";
    sender_id = sender_id ? sender_id : "";
    sender_name = sender_name ? sender_name : "";
    temp_id = temp_id ? temp_id : "";
    assert(body || body_len == 0);
    assert(type == STORE_MSG_TEXT || type == STORE_MSG_IMAGE);
    if (body_len >= UINT32_MAX)
        return NULL;   /* body_len is a uint32_t; the protocol caps bodies at 64 KiB anyway */

    size_t lr = strlen(room_id), ls = strlen(sender_id), ln = strlen(sender_name);
    size_t lt = strlen(temp_id);
    /* No overflow: every length is of an object already in memory (or < 4 GiB). */
    size_t strs = lr + ls + ln + lt + body_len + 5;   /* with their NULs */
    store_msg_t *m = malloc(sizeof(store_msg_t) + strs);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    atomic_init(&m->refs, 1);
    m->type = (uint8_t)type;
    m->seq = seq;
    m->reply_to = reply_to;
    m->ts = ts;
    char *p = m->strings;
    m->room_id = store__pack(&p, room_id, lr);
    m->sender_id = store__pack(&p, sender_id, ls);
    m->sender_name = store__pack(&p, sender_name, ln);
    m->temp_id = store__pack(&p, temp_id, lt);
    m->body = store__pack(&p, body, body_len);
    m->body_len = (uint32_t)body_len;
    assert((size_t)(p - m->strings) == strs);
    return m;
}

store_msg_t *store_msg_ref(store_msg_t *m)
{
    /* relaxed: the new owner gets the pointer from a thread that already
     * holds a reference, and the hand-over itself (a mailbox push) orders
     * the rest. */
    uint32_t old = atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    assert(old > 0 && "ref of a freed message");
    (void)old;
    return m;
}

void store_msg_unref(store_msg_t *m)
{
    if (!m)
        return;
    /* acq_rel: release orders this owner's last accesses before the count
     * drops; acquire on the final drop makes every other owner's accesses
     * (the writer's id, say) happen before the free. */
    uint32_t old = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
    assert(old > 0 && "unref of a freed message");
    if (old == 1)
        free(m);
}

void store_chat_free(store_chat_t *c)
{
    if (!c)
        return;
    free(c->name);
    for (size_t i = 0; i < c->n_members; i++)
        free(c->members[i]);
    free(c->members);
    store_msg_unref(c->last_msg);
    free(c);
}

store_chat_t *store_chat_dup(const store_chat_t *c)
{
    store_chat_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    memcpy(d->id, c->id, sizeof d->id);
    d->type = c->type;
    d->created_at = c->created_at;
    d->last_seq = c->last_seq;
    d->unread = c->unread;
    d->name = strdup(c->name ? c->name : "");
    if (!d->name)
        goto fail;
    if (c->n_members) {
        d->members = calloc(c->n_members, sizeof *d->members);
        if (!d->members)
            goto fail;
        /* n_members grows with each copy so store_chat_free frees exactly
         * what was copied if a strdup fails half way. */
        for (size_t i = 0; i < c->n_members; i++, d->n_members++) {
            d->members[i] = strdup(c->members[i]);
            if (!d->members[i])
                goto fail;
        }
    }
    if (c->last_msg)
        d->last_msg = store_msg_ref(c->last_msg);
    return d;
fail:
    store_chat_free(d);
    return NULL;
}

static const char *const store__chat_types[] = {
    [STORE_CHAT_DIRECT] = "direct", [STORE_CHAT_GROUP] = "group", [STORE_CHAT_CHANNEL] = "channel",
};
static const char *const store__msg_types[] = {
    [STORE_MSG_TEXT] = "text", [STORE_MSG_IMAGE] = "image",
};

/* NULL for a value outside the enum: a caller bug that must not be written
 * down as a plausible-looking type. */
const char *store_chat_type_name(int type)
{
    if (type < 0 || (size_t)type >= sizeof store__chat_types / sizeof *store__chat_types)
        return NULL;
    return store__chat_types[type];
}

int store_chat_type_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof store__chat_types / sizeof *store__chat_types; i++)
        if (strcmp(s, store__chat_types[i]) == 0)
            return (int)i;
    return -1;
}

const char *store_msg_type_name(int type)
{
    if (type < 0 || (size_t)type >= sizeof store__msg_types / sizeof *store__msg_types)
        return NULL;
    return store__msg_types[type];
}

int store_msg_type_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof store__msg_types / sizeof *store__msg_types; i++)
        if (strcmp(s, store__msg_types[i]) == 0)
            return (int)i;
    return -1;
}

/* Bytes of s as a JSON string body: '"' and '\\' take two, control
 * characters at most six (\u00XX); UTF-8 is written as is. */
static size_t store__json_len(const char *s, size_t n)
{
    size_t len = n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            len += 1;
        else if (c < 0x20)
            len += 5;
    }
    return len;
}

static size_t store__digits(int64_t v)
{
    /* Work on the unsigned magnitude: -INT64_MIN overflows. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t n = v < 0 ? 2 : 1;
    while (u >= 10) {
        u /= 10;
        n++;
    }
    return n;
}

size_t store_msg_size_estimate(const store_msg_t *m)
{
    size_t n = STORE_MSG_JSON_FIXED;
    n += store__json_len(m->room_id, strlen(m->room_id));
    n += store__json_len(m->temp_id, strlen(m->temp_id));
    n += store__json_len(m->sender_id, strlen(m->sender_id));
    n += store__json_len(m->sender_name, strlen(m->sender_name));
    n += store__json_len(m->body, m->body_len);
    n += store__digits(m->seq) + store__digits(m->reply_to) + store__digits(m->ts);
    if (m->edited_at)
        n += STORE_MSG_JSON_EDITED + store__digits(m->edited_at);
    if (m->deleted)
        n += STORE_MSG_JSON_DELETED;
    return n;
}

enum { STORE__SCHEME_BAD = -1, STORE__SCHEME_SQLITE, STORE__SCHEME_MONGO };

static void store__err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* store__scheme is the one place that decides whether a URI is usable, so
 * config parsing (store_uri_check) and startup (store_open) always agree.
 * On success *path points at the backend's part of the URI. */
static int store__scheme(const char *uri, const char **path, char *err, size_t errlen)
{
    static const char sqlite[] = "sqlite:";
    if (uri && strncmp(uri, sqlite, sizeof sqlite - 1) == 0) {
        *path = uri + sizeof sqlite - 1;
        if (**path == '\0') {
            store__err(err, errlen, "sqlite: needs a path (sqlite:PATH)");
            return STORE__SCHEME_BAD;
        }
        return STORE__SCHEME_SQLITE;
    }
    if (uri && (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0)) {
        /* The driver's parser decides, so a URI that passes the config check
         * also opens (mongo_open parses it the same way). */
        *path = uri;
        if (mongo_uri_check(uri, err, errlen) != 0)
            return STORE__SCHEME_BAD;
        return STORE__SCHEME_MONGO;
    }
    store__err(err, errlen, "unknown --store scheme");
    return STORE__SCHEME_BAD;
}

int store_uri_check(const char *uri, char *err, size_t errlen)
{
    const char *path;
    return store__scheme(uri, &path, err, errlen) == STORE__SCHEME_BAD ? ERR_CONFIG : 0;
}

int store_open(const char *uri, store_t **out, char *err, size_t errlen)
{
    const char *path;
    *out = NULL;
    switch (store__scheme(uri, &path, err, errlen)) {
    case STORE__SCHEME_SQLITE:
        return lite_open(path, out, err, errlen);
    case STORE__SCHEME_MONGO:
        /* mongo.h: the write concern comes from the environment (the
         * environment name of --mongo-write-concern); unset means the URI's,
         * else w:1,j:true. */
        return mongo_open(path, getenv(MONGO_WRITE_CONCERN_ENV), out, err, errlen);
    default:
        return ERR_CONFIG;
    }
}

void store_notif_free(store_notif_t *n)
{
    if (!n)
        return;
    free(n->kind);
    free(n->data);
    free(n);
}

bool store_page_full(store_page_t *p)
{
    if (p->n < p->limit)
        return false;
    p->more = true;
    return true;
}

int store_page_offer(store_page_t *p, store_msg_t *m)
{
    size_t sz = store_msg_size_estimate(m);
    if (p->n > 0 && (sz > p->max_bytes || p->bytes > p->max_bytes - sz)) {
        store_msg_unref(m);
        p->more = true;
        return 0;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        store_msg_t **v = realloc(p->v, cap * sizeof(*v));
        if (!v) {
            store_msg_unref(m);
            return -ENOMEM;
        }
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = m;
    p->bytes += sz;
    return 1;
}

int store_page_finish(store_page_t *p, store_msg_t ***out, size_t *n, bool *more)
{
    for (size_t i = 0; i < p->n / 2; i++) {   /* newest first -> ascending */
        store_msg_t *t = p->v[i];
        p->v[i] = p->v[p->n - 1 - i];
        p->v[p->n - 1 - i] = t;
    }
    *out = p->v;
    *n = p->n;
    *more = p->more;
    p->v = NULL;
    p->n = p->cap = 0;
    return 0;
}

void store_page_drop(store_page_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        store_msg_unref(p->v[i]);
    free(p->v);
    p->v = NULL;
    p->n = p->cap = 0;
}

static int64_t store__activity(const store_chat_t *c)
{
    return c->last_msg ? c->last_msg->ts : c->created_at;
}

/* Newest activity first; ties by id so the order is stable across calls. */
static int store__cmp_activity(const void *a, const void *b)
{
    const store_chat_t *x = *(store_chat_t *const *)a, *y = *(store_chat_t *const *)b;
    int64_t ax = store__activity(x), ay = store__activity(y);
    if (ax != ay)
        return ax > ay ? -1 : 1;
    return strcmp(x->id, y->id);
}

void store_chats_sort(store_chat_t **v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), store__cmp_activity);
}
