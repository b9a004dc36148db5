/* lite.c - the SQLite store backend: the records of protocol.md §11 kept in
 * one database file, tables named as the MongoDB collections, one row per
 * document, columns named as the fields, dates as milliseconds.
 *
 * Thread: only the persistence thread that opened a lite_t calls into it (the
 * writer and the reader each open their own), so the connection is opened
 * with SQLITE_OPEN_NOMUTEX and the prepared statements are cached in the
 * struct without locking.
 *
 * Invariants:
 *   - Every cached statement is reset and its bindings cleared after each use
 *     (lite__done), so no statement holds a read snapshot or points at a
 *     caller's bytes between calls.
 *   - chats.members (the JSON array operators read) and chat_members (the side
 *     table that indexes membership by user, standing in for MongoDB's index
 *     on members) change together in one transaction.
 *   - chats.lastSeq only grows; the true last seq of a room is
 *     max(chats.lastSeq, max(messages.seq)), which is what readers report.
 *   - read_markers.seq only grows.
 *   - A write that fails part way is rolled back before we return, so the
 *     connection is never left inside a transaction.
 *
 * Durability (protocol.md §8, "confirmed means durable"): WAL journal with
 * synchronous=FULL. With synchronous=NORMAL, WAL mode syncs only at
 * checkpoints, so a commit we already confirmed could vanish on power loss;
 * FULL syncs the WAL on every commit, one fsync per batch, which the
 * persistence actor's batching amortises.
 */
#include "persistence/lite.h"

#include "src/err.h"

#include <bson/bson.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LITE_BUSY_TIMEOUT_MS 5000

static const char lite__schema[] =
    "CREATE TABLE IF NOT EXISTS messages("
    " _id TEXT PRIMARY KEY, roomId TEXT NOT NULL, seq INTEGER NOT NULL,"
    " senderId TEXT NOT NULL, senderName TEXT NOT NULL, tempId TEXT NOT NULL,"
    " type TEXT NOT NULL, body TEXT NOT NULL, replyTo INTEGER, ts INTEGER NOT NULL,"
    " editedAt INTEGER, deleted INTEGER,"
    " UNIQUE(roomId, seq), UNIQUE(senderId, tempId));"
    "CREATE TABLE IF NOT EXISTS chats("
    " _id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',"
    " members TEXT NOT NULL DEFAULT '[]', createdAt INTEGER NOT NULL,"
    " lastSeq INTEGER NOT NULL DEFAULT 0);"
    /* WITHOUT ROWID: rows are just the key, so the table is its own index. */
    "CREATE TABLE IF NOT EXISTS chat_members("
    " chatId TEXT NOT NULL, userId TEXT NOT NULL, PRIMARY KEY(chatId, userId)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS chat_members_userId ON chat_members(userId);"
    "CREATE TABLE IF NOT EXISTS read_markers("
    " _id TEXT PRIMARY KEY, roomId TEXT NOT NULL, userId TEXT NOT NULL, seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS notifications("
    " _id TEXT PRIMARY KEY, userId TEXT NOT NULL, kind TEXT NOT NULL, data TEXT,"
    " ts INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS notifications_userId_ts ON notifications(userId, ts DESC);";

/* Column lists shared by the statements that build records (lite__msg_row,
 * lite__chat_row read them by these positions). */
#define LITE_MSG_COLS \
    "_id, roomId, seq, senderId, senderName, tempId, type, body, replyTo, ts, editedAt, deleted"
#define LITE_CHAT_COLS \
    "_id, type, name, members, createdAt, max(lastSeq, coalesce((SELECT max(seq) FROM " \
    "messages WHERE messages.roomId = chats._id), 0))"

enum {
    LITE_ST_BEGIN_W,
    LITE_ST_BEGIN_R,
    LITE_ST_COMMIT,
    LITE_ST_ROLLBACK,
    LITE_ST_MSG_INSERT,
    LITE_ST_MSG_BY_TEMP,
    LITE_ST_CHAT_BUMP,
    LITE_ST_MSG_SINCE,
    LITE_ST_MSG_BEFORE,
    LITE_ST_MSG_LAST,
    LITE_ST_UNREAD,
    LITE_ST_CHAT_INSERT,
    LITE_ST_CHAT_GET,
    LITE_ST_CHATS_ALL,
    LITE_ST_CHATS_USER,
    LITE_ST_MEMBERS_GET,
    LITE_ST_MEMBERS_SET,
    LITE_ST_MEMBER_ADD,
    LITE_ST_MEMBER_DEL,
    LITE_ST_MARK_SET,
    LITE_ST_MARK_GET,
    LITE_ST_NOTIF_ADD,
    LITE_ST_NOTIF_LIST,
    LITE_ST_NOTIF_DEL,
    LITE_ST_NOTIF_SWEEP,
    LITE_ST_PING,
    LITE_ST__COUNT
};

