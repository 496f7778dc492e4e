import { defineCommand } from "citty";
import { consola } from "consola";
import type { TargetView } from "../../../../core/control/protocol.ts";
import { clientFrom, commonArgs, printJson } from "../../_shared.ts";

export default defineCommand({
  meta: { name: "clear", description: "Stop requiring CHAP on a target" },
  args: { ...commonArgs, iqn: { type: "positional", description: "Target name", required: true } },
  async run({ args }) {
    const t = await clientFrom(args).call<TargetView>("DELETE", `/v1/targets/${encodeURIComponent(args.iqn)}/chap`);
    if (args.json) printJson(t);
    else consola.success(`target ${t.iqn} no longer requires CHAP`);
  },
});
