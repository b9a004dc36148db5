/* store.h - the store interface every backend implements (SQLite now,
 * MongoDB next), and the records that cross it.
 *
 * Called only by the persistence threads (the writer and the reader each
 * open their own store_t; a store_t is a one-thread object). Never called
 * from shard code.
 *
 * Records (protocol.md §4, §11):
 *   store_msg_t   an immutable chat message, reference counted (atomic: it is
 *                 created on a shard, read by the writer thread, released by
 *                 either). All strings are NUL-terminated and live in the
 *                 same allocation.
 *   store_chat_t  a chat (room) with its members; plain malloc'd, owned by
 *                 whoever holds the pointer.
 */
#ifndef RC_STORE_H
#define RC_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_ID_MAX 128     /* userId / roomId bytes              */
#define STORE_TEMPID_MAX 64
#define STORE_OID_LEN 24     /* ObjectId as hex                    */

enum { STORE_MSG_TEXT = 0, STORE_MSG_IMAGE = 1 };
enum { STORE_CHAT_DIRECT = 0, STORE_CHAT_GROUP = 1, STORE_CHAT_CHANNEL = 2 };

typedef struct store_msg {
    _Atomic uint32_t refs;
    uint8_t type;            /* STORE_MSG_*                                  */
    bool deleted;
    int64_t seq;             /* per-room, >= 1                               */
    int64_t reply_to;        /* seq, 0 when absent                           */
    int64_t ts;              /* ms since the epoch                           */
    int64_t edited_at;       /* ms, 0 when never edited                      */
    char id[STORE_OID_LEN + 1]; /* set only on messages read from the store
                                   (reader thread, before they are shared);
                                   a new message's id travels in its
                                   store_result_t, never written here        */
    const char *room_id;
    const char *sender_id;
    const char *sender_name;
    const char *temp_id;
    const char *body;        /* UTF-8, body_len bytes (+ NUL)                */
    uint32_t body_len;
    char strings[];          /* storage for the strings above                */
} store_msg_t;

/* store_msg_new copies the strings into one allocation; refs = 1.
 * Returns NULL on allocation failure. */
store_msg_t *store_msg_new(const char *room_id, const char *sender_id, const char *sender_name,
                           const char *temp_id, int type, const char *body, size_t body_len,
                           int64_t seq, int64_t reply_to, int64_t ts);
store_msg_t *store_msg_ref(store_msg_t *m);
void store_msg_unref(store_msg_t *m);

typedef struct {
    char id[STORE_ID_MAX + 1];
    int type;                /* STORE_CHAT_*                                 */
    char *name;              /* malloc'd, "" when none                       */
    char **members;          /* malloc'd array of malloc'd user ids          */
    size_t n_members;
    int64_t created_at;      /* ms                                           */
    int64_t last_seq;        /* highest stored seq (from messages)           */
    /* Per-user view, filled by store_chats_for_user only: */
    int64_t unread;          /* messages from others, not deleted, above the user's read marker */
    store_msg_t *last_msg;   /* newest message or NULL (owned reference)     */
} store_chat_t;

void store_chat_free(store_chat_t *c);
/* store_chat_dup deep-copies (last_msg gains a reference). NULL on ENOMEM. */
store_chat_t *store_chat_dup(const store_chat_t *c);
/* store_chats_sort orders a user's chats as chats_for_user returns them:
 * newest activity (last message, else creation) first, ties by id. */
void store_chats_sort(store_chat_t **v, size_t n);
const char *store_chat_type_name(int type);   /* "direct" | "group" | "channel" */
int store_chat_type_parse(const char *s);     /* STORE_CHAT_* or -1 */
const char *store_msg_type_name(int type);    /* "text" | "image" */
int store_msg_type_parse(const char *s);      /* STORE_MSG_* or -1 */

/* A stored notification (protocol.md §7, §11): for a user who was
 * offline; removed once delivered or after 30 days. */
typedef struct {
    char id[STORE_OID_LEN + 1];
    char *kind;                  /* malloc'd                                   */
    char *data;                  /* malloc'd JSON text of the data object      */
    int64_t ts;                  /* ms                                         */
} store_notif_t;

void store_notif_free(store_notif_t *n);

#define STORE_NOTIF_TTL_MS (30LL * 24 * 3600 * 1000)

typedef struct store store_t;

