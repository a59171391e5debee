#!/usr/bin/env bash
# Runs Drover on this machine: the collector (which starts the embedded
# ClickHouse engine under var/collector) and an agent serving the model store
# under var/models, seeded with a demo model (the scikit-learn iris classifier
# that onnxruntime_go ships as test data). Ctrl-C stops both; each drains
# first.
set -euo pipefail
cd "$(dirname "$0")/../.."

mkdir -p var/models var/agent var/collector
if [ ! -e var/models/iris/1/model.onnx ]; then
	src="$(go list -m -f '{{.Dir}}' github.com/yalue/onnxruntime_go)/test_data/sklearn_randomforest.onnx"
	mkdir -p var/models/iris
	rm -rf var/models/iris/.tmp-1 && mkdir var/models/iris/.tmp-1
	cp "$src" var/models/iris/.tmp-1/model.onnx
	mv var/models/iris/.tmp-1 var/models/iris/1 # publish by atomic rename
fi

collector= agent=
# Stop the agent first, so its last telemetry reaches the collector, then
# the collector, which drains its spool into ClickHouse before it exits.
cleanup() {
	trap - INT TERM EXIT
	[ -n "$agent" ] && kill -TERM "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
	[ -n "$collector" ] && kill -TERM "$collector" 2>/dev/null && wait "$collector" 2>/dev/null
	true
}
trap cleanup INT TERM EXIT

./bin/drover-collector serve --data-dir var/collector &
collector=$!
for _ in $(seq 1 120); do
	./bin/droverctl status >/dev/null 2>&1 && break
	kill -0 "$collector" 2>/dev/null || { echo "drover: the collector exited; see its log above" >&2; exit 1; }
	sleep 0.5
done
# The agent sends its telemetry with the agent token the collector wrote on
# its first start (the OTLP receivers require one).
if [ ! -e var/agent/agent.yaml ]; then
	printf 'telemetry:\n  token_file: var/collector/agent.token\n' >var/agent/agent.yaml
fi
./bin/drover-agent --config var/agent/agent.yaml --model-dir var/models --data-dir var/agent &
agent=$!

# The admin API needs a token for everything but /healthz and /readyz (what
# `droverctl status` asks). The collector wrote an admin token on its first
# start; droverctl reads it from DROVER_TOKEN or --token-file.
if [ ! -s var/collector/admin.token ]; then
	echo "drover: var/collector/admin.token is missing (it is written on a first start only); create tokens with a token you have, or remove var/collector to start afresh" >&2
fi

cat <<'MSG'
drover: agent on http://localhost:8080 (OIP REST) and localhost:8081 (gRPC); collector admin on http://localhost:7070
  admin token (keep it secret): var/collector/admin.token
  ./bin/droverctl --token-file var/collector/admin.token cluster
  ClickHouse (embedded): user drover, password in var/collector/clickhouse/password (0600);
    its ports are in the collector's "clickhouse engine ready" line (addr, http_addr)
  curl -s localhost:8080/v2/models/iris
  curl -s -X POST localhost:8080/v2/models/iris/infer \
    -d '{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[5.9,3.0,5.1,1.8]}]}'
  publish a new version: copy a model to var/models/iris/.tmp-2/model.onnx, then mv it to var/models/iris/2
agent control API (pin, canary, shadow) on http://127.0.0.1:8082 only, with the token the agent wrote:
  control token (keep it secret): var/agent/control.token
  curl -s -X POST -H "Authorization: Bearer $(cat var/agent/control.token)" \
    127.0.0.1:8082/v2/models/iris/versions/1/pin
  curl -s -X DELETE -H "Authorization: Bearer $(cat var/agent/control.token)" 127.0.0.1:8082/v2/models/iris/pin
MSG
wait -n "$collector" "$agent"
