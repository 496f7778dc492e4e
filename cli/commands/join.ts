// `qstora join`: adds this server to an existing cluster and starts its daemon.
import { defineCommand } from "citty";
import { consola } from "consola";
import { hostname } from "node:os";
import { joinDataDir, startBackground } from "../../core/node/lifecycle.ts";
import { parseArchiveSpec } from "../../core/node/service.ts";
import { parseSize } from "../../core/util/size.ts";
import { QstoraError } from "../../core/util/errors.ts";
import { commonArgs, last, pathsFrom, printJson, repeated } from "./_shared.ts";

export default defineCommand({
  meta: { name: "join", description: "Join an existing cluster through one of its nodes (the one that created it) and start the daemon" },
  args: {
    ...commonArgs,
    member: { type: "positional", description: "A cluster node's address, ADDRESS[:PORT] (its cluster listener, port 7326)", required: true },
    token: { type: "string", description: "Join token from `qstora token create` (or $QSTORA_TOKEN)", valueHint: "TOKEN" },
    archive: { type: "string", description: "An archive: PATH:SIZE makes a sparse file, PATH alone uses a file or block device. Repeat for more.", valueHint: "PATH[:SIZE]", required: true },
    address: { type: "string", description: "Address for all of this node's listeners (default 127.0.0.1)", valueHint: "ADDR" },
    portal: { type: "string", description: "iSCSI portal (default ADDRESS:3260)", valueHint: "ADDR:PORT" },
    "extra-portal": { type: "string", description: "Another iSCSI portal of the same portal group (e.g. a second NIC); repeat for more", valueHint: "ADDR:PORT" },
    name: { type: "string", description: "Node name, unique in the cluster (default: the host name)", valueHint: "NODE" },
    group: { type: "string", description: "Fault domain of this node (default: its name); copies of a segment go to different groups", valueHint: "NAME" },
  },
  async run({ args, rawArgs }) {
    const token = last(args.token) ?? process.env["QSTORA_TOKEN"];
    if (token === undefined || token === "") throw new QstoraError("USAGE", "join needs a token: --token TOKEN or $QSTORA_TOKEN", "Make one on a cluster node with `qstora token create`.");
    const archives = repeated(rawArgs, "archive").map((t) => parseArchiveSpec(t, (s) => parseSize(s, "archive size"), process.cwd()));
    const paths = pathsFrom(args);
    const joined = await joinDataDir({
      dataDir: paths.root,
      member: args.member,
      token,
      archives,
      name: last(args.name) ?? hostname(),
      ...(last(args.group) === undefined ? {} : { group: last(args.group) as string }),
      ...(last(args.address) === undefined ? {} : { address: last(args.address) as string }),
      ...(last(args.portal) === undefined ? {} : { portal: last(args.portal) as string }),
      ...(repeated(rawArgs, "extra-portal").length === 0 ? {} : { extraPortals: repeated(rawArgs, "extra-portal") }),
    });
    const status = await startBackground(paths);
    if (args.json) return printJson({ clusterId: joined.identity.clusterId, nodeId: joined.identity.nodeId, dataDir: paths.root, status });
    consola.success(`joined cluster ${joined.identity.clusterId} as ${joined.identity.name}; daemon started (pid ${status.node.pid}), portal ${status.portal}`);
    consola.log(`  cluster: ${status.nodes.map((n) => `${n.name} (${n.state})`).join(", ")}`);
  },
});
