/* evt.h - outgoing frames: Socket.IO packets encoded once per encoding into
 * frozen, shared WebSocket frames (buf_blob_t), and the JSON shapes of
 * protocol.md §4 (message, chat).
 *
 * Called on any shard thread; uses a thread-local scratch buffer.
 */
#ifndef RC_EVT_H
#define RC_EVT_H

#include <jansson.h>

#include "../persistence/store.h"
#include "../src/buf.h"
#include "../wire/sio.h"

/* evt_text_frame: a text frame holding p[0..n) (Engine.IO control packets). */
buf_blob_t *evt_text_frame(const char *p, size_t n);
/* evt_packet: the frame of one Socket.IO packet in one encoding. */
buf_blob_t *evt_packet(sio_enc_t enc, const sio_packet_t *pkt);
/* evt_event: EVENT ["name", payload] (payload may be NULL: ["name"]). */
buf_blob_t *evt_event(sio_enc_t enc, const char *name, json_t *payload);
/* evt_event2: the same event in both encodings, out[enc - 1]. Returns 0 or
 * -ENOMEM (nothing allocated). */
int evt_event2(const char *name, json_t *payload, buf_blob_t *out[2]);
/* evt_ack: ACK id [payload]. */
buf_blob_t *evt_ack(sio_enc_t enc, int64_t id, json_t *payload);
/* evt_reply: the answer to a client event: with an ack id, ACK [payload];
 * without one, nothing for success (NULL) and the event "error"
 * {code, message} for a failure ({ok:false, error:{...}}). Steals payload. */
buf_blob_t *evt_reply(sio_enc_t enc, int64_t ack_id, json_t *payload);
/* evt_fail builds {ok:false, error:{code, message}} (a new reference). */
json_t *evt_fail(const char *code, const char *message);
json_t *evt_ok(void);

/* evt_thread_exit frees the calling thread's scratch buffer. */
void evt_thread_exit(void);

/* evt_msg_json: protocol.md §4 message. id may be "" (pending). */
json_t *evt_msg_json(const store_msg_t *m, const char *id, bool confirmed);
/* evt_chat_json: protocol.md §4 chat. */
json_t *evt_chat_json(const store_chat_t *c);

#endif
