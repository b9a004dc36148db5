/* sio.c - Socket.IO v5 packets in the JSON text encoding and in the
 * socket.io-msgpack-parser layout (see sio.h).
 *
 * Owns: nothing beyond the packet's data reference. Runs on the shard thread
 * that owns the connection; pure, so threads may call it concurrently.
 *
 * Invariants of a decoded packet: type is 0..4; nsp starts with '/', holds at
 * most SIO_NSP_MAX bytes and no control bytes; id is -1 or 0..2^53; data is
 * NULL (absent: missing, JSON null, msgpack nil or undefined) or has the
 * shape sio__check allows for the type. On any error the packet is empty.
 *
 * Background: notes/socketio-wire.md §2-§3 and §6 items 7-8 (what clients
 * really send), protocol.md §2 (null, nil and undefined all mean absent).
 */
#include "sio.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#include "../src/err.h"
#include "json.h"
#include "mp.h"

/* Ack ids are JS numbers; above 2^53 they stop being exact integers. */
#define SIO__ID_MAX ((int64_t)1 << 53)

static void sio__reset(sio_packet_t *pkt)
{
    pkt->type = SIO_CONNECT;
    memcpy(pkt->nsp, "/", 2);
    pkt->id = -1;
    pkt->data = NULL;
}

void sio_packet_clear(sio_packet_t *pkt)
{
    json_decref(pkt->data);   /* NULL-safe */
    sio__reset(pkt);
}

/* sio__nsp_set copies a namespace after checking it: it starts with '/', fits
 * SIO_NSP_MAX and has no control bytes, because it is echoed back to the
 * client in replies and used as a C string. */
static int sio__nsp_set(sio_packet_t *pkt, const uint8_t *s, size_t len)
{
    if (len == 0 || s[0] != '/' || len > SIO_NSP_MAX)
        return ERR_PROTO;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return ERR_PROTO;
    memcpy(pkt->nsp, s, len);
    pkt->nsp[len] = '\0';
    return 0;
}

/* sio__check applies the per-type rules of sio.h (those of socket.io-parser
 * and socket.io-msgpack-parser, except that an absent payload is fine on
 * CONNECT and DISCONNECT for python-socketio's msgpack `data: nil`). */
static int sio__check(int type, const json_t *data)
{
    switch (type) {
    case SIO_CONNECT: return !data || json_is_object(data) ? 0 : ERR_PROTO;
    case SIO_DISCONNECT: return !data ? 0 : ERR_PROTO;
    case SIO_EVENT: return json_is_array(data) && json_array_size(data) > 0 ? 0 : ERR_PROTO;
    case SIO_ACK: return json_is_array(data) ? 0 : ERR_PROTO;
    case SIO_CONNECT_ERROR: return json_is_object(data) || json_is_string(data) ? 0 : ERR_PROTO;
    default: return ERR_PROTO;   /* 5 and 6: ringcast's events carry no binary */
    }
}

/* sio__finish stores data (a new reference, or NULL) after the type check,
 * turning JSON null into absent. It consumes data either way. */
static int sio__finish(sio_packet_t *out, json_t *data)
{
    if (json_is_null(data)) {
        json_decref(data);
        data = NULL;
    }
    int rc = sio__check(out->type, data);
    if (rc) {
        json_decref(data);
        sio__reset(out);
        return rc;
    }
    out->data = data;
    return 0;
}

/* sio_decode_json parses `<type>[<nsp>,][<id>][<json>]` (notes §2). Steps:
 *  1. The type digit; 5 and 6 (binary, with attachments) are refused here.
 *  2. A namespace runs from '/' to the next ',' or the end of the input.
 *  3. Decimal digits are the ack id.
 *  4. The rest, if any, is one JSON value. */
int sio_decode_json(const uint8_t *p, size_t n, sio_packet_t *out)
{
    sio__reset(out);
    /* 1. */
    if (n == 0 || p[0] < '0' || p[0] > '0' + SIO_CONNECT_ERROR)
        return ERR_PROTO;
    out->type = p[0] - '0';
    size_t i = 1;
    /* 2. */
    if (i < n && p[i] == '/') {
        size_t start = i;
        while (i < n && p[i] != ',')
            i++;
        int rc = sio__nsp_set(out, p + start, i - start);
        if (rc) {
            sio__reset(out);
            return rc;
        }
        if (i < n)
            i++;   /* the ',' */
    }
    /* 3. The bound keeps id * 10 + 9 far below INT64_MAX. */
    if (i < n && p[i] >= '0' && p[i] <= '9') {
        int64_t id = 0;
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            id = id * 10 + (p[i] - '0');
            if (id > SIO__ID_MAX) {
                sio__reset(out);
                return ERR_PROTO;
            }
        }
        out->id = id;
    }
    /* 4. */
    json_t *data = NULL;
    if (i < n) {
        int rc = json_parse(p + i, n - i, &data);
        if (rc) {
            sio__reset(out);
            return rc;
        }
    }
    return sio__finish(out, data);
}

