/* tmr.c - timer min-heap (see tmr.h). */
#include "tmr.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int tmr_add(tmr_heap_t *t, uint64_t at_ms, uint64_t id)
{
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        tmr_ent_t *h = realloc(t->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        t->heap = h;
        t->cap = cap;
    }
    size_t i = t->len++;
    while (i > 0) {   /* sift up */
        size_t p = (i - 1) / 2;
        if (t->heap[p].at_ms <= at_ms)
            break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = (tmr_ent_t){ .at_ms = at_ms, .id = id };
    return 0;
}

int tmr_pop(tmr_heap_t *t, uint64_t now_ms, tmr_ent_t *out)
{
    if (t->len == 0 || t->heap[0].at_ms > now_ms)
        return 0;
    *out = t->heap[0];
    tmr_ent_t last = t->heap[--t->len];
    size_t i = 0;
    for (;;) {   /* sift down */
        size_t c = 2 * i + 1;
        if (c >= t->len)
            break;
        if (c + 1 < t->len && t->heap[c + 1].at_ms < t->heap[c].at_ms)
            c++;
        if (last.at_ms <= t->heap[c].at_ms)
            break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (t->len)
        t->heap[i] = last;
    return 1;
}

void tmr_deinit(tmr_heap_t *t)
{
    free(t->heap);
    t->heap = NULL;
    t->len = t->cap = 0;
}

uint64_t tmr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t tmr_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
