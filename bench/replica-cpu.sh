#!/usr/bin/env bash
# npm run bench:replica-cpu: the CPU each node of a replicated LUN spends per I/O, to say where
# a write's cost lies (node a, the primary's node, against the secondaries) and how it changes
# with the queue depth. On this shared 2-core machine it moves between runs too (by up to 1.5x
# for one build minutes apart, as IOPS and tgt do): compare two builds in alternating runs
# (QSTORA=), several each. Sets up bench/replica.sh's cluster (KEEP=1: three
# daemons, a replica:3 LUN served by node a), then measures each daemon's utime+stime from
# /proc: idle for IDLE seconds, then during each workload of iscsi-load for SECS seconds.
#   bash bench/replica-cpu.sh             one line per measurement, then one JSON line each
# Environment: SECS (per workload, default 8), IDLE (default 8), SIZE and SEGMENT (of the LUN,
# default 1G and 256M), QSTORA (the executable, default dist/qstora), and any variable the
# daemons should see (they inherit this environment).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-8}
IDLE=${IDLE:-8}
. bench/lib.sh
OUT=$(mktemp -d /tmp/qstora-bench-cpu.XXXXXX)
LOAD=$(iscsi_load "$OUT")
mkfifo "$OUT/go"
exec 3<>"$OUT/go"
SIZE=${SIZE:-1G} SEGMENT=${SEGMENT:-256M} KEEP=1 bash bench/replica.sh <&3 2>"$OUT/setup.log" >/dev/null &
setup=$!
finish() {
  echo >&3 || true
  wait "$setup" 2>/dev/null || true
  rm -rf "$OUT"
}
trap finish EXIT
for _ in $(seq 1 600); do
  grep -q "Enter to stop" "$OUT/setup.log" 2>/dev/null && break
  kill -0 "$setup" 2>/dev/null || { cat "$OUT/setup.log" >&2; exit 1; }
  sleep 0.5
done
URL=$(grep -o 'replica:3 iscsi://[^ ]*' "$OUT/setup.log" | cut -d' ' -f2)
read -r A B C < <(grep -o 'pids a=[0-9]* b=[0-9]* c=[0-9]*' "$OUT/setup.log" | sed 's/[a-z]*=//g; s/pids //')
tick=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
snapshot() { echo "$(cpu "$A") $(cpu "$B") $(cpu "$C")"; }

read -r a0 b0 c0 < <(snapshot)
sleep "$IDLE"
read -r a1 b1 c1 < <(snapshot)
awk -v t="$tick" -v s="$IDLE" -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v c=$((c1 - c0)) \
  'BEGIN { k = 1000 / t / s; printf "idle                CPU ms per s:  a %6.1f  b %6.1f  c %6.1f\n", a * k, b * k, c * k;
           printf "{\"workload\":\"idle\",\"cpu_ms_per_s\":{\"a\":%.1f,\"b\":%.1f,\"c\":%.1f}}\n", a * k, b * k, c * k > "/dev/stderr" }' 2>>"$OUT/json"
for w in "randwrite 4k 32" "randwrite 4k 1" "write 1M 8"; do
  read -r mode bs qd <<<"$w"
  read -r a0 b0 c0 < <(snapshot)
  r=$("$LOAD" -m "$mode" -b "$bs" -q "$qd" -t "$SECS" -R 1G "$URL" 2>/dev/null || true)
  read -r a1 b1 c1 < <(snapshot)
  awk -v t="$tick" -v w="$mode-$bs-qd$qd" -v ios="$(load_field ios "$r")" -v iops="$(load_field iops "$r")" -v p50="$(load_field p50_us "$r")" -v errors="$(load_field errors "$r")" \
    -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v c=$((c1 - c0)) \
    'BEGIN { if (ios == 0) { printf "%-19s no I/O completed\n", w; exit } k = 1e6 / t / ios;
             printf "%-19s %6d IOPS  p50 %6d us  CPU us per I/O:  a %7.1f  b %7.1f  c %7.1f  all %7.1f  (errors %d)\n", w, iops, p50, a * k, b * k, c * k, (a + b + c) * k, errors;
             printf "{\"workload\":\"%s\",\"iops\":%d,\"p50_us\":%d,\"cpu_us_per_io\":{\"a\":%.1f,\"b\":%.1f,\"c\":%.1f,\"all\":%.1f},\"errors\":%d}\n", w, iops, p50, a * k, b * k, c * k, (a + b + c) * k, errors > "/dev/stderr" }' 2>>"$OUT/json"
done
cat "$OUT/json"
