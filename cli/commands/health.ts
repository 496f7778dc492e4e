// `qstora health [detail]`: the health checks of the node, each with the items it concerns.
import { defineCommand } from "citty";
import { consola } from "consola";
import type { StatusView } from "../../core/control/protocol.ts";
import { clientFrom, commonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "health", description: "Show HEALTH_OK / HEALTH_WARN / HEALTH_ERR and, with `detail`, every check and what it concerns" },
  args: { ...commonArgs, detail: { type: "positional", description: "`detail` lists the items of each check", required: false } },
  async run({ args }) {
    const { health } = await clientFrom(args).call<StatusView>("GET", "/v1/status");
    if (args.json) return printJson(health);
    consola.log(health.status);
    for (const c of health.checks) {
      consola.log(`${c.severity === "HEALTH_ERR" ? "[ERR] " : "[WRN] "}${c.code}: ${c.summary}`);
      if (args.detail === "detail") for (const d of c.detail) consola.log(`    ${d}`);
    }
  },
});
