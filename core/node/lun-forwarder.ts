// Any node's portal serves every LUN: a LUN whose coordinator (the node named in its record:
// its Volume, its coordinators, its logical unit state) is another node is served here by
// forwarding each SCSI command there over the node-to-node transport (core/net/scsi-forward.ts),
// and this module is both ends of that: the ForwardedUnit a session sends through, and the
// handler that runs a forwarded command against the local logical unit as if it had arrived on
// this node's portal, with the nexus and target port it really came through.
//
// Ordering contract: a forwarded command always settles, within `forwardTimeoutMs` (plus the
// connection attempt's share of it): a coordinator that can't be reached, or says it does not
// (or no longer, or not yet) coordinate the LUN, is asked again, at the LUN's coordinator as the
// records name it at each try (a takeover moves it, core/cluster/takeover.ts), for up to
// `unreachableHoldMs`; then the answer is NOT READY, ASYMMETRIC ACCESS STATE TRANSITION. A full
// pipe answers BUSY. Both are retried by initiators. It never answers GOOD for a command it did
// not see answered GOOD by a coordinator. A command that timed out, or whose connection broke,
// may still run at the coordinator it was sent to (it cannot be recalled): the retry writes the
// same data again, and a coordinator that lost the LUN can no longer write (its segments' epochs
// moved on), so the older copy never lands after a newer write.
import type { Peers, PeerNode } from "../net/peers.ts";
import type { RequestOutcome } from "../net/connection.ts";
import { bytesToUuid, errorFrame, messageType, uuidToBytes, volumeIdBytes } from "../net/messages.ts";
import { decodeForwardRequest, decodeForwardResponse, decodeScsiTask, forwardDataBytesMax, forwardRequestFrame, forwardResponseFrame, scsiTaskDoneFrame, scsiTaskFrame, type ForwardResponse, type ScsiTaskKind } from "../net/scsi-forward.ts";
import type { ForwardNexus, ForwardedUnit } from "../iscsi/connection.ts";
import { scsiNexus } from "../iscsi/session.ts";
import { decodeCdb } from "../scsi/cdb.ts";
import type { TargetPortGroups } from "../scsi/commands/reports.ts";
import { executeCommand } from "../scsi/logical-unit.ts";
import type { LunStateTable } from "../scsi/lun-state.ts";
import { Asc, SenseKey, Status, checkCondition, illegalRequest, isAccessStateTransition, senseForErrorCode, type ScsiResult } from "../scsi/sense.ts";
import type { BlockDevice, MaybePromise } from "../volume/block-device.ts";
import { assert } from "../util/assert.ts";
import type { Logger } from "../util/log.ts";
import type { NodeRecord } from "./records.ts";

/**
 * How long a forwarded command may take. Under Linux's 30 s SCSI timeout and above a replicated
 * segment's failover (a few seconds), so a command held up by one is answered, not timed out.
 */
export const forwardTimeoutMs = 20_000;
/** How long a command is held and tried again while its coordinator can't be reached (a takeover takes seconds). */
export const unreachableHoldMsDefault = 15_000;
/** The pause between those tries. */
const unreachableRetryMs = 200;
/** A forwarded reset or nexus end. */
const taskTimeoutMs = 5_000;
/** Data-Out and Data-In bytes of forwarded commands in flight from this node at once; more: BUSY. */
export const forwardBytesInflightMax = 128 << 20;

/** The retryable answer while the coordinator can't be reached (SPC-4 §5.15.2.6). */
const unreachable: ScsiResult = checkCondition(SenseKey.notReady, Asc.asymmetricAccessStateTransition);
const busy: ScsiResult = { status: Status.busy };

/** What the coordinator's side needs of the daemon: its local logical units. */
export interface LocalLuns {
  /** The LUN `uuid` if this node runs its logical unit: its device, its target and the target's LUN numbers. */
  localLun(uuid: string): { device: BlockDevice; targetName: string; lunNumbers: () => readonly number[] } | undefined;
}

