import { defineCommand } from "citty";
import { consola } from "consola";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "revoke", description: "Revoke a join token: nodes can no longer join with it (nodes that joined stay)" },
  args: { ...commonArgs, id: { type: "positional", description: "Token id (the part before the dot, after '::')", required: true } },
  async run({ args }) {
    await clientFrom(args).call("DELETE", `/v1/tokens/${encodeURIComponent(args.id)}`);
    if (args.json) printJson({ revoked: args.id });
    else consola.success(`join token ${args.id} revoked`);
  },
});
