// A small structured logger: one line per event, "time level component message key=value...".
// The daemon points it at <data-dir>/qstora.log (and stderr in the foreground); tests use
// `silentLogger` or `memoryLogger`. It never throws: a failing log sink must not stop I/O.

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, string | number | boolean | bigint | null | undefined>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose lines carry `component`. */
  child(component: string): Logger;
}

const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function formatLogLine(level: LogLevel, component: string, message: string, fields: LogFields | undefined, now: Date): string {
  let line = `${now.toISOString()} ${level.toUpperCase().padEnd(5)} ${component} ${message}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      const s = String(v);
      line += ` ${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    }
  }
  return line;
}

export function createLogger(options: { sinks: Array<(line: string) => void>; level?: LogLevel; component?: string }): Logger {
  const min = levelRank[options.level ?? "info"];
  const component = options.component ?? "qstora";
  const emit = (level: LogLevel, message: string, fields?: LogFields): void => {
    if (levelRank[level] < min) return;
    const line = formatLogLine(level, component, message, fields, new Date());
    for (const sink of options.sinks) {
      try {
        sink(line);
      } catch {
        // A broken sink must never take the data path down.
      }
    }
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (c) => createLogger({ ...options, component: `${component}.${c}` }),
  };
}

export const silentLogger: Logger = createLogger({ sinks: [] });

export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(createLogger({ sinks: [(l) => lines.push(l)], level: "debug" }), { lines });
}
