"""Thin wrappers around the real python-socketio 5.7.2 clients for integration tests.

One class, Sio, drives either socketio.Client (mode 'sync') or socketio.AsyncClient (mode
'async'), each with the JSON ('json') or MessagePack ('msgpack') serializer, always with
transports=['websocket'], wait_timeout=5, reconnection off and auth={'token': ...}.
Every received event is recorded in arrival order; test code (main thread) waits on a
condition variable. Async clients all run on one shared event loop thread, so fifty of
them cost one thread.

Arrival order: engineio 4.3.4 hands every received message to a *new thread* (sync) or a
new task (async) (engineio/client.py:497, run_async=True), so handler order need not match
wire order in the sync client. Ordering is what these tests check, so each client's engine
is made to dispatch 'message' inline in its read loop (see _dispatch_inline). That changes
only where the real client's own handler runs, not what it sends or decodes.
"""

import asyncio
import concurrent.futures
import itertools
import threading
import time
import traceback

import socketio
from socketio import exceptions as sio_exceptions

DEFAULT_TIMEOUT = 5.0
MODES = ("sync", "async")
SERIALIZERS = ("json", "msgpack")
_tmp_counter = itertools.count(1)


class WaitTimeout(AssertionError):
    """A wait_for / call ran out of time; the message lists what was received."""


def temp_id(prefix="t"):
    return "%s-%d-%d" % (prefix, int(time.time() * 1000) % 100000000, next(_tmp_counter))


def matches(data, match):
    """match: None (anything), a callable(data) -> bool, or a dict whose items must all
    appear in data (data must be a dict)."""
    if match is None:
        return True
    if callable(match):
        try:
            return bool(match(data))
        except (KeyError, TypeError, IndexError, AttributeError):
            return False
    if not isinstance(data, dict):
        return False
    return all(k in data and data[k] == v for k, v in match.items())


class LoopThread:
    """One asyncio loop in a daemon thread, shared by every async client of the process."""

    _instance = None
    _lock = threading.Lock()

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="sio-async-loop", daemon=True)
        self.thread.start()

    def _main(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro, timeout):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise WaitTimeout("coroutine did not finish within %.1f s" % timeout)

    def gather(self, coros, timeout):
        async def all_of():
            return await asyncio.gather(*coros, return_exceptions=True)
        return self.run(all_of(), timeout)


def _dispatch_inline(eio_client):
    """Make the engine deliver 'message' in its read loop instead of a new thread/task."""
    orig = eio_client._trigger_event

    def trigger(event, *args, **kwargs):
        if event == "message":
            kwargs["run_async"] = False
        return orig(event, *args, **kwargs)

    eio_client._trigger_event = trigger


