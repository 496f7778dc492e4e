#!/usr/bin/env bash
# The test command (npm test): installs missing system tools, builds dist/qstora, runs every test
# (unit tests beside the code, integration tests in test/) and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh || exit 1
BUN=node_modules/.bin/bun
[ -x "$BUN" ] || { echo "run npm install first (Bun comes from the npm package bun)" >&2; exit 1; }
"$BUN" pkg/build.ts || { echo "build failed" >&2; exit 1; }
node_modules/.bin/tsc --noEmit -p . || { echo "type check failed" >&2; exit 1; }
log=$(mktemp)
"$BUN" test --timeout 600000 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
pass=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
fail=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
skip=$(grep -Eo '^ *[0-9]+ skip$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
# Each failure's own output (its error and the lines before it, at most 60) once more at the end:
# a CI record that keeps only the tail of a long run still says why.
if [ "$fail" != 0 ]; then
  echo "== what the failed tests printed"
  awk '/^\(pass\)|^\(skip\)|^\(todo\)|^[^ ]*\.test\.ts:$/ { n = 0; next }
       /^\(fail\)/ { s = n > 60 ? n - 60 : 0; for (i = s; i < n; i++) print buf[i % 60]; print; print ""; n = 0; next }
       { buf[n % 60] = $0; n++ }' "$log" | cut -c1-600
fi
rm -f "$log"
echo "${pass} passed, ${fail} failed, ${skip} skipped"
exit "$status"
