/* http.c - strict HTTP/1.1 request-head parsing and the few responses the
 * broker writes on its port (see http.h; protocol.md §1, §9).
 *
 * Runs on whichever shard owns the connection; it keeps no state between
 * calls, so a connection simply re-parses its buffered head after every read
 * until http_parse() stops returning 0 (heads are at most HTTP_HEAD_MAX
 * bytes, so the repeated scan is bounded).
 *
 * Invariants:
 *  - http_parse() never allocates and never reads past p[n) or past the
 *    first HTTP_HEAD_MAX bytes; every output field is NUL-terminated and
 *    fits its slot, or the request is refused with ERR_PROTO.
 *  - Lines end in CRLF. A bare CR or LF, any other control character (HTAB
 *    is allowed inside field values), obs-fold and whitespace before a colon
 *    are refused: being lenient here is how request smuggling starts.
 *  - Transfer-Encoding is refused because http_req_t cannot describe a
 *    chunked body; a client that sends one gets 400 instead of a body we
 *    would misread as the next request.
 */
#include "http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "../src/err.h"

/* Headers that may appear once; a repeat is refused (bits of `seen`). */
enum {
    HTTP__SEEN_VERSION = 1u << 0,
    HTTP__SEEN_KEY = 1u << 1,
    HTTP__SEEN_AUTH = 1u << 2,
    HTTP__SEEN_LENGTH = 1u << 3,
};

static int http__lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

/* http__ieq compares s[0..n) with the lower-case word w, ignoring ASCII case
 * (not strncasecmp: that one follows the locale). */
static bool http__ieq(const uint8_t *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    if (n != wl)
        return false;
    for (size_t i = 0; i < n; i++)
        if (http__lower(s[i]) != w[i])
            return false;
    return true;
}

/* RFC 9110 tchar: the characters allowed in a token (header names). */
static bool http__is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool http__is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

/* Field values may hold HTAB, visible ASCII, space and obs-text. */
static bool http__is_vchar(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* http__head_len returns the length of the head including CRLFCRLF, or 0 if
 * the first min(n, HTTP_HEAD_MAX) bytes hold no end of head. */
static size_t http__head_len(const uint8_t *p, size_t n)
{
    size_t lim = n < HTTP_HEAD_MAX ? n : HTTP_HEAD_MAX;
    const uint8_t *e = lim >= 4 ? memmem(p, lim, "\r\n\r\n", 4) : NULL;
    return e ? (size_t)(e - p) + 4 : 0;
}

/* http__copy copies a field into a fixed slot; a value that does not fit is
 * a protocol error, never a silent truncation. */
static int http__copy(char *dst, size_t cap, const uint8_t *v, size_t n)
{
    if (n >= cap)
        return ERR_PROTO;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return 0;
}

/* http__digits parses 1..max_digits decimal digits (no sign, no spaces). */
static int http__digits(const uint8_t *v, size_t n, size_t max_digits, long long *out)
{
    if (n == 0 || n > max_digits)
        return ERR_PROTO;
    long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return ERR_PROTO;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return 0;
}

/* http__has_token tells whether a comma-separated token list (such as
 * "keep-alive, Upgrade") holds tok, ignoring case and optional whitespace. */
static bool http__has_token(const uint8_t *v, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (start < end && http__is_ows(v[start]))
            start++;
        while (end > start && http__is_ows(v[end - 1]))
            end--;
        if (http__ieq(v + start, end - start, tok))
            return true;
        i++;   /* skip the comma */
    }
    return false;
}

/* http__request_line parses "METHOD SP /target SP HTTP/1.x" (the line
 * without its CRLF). Only origin-form targets are accepted: the broker is no
 * proxy, so "http://..." and "*" have no meaning here. */
