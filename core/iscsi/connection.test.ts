// The connection state machine driven with hand-built PDUs: login, SendTargets continuation,
// NOP, SCSI reads split into Data-In, writes through immediate data, unsolicited Data-Out and
// R2T sequences, residuals, sense, the CmdSN window, bad DataSN, task management, digests.
import { describe, expect, test } from "bun:test";
import { isHandedOver } from "../util/handover.ts";
import { MemoryBlockDevice, memRegistry } from "../../test/iscsi-mem-target.ts";
import { silentLogger } from "../util/log.ts";
import type { BlockDevice } from "../volume/block-device.ts";
import { IscsiConnection, type PingSettings } from "./connection.ts";
import { defaultTargetLimits, encodeKeys, parseKeys, type KeyValue } from "./login.ts";
import { Bhs, Flag, Op, PduDecoder, bhsBytes, encodePdu, encodedBytes, put32, reservedTag, u32, type Pdu } from "./pdu.ts";
import { LunStateTable } from "../scsi/lun-state.ts";
import { SessionTable } from "./session.ts";

const iqn = "iqn.2026-11.org.qstora:t";

interface Reply {
  opcode: number;
  flags: number;
  header: Uint8Array;
  data: Uint8Array;
}

/** Several harnesses may share one LU, its state and the session table (sessions of two initiators). */
interface Shared {
  device: MemoryBlockDevice;
  lunStates: LunStateTable;
  sessions: SessionTable;
}

function harness(options: { names?: string[]; async?: boolean; lunBytes?: number; shared?: Shared; isid?: number; ping?: PingSettings } = {}) {
  const device = options.shared?.device ?? new MemoryBlockDevice({ sizeBytes: options.lunBytes ?? 1 << 20, async: options.async ?? false });
  const targets = new Map<string, { luns: Map<number, BlockDevice> }>();
  for (const name of options.names ?? [iqn]) targets.set(name, { luns: new Map<number, BlockDevice>([[0, device]]) });
  const replies: Reply[] = [];
  const decoder = new PduDecoder(1 << 20);
  let closed = false;
  const sessions = options.shared?.sessions ?? new SessionTable();
  const lunStates = options.shared?.lunStates ?? new LunStateTable();
  const conn = new IscsiConnection({
    registry: memRegistry(targets),
    sessions,
    portal: { address: "127.0.0.1:3260", portalGroupTag: 1 },
    limits: defaultTargetLimits,
    lunStates,
    ...(options.ping === undefined ? {} : { ping: options.ping }),
    transport: {
      send: (bytes) => {
        const error = decoder.push(bytes, {
          onPdu: (p: Pdu) => replies.push({ opcode: p.opcode, flags: p.header[1]!, header: p.header.slice(), data: p.data.slice() }),
          onDataDigestError: () => {
            throw new Error("data digest error in a target PDU");
          },
        });
        if (error !== null) throw new Error(`target sent a bad PDU: ${error.kind}`);
      },
      close: () => (closed = true),
    },
    logger: silentLogger,
  });
  let cmdSN = 1;
  let itt = 100;
  const digests = { header: false, data: false };
  const send = (opcode: number, flags: number, data: Uint8Array | null, fill: (h: Uint8Array) => void = () => {}, sendOptions: { nextCmdSN?: boolean } = {}) => {
    const h = new Uint8Array(bhsBytes);
    h[0] = opcode;
    h[1] = flags;
    fill(h);
    if (sendOptions.nextCmdSN !== false && opcode !== Op.dataOut) put32(h, Bhs.cmdSN, cmdSN++);
    const out = new Uint8Array(encodedBytes(data?.length ?? 0, digests.header, digests.data));
    encodePdu(out, 0, { header: h, data, headerDigest: digests.header, dataDigest: digests.data });
    conn.receive(out);
  };
  const login = (keys: KeyValue[]) => {
    send(Op.loginRequest | 0x40, Flag.transit | (1 << 2) | 3, encodeKeys(keys), (h) => {
      h.set([0x80, 0, 0, 0x12, 0x34, options.isid ?? 0], Bhs.isid);
      put32(h, Bhs.initiatorTaskTag, itt++);
    }, { nextCmdSN: false });
    const r = replies.at(-1)!;
    return { status: [r.header[Bhs.statusClass], r.header[Bhs.statusDetail]], keys: new Map(parseKeys(r.data) ?? []) };
  };
  const command = (cdb: number[], options: { edtl: number; read?: boolean; write?: boolean; immediate?: Uint8Array; lun?: number; cmdSN?: number }) => {
    const tag = itt++;
    send(Op.scsiCommand, Flag.final | (options.read ? Flag.read : 0) | (options.write ? Flag.write : 0), options.immediate ?? null, (h) => {
      h[Bhs.lun + 1] = options.lun ?? 0;
      put32(h, Bhs.initiatorTaskTag, tag);
      put32(h, Bhs.expectedDataTransferLength, options.edtl);
      h.set(cdb, Bhs.cdb);
      if (options.cmdSN !== undefined) put32(h, Bhs.cmdSN, options.cmdSN);
    }, { nextCmdSN: options.cmdSN === undefined });
    if (options.cmdSN !== undefined) cmdSN = options.cmdSN + 1;
    return tag;
  };
  const dataOut = (tag: number, ttt: number, dataSN: number, offset: number, data: Uint8Array, final: boolean) =>
    send(Op.dataOut, final ? Flag.final : 0, data, (h) => {
      put32(h, Bhs.initiatorTaskTag, tag);
      put32(h, Bhs.targetTransferTag, ttt);
      put32(h, Bhs.dataSN, dataSN);
      put32(h, Bhs.bufferOffset, offset);
    });
  const tmf = (fn: number, fill: (h: Uint8Array) => void = () => {}) =>
    send(Op.taskManagementRequest | 0x40, Flag.final | fn, null, (b) => {
      put32(b, Bhs.initiatorTaskTag, itt++);
      fill(b);
    });
  return { conn, device, lunStates, replies, send, login, command, dataOut, tmf, digests, decoder, closed: () => closed, sessions, setCmdSN: (n: number) => (cmdSN = n) };
}

