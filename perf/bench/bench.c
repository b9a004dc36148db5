/* bench.c - `ringcast-bench`, the load harness of docs/perf.md.
 *
 * One thread, one epoll loop, thousands of rc_client connections
 * (src/client/rc_client.h). It mints its own tokens (wire/jwt.h), creates the
 * scenario's rooms with chat:create, then publishes message:send either open
 * loop at a fixed rate (every send has an intended time t_k = t0 + k/rate,
 * and latency is measured from t_k, not from when the harness got round to
 * it: no coordinated omission) or closed loop (firehose: each sender keeps
 * --window sends in flight). The body of every message carries the sender's
 * slot, its per-sender counter k and t_k in CLOCK_MONOTONIC ns; the tempId
 * repeats slot and t_k so acks and confirmations are timed too.
 *
 * Checked while measuring, for every delivery: the room's seq only grows at
 * each receiver (a smaller or equal seq is a duplicate or a reorder), each
 * sender's k arrives at each receiver as k+1 after k (a jump is a loss), and
 * after the drain the deliveries equal sum over acked sends of (members - 1).
 * Any failure prints "INTEGRITY FAILURE" and the exit status is 1.
 *
 * Back-of-envelope (fanout, the heaviest scenario): 200k deliveries/s, each a
 * ~260-byte JSON frame parsed into jansson by the client library (~1.5 us)
 * plus a ~90-byte message:confirmed: ~0.5-0.7 of one core for the harness,
 * which shares this 2-core machine with the broker. The harness is therefore
 * expected to be a co-bottleneck at the top of the fanout step ladder; its
 * own CPU time is recorded per step (harness_cpu_pct) so a reader can tell.
 *
 * Exit: 0 ok, 1 integrity failure (loss, duplicate, reorder, failed acks,
 * unexpected disconnects), 2 usage, 3 setup failure (connect, room creation).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../../src/client/rc_client.h"
#include "../../wire/jwt.h"
#include "hist.h"

#define BENCH_EVENTS 1024
#define BENCH_TIMER_SCAN_MS 20
#define BENCH_LOG_MAX 10            /* integrity problems printed one by one */
#define BENCH_RATES_MAX 32
#define BENCH_SENDS_PER_TURN 20000  /* bounded work between two epoll waits */

typedef struct {
    rcc_t *c;
    uint32_t idx;
    int reg_fd;             /* fd registered in epoll, -1 none     */
    uint32_t reg_sid;       /* rcc_sock_id at registration         */
    uint32_t reg_ev;        /* events registered                   */
    int32_t room;           /* room index, -1 none                 */
    int32_t slot;           /* sender slot in the room, -1 none    */
    int64_t last_seq;       /* highest seq delivered in its room   */
    uint32_t *next_k;       /* per sender slot: next k expected    */
    uint32_t sent_k;        /* next k this sender sends            */
    uint32_t inflight;      /* sends without ack (closed loop)     */
    uint32_t chats_seen;    /* chat:new events                     */
    bool ready, dirty, started;
    uint64_t conn_start_ns;
    char uid[40];
} bc_t;

typedef struct {
    char id[160];           /* from the chat:create ack            */
    uint32_t first, n;      /* members are clients first..first+n-1 */
    uint32_t nsend;         /* senders: the first nsend members    */
    bool created;
} broom_t;

typedef struct {
    hist_t lat, ack, confirm;
    uint64_t deliveries, sent, acked, ack_err, ack_lost, emit_fail, expected;
    uint64_t confirms, failed_msgs;
    uint64_t raw_taken, raw_declined;   /* events handled by on_raw / declined to jansson */
    uint64_t disc;                      /* clients dropped during the step */
    uint64_t t0_ns, t_end_ns, t_last_deliv_ns;
} bstep_t;

static struct {
    /* options */
    const char *host, *secret, *scenario, *system, *out_path, *tags[16];
    int ntags;
    uint16_t port;
    rcc_enc_t enc;
    uint32_t clients, room_size, senders, window, body_bytes, src_addrs, conn_conc;
    double rates[BENCH_RATES_MAX];
    int nrates;
    double duration_s, warmup_s, drain_s, stop_p99_ms, hold_s, setup_timeout_s;
    int server_pid;
    bool closed_loop, storm, no_raw;
    /* state */
    int ep;
    bc_t *cl;
    broom_t *rooms;
    uint32_t nrooms;
    uint32_t *dirty;
    uint32_t ndirty;
    uint32_t ready_count, rooms_created, conn_inflight;
    uint64_t chat_new_total, disconnects, unexpected_disc, room_err;
    uint64_t dup_reorder, gaps, strays, integrity_logged;
    struct { char reason[40]; uint64_t n; } disc_why[8];   /* unexpected drops by reason */
    bool measuring, sending, expect_disc, tearing_down;
    bstep_t st;
    hist_t conn_hist;
    char nonce[16];
    uint64_t last_timer_scan_ms;
} B;

/* ---- small helpers ---------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static uint64_t now_ms(void) { return now_ns() / 1000000; }

static void die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ringcast-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(status);
}

static void integrity(const char *fmt, ...)
{
    if (B.integrity_logged++ >= BENCH_LOG_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ringcast-bench: INTEGRITY: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static long proc_rss_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* CPU seconds (user + system) of pid, from /proc/PID/stat fields 14-15. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, stt = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
        return -1;
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* TCP socket memory of the whole machine in pages (/proc/net/sockstat). */
static long sockstat_tcp_mem_pages(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    char line[256];
    long inuse, orphan, tw, alloc, mem = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "TCP: inuse %ld orphan %ld tw %ld alloc %ld mem %ld", &inuse, &orphan, &tw, &alloc,
                   &mem) == 5)
            break;
    fclose(f);
    return mem;
}

/* Kernel slab bytes of TCP sockets and their inodes (struct tcp_sock is
 * ~2.3 KiB); the per-connection kernel cost that sockstat's mem (queued
 * buffer pages only) leaves out. -1 when /proc/slabinfo is unreadable. */
static long slab_tcp_bytes(void)
{
    FILE *f = fopen("/proc/slabinfo", "r");
    char line[512], name[64];
    long active, total, size, sum = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%63s %ld %ld %ld", name, &active, &total, &size) == 4 &&
            (strcmp(name, "TCP") == 0 || strcmp(name, "sock_inode_cache") == 0))
            sum += active * size;
    fclose(f);
    return sum;
}

static json_t *hist_json(const hist_t *h, bool cdf)
{
    json_t *o = json_pack("{sI sf sf sf sf sf sf sf}", "n", (json_int_t)h->n, "p50_us", hist_pct(h, 50) / 1e3,
                          "p90_us", hist_pct(h, 90) / 1e3, "p99_us", hist_pct(h, 99) / 1e3, "p999_us",
                          hist_pct(h, 99.9) / 1e3, "max_us", h->n ? h->max / 1e3 : 0.0, "min_us",
                          h->n ? h->min / 1e3 : 0.0, "mean_us", h->n ? h->sum / (double)h->n / 1e3 : 0.0);
    if (cdf && h->n) {   /* [value_us, cumulative fraction] at every non-empty bucket */
        json_t *a = json_array();
        uint64_t seen = 0;
        for (int i = 0; i < HIST_BUCKETS; i++) {
            if (!h->c[i])
                continue;
            seen += h->c[i];
            uint64_t v = hist_bucket_hi(i);
            json_array_append_new(a, json_pack("[f f]", (v > h->max ? h->max : v) / 1e3,
                                               (double)seen / (double)h->n));
        }
        json_object_set_new(o, "cdf", a);
    }
    return o;
}

