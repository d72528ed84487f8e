#!/usr/bin/env bash
# Starts a three-node JetStream cluster on this machine for development, with the same
# ops/nats/cluster.conf that production and the test suite use. Stops it on Ctrl-C.
#
#   ./ops/dev-cluster.sh                 # servers on 127.0.0.1:4222, :4223, :4224
#   sv0 --log nats://127.0.0.1:4222,127.0.0.1:4223,127.0.0.1:4224 --log-replicas 3 demo
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${SV0_NATS_SERVER:-$(./ops/install-nats-server.sh)}"
store="${SV0_DEV_CLUSTER_DIR:-target/dev-cluster}"
mkdir -p "$store"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for n in 1 2 3; do
  others=()
  for m in 1 2 3; do [ "$m" = "$n" ] || others+=("nats-route://127.0.0.1:$((6221 + m))"); done
  SV0_NATS_NAME="sv0-$n" \
  SV0_NATS_LISTEN="127.0.0.1:$((4221 + n))" \
  SV0_NATS_MONITOR="127.0.0.1:$((8221 + n))" \
  SV0_NATS_STORE="$PWD/$store/n$n" \
  SV0_NATS_CLUSTER="127.0.0.1:$((6221 + n))" \
  SV0_NATS_ROUTE_A="${others[0]}" \
  SV0_NATS_ROUTE_B="${others[1]}" \
    "$binary" -c ops/nats/cluster.conf >"$store/n$n.log" 2>&1 &
  pids+=("$!")
done
echo "cluster up: nats://127.0.0.1:4222,127.0.0.1:4223,127.0.0.1:4224 (logs in $store); Ctrl-C stops it"
wait
