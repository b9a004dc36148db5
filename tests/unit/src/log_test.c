/* log_test.c - tests src/log.c through its public API by capturing fd 2:
 * the exact shape of a text and a JSON line, JSON string escaping (quotes,
 * backslashes, control characters, invalid UTF-8), level filtering, the
 * PIPE_BUF cap on long records, thread names and errno preservation.
 *
 * Build: links src/log.c (no other module). The timestamp is the only
 * part of a line that varies; ts_ok() checks its shape and the rest is
 * compared byte for byte.
 */
#include "src/log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#include "src/cfg.h"
#include "tests/support/check.h"

/* Captured stderr; far below the pipe's 64 KiB, so writers never block. */
static char cap_buf[32768];
static int cap_saved = -1, cap_read = -1;

static void cap_begin(void)
{
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(1);
    }
    cap_saved = dup(2);
    dup2(p[1], 2);
    close(p[1]);
    cap_read = p[0];
}

/* cap_end restores stderr and returns what was written, NUL-terminated. */
static const char *cap_end(size_t *len)
{
    dup2(cap_saved, 2);
    close(cap_saved);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof cap_buf - 1 && (r = read(cap_read, cap_buf + n, sizeof cap_buf - 1 - n)) > 0)
        n += (size_t)r;
    close(cap_read);
    cap_buf[n] = '\0';
    if (len)
        *len = n;
    return cap_buf;
}

/* ts_ok checks p starts with 2026-11-22T01:02:03.456Z (digits anywhere D is). */
static bool ts_ok(const char *p)
{
    const char *mask = "DDDD-DD-DDTDD:DD:DD.DDDZ";
    for (size_t i = 0; mask[i]; i++) {
        if (mask[i] == 'D' ? !isdigit((unsigned char)p[i]) : p[i] != mask[i])
            return false;
    }
    return true;
}

#define TS_LEN 24

/* json_msg returns the msg field's raw (still escaped) text of one JSON line
 * captured from a log_write call, checking the fixed parts of the line. */
static const char *json_msg(const char *line, const char *level, const char *thread)
{
    static char out[8192];
    char head[128];
    CHECK(strncmp(line, "{\"ts\":\"", 7) == 0);
    CHECK(ts_ok(line + 7));
    int n = snprintf(head, sizeof head, "\",\"level\":\"%s\",\"thread\":\"%s\",\"msg\":\"", level, thread);
    CHECK(strncmp(line + 7 + TS_LEN, head, (size_t)n) == 0);
    const char *m = line + 7 + TS_LEN + n;
    const char *end = strstr(m, "\"}\n");
    CHECK(end != NULL && end[3] == '\0');
    if (!end)
        return "";
    snprintf(out, sizeof out, "%.*s", (int)(end - m), m);
    return out;
}

static void test_text_line(void)
{
    log_init(LOG_INFO, LOG_FMT_TEXT);
    log_set_thread("shard-0");
    cap_begin();
    log_write(LOG_INFO, "hello %d", 42);
    size_t len;
    const char *out = cap_end(&len);
    CHECK(ts_ok(out));
    CHECK_EQ_STR(out + TS_LEN, " INFO shard-0 hello 42\n");
    CHECK_EQ_INT(len, TS_LEN + strlen(" INFO shard-0 hello 42\n"));

    /* One record stays one line: control characters become visible. */
    cap_begin();
    LOG_ERR("a\nb\tc\x01" "d\\e");
    out = cap_end(NULL);
    CHECK(ts_ok(out));
    CHECK_EQ_STR(out + TS_LEN, " ERROR shard-0 a\\nb\\tc\\x01d\\e\n");
}

static void test_json_line(void)
{
    log_init(LOG_DEBUG, LOG_FMT_JSON);
    log_set_thread("shard-0");
    cap_begin();
    LOG_WRN("listening on %s:%d", "127.0.0.1", 8080);
    const char *out = cap_end(NULL);
    CHECK(ts_ok(out + 7));
    char want[256];
    snprintf(want, sizeof want, "{\"ts\":\"%.*s\",\"level\":\"warn\",\"thread\":\"shard-0\","
             "\"msg\":\"listening on 127.0.0.1:8080\"}\n", TS_LEN, out + 7);
    CHECK_EQ_STR(out, want);

    const char *levels[] = {"debug", "info", "warn", "error"};
    for (int l = LOG_DEBUG; l <= LOG_ERROR; l++) {
        cap_begin();
        log_write(l, "x");
        CHECK_EQ_STR(json_msg(cap_end(NULL), levels[l], "shard-0"), "x");
    }
}

