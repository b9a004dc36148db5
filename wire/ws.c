/* ws.c - server-side WebSocket framing (RFC 6455) and the glue to wslay 1.1.1
 * (see ws.h; notes/deps-and-build.md §5).
 *
 * Runs on the shard that owns the connection. Two halves:
 *
 *  - ws_scan/ws_header/ws_close_frame are hand-written and stateless: the
 *    connection keeps partial input in its own buffer, and ws_scan says how
 *    much of it is whole frames. ws_scan applies the same frame-level checks
 *    as wslay_frame_recv (mask, control frame size and FIN, minimal length
 *    encoding, 64-bit top bit), so every frame that reaches wslay parses;
 *    ordering errors (a continuation with no message open, a new data frame
 *    inside a fragmented message), RSV bits and unknown opcodes are left to
 *    wslay, which answers them with a 1002 close frame.
 *
 *  - ws_ctx_t wraps a wslay event context. wslay's user_data is fixed at
 *    init, so the context itself is the user_data and holds, for the length
 *    of one ws_ctx_feed() call only, the caller's callbacks and the input
 *    span. The wslay recv callback copies from that span and reports
 *    WSLAY_ERR_WOULDBLOCK when it is empty; the send callback hands bytes
 *    straight to cbs->on_send, which must take them all.
 *
 * Invariants of ws_ctx_t:
 *  - Outside ws_ctx_feed() no caller pointer is kept (cbs, ud, in are NULL).
 *  - Input is whole frames (ws_scan), so after a feed wslay's frame parser
 *    sits at a frame boundary and its input buffer is empty; frame_open
 *    catches a caller that breaks this.
 *  - Every byte wslay wants to send has gone to on_send when ws_ctx_feed()
 *    returns (on_send never pushes back), so a live context never holds
 *    queued output between feeds.
 */
#include "ws.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <wslay/wslay.h>

#include "../src/err.h"

/* ------------------------------------------------------------------------ */
/* Stateless framing                                                        */
/* ------------------------------------------------------------------------ */

typedef struct {
    bool fin;
    int opcode;
    size_t head_len;   /* header bytes, mask key included */
    uint64_t len;      /* payload bytes */
} ws__frame_t;

static bool ws__is_control(int opcode) { return (opcode & 0x8) != 0; }

/* ws__frame_head decodes the header of one client frame at p[0..n). Returns 1
 * when it is complete (f filled), 0 when more bytes are needed, or
 * ERR_PROTO / ERR_TOO_LARGE as soon as the bytes present prove the frame
 * bad, so a hostile length is refused before its payload is buffered. */
static int ws__frame_head(const uint8_t *p, size_t n, uint64_t max_payload, ws__frame_t *f)
{
    if (n < 2)
        return 0;
    f->fin = (p[0] & 0x80) != 0;
    f->opcode = p[0] & 0x0f;
    if (!(p[1] & 0x80))
        return ERR_PROTO;   /* RFC 6455 §5.1: clients must mask */
    uint64_t len = p[1] & 0x7f;
    if (ws__is_control(f->opcode) && (len > 125 || !f->fin))
        return ERR_PROTO;
    size_t ext = len == 126 ? 2 : len == 127 ? 8 : 0;
    if (n < 2 + ext)
        return 0;
    if (ext) {
        len = 0;
        for (size_t i = 0; i < ext; i++)
            len = (len << 8) | p[2 + i];
        /* Refuse non-minimal encodings as wslay_frame_recv does. */
        if (len >> 63 || len < (ext == 2 ? 126u : 65536u))
            return ERR_PROTO;
    }
    if (len > max_payload)
        return ERR_TOO_LARGE;
    f->len = len;
    f->head_len = 2 + ext + 4;
    return n >= f->head_len ? 1 : 0;
}

int ws_scan(const uint8_t *p, size_t n, bool msg_open, uint64_t max_payload, ws_scan_t *out)
{
    size_t off = 0;
    for (;;) {
        ws__frame_t f;
        int rc = ws__frame_head(p + off, n - off, max_payload, &f);
        if (rc < 0)
            return rc;
        if (rc == 0 || f.len > n - off - f.head_len)
            break;
        off += f.head_len + (size_t)f.len;
        /* Control frames may sit between fragments and change nothing. */
        if (!ws__is_control(f.opcode))
            msg_open = !f.fin;
    }
    out->complete = off;
    out->msg_open = msg_open;
    return 0;
}

size_t ws_header(uint8_t *out, int opcode, uint64_t payload_len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason)
{
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123) {
        /* Cut at a character boundary: the peer must reject a close reason
         * that is not valid UTF-8 (RFC 6455 §8.1). */
        rl = 123;
        while (rl > 0 && ((uint8_t)reason[rl] & 0xc0) == 0x80)
            rl--;
    }
    size_t hl = ws_header(out, WS_OP_CLOSE, 2 + rl);
    out[hl] = (uint8_t)(code >> 8);
    out[hl + 1] = (uint8_t)code;
    if (rl)
        memcpy(out + hl + 2, reason, rl);
    return hl + 2 + rl;
}

/* ------------------------------------------------------------------------ */
/* wslay context                                                            */
/* ------------------------------------------------------------------------ */

