/* sess.h - a client connection's protocol state on its shard: HTTP head ->
 * WebSocket -> Engine.IO -> Socket.IO, the heartbeat, authentication and
 * the hand-over of a socket to its user's shard.
 */
#ifndef RC_SESS_H
#define RC_SESS_H

#include "actor_types.h"

/* The hooks the shard runtime calls (src/shard.h). */
extern const shard_hooks_t sess_hooks;

/* sess_setup: process-wide, read-only after startup (called by main before
 * the shards start). */
void sess_setup(const uint8_t *secret, size_t secret_len, int64_t (*store_health)(void));

/* sess_discard_mail frees a message left in a mailbox at shutdown, after
 * every thread has stopped (main thread). */
void sess_discard_mail(mbox_msg_t *m);

/* sess_send queues a frame on a socket (takes the reference). A socket
 * over its outbound limit is closed as a slow consumer. */
void sess_send(actor_t *a, sess_t *s, buf_blob_t *frame);
/* sess_reply sends evt_reply(enc, ack_id, payload) (steals payload). */
void sess_reply(actor_t *a, sess_t *s, int64_t ack_id, json_t *payload);
/* sess_close_ws sends a WebSocket close frame and closes after flushing. */
void sess_close_ws(actor_t *a, sess_t *s, uint16_t code, const char *reason);

#endif
