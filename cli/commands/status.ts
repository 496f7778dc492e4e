// `qstora status`: node, daemon state, portal, archives, targets, LUNs and I/O counters.
import { defineCommand } from "citty";
import { consola } from "consola";
import type { StatusView } from "../../core/control/protocol.ts";
import { isDataDirLocked, readPid } from "../../core/node/lock.ts";
import { readIdentity } from "../../core/node/identity.ts";
import { formatSize } from "../../core/util/size.ts";
import { QstoraError } from "../../core/util/errors.ts";
import { clientFrom, commonArgs, pathsFrom, printJson, printNodes, printTable } from "./_shared.ts";

/** "embedded-raft: na (leader), nb, nc (unreachable)" or the backend and its endpoints. */
function metadataLine(s: StatusView): string {
  const m = s.metadata;
  if (m.members === undefined || m.members.length === 0) return `${m.mode ?? m.backend} ${m.endpoints.join(",")}`;
  return `${m.mode ?? m.backend}: ${m.members.map((x) => `${x.name}${x.leader ? " (leader)" : ""}${x.reachable ? "" : " (unreachable)"}`).join(", ")}`;
}

export default defineCommand({
  meta: { name: "status", description: "Show the node: daemon, portal, archives (size/used), targets, LUNs and I/O" },
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
    consola.log(`health   ${s.health.status}${s.health.checks.map((c) => `\n         ${c.code}: ${c.summary}`).join("")}`);
    consola.log(`node     ${s.node.name} (${s.node.id})\ncluster  ${s.node.clusterId}\ndaemon   running, pid ${s.node.pid}, up ${s.node.uptimeSeconds} s, qstora ${s.node.version}\nportal   ${s.portal}\nmetadata ${metadataLine(s)}\nmanager  ${s.manager === undefined || s.manager === null ? "none elected" : s.manager.name}\nec       ${s.ec.kernel} (available: ${s.ec.available.join(", ")})`);
    consola.log(`io       ${s.io.readOps} reads (${formatSize(s.io.readBytes)}), ${s.io.writeOps} writes (${formatSize(s.io.writeBytes)}), ${s.io.flushes} flushes, ${s.io.errors} errors\n`);
    printNodes(s.nodes);
    process.stdout.write("\n");
    printTable(
      ["ARCHIVE", "STATE", "SIZE", "USED", "FREE", "PATH"],
      s.archives.map((a) => [a.id.slice(0, 8), a.state, formatSize(a.sizeBytes), formatSize(a.writtenBytes), formatSize(a.freeBytes), a.path]),
      "no archives",
    );
    process.stdout.write("\n");
    printTable(["TARGET", "LUNS", "SESSIONS"], s.targets.map((t) => [t.iqn, t.luns.join(",") || "-", String(t.sessions)]), "no targets: create one with `qstora target create IQN`");
    process.stdout.write("\n");
    printTable(
      ["LUN", "NAME", "SIZE", "WRITTEN", "URL"],
      s.luns.map((l) => [String(l.lun), l.name, formatSize(l.sizeBytes), formatSize(l.writtenBytes), l.url]),
      "no LUNs: create one with `qstora lun create --target IQN --size SIZE`",
    );
  },
});
