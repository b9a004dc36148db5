/* ws.h - WebSocket (RFC 6455) for the server side, on wslay 1.1.1.
 *
 * Two halves:
 *  - Framing helpers that need no state: ws_scan() finds how many buffered
 *    client bytes form complete frames (so a connection can hold partial
 *    input in its own small buffer and needs no wslay context between
 *    frames), ws_header() writes the header of an unmasked server frame (so an
 *    outgoing frame is the same bytes for every recipient, see buf_blob_t).
 *  - ws_ctx_t: a thin wrapper over a wslay event context used to parse
 *    complete client frames (unmasking, fragment reassembly, UTF-8 of close
 *    reasons, control frames: ping is answered with pong, close is answered
 *    with close). A shard keeps a pool of these and lends one to a connection
 *    only while it has frames to parse or a fragmented message is open.
 *    wslay is never used for outgoing data frames.
 *
 * Pure: no I/O, no globals. Runs on whichever shard owns the connection.
 */
#ifndef RC_WS_H
#define RC_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8, WS_OP_PING = 0x9, WS_OP_PONG = 0xA,
};

enum {
    WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_TOO_BIG = 1009, WS_CLOSE_POLICY = 1008, WS_CLOSE_INTERNAL = 1011,
};

#define WS_HEADER_MAX 10   /* server frames are unmasked: 2 + 8 bytes at most */

typedef struct {
    size_t complete;   /* bytes at the start of the span that form whole frames */
    bool msg_open;     /* after those frames, a fragmented data message is unfinished */
} ws_scan_t;

/* ws_scan walks frame headers in p[0..n) (client frames: masked). `msg_open`
 * is the state carried from the previous scan (was a fragmented message
 * open?). Stops at the first incomplete frame. Returns:
 *   0              out->complete and out->msg_open are set;
 *   ERR_TOO_LARGE  a frame declares a payload larger than max_payload;
 *   ERR_PROTO      a client frame is not masked, a control frame is longer
 *                  than 125 bytes or fragmented, or a 64-bit length has its
 *                  top bit set.
 * Reassembled-size limits for fragmented messages are enforced by ws_ctx. */
int ws_scan(const uint8_t *p, size_t n, bool msg_open, uint64_t max_payload, ws_scan_t *out);

/* ws_header writes the header of a final, unmasked server frame with the
 * given opcode and payload length into out (WS_HEADER_MAX bytes of room).
 * Returns the header length (2, 4 or 10). */
size_t ws_header(uint8_t *out, int opcode, uint64_t payload_len);

/* ws_close_frame writes a complete close frame (header, 2-byte code, reason
 * truncated to 123 bytes) into out (at least 129 bytes). Returns its length. */
size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason);

typedef struct ws_ctx ws_ctx_t;

typedef struct {
    /* A complete text (WS_OP_TEXT) or binary (WS_OP_BINARY) message. msg is
     * valid only during the call. */
    void (*on_msg)(void *ud, int opcode, const uint8_t *msg, size_t len);
    /* Bytes wslay wants sent (pong, close). Must take them all; return 0, or
     * a negative value to fail the connection. */
    int (*on_send)(void *ud, const uint8_t *data, size_t len);
} ws_cbs_t;

/* ws_ctx_new makes a server context that accepts messages up to
 * max_msg_len bytes (reassembled). Returns NULL on allocation failure. */
ws_ctx_t *ws_ctx_new(uint64_t max_msg_len);
void ws_ctx_free(ws_ctx_t *c);

/* ws_ctx_feed parses n bytes that form complete frames (as found by ws_scan)
 * and calls cbs->on_msg for each complete message and cbs->on_send for any
 * control output, with ud as their first argument. Returns:
 *   0               all bytes consumed, the connection is healthy;
 *   WS_FEED_CLOSED  the peer sent close (a close reply was already passed to
 *                   on_send), or wslay closed the connection itself (for
 *                   example 1009 for a message over max_msg_len, 1002 for a
 *                   protocol error, 1007 for invalid UTF-8 in a close frame):
 *                   the close frame went to on_send, stop reading;
 *   ERR_PROTO       wslay failed in a way that left no close frame to send.
 * ws_ctx_close_code() tells the status code sent in the close frame. */
enum { WS_FEED_CLOSED = 1 };
int ws_ctx_feed(ws_ctx_t *c, const uint8_t *p, size_t n, const ws_cbs_t *cbs, void *ud);

/* ws_ctx_idle: true when the context holds no state worth keeping: no open
 * fragmented message, no queued output, reading and writing enabled. An idle
 * context can be handed to another connection. */
bool ws_ctx_idle(const ws_ctx_t *c);

/* The status code of the close frame this context sent, or 0. */
uint16_t ws_ctx_close_code(const ws_ctx_t *c);

#endif
