/* store_contract.c - what every store backend must do, checked through the
 * store_* wrappers of store.h only, so the same suite runs against SQLite
 * now and MongoDB later. Each backend's test includes this file and calls
 * store_contract_run(uri) (tests/unit/persistence/lite_test.c).
 *
 * Ids of rooms and users carry a per-run tag, and every check looks only at
 * records this run wrote, so the suite also runs against a database that
 * already holds data (a shared MongoDB, a reused file).
 *
 * Thread: the test's main thread; the store is a one-thread object.
 */
#include <jansson.h>

#include "persistence/store.h"
#include "src/err.h"
#include "tests/support/check.h"

#include <ctype.h>
#include <stdbool.h>
#include <unistd.h>

#define CONTRACT_BIG_BYTES 10000        /* body of each message in the byte-cap room */
#define CONTRACT_MAX_BODY 65536         /* protocol.md §4: the largest body */
#define CONTRACT_TS0 INT64_C(1700000000000)

typedef struct {
    const char *uri;
    store_t *s;
    char room_a[64], room_b[64], room_c[64], room_d[64], room_big[64], room_uni[64];
    char u1[64], u2[64], u3[64], u4[64];
    char missing[64];
    char id_a[7][STORE_OID_LEN + 1];    /* stored ids of room A, seq 1..7 at [seq-1] */
} contract_t;

static bool contract_is_oid(const char *id)
{
    if (strlen(id) != STORE_OID_LEN)
        return false;
    for (size_t i = 0; i < STORE_OID_LEN; i++)
        if (!isxdigit((unsigned char)id[i]))
            return false;
    return true;
}

static store_msg_t *contract_msg(const char *room, const char *sender, const char *temp,
                                 int64_t seq, int64_t ts_off, const char *body)
{
    store_msg_t *m = store_msg_new(room, sender, "Name of sender", temp, STORE_MSG_TEXT, body,
                                   strlen(body), seq, 0, CONTRACT_TS0 + ts_off);
    if (!m) {
        fprintf(stderr, "store_msg_new: out of memory\n");
        exit(1);
    }
    return m;
}

static void contract_unref_all(store_msg_t **m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_msg_unref(m[i]);
}

static void contract_free_page(store_msg_t **m, size_t n)
{
    contract_unref_all(m, n);
    free(m);
}

/* contract_seqs compares a page's seqs with want[0..n_want). */
static void contract_seqs(store_msg_t **m, size_t n, const int64_t *want, size_t n_want)
{
    CHECK_EQ_INT(n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++)
        CHECK_EQ_INT(m[i]->seq, want[i]);
}

static void contract_since(contract_t *ct, const char *room, int64_t since, size_t limit,
                           size_t max_bytes, const int64_t *want, size_t n_want, bool more_want)
{
    store_msg_t **m = NULL;
    size_t n = 0;
    bool more = !more_want;
    CHECK_EQ_INT(store_messages_since(ct->s, room, since, limit, max_bytes, &m, &n, &more), 0);
    contract_seqs(m, n, want, n_want);
    CHECK_EQ_INT(more, more_want);
    contract_free_page(m, n);
}

static void contract_before(contract_t *ct, const char *room, int64_t before, size_t limit,
                            size_t max_bytes, const int64_t *want, size_t n_want, bool more_want)
{
    store_msg_t **m = NULL;
    size_t n = 0;
    bool more = !more_want;
    CHECK_EQ_INT(store_messages_before(ct->s, room, before, limit, max_bytes, &m, &n, &more), 0);
    contract_seqs(m, n, want, n_want);
    CHECK_EQ_INT(more, more_want);
    contract_free_page(m, n);
}

#define CONTRACT_SEQS(...) ((const int64_t[]){__VA_ARGS__}), \
    sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)
#define CONTRACT_NONE NULL, 0
#define CONTRACT_NOCAP ((size_t)1 << 30)

static void contract_chat_create(contract_t *ct, const char *id, int type, const char *name,
                                 const char *m0, const char *m1, int64_t created_at)
{
    char *members[2] = {(char *)m0, (char *)m1};
    store_chat_t c = {.type = type, .name = (char *)name, .members = members,
                      .n_members = m1 ? 2 : 1, .created_at = created_at};
    snprintf(c.id, sizeof c.id, "%s", id);
    CHECK_EQ_INT(store_chat_create(ct->s, &c), 0);
}

