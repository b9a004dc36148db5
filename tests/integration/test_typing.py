#!/usr/bin/python3
"""Scenario 10, typing: typing:start reaches the other members as {roomId, userId,
isTyping:true}; without a stop, the server sends isTyping:false by itself about 5 s later
(allowed up to 8 s); typing:stop sends false at once (checked by order: it arrives before a
message sent right after the stop); the typer's own sockets get no typing events about it.

Contract: protocol.md sections 6 (typing:start/stop) and 7 (typing). This script takes
about 6 s per encoding because of the automatic stop.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ALL_VARIANTS, ENCODINGS, Harness, check, eq  # noqa: E402

H = Harness("typing")
import clients  # noqa: E402

B = H.broker(shards=2)


def other(v, k=1):
    return ALL_VARIANTS[(ALL_VARIANTS.index(v) + k) % 4]


def case_typing(v):
    ua, ub, uc = H.uid("a"), H.uid("b"), H.uid("c")
    a, b, c = H.client(B, ua, v), H.client(B, ub, other(v)), H.client(B, uc, other(v, 2))
    a2 = H.client(B, ua, other(v, 3))  # The typer's other socket.
    room = a.call_ok("chat:create", {"type": "group", "members": [ub, uc], "name": "t"})["chat"]["id"]
    for x in (b, c, a2):
        x.wait_event("chat:new", {"id": room})
    on = {"roomId": room, "userId": ua, "isTyping": True}
    off = {"roomId": room, "userId": ua, "isTyping": False}

    # 1. start -> true to the others; false by itself after about 5 s.
    a.call_ok("typing:start", {"roomId": room})
    for x in (b, c):
        eq(x.wait_event("typing", {"roomId": room}), on, "typing start on %s" % x.label)
    for x in (b, c):
        eq(x.wait_event("typing", {"roomId": room, "isTyping": False}, timeout=8.0), off,
           "automatic typing stop on %s" % x.label)

    # 2. start, stop, then a message: false arrives at once, before that message.
    a.call_ok("typing:start", {"roomId": room})
    b.wait_event("typing", on, n=2)
    a.call_ok("typing:stop", {"roomId": room})
    _, ack = a.send_text(room, "after stop")
    for x in (b, c):
        x.wait_event("message:new", {"roomId": room, "seq": ack["seq"]})
        evs = [(n, d) for n, d in x.snapshot() if isinstance(d, dict) and d.get("roomId") == room
               and n in ("typing", "message:new")]
        eq(evs[-2:], [("typing", off), ("message:new", evs[-1][1])],
           "%s: typing false then the message" % x.label)
        eq([d["isTyping"] for n, d in evs if n == "typing"], [True, False, True, False],
           "%s typing sequence" % x.label)
    a.wait_event("message:confirmed", {"roomId": room, "seq": ack["seq"]})
    a2.wait_event("message:new", {"roomId": room, "seq": ack["seq"]})

    # 3. The typer's sockets heard nothing about their own typing.
    eq(a.named("typing"), [], "typing events on the typing socket")
    eq(a2.named("typing"), [], "typing events on the typer's other socket")

    # 4. B typing reaches A on both sockets; errors for rooms one cannot use.
    b.call_ok("typing:stop", {"roomId": room})  # A stop without a start is fine.
    b.call_ok("typing:start", {"roomId": room})
    for x in (a, a2):
        eq(x.wait_event("typing", {"userId": ub, "isTyping": True}),
           {"roomId": room, "userId": ub, "isTyping": True}, "B's typing on %s" % x.label)
    b.call_ok("typing:stop", {"roomId": room})
    a.wait_event("typing", {"userId": ub, "isTyping": False})
    b.call_err("typing:start", {"roomId": "no-such-room-" + ua}, "NOT_FOUND")
    b.call_err("typing:start", {}, "INVALID_INPUT")
    check(b.connected, "B dropped after typing errors")


for v in ENCODINGS:
    H.case("typing start/auto-stop/stop (%s)" % v, case_typing, v)
H.finish()
