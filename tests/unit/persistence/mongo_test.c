/* mongo_test.c - tests persistence/mongo.c (the MongoDB backend) against
 * FerretDB v1.24.2 on its SQLite backend (tests/support/ferretdb/).
 *
 * Starts FerretDB itself on a free loopback port with a fresh directory,
 * runs the shared store contract (store_contract.c) on it, then checks what
 * only MongoDB shows: the indexes, the document shapes of protocol.md §11,
 * and an outage (a batch sent while the server is down is ERR_STORE; after
 * a restart the retry stores the new messages and reports the ones already
 * stored as ERR_DUP with their ids).
 *
 * The FerretDB binary comes from tests/support/ferretdb/build.sh
 * (.cache/ferretdb/ferretdb, or $RINGCAST_FERRETDB); without it the test is
 * skipped (exit 77). FerretDB dies with the test (PR_SET_PDEATHSIG), also
 * when a check fails or the test crashes.
 *
 * Thread: main only. Exit 0 pass, 1 fail, 77 skip (STYLE.md §7).
 */
#include "tests/unit/persistence/store_contract.c"

#include "persistence/mongo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#define MTEST_READY_MS 20000   /* FerretDB answers ping within this */

static char mtest_dir[] = "/tmp/rc_mongo_XXXXXX";
static char mtest_bin[PATH_MAX + 32];   /* a PATH_MAX directory + the suffix */
static int mtest_port;
static pid_t mtest_pid = -1;

static int64_t mtest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void mtest_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* mtest_find_bin: $RINGCAST_FERRETDB, else .cache/ferretdb/ferretdb in the
 * repository above this executable (zig-out/test-bin/, build-asan/test-bin/)
 * or above the working directory. */
