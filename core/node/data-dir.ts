// Reading a node's data directory, shared by the daemon and the CLI's lifecycle commands without
// either importing the other (the CLI must not load the data path to read a config file).
import { readFileSync } from "node:fs";
import { QstoraError } from "../util/errors.ts";
import { parseConfig, type NodeConfig } from "./config.ts";
import type { DataDirPaths } from "./paths.ts";

/** bootstrap.json: archives init or join formatted, registered by the daemon's first start. */
export interface Bootstrap {
  archives: string[];
  /** The fault domain given with --group (recorded in the node's record at the first start). */
  group?: string;
}

export function readConfigFile(paths: DataDirPaths): NodeConfig {
  let text: string;
  try {
    text = readFileSync(paths.config, "utf8");
  } catch {
    throw new QstoraError("NOT_INITIALIZED", `no qstora node in ${paths.root} (${paths.config} is missing)`, "Run `qstora init --archive PATH:SIZE` first, or pass --data-dir.");
  }
  return parseConfig(text, paths.config);
}
