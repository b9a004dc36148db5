/* sess.c - one client connection, from HTTP head to Socket.IO events.
 *
 * Runs on the shard that owns the socket. States (sess_t.state):
 *   SESS_HTTP       reading the request head (bounded: 8 KiB, handshake
 *                   deadline); /healthz and errors are answered here.
 *   SESS_OPEN       WebSocket up, Engine.IO OPEN sent; waiting for CONNECT
 *                   to "/" (other namespaces get CONNECT_ERROR and the
 *                   session stays); closed if none within the deadline.
 *   SESS_HANDOFF    authenticated on the wrong shard: reading stopped, the
 *                   socket travels to hash(userId) % N with every byte and
 *                   message not yet handled (clients send nothing between
 *                   CONNECT and the CONNECT reply, so this is normally none).
 *   SESS_CONNECTED  on the user's shard: events flow.
 *   SESS_CLOSED     closing; input is ignored.
 *
 * Input path: recv bytes -> ws_scan (how many form whole frames) -> a wslay
 * context leased from the shard pool parses them -> on_msg -> Engine.IO ->
 * Socket.IO. Partial frames wait in sess.in; the wslay context goes back to
 * the pool at a frame boundary, so an idle connection holds neither.
 */
#include "sess.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/err.h"
#include "../src/log.h"
#include "../wire/eio.h"
#include "../wire/http.h"
#include "../wire/json.h"
#include "evt.h"
#include "pers.h"
#include "room.h"
#include "user.h"

static const uint8_t *sess__secret;
static size_t sess__secret_len;
static int64_t (*sess__store_health)(void);

void sess_setup(const uint8_t *secret, size_t secret_len, int64_t (*store_health)(void))
{
    sess__secret = secret;
    sess__secret_len = secret_len;
    sess__store_health = store_health;
}

static void sess__on_ws_msg(void *ud, int opcode, const uint8_t *p, size_t n);

/* The shard running the current wslay callback (wslay's user data is the
 * session; the shard is implied by the thread). */
static _Thread_local shard_t *sess__cur_shard;

/* ---- sending and closing ------------------------------------------------ */

void sess_send(actor_t *a, sess_t *s, buf_blob_t *frame)
{
    if (!frame)
        return;
    if (s->state == SESS_CLOSED) {
        buf_blob_unref(frame);
        return;
    }
    if (shard_send(a->sh, s->c, frame) == ERR_FULL) {
        LOG_INF("socket %s over --outbound-max-bytes: disconnecting a slow consumer", s->sid);
        s->state = SESS_CLOSED;
        shard_close(a->sh, s->c, false);
    }
}

void sess_reply(actor_t *a, sess_t *s, int64_t ack_id, json_t *payload)
{
    sess_send(a, s, evt_reply(s->enc, ack_id, payload));
}

void sess_close_ws(actor_t *a, sess_t *s, uint16_t code, const char *reason)
{
    if (s->state == SESS_CLOSED)
        return;
    uint8_t fr[160];
    size_t n = ws_close_frame(fr, code, reason);
    buf_blob_t *b = buf_blob_new((uint32_t)n);
    if (b) {
        memcpy(b->data, fr, n);
        buf_blob_freeze(b);
        shard_send(a->sh, s->c, b);
    }
    s->state = SESS_CLOSED;
    shard_close(a->sh, s->c, true);
}

static void sess__http_answer(actor_t *a, sess_t *s, int status, const char *json)
{
    buf_t out = {0};
    if (http_response(&out, status, "application/json", json, strlen(json)) == 0) {
        buf_blob_t *b = buf_blob_new((uint32_t)out.len);
        if (b) {
            memcpy(b->data, out.p, out.len);
            buf_blob_freeze(b);
            shard_send(a->sh, s->c, b);
        }
    }
    buf_deinit(&out);
    s->state = SESS_CLOSED;
    shard_close(a->sh, s->c, true);
}

/* ---- timers ------------------------------------------------------------- */

