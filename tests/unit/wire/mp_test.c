/* mp_test.c - unit tests for wire/mp.c: exact bytes at every width boundary,
 * the notepack.io captures from notes/socketio-wire.md §3, notepack's
 * undefined/Date/bin/ext forms, rejections, every proper prefix of valid
 * input (imitating partial reads), and seeded random input. Each input is
 * copied to a buffer of exactly its size so ASan sees any over-read. Uses
 * the public API only, so it links against wire/mp.c. */
#include "../../../wire/mp.h"

#include <stdbool.h>

#include "../../../src/err.h"
#include "../../support/check.h"

/* mp_test_unhex decodes hex (spaces allowed) into a new buffer of exactly
 * the decoded size; returns the size. */
static size_t mp_test_unhex(const char *hex, uint8_t **out)
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

/* mp_test_hex renders bytes as lower-case hex in a static buffer. */
static const char *mp_test_hex(const uint8_t *p, size_t n)
{
    static char text[8192];
    size_t i;
    for (i = 0; i < n && i * 2 + 2 < sizeof text; i++)
        snprintf(text + i * 2, 3, "%02x", p[i]);
    text[i * 2] = '\0';
    return text;
}

/* mp_test_parse copies p[0..n) to an exact-size heap buffer and parses it. */
static int mp_test_parse(const uint8_t *p, size_t n, json_t **out)
{
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    int rc = mp_parse(copy, n, out);
    free(copy);
    return rc;
}

/* mp_test_prefixes checks that every proper prefix of a valid encoding says
 * ERR_TRUNCATED and builds nothing. */
static void mp_test_prefixes(const uint8_t *p, size_t n)
{
    /* All prefixes up to 4 KiB; beyond that (the 65536-element containers)
     * both ends and 16 points between, because each prefix costs O(k). */
    size_t stride = n <= 4096 ? 1 : n / 16;
    for (size_t k = 0; k < n; k += (k < 64 || n - k <= 64) ? 1 : stride) {
        json_t *v = (json_t *)1;
        int rc = mp_test_parse(p, k, &v);
        if (rc != ERR_TRUNCATED || v != NULL) {
            fprintf(stderr, "prefix %zu of %zu bytes %s: rc %d\n", k, n, mp_test_hex(p, n), rc);
            CHECK_EQ_INT(rc, ERR_TRUNCATED);
        }
    }
    CHECK(1);
}

/* mp_test_rc parses hex and returns the code, dropping any value. */
static int mp_test_rc(const char *hex)
{
    uint8_t *p;
    size_t n = mp_test_unhex(hex, &p);
    json_t *v = (json_t *)1;
    int rc = mp_test_parse(p, n, &v);
    if (rc)
        CHECK(v == NULL);
    json_decref(v);
    free(p);
    return rc;
}

/* mp_test_dec parses hex that must be valid, checks its prefixes, and
 * returns the value (a new reference) or NULL. */
static json_t *mp_test_dec(const char *hex)
{
    uint8_t *p;
    size_t n = mp_test_unhex(hex, &p);
    json_t *v = NULL;
    int rc = mp_test_parse(p, n, &v);
    if (rc)
        fprintf(stderr, "decode %s: rc %d\n", hex, rc);
    CHECK_EQ_INT(rc, 0);
    mp_test_prefixes(p, n);
    free(p);
    return v;
}

/* mp_test_rt encodes v, expects the hex (when given), decodes back to an
 * equal value, checks the prefixes, and drops v. */
static void mp_test_rt(json_t *v, const char *hex)
{
    buf_t b = {0};
    CHECK_EQ_INT(mp_emit(v, &b), 0);
    if (hex)
        CHECK_EQ_STR(mp_test_hex(b.p, b.len), hex);
    json_t *w = NULL;
    CHECK_EQ_INT(mp_test_parse(b.p, b.len, &w), 0);
    CHECK(json_equal(v, w));
    mp_test_prefixes(b.p, b.len);
    json_decref(w);
    json_decref(v);
    buf_deinit(&b);
}

/* mp_test_dec_json decodes hex and compares with the JSON text of the value
 * expected (parsed with jansson, so key order does not matter). */
static void mp_test_dec_json(const char *hex, const char *json)
{
    json_t *v = mp_test_dec(hex);
    json_t *want = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(want != NULL);
    if (!json_equal(v, want)) {
        char *got = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        fprintf(stderr, "decode %s: got %s, want %s\n", hex, got ? got : "(null)", json);
        free(got);
        CHECK(0);
    }
    json_decref(v);
    json_decref(want);
}

