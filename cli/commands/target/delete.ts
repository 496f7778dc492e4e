import { defineCommand } from "citty";
import { consola } from "consola";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "delete", description: "Delete a target (refused while it has LUNs, unless --force, which deletes them and their data)" },
  args: { ...commonArgs, iqn: { type: "positional", description: "Target name", required: true }, force: { type: "boolean", description: "Also delete the target's LUNs and their data", default: false } },
  async run({ args }) {
    const r = await clientFrom(args).call<{ deletedLuns: number }>("DELETE", `/v1/targets/${encodeURIComponent(args.iqn)}?force=${args.force ? "true" : "false"}`);
    if (args.json) printJson({ deleted: args.iqn, ...r });
    else consola.success(`target ${args.iqn} deleted${r.deletedLuns > 0 ? ` with ${r.deletedLuns} LUN(s)` : ""}`);
  },
});