/* Per-message outcome of store_insert_batch. */
typedef struct {
    int status;                  /* 0 stored; ERR_DUP: (senderId, tempId) was
                                    already stored, id/seq are the stored ones;
                                    ERR_STORE_FATAL: refused for this message
                                    (e.g. {roomId, seq} taken by another) */
    char id[STORE_OID_LEN + 1];  /* the stored document's id                 */
    int64_t seq;                 /* the stored document's seq                */
    char room_id[STORE_ID_MAX + 1]; /* ERR_DUP: the stored document's roomId;
                                    with seq it tells a resend of this very
                                    message from a tempId reused for another */
} store_result_t;

typedef struct {
    const char *name;   /* "sqlite", "mongodb" */
    int (*insert_batch)(store_t *s, store_msg_t *const *msgs, size_t n, store_result_t *res);
    int (*messages_since)(store_t *s, const char *room_id, int64_t since_seq, size_t limit,
                          size_t max_bytes, store_msg_t ***out, size_t *n, bool *more);
    int (*messages_before)(store_t *s, const char *room_id, int64_t before_seq, size_t limit,
                           size_t max_bytes, store_msg_t ***out, size_t *n, bool *more);
    int (*chat_create)(store_t *s, const store_chat_t *c);
    int (*chat_get)(store_t *s, const char *id, store_chat_t **out);
    int (*chats_all)(store_t *s, int (*each)(void *ud, store_chat_t *c), void *ud);
    int (*chats_for_user)(store_t *s, const char *user_id, store_chat_t ***out, size_t *n);
    int (*chat_add_member)(store_t *s, const char *chat_id, const char *user_id);
    int (*chat_remove_member)(store_t *s, const char *chat_id, const char *user_id);
    int (*read_marker_set)(store_t *s, const char *room_id, const char *user_id, int64_t seq);
    int (*read_marker_get)(store_t *s, const char *room_id, const char *user_id, int64_t *seq);
    int (*notif_add)(store_t *s, const char *user_id, const char *kind, const char *data_json, int64_t ts,
                     char id_out[STORE_OID_LEN + 1]);
    int (*notif_list)(store_t *s, const char *user_id, store_notif_t ***out, size_t *n);
    int (*notif_delete)(store_t *s, const char *id);
    int (*notif_sweep)(store_t *s, int64_t before_ts, uint64_t *removed);
    int (*ping)(store_t *s);
    void (*close)(store_t *s);
} store_ops_t;

struct store {
    const store_ops_t *ops;
};

/* store_open picks the backend from the URI: "sqlite:PATH" (the directory of
 * PATH is created if missing) or "mongodb://..." (issue 3). Returns 0 and
 * *out, or ERR_CONFIG (unknown scheme, with a reason in err) or ERR_STORE
 * (could not open; reason in err). */
int store_open(const char *uri, store_t **out, char *err, size_t errlen);
/* store_uri_check validates the scheme only (for config parsing). */
int store_uri_check(const char *uri, char *err, size_t errlen);

/* The operations (wrappers over ops). Common return values: 0 success;
 * ERR_STORE a transient failure (retry later); ERR_STORE_FATAL permanent;
 * -ENOMEM.
 *
 * store_insert_batch: inserts the n messages in one transaction (SQLite) or
 *   one unordered bulk write (MongoDB); assigns each new document an
 *   ObjectId. A duplicate (senderId, tempId) is not an error: res[i].status =
 *   ERR_DUP with the stored id and seq. Returns 0 when every res[i] is
 *   decided, ERR_STORE if nothing was committed (retry the whole batch).
 * store_messages_since: the newest `limit` messages with seq > since_seq,
 *   ascending, cut further so their estimated encoded size stays within
 *   max_bytes (at least one message is returned if any exists); *more = true
 *   when older messages with seq > since_seq were left out. *out is a
 *   malloc'd array of references (free each with store_msg_unref, then
 *   free the array).
 * store_messages_before: the newest `limit` messages with seq < before_seq
 *   (before_seq <= 0: no bound), ascending, same size cut; *more = true when
 *   messages below the first returned remain.
 * store_chat_create: ERR_DUP if the id exists.
 * store_chat_get: ERR_NOT_FOUND if absent.
 * store_chats_all: calls each() for every chat (ownership of c passes to
 *   each()); last_seq is the highest stored seq. Stops at a non-zero return.
 * store_chats_for_user: the chats with user_id as a member, newest activity
 *   first, with unread and last_msg filled.
 * store_read_marker_set: never moves a marker backwards.
 * store_read_marker_get: 0 when no marker exists (and returns 0).
 */
