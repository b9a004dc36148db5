/* buf.c - growable byte buffers and shared frame blobs (see buf.h).
 *
 * Blobs: allocated by the shard that encodes an event, shared read-only by
 * every shard that delivers it, freed by whichever thread drops the last
 * reference. STYLE.md suggests handing the last release back to the
 * allocating shard; we free in place because glibc's malloc is thread-safe
 * and a hand-back would cost a mailbox message per blob (revisit if a
 * per-shard allocator replaces malloc).
 */
#include "buf.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_append_str(buf_t *b, const char *s) { return buf_append(b, s, strlen(s)); }

int buf_append_byte(buf_t *b, uint8_t c) { return buf_append(b, &c, 1); }

int buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    int rc = buf_reserve(b, (size_t)n + 1);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_consume(buf_t *b, size_t n)
{
    assert(n <= b->len);
    if (n < b->len)
        memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void buf_deinit(buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

__attribute__((unused)) static uint32_t buf__sum(const uint8_t *p, uint32_t n)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

buf_blob_t *buf_blob_new(uint32_t len)
{
    buf_blob_t *b = malloc(sizeof(*b) + len);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    b->flags = 0;
    b->sum = 0;
    return b;
}

void buf_blob_freeze(buf_blob_t *b)
{
#ifndef NDEBUG
    b->sum = buf__sum(b->data, b->len);
#else
    (void)b;
#endif
}

void buf_blob_unref(buf_blob_t *b)
{
    /* acq_rel: the releasing thread's reads of data happen before the free
     * done by whichever thread drops the last reference. */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
#ifndef NDEBUG
    assert(b->sum == buf__sum(b->data, b->len) && "blob written after freeze");
#endif
    free(b);
}
