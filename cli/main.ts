#!/usr/bin/env bun
// qstora's command-line entry. Resolves the command lazily, runs it, and turns errors into one
// or two lines and the exit status of core/util/errors.ts. The only place that calls process.exit.
import { defineCommand, runCommand, showUsage, type CommandDef } from "citty";
import { consola } from "consola";
import { QstoraError, errorTable, isQstoraError } from "../core/util/errors.ts";
import { buildCommit, version } from "../core/version.ts";
import { isLongRunning } from "./commands/_shared.ts";
import { disableNativeCrc32c } from "../core/util/crc32c.ts";

const subCommands = {
  init: () => import("./commands/init.ts").then((m) => m.default),
  join: () => import("./commands/join.ts").then((m) => m.default),
  node: () => import("./commands/node/index.ts").then((m) => m.default),
  pool: () => import("./commands/pool/index.ts").then((m) => m.default),
  serve: () => import("./commands/serve.ts").then((m) => m.default),
  start: () => import("./commands/start.ts").then((m) => m.default),
  stop: () => import("./commands/stop.ts").then((m) => m.default),
  restart: () => import("./commands/restart.ts").then((m) => m.default),
  status: () => import("./commands/status.ts").then((m) => m.default),
  health: () => import("./commands/health.ts").then((m) => m.default),
  archive: () => import("./commands/archive/index.ts").then((m) => m.default),
  target: () => import("./commands/target/index.ts").then((m) => m.default),
  lun: () => import("./commands/lun/index.ts").then((m) => m.default),
  quickstart: () => import("./commands/quickstart.ts").then((m) => m.default),
  token: () => import("./commands/token/index.ts").then((m) => m.default),
};

export const main = defineCommand({
  meta: {
    name: "qstora",
    version,
    description: "Software-defined block storage: files or disks of this server as iSCSI targets and LUNs.\nExit statuses: see `qstora help exit-codes` or docs/CLI.md.",
  },
  subCommands,
});

type AnyCommand = CommandDef<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function resolve<T>(v: T | Promise<T> | (() => T | Promise<T>)): Promise<T> {
  return typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
}

/** Walks the raw arguments down the command tree: the command to show --help for, and its parent. */
async function commandFor(rawArgs: string[]): Promise<[AnyCommand, AnyCommand | undefined]> {
  let cmd: AnyCommand = main as AnyCommand;
  let parent: AnyCommand | undefined;
  for (const arg of rawArgs) {
    if (arg.startsWith("-")) continue;
    const subs = await resolve(cmd.subCommands);
    const next = subs?.[arg];
    if (next === undefined) break;
    parent = cmd;
    cmd = (await resolve(next)) as AnyCommand;
  }
  return [cmd, parent];
}

function exitCodesText(): string {
  const rows = Object.entries(errorTable).map(([code, spec]) => `  ${String(spec.exit).padStart(3)}  ${code.padEnd(20)} ${spec.summary}`);
  return `qstora exit statuses (one table for every command):\n    0  OK\n${rows.join("\n")}\n`;
}

async function run(rawArgs: string[]): Promise<number> {
  if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
    process.stdout.write(`qstora ${version} (${buildCommit})\n`);
    return 0;
  }
  if (rawArgs[0] === "help" && rawArgs[1] === "exit-codes") {
    process.stdout.write(exitCodesText());
    return 0;
  }
  if (rawArgs.length === 0 || rawArgs.includes("--help") || rawArgs.includes("-h") || rawArgs[0] === "help") {
    const [cmd, parent] = await commandFor(rawArgs[0] === "help" ? rawArgs.slice(1) : rawArgs);
    await showUsage(cmd, parent);
    return rawArgs.length === 0 ? 2 : 0;
  }
  try {
    await runCommand(main, { rawArgs });
    return 0;
  } catch (e) {
    if (isQstoraError(e)) {
      consola.error(e.message);
      if (e.hint !== undefined) consola.info(e.hint);
      return e.spec.exit;
    }
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === "string" && code.startsWith("E_")) {
      // citty's own usage errors: unknown command, missing argument.
      consola.error((e as Error).message);
      consola.info("See `qstora --help`, or `qstora COMMAND --help`.");
      return errorTable.USAGE.exit;
    }
    const err = new QstoraError("INTERNAL", `internal error: ${e instanceof Error ? e.message : String(e)}`, "This is a bug; please report it with the command you ran.");
    consola.error(err.message);
    if (process.env["QSTORA_DEBUG"] && e instanceof Error) consola.log(e.stack);
    else consola.info(err.hint);
    return err.spec.exit;
  }
}

// Only a daemon compiles the crc32c kernel; the CLI's few checksums run in plain TypeScript.
const args = process.argv.slice(2);
if (args[0] !== "serve" && !args.includes("--foreground")) disableNativeCrc32c();
const status = await run(args);
// A daemon started in this process (serve, init --foreground) keeps it alive; all else ends here.
if (status !== 0 || !isLongRunning()) process.exit(status);
