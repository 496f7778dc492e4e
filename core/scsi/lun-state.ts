// The state a logical unit shares across every I_T nexus (SAM-5 §4.6): unit attentions queued per
// nexus, the write-cache setting changed by MODE SELECT, the SPC-2 reservation, persistent
// reservations (core/scsi/commands/persistent-reservations.ts works on them) and the gate that
// makes COMPARE AND WRITE atomic against every other command on the LUN. It also knows, per nexus,
// who holds that nexus's tasks (the iSCSI session), so that PREEMPT AND ABORT, CLEAR TASK SET and
// resets can abort tasks of other nexuses. It holds no data and does no I/O itself; persistence
// (APTPL, saved mode pages) goes through `LunStatePersistence`, which the daemon backs with its
// metadata store. Every map here has a named maximum (the task holders: the portal's sessions).
import { assert } from "../util/assert.ts";
import type { BlockDevice } from "../volume/block-device.ts";
import { CopyResultTable } from "./copy-results.ts";
import { Asc, type AdditionalSense } from "./sense.ts";

/** An I_T nexus as the SCSI layer sees it (SAM-5 §4.6.2, RFC 7143 §4.4.3). */
export interface Nexus {
  /** Unique key of the nexus: initiator port and target port. */
  readonly id: string;
  /** The initiator port name: "<initiator iSCSI name>,i,0x<ISID in hex>" (RFC 7143 §4.2.7). */
  readonly initiatorPort: string;
  readonly relativePortId: number;
}

/** Unit attentions kept per nexus; older ones are dropped when more arrive (SPC-4 §5.13 allows it). */
export const unitAttentionsPerNexusMax = 16;
/** Nexuses tracked per logical unit for unit attentions; beyond that the oldest is forgotten. */
export const nexusesPerLunMax = 4096;
/** SPC-4 §5.7.7: registrations kept per logical unit; REGISTER past it gets INSUFFICIENT REGISTRATION RESOURCES. */
export const registrationsMax = 256;

/** The unit attentions this target raises (their codes are in sense.ts's one table). */
export const UnitAttention = {
  powerOnReset: Asc.powerOnResetOrBusDeviceReset,
  modeParametersChanged: Asc.modeParametersChanged,
  reservationsPreempted: Asc.reservationsPreempted,
  reservationsReleased: Asc.reservationsReleased,
  registrationsPreempted: Asc.registrationsPreempted,
  capacityDataChanged: Asc.capacityDataChanged,
  reportedLunsDataChanged: Asc.reportedLunsDataChanged,
  commandsClearedByAnotherInitiator: Asc.commandsClearedByAnotherInitiator,
} as const satisfies Record<string, AdditionalSense>;

export interface Registration {
  readonly nexusId: string;
  readonly initiatorPort: string;
  readonly relativePortId: number;
  key: bigint;
}

export interface PersistentReservation {
  /** The holder's nexus id; for the all-registrants types every registrant holds it. */
  holder: string;
  type: number;
}

/** What APTPL persists (SPC-4 §5.7.5): plain data, copied in and out. */
export interface ReservationSnapshot {
  readonly generation: number;
  readonly registrations: readonly Registration[];
  readonly reservation: PersistentReservation | null;
}

/** How the daemon keeps LU settings across restarts. All optional: absent means memory only. */
export interface LunStatePersistence {
  /** Persistent reservations at startup (APTPL was set when they were saved). */
  loadReservations?(device: BlockDevice): ReservationSnapshot | undefined;
  /** Called after every change while APTPL is set; `null` when APTPL was cleared. */
  saveReservations?(device: BlockDevice, snapshot: ReservationSnapshot | null): void;
}

/**
 * The tasks one I_T nexus has in flight, as the transport holds them (an iSCSI session: writes
 * waiting for Data-Out, commands waiting for COMPARE AND WRITE's turn or for the device).
 */
export interface NexusTasks {
  /**
   * Aborts every task of the nexus addressed to `device`, without answering any (SAM-5 §5.6 with
   * TAS=0: the initiator learns of it from a unit attention); returns how many there were.
   */
  abortTasks(device: BlockDevice): number;
}