/* ---- epoll registration ----------------------------------------------- */

static void bc_sync(bc_t *b)
{
    int fd = rcc_fd(b->c);
    uint32_t sid = rcc_sock_id(b->c);
    uint32_t ev = EPOLLIN | (rcc_want_write(b->c) ? EPOLLOUT : 0);
    if (fd < 0) {   /* the library closed it: closing dropped it from epoll */
        b->reg_fd = -1;
        return;
    }
    struct epoll_event e = { .events = ev, .data.u64 = b->idx };
    if (fd != b->reg_fd || sid != b->reg_sid) {
        if (epoll_ctl(B.ep, EPOLL_CTL_ADD, fd, &e) < 0 &&
            (errno != EEXIST || epoll_ctl(B.ep, EPOLL_CTL_MOD, fd, &e) < 0))
            die(3, "epoll_ctl add: %s", strerror(errno));
        b->reg_fd = fd, b->reg_sid = sid, b->reg_ev = ev;
    } else if (ev != b->reg_ev) {
        if (epoll_ctl(B.ep, EPOLL_CTL_MOD, fd, &e) < 0)
            die(3, "epoll_ctl mod: %s", strerror(errno));
        b->reg_ev = ev;
    }
}

static void bc_dirty(bc_t *b)
{
    if (!b->dirty) {
        b->dirty = true;
        B.dirty[B.ndirty++] = b->idx;
    }
}

/* ---- callbacks ---------------------------------------------------------- */

static void on_ready(rcc_t *c, void *ud, json_t *chats)
{
    bc_t *b = ud;
    uint64_t t = now_ns();
    if (!b->ready) {
        b->ready = true;
        B.ready_count++;
        B.conn_inflight--;
        hist_add(&B.conn_hist, t - b->conn_start_ns);
    }
}

static void on_disconnect(rcc_t *c, void *ud, const char *reason, bool will_reconnect)
{
    bc_t *b = ud;
    B.disconnects++;
    if (b->ready) {
        b->ready = false;
        B.ready_count--;
    } else if (b->started) {
        B.conn_inflight--;
    }
    if (!B.expect_disc) {
        B.unexpected_disc++;
        B.st.disc++;
        for (int i = 0; i < 8; i++)
            if (!B.disc_why[i].n || strcmp(B.disc_why[i].reason, reason) == 0) {
                snprintf(B.disc_why[i].reason, sizeof(B.disc_why[i].reason), "%s", reason);
                B.disc_why[i].n++;
                break;
            }
        if (B.unexpected_disc <= BENCH_LOG_MAX)
            fprintf(stderr, "ringcast-bench: client %u (%s) disconnected: %s\n", b->idx, b->uid, reason);
    }
}

/* parse_stamp_n parses "slot:k:t_ns:" (body) or "t<slot>.<k>.<t_ns>" (tempId)
 * from s[0..n), which need not be NUL-terminated. */
static bool parse_stamp_n(const char *s, size_t n, uint32_t *slot, uint32_t *k, uint64_t *t)
{
    const char *e = s + n;
    uint64_t v[3];
    if (s < e && *s == 't')
        s++;
    for (int f = 0; f < 3; f++) {
        const char *d = s;
        uint64_t x = 0;
        while (s < e && *s >= '0' && *s <= '9' && s - d < 20)
            x = x * 10 + (uint64_t)(*s++ - '0');
        if (s == d || (f < 2 && (s == e || (*s != ':' && *s != '.'))))
            return false;
        v[f] = x;
        if (f < 2)
            s++;
    }
    if (v[0] > UINT32_MAX || v[1] > UINT32_MAX)
        return false;
    *slot = (uint32_t)v[0], *k = (uint32_t)v[1], *t = v[2];
    return true;
}

/* The fields of message:new / message:confirmed the checks need, as byte
 * spans into the payload (raw hook) or into jansson strings (decode path). */
typedef struct {
    const char *room, *body, *temp, *sender;
    size_t room_n, body_n, temp_n, sender_n;
    int64_t seq;
    bool has_seq;
} bmsg_t;

/* deliver_new: every check of a message:new, whichever path found the fields. */
static void deliver_new(bc_t *b, const bmsg_t *m, uint64_t t)
{
    uint32_t slot, k;
    uint64_t ts;
    broom_t *r = b->room >= 0 ? &B.rooms[b->room] : NULL;
    if (!r || !m->room || !m->body || !m->has_seq || m->room_n != strlen(r->id) ||
        memcmp(m->room, r->id, m->room_n) != 0 || !parse_stamp_n(m->body, m->body_n, &slot, &k, &ts) ||
        slot >= r->nsend) {
        B.strays++;
        integrity("client %s: unexpected message:new (room %.*s)", b->uid, m->room ? (int)m->room_n : 1,
                  m->room ? m->room : "?");
        return;
    }
    const char *want = B.cl[r->first + slot].uid;   /* the message names its real sender */
    if (m->sender && (m->sender_n != strlen(want) || memcmp(m->sender, want, m->sender_n) != 0)) {
        B.strays++;
        integrity("client %s: message from slot %u says senderId %.*s, expected %s", b->uid, slot,
                  (int)m->sender_n, m->sender, want);
        return;
    }
    int64_t seq = m->seq;
    if (seq <= b->last_seq) {
        B.dup_reorder++;
        integrity("client %s room %s: seq %" PRId64 " after %" PRId64 " (duplicate or reorder)", b->uid, r->id, seq,
                  b->last_seq);
    } else {
        b->last_seq = seq;
    }
    if (k < b->next_k[slot]) {
        B.dup_reorder++;
        integrity("client %s: sender slot %u k %u again (expected %u)", b->uid, slot, k, b->next_k[slot]);
    } else {
        if (k > b->next_k[slot]) {
            B.gaps += k - b->next_k[slot];
            integrity("client %s: sender slot %u jumped from k %u to %u (lost)", b->uid, slot, b->next_k[slot], k);
        }
        b->next_k[slot] = k + 1;
    }
    B.st.deliveries++;
    B.st.t_last_deliv_ns = t;
    if (B.measuring)
        hist_add(&B.st.lat, t > ts ? t - ts : 0);
}

static void deliver_confirmed(bc_t *b, const bmsg_t *m, uint64_t t)
{
    uint32_t slot, k;
    uint64_t ts;
    B.st.confirms++;
    if (m->temp && parse_stamp_n(m->temp, m->temp_n, &slot, &k, &ts) && (int32_t)slot == b->slot && B.measuring)
        hist_add(&B.st.confirm, t > ts ? t - ts : 0);
}

/* ---- the raw path: fields straight from the payload bytes ---------------
 * rc_client offers every event to on_raw before decoding it. For the two
 * events that make up nearly all the traffic we only need four fields, so a
 * single pass over the top-level object (JSON or msgpack, any key order)
 * replaces the jansson tree. Anything unexpected (escapes in a field we
 * read, odd types) returns false and the library decodes as before. */

