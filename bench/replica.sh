#!/usr/bin/env bash
# npm run bench:replica: a replica:3 LUN on a fresh 3-node cluster (three dist/qstora daemons on
# random loopback addresses, standard ports) measured side by side with tgt by
# ../shared/tools/peer-bench.sh, then a single-copy LUN of the same first node measured the same
# way right after, so both ratios come from one run. Both LUNs are served by node a (the
# coordinators of the replicated one live there); the replicated LUN's segments are placed on
# first write over the three archives, primaries spread over the nodes.
#   bash bench/replica.sh [peer-bench options, e.g. -t 5 -r 1 -w randwrite4k,qd1write4k]
# Environment: SIZE (of both LUNs, default 2G; peer-bench works on the first GiB at most),
# SEGMENT (segment size of the replicated LUN, default 256M), ONLY=replica|single
# (measure one LUN only), KEEP=1 (print the URLs and wait for Enter before tearing down, for
# profiling by hand), QSTORA (the executable, default dist/qstora: to compare two builds). Every
# daemon it started is stopped on exit, however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x dist/qstora ] || node_modules/.bin/bun pkg/build.ts
Q="${QSTORA:-$PWD/dist/qstora}"
. bench/lib.sh
DIR=$(mktemp -d /tmp/qstora-bench-replica.XXXXXX)
base=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))
last=$((RANDOM % 240 + 1))
ADDR_A=$base.$last ADDR_B=$base.$((last + 1)) ADDR_C=$base.$((last + 2))
IQN=iqn.2026-11.org.qstora:bench-replica
SIZE=${SIZE:-2G}
SEGMENT=${SEGMENT:-256M}
cleanup() {
  for n in c b a; do [ -d "$DIR/$n" ] && "$Q" stop --data-dir "$DIR/$n" >/dev/null 2>&1 || true; done
  # A daemon that did not stop in time: kill it by the pid it recorded (ours only).
  for n in c b a; do [ -f "$DIR/$n/qstora.pid" ] && kill -9 "$(cat "$DIR/$n/qstora.pid")" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$Q" init --archive "$DIR/a.img:8G" --address "$ADDR_A" --name bench-a --data-dir "$DIR/a" >/dev/null
token=$("$Q" token create --ttl 1h --data-dir "$DIR/a")
"$Q" join "$ADDR_A" --token "$token" --archive "$DIR/b.img:4G" --address "$ADDR_B" --name bench-b --data-dir "$DIR/b" >/dev/null
"$Q" join "$ADDR_A" --token "$token" --archive "$DIR/c.img:4G" --address "$ADDR_C" --name bench-c --data-dir "$DIR/c" >/dev/null
"$Q" target create $IQN --data-dir "$DIR/a" >/dev/null
"$Q" lun create --target $IQN --lun 0 --size "$SIZE" --segment-size "$SEGMENT" --redundancy replica:3 --data-dir "$DIR/a" >/dev/null
"$Q" lun create --target $IQN --lun 1 --size "$SIZE" --redundancy none --data-dir "$DIR/a" >/dev/null
REPLICA=iscsi://$ADDR_A:3260/$IQN/0
SINGLE=iscsi://$ADDR_A:3260/$IQN/1
# Place every segment of the replicated LUN before peer-bench prefills it: placement on first
# write goes through the metadata store, which a loaded machine can leave without quorum for a
# few seconds (the write fails, and peer-bench stops at its prefill's first error). Rounds until
# one writes the working set without an error, at most three.
LOAD=$(iscsi_load "$DIR")
for round in 1 2 3; do
  r=$("$LOAD" -m write -b 1M -q 8 -R "$(( $(iscsi-readcapacity16 -s "$REPLICA") < (1 << 30) ? $(iscsi-readcapacity16 -s "$REPLICA") : (1 << 30) ))" -P -t 0 "$REPLICA" 2>/dev/null || true)
  [ "$(load_field errors "$r")" = 0 ] && break
  echo "bench/replica.sh: placing the replicated LUN's segments: round $round had errors, again" >&2
done
echo "bench/replica.sh: nodes $ADDR_A $ADDR_B $ADDR_C; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ "${KEEP:-}" = 1 ]; then
  echo "replica:3 $REPLICA  single $SINGLE  pids a=$(cat "$DIR/a/qstora.pid") b=$(cat "$DIR/b/qstora.pid") c=$(cat "$DIR/c/qstora.pid"); Enter to stop" >&2
  read -r _
  exit 0
fi
if [ "${ONLY:-}" != single ]; then
  echo "== replica:3 LUN (3 nodes) vs tgt" >&2
  bash "$TOOLS/peer-bench.sh" "$@" "$REPLICA" | sed 's/^{/{"lun":"replica:3",/'
fi
if [ "${ONLY:-}" != replica ]; then
  echo "== single-copy LUN (node a) vs tgt" >&2
  bash "$TOOLS/peer-bench.sh" "$@" "$SINGLE" | sed 's/^{/{"lun":"none",/'
fi
echo "bench/replica.sh: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2
