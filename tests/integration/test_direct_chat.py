#!/usr/bin/python3
"""Scenario 3, direct chat: chat:create, chat:new, same pair -> same chat, message:send ack,
message:new (pending) then message:confirmed to the other side, confirmed but no
message:new on the sending socket, message:new on the sender's other socket.

Contract: protocol.md sections 4, 6 (chat:create, message:send), 7, 8 (order, optimistic
first). Runs with every client kind; the two users of a case use different kinds.
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ALL_VARIANTS, Harness, check, eq  # noqa: E402

H = Harness("direct_chat")
import clients  # noqa: E402

B = H.broker(shards=2)
HEX24 = re.compile(r"^[0-9a-f]{24}$")


def check_chat(chat, members, what):
    check(isinstance(chat, dict), "%s: chat is not an object: %r", what, chat)
    check(isinstance(chat.get("id"), str) and chat["id"] != "", "%s: chat.id: %r", what, chat)
    eq(chat.get("type"), "direct", what + " chat.type")
    eq(sorted(chat.get("members") or []), sorted(members), what + " chat.members")
    check(isinstance(chat.get("createdAt"), int), "%s: chat.createdAt: %r", what, chat)
    check("name" in chat, "%s: chat without name: %r", what, chat)
    check(isinstance(chat.get("lastSeq"), int), "%s: chat.lastSeq: %r", what, chat)
    check(isinstance(chat.get("unread"), int), "%s: chat.unread: %r", what, chat)


def index_of(c, name, match):
    for i, (n, d) in enumerate(c.snapshot()):
        if n == name and clients.matches(d, match):
            return i
    return -1


def check_new(msg, room, seq, tid, sender, sender_name, body, what):
    for k, want in (("roomId", room), ("seq", seq), ("tempId", tid), ("senderId", sender),
                    ("type", "text"), ("body", body), ("status", "pending")):
        eq(msg.get(k), want, "%s message:new.%s" % (what, k))
    if sender_name is not None:
        eq(msg.get("senderName"), sender_name, what + " message:new.senderName")
    check(isinstance(msg.get("ts"), int) and msg["ts"] > 1_600_000_000_000,
          "%s: message:new.ts is not epoch ms: %r", what, msg.get("ts"))
    check(not msg.get("deleted"), "%s: message:new marked deleted: %r", what, msg)


def check_confirmed(conf, room, seq, tid, what):
    eq(sorted(k for k in conf.keys() if k in ("roomId", "seq", "tempId", "id")),
       ["id", "roomId", "seq", "tempId"], what + " message:confirmed keys")
    eq((conf["roomId"], conf["seq"], conf["tempId"]), (room, seq, tid), what + " message:confirmed")
    check(isinstance(conf["id"], str) and HEX24.match(conf["id"]),
          "%s: message:confirmed.id is not 24 hex digits: %r", what, conf["id"])


def case_direct(va, vb):
    ua, ub = H.uid("alice"), H.uid("bob")
    name_a = "Alice \u00e9\U0001F600"  # Non-ASCII display name travels through the JWT.
    a = H.client(B, ua, va, name=name_a)
    a2 = H.client(B, ua, vb, name=name_a)  # Alice's second socket, the other encoding.
    b = H.client(B, ub, vb, name="Bob")

    # 1. Create; both members (every online socket) hear chat:new.
    ack = a.call_ok("chat:create", {"type": "direct", "members": [ub]})
    chat = ack.get("chat")
    check_chat(chat, [ua, ub], "chat:create ack")
    room = chat["id"]
    eq(chat["lastSeq"], 0, "new chat lastSeq")
    cn = b.wait_event("chat:new", {"id": room})
    check_chat(cn, [ua, ub], "chat:new to B")
    a2.wait_event("chat:new", {"id": room})

    # 2. The same pair always gets the same chat, whoever asks.
    eq(a.call_ok("chat:create", {"type": "direct", "members": [ub]})["chat"]["id"], room,
       "chat id when A creates again")
    eq(b.call_ok("chat:create", {"type": "direct", "members": [ua]})["chat"]["id"], room,
       "chat id when B creates")
    listed = [c for c in b.call_ok("chats:list", {}).get("chats", []) if c.get("id") == room]
    eq(len(listed), 1, "B's chats:list entries for the chat")
    check_chat(listed[0], [ua, ub], "chats:list")

    # 3. A sends; ack carries tempId and seq 1.
    body = "hello \u00e9\U0001F600 \"quoted\" \\ back"
    tid, ack = a.send_text(room, body, tid=clients.temp_id("a1"))
    eq((ack.get("tempId"), ack.get("seq")), (tid, 1), "message:send ack tempId/seq")
    check(not ack.get("duplicate"), "first send acked as duplicate: %r", ack)

    # 4. B: message:new (pending) first, then message:confirmed.
    mn = b.wait_event("message:new", {"roomId": room, "seq": 1})
    check_new(mn, room, 1, tid, ua, name_a, body, "B")
    conf_b = b.wait_event("message:confirmed", {"roomId": room, "seq": 1})
    check_confirmed(conf_b, room, 1, tid, "B")
    check(index_of(b, "message:new", {"seq": 1, "roomId": room})
          < index_of(b, "message:confirmed", {"seq": 1, "roomId": room}),
          "B got message:confirmed before message:new")

    # 5. A (sending socket): confirmed with the same id, and no message:new. Room events
    # arrive in seq order and message:new precedes the confirmation, so once the
    # confirmation is here a stray message:new would already be here too.
    conf_a = a.wait_event("message:confirmed", {"roomId": room, "seq": 1})
    eq(conf_a, conf_b, "message:confirmed on A vs B")
    eq(a.named("message:new", {"roomId": room}), [], "message:new on the sending socket")

    # 6. A's other socket gets message:new and the confirmation.
    mn2 = a2.wait_event("message:new", {"roomId": room, "seq": 1})
    eq(mn2, mn, "message:new on A's second socket vs on B")
    eq(a2.wait_event("message:confirmed", {"roomId": room, "seq": 1}), conf_b, "A2 confirmation")

    # 7. The other way: B answers with seq 2, replying to seq 1.
    tid_b = clients.temp_id("b1")
    ack = b.call_ok("message:send", {"roomId": room, "tempId": tid_b, "type": "text",
                                     "body": "hi", "replyTo": 1})
    eq(ack.get("seq"), 2, "B's message seq")
    mb = a.wait_event("message:new", {"roomId": room, "seq": 2})
    check_new(mb, room, 2, tid_b, ub, "Bob", "hi", "A")
    eq(mb.get("replyTo"), 1, "message:new.replyTo")
    conf2 = a.wait_event("message:confirmed", {"roomId": room, "seq": 2})
    check_confirmed(conf2, room, 2, tid_b, "A")
    check(conf2["id"] != conf_b["id"], "two messages share the id %s", conf2["id"])
    b.wait_event("message:confirmed", {"roomId": room, "seq": 2})
    eq(b.named("message:new", {"roomId": room, "seq": 2}), [], "message:new on B's sending socket")
    a2.wait_event("message:new", {"roomId": room, "seq": 2})

    # 8. Every socket saw the room's events in seq order.
    for c in (a, a2, b):
        seqs = [d["seq"] for n, d in c.snapshot()
                if n in ("message:new", "message:confirmed") and d.get("roomId") == room]
        eq(seqs, sorted(seqs), "%s room event seq order" % c.label)


def case_image():
    ua, ub = H.uid("img-a"), H.uid("img-b")
    a, b = H.client(B, ua, ALL_VARIANTS[0]), H.client(B, ub, ALL_VARIANTS[1])
    room = a.call_ok("chat:create", {"type": "direct", "members": [ub]})["chat"]["id"]
    url = "https://example.invalid/cat.png"
    ack = a.call_ok("message:send", {"roomId": room, "tempId": "img-1", "type": "image", "body": url})
    m = b.wait_event("message:new", {"roomId": room, "seq": ack["seq"]})
    eq((m.get("type"), m.get("body")), ("image", url), "image message type/body")


for i, va in enumerate(ALL_VARIANTS):
    vb = ALL_VARIANTS[(i + 1) % len(ALL_VARIANTS)]
    H.case("direct chat A=%s B=%s" % (va, vb), case_direct, va, vb)
H.case("image message", case_image)
H.finish()