static size_t json_skip(const uint8_t *p, size_t n)   /* length of one value, 0: bad */
{
    size_t i = 0, depth = 0;
    do {
        if (i >= n)
            return 0;
        uint8_t ch = p[i];
        if (ch == '"') {
            for (i++; i < n && p[i] != '"'; i++)
                if (p[i] == '\\')
                    i++;
            if (i >= n)
                return 0;
            i++;
        } else if (ch == '{' || ch == '[') {
            depth++, i++;
        } else if (ch == '}' || ch == ']') {
            if (!depth)
                return 0;
            depth--, i++;
        } else if (!depth) {
            while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']')
                i++;
            return i;
        } else {
            i++;
        }
    } while (depth);
    return i;
}

/* bmsg_key stores a string or integer value under the key it belongs to. */
static bool bmsg_key(bmsg_t *m, const uint8_t *k, size_t kl, const uint8_t *s, size_t sn, bool is_str,
                     int64_t iv, bool is_int)
{
#define KEY(lit) (kl == sizeof(lit) - 1 && memcmp(k, lit, kl) == 0)
    if (KEY("seq")) {
        if (!is_int)
            return false;
        m->seq = iv, m->has_seq = true;
    } else if (KEY("roomId") || KEY("body") || KEY("tempId") || KEY("senderId")) {
        if (!is_str)
            return false;
        const char **dst = KEY("roomId") ? &m->room : KEY("body") ? &m->body : KEY("tempId") ? &m->temp : &m->sender;
        size_t *dn = KEY("roomId") ? &m->room_n : KEY("body") ? &m->body_n : KEY("tempId") ? &m->temp_n : &m->sender_n;
        *dst = (const char *)s, *dn = sn;
    }
    return true;
#undef KEY
}

static bool scan_json(const uint8_t *p, size_t n, bmsg_t *m)
{
    size_t i = 1;
    if (n < 2 || p[0] != '{')
        return false;
    while (i < n && p[i] != '}') {
        if (p[i] == ',')
            i++;
        if (i >= n || p[i] != '"')
            return false;
        const uint8_t *k = p + i + 1, *ke = memchr(k, '"', n - i - 1);
        if (!ke || ke + 1 >= p + n || ke[1] != ':')
            return false;
        i = (size_t)(ke - p) + 2;
        if (i >= n)
            return false;
        if (p[i] == '"') {
            const uint8_t *v = p + i + 1, *ve = memchr(v, '"', n - i - 1);
            if (!ve)
                return false;
            if (memchr(v, '\\', (size_t)(ve - v))) {
                /* an escape: fine in a field we do not read (bmsg_key refuses
                 * it for ours, and the library decodes the event instead) */
                size_t len = json_skip(p + i, n - i);
                if (!len || !bmsg_key(m, k, (size_t)(ke - k), NULL, 0, false, 0, false))
                    return false;
                i += len;
                continue;
            }
            if (!bmsg_key(m, k, (size_t)(ke - k), v, (size_t)(ve - v), true, 0, false))
                return false;
            i = (size_t)(ve - p) + 1;
        } else if (p[i] == '-' || (p[i] >= '0' && p[i] <= '9')) {
            size_t j = i + (p[i] == '-');
            int64_t x = 0;
            bool intg = true;
            for (; j < n && p[j] >= '0' && p[j] <= '9'; j++)
                x = x * 10 + (p[j] - '0');
            while (j < n && p[j] != ',' && p[j] != '}')   /* fraction or exponent: not an integer */
                j++, intg = false;
            if (!bmsg_key(m, k, (size_t)(ke - k), NULL, 0, false, p[i] == '-' ? -x : x, intg))
                return false;
            i = j;
        } else {
            size_t len = json_skip(p + i, n - i);
            if (!len || !bmsg_key(m, k, (size_t)(ke - k), NULL, 0, false, 0, false))
                return false;
            i += len;
        }
    }
    return i + 1 == n;
}

/* msgpack: one header; kind 's' str, 'i' int, 'a' array, 'm' map, 'x' other
 * with `cnt` body bytes (str: bytes, array: items, map: pairs). */
static size_t mp_head(const uint8_t *p, size_t n, char *kind, uint64_t *cnt, int64_t *iv)
{
    if (!n)
        return 0;
    uint8_t b = p[0];
    *kind = 'x', *cnt = 0, *iv = 0;
    if (b <= 0x7f) { *kind = 'i', *iv = b; return 1; }
    if (b >= 0xe0) { *kind = 'i', *iv = (int8_t)b; return 1; }
    if ((b & 0xf0) == 0x80) { *kind = 'm', *cnt = b & 15; return 1; }
    if ((b & 0xf0) == 0x90) { *kind = 'a', *cnt = b & 15; return 1; }
    if ((b & 0xe0) == 0xa0) { *kind = 's', *cnt = b & 31; return 1; }
    int lb = 0;
    char kd = 'x';
    bool sgn = false, body = true;
    switch (b) {
    case 0xc0: case 0xc2: case 0xc3: return 1;
    case 0xc4: case 0xc5: case 0xc6: lb = 1 << (b - 0xc4); break;
    case 0xc7: case 0xc8: case 0xc9: lb = 1 << (b - 0xc7); break;   /* + 1 type byte, below */
    case 0xca: *cnt = 4; return 1;
    case 0xcb: *cnt = 8; return 1;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: lb = 1 << (b - 0xcc), kd = 'i', body = false; break;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: lb = 1 << (b - 0xd0), kd = 'i', sgn = true, body = false; break;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: *cnt = 1 + (1u << (b - 0xd4)); return 1;
    case 0xd9: case 0xda: case 0xdb: lb = 1 << (b - 0xd9), kd = 's'; break;
    case 0xdc: case 0xdd: lb = 2 << (b - 0xdc), kd = 'a'; break;
    case 0xde: case 0xdf: lb = 2 << (b - 0xde), kd = 'm'; break;
    default: return 0;
    }
    if (n < 1u + (size_t)lb)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < lb; i++)
        v = v << 8 | p[1 + i];
    *kind = kd;
    if (kd == 'i') {
        *iv = sgn ? (int64_t)(v << (64 - 8 * lb)) >> (64 - 8 * lb) : (int64_t)v;
        if (!sgn && *iv < 0)
            *kind = 'x';   /* beyond int64; its bytes are in the header */
    } else if (body) {
        *cnt = v + (b >= 0xc7 && b <= 0xc9);
    } else {
        *cnt = v;
    }
    return 1 + (size_t)lb;
}

static size_t mp_skip(const uint8_t *p, size_t n)
{
    size_t i = 0;
    uint64_t owed = 1, cnt;
    char kind;
    int64_t iv;
    while (owed) {
        size_t h = mp_head(p + i, n - i, &kind, &cnt, &iv);
        if (!h)
            return 0;
        i += h, owed--;
        if (kind == 'a' || kind == 'm') {
            owed += kind == 'm' ? 2 * cnt : cnt;
            if (owed > n - i)
                return 0;
        } else if (kind != 'i') {
            if (cnt > n - i)
                return 0;
            i += (size_t)cnt;
        }
    }
    return i;
}

