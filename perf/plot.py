#!/usr/bin/python3
"""perf/plot.py - tables, ratios and PNG plots from perf/results/*.json.

  /usr/bin/python3 perf/plot.py --compare SCENARIO [ENC]   ratios of ringcast to the peer and the floor
  /usr/bin/python3 perf/plot.py                            plots for every result present

Plots (Debian's python3-matplotlib): perf/results/SCENARIO-ENC-cdf.png (the
latency CDF of each system, last measured step) and
perf/results/fanout-ENC-load.png (deliveries/s and p99 against offered load).
"""
import glob, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
RES = os.path.join(HERE, "results")
SYSTEMS = ["ringcast", "socketio", "floor"]


def load(scen, enc):
    out = {}
    for s in SYSTEMS:
        p = os.path.join(RES, f"{scen}-{s}-{enc}.json")
        if os.path.exists(p):
            with open(p) as f:
                out[s] = json.load(f)
    return out


def best_step(r):
    """The step compared across systems: the first measured one (same offered
    load for every system), or the only one for closed loop."""
    st = r.get("steps") or []
    return st[0] if st else None


def row(s, r):
    st = best_step(r)
    mem = r.get("memory", {})
    conn = r.get("connect", {})
    d = {"system": s, "rss_per_conn": mem.get("server_rss_per_conn_bytes", -1),
         "connects_s": conn.get("connects_per_s", 0)}
    if st:
        d.update(deliv=st["deliveries_s"], p50=st["latency"]["p50_us"], p99=st["latency"]["p99_us"],
                 p999=st["latency"]["p999_us"], mx=st["latency"]["max_us"], ack99=st["ack"]["p99_us"],
                 cnf99=st["confirm"]["p99_us"], srv=st["server_cpu_pct"], bench=st["harness_cpu_pct"],
                 ok=st["integrity_ok"])
    if "storm" in r:
        d["storm_s"] = r["storm"]["seconds"]
    return d


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b and a > 0 and b > 0 else "n/a"


def compare(scen, enc):
    res = load(scen, enc)
    if not res:
        print(f"no results for {scen} {enc}")
        return 1
    rows = {s: row(s, r) for s, r in res.items()}
    print(f"\n{scen} ({enc}): first measured step of each system")
    print(f"{'system':9} {'deliv/s':>10} {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'max us':>9} {'ack p99':>8} "
          f"{'cnf p99':>8} {'srv%':>5} {'bench%':>6} {'RSS B/conn':>10} {'conn/s':>7} {'storm s':>7}")
    for s in SYSTEMS:
        d = rows.get(s)
        if not d:
            continue
        print(f"{s:9} {d.get('deliv', 0):10.0f} {d.get('p50', 0):8.0f} {d.get('p99', 0):8.0f} {d.get('p999', 0):9.0f} "
              f"{d.get('mx', 0):9.0f} {d.get('ack99', 0):8.0f} {d.get('cnf99', 0):8.0f} {d.get('srv', 0):5.0f} "
              f"{d.get('bench', 0):6.0f} {d['rss_per_conn']:10.0f} {d['connects_s']:7.0f} {d.get('storm_s', 0):7.2f}")
    rc, pe, fl = rows.get("ringcast"), rows.get("socketio"), rows.get("floor")
    if rc:
        for name, o in (("Socket.IO peer", pe), ("floor", fl)):
            if not o:
                continue
            print(f"ringcast / {name}: deliveries/s {ratio(rc.get('deliv'), o.get('deliv'))}, "
                  f"p99 {ratio(rc.get('p99'), o.get('p99'))}, RSS/conn {ratio(rc['rss_per_conn'], o['rss_per_conn'])}"
                  + (f", storm time {ratio(rc.get('storm_s'), o.get('storm_s'))}" if 'storm_s' in rc else ""))
    plots()
    return 0


def plots():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: python3-matplotlib missing (apt-get install -y python3-matplotlib); no plots")
        return
    seen = set()
    for p in glob.glob(os.path.join(RES, "*-*-*.json")):
        scen, _, enc = os.path.basename(p)[:-5].split("-", 2)
        seen.add((scen, enc))
    for scen, enc in sorted(seen):
        res = load(scen, enc)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        drawn = False
        for s, r in res.items():
            st = (r.get("steps") or [None])[0]
            if not st or "cdf" not in st["latency"]:
                continue
            xs = [v[0] / 1000 for v in st["latency"]["cdf"]]
            ys = [v[1] for v in st["latency"]["cdf"]]
            ax.step(xs, ys, where="post", label=f"{s} (p99 {st['latency']['p99_us'] / 1000:.2f} ms)")
            drawn = True
        if drawn:
            ax.set_xscale("log")
            ax.set_xlabel("publish -> receive latency (ms, log)")
            ax.set_ylabel("fraction of deliveries")
            ax.set_title(f"{scen} ({enc}): latency CDF, first measured step")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
            fig.tight_layout()
            fig.savefig(os.path.join(RES, f"{scen}-{enc}-cdf.png"), dpi=110)
        plt.close(fig)
        if scen != "fanout":
            continue
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
        for s, r in res.items():
            st = r.get("steps") or []
            if not st:
                continue
            x = [t["offered_deliveries_s"] / 1000 for t in st]
            a1.plot(x, [t["deliveries_s"] / 1000 for t in st], "o-", label=s)
            a2.plot(x, [t["latency"]["p99_us"] / 1000 for t in st], "o-", label=s)
        a1.set_xlabel("offered deliveries/s (thousands)"); a1.set_ylabel("delivered/s (thousands)")
        a2.set_xlabel("offered deliveries/s (thousands)"); a2.set_ylabel("p99 latency (ms, log)")
        a2.set_yscale("log"); a2.axhline(5, color="red", ls="--", lw=1, label="target 5 ms")
        for a in (a1, a2):
            a.grid(True, alpha=0.3); a.legend()
        fig.suptitle(f"fanout ({enc}): throughput and p99 vs offered load")
        fig.tight_layout()
        fig.savefig(os.path.join(RES, f"fanout-{enc}-load.png"), dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "json"))
    plots()
