import { defineCommand } from "citty";
import type { LunView } from "../../../core/control/protocol.ts";
import { formatSize } from "../../../core/util/size.ts";
import { clientFrom, commonArgs, printJson, printTable } from "../_shared.ts";

/** Placed segments of a replicated LUN, with how many do not serve plainly ("5 placed, 1 degraded"). */
function segmentsCell(l: LunView): string {
  if (l.segments === undefined) return "-";
  const unavailable = l.segments.filter((s) => s.state === "unavailable").length;
  const degraded = l.segments.filter((s) => s.state !== "unavailable" && (s.inactive.length > 0 || s.state === "failing-over")).length;
  return [`${l.segments.length} placed`, unavailable > 0 ? `${unavailable} unavailable` : "", degraded > 0 ? `${degraded} degraded` : ""].filter((x) => x !== "").join(", ");
}

export default defineCommand({
  meta: { name: "list", description: "List LUNs with size, space written, redundancy, pool, coordinating node, placed segments and iscsi:// URL" },
  args: { ...commonArgs, target: { type: "string", description: "Only this target's LUNs", valueHint: "IQN" } },
  async run({ args }) {
    const { luns } = await clientFrom(args).call<{ luns: LunView[] }>("GET", "/v1/luns");
    const shown = args.target === undefined ? luns : luns.filter((l) => l.target === args.target?.toLowerCase());
    if (args.json) return printJson(shown);
    printTable(
      ["TARGET", "LUN", "NAME", "SIZE", "WRITTEN", "BLOCK", "REDUNDANCY", "POOL", "NODE", "SEGMENTS", "URL"],
      shown.map((l) => [l.target, String(l.lun), l.name, formatSize(l.sizeBytes), formatSize(l.writtenBytes), String(l.blockBytes), l.redundancy, l.pool, l.coordinator ?? "-", segmentsCell(l), l.url]),
      "no LUNs",
    );
  },
});
