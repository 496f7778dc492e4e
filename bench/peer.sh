#!/usr/bin/env bash
# npm run bench: a fresh single-node LUN from dist/qstora, measured side by side with tgt by
# ../shared/tools/peer-bench.sh (which prints the ours/tgt table on stderr and JSON on stdout).
# Extra arguments go to peer-bench.sh (e.g. -t 5 -r 1 -w randread4k).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x dist/qstora ] || node_modules/.bin/bun pkg/build.ts
. bench/lib.sh
DIR=$(mktemp -d /tmp/qstora-bench.XXXXXX)
ADDR=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
IQN=iqn.2026-11.org.qstora:bench
cleanup() { dist/qstora stop --data-dir "$DIR/data" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT
single_node dist/qstora "$DIR/data" "$ADDR" "$IQN"
bash "$TOOLS/peer-bench.sh" "$@" "iscsi://$ADDR:3260/$IQN/0"
