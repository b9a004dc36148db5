#!/usr/bin/python3
"""perf/store_bench.py - store write path against FerretDB: batched vs one insert per message.

One run starts FerretDB (tests/support/ferret.py, fresh data dir) and the broker
(--store mongodb://..., --shards 2) twice, once per mode:

  batched      --batch-max 1000 --batch-delay-ms 2   (the defaults)
  one-by-one   --batch-max 1    --batch-delay-ms 0   (one bulk insert, one message)

and drives SENDERS async senders on one asyncio loop (one thread; raw Socket.IO frames
over aiohttp, see Sender), two per room in ROOMS group rooms, each sending
`message:send` (no ack id) open loop on a fixed schedule. Per mode, two phases on the
same broker and FerretDB:

  light       LIGHT_RATE msg/s for LIGHT_DURATION s (below both capacities): latency of
              the write path itself; also send -> message:new at the other member
              (fan-out, no store involved) for comparison;
  saturating  RATE msg/s (one-by-one: RATE_ONE) for DURATION s, above what the mode
              sustains: its throughput, and latency under a growing backlog.

Latency is measured per message at the sending socket: the time the send frame was
written -> the time its `message:confirmed` was read (perf_counter). After each phase
the script waits (bounded by --confirm-deadline-ms + 10 s) until every message is
confirmed, failed (message:failed) or refused (`error`, e.g. UNAVAILABLE past
--store-backlog-max).

Figures per phase: offered and achieved send rate, sustained confirmed messages/s (the
confirmations read inside the send window / its length: the store path's throughput
when the offered rate is above it), confirmed / failed / refused, latency
p50/p99/p99.9/max over the confirmed messages. The ratio is batched / one-by-one
sustained confirmed rate of the saturating phases; the issue asks for >= 10x.

Usage: /usr/bin/python3 perf/store_bench.py [--rate 6000] [--rate-one 1000] [--duration 20]
       [--light-rate 50] [--light-duration 20] [--senders 20] [--rooms 10] [--body 64]
       [--modes batched,one] [--out PATH]      (JSON to perf/results/store_bench-DATE.json)
Exit 0 when both runs completed (whatever the ratio), 1 on a setup error, 77 when the
FerretDB binary is missing (scripts/setup builds it).
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request

import aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))

import broker as broker_mod  # noqa: E402
import ferret  # noqa: E402

MODES = {
    "batched": ["--batch-max", "1000", "--batch-delay-ms", "2"],
    "one": ["--batch-max", "1", "--batch-delay-ms", "0"],
}
LABEL = {"batched": "batched (1000 / 2 ms)", "one": "one-by-one (1 / 0 ms)"}


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def machine():
    model, cores = platform.processor() or "?", os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": model, "cores": cores, "kernel": platform.release(), "mem_mib": mem}


def build_info():
    """The commit the tree is at and the broker binary's mtime (the binary may be older)."""
    info = {"broker": broker_mod.binary_path()}
    try:
        info["commit"] = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True).stdout.strip()
        info["binary_mtime"] = datetime.datetime.fromtimestamp(
            os.path.getmtime(info["broker"])).isoformat(timespec="seconds")
    except OSError:
        pass
    return info


def metrics_lines(port, prefixes):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=3) as r:
            text = r.read().decode("utf-8", "replace")
    except Exception as e:  # informative only
        return ["(metrics: %s)" % e]
    return [l for l in text.splitlines() if l.startswith(prefixes)]


