/* room.h - rooms on their owning shard: members, per-room seq, the ring of
 * recent messages, tempId dedup and typing state.
 */
#ifndef RC_ROOM_H
#define RC_ROOM_H

#include "actor_types.h"

/* room_load adds a stored chat to its owning shard's actor before the
 * shards start (main thread; takes ownership of c). Returns 0 or -ENOMEM. */
int room_load(actor_t *a, store_chat_t *c);
/* room_on_mail handles mail addressed to the room side of a shard. Returns
 * false if the kind is not a room-side kind. */
bool room_on_mail(actor_t *a, int from, mbox_msg_t *m);
/* room_tick expires typing state (called every loop turn; cheap when idle). */
void room_tick(actor_t *a);
void room_free_all(actor_t *a);

#endif
