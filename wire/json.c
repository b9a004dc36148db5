/* json.c - JSON text <-> jansson values, plus the field helpers the event
 * handlers use (see json.h).
 *
 * Owns: nothing beyond the values it returns. Runs on whichever shard thread
 * decodes or encodes a packet; pure (no I/O, no globals), so any thread may
 * call it concurrently.
 *
 * Invariants:
 *  - A value returned by json_parse came from at most 64 levels of nesting,
 *    holds only int64 integers and valid UTF-8 strings (NUL allowed inside
 *    string values, never inside keys), and is a fresh reference.
 *  - json_emit never leaves a partial value in the caller's buffer.
 *
 * Naming: jansson's API also starts with json_, so every static here uses
 * json__ and the public names (json_parse, json_emit, json_get_*, json_has,
 * json_id_valid) were checked against jansson 2.14's header and its exported
 * symbols.
 *
 * Background: notes/socketio-wire.md §2 (python-socketio sends \uXXXX escapes
 * and surrogate pairs; JS sends raw UTF-8), protocol.md §2 and §4.
 */
#include "json.h"

#include <errno.h>

#include "../src/err.h"

#define JSON__DEPTH_MAX 64  /* containers inside containers; json.h promises 64 */
#define JSON__ID_MAX    128 /* bytes in a userId or roomId (protocol.md §4) */

/* json__depth_ok reports whether no bracket in p[0..n) sits deeper than
 * JSON__DEPTH_MAX. jansson's own limit is compiled in at 2048, so we check
 * before parsing; this scan only has to be right for well-formed text,
 * because jansson rejects everything else afterwards. */
static bool json__depth_ok(const uint8_t *p, size_t n)
{
    size_t depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;            /* the escaped byte can't end the string */
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > JSON__DEPTH_MAX)
                return false;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

int json_parse(const uint8_t *p, size_t n, json_t **out)
{
    *out = NULL;
    if (!json__depth_ok(p, n))
        return ERR_PROTO;
    /* DECODE_ANY: CONNECT_ERROR data may be a bare string. ALLOW_NUL: "\u0000"
     * is legal JSON that JS clients can send in a message body; callers get
     * lengths from json_get_str. Without DISABLE_EOF_CHECK jansson refuses
     * anything but whitespace after the value; it also refuses integers
     * outside int64, lone surrogates and invalid UTF-8 (incl. overlong forms
     * and encoded surrogates), which is what json.h promises. Duplicate keys
     * keep the last value, as JSON.parse does. */
    json_error_t err;
    json_t *v = json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v)
        return json_error_code(&err) == json_error_out_of_memory ? -ENOMEM : ERR_PROTO;
    *out = v;
    return 0;
}

/* json__on_chunk is jansson's dump callback: it appends one piece of text. */
static int json__on_chunk(const char *chunk, size_t size, void *data)
{
    return buf_append((buf_t *)data, chunk, size) ? -1 : 0;
}

int json_emit(const json_t *v, buf_t *out)
{
    /* COMPACT gives "," and ":" without spaces; leaving out ENSURE_ASCII and
     * ESCAPE_SLASH keeps UTF-8 raw and "/" unescaped, as JSON.stringify does.
     * Reals use jansson's default 17 significant digits, which round-trip
     * exactly (0.1 is written 0.10000000000000001; JS reads the same double). */
    size_t len0 = out->len;
    if (json_dump_callback(v, json__on_chunk, out, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        /* The only failure for a value we built is memory; drop the partial
         * text so the caller's buffer holds whole packets only. */
        out->len = len0;
        return -ENOMEM;
    }
    return 0;
}

/* json__field returns obj[key] unless it is missing or JSON null. */
static json_t *json__field(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);   /* NULL for a non-object obj */
    return json_is_null(v) ? NULL : v;
}

const char *json_get_str(const json_t *obj, const char *key, size_t *len)
{
    json_t *v = json__field(obj, key);
    if (!json_is_string(v)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = json_string_length(v);
    return json_string_value(v);
}

bool json_get_int(const json_t *obj, const char *key, int64_t *out)
{
    json_t *v = json__field(obj, key);
    if (!json_is_integer(v))
        return false;   /* 3.0 is a real here: ids and seqs must be integers */
    *out = (int64_t)json_integer_value(v);
    return true;
}

bool json_has(const json_t *obj, const char *key) { return json__field(obj, key) != NULL; }

bool json_id_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > JSON__ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}
