#!/usr/bin/env bash
# bench/memory.sh: a single-node daemon's resident memory (VmRSS) idle, at its peak under 4 KiB
# random read/write at QD32 and under 1 MiB writes at QD8 (SECS seconds each, default 12), and
# SECS seconds after the load stopped. A fresh data directory with a 4 GiB file archive and a
# 2 GiB LUN on a random loopback address; removed at the end. Any variable given to it goes to
# the daemon (e.g. MIMALLOC_PURGE_DELAY=10 for the allocator's default, core/node/allocator.ts).
#   bash bench/memory.sh [VAR=value...]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=${SECS:-12}
Q=${QSTORA:-dist/qstora}
D=$(mktemp -d /tmp/qstora-bench-memory.XXXXXX)
LOAD=$(iscsi_load "$D")
trap '"$Q" stop --data-dir "$D/d" >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
IP=127.0.$((RANDOM % 200 + 20)).$((RANDOM % 200 + 20))
IQN=iqn.2026-11.org.qstora:bench-memory
single_node "$Q" "$D/d" "$IP" "$IQN" "$@"
P=$(cat "$D/d/qstora.pid")
URL=iscsi://$IP:3260/$IQN/0
rss() { awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$P/status"; }
peak() { local m=0 r; while kill -0 "$1" 2>/dev/null; do r=$(rss); [ "$r" -gt "$m" ] && m=$r; sleep 1; done; echo "$m"; }
echo "idle              $(rss) MiB"
"$LOAD" -m randrw -q 32 -t "$SECS" -R 1G "$URL" >"$D/l1" 2>/dev/null &
echo "randrw 4k QD32    peak $(peak $!) MiB at $(load_field iops "$(cat "$D/l1")") IOPS"
"$LOAD" -m write -b 1M -q 8 -t "$SECS" -R 1G "$URL" >"$D/l2" 2>/dev/null &
echo "write 1M QD8      peak $(peak $!) MiB at $(load_field iops "$(cat "$D/l2")") IOPS"
sleep "$SECS"
echo "${SECS} s after       $(rss) MiB"
