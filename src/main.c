/* main.c - ringcast's entry point: configuration, `ringcast token`, and the
 * startup and shutdown of the shards and the persistence actor.
 *
 * Startup (main thread, before any shard runs):
 *   1. parse the configuration (flags over environment; exit 2 on error);
 *   2. read every chat from the store and give each to its room's shard
 *      (rooms are always in memory; see docs/architecture.md);
 *   3. start the persistence writer and reader;
 *   4. open one SO_REUSEPORT listener per shard, start the shards;
 *   5. log "listening on HOST:PORT" and wait for SIGINT/SIGTERM.
 * Shutdown: stop accepting, close sockets, let the writer flush what it
 * holds (bounded by the confirm deadline), exit 0. A second signal exits at
 * once.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../actors/actor_types.h"
#include "../actors/mbox.h"
#include "../actors/pers.h"
#include "../actors/room.h"
#include "../actors/sess.h"
#include "../persistence/mongo.h"
#include "../persistence/store.h"
#include "../wire/jwt.h"
#include "cfg.h"
#include "err.h"
#include "log.h"
#include "shard.h"

#define MAIN_DEDUP_PER_ROOM 4096

/* `ringcast token <userId> [--role R] [--ttl S] [--name N] [broker options]` */
static int main__token(int argc, char **argv)
{
    if (argc < 3 || argv[2][0] == '-') {
        fprintf(stderr, "usage: ringcast token <userId> [--role user|admin|service] [--ttl SECONDS] [--name NAME]\n");
        return 2;
    }
    jwt_claims_t cl = {0};
    snprintf(cl.sub, sizeof(cl.sub), "%s", argv[2]);
    long long ttl = 86400;
    char **rest = calloc((size_t)argc, sizeof(*rest));
    int nrest = 0;
    for (int i = 3; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(f, "--role") == 0 && v) {
            cl.role = strcmp(v, "admin") == 0 ? JWT_ROLE_ADMIN : strcmp(v, "service") == 0 ? JWT_ROLE_SERVICE
                    : strcmp(v, "user") == 0 ? JWT_ROLE_USER : -1;
            if (cl.role < 0) {
                fprintf(stderr, "ringcast token: --role must be user, admin or service\n");
                return 2;
            }
            i++;
        } else if (strcmp(f, "--ttl") == 0 && v) {
            char *end;
            ttl = strtoll(v, &end, 10);
            if (*end || ttl < 1) {
                fprintf(stderr, "ringcast token: --ttl must be a positive number of seconds\n");
                return 2;
            }
            i++;
        } else if (strcmp(f, "--name") == 0 && v) {
            snprintf(cl.name, sizeof(cl.name), "%s", v);
            i++;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    cfg_t cfg;
    char err[256];
    cfg_defaults(&cfg);
    int rc = cfg_parse(&cfg, nrest, rest, err, sizeof(err));
    free(rest);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "ringcast token: %s\n", err);
        return 2;
    }
    if (!cfg.jwt_secret[0]) {
        fprintf(stderr, "ringcast token: --jwt-secret (or RINGCAST_JWT_SECRET) is required\n");
        return 2;
    }
    cl.exp = time(NULL) + ttl;
    char tok[JWT_MAX_LEN];
    rc = jwt_sign(&cl, (const uint8_t *)cfg.jwt_secret, strlen(cfg.jwt_secret), tok, sizeof(tok));
    if (rc < 0) {
        fprintf(stderr, "ringcast token: invalid user id or name\n");
        return 2;
    }
    printf("%s\n", tok);
    return 0;
}

typedef struct {
    actor_t **actors;
    int n;
} main_load_t;

static int main__load_chat(void *ud, store_chat_t *c)
{
    main_load_t *l = ud;
    int owner = (int)(hmap_hash(c->id, strlen(c->id)) % (uint64_t)l->n);
    return room_load(l->actors[owner], c);
}

/* --dev without a secret: reuse the one kept beside the SQLite file (so
 * tokens survive a restart), else generate and keep one. */
