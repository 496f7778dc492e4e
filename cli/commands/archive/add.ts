import { defineCommand } from "citty";
import { consola } from "consola";
import type { ArchiveView } from "../../../core/control/protocol.ts";
import { parseArchiveSpec } from "../../../core/node/service.ts";
import { formatSize, parseSize } from "../../../core/util/size.ts";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "add", description: "Add an archive: PATH:SIZE creates a sparse file, PATH alone uses an existing file or block device" },
  args: { ...commonArgs, archive: { type: "positional", description: "PATH[:SIZE]", required: true } },
  async run({ args }) {
    const spec = parseArchiveSpec(args.archive, (s) => parseSize(s, "archive size"), process.cwd());
    const a = await clientFrom(args).call<ArchiveView>("POST", "/v1/archives", spec);
    if (args.json) printJson(a);
    else consola.success(`archive ${a.id} added: ${a.path} (${formatSize(a.sizeBytes)})`);
  },
});
