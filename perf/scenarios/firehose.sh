#!/usr/bin/env bash
# perf/scenarios/firehose.sh [SYSTEM] [json|msgpack] [-- extra ringcast-bench args]
# The 'firehose' scenario (sizes: docs/perf.md and ringcast-bench's defaults for --scenario firehose).
exec "$(dirname "$0")/run.sh" "${1:-ringcast}" firehose "${2:-json}" "${@:3}"
