// `qstora target chap set IQN --user U [--mutual-user U2]`: secrets come from files or are typed
// at a prompt (or read from standard input, one per line, when it is not a terminal); they are
// never taken from the command line, where other users could read them, and never printed.
import { defineCommand } from "citty";
import { consola } from "consola";
import { readFileSync } from "node:fs";
import type { TargetView } from "../../../../core/control/protocol.ts";
import { QstoraError } from "../../../../core/util/errors.ts";
import { clientFrom, commonArgs, printJson } from "../../_shared.ts";

let stdinLines: string[] | undefined;

async function readSecret(what: string, file: string | undefined): Promise<string> {
  if (file !== undefined) {
    try {
      return readFileSync(file, "utf8").split("\n")[0]?.trim() ?? "";
    } catch {
      throw new QstoraError("INVALID_ARGUMENT", `cannot read ${what} from ${file}`);
    }
  }
  if (process.stdin.isTTY) {
    process.stderr.write(`${what}: `);
    Bun.spawnSync(["stty", "-echo"], { stdin: "inherit" });
    try {
      for await (const line of console) return line.trim();
      return "";
    } finally {
      Bun.spawnSync(["stty", "echo"], { stdin: "inherit" });
      process.stderr.write("\n");
    }
  }
  stdinLines ??= (await new Response(Bun.stdin.stream()).text()).split("\n");
  return stdinLines.shift()?.trim() ?? "";
}

export default defineCommand({
  meta: { name: "set", description: "Require CHAP on a target: initiators log in as --user with a secret (12 to 255 characters); --mutual-user makes the target prove itself too" },
  args: {
    ...commonArgs,
    iqn: { type: "positional", description: "Target name", required: true },
    user: { type: "string", description: "The name initiators log in with", required: true, valueHint: "USER" },
    "secret-file": { type: "string", description: "Read the initiators' secret from this file (else a prompt, or the first line of stdin)", valueHint: "FILE" },
    "mutual-user": { type: "string", description: "The name the target answers with (mutual CHAP)", valueHint: "USER" },
    "mutual-secret-file": { type: "string", description: "Read the target's secret from this file (else a prompt, or the next line of stdin)", valueHint: "FILE" },
  },
  async run({ args }) {
    const secret = await readSecret("initiator secret", args["secret-file"]);
    const mutualUser = args["mutual-user"];
    const mutualSecret = mutualUser === undefined ? undefined : await readSecret("target (mutual) secret", args["mutual-secret-file"]);
    const body = { user: args.user, secret, ...(mutualUser === undefined ? {} : { mutualUser, mutualSecret }) };
    const t = await clientFrom(args).call<TargetView>("POST", `/v1/targets/${encodeURIComponent(args.iqn)}/chap`, body);
    if (args.json) printJson(t);
    else consola.success(`target ${t.iqn} now requires ${t.chap} CHAP`);
  },
});
