/* io_ring.h - io.c's interface to the shard loop (private to src/). */
#ifndef RC_IO_RING_H
#define RC_IO_RING_H

#include "shard.h"

#define IO_BGID 1   /* the provided-buffer group of every shard ring */

enum { IO_UD_ACCEPT = 1, IO_UD_RECV, IO_UD_SEND, IO_UD_CANCEL, IO_UD_TICK, IO_UD_WAKE, IO_UD_CLOSE };

/* user_data: kind (8 bits) | generation (16) | slot (32). */
static inline uint64_t io_ud(int kind, uint16_t gen, uint32_t slot)
{
    return ((uint64_t)kind << 56) | ((uint64_t)gen << 32) | slot;
}
static inline int io_ud_kind(uint64_t ud) { return (int)(ud >> 56); }
static inline uint16_t io_ud_gen(uint64_t ud) { return (uint16_t)(ud >> 32); }
static inline uint32_t io_ud_slot(uint64_t ud) { return (uint32_t)ud; }

struct io_uring_sqe *io_sqe(shard_t *s);
void io_arm_accept(shard_t *s);
void io_on_cqe(shard_t *s, struct io_uring_cqe *cqe);
void io_flush_dirty(shard_t *s);
void io_finish_closing(shard_t *s);
void io_check_stalls(shard_t *s);
void io_close_all(shard_t *s);

#endif
