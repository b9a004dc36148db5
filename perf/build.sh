#!/usr/bin/env bash
# perf/build.sh - builds the benchmark tools with gcc into perf/out/bin:
#   ringcast-bench  (perf/bench)  the load harness
#   ringcast-floor  (perf/floor)  the no-logic io_uring delivery floor
# Usage: perf/build.sh [--debug]   (default: -O2, frame pointers kept for perf record)
# The broker itself is built by zig: scripts/zig build -Doptimize=ReleaseFast --prefix perf/out
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup   # compilers, libraries, Zig, the peer's npm packages
# What only the benchmarks need: plots (matplotlib) and profiles (linux-perf).
need=()
/usr/bin/python3 -c "import matplotlib" 2>/dev/null || need+=(python3-matplotlib)
command -v perf >/dev/null || need+=(linux-perf)
if [ "${#need[@]}" -gt 0 ]; then
    echo "perf/build.sh: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -d perf/peers/socketio/node_modules ] || (cd perf/peers/socketio && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
opt=(-O2 -g)
[[ "${1:-}" == "--debug" ]] && opt=(-O0 -g -fsanitize=address,undefined)
mkdir -p perf/out/bin
cflags=(-std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror -fno-omit-frame-pointer -I.)
wire=(wire/eio.c wire/http.c wire/json.c wire/mp.c wire/sio.c wire/ws.c wire/jwt.c src/buf.c src/err.c)
libs=(-ljansson -lcrypto -lmsgpackc -lwslay -luring -lm)
gcc "${cflags[@]}" "${opt[@]}" -o perf/out/bin/ringcast-bench perf/bench/bench.c perf/bench/hist.c \
    src/client/rc_client.c "${wire[@]}" "${libs[@]}"
gcc "${cflags[@]}" "${opt[@]}" -o perf/out/bin/ringcast-floor perf/floor/floor.c "${wire[@]}" "${libs[@]}"
echo "built perf/out/bin/ringcast-bench perf/out/bin/ringcast-floor"
