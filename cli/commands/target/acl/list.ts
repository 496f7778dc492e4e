import { defineCommand } from "citty";
import { consola } from "consola";
import type { TargetView } from "../../../../core/control/protocol.ts";
import { QstoraError } from "../../../../core/util/errors.ts";
import { clientFrom, commonArgs, printJson } from "../../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "Show a target's access list" },
  args: { ...commonArgs, iqn: { type: "positional", description: "Target name", required: true } },
  async run({ args }) {
    const { targets } = await clientFrom(args).call<{ targets: TargetView[] }>("GET", "/v1/targets");
    const t = targets.find((x) => x.iqn === args.iqn.toLowerCase());
    if (t === undefined) throw new QstoraError("NOT_FOUND", `no target ${args.iqn}`, "List them with `qstora target list`.");
    if (args.json) return printJson(t.acl ?? []);
    consola.log(t.acl === undefined ? "(no access list: every initiator is allowed)" : t.acl.join("\n"));
  },
});
