#!/usr/bin/python3
"""A python-socketio peer driven over stdin/stdout with JSON lines, so tests written in
another language (tests/integration/node/) can put a real python client in a chat.

Each request line is a JSON object with "op"; each gets exactly one JSON reply line:
  {"op":"connect","url":U,"token":T,"serializer":"json"|"msgpack","mode":"sync"|"async"}
        -> {"ok":true,"ready":{...}}
  {"op":"call","event":E,"payload":P,"timeout":5}           -> {"ok":true,"ack":A}
  {"op":"emit","event":E,"payload":P}                        -> {"ok":true}
  {"op":"wait","event":E,"match":{...},"timeout":5,"n":1}    -> {"ok":true,"data":D}
  {"op":"events"}                                            -> {"ok":true,"events":[[name,data],...]}
  {"op":"quit"}                                              -> {"ok":true}, then exit 0
Failures answer {"ok":false,"error":"..."} and the peer keeps serving. EOF on stdin ends it.
Not a test itself (the runner runs only test_*.py).
"""

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import clients  # noqa: E402

OUT = sys.stdout


def reply(obj):
    OUT.write(json.dumps(obj, default=repr) + "\n")
    OUT.flush()


def main():
    c = None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "connect":
                c = clients.Sio(req["url"], req["token"], serializer=req.get("serializer", "json"),
                                mode=req.get("mode", "sync"), label="pypeer")
                reply({"ok": True, "ready": c.connect(timeout=req.get("timeout", 5))})
            elif op == "call":
                reply({"ok": True, "ack": c.call(req["event"], req.get("payload"), req.get("timeout", 5))})
            elif op == "emit":
                c.emit(req["event"], req.get("payload"))
                reply({"ok": True})
            elif op == "wait":
                reply({"ok": True, "data": c.wait_event(req["event"], req.get("match"),
                                                        req.get("timeout", 5), req.get("n", 1))})
            elif op == "events":
                reply({"ok": True, "events": [list(e) for e in c.snapshot()] if c else []})
            elif op == "quit":
                if c is not None and c.connected:
                    c.disconnect()
                reply({"ok": True})
                break
            else:
                reply({"ok": False, "error": "unknown op %r" % op})
        except Exception as e:
            reply({"ok": False, "error": "%s: %s" % (type(e).__name__, e),
                   "trace": traceback.format_exc()})
    if c is not None and c.connected:
        c.disconnect()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
