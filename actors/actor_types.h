/* actor_types.h - the state the actors keep per shard, per connection, per
 * user and per room, and the requests that travel between threads.
 *
 * Ownership (docs/architecture.md, "Ownership"):
 *  - a user and every socket of that user live on shard hash(userId) % N;
 *  - a room (members, seq, recent messages, typing) lives on shard
 *    hash(roomId) % N;
 *  - sub_t is a shard-local index: which of *this* shard's sockets receive a
 *    room's events. A room never tracks sockets; it addresses the shards
 *    that hold members (room_t.shard_members).
 * A req_t is allocated by the shard that received the client event and
 * travels U -> R [-> reader -> R] -> U; whoever holds it owns it.
 */
#ifndef RC_ACTOR_TYPES_H
#define RC_ACTOR_TYPES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../persistence/store.h"
#include "../src/buf.h"
#include "../src/hmap.h"
#include "../src/shard.h"
#include "../wire/jwt.h"
#include "../wire/sio.h"
#include "../wire/ws.h"

typedef struct user user_t;
typedef struct sess sess_t;

/* Mail kinds (mbox_msg_t.kind); ptr is a req_t unless noted. */
enum {
    MAIL_HANDOFF = 1,    /* U <- accepting shard: a socket (handoff_t)          */
    MAIL_SEND,           /* R <- U: message:send                                */
    MAIL_SEND_DONE,      /* U <- R: ack (and refund) for message:send           */
    MAIL_JOIN,           /* R <- U: room:join                                   */
    MAIL_LEAVE,          /* R <- U: room:leave                                  */
    MAIL_TYPING,         /* R <- U: typing:start / typing:stop                  */
    MAIL_HISTORY,        /* R <- U: history:get                                 */
    MAIL_CREATE,         /* R <- U: chat:create                                 */
    MAIL_REPLY,          /* U <- R: a frame for one socket, maybe (un)subscribe */
    MAIL_FANOUT,         /* U <- R: a room event for local subscribers (fanout_t) */
    MAIL_USER_SUB,       /* U <- R: (un)subscribe every socket of a user        */
    MAIL_CHAT_NEW,       /* U <- R: a new chat (fanout_t with member list)      */
    MAIL_PRESENCE,       /* R <- U: a user came online / went offline           */
    MAIL_CONFIRM,        /* R <- writer: stored messages (confirm_t)            */
    MAIL_W_MSG,          /* writer <- R: store a message (store_msg_t)          */
    MAIL_W_CHAT,         /* writer <- R: store a new chat (req_t with chat)     */
    MAIL_CHAT_STORED,    /* R <- writer: the chat is stored (req_t, status)     */
    MAIL_W_MEMBER,       /* writer <- R: add/remove member (req_t)              */
    MAIL_RD_CHATS,       /* reader <- U: a user's chats (req_t)                 */
    MAIL_RD_CHATS_DONE,  /* U <- reader                                         */
    MAIL_RD_MSGS,        /* reader <- R: messages for join/history (req_t)      */
    MAIL_RD_MSGS_DONE,   /* R <- reader                                         */
};

enum { REQ_READY = 1, REQ_CHATS_LIST, REQ_JOIN, REQ_HISTORY, REQ_WARM, REQ_CREATE_WAIT };

typedef struct req {
    connh_t connh;               /* the client socket (on shard U)             */
    int64_t ack_id;              /* -1: no ack; failures go as event "error"   */
    uint8_t enc;                 /* sio_enc_t of that socket                   */
    uint8_t purpose;             /* REQ_* for reads                            */
    bool flag;                   /* send: a rate token was reserved; typing: start */
    bool subscribe;              /* reply: subscribe (1) the socket to room_id  */
    bool unsubscribe;            /* reply: unsubscribe the socket from room_id  */
    bool refund;                 /* send done: give the rate token back        */
    int role;                    /* JWT_ROLE_* of the user                     */
    int type;                    /* message or chat type                       */
    int64_t a, b;                /* since/before seq, limit, seq, reply_to     */
    char user_id[STORE_ID_MAX + 1];
    char room_id[STORE_ID_MAX + 1];
    char temp_id[STORE_TEMPID_MAX + 1];
    char *user_name;             /* malloc'd                                   */
    char *body;                  /* malloc'd, body_len bytes                   */
    size_t body_len;
    store_chat_t *chat;          /* chat:create                                */
    buf_blob_t *frame;           /* reply: the frame for the socket            */
    buf_blob_t *frame2;          /* reply: a second frame (e.g. confirmed)     */
    /* reader results */
    int status;
    store_msg_t **msgs;
    size_t nmsgs;
    bool more;
    store_chat_t **chats;
    size_t nchats;
    /* MAIL_RD_MSGS: read seq in (rd_after, rd_before), newest rd_limit
     * within rd_bytes */
    int64_t rd_after, rd_before;
    size_t rd_limit, rd_bytes;
    json_t *part;                /* join/history: the messages the room's ring
                                    supplied, ascending, while the store is asked
                                    for older ones                              */
} req_t;

/* A room event for every local subscriber of room_id, one frame per
 * encoding (frames[SIO_ENC_JSON - 1], frames[SIO_ENC_MSGPACK - 1]). */
typedef struct {
    char room_id[STORE_ID_MAX + 1];
    buf_blob_t *frames[2];
    connh_t exclude_conn;        /* 0: none                                    */
    char exclude_user[STORE_ID_MAX + 1];  /* "": none                          */
    char **members;              /* MAIL_CHAT_NEW: the chat's members          */
    size_t nmembers;
    int64_t last_seq;            /* MAIL_CHAT_NEW                              */
} fanout_t;

