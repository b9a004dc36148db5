/* ws_test.c - unit tests for wire/ws.c: ws_scan over masked client frames of
 * every length class, split at every byte boundary; server headers and close
 * frames; ws_ctx_feed on messages, fragments, control frames and limits.
 * Client frames are built here with random mask keys (the seed is printed). */
#include "../../../wire/ws.h"

#include "../../../src/buf.h"
#include "../../../src/err.h"
#include "../../support/check.h"

static uint64_t ws_test_rng;

static uint32_t ws_test_rand(void)
{
    /* xorshift64*: enough for mask keys and chunk sizes. */
    ws_test_rng ^= ws_test_rng >> 12;
    ws_test_rng ^= ws_test_rng << 25;
    ws_test_rng ^= ws_test_rng >> 27;
    return (uint32_t)((ws_test_rng * 2685821657736338717ull) >> 32);
}

/* ws_test_frame appends one masked client frame. */
static void ws_test_frame(buf_t *b, bool fin, int opcode, const void *payload, size_t len)
{
    uint8_t h[WS_HEADER_MAX];
    size_t hl = ws_header(h, opcode, len);
    h[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    h[1] |= 0x80;
    uint32_t k = ws_test_rand();
    uint8_t key[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)(k >> 16), (uint8_t)(k >> 24)};
    CHECK_EQ_INT(buf_append(b, h, hl), 0);
    CHECK_EQ_INT(buf_append(b, key, 4), 0);
    CHECK_EQ_INT(buf_reserve(b, len), 0);
    const uint8_t *src = payload;
    for (size_t i = 0; i < len; i++)
        b->p[b->len + i] = src[i] ^ key[i % 4];
    b->len += len;
}

static void ws_test_text(buf_t *b, bool fin, int opcode, const char *s)
{
    ws_test_frame(b, fin, opcode, s, strlen(s));
}

static int ws_test_scan(const buf_t *b, size_t n, bool open, uint64_t max, ws_scan_t *out)
{
    return ws_scan(b->p, n, open, max, out);
}

/* Frames of each length class back to back; every prefix must report only
 * the whole frames inside it. */