static int http__request_line(const uint8_t *l, size_t n, http_req_t *req)
{
    size_t i = 0;
    while (i < n && l[i] >= 'A' && l[i] <= 'Z')
        i++;
    if (i == 0 || i >= sizeof(req->method) || i == n || l[i] != ' ')
        return ERR_PROTO;
    memcpy(req->method, l, i);
    req->method[i] = '\0';

    size_t t = ++i, q = 0;   /* target start; offset of '?' (0: none) */
    while (i < n && l[i] > 0x20 && l[i] < 0x7f) {
        if (l[i] == '?' && q == 0)
            q = i;
        i++;
    }
    if (i == t || l[t] != '/' || i == n || l[i] != ' ')
        return ERR_PROTO;
    size_t path_end = q ? q : i;
    if (http__copy(req->path, sizeof(req->path), l + t, path_end - t) != 0)
        return ERR_PROTO;
    if (q && http__copy(req->query, sizeof(req->query), l + q + 1, i - q - 1) != 0)
        return ERR_PROTO;

    i++;
    if (n - i != 8 || memcmp(l + i, "HTTP/1.", 7) != 0 || (l[i + 7] != '1' && l[i + 7] != '0'))
        return ERR_PROTO;
    return 0;
}

/* http__field stores one header the broker cares about; others are only
 * validated. `seen` records single-valued headers to refuse repeats (two
 * Content-Length values are a classic smuggling vector). */
static int http__field(const uint8_t *name, size_t nl, const uint8_t *v, size_t vl,
                       http_req_t *req, unsigned *seen)
{
    long long x;
    unsigned bit = 0;
    int rc = 0;
    if (http__ieq(name, nl, "upgrade")) {
        req->upgrade_websocket |= http__has_token(v, vl, "websocket");
    } else if (http__ieq(name, nl, "connection")) {
        req->connection_upgrade |= http__has_token(v, vl, "upgrade");
    } else if (http__ieq(name, nl, "sec-websocket-version")) {
        bit = HTTP__SEEN_VERSION;
        rc = http__digits(v, vl, 3, &x);
        req->ws_version = rc == 0 ? (int)x : 0;
    } else if (http__ieq(name, nl, "sec-websocket-key")) {
        bit = HTTP__SEEN_KEY;
        rc = http__copy(req->ws_key, sizeof(req->ws_key), v, vl);
    } else if (http__ieq(name, nl, "authorization")) {
        bit = HTTP__SEEN_AUTH;
        rc = http__copy(req->authorization, sizeof(req->authorization), v, vl);
    } else if (http__ieq(name, nl, "content-length")) {
        bit = HTTP__SEEN_LENGTH;
        rc = http__digits(v, vl, 18, &x);   /* 18 digits cannot overflow */
        req->content_length = rc == 0 ? x : -1;
    } else if (http__ieq(name, nl, "transfer-encoding")) {
        rc = ERR_PROTO;   /* see the file header */
    }
    if (rc != 0 || (*seen & bit))
        return ERR_PROTO;
    *seen |= bit;
    return 0;
}

/* http__header_line splits "name: value" (the line without its CRLF),
 * checks every byte and hands the trimmed value to http__field. */
static int http__header_line(const uint8_t *l, size_t n, http_req_t *req, unsigned *seen)
{
    size_t c = 0;
    while (c < n && http__is_tchar(l[c]))
        c++;
    /* Also refuses a leading space (obs-fold) and "name :" (RFC 9112 §5.1). */
    if (c == 0 || c == n || l[c] != ':')
        return ERR_PROTO;
    size_t vs = c + 1, ve = n;
    for (size_t i = vs; i < n; i++)
        if (!http__is_vchar(l[i]))
            return ERR_PROTO;
    while (vs < ve && http__is_ows(l[vs]))
        vs++;
    while (ve > vs && http__is_ows(l[ve - 1]))
        ve--;
    return http__field(l, c, l + vs, ve - vs, req, seen);
}

