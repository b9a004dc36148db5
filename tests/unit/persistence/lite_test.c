/* lite_test.c - tests persistence/lite.c (the SQLite backend) and the
 * backend-independent parts of persistence/store.c.
 *
 * Runs the shared store contract (store_contract.c) on a fresh database in a
 * directory that does not exist yet, then checks what only SQLite shows:
 * the WAL journal, the table and column names of protocol.md §11, and that
 * a busy database fails a batch as a whole.
 *
 * Thread: main only. Exit 0 pass, 1 fail (STYLE.md §7).
 */
#include "tests/unit/persistence/store_contract.c"

#include "persistence/lite.h"

#include <jansson.h>
#include <sqlite3.h>
#include <sys/stat.h>

static char ltest_dir[] = "/tmp/rc_lite_XXXXXX";

static void ltest_records(void)
{
    store_msg_t *m = store_msg_new("r", NULL, "n", "t", STORE_MSG_IMAGE, "body", 4, 3, 2, 1);
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_EQ_STR(m->room_id, "r");
    CHECK_EQ_STR(m->sender_id, "");
    CHECK_EQ_STR(m->body, "body");
    CHECK_EQ_STR(m->id, "");
    CHECK_EQ_INT(m->type, STORE_MSG_IMAGE);
    CHECK_EQ_INT(m->seq, 3);
    CHECK_EQ_INT(m->reply_to, 2);
    CHECK_EQ_INT(m->ts, 1);
    /* One allocation: every string lives in strings[]. */
    CHECK(m->room_id >= m->strings && m->body > m->temp_id);
    CHECK(store_msg_ref(m) == m);
    CHECK_EQ_INT(atomic_load(&m->refs), 2);
    store_msg_unref(m);
    store_msg_unref(m);   /* ASan reports a leak or a double free here */
    store_msg_unref(NULL);

    store_msg_t *e = store_msg_new("r", "s", "n", "t", STORE_MSG_TEXT, NULL, 0, 1, 0, 1);
    CHECK(e && e->body_len == 0 && e->body[0] == '\0');
    store_msg_unref(e);

    for (int t = STORE_CHAT_DIRECT; t <= STORE_CHAT_CHANNEL; t++)
        CHECK_EQ_INT(store_chat_type_parse(store_chat_type_name(t)), t);
    CHECK_EQ_STR(store_chat_type_name(STORE_CHAT_CHANNEL), "channel");
    CHECK(store_chat_type_name(7) == NULL);
    CHECK_EQ_INT(store_chat_type_parse("Group"), -1);
    CHECK_EQ_INT(store_chat_type_parse(NULL), -1);
    CHECK_EQ_STR(store_msg_type_name(STORE_MSG_TEXT), "text");
    CHECK_EQ_INT(store_msg_type_parse("image"), STORE_MSG_IMAGE);
    CHECK_EQ_INT(store_msg_type_parse("video"), -1);

    store_chat_t c = {.id = "x", .type = STORE_CHAT_GROUP};   /* name NULL, no members */
    store_chat_t *d = store_chat_dup(&c);
    CHECK(d && d->name && d->name[0] == '\0' && d->n_members == 0 && !d->last_msg);
    store_chat_free(d);
    store_chat_free(NULL);
}

/* The estimate must never be below the real JSON encoding (it sizes the
 * 1 MiB answers); compare it with jansson's compact output. */
static void ltest_size_estimate(void)
{
    static const char *const bodies[] = {
        "", "plain", "é😀 unicode", "\"\"\"\\\\\\", "\x01\x02\x1f\n\r\t ctrl", "</script>",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        store_msg_t *m = store_msg_new("room:1", "user@x", "Zoë \"Z\"", "temp-1", STORE_MSG_IMAGE,
                                       bodies[i], strlen(bodies[i]), INT64_MAX, INT64_MAX - 1,
                                       INT64_MIN);
        if (!m)
            exit(1);
        m->edited_at = INT64_MIN;
        m->deleted = true;
        json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s%, s:I, s:I, s:s, s:I, s:b}",
                              "roomId", m->room_id, "seq", (json_int_t)m->seq,
                              "id", "0123456789abcdef01234567", "tempId", m->temp_id,
                              "senderId", m->sender_id, "senderName", m->sender_name,
                              "type", "image", "body", m->body, (size_t)m->body_len,
                              "replyTo", (json_int_t)m->reply_to, "ts", (json_int_t)m->ts,
                              "status", "confirmed", "editedAt", (json_int_t)m->edited_at,
                              "deleted", 1);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        CHECK(s != NULL);
        if (s) {
            size_t est = store_msg_size_estimate(m);
            if (est < strlen(s))
                fprintf(stderr, "estimate %zu < %zu for %s\n", est, strlen(s), s);
            CHECK(est >= strlen(s));
            CHECK(est <= strlen(s) + 64);   /* conservative, not wasteful */
        }
        free(s);
        json_decref(o);
        store_msg_unref(m);
    }
}

