/* log.c - leveled log records as text or JSON lines on stderr (see log.h).
 *
 * Any thread may call it. A record is formatted entirely on the caller's
 * stack and handed to the kernel with one write(2) to fd 2, with no lock and
 * no stdio: lines of at most PIPE_BUF bytes are written atomically to a pipe
 * (the usual collector), so records from different threads never interleave.
 * That is why a line is capped at LOG__LINE_MAX = PIPE_BUF (4096 on Linux);
 * longer messages are cut at a character boundary and end in "...".
 *
 * Invariants:
 *  - One record is exactly one line: text mode escapes control characters in
 *    the message, JSON mode escapes per RFC 8259 and replaces bytes that are
 *    not valid UTF-8 with U+FFFD (messages may quote bytes a peer sent), so
 *    every JSON line parses.
 *  - log__level and the format are set by log_init() on the main thread
 *    before other threads start, and only read afterwards.
 *  - log_write() preserves errno, so `LOG_ERR("...: %s", strerror(errno))`
 *    followed by a check of errno behaves.
 */
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h" /* LOG_FMT_*: the format is a config value. */

#define LOG__LINE_MAX PIPE_BUF
#define LOG__CUT_MARK "..."
/* Room kept back while the message is written: the cut mark plus the
 * longest line ending ("\"}\n" in JSON). */
#define LOG__TAIL_RESERVE 8
_Static_assert(LOG__LINE_MAX >= 512, "a line must hold the prefix and some message");

int log__level = LOG_INFO;
static int log__format = LOG_FMT_TEXT;
static __thread char log__thread[32]; /* Written by its own thread only. */

static const char *const log__text_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const log__json_names[] = {"debug", "info", "warn", "error"};

/* log__out_t appends whole units (a character or an escape) to a fixed
 * buffer; the first unit that does not fit before lim sets cut, and nothing
 * is appended after it, so an escape or a UTF-8 sequence is never split. */
typedef struct {
    char *p;
    size_t len;     /* bytes written */
    size_t lim;     /* bytes that may be written */
    bool cut;       /* a unit did not fit */
} log__out_t;

static void log__put(log__out_t *o, const char *s, size_t n)
{
    if (o->cut || n > o->lim - o->len) {
        o->cut = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void log__puts(log__out_t *o, const char *s) { log__put(o, s, strlen(s)); }

/* log__utf8_len returns the length of the valid UTF-8 sequence at s[0..n),
 * or 0 if it is not one (overlong forms, surrogates and code points above
 * U+10FFFF included). */
static size_t log__utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* log__esc_json writes s[0..n) as the inside of a JSON string. */
static void log__esc_json(log__out_t *o, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n && !o->cut;) {
        unsigned char c = u[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            log__put(o, esc, 2);
        } else if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                              : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (named)
                log__puts(o, named);
            else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                log__put(o, esc, 6);
            }
        } else {
            size_t len = log__utf8_len(u + i, n - i);
            if (len == 0) {
                log__puts(o, "\\ufffd");
                i++;
                continue;
            }
            log__put(o, s + i, len);
            i += len;
            continue;
        }
        i++;
    }
}

/* log__esc_text writes s[0..n) with control characters made visible, so a
 * message with a newline in it cannot forge a second record. */
static void log__esc_text(log__out_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && !o->cut; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f) {
            log__put(o, s + i, 1);
            continue;
        }
        char esc[8];
        const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
        if (named)
            log__puts(o, named);
        else {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            log__put(o, esc, 4);
        }
    }
}

/* log__timestamp writes the current UTC time as 2026-11-22T01:02:03.456Z. */
static void log__timestamp(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

void log_init(int level, int format)
{
    assert(level >= LOG_DEBUG && level <= LOG_ERROR);
    assert(format == LOG_FMT_TEXT || format == LOG_FMT_JSON);
    log__level = level;
    log__format = format;
}

int log_level_parse(const char *s)
{
    for (int i = LOG_DEBUG; s && i <= LOG_ERROR; i++)
        if (strcmp(s, log__json_names[i]) == 0)
            return i;
    return -1;
}

void log_set_thread(const char *name)
{
    snprintf(log__thread, sizeof log__thread, "%s", name ? name : "");
}

/* log__emit hands the line to fd 2. Partial writes (a terminal, a full
 * file system) are finished rather than dropped; if stderr is gone there is
 * nowhere left to report that, so the record is lost. */
static void log__emit(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void log_write(int level, const char *fmt, ...)
{
    assert(level >= LOG_DEBUG && level <= LOG_ERROR);
    if (level < log__level)
        return;
    int saved_errno = errno;

    /* 1. Format the message; a message longer than a line is cut anyway. */
    char msg[LOG__LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t msg_len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;

    /* 2. Prefix, message (escaped, cut to leave room for the tail), tail. */
    char ts[64], line[LOG__LINE_MAX];
    log__timestamp(ts, sizeof ts);
    const char *thread = log__thread[0] ? log__thread : "main";
    log__out_t o = {line, 0, sizeof line - LOG__TAIL_RESERVE, false};
    bool json = log__format == LOG_FMT_JSON;
    if (json) {
        log__puts(&o, "{\"ts\":\"");
        log__puts(&o, ts);
        log__puts(&o, "\",\"level\":\"");
        log__puts(&o, log__json_names[level]);
        log__puts(&o, "\",\"thread\":\"");
        log__esc_json(&o, thread, strlen(thread));
        log__puts(&o, "\",\"msg\":\"");
        log__esc_json(&o, msg, msg_len);
    } else {
        log__puts(&o, ts);
        log__puts(&o, " ");
        log__puts(&o, log__text_names[level]);
        log__puts(&o, " ");
        log__esc_text(&o, thread, strlen(thread));
        log__puts(&o, " ");
        log__esc_text(&o, msg, msg_len);
    }
    bool cut = o.cut || n < 0 || (size_t)n >= sizeof msg;
    o.lim = sizeof line;
    o.cut = false;
    if (cut)
        log__puts(&o, LOG__CUT_MARK);
    log__puts(&o, json ? "\"}\n" : "\n");
    assert(!o.cut);

    /* 3. One write. */
    log__emit(line, o.len);
    errno = saved_errno;
}