static bool scan_mp(const uint8_t *p, size_t n, bmsg_t *m)
{
    char kind;
    uint64_t cnt;
    int64_t iv;
    size_t i = mp_head(p, n, &kind, &cnt, &iv);
    if (!i || kind != 'm')
        return false;
    for (uint64_t e = cnt; e--;) {
        uint64_t kl;
        size_t h = mp_head(p + i, n - i, &kind, &kl, &iv);
        if (!h || kind != 's' || kl > n - i - h)
            return false;
        const uint8_t *k = p + i + h;
        i += h + (size_t)kl;
        size_t vl = mp_skip(p + i, n - i);
        h = vl ? mp_head(p + i, n - i, &kind, &cnt, &iv) : 0;
        if (!h || !bmsg_key(m, k, (size_t)kl, p + i + h, kind == 's' ? (size_t)cnt : 0, kind == 's', iv, kind == 'i'))
            return false;
        i += vl;
    }
    return i == n;
}

static bool on_raw(rcc_t *c, void *ud, const char *ev, size_t el, const uint8_t *p, size_t n, int enc)
{
    bool is_new = el == 11 && memcmp(ev, "message:new", 11) == 0;
    if (!p || !(is_new || (el == 17 && memcmp(ev, "message:confirmed", 17) == 0)))
        return false;
    bmsg_t m = { 0 };
    if (!(enc == RCC_JSON ? scan_json(p, n, &m) : scan_mp(p, n, &m))) {
        B.st.raw_declined++;
        return false;   /* the library decodes it; on_event runs the same checks */
    }
    B.st.raw_taken++;
    uint64_t t = now_ns();
    if (is_new)
        deliver_new(ud, &m, t);
    else
        deliver_confirmed(ud, &m, t);
    return true;
}

/* ---- the decode path: jansson, for everything else --------------------- */

static void bmsg_from_json(bmsg_t *m, json_t *p)
{
    json_t *v;
    *m = (bmsg_t){ 0 };
#define STR(key, f)                                                        \
    if ((v = json_object_get(p, key)) && json_is_string(v))                \
        m->f = json_string_value(v), m->f##_n = json_string_length(v);
    STR("roomId", room) STR("body", body) STR("tempId", temp) STR("senderId", sender)
#undef STR
    if ((v = json_object_get(p, "seq")) && json_is_integer(v))
        m->seq = json_integer_value(v), m->has_seq = true;
}

static void on_event(rcc_t *c, void *ud, const char *name, json_t *p)
{
    bc_t *b = ud;
    uint64_t t = now_ns();
    bmsg_t m;
    if (strcmp(name, "message:new") == 0) {
        bmsg_from_json(&m, p);
        deliver_new(b, &m, t);
    } else if (strcmp(name, "message:confirmed") == 0) {
        bmsg_from_json(&m, p);
        deliver_confirmed(b, &m, t);
    } else if (strcmp(name, "chat:new") == 0) {
        b->chats_seen++;
        B.chat_new_total++;
    } else if (strcmp(name, "message:failed") == 0) {
        B.st.failed_msgs++;
        integrity("client %s: message:failed", b->uid);
    }
}

static void on_create_ack(rcc_t *c, void *ud, json_t *ack)
{
    broom_t *r = &B.rooms[(uintptr_t)ud];
    const char *id = json_string_value(json_object_get(json_object_get(ack, "chat"), "id"));
    if (!ack || !json_is_true(json_object_get(ack, "ok")) || !id) {
        char *s = ack ? json_dumps(ack, JSON_COMPACT) : NULL;
        fprintf(stderr, "ringcast-bench: chat:create failed: %s\n", s ? s : "(no ack)");
        free(s);
        B.room_err++;
        return;
    }
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->created = true;
    B.rooms_created++;
}

static void bench_send(bc_t *b, uint64_t t_ns);

static void on_send_ack(rcc_t *c, void *ud, json_t *ack)
{
    bc_t *b = &B.cl[(uintptr_t)ud];
    uint64_t t = now_ns();
    b->inflight--;
    const char *tid = json_string_value(json_object_get(ack, "tempId"));
    uint32_t slot, k;
    uint64_t ts;
    if (!ack) {
        if (B.tearing_down)
            return;   /* rcc_free fails pending acks; the result is already written */
        B.st.ack_lost++;
        integrity("client %s: send without ack (connection dropped)", b->uid);
        return;
    }
    if (!json_is_true(json_object_get(ack, "ok")) || json_is_true(json_object_get(ack, "duplicate"))) {
        B.st.ack_err++;
        char *s = json_dumps(ack, JSON_COMPACT);
        integrity("client %s: send refused: %s", b->uid, s ? s : "?");
        free(s);
        return;
    }
    B.st.acked++;
    B.st.expected += B.rooms[b->room].n - 1;
    if (tid && parse_stamp_n(tid, strlen(tid), &slot, &k, &ts) && B.measuring)
        hist_add(&B.st.ack, t > ts ? t - ts : 0);
    if (B.closed_loop && B.sending && t < B.st.t_end_ns)
        bench_send(b, t);
}

/* ---- sending ------------------------------------------------------------ */

static void bench_send(bc_t *b, uint64_t t_ns)
{
    broom_t *r = &B.rooms[b->room];
    char tid[64], body[4096];
    snprintf(tid, sizeof(tid), "t%d.%u.%" PRIu64, b->slot, b->sent_k, t_ns);
    int n = snprintf(body, sizeof(body), "%d:%u:%" PRIu64 ":", b->slot, b->sent_k, t_ns);
    while ((uint32_t)n < B.body_bytes && n < (int)sizeof(body) - 1)
        body[n++] = 'x';
    body[n] = 0;
    json_t *p = json_pack("{ss ss ss ss}", "roomId", r->id, "tempId", tid, "type", "text", "body", body);
    int rc = p ? rcc_emit(b->c, "message:send", p, on_send_ack, (void *)(uintptr_t)b->idx) : -ENOMEM;
    json_decref(p);
    if (rc) {
        B.st.emit_fail++;
        integrity("client %s: rcc_emit failed (%d): harness backpressure or disconnect", b->uid, rc);
        return;
    }
    b->sent_k++;
    b->inflight++;
    B.st.sent++;
    bc_dirty(b);
}

/* ---- the loop ----------------------------------------------------------- */

/* flush_dirty pushes out what emits queued (rcc_emit only appends). */
static void flush_dirty(void)
{
    for (uint32_t i = 0; i < B.ndirty; i++) {   /* callbacks may add more while we flush */
        bc_t *b = &B.cl[B.dirty[i]];
        b->dirty = false;
        rcc_flush(b->c);
        bc_sync(b);
    }
    B.ndirty = 0;
}

static void loop_once(uint64_t timeout_ns)
{
    struct epoll_event ev[BENCH_EVENTS];
    flush_dirty();   /* before sleeping: a queued send must not wait for the next event */
    struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000ull), .tv_nsec = (long)(timeout_ns % 1000000000ull) };
    int n = epoll_pwait2(B.ep, ev, BENCH_EVENTS, &ts, NULL);
    if (n < 0 && errno != EINTR)
        die(3, "epoll_pwait2: %s", strerror(errno));
    uint64_t ms = now_ms();
    for (int i = 0; i < n; i++) {
        bc_t *b = &B.cl[ev[i].data.u64];
        if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            rcc_on_readable(b->c, ms);
        if (ev[i].events & EPOLLOUT)
            rcc_on_writable(b->c, ms);
        bc_sync(b);
    }
    if (ms - B.last_timer_scan_ms >= BENCH_TIMER_SCAN_MS) {
        B.last_timer_scan_ms = ms;
        for (uint32_t i = 0; i < B.clients; i++)
            if (B.cl[i].started && rcc_next_timer_ms(B.cl[i].c) <= ms) {
                rcc_on_timer(B.cl[i].c, ms);
                bc_sync(&B.cl[i]);
            }
    }
    flush_dirty();
}

