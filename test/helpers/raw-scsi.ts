// Test support: a minimal iSCSI session on the raw initiator (core/iscsi/pdu-fixture.ts) that
// logs in to a target without authentication and runs one SCSI command at a time, with
// immediate data only, returning status, sense and Data-In. For the commands libiscsi's tools
// can't send (PERSISTENT RESERVE, REPORT TARGET PORT GROUPS); QEMU and iscsi-load do the data.
import { encodeKeys } from "../../core/iscsi/login.ts";
import { Bhs, Flag, Op, bhsBytes, put32 } from "../../core/iscsi/pdu.ts";
import { RawInitiator, buildPdu } from "../../core/iscsi/pdu-fixture.ts";

export interface RawResult {
  status: number;
  /** Sense key, ASC, ASCQ when the target sent sense. */
  sense?: { key: number; asc: number; ascq: number };
  data: Uint8Array;
}

function dataOf(pdu: Uint8Array): Uint8Array {
  const dataBytes = ((pdu[5] as number) << 16) | ((pdu[6] as number) << 8) | (pdu[7] as number);
  const at = bhsBytes + (pdu[4] as number) * 4;
  return pdu.subarray(at, at + dataBytes);
}

const u32 = (b: Uint8Array, at: number): number => (((b[at] as number) << 24) | ((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)) >>> 0;

export class RawScsiSession {
  private readonly raw = new RawInitiator();
  private cmdSN = 1;
  private expStatSN = 0;
  private itt = 1;

  constructor(
    private readonly options: { initiatorName: string; isid: readonly number[] },
  ) {}

  /** Connects to host:port and logs in to `iqn` (straight to full feature phase); the login's status class. */
  async login(portal: string, iqn: string): Promise<number> {
    const [host, port] = portal.split(":") as [string, string];
    await this.raw.connect(host, Number(port));
    const keys = encodeKeys([["InitiatorName", this.options.initiatorName], ["TargetName", iqn], ["SessionType", "Normal"], ["ImmediateData", "Yes"], ["InitialR2T", "Yes"]]);
    this.raw.socket.write(buildPdu(Op.loginRequest | 0x40, Flag.transit | (1 << 2) | 3, keys, (h) => {
      h.set(this.options.isid, Bhs.isid);
      put32(h, Bhs.cmdSN, this.cmdSN);
    }));
    const answer = await this.raw.next(10_000);
    this.expStatSN = u32(answer, Bhs.statSN) + 1;
    return answer[Bhs.statusClass] as number;
  }

  /** Runs one command on `lun`: `cdb` (padded to 16), Data-Out as immediate data, or `dataInBytes` to read. */
  async command(cdb: readonly number[], options: { lun?: number; dataOut?: Uint8Array; dataInBytes?: number; timeoutMs?: number } = {}): Promise<RawResult> {
    const itt = this.itt++;
    const out = options.dataOut ?? null;
    const edtl = out?.length ?? options.dataInBytes ?? 0;
    const flags = Flag.final | (out !== null ? Flag.write : 0) | ((options.dataInBytes ?? 0) > 0 ? Flag.read : 0) | 1;
    this.raw.socket.write(buildPdu(Op.scsiCommand, flags, out, (h) => {
      h[Bhs.lun + 1] = options.lun ?? 0;
      put32(h, Bhs.initiatorTaskTag, itt);
      put32(h, Bhs.expectedDataTransferLength, edtl);
      put32(h, Bhs.cmdSN, this.cmdSN++);
      put32(h, Bhs.expStatSN, this.expStatSN);
      h.set(cdb, Bhs.cdb);
    }));
    const chunks: Uint8Array[] = [];
    for (;;) {
      const pdu = await this.raw.next(options.timeoutMs ?? 30_000);
      const op = (pdu[0] as number) & 0x3f;
      if (op === Op.nopIn) continue;
      if (u32(pdu, Bhs.initiatorTaskTag) !== itt) continue;
      if (op === Op.dataIn) {
        chunks.push(dataOf(pdu).slice());
        if (((pdu[1] as number) & Flag.status) !== 0) {
          this.expStatSN = u32(pdu, Bhs.statSN) + 1;
          return { status: pdu[3] as number, data: Buffer.concat(chunks) };
        }
        continue;
      }
      if (op !== Op.scsiResponse) throw new Error(`unexpected opcode 0x${op.toString(16)}`);
      this.expStatSN = u32(pdu, Bhs.statSN) + 1;
      const d = dataOf(pdu);
      const result: RawResult = { status: pdu[3] as number, data: Buffer.concat(chunks) };
      if (d.length >= 2 + 14) result.sense = { key: (d[2 + 2] as number) & 0x0f, asc: d[2 + 12] as number, ascq: d[2 + 13] as number };
      return result;
    }
  }

  close(): void {
    this.raw.socket.end();
  }
}
