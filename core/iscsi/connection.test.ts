// The connection state machine driven with hand-built PDUs: login, NOP, SendTargets split
// over several Text PDUs, and the decoder fed every byte split of a PDU stream.
import { describe, expect, test } from "bun:test";
import { IscsiConnection, type TargetRegistry } from "./connection.ts";
import { Op, PduDecoder, bhsBytes, put24, put32, u24, u32, type Pdu } from "./pdu.ts";
import { encodeKeys, parseKeys } from "./login.ts";
import { silentLogger } from "../util/log.ts";

function pdu(opcode: number, flags: number, data: Uint8Array, fill: (h: Uint8Array) => void = () => {}): Uint8Array {
  const padded = (data.length + 3) & ~3;
  const b = new Uint8Array(bhsBytes + padded);
  b[0] = opcode;
  b[1] = flags;
  put24(b, 5, data.length);
  fill(b);
  b.set(data, bhsBytes);
  return b;
}

function harness(targets: string[]) {
  const registry: TargetRegistry = {
    listTargets: () => targets.map((iqn) => ({ iqn })),
    lookupTarget: (iqn) => (targets.includes(iqn) ? { iqn, luns: new Map() } : undefined),
  };
  const replies: Pdu[] = [];
  const dec = new PduDecoder(1 << 24);
  let closed = false;
  const conn = new IscsiConnection(registry, { address: "127.0.0.1:3260", tpgt: 1 }, (bytes) => dec.push(bytes, (p) => replies.push({ ...p, header: p.header.slice(), data: p.data.slice() }), () => {}), () => (closed = true), silentLogger);
  return { conn, replies, closed: () => closed };
}

const login = (keys: Array<[string, string]>, cmdSN = 1) =>
  pdu(Op.loginRequest | 0x40, 0x80 | (1 << 2) | 3, encodeKeys(keys), (h) => {
    h.set([0x80, 0, 0, 0x12, 0x34, 0], 8); // ISID
    put32(h, 16, 7);
    put32(h, 24, cmdSN);
  });

describe("iSCSI connection", () => {
  test("a discovery login, then SendTargets=All split over Text PDUs when larger than the initiator takes", () => {
    const names = Array.from({ length: 200 }, (_, i) => `iqn.2026-11.org.qstora:target-with-a-long-name-${i}`);
    const h = harness(names);
    h.conn.receive(login([["InitiatorName", "iqn.2026-11.org.test:i"], ["SessionType", "Discovery"], ["MaxRecvDataSegmentLength", "4096"]]));
    expect(h.replies[0]?.opcode).toBe(Op.loginResponse);
    expect(h.replies[0]?.header[36]).toBe(0); // status class success
    const text: string[] = [];
    let ttt = 0xffffffff;
    for (let i = 0; i < 100; i++) {
      h.conn.receive(pdu(Op.textRequest, 0x80, i === 0 ? encodeKeys([["SendTargets", "All"]]) : new Uint8Array(0), (b) => {
        put32(b, 16, 100 + i);
        put32(b, 20, ttt);
        put32(b, 24, 1 + i);
      }));
      const r = h.replies[h.replies.length - 1]!;
      expect(r.opcode).toBe(Op.textResponse);
      expect(r.data.length).toBeLessThanOrEqual(4096);
      text.push(new TextDecoder().decode(r.data));
      ttt = u32(r.header, 20);
      if ((r.header[1]! & 0x80) !== 0) break;
    }
    expect(text.length).toBeGreaterThan(1);
    const keys = parseKeys(new TextEncoder().encode(text.join("")));
    expect(keys.filter(([k]) => k === "TargetName").map(([, v]) => v)).toEqual(names);
  });

  test("a NOP-Out ping is answered with a NOP-In carrying the same data and tag", () => {
    const h = harness(["iqn.2026-11.org.qstora:t"]);
    h.conn.receive(login([["InitiatorName", "iqn.2026-11.org.test:i"], ["TargetName", "iqn.2026-11.org.qstora:t"]]));
    expect(h.replies[0]?.header[36]).toBe(0);
    const ping = new Uint8Array([1, 2, 3, 4, 5]);
    h.conn.receive(pdu(Op.nopOut | 0x40, 0x80, ping, (b) => {
      put32(b, 16, 42);
      put32(b, 20, 0xffffffff);
    }));
    const r = h.replies[1]!;
    expect(r.opcode).toBe(Op.nopIn);
    expect(u32(r.header, 16)).toBe(42);
    expect(u32(r.header, 20)).toBe(0xffffffff);
    expect([...r.data]).toEqual([...ping]);
  });

  test("a login to an unknown target is refused with 'not found' and the connection closes", () => {
    const h = harness([]);
    h.conn.receive(login([["InitiatorName", "iqn.2026-11.org.test:i"], ["TargetName", "iqn.2026-11.org.qstora:nope"]]));
    expect(h.replies[0]?.header[36]).toBe(2);
    expect(h.replies[0]?.header[37]).toBe(3);
    expect(h.closed()).toBe(true);
  });
});

describe("PduDecoder", () => {
  test("decodes the same PDUs however the stream is split, and waits for truncated ones", () => {
    const stream = new Uint8Array([...pdu(Op.nopOut, 0x80, new Uint8Array(5).fill(9)), ...pdu(Op.scsiCommand, 0x80, new Uint8Array(0)), ...pdu(Op.textRequest, 0x80, new Uint8Array(13).fill(3))]);
    const want = ["0:5", "1:0", "4:13"];
    for (let cut = 0; cut <= stream.length; cut++) {
      const got: string[] = [];
      const d = new PduDecoder(1 << 20);
      const on = (p: Pdu) => got.push(`${p.opcode}:${p.data.length}`);
      d.push(stream.subarray(0, cut), on, () => {
        throw new Error("decode error");
      });
      d.push(stream.subarray(cut), on, () => {
        throw new Error("decode error");
      });
      expect(got).toEqual(want);
    }
    const d = new PduDecoder(1 << 20);
    const got: Pdu[] = [];
    d.push(stream.subarray(0, stream.length - 1), (p) => got.push(p), () => {});
    expect(got.length).toBe(2);
  });

  test("rejects a data segment longer than MaxRecvDataSegmentLength", () => {
    const d = new PduDecoder(1024);
    const big = pdu(Op.dataOut, 0x80, new Uint8Array(2048));
    let error = "";
    d.push(big, () => {}, (e) => (error = e.kind));
    expect(error).toBe("too-long");
    expect(u24(big, 5)).toBe(2048);
  });
});
