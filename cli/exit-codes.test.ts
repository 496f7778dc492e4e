import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { errorTable } from "../core/util/errors.ts";

test("docs/CLI.md lists every exit status of the error table", () => {
  const doc = readFileSync(new URL("../docs/CLI.md", import.meta.url), "utf8");
  for (const [code, spec] of Object.entries(errorTable)) expect(doc).toContain(`| ${spec.exit} | ${code} |`);
});
