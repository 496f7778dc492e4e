import { defineCommand } from "citty";
import { consola } from "consola";
import type { LunCreateRequest, LunView } from "../../../core/control/protocol.ts";
import { checkLunName, checkLunNumber } from "../../../core/node/names.ts";
import { formatSize, parseSize } from "../../../core/util/size.ts";
import { QstoraError } from "../../../core/util/errors.ts";
import { checkPoolName, defaultPoolName } from "../../../core/cluster/membership.ts";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export function parseLunSize(text: string): number {
  if (text.trim().startsWith("-")) throw new QstoraError("INVALID_ARGUMENT", `LUN size "${text}" is negative`, "Give a positive size such as 10G.");
  const bytes = parseSize(text, "LUN size");
  if (bytes === 0) throw new QstoraError("INVALID_ARGUMENT", "LUN size must be more than 0", "Give a positive size such as 10G.");
  return bytes;
}

export default defineCommand({
  meta: { name: "create", description: "Create a thin-provisioned LUN on a target" },
  args: {
    ...commonArgs,
    target: { type: "string", description: "Target name", required: true, valueHint: "IQN" },
    size: { type: "string", description: "Size with K/M/G/T suffix (binary), e.g. 10G", required: true, valueHint: "SIZE" },
    lun: { type: "string", description: "LUN number (default: the lowest free, from 0)", valueHint: "N" },
    name: { type: "string", description: "A name for the LUN (default lunN)", valueHint: "NAME" },
    "block-size": { type: "string", description: "Logical block size: 512 (default) or 4096", valueHint: "BYTES" },
    stripe: { type: "string", description: "Stripe size, a multiple of 4K (default 1M)", valueHint: "SIZE" },
    "segment-size": { type: "string", description: "Segment size (default 1G)", valueHint: "SIZE" },
    redundancy: { type: "string", description: "none (one copy on this node) or replica:2|replica:3|replica:3-ha across the cluster (default: replica:3 with 3 or more fault domains, else the most the cluster allows)", valueHint: "POLICY" },
    pool: { type: "string", description: "Storage pool whose archives take the LUN's data (default: default, every archive)", valueHint: "POOL" },
  },
  async run({ args }) {
    const req: LunCreateRequest = { target: args.target, sizeBytes: parseLunSize(args.size) };
    if (args.lun !== undefined) req.lun = checkLunNumber(args.lun);
    if (args.name !== undefined) req.name = checkLunName(args.name);
    if (args["block-size"] !== undefined) req.blockBytes = parseSize(args["block-size"], "block size");
    if (args.stripe !== undefined) req.stripeBytes = parseSize(args.stripe, "stripe size");
    if (args["segment-size"] !== undefined) req.segmentBytes = parseSize(args["segment-size"], "segment size");
    if (args.redundancy !== undefined) req.redundancy = args.redundancy;
    if (args.pool !== undefined) req.pool = checkPoolName(args.pool);
    const l = await clientFrom(args).call<LunView & { redundancyReason: string }>("POST", "/v1/luns", req);
    if (args.json) printJson(l);
    else {
      const pool = l.pool === defaultPoolName ? "" : `, pool ${l.pool}`;
      consola.success(`LUN ${l.lun} (${formatSize(l.sizeBytes)}) created on ${l.target}, redundancy ${l.redundancy === "none" ? "none (one copy on this node)" : l.redundancy}${pool}\n  ${l.redundancyReason}\n  ${l.url}`);
    }
  },
});
