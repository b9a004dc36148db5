/* err.c - names for ringcast's error codes (see err.h). */
#include "err.h"

#include <string.h>

const char *err_str(int err)
{
    switch (err) {
    case 0: return "ok";
    case ERR_PROTO: return "protocol error";
    case ERR_TOO_LARGE: return "too large";
    case ERR_TRUNCATED: return "truncated input";
    case ERR_BAD_TOKEN: return "invalid token";
    case ERR_EXPIRED: return "token expired";
    case ERR_FULL: return "queue full";
    case ERR_NOT_FOUND: return "not found";
    case ERR_DUP: return "duplicate";
    case ERR_STORE: return "store unavailable";
    case ERR_STORE_FATAL: return "store refused the write";
    case ERR_CONFIG: return "bad configuration";
    default:
        if (err < 0 && err > -4096)
            return strerror(-err);
        return "unknown error";
    }
}