static bool contract_has_member(const store_chat_t *c, const char *u)
{
    size_t hits = 0;
    for (size_t i = 0; i < c->n_members; i++)
        hits += strcmp(c->members[i], u) == 0;
    return hits == 1;
}

static void contract_chats(contract_t *ct)
{
    /* A is created after C but C gets the newer message: chats_for_user
     * must order by the last message, not by createdAt. */
    contract_chat_create(ct, ct->room_a, STORE_CHAT_GROUP, "Room A é", ct->u1, ct->u2, 5000);
    contract_chat_create(ct, ct->room_b, STORE_CHAT_CHANNEL, "", ct->u1, NULL, 2000);
    contract_chat_create(ct, ct->room_c, STORE_CHAT_DIRECT, "", ct->u2, ct->u3, 3000);
    /* D has no messages and the newest createdAt (see contract_for_user). */
    contract_chat_create(ct, ct->room_d, STORE_CHAT_GROUP, "D", ct->u3, NULL, CONTRACT_TS0 + 9999);

    char *one[1] = {ct->u4};
    store_chat_t dup = {.type = STORE_CHAT_CHANNEL, .name = "other", .members = one, .n_members = 1};
    snprintf(dup.id, sizeof dup.id, "%s", ct->room_a);
    CHECK_EQ_INT(store_chat_create(ct->s, &dup), ERR_DUP);

    store_chat_t *c = NULL;
    CHECK_EQ_INT(store_chat_get(ct->s, ct->room_a, &c), 0);
    if (c) {
        CHECK_EQ_STR(c->id, ct->room_a);
        CHECK_EQ_INT(c->type, STORE_CHAT_GROUP);
        CHECK_EQ_STR(c->name, "Room A é");
        CHECK_EQ_INT(c->n_members, 2);
        CHECK(contract_has_member(c, ct->u1) && contract_has_member(c, ct->u2));
        CHECK(!contract_has_member(c, ct->u4));   /* the refused duplicate left no trace */
        CHECK_EQ_INT(c->created_at, 5000);
        CHECK_EQ_INT(c->last_seq, 0);
        store_chat_free(c);
    }
    c = NULL;
    CHECK_EQ_INT(store_chat_get(ct->s, ct->room_c, &c), 0);
    if (c) {
        CHECK_EQ_INT(c->type, STORE_CHAT_DIRECT);
        CHECK_EQ_STR(c->name, "");
        store_chat_free(c);
    }
    c = (store_chat_t *)1;
    CHECK_EQ_INT(store_chat_get(ct->s, ct->missing, &c), ERR_NOT_FOUND);
    CHECK(c == NULL);
}

/* Batch 1: rooms A and B interleaved, with a duplicate (senderId, tempId)
 * and a taken (roomId, seq) inside the batch. */