struct ws_ctx {
    wslay_event_context_ptr ws;   /* owned; its user_data is this struct     */
    const ws_cbs_t *cbs;          /* the caller's, during ws_ctx_feed only   */
    void *ud;                     /* first argument of cbs, ditto            */
    const uint8_t *in;            /* input span of the current feed          */
    size_t in_len;                /* bytes in the span                       */
    size_t in_off;                /* bytes already handed to wslay           */
    int send_err;                 /* on_send's failure in this feed, or 0    */
    bool msg_open;                /* a fragmented data message is unfinished */
    bool frame_open;              /* wslay is inside a frame's payload       */
};

/* ws__on_recv feeds wslay from the current span; running dry is "would
 * block", which makes wslay_event_recv() return 0 at a frame boundary. */
static ssize_t ws__on_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags,
                          void *user_data)
{
    ws_ctx_t *c = user_data;
    size_t avail = c->in_len - c->in_off;
    if (avail == 0) {
        wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = avail < len ? avail : len;
    memcpy(buf, c->in + c->in_off, n);
    c->in_off += n;
    return (ssize_t)n;
}

static ssize_t ws__on_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags,
                          void *user_data)
{
    ws_ctx_t *c = user_data;
    int rc = c->cbs->on_send(c->ud, data, len);
    if (rc < 0) {
        c->send_err = rc;
        wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* ws__on_frame_start and ws__on_frame_end track what ws_ctx_idle needs and
 * wslay does not expose: whether a fragmented message or a frame is open. */
static void ws__on_frame_start(wslay_event_context_ptr ws,
                              const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data)
{
    ws_ctx_t *c = user_data;
    c->frame_open = true;
    if (!ws__is_control(arg->opcode))
        c->msg_open = !arg->fin;
}

static void ws__on_frame_end(wslay_event_context_ptr ws, void *user_data)
{
    ws_ctx_t *c = user_data;
    c->frame_open = false;
}

static void ws__on_msg(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    ws_ctx_t *c = user_data;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return;   /* wslay answers ping and close itself; pong needs nothing */
    /* wslay passes NULL for an empty message; give the caller a real pointer
     * so that memcpy(dst, msg, 0) stays defined. */
    const uint8_t *msg = arg->msg ? arg->msg : (const uint8_t *)"";
    c->cbs->on_msg(c->ud, arg->opcode, msg, arg->msg_length);
}

ws_ctx_t *ws_ctx_new(uint64_t max_msg_len)
{
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = ws__on_recv,
        .send_callback = ws__on_send,
        .on_frame_recv_start_callback = ws__on_frame_start,
        .on_frame_recv_end_callback = ws__on_frame_end,
        .on_msg_recv_callback = ws__on_msg,
    };
    ws_ctx_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (wslay_event_context_server_init(&c->ws, &cbs, c) != 0) {
        free(c);
        return NULL;
    }
    /* The default is 2 GiB; over the limit wslay closes with 1009. */
    wslay_event_config_set_max_recv_msg_length(c->ws, max_msg_len);
    return c;
}

void ws_ctx_free(ws_ctx_t *c)
{
    if (!c)
        return;
    wslay_event_context_free(c->ws);
    free(c);
}

/* ws_ctx_feed steps:
 *  1. Lend the span and callbacks to the context.
 *  2. wslay_event_recv() parses every frame, calling on_msg for messages and
 *     queueing pong/close replies; it stops when the span is empty (would
 *     block) or after a close was received or queued (reading disabled).
 *  3. wslay_event_send() passes the queued replies to on_send.
 *  4. Take the caller's pointers back, then classify the outcome. */
int ws_ctx_feed(ws_ctx_t *c, const uint8_t *p, size_t n, const ws_cbs_t *cbs, void *ud)
{
    /* 1. */
    c->cbs = cbs;
    c->ud = ud;
    c->in = p;
    c->in_len = n;
    c->in_off = 0;
    c->send_err = 0;
    /* 2. */
    int rrc = wslay_event_recv(c->ws);
    /* 3. Even after a failed recv wslay may have queued a close frame. */
    int src = 0;
    if (wslay_event_want_write(c->ws))
        src = wslay_event_send(c->ws);
    /* on_send takes everything, so one send drains the queue unless it
     * failed (and then writing is disabled). */
    assert(!wslay_event_want_write(c->ws));
    /* 4. */
    c->cbs = NULL;
    c->ud = NULL;
    c->in = NULL;
    c->in_len = c->in_off = 0;
    if (c->send_err)
        return c->send_err;
    if (src != 0)
        return ERR_PROTO;
    if (wslay_event_get_close_sent(c->ws))
        return WS_FEED_CLOSED;
    if (rrc != 0 || !wslay_event_get_read_enabled(c->ws))
        return ERR_PROTO;   /* for example out of memory: no close frame left */
    assert(!c->frame_open && "ws_ctx_feed needs whole frames (ws_scan)");
    return 0;
}

bool ws_ctx_idle(const ws_ctx_t *c)
{
    return !c->msg_open && !c->frame_open &&
           wslay_event_get_queued_msg_count(c->ws) == 0 &&
           wslay_event_get_read_enabled(c->ws) && wslay_event_get_write_enabled(c->ws);
}

uint16_t ws_ctx_close_code(const ws_ctx_t *c)
{
    if (!wslay_event_get_close_sent(c->ws))
        return 0;
    uint16_t code = wslay_event_get_status_code_sent(c->ws);
    /* wslay reports an empty close frame as 1005, a code that never goes on
     * the wire. */
    return code == WSLAY_CODE_NO_STATUS_RCVD ? 0 : code;
}
