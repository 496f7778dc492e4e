// Where a segment's units go, and which redundancy a LUN gets by default. Pure: the caller
// gathers nodes, archives and counts from the metadata store; this file only decides.
// Rules (ZettaStor's, design.md's):
// - the units of one segment sit in different fault domains: node groups, or, on a cluster of
//   one node, different archives;
// - among the allowed archives, the emptiest (by used fraction once the unit is added) wins, so
//   used space stays balanced; the primary goes to the node that will coordinate the segment
//   (the LUN's coordinator, `primaryOn`) when one of the chosen copies is there, otherwise to the
//   chosen node with the fewest primaries. A coordinator-local primary saves a network round
//   trip on every read and write (docs/PERFORMANCE.md) and costs no availability: the segment
//   needs its coordinator's node anyway. Primaries stay balanced across the cluster as far as
//   LUNs' coordinators are;
// - replica:2's arbiter (votes, stores no data) goes to a third fault domain;
// - draining nodes, offline archives and archives without room are never chosen.
// It never reads the store, never allocates space: the caller records the placement.

import { assert } from "../util/assert.ts";
import type { Policy } from "../replica/types.ts";

export interface PlacementArchive {
  readonly id: string;
  readonly node: string;
  readonly sizeBytes: number;
  readonly usedBytes: number;
  readonly online: boolean;
}

export interface PlacementNode {
  readonly id: string;
  /** Node group; nodes without one are each their own. */
  readonly faultDomain: string | null;
  readonly draining: boolean;
  /** Primaries the node holds now (all segments). */
  readonly primaries: number;
}

export interface PlacementCluster {
  readonly nodes: readonly PlacementNode[];
  readonly archives: readonly PlacementArchive[];
}

export type UnitPlacementRole = "primary" | "secondary" | "arbiter";

export interface UnitPlacement {
  readonly role: UnitPlacementRole;
  readonly node: string;
  readonly archive: string;
  readonly faultDomain: string;
}

export type Redundancy = Policy | "single";

export type PlacementResult = { readonly ok: true; readonly units: readonly UnitPlacement[] } | { readonly ok: false; readonly reason: string };

/** What an arbiter unit takes in an archive: its entry and a page of state. */
export const arbiterBytes = 1 << 20;

export function dataCopiesOf(r: Redundancy): number {
  return r === "single" ? 1 : r === "replica:2" ? 2 : 3;
}

/** The fault domain of an archive: its node's group; on a one-node cluster, the archive itself. */
export function faultDomainOf(cluster: PlacementCluster, archive: PlacementArchive): string {
  const nodes = new Set(cluster.archives.map((a) => a.node));
  if (nodes.size <= 1) return `archive:${archive.id}`;
  const node = cluster.nodes.find((n) => n.id === archive.node);
  return `group:${node?.faultDomain ?? archive.node}`;
}

function usable(cluster: PlacementCluster, a: PlacementArchive, needBytes: number): boolean {
  const node = cluster.nodes.find((n) => n.id === a.node);
  return node !== undefined && !node.draining && a.online && a.sizeBytes - a.usedBytes >= needBytes;
}

/** Fault domains that could take a unit of `unitBytes` now. */
export function usableDomains(cluster: PlacementCluster, unitBytes: number): string[] {
  const out = new Set<string>();
  for (const a of cluster.archives) if (usable(cluster, a, unitBytes)) out.add(faultDomainOf(cluster, a));
  return [...out].sort();
}

/**
 * The default redundancy for a new LUN: replica:3 with three fault domains or more, otherwise
 * the most the cluster allows, with a sentence saying what was chosen and why.
 */
export function defaultRedundancy(faultDomains: number): { redundancy: Redundancy; message: string | null } {
  assert(Number.isInteger(faultDomains) && faultDomains >= 0);
  if (faultDomains >= 3) return { redundancy: "replica:3", message: null };
  if (faultDomains === 2) {
    return {
      redundancy: "replica:2",
      message: "only 2 fault domains: using replica:2 (replica:3 needs 3); its arbiter shares a fault domain with a copy, so losing that one stops the LUN until it returns. Add a node (or an archive on a one-node cluster) for replica:3",
    };
  }
  return { redundancy: "single", message: "only 1 fault domain: the LUN has a single copy and no redundancy. Add a node (or an archive on a one-node cluster) to replicate it" };
}