/* loop_until runs the loop until done() or timeout_s; returns done(). */
static bool loop_until(bool (*done)(void), double timeout_s)
{
    uint64_t end = now_ns() + (uint64_t)(timeout_s * 1e9);
    while (!done() && now_ns() < end)
        loop_once(5000000);
    return done();
}

/* ---- phases ------------------------------------------------------------- */

static bool all_ready(void) { return B.ready_count == B.clients; }
static bool all_rooms(void) { return B.rooms_created + B.room_err == B.nrooms; }
static bool all_subscribed(void)
{
    uint64_t want = 0;
    for (uint32_t r = 0; r < B.nrooms; r++)
        want += B.rooms[r].n;
    return B.chat_new_total >= want;
}
static bool drained(void)
{
    bstep_t *s = &B.st;
    return s->acked + s->ack_err + s->ack_lost == s->sent && s->deliveries >= s->expected;
}

/* connect_all starts every client (at most conn_conc handshakes at once) and
 * waits for `ready`. Returns the seconds it took. */
static double connect_all(bool first)
{
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(B.setup_timeout_s * 1e9);
    uint32_t next = 0;
    hist_init(&B.conn_hist);
    while (!all_ready() && now_ns() < end) {
        uint64_t ms = now_ms();
        while (next < B.clients && B.conn_inflight < B.conn_conc) {
            bc_t *b = &B.cl[next++];
            b->conn_start_ns = now_ns();
            int rc = rcc_connect(b->c, ms);
            if (rc)
                die(3, "connect client %u: %s (ports or FDs exhausted?)", b->idx, strerror(-rc));
            b->started = true;
            B.conn_inflight++;
            bc_sync(b);
        }
        loop_once(2000000);
    }
    if (!all_ready())
        die(3, "only %u of %u clients ready after %.0f s", B.ready_count, B.clients, B.setup_timeout_s);
    return (now_ns() - t0) / 1e9;
}

static void create_rooms(void)
{
    for (uint32_t r = 0; r < B.nrooms; r++) {
        broom_t *rm = &B.rooms[r];
        json_t *mem = json_array();
        for (uint32_t i = 1; i < rm->n; i++)
            json_array_append_new(mem, json_string(B.cl[rm->first + i].uid));
        json_t *p = json_pack("{ss so ss}", "type", "group", "members", mem, "name", "bench");
        bc_t *creator = &B.cl[rm->first];
        if (rcc_emit(creator->c, "chat:create", p, on_create_ack, (void *)(uintptr_t)r) != 0)
            die(3, "chat:create emit failed");
        json_decref(p);
        bc_dirty(creator);
        if ((r & 63) == 63)
            loop_once(0);
    }
    if (!loop_until(all_rooms, B.setup_timeout_s) || B.room_err)
        die(3, "rooms: %u of %u created, %" PRIu64 " refused", B.rooms_created, B.nrooms, B.room_err);
    if (!loop_until(all_subscribed, B.setup_timeout_s))
        fprintf(stderr, "ringcast-bench: warning: only %" PRIu64 " chat:new events seen\n", B.chat_new_total);
}

typedef struct {
    double rate;            /* per sender, msgs/s (0: closed loop) */
    bool warmup;
} bplan_t;

/* run_step sends for duration_s, then drains; the result is in B.st. */
static void run_step(double rate, double duration_s, bool record)
{
    memset(&B.st, 0, sizeof(B.st));
    hist_init(&B.st.lat), hist_init(&B.st.ack), hist_init(&B.st.confirm);
    uint32_t nsend = 0, *order = calloc((size_t)B.nrooms * B.senders + 1, sizeof(uint32_t));
    for (uint32_t s = 0; s < B.senders; s++)   /* interleave rooms: room 0 slot 0, room 1 slot 0, ... */
        for (uint32_t r = 0; r < B.nrooms; r++)
            if (s < B.rooms[r].nsend)
                order[nsend++] = B.rooms[r].first + s;
    B.measuring = record;
    B.sending = true;
    uint64_t t0 = now_ns() + 10000000;
    B.st.t0_ns = t0;
    B.st.t_end_ns = t0 + (uint64_t)(duration_s * 1e9);
    while (now_ns() < t0)
        loop_once(t0 - now_ns());
    if (B.closed_loop) {
        for (uint32_t j = 0; j < nsend; j++)
            for (uint32_t w = 0; w < B.window; w++)
                bench_send(&B.cl[order[j]], now_ns());
        while (now_ns() < B.st.t_end_ns)
            loop_once(1000000);
    } else {
        double interval = 1e9 / (rate * nsend);
        uint64_t j = 0;
        for (;;) {
            uint64_t t = now_ns();
            if (t >= B.st.t_end_ns)
                break;
            uint32_t burst = 0;
            uint64_t due;
            while ((due = t0 + (uint64_t)(j * interval)) <= t && due < B.st.t_end_ns &&
                   burst++ < BENCH_SENDS_PER_TURN) {
                bench_send(&B.cl[order[j % nsend]], due);
                j++;
            }
            due = t0 + (uint64_t)(j * interval);
            t = now_ns();
            loop_once(due > t ? due - t : 0);
        }
    }
    B.sending = false;
    loop_until(drained, B.drain_s);
    free(order);
}

static json_t *step_json(double rate, double wall_s, double bcpu, double hcpu)
{
    bstep_t *s = &B.st;
    double span = s->t_last_deliv_ns > s->t0_ns ? (s->t_last_deliv_ns - s->t0_ns) / 1e9 : 0;
    double dps = span > 0 ? s->deliveries / span : 0;
    uint32_t nsend = 0;
    for (uint32_t r = 0; r < B.nrooms; r++)
        nsend += B.rooms[r].nsend;
    double offered_msgs = B.closed_loop ? 0 : rate * nsend;
    double offered_deliv = 0;
    for (uint32_t r = 0; r < B.nrooms && !B.closed_loop; r++)
        offered_deliv += rate * B.rooms[r].nsend * (B.rooms[r].n - 1);
    json_t *o = json_pack("{sf sf sf sI sI sI sI sI sI sI sI sI sf sf sf sf}", "rate_per_sender", rate,
                          "offered_msgs_s", offered_msgs, "offered_deliveries_s", offered_deliv, "sent",
                          (json_int_t)s->sent, "acked", (json_int_t)s->acked, "ack_errors",
                          (json_int_t)s->ack_err, "ack_lost", (json_int_t)s->ack_lost, "emit_fail",
                          (json_int_t)s->emit_fail, "expected", (json_int_t)s->expected, "deliveries",
                          (json_int_t)s->deliveries, "confirms", (json_int_t)s->confirms, "failed_msgs",
                          (json_int_t)s->failed_msgs, "deliveries_s", dps, "wall_s", wall_s,
                          "server_cpu_pct", bcpu, "harness_cpu_pct", hcpu);
    json_object_set_new(o, "raw_events", json_integer((json_int_t)s->raw_taken));
    json_object_set_new(o, "raw_declined", json_integer((json_int_t)s->raw_declined));
    json_object_set_new(o, "disconnects", json_integer((json_int_t)s->disc));
    json_object_set_new(o, "unacked_after_drain", json_integer((json_int_t)(s->sent - s->acked - s->ack_err - s->ack_lost)));
    json_object_set_new(o, "harness_us_per_event",
                        json_real(s->deliveries + s->confirms ? hcpu / 100 * wall_s * 1e6 / (double)(s->deliveries + s->confirms) : 0));
    json_object_set_new(o, "latency", hist_json(&s->lat, true));
    json_object_set_new(o, "ack", hist_json(&s->ack, false));
    json_object_set_new(o, "confirm", hist_json(&s->confirm, false));
    return o;
}

