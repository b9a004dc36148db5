#!/usr/bin/env bash
# perf/scenarios/idle.sh [SYSTEM] [json|msgpack] [-- extra ringcast-bench args]
# The 'idle' scenario (sizes: docs/perf.md and ringcast-bench's defaults for --scenario idle).
exec "$(dirname "$0")/run.sh" "${1:-ringcast}" idle "${2:-json}" "${@:3}"
