// `qstora quickstart` (what `npm start` runs): a single-node cluster in ./.qstora on a file
// archive with a 1 GiB LUN, ready for an initiator. Safe to run again: it reuses what exists.
import { defineCommand } from "citty";
import { consola } from "consola";
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type { LunView, StatusView } from "../../core/control/protocol.ts";
import { controlClient, initDataDir, startBackground } from "../../core/node/lifecycle.ts";
import { isDataDirLocked } from "../../core/node/lock.ts";
import { dataDirPaths } from "../../core/node/paths.ts";
import { printJson } from "./_shared.ts";

const quickstartTarget = "iqn.2026-11.org.qstora:quickstart";

export default defineCommand({
  meta: { name: "quickstart", description: "Make (or restart) a demo node in ./.qstora: a 2 GiB file archive and a 1 GiB LUN" },
  args: {
    "data-dir": { type: "string", description: "Data directory (default ./.qstora)", valueHint: "DIR" },
    portal: { type: "string", description: "iSCSI portal (default 127.0.0.1:3260)", valueHint: "ADDR:PORT" },
    json: { type: "boolean", description: "Print machine-readable JSON", default: false },
  },
  async run({ args }) {
    const paths = dataDirPaths(resolve(args["data-dir"] ?? ".qstora"));
    if (!existsSync(paths.identity)) {
      initDataDir({ dataDir: paths.root, archives: [{ path: join(paths.root, "archive-1.img"), sizeBytes: 2 * 2 ** 30 }], name: hostname(), ...(args.portal === undefined ? {} : { portal: args.portal }) });
    }
    if (!isDataDirLocked(paths.lock)) await startBackground(paths);
    const client = controlClient(paths);
    let status = await client.call<StatusView>("GET", "/v1/status");
    if (!status.targets.some((t) => t.iqn === quickstartTarget)) await client.call("POST", "/v1/targets", { iqn: quickstartTarget });
    if (!status.luns.some((l) => l.target === quickstartTarget)) await client.call<LunView>("POST", "/v1/luns", { target: quickstartTarget, sizeBytes: 1 << 30, name: "quickstart" });
    status = await client.call<StatusView>("GET", "/v1/status");
    const lun = status.luns.find((l) => l.target === quickstartTarget);
    if (args.json) return printJson({ dataDir: paths.root, url: lun?.url, status });
    const dd = `--data-dir ${paths.root}`;
    consola.success(`qstora is running (pid ${status.node.pid}) with a 1 GiB LUN:\n\n    ${lun?.url}\n`);
    consola.log(`Try it (Debian packages libiscsi-bin, qemu-utils and qemu-block-extra; open-iscsi for the kernel):
  iscsi-inq ${lun?.url}
  qemu-img info ${lun?.url}
  sudo iscsiadm -m discovery -t st -p ${status.portal}

Manage it (or use dist/qstora after \`npm run build\`):
  npm run qstora -- status ${dd}
  npm run qstora -- lun create --target ${quickstartTarget} --size 4G ${dd}
  npm run qstora -- stop ${dd}`);
  },
});
