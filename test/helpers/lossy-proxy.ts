/**
 * A TCP proxy in front of a test's redis-server that can lose a reply: `loseNextReply()` makes
 * the next bytes the server sends on any connection vanish, and that connection close, as when a
 * network drops between Redis and a client after Redis ran the command. `hold()` keeps new
 * connections waiting (accepted, nothing forwarded) until `release()`, so a test can act while the
 * client is cut off, before its re-send arrives. Real sockets and a real server; nothing mocked.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";

/** A started proxy: `url` is what the client connects to. */
export interface LossyProxy {
  readonly url: string;
  /** The next reply (the next chunk from the server, on any connection) is lost and its connection closed. */
  loseNextReply(): Promise<void>;
  /** New connections wait until `release()`. */
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port in front of `upstreamUrl` (redis://host:port). */
export async function startLossyProxy(upstreamUrl: string): Promise<LossyProxy> {
  const upstream = new URL(upstreamUrl);
  const sockets = new Set<Socket>();
  let losing: (() => void) | undefined;
  let held: (() => void)[] | undefined;
  const pipe = (client: Socket): void => {
    const server = connect(Number(upstream.port), upstream.hostname);
    sockets.add(server);
    server.on("close", () => sockets.delete(server));
    client.on("data", (d) => server.write(d));
    server.on("data", (d) => {
      if (losing) {
        const lost = losing;
        losing = undefined;
        client.destroy();
        server.destroy();
        lost();
        return;
      }
      client.write(d);
    });
    const end = (): void => {
      client.destroy();
      server.destroy();
    };
    client.on("close", end);
    server.on("close", end);
    client.on("error", end);
    server.on("error", end);
  };
  const proxy: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.pause();
    const go = (): void => {
      client.resume();
      pipe(client);
    };
    if (held) held.push(go);
    else go();
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const { port } = proxy.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    loseNextReply: () => new Promise<void>((resolve) => (losing = resolve)),
    hold() {
      held ??= [];
    },
    release() {
      const waiting = held ?? [];
      held = undefined;
      for (const go of waiting) go();
    },
    async close() {
      proxy.close();
      for (const s of sockets) s.destroy();
    },
  };
}
