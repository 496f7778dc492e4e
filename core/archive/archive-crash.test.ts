// Crash test: a child process (crash-writer.ts) writes, unmaps and flushes random ranges of a unit
// and is SIGKILLed at random moments, many times. After each kill the archive is reopened and
// every page must read as exactly what the logged operations say: all operations before the last
// fully there, and each page the last one touched either before or after it. Never a checksum
// error. QSTORA_CRASH_ROUNDS sets the rounds per backend (default 40); a failure prints its seed.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { Archive } from "./archive.ts";
import { clusterId, volumeId } from "./archive.conformance.ts";
import { loopDeviceTarget, pattern, seededRandom, sparseFileTarget, tempPath, unwrap, type TargetMaker } from "./test-targets.ts";

const rounds = Number(process.env["QSTORA_CRASH_ROUNDS"] ?? 40);
const pages = 64;
const spanBytes = pages * 4096;
const writer = `${import.meta.dir}/crash-writer.ts`;

interface Op {
  kind: "w" | "u" | "f";
  offsetBytes: number;
  lengthBytes: number;
  index: number;
}

function parseLog(text: string): { ops: Op[]; resolvedAtOpen: number } {
  const ops: Op[] = [];
  let resolvedAtOpen = 0;
  for (const line of text.split("\n")) {
    const [kind, a, b, c] = line.split(" ");
    if (kind === "open") resolvedAtOpen += Number(a);
    else if (kind === "error") throw new Error(`writer failed: ${line}`);
    else if (kind === "w" || kind === "u" || kind === "f") ops.push({ kind, offsetBytes: Number(a), lengthBytes: Number(b), index: Number(c) });
  }
  return { ops, resolvedAtOpen };
}

function apply(model: Uint8Array, op: Op): void {
  if (op.kind === "w") model.set(pattern(op.lengthBytes, op.index), op.offsetBytes);
  else if (op.kind === "u") model.fill(0, op.offsetBytes, op.offsetBytes + op.lengthBytes);
}

async function crashRounds(make: TargetMaker, seed: number): Promise<{ kills: number; opsTotal: number; resolvedPages: number; midOpKills: number }> {
  const target = make(64 << 20);
  const rnd = seededRandom(seed);
  try {
    const a = Archive.create({ path: target.path, clusterId, ...(target.sizeBytes === undefined ? {} : { sizeBytes: target.sizeBytes }) });
    unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: 1 << 20 }));
    a.close();
    let model = new Uint8Array(spanBytes);
    let opsTotal = 0;
    let resolvedPages = 0;
    let midOpKills = 0;
    for (let round = 0; round < rounds; round++) {
      const logPath = tempPath(`crash-${round}.log`);
      const child = Bun.spawn([process.execPath, writer, target.path, logPath, String(seed * 1000 + round), String(round * 10_000_000), String(pages)], { stderr: "pipe", stdout: "ignore" });
      // Wait for the writer to be running, then let it write for a random while.
      const started = Date.now();
      while (!(existsSync(logPath) && statSync(logPath).size > 0)) {
        if (child.exitCode !== null) throw new Error(`seed ${seed} round ${round}: writer exited early: ${await new Response(child.stderr).text()}`);
        if (Date.now() - started > 10_000) throw new Error(`seed ${seed} round ${round}: writer did not start within 10 s`);
        await Bun.sleep(1);
      }
      await Bun.sleep(Math.floor(rnd() * 40));
      child.kill("SIGKILL");
      await child.exited;
      const { ops } = parseLog(readFileSync(logPath, "utf8"));
      opsTotal += ops.length;
      const before = model.slice();
      for (const op of ops.slice(0, -1)) apply(before, op);
      const after = before.slice();
      const last = ops.at(-1);
      if (last !== undefined) apply(after, last);
      const b = Archive.open(target.path, { clusterId });
      resolvedPages += b.openReport.resolvedPages;
      if (b.openReport.resolvedPages > 0) midOpKills++;
      const u = b.openUnit(0);
      if (u === undefined) throw new Error("unit 0 lost");
      const observed = new Uint8Array(spanBytes);
      for (let p = 0; p < pages; p++) {
        const r = u.read(p * 4096, 4096);
        if (!r.ok) throw new Error(`seed ${seed} round ${round}: page ${p} read failed: ${r.code} ${r.message}`);
        const got = Buffer.from(r.value);
        const old = Buffer.from(before.subarray(p * 4096, (p + 1) * 4096));
        const neu = Buffer.from(after.subarray(p * 4096, (p + 1) * 4096));
        if (!got.equals(old) && !got.equals(neu)) throw new Error(`seed ${seed} round ${round}: page ${p} holds neither its contents before nor after the last operation (${JSON.stringify(last)})`);
        observed.set(r.value, p * 4096);
      }
      model = observed;
      // Leave as a crash would: the next writer's open recovers again.
      b.abandon();
    }
    return { kills: rounds, opsTotal, resolvedPages, midOpKills };
  } finally {
    target.cleanup();
  }
}

describe("archive crash consistency under SIGKILL", () => {
  for (const [name, make] of [["sparse file", sparseFileTarget], ["loop block device", loopDeviceTarget]] as const) {
    test(`${name}: every page reads as its old or new contents after each kill, never a checksum error`, async () => {
      const seed = Number(process.env["QSTORA_CRASH_SEED"] ?? Date.now() % 100000);
      const r = await crashRounds(make, seed);
      console.log(`crash ${name}: seed ${seed}, ${r.kills} kills, ${r.opsTotal} operations, ${r.midOpKills} kills needed recovery (${r.resolvedPages} pages resolved)`);
      expect(r.opsTotal).toBeGreaterThan(r.kills);
    }, 300_000);
  }
});
