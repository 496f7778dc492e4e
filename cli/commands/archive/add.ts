import { defineCommand } from "citty";
import { consola } from "consola";
import type { ArchiveView } from "../../../core/control/protocol.ts";
import { parseArchiveSpec } from "../../../core/node/service.ts";
import { formatSize, parseSize } from "../../../core/util/size.ts";
import { clientFrom, commonArgs, last, printJson } from "../_shared.ts";
import { checkMedia } from "../../../core/archive/media.ts";

export default defineCommand({
  meta: { name: "add", description: "Add an archive: PATH:SIZE creates a sparse file, PATH alone uses an existing file or block device" },
  args: {
    ...commonArgs,
    archive: { type: "positional", description: "PATH[:SIZE]", required: true },
    media: { type: "string", description: "nvme, ssd, hdd or file (default: detected from the archive)", valueHint: "MEDIA" },
  },
  async run({ args }) {
    const spec = parseArchiveSpec(args.archive, (s) => parseSize(s, "archive size"), process.cwd());
    const media = last(args.media);
    const a = await clientFrom(args).call<ArchiveView>("POST", "/v1/archives", { ...spec, ...(media === undefined ? {} : { media: checkMedia(media) }) });
    if (args.json) printJson(a);
    else consola.success(`archive ${a.id} added: ${a.path} (${formatSize(a.sizeBytes)}, ${a.media})`);
  },
});
