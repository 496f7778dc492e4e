// The control API's routes: HTTP shapes onto NodeService calls. Validation of request bodies
// happens here (the CLI validates too, but the API is public to scripts).
import type { Route } from "../control/server.ts";
import type { LunCreateRequest, StatusView } from "../control/protocol.ts";
import { QstoraError } from "../util/errors.ts";
import type { NodeService } from "./service.ts";
import { checkMedia } from "../archive/media.ts";

function field<T extends "string" | "number" | "boolean">(body: unknown, name: string, type: T, required: boolean): (T extends "string" ? string : T extends "number" ? number : boolean) | undefined {
  const v = typeof body === "object" && body !== null ? (body as Record<string, unknown>)[name] : undefined;
  if (v === undefined || v === null) {
    if (required) throw new QstoraError("USAGE", `the request needs "${name}"`);
    return undefined;
  }
  if (typeof v !== type) throw new QstoraError("USAGE", `"${name}" must be a ${type}`);
  return v as never;
}

export function controlRoutes(service: NodeService, status: () => Promise<StatusView>, shutdown: () => void, caFingerprint: () => string): Route[] {
  return [
    { method: "GET", pattern: "/v1/tokens", handler: async () => ({ tokens: await service.listTokens() }) },
    {
      method: "POST",
      pattern: "/v1/tokens",
      handler: async ({ body }) => {
        const ttlSeconds = field(body, "ttlSeconds", "number", false);
        const description = field(body, "description", "string", false);
        const { token, record } = await service.createToken({ caFingerprint: caFingerprint(), ...(ttlSeconds === undefined ? {} : { ttlSeconds }), ...(description === undefined ? {} : { description }) });
        return { token, id: record.id, expiresAt: record.expiresAt ?? null };
      },
    },
    { method: "DELETE", pattern: "/v1/tokens/:id", handler: async ({ params }) => (await service.revokeToken(params["id"] as string), {}) },
    { method: "GET", pattern: "/v1/status", handler: () => status() },
    { method: "GET", pattern: "/v1/archives", handler: () => ({ archives: service.archiveViews() }) },
    {
      method: "POST",
      pattern: "/v1/archives",
      handler: ({ body }) => {
        const path = field(body, "path", "string", true) as string;
        const sizeBytes = field(body, "sizeBytes", "number", false);
        const media = field(body, "media", "string", false);
        if (!path.startsWith("/")) throw new QstoraError("USAGE", "archive path must be absolute");
        return service.addArchive({ path, ...(sizeBytes === undefined ? {} : { sizeBytes }), ...(media === undefined ? {} : { media: checkMedia(media) }) });
      },
    },
    { method: "DELETE", pattern: "/v1/archives/:id", handler: async ({ params }) => (await service.removeArchive(params["id"] as string), {}) },
    { method: "GET", pattern: "/v1/targets", handler: () => ({ targets: service.targetViews() }) },
    {
      method: "POST",
      pattern: "/v1/targets",
      handler: ({ body }) => {
        const alias = field(body, "alias", "string", false);
        return service.createTarget({ iqn: field(body, "iqn", "string", true) as string, ...(alias === undefined ? {} : { alias }) });
      },
    },
    {
      method: "POST",
      pattern: "/v1/targets/:iqn/chap",
      handler: ({ params, body }) => {
        const user = field(body, "user", "string", true) as string;
        const secret = field(body, "secret", "string", true) as string;
        const mutualUser = field(body, "mutualUser", "string", false);
        const mutualSecret = field(body, "mutualSecret", "string", false);
        if ((mutualUser === undefined) !== (mutualSecret === undefined)) throw new QstoraError("USAGE", "mutual CHAP needs both mutualUser and mutualSecret");
        return service.setChap(params["iqn"] as string, { user, secret, ...(mutualUser === undefined ? {} : { mutualUser, mutualSecret: mutualSecret as string }) });
      },
    },
    { method: "POST", pattern: "/v1/targets/:iqn/acl", handler: ({ params, body }) => service.changeAcl(params["iqn"] as string, field(body, "initiator", "string", true) as string, "add") },
    { method: "DELETE", pattern: "/v1/targets/:iqn/acl/:initiator", handler: ({ params }) => service.changeAcl(params["iqn"] as string, params["initiator"] as string, "remove") },
    { method: "DELETE", pattern: "/v1/targets/:iqn/chap", handler: ({ params }) => service.setChap(params["iqn"] as string, null) },
    { method: "DELETE", pattern: "/v1/targets/:iqn", handler: ({ params, query }) => service.deleteTarget(params["iqn"] as string, { force: query.get("force") === "true" }) },
    { method: "GET", pattern: "/v1/luns", handler: () => ({ luns: service.lunViews() }) },
    {
      method: "POST",
      pattern: "/v1/luns",
      handler: ({ body }) => {
        const req: LunCreateRequest = { target: field(body, "target", "string", true) as string, sizeBytes: field(body, "sizeBytes", "number", true) as number };
        for (const k of ["lun", "blockBytes", "stripeBytes", "segmentBytes"] as const) {
          const v = field(body, k, "number", false);
          if (v !== undefined) req[k] = v;
        }
        const name = field(body, "name", "string", false);
        if (name !== undefined) req.name = name;
        const redundancy = field(body, "redundancy", "string", false);
        if (redundancy !== undefined) req.redundancy = redundancy;
        const pool = field(body, "pool", "string", false);
        if (pool !== undefined) req.pool = pool;
        return service.createLun(req);
      },
    },
    { method: "DELETE", pattern: "/v1/luns/:target/:lun", handler: async ({ params }) => (await service.deleteLun(params["target"] as string, params["lun"] as string), {}) },
    {
      method: "POST",
      pattern: "/v1/luns/:target/:lun/resize",
      handler: ({ params, body }) => service.resizeLun(params["target"] as string, params["lun"] as string, field(body, "sizeBytes", "number", true) as number),
    },
    {
      method: "POST",
      pattern: "/v1/luns/:target/:lun/settings",
      handler: ({ params, body }) => {
        const writeCache = field(body, "writeCache", "boolean", false);
        return service.setLun(params["target"] as string, params["lun"] as string, writeCache === undefined ? {} : { writeCache });
      },
    },
    {
      method: "POST",
      pattern: "/v1/shutdown",
      handler: () => {
        // Answer first, then stop: the CLI waits for the pid to go away.
        setTimeout(shutdown, 10);
        return { stopping: true };
      },
    },
  ];
}