static void print_step(json_t *o)
{
    json_t *l = json_object_get(o, "latency"), *a = json_object_get(o, "ack"), *c = json_object_get(o, "confirm");
#define F(obj, k) json_real_value(json_object_get(obj, k))
    printf("%-9s %-8s %-8s %8.1f %10.0f %10.0f %8.0f %8.0f %8.0f %8.0f %9.0f %8.0f %8.0f %6.0f %6.0f\n", B.system,
           B.scenario, B.enc == RCC_JSON ? "json" : "msgpack", F(o, "rate_per_sender"), F(o, "offered_deliveries_s"),
           F(o, "deliveries_s"), F(l, "p50_us"), F(l, "p90_us"), F(l, "p99_us"), F(l, "p999_us"), F(l, "max_us"),
           F(a, "p99_us"), F(c, "p99_us"), F(o, "server_cpu_pct"), F(o, "harness_cpu_pct"));
#undef F
    fflush(stdout);
}

static bool integrity_ok(const bstep_t *s)
{
    /* Every send acked within the drain, too: otherwise deliveries of the
     * unacked ones are counted but not expected, and a step that only
     * happened to balance (overload) would pass unverified. */
    return s->deliveries == s->expected && s->acked + s->ack_err + s->ack_lost == s->sent && s->ack_err == 0 &&
           s->ack_lost == 0 && s->emit_fail == 0 && s->failed_msgs == 0;
}

/* ---- setup -------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: ringcast-bench --port P --jwt-secret S --scenario fanout|chat|firehose|idle|storm\n"
            "  [--host 127.0.0.1] [--system LABEL] [--server-pid PID] [--json|--msgpack]\n"
            "  [--clients N] [--room-size M] [--senders-per-room K] [--rate R | --rates R1,R2,..]\n"
            "  [--closed-loop] [--window W] [--duration S] [--warmup S] [--drain-timeout S]\n"
            "  [--stop-p99-ms X] [--body-bytes B] [--src-addrs N] [--connect-concurrency N]\n"
            "  [--hold S] [--setup-timeout S] [--out FILE.json] [--tag KEY=VALUE]... [--no-raw]\n"
            "  --no-raw: decode every event with jansson (the client library's default path)\n"
            "  instead of scanning message:new/confirmed in place (to measure the harness)\n");
    exit(2);
}

static void scenario_defaults(const char *s)
{
    B.room_size = 0, B.senders = 0, B.nrates = 1, B.rates[0] = 1, B.duration_s = 5, B.warmup_s = 1;
    if (strcmp(s, "fanout") == 0) {
        static const double r[] = { 5, 10, 20, 30, 50, 75, 100, 150, 200 };   /* 10k..400k deliveries/s */
        B.clients = 2000, B.room_size = 2000, B.senders = 1;
        memcpy(B.rates, r, sizeof(r));
        B.nrates = sizeof(r) / sizeof(r[0]);
        B.stop_p99_ms = 5, B.duration_s = 3;
    } else if (strcmp(s, "chat") == 0) {
        B.clients = 10000, B.room_size = 10, B.senders = 10, B.duration_s = 10;
    } else if (strcmp(s, "firehose") == 0) {
        B.clients = 1000, B.room_size = 10, B.senders = 10, B.closed_loop = true, B.window = 1;
    } else if (strcmp(s, "idle") == 0) {
        B.clients = 19000;   /* 50,000 scaled to this machine's RLIMIT_NOFILE hard limit (20,000) */
    } else if (strcmp(s, "storm") == 0) {
        B.clients = 10000, B.room_size = 10;
    } else {
        usage();
    }
}

static void parse_rates(const char *s)
{
    B.nrates = 0;
    for (char *e; *s && B.nrates < BENCH_RATES_MAX; s = *e ? e + 1 : e) {
        B.rates[B.nrates++] = strtod(s, &e);
        if (e == s)
            usage();
    }
}

static void parse_args(int argc, char **argv)
{
    B.host = "127.0.0.1", B.system = "ringcast", B.enc = RCC_JSON, B.body_bytes = 64, B.src_addrs = 4;
    B.conn_conc = 256, B.drain_s = 10, B.setup_timeout_s = 60, B.hold_s = 2, B.server_pid = -1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc)
            scenario_defaults(B.scenario = argv[i + 1]);
    if (!B.scenario)
        usage();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--scenario")) continue;
        else if (ARG("--host")) B.host = v;
        else if (ARG("--port")) B.port = (uint16_t)atoi(v);
        else if (ARG("--jwt-secret")) B.secret = v;
        else if (ARG("--system")) B.system = v;
        else if (ARG("--server-pid")) B.server_pid = atoi(v);
        else if (strcmp(a, "--json") == 0) B.enc = RCC_JSON;
        else if (strcmp(a, "--msgpack") == 0) B.enc = RCC_MSGPACK;
        else if (ARG("--clients")) B.clients = (uint32_t)atoi(v);
        else if (ARG("--room-size")) B.room_size = (uint32_t)atoi(v);
        else if (ARG("--senders-per-room")) B.senders = (uint32_t)atoi(v);
        else if (ARG("--rate")) B.rates[0] = atof(v), B.nrates = 1;
        else if (ARG("--rates")) parse_rates(v);
        else if (strcmp(a, "--closed-loop") == 0) B.closed_loop = true;
        else if (strcmp(a, "--no-raw") == 0) B.no_raw = true;
        else if (ARG("--window")) B.window = (uint32_t)atoi(v);
        else if (ARG("--duration")) B.duration_s = atof(v);
        else if (ARG("--warmup")) B.warmup_s = atof(v);
        else if (ARG("--drain-timeout")) B.drain_s = atof(v);
        else if (ARG("--stop-p99-ms")) B.stop_p99_ms = atof(v);
        else if (ARG("--body-bytes")) B.body_bytes = (uint32_t)atoi(v);
        else if (ARG("--src-addrs")) B.src_addrs = (uint32_t)atoi(v);
        else if (ARG("--connect-concurrency")) B.conn_conc = (uint32_t)atoi(v);
        else if (ARG("--hold")) B.hold_s = atof(v);
        else if (ARG("--setup-timeout")) B.setup_timeout_s = atof(v);
        else if (ARG("--out")) B.out_path = v;
        else if (ARG("--tag") && B.ntags < 16) B.tags[B.ntags++] = v;
        else usage();