static void ltest_uri(void)
{
    char err[128];
    store_t *s = (store_t *)1;
    /* mongodb:// URIs belong to mongo_test.c (persistence/mongo.c). */
    CHECK_EQ_INT(store_open("redis://localhost", &s, err, sizeof err), ERR_CONFIG);
    CHECK(s == NULL);
    CHECK_EQ_STR(err, "unknown --store scheme");
    CHECK_EQ_INT(store_open("sqlite:", &s, err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(store_uri_check("./data/x.db", err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(store_uri_check("mongodb://h/db", err, sizeof err), 0);
    CHECK_EQ_INT(store_uri_check("sqlite:./data/ringcast.db", err, sizeof err), 0);
    CHECK_EQ_INT(store_uri_check(NULL, NULL, 0), ERR_CONFIG);

    /* A regular file where a directory should be: ERR_STORE with a reason. */
    char file[256], uri[300];
    snprintf(file, sizeof file, "%s/plain-file", ltest_dir);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    snprintf(uri, sizeof uri, "sqlite:%s/sub/rc.db", file);
    err[0] = '\0';
    CHECK_EQ_INT(store_open(uri, &s, err, sizeof err), ERR_STORE);
    CHECK(s == NULL && err[0] != '\0');
}

static sqlite3 *ltest_raw(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(stderr, "raw open %s: %s\n", path, db ? sqlite3_errmsg(db) : "?");
        exit(1);
    }
    return db;
}

/* ltest_text runs a one-value query; returns a malloc'd string ("" if no row). */
static char *ltest_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        out = strdup(sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
    else
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return out ? out : strdup("");
}

static void ltest_check_text(sqlite3 *db, const char *sql, const char *want)
{
    char *got = ltest_text(db, sql);
    CHECK_EQ_STR(got, want);
    free(got);
}

/* What operators see (protocol.md §11), on the database the contract filled. */
static void ltest_shape(const char *path)
{
    sqlite3 *db = ltest_raw(path);
    ltest_check_text(db, "PRAGMA journal_mode", "wal");
    ltest_check_text(db, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
                         " WHERE type = 'table' ORDER BY name)",
                     "chat_members,chats,messages,notifications,read_markers");
    ltest_check_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('messages')",
                     "_id,roomId,seq,senderId,senderName,tempId,type,body,replyTo,ts,editedAt,deleted");
    ltest_check_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('chats')",
                     "_id,type,name,members,createdAt,lastSeq");
    ltest_check_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('read_markers')",
                     "_id,roomId,userId,seq");
    ltest_check_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('notifications')",
                     "_id,userId,kind,data,ts");
    /* Stored values: types as names, absent optionals as NULL, markers keyed
     * "<roomId>|<userId>", lastSeq kept up to date by insert_batch. */
    ltest_check_text(db, "SELECT group_concat(DISTINCT type) FROM (SELECT type FROM messages"
                         " ORDER BY type)", "image,text");
    ltest_check_text(db, "SELECT count(*) FROM messages WHERE replyTo = 0 OR editedAt IS NOT NULL"
                         " OR deleted IS NOT NULL", "0");
    ltest_check_text(db, "SELECT count(*) > 0 AND count(*) = sum(_id = roomId || '|' || userId)"
                         " FROM read_markers", "1");
    ltest_check_text(db, "SELECT count(*) FROM chats WHERE lastSeq <> (SELECT coalesce(max(seq), 0)"
                         " FROM messages WHERE roomId = chats._id)", "0");
    ltest_check_text(db, "SELECT count(*) FROM chats WHERE type NOT IN ('direct','group','channel')",
                     "0");
    /* members is a JSON array that matches chat_members row for row. */
    sqlite3_stmt *st = NULL;
    CHECK_EQ_INT(sqlite3_prepare_v2(db, "SELECT members, (SELECT count(*) FROM chat_members"
                                        " WHERE chatId = chats._id) FROM chats", -1, &st, NULL),
                 SQLITE_OK);
    int rows = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        json_t *a = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        CHECK(json_is_array(a));
        CHECK_EQ_INT(json_array_size(a), sqlite3_column_int(st, 1));
        json_decref(a);
        rows++;
    }
    CHECK(rows >= 4);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Another connection holds the write lock: after the 5 s busy timeout the
 * whole batch fails with ERR_STORE and nothing of it is committed, so the
 * retry stores it as new (not as duplicates). Takes about 5 s. */
static void ltest_busy(void)
{
    char path[256], uri[300], err[256] = "";
    snprintf(path, sizeof path, "%s/busy.db", ltest_dir);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    store_t *s = NULL;
    CHECK_EQ_INT(store_open(uri, &s, err, sizeof err), 0);
    if (!s)
        return;
    sqlite3 *db = ltest_raw(path);
    CHECK_EQ_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    store_msg_t *m[2] = {contract_msg("r", "u", "t1", 1, 0, "x"), contract_msg("r", "u", "t2", 2, 0, "y")};
    store_result_t r[2];
    CHECK_EQ_INT(store_insert_batch(s, m, 2, r), ERR_STORE);
    CHECK_EQ_STR(m[0]->id, "");
    CHECK_EQ_INT(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);

    CHECK_EQ_INT(store_insert_batch(s, m, 2, r), 0);
    CHECK_EQ_INT(r[0].status, 0);
    CHECK_EQ_INT(r[1].status, 0);
    ltest_check_text(db, "SELECT count(*) FROM messages", "2");
    contract_unref_all(m, 2);
    sqlite3_close(db);
    store_close(s);
}

int main(void)
{
    if (!mkdtemp(ltest_dir)) {
        perror("mkdtemp");
        return 1;
    }
    fprintf(stderr, "lite_test: working in %s\n", ltest_dir);
    ltest_records();
    ltest_size_estimate();
    ltest_uri();

    /* sub/dir does not exist: store_open must create it (mkdir -p). */
    char path[256], uri[300];
    snprintf(path, sizeof path, "%s/sub/dir/rc.db", ltest_dir);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    CHECK_EQ_INT(store_contract_run(uri), 0);
    ltest_shape(path);
    ltest_busy();

    int rc = check_done("lite_test");
    if (rc == 0) {
        /* Keep the files of a failed run for a look with sqlite3. */
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", ltest_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "lite_test: could not remove %s\n", ltest_dir);
    }
    return rc;
}
