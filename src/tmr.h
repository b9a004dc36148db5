/* tmr.h - a shard's timers: a binary min-heap of (deadline, id) driven by
 * the shard's periodic io_uring timeout (see shard.c).
 *
 * Cancellation is lazy: the owner of an id remembers the deadline it wants;
 * when an entry pops whose deadline no longer matches, it is ignored (stale).
 * One thread only.
 */
#ifndef RC_TMR_H
#define RC_TMR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t at_ms;   /* deadline, CLOCK_MONOTONIC milliseconds */
    uint64_t id;      /* owner-defined (e.g. a connection handle) */
} tmr_ent_t;

typedef struct {
    tmr_ent_t *heap;
    size_t len, cap;
} tmr_heap_t;

/* tmr_add schedules id at at_ms. Returns 0 or -ENOMEM. */
int tmr_add(tmr_heap_t *t, uint64_t at_ms, uint64_t id);
/* tmr_pop removes the earliest entry due at or before now_ms into *out.
 * Returns 1 if one was popped, 0 if none is due. */
int tmr_pop(tmr_heap_t *t, uint64_t now_ms, tmr_ent_t *out);
void tmr_deinit(tmr_heap_t *t);
/* tmr_now_ms: CLOCK_MONOTONIC in milliseconds. */
uint64_t tmr_now_ms(void);
/* tmr_wall_ms: CLOCK_REALTIME in milliseconds (for timestamps clients see). */
int64_t tmr_wall_ms(void);

#endif