static void sess__schedule(actor_t *a, sess_t *s)
{
    uint64_t d = UINT64_MAX;
    if (s->open_deadline_ms)
        d = s->open_deadline_ms;
    if (s->state == SESS_OPEN || s->state == SESS_CONNECTED) {
        if (s->next_ping_ms < d)
            d = s->next_ping_ms;
        if (s->awaiting_pong && s->pong_deadline_ms < d)
            d = s->pong_deadline_ms;
    }
    if (d != UINT64_MAX && d != s->deadline_ms) {
        s->deadline_ms = d;
        shard_timer(a->sh, d, s->h);
    }
}

static void sess__on_timer(shard_t *sh, uint64_t id)
{
    actor_t *a = sh->actor;
    io_conn_t *c = shard_conn(sh, id);
    if (!c)
        return;
    sess_t *s = c->sess;
    uint64_t now = sh->now_ms;
    if (s->state == SESS_CLOSED || s->state == SESS_HANDOFF || now < s->deadline_ms)
        return;   /* a stale entry: the deadline moved later */
    s->deadline_ms = 0;
    if (s->open_deadline_ms && now >= s->open_deadline_ms) {
        LOG_DBG("socket %s: no CONNECT to \"/\" within the handshake deadline", s->sid);
        if (s->state == SESS_HTTP) {
            s->state = SESS_CLOSED;
            shard_close(sh, c, false);
        } else {
            sess_close_ws(a, s, WS_CLOSE_POLICY, "handshake timeout");
        }
        return;
    }
    if (s->awaiting_pong && now >= s->pong_deadline_ms) {
        LOG_DBG("socket %s: ping timeout", s->sid);
        sess_close_ws(a, s, WS_CLOSE_GOING_AWAY, "ping timeout");
        return;
    }
    if (now >= s->next_ping_ms) {
        sess_send(a, s, evt_text_frame("2", 1));
        const cfg_t *cfg = sh->cfg;
        s->next_ping_ms = now + cfg->ping_interval_ms;
        if (!s->awaiting_pong) {
            s->awaiting_pong = true;
            s->pong_deadline_ms = now + cfg->ping_timeout_ms;
        }
    }
    sess__schedule(a, s);
}

/* ---- HTTP ---------------------------------------------------------------- */

static void sess__feed_ws(actor_t *a, sess_t *s, const uint8_t *p, size_t n);

static void sess__upgrade(actor_t *a, sess_t *s, const http_req_t *req)
{
    char eio[8], transport[32], sid[64];
    if (http_query_get(req->query, "EIO", eio, sizeof(eio)) < 0 || strcmp(eio, "4") != 0) {
        sess__http_answer(a, s, 400, "{\"code\":5,\"message\":\"Unsupported protocol version\"}");
        return;
    }
    if (http_query_get(req->query, "transport", transport, sizeof(transport)) < 0 ||
        strcmp(transport, "websocket") != 0) {
        sess__http_answer(a, s, 400, "{\"code\":0,\"message\":\"Transport unknown (only websocket is offered)\"}");
        return;
    }
    if (http_query_get(req->query, "sid", sid, sizeof(sid)) >= 0) {
        sess__http_answer(a, s, 400, "{\"code\":1,\"message\":\"Session ID unknown\"}");
        return;
    }
    if (strcmp(req->method, "GET") != 0 || !req->upgrade_websocket || !req->connection_upgrade ||
        req->ws_version != 13 || !req->ws_key[0]) {
        sess__http_answer(a, s, 400, "{\"code\":3,\"message\":\"Bad request: expected a WebSocket upgrade (version 13)\"}");
        return;
    }
    char accept[29];
    buf_t out = {0};
    const cfg_t *cfg = a->sh->cfg;
    snprintf(s->sid, sizeof(s->sid), "%02x%014" PRIx64, (unsigned)a->sh->id, ++a->sid_counter);
    if (http_ws_accept(req->ws_key, accept) < 0 || http_upgrade_response(&out, accept) < 0) {
        buf_deinit(&out);
        sess__http_answer(a, s, 400, "{\"code\":3,\"message\":\"Bad Sec-WebSocket-Key\"}");
        return;
    }
    buf_blob_t *b = buf_blob_new((uint32_t)out.len);
    buf_t open = {0};
    int rc = eio_open_append(&open, s->sid, cfg->ping_interval_ms, cfg->ping_timeout_ms, cfg->max_payload);
    if (b && rc == 0) {
        memcpy(b->data, out.p, out.len);
        buf_blob_freeze(b);
        shard_send(a->sh, s->c, b);
        sess_send(a, s, evt_text_frame((const char *)open.p, open.len));
        b = NULL;
    }
    if (b)
        buf_blob_unref(b);
    buf_deinit(&out);
    buf_deinit(&open);
    s->state = SESS_OPEN;
    s->next_ping_ms = a->sh->now_ms + cfg->ping_interval_ms;
    sess__schedule(a, s);
}

