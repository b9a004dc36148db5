/* hmap_test.c - the hash map against a brute-force model under random churn. */
#include "../../../src/hmap.c"
#include "../../support/check.h"

#define HMAP_T_KEYS 2000

static char hmap_t_keys[HMAP_T_KEYS][16];
static int hmap_t_model[HMAP_T_KEYS];   /* 1 if present */

int main(void)
{
    uint64_t seed = check_seed("hmap_test");
    srand((unsigned)seed);
    hmap_t m = {0};
    for (int i = 0; i < HMAP_T_KEYS; i++)
        snprintf(hmap_t_keys[i], sizeof(hmap_t_keys[i]), "k%d", i);

    CHECK(hmap_get(&m, "absent") == NULL);
    CHECK(hmap_del(&m, "absent") == NULL);
    for (int step = 0; step < 200000; step++) {
        int k = rand() % HMAP_T_KEYS;
        if (rand() % 3) {
            void *old;
            CHECK_EQ_INT(hmap_put(&m, hmap_t_keys[k], &hmap_t_model[k], &old), 0);
            CHECK(old == (hmap_t_model[k] ? &hmap_t_model[k] : NULL));
            hmap_t_model[k] = 1;
        } else {
            void *v = hmap_del(&m, hmap_t_keys[k]);
            CHECK(v == (hmap_t_model[k] ? &hmap_t_model[k] : NULL));
            hmap_t_model[k] = 0;
        }
        if (step % 1000 == 0) {
            size_t live = 0;
            for (int i = 0; i < HMAP_T_KEYS; i++) {
                live += (size_t)hmap_t_model[i];
                void *v = hmap_get(&m, hmap_t_keys[i]);
                if (v != (hmap_t_model[i] ? &hmap_t_model[i] : NULL)) {
                    CHECK(!"lookup disagrees with the model");
                    break;
                }
            }
            CHECK_EQ_INT(m.len, live);
        }
    }
    size_t n = 0, it = 0;
    const char *key;
    while (hmap_next(&m, &it, &key, NULL))
        n++;
    CHECK_EQ_INT(n, m.len);
    /* The owner choice must never change between releases. */
    CHECK_EQ_INT(hmap_hash("alice", 5) % 4, hmap_hash("alice", 5) % 4);
    CHECK(hmap_hash("alice", 5) != hmap_hash("bob", 3));
    hmap_deinit(&m);
    return check_done("hmap_test");
}
