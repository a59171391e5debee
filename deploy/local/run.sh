#!/usr/bin/env bash
# Runs Drover's closed loop on this machine (`make run`; docs/demo.md):
#
#   - the collector (deploy/local/collector.yaml): the embedded ClickHouse
#     engine on 127.0.0.1:9000 (native) and :8123 (HTTP), data and the admin
#     token in var/collector, the admin API on :7070, the built-in optimizer;
#   - two agents following it (deploy/local/agent.yaml): OIP REST/gRPC on
#     8080/8081 (control 127.0.0.1:8082) and 8090/8091 (control 8092), their
#     own model and data directories under var/;
#   - one model, `demo`: a classifier of the breast cancer Wisconsin data set
#     (deploy/local/demo/data, CC BY 4.0), trained here, published with
#     `droverctl publish` (with its training data: the drift reference bins)
#     and rolled out to both agents;
#   - with DEMO=1 (the default) the workload (bin/drover-demo run): the data
#     set's rows through both agents, their labels as feedback, drift after
#     DRIFT_AFTER (45s), and each stage of the loop as it happens.
#
# Every run starts afresh: the previous run's var/ is moved to var.prev/.
# The processes' logs go to var/log/. Ctrl-C stops everything; each drains
# first.
set -euo pipefail
cd "$(dirname "$0")/../.."

started=${DROVER_STARTED:-$(date +%s.%N)}
DEMO=${DEMO:-1}
DRIFT_AFTER=${DRIFT_AFTER:-45s}
COLLECTOR_CONFIG=${COLLECTOR_CONFIG:-deploy/local/collector.yaml}
AGENT_CONFIG=${AGENT_CONFIG:-deploy/local/agent.yaml}
ctl() { ./bin/droverctl --collector http://127.0.0.1:7070 --token-file var/collector/admin.token "$@"; }

if [ -e var ]; then
	rm -rf var.prev && mv var var.prev
	echo "drover: the previous run's var/ is in var.prev/ (removed at the next run)"
fi
mkdir -p var/log var/demo var/models-a var/models-b

pids=()
# Stop the workload first, then the agents (their last telemetry reaches
# the collector), then the collector, which drains its spool into
# ClickHouse before it exits.
stopping=
cleanup() {
	trap - INT TERM EXIT
	stopping=1
	set +e
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null && wait "${pids[i]}" 2>/dev/null
	done
	true
}
trap cleanup INT TERM EXIT

./bin/drover-collector serve --config "$COLLECTOR_CONFIG" >var/log/collector.log 2>&1 &
pids+=($!)
collector=$!
for _ in $(seq 1 240); do
	./bin/droverctl --collector http://127.0.0.1:7070 status >/dev/null 2>&1 && [ -s var/collector/agent.token ] && break
	kill -0 "$collector" 2>/dev/null || { echo "drover: the collector exited; see var/log/collector.log:" >&2; tail -20 var/log/collector.log >&2; exit 1; }
	sleep 0.25
done
echo "drover: collector ready on http://127.0.0.1:7070 (ClickHouse on 127.0.0.1:9000 and :8123) after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $started}")s"

agent() { # name http grpc control
	./bin/drover-agent --config "$AGENT_CONFIG" --collector http://127.0.0.1:7070 \
		--model-dir "var/models-$1" --data-dir "var/agent-$1" --label "agent=$1" \
		--http-addr ":$2" --grpc-addr ":$3" --control-addr "127.0.0.1:$4" >"var/log/agent-$1.log" 2>&1 &
	pids+=($!)
}
agent a 8080 8081 8082
agent b 8090 8091 8092

./bin/drover-demo model var/demo/v1
for _ in $(seq 1 120); do
	[ "$(ctl -o json agents 2>/dev/null | grep -c '"agent":')" -ge 2 ] && break
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null || { echo "drover: a process exited; see var/log/:" >&2; tail -3 var/log/*.log >&2; exit 1; }
	done
	sleep 0.25
done
ctl publish demo var/demo/v1 --training-data var/demo/v1/training.csv --label benign \
	--author make-run --message "logistic regression on the breast cancer Wisconsin data set"
ctl rollout demo 1 --reason "make run" --wait --timeout 2m >/dev/null
echo "drover: demo v1 serving on both agents after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $started}")s"

cat <<'MSG'
drover: agents on http://localhost:8080 and :8090 (OIP REST), :8081 and :8091 (gRPC); collector admin on http://localhost:7070
  admin token (keep it secret): var/collector/admin.token; logs in var/log/
  ./bin/droverctl --token-file var/collector/admin.token status demo
  curl -s localhost:8080/v2/models/demo
  ClickHouse (embedded): 127.0.0.1:9000 (native), 127.0.0.1:8123 (HTTP), user drover,
    password in var/collector/clickhouse/password
MSG

if [ "$DEMO" != 0 ]; then
	./bin/drover-demo run --collector http://127.0.0.1:7070 --token-file var/collector/admin.token \
		--agents http://127.0.0.1:8080,http://127.0.0.1:8090 --drift-after "$DRIFT_AFTER" --started-at "$started" &
	pids+=($!)
fi
wait -n "${pids[@]}" || true
[ -n "$stopping" ] || echo "drover: a process exited; stopping the others (logs in var/log/)" >&2
