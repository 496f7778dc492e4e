import { defineCommand } from "citty";
import type { ArchiveView } from "../../../core/control/protocol.ts";
import { formatSize } from "../../../core/util/size.ts";
import { clientFrom, commonArgs, printJson, printTable } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List this node's archives with media, size, used and free space" },
  args: { ...commonArgs },
  async run({ args }) {
    const { archives } = await clientFrom(args).call<{ archives: ArchiveView[] }>("GET", "/v1/archives");
    if (args.json) return printJson(archives);
    printTable(
      ["ID", "KIND", "MEDIA", "STATE", "SIZE", "USED", "FREE", "UNITS", "PATH"],
      archives.map((a) => [a.id, a.kind, a.media, a.state, formatSize(a.sizeBytes), formatSize(a.writtenBytes), formatSize(a.freeBytes), String(a.unitCount), a.path]),
      "no archives",
    );
  },
});