static void contract_insert(contract_t *ct)
{
    store_msg_t *m[10] = {
        contract_msg(ct->room_a, ct->u1, "a1", 1, 1, "hello"),
        contract_msg(ct->room_b, ct->u1, "b1", 1, 2, "in b"),
        contract_msg(ct->room_a, ct->u2, "a2", 2, 3, "second"),
        store_msg_new(ct->room_a, ct->u1, "Name of sender", "a3", STORE_MSG_IMAGE,
                      "https://x/y.png", 15, 3, 1, CONTRACT_TS0 + 4),
        contract_msg(ct->room_b, ct->u2, "b2", 2, 5, "b two"),
        contract_msg(ct->room_a, ct->u1, "a4", 4, 6, "four"),
        contract_msg(ct->room_a, ct->u2, "dup1", 5, 7, "five"),
        contract_msg(ct->room_a, ct->u2, "dup1", 6, 8, "resent five"),   /* dup of [6] */
        contract_msg(ct->room_a, ct->u3, "x1", 2, 9, "seq 2 is taken"),  /* conflict with [2] */
        contract_msg(ct->room_a, ct->u1, "a6", 6, 10, "six"),
    };
    store_result_t r[10];
    memset(r, 0x55, sizeof r);
    CHECK_EQ_INT(store_insert_batch(ct->s, m, 10, r), 0);
    for (size_t i = 0; i < 10; i++) {
        if (i == 7) {
            CHECK_EQ_INT(r[i].status, ERR_DUP);
            CHECK_EQ_STR(r[i].id, r[6].id);
            CHECK_EQ_INT(r[i].seq, 5);
            CHECK_EQ_STR(r[i].room_id, ct->room_a);   /* which room holds the stored one */
        } else if (i == 8) {
            CHECK_EQ_INT(r[i].status, ERR_STORE_FATAL);
        } else {
            CHECK_EQ_INT(r[i].status, 0);
            CHECK(contract_is_oid(r[i].id));
            CHECK_EQ_INT(r[i].seq, m[i]->seq);
            CHECK_EQ_STR(m[i]->id, "");   /* store.h: shared messages are never written */
        }
    }
    for (size_t i = 0; i < 10; i++)
        for (size_t j = i + 1; j < 10; j++)
            if (r[i].status == 0 && r[j].status == 0)
                CHECK(strcmp(r[i].id, r[j].id) != 0);
    const size_t a_idx[] = {0, 2, 3, 5, 6, 9}, a_seq[] = {1, 2, 3, 4, 5, 6};
    for (size_t i = 0; i < 6; i++)
        memcpy(ct->id_a[a_seq[i] - 1], r[a_idx[i]].id, sizeof ct->id_a[0]);
    contract_unref_all(m, 10);

    /* Batch 2: duplicates of batch 1 decided the same way across batches. */
    store_msg_t *m2[4] = {
        contract_msg(ct->room_a, ct->u1, "a1", 77, 11, "hello again"),   /* dup of a1 */
        contract_msg(ct->room_a, ct->u3, "x2", 3, 12, "seq 3 is taken"),
        contract_msg(ct->room_a, ct->u3, "a7", 7, 13, "seven"),
        contract_msg(ct->room_c, ct->u3, "c1", 1, 20, "hi u2"),
    };
    store_result_t r2[4];
    CHECK_EQ_INT(store_insert_batch(ct->s, m2, 4, r2), 0);
    CHECK_EQ_INT(r2[0].status, ERR_DUP);
    CHECK_EQ_STR(r2[0].id, ct->id_a[0]);
    CHECK_EQ_INT(r2[0].seq, 1);
    CHECK_EQ_STR(r2[0].room_id, ct->room_a);
    CHECK_EQ_INT(r2[1].status, ERR_STORE_FATAL);
    CHECK_EQ_INT(r2[2].status, 0);
    CHECK_EQ_INT(r2[3].status, 0);
    CHECK(contract_is_oid(r2[2].id) && contract_is_oid(r2[3].id));
    for (size_t i = 0; i < 6; i++)
        CHECK(strcmp(r2[2].id, ct->id_a[i]) != 0 && strcmp(r2[3].id, ct->id_a[i]) != 0);
    CHECK(strcmp(r2[2].id, r2[3].id) != 0);
    memcpy(ct->id_a[6], r2[2].id, sizeof ct->id_a[0]);
    contract_unref_all(m2, 4);

    /* An empty batch is legal and decides nothing. */
    CHECK_EQ_INT(store_insert_batch(ct->s, NULL, 0, NULL), 0);
}

