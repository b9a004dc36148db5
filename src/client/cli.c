/* cli.c - `ringcast-cli`, a small operator's client on rc_client (one client,
 * one epoll loop, one thread).
 *
 *   ringcast-cli [--url http://127.0.0.1:8080] --token T [--json] COMMAND
 *     chats                                   chats:list
 *     create direct|group|channel MEMBER... [--name N]   chat:create
 *     join ROOM [--since N]                   room:join
 *     send ROOM TEXT...                       message:send (a fresh tempId)
 *     history ROOM [--before N] [--limit N]   history:get
 *     tail ROOM [--since N]                   join, then print the room's
 *                                             message:* events until Ctrl-C,
 *                                             reconnecting and catching up
 *
 * Output is JSON lines on stdout: one-shot commands print their ack object;
 * tail prints {"event":NAME,"data":PAYLOAD} per event (messages recovered
 * after a reconnect come as "message:new" with their stored status).
 * Exit status: 0 ok, 1 the broker answered ok:false, 2 usage, 3 connection
 * failure (refused, closed, UNAUTHORIZED, or no answer within 10 s).
 * --url and --token default to $RINGCAST_URL and $RINGCAST_TOKEN.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "rc_client.h"

enum { CLI_OK = 0, CLI_ERR_ACK = 1, CLI_USAGE = 2, CLI_CONN = 3 };
enum { CLI_CHATS, CLI_CREATE, CLI_JOIN, CLI_SEND, CLI_HISTORY, CLI_TAIL };

#define CLI_ACK_TIMEOUT_MS 10000
#define CLI_ARGS_MAX 256

typedef struct {
    int cmd;
    const char *room;
    const char *name;       /* create --name                         */
    int64_t since;          /* join/tail --since, -1 when absent     */
    int64_t before;         /* history --before, -1 when absent      */
    int64_t limit;          /* history --limit, -1 when absent       */
    const char **pos;       /* positionals after the command         */
    int npos;
    bool done;
    int status;
} cli_t;

static uint64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void cli_usage(void)
{
    fputs("usage: ringcast-cli [--url http://HOST:PORT] --token T [--json] COMMAND\n"
          "  chats\n"
          "  create direct|group|channel MEMBER... [--name NAME]\n"
          "  join ROOM [--since N]\n"
          "  send ROOM TEXT...\n"
          "  history ROOM [--before N] [--limit N]\n"
          "  tail ROOM [--since N]\n"
          "Prints JSON lines. Exit: 0 ok, 1 error ack, 2 usage, 3 connection failure.\n"
          "--url and --token default to $RINGCAST_URL and $RINGCAST_TOKEN.\n",
          stderr);
}

static void cli_print(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    fflush(stdout);
}

static void cli_print_event(const char *name, json_t *data)
{
    json_t *line = json_pack("{sssO}", "event", name, "data", data ? data : json_null());
    cli_print(line);
    json_decref(line);
}

/* cli_parse_url splits http://host:port[/...] (also ws://; [v6] hosts). */
static int cli_parse_url(const char *url, char *host, size_t cap, uint16_t *port)
{
    const char *p = strstr(url, "://");
    if (p) {
        size_t sl = (size_t)(p - url);
        if (!((sl == 4 && strncmp(url, "http", 4) == 0) || (sl == 2 && strncmp(url, "ws", 2) == 0)))
            return -1;   /* https/wss: TLS is not supported */
        url = p + 3;
    }
    const char *hs = url, *he;
    if (*url == '[') {
        hs = url + 1;
        he = strchr(hs, ']');
        if (!he)
            return -1;
        p = he + 1;
    } else {
        he = url + strcspn(url, ":/");
        p = he;
    }
    if ((size_t)(he - hs) == 0 || (size_t)(he - hs) >= cap)
        return -1;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    *port = 80;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v <= 0 || v > 65535 || (*end && *end != '/'))
            return -1;
        *port = (uint16_t)v;
    } else if (*p && *p != '/') {
        return -1;
    }
    return 0;
}

