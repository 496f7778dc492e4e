// The daemon's side of the control channel: a small REST router on Bun.serve, loopback by
// default, every request authenticated with the bearer secret (compared in constant time).
// Handlers are plain async functions; this file knows HTTP, not what the handlers do.
import { timingSafeEqual } from "node:crypto";
import type { Logger } from "../util/log.ts";
import { QstoraError, errorTable, isQstoraError } from "../util/errors.ts";

export type Params = Record<string, string>;
export interface RequestContext {
  params: Params;
  query: URLSearchParams;
  body: unknown;
}
export type Handler = (ctx: RequestContext) => Promise<unknown> | unknown;
export interface Route {
  method: "GET" | "POST" | "DELETE";
  pattern: string; // e.g. "/v1/targets/:iqn"
  handler: Handler;
}

const requestBodyBytesMax = 1 << 20;

function matchRoute(pattern: string, path: string): Params | null {
  const p = pattern.split("/");
  const s = path.split("/");
  if (p.length !== s.length) return null;
  const params: Params = {};
  for (let i = 0; i < p.length; i++) {
    const want = p[i] as string;
    const got = s[i] as string;
    if (want.startsWith(":")) params[want.slice(1)] = decodeURIComponent(got);
    else if (want !== got) return null;
  }
  return params;
}

function secretMatches(header: string | null, secret: Buffer): boolean {
  if (header === null || !header.startsWith("Bearer ")) return false;
  const given = Buffer.from(header.slice("Bearer ".length));
  return given.length === secret.length && timingSafeEqual(given, secret);
}

function errorResponse(e: QstoraError): Response {
  return Response.json({ error: e.toJSON() }, { status: errorTable[e.code].http });
}

export interface ControlServer {
  readonly url: string;
  stop(): void;
}

/**
 * `secret` null serves without the bearer check: only for routes that authenticate each request
 * themselves (the cluster listener's join, which checks a join token) or are public (the CA).
 */
export function startControlServer(options: { host: string; port: number; secret: string | null; routes: Route[]; logger: Logger; tls?: { cert: string; key: string } }): ControlServer {
  const secret = options.secret === null ? null : Buffer.from(options.secret);
  const server = Bun.serve({
    hostname: options.host,
    port: options.port,
    maxRequestBodySize: requestBodyBytesMax,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    async fetch(req) {
      if (secret !== null && !secretMatches(req.headers.get("authorization"), secret)) {
        return errorResponse(new QstoraError("UNAUTHENTICATED", "missing or wrong control secret", "The CLI reads it from control.secret in the data directory."));
      }
      const url = new URL(req.url);
      for (const route of options.routes) {
        if (route.method !== req.method) continue;
        const params = matchRoute(route.pattern, url.pathname);
        if (params === null) continue;
        try {
          const text = req.method === "GET" ? "" : await req.text();
          const body = text === "" ? {} : (JSON.parse(text) as unknown);
          const result = await route.handler({ params, query: url.searchParams, body });
          return Response.json(result ?? {});
        } catch (e) {
          if (isQstoraError(e)) return errorResponse(e);
          if (e instanceof SyntaxError) return errorResponse(new QstoraError("USAGE", "the request body is not JSON"));
          options.logger.error("control request failed", { method: req.method, path: url.pathname, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
          return errorResponse(new QstoraError("INTERNAL", `internal error: ${e instanceof Error ? e.message : String(e)}`, "See qstora.log in the data directory."));
        }
      }
      return errorResponse(new QstoraError("NOT_FOUND", `no such API call: ${req.method} ${url.pathname}`));
    },
  });
  return {
    url: `${options.tls === undefined ? "http" : "https"}://${options.host.includes(":") ? `[${options.host}]` : options.host}:${server.port}`,
    stop: () => void server.stop(true),
  };
}