static inline int store_insert_batch(store_t *s, store_msg_t *const *m, size_t n, store_result_t *r)
{ return s->ops->insert_batch(s, m, n, r); }
static inline int store_messages_since(store_t *s, const char *room, int64_t since, size_t limit,
                                       size_t max_bytes, store_msg_t ***out, size_t *n, bool *more)
{ return s->ops->messages_since(s, room, since, limit, max_bytes, out, n, more); }
static inline int store_messages_before(store_t *s, const char *room, int64_t before, size_t limit,
                                        size_t max_bytes, store_msg_t ***out, size_t *n, bool *more)
{ return s->ops->messages_before(s, room, before, limit, max_bytes, out, n, more); }
static inline int store_chat_create(store_t *s, const store_chat_t *c) { return s->ops->chat_create(s, c); }
static inline int store_chat_get(store_t *s, const char *id, store_chat_t **out) { return s->ops->chat_get(s, id, out); }
static inline int store_chats_all(store_t *s, int (*each)(void *, store_chat_t *), void *ud)
{ return s->ops->chats_all(s, each, ud); }
static inline int store_chats_for_user(store_t *s, const char *u, store_chat_t ***out, size_t *n)
{ return s->ops->chats_for_user(s, u, out, n); }
static inline int store_chat_add_member(store_t *s, const char *c, const char *u) { return s->ops->chat_add_member(s, c, u); }
static inline int store_chat_remove_member(store_t *s, const char *c, const char *u) { return s->ops->chat_remove_member(s, c, u); }
static inline int store_read_marker_set(store_t *s, const char *r, const char *u, int64_t seq)
{ return s->ops->read_marker_set(s, r, u, seq); }
static inline int store_read_marker_get(store_t *s, const char *r, const char *u, int64_t *seq)
{ return s->ops->read_marker_get(s, r, u, seq); }
/* Notifications: notif_add stores one (data_json must be a JSON object;
 * else ERR_STORE_FATAL) and returns its new id; notif_list gives a user's
 * notifications, oldest first (free each with store_notif_free, then the
 * array); notif_delete is idempotent; notif_sweep removes those with
 * ts < before_ts (the broker's own expiry: TTL indexes are not available
 * on every MongoDB-wire server) and counts them. */
static inline int store_notif_add(store_t *s, const char *u, const char *kind, const char *data_json, int64_t ts,
                                  char id_out[STORE_OID_LEN + 1])
{ return s->ops->notif_add(s, u, kind, data_json, ts, id_out); }
static inline int store_notif_list(store_t *s, const char *u, store_notif_t ***out, size_t *n)
{ return s->ops->notif_list(s, u, out, n); }
static inline int store_notif_delete(store_t *s, const char *id) { return s->ops->notif_delete(s, id); }
static inline int store_notif_sweep(store_t *s, int64_t before_ts, uint64_t *removed)
{ return s->ops->notif_sweep(s, before_ts, removed); }
static inline int store_ping(store_t *s) { return s->ops->ping(s); }
static inline void store_close(store_t *s) { if (s) s->ops->close(s); }

/* A page of messages for messages_since/before, filled newest first by a
 * backend and handed out ascending: at most `limit` messages within
 * `max_bytes` (estimated), always at least one. */
typedef struct {
    size_t limit, max_bytes;     /* set by the caller                         */
    store_msg_t **v;
    size_t n, cap, bytes;
    bool more;                   /* older messages were left out              */
} store_page_t;

/* store_page_full: call it once the next row exists: true (and more set)
 * when the page already holds `limit` messages. store_page_offer takes one message (a reference), newest first:
 * returns 1 when taken, 0 when it no longer fits (released; more is set;
 * stop reading), -ENOMEM (released). store_page_finish hands the page out
 * ascending (*out, *n, *more) and returns 0; store_page_drop frees it. */
bool store_page_full(store_page_t *p);
int store_page_offer(store_page_t *p, store_msg_t *m);
int store_page_finish(store_page_t *p, store_msg_t ***out, size_t *n, bool *more);
void store_page_drop(store_page_t *p);

/* store_msg_size_estimate: bytes a message takes encoded as JSON (used for
 * the 1 MiB caps). */
size_t store_msg_size_estimate(const store_msg_t *m);

#endif
