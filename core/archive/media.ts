// What kind of medium an archive sits on (nvme, ssd, hdd, or a plain file), for storage pools.
// `mediaOf` decides from facts (pure); `detectMedia` gathers them from stat(2) and sysfs
// (/sys/dev/block/<major>:<minor>, /sys/block/<disk>/queue/rotational). Reading sysfs must never
// fail an archive: a fact that can't be read gives the most cautious answer (hdd for a device).
import { readFileSync, readlinkSync, statSync } from "node:fs";
import { basename } from "node:path";
import { QstoraError } from "../util/errors.ts";

export const mediaKinds = ["nvme", "ssd", "hdd", "file"] as const;
export type Media = (typeof mediaKinds)[number];

export function isMedia(text: string): text is Media {
  return (mediaKinds as readonly string[]).includes(text);
}

export function checkMedia(text: string): Media {
  if (!isMedia(text)) throw new QstoraError("INVALID_ARGUMENT", `media "${text}" is not one of ${mediaKinds.join(", ")}`);
  return text;
}

export interface MediaFacts {
  /** A regular file (on whatever file system): "file". */
  regularFile: boolean;
  /** The whole disk's kernel name (nvme0n1, sda), for a block device. */
  diskName?: string;
  /** /sys/block/<disk>/queue/rotational: true for spinning disks; undefined when unreadable. */
  rotational?: boolean;
}

export function mediaOf(facts: MediaFacts): Media {
  if (facts.regularFile) return "file";
  if (facts.diskName?.startsWith("nvme") === true) return "nvme";
  if (facts.rotational === false) return "ssd";
  return "hdd";
}

/** The whole disk of a block device: /sys/dev/block/M:m links to .../block/<disk>[/<partition>]. */
function diskOf(major: number, minor: number): string | undefined {
  try {
    const link = readlinkSync(`/sys/dev/block/${major}:${minor}`);
    const parts = link.split("/");
    const i = parts.lastIndexOf("block");
    const disk = i >= 0 ? parts[i + 1] : undefined;
    return disk ?? basename(link);
  } catch {
    return undefined;
  }
}

export function detectMedia(path: string): Media {
  const st = statSync(path);
  if (st.isFile()) return mediaOf({ regularFile: true });
  const major = Math.floor(st.rdev / 256) & 0xfff;
  const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
  const diskName = diskOf(major, minor);
  let rotational: boolean | undefined;
  if (diskName !== undefined) {
    try {
      rotational = readFileSync(`/sys/block/${diskName}/queue/rotational`, "utf8").trim() === "1";
    } catch {
      rotational = undefined;
    }
  }
  return mediaOf({ regularFile: false, ...(diskName === undefined ? {} : { diskName }), ...(rotational === undefined ? {} : { rotational }) });
}
