/* mongo.c - the MongoDB store backend: the records of protocol.md §11 as
 * documents, through mongo-c-driver 1.23 (see mongo.h for the URI, write
 * concern and timeouts).
 *
 * Thread: only the persistence thread that opened a mongo_t calls into it
 * (the writer and the reader each open their own). Each mongo_t owns one
 * single-threaded mongoc_client_t; the driver's global state is set up once
 * by mongoc_init (pthread_once in mongo_open; the main thread opens the
 * first store before the persistence threads start).
 *
 * Invariants:
 *   - Every driver error becomes ours here, once (mongo__err): network,
 *     server selection and "try again" server codes are ERR_STORE, the
 *     rest ERR_STORE_FATAL; the driver's text goes to the log.
 *   - A message document is written once, by one unordered bulk insert, and
 *     never rewritten by this file; its _id is the ObjectId we make before
 *     sending, so a batch whose reply was lost can be retried: the unique
 *     index on (senderId, tempId) turns every message already stored into
 *     ERR_DUP with the id and seq found in the database.
 *   - chats.lastSeq only grows ($max) and is bumped after the insert, in a
 *     second round trip that may fail on its own; so, as in lite.c, readers
 *     report max(chats.lastSeq, newest message seq of the room).
 *   - read_markers.seq only grows ($max).
 *
 * FerretDB v1 (the test server) differs from MongoDB in ways this file
 * absorbs: it refuses TTL indexes (code 238, so notifications expire by the
 * broker's sweep only), it does not know endSessions (the driver logs a
 * warning when a client closes), and its duplicate-key message does not
 * name the index, so a duplicate is decided by looking the message up by
 * (senderId, tempId) instead of parsing the message
 * (/work/shared/notes/deps-and-build.md §1.3).
 */
#include "persistence/mongo.h"

#include "src/err.h"
#include "src/hmap.h"
#include "src/log.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MONGO_DEFAULT_DB "ringcast"
#define MONGO_SELECT_TIMEOUT_MS 2000     /* outage → ERR_STORE in ~2 s    */
#define MONGO_CONNECT_TIMEOUT_MS 2000
#define MONGO_SOCKET_TIMEOUT_MS 10000    /* a hung server, not a slow j:true */
#define MONGO_NOTIF_TTL_S (30 * 24 * 3600)   /* protocol.md §11: 30 days   */
#define MONGO_MARKER_ID_MAX (2 * STORE_ID_MAX + 2)
#define MONGO_DOC_MAX (16 * 1024 * 1024)   /* the server's BSON document limit */

/* Server codes that mean "not now" rather than "never" (MongoDB's
 * error_codes.yml: network, shutdown, stepdown, time limits, conflicts). */
static const int32_t mongo__transient_codes[] = {
    6, 7, 50, 64, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
};

typedef struct {
    store_t base;                /* first, so a store_t * is a mongo_t *    */
    mongoc_client_t *client;     /* owned; the opening thread only          */
    mongoc_database_t *db;
    mongoc_collection_t *msgs;   /* messages                                */
    mongoc_collection_t *chats;
    mongoc_collection_t *marks;  /* read_markers                            */
    mongoc_collection_t *notifs; /* notifications (indexes only, for now)   */
} mongo_t;

/* ThreadSanitizer builds: libmongoc brings in libstdc++, whose constructor
 * calls __cxa_atexit through TSan's interceptor before Zig's statically
 * linked TSan runtime has initialised (a SIGSEGV at startup, 2026-11-22).
 * Initialising TSan from .preinit_array, which runs before any shared
 * library's constructors, is what compiler-rt's own tsan_preinit does.
 * This object is linked whenever libmongoc is, so the entry comes along. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MONGO__TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MONGO__TSAN 1
#endif
#ifdef MONGO__TSAN
extern void __tsan_init(void);
__attribute__((section(".preinit_array"), used)) static void (*const mongo__tsan_preinit)(void) = __tsan_init;
#endif

static mongo_t *mongo__from(store_t *s) { return (mongo_t *)s; }

static pthread_once_t mongo__once = PTHREAD_ONCE_INIT;

/* mongo__on_driver_log sends the driver's own log lines to ours. The
 * endSessions warning is demoted: a server without sessions (FerretDB v1)
 * refuses it when a client closes, and nothing depends on it. */
static void mongo__on_driver_log(mongoc_log_level_t level, const char *domain, const char *msg,
                                 void *ud)
{
    if (strstr(msg, "\"endSessions\""))
        LOG_DBG("mongoc(%s): %s", domain, msg);
    else if (level <= MONGOC_LOG_LEVEL_CRITICAL)
        LOG_ERR("mongoc(%s): %s", domain, msg);
    else if (level == MONGOC_LOG_LEVEL_WARNING)
        LOG_WRN("mongoc(%s): %s", domain, msg);
    else if (level <= MONGOC_LOG_LEVEL_INFO)
        LOG_INF("mongoc(%s): %s", domain, msg);
    else
        LOG_DBG("mongoc(%s): %s", domain, msg);
}

static void mongo__init_driver(void)
{
    mongoc_log_set_handler(mongo__on_driver_log, NULL);
    mongoc_init();
}

static void mongo__reason(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mongo__reason(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool mongo__transient_code(int32_t code)
{
    for (size_t i = 0; i < sizeof mongo__transient_codes / sizeof *mongo__transient_codes; i++)
        if (mongo__transient_codes[i] == code)
            return true;
    return false;
}

/* mongo__classify maps a driver error to ERR_STORE (may pass if retried)
 * or ERR_STORE_FATAL (the same input fails again), without logging. */
static int mongo__classify(const bson_error_t *e)
{
    switch (e->domain) {
    case MONGOC_ERROR_STREAM:
    case MONGOC_ERROR_SERVER_SELECTION:
    case MONGOC_ERROR_PROTOCOL:
    case MONGOC_ERROR_WRITE_CONCERN:
    case MONGOC_ERROR_SASL:
    case MONGOC_ERROR_SCRAM:
        return ERR_STORE;
    case MONGOC_ERROR_CLIENT:
        return e->code == MONGOC_ERROR_CLIENT_TOO_BIG ? ERR_STORE_FATAL : ERR_STORE;
    case MONGOC_ERROR_BSON:
    case MONGOC_ERROR_NAMESPACE:
    case MONGOC_ERROR_MATCHER:
        return ERR_STORE_FATAL;
    default:   /* SERVER, QUERY, COMMAND, COLLECTION, CURSOR, ...: a server code */
        return mongo__transient_code((int32_t)e->code) ? ERR_STORE : ERR_STORE_FATAL;
    }
}

/* mongo__err turns a driver error into ours, once, at the module edge
 * (STYLE.md §5), and logs the driver's detail. */
static int mongo__err(const bson_error_t *e, const char *what)
{
    int err = mongo__classify(e);
    if (err == ERR_STORE)
        LOG_WRN("store(mongodb): %s: %s (domain %" PRIu32 ", code %" PRIu32 ")", what, e->message,
                e->domain, e->code);
    else
        LOG_ERR("store(mongodb): %s: %s (domain %" PRIu32 ", code %" PRIu32 ")", what, e->message,
                e->domain, e->code);
    return err;
}

static bool mongo__is_dup(const bson_error_t *e)
{
    return e->code == MONGOC_ERROR_DUPLICATE_KEY && mongo__classify(e) == ERR_STORE_FATAL;
}

/* ------------------------------------------------------------------ */
/* Reading documents                                                   */

/* mongo__i64 reads a number or a date as int64; 0 for anything else (an
 * absent optional). Doubles are accepted because operators' shells write
 * numbers as doubles. */
static int64_t mongo__i64(const bson_iter_t *it)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32:
        return bson_iter_int32(it);
    case BSON_TYPE_INT64:
        return bson_iter_int64(it);
    case BSON_TYPE_DOUBLE:
        return (int64_t)bson_iter_double(it);
    case BSON_TYPE_DATE_TIME:
        return bson_iter_date_time(it);
    case BSON_TYPE_BOOL:
        return bson_iter_bool(it);
    default:
        return 0;
    }
}

