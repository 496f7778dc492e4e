// The CLI's side of the control channel: authenticated HTTP calls to the local daemon.
// Turns every failure into a QstoraError: DAEMON_UNAVAILABLE when nothing answers, the daemon's
// own error code otherwise. Never retries a request that changes state.
import { QstoraError, isErrorCode } from "../util/errors.ts";

export const controlRequestTimeoutMs = 60_000;

export class ControlClient {
  constructor(
    private readonly baseUrl: string,
    private readonly secret: string,
  ) {}

  async call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.secret}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(options.timeoutMs ?? controlRequestTimeoutMs),
      });
    } catch (e) {
      const timedOut = e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError");
      if (timedOut) throw new QstoraError("TIMEOUT", `the daemon did not answer ${method} ${path} in time`, "See qstora.log in the data directory.");
      throw new QstoraError("DAEMON_UNAVAILABLE", `the qstora daemon is not running (nothing answers on ${this.baseUrl})`, "Start it with `qstora start`.");
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? {} : JSON.parse(text);
    } catch {
      throw new QstoraError("INTERNAL", `the daemon answered ${res.status} with something that is not JSON`);
    }
    if (!res.ok) {
      const err = (parsed as { error?: { code?: unknown; message?: unknown; hint?: unknown } }).error;
      const code = isErrorCode(err?.code) ? err.code : "INTERNAL";
      const message = typeof err?.message === "string" ? err.message : `HTTP ${res.status}`;
      throw new QstoraError(code, message, typeof err?.hint === "string" ? err.hint : undefined);
    }
    return parsed as T;
  }
}
