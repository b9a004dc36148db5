/* check.h - the few macros every C unit test uses.
 *
 * Each test is its own executable: exit 0 pass, 1 fail, 77 skip
 * (STYLE.md §7). CHECK records a failure and goes on, so one run shows every
 * broken expectation; check_done() turns the count into the exit code.
 * Random seeds come from RC_SEED when set, and are always printed.
 */
#ifndef RC_CHECK_H
#define RC_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int check__failures;
static int check__count;

#define CHECK(cond)                                                              \
    do {                                                                         \
        check__count++;                                                          \
        if (!(cond)) {                                                           \
            check__failures++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                       \
    do {                                                                         \
        long long check__a = (long long)(a), check__b = (long long)(b);          \
        check__count++;                                                          \
        if (check__a != check__b) {                                              \
            check__failures++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n",    \
                    __FILE__, __LINE__, #a, #b, check__a, check__b);             \
        }                                                                        \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                       \
    do {                                                                         \
        const char *check__a = (a), *check__b = (b);                             \
        check__count++;                                                          \
        if (!check__a || !check__b || strcmp(check__a, check__b) != 0) {        \
            check__failures++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", \
                    __FILE__, __LINE__, #a, #b, check__a ? check__a : "(null)",  \
                    check__b ? check__b : "(null)");                             \
        }                                                                        \
    } while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

/* check_seed returns RC_SEED if set, else a time-based seed; prints it. */
static inline uint64_t check_seed(const char *test)
{
    const char *s = getenv("RC_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
    fprintf(stderr, "%s: seed %" PRIu64 " (set RC_SEED to repeat)\n", test, seed);
    return seed;
}

static inline int check_done(const char *test)
{
    if (check__count == 0) {
        fprintf(stderr, "%s: no checks ran\n", test);
        return 1;
    }
    fprintf(stderr, "%s: %d checks, %d failed\n", test, check__count, check__failures);
    return check__failures ? 1 : 0;
}

#endif
