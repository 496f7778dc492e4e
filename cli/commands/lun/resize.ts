import { defineCommand } from "citty";
import { consola } from "consola";
import type { LunView } from "../../../core/control/protocol.ts";
import { checkLunNumber } from "../../../core/node/names.ts";
import { formatSize } from "../../../core/util/size.ts";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";
import { parseLunSize } from "./create.ts";

export default defineCommand({
  meta: { name: "resize", description: "Grow a LUN (initiators see the new capacity after a rescan)" },
  args: {
    ...commonArgs,
    target: { type: "string", description: "Target name", required: true, valueHint: "IQN" },
    lun: { type: "string", description: "LUN number", required: true, valueHint: "N" },
    size: { type: "string", description: "New size, e.g. 20G", required: true, valueHint: "SIZE" },
  },
  async run({ args }) {
    const lun = checkLunNumber(args.lun);
    const l = await clientFrom(args).call<LunView>("POST", `/v1/luns/${encodeURIComponent(args.target)}/${lun}/resize`, { sizeBytes: parseLunSize(args.size) });
    if (args.json) printJson(l);
    else consola.success(`LUN ${l.lun} of ${l.target} is now ${formatSize(l.sizeBytes)}`);
  },
});
