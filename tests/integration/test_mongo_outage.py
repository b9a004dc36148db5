#!/usr/bin/python3
"""MongoDB store outages (FerretDB v1.24.2 stopped and started again under load):

1. A 10 s outage mid-stream (default --confirm-deadline-ms 30000): 20 senders in 10 group
   rooms keep sending. Everything sent while FerretDB is down is acked and reaches the other
   member as message:new (pending) before FerretDB comes back, and is not confirmed before;
   /healthz answers 503 meanwhile. After the restart every message of the whole stream is
   confirmed, once, in seq order per socket; no message:failed; /healthz 200; pymongo finds
   each exactly once with the acked seq and the confirmed id.
2. An outage longer than the deadline (--confirm-deadline-ms 3000, FerretDB down ~6 s):
   messages sent during the first seconds of the outage get message:failed (UNAVAILABLE, to
   both members) while FerretDB is still down, are never confirmed, never stored and missing
   from history:get; /healthz returns to 200 once FerretDB is back (without further traffic);
   after recovery new messages succeed (all confirmed, stored once).

Contract: protocol.md section 8 (optimistic first, confirmed means durable, retry until the
deadline, message:failed withdraws), 9 (/healthz), 11; docs/architecture.md "Persistence".
Needs the FerretDB binary (.cache/ferretdb/ferretdb, built by scripts/setup): exit 77 without.
"""

import asyncio
import collections
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import ferret  # noqa: E402
from harness import ASYNC_JSON, ASYNC_MSGPACK, Harness, check, eq, skip  # noqa: E402

if not ferret.available():
    skip("no FerretDB binary at %s (scripts/setup builds it)" % ferret.binary_path())
try:
    import pymongo  # noqa: F401
except ImportError:
    skip("python3-pymongo missing (Debian python3-pymongo; run with /usr/bin/python3)")

H = Harness("mongo_outage", budget_s=170)
import broker as broker_mod  # noqa: E402
import clients  # noqa: E402
import rawws  # noqa: E402

RATE = ["--rate-limit", "1000000", "--rate-burst", "1000000"]
OID_RE = re.compile(r"^[0-9a-f]{24}$")
F = ferret.FerretDB()
F.start()


def mongo_broker(db, extra=()):
    b = broker_mod.Broker(shards=2, extra=RATE + list(extra))
    b.store = F.uri(db)
    H.brokers.append(b)
    b.start()
    return b


def make_pairs(b, n_rooms, tag):
    """2*n_rooms async senders (JSON/msgpack alternating); senders 2r, 2r+1 share room r."""
    senders = [H.client(b, H.uid("%s%02d" % (tag, i)), ASYNC_JSON if i % 2 == 0 else ASYNC_MSGPACK,
                        connect=False) for i in range(2 * n_rooms)]
    clients.connect_many(senders, timeout=30)
    rooms = []
    for r in range(n_rooms):
        a, p = senders[2 * r], senders[2 * r + 1]
        chat = a.call_ok("chat:create", {"type": "group", "members": [p.user_id],
                                         "name": "%s-%d" % (tag, r)}, timeout=10)["chat"]
        p.wait_event("chat:new", {"id": chat["id"]}, timeout=10)
        rooms.append(chat["id"])
    return senders, rooms