static bool cli_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < 0)
        return false;
    *out = v;
    return true;
}

static void cli_finish(cli_t *st, int status)
{
    if (!st->done) {
        st->done = true;
        st->status = status;
    }
}

static void cli_on_ack(rcc_t *c, void *ud, json_t *ack)
{
    cli_t *st = ud;
    if (!ack) {
        fputs("ringcast-cli: no answer from the broker\n", stderr);
        cli_finish(st, CLI_CONN);
        return;
    }
    cli_print(ack);
    cli_finish(st, json_is_true(json_object_get(ack, "ok")) ? CLI_OK : CLI_ERR_ACK);
}

/* cli_request builds the one-shot command's event and payload. */
static json_t *cli_request(const cli_t *st, const char **event)
{
    json_t *p = json_object();
    if (!p)
        return NULL;
    switch (st->cmd) {
    case CLI_CHATS:
        *event = "chats:list";
        break;
    case CLI_CREATE: {
        *event = "chat:create";
        json_t *m = json_array();
        for (int i = 1; i < st->npos; i++)
            json_array_append_new(m, json_string(st->pos[i]));
        json_object_set_new(p, "type", json_string(st->pos[0]));
        json_object_set_new(p, "members", m);
        if (st->name)
            json_object_set_new(p, "name", json_string(st->name));
        break;
    }
    case CLI_JOIN:
        *event = "room:join";
        json_object_set_new(p, "roomId", json_string(st->room));
        if (st->since >= 0)
            json_object_set_new(p, "sinceSeq", json_integer(st->since));
        break;
    case CLI_SEND: {
        *event = "message:send";
        uint64_t r = 0;
        if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
            r = cli_now_ms() ^ (uint64_t)getpid() << 40;
        char temp[40];
        snprintf(temp, sizeof(temp), "cli-%016" PRIx64, r);
        /* The text is every positional after ROOM, joined by spaces. */
        size_t len = 0;
        for (int i = 1; i < st->npos; i++)
            len += strlen(st->pos[i]) + 1;
        char *body = calloc(1, len + 1);
        for (int i = 1; body && i < st->npos; i++) {
            if (i > 1)
                strcat(body, " ");
            strcat(body, st->pos[i]);
        }
        json_object_set_new(p, "roomId", json_string(st->room));
        json_object_set_new(p, "tempId", json_string(temp));
        json_object_set_new(p, "type", json_string("text"));
        json_object_set_new(p, "body", json_string(body ? body : ""));
        free(body);
        break;
    }
    case CLI_HISTORY:
        *event = "history:get";
        json_object_set_new(p, "roomId", json_string(st->room));
        if (st->before >= 0)
            json_object_set_new(p, "beforeSeq", json_integer(st->before));
        if (st->limit >= 0)
            json_object_set_new(p, "limit", json_integer(st->limit));
        break;
    default:
        break;
    }
    return p;
}

static void cli_on_ready(rcc_t *c, void *ud, json_t *chats)
{
    cli_t *st = ud;
    if (st->cmd == CLI_TAIL)
        return;   /* the library joins the room itself, on every (re)connect */
    const char *event = NULL;
    json_t *p = cli_request(st, &event);
    int rc = p ? rcc_emit(c, event, p, cli_on_ack, st) : -ENOMEM;
    json_decref(p);
    if (rc) {
        fprintf(stderr, "ringcast-cli: cannot send %s: %s\n", event ? event : "request", strerror(-rc));
        cli_finish(st, CLI_CONN);
    }
}

