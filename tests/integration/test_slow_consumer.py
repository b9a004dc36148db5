#!/usr/bin/python3
"""Slow consumers (protocol.md §8 Limits): a socket whose outbound queue passes
--outbound-max-bytes is disconnected, the rest of the room carries on and receives
everything, and the slow user recovers what it missed with room:join + sinceSeq.

The slow socket is a raw WebSocket with a 4 KiB receive buffer that stops reading after
`ready`; the kernel still buffers some megabytes on loopback, so the sender pushes well
past that (about 12 MB of 60 KB messages) before the broker's own 1 MiB limit can bite.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ENCODINGS, Harness, check, eq  # noqa: E402

H = Harness("slow_consumer")
import rawws  # noqa: E402
import websocket  # noqa: E402  (python3-websocket)

B = H.broker(shards=2, extra=["--outbound-max-bytes", "1048576", "--max-payload", "65536", "--rate-limit", "1000000",
                              "--rate-burst", "1000000"])
BODY = "x" * 60000
COUNT = 200


def slow_socket(b, user):
    """A JSON Socket.IO session on a socket with a tiny receive buffer; returns it after ready."""
    ws = websocket.create_connection("ws://127.0.0.1:%d%s" % (b.port, rawws.WS_PATH), timeout=5,
                                     sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    op, _ = ws.recv_data()                      # OPEN
    eq(op, websocket.ABNF.OPCODE_TEXT, "OPEN frame opcode")
    ws.send(rawws.sio_json_encode(0, "/", {"token": b.token(user)}))
    got_ready = False
    deadline = time.monotonic() + 5
    while not got_ready and time.monotonic() < deadline:
        op, data = ws.recv_data()
        text = data.decode() if isinstance(data, bytes) else data
        got_ready = text.startswith('42["ready"')
    check(got_ready, "slow socket never got ready")
    return ws


def drain_until_closed(ws, timeout):
    """Read what the kernel buffered; True once the broker has closed the connection."""
    ws.settimeout(1.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            op, _ = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                return True
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return True
    return False


def case_slow(v):
    us, uf, ul = H.uid("sender"), H.uid("fast"), H.uid("slow")
    sender = H.client(B, us, v)
    fast = H.client(B, uf, v)
    slow = slow_socket(B, ul)
    room = sender.call_ok("chat:create", {"type": "group", "members": [uf, ul]})["chat"]["id"]
    fast.wait_event("chat:new", {"id": room})
    time.sleep(0.2)   # the slow socket got chat:new too; from here on it reads nothing
    for i in range(COUNT):
        sender.call_ok("message:send", {"roomId": room, "tempId": "s%d" % i, "type": "text",
                                        "body": BODY}, timeout=10)
        if i % 10 == 9:
            # Pace the sender to the fast member (at most ~600 KB ahead of it), so
            # only the socket that never reads can pass the limit, however loaded
            # the machine is.
            fast.wait_count("message:new", i + 1, {"roomId": room}, timeout=30)
    fast.wait_count("message:new", COUNT, timeout=30)
    seqs = [e[1]["seq"] for e in fast.events if e[0] == "message:new" and e[1]["roomId"] == room]
    eq(seqs, list(range(1, COUNT + 1)), "the fast member's seqs")
    check(drain_until_closed(slow, 20), "the broker never disconnected the slow consumer")
    check("disconnecting a slow consumer" in B.log(), "the broker did not log why it disconnected")
    # Other sockets were not affected, and the slow user recovers by sinceSeq.
    sender.call_ok("chats:list", {})
    back = H.client(B, ul, v)
    ack = back.call_ok("room:join", {"roomId": room, "sinceSeq": 0}, timeout=10)
    # 200 x 60 KB is over the 1 MiB cap of one answer: the newest that fit, and more:true.
    missed = [m["seq"] for m in ack["missed"]]
    check(missed and missed == list(range(missed[0], COUNT + 1)), "missed is the newest run: %r", missed[:3])
    eq(ack["more"], True, "more (older messages remain)")
    page = back.call_ok("history:get", {"roomId": room, "beforeSeq": missed[0], "limit": 5})
    eq([m["seq"] for m in page["messages"]], list(range(missed[0] - 5, missed[0])), "the page before")


for v in ENCODINGS:
    H.case("slow consumer disconnected, others unaffected, recovery by sinceSeq (%s)" % v, case_slow, v)
H.finish()