class Sio:
    """A recorded Socket.IO client. Not thread-safe for emits: one test thread drives it."""

    def __init__(self, url, token, serializer="json", mode="sync", label=None):
        if serializer not in SERIALIZERS or mode not in MODES:
            raise ValueError("bad client kind %s/%s" % (mode, serializer))
        self.url = url
        self.token = token
        self.serializer = serializer
        self.mode = mode
        self.label = label or "%s/%s" % (mode, serializer)
        self.events = []  # [(name, data)] in arrival order; data is the single arg or a list.
        self.cond = threading.Condition()
        self.ready_data = None
        self.user_id = None
        ser = "msgpack" if serializer == "msgpack" else "default"
        if mode == "sync":
            self.sio = socketio.Client(reconnection=False, serializer=ser)
        else:
            self.loopt = LoopThread.get()
            # AsyncClient must be created on the loop (aiohttp objects bind to it later).
            self.sio = self.loopt.run(self._make_async(ser), DEFAULT_TIMEOUT)
        _dispatch_inline(self.sio.eio)
        self.sio.on("*", self._on_any)
        self.sio.on("connect", self._on_connect)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)

    @staticmethod
    async def _make_async(ser):
        return socketio.AsyncClient(reconnection=False, serializer=ser)

    def __repr__(self):
        return "<Sio %s %s>" % (self.label, self.user_id)

    # --- recording -------------------------------------------------------------------

    def _record(self, name, args):
        data = args[0] if len(args) == 1 else list(args)
        with self.cond:
            self.events.append((name, data))
            self.cond.notify_all()

    def _on_any(self, event, *args):
        self._record(event, args)

    def _on_connect(self):
        self._record("connect", ())

    def _on_connect_error(self, *args):
        self._record("connect_error", args)

    def _on_disconnect(self):
        self._record("disconnect", ())

    def snapshot(self):
        with self.cond:
            return list(self.events)

    def named(self, name, match=None):
        """Data of every received `name` event matching match, in arrival order."""
        return [d for n, d in self.snapshot() if n == name and matches(d, match)]

    def count(self, name, match=None):
        return len(self.named(name, match))

    def describe(self, last=25):
        evs = self.snapshot()
        lines = ["  %s received %d events%s" % (self.label + " " + str(self.user_id), len(evs),
                                                 " (last %d)" % last if len(evs) > last else "")]
        for n, d in evs[-last:]:
            s = repr(d)
            lines.append("    %s %s" % (n, s if len(s) < 300 else s[:300] + "..."))
        return "\n".join(lines)

    def wait_for(self, pred, timeout=DEFAULT_TIMEOUT, what="condition"):
        """Wait until pred(events_list) is truthy; return its value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred(self.events)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout("%s: timed out after %.1f s waiting for %s\n%s"
                                      % (self.label, timeout, what, self.describe()))
                self.cond.wait(min(left, 0.5))

    def wait_event(self, name, match=None, timeout=DEFAULT_TIMEOUT, n=1):
        """Wait for the n-th received `name` event matching match; return its data."""
        def pred(evs):
            hits = [d for e, d in evs if e == name and matches(d, match)]
            return (hits[n - 1],) if len(hits) >= n else None
        return self.wait_for(pred, timeout, "%d x %r matching %r" % (n, name, match))[0]

    def wait_count(self, name, n, match=None, timeout=DEFAULT_TIMEOUT):
        """Wait until at least n matching `name` events arrived; return all of them."""
        def pred(evs):
            hits = [d for e, d in evs if e == name and matches(d, match)]
            return (hits,) if len(hits) >= n else None
        return self.wait_for(pred, timeout, "%d x %r matching %r" % (n, name, match))[0]

    # --- connection ------------------------------------------------------------------

    def _run(self, coro, timeout):
        return self.loopt.run(coro, timeout)

    def connect(self, wait_ready=True, timeout=DEFAULT_TIMEOUT):
        """Connect like an application would (wait=True, wait_timeout=5). Raises
        socketio.exceptions.ConnectionError when the server refuses. Returns ready data."""
        kw = dict(transports=["websocket"], auth={"token": self.token}, wait_timeout=5)
        if self.mode == "sync":
            self.sio.connect(self.url, **kw)
        else:
            self._run(self.sio.connect(self.url, **kw), timeout + 6)
        if wait_ready:
            self.ready_data = self.wait_event("ready", timeout=timeout)
            self.user_id = self.ready_data.get("userId") if isinstance(self.ready_data, dict) else None
            return self.ready_data
        return None

    def connect_expect_refusal(self, timeout=DEFAULT_TIMEOUT):
        """Connect without waiting for the namespace; return the connect_error data (dict)
        or raise WaitTimeout / AssertionError if the connection was accepted instead.

        Uses wait=False because with wait=True python-socketio keeps waiting wait_timeout
        once more after a CONNECT_ERROR before it raises (socketio/client.py:341-349)."""
        kw = dict(transports=["websocket"], auth={"token": self.token}, wait=False)
        try:
            if self.mode == "sync":
                self.sio.connect(self.url, **kw)
            else:
                self._run(self.sio.connect(self.url, **kw), timeout + 6)
        except sio_exceptions.ConnectionError:
            pass  # An engine-level refusal also reaches connect_error below.
        got = self.wait_for(lambda evs: [x for x in evs if x[0] in ("connect_error", "connect")],
                            timeout, "connect or connect_error")
        name, data = got[0]
        if name == "connect":
            raise AssertionError("%s: connection with token was accepted, expected a refusal"
                                 % self.label)
        return data

    def connect_expect_raise(self, wait_timeout=1.0, timeout=DEFAULT_TIMEOUT):
        """connect(wait=True) must raise ConnectionError; return the connect_error data."""
        kw = dict(transports=["websocket"], auth={"token": self.token}, wait_timeout=wait_timeout)
        raised = None
        try:
            if self.mode == "sync":
                self.sio.connect(self.url, **kw)
            else:
                self._run(self.sio.connect(self.url, **kw), timeout + 2 * wait_timeout)
        except sio_exceptions.ConnectionError as e:
            raised = e
        if raised is None:
            raise AssertionError("%s: connect() did not raise ConnectionError" % self.label)
        errs = self.named("connect_error")
        if not errs:
            raise AssertionError("%s: connect() raised %r but connect_error never fired"
                                 % (self.label, raised))
        return errs[0]

    @property
    def connected(self):
        return bool(self.sio.connected)

    def disconnect(self):
        try:
            if self.mode == "sync":
                self.sio.disconnect()
            else:
                self._run(self.sio.disconnect(), DEFAULT_TIMEOUT)
        except Exception:  # Teardown must not mask the real failure.
            traceback.print_exc()

    def wait_disconnected(self, timeout=DEFAULT_TIMEOUT):
        self.wait_event("disconnect", timeout=timeout)

    # --- sending ---------------------------------------------------------------------

    def call(self, event, payload=None, timeout=DEFAULT_TIMEOUT):
        """Emit with an ack id and return the ack payload (the single ack argument)."""
        try:
            if self.mode == "sync":
                return self.sio.call(event, payload, timeout=timeout)
            return self._run(self.sio.call(event, payload, timeout=timeout), timeout + 2)
        except sio_exceptions.TimeoutError:
            raise WaitTimeout("%s: no ack for %r %r within %.1f s\n%s"
                              % (self.label, event, _short(payload), timeout, self.describe()))

    def emit(self, event, payload=None):
        """Emit without an ack id."""
        if self.mode == "sync":
            self.sio.emit(event, payload)
        else:
            self._run(self.sio.emit(event, payload), DEFAULT_TIMEOUT)

    def call_ok(self, event, payload=None, timeout=DEFAULT_TIMEOUT):
        """call() and require {ok: true}."""
        ack = self.call(event, payload, timeout)
        if not (isinstance(ack, dict) and ack.get("ok") is True):
            raise AssertionError("%s: %s %s -> expected ok:true, got %r"
                                 % (self.label, event, _short(payload), ack))
        return ack

    def call_err(self, event, payload, code, timeout=DEFAULT_TIMEOUT):
        """call() and require {ok:false, error:{code}}; return the error dict."""
        ack = self.call(event, payload, timeout)
        err = ack.get("error") if isinstance(ack, dict) else None
        if not (isinstance(ack, dict) and ack.get("ok") is False and isinstance(err, dict)
                and err.get("code") == code):
            raise AssertionError("%s: %s %s -> expected ok:false error.code %s, got %r"
                                 % (self.label, event, _short(payload), code, ack))
        if not isinstance(err.get("message"), str):
            raise AssertionError("%s: error without a string message: %r" % (self.label, ack))
        return err

    def send_text(self, room_id, body, tid=None, timeout=DEFAULT_TIMEOUT):
        """message:send a text message; return (tempId, ack) with ack ok:true checked."""
        tid = tid or temp_id(self.user_id or "m")
        ack = self.call_ok("message:send", {"roomId": room_id, "tempId": tid, "type": "text",
                                            "body": body}, timeout)
        return tid, ack


def _short(x):
    s = repr(x)
    return s if len(s) < 200 else s[:200] + "..."


def connect_many(clients, timeout=20.0):
    """Connect async clients concurrently on the shared loop (sync ones one by one).
    Waits for every client's ready. Raises the first error."""
    async_ones = [c for c in clients if c.mode == "async"]
    for c in clients:
        if c.mode == "sync":
            c.connect()
    if async_ones:
        kw = dict(transports=["websocket"], wait_timeout=5)
        results = async_ones[0].loopt.gather(
            [c.sio.connect(c.url, auth={"token": c.token}, **kw) for c in async_ones], timeout)
        for c, r in zip(async_ones, results):
            if isinstance(r, BaseException):
                raise AssertionError("%s: connect failed: %r" % (c.label, r))
    for c in async_ones:
        c.ready_data = c.wait_event("ready", timeout=timeout)
        c.user_id = c.ready_data.get("userId")


def disconnect_all(clients):
    for c in clients:
        if c is not None and c.sio.connected:
            c.disconnect()