static void mp_test_scalars(void)
{
    mp_test_rt(json_null(), "c0");
    mp_test_rt(json_true(), "c3");
    mp_test_rt(json_false(), "c2");
    /* Every width boundary, each way; the smallest form is written. */
    static const struct { int64_t v; const char *hex; } ints[] = {
        {0, "00"}, {1, "01"}, {127, "7f"}, {128, "cc80"}, {255, "ccff"}, {256, "cd0100"},
        {65535, "cdffff"}, {65536, "ce00010000"}, {4294967295, "ceffffffff"},
        {4294967296, "cf0000000100000000"}, {INT64_MAX, "cf7fffffffffffffff"},
        {-1, "ff"}, {-32, "e0"}, {-33, "d0df"}, {-128, "d080"}, {-129, "d1ff7f"},
        {-32768, "d18000"}, {-32769, "d2ffff7fff"}, {INT32_MIN, "d280000000"},
        {(int64_t)INT32_MIN - 1, "d3ffffffff7fffffff"}, {INT64_MIN, "d38000000000000000"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        mp_test_rt(json_integer(ints[i].v), ints[i].hex);
    mp_test_rt(json_real(1.5), "cb3ff8000000000000");
    mp_test_rt(json_real(-0.1), "cbbfb999999999999a");
    mp_test_rt(json_real(1e300), NULL);

    /* Non-minimal forms other encoders may use decode the same. */
    mp_test_dec_json("cc05", "5");
    mp_test_dec_json("cd0005", "5");
    mp_test_dec_json("ce00000005", "5");
    mp_test_dec_json("cf0000000000000005", "5");
    mp_test_dec_json("d005", "5");
    mp_test_dec_json("d0ff", "-1");
    mp_test_dec_json("d1ffff", "-1");
    mp_test_dec_json("d2fffffffe", "-2");
    mp_test_dec_json("d3fffffffffffffffd", "-3");
    mp_test_dec_json("cf7fffffffffffffff", "9223372036854775807");
    CHECK_EQ_INT(mp_test_rc("cf8000000000000000"), ERR_PROTO);   /* beyond int64 */
    CHECK_EQ_INT(mp_test_rc("cfffffffffffffffff"), ERR_PROTO);
    /* float32 input (python-msgpack use_single_float) becomes a real. */
    mp_test_dec_json("ca3fc00000", "1.5");
    mp_test_dec_json("cabf800000", "-1.0");
    mp_test_dec_json("cb3ff8000000000000", "1.5");
    /* NaN and Infinity: null, as JSON.stringify writes them. */
    mp_test_dec_json("ca7fc00000", "null");
    mp_test_dec_json("cb7ff0000000000000", "null");
    mp_test_dec_json("cbfff0000000000000", "null");
}

/* mp_test_str_of returns a new string of n bytes ('a'..'z' repeating). */
static json_t *mp_test_str_of(size_t n)
{
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + i % 26);
    json_t *v = json_stringn(s, n);
    free(s);
    return v;
}

/* mp_test_rt_head round-trips v and checks the first bytes of its encoding. */
static void mp_test_rt_head(json_t *v, const char *head)
{
    buf_t b = {0};
    CHECK_EQ_INT(mp_emit(v, &b), 0);
    size_t hn = strlen(head) / 2;
    CHECK(b.len >= hn);
    CHECK_EQ_STR(mp_test_hex(b.p, b.len < hn ? b.len : hn), head);
    buf_deinit(&b);
    mp_test_rt(v, NULL);
}

static void mp_test_strings(void)
{
    mp_test_rt(json_string(""), "a0");
    mp_test_rt(json_string("abc"), "a3616263");
    mp_test_rt(json_string("\xc3\xa9\xf0\x9f\x98\x80"), "a6c3a9f09f9880");
    mp_test_rt(json_stringn("a\0b", 3), "a3610062");   /* NUL inside a value is kept */
    static const struct { size_t n; const char *head; } lens[] = {
        {31, "bf"}, {32, "d920"}, {255, "d9ff"}, {256, "da0100"}, {65535, "daffff"},
        {65536, "db00010000"}, {70000, "db00011170"},
    };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        mp_test_rt_head(mp_test_str_of(lens[i].n), lens[i].head);
    /* str8/16/32 headers on short strings decode too. */
    mp_test_dec_json("d903616263", "\"abc\"");
    mp_test_dec_json("da0003616263", "\"abc\"");
    mp_test_dec_json("db00000003616263", "\"abc\"");
    CHECK_EQ_INT(mp_test_rc("a1ff"), ERR_PROTO);          /* invalid UTF-8 */
    CHECK_EQ_INT(mp_test_rc("a2c0af"), ERR_PROTO);        /* overlong */
    CHECK_EQ_INT(mp_test_rc("a3eda080"), ERR_PROTO);      /* CESU surrogate (WTF-8) */
    CHECK_EQ_INT(mp_test_rc("a4f4908080"), ERR_PROTO);    /* above U+10FFFF */
    CHECK_EQ_INT(mp_test_rc("a2e282"), ERR_PROTO);        /* cut sequence */
}

static void mp_test_containers(void)
{
    mp_test_rt(json_array(), "90");
    mp_test_rt(json_object(), "80");
    mp_test_rt(json_pack("[i,s,[],{}]", 1, "b"), "9401a1629080");
    mp_test_rt(json_pack("{s:[i,s]}", "a", 1, "b"), "81a1619201a162");
    mp_test_rt(json_pack("{s:i,s:i,s:i}", "z", 1, "a", 2, "m", 3), "83a17a01a16102a16d03");
    static const struct { size_t n; const char *ahead, *mhead; } lens[] = {
        {15, "9f", "8f"}, {16, "dc0010", "de0010"}, {65535, "dcffff", "deffff"},
        {65536, "dd00010000", "df00010000"},
    };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        json_t *a = json_array(), *o = json_object();
        for (size_t j = 0; j < lens[i].n; j++) {
            char key[24];
            snprintf(key, sizeof key, "k%zu", j);
            json_array_append_new(a, json_integer((json_int_t)j));
            json_object_set_new(o, key, json_integer((json_int_t)j));
        }
        mp_test_rt_head(a, lens[i].ahead);
        mp_test_rt_head(o, lens[i].mhead);
    }
    /* array16/32 and map16/32 headers on small counts decode too. */
    mp_test_dec_json("dc000201c0", "[1,null]");
    mp_test_dec_json("dd0000000101", "[1]");
    mp_test_dec_json("de0001a16101", "{\"a\":1}");
    mp_test_dec_json("df00000001a16101", "{\"a\":1}");
}

