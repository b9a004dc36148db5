/* json_test.c - unit tests for wire/json.c: parsing limits (escapes, UTF-8,
 * depth, integer range, trailing bytes), compact emission, round trips, and
 * the field helpers. Uses the public API only, so it links against
 * wire/json.c. */
#include "../../../wire/json.h"

#include "../../../src/err.h"
#include "../../support/check.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* json_test_rc parses text and returns the result code, dropping the value. */
static int json_test_rc(const uint8_t *p, size_t n)
{
    json_t *v = (json_t *)1;
    int rc = json_parse(p, n, &v);
    if (rc)
        CHECK(v == NULL);
    json_decref(v);
    return rc;
}

/* json_test_emit returns the compact text of v in a static buffer. */
static const char *json_test_emit(const json_t *v)
{
    static char text[4096];
    buf_t b = {0};
    text[0] = '\0';
    if (json_emit(v, &b) == 0 && b.len < sizeof text) {
        memcpy(text, b.p, b.len);
        text[b.len] = '\0';
    }
    buf_deinit(&b);
    return text;
}

static void json_test_escapes(void)
{
    json_t *v = NULL;
    /* Python's json.dumps(ensure_ascii) form of "é😀" (notes §2). */
    CHECK_EQ_INT(json_parse(S("\"\\u00e9\\ud83d\\ude00\""), &v), 0);
    CHECK_EQ_STR(json_string_value(v), "\xc3\xa9\xf0\x9f\x98\x80");
    CHECK_EQ_INT(json_string_length(v), 6);
    json_decref(v);
    /* "\u0000" is legal JSON; the length tells the NUL apart from the end. */
    CHECK_EQ_INT(json_parse(S("\"a\\u0000b\""), &v), 0);
    CHECK_EQ_INT(json_string_length(v), 3);
    json_decref(v);

    CHECK_EQ_INT(json_test_rc(S("\"\\ud83d\"")), ERR_PROTO);        /* lone high */
    CHECK_EQ_INT(json_test_rc(S("\"\\ude00\"")), ERR_PROTO);        /* lone low */
    CHECK_EQ_INT(json_test_rc(S("\"\\ud83dx\"")), ERR_PROTO);       /* high + text */
    CHECK_EQ_INT(json_test_rc(S("\"\\ud83d\\u0041\"")), ERR_PROTO); /* high + non-low */
    CHECK_EQ_INT(json_test_rc(S("\"\\u00e\"")), ERR_PROTO);         /* short escape */
    CHECK_EQ_INT(json_test_rc(S("\"\\x41\"")), ERR_PROTO);          /* unknown escape */
}

static void json_test_utf8(void)
{
    CHECK_EQ_INT(json_test_rc(S("\"\xc3\xa9\xf0\x9f\x98\x80\"")), 0);  /* raw UTF-8 ok */
    CHECK_EQ_INT(json_test_rc(S("\"\xff\"")), ERR_PROTO);              /* never valid */
    CHECK_EQ_INT(json_test_rc(S("\"\xc3\"")), ERR_PROTO);              /* cut sequence */
    CHECK_EQ_INT(json_test_rc(S("\"\xc0\xaf\"")), ERR_PROTO);          /* overlong '/' */
    CHECK_EQ_INT(json_test_rc(S("\"\xed\xa0\x80\"")), ERR_PROTO);      /* encoded surrogate */
    CHECK_EQ_INT(json_test_rc(S("\"\xf4\x90\x80\x80\"")), ERR_PROTO);  /* above U+10FFFF */
    CHECK_EQ_INT(json_test_rc(S("{\"\xff\":1}")), ERR_PROTO);          /* in a key */
    CHECK_EQ_INT(json_test_rc(S("\"a\x01\"")), ERR_PROTO);             /* raw control byte */
}

static void json_test_shape(void)
{
    CHECK_EQ_INT(json_test_rc(S("{\"a\":1}")), 0);
    CHECK_EQ_INT(json_test_rc(S(" [1,2] \r\n\t")), 0);  /* trailing whitespace ok */
    CHECK_EQ_INT(json_test_rc(S("\"bare string\"")), 0); /* any value at top level */
    CHECK_EQ_INT(json_test_rc(S("42")), 0);
    CHECK_EQ_INT(json_test_rc(S("null")), 0);
    CHECK_EQ_INT(json_test_rc(S("{\"a\":1}x")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("[1] [2]")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("{\"a\":1}\0")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("   ")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("[1,]")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("{'a':1}")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("[1")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("NaN")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("{\"a\\u0000\":1}")), ERR_PROTO); /* NUL in a key */

    /* Duplicate keys keep the last value, as JSON.parse does. */
    json_t *v;
    int64_t i = 0;
    CHECK_EQ_INT(json_parse(S("{\"a\":1,\"a\":2}"), &v), 0);
    CHECK(json_get_int(v, "a", &i));
    CHECK_EQ_INT(i, 2);
    json_decref(v);
}

