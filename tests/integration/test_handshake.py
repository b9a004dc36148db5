#!/usr/bin/python3
"""Scenario 1, handshake: HTTP answers, the Engine.IO OPEN packet, namespaces, pings, close.

Contract: protocol.md sections 1 (transport) and 9 (HTTP). The broker runs with
--ping-interval-ms 300 --ping-timeout-ms 300 so heartbeat behaviour shows up quickly.
Raw sessions run once per encoding (JSON text frames, msgpack binary frames); real
python-socketio clients of every kind then stay connected across several ping intervals.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ALL_VARIANTS, ENCODINGS, Harness, check, eq  # noqa: E402

H = Harness("handshake")
import rawws  # noqa: E402

PING_MS = 300
B = H.broker(shards=2, extra=["--ping-interval-ms", str(PING_MS), "--ping-timeout-ms", str(PING_MS)])


def one_line_body(body, what):
    check(body.strip() != "", "%s: empty body", what)
    check("\n" not in body.strip(), "%s: reason is not one line: %r", what, body)


def case_http():
    for path in ("/socket.io/?EIO=3&transport=websocket", "/socket.io/?transport=websocket&EIO=3",
                 "/socket.io/?EIO=4&transport=polling", "/socket.io/?EIO=4"):
        for hdrs in (rawws.UPGRADE_HEADERS, {}):
            st, body, _ = rawws.http_get(B.port, path, hdrs)
            eq(st, 400, "GET %s (%s) status" % (path, "upgrade" if hdrs else "plain"))
            one_line_body(body, "GET %s" % path)
    st, body, hd = rawws.http_get(B.port, "/healthz")
    eq(st, 200, "GET /healthz status")
    eq(json.loads(body), {"status": "ok"}, "GET /healthz body")
    st, body, _ = rawws.http_get(B.port, "/nope")
    eq(st, 404, "GET /nope status")
    check(isinstance(json.loads(body), dict), "GET /nope body is not a JSON object: %r", body)
    # The broker keeps serving WebSocket upgrades after those answers.
    s = rawws.RawSio(B.port, "json")
    s.close()


def check_open(s, what):
    o = s.open
    eq(sorted(o.keys()), sorted(["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]),
       what + " OPEN keys")
    check(isinstance(o["sid"], str) and o["sid"] != "", "%s OPEN sid: %r", what, o["sid"])
    eq(o["upgrades"], [], what + " OPEN upgrades")
    eq(o["pingInterval"], PING_MS, what + " OPEN pingInterval")
    eq(o["pingTimeout"], PING_MS, what + " OPEN pingTimeout")
    eq(o["maxPayload"], 1000000, what + " OPEN maxPayload")
    for k in ("pingInterval", "pingTimeout", "maxPayload"):
        check(type(o[k]) is int, "%s OPEN %s is not an integer: %r", what, k, o[k])
    check(s.open_text.startswith('0{"sid":'), "%s OPEN text does not start with 0{\"sid\": %r",
          what, s.open_text)


def case_open_and_namespaces(v):
    enc = v.serializer
    user = H.uid("raw")
    tok = B.token(user)
    s = rawws.RawSio(B.port, enc)
    try:
        check_open(s, enc)
        # 1. Another namespace is refused, the session stays open.
        p = s.connect(tok, nsp="/admin")
        eq(p["type"], 4, "CONNECT /admin answer type (CONNECT_ERROR)")
        eq(p["nsp"], "/admin", "CONNECT_ERROR nsp")
        eq(p["data"], {"message": "Invalid namespace"}, "CONNECT_ERROR data")
        check(p["id"] is None, "CONNECT_ERROR carries an ack id: %r", p)
        # 2. Then "/" with a valid token works: CONNECT reply {sid}, then ready.
        p = s.connect(tok)
        eq((p["type"], p["nsp"]), (0, "/"), "CONNECT reply type/nsp")
        check(isinstance(p["data"], dict) and isinstance(p["data"].get("sid"), str)
              and p["data"]["sid"] != "", "CONNECT reply data needs a non-empty sid: %r", p)
        p = s.recv_packet()
        eq((p["type"], p["nsp"]), (2, "/"), "first event after CONNECT")
        eq(p["data"][0], "ready", "first event name")
        eq(p["data"][1].get("userId"), user, "ready.userId")
        check(isinstance(p["data"][1].get("chats"), list), "ready.chats is not a list: %r", p)
        # 3. An acked event works on the raw session; server ack ids are the client's.
        s.send(2, "/", ["chats:list", {}], ack_id=0)
        p = s.recv_packet()
        eq((p["type"], p["id"]), (3, 0), "ACK type/id for client ack id 0")
        check(isinstance(p["data"], list) and len(p["data"]) == 1 and p["data"][0].get("ok") is True,
              "chats:list ack must be [ {ok:true,...} ]: %r", p["data"])
        if enc == "msgpack":
            check("nsp" in p["keys"], "msgpack packet without nsp key: %r", p)
    finally:
        s.close()


def case_query_order():
    # Python's client puts transport first and adds t=; unknown keys are ignored.
    s = rawws.RawSio(B.port, "json", path="/socket.io/?transport=websocket&EIO=4&t=1795303541.41&x=y")
    check(s.open["upgrades"] == [], "OPEN with reordered query: %r", s.open)
    s.close()


def case_pings(v):
    enc = v.serializer
    user = H.uid("ping")
    s = rawws.RawSio(B.port, enc)
    try:
        p = s.connect(B.token(user))
        eq(p["type"], 0, "CONNECT reply")
        # 1. While we answer, pings keep coming, with other traffic in between.
        pings, ack_id, deadline = 0, 1, time.monotonic() + 10
        while pings < 4 and time.monotonic() < deadline:
            kind, payload = s.ws.recv_data(timeout=2.0, skip_pings=False)
            if kind == "text" and payload == "2":
                pings += 1
                s.send(2, "/", ["chats:list", {}], ack_id=ack_id)  # Traffic does not stop pings.
                ack_id += 1
            elif kind in ("close", "eof"):
                raise AssertionError("connection closed while answering pings: %s %r" % (kind, payload))
        check(pings >= 4, "got %d pings in 10 s with pingInterval %d ms", pings, PING_MS)
        # 2. Stop answering: the server must disconnect us.
        (kind, code), seen = s.ws.wait_closed(timeout=10.0, answer_pings=False)
        check(kind in ("close", "eof"), "client that stopped answering pings was not disconnected "
              "within 10 s (saw %d frames)", len(seen))
    finally:
        s.close()


def case_close_request(v):
    s = rawws.RawSio(B.port, v.serializer)
    try:
        p = s.connect(B.token(H.uid("closer")))
        eq(p["type"], 0, "CONNECT reply")
        s.ws.send_text("1")
        (kind, _), _ = s.ws.wait_closed(timeout=5.0, answer_pings=True)
        check(kind in ("close", "eof"), "engine close packet '1' did not close the connection (%s)", kind)
    finally:
        s.close()


def case_real_clients_survive_pings():
    cs = [H.client(B, H.uid("life%d" % i), v) for i, v in enumerate(ALL_VARIANTS)]
    time.sleep(5 * PING_MS / 1000.0)  # Span several ping intervals; not a timing assertion.
    for c in cs:
        check(c.connected, "%s lost its connection across pings", c.label)
        c.call_ok("chats:list", {})


H.case("http: 400 for EIO!=4 / polling, /healthz, 404 JSON", case_http)
for v in ENCODINGS:
    H.case("raw %s: OPEN shape, /admin refused, / connects, ready, ack" % v.serializer,
           case_open_and_namespaces, v)
H.case("raw: query keys in any order, unknown keys ignored", case_query_order)
for v in ENCODINGS:
    H.case("raw %s: server pings, silent client is dropped" % v.serializer, case_pings, v)
    H.case("raw %s: client '1' closes" % v.serializer, case_close_request, v)
H.case("python clients (sync/async x json/msgpack) survive pings", case_real_clients_survive_pings)
H.finish()
