// An in-memory BlockDevice and an iSCSI target over it, for tests and manual runs of the protocol
// layer without storage underneath. As a program it serves iqn.2026-11.org.qstora:test with LUN 0
// of 64 MiB on 127.0.0.1:PORT (default 3260) until interrupted:
//   bun test/iscsi-mem-target.ts [PORT] [--async]
// It never writes to disk; it holds the whole LUN in memory, so keep LUNs small.
import { assert } from "../core/util/assert.ts";
import { createLogger, silentLogger, type Logger } from "../core/util/log.ts";
import type { BlockDevice, BlockDeviceInfo, IoResult, MaybePromise } from "../core/volume/block-device.ts";
import { startIscsiServer, type IscsiServer, type TargetRegistry } from "../core/iscsi/server.ts";
import type { ChapSecrets } from "../core/iscsi/login.ts";

export const memTargetIqn = "iqn.2026-11.org.qstora:test";
const defaultLunBytes = 64 << 20;

/** A RAM disk. With `async`, every answer is a Promise (the slow path of the SCSI layer). */
export class MemoryBlockDevice implements BlockDevice {
  readonly bytes: Uint8Array;
  private details: BlockDeviceInfo;
  flushes = 0;
  fuaWrites = 0;
  /** Byte offsets that read back as MEDIUM ERROR (a failing checksum, for tests). */
  readonly badOffsets = new Set<number>();
  /** One byte per logical block: 1 when the block is deallocated (UNMAP), for GET LBA STATUS. */
  readonly deallocated: Uint8Array;

  constructor(options: { sizeBytes: number; blockBytes?: number; uuid?: string; async?: boolean; writeCache?: boolean }) {
    const blockBytes = options.blockBytes ?? 512;
    assert(options.sizeBytes % blockBytes === 0, "size must be whole blocks");
    this.bytes = new Uint8Array(options.sizeBytes);
    this.deallocated = new Uint8Array(options.sizeBytes / blockBytes);
    this.details = {
      uuid: options.uuid ?? "5f0c2a9e-1b7d-4c3e-9a51-0d2c6e8f7a41",
      name: "mem",
      sizeBytes: options.sizeBytes,
      blockBytes,
      physicalBlockBytes: 4096,
      writeCache: options.writeCache ?? true,
      thin: false,
    };
    this.async = options.async ?? false;
  }
  private readonly async: boolean;

  private answer<T>(r: IoResult<T>): MaybePromise<IoResult<T>> {
    return this.async ? new Promise((resolve) => setTimeout(() => resolve(r), 0)) : r;
  }

  info(): BlockDeviceInfo {
    return this.details;
  }

  read(offsetBytes: number, lengthBytes: number): MaybePromise<IoResult<Uint8Array>> {
    assert(offsetBytes + lengthBytes <= this.bytes.length, "read past the end");
    for (const bad of this.badOffsets) {
      if (bad >= offsetBytes && bad < offsetBytes + lengthBytes) return this.answer({ ok: false, code: "MEDIUM_ERROR", message: "checksum mismatch", offsetBytes: bad });
    }
    // A copy when async: the view must survive until the answer is sent.
    const view = this.bytes.subarray(offsetBytes, offsetBytes + lengthBytes);
    return this.answer({ ok: true, value: this.async ? view.slice() : view });
  }

  write(offsetBytes: number, data: Uint8Array, options: { fua: boolean }): MaybePromise<IoResult<void>> {
    assert(offsetBytes + data.length <= this.bytes.length, "write past the end");
    this.bytes.set(data, offsetBytes);
    const bb = this.details.blockBytes;
    this.deallocated.fill(0, Math.floor(offsetBytes / bb), Math.ceil((offsetBytes + data.length) / bb));
    if (options.fua) this.fuaWrites++;
    return this.answer({ ok: true, value: undefined });
  }

  unmap(offsetBytes: number, lengthBytes: number): MaybePromise<IoResult<void>> {
    assert(offsetBytes + lengthBytes <= this.bytes.length, "unmap past the end");
    this.bytes.fill(0, offsetBytes, offsetBytes + lengthBytes);
    const bb = this.details.blockBytes;
    this.deallocated.fill(1, offsetBytes / bb, (offsetBytes + lengthBytes) / bb);
    return this.answer({ ok: true, value: undefined });
  }

  mappingAt(offsetBytes: number, lengthBytes: number): MaybePromise<IoResult<{ mapped: boolean; lengthBytes: number }>> {
    const bb = this.details.blockBytes;
    const first = offsetBytes / bb;
    const end = Math.min(this.deallocated.length, first + Math.max(1, lengthBytes / bb));
    const state = this.deallocated[first];
    let i = first + 1;
    while (i < end && this.deallocated[i] === state) i++;
    return this.answer({ ok: true, value: { mapped: state === 0, lengthBytes: (i - first) * bb } });
  }

  setWriteCache(enabled: boolean): MaybePromise<IoResult<void>> {
    this.details = { ...this.details, writeCache: enabled };
    return this.answer({ ok: true, value: undefined });
  }

  flush(): MaybePromise<IoResult<void>> {
    this.flushes++;
    return this.answer({ ok: true, value: undefined });
  }
}

/** A registry over fixed targets (the daemon's is live; this one can be changed by the test). */
export function memRegistry(targets: Map<string, { alias?: string; luns: Map<number, BlockDevice>; chap?: ChapSecrets }>): TargetRegistry {
  return {
    listTargets: () => [...targets.entries()].map(([iqn, t]) => (t.alias === undefined ? { iqn } : { iqn, alias: t.alias })),
    lookupTarget: (iqn) => {
      const t = targets.get(iqn);
      if (t === undefined) return undefined;
      return { iqn, luns: t.luns, ...(t.alias === undefined ? {} : { alias: t.alias }), ...(t.chap === undefined ? {} : { chap: t.chap }) };
    },
  };
}

export interface MemTarget {
  server: IscsiServer;
  device: MemoryBlockDevice;
  url: string;
  targets: Map<string, { alias?: string; luns: Map<number, BlockDevice>; chap?: ChapSecrets }>;
}

export async function startMemTarget(options: { port?: number; host?: string; lunBytes?: number; async?: boolean; logger?: Logger; chap?: ChapSecrets } = {}): Promise<MemTarget> {
  const device = new MemoryBlockDevice({ sizeBytes: options.lunBytes ?? defaultLunBytes, async: options.async ?? false });
  const target = { alias: "qstora-test", luns: new Map<number, BlockDevice>([[0, device]]), ...(options.chap === undefined ? {} : { chap: options.chap }) };
  const targets = new Map<string, { alias?: string; luns: Map<number, BlockDevice>; chap?: ChapSecrets }>([[memTargetIqn, target]]);
  const host = options.host ?? "127.0.0.1";
  const server = await startIscsiServer({ host, port: options.port ?? 0, registry: memRegistry(targets), logger: options.logger ?? silentLogger });
  return { server, device, url: `iscsi://${host}:${server.port}/${memTargetIqn}/0`, targets };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const port = Number(args.find((a) => /^\d+$/.test(a)) ?? 3260);
  const logger = createLogger({ sinks: [(line) => process.stderr.write(`${line}\n`)], level: "info" });
  const t = await startMemTarget({ port, async: args.includes("--async"), logger });
  process.stdout.write(`serving ${t.url}\n`);
  process.on("SIGINT", () => void t.server.close().then(() => process.exit(0)));
  process.on("SIGTERM", () => void t.server.close().then(() => process.exit(0)));
}
