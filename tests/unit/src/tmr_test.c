/* tmr_test.c - the timer heap pops in deadline order and only when due. */
#include "../../../src/tmr.c"
#include "../../support/check.h"

int main(void)
{
    uint64_t seed = check_seed("tmr_test");
    srand((unsigned)seed);
    tmr_heap_t t = {0};
    tmr_ent_t e;
    CHECK_EQ_INT(tmr_pop(&t, 1000, &e), 0);
    for (uint64_t i = 0; i < 5000; i++)
        CHECK_EQ_INT(tmr_add(&t, 100 + (uint64_t)(rand() % 10000), i), 0);
    CHECK_EQ_INT(tmr_pop(&t, 99, &e), 0);   /* nothing due yet */
    uint64_t last = 0, n = 0;
    while (tmr_pop(&t, 5100, &e)) {
        CHECK(e.at_ms >= last && e.at_ms <= 5100);
        last = e.at_ms;
        n++;
    }
    while (tmr_pop(&t, UINT64_MAX, &e)) {
        CHECK(e.at_ms >= last && e.at_ms > 5100);
        last = e.at_ms;
        n++;
    }
    CHECK_EQ_INT(n, 5000);
    CHECK(tmr_now_ms() > 0 && tmr_wall_ms() > 1600000000000LL);
    tmr_deinit(&t);
    return check_done("tmr_test");
}
