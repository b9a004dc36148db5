/* cfg_test.c - tests src/cfg.c through its public API: defaults against the
 * protocol.md §10 table, environment and flag precedence, both flag forms,
 * every rejection (each must be ERR_CONFIG with a reason naming the option)
 * and the help/reference output.
 *
 * Build: links src/cfg.c, src/log.c and src/err.c (it does not include
 * cfg.c, so the module is tested as the broker uses it). The test owns its
 * environment: it clears every RINGCAST_* variable first, so an operator's
 * shell cannot change the outcome.
 */
#include "src/cfg.h"

#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#include "src/err.h"
#include "src/log.h"
#include "tests/support/check.h"

extern char **environ;

#define MAX_ARGS 16

static void env_clear(void)
{
    /* Unsetting shifts environ, so rescan from the start after each removal. */
    for (bool again = true; again;) {
        again = false;
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "RINGCAST_", 9) == 0) {
                char name[128];
                size_t n = strcspn(*e, "=");
                snprintf(name, sizeof name, "%.*s", (int)n, *e);
                unsetenv(name);
                again = true;
                break;
            }
        }
    }
}

/* parse fills c with defaults and parses the NULL-terminated flag list. */
static int parse(cfg_t *c, char *err, size_t errlen, ...)
{
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    va_list ap;
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < MAX_ARGS;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    cfg_defaults(c);
    return cfg_parse(c, argc, argv, err, errlen);
}

/* bad checks that the flags are refused with a reason containing want. */
#define BAD(want, ...)                                                              \
    do {                                                                            \
        cfg_t bad__c;                                                               \
        char bad__err[256];                                                         \
        int bad__rc = parse(&bad__c, bad__err, sizeof bad__err, __VA_ARGS__, NULL); \
        CHECK_EQ_INT(bad__rc, ERR_CONFIG);                                          \
        CHECK(strstr(bad__err, want) != NULL);                                      \
        CHECK(strchr(bad__err, '\n') == NULL);                                      \
        if (!strstr(bad__err, want))                                                \
            fprintf(stderr, "  wanted '%s' in '%s'\n", want, bad__err);             \
    } while (0)

static void test_defaults(void)
{
    cfg_t c;
    cfg_defaults(&c);
    CHECK_EQ_STR(c.host, "127.0.0.1");
    CHECK_EQ_INT(c.port, 8080);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_EQ_INT(c.shards, ncpu < 1 ? 1 : ncpu > 256 ? 256 : ncpu);
    CHECK_EQ_STR(c.store, "sqlite:./data/ringcast.db");
    CHECK_EQ_STR(c.jwt_secret, "");
    CHECK(!c.dev);
    CHECK_EQ_INT(c.max_payload, 1000000);
    CHECK_EQ_INT(c.ping_interval_ms, 25000);
    CHECK_EQ_INT(c.ping_timeout_ms, 20000);
    CHECK_EQ_INT(c.max_sockets_per_user, 5);
    CHECK_EQ_INT(c.rate_limit, 30);
    CHECK_EQ_INT(c.rate_burst, 10);
    CHECK_EQ_INT(c.outbound_max_bytes, 4194304);
    CHECK_EQ_INT(c.outbound_stall_ms, 30000);
    CHECK_EQ_INT(c.confirm_deadline_ms, 30000);
    CHECK_EQ_INT(c.batch_max, 1000);
    CHECK_EQ_INT(c.batch_delay_ms, 2);
    CHECK_EQ_INT(c.store_backlog_max, 100000);
    CHECK_EQ_INT(c.store_backlog_bytes, 268435456);
    CHECK_EQ_STR(c.mongo_write_concern, "w:1,j:true");
    CHECK_EQ_INT(c.recent_max, 256);
    CHECK_EQ_INT(c.handshake_timeout_ms, 10000);
    CHECK_EQ_INT(c.bufs_per_shard, 512);
    CHECK_EQ_INT(c.buf_size, 16384);
    CHECK_EQ_INT(c.mailbox_cap, 16384);
    CHECK_EQ_INT(c.log_level, LOG_INFO);
    CHECK_EQ_INT(c.log_format, LOG_FMT_TEXT);

    /* Defaults alone fail only for the missing secret; --dev is enough. */
    char err[256];
    CHECK_EQ_INT(parse(&c, err, sizeof err, NULL), ERR_CONFIG);
    CHECK_EQ_STR(err, "--jwt-secret (or RINGCAST_JWT_SECRET) is required unless --dev");
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev", NULL), 0);
    CHECK_EQ_STR(err, "");
    CHECK(c.dev);
}

