// Node-to-node transport benchmark: the same peer driver over each transport ("mac" with GMAC,
// "mac" with HMAC-SHA-256, "tls"), a peer listener in a second process, on loopback. Measures
// 4 KiB writes acknowledged one at a time (round-trip latency, QD1) and 32 at a time
// (throughput, QD32), 1 MiB writes 1 and 8 at a time (throughput), and whether 1 MiB echoed both
// ways at once survives. Rounds alternate the transports so that machine noise hits all alike;
// medians are printed, with ratios to the first transport.
//
//   node_modules/.bin/bun core/net/transport.bench.ts [--seconds 1] [--rounds 3]
import { parseArgs } from "node:util";
import { randomLoopback } from "../../test/helpers/node.ts";
import { silentLogger } from "../util/log.ts";
import { connectionLimitsDefault, type RequestOutcome, type RequestSpec } from "./connection.ts";
import { decodeReadResponse, decodeWriteResponse, messageType, uuidToBytes, writeRequestFrame } from "./messages.ts";
import { PeerClient, type PeerTransport } from "./peer.ts";
import { testCluster, testNodeTls } from "./test-certs.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "1" }, rounds: { type: "string", default: "3" } } });
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);

const host = randomLoopback();
const ca = testCluster("bench");
const serverTls = testNodeTls(ca, "bench-server", host);
const clientTls = testNodeTls(ca, "bench-client", host);
const transports: Array<[string, PeerTransport]> = [
  ["mac gmac-aes256", { kind: "mac", mac: "gmac-aes256" }],
  ["mac hmac-sha256", { kind: "mac", mac: "hmac-sha256" }],
  ["tls", { kind: "tls" }],
];

async function startServer(transport: PeerTransport, mode: "ack" | "echo"): Promise<{ port: number; stop(): void }> {
  const port = 20000 + Math.floor(Math.random() * 30000);
  const p = Bun.spawn([process.execPath, `${import.meta.dir}/peer-fixture.ts`], {
    env: { ...process.env, PEER_MODE: mode, PEER_TRANSPORT: JSON.stringify(transport), PEER_HOST: host, PEER_PORT: String(port), PEER_CA: ca.certPem, PEER_CERT: serverTls.certPem, PEER_KEY: serverTls.keyPem },
    stdout: "pipe",
    stderr: "inherit",
  });
  const first = await p.stdout.getReader().read();
  if (!new TextDecoder().decode(first.value).startsWith("ready")) throw new Error("bench server did not start");
  return { port, stop: () => p.kill(9) };
}

async function openClient(transport: PeerTransport, port: number): Promise<PeerClient> {
  const c = new PeerClient({ host, port, tls: clientTls, logger: silentLogger, transport, limits: { ...connectionLimitsDefault, requestTimeoutMs: 30_000 } });
  for (let i = 0; i < 200 && c.state !== "open"; i++) await Bun.sleep(10);
  if (c.state !== "open") throw new Error(`no connection: ${c.lastError}`);
  return c;
}

const volumeId = uuidToBytes("00112233-4455-6677-8899-aabbccddeeff");
function write(data: Uint8Array): RequestSpec<number> {
  return {
    build: (id, tagBytes) => writeRequestFrame(id, { volumeId, segment: 0, epoch: 1, sequence: id, offsetBytes: 0, data }, tagBytes),
    decode: (f) => {
      const d = decodeWriteResponse(f.payload);
      return d.ok ? { ok: true, value: d.value.status } : d;
    },
    responseType: messageType.write,
  };
}
function echo(data: Uint8Array): RequestSpec<number> {
  return {
    build: (id, tagBytes) => writeRequestFrame(id, { volumeId, segment: 0, epoch: 1, sequence: id, offsetBytes: 0, data }, tagBytes),
    decode: (f) => {
      const d = decodeReadResponse(f.payload);
      return d.ok ? { ok: true, value: d.value.data.byteLength } : d;
    },
    responseType: messageType.read,
  };
}

interface Result {
  ops: number;
  seconds: number;
  latenciesUs: number[];
  failed: string | null;
}