static void json_test_numbers(void)
{
    json_t *v;
    CHECK_EQ_INT(json_parse(S("[9223372036854775807,-9223372036854775808,1.5,-0,1e2]"), &v), 0);
    CHECK_EQ_INT(json_integer_value(json_array_get(v, 0)), INT64_MAX);
    CHECK_EQ_INT(json_integer_value(json_array_get(v, 1)), INT64_MIN);
    CHECK(json_is_real(json_array_get(v, 2)));
    CHECK(json_is_integer(json_array_get(v, 3)));
    CHECK(json_is_real(json_array_get(v, 4)));
    json_decref(v);
    CHECK_EQ_INT(json_test_rc(S("9223372036854775808")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("-9223372036854775809")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("[123456789012345678901234567890]")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("1e400")), ERR_PROTO);
    CHECK_EQ_INT(json_test_rc(S("01")), ERR_PROTO);
}

/* json_test_nest parses depth nested arrays or objects around a string that
 * holds brackets and an escaped quote, which the depth scan must skip. */
static int json_test_nest(int depth, char open, char close)
{
    char text[1024];
    size_t n = 0;
    for (int i = 0; i < depth; i++) {
        text[n++] = open;
        if (open == '{') {
            memcpy(text + n, "\"k\":", 4);
            n += 4;
        }
    }
    static const char mid[] = "\"[[{\\\"[\"";    /* "[[{\"[" */
    memcpy(text + n, mid, sizeof mid - 1);
    n += sizeof mid - 1;
    for (int i = 0; i < depth; i++)
        text[n++] = close;
    return json_test_rc((const uint8_t *)text, n);
}

static void json_test_depth(void)
{
    CHECK_EQ_INT(json_test_nest(1, '[', ']'), 0);
    CHECK_EQ_INT(json_test_nest(64, '[', ']'), 0);
    CHECK_EQ_INT(json_test_nest(65, '[', ']'), ERR_PROTO);
    CHECK_EQ_INT(json_test_nest(64, '{', '}'), 0);
    CHECK_EQ_INT(json_test_nest(65, '{', '}'), ERR_PROTO);
    CHECK_EQ_INT(json_test_nest(200, '[', ']'), ERR_PROTO);
    /* Brackets inside strings, also after an escaped quote, do not count. */
    char text[160] = "[\"\\\"";
    size_t n = strlen(text);
    memset(text + n, '[', 100);
    memcpy(text + n + 100, "\"]", 3);
    CHECK_EQ_INT(json_test_rc((const uint8_t *)text, strlen(text)), 0);
}

static void json_test_emit_compact(void)
{
    json_t *v;
    CHECK_EQ_INT(json_parse(S("{ \"url\" : \"http://x/y\" , \"t\" : \"\\u00e9\\ud83d\\ude00\","
                              " \"a\" : [ 1 , true , null , -2 ] }"), &v), 0);
    /* Compact, keys in insertion order, raw UTF-8, "/" not escaped. */
    CHECK_EQ_STR(json_test_emit(v),
                 "{\"url\":\"http://x/y\",\"t\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"a\":[1,true,null,-2]}");
    json_decref(v);

    /* Quotes, backslashes and control bytes are escaped; bare scalars work. */
    v = json_string("q\"b\\n\n\x01");
    CHECK_EQ_STR(json_test_emit(v), "\"q\\\"b\\\\n\\n\\u0001\"");
    json_decref(v);
    v = json_integer(INT64_MIN);
    CHECK_EQ_STR(json_test_emit(v), "-9223372036854775808");
    json_decref(v);

    /* A failed emit would truncate; a good one appends after existing bytes. */
    buf_t b = {0};
    buf_append_str(&b, "42");
    v = json_array();
    CHECK_EQ_INT(json_emit(v, &b), 0);
    CHECK_EQ_INT(b.len, 4);
    CHECK_MEM(b.p, "42[]", 4);
    json_decref(v);
    buf_deinit(&b);
}