#undef ARG
    }
    if (!B.port || !B.secret || !B.clients || B.src_addrs < 1 || B.src_addrs > 250 || B.body_bytes > 4000 ||
        (B.room_size && (B.room_size < 2 || B.senders > B.room_size)) || B.duration_s <= 0 || B.duration_s > 600)
        usage();
    if (B.closed_loop && !B.window)
        B.window = 1;
    B.storm = strcmp(B.scenario, "storm") == 0;
}

/* raise_nofile: soft limit up to the hard limit (raising the hard limit
 * needs CAP_SYS_RESOURCE, which this sandbox does not grant). */
static void raise_nofile(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < B.clients + 64)
        die(3, "RLIMIT_NOFILE hard limit %lu is below %u clients + 64; lower --clients",
            (unsigned long)rl.rlim_cur, B.clients);
}

static void make_clients(void)
{
    B.cl = calloc(B.clients, sizeof(bc_t));
    B.dirty = calloc(B.clients, sizeof(uint32_t));
    snprintf(B.nonce, sizeof(B.nonce), "%x", (unsigned)(now_ns() ^ (uint64_t)getpid() << 20) & 0xffffff);
    char tok[1024], src[32];
    jwt_claims_t cl = { .role = JWT_ROLE_USER, .exp = time(NULL) + 86400 };
    for (uint32_t i = 0; i < B.clients; i++) {
        bc_t *b = &B.cl[i];
        b->idx = i, b->reg_fd = -1, b->room = -1, b->slot = -1, b->last_seq = 0;
        snprintf(b->uid, sizeof(b->uid), "b%s-%u", B.nonce, i);
        snprintf(cl.sub, sizeof(cl.sub), "%s", b->uid);
        snprintf(cl.name, sizeof(cl.name), "%s", b->uid);
        if (jwt_sign(&cl, (const uint8_t *)B.secret, strlen(B.secret), tok, sizeof(tok)) < 0)
            die(3, "jwt_sign failed");
        snprintf(src, sizeof(src), "127.0.0.%u", 1 + i % B.src_addrs);
        rcc_opts_t o = { .host = B.host, .port = B.port, .token = tok, .encoding = B.enc, .bind_addr = src,
                         .reconnect = false, .handshake_timeout_ms = (uint32_t)(B.setup_timeout_s * 1000),
                         .ack_timeout_ms = 0, .out_max_bytes = 64u << 20, .seed = 0x9e3779b97f4a7c15ull + i,
                         .cbs = { .on_ready = on_ready, .on_event = on_event, .on_disconnect = on_disconnect,
                                  .on_raw = B.no_raw ? NULL : on_raw }, .ud = b };
        if (!(b->c = rcc_new(&o)))
            die(3, "rcc_new failed");
    }
    B.nrooms = B.room_size ? B.clients / B.room_size : 0;
    B.rooms = calloc(B.nrooms + 1, sizeof(broom_t));
    for (uint32_t r = 0; r < B.nrooms; r++) {
        broom_t *rm = &B.rooms[r];
        rm->first = r * B.room_size, rm->n = B.room_size, rm->nsend = B.senders;
        for (uint32_t i = 0; i < rm->n; i++) {
            bc_t *b = &B.cl[rm->first + i];
            b->room = (int32_t)r;
            b->slot = i < rm->nsend ? (int32_t)i : -1;
            b->next_k = calloc(rm->nsend ? rm->nsend : 1, sizeof(uint32_t));
        }
    }
}

/* storm: every client drops its connection and reconnects at the same
 * moment; returns the seconds until all are `ready` again. */
static double storm(void)
{
    B.expect_disc = true;
    for (uint32_t i = 0; i < B.clients; i++) {
        rcc_close(B.cl[i].c);
        bc_sync(&B.cl[i]);
    }
    B.conn_inflight = 0;
    uint32_t saved = B.conn_conc;
    B.conn_conc = B.clients;   /* all at once */
    double s = connect_all(false);
    B.conn_conc = saved;
    B.expect_disc = false;
    return s;
}