/* mongo__str returns the UTF-8 value of it, or "" for another type. */
static const char *mongo__str(const bson_iter_t *it, uint32_t *len)
{
    if (BSON_ITER_HOLDS_UTF8(it))
        return bson_iter_utf8(it, len);
    if (len)
        *len = 0;
    return "";
}

/* mongo__id writes an _id as text: an ObjectId as 24 hex digits, a string
 * as is (cut to fit). */
static void mongo__id(const bson_iter_t *it, char *out, size_t cap)
{
    if (BSON_ITER_HOLDS_OID(it) && cap > STORE_OID_LEN)
        bson_oid_to_string(bson_iter_oid(it), out);
    else
        snprintf(out, cap, "%s", mongo__str(it, NULL));
}

/* mongo__msg_from builds a message from a messages document. NULL on ENOMEM. */
static store_msg_t *mongo__msg_from(const bson_t *doc)
{
    const char *room = "", *sender = "", *name = "", *temp = "", *type_s = "", *body = "";
    uint32_t body_len = 0;
    int64_t seq = 0, reply_to = 0, ts = 0, edited_at = 0;
    bool deleted = false;
    char id[STORE_OID_LEN + 1] = "";
    bson_iter_t it;
    if (!bson_iter_init(&it, doc))
        return NULL;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "_id") == 0)
            mongo__id(&it, id, sizeof id);
        else if (strcmp(k, "roomId") == 0)
            room = mongo__str(&it, NULL);
        else if (strcmp(k, "seq") == 0)
            seq = mongo__i64(&it);
        else if (strcmp(k, "senderId") == 0)
            sender = mongo__str(&it, NULL);
        else if (strcmp(k, "senderName") == 0)
            name = mongo__str(&it, NULL);
        else if (strcmp(k, "tempId") == 0)
            temp = mongo__str(&it, NULL);
        else if (strcmp(k, "type") == 0)
            type_s = mongo__str(&it, NULL);
        else if (strcmp(k, "body") == 0)
            body = mongo__str(&it, &body_len);
        else if (strcmp(k, "replyTo") == 0)
            reply_to = mongo__i64(&it);
        else if (strcmp(k, "ts") == 0)
            ts = mongo__i64(&it);
        else if (strcmp(k, "editedAt") == 0)
            edited_at = mongo__i64(&it);
        else if (strcmp(k, "deleted") == 0)
            deleted = mongo__i64(&it) != 0;
    }
    int type = store_msg_type_parse(type_s);
    if (type < 0) {
        /* As lite.c: keep a room's history readable past one odd document. */
        LOG_WRN("store(mongodb): message %s: unknown type \"%s\", read as text", id, type_s);
        type = STORE_MSG_TEXT;
    }
    store_msg_t *m = store_msg_new(room, sender, name, temp, type, body, body_len, seq, reply_to, ts);
    if (!m)
        return NULL;
    memcpy(m->id, id, sizeof m->id);
    m->edited_at = edited_at;
    m->deleted = deleted;
    return m;
}

/* mongo__members reads the members array into a malloc'd array of malloc'd
 * strings (non-strings are skipped and logged). 0 or -ENOMEM. */
static int mongo__members(const char *chat_id, const bson_iter_t *arr_it, store_chat_t *c)
{
    bson_iter_t it;
    if (!BSON_ITER_HOLDS_ARRAY(arr_it) || !bson_iter_recurse(arr_it, &it)) {
        LOG_WRN("store(mongodb): chat %s: members is not an array, read as empty", chat_id);
        return 0;
    }
    size_t cap = 0;
    while (bson_iter_next(&it)) {
        if (!BSON_ITER_HOLDS_UTF8(&it)) {
            LOG_WRN("store(mongodb): chat %s: a member is not a string, skipped", chat_id);
            continue;
        }
        if (c->n_members == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char **nv = realloc(c->members, ncap * sizeof *nv);
            if (!nv)
                return -ENOMEM;
            c->members = nv;
            cap = ncap;
        }
        if (!(c->members[c->n_members] = strdup(bson_iter_utf8(&it, NULL))))
            return -ENOMEM;
        c->n_members++;
    }
    return 0;
}

/* mongo__chat_from builds a chat from a chats document. Returns 0,
 * -ENOMEM, or ERR_STORE_FATAL for a document that cannot be a chat. */
static int mongo__chat_from(const bson_t *doc, store_chat_t **out)
{
    *out = NULL;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it)) {
        LOG_ERR("store(mongodb): a chats document has no string _id, skipped");
        return ERR_STORE_FATAL;
    }
    const char *id = bson_iter_utf8(&it, NULL);
    if (strlen(id) > STORE_ID_MAX) {
        LOG_ERR("store(mongodb): chat id longer than %d bytes: %.40s...", STORE_ID_MAX, id);
        return ERR_STORE_FATAL;
    }
    store_chat_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    strcpy(c->id, id);
    c->type = -1;
    const char *name = "";
    int err = 0;
    bson_iter_init(&it, doc);
    while (bson_iter_next(&it) && !err) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "type") == 0)
            c->type = store_chat_type_parse(mongo__str(&it, NULL));
        else if (strcmp(k, "name") == 0)
            name = mongo__str(&it, NULL);
        else if (strcmp(k, "members") == 0)
            err = mongo__members(c->id, &it, c);
        else if (strcmp(k, "createdAt") == 0)
            c->created_at = mongo__i64(&it);
        else if (strcmp(k, "lastSeq") == 0)
            c->last_seq = mongo__i64(&it);
    }
    if (!err && !(c->name = strdup(name)))
        err = -ENOMEM;
    if (err) {
        store_chat_free(c);
        return err;
    }
    if (c->type < 0) {
        /* Group is the safe reading (members only), as in lite.c. */
        LOG_WRN("store(mongodb): chat %s: unknown type, read as group", c->id);
        c->type = STORE_CHAT_GROUP;
    }
    *out = c;
    return 0;
}

/* mongo__newest finds the newest message of a room: its seq (0 when the
 * room has none) and, when msg is not NULL, the message itself. */
