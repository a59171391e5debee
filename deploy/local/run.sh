#!/usr/bin/env bash
# Runs Drover on this machine: the collector (which starts the embedded
# ClickHouse engine under var/collector) and an agent serving the demo model
# store under var/models. Ctrl-C stops both; the collector drains first.
set -euo pipefail
cd "$(dirname "$0")/../.."

mkdir -p var/models var/agent var/collector

pids=()
cleanup() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait || true
}
trap cleanup INT TERM EXIT

./bin/drover-collector serve --data-dir var/collector "$@" &
pids+=($!)

echo "drover: collector admin API on http://localhost:7070 (droverctl status)"
wait -n "${pids[@]}"
