import { defineCommand } from "citty";
import { consola } from "consola";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "remove", description: "Remove an archive from the node (refused while LUN data lives there); the file is left in place" },
  args: { ...commonArgs, id: { type: "positional", description: "Archive id (or its path)", required: true } },
  async run({ args }) {
    await clientFrom(args).call("DELETE", `/v1/archives/${encodeURIComponent(args.id)}`);
    if (args.json) printJson({ removed: args.id });
    else consola.success(`archive ${args.id} removed (its file or device was left as it is)`);
  },
});