static int mongo__newest(mongo_t *m, const char *room_id, int64_t *seq, store_msg_t **msg)
{
    *seq = 0;
    if (msg)
        *msg = NULL;
    bson_t *filter = BCON_NEW("roomId", BCON_UTF8(room_id));
    bson_t *opts = msg ? BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "limit", BCON_INT64(1))
                       : BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "limit", BCON_INT64(1),
                                  "projection", "{", "seq", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(m->msgs, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    int err = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "seq"))
            *seq = mongo__i64(&it);
        if (msg && !(*msg = mongo__msg_from(doc)))
            err = -ENOMEM;
    }
    if (!err && mongoc_cursor_error(cur, &e))
        err = mongo__err(&e, "newest message");
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    if (err && msg) {
        store_msg_unref(*msg);
        *msg = NULL;
    }
    return err;
}

/* mongo__chat_last_seq raises c->last_seq to the newest stored message. */
static int mongo__chat_last_seq(mongo_t *m, store_chat_t *c)
{
    int64_t seq;
    int err = mongo__newest(m, c->id, &seq, NULL);
    if (!err && seq > c->last_seq)
        c->last_seq = seq;
    return err;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* mongo__msg_doc writes a message as protocol.md §11 shapes it. Optional
 * fields are left out when absent (0 / false). false when the document
 * would exceed the server's 16 MiB limit. */
static bool mongo__msg_doc(bson_t *doc, const store_msg_t *msg, const bson_oid_t *oid)
{
    if (msg->body_len > MONGO_DOC_MAX)
        return false;   /* also keeps the (int) length below from wrapping */
    bool ok = BSON_APPEND_OID(doc, "_id", oid) && BSON_APPEND_UTF8(doc, "roomId", msg->room_id) &&
              BSON_APPEND_INT64(doc, "seq", msg->seq) &&
              BSON_APPEND_UTF8(doc, "senderId", msg->sender_id) &&
              BSON_APPEND_UTF8(doc, "senderName", msg->sender_name) &&
              BSON_APPEND_UTF8(doc, "tempId", msg->temp_id) &&
              BSON_APPEND_UTF8(doc, "type", store_msg_type_name(msg->type)) &&
              bson_append_utf8(doc, "body", 4, msg->body, (int)msg->body_len);
    if (ok && msg->reply_to)
        ok = BSON_APPEND_INT64(doc, "replyTo", msg->reply_to);
    if (ok)
        ok = BSON_APPEND_DATE_TIME(doc, "ts", msg->ts);
    if (ok && msg->edited_at)
        ok = BSON_APPEND_DATE_TIME(doc, "editedAt", msg->edited_at);
    if (ok && msg->deleted)
        ok = BSON_APPEND_BOOL(doc, "deleted", true);
    return ok && doc->len <= MONGO_DOC_MAX;
}

/* mongo__dup_lookup decides a message whose insert hit a unique index:
 * either its (senderId, tempId) is already stored (a resend, or a retry of a
 * batch whose reply was lost: ERR_DUP with the stored id and seq), or its
 * (roomId, seq) slot belongs to another message (ERR_STORE_FATAL). Returns
 * 0, or an error when the lookup itself failed (the batch is retried). */
static int mongo__dup_lookup(mongo_t *m, const store_msg_t *msg, store_result_t *r)
{
    bson_t *filter = BCON_NEW("senderId", BCON_UTF8(msg->sender_id), "tempId",
                              BCON_UTF8(msg->temp_id));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", "seq", BCON_INT32(1), "roomId",
                            BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(m->msgs, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    bson_iter_t it;
    int err = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        r->status = ERR_DUP;
        r->id[0] = '\0';
        r->seq = 0;
        if (bson_iter_init_find(&it, doc, "_id"))
            mongo__id(&it, r->id, sizeof r->id);
        if (bson_iter_init_find(&it, doc, "seq"))
            r->seq = mongo__i64(&it);
        r->room_id[0] = '\0';
        if (bson_iter_init_find(&it, doc, "roomId") && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(r->room_id, sizeof r->room_id, "%s", bson_iter_utf8(&it, NULL));
    } else if (mongoc_cursor_error(cur, &e)) {
        err = mongo__err(&e, "insert_batch: duplicate lookup");
        if (err == ERR_STORE_FATAL)
            err = ERR_STORE;   /* the batch's fate is undecided, not refused */
    } else {
        /* Also covers an _id collision, which ObjectIds make practically
         * impossible. */
        LOG_ERR("store(mongodb): message %s/%" PRId64 " (%s, %s) refused: seq taken by another message",
                msg->room_id, msg->seq, msg->sender_id, msg->temp_id);
        r->status = ERR_STORE_FATAL;
        r->id[0] = '\0';
        r->seq = msg->seq;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    return err;
}

/* mongo__write_errors decides the messages the bulk reply lists in
 * writeErrors. pos[k] is the message index of bulk document k. Returns 0,
 * or ERR_STORE when the batch must be retried as a whole. */
static int mongo__write_errors(mongo_t *m, const bson_t *reply, const size_t *pos, size_t n_docs,
                               store_msg_t *const *msgs, store_result_t *res)
{
    bson_iter_t it, errs;
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &errs))
        return 0;
    while (bson_iter_next(&errs)) {
        bson_iter_t f;
        int64_t idx = -1, code = 0;
        const char *msg_s = "";
        if (!BSON_ITER_HOLDS_DOCUMENT(&errs) || !bson_iter_recurse(&errs, &f))
            continue;
        while (bson_iter_next(&f)) {
            if (strcmp(bson_iter_key(&f), "index") == 0)
                idx = mongo__i64(&f);
            else if (strcmp(bson_iter_key(&f), "code") == 0)
                code = mongo__i64(&f);
            else if (strcmp(bson_iter_key(&f), "errmsg") == 0)
                msg_s = mongo__str(&f, NULL);
        }
        if (idx < 0 || (uint64_t)idx >= n_docs) {
            LOG_ERR("store(mongodb): insert_batch: write error without a valid index: %s", msg_s);
            return ERR_STORE;
        }
        size_t i = pos[idx];
        if (code == MONGOC_ERROR_DUPLICATE_KEY) {
            int err = mongo__dup_lookup(m, msgs[i], &res[i]);
            if (err)
                return err;
        } else if (mongo__transient_code((int32_t)code)) {
            LOG_WRN("store(mongodb): insert_batch: %s (code %" PRId64 "), retrying the batch",
                    msg_s, code);
            return ERR_STORE;
        } else {
            LOG_ERR("store(mongodb): message %s/%" PRId64 " refused: %s (code %" PRId64 ")",
                    msgs[i]->room_id, msgs[i]->seq, msg_s, code);
            res[i].status = ERR_STORE_FATAL;
            res[i].id[0] = '\0';
            res[i].seq = msgs[i]->seq;
        }
    }
    return 0;
}

/* mongo__has_array says whether reply holds a non-empty array named key. */
static bool mongo__has_array(const bson_t *reply, const char *key)
{
    bson_iter_t it, sub;
    return bson_iter_init_find(&it, reply, key) && BSON_ITER_HOLDS_ARRAY(&it) &&
           bson_iter_recurse(&it, &sub) && bson_iter_next(&sub);
}

/* mongo__bump_last_seq raises chats.lastSeq to the highest seq decided as
 * stored (new or duplicate) per room, in one unordered bulk update. A
 * failure is logged only: the messages are durable, and readers take the
 * newest message into account anyway. Duplicates bump too, so the retry of
 * a batch whose bump was lost repairs it. */
static void mongo__bump_last_seq(mongo_t *m, store_msg_t *const *msgs, size_t n,
                                 const store_result_t *res)
{
    /* The highest decided seq per room, in one pass (a 1,000-message batch
     * made the former pairwise scan a million string compares). The map
     * holds index + 1 of the best message of each room. */
    hmap_t best = {0};
    for (size_t i = 0; i < n; i++) {
        if (res[i].status != 0 && res[i].status != ERR_DUP)
            continue;
        size_t j = (size_t)(uintptr_t)hmap_get(&best, msgs[i]->room_id);
        if (j && res[j - 1].seq >= res[i].seq)
            continue;
        if (hmap_put(&best, msgs[i]->room_id, (void *)(uintptr_t)(i + 1), NULL) < 0) {
            hmap_deinit(&best);
            LOG_WRN("store(mongodb): out of memory raising chats.lastSeq (readers use the newest message)");
            return;
        }
    }
    mongoc_bulk_operation_t *bulk = NULL;
    bson_error_t e;
    void *v;
    for (size_t it = 0; hmap_next(&best, &it, NULL, &v);) {
        size_t i = (size_t)(uintptr_t)v - 1;
        if (!bulk) {
            bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
            bulk = mongoc_collection_create_bulk_operation_with_opts(m->chats, opts);
            bson_destroy(opts);
        }
        bson_t *sel = BCON_NEW("_id", BCON_UTF8(msgs[i]->room_id));
        bson_t *upd = BCON_NEW("$max", "{", "lastSeq", BCON_INT64(res[i].seq), "}");
        bool ok = mongoc_bulk_operation_update_one_with_opts(bulk, sel, upd, NULL, &e);
        bson_destroy(upd);
        bson_destroy(sel);
        if (!ok) {
            mongo__err(&e, "insert_batch: chats.lastSeq");
            mongoc_bulk_operation_destroy(bulk);
            hmap_deinit(&best);
            return;
        }
    }
    hmap_deinit(&best);
    if (!bulk)
        return;
    bson_t reply;
    if (!mongoc_bulk_operation_execute(bulk, &reply, &e))
        mongo__err(&e, "insert_batch: chats.lastSeq (readers use the newest message)");
    bson_destroy(&reply);
    mongoc_bulk_operation_destroy(bulk);
}

/* mongo_insert_batch:
 *   1. Give each message a fresh ObjectId and queue its document in one
 *      unordered bulk insert (a document too large for BSON is refused
 *      alone, before sending).
 *   2. Execute. A failure that is not a per-document write error (network,
 *      server selection, write concern, a whole-command error) decides
 *      nothing: ERR_STORE, the caller retries the whole batch.
 *   3. Decide each write error: duplicate key → lookup (ERR_DUP or
 *      ERR_STORE_FATAL); a transient code → ERR_STORE for the batch; any
 *      other code → ERR_STORE_FATAL for that message.
 *   4. Every other queued message is stored with our ObjectId.
 *   5. Bump chats.lastSeq. */
static int mongo_insert_batch(store_t *s, store_msg_t *const *msgs, size_t n, store_result_t *res)
{
    mongo_t *m = mongo__from(s);
    if (n == 0)
        return 0;
    size_t *pos = malloc(n * sizeof *pos);
    if (!pos)
        return -ENOMEM;
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(m->msgs, opts);
    bson_destroy(opts);
    bson_error_t e;
    int err = 0;
    size_t n_docs = 0;
    /* 1. */
    for (size_t i = 0; i < n; i++) {
        bson_oid_t oid;
        bson_oid_init(&oid, NULL);
        res[i].status = 0;
        res[i].seq = msgs[i]->seq;
        bson_oid_to_string(&oid, res[i].id);
        bson_t doc = BSON_INITIALIZER;
        if (!mongo__msg_doc(&doc, msgs[i], &oid)) {
            LOG_ERR("store(mongodb): message %s/%" PRId64 " refused: document too large",
                    msgs[i]->room_id, msgs[i]->seq);
            res[i].status = ERR_STORE_FATAL;
            res[i].id[0] = '\0';
        } else if (!mongoc_bulk_operation_insert_with_opts(bulk, &doc, NULL, &e)) {
            res[i].status = mongo__err(&e, "insert_batch: queue");
            res[i].id[0] = '\0';
            if (res[i].status != ERR_STORE_FATAL)
                err = ERR_STORE;
        } else {
            pos[n_docs++] = i;
        }
        bson_destroy(&doc);
        if (err)
            goto out;
    }
    if (n_docs == 0)
        goto out;
    /* 2. */
    bson_t reply;
    bool ok = mongoc_bulk_operation_execute(bulk, &reply, &e);
    if (mongo__has_array(&reply, "writeConcernErrors")) {
        /* Written, perhaps, but not as durably as asked: not confirmable
         * yet. The retry turns what was written into ERR_DUP. */
        char *j = bson_as_relaxed_extended_json(&reply, NULL);
        LOG_WRN("store(mongodb): insert_batch: write concern not met, retrying: %s", j ? j : "?");
        bson_free(j);
        err = ERR_STORE;
    } else if (!ok && (mongo__classify(&e) == ERR_STORE || !mongo__has_array(&reply, "writeErrors"))) {
        /* The network, server selection or a "not now" code: even with some
         * writeErrors in hand (a bulk split into several commands), the
         * documents of the failed command are undecided. */
        (void)mongo__err(&e, "insert_batch");
        err = ERR_STORE;
    } else if (!ok) {
        /* 3. and 4.: res already says "stored" for the others. */
        err = mongo__write_errors(m, &reply, pos, n_docs, msgs, res);
    }
    bson_destroy(&reply);
    /* 5. */
    if (!err)
        mongo__bump_last_seq(m, msgs, n, res);
out:
    mongoc_bulk_operation_destroy(bulk);
    free(pos);
    return err;
}

/* mongo__page finds the newest `limit` messages of room_id on one side of
 * bound (newest first), keeps those that fit max_bytes (always at least
 * one) and returns them ascending. One document past the kept ones tells
 * *more. */
static int mongo__page(mongo_t *m, const char *room_id, const char *op, int64_t bound, size_t limit,
                       size_t max_bytes, store_msg_t ***out, size_t *n, bool *more)
{
    *out = NULL;
    *n = 0;
    *more = false;
    bson_t *filter = BCON_NEW("roomId", BCON_UTF8(room_id), "seq", "{", op, BCON_INT64(bound), "}");
    bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}");
    if (limit < (size_t)INT32_MAX)
        BSON_APPEND_INT64(opts, "limit", (int64_t)limit + 1);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(m->msgs, filter, opts, NULL);
    store_page_t pg = { .limit = limit, .max_bytes = max_bytes };
    const bson_t *doc;
    bson_error_t e;
    int err = 0;
    while (mongoc_cursor_next(cur, &doc) && !store_page_full(&pg)) {
        store_msg_t *msg = mongo__msg_from(doc);
        int taken = msg ? store_page_offer(&pg, msg) : -ENOMEM;
        if (taken <= 0) {
            err = taken;
            break;
        }
    }
    if (!err && mongoc_cursor_error(cur, &e))
        err = mongo__err(&e, "messages page");
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    if (err) {
        store_page_drop(&pg);
        return err;
    }
    return store_page_finish(&pg, out, n, more);
}

