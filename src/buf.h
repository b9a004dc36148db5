/* buf.h - growable byte buffers and shared, immutable, reference-counted blobs.
 *
 * buf_t: a plain growable byte buffer owned by one thread (encoders write
 *        into it; see wire/).
 * buf_blob_t: an outgoing WebSocket frame, encoded once and then frozen.
 *        Shared by every recipient socket on every shard; the count is atomic
 *        only because blobs cross shards. After buf_blob_freeze() only const
 *        pointers to data are handed out.
 */
#ifndef RC_BUF_H
#define RC_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *p;     /* bytes; NULL while cap == 0 */
    size_t len;     /* bytes in use */
    size_t cap;     /* bytes allocated */
} buf_t;

/* buf_reserve makes room for at least `extra` more bytes.
 * Returns 0 or -ENOMEM (the buffer is unchanged on failure). */
int buf_reserve(buf_t *b, size_t extra);
/* buf_append copies n bytes to the end. Returns 0 or -ENOMEM. */
int buf_append(buf_t *b, const void *p, size_t n);
int buf_append_str(buf_t *b, const char *s);
int buf_append_byte(buf_t *b, uint8_t c);
/* buf_printf appends formatted text. Returns 0 or -ENOMEM. */
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* buf_consume drops the first n bytes (n <= len). */
void buf_consume(buf_t *b, size_t n);
static inline void buf_reset(buf_t *b) { b->len = 0; }
/* buf_deinit frees the storage and zeroes the struct. */
void buf_deinit(buf_t *b);

typedef struct buf_blob {
    _Atomic uint32_t refs;   /* owners; atomic because blobs cross shards   */
    uint32_t len;            /* bytes in data[]                             */
    uint32_t flags;          /* BUF_BLOB_* (e.g. droppable when congested)  */
    uint32_t sum;            /* debug builds: checksum taken at freeze      */
    uint8_t data[];          /* the complete frame, header included         */
} buf_blob_t;

enum { BUF_BLOB_DROPPABLE = 1u << 0 }; /* typing/presence: dropped first when a socket is congested */

/* buf_blob_new allocates a blob with room for len bytes and one reference.
 * Returns NULL on allocation failure. */
buf_blob_t *buf_blob_new(uint32_t len);
/* buf_blob_freeze marks the end of writing (debug: checksums the bytes). */
void buf_blob_freeze(buf_blob_t *b);
static inline buf_blob_t *buf_blob_ref(buf_blob_t *b)
{
    /* relaxed: a new reference is taken by a thread that already holds one */
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}
/* buf_blob_unref drops one reference and frees the blob on the last one. */
void buf_blob_unref(buf_blob_t *b);

#endif
