#!/usr/bin/python3
"""Scenario 5, idempotent send: resending an accepted (senderId, tempId) gets the original
seq with duplicate:true and is not fanned out again - whether the first copy is already
confirmed, still pending (two sends back to back), or resent from the sender's other socket.

Contract: protocol.md section 8 (idempotent send) and 6 (message:send). "No second
message:new anywhere" is checked after a later barrier message has reached everyone: room
events arrive in seq order, so a second copy would have arrived before the barrier.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ALL_VARIANTS, Harness, check, eq  # noqa: E402

H = Harness("idempotency")
import clients  # noqa: E402

B = H.broker(shards=2)


def msg(room, tid, body):
    return {"roomId": room, "tempId": tid, "type": "text", "body": body}


def pipelined_twice(c, payload):
    """Emit the same message:send twice back to back, then collect both acks."""
    acks, done = [], threading.Event()

    def cb(*args):
        acks.append(args[0] if len(args) == 1 else list(args))
        if len(acks) == 2:
            done.set()
    if c.mode == "sync":
        c.sio.emit("message:send", payload, callback=cb)
        c.sio.emit("message:send", payload, callback=cb)
    else:
        async def both():
            await c.sio.emit("message:send", payload, callback=cb)
            await c.sio.emit("message:send", payload, callback=cb)
        c._run(both(), 5)
    check(done.wait(5), "%s: only %d of 2 acks for a doubled send", c.label, len(acks))
    return acks


def case_idempotent(va, vb):
    ua, ub = H.uid("a"), H.uid("b")
    a, b = H.client(B, ua, va), H.client(B, ub, vb)
    a2 = H.client(B, ua, vb)  # The sender's second socket.
    room = a.call_ok("chat:create", {"type": "direct", "members": [ub]})["chat"]["id"]
    b.wait_event("chat:new", {"id": room})
    a2.wait_event("chat:new", {"id": room})

    # 1. Resend after confirmation: same seq, duplicate:true, confirmation repeated to A.
    tid = clients.temp_id("x")
    first = a.call_ok("message:send", msg(room, tid, "once"))
    seq = first["seq"]
    check(not first.get("duplicate"), "first send acked as duplicate: %r", first)
    conf = a.wait_event("message:confirmed", {"roomId": room, "seq": seq})
    again = a.call_ok("message:send", msg(room, tid, "once"))
    eq((again.get("seq"), again.get("tempId"), again.get("duplicate")), (seq, tid, True),
       "resend ack (seq, tempId, duplicate)")
    conf2 = a.wait_event("message:confirmed", {"roomId": room, "seq": seq}, n=2)
    eq(conf2, conf, "repeated confirmation")

    # 2. Resend from the sender's other socket: still the same message.
    other = a2.call_ok("message:send", msg(room, tid, "once"))
    eq((other.get("seq"), other.get("duplicate")), (seq, True), "resend from A's 2nd socket")

    # 3. Two sends back to back (the second arrives while the first is pending).
    tid2 = clients.temp_id("y")
    acks = pipelined_twice(a, msg(room, tid2, "twice"))
    check(all(isinstance(x, dict) and x.get("ok") is True for x in acks), "doubled acks: %r", acks)
    eq(acks[0]["seq"], acks[1]["seq"], "doubled send seqs")
    eq(sorted(bool(x.get("duplicate")) for x in acks), [False, True], "doubled send duplicate flags")
    seq2 = acks[0]["seq"]
    eq(seq2, seq + 1, "seq after a duplicate (duplicates take no seq)")

    # 4. Barrier: a fresh message reaches everybody, then count.
    _, bar = a.send_text(room, "barrier")
    eq(bar["seq"], seq2 + 1, "barrier seq")
    for c in (b, a2):
        c.wait_event("message:new", {"roomId": room, "seq": bar["seq"]})
    a.wait_event("message:confirmed", {"roomId": room, "seq": bar["seq"]})
    for c in (b, a2):
        eq(c.count("message:new", {"roomId": room, "tempId": tid}), 1, "%s copies of %s" % (c.label, tid))
        eq(c.count("message:new", {"roomId": room, "tempId": tid2}), 1, "%s copies of %s" % (c.label, tid2))
    eq(a.count("message:new", {"roomId": room}), 0, "message:new on the sending socket")
    eq(b.count("message:confirmed", {"roomId": room, "seq": seq}), 1,
       "confirmations of the resent message on B (repeat goes to the resending socket only)")

    # 5. The stored history holds each message once.
    hist = a.call_ok("history:get", {"roomId": room})["messages"]
    eq([m["seq"] for m in hist], [seq, seq2, bar["seq"]], "history seqs")
    eq([m["tempId"] for m in hist][:2], [tid, tid2], "history tempIds")

    # 6. The same tempId from a different sender is a different message.
    other_user = b.call_ok("message:send", msg(room, tid, "same tempId, other sender"))
    check(not other_user.get("duplicate") and other_user["seq"] == bar["seq"] + 1,
          "B reusing A's tempId must be a new message: %r", other_user)


for i, va in enumerate(ALL_VARIANTS):
    vb = ALL_VARIANTS[(i + 1) % len(ALL_VARIANTS)]
    H.case("idempotent resend A=%s B=%s" % (va, vb), case_idempotent, va, vb)
H.finish()
