#!/usr/bin/python3
"""MongoDB store (FerretDB v1.24.2), broker crash: kill -9 mid-stream, restart, resend.

20 senders in 10 group rooms (two per room, JSON and msgpack) stream message:send; the
broker is killed with SIGKILL while they do. It is started again on the same database; every
sender reconnects and resends, in order and with the same bodies, each tempId it emitted and
never saw confirmed (the recovery of protocol.md section 8), plus the last 3 it did see
confirmed (for the restarted broker the same as stored-but-unconfirmed ones).
Then:
  - every resend is acked ok; a duplicate:true ack carries the seq stored before the crash;
  - every tempId ends confirmed on its sender (a duplicate's confirmation is repeated to the
    new socket), and the resent confirmed ones are acked duplicate with their original seq and id;
  - pymongo finds each emitted (senderId, tempId) exactly once, nothing else in these rooms,
    with the seq and id of its (last) confirmation - in particular everything confirmed
    before the crash is stored under the id it was confirmed with; seqs unique per room;
  - ready after the restart reports each room's lastSeq >= its highest stored seq;
  - the restarted broker exits 0 on SIGTERM.
The case runs twice (two crashes, the second on a fresh database).

Contract: protocol.md section 8 (confirmed means durable, idempotent send, recovery), 11.
Needs the FerretDB binary (.cache/ferretdb/ferretdb, built by scripts/setup): exit 77 without.
"""

import asyncio
import collections
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

H = Harness("mongo_crash", budget_s=170)
import broker as broker_mod  # noqa: E402
import clients  # noqa: E402

RATE = ["--rate-limit", "1000000", "--rate-burst", "1000000"]
OID_RE = re.compile(r"^[0-9a-f]{24}$")
N_ROOMS = 10
F = ferret.FerretDB()
F.start()


def variant(i):
    return ASYNC_JSON if i % 2 == 0 else ASYNC_MSGPACK


def connect_senders(b, users):
    cs = [H.client(b, u, variant(i), connect=False) for i, u in enumerate(users)]
    clients.connect_many(cs, timeout=30)
    return cs


async def drive(c, room, tag, i, emitted, run, interval):
    """Emit message:send every `interval` s (ack ids on) until run is cleared or the
    connection is gone. emitted: [(tempId, body)] in order, appended before each emit."""
    k = 0
    while run.is_set():
        tid = "%s-%02d-%05d" % (tag, i, k)
        body = "%s #%d" % (tag, k)
        k += 1
        emitted.append((tid, body))
        try:
            await c.sio.emit("message:send", {"roomId": room, "tempId": tid, "type": "text", "body": body},
                             callback=lambda *a: None)
        except Exception:
            return  # The broker is gone.
        await asyncio.sleep(interval)


async def burst(c, room, tag, i, emitted, n=10):
    """n message:send back to back (ack ids on), appended to emitted like drive's."""
    for k in range(n):
        tid = "%s-%02d-b%02d" % (tag, i, k)
        body = "%s burst %d" % (tag, k)
        emitted.append((tid, body))
        await c.sio.emit("message:send", {"roomId": room, "tempId": tid, "type": "text", "body": body},
                         callback=lambda *a: None)


async def resend(c, room, items, timeout=30):
    """Emit each (tempId, body) with an ack id, in order; return {tempId: ack}."""
    loop = asyncio.get_running_loop()
    acks, futs = {}, []
    for tid, body in items:
        fut = loop.create_future()

        def cb(*args, fut=fut):
            if not fut.done():
                fut.set_result(args[0] if len(args) == 1 else list(args))
        await c.sio.emit("message:send", {"roomId": room, "tempId": tid, "type": "text", "body": body},
                         callback=cb)
        futs.append((tid, fut))
    for tid, fut in futs:
        acks[tid] = await asyncio.wait_for(fut, timeout)
    return acks


def confirmed_of(c, prefix):
    """tempId -> [confirmation] received by c for its own tempIds."""
    out = collections.defaultdict(list)
    for d in c.named("message:confirmed"):
        if str(d.get("tempId", "")).startswith(prefix):
            out[d["tempId"]].append(d)
    return out


