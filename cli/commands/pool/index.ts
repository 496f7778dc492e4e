// `qstora pool ...`: storage pools (archives chosen by media).
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "pool", description: "Storage pools: archives chosen by media (nvme, ssd, hdd, file)" },
  subCommands: {
    create: () => import("./create.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
  },
});
