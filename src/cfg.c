/* cfg.c - the broker's configuration table and its parser (see cfg.h;
 * protocol.md §10; STYLE.md §8; the reference page is the "Configuration
 * reference" section of docs/operations.md, printed by cfg_markdown()).
 *
 * Runs once, on the main thread, before any other thread starts; nothing here
 * is thread-safe and nothing needs to be (cfg_t is read-only afterwards).
 *
 * Everything about an option lives in one row of cfg__rows: flag, environment
 * variable, type, default text, range, help and where it sits in cfg_t.
 * Defaults, environment, flags, --help and the Markdown reference all walk
 * that table, so a new option is one row (plus its cfg_t field) and cannot
 * drift between parser and docs.
 *
 * Invariants:
 *  - Every row's field has the size its type says, and every row's
 *    environment name is "RINGCAST_" + its flag upper-cased with '-' -> '_'
 *    (cfg__row_ok, asserted by cfg_defaults).
 *  - Defaults go through the same setter as user input, so a default outside
 *    its own range trips an assertion instead of shipping.
 *  - Order: defaults, then environment, then flags (flags win), then the
 *    cross-field rules, which see the final values only.
 *  - An error leaves a one-line reason naming the option in err; secret
 *    values are never echoed back.
 */
#include "cfg.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

typedef enum {
    CFG__STR,   /* char[]; min is the minimum length, max is sizeof - 1 */
    CFG__U32,   /* uint32_t, decimal, within [min, max]                */
    CFG__U64,   /* uint64_t, decimal, within [min, max]                */
    CFG__BOOL,  /* bool; a bare flag means true                        */
    CFG__ENUM,  /* int; index into the row's names                     */
} cfg__type_t;

enum {
    CFG__F_POW2 = 1 << 0,   /* value must be a power of two (ring masks)   */
    CFG__F_NCPU = 1 << 1,   /* default is the online CPU count, clamped    */
};

typedef struct {
    const char *flag;           /* without the leading "--"                */
    const char *env;            /* RINGCAST_<FLAG>                         */
    cfg__type_t type;
    const char *def;            /* default as text; parsed by cfg__set     */
    uint64_t min, max;          /* range (STR: min length; max unused)     */
    const char *const *names;   /* ENUM: value names, NULL-terminated      */
    unsigned flags;             /* CFG__F_*                                */
    size_t off, size;           /* where the field sits in cfg_t           */
    const char *help;           /* one sentence for --help and the docs    */
} cfg__row_t;

/* The enum name lists are indexed by the values stored in cfg_t. */
static const char *const cfg__level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const cfg__format_names[] = {"text", "json", NULL};
_Static_assert(LOG_DEBUG == 0 && LOG_INFO == 1 && LOG_WARN == 2 && LOG_ERROR == 3,
               "cfg__level_names is indexed by LOG_*");
_Static_assert(LOG_FMT_TEXT == 0 && LOG_FMT_JSON == 1, "cfg__format_names is indexed by LOG_FMT_*");

#define CFG__FIELD(f) offsetof(cfg_t, f), sizeof(((cfg_t *)0)->f)
#define CFG__STR_ROW(flag, env, f, def, minlen, fl, help) \
    {flag, env, CFG__STR, def, minlen, 0, NULL, fl, CFG__FIELD(f), help}
#define CFG__NUM_ROW(type, flag, env, f, def, lo, hi, fl, help) \
    {flag, env, type, def, lo, hi, NULL, fl, CFG__FIELD(f), help}
#define CFG__U32_ROW(...) CFG__NUM_ROW(CFG__U32, __VA_ARGS__)
#define CFG__U64_ROW(...) CFG__NUM_ROW(CFG__U64, __VA_ARGS__)
#define CFG__ENUM_ROW(flag, env, f, def, names, help) \
    {flag, env, CFG__ENUM, def, 0, 0, names, 0, CFG__FIELD(f), help}

