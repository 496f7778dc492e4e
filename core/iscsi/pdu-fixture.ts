// Builds initiator PDUs for tests (no digests): the header filled by `fill`, then the data.
import { bhsBytes, encodedBytes, encodePdu } from "./pdu.ts";

export function buildPdu(opcode: number, flags: number, data: Uint8Array | null, fill: (h: Uint8Array) => void): Uint8Array {
  const h = new Uint8Array(bhsBytes);
  h[0] = opcode;
  h[1] = flags;
  fill(h);
  const out = new Uint8Array(encodedBytes(data?.length ?? 0, false, false));
  encodePdu(out, 0, { header: h, data, headerDigest: false, dataDigest: false });
  return out;
}
