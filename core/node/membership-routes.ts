// The control API's membership routes: nodes (list, remove, drain, label) and pools (list,
// create). HTTP shapes onto MembershipOps; request bodies are checked here (the API is public
// to scripts), names and labels again in core/cluster/membership.ts.
import type { Route } from "../control/server.ts";
import type { NodeView, PoolView } from "../control/protocol.ts";
import { QstoraError } from "../util/errors.ts";
import type { MembershipOps } from "./membership-ops.ts";

function stringList(body: unknown, name: string): string[] {
  const v = typeof body === "object" && body !== null ? (body as Record<string, unknown>)[name] : undefined;
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new QstoraError("USAGE", `"${name}" must be a list of strings`);
  return v as string[];
}

export function membershipRoutes(ops: MembershipOps, views: { nodes(): Promise<NodeView[]>; pools(): Promise<PoolView[]> }): Route[] {
  return [
    { method: "GET", pattern: "/v1/nodes", handler: async () => ({ nodes: await views.nodes() }) },
    { method: "DELETE", pattern: "/v1/nodes/:node", handler: ({ params, query }) => ops.remove(params["node"] as string, query.get("force") === "true") },
    {
      method: "POST",
      pattern: "/v1/nodes/:node/drain",
      handler: async ({ params, body }) => {
        const draining = typeof body === "object" && body !== null ? (body as Record<string, unknown>)["draining"] : undefined;
        if (typeof draining !== "boolean") throw new QstoraError("USAGE", 'the request needs "draining": true or false');
        const rec = await ops.drain(params["node"] as string, draining);
        return { name: rec.name, draining: rec.draining === true };
      },
    },
    {
      method: "POST",
      pattern: "/v1/nodes/:node/labels",
      handler: async ({ params, body }) => {
        const rec = await ops.label(params["node"] as string, stringList(body, "args"));
        return { name: rec.name, labels: rec.labels ?? {} };
      },
    },
    { method: "GET", pattern: "/v1/pools", handler: async () => ({ pools: await views.pools() }) },
    {
      method: "POST",
      pattern: "/v1/pools",
      handler: ({ body }) => {
        const name = typeof body === "object" && body !== null ? (body as Record<string, unknown>)["name"] : undefined;
        if (typeof name !== "string") throw new QstoraError("USAGE", 'the request needs "name"');
        return ops.createPool(name, stringList(body, "media"));
      },
    },
  ];
}