static void test_env(void)
{
    cfg_t c;
    char err[256];
    setenv("RINGCAST_PORT", "9000", 1);
    setenv("RINGCAST_HOST", "0.0.0.0", 1);
    setenv("RINGCAST_JWT_SECRET", "s3cret", 1);
    setenv("RINGCAST_OUTBOUND_MAX_BYTES", "1073741824", 1);
    setenv("RINGCAST_LOG_FORMAT", "json", 1);
    setenv("RINGCAST_LOG_LEVEL", "debug", 1);
    setenv("RINGCAST_RECV_BUFFERS", "1024", 1);
    setenv("RINGCAST_STORE", "mongodb://db:27017/ringcast", 1);
    setenv("RINGCAST_BATCH_MAX", "", 1); /* Empty counts as unset. */
    CHECK_EQ_INT(parse(&c, err, sizeof err, NULL), 0);
    CHECK_EQ_INT(c.port, 9000);
    CHECK_EQ_STR(c.host, "0.0.0.0");
    CHECK_EQ_STR(c.jwt_secret, "s3cret");
    CHECK_EQ_INT(c.outbound_max_bytes, 1073741824);
    CHECK_EQ_INT(c.log_format, LOG_FMT_JSON);
    CHECK_EQ_INT(c.log_level, LOG_DEBUG);
    CHECK_EQ_INT(c.bufs_per_shard, 1024);
    CHECK_EQ_STR(c.store, "mongodb://db:27017/ringcast");
    CHECK_EQ_INT(c.batch_max, 1000);
    env_clear();

    /* Booleans from the environment. */
    const char *yes[] = {"1", "true", "TRUE"}, *no[] = {"0", "false"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        setenv("RINGCAST_DEV", yes[i], 1);
        CHECK_EQ_INT(parse(&c, err, sizeof err, NULL), 0);
        CHECK(c.dev);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        setenv("RINGCAST_DEV", no[i], 1);
        CHECK_EQ_INT(parse(&c, err, sizeof err, NULL), ERR_CONFIG); /* No secret, no dev. */
        CHECK(!c.dev);
    }
    setenv("RINGCAST_DEV", "yes", 1);
    CHECK_EQ_INT(parse(&c, err, sizeof err, NULL), ERR_CONFIG);
    CHECK(strstr(err, "RINGCAST_DEV") != NULL);
    env_clear();

    /* A bad environment value names the variable. */
    setenv("RINGCAST_PORT", "70000", 1);
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev", NULL), ERR_CONFIG);
    CHECK_EQ_STR(err, "RINGCAST_PORT: 70000 is out of range (0-65535)");
    /* ...even when a flag would have overridden it: env is read first. */
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev", "--port", "1", NULL), ERR_CONFIG);
    env_clear();
}

static void test_flags(void)
{
    cfg_t c;
    char err[256];

    /* Flags beat the environment. */
    setenv("RINGCAST_PORT", "9000", 1);
    setenv("RINGCAST_DEV", "1", 1);
    setenv("RINGCAST_JWT_SECRET", "from-env", 1);
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--port", "9100", "--jwt-secret=from-flag", NULL), 0);
    CHECK_EQ_INT(c.port, 9100);
    CHECK_EQ_STR(c.jwt_secret, "from-flag");
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev=false", NULL), 0);
    CHECK(!c.dev);
    env_clear();

    /* Both forms, every type, and the last flag wins. */
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev", "--shards=3", "--shards", "4",
                       "--outbound-max-bytes=65536", "--max-payload", "1024", "--log-level=error",
                       "--log-format", "json", "--store=sqlite:/tmp/x.db", "--host", "::1", NULL),
                 0);
    CHECK_EQ_INT(c.shards, 4);
    CHECK_EQ_INT(c.outbound_max_bytes, 65536);
    CHECK_EQ_INT(c.max_payload, 1024);
    CHECK_EQ_INT(c.log_level, LOG_ERROR);
    CHECK_EQ_INT(c.log_format, LOG_FMT_JSON);
    CHECK_EQ_STR(c.store, "sqlite:/tmp/x.db");
    CHECK_EQ_STR(c.host, "::1");

    /* Range edges are accepted. */
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev", "--port", "0", "--recv-buffers", "16",
                       "--mailbox-size", "1048576", "--batch-delay-ms", "0", "--shards", "256", NULL),
                 0);
    CHECK_EQ_INT(c.port, 0);
    CHECK_EQ_INT(c.bufs_per_shard, 16);
    CHECK_EQ_INT(c.mailbox_cap, 1048576);
    CHECK_EQ_INT(c.batch_delay_ms, 0);
    CHECK_EQ_INT(c.shards, 256);
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev", "--port=65535", "--recv-buffers=65536", NULL), 0);
    CHECK_EQ_INT(c.port, 65535);

    /* --name=value passes values that look like flags; the longest string fits. */
    char host[256];
    memset(host, 'h', 255);
    host[255] = '\0';
    char host_flag[300];
    snprintf(host_flag, sizeof host_flag, "--host=%s", host);
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--jwt-secret=--dev", host_flag, NULL), 0);
    CHECK_EQ_STR(c.jwt_secret, "--dev");
    CHECK_EQ_STR(c.host, host);
    /* A single dash is a value, not a flag. */
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--jwt-secret", "-h", NULL), 0);
    CHECK_EQ_STR(c.jwt_secret, "-h");
}

