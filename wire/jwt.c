/* jwt.c - HS256 JSON Web Tokens (see jwt.h; protocol.md §3).
 *
 * Runs on the shard that handles a CONNECT or an HTTP API request; the
 * persistence thread never calls it. No state: the caller passes the secret
 * and the time.
 *
 * Rules (fail closed: anything not understood is ERR_BAD_TOKEN):
 *  - Exactly three base64url segments without padding, in canonical form
 *    (unused low bits zero), so one token has exactly one spelling.
 *  - The header is a JSON object whose "alg" is exactly "HS256". "typ", when
 *    present, is "JWT" in any case; a "crit" header is refused because we
 *    implement no extension (RFC 7515 §4.1.11).
 *  - The signature is checked, in constant time, before the claims are
 *    parsed: unauthenticated JSON never reaches the claim logic.
 *  - Claims: "sub" a user id (1-128 of [A-Za-z0-9._:@-]), "exp" an integer,
 *    "name" an optional string of at most JWT_NAME_MAX bytes, "role" one of
 *    user/admin/service. A JSON null counts as absent (protocol.md §2).
 *    Expiry is checked last, so ERR_EXPIRED means "otherwise valid".
 *  - An empty secret verifies nothing: anyone could sign with it.
 */
#include "jwt.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../src/err.h"

#define JWT__SIG_LEN 32   /* HMAC-SHA256 */
/* Decoded size bound for any segment of a token of JWT_MAX_LEN bytes. */
#define JWT__SEG_MAX (JWT_MAX_LEN / 4 * 3 + 3)

static const char jwt__alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* jwt__b64url_len is the unpadded encoded length of n bytes. */
static size_t jwt__b64url_len(size_t n) { return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0); }

/* jwt__b64url_encode writes jwt__b64url_len(n) characters (no NUL). */
static void jwt__b64url_encode(const uint8_t *p, size_t n, char *out)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *out++ = jwt__alphabet[v >> 18];
        *out++ = jwt__alphabet[(v >> 12) & 63];
        *out++ = jwt__alphabet[(v >> 6) & 63];
        *out++ = jwt__alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *out++ = jwt__alphabet[v >> 18];
        *out++ = jwt__alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *out++ = jwt__alphabet[v >> 18];
        *out++ = jwt__alphabet[(v >> 12) & 63];
        *out++ = jwt__alphabet[(v >> 6) & 63];
    }
}

static int jwt__b64url_val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;   /* '=' too: JWS forbids padding */
}

/* jwt__b64url_decode decodes s[0..n) into out (cap bytes). Returns the
 * decoded length, or -1 for a bad character, an impossible length or
 * non-zero unused bits. */
static long jwt__b64url_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 == 1 || n / 4 * 3 + 2 > cap)
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int v = jwt__b64url_val((uint8_t)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[w++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc == 0 ? (long)w : -1;
}

/* jwt__hmac computes HMAC-SHA256 of data under the secret. Returns false
 * only if OpenSSL fails (out of memory). */
static bool jwt__hmac(const uint8_t *secret, size_t secret_len, const void *data, size_t n,
                      uint8_t md[JWT__SIG_LEN])
{
    static const uint8_t jwt__empty[1];
    unsigned mdlen = 0;
    if (secret_len > INT_MAX)
        return false;
    /* OpenSSL reads a NULL key as "reuse the previous key"; never pass one. */
    const uint8_t *key = secret_len ? secret : jwt__empty;
    if (!HMAC(EVP_sha256(), key, (int)secret_len, data, n, md, &mdlen))
        return false;
    return mdlen == JWT__SIG_LEN;
}

/* jwt__valid_id: 1-JWT_SUB_MAX bytes of [A-Za-z0-9._:@-] (protocol.md §4). */
static bool jwt__valid_id(const char *s, size_t n)
{
    if (n == 0 || n > JWT_SUB_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

const char *jwt_role_name(int role)
{
    switch (role) {
    case JWT_ROLE_ADMIN: return "admin";
    case JWT_ROLE_SERVICE: return "service";
    default: return "user";   /* the least privilege for anything unknown */
    }
}

/* jwt__json_object parses a decoded segment as a JSON object. Duplicate keys
 * are refused: two "alg" or two "sub" values would let two readers of the
 * same token disagree. The caller json_decref()s the result. */
static json_t *jwt__json_object(const uint8_t *p, size_t n)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &err);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* jwt__check_header accepts {"alg":"HS256"} with an optional "typ":"JWT". */
static int jwt__check_header(const uint8_t *p, size_t n)
{
    json_t *h = jwt__json_object(p, n);
    if (!h)
        return ERR_BAD_TOKEN;
    int rc = ERR_BAD_TOKEN;
    json_t *alg = json_object_get(h, "alg");
    json_t *typ = json_object_get(h, "typ");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0 ||
        json_string_length(alg) != 5)
        goto out;
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0 ||
                json_string_length(typ) != 3))
        goto out;
    if (json_object_get(h, "crit"))
        goto out;
    rc = 0;
out:
    json_decref(h);
    return rc;
}

/* jwt__optional_str returns the string member key, NULL when it is absent
 * or null, and sets *bad when it is anything else. */
static json_t *jwt__optional_str(json_t *o, const char *key, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v))
        *bad = true;
    return json_is_string(v) ? v : NULL;
}

