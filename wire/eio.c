/* eio.c - Engine.IO v4 packets on WebSocket (see eio.h; protocol.md §1,
 * notes/socketio-wire.md §1).
 *
 * Runs on the shard that owns the connection; no state. On websocket one
 * engine packet is one WebSocket message, so there is no payload framing
 * here: only the type character, the OPEN text and the base64 of "b..."
 * frames.
 *
 * Invariant: the appending functions either append everything or leave the
 * buffer as it was (a failed append never leaves half a packet to send).
 */
#include "eio.h"

#include <string.h>

#include "../src/err.h"

int eio_text_type(const uint8_t *p, size_t n, int *is_b64)
{
    if (is_b64)
        *is_b64 = 0;
    if (n == 0)
        return ERR_PROTO;
    if (p[0] >= '0' && p[0] <= '6')
        return p[0] - '0';
    if (p[0] == 'b') {
        if (is_b64)
            *is_b64 = 1;
        return EIO_MESSAGE;
    }
    return ERR_PROTO;
}

/* eio__json_str appends s as a JSON string. The sid is ours, but escaping it
 * keeps the OPEN packet valid JSON whatever generates ids later. */
static int eio__json_str(buf_t *out, const char *s)
{
    int rc = buf_append_byte(out, '"');
    for (; rc == 0 && *s; s++) {
        uint8_t c = (uint8_t)*s;
        if (c == '"' || c == '\\')
            rc = buf_printf(out, "\\%c", c);
        else if (c < 0x20)
            rc = buf_printf(out, "\\u%04x", c);
        else
            rc = buf_append_byte(out, c);
    }
    return rc ? rc : buf_append_byte(out, '"');
}

int eio_open_append(buf_t *out, const char *sid, uint32_t ping_interval_ms,
                    uint32_t ping_timeout_ms, uint32_t max_payload)
{
    size_t len0 = out->len;
    int rc = buf_append_str(out, "0{\"sid\":");
    if (rc == 0)
        rc = eio__json_str(out, sid);
    if (rc == 0)
        rc = buf_printf(out, ",\"upgrades\":[],\"pingInterval\":%u,\"pingTimeout\":%u,\"maxPayload\":%u}",
                        ping_interval_ms, ping_timeout_ms, max_payload);
    if (rc)
        out->len = len0;
    return rc;
}

/* eio__b64_val maps a standard-alphabet character to its 6 bits, or -1. */
static int eio__b64_val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* eio_b64_decode steps:
 *  1. Strip padding; when present it must complete a group of four.
 *  2. A lone character in the last group carries fewer than 8 bits: refuse.
 *  3. Decode four characters to three bytes; the last group yields one or
 *     two bytes, and its unused low bits must be zero (canonical input),
 *     so one binary message has exactly one text form. */
int eio_b64_decode(const uint8_t *p, size_t n, buf_t *out)
{
    /* 1. */
    size_t pad = 0;
    while (pad < n && pad < 3 && p[n - 1 - pad] == '=')
        pad++;
    if (pad > 2 || (pad && n % 4 != 0))
        return ERR_PROTO;
    n -= pad;
    /* 2. */
    if (n % 4 == 1)
        return ERR_PROTO;
    int rc = buf_reserve(out, n / 4 * 3 + 2);
    if (rc)
        return rc;
    /* 3. */
    uint32_t acc = 0;
    size_t bits = 0;
    uint8_t *w = out->p + out->len;
    for (size_t i = 0; i < n; i++) {
        int v = eio__b64_val(p[i]);
        if (v < 0)
            return ERR_PROTO;   /* out->len is untouched until the end */
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *w++ = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return ERR_PROTO;
    out->len = (size_t)(w - out->p);
    return 0;
}