static void sess__on_http(actor_t *a, sess_t *s)
{
    http_req_t req;
    int n = http_parse(s->in.p, s->in.len, &req);
    if (n == 0)
        return;
    if (n < 0) {
        sess__http_answer(a, s, n == ERR_TOO_LARGE ? 431 : 400,
                          n == ERR_TOO_LARGE ? "{\"error\":\"request head over 8 KiB\"}"
                                             : "{\"error\":\"malformed HTTP request\"}");
        return;
    }
    if (strcmp(req.path, "/socket.io/") == 0 || strcmp(req.path, "/socket.io") == 0) {
        sess__upgrade(a, s, &req);
        if (s->state == SESS_OPEN) {
            /* Bytes after the head are the first WebSocket frames. */
            buf_t rest = s->in;
            s->in = (buf_t){0};
            if (rest.len > (size_t)n)
                sess__feed_ws(a, s, rest.p + n, rest.len - (size_t)n);
            buf_deinit(&rest);
        }
        return;
    }
    if (strcmp(req.path, "/healthz") == 0 && strcmp(req.method, "GET") == 0) {
        int64_t down_ms = sess__store_health ? sess__store_health() : 0;
        if (down_ms > 0)
            sess__http_answer(a, s, 503, "{\"status\":\"degraded\",\"reason\":\"store unreachable\"}");
        else
            sess__http_answer(a, s, 200, "{\"status\":\"ok\"}");
        return;
    }
    sess__http_answer(a, s, 404, "{\"error\":\"not found\"}");
}

/* ---- WebSocket input ---------------------------------------------------- */

static int sess__ws_on_send(void *ud, const uint8_t *data, size_t len)
{
    sess_t *s = ud;
    buf_blob_t *b = buf_blob_new((uint32_t)len);
    if (!b)
        return -ENOMEM;
    memcpy(b->data, data, len);
    buf_blob_freeze(b);
    /* Control output (pong, close) is rare and tiny: no limit check. */
    shard_send(sess__cur_shard, s->c, b);
    return 0;
}

static const ws_cbs_t sess__ws_cbs = { .on_msg = sess__on_ws_msg, .on_send = sess__ws_on_send };

static ws_ctx_t *sess__ws_lease(actor_t *a)
{
    if (a->ws_pool_len)
        return a->ws_pool[--a->ws_pool_len];
    return ws_ctx_new(a->sh->cfg->max_payload);
}

static void sess__ws_return(actor_t *a, sess_t *s)
{
    ws_ctx_t *w = s->ws;
    s->ws = NULL;
    if (!w)
        return;
    if (!ws_ctx_idle(w) || a->ws_pool_len >= 256) {
        ws_ctx_free(w);
        return;
    }
    if (a->ws_pool_len == a->ws_pool_cap) {
        uint32_t cap = a->ws_pool_cap ? a->ws_pool_cap * 2 : 16;
        ws_ctx_t **p = realloc(a->ws_pool, cap * sizeof(*p));
        if (!p) {
            ws_ctx_free(w);
            return;
        }
        a->ws_pool = p;
        a->ws_pool_cap = cap;
    }
    a->ws_pool[a->ws_pool_len++] = w;
}