static const cfg__row_t cfg__rows[] = {
    CFG__STR_ROW("host", "RINGCAST_HOST", host, "127.0.0.1", 1, 0,
                 "Address to listen on."),
    CFG__U32_ROW("port", "RINGCAST_PORT", port, "8080", 0, 65535, 0,
                 "TCP port to listen on; 0 picks a free port and logs it."),
    CFG__U32_ROW("shards", "RINGCAST_SHARDS", shards, "number of CPUs", 1, 256, CFG__F_NCPU,
                 "Shard threads, each with its own io_uring."),
    CFG__STR_ROW("store", "RINGCAST_STORE", store, "sqlite:./data/ringcast.db", 1, 0,
                 "Message store: sqlite:PATH (embedded) or mongodb://URI."),
    CFG__STR_ROW("jwt-secret", "RINGCAST_JWT_SECRET", jwt_secret, "", 0, 0,
                 "HS256 secret that signs and verifies client JWTs; required unless --dev."),
    {"dev", "RINGCAST_DEV", CFG__BOOL, "false", 0, 1, NULL, 0, CFG__FIELD(dev),
     "Development mode: generate a JWT secret and print it at startup."},
    CFG__U32_ROW("max-payload", "RINGCAST_MAX_PAYLOAD", max_payload, "1000000", 1024, 100000000, 0,
                 "Largest accepted client message, in bytes."),
    CFG__U32_ROW("ping-interval-ms", "RINGCAST_PING_INTERVAL_MS", ping_interval_ms, "25000",
                 100, 3600000, 0, "Engine.IO ping interval, in ms."),
    CFG__U32_ROW("ping-timeout-ms", "RINGCAST_PING_TIMEOUT_MS", ping_timeout_ms, "20000",
                 100, 3600000, 0, "Time a client has to answer a ping before it is dropped, in ms."),
    CFG__U32_ROW("max-sockets-per-user", "RINGCAST_MAX_SOCKETS_PER_USER", max_sockets_per_user, "5",
                 1, 1000, 0, "Open connections allowed per user; further ones are refused."),
    CFG__U32_ROW("rate-limit", "RINGCAST_RATE_LIMIT", rate_limit, "30", 1, 1000000, 0,
                 "message:send events allowed per user per 60 s."),
    CFG__U32_ROW("rate-burst", "RINGCAST_RATE_BURST", rate_burst, "10", 1, 1000000, 0,
                 "message:send events a user may send back to back before the rate applies."),
    CFG__U64_ROW("outbound-max-bytes", "RINGCAST_OUTBOUND_MAX_BYTES", outbound_max_bytes, "4194304",
                 65536, 1073741824, 0,
                 "Bytes queued to one socket before it is dropped as too slow; at least --max-payload."),
    CFG__U32_ROW("outbound-stall-ms", "RINGCAST_OUTBOUND_STALL_MS", outbound_stall_ms, "30000",
                 1000, 3600000, 0,
                 "Time a socket's outbound queue may go without draining before it is dropped, in ms."),
    CFG__U32_ROW("confirm-deadline-ms", "RINGCAST_CONFIRM_DEADLINE_MS", confirm_deadline_ms, "30000",
                 100, 3600000, 0,
                 "Time the store has to confirm a message before the sender gets an error, in ms."),
    CFG__U32_ROW("batch-max", "RINGCAST_BATCH_MAX", batch_max, "1000", 1, 100000, 0,
                 "Most writes the persistence thread groups into one store batch."),
    CFG__U32_ROW("batch-delay-ms", "RINGCAST_BATCH_DELAY_MS", batch_delay_ms, "2", 0, 10000, 0,
                 "Longest a write waits for its batch to fill, in ms; below --confirm-deadline-ms."),
    CFG__U32_ROW("store-backlog-max", "RINGCAST_STORE_BACKLOG_MAX", store_backlog_max, "100000", 1,
                 100000000, 0,
                 "Messages sent but not yet stored before message:send answers UNAVAILABLE."),
    CFG__U64_ROW("store-backlog-bytes", "RINGCAST_STORE_BACKLOG_BYTES", store_backlog_bytes, "268435456",
                 1048576, 68719476736ull, 0,
                 "Bytes of message bodies sent but not yet stored before message:send answers UNAVAILABLE."),
    CFG__STR_ROW("mongo-write-concern", "RINGCAST_MONGO_WRITE_CONCERN", mongo_write_concern, "w:1,j:true", 1, 0,
                 "MongoDB write concern of message batches: w:N[,j:true|false] or majority[,j:...]."),
    CFG__U32_ROW("recent-max", "RINGCAST_RECENT_MAX", recent_max, "256", 16, 100000, 0,
                 "Messages kept in memory per room."),
    CFG__U32_ROW("handshake-timeout-ms", "RINGCAST_HANDSHAKE_TIMEOUT_MS", handshake_timeout_ms, "10000",
                 100, 600000, 0,
                 "Time a new connection has to finish the upgrade and Socket.IO connect, in ms."),
    CFG__U32_ROW("recv-buffers", "RINGCAST_RECV_BUFFERS", bufs_per_shard, "512", 16, 65536, CFG__F_POW2,
                 "Provided receive buffers per shard."),
    CFG__U32_ROW("recv-buffer-size", "RINGCAST_RECV_BUFFER_SIZE", buf_size, "16384", 1024, 1048576, 0,
                 "Size of each provided receive buffer, in bytes."),
    CFG__U32_ROW("mailbox-size", "RINGCAST_MAILBOX_SIZE", mailbox_cap, "16384", 64, 1048576, CFG__F_POW2,
                 "Slots in each shard-to-shard mailbox ring."),
    CFG__ENUM_ROW("log-level", "RINGCAST_LOG_LEVEL", log_level, "info", cfg__level_names,
                  "Lowest level logged."),
    CFG__ENUM_ROW("log-format", "RINGCAST_LOG_FORMAT", log_format, "text", cfg__format_names,
                  "Log line format: text for people, json for machines."),
};

