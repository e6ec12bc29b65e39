#!/usr/bin/env bash
# Benchmarks keyhole's sandbox against bubblewrap and a plain fork/exec on
# this machine, side by side in one run. Needs root (or unprivileged user
# namespaces and a delegated cgroup). Installs Debian's bubblewrap when it is
# missing and apt-get is there; without it the bwrap baseline is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
	apt-get install -y bubblewrap >/dev/null 2>&1 ||
		{ apt-get update >/dev/null 2>&1 && apt-get install -y bubblewrap >/dev/null 2>&1; } ||
		echo "bench-sandbox: could not install bubblewrap; its baseline will be skipped" >&2
fi

# keyhole's dependencies are pure Go; a static build starts faster and
# keeps the init smaller. CGO_ENABLED=1 measures the default cgo build.
export CGO_ENABLED="${CGO_ENABLED:-0}"
count="${COUNT:-200}"
go test -run '^$' -bench 'StartTrue|InitRSS' -benchtime "${count}x" -count 1 ./internal/sandbox