def case_crash(db, tag):
    b = broker_mod.Broker(shards=2, extra=RATE)
    b.store = F.uri(db)
    H.brokers.append(b)
    b.start()
    users = [H.uid("%s%02d" % (tag, i)) for i in range(2 * N_ROOMS)]
    old = connect_senders(b, users)
    rooms = []
    for r in range(N_ROOMS):
        chat = old[2 * r].call_ok("chat:create", {"type": "group", "members": [users[2 * r + 1]],
                                                  "name": "%s-%d" % (tag, r)}, timeout=10)["chat"]
        old[2 * r + 1].wait_event("chat:new", {"id": chat["id"]}, timeout=10)
        rooms.append(chat["id"])

    run = threading.Event()
    run.set()
    emitted = [[] for _ in users]
    loop = old[0].loopt.loop
    futs = [asyncio.run_coroutine_threadsafe(
        drive(old[i], rooms[i // 2], tag, i, emitted[i], run, 0.05), loop) for i in range(len(users))]
    # Mid-stream: wait until a good number of messages are confirmed, then SIGKILL.
    deadline = time.monotonic() + 20
    while sum(len(confirmed_of(c, tag + "-")) for c in old) < 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    # A burst from every sender right before the kill, so that some messages are surely
    # in flight (acked or not, stored or not) when the broker dies.
    res = old[0].loopt.gather([burst(old[i], rooms[i // 2], tag, i, emitted[i]) for i in range(len(users))], 10)
    b._kill()
    killed_with = b.proc.returncode
    for c, r in zip(old, res):
        if isinstance(r, BaseException):
            raise AssertionError("%s: burst failed: %r" % (c.label, r))
    run.clear()
    for f in futs:
        f.result(10)
    check(killed_with == -9, "broker exit status after kill -9: %r", killed_with)
    for c in old:
        c.wait_disconnected(timeout=10)
        http = getattr(c.sio.eio, "http", None)  # the dropped client's aiohttp session
        if http is not None and not http.closed:
            c.loopt.run(http.close(), 5)

    # What each sender knows: its confirmations (id, seq) from before the crash.
    before = []
    for i, c in enumerate(old):
        conf = confirmed_of(c, "%s-%02d-" % (tag, i))
        for t, ds in conf.items():
            eq(len(ds), 1, "%s: confirmations of %s before the crash" % (c.label, t))
        before.append({t: ds[0] for t, ds in conf.items()})
    n_emitted = sum(len(e) for e in emitted)
    n_conf = sum(len(x) for x in before)
    check(n_conf > 0 and n_conf < n_emitted, "precondition: %d of %d confirmed at the kill (want some, not all)",
          n_conf, n_emitted)

    # Restart on the same database (same secret), reconnect, resend.
    b.stop(expect_code=None)  # Already dead: collects the status and the log.
    b.start()
    new = connect_senders(b, users)
    max_stored = collections.defaultdict(int)
    cl = F.client()
    try:
        for d in cl[db].messages.find({"roomId": {"$in": rooms}}, {"roomId": 1, "seq": 1}):
            max_stored[d["roomId"]] = max(max_stored[d["roomId"]], d["seq"])
    finally:
        cl.close()
    for i, c in enumerate(new):
        chats = {ch["id"]: ch for ch in c.ready_data.get("chats", [])}
        room = rooms[i // 2]
        check(room in chats, "%s: room %s missing from ready after the restart", c.label, room)
        check(chats[room].get("lastSeq", -1) >= max_stored[room], "%s: ready lastSeq %r < stored max seq %d",
              c.label, chats[room].get("lastSeq"), max_stored[room])

    plans = []
    for i in range(len(users)):
        unconf = [(t, body) for t, body in emitted[i] if t not in before[i]]
        # The last 3 it saw confirmed, too: to the restarted broker they are the same as
        # stored-but-unconfirmed ones (it cannot know what the old process confirmed).
        again = [(t, body) for t, body in emitted[i] if t in before[i]][-3:]
        plans.append((unconf, again))
    res = new[0].loopt.gather([resend(new[i], rooms[i // 2], plans[i][0] + plans[i][1])
                               for i in range(len(users))], 60)
    final = {}   # (user, tempId) -> (room, seq, id)
    n_dup = n_fresh = 0
    for i, (c, r) in enumerate(zip(new, res)):
        if isinstance(r, BaseException):
            raise AssertionError("%s: resending failed: %r" % (c.label, r))
        unconf, again = plans[i]
        for t, _ in unconf + again:
            a = r[t]
            check(isinstance(a, dict) and a.get("ok") is True and a.get("tempId") == t and isinstance(a.get("seq"), int),
                  "%s: resend ack for %s: %r", c.label, t, a)
        for t, _ in again:
            eq((r[t].get("duplicate"), r[t]["seq"]), (True, before[i][t]["seq"]),
               "%s: resend of confirmed %s (duplicate, original seq)" % (c.label, t))
        want = {t for t, _ in unconf + again}
        c.wait_for(lambda evs: want <= {d.get("tempId") for n, d in evs if n == "message:confirmed"},
                   30, "confirmations of %d resent messages" % len(want))
        eq(c.count("message:failed"), 0, "%s: message:failed after the restart" % c.label)
        conf = confirmed_of(c, "%s-%02d-" % (tag, i))
        for t, _ in unconf + again:
            ds = conf[t]
            eq(len(ds), 1, "%s: confirmations of %s after the restart" % (c.label, t))
            d = ds[0]
            eq((d.get("roomId"), d.get("seq")), (rooms[i // 2], r[t]["seq"]), "%s: confirmation of %s" % (c.label, t))
            check(OID_RE.match(d.get("id") or ""), "confirmed id %r", d.get("id"))
            if r[t].get("duplicate"):
                n_dup += 1
            else:
                n_fresh += 1
        for t, _ in again:
            eq(conf[t][0]["id"], before[i][t]["id"], "%s: id of %s repeated after the restart" % (c.label, t))
        for t, _ in emitted[i]:
            d = conf[t][0] if t in conf else before[i][t]
            final[(users[i], t)] = (rooms[i // 2], d["seq"], d["id"])
    n_dup -= sum(len(p[1]) for p in plans)  # the deliberate resends of confirmed ones

    cl = F.client()
    try:
        docs = list(cl[db].messages.find({"roomId": {"$in": rooms}}))
    finally:
        cl.close()
    keys = collections.Counter((d.get("senderId"), d.get("tempId")) for d in docs)
    dups = [k for k, n in keys.items() if n > 1]
    check(not dups, "stored more than once (%d): %r", len(dups), dups[:10])
    missing = [k for k in final if k not in keys]
    check(not missing, "emitted but not stored (%d): %r", len(missing), missing[:10])
    extra = [k for k in keys if k not in final]
    check(not extra, "stored but never emitted (%d): %r", len(extra), extra[:10])
    eq(len(docs), n_emitted, "documents in MongoDB = distinct tempIds emitted")
    seqs = collections.defaultdict(list)
    for d in docs:
        k = (d["senderId"], d["tempId"])
        eq((d.get("roomId"), d.get("seq"), str(d.get("_id"))), final[k], "stored %s/%s (roomId, seq, _id)" % k)
        seqs[d["roomId"]].append(d["seq"])
    for room, s in seqs.items():
        eq(len(s), len(set(s)), "distinct seqs in %s" % room)
    for c in new:
        c.disconnect()
    eq(b.stop(expect_code=None), 0, "exit status of the restarted broker after SIGTERM")
    print("  %s: %d emitted, %d confirmed before kill -9, %d resent after it: %d were already stored "
          "(duplicate), %d stored now" % (tag, n_emitted, n_conf, n_emitted - n_conf, n_dup, n_fresh), flush=True)


try:
    H.case("kill -9 mid-stream, restart, resend unconfirmed tempIds: each message stored once (1)",
           case_crash, "crash1", "k1")
    H.case("kill -9 mid-stream, restart, resend unconfirmed tempIds: each message stored once (2)",
           case_crash, "crash2", "k2")
finally:
    for b in H.brokers:
        if b.alive():
            try:
                b.stop(expect_code=None)
            except Exception:
                pass
    F.close()
H.finish()
