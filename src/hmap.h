/* hmap.h - a string-keyed hash map (open addressing, linear probing,
 * backward-shift deletion) for one thread's private state: users and rooms
 * of a shard, a room's members, dedup keys.
 *
 * The map stores the key pointer it is given, not a copy: the key must stay
 * valid and unchanged while the entry exists (it usually points into the
 * value). Not thread-safe; each map belongs to one thread.
 */
#ifndef RC_HMAP_H
#define RC_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *key;
    uint64_t hash;
    void *val;
} hmap_slot_t;

typedef struct {
    hmap_slot_t *slots;   /* cap entries; key == NULL marks an empty slot */
    size_t cap;           /* power of two, or 0                           */
    size_t len;           /* live entries                                 */
} hmap_t;

/* hmap_hash is the stable 64-bit hash of a string (FNV-1a). It also picks
 * owners: a user lives on shard hmap_hash(userId) % N, a room on
 * hmap_hash(roomId) % N. Changing it moves every user and room. */
uint64_t hmap_hash(const char *s, size_t len);

void *hmap_get(const hmap_t *m, const char *key);
/* hmap_put inserts or replaces. Returns 0 or -ENOMEM. *old (if non-NULL)
 * receives the replaced value or NULL. */
int hmap_put(hmap_t *m, const char *key, void *val, void **old);
/* hmap_del removes the key; returns its value or NULL. */
void *hmap_del(hmap_t *m, const char *key);
void hmap_deinit(hmap_t *m);

/* Iteration: for (size_t i = 0; hmap_next(m, &i, &k, &v); ) { ... }
 * The map must not change during iteration. */
bool hmap_next(const hmap_t *m, size_t *iter, const char **key, void **val);

#endif