static void cli_on_event(rcc_t *c, void *ud, const char *name, json_t *payload)
{
    cli_t *st = ud;
    if (st->cmd != CLI_TAIL)
        return;
    if (strcmp(name, "room:join") == 0) {
        if (!json_is_true(json_object_get(payload, "ok"))) {
            cli_print(payload);
            cli_finish(st, CLI_ERR_ACK);
            return;
        }
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(payload, "missed"), i, m)
            cli_print_event("message:new", m);
        return;
    }
    const char *room = json_string_value(json_object_get(payload, "roomId"));
    if (strncmp(name, "message:", 8) == 0 && room && strcmp(room, st->room) == 0)
        cli_print_event(name, payload);
}

static void cli_on_disconnect(rcc_t *c, void *ud, const char *reason, bool will_reconnect)
{
    cli_t *st = ud;
    if (st->done)
        return;   /* our own rcc_close at exit */
    fprintf(stderr, "ringcast-cli: disconnected: %s%s\n", reason, will_reconnect ? " (reconnecting)" : "");
    if (!will_reconnect)
        cli_finish(st, CLI_CONN);
}

/* cli_parse fills st from argv. Returns 0 or -1 (usage). */
static int cli_parse(int argc, char **argv, cli_t *st, const char **url, const char **token, bool *json)
{
    static const char *pos[CLI_ARGS_MAX];
    const char *cmd = NULL;
    st->pos = pos;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--json") == 0) {
            *json = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return -1;
        if (strcmp(a, "--url") == 0 && v)
            *url = v;
        else if (strcmp(a, "--token") == 0 && v)
            *token = v;
        else if (strcmp(a, "--name") == 0 && v)
            st->name = v;
        else if (strcmp(a, "--since") == 0 && v)
            ok = cli_int(v, &st->since);
        else if (strcmp(a, "--before") == 0 && v)
            ok = cli_int(v, &st->before);
        else if (strcmp(a, "--limit") == 0 && v)
            ok = cli_int(v, &st->limit);
        else if (strncmp(a, "--", 2) == 0 && a[2])
            return -1;   /* unknown option or one without its value */
        else if (!cmd)
            cmd = a, v = NULL;
        else if (st->npos < CLI_ARGS_MAX)
            pos[st->npos++] = a, v = NULL;
        else
            return -1;
        if (!ok)
            return -1;
        if (v)
            i++;
    }
    static const struct { const char *name; int cmd, min, max; } cmds[] = {
        { "chats", CLI_CHATS, 0, 0 },     { "create", CLI_CREATE, 1, CLI_ARGS_MAX },
        { "join", CLI_JOIN, 1, 1 },       { "send", CLI_SEND, 2, CLI_ARGS_MAX },
        { "history", CLI_HISTORY, 1, 1 }, { "tail", CLI_TAIL, 1, 1 },
    };
    if (!cmd)
        return -1;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(cmd, cmds[i].name) != 0)
            continue;
        if (st->npos < cmds[i].min || st->npos > cmds[i].max)
            return -1;
        st->cmd = cmds[i].cmd;
        if (st->cmd == CLI_CREATE && strcmp(pos[0], "direct") && strcmp(pos[0], "group") && strcmp(pos[0], "channel"))
            return -1;
        if (st->cmd != CLI_CHATS && st->cmd != CLI_CREATE)
            st->room = pos[0];
        return 0;
    }
    return -1;
}

/* cli_sync keeps the epoll registration in step with the client (see
 * rc_client.h: fd, socket id and write interest may change on any call). */
static void cli_sync(int ep, rcc_t *c, int *reg_fd, uint32_t *reg_id, uint32_t *reg_ev)
{
    int fd = rcc_fd(c);
    uint32_t id = rcc_sock_id(c);
    uint32_t ev = EPOLLIN | (rcc_want_write(c) ? EPOLLOUT : 0);
    if (fd != *reg_fd || id != *reg_id) {
        /* The old socket is closed already, and closing removed it. */
        *reg_fd = -1;
        if (fd >= 0) {
            struct epoll_event e = { .events = ev, .data.fd = fd };
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0)
                *reg_fd = fd, *reg_id = id, *reg_ev = ev;
        }
    } else if (fd >= 0 && ev != *reg_ev) {
        struct epoll_event e = { .events = ev, .data.fd = fd };
        if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) == 0)
            *reg_ev = ev;
    }
}

