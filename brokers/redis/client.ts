/**
 * What RedisBroker needs of a client, typed by shape rather than by class, so that a client of
 * ioredis 6 (the dependency, with either reply mapping) and one of ioredis 5 (an application that
 * has not moved yet) both fit: each member below is a method or field that both majors' `Redis` and
 * `Cluster` have with a compatible signature. The broker calls nothing else; a new call adds its
 * member here, with the narrowest signature the broker uses.
 */

/** An argument of a command or a script call. */
type Arg = string | number;

/**
 * An ioredis client or Cluster (major 5 or 6) as the broker uses it: a single node, or a Cluster
 * whose `nodes()` lists its node connections.
 */
export interface RedisClient {
  /** Only `keyPrefix` is read (clients with one are refused). */
  readonly options: { readonly keyPrefix?: string | undefined };
  /** `"ready"` once connected and set up; `"end"` once closed for good. */
  readonly status: string;
  readonly isCluster: boolean;
  evalsha(sha: string, numKeys: number, ...keysAndArgs: Arg[]): Promise<unknown>;
  eval(source: string, numKeys: number, ...keysAndArgs: Arg[]): Promise<unknown>;
  script(subcommand: "LOAD", source: string): Promise<unknown>;
  zadd(key: string, score: number, member: string): Promise<unknown>;
  llen(key: string): Promise<number>;
  exists(...keys: string[]): Promise<number>;
  hset(key: string, field: string, value: string): Promise<unknown>;
  hget(key: string, field: string): Promise<string | null>;
  hgetall(key: string): Promise<Record<string, string>>;
  scan(cursor: string, match: "MATCH", pattern: string, count: "COUNT", n: number): Promise<[string, string[]]>;
  unlink(...keys: string[]): Promise<number>;
  subscribe(...channels: string[]): Promise<unknown>;
  /** A new connection with the same options (a Cluster: a new Cluster client). */
  duplicate(): RedisClient;
  /** A Cluster's node connections (absent on a single-node client). */
  nodes?(role: "all" | "master"): RedisClient[];
  on(event: "message", listener: (channel: string, message: string) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "+node" | "-node", listener: (node: RedisClient) => void): unknown;
  on(event: "ready" | "close" | "end", listener: () => void): unknown;
  once(event: "end", listener: () => void): unknown;
  off(event: "+node" | "-node", listener: (node: RedisClient) => void): unknown;
  off(event: "ready" | "close" | "end", listener: () => void): unknown;
  quit(): Promise<unknown>;
  disconnect(): void;
}