/* Room A now holds seq 1..7; check contents, then paging both ways. */
static void contract_paging(contract_t *ct)
{
    store_msg_t **m = NULL;
    size_t n = 0;
    bool more = true;
    CHECK_EQ_INT(store_messages_since(ct->s, ct->room_a, 0, 100, CONTRACT_NOCAP, &m, &n, &more), 0);
    CHECK_EQ_INT(n, 7);
    CHECK(!more);
    for (size_t i = 0; i < n && i < 7; i++) {
        CHECK_EQ_INT(m[i]->seq, (int64_t)i + 1);
        CHECK_EQ_STR(m[i]->id, ct->id_a[i]);
        CHECK_EQ_STR(m[i]->room_id, ct->room_a);
        CHECK_EQ_STR(m[i]->sender_name, "Name of sender");
        CHECK(!m[i]->deleted);
        CHECK_EQ_INT(m[i]->edited_at, 0);
    }
    if (n == 7) {
        CHECK_EQ_STR(m[0]->body, "hello");
        CHECK_EQ_INT(m[0]->body_len, 5);
        CHECK_EQ_STR(m[0]->sender_id, ct->u1);
        CHECK_EQ_STR(m[0]->temp_id, "a1");
        CHECK_EQ_INT(m[0]->ts, CONTRACT_TS0 + 1);
        CHECK_EQ_INT(m[0]->type, STORE_MSG_TEXT);
        CHECK_EQ_INT(m[0]->reply_to, 0);
        CHECK_EQ_STR(m[1]->sender_id, ct->u2);
        CHECK_EQ_INT(m[2]->type, STORE_MSG_IMAGE);
        CHECK_EQ_STR(m[2]->body, "https://x/y.png");
        CHECK_EQ_INT(m[2]->reply_to, 1);
        CHECK_EQ_STR(m[4]->body, "five");       /* the first of the duplicates won */
        CHECK_EQ_STR(m[5]->body, "six");
        CHECK_EQ_STR(m[6]->sender_id, ct->u3);
    }
    contract_free_page(m, n);

    contract_since(ct, ct->room_a, 0, 3, CONTRACT_NOCAP, CONTRACT_SEQS(5, 6, 7), true);
    contract_since(ct, ct->room_a, 4, 10, CONTRACT_NOCAP, CONTRACT_SEQS(5, 6, 7), false);
    contract_since(ct, ct->room_a, 4, 3, CONTRACT_NOCAP, CONTRACT_SEQS(5, 6, 7), false);
    contract_since(ct, ct->room_a, 4, 2, CONTRACT_NOCAP, CONTRACT_SEQS(6, 7), true);
    contract_since(ct, ct->room_a, 7, 10, CONTRACT_NOCAP, CONTRACT_NONE, false);
    contract_since(ct, ct->room_b, 0, 10, CONTRACT_NOCAP, CONTRACT_SEQS(1, 2), false);
    contract_since(ct, ct->missing, 0, 10, CONTRACT_NOCAP, CONTRACT_NONE, false);

    contract_before(ct, ct->room_a, 0, 3, CONTRACT_NOCAP, CONTRACT_SEQS(5, 6, 7), true);
    contract_before(ct, ct->room_a, -1, 100, CONTRACT_NOCAP, CONTRACT_SEQS(1, 2, 3, 4, 5, 6, 7), false);
    contract_before(ct, ct->room_a, 5, 10, CONTRACT_NOCAP, CONTRACT_SEQS(1, 2, 3, 4), false);
    contract_before(ct, ct->room_a, 5, 2, CONTRACT_NOCAP, CONTRACT_SEQS(3, 4), true);
    contract_before(ct, ct->room_a, 3, 2, CONTRACT_NOCAP, CONTRACT_SEQS(1, 2), false);
    contract_before(ct, ct->room_a, 2, 10, CONTRACT_NOCAP, CONTRACT_SEQS(1), false);
    contract_before(ct, ct->room_a, 1, 10, CONTRACT_NOCAP, CONTRACT_NONE, false);
    contract_before(ct, ct->missing, 0, 10, CONTRACT_NOCAP, CONTRACT_NONE, false);
}

/* Six messages of CONTRACT_BIG_BYTES: the byte cap keeps the newest that
 * fit, but always one, and reports the rest with more. */
static void contract_byte_cap(contract_t *ct)
{
    char *body = malloc(CONTRACT_BIG_BYTES + 1);
    if (!body)
        exit(1);
    for (size_t i = 0; i < CONTRACT_BIG_BYTES; i++)
        body[i] = i % 50 == 0 ? '"' : (char)('a' + i % 26);   /* quotes cost an escape */
    body[CONTRACT_BIG_BYTES] = '\0';
    store_msg_t *m[6];
    store_result_t r[6];
    for (int i = 0; i < 6; i++) {
        char temp[16];
        snprintf(temp, sizeof temp, "big%d", i);
        m[i] = contract_msg(ct->room_big, ct->u1, temp, i + 1, 30 + i, body);
    }
    size_t est = store_msg_size_estimate(m[0]);
    CHECK(est >= CONTRACT_BIG_BYTES + CONTRACT_BIG_BYTES / 50);
    CHECK_EQ_INT(store_insert_batch(ct->s, m, 6, r), 0);
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(r[i].status, 0);
    contract_unref_all(m, 6);
    free(body);

    size_t cap = est * 2 + est / 2;
    contract_since(ct, ct->room_big, 0, 100, cap, CONTRACT_SEQS(5, 6), true);
    contract_since(ct, ct->room_big, 0, 100, est * 2, CONTRACT_SEQS(5, 6), true);
    contract_since(ct, ct->room_big, 0, 100, 1, CONTRACT_SEQS(6), true);
    contract_since(ct, ct->room_big, 5, 100, 1, CONTRACT_SEQS(6), false);
    contract_since(ct, ct->room_big, 0, 100, est * 6, CONTRACT_SEQS(1, 2, 3, 4, 5, 6), false);
    contract_before(ct, ct->room_big, 0, 100, cap, CONTRACT_SEQS(5, 6), true);
    contract_before(ct, ct->room_big, 5, 100, cap, CONTRACT_SEQS(3, 4), true);
    contract_before(ct, ct->room_big, 3, 100, cap, CONTRACT_SEQS(1, 2), false);
    contract_before(ct, ct->room_big, 0, 1, cap, CONTRACT_SEQS(6), true);
}

