/* jwt_test.c - unit tests for wire/jwt.c: sign/verify round trips and the
 * tokens an attacker or a sloppy issuer would send. Tokens with chosen
 * headers and claims are built here with OpenSSL. */
#include "../../../wire/jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../../../src/err.h"
#include "../../support/check.h"

static const uint8_t jwt_test_secret[] = "s3cret-for-tests";
#define JWT_TEST_SECRET jwt_test_secret, sizeof(jwt_test_secret) - 1
#define JWT_TEST_NOW 1700000000LL

static void jwt_test_b64url(const uint8_t *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[w++] = a[v >> 18];
        out[w++] = a[(v >> 12) & 63];
        if (i + 1 < n)
            out[w++] = a[(v >> 6) & 63];
        if (i + 2 < n)
            out[w++] = a[v & 63];
    }
    out[w] = '\0';
}

/* jwt_test_make builds header.claims.sig; md NULL leaves the signature
 * empty, and `sig` overrides it when not NULL. */
static void jwt_test_make(char *out, const char *header, const char *claims, const EVP_MD *md,
                          const char *sig)
{
    jwt_test_b64url((const uint8_t *)header, strlen(header), out);
    strcat(out, ".");
    jwt_test_b64url((const uint8_t *)claims, strlen(claims), out + strlen(out));
    strcat(out, ".");
    if (sig) {
        strcat(out, sig);
    } else if (md) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned ml = 0;
        HMAC(md, jwt_test_secret, (int)sizeof(jwt_test_secret) - 1, (const uint8_t *)out,
             strlen(out) - 1, mac, &ml);
        jwt_test_b64url(mac, ml, out + strlen(out));
    }
}

static const char *jwt_test_hs256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static int jwt_test_verify(const char *tok, jwt_claims_t *c)
{
    return jwt_verify(tok, strlen(tok), JWT_TEST_SECRET, JWT_TEST_NOW, c);
}

/* Verify a token with the given claims JSON, correctly signed. */
static int jwt_test_claims(const char *claims, jwt_claims_t *c)
{
    char tok[JWT_MAX_LEN * 2];
    jwt_test_make(tok, jwt_test_hs256, claims, EVP_sha256(), NULL);
    return jwt_test_verify(tok, c);
}