/** Whether a redundancy fits the cluster; the reason says what is missing. */
export function checkRedundancy(r: Redundancy, faultDomains: number): { ok: true } | { ok: false; reason: string } {
  const need = r === "replica:2" ? 3 : dataCopiesOf(r);
  if (faultDomains >= need) return { ok: true };
  if (r === "replica:2" && faultDomains === 2) return { ok: true }; // the arbiter shares one (said by defaultRedundancy)
  return { ok: false, reason: `${r} needs ${need} fault domains (node groups, or archives on a one-node cluster); the cluster has ${faultDomains} that can take a unit` };
}

/** Place the units of one segment. Deterministic: equal candidates are taken by id order. */
export function placeSegment(cluster: PlacementCluster, opts: { redundancy: Redundancy; unitBytes: number; primaryOn?: string }): PlacementResult {
  assert(opts.unitBytes > 0, "placeSegment: unit size");
  const copies = dataCopiesOf(opts.redundancy);
  const usedDomains = new Set<string>();
  const picked: PlacementArchive[] = [];
  for (let i = 0; i < copies; i++) {
    const a = emptiest(cluster, opts.unitBytes, usedDomains);
    if (a === null) {
      const domains = usableDomains(cluster, opts.unitBytes).length;
      return { ok: false, reason: `no room for copy ${i + 1} of ${copies} (${opts.redundancy}): ${domains} fault domain(s) have an online archive on a node not draining with ${opts.unitBytes} bytes free, ${copies} are needed` };
    }
    picked.push(a);
    usedDomains.add(faultDomainOf(cluster, a));
  }
  // The primary: a chosen copy on the coordinator's node, else the one whose node holds the
  // fewest primaries; then the emptiest.
  const local = (a: PlacementArchive) => (a.node === opts.primaryOn ? 0 : 1);
  const primaryOf = (a: PlacementArchive) => cluster.nodes.find((n) => n.id === a.node)?.primaries ?? 0;
  const order = [...picked].sort((x, y) => local(x) - local(y) || primaryOf(x) - primaryOf(y) || fill(x, opts.unitBytes) - fill(y, opts.unitBytes) || x.id.localeCompare(y.id));
  const units: UnitPlacement[] = order.map((a, i) => ({ role: i === 0 ? "primary" : "secondary", node: a.node, archive: a.id, faultDomain: faultDomainOf(cluster, a) }));
  if (opts.redundancy === "replica:2") {
    let arb = emptiest(cluster, arbiterBytes, usedDomains);
    // Two fault domains only: the arbiter shares the secondary's (defaultRedundancy says so),
    // never the primary's node, so losing the primary's domain still leaves a majority.
    if (arb === null) {
      const secondary = order[1];
      assert(secondary !== undefined);
      arb = emptiest(cluster, arbiterBytes, new Set(usableDomains(cluster, arbiterBytes).filter((d) => d !== faultDomainOf(cluster, secondary))));
    }
    if (arb === null) return { ok: false, reason: "no room for replica:2's arbiter in another fault domain" };
    units.push({ role: "arbiter", node: arb.node, archive: arb.id, faultDomain: faultDomainOf(cluster, arb) });
  }
  assert(units.filter((u) => u.role === "primary").length === 1);
  return { ok: true, units };
}

function fill(a: PlacementArchive, addBytes: number): number {
  return (a.usedBytes + addBytes) / a.sizeBytes;
}

function emptiest(cluster: PlacementCluster, needBytes: number, excludeDomains: ReadonlySet<string>): PlacementArchive | null {
  let best: PlacementArchive | null = null;
  for (const a of cluster.archives) {
    if (!usable(cluster, a, needBytes) || excludeDomains.has(faultDomainOf(cluster, a))) continue;
    if (best === null || fill(a, needBytes) < fill(best, needBytes) || (fill(a, needBytes) === fill(best, needBytes) && a.id < best.id)) best = a;
  }
  return best;
}