static void test_errors(void)
{
    cfg_t c;
    char err[256];

    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev", "--port", "70000", NULL), ERR_CONFIG);
    CHECK_EQ_STR(err, "--port: 70000 is out of range (0-65535)");
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev", "--x", NULL), ERR_CONFIG);
    CHECK_EQ_STR(err, "unknown option --x");

    BAD("unknown option --nope", "--dev", "--nope=1");
    BAD("unexpected argument 'serve'", "--dev", "serve");
    BAD("unexpected argument '--'", "--dev", "--");
    BAD("--port: 'abc' is not a number", "--dev", "--port", "abc");
    BAD("--port: '-1' is not a number", "--dev", "--port=-1");
    BAD("--port: '12x' is not a number", "--dev", "--port=12x");
    BAD("--port: ' 1' is not a number", "--dev", "--port= 1");
    BAD("--port: '' is not a number", "--dev", "--port=");
    BAD("--port: 99999999999999999999999 is out of range", "--dev", "--port=99999999999999999999999");
    BAD("--shards: 0 is out of range (1-256)", "--dev", "--shards=0");
    BAD("--shards: 257 is out of range (1-256)", "--dev", "--shards=257");
    BAD("--max-payload: 1023 is out of range (1024-100000000)", "--dev", "--max-payload=1023");
    BAD("--ping-interval-ms: 99 is out of range", "--dev", "--ping-interval-ms=99");
    BAD("--ping-timeout-ms: 0 is out of range (100-3600000)", "--dev", "--ping-timeout-ms=0");
    BAD("--max-sockets-per-user: 1001 is out of range", "--dev", "--max-sockets-per-user=1001");
    BAD("--rate-limit: 0 is out of range", "--dev", "--rate-limit=0");
    BAD("--rate-burst: 1000001 is out of range", "--dev", "--rate-burst=1000001");
    BAD("--outbound-max-bytes: 1073741825 is out of range", "--dev", "--outbound-max-bytes=1073741825");
    BAD("--outbound-stall-ms: 999 is out of range", "--dev", "--outbound-stall-ms=999");
    BAD("--confirm-deadline-ms: 99 is out of range", "--dev", "--confirm-deadline-ms=99");
    BAD("--batch-max: 100001 is out of range", "--dev", "--batch-max=100001");
    BAD("--batch-delay-ms: 10001 is out of range", "--dev", "--batch-delay-ms=10001");
    BAD("--recent-max: 15 is out of range", "--dev", "--recent-max=15");
    BAD("--handshake-timeout-ms: 600001 is out of range", "--dev", "--handshake-timeout-ms=600001");
    BAD("--recv-buffers: 100 is not a power of two", "--dev", "--recv-buffers=100");
    BAD("--recv-buffers: 8 is out of range", "--dev", "--recv-buffers=8");
    BAD("--recv-buffer-size: 1048577 is out of range", "--dev", "--recv-buffer-size=1048577");
    BAD("--mailbox-size: 1000 is not a power of two", "--dev", "--mailbox-size=1000");
    BAD("--log-level: 'loud' is not one of debug|info|warn|error", "--dev", "--log-level=loud");
    BAD("--log-format: 'xml' is not one of text|json", "--dev", "--log-format", "xml");
    BAD("--dev: 'maybe' is not one of 1|true|0|false", "--dev=maybe");
    BAD("--host: value is empty", "--dev", "--host=");
    BAD("--port: missing value", "--dev", "--port");
    BAD("--port: missing value", "--port", "--dev");
    BAD("--jwt-secret: missing value", "--jwt-secret");

    /* Strings one byte too long for their field. */
    char longv[1100];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    char flag[1200];
    snprintf(flag, sizeof flag, "--host=%.256s", longv);
    BAD("--host: value is too long (256 bytes, at most 255)", "--dev", flag);
    snprintf(flag, sizeof flag, "--jwt-secret=%.512s", longv);
    BAD("--jwt-secret: value is too long", flag);
    CHECK(strstr(err, "aaaa") == NULL);
    snprintf(flag, sizeof flag, "--store=sqlite:%.1017s", longv);
    BAD("--store: value is too long (1024 bytes, at most 1023)", "--dev", flag);

    /* Cross-field rules. */
    BAD("--jwt-secret (or RINGCAST_JWT_SECRET) is required unless --dev", "--port=1");
    BAD("--jwt-secret (or RINGCAST_JWT_SECRET) is required unless --dev", "--dev=0");
    BAD("unknown --store scheme: 'postgres'", "--dev", "--store=postgres://h/db");
    BAD("unknown --store scheme: './data.db'", "--dev", "--store=./data.db");
    BAD("unknown --store scheme: 'SQLITE'", "--dev", "--store=SQLITE:x");
    BAD("--store: sqlite: needs a path", "--dev", "--store=sqlite:");
    BAD("--store: mongodb:// needs a host", "--dev", "--store=mongodb://");
    BAD("--outbound-max-bytes (65536) must be at least --max-payload (1000000)", "--dev",
        "--outbound-max-bytes=65536");
    BAD("--batch-delay-ms (5000) must be below --confirm-deadline-ms (1000)", "--dev",
        "--batch-delay-ms=5000", "--confirm-deadline-ms=1000");

    /* Credentials in an unknown URI stay out of the message. */
    CHECK_EQ_INT(parse(&c, err, sizeof err, "--dev", "--store=mongodb+srv://u:hunter2@h/db", NULL),
                 ERR_CONFIG);
    CHECK(strstr(err, "mongodb+srv") != NULL);
    CHECK(strstr(err, "hunter2") == NULL);

    /* A tiny or absent error buffer is fine. */
    char small[8];
    CHECK_EQ_INT(parse(&c, small, sizeof small, "--port=x", NULL), ERR_CONFIG);
    CHECK_EQ_STR(small, "--port:");
    CHECK_EQ_INT(parse(&c, NULL, 0, "--port=x", NULL), ERR_CONFIG);
}