static bool mtest_find_bin(void)
{
    const char *env = getenv("RINGCAST_FERRETDB");
    if (env && *env) {
        snprintf(mtest_bin, sizeof mtest_bin, "%s", env);
        return access(mtest_bin, X_OK) == 0;
    }
    char start[2][PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", start[0], sizeof start[0] - 1);
    start[0][n > 0 ? n : 0] = '\0';
    if (!getcwd(start[1], sizeof start[1]))
        start[1][0] = '\0';
    for (int s = 0; s < 2; s++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", start[s]);
        for (int up = 0; up < 5 && dir[0]; up++) {
            snprintf(mtest_bin, sizeof mtest_bin, "%s/.cache/ferretdb/ferretdb", dir);
            if (access(mtest_bin, X_OK) == 0)
                return true;
            char *slash = strrchr(dir, '/');
            if (!slash)
                break;
            *slash = '\0';
        }
    }
    return false;
}

/* mtest_free_port asks the kernel for a free loopback port. A race with
 * another process taking it before FerretDB binds shows up as FerretDB not
 * becoming ready, a clear failure. */
static int mtest_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("mongo_test: free port");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool mtest_tcp_up(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mtest_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool up = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return up;
}

static mongoc_client_t *mtest_client(void)
{
    char uri[128];
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=1000", mtest_port);
    mongoc_client_t *c = mongoc_client_new(uri);
    if (!c) {
        fprintf(stderr, "mongo_test: mongoc_client_new(%s) failed\n", uri);
        exit(1);
    }
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    return c;
}

static bool mtest_ping(void)
{
    mongoc_client_t *c = mtest_client();
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bool ok = mongoc_client_command_simple(c, "admin", cmd, NULL, NULL, NULL);
    bson_destroy(cmd);
    mongoc_client_destroy(c);
    return ok;
}

/* mtest_start runs FerretDB on mtest_port and mtest_dir and waits until a
 * TCP connect and a ping succeed. Its log goes to DIR/ferretdb.log. */
static void mtest_start(void)
{
    char listen[64], log[PATH_MAX];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", mtest_port);
    snprintf(log, sizeof log, "%s/ferretdb.log", mtest_dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("mongo_test: fork");
        exit(1);
    }
    if (pid == 0) {
        /* Die with the test, whatever way it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(mtest_bin, mtest_bin, "-listen", listen, "-dir", mtest_dir, (char *)NULL);
        _exit(127);
    }
    mtest_pid = pid;
    int64_t deadline = mtest_now_ms() + MTEST_READY_MS;
    while (mtest_now_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "mongo_test: ferretdb exited (status %d); see %s\n", st, log);
            mtest_pid = -1;
            exit(1);
        }
        if (mtest_tcp_up() && mtest_ping())
            return;
        mtest_sleep_ms(100);
    }
    fprintf(stderr, "mongo_test: ferretdb not ready after %d ms; see %s\n", MTEST_READY_MS, log);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    mtest_pid = -1;
    exit(1);
}

static void mtest_stop(int sig)
{
    if (mtest_pid <= 0)
        return;
    kill(mtest_pid, sig);
    waitpid(mtest_pid, NULL, 0);
    mtest_pid = -1;
}

static void mtest_at_exit(void)
{
    mtest_stop(SIGKILL);
}

/* ------------------------------------------------------------------ */

static void mtest_config(void)
{
    char err[256];
    CHECK_EQ_INT(store_uri_check("mongodb://h/db", err, sizeof err), 0);
    CHECK_EQ_INT(store_uri_check("mongodb://127.0.0.1:1/x?w=majority&journal=true", err, sizeof err), 0);
    err[0] = '\0';
    CHECK_EQ_INT(store_uri_check("mongodb://", err, sizeof err), ERR_CONFIG);
    CHECK(err[0] != '\0');
    CHECK_EQ_INT(store_uri_check("mongodb://h/db?w=0", err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(store_uri_check("redis://h", err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(store_uri_check("sqlite:./x.db", err, sizeof err), 0);

    CHECK_EQ_INT(mongo_write_concern_check("majority", err, sizeof err), 0);
    CHECK_EQ_INT(mongo_write_concern_check("w:1,j:true", err, sizeof err), 0);
    CHECK_EQ_INT(mongo_write_concern_check("w:majority,wtimeout:5000", err, sizeof err), 0);
    CHECK_EQ_INT(mongo_write_concern_check("w:2, j:false", err, sizeof err), 0);
    CHECK_EQ_INT(mongo_write_concern_check("majority,j:false", err, sizeof err), 0);   /* src/cfg.c */
    CHECK_EQ_INT(mongo_write_concern_check("majority,w:", err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(mongo_write_concern_check("w:0", err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(mongo_write_concern_check("w:x", err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(mongo_write_concern_check("j:maybe", err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(mongo_write_concern_check("", err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(mongo_write_concern_check(",", err, sizeof err), ERR_CONFIG);
    CHECK_EQ_INT(mongo_write_concern_check(NULL, err, sizeof err), ERR_CONFIG);

    /* A bad write concern stops store_open with ERR_CONFIG. */
    store_t *s = (store_t *)1;
    CHECK_EQ_INT(mongo_open("mongodb://127.0.0.1:1/x", "w:x", &s, err, sizeof err), ERR_CONFIG);
    CHECK(s == NULL);
    /* store_open takes it from the environment (mongo.h). */
    setenv(MONGO_WRITE_CONCERN_ENV, "j:sometimes", 1);
    CHECK_EQ_INT(store_open("mongodb://127.0.0.1:1/x", &s, err, sizeof err), ERR_CONFIG);
    CHECK(s == NULL);
    unsetenv(MONGO_WRITE_CONCERN_ENV);

    /* Nobody listens on the port: ERR_STORE with a reason, and quickly (the
     * default serverSelectionTimeoutMS is 2 s). */
    char uri[128];
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/x", mtest_free_port());
    err[0] = '\0';
    int64_t t0 = mtest_now_ms();
    CHECK_EQ_INT(store_open(uri, &s, err, sizeof err), ERR_STORE);
    CHECK(s == NULL && err[0] != '\0');
    CHECK(mtest_now_ms() - t0 < 8000);
    fprintf(stderr, "mongo_test: unreachable server: %s (%lld ms)\n", err,
            (long long)(mtest_now_ms() - t0));
}

/* mtest_has_index looks for an index by name in listIndexes and checks
 * its unique flag and key. */
static void mtest_has_index(mongoc_client_t *c, const char *db, const char *coll, const char *name,
                            const char *key_json, bool unique)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(col, NULL);
    const bson_t *doc;
    bool found = false;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "name") || strcmp(bson_iter_utf8(&it, NULL), name) != 0)
            continue;
        found = true;
        bool u = bson_iter_init_find(&it, doc, "unique") && bson_iter_as_bool(&it);
        CHECK_EQ_INT(u, unique);
        bson_t key;
        uint32_t len;
        const uint8_t *data;
        if (bson_iter_init_find(&it, doc, "key") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            bson_iter_document(&it, &len, &data);
            bson_init_static(&key, data, len);
            /* Relaxed JSON prints every number the same whatever its BSON
             * type (FerretDB echoes int32 keys as given). */
            char *j = bson_as_relaxed_extended_json(&key, NULL);
            CHECK_EQ_STR(j, key_json);
            bson_free(j);
        } else {
            CHECK(!"index has no key document");
        }
    }
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e))
        fprintf(stderr, "listIndexes %s: %s\n", coll, e.message);
    if (!found)
        fprintf(stderr, "mongo_test: index %s.%s missing\n", coll, name);
    CHECK(found);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
}

static bson_t *mtest_find_one(mongoc_client_t *c, const char *db, const char *coll, bson_t *filter)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, NULL, NULL);
    const bson_t *doc;
    bson_t *out = mongoc_cursor_next(cur, &doc) ? bson_copy(doc) : NULL;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(filter);
    return out;
}

/* mtest_keys returns the document's keys joined by commas (malloc'd). */
static char *mtest_keys(const bson_t *doc)
{
    char buf[512] = "";
    bson_iter_t it;
    bson_iter_init(&it, doc);
    while (bson_iter_next(&it)) {
        if (buf[0])
            strncat(buf, ",", sizeof buf - strlen(buf) - 1);
        strncat(buf, bson_iter_key(&it), sizeof buf - strlen(buf) - 1);
    }
    return strdup(buf);
}

static bson_type_t mtest_type(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) ? bson_iter_type(&it) : BSON_TYPE_EOD;
}

static void mtest_check_keys(const bson_t *doc, const char *want)
{
    char *k = mtest_keys(doc);
    CHECK_EQ_STR(k, want);
    free(k);
}

/* What operators see (protocol.md §11): indexes and document shapes. The
 * store writes a room with a reply, a chat and a marker of its own. */
static void mtest_shape(const char *uri, const char *db)
{
    char err[256] = "", room[64], user[64];
    snprintf(room, sizeof room, "shape%ld.room", (long)getpid());
    snprintf(user, sizeof user, "shape%ld.u", (long)getpid());
    store_t *s = NULL;
    CHECK_EQ_INT(store_open(uri, &s, err, sizeof err), 0);
    if (!s)
        return;
    char *members[1] = {user};
    store_chat_t chat = {.type = STORE_CHAT_CHANNEL, .name = "Shape", .members = members,
                         .n_members = 1, .created_at = CONTRACT_TS0};
    snprintf(chat.id, sizeof chat.id, "%s", room);
    CHECK_EQ_INT(store_chat_create(s, &chat), 0);
    store_msg_t *m[2] = {contract_msg(room, user, "s1", 1, 1, "plain"),
                         store_msg_new(room, user, "N", "s2", STORE_MSG_IMAGE, "u", 1, 2, 1,
                                       CONTRACT_TS0 + 2)};
    store_result_t r[2];
    CHECK_EQ_INT(store_insert_batch(s, m, 2, r), 0);
    CHECK_EQ_INT(store_read_marker_set(s, room, user, 1), 0);
    contract_unref_all(m, 2);
    store_close(s);

    mongoc_client_t *c = mtest_client();
    mtest_has_index(c, db, "messages", "roomId_1_seq_1", "{ \"roomId\" : 1, \"seq\" : 1 }", true);
    mtest_has_index(c, db, "messages", "senderId_1_tempId_1",
                    "{ \"senderId\" : 1, \"tempId\" : 1 }", true);
    mtest_has_index(c, db, "chats", "members_1", "{ \"members\" : 1 }", false);
    mtest_has_index(c, db, "notifications", "userId_1_ts_-1", "{ \"userId\" : 1, \"ts\" : -1 }",
                    false);

    bson_t *d = mtest_find_one(c, db, "messages", BCON_NEW("roomId", BCON_UTF8(room), "seq",
                                                           BCON_INT64(1)));
    CHECK(d != NULL);
    if (d) {
        mtest_check_keys(d, "_id,roomId,seq,senderId,senderName,tempId,type,body,ts");
        CHECK_EQ_INT(mtest_type(d, "_id"), BSON_TYPE_OID);
        CHECK_EQ_INT(mtest_type(d, "ts"), BSON_TYPE_DATE_TIME);
        CHECK_EQ_INT(mtest_type(d, "seq"), BSON_TYPE_INT64);
        bson_iter_t it;
        char hex[25] = "";
        if (bson_iter_init_find(&it, d, "_id") && BSON_ITER_HOLDS_OID(&it))
            bson_oid_to_string(bson_iter_oid(&it), hex);
        CHECK_EQ_STR(hex, r[0].id);
        CHECK(bson_iter_init_find(&it, d, "type") && strcmp(bson_iter_utf8(&it, NULL), "text") == 0);
        CHECK(bson_iter_init_find(&it, d, "ts") && bson_iter_date_time(&it) == CONTRACT_TS0 + 1);
        bson_destroy(d);
    }
    d = mtest_find_one(c, db, "messages", BCON_NEW("roomId", BCON_UTF8(room), "seq", BCON_INT64(2)));
    CHECK(d != NULL);
    if (d) {
        mtest_check_keys(d, "_id,roomId,seq,senderId,senderName,tempId,type,body,replyTo,ts");
        bson_iter_t it;
        CHECK(bson_iter_init_find(&it, d, "type") && strcmp(bson_iter_utf8(&it, NULL), "image") == 0);
        CHECK(bson_iter_init_find(&it, d, "replyTo") && bson_iter_as_int64(&it) == 1);
        bson_destroy(d);
    }
    d = mtest_find_one(c, db, "chats", BCON_NEW("_id", BCON_UTF8(room)));
    CHECK(d != NULL);
    if (d) {
        mtest_check_keys(d, "_id,type,name,members,createdAt,lastSeq");
        CHECK_EQ_INT(mtest_type(d, "_id"), BSON_TYPE_UTF8);
        CHECK_EQ_INT(mtest_type(d, "members"), BSON_TYPE_ARRAY);
        CHECK_EQ_INT(mtest_type(d, "createdAt"), BSON_TYPE_DATE_TIME);
        bson_iter_t it;
        CHECK(bson_iter_init_find(&it, d, "type") && strcmp(bson_iter_utf8(&it, NULL), "channel") == 0);
        CHECK(bson_iter_init_find(&it, d, "lastSeq") && bson_iter_as_int64(&it) == 2);
        bson_destroy(d);
    }
    char mark_id[160];
    snprintf(mark_id, sizeof mark_id, "%s|%s", room, user);
    d = mtest_find_one(c, db, "read_markers", BCON_NEW("_id", BCON_UTF8(mark_id)));
    CHECK(d != NULL);
    if (d) {
        bson_iter_t it;
        CHECK(bson_iter_init_find(&it, d, "roomId") && strcmp(bson_iter_utf8(&it, NULL), room) == 0);
        CHECK(bson_iter_init_find(&it, d, "userId") && strcmp(bson_iter_utf8(&it, NULL), user) == 0);
        CHECK(bson_iter_init_find(&it, d, "seq") && bson_iter_as_int64(&it) == 1);
        bson_destroy(d);
    }
    mongoc_client_destroy(c);
}

/* The server goes away between two batches and comes back on the same
 * files: the batch sent meanwhile fails as a whole with ERR_STORE (nothing
 * known committed), and its retry after the restart stores the new
 * messages and reports the one stored before the outage as ERR_DUP with
 * its original id. */
static void mtest_outage(const char *uri)
{
    char err[256] = "", room[64];
    snprintf(room, sizeof room, "outage%ld.room", (long)getpid());
    store_t *s = NULL;
    CHECK_EQ_INT(store_open(uri, &s, err, sizeof err), 0);
    if (!s)
        return;
    store_msg_t *m[3] = {contract_msg(room, "u", "o1", 1, 1, "before"),
                         contract_msg(room, "u", "o2", 2, 2, "during"),
                         contract_msg(room, "u", "o3", 3, 3, "during too")};
    store_result_t r0[1], r[3];
    CHECK_EQ_INT(store_insert_batch(s, m, 1, r0), 0);
    CHECK_EQ_INT(r0[0].status, 0);

    mtest_stop(SIGKILL);
    int64_t t0 = mtest_now_ms();
    CHECK_EQ_INT(store_insert_batch(s, m, 3, r), ERR_STORE);
    CHECK(mtest_now_ms() - t0 < 8000);
    CHECK_EQ_INT(store_ping(s), ERR_STORE);
    fprintf(stderr, "mongo_test: batch during the outage failed in %lld ms\n",
            (long long)(mtest_now_ms() - t0));

    mtest_start();
    /* The persistence actor retries until its deadline; do the same. The
     * driver may hold the server in its 5 s cooldown after the failure. */
    int rc = ERR_STORE, tries = 0;
    int64_t deadline = mtest_now_ms() + 20000;
    while (rc == ERR_STORE && mtest_now_ms() < deadline) {
        rc = store_insert_batch(s, m, 3, r);
        tries++;
        if (rc == ERR_STORE)
            mtest_sleep_ms(250);
    }
    fprintf(stderr, "mongo_test: retry after restart: %d tries\n", tries);
    CHECK_EQ_INT(rc, 0);
    if (rc == 0) {
        CHECK_EQ_INT(r[0].status, ERR_DUP);
        CHECK_EQ_STR(r[0].id, r0[0].id);
        CHECK_EQ_INT(r[0].seq, 1);
        CHECK_EQ_INT(r[1].status, 0);
        CHECK_EQ_INT(r[2].status, 0);
        CHECK(contract_is_oid(r[1].id) && contract_is_oid(r[2].id));
        /* A second retry (the reply of the first was lost, say) changes
         * nothing: every message is a duplicate with its stored id. */
        store_result_t r2[3];
        CHECK_EQ_INT(store_insert_batch(s, m, 3, r2), 0);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(r2[i].status, ERR_DUP);
            CHECK_EQ_STR(r2[i].id, i == 0 ? r0[0].id : r[i].id);
        }
    }
    contract_since(&(contract_t){.s = s}, room, 0, 10, CONTRACT_NOCAP, CONTRACT_SEQS(1, 2, 3), false);
    store_chat_t *c = NULL;
    CHECK_EQ_INT(store_chat_get(s, room, &c), ERR_NOT_FOUND);   /* messages do not make chats */
    contract_unref_all(m, 3);
    store_close(s);
}

int main(void)
{
    setvbuf(stderr, NULL, _IOLBF, 0);
    if (!mtest_find_bin()) {
        fprintf(stderr, "mongo_test: SKIP: no FerretDB binary (run tests/support/ferretdb/build.sh "
                        "or set RINGCAST_FERRETDB)\n");
        return 77;
    }
    if (!mkdtemp(mtest_dir)) {
        perror("mkdtemp");
        return 1;
    }
    mongoc_init();
    atexit(mtest_at_exit);
    mtest_port = mtest_free_port();
    fprintf(stderr, "mongo_test: %s on 127.0.0.1:%d, data in %s\n", mtest_bin, mtest_port, mtest_dir);
    mtest_start();

    mtest_config();
    char db[64], uri[160];
    snprintf(db, sizeof db, "rc_contract_%ld", (long)getpid());
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/%s", mtest_port, db);
    CHECK_EQ_INT(store_contract_run(uri), 0);
    mtest_shape(uri, db);
    mtest_outage(uri);

    mtest_stop(SIGTERM);
    mongoc_cleanup();
    int rc = check_done("mongo_test");
    if (rc == 0) {
        /* Keep the files of a failed run (and ferretdb.log) for a look. */
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", mtest_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "mongo_test: could not remove %s\n", mtest_dir);
    }
    return rc;
}
