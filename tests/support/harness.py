"""Driver shared by tests/integration/test_*.py: prerequisites, cases, watchdog, exit codes.

A script builds one Harness, starts brokers through it, runs each scenario as a case per
client variant (JSON and msgpack; sync and async where cheap), then calls finish(), which
exits 0 (all passed), 1 (any failed) or 77 (skipped). A failed case prints its traceback,
what each of its clients received, and the broker logs. A watchdog ends a hung script.
"""

import faulthandler
import os
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import broker as broker_mod  # noqa: E402

EXIT_PASS, EXIT_FAIL, EXIT_SKIP = 0, 1, 77
LOG_TAIL_LINES = 300


def skip(reason):
    print("SKIP: " + reason, flush=True)
    sys.exit(EXIT_SKIP)


def require_prerequisites(modules=("socketio", "engineio", "websocket", "aiohttp", "msgpack")):
    """Skip (77) when the broker binary or a client library is missing.

    Set RINGCAST_REQUIRE_BIN=1 (CI) to turn a missing binary into a failure."""
    missing = [m for m in modules if not _importable(m)]
    if missing:
        skip("python modules missing: %s (run with /usr/bin/python3; Debian python3-socketio, "
             "python3-engineio, python3-websocket, python3-aiohttp, python3-msgpack)" % ", ".join(missing))
    b = broker_mod.binary_path()
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        if os.environ.get("RINGCAST_REQUIRE_BIN") == "1":
            print("FAIL: broker binary %s not found (RINGCAST_REQUIRE_BIN=1)" % b, flush=True)
            sys.exit(EXIT_FAIL)
        skip("broker binary %s not found (build it or set RINGCAST_BIN)" % b)


def _importable(name):
    try:
        __import__(name)
        return True
    except Exception:
        return False


class Variant:
    """A client kind: mode 'sync'|'async' x serializer 'json'|'msgpack'."""

    def __init__(self, mode, serializer):
        self.mode = mode
        self.serializer = serializer
        self.tag = mode[0] + serializer[0]  # 'sj', 'sm', 'aj', 'am'

    def __repr__(self):
        return "%s/%s" % (self.mode, self.serializer)


SYNC_JSON, SYNC_MSGPACK = Variant("sync", "json"), Variant("sync", "msgpack")
ASYNC_JSON, ASYNC_MSGPACK = Variant("async", "json"), Variant("async", "msgpack")
ENCODINGS = [SYNC_JSON, SYNC_MSGPACK]              # Every scenario: once per encoding.
ALL_VARIANTS = [SYNC_JSON, SYNC_MSGPACK, ASYNC_JSON, ASYNC_MSGPACK]


def check(cond, msg, *args):
    if not cond:
        raise AssertionError(msg % args if args else msg)


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


class Harness:
    def __init__(self, name, budget_s=150.0):
        self.name = name
        self.brokers = []
        self.results = []  # [(title, ok, seconds)]
        self.case_clients = []
        self.case_no = 0
        self.t0 = time.monotonic()
        require_prerequisites()
        global clients
        import clients as clients_mod  # After the prerequisite check: imports socketio.
        clients = clients_mod
        self.clients_mod = clients_mod
        self._watchdog = threading.Timer(budget_s, self._on_timeout)
        self._watchdog.daemon = True
        self._watchdog.start()

    # --- brokers and clients ---------------------------------------------------------

    def broker(self, shards=2, extra=None):
        b = broker_mod.Broker(shards=shards, extra=extra)
        self.brokers.append(b)
        b.start()
        return b

    def client(self, b, user, variant=SYNC_JSON, token=None, connect=True, name=None, role=None):
        """A recorded client for user on broker b; connected (ready received) by default."""
        tok = token if token is not None else b.token(user, role=role, name=name)
        c = self.clients_mod.Sio(b.url, tok, serializer=variant.serializer, mode=variant.mode,
                                 label="%s[%s]" % (user, variant))
        c.user_id = user
        self.case_clients.append(c)
        if connect:
            ready = c.connect()
            eq(ready.get("userId"), user, "ready.userId")
        return c

    def uid(self, name):
        """A user id unique to the current case (cases share a broker)."""
        return "c%d-%s" % (self.case_no, name)

    # --- running ---------------------------------------------------------------------

    def case(self, title, fn, *args):
        self.case_no += 1
        self.case_clients = []
        t = time.monotonic()
        ok = True
        try:
            fn(*args)
        except Exception:
            # Logs first and the traceback last, so the tail the runner shows has the cause.
            ok = False
            tb = traceback.format_exc()
            print("---- FAIL %s :: %s" % (self.name, title), flush=True)
            self.dump_logs()
            for c in self.case_clients:
                print(c.describe(), flush=True)
            print(tb, flush=True)
        finally:
            for c in self.case_clients:
                try:
                    if c.sio.connected:
                        c.disconnect()
                except Exception:
                    pass
            self.case_clients = []
        dt = time.monotonic() - t
        self.results.append((title, ok, dt))
        print("%s %s (%.1fs)" % ("ok  " if ok else "FAIL", title, dt), flush=True)
        return ok

    def dump_logs(self):
        for i, b in enumerate(self.brokers):
            lines = b.log().splitlines()
            print("---- broker #%d log (%s, %d lines%s) ----" % (
                i, "running" if b.alive() else "stopped", len(lines),
                ", last %d" % LOG_TAIL_LINES if len(lines) > LOG_TAIL_LINES else ""))
            print("\n".join(lines[-LOG_TAIL_LINES:]))
            print("---- end broker #%d log ----" % i, flush=True)

    def stop_broker(self, b):
        """Graceful stop expecting exit status 0 (raises otherwise)."""
        b.stop(expect_code=0)

    def finish(self):
        """Stop every broker (a non-zero exit status is a failure), print, exit."""
        self._watchdog.cancel()
        stop_failed = False
        for b in self.brokers:
            if b.proc is not None and not b.alive() and b.proc.returncode != 0:
                print("FAIL: broker died on its own with status %s" % b.proc.returncode, flush=True)
                stop_failed = True
                self.dump_logs()
            if b.alive():
                try:
                    b.stop(expect_code=0)
                except broker_mod.BrokerError as e:
                    print("FAIL: broker shutdown: %s" % e, flush=True)
                    stop_failed = True
            b.close()
        failed = [r for r in self.results if not r[1]]
        print("%s: %d cases, %d failed (%.1fs)" % (self.name, len(self.results), len(failed),
                                                  time.monotonic() - self.t0), flush=True)
        for title, _, _ in failed:
            print("  failed: " + title)
        sys.stdout.flush()
        os._exit(EXIT_FAIL if failed or stop_failed or not self.results else EXIT_PASS)

    def _on_timeout(self):
        print("FAIL: %s exceeded its time budget; stacks follow" % self.name, flush=True)
        faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
        for c in list(self.case_clients):
            try:
                print(c.describe(), flush=True)
            except Exception:
                pass
        self.dump_logs()
        for b in self.brokers:
            try:
                b._kill()
            except Exception:
                pass
        sys.stdout.flush()
        os._exit(EXIT_FAIL)


clients = None  # Set by Harness() once the prerequisites are known to be present.
