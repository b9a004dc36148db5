#!/usr/bin/python3
"""MongoDB store (FerretDB v1.24.2 over the MongoDB wire protocol), the normal path:

1. 10,000 messages from 20 senders in 10 group rooms (two senders per room, JSON and
   msgpack sockets mixed, each sender pipelining up to 64 unacked sends): every send is
   acked ok, every message is confirmed to both members, nothing fails; pymongo (Debian's
   python3-pymongo) then finds each (senderId, tempId) exactly once in `messages`, with the
   seq from the ack, the id from message:confirmed, its room, body and sender, seqs unique
   (1..1000) per room, and chats.lastSeq = 1000.
2. /healthz: 200 while FerretDB is up; 503 {"status":"degraded"} once message writes fail
   with FerretDB stopped; 200 again after it is back, and the messages sent meanwhile are
   confirmed (none failed) and stored once.
3. Graceful stop with messages queued: a broker with --batch-delay-ms 9000 holds what it
   was sent in its write queue; SIGTERM -> the queue is stored (counted with pymongo) and
   the broker exits 0.  The same with the queue held by an outage: FerretDB stopped, sends,
   SIGTERM, FerretDB back -> stored, exit 0.

Contract: protocol.md sections 8 (confirmed means durable), 9 (/healthz), 10 (SIGTERM drains,
exit 0), 11 (stored documents); docs/architecture.md "Persistence".
Needs the FerretDB binary (.cache/ferretdb/ferretdb, built by scripts/setup): exit 77 without.
"""

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import ferret  # noqa: E402
from harness import ASYNC_JSON, ASYNC_MSGPACK, Harness, check, eq, skip  # noqa: E402

if not ferret.available():
    skip("no FerretDB binary at %s (scripts/setup builds it)" % ferret.binary_path())
try:
    import bson
    import pymongo  # noqa: F401
except ImportError:
    skip("python3-pymongo missing (Debian python3-pymongo; run with /usr/bin/python3)")

H = Harness("mongo_store", budget_s=170)
import broker as broker_mod  # noqa: E402
import clients  # noqa: E402
import rawws  # noqa: E402

RATE = ["--rate-limit", "1000000", "--rate-burst", "1000000"]
OID_RE = re.compile(r"^[0-9a-f]{24}$")
F = ferret.FerretDB()
F.start()


def mongo_broker(db, extra=()):
    """A broker (2 shards) on FerretDB database `db`, registered with the harness."""
    b = broker_mod.Broker(shards=2, extra=RATE + list(extra))
    b.store = F.uri(db)
    H.brokers.append(b)
    b.start()
    return b


def make_pairs(b, n_rooms, tag):
    """2*n_rooms connected async senders (JSON and msgpack alternating) and n_rooms group
    rooms; sender 2r and 2r+1 are the members of room r. Returns (senders, rooms)."""
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


