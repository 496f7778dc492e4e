// Test and benchmark support: several qstora "nodes" inside one process, each with its own
// archive file, its own Peers on its own 127.x.y.z address and port, its router and its unit
// driver, plus a client node that hosts the coordinators and the failover manager. A node can be
// killed (its drivers stop, its archive is abandoned unflushed, its listener closes) and
// restarted from its files on the same address. Never imported by the daemon.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomLoopback } from "../../test/helpers/node.ts";
import { Archive, type SegmentUnit } from "../archive/archive.ts";
import { FailoverDriver } from "../cluster/failover-driver.ts";
import type { ManagerConfig } from "../cluster/failover.ts";
import { startPeers, type PeerNode, type Peers } from "../net/peers.ts";
import { testCluster, testNodeTls } from "../net/test-certs.ts";
import type { PeerTls } from "../net/peer.ts";
import { assert } from "../util/assert.ts";
import { silentLogger } from "../util/log.ts";
import { ReplicatedSegment, type CoordinatorLimits } from "./coordinator.ts";
import { MemoryMembershipStore } from "./record-store.ts";
import { ReplicaRouter } from "./transport.ts";
import type { Address, Membership, Policy, UnitId } from "./types.ts";
import { managerAddress } from "./types.ts";
import { UnitDriver } from "./unit-driver.ts";
import { createEpoch, type UnitConfig } from "./unit.ts";

export const testClusterId = "11111111-2222-4333-8444-555555555555";
export const testVolumeId = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const MiB = 1 << 20;

export interface SegmentPlan {
  readonly segment: string;
  /** The segment index inside the test volume (its archive units are found by it). */
  readonly index: number;
  readonly policy: Policy;
  /** Node index of each data unit, primary first. */
  readonly dataNodes: readonly number[];
  readonly arbiterNode: number | null;
  readonly sizeBytes: number;
}

export function unitIdOf(segment: string, i: number): UnitId {
  return `${segment}/u${i}`;
}
export function arbiterIdOf(segment: string): UnitId {
  return `${segment}/arb`;
}

interface Running {
  peers: Peers;
  router: ReplicaRouter;
  driver: UnitDriver;
  archive: Archive;
}

export class TestNode {
  readonly dir: string;
  readonly archivePath: string;
  readonly tls: PeerTls;
  port = 0;
  running: Running | null = null;

  constructor(
    readonly cluster: TestReplicaCluster,
    readonly index: number,
    readonly id: string,
    readonly host: string,
  ) {
    this.dir = join(cluster.baseDir, id);
    mkdirSync(this.dir, { recursive: true });
    this.archivePath = join(this.dir, "archive.img");
    this.tls = testNodeTls(cluster.ca, id, host);
  }

  peerNode(): PeerNode {
    assert(this.port > 0, "node never started");
    return { id: this.id, name: this.id, address: `${this.host}:${this.port}` };
  }

  /** The archive unit of a segment on this node (the running archive's). */
  unitOf(index: number): SegmentUnit | undefined {
    const a = this.running?.archive;
    if (a === undefined) return undefined;
    const info = a.listUnits().find((u) => u.volumeId === testVolumeId && u.segmentIndex === index);
    return info === undefined ? undefined : a.openUnit(info.unitId);
  }

  start(): void {
    assert(this.running === null, "node started twice");
    const c = this.cluster;
    const fresh = this.port === 0;
    const archive = fresh ? Archive.create({ path: this.archivePath, sizeBytes: 64 * MiB, clusterId: testClusterId }) : Archive.open(this.archivePath, { clusterId: testClusterId });
    const peers = startPeers({ host: this.host, port: this.port, tls: this.tls, self: { nodeId: this.id, name: this.id }, logger: silentLogger });
    this.port = Number(peers.address.split(":").pop());
    const router = new ReplicaRouter({ peers, directory: (to) => c.nodeOfAddress(to), selfNodeId: this.id, logger: silentLogger });
    const driver = new UnitDriver({ router, store: c.store, stateDir: join(this.dir, "units"), logger: silentLogger, ...(c.unitCfg === undefined ? {} : { cfg: c.unitCfg }) });
    this.running = { peers, router, driver, archive };
    for (const plan of c.plans) {
      plan.dataNodes.forEach((n, i) => {
        if (n !== this.index) return;
        let unit = this.unitOf(plan.index);
        if (unit === undefined) {
          const created = archive.createUnit({ volumeId: testVolumeId, segmentIndex: plan.index, sizeBytes: plan.sizeBytes });
          assert(created.ok, "test unit not created");
          unit = created.value;
        }
        driver.host({ unitId: unitIdOf(plan.segment, i), segment: plan.segment, store: { archive, unit } });
      });
      if (plan.arbiterNode === this.index) driver.host({ unitId: arbiterIdOf(plan.segment), segment: plan.segment, store: null });
    }
  }

