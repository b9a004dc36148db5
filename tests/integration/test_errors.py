#!/usr/bin/python3
"""Scenario 8, errors: unknown events (with and without ack), NOT_FOUND, UNAUTHORIZED,
INVALID_INPUT, PAYLOAD_TOO_LARGE (counted in UTF-8 bytes), RATE_LIMITED (a resent duplicate
costs no token; the bucket is shared by the user's sockets) and a WebSocket message over
maxPayload (close 1009). After every error the same connection (for acked errors) and
other connections keep working.

Contract: protocol.md sections 1 (maxPayload), 5 (acks and errors), 6, 8 (limits).
Broker 1: --rate-limit 30 --rate-burst 10. Broker 2: --max-payload 10000.
Each case uses fresh users, so rate-limit tokens never leak between cases.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ALL_VARIANTS, ENCODINGS, Harness, check, eq  # noqa: E402

H = Harness("errors")
import clients  # noqa: E402
import rawws  # noqa: E402

B = H.broker(shards=2, extra=["--rate-limit", "30", "--rate-burst", "10"])
B2 = H.broker(shards=1, extra=["--max-payload", "10000"])


def still_works(*cs):
    for c in cs:
        check(c.connected, "%s was disconnected", c.label)
        c.call_ok("chats:list", {})


def pair(v, b=None):
    b = b or B
    ua, ub = H.uid("a"), H.uid("b")
    a = H.client(b, ua, v)
    o = H.client(b, ub, ALL_VARIANTS[(ALL_VARIANTS.index(v) + 1) % 4])
    room = a.call_ok("chat:create", {"type": "direct", "members": [ub]})["chat"]["id"]
    o.wait_event("chat:new", {"id": room})
    return a, o, room


def send(room, tid="t1", body="x", **kw):
    d = {"roomId": room, "tempId": tid, "type": "text", "body": body}
    d.update(kw)
    return d


def case_unknown_event(v):
    a, o, _ = pair(v)
    a.call_err("no:such:event", {"x": 1}, "INVALID_INPUT")
    a.call_err("no:such:event", None, "INVALID_INPUT")  # No payload at all.
    a.call_err(12345, {}, "INVALID_INPUT")  # A non-string event name.
    still_works(a, o)
    a.emit("no:such:event:either", {"x": 2})  # Without an ack: an `error` event.
    err = a.wait_event("error")
    eq(err.get("code"), "INVALID_INPUT", "error event code")
    check(isinstance(err.get("message"), str), "error event without message: %r", err)
    eq(a.count("error"), 1, "error events")
    still_works(a, o)


def case_not_found_unauthorized(v):
    a, o, room = pair(v)
    a.call_err("message:send", send("no-such-room-" + H.uid("r")), "NOT_FOUND")
    # A group that the sender is not in.
    uc = H.uid("c")
    c = H.client(B, uc, ALL_VARIANTS[2])
    group = o.call_ok("chat:create", {"type": "group", "members": [uc], "name": "g"})["chat"]["id"]
    c.wait_event("chat:new", {"id": group})
    a.call_err("message:send", send(group, "t-g"), "UNAUTHORIZED")
    a.call_err("history:get", {"roomId": group}, "UNAUTHORIZED")
    a.call_err("typing:start", {"roomId": group}, "UNAUTHORIZED")
    a.call_err("history:get", {"roomId": "no-such-room-x"}, "NOT_FOUND")
    # Field checks come before existence and permission.
    a.call_err("message:send", {"roomId": group, "tempId": "t"}, "INVALID_INPUT")
    a.call_err("message:send", {"roomId": "no-such-room-y", "type": "text", "body": "b"}, "INVALID_INPUT")
    # Without ack: an `error` event with the code.
    a.emit("message:send", send(group, "t-g2"))
    eq(a.wait_event("error").get("code"), "UNAUTHORIZED", "error event code for unacked send")
    # Nothing reached the group.
    o.send_text(group, "group barrier")
    c.wait_event("message:new", {"roomId": group, "body": "group barrier"})
    eq(c.count("message:new", {"roomId": group}), 1, "messages in the group")
    still_works(a, o, c)
    a.send_text(room, "still fine")


def case_invalid_input(v):
    a, o, room = pair(v)
    bad = [
        ("no roomId", {"tempId": "t", "type": "text", "body": "b"}),
        ("no tempId", {"roomId": room, "type": "text", "body": "b"}),
        ("no type", {"roomId": room, "tempId": "t", "body": "b"}),
        ("no body", {"roomId": room, "tempId": "t", "type": "text"}),
        ("bad type", send(room, type="video")),
        ("tempId too long", send(room, tid="t" * 65)),
        ("empty tempId", send(room, tid="")),
        ("roomId not a string", send(123)),
        ("body not a string", send(room, body=42)),
        ("bad roomId chars", send("room with spaces")),
        ("replyTo to a missing seq", send(room, replyTo=999)),
        ("payload is a string", "not an object"),
        ("payload is a list", [1, 2]),
    ]
    for what, payload in bad:
        try:
            a.call_err("message:send", payload, "INVALID_INPUT")
        except AssertionError as e:
            raise AssertionError("%s: %s" % (what, e))
    a.call_err("chat:create", {"type": "direct", "members": []}, "INVALID_INPUT")
    a.call_err("chat:create", {"type": "nonsense", "members": [o.user_id]}, "INVALID_INPUT")
    a.call_err("room:join", {}, "INVALID_INPUT")
    a.call_err("history:get", {"roomId": room, "limit": "ten"}, "INVALID_INPUT")
    a.emit("message:send", {"roomId": room})  # Without ack: an `error` event.
    eq(a.wait_event("error").get("code"), "INVALID_INPUT", "error event code")
    # The longest valid tempId works; none of the bad sends took a seq.
    _, ack = a.send_text(room, "ok", tid="t" * 64)
    eq(ack["seq"], 1, "seq of the first valid message")
    o.wait_event("message:new", {"roomId": room, "seq": 1})
    still_works(a, o)


def case_payload_too_large(v):
    a, o, room = pair(v)
    # 'é' is 2 bytes of UTF-8 (and 6 on the wire as a JSON \u escape from python).
    exact = "\u00e9" * 32768  # 65,536 bytes.
    a.call_err("message:send", send(room, "big1", exact + "a"), "PAYLOAD_TOO_LARGE")
    a.call_err("message:send", send(room, "big2", "a" * 65537), "PAYLOAD_TOO_LARGE")
    still_works(a, o)
    _, ack = a.send_text(room, exact, tid="big3")
    m = o.wait_event("message:new", {"roomId": room, "seq": ack["seq"]})
    eq(len(m["body"].encode("utf-8")), 65536, "delivered body size")
    eq(m["body"], exact, "delivered 64 KiB body")
    _, ack2 = a.send_text(room, "a" * 65536, tid="big4")
    eq(ack2["seq"], ack["seq"] + 1, "seq after the second limit-size body")
    still_works(a, o)


def case_rate_limit(v):
    a, o, room = pair(v)
    a2 = H.client(B, a.user_id, ALL_VARIANTS[(ALL_VARIANTS.index(v) + 2) % 4])  # Same user.
    acks = [a.send_text(room, "burst %d" % i, tid="rl-%d" % i)[1] for i in range(9)]
    eq([x["seq"] for x in acks], list(range(1, 10)), "seqs of the first 9")
    dup = a.call_ok("message:send", send(room, "rl-0", "burst 0"))  # Costs no token.
    eq((dup.get("seq"), dup.get("duplicate")), (1, True), "resent duplicate")
    _, tenth = a.send_text(room, "burst 9", tid="rl-9")
    eq(tenth["seq"], 10, "10th message seq (the duplicate took no token)")
    a.call_err("message:send", send(room, "rl-10", "burst 10"), "RATE_LIMITED")
    a2.call_err("message:send", send(room, "rl-11", "other socket"), "RATE_LIMITED")  # Shared bucket.
    # Duplicates are still answered while limited.
    dup = a.call_ok("message:send", send(room, "rl-5", "burst 5"))
    eq((dup.get("seq"), dup.get("duplicate")), (6, True), "duplicate while rate limited")
    # Other events are not rate limited; other users are not affected.
    still_works(a, a2, o)
    _, ob = o.send_text(room, "other user is fine")
    eq(ob["seq"], 11, "other user's seq")
    a.wait_event("message:new", {"roomId": room, "seq": 11})
    # The limited sends were not fanned out.
    o.call_ok("chats:list", {})
    eq(sorted(m["seq"] for m in o.named("message:new", {"roomId": room})), list(range(1, 11)),
       "messages the other user received")


def case_max_payload(v):
    enc = v.serializer
    watcher = H.client(B2, H.uid("watch"), v)
    s = rawws.RawSio(B2.port, enc)
    try:
        eq(s.open.get("maxPayload"), 10000, "OPEN maxPayload")
        p = s.connect(B2.token(H.uid("big")))
        eq(p["type"], 0, "CONNECT reply")
        # A message just under the limit is fine and answered.
        s.send(2, "/", ["no:such:event", {"pad": "p" * 8000}], ack_id=1)
        p = s.recv_packet()
        while p["type"] == 2:  # Skip ready and any other events.
            p = s.recv_packet()
        eq((p["type"], p["id"]), (3, 1), "ack under the limit")
        eq(p["data"][0].get("ok"), False, "unknown event ack ok")
        # 20,000 bytes in one WebSocket message: closed with 1009.
        s.send(2, "/", ["message:send", {"roomId": "r", "tempId": "t", "type": "text",
                                         "body": "b" * 20000}], ack_id=2)
        (kind, code), _ = s.ws.wait_closed(timeout=5.0, answer_pings=True)
        eq((kind, code), ("close", 1009), "close after an oversized message")
    finally:
        s.close()
    still_works(watcher)


for v in ENCODINGS:
    H.case("unknown event -> INVALID_INPUT (ack and error event) (%s)" % v, case_unknown_event, v)
    H.case("NOT_FOUND, UNAUTHORIZED, check order (%s)" % v, case_not_found_unauthorized, v)
    H.case("missing/bad fields -> INVALID_INPUT (%s)" % v, case_invalid_input, v)
    H.case("body > 65536 bytes -> PAYLOAD_TOO_LARGE (%s)" % v, case_payload_too_large, v)
    H.case("rate limit 10 burst, duplicate free, shared bucket (%s)" % v, case_rate_limit, v)
    H.case("WebSocket message over maxPayload -> 1009 (%s)" % v, case_max_payload, v)
H.finish()