static void json_test_round_trips(void)
{
    static const char *const texts[] = {
        "{}", "[]", "null", "true", "false", "0", "-1", "9223372036854775807", "1.5", "-0.25",
        "\"\"", "\"h\xc3\xa9llo/\xf0\x9f\x98\x80\"", "\"a\\u0000b\"",
        "[\"hello\",{\"ok\":true,\"echo\":\"world\"},[1,[2,[3]]]]",
        "{\"message\":\"m\",\"data\":{\"code\":\"UNAUTHORIZED\"}}",
        "{\"z\":1,\"a\":2,\"m\":{\"y\":null,\"b\":[]}}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *v, *w;
        size_t n = strlen(texts[i]);
        CHECK_EQ_INT(json_parse((const uint8_t *)texts[i], n, &v), 0);
        CHECK_EQ_STR(json_test_emit(v), texts[i]);   /* canonical text in, same text out */
        buf_t b = {0};
        CHECK_EQ_INT(json_emit(v, &b), 0);
        CHECK_EQ_INT(json_parse(b.p, b.len, &w), 0);
        CHECK(json_equal(v, w));
        json_decref(v);
        json_decref(w);
        buf_deinit(&b);
    }
    /* Reals: 17 digits read back to the same double. */
    json_t *v = json_real(0.1), *w;
    const char *t = json_test_emit(v);
    CHECK_EQ_INT(json_parse((const uint8_t *)t, strlen(t), &w), 0);
    CHECK(json_is_real(w) && json_real_value(w) == 0.1);
    json_decref(v);
    json_decref(w);
}

static void json_test_fields(void)
{
    json_t *o;
    CHECK_EQ_INT(json_parse(S("{\"s\":\"abc\",\"i\":7,\"r\":7.0,\"n\":null,\"b\":false,"
                              "\"z\":\"a\\u0000b\",\"neg\":-3,\"o\":{}}"), &o), 0);
    size_t len = 99;
    CHECK_EQ_STR(json_get_str(o, "s", &len), "abc");
    CHECK_EQ_INT(len, 3);
    CHECK(json_get_str(o, "z", &len) != NULL);
    CHECK_EQ_INT(len, 3);
    CHECK(json_get_str(o, "s", NULL) != NULL);
    len = 99;
    CHECK(json_get_str(o, "i", &len) == NULL);   /* wrong type */
    CHECK_EQ_INT(len, 0);
    CHECK(json_get_str(o, "n", &len) == NULL);   /* null is absent */
    CHECK(json_get_str(o, "missing", &len) == NULL);

    int64_t i = 5;
    CHECK(json_get_int(o, "i", &i));
    CHECK_EQ_INT(i, 7);
    CHECK(json_get_int(o, "neg", &i));
    CHECK_EQ_INT(i, -3);
    i = 5;
    CHECK(!json_get_int(o, "r", &i));            /* a real is not an integer */
    CHECK(!json_get_int(o, "s", &i));
    CHECK(!json_get_int(o, "n", &i));
    CHECK(!json_get_int(o, "missing", &i));
    CHECK_EQ_INT(i, 5);                          /* untouched on failure */

    CHECK(json_has(o, "s"));
    CHECK(json_has(o, "b"));                     /* false is present */
    CHECK(json_has(o, "o"));
    CHECK(!json_has(o, "n"));                    /* null counts as absent */
    CHECK(!json_has(o, "missing"));

    /* Non-objects and NULL have no fields. */
    json_t *a = json_array();
    CHECK(!json_has(a, "s"));
    CHECK(json_get_str(a, "s", NULL) == NULL);
    CHECK(!json_has(NULL, "s"));
    CHECK(!json_get_int(NULL, "i", &i));
    json_decref(a);
    json_decref(o);
}

static void json_test_ids(void)
{
    char id[200];
    memset(id, 'a', sizeof id);
    CHECK(!json_id_valid(id, 0));
    CHECK(json_id_valid(id, 1));
    CHECK(json_id_valid(id, 128));
    CHECK(!json_id_valid(id, 129));
    CHECK(!json_id_valid("", 0));
    CHECK(!json_id_valid(NULL, 0));
    const char *ok = "AZaz09._:@-";
    CHECK(json_id_valid(ok, strlen(ok)));
    CHECK(json_id_valid("user:42@example.com", 19));
    static const char bad[] = " /\\\"'#$%&*+,;<=>?[]^`{|}~!()\x01\x7f\x80\xc3\xa9";
    for (size_t i = 0; i < sizeof bad - 1; i++) {
        char s[3] = {'a', bad[i], 'b'};
        CHECK(!json_id_valid(s, 3));
    }
    CHECK(!json_id_valid("a\0b", 3));            /* NUL inside the length */
    CHECK(json_id_valid("ab\0", 2));             /* the length rules, not NUL */
}

int main(void)
{
    json_test_escapes();
    json_test_utf8();
    json_test_shape();
    json_test_numbers();
    json_test_depth();
    json_test_emit_compact();
    json_test_round_trips();
    json_test_fields();
    json_test_ids();
    return check_done("json_test");
}
