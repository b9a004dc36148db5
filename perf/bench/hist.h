/* hist.h - a log-bucketed latency histogram in the style of HdrHistogram.
 *
 * Values are nanoseconds (any uint64). Values below 128 get a bucket each;
 * above that every power of two is split into 64 equal sub-buckets, so a
 * bucket is at most 1/64 (1.6%) of its value wide: p99 = 2.00 ms is known to
 * within +-16 us. 64 * 58 buckets cover the whole uint64 range in 30 KiB.
 * Recording is one clz, one shift and one increment; no allocation.
 * Single-threaded: one histogram per recording thread.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6                          /* 64 sub-buckets per octave */
#define HIST_BUCKETS (64 * (64 - HIST_SUB_BITS) + 64)

typedef struct {
    uint64_t n;                     /* recorded values                 */
    uint64_t min, max;              /* exact extremes (ns)             */
    double sum;                     /* for the mean only               */
    uint64_t c[HIST_BUCKETS];       /* counts per bucket               */
} hist_t;

void hist_init(hist_t *h);
void hist_add(hist_t *h, uint64_t v);
/* hist_merge adds every count of src into dst. */
void hist_merge(hist_t *dst, const hist_t *src);
/* hist_pct returns the value at percentile p (0..100): the highest value of
 * the bucket holding it, clamped to the exact max; 0 when empty. */
uint64_t hist_pct(const hist_t *h, double p);
/* hist_bucket_hi: the highest value that falls in bucket i. */
uint64_t hist_bucket_hi(int i);
int hist_index(uint64_t v);

#endif