static int mongo_messages_since(store_t *s, const char *room_id, int64_t since_seq, size_t limit,
                                size_t max_bytes, store_msg_t ***out, size_t *n, bool *more)
{
    return mongo__page(mongo__from(s), room_id, "$gt", since_seq, limit, max_bytes, out, n, more);
}

static int mongo_messages_before(store_t *s, const char *room_id, int64_t before_seq, size_t limit,
                                 size_t max_bytes, store_msg_t ***out, size_t *n, bool *more)
{
    return mongo__page(mongo__from(s), room_id, "$lt", before_seq > 0 ? before_seq : INT64_MAX,
                       limit, max_bytes, out, n, more);
}

/* ------------------------------------------------------------------ */
/* Chats                                                               */

static int mongo_chat_create(store_t *s, const store_chat_t *c)
{
    mongo_t *m = mongo__from(s);
    const char *type = store_chat_type_name(c->type);
    if (!type) {
        LOG_ERR("store(mongodb): chat %s: invalid type %d", c->id, c->type);
        return ERR_STORE_FATAL;
    }
    bson_t doc = BSON_INITIALIZER, arr;
    BSON_APPEND_UTF8(&doc, "_id", c->id);
    BSON_APPEND_UTF8(&doc, "type", type);
    BSON_APPEND_UTF8(&doc, "name", c->name ? c->name : "");
    BSON_APPEND_ARRAY_BEGIN(&doc, "members", &arr);
    uint32_t k = 0;
    for (size_t i = 0; i < c->n_members; i++) {
        /* Repeated ids are dropped, as $addToSet would ($addToSet keeps the
         * array a set; lite.c's chat_members has the same effect). */
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(c->members[j], c->members[i]) == 0;
        if (seen)
            continue;
        char key[16];
        const char *kp;
        bson_uint32_to_string(k++, &kp, key, sizeof key);
        bson_append_utf8(&arr, kp, -1, c->members[i], -1);
    }
    bson_append_array_end(&doc, &arr);
    BSON_APPEND_DATE_TIME(&doc, "createdAt", c->created_at);
    BSON_APPEND_INT64(&doc, "lastSeq", c->last_seq);

    bson_error_t e;
    int err = 0;
    if (!mongoc_collection_insert_one(m->chats, &doc, NULL, NULL, &e))
        err = mongo__is_dup(&e) ? ERR_DUP : mongo__err(&e, "chat_create");
    bson_destroy(&doc);
    return err;
}