static void main__dev_secret(cfg_t *cfg)
{
    char path[1100] = "";
    if (strncmp(cfg->store, "sqlite:", 7) == 0) {
        const char *db = cfg->store + 7, *slash = strrchr(db, '/');
        snprintf(path, sizeof(path), "%.*s%s.dev-jwt-secret", slash ? (int)(slash - db + 1) : 0, db,
                 slash ? "" : "./");
    }
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    if (f) {
        if (fgets(cfg->jwt_secret, sizeof(cfg->jwt_secret), f))
            cfg->jwt_secret[strcspn(cfg->jwt_secret, "\r\n")] = 0;
        fclose(f);
    }
    if (!cfg->jwt_secret[0]) {
        uint8_t rnd[24];
        RAND_bytes(rnd, sizeof(rnd));
        for (size_t i = 0; i < sizeof(rnd); i++)
            sprintf(cfg->jwt_secret + 2 * i, "%02x", rnd[i]);
        if (path[0]) {
            char dir[1100];
            snprintf(dir, sizeof(dir), "%s", path);
            char *d = strrchr(dir, '/');
            if (d) {
                *d = 0;
                char cmd[1200];
                snprintf(cmd, sizeof(cmd), "%s", dir);
                for (char *q = cmd + 1; *q; q++)   /* mkdir -p */
                    if (*q == '/') { *q = 0; mkdir(cmd, 0755); *q = '/'; }
                mkdir(cmd, 0755);
            }
            if ((f = fopen(path, "w"))) {
                fprintf(f, "%s\n", cfg->jwt_secret);
                fclose(f);
            }
        }
        LOG_INF("--dev: generated a JWT secret (kept in %s)", path[0] ? path : "memory only");
    } else {
        LOG_INF("--dev: using the JWT secret kept in %s", path);
    }
}

