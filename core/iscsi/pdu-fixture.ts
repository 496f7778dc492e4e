// Test support: builds initiator PDUs (no digests: the header filled by `fill`, then the data),
// and a tiny raw initiator on a socket that collects whole answers. Never used by the target.
import type { Socket } from "bun";
import { bhsBytes, encodedBytes, encodePdu } from "./pdu.ts";

const answerTimeoutMs = 2000;

export function buildPdu(opcode: number, flags: number, data: Uint8Array | null, fill: (h: Uint8Array) => void): Uint8Array {
  const h = new Uint8Array(bhsBytes);
  h[0] = opcode;
  h[1] = flags;
  fill(h);
  const out = new Uint8Array(encodedBytes(data?.length ?? 0, false, false));
  encodePdu(out, 0, { header: h, data, headerDigest: false, dataDigest: false });
  return out;
}

/** Sends PDUs as given and collects whole answer PDUs (no digests). */
export class RawInitiator {
  private buffer = new Uint8Array(0);
  private waiters: Array<() => void> = [];
  readonly answers: Uint8Array[] = [];
  closed = false;
  socket!: Socket<undefined>;

  async connect(hostname: string, port: number): Promise<void> {
    this.socket = await Bun.connect({
      hostname,
      port,
      socket: {
        data: (_s, chunk) => {
          const joined = new Uint8Array(this.buffer.length + chunk.length);
          joined.set(this.buffer);
          joined.set(chunk, this.buffer.length);
          this.buffer = joined;
          while (this.buffer.length >= bhsBytes) {
            const dataBytes = ((this.buffer[5] as number) << 16) | ((this.buffer[6] as number) << 8) | (this.buffer[7] as number);
            const total = bhsBytes + (this.buffer[4] as number) * 4 + ((dataBytes + 3) & ~3);
            if (this.buffer.length < total) break;
            this.answers.push(this.buffer.slice(0, total));
            this.buffer = this.buffer.slice(total);
          }
          for (const w of this.waiters.splice(0)) w();
        },
        close: () => {
          this.closed = true;
          for (const w of this.waiters.splice(0)) w();
        },
      },
    });
  }

  async next(timeoutMs = answerTimeoutMs): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) throw new Error(this.closed ? "connection closed" : `no answer within ${timeoutMs} ms`);
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), Bun.sleep(left)]);
    }
    return this.answers.shift() as Uint8Array;
  }

  async untilClosed(timeoutMs = answerTimeoutMs): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await Promise.race([new Promise<void>((r) => this.waiters.push(r)), Bun.sleep(50)]);
    return this.closed;
  }
}
