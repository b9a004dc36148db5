/* evt.c - outgoing frames and payload shapes (see evt.h).
 *
 * Serialise once: a room event is encoded at most once per encoding, on the
 * room's shard, into a frame whose bytes are the same for every recipient
 * (server frames are unmasked), then frozen and shared by reference.
 */
#include "evt.h"

#include <errno.h>
#include <string.h>

#include "../wire/ws.h"

static _Thread_local buf_t evt__scratch;

static buf_blob_t *evt__frame(int opcode, const uint8_t *p, size_t n)
{
    uint8_t hdr[WS_HEADER_MAX];
    size_t hl = ws_header(hdr, opcode, n);
    buf_blob_t *b = buf_blob_new((uint32_t)(hl + n));
    if (!b)
        return NULL;
    memcpy(b->data, hdr, hl);
    memcpy(b->data + hl, p, n);
    buf_blob_freeze(b);
    return b;
}

void evt_thread_exit(void) { buf_deinit(&evt__scratch); }

buf_blob_t *evt_text_frame(const char *p, size_t n) { return evt__frame(WS_OP_TEXT, (const uint8_t *)p, n); }

buf_blob_t *evt_packet(sio_enc_t enc, const sio_packet_t *pkt)
{
    buf_t *s = &evt__scratch;
    buf_reset(s);
    if (sio_encode(enc, pkt, s) < 0)
        return NULL;
    buf_blob_t *b = evt__frame(enc == SIO_ENC_MSGPACK ? WS_OP_BINARY : WS_OP_TEXT, s->p, s->len);
    if (s->cap > (1u << 20)) /* don't keep a huge scratch after a big history */
        buf_deinit(s);
    return b;
}

buf_blob_t *evt_event(sio_enc_t enc, const char *name, json_t *payload)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    json_array_append_new(arr, json_string(name));
    if (payload)
        json_array_append(arr, payload);
    sio_packet_t pkt = { .type = SIO_EVENT, .nsp = "/", .id = -1, .data = arr };
    buf_blob_t *b = evt_packet(enc, &pkt);
    json_decref(arr);
    return b;
}

int evt_event2(const char *name, json_t *payload, buf_blob_t *out[2])
{
    out[0] = evt_event(SIO_ENC_JSON, name, payload);
    out[1] = evt_event(SIO_ENC_MSGPACK, name, payload);
    if (out[0] && out[1])
        return 0;
    if (out[0])
        buf_blob_unref(out[0]);
    if (out[1])
        buf_blob_unref(out[1]);
    out[0] = out[1] = NULL;
    return -ENOMEM;
}

buf_blob_t *evt_ack(sio_enc_t enc, int64_t id, json_t *payload)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    json_array_append(arr, payload);
    sio_packet_t pkt = { .type = SIO_ACK, .nsp = "/", .id = id, .data = arr };
    buf_blob_t *b = evt_packet(enc, &pkt);
    json_decref(arr);
    return b;
}

buf_blob_t *evt_reply(sio_enc_t enc, int64_t ack_id, json_t *payload)
{
    buf_blob_t *b = NULL;
    if (!payload)
        return NULL;
    if (ack_id >= 0)
        b = evt_ack(enc, ack_id, payload);
    else if (!json_is_true(json_object_get(payload, "ok")))
        b = evt_event(enc, "error", json_object_get(payload, "error"));
    json_decref(payload);
    return b;
}

json_t *evt_fail(const char *code, const char *message)
{
    return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", message);
}

json_t *evt_ok(void) { return json_pack("{s:b}", "ok", 1); }

json_t *evt_msg_json(const store_msg_t *m, const char *id, bool confirmed)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "roomId", json_string(m->room_id));
    json_object_set_new(o, "seq", json_integer(m->seq));
    if (id && id[0])
        json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "tempId", json_string(m->temp_id));
    json_object_set_new(o, "senderId", json_string(m->sender_id));
    json_object_set_new(o, "senderName", json_string(m->sender_name));
    json_object_set_new(o, "type", json_string(m->type == STORE_MSG_IMAGE ? "image" : "text"));
    json_object_set_new(o, "body", m->deleted ? json_string("") : json_stringn(m->body, m->body_len));
    if (m->reply_to > 0)
        json_object_set_new(o, "replyTo", json_integer(m->reply_to));
    json_object_set_new(o, "ts", json_integer(m->ts));
    json_object_set_new(o, "status", json_string(confirmed ? "confirmed" : "pending"));
    if (m->edited_at > 0)
        json_object_set_new(o, "editedAt", json_integer(m->edited_at));
    if (m->deleted)
        json_object_set_new(o, "deleted", json_true());
    return o;
}

json_t *evt_chat_json(const store_chat_t *c)
{
    json_t *members = json_array();
    for (size_t i = 0; i < c->n_members; i++)
        json_array_append_new(members, json_string(c->members[i]));
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:I}",
                          "id", c->id, "type", store_chat_type_name(c->type),
                          "name", c->name ? c->name : "", "members", members,
                          "createdAt", (json_int_t)c->created_at, "lastSeq", (json_int_t)c->last_seq,
                          "unread", (json_int_t)c->unread);
    if (o && c->last_msg)
        json_object_set_new(o, "lastMessage", evt_msg_json(c->last_msg, c->last_msg->id, c->last_msg->id[0]));
    return o;
}
