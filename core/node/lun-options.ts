// The choices `qstora lun create` makes before anything is recorded: the layout sizes (segment,
// stripe) and the redundancy (asked for, or the default for the cluster's fault domains). Pure:
// the caller gathers the fault domains from the store (ReplicaHost.placementDomains); this file
// only checks and decides, and says why. Its errors are operating errors (QstoraError) because
// they answer a command line or an API request directly.
import { checkRedundancy, defaultRedundancy } from "../cluster/placement.ts";
import type { Policy } from "../replica/types.ts";
import { isPolicy, policies } from "./replica-host.ts";
import { QstoraError } from "../util/errors.ts";
import { formatSize } from "../util/size.ts";
import { pageBytes } from "../volume/layout.ts";

export const layoutDefaults = { stripeBytes: 1 << 20, segmentBytes: 1 << 30 } as const;

/** A segment is one unit in one archive: larger ones make placement and catch-up coarse. */
export const segmentBytesMax = 64 * 2 ** 30;

export type LunRedundancy = "none" | Policy;

/** Checks --stripe and --segment-size (absent: the defaults); returns both in bytes. */
export function checkLayoutSizes(given: { stripeBytes?: number | undefined; segmentBytes?: number | undefined }): { stripeBytes: number; segmentBytes: number } {
  const stripeBytes = given.stripeBytes ?? layoutDefaults.stripeBytes;
  const segmentBytes = given.segmentBytes ?? layoutDefaults.segmentBytes;
  const hint = "Stripes and segments are whole multiples of 4 KiB, and a segment holds a whole number of stripes (defaults: --stripe 1M --segment-size 1G).";
  if (!Number.isSafeInteger(stripeBytes) || stripeBytes <= 0 || stripeBytes % pageBytes !== 0) {
    throw new QstoraError("INVALID_ARGUMENT", `stripe size ${stripeBytes} B is not a positive multiple of 4 KiB`, hint);
  }
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes <= 0 || segmentBytes % pageBytes !== 0) {
    throw new QstoraError("INVALID_ARGUMENT", `segment size ${segmentBytes} B is not a positive multiple of 4 KiB`, hint);
  }
  if (segmentBytes < stripeBytes || segmentBytes % stripeBytes !== 0) {
    throw new QstoraError("INVALID_ARGUMENT", `segment size ${formatSize(segmentBytes)} is not a whole number of ${formatSize(stripeBytes)} stripes`, hint);
  }
  if (segmentBytes > segmentBytesMax) throw new QstoraError("INVALID_ARGUMENT", `segment size ${formatSize(segmentBytes)} is more than the ${formatSize(segmentBytesMax)} a segment may have`, hint);
  return { stripeBytes, segmentBytes };
}

export interface RedundancyChoice {
  redundancy: LunRedundancy;
  /** Why, in a sentence the CLI prints and --json carries. */
  reason: string;
}

/**
 * The LUN's redundancy: the one asked for, checked against the fault domains that could take a
 * unit now; absent, replica:3 from three domains, replica:2 with two, a single copy with one
 * (placement.ts's defaultRedundancy). `domains` counts node groups, or archives on a one-node
 * cluster, in the LUN's pool.
 */
export function chooseRedundancy(asked: string | undefined, domains: number, pool: string): RedundancyChoice {
  const where = `${domains} fault domain(s) in pool ${pool} (node groups; archives on a one-node cluster)`;
  if (asked !== undefined) {
    if (asked !== "none" && !isPolicy(asked)) throw new QstoraError("INVALID_ARGUMENT", `redundancy must be none, ${policies.join(", ")} (got ${asked})`, "Leave --redundancy out for the most the cluster allows.");
    if (asked === "none") return { redundancy: "none", reason: "asked for: one copy on this node's archives, no redundancy" };
    const fits = checkRedundancy(asked, domains);
    if (!fits.ok) throw new QstoraError("INVALID_ARGUMENT", `${fits.reason} (pool ${pool})`, "Add nodes in other groups (or archives on a one-node cluster), choose a smaller redundancy, or leave --redundancy out.");
    return { redundancy: asked, reason: `asked for; ${where}` };
  }
  const d = defaultRedundancy(domains);
  if (d.redundancy === "single") return { redundancy: "none", reason: `default: ${d.message ?? "one fault domain"}; one copy on this node's archives` };
  return { redundancy: d.redundancy, reason: d.message === null ? `default: replica:3 on ${where}` : `default: ${d.message}` };
}
