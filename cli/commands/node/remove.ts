// `qstora node remove NODE [--force]`: takes a node out of the cluster's records.
import { defineCommand } from "citty";
import { consola } from "consola";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "remove", description: "Remove a node from the cluster: refused while it is up or holds LUN data, unless --force (which says what is lost)" },
  args: {
    ...commonArgs,
    node: { type: "positional", description: "The node's name (or id)", required: true },
    force: { type: "boolean", description: "Remove it even while up or holding the only copy of LUNs (their data is lost)", default: false },
  },
  async run({ args }) {
    const r = await clientFrom(args).call<{ removed: string; loses: string[] }>("DELETE", `/v1/nodes/${encodeURIComponent(args.node)}${args.force ? "?force=true" : ""}`);
    if (args.json) return printJson(r);
    consola.success(`node ${r.removed} removed from the cluster`);
    for (const l of r.loses) consola.warn(l);
  },
});
