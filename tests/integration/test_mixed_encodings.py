#!/usr/bin/python3
"""Scenario 6, mixed encodings: JSON and msgpack members of one group (sync and async
clients of both) see identical payloads for chat:new, message:new, message:confirmed,
typing and the history:get / room:join answers. Bodies carry non-ASCII text (python's
JSON encoder sends it as \\u escapes with surrogate pairs), quotes, backslashes, control
characters and a NUL, so both decoders and both encoders are exercised.

Contract: protocol.md section 2 (encodings, chosen per connection). Run twice: once with a
JSON sender, once with a msgpack sender.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ALL_VARIANTS, ENCODINGS, Harness, check, eq  # noqa: E402

H = Harness("mixed_encodings")
import clients  # noqa: E402

B = H.broker(shards=3)
BODIES = [
    "plain ascii",
    "caf\u00e9 \u65e5\u672c\u8a9e \U0001F600\U0001F680 \u00e9\u0301",
    "quotes \" and \\ backslash / slash",
    "ctl \n\t\r\b\f and \u0001 and nul \u0000 end",
    "x" * 3000,
]


def case_mixed(sender_v):
    us = H.uid("sender")
    sender = H.client(B, us, sender_v, name="S\u00e9nder \U0001F600")
    readers = [H.client(B, H.uid("r%d" % i), v) for i, v in enumerate(ALL_VARIANTS)]
    ids = [r.user_id for r in readers]
    chat = sender.call_ok("chat:create", {"type": "group", "members": ids,
                                          "name": "m\u00efxed \U0001F600"})["chat"]
    room = chat["id"]
    news = [r.wait_event("chat:new", {"id": room}) for r in readers]
    for r, cn in zip(readers, news):
        eq(cn, news[0], "chat:new as seen by %s vs %s" % (r.label, readers[0].label))
    eq(news[0].get("name"), "m\u00efxed \U0001F600", "chat name round trip")

    seqs = []
    for i, body in enumerate(BODIES):
        payload = {"roomId": room, "tempId": clients.temp_id("mx"), "type": "text", "body": body}
        if i == 2:
            payload["replyTo"] = seqs[0]
        seqs.append(sender.call_ok("message:send", payload)["seq"])
    sender.call_ok("typing:start", {"roomId": room})

    for seq, body in zip(seqs, BODIES):
        got = [r.wait_event("message:new", {"roomId": room, "seq": seq}) for r in readers]
        eq(got[0].get("body"), body, "message:new body for seq %d" % seq)
        eq(got[0].get("senderName"), "S\u00e9nder \U0001F600", "senderName")
        for r, m in zip(readers, got):
            eq(m, got[0], "message:new seq %d as seen by %s vs %s" % (seq, r.label, readers[0].label))
        confs = [r.wait_event("message:confirmed", {"roomId": room, "seq": seq}) for r in readers]
        for r, m in zip(readers, confs):
            eq(m, confs[0], "message:confirmed seq %d on %s" % (seq, r.label))
        eq(sender.wait_event("message:confirmed", {"roomId": room, "seq": seq}), confs[0],
           "sender's confirmation seq %d" % seq)
    typ = [r.wait_event("typing", {"roomId": room, "isTyping": True}) for r in readers]
    for r, t in zip(readers, typ):
        eq(t, {"roomId": room, "userId": us, "isTyping": True}, "typing on %s" % r.label)
    sender.call_ok("typing:stop", {"roomId": room})

    hist = [r.call_ok("history:get", {"roomId": room}) for r in readers]
    eq([m["body"] for m in hist[0]["messages"]], BODIES, "history bodies")
    for r, h in zip(readers, hist):
        eq(h, hist[0], "history:get on %s vs %s" % (r.label, readers[0].label))
    joins = [r.call_ok("room:join", {"roomId": room, "sinceSeq": 0}) for r in readers]
    for r, j in zip(readers, joins):
        eq(j["missed"], joins[0]["missed"], "room:join missed on %s" % r.label)
    eq([m["body"] for m in joins[0]["missed"]], BODIES, "room:join missed bodies")
    check(all(m.get("status") == "confirmed" for m in hist[0]["messages"]),
          "history statuses: %r", [m.get("status") for m in hist[0]["messages"]])


for v in ENCODINGS:
    H.case("JSON + msgpack members, sender %s" % v, case_mixed, v)
H.finish()