/* The captured notepack.io packets (notes §3): decode, and where no
 * undefined is involved, re-encode to the very same bytes (jansson keeps
 * insertion order and we use the same smallest forms as notepack). */
static void mp_test_captures(void)
{
    static const struct { const char *hex, *json; bool same; } caps[] = {
        {"83a47479706500a46461746181a5746f6b656ea3616263a36e7370a12f",
         "{\"type\":0,\"data\":{\"token\":\"abc\"},\"nsp\":\"/\"}", true},
        {"83a47479706500a464617461d40000a36e7370a12f", "{\"type\":0,\"nsp\":\"/\"}", false},
        {"84a47479706502a46461746192a361736b07a2696400a36e7370a12f",
         "{\"type\":2,\"data\":[\"ask\",7],\"id\":0,\"nsp\":\"/\"}", true},
        {"82a47479706501a36e7370a12f", "{\"type\":1,\"nsp\":\"/\"}", true},
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        mp_test_dec_json(caps[i].hex, caps[i].json);
        if (!caps[i].same)
            continue;
        json_t *v = mp_test_dec(caps[i].hex);
        buf_t b = {0};
        CHECK_EQ_INT(mp_emit(v, &b), 0);
        CHECK_EQ_STR(mp_test_hex(b.p, b.len), caps[i].hex);
        buf_deinit(&b);
        json_decref(v);
    }
    /* Server CONNECT with pid:undefined inside data (notes §3). */
    mp_test_dec_json("83a47479706500a46461746182a3736964a3616263a3706964d40000a36e7370a12f",
                     "{\"type\":0,\"data\":{\"sid\":\"abc\"},\"nsp\":\"/\"}");
    /* The server EVENT with a Date and a Buffer: ["welcome","hi",1.5,nil,
     * {d:<Date 0>, b:<c4 03 "abc">}] (Buffer bytes made UTF-8 here). */
    mp_test_dec_json("83a47479706502a46461746195a777656c636f6d65a26869cb3ff8000000000000c0"
                     "82a164d7000000000000000000a162c403616263a36e7370a12f",
                     "{\"type\":2,\"data\":[\"welcome\",\"hi\",1.5,null,{\"d\":0,\"b\":\"abc\"}],"
                     "\"nsp\":\"/\"}");
}