#define CFG__NROWS (sizeof cfg__rows / sizeof cfg__rows[0])

/* cfg__fail writes a one-line reason into err (if there is room) and returns
 * ERR_CONFIG, so every error site is `return cfg__fail(...)`. */
static int __attribute__((format(printf, 3, 4)))
cfg__fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return ERR_CONFIG;
}

/* cfg__row_ok checks the row invariants listed in the file header. Only
 * assert() calls it, hence unused under NDEBUG. */
static bool __attribute__((unused)) cfg__row_ok(const cfg__row_t *r)
{
    char env[64];
    size_t n = (size_t)snprintf(env, sizeof env, "RINGCAST_%s", r->flag);
    if (n >= sizeof env)
        return false;
    for (char *p = env; *p; p++)
        *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    if (strcmp(env, r->env) != 0 || !r->help || !r->def)
        return false;
    switch (r->type) {
    case CFG__STR: return r->size > 1 && r->min < r->size;
    case CFG__U32: return r->size == sizeof(uint32_t) && r->min <= r->max && r->max <= UINT32_MAX;
    case CFG__U64: return r->size == sizeof(uint64_t) && r->min <= r->max;
    case CFG__BOOL: return r->size == sizeof(bool);
    case CFG__ENUM: return r->size == sizeof(int) && r->names && r->names[0];
    }
    return false;
}

static const cfg__row_t *cfg__find(const char *name, size_t len)
{
    for (size_t i = 0; i < CFG__NROWS; i++)
        if (strlen(cfg__rows[i].flag) == len && memcmp(cfg__rows[i].flag, name, len) == 0)
            return &cfg__rows[i];
    return NULL;
}

/* cfg__set_num parses a plain decimal number (no sign, no spaces, no hex:
 * strtoull alone would accept " -1" and wrap it) and range-checks it. */