typedef struct {
    store_msg_t *msg;            /* one reference                              */
    int status;                  /* 0, ERR_DUP, ERR_STORE_FATAL, ERR_STORE (deadline passed) */
    char id[STORE_OID_LEN + 1];
    int64_t seq;                 /* ERR_DUP: the stored message's seq          */
    bool same_room;              /* ERR_DUP: the stored message is in this room */
} confirm_item_t;

typedef struct {
    size_t n;
    confirm_item_t items[];
} confirm_t;

/* A socket moving from the accepting shard to its user's shard. */
typedef struct {
    int fd;
    uint8_t enc;
    jwt_claims_t claims;
    char sid[24];
    buf_t pending;               /* raw bytes read but not yet parsed          */
    bool ws_msg_open;
} handoff_t;

/* Local subscription: this shard's sockets in one room. */
typedef struct {
    char *room_id;               /* key                                        */
    sess_t **socks;
    uint32_t n, cap;
} sub_t;

enum { SESS_HTTP = 0, SESS_OPEN, SESS_HANDOFF, SESS_CONNECTED, SESS_CLOSED };

struct sess {
    io_conn_t *c;
    connh_t h;
    uint8_t state;               /* SESS_*                                     */
    uint8_t enc;                 /* sio_enc_t, locked by the first packet      */
    bool ws_msg_open;            /* a fragmented WebSocket message is open     */
    bool awaiting_pong;
    bool ready_sent;
    buf_t in;                    /* partial HTTP head or WebSocket frames      */
    buf_t stash;                 /* SESS_HANDOFF: messages parsed after CONNECT */
    ws_ctx_t *ws;                /* leased from the shard pool while needed    */
    uint64_t deadline_ms;        /* next heartbeat/handshake deadline (tmr id) */
    uint64_t open_deadline_ms;   /* 0 once connected to "/"                    */
    uint64_t next_ping_ms;
    uint64_t pong_deadline_ms;
    user_t *user;                /* set once connected (on the owner shard)    */
    sub_t **subs;                /* rooms this socket receives                 */
    uint32_t nsubs, subs_cap;
    jwt_claims_t *claims;        /* between auth and handoff only              */
    char sid[24];
};

struct user {
    char id[STORE_ID_MAX + 1];
    char *name;
    int role;
    sess_t **socks;
    uint32_t nsocks;
    double tokens;               /* rate bucket                                */
    uint64_t tokens_ms;          /* when tokens was last refilled              */
    hmap_t chats;                /* roomId -> malloc'd roomId: rooms the user is in */
    bool online;                 /* announced online to the rooms              */
    uint64_t last_seen_ms;       /* wall ms of the last disconnect             */
};

enum { RMSG_PENDING = 0, RMSG_CONFIRMED = 1, RMSG_FAILED = 2 };

typedef struct {
    store_msg_t *m;
    uint8_t status;              /* RMSG_*                                     */
    char id[STORE_OID_LEN + 1];
} rmsg_t;

typedef struct {
    char *key;                   /* senderId "\x1f" tempId                    */
    int64_t seq;
    char id[STORE_OID_LEN + 1];  /* "" until confirmed                         */
} dedup_t;

enum { ROOM_WARM = 0, ROOM_COLD, ROOM_WARMING };

typedef struct {
    char user_id[STORE_ID_MAX + 1];
    uint64_t until_ms;
} typing_t;

typedef struct room {
    char id[STORE_ID_MAX + 1];
    int type;                    /* STORE_CHAT_*                               */
    char *name;
    int64_t created_at;
    hmap_t members;              /* userId -> malloc'd userId                  */
    uint32_t *shard_members;     /* [nshards] members whose user shard is i    */
    hmap_t online;               /* userId -> malloc'd userId                  */
    int64_t seq;                 /* last assigned                              */
    int64_t first_seq;           /* seq of ring[head] (ring_len > 0)           */
    rmsg_t *ring;                /* recent messages, oldest first              */
    uint32_t ring_head, ring_len, ring_cap;
    hmap_t dedup;                /* key -> dedup_t                             */
    dedup_t **dedup_fifo;        /* eviction order                             */
    uint32_t dedup_head, dedup_len, dedup_cap;
    typing_t *typing;
    uint32_t ntyping, typing_cap;
    bool typing_listed;
    uint8_t warm;                /* ROOM_*: dedup keys loaded from the store?   */
    bool creating;               /* chat:create sent to the writer, not stored yet */
    req_t **parked;              /* message:send waiting for the warm-up        */
    uint32_t nparked;
} room_t;

/* Per-shard actor state (shard->actor). */
typedef struct {
    shard_t *sh;
    hmap_t users;                /* users owned here                           */
    hmap_t rooms;                /* rooms owned here                           */
    hmap_t subs;                 /* local subscriptions                        */
    ws_ctx_t **ws_pool;
    uint32_t ws_pool_len, ws_pool_cap;
    room_t **typing_rooms;       /* rooms with typing state to expire          */
    uint32_t ntyping_rooms, typing_rooms_cap;
    uint64_t sid_counter;
    uint64_t dedup_max;          /* dedup entries per room                     */
    uint64_t backlog_msgs;       /* this shard's messages sent to the writer and
                                    not yet confirmed or failed                 */
    uint64_t backlog_bytes;      /* their body bytes                           */
} actor_t;

/* Thread indexes of the persistence threads in the mailbox hub. */
static inline int actor_writer(const shard_t *s) { return s->n; }
static inline int actor_reader(const shard_t *s) { return s->n + 1; }
static inline int actor_owner(const shard_t *s, const char *id)
{
    return (int)(hmap_hash(id, strlen(id)) % (uint64_t)s->n);
}

req_t *req_new(void);
void req_free(req_t *r);
void fanout_free(fanout_t *f);

#endif
