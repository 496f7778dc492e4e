// Opens the node's metadata store as its configuration says: embedded antietcd in this process
// (the default) or an external etcd cluster. Both are reached through the same etcd v3 JSON
// client, so the code above sees one behaviour.
import { EtcdClient } from "../meta/etcd-client.ts";
import { startEmbeddedMeta } from "../meta/embedded.ts";
import type { MetaStore } from "../meta/store.ts";
import type { Logger } from "../util/log.ts";
import { QstoraError } from "../util/errors.ts";
import { parseHostPort, type NodeConfig } from "./config.ts";

export async function openMetaStore(options: { config: NodeConfig; dir: string; logger: Logger }): Promise<MetaStore & { shutdown(): Promise<void> }> {
  const { config } = options;
  if (config.metadata.backend !== "embedded") {
    const client = new EtcdClient(config.metadata.endpoints);
    return Object.assign(client, { shutdown: () => client.close() });
  }
  const hp = parseHostPort(config.metadata.listen);
  if (hp === null) throw new QstoraError("CONFIG_INVALID", `"metadata.listen" is not ADDRESS:PORT`);
  const embedded = await startEmbeddedMeta({ dir: options.dir, host: hp.host, port: hp.port, logger: options.logger });
  const client = new EtcdClient([embedded.url]);
  return Object.assign(client, {
    shutdown: async () => {
      await client.close();
      await embedded.stop();
    },
  });
}