export class LunState {
  /** MODE SELECT's write-cache setting when the device cannot keep it itself. */
  writeCacheOverride: boolean | undefined = undefined;
  /** The caching page's RCD as last set (kept, reported, otherwise without effect). */
  readCacheDisabled = false;
  /** SPC-2 RESERVE(6/10) holder. */
  reservedBy: string | null = null;
  /** Persistent reservations (SPC-4 §5.7). */
  generation = 0;
  readonly registrations = new Map<string, Registration>();
  reservation: PersistentReservation | null = null;
  aptpl = false;
  /** The capacity last reported, to raise CAPACITY DATA HAS CHANGED when it moves. */
  sizeBytes: number;
  /** Device calls under way (async), and COMPARE AND WRITE's exclusive turn when it has one. */
  inflight = 0;
  exclusive: Promise<void> | null = null;
  /** EXTENDED COPY commands this LU ran as copy manager, for RECEIVE COPY RESULTS. */
  readonly copies = new CopyResultTable();
  private readonly drainWaiters: Array<() => void> = [];
  private readonly attentions = new Map<string, AdditionalSense[]>();

  constructor(
    readonly device: BlockDevice,
    private readonly persistence: LunStatePersistence,
    /** The logged-in nexuses' task holders, shared with the table (LunStateTable.attachNexus). */
    private readonly nexusTasks: ReadonlyMap<string, ReadonlySet<NexusTasks>> = new Map(),
  ) {
    this.sizeBytes = device.info().sizeBytes;
    const saved = persistence.loadReservations?.(device);
    if (saved !== undefined) {
      this.generation = saved.generation;
      for (const r of saved.registrations) this.registrations.set(r.nexusId, { ...r });
      this.reservation = saved.reservation === null ? null : { ...saved.reservation };
      this.aptpl = true;
    }
  }

  /** Starts tracking a nexus (its first command): later unit attentions reach it. */
  seen(nexusId: string): void {
    if (this.attentions.has(nexusId)) return;
    if (this.attentions.size >= nexusesPerLunMax) {
      const oldest = this.attentions.keys().next().value as string;
      this.attentions.delete(oldest);
    }
    this.attentions.set(nexusId, []);
  }

  forget(nexusId: string): void {
    this.attentions.delete(nexusId);
    this.copies.forget(nexusId);
  }

  /** Queues a unit attention for one nexus (known or not). */
  raiseFor(nexusId: string, sense: AdditionalSense): void {
    this.seen(nexusId);
    const queue = this.attentions.get(nexusId) as AdditionalSense[];
    if (queue.some((s) => s.asc === sense.asc && s.ascq === sense.ascq)) return;
    if (queue.length >= unitAttentionsPerNexusMax) queue.shift();
    queue.push(sense);
  }

  /** Queues a unit attention for every known nexus except `except`. */
  raise(sense: AdditionalSense, except?: string): void {
    for (const id of this.attentions.keys()) if (id !== except) this.raiseFor(id, sense);
  }

  /** The oldest unit attention pending for a nexus, removed; undefined when none. */
  take(nexusId: string): AdditionalSense | undefined {
    return this.attentions.get(nexusId)?.shift();
  }

  pending(nexusId: string): boolean {
    return (this.attentions.get(nexusId)?.length ?? 0) > 0;
  }

  /**
   * Logical unit reset (SAM-5 §6.3.3; a target reset is one per LU): the SPC-2 reservation is
   * released and POWER ON, RESET is raised for every I_T nexus, `requester` (the nexus that sent
   * the task management request, known to the LU or not) included. SAM-5 makes no exception
   * for the requester, and a multipath initiator (libiscsi's MultipathIO.Reset) waits for the
   * attention on each path, the one it reset through too.
   */
  reset(requester?: string): void {
    this.reservedBy = null;
    this.raise(UnitAttention.powerOnReset);
    if (requester !== undefined) this.raiseFor(requester, UnitAttention.powerOnReset);
  }

  /**
   * Aborts the tasks another nexus has on this LU (PREEMPT AND ABORT, CLEAR TASK SET): with TAS=0
   * (our control page) each nexus that lost tasks gets COMMANDS CLEARED BY ANOTHER INITIATOR
   * (SAM-5 §5.6). Returns how many tasks ended.
   */
  abortTasksOf(nexusId: string, options: { attention: boolean }): number {
    let n = 0;
    for (const holder of this.nexusTasks.get(nexusId) ?? []) n += holder.abortTasks(this.device);
    assert(n >= 0);
    if (n > 0 && options.attention) this.raiseFor(nexusId, UnitAttention.commandsClearedByAnotherInitiator);
    return n;
  }