static void *main__second_signal(void *arg)
{
    sigset_t *set = arg;
    int sig;
    sigwait(set, &sig);
    static const char msg[] = "second signal: exiting at once\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(1);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return main__token(argc, argv);

    static cfg_t cfg;
    char err[512];
    cfg_defaults(&cfg);
    int rc = cfg_parse(&cfg, argc - 1, argv + 1, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "ringcast: %s\n", err);
        return 2;
    }
    log_init(cfg.log_level, cfg.log_format);
    log_set_thread("main");
    if (strncmp(cfg.store, "mongodb", 7) == 0) {
        if (mongo_write_concern_check(cfg.mongo_write_concern, err, sizeof(err)) < 0) {
            fprintf(stderr, "ringcast: --mongo-write-concern: %s\n", err);
            return 2;
        }
        /* store_open reads it from the environment (persistence/mongo.h);
         * the default is left unset so the URI's own w/journal apply. */
        if (strcmp(cfg.mongo_write_concern, "w:1,j:true") != 0)
            setenv(MONGO_WRITE_CONCERN_ENV, cfg.mongo_write_concern, 1);
    }
    if (cfg.dev && !cfg.jwt_secret[0])
        main__dev_secret(&cfg);
    sess_setup((const uint8_t *)cfg.jwt_secret, strlen(cfg.jwt_secret), pers_store_down_ms);

    /* static: the second-signal watcher waits on it while main returns and
     * exit handlers reuse main's stack (a TSan report, 2026-11-22). */
    static sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);   /* every thread inherits this */
    signal(SIGPIPE, SIG_IGN);

    int n = (int)cfg.shards;
    mbox_hub_t *hub = mbox_hub_new(n + 2, cfg.mailbox_cap);
    shard_t *shards = calloc((size_t)n, sizeof(*shards));
    actor_t **actors = calloc((size_t)n, sizeof(*actors));
    if (!hub || !shards || !actors) {
        fprintf(stderr, "ringcast: out of memory at startup\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (!(actors[i] = calloc(1, sizeof(**actors)))) {
            fprintf(stderr, "ringcast: out of memory at startup\n");
            return 1;
        }
        actors[i]->sh = &shards[i];
        actors[i]->dedup_max = MAIN_DEDUP_PER_ROOM;
    }

    store_t *st;
    rc = store_open(cfg.store, &st, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ringcast: cannot open the store %s: %s\n", cfg.store, err);
        return rc == ERR_CONFIG ? 2 : 1;
    }
    /* shard ids must be set before room_load hashes members to shards */
    for (int i = 0; i < n; i++) {
        shards[i].id = i;
        shards[i].n = n;
    }
    main_load_t load = { .actors = actors, .n = n };
    rc = store_chats_all(st, main__load_chat, &load);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "ringcast: reading chats from the store failed: %s\n", err_str(rc));
        return 1;
    }

    pers_t *pers;
    if ((rc = pers_start(&pers, &cfg, hub, n, err, sizeof(err))) < 0) {
        fprintf(stderr, "ringcast: cannot start the persistence actor: %s\n", err);
        return 1;
    }

    uint32_t port = cfg.port;
    for (int i = 0; i < n; i++) {
        int fd = shard_listen(cfg.host, port, -1, &port);
        if (fd < 0) {
            fprintf(stderr, "ringcast: cannot listen on %s:%u: %s\n", cfg.host, cfg.port, err_str(fd));
            return 1;
        }
        /* shard_init resets the struct: keep the actor we prepared */
        rc = shard_init(&shards[i], i, n, &cfg, &sess_hooks, hub, fd);
        shards[i].actor = actors[i];
        if (rc < 0) {
            fprintf(stderr, "ringcast: shard %d failed to start: %s\n", i, err_str(rc));
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        if ((rc = shard_start(&shards[i])) < 0) {
            fprintf(stderr, "ringcast: cannot start shard thread %d: %s\n", i, err_str(rc));
            return 1;
        }
    }
    LOG_INF("ringcast: %d shards, store %s", n, cfg.store);
    LOG_INF("listening on %s:%u", cfg.host, port);
    if (cfg.dev) {
        jwt_claims_t cl = { .sub = "alice", .name = "Alice", .exp = time(NULL) + 86400 };
        char tok[JWT_MAX_LEN];
        if (jwt_sign(&cl, (const uint8_t *)cfg.jwt_secret, strlen(cfg.jwt_secret), tok, sizeof(tok)) > 0) {
            printf("\nA token for user \"alice\" (24 h):\n  %s\n", tok);
            printf("More tokens: ./zig-out/bin/ringcast token bob --jwt-secret %s\n", cfg.jwt_secret);
            printf("Try it: /usr/bin/python3 -c \"import socketio; s=socketio.Client(); "
                   "s.on('ready', lambda d: print('ready', d)); s.connect('http://%s:%u', "
                   "transports=['websocket'], auth={'token': '%s'}); s.sleep(1); s.disconnect()\"\n\n",
                   cfg.host, port, tok);
            fflush(stdout);
        }
    }

    int sig;
    sigwait(&sigs, &sig);
    LOG_INF("signal %d: draining (a second signal exits at once)", sig);
    pthread_t watcher;
    pthread_create(&watcher, NULL, main__second_signal, &sigs);
    for (int i = 0; i < n; i++)
        shard_stop(&shards[i]);
    for (int i = 0; i < n; i++)
        shard_join(&shards[i]);
    pers_stop(pers);
    /* Every thread has stopped: free what is still in flight (confirmations
     * sent after the shards left, mail to closed sockets). */
    for (int from = 0; from < n + 2; from++) {
        for (int to = 0; to < n + 2; to++) {
            mbox_msg_t m;
            while (mbox_pop(hub, from, to, &m, 1))
                sess_discard_mail(&m);
        }
    }
    for (int i = 0; i < n; i++) {
        room_free_all(actors[i]);
        hmap_deinit(&actors[i]->users);
        hmap_deinit(&actors[i]->subs);
        free(actors[i]->ws_pool);
        free(actors[i]);
        shard_deinit(&shards[i]);
    }
    free(actors);
    free(shards);
    mbox_hub_free(hub);
    LOG_INF("stopped");
    return 0;
}