int main(int argc, char **argv)
{
    cli_t st = { .since = -1, .before = -1, .limit = -1 };
    const char *url = getenv("RINGCAST_URL"), *token = getenv("RINGCAST_TOKEN");
    bool json = false;
    if (!url)
        url = "http://127.0.0.1:8080";
    char host[256];
    uint16_t port;
    if (cli_parse(argc, argv, &st, &url, &token, &json) || !token || !token[0] ||
        cli_parse_url(url, host, sizeof(host), &port)) {
        cli_usage();
        return CLI_USAGE;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    rcc_opts_t o = {
        .host = host, .port = port, .token = token,
        .encoding = json ? RCC_JSON : RCC_MSGPACK,
        .reconnect = st.cmd == CLI_TAIL,
        .backoff_min_ms = 500, .backoff_max_ms = 5000,
        .ack_timeout_ms = CLI_ACK_TIMEOUT_MS,
        .cbs = { .on_ready = cli_on_ready, .on_event = cli_on_event, .on_disconnect = cli_on_disconnect },
        .ud = &st,
    };
    rcc_t *c = rcc_new(&o);
    if (!c) {
        fprintf(stderr, "ringcast-cli: cannot resolve %s\n", host);
        return CLI_CONN;
    }
    if (st.cmd == CLI_TAIL && rcc_join(c, st.room, st.since) != 0) {
        fprintf(stderr, "ringcast-cli: bad room id\n");
        rcc_free(c);
        return CLI_USAGE;
    }
    /* SIGTERM must end `tail` even when the parent left it ignored; SIGINT
     * keeps its inherited disposition, as shells expect of background jobs. */
    signal(SIGTERM, SIG_DFL);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event se = { .events = EPOLLIN, .data.fd = sfd };
    if (sfd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &se) < 0) {
        perror("ringcast-cli: epoll");
        rcc_free(c);
        return CLI_CONN;
    }
    int rc = rcc_connect(c, cli_now_ms());
    if (rc) {
        fprintf(stderr, "ringcast-cli: cannot connect to %s:%u: %s\n", host, port, strerror(-rc));
        st.done = true;
        st.status = CLI_CONN;
    }
    int reg_fd = -1;
    uint32_t reg_id = 0, reg_ev = 0;
    while (!st.done) {
        cli_sync(ep, c, &reg_fd, &reg_id, &reg_ev);
        uint64_t now = cli_now_ms(), next = rcc_next_timer_ms(c);
        int timeout = next == UINT64_MAX ? -1 : next <= now ? 0 : (int)(next - now < 60000 ? next - now : 60000);
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, timeout);
        if (n < 0 && errno != EINTR) {
            perror("ringcast-cli: epoll_wait");
            cli_finish(&st, CLI_CONN);
            break;
        }
        for (int i = 0; i < n && !st.done; i++) {
            if (evs[i].data.fd == sfd) {
                cli_finish(&st, st.cmd == CLI_TAIL ? CLI_OK : CLI_CONN);
                break;
            }
            if (evs[i].data.fd != rcc_fd(c))
                continue;   /* stale: that socket is gone */
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                rcc_on_readable(c, cli_now_ms());
            if ((evs[i].events & EPOLLOUT) && !st.done)
                rcc_on_writable(c, cli_now_ms());
        }
        if (!st.done && cli_now_ms() >= rcc_next_timer_ms(c))
            rcc_on_timer(c, cli_now_ms());
        if (!st.done && rcc_flush(c) == -ENOTCONN)
            cli_finish(&st, CLI_CONN);
    }
    rcc_close(c);
    rcc_free(c);
    close(ep);
    close(sfd);
    return st.status;
}