static void mp_test_notepack_forms(void)
{
    /* undefined: absent in a map, null in an array, null at the top. */
    mp_test_dec_json("82a161d40000a16201", "{\"b\":1}");
    mp_test_dec_json("81a161d400ff", "{}");                     /* any data byte */
    mp_test_dec_json("82a16101a161d40000", "{}");               /* last write wins */
    mp_test_dec_json("9301d4000002", "[1,null,2]");
    mp_test_dec_json("d40000", "null");
    /* Date: fixext8 type 0 is int64 big-endian milliseconds. */
    mp_test_dec_json("d7000000018bcfe56800", "1700000000000");
    mp_test_dec_json("d700ffffffffffffffff", "-1");
    /* bin and ext type 0 (ArrayBuffer) are text when they are UTF-8. */
    mp_test_dec_json("c403616263", "\"abc\"");
    mp_test_dec_json("c50003616263", "\"abc\"");
    mp_test_dec_json("c60000000161", "\"a\"");
    mp_test_dec_json("c400", "\"\"");
    mp_test_dec_json("c70300616263", "\"abc\"");
    mp_test_dec_json("c8000300616263", "\"abc\"");
    mp_test_dec_json("c9000000030061c3a9", "\"a\xc3\xa9\"");
    mp_test_dec_json("c7010041", "\"A\"");           /* ext8 of 1 byte is not undefined */
    mp_test_dec_json("c70800" "3031323334353637", "\"01234567\""); /* nor is ext8 of 8 a Date */
    mp_test_dec_json("d5004142", "\"AB\"");
    mp_test_dec_json("d60041424344", "\"ABCD\"");
    mp_test_dec_json("d800" "30313233343536373031323334353637", "\"0123456701234567\"");
    CHECK_EQ_INT(mp_test_rc("c402fffe"), ERR_PROTO);         /* bin, not UTF-8 */
    CHECK_EQ_INT(mp_test_rc("c70200fffe"), ERR_PROTO);       /* ext 0, not UTF-8 */
    CHECK_EQ_INT(mp_test_rc("d40100"), ERR_PROTO);           /* ext type 1 */
    CHECK_EQ_INT(mp_test_rc("d6ff00000000"), ERR_PROTO);     /* msgpack timestamp */
    CHECK_EQ_INT(mp_test_rc("c7010500"), ERR_PROTO);
}

static void mp_test_rejects(void)
{
    CHECK_EQ_INT(mp_test_rc(""), ERR_TRUNCATED);
    CHECK_EQ_INT(mp_test_rc("c1"), ERR_PROTO);               /* never used */
    CHECK_EQ_INT(mp_test_rc("c0c0"), ERR_PROTO);             /* trailing bytes */
    CHECK_EQ_INT(mp_test_rc("91c0c0"), ERR_PROTO);
    CHECK_EQ_INT(mp_test_rc("81a16101ff"), ERR_PROTO);
    CHECK_EQ_INT(mp_test_rc("810102"), ERR_PROTO);           /* integer key */
    CHECK_EQ_INT(mp_test_rc("81c0a161"), ERR_PROTO);         /* nil key */
    CHECK_EQ_INT(mp_test_rc("81c4016101"), ERR_PROTO);       /* bin key */
    CHECK_EQ_INT(mp_test_rc("819001"), ERR_PROTO);           /* array key */
    CHECK_EQ_INT(mp_test_rc("81a2610001"), ERR_PROTO);       /* NUL inside a key */
    CHECK_EQ_INT(mp_test_rc("81a1ff01"), ERR_PROTO);         /* key not UTF-8 */
    /* Huge counts with nothing behind them: truncated, and nothing is
     * allocated up front (ASan would report a 100 GiB request). */
    CHECK_EQ_INT(mp_test_rc("ddffffffff"), ERR_TRUNCATED);
    CHECK_EQ_INT(mp_test_rc("dfffffffff"), ERR_TRUNCATED);
    CHECK_EQ_INT(mp_test_rc("dbffffffff"), ERR_TRUNCATED);
    CHECK_EQ_INT(mp_test_rc("c6ffffffff"), ERR_TRUNCATED);
    CHECK_EQ_INT(mp_test_rc("c9ffffffff00"), ERR_TRUNCATED);
    CHECK_EQ_INT(mp_test_rc("dcffff01"), ERR_TRUNCATED);
}