class Stream:
    """Every sender emits message:send to its room every `interval` seconds (ack ids on),
    on the shared async loop, until stopped. Each message is tagged with the phase current
    when it was emitted. pause()/resume() hold the senders between two emits."""

    def __init__(self, senders, rooms, interval, tag):
        self.senders, self.rooms, self.interval, self.tag = senders, rooms, interval, tag
        self.phase = "before"
        self.msgs = {}          # tempId -> dict(i, room, phase, body, ack)
        self.lock = threading.Lock()
        self._run = True
        self._pause = False
        self._futs = []

    def start(self):
        loop = self.senders[0].loopt.loop
        self._futs = [asyncio.run_coroutine_threadsafe(self._drive(i), loop)
                      for i in range(len(self.senders))]

    async def _drive(self, i):
        c = self.senders[i]
        room = self.rooms[i // 2]
        k = 0
        while self._run:
            if self._pause:
                await asyncio.sleep(0.02)
                continue
            tid = "%s-%02d-%05d" % (self.tag, i, k)
            k += 1
            body = "%s #%d from %s" % (self.tag, k, c.user_id)
            m = {"i": i, "room": room, "phase": self.phase, "body": body, "ack": None}
            with self.lock:
                self.msgs[tid] = m

            def cb(*args, m=m):
                m["ack"] = args[0] if len(args) == 1 else list(args)
            await c.sio.emit("message:send", {"roomId": room, "tempId": tid, "type": "text", "body": body},
                             callback=cb)
            await asyncio.sleep(self.interval)

    def pause(self):
        self._pause = True
        time.sleep(self.interval + 0.1)  # Let every sender finish the emit it is in.

    def resume(self):
        self._pause = False

    def stop(self):
        self._run = False
        for f in self._futs:
            f.result(10)

    def snapshot(self):
        with self.lock:
            return dict(self.msgs)

    def of(self, phase):
        return {t: m for t, m in self.snapshot().items() if m["phase"] == phase}

    def wait_acked(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            pending = [t for t, m in self.snapshot().items() if m["ack"] is None]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise AssertionError("%d sends without an ack after %.0f s, e.g. %r"
                                     % (len(pending), timeout, pending[:5]))
            time.sleep(0.05)
        for t, m in self.snapshot().items():
            a = m["ack"]
            check(isinstance(a, dict) and a.get("ok") is True and a.get("tempId") == t
                  and isinstance(a.get("seq"), int) and not a.get("duplicate"), "ack for %s: %r", t, a)


def wait_delivered(st, msgs, timeout):
    """Each message reached the other member of its room as message:new, pending."""
    by_peer = collections.defaultdict(set)
    for t, m in msgs.items():
        by_peer[m["i"] ^ 1].add(t)
    for peer, tids in by_peer.items():
        c = st.senders[peer]
        got = c.wait_for(lambda evs: tids <= {d.get("tempId") for n, d in evs if n == "message:new"},
                         timeout, "message:new for %d messages" % len(tids))
        check(got, "wait_for returned nothing")
        for d in c.named("message:new", lambda d: d.get("tempId") in tids):
            eq(d.get("status"), "pending", "%s message:new status" % c.label)


def confirmed_map(c):
    """tempId -> list of (position, event) for this socket's message:confirmed events."""
    out = collections.defaultdict(list)
    for pos, (n, d) in enumerate(c.snapshot()):
        if n == "message:confirmed":
            out[d.get("tempId")].append((pos, d))
    return out


def wait_outcome(st, tids, what, timeout, want_event):
    """Both members of each message's room get want_event for it; returns nothing."""
    need = collections.defaultdict(set)
    for t in tids:
        m = st.msgs[t]
        need[m["i"]].add(t)
        need[m["i"] ^ 1].add(t)
    deadline = time.monotonic() + timeout
    for i, ts in need.items():
        c = st.senders[i]
        c.wait_for(lambda evs: ts <= {d.get("tempId") for n, d in evs if n == want_event},
                   max(1.0, deadline - time.monotonic()), "%s: %s for %d messages" % (what, want_event, len(ts)))


def stored(db, rooms):
    c = F.client()
    try:
        return list(c[db].messages.find({"roomId": {"$in": list(rooms)}}))
    finally:
        c.close()


def check_stored(db, rooms, expect, absent=()):
    """expect: {(senderId, tempId): (roomId, seq, id)}: each exactly once, with those fields;
    absent: (senderId, tempId) keys that must not be stored."""
    docs = stored(db, rooms)
    keys = collections.Counter((d.get("senderId"), d.get("tempId")) for d in docs)
    dups = [k for k, n in keys.items() if n > 1]
    check(not dups, "stored more than once (%d): %r", len(dups), dups[:10])
    missing = [k for k in expect if k not in keys]
    check(not missing, "confirmed but not stored (%d of %d): %r", len(missing), len(expect), missing[:10])
    bad = [k for k in absent if k in keys]
    check(not bad, "failed (withdrawn) but stored (%d): %r", len(bad), bad[:10])
    seqs = collections.defaultdict(list)
    for d in docs:
        k = (d.get("senderId"), d.get("tempId"))
        if k in expect:
            eq((d.get("roomId"), d.get("seq"), str(d.get("_id"))), expect[k], "stored %s/%s" % k)
        seqs[d.get("roomId")].append(d.get("seq"))
    for room, s in seqs.items():
        eq(len(s), len(set(s)), "distinct stored seqs in %s" % room)
    return docs


# --- 1. a 10 s outage ---------------------------------------------------------------------

OUTAGE_S = 10.0


def case_ten_second_outage():
    b = mongo_broker("outage10")
    senders, rooms = make_pairs(b, 10, "o10")
    st = Stream(senders, rooms, interval=0.05, tag="o10")
    st.start()
    time.sleep(2.0)
    F.stop()
    t_down = time.monotonic()
    st.phase = "down"
    try:
        time.sleep(OUTAGE_S - 3.0)
        st.pause()
        down = st.of("down")
        check(len(down) >= 20, "only %d messages sent during the outage", len(down))
        st.wait_acked(10)
        wait_delivered(st, down, 10)            # delivered at once, before FerretDB is back
        s503 = rawws.wait_healthz(b, 503, 10, "FerretDB down, writes pending")
        check(isinstance(s503[1], dict) and s503[1].get("status") == "degraded", "503 body %r", s503[1])
        early = [t for c in senders for t in confirmed_map(c) if t in down]
        eq(early, [], "messages sent during the outage confirmed before FerretDB is back")
        marks = [len(c.snapshot()) for c in senders]   # nothing of `down` is confirmed before these
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_down)))
    finally:
        F.start()
    st.phase = "after"
    st.resume()
    time.sleep(3.0)
    st.stop()
    st.wait_acked(10)
    allm = st.snapshot()
    wait_outcome(st, allm, "after recovery", 45, "message:confirmed")
    for c in senders:
        eq(c.count("message:failed"), 0, "%s: message:failed events" % c.label)
    rawws.wait_healthz(b, 200, 15, "after recovery")
    expect = {}
    for i, c in enumerate(senders):
        room = rooms[i // 2]
        cm = confirmed_map(c)
        mine = {t: m for t, m in allm.items() if m["room"] == room}
        for t, m in mine.items():
            hits = cm.get(t, [])
            eq(len(hits), 1, "%s: confirmations of %s" % (c.label, t))
            pos, d = hits[0]
            eq((d.get("roomId"), d.get("seq")), (room, m["ack"]["seq"]), "%s: confirmation of %s" % (c.label, t))
            check(OID_RE.match(d.get("id") or ""), "confirmed id %r", d.get("id"))
            if m["phase"] == "down":
                check(pos >= marks[i], "%s: %s (sent during the outage) confirmed before the restart",
                      c.label, t)
            if m["i"] == i:
                expect[(c.user_id, t)] = (room, d["seq"], d["id"])
        seqs = [d["seq"] for n, d in c.snapshot() if n == "message:confirmed" and d.get("roomId") == room]
        eq(seqs, sorted(seqs), "%s: confirmations in seq order" % c.label)
    eq(len(expect), len(allm), "confirmed messages")
    n_down = len(st.of("down"))
    check_stored("outage10", rooms, expect)
    print("  10 s outage: %d messages, %d sent while FerretDB was down" % (len(allm), n_down), flush=True)


# --- 2. an outage longer than --confirm-deadline-ms ---------------------------------------

DEADLINE_MS = 3000


def case_past_deadline():
    b = mongo_broker("outage_deadline", ["--confirm-deadline-ms", str(DEADLINE_MS)])
    senders, rooms = make_pairs(b, 10, "od")
    st = Stream(senders, rooms, interval=0.1, tag="od")
    st.start()
    time.sleep(1.5)
    # Messages sent just before the stop could be caught in it and fail past the deadline
    # like the others; to keep "before" unambiguous they are confirmed before the stop.
    st.pause()
    st.wait_acked(10)
    wait_outcome(st, st.of("before"), "before the outage", 20, "message:confirmed")
    F.stop()
    st.phase = "down"
    st.resume()
    try:
        time.sleep(1.5)
        st.pause()
        st.phase = "held"
        st.wait_acked(10)
        down = st.of("down")
        check(len(down) >= 20, "only %d messages sent during the outage", len(down))
        wait_delivered(st, down, 10)
        # Still down: every message sent meanwhile fails once the deadline passed.
        wait_outcome(st, down, "FerretDB still down", DEADLINE_MS / 1000.0 + 10, "message:failed")
        time.sleep(1.0)
    finally:
        F.start()
    for i, c in enumerate(senders):
        for d in c.named("message:failed"):
            t = d.get("tempId")
            check(t in down, "%s: message:failed for %s, which was not sent during the outage: %r",
                  c.label, t, d)
            err = d.get("error") or {}
            eq((d.get("roomId"), d.get("seq"), err.get("code")), (st.msgs[t]["room"], st.msgs[t]["ack"]["seq"],
                                                                  "UNAVAILABLE"), "%s: message:failed %s" % (c.label, t))
            check(isinstance(err.get("message"), str), "message:failed without error.message: %r", d)
        fails = collections.Counter(d.get("tempId") for d in c.named("message:failed"))
        check(all(v == 1 for v in fails.values()), "%s: message:failed repeated: %r", c.label, fails.most_common(3))
        confd = {d.get("tempId") for d in c.named("message:confirmed")}
        eq(sorted(confd & set(down)), [], "%s: failed messages confirmed" % c.label)

    # Later ones succeed: probe until one is confirmed (the driver waits ~5 s before it
    # re-checks the server; probes sent before that may themselves fail), then a stream.
    a = senders[0]
    probe_ok, probes = None, []
    deadline = time.monotonic() + 30
    while probe_ok is None and time.monotonic() < deadline:
        tid, ack = a.send_text(rooms[0], "probe", tid="od-probe-%03d" % len(probes))
        probes.append((tid, ack["seq"]))
        t_end = time.monotonic() + 0.3
        while time.monotonic() < t_end and probe_ok is None:
            for p, _ in probes:
                if a.count("message:confirmed", {"tempId": p}):
                    probe_ok = p
            time.sleep(0.02)
    check(probe_ok is not None, "no message confirmed within 30 s of FerretDB's restart (%d probes)", len(probes))
    st.phase = "after"
    st.resume()
    time.sleep(2.0)
    st.stop()
    st.wait_acked(10)
    before, after = st.of("before"), st.of("after")
    check(len(after) >= 20, "only %d messages sent after recovery", len(after))
    wait_outcome(st, list(before) + list(after), "after recovery", 30, "message:confirmed")
    # Every probe ends one way or the other; the ones after the first success succeed.
    a.wait_for(lambda evs: {p for p, _ in probes} <= {d.get("tempId") for n, d in evs
                                                       if n in ("message:confirmed", "message:failed")},
               DEADLINE_MS / 1000.0 + 10, "an outcome for every probe")
    first_ok = [p for p, _ in probes].index(probe_ok)
    for p, _ in probes[first_ok:]:
        eq(a.count("message:failed", {"tempId": p}), 0, "message:failed for probe %s" % p)
    for c in senders:
        bad = [d for d in c.named("message:failed") if d.get("tempId") in before or d.get("tempId") in after]
        eq(bad, [], "%s: message:failed for messages sent before or after the outage" % c.label)
    rawws.wait_healthz(b, 200, 10, "after recovery")

    expect, absent = {}, set()
    failed_probes = {d.get("tempId") for d in a.named("message:failed")} & {p for p, _ in probes}
    for t, m in list(before.items()) + list(after.items()):
        c = senders[m["i"]]
        d = [x for x in c.named("message:confirmed", {"tempId": t})]
        eq(len(d), 1, "%s: confirmations of %s" % (c.label, t))
        eq(d[0].get("seq"), m["ack"]["seq"], "confirmed seq of %s" % t)
        expect[(c.user_id, t)] = (m["room"], d[0]["seq"], d[0]["id"])
    for p, seq in probes:
        if p in failed_probes:
            absent.add((a.user_id, p))
        else:
            d = a.named("message:confirmed", {"tempId": p})
            eq(len(d), 1, "confirmations of probe %s" % p)
            expect[(a.user_id, p)] = (rooms[0], seq, d[0]["id"])
    for t, m in down.items():
        absent.add((senders[m["i"]].user_id, t))
    check_stored("outage_deadline", rooms, expect, absent)
    # Withdrawn messages are not in history either.
    for r, room in enumerate(rooms):
        h = senders[2 * r + 1].call_ok("history:get", {"roomId": room, "limit": 100})
        got = {m["tempId"] for m in h["messages"]}
        gone = sorted(got & {t for t, m in down.items() if m["room"] == room})
        eq(gone, [], "failed messages in history:get of %s" % room)
    print("  past deadline: %d failed during the outage, %d probes (%d failed), %d sent after"
          % (len(down), len(probes), len(failed_probes), len(after)), flush=True)


def case_healthz_idle_recovery():
    """After the deadline case every queued message failed; FerretDB is up again. A fresh
    outage-and-recovery with nothing left to write: /healthz must not stay 503."""
    b = mongo_broker("outage_idle", ["--confirm-deadline-ms", str(DEADLINE_MS)])
    senders, rooms = make_pairs(b, 1, "oi")
    a = senders[0]
    F.stop()
    try:
        tid, _ = a.send_text(rooms[0], "into the outage", tid="oi-1")
        rawws.wait_healthz(b, 503, 10, "write failing")
        a.wait_event("message:failed", {"tempId": tid}, timeout=DEADLINE_MS / 1000.0 + 10)
    finally:
        F.start()
    # The store is reachable again and nothing is queued: the broker is healthy.
    rawws.wait_healthz(b, 200, 15, "FerretDB back, nothing queued, no traffic")


try:
    H.case("10 s outage mid-stream: delivered at once, confirmed after recovery, none failed/lost/duplicated",
           case_ten_second_outage)
    H.case("outage past --confirm-deadline-ms 3000: message:failed, not stored; later messages succeed",
           case_past_deadline)
    H.case("/healthz returns to 200 after an outage whose messages all failed (no further traffic)",
           case_healthz_idle_recovery)
finally:
    for b in H.brokers:
        if b.alive():
            try:
                b.stop(expect_code=0)
            except Exception as e:
                print("FAIL: broker shutdown: %s" % e, flush=True)
                H.results.append(("broker shutdown", False, 0.0))
    F.close()
H.finish()