async def send_many(c, room, items, window=64, timeout=90):
    """Emit message:send for each (tempId, body) with at most `window` acks outstanding;
    returns {tempId: ack}."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(window)
    acks = {}
    done = loop.create_future()

    def cb_for(tid):
        def cb(*args):
            acks[tid] = args[0] if len(args) == 1 else list(args)
            sem.release()
            if len(acks) == len(items) and not done.done():
                done.set_result(True)
        return cb
    for tid, body in items:
        await asyncio.wait_for(sem.acquire(), timeout)
        await c.sio.emit("message:send", {"roomId": room, "tempId": tid, "type": "text", "body": body},
                         callback=cb_for(tid))
    if items:
        await asyncio.wait_for(done, timeout)
    return acks


def send_all(senders, plan, timeout=90):
    """plan: {sender index: (room, [(tempId, body)])}; all senders at once. Returns
    {sender index: {tempId: ack}} with every ack checked ok (fresh, not duplicate)."""
    idx = sorted(plan)
    res = senders[0].loopt.gather([send_many(senders[i], plan[i][0], plan[i][1], timeout=timeout)
                                   for i in idx], timeout + 10)
    out = {}
    for i, r in zip(idx, res):
        if isinstance(r, BaseException):
            raise AssertionError("%s: sending failed: %r" % (senders[i].label, r))
        for tid, ack in r.items():
            check(isinstance(ack, dict) and ack.get("ok") is True and ack.get("tempId") == tid
                  and isinstance(ack.get("seq"), int) and not ack.get("duplicate"),
                  "%s: ack for %s: %r", senders[i].label, tid, ack)
        out[i] = r
    return out


def stored_messages(db, rooms):
    c = F.client()
    try:
        return list(c[db].messages.find({"roomId": {"$in": list(rooms)}}))
    finally:
        c.close()


def check_stored(db, expect, rooms):
    """expect: {(senderId, tempId): (roomId, seq, id, body)}. Every one stored exactly once
    with those fields; nothing else in these rooms; seqs unique per room."""
    docs = stored_messages(db, rooms)
    keys = collections.Counter((d.get("senderId"), d.get("tempId")) for d in docs)
    dups = [k for k, n in keys.items() if n > 1]
    check(not dups, "stored more than once (%d): %r", len(dups), dups[:10])
    missing = [k for k in expect if k not in keys]
    check(not missing, "confirmed but not in MongoDB (%d of %d): %r", len(missing), len(expect), missing[:10])
    extra = [k for k in keys if k not in expect]
    check(not extra, "in MongoDB but never confirmed (%d): %r", len(extra), extra[:10])
    eq(len(docs), len(expect), "documents in messages for these rooms")
    by_room = collections.defaultdict(list)
    for d in docs:
        room, seq, mid, body = expect[(d["senderId"], d["tempId"])]
        got = (d.get("roomId"), d.get("seq"), str(d.get("_id")), d.get("body"), d.get("type"))
        if got != (room, seq, mid, body, "text"):
            raise AssertionError("stored %s/%s: (roomId, seq, _id, body, type) = %r, want %r"
                                 % (d["senderId"], d["tempId"], got, (room, seq, mid, body, "text")))
        check(isinstance(d.get("_id"), bson.ObjectId), "_id %r is not an ObjectId", d.get("_id"))
        check(d.get("ts") is not None and hasattr(d["ts"], "year"), "ts %r is not a Date", d.get("ts"))
        by_room[room].append(seq)
    for room, seqs in by_room.items():
        eq(len(seqs), len(set(seqs)), "distinct seqs in %s" % room)
    return docs


def confirmations(c, room):
    return [d for d in c.named("message:confirmed", {"roomId": room})]


# --- 1. 10,000 messages ----------------------------------------------------------------

N_ROOMS, PER_SENDER = 10, 500
B = mongo_broker("bulk")


def case_ten_thousand():
    senders, rooms = make_pairs(B, N_ROOMS, "bulk")
    plan = {i: (rooms[i // 2], [("b%02d-%04d" % (i, k), "m %d from %s \u00e9" % (k, senders[i].user_id))
                                for k in range(PER_SENDER)]) for i in range(len(senders))}
    acks = send_all(senders, plan)
    per_room = 2 * PER_SENDER
    expect = {}
    for r, room in enumerate(rooms):
        pair = senders[2 * r:2 * r + 2]
        seqs = {}
        for i in (2 * r, 2 * r + 1):
            for tid, body in plan[i][1]:
                seq = acks[i][tid]["seq"]
                check(seq not in seqs, "%s: seq %d acked twice (%s and %s)", room, seq, seqs.get(seq), tid)
                seqs[seq] = (senders[i].user_id, tid, body)
        eq(sorted(seqs), list(range(1, per_room + 1)), "acked seqs of %s" % room)
        for c in pair:
            confs = c.wait_count("message:confirmed", per_room, {"roomId": room}, timeout=60)
            eq(len(confs), per_room, "%s: confirmations in %s" % (c.label, room))
            eq([m["seq"] for m in confs], list(range(1, per_room + 1)),
               "%s: confirmed seqs in order, once each" % c.label)
            eq(c.count("message:failed"), 0, "%s: message:failed events" % c.label)
        ids = {}
        for m in confirmations(pair[0], room):
            uid, tid, body = seqs[m["seq"]]
            eq(m.get("tempId"), tid, "confirmed tempId of %s seq %d" % (room, m["seq"]))
            check(isinstance(m.get("id"), str) and OID_RE.match(m["id"]), "confirmed id %r", m.get("id"))
            ids[m["seq"]] = m["id"]
            expect[(uid, tid)] = (room, m["seq"], m["id"], body)
        other = {m["seq"]: m.get("id") for m in confirmations(pair[1], room)}
        eq(other, ids, "ids confirmed to the two members of %s" % room)
        eq(len(set(ids.values())), per_room, "distinct ids in %s" % room)
        # The peer saw every message of the other sender as message:new (pending) once.
        for me, peer in ((2 * r, 2 * r + 1), (2 * r + 1, 2 * r)):
            news = senders[peer].named("message:new", {"roomId": room, "senderId": senders[me].user_id})
            eq(sorted(m["tempId"] for m in news), sorted(t for t, _ in plan[me][1]),
               "%s: message:new from %s" % (senders[peer].label, senders[me].user_id))
    eq(len(expect), N_ROOMS * per_room, "confirmed messages")
    check_stored("bulk", expect, rooms)
    c = F.client()
    try:
        for room in rooms:
            chat = c.bulk.chats.find_one({"_id": room})
            check(chat is not None, "chats document %s missing", room)
            eq(chat.get("lastSeq"), per_room, "chats.lastSeq of %s" % room)
            eq(chat.get("type"), "group", "chats.type of %s" % room)
    finally:
        c.close()


# --- 2. /healthz through an outage ------------------------------------------------------

def case_healthz():
    st = rawws.healthz(B)
    eq(st, (200, {"status": "ok"}), "/healthz with FerretDB up")
    senders, rooms = make_pairs(B, 1, "hz")
    a, p = senders
    F.stop()
    try:
        tids = ["hz-%03d" % k for k in range(20)]
        acks = send_all(senders, {0: (rooms[0], [(t, "while down " + t) for t in tids])}, timeout=20)
        # Delivered at once, pending.
        p.wait_count("message:new", len(tids), {"roomId": rooms[0]}, timeout=10)
        st = rawws.wait_healthz(B, 503, 20, "store down, writes pending")
        check(isinstance(st[1], dict) and st[1].get("status") == "degraded" and st[1].get("reason"),
              "503 body %r, want {status: degraded, reason}", st[1])
        eq(a.count("message:confirmed", {"roomId": rooms[0]}), 0, "confirmations while FerretDB is down")
    finally:
        F.start()
    confs = a.wait_count("message:confirmed", len(tids), {"roomId": rooms[0]}, timeout=40)
    rawws.wait_healthz(B, 200, 20, "FerretDB back, writes confirmed")
    eq(rawws.healthz(B), (200, {"status": "ok"}), "/healthz after recovery")
    eq(a.count("message:failed") + p.count("message:failed"), 0, "message:failed events")
    eq(sorted(m["tempId"] for m in confs), sorted(tids), "confirmed tempIds")
    expect = {(a.user_id, m["tempId"]): (rooms[0], m["seq"], m["id"], "while down " + m["tempId"]) for m in confs}
    for m in confs:
        eq(m["seq"], acks[0][m["tempId"]]["seq"], "confirmed seq of %s" % m["tempId"])
    check_stored("bulk", expect, rooms)


# --- 3. graceful stop with a queue -------------------------------------------------------

def wait_exit(b, timeout):
    """Wait up to timeout for the broker (already signalled) to exit; returns its status."""
    try:
        b.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("broker still running %.0f s after SIGTERM" % timeout)
    return b.stop(expect_code=None)  # Exited: collects the log and records the status.


def sigterm_and_wait(b, timeout):
    """One SIGTERM (a second one would mean "exit at once"), then wait_exit."""
    b.proc.send_signal(signal.SIGTERM)
    return wait_exit(b, timeout)


def count_stored(db, sender, prefix):
    c = F.client()
    try:
        docs = list(c[db].messages.find({"senderId": sender, "tempId": {"$regex": "^" + prefix}}))
    finally:
        c.close()
    keys = collections.Counter(d["tempId"] for d in docs)
    return docs, keys


def case_stop_with_batch_queue():
    b = mongo_broker("drain1", ["--batch-delay-ms", "9000", "--batch-max", "100000"])
    senders, rooms = make_pairs(b, 1, "dq")
    a, p = senders
    n = 300
    items = [("dq-%03d" % k, "queued %d" % k) for k in range(n)]
    acks = send_all(senders, {0: (rooms[0], items)}, timeout=30)
    p.wait_count("message:new", n, {"roomId": rooms[0]}, timeout=10)
    queued = a.count("message:confirmed", {"roomId": rooms[0]}) == 0
    code = sigterm_and_wait(b, 30)
    eq(code, 0, "exit status after SIGTERM with a queue")
    check(queued, "precondition: the messages were still queued (unconfirmed) at SIGTERM")
    docs, keys = count_stored("drain1", a.user_id, "dq-")
    eq(len(docs), n, "stored messages after SIGTERM (count in MongoDB)")
    eq(sorted(keys), sorted(t for t, _ in items), "stored tempIds")
    check(all(v == 1 for v in keys.values()), "a tempId stored twice: %r", keys.most_common(3))
    eq(sorted((d["tempId"], d["seq"]) for d in docs), sorted((t, acks[0][t]["seq"]) for t, _ in items),
       "stored seqs = acked seqs")


def case_stop_during_outage():
    b = mongo_broker("drain2")
    senders, rooms = make_pairs(b, 1, "do")
    a, p = senders
    n = 100
    items = [("do-%03d" % k, "held by the outage %d" % k) for k in range(n)]
    F.stop()
    try:
        send_all(senders, {0: (rooms[0], items)}, timeout=20)
        p.wait_count("message:new", n, {"roomId": rooms[0]}, timeout=10)
        rawws.wait_healthz(b, 503, 20, "writes failing before SIGTERM")
        b.proc.send_signal(signal.SIGTERM)
    finally:
        F.start()
    code = wait_exit(b, 40)  # The writer retries until FerretDB answers (driver cooldown ~5 s).
    eq(code, 0, "exit status after SIGTERM with the queue held by an outage")
    docs, keys = count_stored("drain2", a.user_id, "do-")
    eq(len(docs), n, "stored messages after SIGTERM during an outage (count in MongoDB)")
    check(all(v == 1 for v in keys.values()), "a tempId stored twice: %r", keys.most_common(3))


def case_final_stop():
    code = sigterm_and_wait(B, 30)
    eq(code, 0, "exit status of the main broker after SIGTERM")


try:
    H.case("10,000 messages, 20 senders, 10 rooms: all confirmed, each stored once (pymongo)",
           case_ten_thousand)
    H.case("/healthz 200 -> 503 degraded while FerretDB is down -> 200 after recovery", case_healthz)
    H.case("SIGTERM with 300 messages in the batch queue: stored, exit 0", case_stop_with_batch_queue)
    H.case("SIGTERM while an outage holds the queue: stored after FerretDB returns, exit 0",
           case_stop_during_outage)
    H.case("main broker: SIGTERM -> exit 0", case_final_stop)
finally:
    for b in H.brokers:  # Before FerretDB goes: a draining broker still needs it.
        if b.alive():
            try:
                b.stop(expect_code=None)
            except Exception:
                pass
    F.close()
H.finish()
