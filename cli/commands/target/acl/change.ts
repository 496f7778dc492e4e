import { defineCommand } from "citty";
import { consola } from "consola";
import type { TargetView } from "../../../../core/control/protocol.ts";
import { checkIscsiName } from "../../../../core/node/names.ts";
import { clientFrom, commonArgs, printJson } from "../../_shared.ts";

const args = {
  ...commonArgs,
  iqn: { type: "positional", description: "Target name", required: true },
  initiator: { type: "positional", description: "Initiator name (iqn...)", required: true },
} as const;

function report(t: TargetView, json: boolean): void {
  if (json) printJson(t);
  else consola.success(t.acl === undefined ? `target ${t.iqn}: every initiator is allowed` : `target ${t.iqn} allows: ${t.acl.join(", ")}`);
}

export const addCommand = defineCommand({
  meta: { name: "add", description: "Allow an initiator on a target (the first one turns the access list on)" },
  args,
  async run({ args }) {
    const initiator = checkIscsiName(args.initiator, "initiator name");
    report(await clientFrom(args).call<TargetView>("POST", `/v1/targets/${encodeURIComponent(args.iqn)}/acl`, { initiator }), args.json);
  },
});

export const removeCommand = defineCommand({
  meta: { name: "remove", description: "Remove an initiator from a target's access list (removing the last one allows every initiator again)" },
  args,
  async run({ args }) {
    report(await clientFrom(args).call<TargetView>("DELETE", `/v1/targets/${encodeURIComponent(args.iqn)}/acl/${encodeURIComponent(args.initiator)}`), args.json);
  },
});
