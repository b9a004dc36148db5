"""tests/support/ferret.py - a FerretDB v1.24.2 server (SQLite backend) for tests.

FerretDB speaks the MongoDB wire protocol, so the broker's `--store mongodb://...`
backend and pymongo both talk to it. The binary comes from
tests/support/ferretdb/build.sh (.cache/ferretdb/ferretdb, or $RINGCAST_FERRETDB).

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
    from ferret import FerretDB                    # as the integration tests import harness
    with FerretDB() as f:                          # free port, fresh temp dir
        uri = f.uri("ringcast")                    # mongodb://127.0.0.1:PORT/ringcast
        f.client().ringcast.messages.find_one()    # pymongo (Debian python3-pymongo)
        f.kill(); f.start()                        # an outage; same port, same files

Known FerretDB v1 gaps: TTL indexes are refused (code 238); `endSessions` is an
unknown command (drivers log a harmless warning); no transactions.

Run as a script for a smoke test: /usr/bin/python3 tests/support/ferret.py
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_SH = os.path.join(REPO, "tests", "support", "ferretdb", "build.sh")
READY_TIMEOUT_S = 20.0

_PR_SET_PDEATHSIG = 1


def binary_path():
    """The FerretDB binary tests use: $RINGCAST_FERRETDB or the cached build."""
    return os.environ.get("RINGCAST_FERRETDB") or os.path.join(REPO, ".cache", "ferretdb", "ferretdb")


def ensure_built():
    """Builds the binary if needed (minutes the first time, then a no-op) and
    returns its path. Raises RuntimeError when the build fails."""
    if os.environ.get("RINGCAST_FERRETDB"):
        return binary_path()
    proc = subprocess.run([BUILD_SH], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RuntimeError("ferretdb build failed:\n" + proc.stdout)
    return binary_path()


def available():
    """True when the binary exists, so a test can skip (exit 77) otherwise."""
    return os.access(binary_path(), os.X_OK)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # Runs in the child between fork and exec: FerretDB gets SIGKILL when the
    # test process (strictly: the thread that started it) dies, so a crashed
    # test never leaves a server behind.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


class FerretDB:
    """One FerretDB process on 127.0.0.1. port and data_dir default to a free
    port and a fresh temporary directory (removed by close() unless keep_dir);
    both stay the same across stop()/start(), so a restart finds its data."""

    def __init__(self, port=None, data_dir=None, binary=None, ready_timeout=READY_TIMEOUT_S,
                 keep_dir=False):
        self.binary = binary or binary_path()
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="rc_ferret_")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self.data_dir, "ferretdb.log")
        self.ready_timeout = ready_timeout
        self.keep_dir = keep_dir
        self.proc = None

    # -- addresses ---------------------------------------------------------
    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def uri(self, db="", **options):
        """mongodb://127.0.0.1:PORT/DB[?k=v&...]"""
        q = "&".join("%s=%s" % kv for kv in options.items())
        return "mongodb://%s/%s%s" % (self.address, db, "?" + q if q else "")

    def client(self, **kwargs):
        """A pymongo MongoClient (caller closes it)."""
        import pymongo  # imported late: only tests that query need it
        kwargs.setdefault("serverSelectionTimeoutMS", 2000)
        return pymongo.MongoClient(self.uri(), **kwargs)

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        if self.proc and self.proc.poll() is None:
            return self
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError("no FerretDB binary at %s (run %s)" % (self.binary, BUILD_SH))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-listen", self.address, "-dir", self.data_dir],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent)
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ferretdb exited with %s; log:\n%s" % (self.proc.returncode, self.log()))
            if self.ping():
                return
            time.sleep(0.1)
        self.kill()
        raise TimeoutError("ferretdb not answering ping after %.0f s; log:\n%s" % (self.ready_timeout, self.log()))

    def ping(self):
        """True when the server answers ping (a TCP connect first, so a server
        that is not listening costs no driver timeout)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        try:
            c = self.client(serverSelectionTimeoutMS=500, connectTimeoutMS=500)
        except Exception:
            return False
        try:
            return bool(c.admin.command("ping").get("ok"))
        except Exception:
            return False
        finally:
            c.close()

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self):
        """SIGKILL: an abrupt outage (what was acknowledged stays on disk)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def close(self):
        self.stop()
        if self._own_dir and not self.keep_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False


def _smoke():
    if not available():
        print("ferret.py: SKIP: no binary at %s (run %s)" % (binary_path(), BUILD_SH))
        return 77
    with FerretDB() as f:
        c = f.client()
        coll = c.smoke.items
        coll.insert_one({"_id": "a", "n": 1})
        assert coll.find_one({"_id": "a"})["n"] == 1
        c.close()
        f.kill()
        assert not f.ping()
        f.start()
        c = f.client()
        assert c.smoke.items.find_one({"_id": "a"})["n"] == 1   # same files after a restart
        c.close()
        print("ferret.py: ok (%s, %s)" % (f.uri(), f.data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(_smoke())