static void test_json_escape(void)
{
    log_init(LOG_DEBUG, LOG_FMT_JSON);
    log_set_thread("pers-w");
    struct { const char *in, *want; } cases[] = {
        {"say \"hi\"", "say \\\"hi\\\""},
        {"C:\\dir\\", "C:\\\\dir\\\\"},
        {"line1\nline2\r\n", "line1\\nline2\\r\\n"},
        {"\t\b\f", "\\t\\b\\f"},
        {"\x01\x1f\x7f", "\\u0001\\u001f\x7f"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"bad \xff end", "bad \\ufffd end"},
        {"overlong \xc0\xaf", "overlong \\ufffd\\ufffd"},
        {"surrogate \xed\xa0\x80", "surrogate \\ufffd\\ufffd\\ufffd"},
        {"cut \xe2\x82", "cut \\ufffd\\ufffd"},
        {"</script>", "</script>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cap_begin();
        log_write(LOG_INFO, "%s", cases[i].in);
        const char *got = json_msg(cap_end(NULL), "info", "pers-w");
        CHECK_EQ_STR(got, cases[i].want);
    }
    /* An embedded NUL (from %c) is escaped, not a string end. */
    cap_begin();
    log_write(LOG_INFO, "a%cb", 0);
    CHECK_EQ_STR(json_msg(cap_end(NULL), "info", "pers-w"), "a\\u0000b");

    /* The thread name is escaped too. */
    log_set_thread("we\"ird");
    cap_begin();
    log_write(LOG_INFO, "t");
    CHECK_EQ_STR(json_msg(cap_end(NULL), "info", "we\\\"ird"), "t");
}

static void test_levels(void)
{
    CHECK_EQ_INT(log_level_parse("debug"), LOG_DEBUG);
    CHECK_EQ_INT(log_level_parse("info"), LOG_INFO);
    CHECK_EQ_INT(log_level_parse("warn"), LOG_WARN);
    CHECK_EQ_INT(log_level_parse("error"), LOG_ERROR);
    CHECK_EQ_INT(log_level_parse("INFO"), -1);
    CHECK_EQ_INT(log_level_parse("warning"), -1);
    CHECK_EQ_INT(log_level_parse(""), -1);
    CHECK_EQ_INT(log_level_parse(NULL), -1);

    log_init(LOG_WARN, LOG_FMT_TEXT);
    log_set_thread("shard-1");
    cap_begin();
    LOG_DBG("no");
    LOG_INF("no");
    log_write(LOG_INFO, "no"); /* Filtered inside too, not only in the macros. */
    LOG_WRN("w");
    LOG_ERR("e");
    const char *out = cap_end(NULL);
    CHECK(strstr(out, "no") == NULL);
    CHECK(ts_ok(out));
    CHECK(strncmp(out + TS_LEN, " WARN shard-1 w\n", 16) == 0);
    const char *second = strchr(out, '\n') + 1;
    CHECK(ts_ok(second));
    CHECK_EQ_STR(second + TS_LEN, " ERROR shard-1 e\n");

    log_init(LOG_ERROR, LOG_FMT_TEXT);
    cap_begin();
    LOG_WRN("no");
    size_t len;
    cap_end(&len);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(log__level, LOG_ERROR);
}

/* Long records are cut to one PIPE_BUF-sized line without splitting an
 * escape or a UTF-8 sequence, and say so with "...". */
static void test_truncation(void)
{
    static char big[10000];
    log_set_thread("shard-0");

    memset(big, 'a', sizeof big - 1);
    log_init(LOG_INFO, LOG_FMT_TEXT);
    cap_begin();
    log_write(LOG_INFO, "%s", big);
    size_t len;
    const char *out = cap_end(&len);
    CHECK(len <= PIPE_BUF && len > PIPE_BUF - 16);
    CHECK(len >= 5 && strcmp(out + len - 5, "a...\n") == 0);
    CHECK(memchr(out, '\n', len) == out + len - 1);

    memset(big, '"', sizeof big - 1);
    log_init(LOG_INFO, LOG_FMT_JSON);
    cap_begin();
    log_write(LOG_INFO, "%s", big);
    out = cap_end(&len);
    CHECK(len <= PIPE_BUF);
    const char *m = json_msg(out, "info", "shard-0");
    size_t mlen = strlen(m);
    CHECK(mlen > 3 && strcmp(m + mlen - 3, "...") == 0);
    CHECK((mlen - 3) % 2 == 0); /* Whole \" pairs only. */

    for (size_t i = 0; i + 2 < sizeof big; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[sizeof big - 1] = '\0';
    cap_begin();
    log_write(LOG_INFO, "x%s", big); /* Odd offset: the cut lands on a sequence. */
    out = cap_end(&len);
    CHECK(len <= PIPE_BUF);
    m = json_msg(out, "info", "shard-0");
    mlen = strlen(m);
    CHECK(mlen > 4 && strcmp(m + mlen - 3, "...") == 0);
    CHECK((unsigned char)m[mlen - 4] == 0xa9);
}

static void *thread_main(void *arg)
{
    log_set_thread("pers-w");
    log_write(LOG_INFO, "from thread");
    return arg;
}

static void test_thread_and_errno(void)
{
    log_init(LOG_INFO, LOG_FMT_TEXT);
    log_set_thread("shard-3");
    cap_begin();
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    errno = EAGAIN;
    log_write(LOG_INFO, "after");
    int e = errno;
    const char *out = cap_end(NULL);
    CHECK_EQ_INT(e, EAGAIN);
    CHECK(strstr(out, " INFO pers-w from thread\n") != NULL);
    CHECK(strstr(out, " INFO shard-3 after\n") != NULL);

    log_set_thread(NULL); /* Unnamed reads as the main thread. */
    cap_begin();
    log_write(LOG_INFO, "m");
    CHECK_EQ_STR(cap_end(NULL) + TS_LEN, " INFO main m\n");
}

int main(void)
{
    test_text_line();
    test_json_line();
    test_json_escape();
    test_levels();
    test_truncation();
    test_thread_and_errno();
    return check_done("log_test");
}
