// The key layout of the metadata store: functions that build every key qstora reads or writes.
// Pure; never touches the store. Names that come from users or other nodes are checked here, so a
// key never holds '/', whitespace or control characters, and a name is either a leaf or a
// directory, never both (antietcd would list a key `/a/b` inside the directory `/a/b/`).
//
//   /qstora/v1/cluster/info                       cluster id, format version
//   /qstora/v1/settings/<name>                    cluster-wide settings
//   /qstora/v1/nodes/<node-id>                    node record (addresses, version)
//   /qstora/v1/alive/<node-id>                    liveness, attached to the node's lease
//   /qstora/v1/archives/<archive-id>              archive record (node, path, size)
//   /qstora/v1/pools/<pool>                       pool: archives, fault domains, redundancy
//   /qstora/v1/targets/<iqn>                      iSCSI target
//   /qstora/v1/luns/<uuid>                        LUN record (size, layout, target, number)
//   /qstora/v1/segments/<lun-uuid>/<index>        segment membership and epoch
//   /qstora/v1/reservations/<lun-uuid>            SCSI persistent reservations of a LUN
//   /qstora/v1/tokens/<id>                        join token (its secret only as a SHA-256)
//   /qstora/v1/metadata/members                   the metadata store's mode and members
//   /qstora/v1/metadata/cluster-key               the embedded group's shared peer key
//   /qstora/v1/manager/leader                     the cluster manager, under its lease
//   /qstora/v1/ports/<n>                          the node whose portal group tag (target port) is n
//
// Directories end in '/', leaves never do. Values are JSON text (documents.ts).
import { QstoraError } from "../util/errors.ts";

export const schemaVersion = 1;
export const keyRoot = `/qstora/v${schemaVersion}/`;

/** A path segment: etcd and antietcd accept more, but these are what names ever need. */
export const nameCharsMax = 223; // an IQN is at most 223 bytes (RFC 7143 section 4.2.7.1)
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._:@+-]*$/;

/** Checks a name used as one path segment of a key; INVALID_ARGUMENT when it cannot be one. */
export function checkKeyName(name: string, what: string): string {
  if (name.length === 0 || name.length > nameCharsMax || !namePattern.test(name)) {
    throw new QstoraError(
      "INVALID_ARGUMENT",
      `${what} "${name.slice(0, 64)}" cannot be stored: names are 1 to ${nameCharsMax} characters of letters, digits and . _ : @ + -, starting with a letter or digit`,
    );
  }
  return name;
}

function leaf(dir: string, name: string, what: string): string {
  return `${dir}${checkKeyName(name, what)}`;
}

export const metaKeys = {
  root: keyRoot,
  cluster: `${keyRoot}cluster/info`,
  settings: `${keyRoot}settings/`,
  setting: (name: string) => leaf(`${keyRoot}settings/`, name, "setting"),
  nodes: `${keyRoot}nodes/`,
  node: (nodeId: string) => leaf(`${keyRoot}nodes/`, nodeId, "node id"),
  alive: `${keyRoot}alive/`,
  aliveNode: (nodeId: string) => leaf(`${keyRoot}alive/`, nodeId, "node id"),
  archives: `${keyRoot}archives/`,
  archive: (archiveId: string) => leaf(`${keyRoot}archives/`, archiveId, "archive id"),
  pools: `${keyRoot}pools/`,
  pool: (name: string) => leaf(`${keyRoot}pools/`, name, "pool name"),
  targets: `${keyRoot}targets/`,
  target: (iqn: string) => leaf(`${keyRoot}targets/`, iqn, "target name"),
  luns: `${keyRoot}luns/`,
  lun: (uuid: string) => leaf(`${keyRoot}luns/`, uuid, "LUN uuid"),
  segments: `${keyRoot}segments/`,
  lunSegments: (lunUuid: string) => `${leaf(`${keyRoot}segments/`, lunUuid, "LUN uuid")}/`,
  segment: (lunUuid: string, index: number) => {
    if (!Number.isSafeInteger(index) || index < 0) throw new QstoraError("INVALID_ARGUMENT", `segment index ${index} is not a whole number`);
    return `${leaf(`${keyRoot}segments/`, lunUuid, "LUN uuid")}/${index}`;
  },
  tokens: `${keyRoot}tokens/`,
  token: (id: string) => leaf(`${keyRoot}tokens/`, id, "token id"),
  metadata: `${keyRoot}metadata/`,
  metadataMembers: `${keyRoot}metadata/members`,
  metadataClusterKey: `${keyRoot}metadata/cluster-key`,
  manager: `${keyRoot}manager/`,
  managerLeader: `${keyRoot}manager/leader`,
  ports: `${keyRoot}ports/`,
  port: (id: number) => {
    if (!Number.isInteger(id) || id < 1 || id > 0xffff) throw new QstoraError("INVALID_ARGUMENT", `port id ${id} is not 1..65535`);
    return `${keyRoot}ports/${id}`;
  },
  reservations: `${keyRoot}reservations/`,
  reservation: (lunUuid: string) => leaf(`${keyRoot}reservations/`, lunUuid, "LUN uuid"),
} as const;
