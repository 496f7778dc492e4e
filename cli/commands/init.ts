// `qstora init`: create a single-node cluster in the data directory and start its daemon.
import { defineCommand } from "citty";
import { consola } from "consola";
import { hostname } from "node:os";
import { execWithAllocatorEnv } from "../../core/node/allocator.ts";
import { controlClient, initDataDir, selfCommand, startBackground } from "../../core/node/lifecycle.ts";
import { runDaemon } from "../../core/node/daemon.ts";
import { parseArchiveSpec } from "../../core/node/service.ts";
import { parseSize } from "../../core/util/size.ts";
import { QstoraError } from "../../core/util/errors.ts";
import { commonArgs, last, markLongRunning, pathsFrom, printJson, repeated } from "./_shared.ts";

export default defineCommand({
  meta: { name: "init", description: "Create a single-node cluster in the data directory and start the daemon" },
  args: {
    ...commonArgs,
    archive: { type: "string", description: "An archive: PATH:SIZE makes a sparse file of that size, PATH alone uses an existing file or block device. Repeat for more.", valueHint: "PATH[:SIZE]", required: true },
    portal: { type: "string", description: "iSCSI portal address (default 127.0.0.1:3260, or ADDRESS:3260 with --address)", valueHint: "ADDR:PORT" },
    "extra-portal": { type: "string", description: "Another iSCSI portal of the same portal group (e.g. a second NIC); repeat for more", valueHint: "ADDR:PORT" },
    address: { type: "string", description: "Address for all of this node's listeners (default 127.0.0.1)", valueHint: "ADDR" },
    name: { type: "string", description: "Node name (default: the host name)", valueHint: "NODE" },
    group: { type: "string", description: "Fault domain of this node (default: its name); copies of a segment go to different groups", valueHint: "NAME" },
    etcd: { type: "string", description: "Use an external etcd cluster for metadata instead of the embedded store", valueHint: "URL[,URL...]" },
    foreground: { type: "boolean", description: "Run the daemon in this process instead of the background", default: false },
  },
  async run({ args, rawArgs }) {
    const paths = pathsFrom(args);
    const archiveTexts = repeated(rawArgs, "archive");
    if (archiveTexts.length === 0) throw new QstoraError("USAGE", "init needs at least one --archive PATH[:SIZE]", "For example: qstora init --archive /srv/qstora/a1.img:20G");
    const archives = archiveTexts.map((t) => parseArchiveSpec(t, (s) => parseSize(s, "archive size"), process.cwd()));
    const name = last(args.name) ?? hostname();
    const { identity, config } = initDataDir({
      dataDir: paths.root,
      archives,
      name,
      ...(last(args.group) === undefined ? {} : { group: last(args.group) as string }),
      ...(last(args.address) === undefined ? {} : { address: last(args.address) as string }),
      ...(last(args.portal) === undefined ? {} : { portal: last(args.portal) as string }),
      ...(repeated(rawArgs, "extra-portal").length === 0 ? {} : { extraPortals: repeated(rawArgs, "extra-portal") }),
      ...(last(args.etcd) === undefined ? {} : { etcd: (last(args.etcd) as string).split(",").map((s) => s.trim()).filter((s) => s !== "") }),
    });
    if (args.foreground) {
      consola.success(`initialised node ${name} (cluster ${identity.clusterId}) in ${paths.root}; serving in the foreground`);
      // Becomes `qstora serve` with the allocator's settings (core/node/allocator.ts); serves here if it can't.
      const failed = execWithAllocatorEnv([...selfCommand(), "serve", "--data-dir", paths.root], process.env);
      if (failed !== null) consola.warn(failed);
      await runDaemon({ dataDir: paths.root, foreground: true });
      markLongRunning();
      return;
    }
    const status = await startBackground(paths);
    // The first join token: no expiry, like k3s's server token; revoke it with `qstora token revoke`.
    const { token } = await controlClient(paths).call<{ token: string }>("POST", "/v1/tokens", { ttlSeconds: 0, description: "made by init" });
    if (args.json) {
      printJson({ clusterId: identity.clusterId, nodeId: identity.nodeId, dataDir: paths.root, joinToken: token, status });
      return;
    }
    consola.success(`initialised node ${name} in ${paths.root} and started the daemon (pid ${status.node.pid})`);
    consola.log(`  portal:   ${config.portal.listen}`);
    consola.log(`  archives: ${status.archives.map((a) => a.path).join(", ")}`);
    consola.log(`  join token (keep it secret; it pins this cluster's CA): ${token}`);
    const dd = args["data-dir"] === undefined ? "" : ` --data-dir ${paths.root}`;
    consola.log(`\nNext:\n  qstora target create iqn.2026-11.org.qstora:disk1${dd}\n  qstora lun create --target iqn.2026-11.org.qstora:disk1 --size 10G${dd}\n  qstora status${dd}`);
  },
});
