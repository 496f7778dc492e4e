import { defineCommand } from "citty";
import { consola } from "consola";
import { checkLunNumber } from "../../../core/node/names.ts";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "delete", description: "Delete a LUN and its data" },
  args: { ...commonArgs, target: { type: "string", description: "Target name", required: true, valueHint: "IQN" }, lun: { type: "string", description: "LUN number", required: true, valueHint: "N" } },
  async run({ args }) {
    const lun = checkLunNumber(args.lun);
    await clientFrom(args).call("DELETE", `/v1/luns/${encodeURIComponent(args.target)}/${lun}`);
    if (args.json) printJson({ deleted: { target: args.target, lun } });
    else consola.success(`LUN ${lun} of ${args.target} deleted`);
  },
});
