#!/usr/bin/python3
"""Scenario 2, authentication: valid tokens get CONNECT + ready; bad ones get CONNECT_ERROR
{code: UNAUTHORIZED} and a closed connection; the 6th socket of a user gets
TOO_MANY_CONNECTIONS while the first five keep working.

Contract: protocol.md section 3. Runs with every client kind (sync/async x JSON/msgpack).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import ALL_VARIANTS, ENCODINGS, Harness, check, eq  # noqa: E402
import broker as broker_mod  # noqa: E402

H = Harness("auth")
B = H.broker(shards=2)


def check_refusal(data, code, what):
    check(isinstance(data, dict), "%s: connect_error data is not a dict: %r", what, data)
    check(isinstance(data.get("message"), str), "%s: connect_error without message: %r", what, data)
    eq(data.get("data"), {"code": code}, what + ": connect_error data.data")


def wait_engine_closed(c, what, timeout=5.0):
    """The server closes the connection after CONNECT_ERROR."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.sio.eio.state != "connected":
            return
        time.sleep(0.05)
    raise AssertionError("%s: server did not close the connection after CONNECT_ERROR" % what)


def case_valid(v):
    user = H.uid("ok")
    c = H.client(B, user, v, name="Ok User")  # Waits for ready and checks ready.userId.
    sid = c.sio.get_sid()
    check(isinstance(sid, str) and sid != "", "CONNECT reply sid: %r", sid)
    check(isinstance(c.ready_data.get("chats"), list), "ready.chats: %r", c.ready_data)
    eq(c.count("ready"), 1, "ready events")
    # CONNECT reply (connect event) precedes ready.
    names = [n for n, _ in c.snapshot()]
    check(names.index("connect") < names.index("ready"), "ready before connect: %r", names)
    claims = broker_mod.decode_claims(c.token)
    eq(claims.get("sub"), user, "`ringcast token` sub claim")
    check(isinstance(claims.get("exp"), int), "`ringcast token` exp claim: %r", claims)
    check(broker_mod.verify_hs256(c.token, B.secret), "`ringcast token` is not HS256 with the secret")
    # A token from the python minter is as good as the broker's own.
    c2 = H.client(B, user, v, token=B.py_token(user, name="Py Minted"))
    c2.call_ok("chats:list", {})


def bad_tokens(user):
    now = int(time.time())
    return [
        ("bad signature", broker_mod.mint(user, "wrong-" + B.secret)),
        ("expired", B.py_token(user, exp=now - 120)),
        ("alg none", B.py_token(user, alg="none")),
        ("alg none, HS256 signature kept", B.py_token(user, header_extra={"alg": "none"})),
        ("HS512", B.py_token(user, alg="HS512")),
        ("no exp claim", B.py_token(user, omit_exp=True)),
        ("garbage", "not-a-jwt"),
        ("missing token", None),
    ]


def case_bad(v):
    user = H.uid("bad")
    for i, (what, tok) in enumerate(bad_tokens(user)):
        c = H.client(B, user, v, token="", connect=False)
        c.token = tok
        if tok is None:
            # auth={} (python sends 40{}); Sio always wraps the token, so connect directly.
            data = _connect_without_token(c)
        elif i == 0:
            data = c.connect_expect_raise(wait_timeout=1.0)  # The blocking connect() path.
        else:
            data = c.connect_expect_refusal()
        check_refusal(data, "UNAUTHORIZED", "%s token (%s)" % (what, v))
        check(c.count("ready") == 0, "%s token: got ready anyway", what)
        wait_engine_closed(c, what)
    # The broker still accepts good tokens afterwards.
    H.client(B, user, v).call_ok("chats:list", {})


def _connect_without_token(c):
    kw = dict(transports=["websocket"], auth={}, wait=False)
    if c.mode == "sync":
        c.sio.connect(c.url, **kw)
    else:
        c._run(c.sio.connect(c.url, **kw), 10)
    got = c.wait_for(lambda evs: [x for x in evs if x[0] in ("connect_error", "connect")],
                     5.0, "connect_error")
    if got[0][0] == "connect":
        raise AssertionError("connection without a token was accepted")
    return got[0][1]


def case_too_many():
    user = H.uid("many")
    five = [H.client(B, user, ALL_VARIANTS[i % 4]) for i in range(5)]
    for v in ENCODINGS:
        sixth = H.client(B, user, v, connect=False)
        check_refusal(sixth.connect_expect_refusal(), "TOO_MANY_CONNECTIONS", "6th socket (%s)" % v)
        wait_engine_closed(sixth, "6th socket")
    for c in five:
        check(c.connected, "%s was dropped when the 6th socket was refused", c.label)
        c.call_ok("chats:list", {})
    # Another user is not affected by this user's limit.
    H.client(B, H.uid("other"), ALL_VARIANTS[1]).call_ok("chats:list", {})
    # After one socket leaves, a new one fits again (the server learns of the close
    # asynchronously, so retry for a bounded time).
    five[0].disconnect()
    deadline, last = time.monotonic() + 5, None
    while time.monotonic() < deadline:
        c = H.client(B, user, ALL_VARIANTS[0], connect=False)
        try:
            c.connect()
            c.call_ok("chats:list", {})
            return
        except Exception as e:  # Refused while the old socket is still counted.
            last = e
            c.disconnect()
            time.sleep(0.2)
    raise AssertionError("no socket accepted after one of five disconnected: %r" % (last,))


for v in ALL_VARIANTS:
    H.case("valid token -> CONNECT reply, ready (%s)" % v, case_valid, v)
for v in ALL_VARIANTS:
    H.case("bad tokens -> UNAUTHORIZED and close (%s)" % v, case_bad, v)
H.case("6th socket -> TOO_MANY_CONNECTIONS, first five keep working", case_too_many)
H.finish()
