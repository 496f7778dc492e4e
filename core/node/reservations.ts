// Persistent reservations that survive restarts (APTPL, SPC-4 §5.7.5): the SCSI layer's snapshots
// kept in the metadata store under /qstora/v1/reservations/<lun-uuid>. Loaded once at start (the
// SCSI layer asks synchronously); saved after every change while APTPL is set, in the background:
// a failed save is logged, and the reservation still holds in memory.
import type { BlockDevice } from "../volume/block-device.ts";
import type { LunStatePersistence, ReservationSnapshot } from "../scsi/lun-state.ts";
import type { MetaStore } from "../meta/store.ts";
import type { Logger } from "../util/log.ts";
import { keys } from "./records.ts";

interface StoredSnapshot {
  generation: number;
  registrations: Array<{ nexusId: string; initiatorPort: string; relativePortId: number; key: string }>;
  reservation: { holder: string; type: number } | null;
}

/** JSON text for a snapshot (reservation keys are 64-bit: kept as hex strings). */
export function encodeSnapshot(s: ReservationSnapshot): string {
  const stored: StoredSnapshot = {
    generation: s.generation,
    registrations: s.registrations.map((r) => ({ nexusId: r.nexusId, initiatorPort: r.initiatorPort, relativePortId: r.relativePortId, key: r.key.toString(16) })),
    reservation: s.reservation === null ? null : { holder: s.reservation.holder, type: s.reservation.type },
  };
  return JSON.stringify(stored);
}

export function decodeSnapshot(text: string): ReservationSnapshot {
  const s = JSON.parse(text) as StoredSnapshot;
  return {
    generation: s.generation,
    registrations: s.registrations.map((r) => ({ nexusId: r.nexusId, initiatorPort: r.initiatorPort, relativePortId: r.relativePortId, key: BigInt(`0x${r.key}`) })),
    reservation: s.reservation,
  };
}

export async function loadReservations(meta: MetaStore, logger: Logger): Promise<Map<string, ReservationSnapshot>> {
  const out = new Map<string, ReservationSnapshot>();
  for (const kv of await meta.list(keys.reservations)) {
    try {
      out.set(kv.key.slice(keys.reservations.length), decodeSnapshot(kv.value));
    } catch (e) {
      logger.error("a stored reservation is damaged; ignored", { key: kv.key, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return out;
}

/**
 * Reads one LUN's stored snapshot again into `loaded` (a LUN taken over by this node: the map was
 * read at this daemon's start, the LUN's reservations may have changed on its old node since).
 */
export async function reloadReservation(meta: MetaStore, loaded: Map<string, ReservationSnapshot>, uuid: string, logger: Logger): Promise<void> {
  const kv = await meta.get(keys.reservation(uuid));
  loaded.delete(uuid);
  if (kv === undefined) return;
  try {
    loaded.set(uuid, decodeSnapshot(kv.value));
  } catch (e) {
    logger.error("a stored reservation is damaged; ignored", { key: kv.key, error: e instanceof Error ? e.message : String(e) });
  }
}

export function reservationPersistence(meta: MetaStore, loaded: Map<string, ReservationSnapshot>, logger: Logger): LunStatePersistence {
  return {
    loadReservations: (device: BlockDevice) => loaded.get(device.info().uuid),
    saveReservations: (device: BlockDevice, snapshot: ReservationSnapshot | null) => {
      const uuid = device.info().uuid;
      const done = snapshot === null ? meta.delete(keys.reservation(uuid)) : meta.put(keys.reservation(uuid), encodeSnapshot(snapshot));
      done.catch((e: unknown) => logger.error("saving a persistent reservation failed", { lun: uuid, error: e instanceof Error ? e.message : String(e) }));
    },
  };
}
