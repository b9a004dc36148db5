/* mp.h - MessagePack <-> jansson values, on msgpack-c 4.0
 * (protocol.md §2; notes/socketio-wire.md §3, socket.io-msgpack-parser layout).
 *
 * Decoding accepts what notepack.io and python-msgpack send: any map key
 * order; str keys only; fixext1 type 0 (`d4 00 00`, JS undefined) is
 * "absent" (a map entry with it is dropped; in an array it becomes null);
 * bin and ext type 0 become a JSON string of the raw bytes only if they are
 * valid UTF-8, else the decode fails; `d7 00` (Date) becomes an integer of
 * milliseconds; floats become reals; integers beyond int64 fail. Trailing
 * bytes after the one value are an error. Nesting deeper than 64 fails.
 * Encoding uses the smallest msgpack forms and never writes fixext.
 *
 * Pure: no I/O, no globals.
 */
#ifndef RC_MP_H
#define RC_MP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/buf.h"

/* mp_parse decodes exactly one value from p[0..n). Returns 0 and a new
 * reference in *out, ERR_TRUNCATED if the input ends inside the value, or
 * ERR_PROTO. */
int mp_parse(const uint8_t *p, size_t n, json_t **out);

/* mp_emit appends the msgpack encoding of v. Returns 0 or -ENOMEM. */
int mp_emit(const json_t *v, buf_t *out);

#endif