static const char *const lite__sql[LITE_ST__COUNT] = {
    /* IMMEDIATE takes the write lock up front, so a busy database fails at
     * BEGIN (nothing done yet) rather than half way through a batch. */
    [LITE_ST_BEGIN_W] = "BEGIN IMMEDIATE",
    [LITE_ST_BEGIN_R] = "BEGIN",
    [LITE_ST_COMMIT] = "COMMIT",
    [LITE_ST_ROLLBACK] = "ROLLBACK",
    [LITE_ST_MSG_INSERT] =
        "INSERT INTO messages(_id, roomId, seq, senderId, senderName, tempId, type, body,"
        " replyTo, ts, editedAt, deleted) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [LITE_ST_MSG_BY_TEMP] = "SELECT _id, seq, roomId FROM messages WHERE senderId = ?1 AND tempId = ?2",
    [LITE_ST_CHAT_BUMP] = "UPDATE chats SET lastSeq = max(lastSeq, ?2) WHERE _id = ?1",
    [LITE_ST_MSG_SINCE] = "SELECT " LITE_MSG_COLS " FROM messages"
                          " WHERE roomId = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3",
    [LITE_ST_MSG_BEFORE] = "SELECT " LITE_MSG_COLS " FROM messages"
                           " WHERE roomId = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    [LITE_ST_MSG_LAST] = "SELECT " LITE_MSG_COLS " FROM messages"
                         " WHERE roomId = ?1 ORDER BY seq DESC LIMIT 1",
    [LITE_ST_UNREAD] =
        "SELECT count(*) FROM messages WHERE roomId = ?1 AND senderId <> ?2"
        " AND coalesce(deleted, 0) = 0 AND seq > coalesce("
        "(SELECT seq FROM read_markers WHERE _id = ?1 || '|' || ?2), 0)",
    [LITE_ST_CHAT_INSERT] = "INSERT INTO chats(_id, type, name, members, createdAt, lastSeq)"
                            " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [LITE_ST_CHAT_GET] = "SELECT " LITE_CHAT_COLS " FROM chats WHERE _id = ?1",
    [LITE_ST_CHATS_ALL] = "SELECT " LITE_CHAT_COLS " FROM chats ORDER BY _id",
    [LITE_ST_CHATS_USER] = "SELECT " LITE_CHAT_COLS " FROM chats"
                           " WHERE _id IN (SELECT chatId FROM chat_members WHERE userId = ?1)",
    [LITE_ST_MEMBERS_GET] = "SELECT members FROM chats WHERE _id = ?1",
    [LITE_ST_MEMBERS_SET] = "UPDATE chats SET members = ?2 WHERE _id = ?1",
    [LITE_ST_MEMBER_ADD] = "INSERT OR IGNORE INTO chat_members(chatId, userId) VALUES(?1, ?2)",
    [LITE_ST_MEMBER_DEL] = "DELETE FROM chat_members WHERE chatId = ?1 AND userId = ?2",
    [LITE_ST_MARK_SET] = "INSERT INTO read_markers(_id, roomId, userId, seq)"
                         " VALUES(?1 || '|' || ?2, ?1, ?2, ?3)"
                         " ON CONFLICT(_id) DO UPDATE SET seq = max(seq, excluded.seq)",
    [LITE_ST_MARK_GET] = "SELECT seq FROM read_markers WHERE _id = ?1 || '|' || ?2",
    [LITE_ST_NOTIF_ADD] = "INSERT INTO notifications(_id, userId, kind, data, ts) VALUES(?1, ?2, ?3, ?4, ?5)",
    [LITE_ST_NOTIF_LIST] = "SELECT _id, kind, data, ts FROM notifications WHERE userId = ?1 ORDER BY ts, _id",
    [LITE_ST_NOTIF_DEL] = "DELETE FROM notifications WHERE _id = ?1",
    [LITE_ST_NOTIF_SWEEP] = "DELETE FROM notifications WHERE ts < ?1",
    [LITE_ST_PING] = "SELECT 1",
};

typedef struct {
    store_t base;                       /* first, so a store_t * is a lite_t *   */
    sqlite3 *db;                        /* owned; the opening thread only        */
    sqlite3_stmt *st[LITE_ST__COUNT];   /* prepared at open, finalized at close  */
} lite_t;

static lite_t *lite__from(store_t *s) { return (lite_t *)s; }

/* The one place this file writes to the log, so swapping in the logging
 * module later is a one-line change. */