/* Feed complete frames from p[0..n) to wslay; keep what is left in s->in. */
static void sess__feed_ws(actor_t *a, sess_t *s, const uint8_t *p, size_t n)
{
    const cfg_t *cfg = a->sh->cfg;
    bool from_in = s->in.len > 0;
    if (from_in) {
        if (buf_append(&s->in, p, n) < 0) {
            sess_close_ws(a, s, WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
        p = s->in.p;
        n = s->in.len;
    }
    ws_scan_t sc;
    int rc = ws_scan(p, n, s->ws_msg_open, cfg->max_payload, &sc);
    if (rc == ERR_TOO_LARGE) {
        sess_close_ws(a, s, WS_CLOSE_TOO_BIG, "message over maxPayload");
        return;
    }
    if (rc < 0) {
        sess_close_ws(a, s, WS_CLOSE_PROTOCOL, "malformed frame");
        return;
    }
    if (sc.complete) {
        if (!s->ws && !(s->ws = sess__ws_lease(a))) {
            sess_close_ws(a, s, WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
        sess__cur_shard = a->sh;
        rc = ws_ctx_feed(s->ws, p, sc.complete, &sess__ws_cbs, s);
        s->ws_msg_open = sc.msg_open;
        if (rc != 0) {
            if (s->state != SESS_CLOSED) {
                s->state = SESS_CLOSED;
                shard_close(a->sh, s->c, true);   /* wslay queued the close frame */
            }
            return;
        }
        if (!s->ws_msg_open)
            sess__ws_return(a, s);
    }
    size_t rest = n - sc.complete;
    if (s->state == SESS_CLOSED)
        return;
    if (from_in) {
        buf_consume(&s->in, sc.complete);
        if (s->in.len == 0)
            buf_deinit(&s->in);   /* idle: hold no input memory */
    } else if (rest) {
        if (buf_append(&s->in, p + sc.complete, rest) < 0)
            sess_close_ws(a, s, WS_CLOSE_INTERNAL, "out of memory");
    }
}

static void sess__on_data(shard_t *sh, io_conn_t *c, const uint8_t *p, size_t n)
{
    actor_t *a = sh->actor;
    sess_t *s = c->sess;
    switch (s->state) {
    case SESS_HTTP:
        if (buf_append(&s->in, p, n) < 0) {
            shard_close(sh, c, false);
            return;
        }
        sess__on_http(a, s);
        return;
    case SESS_OPEN:
    case SESS_CONNECTED:
        sess__feed_ws(a, s, p, n);
        return;
    case SESS_HANDOFF:
        /* Travels raw with the socket; parsed by the new owner. */
        if (buf_append(&s->in, p, n) < 0)
            shard_close(sh, c, false);
        return;
    default:
        return;
    }
}

/* ---- Engine.IO and Socket.IO ------------------------------------------- */

static void sess__connect_error(actor_t *a, sess_t *s, const char *message, const char *code, bool close)
{
    json_t *d = code ? json_pack("{s:s, s:{s:s}}", "message", message, "data", "code", code)
                     : json_pack("{s:s}", "message", message);
    sio_packet_t pkt = { .type = SIO_CONNECT_ERROR, .nsp = "/", .id = -1, .data = d };
    sess_send(a, s, evt_packet(s->enc, &pkt));
    json_decref(d);
    if (close)
        sess_close_ws(a, s, WS_CLOSE_NORMAL, message);
}

/* The socket is on its user's shard and authenticated: admit it. */
static void sess__admit(actor_t *a, sess_t *s, const jwt_claims_t *claims)
{
    int rc = user_attach(a, s, claims);
    if (rc == ERR_FULL) {
        sess__connect_error(a, s, "too many connections for this user", "TOO_MANY_CONNECTIONS", true);
        return;
    }
    if (rc < 0) {
        sess__connect_error(a, s, "internal error", "INTERNAL", true);
        return;
    }
    s->state = SESS_CONNECTED;
    s->open_deadline_ms = 0;
    json_t *d = json_pack("{s:s}", "sid", s->sid);
    sio_packet_t pkt = { .type = SIO_CONNECT, .nsp = "/", .id = -1, .data = d };
    sess_send(a, s, evt_packet(s->enc, &pkt));
    json_decref(d);
    /* `ready` follows once the user's chats are read (pers.c, user.c). */
    req_t *r = req_new();
    if (!r) {
        sess_close_ws(a, s, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    r->connh = s->h;
    r->enc = s->enc;
    r->purpose = REQ_READY;
    r->ack_id = -1;
    snprintf(r->user_id, sizeof(r->user_id), "%s", claims->sub);
    shard_mail(a->sh, actor_reader(a->sh), &(mbox_msg_t){ .kind = MAIL_RD_CHATS, .ptr = r });
    sess__schedule(a, s);
}

static void sess__on_connect(actor_t *a, sess_t *s, sio_packet_t *pkt)
{
    if (strcmp(pkt->nsp, "/") != 0) {
        json_t *d = json_pack("{s:s}", "message", "Invalid namespace");
        sio_packet_t rep = { .type = SIO_CONNECT_ERROR, .id = -1, .data = d };
        snprintf(rep.nsp, sizeof(rep.nsp), "%s", pkt->nsp);
        sess_send(a, s, evt_packet(s->enc, &rep));
        json_decref(d);
        return;
    }
    if (s->state != SESS_OPEN) {   /* a second CONNECT: as the Node server, close */
        sess_close_ws(a, s, WS_CLOSE_PROTOCOL, "already connected");
        return;
    }
    size_t tlen = 0;
    const char *tok = pkt->data ? json_get_str(pkt->data, "token", &tlen) : NULL;
    jwt_claims_t claims;
    int rc = tok ? jwt_verify(tok, tlen, sess__secret, sess__secret_len, tmr_wall_ms() / 1000, &claims)
                 : ERR_BAD_TOKEN;
    if (rc < 0) {
        sess__connect_error(a, s, rc == ERR_EXPIRED ? "token expired" : (tok ? "invalid token" : "missing token"),
                            "UNAUTHORIZED", true);
        return;
    }
    int owner = actor_owner(a->sh, claims.sub);
    if (owner == a->sh->id) {
        sess__admit(a, s, &claims);
        return;
    }
    if (s->ws && !ws_ctx_idle(s->ws)) {
        sess_close_ws(a, s, WS_CLOSE_PROTOCOL, "fragmented message during connect");
        return;
    }
    s->claims = malloc(sizeof(*s->claims));
    if (!s->claims) {
        sess_close_ws(a, s, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    *s->claims = claims;
    s->state = SESS_HANDOFF;
    shard_detach(a->sh, s->c);
}

static void sess__on_packet(actor_t *a, sess_t *s, sio_packet_t *pkt)
{
    if (pkt->type == SIO_CONNECT) {
        sess__on_connect(a, s, pkt);
        return;
    }
    if (s->state != SESS_CONNECTED || strcmp(pkt->nsp, "/") != 0) {
        /* A packet for a namespace that is not connected: as Node, close. */
        sess_close_ws(a, s, WS_CLOSE_PROTOCOL, "not connected");
        return;
    }
    switch (pkt->type) {
    case SIO_DISCONNECT:
        s->state = SESS_CLOSED;
        shard_close(a->sh, s->c, true);
        return;
    case SIO_EVENT: {
        json_t *name = json_array_get(pkt->data, 0);
        json_t *payload = json_array_get(pkt->data, 1);
        if (!json_is_string(name)) {
            sess_reply(a, s, pkt->id, evt_fail("INVALID_INPUT", "event name must be a string"));
            return;
        }
        user_on_event(a, s, json_string_value(name), payload, pkt->id);
        return;
    }
    case SIO_ACK:
        return;   /* we never ask clients for acks; unknown ids are ignored */
    default:
        sess_close_ws(a, s, WS_CLOSE_PROTOCOL, "unexpected packet type");
        return;
    }
}

static void sess__on_message(actor_t *a, sess_t *s, bool binary, const uint8_t *p, size_t n)
{
    sio_enc_t want = binary ? SIO_ENC_MSGPACK : SIO_ENC_JSON;
    if (s->enc == SIO_ENC_NONE)
        s->enc = want;   /* the first packet decides, for the whole connection */
    if (s->enc != want) {
        sess_close_ws(a, s, WS_CLOSE_PROTOCOL, "encoding changed mid-connection");
        return;
    }
    sio_packet_t pkt;
    int rc = binary ? sio_decode_msgpack(p, n, &pkt) : sio_decode_json(p, n, &pkt);
    if (rc < 0) {
        sess_close_ws(a, s, WS_CLOSE_PROTOCOL, "parse error");
        return;
    }
    sess__on_packet(a, s, &pkt);
    sio_packet_clear(&pkt);
}

/* Messages handled after a handoff decision travel with the socket. */
static void sess__stash(sess_t *s, int opcode, const uint8_t *p, size_t n)
{
    buf_t *b = &s->stash;
    uint8_t hdr[5] = { (uint8_t)opcode, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
    if (buf_append(b, hdr, 5) < 0 || buf_append(b, p, n) < 0)
        s->state = SESS_CLOSED;
}

static void sess__on_ws_msg(void *ud, int opcode, const uint8_t *p, size_t n)
{
    sess_t *s = ud;
    actor_t *a = sess__cur_shard->actor;
    if (s->state == SESS_CLOSED)
        return;
    if (s->state == SESS_HANDOFF) {
        if (s->claims)
            sess__stash(s, opcode, p, n);
        return;
    }
    if (opcode == WS_OP_BINARY) {
        sess__on_message(a, s, true, p, n);
        return;
    }
    int b64 = 0;
    int t = eio_text_type(p, n, &b64);
    switch (t) {
    case EIO_MESSAGE:
        if (b64) {
            buf_t raw = {0};
            if (eio_b64_decode(p + 1, n - 1, &raw) < 0)
                sess_close_ws(a, s, WS_CLOSE_PROTOCOL, "bad base64");
            else
                sess__on_message(a, s, true, raw.p, raw.len);
            buf_deinit(&raw);
        } else {
            sess__on_message(a, s, false, p + 1, n - 1);
        }
        return;
    case EIO_PONG:
        s->awaiting_pong = false;
        return;
    case EIO_CLOSE:
        s->state = SESS_CLOSED;
        shard_close(a->sh, s->c, true);
        return;
    case EIO_PING:    /* v4 clients never ping; harmless, ignore */
    case EIO_NOOP:
    case EIO_UPGRADE:
        return;
    default:
        sess_close_ws(a, s, WS_CLOSE_PROTOCOL, "unknown engine packet");
        return;
    }
}

/* ---- lifecycle hooks ---------------------------------------------------- */

static sess_t *sess__new(actor_t *a, io_conn_t *c)
{
    sess_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->c = c;
    s->h = shard_connh(a->sh, c);
    c->sess = s;
    return s;
}

static void sess__on_open(shard_t *sh, io_conn_t *c)
{
    actor_t *a = sh->actor;
    sess_t *s = sess__new(a, c);
    if (!s) {
        shard_close(sh, c, false);
        return;
    }
    s->state = SESS_HTTP;
    s->open_deadline_ms = sh->now_ms + sh->cfg->handshake_timeout_ms;
    sess__schedule(a, s);
}

static void sess__free(actor_t *a, sess_t *s)
{
    if (s->ws)
        ws_ctx_free(s->ws);
    buf_deinit(&s->in);
    buf_deinit(&s->stash);
    free(s->subs);
    free(s->claims);
    free(s);
}

static void sess__on_closed(shard_t *sh, io_conn_t *c)
{
    actor_t *a = sh->actor;
    sess_t *s = c->sess;
    if (!s)
        return;
    if (s->user)
        user_detach(a, s);
    c->sess = NULL;
    sess__free(a, s);
}

static void sess__on_detached(shard_t *sh, io_conn_t *c, int fd)
{
    actor_t *a = sh->actor;
    sess_t *s = c->sess;
    handoff_t *h = calloc(1, sizeof(*h));
    if (!h || !s->claims) {
        close(fd);
        free(h);
    } else {
        h->fd = fd;
        h->enc = s->enc;
        h->claims = *s->claims;
        memcpy(h->sid, s->sid, sizeof(h->sid));
        /* Order: messages already split off by wslay, then raw bytes. */
        h->pending = s->stash;
        s->stash = (buf_t){0};
        h->ws_msg_open = s->ws_msg_open;
        /* Raw bytes follow the stashed messages, marked by opcode 0xff. */
        if (s->in.len) {
            size_t n = s->in.len;
            uint8_t hdr[5] = { 0xff, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
            if (buf_append(&h->pending, hdr, 5) < 0 || buf_append(&h->pending, s->in.p, n) < 0)
                h->pending.len = 0;   /* out of memory: the client will time out and retry */
        }
        shard_mail(sh, actor_owner(sh, h->claims.sub), &(mbox_msg_t){ .kind = MAIL_HANDOFF, .ptr = h });
    }
    c->sess = NULL;
    sess__free(a, s);
}

/* The new owner of a handed-over socket. */
static void sess__on_handoff(actor_t *a, handoff_t *h)
{
    io_conn_t *c = shard_adopt(a->sh, h->fd);
    sess_t *s = c ? sess__new(a, c) : NULL;
    if (!s) {
        if (c)
            shard_close(a->sh, c, false);
        goto out;
    }
    s->enc = h->enc;
    memcpy(s->sid, h->sid, sizeof(s->sid));
    s->state = SESS_OPEN;
    s->ws_msg_open = h->ws_msg_open;
    s->next_ping_ms = a->sh->now_ms + a->sh->cfg->ping_interval_ms;
    sess__admit(a, s, &h->claims);
    for (size_t off = 0; off + 5 <= h->pending.len && s->state == SESS_CONNECTED;) {
        const uint8_t *q = h->pending.p + off;
        size_t n = ((size_t)q[1] << 24) | ((size_t)q[2] << 16) | ((size_t)q[3] << 8) | q[4];
        if (q[0] == 0xff) {
            sess__feed_ws(a, s, q + 5, n);
        } else {
            sess__cur_shard = a->sh;
            sess__on_ws_msg(s, q[0], q + 5, n);
        }
        off += 5 + n;
    }
out:
    buf_deinit(&h->pending);
    free(h);
}

static void sess__on_mail(shard_t *sh, int from, mbox_msg_t *m)
{
    actor_t *a = sh->actor;
    if (m->kind == MAIL_HANDOFF) {
        sess__on_handoff(a, m->ptr);
        return;
    }
    if (user_on_mail(a, m) || room_on_mail(a, from, m))
        return;
    LOG_ERR("shard %d: unknown mail kind %u from %d", sh->id, m->kind, from);
}

static void sess__on_turn_end(shard_t *sh) { room_tick(sh->actor); }

void sess_discard_mail(mbox_msg_t *m)
{
    switch (m->kind) {
    case MAIL_HANDOFF: {
        handoff_t *h = m->ptr;
        close(h->fd);
        buf_deinit(&h->pending);
        free(h);
        return;
    }
    case MAIL_FANOUT:
    case MAIL_CHAT_NEW:
        fanout_free(m->ptr);
        return;
    case MAIL_CONFIRM: {
        confirm_t *c = m->ptr;
        for (size_t i = 0; i < c->n; i++)
            store_msg_unref(c->items[i].msg);
        free(c);
        return;
    }
    case MAIL_W_MSG:
        store_msg_unref(m->ptr);
        return;
    default:   /* every other kind carries a req_t */
        req_free(m->ptr);
        return;
    }
}

static void sess__on_stop(shard_t *sh)
{
    actor_t *a = sh->actor;
    evt_thread_exit();
    for (uint32_t i = 0; i < a->ws_pool_len; i++)
        ws_ctx_free(a->ws_pool[i]);
    a->ws_pool_len = 0;
}

const shard_hooks_t sess_hooks = {
    .on_open = sess__on_open,
    .on_data = sess__on_data,
    .on_closed = sess__on_closed,
    .on_detached = sess__on_detached,
    .on_mail = sess__on_mail,
    .on_timer = sess__on_timer,
    .on_turn_end = sess__on_turn_end,
    .on_stop = sess__on_stop,
};
