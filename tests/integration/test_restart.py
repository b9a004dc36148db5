#!/usr/bin/python3
"""Scenario 7, durability across a restart: messages confirmed before SIGTERM (exit 0) are
in history after a restart on the same SQLite file, with the same ids and seqs, ascending;
room:join with sinceSeq returns exactly the missed ones; history:get pages with
beforeSeq/limit and `more`; seq numbering continues after the restart.

Contract: protocol.md sections 6 (history:get, room:join), 8 (confirmed means durable,
recovery) and 10 (SIGTERM drains and exits 0). One broker; phase 1 for every encoding,
one restart, phase 2 for every encoding.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ENCODINGS, Harness, check, eq  # noqa: E402

H = Harness("restart")
import clients  # noqa: E402

N = 12
B = H.broker(shards=2, extra=["--rate-limit", "100000", "--rate-burst", "1000"])
STATE = {}  # encoding tag -> dict(room, users, sent=[(seq, id, tempId, body)])


def case_before(v):
    ua, ub = "restart-%s-a" % v.tag, "restart-%s-b" % v.tag
    a, b = H.client(B, ua, v), H.client(B, ub, v)
    room = a.call_ok("chat:create", {"type": "direct", "members": [ub]})["chat"]["id"]
    b.wait_event("chat:new", {"id": room})
    sent = []
    for i in range(N):
        body = "durable %s #%d \u00e9" % (v.tag, i + 1)
        tid, ack = a.send_text(room, body, tid="%s-t%02d" % (v.tag, i + 1))
        eq(ack["seq"], i + 1, "seq of message %d" % (i + 1))
        sent.append([ack["seq"], None, tid, body])
    for s in sent:
        s[1] = a.wait_event("message:confirmed", {"roomId": room, "seq": s[0]}, timeout=10)["id"]
    # The pre-restart view, for comparison after the restart.
    hist = a.call_ok("history:get", {"roomId": room})
    eq([(m["seq"], m["id"]) for m in hist["messages"]], [(s[0], s[1]) for s in sent],
       "history before restart")
    STATE[v.tag] = {"room": room, "users": (ua, ub), "sent": sent}


def case_restart():
    check(len(STATE) == len(ENCODINGS), "phase 1 did not complete for every encoding")
    old = B.port
    code = B.stop(expect_code=0)  # Raises with the log unless the exit status is 0.
    eq(code, 0, "exit status after SIGTERM")
    B.start()
    check(B.port is not None, "no port after restart (old %s)" % old)


def check_messages(msgs, want, what, room):
    eq([(m.get("seq"), m.get("id"), m.get("tempId"), m.get("body")) for m in msgs],
       [tuple(s) for s in want], what)
    for m in msgs:
        eq(m.get("roomId"), room, what + " roomId")
        check(m.get("status") == "confirmed", "%s: status %r for seq %s", what, m.get("status"), m.get("seq"))
        check(isinstance(m.get("ts"), int), "%s: ts %r", what, m.get("ts"))


def case_after(v):
    st = STATE.get(v.tag)
    check(st is not None, "no phase-1 state for %s" % v)
    room, (ua, ub), sent = st["room"], st["users"], st["sent"]
    a, b = H.client(B, ua, v), H.client(B, ub, v)

    # 1. ready lists the chat with its lastSeq and B's unread count.
    chats = {c["id"]: c for c in b.ready_data["chats"]}
    check(room in chats, "chat %s missing from ready after restart: %r", room, list(chats))
    eq(chats[room].get("lastSeq"), N, "lastSeq after restart")
    eq(chats[room].get("unread"), N, "B's unread after restart")

    # 2. Full history: same ids and seqs, ascending, more:false.
    h = a.call_ok("history:get", {"roomId": room})
    check_messages(h["messages"], sent, "history:get after restart", room)
    eq(h.get("more"), False, "history more")

    # 3. room:join sinceSeq returns exactly the newer ones; without sinceSeq none.
    for k in (0, 5, N - 1, N):
        j = b.call_ok("room:join", {"roomId": room, "sinceSeq": k})
        check_messages(j["missed"], sent[k:], "room:join sinceSeq=%d missed" % k, room)
        eq(j.get("more"), False, "room:join sinceSeq=%d more" % k)
        eq(j.get("lastSeq"), N, "room:join lastSeq")
        eq(j.get("roomId"), room, "room:join roomId")
    j = b.call_ok("room:join", {"roomId": room})
    eq((j.get("missed"), j.get("more")), ([], False), "room:join without sinceSeq")

    # 4. Paging backwards with beforeSeq/limit.
    pages, before = [], N + 1
    for _ in range(N):  # Bounded: at most N pages.
        p = a.call_ok("history:get", {"roomId": room, "beforeSeq": before, "limit": 5})
        seqs = [m["seq"] for m in p["messages"]]
        want = list(range(max(1, before - 5), before))
        eq(seqs, want, "page before %d" % before)
        eq(p.get("more"), want[0] > 1, "page before %d more" % before)
        pages.append(p)
        if not p["more"]:
            break
        before = seqs[0]
    eq(len(pages), 3, "pages of 5 for %d messages" % N)
    check_messages([m for p in reversed(pages) for m in p["messages"]], sent, "pages joined", room)
    p = a.call_ok("history:get", {"roomId": room, "beforeSeq": 1})
    eq((p["messages"], p.get("more")), ([], False), "history before seq 1")
    p = a.call_ok("history:get", {"roomId": room, "limit": 3})
    eq(([m["seq"] for m in p["messages"]], p.get("more")), ([N - 2, N - 1, N], True),
       "history limit 3 without beforeSeq")

    # 5. Numbering continues; the new message is confirmed and stored too.
    tid, ack = a.send_text(room, "after restart")
    eq(ack["seq"], N + 1, "first seq after restart")
    check(not ack.get("duplicate"), "new tempId acked as duplicate")
    b.wait_event("message:new", {"roomId": room, "seq": N + 1})
    a.wait_event("message:confirmed", {"roomId": room, "seq": N + 1})
    # 6. An old tempId is still known after the restart (the unique {senderId, tempId}).
    dup = a.call_ok("message:send", {"roomId": room, "tempId": sent[0][2], "type": "text",
                                     "body": sent[0][3]})
    eq((dup.get("seq"), dup.get("duplicate")), (1, True), "resend of a pre-restart tempId")


for v in ENCODINGS:
    H.case("before restart: %d confirmed messages (%s)" % (N, v), case_before, v)
H.case("SIGTERM -> exit 0, restart on the same store", case_restart)
for v in ENCODINGS:
    H.case("after restart: history, room:join sinceSeq, paging (%s)" % v, case_after, v)
H.finish()