static void contract_check_body(contract_t *ct, int64_t seq, const char *body, size_t len)
{
    store_msg_t **m = NULL;
    size_t n = 0;
    bool more;
    CHECK_EQ_INT(store_messages_before(ct->s, ct->room_uni, seq + 1, 1, CONTRACT_NOCAP, &m, &n, &more), 0);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_EQ_INT(m[0]->seq, seq);
        CHECK_EQ_INT(m[0]->body_len, len);
        if (m[0]->body_len == len)
            CHECK_MEM(m[0]->body, body, len);
        CHECK(m[0]->body[m[0]->body_len] == '\0');
        CHECK_EQ_STR(m[0]->sender_name, "Zoë 😀");
    }
    contract_free_page(m, n);
}

/* contract_big_body returns a malloc'd body of exactly CONTRACT_MAX_BODY
 * bytes of valid UTF-8 with 2- and 4-byte sequences. */
static char *contract_big_body(void)
{
    static const char unit[] = "é😀a";   /* 2 + 4 + 1 bytes */
    char *big = malloc(CONTRACT_MAX_BODY + 1);
    if (!big)
        exit(1);
    size_t len = 0;
    while (len + sizeof unit - 1 <= CONTRACT_MAX_BODY) {
        memcpy(big + len, unit, sizeof unit - 1);
        len += sizeof unit - 1;
    }
    while (len < CONTRACT_MAX_BODY)
        big[len++] = 'z';
    big[len] = '\0';
    return big;
}

static void contract_unicode(contract_t *ct)
{
    static const char small[] = "héllo é😀 \"quoted\" back\\slash\nnew line\ttab";
    char *big = contract_big_body();

    store_msg_t *m[2] = {
        store_msg_new(ct->room_uni, ct->u2, "Zoë 😀", "u1", STORE_MSG_TEXT, small,
                      sizeof small - 1, 1, 0, CONTRACT_TS0 + 40),
        store_msg_new(ct->room_uni, ct->u2, "Zoë 😀", "u2", STORE_MSG_TEXT, big,
                      CONTRACT_MAX_BODY, 2, 1, CONTRACT_TS0 + 41),
    };
    store_result_t r[2];
    if (!m[0] || !m[1])
        exit(1);
    CHECK_EQ_INT(store_insert_batch(ct->s, m, 2, r), 0);
    CHECK_EQ_INT(r[0].status, 0);
    CHECK_EQ_INT(r[1].status, 0);
    contract_unref_all(m, 2);
    contract_check_body(ct, 1, small, sizeof small - 1);
    contract_check_body(ct, 2, big, CONTRACT_MAX_BODY);
    free(big);
}

typedef struct {
    contract_t *ct;
    int seen;               /* chats of this run */
    int calls;
    int stop_after;         /* return 1 from this call on; 0: never */
} contract_all_t;

static int contract_on_chat(void *ud, store_chat_t *c)
{
    contract_all_t *a = ud;
    contract_t *ct = a->ct;
    a->calls++;
    int64_t want = -1;
    if (strcmp(c->id, ct->room_a) == 0)
        want = 7;
    else if (strcmp(c->id, ct->room_b) == 0)
        want = 2;
    else if (strcmp(c->id, ct->room_c) == 0)
        want = 1;
    else if (strcmp(c->id, ct->room_d) == 0)
        want = 0;
    if (want >= 0) {
        a->seen++;
        CHECK_EQ_INT(c->last_seq, want);
        CHECK(c->n_members >= 1);
    }
    store_chat_free(c);   /* ownership came with the call */
    return a->stop_after && a->calls >= a->stop_after;
}

static void contract_all(contract_t *ct)
{
    contract_all_t a = {.ct = ct};
    CHECK_EQ_INT(store_chats_all(ct->s, contract_on_chat, &a), 0);
    CHECK_EQ_INT(a.seen, 4);
    contract_all_t stop = {.ct = ct, .stop_after = 1};
    CHECK(store_chats_all(ct->s, contract_on_chat, &stop) != 0);
    CHECK_EQ_INT(stop.calls, 1);
}

static void contract_free_chats(store_chat_t **c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_chat_free(c[i]);
    free(c);
}

