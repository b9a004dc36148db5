/* pers.h - the persistence actor: a writer thread that batches message
 * inserts and sends confirmations back to the rooms' shards, and a reader
 * thread that answers store reads, each with its own store connection.
 * Shards never call the store (protocol.md §8 "Optimistic first").
 */
#ifndef RC_PERS_H
#define RC_PERS_H

#include "../actors/mbox.h"
#include "../src/cfg.h"

typedef struct pers pers_t;

/* pers_start opens two store connections (cfg->store) and starts the
 * writer (hub thread nshards) and the reader (nshards + 1). Returns 0, or a
 * negative error with the reason in err. */
int pers_start(pers_t **out, const cfg_t *cfg, mbox_hub_t *hub, int nshards, char *err, size_t errlen);
/* pers_stop lets the writer finish what it has queued (bounded by
 * --confirm-deadline-ms) and joins both threads. Call after the shards have
 * stopped. */
void pers_stop(pers_t *p);
/* pers_store_down_ms: how long the store has been failing (0 when fine);
 * any thread. */
int64_t pers_store_down_ms(void);
/* Counters for metrics and tests. */
uint64_t pers_batches(void);
uint64_t pers_stored(void);

#endif
