/* json.h - JSON text <-> jansson values, and small field helpers used by the
 * event handlers (jansson is the one in-memory representation of event
 * payloads; MessagePack converts to and from it in mp.h).
 *
 * Pure: no I/O, no globals.
 */
#ifndef RC_JSON_H
#define RC_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/buf.h"

/* json_parse decodes exactly one JSON value from p[0..n) (trailing
 * whitespace allowed; anything else after the value is an error). Handles
 * \uXXXX escapes and surrogate pairs; rejects invalid UTF-8 and lone
 * surrogates. Integers beyond int64 fail. Nesting deeper than 64 fails.
 * Returns 0 and a new reference in *out, or ERR_PROTO. */
int json_parse(const uint8_t *p, size_t n, json_t **out);

/* json_emit appends the compact JSON text of v (raw UTF-8, no escaping of
 * '/' or non-ASCII). Returns 0 or -ENOMEM. */
int json_emit(const json_t *v, buf_t *out);

/* Field helpers. Each returns the field's value when it exists and has the
 * right type, else the default / NULL. A JSON null counts as absent. */
const char *json_get_str(const json_t *obj, const char *key, size_t *len);
bool json_get_int(const json_t *obj, const char *key, int64_t *out);  /* integer only */
bool json_has(const json_t *obj, const char *key);                    /* present and not null */

/* json_id_valid: 1-128 bytes of [A-Za-z0-9._:@-] (userId, roomId). */
bool json_id_valid(const char *s, size_t len);

#endif
