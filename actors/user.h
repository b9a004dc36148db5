/* user.h - users on their owning shard: sockets, rate bucket, the user's
 * chats, local room subscriptions, and the handlers of client events (which
 * forward room work to the room's shard).
 */
#ifndef RC_USER_H
#define RC_USER_H

#include "actor_types.h"

/* user_attach adds an authenticated socket to its user (created on first
 * use). Returns 0, or ERR_FULL when the user already has the maximum number
 * of sockets. */
int user_attach(actor_t *a, sess_t *s, const jwt_claims_t *claims);
/* user_detach removes a closing socket: unsubscribes it and, for the last
 * socket, announces the user offline and frees it. */
void user_detach(actor_t *a, sess_t *s);
/* user_on_event handles one client event (name, payload) from a connected
 * socket. ack_id is -1 when the client asked for no ack. */
void user_on_event(actor_t *a, sess_t *s, const char *name, json_t *payload, int64_t ack_id);
/* user_on_mail handles mail addressed to the user side of a shard.
 * Returns false if the kind is not a user-side kind. */
bool user_on_mail(actor_t *a, mbox_msg_t *m);

void sub_add(actor_t *a, sess_t *s, const char *room_id);
void sub_remove(actor_t *a, sess_t *s, const char *room_id);

#endif
