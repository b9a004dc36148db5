#!/usr/bin/env bash
# perf/scenarios/storm.sh [SYSTEM] [json|msgpack] [-- extra ringcast-bench args]
# The 'storm' scenario (sizes: docs/perf.md and ringcast-bench's defaults for --scenario storm).
exec "$(dirname "$0")/run.sh" "${1:-ringcast}" storm "${2:-json}" "${@:3}"
