/* eio.h - Engine.IO v4 over WebSocket (protocol.md §1; notes/socketio-wire.md §1).
 *
 * On websocket an engine packet is one WebSocket message: text frames start
 * with the packet type digit; a binary frame is always a "message" packet
 * with no prefix. Pure: no I/O, no globals.
 */
#ifndef RC_EIO_H
#define RC_EIO_H

#include <stddef.h>
#include <stdint.h>

#include "../src/buf.h"

enum {
    EIO_OPEN = 0, EIO_CLOSE = 1, EIO_PING = 2, EIO_PONG = 3,
    EIO_MESSAGE = 4, EIO_UPGRADE = 5, EIO_NOOP = 6,
};

/* eio_text_type returns the packet type (EIO_*) of a text frame, or ERR_PROTO
 * for an empty frame or an unknown type character. The payload starts at
 * p + 1. A text frame "b<base64>" is a base64 binary message: it returns
 * EIO_MESSAGE with *is_b64 = 1 (else 0). */
int eio_text_type(const uint8_t *p, size_t n, int *is_b64);

/* eio_open_append appends the OPEN packet text:
 * 0{"sid":"…","upgrades":[],"pingInterval":…,"pingTimeout":…,"maxPayload":…}
 * Returns 0 or -ENOMEM. */
int eio_open_append(buf_t *out, const char *sid, uint32_t ping_interval_ms,
                    uint32_t ping_timeout_ms, uint32_t max_payload);

/* eio_b64_decode decodes base64 (standard alphabet, padding optional) into
 * out. Returns 0 or ERR_PROTO. */
int eio_b64_decode(const uint8_t *p, size_t n, buf_t *out);

#endif