/* sio__from_map fills out from a decoded {type, nsp, data?, id?} map; keys
 * such as JS's "options" are ignored. */
static int sio__from_map(sio_packet_t *out, json_t *m)
{
    if (!json_is_object(m))
        return ERR_PROTO;
    json_t *t = json_object_get(m, "type");
    if (!json_is_integer(t) || json_integer_value(t) < SIO_CONNECT ||
        json_integer_value(t) > SIO_CONNECT_ERROR)
        return ERR_PROTO;   /* no binary types in this layout (notes §3) */
    out->type = (int)json_integer_value(t);
    json_t *nsp = json_object_get(m, "nsp");
    if (!json_is_string(nsp))
        return ERR_PROTO;
    int rc = sio__nsp_set(out, (const uint8_t *)json_string_value(nsp), json_string_length(nsp));
    if (rc)
        return rc;
    json_t *id = json_object_get(m, "id");
    if (id && !json_is_null(id)) {
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > SIO__ID_MAX)
            return ERR_PROTO;
        out->id = (int64_t)json_integer_value(id);
    }
    return sio__finish(out, json_incref(json_object_get(m, "data")));
}

int sio_decode_msgpack(const uint8_t *p, size_t n, sio_packet_t *out)
{
    sio__reset(out);
    json_t *m;
    int rc = mp_parse(p, n, &m);
    if (rc)   /* a frame is whole, so a truncated value is a malformed one */
        return rc == -ENOMEM ? rc : ERR_PROTO;
    rc = sio__from_map(out, m);
    json_decref(m);
    if (rc)
        sio__reset(out);   /* data is NULL here: sio__finish dropped it */
    return rc;
}

/* sio__encode_json writes "4" + `<type>[<nsp>,][<id>][<json>]`; the nsp is
 * left out when it is "/", as socket.io-parser does. */
static int sio__encode_json(const sio_packet_t *pkt, buf_t *out)
{
    int rc = buf_append_byte(out, '4');
    if (!rc)
        rc = buf_append_byte(out, (uint8_t)('0' + pkt->type));
    if (!rc && pkt->nsp[0] && strcmp(pkt->nsp, "/") != 0) {
        rc = buf_append_str(out, pkt->nsp);
        if (!rc)
            rc = buf_append_byte(out, ',');
    }
    if (!rc && pkt->id >= 0)
        rc = buf_printf(out, "%" PRId64, pkt->id);
    if (!rc && pkt->data)
        rc = json_emit(pkt->data, out);
    return rc;
}

static int sio__on_write(void *data, const char *p, size_t n)
{
    return buf_append((buf_t *)data, p, n);
}

static int sio__mp_key(msgpack_packer *pk, const char *key)
{
    size_t n = strlen(key);
    int rc = msgpack_pack_str(pk, n);
    return rc ? rc : msgpack_pack_str_body(pk, key, n);
}

/* sio__encode_mp writes the map {type, nsp, data?, id?}. nsp is always
 * present because python-socketio reads decoded['nsp'] (notes §4); absent
 * data and id are left out rather than written as fixext undefined. */
static int sio__encode_mp(const sio_packet_t *pkt, buf_t *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, sio__on_write);
    size_t count = 2 + (pkt->data != NULL) + (pkt->id >= 0);
    int rc = msgpack_pack_map(&pk, count);
    if (!rc)
        rc = sio__mp_key(&pk, "type");
    if (!rc)
        rc = msgpack_pack_int(&pk, pkt->type);
    if (!rc)
        rc = sio__mp_key(&pk, "nsp");
    if (!rc)
        rc = sio__mp_key(&pk, pkt->nsp);
    if (!rc && pkt->data) {
        rc = sio__mp_key(&pk, "data");
        if (!rc)
            rc = mp_emit(pkt->data, out);   /* appends to the same buffer */
    }
    if (!rc && pkt->id >= 0) {
        rc = sio__mp_key(&pk, "id");
        if (!rc)
            rc = msgpack_pack_int64(&pk, pkt->id);
    }
    return rc ? -ENOMEM : 0;
}

int sio_encode(sio_enc_t enc, const sio_packet_t *pkt, buf_t *out)
{
    /* Our own packets: a bad type or encoding is a bug, not peer input. */
    assert(pkt->type >= SIO_CONNECT && pkt->type <= SIO_CONNECT_ERROR);
    assert(enc == SIO_ENC_JSON || enc == SIO_ENC_MSGPACK);
    size_t len0 = out->len;
    int rc = enc == SIO_ENC_JSON ? sio__encode_json(pkt, out) : sio__encode_mp(pkt, out);
    if (rc)
        out->len = len0;   /* callers keep whole packets only */
    return rc;
}