  /**
   * LOGICAL UNIT RESET from `requester`: the tasks of every other logged-in nexus end (their
   * POWER ON, RESET attention tells them why), then reset(). The requester's own tasks are its
   * transport's to end.
   */
  logicalUnitReset(requester: string): void {
    for (const id of this.nexuses()) if (id !== requester) this.abortTasksOf(id, { attention: false });
    this.reset(requester);
  }

  /** Every logged-in nexus (any of them may hold tasks for this LU). */
  nexuses(): string[] {
    return [...this.nexusTasks.keys()];
  }

  /** Counts an async device call; the returned promise settles with it. */
  track<T>(p: Promise<T>): Promise<T> {
    this.inflight++;
    const done = (): void => {
      this.inflight--;
      assert(this.inflight >= 0);
      if (this.inflight === 0) for (const w of this.drainWaiters.splice(0)) w();
    };
    return p.finally(done);
  }

  /** Resolves once no device call is under way on this LUN. */
  drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  snapshot(): ReservationSnapshot {
    return {
      generation: this.generation,
      registrations: [...this.registrations.values()].map((r) => ({ ...r })),
      reservation: this.reservation === null ? null : { ...this.reservation },
    };
  }

  /** After a persistent reservation change: saves while APTPL is set. */
  persist(): void {
    this.persistence.saveReservations?.(this.device, this.aptpl ? this.snapshot() : null);
  }
}

/**
 * The LUNs an EXTENDED COPY arriving through `targetName` from `initiatorName` may read or write
 * besides the LU that received it (the daemon decides; see core/node/daemon.ts).
 */
export type CopyTargetResolver = (scope: { readonly targetName: string; readonly initiatorName: string }) => Iterable<BlockDevice>;

/** The LU states of one portal (shared by all its sessions), by device. */
export class LunStateTable {
  private readonly states = new Map<BlockDevice, LunState>();
  /** Per target: a counter moved when its LUN inventory changes (REPORTED LUNS DATA HAS CHANGED). */
  private readonly inventories = new Map<string, number>();
  /**
   * Who holds each logged-in nexus's tasks. A set: nexus ids name the initiator port and the
   * portal group, not the target, so one initiator port's sessions to two targets share an id.
   */
  private readonly tasks = new Map<string, Set<NexusTasks>>();

  constructor(
    private readonly persistence: LunStatePersistence = {},
    private readonly options: { readonly copyTargets?: CopyTargetResolver } = {},
  ) {}

  /** Candidate copy targets for EXTENDED COPY (without a resolver: none beyond the copy manager). */
  copyTargets(scope: { readonly targetName: string; readonly initiatorName: string }): Iterable<BlockDevice> {
    return this.options.copyTargets?.(scope) ?? [];
  }

  get(device: BlockDevice): LunState {
    let s = this.states.get(device);
    if (s === undefined) {
      s = new LunState(device, this.persistence, this.tasks);
      this.states.set(device, s);
    }
    return s;
  }

  /** Drops a removed LUN's state (the daemon calls it after `lun remove`). */
  delete(device: BlockDevice): void {
    this.states.delete(device);
  }

  /**
   * A session ended (logout or I_T nexus loss): its unit attentions are dropped and its SPC-2
   * reservations released (SPC-2 §5.5.1); persistent registrations stay (SPC-4 §5.7.5).
   */
  forgetNexus(nexusId: string, tasks?: NexusTasks): void {
    const holders = this.tasks.get(nexusId);
    if (tasks !== undefined && holders !== undefined) {
      holders.delete(tasks);
      if (holders.size === 0) this.tasks.delete(nexusId);
    }
    for (const s of this.states.values()) {
      s.forget(nexusId);
      if (s.reservedBy === nexusId) s.reservedBy = null;
    }
  }

  /**
   * A session logged in on `nexusId`: its tasks can now be aborted from other nexuses. Bounded by
   * the portal's session limit (one entry per logged-in session, removed by forgetNexus, which
   * reinstatement calls for the old session before the new one attaches).
   */
  attachNexus(nexusId: string, tasks: NexusTasks): void {
    const holders = this.tasks.get(nexusId) ?? new Set<NexusTasks>();
    holders.add(tasks);
    this.tasks.set(nexusId, holders);
  }

  /** The daemon calls this when a target gains or loses a LUN. */
  lunInventoryChanged(targetName: string): void {
    this.inventories.set(targetName, (this.inventories.get(targetName) ?? 0) + 1);
  }

  inventoryVersion(targetName: string): number {
    return this.inventories.get(targetName) ?? 0;
  }
}
