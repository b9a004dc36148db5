/* sio.h - Socket.IO protocol v5 packets (socket.io 3.x/4.x) in both
 * encodings: the default JSON text parser and socket.io-msgpack-parser
 * (protocol.md §1-§2; notes/socketio-wire.md §2-§3).
 *
 * Pure: input is a byte span, output a struct or bytes appended to a caller's
 * buffer. Payloads are jansson values (see json.h, mp.h).
 */
#ifndef RC_SIO_H
#define RC_SIO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/buf.h"

enum {
    SIO_CONNECT = 0, SIO_DISCONNECT = 1, SIO_EVENT = 2, SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4, SIO_BINARY_EVENT = 5, SIO_BINARY_ACK = 6,
};

typedef enum { SIO_ENC_NONE = 0, SIO_ENC_JSON = 1, SIO_ENC_MSGPACK = 2 } sio_enc_t;

#define SIO_NSP_MAX 128

typedef struct {
    int type;                  /* SIO_*                                          */
    char nsp[SIO_NSP_MAX + 1]; /* namespace, "/" by default                      */
    int64_t id;                /* ack id, -1 when absent                         */
    json_t *data;              /* owned reference, NULL when absent              */
} sio_packet_t;

/* sio_decode_json decodes the text of a Socket.IO packet, that is a text
 * engine message without its leading '4'. Accepts "/nsp," and "/nsp" (no
 * comma, no data). Binary packets (types 5 and 6, attachments) are refused
 * with ERR_PROTO: ringcast's events carry no binary. Validates per type:
 * CONNECT data absent or object; DISCONNECT no data; EVENT/ACK data an array
 * (EVENT: non-empty). Returns 0 or ERR_PROTO; on error *out holds nothing. */
int sio_decode_json(const uint8_t *p, size_t n, sio_packet_t *out);

/* sio_decode_msgpack decodes a binary engine message holding one msgpack
 * map {type, nsp, data?, id?} in any key order; unknown keys ("options")
 * are ignored; data nil/undefined is absent (also on DISCONNECT and CONNECT).
 * Same per-type validation as sio_decode_json. Returns 0 or ERR_PROTO. */
int sio_decode_msgpack(const uint8_t *p, size_t n, sio_packet_t *out);

/* sio_encode appends the encoded packet: for SIO_ENC_JSON the engine text
 * "4" + packet text; for SIO_ENC_MSGPACK the msgpack map
 * {type, nsp, data?, id?} (nsp always present). pkt->data may be NULL.
 * Returns 0 or -ENOMEM. */
int sio_encode(sio_enc_t enc, const sio_packet_t *pkt, buf_t *out);

/* sio_packet_clear releases data and resets the packet to empty. */
void sio_packet_clear(sio_packet_t *pkt);

#endif
