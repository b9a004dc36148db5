/* hmap.c - string-keyed open-addressing hash map (see hmap.h).
 *
 * Linear probing keeps lookups in one or two cache lines; deletion shifts
 * later entries of the same probe run back, so there are no tombstones and
 * lookups never degrade after churn (rooms and sockets come and go all day).
 * Load factor stays at or below 1/2.
 */
#include "hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t hmap_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    /* FNV's low bits mix poorly for short keys; fold the high bits in
     * because both the table index and the shard choice use low bits. */
    return h ^ (h >> 29);
}

static size_t hmap__find(const hmap_t *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const hmap_slot_t *s = &m->slots[i];
        if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
            return i;
    }
}

void *hmap_get(const hmap_t *m, const char *key)
{
    if (m->len == 0)
        return NULL;
    size_t i = hmap__find(m, key, hmap_hash(key, strlen(key)));
    return m->slots[i].key ? m->slots[i].val : NULL;
}

static int hmap__grow(hmap_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 8;
    hmap_slot_t *old = m->slots;
    size_t old_cap = m->cap;
    hmap_slot_t *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key)
            m->slots[hmap__find(m, old[i].key, old[i].hash)] = old[i];
    }
    free(old);
    return 0;
}

int hmap_put(hmap_t *m, const char *key, void *val, void **old)
{
    if (old)
        *old = NULL;
    if ((m->len + 1) * 2 > m->cap) {
        int rc = hmap__grow(m);
        if (rc)
            return rc;
    }
    uint64_t h = hmap_hash(key, strlen(key));
    size_t i = hmap__find(m, key, h);
    hmap_slot_t *s = &m->slots[i];
    if (s->key) {
        if (old)
            *old = s->val;
    } else {
        m->len++;
    }
    s->key = key;   /* the new value's key: the old one may be freed next */
    s->hash = h;
    s->val = val;
    return 0;
}

void *hmap_del(hmap_t *m, const char *key)
{
    if (m->len == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = hmap__find(m, key, hmap_hash(key, strlen(key)));
    if (!m->slots[i].key)
        return NULL;
    void *val = m->slots[i].val;
    m->len--;
    /* Backward shift: pull later entries of the run into the hole when
     * their home slot is at or before it (cyclically). */
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        hmap_slot_t *s = &m->slots[j];
        if (!s->key)
            break;
        size_t home = s->hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = *s;
            i = j;
        }
    }
    m->slots[i].key = NULL;
    return val;
}

void hmap_deinit(hmap_t *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}

bool hmap_next(const hmap_t *m, size_t *iter, const char **key, void **val)
{
    for (size_t i = *iter; i < m->cap; i++) {
        if (m->slots[i].key) {
            *iter = i + 1;
            if (key)
                *key = m->slots[i].key;
            if (val)
                *val = m->slots[i].val;
            return true;
        }
    }
    *iter = m->cap;
    return false;
}
