// `qstora node label NODE k=v [k2=v2 ...] [k-]`: sets and removes labels in the node's record.
import { defineCommand } from "citty";
import { consola } from "consola";
import { parseLabelArgs } from "../../../core/cluster/membership.ts";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "label", description: "Set labels on a node (KEY=VALUE) or remove them (KEY-)" },
  args: {
    ...commonArgs,
    node: { type: "positional", description: "The node's name (or id)", required: true },
    labels: { type: "positional", description: "KEY=VALUE to set, KEY- to remove (several allowed)", required: true },
  },
  async run({ args }) {
    const edits = (args._ as string[]).slice(1);
    parseLabelArgs(edits); // refused here, before anything is sent
    const r = await clientFrom(args).call<{ name: string; labels: Record<string, string> }>("POST", `/v1/nodes/${encodeURIComponent(args.node)}/labels`, { args: edits });
    if (args.json) return printJson(r);
    const text = Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(", ");
    consola.success(`node ${r.name} labels: ${text === "" ? "none" : text}`);
  },
});
