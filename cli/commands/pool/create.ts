// `qstora pool create NAME [--media M ...]`: a pool of the archives of those media.
import { defineCommand } from "citty";
import { consola } from "consola";
import { checkPoolName } from "../../../core/cluster/membership.ts";
import { checkMedia } from "../../../core/archive/media.ts";
import { clientFrom, commonArgs, printJson, repeated } from "../_shared.ts";

export default defineCommand({
  meta: { name: "create", description: "Create a storage pool holding the archives of the given media (every archive without --media)" },
  args: {
    ...commonArgs,
    name: { type: "positional", description: "Pool name", required: true },
    media: { type: "string", description: "nvme, ssd, hdd or file; repeat for more", valueHint: "MEDIA" },
  },
  async run({ args, rawArgs }) {
    const name = checkPoolName(args.name);
    const media = repeated(rawArgs, "media").map(checkMedia);
    const r = await clientFrom(args).call<{ name: string; media: string[] }>("POST", "/v1/pools", { name, media });
    if (args.json) return printJson(r);
    consola.success(`pool ${r.name} created (${r.media.length === 0 ? "every archive" : `archives on ${r.media.join(", ")}`})`);
  },
});
