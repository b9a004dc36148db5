/* sio_test.c - unit tests for wire/sio.c: JSON packet text and msgpack maps
 * as real clients send them (notes/socketio-wire.md §2-§3), the per-type
 * rules, the exact bytes we send, round trips in both encodings, every
 * proper prefix of msgpack packets, and seeded mutations of both. Uses the
 * public API only, so it links against wire/sio.c. */
#include "../../../wire/sio.h"

#include <stdbool.h>

#include "../../../src/err.h"
#include "../../support/check.h"

/* Ack ids above 2^53 are refused (JS numbers stop being exact there). */
#define SIO_TEST_ID_MAX ((int64_t)1 << 53)

/* sio_test_copy returns a heap copy of exactly n bytes so ASan catches any
 * read past the end of a frame. */
static uint8_t *sio_test_copy(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, p, n);
    return c;
}

static int sio_test_json(const char *text, sio_packet_t *pkt)
{
    size_t n = strlen(text);
    uint8_t *p = sio_test_copy(text, n);
    int rc = sio_decode_json(p, n, pkt);
    free(p);
    return rc;
}

static size_t sio_test_unhex(const char *hex, uint8_t **out)
{
    size_t n = 0;
    uint8_t *p = malloc(strlen(hex) / 2 + 1);
    for (const char *h = hex; h[0] && h[1];) {
        if (*h == ' ') {
            h++;
            continue;
        }
        unsigned byte;
        sscanf(h, "%2x", &byte);
        p[n++] = (uint8_t)byte;
        h += 2;
    }
    *out = realloc(p, n ? n : 1);
    return n;
}

static const char *sio_test_hex(const uint8_t *p, size_t n)
{
    static char text[4096];
    size_t i;
    for (i = 0; i < n && i * 2 + 2 < sizeof text; i++)
        snprintf(text + i * 2, 3, "%02x", p[i]);
    text[i * 2] = '\0';
    return text;
}

static int sio_test_mp(const char *hex, sio_packet_t *pkt)
{
    uint8_t *p;
    size_t n = sio_test_unhex(hex, &p);
    int rc = sio_decode_msgpack(p, n, pkt);
    free(p);
    return rc;
}

