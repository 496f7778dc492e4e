import { defineCommand } from "citty";
import type { TokenRecord } from "../../../core/cluster/token.ts";
import { clientFrom, commonArgs, printJson, printTable } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List join tokens (ids, creation, expiry; never their secrets)" },
  args: { ...commonArgs },
  async run({ args }) {
    const { tokens } = await clientFrom(args).call<{ tokens: TokenRecord[] }>("GET", "/v1/tokens");
    const shown = tokens.map(({ secretSha256: _, ...t }) => t);
    if (args.json) return printJson(shown);
    const now = Date.now();
    printTable(
      ["ID", "CREATED", "EXPIRES", "DESCRIPTION"],
      shown.map((t) => [t.id, t.createdAt, t.expiresAt === undefined ? "never" : `${t.expiresAt}${Date.parse(t.expiresAt) <= now ? " (expired)" : ""}`, t.description ?? ""]),
      "no join tokens: make one with `qstora token create`",
    );
  },
});