/* mp_test_nest returns depth nested fixarrays (or fixmaps keyed "k")
 * around nil, as a new buffer. */
static size_t mp_test_nest(int depth, bool map, uint8_t **out)
{
    uint8_t *p = malloc((size_t)depth * 3 + 1);
    size_t n = 0;
    for (int i = 0; i < depth; i++) {
        p[n++] = map ? 0x81 : 0x91;
        if (map) {
            p[n++] = 0xa1;
            p[n++] = 'k';
        }
    }
    p[n++] = 0xc0;
    *out = p;
    return n;
}

static void mp_test_depth(void)
{
    for (int map = 0; map <= 1; map++) {
        static const struct { int depth, rc; } cases[] = {{1, 0}, {33, 0}, {64, 0}, {65, ERR_PROTO},
                                                          {1000, ERR_PROTO}};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            uint8_t *p;
            size_t n = mp_test_nest(cases[i].depth, map, &p);
            json_t *v = NULL;
            CHECK_EQ_INT(mp_test_parse(p, n, &v), cases[i].rc);
            if (cases[i].rc == 0) {
                mp_test_prefixes(p, n);
                mp_test_rt(v, mp_test_hex(p, n));   /* and the encoder writes it back */
            }
            free(p);
        }
    }
}

/* mp_test_rand is xorshift64*; deterministic for a printed seed. */
static uint64_t mp_test_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* mp_test_random feeds random bytes and mutated valid encodings. Whatever
 * comes out must be a known code, and a decoded value must survive an
 * encode/decode round trip unchanged. */
static void mp_test_random(uint64_t seed)
{
    static const char *const seeds[] = {
        "83a47479706500a46461746181a5746f6b656ea3616263a36e7370a12f",
        "84a47479706502a46461746192a361736b07a2696400a36e7370a12f",
        ("83a47479706502a46461746195a777656c636f6d65a26869cb3ff8000000000000c0"
         "82a164d7000000000000000000a162c403616263a36e7370a12f"),   /* one entry */
        "9301d4000002", "ca3fc00000", "dc000201c0", "de0001a16101", "c70300616263",
    };
    uint64_t s = seed ? seed : 1;
    int decoded = 0;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t buf[96];
        size_t n;
        if (iter % 2) {
            n = mp_test_rand(&s) % sizeof buf;
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)mp_test_rand(&s);
        } else {
            uint8_t *p;
            n = mp_test_unhex(seeds[mp_test_rand(&s) % (sizeof seeds / sizeof seeds[0])], &p);
            memcpy(buf, p, n);
            free(p);
            for (int flips = 1 + (int)(mp_test_rand(&s) % 3); flips > 0; flips--)
                buf[mp_test_rand(&s) % n] = (uint8_t)mp_test_rand(&s);
            n = mp_test_rand(&s) % 4 == 0 ? mp_test_rand(&s) % (n + 1) : n;
        }
        json_t *v = NULL;
        int rc = mp_test_parse(buf, n, &v);
        if (rc != 0 && rc != ERR_PROTO && rc != ERR_TRUNCATED) {
            fprintf(stderr, "random %d: %s gave %d\n", iter, mp_test_hex(buf, n), rc);
            CHECK(0);
        }
        if (rc == 0) {
            decoded++;
            buf_t b = {0};
            json_t *w = NULL;
            CHECK_EQ_INT(mp_emit(v, &b), 0);
            CHECK_EQ_INT(mp_parse(b.p, b.len, &w), 0);
            CHECK(json_equal(v, w));
            json_decref(w);
            buf_deinit(&b);
        }
        json_decref(v);
    }
    fprintf(stderr, "mp_test: %d of 20000 random inputs decoded\n", decoded);
    CHECK(decoded > 0);
}

int main(void)
{
    uint64_t seed = check_seed("mp_test");
    mp_test_scalars();
    mp_test_strings();
    mp_test_containers();
    mp_test_captures();
    mp_test_notepack_forms();
    mp_test_rejects();
    mp_test_depth();
    mp_test_random(seed);
    return check_done("mp_test");
}