static void jwt_test_round_trip(void)
{
    jwt_claims_t in = {.sub = "user-1@example.com", .name = "Zoë \"Z\" O'Neil", .role = JWT_ROLE_ADMIN,
                       .exp = JWT_TEST_NOW + 60};
    char tok[1024];
    int n = jwt_sign(&in, JWT_TEST_SECRET, tok, sizeof(tok));
    CHECK(n > 0);
    CHECK_EQ_INT(strlen(tok), n);
    CHECK(strncmp(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0);
    jwt_claims_t out;
    memset(&out, 0x55, sizeof(out));
    CHECK_EQ_INT(jwt_verify(tok, (size_t)n, JWT_TEST_SECRET, JWT_TEST_NOW, &out), 0);
    CHECK_EQ_STR(out.sub, in.sub);
    CHECK_EQ_STR(out.name, in.name);
    CHECK_EQ_INT(out.role, JWT_ROLE_ADMIN);
    CHECK_EQ_INT(out.exp, in.exp);

    /* Every role survives the trip. */
    for (int r = JWT_ROLE_USER; r <= JWT_ROLE_SERVICE; r++) {
        in.role = r;
        n = jwt_sign(&in, JWT_TEST_SECRET, tok, sizeof(tok));
        CHECK_EQ_INT(jwt_verify(tok, (size_t)n, JWT_TEST_SECRET, JWT_TEST_NOW, &out), 0);
        CHECK_EQ_INT(out.role, r);
    }

    /* cap: the token and its NUL must fit. */
    n = jwt_sign(&in, JWT_TEST_SECRET, tok, sizeof(tok));
    char small[1024];
    CHECK_EQ_INT(jwt_sign(&in, JWT_TEST_SECRET, small, (size_t)n), ERR_TOO_LARGE);
    CHECK_EQ_INT(jwt_sign(&in, JWT_TEST_SECRET, small, (size_t)n + 1), n);
    CHECK_EQ_STR(small, tok);

    /* Longest legal claims. */
    memset(in.sub, 'a', JWT_SUB_MAX);
    in.sub[JWT_SUB_MAX] = '\0';
    memset(in.name, 'n', JWT_NAME_MAX);
    in.name[JWT_NAME_MAX] = '\0';
    n = jwt_sign(&in, JWT_TEST_SECRET, tok, sizeof(tok));
    CHECK(n > 0);
    CHECK_EQ_INT(jwt_verify(tok, (size_t)n, JWT_TEST_SECRET, JWT_TEST_NOW, &out), 0);
    CHECK_EQ_INT(strlen(out.sub), JWT_SUB_MAX);
    CHECK_EQ_INT(strlen(out.name), JWT_NAME_MAX);
}

static void jwt_test_expiry_and_secret(void)
{
    jwt_claims_t in = {.sub = "u1", .name = "", .role = JWT_ROLE_USER, .exp = JWT_TEST_NOW};
    char tok[1024];
    jwt_claims_t out;
    int n = jwt_sign(&in, JWT_TEST_SECRET, tok, sizeof(tok));
    CHECK_EQ_INT(jwt_verify(tok, (size_t)n, JWT_TEST_SECRET, JWT_TEST_NOW, &out), ERR_EXPIRED);
    CHECK_EQ_INT(jwt_verify(tok, (size_t)n, JWT_TEST_SECRET, JWT_TEST_NOW + 3600, &out), ERR_EXPIRED);
    CHECK_EQ_INT(jwt_verify(tok, (size_t)n, JWT_TEST_SECRET, JWT_TEST_NOW - 1, &out), 0);
    CHECK_EQ_STR(out.name, "u1");   /* empty name shows the id */
    /* An expired token under the wrong secret is a bad token, not an expired one. */
    const uint8_t other[] = "s3cret-for-testz";
    CHECK_EQ_INT(jwt_verify(tok, (size_t)n, other, sizeof(other) - 1, JWT_TEST_NOW - 1, &out), ERR_BAD_TOKEN);
    CHECK_EQ_INT(jwt_verify(tok, (size_t)n, other, sizeof(other) - 1, JWT_TEST_NOW, &out), ERR_BAD_TOKEN);
    CHECK_EQ_INT(jwt_verify(tok, (size_t)n, jwt_test_secret, 0, JWT_TEST_NOW - 1, &out), ERR_BAD_TOKEN);
    /* A prefix of the right secret is a different secret. */
    CHECK_EQ_INT(jwt_verify(tok, (size_t)n, jwt_test_secret, sizeof(jwt_test_secret) - 2,
                            JWT_TEST_NOW - 1, &out), ERR_BAD_TOKEN);
}

static void jwt_test_alg(void)
{
    static const char *claims = "{\"sub\":\"u1\",\"exp\":1800000000}";
    char tok[2048];
    jwt_claims_t c;
    /* The reference: correctly signed HS256 passes. */
    jwt_test_make(tok, jwt_test_hs256, claims, EVP_sha256(), NULL);
    CHECK_EQ_INT(jwt_test_verify(tok, &c), 0);
    jwt_test_make(tok, "{\"alg\":\"HS256\"}", claims, EVP_sha256(), NULL);   /* typ optional */
    CHECK_EQ_INT(jwt_test_verify(tok, &c), 0);
    jwt_test_make(tok, "{\"typ\":\"jwt\",\"alg\":\"HS256\",\"kid\":\"k1\"}", claims, EVP_sha256(), NULL);
    CHECK_EQ_INT(jwt_test_verify(tok, &c), 0);

    /* alg none, with an empty signature and with a (valid HS256) one. */
    jwt_test_make(tok, "{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, NULL, NULL);
    CHECK_EQ_INT(jwt_test_verify(tok, &c), ERR_BAD_TOKEN);
    jwt_test_make(tok, "{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, EVP_sha256(), NULL);
    CHECK_EQ_INT(jwt_test_verify(tok, &c), ERR_BAD_TOKEN);
    jwt_test_make(tok, "{\"alg\":\"None\"}", claims, NULL, NULL);
    CHECK_EQ_INT(jwt_test_verify(tok, &c), ERR_BAD_TOKEN);
    /* An HS256 header with no signature at all. */
    jwt_test_make(tok, jwt_test_hs256, claims, NULL, NULL);
    CHECK_EQ_INT(jwt_test_verify(tok, &c), ERR_BAD_TOKEN);

    /* HS512 with a valid HS512 signature under the same secret. */
    jwt_test_make(tok, "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims, EVP_sha512(), NULL);
    CHECK_EQ_INT(jwt_test_verify(tok, &c), ERR_BAD_TOKEN);
    jwt_test_make(tok, "{\"alg\":\"HS384\",\"typ\":\"JWT\"}", claims, EVP_sha384(), NULL);
    CHECK_EQ_INT(jwt_test_verify(tok, &c), ERR_BAD_TOKEN);
    /* HS512 header but an HS256 signature: the header alone decides. */
    jwt_test_make(tok, "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims, EVP_sha256(), NULL);
    CHECK_EQ_INT(jwt_test_verify(tok, &c), ERR_BAD_TOKEN);

    static const char *bad_headers[] = {
        "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}", "{\"alg\":\"RS256\"}", "{\"alg\":256}",
        "{\"alg\":null}", "{\"typ\":\"JWT\"}", "{}", "[\"HS256\"]", "\"HS256\"", "{\"alg\":\"HS256\"",
        "{\"alg\":\"HS256\",\"typ\":\"JWE\"}", "{\"alg\":\"HS256\",\"typ\":1}",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
        "{\"alg\":\"none\",\"alg\":\"HS256\"}",
    };
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        jwt_test_make(tok, bad_headers[i], claims, EVP_sha256(), NULL);
        int rc = jwt_test_verify(tok, &c);
        if (rc != ERR_BAD_TOKEN)
            fprintf(stderr, "bad_headers[%zu] = %d\n", i, rc);
        CHECK_EQ_INT(rc, ERR_BAD_TOKEN);
    }
}

static void jwt_test_claim_rules(void)
{
    jwt_claims_t c;
    CHECK_EQ_INT(jwt_test_claims("{\"sub\":\"A-z0.9_:@x\",\"exp\":1800000000}", &c), 0);
    CHECK_EQ_STR(c.sub, "A-z0.9_:@x");
    CHECK_EQ_STR(c.name, "A-z0.9_:@x");   /* name defaults to sub */
    CHECK_EQ_INT(c.role, JWT_ROLE_USER);
    CHECK_EQ_INT(c.exp, 1800000000);
    CHECK_EQ_INT(jwt_test_claims("{\"sub\":\"u\",\"exp\":1800000000,\"name\":null,\"role\":null}", &c), 0);
    CHECK_EQ_STR(c.name, "u");
    CHECK_EQ_INT(c.role, JWT_ROLE_USER);
    CHECK_EQ_INT(jwt_test_claims("{\"sub\":\"u\",\"exp\":1800000000,\"name\":\"Ann\",\"role\":\"admin\","
                                 "\"iat\":1,\"extra\":{\"x\":[1,2]}}", &c), 0);
    CHECK_EQ_STR(c.name, "Ann");
    CHECK_EQ_INT(c.role, JWT_ROLE_ADMIN);
    CHECK_EQ_INT(jwt_test_claims("{\"sub\":\"u\",\"exp\":1800000000,\"role\":\"service\"}", &c), 0);
    CHECK_EQ_INT(c.role, JWT_ROLE_SERVICE);
    CHECK_EQ_INT(jwt_test_claims("{\"sub\":\"u\",\"exp\":1800000000,\"role\":\"user\"}", &c), 0);
    CHECK_EQ_INT(c.role, JWT_ROLE_USER);
    CHECK_EQ_INT(jwt_test_claims("{\"sub\":\"u\",\"exp\":1700000000}", &c), ERR_EXPIRED);

    char sub128[200], claims[600];
    memset(sub128, 'x', 128);
    sub128[128] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":1800000000}", sub128);
    CHECK_EQ_INT(jwt_test_claims(claims, &c), 0);
    CHECK_EQ_INT(strlen(c.sub), 128);
    sub128[128] = 'x';
    sub128[129] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":1800000000}", sub128);
    CHECK_EQ_INT(jwt_test_claims(claims, &c), ERR_BAD_TOKEN);
    char name[300];
    memset(name, 'n', 257);
    name[257] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":1800000000,\"name\":\"%s\"}", name);
    CHECK_EQ_INT(jwt_test_claims(claims, &c), ERR_BAD_TOKEN);
    name[256] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":1800000000,\"name\":\"%s\"}", name);
    CHECK_EQ_INT(jwt_test_claims(claims, &c), 0);
    CHECK_EQ_INT(strlen(c.name), 256);

    static const char *bad[] = {
        "{\"exp\":1800000000}",                                  /* no sub */
        "{\"sub\":\"\",\"exp\":1800000000}",                     /* empty sub */
        "{\"sub\":null,\"exp\":1800000000}",
        "{\"sub\":42,\"exp\":1800000000}",
        "{\"sub\":\"a b\",\"exp\":1800000000}",                  /* bad characters */
        "{\"sub\":\"a/b\",\"exp\":1800000000}",
        "{\"sub\":\"a\\nb\",\"exp\":1800000000}",
        "{\"sub\":\"caf\\u00e9\",\"exp\":1800000000}",
        "{\"sub\":\"a\\u0000b\",\"exp\":1800000000}",
        "{\"sub\":\"u\"}",                                       /* no exp */
        "{\"sub\":\"u\",\"exp\":null}",
        "{\"sub\":\"u\",\"exp\":\"1800000000\"}",
        "{\"sub\":\"u\",\"exp\":1.8e9}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"role\":\"root\"}",  /* unknown role */
        "{\"sub\":\"u\",\"exp\":1800000000,\"role\":\"Admin\"}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"role\":1}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"name\":7}",
        "{\"sub\":\"u\",\"sub\":\"admin\",\"exp\":1800000000}",  /* duplicate key */
        "[\"u\",1800000000]",
        "{\"sub\":\"u\",\"exp\":1800000000",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = jwt_test_claims(bad[i], &c);
        if (rc != ERR_BAD_TOKEN)
            fprintf(stderr, "bad claims[%zu] = %d\n", i, rc);
        CHECK_EQ_INT(rc, ERR_BAD_TOKEN);
    }
}

