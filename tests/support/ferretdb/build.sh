#!/usr/bin/env bash
# tests/support/ferretdb/build.sh - build the FerretDB v1.24.2 test server into
# .cache/ferretdb/ferretdb, with the Go module and build caches under .cache/go so
# later runs are fast. Does nothing when the binary is newer than main.go and go.mod.
# Quiet on success. Needs Go >= 1.24 (FerretDB's go.mod says `go 1.24`); Debian's
# golang-go (1.19) is too old, so /usr/local/go/bin/go is preferred.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
OUT="$ROOT/.cache/ferretdb/ferretdb"

if [ -x "$OUT" ] && [ "$OUT" -nt "$HERE/main.go" ] && [ "$OUT" -nt "$HERE/go.mod" ]; then
    exit 0
fi

GO=/usr/local/go/bin/go
[ -x "$GO" ] || GO=$(command -v go || true)
if [ -z "$GO" ]; then
    echo "ferretdb/build.sh: no Go toolchain (want /usr/local/go/bin/go or go on PATH)" >&2
    exit 1
fi

export GOMODCACHE="$ROOT/.cache/go/mod" GOCACHE="$ROOT/.cache/go/build"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
mkdir -p "$GOMODCACHE" "$GOCACHE" "$(dirname "$OUT")"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Build into a temporary name, then rename, so an interrupted build never leaves a
# binary that looks fresh.
if ! (cd "$HERE" && "$GO" build -trimpath -o "$OUT.tmp" .) >"$log" 2>&1; then
    cat "$log" >&2
    echo "ferretdb/build.sh: go build failed" >&2
    rm -f "$OUT.tmp"
    exit 1
fi
mv -f "$OUT.tmp" "$OUT"
