/* http.h - strict, bounded HTTP/1.1 request-head parsing for the WebSocket
 * upgrade and the small HTTP API on the broker's port (protocol.md §1, §9).
 *
 * Pure: input is a byte span, output is a struct; no I/O, no globals, no
 * allocation. Header names and the values of Upgrade/Connection are matched
 * case-insensitively. The request line plus headers may not exceed
 * HTTP_HEAD_MAX bytes.
 */
#ifndef RC_HTTP_H
#define RC_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "../src/buf.h"

#define HTTP_HEAD_MAX 8192

typedef struct {
    char method[8];          /* "GET", "POST", ...                                */
    char path[512];          /* path without the query, percent-decoding not done  */
    char query[1024];        /* raw query string without '?', "" if none           */
    int upgrade_websocket;   /* 1 if "Upgrade: websocket" (any case)               */
    int connection_upgrade;  /* 1 if the Connection header lists the token upgrade */
    int ws_version;          /* Sec-WebSocket-Version, 0 when absent               */
    char ws_key[64];         /* Sec-WebSocket-Key, "" when absent                  */
    char authorization[1024];/* Authorization header value, "" when absent         */
    long long content_length;/* -1 when absent                                     */
} http_req_t;

/* http_parse parses one request head (request line and headers up to the
 * blank line). Returns:
 *   > 0  the number of bytes of the head (including the final CRLFCRLF);
 *        bytes after it belong to the body or to the WebSocket stream;
 *   0    the head is incomplete and n < HTTP_HEAD_MAX: read more;
 *   ERR_TOO_LARGE  no end of head within HTTP_HEAD_MAX bytes;
 *   ERR_PROTO      malformed (bad request line, not HTTP/1.1 or 1.0, a header
 *                  line without ':', a field value too long for its slot,
 *                  control characters, obs-fold).
 * The caller answers 400 (or 431 for ERR_TOO_LARGE) and closes. */
int http_parse(const uint8_t *p, size_t n, http_req_t *req);

/* http_query_get finds key in a query string ("a=1&b=2", any order) and copies
 * its value (not percent-decoded) to out. Returns the value length, or -1 if
 * the key is absent or the value does not fit in cap-1 bytes. */
int http_query_get(const char *query, const char *key, char *out, size_t cap);

/* http_ws_accept computes Sec-WebSocket-Accept for a client key:
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), 28 chars + NUL.
 * Returns 0, or ERR_PROTO if key is empty. Uses OpenSSL. */
int http_ws_accept(const char *key, char out[29]);

/* http_response appends a complete HTTP/1.1 response with Content-Type,
 * Content-Length and "Connection: close" headers and the body.
 * Returns 0 or -ENOMEM. */
int http_response(buf_t *out, int status, const char *content_type, const char *body, size_t body_len);

/* http_upgrade_response appends the 101 Switching Protocols response for the
 * given accept value (no extensions, no subprotocol). Returns 0 or -ENOMEM. */
int http_upgrade_response(buf_t *out, const char accept[29]);

/* http_status_text returns the reason phrase for a status code ("OK", ...). */
const char *http_status_text(int status);

#endif
