/**
 * A private Redis Cluster for tests: `size` masters on free loopback ports (bus ports chosen
 * explicitly with --cluster-port), no replicas, created with `redis-cli --cluster create`.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { freePort, startRedisServer, type RedisServer } from "./redis-server.js";
import { until } from "./until.js";

const run = promisify(execFile);

/** A running test cluster. */
export interface RedisCluster {
  readonly nodes: RedisServer[];
  /** Startup nodes for `new Cluster(...)`. */
  readonly startupNodes: { host: string; port: number }[];
  /** Stops every node and removes their directories. */
  stop(): Promise<void>;
}

/** Starts a cluster of `size` masters and waits until every node reports cluster_state:ok. */
export async function startRedisCluster(size = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < size; i++) {
      const bus = await freePort();
      nodes.push(
        await startRedisServer({
          args: [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            String(bus),
            "--cluster-node-timeout",
            "5000",
          ],
        }),
      );
    }
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    await run("redis-cli", ["--cluster", "create", ...addresses, "--cluster-replicas", "0", "--cluster-yes"], {
      timeout: 30_000,
    });
    const admins = nodes.map((n) => new Redis(n.port, "127.0.0.1", { lazyConnect: true }));
    try {
      await until(
        async () => {
          const infos = await Promise.all(admins.map((a) => a.cluster("INFO")));
          return infos.every(
            (info) => info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${size}`),
          );
        },
        20_000,
        "cluster_state:ok on every node",
      );
    } finally {
      admins.forEach((a) => a.disconnect());
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { nodes, startupNodes: nodes.map((n) => ({ host: "127.0.0.1", port: n.port })), stop };
}