static int mongo_chat_get(store_t *s, const char *id, store_chat_t **out)
{
    mongo_t *m = mongo__from(s);
    *out = NULL;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(m->chats, filter, NULL, NULL);
    const bson_t *doc;
    bson_error_t e;
    int err = ERR_NOT_FOUND;
    if (mongoc_cursor_next(cur, &doc))
        err = mongo__chat_from(doc, out);
    else if (mongoc_cursor_error(cur, &e))
        err = mongo__err(&e, "chat_get");
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    if (!err && (err = mongo__chat_last_seq(m, *out)) != 0) {
        store_chat_free(*out);
        *out = NULL;
    }
    return err;
}

/* mongo__chats_find runs find(filter) on chats and calls each() for every
 * chat (with last_seq completed). each() runs while the cursor is open; it
 * may use this store (one client, requests in turn). A damaged document is
 * logged and skipped, so one bad chat cannot keep the broker from
 * starting. */
static int mongo__chats_find(mongo_t *m, const bson_t *filter, int (*each)(void *ud, store_chat_t *c),
                             void *ud)
{
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(m->chats, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    int err = 0;
    while (!err && mongoc_cursor_next(cur, &doc)) {
        store_chat_t *c;
        err = mongo__chat_from(doc, &c);
        if (err == ERR_STORE_FATAL) {
            err = 0;
            continue;
        }
        if (!err && (err = mongo__chat_last_seq(m, c)) != 0)
            store_chat_free(c);
        else if (!err)
            err = each(ud, c);
    }
    if (!err && mongoc_cursor_error(cur, &e))
        err = mongo__err(&e, "chats");
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    return err;
}

static int mongo_chats_all(store_t *s, int (*each)(void *ud, store_chat_t *c), void *ud)
{
    bson_t filter = BSON_INITIALIZER;
    int err = mongo__chats_find(mongo__from(s), &filter, each, ud);
    bson_destroy(&filter);
    return err;
}

typedef struct {
    store_chat_t **v;
    size_t n, cap;
} mongo_chat_vec_t;

static int mongo__chat_push(void *ud, store_chat_t *c)
{
    mongo_chat_vec_t *vec = ud;
    if (vec->n == vec->cap) {
        size_t ncap = vec->cap ? vec->cap * 2 : 16;
        store_chat_t **nv = realloc(vec->v, ncap * sizeof *nv);
        if (!nv) {
            store_chat_free(c);
            return -ENOMEM;
        }
        vec->v = nv;
        vec->cap = ncap;
    }
    vec->v[vec->n++] = c;
    return 0;
}

static int mongo_read_marker_get(store_t *s, const char *room_id, const char *user_id, int64_t *seq);

/* mongo__chat_view fills the per-user fields of one chat: unread (others'
 * messages, not deleted, above the user's read marker) and last_msg. */
static int mongo__chat_view(mongo_t *m, store_chat_t *c, const char *user_id)
{
    int64_t marker, newest;
    int err = mongo_read_marker_get(&m->base, c->id, user_id, &marker);
    if (err)
        return err;
    bson_t *filter = BCON_NEW("roomId", BCON_UTF8(c->id), "senderId", "{", "$ne", BCON_UTF8(user_id),
                              "}", "deleted", "{", "$ne", BCON_BOOL(true), "}", "seq", "{", "$gt",
                              BCON_INT64(marker), "}");
    bson_error_t e;
    int64_t cnt = mongoc_collection_count_documents(m->msgs, filter, NULL, NULL, NULL, &e);
    bson_destroy(filter);
    if (cnt < 0)
        return mongo__err(&e, "chats_for_user: unread");
    c->unread = cnt;
    err = mongo__newest(m, c->id, &newest, &c->last_msg);
    if (!err && newest > c->last_seq)
        c->last_seq = newest;
    return err;
}

/* Unlike lite.c this reads without a snapshot: unread, last_msg and lastSeq
 * come from separate queries, so a batch committed in between can make them
 * disagree by that batch; the next call agrees again. */
static int mongo_chats_for_user(store_t *s, const char *user_id, store_chat_t ***out, size_t *n)
{
    mongo_t *m = mongo__from(s);
    *out = NULL;
    *n = 0;
    mongo_chat_vec_t vec = {0};
    bson_t *filter = BCON_NEW("members", BCON_UTF8(user_id));
    int err = mongo__chats_find(m, filter, mongo__chat_push, &vec);
    bson_destroy(filter);
    for (size_t i = 0; i < vec.n && !err; i++)
        err = mongo__chat_view(m, vec.v[i], user_id);
    if (err) {
        for (size_t i = 0; i < vec.n; i++)
            store_chat_free(vec.v[i]);
        free(vec.v);
        return err;
    }
    store_chats_sort(vec.v, vec.n);
    *out = vec.v;
    *n = vec.n;
    return 0;
}

/* mongo__matched reads matchedCount from an update reply (-1 if absent). */
static int64_t mongo__matched(const bson_t *reply)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, reply, "matchedCount") ? mongo__i64(&it) : -1;
}

