#!/usr/bin/env bash
# perf/scenarios/fanout.sh [SYSTEM] [json|msgpack] [-- extra ringcast-bench args]
# The 'fanout' scenario (sizes: docs/perf.md and ringcast-bench's defaults for --scenario fanout).
exec "$(dirname "$0")/run.sh" "${1:-ringcast}" fanout "${2:-json}" "${@:3}"