/* sio_test_data_is compares pkt->data with JSON text ("" means absent). */
static bool sio_test_data_is(const sio_packet_t *pkt, const char *json)
{
    if (!*json)
        return pkt->data == NULL;
    json_t *want = json_loads(json, JSON_DECODE_ANY, NULL);
    bool same = want && json_equal(pkt->data, want);
    if (!same) {
        char *got = pkt->data ? json_dumps(pkt->data, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        fprintf(stderr, "data: got %s, want %s\n", got ? got : "(absent)", json);
        free(got);
    }
    json_decref(want);
    return same;
}

/* sio_test_is_empty: what a failed decode must leave behind. */
static bool sio_test_is_empty(const sio_packet_t *pkt)
{
    return pkt->data == NULL && pkt->id == -1 && strcmp(pkt->nsp, "/") == 0;
}

static void sio_test_decode_json_ok(void)
{
    static const struct { const char *in; int type; const char *nsp; int64_t id; const char *data; } cases[] = {
        {"0{\"token\":\"abc\"}", SIO_CONNECT, "/", -1, "{\"token\":\"abc\"}"},
        {"0", SIO_CONNECT, "/", -1, ""},
        {"0{}", SIO_CONNECT, "/", -1, "{}"},
        {"0null", SIO_CONNECT, "/", -1, ""},                      /* null is absent */
        {"0/admin,{\"token\":\"x\"}", SIO_CONNECT, "/admin", -1, "{\"token\":\"x\"}"},
        {"0/admin,", SIO_CONNECT, "/admin", -1, ""},
        {"0/admin", SIO_CONNECT, "/admin", -1, ""},               /* no comma at the end */
        {"2[\"hello\",\"world\"]", SIO_EVENT, "/", -1, "[\"hello\",\"world\"]"},
        {"21[\"hello\",{}]", SIO_EVENT, "/", 1, "[\"hello\",{}]"},
        {"20[\"x\"]", SIO_EVENT, "/", 0, "[\"x\"]"},
        {"2/admin,7[\"x\",\"\\u00e9\\ud83d\\ude00\"]", SIO_EVENT, "/admin", 7, "[\"x\",\"\xc3\xa9\xf0\x9f\x98\x80\"]"},
        {"2007[\"x\"]", SIO_EVENT, "/", 7, "[\"x\"]"},            /* Number("007") */
        {"29007199254740992[\"x\"]", SIO_EVENT, "/", 9007199254740992, "[\"x\"]"},  /* 2^53 */
        {"35[{\"ok\":true}]", SIO_ACK, "/", 5, "[{\"ok\":true}]"},
        {"30[]", SIO_ACK, "/", 0, "[]"},
        {"3[]", SIO_ACK, "/", -1, "[]"},
        {"1", SIO_DISCONNECT, "/", -1, ""},
        {"1/admin,", SIO_DISCONNECT, "/admin", -1, ""},
        {"1/admin", SIO_DISCONNECT, "/admin", -1, ""},
        {"1null", SIO_DISCONNECT, "/", -1, ""},
        {"4{\"message\":\"m\"}", SIO_CONNECT_ERROR, "/", -1, "{\"message\":\"m\"}"},
        {"4\"m\"", SIO_CONNECT_ERROR, "/", -1, "\"m\""},
        {"2 [\"x\"] ", SIO_EVENT, "/", -1, "[\"x\"]"},            /* JSON whitespace */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sio_packet_t pkt;
        int rc = sio_test_json(cases[i].in, &pkt);
        if (rc)
            fprintf(stderr, "decode_json %s: rc %d\n", cases[i].in, rc);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(pkt.type, cases[i].type);
        CHECK_EQ_STR(pkt.nsp, cases[i].nsp);
        CHECK_EQ_INT(pkt.id, cases[i].id);
        CHECK(sio_test_data_is(&pkt, cases[i].data));
        sio_packet_clear(&pkt);
        CHECK(sio_test_is_empty(&pkt));
    }
    /* A namespace of exactly SIO_NSP_MAX bytes fits. */
    char text[SIO_NSP_MAX + 8] = "1/";
    memset(text + 2, 'n', SIO_NSP_MAX - 1);
    text[SIO_NSP_MAX + 1] = ',';
    text[SIO_NSP_MAX + 2] = '\0';
    sio_packet_t pkt;
    CHECK_EQ_INT(sio_test_json(text, &pkt), 0);
    CHECK_EQ_INT(strlen(pkt.nsp), SIO_NSP_MAX);
    sio_packet_clear(&pkt);
}

static void sio_test_decode_json_bad(void)
{
    char long_nsp[SIO_NSP_MAX + 8] = "1/";
    memset(long_nsp + 2, 'n', SIO_NSP_MAX);    /* SIO_NSP_MAX + 1 bytes with the '/' */
    long_nsp[SIO_NSP_MAX + 2] = '\0';
    const char *const cases[] = {
        "", "7", "9[\"x\"]", "a", "x[\"x\"]", "/admin,0",          /* unknown type */
        "5", "51-[\"x\",{\"_placeholder\":true,\"num\":0}]", "6", "61-0[{\"_placeholder\":true,\"num\":0}]",
        "2[\"a\"", "2[\"a\"]x", "2[\"\\ud83d\"]", "0{token}", "2\xff",  /* bad JSON */
        "2{}", "2\"x\"", "2", "2null", "2[]", "2/admin,", "21",     /* EVENT: non-empty array */
        "3{}", "3", "31", "3\"x\"",                                 /* ACK: array */
        "0[]", "0\"x\"", "0[\"token\"]", "01[]",                    /* CONNECT: object */
        "1{}", "1[]", "1\"x\"", "1/admin,{}",                       /* DISCONNECT: no data */
        "4", "4[]", "41",                                           /* CONNECT_ERROR */
        long_nsp,
        "29007199254740993[\"x\"]",                                 /* 2^53 + 1 */
        "299999999999999999999999999999[\"x\"]",                    /* overflow */
        "2-1[\"x\"]", "21-[\"x\"]",                                 /* not an id */
        "2/ad\x01min,[\"x\"]", "0/\x7f",                            /* control bytes in nsp */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sio_packet_t pkt;
        int rc = sio_test_json(cases[i], &pkt);
        if (rc != ERR_PROTO)
            fprintf(stderr, "decode_json \"%s\": rc %d, want ERR_PROTO\n", cases[i], rc);
        CHECK_EQ_INT(rc, ERR_PROTO);
        CHECK(sio_test_is_empty(&pkt));
    }
    /* A NUL byte in the namespace (the span has a length, not a terminator). */
    sio_packet_t pkt;
    CHECK_EQ_INT(sio_decode_json((const uint8_t *)"1/a\0b,", 6, &pkt), ERR_PROTO);
    CHECK(sio_test_is_empty(&pkt));
}

/* Captured and hand-built msgpack packets (notes §3). Keys as hex:
 * type a474797065, data a464617461, nsp a36e7370, id a26964, "/" a12f. */
#define SIO_T_TYPE "a474797065"
#define SIO_T_DATA "a464617461"
#define SIO_T_NSP  "a36e7370"
#define SIO_T_ID   "a26964"

static const struct {
    const char *what, *hex;
    int type;
    const char *nsp;
    int64_t id;
    const char *data;
} sio_test_mp_ok[] = {
    {"JS CONNECT with auth", "83a47479706500a46461746181a5746f6b656ea3616263a36e7370a12f",
     SIO_CONNECT, "/", -1, "{\"token\":\"abc\"}"},
    {"JS CONNECT without auth (data undefined)", "83a47479706500a464617461d40000a36e7370a12f",
     SIO_CONNECT, "/", -1, ""},
    {"python CONNECT with data nil", "83" SIO_T_TYPE "00" SIO_T_DATA "c0" SIO_T_NSP "a12f",
     SIO_CONNECT, "/", -1, ""},
    {"python CONNECT {} to /admin", "83" SIO_T_TYPE "00" SIO_T_DATA "80" SIO_T_NSP "a62f61646d696e",
     SIO_CONNECT, "/admin", -1, "{}"},
    {"server EVENT with id", "84a47479706502a46461746192a361736b07a2696400a36e7370a12f",
     SIO_EVENT, "/", 0, "[\"ask\",7]"},
    {"server ACK, id first",
     "84" SIO_T_ID "00" SIO_T_TYPE "03" SIO_T_DATA "9182a26f6bc3a46563686fa5776f726c64" SIO_T_NSP "a12f",
     SIO_ACK, "/", 0, "[{\"ok\":true,\"echo\":\"world\"}]"},
    {"client ACK", "84" SIO_T_TYPE "03" SIO_T_ID "00" SIO_T_DATA "92a6616e7377657208" SIO_T_NSP "a12f",
     SIO_ACK, "/", 0, "[\"answer\",8]"},
    {"python DISCONNECT with data nil", "83" SIO_T_TYPE "01" SIO_T_DATA "c0" SIO_T_NSP "a12f",
     SIO_DISCONNECT, "/", -1, ""},
    {"server DISCONNECT", "82a47479706501a36e7370a12f", SIO_DISCONNECT, "/", -1, ""},
    {"JS EVENT with options and bin",
     "85" SIO_T_TYPE "02" SIO_T_DATA "93a568656c6c6fa5776f726c64c4020908"
     "a76f7074696f6e7381a8636f6d7072657373c3" SIO_T_ID "00" SIO_T_NSP "a12f",
     SIO_EVENT, "/", 0, "[\"hello\",\"world\",\"\\t\\b\"]"},
    {"nsp first, then id 300", "84" SIO_T_NSP "a12f" SIO_T_ID "cd012c" SIO_T_TYPE "02" SIO_T_DATA "91a178",
     SIO_EVENT, "/", 300, "[\"x\"]"},
    {"CONNECT_ERROR", "83" SIO_T_TYPE "04" SIO_T_DATA "82a76d657373616765ae6e6f7420617574686f72697a6564"
     "a46461746181a4636f6465cd0191" SIO_T_NSP "a12f",
     SIO_CONNECT_ERROR, "/", -1, "{\"message\":\"not authorized\",\"data\":{\"code\":401}}"},
    {"id nil is absent", "84" SIO_T_TYPE "02" SIO_T_DATA "91a178" SIO_T_ID "c0" SIO_T_NSP "a12f",
     SIO_EVENT, "/", -1, "[\"x\"]"},
    {"id undefined is absent", "84" SIO_T_TYPE "02" SIO_T_DATA "91a178" SIO_T_ID "d40000" SIO_T_NSP "a12f",
     SIO_EVENT, "/", -1, "[\"x\"]"},
};

static void sio_test_decode_mp_ok(void)
{
    for (size_t i = 0; i < sizeof sio_test_mp_ok / sizeof sio_test_mp_ok[0]; i++) {
        sio_packet_t pkt;
        int rc = sio_test_mp(sio_test_mp_ok[i].hex, &pkt);
        if (rc)
            fprintf(stderr, "decode_msgpack %s: rc %d\n", sio_test_mp_ok[i].what, rc);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(pkt.type, sio_test_mp_ok[i].type);
        CHECK_EQ_STR(pkt.nsp, sio_test_mp_ok[i].nsp);
        CHECK_EQ_INT(pkt.id, sio_test_mp_ok[i].id);
        CHECK(sio_test_data_is(&pkt, sio_test_mp_ok[i].data));
        sio_packet_clear(&pkt);
    }
}

static void sio_test_decode_mp_bad(void)
{
    const char *const cases[] = {
        "", "c0", "90", "a12f", "80",                                     /* not a packet map */
        "81" SIO_T_TYPE "00",                                             /* missing nsp */
        "82" SIO_T_TYPE "00" SIO_T_NSP "01",                              /* nsp not a string */
        "82" SIO_T_TYPE "00" SIO_T_NSP "c0",
        "82" SIO_T_TYPE "00" SIO_T_NSP "a0",                              /* empty nsp */
        "82" SIO_T_TYPE "00" SIO_T_NSP "a161",                            /* no leading '/' */
        "82" SIO_T_TYPE "00" SIO_T_NSP "a32f0061",                        /* NUL in nsp */
        "81" SIO_T_NSP "a12f",                                            /* missing type */
        "82" SIO_T_TYPE "a130" SIO_T_NSP "a12f",                          /* type "0" */
        "82" SIO_T_TYPE "cb0000000000000000" SIO_T_NSP "a12f",            /* type 0.0 */
        "82" SIO_T_TYPE "c0" SIO_T_NSP "a12f",                            /* type nil */
        "82" SIO_T_TYPE "c2" SIO_T_NSP "a12f",                            /* type false */
        "82" SIO_T_TYPE "05" SIO_T_NSP "a12f",                            /* type 5 */
        "82" SIO_T_TYPE "06" SIO_T_NSP "a12f",
        "82" SIO_T_TYPE "7f" SIO_T_NSP "a12f",
        "82" SIO_T_TYPE "ff" SIO_T_NSP "a12f",                            /* type -1 */
        "83" SIO_T_TYPE "02" SIO_T_DATA "80" SIO_T_NSP "a12f",            /* EVENT data map */
        "83" SIO_T_TYPE "02" SIO_T_DATA "90" SIO_T_NSP "a12f",            /* EVENT data [] */
        "82" SIO_T_TYPE "02" SIO_T_NSP "a12f",                            /* EVENT no data */
        "83" SIO_T_TYPE "03" SIO_T_DATA "80" SIO_T_NSP "a12f",            /* ACK data map */
        "83" SIO_T_TYPE "00" SIO_T_DATA "90" SIO_T_NSP "a12f",            /* CONNECT data [] */
        "83" SIO_T_TYPE "00" SIO_T_DATA "a178" SIO_T_NSP "a12f",          /* CONNECT data "x" */
        "83" SIO_T_TYPE "01" SIO_T_DATA "80" SIO_T_NSP "a12f",            /* DISCONNECT data {} */
        "84" SIO_T_TYPE "02" SIO_T_DATA "91a178" SIO_T_ID "ff" SIO_T_NSP "a12f",      /* id -1 */
        "84" SIO_T_TYPE "02" SIO_T_DATA "91a178" SIO_T_ID "a131" SIO_T_NSP "a12f",    /* id "1" */
        "84" SIO_T_TYPE "02" SIO_T_DATA "91a178" SIO_T_ID "cb3ff0000000000000" SIO_T_NSP "a12f",
        "84" SIO_T_TYPE "02" SIO_T_DATA "91a178" SIO_T_ID "cf0020000000000001" SIO_T_NSP "a12f", /* 2^53+1 */
        "82a47479706501a36e7370a12fc0",                                   /* trailing byte */
        "82" SIO_T_TYPE "01" "01" "a12f",                                 /* integer key */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sio_packet_t pkt;
        int rc = sio_test_mp(cases[i], &pkt);
        if (rc != ERR_PROTO)
            fprintf(stderr, "decode_msgpack %s: rc %d, want ERR_PROTO\n", cases[i], rc);
        CHECK_EQ_INT(rc, ERR_PROTO);
        CHECK(sio_test_is_empty(&pkt));
    }
    /* Namespaces: SIO_NSP_MAX bytes fit, one more does not. */
    for (size_t len = SIO_NSP_MAX; len <= SIO_NSP_MAX + 1; len++) {
        char hex[600] = "82" SIO_T_TYPE "01" SIO_T_NSP "d9";
        size_t h = strlen(hex);
        h += (size_t)snprintf(hex + h, sizeof hex - h, "%02zx2f", len);
        for (size_t j = 1; j < len; j++)
            h += (size_t)snprintf(hex + h, sizeof hex - h, "6e");
        sio_packet_t pkt;
        CHECK_EQ_INT(sio_test_mp(hex, &pkt), len <= SIO_NSP_MAX ? 0 : ERR_PROTO);
        sio_packet_clear(&pkt);
    }
}

/* Every proper prefix of a valid msgpack packet is refused without a crash
 * (each from an exact-size buffer). */
static void sio_test_mp_prefixes(void)
{
    for (size_t i = 0; i < sizeof sio_test_mp_ok / sizeof sio_test_mp_ok[0]; i++) {
        uint8_t *p;
        size_t n = sio_test_unhex(sio_test_mp_ok[i].hex, &p);
        for (size_t k = 0; k < n; k++) {
            uint8_t *c = sio_test_copy(p, k);
            sio_packet_t pkt;
            int rc = sio_decode_msgpack(c, k, &pkt);
            CHECK_EQ_INT(rc, ERR_PROTO);
            CHECK(sio_test_is_empty(&pkt));
            free(c);
        }
        free(p);
    }
}

/* sio_test_pkt builds a packet; data is JSON text or NULL. */
static sio_packet_t sio_test_pkt(int type, const char *nsp, int64_t id, const char *data)
{
    sio_packet_t pkt = {.type = type};
    snprintf(pkt.nsp, sizeof pkt.nsp, "%s", nsp);
    pkt.id = id;
    pkt.data = data ? json_loads(data, JSON_DECODE_ANY, NULL) : NULL;
    CHECK(!data || pkt.data);
    return pkt;
}

static void sio_test_encode(void)
{
    static const struct { int type; const char *nsp; int64_t id; const char *data, *text, *hex; } cases[] = {
        {SIO_CONNECT, "/", -1, "{\"sid\":\"x\"}", "40{\"sid\":\"x\"}",
         "83" SIO_T_TYPE "00" SIO_T_NSP "a12f" SIO_T_DATA "81a3736964a178"},
        {SIO_CONNECT_ERROR, "/", -1, "{\"message\":\"m\",\"data\":{\"code\":\"UNAUTHORIZED\"}}",
         "44{\"message\":\"m\",\"data\":{\"code\":\"UNAUTHORIZED\"}}", NULL},
        {SIO_EVENT, "/", -1, "[\"ready\",{\"userId\":\"u1\",\"chats\":[]}]",
         "42[\"ready\",{\"userId\":\"u1\",\"chats\":[]}]", NULL},
        /* "4" engine message, "3" ACK, then the id: 1 gives 431, 31 gives 4331. */
        {SIO_ACK, "/", 1, "[{\"ok\":true}]", "431[{\"ok\":true}]", NULL},
        {SIO_ACK, "/", 31, "[{\"ok\":true}]", "4331[{\"ok\":true}]",
         "84" SIO_T_TYPE "03" SIO_T_NSP "a12f" SIO_T_DATA "9181a26f6bc3" SIO_T_ID "1f"},
        {SIO_CONNECT_ERROR, "/admin", -1, "{\"message\":\"Invalid namespace\"}",
         "44/admin,{\"message\":\"Invalid namespace\"}", NULL},
        {SIO_CONNECT, "/admin", -1, "{\"sid\":\"y\"}", "40/admin,{\"sid\":\"y\"}", NULL},
        {SIO_DISCONNECT, "/", -1, NULL, "41", "82" SIO_T_TYPE "01" SIO_T_NSP "a12f"},
        {SIO_DISCONNECT, "/admin", -1, NULL, "41/admin,",
         "82" SIO_T_TYPE "01" SIO_T_NSP "a62f61646d696e"},
        {SIO_EVENT, "/admin", 7, "[\"message:new\",{\"body\":\"h\xc3\xa9/\xf0\x9f\x98\x80\"}]",
         "42/admin,7[\"message:new\",{\"body\":\"h\xc3\xa9/\xf0\x9f\x98\x80\"}]", NULL},
        {SIO_ACK, "/", 0, "[]", "430[]", "84" SIO_T_TYPE "03" SIO_T_NSP "a12f" SIO_T_DATA "90" SIO_T_ID "00"},
        {SIO_ACK, "/", SIO_TEST_ID_MAX, "[]", "439007199254740992[]", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sio_packet_t pkt = sio_test_pkt(cases[i].type, cases[i].nsp, cases[i].id, cases[i].data);
        buf_t b = {0};
        buf_append_str(&b, "xy");   /* encoders append after what is there */
        CHECK_EQ_INT(sio_encode(SIO_ENC_JSON, &pkt, &b), 0);
        CHECK(b.len >= 2 && memcmp(b.p, "xy", 2) == 0);
        if (b.len - 2 != strlen(cases[i].text))
            fprintf(stderr, "encode: got %.*s, want %s\n", (int)b.len - 2, (const char *)b.p + 2, cases[i].text);
        CHECK_EQ_INT(b.len - 2, strlen(cases[i].text));
        CHECK(b.len - 2 == strlen(cases[i].text) && memcmp(b.p + 2, cases[i].text, b.len - 2) == 0);
        if (cases[i].hex) {
            buf_reset(&b);
            CHECK_EQ_INT(sio_encode(SIO_ENC_MSGPACK, &pkt, &b), 0);
            CHECK_EQ_STR(sio_test_hex(b.p, b.len), cases[i].hex);
        }
        buf_deinit(&b);
        sio_packet_clear(&pkt);
    }
}

/* sio_test_same compares two packets field by field. */
static bool sio_test_same(const sio_packet_t *a, const sio_packet_t *b)
{
    bool data = (!a->data && !b->data) || (a->data && b->data && json_equal(a->data, b->data));
    return a->type == b->type && strcmp(a->nsp, b->nsp) == 0 && a->id == b->id && data;
}

/* decode(encode(x)) == x in both encodings; the msgpack encoding's proper
 * prefixes are all refused. */
static void sio_test_round_trips(void)
{
    static const struct { int type; const char *nsp; int64_t id; const char *data; } cases[] = {
        {SIO_CONNECT, "/", -1, NULL},
        {SIO_CONNECT, "/", -1, "{\"token\":\"abc\"}"},
        {SIO_CONNECT, "/admin", -1, "{}"},
        {SIO_DISCONNECT, "/", -1, NULL},
        {SIO_DISCONNECT, "/a/b", -1, NULL},
        {SIO_EVENT, "/", -1, "[\"hello\",\"world\",1.5,null,-7,{\"a\":[true,false]}]"},
        {SIO_EVENT, "/", 0, "[\"x\"]"},
        {SIO_EVENT, "/chat", 123456789, "[\"message:send\",{\"roomId\":\"r1\",\"body\":\"\xf0\x9f\x98\x80\"}]"},
        {SIO_ACK, "/", 1, "[{\"ok\":true,\"seq\":9007199254740993}]"},
        {SIO_ACK, "/", SIO_TEST_ID_MAX, "[]"},
        {SIO_CONNECT_ERROR, "/", -1, "{\"message\":\"m\",\"data\":{\"code\":\"UNAUTHORIZED\"}}"},
        {SIO_CONNECT_ERROR, "/", -1, "\"plain\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sio_packet_t pkt = sio_test_pkt(cases[i].type, cases[i].nsp, cases[i].id, cases[i].data);
        sio_packet_t back;
        buf_t b = {0};

        CHECK_EQ_INT(sio_encode(SIO_ENC_JSON, &pkt, &b), 0);
        CHECK(b.len > 0 && b.p[0] == '4');   /* engine message prefix */
        uint8_t *c = sio_test_copy(b.p + 1, b.len - 1);
        CHECK_EQ_INT(sio_decode_json(c, b.len - 1, &back), 0);
        CHECK(sio_test_same(&pkt, &back));
        sio_packet_clear(&back);
        free(c);

        buf_reset(&b);
        CHECK_EQ_INT(sio_encode(SIO_ENC_MSGPACK, &pkt, &b), 0);
        c = sio_test_copy(b.p, b.len);
        CHECK_EQ_INT(sio_decode_msgpack(c, b.len, &back), 0);
        CHECK(sio_test_same(&pkt, &back));
        sio_packet_clear(&back);
        free(c);
        for (size_t k = 0; k < b.len; k++) {
            c = sio_test_copy(b.p, k);
            CHECK_EQ_INT(sio_decode_msgpack(c, k, &back), ERR_PROTO);
            free(c);
        }
        buf_deinit(&b);
        sio_packet_clear(&pkt);
    }
}

static uint64_t sio_test_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* sio_test_fuzz mutates valid packets of both encodings. A decode either
 * fails leaving an empty packet, or yields one that keeps sio.c's
 * invariants and survives a round trip. */
static void sio_test_fuzz(uint64_t seed)
{
    static const char *const texts[] = {
        "0{\"token\":\"abc\"}", "0/admin,{\"token\":\"x\"}", "21[\"hello\",{}]", "35[{\"ok\":true}]",
        "1/admin,", "2/a,12[\"m\",{\"b\":\"\\u00e9\\ud83d\\ude00\",\"n\":[1,2.5,null]}]",
    };
    uint64_t s = seed ? seed : 1;
    int ok = 0;
    for (int iter = 0; iter < 6000; iter++) {
        bool mp = iter % 2;
        uint8_t frame[256];
        size_t n;
        if (mp) {
            size_t row = sio_test_rand(&s) % (sizeof sio_test_mp_ok / sizeof sio_test_mp_ok[0]);
            uint8_t *p;
            n = sio_test_unhex(sio_test_mp_ok[row].hex, &p);
            memcpy(frame, p, n);
            free(p);
        } else {
            const char *t = texts[sio_test_rand(&s) % (sizeof texts / sizeof texts[0])];
            n = strlen(t);
            memcpy(frame, t, n);
        }
        for (int f = 1 + (int)(sio_test_rand(&s) % 3); f > 0; f--) {
            uint8_t byte = (uint8_t)sio_test_rand(&s);
            if (!mp && sio_test_rand(&s) % 2)   /* text mutations favour grammar bytes */
                byte = (uint8_t)"0123456789/,[]{}\":-\\"[sio_test_rand(&s) % 20];
            frame[sio_test_rand(&s) % n] = byte;
        }
        if (sio_test_rand(&s) % 4 == 0)
            n = sio_test_rand(&s) % (n + 1);
        uint8_t *c = sio_test_copy(frame, n);
        sio_packet_t pkt;
        int rc = mp ? sio_decode_msgpack(c, n, &pkt) : sio_decode_json(c, n, &pkt);
        free(c);
        if (rc) {
            CHECK_EQ_INT(rc, ERR_PROTO);
            CHECK(sio_test_is_empty(&pkt));
            continue;
        }
        ok++;
        CHECK(pkt.type >= SIO_CONNECT && pkt.type <= SIO_CONNECT_ERROR);
        CHECK(pkt.nsp[0] == '/' && strlen(pkt.nsp) <= SIO_NSP_MAX);
        CHECK(pkt.id >= -1 && pkt.id <= SIO_TEST_ID_MAX);
        CHECK(pkt.type == SIO_DISCONNECT ? pkt.data == NULL
              : pkt.type == SIO_EVENT        ? json_array_size(pkt.data) > 0
              : pkt.type == SIO_ACK          ? json_is_array(pkt.data)
              : pkt.type == SIO_CONNECT      ? !pkt.data || json_is_object(pkt.data)
                                             : json_is_object(pkt.data) || json_is_string(pkt.data));
        buf_t b = {0};
        sio_packet_t back;
        CHECK_EQ_INT(sio_encode(mp ? SIO_ENC_MSGPACK : SIO_ENC_JSON, &pkt, &b), 0);
        rc = mp ? sio_decode_msgpack(b.p, b.len, &back) : sio_decode_json(b.p + 1, b.len - 1, &back);
        CHECK_EQ_INT(rc, 0);
        CHECK(rc || sio_test_same(&pkt, &back));
        sio_packet_clear(&back);
        sio_packet_clear(&pkt);
        buf_deinit(&b);
    }
    fprintf(stderr, "sio_test: %d of 6000 mutated packets decoded\n", ok);
    CHECK(ok > 0);
}

int main(void)
{
    uint64_t seed = check_seed("sio_test");
    sio_test_decode_json_ok();
    sio_test_decode_json_bad();
    sio_test_decode_mp_ok();
    sio_test_decode_mp_bad();
    sio_test_mp_prefixes();
    sio_test_encode();
    sio_test_round_trips();
    sio_test_fuzz(seed);
    return check_done("sio_test");
}
