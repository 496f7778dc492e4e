// `qstora pool list`: each pool's media, capacity, used space, archives and nodes.
import { defineCommand } from "citty";
import type { PoolView } from "../../../core/control/protocol.ts";
import { clientFrom, commonArgs, printJson, printPools } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List storage pools: media, capacity, written, free, archives, nodes" },
  args: { ...commonArgs },
  async run({ args }) {
    const { pools } = await clientFrom(args).call<{ pools: PoolView[] }>("GET", "/v1/pools");
    if (args.json) return printJson(pools);
    printPools(pools);
  },
});
