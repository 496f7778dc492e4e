import { defineCommand } from "citty";
import { parseDuration } from "../../../core/cluster/token.ts";
import { clientFrom, commonArgs, printJson } from "../_shared.ts";

export default defineCommand({
  meta: { name: "create", description: "Create a join token and print it alone on stdout (for scripts); it is shown only once" },
  args: {
    ...commonArgs,
    ttl: { type: "string", description: 'How long it is valid: 90s, 30m, 24h, 7d, or "never" (default 24h)', valueHint: "DURATION" },
    description: { type: "string", description: "A note shown by `token list`", valueHint: "TEXT" },
  },
  async run({ args }) {
    const ttlSeconds = parseDuration(args.ttl ?? "24h");
    const r = await clientFrom(args).call<{ token: string; id: string; expiresAt: string | null }>("POST", "/v1/tokens", { ttlSeconds, ...(args.description === undefined ? {} : { description: args.description }) });
    if (args.json) printJson(r);
    else process.stdout.write(`${r.token}\n`);
  },
});