/* contract_unread returns the unread count of room in user's chat list
 * (-1 when the room is not listed). */
static int64_t contract_unread(contract_t *ct, const char *user, const char *room)
{
    store_chat_t **c = NULL;
    size_t n = 0;
    int64_t unread = -1;
    CHECK_EQ_INT(store_chats_for_user(ct->s, user, &c, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i]->id, room) == 0)
            unread = c[i]->unread;
    contract_free_chats(c, n);
    return unread;
}

static void contract_for_user(contract_t *ct)
{
    /* u2 is in A (created later, messages up to ts +13) and C (one message
     * at ts +20): C has the newer activity. Unread counts others' messages: A has
     * seq 1, 3, 4, 6 (u1) and 7 (u3). */
    store_chat_t **c = NULL;
    size_t n = 0;
    CHECK_EQ_INT(store_chats_for_user(ct->s, ct->u2, &c, &n), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_STR(c[0]->id, ct->room_c);
        CHECK_EQ_STR(c[1]->id, ct->room_a);
        CHECK_EQ_INT(c[0]->unread, 1);
        CHECK_EQ_INT(c[1]->unread, 5);
        CHECK_EQ_INT(c[1]->last_seq, 7);
        CHECK(c[0]->last_msg && c[1]->last_msg);
        if (c[1]->last_msg) {
            CHECK_EQ_INT(c[1]->last_msg->seq, 7);
            CHECK_EQ_STR(c[1]->last_msg->body, "seven");
            CHECK_EQ_STR(c[1]->last_msg->id, ct->id_a[6]);
        }
        CHECK(contract_has_member(c[1], ct->u1) && contract_has_member(c[1], ct->u2));

        store_chat_t *d = store_chat_dup(c[1]);
        CHECK(d != NULL);
        if (d) {
            CHECK_EQ_STR(d->id, c[1]->id);
            CHECK_EQ_STR(d->name, c[1]->name);
            CHECK_EQ_INT(d->n_members, c[1]->n_members);
            CHECK(d->members != c[1]->members);
            CHECK(d->last_msg == c[1]->last_msg);
            CHECK_EQ_INT(d->unread, 5);
        }
        contract_free_chats(c, n);
        store_chat_free(d);   /* last_msg still alive here: dup took a reference */
    } else {
        contract_free_chats(c, n);
    }

    /* u3 is in C (message at ts +20) and D (no messages, created at +9999):
     * D's creation is the newer activity. */
    c = NULL;
    CHECK_EQ_INT(store_chats_for_user(ct->s, ct->u3, &c, &n), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_STR(c[0]->id, ct->room_d);
        CHECK(c[0]->last_msg == NULL);
        CHECK_EQ_INT(c[0]->unread, 0);
        CHECK_EQ_STR(c[1]->id, ct->room_c);
        CHECK_EQ_INT(c[1]->unread, 0);   /* u3 wrote the only message */
    }
    contract_free_chats(c, n);

    c = (store_chat_t **)1;
    CHECK_EQ_INT(store_chats_for_user(ct->s, ct->u4, &c, &n), 0);
    CHECK_EQ_INT(n, 0);
    free(c);
}

static void contract_markers(contract_t *ct)
{
    int64_t seq = -1;
    CHECK_EQ_INT(store_read_marker_get(ct->s, ct->room_a, ct->u2, &seq), 0);
    CHECK_EQ_INT(seq, 0);
    CHECK_EQ_INT(store_read_marker_set(ct->s, ct->room_a, ct->u2, 4), 0);
    CHECK_EQ_INT(store_read_marker_get(ct->s, ct->room_a, ct->u2, &seq), 0);
    CHECK_EQ_INT(seq, 4);
    CHECK_EQ_INT(contract_unread(ct, ct->u2, ct->room_a), 2);   /* seq 6 and 7 */
    CHECK_EQ_INT(store_read_marker_set(ct->s, ct->room_a, ct->u2, 2), 0);   /* never backwards */
    CHECK_EQ_INT(store_read_marker_get(ct->s, ct->room_a, ct->u2, &seq), 0);
    CHECK_EQ_INT(seq, 4);
    CHECK_EQ_INT(contract_unread(ct, ct->u2, ct->room_a), 2);
    CHECK_EQ_INT(store_read_marker_set(ct->s, ct->room_a, ct->u2, 4), 0);
    CHECK_EQ_INT(store_read_marker_get(ct->s, ct->room_a, ct->u1, &seq), 0);
    CHECK_EQ_INT(seq, 0);   /* markers are per user */
    CHECK_EQ_INT(store_read_marker_get(ct->s, ct->room_b, ct->u2, &seq), 0);
    CHECK_EQ_INT(seq, 0);   /* and per room */
    CHECK_EQ_INT(store_read_marker_set(ct->s, ct->room_c, ct->u2, 1), 0);
    CHECK_EQ_INT(contract_unread(ct, ct->u2, ct->room_c), 0);
}

