"""Start, stop and restart the real ringcast broker for integration tests; mint JWTs.

Runs in the test process (any thread). The broker is a child process whose stdout and
stderr are merged and drained by a daemon thread into an in-memory log, so a failing test
can print everything the broker said. Nothing here talks to the broker's sockets.

Binary: env RINGCAST_BIN, else <repo>/zig-out/bin/ringcast. Contract: /work/shared/protocol.md
section 10 (command line) and section 3 (JWT claims).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LISTEN_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def binary_path():
    """The broker binary the tests use; it may not exist (callers skip then)."""
    return os.environ.get("RINGCAST_BIN") or os.path.join(REPO, "zig-out", "bin", "ringcast")


class BrokerError(Exception):
    """Startup, shutdown or token minting went wrong; the message carries the log."""


class Broker:
    """One broker process on 127.0.0.1 with its own temp dir and SQLite store.

    Usage: b = Broker(shards=2, extra=['--rate-limit', '1000']); b.start(); ... b.stop().
    restart() stops it (expecting exit 0) and starts it again on the same store; the port
    changes because every start asks for --port 0.
    """

    def __init__(self, shards=2, extra=None, secret=None, tmpdir=None):
        self.shards = shards
        self.extra = list(extra or [])
        self.secret = secret or ("test-secret-" + os.urandom(8).hex())
        self._own_tmp = tmpdir is None
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="ringcast-it-")
        self.store = "sqlite:" + os.path.join(self.tmpdir, "rc.db")
        self.bin = binary_path()
        self.proc = None
        self.port = None
        self.exit_codes = []  # Exit status of every stop(), in order.
        self._log = []  # Lines from every run, prefixed with the run number.
        self._log_lock = threading.Lock()
        self._run = 0
        self._port_event = threading.Event()
        self._drain = None

    # --- lifecycle -------------------------------------------------------------------

    def args(self):
        return [self.bin, "--port", "0", "--host", "127.0.0.1", "--jwt-secret", self.secret,
                "--store", self.store, "--shards", str(self.shards)] + self.extra

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            raise BrokerError("broker already running")
        self._run += 1
        self.port = None
        self._port_event = threading.Event()
        env = dict(os.environ)
        env.setdefault("NO_PROXY", "127.0.0.1,localhost")
        env.setdefault("no_proxy", "127.0.0.1,localhost")
        self._append("### start #%d: %s" % (self._run, " ".join(self.args())))
        try:
            self.proc = subprocess.Popen(
                self.args(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, cwd=self.tmpdir, env=env)
        except OSError as e:
            raise BrokerError("cannot start %s: %s" % (self.bin, e))
        self._drain = threading.Thread(target=self._drain_loop, args=(self.proc, self._port_event),
                                       daemon=True)
        self._drain.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._port_event.wait(0.05):
                break
            if self.proc.poll() is not None:
                self._drain.join(2)
                raise BrokerError("broker exited with %s before listening\n%s"
                                  % (self.proc.returncode, self.log()))
        if self.port is None:
            self._kill()
            raise BrokerError("broker printed no 'listening on 127.0.0.1:PORT' within %.0f s\n%s"
                              % (START_TIMEOUT_S, self.log()))
        return self

    def _drain_loop(self, proc, port_event):
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._append(line)
            if not port_event.is_set():
                m = LISTEN_RE.search(line)
                if m:
                    self.port = int(m.group(1))
                    port_event.set()
        proc.stdout.close()

    def _append(self, line):
        with self._log_lock:
            self._log.append(line)

    def stop(self, expect_code=0):
        """SIGTERM, wait up to 10 s (then SIGKILL). Returns the exit status.

        Raises BrokerError when expect_code is not None and the status differs."""
        if self.proc is None:
            return None
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._append("### broker did not exit %.0f s after SIGTERM; killing" % STOP_TIMEOUT_S)
                self._kill()
                code = proc.returncode
                self.exit_codes.append(code)
                self.proc = None
                if expect_code is not None:
                    raise BrokerError("broker ignored SIGTERM for %.0f s\n%s"
                                      % (STOP_TIMEOUT_S, self.log()))
                return code
        if self._drain is not None:
            self._drain.join(5)
        code = proc.returncode
        self.exit_codes.append(code)
        self._append("### exit status %s" % code)
        self.proc = None
        if expect_code is not None and code != expect_code:
            raise BrokerError("broker exit status %s, expected %s\n%s" % (code, expect_code, self.log()))
        return code

    def restart(self):
        """Graceful stop (exit 0 required), then start on the same store and secret."""
        self.stop(expect_code=0)
        return self.start()

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        """Best-effort teardown for finally blocks: kill if still running, remove the temp dir."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.stop(expect_code=None)
        finally:
            self._kill()
            if self._own_tmp:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        with self._log_lock:
            return "\n".join(self._log)

    # --- addresses -------------------------------------------------------------------

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/socket.io/?EIO=4&transport=websocket" % self.port

    # --- tokens ----------------------------------------------------------------------

    def token(self, user_id, role=None, ttl=3600, name=None):
        """A JWT from `ringcast token` (the broker's own minter)."""
        cmd = [self.bin, "token", user_id, "--jwt-secret", self.secret, "--ttl", str(ttl)]
        if role:
            cmd += ["--role", role]
        if name:
            cmd += ["--name", name]
        env = dict(os.environ, RINGCAST_JWT_SECRET=self.secret)
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, env=env)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BrokerError("`%s` failed: %s" % (" ".join(cmd), e))
        out = r.stdout.decode("utf-8", "replace").strip()
        if r.returncode != 0 or not out:
            raise BrokerError("`%s` exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(cmd), r.returncode, out, r.stderr.decode("utf-8", "replace")))
        tok = out.splitlines()[-1].strip()
        if tok.count(".") != 2:
            raise BrokerError("`ringcast token` printed no JWT: %r" % out)
        return tok

    def py_token(self, user_id, **kw):
        """A JWT from the pure-python minter, signed with this broker's secret."""
        kw.setdefault("secret", self.secret)
        return mint(user_id, **kw)


# --- pure-python JWT minter (no jwt library; for crafted bad tokens) -------------------

def b64url(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(user_id, secret, alg="HS256", ttl=3600, exp=None, role=None, name=None,
         extra_claims=None, header_extra=None, omit_exp=False, sign=True):
    """Build a JWT by hand.

    alg: 'HS256' | 'HS384' | 'HS512' | 'none' (the header says alg; the signature uses it,
    and 'none' gives an empty signature). exp: absolute seconds; default now + ttl.
    """
    header = {"alg": alg, "typ": "JWT"}
    header.update(header_extra or {})
    now = int(time.time())
    claims = {"sub": user_id, "iat": now}
    if not omit_exp:
        claims["exp"] = exp if exp is not None else now + ttl
    if role is not None:
        claims["role"] = role
    if name is not None:
        claims["name"] = name
    claims.update(extra_claims or {})
    signing_input = b64url(json.dumps(header, separators=(",", ":"))) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")))
    if alg == "none" or not sign:
        return signing_input + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), digest).digest()
    return signing_input + "." + b64url(sig)


def decode_claims(token):
    """The claims of a JWT, without verifying anything (to check `ringcast token` output)."""
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def verify_hs256(token, secret):
    """True if token is a well-formed HS256 JWT signed with secret."""
    try:
        h, p, s = token.split(".")
        hdr = json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))
    except ValueError:
        return False
    if hdr.get("alg") != "HS256":
        return False
    want = hmac.new(secret.encode("utf-8"), (h + "." + p).encode("ascii"), hashlib.sha256).digest()
    return hmac.compare_digest(b64url(want), s)
