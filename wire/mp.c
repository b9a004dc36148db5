/* mp.c - MessagePack <-> jansson values (see mp.h).
 *
 * Owns: nothing beyond the values it returns. Runs on whichever shard thread
 * decodes or encodes a packet; pure, so threads may call it concurrently.
 *
 * Decoding is a small recursive reader of our own; encoding goes through
 * msgpack-c's msgpack_packer. msgpack-c's unpacker does not fit mp.h, as
 * measured against Debian's libmsgpackc 4.0.0 on 2026-11-22:
 *  1. Its nesting stack is compiled in at 32 (MSGPACK_EMBED_STACK_SIZE):
 *     depth 33 fails with MSGPACK_UNPACK_NOMEM_ERROR, mp.h promises 64.
 *  2. It reports `d4 00 xx` (JS undefined) and `c7 01 00 xx` (a one-byte
 *     ArrayBuffer) as the same EXT object, and likewise `d7 00` (Date) and
 *     `c7 08 00`; mp.h gives them different meanings.
 *  3. It allocates count * sizeof(msgpack_object) for an array header before
 *     reading any element: the 5 bytes `dd 00 10 00 00` cost a 32 MiB malloc,
 *     and `dd ff ff ff ff` asks for 128 GiB. A peer must not get that.
 * The reader below checks every length against the bytes left before it
 * builds anything, so memory stays proportional to the input.
 *
 * Invariants of a decoded value: at most MP__DEPTH_MAX containers deep;
 * strings and keys valid UTF-8 (keys without NUL); integers fit int64; reals
 * finite (NaN and Infinity become null, as JSON.stringify writes them).
 *
 * Background: notes/socketio-wire.md §3 (notepack.io and python-msgpack
 * encodings), protocol.md §2.
 */
#include "mp.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#include "../src/err.h"

#define MP__DEPTH_MAX 64   /* containers inside containers; mp.h promises 64 */

typedef struct {
    const uint8_t *p;      /* input start */
    size_t n;              /* input length in bytes */
    size_t off;            /* next byte to read */
} mp__rd_t;

/* mp__take returns a pointer to the next k bytes and advances past them, or
 * NULL when the input ends first (the caller reports ERR_TRUNCATED). */
static const uint8_t *mp__take(mp__rd_t *r, size_t k)
{
    if (r->n - r->off < k)
        return NULL;
    const uint8_t *q = r->p + r->off;
    r->off += k;
    return q;
}

static uint64_t mp__be(const uint8_t *q, size_t k)
{
    uint64_t v = 0;
    for (size_t i = 0; i < k; i++)
        v = (v << 8) | q[i];
    return v;
}

/* mp__utf8_valid: well-formed UTF-8 per RFC 3629 (no overlong forms, no
 * encoded surrogates, nothing above U+10FFFF). jansson's own check is not
 * exported, and json_stringn's NULL would not tell bad text from no memory. */
static bool mp__utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* mp__str reads len bytes of text (str, bin or ext type 0) into a string. */
static int mp__str(mp__rd_t *r, size_t len, json_t **out)
{
    const uint8_t *q = mp__take(r, len);
    if (!q)
        return ERR_TRUNCATED;
    if (!mp__utf8_valid(q, len))
        return ERR_PROTO;
    *out = json_stringn_nocheck((const char *)q, len);
    return *out ? 0 : -ENOMEM;
}

static int mp__value(mp__rd_t *r, int depth, json_t **out);