static int cfg__set_num(cfg_t *c, const cfg__row_t *r, const char *v, const char *label,
                        char *err, size_t errlen)
{
    if (!isdigit((unsigned char)v[0]))
        return cfg__fail(err, errlen, "%s: '%.40s' is not a number", label, v);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != '\0')
        return cfg__fail(err, errlen, "%s: '%.40s' is not a number", label, v);
    if (errno == ERANGE || x < r->min || x > r->max)
        return cfg__fail(err, errlen, "%s: %.40s is out of range (%" PRIu64 "-%" PRIu64 ")", label,
                         v, r->min, r->max);
    if ((r->flags & CFG__F_POW2) && (x & (x - 1)) != 0)
        return cfg__fail(err, errlen, "%s: %llu is not a power of two", label, x);
    char *field = (char *)c + r->off;
    if (r->type == CFG__U32) {
        uint32_t u = (uint32_t)x;
        memcpy(field, &u, sizeof u);
    } else {
        uint64_t u = (uint64_t)x;
        memcpy(field, &u, sizeof u);
    }
    return 0;
}

/* cfg__set stores text v into r's field. label names the source in errors
 * ("--port" or "RINGCAST_PORT"). Returns 0 or ERR_CONFIG. */
static int cfg__set(cfg_t *c, const cfg__row_t *r, const char *v, const char *label,
                    char *err, size_t errlen)
{
    char *field = (char *)c + r->off;
    switch (r->type) {
    case CFG__STR: {
        size_t n = strlen(v);
        if (n >= r->size)
            return cfg__fail(err, errlen, "%s: value is too long (%zu bytes, at most %zu)", label, n,
                             r->size - 1);
        if (n < r->min)
            return cfg__fail(err, errlen, "%s: value is empty", label);
        memcpy(field, v, n + 1);
        return 0;
    }
    case CFG__U32:
    case CFG__U64:
        return cfg__set_num(c, r, v, label, err, errlen);
    case CFG__BOOL: {
        bool b;
        if (strcasecmp(v, "1") == 0 || strcasecmp(v, "true") == 0)
            b = true;
        else if (strcasecmp(v, "0") == 0 || strcasecmp(v, "false") == 0)
            b = false;
        else
            return cfg__fail(err, errlen, "%s: '%.40s' is not one of 1|true|0|false", label, v);
        memcpy(field, &b, sizeof b);
        return 0;
    }
    case CFG__ENUM: {
        for (int i = 0; r->names[i]; i++) {
            if (strcmp(v, r->names[i]) == 0) {
                memcpy(field, &i, sizeof i);
                return 0;
            }
        }
        char want[128] = "";
        for (int i = 0; r->names[i]; i++) {
            size_t len = strlen(want);
            snprintf(want + len, sizeof want - len, "%s%s", i ? "|" : "", r->names[i]);
        }
        return cfg__fail(err, errlen, "%s: '%.40s' is not one of %s", label, v, want);
    }
    }
    return cfg__fail(err, errlen, "%s: unsupported option type", label);
}

static uint32_t cfg__ncpu(const cfg__row_t *r)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < (long)r->min)
        return (uint32_t)r->min; /* sysconf failed (-1) or reported nothing. */
    if (n > (long)r->max)
        return (uint32_t)r->max;
    return (uint32_t)n;
}

void cfg_defaults(cfg_t *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < CFG__NROWS; i++) {
        const cfg__row_t *r = &cfg__rows[i];
        assert(cfg__row_ok(r));
        if (r->flags & CFG__F_NCPU) {
            uint32_t n = cfg__ncpu(r);
            memcpy((char *)c + r->off, &n, sizeof n);
            continue;
        }
        int rc = cfg__set(c, r, r->def, r->flag, NULL, 0);
        assert(rc == 0 && "a default is outside its own range");
        (void)rc;
    }
}

/* cfg__env applies every RINGCAST_* variable that is set. An empty variable
 * counts as unset: `RINGCAST_PORT=` is how compose files and shells blank a
 * value, and no option has a meaningful empty value other than its default. */