/* mongo__member_change applies $addToSet or $pull to chats.members.
 * Idempotent; ERR_NOT_FOUND when the chat is absent. */
static int mongo__member_change(mongo_t *m, const char *chat_id, const char *user_id, bool add)
{
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(chat_id));
    bson_t *upd = BCON_NEW(add ? "$addToSet" : "$pull", "{", "members", BCON_UTF8(user_id), "}");
    bson_t reply;
    bson_error_t e;
    int err = 0;
    if (!mongoc_collection_update_one(m->chats, sel, upd, NULL, &reply, &e))
        err = mongo__err(&e, add ? "chat_add_member" : "chat_remove_member");
    else if (mongo__matched(&reply) == 0)
        err = ERR_NOT_FOUND;
    bson_destroy(&reply);
    bson_destroy(upd);
    bson_destroy(sel);
    return err;
}

static int mongo_chat_add_member(store_t *s, const char *chat_id, const char *user_id)
{
    return mongo__member_change(mongo__from(s), chat_id, user_id, true);
}

static int mongo_chat_remove_member(store_t *s, const char *chat_id, const char *user_id)
{
    return mongo__member_change(mongo__from(s), chat_id, user_id, false);
}

/* ------------------------------------------------------------------ */
/* Read markers, ping, open and close                                  */

static void mongo__marker_id(char *out, const char *room_id, const char *user_id)
{
    snprintf(out, MONGO_MARKER_ID_MAX, "%s|%s", room_id, user_id);
}

static int mongo_read_marker_set(store_t *s, const char *room_id, const char *user_id, int64_t seq)
{
    mongo_t *m = mongo__from(s);
    char id[MONGO_MARKER_ID_MAX];
    mongo__marker_id(id, room_id, user_id);
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *upd = BCON_NEW("$max", "{", "seq", BCON_INT64(seq), "}", "$setOnInsert", "{", "roomId",
                           BCON_UTF8(room_id), "userId", BCON_UTF8(user_id), "}");
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    bson_error_t e;
    int err = 0;
    /* Two upserts of a new _id can race to insert it; the loser gets a
     * duplicate key and succeeds as an update on its second try. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (mongoc_collection_update_one(m->marks, sel, upd, opts, NULL, &e)) {
            err = 0;
            break;
        }
        err = mongo__is_dup(&e) && attempt == 0 ? ERR_DUP : mongo__err(&e, "read_marker_set");
        if (err != ERR_DUP)
            break;
    }
    bson_destroy(opts);
    bson_destroy(upd);
    bson_destroy(sel);
    return err;
}

static int mongo_read_marker_get(store_t *s, const char *room_id, const char *user_id, int64_t *seq)
{
    mongo_t *m = mongo__from(s);
    char id[MONGO_MARKER_ID_MAX];
    mongo__marker_id(id, room_id, user_id);
    *seq = 0;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", "seq", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(m->marks, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    bson_iter_t it;
    int err = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        if (bson_iter_init_find(&it, doc, "seq"))
            *seq = mongo__i64(&it);
    } else if (mongoc_cursor_error(cur, &e)) {
        err = mongo__err(&e, "read_marker_get");
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    return err;
}

/* mongo__ping returns true when the server answers; e holds the failure. */
static bool mongo__ping(mongo_t *m, bson_error_t *e)
{
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bool ok = mongoc_client_command_simple(m->client, "admin", cmd, NULL, NULL, e);
    bson_destroy(cmd);
    return ok;
}

static int mongo_notif_add(store_t *s, const char *user_id, const char *kind, const char *data_json, int64_t ts,
                           char id_out[STORE_OID_LEN + 1])
{
    mongo_t *m = mongo__from(s);
    bson_error_t e;
    /* libbson takes a top-level array as a document; the contract says object */
    json_t *j = json_loads(data_json, JSON_REJECT_DUPLICATES, NULL);
    bool object = json_is_object(j);
    json_decref(j);
    bson_t *data = object ? bson_new_from_json((const uint8_t *)data_json, -1, &e) : NULL;
    if (!data)
        return ERR_STORE_FATAL;   /* not a JSON object */
    bson_oid_t oid;
    bson_oid_init(&oid, NULL);
    bson_oid_to_string(&oid, id_out);
    bson_t *doc = BCON_NEW("_id", BCON_OID(&oid), "userId", BCON_UTF8(user_id), "kind", BCON_UTF8(kind),
                           "data", BCON_DOCUMENT(data), "ts", BCON_DATE_TIME(ts));
    int err = mongoc_collection_insert_one(m->notifs, doc, NULL, NULL, &e) ? 0 : mongo__err(&e, "notif_add");
    bson_destroy(doc);
    bson_destroy(data);
    return err;
}

static int mongo_notif_list(store_t *s, const char *user_id, store_notif_t ***out, size_t *n)
{
    mongo_t *m = mongo__from(s);
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user_id));
    bson_t *opts = BCON_NEW("sort", "{", "ts", BCON_INT32(1), "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(m->notifs, filter, opts, NULL);
    store_notif_t **v = NULL;
    size_t len = 0, cap = 0;
    int err = 0;
    const bson_t *doc;
    bson_iter_t it;
    while (!err && mongoc_cursor_next(cur, &doc)) {
        store_notif_t *x = calloc(1, sizeof(*x));
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            store_notif_t **nv = realloc(v, cap * sizeof(*nv));
            if (nv)
                v = nv;
            else
                cap = len;
        }
        if (!x || len == cap) {
            free(x);
            err = -ENOMEM;
            break;
        }
        if (bson_iter_init_find(&it, doc, "_id"))
            mongo__id(&it, x->id, sizeof x->id);
        if (bson_iter_init_find(&it, doc, "kind") && BSON_ITER_HOLDS_UTF8(&it))
            x->kind = strdup(bson_iter_utf8(&it, NULL));
        if (bson_iter_init_find(&it, doc, "ts"))
            x->ts = BSON_ITER_HOLDS_DATE_TIME(&it) ? bson_iter_date_time(&it) : mongo__i64(&it);
        if (bson_iter_init_find(&it, doc, "data") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            const uint8_t *buf;
            uint32_t blen;
            bson_t sub;
            bson_iter_document(&it, &blen, &buf);
            if (bson_init_static(&sub, buf, blen))
                x->data = bson_as_relaxed_extended_json(&sub, NULL);
        }
        if (!x->kind || !x->data) {
            /* bson_as_relaxed_extended_json memory is bson_free'd; copy to malloc */
            store_notif_free(x);
            err = -ENOMEM;
            break;
        }
        char *d = strdup(x->data);
        bson_free(x->data);
        x->data = d;
        if (!d) {
            store_notif_free(x);
            err = -ENOMEM;
            break;
        }
        v[len++] = x;
    }
    bson_error_t e;
    if (!err && mongoc_cursor_error(cur, &e))
        err = mongo__err(&e, "notif_list");
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    if (err) {
        for (size_t i = 0; i < len; i++)
            store_notif_free(v[i]);
        free(v);
        return err;
    }
    *out = v;
    *n = len;
    return 0;
}

