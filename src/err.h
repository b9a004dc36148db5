/* err.h - ringcast's own error codes, one enum for every layer.
 *
 * Convention (STYLE.md §5): functions return int; 0 is success, a negative
 * value is a failure. System calls give -errno (always > -4096); our own codes
 * sit below ERR__BASE so the two ranges never collide. Where progress matters,
 * a positive value means "made progress" and 0 "nothing yet".
 */
#ifndef RC_ERR_H
#define RC_ERR_H

#define ERR__BASE (-5000)

enum {
    /* wire: bytes from peers */
    ERR_PROTO = ERR__BASE,   /* malformed input from a peer                 */
    ERR_TOO_LARGE,           /* input exceeds a configured limit           */
    ERR_TRUNCATED,           /* input ended in the middle of a value       */
    ERR_BAD_TOKEN,           /* JWT malformed, bad signature or bad alg    */
    ERR_EXPIRED,             /* JWT past its exp                           */
    /* actors */
    ERR_FULL,                /* a bounded ring or queue is full            */
    ERR_NOT_FOUND,           /* unknown room, chat or record               */
    ERR_DUP,                 /* record already exists                      */
    /* persistence */
    ERR_STORE,               /* store failed; may succeed if retried       */
    ERR_STORE_FATAL,         /* store failed permanently for this input    */
    ERR_CONFIG,              /* bad configuration value                    */
    ERR__END
};

/* err_str returns a static, human-readable string for an error code
 * (ours or -errno). Never NULL. */
const char *err_str(int err);

#endif
