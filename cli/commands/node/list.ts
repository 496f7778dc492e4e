// `qstora node list`: every node with its state, group, address, archives, flags and labels.
import { defineCommand } from "citty";
import type { NodeView } from "../../../core/control/protocol.ts";
import { clientFrom, commonArgs, printJson, printNodes } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List the cluster's nodes: state (up, suspect, down from its heartbeat), group, address, archives, flags, labels" },
  args: { ...commonArgs },
  async run({ args }) {
    const { nodes } = await clientFrom(args).call<{ nodes: NodeView[] }>("GET", "/v1/nodes");
    if (args.json) return printJson(nodes);
    printNodes(nodes);
  },
});
