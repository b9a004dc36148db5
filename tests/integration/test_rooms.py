#!/usr/bin/python3
"""Scenario 9, rooms: joining a channel makes you a member (all your sockets) and tells the
others; room:leave on a group or channel ends membership, tells the others and stops
delivery to all of the leaver's sockets; room:leave on a direct chat only mutes that
socket, silently, until it joins again; joining a group you are not in, or a user:<id>
room, is UNAUTHORIZED; the room:join ack carries members, online, lastSeq, missed, more.

Contract: protocol.md section 6 (room:join, room:leave) and 7 (room:member-joined/-left).
"Stops receiving" is checked after a barrier message reached a remaining member and its
confirmation reached the sender, plus a short settle time for the muted socket.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ALL_VARIANTS, ENCODINGS, Harness, check, eq  # noqa: E402

H = Harness("rooms")
import clients  # noqa: E402

B = H.broker(shards=3)
SETTLE_S = 0.5  # Grace for absence checks on sockets outside the room; not a timing assertion.


def other(v, k=1):
    return ALL_VARIANTS[(ALL_VARIANTS.index(v) + k) % 4]


def check_join_ack(j, room, members, online_at_least, last_seq, what):
    eq(j.get("roomId"), room, what + " roomId")
    eq(j.get("members"), members, what + " members count")
    check(isinstance(j.get("online"), list), "%s: online is not a list: %r", what, j)
    check(set(online_at_least) <= set(j["online"]), "%s: online %r lacks some of %r",
          what, j["online"], online_at_least)
    eq(j.get("lastSeq"), last_seq, what + " lastSeq")
    check(isinstance(j.get("missed"), list), "%s: missed is not a list: %r", what, j)
    check(isinstance(j.get("more"), bool), "%s: more is not a bool: %r", what, j)


def barrier(sender, room, receivers, body):
    """Send body; wait until each receiver has it and the sender has its confirmation."""
    _, ack = sender.send_text(room, body)
    for r in receivers:
        r.wait_event("message:new", {"roomId": room, "seq": ack["seq"]})
    sender.wait_event("message:confirmed", {"roomId": room, "seq": ack["seq"]})
    time.sleep(SETTLE_S)
    return ack["seq"]


def case_channel(v):
    ua, ub, uc = H.uid("a"), H.uid("b"), H.uid("c")
    a, c = H.client(B, ua, v), H.client(B, uc, other(v))
    b1, b2 = H.client(B, ub, other(v, 2)), H.client(B, ub, other(v, 3))
    ch = a.call_ok("chat:create", {"type": "channel", "members": [uc], "name": "news"})["chat"]
    room = ch["id"]
    eq(ch.get("type"), "channel", "channel type")
    c.wait_event("chat:new", {"id": room})
    a.send_text(room, "before b")
    a.send_text(room, "before b 2")

    # 1. B joins: ack shape, others hear room:member-joined, all of B's sockets receive.
    j = b1.call_ok("room:join", {"roomId": room})
    check_join_ack(j, room, 3, [ua, ub, uc], 2, "channel room:join")
    eq((j["missed"], j["more"]), ([], False), "room:join without sinceSeq")
    for x in (a, c):
        eq(x.wait_event("room:member-joined", {"roomId": room}), {"roomId": room, "userId": ub},
           "room:member-joined on %s" % x.label)
    s3 = barrier(a, room, [b1, b2, c], "welcome b")
    eq(s3, 3, "seq after two earlier messages")
    for x in (b1, b2):
        eq(x.named("room:member-joined", {"userId": ub}), [], "%s told about its own join" % x.label)
    j2 = b2.call_ok("room:join", {"roomId": room, "sinceSeq": 1})
    eq([m["seq"] for m in j2["missed"]], [2, 3], "room:join sinceSeq=1 missed seqs")
    # B is a member now: it can send, and A sees it.
    _, ack = b1.send_text(room, "hi from b")
    a.wait_event("message:new", {"roomId": room, "seq": ack["seq"], "senderId": ub})
    listed = [x for x in b2.call_ok("chats:list", {})["chats"] if x["id"] == room]
    eq(len(listed), 1, "channel in B's chats:list after joining")
    check(ub in listed[0]["members"], "B not in channel members: %r", listed[0])

    # 2. B leaves: others hear room:member-left; neither of B's sockets receives any more.
    b1.call_ok("room:leave", {"roomId": room})
    for x in (a, c):
        eq(x.wait_event("room:member-left", {"roomId": room}), {"roomId": room, "userId": ub},
           "room:member-left on %s" % x.label)
    seq = barrier(a, room, [c], "after b left")
    for x in (b1, b2):
        eq(x.named("message:new", {"roomId": room, "seq": seq}), [], "%s after leaving" % x.label)
    b1.call_err("message:send", {"roomId": room, "tempId": "late", "type": "text", "body": "x"},
                "UNAUTHORIZED")
    still = [x for x in b2.call_ok("chats:list", {})["chats"] if x["id"] == room]
    eq(still, [], "channel in B's chats:list after leaving")


def case_group(v):
    ua, uc, ud, ue = H.uid("a"), H.uid("c"), H.uid("d"), H.uid("e")
    a, c, d = H.client(B, ua, v), H.client(B, uc, other(v)), H.client(B, ud, other(v, 2))
    e = H.client(B, ue, other(v, 3))
    room = a.call_ok("chat:create", {"type": "group", "members": [uc, ud], "name": "g"})["chat"]["id"]
    for x in (c, d):
        x.wait_event("chat:new", {"id": room})
    e.call_err("room:join", {"roomId": room}, "UNAUTHORIZED")  # Never a member.
    j = c.call_ok("room:join", {"roomId": room, "sinceSeq": 0})
    check_join_ack(j, room, 3, [ua, uc, ud], 0, "group room:join")
    d.call_ok("room:leave", {"roomId": room})
    for x in (a, c):
        eq(x.wait_event("room:member-left", {"roomId": room}), {"roomId": room, "userId": ud},
           "room:member-left on %s" % x.label)
    seq = barrier(a, room, [c], "after d left")
    eq(d.named("message:new", {"roomId": room, "seq": seq}), [], "message to D after leaving")
    d.call_err("room:join", {"roomId": room}, "UNAUTHORIZED")  # Membership ended.
    d.call_err("message:send", {"roomId": room, "tempId": "x", "type": "text", "body": "x"},
               "UNAUTHORIZED")
    eq(c.call_ok("room:join", {"roomId": room}).get("members"), 2, "members after D left")


def case_direct(v):
    ua, ub = H.uid("a"), H.uid("b")
    a = H.client(B, ua, v)
    b1, b2 = H.client(B, ub, other(v)), H.client(B, ub, other(v, 2))
    room = a.call_ok("chat:create", {"type": "direct", "members": [ub]})["chat"]["id"]
    b1.wait_event("chat:new", {"id": room})
    s1 = barrier(a, room, [b1, b2], "one")

    # 1. B1 leaves the direct room: only that socket is muted, silently.
    b1.call_ok("room:leave", {"roomId": room})
    s2 = barrier(a, room, [b2], "two")
    eq(b1.named("message:new", {"roomId": room, "seq": s2}), [], "message to the muted socket")
    eq(a.named("room:member-left"), [], "room:member-left for a direct leave")
    eq(b2.named("room:member-left"), [], "room:member-left on B's other socket")
    # Still a member: it can send, and it can join again.
    _, ack = b1.send_text(room, "still a member")
    a.wait_event("message:new", {"roomId": room, "seq": ack["seq"]})
    j = b1.call_ok("room:join", {"roomId": room, "sinceSeq": s1})
    check_join_ack(j, room, 2, [ua, ub], ack["seq"], "direct room:join")
    eq([m["seq"] for m in j["missed"]], [s2, ack["seq"]], "missed after rejoining")
    s4 = barrier(a, room, [b1, b2], "three")
    eq(s4, ack["seq"] + 1, "seq after rejoin")

    # 2. user:<id> rooms cannot be joined, not even one's own.
    b1.call_err("room:join", {"roomId": "user:" + ua}, "UNAUTHORIZED")
    b1.call_err("room:join", {"roomId": "user:" + ub}, "UNAUTHORIZED")
    b1.call_ok("chats:list", {})


for v in ENCODINGS:
    H.case("channel join/leave (%s)" % v, case_channel, v)
    H.case("group leave, join refused (%s)" % v, case_group, v)
    H.case("direct leave mutes one socket; user: rooms (%s)" % v, case_direct, v)
H.finish()
