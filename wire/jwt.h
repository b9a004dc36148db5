/* jwt.h - JSON Web Tokens, HS256 only (protocol.md §3), on OpenSSL's HMAC.
 *
 * Any other "alg" (none, HS384, HS512, RS256, ...) is rejected. The
 * signature is compared in constant time. Pure: no I/O, no globals; the
 * caller passes the current time.
 */
#ifndef RC_JWT_H
#define RC_JWT_H

#include <stddef.h>
#include <stdint.h>

enum { JWT_ROLE_USER = 0, JWT_ROLE_ADMIN = 1, JWT_ROLE_SERVICE = 2 };

#define JWT_SUB_MAX 128
#define JWT_NAME_MAX 256
#define JWT_MAX_LEN 4096   /* longer tokens are refused */

typedef struct {
    char sub[JWT_SUB_MAX + 1];   /* user id: 1-128 of [A-Za-z0-9._:@-]     */
    char name[JWT_NAME_MAX + 1]; /* display name; defaults to sub          */
    int role;                    /* JWT_ROLE_*; "user" when absent         */
    int64_t exp;                 /* seconds since the epoch (required)     */
} jwt_claims_t;

/* jwt_verify checks token (len bytes) against the secret at time now_s.
 * Returns 0 and fills *out; ERR_EXPIRED if exp <= now_s; ERR_BAD_TOKEN for
 * anything else (shape, base64url, JSON, alg, typ other than JWT when
 * present, signature, missing or invalid sub/exp, unknown role). */
int jwt_verify(const char *token, size_t len, const uint8_t *secret, size_t secret_len,
               int64_t now_s, jwt_claims_t *out);

/* jwt_sign writes a NUL-terminated HS256 token for the claims into out.
 * Returns the token length, or ERR_TOO_LARGE if cap is too small. */
int jwt_sign(const jwt_claims_t *claims, const uint8_t *secret, size_t secret_len,
             char *out, size_t cap);

/* jwt_role_name returns "user", "admin" or "service". */
const char *jwt_role_name(int role);

#endif
