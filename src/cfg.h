/* cfg.h - the broker's configuration: one struct, filled from one table
 * (name, type, default, min, max, environment variable, help) that drives
 * parsing, validation, defaults, --help and the reference in
 * docs/operations.md (protocol.md §10).
 *
 * Read once on the main thread at startup; read-only afterwards (shards and
 * persistence threads read it without locks).
 */
#ifndef RC_CFG_H
#define RC_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { LOG_FMT_TEXT = 0, LOG_FMT_JSON = 1 };

typedef struct {
    char host[256];              /* --host, RINGCAST_HOST: "127.0.0.1"              */
    uint32_t port;               /* --port, RINGCAST_PORT: 8080 (0 = pick a free port) */
    uint32_t shards;             /* --shards, RINGCAST_SHARDS: number of CPUs (1-256)   */
    char store[1024];            /* --store, RINGCAST_STORE: "sqlite:./data/ringcast.db" */
    char jwt_secret[512];        /* --jwt-secret, RINGCAST_JWT_SECRET: required unless --dev */
    bool dev;                    /* --dev, RINGCAST_DEV: generate a secret and print it */
    uint32_t max_payload;        /* --max-payload: 1000000 bytes                     */
    uint32_t ping_interval_ms;   /* --ping-interval-ms: 25000                        */
    uint32_t ping_timeout_ms;    /* --ping-timeout-ms: 20000                         */
    uint32_t max_sockets_per_user;/* --max-sockets-per-user: 5                       */
    uint32_t rate_limit;         /* --rate-limit: 30 message:send per 60 s per user  */
    uint32_t rate_burst;         /* --rate-burst: 10                                 */
    uint64_t outbound_max_bytes; /* --outbound-max-bytes: 4194304                    */
    uint32_t outbound_stall_ms;  /* --outbound-stall-ms: 30000 (queue not drained)   */
    uint32_t confirm_deadline_ms;/* --confirm-deadline-ms: 30000                     */
    uint32_t batch_max;          /* --batch-max: 1000                                */
    uint32_t batch_delay_ms;     /* --batch-delay-ms: 2                              */
    uint32_t store_backlog_max;  /* --store-backlog-max: 100000 unstored messages       */
    uint64_t store_backlog_bytes;/* --store-backlog-bytes: 256 MiB of unstored bodies  */
    char mongo_write_concern[64];/* --mongo-write-concern: "w:1,j:true"                */
    uint32_t recent_max;         /* --recent-max: 256 messages kept per room in memory */
    uint32_t handshake_timeout_ms;/* --handshake-timeout-ms: 10000                   */
    uint32_t bufs_per_shard;     /* --recv-buffers: 512 provided buffers per shard   */
    uint32_t buf_size;           /* --recv-buffer-size: 16384 bytes                  */
    uint32_t mailbox_cap;        /* --mailbox-size: 16384 slots per ordered pair     */
    int log_level;               /* --log-level: info (debug|info|warn|error)        */
    int log_format;              /* --log-format: text (text|json)                   */
} cfg_t;

/* cfg_defaults fills every field with its default (shards = CPUs). */
void cfg_defaults(cfg_t *c);

/* cfg_parse applies environment variables (RINGCAST_<NAME>, e.g.
 * RINGCAST_PORT, RINGCAST_JWT_SECRET) and then argv[0..argc) flags
 * (`--name value` or `--name=value`; booleans take no value); flags win.
 * Validates types and ranges and cross-field rules (jwt secret required
 * unless dev; store scheme sqlite: or mongodb://). Returns 0, 1 if --help
 * was printed (exit 0), or ERR_CONFIG with a one-line reason in err
 * (the caller prints it and exits 2). */
int cfg_parse(cfg_t *c, int argc, char **argv, char *err, size_t errlen);

/* cfg_usage prints the option table (every option with its default and its
 * environment variable) to f. */
#include <stdio.h>
void cfg_usage(FILE *f);

/* cfg_markdown prints the option table as a Markdown table (for
 * docs/operations.md; `ringcast --help-markdown`). */
void cfg_markdown(FILE *f);

#endif