static int cfg__env(cfg_t *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < CFG__NROWS; i++) {
        const cfg__row_t *r = &cfg__rows[i];
        const char *v = getenv(r->env);
        if (!v || !*v)
            continue;
        int rc = cfg__set(c, r, v, r->env, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* cfg__takes_next: does argv[i] (a known flag) consume argv[i + 1]? Used
 * by the --help pre-scan so `--jwt-secret -h` is a secret, not a help request. */
static bool cfg__takes_next(const char *a)
{
    if (strncmp(a, "--", 2) != 0 || strchr(a, '='))
        return false;
    const cfg__row_t *r = cfg__find(a + 2, strlen(a + 2));
    return r && r->type != CFG__BOOL;
}

/* cfg__help_scan returns 1 or 2 if argv asks for --help/-h or --help-markdown.
 * It runs before the environment is read so help works even when the
 * configuration is broken. */
static int cfg__help_scan(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (strcmp(argv[i], "--help-markdown") == 0)
            return 2;
        if (cfg__takes_next(argv[i]) && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            i++; /* Same rule as cfg__flags for what counts as a value. */
    }
    return 0;
}

/* cfg__flags applies argv in order. A value that starts with "--" is taken
 * as a forgotten value (`--jwt-secret --dev`), not as the value itself; use
 * `--name=--value` to pass such a value on purpose. */
static int cfg__flags(cfg_t *c, int argc, char **argv, char *err, size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return cfg__fail(err, errlen, "unexpected argument '%.40s'", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cfg__row_t *r = cfg__find(name, len);
        if (!r)
            return cfg__fail(err, errlen, "unknown option --%.*s", (int)(len > 64 ? 64 : len), name);
        char label[64];
        snprintf(label, sizeof label, "--%s", r->flag);
        const char *v;
        if (eq)
            v = eq + 1;
        else if (r->type == CFG__BOOL)
            v = "true";
        else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            v = argv[++i];
        else
            return cfg__fail(err, errlen, "%s: missing value", label);
        int rc = cfg__set(c, r, v, label, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* cfg__check applies the rules that involve more than one field or more
 * than a range, on the final values. */
static int cfg__check(const cfg_t *c, char *err, size_t errlen)
{
    if (c->jwt_secret[0] == '\0' && !c->dev)
        return cfg__fail(err, errlen, "--jwt-secret (or RINGCAST_JWT_SECRET) is required unless --dev");
    if (strncmp(c->store, "sqlite:", 7) == 0) {
        if (c->store[7] == '\0')
            return cfg__fail(err, errlen, "--store: sqlite: needs a path (sqlite:PATH)");
    } else if (strncmp(c->store, "mongodb://", 10) == 0) {
        if (c->store[10] == '\0')
            return cfg__fail(err, errlen, "--store: mongodb:// needs a host (mongodb://HOST/DB)");
    } else {
        /* Only the scheme is echoed: the rest of a URI may hold a password. */
        size_t n = strcspn(c->store, ":");
        return cfg__fail(err, errlen, "unknown --store scheme: '%.*s' (use sqlite:PATH or mongodb://URI)",
                         (int)(n > 32 ? 32 : n), c->store);
    }
    /* A single message must fit the outbound queue, or every broadcast of a
     * maximum-size message would disconnect its recipients. */
    if (c->outbound_max_bytes < c->max_payload)
        return cfg__fail(err, errlen, "--outbound-max-bytes (%" PRIu64 ") must be at least --max-payload (%" PRIu32 ")",
                         c->outbound_max_bytes, c->max_payload);
    /* A batch that may wait past the confirm deadline would time out writes
     * the store was never given a chance to confirm. */
    if (c->batch_delay_ms >= c->confirm_deadline_ms)
        return cfg__fail(err, errlen, "--batch-delay-ms (%" PRIu32 ") must be below --confirm-deadline-ms (%" PRIu32 ")",
                         c->batch_delay_ms, c->confirm_deadline_ms);
    /* ping_timeout_ms >= 1 needs no rule here: its range starts at 100. */
    return 0;
}

int cfg_parse(cfg_t *c, int argc, char **argv, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    switch (cfg__help_scan(argc, argv)) {
    case 1: cfg_usage(stdout); return 1;
    case 2: cfg_markdown(stdout); return 1;
    }
    int rc = cfg__env(c, err, errlen);
    if (rc == 0)
        rc = cfg__flags(c, argc, argv, err, errlen);
    if (rc == 0)
        rc = cfg__check(c, err, errlen);
    return rc;
}

/* cfg__metavar is the placeholder shown after a flag in --help. */
static void cfg__metavar(const cfg__row_t *r, char *out, size_t len)
{
    switch (r->type) {
    case CFG__STR: snprintf(out, len, " TEXT"); return;
    case CFG__U32:
    case CFG__U64: snprintf(out, len, " N"); return;
    case CFG__BOOL: out[0] = '\0'; return;
    case CFG__ENUM: break;
    }
    size_t n = 0;
    for (int i = 0; r->names[i] && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%c%s", i ? '|' : ' ', r->names[i]);
}

/* cfg__range describes the accepted values ("" when the type says it all). */
static void cfg__range(const cfg__row_t *r, char *out, size_t len)
{
    out[0] = '\0';
    if (r->type == CFG__U32 || r->type == CFG__U64)
        snprintf(out, len, "%" PRIu64 "-%" PRIu64 "%s", r->min, r->max,
                 (r->flags & CFG__F_POW2) ? ", power of two" : "");
}

void cfg_usage(FILE *f)
{
    fprintf(f, "usage: ringcast [options]\n"
               "       ringcast token <userId> [--role user|admin|service] [--ttl SECONDS] [--name NAME]\n"
               "\n"
               "options (each also read from its environment variable; flags win):\n");
    for (size_t i = 0; i < CFG__NROWS; i++) {
        const cfg__row_t *r = &cfg__rows[i];
        char meta[64], range[64];
        cfg__metavar(r, meta, sizeof meta);
        cfg__range(r, range, sizeof range);
        fprintf(f, "  --%s%s\n", r->flag, meta);
        fprintf(f, "      %s\n", r->help);
        fprintf(f, "      env %s; default %s%s%s\n", r->env, r->def[0] ? r->def : "(none)",
                range[0] ? "; range " : "", range);
    }
    fprintf(f, "  -h, --help\n      Print this help and exit.\n"
               "  --help-markdown\n      Print the options as a Markdown table and exit.\n");
}

/* cfg__md_cell prints s with the table separator escaped. */
static void cfg__md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s, f);
    }
}

void cfg_markdown(FILE *f)
{
    fprintf(f, "| option | environment | default | accepted | description |\n"
               "|---|---|---|---|---|\n");
    for (size_t i = 0; i < CFG__NROWS; i++) {
        const cfg__row_t *r = &cfg__rows[i];
        char meta[64], range[64];
        cfg__metavar(r, meta, sizeof meta);
        cfg__range(r, range, sizeof range);
        fprintf(f, "| `--%s` | `%s` | ", r->flag, r->env);
        if (r->flags & CFG__F_NCPU)
            fprintf(f, "%s", r->def);
        else if (r->def[0])
            fprintf(f, "`%s`", r->def);
        else
            fprintf(f, "(none)");
        fprintf(f, " | ");
        if (range[0])
            fprintf(f, "%s", range);
        else if (r->type == CFG__ENUM) {
            fputc('`', f);
            cfg__md_cell(f, meta + 1);
            fputc('`', f);
        } else if (r->type == CFG__BOOL)
            fprintf(f, "flag; env `1`/`true`/`0`/`false`");
        else
            fprintf(f, "text, at most %zu bytes", r->size - 1);
        fprintf(f, " | ");
        cfg__md_cell(f, r->help);
        fprintf(f, " |\n");
    }
}
