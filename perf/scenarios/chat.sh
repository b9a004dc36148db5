#!/usr/bin/env bash
# perf/scenarios/chat.sh [SYSTEM] [json|msgpack] [-- extra ringcast-bench args]
# The 'chat' scenario (sizes: docs/perf.md and ringcast-bench's defaults for --scenario chat).
exec "$(dirname "$0")/run.sh" "${1:-ringcast}" chat "${2:-json}" "${@:3}"
