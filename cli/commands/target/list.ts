import { defineCommand } from "citty";
import type { TargetView } from "../../../core/control/protocol.ts";
import { clientFrom, commonArgs, printJson, printTable } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List targets with their LUNs and sessions" },
  args: { ...commonArgs },
  async run({ args }) {
    const { targets } = await clientFrom(args).call<{ targets: TargetView[] }>("GET", "/v1/targets");
    if (args.json) return printJson(targets);
    printTable(["TARGET", "ALIAS", "LUNS", "SESSIONS"], targets.map((t) => [t.iqn, t.alias ?? "-", t.luns.join(",") || "-", String(t.sessions)]), "no targets");
  },
});