static void ws_test_scan_sizes(void)
{
    static const size_t sizes[] = {0, 125, 126, 65535, 65536, 70001};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    static uint8_t payload[70001];
    memset(payload, 'x', sizeof(payload));
    buf_t b = {0};
    size_t ends[N];
    for (size_t i = 0; i < N; i++) {
        size_t start = b.len;
        ws_test_frame(&b, true, WS_OP_BINARY, payload, sizes[i]);
        ends[i] = b.len;
        size_t hl = sizes[i] < 126 ? 6 : sizes[i] < 65536 ? 8 : 14;
        CHECK_EQ_INT(ends[i] - start, hl + sizes[i]);
    }
    int bad = 0;
    for (size_t n = 0; n <= b.len; n++) {
        size_t want = 0;
        for (size_t i = 0; i < N && ends[i] <= n; i++)
            want = ends[i];
        ws_scan_t s = {99, true};
        int rc = ws_test_scan(&b, n, false, 1u << 20, &s);
        if (rc != 0 || s.complete != want || s.msg_open)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    buf_deinit(&b);
}

/* A fragmented text message with a ping in the middle. */
static void ws_test_scan_fragments(void)
{
    buf_t b = {0};
    size_t ends[5];
    const bool open_after[5] = {true, true, true, false, false};
    ws_test_text(&b, false, WS_OP_TEXT, "hel");
    ends[0] = b.len;
    ws_test_text(&b, true, WS_OP_PING, "p");
    ends[1] = b.len;
    ws_test_text(&b, false, WS_OP_CONT, "lo ");
    ends[2] = b.len;
    ws_test_text(&b, true, WS_OP_CONT, "world");
    ends[3] = b.len;
    ws_test_text(&b, true, WS_OP_TEXT, "next");
    ends[4] = b.len;
    int bad = 0;
    for (size_t n = 0; n <= b.len; n++) {
        size_t want = 0;
        bool open = false;
        for (size_t i = 0; i < 5 && ends[i] <= n; i++) {
            want = ends[i];
            open = open_after[i];
        }
        ws_scan_t s;
        if (ws_test_scan(&b, n, false, 100, &s) != 0 || s.complete != want || s.msg_open != open)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);

    /* msg_open is carried in: a ping alone keeps it, a final CONT clears it. */
    ws_scan_t s;
    CHECK_EQ_INT(ws_scan(b.p + ends[0], ends[1] - ends[0], true, 100, &s), 0);
    CHECK(s.msg_open);
    CHECK_EQ_INT(ws_scan(b.p + ends[2], ends[3] - ends[2], true, 100, &s), 0);
    CHECK(!s.msg_open);
    CHECK_EQ_INT(s.complete, ends[3] - ends[2]);
    CHECK_EQ_INT(ws_scan(b.p, 0, true, 100, &s), 0);
    CHECK(s.msg_open);
    CHECK_EQ_INT(s.complete, 0);
    buf_deinit(&b);
}

static void ws_test_scan_errors(void)
{
    ws_scan_t s;
    /* Unmasked: refused as soon as the second byte is in. */
    const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
    CHECK_EQ_INT(ws_scan(unmasked, 2, false, 100, &s), ERR_PROTO);
    CHECK_EQ_INT(ws_scan(unmasked, 4, false, 100, &s), ERR_PROTO);
    CHECK_EQ_INT(ws_scan(unmasked, 1, false, 100, &s), 0);
    /* An unmasked frame after a good one still fails the scan. */
    buf_t b = {0};
    ws_test_text(&b, true, WS_OP_TEXT, "ok");
    CHECK_EQ_INT(buf_append(&b, unmasked, sizeof(unmasked)), 0);
    CHECK_EQ_INT(ws_test_scan(&b, b.len, false, 100, &s), ERR_PROTO);
    buf_reset(&b);

    /* Over max_payload: refused from the header alone, in every length form. */
    const uint8_t big7[] = {0x82, 0x80 | 101};
    CHECK_EQ_INT(ws_scan(big7, 2, false, 100, &s), ERR_TOO_LARGE);
    CHECK_EQ_INT(ws_scan(big7, 2, false, 101, &s), 0);
    const uint8_t big16[] = {0x82, 0x80 | 126, 0x01, 0x2c};   /* 300 */
    CHECK_EQ_INT(ws_scan(big16, 3, false, 200, &s), 0);         /* length incomplete */
    CHECK_EQ_INT(ws_scan(big16, 4, false, 200, &s), ERR_TOO_LARGE);
    const uint8_t big64[] = {0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0};   /* 4 GiB */
    CHECK_EQ_INT(ws_scan(big64, 10, false, 1u << 20, &s), ERR_TOO_LARGE);
    const uint8_t cont_big[] = {0x80, 0x80 | 126, 0x01, 0x2c};
    CHECK_EQ_INT(ws_scan(cont_big, 4, true, 200, &s), ERR_TOO_LARGE);

    /* Control frames: at most 125 bytes and never fragmented. */
    const uint8_t ping126[] = {0x89, 0x80 | 126, 0x00, 0x7e};
    CHECK_EQ_INT(ws_scan(ping126, 2, false, 1000, &s), ERR_PROTO);
    const uint8_t close127[] = {0x88, 0x80 | 127};
    CHECK_EQ_INT(ws_scan(close127, 2, false, 1000, &s), ERR_PROTO);
    const uint8_t ping_frag[] = {0x09, 0x80, 1, 2, 3, 4};
    CHECK_EQ_INT(ws_scan(ping_frag, sizeof(ping_frag), false, 1000, &s), ERR_PROTO);
    ws_test_text(&b, true, WS_OP_PING, "");
    CHECK_EQ_INT(ws_test_scan(&b, b.len, false, 1000, &s), 0);
    CHECK_EQ_INT(s.complete, 6);
    buf_deinit(&b);

    /* 64-bit length with the top bit set; non-minimal lengths. */
    const uint8_t top[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ_INT(ws_scan(top, 10, false, UINT64_MAX, &s), ERR_PROTO);
    const uint8_t nonmin16[] = {0x82, 0x80 | 126, 0x00, 0x05};
    CHECK_EQ_INT(ws_scan(nonmin16, 4, false, 1000, &s), ERR_PROTO);
    const uint8_t nonmin64[] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00};
    CHECK_EQ_INT(ws_scan(nonmin64, 10, false, 1u << 20, &s), ERR_PROTO);
}

static void ws_test_header(void)
{
    uint8_t h[WS_HEADER_MAX];
    CHECK_EQ_INT(ws_header(h, WS_OP_TEXT, 0), 2);
    CHECK(h[0] == 0x81 && h[1] == 0);
    CHECK_EQ_INT(ws_header(h, WS_OP_BINARY, 125), 2);
    CHECK(h[0] == 0x82 && h[1] == 125);
    CHECK_EQ_INT(ws_header(h, WS_OP_TEXT, 126), 4);
    CHECK(h[1] == 126 && h[2] == 0 && h[3] == 126);
    CHECK_EQ_INT(ws_header(h, WS_OP_TEXT, 65535), 4);
    CHECK(h[1] == 126 && h[2] == 0xff && h[3] == 0xff);
    CHECK_EQ_INT(ws_header(h, WS_OP_TEXT, 65536), 10);
    const uint8_t want64[] = {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK_MEM(h, want64, 10);
    CHECK_EQ_INT(ws_header(h, WS_OP_BINARY, 0x0102030405060708ull), 10);
    const uint8_t want_big[] = {0x82, 127, 1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_MEM(h, want_big, 10);
    CHECK_EQ_INT(ws_header(h, WS_OP_PONG, 3), 2);
    CHECK(h[0] == 0x8a && h[1] == 3);
}

static void ws_test_close_frame(void)
{
    uint8_t f[129];
    size_t n = ws_close_frame(f, WS_CLOSE_NORMAL, "bye");
    const uint8_t want[] = {0x88, 5, 0x03, 0xe8, 'b', 'y', 'e'};
    CHECK_EQ_INT(n, sizeof(want));
    CHECK_MEM(f, want, sizeof(want));
    n = ws_close_frame(f, WS_CLOSE_TOO_BIG, NULL);
    CHECK_EQ_INT(n, 4);
    CHECK(f[0] == 0x88 && f[1] == 2 && f[2] == 0x03 && f[3] == 0xf1);
    char longr[200];
    memset(longr, 'r', sizeof(longr));
    longr[199] = '\0';
    n = ws_close_frame(f, WS_CLOSE_POLICY, longr);
    CHECK_EQ_INT(n, 2 + 2 + 123);
    CHECK_EQ_INT(f[1], 125);
    /* "é" (2 bytes) straddling byte 123 is dropped whole. */
    memset(longr, 'r', 122);
    memcpy(longr + 122, "\xc3\xa9zz", 5);
    n = ws_close_frame(f, WS_CLOSE_POLICY, longr);
    CHECK_EQ_INT(n, 4 + 122);
    CHECK_EQ_INT(f[1], 124);
}

/* What the callbacks saw. */
typedef struct {
    int msgs;
    int last_opcode;
    buf_t msg;    /* the last message */
    buf_t sent;   /* everything passed to on_send */
    int send_rc;  /* what on_send returns */
} ws_test_sink_t;

static void ws_test_on_msg(void *ud, int opcode, const uint8_t *msg, size_t len)
{
    ws_test_sink_t *s = ud;
    s->msgs++;
    s->last_opcode = opcode;
    buf_reset(&s->msg);
    CHECK(msg != NULL);
    CHECK_EQ_INT(buf_append(&s->msg, msg, len), 0);
}

static int ws_test_on_send(void *ud, const uint8_t *data, size_t len)
{
    ws_test_sink_t *s = ud;
    if (s->send_rc < 0)
        return s->send_rc;
    CHECK_EQ_INT(buf_append(&s->sent, data, len), 0);
    return 0;
}

static const ws_cbs_t ws_test_cbs = {ws_test_on_msg, ws_test_on_send};

static void ws_test_sink_reset(ws_test_sink_t *s)
{
    s->msgs = 0;
    s->last_opcode = -1;
    buf_reset(&s->msg);
    buf_reset(&s->sent);
    s->send_rc = 0;
}

static int ws_test_feed(ws_ctx_t *c, buf_t *in, ws_test_sink_t *s)
{
    int rc = ws_ctx_feed(c, in->p, in->len, &ws_test_cbs, s);
    buf_reset(in);
    return rc;
}

static bool ws_test_msg_is(const ws_test_sink_t *s, int opcode, const void *p, size_t n)
{
    return s->last_opcode == opcode && s->msg.len == n && (n == 0 || memcmp(s->msg.p, p, n) == 0);
}

static bool ws_test_sent_is(const ws_test_sink_t *s, const void *p, size_t n)
{
    return s->sent.len == n && memcmp(s->sent.p, p, n) == 0;
}

static void ws_test_ctx_messages(void)
{
    ws_ctx_t *c = ws_ctx_new(1u << 20);
    CHECK(c != NULL);
    ws_test_sink_t s = {0};
    buf_t in = {0};
    CHECK(ws_ctx_idle(c));

    ws_test_text(&in, true, WS_OP_TEXT, "hello");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK_EQ_INT(s.msgs, 1);
    CHECK(ws_test_msg_is(&s, WS_OP_TEXT, "hello", 5));
    CHECK_EQ_INT(s.sent.len, 0);
    CHECK(ws_ctx_idle(c));

    ws_test_sink_reset(&s);
    const uint8_t bin[] = {0x00, 0xff, 0x80, 0x01, 0xc3};   /* not UTF-8, fine for binary */
    ws_test_frame(&in, true, WS_OP_BINARY, bin, sizeof(bin));
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK(ws_test_msg_is(&s, WS_OP_BINARY, bin, sizeof(bin)));

    /* Empty message, then several messages in one feed. */
    ws_test_sink_reset(&s);
    ws_test_text(&in, true, WS_OP_TEXT, "");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK_EQ_INT(s.msgs, 1);
    CHECK(ws_test_msg_is(&s, WS_OP_TEXT, "", 0));
    ws_test_sink_reset(&s);
    ws_test_text(&in, true, WS_OP_TEXT, "a");
    ws_test_text(&in, true, WS_OP_TEXT, "b");
    ws_test_text(&in, true, WS_OP_TEXT, "c");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK_EQ_INT(s.msgs, 3);
    CHECK(ws_test_msg_is(&s, WS_OP_TEXT, "c", 1));

    /* A message bigger than wslay's 4096-byte input buffer. */
    ws_test_sink_reset(&s);
    static uint8_t large[70000];
    for (size_t i = 0; i < sizeof(large); i++)
        large[i] = (uint8_t)(i * 7);
    ws_test_frame(&in, true, WS_OP_BINARY, large, sizeof(large));
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK(ws_test_msg_is(&s, WS_OP_BINARY, large, sizeof(large)));

    /* Ping is answered with a pong carrying the same payload. */
    ws_test_sink_reset(&s);
    ws_test_text(&in, true, WS_OP_PING, "hb");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK_EQ_INT(s.msgs, 0);
    CHECK(ws_test_sent_is(&s, "\x8a\x02hb", 4));
    CHECK(ws_ctx_idle(c));
    /* An empty feed is a no-op. */
    ws_test_sink_reset(&s);
    CHECK_EQ_INT(ws_ctx_feed(c, NULL, 0, &ws_test_cbs, &s), 0);
    CHECK(ws_ctx_idle(c));
    /* A pong from the client needs nothing. */
    ws_test_sink_reset(&s);
    ws_test_text(&in, true, WS_OP_PONG, "x");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK_EQ_INT(s.msgs + (int)s.sent.len, 0);
    CHECK(ws_ctx_idle(c));

    buf_deinit(&in);
    buf_deinit(&s.msg);
    buf_deinit(&s.sent);
    ws_ctx_free(c);
}

static void ws_test_ctx_fragments(void)
{
    ws_ctx_t *c = ws_ctx_new(1u << 20);
    ws_test_sink_t s = {0};
    buf_t in = {0};

    /* One frame per feed: the context must carry the open message. */
    ws_test_text(&in, false, WS_OP_TEXT, "hel");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK_EQ_INT(s.msgs, 0);
    CHECK(!ws_ctx_idle(c));
    ws_test_text(&in, true, WS_OP_PING, "p");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK(ws_test_sent_is(&s, "\x8a\x01p", 3));
    CHECK(!ws_ctx_idle(c));
    ws_test_text(&in, false, WS_OP_CONT, "lo ");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK(!ws_ctx_idle(c));
    ws_test_text(&in, true, WS_OP_CONT, "world");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK_EQ_INT(s.msgs, 1);
    CHECK(ws_test_msg_is(&s, WS_OP_TEXT, "hello world", 11));
    CHECK(ws_ctx_idle(c));

    /* The same in one feed, binary this time. */
    ws_test_sink_reset(&s);
    ws_test_text(&in, false, WS_OP_BINARY, "ab");
    ws_test_text(&in, false, WS_OP_CONT, "");
    ws_test_text(&in, true, WS_OP_CONT, "cd");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK_EQ_INT(s.msgs, 1);
    CHECK(ws_test_msg_is(&s, WS_OP_BINARY, "abcd", 4));
    CHECK(ws_ctx_idle(c));

    buf_deinit(&in);
    buf_deinit(&s.msg);
    buf_deinit(&s.sent);
    ws_ctx_free(c);
}

/* ws_test_closed feeds `in` to a fresh context (max 10 bytes) and checks that
 * it ends with the close frame `want` and status `code`. */
static void ws_test_closed(buf_t *in, const void *want, size_t want_len, uint16_t code, int line)
{
    ws_ctx_t *c = ws_ctx_new(10);
    ws_test_sink_t s = {0};
    int rc = ws_test_feed(c, in, &s);
    if (rc != WS_FEED_CLOSED || !ws_test_sent_is(&s, want, want_len) || ws_ctx_close_code(c) != code)
        fprintf(stderr, "ws_test_closed from line %d: rc %d, %zu bytes sent, code %u\n", line, rc,
                s.sent.len, ws_ctx_close_code(c));
    CHECK_EQ_INT(rc, WS_FEED_CLOSED);
    CHECK(ws_test_sent_is(&s, want, want_len));
    CHECK_EQ_INT(ws_ctx_close_code(c), code);
    CHECK(!ws_ctx_idle(c));
    /* Nothing more is read or sent once closed. */
    ws_test_sink_reset(&s);
    ws_test_text(in, true, WS_OP_TEXT, "late");
    CHECK_EQ_INT(ws_test_feed(c, in, &s), WS_FEED_CLOSED);
    CHECK_EQ_INT(s.msgs + (int)s.sent.len, 0);
    buf_deinit(&s.msg);
    buf_deinit(&s.sent);
    ws_ctx_free(c);
}

static void ws_test_ctx_close(void)
{
    buf_t in = {0};
    /* The peer closes: the reply echoes its code. */
    const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'};
    ws_test_frame(&in, true, WS_OP_CLOSE, bye, sizeof(bye));
    ws_test_closed(&in, "\x88\x05\x03\xe8" "bye", 7, WS_CLOSE_NORMAL, __LINE__);
    /* A close without a status gets an empty close. */
    ws_test_frame(&in, true, WS_OP_CLOSE, "", 0);
    ws_test_closed(&in, "\x88\x00", 2, 0, __LINE__);
    /* Frames after the close are not read. */
    ws_test_frame(&in, true, WS_OP_CLOSE, bye, 2);
    ws_test_text(&in, true, WS_OP_TEXT, "after");
    ws_test_closed(&in, "\x88\x02\x03\xe8", 4, WS_CLOSE_NORMAL, __LINE__);

    /* Fragments each under max_msg_len (10) but 12 bytes together: 1009. */
    ws_test_text(&in, false, WS_OP_TEXT, "123456");
    ws_test_text(&in, true, WS_OP_CONT, "789012");
    ws_test_closed(&in, "\x88\x02\x03\xf1", 4, WS_CLOSE_TOO_BIG, __LINE__);
    /* One frame over the limit (ws_scan would have caught it first). */
    ws_test_text(&in, true, WS_OP_BINARY, "0123456789a");
    ws_test_closed(&in, "\x88\x02\x03\xf1", 4, WS_CLOSE_TOO_BIG, __LINE__);
    /* Exactly the limit is fine. */
    ws_ctx_t *c = ws_ctx_new(10);
    ws_test_sink_t s = {0};
    ws_test_text(&in, false, WS_OP_TEXT, "12345");
    ws_test_text(&in, true, WS_OP_CONT, "67890");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), 0);
    CHECK(ws_test_msg_is(&s, WS_OP_TEXT, "1234567890", 10));
    CHECK_EQ_INT(ws_ctx_close_code(c), 0);
    ws_ctx_free(c);

    /* Protocol errors wslay answers itself. */
    ws_test_text(&in, true, WS_OP_CONT, "x");               /* nothing to continue */
    ws_test_closed(&in, "\x88\x02\x03\xea", 4, WS_CLOSE_PROTOCOL, __LINE__);
    ws_test_text(&in, false, WS_OP_TEXT, "a");
    ws_test_text(&in, true, WS_OP_TEXT, "b");               /* new message inside one */
    ws_test_closed(&in, "\x88\x02\x03\xea", 4, WS_CLOSE_PROTOCOL, __LINE__);
    ws_test_frame(&in, true, WS_OP_CLOSE, "\x03\xed", 2);   /* 1005 may not be sent */
    ws_test_closed(&in, "\x88\x02\x03\xea", 4, WS_CLOSE_PROTOCOL, __LINE__);
    ws_test_text(&in, true, WS_OP_TEXT, "\xc3\x28");        /* invalid UTF-8 */
    ws_test_closed(&in, "\x88\x02\x03\xef", 4, 1007, __LINE__);
    ws_test_text(&in, true, 0x40 | WS_OP_TEXT, "rsv1");      /* no extension agreed */
    ws_test_closed(&in, "\x88\x02\x03\xea", 4, WS_CLOSE_PROTOCOL, __LINE__);
    ws_test_text(&in, true, 0x3, "op3");                     /* reserved data opcode */
    ws_test_closed(&in, "\x88\x02\x03\xea", 4, WS_CLOSE_PROTOCOL, __LINE__);
    ws_test_text(&in, true, 0xb, "opb");                     /* reserved control opcode */
    ws_test_closed(&in, "\x88\x02\x03\xea", 4, WS_CLOSE_PROTOCOL, __LINE__);
    buf_deinit(&in);
    buf_deinit(&s.msg);
    buf_deinit(&s.sent);
}

static void ws_test_ctx_send_fails(void)
{
    ws_ctx_t *c = ws_ctx_new(100);
    ws_test_sink_t s = {0};
    buf_t in = {0};
    s.send_rc = -12;
    ws_test_text(&in, true, WS_OP_PING, "x");
    CHECK_EQ_INT(ws_test_feed(c, &in, &s), -12);
    CHECK(!ws_ctx_idle(c));
    buf_deinit(&in);
    ws_ctx_free(c);
}

/* A connection's read path: bytes arrive in random chunks, ws_scan finds
 * whole frames, ws_ctx_feed parses them, the rest waits for the next read. */
static void ws_test_stream(void)
{
    buf_t wire = {0}, pending = {0};
    static uint8_t big[9000];
    memset(big, 'z', sizeof(big));
    ws_test_text(&wire, true, WS_OP_TEXT, "one");
    ws_test_text(&wire, false, WS_OP_TEXT, "tw");
    ws_test_text(&wire, true, WS_OP_PING, "");
    ws_test_text(&wire, true, WS_OP_CONT, "o");
    ws_test_frame(&wire, true, WS_OP_BINARY, big, sizeof(big));
    ws_test_text(&wire, true, WS_OP_TEXT, "three");
    for (int round = 0; round < 50; round++) {
        ws_ctx_t *c = ws_ctx_new(1u << 20);
        ws_test_sink_t s = {0};
        bool open = false;
        size_t off = 0;
        int msgs_seen = 0;
        while (off < wire.len) {
            size_t chunk = 1 + ws_test_rand() % 300;
            if (chunk > wire.len - off)
                chunk = wire.len - off;
            CHECK_EQ_INT(buf_append(&pending, wire.p + off, chunk), 0);
            off += chunk;
            ws_scan_t sc;
            CHECK_EQ_INT(ws_scan(pending.p, pending.len, open, 1u << 20, &sc), 0);
            if (sc.complete) {
                CHECK_EQ_INT(ws_ctx_feed(c, pending.p, sc.complete, &ws_test_cbs, &s), 0);
                buf_consume(&pending, sc.complete);
            }
            open = sc.msg_open;
            CHECK_EQ_INT(ws_ctx_idle(c), !open);
            msgs_seen = s.msgs;
        }
        CHECK_EQ_INT(pending.len, 0);
        CHECK_EQ_INT(msgs_seen, 4);
        CHECK(ws_test_msg_is(&s, WS_OP_TEXT, "three", 5));
        CHECK(ws_test_sent_is(&s, "\x8a\x00", 2));
        buf_deinit(&s.msg);
        buf_deinit(&s.sent);
        ws_ctx_free(c);
    }
    buf_deinit(&wire);
    buf_deinit(&pending);
}

int main(void)
{
    ws_test_rng = check_seed("ws_test") | 1;
    ws_test_scan_sizes();
    ws_test_scan_fragments();
    ws_test_scan_errors();
    ws_test_header();
    ws_test_close_frame();
    ws_test_ctx_messages();
    ws_test_ctx_fragments();
    ws_test_ctx_close();
    ws_test_ctx_send_fails();
    ws_test_stream();
    return check_done("ws_test");
}
