#!/usr/bin/env bash
# perf/scenarios/run.sh SYSTEM SCENARIO [json|msgpack] [-- extra ringcast-bench args]
#
# Starts one server (ringcast | socketio | floor) on a free loopback port,
# runs ringcast-bench for SCENARIO against it, writes
# perf/results/SCENARIO-SYSTEM-ENC.json and stops the server. Exit status is
# the harness's (0 ok, 1 integrity failure, 3 setup failure).
#
# Servers (all on 127.0.0.1, port 0):
#   ringcast  perf/out/bin/ringcast (ReleaseFast, see perf/build.sh), a fresh
#             SQLite store in a temp dir, rate limit lifted (the scenarios send
#             faster than 30 msgs/min per user); everything else default.
#   socketio  node perf/peers/socketio/server.js, in memory (no --mongo),
#             --parser ENC, rate limit lifted the same way.
#   floor     perf/out/bin/ringcast-floor.
# Environment: BENCH_SECRET (default bench-secret), RINGCAST_BIN.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
sys="${1:?system}"; scen="${2:?scenario}"; enc="${3:-json}"
shift $(( $# >= 3 ? 3 : $# )); [[ "${1:-}" == "--" ]] && shift
secret="${BENCH_SECRET:-bench-secret}"
bin="$here/out/bin"
tmp="$(mktemp -d /tmp/rcbench.XXXXXX)"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
lift=(--rate-limit 1000000 --rate-burst 1000000)
case "$sys" in
ringcast)
    "${RINGCAST_BIN:-$bin/ringcast}" --port 0 --jwt-secret "$secret" --store "sqlite:$tmp/rc.db" "${lift[@]}" \
        2>"$tmp/server.log" &
    pid=$!; mode="ReleaseFast" ;;
socketio)
    ( cd "$here/peers/socketio" && exec node server.js --port 0 --jwt-secret "$secret" --parser "$enc" "${lift[@]}" ) \
        >"$tmp/server.log" 2>&1 &
    pid=$!; mode="node $(node --version)" ;;
floor)
    "$bin/ringcast-floor" --port 0 --jwt-secret "$secret" 2>"$tmp/server.log" &
    pid=$!; mode="gcc -O2" ;;
*) echo "run.sh: unknown system $sys" >&2; exit 2 ;;
esac
port=""
for _ in $(seq 100); do   # up to 10 s for `listening on HOST:PORT`
    port="$(grep -o 'listening on [0-9.]*:[0-9]*' "$tmp/server.log" 2>/dev/null | head -1 | sed 's/.*://')" || true
    [[ -n "$port" ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 3; }
    sleep 0.1
done
[[ -n "$port" ]] || { echo "run.sh: $sys did not start" >&2; cat "$tmp/server.log" >&2; exit 3; }
mkdir -p "$here/results"
out="$here/results/$scen-$sys-$enc.json"
commit="$(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- src actors wire persistence 2>/dev/null || echo -dirty)"
cpu="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
status=0
timeout 900 "$bin/ringcast-bench" --system "$sys" --scenario "$scen" --"$enc" --port "$port" --jwt-secret "$secret" \
    --server-pid "$pid" --out "$out" --tag "commit=$commit" --tag "build=$mode" --tag "cpu=$cpu" \
    --tag "server_args=rate limit lifted; defaults otherwise" "$@" || status=$?
if ! kill -0 "$pid" 2>/dev/null; then echo "run.sh: $sys died during the run" >&2; tail -5 "$tmp/server.log" >&2; status=3; fi
# Keep what explains missing deliveries: the broker's slow-consumer closes
# (outbound queue over 4 MiB, or not drained for 30 s) and its warnings.
slow="$(grep -c 'slow consumer' "$tmp/server.log" 2>/dev/null || true)"
grep -E 'slow consumer|WRN|ERR|rror' "$tmp/server.log" 2>/dev/null | head -200 >"$here/results/$scen-$sys-$enc.server.log" || true
echo "run.sh: $sys server log: ${slow:-0} slow-consumer disconnects (-> perf/results/$scen-$sys-$enc.server.log)" >&2
echo "run.sh: $sys $scen $enc -> ${out#$repo/} (exit $status)" >&2
exit $status
