#!/usr/bin/env bash
# CPU used by the first node of an idle five-node cluster (heartbeats, status reads), in clock
# ticks over a window: the cost of membership when nothing else happens. Nodes on loopback
# addresses 127.45.0.1-5 with the standard ports, data under a temporary directory, all stopped
# and removed at the end. Usage: bash bench/idle-cluster-cpu.sh [SECONDS] (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
Q="$PWD/dist/qstora"
[ -x "$Q" ] || { echo "build first: node_modules/.bin/bun pkg/build.ts" >&2; exit 1; }
secs=${1:-30}
base=$(mktemp -d /tmp/qstora-idle-XXXXXX)
cleanup() { for d in "$base"/n*; do [ -d "$d" ] && "$Q" stop --data-dir "$d" >/dev/null 2>&1 || true; done; rm -rf "$base"; }
trap cleanup EXIT
"$Q" init --archive "$base/a1.img:1G" --address 127.45.0.1 --name node-1 --data-dir "$base/n1" >/dev/null
token=$("$Q" token create --data-dir "$base/n1")
for i in 2 3 4 5; do
  "$Q" join 127.45.0.1 --token "$token" --archive "$base/a$i.img:1G" --address "127.45.0.$i" --name "node-$i" --data-dir "$base/n$i" >/dev/null
done
sleep 3
pid=$(cat "$base/n1/qstora.pid")
t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
sleep "$secs"
t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
echo "node-1 of an idle 5-node cluster: $((t1 - t0)) CPU ticks in ${secs} s ($(getconf CLK_TCK) ticks/s)"