static int mongo_notif_delete(store_t *s, const char *id)
{
    mongo_t *m = mongo__from(s);
    bson_oid_t oid;
    if (!bson_oid_is_valid(id, strlen(id)))
        return 0;   /* no such document can exist */
    bson_oid_init_from_string(&oid, id);
    bson_t *sel = BCON_NEW("_id", BCON_OID(&oid));
    bson_error_t e;
    int err = mongoc_collection_delete_one(m->notifs, sel, NULL, NULL, &e) ? 0 : mongo__err(&e, "notif_delete");
    bson_destroy(sel);
    return err;
}

static int mongo_notif_sweep(store_t *s, int64_t before_ts, uint64_t *removed)
{
    mongo_t *m = mongo__from(s);
    bson_t *sel = BCON_NEW("ts", "{", "$lt", BCON_DATE_TIME(before_ts), "}");
    bson_t reply;
    bson_error_t e;
    bson_iter_t it;
    int err = 0;
    *removed = 0;
    if (mongoc_collection_delete_many(m->notifs, sel, NULL, &reply, &e)) {
        if (bson_iter_init_find(&it, &reply, "deletedCount"))
            *removed = (uint64_t)mongo__i64(&it);
    } else {
        err = mongo__err(&e, "notif_sweep");
    }
    bson_destroy(&reply);
    bson_destroy(sel);
    return err;
}

static int mongo_ping(store_t *s)
{
    bson_error_t e;
    if (mongo__ping(mongo__from(s), &e))
        return 0;
    int err = mongo__err(&e, "ping");
    return err == ERR_STORE_FATAL ? ERR_STORE : err;   /* a ping has no input to blame */
}

static void mongo_close(store_t *s)
{
    mongo_t *m = mongo__from(s);
    mongoc_collection_destroy(m->notifs);
    mongoc_collection_destroy(m->marks);
    mongoc_collection_destroy(m->chats);
    mongoc_collection_destroy(m->msgs);
    mongoc_database_destroy(m->db);
    /* Sends endSessions if sessions were used; FerretDB v1 answers "no such
     * command" and the driver logs a warning (harmless). */
    mongoc_client_destroy(m->client);
    free(m);
}

static const store_ops_t mongo__ops = {
    .name = "mongodb",
    .insert_batch = mongo_insert_batch,
    .messages_since = mongo_messages_since,
    .messages_before = mongo_messages_before,
    .chat_create = mongo_chat_create,
    .chat_get = mongo_chat_get,
    .chats_all = mongo_chats_all,
    .chats_for_user = mongo_chats_for_user,
    .chat_add_member = mongo_chat_add_member,
    .chat_remove_member = mongo_chat_remove_member,
    .read_marker_set = mongo_read_marker_set,
    .read_marker_get = mongo_read_marker_get,
    .notif_add = mongo_notif_add,
    .notif_list = mongo_notif_list,
    .notif_delete = mongo_notif_delete,
    .notif_sweep = mongo_notif_sweep,
    .ping = mongo_ping,
    .close = mongo_close,
};

/* mongo__command runs a command on the store's database; true on success,
 * else e holds the failure. */
static bool mongo__command(mongo_t *m, bson_t *cmd, bson_error_t *e)
{
    bool ok = mongoc_database_write_command_with_opts(m->db, cmd, NULL, NULL, e);
    bson_destroy(cmd);
    return ok;
}

/* mongo__ensure_index creates one index (a no-op when it exists with the
 * same options). keys is a BCON-built document; ttl_s > 0 makes it a TTL
 * index. Returns true or false with e set. */
static bool mongo__ensure_index(mongo_t *m, const char *coll, const char *name, bson_t *keys,
                                bool unique, int32_t ttl_s, bson_error_t *e)
{
    bson_t cmd = BSON_INITIALIZER, arr, idx;
    BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &idx);
    BSON_APPEND_DOCUMENT(&idx, "key", keys);
    BSON_APPEND_UTF8(&idx, "name", name);
    if (unique)
        BSON_APPEND_BOOL(&idx, "unique", true);
    if (ttl_s > 0)
        BSON_APPEND_INT32(&idx, "expireAfterSeconds", ttl_s);
    bson_append_document_end(&arr, &idx);
    bson_append_array_end(&cmd, &arr);
    bson_destroy(keys);
    bool ok = mongoc_database_write_command_with_opts(m->db, &cmd, NULL, NULL, e);
    bson_destroy(&cmd);
    return ok;
}

static atomic_bool mongo__ttl_logged;   /* log the refused TTL index once per process */

/* mongo__setup creates the collections and indexes of protocol.md §11.
 *   1. messages: unique {roomId, seq} and {senderId, tempId}.
 *   2. chats: {members: 1}.
 *   3. read_markers: the collection (keyed by _id only).
 *   4. notifications: {userId: 1, ts: -1}, then the 30-day TTL index on
 *      ts as a best effort (FerretDB v1 refuses TTL with code 238).
 * Returns true, or false with e set and what naming the failed step. */
static bool mongo__setup(mongo_t *m, bson_error_t *e, const char **what)
{
    /* 1. */
    *what = "index messages {roomId, seq}";
    if (!mongo__ensure_index(m, "messages", "roomId_1_seq_1",
                             BCON_NEW("roomId", BCON_INT32(1), "seq", BCON_INT32(1)), true, 0, e))
        return false;
    *what = "index messages {senderId, tempId}";
    if (!mongo__ensure_index(m, "messages", "senderId_1_tempId_1",
                             BCON_NEW("senderId", BCON_INT32(1), "tempId", BCON_INT32(1)), true, 0, e))
        return false;
    /* 2. */
    *what = "index chats {members}";
    if (!mongo__ensure_index(m, "chats", "members_1", BCON_NEW("members", BCON_INT32(1)), false, 0, e))
        return false;
    /* 3. NamespaceExists (48) is the normal answer after the first start. */
    *what = "create read_markers";
    if (!mongo__command(m, BCON_NEW("create", BCON_UTF8("read_markers")), e) && e->code != 48)
        return false;
    /* 4. */
    *what = "index notifications {userId, ts}";
    if (!mongo__ensure_index(m, "notifications", "userId_1_ts_-1",
                             BCON_NEW("userId", BCON_INT32(1), "ts", BCON_INT32(-1)), false, 0, e))
        return false;
    bson_error_t te;
    if (!mongo__ensure_index(m, "notifications", "ts_1_ttl", BCON_NEW("ts", BCON_INT32(1)), false,
                             MONGO_NOTIF_TTL_S, &te)) {
        if (mongo__classify(&te) == ERR_STORE) {
            *e = te;
            *what = "index notifications TTL";
            return false;   /* the server went away: not a refusal */
        }
        if (!atomic_exchange(&mongo__ttl_logged, true))
            LOG_WRN("store(mongodb): server refused the TTL index on notifications.ts: %s "
                    "(code %" PRIu32 "); notifications expire by the broker's sweep only",
                    te.message, te.code);
    }
    return true;
}

