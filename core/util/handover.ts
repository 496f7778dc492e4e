// Buffers handed over: whoever filled one promises never to write it again, so a receiver may
// keep views of it instead of copying (a write's data kept for a retry or a replica's log).
// Everything else a receiver gets is borrowed: good only until its first await, because the
// sender reuses the memory (an iSCSI PDU's immediate data is a view of the receive buffer, a
// frame gathered from several reads a view of the decoder's buffer). Marked by the whole
// ArrayBuffer: every view of a handed-over buffer is handed over.
//
// Who hands over: the iSCSI connection, the buffer it gathered a command's Data-Out into (once
// the command runs, the connection forgets the buffer); core/net's FrameDecoder, each large
// frame it gathered (a fresh buffer per frame). Who keeps views: the replicated segment's
// coordinator (coordinator.ts) and envelope decoding (envelope.ts).

const handedOver = new WeakSet<ArrayBufferLike>();

/** Marks `bytes`'s whole buffer as never written again by the caller; returns `bytes`. */
export function handOver(bytes: Uint8Array): Uint8Array {
  handedOver.add(bytes.buffer);
  return bytes;
}

/** Whether `bytes` may be kept as it is (else: copy what outlives the current turn). */
export function isHandedOver(bytes: Uint8Array): boolean {
  return handedOver.has(bytes.buffer);
}