class Sender:
    """One sender: a raw Engine.IO v4 / Socket.IO v5 JSON client over aiohttp's WebSocket.

    python-socketio's AsyncClient costs about 0.1-0.2 ms of Python per packet, so on 2
    cores it cannot offer several thousand messages/s and read three events per message
    at the same time (its own backlog then dominates the latency). The packets here are
    the same ones socket.io-client sends: CONNECT `40{"token":..}`, EVENT
    `42["message:send",{..}]` (no ack id), pong `3`; of what arrives only
    `message:confirmed` / `message:failed` / `error` are parsed."""

    def __init__(self, idx, user):
        self.idx = idx
        self.user = user
        self.ws = None
        self.ready = asyncio.Event()
        self.sent = {}        # tempId -> perf_counter when the frame was written
        self.confirmed = {}   # tempId -> perf_counter when its confirmation was read
        self.failed = {}      # tempId -> error
        self.errors = []      # `error` events (a send without an ack id that was refused)
        self.prefix = "%s-" % user
        self.reader = None
        self.parse_new = False  # light phase: also time message:new at the peer (fan-out latency)
        self.new_seen = {}      # tempId -> perf_counter when its message:new was read

    async def connect(self, session, url, token):
        self.ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket",
                                           max_msg_size=0, autoping=False)
        first = await self.ws.receive(timeout=10)
        if not (isinstance(first.data, str) and first.data.startswith("0")):
            raise RuntimeError("%s: no Engine.IO OPEN: %r" % (self.user, first.data))
        await self.ws.send_str("40" + json.dumps({"token": token}))
        self.reader = asyncio.ensure_future(self._read())
        await asyncio.wait_for(self.ready.wait(), 15)

    async def _read(self):
        ws = self.ws
        while True:
            msg = await ws.receive()
            t = time.perf_counter()
            d = msg.data
            if not isinstance(d, str):
                return  # closed (or a binary frame, which this JSON client never asked for)
            if d.startswith('42["message:confirmed"'):
                if self.prefix not in d:
                    continue  # the other member's message: not parsed (client CPU)
                tid = json.loads(d[2:])[1].get("tempId", "")
                if tid in self.sent and tid not in self.confirmed:
                    self.confirmed[tid] = t
            elif d.startswith('42["message:new"'):
                if self.parse_new:
                    self.new_seen[json.loads(d[2:])[1].get("tempId", "")] = t
                continue
            elif d == "2":
                await ws.send_str("3")
            elif d.startswith('42["message:failed"'):
                ev = json.loads(d[2:])[1]
                if ev.get("tempId") in self.sent:
                    self.failed[ev["tempId"]] = ev.get("error")
            elif d.startswith('42["ready"'):
                self.ready.set()
            elif d.startswith('42["error"'):
                self.errors.append(json.loads(d[2:])[1])
            elif d.startswith("44"):
                raise RuntimeError("%s: CONNECT refused: %s" % (self.user, d))

    async def call(self, event, payload, ack_id, timeout=10):
        """One event with an ack id; the ack is read here, before the reader task runs
        (only used for chat:create, while nothing else is in flight on this socket)."""
        self.reader.cancel()
        try:
            await self.reader
        except (asyncio.CancelledError, Exception):
            pass
        await self.ws.send_str("42%d%s" % (ack_id, json.dumps([event, payload])))
        deadline = time.monotonic() + timeout
        prefix = "43%d" % ack_id
        try:
            while time.monotonic() < deadline:
                msg = await self.ws.receive(timeout=deadline - time.monotonic())
                if isinstance(msg.data, str) and msg.data.startswith(prefix):
                    return json.loads(msg.data[len(prefix):])[0]
                if msg.data == "2":
                    await self.ws.send_str("3")
            raise RuntimeError("%s: no ack for %s" % (self.user, event))
        finally:
            self.reader = asyncio.ensure_future(self._read())

    async def close(self):
        if self.reader:
            self.reader.cancel()
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()