/* jwt__claims fills c from the (authenticated) claims segment. */
static int jwt__claims(const uint8_t *p, size_t n, jwt_claims_t *c)
{
    json_t *o = jwt__json_object(p, n);
    if (!o)
        return ERR_BAD_TOKEN;
    int rc = ERR_BAD_TOKEN;
    bool bad = false;
    json_t *sub = json_object_get(o, "sub");
    json_t *exp = json_object_get(o, "exp");
    json_t *name = jwt__optional_str(o, "name", &bad);
    json_t *role = jwt__optional_str(o, "role", &bad);
    if (bad || !json_is_string(sub) || !json_is_integer(exp))
        goto out;
    size_t sl = json_string_length(sub);
    if (!jwt__valid_id(json_string_value(sub), sl))
        goto out;
    memcpy(c->sub, json_string_value(sub), sl);
    c->sub[sl] = '\0';
    c->exp = json_integer_value(exp);
    /* An empty name is no name: display the id instead. */
    json_t *shown = name && json_string_length(name) ? name : sub;
    size_t nl = json_string_length(shown);
    if (nl > JWT_NAME_MAX)
        goto out;
    memcpy(c->name, json_string_value(shown), nl);   /* jansson refuses NULs */
    c->name[nl] = '\0';
    c->role = JWT_ROLE_USER;
    if (role) {
        const char *r = json_string_value(role);
        if (strcmp(r, "admin") == 0)
            c->role = JWT_ROLE_ADMIN;
        else if (strcmp(r, "service") == 0)
            c->role = JWT_ROLE_SERVICE;
        else if (strcmp(r, "user") != 0)
            goto out;
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* jwt_verify steps:
 *  1. Bounds: a token of 1..JWT_MAX_LEN bytes, a non-empty secret.
 *  2. Split at exactly two dots into header, claims and signature.
 *  3. Header: base64url, JSON, alg HS256.
 *  4. Signature: 32 bytes, equal in constant time to our HMAC of
 *     "header.claims".
 *  5. Claims: base64url, JSON, sub/exp/name/role.
 *  6. Expiry last. */
int jwt_verify(const char *token, size_t len, const uint8_t *secret, size_t secret_len,
               int64_t now_s, jwt_claims_t *out)
{
    /* 1. */
    if (len == 0 || len > JWT_MAX_LEN || secret_len == 0)
        return ERR_BAD_TOKEN;
    /* 2. */
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2)
        return ERR_BAD_TOKEN;
    size_t hl = (size_t)(d1 - token), cl = (size_t)(d2 - d1 - 1);
    size_t sl = len - (size_t)(d2 + 1 - token);
    if (memchr(d2 + 1, '.', sl))
        return ERR_BAD_TOKEN;
    /* 3. */
    uint8_t seg[JWT__SEG_MAX];
    long n = jwt__b64url_decode(token, hl, seg, sizeof(seg));
    if (n <= 0 || jwt__check_header(seg, (size_t)n) != 0)
        return ERR_BAD_TOKEN;
    /* 4. The decoder's bound refuses a longer signature outright. */
    uint8_t sig[JWT__SIG_LEN], md[JWT__SIG_LEN];
    n = jwt__b64url_decode(d2 + 1, sl, sig, sizeof(sig));
    if (n != JWT__SIG_LEN)
        return ERR_BAD_TOKEN;
    if (!jwt__hmac(secret, secret_len, token, (size_t)(d2 - token), md) ||
        CRYPTO_memcmp(sig, md, JWT__SIG_LEN) != 0)
        return ERR_BAD_TOKEN;
    /* 5. */
    jwt_claims_t c;
    n = jwt__b64url_decode(d1 + 1, cl, seg, sizeof(seg));
    if (n <= 0 || jwt__claims(seg, (size_t)n, &c) != 0)
        return ERR_BAD_TOKEN;
    /* 6. */
    if (c.exp <= now_s)
        return ERR_EXPIRED;
    *out = c;
    return 0;
}

/* jwt_sign steps:
 *  1. Serialise header and claims with jansson into stack buffers (claims
 *     are bounded: sub 128 bytes, name 256 bytes escaped at most 6x).
 *  2. Check the whole token fits in cap, then write the two segments.
 *  3. Append the HMAC of "header.claims" as the third segment. */
int jwt_sign(const jwt_claims_t *claims, const uint8_t *secret, size_t secret_len,
             char *out, size_t cap)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    /* 1. */
    char body[2048];
    json_t *o = json_pack("{s:s#, s:s#, s:s, s:I}",
                          "sub", claims->sub, (int)strnlen(claims->sub, JWT_SUB_MAX),
                          "name", claims->name, (int)strnlen(claims->name, JWT_NAME_MAX),
                          "role", jwt_role_name(claims->role),
                          "exp", (json_int_t)claims->exp);
    if (!o)
        return ERR_BAD_TOKEN;   /* a name that is not UTF-8, or no memory */
    size_t bl = json_dumpb(o, body, sizeof(body), JSON_COMPACT);
    json_decref(o);
    if (bl == 0 || bl > sizeof(body))
        return ERR_TOO_LARGE;
    /* 2. */
    size_t hl = jwt__b64url_len(sizeof(header) - 1), cl = jwt__b64url_len(bl);
    size_t total = hl + 1 + cl + 1 + jwt__b64url_len(JWT__SIG_LEN);
    if (total + 1 > cap || total > INT_MAX)
        return ERR_TOO_LARGE;
    jwt__b64url_encode((const uint8_t *)header, sizeof(header) - 1, out);
    out[hl] = '.';
    jwt__b64url_encode((const uint8_t *)body, bl, out + hl + 1);
    /* 3. */
    uint8_t md[JWT__SIG_LEN];
    size_t signed_len = hl + 1 + cl;
    if (!jwt__hmac(secret, secret_len, out, signed_len, md))
        return ERR_BAD_TOKEN;
    out[signed_len] = '.';
    jwt__b64url_encode(md, JWT__SIG_LEN, out + signed_len + 1);
    out[total] = '\0';
    return (int)total;
}
