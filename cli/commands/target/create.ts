import { defineCommand } from "citty";
import { consola } from "consola";
import type { TargetView } from "../../../core/control/protocol.ts";
import { checkIscsiName } from "../../../core/node/names.ts";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "create", description: "Create an iSCSI target, e.g. iqn.2026-11.com.example:disk1" },
  args: { ...commonArgs, iqn: { type: "positional", description: "Target name (iqn.YYYY-MM.reversed.domain[:name])", required: true }, alias: { type: "string", description: "TargetAlias shown to initiators" } },
  async run({ args }) {
    const iqn = checkIscsiName(args.iqn);
    const t = await clientFrom(args).call<TargetView>("POST", "/v1/targets", { iqn, ...(args.alias === undefined ? {} : { alias: args.alias }) });
    if (args.json) printJson(t);
    else consola.success(`target ${t.iqn} created; add a LUN: qstora lun create --target ${t.iqn} --size 10G`);
  },
});