static void jwt_test_shape(void)
{
    jwt_claims_t in = {.sub = "u1", .name = "Ann", .role = JWT_ROLE_USER, .exp = JWT_TEST_NOW + 60};
    char tok[1024], t2[1100];
    jwt_claims_t c;
    int n = jwt_sign(&in, JWT_TEST_SECRET, tok, sizeof(tok));
    CHECK_EQ_INT(jwt_test_verify(tok, &c), 0);
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');

    /* Tampered claims: role user -> admin, same signature. */
    char forged[1100];
    jwt_test_make(forged, jwt_test_hs256, "{\"sub\":\"u1\",\"name\":\"Ann\",\"role\":\"admin\",\"exp\":1700000060}",
                  NULL, d2 + 1);
    CHECK_EQ_INT(jwt_test_verify(forged, &c), ERR_BAD_TOKEN);
    /* Every single flipped character is refused. */
    int accepted = 0;
    for (int i = 0; i < n; i++) {
        strcpy(t2, tok);
        t2[i] = t2[i] == 'A' ? 'B' : 'A';
        if (jwt_test_verify(t2, &c) == 0)
            accepted++;
    }
    CHECK_EQ_INT(accepted, 0);
    /* Every strict prefix is refused. */
    accepted = 0;
    for (int i = 0; i < n; i++)
        if (jwt_verify(tok, (size_t)i, JWT_TEST_SECRET, JWT_TEST_NOW, &c) != ERR_BAD_TOKEN)
            accepted++;
    CHECK_EQ_INT(accepted, 0);

    /* Dots: too few, too many, empty segments. */
    snprintf(t2, sizeof(t2), "%s.", tok);
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    snprintf(t2, sizeof(t2), "%s.%s", tok, d2 + 1);
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    snprintf(t2, sizeof(t2), "%.*s", (int)(d2 - tok), tok);     /* header.claims */
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    snprintf(t2, sizeof(t2), "%.*s", (int)(d1 - tok), tok);     /* header only */
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    snprintf(t2, sizeof(t2), "%.*s%s", (int)(d1 - tok + 1), tok, d2);   /* empty claims */
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    snprintf(t2, sizeof(t2), "%s", d1);                          /* empty header */
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    CHECK_EQ_INT(jwt_test_verify("..", &c), ERR_BAD_TOKEN);
    CHECK_EQ_INT(jwt_test_verify("", &c), ERR_BAD_TOKEN);

    /* base64url: padding, the standard alphabet, spaces, non-canonical bits. */
    snprintf(t2, sizeof(t2), "%s=", tok);
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    snprintf(t2, sizeof(t2), "%.*s=%s", (int)(d1 - tok), tok, d1);
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    snprintf(t2, sizeof(t2), " %s", tok);
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    snprintf(t2, sizeof(t2), "%s", tok);
    char *plus = strchr(t2, '-') ? strchr(t2, '-') : strchr(t2, '_');
    if (plus) {
        *plus = *plus == '-' ? '+' : '/';
        CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    }
    /* 43 signature characters carry 258 bits; the last 2 must be zero. */
    snprintf(t2, sizeof(t2), "%s", tok);
    char *last = t2 + strlen(t2) - 1;
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(a, *last) - a);
    *last = a[v ^ 1];
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    /* A signature one byte short or long. */
    snprintf(t2, sizeof(t2), "%.*s", n - 1, tok);
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);
    snprintf(t2, sizeof(t2), "%sAA", tok);
    CHECK_EQ_INT(jwt_test_verify(t2, &c), ERR_BAD_TOKEN);

    /* Longer than JWT_MAX_LEN is refused before any work. */
    static char huge[JWT_MAX_LEN + 2];
    memset(huge, 'A', sizeof(huge) - 1);
    huge[10] = huge[20] = '.';
    CHECK_EQ_INT(jwt_verify(huge, JWT_MAX_LEN + 1, JWT_TEST_SECRET, JWT_TEST_NOW, &c), ERR_BAD_TOKEN);
    CHECK_EQ_INT(jwt_verify(huge, JWT_MAX_LEN, JWT_TEST_SECRET, JWT_TEST_NOW, &c), ERR_BAD_TOKEN);
}

static void jwt_test_role_names(void)
{
    CHECK_EQ_STR(jwt_role_name(JWT_ROLE_USER), "user");
    CHECK_EQ_STR(jwt_role_name(JWT_ROLE_ADMIN), "admin");
    CHECK_EQ_STR(jwt_role_name(JWT_ROLE_SERVICE), "service");
    CHECK_EQ_STR(jwt_role_name(99), "user");
}

int main(void)
{
    check_seed("jwt_test");
    jwt_test_round_trip();
    jwt_test_expiry_and_secret();
    jwt_test_alg();
    jwt_test_claim_rules();
    jwt_test_shape();
    jwt_test_role_names();
    return check_done("jwt_test");
}
