/* eio_test.c - unit tests for wire/eio.c: packet types, the OPEN text and
 * base64 decoding of "b..." frames. */
#include "../../../wire/eio.h"

#include "../../../src/err.h"
#include "../../support/check.h"

static int eio_test_type(const char *s, int *is_b64)
{
    return eio_text_type((const uint8_t *)s, strlen(s), is_b64);
}

static void eio_test_types(void)
{
    int b64 = -1;
    for (int d = 0; d <= 9; d++) {
        char s[3] = {(char)('0' + d), 'x', 0};
        b64 = -1;
        int rc = eio_test_type(s, &b64);
        if (d <= 6) {
            CHECK_EQ_INT(rc, d);
            CHECK_EQ_INT(b64, 0);
        } else {
            CHECK_EQ_INT(rc, ERR_PROTO);
        }
        CHECK_EQ_INT(eio_text_type((const uint8_t *)s, 1, &b64), d <= 6 ? d : ERR_PROTO);
    }
    CHECK_EQ_INT(eio_test_type("2", &b64), EIO_PING);
    CHECK_EQ_INT(eio_test_type("3probe", &b64), EIO_PONG);
    CHECK_EQ_INT(eio_test_type("40", &b64), EIO_MESSAGE);
    CHECK_EQ_INT(eio_test_type("6", &b64), EIO_NOOP);
    CHECK_EQ_INT(eio_text_type((const uint8_t *)"", 0, &b64), ERR_PROTO);
    CHECK_EQ_INT(eio_test_type("x", &b64), ERR_PROTO);
    CHECK_EQ_INT(eio_test_type("B", &b64), ERR_PROTO);
    CHECK_EQ_INT(eio_test_type(" 4", &b64), ERR_PROTO);
    CHECK_EQ_INT(eio_test_type("\xff", &b64), ERR_PROTO);
    b64 = -1;
    CHECK_EQ_INT(eio_test_type("bAQID", &b64), EIO_MESSAGE);
    CHECK_EQ_INT(b64, 1);
    CHECK_EQ_INT(eio_test_type("b", &b64), EIO_MESSAGE);   /* empty binary message */
    CHECK_EQ_INT(b64, 1);
    CHECK_EQ_INT(eio_test_type("4", NULL), EIO_MESSAGE);
}

static void eio_test_open(void)
{
    buf_t b = {0};
    CHECK_EQ_INT(eio_open_append(&b, "abc", 25000, 20000, 1000000), 0);
    const char *want =
        "0{\"sid\":\"abc\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}";
    CHECK_EQ_INT(b.len, strlen(want));
    CHECK_MEM(b.p, want, strlen(want));
    /* It appends; and a sid that needs escaping stays valid JSON. */
    CHECK_EQ_INT(eio_open_append(&b, "a\"b\\c\x01", 1, 2, 3), 0);
    const char *want2 = "0{\"sid\":\"a\\\"b\\\\c\\u0001\",\"upgrades\":[],\"pingInterval\":1,"
                        "\"pingTimeout\":2,\"maxPayload\":3}";
    CHECK_EQ_INT(b.len, strlen(want) + strlen(want2));
    CHECK_MEM(b.p + strlen(want), want2, strlen(want2));
    buf_deinit(&b);
}

static int eio_test_b64(const char *s, buf_t *out)
{
    buf_reset(out);
    return eio_b64_decode((const uint8_t *)s, strlen(s), out);
}

static void eio_test_b64_decode(void)
{
    buf_t b = {0};
    CHECK_EQ_INT(eio_test_b64("", &b), 0);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(eio_test_b64("AQID", &b), 0);
    CHECK(b.len == 3 && b.p[0] == 1 && b.p[1] == 2 && b.p[2] == 3);
    /* RFC 4648 §10 vectors, with and without padding. */
    static const char *vec[][3] = {
        {"Zg==", "Zg", "f"},           {"Zm8=", "Zm8", "fo"},
        {"Zm9v", "Zm9v", "foo"},       {"Zm9vYg==", "Zm9vYg", "foob"},
        {"Zm9vYmE=", "Zm9vYmE", "fooba"}, {"Zm9vYmFy", "Zm9vYmFy", "foobar"},
    };
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        for (int j = 0; j < 2; j++) {
            CHECK_EQ_INT(eio_test_b64(vec[i][j], &b), 0);
            CHECK_EQ_INT(b.len, strlen(vec[i][2]));
            CHECK_MEM(b.p, vec[i][2], strlen(vec[i][2]));
        }
    }
    /* The two non-alphanumeric characters of the standard alphabet. */
    CHECK_EQ_INT(eio_test_b64("+/8=", &b), 0);
    CHECK(b.len == 2 && b.p[0] == 0xfb && b.p[1] == 0xff);
    /* Appends after what is there. */
    buf_reset(&b);
    CHECK_EQ_INT(buf_append_str(&b, "x"), 0);
    CHECK_EQ_INT(eio_b64_decode((const uint8_t *)"Zm8", 3, &b), 0);
    CHECK(b.len == 3 && memcmp(b.p, "xfo", 3) == 0);

    static const char *bad[] = {
        "Z", "Zm9vY", "Zg=", "Zg===", "====", "Z===", "Zm=9", "Zm9v\n", "Zm 9v",
        "Zm9v-_", "Zh==", "Zm9=", "=Zm9", "Zm9vYg=a", "Zm\x80v",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        buf_reset(&b);
        CHECK_EQ_INT(buf_append_str(&b, "keep"), 0);
        int rc = eio_b64_decode((const uint8_t *)bad[i], strlen(bad[i]), &b);
        if (rc != ERR_PROTO)
            fprintf(stderr, "bad[%zu] \"%s\" = %d\n", i, bad[i], rc);
        CHECK_EQ_INT(rc, ERR_PROTO);
        CHECK(b.len == 4 && memcmp(b.p, "keep", 4) == 0);   /* unchanged on failure */
    }
    buf_deinit(&b);
}

int main(void)
{
    check_seed("eio_test");
    eio_test_types();
    eio_test_open();
    eio_test_b64_decode();
    return check_done("eio_test");
}