/** Runs `depth` request loops for `seconds`; each loop sends its next request when the last is answered. */
async function load(c: PeerClient, spec: () => RequestSpec<number>, depth: number, durationS: number): Promise<Result> {
  const end = performance.now() + durationS * 1000;
  const latenciesUs: number[] = [];
  let failed: string | null = null;
  const started = performance.now();
  const loop = async (): Promise<void> => {
    while (failed === null && performance.now() < end) {
      const t = performance.now();
      const r: RequestOutcome<number> = await c.request(spec());
      if (!r.ok) failed = `${r.reason}: ${r.message}`;
      else latenciesUs.push((performance.now() - t) * 1000);
    }
  };
  await Promise.all(Array.from({ length: depth }, loop));
  return { ops: latenciesUs.length, seconds: (performance.now() - started) / 1000, latenciesUs, failed };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};
const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? NaN;
};

const block4k = new Uint8Array(4096).fill(0x5a);
const block1m = new Uint8Array(1 << 20).fill(0xa5);
const workloads = [
  { name: "4 KiB write, QD1: median RTT µs", spec: () => write(block4k), depth: 1, figure: (r: Result) => median(r.latenciesUs), unit: "µs" },
  { name: "4 KiB write, QD1: p99 RTT µs", spec: () => write(block4k), depth: 1, figure: (r: Result) => percentile(r.latenciesUs, 0.99), unit: "µs" },
  { name: "4 KiB write, QD32: MiB/s", spec: () => write(block4k), depth: 32, figure: (r: Result) => (r.ops * 4096) / r.seconds / 2 ** 20, unit: "MiB/s" },
  { name: "1 MiB write, QD1: MiB/s", spec: () => write(block1m), depth: 1, figure: (r: Result) => r.ops / r.seconds, unit: "MiB/s" },
  { name: "1 MiB write, QD8: MiB/s", spec: () => write(block1m), depth: 8, figure: (r: Result) => r.ops / r.seconds, unit: "MiB/s" },
];

const figures = new Map<string, number[]>();
const failures: string[] = [];
for (let round = 0; round < rounds; round++) {
  for (const [name, transport] of transports) {
    const server = await startServer(transport, "ack");
    try {
      const c = await openClient(transport, server.port);
      for (const w of workloads) {
        // The two QD1 rows share one run.
        const r = await load(c, w.spec, w.depth, w.name.includes("p99") ? 0 : seconds);
        if (w.name.includes("p99")) continue;
        if (r.failed !== null) failures.push(`${name} ${w.name} (round ${round + 1}): ${r.failed}`);
        const key = `${w.name}|${name}`;
        figures.set(key, [...(figures.get(key) ?? []), w.figure(r)]);
        if (w.depth === 1 && w.spec === workloads[0]?.spec) figures.set(`4 KiB write, QD1: p99 RTT µs|${name}`, [...(figures.get(`4 KiB write, QD1: p99 RTT µs|${name}`) ?? []), percentile(r.latenciesUs, 0.99)]);
      }
      c.close();
    } finally {
      server.stop();
    }
  }
}

// 1 MiB both ways at once (writes out, the data echoed back): does the connection survive?
const both: string[] = [];
for (const [name, transport] of transports) {
  const server = await startServer(transport, "echo");
  try {
    const c = await openClient(transport, server.port);
    const r = await load(c, () => echo(block1m), 8, seconds);
    both.push(`${name.padEnd(16)} ${r.failed === null ? `${(r.ops / r.seconds).toFixed(0)} MiB/s each way` : `FAILED after ${r.ops} MiB: ${r.failed}`}`);
    c.close();
  } finally {
    server.stop();
  }
}

console.log(`transport benchmark: loopback ${host}, ${rounds} rounds of ${seconds} s, medians; ratio = this / ${transports[0]?.[0]}`);
for (const w of workloads) {
  const row = transports.map(([name]) => median(figures.get(`${w.name}|${name}`) ?? []));
  const base = row[0] as number;
  console.log(`${w.name.padEnd(34)} ${transports.map(([name], i) => `${name}: ${(row[i] as number).toFixed(w.unit === "µs" ? 0 : 1)} (${((row[i] as number) / base).toFixed(2)}×)`).join("   ")}`);
}
console.log("1 MiB both ways, QD8:");
for (const line of both) console.log(`  ${line}`);
for (const f of failures) console.log(`FAILED ${f}`);
