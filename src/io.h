/* io.h - one connection as the ring I/O layer sees it: a socket, its
 * in-flight operations and its outbound queue of shared frames.
 *
 * Owned by one shard. Idle cost: this struct only (no receive buffer: reads
 * land in the shard's provided-buffer ring; no iovec array: it is leased
 * from a per-shard pool while a send is in flight).
 */
#ifndef RC_IO_H
#define RC_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "buf.h"

#define IO_IOV_MAX 64   /* frames per sendmsg; more wait for the next one */

typedef struct {
    buf_blob_t *blob;   /* one reference held by the queue */
    uint32_t off;       /* bytes of blob already sent      */
} io_seg_t;

typedef struct io_sendctx {
    struct msghdr msg;
    struct iovec iov[IO_IOV_MAX];
    struct io_sendctx *next;   /* free list */
} io_sendctx_t;

enum {
    IO_RECV_ARMED = 1u << 0,   /* a multishot recv is in flight             */
    IO_SENDING = 1u << 1,      /* a sendmsg is in flight                    */
    IO_CLOSING = 1u << 2,      /* shard_close was called                    */
    IO_FLUSH_CLOSE = 1u << 3,  /* close once the outbound queue is empty    */
    IO_DETACHING = 1u << 4,    /* shard_detach was called                   */
    IO_DIRTY = 1u << 5,        /* on the shard's dirty list                 */
    IO_CANCELLING = 1u << 6,   /* a cancel of the recv was submitted        */
    IO_LISTED_CLOSE = 1u << 7, /* on the shard's closing list               */
    IO_EOF = 1u << 8,          /* the peer closed or the socket failed      */
};

typedef struct io_conn {
    int fd;
    uint32_t slot;             /* index in shard->conns                     */
    uint16_t gen;              /* bumped when the slot is reused            */
    uint16_t inflight;         /* submitted operations not yet completed    */
    uint32_t flags;            /* IO_*                                      */
    uint32_t next_dirty;       /* slot + 1 of the next dirty conn, 0 = end  */
    uint32_t next_closing;     /* slot + 1 of the next closing conn, 0 = end */
    io_seg_t *segs;            /* ring of queued frames (NULL when empty)   */
    uint32_t seg_head, seg_len, seg_cap;
    uint32_t sending_segs;     /* segments named by the in-flight send      */
    uint64_t out_bytes;        /* queued bytes not yet sent                 */
    uint64_t stalled_since_ms; /* when the queue last made no progress      */
    io_sendctx_t *sctx;        /* leased while IO_SENDING                   */
    void *sess;                /* the actors' per-connection state          */
} io_conn_t;

#endif
