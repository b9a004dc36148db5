#!/usr/bin/python3
"""Scenario 4, group fan-out and order: a group of 50 members (u00..u49) on 4 shards, 5
members sending 20 messages each at the same time (each sender pipelines its sends without
waiting for acks). Every member must receive every message exactly once, per room in
strictly increasing seq order, seq must be gap-free 1..100, and one socket's messages get
increasing seq in the order they were sent.

Contract: protocol.md section 8 (order, optimistic first) and 6 (message:send). The 50
members are AsyncClients on one event loop thread; the run is repeated for JSON and msgpack.
Rate limits are raised so that they do not interfere.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ASYNC_JSON, ASYNC_MSGPACK, Harness, check, eq  # noqa: E402

H = Harness("group_fanout")
import clients  # noqa: E402

N_MEMBERS, N_SENDERS, PER_SENDER = 50, 5, 20
TOTAL = N_SENDERS * PER_SENDER
B = H.broker(shards=4, extra=["--rate-limit", "1000000", "--rate-burst", "1000000"])
USERS = ["u%02d" % i for i in range(N_MEMBERS)]


async def send_burst(c, room, run_tag):
    """Emit PER_SENDER message:send back to back; then await every ack (in send order)."""
    loop = asyncio.get_running_loop()
    futs, sent = [], []
    for i in range(PER_SENDER):
        tid = "%s-%s-%02d" % (run_tag, c.user_id, i)
        body = "from %s #%d" % (c.user_id, i)
        fut = loop.create_future()

        def cb(*args, fut=fut):
            if not fut.done():
                fut.set_result(args[0] if len(args) == 1 else list(args))
        await c.sio.emit("message:send", {"roomId": room, "tempId": tid, "type": "text",
                                          "body": body}, callback=cb)
        futs.append(fut)
        sent.append((tid, body))
    acks = await asyncio.wait_for(asyncio.gather(*futs), 30)
    return list(zip(sent, acks))


def case_group(v):
    run_tag = v.serializer
    members = [H.client(B, u, v, connect=False) for u in USERS]
    clients.connect_many(members, timeout=30)
    creator, others = members[0], members[1:]

    ack = creator.call_ok("chat:create", {"type": "group", "members": USERS[1:],
                                          "name": "fanout-" + run_tag}, timeout=10)
    chat = ack["chat"]
    room = chat["id"]
    eq(chat.get("type"), "group", "chat.type")
    eq(sorted(chat.get("members") or []), sorted(USERS), "chat.members")
    for c in others:
        c.wait_event("chat:new", {"id": room}, timeout=15)

    senders = members[:N_SENDERS]
    results = creator.loopt.gather([send_burst(s, room, run_tag) for s in senders], timeout=60)
    by_seq = {}
    for s, res in zip(senders, results):
        if isinstance(res, BaseException):
            raise AssertionError("%s: sending failed: %r" % (s.label, res))
        seqs = []
        for (tid, body), a in res:
            check(isinstance(a, dict) and a.get("ok") is True, "%s: send %s ack %r", s.label, tid, a)
            eq(a.get("tempId"), tid, "%s ack tempId" % s.label)
            check(not a.get("duplicate"), "%s: fresh send acked as duplicate: %r", s.label, a)
            check(a["seq"] not in by_seq, "seq %s assigned twice" % a["seq"])
            by_seq[a["seq"]] = (s.user_id, tid, body)
            seqs.append(a["seq"])
        check(all(x < y for x, y in zip(seqs, seqs[1:])),
              "%s: seqs not increasing in send order: %r", s.label, seqs)
    eq(sorted(by_seq), list(range(1, TOTAL + 1)), "seqs assigned (gap-free 1..N)")

    # Every member: every message exactly once, in strictly increasing seq order.
    for c in members:
        own = {seq for seq, (uid, _, _) in by_seq.items() if uid == c.user_id and c in senders}
        want = [s for s in range(1, TOTAL + 1) if s not in own]
        news = c.wait_count("message:new", len(want), {"roomId": room}, timeout=30)
        confs = c.wait_count("message:confirmed", TOTAL, {"roomId": room}, timeout=30)
        got = [m["seq"] for m in news]
        if got != want:
            dup = sorted({s for s in got if got.count(s) > 1})
            raise AssertionError("%s: message:new seqs wrong (duplicates %r, missing %r, own %d); "
                                 "first 20: %r" % (c.label, dup, sorted(set(want) - set(got)),
                                                   len(own), got[:20]))
        for m in news:
            uid, tid, body = by_seq[m["seq"]]
            eq((m.get("senderId"), m.get("tempId"), m.get("body"), m.get("status")),
               (uid, tid, body, "pending"), "%s message:new seq %d" % (c.label, m["seq"]))
        cseqs = [m["seq"] for m in confs]
        eq(cseqs, list(range(1, TOTAL + 1)), "%s message:confirmed seqs (once each, in order)" % c.label)
        for m in confs:
            eq(m.get("tempId"), by_seq[m["seq"]][1], "%s confirmed tempId seq %d" % (c.label, m["seq"]))
        # Per socket, a message's message:new comes before its confirmation.
        pos = {}
        for i, (n, d) in enumerate(c.snapshot()):
            if isinstance(d, dict) and d.get("roomId") == room and n in ("message:new", "message:confirmed"):
                pos.setdefault((n, d["seq"]), i)
        late = [s for s in want if pos[("message:new", s)] > pos[("message:confirmed", s)]]
        eq(late, [], "%s seqs confirmed before their message:new" % c.label)
    # Confirmed ids are unique across the room.
    ids = [m["id"] for m in creator.named("message:confirmed", {"roomId": room})]
    eq(len(set(ids)), TOTAL, "distinct message ids")

    # Nothing more arrives later (checked after one more round trip on a member).
    creator.call_ok("chats:list", {})
    for c in members:
        check(c.count("message:new", {"roomId": room}) <= TOTAL, "%s got extra messages", c.label)


H.case("group of 50, 5 concurrent senders, async/json", case_group, ASYNC_JSON)
H.case("group of 50, 5 concurrent senders, async/msgpack", case_group, ASYNC_MSGPACK)
H.finish()