/* quiet_stdout points fd 1 at /dev/null and returns the saved fd. */
static int quiet_stdout(void)
{
    fflush(stdout);
    int saved = dup(1);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    close(null);
    return saved;
}

static void restore_stdout(int saved)
{
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
}

static void test_help(void)
{
    cfg_t c;
    char err[256];
    int saved = quiet_stdout();
    int rc_help = parse(&c, err, sizeof err, "--help", NULL);
    int rc_h = parse(&c, err, sizeof err, "--port", "1", "-h", NULL);
    int rc_md = parse(&c, err, sizeof err, "--help-markdown", NULL);
    setenv("RINGCAST_PORT", "nonsense", 1); /* Help works on a broken config. */
    int rc_broken = parse(&c, err, sizeof err, "--nope", "--help", NULL);
    env_clear();
    restore_stdout(saved);
    CHECK_EQ_INT(rc_help, 1);
    CHECK_EQ_INT(rc_h, 1);
    CHECK_EQ_INT(rc_md, 1);
    CHECK_EQ_INT(rc_broken, 1);

    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    cfg_usage(f);
    fclose(f);
    const char *head = "usage: ringcast [options]\n"
                       "       ringcast token <userId> [--role user|admin|service] [--ttl SECONDS] "
                       "[--name NAME]\n";
    CHECK(strncmp(text, head, strlen(head)) == 0);
    const char *want[] = {"--host", "RINGCAST_HOST", "127.0.0.1", "--jwt-secret", "RINGCAST_JWT_SECRET",
                          "--recv-buffers", "RINGCAST_RECV_BUFFERS", "power of two",
                          "RINGCAST_MAX_SOCKETS_PER_USER", "--log-format text|json", "0-65535"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        CHECK(strstr(text, want[i]) != NULL);
    free(text);

    f = open_memstream(&text, &len);
    cfg_markdown(f);
    fclose(f);
    CHECK(strncmp(text, "| option | environment | default |", 34) == 0);
    int rows = 0;
    for (char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        rows++;
    CHECK_EQ_INT(rows, 2 + 27); /* Header, separator, one row per cfg_t field. */
    CHECK(strstr(text, "| `--port` | `RINGCAST_PORT` | `8080` | 0-65535 |") != NULL);
    CHECK(strstr(text, "`debug\\|info\\|warn\\|error`") != NULL);
    free(text);
}

int main(void)
{
    env_clear();
    test_defaults();
    test_env();
    test_flags();
    test_errors();
    test_help();
    return check_done("cfg_test");
}
