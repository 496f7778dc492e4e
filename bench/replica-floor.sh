#!/usr/bin/env bash
# npm run bench:replica-floor: how far qstora's 1 MiB replicated writes are from what this
# machine's kernel allows. Runs bench/replica-floor.c (the same socket and page-cache copies as a
# replica:3 write over three processes, nothing else) for SECS seconds, then bench/replica.sh's
# seqwrite1m (replica:3 beside tgt, peer-bench, ROUNDS rounds), then the floor again, and prints
# the three figures side by side with the ratios ours/floor and tgt/floor.
#   bash bench/replica-floor.sh            SECS=8 ROUNDS=2 by default
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=${SECS:-8}
ROUNDS=${ROUNDS:-2}
DIR=$(mktemp -d /tmp/qstora-floor.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
gcc -O2 -o "$DIR/replica-floor" bench/replica-floor.c
floor() { load_field floor_iops "$("$DIR/replica-floor" $((46000 + RANDOM % 3000)) "$SECS" "$DIR")"; }
f1=$(floor)
echo "bench/replica-floor.sh: floor $f1 IOPS (1 MiB, 8 in flight)" >&2
r=$(ONLY=replica bash bench/replica.sh -t "$SECS" -r "$ROUNDS" -w seqwrite1m | grep '"seqwrite1m"')
ours=$(load_field ours "$r")
tgt=$(load_field tgt "$r")
f2=$(floor)
echo "bench/replica-floor.sh: floor $f2 IOPS" >&2
awk -v f1="$f1" -v f2="$f2" -v o="$ours" -v t="$tgt" 'BEGIN {
  f = (f1 + f2) / 2;
  printf "1 MiB writes, IOPS:  floor %d (%d, %d)  replica:3 %d  tgt %d   ours/floor %.2f  tgt/floor %.2f  ours/tgt %.2f\n", f, f1, f2, o, t, o / f, t / f, o / t > "/dev/stderr";
  printf "{\"floor_iops\":%d,\"replica_iops\":%s,\"tgt_iops\":%s,\"ours_per_floor\":%.3f,\"tgt_per_floor\":%.3f}\n", f, o, t, o / f, t / f }'
