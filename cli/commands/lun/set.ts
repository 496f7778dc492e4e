import { defineCommand } from "citty";
import { consola } from "consola";
import type { LunView } from "../../../core/control/protocol.ts";
import { checkLunNumber } from "../../../core/node/names.ts";
import { QstoraError } from "../../../core/util/errors.ts";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "set", description: "Change a LUN's settings: --write-cache on (write-back, the default) or off (write-through: every write is flushed before it is acknowledged)" },
  args: {
    ...commonArgs,
    target: { type: "string", description: "Target name", required: true, valueHint: "IQN" },
    lun: { type: "string", description: "LUN number", required: true, valueHint: "N" },
    "write-cache": { type: "string", description: "on or off", valueHint: "on|off" },
  },
  async run({ args }) {
    const lun = checkLunNumber(args.lun);
    const wc = args["write-cache"];
    if (wc === undefined) throw new QstoraError("USAGE", "nothing to set", "Give --write-cache on|off.");
    if (wc !== "on" && wc !== "off") throw new QstoraError("INVALID_ARGUMENT", `--write-cache must be on or off (got "${wc}")`);
    const l = await clientFrom(args).call<LunView>("POST", `/v1/luns/${encodeURIComponent(args.target)}/${lun}/settings`, { writeCache: wc === "on" });
    if (args.json) printJson(l);
    else consola.success(`LUN ${l.lun} of ${l.target}: write cache ${l.writeCache ? "on (write-back)" : "off (write-through)"}`);
  },
});
