"""Raw HTTP and WebSocket access to the broker, for checks the Socket.IO clients hide:
status codes, the exact OPEN packet, pings, close codes. Uses http.client and
websocket-client (python3-websocket) on 127.0.0.1 only; every read has a timeout.
"""

import http.client
import json
import socket
import struct
import time

import websocket
from websocket import ABNF

try:
    import msgpack
except ImportError:  # Only the msgpack helpers need it; callers skip without it.
    msgpack = None

WS_PATH = "/socket.io/?EIO=4&transport=websocket"


def http_get(port, path, headers=None, timeout=5.0):
    """Returns (status, body_text, headers_dict)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read().decode("utf-8", "replace")
        return r.status, body, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


class RawWs:
    """One WebSocket connection; recv() returns (kind, payload) with kind one of
    'text' (str), 'binary' (bytes), 'close' (status code or None), 'eof', 'timeout'."""

    def __init__(self, port, path=WS_PATH, timeout=5.0):
        self.ws = websocket.create_connection("ws://127.0.0.1:%d%s" % (port, path), timeout=timeout,
                                              skip_utf8_validation=False)
        self.closed = None  # ('close', code) or ('eof', None) once seen.

    def recv(self, timeout=5.0):
        if self.closed:
            return self.closed
        self.ws.settimeout(timeout)
        parts, first_op = [], None
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                frame = self.ws.recv_frame()
            except (websocket.WebSocketTimeoutException, socket.timeout):
                return ("timeout", None)
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                self.closed = ("eof", None)
                return self.closed
            if frame is None:
                self.closed = ("eof", None)
                return self.closed
            op = frame.opcode
            if op == ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else None
                try:
                    self.ws.send_close()
                except Exception:
                    pass
                self.closed = ("close", code)
                return self.closed
            if op == ABNF.OPCODE_PING:
                try:
                    self.ws.pong(frame.data)
                except Exception:
                    pass
                continue
            if op == ABNF.OPCODE_PONG:
                continue
            if op in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
                first_op = op
                parts = [frame.data]
            elif op == ABNF.OPCODE_CONT:
                parts.append(frame.data)
            if frame.fin:
                data = b"".join(parts)
                if first_op == ABNF.OPCODE_TEXT:
                    return ("text", data.decode("utf-8"))
                return ("binary", data)

    def recv_data(self, timeout=5.0, answer_pings=True, skip_pings=True):
        """Next text or binary frame, answering engine pings ('2' -> '3') on the way.
        Returns (kind, payload) like recv(); skip_pings=False returns pings as well."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return ("timeout", None)
            kind, p = self.recv(left)
            if kind == "text" and p == "2":
                if answer_pings:
                    self.send_text("3")
                if skip_pings:
                    continue
            return kind, p

    def send_text(self, s):
        self.ws.send(s, ABNF.OPCODE_TEXT)

    def send_binary(self, b):
        self.ws.send(b, ABNF.OPCODE_BINARY)

    def wait_closed(self, timeout=5.0, answer_pings=False):
        """Read until close or EOF; returns ('close', code) / ('eof', None) / ('timeout', None)
        and the list of frames seen on the way."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return ("timeout", None), seen
            kind, p = self.recv(left)
            if kind in ("close", "eof", "timeout"):
                return (kind, p), seen
            seen.append((kind, p))
            if answer_pings and kind == "text" and p == "2":
                self.send_text("3")

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass
        try:
            self.ws.shutdown()
        except Exception:
            pass


# --- minimal Socket.IO v5 framing for raw sessions -----------------------------------

def parse_open(text):
    """'0{...}' -> dict; raises AssertionError on another shape."""
    if not (isinstance(text, str) and text.startswith("0")):
        raise AssertionError("first frame is not an Engine.IO OPEN: %r" % (text,))
    return json.loads(text[1:])


def sio_json_encode(ptype, nsp="/", data=None, ack_id=None):
    s = "4%d" % ptype
    if nsp != "/":
        s += nsp + ","
    if ack_id is not None:
        s += str(ack_id)
    if data is not None:
        s += json.dumps(data, separators=(",", ":"))
    return s


def sio_json_decode(text):
    """'4<type>[nsp,][id][json]' -> dict(type, nsp, id, data). Raises on other frames."""
    if not text.startswith("4") or len(text) < 2:
        raise AssertionError("not an Engine.IO message: %r" % text)
    i = 1
    ptype = int(text[i])
    i += 1
    if ptype in (5, 6):
        raise AssertionError("unexpected binary packet %r" % text)
    nsp = "/"
    if i < len(text) and text[i] == "/":
        j = text.find(",", i)
        if j < 0:
            nsp, i = text[i:], len(text)
        else:
            nsp, i = text[i:j], j + 1
    j = i
    while j < len(text) and text[j].isdigit():
        j += 1
    ack_id = int(text[i:j]) if j > i else None
    rest = text[j:]
    data = json.loads(rest) if rest else None
    return {"type": ptype, "nsp": nsp, "id": ack_id, "data": data}


def sio_mp_encode(ptype, nsp="/", data=None, ack_id=None):
    pkt = {"type": ptype, "nsp": nsp}
    if data is not None:
        pkt["data"] = data
    if ack_id is not None:
        pkt["id"] = ack_id
    return msgpack.packb(pkt)


def sio_mp_decode(b):
    d = msgpack.unpackb(b)
    if not isinstance(d, dict):
        raise AssertionError("msgpack packet is not a map: %r" % (d,))
    return {"type": d.get("type"), "nsp": d.get("nsp"), "id": d.get("id"), "data": d.get("data"),
            "keys": sorted(d.keys())}


class RawSio:
    """A Socket.IO session over RawWs in one encoding ('json' or 'msgpack')."""

    def __init__(self, port, encoding="json", path=WS_PATH):
        self.encoding = encoding
        self.ws = RawWs(port, path)
        kind, p = self.ws.recv(5.0)
        if kind != "text":
            raise AssertionError("expected OPEN text frame, got %s %r" % (kind, p))
        self.open_text = p
        self.open = parse_open(p)

    def send(self, ptype, nsp="/", data=None, ack_id=None):
        if self.encoding == "json":
            self.ws.send_text(sio_json_encode(ptype, nsp, data, ack_id))
        else:
            self.ws.send_binary(sio_mp_encode(ptype, nsp, data, ack_id))

    def recv_packet(self, timeout=5.0):
        """Next Socket.IO packet (pings answered). Raises AssertionError on close/timeout
        or on a frame of the wrong encoding."""
        kind, p = self.ws.recv_data(timeout)
        if kind == "text" and self.encoding == "json":
            return sio_json_decode(p)
        if kind == "binary" and self.encoding == "msgpack":
            return sio_mp_decode(p)
        raise AssertionError("%s session: expected a Socket.IO packet, got %s %r"
                             % (self.encoding, kind, p if not isinstance(p, bytes) else p[:80]))

    def connect(self, token, nsp="/"):
        self.send(0, nsp, {"token": token})
        return self.recv_packet()

    def close(self):
        self.ws.close()


def healthz(b):
    """GET /healthz on broker b: (status, parsed JSON body or raw text)."""
    status, body, _ = http_get(b.port, "/healthz", timeout=5)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def wait_healthz(b, want_status, timeout, what):
    """Poll /healthz until it answers want_status; AssertionError after timeout s."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = healthz(b)
        if got[0] == want_status:
            return got
        time.sleep(0.1)
    raise AssertionError("%s: /healthz answered %r for %.0f s, want %d" % (what, got, timeout, want_status))
