#!/usr/bin/env bash
# A real two-node Ray cluster on this machine, then `ray job submit` runs a study on it, then both nodes stop.
#
#   cluster/local_two_nodes.sh [STUDY.yaml] [key=value ...]       (default: search_spaces/quickstart.yaml)
#
# Node 1 is the head (`ray start --head`, dashboard and job server on 127.0.0.1); node 2 joins it with
# `ray start --address` and resources of its own ({"node2": 1}, NER_RAY_NODE2_CPUS CPUs). Each node runs
# under `ray start --block` in its own process group, so stopping them stops only this cluster's processes
# (never another Ray on the machine, as `ray stop` would). The study's output goes to NER_RAY_JOB_OUTPUT
# (default: runs/two_nodes) in this checkout; NER_RAY_AGENT_WAIT_S bounds the wait for the head's job agent
# (default 300 s). Exit status: the job's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
study=${1:-search_spaces/quickstart.yaml}
shift || true
port=${NER_RAY_HEAD_PORT:-6391}
dashboard_port=${NER_RAY_DASHBOARD_PORT:-8271}
head_cpus=${NER_RAY_HEAD_CPUS:-1}
node2_cpus=${NER_RAY_NODE2_CPUS:-1}
output=$(realpath -m "${NER_RAY_JOB_OUTPUT:-runs/two_nodes}")
temp=$(mktemp -d /tmp/ner_ray_two_nodes.XXXX)
export RAY_TRAIN_V2_ENABLED=1
# Ray's token authentication: both nodes, the CLI and the job client use the token in ~/.ray/auth_token
# (generated on first use).
export RAY_AUTH_MODE=token
ray get-auth-token --generate > /dev/null

stop_nodes() {
  for pid in ${node2_pid:-} ${head_pid:-}; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in ${node2_pid:-} ${head_pid:-}; do
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  echo "two-node cluster stopped"
}
trap stop_nodes EXIT

setsid ray start --head --block --port "$port" --num-cpus "$head_cpus" --include-dashboard true \
  --dashboard-host 127.0.0.1 --dashboard-port "$dashboard_port" --node-ip-address 127.0.0.1 \
  --temp-dir "$temp" --disable-usage-stats > "$temp/head.log" 2>&1 &
head_pid=$!
for _ in $(seq 120); do
  kill -0 "$head_pid" 2> /dev/null || { echo "the head failed to start:"; tail -20 "$temp/head.log"; exit 1; }
  ray status --address "127.0.0.1:$port" > /dev/null 2>&1 && break
  sleep 1
done
setsid ray start --block --address "127.0.0.1:$port" --num-cpus "$node2_cpus" --resources '{"node2": 1}' \
  --node-ip-address 127.0.0.1 --disable-usage-stats > "$temp/node2.log" 2>&1 &
node2_pid=$!
alive=0
for _ in $(seq 60); do
  kill -0 "$node2_pid" 2> /dev/null || { echo "node 2 failed to start:"; tail -20 "$temp/node2.log"; exit 1; }
  alive=$(ray list nodes --address "127.0.0.1:$port" --filter state=ALIVE 2> /dev/null | grep -c ALIVE || true)
  [ "$alive" -ge 2 ] && break
  sleep 1
done
[ "$alive" -ge 2 ] || { echo "the second node did not join"; tail -20 "$temp/node2.log"; exit 1; }
ray status --address "127.0.0.1:$port"

mkdir -p "$output"
# Both nodes share this machine's Python environment and files, so the job needs no working_dir upload
# (on a real cluster, pass --runtime-env cluster/runtime_env.yaml instead). The head's job agent starts a
# little after the node answers `ray status` (minutes on a busy 2-core machine): until it is up, the job server
# refuses the submission ("No available agent to submit job") without starting anything, so that refusal is
# retried for up to NER_RAY_AGENT_WAIT_S seconds (default 300).
deadline=$((SECONDS + ${NER_RAY_AGENT_WAIT_S:-300}))
attempt=0
while [ "$SECONDS" -lt "$deadline" ]; do
  attempt=$((attempt + 1))
  set +e
  ray job submit --address "http://127.0.0.1:$dashboard_port" \
    --runtime-env-json '{"env_vars": {"RAY_TRAIN_V2_ENABLED": "1"}}' -- \
    python -m ner_ray.tune "$(realpath "$study")" "train.output_dir=$output" "$@" 2>&1 | tee "$temp/submit.log"
  status=${PIPESTATUS[0]}
  set -e
  grep -q "No available agent" "$temp/submit.log" || exit "$status"
  echo "the head's job agent is not ready yet (attempt $attempt, $((deadline - SECONDS)) s left); submitting again in 1 s"
  sleep 1
done
echo "the head's job agent did not come up within ${NER_RAY_AGENT_WAIT_S:-300} s"
exit 1