static void contract_members(contract_t *ct)
{
    store_chat_t *c = NULL;
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(store_chat_add_member(ct->s, ct->room_a, ct->u4), 0);
    CHECK_EQ_INT(store_chat_get(ct->s, ct->room_a, &c), 0);
    if (c) {
        CHECK_EQ_INT(c->n_members, 3);
        CHECK(contract_has_member(c, ct->u4));
        CHECK(contract_has_member(c, ct->u1) && contract_has_member(c, ct->u2));
        store_chat_free(c);
    }
    CHECK_EQ_INT(contract_unread(ct, ct->u4, ct->room_a), 7);   /* a new member has read nothing */

    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(store_chat_remove_member(ct->s, ct->room_a, ct->u4), 0);
    c = NULL;
    CHECK_EQ_INT(store_chat_get(ct->s, ct->room_a, &c), 0);
    if (c) {
        CHECK_EQ_INT(c->n_members, 2);
        CHECK(!contract_has_member(c, ct->u4));
        store_chat_free(c);
    }
    CHECK_EQ_INT(contract_unread(ct, ct->u4, ct->room_a), -1);

    CHECK_EQ_INT(store_chat_add_member(ct->s, ct->missing, ct->u4), ERR_NOT_FOUND);
    CHECK_EQ_INT(store_chat_remove_member(ct->s, ct->missing, ct->u4), ERR_NOT_FOUND);
}

/* After close and open, everything above is still there, and a resend is
 * still recognised (the unique index survived too). */
static void contract_reopen(contract_t *ct)
{
    char err[256] = "";
    store_close(ct->s);
    ct->s = NULL;
    CHECK_EQ_INT(store_open(ct->uri, &ct->s, err, sizeof err), 0);
    if (!ct->s) {
        fprintf(stderr, "reopen %s: %s\n", ct->uri, err);
        return;
    }
    CHECK_EQ_INT(store_ping(ct->s), 0);
    store_chat_t *c = NULL;
    CHECK_EQ_INT(store_chat_get(ct->s, ct->room_a, &c), 0);
    if (c) {
        CHECK_EQ_STR(c->name, "Room A é");
        CHECK_EQ_INT(c->n_members, 2);
        CHECK_EQ_INT(c->last_seq, 7);
        store_chat_free(c);
    }
    store_msg_t **m = NULL;
    size_t n = 0;
    bool more = true;
    CHECK_EQ_INT(store_messages_since(ct->s, ct->room_a, 0, 100, CONTRACT_NOCAP, &m, &n, &more), 0);
    CHECK_EQ_INT(n, 7);
    for (size_t i = 0; i < n && i < 7; i++)
        CHECK_EQ_STR(m[i]->id, ct->id_a[i]);
    contract_free_page(m, n);
    int64_t seq = 0;
    CHECK_EQ_INT(store_read_marker_get(ct->s, ct->room_a, ct->u2, &seq), 0);
    CHECK_EQ_INT(seq, 4);
    CHECK_EQ_INT(contract_unread(ct, ct->u2, ct->room_a), 2);
    char *big = contract_big_body();
    contract_check_body(ct, 2, big, CONTRACT_MAX_BODY);
    free(big);
}

/* store_contract_run opens uri and runs the whole suite on it. Returns the
 * number of failed checks (0: the backend honours the contract). */
/* Notifications: add, list oldest first, delete (idempotent), and the
 * broker's 30-day sweep removes only what is older than its cutoff. */