static json_t *meta_json(void)
{
    struct utsname u;
    uname(&u);
    double la[3] = { 0 };
    getloadavg(la, 3);
    json_t *m = json_pack("{ss ss ss sI sI sI sI sI sf sf ss ss s[fff] sI}", "system", B.system, "scenario",
                          B.scenario, "encoding", B.enc == RCC_JSON ? "json" : "msgpack", "clients",
                          (json_int_t)B.clients, "rooms", (json_int_t)B.nrooms, "room_size",
                          (json_int_t)B.room_size, "senders_per_room", (json_int_t)B.senders, "body_bytes",
                          (json_int_t)B.body_bytes, "duration_s", B.duration_s, "warmup_s", B.warmup_s,
                          "mode", B.closed_loop ? "closed" : "open", "kernel", u.release, "loadavg_start", la[0],
                          la[1], la[2], "nproc", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN));
    for (int i = 0; i < B.ntags; i++) {
        const char *eq = strchr(B.tags[i], '=');
        if (eq) {
            char k[64];
            snprintf(k, sizeof(k), "%.*s", (int)(eq - B.tags[i]), B.tags[i]);
            json_object_set_new(m, k, json_string(eq + 1));
        }
    }
    return m;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    raise_nofile();
    B.ep = epoll_create1(EPOLL_CLOEXEC);
    make_clients();
    json_t *res = json_object();
    json_object_set_new(res, "meta", meta_json());
    int status = 0;

    /* 1. connect: broker RSS and kernel TCP memory before and after */
    long rss0 = B.server_pid > 0 ? proc_rss_kib(B.server_pid) : -1, mem0 = sockstat_tcp_mem_pages();
    long slab0 = slab_tcp_bytes();
    double conn_s = connect_all(true);
    long rss1 = B.server_pid > 0 ? proc_rss_kib(B.server_pid) : -1, mem1 = sockstat_tcp_mem_pages();
    json_t *conn = json_pack("{sI sf sf}", "clients", (json_int_t)B.clients, "seconds", conn_s, "connects_per_s",
                             B.clients / conn_s);
    json_object_set_new(conn, "handshake", hist_json(&B.conn_hist, false));
    json_object_set_new(res, "connect", conn);
    fprintf(stderr, "ringcast-bench: %u clients ready in %.2f s (%.0f/s)\n", B.clients, conn_s, B.clients / conn_s);

    /* 2. rooms */
    if (B.nrooms)
        create_rooms();

    /* 3. idle: hold, then measure memory once the broker settled */
    if (!B.nrooms || B.storm) {
        uint64_t end = now_ns() + (uint64_t)(B.hold_s * 1e9);
        while (now_ns() < end)
            loop_once(5000000);
    }
    long rss2 = B.server_pid > 0 ? proc_rss_kib(B.server_pid) : -1, mem2 = sockstat_tcp_mem_pages();
    long page = sysconf(_SC_PAGESIZE);
    json_t *mem = json_pack("{sI sI sI sf sI sI sf}", "server_rss_before_kib", (json_int_t)rss0,
                            "server_rss_connected_kib", (json_int_t)rss1, "server_rss_settled_kib",
                            (json_int_t)rss2, "server_rss_per_conn_bytes",
                            rss0 > 0 ? (rss2 - rss0) * 1024.0 / B.clients : -1.0, "tcp_mem_before_kib",
                            (json_int_t)(mem0 * page / 1024), "tcp_mem_settled_kib", (json_int_t)(mem2 * page / 1024),
                            "tcp_mem_per_conn_bytes_both_ends", mem0 >= 0 ? (double)(mem2 - mem0) * page / B.clients : -1.0);
    (void)mem1;
    long slab2 = slab_tcp_bytes();
    json_object_set_new(mem, "tcp_slab_per_socket_bytes",
                        json_real(slab0 >= 0 && slab2 >= 0 ? (double)(slab2 - slab0) / (2.0 * B.clients) : -1.0));
    json_object_set_new(res, "memory", mem);
    fprintf(stderr,
            "ringcast-bench: server RSS %ld -> %ld KiB (%.0f B/conn); kernel TCP buffer mem %ld -> %ld KiB; "
            "TCP socket slab %.0f B per socket\n",
            rss0, rss2, rss0 > 0 ? (rss2 - rss0) * 1024.0 / B.clients : -1.0, mem0 * page / 1024, mem2 * page / 1024,
            slab0 >= 0 ? (double)(slab2 - slab0) / (2.0 * B.clients) : -1.0);

    /* 4. storm */
    if (B.storm) {
        double s = storm();
        json_object_set_new(res, "storm", json_pack("{sI sf sf}", "clients", (json_int_t)B.clients, "seconds", s,
                                                     "ready_per_s", B.clients / s));
        json_object_set_new(json_object_get(res, "storm"), "handshake", hist_json(&B.conn_hist, false));
        printf("%-9s storm    %-8s %u clients all ready again in %.3f s (p99 handshake %.1f ms)\n", B.system,
               B.enc == RCC_JSON ? "json" : "msgpack", B.clients, s, hist_pct(&B.conn_hist, 99) / 1e6);
    }

    /* 5. publishing steps */
    json_t *steps = json_array();
    if (B.nrooms && B.senders && !B.storm) {
        printf("%-9s %-8s %-8s %8s %10s %10s %8s %8s %8s %8s %9s %8s %8s %6s %6s\n", "system", "scenario", "enc",
               "rate/snd", "offered/s", "deliv/s", "p50us", "p90us", "p99us", "p999us", "maxus", "ackp99", "cnfp99",
               "srv%", "bench%");
        if (B.warmup_s > 0) {
            run_step(B.rates[0], B.warmup_s, false);
            if (!integrity_ok(&B.st))
                status = 1;
        }
        for (int i = 0; i < (B.closed_loop ? 1 : B.nrates); i++) {
            double c0 = B.server_pid > 0 ? proc_cpu_s(B.server_pid) : 0, h0 = self_cpu_s();
            uint64_t w0 = now_ns();
            run_step(B.rates[i], B.duration_s, true);
            double wall = (now_ns() - w0) / 1e9;
            double bc = B.server_pid > 0 ? (proc_cpu_s(B.server_pid) - c0) / wall * 100 : -1;
            json_t *o = step_json(B.closed_loop ? 0 : B.rates[i], wall, bc, (self_cpu_s() - h0) / wall * 100);
            bool ok = integrity_ok(&B.st);
            json_object_set_new(o, "integrity_ok", json_boolean(ok));
            json_array_append_new(steps, o);
            print_step(o);
            if (!ok) {
                status = 1;
                fprintf(stderr,
                        "ringcast-bench: INTEGRITY FAILURE at rate %.1f: deliveries %" PRIu64 " of %" PRIu64
                        " expected within the drain timeout (lost, or still queued), %" PRIu64 " ack errors, %" PRIu64 " acks lost, %" PRIu64 " emits failed, %" PRIu64
                        " message:failed\n",
                        B.rates[i], B.st.deliveries, B.st.expected, B.st.ack_err, B.st.ack_lost, B.st.emit_fail,
                        B.st.failed_msgs);
                if (B.st.acked + B.st.ack_err + B.st.ack_lost < B.st.sent)
                    fprintf(stderr,
                            "ringcast-bench: the drain ended with %" PRIu64 " of %" PRIu64 " sends still unacked "
                            "(%" PRIu64 " deliveries counted against %" PRIu64 " expected from acked sends): the "
                            "server was still working through a backlog, i.e. overload, not loss\n",
                            B.st.sent - B.st.acked - B.st.ack_err - B.st.ack_lost, B.st.sent, B.st.deliveries,
                            B.st.expected);
                if (B.st.disc)
                    fprintf(stderr,
                            "ringcast-bench: %" PRIu64 " clients were disconnected during this step (reasons below); "
                            "what was sent to them after the drop was never going to arrive: the missing deliveries "
                            "are disconnects (a slow-consumer close shows as \"transport close\"; check the server "
                            "log), not silent loss\n",
                            B.st.disc);
                else if (B.st.deliveries < B.st.expected)
                    fprintf(stderr, "ringcast-bench: no client was disconnected: the missing deliveries were lost or "
                                    "are still queued after the drain\n");
                break;
            }
            if (B.stop_p99_ms > 0 && hist_pct(&B.st.lat, 99) > B.stop_p99_ms * 1e6) {
                fprintf(stderr, "ringcast-bench: p99 %.2f ms passed %.1f ms at %.0f msg/s per sender: stop\n",
                        hist_pct(&B.st.lat, 99) / 1e6, B.stop_p99_ms, B.rates[i]);
                break;
            }
        }
    }
    json_object_set_new(res, "steps", steps);
    json_t *chk = json_pack("{sI sI sI sI sI}", "duplicates_or_reorders", (json_int_t)B.dup_reorder, "gaps",
                            (json_int_t)B.gaps, "stray_messages", (json_int_t)B.strays, "unexpected_disconnects",
                            (json_int_t)B.unexpected_disc, "integrity_events", (json_int_t)B.integrity_logged);
    if (B.dup_reorder || B.gaps || B.strays || B.unexpected_disc)
        status = 1;
    json_t *why = json_object();
    for (int i = 0; i < 8 && B.disc_why[i].n; i++) {
        json_object_set_new(why, B.disc_why[i].reason, json_integer((json_int_t)B.disc_why[i].n));
        fprintf(stderr, "ringcast-bench: %" PRIu64 " unexpected disconnects: %s\n", B.disc_why[i].n,
                B.disc_why[i].reason);
    }
    json_object_set_new(chk, "disconnects_by_reason", why);
    json_object_set_new(chk, "ok", json_boolean(status == 0));
    json_object_set_new(res, "checks", chk);
    if (status)
        fprintf(stderr, "ringcast-bench: *** INTEGRITY FAILURE: %" PRIu64 " duplicates/reorders, %" PRIu64
                        " gaps, %" PRIu64 " strays, %" PRIu64 " unexpected disconnects (see above) ***\n",
                B.dup_reorder, B.gaps, B.strays, B.unexpected_disc);
    if (B.out_path && json_dump_file(res, B.out_path, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) != 0)
        fprintf(stderr, "ringcast-bench: could not write %s\n", B.out_path);
    json_decref(res);
    B.expect_disc = B.tearing_down = true;
    for (uint32_t i = 0; i < B.clients; i++)
        rcc_free(B.cl[i].c);
    return status;
}
