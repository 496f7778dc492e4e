// `qstora status`: the cluster as `ceph -s` shows one: health and its checks, nodes, metadata
// members and leader, manager, capacity per pool; then this node (daemon, portal, archives,
// targets, LUNs, I/O) and hints for the next command. `--json` prints StatusView (docs/CLI.md).
import { defineCommand } from "citty";
import { consola } from "consola";
import type { StatusView } from "../../core/control/protocol.ts";
import { isDataDirLocked, readPid } from "../../core/node/lock.ts";
import { readIdentity } from "../../core/node/identity.ts";
import { formatSize } from "../../core/util/size.ts";
import { QstoraError } from "../../core/util/errors.ts";
import { clientFrom, commonArgs, pathsFrom, printJson, printNodes, printPools, printTable } from "./_shared.ts";

/** "embedded-raft, 2/3 reachable: na, nb (leader), nc (unreachable)", or the mode and its endpoints. */
function metadataLine(s: StatusView): string {
  const m = s.metadata;
  if (m.members.length === 0) return `${m.mode} ${m.endpoints.join(",")}`;
  const reachable = m.members.filter((x) => x.reachable).length;
  return `${m.mode}, ${reachable}/${m.members.length} reachable: ${m.members.map((x) => `${x.name}${x.leader ? " (leader)" : ""}${x.reachable ? "" : " (unreachable)"}`).join(", ")}`;
}

export default defineCommand({
  meta: { name: "status", description: "Show the cluster (health, nodes, metadata, pools) and this node (daemon, archives, targets, LUNs, I/O)" },
  args: { ...commonArgs },
  async run({ args }) {
    const paths = pathsFrom(args);
    const identity = readIdentity(paths.identity);
    let s: StatusView;
    try {
      s = await clientFrom(args).call<StatusView>("GET", "/v1/status");
    } catch (e) {
      if (!(e instanceof QstoraError && e.code === "DAEMON_UNAVAILABLE")) throw e;
      const locked = isDataDirLocked(paths.lock);
      if (args.json) printJson({ node: { id: identity.nodeId, name: identity.name, clusterId: identity.clusterId }, daemon: locked ? "not answering" : "stopped", pid: readPid(paths.pid) });
      else consola.warn(`node ${identity.name}: daemon ${locked ? `running (pid ${readPid(paths.pid) ?? "?"}) but not answering; see ${paths.log}` : "stopped; start it with `qstora start`"}`);
      throw e;
    }
    if (args.json) {
      printJson(s);
      return;
    }
    const dd = args["data-dir"] === undefined ? "" : ` --data-dir ${paths.root}`;
    const count = (state: string) => s.nodes.filter((n) => n.state === state).length;
    const groups = new Set(s.nodes.map((n) => n.group)).size;
    const out: string[] = [
      "  cluster:",
      `    id:       ${s.node.clusterId}`,
      `    health:   ${s.health.status}`,
      ...s.health.checks.map((c) => `              ${c.code}: ${c.summary}`),
      "",
      "  services:",
      `    nodes:    ${s.nodes.length} total: ${count("up")} up, ${count("suspect")} suspect, ${count("down")} down; ${groups} group(s)${s.nodes.some((n) => n.draining) ? `; draining: ${s.nodes.filter((n) => n.draining).map((n) => n.name).join(", ")}` : ""}`,
      `    metadata: ${metadataLine(s)}`,
      `    manager:  ${s.manager === null ? "none elected" : s.manager.name}`,
      "",
      "  this node:",
      `    node:     ${s.node.name} (${s.node.id})`,
      `    daemon:   running, pid ${s.node.pid}, up ${s.node.uptimeSeconds} s, qstora ${s.node.version}`,
      `    portal:   ${(s.portals ?? [s.portal]).join(", ")}`,
      `    ec:       ${s.ec.kernel} (available: ${s.ec.available.join(", ")})`,
      `    io:       ${s.io.readOps} reads (${formatSize(s.io.readBytes)}), ${s.io.writeOps} writes (${formatSize(s.io.writeBytes)}), ${s.io.flushes} flushes, ${s.io.errors} errors`,
      "",
    ];
    process.stdout.write(`${out.join("\n")}\n`);
    printNodes(s.nodes);
    process.stdout.write("\n");
    printPools(s.pools);
    process.stdout.write("\n");
    printTable(
      ["ARCHIVE", "STATE", "MEDIA", "SIZE", "USED", "FREE", "PATH"],
      s.archives.map((a) => [a.id.slice(0, 8), a.state, a.media, formatSize(a.sizeBytes), formatSize(a.writtenBytes), formatSize(a.freeBytes), a.path]),
      "no archives on this node",
    );
    process.stdout.write("\n");
    printTable(["TARGET", "LUNS", "SESSIONS"], s.targets.map((t) => [t.iqn, t.luns.join(",") || "-", String(t.sessions)]), "no targets: create one with `qstora target create IQN`");
    process.stdout.write("\n");
    printTable(
      ["LUN", "NAME", "SIZE", "WRITTEN", "URL"],
      s.luns.map((l) => [String(l.lun), l.name, formatSize(l.sizeBytes), formatSize(l.writtenBytes), l.url]),
      "no LUNs: create one with `qstora lun create --target IQN --size SIZE`",
    );
    if (s.hints.length > 0) process.stdout.write(`\nNext:\n${s.hints.map((h) => `  ${h.replace(/^(qstora [^#]*?)(\s*#|$)/, (_m, cmd: string, rest: string) => `${cmd.trimEnd()}${dd}${rest}`)}`).join("\n")}\n`);
  },
});
