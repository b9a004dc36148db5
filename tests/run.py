#!/usr/bin/python3
"""Test runner: unit test executables, python integration scripts, node integration scripts.

Usage: /usr/bin/python3 tests/run.py [--filter SUBSTR] [--unit-only|--integration-only] [--tsan]

  (a) every executable file in zig-out/test-bin/ (or $RINGCAST_TEST_BIN_DIR), timeout 120 s;
  (b) every tests/integration/test_*.py, run with /usr/bin/python3, timeout 180 s;
  (c) every tests/integration/node/test_*.js, run with node, timeout 180 s (skipped with a
      message when tests/integration/node/node_modules is missing).
One at a time (2-core machine). Exit status per test: 0 pass, 77 skip, anything else fail.
Prints `PASS name (1.2s)`, `FAIL name` with the tail of its output, or `SKIP name`, and
always ends with the line `N passed, N failed, N skipped` (also on Ctrl-C). Exits 1 if
anything failed (or was interrupted), else 0.

--tsan: unit tests come from zig-out/test-bin-tsan/ (or $RINGCAST_TSAN_TEST_BIN_DIR), the
integration tests use zig-out/bin/ringcast-tsan when it exists (unless $RINGCAST_BIN is set),
TSAN_OPTIONS defaults to halt_on_error=1, and timeouts are doubled.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"
UNIT_TIMEOUT_S = 120
INTEGRATION_TIMEOUT_S = 180
TAIL_LINES = 150
EXIT_SKIP = 77


class Counts:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def line(self):
        return "%d passed, %d failed, %d skipped" % (self.passed, self.failed, self.skipped)


def unit_tests(bin_dir):
    if not os.path.isdir(bin_dir):
        return []
    out = []
    for name in sorted(os.listdir(bin_dir)):
        p = os.path.join(bin_dir, name)
        if os.path.isfile(p) and os.access(p, os.X_OK) and not name.startswith("."):
            out.append(("unit/" + name, [p], os.path.dirname(p)))
    return out


def python_tests(integ_dir):
    if not os.path.isdir(integ_dir):
        return []
    return [("integration/" + n, [PYTHON, os.path.join(integ_dir, n)], REPO)
            for n in sorted(os.listdir(integ_dir))
            if n.startswith("test_") and n.endswith(".py")]


def node_tests(node_dir):
    if not os.path.isdir(node_dir):
        return []
    return [("integration/node/" + n, ["node", os.path.join(node_dir, n)], node_dir)
            for n in sorted(os.listdir(node_dir))
            if n.startswith("test_") and n.endswith(".js")]


def tail(text, n=TAIL_LINES):
    lines = text.rstrip("\n").splitlines()
    head = ["    ... (%d earlier lines)" % (len(lines) - n)] if len(lines) > n else []
    return "\n".join(head + ["    " + l for l in lines[-n:]])


def run_one(name, argv, cwd, timeout, env, counts):
    """Run one test in its own process group; print its result line. Ctrl-C propagates."""
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as e:
        counts.failed += 1
        print("FAIL %s (cannot start: %s)" % (name, e), flush=True)
        return
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        out, _ = proc.communicate()
    except BaseException:  # KeyboardInterrupt: stop the test's whole group, then re-raise.
        _kill_group(proc)
        try:
            proc.communicate(timeout=5)
        except Exception:
            pass
        raise
    dt = time.monotonic() - t0
    text = out.decode("utf-8", "replace")
    code = proc.returncode
    if timed_out:
        counts.failed += 1
        print("FAIL %s (timed out after %d s)\n%s" % (name, timeout, tail(text)), flush=True)
    elif code == 0:
        counts.passed += 1
        print("PASS %s (%.1fs)" % (name, dt), flush=True)
    elif code == EXIT_SKIP:
        counts.skipped += 1
        reason = [l for l in text.splitlines() if l.startswith("SKIP")]
        print("SKIP %s%s" % (name, (" - " + reason[-1]) if reason else ""), flush=True)
    else:
        counts.failed += 1
        print("FAIL %s (exit %s, %.1fs)\n%s" % (name, code, dt, tail(text)), flush=True)


def _kill_group(proc):
    """SIGTERM the test's process group (it runs in its own session), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--filter", default="", help="run only tests whose name contains SUBSTR")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--unit-only", action="store_true")
    g.add_argument("--integration-only", action="store_true")
    ap.add_argument("--tsan", action="store_true", help="thread-sanitizer build (see module doc)")
    args = ap.parse_args()

    env = dict(os.environ)
    scale = 1
    if args.tsan:
        scale = 2
        env.setdefault("TSAN_OPTIONS", "halt_on_error=1 second_deadlock_stack=1")
        unit_dir = env.get("RINGCAST_TSAN_TEST_BIN_DIR") or os.path.join(REPO, "zig-out", "test-bin-tsan")
        tsan_bin = os.path.join(REPO, "zig-out", "bin", "ringcast-tsan")
        if "RINGCAST_BIN" not in env and os.path.exists(tsan_bin):
            env["RINGCAST_BIN"] = tsan_bin
    else:
        unit_dir = env.get("RINGCAST_TEST_BIN_DIR") or os.path.join(REPO, "zig-out", "test-bin")
    integ_dir = os.path.join(REPO, "tests", "integration")
    node_dir = os.path.join(integ_dir, "node")

    plan = []  # (name, argv, cwd, timeout)
    if not args.integration_only:
        units = unit_tests(unit_dir)
        if not units:
            print("note: no unit test executables in %s" % unit_dir, flush=True)
        plan += [(n, a, c, UNIT_TIMEOUT_S * scale) for n, a, c in units]
    node_missing = False
    if not args.unit_only:
        plan += [(n, a, c, INTEGRATION_TIMEOUT_S * scale) for n, a, c in python_tests(integ_dir)]
        nodes = node_tests(node_dir)
        node_missing = not os.path.isdir(os.path.join(node_dir, "node_modules"))
        plan += [(n, a, c, INTEGRATION_TIMEOUT_S * scale) for n, a, c in nodes]
    plan = [p for p in plan if args.filter in p[0]]

    counts = Counts()
    interrupted = False
    try:
        for name, argv, cwd, timeout in plan:
            if node_missing and name.startswith("integration/node/"):
                counts.skipped += 1
                print("SKIP %s - %s/node_modules missing; run `npm install --no-audit --no-fund` there"
                      % (name, node_dir), flush=True)
                continue
            run_one(name, argv, cwd, timeout, env, counts)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", flush=True)
    finally:
        print(counts.line(), flush=True)
    sys.exit(1 if counts.failed or interrupted else 0)


if __name__ == "__main__":
    main()