/* mp__array reads count elements; undefined elements become null. */
static int mp__array(mp__rd_t *r, size_t count, int depth, json_t **out)
{
    if (depth >= MP__DEPTH_MAX)
        return ERR_PROTO;
    if (count > r->n - r->off)      /* each element takes at least one byte */
        return ERR_TRUNCATED;
    json_t *a = json_array();
    if (!a)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        json_t *v;
        int rc = mp__value(r, depth + 1, &v);
        if (rc == 0 && !v && !(v = json_null()))
            rc = -ENOMEM;
        if (rc == 0 && json_array_append_new(a, v) != 0)
            rc = -ENOMEM;
        if (rc) {
            json_decref(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

/* mp__key reads a map key, which must be a str (python-msgpack and JS object
 * keys are strings); NUL is refused because keys are C strings downstream. */
static int mp__key(mp__rd_t *r, const char **key, size_t *len)
{
    const uint8_t *q = mp__take(r, 1);
    if (!q)
        return ERR_TRUNCATED;
    size_t w = 0, n;
    if ((*q & 0xe0) == 0xa0) n = *q & 0x1f;
    else if (*q == 0xd9) w = 1;
    else if (*q == 0xda) w = 2;
    else if (*q == 0xdb) w = 4;
    else return ERR_PROTO;
    if (w) {
        const uint8_t *lq = mp__take(r, w);
        if (!lq)
            return ERR_TRUNCATED;
        n = (size_t)mp__be(lq, w);
    }
    const uint8_t *s = mp__take(r, n);
    if (!s)
        return ERR_TRUNCATED;
    if (!mp__utf8_valid(s, n) || memchr(s, 0, n))
        return ERR_PROTO;
    *key = (const char *)s;
    *len = n;
    return 0;
}

/* mp__map reads count entries. An undefined value removes the key, so
 * {a:1, a:undefined} ends as notepack's decoder leaves it: without a. */
static int mp__map(mp__rd_t *r, size_t count, int depth, json_t **out)
{
    if (depth >= MP__DEPTH_MAX)
        return ERR_PROTO;
    if (count > (r->n - r->off) / 2) /* each entry takes at least two bytes */
        return ERR_TRUNCATED;
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        const char *key;
        size_t klen;
        json_t *v = NULL;
        int rc = mp__key(r, &key, &klen);
        if (rc == 0)
            rc = mp__value(r, depth + 1, &v);
        if (rc == 0 && v && json_object_setn_new_nocheck(o, key, klen, v) != 0)
            rc = -ENOMEM;
        if (rc == 0 && !v)
            json_object_deln(o, key, klen);   /* missing key: nothing to do */
        if (rc) {
            json_decref(o);
            return rc;
        }
    }
    *out = o;
    return 0;
}

/* mp__ext reads the payload of an ext value of the given marker byte. Only
 * type 0 exists for notepack: fixext1 is undefined (*out stays NULL), fixext8
 * a Date in int64 ms, and every other form an ArrayBuffer (read as text). */
static int mp__ext(mp__rd_t *r, uint8_t marker, size_t len, json_t **out)
{
    const uint8_t *tq = mp__take(r, 1);
    if (!tq)
        return ERR_TRUNCATED;
    if (*tq != 0)
        return ERR_PROTO;   /* msgpack timestamps (-1) and app types: not ours */
    if (marker == 0xd4 || marker == 0xd7) {
        const uint8_t *q = mp__take(r, len);
        if (!q)
            return ERR_TRUNCATED;
        if (marker == 0xd4)
            return 0;
        *out = json_integer((json_int_t)(int64_t)mp__be(q, 8));
        return *out ? 0 : -ENOMEM;
    }
    return mp__str(r, len, out);
}

/* mp__number reads the fixed-width numbers, markers ca..d3. */
static int mp__number(mp__rd_t *r, uint8_t marker, json_t **out)
{
    static const uint8_t width[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8}; /* ca..d3 */
    size_t k = width[marker - 0xca];
    const uint8_t *q = mp__take(r, k);
    if (!q)
        return ERR_TRUNCATED;
    uint64_t u = mp__be(q, k);
    double d;
    if (marker == 0xca) {
        float f;
        uint32_t u32 = (uint32_t)u;
        memcpy(&f, &u32, sizeof f);
        d = f;
    } else if (marker == 0xcb) {
        memcpy(&d, &u, sizeof d);
    } else if (marker <= 0xcf) {                /* uint8..uint64 */
        if (u > INT64_MAX)
            return ERR_PROTO;
        *out = json_integer((json_int_t)u);
        return *out ? 0 : -ENOMEM;
    } else {                                    /* int8..int64: sign-extend */
        int64_t s = k == 1 ? (int8_t)u : k == 2 ? (int16_t)u : k == 4 ? (int32_t)u : (int64_t)u;
        *out = json_integer((json_int_t)s);
        return *out ? 0 : -ENOMEM;
    }
    /* JSON has no NaN or Infinity; JSON.stringify writes them as null. */
    *out = isfinite(d) ? json_real(d) : json_null();
    return *out ? 0 : -ENOMEM;
}

/* mp__value reads one value. On success *out is a new reference, or NULL for
 * JS undefined (fixext1 type 0), which the container decides how to drop. */
static int mp__value(mp__rd_t *r, int depth, json_t **out)
{
    *out = NULL;
    const uint8_t *mq = mp__take(r, 1);
    if (!mq)
        return ERR_TRUNCATED;
    uint8_t m = *mq;
    json_t *v;
    if (m <= 0x7f || m >= 0xe0) {               /* positive / negative fixint */
        v = json_integer(m <= 0x7f ? (json_int_t)m : (json_int_t)(int8_t)m);
    } else if (m <= 0x8f) {
        return mp__map(r, m & 0x0f, depth, out);
    } else if (m <= 0x9f) {
        return mp__array(r, m & 0x0f, depth, out);
    } else if (m <= 0xbf) {
        return mp__str(r, m & 0x1f, out);
    } else if (m == 0xc0) {
        v = json_null();
    } else if (m == 0xc2 || m == 0xc3) {
        v = json_boolean(m == 0xc3);
    } else if (m >= 0xca && m <= 0xd3) {
        return mp__number(r, m, out);
    } else if (m >= 0xd4 && m <= 0xd8) {        /* fixext 1, 2, 4, 8, 16 */
        return mp__ext(r, m, (size_t)1 << (m - 0xd4), out);
    } else {
        /* The rest carry a 1-, 2- or 4-byte length: c4-c6 bin, c7-c9 ext,
         * d9-db str, dc-dd array, de-df map. c1 is never used. */
        size_t w;
        switch (m) {
        case 0xc4: case 0xc7: case 0xd9: w = 1; break;
        case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde: w = 2; break;
        case 0xc6: case 0xc9: case 0xdb: case 0xdd: case 0xdf: w = 4; break;
        default: return ERR_PROTO;
        }
        const uint8_t *lq = mp__take(r, w);
        if (!lq)
            return ERR_TRUNCATED;
        size_t len = (size_t)mp__be(lq, w);
        if (m >= 0xc7 && m <= 0xc9)
            return mp__ext(r, m, len, out);
        if (m == 0xdc || m == 0xdd)
            return mp__array(r, len, depth, out);
        if (m == 0xde || m == 0xdf)
            return mp__map(r, len, depth, out);
        return mp__str(r, len, out);            /* bin or str */
    }
    *out = v;
    return v ? 0 : -ENOMEM;
}

int mp_parse(const uint8_t *p, size_t n, json_t **out)
{
    *out = NULL;
    mp__rd_t r = {.p = p, .n = n, .off = 0};
    json_t *v;
    int rc = mp__value(&r, 0, &v);
    if (rc)
        return rc;
    if (r.off != n) {
        json_decref(v);   /* NULL-safe; notepack refuses trailing bytes too */
        return ERR_PROTO;
    }
    /* A lone undefined has no container to drop it from; it reads as null,
     * which protocol.md §2 treats as absent too. */
    if (!v && !(v = json_null()))
        return -ENOMEM;
    *out = v;
    return 0;
}

/* mp__on_write is msgpack_packer's write callback: append to the buf_t. */
static int mp__on_write(void *data, const char *p, size_t n)
{
    return buf_append((buf_t *)data, p, n);
}

/* mp__pack writes v; returns the first failing write's -ENOMEM. Recursion
 * follows v's nesting, which our decoders cap at 64. */
static int mp__pack(msgpack_packer *pk, const json_t *v)
{
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_NULL: return msgpack_pack_nil(pk);
    case JSON_TRUE: return msgpack_pack_true(pk);
    case JSON_FALSE: return msgpack_pack_false(pk);
    case JSON_INTEGER: return msgpack_pack_int64(pk, (int64_t)json_integer_value(v));
    case JSON_REAL: return msgpack_pack_double(pk, json_real_value(v)); /* notepack: cb */
    case JSON_STRING: {
        size_t n = json_string_length(v);
        rc = msgpack_pack_str(pk, n);
        return rc ? rc : msgpack_pack_str_body(pk, json_string_value(v), n);
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        rc = msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, e) {
            if (rc)
                break;
            rc = mp__pack(pk, e);
        }
        return rc;
    }
    case JSON_OBJECT: {
        const char *k;
        size_t klen;
        json_t *e;
        rc = msgpack_pack_map(pk, json_object_size(v));
        /* jansson's iteration macros take a non-const object but only read. */
        json_object_keylen_foreach((json_t *)v, k, klen, e) {
            if (rc)
                break;
            rc = msgpack_pack_str(pk, klen);
            if (!rc)
                rc = msgpack_pack_str_body(pk, k, klen);
            if (!rc)
                rc = mp__pack(pk, e);
        }
        return rc;
    }
    }
    return 0;
}

int mp_emit(const json_t *v, buf_t *out)
{
    size_t len0 = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, mp__on_write);
    int rc = mp__pack(&pk, v);
    if (rc) {
        out->len = len0;  /* callers keep whole packets only */
        return -ENOMEM;
    }
    return 0;
}