/* mongo__wc_parse builds a write concern from a spec (mongo.h). Returns
 * NULL with a reason in err for a bad spec. */
static mongoc_write_concern_t *mongo__wc_parse(const char *spec, char *err, size_t errlen)
{
    if (!spec || !*spec) {
        mongo__reason(err, errlen, "empty write concern");
        return NULL;
    }
    mongoc_write_concern_t *wc = mongoc_write_concern_new();
    mongoc_write_concern_set_journal(wc, true);
    char *copy = strdup(spec), *save = NULL;
    if (!copy) {
        mongoc_write_concern_destroy(wc);
        mongo__reason(err, errlen, "out of memory");
        return NULL;
    }
    bool ok = true;
    int n_tok = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        n_tok++;
        while (*tok == ' ')
            tok++;
        if (strcmp(tok, "majority") == 0) {   /* src/cfg.c's "majority[,j:...]" */
            mongoc_write_concern_set_wmajority(wc, mongoc_write_concern_get_wtimeout_int64(wc));
            continue;
        }
        char *val = strchr(tok, ':'), *end = NULL;
        ok = val != NULL;
        if (!ok)
            break;
        *val++ = '\0';
        long long num = strtoll(val, &end, 10);
        bool is_num = end != val && *end == '\0';
        if (strcmp(tok, "w") == 0 && strcmp(val, "majority") == 0)
            mongoc_write_concern_set_wmajority(wc, mongoc_write_concern_get_wtimeout_int64(wc));
        else if (strcmp(tok, "w") == 0 && is_num && num >= 1 && num <= 50)
            mongoc_write_concern_set_w(wc, (int32_t)num);
        else if (strcmp(tok, "j") == 0 && (strcmp(val, "true") == 0 || strcmp(val, "false") == 0))
            mongoc_write_concern_set_journal(wc, strcmp(val, "true") == 0);
        else if (strcmp(tok, "wtimeout") == 0 && is_num && num >= 0)
            mongoc_write_concern_set_wtimeout_int64(wc, num);
        else
            ok = false;
    }
    free(copy);
    if (!ok || n_tok == 0 || !mongoc_write_concern_is_valid(wc)) {
        mongo__reason(err, errlen, "bad write concern \"%s\" (want \"majority\" or e.g. "
                      "\"w:1,j:true\", \"w:majority,wtimeout:5000\"; w:0 is refused)", spec);
        mongoc_write_concern_destroy(wc);
        return NULL;
    }
    return wc;
}

int mongo_write_concern_check(const char *spec, char *err, size_t errlen)
{
    mongoc_write_concern_t *wc = mongo__wc_parse(spec, err, errlen);
    mongoc_write_concern_destroy(wc);
    return wc ? 0 : ERR_CONFIG;
}

/* mongo__uri parses uri and fills in our timeouts and write concern where
 * the URI leaves them unset. NULL with a reason in err. */
static mongoc_uri_t *mongo__uri(const char *uri, const char *write_concern, char *err, size_t errlen)
{
    pthread_once(&mongo__once, mongo__init_driver);
    bson_error_t e;
    mongoc_uri_t *u = mongoc_uri_new_with_error(uri, &e);
    if (!u) {
        mongo__reason(err, errlen, "bad MongoDB URI: %s", e.message);
        return NULL;
    }
    static const struct { const char *key; int32_t ms; } timeouts[] = {
        {MONGOC_URI_SERVERSELECTIONTIMEOUTMS, MONGO_SELECT_TIMEOUT_MS},
        {MONGOC_URI_CONNECTTIMEOUTMS, MONGO_CONNECT_TIMEOUT_MS},
        {MONGOC_URI_SOCKETTIMEOUTMS, MONGO_SOCKET_TIMEOUT_MS},
    };
    for (size_t i = 0; i < sizeof timeouts / sizeof *timeouts; i++)
        if (!mongoc_uri_has_option(u, timeouts[i].key))
            mongoc_uri_set_option_as_int32(u, timeouts[i].key, timeouts[i].ms);

    if (!mongoc_uri_get_appname(u))
        mongoc_uri_set_appname(u, "ringcast");   /* names us in the server's log */

    mongoc_write_concern_t *wc = NULL;
    if (write_concern) {
        if (!(wc = mongo__wc_parse(write_concern, err, errlen)))
            goto fail;
    } else if (mongoc_write_concern_is_default(mongoc_uri_get_write_concern(u))) {
        wc = mongoc_write_concern_new();
        mongoc_write_concern_set_w(wc, 1);
        mongoc_write_concern_set_journal(wc, true);
    } else if (mongoc_write_concern_get_w(mongoc_uri_get_write_concern(u)) == 0) {
        mongo__reason(err, errlen, "w=0 in the MongoDB URI: unacknowledged writes cannot be confirmed");
        goto fail;
    }
    if (wc) {
        mongoc_uri_set_write_concern(u, wc);
        mongoc_write_concern_destroy(wc);
    }
    return u;
fail:
    mongoc_uri_destroy(u);
    return NULL;
}

int mongo_uri_check(const char *uri, char *err, size_t errlen)
{
    mongoc_uri_t *u = mongo__uri(uri, NULL, err, errlen);
    mongoc_uri_destroy(u);
    return u ? 0 : ERR_CONFIG;
}

int mongo_open(const char *uri, const char *write_concern, store_t **out, char *err, size_t errlen)
{
    *out = NULL;
    mongoc_uri_t *u = mongo__uri(uri, write_concern, err, errlen);
    if (!u)
        return ERR_CONFIG;
    const char *db_name = mongoc_uri_get_database(u);
    if (!db_name || !*db_name)
        db_name = MONGO_DEFAULT_DB;
    mongo_t *m = calloc(1, sizeof *m);
    bson_error_t e;
    if (!m) {
        mongoc_uri_destroy(u);
        mongo__reason(err, errlen, "out of memory");
        return ERR_STORE;
    }
    m->base.ops = &mongo__ops;
    m->client = mongoc_client_new_from_uri_with_error(u, &e);
    if (!m->client) {
        mongo__reason(err, errlen, "MongoDB client: %s", e.message);
        mongoc_uri_destroy(u);
        free(m);
        return ERR_CONFIG;
    }
    /* Version 2 reports server errors in MONGOC_ERROR_SERVER with the
     * server's own code, which mongo__classify reads. */
    mongoc_client_set_error_api(m->client, MONGOC_ERROR_API_VERSION_2);
    m->db = mongoc_client_get_database(m->client, db_name);
    m->msgs = mongoc_client_get_collection(m->client, db_name, "messages");
    m->chats = mongoc_client_get_collection(m->client, db_name, "chats");
    m->marks = mongoc_client_get_collection(m->client, db_name, "read_markers");
    m->notifs = mongoc_client_get_collection(m->client, db_name, "notifications");
    mongoc_uri_destroy(u);

    const char *what = "ping";
    if (!mongo__ping(m, &e) || !mongo__setup(m, &e, &what)) {
        mongo__err(&e, what);
        mongo__reason(err, errlen, "MongoDB %s: %s", what, e.message);
        mongo_close(&m->base);
        return ERR_STORE;
    }
    *out = &m->base;
    return 0;
}