async def run_phase(f, senders, rooms, args, name, rate, duration):
    """One open-loop load phase on the connected senders: every sender sends at
    rate/len(senders) messages/s for `duration` s; then waits until each message is
    confirmed, failed or refused (bounded by the confirm deadline + 10 s)."""
    for s in senders:
        s.sent, s.confirmed, s.failed, s.errors, s.new_seen = {}, {}, {}, [], {}
        s.prefix = "%s-%s-" % (s.user, name)
        s.parse_new = name == "light"
    body = "b" * args.body
    per_sender = rate / float(len(senders))
    tick = 0.005
    la0 = loadavg()
    t0 = time.perf_counter()
    t_end = t0 + duration

    async def drive(s):
        room = rooms[s.idx % len(rooms)]
        n = 0
        phase = s.idx / float(len(senders))
        send = s.ws.send_str
        head = '42["message:send",{"roomId":%s,"type":"text","body":%s,"tempId":"' % (
            json.dumps(room), json.dumps(body))
        while True:
            now = time.perf_counter()
            if now >= t_end:
                return
            # Sender i's k-th message is due at t0 + (k + i/N) / per_sender: the senders'
            # schedules are staggered, so the aggregate is evenly spaced (not N at once).
            x = (now - t0) * per_sender - phase
            due = int(x) + 1 if x >= 0 else 0
            while n < due:
                tid = "%s%d" % (s.prefix, n)
                s.sent[tid] = time.perf_counter()
                await send(head + tid + '"}]')
                n += 1
            await asyncio.sleep(tick)

    await asyncio.gather(*[drive(s) for s in senders])
    t_sent = time.perf_counter()
    la1 = loadavg()
    in_window = sum(1 for s in senders for t in s.confirmed.values() if t <= t_sent)
    total_sent = sum(len(s.sent) for s in senders)
    drain_limit = t_sent + args.deadline_ms / 1000.0 + 10
    while time.perf_counter() < drain_limit:
        done = sum(len(s.confirmed) + len(s.failed) + len(s.errors) for s in senders)
        if done >= total_sent:
            break
        await asyncio.sleep(0.1)
    t_done = time.perf_counter()
    lats = sorted((s.confirmed[t] - s.sent[t]) * 1000.0 for s in senders for t in s.confirmed)
    confirmed = len(lats)
    failed = sum(len(s.failed) for s in senders)
    refused = sum(len(s.errors) for s in senders)
    window = t_sent - t0
    sent_at = {}
    for s in senders:
        sent_at.update(s.sent)
    fan = sorted((t - sent_at[tid]) * 1000.0 for s in senders for tid, t in s.new_seen.items()
                 if tid in sent_at)
    stored = None
    try:
        c = f.client()
        stored = c.ringcast.messages.count_documents({})
        c.close()
    except Exception as e:
        print("  (pymongo count failed: %s)" % e)
    codes = {}
    for s in senders:
        for e in s.errors:
            k = (e or {}).get("code", "?") if isinstance(e, dict) else "?"
            codes[k] = codes.get(k, 0) + 1
    return {
        "phase": name, "offered_rate": rate,
        "sent": total_sent, "send_window_s": round(window, 3),
        "achieved_send_rate": round(total_sent / window, 1),
        "confirmed_in_window": in_window,
        "sustained_confirmed_per_s": round(in_window / window, 1),
        "confirmed": confirmed, "failed": failed, "refused_sends": refused, "refused_codes": codes,
        "unanswered": total_sent - confirmed - failed - refused,
        "drain_s": round(t_done - t_sent, 2),
        "latency_ms": {k: (round(v, 2) if v is not None else None) for k, v in (
            ("p50", pct(lats, 50)), ("p99", pct(lats, 99)), ("p99.9", pct(lats, 99.9)),
            ("max", lats[-1] if lats else None))},
        "fanout_latency_ms": {k: (round(v, 2) if v is not None else None) for k, v in (
            ("p50", pct(fan, 50)), ("p99", pct(fan, 99)), ("p99.9", pct(fan, 99.9)))} if fan else None,
        "stored_in_mongodb_total": stored,
        "loadavg_before": la0, "loadavg_after": la1,
    }


async def run_mode(mode, args):
    f = ferret.FerretDB()
    b = broker_mod.Broker(shards=args.shards, extra=[
        "--rate-limit", "1000000", "--rate-burst", "1000000"] + MODES[mode])
    b.store = f.uri("ringcast")
    senders = []
    session = None
    try:
        f.start()
        b.start()
        users = ["bench-s%02d" % i for i in range(args.senders)]
        senders = [Sender(i, u) for i, u in enumerate(users)]
        session = aiohttp.ClientSession()
        await asyncio.gather(*[s.connect(session, b.url, b.token(s.user)) for s in senders])
        # ROOMS group rooms; sender i belongs to room i % ROOMS (two senders per room by default).
        rooms = []
        for r in range(args.rooms):
            members = [s for s in senders if s.idx % args.rooms == r]
            owner, others = members[0], [m.user for m in members[1:]]
            ack = await owner.call("chat:create", {"type": "group", "members": others,
                                                   "name": "bench-%d" % r}, ack_id=r + 1)
            if not (isinstance(ack, dict) and ack.get("ok")):
                raise RuntimeError("chat:create failed: %r" % (ack,))
            rooms.append(ack["chat"]["id"])
        await asyncio.sleep(0.5)  # chat:new reaches the other members

        phases = []
        if args.light_rate > 0 and args.light_duration > 0:
            phases.append(await run_phase(f, senders, rooms, args, "light", args.light_rate,
                                          args.light_duration))
        rate = args.rate_one if (mode == "one" and args.rate_one > 0) else args.rate
        phases.append(await run_phase(f, senders, rooms, args, "saturating", rate, args.duration))
        res = {"mode": mode, "broker_args": MODES[mode], "phases": phases,
               "metrics": metrics_lines(b.port, ("ringcast_store", "ringcast_confirm"))}
        for s in senders:
            await s.close()
        code = b.stop(expect_code=None)
        res["broker_exit"] = code
        return res
    finally:
        for s in senders:
            try:
                await s.close()
            except Exception:
                pass
        if session is not None:
            await session.close()
        b.close()
        f.close()


