// Measures the pauses an initiator sees, from outside it: every `sampleMs` it reads how many
// bytes process PID's TCP connections have received (ss -tinp: bytes_received, the kernel's
// count; every completion arrives there) and calls a pause every stretch in which they grew by
// less than `minBytes` per sample (a NOP-In ping is 48 bytes, a write's response 48, one 4 KiB
// read's more than 4 KiB). Runs as a process of its own, so that the test's synchronous commands
// (spawnSync) can't stall the sampling; with a WRAP prefix (ip netns exec NS) ss runs in that
// namespace. Writes {longestPauseMs, pauses: [{atMs, at, ms}]} (pauses of a second or more;
// atMs from the first sample, at the wall clock's ms of the last progress before it) to OUT when
// PID exits; a pause still open then is not counted (the initiator's last moments are its logout).
//
//   bun test/helpers/progress-sampler.ts PID OUT SAMPLE_MS MIN_BYTES [WRAP...]
import { existsSync, writeFileSync } from "node:fs";

const [pidText, out, sampleText, minText, ...wrap] = process.argv.slice(2);
if (pidText === undefined || out === undefined || sampleText === undefined || minText === undefined) throw new Error("usage: progress-sampler.ts PID OUT SAMPLE_MS MIN_BYTES [WRAP...]");
const sampleMs = Number(sampleText);
const minBytes = Number(minText);
const owner = `pid=${pidText},`;

function receivedBytes(): number {
  const r = Bun.spawnSync([...wrap, "ss", "-tinpH", "state", "established"], { stdout: "pipe", stderr: "ignore" });
  const lines = r.stdout.toString().split("\n");
  let total = 0;
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!(lines[i] ?? "").includes(owner)) continue;
    const m = /bytes_received:(\d+)/.exec(lines[i + 1] ?? "");
    if (m !== null) total += Number(m[1]);
  }
  return total;
}

const alive = () => existsSync(`/proc/${pidText}`);
const t0 = performance.now();
let last = receivedBytes();
let progressAt = t0;
let progressWall = Date.now();
let longestPauseMs = 0;
const pauses: Array<{ atMs: number; at: number; ms: number }> = [];
const endPause = (ms: number) => {
  if (ms >= 1000) pauses.push({ atMs: Math.round(progressAt - t0), at: progressWall, ms: Math.round(ms) });
  longestPauseMs = Math.max(longestPauseMs, ms);
};
while (alive()) {
  await Bun.sleep(sampleMs);
  const now = performance.now();
  const bytes = receivedBytes();
  // A connection that closed takes its count with it: a drop is not progress, only a new base.
  if (bytes - last >= minBytes) {
    endPause(now - sampleMs - progressAt);
    progressAt = now;
    progressWall = Date.now();
  }
  last = bytes;
}
writeFileSync(out, JSON.stringify({ longestPauseMs: Math.round(longestPauseMs), pauses }));