static void contract_notifs(contract_t *ct)
{
    char id_old[STORE_OID_LEN + 1], id_new[STORE_OID_LEN + 1], id_other[STORE_OID_LEN + 1];
    int64_t now = CONTRACT_TS0 + 40LL * 24 * 3600 * 1000;
    CHECK_EQ_INT(store_notif_add(ct->s, ct->u1, "message", "{\"roomId\":\"r\",\"count\":2,\"lastSeq\":7}",
                                 now - STORE_NOTIF_TTL_MS - 1000, id_old), 0);
    CHECK_EQ_INT(store_notif_add(ct->s, ct->u1, "invite", "{\"from\":\"é😀\"}", now - 1000, id_new), 0);
    CHECK_EQ_INT(store_notif_add(ct->s, ct->u2, "invite", "{}", now - STORE_NOTIF_TTL_MS - 5, id_other), 0);
    CHECK(contract_is_oid(id_old) && contract_is_oid(id_new) && strcmp(id_old, id_new) != 0);
    char junk[STORE_OID_LEN + 1];
    CHECK_EQ_INT(store_notif_add(ct->s, ct->u1, "x", "[1,2]", now, junk), ERR_STORE_FATAL);
    store_notif_t **v = NULL;
    size_t n = 0;
    CHECK_EQ_INT(store_notif_list(ct->s, ct->u1, &v, &n), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_STR(v[0]->id, id_old);
        CHECK_EQ_STR(v[0]->kind, "message");
        CHECK_EQ_INT(v[0]->ts, now - STORE_NOTIF_TTL_MS - 1000);
        json_t *d = json_loads(v[0]->data, 0, NULL);
        CHECK(json_integer_value(json_object_get(d, "lastSeq")) == 7);
        json_decref(d);
        d = json_loads(v[1]->data, 0, NULL);
        CHECK_EQ_STR(json_string_value(json_object_get(d, "from")), "é😀");
        json_decref(d);
    }
    for (size_t i = 0; i < n; i++)
        store_notif_free(v[i]);
    free(v);
    uint64_t removed = 99;
    CHECK_EQ_INT(store_notif_sweep(ct->s, now - STORE_NOTIF_TTL_MS, &removed), 0);
    CHECK_EQ_INT(removed, 2);   /* u1's old one and u2's */
    CHECK_EQ_INT(store_notif_list(ct->s, ct->u1, &v, &n), 0);
    CHECK_EQ_INT(n, 1);
    if (n == 1)
        CHECK_EQ_STR(v[0]->id, id_new);
    for (size_t i = 0; i < n; i++)
        store_notif_free(v[i]);
    free(v);
    CHECK_EQ_INT(store_notif_delete(ct->s, id_new), 0);
    CHECK_EQ_INT(store_notif_delete(ct->s, id_new), 0);
    CHECK_EQ_INT(store_notif_list(ct->s, ct->u1, &v, &n), 0);
    CHECK_EQ_INT(n, 0);
    free(v);
}

int store_contract_run(const char *uri)
{
    int failures_before = check__failures;
    contract_t ct = {.uri = uri};
    /* The run counter keeps two runs in one process and one second apart. */
    static int runs;
    char tag[48];
    snprintf(tag, sizeof tag, "t%ld.%ld.%d", (long)getpid(), (long)time(NULL), ++runs);
    snprintf(ct.room_a, sizeof ct.room_a, "%s.roomA", tag);
    snprintf(ct.room_b, sizeof ct.room_b, "%s.roomB", tag);
    snprintf(ct.room_c, sizeof ct.room_c, "%s.roomC", tag);
    snprintf(ct.room_d, sizeof ct.room_d, "%s.roomD", tag);
    snprintf(ct.room_big, sizeof ct.room_big, "%s.big", tag);
    snprintf(ct.room_uni, sizeof ct.room_uni, "%s.uni", tag);
    snprintf(ct.u1, sizeof ct.u1, "%s.u1", tag);
    snprintf(ct.u2, sizeof ct.u2, "%s.u2", tag);
    snprintf(ct.u3, sizeof ct.u3, "%s.u3", tag);
    snprintf(ct.u4, sizeof ct.u4, "%s.u4", tag);
    snprintf(ct.missing, sizeof ct.missing, "%s.missing", tag);
    fprintf(stderr, "store contract: %s, tag %s\n", uri, tag);

    char err[256] = "";
    CHECK_EQ_INT(store_open(uri, &ct.s, err, sizeof err), 0);
    if (!ct.s) {
        fprintf(stderr, "store_open %s: %s\n", uri, err);
        return check__failures - failures_before;
    }
    CHECK_EQ_INT(store_ping(ct.s), 0);
    contract_chats(&ct);
    contract_insert(&ct);
    contract_paging(&ct);
    contract_byte_cap(&ct);
    contract_unicode(&ct);
    contract_all(&ct);
    contract_for_user(&ct);
    contract_markers(&ct);
    contract_members(&ct);
    contract_notifs(&ct);
    contract_reopen(&ct);
    store_close(ct.s);
    return check__failures - failures_before;
}
