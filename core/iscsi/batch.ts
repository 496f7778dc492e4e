// The outgoing side of a connection: target PDUs are encoded one after another into one reused
// buffer and handed to the transport in one piece per batch (the design's "one socket.write per
// data event"). It never keeps a reference to the bytes it hands out: the sink must write or copy
// them before returning, because the buffer is reused by the next PDU.
import { assert } from "../util/assert.ts";
import { encodePdu, encodedBytes } from "./pdu.ts";

export class ResponseBatch {
  private buffer: Uint8Array;
  private used = 0;

  /**
   * @param sink receives each batch; it must consume the view synchronously.
   * @param bytesMax the buffer never grows past this; a batch that would is sent in pieces.
   */
  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    options: { initialBytes: number; bytesMax: number },
  ) {
    assert(options.initialBytes > 0 && options.initialBytes <= options.bytesMax, "bad batch sizes");
    this.buffer = new Uint8Array(options.initialBytes);
    this.bytesMax = options.bytesMax;
  }
  private readonly bytesMax: number;

  get pendingBytes(): number {
    return this.used;
  }

  /** Encodes one PDU at the end of the batch. */
  append(header: Uint8Array, data: Uint8Array | null, digests: { header: boolean; data: boolean }): void {
    const need = encodedBytes(data?.length ?? 0, digests.header, digests.data);
    assert(need <= this.bytesMax, "a PDU larger than the batch limit");
    if (this.used + need > this.buffer.length) {
      if (this.used + need > this.bytesMax) this.flush();
      if (this.used + need > this.buffer.length) {
        const grown = new Uint8Array(Math.min(this.bytesMax, Math.max(this.buffer.length * 2, this.used + need)));
        grown.set(this.buffer.subarray(0, this.used));
        this.buffer = grown;
      }
    }
    this.used += encodePdu(this.buffer, this.used, { header, data, headerDigest: digests.header, dataDigest: digests.data });
    assert(this.used <= this.buffer.length);
  }

  /** Hands everything appended so far to the sink. */
  flush(): void {
    if (this.used === 0) return;
    const bytes = this.buffer.subarray(0, this.used);
    this.used = 0;
    this.sink(bytes);
  }
}