int http_parse(const uint8_t *p, size_t n, http_req_t *req)
{
    size_t head = http__head_len(p, n);
    if (head == 0)
        return n >= HTTP_HEAD_MAX ? ERR_TOO_LARGE : 0;

    memset(req, 0, sizeof(*req));
    req->content_length = -1;
    unsigned seen = 0;
    bool first = true;
    /* The head ends in CRLFCRLF: the last CRLF is the blank line, so the
     * lines to parse are p[0 .. head-2), each ending in CRLF. Lines are cut at
     * LF; a LF without CR before it, or a CR elsewhere, fails the byte checks
     * in the line parsers (CR is a control character). */
    size_t off = 0, end = head - 2;
    while (off < end) {
        const uint8_t *lf = memchr(p + off, '\n', end - off);
        size_t len = (size_t)(lf - (p + off));   /* lf exists: p[end-1] == '\n' */
        if (len == 0 || p[off + len - 1] != '\r')
            return ERR_PROTO;
        len--;   /* drop the CR */
        int rc = first ? http__request_line(p + off, len, req)
                       : http__header_line(p + off, len, req, &seen);
        if (rc != 0)
            return rc;
        first = false;
        off += len + 2;
    }
    return (int)head;
}

int http_query_get(const char *query, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *s = query;
    while (*s) {
        const char *amp = strchr(s, '&');
        size_t pl = amp ? (size_t)(amp - s) : strlen(s);
        if (pl >= kl && memcmp(s, key, kl) == 0 && (pl == kl || s[kl] == '=')) {
            size_t vl = pl == kl ? 0 : pl - kl - 1;
            if (cap == 0 || vl > cap - 1)
                return -1;
            memcpy(out, s + pl - vl, vl);
            out[vl] = '\0';
            return (int)vl;
        }
        if (!amp)
            break;
        s = amp + 1;
    }
    return -1;
}

int http_ws_accept(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /* A real key is 24 characters; the bound keeps the input on the stack and
     * matches the ws_key slot of http_req_t, so a parsed key always fits. */
    char in[sizeof(((http_req_t *)0)->ws_key) + sizeof(guid)];
    size_t kl = key ? strlen(key) : 0;
    if (kl == 0 || kl >= sizeof(((http_req_t *)0)->ws_key))
        return ERR_PROTO;
    memcpy(in, key, kl);
    memcpy(in + kl, guid, sizeof(guid) - 1);
    uint8_t md[SHA_DIGEST_LENGTH];
    /* The one-shot SHA1() works on the stack; it has no failure mode for the
     * built-in digest, but keep the check rather than trust that. */
    if (!SHA1((const unsigned char *)in, kl + sizeof(guid) - 1, md))
        return ERR_PROTO;
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);   /* 28 chars and a NUL */
    return 0;
}

/* http__append appends a response head and the body after reserving
 * room for both, so a failure leaves out unchanged instead of holding half a
 * response. */
static int http__append(buf_t *out, const char *head, int head_len, const char *body, size_t body_len)
{
    if (head_len < 0)
        return -EINVAL;
    int rc = buf_reserve(out, (size_t)head_len + body_len);
    if (rc)
        return rc;
    memcpy(out->p + out->len, head, (size_t)head_len);
    out->len += (size_t)head_len;
    if (body_len)
        memcpy(out->p + out->len, body, body_len);
    out->len += body_len;
    return 0;
}

int http_response(buf_t *out, int status, const char *content_type, const char *body, size_t body_len)
{
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, http_status_text(status), content_type, body_len);
    if (hl < 0 || (size_t)hl >= sizeof(head))
        return -EINVAL;   /* only an absurd content_type from our own code */
    return http__append(out, head, hl, body, body_len);
}

int http_upgrade_response(buf_t *out, const char accept[29])
{
    char head[160];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %.28s\r\n\r\n",
                      accept);
    return http__append(out, head, hl, NULL, 0);
}

const char *http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}