static void lite__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void lite__log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("store(sqlite): ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* lite__reason writes the one-line reason lite_open hands back. */
static void lite__reason(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lite__reason(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* lite__err turns a SQLite result code into ours, once, at the module edge
 * (STYLE.md §5); the detail goes to the log. Call it before resetting the
 * statement so sqlite3_errmsg still describes this failure. */
static int lite__err(lite_t *l, int rc, const char *what)
{
    lite__log("%s: %s (%s, code %d)", what, sqlite3_errmsg(l->db), sqlite3_errstr(rc), rc);
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_TOOBIG:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_MISUSE:
        return ERR_STORE_FATAL;   /* the same input would fail again */
    default:
        return ERR_STORE;         /* BUSY, LOCKED, IOERR, FULL, ...: may pass */
    }
}

static void lite__done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement without parameters or rows (BEGIN, COMMIT); returns the
 * SQLite code of the step. */
static int lite__exec(lite_t *l, int idx)
{
    int rc = sqlite3_step(l->st[idx]);
    if (rc != SQLITE_DONE)
        rc = lite__err(l, rc, lite__sql[idx]);
    else
        rc = 0;
    sqlite3_reset(l->st[idx]);
    return rc;
}

/* lite__rollback ends a failed transaction. SQLite may already have rolled
 * back on its own (IOERR, FULL), hence the autocommit test. */
static void lite__rollback(lite_t *l)
{
    if (!sqlite3_get_autocommit(l->db))
        (void)lite__exec(l, LITE_ST_ROLLBACK);
}

static const char *lite__col(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static int lite__bind_str(sqlite3_stmt *st, int i, const char *s)
{
    /* STATIC: the caller's string outlives the step, and lite__done clears
     * the binding before the statement is used again. */
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* lite__bind_opt binds v, or NULL when v is 0 ("absent" in our records). */
static int lite__bind_opt(sqlite3_stmt *st, int i, int64_t v)
{
    return v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* lite__msg_row builds a message from a row of LITE_MSG_COLS. NULL on ENOMEM. */
static store_msg_t *lite__msg_row(sqlite3_stmt *st)
{
    const char *type_s = lite__col(st, 6);
    int type = store_msg_type_parse(type_s);
    if (type < 0) {
        /* An operator's edit, or a newer version's type: keep the message
         * readable rather than hide a room's history behind one row. */
        lite__log("message %s: unknown type \"%s\", read as text", lite__col(st, 0), type_s);
        type = STORE_MSG_TEXT;
    }
    const char *body = (const char *)sqlite3_column_text(st, 7);
    size_t body_len = (size_t)sqlite3_column_bytes(st, 7);
    store_msg_t *m = store_msg_new(lite__col(st, 1), lite__col(st, 3), lite__col(st, 4),
                                   lite__col(st, 5), type, body ? body : "", body ? body_len : 0,
                                   sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 8),
                                   sqlite3_column_int64(st, 9));
    if (!m)
        return NULL;
    snprintf(m->id, sizeof m->id, "%s", lite__col(st, 0));
    m->edited_at = sqlite3_column_int64(st, 10);
    m->deleted = sqlite3_column_int64(st, 11) != 0;
    return m;
}

/* lite__insert_conflict decides a message whose INSERT hit a constraint:
 * either its (senderId, tempId) is already stored (a resend: ERR_DUP with
 * the stored id and seq), or its (roomId, seq) slot belongs to another
 * message (ERR_STORE_FATAL for this one). Returns 0, or an error when the
 * lookup itself failed and the batch must be rolled back. */
static int lite__insert_conflict(lite_t *l, const store_msg_t *m, store_result_t *r)
{
    sqlite3_stmt *st = l->st[LITE_ST_MSG_BY_TEMP];
    lite__bind_str(st, 1, m->sender_id);
    lite__bind_str(st, 2, m->temp_id);
    int rc = sqlite3_step(st), err = 0;
    if (rc == SQLITE_ROW) {
        r->status = ERR_DUP;
        snprintf(r->id, sizeof r->id, "%s", lite__col(st, 0));
        r->seq = sqlite3_column_int64(st, 1);
        snprintf(r->room_id, sizeof r->room_id, "%s", lite__col(st, 2));
    } else if (rc == SQLITE_DONE) {
        /* Also covers an _id collision, which ObjectIds (process-unique
         * random part + counter) make practically impossible. */
        lite__log("message %s/%" PRId64 " (%s, %s) refused: seq taken by another message",
                  m->room_id, m->seq, m->sender_id, m->temp_id);
        r->status = ERR_STORE_FATAL;
        r->id[0] = '\0';
        r->seq = m->seq;
    } else {
        err = lite__err(l, rc, "insert_batch: duplicate lookup");
    }
    lite__done(st);
    return err;
}

/* lite__insert_one inserts one message inside the batch's transaction and
 * decides r. Returns 0, or an error when the batch must be rolled back. */
static int lite__insert_one(lite_t *l, const store_msg_t *m, store_result_t *r)
{
    bson_oid_t oid;
    bson_oid_init(&oid, NULL);
    bson_oid_to_string(&oid, r->id);

    sqlite3_stmt *st = l->st[LITE_ST_MSG_INSERT];
    int rc = lite__bind_str(st, 1, r->id);
    if (rc == SQLITE_OK) rc = lite__bind_str(st, 2, m->room_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, m->seq);
    if (rc == SQLITE_OK) rc = lite__bind_str(st, 4, m->sender_id);
    if (rc == SQLITE_OK) rc = lite__bind_str(st, 5, m->sender_name);
    if (rc == SQLITE_OK) rc = lite__bind_str(st, 6, m->temp_id);
    if (rc == SQLITE_OK) rc = lite__bind_str(st, 7, store_msg_type_name(m->type));
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 8, m->body, (int)m->body_len, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = lite__bind_opt(st, 9, m->reply_to);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 10, m->ts);
    if (rc == SQLITE_OK) rc = lite__bind_opt(st, 11, m->edited_at);
    if (rc == SQLITE_OK) rc = m->deleted ? sqlite3_bind_int(st, 12, 1) : sqlite3_bind_null(st, 12);
    if (rc != SQLITE_OK) {
        /* Binding with SQLITE_STATIC allocates nothing, so a failure here
         * (TOOBIG) is about this message, not the database. */
        lite__err(l, rc, "insert_batch: bind");
        lite__done(st);
        r->status = ERR_STORE_FATAL;
        r->id[0] = '\0';
        r->seq = m->seq;
        return 0;
    }
    rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_DONE) {
        r->status = 0;
        r->seq = m->seq;
    } else if ((rc & 0xff) != SQLITE_CONSTRAINT) {
        err = lite__err(l, rc, "insert_batch: insert");
    }
    /* Reset before the conflict lookup: a constraint failure only aborts
     * this statement, the transaction goes on. */
    lite__done(st);
    if (err)
        return err;
    if (rc != SQLITE_DONE)
        return lite__insert_conflict(l, m, r);

    sqlite3_stmt *bump = l->st[LITE_ST_CHAT_BUMP];
    lite__bind_str(bump, 1, m->room_id);
    sqlite3_bind_int64(bump, 2, m->seq);
    rc = sqlite3_step(bump);
    if (rc != SQLITE_DONE)
        err = lite__err(l, rc, "insert_batch: chats.lastSeq");
    lite__done(bump);
    return err;
}

static int lite_insert_batch(store_t *s, store_msg_t *const *msgs, size_t n, store_result_t *res)
{
    lite_t *l = lite__from(s);
    if (lite__exec(l, LITE_ST_BEGIN_W))
        return ERR_STORE;
    for (size_t i = 0; i < n; i++)
        if (lite__insert_one(l, msgs[i], &res[i]))
            goto fail;
    if (lite__exec(l, LITE_ST_COMMIT))
        goto fail;
    /* The ids travel in res only: the messages are shared with the shards
     * (read concurrently), so the store never writes to them. */
    return 0;
fail:
    lite__rollback(l);
    return ERR_STORE;
}

/* lite__page runs MSG_SINCE or MSG_BEFORE (newest first) and keeps the
 * newest messages that fit `limit` and `max_bytes` (always at least one),
 * then returns them ascending. One row past the kept ones tells *more. */
static int lite__page(lite_t *l, int idx, const char *room_id, int64_t bound, size_t limit,
                      size_t max_bytes, store_msg_t ***out, size_t *n, bool *more)
{
    *out = NULL;
    *n = 0;
    *more = false;
    sqlite3_stmt *st = l->st[idx];
    lite__bind_str(st, 1, room_id);
    sqlite3_bind_int64(st, 2, bound);
    sqlite3_bind_int64(st, 3, limit >= (size_t)INT64_MAX ? -1 : (int64_t)limit + 1);

    store_page_t pg = { .limit = limit, .max_bytes = max_bytes };
    int rc, err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && !store_page_full(&pg)) {
        store_msg_t *m = lite__msg_row(st);
        int taken = m ? store_page_offer(&pg, m) : -ENOMEM;
        if (taken <= 0) {
            err = taken;
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = lite__err(l, rc, lite__sql[idx]);
    lite__done(st);
    if (err) {
        store_page_drop(&pg);
        return err;
    }
    return store_page_finish(&pg, out, n, more);
}

static int lite_messages_since(store_t *s, const char *room_id, int64_t since_seq, size_t limit,
                               size_t max_bytes, store_msg_t ***out, size_t *n, bool *more)
{
    return lite__page(lite__from(s), LITE_ST_MSG_SINCE, room_id, since_seq, limit, max_bytes,
                      out, n, more);
}

static int lite_messages_before(store_t *s, const char *room_id, int64_t before_seq, size_t limit,
                                size_t max_bytes, store_msg_t ***out, size_t *n, bool *more)
{
    return lite__page(lite__from(s), LITE_ST_MSG_BEFORE, room_id,
                      before_seq > 0 ? before_seq : INT64_MAX, limit, max_bytes, out, n, more);
}

/* ------------------------------------------------------------------ */
/* Chats                                                               */

/* lite__members_parse reads the members JSON array into a malloc'd array
 * of malloc'd strings. Returns 0, -ENOMEM, or ERR_STORE_FATAL for a value
 * that is not an array of strings (a damaged row). */
static int lite__members_parse(const char *chat_id, const char *text, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    json_error_t jerr;
    json_t *arr = json_loads(text, 0, &jerr);
    if (!arr) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return -ENOMEM;
        lite__log("chat %s: members is not JSON: %s", chat_id, jerr.text);
        return ERR_STORE_FATAL;
    }
    int err = 0;
    size_t cnt = json_array_size(arr);
    if (!json_is_array(arr)) {
        lite__log("chat %s: members is not an array", chat_id);
        err = ERR_STORE_FATAL;
        goto out;
    }
    char **v = cnt ? calloc(cnt, sizeof *v) : NULL;
    if (cnt && !v) {
        err = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *u = json_string_value(json_array_get(arr, i));
        if (!u) {
            lite__log("chat %s: members[%zu] is not a string", chat_id, i);
            err = ERR_STORE_FATAL;
        } else if (!(v[i] = strdup(u))) {
            err = -ENOMEM;
        }
        if (err) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            goto out;
        }
    }
    *out = v;
    *n = cnt;
out:
    json_decref(arr);
    return err;
}

/* lite__chat_row builds a chat from a row of LITE_CHAT_COLS. */
static int lite__chat_row(sqlite3_stmt *st, store_chat_t **out)
{
    *out = NULL;
    const char *id = lite__col(st, 0);
    if (strlen(id) > STORE_ID_MAX) {
        lite__log("chat id longer than %d bytes: %.40s...", STORE_ID_MAX, id);
        return ERR_STORE_FATAL;
    }
    store_chat_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    strcpy(c->id, id);
    c->type = store_chat_type_parse(lite__col(st, 1));
    if (c->type < 0) {
        /* Group is the safe reading of an unknown type: members only,
         * whereas channel would let anyone join. */
        lite__log("chat %s: unknown type \"%s\", read as group", id, lite__col(st, 1));
        c->type = STORE_CHAT_GROUP;
    }
    c->created_at = sqlite3_column_int64(st, 4);
    c->last_seq = sqlite3_column_int64(st, 5);
    int err = -ENOMEM;
    c->name = strdup(lite__col(st, 2));
    if (!c->name)
        goto fail;
    err = lite__members_parse(id, lite__col(st, 3), &c->members, &c->n_members);
    if (err)
        goto fail;
    *out = c;
    return 0;
fail:
    store_chat_free(c);
    return err;
}

static int lite_chat_create(store_t *s, const store_chat_t *c)
{
    lite_t *l = lite__from(s);
    const char *type = store_chat_type_name(c->type);
    if (!type) {
        lite__log("chat %s: invalid type %d", c->id, c->type);
        return ERR_STORE_FATAL;
    }
    json_t *arr = json_array();
    if (!arr)
        return -ENOMEM;
    char *members = NULL;
    int err = lite__exec(l, LITE_ST_BEGIN_W);
    if (err) {
        json_decref(arr);
        return err;
    }
    /* 1. chat_members first: INSERT OR IGNORE drops repeated ids, and only
     *    ids it actually added go into the JSON array, so both agree. */
    sqlite3_stmt *st = l->st[LITE_ST_MEMBER_ADD];
    for (size_t i = 0; i < c->n_members; i++) {
        lite__bind_str(st, 1, c->id);
        lite__bind_str(st, 2, c->members[i]);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            err = lite__err(l, rc, "chat_create: chat_members");
        lite__done(st);
        if (err)
            goto fail;
        /* json_string only fails on ENOMEM here: ids are validated ASCII. */
        if (sqlite3_changes(l->db) == 1 && json_array_append_new(arr, json_string(c->members[i]))) {
            err = -ENOMEM;
            goto fail;
        }
    }
    members = json_dumps(arr, JSON_COMPACT);
    if (!members) {
        err = -ENOMEM;
        goto fail;
    }
    /* 2. The chat row; an existing id makes the whole create a no-op. */
    st = l->st[LITE_ST_CHAT_INSERT];
    lite__bind_str(st, 1, c->id);
    lite__bind_str(st, 2, type);
    lite__bind_str(st, 3, c->name ? c->name : "");
    lite__bind_str(st, 4, members);
    sqlite3_bind_int64(st, 5, c->created_at);
    sqlite3_bind_int64(st, 6, c->last_seq);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        err = ERR_DUP;
    else if (rc != SQLITE_DONE)
        err = lite__err(l, rc, "chat_create: chats");
    lite__done(st);
    if (err)
        goto fail;
    err = lite__exec(l, LITE_ST_COMMIT);
    if (err)
        goto fail;
    free(members);
    json_decref(arr);
    return 0;
fail:
    lite__rollback(l);
    free(members);
    json_decref(arr);
    return err;
}

static int lite_chat_get(store_t *s, const char *id, store_chat_t **out)
{
    lite_t *l = lite__from(s);
    sqlite3_stmt *st = l->st[LITE_ST_CHAT_GET];
    *out = NULL;
    lite__bind_str(st, 1, id);
    int rc = sqlite3_step(st), err;
    if (rc == SQLITE_ROW)
        err = lite__chat_row(st, out);
    else if (rc == SQLITE_DONE)
        err = ERR_NOT_FOUND;
    else
        err = lite__err(l, rc, "chat_get");
    lite__done(st);
    return err;
}

/* each() runs while the statement is open, so it must not call chats_all on
 * the same store again (the other operations are fine). */
static int lite_chats_all(store_t *s, int (*each)(void *ud, store_chat_t *c), void *ud)
{
    lite_t *l = lite__from(s);
    sqlite3_stmt *st = l->st[LITE_ST_CHATS_ALL];
    int rc, err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_chat_t *c;
        err = lite__chat_row(st, &c);
        if (err == ERR_STORE_FATAL) {
            err = 0;    /* logged; one damaged row must not keep the broker from starting */
            continue;
        }
        if (err || (err = each(ud, c)) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = lite__err(l, rc, "chats_all");
    lite__done(st);
    return err;
}

/* lite__chat_view fills the per-user fields of one chat: unread and
 * last_msg. Runs inside chats_for_user's read transaction. */
static int lite__chat_view(lite_t *l, store_chat_t *c, const char *user_id)
{
    sqlite3_stmt *st = l->st[LITE_ST_UNREAD];
    lite__bind_str(st, 1, c->id);
    lite__bind_str(st, 2, user_id);
    int rc = sqlite3_step(st), err = 0;
    if (rc == SQLITE_ROW)
        c->unread = sqlite3_column_int64(st, 0);
    else
        err = lite__err(l, rc, "chats_for_user: unread");
    lite__done(st);
    if (err)
        return err;

    st = l->st[LITE_ST_MSG_LAST];
    lite__bind_str(st, 1, c->id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        err = (c->last_msg = lite__msg_row(st)) ? 0 : -ENOMEM;
    else if (rc != SQLITE_DONE)
        err = lite__err(l, rc, "chats_for_user: last message");
    lite__done(st);
    return err;
}

static int lite_chats_for_user(store_t *s, const char *user_id, store_chat_t ***out, size_t *n)
{
    lite_t *l = lite__from(s);
    *out = NULL;
    *n = 0;
    /* One read transaction so unread, last_msg and lastSeq agree with each
     * other even while the writer commits. */
    int err = lite__exec(l, LITE_ST_BEGIN_R);
    if (err)
        return err;
    store_chat_t **v = NULL;
    size_t cnt = 0, cap = 0;
    sqlite3_stmt *st = l->st[LITE_ST_CHATS_USER];
    lite__bind_str(st, 1, user_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_chat_t *c;
        err = lite__chat_row(st, &c);
        if (err)
            break;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            store_chat_t **nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                store_chat_free(c);
                err = -ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[cnt++] = c;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = lite__err(l, rc, "chats_for_user");
    lite__done(st);
    for (size_t i = 0; i < cnt && !err; i++)
        err = lite__chat_view(l, v[i], user_id);
    if (!err)
        err = lite__exec(l, LITE_ST_COMMIT);
    if (err) {
        lite__rollback(l);
        for (size_t i = 0; i < cnt; i++)
            store_chat_free(v[i]);
        free(v);
        return err;
    }
    store_chats_sort(v, cnt);
    *out = v;
    *n = cnt;
    return 0;
}

/* lite__members_edit adds user_id to, or removes it from, the JSON array.
 * Returns 1 when the array changed, 0 when it already said so, -ENOMEM. */
static int lite__members_edit(json_t *arr, const char *user_id, bool add)
{
    int changed = 0;
    for (size_t i = json_array_size(arr); i-- > 0;) {
        const char *u = json_string_value(json_array_get(arr, i));
        if (!u || strcmp(u, user_id) != 0)
            continue;
        if (add)
            return 0;
        json_array_remove(arr, i);
        changed = 1;
    }
    if (!add)
        return changed;
    return json_array_append_new(arr, json_string(user_id)) ? -ENOMEM : 1;
}

/* lite__member_change updates chats.members and chat_members together.
 * Idempotent: each side is brought to the wanted state on its own, which
 * also repairs a pair that an operator's edit left disagreeing.
 *   1. Lock, read the JSON array (ERR_NOT_FOUND if the chat is absent).
 *   2. Edit it and write it back if it changed.
 *   3. Insert or delete the chat_members row.
 * Rewriting the array is O(members), as MongoDB's $addToSet is. */
static int lite__member_change(lite_t *l, const char *chat_id, const char *user_id, bool add)
{
    json_t *arr = NULL;
    char *text = NULL;
    int err = lite__exec(l, LITE_ST_BEGIN_W);
    if (err)
        return err;
    /* 1. */
    sqlite3_stmt *st = l->st[LITE_ST_MEMBERS_GET];
    lite__bind_str(st, 1, chat_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        json_error_t jerr;
        arr = json_loads(lite__col(st, 0), 0, &jerr);
        if (!arr || !json_is_array(arr)) {
            /* Rebuild from the empty array rather than refuse the change. */
            lite__log("chat %s: members unreadable, rewritten", chat_id);
            json_decref(arr);
            arr = json_array();
        }
        if (!arr)
            err = -ENOMEM;
    } else if (rc == SQLITE_DONE) {
        err = ERR_NOT_FOUND;
    } else {
        err = lite__err(l, rc, "member change: read");
    }
    lite__done(st);
    if (err)
        goto fail;
    /* 2. */
    int changed = lite__members_edit(arr, user_id, add);
    if (changed < 0) {
        err = changed;
        goto fail;
    }
    if (changed) {
        if (!(text = json_dumps(arr, JSON_COMPACT))) {
            err = -ENOMEM;
            goto fail;
        }
        st = l->st[LITE_ST_MEMBERS_SET];
        lite__bind_str(st, 1, chat_id);
        lite__bind_str(st, 2, text);
        if ((rc = sqlite3_step(st)) != SQLITE_DONE)
            err = lite__err(l, rc, "member change: members");
        lite__done(st);
        if (err)
            goto fail;
    }
    /* 3. */
    st = l->st[add ? LITE_ST_MEMBER_ADD : LITE_ST_MEMBER_DEL];
    lite__bind_str(st, 1, chat_id);
    lite__bind_str(st, 2, user_id);
    if ((rc = sqlite3_step(st)) != SQLITE_DONE)
        err = lite__err(l, rc, "member change: chat_members");
    lite__done(st);
    if (err || (err = lite__exec(l, LITE_ST_COMMIT)))
        goto fail;
    free(text);
    json_decref(arr);
    return 0;
fail:
    lite__rollback(l);
    free(text);
    json_decref(arr);
    return err;
}

static int lite_chat_add_member(store_t *s, const char *chat_id, const char *user_id)
{
    return lite__member_change(lite__from(s), chat_id, user_id, true);
}

static int lite_chat_remove_member(store_t *s, const char *chat_id, const char *user_id)
{
    return lite__member_change(lite__from(s), chat_id, user_id, false);
}

/* ------------------------------------------------------------------ */
/* Read markers, ping, open and close                                  */

static int lite_read_marker_set(store_t *s, const char *room_id, const char *user_id, int64_t seq)
{
    lite_t *l = lite__from(s);
    sqlite3_stmt *st = l->st[LITE_ST_MARK_SET];
    lite__bind_str(st, 1, room_id);
    lite__bind_str(st, 2, user_id);
    sqlite3_bind_int64(st, 3, seq);
    int rc = sqlite3_step(st), err = 0;
    if (rc != SQLITE_DONE)
        err = lite__err(l, rc, "read_marker_set");
    lite__done(st);
    return err;
}

static int lite_read_marker_get(store_t *s, const char *room_id, const char *user_id, int64_t *seq)
{
    lite_t *l = lite__from(s);
    sqlite3_stmt *st = l->st[LITE_ST_MARK_GET];
    *seq = 0;
    lite__bind_str(st, 1, room_id);
    lite__bind_str(st, 2, user_id);
    int rc = sqlite3_step(st), err = 0;
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        err = lite__err(l, rc, "read_marker_get");
    lite__done(st);
    return err;
}

static int lite_notif_add(store_t *s, const char *user_id, const char *kind, const char *data_json, int64_t ts,
                          char id_out[STORE_OID_LEN + 1])
{
    lite_t *l = lite__from(s);
    json_error_t jerr;
    json_t *d = json_loads(data_json, JSON_REJECT_DUPLICATES, &jerr);
    bool object = json_is_object(d);
    json_decref(d);
    if (!object)
        return ERR_STORE_FATAL;   /* the caller's bug or a bad publish body */
    bson_oid_t oid;
    bson_oid_init(&oid, NULL);
    bson_oid_to_string(&oid, id_out);
    sqlite3_stmt *st = l->st[LITE_ST_NOTIF_ADD];
    lite__bind_str(st, 1, id_out);
    lite__bind_str(st, 2, user_id);
    lite__bind_str(st, 3, kind);
    lite__bind_str(st, 4, data_json);
    sqlite3_bind_int64(st, 5, ts);
    int rc = sqlite3_step(st), err = rc == SQLITE_DONE ? 0 : lite__err(l, rc, "notif_add");
    lite__done(st);
    return err;
}

static int lite_notif_list(store_t *s, const char *user_id, store_notif_t ***out, size_t *n)
{
    lite_t *l = lite__from(s);
    sqlite3_stmt *st = l->st[LITE_ST_NOTIF_LIST];
    store_notif_t **v = NULL;
    size_t len = 0, cap = 0;
    int rc, err = 0;
    lite__bind_str(st, 1, user_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            store_notif_t **nv = realloc(v, cap * sizeof(*nv));
            if (!nv) {
                err = -ENOMEM;
                break;
            }
            v = nv;
        }
        store_notif_t *x = calloc(1, sizeof(*x));
        if (!x || !(x->kind = strdup(lite__col(st, 1))) || !(x->data = strdup(lite__col(st, 2)))) {
            store_notif_free(x);
            err = -ENOMEM;
            break;
        }
        snprintf(x->id, sizeof(x->id), "%s", lite__col(st, 0));
        x->ts = sqlite3_column_int64(st, 3);
        v[len++] = x;
    }
    if (!err && rc != SQLITE_DONE)
        err = lite__err(l, rc, "notif_list");
    lite__done(st);
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

static int lite_notif_delete(store_t *s, const char *id)
{
    lite_t *l = lite__from(s);
    sqlite3_stmt *st = l->st[LITE_ST_NOTIF_DEL];
    lite__bind_str(st, 1, id);
    int rc = sqlite3_step(st), err = rc == SQLITE_DONE ? 0 : lite__err(l, rc, "notif_delete");
    lite__done(st);
    return err;
}

static int lite_notif_sweep(store_t *s, int64_t before_ts, uint64_t *removed)
{
    lite_t *l = lite__from(s);
    sqlite3_stmt *st = l->st[LITE_ST_NOTIF_SWEEP];
    sqlite3_bind_int64(st, 1, before_ts);
    int rc = sqlite3_step(st), err = rc == SQLITE_DONE ? 0 : lite__err(l, rc, "notif_sweep");
    *removed = err ? 0 : (uint64_t)sqlite3_changes(l->db);
    lite__done(st);
    return err;
}

static int lite_ping(store_t *s)
{
    lite_t *l = lite__from(s);
    int rc = sqlite3_step(l->st[LITE_ST_PING]), err = 0;
    if (rc != SQLITE_ROW)
        err = lite__err(l, rc, "ping");
    lite__done(l->st[LITE_ST_PING]);
    return err;
}

static void lite_close(store_t *s)
{
    lite_t *l = lite__from(s);
    for (int i = 0; i < LITE_ST__COUNT; i++)
        sqlite3_finalize(l->st[i]);
    /* Every statement is finalized, so close cannot fail with BUSY; the last
     * connection to close also checkpoints the WAL into the database. */
    if (sqlite3_close(l->db) != SQLITE_OK)
        lite__log("close: %s", sqlite3_errmsg(l->db));
    free(l);
}

static const store_ops_t lite__ops = {
    .name = "sqlite",
    .insert_batch = lite_insert_batch,
    .messages_since = lite_messages_since,
    .messages_before = lite_messages_before,
    .chat_create = lite_chat_create,
    .chat_get = lite_chat_get,
    .chats_all = lite_chats_all,
    .chats_for_user = lite_chats_for_user,
    .chat_add_member = lite_chat_add_member,
    .chat_remove_member = lite_chat_remove_member,
    .read_marker_set = lite_read_marker_set,
    .read_marker_get = lite_read_marker_get,
    .notif_add = lite_notif_add,
    .notif_list = lite_notif_list,
    .notif_delete = lite_notif_delete,
    .notif_sweep = lite_notif_sweep,
    .ping = lite_ping,
    .close = lite_close,
};

/* lite__mkdir_p creates the directory that holds path, and its parents.
 * Returns 0 or -errno. */
static int lite__mkdir_p(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;   /* the current directory, or "/" */
    size_t len = (size_t)(slash - path);
    char *dir = strndup(path, len);
    if (!dir)
        return -ENOMEM;
    int err = 0;
    /* Each prefix ending before a '/', then the whole directory. */
    for (size_t i = 1; i <= len && !err; i++) {
        if (i < len && dir[i] != '/')
            continue;
        dir[i] = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            err = -errno;
        if (i < len)
            dir[i] = '/';
    }
    free(dir);
    return err;
}

/* lite__setup configures the connection and prepares everything. Returns 0
 * or the failing SQLite code (its text is in sqlite3_errmsg). */
static int lite__setup(lite_t *l, const char *path)
{
    sqlite3 *db = l->db;
    int rc = sqlite3_extended_result_codes(db, 1);
    /* Writer and reader share the file; 5 s rides out a checkpoint or the
     * other's commit without surfacing a spurious failure. */
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, LITE_BUSY_TIMEOUT_MS);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* Not fatal: e.g. ":memory:" answers "memory". A rollback journal
         * with synchronous=FULL is just as durable, only slower. */
        if (strcmp(lite__col(st, 0), "wal") != 0)
            lite__log("%s: journal_mode is %s, not wal", path, lite__col(st, 0));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, lite__schema, NULL, NULL, NULL);
    for (int i = 0; i < LITE_ST__COUNT && rc == SQLITE_OK; i++)
        rc = sqlite3_prepare_v3(db, lite__sql[i], -1, SQLITE_PREPARE_PERSISTENT, &l->st[i], NULL);
    return rc;
}

int lite_open(const char *path, store_t **out, char *err, size_t errlen)
{
    *out = NULL;
    int e = lite__mkdir_p(path);
    if (e) {
        lite__log("%s: cannot create its directory: %s", path, strerror(-e));
        lite__reason(err, errlen, "cannot create the directory of %s: %s", path, strerror(-e));
        return ERR_STORE;
    }
    lite_t *l = calloc(1, sizeof *l);
    if (!l) {
        lite__reason(err, errlen, "out of memory");
        return ERR_STORE;
    }
    l->base.ops = &lite__ops;
    /* NOMUTEX: a store_t is a one-thread object (store.h). */
    int rc = sqlite3_open_v2(path, &l->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = lite__setup(l, path);
    if (rc != SQLITE_OK) {
        const char *msg = l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc);
        lite__log("%s: open: %s (code %d)", path, msg, rc);
        lite__reason(err, errlen, "cannot open %s: %s", path, msg);
        for (int i = 0; i < LITE_ST__COUNT; i++)
            sqlite3_finalize(l->st[i]);
        sqlite3_close(l->db);
        free(l);
        return ERR_STORE;
    }
    *out = &l->base;
    return 0;
}