def fmt(v, w=9, d=1):
    return ("%*.*f" % (w, d, v)) if isinstance(v, (int, float)) else ("%*s" % (w, "-"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=6000,
                    help="saturating phase: offered messages/s, all senders (6000)")
    ap.add_argument("--rate-one", type=float, default=1000,
                    help="saturating phase of one-by-one: offered msg/s (1000, about twice what it "
                         "sustains; 0 = same as --rate). Offering it 6000/s as well measures the "
                         "client and the failure path more than the store (see perf/store_bench.md)")
    ap.add_argument("--duration", type=float, default=20, help="saturating phase length, s (20)")
    ap.add_argument("--light-rate", type=float, default=50,
                    help="light phase first (well below both capacities): msg/s (50; 0 = none)")
    ap.add_argument("--light-duration", type=float, default=20, help="light phase length, s (20)")
    ap.add_argument("--senders", type=int, default=20)
    ap.add_argument("--rooms", type=int, default=10)
    ap.add_argument("--body", type=int, default=64, help="body bytes (64)")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--modes", default="batched,one")
    ap.add_argument("--deadline-ms", type=int, default=30000,
                    help="the broker's --confirm-deadline-ms (default 30000, the broker default)")
    ap.add_argument("--out", default=None, help="JSON path (default perf/results/store_bench-DATE.json)")
    args = ap.parse_args()

    if not ferret.available():
        print("SKIP: no FerretDB binary at %s (scripts/setup builds it)" % ferret.binary_path())
        return 77
    if not os.access(broker_mod.binary_path(), os.X_OK):
        print("store_bench: no broker binary at %s (scripts/zig build)" % broker_mod.binary_path())
        return 1
    for m in MODES:
        MODES[m] = MODES[m] + ["--confirm-deadline-ms", str(args.deadline_ms)]

    cmd = "/usr/bin/python3 perf/store_bench.py " + " ".join(sys.argv[1:])
    mach = machine()
    print("store_bench: %s; %s cores; kernel %s; load average %s" % (
        mach["cpu"], mach["cores"], mach["kernel"], loadavg()))
    print("load: %d senders in %d rooms (2 per room), body %d B, --shards %d; per mode: light phase "
          "%.0f msg/s for %.0f s, then saturating phase %.0f msg/s (one-by-one: %.0f) for %.0f s (open loop)" % (
              args.senders, args.rooms, args.body, args.shards, args.light_rate, args.light_duration,
              args.rate, args.rate_one or args.rate, args.duration))
    results = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        print("-- %s: %s" % (mode, " ".join(MODES[mode])), flush=True)
        r = asyncio.run(run_mode(mode, args))
        results.append(r)
        for ph in r["phases"]:
            print("   %-10s sent %d (%.0f/s), confirmed %d, failed %d, refused %d %s, unanswered %d, "
                  "drain %.1f s, loadavg %s -> %s" % (
                      ph["phase"], ph["sent"], ph["achieved_send_rate"], ph["confirmed"], ph["failed"],
                      ph["refused_sends"], ph["refused_codes"] or "", ph["unanswered"], ph["drain_s"],
                      ph["loadavg_before"], ph["loadavg_after"]), flush=True)
            if ph.get("fanout_latency_ms"):
                print("   %-10s send -> message:new at the other member (no store involved): %s" % (
                    ph["phase"], ph["fanout_latency_ms"]), flush=True)
        print("   broker exit status %s" % r.get("broker_exit"), flush=True)

    print()
    print("%-22s %-10s %9s %9s %9s %9s %9s %9s %9s %7s" % (
        "mode", "phase", "offered/s", "sent/s", "conf/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "failed"))
    for r in results:
        for ph in r["phases"]:
            L = ph["latency_ms"]
            print("%-22s %-10s %s %s %s %s %s %s %s %7d" % (
                LABEL[r["mode"]], ph["phase"], fmt(ph["offered_rate"], 9, 0), fmt(ph["achieved_send_rate"], 9, 0),
                fmt(ph["sustained_confirmed_per_s"], 9, 0), fmt(L["p50"]), fmt(L["p99"]), fmt(L["p99.9"]),
                fmt(L["max"]), ph["failed"]))
    sat = {r["mode"]: r["phases"][-1] for r in results}
    ratio = None
    if "batched" in sat and "one" in sat and sat["one"]["sustained_confirmed_per_s"]:
        ratio = sat["batched"]["sustained_confirmed_per_s"] / sat["one"]["sustained_confirmed_per_s"]
        print("\nratio batched / one-by-one, sustained confirmed msgs/s in the saturating phase: %.1fx "
              "(%s the 10x goal)" % (ratio, "meets" if ratio >= 10 else "BELOW"))

    out = args.out or os.path.join(HERE, "results", "store_bench-%s.json" %
                                   datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump({"command": cmd, "date": datetime.datetime.now().isoformat(timespec="seconds"),
                   "machine": mach, "ferretdb": ferret.binary_path(), "build": build_info(),
                   "args": vars(args), "results": results, "ratio": ratio}, fh, indent=2)
    print("wrote %s" % os.path.relpath(out, REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
