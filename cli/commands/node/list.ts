import { defineCommand } from "citty";
import type { StatusView } from "../../../core/control/protocol.ts";
import { clientFrom, commonArgs, printJson, printNodes } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List the cluster's nodes: name, state (up while its heartbeat lives), portal, id" },
  args: { ...commonArgs },
  async run({ args }) {
    const { nodes } = await clientFrom(args).call<StatusView>("GET", "/v1/status");
    if (args.json) return printJson(nodes);
    printNodes(nodes);
  },
});
