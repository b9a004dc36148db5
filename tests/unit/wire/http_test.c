/* http_test.c - unit tests for wire/http.c: upgrade requests as the JS and
 * Python clients send them, partial reads at every byte boundary, limits,
 * malformed heads, query lookup and the RFC 6455 accept key. */
#include "../../../wire/http.h"

#include "../../../src/err.h"

#include "../../support/check.h"

/* What socket.io-client (Node "ws") sends with transports: ['websocket']. */
static const char http_test_js[] =
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "\r\n";

/* What python-socketio (websocket-client / aiohttp) sends. */
static const char http_test_py[] =
    "GET /socket.io/?transport=websocket&EIO=4&t=1795303541.4173303 HTTP/1.1\r\n"
    "Upgrade: websocket\r\n"
    "Host: localhost:8080\r\n"
    "Origin: http://localhost:8080\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Connection: upgrade\r\n"
    "\r\n";

static int http_test_parse_str(const char *s, http_req_t *req)
{
    return http_parse((const uint8_t *)s, strlen(s), req);
}

static void http_test_js_client(void)
{
    http_req_t req;
    CHECK_EQ_INT(http_test_parse_str(http_test_js, &req), (int)strlen(http_test_js));
    CHECK_EQ_STR(req.method, "GET");
    CHECK_EQ_STR(req.path, "/socket.io/");
    CHECK_EQ_STR(req.query, "EIO=4&transport=websocket");
    CHECK_EQ_INT(req.upgrade_websocket, 1);
    CHECK_EQ_INT(req.connection_upgrade, 1);
    CHECK_EQ_INT(req.ws_version, 13);
    CHECK_EQ_STR(req.ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK_EQ_STR(req.authorization, "");
    CHECK_EQ_INT(req.content_length, -1);
}

static void http_test_py_client(void)
{
    http_req_t req;
    CHECK_EQ_INT(http_test_parse_str(http_test_py, &req), (int)strlen(http_test_py));
    CHECK_EQ_STR(req.path, "/socket.io/");
    CHECK_EQ_STR(req.query, "transport=websocket&EIO=4&t=1795303541.4173303");
    CHECK_EQ_INT(req.upgrade_websocket, 1);
    CHECK_EQ_INT(req.connection_upgrade, 1);
    CHECK_EQ_INT(req.ws_version, 13);
    CHECK_EQ_STR(req.ws_key, "x3JJHMbDL1EzLkh9GBhXDw==");
    char v[32];
    CHECK_EQ_INT(http_query_get(req.query, "EIO", v, sizeof(v)), 1);
    CHECK_EQ_STR(v, "4");
    CHECK_EQ_INT(http_query_get(req.query, "transport", v, sizeof(v)), 9);
    CHECK_EQ_STR(v, "websocket");
}

static void http_test_odd_case(void)
{
    const char *s = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                    "hOsT: x\r\n"
                    "UPGRADE:WebSocket\r\n"
                    "cOnNeCtIoN: keep-alive,  UpGrAdE \r\n"
                    "sec-websocket-key:\tabc \r\n"
                    "SEC-WEBSOCKET-VERSION: 13\r\n"
                    "AUTHORIZATION: Bearer x.y.z\r\n"
                    "Content-LENGTH: 0\r\n"
                    "\r\n";
    http_req_t req;
    CHECK_EQ_INT(http_test_parse_str(s, &req), (int)strlen(s));
    CHECK_EQ_INT(req.upgrade_websocket, 1);
    CHECK_EQ_INT(req.connection_upgrade, 1);
    CHECK_EQ_STR(req.ws_key, "abc");
    CHECK_EQ_INT(req.ws_version, 13);
    CHECK_EQ_STR(req.authorization, "Bearer x.y.z");
    CHECK_EQ_INT(req.content_length, 0);

    /* "upgrade" must be a whole token, not a substring. */
    const char *t = "GET / HTTP/1.1\r\nConnection: keep-alive, upgrades\r\nUpgrade: websockets\r\n\r\n";
    CHECK_EQ_INT(http_test_parse_str(t, &req), (int)strlen(t));
    CHECK_EQ_INT(req.connection_upgrade, 0);
    CHECK_EQ_INT(req.upgrade_websocket, 0);
}

/* Every prefix shorter than the head is "read more"; the full head parses. */
static void http_test_split(const char *s)
{
    size_t n = strlen(s);
    http_req_t req;
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(http_parse((const uint8_t *)s, i, &req), 0);
    CHECK_EQ_INT(http_parse((const uint8_t *)s, n, &req), (int)n);
    CHECK_EQ_INT(req.upgrade_websocket, 1);
}

static void http_test_trailing_bytes(void)
{
    /* Bytes after the head (WebSocket data, a body) are not part of it. */
    char s[512];
    int n = snprintf(s, sizeof(s), "%s\x81\x85xxxx", http_test_js);
    http_req_t req;
    CHECK_EQ_INT(http_parse((const uint8_t *)s, (size_t)n, &req), (int)strlen(http_test_js));

    const char *post = "POST /api/publish HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}";
    CHECK_EQ_INT(http_test_parse_str(post, &req), (int)strlen(post) - 2);
    CHECK_EQ_STR(req.method, "POST");
    CHECK_EQ_STR(req.path, "/api/publish");
    CHECK_EQ_STR(req.query, "");
    CHECK_EQ_INT(req.content_length, 2);
}

static void http_test_too_large(void)
{
    static uint8_t big[HTTP_HEAD_MAX + 100];
    const char *line = "GET / HTTP/1.1\r\n";
    memset(big, 'a', sizeof(big));
    memcpy(big, line, strlen(line));
    /* "X-Pad: aaaa...". */
    memcpy(big + strlen(line), "X-Pad: ", 7);
    http_req_t req;
    CHECK_EQ_INT(http_parse(big, HTTP_HEAD_MAX - 1, &req), 0);
    CHECK_EQ_INT(http_parse(big, HTTP_HEAD_MAX, &req), ERR_TOO_LARGE);
    CHECK_EQ_INT(http_parse(big, sizeof(big), &req), ERR_TOO_LARGE);

    /* A head of exactly HTTP_HEAD_MAX bytes is still fine ... */
    memcpy(big + HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
    CHECK_EQ_INT(http_parse(big, sizeof(big), &req), HTTP_HEAD_MAX);
    /* ... one more byte is not, even when the end arrives in the same read. */
    memset(big + HTTP_HEAD_MAX - 4, 'a', 4);
    memcpy(big + HTTP_HEAD_MAX - 3, "\r\n\r\n", 4);
    CHECK_EQ_INT(http_parse(big, sizeof(big), &req), ERR_TOO_LARGE);
}

static void http_test_malformed(void)
{
    static const char *bad[] = {
        "\r\n\r\n",
        "GET\r\n\r\n",
        "GET /\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "get / HTTP/1.1\r\n\r\n",
        "GETTINGS / HTTP/1.1\r\n\r\n",
        "GET socket.io HTTP/1.1\r\n\r\n",
        "GET http://a/ HTTP/1.1\r\n\r\n",
        "GET * HTTP/1.1\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\n\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        "GET / HTTP/1.1\r\nX(y): a\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nSec-WebSocket-Version: 1x\r\n\r\n",
        "GET / HTTP/1.1\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nSec-WebSocket-Key: 0123456789012345678901234567890123456789012345678901234567890123\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        http_req_t req;
        int rc = http_parse((const uint8_t *)bad[i], strlen(bad[i]), &req);
        if (rc != ERR_PROTO)
            fprintf(stderr, "bad[%zu] = %d\n", i, rc);
        CHECK_EQ_INT(rc, ERR_PROTO);
    }

    /* A NUL inside a value (strlen would stop at it, so the length is given). */
    static const char nul[] = "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n";
    http_req_t req;
    CHECK_EQ_INT(http_parse((const uint8_t *)nul, sizeof(nul) - 1, &req), ERR_PROTO);

    /* Slots: a path of 511 bytes fits, 512 does not; likewise the query. */
    char s[2048], path[600];
    memset(path, 'p', sizeof(path));
    path[0] = '/';
    int n = snprintf(s, sizeof(s), "GET %.*s HTTP/1.1\r\n\r\n", 511, path);
    CHECK_EQ_INT(http_parse((uint8_t *)s, (size_t)n, &req), n);
    CHECK_EQ_INT(strlen(req.path), 511);
    n = snprintf(s, sizeof(s), "GET %.*s HTTP/1.1\r\n\r\n", 512, path);
    CHECK_EQ_INT(http_parse((uint8_t *)s, (size_t)n, &req), ERR_PROTO);
    char q[1100];
    memset(q, 'q', sizeof(q));
    n = snprintf(s, sizeof(s), "GET /?%.*s HTTP/1.1\r\n\r\n", 1023, q);
    CHECK_EQ_INT(http_parse((uint8_t *)s, (size_t)n, &req), n);
    CHECK_EQ_INT(strlen(req.query), 1023);
    n = snprintf(s, sizeof(s), "GET /?%.*s HTTP/1.1\r\n\r\n", 1024, q);
    CHECK_EQ_INT(http_parse((uint8_t *)s, (size_t)n, &req), ERR_PROTO);
}

static void http_test_query(void)
{
    char v[16];
    const char *q = "t=17.5&EIO=4&foo&transport=websocket&empty=&x=a=b";
    CHECK_EQ_INT(http_query_get(q, "EIO", v, sizeof(v)), 1);
    CHECK_EQ_STR(v, "4");
    CHECK_EQ_INT(http_query_get(q, "t", v, sizeof(v)), 4);
    CHECK_EQ_STR(v, "17.5");
    CHECK_EQ_INT(http_query_get(q, "transport", v, sizeof(v)), 9);
    CHECK_EQ_STR(v, "websocket");
    CHECK_EQ_INT(http_query_get(q, "foo", v, sizeof(v)), 0);
    CHECK_EQ_STR(v, "");
    CHECK_EQ_INT(http_query_get(q, "empty", v, sizeof(v)), 0);
    CHECK_EQ_INT(http_query_get(q, "x", v, sizeof(v)), 3);
    CHECK_EQ_STR(v, "a=b");
    CHECK_EQ_INT(http_query_get(q, "sid", v, sizeof(v)), -1);
    CHECK_EQ_INT(http_query_get(q, "EI", v, sizeof(v)), -1);     /* no prefix match */
    CHECK_EQ_INT(http_query_get(q, "eio", v, sizeof(v)), -1);    /* keys are exact */
    CHECK_EQ_INT(http_query_get(q, "transport", v, 9), -1);      /* needs 10 bytes */
    CHECK_EQ_INT(http_query_get(q, "transport", v, 10), 9);
    CHECK_EQ_INT(http_query_get(q, "EIO", v, 0), -1);
    CHECK_EQ_INT(http_query_get("", "EIO", v, sizeof(v)), -1);
    CHECK_EQ_INT(http_query_get("EIO=3&EIO=4", "EIO", v, sizeof(v)), 1);
    CHECK_EQ_STR(v, "3");   /* the first one counts */
}

static void http_test_accept(void)
{
    char out[29];
    CHECK_EQ_INT(http_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK_EQ_INT(http_ws_accept("x3JJHMbDL1EzLkh9GBhXDw==", out), 0);
    CHECK_EQ_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");   /* RFC 6455 §1.3 / §4.2.2 */
    CHECK_EQ_INT(http_ws_accept("", out), ERR_PROTO);
}

static void http_test_responses(void)
{
    buf_t b = {0};
    CHECK_EQ_INT(http_response(&b, 400, "text/plain", "Unsupported protocol version", 28), 0);
    const char *want = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 28\r\nConnection: close\r\n\r\nUnsupported protocol version";
    CHECK_EQ_INT(b.len, strlen(want));
    CHECK_MEM(b.p, want, strlen(want));
    buf_reset(&b);
    CHECK_EQ_INT(http_response(&b, 204, "application/json", NULL, 0), 0);
    want = "HTTP/1.1 204 No Content\r\nContent-Type: application/json\r\n"
           "Content-Length: 0\r\nConnection: close\r\n\r\n";
    CHECK_EQ_INT(b.len, strlen(want));
    CHECK_MEM(b.p, want, strlen(want));
    buf_reset(&b);
    CHECK_EQ_INT(http_upgrade_response(&b, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), 0);
    want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    CHECK_EQ_INT(b.len, strlen(want));
    CHECK_MEM(b.p, want, strlen(want));
    buf_deinit(&b);
    CHECK_EQ_STR(http_status_text(431), "Request Header Fields Too Large");
    CHECK_EQ_STR(http_status_text(599), "Unknown");
}

int main(void)
{
    check_seed("http_test");
    http_test_js_client();
    http_test_py_client();
    http_test_odd_case();
    http_test_split(http_test_js);
    http_test_split(http_test_py);
    http_test_trailing_bytes();
    http_test_too_large();
    http_test_malformed();
    http_test_query();
    http_test_accept();
    http_test_responses();
    return check_done("http_test");
}
