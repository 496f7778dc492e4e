// `qstora node drain NODE [--undo]`: nothing new is placed on the node (or again, with --undo).
import { defineCommand } from "citty";
import { consola } from "consola";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "drain", description: "Mark a node so that nothing new (no new LUN, no new segment) is placed on it; --undo clears the mark" },
  args: {
    ...commonArgs,
    node: { type: "positional", description: "The node's name (or id)", required: true },
    undo: { type: "boolean", description: "Clear the drain mark", default: false },
  },
  async run({ args }) {
    const r = await clientFrom(args).call<{ name: string; draining: boolean }>("POST", `/v1/nodes/${encodeURIComponent(args.node)}/drain`, { draining: !args.undo });
    if (args.json) return printJson(r);
    consola.success(r.draining ? `node ${r.name} is draining: nothing new is placed on it` : `node ${r.name} takes new placements again`);
  },
});