  /** As SIGKILL would: nothing more is persisted, sent or flushed; the listener goes away. */
  kill(): void {
    const r = this.running;
    assert(r !== null, "node not running");
    r.driver.stop();
    r.router.close();
    r.peers.close();
    r.archive.abandon();
    this.running = null;
  }
}

export class TestReplicaCluster {
  readonly ca = testCluster("replica-drivers");
  readonly baseDir = mkdtempSync(join(tmpdir(), "qstora-replica-"));
  readonly store = new MemoryMembershipStore();
  readonly nodes: TestNode[] = [];
  readonly client: { peers: Peers; router: ReplicaRouter; node: PeerNode; manager: FailoverDriver | null };
  private readonly unitNode = new Map<UnitId, number>();
  private readonly coordinators: ReplicatedSegment[] = [];

  constructor(
    nodeCount: number,
    readonly plans: readonly SegmentPlan[],
    readonly unitCfg?: UnitConfig,
    managerCfg?: ManagerConfig,
  ) {
    for (let i = 0; i < nodeCount; i++) this.nodes.push(new TestNode(this, i, `n${i}`, randomLoopback()));
    for (const p of plans) {
      p.dataNodes.forEach((n, i) => this.unitNode.set(unitIdOf(p.segment, i), n));
      if (p.arbiterNode !== null) this.unitNode.set(arbiterIdOf(p.segment), p.arbiterNode);
      const m: Membership = {
        segment: p.segment,
        epoch: createEpoch,
        policy: p.policy,
        primary: unitIdOf(p.segment, 0),
        secondaries: p.dataNodes.slice(1).map((_, i) => unitIdOf(p.segment, i + 1)),
        inactive: [],
        arbiter: p.arbiterNode === null ? null : arbiterIdOf(p.segment),
      };
      this.store.records.set(p.segment, m);
    }
    const host = randomLoopback();
    const peers = startPeers({ host, port: 0, tls: testNodeTls(this.ca, "client", host), self: { nodeId: "client", name: "client" }, logger: silentLogger });
    const node = { id: "client", name: "client", address: peers.address };
    const router = new ReplicaRouter({ peers, directory: (to) => this.nodeOfAddress(to), selfNodeId: "client", logger: silentLogger });
    this.client = { peers, router, node, manager: null };
    for (const n of this.nodes) n.start();
    if (managerCfg !== undefined) this.client.manager = new FailoverDriver({ router, store: this.store, segments: plans.map((p) => p.segment), cfg: managerCfg });
  }

  nodeOfAddress(to: Address): PeerNode | undefined {
    if (to === managerAddress || to.startsWith("client:")) return this.client.node;
    const i = this.unitNode.get(to);
    if (i === undefined) return undefined;
    const n = this.nodes[i];
    return n === undefined || n.port === 0 ? undefined : n.peerNode();
  }

  nodeOfUnit(unit: UnitId): TestNode {
    const i = this.unitNode.get(unit);
    assert(i !== undefined, `unknown unit ${unit}`);
    return this.nodes[i] as TestNode;
  }

  /** A coordinator of `segment`; `address` to start one again in place of an earlier one. */
  coordinator(segment: string, limits?: Partial<CoordinatorLimits>, address?: string): ReplicatedSegment {
    const client = address ?? `client:test/${segment}/${this.coordinators.length}`;
    const c = new ReplicatedSegment({ router: this.client.router, store: this.store, segment, client, ...(limits === undefined ? {} : { limits }) });
    this.coordinators.push(c);
    return c;
  }

  close(): void {
    this.client.manager?.stop();
    for (const n of this.nodes) if (n.running !== null) n.kill();
    this.client.router.close();
    this.client.peers.close();
    rmSync(this.baseDir, { recursive: true, force: true });
  }
}