const normalLogin: KeyValue[] = [["InitiatorName", "iqn.2026-11.org.test:i"], ["TargetName", iqn]];
const read10 = (lba: number, blocks: number) => [0x28, 0, lba >>> 24, lba >>> 16, lba >>> 8, lba, 0, blocks >>> 8, blocks, 0];
const write10 = (lba: number, blocks: number) => [0x2a, 0, lba >>> 24, lba >>> 16, lba >>> 8, lba, 0, blocks >>> 8, blocks, 0];
const pattern = (bytes: number, seed: number) => Uint8Array.from({ length: bytes }, (_, i) => (i * 13 + seed) & 0xff);

describe("IscsiConnection", () => {
  test("a discovery session lists every target with SendTargets=All, continued over Text PDUs", () => {
    const names = Array.from({ length: 200 }, (_, i) => `iqn.2026-11.org.qstora:target-with-a-long-name-${i}`);
    const h = harness({ names });
    expect(h.login([["InitiatorName", "iqn.2026-11.org.test:i"], ["SessionType", "Discovery"], ["MaxRecvDataSegmentLength", "4096"]]).status).toEqual([0, 0]);
    const text: string[] = [];
    let ttt = reservedTag;
    for (let i = 0; i < 100; i++) {
      h.send(Op.textRequest | 0x40, Flag.final, i === 0 ? encodeKeys([["SendTargets", "All"]]) : null, (b) => {
        put32(b, Bhs.initiatorTaskTag, 7);
        put32(b, Bhs.targetTransferTag, ttt);
      });
      const r = h.replies.at(-1)!;
      expect(r.opcode).toBe(Op.textResponse);
      expect(r.data.length).toBeLessThanOrEqual(4096);
      text.push(new TextDecoder().decode(r.data));
      ttt = u32(r.header, Bhs.targetTransferTag);
      if ((r.flags & Flag.final) !== 0) {
        expect(ttt).toBe(reservedTag);
        break;
      }
      expect(r.flags & Flag.continue).toBe(Flag.continue);
    }
    expect(text.length).toBeGreaterThan(1);
    // Parsed here rather than with parseKeys, which bounds an initiator's request to 256 keys.
    const keys = text.join("").split("\0").filter((kv) => kv !== "").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)] as const);
    expect(keys.filter(([k]) => k === "TargetName").map(([, v]) => v)).toEqual(names);
    expect(keys.find(([k]) => k === "TargetAddress")?.[1]).toBe("127.0.0.1:3260,1");
  });

  test("a bad SendTargets value is rejected; SCSI commands in a discovery session are rejected", () => {
    const h = harness();
    h.login([["InitiatorName", "iqn.2026-11.org.test:i"], ["SessionType", "Discovery"]]);
    h.send(Op.textRequest | 0x40, Flag.final, encodeKeys([["SendTargets", "Alle"]]), (b) => put32(b, Bhs.targetTransferTag, reservedTag));
    expect(h.replies.at(-1)!.opcode).toBe(Op.reject);
    h.command([0, 0, 0, 0, 0, 0], { edtl: 0 });
    expect(h.replies.at(-1)!.opcode).toBe(Op.reject);
  });

  test("a NOP-Out ping is answered with a NOP-In carrying the same data and tag", () => {
    const h = harness();
    expect(h.login(normalLogin).status).toEqual([0, 0]);
    const ping = new Uint8Array([1, 2, 3, 4, 5]);
    h.send(Op.nopOut | 0x40, Flag.final, ping, (b) => {
      put32(b, Bhs.initiatorTaskTag, 42);
      put32(b, Bhs.targetTransferTag, reservedTag);
    });
    const r = h.replies.at(-1)!;
    expect(r.opcode).toBe(Op.nopIn);
    expect(u32(r.header, Bhs.initiatorTaskTag)).toBe(42);
    expect(u32(r.header, Bhs.targetTransferTag)).toBe(reservedTag);
    expect([...r.data]).toEqual([...ping]);
  });

  test("a login to an unknown target is refused with 'not found' and the connection closes", () => {
    const h = harness();
    expect(h.login([["InitiatorName", "iqn.2026-11.org.test:i"], ["TargetName", "iqn.2026-11.org.qstora:nope"]]).status).toEqual([2, 3]);
    expect(h.closed()).toBe(true);
  });

  test("a READ is split to the initiator's MaxRecvDataSegmentLength with status in the last Data-In", () => {
    const h = harness();
    h.login([...normalLogin, ["MaxRecvDataSegmentLength", "4096"]]);
    h.device.bytes.set(pattern(16384, 3), 512 * 10);
    const before = h.replies.length;
    const tag = h.command(read10(10, 32), { edtl: 16384, read: true });
    const ins = h.replies.slice(before);
    expect(ins.map((r) => r.opcode)).toEqual([Op.dataIn, Op.dataIn, Op.dataIn, Op.dataIn]);
    expect(ins.map((r) => u32(r.header, Bhs.dataSN))).toEqual([0, 1, 2, 3]);
    expect(ins.map((r) => u32(r.header, Bhs.bufferOffset))).toEqual([0, 4096, 8192, 12288]);
    const last = ins[3]!;
    expect(last.flags & (Flag.final | Flag.status)).toBe(Flag.final | Flag.status);
    expect(last.header[Bhs.byte3]).toBe(0);
    expect(u32(last.header, Bhs.initiatorTaskTag)).toBe(tag);
    expect([...ins.flatMap((r) => [...r.data])]).toEqual([...pattern(16384, 3)]);
  });

  test("residuals: underflow and overflow counts are exact", () => {
    const h = harness();
    h.login(normalLogin);
    let before = h.replies.length;
    h.command(read10(0, 1), { edtl: 10000, read: true });
    let last = h.replies.at(-1)!;
    expect(h.replies.length - before).toBe(1);
    expect(last.data.length).toBe(512);
    expect(last.flags & Flag.residualUnderflow).toBe(Flag.residualUnderflow);
    expect(u32(last.header, Bhs.residualCount)).toBe(10000 - 512);
    before = h.replies.length;
    h.command(read10(0, 1), { edtl: 200, read: true });
    last = h.replies.at(-1)!;
    expect(last.data.length).toBe(200);
    expect(last.flags & Flag.residualOverflow).toBe(Flag.residualOverflow);
    expect(u32(last.header, Bhs.residualCount)).toBe(312);
    h.command(read10(0, 1), { edtl: 0, read: true });
    last = h.replies.at(-1)!;
    expect(last.opcode).toBe(Op.scsiResponse);
    expect(last.flags & Flag.residualOverflow).toBe(Flag.residualOverflow);
    expect(u32(last.header, Bhs.residualCount)).toBe(512);
  });

  test("an out-of-range READ answers CHECK CONDITION with sense in the SCSI Response", () => {
    const h = harness();
    h.login(normalLogin);
    h.command(read10(2048, 1), { edtl: 512, read: true });
    const r = h.replies.at(-1)!;
    expect(r.opcode).toBe(Op.scsiResponse);
    expect(r.header[Bhs.byte3]).toBe(2);
    expect(r.data.length).toBe(20);
    expect([r.data[0], r.data[1], r.data[2 + 2], r.data[2 + 12]]).toEqual([0, 18, 5, 0x21]);
  });

  test("a WRITE with all its data immediate is written without R2T", () => {
    const h = harness();
    h.login(normalLogin);
    h.command(write10(4, 2), { edtl: 1024, write: true, immediate: pattern(1024, 1) });
    expect(h.replies.at(-1)!.opcode).toBe(Op.scsiResponse);
    expect(h.replies.at(-1)!.header[Bhs.byte3]).toBe(0);
    expect([...h.device.bytes.subarray(2048, 3072)]).toEqual([...pattern(1024, 1)]);
  });

  test("a large WRITE: immediate data, unsolicited Data-Out to FirstBurstLength, then R2T bursts", () => {
    const h = harness();
    h.login([...normalLogin, ["InitialR2T", "No"], ["FirstBurstLength", "8192"], ["MaxBurstLength", "16384"], ["MaxOutstandingR2T", "2"]]);
    const total = 65536;
    const data = pattern(total, 9);
    const before = h.replies.length;
    const tag = h.command(write10(0, total / 512), { edtl: total, write: true, immediate: data.subarray(0, 4096) });
    const r2ts = h.replies.slice(before).filter((r) => r.opcode === Op.r2t);
    // Solicited part [8192, 65536) in bursts of 16384, at most 2 outstanding.
    expect(r2ts.map((r) => [u32(r.header, Bhs.bufferOffset), u32(r.header, Bhs.desiredDataTransferLength), u32(r.header, Bhs.r2tSN)])).toEqual([
      [8192, 16384, 0],
      [24576, 16384, 1],
    ]);
    h.dataOut(tag, reservedTag, 0, 4096, data.subarray(4096, 8192), true);
    const pending = [...r2ts];
    let issued = 2;
    while (pending.length > 0) {
      const r = pending.shift()!;
      const offset = u32(r.header, Bhs.bufferOffset);
      const length = u32(r.header, Bhs.desiredDataTransferLength);
      const mark = h.replies.length;
      for (let at = 0, sn = 0; at < length; at += 4096, sn++) h.dataOut(tag, u32(r.header, Bhs.targetTransferTag), sn, offset + at, data.subarray(offset + at, offset + at + 4096), at + 4096 === length);
      const more = h.replies.slice(mark).filter((x) => x.opcode === Op.r2t);
      issued += more.length;
      pending.push(...more);
    }
    expect(issued).toBe(4);
    const last = h.replies.at(-1)!;
    expect(last.opcode).toBe(Op.scsiResponse);
    expect(last.header[Bhs.byte3]).toBe(0);
    expect([...h.device.bytes.subarray(0, total)]).toEqual([...data]);
  });

  test("a WRITE's gathered Data-Out reaches the device handed over; immediate data alone is borrowed (a view of the receive buffer)", () => {
    const h = harness();
    h.login([...normalLogin, ["InitialR2T", "Yes"], ["ImmediateData", "Yes"]]);
    const seen: boolean[] = [];
    const write = h.device.write.bind(h.device);
    h.device.write = (offset, data, options) => {
      seen.push(isHandedOver(data));
      return write(offset, data, options);
    };
    h.command(write10(0, 2), { edtl: 1024, write: true, immediate: pattern(1024, 1) });
    const tag = h.command(write10(8, 16), { edtl: 8192, write: true, immediate: pattern(4096, 2) });
    const r2t = h.replies.at(-1)!;
    expect(r2t.opcode).toBe(Op.r2t);
    h.dataOut(tag, u32(r2t.header, Bhs.targetTransferTag), 0, 4096, pattern(4096, 3), true);
    expect(h.replies.at(-1)!.opcode).toBe(Op.scsiResponse);
    expect(seen).toEqual([false, true]);
  });

  test("a Data-Out with the wrong DataSN ends the command with ABORTED COMMAND", () => {
    const h = harness();
    h.login([...normalLogin, ["InitialR2T", "No"], ["ImmediateData", "No"]]);
    const tag = h.command(write10(0, 2), { edtl: 1024, write: true });
    h.dataOut(tag, reservedTag, 1, 0, new Uint8Array(512), false);
    const r = h.replies.at(-1)!;
    expect(r.opcode).toBe(Op.scsiResponse);
    expect(r.data[2 + 2]).toBe(0x0b);
    h.dataOut(tag, reservedTag, 1, 512, new Uint8Array(512), true); // dropped: the task is gone
    expect(h.replies.at(-1)).toBe(r);
  });

  test("a command outside the CmdSN window is ignored; the next in-window one is answered", () => {
    const h = harness();
    h.login(normalLogin);
    const window = u32(h.replies.at(-1)!.header, Bhs.maxCmdSN);
    const count = h.replies.length;
    h.command([0, 0, 0, 0, 0, 0], { edtl: 0, cmdSN: window + 1 });
    expect(h.replies.length).toBe(count);
    h.command([0, 0, 0, 0, 0, 0], { edtl: 0, cmdSN: u32(h.replies.at(-1)!.header, Bhs.expCmdSN) });
    expect(h.replies.length).toBe(count + 1);
    expect(h.replies.at(-1)!.header[Bhs.byte3]).toBe(0);
  });

  test("ABORT TASK ends a write waiting for data; a finished task 'does not exist'", () => {
    const h = harness();
    h.login([...normalLogin, ["InitialR2T", "Yes"]]);
    const tag = h.command(write10(0, 64), { edtl: 32768, write: true });
    h.send(Op.taskManagementRequest | 0x40, Flag.final | 1, null, (b) => {
      put32(b, Bhs.initiatorTaskTag, 999);
      put32(b, Bhs.referencedTaskTag, tag);
    });
    expect(h.replies.at(-1)!.opcode).toBe(Op.taskManagementResponse);
    expect(h.replies.at(-1)!.header[Bhs.byte2]).toBe(0);
    h.send(Op.taskManagementRequest | 0x40, Flag.final | 1, null, (b) => {
      put32(b, Bhs.initiatorTaskTag, 1000);
      put32(b, Bhs.referencedTaskTag, tag);
    });
    expect(h.replies.at(-1)!.header[Bhs.byte2]).toBe(1);
  });

  test("an asynchronous device is answered after its promise, in one flush", async () => {
    const h = harness({ async: true });
    h.login(normalLogin);
    const before = h.replies.length;
    h.command(write10(0, 1), { edtl: 512, write: true, immediate: pattern(512, 5) });
    h.command(read10(0, 1), { edtl: 512, read: true });
    expect(h.replies.length).toBe(before);
    await Bun.sleep(20);
    expect(h.replies.length).toBe(before + 2);
    expect(h.conn.busy).toBe(false);
  });

  test("with CRC32C digests negotiated, both directions carry digests from the first full-feature PDU", () => {
    const h = harness();
    const r = h.login([...normalLogin, ["HeaderDigest", "CRC32C"], ["DataDigest", "CRC32C"]]);
    expect(r.keys.get("HeaderDigest")).toBe("CRC32C");
    // From here both sides add digests; the harness's decoder checks the target's.
    h.digests.header = h.digests.data = true;
    h.decoder.headerDigest = h.decoder.dataDigest = true;
    h.device.bytes.set(pattern(512, 4), 0);
    h.command(read10(0, 1), { edtl: 512, read: true });
    const last = h.replies.at(-1)!;
    expect(last.opcode).toBe(Op.dataIn);
    expect([...last.data]).toEqual([...pattern(512, 4)]);
  });

  test("logout answers, closes the connection and ends the session", () => {
    const h = harness();
    h.login(normalLogin);
    expect(h.sessions.count()).toBe(1);
    h.send(Op.logoutRequest | 0x40, Flag.final, null, (b) => put32(b, Bhs.initiatorTaskTag, 5));
    expect(h.replies.at(-1)!.opcode).toBe(Op.logoutResponse);
    expect(h.closed()).toBe(true);
    expect(h.sessions.count()).toBe(0);
  });

  test("a quiet session is pinged with a NOP-In carrying a valid TTT, and the answer keeps it", () => {
    const h = harness({ ping: { idleMs: 5000, timeoutMs: 20000 } });
    h.login(normalLogin);
    const before = h.replies.length;
    h.conn.tick(1000);
    h.conn.tick(5999);
    expect(h.replies.length).toBe(before); // not quiet long enough
    h.conn.tick(6000);
    const ping = h.replies.at(-1)!;
    expect(ping.opcode).toBe(Op.nopIn);
    expect(u32(ping.header, Bhs.initiatorTaskTag)).toBe(reservedTag);
    const ttt = u32(ping.header, Bhs.targetTransferTag);
    expect(ttt).not.toBe(reservedTag);
    expect(h.conn.pinging).toBe(true);
    // RFC 7143 §11.19.3: a NOP-In with the reserved ITT carries the next StatSN without taking it.
    const tag = h.command([0, 0, 0, 0, 0, 0], { edtl: 0 });
    const tur = h.replies.at(-1)!;
    expect(u32(tur.header, Bhs.initiatorTaskTag)).toBe(tag);
    expect(u32(tur.header, Bhs.statSN)).toBe(u32(ping.header, Bhs.statSN));
    h.conn.tick(7000);
    expect(h.conn.pinging).toBe(false); // the command showed the initiator alive
    h.conn.tick(12000);
    const again = h.replies.at(-1)!;
    expect(again.opcode).toBe(Op.nopIn);
    // The initiator's answer: NOP-Out, ITT reserved, the ping's TTT, immediate.
    h.send(Op.nopOut | 0x40, Flag.final, null, (b) => {
      put32(b, Bhs.initiatorTaskTag, reservedTag);
      put32(b, Bhs.targetTransferTag, u32(again.header, Bhs.targetTransferTag));
    }, { nextCmdSN: false });
    expect(h.replies.at(-1)).toBe(again); // nothing is said back
    h.conn.tick(40000);
    expect(h.closed()).toBe(false);
    expect(h.conn.pinging).toBe(false);
  });

  test("an initiator that leaves a ping unanswered is dropped after the timeout, and its session's writes and buffers go", () => {
    const h = harness({ ping: { idleMs: 5000, timeoutMs: 20000 } });
    h.login([...normalLogin, ["InitialR2T", "Yes"], ["ImmediateData", "No"]]);
    const tag = h.command(write10(0, 64), { edtl: 32768, write: true }); // waits for Data-Out forever
    const r2t = h.replies.at(-1)!;
    expect(r2t.opcode).toBe(Op.r2t);
    expect(h.sessions.count()).toBe(1);
    h.conn.tick(0);
    h.conn.tick(5000);
    expect(h.replies.at(-1)!.opcode).toBe(Op.nopIn);
    h.conn.tick(24999);
    expect(h.closed()).toBe(false);
    h.conn.tick(25000);
    expect(h.closed()).toBe(true);
    expect(h.conn.closed).toBe(true);
    expect(h.sessions.count()).toBe(0);
    // Late Data-Out for the dropped write is not taken (the connection is closed).
    const count = h.replies.length;
    h.dataOut(tag, u32(r2t.header, Bhs.targetTransferTag), 0, 0, new Uint8Array(512), false);
    expect(h.replies.length).toBe(count);
    expect(h.device.bytes.every((b) => b === 0)).toBe(true);
  });

  test("an initiator still taking queued data (the socket drains) is not dropped, though its ping answer is unread", () => {
    const h = harness({ ping: { idleMs: 1000, timeoutMs: 3000 } });
    h.login(normalLogin);
    h.conn.tick(0);
    h.conn.tick(1000);
    expect(h.conn.pinging).toBe(true);
    for (let t = 2000; t < 20000; t += 1000) {
      h.conn.peerReading();
      h.conn.tick(t);
    }
    expect(h.closed()).toBe(false);
    h.conn.tick(21000);
    h.conn.tick(22000);
    h.conn.tick(25000);
    expect(h.closed()).toBe(true);
  });

  test("pings are off with idleMs 0, and never sent before login completes", () => {
    const off = harness({ ping: { idleMs: 0, timeoutMs: 1000 } });
    off.login(normalLogin);
    for (let t = 0; t < 100000; t += 1000) off.conn.tick(t);
    expect(off.replies.at(-1)!.opcode).toBe(Op.loginResponse);
    const early = harness({ ping: { idleMs: 10, timeoutMs: 10 } });
    for (let t = 0; t < 1000; t += 10) early.conn.tick(t);
    expect(early.replies.length).toBe(0);
    expect(early.closed()).toBe(false);
  });

  test("PREEMPT AND ABORT from one session aborts the preempted session's tasks, which then gets COMMANDS CLEARED BY ANOTHER INITIATOR", () => {
    const shared: Shared = { device: new MemoryBlockDevice({ sizeBytes: 1 << 20 }), lunStates: new LunStateTable(), sessions: new SessionTable() };
    const a = harness({ shared, isid: 1 });
    const b = harness({ shared, isid: 2 });
    a.login([...normalLogin, ["InitialR2T", "Yes"], ["ImmediateData", "Yes"]]);
    b.login([...normalLogin, ["InitialR2T", "Yes"], ["ImmediateData", "Yes"]]);
    const prout = (h: typeof a, action: number, type: number, key: number, actionKey: number) => {
      const p = new Uint8Array(24);
      put32(p, 4, key);
      put32(p, 12, actionKey);
      h.command([0x5f, action, type, 0, 0, 0, 0, 0, 24, 0], { edtl: 24, write: true, immediate: p });
      return h.replies.at(-1)!;
    };
    const good = (r: Reply) => [r.opcode, r.header[Bhs.byte3]];
    expect(good(prout(a, 0, 0, 0, 0xa))).toEqual([Op.scsiResponse, 0]); // REGISTER a
    expect(good(prout(b, 0, 0, 0, 0xb))).toEqual([Op.scsiResponse, 0]); // REGISTER b
    expect(good(prout(b, 1, 1, 0xb, 0))).toEqual([Op.scsiResponse, 0]); // b RESERVE, write exclusive
    // b has a write waiting for Data-Out (128 blocks: 8 KiB immediate, the rest by R2T).
    const waiting = b.command(write10(0, 128), { edtl: 65536, write: true, immediate: pattern(8192, 1) });
    expect(b.replies.at(-1)!.opcode).toBe(Op.r2t);
    const r2t = b.replies.at(-1)!;
    const bCount = b.replies.length;
    expect(good(prout(a, 5, 1, 0xa, 0xb))).toEqual([Op.scsiResponse, 0]); // a PREEMPT AND ABORT b
    // b's write is gone: its Data-Out is dropped, nothing answers it, nothing is written.
    b.dataOut(waiting, u32(r2t.header, Bhs.targetTransferTag), 0, 8192, pattern(57344, 2), true);
    expect(b.replies.length).toBe(bCount);
    expect(shared.device.bytes.subarray(0, 65536).every((x) => x === 0)).toBe(true);
    // b's next command hears of it: REGISTRATIONS PREEMPTED, then COMMANDS CLEARED BY ANOTHER INITIATOR.
    const senseOf = (r: Reply) => [r.header[Bhs.byte3], r.data[2 + 2]! & 0xf, r.data[2 + 12], r.data[2 + 13]];
    b.command([0, 0, 0, 0, 0, 0], { edtl: 0 });
    expect(senseOf(b.replies.at(-1)!)).toEqual([2, 6, 0x2a, 0x05]);
    b.command([0, 0, 0, 0, 0, 0], { edtl: 0 });
    expect(senseOf(b.replies.at(-1)!)).toEqual([2, 6, 0x2f, 0x00]);
    b.command([0, 0, 0, 0, 0, 0], { edtl: 0 });
    expect(b.replies.at(-1)!.header[Bhs.byte3]).toBe(0);
    // a holds the reservation now.
    a.command([0x5e, 1, 0, 0, 0, 0, 0, 0, 24, 0], { edtl: 24, read: true });
    expect(a.replies.at(-1)!.data[21]).toBe(1); // READ RESERVATION: type write exclusive
  });

  test("CLEAR TASK SET ends the other session's waiting write too; ABORT TASK SET only its own", () => {
    const shared: Shared = { device: new MemoryBlockDevice({ sizeBytes: 1 << 20 }), lunStates: new LunStateTable(), sessions: new SessionTable() };
    const a = harness({ shared, isid: 1 });
    const b = harness({ shared, isid: 2 });
    a.login([...normalLogin, ["InitialR2T", "Yes"]]);
    b.login([...normalLogin, ["InitialR2T", "Yes"]]);
    const tb = b.command(write10(0, 8), { edtl: 4096, write: true });
    const r2tB = b.replies.at(-1)!;
    a.tmf(2); // ABORT TASK SET: a's own tasks only
    expect(a.replies.at(-1)!.header[Bhs.byte2]).toBe(0);
    a.tmf(4); // CLEAR TASK SET
    expect(a.replies.at(-1)!.header[Bhs.byte2]).toBe(0);
    const count = b.replies.length;
    b.dataOut(tb, u32(r2tB.header, Bhs.targetTransferTag), 0, 0, pattern(4096, 3), true);
    expect(b.replies.length).toBe(count);
    b.command([0, 0, 0, 0, 0, 0], { edtl: 0 });
    const r = b.replies.at(-1)!;
    expect([r.header[Bhs.byte3], r.data[2 + 12]]).toEqual([2, 0x2f]);
  });

  test("a dropped session's command waiting for COMPARE AND WRITE's turn never runs", async () => {
    const shared: Shared = { device: new MemoryBlockDevice({ sizeBytes: 1 << 20, async: true }), lunStates: new LunStateTable(), sessions: new SessionTable() };
    const a = harness({ shared, isid: 1 });
    const b = harness({ shared, isid: 2 });
    a.login(normalLogin);
    b.login(normalLogin);
    const caw = new Uint8Array(1024);
    caw.fill(9, 512);
    a.command([0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], { edtl: 1024, write: true, immediate: caw });
    b.command(write10(8, 1), { edtl: 512, write: true, immediate: pattern(512, 4) }); // queued behind it
    expect(b.conn.busy).toBe(true);
    b.conn.closedByTransport();
    expect(b.sessions.count()).toBe(1);
    await Bun.sleep(30);
    expect(a.replies.at(-1)!.header[Bhs.byte3]).toBe(0);
    expect(shared.device.bytes[0]).toBe(9);
    expect(shared.device.bytes.subarray(8 * 512, 9 * 512).every((x) => x === 0)).toBe(true);
    expect(b.conn.busy).toBe(false);
    expect(shared.lunStates.get(shared.device).exclusive).toBe(null);
  });
});