type ForwardMessage = Parameters<typeof forwardRequestFrame>[1];

function isidHex(isid: Uint8Array): string {
  return Array.from(isid, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class LunForwarder {
  private peers: Peers | null = null;
  private lunStates: LunStateTable | null = null;
  private local: LocalLuns | null = null;
  private readonly directory = new Map<string, PeerNode>();
  private groups: TargetPortGroups;
  private portals: readonly string[] = [];
  private bytesInflight = 0;

  constructor(
    private readonly options: {
      nodeId: string;
      /** This node's portal group tag (core/node/port-ids.ts). */
      portId: number;
      logger: Logger;
      /** See unreachableHoldMsDefault (0: answer NOT READY at once). */
      unreachableHoldMs?: number;
    },
  ) {
    assert(Number.isInteger(options.portId) && options.portId >= 1 && options.portId <= 0xffff, "port id 1..65535");
    this.groups = { relativePortIds: [options.portId], optimized: options.portId };
  }

  /** Starts both ends on the node's transport, with the portal's logical unit state. */
  start(peers: Peers, lunStates: LunStateTable, local: LocalLuns): void {
    assert(this.peers === null, "forwarder started twice");
    this.peers = peers;
    this.lunStates = lunStates;
    this.local = local;
    peers.handle(messageType.scsiCommand, (frame, { tagBytes }) => this.onCommand(frame.requestId, frame.payload, tagBytes));
    peers.handle(messageType.scsiTask, (frame, { tagBytes }) => this.onTask(frame.requestId, frame.payload, tagBytes));
  }

  /** The nodes' records and port numbers, as last read (the service's refresh). */
  setDirectory(nodes: readonly NodeRecord[], ports: ReadonlyMap<string, number>): void {
    this.directory.clear();
    for (const n of nodes) if (n.peer !== undefined && n.peer !== "") this.directory.set(n.id, { id: n.id, name: n.name, address: n.peer });
    const ids = new Set<number>([this.options.portId]);
    for (const [node, id] of ports) if (this.directory.has(node) || node === this.options.nodeId) ids.add(id);
    this.groups = { relativePortIds: [...ids].sort((a, b) => a - b), optimized: this.options.portId };
    // Other nodes' portals for SendTargets: their portal.listen (a wildcard one by the node's address).
    const out: string[] = [];
    for (const n of nodes) {
      const tag = ports.get(n.id);
      const m = /^(.*):(\d+)$/.exec(n.portal);
      if (n.id === this.options.nodeId || tag === undefined || m === null) continue;
      const host = m[1] === "0.0.0.0" || m[1] === "[::]" || m[1] === "" ? n.address : m[1];
      if (host !== undefined && host !== "") out.push(`${host}:${m[2]},${tag}`);
    }
    this.portals = out.sort();
  }

  /** Other nodes' portals as SendTargets lists them ("address:port,tag"). */
  otherPortals(): readonly string[] {
    return this.portals;
  }

  /** The cluster's target port groups as this node (the coordinator of what runs here) reports them. */
  portGroups(): TargetPortGroups {
    return this.groups;
  }

  /**
   * The unit through which this node's portal serves a LUN coordinated elsewhere. `coordinator`
   * is asked at each command (a LUN's coordination can move: sessions keep their unit); when it
   * names this node, the command still goes through the transport, to this node's own handler.
   */
  unit(lun: { uuid: string; coordinator: () => string; blockBytes: number }): ForwardedUnit {
    const lunId = uuidToBytes(lun.uuid);
    return {
      blockBytes: lun.blockBytes,
      execute: (request) => this.forward(lun.coordinator, lunId, request),
      reset: (nexus) => this.task(lun.coordinator(), "lu-reset", lun.uuid, nexus),
      nexusLost: (nexus) => void this.task(lun.coordinator(), "nexus-lost", lun.uuid, nexus),
    };
  }

  // ---- the portal's end ----

  private async forward(coordinator: () => string, lunId: Uint8Array, request: Parameters<ForwardedUnit["execute"]>[0]): Promise<ScsiResult> {
    // The arguments are views into the session's buffers: copied before the first await.
    const cost = (request.dataOut?.length ?? 0) + Math.min(request.dataInBytesMax, forwardDataBytesMax);
    const message: ForwardMessage = { lunId, relativePortId: request.nexus.relativePortId, initiatorName: request.nexus.initiatorName, isid: request.nexus.isid.slice(), cdb: request.cdb.slice(), dataOut: request.dataOut === null ? null : request.dataOut.slice(), dataInBytesMax: Math.min(request.dataInBytesMax, forwardDataBytesMax) };
    if ((message.dataOut?.length ?? 0) > forwardDataBytesMax) return illegalRequest(Asc.invalidFieldInCdb);
    if (this.bytesInflight + cost > forwardBytesInflightMax) return busy;
    this.bytesInflight += cost;
    try {
      const start = performance.now();
      const holdUntil = start + (this.options.unreachableHoldMs ?? unreachableHoldMsDefault);
      for (;;) {
        // Every try within the one bound: the command settles within forwardTimeoutMs in all.
        const r = await this.forwardOnce(coordinator(), message, Math.max(1_000, start + forwardTimeoutMs - performance.now()));
        // From here (unreachable) or from the coordinator (not, or no longer, coordinated there).
        if (!isAccessStateTransition(r) || performance.now() + unreachableRetryMs > holdUntil) return r;
        await Bun.sleep(unreachableRetryMs);
      }
    } finally {
      this.bytesInflight -= cost;
      assert(this.bytesInflight >= 0);
    }
  }

  /** One try at the coordinator named now. */
  private async forwardOnce(coordinator: string, message: ForwardMessage, timeoutMs: number): Promise<ScsiResult> {
    const node = this.directory.get(coordinator);
    if (this.peers === null || node === undefined) return unreachable;
    const out: RequestOutcome<ForwardResponse> = await this.peers.request(node, {
      build: (requestId, tagBytes) => forwardRequestFrame(requestId, message, tagBytes),
      // The payload is a view of the connection's buffer: the Data-In is copied out of it.
      decode: (frame) => {
        const d = decodeForwardResponse(frame.payload);
        return d.ok ? { ok: true, value: { ...d.value, data: d.value.data.slice() } } : d;
      },
      responseType: messageType.scsiCommand,
      timeoutMs,
    });
    if (out.ok) {
      const r = out.value;
      return { status: r.status, ...(r.sense === undefined ? {} : { sense: r.sense }), ...(r.data.length === 0 ? {} : { data: r.data }), ...(r.scsiBytes === undefined ? {} : { scsiBytes: r.scsiBytes }) };
    }
    if (out.reason === "busy" || (out.reason === "remote-error" && out.code === "busy")) return busy;
    if (out.reason === "timeout" || out.reason === "disconnected" || (out.reason === "remote-error" && out.code === "shutting-down")) {
      this.options.logger.debug("forwarded command not answered", { coordinator: node.name, reason: out.reason, message: out.message });
      return unreachable;
    }
    this.options.logger.warn("forwarded command failed", { coordinator: node.name, reason: out.reason, message: out.message });
    return out.reason === "remote-error" && out.code === "unknown-type" ? unreachable : senseForErrorCode("INTERNAL");
  }

  private async task(coordinator: string, kind: ScsiTaskKind, lun: string, nexus: ForwardNexus): Promise<boolean> {
    const node = this.directory.get(coordinator);
    if (this.peers === null || node === undefined) return false;
    const m = { kind, lun, initiatorName: nexus.initiatorName, isid: isidHex(nexus.isid), relativePortId: nexus.relativePortId };
    const out = await this.peers.request(node, { build: (id, tagBytes) => scsiTaskFrame(id, m, tagBytes), decode: () => ({ ok: true, value: undefined }), responseType: messageType.scsiTask, timeoutMs: taskTimeoutMs });
    if (!out.ok) this.options.logger.info("forwarded task not done", { kind, coordinator: node.name, reason: out.reason, message: out.message });
    return out.ok;
  }

  // ---- the coordinator's end ----

  private onCommand(requestId: number, payload: Uint8Array, tagBytes: number): MaybePromise<Uint8Array> {
    const d = decodeForwardRequest(payload);
    if (!d.ok) return errorFrame(requestId, { code: "bad-message", message: d.reason }, tagBytes);
    const m = d.value;
    const answer = (r: ScsiResult): Uint8Array => {
      const data = r.data === undefined ? new Uint8Array(0) : r.data.subarray(0, Math.min(r.data.length, m.dataInBytesMax));
      return forwardResponseFrame(requestId, { status: r.status, ...(r.sense === undefined ? {} : { sense: r.sense }), data, ...(r.scsiBytes === undefined ? {} : { scsiBytes: r.scsiBytes }) }, tagBytes);
    };
    const lunStates = this.lunStates;
    const lun = m.lunId.byteLength === volumeIdBytes ? this.local?.localLun(bytesToUuid(m.lunId)) : undefined;
    // Not (or not yet, or no longer) coordinated here: its record moved (a takeover the records
    // mirror here has not seen yet) or is gone; retryable, as for an unreachable coordinator (a
    // deleted LUN leaves the sender's inventory at its next refresh).
    if (lun === undefined || lunStates === null) return answer(unreachable);
    const port = { targetName: lun.targetName, relativePortId: m.relativePortId, lunNumbers: lun.lunNumbers, portGroups: () => this.groups };
    // Data-Out is a view of the frame, valid during this call: the SCSI layer copies what it keeps
    // past an await (logical-unit.ts), as for an iSCSI PDU's immediate data.
    const dataOut = m.dataOut;
    let result: MaybePromise<ScsiResult>;
    try {
      result = executeCommand({ command: decodeCdb(m.cdb), device: lun.device, port, dataOut, dataInBytesMax: m.dataInBytesMax, nexus: scsiNexus(m.initiatorName, m.isid, m.relativePortId), lunStates });
    } catch (e) {
      this.options.logger.error("forwarded command failed with an exception (a bug)", { error: String(e) });
      result = senseForErrorCode("INTERNAL");
    }
    return result instanceof Promise
      ? result.then(answer, (e: unknown) => {
          this.options.logger.error("forwarded command failed with an exception (a bug)", { error: String(e) });
          return answer(senseForErrorCode("INTERNAL"));
        })
      : answer(result);
  }

  private onTask(requestId: number, payload: Uint8Array, tagBytes: number): Uint8Array {
    const d = decodeScsiTask(payload);
    if (!d.ok) return errorFrame(requestId, { code: "bad-message", message: d.reason }, tagBytes);
    const m = d.value;
    const isid = Uint8Array.from(m.isid.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
    const nexus = scsiNexus(m.initiatorName, isid, m.relativePortId);
    const lunStates = this.lunStates;
    if (lunStates === null) return errorFrame(requestId, { code: "shutting-down", message: "not started" }, tagBytes);
    if (m.kind === "nexus-lost") {
      // Its unit attentions and SPC-2 reservations go; persistent registrations stay (SPC-4 §5.7.5).
      lunStates.forgetNexus(nexus.id);
      return scsiTaskDoneFrame(requestId, tagBytes);
    }
    const lun = this.local?.localLun(m.lun);
    if (lun === undefined) return errorFrame(requestId, { code: "handler-failed", message: `LUN ${m.lun} is not coordinated here` }, tagBytes);
    lunStates.get(lun.device).logicalUnitReset(nexus.id);
    return scsiTaskDoneFrame(requestId, tagBytes);
  }
}
