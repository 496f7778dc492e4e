import { defineCommand } from "citty";
import type { LunView } from "../../../core/control/protocol.ts";
import { formatSize } from "../../../core/util/size.ts";
import { clientFrom, commonArgs, printJson, printTable } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List LUNs with size, space written and iscsi:// URL" },
  args: { ...commonArgs, target: { type: "string", description: "Only this target's LUNs", valueHint: "IQN" } },
  async run({ args }) {
    const { luns } = await clientFrom(args).call<{ luns: LunView[] }>("GET", "/v1/luns");
    const shown = args.target === undefined ? luns : luns.filter((l) => l.target === args.target?.toLowerCase());
    if (args.json) return printJson(shown);
    printTable(
      ["TARGET", "LUN", "NAME", "SIZE", "WRITTEN", "BLOCK", "URL"],
      shown.map((l) => [l.target, String(l.lun), l.name, formatSize(l.sizeBytes), formatSize(l.writtenBytes), String(l.blockBytes), l.url]),
      "no LUNs",
    );
  },
});
