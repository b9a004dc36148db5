/* hist.c - see hist.h. Index of v >= 128: with msb the top set bit and
 * shift = msb - 6, v >> shift lies in [64, 128) and the index is
 * 64 * shift + (v >> shift); each octave thus takes 64 consecutive slots. */
#include "hist.h"

#include <string.h>

_Static_assert(HIST_BUCKETS == 64 * 58 + 64, "octaves 7..63 plus the linear part");

void hist_init(hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

int hist_index(uint64_t v)
{
    if (v < 128)
        return (int)v;
    int shift = (63 - __builtin_clzll(v)) - HIST_SUB_BITS;
    return 64 * shift + (int)(v >> shift);
}

uint64_t hist_bucket_hi(int i)
{
    if (i < 128)
        return (uint64_t)i;
    int shift = i / 64 - 1;
    uint64_t sub = (uint64_t)(i - 64 * shift);
    return ((sub + 1) << shift) - 1;
}

void hist_add(hist_t *h, uint64_t v)
{
    h->c[hist_index(v)]++;
    h->n++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(hist_t *dst, const hist_t *src)
{
    for (int i = 0; i < HIST_BUCKETS; i++)
        dst->c[i] += src->c[i];
    dst->n += src->n;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_pct(const hist_t *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)((p / 100.0) * (double)h->n + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->c[i];
        if (seen >= want) {
            uint64_t v = hist_bucket_hi(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
